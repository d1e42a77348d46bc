/* SPDX-License-Identifier: MIT */
/* http-util: request-target canonicalization, header syntax, the chunked decoder and the
 * parser for the daemon's response head (untrusted input). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http-util.h"
#include "tap.h"

#define ELEMS(x) (sizeof(x) / sizeof((x)[0]))

static const char *target_error_name(int r) {
        static char buf[32];

        switch (r) {
        case TARGET_OK: return "TARGET_OK";
        case TARGET_NOT_ORIGIN_FORM: return "TARGET_NOT_ORIGIN_FORM";
        case TARGET_TOO_LONG: return "TARGET_TOO_LONG";
        case TARGET_BAD_BYTE: return "TARGET_BAD_BYTE";
        case TARGET_BAD_ESCAPE: return "TARGET_BAD_ESCAPE";
        case TARGET_FORBIDDEN_ESCAPE: return "TARGET_FORBIDDEN_ESCAPE";
        case TARGET_EMPTY_SEGMENT: return "TARGET_EMPTY_SEGMENT";
        case TARGET_DOT_SEGMENT: return "TARGET_DOT_SEGMENT";
        default:
                snprintf(buf, sizeof buf, "%d", r);
                return buf;
        }
}

/* A printable form of a raw target for test names. */
static const char *show(const char *s) {
        static char buf[4][160];
        static unsigned which;
        char *b = buf[which++ % 4];
        size_t n = 0;

        for (const unsigned char *p = (const unsigned char *) s; *p && n + 5 < sizeof buf[0]; p++)
                if (*p < 0x20 || *p >= 0x7f || *p == '\\')
                        n += (size_t) snprintf(b + n, sizeof buf[0] - n, "\\x%02x", *p);
                else
                        b[n++] = (char) *p;
        b[n] = '\0';
        return b;
}

static void test_target_accepted(void) {
        static const struct {
                const char *raw, *path, *query, *version;
        } cases[] = {
                { "/containers/json?all=1", "/containers/json", "all=1", "" },
                { "/containers/json", "/containers/json", NULL, "" },
                { "/containers/json?", "/containers/json", "", "" },
                { "/images/reg:5000/a/b:tag/json", "/images/reg:5000/a/b:tag/json", NULL, "" },
                { "/images/sha256:0123abcd/json", "/images/sha256:0123abcd/json", NULL, "" },
                { "/containers/a%62c/json", "/containers/abc/json", NULL, "" },
                { "/containers/a%62%63/json", "/containers/abc/json", NULL, "" },
                { "/containers/%4A%4a/json", "/containers/JJ/json", NULL, "" },
                /* Decoded once: %252e is the literal "%2e", an ordinary segment, not a dot. */
                { "/containers/%252e/json", "/containers/%2e/json", NULL, "" },
                { "/containers/%252e%252e/json", "/containers/%2e%2e/json", NULL, "" },
                { "/containers/%25/json", "/containers/%/json", NULL, "" },
                { "/containers/my%20name/json", "/containers/my name/json", NULL, "" },
                { "/containers/a-b_c.d~e/json", "/containers/a-b_c.d~e/json", NULL, "" },
                { "/x/!$&'()*+,;=:@", "/x/!$&'()*+,;=:@", NULL, "" },
                /* Names that merely start with dots are not dot segments. */
                { "/containers/.hidden/json", "/containers/.hidden/json", NULL, "" },
                { "/containers/.../json", "/containers/.../json", NULL, "" },
                { "/containers/..a/json", "/containers/..a/json", NULL, "" },
                { "/", "/", NULL, "" },
                { "/_ping", "/_ping", NULL, "" },
                /* The query is kept raw: it is forwarded, never matched. */
                { "/containers/json?filters=%7B%22status%22%3A%5B%22running%22%5D%7D",
                  "/containers/json", "filters=%7B%22status%22%3A%5B%22running%22%5D%7D", "" },
                { "/containers/abc/archive?path=/etc/../etc/passwd", "/containers/abc/archive",
                  "path=/etc/../etc/passwd", "" },
                { "/containers/json?a=%zz&b=%", "/containers/json", "a=%zz&b=%", "" },
                { "/containers/json?a?b", "/containers/json", "a?b", "" },
                /* Version prefixes. */
                { "/v1.41/containers/json?all=1", "/containers/json", "all=1", "1.41" },
                { "/v1/containers/json", "/containers/json", NULL, "1" },
                { "/v1.41.0/containers/json", "/containers/json", NULL, "1.41.0" },
                { "/v1.24/_ping", "/_ping", NULL, "1.24" },
                { "/v1.41", "/", NULL, "1.41" },
                { "/v1.41?x", "/", "x", "1.41" },
                { "/v123.456/info", "/info", NULL, "123.456" },
                { "/%761.41/info", "/info", NULL, "1.41" },
                /* Not prefixes: left in the path. */
                { "/v/info", "/v/info", NULL, "" },
                { "/V1.41/info", "/V1.41/info", NULL, "" },
                { "/v1..41/info", "/v1..41/info", NULL, "" },
                { "/v1./info", "/v1./info", NULL, "" },
                { "/v.1/info", "/v.1/info", NULL, "" },
                { "/v1.41x/info", "/v1.41x/info", NULL, "" },
                { "/version", "/version", NULL, "" },
                { "/v1.41/v1.41/info", "/v1.41/info", NULL, "1.41" },
                /* Longer than any real version: not taken as one, so it stays an unknown section. */
                { "/v1.2.3.4.5.6.7.89/info", "/v1.2.3.4.5.6.7.89/info", NULL, "" },
        };

        for (size_t i = 0; i < ELEMS(cases); i++) {
                HttpTarget t;
                int r = http_target_parse(cases[i].raw, &t);

                if (!is_int(TARGET_OK, r, "'%s' is accepted", cases[i].raw)) {
                        diag("got %s", target_error_name(r));
                        continue;
                }
                is_string(cases[i].path, t.path, "'%s': path", cases[i].raw);
                is_string(cases[i].query, t.query, "'%s': query", cases[i].raw);
                is_string(cases[i].version, t.api_version, "'%s': api_version", cases[i].raw);
                http_target_done(&t);
        }

        {
                HttpTarget t;
                http_target_parse("/containers/json?all=1", &t);
                is_int(16, (long) t.raw_path_size, "raw_path_size counts the bytes before '?'");
                ok(t.query && t.query[-1] == '?', "query points into the raw target after '?'");
                http_target_done(&t);
                ok(t.path == NULL, "http_target_done() leaves no dangling path");
        }
}

static void expect_refused(const char *raw, int want) {
        HttpTarget t;
        int r = http_target_parse(raw, &t);

        is_string(target_error_name(want), target_error_name(r), "'%s' is refused", show(raw));
        if (r == TARGET_OK)
                http_target_done(&t);
        else if (r > 0 && t.path)
                ok(false, "'%s': no path is left after a refusal", show(raw));
}

