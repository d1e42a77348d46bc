/* SPDX-License-Identifier: MIT */
#pragma once

/* The audit trail: one structured journal entry per refused, malformed or failed request
 * (and per allowed one at debug level). Refusals are rate-limited so that a flood of them
 * cannot flood the journal; what was suppressed is counted and reported. */

#include "peer.h"

typedef enum AuditKind {
        AUDIT_REFUSED,   /* 403 by policy */
        AUDIT_MALFORMED, /* 400 */
        AUDIT_FAILED,    /* 502/504: the daemon could not be reached or misbehaved */
        AUDIT_ALLOWED,   /* forwarded, logged at debug when it completes */
        AUDIT_TUNNEL,    /* a hijacked stream ended: how long it lived, bytes each way */
        _AUDIT_KIND_MAX,
} AuditKind;

typedef struct AuditRecord {
        AuditKind kind;
        const char *method;
        const char *path;     /* the raw path, without the query */
        const char *query;    /* NULL when none */
        const char *listener; /* the listener's name */
        const char *rule;     /* the variable that decided, or NULL */
        const char *reason;   /* plain words: "needs CONTAINERS=1 and POST=1" */
        unsigned status;
        const Peer *peer;
        unsigned long long duration_usec;
        unsigned long long bytes_in, bytes_out;
} AuditRecord;

#define AUDIT_BURST 200U
#define AUDIT_INTERVAL_USEC (10ULL * 1000000ULL)

/* Whether records of this kind are logged at the current log level: callers skip building
 * one that would be dropped (an allowed request is logged only at debug). */
bool audit_enabled(AuditKind kind);
void audit_log(const AuditRecord *r);
/* Reports what the rate limit suppressed, once its interval is over. Called periodically;
 * returns whether suppressed messages are left to report in a later call. */
bool audit_flush_suppressed(void);
