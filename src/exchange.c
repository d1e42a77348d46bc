/* SPDX-License-Identifier: MIT */
/* One request: read its head, decide it, forward it to the daemon, and answer with the
 * daemon's response, our refusal or a tunnel. It runs in the event loop's thread and never
 * blocks: while the daemon's socket is not ready, the connection is suspended, and its
 * readiness resumes it. Tunnels get a thread of their own. */
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>

#include "audit.h"
#include "event-loop.h"
#include "fd-util.h"
#include "front-internal.h"
#include "http-util.h"
#include "log.h"
#include "tunnel.h"
#include "upstream.h"

/* How much of the daemon's body each read hands to MHD. MHD calloc()s the block for each
 * response, so an open stream holds all of it: up to 256 KiB for a body of known length or a
 * tar stream (save, export, archive); 16 KiB for Docker's raw and multiplexed streams (logs
 * can be large); 4 KiB for the other streams (events, progress, stats: small JSON pieces,
 * and thousands may be open). */
#define RESPONSE_BLOCK_MIN (1U * 1024U)
#define RESPONSE_BLOCK_MAX (256U * 1024U)
#define RESPONSE_BLOCK_DOCKER_STREAM (16U * 1024U)
#define RESPONSE_BLOCK_STREAM (4U * 1024U)
#define MESSAGE_MAX 1024U
/* A refused request's body up to this size is read and dropped so that the client, still
 * writing it, gets our answer instead of a broken pipe; larger ones close the connection. */
#define REFUSED_BODY_DISCARD_MAX (1024U * 1024U)
/* An upgrade request's body (exec start's JSON) goes to the daemon in one write with its
 * head: bytes arriving after the daemon took the connection over would become stdin. A
 * chunked body up to this size is held back too, until MHD has checked its framing, and is
 * sent with a Content-Length: a bad chunk then never reaches the daemon. */
#define UPGRADE_BODY_MAX (64U * 1024U)

typedef enum ExchangeState {
        EXCHANGE_NEW,        /* headers received, nothing decided yet */
        EXCHANGE_REFUSING,   /* refused: the body is dropped, the answer comes at its end */
        EXCHANGE_FORWARDING, /* allowed: the request goes to the daemon */
        EXCHANGE_DISCARDING, /* the daemon failed while the body came in: answer at its end */
        EXCHANGE_AWAITING_HEAD, /* the request is out: the daemon's answer is awaited */
        EXCHANGE_ANSWERED,   /* a response is queued */
} ExchangeState;

/* What a suspended exchange waits for. */
typedef enum Wait {
        WAIT_NONE,
        WAIT_DAEMON_WRITABLE,
        WAIT_DAEMON_READABLE,
} Wait;

/* One request, from its request line to its completion. */
typedef struct Exchange {
        Front *front;
        ConnectionState *cs; /* NULL if the connection has none */
        struct MHD_Connection *connection;
        ExchangeState state;
        Wait wait;
        LIST_FIELDS(struct Exchange, suspended); /* in Server.suspended while waiting */
        EventTimer timer;    /* bounds a wait on the daemon (SOCKET_PROXY_TIMEOUT) */
        usec_t head_deadline;
        bool timed_out;
        bool writable_watched; /* EPOLLOUT is among the daemon socket's events */
        bool client_watched;   /* the client's socket is watched for its hang-up (streams) */
        bool client_gone;
        char *raw_target;
        const char *uri_at; /* where MHD's request line holds the target (see exchange_begin) */
        char *method; /* a copy: logged after MHD has reset the request's memory */
        HttpTarget target;
        RequestSettings settings; /* taken when the request is decided, used until its answer */
        Verdict verdict;
        Peer peer;
        int client_fd;
        Upstream up;
        bool chunked_body;
        bool upgrade;      /* the client asked to switch protocols (attach, exec, BuildKit) */
        bool upgrade_header; /* an Upgrade header: the gate reads no further, so no request may follow */
        const char *upgrade_protocol;
        bool in_flight;
        bool timeout_lifted; /* MHD's idle timeout is off while the daemon has the request */
        bool tunnel_logged;
        bool poison;       /* serve nothing more on this connection once answered */
        char *retry_head;  /* a GET or HEAD on a kept daemon connection: its head, to send again */
        size_t retry_head_size;
        /* Bytes for the daemon that its socket did not take yet; or, while holding, an upgrade
         * request's head and body (or a small chunked one's), sent whole at the body's end. */
        char *out;
        size_t out_size, out_sent, out_head_size;
        bool holding;
        bool sent_any;     /* a byte of the request reached this daemon connection */
        bool last_chunk_queued;
        struct MHD_UpgradeResponseHandle *urh; /* a tunnel: its thread's */
        int tunnel_client;
        char *tunnel_extra;  /* what the client sent past the upgrade request */
        size_t tunnel_extra_size;
        unsigned status;
        char error[MESSAGE_MAX];
        usec_t started;
        unsigned long long bytes_in, bytes_out;
} Exchange;

static EventLoop *loop_of(const Exchange *x) {
        return x->front->server->loop;
}

/* The daemon socket's events: EPOLLOUT only while a send waits, since every read the daemon
 * makes would report it. */
#define DAEMON_EVENTS (EPOLLIN | EPOLLRDHUP | EPOLLET)

static void exchange_resume(Exchange *x) {
        EventLoop *l = loop_of(x);

        if (x->wait == WAIT_NONE)
                return;
        if (x->writable_watched && event_loop_modify(l, x->up.fd, DAEMON_EVENTS) >= 0)
                x->writable_watched = false;
        x->wait = WAIT_NONE;
        event_loop_timer_disarm(l, &x->timer);
        LIST_REMOVE(suspended, x->front->server->suspended, x);
        MHD_resume_connection(x->connection);
}

static void on_wait_timeout(EventLoop *l, EventTimer *t) {
        Exchange *x = container_of(t, Exchange, timer);

        x->timed_out = true;
        exchange_resume(x);
}

/* MHD calls the exchange again once exchange_resume() ran: when the daemon's socket is
 * ready, the deadline passed (x->timed_out), the client hung up or the proxy stops. */
