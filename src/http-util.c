/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http-util.h"
#include "macro.h"

int http_unhex(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* RFC 3986 pchar without '%' (handled apart) and '/' (the separator). */
static bool is_path_char(unsigned char c) {
        if (isalnum(c))
                return true;
        return c && strchr("-._~!$&'()*+,;=:@", c);
}

static bool is_query_char(unsigned char c) {
        /* Forwarded untouched and never matched; only what cannot be on a request line goes. */
        return c > 0x20 && c < 0x7f && c != '#';
}

static bool is_forbidden_decoded(unsigned char c) {
        return c < 0x20 || c == 0x7f || c == '/' || c == '\\' || c == '.';
}

/* "/v1", "/v1.41", "/v1.41.0": what the daemon's router takes as an API version. */
static size_t version_prefix_length(const char *path, char version[static HTTP_API_VERSION_MAX + 1]) {
        const char *p = path;
        bool need_digit = true;

        if (p[0] != '/' || p[1] != 'v')
                return 0;
        p += 2;
        for (;; p++) {
                if (isdigit((unsigned char) *p))
                        need_digit = false;
                else if (*p == '.' && !need_digit)
                        need_digit = true;
                else
                        break;
        }
        if (need_digit || (*p != '/' && *p != '\0'))
                return 0;
        if ((size_t) (p - path - 2) > HTTP_API_VERSION_MAX)
                return 0;
        memcpy(version, path + 2, p - path - 2);
        version[p - path - 2] = '\0';
        return p - path;
}

int http_target_parse(const char *raw, HttpTarget *ret) {
        _cleanup_free_ char *decoded = NULL;
        size_t raw_size, path_size, n = 0;
        const char *q;

        *ret = (HttpTarget) {};

        if (!raw || raw[0] != '/')
                return TARGET_NOT_ORIGIN_FORM;
        raw_size = strlen(raw);
        if (raw_size > HTTP_TARGET_MAX)
                return TARGET_TOO_LONG;

        q = strchr(raw, '?');
        path_size = q ? (size_t) (q - raw) : raw_size;
        if (q)
                for (const char *p = q + 1; *p; p++)
                        if (!is_query_char(*p))
                                return TARGET_BAD_BYTE;

        decoded = malloc(path_size + 2);
        if (!decoded)
                return -ENOMEM;

        for (size_t i = 0; i < path_size; i++) {
                unsigned char c = raw[i];

                if (c == '/') {
                        decoded[n++] = '/';
                        continue;
                }
                if (c == '%') {
                        int hi, lo;

                        if (i + 2 >= path_size)
                                return TARGET_BAD_ESCAPE;
                        hi = http_unhex(raw[i + 1]);
                        lo = http_unhex(raw[i + 2]);
                        if (hi < 0 || lo < 0)
                                return TARGET_BAD_ESCAPE;
                        c = (unsigned char) (hi << 4 | lo);
                        if (is_forbidden_decoded(c))
                                return TARGET_FORBIDDEN_ESCAPE;
                        decoded[n++] = (char) c;
                        i += 2;
                        continue;
                }
                if (!is_path_char(c))
                        return TARGET_BAD_BYTE;
                decoded[n++] = (char) c;
        }
        decoded[n] = '\0';

        /* Segments are judged on the decoded path: the escapes that could form a separator
         * or a dot were refused above, so decoding cannot create or hide one. */
        for (const char *seg = decoded + 1;; ) {
                const char *end = strchrnul(seg, '/');
                size_t len = end - seg;

                if (len == 0 && (*end == '/' || seg != decoded + 1))
                        return TARGET_EMPTY_SEGMENT;
                if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
                        return TARGET_DOT_SEGMENT;
                if (*end == '\0')
                        break;
                seg = end + 1;
        }

        size_t prefix = version_prefix_length(decoded, ret->api_version);
        if (prefix > 0) {
                memmove(decoded, decoded + prefix, n - prefix + 1);
                if (decoded[0] == '\0')
                        strcpy(decoded, "/");
        }

        ret->path = TAKE_PTR(decoded);
        ret->query = q ? q + 1 : NULL;
        ret->raw_path_size = path_size;
        return TARGET_OK;
}

void http_target_done(HttpTarget *t) {
        t->path = mfree_ptr(t->path);
}

const char *target_error_to_string(TargetError e) {
        static const char *const table[_TARGET_ERROR_MAX] = {
                [TARGET_OK] = "canonical",
                [TARGET_NOT_ORIGIN_FORM] = "the request-target must be a path starting with '/'",
                [TARGET_TOO_LONG] = "the request-target is too long",
                [TARGET_BAD_BYTE] = "the request-target holds a byte a URI path cannot hold",
                [TARGET_BAD_ESCAPE] = "the request-target holds a malformed percent-escape",
                [TARGET_FORBIDDEN_ESCAPE] = "the path holds a percent-encoded '/', '\\', '.' or control byte",
                [TARGET_EMPTY_SEGMENT] = "the path holds an empty segment ('//' or a trailing '/')",
                [TARGET_DOT_SEGMENT] = "the path holds a '.' or '..' segment",
        };
        return (unsigned) e < ELEMENTSOF(table) ? table[e] : "invalid request-target";
}

const bool http_tchar_table[256] = {
        ['0' ... '9'] = true, ['A' ... 'Z'] = true, ['a' ... 'z'] = true,
        ['!'] = true, ['#'] = true, ['$'] = true, ['%'] = true, ['&'] = true, ['\''] = true, ['*'] = true,
        ['+'] = true, ['-'] = true, ['.'] = true, ['^'] = true, ['_'] = true, ['`'] = true, ['|'] = true,
        ['~'] = true,
};

bool http_is_token(const char *s) {
        if (!s || !*s)
                return false;
        for (; *s; s++)
                if (!http_is_tchar(*s))
                        return false;
        return true;
}

const bool http_field_byte_table[256] = {
        ['\t'] = true, [' ' ... 0x7e] = true, [0x80 ... 0xff] = true,
};

bool http_is_field_value(const char *s) {
        const unsigned char *p = (const unsigned char *) s;

        if (!p)
                return false;
        /* NUL is not a field byte: it ends the loop, and the string if it is the last. */
        while (http_is_field_byte(*p))
                p++;
        return *p == '\0';
}

/* The next element of a comma-separated list from *p on, without the whitespace around it:
 * its start (*ret_len bytes), or NULL at the end. *p moves past it. */
static const char *list_next(const char **p, size_t *ret_len) {
        const char *start;
        size_t len;

        *p += strspn(*p, " \t,");
        if (!**p)
                return NULL;
        start = *p;
        *p += strcspn(*p, ",");
        len = (size_t) (*p - start);
        while (start[len - 1] == ' ' || start[len - 1] == '\t')
                len--; /* start[0] is neither */
        *ret_len = len;
        return start;
}

#define TOKEN_IS(t, len, want) ((len) == sizeof(want) - 1 && strncasecmp((t), (want), (len)) == 0)

bool http_list_has_token(const char *list, const char *token) {
        size_t tlen = strlen(token), len;

        if (!list)
                return false;
        for (const char *p = list, *t; (t = list_next(&p, &len)); )
                if (len == tlen && strncasecmp(t, token, tlen) == 0)
                        return true;
        return false;
}

bool http_header_is_hop_by_hop(const char *name) {
#define HOP(s) { s, sizeof(s) - 1 }
        /* Asked of every header both ways: compare only names of the same length. */
        static const struct {
                const char *name;
                size_t len;
        } hop[] = {
                HOP("Connection"), HOP("Keep-Alive"), HOP("Proxy-Connection"), HOP("Proxy-Authenticate"),
                HOP("Proxy-Authorization"), HOP("TE"), HOP("Trailer"), HOP("Transfer-Encoding"), HOP("Upgrade"),
        };
#undef HOP
        size_t len = strlen(name);

        for (size_t i = 0; i < ELEMENTSOF(hop); i++)
                if (len == hop[i].len && strcaseeq(name, hop[i].name))
                        return true;
        return false;
}

#define CHUNK_SIZE_DIGITS_MAX 15U   /* 2^60: more than any body, and no overflow */
#define CHUNK_LINE_MAX 4096U        /* chunk extensions and each trailer line */
#define CHUNK_TRAILERS_MAX 16384U

int chunked_decode(ChunkedDecoder *d, const char *in, size_t in_size, size_t *ret_consumed,
                   const char **ret_data, size_t *ret_data_size) {
        size_t i = 0;

        *ret_data = NULL;
        *ret_data_size = 0;

        while (i < in_size && d->state != CHUNK_DONE) {
                char c = in[i];
                int v;

                switch (d->state) {
                case CHUNK_SIZE:
                        v = http_unhex(c);
                        if (v >= 0) {
                                if (++d->size_digits > CHUNK_SIZE_DIGITS_MAX)
                                        return -EBADMSG;
                                d->remaining = d->remaining << 4 | (uint64_t) v;
                        } else if (d->size_digits == 0)
                                return -EBADMSG;
                        else if (c == '\r')
                                d->state = CHUNK_SIZE_LF;
                        else if (c == ';' || c == ' ' || c == '\t') {
                                d->state = CHUNK_SIZE_EXT;
                                d->line_bytes = 0;
                        } else
                                return -EBADMSG;
                        i++;
                        break;

                case CHUNK_SIZE_EXT:
                        if (c == '\r')
                                d->state = CHUNK_SIZE_LF;
                        else if (c == '\n' || c == '\0' || ++d->line_bytes > CHUNK_LINE_MAX)
                                return -EBADMSG;
                        i++;
                        break;

                case CHUNK_SIZE_LF:
                        if (c != '\n')
                                return -EBADMSG;
                        i++;
                        d->size_digits = 0;
                        if (d->remaining == 0) {
                                d->state = CHUNK_TRAILER_START;
                                d->line_bytes = 0;
                        } else
                                d->state = CHUNK_DATA;
                        break;

                case CHUNK_DATA: {
                        size_t n = (size_t) MIN((uint64_t) (in_size - i), d->remaining);

                        d->remaining -= n;
                        if (d->remaining == 0)
                                d->state = CHUNK_DATA_CR;
                        *ret_data = in + i;
                        *ret_data_size = n;
                        *ret_consumed = i + n;
                        return CHUNKED_DATA;
                }

                case CHUNK_DATA_CR:
                        if (c != '\r')
                                return -EBADMSG;
                        d->state = CHUNK_DATA_LF;
                        i++;
                        break;

                case CHUNK_DATA_LF:
                        if (c != '\n')
                                return -EBADMSG;
                        d->state = CHUNK_SIZE;
                        i++;
                        break;

                case CHUNK_TRAILER_START:
                        /* Either the final CRLF or a trailer field line, which we drop. */
                        if (c == '\r')
                                d->state = CHUNK_FINAL_LF;
                        else if (c == '\n')
                                return -EBADMSG;
                        else
                                d->state = CHUNK_TRAILER;
                        i++;
                        break;

                case CHUNK_TRAILER:
                        if (c == '\r')
                                d->state = CHUNK_TRAILER_LF;
                        else if (c == '\n' || c == '\0')
                                return -EBADMSG;
                        if (++d->line_bytes > CHUNK_TRAILERS_MAX)
                                return -EBADMSG;
                        i++;
                        break;

                case CHUNK_TRAILER_LF:
                        if (c != '\n')
                                return -EBADMSG;
                        d->state = CHUNK_TRAILER_START;
                        i++;
                        break;

                case CHUNK_FINAL_LF:
                        if (c != '\n')
                                return -EBADMSG;
                        d->state = CHUNK_DONE;
                        i++;
                        break;

                case CHUNK_DONE:
                        break;
                }
        }

        *ret_consumed = i;
        return d->state == CHUNK_DONE ? CHUNKED_DONE : CHUNKED_NEED_MORE;
}

ssize_t http_head_length(const char *buf, size_t size, size_t max) {
        size_t n = MIN(size, max);

        /* From LF to LF: memmem() costs more on a head of short lines. */
        for (const char *lf = n > 3 ? memchr(buf + 3, '\n', n - 3) : NULL; lf;
             lf = memchr(lf + 1, '\n', (size_t) (buf + n - lf - 1)))
                if (lf[-1] == '\r' && lf[-2] == '\n' && lf[-3] == '\r')
                        return (ssize_t) (lf - buf) + 1;
        return size >= max ? -E2BIG : 0;
}

static int parse_content_length(const char *v, int64_t *ret) {
        int64_t n = 0;

        if (!*v)
                return -EBADMSG;
        for (; *v; v++) {
                if (!isdigit((unsigned char) *v))
                        return -EBADMSG;
                if (n > (INT64_MAX - 9) / 10)
                        return -EBADMSG;
                n = n * 10 + (*v - '0');
        }
        *ret = n;
        return 0;
}

/* Whether a header name of length len is want (a literal), compared without case. The
 * lengths decide most of them: the daemon's head is parsed for every response. */
#define NAME_IS(name, len, want) ((len) == sizeof(want) - 1 && strcaseeq((name), (want)))

int http_response_head_parse(char *buf, size_t head_size, HttpResponseHead *ret) {
        HttpResponseHead *h = ret;
        char *line, *end, *p;
        bool have_te = false;

        /* Only the fields used so far are set: the header array alone is 1.6 KiB. */
        h->n_headers = 0;
        h->content_length = -1;
        h->chunked = h->connection_close = h->connection_upgrade = h->connection_lists_fields = false;
        h->upgrade = h->content_type = NULL;

        if (head_size < 4 || memcmp(buf + head_size - 4, "\r\n\r\n", 4) != 0)
                return -EBADMSG;
        if (memchr(buf, '\0', head_size))
                return -EBADMSG;
        buf[head_size - 2] = '\0'; /* the last CRLF ends the final line */

        /* Status line: HTTP/1.x SP 3DIGIT SP reason */
        line = buf;
        end = strstr(line, "\r\n");
        if (!end)
                return -EBADMSG;
        *end = '\0';
        if (strncmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') || line[8] != ' ')
                return -EBADMSG;
        h->version_minor = (unsigned) (line[7] - '0');
        p = line + 9;
        if (!isdigit((unsigned char) p[0]) || !isdigit((unsigned char) p[1]) ||
            !isdigit((unsigned char) p[2]) || (p[3] != ' ' && p[3] != '\0'))
                return -EBADMSG;
        h->status = (unsigned) ((p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0'));
        if (h->status < 100)
                return -EBADMSG;
        if (!http_is_field_value(p))
                return -EBADMSG;

        for (line = end + 2; *line; line = end + 2) {
                char *name = line, *value, *value_end;
                size_t name_len;

                /* A CR not followed by LF is refused here rather than by the value check. */
                end = strchr(line, '\r');
                if (!end || end[1] != '\n')
                        return -EBADMSG;
                *end = '\0';

                /* One pass over the name: tchars up to the colon. A line that begins with
                 * a space (obs-fold) or has none before its colon has no name. */
                for (p = line; http_is_tchar((unsigned char) *p); p++)
                        ;
                if (p == line || *p != ':')
                        return -EBADMSG;
                name_len = (size_t) (p - line);
                *p = '\0';

                value = p + 1;
                while (*value == ' ' || *value == '\t')
                        value++;
                value_end = end;
                while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t'))
                        value_end--;
                *value_end = '\0';
                /* Refuses every control byte but HTAB, so CR and LF too. */
                if (!http_is_field_value(value))
                        return -EBADMSG;
                if (h->n_headers >= HTTP_HEADERS_MAX)
                        return -EBADMSG;
                h->headers[h->n_headers++] = (HttpHeader) { name, value };

                if (NAME_IS(name, name_len, "Content-Length")) {
                        int64_t n;
                        if (parse_content_length(value, &n) < 0)
                                return -EBADMSG;
                        if (h->content_length >= 0 && h->content_length != n)
                                return -EBADMSG;
                        h->content_length = n;
                } else if (NAME_IS(name, name_len, "Transfer-Encoding")) {
                        if (have_te || !strcaseeq(value, "chunked"))
                                return -EBADMSG;
                        have_te = true;
                        h->chunked = true;
                } else if (NAME_IS(name, name_len, "Connection")) {
                        size_t len;

                        for (const char *q = value, *t; (t = list_next(&q, &len)); ) {
                                bool upgrade = TOKEN_IS(t, len, "upgrade");

                                if (TOKEN_IS(t, len, "close"))
                                        h->connection_close = true;
                                if (upgrade)
                                        h->connection_upgrade = true;
                                /* Any other names a field that ends at this hop ("close" the
                                 * reserved Close); Keep-Alive and Upgrade are hop-by-hop anyway. */
                                if (!upgrade && !TOKEN_IS(t, len, "keep-alive"))
                                        h->connection_lists_fields = true;
                        }
                } else if (NAME_IS(name, name_len, "Upgrade"))
                        h->upgrade = value;
                else if (NAME_IS(name, name_len, "Content-Type"))
                        h->content_type = value;
        }

        if (h->chunked && h->content_length >= 0)
                return -EBADMSG; /* ambiguous framing: refuse rather than guess */
        return 0;
}

BodyMode http_response_body_mode(const HttpResponseHead *h, const char *request_method) {
        if (streq(request_method, "HEAD") || h->status < 200 || h->status == 204 || h->status == 304)
                return BODY_NONE;
        if (h->chunked)
                return BODY_CHUNKED;
        if (h->content_length >= 0)
                return BODY_LENGTH;
        return BODY_UNTIL_CLOSE;
}
