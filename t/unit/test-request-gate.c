/* SPDX-License-Identifier: MIT */
/* request-gate: the strict reader of the client's byte stream. Every case is fed at once,
 * byte by byte, in pieces of several sizes, cut at every point and in random splits: the
 * verdict (phase, status, error, requests) and the offset of the failing byte, and where
 * the failing request began, must not depend on how the stream arrives. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request-gate.h"
#include "tap.h"

#define ELEMS(x) (sizeof(x) / sizeof((x)[0]))

/* A string literal and its length, NUL bytes included. */
#define P(s) s, sizeof(s) - 1

/* The head of a GET up to its empty line, with the Host an HTTP/1.1 request needs (G "\r\n"
 * is a whole request), and the head of a chunked POST. */
#define G "GET / HTTP/1.1\r\nHost: x\r\n"
#define CHK "POST /build HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"

/* The limits the gate is given here: config.h's defaults (SOCKET_PROXY_MAX_TARGET_BYTES,
 * SOCKET_PROXY_MAX_HEADER_BYTES). */
#define DEFAULT_MAX_TARGET 8192U
#define DEFAULT_MAX_HEADER 16384U
/* The gate's own limits (request-gate.c). */
#define FIELDS_MAX 128U
#define TRAILER_FIELDS_MAX 32U
#define QUERY_ARGUMENTS_MAX 128U
/* Where the stream is expected to fail: nowhere. */
#define NO_FAILURE SIZE_MAX
/* request_began after a fully accepted feed: the end of the input. */
#define BEGAN_END (-2L)

/* A printable, shortened form of a byte string for test names. */
static const char *show(const char *s, size_t n) {
        static char buf[8][112];
        static unsigned which;
        char *b = buf[which++ % ELEMS(buf)];
        size_t k = 0, i;

        for (i = 0; i < n && k + 8 < sizeof(buf[0]); i++) {
                unsigned char c = (unsigned char) s[i];

                if (c == '\r')
                        k += (size_t) snprintf(b + k, sizeof(buf[0]) - k, "\\r");
                else if (c == '\n')
                        k += (size_t) snprintf(b + k, sizeof(buf[0]) - k, "\\n");
                else if (c == '\t')
                        k += (size_t) snprintf(b + k, sizeof(buf[0]) - k, "\\t");
                else if (c < 0x20 || c >= 0x7f || c == '\\')
                        k += (size_t) snprintf(b + k, sizeof(buf[0]) - k, "\\x%02x", c);
                else
                        b[k++] = (char) c;
        }
        if (i < n)
                k += (size_t) snprintf(b + k, sizeof(buf[0]) - k, "...");
        b[k] = '\0';
        return b;
}

static bool contains(const char *s, const char *word) {
        return s && strstr(s, word);
}

/* What a stream did to the gate, however it was split. */
typedef struct Outcome {
        GatePhase phase;
        unsigned status;
        const char *error;
        uint64_t requests;
        size_t accepted;        /* the sum of what the feeds returned */
        long began;             /* absolute offset where the current (or failing) request began */
        long last_began;        /* g->request_began after the last feed that was given bytes */
        bool sane;              /* no feed returned more than it was given; after a failure only 0 */
        char method[16], target[128]; /* what the audit would log */
} Outcome;

/* Gives the size of the next piece, at most left (which is > 0). */
typedef size_t (*Splitter)(void *state, size_t left);

static void feed_split(const char *in, size_t len, size_t max_target, size_t max_head, Splitter next,
                       void *state, Outcome *o) {
        RequestGate g;
        size_t pos = 0;
        bool failed = false;

        memset(o, 0, sizeof(*o));
        o->sane = true;
        o->began = 0;
        o->last_began = 0;
        request_gate_init(&g, max_target, max_head);
        if (len == 0) {
                size_t r = request_gate_feed(&g, in, 0);

                o->sane = r == 0;
                o->last_began = (long) g.request_began;
        }
        while (pos < len) {
                size_t n = next ? next(state, len - pos) : len - pos;
                size_t r;

                if (n == 0 || n > len - pos)
                        n = len - pos;
                r = request_gate_feed(&g, in + pos, n);
                if (r > n || (failed && r != 0))
                        o->sane = false;
                if (!failed) {
                        o->accepted += r;
                        if (g.request_began >= 0)
                                o->began = (long) (pos + (size_t) g.request_began);
                }
                if (g.request_began < -1 || g.request_began > (ssize_t) n)
                        o->sane = false;
                if (request_gate_failed(&g))
                        failed = true;
                else if (r != n)
                        o->sane = false;
                o->last_began = (long) g.request_began;
                pos += n;
        }
        /* Once failed, the gate takes nothing more. */
        if (failed && request_gate_feed(&g, P(G "\r\n")) != 0)
                o->sane = false;
        o->phase = g.phase;
        o->status = g.status;
        o->error = g.error;
        o->requests = g.requests;
        memcpy(o->method, g.method, sizeof(o->method));
        memcpy(o->target, g.target, sizeof(o->target));
}

static size_t split_fixed(void *state, size_t left) {
        size_t k = *(size_t *) state;

        return k < left ? k : left;
}

typedef struct Cuts {
        const size_t *at;       /* absolute offsets, ascending */
        size_t n, i, pos;
} Cuts;

static size_t split_cuts(void *state, size_t left) {
        Cuts *c = state;
        size_t piece;

        while (c->i < c->n && c->at[c->i] <= c->pos)
                c->i++;
        piece = c->i < c->n ? c->at[c->i] - c->pos : left;
        if (piece > left)
                piece = left;
        c->pos += piece;
        return piece;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void) {
        /* xorshift64*: deterministic, so a failure can be reproduced. */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * 2685821657736338717ULL;
}

static size_t split_random(void *state, size_t left) {
        size_t max = *(size_t *) state;
        size_t k = (size_t) (rng() % max) + 1;

        return k < left ? k : left;
}

static bool same_outcome(const Outcome *a, const Outcome *b) {
        return a->phase == b->phase && a->status == b->status && a->error == b->error &&
                a->requests == b->requests && a->accepted == b->accepted && a->began == b->began && b->sane &&
                memcmp(a->method, b->method, sizeof(a->method)) == 0 &&
                memcmp(a->target, b->target, sizeof(a->target)) == 0;
}

static void diag_outcome(const char *what, const Outcome *o) {
        diag("%s: phase %d, status %u, error '%s', requests %llu, accepted %zu, began %ld%s", what, (int) o->phase,
             o->status, o->error ? o->error : "(none)", (unsigned long long) o->requests, o->accepted, o->began,
             o->sane ? "" : ", INSANE");
}

/* Feeds in every way and checks that the outcome is the one of the feed at once (each kind
 * of split is one test). */
static void check_splits(const char *name, const char *in, size_t len, size_t max_target, size_t max_head,
                         const Outcome *once) {
        static const size_t pieces[] = { 2, 3, 5, 7, 16, 64 };
        Outcome o;
        size_t one = 1;
        bool same;

        feed_split(in, len, max_target, max_head, split_fixed, &one, &o);
        if (!ok(same_outcome(once, &o), "%s: byte by byte as at once", name)) {
                diag_outcome("at once", once);
                diag_outcome("byte by byte", &o);
        }

        same = true;
        for (size_t i = 0; i < ELEMS(pieces) && same; i++) {
                size_t k = pieces[i];

                feed_split(in, len, max_target, max_head, split_fixed, &k, &o);
                if (!same_outcome(once, &o)) {
                        same = false;
                        diag_outcome("at once", once);
                        diag("in pieces of %zu:", k);
                        diag_outcome("in pieces", &o);
                }
        }
        ok(same, "%s: in pieces of 2, 3, 5, 7, 16, 64 bytes as at once", name);

        /* Two pieces, cut at every point (len <= 4096: the generated cases are cut less often). */
        same = true;
        for (size_t at = 1; at < len && same; at += len > 4096 ? 61 : 1) {
                Cuts c = { .at = &at, .n = 1 };

                feed_split(in, len, max_target, max_head, split_cuts, &c, &o);
                if (!same_outcome(once, &o)) {
                        same = false;
                        diag("cut at %zu:", at);
                        diag_outcome("at once", once);
                        diag_outcome("cut", &o);
                }
        }
        ok(same, "%s: cut in two at every point as at once", name);

        same = true;
        for (unsigned i = 0; i < 24 && same; i++) {
                uint64_t seed = rng_state;
                size_t max = i < 8 ? 4 : i < 16 ? 17 : 200;

                feed_split(in, len, max_target, max_head, split_random, &max, &o);
                if (!same_outcome(once, &o)) {
                        same = false;
                        diag("random split, pieces up to %zu, rng state 0x%llx:", max, (unsigned long long) seed);
                        diag_outcome("at once", once);
                        diag_outcome("random", &o);
                }
        }
        ok(same, "%s: in random splits as at once", name);
}

/* The heart of the test: feeds in at once, checks the verdict, then every split.
 * fail_at: the offset of the first byte that breaks the rules (NO_FAILURE if none);
 * began: g->request_began after the feed at once (BEGAN_END: the length). */
