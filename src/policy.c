/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "macro.h"
#include "policy.h"

static const struct {
        const char *variable;
        const char *segment;
        bool on_by_default;
} sections[_SECTION_MAX] = {
        [SECTION_EVENTS] = { "EVENTS", "events", true },
        [SECTION_PING] = { "PING", "_ping", true },
        [SECTION_VERSION] = { "VERSION", "version", true },
        [SECTION_AUTH] = { "AUTH", "auth" },
        [SECTION_BUILD] = { "BUILD", "build" },
        [SECTION_COMMIT] = { "COMMIT", "commit" },
        [SECTION_CONFIGS] = { "CONFIGS", "configs" },
        [SECTION_CONTAINERS] = { "CONTAINERS", "containers" },
        [SECTION_DISTRIBUTION] = { "DISTRIBUTION", "distribution" },
        [SECTION_EXEC] = { "EXEC", "exec" },
        [SECTION_GRPC] = { "GRPC", "grpc" },
        [SECTION_IMAGES] = { "IMAGES", "images" },
        [SECTION_INFO] = { "INFO", "info" },
        [SECTION_NETWORKS] = { "NETWORKS", "networks" },
        [SECTION_NODES] = { "NODES", "nodes" },
        [SECTION_PLUGINS] = { "PLUGINS", "plugins" },
        [SECTION_SECRETS] = { "SECRETS", "secrets" },
        [SECTION_SERVICES] = { "SERVICES", "services" },
        [SECTION_SESSION] = { "SESSION", "session" },
        [SECTION_SWARM] = { "SWARM", "swarm" },
        [SECTION_SYSTEM] = { "SYSTEM", "system" },
        [SECTION_TASKS] = { "TASKS", "tasks" },
        [SECTION_VOLUMES] = { "VOLUMES", "volumes" },
};

static const struct {
        const char *variable;
        const char *description;
} guards[_GUARD_MAX] = {
        [GUARD_ARCHIVE] = { "ALLOW_ARCHIVE", "/containers/{id}/archive (docker cp)" },
        [GUARD_EXPORT] = { "ALLOW_EXPORT", "/containers/{id}/export" },
        [GUARD_LOGS] = { "ALLOW_LOGS", "/containers/{id}/logs" },
        [GUARD_CHANGES] = { "ALLOW_CHANGES", "/containers/{id}/changes" },
        [GUARD_TOP] = { "ALLOW_TOP", "/containers/{id}/top" },
        [GUARD_ATTACH] = { "ALLOW_ATTACH", "/containers/{id}/attach and attach/ws" },
        [GUARD_EXEC] = { "ALLOW_EXEC", "/containers/{id}/exec (creating an exec)" },
        [GUARD_KILL] = { "ALLOW_KILL", "/containers/{id}/kill (also opened by ALLOW_RESTARTS)" },
        [GUARD_SWARM_UNLOCKKEY] = { "ALLOW_SWARM_UNLOCKKEY", "/swarm/unlockkey and /swarm/unlock" },
};

/* The last segment of /containers/{id}/<verb> that each guard watches. */
static const struct {
        const char *verb;
        Guard guard;
} container_guard_verbs[] = {
        { "archive", GUARD_ARCHIVE }, { "export", GUARD_EXPORT }, { "logs", GUARD_LOGS },
        { "changes", GUARD_CHANGES }, { "top", GUARD_TOP },       { "attach", GUARD_ATTACH },
        { "exec", GUARD_EXEC },       { "kill", GUARD_KILL },
};

static const struct {
        const char *variable;
        const char *description;
} grants[_GRANT_MAX] = {
        [GRANT_START] = { "ALLOW_START", "POST /containers/{id}/start" },
        [GRANT_STOP] = { "ALLOW_STOP", "POST /containers/{id}/stop" },
        [GRANT_RESTARTS] = { "ALLOW_RESTARTS", "POST /containers/{id}/stop, restart and kill" },
        [GRANT_PAUSE] = { "ALLOW_PAUSE", "POST /containers/{id}/pause" },
        [GRANT_UNPAUSE] = { "ALLOW_UNPAUSE", "POST /containers/{id}/unpause" },
};

static const struct {
        const char *verb;
        Grant grant;
} grant_verbs[] = {
        { "start", GRANT_START },     { "stop", GRANT_STOP },   { "stop", GRANT_RESTARTS },
        { "restart", GRANT_RESTARTS }, { "kill", GRANT_RESTARTS }, { "pause", GRANT_PAUSE },
        { "unpause", GRANT_UNPAUSE },
};

