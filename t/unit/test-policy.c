/* SPDX-License-Identifier: MIT */
/* The access policy of spec/policy.md: every section, method variable, guard and grant,
 * allowed and refused, with and without an API version prefix. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http-util.h"
#include "policy.h"
#include "tap.h"

#define ELEMS(x) (sizeof(x) / sizeof((x)[0]))

/* Every variable the spec names, in its order: the test's own list, so that a variable
 * missing from policy.c is noticed. */
static const char *const spec_variables[] = {
        "EVENTS", "PING", "VERSION", "AUTH", "BUILD", "COMMIT", "CONFIGS", "CONTAINERS",
        "DISTRIBUTION", "EXEC", "GRPC", "IMAGES", "INFO", "NETWORKS", "NODES", "PLUGINS",
        "SECRETS", "SERVICES", "SESSION", "SWARM", "SYSTEM", "TASKS", "VOLUMES",
        "POST", "DELETE", "PUT", "PATCH",
        "ALLOW_ARCHIVE", "ALLOW_EXPORT", "ALLOW_LOGS", "ALLOW_CHANGES", "ALLOW_TOP",
        "ALLOW_ATTACH", "ALLOW_EXEC", "ALLOW_KILL", "ALLOW_SWARM_UNLOCKKEY",
        "ALLOW_START", "ALLOW_STOP", "ALLOW_RESTARTS", "ALLOW_PAUSE", "ALLOW_UNPAUSE",
};

static const struct {
        const char *variable;
        const char *segment;
        bool on_by_default;
} spec_sections[] = {
        { "EVENTS", "events", true },     { "PING", "_ping", true },
        { "VERSION", "version", true },   { "AUTH", "auth", false },
        { "BUILD", "build", false },      { "COMMIT", "commit", false },
        { "CONFIGS", "configs", false },  { "CONTAINERS", "containers", false },
        { "DISTRIBUTION", "distribution", false },
        { "EXEC", "exec", false },        { "GRPC", "grpc", false },
        { "IMAGES", "images", false },    { "INFO", "info", false },
        { "NETWORKS", "networks", false }, { "NODES", "nodes", false },
        { "PLUGINS", "plugins", false },  { "SECRETS", "secrets", false },
        { "SERVICES", "services", false }, { "SESSION", "session", false },
        { "SWARM", "swarm", false },      { "SYSTEM", "system", false },
        { "TASKS", "tasks", false },      { "VOLUMES", "volumes", false },
};

/* "CONTAINERS=1 POST=1" on top of the defaults. "ALL" sets every variable to 1; later words
 * override earlier ones ("ALL ALLOW_LOGS=0"). NULL: the defaults. */
static Policy make_policy(const char *settings) {
        char *copy, *word, *save = NULL;
        Policy p;

        policy_init_default(&p);
        if (!settings)
                return p;
        copy = strdup(settings);
        if (!copy)
                bail("out of memory");
        for (word = strtok_r(copy, " ", &save); word; word = strtok_r(NULL, " ", &save)) {
                char *eq;
                int r;

                if (strcmp(word, "ALL") == 0) {
                        for (size_t i = 0; i < ELEMS(spec_variables); i++)
                                if (policy_set(&p, spec_variables[i], "1") < 0)
                                        bail("policy_set(%s, 1) failed", spec_variables[i]);
                        continue;
                }
                eq = strchr(word, '=');
                if (!eq)
                        bail("bad test setting '%s'", word);
                *eq = '\0';
                r = policy_set(&p, word, eq + 1);
                if (r < 0)
                        bail("policy_set(%s, %s) = %d", word, eq + 1, r);
        }
        free(copy);
        return p;
}

/* A verdict as one comparable string: "allow RULE", "refuse NEED NEED", "refuse NEED alt GRANT",
 * or "refuse" when no setting can allow the request. */
static const char *outcome(const Verdict *v, char *buf, size_t size) {
        size_t n;

        if (v->allowed) {
                snprintf(buf, size, "allow %s", v->rule ? v->rule : "(null)");
                return buf;
        }
        n = (size_t) snprintf(buf, size, "refuse");
        for (unsigned i = 0; i < v->n_needs && n < size; i++)
                n += (size_t) snprintf(buf + n, size - n, " %s", v->needs[i]);
        if (v->alternative && n < size)
                snprintf(buf + n, size - n, " alt %s", v->alternative);
        return buf;
}

static void decide(const char *settings, const char *method, const char *path, Verdict *v) {
        Policy p = make_policy(settings);

        policy_decide(&p, method, path, v);
}

static bool expect(const char *settings, const char *method, const char *path, const char *want) {
        char buf[256];
        Verdict v;

        decide(settings, method, path, &v);
        return is_string(want, outcome(&v, buf, sizeof buf), "%s %s with {%s}", method, path,
                         settings ? settings : "defaults");
}

static bool expect_refused(const char *settings, const char *method, const char *path) {
        char buf[256];
        Verdict v;

        decide(settings, method, path, &v);
        if (!ok(!v.allowed, "%s %s with {%s} is refused", method, path, settings ? settings : "defaults")) {
                diag("seen: %s", outcome(&v, buf, sizeof buf));
                return false;
        }
        return true;
}