static void check_stream(const char *name, const char *in, size_t len, size_t fail_at, unsigned status,
                         uint64_t requests, long began, const char *why, size_t max_target, size_t max_head) {
        Outcome once;

        feed_split(in, len, max_target, max_head, NULL, NULL, &once);
        if (began == BEGAN_END)
                began = (long) len;
        if (fail_at == NO_FAILURE) {
                if (!ok(once.phase != GATE_FAILED && once.accepted == len && once.sane, "%s: accepted", name))
                        diag_outcome("at once", &once);
                is_int(0, once.status, "%s: no status", name);
                ok(once.error == NULL, "%s: no error ('%s')", name, once.error ? once.error : "");
        } else {
                if (!ok(once.phase == GATE_FAILED && once.sane, "%s: refused", name))
                        diag_outcome("at once", &once);
                is_int((long) status, once.status, "%s: status", name);
                is_int((long) fail_at, (long) once.accepted, "%s: refused at offset %zu", name, fail_at);
                if (why)
                        ok(contains(once.error, why), "%s: the reason says '%s' ('%s')", name, why,
                           once.error ? once.error : "(null)");
                else
                        ok(once.error && *once.error, "%s: a reason ('%s')", name, once.error ? once.error : "(null)");
        }
        is_int((long) requests, (long) once.requests, "%s: complete requests", name);
        is_int(began, once.last_began, "%s: request_began", name);
        check_splits(name, in, len, max_target, max_head, &once);
}

typedef struct Case {
        const char *name;
        const char *good;       /* the bytes before the failing one (all of them if accepted) */
        size_t good_len;
        const char *bad;        /* from the failing byte on; empty if accepted */
        size_t bad_len;
        unsigned status;
        uint64_t requests;
        long began;
        const char *why;
} Case;

#define ACCEPT(name, s, n) { name, P(s), P(""), 0, n, BEGAN_END, NULL }
/* Accepted, but in the middle of a request that began at offset began. */
#define PARTIAL(name, s, n, began) { name, P(s), P(""), 0, n, began, NULL }
#define REFUSE(name, good, bad, why) { name, P(good), P(bad), 400, 0, 0, why }
/* Refused after n complete requests (in before); the failing one begins after them. */
#define REFUSE_AFTER(name, before, good, bad, n, why) { name, P(before good), P(bad), 400, n, sizeof(before) - 1, why }

static void run_case(const Case *c, size_t max_target, size_t max_head) {
        size_t len = c->good_len + c->bad_len;
        char *in = malloc(len + 1);
        char name[256];

        if (!in)
                bail("out of memory");
        memcpy(in, c->good, c->good_len);
        memcpy(in + c->good_len, c->bad, c->bad_len);
        in[len] = '\0';
        if (c->bad_len > 0)
                snprintf(name, sizeof(name), "%s [%s|%s]", c->name, show(c->good, c->good_len),
                         show(c->bad, c->bad_len));
        else
                snprintf(name, sizeof(name), "%s [%s]", c->name, show(c->good, c->good_len));
        check_stream(name, in, len, c->bad_len > 0 ? c->good_len : NO_FAILURE, c->status, c->requests, c->began,
                     c->why, max_target, max_head);
        free(in);
}

