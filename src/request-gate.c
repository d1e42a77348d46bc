/* SPDX-License-Identifier: MIT */
#include <string.h>

#include "http-util.h"
#include "macro.h"
#include "request-gate.h"

enum {
        GATE_FIELD_OTHER,
        GATE_FIELD_CONTENT_LENGTH,
        GATE_FIELD_TRANSFER_ENCODING,
        GATE_FIELD_UPGRADE,
};

/* 18 decimal digits cannot overflow 64 bits; 15 hex digits leave room to add. */
#define CONTENT_LENGTH_DIGITS_MAX 18U
#define CHUNK_SIZE_DIGITS_MAX 15U
/* Header lines and query arguments in one request: libmicrohttpd keeps a record of each
 * in the connection's memory (see CONNECTION_MEMORY in front.c). */
#define FIELDS_MAX 128U
#define TRAILER_FIELDS_MAX 32U
#define QUERY_ARGUMENTS_MAX 128U
/* A chunk-size line with its extensions; nobody needs more. */
#define CHUNK_LINE_MAX 1024U

static const char HTTP_VERSION_PREFIX[] = "HTTP/1.";

static void start_request(RequestGate *g) {
        size_t max_target = g->max_target, max_head = g->max_head;
        uint64_t requests = g->requests;

        memset(g, 0, sizeof(*g));
        g->max_target = max_target;
        g->max_head = max_head;
        g->requests = requests;
        g->phase = GATE_START;
        g->request_began = -1;
}

void request_gate_init(RequestGate *g, size_t max_target, size_t max_head) {
        g->max_target = max_target;
        g->max_head = max_head;
        g->requests = 0;
        start_request(g);
}

static bool fail(RequestGate *g, unsigned status, const char *why) {
        g->phase = GATE_FAILED;
        g->status = status;
        g->error = why;
        return false;
}

static bool bad(RequestGate *g, const char *why) {
        return fail(g, 400, why);
}

/* A CR must be followed by LF, whatever comes instead. */
static bool bad_after_cr(RequestGate *g) {
        return bad(g, "a CR is not followed by LF");
}

/* What a byte that is neither the expected one nor allowed here says about the request. */
static bool bad_line_end(RequestGate *g, unsigned char c) {
        if (c == '\n')
                return bad(g, "a line ends in a bare LF (not CRLF)");
        if (c == '\r')
                return bad(g, "a CR is not followed by LF");
        if (c == '\0')
                return bad(g, "a NUL byte in the request");
        return bad(g, "a control byte in the request");
}

/* One more byte of the field name: kept lower-case as far as the name buffer goes, counted
 * always (a longer name is none that field_classify() knows). */
static void name_append(RequestGate *g, unsigned char c) {
        if (g->name_len < sizeof(g->name))
                g->name[g->name_len] = (char) (c >= 'A' && c <= 'Z' ? c + 32 : c);
        g->name_len++;
}

static void field_begin(RequestGate *g) {
        g->name_len = 0;
        g->value_len = 0;
        g->value_ws = 0;
        g->value_long = false;
        g->field = GATE_FIELD_OTHER;
}

static void field_classify(RequestGate *g) {
        if (g->in_trailer || g->name_len >= sizeof(g->name))
                return;
        if (g->name_len == 14 && memcmp(g->name, "content-length", 14) == 0)
                g->field = GATE_FIELD_CONTENT_LENGTH;
        else if (g->name_len == 17 && memcmp(g->name, "transfer-encoding", 17) == 0)
                g->field = GATE_FIELD_TRANSFER_ENCODING;
        else if (g->name_len == 7 && memcmp(g->name, "upgrade", 7) == 0)
                g->field = GATE_FIELD_UPGRADE;
        else if (g->name_len == 4 && memcmp(g->name, "host", 4) == 0)
                g->n_host++; /* counted only: its value is taken in runs, as any unread one */
}

