/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <netinet/in.h>
#include <sys/types.h>

/* Who is on the other end of a client connection. */
typedef struct Peer {
        bool is_unix;
        bool have_creds;
        pid_t pid;
        uid_t uid;
        gid_t gid;
        char comm[17];
        char address[INET6_ADDRSTRLEN];
        unsigned port;
} Peer;

int peer_from_fd(int fd, Peer *ret);
/* "uid 1000 (pid 4242, traefik)" or "127.0.0.1:53422" or "[::1]:53422". */
const char *peer_describe(const Peer *p, char *buf, size_t size);