static void run_cases(const Case *cases, size_t n) {
        for (size_t i = 0; i < n; i++)
                run_case(&cases[i], DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
}

static void test_valid(void) {
        static const Case cases[] = {
                ACCEPT("GET", "GET /containers/json?all=1 HTTP/1.1\r\nHost: docker\r\nUser-Agent: t/1.0\r\n\r\n", 1),
                ACCEPT("GET with no header but Host", "GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n", 1),
                ACCEPT("POST with Content-Length",
                       "POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
                       "Content-Length: 13\r\n\r\n{\"Image\":\"x\"}", 1),
                ACCEPT("Content-Length: 0", "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 1),
                /* The body is skipped, not read: bytes that would break a head are fine in it. */
                ACCEPT("a body is not parsed",
                       "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n\0\n\r \x01\x7f\xff", 1),
                ACCEPT("Content-Length with OWS", "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: \t 3 \t\r\n\r\n\n\0 ", 1),
                ACCEPT("Content-Length of 18 digits",
                       "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 000000000000000003\r\n\r\n \0\n", 1),
                ACCEPT("field names in any case",
                       "POST /x HTTP/1.1\r\nhOsT: x\r\ncOnTeNt-LeNgTh: 2\r\n\r\n \n" G "\r\n", 2),
                ACCEPT("a longer name that begins with Content-Length is another field",
                       "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length-Of-Something-Else: 5\r\n\r\n" G "\r\n", 2),
                ACCEPT("a name as long as the name buffer and one byte longer",
                       "GET /x HTTP/1.1\r\nHost: x\r\nX-Twenty-Bytes-Name-: a\r\nX-Twenty-One-Bytes-Nam: b\r\n\r\n", 1),
                ACCEPT("chunked with extensions and a trailer",
                       CHK "5;name=value\r\nhello\r\n3;a;b=\"c d\"\r\n\0\n\r\r\nA\r\n0123456789\r\n"
                       "0;last\r\nX-Trailer: 1\r\nChecksum: abc\r\n\r\n", 1),
                ACCEPT("chunked without a trailer", CHK "1\r\nx\r\n0\r\n\r\n", 1),
                ACCEPT("chunked: just the last chunk", CHK "0\r\n\r\n", 1),
                ACCEPT("chunked: extension on the last chunk and OWS in it", CHK "0; a = b \t\r\n\r\n", 1),
                ACCEPT("Transfer-Encoding: Chunked",
                       "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n", 1),
                ACCEPT("Transfer-Encoding with OWS",
                       "POST /x HTTP/1.1\r\nHost: x\r\ntransfer-encoding: \t chunked \t\r\n\r\n0\r\n\r\n", 1),
                ACCEPT("chunk size of 15 hex digits", CHK "00000000000000F\r\nabcdefghijklmno\r\n0\r\n\r\n", 1),
                ACCEPT("chunk sizes in upper and lower case hex",
                       CHK "0a\r\n0123456789\r\nB\r\n0123456789a\r\n0\r\n\r\n", 1),
                ACCEPT("chunk data with CRLF and NUL in it", CHK "4\r\n\r\n\0\n\r\n0\r\n\r\n", 1),
                /* The trailer does not frame anything: its Content-Length is just a field. */
                ACCEPT("Content-Length in a trailer", CHK "0\r\nContent-Length: 5\r\n\r\n" G "\r\n", 2),
                ACCEPT("pipelined requests in one feed",
                       "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                       "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz"
                       "PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
                       "GET /d HTTP/1.0\r\n\r\n"
                       "DELETE /e HTTP/1.1\r\nHost: x\r\n\r\n", 5),
                ACCEPT("HTTP/1.0", "GET /_ping HTTP/1.0\r\n\r\n", 1),
                ACCEPT("HTTP/1.0 with Content-Length", "POST /x HTTP/1.0\r\nContent-Length: 1\r\n\r\nz", 1),
                ACCEPT("leading empty lines", "\r\n\r\n\r\n" G "\r\n", 1),
                ACCEPT("empty lines between requests", G "\r\n\r\n\r\n" G "\r\n", 2),
                ACCEPT("obs-text in a value", G "X-Name: caf\xc3\xa9\x80\xff\r\n\r\n", 1),
                ACCEPT("an empty value and tabs in a value", G "X-Empty:\r\nX-Tabs:\ta\tb\t\r\n\r\n", 1),
                ACCEPT("a value with every visible byte",
                       G "X: !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
                       "abcdefghijklmnopqrstuvwxyz{|}~\r\n\r\n", 1),
                ACCEPT("every tchar in a method and a name",
                       "M-SEARCH!#$%&'*+.^_`|~09az /x HTTP/1.1\r\nHost: x\r\nX!#$%&'*+-.^_`|~09az: 1\r\n\r\n", 1),
                ACCEPT("OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 1),
                ACCEPT("a target with a query", "GET /containers/json?all=1&filters=%7B%7D HTTP/1.1\r\nHost: x\r\n\r\n", 1),
                ACCEPT("the empty stream", "", 0),
                /* Empty lines belong to the next request: it began at 0. */
                PARTIAL("just empty lines", "\r\n\r\n", 0, 0),
                PARTIAL("a request cut in its headers", G, 0, 0),
                PARTIAL("a request cut in its request line", "GET /containers/j", 0, 0),
                PARTIAL("a request cut in its body",
                        G "\r\n" "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", 1,
                        sizeof(G "\r\n") - 1),
                PARTIAL("a request cut in a chunk", G "\r\n" CHK "5\r\nab", 1, sizeof(G "\r\n") - 1),
                PARTIAL("a request cut in its trailer", G "\r\n" CHK "0\r\nX: 1\r\n", 1, sizeof(G "\r\n") - 1),
                PARTIAL("a request cut after a CR", G "\r\n" "GET / HTTP/1.1\r", 1, sizeof(G "\r\n") - 1),
                /* Not the Upgrade header: no passthrough, the next request is read. */
                ACCEPT("Upgrade-Insecure-Requests is not Upgrade", G "Upgrade-Insecure-Requests: 1\r\n\r\n" G "\r\n", 2),
        };

        run_cases(cases, ELEMS(cases));
}

static void test_framing(void) {
        static const Case cases[] = {
                REFUSE("Content-Length and Transfer-Encoding",
                       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r", "\n0\r\n\r\n",
                       "both"),
                REFUSE("Transfer-Encoding and Content-Length",
                       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r", "\n0\r\n\r\n",
                       "both"),
                REFUSE("Content-Length: 0 and Transfer-Encoding",
                       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r", "\n0\r\n\r\n",
                       "both"),
                REFUSE("two Content-Length, the same",
                       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r", "\nab",
                       "several Content-Length"),
                REFUSE("two Content-Length, different",
                       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\ncontent-length: 3\r\n\r", "\nabc",
                       "several Content-Length"),
                REFUSE("three Content-Length: 0", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n"
                       "Content-Length: 0\r\n\r", "\n", "several Content-Length"),
                /* A bad value fails at the LF that ends its line. */
                REFUSE("Content-Length: +2", "POST / HTTP/1.1\r\nContent-Length: +2\r", "\n\r\nab", "Content-Length"),
                REFUSE("Content-Length: -1", "POST / HTTP/1.1\r\nContent-Length: -1\r", "\n\r\n", "Content-Length"),
                REFUSE("Content-Length: 0x2", "POST / HTTP/1.1\r\nContent-Length: 0x2\r", "\n\r\nab", "Content-Length"),
                REFUSE("Content-Length: 2x", "POST / HTTP/1.1\r\nContent-Length: 2x\r", "\n\r\nab", "Content-Length"),
                REFUSE("Content-Length: 1 1", "POST / HTTP/1.1\r\nContent-Length: 1 1\r", "\n\r\nab", "Content-Length"),
                REFUSE("Content-Length: 1<tab>1", "POST / HTTP/1.1\r\nContent-Length: 1\t1\r", "\n\r\nab",
                       "Content-Length"),
                REFUSE("Content-Length empty", "POST / HTTP/1.1\r\nContent-Length:\r", "\n\r\n", "Content-Length is empty"),
                REFUSE("Content-Length only OWS", "POST / HTTP/1.1\r\nContent-Length: \t \r", "\n\r\n",
                       "Content-Length is empty"),
                REFUSE("Content-Length: 2, 2", "POST / HTTP/1.1\r\nContent-Length: 2, 2\r", "\n\r\nab", "Content-Length"),
                REFUSE("Content-Length: 2,2", "POST / HTTP/1.1\r\nContent-Length: 2,2\r", "\n\r\nab", "Content-Length"),
                REFUSE("Content-Length of 19 digits", "POST / HTTP/1.1\r\nContent-Length: 1234567890123456789\r",
                       "\n\r\n", "Content-Length"),
                REFUSE("Content-Length of 19 digits, leading zeros",
                       "POST / HTTP/1.1\r\nContent-Length: 0000000000000000001\r", "\n\r\na", "Content-Length"),
                REFUSE("Content-Length longer than its buffer",
                       "POST / HTTP/1.1\r\nContent-Length: 1111111111111111111111111111111111111111\r", "\n\r\n",
                       "Content-Length"),
                REFUSE("Content-Length: 2.0", "POST / HTTP/1.1\r\nContent-Length: 2.0\r", "\n\r\nab", "Content-Length"),
                REFUSE("Content-Length: \"2\"", "POST / HTTP/1.1\r\nContent-Length: \"2\"\r", "\n\r\nab", "Content-Length"),
                REFUSE("Content-Length: 2;", "POST / HTTP/1.1\r\nContent-Length: 2;\r", "\n\r\nab", "Content-Length"),
                REFUSE("Transfer-Encoding: gzip", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r", "\n",
                       "single 'chunked'"),
                REFUSE("Transfer-Encoding: identity", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r",
                       "\n", "single 'chunked'"),
                REFUSE("Transfer-Encoding: chunked, gzip",
                       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r", "\n0\r\n\r\n",
                       "single 'chunked'"),
                REFUSE("Transfer-Encoding: gzip, chunked",
                       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r", "\n0\r\n\r\n",
                       "single 'chunked'"),
                REFUSE("Transfer-Encoding: chunked;q=1",
                       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked;q=1\r\n\r", "\n0\r\n\r\n",
                       "single 'chunked'"),
                REFUSE("Transfer-Encoding: chunked chunked",
                       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked chunked\r\n\r", "\n0\r\n\r\n",
                       "single 'chunked'"),
                REFUSE("Transfer-Encoding: chunkedx", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunkedx\r\n\r",
                       "\n0\r\n\r\n", "single 'chunked'"),
                REFUSE("Transfer-Encoding: xchunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r",
                       "\n0\r\n\r\n", "single 'chunked'"),
                REFUSE("Transfer-Encoding: chunked,", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked,\r\n\r",
                       "\n0\r\n\r\n", "single 'chunked'"),
                REFUSE("Transfer-Encoding empty", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r", "\n",
                       "single 'chunked'"),
                REFUSE("Transfer-Encoding twice", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                       "Transfer-Encoding: chunked\r\n\r", "\n0\r\n\r\n", "several Transfer-Encoding"),
                REFUSE("Transfer-Encoding twice, gzip then chunked",
                       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r",
                       "\n0\r\n\r\n", "several Transfer-Encoding"),
                REFUSE("Transfer-Encoding in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r",
                       "\n0\r\n\r\n", "HTTP/1.0"),
                /* Chunk sizes. */
                REFUSE("chunk size not hex", CHK, "g\r\n", "hexadecimal"),
                REFUSE("chunk size with a non-hex byte", CHK "1", "g\r\nx\r\n", "something else"),
                REFUSE("chunk size empty", CHK, "\r\n", "hexadecimal"),
                REFUSE("chunk size only an extension", CHK, ";a\r\n", "hexadecimal"),
                REFUSE("chunk size -1", CHK, "-1\r\n", "hexadecimal"),
                REFUSE("chunk size +1", CHK, "+1\r\n", "hexadecimal"),
                REFUSE("chunk size 0x2", CHK "0", "x2\r\nab\r\n0\r\n\r\n", "something else"),
                REFUSE("chunk size with a leading space", CHK, " 1\r\nx\r\n", "hexadecimal"),
                REFUSE("chunk size with a leading tab", CHK, "\t1\r\nx\r\n", "hexadecimal"),
                REFUSE("chunk size with a trailing space", CHK "1", " \r\nx\r\n", "something else"),
                REFUSE("chunk size of 16 digits", CHK "000000000000001", "0\r\n", "too large"),
                REFUSE("chunk size of 17 f", CHK "fffffffffffffff", "ff\r\n", "too large"),
                REFUSE("chunk size then a bare LF", CHK "1", "\nx\r\n0\r\n\r\n", "bare LF"),
                REFUSE("chunk extension then a bare LF", CHK "1;a=b", "\nx\r\n0\r\n\r\n", "bare LF"),
                REFUSE("chunk size, CR, no LF", CHK "1\r", "x\r\n0\r\n\r\n", NULL),
                REFUSE("chunk size, CR CR", CHK "1\r", "\r\nx\r\n0\r\n\r\n", "CR is not followed by LF"),
                REFUSE("a control byte in a chunk extension", CHK "1;a", "\x01\r\nx\r\n", "control byte"),
                REFUSE("NUL in a chunk extension", CHK "1;a", "\0\r\nx\r\n", "control byte"),
                REFUSE("DEL in a chunk extension", CHK "1;a", "\x7f\r\nx\r\n", "control byte"),
                REFUSE("chunk data longer than its size", CHK "1\r\nx", "y\r\n0\r\n\r\n", "longer than its size"),
                REFUSE("chunk data without its CRLF", CHK "2\r\nxy", "0\r\n\r\n", "lacks its CRLF"),
                REFUSE("chunk data ended by a bare LF", CHK "1\r\nx", "\n0\r\n\r\n", "lacks its CRLF"),
                REFUSE("chunk data ended by CR alone", CHK "1\r\nx\r", "0\r\n\r\n", NULL),
                REFUSE("last chunk, CR, no LF", CHK "0\r", "x\r\n", NULL),
                REFUSE("last chunk then a bare LF", CHK "0", "\n\r\n", "bare LF"),
                REFUSE("a trailer ended by a bare LF", CHK "0\r\n", "\n", "bare LF"),
                REFUSE("a trailer field with a bare LF", CHK "0\r\nX: a", "\n\r\n", "bare LF"),
                REFUSE("obs-fold in a trailer", CHK "0\r\nX: a\r\n", " b\r\n\r\n", "obs-fold"),
                REFUSE("NUL in a trailer", CHK "0\r\nX: a", "\0\r\n\r\n", "NUL"),
                REFUSE("whitespace before a colon in a trailer", CHK "0\r\nX", " : a\r\n\r\n", "colon"),
        };

        run_cases(cases, ELEMS(cases));
}

static void test_fields(void) {
        static const Case cases[] = {
                REFUSE("obs-fold with a space", G "X: a\r\n", " b\r\n\r\n", "obs-fold"),
                REFUSE("obs-fold with a tab", G "X: a\r\n", "\tb\r\n\r\n", "obs-fold"),
                REFUSE("obs-fold after an empty Content-Length", "POST / HTTP/1.1\r\nContent-Length:\r",
                       "\n 5\r\n\r\nhello", "Content-Length is empty"),
                REFUSE("obs-fold of the Content-Length", "POST / HTTP/1.1\r\nContent-Length: 5\r\n", " 5\r\n\r\nhello",
                       "obs-fold"),
                REFUSE("obs-fold of the Transfer-Encoding", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n",
                       "\t, gzip\r\n\r\n0\r\n\r\n", "obs-fold"),
                REFUSE("whitespace starting the first header line", "GET / HTTP/1.1\r\n", " Host: x\r\n\r\n", "obs-fold"),
                REFUSE("a space before a colon", "GET / HTTP/1.1\r\nHost", " : x\r\n\r\n", "colon"),
                REFUSE("a tab before a colon", G "Content-Length", "\t: 0\r\n\r\n", "colon"),
                REFUSE("Transfer-Encoding with a space before the colon", "POST / HTTP/1.1\r\nTransfer-Encoding",
                       " : chunked\r\n\r\n0\r\n\r\n", "colon"),
                REFUSE("an empty header name", G, ": x\r\n\r\n", "empty name"),
                REFUSE("a header name that is not a token", G "X", "(y): 1\r\n\r\n", "not a token"),
                REFUSE("a header name that starts with a non-token byte", G, "\"x\": 1\r\n\r\n", "not a token"),
                REFUSE("a header name with obs-text", G "X", "\xc3\xa9: 1\r\n\r\n", "not a token"),
                REFUSE("a header line without a colon", "GET / HTTP/1.1\r\nHost", "\r\n\r\n", NULL),
                REFUSE("a header name ended by a bare LF", "GET / HTTP/1.1\r\nHost", "\n\r\n", "no colon"),
                REFUSE("a bare LF in a value", G "X: a", "\nY: b\r\n\r\n", "bare LF"),
                REFUSE("a bare LF ending the request line", "GET / HTTP/1.1", "\n\r\n", "bare LF"),
                REFUSE("a bare LF ending the head", G "X: a\r\n", "\n", "bare LF"),
                REFUSE("bare LFs only", "GET / HTTP/1.1", "\nHost: x\n\n", "bare LF"),
                REFUSE("a lone CR in a value", G "X: a\r", "b\r\n\r\n", NULL),
                REFUSE("CR CR LF", G "X: a\r", "\r\n\r\n", "CR is not followed by LF"),
                REFUSE("the empty line: CR without LF", G "\r", "X: 1\r\n\r\n", NULL),
                REFUSE("the empty line: CR CR", G "\r", "\r\n", "CR is not followed by LF"),
                REFUSE("a NUL in a value", G "X: a", "\0b\r\n\r\n", "NUL"),
                REFUSE("a NUL starting a value", G "X: ", "\0\r\n\r\n", "NUL"),
                REFUSE("a NUL in a Content-Length value", "POST / HTTP/1.1\r\nContent-Length: 1", "\0\r\n\r\nab", "NUL"),
                REFUSE("SOH in a value", G "X: a", "\x01\r\n\r\n", "control byte"),
                REFUSE("BS in a value", G "X: a", "\x08\r\n\r\n", "control byte"),
                REFUSE("VT in a value", G "X: a", "\x0b\r\n\r\n", "control byte"),
                REFUSE("FF in a value", G "X: a", "\x0c\r\n\r\n", "control byte"),
                REFUSE("ESC in a value", G "X: a", "\x1b[0m\r\n\r\n", "control byte"),
                REFUSE("US in a value", G "X: a", "\x1f\r\n\r\n", "control byte"),
                REFUSE("DEL in a value", G "X: a", "\x7f\r\n\r\n", "control byte"),
                REFUSE("a NUL in a name", G "X", "\0: 1\r\n\r\n", "NUL"),
                REFUSE("a NUL starting a field line", G, "\0X: 1\r\n\r\n", "NUL"),
                REFUSE("a control byte in a name", G "X", "\x01: 1\r\n\r\n", "control byte"),
                REFUSE("a control byte starting a field line", G, "\x01X: 1\r\n\r\n", "control byte"),
                REFUSE("DEL in a name", G "X", "\x7f: 1\r\n\r\n", "control byte"),
                REFUSE("a bad field after an Upgrade header", G "Upgrade: tcp\r\nX: ", "\0\r\n\r\n", "NUL"),
        };

        run_cases(cases, ELEMS(cases));
}

#define NEEDS_HOST "an HTTP/1.1 request needs a Host header"
#define SEVERAL_HOSTS "the request has several Host headers"

/* Host: exactly one in HTTP/1.1, at most one in HTTP/1.0, checked when the head ends (after
 * its framing); a trailer's fields are not counted. */
static void test_host(void) {
        static const Case cases[] = {
                /* Refused at the LF that ends the head. */
                REFUSE("HTTP/1.1 without Host", "GET / HTTP/1.1\r\nX: a\r\n\r", "\n", NEEDS_HOST),
                REFUSE("HTTP/1.1 without any header", "GET /_ping HTTP/1.1\r\n\r", "\n", NEEDS_HOST),
                REFUSE("HTTP/1.1 with a body and no Host", "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r", "\nab",
                       NEEDS_HOST),
                /* A Host in the trailer comes too late: the head is refused first. */
                REFUSE("HTTP/1.1 chunked, Host only in the trailer",
                       "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r", "\n0\r\nHost: x\r\n\r\n", NEEDS_HOST),
                REFUSE("an Upgrade request without Host does not switch protocols", "GET / HTTP/1.1\r\nUpgrade: tcp\r\n\r",
                       "\n\x16\x03\x01", NEEDS_HOST),
                ACCEPT("HTTP/1.0 without Host", "GET / HTTP/1.0\r\nX: a\r\n\r\n", 1),
                ACCEPT("HTTP/1.0 with Host", "GET / HTTP/1.0\r\nHost: x\r\n\r\n", 1),
                ACCEPT("HTTP/1.0 with a body and no Host, then HTTP/1.1 with Host",
                       "POST / HTTP/1.0\r\nContent-Length: 1\r\n\r\nx" G "\r\n", 2),
                /* An empty value is a Host all the same. */
                ACCEPT("an empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 1),
                ACCEPT("a Host of only OWS", "GET / HTTP/1.1\r\nHost: \t \r\n\r\n", 1),
                ACCEPT("Host in any case", "GET / HTTP/1.1\r\nhOST: x\r\n\r\n" "GET / HTTP/1.1\r\nhost: x\r\n\r\n", 2),
                ACCEPT("Host after the other fields",
                       "POST / HTTP/1.1\r\nContent-Length: 2\r\nX: a\r\nHost: x\r\n\r\nab", 1),
                /* A longer or a shorter name is another field. */
                REFUSE("Hostname is not Host", "GET / HTTP/1.1\r\nHostname: x\r\n\r", "\n", NEEDS_HOST),
                REFUSE("Hos is not Host", "GET / HTTP/1.1\r\nHos: x\r\n\r", "\n", NEEDS_HOST),
                REFUSE("X-Host is not Host", "GET / HTTP/1.1\r\nX-Host: x\r\n\r", "\n", NEEDS_HOST),
                /* Two: refused whatever their values, case and version. */
                REFUSE("two Host fields", "GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r", "\n", SEVERAL_HOSTS),
                REFUSE("Host and host", "GET / HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r", "\n", SEVERAL_HOSTS),
                REFUSE("two empty Host fields", "GET / HTTP/1.1\r\nHost:\r\nHost:\r\n\r", "\n", SEVERAL_HOSTS),
                REFUSE("two Host fields apart, and a body",
                       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nHOST: b\r\n\r", "\nab", SEVERAL_HOSTS),
                REFUSE("three Host fields", G "Host: x\r\nHost: x\r\n\r", "\n", SEVERAL_HOSTS),
                REFUSE("two Host fields in HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r", "\n", SEVERAL_HOSTS),
                /* A trailer's Host is just a field, and no Host of the next request. */
                ACCEPT("Host in a trailer does not count", CHK "0\r\nHost: y\r\n\r\n", 1),
                ACCEPT("two Host fields in a trailer", CHK "0\r\nHost: y\r\nhost: z\r\n\r\n", 1),
                REFUSE_AFTER("a Host in a trailer, then a request without Host", CHK "0\r\nHost: y\r\n\r\n",
                             "GET / HTTP/1.1\r\n\r", "\n", 1, NEEDS_HOST),
                /* Each request of a stream needs its own. */
                REFUSE_AFTER("a request without Host after a good one", G "\r\n", "GET /y HTTP/1.1\r\nX: a\r\n\r", "\n", 1,
                             NEEDS_HOST),
                REFUSE_AFTER("a request without Host after a body",
                             "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab", "GET / HTTP/1.1\r\n\r", "\n", 1,
                             NEEDS_HOST),
                REFUSE_AFTER("two Host fields in the second request", G "\r\n", G "host: y\r\n\r", "\n", 1,
                             SEVERAL_HOSTS),
                /* The framing is checked first. */
                REFUSE("Content-Length and Transfer-Encoding without Host",
                       "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r", "\n0\r\n\r\n",
                       "the request has both Content-Length and Transfer-Encoding"),
                REFUSE("two Content-Length and two Host fields",
                       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nHost: b\r\nContent-Length: 1\r\n\r", "\nx",
                       "the request has several Content-Length headers"),
                REFUSE("Transfer-Encoding: gzip without Host", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r", "\n",
                       "single 'chunked'"),
                REFUSE("Transfer-Encoding in HTTP/1.0 with two Host fields",
                       "POST / HTTP/1.0\r\nHost: a\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r", "\n0\r\n\r\n",
                       "Transfer-Encoding in an HTTP/1.0 request"),
                /* A bad field fails at its own byte, before the head ends. */
                REFUSE("a NUL in a head without Host", "GET / HTTP/1.1\r\nX: a", "\0\r\n\r\n", "NUL"),
        };
        RequestGate g;

        run_cases(cases, ELEMS(cases));

        /* The exact words, and where the failing request began. */
        {
                static const char two[] = G "\r\n" "GET /y HTTP/1.1\r\n\r\n";

                request_gate_init(&g, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
                is_int((long) sizeof(two) - 2, (long) request_gate_feed(&g, P(two)),
                       "Host: a request without Host after a good one is refused at its last byte");
                ok(request_gate_failed(&g), "Host: failed");
                is_int(400, g.status, "Host: 400");
                is_string(NEEDS_HOST, g.error, "Host: the reason for none");
                is_int(1, (long) g.requests, "Host: one complete request before it");
                is_int((long) sizeof(G "\r\n") - 1, (long) g.request_began,
                       "Host: the refused request began after the first");
                is_string("/y", g.target, "Host: the target of the refused request");
        }
        {
                static const char two[] = "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n";

                request_gate_init(&g, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
                is_int((long) sizeof(two) - 2, (long) request_gate_feed(&g, P(two)),
                       "Host: two Host fields are refused at the last byte of the head");
                is_int(400, g.status, "Host: 400 for two");
                is_string(SEVERAL_HOSTS, g.error, "Host: the reason for two");
                is_int(0, (long) g.request_began, "Host: the request with two began at 0");
        }
}

static void test_request_line(void) {
        static const Case cases[] = {
                REFUSE("a tab after the method", "GET", "\t/ HTTP/1.1\r\n\r\n", "tab"),
                REFUSE("a tab for the target", "GET ", "\t/ HTTP/1.1\r\n\r\n", "tab"),
                REFUSE("a tab in the target", "GET /a", "\tb HTTP/1.1\r\n\r\n", "tab"),
                REFUSE("a tab before the version", "GET /", "\tHTTP/1.1\r\n\r\n", "tab"),
                REFUSE("two spaces after the method", "GET ", " / HTTP/1.1\r\n\r\n", "two spaces"),
                REFUSE("two spaces before the version", "GET / ", " HTTP/1.1\r\n\r\n", "two spaces before"),
                REFUSE("a space in the target", "GET /a ", "b HTTP/1.1\r\n\r\n", "space inside the request-target"),
                REFUSE("a space before the method", "", " GET / HTTP/1.1\r\n\r\n", "whitespace before the method"),
                REFUSE("a tab before the method", "", "\tGET / HTTP/1.1\r\n\r\n", "whitespace before the method"),
                REFUSE("a space after an empty line", "\r\n", " GET / HTTP/1.1\r\n\r\n", "whitespace before the method"),
                REFUSE("a space after the version", "GET / HTTP/1.1", " \r\n\r\n", "after the HTTP version"),
                REFUSE("HTTP/0.9", "GET /", "\r\n", "HTTP/0.9"),
                REFUSE("HTTP/0.9 with a bare LF", "GET /", "\n", "HTTP/0.9"),
                REFUSE("HTTP/2.0", "GET / HTTP/", "2.0\r\n\r\n", "HTTP/1.0 and HTTP/1.1"),
                REFUSE("HTTP/0.9 spelt out", "GET / HTTP/", "0.9\r\n\r\n", "HTTP/1.0 and HTTP/1.1"),
                REFUSE("HTTP/1.2", "GET / HTTP/1.", "2\r\n\r\n", "HTTP/1.0 and HTTP/1.1"),
                REFUSE("HTTP/1.10", "GET / HTTP/1.1", "0\r\n\r\n", "HTTP/1.0 and HTTP/1.1"),
                REFUSE("HTTP/1.1x", "GET / HTTP/1.1", "x\r\n\r\n", "HTTP/1.0 and HTTP/1.1"),
                REFUSE("HTTP/1", "GET / HTTP/1", "\r\n\r\n", "HTTP/1.0 and HTTP/1.1"),
                REFUSE("HTTP/1.", "GET / HTTP/1.", "\r\n\r\n", "HTTP/1.0 and HTTP/1.1"),
                REFUSE("HTTP/3", "GET / HTTP/", "3\r\n\r\n", "HTTP/1.0 and HTTP/1.1"),
                REFUSE("http/1.1", "GET / ", "http/1.1\r\n\r\n", "no HTTP version"),
                REFUSE("HTTPS/1.1", "GET / HTTP", "S/1.1\r\n\r\n", "HTTP/1.0 and HTTP/1.1"),
                REFUSE("HTTP/1.1 ended by a bare LF", "GET / HTTP/1.1", "\n\r\n", "bare LF"),
                REFUSE("a NUL after the version", "GET / HTTP/1.1", "\0\r\n\r\n", "HTTP/1.0 and HTTP/1.1"),
                REFUSE("the request line: CR without LF", "GET / HTTP/1.1\r", "X: 1\r\n\r\n", NULL),
                REFUSE("the HTTP/2 preface", "PRI * HTTP/", "2.0\r\n\r\nSM\r\n\r\n", "HTTP/1.0 and HTTP/1.1"),
                REFUSE("a method only", "GET", "\r\n\r\n", "no target and no version"),
                REFUSE("a method only, bare LF", "GET", "\n", "no target and no version"),
                REFUSE("a method and a space", "GET ", "\r\n\r\n", "no target"),
                REFUSE("a method not a token", "GE", "(T / HTTP/1.1\r\n\r\n", "not a token"),
                REFUSE("a method starting with a non-token byte", "", "@GET / HTTP/1.1\r\n\r\n", "not a token"),
                REFUSE("a method with obs-text", "GE", "\xc9T / HTTP/1.1\r\n\r\n", "not a token"),
                REFUSE("a NUL first", "", "\0GET / HTTP/1.1\r\n\r\n", "NUL"),
                REFUSE("a NUL in the method", "GE", "\0T / HTTP/1.1\r\n\r\n", "NUL"),
                REFUSE("a control byte in the method", "GE", "\x01T / HTTP/1.1\r\n\r\n", "control byte"),
                REFUSE("a NUL in the target", "GET /a", "\0b HTTP/1.1\r\n\r\n", "NUL byte in the request-target"),
                REFUSE("a control byte in the target", "GET /a", "\x01" "b HTTP/1.1\r\n\r\n",
                       "control byte in the request-target"),
                REFUSE("ESC in the target", "GET /a", "\x1b" "b HTTP/1.1\r\n\r\n", "control byte in the request-target"),
                REFUSE("DEL in the target", "GET /a", "\x7f" "b HTTP/1.1\r\n\r\n", "control byte in the request-target"),
                REFUSE("a CR in the target", "GET /a", "\rb HTTP/1.1\r\n\r\n", "no HTTP version"),
                REFUSE("an LF in the target", "GET /a", "\nb HTTP/1.1\r\n\r\n", "no HTTP version"),
                REFUSE("a bare LF first", "", "\nGET / HTTP/1.1\r\n\r\n", "bare LF"),
                REFUSE("a lone CR first", "\r", "GET / HTTP/1.1\r\n\r\n", NULL),
                REFUSE("CR CR first", "\r", "\r\nGET / HTTP/1.1\r\n\r\n", "CR is not followed by LF"),
                REFUSE("a control byte first", "", "\x01GET / HTTP/1.1\r\n\r\n", "control byte"),
                REFUSE("a TLS ClientHello", "", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "control byte"),
                REFUSE("DEL first", "", "\x7fGET / HTTP/1.1\r\n\r\n", "control byte"),
                REFUSE("obs-text first", "", "\xffGET / HTTP/1.1\r\n\r\n", "not a token"),
                REFUSE("JSON instead of a request", "", "{\"a\":1}\r\n", "not a token"),
                REFUSE_AFTER("a bad request after a good one", G "\r\n", "GET / ", " HTTP/1.1\r\n\r\n", 1, "two spaces"),
        };

        run_cases(cases, ELEMS(cases));
}

/* The request before the failing one is complete: request_began is where the failing one began. */
static void test_began_same_feed(void) {
        static const Case cases[] = {
                REFUSE_AFTER("after one request", G "\r\n", "", " GET / HTTP/1.1\r\n\r\n", 1, "whitespace"),
                REFUSE_AFTER("after two requests, in the headers",
                             G "\r\n" "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab",
                             "GET /y HTTP/1.1\r\nX: a", "\n\r\n", 2, "bare LF"),
                REFUSE_AFTER("after a chunked request, in the request line", CHK "1\r\nx\r\n0\r\n\r\n", "GET",
                             "\t/ HTTP/1.1\r\n\r\n", 1, "tab"),
                /* Empty lines before the failing request belong to it. */
                REFUSE_AFTER("after a request and empty lines", G "\r\n", "\r\n\r\n", "\nGET / HTTP/1.1\r\n\r\n", 1,
                             "bare LF"),
                REFUSE_AFTER("after a body, at once", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", "",
                             "\0", 1, "NUL"),
                REFUSE_AFTER("after a body, in the method", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
                             "GE", "\0T / HTTP/1.1\r\n\r\n", 1, "NUL"),
                REFUSE_AFTER("in the second request's framing", G "\r\n",
                             "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r", "\na", 1,
                             "several Content-Length"),
                REFUSE_AFTER("after four requests", G "\r\n" G "\r\n" "GET / HTTP/1.0\r\n\r\n" CHK "0\r\n\r\n",
                             "\r\nGET / HTTP/", "2.0\r\n\r\n", 4, "HTTP/1.0 and HTTP/1.1"),
                /* An Upgrade header in a trailer does not switch protocols. */
                REFUSE_AFTER("Upgrade in a trailer", CHK "0\r\nUpgrade: tcp\r\n\r\n", "", " garbage", 1, "whitespace"),
                REFUSE_AFTER("Upgrade-Insecure-Requests", G "Upgrade-Insecure-Requests: 1\r\n\r\n", "", "\0", 1, "NUL"),
        };

        run_cases(cases, ELEMS(cases));
}

static size_t build(char *buf, size_t size, const char *parts[], size_t n) {
        size_t len = 0;

        for (size_t i = 0; i < n; i++) {
                size_t l = strlen(parts[i]);

                if (len + l >= size)
                        bail("build: buffer too small");
                memcpy(buf + len, parts[i], l);
                len += l;
        }
        buf[len] = '\0';
        return len;
}

static char *repeat(char c, size_t n) {
        char *s = malloc(n + 1);

        if (!s)
                bail("out of memory");
        memset(s, c, n);
        s[n] = '\0';
        return s;
}

static void test_limits(void) {
        static const char req[] = G "\r\n"; /* GET / HTTP/1.1, Host: x: 27 bytes */
        size_t L = sizeof(req) - 1;
        char buf[200000];
        char name[128];
        size_t len;

        is_int(27, (long) L, "the reference request is 27 bytes");

        /* The request-target: 16 allowed. */
        check_stream("target of max_target", P("GET /0123456789abcde HTTP/1.1\r\nHost: x\r\n\r\n"), NO_FAILURE, 0, 1,
                    BEGAN_END, NULL, 16, DEFAULT_MAX_HEADER);
        check_stream("target of max_target + 1", P("GET /0123456789abcdef HTTP/1.1\r\nHost: x\r\n\r\n"), 20, 414, 0, 0,
                    "SOCKET_PROXY_MAX_TARGET_BYTES", 16, DEFAULT_MAX_HEADER);
        check_stream("target of max_target + 1 without a version", P("GET /0123456789abcdef"), 20, 414, 0, 0,
                    "request-target is longer", 16, DEFAULT_MAX_HEADER);
        check_stream("target over the limit in the second request",
                    P(G "\r\n" "GET /0123456789abcdefgh HTTP/1.1\r\nHost: x\r\n\r\n"),
                    sizeof(G "\r\n" "GET /0123456789abcde") - 1, 414, 1, (long) L, "request-target", 16,
                    DEFAULT_MAX_HEADER);
        check_stream("target of max_target, twice",
                    P("GET /0123456789abcde HTTP/1.1\r\nHost: x\r\n\r\nGET /0123456789abcde HTTP/1.1\r\nHost: x\r\n\r\n"),
                    NO_FAILURE, 0, 2, BEGAN_END, NULL, 16, DEFAULT_MAX_HEADER);
        check_stream("target limit of 1", P(G "\r\n" "GET /x HTTP/1.1\r\nHost: x\r\n\r\n"), sizeof(G "\r\n" "GET /") - 1,
                    414, 1, (long) L, NULL, 1, DEFAULT_MAX_HEADER);

        /* The default limits. */
        {
                char *t = repeat('a', DEFAULT_MAX_TARGET - 1);
                const char *ok_parts[] = { "GET /", t, " HTTP/1.1\r\nHost: x\r\n\r\n" };
                const char *bad_parts[] = { "GET /", t, "b HTTP/1.1\r\nHost: x\r\n\r\n" };

                len = build(buf, sizeof(buf), ok_parts, ELEMS(ok_parts));
                check_stream("a target of 8192 bytes (default)", buf, len, NO_FAILURE, 0, 1, BEGAN_END, NULL,
                            DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
                len = build(buf, sizeof(buf), bad_parts, ELEMS(bad_parts));
                check_stream("a target of 8193 bytes (default)", buf, len, 4 + DEFAULT_MAX_TARGET, 414, 0, 0, NULL,
                            DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
                free(t);
        }

        /* The head: 27 allowed. */
        check_stream("head of max_head", req, L, NO_FAILURE, 0, 1, BEGAN_END, NULL, DEFAULT_MAX_TARGET, L);
        check_stream("head of max_head + 1", req, L, L - 1, 431, 0, 0, "SOCKET_PROXY_MAX_HEADER_BYTES",
                    DEFAULT_MAX_TARGET, L - 1);
        check_stream("head of max_head + 1, cut before the end", req, L - 5, L - 6, 431, 0, 0, "headers are larger",
                    DEFAULT_MAX_TARGET, L - 6);
        check_stream("the limit is per request",
                    P("GET / HTTP/1.1\r\nHost: x\r\n\r\n" "GET / HTTP/1.1\r\nHost: y\r\n\r\n"
                      "GET / HTTP/1.1\r\nHost: z\r\n\r\n"),
                    NO_FAILURE, 0, 3, BEGAN_END, NULL, DEFAULT_MAX_TARGET, L);
        check_stream("the second request over the limit",
                    P("GET / HTTP/1.1\r\nHost: x\r\n\r\n" "GET / HTTP/1.1\r\nHost: xy\r\n\r\n"), 2 * L, 431, 1,
                    (long) L, "headers are larger", DEFAULT_MAX_TARGET, L);
        /* Empty lines before a request count as its head. */
        check_stream("leading empty lines count", P("\r\n" "GET / HTTP/1.1\r\nHost: x\r\n\r\n"), L + 1, 431, 0, 0,
                    NULL, DEFAULT_MAX_TARGET, L + 1);
        check_stream("leading empty lines count, within the limit", P("\r\n" "GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
                    NO_FAILURE, 0, 1, BEGAN_END, NULL, DEFAULT_MAX_TARGET, L + 2);
        check_stream("only empty lines, over the limit", P("\r\n\r\n\r\n\r\n\r\n\r\n"), 10, 431, 0, 0, NULL,
                    DEFAULT_MAX_TARGET, 10);
        /* The body does not count: max_head is the head's size. */
        {
                static const char head[] = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n";
                const char *parts[] = { head, "0123456789012345678901234567890123456789" };

                len = build(buf, sizeof(buf), parts, ELEMS(parts));
                check_stream("a body beyond max_head", buf, len, NO_FAILURE, 0, 1, BEGAN_END, NULL, DEFAULT_MAX_TARGET,
                             sizeof(head) - 1);
        }
        check_stream("chunks beyond max_head", P(CHK "28\r\n0123456789012345678901234567890123456789\r\n0\r\n\r\n"),
                    NO_FAILURE, 0, 1, BEGAN_END, NULL, DEFAULT_MAX_TARGET, sizeof(CHK) - 1);
        /* A trailer has the limit of its own: the head (CHK) and the trailer are max_head bytes each. */
        {
                size_t max = sizeof(CHK) - 1;
                char *a = repeat('a', max - (sizeof("X-Long: \r\n\r\n") - 1));
                const char *fits[] = { CHK "0\r\nX-Long: ", a, "\r\n\r\n" };
                const char *over[] = { CHK "0\r\nX-Long: ", a, "b\r\n\r\n" };

                len = build(buf, sizeof(buf), fits, ELEMS(fits));
                check_stream("a trailer of max_head", buf, len, NO_FAILURE, 0, 1, BEGAN_END, NULL, DEFAULT_MAX_TARGET, max);
                len = build(buf, sizeof(buf), over, ELEMS(over));
                check_stream("a trailer of max_head + 1", buf, len, len - 1, 431, 0, 0, "trailer is larger",
                            DEFAULT_MAX_TARGET, max);
                free(a);
        }

        /* The default head limit. */
        {
                /* G (25) + "X: " (3) + value + CRLF CRLF (4) */
                char *v = repeat('v', DEFAULT_MAX_HEADER - (sizeof(G "X: \r\n\r\n") - 1));
                const char *fits[] = { G "X: ", v, "\r\n\r\n" };
                const char *over[] = { G "X: ", v, "w\r\n\r\n" };

                len = build(buf, sizeof(buf), fits, ELEMS(fits));
                check_stream("a head of max_head bytes (the default)", buf, len, NO_FAILURE, 0, 1, BEGAN_END, NULL,
                             DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
                len = build(buf, sizeof(buf), over, ELEMS(over));
                check_stream("a head of max_head + 1 bytes (the default)", buf, len, DEFAULT_MAX_HEADER, 431, 0, 0, NULL,
                             DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
                free(v);
        }

        /* Header fields: FIELDS_MAX allowed. */
        {
                char why[64];
                size_t n = 0;

                snprintf(why, sizeof(why), "more than %u header fields", FIELDS_MAX);
                /* G's Host is the first. */
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, G);
                for (unsigned i = 1; i < FIELDS_MAX; i++)
                        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "X-%u: %u\r\n", i, i);
                len = n;
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "\r\n");
                check_stream("FIELDS_MAX header fields", buf, n, NO_FAILURE, 0, 1, BEGAN_END, NULL, DEFAULT_MAX_TARGET,
                             DEFAULT_MAX_HEADER);
                n = len + (size_t) snprintf(buf + len, sizeof(buf) - len, "X-%u: 1\r\n\r\n", FIELDS_MAX);
                check_stream("FIELDS_MAX + 1 header fields", buf, n, len, 431, 0, 0, why, DEFAULT_MAX_TARGET,
                             DEFAULT_MAX_HEADER);
                /* The same with empty values and one-letter names (after Host and Content-Length). */
                n = 0;
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n");
                for (unsigned i = 2; i < FIELDS_MAX; i++)
                        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "a:\r\n");
                len = n;
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "\r\nx" G "\r\n");
                check_stream("FIELDS_MAX header fields with Content-Length, then a request", buf, n, NO_FAILURE, 0, 2,
                             BEGAN_END, NULL, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
                n = len + (size_t) snprintf(buf + len, sizeof(buf) - len, "b:\r\n\r\nx");
                check_stream("FIELDS_MAX + 1 header fields with Content-Length", buf, n, len, 431, 0, 0, why,
                             DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
                /* The count starts again with each request. */
                n = 0;
                for (unsigned r = 0; r < 3; r++) {
                        n += (size_t) snprintf(buf + n, sizeof(buf) - n, G);
                        for (unsigned i = 1; i < FIELDS_MAX; i++)
                                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "a:\r\n");
                        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "\r\n");
                }
                check_stream("FIELDS_MAX header fields in each of 3 requests", buf, n, NO_FAILURE, 0, 3, BEGAN_END,
                             NULL, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
                /* The limit on the second request of a feed. */
                n = 0;
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, G "\r\n" G);
                for (unsigned i = 1; i < FIELDS_MAX; i++)
                        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "a:\r\n");
                len = n;
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "a:\r\n\r\n");
                check_stream("FIELDS_MAX + 1 header fields in the second request", buf, n, len, 431, 1,
                             (long) sizeof(G "\r\n") - 1, why, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
        }

        /* Trailer fields: TRAILER_FIELDS_MAX allowed, counted apart from the header fields. */
        {
                char why[64];
                size_t n = 0;

                snprintf(why, sizeof(why), "more than %u trailer fields", TRAILER_FIELDS_MAX);
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "POST /build HTTP/1.1\r\nHost: x\r\n");
                for (unsigned i = 2; i < FIELDS_MAX; i++)
                        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "a:\r\n");
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "Transfer-Encoding: chunked\r\n\r\n0\r\n");
                for (unsigned i = 0; i < TRAILER_FIELDS_MAX; i++)
                        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "t:\r\n");
                len = n;
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "\r\n");
                check_stream("FIELDS_MAX header fields and TRAILER_FIELDS_MAX trailer fields", buf, n, NO_FAILURE, 0,
                             1, BEGAN_END, NULL, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
                n = len + (size_t) snprintf(buf + len, sizeof(buf) - len, "t:\r\n\r\n");
                check_stream("TRAILER_FIELDS_MAX + 1 trailer fields", buf, n, len, 431, 0, 0, why, DEFAULT_MAX_TARGET,
                             DEFAULT_MAX_HEADER);
        }

        /* Query arguments: QUERY_ARGUMENTS_MAX allowed (a '?', then one more for each '&'). */
        {
                char why[64];
                size_t n = 0;

                snprintf(why, sizeof(why), "more than %u query arguments", QUERY_ARGUMENTS_MAX);
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "GET /containers/json?a=0");
                for (unsigned i = 1; i < QUERY_ARGUMENTS_MAX; i++)
                        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "&a=%u", i);
                len = n;
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, " HTTP/1.1\r\nHost: x\r\n\r\n");
                check_stream("QUERY_ARGUMENTS_MAX query arguments", buf, n, NO_FAILURE, 0, 1, BEGAN_END, NULL,
                             DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
                n = len + (size_t) snprintf(buf + len, sizeof(buf) - len, "&b HTTP/1.1\r\nHost: x\r\n\r\n");
                check_stream("QUERY_ARGUMENTS_MAX + 1 query arguments", buf, n, len, 414, 0, 0, why, DEFAULT_MAX_TARGET,
                             DEFAULT_MAX_HEADER);
                n = len + (size_t) snprintf(buf + len, sizeof(buf) - len, "& HTTP/1.1\r\nHost: x\r\n\r\n");
                check_stream("QUERY_ARGUMENTS_MAX + 1 query arguments, the last empty", buf, n, len, 414, 0, 0, why,
                             DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);

                /* Empty arguments count too. */
                n = 0;
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "GET /x?");
                for (unsigned i = 1; i < QUERY_ARGUMENTS_MAX; i++)
                        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "&");
                len = n;
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, " HTTP/1.1\r\nHost: x\r\n\r\n");
                check_stream("QUERY_ARGUMENTS_MAX empty query arguments", buf, n, NO_FAILURE, 0, 1, BEGAN_END, NULL,
                             DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
                n = len + (size_t) snprintf(buf + len, sizeof(buf) - len, "& HTTP/1.1\r\nHost: x\r\n\r\n");
                check_stream("QUERY_ARGUMENTS_MAX + 1 empty query arguments", buf, n, len, 414, 0, 0, why,
                             DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);

                /* '&' before the '?' is part of the path; a second '?' is part of the query. */
                n = 0;
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "GET /");
                for (unsigned i = 0; i < 2 * QUERY_ARGUMENTS_MAX; i++)
                        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "&");
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "?");
                for (unsigned i = 0; i < 2 * QUERY_ARGUMENTS_MAX; i++)
                        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "?");
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, " HTTP/1.1\r\nHost: x\r\n\r\n");
                check_stream("'&' in the path and '?' in the query are not arguments", buf, n, NO_FAILURE, 0, 1,
                             BEGAN_END, NULL, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);

                /* The count starts again with each request, and the one after a request is checked. */
                n = 0;
                for (unsigned r = 0; r < 2; r++) {
                        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "GET /?");
                        for (unsigned i = 1; i < QUERY_ARGUMENTS_MAX; i++)
                                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "&");
                        n += (size_t) snprintf(buf + n, sizeof(buf) - n, " HTTP/1.1\r\nHost: x\r\n\r\n");
                }
                len = n;
                check_stream("QUERY_ARGUMENTS_MAX query arguments in each of 2 requests", buf, n, NO_FAILURE, 0, 2,
                             BEGAN_END, NULL, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "GET /?");
                for (unsigned i = 1; i < QUERY_ARGUMENTS_MAX; i++)
                        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "&");
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "& HTTP/1.1\r\nHost: x\r\n\r\n");
                check_stream("QUERY_ARGUMENTS_MAX + 1 query arguments in the third request", buf, n,
                             n - strlen("& HTTP/1.1\r\nHost: x\r\n\r\n"), 414, 2, (long) len, why, DEFAULT_MAX_TARGET,
                             DEFAULT_MAX_HEADER);
                /* A byte over both limits: the target's length is named. */
                n = 0;
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, "GET /?");
                for (unsigned i = 0; i < QUERY_ARGUMENTS_MAX; i++)
                        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "&");
                n += (size_t) snprintf(buf + n, sizeof(buf) - n, " HTTP/1.1\r\nHost: x\r\n\r\n");
                check_stream("a target too long and too many arguments at one byte", buf, n, 4 + QUERY_ARGUMENTS_MAX + 1,
                             414, 0, 0, "request-target is longer", QUERY_ARGUMENTS_MAX + 1, DEFAULT_MAX_HEADER);
                check_stream("too many arguments at the last byte the target may have", buf, n,
                             4 + QUERY_ARGUMENTS_MAX + 1, 414, 0, 0, why, QUERY_ARGUMENTS_MAX + 2, DEFAULT_MAX_HEADER);
        }

        /* Chunk extensions: a chunk-size line of up to 1024 bytes, its CR included. */
        {
                char *e = repeat('e', 2000);
                size_t chk = strlen(CHK);

                e[1021] = '\0';
                snprintf(name, sizeof(name), "a chunk-size line of 1023 bytes and CRLF");
                {
                        const char *parts[] = { CHK "1;", e, "\r\nx\r\n0\r\n\r\n" };

                        len = build(buf, sizeof(buf), parts, ELEMS(parts));
                        check_stream(name, buf, len, NO_FAILURE, 0, 1, BEGAN_END, NULL, DEFAULT_MAX_TARGET,
                                    DEFAULT_MAX_HEADER);
                }
                e[1021] = 'e';
                {
                        const char *parts[] = { CHK "1;", e, "\r\nx\r\n0\r\n\r\n" };

                        len = build(buf, sizeof(buf), parts, ELEMS(parts));
                        check_stream("a chunk extension of 2000 bytes", buf, len, chk + 1024, 400, 0, 0,
                                    "chunk extension is too long", DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
                }
                free(e);
        }
}