static void exchange_suspend(Exchange *x, Wait wait, usec_t deadline) {
        EventLoop *l = loop_of(x);

        if (x->wait != WAIT_NONE)
                return; /* already: libmicrohttpd may call us once more in the same run */

        if (wait == WAIT_DAEMON_WRITABLE && !x->writable_watched &&
            event_loop_modify(l, x->up.fd, DAEMON_EVENTS | EPOLLOUT) >= 0)
                x->writable_watched = true;
        x->timed_out = false;
        if (deadline != USEC_INFINITY)
                event_loop_timer_arm(l, &x->timer, deadline, on_wait_timeout);
        x->wait = wait;
        LIST_PREPEND(suspended, x->front->server->suspended, x);
        MHD_suspend_connection(x->connection);
}

/* The daemon's socket took no more of the request: wait until it takes more, for
 * SOCKET_PROXY_TIMEOUT at most (each time it takes some). */
static void await_daemon_reading(Exchange *x) {
        exchange_suspend(x, WAIT_DAEMON_WRITABLE, now_coarse_usec() + x->settings.timeout_usec);
}

static void on_daemon_ready(EventLoop *l, int fd, uint32_t events, void *userdata) {
        Exchange *x = userdata;
        uint32_t wanted = x->wait == WAIT_DAEMON_WRITABLE ? EPOLLOUT :
                x->wait == WAIT_DAEMON_READABLE ? EPOLLIN | EPOLLRDHUP : 0;

        /* Others are edges left over from what the exchange already read or sent. */
        if (events & (wanted | EPOLLHUP | EPOLLERR))
                exchange_resume(x);
}

static void on_client_hangup(EventLoop *l, int fd, uint32_t events, void *userdata) {
        Exchange *x = userdata;

        x->client_gone = true;
        event_loop_remove(l, fd);
        x->client_watched = false;
        exchange_resume(x);
}

/* A kept daemon connection that becomes readable was closed by the daemon, unless the event
 * is an edge left from its last response. */
static void on_idle_daemon_event(EventLoop *l, int fd, uint32_t events, void *userdata) {
        char byte;

        if (!(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) &&
            recvfrom(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT, NULL, NULL) < 0 && errno == EAGAIN)
                return;
        event_loop_forget(l, fd);
        (void) upstream_drop_idle(fd);
}

void exchange_forget_idle(int fd, void *userdata) {
        event_loop_forget(userdata, fd);
}

static void daemon_close(Exchange *x) {
        if (x->up.fd >= 0)
                event_loop_forget(loop_of(x), x->up.fd);
        x->writable_watched = false;
        upstream_done(&x->up);
}

static int daemon_connect(Exchange *x, bool reuse) {
        int r = upstream_connect(&x->up, x->settings.socket_path, reuse);

        if (r < 0)
                return r;
        if (x->up.reused)
                event_loop_retarget(loop_of(x), x->up.fd, on_daemon_ready, x);
        else {
                r = event_loop_add(loop_of(x), x->up.fd, DAEMON_EVENTS, on_daemon_ready, x);
                if (r < 0)
                        upstream_done(&x->up);
        }
        x->sent_any = false;
        return r;
}

/* A kept connection turned out closed by the daemon: a new one, not from the idle ones. */
static int daemon_reconnect(Exchange *x) {
        daemon_close(x);
        return daemon_connect(x, false);
}

/* Sends what is left in x->out. 0 once it is all out, -EAGAIN, or -errno. */
static int flush_out(Exchange *x) {
        while (x->out_sent < x->out_size) {
                struct iovec v = { .iov_base = x->out + x->out_sent, .iov_len = x->out_size - x->out_sent };
                ssize_t k = upstream_send(&x->up, &v, 1);

                if (k < 0)
                        return (int) k;
                x->sent_any = true;
                x->out_sent += (size_t) k;
        }
        x->out = mfree_ptr(x->out);
        x->out_size = x->out_sent = 0;
        return 0;
}

/* Sends what is kept for the daemon. When its socket takes no more, waits for it and
 * returns -EINPROGRESS (MHD keeps what comes next until then), or -ETIMEDOUT once that wait
 * ran out. */
static int flush_or_await(Exchange *x) {
        int r = flush_out(x);

        if (r != -EAGAIN)
                return r;
        if (x->timed_out)
                return -ETIMEDOUT;
        await_daemon_reading(x);
        return -EINPROGRESS;
}

/* Sends iov as far as the daemon's socket takes it now, and keeps the rest in x->out (which
 * must be empty) for flush_out(). 0 when all is out, -EAGAIN when some is kept, or -errno. */
static int send_or_keep(Exchange *x, const struct iovec *iov, size_t n) {
        size_t total = 0, skip, at = 0;
        ssize_t k;

        for (size_t i = 0; i < n; i++)
                total += iov[i].iov_len;
        k = upstream_send(&x->up, iov, n);
        if (k < 0 && k != -EAGAIN)
                return (int) k;
        if (k > 0)
                x->sent_any = true;
        skip = k > 0 ? (size_t) k : 0;
        if (skip == total)
                return 0;
        x->out = malloc(total - skip);
        if (!x->out)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                size_t len = iov[i].iov_len, from = MIN(skip, len);

                memcpy(x->out + at, (const char *) iov[i].iov_base + from, len - from);
                at += len - from;
                skip -= from;
        }
        x->out_size = at;
        x->out_sent = 0;
        return -EAGAIN;
}

static int out_append(Exchange *x, const void *data, size_t size) {
        char *p = realloc(x->out, x->out_size + size);

        if (!p)
                return -ENOMEM;
        memcpy(p + x->out_size, data, size);
        x->out = p;
        x->out_size += size;
        return 0;
}

static Exchange *exchange_free(Exchange *x) {
        EventLoop *l;

        if (!x)
                return NULL;
        l = loop_of(x);
        event_loop_timer_disarm(l, &x->timer);
        if (x->wait != WAIT_NONE)
                LIST_REMOVE(suspended, x->front->server->suspended, x);
        x->wait = WAIT_NONE;
        if (x->client_watched)
                event_loop_remove(l, x->client_fd);
        daemon_close(x);
        http_target_done(&x->target);
        free(x->raw_target);
        free(x->method);
        free(x->retry_head);
        free(x->out);
        free(x->tunnel_extra);
        /* Kept for the connection's next request: an Exchange is too large for malloc's
         * per-thread cache, and each new one made malloc sort its free lists. */
        if (x->cs && !x->cs->spare_exchange)
                x->cs->spare_exchange = x;
        else
                free(x);
        return NULL;
}

