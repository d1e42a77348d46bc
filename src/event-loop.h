/* SPDX-License-Identifier: MIT */
#pragma once

/* One epoll set, its handlers and its timers, run by one thread. Each watched fd has one
 * handler at a time; handing an fd to another handler (a daemon connection going from a
 * request to the idle ones and back) costs no system call. Timers are few (requests waiting
 * on the daemon, refused connections lingering) and kept in a list. */

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "list.h"
#include "macro.h"

typedef struct EventLoop EventLoop;

typedef void (*EventHandler)(EventLoop *l, int fd, uint32_t events, void *userdata);

typedef struct EventTimer EventTimer;
typedef void (*TimerHandler)(EventLoop *l, EventTimer *t);
struct EventTimer {
        LIST_FIELDS(EventTimer, timers);
        usec_t deadline; /* on the coarse monotonic clock */
        TimerHandler fire;
        bool armed;
};

/* max_fds: fds numbered at or above it cannot be watched. */
int event_loop_new(EventLoop **ret, unsigned max_fds);
EventLoop *event_loop_free(EventLoop *l);

/* Watches fd for events (EPOLLET is the caller's choice). -EMFILE: fd is beyond max_fds. */
int event_loop_add(EventLoop *l, int fd, uint32_t events, EventHandler h, void *userdata);
int event_loop_modify(EventLoop *l, int fd, uint32_t events);
/* Gives a watched fd another handler. */
void event_loop_retarget(EventLoop *l, int fd, EventHandler h, void *userdata);
/* Stops watching fd, which stays open. */
void event_loop_remove(EventLoop *l, int fd);
/* Forgets fd's handler before the caller closes it (closing takes it out of the set):
 * events already fetched for it are then dropped. */
void event_loop_forget(EventLoop *l, int fd);

void event_loop_timer_arm(EventLoop *l, EventTimer *t, usec_t deadline, TimerHandler fire);
void event_loop_timer_disarm(EventLoop *l, EventTimer *t);

/* Waits up to max_wait (USEC_INFINITY: until something happens) for events, runs their
 * handlers, then the handlers of timers that are due. Returns 0 or -errno. */
int event_loop_run_once(EventLoop *l, usec_t max_wait);
/* From any thread: ends the current or next wait of event_loop_run_once(). */
void event_loop_wake(EventLoop *l);
