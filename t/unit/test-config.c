/* SPDX-License-Identifier: MIT */
/* config: the environment and the EnvironmentFile turned into a Config, with the errors and
 * warnings a user reads. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "config-build.h"
#include "config.h"
#include "policy.h"
#include "tap.h"

#define ELEMS(x) (sizeof(x) / sizeof((x)[0]))

static bool contains(const char *s, const char *word) {
        return s && strstr(s, word);
}

static bool allowed(const Config *c, const char *method, const char *path) {
        Verdict v;

        policy_decide(&c->policy, method, path, &v);
        return v.allowed;
}

static void test_defaults(void) {
        Config c;

        is_int(0, config_init(&c), "config_init()");
        is_string(DEFAULT_SOCKET_PATH, c.socket_path, "default socket path");
        is_int(LOG_INFO, c.log_level, "default LOG_LEVEL is info");
        ok(c.timeout_usec == 30 * USEC_PER_SEC, "default SOCKET_PROXY_TIMEOUT is 30s");
        ok(c.keepalive_usec == 10 * USEC_PER_SEC, "default SOCKET_PROXY_KEEPALIVE is 10s");
        ok(!c.disable_ipv6, "default DISABLE_IPV6 is off");
        ok(allowed(&c, "GET", "/events") && allowed(&c, "GET", "/_ping") && allowed(&c, "GET", "/version"),
           "default policy: EVENTS, PING and VERSION on");
        ok(!allowed(&c, "GET", "/containers/json") && !allowed(&c, "POST", "/events"),
           "default policy: CONTAINERS and POST off");
        config_done(&c);
        ok(c.socket_path == NULL, "config_done() frees the socket path");
}

static void test_set(void) {
        Config c;
        char *error = NULL;
        int r;

        config_init(&c);

        /* The Docker socket. */
        is_int(0, config_set(&c, "SOCKET_PATH", "/x.sock", &error), "SOCKET_PATH=/x.sock");
        is_string("/x.sock", c.socket_path, "SOCKET_PATH sets the socket");
        is_int(0, config_set(&c, "SOCKET_PROXY_DOCKER_SOCKET", "/y.sock", &error), "SOCKET_PROXY_DOCKER_SOCKET=/y.sock");
        is_string("/y.sock", c.socket_path, "the alias SOCKET_PROXY_DOCKER_SOCKET sets the socket");
        is_int(0, config_set(&c, "SOCKET_PATH", "unix:///var/run/docker.sock", &error), "SOCKET_PATH=unix:///...");
        is_string("/var/run/docker.sock", c.socket_path, "the unix:// form is the path");
        is_int(0, config_set(&c, "SOCKET_PROXY_DOCKER_SOCKET", "unix:///z.sock", &error), "alias with unix://");
        is_string("/z.sock", c.socket_path, "the alias takes the unix:// form too");

        static const char *const bad_paths[] = { "docker.sock", "unix://docker.sock", "", "tcp://127.0.0.1:2375",
                                                 "unix://" };
        for (size_t i = 0; i < ELEMS(bad_paths); i++) {
                error = NULL;
                r = config_set(&c, "SOCKET_PATH", bad_paths[i], &error);
                is_int(-EINVAL, r, "SOCKET_PATH='%s' is refused", bad_paths[i]);
                ok(contains(error, "SOCKET_PATH") && contains(error, "absolute"),
                   "SOCKET_PATH='%s': the error names the variable ('%s')", bad_paths[i], error ? error : "(null)");
                free(error);
        }
        is_string("/z.sock", c.socket_path, "a refused SOCKET_PATH leaves the socket as it was");
        {
                char longpath[200];
                memset(longpath, 'a', sizeof longpath);
                longpath[0] = '/';
                longpath[107] = '\0';
                is_int(0, config_set(&c, "SOCKET_PATH", longpath, &error), "a 107-byte socket path fits");
                longpath[107] = 'a';
                longpath[108] = '\0';
                error = NULL;
                is_int(-EINVAL, config_set(&c, "SOCKET_PATH", longpath, &error),
                       "a 108-byte socket path does not fit sun_path");
                free(error);
        }

        /* Log levels. */
        static const struct {
                const char *value;
                int level;
        } levels[] = {
                { "debug", LOG_DEBUG }, { "info", LOG_INFO },   { "notice", LOG_NOTICE }, { "warning", LOG_WARNING },
                { "err", LOG_ERR },     { "crit", LOG_CRIT },   { "alert", LOG_ALERT },   { "emerg", LOG_EMERG },
                { "DEBUG", LOG_DEBUG }, { "Info", LOG_INFO },   { "warn", LOG_WARNING },  { "error", LOG_ERR },
                { "7", LOG_DEBUG },     { "0", LOG_EMERG },
        };
        for (size_t i = 0; i < ELEMS(levels); i++) {
                c.log_level = -1;
                r = config_set(&c, "LOG_LEVEL", levels[i].value, &error);
                ok(r == 0 && c.log_level == levels[i].level, "LOG_LEVEL=%s is level %d", levels[i].value,
                   levels[i].level);
                is_int(levels[i].level, parse_log_level(levels[i].value), "parse_log_level('%s')", levels[i].value);
        }
        static const char *const bad_levels[] = { "verbose", "8", "", "info ", "trace", "-1", "10", "inf" };
        for (size_t i = 0; i < ELEMS(bad_levels); i++) {
                error = NULL;
                is_int(-EINVAL, config_set(&c, "LOG_LEVEL", bad_levels[i], &error), "LOG_LEVEL='%s' is refused",
                       bad_levels[i]);
                ok(contains(error, "LOG_LEVEL") && contains(error, "debug"),
                   "LOG_LEVEL='%s': the error names the variable and the levels", bad_levels[i]);
                free(error);
        }
        is_string("debug", log_level_to_string(LOG_DEBUG), "log_level_to_string(LOG_DEBUG)");
        is_string("warning", log_level_to_string(LOG_WARNING), "log_level_to_string(LOG_WARNING)");

        /* Durations. */
        is_int(0, config_set(&c, "SOCKET_PROXY_TIMEOUT", "500ms", &error), "SOCKET_PROXY_TIMEOUT=500ms");
        ok(c.timeout_usec == 500 * USEC_PER_MSEC, "SOCKET_PROXY_TIMEOUT=500ms is 500 ms");
        config_set(&c, "SOCKET_PROXY_TIMEOUT", "1min", &error);
        ok(c.timeout_usec == 60 * USEC_PER_SEC, "SOCKET_PROXY_TIMEOUT=1min is 60 s");
        config_set(&c, "SOCKET_PROXY_TIMEOUT", "45", &error);
        ok(c.timeout_usec == 45 * USEC_PER_SEC, "SOCKET_PROXY_TIMEOUT=45 is 45 s");
        is_int(0, config_set(&c, "SOCKET_PROXY_KEEPALIVE", "2s", &error), "SOCKET_PROXY_KEEPALIVE=2s");
        ok(c.keepalive_usec == 2 * USEC_PER_SEC, "SOCKET_PROXY_KEEPALIVE=2s is 2 s");
        error = NULL;
        r = config_set(&c, "SOCKET_PROXY_TIMEOUT", "soon", &error);
        is_int(-EINVAL, r, "SOCKET_PROXY_TIMEOUT=soon is refused");
        ok(contains(error, "SOCKET_PROXY_TIMEOUT") && contains(error, "soon"), "the error names the variable and value");
        free(error);
        ok(c.timeout_usec == 45 * USEC_PER_SEC, "a refused SOCKET_PROXY_TIMEOUT leaves the timeout as it was");
        error = NULL;
        is_int(-EINVAL, config_set(&c, "SOCKET_PROXY_TIMEOUT", "0", &error), "SOCKET_PROXY_TIMEOUT=0 is refused");
        free(error);
        error = NULL;
        is_int(-EINVAL, config_set(&c, "SOCKET_PROXY_KEEPALIVE", "0s", &error), "SOCKET_PROXY_KEEPALIVE=0s is refused");
        free(error);
        is_int(0, config_set(&c, "SOCKET_PROXY_DRAIN_TIMEOUT", "0", &error), "SOCKET_PROXY_DRAIN_TIMEOUT=0 is allowed");
        ok(c.drain_usec == 0, "SOCKET_PROXY_DRAIN_TIMEOUT=0 is 0");

        /* Connections. */
        is_int(0, config_set(&c, "SOCKET_PROXY_MAX_CONNECTIONS", "64", &error), "SOCKET_PROXY_MAX_CONNECTIONS=64");
        is_int(64, c.max_connections, "SOCKET_PROXY_MAX_CONNECTIONS=64 is 64");
        static const char *const bad_counts[] = { "0", "65537", "-1", "abc", " 5", "5 ", "1e3", "" };
        for (size_t i = 0; i < ELEMS(bad_counts); i++) {
                error = NULL;
                is_int(-EINVAL, config_set(&c, "SOCKET_PROXY_MAX_CONNECTIONS", bad_counts[i], &error),
                       "SOCKET_PROXY_MAX_CONNECTIONS='%s' is refused", bad_counts[i]);
                free(error);
        }
        is_int(64, c.max_connections, "a refused SOCKET_PROXY_MAX_CONNECTIONS leaves the limit as it was");

        /* DISABLE_IPV6 and TZ. */
        is_int(0, config_set(&c, "DISABLE_IPV6", "true", &error), "DISABLE_IPV6=true");
        ok(c.disable_ipv6, "DISABLE_IPV6=true is on");
        config_set(&c, "DISABLE_IPV6", "0", &error);
        ok(!c.disable_ipv6, "DISABLE_IPV6=0 is off");
        error = NULL;
        r = config_set(&c, "DISABLE_IPV6", "maybe", &error);
        ok(r == -EINVAL && contains(error, "DISABLE_IPV6") && contains(error, "maybe"), "DISABLE_IPV6=maybe is refused by name");
        free(error);
        is_int(0, config_set(&c, "TZ", "Europe/Berlin", &error), "TZ is accepted");

        /* Policy variables. */
        is_int(0, config_set(&c, "CONTAINERS", "yes", &error), "CONTAINERS=yes");
        ok(allowed(&c, "GET", "/containers/json"), "CONTAINERS=yes opens /containers");
        error = NULL;
        r = config_set(&c, "POST", "maybe", &error);
        is_int(-EINVAL, r, "POST=maybe is refused");
        ok(contains(error, "POST") && contains(error, "maybe"), "POST=maybe: the error names the variable and the value ('%s')",
           error ? error : "(null)");
        free(error);
        ok(!allowed(&c, "POST", "/containers/create"), "POST=maybe leaves POST off");

        /* Unknown names. */
        static const char *const unknown[] = { "FOO", "containers", "CONTAINER", "PATH", "", "socket_path" };
        for (size_t i = 0; i < ELEMS(unknown); i++) {
                error = NULL;
                is_int(-ENOENT, config_set(&c, unknown[i], "1", &error), "'%s' is not a variable", unknown[i]);
                free(error);
        }

        config_done(&c);
}