/* The raw request-target, before MHD decodes it or splits off the query. */
void *exchange_on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
        Front *f = cls;
        ConnectionState *cs = connection_state(c);
        Exchange *x = cs && cs->spare_exchange ? TAKE_PTR(cs->spare_exchange) : malloc(sizeof(Exchange));

        if (!x)
                return NULL;
        *x = (Exchange) { .front = f, .cs = cs, .connection = c };
        x->up = UPSTREAM_NULL;
        x->client_fd = -EBADF;
        x->tunnel_client = -EBADF;
        x->started = now_usec();
        x->raw_target = strdup(uri);
        if (!x->raw_target)
                return exchange_free(x);
        x->uri_at = uri;
        return x;
}

static size_t json_escape(char *out, size_t size, const char *s) {
        size_t n = 0;

        for (; *s && n + 7 < size; s++) {
                unsigned char ch = *s;
                if (ch == '"' || ch == '\\') {
                        out[n++] = '\\';
                        out[n++] = (char) ch;
                } else if (ch < 0x20 || ch >= 0x7f)
                        n += (size_t) snprintf(out + n, size - n, "\\u%04x", ch);
                else
                        out[n++] = (char) ch;
        }
        out[n] = '\0';
        return n;
}

/* Our own answers look like the daemon's errors, so that the CLI prints them. */
static enum MHD_Result respond_json(Exchange *x, struct MHD_Connection *c, unsigned status, const char *message,
                                    bool close) {
        char body[MESSAGE_MAX * 6 + 64], escaped[MESSAGE_MAX * 6];
        struct MHD_Response *r;
        enum MHD_Result ret;
        int n;

        json_escape(escaped, sizeof(escaped), message);
        n = snprintf(body, sizeof(body), "{\"message\":\"docker-socket-proxy: %s\"}\n", escaped);
        r = MHD_create_response_from_buffer((size_t) n, body, MHD_RESPMEM_MUST_COPY);
        if (!r)
                return MHD_NO;
        (void) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        /* After a malformed request the framing of what follows is unknown: close. A refusal
         * closes too (on_completed), but without the header: docker 20.10 takes
         * "Connection: close" on an answer to an upgrade as the upgrade itself. */
        if (close)
                (void) MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
        ret = MHD_queue_response(c, status, r);
        MHD_destroy_response(r);
        if (x) {
                x->status = status;
                x->state = EXCHANGE_ANSWERED;
                x->poison = status == 400 || status == 403 || status == 414 || status == 503;
        }
        return ret;
}

static void audit(Exchange *x, AuditKind kind, const char *reason) {
        if (!audit_enabled(kind))
                return;

        AuditRecord r = {
                .kind = kind,
                .method = x->method,
                .path = x->raw_target,
                .listener = x->front->name,
                        .rule = kind == AUDIT_REFUSED || kind == AUDIT_ALLOWED || kind == AUDIT_TUNNEL ? x->verdict.rule : NULL,
                .reason = reason,
                .status = x->status,
                .peer = &x->peer,
                .duration_usec = now_usec() - x->started,
                .bytes_in = x->bytes_in,
                .bytes_out = x->bytes_out,
        };
        _cleanup_free_ char *path = NULL;
        const char *q = strchr(x->raw_target, '?');

        if (q) {
                path = strndup(x->raw_target, q - x->raw_target);
                r.path = path ?: x->raw_target;
                r.query = q + 1;
        }
        audit_log(&r);
}

static enum MHD_Result refuse_malformed(Exchange *x, struct MHD_Connection *c, const char *why) {
        Counters *k = &x->front->server->counters;

        atomic_fetch_add(&k->malformed, 1);
        x->status = 400;
        audit(x, AUDIT_MALFORMED, why);
        return respond_json(x, c, 400, why, true);
}

typedef struct HeaderScan {
        unsigned content_length_count;
        unsigned transfer_encoding_count;
        unsigned host_count;
        bool chunked;
        bool bad;
        const char *bad_reason;
        const char *connection;
        const char *upgrade;
} HeaderScan;

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        HeaderScan *s = cls;

        if (!http_is_token(key)) {
                s->bad = true;
                s->bad_reason = "a header name is not a valid token";
                return MHD_NO;
        }
        if (!http_is_field_value(value ?: "")) {
                s->bad = true;
                s->bad_reason = "a header value holds a control byte";
                return MHD_NO;
        }
        if (strcaseeq(key, "Content-Length")) {
                s->content_length_count++;
                for (const char *p = value; *p; p++)
                        if (*p < '0' || *p > '9') {
                                s->bad = true;
                                s->bad_reason = "Content-Length is not a number";
                        }
        } else if (strcaseeq(key, "Transfer-Encoding")) {
                s->transfer_encoding_count++;
                s->chunked = strcaseeq(value, "chunked");
        } else if (strcaseeq(key, "Host"))
                s->host_count++;
        else if (strcaseeq(key, "Connection"))
                s->connection = value;
        else if (strcaseeq(key, "Upgrade"))
                s->upgrade = value;
        return MHD_YES;
}

/* Framing the daemon could read differently from us is refused before anything else. */
static const char *check_framing(const HeaderScan *s, const char *version) {
        if (s->bad)
                return s->bad_reason;
        if (s->content_length_count > 1)
                return "the request has several Content-Length headers";
        if (s->transfer_encoding_count > 1 || (s->transfer_encoding_count == 1 && !s->chunked))
                return "the only Transfer-Encoding accepted is a single 'chunked'";
        if (s->content_length_count > 0 && s->transfer_encoding_count > 0)
                return "the request has both Content-Length and Transfer-Encoding";
        if (s->host_count > 1)
                return "the request has several Host headers";
        if (s->host_count == 0 && streq(version, MHD_HTTP_VERSION_1_1))
                return "an HTTP/1.1 request needs a Host header"; /* RFC 9112, 3.2 */
        return NULL;
}

typedef struct HeadBuilder {
        char *buf;
        size_t size, allocated;
        const char *connection; /* the client's Connection header: the tokens it lists are hop-by-hop */
        bool oom;
} HeadBuilder;

static void head_append(HeadBuilder *h, const char *s, size_t n) {
        if (h->oom)
                return;
        if (h->size + n + 1 > h->allocated) {
                /* From 512 bytes up: most heads then fit in malloc's per-thread cache. */
                size_t a = MAX(MAX(h->allocated * 2, h->size + n + 1), (size_t) 512);
                char *p = realloc(h->buf, a);
                if (!p) {
                        h->oom = true;
                        return;
                }
                h->buf = p;
                h->allocated = a;
        }
        memcpy(h->buf + h->size, s, n);
        h->size += n;
        h->buf[h->size] = '\0';
}