static void test_target_refused(void) {
        static const struct {
                const char *raw;
                int error;
        } cases[] = {
                /* Escapes that the daemon's router would turn into another path. */
                { "/containers/a%2fb/json", TARGET_FORBIDDEN_ESCAPE },
                { "/containers/a%2Fb/json", TARGET_FORBIDDEN_ESCAPE },
                { "/containers%2fjson", TARGET_FORBIDDEN_ESCAPE },
                { "/containers/a%5cb/json", TARGET_FORBIDDEN_ESCAPE },
                { "/containers/a%5Cb/json", TARGET_FORBIDDEN_ESCAPE },
                { "/containers/x/%2e%2e/secrets", TARGET_FORBIDDEN_ESCAPE },
                { "/containers/x/%2E%2E/secrets", TARGET_FORBIDDEN_ESCAPE },
                { "/containers/x/.%2e/secrets", TARGET_FORBIDDEN_ESCAPE },
                { "/containers/a%2eb/json", TARGET_FORBIDDEN_ESCAPE },
                { "/containers/a%00b/json", TARGET_FORBIDDEN_ESCAPE },
                { "/containers/a%0ab/json", TARGET_FORBIDDEN_ESCAPE },
                { "/containers/a%0Db/json", TARGET_FORBIDDEN_ESCAPE },
                { "/containers/a%09b/json", TARGET_FORBIDDEN_ESCAPE },
                { "/containers/a%1fb/json", TARGET_FORBIDDEN_ESCAPE },
                { "/containers/a%7fb/json", TARGET_FORBIDDEN_ESCAPE },
                { "/containers/a%7Fb/json", TARGET_FORBIDDEN_ESCAPE },
                /* Malformed escapes. */
                { "/containers/json%", TARGET_BAD_ESCAPE },
                { "/containers/json%4", TARGET_BAD_ESCAPE },
                { "/containers/%4/json", TARGET_BAD_ESCAPE },
                { "/containers/%zz/json", TARGET_BAD_ESCAPE },
                { "/containers/%g0/json", TARGET_BAD_ESCAPE },
                { "/containers/%0g/json", TARGET_BAD_ESCAPE },
                { "/containers/% 4/json", TARGET_BAD_ESCAPE },
                { "/containers/json%?x=1", TARGET_BAD_ESCAPE },
                { "/containers/json%4?x=1", TARGET_BAD_ESCAPE },
                { "/containers/%%41/json", TARGET_BAD_ESCAPE },
                /* Empty segments. */
                { "//containers/json", TARGET_EMPTY_SEGMENT },
                { "/containers//json", TARGET_EMPTY_SEGMENT },
                { "/containers/json/", TARGET_EMPTY_SEGMENT },
                { "/containers/json/?all=1", TARGET_EMPTY_SEGMENT },
                { "/containers/json//", TARGET_EMPTY_SEGMENT },
                { "//", TARGET_EMPTY_SEGMENT },
                { "/v1.41/", TARGET_EMPTY_SEGMENT },
                { "/v1.41//containers/json", TARGET_EMPTY_SEGMENT },
                /* Dot segments. */
                { "/./containers/json", TARGET_DOT_SEGMENT },
                { "/containers/./json", TARGET_DOT_SEGMENT },
                { "/../containers/json", TARGET_DOT_SEGMENT },
                { "/containers/x/..", TARGET_DOT_SEGMENT },
                { "/containers/x/.", TARGET_DOT_SEGMENT },
                { "/containers/x/../../secrets", TARGET_DOT_SEGMENT },
                { "/images/x/../../containers/abc/logs", TARGET_DOT_SEGMENT },
                { "/.", TARGET_DOT_SEGMENT },
                { "/..", TARGET_DOT_SEGMENT },
                { "/v1.41/../containers/json", TARGET_DOT_SEGMENT },
                /* Bytes a request line cannot hold or a URI path must escape. */
                { "/containers/a b/json", TARGET_BAD_BYTE },
                { "/containers/a\tb/json", TARGET_BAD_BYTE },
                { "/containers/a\x01" "b/json", TARGET_BAD_BYTE },
                { "/containers/a\x7f" "b/json", TARGET_BAD_BYTE },
                { "/containers/a\r\nb/json", TARGET_BAD_BYTE },
                { "/containers/caf\xc3\xa9/json", TARGET_BAD_BYTE },
                { "/containers\\json", TARGET_BAD_BYTE },
                { "/containers/..\\..\\json", TARGET_BAD_BYTE },
                { "/containers/json#frag", TARGET_BAD_BYTE },
                { "/containers/a\"b/json", TARGET_BAD_BYTE },
                { "/containers/a<b>/json", TARGET_BAD_BYTE },
                { "/containers/a{b}/json", TARGET_BAD_BYTE },
                { "/containers/a|b/json", TARGET_BAD_BYTE },
                { "/containers/a`b/json", TARGET_BAD_BYTE },
                { "/containers/a^b/json", TARGET_BAD_BYTE },
                { "/containers/json?all=1 HTTP/1.1", TARGET_BAD_BYTE },
                { "/containers/json?a=#", TARGET_BAD_BYTE },
                { "/containers/json?a=\x7f", TARGET_BAD_BYTE },
                { "/containers/json?a=\x80", TARGET_BAD_BYTE },
                { "/containers/json?a=\x01", TARGET_BAD_BYTE },
                /* Not origin-form. */
                { "http://x/containers/json", TARGET_NOT_ORIGIN_FORM },
                { "HTTP://localhost/v1.41/containers/json", TARGET_NOT_ORIGIN_FORM },
                { "*", TARGET_NOT_ORIGIN_FORM },
                { "", TARGET_NOT_ORIGIN_FORM },
                { "containers/json", TARGET_NOT_ORIGIN_FORM },
                { "?all=1", TARGET_NOT_ORIGIN_FORM },
                { " /containers/json", TARGET_NOT_ORIGIN_FORM },
                { "localhost:2375", TARGET_NOT_ORIGIN_FORM },
        };

        for (size_t i = 0; i < ELEMS(cases); i++)
                expect_refused(cases[i].raw, cases[i].error);

        /* Every byte from 0x80 up (UTF-8, Latin-1) is refused raw, in the path and the query. */
        {
                unsigned path_bad = 0, query_bad = 0;
                char raw[64];

                for (unsigned c = 0x80; c <= 0xff; c++) {
                        HttpTarget t;

                        snprintf(raw, sizeof raw, "/containers/a%cb/json", (char) c);
                        if (http_target_parse(raw, &t) != TARGET_BAD_BYTE) {
                                path_bad++;
                                http_target_done(&t);
                        }
                        snprintf(raw, sizeof raw, "/containers/json?x=%c", (char) c);
                        if (http_target_parse(raw, &t) != TARGET_BAD_BYTE) {
                                query_bad++;
                                http_target_done(&t);
                        }
                }
                is_int(0, path_bad, "every raw byte 0x80-0xff in the path is TARGET_BAD_BYTE");
                is_int(0, query_bad, "every raw byte 0x80-0xff in the query is TARGET_BAD_BYTE");
        }

        /* Every control byte is refused raw, and escaped. */
        {
                unsigned raw_bad = 0, escaped_bad = 0;
                char raw[64];

                for (unsigned c = 1; c < 0x20; c++) {
                        HttpTarget t;

                        snprintf(raw, sizeof raw, "/containers/a%cb/json", (char) c);
                        if (http_target_parse(raw, &t) != TARGET_BAD_BYTE) {
                                raw_bad++;
                                http_target_done(&t);
                        }
                        snprintf(raw, sizeof raw, "/containers/a%%%02xb/json", c);
                        if (http_target_parse(raw, &t) != TARGET_FORBIDDEN_ESCAPE) {
                                escaped_bad++;
                                http_target_done(&t);
                        }
                }
                is_int(0, raw_bad, "every raw control byte in the path is TARGET_BAD_BYTE");
                is_int(0, escaped_bad, "every escaped control byte %%01-%%1f is TARGET_FORBIDDEN_ESCAPE");
        }

        /* Length: up to HTTP_TARGET_MAX bytes, path and query together. */
        {
                char *raw = malloc(HTTP_TARGET_MAX + 2);
                HttpTarget t;

                memset(raw, 'a', HTTP_TARGET_MAX + 1);
                raw[0] = '/';
                raw[HTTP_TARGET_MAX] = '\0';
                is_int(TARGET_OK, http_target_parse(raw, &t), "a target of exactly %u bytes is accepted",
                       HTTP_TARGET_MAX);
                http_target_done(&t);
                raw[HTTP_TARGET_MAX] = 'a';
                raw[HTTP_TARGET_MAX + 1] = '\0';
                expect_refused(raw, TARGET_TOO_LONG);
                raw[100] = '?';
                expect_refused(raw, TARGET_TOO_LONG);
                free(raw);
        }

        /* The reasons are sentences a 400 response can carry. */
        {
                bool all = true;
                for (int e = TARGET_OK; e < _TARGET_ERROR_MAX; e++) {
                        const char *s = target_error_to_string((TargetError) e);
                        if (!s || !*s)
                                all = false;
                }
                ok(all, "target_error_to_string() has words for every TargetError");
                ok(target_error_to_string(_TARGET_ERROR_MAX) != NULL, "target_error_to_string() of an unknown value");
                ok(strstr(target_error_to_string(TARGET_DOT_SEGMENT), "..") != NULL,
                   "the dot-segment reason mentions '..'");
        }
}