static void test_duration(void) {
        static const struct {
                const char *s;
                usec_t usec;
        } good[] = {
                { "30s", 30 * USEC_PER_SEC },    { "500ms", 500 * USEC_PER_MSEC },
                { "1min", 60 * USEC_PER_SEC },   { "2m", 120 * USEC_PER_SEC },
                { "10", 10 * USEC_PER_SEC },     { "0", 0 },
                { "5sec", 5 * USEC_PER_SEC },    { "1h", 3600 * USEC_PER_SEC },
                { "250us", 250 },                { "007s", 7 * USEC_PER_SEC },
        };
        static const char *const bad[] = {
                "", "s", "ms", "abc", "10x", "-1", "-1s", " 10", "10 ", "10 s", "1.5s", "1e3", "10ss", "0x10", "s10",
                "10mins",
        };
        usec_t u;

        for (size_t i = 0; i < ELEMS(good); i++) {
                u = 12345;
                is_int(0, parse_duration(good[i].s, &u), "parse_duration('%s')", good[i].s);
                ok(u == good[i].usec, "parse_duration('%s') is %llu us (got %llu)", good[i].s, good[i].usec, u);
        }
        for (size_t i = 0; i < ELEMS(bad); i++) {
                u = 12345;
                is_int(-EINVAL, parse_duration(bad[i], &u), "parse_duration('%s') is refused", bad[i]);
                ok(u == 12345, "parse_duration('%s') leaves the result alone", bad[i]);
        }
        is_int(-ERANGE, parse_duration("99999999999999999999", &u), "parse_duration: a huge number is -ERANGE");
        /* 5124095577 h is more microseconds than 64 bits hold (it would wrap to 58 minutes):
         * an error, not a wrapped value. */
        u = 12345;
        is_int(-ERANGE, parse_duration("5124095577h", &u), "parse_duration('5124095577h') is -ERANGE");
        ok(u == 12345, "parse_duration('5124095577h') leaves the result alone (got %llu)", u);
}