static void head_appendf(HeadBuilder *h, const char *a, const char *b, const char *c) {
        head_append(h, a, strlen(a));
        head_append(h, b, strlen(b));
        head_append(h, c, strlen(c));
}

static enum MHD_Result add_forwarded_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
        HeadBuilder *h = cls;

        if (http_header_is_hop_by_hop(key) || strcaseeq(key, "Content-Length") || strcaseeq(key, "Expect") ||
            http_list_has_token(h->connection, key))
                return MHD_YES;
        head_append(h, key, strlen(key));
        head_append(h, ": ", 2);
        head_append(h, value ?: "", strlen(value ?: ""));
        head_append(h, "\r\n", 2);
        return MHD_YES;
}

static int build_request_head(struct MHD_Connection *c, const Exchange *x, const HeaderScan *scan, HeadBuilder *h) {
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

        h->connection = scan->connection;
        head_appendf(h, x->method, " ", x->raw_target);
        head_append(h, " HTTP/1.1\r\n", 11);
        MHD_get_connection_values(c, MHD_HEADER_KIND, add_forwarded_header, h);
        if (scan->host_count == 0)
                head_append(h, "Host: docker\r\n", 14); /* the daemon refuses HTTP/1.1 without Host */
        /* Otherwise HTTP/1.1's keep-alive: the connection may serve the next request. */
        if (x->upgrade)
                head_appendf(h, "Connection: Upgrade\r\nUpgrade: ", x->upgrade_protocol, "\r\n");
        if (cl)
                head_appendf(h, "Content-Length: ", cl, "\r\n");
        else if (x->chunked_body)
                head_append(h, "Transfer-Encoding: chunked\r\n", 28);
        head_append(h, "\r\n", 2);
        return h->oom ? -ENOMEM : 0;
}

static const char *errno_explain(int r) {
        switch (-r) {
        case ENOENT:
                return "the socket does not exist (is the daemon running?)";
        case ECONNREFUSED:
                return "the daemon does not accept connections (is it running?)";
        case EACCES:
        case EPERM:
                return "permission denied";
        case ETIMEDOUT:
                return "it did not answer in time";
        case ECONNRESET:
                return "it closed the connection";
        case EBADMSG:
                return "its answer is not valid HTTP";
        case EPROTO:
                return "it switched protocols on a request that did not ask for it";
        default:
                return strerror(-r);
        }
}

/* Answers x->status with x->error once the (small) body is read; a body too large to drop
 * gets the answer now, and the connection closes under it. */
static enum MHD_Result refuse_later(Exchange *x, struct MHD_Connection *c) {
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

        if (x->chunked_body || (cl && strtoull(cl, NULL, 10) > REFUSED_BODY_DISCARD_MAX))
                return respond_json(x, c, x->status, x->error, true);
        x->state = EXCHANGE_REFUSING;
        return MHD_YES;
}

static enum MHD_Result daemon_failed(Exchange *x, struct MHD_Connection *c, const RequestSettings *rs, int r,
                                     bool at_connect) {
        Counters *k = &x->front->server->counters;
        unsigned status = r == -ETIMEDOUT ? 504 : 502;
        char msg[MESSAGE_MAX];

        atomic_fetch_add(&k->failed, 1);
        if (r == -EMFILE || r == -ENFILE) {
                status = 503;
                snprintf(msg, sizeof(msg), "the proxy has no file descriptor left for a connection to the Docker "
                         "daemon (RLIMIT_NOFILE); try again later");
        } else if (at_connect && (r == -EACCES || r == -EPERM)) {
                char hint[768];
                upstream_describe_access(rs->socket_path, hint, sizeof(hint));
                snprintf(msg, sizeof(msg), "cannot connect to the Docker daemon at %s: permission denied; %s",
                         rs->socket_path, hint);
        } else if (at_connect)
                snprintf(msg, sizeof(msg), "cannot connect to the Docker daemon at %s: %s", rs->socket_path,
                         errno_explain(r));
        else
                snprintf(msg, sizeof(msg), "the Docker daemon at %s failed to answer: %s", rs->socket_path,
                         errno_explain(r));

        daemon_close(x);
        x->status = status;
        audit(x, AUDIT_FAILED, msg);
        snprintf(x->error, sizeof(x->error), "%s", msg);
        if (at_connect)
                return refuse_later(x, c);
        return respond_json(x, c, status, msg, false);
}

/* POST /containers/{id}/attach: a hijack in every API version. */
static bool is_attach(const char *method, const char *path) {
        const char *p;

        if (!streq(method, "POST") || strncmp(path, "/containers/", 12) != 0)
                return false;
        p = strchr(path + 12, '/');
        return p && p != path + 12 && streq(p, "/attach");
}

/* Past a connection limit? Then x->error says which, for a 503. */
static bool over_limits(Exchange *x, const RequestSettings *rs) {
        unsigned long total = atomic_load(&x->front->server->counters.connections);
        unsigned long here = atomic_load(&x->front->connections);
        const char *variable = NULL;
        unsigned limit = 0;

        if (total > rs->max_connections) {
                variable = "SOCKET_PROXY_MAX_CONNECTIONS";
                limit = rs->max_connections;
        } else if (rs->max_listener_connections > 0 && here > rs->max_listener_connections) {
                variable = "SOCKET_PROXY_MAX_LISTENER_CONNECTIONS";
                limit = rs->max_listener_connections;
        }
        if (!variable)
                return false;
        snprintf(x->error, sizeof(x->error), "too many connections: %s=%u is reached, try again later", variable,
                 limit);
        x->verdict.rule = variable;
        return true;
}

