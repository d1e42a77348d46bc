/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "client-gate.h"
#include "fd-util.h"
#include "linger.h"

struct Lingering {
        LIST_FIELDS(Lingering, lingering);
        LingerSet *set;
        EventTimer timer;
        int fd;
        size_t dropped;
};

static void lingering_end(Lingering *lg) {
        LingerSet *set = lg->set;

        event_loop_timer_disarm(set->loop, &lg->timer);
        event_loop_forget(set->loop, lg->fd);
        safe_close(lg->fd);
        LIST_REMOVE(lingering, set->head, lg);
        free(lg);
}

static void on_timeout(EventLoop *l, EventTimer *t) {
        lingering_end(container_of(t, Lingering, timer));
}

static void on_readable(EventLoop *l, int fd, uint32_t events, void *userdata) {
        Lingering *lg = userdata;
        char buf[4096];

        while (lg->dropped < CLIENT_GATE_LINGER_BYTES) {
                ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, NULL, NULL);

                if (n > 0)
                        lg->dropped += (size_t) n;
                else if (n < 0 && errno == EINTR)
                        continue;
                else if (n < 0 && errno == EAGAIN)
                        return;
                else
                        break; /* the client's end of the stream, or an error */
        }
        lingering_end(lg);
}

int linger_set_add(LingerSet *set, int fd) {
        Lingering *lg = calloc(1, sizeof(Lingering));
        int r;

        if (!lg)
                return -ENOMEM;
        lg->set = set;
        lg->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (lg->fd < 0) {
                free(lg);
                return -errno;
        }
        r = event_loop_add(set->loop, lg->fd, EPOLLIN | EPOLLRDHUP | EPOLLET, on_readable, lg);
        if (r < 0) {
                safe_close(lg->fd);
                free(lg);
                return r;
        }
        LIST_PREPEND(lingering, set->head, lg);
        event_loop_timer_arm(set->loop, &lg->timer, now_coarse_usec() + CLIENT_GATE_LINGER_USEC, on_timeout);
        return 0;
}

void linger_set_clear(LingerSet *set) {
        while (set->head)
                lingering_end(set->head);
}
