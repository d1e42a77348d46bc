/* SPDX-License-Identifier: MIT */
/* One request: read its head, decide it, forward it to the daemon, and answer with the
 * daemon's response, our refusal or a tunnel. It runs in the connection's thread. */
#include <stdio.h>
#include <sys/socket.h>

#include "audit.h"
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
        EXCHANGE_ANSWERED,   /* a response is queued */
} ExchangeState;

/* One request, from its request line to its completion. */
typedef struct Exchange {
        Front *front;
        ConnectionState *cs; /* NULL if the connection has none */
        ExchangeState state;
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
        bool tunnel_logged;
        bool poison;       /* serve nothing more on this connection once answered */
        char *retry_head;  /* a GET or HEAD on a kept daemon connection: its head, to send again */
        size_t retry_head_size;
        char *pending;     /* upgrade requests: the head and body, sent in one write */
        size_t pending_size;
        size_t pending_head_size;
        unsigned status;
        char error[MESSAGE_MAX];
        usec_t started;
        unsigned long long bytes_in, bytes_out;
} Exchange;

static Exchange *exchange_free(Exchange *x) {
        if (!x)
                return NULL;
        upstream_done(&x->up);
        http_target_done(&x->target);
        free(x->raw_target);
        free(x->method);
        free(x->retry_head);
        free(x->pending);
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
        *x = (Exchange) { .front = f, .cs = cs };
        x->up = UPSTREAM_NULL;
        x->client_fd = -EBADF;
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

        upstream_done(&x->up);
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

        /* A kept daemon connection serves any request but an upgrade (which ends it). If the
         * daemon closed it just before, only a request that may safely go twice (GET, HEAD,
         * no body) is sent again on a new one; others get 502. */
        repeatable = !x->upgrade && !x->chunked_body && (streq(method, "GET") || streq(method, "HEAD")) &&
                (!(cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH)) ||
                 streq(cl, "0"));
        r = upstream_connect(&x->up, rs->socket_path, rs->timeout_usec, !x->upgrade);
        if (r < 0)
                return daemon_failed(x, c, rs, r, true);

        r = build_request_head(c, x, &scan, &head);
        head_buf = head.buf;
        if (r < 0)
                return MHD_NO;
        if (x->upgrade || x->chunked_body) {
                x->pending = TAKE_PTR(head_buf);
                x->pending_size = x->pending_head_size = head.size;
                return MHD_YES;
        }
        r = upstream_send(&x->up, head.buf, head.size);
        if (r < 0 && upstream_stale(&x->up, r)) {
                /* Nothing reached the daemon: any request may go again. */
                upstream_done(&x->up);
                r = upstream_connect(&x->up, rs->socket_path, rs->timeout_usec, false);
                if (r >= 0)
                        r = upstream_send(&x->up, head.buf, head.size);
        }
        if (r < 0)
                return daemon_failed(x, c, rs, r, true);
        if (x->up.reused && repeatable) {
                x->retry_head = TAKE_PTR(head_buf);
                x->retry_head_size = head.size;
        }
        return MHD_YES;
}

static enum MHD_Result forward_body(Exchange *x, const char *data, size_t *size) {
        int r;

        x->bytes_in += *size;
        if (x->state == EXCHANGE_FORWARDING && x->pending) {
                char *p;

                if (x->pending_size - x->pending_head_size + *size > UPGRADE_BODY_MAX && !x->upgrade) {
                        /* Too large to hold back: stream it (the head, what we have, then the rest). */
                        r = upstream_send(&x->up, x->pending, x->pending_head_size);
                        if (r >= 0 && x->pending_size > x->pending_head_size)
                                r = upstream_send_chunk(&x->up, x->pending + x->pending_head_size,
                                                        x->pending_size - x->pending_head_size);
                        if (r >= 0)
                                r = upstream_send_chunk(&x->up, data, *size);
                        x->pending = mfree_ptr(x->pending);
                        if (r < 0) {
                                snprintf(x->error, sizeof(x->error), "the Docker daemon stopped reading the request "
                                         "body: %s", errno_explain(r));
                                x->state = EXCHANGE_DISCARDING;
                        }
                } else if (x->pending_size - x->pending_head_size + *size > UPGRADE_BODY_MAX) {
                        snprintf(x->error, sizeof(x->error), "the body of a request that switches protocols may "
                                 "hold at most %u bytes", UPGRADE_BODY_MAX);
                        x->status = 413;
                        x->state = EXCHANGE_REFUSING;
                } else if (!(p = realloc(x->pending, x->pending_size + *size)))
                        return MHD_NO;
                else {
                        x->pending = p;
                        memcpy(x->pending + x->pending_size, data, *size);
                        x->pending_size += *size;
                }
        } else if (x->state == EXCHANGE_FORWARDING) {
                r = x->chunked_body ? upstream_send_chunk(&x->up, data, *size) : upstream_send(&x->up, data, *size);
                if (r < 0) {
                        snprintf(x->error, sizeof(x->error), "the Docker daemon stopped reading the request body: %s",
                                 errno_explain(r));
                        x->state = EXCHANGE_DISCARDING;
                }
        }
        *size = 0;
        return MHD_YES;
}

static ssize_t read_response_body(void *cls, uint64_t pos, char *buf, size_t max) {
        Exchange *x = cls;
        ssize_t n = upstream_read_body(&x->up, buf, max, x->client_fd, x->front->server->cancel_fd);

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
        upstream_done(&x->up);
        return MHD_CONTENT_READER_END_WITH_ERROR;
}

static enum MHD_Result add_response_headers(struct MHD_Response *resp, const HttpResponseHead *h) {
        const char *connection = NULL;