static enum MHD_Result exchange_begin(Exchange *x, struct MHD_Connection *c, const char *method,
                                      const char *version) {
        Server *s = x->front->server;
        Counters *k = &s->counters;
        const union MHD_ConnectionInfo *ci;
        _cleanup_free_ char *head_buf = NULL;
        HeadBuilder head = {};
        HeaderScan scan = {};
        RequestSettings *rs = &x->settings;
        char explain[512];
        const char *bad, *cl;
        bool repeatable;
        int r;

        ConnectionState *cs = connection_state(c);
        if (cs && cs->poisoned)
                return MHD_NO; /* pipelined after a refusal: never forwarded */

        x->method = strdup(method);
        if (!x->method)
                return MHD_NO;
        ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci) {
                x->client_fd = ci->connect_fd;
                if (cs && !cs->have_peer) {
                        (void) peer_from_fd(x->client_fd, &cs->peer);
                        cs->have_peer = true;
                }
                if (cs)
                        x->peer = cs->peer;
                else
                        (void) peer_from_fd(x->client_fd, &x->peer);
        }

        settings_snapshot(s, rs);
        if (over_limits(x, rs)) {
                atomic_fetch_add(&k->refused, 1);
                x->status = 503;
                audit(x, AUDIT_REFUSED, x->error);
                return respond_json(x, c, 503, x->error, true);
        }

        if (!streq(version, MHD_HTTP_VERSION_1_1) && !streq(version, MHD_HTTP_VERSION_1_0))
                return refuse_malformed(x, c, "only HTTP/1.0 and HTTP/1.1 are spoken here");
        if (!http_is_token(method))
                return refuse_malformed(x, c, "the method is not a valid token");
        /* libmicrohttpd <= 0.9.77 cuts the target at a NUL byte; its version string follows the
         * target's end and one space in the same request-line buffer, so a target longer
         * than the string we were given held a NUL. */
#if MHD_VERSION <= 0x00097700
        if (x->uri_at && version > x->uri_at && (size_t) (version - 1 - x->uri_at) != strlen(x->raw_target))
                return refuse_malformed(x, c, "the request-target holds a NUL byte");
#endif

        MHD_get_connection_values(c, MHD_HEADER_KIND, scan_header, &scan);
        bad = check_framing(&scan, version);
        if (bad)
                return refuse_malformed(x, c, bad);
        x->chunked_body = scan.chunked;
        x->upgrade = scan.upgrade && http_list_has_token(scan.connection, "upgrade");
        x->upgrade_protocol = scan.upgrade;
        x->upgrade_header = scan.upgrade != NULL;
        if (x->upgrade && !streq(version, MHD_HTTP_VERSION_1_1))
                return refuse_malformed(x, c, "switching protocols needs HTTP/1.1");

        r = http_target_parse(x->raw_target, &x->target);
        if (r == -ENOMEM)
                return MHD_NO;
        if (r == TARGET_TOO_LONG) {
                atomic_fetch_add(&k->malformed, 1);
                x->status = 414;
                audit(x, AUDIT_MALFORMED, target_error_to_string(r));
                return respond_json(x, c, 414, target_error_to_string(r), true);
        }
        if (r > 0)
                return refuse_malformed(x, c, target_error_to_string(r));

        policy_decide(&rs->policy, method, x->target.path, &x->verdict);
        if (!x->verdict.allowed) {
                atomic_fetch_add(&k->refused, 1);
                verdict_explain(&x->verdict, explain, sizeof(explain));
                x->status = 403;
                audit(x, AUDIT_REFUSED, explain);
                snprintf(x->error, sizeof(x->error), "refused %s %s: %s", method, x->raw_target, explain);
                return refuse_later(x, c);
        }

        if (!x->upgrade && is_attach(method, x->target.path))
                /* The old 200-then-raw hijack cannot carry stdin through a proxy: say so
                 * instead of leaving the client waiting. */
                return refuse_malformed(x, c, "attach needs 'Connection: Upgrade' and 'Upgrade: tcp' (the "
                                              "hijack without an upgrade cannot pass a proxy)");

        atomic_fetch_add(&k->allowed, 1);
        atomic_fetch_add(&k->in_flight, 1);
        x->in_flight = true;
        x->state = EXCHANGE_FORWARDING;

        /* From here the connection waits on the daemon, not on the client: MHD's idle timeout
         * must not count that time. It is restored when the request completes. */
        (void) MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0U);
        x->timeout_lifted = true;

        /* A kept daemon connection serves any request but an upgrade (which ends it). If the
         * daemon closed it just before, only a request that may safely go twice (GET, HEAD,
         * no body) is sent again on a new one; others get 502. */
        repeatable = !x->upgrade && !x->chunked_body && (streq(method, "GET") || streq(method, "HEAD")) &&
                (!(cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH)) ||
                 streq(cl, "0"));
        r = daemon_connect(x, !x->upgrade);
        if (r < 0)
                return daemon_failed(x, c, rs, r, true);

        r = build_request_head(c, x, &scan, &head);
        head_buf = head.buf;
        if (r < 0)
                return MHD_NO;
        if (x->upgrade || x->chunked_body) {
                x->out = TAKE_PTR(head_buf);
                x->out_size = x->out_head_size = head.size;
                x->holding = true;
                return MHD_YES;
        }
        r = send_or_keep(x, &(struct iovec) { .iov_base = head.buf, .iov_len = head.size }, 1);
        if (!x->sent_any && upstream_stale(&x->up, r)) {
                /* Nothing reached the daemon: any request may go again. */
                r = daemon_reconnect(x);
                if (r >= 0)
                        r = send_or_keep(x, &(struct iovec) { .iov_base = head.buf, .iov_len = head.size }, 1);
        }
        if (r < 0 && r != -EAGAIN)
                return daemon_failed(x, c, rs, r, true);
        if (x->up.reused && repeatable) {
                x->retry_head = TAKE_PTR(head_buf);
                x->retry_head_size = head.size;
        }
        if (r == -EAGAIN)
                await_daemon_reading(x);
        return MHD_YES;
}

/* The daemon stopped reading the request body: the rest is dropped, and 502 comes at its end. */
static void body_failed(Exchange *x, int r) {
        snprintf(x->error, sizeof(x->error), "the Docker daemon stopped reading the request body: %s",
                 errno_explain(r));
        x->state = EXCHANGE_DISCARDING;
}

/* The held request (head, then body) grew too large to hold: it goes now, its body so far as
 * the first chunk. */
static int release_held_as_chunked(Exchange *x) {
        size_t body = x->out_size - x->out_head_size;
        char head[32], *p;
        int n = snprintf(head, sizeof(head), "%zx\r\n", body);

        p = malloc(x->out_size + (size_t) n + 2);
        if (!p)
                return -ENOMEM;
        memcpy(p, x->out, x->out_head_size);
        memcpy(p + x->out_head_size, head, (size_t) n);
        memcpy(p + x->out_head_size + n, x->out + x->out_head_size, body);
        memcpy(p + x->out_size + n, "\r\n", 2);
        free(x->out);
        x->out = p;
        x->out_size += (size_t) n + 2;
        x->holding = false;
        return 0;
}

static enum MHD_Result forward_body(Exchange *x, const char *data, size_t *size) {
        int r;

