/* SPDX-License-Identifier: MIT */
/* The event loop the front end runs on: handlers by fd, hand-over, events of an fd closed in
 * the same batch, timers, and a wake-up from another thread. */
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include "event-loop.h"
#include "fd-util.h"
#include "tap.h"

typedef struct Seen {
        unsigned calls;
        int fd;
        uint32_t events;
} Seen;

static void record(EventLoop *l, int fd, uint32_t events, void *userdata) {
        Seen *s = userdata;

        s->calls++;
        s->fd = fd;
        s->events = events;
}

/* Two ready fds whose handlers each close the other: whichever runs first closes (and
 * forgets) the other, whose event, fetched in the same batch, must then be dropped. */
typedef struct Pair {
        unsigned calls;
        int fd;
        struct Pair *other;
        bool closed;
} Pair;

static void close_other(EventLoop *l, int fd, uint32_t events, void *userdata) {
        Pair *p = userdata;

        p->calls++;
        if (!p->other->closed) {
                event_loop_forget(l, p->other->fd);
                close(p->other->fd);
                p->other->closed = true;
        }
}

static unsigned fired_order[4], n_fired;
static void timer_a(EventLoop *l, EventTimer *t) {
        fired_order[n_fired++] = 1;
}
static void timer_b(EventLoop *l, EventTimer *t) {
        fired_order[n_fired++] = 2;
}

static void *wake_later(void *userdata) {
        usleep(50 * 1000);
        event_loop_wake(userdata);
        return NULL;
}

static void test_handlers(void) {
        EventLoop *l;
        Seen a = {}, b = {};
        int sp[2], r;

        if (event_loop_new(&l, 1024) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                bail("cannot set up");

        is_int(0, event_loop_add(l, sp[0], EPOLLIN | EPOLLET, record, &a), "a socket is watched");
        is_int(-EMFILE, event_loop_add(l, 5000, EPOLLIN, record, &a), "an fd beyond max_fds is refused");

        (void) !write(sp[1], "x", 1);
        r = event_loop_run_once(l, 1000 * USEC_PER_MSEC);
        ok(r == 0 && a.calls == 1 && a.fd == sp[0] && (a.events & EPOLLIN),
           "its handler runs once it is readable, with its fd and EPOLLIN (calls %u)", a.calls);

        r = event_loop_run_once(l, 20 * USEC_PER_MSEC);
        is_int(1, a.calls, "edge-triggered: unread data does not run it again");

        event_loop_retarget(l, sp[0], record, &b);
        (void) !write(sp[1], "y", 1);
        (void) event_loop_run_once(l, 1000 * USEC_PER_MSEC);
        ok(a.calls == 1 && b.calls == 1, "after a retarget the new handler runs, not the old (old %u, new %u)",
           a.calls, b.calls);

        event_loop_remove(l, sp[0]);
        (void) !write(sp[1], "z", 1);
        (void) event_loop_run_once(l, 20 * USEC_PER_MSEC);
        is_int(1, b.calls, "a removed fd runs nothing");

        close(sp[0]);
        close(sp[1]);
        event_loop_free(l);
}

static void test_forget_in_batch(void) {
        EventLoop *l;
        Pair one = {}, two = {};
        int p1[2], p2[2];

        if (event_loop_new(&l, 1024) < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p1) < 0 ||
            socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p2) < 0)
                bail("cannot set up");
        one = (Pair) { .fd = p1[0], .other = &two };
        two = (Pair) { .fd = p2[0], .other = &one };
        (void) event_loop_add(l, p1[0], EPOLLIN | EPOLLET, close_other, &one);
        (void) event_loop_add(l, p2[0], EPOLLIN | EPOLLET, close_other, &two);
        /* Both are ready before the wait, so both come in one batch. */
        (void) !write(p1[1], "x", 1);
        (void) !write(p2[1], "x", 1);
        (void) event_loop_run_once(l, 1000 * USEC_PER_MSEC);
        ok(one.calls + two.calls == 1 && (one.closed != two.closed),
           "an fd closed and forgotten by an earlier handler of the same batch runs nothing (calls %u and %u)",
           one.calls, two.calls);

        if (!one.closed)
                close(p1[0]);
        if (!two.closed)
                close(p2[0]);
        close(p1[1]);
        close(p2[1]);
        event_loop_free(l);
}

static void test_timers(void) {
        EventLoop *l;
        EventTimer a = {}, b = {}, c = {};
        usec_t start;
        pthread_t t;

        if (event_loop_new(&l, 64) < 0)
                bail("cannot set up");
        start = now_usec();
        event_loop_timer_arm(l, &b, now_coarse_usec() + 60 * USEC_PER_MSEC, timer_b);
        event_loop_timer_arm(l, &a, now_coarse_usec() + 20 * USEC_PER_MSEC, timer_a);
        event_loop_timer_arm(l, &c, now_coarse_usec() + 40 * USEC_PER_MSEC, timer_a);
        event_loop_timer_disarm(l, &c);
        ok(!c.armed, "a disarmed timer is not armed");
        while (n_fired < 2 && now_usec() - start < 2 * USEC_PER_SEC)
                (void) event_loop_run_once(l, USEC_INFINITY);
        ok(n_fired == 2 && fired_order[0] == 1 && fired_order[1] == 2,
           "timers fire in deadline order, and a disarmed one not at all (%u fired: %u, %u)", n_fired,
           fired_order[0], fired_order[1]);
        ok(now_usec() - start >= 50 * USEC_PER_MSEC, "not before their deadline (%llu ms)",
           (now_usec() - start) / USEC_PER_MSEC);
        ok(!a.armed && !b.armed, "a fired timer is no longer armed");

        start = now_usec();
        if (pthread_create(&t, NULL, wake_later, l) != 0)
                bail("cannot start a thread");
        is_int(0, event_loop_run_once(l, USEC_INFINITY), "a wait without end returns");
        ok(now_usec() - start < 1500 * USEC_PER_MSEC, "when another thread wakes the loop (%llu ms)",
           (now_usec() - start) / USEC_PER_MSEC);
        pthread_join(t, NULL);
        event_loop_free(l);
}

int main(void) {
        plan_lazy();
        test_handlers();
        test_forget_in_batch();
        test_timers();
        return 0;
}
