/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "event-loop.h"
#include "fd-util.h"

#define EVENTS_PER_WAIT 64
/* The wake fd's events carry what no fd number can be. */
#define WAKE_TOKEN UINT64_MAX

typedef struct Watch {
        EventHandler handler;
        void *userdata;
} Watch;

struct EventLoop {
        int epoll_fd;
        int wake_fd;
        Watch *watches; /* by fd number; lazily backed by the kernel */
        unsigned max_fds;
        EventTimer *timers;
};

int event_loop_new(EventLoop **ret, unsigned max_fds) {
        EventLoop *l = calloc(1, sizeof(EventLoop));
        struct epoll_event ev = { .events = EPOLLIN };
        int r;

        if (!l)
                return -ENOMEM;
        l->epoll_fd = l->wake_fd = -EBADF;
        l->max_fds = max_fds;
        l->watches = calloc(max_fds, sizeof(Watch));
        if (!l->watches) {
                r = -ENOMEM;
                goto fail;
        }
        l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (l->epoll_fd < 0 || l->wake_fd < 0) {
                r = -errno;
                goto fail;
        }
        ev.data.u64 = WAKE_TOKEN;
        if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0) {
                r = -errno;
                goto fail;
        }
        *ret = l;
        return 0;
fail:
        event_loop_free(l);
        return r;
}

EventLoop *event_loop_free(EventLoop *l) {
        if (!l)
                return NULL;
        safe_close(l->epoll_fd);
        safe_close(l->wake_fd);
        free(l->watches);
        free(l);
        return NULL;
}

static bool watchable(EventLoop *l, int fd) {
        return fd >= 0 && (unsigned) fd < l->max_fds;
}

int event_loop_add(EventLoop *l, int fd, uint32_t events, EventHandler h, void *userdata) {
        struct epoll_event ev = { .events = events };

        if (!watchable(l, fd))
                return -EMFILE;
        /* The fd number, not a pointer: its handler is looked up when the event is run. */
        ev.data.u64 = (uint64_t) fd;
        if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
                return -errno;
        l->watches[fd] = (Watch) { .handler = h, .userdata = userdata };
        return 0;
}

int event_loop_modify(EventLoop *l, int fd, uint32_t events) {
        struct epoll_event ev = { .events = events, .data.u64 = (uint64_t) fd };

        if (!watchable(l, fd))
                return -EMFILE;
        return epoll_ctl(l->epoll_fd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void event_loop_retarget(EventLoop *l, int fd, EventHandler h, void *userdata) {
        if (watchable(l, fd))
                l->watches[fd] = (Watch) { .handler = h, .userdata = userdata };
}

void event_loop_forget(EventLoop *l, int fd) {
        if (watchable(l, fd))
                l->watches[fd] = (Watch) {};
}

void event_loop_remove(EventLoop *l, int fd) {
        if (!watchable(l, fd))
                return;
        (void) epoll_ctl(l->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
        event_loop_forget(l, fd);
}

void event_loop_timer_arm(EventLoop *l, EventTimer *t, usec_t deadline, TimerHandler fire) {
        t->deadline = deadline;
        t->fire = fire;
        if (t->armed)
                return;
        LIST_PREPEND(timers, l->timers, t);
        t->armed = true;
}

void event_loop_timer_disarm(EventLoop *l, EventTimer *t) {
        if (!t->armed)
                return;
        LIST_REMOVE(timers, l->timers, t);
        t->armed = false;
}

/* Until the earliest timer, in whole milliseconds rounded up, or max_wait if sooner. */
static int wait_msec(EventLoop *l, usec_t now, usec_t max_wait) {
        usec_t wait = max_wait;

        for (EventTimer *t = l->timers; t; t = t->timers_next)
                wait = MIN(wait, t->deadline > now ? t->deadline - now : 0);
        if (wait == USEC_INFINITY)
                return -1;
        return (int) MIN((wait + USEC_PER_MSEC - 1) / USEC_PER_MSEC, (usec_t) INT_MAX);
}

static void run_due_timers(EventLoop *l) {
        usec_t now = now_coarse_usec();
        bool again;

        /* A handler may arm or disarm timers: start over after each one. */
        do {
                again = false;
                for (EventTimer *t = l->timers; t; t = t->timers_next)
                        if (t->deadline <= now) {
                                event_loop_timer_disarm(l, t);
                                t->fire(l, t);
                                again = true;
                                break;
                        }
        } while (again);
}

int event_loop_run_once(EventLoop *l, usec_t max_wait) {
        struct epoll_event events[EVENTS_PER_WAIT];
        int n;

        n = epoll_wait(l->epoll_fd, events, EVENTS_PER_WAIT, l->timers || max_wait != USEC_INFINITY ?
                       wait_msec(l, now_coarse_usec(), max_wait) : -1);
        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        for (int i = 0; i < n; i++) {
                Watch *w;
                int fd;

                if (events[i].data.u64 == WAKE_TOKEN) {
                        uint64_t v;
                        (void) !read(l->wake_fd, &v, sizeof(v));
                        continue;
                }
                fd = (int) events[i].data.u64;
                w = &l->watches[fd];
                if (w->handler)
                        w->handler(l, fd, events[i].events, w->userdata);
        }
        if (l->timers)
                run_due_timers(l);
        return 0;
}

void event_loop_wake(EventLoop *l) {
        uint64_t one = 1;

        (void) !write(l->wake_fd, &one, sizeof(one));
}