        if (x->state == EXCHANGE_FORWARDING && x->holding) {
                size_t body = x->out_size - x->out_head_size;

                if (body + *size > UPGRADE_BODY_MAX && x->upgrade) {
                        snprintf(x->error, sizeof(x->error), "the body of a request that switches protocols may "
                                 "hold at most %u bytes", UPGRADE_BODY_MAX);
                        x->status = 413;
                        x->state = EXCHANGE_REFUSING;
                } else if (body + *size <= UPGRADE_BODY_MAX) {
                        if (out_append(x, data, *size) < 0)
                                return MHD_NO;
                } else if (release_held_as_chunked(x) < 0)
                        /* Too large to hold back: stream it (the head, what we have, then the rest). */
                        return MHD_NO;
        }
        if (x->state == EXCHANGE_FORWARDING && !x->holding) {
                char head[32];
                struct iovec v[3];
                size_t n = 0;

                r = flush_or_await(x);
                if (r == -EINPROGRESS)
                        return MHD_YES;
                if (r >= 0 && x->chunked_body) {
                        v[n++] = (struct iovec) { .iov_base = head,
                                                  .iov_len = (size_t) snprintf(head, sizeof(head), "%zx\r\n", *size) };
                        v[n++] = (struct iovec) { .iov_base = (void *) data, .iov_len = *size };
                        v[n++] = (struct iovec) { .iov_base = (void *) "\r\n", .iov_len = 2 };
                } else if (r >= 0)
                        v[n++] = (struct iovec) { .iov_base = (void *) data, .iov_len = *size };
                if (r >= 0)
                        r = send_or_keep(x, v, n);
                if (r == -EAGAIN)
                        await_daemon_reading(x);
                else if (r < 0)
                        body_failed(x, r);
        }
        x->bytes_in += *size;
        *size = 0;
        return MHD_YES;
}

static ssize_t read_response_body(void *cls, uint64_t pos, char *buf, size_t max) {
        Exchange *x = cls;
        ssize_t n;

        if (x->wait != WAIT_NONE)
                return 0; /* suspended: called again once resumed */
        if (x->front->server->cancelling)
                n = -ECANCELED;
        else if (x->client_gone)
                n = -EPIPE;
        else
                n = upstream_read_body(&x->up, buf, max);
        if (n == -EAGAIN) {
                /* A stream waits for the daemon. MHD does not watch a suspended connection's
                 * client, so we do: a client that leaves ends the stream. */
                if (!x->client_watched && x->client_fd >= 0 &&
                    event_loop_add(loop_of(x), x->client_fd, EPOLLRDHUP | EPOLLET, on_client_hangup, x) >= 0)
                        x->client_watched = true;
                exchange_suspend(x, WAIT_DAEMON_READABLE, USEC_INFINITY);
                return 0;
        }
        if (n > 0) {
                x->bytes_out += (unsigned long long) n;
                return n;
        }
        if (n == 0)
                return MHD_CONTENT_READER_END_OF_STREAM;
        if (n == -EPIPE)
                log_debug("Client went away during %s %s on '%s', closing the daemon connection.", x->method,
                          x->raw_target, x->front->name);
        else if (n == -ECANCELED)
                log_debug("Ending %s %s on '%s': the proxy is stopping.", x->method, x->raw_target, x->front->name);
        else
                log_warning_errno((int) n, "The Docker daemon broke off the response to %s %s on '%s': %m",
                                  x->method, x->raw_target, x->front->name);
        daemon_close(x);
        return MHD_CONTENT_READER_END_WITH_ERROR;
}

void exchange_end_streams(Server *s) {
        Exchange *next;

        s->cancelling = true;
        for (Exchange *x = s->suspended; x; x = next) {
                next = x->suspended_next;
                if (x->state == EXCHANGE_ANSWERED)
                        exchange_resume(x);
        }
}

void exchange_resume_all(Server *s) {
        while (s->suspended)
                exchange_resume(s->suspended);
}

/* Whether a Connection header of the daemon's names this field: it ends at this hop. */
static bool listed_in_connection(const HttpResponseHead *h, const char *name) {
        for (size_t i = 0; i < h->n_headers; i++)
                if (strcaseeq(h->headers[i].name, "Connection") && http_list_has_token(h->headers[i].value, name))
                        return true;
        return false;
}

static enum MHD_Result add_response_headers(struct MHD_Response *resp, const HttpResponseHead *h) {
        for (size_t i = 0; i < h->n_headers; i++) {
                const HttpHeader *hd = &h->headers[i];

                if (http_header_is_hop_by_hop(hd->name) || strcaseeq(hd->name, "Content-Length") ||
                    (h->connection_lists_fields && listed_in_connection(h, hd->name)))
                        continue;
                /* MHD refuses a few headers it sets itself; that is not an error. */
                (void) MHD_add_response_header(resp, hd->name, hd->value);
        }
        return MHD_YES;
}

static void *tunnel_thread(void *userdata) {
        Exchange *x = userdata;
        Server *s = x->front->server;
        TunnelStats stats;
        char reason[256];
        int r;

        r = tunnel_run(x->tunnel_client, x->up.fd, x->tunnel_extra, x->tunnel_extra_size, x->up.buf + x->up.start,
                       x->up.end - x->up.start, s->cancel_fd, &stats);

        x->bytes_in += stats.client_to_daemon;
        x->bytes_out += stats.daemon_to_client;
        snprintf(reason, sizeof(reason), "%s after %.3f s, %llu bytes in, %llu bytes out",
                 r == 0 ? "both sides done" : r == -ECANCELED ? "ended by shutdown" :
                 errno_is_disconnect(r) ? "one side reset" : "error",
                 (double) (now_usec() - x->started) / 1e6, x->bytes_in, x->bytes_out);
        audit(x, AUDIT_TUNNEL, reason);
        x->tunnel_logged = true;

        upstream_done(&x->up);
        /* Never close the client's socket: MHD owns it and closes it on this action, in the
         * loop's thread, which then completes (and frees) the exchange. MHD's own wake-up
         * can be consumed by a run of the loop that is past looking for it: wake it again. */
        (void) MHD_upgrade_action(x->urh, MHD_UPGRADE_ACTION_CLOSE);
        event_loop_wake(s->loop);
        atomic_fetch_sub(&s->counters.tunnels, 1);
        return NULL;
}

