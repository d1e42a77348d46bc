/* SPDX-License-Identifier: MIT */
/* Listeners, connections and their limits, the request gate's hooks, the reaper, and the
 * server's start and stop. What a request does is in exchange.c. */
#include <limits.h>
#include <malloc.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "audit.h"
#include "client-gate.h"
#include "fd-util.h"
#include "front-internal.h"
#include "log.h"
#include "upstream.h"

/* MHD's memory per connection: the request head (the gate keeps it under
 * SOCKET_PROXY_MAX_HEADER_BYTES), MHD's records (56 bytes each) of at most 128 headers,
 * 128 query arguments and 32 trailer fields, and the response head. MHD zeroes all of it after every request, so it is
 * kept no larger than that. */
#define CONNECTION_MEMORY(max_header_bytes) ((max_header_bytes) + 24U * 1024U)
/* A connection thread's stack: only its touched pages (a few) are resident, whatever its
 * size. Not smaller: glibc keeps up to 40 MiB of ended threads' stacks for reuse, with
 * three pages of each still resident, so 256 KiB stacks left 160 of them (1.9 MiB) after a
 * burst of 1,000 streams, and 1 MiB stacks leave 40. */
#define THREAD_STACK_SIZE (1024U * 1024U)

/* The gate's table has a slot per fd number; connections on higher numbers are refused. */
#define GATED_FDS_MAX (1U << 20)

/* Connections past the limits are still accepted, up to this many more, to be told 503. */
#define CONNECTION_HEADROOM 32U

/* MHD takes its idle timeout in whole seconds, and 0 would mean none: round up, at least 1. */
static unsigned keepalive_seconds(const Config *c) {
        return (unsigned) MAX((c->keepalive_usec + USEC_PER_SEC - 1) / USEC_PER_SEC, 1ULL);
}

void settings_snapshot(Server *s, RequestSettings *ret) {
        pthread_rwlock_rdlock(&s->config_lock);
        ret->policy = s->config->policy;
        /* config.c refuses a longer path; strnlen() only keeps this copy in bounds. */
        size_t n = strnlen(s->config->socket_path, sizeof(ret->socket_path) - 1);
        memcpy(ret->socket_path, s->config->socket_path, n);
        ret->socket_path[n] = '\0';
        ret->timeout_usec = s->config->timeout_usec;
        ret->keepalive_sec = keepalive_seconds(s->config);
        ret->max_connections = s->config->max_connections;
        ret->max_listener_connections = s->config->max_listener_connections;
        pthread_rwlock_unlock(&s->config_lock);
}

ConnectionState *connection_state(struct MHD_Connection *c) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        return ci ? ci->socket_context : NULL;
}

void wait_on_client(ConnectionState *cs, bool waiting, bool in_body) {
        if (!cs)
                return;
        if (waiting)
                atomic_store(&cs->waiting_since, now_coarse_usec());
        atomic_store(&cs->in_body, in_body);
        atomic_store(&cs->waiting_on_client, waiting);
}

/* The gate's limits for a new connection: the configured ones, within what MHD was given
 * memory for at start. */
static size_t gate_limit(Server *s, bool head) {
        size_t v;

        pthread_rwlock_rdlock(&s->config_lock);
        v = head ? MIN(s->config->max_header_bytes, s->header_bytes_ceiling) : s->config->max_target_bytes;
        pthread_rwlock_unlock(&s->config_lock);
        return v;
}

/* The gate answered a request that broke the rules; its connection is ending. */
static void on_gate_refusal(ClientGate *g) {
        ConnectionState *cs = container_of(g, ConnectionState, gate);
        Server *s = cs->front->server;
        AuditRecord r = {
                .kind = AUDIT_MALFORMED,
                .method = g->gate.method[0] ? g->gate.method : NULL,
                .path = g->gate.target[0] ? g->gate.target : NULL,
                .listener = cs->front->name,
                .reason = g->gate.error,
                .status = g->gate.status,
                .peer = &cs->peer,
        };

        atomic_fetch_add(&s->counters.malformed, 1);
        if (!cs->have_peer) {
                (void) peer_from_fd(g->fd, &cs->peer);
                cs->have_peer = true;
        }
        audit_log(&r);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
        Front *f = cls;

        Server *s = f->server;
        ConnectionState *cs;

        if (code == MHD_CONNECTION_NOTIFY_STARTED) {
                const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

                atomic_fetch_add(&s->counters.connections, 1);
                atomic_fetch_add(&f->connections, 1);
                cs = calloc(1, sizeof(ConnectionState));
                if (!cs || !ci || client_gate_attach(&cs->gate, ci->connect_fd, gate_limit(s, false),
                                                     gate_limit(s, true)) < 0) {
                        /* Never parse a byte the gate has not seen: MHD closes it at once. */
                        if (ci)
                                (void) shutdown(ci->connect_fd, SHUT_RDWR);
                        free(cs);
                        return;
                }
                cs->front = f;
                cs->fd = ci->connect_fd;
                wait_on_client(cs, true, false);
                pthread_mutex_lock(&s->connections_lock);
                cs->next = s->connections;
                if (cs->next)
                        cs->next->prev = cs;
                s->connections = cs;
                pthread_mutex_unlock(&s->connections_lock);
                *socket_context = cs;
        } else {
                atomic_fetch_sub(&s->counters.connections, 1);
                atomic_fetch_sub(&f->connections, 1);
                cs = *socket_context;
                if (!cs)
                        return;
                /* Unlisted before MHD closes the fd: the reaper and the gate never see a reused number. */
                client_gate_detach(&cs->gate);
                pthread_mutex_lock(&s->connections_lock);
                if (cs->prev)
                        cs->prev->next = cs->next;
                else
                        s->connections = cs->next;
                if (cs->next)
                        cs->next->prev = cs->prev;
                pthread_mutex_unlock(&s->connections_lock);
                free(cs->spare_exchange);
                *socket_context = mfree_ptr(cs);
        }
}