static const char *const write_method_names[_WRITE_METHOD_MAX] = {
        [WRITE_DELETE] = "DELETE",
        [WRITE_PUT] = "PUT",
        [WRITE_PATCH] = "PATCH",
};

const char *const policy_variable_names[] = {
        "EVENTS", "PING", "VERSION", "AUTH", "BUILD", "COMMIT", "CONFIGS", "CONTAINERS",
        "DISTRIBUTION", "EXEC", "GRPC", "IMAGES", "INFO", "NETWORKS", "NODES", "PLUGINS",
        "SECRETS", "SERVICES", "SESSION", "SWARM", "SYSTEM", "TASKS", "VOLUMES",
        "POST", "DELETE", "PUT", "PATCH",
        "ALLOW_ARCHIVE", "ALLOW_EXPORT", "ALLOW_LOGS", "ALLOW_CHANGES", "ALLOW_TOP",
        "ALLOW_ATTACH", "ALLOW_EXEC", "ALLOW_KILL", "ALLOW_SWARM_UNLOCKKEY",
        "ALLOW_START", "ALLOW_STOP", "ALLOW_RESTARTS", "ALLOW_PAUSE", "ALLOW_UNPAUSE",
        NULL,
};

int parse_boolean(const char *v) {
        static const char *const on[] = { "1", "true", "yes", "on" };
        static const char *const off[] = { "0", "false", "no", "off", "" };

        for (size_t i = 0; i < ELEMENTSOF(on); i++)
                if (strcaseeq(v, on[i]))
                        return 1;
        for (size_t i = 0; i < ELEMENTSOF(off); i++)
                if (strcaseeq(v, off[i]))
                        return 0;
        return -EINVAL;
}

void policy_init_default(Policy *p) {
        *p = (Policy) {};
        for (size_t i = 0; i < _SECTION_MAX; i++)
                p->sections[i] = sections[i].on_by_default;
        for (size_t i = 0; i < _WRITE_METHOD_MAX; i++)
                p->write_methods[i] = TRISTATE_UNSET;
}

/* Where a variable lives in the Policy, or NULL. */
static bool *policy_flag(Policy *p, const char *name) {
        for (size_t i = 0; i < _SECTION_MAX; i++)
                if (streq(name, sections[i].variable))
                        return &p->sections[i];
        for (size_t i = 0; i < _GUARD_MAX; i++)
                if (streq(name, guards[i].variable))
                        return &p->guards[i];
        for (size_t i = 0; i < _GRANT_MAX; i++)
                if (streq(name, grants[i].variable))
                        return &p->grants[i];
        if (streq(name, "POST"))
                return &p->post;
        return NULL;
}

static int write_method_from_string(const char *name) {
        for (size_t i = 0; i < _WRITE_METHOD_MAX; i++)
                if (streq(name, write_method_names[i]))
                        return (int) i;
        return -ENOENT;
}

bool policy_is_variable(const char *name) {
        for (size_t i = 0; policy_variable_names[i]; i++)
                if (streq(name, policy_variable_names[i]))
                        return true;
        return false;
}

int policy_set(Policy *p, const char *name, const char *value) {
        bool *flag = policy_flag(p, name);
        int m = write_method_from_string(name);
        int b;

        if (!flag && m < 0)
                return -ENOENT;
        b = parse_boolean(value);
        if (b < 0)
                return b;
        if (flag)
                *flag = b;
        else
                p->write_methods[m] = b ? TRISTATE_ON : TRISTATE_OFF;
        return 0;
}

typedef enum MethodKind {
        METHOD_READ,
        METHOD_POST,   /* POST and OPTIONS */
        METHOD_DELETE,
        METHOD_PUT,
        METHOD_PATCH,
        METHOD_NEVER,  /* CONNECT, TRACE */
        METHOD_UNKNOWN,
} MethodKind;

static MethodKind method_kind(const char *method) {
        /* Case-sensitive, as the daemon's router is: "get" matches no route. */
        if (streq(method, "GET") || streq(method, "HEAD"))
                return METHOD_READ;
        if (streq(method, "POST") || streq(method, "OPTIONS"))
                return METHOD_POST;
        if (streq(method, "DELETE"))
                return METHOD_DELETE;
        if (streq(method, "PUT"))
                return METHOD_PUT;
        if (streq(method, "PATCH"))
                return METHOD_PATCH;
        if (streq(method, "CONNECT") || streq(method, "TRACE"))
                return METHOD_NEVER;
        return METHOD_UNKNOWN;
}