static void test_sections(void) {
        char path[128], sub[128], near[128], upper[128], s[128], all_but[128], want[128], refuse_var[64];

        for (size_t i = 0; i < ELEMS(spec_sections); i++) {
                const char *var = spec_sections[i].variable, *seg = spec_sections[i].segment;
                size_t k;

                snprintf(path, sizeof path, "/%s", seg);
                snprintf(sub, sizeof sub, "/%s/abc/json", seg);
                snprintf(near, sizeof near, "/%sfoo", seg);
                for (k = 0; seg[k] && k + 2 < sizeof upper; k++)
                        upper[k + 1] = (char) (seg[k] >= 'a' && seg[k] <= 'z' ? seg[k] - 'a' + 'A' : seg[k]);
                upper[0] = '/';
                upper[k + 1] = '\0';
                snprintf(refuse_var, sizeof refuse_var, "refuse %s", var);
                snprintf(want, sizeof want, "allow %s", var);

                /* The default. */
                expect(NULL, "GET", path, spec_sections[i].on_by_default ? want : refuse_var);
                expect(NULL, "GET", sub, spec_sections[i].on_by_default ? want : refuse_var);

                /* On: reads pass, writes need POST. */
                snprintf(s, sizeof s, "%s=1", var);
                expect(s, "GET", path, want);
                expect(s, "HEAD", sub, want);
                expect(s, "POST", sub, "refuse POST");
                snprintf(s, sizeof s, "%s=1 POST=1", var);
                expect(s, "POST", sub, want);
                expect(s, "DELETE", sub, want);

                /* Off: POST=1 does not open it, and neither does every other variable. */
                snprintf(s, sizeof s, "%s=0 POST=1", var);
                expect(s, "POST", sub, refuse_var);
                snprintf(all_but, sizeof all_but, "ALL %s=0", var);
                expect(all_but, "GET", path, refuse_var);
                expect(all_but, "GET", sub, refuse_var);

                /* A longer first segment is another section; case matters. */
                expect("ALL", "GET", near, "refuse");
                expect("ALL", "GET", upper, "refuse");
        }
}

static void test_method_gate(void) {
        static const struct {
                const char *settings, *method, *want;
        } cases[] = {
                /* POST=0: read-only. */
                { "CONTAINERS=1", "GET", "allow CONTAINERS" },
                { "CONTAINERS=1", "HEAD", "allow CONTAINERS" },
                { "CONTAINERS=1", "POST", "refuse POST" },
                { "CONTAINERS=1", "PUT", "refuse POST" },
                { "CONTAINERS=1", "DELETE", "refuse POST" },
                { "CONTAINERS=1", "PATCH", "refuse POST" },
                { "CONTAINERS=1", "OPTIONS", "refuse POST" },
                /* POST=1: every write method. */
                { "CONTAINERS=1 POST=1", "POST", "allow CONTAINERS" },
                { "CONTAINERS=1 POST=1", "PUT", "allow CONTAINERS" },
                { "CONTAINERS=1 POST=1", "DELETE", "allow CONTAINERS" },
                { "CONTAINERS=1 POST=1", "PATCH", "allow CONTAINERS" },
                { "CONTAINERS=1 POST=1", "OPTIONS", "allow CONTAINERS" },
                { "CONTAINERS=1 POST=1", "GET", "allow CONTAINERS" },
                /* A set method variable decides alone. */
                { "CONTAINERS=1 POST=1 DELETE=0", "DELETE", "refuse DELETE" },
                { "CONTAINERS=1 POST=1 DELETE=0", "POST", "allow CONTAINERS" },
                { "CONTAINERS=1 POST=1 DELETE=0", "PUT", "allow CONTAINERS" },
                { "CONTAINERS=1 POST=1 DELETE=0", "PATCH", "allow CONTAINERS" },
                { "CONTAINERS=1 POST=1 PUT=0", "PUT", "refuse PUT" },
                { "CONTAINERS=1 POST=1 PUT=0", "DELETE", "allow CONTAINERS" },
                { "CONTAINERS=1 POST=1 PATCH=0", "PATCH", "refuse PATCH" },
                { "CONTAINERS=1 POST=1 PATCH=0", "PUT", "allow CONTAINERS" },
                { "CONTAINERS=1 POST=1 DELETE=0 PUT=0 PATCH=0", "POST", "allow CONTAINERS" },
                { "CONTAINERS=1 POST=1 DELETE=0 PUT=0 PATCH=0", "OPTIONS", "allow CONTAINERS" },
                { "CONTAINERS=1 DELETE=1", "DELETE", "allow CONTAINERS" },
                { "CONTAINERS=1 DELETE=1", "POST", "refuse POST" },
                { "CONTAINERS=1 DELETE=1", "PUT", "refuse POST" },
                { "CONTAINERS=1 DELETE=1", "PATCH", "refuse POST" },
                { "CONTAINERS=1 DELETE=1", "OPTIONS", "refuse POST" },
                { "CONTAINERS=1 PUT=1", "PUT", "allow CONTAINERS" },
                { "CONTAINERS=1 PUT=1", "DELETE", "refuse POST" },
                { "CONTAINERS=1 PATCH=1", "PATCH", "allow CONTAINERS" },
                { "CONTAINERS=1 PATCH=1", "POST", "refuse POST" },
                { "CONTAINERS=1 DELETE=0", "DELETE", "refuse DELETE" },
                /* DELETE= (empty) is off, as for every boolean: it is set, not unset. */
                { "CONTAINERS=1 POST=1 DELETE=", "DELETE", "refuse DELETE" },
                /* A method variable does not open a section. */
                { "DELETE=1", "DELETE", "refuse CONTAINERS" },
                { "POST=1", "POST", "refuse CONTAINERS" },
                { "POST=1 DELETE=0", "DELETE", "refuse CONTAINERS DELETE" },
        };

        for (size_t i = 0; i < ELEMS(cases); i++)
                expect(cases[i].settings, cases[i].method, "/containers/abc", cases[i].want);
}

