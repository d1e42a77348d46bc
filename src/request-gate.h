/* SPDX-License-Identifier: MIT */
#pragma once

/* The request gate: a strict reader of the byte stream a client sends, run ahead of
 * libmicrohttpd. libmicrohttpd 0.9.75 forgives what RFC 9112 forbids (obs-fold, bare LF,
 * NUL in a value, extra spaces) and answers some errors in its own words; a proxy in front
 * of root must not forgive anything a second parser could frame differently. The gate
 * finds the first byte that breaks the rules, so that the request it belongs to is refused
 * before anything parses it, and keeps the limits on the request line and the head.
 * Pure: no I/O, no allocation. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum GatePhase {
        GATE_START,          /* before a request line; empty lines are allowed here */
        GATE_START_LF,
        GATE_METHOD,
        GATE_TARGET_START,
        GATE_TARGET,
        GATE_VERSION,
        GATE_LINE_LF,        /* a CR was read; its LF must follow */
        GATE_FIELD_START,    /* the start of a header (or trailer) line */
        GATE_FIELD_NAME,
        GATE_FIELD_VALUE,
        GATE_HEAD_END_LF,
        /* The phases above read a head (or a trailer) and count toward its limit. */
        GATE_BODY,           /* Content-Length bytes */
        GATE_CHUNK_SIZE,
        GATE_CHUNK_EXT,
        GATE_CHUNK_SIZE_LF,
        GATE_CHUNK_DATA,
        GATE_CHUNK_DATA_CR,
        GATE_CHUNK_DATA_LF,
        GATE_PASSTHROUGH,    /* after a request that asked to switch protocols: not HTTP any more */
        GATE_FAILED,
} GatePhase;

typedef struct RequestGate {
        /* Limits, set by request_gate_init. */
        size_t max_target;
        size_t max_head;

        GatePhase phase;
        bool in_trailer;          /* the field lines are a chunked body's trailer */
        bool field_cr;            /* GATE_LINE_LF ends a field line, not the request line */
        size_t head_bytes;        /* of the current request's line and headers (or trailer) */
        size_t target_bytes;
        unsigned query_arguments; /* 0 before a '?'; then 1 + the '&' after it */
        unsigned version_at;      /* how much of "HTTP/1.x" matched */
        char version_minor;       /* '0' or '1' */

        char name[20];            /* the current field name, lowercase, if it fits */
        size_t name_len;
        char value[24];           /* the current value of a field we read, without OWS */
        size_t value_len;
        size_t value_ws;          /* whitespace seen after the value's last visible byte */
        bool value_long;
        unsigned field;           /* which field the current line is (GATE_FIELD_*) */
        unsigned fields;          /* header (or trailer) lines so far */

        unsigned n_content_length, n_transfer_encoding, n_host;
        bool chunked, upgrade;
        uint64_t remaining;       /* body or chunk bytes still to come */
        unsigned chunk_digits;
        size_t chunk_line;        /* bytes of the current chunk-size line */

        uint64_t requests;        /* complete requests read so far */
        char method[16];          /* the current request's, cut short: for the audit */
        char target[128];

        /* Once failed: the status to answer with (400, 414 or 431) and why. */
        unsigned status;
        const char *error;
        /* Set by request_gate_feed: where in the bytes it was given the current request
         * began (the failing one, once failed), or -1 if it began in an earlier feed. */
        ssize_t request_began;
} RequestGate;

void request_gate_init(RequestGate *g, size_t max_target, size_t max_head);
/* Reads n more bytes of the stream. Returns how many of them are fine: all n unless a
 * request breaks the rules; then g->status and g->error say how, and every later call
 * returns 0. */
size_t request_gate_feed(RequestGate *g, const void *bytes, size_t n);
static inline bool request_gate_failed(const RequestGate *g) {
        return g->phase == GATE_FAILED;
}
/* True while the gate is between requests: nothing of the next one has come yet. */
static inline bool request_gate_idle(const RequestGate *g) {
        return g->phase == GATE_START && g->head_bytes == 0;
}