static void test_suggest(void) {
        static const struct {
                const char *name, *want;
        } cases[] = {
                { "CONTAINER", "CONTAINERS" },   { "ALLOW_LOG", "ALLOW_LOGS" },
                { "containers", "CONTAINERS" },  { "Containers", "CONTAINERS" },
                { "allow_logs", "ALLOW_LOGS" },  { "IMAGE", "IMAGES" },
                { "NETWORK", "NETWORKS" },       { "VOLUME", "VOLUMES" },
                { "SECRET", "SECRETS" },         { "ALLOW_RESTART", "ALLOW_RESTARTS" },
                { "ALLOW_STARTS", "ALLOW_START" }, { "POSTS", "POST" },
                { "SOCKETPATH", "SOCKET_PATH" }, { "LOGLEVEL", "LOG_LEVEL" },
                { "log_level", "LOG_LEVEL" },    { "EVENT", "EVENTS" },
                { "FOOBAR", NULL },              { "DOCKER_HOST", NULL },
                { "HOME", NULL },                { "X", NULL },
                { "", NULL },                    { "COMPLETELY_DIFFERENT_NAME", NULL },
        };

        for (size_t i = 0; i < ELEMS(cases); i++)
                is_string(cases[i].want, config_suggest(cases[i].name), "config_suggest('%s')", cases[i].name);
}