static void test_tokens(void) {
        static const struct {
                const char *s;
                bool token, field_value;
        } cases[] = {
                { "Content-Type", true, true },
                { "X-Registry-Auth", true, true },
                { "a!#$%&'*+-.^_`|~9", true, true },
                { "GET", true, true },
                { "", false, true },
                { "a b", false, true },
                { "a:b", false, true },
                { "a/b", false, true },
                { "a(b)", false, true },
                { "a\"b", false, true },
                { "a,b", false, true },
                { "a;b", false, true },
                { "a\tb", false, true },
                { "caf\xc3\xa9", false, true },
                { "a\rb", false, false },
                { "a\nb", false, false },
                { "a\x01" "b", false, false },
                { "a\x7f", false, false },
                { "application/json; charset=utf-8", false, true },
        };

        for (size_t i = 0; i < ELEMS(cases); i++) {
                is_int(cases[i].token, http_is_token(cases[i].s), "http_is_token('%s')", show(cases[i].s));
                is_int(cases[i].field_value, http_is_field_value(cases[i].s), "http_is_field_value('%s')",
                       show(cases[i].s));
        }
        ok(!http_is_token(NULL), "http_is_token(NULL) is false");
        ok(!http_is_field_value(NULL), "http_is_field_value(NULL) is false");

        /* Every byte against RFC 9110's tchar, spelled out: ALPHA / DIGIT / the 15 marks. */
        unsigned wrong = 0;
        for (unsigned c = 0; c < 256; c++) {
                bool want = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                        (c != 0 && memchr("!#$%&'*+-.^_`|~", (int) c, 15));
                if (http_is_tchar((unsigned char) c) != want) {
                        diag("byte 0x%02x: http_is_tchar says %d", c, !want);
                        wrong++;
                }
        }
        is_int(0, wrong, "http_is_tchar() agrees with RFC 9110 on all 256 bytes");
}

static void test_list_and_hop_by_hop(void) {
        static const struct {
                const char *list, *token;
                bool has;
        } lists[] = {
                { "Upgrade", "upgrade", true },
                { "keep-alive, Upgrade", "upgrade", true },
                { "Upgrade, keep-alive", "upgrade", true },
                { "  close  ", "close", true },
                { ",,close,,", "close", true },
                { "keep-alive,\tclose", "close", true },
                { "CLOSE", "close", true },
                { "xclose", "close", false },
                { "closex", "close", false },
                { "Upgrade2", "upgrade", false },
                { "upgrade-insecure", "upgrade", false },
                { "keep-alive", "close", false },
                { "", "close", false },
                { "clo se", "close", false },
        };
        static const struct {
                const char *name;
                bool hop;
        } hops[] = {
                { "Connection", true },          { "connection", true },
                { "Keep-Alive", true },          { "Proxy-Connection", true },
                { "Proxy-Authenticate", true },  { "Proxy-Authorization", true },
                { "TE", true },                  { "te", true },
                { "Trailer", true },             { "Transfer-Encoding", true },
                { "TRANSFER-ENCODING", true },   { "Upgrade", true },
                { "Content-Type", false },       { "Content-Length", false },
                { "Host", false },               { "X-Registry-Auth", false },
                { "Authorization", false },      { "Trailers", false },
                { "Connection2", false },        { "Api-Version", false },
        };

        for (size_t i = 0; i < ELEMS(lists); i++)
                is_int(lists[i].has, http_list_has_token(lists[i].list, lists[i].token),
                       "http_list_has_token('%s', '%s')", lists[i].list, lists[i].token);
        ok(!http_list_has_token(NULL, "close"), "http_list_has_token(NULL) is false");

        for (size_t i = 0; i < ELEMS(hops); i++)
                is_int(hops[i].hop, http_header_is_hop_by_hop(hops[i].name), "%s is %shop-by-hop", hops[i].name,
                       hops[i].hop ? "" : "not ");
}

/* ---- chunked decoder ---- */

typedef struct Decoded {
        int result;         /* CHUNKED_DONE, CHUNKED_NEED_MORE (input ran out) or -errno */
        size_t consumed;    /* bytes of the input that belong to the body */
        char out[70000];
        size_t out_size;
        bool data_inside;   /* every data pointer pointed into the piece fed */
} Decoded;