static void on_upgraded(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra_in,
                        size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh) {
        Exchange *x = cls;
        Server *s = x->front->server;
        pthread_attr_t attr;
        pthread_t thread;
        int r = -ENOMEM;

        /* A tunnel blocks, so it runs in a thread of its own, which owns the daemon's socket. */
        event_loop_remove(loop_of(x), x->up.fd);
        x->urh = urh;
        x->tunnel_client = sock;
        if (extra_in_size > 0) {
                x->tunnel_extra = malloc(extra_in_size);
                if (x->tunnel_extra) {
                        memcpy(x->tunnel_extra, extra_in, extra_in_size);
                        x->tunnel_extra_size = extra_in_size;
                }
        }
        atomic_fetch_add(&s->counters.tunnels, 1);
        if (x->tunnel_extra_size == extra_in_size && pthread_attr_init(&attr) == 0) {
                (void) pthread_attr_setstacksize(&attr, THREAD_STACK_SIZE);
                (void) pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                r = -pthread_create(&thread, &attr, tunnel_thread, x);
                pthread_attr_destroy(&attr);
        }
        if (r < 0) {
                log_warning_errno(r, "Cannot start the tunnel for %s %s on '%s': %m", x->method, x->raw_target,
                                  x->front->name);
                upstream_done(&x->up);
                atomic_fetch_sub(&s->counters.tunnels, 1);
                (void) MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        }
}

static enum MHD_Result exchange_upgrade(Exchange *x, struct MHD_Connection *c, const RequestSettings *rs) {
        struct MHD_Response *resp;
        enum MHD_Result ret;

        if (!x->upgrade)
                return daemon_failed(x, c, rs, -EPROTO, false);
        if (x->up.end - x->up.start > TUNNEL_BUFFER_SIZE)
                return daemon_failed(x, c, rs, -EBADMSG, false);

        resp = MHD_create_response_for_upgrade(on_upgraded, x);
        if (!resp)
                return MHD_NO;
        add_response_headers(resp, &x->up.head);
        /* MHD adds "Connection: Upgrade" itself; "Upgrade" must come from us. */
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, x->up.head.upgrade ?: x->upgrade_protocol);
        x->status = 101;
        ret = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
        MHD_destroy_response(resp);
        x->state = EXCHANGE_ANSWERED;
        return ret;
}

/* The head said "Transfer-Encoding: chunked"; the whole body is here, so say its length. */
static int rewrite_held_as_length(Exchange *x) {
        static const char te[] = "Transfer-Encoding: chunked\r\n";
        size_t body = x->out_size - x->out_head_size;
        char cl[48], *p, *at;
        int n;

        at = memmem(x->out, x->out_head_size, te, sizeof(te) - 1);
        if (!at)
                return 0;
        n = snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", body);
        p = malloc(x->out_size - (sizeof(te) - 1) + (size_t) n);
        if (!p)
                return -ENOMEM;
        size_t before = (size_t) (at - x->out), after = x->out_size - before - (sizeof(te) - 1);
        memcpy(p, x->out, before);
        memcpy(p + before, cl, (size_t) n);
        memcpy(p + before + (size_t) n, at + sizeof(te) - 1, after);
        free(x->out);
        x->out = p;
        x->out_size = before + (size_t) n + after;
        x->out_head_size = x->out_head_size - (sizeof(te) - 1) + (size_t) n;
        return 0;
}

/* Whether the daemon's Content-Type (maybe NULL) begins with prefix, in any case. */
#define CONTENT_TYPE_IS(content_type, prefix) \
        ((content_type) && strncasecmp((content_type), (prefix), sizeof(prefix) - 1) == 0)

static size_t stream_block_size(const char *content_type) {
        if (CONTENT_TYPE_IS(content_type, "application/x-tar") ||
            CONTENT_TYPE_IS(content_type, "application/octet-stream"))
                return RESPONSE_BLOCK_MAX;
        if (CONTENT_TYPE_IS(content_type, "application/vnd.docker."))
                return RESPONSE_BLOCK_DOCKER_STREAM;
        return RESPONSE_BLOCK_STREAM;
}

static enum MHD_Result exchange_finish(Exchange *x, struct MHD_Connection *c) {
        const RequestSettings *rs = &x->settings;
        struct MHD_Response *resp;
        enum MHD_Result ret;
        uint64_t size;
        size_t block, whole_size;
        char *whole;
        int r;

        if (x->state == EXCHANGE_DISCARDING) {
                x->status = 502;
                audit(x, AUDIT_FAILED, x->error);
                return respond_json(x, c, 502, x->error, false);
        }

        if (x->state == EXCHANGE_FORWARDING) {
                if (x->holding) {
                        /* The client's chunked body is sent with a Content-Length: we have it whole. */
                        if (x->chunked_body && rewrite_held_as_length(x) < 0)
                                return MHD_NO;
                        x->holding = false;
                } else if (x->chunked_body && !x->last_chunk_queued) {
                        if (out_append(x, "0\r\n\r\n", 5) < 0)
                                return MHD_NO;
                        x->last_chunk_queued = true;
                }
                r = flush_or_await(x);
                if (!x->sent_any && upstream_stale(&x->up, r)) {
                        /* A kept connection the daemon had closed: nothing reached it. */
                        r = daemon_reconnect(x);
                        if (r >= 0)
                                r = flush_or_await(x);
                }
                if (r == -EINPROGRESS)
                        return MHD_YES;
                if (r < 0)
                        return daemon_failed(x, c, rs, r, false);
                /* The daemon cannot have answered in the microseconds since: wait rather than try. */
                x->state = EXCHANGE_AWAITING_HEAD;
                x->head_deadline = now_coarse_usec() + rs->timeout_usec;
                exchange_suspend(x, WAIT_DAEMON_READABLE, x->head_deadline);
                return MHD_YES;
        }

        r = x->timed_out ? -ETIMEDOUT : upstream_read_head(&x->up, x->method);
        if (r == -EAGAIN) {
                exchange_suspend(x, WAIT_DAEMON_READABLE, x->head_deadline);
                return MHD_YES;
        }
        if (r < 0 && x->retry_head && upstream_stale(&x->up, r)) {
                /* The request goes again, once, on a new connection. */
                r = daemon_reconnect(x);
                if (r >= 0) {
                        free(x->out);
                        x->out = TAKE_PTR(x->retry_head);
                        x->out_size = x->retry_head_size;
                        x->out_sent = 0;
                        x->state = EXCHANGE_FORWARDING;
                        return exchange_finish(x, c);
                }
        }
        if (r < 0)
                return daemon_failed(x, c, rs, r, false);

        if (x->up.head.status == 101)
                return exchange_upgrade(x, c, rs);

