/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

int fd_nonblock(int fd, bool nonblock);
/* Writes all of buf to a blocking socket, without SIGPIPE. Returns 0 or -errno. */
int loop_send(int fd, const void *buf, size_t size);
/* Waits for one of the events on fd for at most timeout (USEC_INFINITY: forever).
 * Returns the revents, 0 on timeout, or -errno. */
int fd_wait_for_event(int fd, short events, usec_t timeout);
usec_t now_usec(void);
/* The clock at its last tick (1-4 ms old): cheaper, and enough for timeouts in seconds. */
usec_t now_coarse_usec(void);

static inline bool errno_is_disconnect(int r) {
        r = r < 0 ? -r : r;
        return r == ECONNRESET || r == EPIPE || r == ECONNABORTED || r == ENOTCONN || r == ESHUTDOWN ||
               r == ECONNREFUSED || r == ENETRESET;
}