/* Feeds the input in pieces that end at the given offsets (sorted, last == size). */
static void decode_pieces(const char *in, size_t size, const size_t *ends, size_t n_ends, Decoded *d) {
        ChunkedDecoder dec = CHUNKED_DECODER_INIT;
        size_t start = 0;

        if (n_ends == 0 || ends[n_ends - 1] != size)
                bail("decode_pieces: the pieces must cover the input");
        *d = (Decoded) { .result = CHUNKED_NEED_MORE, .data_inside = true };
        for (size_t e = 0; e < n_ends; e++) {
                size_t end = ends[e], off = start;

                while (off < end) {
                        const char *data = NULL;
                        size_t consumed = 0, data_size = 0;
                        int r = chunked_decode(&dec, in + off, end - off, &consumed, &data, &data_size);

                        if (r < 0) {
                                d->result = r;
                                d->consumed = off;
                                return;
                        }
                        if (consumed > end - off || (consumed == 0 && r != CHUNKED_DONE)) {
                                d->result = -999; /* no progress or overrun: a decoder bug */
                                return;
                        }
                        if (r == CHUNKED_DATA) {
                                if (data < in + off || data + data_size > in + off + consumed)
                                        d->data_inside = false;
                                if (d->out_size + data_size <= sizeof d->out)
                                        memcpy(d->out + d->out_size, data, data_size);
                                d->out_size += data_size;
                        } else if (data_size != 0)
                                d->data_inside = false;
                        off += consumed;
                        if (r == CHUNKED_DONE) {
                                d->result = CHUNKED_DONE;
                                d->consumed = off;
                                return;
                        }
                }
                start = end;
        }
        d->consumed = start;
}

static void decode_whole(const char *in, size_t size, Decoded *d) {
        decode_pieces(in, size, &size, 1, d);
}

static int decode_result(const char *in) {
        static Decoded d;

        decode_whole(in, strlen(in), &d);
        return d.result;
}

static bool same_payload(const Decoded *d, const char *payload, size_t size) {
        return d->out_size == size && memcmp(d->out, payload, size) == 0;
}

/* A small deterministic PRNG, so that a failure can be reproduced. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static void test_chunked_ok(void) {
        static Decoded d;
        static const struct {
                const char *name, *in, *payload;
        } cases[] = {
                { "simple body", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world" },
                { "empty body", "0\r\n\r\n", "" },
                { "chunk extensions", "5;name=value\r\nhello\r\n6;a;b=\"c d\"\r\n world\r\n0;last\r\n\r\n",
                  "hello world" },
                { "whitespace before an extension", "5 ;x=1\r\nhello\r\n0\r\n\r\n", "hello" },
                { "trailers", "5\r\nhello\r\n0\r\nX-Trailer: a\r\nY: b\r\n\r\n", "hello" },
                { "uppercase hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789" },
                { "lowercase hex", "a\r\n0123456789\r\n0\r\n\r\n", "0123456789" },
                { "mixed-case hex", "1F\r\n0123456789abcdef0123456789abcde\r\n0\r\n\r\n",
                  "0123456789abcdef0123456789abcde" },
                { "leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello" },
                { "payload holding CRLF and NUL-free binary", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n" },
                { "a JSON event", "2a\r\n{\"status\":\"start\",\"id\":\"0123456789abcdef\"}\r\n0\r\n\r\n",
                  "{\"status\":\"start\",\"id\":\"0123456789abcdef\"}" },
        };

        for (size_t i = 0; i < ELEMS(cases); i++) {
                size_t len = strlen(cases[i].in);

                decode_whole(cases[i].in, len, &d);
                is_int(CHUNKED_DONE, d.result, "chunked %s: done", cases[i].name);
                is_int((long) len, (long) d.consumed, "chunked %s: consumed the whole body", cases[i].name);
                ok(same_payload(&d, cases[i].payload, strlen(cases[i].payload)) && d.data_inside,
                   "chunked %s: the payload", cases[i].name);
        }

        /* Bytes after the last chunk belong to the next response: not consumed. */
        {
                const char *in = "5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n";
                decode_whole(in, strlen(in), &d);
                is_int(CHUNKED_DONE, d.result, "chunked with a following response: done");
                is_int((long) strlen("5\r\nhello\r\n0\r\n\r\n"), (long) d.consumed,
                       "chunked with a following response: stops at the end of the body");
                in = "0\r\nX: y\r\n\r\n0\r\n\r\n";
                decode_whole(in, strlen(in), &d);
                is_int(11, (long) d.consumed, "chunked with trailers and more: stops after the trailers");
        }

        /* Once done, the decoder stays done and takes nothing. */
        {
                ChunkedDecoder dec = CHUNKED_DECODER_INIT;
                const char *data = (const char *) 1;
                size_t consumed = 99, data_size = 99;
                int r;

                r = chunked_decode(&dec, "0\r\n\r\nxyz", 8, &consumed, &data, &data_size);
                is_int(CHUNKED_DONE, r, "a bare last chunk: done");
                is_int(5, (long) consumed, "a bare last chunk: 5 bytes consumed");
                r = chunked_decode(&dec, "xyz", 3, &consumed, &data, &data_size);
                is_int(CHUNKED_DONE, r, "after the end: still done");
                is_int(0, (long) consumed, "after the end: nothing consumed");
                ok(data == NULL && data_size == 0, "after the end: no data");
        }

        /* Feeding nothing, and feeding a header alone. */
        {
                ChunkedDecoder dec = CHUNKED_DECODER_INIT;
                const char *data;
                size_t consumed = 99, data_size;

                is_int(CHUNKED_NEED_MORE, chunked_decode(&dec, "", 0, &consumed, &data, &data_size),
                       "no input: need more");
                is_int(0, (long) consumed, "no input: nothing consumed");
                is_int(CHUNKED_NEED_MORE, chunked_decode(&dec, "5\r\n", 3, &consumed, &data, &data_size),
                       "a chunk header alone: need more");
                is_int(3, (long) consumed, "a chunk header alone: consumed");
                is_int(CHUNKED_DATA, chunked_decode(&dec, "hel", 3, &consumed, &data, &data_size),
                       "part of the data: data");
                ok(data_size == 3 && memcmp(data, "hel", 3) == 0, "part of the data: the three bytes");
                is_int(CHUNKED_DATA, chunked_decode(&dec, "lo\r\n0\r\n\r\n", 9, &consumed, &data, &data_size),
                       "the rest of the data: data");
                ok(data_size == 2 && consumed == 2, "the rest of the data: two bytes, and no more consumed");
        }

        /* The largest chunk size that fits: 15 hex digits. */
        {
                ChunkedDecoder dec = CHUNKED_DECODER_INIT;
                const char *data;
                size_t consumed, data_size;
                int r = chunked_decode(&dec, "fffffffffffffff\r\nabc", 20, &consumed, &data, &data_size);

                is_int(CHUNKED_DATA, r, "a 15-digit chunk size is accepted");
                is_int(3, (long) data_size, "a 15-digit chunk size: data follows");
        }
}