static bool field_end(RequestGate *g) {
        switch (g->field) {
        case GATE_FIELD_CONTENT_LENGTH: {
                uint64_t v = 0;

                g->n_content_length++;
                if (g->value_len == 0)
                        return bad(g, "Content-Length is empty");
                if (g->value_long || g->value_len > CONTENT_LENGTH_DIGITS_MAX)
                        return bad(g, "Content-Length is not a number of at most 18 digits");
                for (size_t i = 0; i < g->value_len; i++) {
                        if (g->value[i] < '0' || g->value[i] > '9')
                                return bad(g, "Content-Length is not a number of at most 18 digits");
                        v = v * 10 + (uint64_t) (g->value[i] - '0');
                }
                g->remaining = v;
                break;
        }
        case GATE_FIELD_TRANSFER_ENCODING:
                g->n_transfer_encoding++;
                g->chunked = !g->value_long && g->value_len == 7 && strncasecmp(g->value, "chunked", 7) == 0;
                break;
        case GATE_FIELD_UPGRADE:
                g->upgrade = true;
                break;
        }
        return true;
}

static bool request_done(RequestGate *g) {
        bool upgrade = g->upgrade;

        g->requests++;
        start_request(g);
        if (upgrade)
                g->phase = GATE_PASSTHROUGH;
        return true;
}

/* The head is complete: is its framing one that every parser reads the same way? */
static bool head_end(RequestGate *g) {
        if (g->in_trailer)
                return request_done(g);
        if (g->n_content_length > 1)
                return bad(g, "the request has several Content-Length headers");
        if (g->n_transfer_encoding > 1)
                return bad(g, "the request has several Transfer-Encoding headers");
        if (g->n_transfer_encoding == 1 && !g->chunked)
                return bad(g, "the only Transfer-Encoding accepted is a single 'chunked'");
        if (g->n_content_length > 0 && g->n_transfer_encoding > 0)
                return bad(g, "the request has both Content-Length and Transfer-Encoding");
        if (g->chunked && g->version_minor == '0')
                return bad(g, "Transfer-Encoding in an HTTP/1.0 request");
        /* Checked here, not only after libmicrohttpd parsed the head: from 1.0 on it answers
         * a missing Host itself, in HTML. */
        if (g->n_host > 1)
                return bad(g, "the request has several Host headers");
        if (g->n_host == 0 && g->version_minor == '1')
                return bad(g, "an HTTP/1.1 request needs a Host header"); /* RFC 9112, 3.2 */
        if (g->chunked) {
                g->phase = GATE_CHUNK_SIZE;
                g->chunk_digits = 0;
                g->chunk_line = 0;
                g->remaining = 0;
                return true;
        }
        if (g->n_content_length > 0 && g->remaining > 0) {
                g->phase = GATE_BODY;
                return true;
        }
        return request_done(g);
}

static bool count_head_byte(RequestGate *g) {
        if (++g->head_bytes > g->max_head)
                return fail(g, 431, g->in_trailer ?
                            "the request trailer is larger than SOCKET_PROXY_MAX_HEADER_BYTES allows" :
                            "the request headers are larger than SOCKET_PROXY_MAX_HEADER_BYTES allows");
        return true;
}

