/* SPDX-License-Identifier: MIT */
#pragma once

/* The libmicrohttpd front end: one MHD daemon per listener, all run by one event loop in
 * one thread, the connections, and the reaper that ends slow ones. Each request is an
 * exchange (exchange.c): decided, forwarded and streamed without blocking. Tunnels run in
 * threads of their own. */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "config.h"
#include "event-loop.h"
#include "linger.h"
#include "listener.h"

typedef struct Counters {
        atomic_ulong connections; /* open now */
        atomic_ulong in_flight;   /* requests being answered now */
        atomic_ulong tunnels;     /* open now */
        atomic_ulong allowed;
        atomic_ulong refused;
        atomic_ulong malformed;
        atomic_ulong failed;
} Counters;

typedef struct Server Server;

/* The caller's share of the housekeeping (sd_notify's STATUS=, audit summaries), run in the
 * loop's thread. Returns whether it has something left to do even once nothing is open. */
typedef bool (*ServerTick)(Server *s, void *userdata);

struct Server {
        struct EventLoop *loop;
        pthread_t loop_thread;
        bool loop_running;
        atomic_bool loop_exit;          /* asked of the loop's thread */
        atomic_bool quiesce_requested;  /* stop accepting: asked of the loop's thread ... */
        atomic_bool quiesced;           /* ... and done */
        atomic_ulong watchdog_ping;     /* the watchdog's question, and the loop's answer */
        atomic_ulong watchdog_pong;
        bool cancelling;                /* the loop's: streams end (cancel_fd became readable) */
        bool connection_closed;         /* the loop's: MHD closed one in its last run */
        struct Exchange *suspended;     /* the loop's: exchanges waiting on the daemon */
        LingerSet lingering;            /* the loop's: refused connections draining */
        pthread_rwlock_t config_lock;
        Config *config; /* replaced whole on reload, under config_lock */
        Counters counters;
        int cancel_fd;  /* an eventfd: readable once long streams must end */
        struct Front *fronts;
        size_t n_fronts;
        unsigned header_bytes_ceiling; /* MHD's memory per connection is sized for this at start */
        unsigned long served_at_trim;  /* requests served when memory was last given back */
        struct ConnectionState *connections; /* the loop's: all open client connections */
        EventTimer housekeeping;        /* the loop's: armed while anything is open or kept */
        ServerTick tick;                /* set before server_start() */
        void *tick_userdata;
};

int server_new(Server **ret, Config *config);
/* Starts serving every listener. On error *ret_error says which one and why. */
int server_start(Server *s, Listener *listeners, size_t n_listeners, char **ret_error);
/* Swaps in a new configuration; returns the old one for the caller to free. */
Config *server_swap_config(Server *s, Config *c);
/* Whether the event loop answered the previous call in time (for the watchdog; call it at
 * least twice as often as the watchdog's interval). */
bool server_alive(Server *s);
/* Stops accepting, waits up to drain_usec for requests in flight, then ends the streams still
 * open and stops. */
void server_stop(Server *s, usec_t drain_usec);
Server *server_free(Server *s);