static void test_chunked_splits(void) {
        static Decoded d;
        static char in[4096], payload[4096];
        size_t in_size = 0, payload_size = 0;
        /* Chunks of several sizes, with an extension and trailers. */
        static const size_t sizes[] = { 1, 2, 15, 16, 17, 255, 3 };
        unsigned bad;

        for (size_t i = 0; i < ELEMS(sizes); i++) {
                in_size += (size_t) snprintf(in + in_size, sizeof in - in_size, i == 2 ? "%zX;ext=\"v\"\r\n" : "%zx\r\n",
                                             sizes[i]);
                for (size_t k = 0; k < sizes[i]; k++) {
                        char c = (char) ('A' + (payload_size * 7 + k) % 50);
                        if (k % 13 == 5)
                                c = '\r';
                        if (k % 17 == 6)
                                c = '\n';
                        in[in_size++] = c;
                        payload[payload_size++] = c;
                }
                in[in_size++] = '\r';
                in[in_size++] = '\n';
        }
        in_size += (size_t) snprintf(in + in_size, sizeof in - in_size, "0\r\nTrailer-A: 1\r\nTrailer-B: 2\r\n\r\n");
        memcpy(in + in_size, "NEXT", 4); /* the next response on the same connection */

        decode_whole(in, in_size + 4, &d);
        ok(d.result == CHUNKED_DONE && d.consumed == in_size && same_payload(&d, payload, payload_size),
           "split test body decodes whole (%zu bytes, payload %zu)", in_size, payload_size);

        /* One byte at a time. */
        {
                size_t *ends = calloc(in_size + 4, sizeof(size_t));
                if (!ends)
                        bail("out of memory");
                for (size_t i = 0; i < in_size + 4; i++)
                        ends[i] = i + 1;
                decode_pieces(in, in_size + 4, ends, in_size + 4, &d);
                ok(d.result == CHUNKED_DONE && d.consumed == in_size && same_payload(&d, payload, payload_size) &&
                           d.data_inside,
                   "fed one byte at a time: same payload, stops at the end");
                free(ends);
        }

        /* Two pieces, split at every possible boundary. */
        bad = 0;
        for (size_t cut = 1; cut < in_size + 4; cut++) {
                size_t ends[2] = { cut, in_size + 4 };
                decode_pieces(in, in_size + 4, ends, 2, &d);
                if (!(d.result == CHUNKED_DONE && d.consumed == in_size && same_payload(&d, payload, payload_size))) {
                        if (bad++ == 0)
                                diag("first failing cut: %zu (result %d, consumed %zu)", cut, d.result, d.consumed);
                }
        }
        is_int(0, bad, "split in two at every boundary: same payload each time");

        /* Three pieces, at every pair of boundaries of the first 120 bytes. */
        bad = 0;
        for (size_t a = 1; a < 120; a++)
                for (size_t b = a + 1; b < 121; b++) {
                        size_t ends[3] = { a, b, in_size + 4 };
                        decode_pieces(in, in_size + 4, ends, 3, &d);
                        if (!(d.result == CHUNKED_DONE && d.consumed == in_size &&
                              same_payload(&d, payload, payload_size)) &&
                            bad++ == 0)
                                diag("first failing cuts: %zu, %zu", a, b);
                }
        is_int(0, bad, "split in three at every pair of early boundaries: same payload each time");

        /* Random splits (fixed seed). */
        bad = 0;
        for (unsigned round = 0; round < 500; round++) {
                size_t ends[64], n = 0, pos = 0;

                while (pos < in_size + 4 && n < ELEMS(ends) - 1) {
                        pos += 1 + (size_t) (rng() % 40);
                        if (pos > in_size + 4)
                                pos = in_size + 4;
                        ends[n++] = pos;
                }
                if (pos < in_size + 4)
                        ends[n++] = in_size + 4;
                decode_pieces(in, in_size + 4, ends, n, &d);
                if (!(d.result == CHUNKED_DONE && d.consumed == in_size && same_payload(&d, payload, payload_size)) &&
                    bad++ == 0)
                        diag("first failing random round: %u", round);
        }
        is_int(0, bad, "500 random splits: same payload each time");

        /* A large chunk fed in pieces comes out whole. */
        {
                static char big_in[70000], big_payload[65536];
                size_t n = (size_t) snprintf(big_in, sizeof big_in, "10000\r\n");
                for (size_t i = 0; i < sizeof big_payload; i++)
                        big_payload[i] = (char) (rng() & 0xff);
                memcpy(big_in + n, big_payload, sizeof big_payload);
                n += sizeof big_payload;
                memcpy(big_in + n, "\r\n0\r\n\r\n", 7);
                n += 7;
                size_t ends[] = { 3, 7, 4096, 4097, 30000, 65540, n };
                decode_pieces(big_in, n, ends, ELEMS(ends), &d);
                ok(d.result == CHUNKED_DONE && d.consumed == n && same_payload(&d, big_payload, sizeof big_payload),
                   "a 64 KiB chunk with binary bytes, in pieces");
        }
}

static void test_chunked_errors(void) {
        static const struct {
                const char *name, *in;
        } cases[] = {
                { "missing CRLF after data", "5\r\nhelloX\r\n0\r\n\r\n" },
                { "data longer than the size", "3\r\nhello\r\n0\r\n\r\n" },
                { "bare LF after data", "5\r\nhello\n0\r\n\r\n" },
                { "CR without LF after data", "5\r\nhello\rX0\r\n\r\n" },
                { "bare LF after the size", "5\nhello\r\n0\r\n\r\n" },
                { "CR without LF after the size", "5\rhello\r\n0\r\n\r\n" },
                { "non-hex size", "g\r\nhello\r\n0\r\n\r\n" },
                { "non-hex after hex digits", "5g\r\nhello\r\n0\r\n\r\n" },
                { "empty size", "\r\nhello\r\n0\r\n\r\n" },
                { "negative size", "-5\r\nhello\r\n0\r\n\r\n" },
                { "0x prefix", "0x5\r\nhello\r\n0\r\n\r\n" },
                { "leading space", " 5\r\nhello\r\n0\r\n\r\n" },
                { "16 hex digits", "1000000000000000\r\nhello\r\n0\r\n\r\n" },
                { "16 hex digits of leading zeros", "0000000000000005\r\nhello\r\n0\r\n\r\n" },
                { "an overflowing size", "ffffffffffffffffffff\r\n" },
                { "bare LF in an extension", "5;x\nhello\r\n0\r\n\r\n" },
                { "bare LF after the last chunk", "0\r\n\n" },
                { "bare LF ending a trailer", "0\r\nX: y\n\r\n" },
                { "CR without LF ending the body", "0\r\n\rX" },
                { "CR without LF ending a trailer", "0\r\nX: y\rZ\r\n\r\n" },
        };

        for (size_t i = 0; i < ELEMS(cases); i++)
                is_int(-EBADMSG, decode_result(cases[i].in), "chunked error: %s", cases[i].name);

        /* Limits on what the daemon can make us skip. */
        {
                static char in[40000];
                size_t n = (size_t) snprintf(in, sizeof in, "5;");
                memset(in + n, 'x', 5000);
                n += 5000;
                memcpy(in + n, "\r\nhello\r\n0\r\n\r\n", 15);
                in[n + 15] = '\0';
                is_int(-EBADMSG, decode_result(in), "chunked error: a 5000-byte chunk extension");

                n = (size_t) snprintf(in, sizeof in, "0\r\n");
                for (unsigned k = 0; k < 4000; k++)
                        n += (size_t) snprintf(in + n, sizeof in - n, "X-T: y\r\n");
                snprintf(in + n, sizeof in - n, "\r\n");
                is_int(-EBADMSG, decode_result(in), "chunked error: 32 KB of trailers");
        }
}

