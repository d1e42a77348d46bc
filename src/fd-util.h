/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

int fd_nonblock(int fd, bool nonblock);
usec_t now_usec(void);
/* The clock at its last tick (1-4 ms old): cheaper, and enough for timeouts in seconds. */
usec_t now_coarse_usec(void);

static inline bool errno_is_disconnect(int r) {
        r = r < 0 ? -r : r;
        return r == ECONNRESET || r == EPIPE || r == ECONNABORTED || r == ENOTCONN || r == ESHUTDOWN ||
               r == ECONNREFUSED || r == ENETRESET;
}
