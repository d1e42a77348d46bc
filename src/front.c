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
/* How long streams and tunnels have to end once told to, when the proxy stops. */
#define STOP_GRACE_USEC (2U * USEC_PER_SEC)

/* How often the loop ends slow clients, closes the daemon connections kept too long, frees
 * spare buffers and runs the caller's tick, while there is anything of that to do. */
#define HOUSEKEEPING_USEC USEC_PER_SEC

/* Runs of libmicrohttpd after each wait of the loop at most: more would keep the daemon
 * sockets' events waiting while MHD always has work, as it has under load. */
#define MHD_RUNS_PER_WAIT 3U

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
                cs->waiting_since = now_coarse_usec();
        cs->in_body = in_body;
        cs->waiting_on_client = waiting;
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

static void on_housekeeping(EventLoop *l, EventTimer *t);

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
                {
                        /* It may be armed for a kept daemon connection's expiry, far off. */
                        usec_t tick = now_coarse_usec() + HOUSEKEEPING_USEC;
                        if (!s->housekeeping.armed || s->housekeeping.deadline > tick)
                                event_loop_timer_arm(s->loop, &s->housekeeping, tick, on_housekeeping);
                }
                LIST_PREPEND(connections, s->connections, cs);
                *socket_context = cs;
        } else {
                atomic_fetch_sub(&s->counters.connections, 1);
                atomic_fetch_sub(&f->connections, 1);
                s->connection_closed = true;
                cs = *socket_context;
                if (!cs)
                        return;
                /* Unlisted before MHD closes the fd: the reaper and the gate never see a reused number. */
                client_gate_detach(&cs->gate);
                LIST_REMOVE(connections, s->connections, cs);
                free(cs->spare_exchange);
                *socket_context = mfree_ptr(cs);
        }
}

/* The gate refused a request (in the loop's thread): the loop drains the connection. */
static int on_gate_linger(ClientGate *g) {
        ConnectionState *cs = container_of(g, ConnectionState, gate);

        return linger_set_add(&cs->front->server->lingering, g->fd);
}

/* At its connection limit MHD stops accepting, and clients would wait in the listen backlog
 * for as long as the connections in (idle keep-alive ones among them) stay: they are taken
 * here and told 503 at once, so that they can try again or elsewhere. */
static void on_listen_overflow(EventLoop *l, int fd, uint32_t events, void *userdata) {
#define BUSY_BODY "{\"message\":\"docker-socket-proxy: too many connections: SOCKET_PROXY_MAX_CONNECTIONS, " \
        "SOCKET_PROXY_MAX_LISTENER_CONNECTIONS or the file descriptor limit (LimitNOFILE=) is reached, try " \
        "again later\"}\n"
#define STRINGIFY(x) #x
#define BUSY_HEAD(length) "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n" \
        "Connection: close\r\nContent-Length: " STRINGIFY(length) "\r\n\r\n"
        static const char busy[] = BUSY_HEAD(197) BUSY_BODY;
        Front *f = userdata;

        _Static_assert(sizeof(BUSY_BODY) - 1 == 197, "Content-Length of the 503 answer");

        for (unsigned i = 0; i < 16; i++) {
                int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

                if (c < 0) {
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                                /* Until a connection closes: the listener stays readable. */
                                event_loop_remove(l, fd);
                                f->overflow_watched = false;
                                f->overflow_blocked = true;
                        }
                        return;
                }
                (void) send(c, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                (void) shutdown(c, SHUT_WR);
                safe_close(c);
        }
}

static void watch_overflow(Server *s) {
        for (size_t i = 0; i < s->n_fronts; i++) {
                Front *f = &s->fronts[i];
                bool full = atomic_load(&f->connections) >= f->connection_limit && !f->overflow_blocked &&
                        !atomic_load(&s->quiesced);

                if (full && !f->overflow_watched)
                        f->overflow_watched = event_loop_add(s->loop, f->listen_fd, EPOLLIN, on_listen_overflow, f) >= 0;
                else if (!full && f->overflow_watched) {
                        event_loop_remove(s->loop, f->listen_fd);
                        f->overflow_watched = false;
                }
        }
}

static void on_cancel(EventLoop *l, int fd, uint32_t events, void *userdata) {
        exchange_end_streams(userdata);
}

/* Nothing to do here: MHD runs after every wait of the loop. */
static void on_mhd_ready(EventLoop *l, int fd, uint32_t events, void *userdata) {
}

/* Requests from other threads, seen after each wait of the loop. */
static void serve_requests(Server *s) {
        unsigned long ping = atomic_load(&s->watchdog_ping);

        if (atomic_load(&s->watchdog_pong) != ping)
                atomic_store(&s->watchdog_pong, ping);
        if (atomic_load(&s->quiesce_requested) && !atomic_load(&s->quiesced)) {
                for (size_t i = 0; i < s->n_fronts; i++)
                        (void) MHD_quiesce_daemon(s->fronts[i].daemon);
                atomic_store(&s->quiesced, true);
        }
}