static void test_never(void) {
        static const char *const methods[] = {
                "CONNECT", "TRACE", "get", "Get", "post", "head", "FOO", "PROPFIND", "MKCOL", "",
                "GET ", " GET", "GET\r\n",
        };
        static const char *const paths[] = { "/containers/json", "/_ping", "/version" };

        for (size_t i = 0; i < ELEMS(methods); i++)
                for (size_t j = 0; j < ELEMS(paths); j++) {
                        Verdict v;

                        expect("ALL", methods[i], paths[j], "refuse");
                        decide("ALL", methods[i], paths[j], &v);
                        if (j == 0)
                                ok(v.reason && *v.reason, "the refusal of method '%s' gives a reason", methods[i]);
                }

        expect("ALL", "GET", "/", "refuse");
        expect("ALL", "HEAD", "/", "refuse");
        expect("ALL", "GET", "", "refuse");
        expect("ALL", "GET", "containers/json", "refuse");
        expect("ALL", "GET", "/debug/pprof", "refuse");
        expect("ALL", "GET", "/_ping2", "refuse");
        expect(NULL, "HEAD", "/_ping", "allow PING");
        expect(NULL, "GET", "/events", "allow EVENTS");
        expect(NULL, "GET", "/version", "allow VERSION");
        expect(NULL, "POST", "/events", "refuse POST");
        expect(NULL, "GET", "/versionfoo", "refuse");
        expect(NULL, "GET", "/Version", "refuse");
        expect("CONTAINERS=1", "GET", "/Containers/json", "refuse");
        expect("CONTAINERS=1", "GET", "/CONTAINERS/json", "refuse");
        expect("CONTAINERS=1", "GET", "/containers/json", "allow CONTAINERS");
}

static const struct {
        const char *variable;
        const char *settings; /* what opens the section and the method */
        const char *section;
        const char *method, *path;
        const char *alternative; /* a grant that would also allow it */
} guard_cases[] = {
        { "ALLOW_ARCHIVE", "CONTAINERS=1", "CONTAINERS", "GET", "/containers/abc/archive", NULL },
        { "ALLOW_ARCHIVE", "CONTAINERS=1", "CONTAINERS", "HEAD", "/containers/abc/archive", NULL },
        { "ALLOW_ARCHIVE", "CONTAINERS=1 POST=1", "CONTAINERS", "PUT", "/containers/abc/archive", NULL },
        { "ALLOW_EXPORT", "CONTAINERS=1", "CONTAINERS", "GET", "/containers/abc/export", NULL },
        { "ALLOW_LOGS", "CONTAINERS=1", "CONTAINERS", "GET", "/containers/abc/logs", NULL },
        /* The daemon's routes take {name:.*}: the verb need not be the third segment. */
        { "ALLOW_LOGS", "CONTAINERS=1", "CONTAINERS", "GET", "/containers/a/b/logs", NULL },
        { "ALLOW_CHANGES", "CONTAINERS=1", "CONTAINERS", "GET", "/containers/abc/changes", NULL },
        { "ALLOW_TOP", "CONTAINERS=1", "CONTAINERS", "GET", "/containers/abc/top", NULL },
        { "ALLOW_ATTACH", "CONTAINERS=1 POST=1", "CONTAINERS", "POST", "/containers/abc/attach", NULL },
        { "ALLOW_ATTACH", "CONTAINERS=1", "CONTAINERS", "GET", "/containers/abc/attach/ws", NULL },
        { "ALLOW_EXEC", "CONTAINERS=1 POST=1", "CONTAINERS", "POST", "/containers/abc/exec", NULL },
        { "ALLOW_KILL", "CONTAINERS=1 POST=1", "CONTAINERS", "POST", "/containers/abc/kill", "ALLOW_RESTARTS" },
        { "ALLOW_SWARM_UNLOCKKEY", "SWARM=1", "SWARM", "GET", "/swarm/unlockkey", NULL },
        { "ALLOW_SWARM_UNLOCKKEY", "SWARM=1 POST=1", "SWARM", "POST", "/swarm/unlock", NULL },
};

