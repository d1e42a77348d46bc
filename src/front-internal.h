/* SPDX-License-Identifier: MIT */
#pragma once

/* What the front end (front.c: listeners, connections, the reaper) and the exchange
 * (exchange.c: one request, decided, forwarded, answered) share. */

#include <microhttpd.h>
#include <stdatomic.h>

#include "client-gate.h"
#include "event-loop.h"
#include "front.h"
#include "list.h"
#include "peer.h"
#include "policy.h"

/* A tunnel's thread's stack: only its touched pages (a few) are resident, whatever its size.
 * Not smaller: glibc keeps up to 40 MiB of ended threads' stacks for reuse, with three pages
 * of each still resident, so 256 KiB stacks left 160 of them (1.9 MiB) after a burst, and
 * 1 MiB stacks leave 40. */
#define THREAD_STACK_SIZE (1024U * 1024U)

typedef struct Front {
        Server *server;
        struct MHD_Daemon *daemon;
        int listen_fd;
        char *name;
        atomic_ulong connections;
        unsigned connection_limit;  /* MHD's */
        bool overflow_watched;      /* the loop answers 503 to what MHD, at its limit, leaves waiting */
        bool overflow_blocked;      /* ... not now: no fd was left to accept with */
} Front;

/* One per client connection, for as long as it is open; listed in the Server so that
 * the reaper can end connections that take too long to send their request headers. */
typedef struct ConnectionState {
        LIST_FIELDS(struct ConnectionState, connections);
        Front *front;
        int fd;
        bool poisoned;              /* a refused or malformed request was answered: serve no more */
        bool reused;                /* a request completed on it: it may idle for the keep-alive time */
        bool waiting_on_client;     /* between requests, reading headers, or between body bytes */
        bool in_body;               /* ... and of those, between body bytes */
        usec_t waiting_since;
        bool reaped;
        ClientGate gate;            /* every byte the client sends passes it before MHD sees it */
        bool have_peer;
        Peer peer;                  /* who is on the other end: looked up once per connection */
        void *spare_exchange;       /* the last request's memory, for the next one (exchange.c) */
} ConnectionState;

/* Per-request settings copied out of the shared Config under its lock. */
typedef struct RequestSettings {
        Policy policy;
        char socket_path[108];
        usec_t timeout_usec;
        unsigned keepalive_sec;
        unsigned max_connections;
        unsigned max_listener_connections;
} RequestSettings;

/* The settings a request runs with, copied under the configuration lock. */
void settings_snapshot(Server *s, RequestSettings *ret);
/* The ConnectionState of an MHD connection, or NULL if it has none. */
ConnectionState *connection_state(struct MHD_Connection *c);
/* Whether the connection now waits on its client (and since when), for the reaper: a
 * client may pause only so long in its headers or its body; time spent on the daemon
 * does not count. */
void wait_on_client(ConnectionState *cs, bool waiting, bool in_body);

/* The exchange's MHD callbacks (exchange.c). */
void *exchange_on_uri(void *cls, const char *uri, struct MHD_Connection *c);
enum MHD_Result exchange_on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                    const char *version, const char *upload_data, size_t *upload_data_size,
                                    void **con_cls);
void exchange_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                           enum MHD_RequestTerminationCode toe);
/* Ends the streams that wait on the daemon, and any that would: the proxy is stopping. */
void exchange_end_streams(Server *s);
/* Resumes every suspended exchange: MHD stops only without suspended connections. */
void exchange_resume_all(Server *s);
/* For upstream_expire_idle(): the loop (userdata) stops watching the kept connection fd. */
void exchange_forget_idle(int fd, void *userdata);
