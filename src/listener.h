/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* A listening stream socket: passed by systemd or bound from --listen. */
typedef struct Listener {
        int fd;
        char *name;        /* FileDescriptorName=, or the --listen spec */
        char *unlink_path; /* a Unix socket we bound ourselves, removed at exit */
        bool is_unix;
} Listener;

/* Takes the sockets systemd passed. Returns how many (>= 0), or -errno with *ret_error
 * describing a socket we cannot serve. */
int listeners_from_activation(Listener **list, size_t *n, char **ret_error);

/* Binds "tcp:HOST:PORT", "tcp:[V6]:PORT" or "unix:PATH[,mode=0660][,group=NAME]". */
int listener_bind(const char *spec, bool disable_ipv6, Listener **list, size_t *n, char **ret_error);

void listeners_free(Listener *list, size_t n);