/* One byte of a request line, header or chunk line. Returns false once failed. */
static bool step(RequestGate *g, unsigned char c) {
        /* Every byte before the body (or of a trailer) counts toward the head limit. */
        if (g->phase < GATE_BODY && !count_head_byte(g))
                return false;

        switch (g->phase) {
        case GATE_START:
                if (c == '\r') {
                        g->phase = GATE_START_LF;
                        return true;
                }
                if (c == ' ' || c == '\t')
                        return bad(g, "whitespace before the method");
                if (!http_is_tchar(c))
                        return c < 0x20 || c == 0x7f ? bad_line_end(g, c) : bad(g, "the method is not a token");
                g->phase = GATE_METHOD;
                g->method[0] = (char) c;
                g->method[1] = '\0';
                return true;
        case GATE_START_LF:
                if (c != '\n')
                        return bad_after_cr(g);
                g->phase = GATE_START;
                return true;
        case GATE_METHOD: {
                size_t l;

                if (c == ' ') {
                        g->phase = GATE_TARGET_START;
                        return true;
                }
                if (c == '\t')
                        return bad(g, "a tab in the request line (only single spaces separate its parts)");
                if (c == '\r' || c == '\n')
                        return bad(g, "the request line has no target and no version");
                if (!http_is_tchar(c))
                        return c < 0x20 || c == 0x7f ? bad_line_end(g, c) : bad(g, "the method is not a token");
                l = strlen(g->method);
                if (l + 1 < sizeof(g->method)) {
                        g->method[l] = (char) c;
                        g->method[l + 1] = '\0';
                }
                return true;
        }
        case GATE_TARGET_START:
        case GATE_TARGET:
                if (c == ' ') {
                        if (g->phase == GATE_TARGET_START)
                                return bad(g, "two spaces after the method");
                        g->phase = GATE_VERSION;
                        g->version_at = 0;
                        return true;
                }
                if (c == '\r' || c == '\n')
                        return bad(g, g->phase == GATE_TARGET_START ? "the request line has no target" :
                                   "the request line has no HTTP version (HTTP/0.9 is not spoken here)");
                if (c == '\t')
                        return bad(g, "a tab in the request line (only single spaces separate its parts)");
                if (c == '\0')
                        return bad(g, "a NUL byte in the request-target");
                if (c < 0x20 || c == 0x7f)
                        return bad(g, "a control byte in the request-target");
                if (++g->target_bytes > g->max_target)
                        return fail(g, 414, "the request-target is longer than SOCKET_PROXY_MAX_TARGET_BYTES allows");
                if (c == '?' && g->query_arguments == 0)
                        g->query_arguments = 1;
                else if (c == '&' && g->query_arguments > 0 && ++g->query_arguments > QUERY_ARGUMENTS_MAX)
                        return fail(g, 414, "the request-target has more than 128 query arguments");
                if (g->target_bytes < sizeof(g->target))
                        g->target[g->target_bytes - 1] = (char) c;
                g->phase = GATE_TARGET;
                return true;
        case GATE_VERSION:
                if (g->version_at < sizeof(HTTP_VERSION_PREFIX) - 1) {
                        if (g->version_at == 0 && c != 'H')
                                return bad(g, c == ' ' ? "two spaces before the HTTP version" :
                                           "a space inside the request-target (or no HTTP version)");
                        if (c != (unsigned char) HTTP_VERSION_PREFIX[g->version_at])
                                return bad(g, "only HTTP/1.0 and HTTP/1.1 are spoken here");
                        g->version_at++;
                        return true;
                }
                if (g->version_at == sizeof(HTTP_VERSION_PREFIX) - 1) {
                        if (c != '0' && c != '1')
                                return bad(g, "only HTTP/1.0 and HTTP/1.1 are spoken here");
                        g->version_minor = (char) c;
                        g->version_at++;
                        return true;
                }
                if (c != '\r')
                        return c == ' ' ? bad(g, "a space after the HTTP version") :
                                c == '\n' ? bad_line_end(g, c) : bad(g, "only HTTP/1.0 and HTTP/1.1 are spoken here");
                g->phase = GATE_LINE_LF;
                g->field_cr = false;
                return true;
        case GATE_LINE_LF:
                if (c != '\n')
                        return bad_after_cr(g);
                if (g->field_cr && !field_end(g))
                        return false;
                g->phase = GATE_FIELD_START;
                return true;
        case GATE_FIELD_START:
                if (c == '\r') {
                        g->phase = GATE_HEAD_END_LF;
                        return true;
                }
                if (c == ' ' || c == '\t')
                        return bad(g, "a header line starts with whitespace (obs-fold is not accepted)");
                if (c == ':')
                        return bad(g, "a header has an empty name");
                if (!http_is_tchar(c))
                        return c < 0x20 || c == 0x7f ? bad_line_end(g, c) : bad(g, "a header name is not a token");
                if (++g->fields > (g->in_trailer ? TRAILER_FIELDS_MAX : FIELDS_MAX))
                        return fail(g, 431, g->in_trailer ? "the request has more than 32 trailer fields" :
                                    "the request has more than 128 header fields");
                field_begin(g);
                g->phase = GATE_FIELD_NAME;
                name_append(g, c);
                return true;
        case GATE_FIELD_NAME:
                if (c == ':') {
                        field_classify(g);
                        g->phase = GATE_FIELD_VALUE;
                        return true;
                }
                if (c == ' ' || c == '\t')
                        return bad(g, "whitespace between a header name and its colon");
                if (c == '\r' || c == '\n')
                        return bad(g, "a header line has no colon");
                if (!http_is_tchar(c))
                        return c < 0x20 || c == 0x7f ? bad_line_end(g, c) : bad(g, "a header name is not a token");
                name_append(g, c);
                return true;
        case GATE_FIELD_VALUE:
                if (c == '\r') {
                        g->phase = GATE_LINE_LF;
                        g->field_cr = true;
                        return true;
                }
                if (!http_is_field_byte(c)) {
                        if (c == '\0')
                                return bad(g, "a NUL byte in a header value");
                        if (c == '\n')
                                return bad(g, "a bare LF in a header (not CRLF)");
                        return bad(g, "a control byte in a header value");
                }
                if (c == ' ' || c == '\t') {
                        if (g->value_len > 0)
                                g->value_ws++;
                        return true;
                }
                if (g->field != GATE_FIELD_OTHER) {
                        /* Inner whitespace is kept: "1 1" is not a number. */
                        for (; g->value_ws > 0; g->value_ws--) {
                                if (g->value_len < sizeof(g->value))
                                        g->value[g->value_len] = ' ';
                                else
                                        g->value_long = true;
                                g->value_len++;
                        }
                        if (g->value_len < sizeof(g->value))
                                g->value[g->value_len] = (char) c;
                        else
                                g->value_long = true;
                }
                g->value_ws = 0;
                g->value_len++;
                return true;
        case GATE_HEAD_END_LF:
                if (c != '\n')
                        return bad_after_cr(g);
                return head_end(g);
        case GATE_CHUNK_SIZE: {
                int h = http_unhex((char) c);

                g->chunk_line++;
                if (h >= 0) {
                        if (++g->chunk_digits > CHUNK_SIZE_DIGITS_MAX)
                                return bad(g, "a chunk size is too large");
                        g->remaining = g->remaining * 16 + (uint64_t) h;
                        return true;
                }
                if (g->chunk_digits == 0)
                        return bad(g, "a chunk size is not a hexadecimal number");
                if (c == ';') {
                        g->phase = GATE_CHUNK_EXT;
                        return true;
                }
                if (c == '\r') {
                        g->phase = GATE_CHUNK_SIZE_LF;
                        return true;
                }
                if (c == '\n')
                        return bad(g, "a chunk-size line ends in a bare LF (not CRLF)");
                return bad(g, "a chunk size is followed by something else than ';' or CRLF");
        }
        case GATE_CHUNK_EXT:
                if (++g->chunk_line > CHUNK_LINE_MAX)
                        return bad(g, "a chunk extension is too long");
                if (c == '\r') {
                        g->phase = GATE_CHUNK_SIZE_LF;
                        return true;
                }
                if (!http_is_field_byte(c))
                        return c == '\n' ? bad(g, "a chunk-size line ends in a bare LF (not CRLF)") :
                                bad(g, "a control byte in a chunk extension");
                return true;
        case GATE_CHUNK_SIZE_LF:
                if (c != '\n')
                        return bad_after_cr(g);
                if (g->remaining == 0) {
                        /* The last chunk: a trailer (field lines), then CRLF. */
                        g->in_trailer = true;
                        g->head_bytes = 0;
                        g->fields = 0;
                        g->phase = GATE_FIELD_START;
                } else
                        g->phase = GATE_CHUNK_DATA;
                return true;
        case GATE_CHUNK_DATA_CR:
                if (c != '\r')
                        return bad(g, "chunk data is longer than its size, or lacks its CRLF");
                g->phase = GATE_CHUNK_DATA_LF;
                return true;
        case GATE_CHUNK_DATA_LF:
                if (c != '\n')
                        return bad_after_cr(g);
                g->phase = GATE_CHUNK_SIZE;
                g->chunk_digits = 0;
                g->chunk_line = 0;
                g->remaining = 0;
                return true;
        case GATE_BODY:
        case GATE_CHUNK_DATA:
        case GATE_PASSTHROUGH:
        case GATE_FAILED:
                break;
        }
        return false; /* not reached: the bulk phases are handled by the caller */
}