        if (!x->upgrade && x->up.body_mode == BODY_UNTIL_CLOSE &&
            CONTENT_TYPE_IS(x->up.head.content_type, "application/vnd.docker."))
                /* The daemon hijacked a request that did not ask for it (exec start without
                 * Upgrade): the client cannot send stdin through us, so the daemon gets EOF on it
                 * now rather than waiting for input forever. Its output still streams back. */
                (void) shutdown(x->up.fd, SHUT_WR);

        switch (x->up.body_mode) {
        case BODY_LENGTH:
                size = (uint64_t) x->up.head.content_length;
                block = (size_t) MIN(MAX(size, (uint64_t) RESPONSE_BLOCK_MIN), (uint64_t) RESPONSE_BLOCK_MAX);
                break;
        case BODY_NONE:
                size = x->up.head.content_length >= 0 ? (uint64_t) x->up.head.content_length : 0;
                if (!streq(x->method, "HEAD"))
                        size = 0;
                block = RESPONSE_BLOCK_MIN;
                break;
        default:
                size = MHD_SIZE_UNKNOWN;
                block = stream_block_size(x->up.head.content_type);
        }

        if (x->up.body_mode == BODY_LENGTH && size <= x->up.end - x->up.start) {
                /* The whole body came with the head: MHD sends both in one write, from our
                 * buffer, which lives until the request is complete (exchange_on_completed). */
                resp = MHD_create_response_from_buffer((size_t) size, x->up.buf + x->up.start,
                                                       MHD_RESPMEM_PERSISTENT);
                x->up.start += (size_t) size;
                x->up.body_remaining = 0;
                x->up.body_done = true;
                x->bytes_out += size;
        } else if (upstream_body_buffered(&x->up, &whole, &whole_size)) {
                /* A chunked body that came whole: decoded in place and sent with its length,
                 * in one write rather than a chunk per block. */
                resp = MHD_create_response_from_buffer(whole_size, whole, MHD_RESPMEM_PERSISTENT);
                x->bytes_out += whole_size;
        } else
                /* MHD allocates (and zeroes) a block per response: as large as the body needs. */
                resp = MHD_create_response_from_callback(size, block, read_response_body, x, NULL);
        if (!resp)
                return MHD_NO;
        add_response_headers(resp, &x->up.head);
        x->status = x->up.head.status;
        ret = MHD_queue_response(c, x->up.head.status, resp);
        MHD_destroy_response(resp);
        x->state = EXCHANGE_ANSWERED;
        return ret;
}

enum MHD_Result exchange_on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                    const char *version, const char *upload_data, size_t *upload_data_size,
                                    void **con_cls) {
        Exchange *x = *con_cls;
        ConnectionState *cs = connection_state(c);
        enum MHD_Result r;

        if (!x)
                return respond_json(NULL, c, 500, "out of memory", true);
        /* Suspended in this same run of libmicrohttpd, which may still offer data: it is
         * taken once the exchange is resumed. */
        if (x->wait != WAIT_NONE)
                return MHD_YES;

        /* Until the body (if any) is in, each call leaves us waiting on the client, unless the
         * exchange was suspended to wait on the daemon. */
        switch (x->state) {
        case EXCHANGE_NEW:
                wait_on_client(cs, false, false);
                r = exchange_begin(x, c, method, version);
                wait_on_client(cs, x->wait == WAIT_NONE, true);
                return r;
        case EXCHANGE_REFUSING:
                if (*upload_data_size > 0) {
                        *upload_data_size = 0;
                        wait_on_client(cs, true, true);
                        return MHD_YES;
                }
                wait_on_client(cs, false, false);
                return respond_json(x, c, x->status, x->error, false);
        case EXCHANGE_FORWARDING:
        case EXCHANGE_DISCARDING:
                if (*upload_data_size > 0) {
                        wait_on_client(cs, false, true);
                        r = forward_body(x, upload_data, upload_data_size);
                        wait_on_client(cs, x->wait == WAIT_NONE, true);
                        return r;
                }
                wait_on_client(cs, false, false);
                return exchange_finish(x, c);
        case EXCHANGE_AWAITING_HEAD:
                return exchange_finish(x, c);
        case EXCHANGE_ANSWERED:
                /* MHD still hands us the body of a request we answered early: drop it. */
                wait_on_client(cs, *upload_data_size > 0, *upload_data_size > 0);
                *upload_data_size = 0;
                return MHD_YES;
        }
        return MHD_NO;
}

void exchange_on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                           enum MHD_RequestTerminationCode toe) {
        Exchange *x = *con_cls;
        ConnectionState *cs = connection_state(c);
        Server *s;

        if (!x) {
                if (cs)
                        client_gate_request_done(&cs->gate);
                return;
        }
        s = x->front->server;
        if (x->in_flight) {
                if (x->status != 0 && x->status < 500 && x->verdict.allowed && !x->tunnel_logged &&
                    audit_enabled(AUDIT_ALLOWED)) {
                        char reason[96];
                        snprintf(reason, sizeof(reason), "%u, %s", x->status,
                                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "completed" : "ended early");
                        audit(x, AUDIT_ALLOWED, reason);
                }
                atomic_fetch_sub(&s->counters.in_flight, 1);
        }
        if (x->upgrade_header && !x->tunnel_logged)
                x->poison = true;
        if (x->poison) {
                if (cs)
                        cs->poisoned = true;
                /* Our answer is out; the end of the stream tells the client nothing follows. */
                if (x->client_fd >= 0)
                        (void) shutdown(x->client_fd, SHUT_WR);
        } else if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && !x->urh) {
                /* Not after a tunnel: its connection ends, and MHD completes it holding the
                 * lock that setting an option takes. The keep-alive time is the one the
                 * request was decided with. */
                if (cs) {
                        cs->reused = true;
                        wait_on_client(cs, true, false);
                }
                if (x->timeout_lifted)
                        (void) MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, x->settings.keepalive_sec);
        }
        if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && x->up.fd >= 0 && x->wait == WAIT_NONE) {
                /* Kept for the next request, and watched meanwhile for the daemon closing it. */
                EventLoop *l = loop_of(x);
                int fd = x->up.fd;

                event_loop_retarget(l, fd, on_idle_daemon_event, NULL);
                if (upstream_release(&x->up, x->settings.socket_path) < 0)
                        event_loop_forget(l, fd);
        }
        *con_cls = exchange_free(x);
        if (cs)
                client_gate_request_done(&cs->gate);
}