/* A request that asks to switch protocols, then anything: all accepted, and request_began
 * after the feed at once is the end of the Upgrade request. */
static void check_passthrough(const char *name, const char *req, size_t req_len, const char *after,
                              size_t after_len, uint64_t requests) {
        char buf[512];
        Outcome o;

        if (req_len + after_len > sizeof(buf))
                bail("check_passthrough: buffer too small");
        memcpy(buf, req, req_len);
        memcpy(buf + req_len, after, after_len);
        check_stream(name, buf, req_len + after_len, NO_FAILURE, 0, requests, (long) req_len, NULL, DEFAULT_MAX_TARGET,
                     DEFAULT_MAX_HEADER);
        feed_split(buf, req_len + after_len, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER, NULL, NULL, &o);
        is_int(GATE_PASSTHROUGH, o.phase, "%s: passthrough", name);
}

static void test_passthrough(void) {
        static const char up[] =
                "GET /containers/x/attach?stream=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n";
        static const char garbage[] = "\0\x01\n\r garbage GET  / HTTP/9\n\x16\x03\x01";
        RequestGate g;

        check_passthrough("anything after an Upgrade request", P(up), P(garbage), 1);
        check_passthrough("an Upgrade request at the end of the feed", P(G "Upgrade: h2c\r\n\r\n"), P(""), 1);
        check_passthrough("an Upgrade request with a body, then anything",
                          P("POST /exec/x/start HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nupgrade: tcp\r\n\r\n{}"),
                          P("\0 \n\r"), 1);
        check_passthrough("an Upgrade request with a chunked body, then anything",
                          P("POST /x HTTP/1.1\r\nHost: x\r\nUPGRADE: tcp\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "2\r\n{}\r\n0\r\nX: 1\r\n\r\n"),
                          P("\0\0"), 1);
        check_passthrough("a request before the Upgrade one", P(G "\r\n" G "Upgrade: tcp\r\n\r\n"), P("\x01\x02"), 2);
        check_passthrough("an empty Upgrade header", P(G "Upgrade:\r\n\r\n"), P("\0"), 1);
        check_passthrough("an Upgrade request in HTTP/1.0", P("GET / HTTP/1.0\r\nUpgrade: tcp\r\n\r\n"), P(" \t"), 1);
        check_passthrough("a request that looks bad after an Upgrade request", P(G "Upgrade: tcp\r\n\r\n"),
                          P("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), 1);

        /* Later feeds: everything, and -1 for request_began. */
        request_gate_init(&g, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
        is_int((long) sizeof(up) - 1, (long) request_gate_feed(&g, up, sizeof(up) - 1), "passthrough: the Upgrade request");
        is_int(1, (long) g.requests, "passthrough: one request");
        is_int(GATE_PASSTHROUGH, g.phase, "passthrough: the phase");
        ok(!request_gate_idle(&g), "passthrough: not idle");
        is_int((long) sizeof(garbage) - 1, (long) request_gate_feed(&g, garbage, sizeof(garbage) - 1),
               "passthrough: a later feed of garbage is accepted");
        is_int(-1, (long) g.request_began, "passthrough: request_began -1");
        is_int(0, (long) request_gate_feed(&g, garbage, 0), "passthrough: an empty feed");
        is_int(1, (long) g.requests, "passthrough: still one request");
        ok(!request_gate_failed(&g), "passthrough: never failed");
}

/* request_began across feeds. */
static void test_began_across_feeds(void) {
        RequestGate g;
        static const char body_and_more[] = "defghij" G "\r\n" "BAD\r\n";

        /* The failing request began in an earlier feed. */
        request_gate_init(&g, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
        is_int((long) sizeof(G "X: a\r") - 1, (long) request_gate_feed(&g, P(G "X: a\r")), "across feeds: the first part");
        is_int(0, (long) g.request_began, "across feeds: the first part began at 0");
        is_int(0, (long) request_gate_feed(&g, P("b\r\n\r\n")), "across feeds: refused at the first byte");
        ok(request_gate_failed(&g), "across feeds: failed");
        is_int(400, g.status, "across feeds: 400");
        is_int(-1, (long) g.request_began, "across feeds: the failing request began in an earlier feed");
        is_int(0, (long) request_gate_feed(&g, P(G "\r\n")), "across feeds: nothing more is taken");
        is_int(-1, (long) g.request_began, "across feeds: still -1 after the failure");
        ok(request_gate_failed(&g) && g.status == 400, "across feeds: the verdict stays");

        /* The same, refused in the middle of the second feed. */
        request_gate_init(&g, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
        request_gate_feed(&g, P("GET /x HT"));
        is_int(12, (long) request_gate_feed(&g, P("TP/1.1\r\nX: a\0b\r\n\r\n")), "across feeds: refused at the NUL");
        is_int(-1, (long) g.request_began, "across feeds: the NUL's request began in the first feed");
        is_string("GET", g.method, "the method of the refused request");
        is_string("/x", g.target, "the target of the refused request");

        /* The first feed ended with a complete request: the failing one began at 0. */
        request_gate_init(&g, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
        is_int((long) sizeof(G "\r\n") - 1, (long) request_gate_feed(&g, P(G "\r\n")), "a complete request");
        is_int((long) sizeof(G "\r\n") - 1, (long) g.request_began, "after a complete request, request_began is its end");
        ok(request_gate_idle(&g), "idle after a complete request");
        is_int(0, (long) request_gate_feed(&g, P(" GET / HTTP/1.1\r\n\r\n")), "the next feed is refused at once");
        is_int(0, (long) g.request_began, "the refused request began at 0 of its feed");
        is_int(1, (long) g.requests, "one complete request before it");

        /* A body across feeds, then complete requests, then a failing one. */
        request_gate_init(&g, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
        is_int((long) sizeof("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc") - 1,
               (long) request_gate_feed(&g, P("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")),
               "a body cut short");
        is_int(0, (long) g.request_began, "the POST began at 0");
        is_int(0, (long) g.requests, "the POST is not complete");
        is_int((long) sizeof("defghij" G "\r\n" "BAD") - 1,
               (long) request_gate_feed(&g, body_and_more, sizeof(body_and_more) - 1),
               "the rest of the body, a request, a bad one: refused at its CR");
        is_int((long) sizeof("defghij" G "\r\n") - 1, (long) g.request_began,
               "the bad request began after the body and the GET");
        is_int(2, (long) g.requests, "two complete requests");
        is_string("the request line has no target and no version", g.error, "the reason");
        is_string("BAD", g.method, "the method of the bad request");

        /* Leading empty lines in one feed, the request in the next: it began earlier. */
        request_gate_init(&g, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
        request_gate_feed(&g, P(G "\r\n" "\r\n"));
        ok(!request_gate_idle(&g), "not idle after an empty line");
        is_int(0, (long) request_gate_feed(&g, P("\n")), "a bare LF after the empty line");
        is_int(-1, (long) g.request_began, "the empty line belongs to the refused request: -1");

        /* Idle. */
        request_gate_init(&g, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
        ok(request_gate_idle(&g), "idle after init");
        ok(!request_gate_failed(&g), "not failed after init");
        is_int(0, (long) request_gate_feed(&g, "", 0), "an empty feed");
        is_int(0, (long) g.request_began, "an empty feed on an idle gate: request_began 0");
        ok(request_gate_idle(&g), "still idle after an empty feed");
        request_gate_feed(&g, P("G"));
        ok(!request_gate_idle(&g), "not idle after one byte");
        request_gate_feed(&g, P("ET / HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n"));
        ok(!request_gate_idle(&g), "not idle before a body");
        request_gate_feed(&g, P("x"));
        ok(request_gate_idle(&g), "idle after the body");
        is_int(2, (long) g.requests, "two requests");
        is_int(1, (long) g.request_began, "after a feed that ended a body: request_began is the end of the body");
        request_gate_feed(&g, P(CHK "0\r\n"));
        ok(!request_gate_idle(&g), "not idle in a trailer");
        request_gate_feed(&g, P("\r\n"));
        ok(request_gate_idle(&g), "idle after the trailer");
        is_int(3, (long) g.requests, "three requests");
}

static void test_audit_fields(void) {
        RequestGate g;
        char buf[400];
        int n;

        request_gate_init(&g, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
        request_gate_feed(&g, P("GET /containers/json HTTP/1.1\r\nX: \x01"));
        is_string("GET", g.method, "audit: the method");
        is_string("/containers/json", g.target, "audit: the target");

        request_gate_init(&g, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
        n = snprintf(buf, sizeof(buf), "ABCDEFGHIJKLMNOPQRSTUVWXYZ /%0200d HTTP/1.1\r\n\t", 0);
        request_gate_feed(&g, buf, (size_t) n);
        ok(request_gate_failed(&g), "audit: a long method and target, then a tab");
        is_string("ABCDEFGHIJKLMNO", g.method, "audit: the method is cut to 15 bytes");
        is_int(127, (long) strnlen(g.target, sizeof(g.target)), "audit: the target is cut to 127 bytes");
        ok(g.target[0] == '/' && g.target[1] == '0', "audit: the target's start");

        /* The second request's, not the first's. */
        request_gate_init(&g, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
        request_gate_feed(&g, P("DELETE /containers/abcdef HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\n\0"));
        is_string("GET", g.method, "audit: the failing request's method");
        is_string("/a", g.target, "audit: the failing request's target, not the longer one before");

        /* A query string, fed three bytes at a time: the runs stop at '?' and '&'. */
        {
                static const char q[] = "GET /images/json?all=1&filters=%7B%7D&x HTTP/1.1\r\nX: \x01";

                request_gate_init(&g, DEFAULT_MAX_TARGET, DEFAULT_MAX_HEADER);
                for (size_t at = 0; at < sizeof(q) - 1; at += 3)
                        request_gate_feed(&g, q + at, sizeof(q) - 1 - at < 3 ? sizeof(q) - 1 - at : 3);
                is_string("/images/json?all=1&filters=%7B%7D&x", g.target, "audit: a target with a query, in pieces");
                is_int(3, (long) g.query_arguments, "and its query arguments are counted");
        }
}

/* Random streams of good and bad pieces: whatever they are, the split must not matter. */
static void test_random_streams(void) {
        static const struct {
                const char *s;
                size_t n;
        } pieces[] = {
                { P(G) }, { P("\r\n") }, { P("Host: x\r\n") }, { P("Content-Length: 3\r\n") },
                { P("Transfer-Encoding: chunked\r\n") }, { P("Upgrade: tcp\r\n") }, { P("abc") },
                { P("3\r\nabc\r\n") }, { P("0\r\n") }, { P("1;x=y\r\n") }, { P("POST /x HTTP/1.1\r\n") },
                { P("GET / HTTP/1.0\r\n") }, { P("X: a\r\n") }, { P(" ") }, { P("\t") }, { P("\n") }, { P("\r") },
                { P("\0") }, { P(":") }, { P("ff\r\n") }, { P("Content-Length: 0\r\n") }, { P("\r\n\r\n") },
                { P("HTTP/1.1") }, { P("GET") }, { P("/") }, { P("X:\x01\r\n") }, { P("chunked") },
                { P("Content-Length: 1 1\r\n") }, { P("/0123456789abcdef0123456789abcdef0123456789abcdef0123456789") },
                { P(G "\r\n") }, { P("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nab\0") },
                { P(CHK "3\r\n\0\n\r\r\n0\r\n\r\n") },
                { P(G "Upgrade: tcp\r\n\r\n") },
        };
        unsigned mismatches = 0, refused = 0, accepted = 0, passthrough = 0;
        char buf[4096];

        for (unsigned iter = 0; iter < 3000; iter++) {
                size_t len = 0, k = (size_t) (rng() % 32) + 1;
                size_t one = 1, max = (size_t) (rng() % 20) + 1;
                Outcome once, o;

                for (size_t i = 0; i < k; i++) {
                        /* Whole requests half of the time, so that the streams get far, and
                         * sometimes one that switches protocols. */
                        uint64_t r = rng() % 32;
                        size_t j = r == 0 ? ELEMS(pieces) - 1 : r < 16 ? ELEMS(pieces) - 2 - rng() % 3 :
                                rng() % (ELEMS(pieces) - 1);

                        if (len + pieces[j].n > sizeof(buf))
                                break;
                        memcpy(buf + len, pieces[j].s, pieces[j].n);
                        len += pieces[j].n;
                }
                feed_split(buf, len, 48, 200, NULL, NULL, &once);
                if (once.phase == GATE_FAILED)
                        refused++;
                else if (once.phase == GATE_PASSTHROUGH)
                        passthrough++;
                else
                        accepted++;
                for (unsigned m = 0; m < 2; m++) {
                        if (m == 0)
                                feed_split(buf, len, 48, 200, split_fixed, &one, &o);
                        else
                                feed_split(buf, len, 48, 200, split_random, &max, &o);
                        if (!same_outcome(&once, &o) || !once.sane) {
                                if (mismatches++ == 0) {
                                        diag("random stream %u (%s): %s", iter, m == 0 ? "byte by byte" : "random",
                                             show(buf, len));
                                        diag_outcome("at once", &once);
                                        diag_outcome("split", &o);
                                }
                        }
                }
        }
        is_int(0, mismatches, "3000 random streams: the same at once, byte by byte and in random splits");
        ok(refused > 100 && accepted > 100 && passthrough > 100,
           "random streams: every verdict is covered (%u refused, %u accepted, %u passthrough)", refused, accepted,
           passthrough);
}

int main(void) {
        plan_lazy();

        test_valid();
        test_framing();
        test_fields();
        test_host();
        test_request_line();
        test_began_same_feed();
        test_limits();
        test_passthrough();
        test_began_across_feeds();
        test_audit_fields();
        test_random_streams();
        return 0;
}