static void test_guards(void) {
        char s[256], want[256], alt[64];

        for (size_t i = 0; i < ELEMS(guard_cases); i++) {
                const char *var = guard_cases[i].variable, *m = guard_cases[i].method, *p = guard_cases[i].path;
                bool post = strstr(guard_cases[i].settings, "POST=1");

                if (guard_cases[i].alternative)
                        snprintf(alt, sizeof alt, " alt %s", guard_cases[i].alternative);
                else
                        alt[0] = '\0';

                /* Closed with the section (and POST) on; the refusal names only the guard. */
                snprintf(want, sizeof want, "refuse %s%s", var, alt);
                expect(guard_cases[i].settings, m, p, want);

                /* Open with its variable. */
                snprintf(s, sizeof s, "%s %s=1", guard_cases[i].settings, var);
                snprintf(want, sizeof want, "allow %s", var);
                expect(s, m, p, want);

                /* No other variable opens it (ALLOW_RESTARTS opens kill: tested apart). */
                snprintf(s, sizeof s, "ALL %s=0 ALLOW_RESTARTS=0", var);
                snprintf(want, sizeof want, "refuse %s%s", var, alt);
                expect(s, m, p, want);

                /* The guard variable does not open the section. */
                snprintf(s, sizeof s, "%s=1%s", var, post ? " POST=1" : "");
                snprintf(want, sizeof want, "refuse %s%s", guard_cases[i].section, alt);
                expect(s, m, p, want);

                /* Everything closed: all three are named. */
                snprintf(want, sizeof want, "refuse %s %s%s%s", guard_cases[i].section, var,
                         strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0 ? "" : " POST", alt);
                expect(NULL, m, p, want);
        }

        /* ALLOW_RESTARTS opens kill, inside the section and as a grant. */
        expect("CONTAINERS=1 POST=1 ALLOW_RESTARTS=1", "POST", "/containers/abc/kill", "allow ALLOW_RESTARTS");
        expect("ALLOW_RESTARTS=1", "POST", "/containers/abc/kill", "allow ALLOW_RESTARTS");
        /* ALLOW_KILL is a guard, not a grant. */
        expect("ALLOW_KILL=1", "POST", "/containers/abc/kill", "refuse CONTAINERS POST alt ALLOW_RESTARTS");
        expect("CONTAINERS=1 ALLOW_KILL=1", "POST", "/containers/abc/kill", "refuse POST alt ALLOW_RESTARTS");

        /* A container named like a guarded operation is just a container. */
        expect("CONTAINERS=1", "GET", "/containers/logs/json", "allow CONTAINERS");
        expect("CONTAINERS=1", "GET", "/containers/exec/json", "allow CONTAINERS");
        expect("CONTAINERS=1", "GET", "/containers/archive/json", "allow CONTAINERS");
        expect("CONTAINERS=1", "GET", "/containers/json", "allow CONTAINERS");
        expect("CONTAINERS=1", "GET", "/containers/abc/json", "allow CONTAINERS");
        expect("CONTAINERS=1", "GET", "/containers/abc/stats", "allow CONTAINERS");
        expect("CONTAINERS=1 POST=1", "POST", "/containers/create", "allow CONTAINERS");
        expect("CONTAINERS=1 POST=1", "POST", "/containers/abc/wait", "allow CONTAINERS");
        expect("CONTAINERS=1 POST=1", "DELETE", "/containers/abc", "allow CONTAINERS");
        /* ...but a guarded word anywhere after the id is the guarded operation. */
        expect("CONTAINERS=1", "GET", "/containers/abc/logs/x", "refuse ALLOW_LOGS");
        expect("CONTAINERS=1", "GET", "/containers/a/b/c/d/e/f/logs", "refuse ALLOW_LOGS");
        /* Deeper than any route: refused, so that no segment goes unseen. */
        expect_refused("CONTAINERS=1", "GET", "/containers/a/b/c/d/e/f/g/logs");
        expect_refused("ALL", "GET", "/containers/a/b/c/d/e/f/g/h/i/j/logs");

        /* Exec: creating is guarded, starting an existing one is the EXEC section. */
        expect("EXEC=1 POST=1", "POST", "/exec/abc/start", "allow EXEC");
        expect("EXEC=1 POST=1", "POST", "/exec/abc/resize", "allow EXEC");
        expect("EXEC=1", "GET", "/exec/abc/json", "allow EXEC");
        expect("EXEC=1 CONTAINERS=1 POST=1", "POST", "/containers/abc/exec", "refuse ALLOW_EXEC");

        /* The container guards belong to /containers only. */
        expect("IMAGES=1", "GET", "/images/logs/json", "allow IMAGES");
        expect("SERVICES=1", "GET", "/services/abc/logs", "allow SERVICES");
        expect("TASKS=1", "GET", "/tasks/abc/logs", "allow TASKS");

        /* The swarm guard covers exactly unlockkey and unlock. */
        expect("SWARM=1", "GET", "/swarm", "allow SWARM");
        expect("SWARM=1 POST=1", "POST", "/swarm/init", "allow SWARM");
        expect("SWARM=1", "GET", "/swarm/unlockkeys", "allow SWARM");
        expect("SWARM=1", "GET", "/swarm/unlockkey/x", "refuse ALLOW_SWARM_UNLOCKKEY");
}

static const struct {
        const char *variable;
        const char *verbs[3];
} grant_cases[] = {
        { "ALLOW_START", { "start" } },
        { "ALLOW_STOP", { "stop" } },
        { "ALLOW_RESTARTS", { "stop", "restart", "kill" } },
        { "ALLOW_PAUSE", { "pause" } },
        { "ALLOW_UNPAUSE", { "unpause" } },
};