static void test_environment(void) {
        char *const env[] = {
                "PATH=/usr/local/bin:/usr/bin", "HOME=/root", "LANG=C.UTF-8", "NOEQUALS", "CONTAINERS=1",
                "POST=true", "SOCKET_PATH=unix:///tmp/d.sock", "LOG_LEVEL=debug", "SOCKET_PROXY_TIMEOUT=500ms",
                "containers=0", "CONTAINER=0", "INVOCATION_ID=0123456789abcdef", "ALLOW_LOGS=on", NULL,
        };
        char *const bad[] = { "PATH=/usr/bin", "POST=maybe", NULL };
        char *const bad_level[] = { "LOG_LEVEL=chatty", NULL };
        char *error = NULL;
        Config c;
        int r;

        config_init(&c);
        r = config_load_environment(&c, env, &error);
        is_int(0, r, "environment with PATH, HOME and other unknown variables loads");
        ok(error == NULL, "environment: no error");
        ok(allowed(&c, "GET", "/containers/json"), "environment: CONTAINERS=1 (and not containers=0 or CONTAINER=0)");
        ok(allowed(&c, "POST", "/containers/create"), "environment: POST=true");
        ok(allowed(&c, "GET", "/containers/abc/logs"), "environment: ALLOW_LOGS=on");
        is_string("/tmp/d.sock", c.socket_path, "environment: SOCKET_PATH");
        is_int(LOG_DEBUG, c.log_level, "environment: LOG_LEVEL");
        ok(c.timeout_usec == 500 * USEC_PER_MSEC, "environment: SOCKET_PROXY_TIMEOUT=500ms");
        config_done(&c);

        config_init(&c);
        r = config_load_environment(&c, bad, &error);
        is_int(-EINVAL, r, "environment with POST=maybe fails");
        ok(contains(error, "POST") && contains(error, "maybe") && contains(error, "environment"),
           "environment POST=maybe: the error says where, which and what ('%s')", error ? error : "(null)");
        free(error);
        error = NULL;
        r = config_load_environment(&c, bad_level, &error);
        ok(r == -EINVAL && contains(error, "LOG_LEVEL") && contains(error, "chatty"), "environment LOG_LEVEL=chatty fails by name");
        free(error);
        error = NULL;
        is_int(0, config_load_environment(&c, NULL, &error), "an empty environment");
        config_done(&c);
}