_printf_(2, 0) static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
        char line[512];
        size_t n;

        vsnprintf(line, sizeof(line), fmt, ap);
        n = strlen(line);
        while (n > 0 && line[n - 1] == '\n')
                line[--n] = '\0';
        log_debug("libmicrohttpd: %s", line);
}

/* glibc gives threads up to eight arenas per CPU, and each keeps some of what it once held
 * (after a burst of 64 connections: 16 arenas, 3.4 MiB). One per CPU is as fast here, since
 * a request allocates little. An administrator's own MALLOC_ARENA_MAX or tunable wins. */
static void limit_malloc_arenas(void) {
        const char *tunables = getenv("GLIBC_TUNABLES");
        long cpus;

        if (getenv("MALLOC_ARENA_MAX") || (tunables && strstr(tunables, "arena_max")))
                return;
        cpus = sysconf(_SC_NPROCESSORS_ONLN);
        (void) mallopt(M_ARENA_MAX, (int) MIN(MAX(cpus, 1L), 64L));
}

int server_new(Server **ret, Config *config) {
        Server *s = calloc(1, sizeof(Server));

        if (!s)
                return -ENOMEM;
        s->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->cancel_fd < 0) {
                int r = -errno;
                free(s);
                return r;
        }
        pthread_rwlock_init(&s->config_lock, NULL);
        pthread_mutex_init(&s->connections_lock, NULL);
        limit_malloc_arenas();
        s->config = config;
        *ret = s;
        return 0;
}

int server_start(Server *s, Listener *listeners, size_t n_listeners, char **ret_error) {
        unsigned keepalive_sec, mhd_limit;

        s->fronts = calloc(n_listeners, sizeof(Front));
        if (!s->fronts)
                return -ENOMEM;

        pthread_rwlock_rdlock(&s->config_lock);
        keepalive_sec = keepalive_seconds(s->config);
        mhd_limit = (s->config->max_listener_connections > 0 ?
                     MIN(s->config->max_listener_connections, s->config->max_connections) :
                     s->config->max_connections) + CONNECTION_HEADROOM;
        s->header_bytes_ceiling = s->config->max_header_bytes;
        pthread_rwlock_unlock(&s->config_lock);
        {
                /* Each connection may hold two fds (the client's, the daemon's); keep some spare.
                 * A tunnel's pipes come on top, and without them it copies instead. */
                struct rlimit rl;
                unsigned max_fds = GATED_FDS_MAX;
                int r;

                if (getrlimit(RLIMIT_NOFILE, &rl) >= 0 && rl.rlim_cur < GATED_FDS_MAX)
                        max_fds = (unsigned) rl.rlim_cur;
                r = client_gate_setup(max_fds, on_gate_refusal);
                if (r < 0)
                        return r;
                if (getrlimit(RLIMIT_NOFILE, &rl) >= 0 && rl.rlim_cur != RLIM_INFINITY) {
                        rlim_t spare = 16 + 2 * (rlim_t) n_listeners;
                        unsigned budget = rl.rlim_cur > spare + 2 ?
                                (unsigned) MIN((rl.rlim_cur - spare) / 2 / n_listeners, (rlim_t) UINT_MAX) : 1U;
                        if (budget < mhd_limit) {
                                log_notice("RLIMIT_NOFILE=%llu allows %u connections per listener; more are "
                                           "closed at once.", (unsigned long long) rl.rlim_cur, budget);
                                mhd_limit = budget;
                        }
                }
        }

        for (size_t i = 0; i < n_listeners; i++) {
                Front *f = &s->fronts[i];

                f->server = s;
                f->listen_fd = listeners[i].fd;
                f->name = listeners[i].name;
                /* ITC: without it MHD would shutdown() a socket that systemd still holds. */
                f->daemon = MHD_start_daemon(
                        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
                                MHD_USE_ITC | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG,
                        0, NULL, NULL, exchange_on_request, f,
                        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, f,
                        MHD_OPTION_LISTEN_SOCKET, (MHD_socket) f->listen_fd,
                        MHD_OPTION_URI_LOG_CALLBACK, exchange_on_uri, f,
                        MHD_OPTION_NOTIFY_COMPLETED, exchange_on_completed, f,
                        MHD_OPTION_NOTIFY_CONNECTION, on_connection, f,
                        MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
                        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) CONNECTION_MEMORY(s->header_bytes_ceiling),
                        MHD_OPTION_CONNECTION_TIMEOUT, keepalive_sec,
                        MHD_OPTION_THREAD_STACK_SIZE, (size_t) THREAD_STACK_SIZE,
                        /* Not 1: MHD would answer a missing Host in its own words; the gate
                         * and check_framing() are stricter than MHD's strict mode. */
                        MHD_OPTION_STRICT_FOR_CLIENT, (int) 0,
                        MHD_OPTION_END);
                if (!f->daemon) {
                        if (asprintf(ret_error, "Cannot serve listener '%s' with libmicrohttpd", f->name) < 0)
                                *ret_error = NULL;
                        return -EIO;
                }
                s->n_fronts++;
        }
        return 0;
}

