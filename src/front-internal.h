/* SPDX-License-Identifier: MIT */
#pragma once

/* What the front end (front.c: listeners, connections, the reaper) and the exchange
 * (exchange.c: one request, decided, forwarded, answered) share. */

#include <microhttpd.h>
#include <stdatomic.h>

#include "client-gate.h"
#include "front.h"
#include "peer.h"
#include "policy.h"

typedef struct Front {
        Server *server;
        struct MHD_Daemon *daemon;
        int listen_fd;
        char *name;
        atomic_ulong connections;
} Front;

/* One per client connection, for as long as it is open; listed in the Server so that
 * the reaper can end connections that take too long to send their request headers. */
typedef struct ConnectionState {
        struct ConnectionState *prev, *next;
        Front *front;
        int fd;
        bool poisoned;              /* a refused or malformed request was answered: serve no more */
        bool reused;                /* a request completed on it: it may idle for the keep-alive time */
        atomic_bool waiting_on_client; /* between requests, reading headers, or between body bytes */
        atomic_bool in_body;           /* ... and of those, between body bytes */
        _Atomic usec_t waiting_since;
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