static const char *const grant_verbs[] = { "start", "stop", "restart", "kill", "pause", "unpause" };

static bool grant_has_verb(size_t g, const char *verb) {
        for (size_t k = 0; k < ELEMS(grant_cases[g].verbs) && grant_cases[g].verbs[k]; k++)
                if (strcmp(grant_cases[g].verbs[k], verb) == 0)
                        return true;
        return false;
}

static void test_grants(void) {
        char s[256], p[256], want[256];

        /* Each grant alone allows POST on its verbs, and on nothing else. */
        for (size_t g = 0; g < ELEMS(grant_cases); g++)
                for (size_t k = 0; k < ELEMS(grant_verbs); k++) {
                        snprintf(s, sizeof s, "%s=1", grant_cases[g].variable);
                        snprintf(p, sizeof p, "/containers/abc/%s", grant_verbs[k]);
                        if (grant_has_verb(g, grant_verbs[k])) {
                                snprintf(want, sizeof want, "allow %s", grant_cases[g].variable);
                                expect(s, "POST", p, want);
                        } else
                                expect_refused(s, "POST", p);
                }

        for (size_t g = 0; g < ELEMS(grant_cases); g++)
                for (size_t k = 0; k < ELEMS(grant_cases[g].verbs) && grant_cases[g].verbs[k]; k++) {
                        const char *verb = grant_cases[g].verbs[k];

                        snprintf(s, sizeof s, "%s=1", grant_cases[g].variable);

                        /* Also with POST=0 written out, and with the section explicitly off. */
                        snprintf(p, sizeof p, "/containers/abc/%s", verb);
                        snprintf(want, sizeof want, "allow %s", grant_cases[g].variable);
                        {
                                char s2[256];
                                snprintf(s2, sizeof s2, "%s=1 POST=0 CONTAINERS=0", grant_cases[g].variable);
                                expect(s2, "POST", p, want);
                        }

                        /* Only POST. */
                        expect(s, "GET", p, "refuse CONTAINERS");
                        expect(s, "HEAD", p, "refuse CONTAINERS");
                        expect_refused(s, "DELETE", p);
                        expect_refused(s, "PUT", p);
                        expect_refused(s, "OPTIONS", p);
                        expect_refused(s, "PATCH", p);

                        /* Only exactly /containers/{id}/<verb>. */
                        snprintf(p, sizeof p, "/containers/abc/%s/extra", verb);
                        expect_refused(s, "POST", p);
                        snprintf(p, sizeof p, "/containers/%s", verb);
                        expect_refused(s, "POST", p);
                        snprintf(p, sizeof p, "/containers/a/b/%s", verb);
                        expect_refused(s, "POST", p);
                        snprintf(p, sizeof p, "/Containers/abc/%s", verb);
                        expect_refused(s, "POST", p);
                        snprintf(p, sizeof p, "/images/abc/%s", verb);
                        expect_refused(s, "POST", p);
                        snprintf(p, sizeof p, "/containers/abc/%sx", verb);
                        expect_refused(s, "POST", p);
                }

        /* A refusal points at the grant that would allow it. */
        expect(NULL, "POST", "/containers/abc/start", "refuse CONTAINERS POST alt ALLOW_START");
        expect(NULL, "POST", "/containers/abc/stop", "refuse CONTAINERS POST alt ALLOW_STOP");
        expect(NULL, "POST", "/containers/abc/restart", "refuse CONTAINERS POST alt ALLOW_RESTARTS");
        expect(NULL, "POST", "/containers/abc/kill", "refuse CONTAINERS ALLOW_KILL POST alt ALLOW_RESTARTS");
        expect(NULL, "POST", "/containers/abc/pause", "refuse CONTAINERS POST alt ALLOW_PAUSE");
        expect(NULL, "POST", "/containers/abc/unpause", "refuse CONTAINERS POST alt ALLOW_UNPAUSE");
        expect("CONTAINERS=1", "POST", "/containers/abc/start", "refuse POST alt ALLOW_START");
        /* ...but not where the grant could not help. */
        expect(NULL, "GET", "/containers/abc/start", "refuse CONTAINERS");
        expect(NULL, "POST", "/containers/abc/start/x", "refuse CONTAINERS POST");

        /* Without the grant the section and POST still allow it. */
        expect("CONTAINERS=1 POST=1", "POST", "/containers/abc/start", "allow CONTAINERS");
        expect("CONTAINERS=1 POST=1", "POST", "/containers/abc/restart", "allow CONTAINERS");
        expect("CONTAINERS=1 POST=1 ALLOW_START=1", "POST", "/containers/abc/start", "allow ALLOW_START");

        /* A grant opens nothing else. */
        expect("ALLOW_START=1 ALLOW_STOP=1 ALLOW_RESTARTS=1 ALLOW_PAUSE=1 ALLOW_UNPAUSE=1", "GET",
               "/containers/json", "refuse CONTAINERS");
        expect("ALLOW_START=1 ALLOW_STOP=1 ALLOW_RESTARTS=1 ALLOW_PAUSE=1 ALLOW_UNPAUSE=1", "POST",
               "/containers/create", "refuse CONTAINERS POST");
        expect("ALLOW_START=1 ALLOW_STOP=1 ALLOW_RESTARTS=1 ALLOW_PAUSE=1 ALLOW_UNPAUSE=1", "POST",
               "/containers/abc/exec", "refuse CONTAINERS ALLOW_EXEC POST");
        expect("ALLOW_START=1 ALLOW_STOP=1 ALLOW_RESTARTS=1 ALLOW_PAUSE=1 ALLOW_UNPAUSE=1", "DELETE",
               "/containers/abc", "refuse CONTAINERS POST");
}