/* ---- the daemon's response head ---- */

static char head_buf[HTTP_RESPONSE_HEAD_MAX + 1];

static int parse_head(const char *text, HttpResponseHead *h) {
        size_t n = strlen(text);

        memcpy(head_buf, text, n + 1);
        return http_response_head_parse(head_buf, n, h);
}

static const char *header_value(const HttpResponseHead *h, const char *name) {
        for (size_t i = 0; i < h->n_headers; i++)
                if (strcasecmp(h->headers[i].name, name) == 0)
                        return h->headers[i].value;
        return NULL;
}

static void test_head_parse_ok(void) {
        HttpResponseHead h;
        int r;

        r = parse_head("HTTP/1.1 200 OK\r\n"
                       "Api-Version: 1.41\r\n"
                       "Content-Type: application/json\r\n"
                       "Docker-Experimental: false\r\n"
                       "Ostype: linux\r\n"
                       "Server: Docker/20.10.24+dfsg1 (linux)\r\n"
                       "Date: Mon, 15 Jan 2024 10:00:00 GMT\r\n"
                       "Content-Length: 792\r\n"
                       "\r\n",
                       &h);
        is_int(0, r, "dockerd 200 head: parsed");
        is_int(200, h.status, "dockerd 200 head: status");
        is_int(1, h.version_minor, "dockerd 200 head: HTTP/1.1");
        is_int(792, (long) h.content_length, "dockerd 200 head: Content-Length");
        ok(!h.chunked, "dockerd 200 head: not chunked");
        is_string("application/json", h.content_type, "dockerd 200 head: Content-Type");
        is_int(7, (long) h.n_headers, "dockerd 200 head: 7 headers");
        is_string("Api-Version", h.n_headers > 0 ? h.headers[0].name : NULL, "dockerd 200 head: first header name");
        is_string("1.41", h.n_headers > 0 ? h.headers[0].value : NULL, "dockerd 200 head: first header value");
        is_string("Mon, 15 Jan 2024 10:00:00 GMT", header_value(&h, "Date"), "dockerd 200 head: Date keeps its colons");
        is_string("Docker/20.10.24+dfsg1 (linux)", header_value(&h, "Server"), "dockerd 200 head: Server");
        ok(!h.connection_close && !h.connection_upgrade && !h.upgrade, "dockerd 200 head: no Connection, no Upgrade");
        is_int(BODY_LENGTH, http_response_body_mode(&h, "GET"), "dockerd 200 head: body by length");
        is_int(BODY_NONE, http_response_body_mode(&h, "HEAD"), "dockerd 200 head: no body for HEAD");

        r = parse_head("HTTP/1.1 200 OK\r\n"
                       "Api-Version: 1.41\r\n"
                       "Content-Type: application/json\r\n"
                       "Date: Mon, 15 Jan 2024 10:00:00 GMT\r\n"
                       "Transfer-Encoding: chunked\r\n"
                       "\r\n",
                       &h);
        is_int(0, r, "dockerd chunked head: parsed");
        ok(h.chunked, "dockerd chunked head: chunked");
        is_int(-1, (long) h.content_length, "dockerd chunked head: no Content-Length");
        is_int(BODY_CHUNKED, http_response_body_mode(&h, "GET"), "dockerd chunked head: body chunked");
        is_int(BODY_NONE, http_response_body_mode(&h, "HEAD"), "dockerd chunked head: no body for HEAD");

        r = parse_head("HTTP/1.1 101 UPGRADED\r\n"
                       "Content-Type: application/vnd.docker.raw-stream\r\n"
                       "Connection: Upgrade\r\n"
                       "Upgrade: tcp\r\n"
                       "\r\n",
                       &h);
        is_int(0, r, "dockerd 101 head: parsed");
        is_int(101, h.status, "dockerd 101 head: status");
        is_string("tcp", h.upgrade, "dockerd 101 head: Upgrade: tcp");
        ok(h.connection_upgrade, "dockerd 101 head: Connection: Upgrade");
        is_string("application/vnd.docker.raw-stream", h.content_type, "dockerd 101 head: Content-Type");
        is_int(BODY_NONE, http_response_body_mode(&h, "POST"), "dockerd 101 head: no body (a tunnel follows)");

        r = parse_head("HTTP/1.1 101 UPGRADED\r\n"
                       "Content-Type: application/vnd.docker.multiplexed-stream\r\n"
                       "Connection: Upgrade\r\n"
                       "Upgrade: tcp\r\n"
                       "Api-Version: 1.43\r\n"
                       "\r\n",
                       &h);
        is_string("application/vnd.docker.multiplexed-stream", r == 0 ? h.content_type : NULL,
                  "dockerd 101 multiplexed head: Content-Type");

        r = parse_head("HTTP/1.1 101 Switching Protocols\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                       "\r\n",
                       &h);
        is_int(0, r, "websocket 101 head: parsed");
        is_string("websocket", h.upgrade, "websocket 101 head: Upgrade");
        is_string("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", header_value(&h, "Sec-WebSocket-Accept"),
                  "websocket 101 head: the accept key");

        r = parse_head("HTTP/1.1 204 No Content\r\n"
                       "Api-Version: 1.41\r\n"
                       "Date: Mon, 15 Jan 2024 10:00:00 GMT\r\n"
                       "\r\n",
                       &h);
        is_int(0, r, "dockerd 204 head: parsed");
        is_int(204, h.status, "dockerd 204 head: status");
        is_int(BODY_NONE, http_response_body_mode(&h, "POST"), "dockerd 204 head: no body");

        r = parse_head("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", &h);
        is_int(0, r, "304 head: parsed");
        is_int(BODY_NONE, http_response_body_mode(&h, "POST"), "304 head: no body, whatever Content-Length says");

        r = parse_head("HTTP/1.1 404 Not Found\r\n"
                       "Content-Type: application/json\r\n"
                       "Content-Length: 45\r\n"
                       "\r\n",
                       &h);
        is_int(0, r, "dockerd 404 head: parsed");
        is_int(404, h.status, "dockerd 404 head: status");
        is_int(BODY_LENGTH, http_response_body_mode(&h, "GET"), "dockerd 404 head: body by length");

        /* A hijack without Upgrade: 200 and a raw stream until close. */
        r = parse_head("HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n", &h);
        is_int(0, r, "raw-stream 200 head: parsed");
        is_int(BODY_UNTIL_CLOSE, http_response_body_mode(&h, "POST"), "raw-stream 200 head: body until close");

        r = parse_head("HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n", &h);
        is_int(0, r, "HTTP/1.0 head: parsed");
        is_int(0, h.version_minor, "HTTP/1.0 head: version");
        ok(h.connection_close, "HTTP/1.0 head: Connection: close");
        is_int(BODY_UNTIL_CLOSE, http_response_body_mode(&h, "GET"), "HTTP/1.0 head: body until close");

        r = parse_head("HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 0\r\n\r\n", &h);
        ok(r == 0 && h.connection_close, "Connection: keep-alive, close is close");
        is_int(BODY_LENGTH, http_response_body_mode(&h, "GET"), "Content-Length: 0 is a (empty) body by length");
        ok(h.connection_lists_fields, "Connection: keep-alive, close names a field to drop (Close, which RFC 9110 "
           "reserves)");
        r = parse_head("HTTP/1.1 200 OK\r\nConnection: Upgrade\r\nConnection: keep-alive, ,\r\n\r\n", &h);
        ok(r == 0 && h.connection_upgrade && !h.connection_lists_fields,
           "two Connection headers of upgrade and keep-alive (and empty elements) name no field to drop");
        r = parse_head("HTTP/1.1 200 OK\r\nConnection: , Keep-Alive \t,UPGRADE\r\n\r\n", &h);
        ok(r == 0 && h.connection_upgrade && !h.connection_close && !h.connection_lists_fields,
           "Keep-Alive and UPGRADE in any case, with whitespace around them, name no field to drop");
        r = parse_head("HTTP/1.1 200 OK\r\nConnection: close\r\nConnection: X-Private\r\n\r\n", &h);
        ok(r == 0 && h.connection_close && h.connection_lists_fields,
           "a second Connection header that names a field: there is one to drop");
        r = parse_head("HTTP/1.1 200 OK\r\nConnection: close, close\r\n\r\n", &h);
        ok(r == 0 && h.connection_lists_fields, "close twice names a field too");

        r = parse_head("HTTP/1.1 100 Continue\r\n\r\n", &h);
        is_int(BODY_NONE, r == 0 ? (long) http_response_body_mode(&h, "POST") : -1L, "100 head: no body");

        /* Lenient where the RFC allows it. */
        r = parse_head("HTTP/1.1 200\r\nContent-Length: 2\r\n\r\n", &h);
        ok(r == 0 && h.status == 200, "a status line without a reason phrase");
        r = parse_head("HTTP/1.1 200 \r\n\r\n", &h);
        ok(r == 0 && h.status == 200, "a status line with an empty reason phrase");
        r = parse_head("HTTP/1.1 200 OK\r\nContent-Type:   text/plain \t \r\n\r\n", &h);
        is_string("text/plain", r == 0 ? h.content_type : NULL, "optional whitespace around a value is removed");
        r = parse_head("HTTP/1.1 200 OK\r\nX-Empty:\r\n\r\n", &h);
        is_string("", r == 0 ? header_value(&h, "X-Empty") : NULL, "an empty header value");
        r = parse_head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", &h);
        is_int(5, r == 0 ? (long) h.content_length : -2, "header names are case-insensitive");
        r = parse_head("HTTP/1.1 200 OK\r\nTRANSFER-ENCODING: Chunked\r\n\r\n", &h);
        ok(r == 0 && h.chunked, "Transfer-Encoding: Chunked (any case) is chunked");
        r = parse_head("HTTP/1.1 101 Switching Protocols\r\nCONNECTION: Upgrade\r\nupgrade: tcp\r\n"
                       "CONTENT-type: application/vnd.docker.raw-stream\r\n\r\n", &h);
        ok(r == 0 && h.connection_upgrade && h.upgrade && strcmp(h.upgrade, "tcp") == 0 && h.content_type &&
           strcmp(h.content_type, "application/vnd.docker.raw-stream") == 0,
           "Connection, Upgrade and Content-Type are found in any case");
        r = parse_head("HTTP/1.1 200 OK\r\nConnection-X: close\r\nContent-Lengthy: 5\r\nUpgrades: tcp\r\n\r\n", &h);
        ok(r == 0 && !h.connection_close && h.content_length == -1 && !h.upgrade,
           "names that only begin like Connection, Content-Length or Upgrade are other headers");
        r = parse_head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", &h);
        is_int(5, r == 0 ? (long) h.content_length : -2, "two equal Content-Length headers");
        r = parse_head("HTTP/1.1 200 OK\r\nX-Name: caf\xc3\xa9\r\n\r\n", &h);
        is_int(0, r, "a value with UTF-8 bytes (obs-text)");

        /* Exactly HTTP_HEADERS_MAX headers. */
        {
                static char text[HTTP_RESPONSE_HEAD_MAX];
                size_t n = (size_t) snprintf(text, sizeof text, "HTTP/1.1 200 OK\r\n");
                for (unsigned i = 0; i < HTTP_HEADERS_MAX; i++)
                        n += (size_t) snprintf(text + n, sizeof text - n, "X-H%u: %u\r\n", i, i);
                snprintf(text + n, sizeof text - n, "\r\n");
                r = parse_head(text, &h);
                is_int(0, r, "%u headers are accepted", HTTP_HEADERS_MAX);
                is_int(HTTP_HEADERS_MAX, (long) h.n_headers, "%u headers are all kept", HTTP_HEADERS_MAX);

                n = (size_t) snprintf(text, sizeof text, "HTTP/1.1 200 OK\r\n");
                for (unsigned i = 0; i <= HTTP_HEADERS_MAX; i++)
                        n += (size_t) snprintf(text + n, sizeof text - n, "X-H%u: %u\r\n", i, i);
                snprintf(text + n, sizeof text - n, "\r\n");
                is_int(-EBADMSG, parse_head(text, &h), "%u headers are refused", HTTP_HEADERS_MAX + 1);
        }
}

