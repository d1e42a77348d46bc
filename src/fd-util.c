/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include "fd-util.h"

int fd_nonblock(int fd, bool nonblock) {
        int flags = fcntl(fd, F_GETFL);
        int nflags;

        if (flags < 0)
                return -errno;
        nflags = nonblock ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
        if (nflags != flags && fcntl(fd, F_SETFL, nflags) < 0)
                return -errno;
        return 0;
}

int loop_send(int fd, const void *buf, size_t size) {
        const char *p = buf;

        while (size > 0) {
                ssize_t n = send(fd, p, size, MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                return -ETIMEDOUT; /* SO_SNDTIMEO ran out */
                        return -errno;
                }
                p += n;
                size -= (size_t) n;
        }
        return 0;
}

static usec_t clock_usec(clockid_t clock) {
        struct timespec ts;

        clock_gettime(clock, &ts);
        return (usec_t) ts.tv_sec * USEC_PER_SEC + (usec_t) ts.tv_nsec / 1000;
}

usec_t now_usec(void) {
        return clock_usec(CLOCK_MONOTONIC);
}

usec_t now_coarse_usec(void) {
        return clock_usec(CLOCK_MONOTONIC_COARSE);
}

int fd_wait_for_event(int fd, short events, usec_t timeout) {
        usec_t deadline = timeout == USEC_INFINITY ? USEC_INFINITY : now_usec() + timeout;

        for (;;) {
                struct pollfd p = { .fd = fd, .events = events };
                int ms = -1, r;

                if (deadline != USEC_INFINITY) {
                        usec_t n = now_usec();
                        ms = n >= deadline ? 0 : (int) MIN((deadline - n + 999) / 1000, (usec_t) 1 << 30);
                }
                r = poll(&p, 1, ms);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                return r == 0 ? 0 : p.revents;
        }
}