/* Decision on a raw request-target, as the front end makes it. */
static const char *outcome_raw(const char *settings, const char *method, const char *raw, char *api_version,
                               char *buf, size_t size) {
        HttpTarget t;
        Verdict v;
        int r;

        r = http_target_parse(raw, &t);
        if (r != 0) {
                snprintf(buf, size, "bad target %d", r);
                return buf;
        }
        if (api_version)
                snprintf(api_version, HTTP_API_VERSION_MAX + 1, "%s", t.api_version);
        decide(settings, method, t.path, &v);
        http_target_done(&t);
        return outcome(&v, buf, size);
}

static void test_version_prefix(void) {
        static const struct {
                const char *settings, *method, *path, *want;
        } cases[] = {
                { NULL, "GET", "/_ping", "allow PING" },
                { NULL, "GET", "/version", "allow VERSION" },
                { NULL, "GET", "/events?since=1", "allow EVENTS" },
                { NULL, "GET", "/containers/json", "refuse CONTAINERS" },
                { "CONTAINERS=1", "GET", "/containers/json?all=1", "allow CONTAINERS" },
                { "CONTAINERS=1", "POST", "/containers/create?name=x", "refuse POST" },
                { "CONTAINERS=1 POST=1", "POST", "/containers/create", "allow CONTAINERS" },
                { "CONTAINERS=1 POST=1 DELETE=0", "DELETE", "/containers/abc?force=1", "refuse DELETE" },
                { "CONTAINERS=1", "GET", "/containers/abc/logs?follow=1", "refuse ALLOW_LOGS" },
                { "CONTAINERS=1 ALLOW_LOGS=1", "GET", "/containers/abc/logs", "allow ALLOW_LOGS" },
                { "CONTAINERS=1", "GET", "/containers/abc/archive?path=/etc", "refuse ALLOW_ARCHIVE" },
                { "CONTAINERS=1 POST=1", "POST", "/containers/abc/exec", "refuse ALLOW_EXEC" },
                { "CONTAINERS=1 POST=1", "POST", "/containers/abc/attach?stream=1", "refuse ALLOW_ATTACH" },
                { "SWARM=1", "GET", "/swarm/unlockkey", "refuse ALLOW_SWARM_UNLOCKKEY" },
                { "ALLOW_START=1", "POST", "/containers/abc/start", "allow ALLOW_START" },
                { "ALLOW_RESTARTS=1", "POST", "/containers/abc/kill?signal=KILL", "allow ALLOW_RESTARTS" },
                { "ALLOW_START=1", "GET", "/containers/abc/start", "refuse CONTAINERS" },
                { "IMAGES=1", "GET", "/images/reg:5000/a/b:tag/json", "allow IMAGES" },
                { "ALL", "GET", "/versionfoo", "refuse" },
                { "ALL", "GET", "/Containers/json", "refuse" },
        };
        static const struct {
                const char *prefix, *version;
        } prefixes[] = {
                { "", "" }, { "/v1.41", "1.41" }, { "/v1", "1" }, { "/v1.41.0", "1.41.0" }, { "/v1.24", "1.24" },
        };
        char raw[512], buf[256], version[HTTP_API_VERSION_MAX + 1];

        for (size_t i = 0; i < ELEMS(cases); i++)
                for (size_t j = 0; j < ELEMS(prefixes); j++) {
                        snprintf(raw, sizeof raw, "%s%s", prefixes[j].prefix, cases[i].path);
                        version[0] = 'X';
                        version[1] = '\0';
                        is_string(cases[i].want,
                                  outcome_raw(cases[i].settings, cases[i].method, raw, version, buf, sizeof buf),
                                  "%s %s with {%s}", cases[i].method, raw,
                                  cases[i].settings ? cases[i].settings : "defaults");
                        if (i == 0)
                                is_string(prefixes[j].version, version, "%s: api_version", raw);
                }

        /* Not version prefixes: the first segment is then an unknown section. */
        static const char *const not_prefixes[] = {
                "/v/containers/json",       "/V1.41/containers/json",   "/v1..41/containers/json",
                "/v1./containers/json",     "/v.1/containers/json",     "/v1.41abc/containers/json",
                "/vx/containers/json",      "/version1.41/containers/json", "/v1.41/v1.41/containers/json",
                "/1.41/containers/json",    "/v-1/containers/json",
        };
        for (size_t i = 0; i < ELEMS(not_prefixes); i++) {
                version[0] = 'X';
                version[1] = '\0';
                is_string("refuse", outcome_raw("ALL", "GET", not_prefixes[i], version, buf, sizeof buf),
                          "GET %s with every variable on", not_prefixes[i]);
        }

        /* An escaped prefix is decoded first, as the daemon's router does: it hides no guard. */
        is_string("refuse ALLOW_LOGS",
                  outcome_raw("CONTAINERS=1", "GET", "/%761.41/containers/abc/%6cogs", version, buf, sizeof buf),
                  "GET /%%761.41/containers/abc/%%6cogs");
        is_string("1.41", version, "/%%761.41: api_version");

        /* The prefix alone leaves "/", which nothing allows. */
        is_string("refuse", outcome_raw("ALL", "GET", "/v1.41", NULL, buf, sizeof buf), "GET /v1.41");
        is_string("refuse", outcome_raw("ALL", "GET", "/v1.41?x=1", NULL, buf, sizeof buf), "GET /v1.41?x=1");
}