static void test_head_parse_refused(void) {
        static const struct {
                const char *name, *head;
        } cases[] = {
                { "Content-Length with Transfer-Encoding",
                  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" },
                { "Transfer-Encoding with Content-Length",
                  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" },
                { "two differing Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n" },
                { "a Content-Length list", "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n" },
                { "a negative Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n" },
                { "a signed Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n" },
                { "a hex Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n" },
                { "an empty Content-Length", "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n" },
                { "a Content-Length with letters", "HTTP/1.1 200 OK\r\nContent-Length: 5a\r\n\r\n" },
                { "an overflowing Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n" },
                { "Transfer-Encoding: gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n" },
                { "Transfer-Encoding: gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" },
                { "Transfer-Encoding: identity", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n" },
                { "two Transfer-Encoding headers",
                  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" },
                { "an obs-fold line (space)", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n\r\n" },
                { "an obs-fold line (tab)", "HTTP/1.1 200 OK\r\nX-A: a\r\n\tb\r\n\r\n" },
                { "a space before the colon", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n" },
                { "a tab before the colon", "HTTP/1.1 200 OK\r\nContent-Length\t: 5\r\n\r\n" },
                { "an empty header name", "HTTP/1.1 200 OK\r\n: x\r\n\r\n" },
                { "a header line without a colon", "HTTP/1.1 200 OK\r\nGarbage\r\n\r\n" },
                { "a header name with '/'", "HTTP/1.1 200 OK\r\nX/Y: z\r\n\r\n" },
                { "a header name with UTF-8", "HTTP/1.1 200 OK\r\nX-\xc3\xa9: z\r\n\r\n" },
                { "a control byte in a value", "HTTP/1.1 200 OK\r\nX-A: a\x01" "b\r\n\r\n" },
                { "DEL in a value", "HTTP/1.1 200 OK\r\nX-A: a\x7f" "b\r\n\r\n" },
                { "a bare CR in a value", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n" },
                { "a bare LF between headers", "HTTP/1.1 200 OK\r\nX-A: a\nContent-Length: 5\r\n\r\n" },
                { "a bare LF after the status line", "HTTP/1.1 200 OK\nContent-Length: 5\r\n\r\n" },
                { "HTTP/2", "HTTP/2 200 OK\r\n\r\n" },
                { "HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n" },
                { "HTTP/1.2", "HTTP/1.2 200 OK\r\n\r\n" },
                { "HTTP/1.10", "HTTP/1.10 200 OK\r\n\r\n" },
                { "a lowercase protocol", "http/1.1 200 OK\r\n\r\n" },
                { "another protocol", "ICY 200 OK\r\n\r\n" },
                { "a two-digit status", "HTTP/1.1 20 OK\r\n\r\n" },
                { "a four-digit status", "HTTP/1.1 2000 OK\r\n\r\n" },
                { "a status below 100", "HTTP/1.1 099 Odd\r\n\r\n" },
                { "a non-numeric status", "HTTP/1.1 abc OK\r\n\r\n" },
                { "two spaces before the status", "HTTP/1.1  200 OK\r\n\r\n" },
                { "no status", "HTTP/1.1\r\n\r\n" },
                { "a control byte in the reason", "HTTP/1.1 200 O\x01K\r\n\r\n" },
                { "an empty head", "\r\n\r\n" },
                { "a header line first", "Content-Length: 5\r\n\r\n" },
        };
        HttpResponseHead h;

        for (size_t i = 0; i < ELEMS(cases); i++)
                is_int(-EBADMSG, parse_head(cases[i].head, &h), "daemon head refused: %s", cases[i].name);

        /* A NUL byte anywhere. */
        {
                static const char text[] = "HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 5\r\n\r\n";
                char buf[sizeof text];
                memcpy(buf, text, sizeof text);
                is_int(-EBADMSG, http_response_head_parse(buf, sizeof text - 1, &h), "daemon head refused: a NUL byte");
        }
        /* A head size that does not end with the empty line. */
        {
                char buf[] = "HTTP/1.1 200 OK\r\n\r\nbody";
                is_int(-EBADMSG, http_response_head_parse(buf, sizeof buf - 1, &h),
                       "daemon head refused: a size past the empty line");
                char buf2[] = "HTTP/1.1 200 OK\r\n";
                is_int(-EBADMSG, http_response_head_parse(buf2, sizeof buf2 - 1, &h),
                       "daemon head refused: no empty line");
                char buf3[] = "\r\n";
                is_int(-EBADMSG, http_response_head_parse(buf3, 2, &h), "daemon head refused: 2 bytes");
        }
}

static void test_head_length(void) {
        static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        const size_t n = sizeof head - 1;
        char buf[256];
        unsigned early = 0;

        memcpy(buf, head, n);
        memcpy(buf + n, "hello", 5);

        is_int((long) n, (long) http_head_length(buf, n + 5, 1024), "head length: stops at the empty line");
        is_int((long) n, (long) http_head_length(buf, n, 1024), "head length: exactly the head");
        for (size_t k = 0; k < n; k++)
                if (http_head_length(buf, k, 1024) != 0)
                        early++;
        is_int(0, early, "head length: 0 for every prefix shorter than the head");

        is_int((long) n, (long) http_head_length(buf, n + 5, n), "head length: a head of exactly max bytes");
        is_int(-E2BIG, (long) http_head_length(buf, n + 5, n - 1), "head length: -E2BIG past max");
        is_int(-E2BIG, (long) http_head_length(buf, n - 1, n - 1), "head length: -E2BIG when max bytes hold no end");
        is_int(0, (long) http_head_length(buf, n - 2, n - 1), "head length: 0 while below max");
        is_int(0, (long) http_head_length("HTTP/1.1 200 OK\n\n", 17, 1024), "head length: bare LFs do not end a head");
        is_int(0, (long) http_head_length("HTTP/1.1 200 OK\r\n\r", 18, 1024), "head length: CRLF CR is not the end");
        is_int(4, (long) http_head_length("\r\n\r\nxx", 6, 1024), "head length: an empty head is 4 bytes");
        is_int(0, (long) http_head_length("", 0, 1024), "head length: no bytes");
}

static void test_body_mode(void) {
        static const struct {
                unsigned status;
                bool chunked;
                long content_length;
                const char *method;
                BodyMode want;
        } cases[] = {
                { 200, false, 10, "GET", BODY_LENGTH },
                { 200, false, 0, "GET", BODY_LENGTH },
                { 200, true, -1, "GET", BODY_CHUNKED },
                { 200, false, -1, "GET", BODY_UNTIL_CLOSE },
                { 200, false, 10, "HEAD", BODY_NONE },
                { 200, true, -1, "HEAD", BODY_NONE },
                { 200, false, -1, "HEAD", BODY_NONE },
                { 204, false, -1, "GET", BODY_NONE },
                { 204, false, 10, "DELETE", BODY_NONE },
                { 304, false, 10, "GET", BODY_NONE },
                { 304, true, -1, "GET", BODY_NONE },
                { 101, false, -1, "POST", BODY_NONE },
                { 100, false, -1, "POST", BODY_NONE },
                { 404, false, 29, "GET", BODY_LENGTH },
                { 500, true, -1, "POST", BODY_CHUNKED },
                { 201, false, 88, "POST", BODY_LENGTH },
        };

        for (size_t i = 0; i < ELEMS(cases); i++) {
                HttpResponseHead h = {
                        .status = cases[i].status,
                        .chunked = cases[i].chunked,
                        .content_length = cases[i].content_length,
                };
                is_int(cases[i].want, http_response_body_mode(&h, cases[i].method),
                       "body mode: %s answered %u%s, Content-Length %ld", cases[i].method, cases[i].status,
                       cases[i].chunked ? " chunked" : "", cases[i].content_length);
        }
}

int main(void) {
        plan_lazy();

        test_target_accepted();
        test_target_refused();
        test_tokens();
        test_list_and_hop_by_hop();
        test_chunked_ok();
        test_chunked_splits();
        test_chunked_errors();
        test_head_parse_ok();
        test_head_parse_refused();
        test_head_length();
        test_body_mode();
        return 0;
}