/* A policy file in a temporary directory. */
static char *write_file(const char *text, size_t size) {
        const char *tmp = getenv("TMPDIR");
        char *path;
        int fd;

        if (asprintf(&path, "%s/dsp-test-config.XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0)
                bail("out of memory");
        fd = mkstemp(path);
        if (fd < 0)
                bail("mkstemp(%s): %s", path, strerror(errno));
        if (write(fd, text, size) != (ssize_t) size)
                bail("write(%s): %s", path, strerror(errno));
        close(fd);
        return path;
}

static size_t strv_length(char **l) {
        size_t n = 0;

        while (l && l[n])
                n++;
        return n;
}

/* Loads text as a policy file into c (already initialized). */
static int load(Config *c, const char *text, char **ret_path, char ***warnings, char **error) {
        char *path = write_file(text, strlen(text));
        int r;

        *warnings = NULL;
        *error = NULL;
        r = config_load_file(c, path, warnings, error);
        unlink(path);
        if (ret_path)
                *ret_path = path;
        else
                free(path);
        return r;
}

static void test_file(void) {
        char **warnings = NULL, *error = NULL, *path = NULL, needle[256];
        Config c;
        int r;

        /* A good file. */
        config_init(&c);
        r = load(&c,
                 "# docker-socket-proxy policy\n"
                 "CONTAINERS=1\n"
                 "POST = yes\n"
                 "DELETE=0\n"
                 "ALLOW_LOGS=\"true\"\n"
                 "ALLOW_START=1 \n"
                 "SOCKET_PATH=unix:///tmp/x.sock\n"
                 "LOG_LEVEL='debug'\n"
                 "SOCKET_PROXY_TIMEOUT=500ms\n"
                 "TZ=Europe/Berlin\n",
                 NULL, &warnings, &error);
        is_int(0, r, "a good policy file loads");
        is_int(0, (long) strv_length(warnings), "a good policy file gives no warnings");
        ok(error == NULL, "a good policy file gives no error");
        ok(allowed(&c, "GET", "/containers/json"), "file: CONTAINERS=1");
        ok(allowed(&c, "POST", "/containers/create"), "file: POST = yes");
        ok(!allowed(&c, "DELETE", "/containers/abc"), "file: DELETE=0 with POST=1 refuses DELETE");
        ok(allowed(&c, "GET", "/containers/abc/logs"), "file: ALLOW_LOGS=\"true\"");
        ok(!allowed(&c, "GET", "/containers/abc/archive"), "file: ALLOW_ARCHIVE stays off");
        is_string("/tmp/x.sock", c.socket_path, "file: SOCKET_PATH=unix:///tmp/x.sock");
        is_int(LOG_DEBUG, c.log_level, "file: LOG_LEVEL='debug'");
        ok(c.timeout_usec == 500 * USEC_PER_MSEC, "file: SOCKET_PROXY_TIMEOUT=500ms");
        strv_free(warnings);
        config_done(&c);

        /* A bad boolean: the error points at the file, the line, the variable and the value. */
        config_init(&c);
        r = load(&c, "CONTAINERS=1\nPOST=maybe\n", &path, &warnings, &error);
        is_int(-EINVAL, r, "POST=maybe in a file fails");
        ok(contains(error, path), "POST=maybe: the error names the file ('%s')", error ? error : "(null)");
        ok(contains(error, ":2:"), "POST=maybe: the error names line 2");
        ok(contains(error, "POST") && contains(error, "maybe"), "POST=maybe: the error names the variable and the value");
        free(error);
        free(path);
        strv_free(warnings);
        config_done(&c);

        /* The alias, in a file. */
        config_init(&c);
        r = load(&c, "SOCKET_PROXY_DOCKER_SOCKET=/run/user/1000/docker.sock\n", NULL, &warnings, &error);
        ok(r == 0, "SOCKET_PROXY_DOCKER_SOCKET in a file");
        is_string("/run/user/1000/docker.sock", c.socket_path, "SOCKET_PROXY_DOCKER_SOCKET sets the socket");
        strv_free(warnings);
        config_done(&c);

        /* An unknown variable is a warning with a suggestion, not a failure. */
        config_init(&c);
        r = load(&c, "# x\nCONTAINER=1\n", &path, &warnings, &error);
        is_int(0, r, "CONTAINER=1 does not fail");
        is_int(1, (long) strv_length(warnings), "CONTAINER=1 gives one warning");
        ok(strv_length(warnings) > 0 && contains(warnings[0], "did you mean CONTAINERS?"),
           "CONTAINER=1: the warning asks 'did you mean CONTAINERS?' ('%s')", warnings ? warnings[0] : "(null)");
        snprintf(needle, sizeof needle, "%s:2:", path);
        ok(strv_length(warnings) > 0 && contains(warnings[0], needle), "CONTAINER=1: the warning names the file and line 2");
        ok(strv_length(warnings) > 0 && contains(warnings[0], "CONTAINER=1"), "CONTAINER=1: the warning names the variable");
        ok(!allowed(&c, "GET", "/containers/json"), "CONTAINER=1 does not open /containers");
        free(path);
        strv_free(warnings);
        config_done(&c);

        config_init(&c);
        r = load(&c, "containers=1\nALLOW_LOG=1\nFOOBAR=1\nPOST=1\n", NULL, &warnings, &error);
        is_int(0, r, "three unknown variables do not fail");
        is_int(3, (long) strv_length(warnings), "three unknown variables give three warnings");
        if (strv_length(warnings) == 3) {
                ok(contains(warnings[0], "did you mean CONTAINERS?") && contains(warnings[0], ":1:"),
                   "containers=1 (line 1): did you mean CONTAINERS?");
                ok(contains(warnings[1], "did you mean ALLOW_LOGS?") && contains(warnings[1], ":2:"),
                   "ALLOW_LOG=1 (line 2): did you mean ALLOW_LOGS?");
                ok(contains(warnings[2], "FOOBAR") && !contains(warnings[2], "did you mean"),
                   "FOOBAR=1 (line 3): no suggestion");
        }
        ok(allowed(&c, "POST", "/events"), "the known variable after the unknown ones still applies");
        strv_free(warnings);
        config_done(&c);

        /* Syntax errors carry the line. */
        config_init(&c);
        r = load(&c, "CONTAINERS=1\nPOST=1\nthis is not a variable\n", &path, &warnings, &error);
        is_int(-EINVAL, r, "a syntax error fails");
        snprintf(needle, sizeof needle, "%s:3:", path);
        ok(contains(error, needle), "a syntax error names the file and line 3 ('%s')", error ? error : "(null)");
        free(error);
        free(path);
        strv_free(warnings);
        config_done(&c);

        config_init(&c);
        {
                static const char text[] = "CONTAINERS=1\nPOST=1\0\n";
                char *p = write_file(text, sizeof text - 1);
                warnings = NULL;
                error = NULL;
                r = config_load_file(&c, p, &warnings, &error);
                is_int(-EINVAL, r, "a NUL byte in the file fails");
                ok(contains(error, ":2:") && contains(error, "NUL"), "a NUL byte: the error names line 2 and NUL");
                unlink(p);
                free(p);
                free(error);
                strv_free(warnings);
        }
        config_done(&c);

        /* Later lines win; CRLF files work. */
        config_init(&c);
        r = load(&c, "CONTAINERS=1\r\nPOST=1\r\nCONTAINERS=0\r\n", NULL, &warnings, &error);
        ok(r == 0 && !allowed(&c, "GET", "/containers/json"), "the last CONTAINERS= in a file wins");
        ok(allowed(&c, "POST", "/events"), "POST=1 with a CRLF line end");
        strv_free(warnings);
        config_done(&c);

        /* An empty file changes nothing. */
        config_init(&c);
        r = load(&c, "", NULL, &warnings, &error);
        ok(r == 0 && strv_length(warnings) == 0, "an empty file loads without warnings");
        ok(allowed(&c, "GET", "/events") && !allowed(&c, "GET", "/containers/json"), "an empty file keeps the defaults");
        strv_free(warnings);
        config_done(&c);

        /* Files that cannot be read. */
        config_init(&c);
        warnings = NULL;
        error = NULL;
        r = config_load_file(&c, "/nonexistent/dsp-policy.env", &warnings, &error);
        ok(r < 0, "a missing file fails");
        ok(contains(error, "/nonexistent/dsp-policy.env"), "a missing file: the error names it ('%s')",
           error ? error : "(null)");
        free(error);
        error = NULL;
        r = config_load_file(&c, "/", &warnings, &error);
        ok(r < 0 && contains(error, "not a regular file"), "a directory: 'not a regular file' ('%s')",
           error ? error : "(null)");
        free(error);
        strv_free(warnings);
        config_done(&c);
}

static void test_bytes(void) {
        static const struct {
                const char *s;
                unsigned long bytes;
        } good[] = {
                { "0", 0 },              { "1", 1 },                 { "256", 256 },
                { "8192", 8192 },        { "007", 7 },               { "1K", 1024 },
                { "1KiB", 1024 },        { "8K", 8192 },             { "64KiB", 65536 },
                { "1M", 1048576 },       { "1MiB", 1048576 },        { "2M", 2097152 },
                { "0K", 0 },             { "1024K", 1048576 },       { "1000000000", 1000000000 },
        };
        static const char *const bad[] = {
                "", "K", "M", "KiB", "1k", "1m", "1kib", "1KB", "1MB", "1Ki", "1Mi", "1G", "1GiB", "1B", "1 K",
                " 1", "1 ", "-1", "+1", "1.5M", "0x10", "1e3", "1KK", "1KiBs", "1K ", "K1", "1_000", "١",
        };
        unsigned long n;

        for (size_t i = 0; i < ELEMS(good); i++) {
                n = 12345;
                is_int(0, parse_bytes(good[i].s, &n), "parse_bytes('%s')", good[i].s);
                ok(n == good[i].bytes, "parse_bytes('%s') is %lu (got %lu)", good[i].s, good[i].bytes, n);
        }
        for (size_t i = 0; i < ELEMS(bad); i++) {
                n = 12345;
                is_int(-EINVAL, parse_bytes(bad[i], &n), "parse_bytes('%s') is refused", bad[i]);
                ok(n == 12345, "parse_bytes('%s') leaves the result alone", bad[i]);
        }
        n = 12345;
        is_int(-ERANGE, parse_bytes("99999999999999999999", &n), "parse_bytes: a huge number is -ERANGE");
        ok(n == 12345, "parse_bytes: a huge number leaves the result alone");
        is_int(-ERANGE, parse_bytes("99999999999999999999K", &n), "parse_bytes: a huge number of K is -ERANGE");
}

static void test_size_limits(void) {
        static const struct {
                const char *key;
                unsigned lo, def;
        } vars[] = {
                { "SOCKET_PROXY_MAX_TARGET_BYTES", 256, 8192 },
                { "SOCKET_PROXY_MAX_HEADER_BYTES", 1024, 16384 },
        };
        static const struct {
                const char *value;
                unsigned bytes;
        } good[] = {
                { "1024", 1024 },   { "1K", 1024 },       { "1KiB", 1024 },     { "4096", 4096 },
                { "16K", 16384 },   { "64KiB", 65536 },   { "1000000", 1000000 }, { "1M", 1048576 },
                { "1MiB", 1048576 }, { "1024K", 1048576 }, { "1048576", 1048576 }, { "0001K", 1024 },
        };
        static const char *const bad[] = {
                "0", "1", "255", "1048577", "1025K", "2M", "1025KiB", "", "abc", "8k", "8KB", "64 K", " 4096",
                "4096 ", "-1", "+4096", "4096.0", "0x1000", "1G", "99999999999999999999", "1M1",
        };
        char *error = NULL;
        Config c;

        is_int(0, config_init(&c), "config_init()");
        ok(c.max_target_bytes == 8192, "default SOCKET_PROXY_MAX_TARGET_BYTES is 8192 (got %u)", c.max_target_bytes);
        ok(c.max_header_bytes == 16384, "default SOCKET_PROXY_MAX_HEADER_BYTES is 16K (got %u)", c.max_header_bytes);
        is_int(8192, CONFIG_DEFAULT_MAX_TARGET_BYTES, "CONFIG_DEFAULT_MAX_TARGET_BYTES");
        is_int(16384, CONFIG_DEFAULT_MAX_HEADER_BYTES, "CONFIG_DEFAULT_MAX_HEADER_BYTES");
        is_int(1048576, CONFIG_MAX_HEADER_BYTES_LIMIT, "CONFIG_MAX_HEADER_BYTES_LIMIT is 1M");

        for (size_t v = 0; v < ELEMS(vars); v++) {
                const char *key = vars[v].key;
                unsigned *where = v == 0 ? &c.max_target_bytes : &c.max_header_bytes;
                unsigned *other = v == 0 ? &c.max_header_bytes : &c.max_target_bytes;
                unsigned other_before = *other;
                char lo[16], below[16];
                int r;

                for (size_t i = 0; i < ELEMS(good); i++) {
                        *where = 7;
                        error = NULL;
                        r = config_set(&c, key, good[i].value, &error);
                        is_int(0, r, "%s=%s", key, good[i].value);
                        ok(*where == good[i].bytes, "%s=%s is %u (got %u)", key, good[i].value, good[i].bytes, *where);
                        ok(error == NULL, "%s=%s: no error", key, good[i].value);
                        free(error);
                }
                ok(*other == other_before, "%s leaves the other limit alone", key);

                /* The lower bound is the variable's own. */
                snprintf(lo, sizeof(lo), "%u", vars[v].lo);
                snprintf(below, sizeof(below), "%u", vars[v].lo - 1);
                is_int(0, config_set(&c, key, lo, &error), "%s=%s (the least)", key, lo);
                ok(*where == vars[v].lo, "%s=%s is %u", key, lo, vars[v].lo);
                error = NULL;
                is_int(-EINVAL, config_set(&c, key, below, &error), "%s=%s (one less than the least) is refused",
                       key, below);
                ok(contains(error, key) && contains(error, below) && contains(error, lo),
                   "%s=%s: the error names the variable, the value and the bound ('%s')", key, below,
                   error ? error : "(null)");
                free(error);

                *where = 4096;
                for (size_t i = 0; i < ELEMS(bad); i++) {
                        error = NULL;
                        r = config_set(&c, key, bad[i], &error);
                        is_int(-EINVAL, r, "%s='%s' is refused", key, bad[i]);
                        ok(contains(error, key) && contains(error, bad[i]),
                           "%s='%s': the error names the variable and the value ('%s')", key, bad[i],
                           error ? error : "(null)");
                        free(error);
                }
                ok(*where == 4096, "a refused %s leaves the limit as it was (got %u)", key, *where);
                *where = vars[v].def;
        }
        /* Between the two lower bounds: a target limit, not a header limit. */
        error = NULL;
        is_int(0, config_set(&c, "SOCKET_PROXY_MAX_TARGET_BYTES", "512", &error), "SOCKET_PROXY_MAX_TARGET_BYTES=512");
        free(error);
        error = NULL;
        is_int(-EINVAL, config_set(&c, "SOCKET_PROXY_MAX_HEADER_BYTES", "512", &error),
               "SOCKET_PROXY_MAX_HEADER_BYTES=512 is refused");
        ok(contains(error, "SOCKET_PROXY_MAX_HEADER_BYTES") && contains(error, "1024"),
           "SOCKET_PROXY_MAX_HEADER_BYTES=512: the error says 1024 ('%s')", error ? error : "(null)");
        free(error);
        config_done(&c);

        /* From the environment and a file. */
        {
                char *const env[] = { "SOCKET_PROXY_MAX_TARGET_BYTES=4K", "SOCKET_PROXY_MAX_HEADER_BYTES=128KiB", NULL };
                char *const env_bad[] = { "SOCKET_PROXY_MAX_HEADER_BYTES=2M", NULL };
                char **warnings = NULL;
                int r;

                config_init(&c);
                error = NULL;
                is_int(0, config_load_environment(&c, env, &error), "environment: the size limits load");
                ok(c.max_target_bytes == 4096 && c.max_header_bytes == 131072,
                   "environment: 4K and 128KiB (got %u and %u)", c.max_target_bytes, c.max_header_bytes);
                free(error);
                error = NULL;
                r = config_load_environment(&c, env_bad, &error);
                ok(r == -EINVAL && contains(error, "SOCKET_PROXY_MAX_HEADER_BYTES") && contains(error, "2M"),
                   "environment: SOCKET_PROXY_MAX_HEADER_BYTES=2M fails by name ('%s')", error ? error : "(null)");
                free(error);
                config_done(&c);

                config_init(&c);
                r = load(&c, "SOCKET_PROXY_MAX_TARGET_BYTES=1K\nSOCKET_PROXY_MAX_HEADER_BYTES=1M\n", NULL, &warnings,
                         &error);
                ok(r == 0 && c.max_target_bytes == 1024 && c.max_header_bytes == 1048576,
                   "file: the size limits load (got %u and %u)", c.max_target_bytes, c.max_header_bytes);
                ok(strv_length(warnings) == 0, "file: no warnings");
                strv_free(warnings);
                free(error);
                r = load(&c, "SOCKET_PROXY_MAX_TARGET_BYTES=100\n", NULL, &warnings, &error);
                ok(r == -EINVAL && contains(error, "SOCKET_PROXY_MAX_TARGET_BYTES") && contains(error, ":1:"),
                   "file: SOCKET_PROXY_MAX_TARGET_BYTES=100 fails with the line ('%s')", error ? error : "(null)");
                ok(c.max_target_bytes == 1024, "file: a refused limit leaves the limit as it was");
                strv_free(warnings);
                free(error);
                config_done(&c);
        }
        is_string("SOCKET_PROXY_MAX_HEADER_BYTES", config_suggest("SOCKET_PROXY_MAX_HEADERS_BYTES"),
                  "config_suggest('SOCKET_PROXY_MAX_HEADERS_BYTES')");
        is_string("SOCKET_PROXY_MAX_TARGET_BYTES", config_suggest("socket_proxy_max_target_bytes"),
                  "config_suggest('socket_proxy_max_target_bytes')");
}

int main(void) {
        plan_lazy();

        test_defaults();
        test_set();
        test_duration();
        test_suggest();
        test_environment();
        test_file();
        test_bytes();
        test_size_limits();
        return 0;
}