Config *server_swap_config(Server *s, Config *c) {
        Config *old;

        pthread_rwlock_wrlock(&s->config_lock);
        old = s->config;
        s->config = c;
        pthread_rwlock_unlock(&s->config_lock);
        return old;
}

/* Once the last connection is gone, what the threads freed goes back to the system:
 * glibc keeps it in each thread's arena otherwise, and a burst of streams would leave
 * the process large for good. */
static void release_memory_when_idle(Server *s) {
        Counters *k = &s->counters;
        unsigned long served = atomic_load(&k->allowed) + atomic_load(&k->refused) + atomic_load(&k->malformed) +
                atomic_load(&k->failed);

        if (atomic_load(&k->connections) > 0 || served == s->served_at_trim)
                return;
        s->served_at_trim = served;
        (void) malloc_trim(0);
}

unsigned server_reap(Server *s) {
        usec_t now = now_coarse_usec(), header, keepalive;
        unsigned n = 0;

        pthread_rwlock_rdlock(&s->config_lock);
        header = s->config->header_timeout_usec;
        keepalive = s->config->keepalive_usec;
        pthread_rwlock_unlock(&s->config_lock);

        pthread_mutex_lock(&s->connections_lock);
        for (ConnectionState *cs = s->connections; cs; cs = cs->next) {
                /* An idle keep-alive connection has its keep-alive time on top. */
                usec_t allowed = header + (cs->reused && !atomic_load(&cs->in_body) ? keepalive : 0);
                usec_t since;

                if (cs->reaped || cs->fd < 0 || !atomic_load(&cs->waiting_on_client))
                        continue;
                /* Its thread may have started waiting after `now` was taken: not a wait of
                 * "now - since" (which would wrap around), but no wait at all. */
                since = atomic_load(&cs->waiting_since);
                if (since >= now || now - since <= allowed)
                        continue;
                /* MHD's thread sees the end of the stream and closes the connection itself. */
                (void) shutdown(cs->fd, SHUT_RDWR);
                cs->reaped = true;
                n++;
        }
        pthread_mutex_unlock(&s->connections_lock);
        /* Kept daemon connections last as long as an idle client connection. */
        (void) upstream_expire_idle(keepalive);
        release_memory_when_idle(s);
        return n;
}

bool server_alive(Server *s) {
        for (size_t i = 0; i < s->n_fronts; i++)
                /* Takes the daemon's connection lock: a wedged daemon does not answer. */
                if (!MHD_get_daemon_info(s->fronts[i].daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS))
                        return false;
        return true;
}

void server_stop(Server *s, usec_t drain_usec) {
        usec_t deadline = now_usec() + drain_usec;
        uint64_t one = 1;

        for (size_t i = 0; i < s->n_fronts; i++)
                (void) MHD_quiesce_daemon(s->fronts[i].daemon);

        /* Requests in flight may finish; long streams are ended once the drain runs out. */
        while (atomic_load(&s->counters.in_flight) > 0 && now_usec() < deadline)
                (void) poll(NULL, 0, 20);
        (void) !write(s->cancel_fd, &one, sizeof(one));

        for (size_t i = 0; i < s->n_fronts; i++) {
                MHD_stop_daemon(s->fronts[i].daemon);
                s->fronts[i].daemon = NULL;
        }
}

Server *server_free(Server *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < s->n_fronts; i++)
                if (s->fronts[i].daemon)
                        MHD_stop_daemon(s->fronts[i].daemon);
        free(s->fronts);
        safe_close(s->cancel_fd);
        pthread_rwlock_destroy(&s->config_lock);
        pthread_mutex_destroy(&s->connections_lock);
        free(s);
        return NULL;
}