        for (size_t i = 0; i < h->n_headers; i++)
                if (strcaseeq(h->headers[i].name, "Connection"))
                        connection = h->headers[i].value;
        for (size_t i = 0; i < h->n_headers; i++) {
                const HttpHeader *hd = &h->headers[i];

                if (http_header_is_hop_by_hop(hd->name) || strcaseeq(hd->name, "Content-Length") ||
                    http_list_has_token(connection, hd->name))
                        continue;
                /* MHD refuses a few headers it sets itself; that is not an error. */
                (void) MHD_add_response_header(resp, hd->name, hd->value);
        }
        return MHD_YES;
}

static void on_upgraded(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra_in,
                        size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh) {
        Exchange *x = cls;
        Server *s = x->front->server;
        TunnelStats stats;
        char reason[256];
        int r;

        /* Thread-per-connection: this runs in the connection's thread and may block. */
        atomic_fetch_add(&s->counters.tunnels, 1);
        r = tunnel_run(sock, x->up.fd, extra_in, extra_in_size, x->up.buf + x->up.start, x->up.end - x->up.start,
                       s->cancel_fd, &stats);
        atomic_fetch_sub(&s->counters.tunnels, 1);

        x->bytes_in += stats.client_to_daemon;
        x->bytes_out += stats.daemon_to_client;
        snprintf(reason, sizeof(reason), "%s after %.3f s, %llu bytes in, %llu bytes out",
                 r == 0 ? "both sides done" : r == -ECANCELED ? "ended by shutdown" :
                 errno_is_disconnect(r) ? "one side reset" : "error",
                 (double) (now_usec() - x->started) / 1e6, x->bytes_in, x->bytes_out);
        audit(x, AUDIT_TUNNEL, reason);
        x->tunnel_logged = true;

        upstream_done(&x->up);
        /* Never close(sock): MHD owns it and closes it on this action. */
        (void) MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
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
static int rewrite_pending_as_length(Exchange *x) {
        static const char te[] = "Transfer-Encoding: chunked\r\n";
        size_t body = x->pending_size - x->pending_head_size;
        char cl[48], *p, *at;
        int n;

        at = memmem(x->pending, x->pending_head_size, te, sizeof(te) - 1);
        if (!at)
                return 0;
        n = snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", body);
        p = malloc(x->pending_size - (sizeof(te) - 1) + (size_t) n);
        if (!p)
                return -ENOMEM;
        size_t before = (size_t) (at - x->pending), after = x->pending_size - before - (sizeof(te) - 1);
        memcpy(p, x->pending, before);
        memcpy(p + before, cl, (size_t) n);
        memcpy(p + before + (size_t) n, at + sizeof(te) - 1, after);
        free(x->pending);
        x->pending = p;
        x->pending_size = before + (size_t) n + after;
        x->pending_head_size = x->pending_head_size - (sizeof(te) - 1) + (size_t) n;
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
        size_t block;
        int r;

        if (x->state == EXCHANGE_DISCARDING) {
                x->status = 502;
                audit(x, AUDIT_FAILED, x->error);
                return respond_json(x, c, 502, x->error, false);
        }

        if (x->pending) {
                /* The client's chunked body is sent with a Content-Length: we have it whole. */
                if (x->chunked_body) {
                        r = rewrite_pending_as_length(x);
                        if (r < 0)
                                return MHD_NO;
                }
                r = upstream_send(&x->up, x->pending, x->pending_size);
                if (r < 0 && upstream_stale(&x->up, r)) {
                        /* A kept connection the daemon had closed: nothing reached it. */
                        upstream_done(&x->up);
                        r = upstream_connect(&x->up, rs->socket_path, rs->timeout_usec, false);
                        if (r >= 0)
                                r = upstream_send(&x->up, x->pending, x->pending_size);
                }
                x->pending = mfree_ptr(x->pending);
                if (r < 0)
                        return daemon_failed(x, c, rs, r, false);
        } else if (x->chunked_body) {
                r = upstream_send_chunk(&x->up, NULL, 0);
                if (r < 0)
                        return daemon_failed(x, c, rs, r, false);
        }

        r = upstream_read_head(&x->up, x->method, rs->timeout_usec);
        if (r < 0 && x->retry_head && upstream_stale(&x->up, r)) {
                upstream_done(&x->up);
                r = upstream_connect(&x->up, rs->socket_path, rs->timeout_usec, false);
                if (r >= 0)
                        r = upstream_send(&x->up, x->retry_head, x->retry_head_size);
                if (r >= 0)
                        r = upstream_read_head(&x->up, x->method, rs->timeout_usec);
        }
        if (r < 0)
                return daemon_failed(x, c, rs, r, false);

        if (x->up.head.status == 101)
                return exchange_upgrade(x, c, rs);

        if (!x->upgrade && x->up.body_mode == BODY_UNTIL_CLOSE && x->up.head.content_type &&
            strncmp(x->up.head.content_type, "application/vnd.docker.", 23) == 0)
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

        /* Until the body (if any) is in, each call leaves us waiting on the client. */
        switch (x->state) {
        case EXCHANGE_NEW:
                wait_on_client(cs, false, false);
                r = exchange_begin(x, c, method, version);
                wait_on_client(cs, true, true);
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
                        wait_on_client(cs, true, true);
                        return r;
                }
                wait_on_client(cs, false, false);
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
        } else if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) {
                RequestSettings rs;

                if (cs) {
                        cs->reused = true;
                        wait_on_client(cs, true, false);
                }
                settings_snapshot(s, &rs);
                (void) MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, rs.keepalive_sec);
        }
        if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && x->up.fd >= 0)
                upstream_release(&x->up, x->settings.socket_path);
        *con_cls = exchange_free(x);
        if (cs)
                client_gate_request_done(&cs->gate);
}