/* Takes the run of bytes from p on that needs no decision of its own: the plain bytes of
 * a request-target (kept as far as the target buffer goes; '?' and '&', which count query
 * arguments, are left to step()), the token bytes of a field name (kept lower-case as far
 * as the name buffer goes), or the value of a field nothing reads, where only that each
 * byte may be in a value and how many there are matter. It stops at the head limit and at
 * the target's; the byte that ends the run (a space, a colon, CR, a refused byte, the first
 * one past a limit) is left to step(). Returns how many it took. */
static size_t take_run(RequestGate *g, const unsigned char *p, size_t n) {
        size_t max = MIN(n, g->max_head - g->head_bytes), k = 0;

        if (g->phase == GATE_TARGET)
                for (max = MIN(max, g->max_target - g->target_bytes);
                     k < max && p[k] > ' ' && p[k] != 0x7f && p[k] != '?' && p[k] != '&'; k++) {
                        if (g->target_bytes + 1 < sizeof(g->target))
                                g->target[g->target_bytes] = (char) p[k];
                        g->target_bytes++;
                }
        else if (g->phase == GATE_FIELD_NAME)
                for (; k < max && http_is_tchar(p[k]); k++)
                        name_append(g, p[k]);
        else if (g->phase == GATE_FIELD_VALUE && g->field == GATE_FIELD_OTHER)
                while (k < max && http_is_field_byte(p[k]))
                        k++;
        g->head_bytes += k;
        return k;
}

size_t request_gate_feed(RequestGate *g, const void *bytes, size_t n) {
        const unsigned char *p = bytes;
        size_t i = 0;

        g->request_began = request_gate_idle(g) ? 0 : -1;
        while (i < n) {
                switch (g->phase) {
                case GATE_FAILED:
                        return i;
                case GATE_PASSTHROUGH:
                        return n;
                case GATE_BODY:
                case GATE_CHUNK_DATA: {
                        /* Bodies are skipped whole, not read byte by byte. */
                        size_t k = g->remaining < n - i ? (size_t) g->remaining : n - i;

                        g->remaining -= k;
                        i += k;
                        if (g->remaining == 0) {
                                if (g->phase == GATE_CHUNK_DATA)
                                        g->phase = GATE_CHUNK_DATA_CR;
                                else {
                                        request_done(g);
                                        g->request_began = (ssize_t) i;
                                }
                        }
                        continue;
                }
                default: {
                        uint64_t before = g->requests;

                        i += take_run(g, p + i, n - i);
                        if (i == n)
                                break;
                        if (!step(g, p[i]))
                                return i;
                        i++;
                        if (g->requests != before)
                                g->request_began = (ssize_t) i;
                }
                }
        }
        return n;
}
