/* SPDX-License-Identifier: MIT */
#pragma once

/* Pure HTTP helpers: request-target canonicalization, header syntax, the hop-by-hop set,
 * the chunked decoder and the parser for the daemon's response head. No I/O, no logging. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The ceiling; the configured limit (SOCKET_PROXY_MAX_TARGET_BYTES) is kept by the request gate. */
#define HTTP_TARGET_MAX (1024U * 1024U)
#define HTTP_HEADERS_MAX 100U
#define HTTP_RESPONSE_HEAD_MAX (64U * 1024U)
#define HTTP_API_VERSION_MAX 15U

/* Why a request-target cannot be matched against the policy. Positive: an expected outcome. */
typedef enum TargetError {
        TARGET_OK = 0,
        TARGET_NOT_ORIGIN_FORM,  /* absolute-form, asterisk-form, empty */
        TARGET_TOO_LONG,
        TARGET_BAD_BYTE,         /* control byte, space, non-ASCII, '#', '\' or another byte a URI cannot hold */
        TARGET_BAD_ESCAPE,       /* '%' not followed by two hex digits */
        TARGET_FORBIDDEN_ESCAPE, /* an escaped '/', '\', '.', NUL or control byte */
        TARGET_EMPTY_SEGMENT,    /* '//' or a trailing '/' */
        TARGET_DOT_SEGMENT,      /* '.' or '..' */
        _TARGET_ERROR_MAX,
} TargetError;

typedef struct HttpTarget {
        char *path;                               /* decoded, version prefix removed, starts with '/' */
        char api_version[HTTP_API_VERSION_MAX + 1]; /* "1.41", or "" without a prefix */
        const char *query;                        /* points into the raw target after '?', or NULL */
        size_t raw_path_size;                     /* bytes of the raw target before '?' */
} HttpTarget;

/* The value of a hexadecimal digit, or -1. */
int http_unhex(char c) __attribute__((const));
/* A tchar of RFC 9110: what tokens (methods, header names) are made of. A table, since the
 * request gate asks this of every byte of every header name. */
extern const bool http_tchar_table[256];
static inline bool http_is_tchar(unsigned char c) {
        return http_tchar_table[c];
}
/* A byte a field value may hold (RFC 9110 field-vchar, SP, HTAB): neither a control byte
 * but HTAB nor DEL. A table too: both heads' values pass through it byte by byte. */
extern const bool http_field_byte_table[256];
static inline bool http_is_field_byte(unsigned char c) {
        return http_field_byte_table[c];
}

/* Returns 0, a positive TargetError, or -ENOMEM. On success ret->path is allocated. */
int http_target_parse(const char *raw, HttpTarget *ret);
void http_target_done(HttpTarget *t);
const char *target_error_to_string(TargetError e) __attribute__((const));

/* RFC 9110 token (header names, methods) and field-value checks. */
bool http_is_token(const char *s);
bool http_is_field_value(const char *s);
/* Does a comma-separated header list (Connection:) hold this token, case-insensitively? */
bool http_list_has_token(const char *list, const char *token);
/* Headers that describe one hop and must not be forwarded. */
bool http_header_is_hop_by_hop(const char *name);

/* Chunked transfer-coding decoder (RFC 9112 7.1), fed in pieces. */
typedef enum ChunkedState {
        CHUNK_SIZE,
        CHUNK_SIZE_EXT,
        CHUNK_SIZE_LF,
        CHUNK_DATA,
        CHUNK_DATA_CR,
        CHUNK_DATA_LF,
        CHUNK_TRAILER_START,
        CHUNK_TRAILER,
        CHUNK_TRAILER_LF,
        CHUNK_FINAL_LF,
        CHUNK_DONE,
} ChunkedState;

typedef struct ChunkedDecoder {
        ChunkedState state;
        uint64_t remaining;
        unsigned size_digits;
        size_t line_bytes;
        bool last_chunk;
} ChunkedDecoder;

#define CHUNKED_DECODER_INIT ((ChunkedDecoder) { .state = CHUNK_SIZE })

enum {
        CHUNKED_NEED_MORE = 0, /* all input consumed, no payload in it */
        CHUNKED_DATA = 1,      /* *ret_data holds payload bytes (inside the input) */
        CHUNKED_DONE = 2,      /* the body ended; input past *ret_consumed is not part of it */
};

/* Consumes input up to and including the first run of payload bytes. Returns one of the values
 * above, or -EBADMSG on a framing error. */
int chunked_decode(ChunkedDecoder *d, const char *in, size_t in_size, size_t *ret_consumed,
                   const char **ret_data, size_t *ret_data_size);

typedef struct HttpHeader {
        const char *name;
        const char *value;
} HttpHeader;

typedef enum BodyMode {
        BODY_NONE,
        BODY_LENGTH,
        BODY_CHUNKED,
        BODY_UNTIL_CLOSE,
} BodyMode;

typedef struct HttpResponseHead {
        unsigned status;
        unsigned version_minor;
        HttpHeader headers[HTTP_HEADERS_MAX];
        size_t n_headers;
        int64_t content_length; /* -1 when absent */
        bool chunked;
        bool connection_close;
        bool connection_upgrade;
        bool connection_lists_fields; /* Connection: names more than keep-alive and upgrade */
        const char *upgrade;      /* NULL when absent */
        const char *content_type; /* NULL when absent */
} HttpResponseHead;

/* Length of the head including its empty line; 0 when more bytes are needed; -E2BIG past max. */
ssize_t http_head_length(const char *buf, size_t size, size_t max);
/* Parses a response head of exactly head_size bytes in place (it writes NULs into buf).
 * Returns 0 or -EBADMSG: the daemon's bytes are not trusted. After -EBADMSG, *ret holds
 * nothing usable. */
int http_response_head_parse(char *buf, size_t head_size, HttpResponseHead *ret);
/* How the body that follows this head is framed, for a request made with this method. */
BodyMode http_response_body_mode(const HttpResponseHead *h, const char *request_method);