#define SEGMENTS_MAX 8U

typedef struct Segments {
        const char *start[SEGMENTS_MAX];
        size_t len[SEGMENTS_MAX];
        unsigned n;      /* how many were recorded */
        unsigned total;  /* how many the path has */
} Segments;

static void split_segments(const char *path, Segments *s) {
        *s = (Segments) {};
        for (const char *p = path + 1; ; ) {
                const char *end = strchrnul(p, '/');
                if (s->n < SEGMENTS_MAX) {
                        s->start[s->n] = p;
                        s->len[s->n] = end - p;
                        s->n++;
                }
                s->total++;
                if (*end == '\0')
                        break;
                p = end + 1;
        }
}

static bool segment_is(const Segments *s, unsigned i, const char *word) {
        return i < s->n && s->len[i] == strlen(word) && memcmp(s->start[i], word, s->len[i]) == 0;
}

static void need(Verdict *v, const char *variable) {
        for (unsigned i = 0; i < v->n_needs; i++)
                if (streq(v->needs[i], variable))
                        return;
        if (v->n_needs < VERDICT_NEEDS_MAX)
                v->needs[v->n_needs++] = variable;
}

static void refuse(Verdict *v, const char *reason) {
        *v = (Verdict) { .reason = reason };
}

void policy_decide(const Policy *p, const char *method, const char *path, Verdict *ret) {
        MethodKind kind = method_kind(method);
        const char *rule = NULL;
        Verdict v = {};
        Segments s;
        int section = -1;

        if (kind == METHOD_NEVER) {
                refuse(ret, "this method is never allowed");
                return;
        }
        if (kind == METHOD_UNKNOWN) {
                refuse(ret, "the method is not one the Docker API knows");
                return;
        }
        if (!path || path[0] != '/' || streq(path, "/")) {
                refuse(ret, "no variable allows this path");
                return;
        }

        split_segments(path, &s);

        /* Grants: exactly POST /containers/{id}/<verb>, whatever CONTAINERS and POST say. */
        if (kind == METHOD_POST && streq(method, "POST") && s.total == 3 && segment_is(&s, 0, "containers"))
                for (size_t i = 0; i < ELEMENTSOF(grant_verbs); i++) {
                        if (!segment_is(&s, 2, grant_verbs[i].verb))
                                continue;
                        if (p->grants[grant_verbs[i].grant]) {
                                *ret = (Verdict) { .allowed = true, .rule = grants[grant_verbs[i].grant].variable };
                                return;
                        }
                        if (!v.alternative)
                                v.alternative = grants[grant_verbs[i].grant].variable;
                }

        for (size_t i = 0; i < _SECTION_MAX; i++)
                if (segment_is(&s, 0, sections[i].segment)) {
                        section = (int) i;
                        break;
                }
        if (section < 0) {
                refuse(ret, "no variable allows this path");
                return;
        }
        if (!p->sections[section])
                need(&v, sections[section].variable);
        rule = sections[section].variable;

        /* Guards watch the operation wherever it sits after the id: the daemon's routes take
         * "{name:.*}", so the verb is not always the third segment. */
        if (section == SECTION_CONTAINERS)
                for (unsigned i = 2; i < s.n; i++)
                        for (size_t j = 0; j < ELEMENTSOF(container_guard_verbs); j++) {
                                Guard g = container_guard_verbs[j].guard;
                                bool open;

                                if (!segment_is(&s, i, container_guard_verbs[j].verb))
                                        continue;
                                open = p->guards[g] || (g == GUARD_KILL && p->grants[GRANT_RESTARTS]);
                                if (!open)
                                        need(&v, guards[g].variable);
                                else
                                        rule = guards[g].variable;
                        }
        if (section == SECTION_SWARM && (segment_is(&s, 1, "unlockkey") || segment_is(&s, 1, "unlock"))) {
                if (!p->guards[GUARD_SWARM_UNLOCKKEY])
                        need(&v, guards[GUARD_SWARM_UNLOCKKEY].variable);
                else
                        rule = guards[GUARD_SWARM_UNLOCKKEY].variable;
        }
        if (s.total > SEGMENTS_MAX && section == SECTION_CONTAINERS) {
                /* Deeper than any container route: refuse rather than leave segments unseen. */
                refuse(ret, "no variable allows this path");
                return;
        }

        switch (kind) {
        case METHOD_READ:
                break;
        case METHOD_POST:
                if (!p->post)
                        need(&v, "POST");
                break;
        case METHOD_DELETE:
        case METHOD_PUT:
        case METHOD_PATCH: {
                WriteMethod m = kind == METHOD_DELETE ? WRITE_DELETE : kind == METHOD_PUT ? WRITE_PUT : WRITE_PATCH;
                Tristate t = p->write_methods[m];

                if (t == TRISTATE_UNSET ? !p->post : t == TRISTATE_OFF)
                        need(&v, t == TRISTATE_UNSET ? "POST" : write_method_names[m]);
                break;
        }
        default:
                assert_not_reached();
        }

        v.allowed = v.n_needs == 0;
        v.rule = v.allowed ? rule : v.needs[0];
        if (v.allowed)
                v.alternative = NULL;
        *ret = v;
}