/* Until libmicrohttpd's next timeout; 0 while it has work it can do without waiting (a
 * connection it has not yet read or written until it would block). */
static usec_t mhd_wait_usec(Server *s) {
        usec_t wait = USEC_INFINITY;

        for (size_t i = 0; i < s->n_fronts; i++) {
                MHD_UNSIGNED_LONG_LONG msec;
                if (MHD_get_timeout(s->fronts[i].daemon, &msec) == MHD_YES)
                        wait = MIN(wait, (usec_t) msec * USEC_PER_MSEC);
        }
        return wait;
}

static void *serve(void *userdata) {
        Server *s = userdata;
        usec_t mhd_wait = mhd_wait_usec(s);

        while (!atomic_load(&s->loop_exit)) {
                int r = event_loop_run_once(s->loop, mhd_wait);

                if (r < 0) {
                        log_error_errno(r, "The event loop failed: %m");
                        break;
                }
                serve_requests(s);
                /* MHD listens again after a connection closed at its limit only in its next
                 * run: there is one at once, or clients would wait for the next event. And a
                 * connection that just answered takes MHD two more runs before it reads the next
                 * request: they come at once too, each saving a wait of the loop that would
                 * return at once (1.5-2 of the 16-16.5 system calls a request made at 1 connection). */
                for (unsigned round = 1;; round++) {
                        if (s->connection_closed)
                                for (size_t i = 0; i < s->n_fronts; i++)
                                        s->fronts[i].overflow_blocked = false;
                        s->connection_closed = false;
                        for (size_t i = 0; i < s->n_fronts; i++)
                                (void) MHD_run(s->fronts[i].daemon);
                        mhd_wait = mhd_wait_usec(s);
                        if (round == MHD_RUNS_PER_WAIT || !(s->connection_closed || mhd_wait == 0))
                                break;
                }
                watch_overflow(s);
        }
        linger_set_clear(&s->lingering);
        return NULL;
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
                r = client_gate_setup(max_fds, on_gate_refusal, on_gate_linger);
                if (r < 0)
                        return r;
                r = event_loop_new(&s->loop, max_fds);
                if (r < 0)
                        return r;
                s->lingering.loop = s->loop;
                r = event_loop_add(s->loop, s->cancel_fd, EPOLLIN | EPOLLET, on_cancel, s);
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
                f->connection_limit = mhd_limit;
                f->name = listeners[i].name;
                /* Run by our loop (serve()): MHD's epoll set is one fd in the loop's. TURBO: no
                 * shutdown() before close(), and no epoll_ctl() for a connection until needed. */
                f->daemon = MHD_start_daemon(
                        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO | MHD_ALLOW_UPGRADE |
                                MHD_USE_ERROR_LOG,
                        0, NULL, NULL, exchange_on_request, f,
                        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, f,
                        MHD_OPTION_LISTEN_SOCKET, (MHD_socket) f->listen_fd,
                        MHD_OPTION_URI_LOG_CALLBACK, exchange_on_uri, f,
                        MHD_OPTION_NOTIFY_COMPLETED, exchange_on_completed, f,
                        MHD_OPTION_NOTIFY_CONNECTION, on_connection, f,
                        MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
                        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) CONNECTION_MEMORY(s->header_bytes_ceiling),
                        MHD_OPTION_CONNECTION_TIMEOUT, keepalive_sec,
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
                {
                        const union MHD_DaemonInfo *di = MHD_get_daemon_info(f->daemon, MHD_DAEMON_INFO_EPOLL_FD);
                        int r = di ? event_loop_add(s->loop, di->epoll_fd, EPOLLIN, on_mhd_ready, f) : -EIO;
                        if (r < 0)
                                return r;
                }
        }
        {
                int r = -pthread_create(&s->loop_thread, NULL, serve, s);
                if (r < 0)
                        return r;
                s->loop_running = true;
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
 * the process large for good. (The spare read buffers are freed just before.) */
static void release_memory_when_idle(Server *s) {
        Counters *k = &s->counters;
        unsigned long served = atomic_load(&k->allowed) + atomic_load(&k->refused) + atomic_load(&k->malformed) +
                atomic_load(&k->failed);

        if (atomic_load(&k->connections) > 0 || served == s->served_at_trim)
                return;
        s->served_at_trim = served;
        (void) malloc_trim(0);
}

/* Ends connections that did not send their request headers in time (slowloris). Returns
 * how many. */
static unsigned reap_slow_clients(Server *s, usec_t header, usec_t keepalive) {
        usec_t now = now_coarse_usec();
        unsigned n = 0;

        for (ConnectionState *cs = s->connections; cs; cs = cs->connections_next) {
                /* An idle keep-alive connection has its keep-alive time on top. */
                usec_t allowed = header + (cs->reused && !cs->in_body ? keepalive : 0);

                /* waiting_since was taken in this thread, on the same clock: never after now. */
                if (cs->reaped || cs->fd < 0 || !cs->waiting_on_client || now - cs->waiting_since <= allowed)
                        continue;
                /* MHD, run next in this loop, sees the end of the stream and closes the connection. */
                (void) shutdown(cs->fd, SHUT_RDWR);
                cs->reaped = true;
                n++;
        }
        return n;
}

static bool has_work(Server *s) {
        Counters *k = &s->counters;

        return atomic_load(&k->connections) > 0 || atomic_load(&k->in_flight) > 0 || atomic_load(&k->tunnels) > 0;
}

/* Runs once a second while anything is open, then once more when the last kept daemon
 * connection is due to close, and not at all when the proxy is idle: an idle host service
 * should not wake the CPU. A new connection arms it again. */
static void on_housekeeping(EventLoop *l, EventTimer *t) {
        Server *s = container_of(t, Server, housekeeping);
        usec_t header, keepalive, next;
        unsigned reaped;
        bool more = false;

        pthread_rwlock_rdlock(&s->config_lock);
        header = s->config->header_timeout_usec;
        keepalive = s->config->keepalive_usec;
        pthread_rwlock_unlock(&s->config_lock);

        reaped = reap_slow_clients(s, header, keepalive);
        if (reaped > 0)
                log_notice("Closed %u connection(s) that did not send their request headers in time.", reaped);
        /* Kept daemon connections last as long as an idle client connection. */
        (void) upstream_expire_idle(keepalive, exchange_forget_idle, l);
        /* With no connection left, no request needs a spare read buffer either. */
        (void) upstream_trim_buffers(atomic_load(&s->counters.connections) == 0);
        release_memory_when_idle(s);
        if (s->tick)
                more = s->tick(s, s->tick_userdata);
        next = more || has_work(s) ? now_coarse_usec() + HOUSEKEEPING_USEC : upstream_idle_deadline(keepalive);
        if (next != USEC_INFINITY)
                event_loop_timer_arm(l, t, next, on_housekeeping);
}

bool server_alive(Server *s) {
        unsigned long asked = atomic_load(&s->watchdog_ping);
        bool answered = atomic_load(&s->watchdog_pong) == asked;

        atomic_store(&s->watchdog_ping, asked + 1);
        event_loop_wake(s->loop);
        return answered;
}

/* Waits, polling, until done() or the deadline. */
static void wait_until(Server *s, bool (*done)(Server *s), usec_t deadline) {
        while (!done(s) && now_usec() < deadline)
                (void) poll(NULL, 0, 10);
}

static bool quiesced(Server *s) {
        return atomic_load(&s->quiesced);
}

static bool requests_done(Server *s) {
        return atomic_load(&s->counters.in_flight) == 0;
}

static bool requests_and_tunnels_done(Server *s) {
        return requests_done(s) && atomic_load(&s->counters.tunnels) == 0;
}

static void stop_loop(Server *s) {
        if (!s->loop_running)
                return;
        atomic_store(&s->loop_exit, true);
        event_loop_wake(s->loop);
        (void) pthread_join(s->loop_thread, NULL);
        s->loop_running = false;
        /* MHD refuses to stop with suspended connections: they are closed instead. */
        exchange_resume_all(s);
}

void server_stop(Server *s, usec_t drain_usec) {
        usec_t deadline = now_usec() + drain_usec;
        uint64_t one = 1;

        if (s->loop_running) {
                atomic_store(&s->quiesce_requested, true);
                event_loop_wake(s->loop);
                wait_until(s, quiesced, now_usec() + USEC_PER_SEC);
        }

        /* Requests in flight may finish; long streams and tunnels are ended once the drain
         * runs out, and are given a little more time to go. */
        wait_until(s, requests_done, deadline);
        (void) !write(s->cancel_fd, &one, sizeof(one));
        wait_until(s, requests_and_tunnels_done, now_usec() + STOP_GRACE_USEC);
        stop_loop(s);

        for (size_t i = 0; i < s->n_fronts; i++) {
                MHD_stop_daemon(s->fronts[i].daemon);
                s->fronts[i].daemon = NULL;
        }
}

Server *server_free(Server *s) {
        if (!s)
                return NULL;
        stop_loop(s);
        for (size_t i = 0; i < s->n_fronts; i++)
                if (s->fronts[i].daemon)
                        MHD_stop_daemon(s->fronts[i].daemon);
        event_loop_free(s->loop);
        (void) upstream_trim_buffers(true);
        free(s->fronts);
        safe_close(s->cancel_fd);
        pthread_rwlock_destroy(&s->config_lock);
        free(s);
        return NULL;
}
