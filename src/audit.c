/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdio.h>

#include "audit-ids.h"
#include "audit.h"
#include "fd-util.h"
#include "log.h"

typedef struct RateLimit {
        usec_t begin;
        unsigned count;
        unsigned long long suppressed;
} RateLimit;

static pthread_mutex_t ratelimit_lock = PTHREAD_MUTEX_INITIALIZER;
static RateLimit ratelimits[_AUDIT_KIND_MAX];

static const char *const kind_names[_AUDIT_KIND_MAX] = {
        [AUDIT_REFUSED] = "refused",
        [AUDIT_MALFORMED] = "malformed",
        [AUDIT_FAILED] = "failed",
        [AUDIT_ALLOWED] = "allowed",
        [AUDIT_TUNNEL] = "tunnel",
};

static void report_suppressed(AuditKind kind, unsigned long long n) {
        char message[160], count[48], verdict[48];

        snprintf(message, sizeof(message), "Suppressed %llu audit messages about %s requests in the last %llu s",
                 n, kind_names[kind], AUDIT_INTERVAL_USEC / USEC_PER_SEC);
        snprintf(count, sizeof(count), "DSP_SUPPRESSED=%llu", n);
        snprintf(verdict, sizeof(verdict), "DSP_VERDICT=%s", kind_names[kind]);
        log_struct(LOG_WARNING, DSP_MESSAGE_SUPPRESSED, message, count, verdict, NULL);
}

/* true: log it. On the first event of a new interval, also reports the last one's losses. */
static bool ratelimit_test(AuditKind kind) {
        unsigned long long lost = 0;
        usec_t now = now_usec();
        bool pass;

        pthread_mutex_lock(&ratelimit_lock);
        RateLimit *rl = &ratelimits[kind];
        if (rl->begin == 0 || now - rl->begin >= AUDIT_INTERVAL_USEC) {
                lost = rl->suppressed;
                *rl = (RateLimit) { .begin = now };
        }
        pass = rl->count < AUDIT_BURST;
        if (pass)
                rl->count++;
        else
                rl->suppressed++;
        pthread_mutex_unlock(&ratelimit_lock);

        if (lost > 0)
                report_suppressed(kind, lost);
        return pass;
}

bool audit_flush_suppressed(void) {
        usec_t now = now_usec();
        bool left = false;

        for (AuditKind k = 0; k < _AUDIT_KIND_MAX; k++) {
                unsigned long long lost = 0;

                pthread_mutex_lock(&ratelimit_lock);
                if (ratelimits[k].suppressed > 0 && now - ratelimits[k].begin >= AUDIT_INTERVAL_USEC) {
                        lost = ratelimits[k].suppressed;
                        ratelimits[k] = (RateLimit) {};
                }
                left = left || ratelimits[k].suppressed > 0;
                pthread_mutex_unlock(&ratelimit_lock);
                if (lost > 0)
                        report_suppressed(k, lost);
        }
        return left;
}

/* Client bytes go into a log line: escape what could forge or garble one. */
static const char *escape(const char *s, char *buf, size_t size) {
        size_t n = 0;

        if (!s)
                return NULL;
        for (; *s && n + 5 < size; s++) {
                unsigned char c = *s;
                if (c < 0x20 || c >= 0x7f || c == '\\')
                        n += (size_t) snprintf(buf + n, size - n, "\\x%02x", c);
                else
                        buf[n++] = (char) c;
        }
        buf[n] = '\0';
        return buf;
}

static const struct {
        int level;
        const char *message_id;
        const char *verb;
} kinds[_AUDIT_KIND_MAX] = {
        [AUDIT_REFUSED] = { LOG_WARNING, DSP_MESSAGE_REQUEST_REFUSED, "Refused" },
        [AUDIT_MALFORMED] = { LOG_WARNING, DSP_MESSAGE_REQUEST_MALFORMED, "Rejected malformed" },
        [AUDIT_FAILED] = { LOG_ERR, DSP_MESSAGE_DAEMON_FAILED, "Failed" },
        [AUDIT_ALLOWED] = { LOG_DEBUG, DSP_MESSAGE_REQUEST_ALLOWED, "Allowed" },
        [AUDIT_TUNNEL] = { LOG_INFO, DSP_MESSAGE_TUNNEL_CLOSED, "Closed tunnel for" },
};

bool audit_enabled(AuditKind kind) {
        return kinds[kind].level <= log_get_max_level();
}

void audit_log(const AuditRecord *r) {
        char message[4096], peer[128], method[64], path[1024], query[1024];
        char f_method[96], f_path[2048], f_query[2048], f_rule[96], f_listener[320], f_status[32],
                f_verdict[48], f_pid[32], f_uid[32], f_gid[32], f_comm[48], f_addr[80], f_port[32],
                f_duration[48], f_in[48], f_out[48];
        const char *fields[20];
        size_t n = 0;

        if (!audit_enabled(r->kind))
                return;
        if (r->kind != AUDIT_ALLOWED && r->kind != AUDIT_TUNNEL && !ratelimit_test(r->kind))
                return;

        peer_describe(r->peer, peer, sizeof(peer));
        escape(r->method, method, sizeof(method));
        escape(r->path, path, sizeof(path));
        escape(r->query, query, sizeof(query));
        snprintf(message, sizeof(message), "%s %s %s%s%s from %s on '%s': %s", kinds[r->kind].verb,
                 method, path, r->query ? "?" : "", r->query ? query : "", peer,
                 strempty(r->listener), strempty(r->reason));

#define FIELD(buf, ...) (snprintf(buf, sizeof(buf), __VA_ARGS__), fields[n++] = buf)
        FIELD(f_verdict, "DSP_VERDICT=%s", kind_names[r->kind]);
        FIELD(f_method, "DSP_METHOD=%s", method);
        FIELD(f_path, "DSP_PATH=%s", path);
        if (r->query)
                FIELD(f_query, "DSP_QUERY=%s", query);
        if (r->rule)
                FIELD(f_rule, "DSP_RULE=%s", r->rule);
        FIELD(f_listener, "DSP_LISTENER=%s", strempty(r->listener));
        FIELD(f_status, "DSP_STATUS=%u", r->status);
        if (r->peer->is_unix && r->peer->have_creds) {
                FIELD(f_pid, "DSP_PEER_PID=%d", (int) r->peer->pid);
                FIELD(f_uid, "DSP_PEER_UID=%u", (unsigned) r->peer->uid);
                FIELD(f_gid, "DSP_PEER_GID=%u", (unsigned) r->peer->gid);
                if (r->peer->comm[0])
                        FIELD(f_comm, "DSP_PEER_COMM=%s", r->peer->comm);
        } else if (!r->peer->is_unix && r->peer->address[0]) {
                FIELD(f_addr, "DSP_PEER_ADDRESS=%s", r->peer->address);
                FIELD(f_port, "DSP_PEER_PORT=%u", r->peer->port);
        }
        if (r->kind == AUDIT_ALLOWED || r->kind == AUDIT_TUNNEL) {
                FIELD(f_duration, "DSP_DURATION_USEC=%llu", r->duration_usec);
                FIELD(f_in, "DSP_BYTES_IN=%llu", r->bytes_in);
                FIELD(f_out, "DSP_BYTES_OUT=%llu", r->bytes_out);
        }
#undef FIELD
        log_struct_array(kinds[r->kind].level, kinds[r->kind].message_id, message, fields, n);
}