static const char *on_off(bool b) {
        return b ? "1" : "0";
}

int verdict_explain(const Verdict *v, char *buf, size_t size) {
        size_t n = 0;
        int r;

        if (v->allowed)
                return snprintf(buf, size, "allowed by %s", strempty(v->rule));
        if (v->n_needs == 0)
                return snprintf(buf, size, "%s", strempty(v->reason));

        r = snprintf(buf, size, "needs");
        for (unsigned i = 0; i < v->n_needs && r >= 0; i++) {
                n += (size_t) r;
                r = snprintf(buf + MIN(n, size), size - MIN(n, size), "%s%s=1",
                             i == 0 ? " " : i + 1 == v->n_needs ? " and " : ", ", v->needs[i]);
        }
        if (v->alternative && r >= 0) {
                n += (size_t) r;
                r = snprintf(buf + MIN(n, size), size - MIN(n, size), ", or %s=1", v->alternative);
        }
        return r < 0 ? r : (int) (n + (size_t) r);
}

void policy_describe(const Policy *p, FILE *f) {
        for (size_t i = 0; i < _SECTION_MAX; i++)
                fprintf(f, "%s=%-*s %s /%s and everything under it\n", sections[i].variable,
                        (int) (22 - strlen(sections[i].variable)), on_off(p->sections[i]),
                        p->sections[i] ? "allow " : "refuse", sections[i].segment);
        fprintf(f, "%-23s %s\n", p->post ? "POST=1" : "POST=0",
                p->post ? "write methods pass on allowed sections" :
                          "read-only: only GET and HEAD pass");
        for (size_t i = 0; i < _WRITE_METHOD_MAX; i++) {
                Tristate t = p->write_methods[i];
                bool allowed = t == TRISTATE_UNSET ? p->post : t == TRISTATE_ON;
                fprintf(f, "%s%-*s %s %s on allowed sections%s\n", write_method_names[i],
                        (int) (23 - strlen(write_method_names[i])),
                        t == TRISTATE_UNSET ? "" : t == TRISTATE_ON ? "=1" : "=0",
                        allowed ? "allow " : "refuse", write_method_names[i],
                        t == TRISTATE_UNSET ? " (follows POST)" : "");
        }
        for (size_t i = 0; i < _GUARD_MAX; i++)
                fprintf(f, "%s=%-*s %s %s\n", guards[i].variable,
                        (int) (22 - strlen(guards[i].variable)), on_off(p->guards[i]),
                        p->guards[i] ? "allow " : "refuse", guards[i].description);
        for (size_t i = 0; i < _GRANT_MAX; i++)
                fprintf(f, "%s=%-*s %s %s%s\n", grants[i].variable,
                        (int) (22 - strlen(grants[i].variable)), on_off(p->grants[i]),
                        p->grants[i] ? "allow " : "leave ", grants[i].description,
                        p->grants[i] ? " even when CONTAINERS or POST is off" : " to CONTAINERS and POST");
        fprintf(f, "%-23s refuse CONNECT, TRACE and methods the Docker API does not know\n", "(always)");
        fprintf(f, "%-23s refuse paths that are not canonical (400) and everything not allowed above (403)\n", "(always)");
}