static void test_explain(void) {
        char buf[256];
        Verdict v;
        int r;

        decide(NULL, "POST", "/containers/create", &v);
        r = verdict_explain(&v, buf, sizeof buf);
        is_string("needs CONTAINERS=1 and POST=1", buf, "explain: two variables");
        is_int((long) strlen(buf), r, "explain returns the length");

        decide(NULL, "GET", "/containers/json", &v);
        verdict_explain(&v, buf, sizeof buf);
        is_string("needs CONTAINERS=1", buf, "explain: one variable");

        decide(NULL, "POST", "/containers/abc/logs", &v);
        verdict_explain(&v, buf, sizeof buf);
        is_string("needs CONTAINERS=1, ALLOW_LOGS=1 and POST=1", buf, "explain: three variables");

        decide(NULL, "POST", "/containers/abc/start", &v);
        verdict_explain(&v, buf, sizeof buf);
        is_string("needs CONTAINERS=1 and POST=1, or ALLOW_START=1", buf, "explain: with a grant");

        decide("CONTAINERS=1 POST=1 DELETE=0", "DELETE", "/containers/abc", &v);
        verdict_explain(&v, buf, sizeof buf);
        is_string("needs DELETE=1", buf, "explain: a method variable");

        decide("CONTAINERS=1", "GET", "/containers/json", &v);
        verdict_explain(&v, buf, sizeof buf);
        is_string("allowed by CONTAINERS", buf, "explain: allowed");

        decide("ALL", "CONNECT", "/containers/json", &v);
        verdict_explain(&v, buf, sizeof buf);
        ok(v.reason && strcmp(buf, v.reason) == 0 && *buf, "explain: CONNECT gives the reason ('%s')", buf);

        decide("ALL", "GET", "/nothing", &v);
        verdict_explain(&v, buf, sizeof buf);
        ok(v.reason && strcmp(buf, v.reason) == 0 && *buf, "explain: unknown path gives the reason ('%s')", buf);

        /* Truncation: snprintf() semantics. */
        {
                char small[8];
                decide(NULL, "POST", "/containers/abc/start", &v);
                r = verdict_explain(&v, small, sizeof small);
                is_int((long) strlen("needs CONTAINERS=1 and POST=1, or ALLOW_START=1"), r,
                       "explain into a small buffer returns the full length");
                is_string("needs C", small, "explain into a small buffer truncates and terminates");
        }
}

static void test_boolean(void) {
        static const char *const on[] = { "1", "true", "yes", "on", "TRUE", "True", "YES", "Yes", "ON", "oN" };
        static const char *const off[] = { "0", "false", "no", "off", "", "FALSE", "False", "NO", "OFF", "Off" };
        static const char *const bad[] = {
                "2", "-1", "01", "10", "maybe", "y", "n", "t", "f", "enable", "enabled", "disable",
                "1 ", " 1", "tru", "truee", "yess", "o", "onn", "of", "null", "none", "\"1\"",
        };

        for (size_t i = 0; i < ELEMS(on); i++)
                is_int(1, parse_boolean(on[i]), "'%s' is on", on[i]);
        for (size_t i = 0; i < ELEMS(off); i++)
                is_int(0, parse_boolean(off[i]), "'%s' is off", off[i]);
        for (size_t i = 0; i < ELEMS(bad); i++)
                is_int(-EINVAL, parse_boolean(bad[i]), "'%s' is not a boolean", bad[i]);

        /* HAProxy read "true" as off; we read it as the user meant. */
        expect("CONTAINERS=true", "GET", "/containers/json", "allow CONTAINERS");
        expect("CONTAINERS=yes POST=on", "POST", "/containers/create", "allow CONTAINERS");
        expect("CONTAINERS=TRUE", "GET", "/containers/json", "allow CONTAINERS");
        expect("CONTAINERS=false", "GET", "/containers/json", "refuse CONTAINERS");
        expect("CONTAINERS=1 CONTAINERS=0", "GET", "/containers/json", "refuse CONTAINERS");
        expect("EVENTS=no", "GET", "/events", "refuse EVENTS");
        expect("PING=off", "GET", "/_ping", "refuse PING");
        expect("VERSION=", "GET", "/version", "refuse VERSION");
}

