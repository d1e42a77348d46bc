/* SPDX-License-Identifier: MIT */
#pragma once

/* Two-way byte relay for hijacked connections (attach, exec, BuildKit), with half-close
 * passed on in both directions. Blocking: runs in a thread of its own. The bytes
 * move with splice() through a pipe per direction, or are copied when no pipe can be had. */

#include <stddef.h>
#include <stdint.h>

#define TUNNEL_BUFFER_SIZE (128U * 1024U)

typedef struct TunnelStats {
        uint64_t client_to_daemon;
        uint64_t daemon_to_client;
        int end_reason; /* 0: both sides done; -ECANCELED; -ECONNRESET; another -errno */
} TunnelStats;

/* Relays until both directions reached EOF, one side reset, or cancel_fd became readable.
 * client_pending/daemon_pending are bytes already read past the headers on each side: they
 * go first. Neither fd is closed; each gets shutdown(SHUT_WR) once its source ended. */
int tunnel_run(int client_fd, int daemon_fd, const void *client_pending, size_t client_pending_size,
               const void *daemon_pending, size_t daemon_pending_size, int cancel_fd, TunnelStats *ret);