static void test_policy_set(void) {
        Policy p, before;

        for (size_t i = 0; i < ELEMS(spec_variables); i++) {
                policy_init_default(&p);
                is_int(0, policy_set(&p, spec_variables[i], "1"), "%s=1 is accepted", spec_variables[i]);
                ok(policy_is_variable(spec_variables[i]), "%s is a policy variable", spec_variables[i]);
        }

        /* The list used for suggestions and documentation is the spec's list. */
        {
                size_t n = 0;
                bool all_known = true;

                for (; policy_variable_names[n]; n++) {
                        bool found = false;
                        for (size_t i = 0; i < ELEMS(spec_variables); i++)
                                found = found || strcmp(policy_variable_names[n], spec_variables[i]) == 0;
                        if (!found) {
                                diag("not in the spec: %s", policy_variable_names[n]);
                                all_known = false;
                        }
                }
                is_int((long) ELEMS(spec_variables), (long) n, "policy_variable_names has every spec variable");
                ok(all_known, "policy_variable_names has no variable the spec lacks");
        }

        static const char *const unknown[] = {
                "CONTAINER", "containers", "Containers", "ALLOW_LOG", "", "PATH", "SOCKET_PATH", "LOG_LEVEL",
                "GET", "HEAD", "OPTIONS", "ALLOW_DELETE", " POST", "POST ",
        };
        for (size_t i = 0; i < ELEMS(unknown); i++) {
                policy_init_default(&p);
                is_int(-ENOENT, policy_set(&p, unknown[i], "1"), "'%s' is not a policy variable", unknown[i]);
                ok(!policy_is_variable(unknown[i]), "policy_is_variable('%s') is false", unknown[i]);
        }

        /* A bad value is refused and changes nothing. */
        policy_init_default(&p);
        policy_set(&p, "CONTAINERS", "1");
        policy_set(&p, "DELETE", "0");
        before = p;
        is_int(-EINVAL, policy_set(&p, "CONTAINERS", "maybe"), "CONTAINERS=maybe is refused");
        is_int(-EINVAL, policy_set(&p, "DELETE", "2"), "DELETE=2 is refused");
        is_int(-EINVAL, policy_set(&p, "POST", "enable"), "POST=enable is refused");
        ok(memcmp(&p, &before, sizeof p) == 0, "a refused value leaves the policy as it was");
}

static char *describe(const char *settings) {
        Policy p = make_policy(settings);
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);

        if (!f)
                bail("open_memstream failed");
        policy_describe(&p, f);
        fclose(f);
        return text;
}

/* The line that starts with prefix, or NULL. */
static const char *find_line(const char *text, const char *prefix) {
        size_t n = strlen(prefix);

        for (const char *l = text; l && *l; ) {
                if (strncmp(l, prefix, n) == 0)
                        return l;
                l = strchr(l, '\n');
                if (l)
                        l++;
        }
        return NULL;
}

static bool line_has(const char *line, const char *word) {
        const char *end = line ? strchrnul(line, '\n') : NULL;
        const char *w = line ? strstr(line, word) : NULL;

        return w && w < end;
}

static void test_describe(void) {
        char *text = describe(NULL);
        char prefix[64];

        for (size_t i = 0; i < ELEMS(spec_variables); i++) {
                const char *l;

                snprintf(prefix, sizeof prefix, "%s=", spec_variables[i]);
                l = find_line(text, prefix);
                if (!l) {
                        snprintf(prefix, sizeof prefix, "%s ", spec_variables[i]);
                        l = find_line(text, prefix);
                }
                ok(l != NULL, "describe has a line for %s", spec_variables[i]);
        }
        ok(line_has(find_line(text, "EVENTS=1"), "allow"), "describe: EVENTS=1 allow by default");
        ok(line_has(find_line(text, "CONTAINERS=0"), "refuse"), "describe: CONTAINERS=0 refuse by default");
        ok(line_has(find_line(text, "CONTAINERS=0"), "/containers"), "describe: the CONTAINERS line names /containers");
        ok(line_has(find_line(text, "POST=0"), "GET and HEAD"), "describe: POST=0 is read-only");
        ok(line_has(find_line(text, "DELETE "), "follows POST"), "describe: DELETE unset follows POST");
        ok(line_has(find_line(text, "ALLOW_LOGS=0"), "refuse"), "describe: ALLOW_LOGS=0 refuse");
        free(text);

        text = describe("CONTAINERS=1 POST=1 DELETE=0 ALLOW_LOGS=1 ALLOW_START=1");
        ok(line_has(find_line(text, "CONTAINERS=1"), "allow"), "describe: CONTAINERS=1 allow");
        ok(find_line(text, "POST=1") != NULL, "describe: POST=1");
        ok(line_has(find_line(text, "DELETE=0"), "refuse"), "describe: DELETE=0 refuse");
        ok(line_has(find_line(text, "PUT "), "allow"), "describe: PUT follows POST=1");
        ok(line_has(find_line(text, "ALLOW_LOGS=1"), "allow"), "describe: ALLOW_LOGS=1 allow");
        ok(line_has(find_line(text, "ALLOW_START=1"), "even when"), "describe: ALLOW_START=1 works without CONTAINERS");
        free(text);
}

int main(void) {
        plan_lazy();

        test_sections();
        test_method_gate();
        test_never();
        test_guards();
        test_grants();
        test_version_prefix();
        test_explain();
        test_boolean();
        test_policy_set();
        test_describe();
        return 0;
}
