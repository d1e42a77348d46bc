/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>

#include "config-build.h"
#include "config.h"
#include "env-file.h"

static const char *const setting_names[] = {
        "SOCKET_PATH", "SOCKET_PROXY_DOCKER_SOCKET", "LOG_LEVEL", "SOCKET_PROXY_TIMEOUT",
        "SOCKET_PROXY_KEEPALIVE", "SOCKET_PROXY_DRAIN_TIMEOUT", "SOCKET_PROXY_MAX_CONNECTIONS",
        "SOCKET_PROXY_MAX_LISTENER_CONNECTIONS", "SOCKET_PROXY_HEADER_TIMEOUT",
        "SOCKET_PROXY_MAX_TARGET_BYTES", "SOCKET_PROXY_MAX_HEADER_BYTES",
        "DISABLE_IPV6", "TZ", NULL,
};

static const char *const log_levels[] = {
        [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
        [LOG_ERR] = "err",     [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
        [LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
};

void strv_free(char **l) {
        if (!l)
                return;
        for (char **p = l; *p; p++)
                free(*p);
        free(l);
}

static int strv_push(char ***l, char *s) {
        size_t n = 0;
        char **p;

        if (!s)
                return -ENOMEM;
        while (*l && (*l)[n])
                n++;
        p = realloc(*l, (n + 2) * sizeof(char *));
        if (!p) {
                free(s);
                return -ENOMEM;
        }
        p[n] = s;
        p[n + 1] = NULL;
        *l = p;
        return 0;
}

_printf_(2, 3) static int set_error(char **ret_error, const char *fmt, ...) {
        va_list ap;
        char *s = NULL;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        if (ret_error)
                *ret_error = s;
        else
                free(s);
        return s ? -EINVAL : -ENOMEM;
}

int config_init(Config *c) {
        *c = (Config) {
                .log_level = LOG_INFO,
                .timeout_usec = CONFIG_DEFAULT_TIMEOUT_USEC,
                .keepalive_usec = CONFIG_DEFAULT_KEEPALIVE_USEC,
                .drain_usec = CONFIG_DEFAULT_DRAIN_USEC,
                .max_connections = CONFIG_DEFAULT_MAX_CONNECTIONS,
                .header_timeout_usec = CONFIG_DEFAULT_HEADER_TIMEOUT_USEC,
                .max_target_bytes = CONFIG_DEFAULT_MAX_TARGET_BYTES,
                .max_header_bytes = CONFIG_DEFAULT_MAX_HEADER_BYTES,
        };
        policy_init_default(&c->policy);
        c->socket_path = strdup(DEFAULT_SOCKET_PATH);
        return c->socket_path ? 0 : -ENOMEM;
}

void config_done(Config *c) {
        free(c->socket_path);
        *c = (Config) {};
}

typedef struct Unit {
        const char *suffix;
        unsigned long long factor;
} Unit;

/* Digits, then one of the units' suffixes: "30s", "16K". The digits may say at most max. */
static int parse_with_unit(const char *s, const Unit *units, size_t n_units, unsigned long long max,
                           unsigned long long *ret) {
        unsigned long long n = 0;
        const char *p = s;

        if (!isdigit((unsigned char) *p))
                return -EINVAL;
        for (; isdigit((unsigned char) *p); p++) {
                if (n > max)
                        return -ERANGE;
                n = n * 10 + (unsigned) (*p - '0');
        }
        for (size_t i = 0; i < n_units; i++)
                if (streq(p, units[i].suffix)) {
                        if (n > ULLONG_MAX / 2 / units[i].factor)
                                return -ERANGE;
                        *ret = n * units[i].factor;
                        return 0;
                }
        return -EINVAL;
}

int parse_duration(const char *s, usec_t *ret) {
        static const Unit units[] = {
                { "us", 1 }, { "ms", USEC_PER_MSEC }, { "s", USEC_PER_SEC }, { "sec", USEC_PER_SEC },
                { "m", 60 * USEC_PER_SEC }, { "min", 60 * USEC_PER_SEC }, { "h", 3600 * USEC_PER_SEC },
                { "", USEC_PER_SEC },
        };
        unsigned long long n;
        int r = parse_with_unit(s, units, ELEMENTSOF(units), 1000000000ULL, &n);

        if (r < 0)
                return r;
        if (n >= USEC_INFINITY / 2)
                return -ERANGE;
        *ret = (usec_t) n;
        return 0;
}

int parse_bytes(const char *s, unsigned long *ret) {
        static const Unit units[] = {
                { "", 1 }, { "K", 1024 }, { "KiB", 1024 }, { "M", 1024 * 1024 }, { "MiB", 1024 * 1024 },
        };
        unsigned long long n;
        int r = parse_with_unit(s, units, ELEMENTSOF(units), 100000000ULL, &n);

        if (r < 0)
                return r;
        if (n > ULONG_MAX)
                return -ERANGE;
        *ret = (unsigned long) n;
        return 0;
}

int parse_log_level(const char *s) {
        for (size_t i = 0; i < ELEMENTSOF(log_levels); i++)
                if (strcaseeq(s, log_levels[i]))
                        return (int) i;
        if (strcaseeq(s, "warn"))
                return LOG_WARNING;
        if (strcaseeq(s, "error"))
                return LOG_ERR;
        if (strlen(s) == 1 && *s >= '0' && *s <= '7')
                return *s - '0';
        return -EINVAL;
}

const char *log_level_to_string(int level) {
        return level >= 0 && (size_t) level < ELEMENTSOF(log_levels) ? log_levels[level] : "?";
}

static int set_duration(usec_t *where, const char *key, const char *value, bool allow_zero, char **ret_error) {
        usec_t u;

        if (parse_duration(value, &u) < 0 || (!allow_zero && u == 0))
                return set_error(ret_error, "%s=%s: not a duration (use a number with s, ms or min, e.g. 30s%s)",
                                 key, value, allow_zero ? "" : "; it must be more than 0");
        *where = u;
        return 0;
}

int config_set(Config *c, const char *key, const char *value, char **ret_error) {
        int r;

        if (policy_is_variable(key)) {
                r = policy_set(&c->policy, key, value);
                if (r == -EINVAL)
                        return set_error(ret_error, "%s=%s: not a boolean (use 1, true, yes, on or 0, false, no, off)",
                                         key, value);
                return r;
        }

        if (streq(key, "SOCKET_PATH") || streq(key, "SOCKET_PROXY_DOCKER_SOCKET")) {
                char *p;

                /* Accept the DOCKER_HOST spelling people copy from elsewhere. */
                if (strncmp(value, "unix://", 7) == 0)
                        value += 7;
                if (value[0] != '/')
                        return set_error(ret_error, "%s=%s: the Docker socket must be an absolute path", key, value);
                if (strlen(value) >= 108)
                        return set_error(ret_error, "%s=%s: the path is longer than a Unix socket address can hold",
                                         key, value);
                p = strdup(value);
                if (!p)
                        return -ENOMEM;
                free(c->socket_path);
                c->socket_path = p;
                return 0;
        }
        if (streq(key, "LOG_LEVEL")) {
                r = parse_log_level(value);
                if (r < 0)
                        return set_error(ret_error,
                                         "%s=%s: not a log level (use debug, info, notice, warning, err, crit, alert or emerg)",
                                         key, value);
                c->log_level = r;
                return 0;
        }
        if (streq(key, "SOCKET_PROXY_TIMEOUT"))
                return set_duration(&c->timeout_usec, key, value, false, ret_error);
        if (streq(key, "SOCKET_PROXY_KEEPALIVE"))
                return set_duration(&c->keepalive_usec, key, value, false, ret_error);
        if (streq(key, "SOCKET_PROXY_DRAIN_TIMEOUT"))
                return set_duration(&c->drain_usec, key, value, true, ret_error);
        if (streq(key, "SOCKET_PROXY_HEADER_TIMEOUT"))
                return set_duration(&c->header_timeout_usec, key, value, false, ret_error);
        if (streq(key, "SOCKET_PROXY_MAX_CONNECTIONS") || streq(key, "SOCKET_PROXY_MAX_LISTENER_CONNECTIONS")) {
                bool total = streq(key, "SOCKET_PROXY_MAX_CONNECTIONS");
                char *end;
                unsigned long n;

                errno = 0;
                n = strtoul(value, &end, 10);
                if (errno || end == value || *end || (total && n == 0) || n > 65536 || !isdigit((unsigned char) *value))
                        return set_error(ret_error, "%s=%s: not a number between %d and 65536", key, value, total ? 1 : 0);
                if (total)
                        c->max_connections = (unsigned) n;
                else
                        c->max_listener_connections = (unsigned) n;
                return 0;
        }
        if (streq(key, "SOCKET_PROXY_MAX_TARGET_BYTES") || streq(key, "SOCKET_PROXY_MAX_HEADER_BYTES")) {
                bool target = streq(key, "SOCKET_PROXY_MAX_TARGET_BYTES");
                unsigned long lo = target ? 256 : 1024, n;

                if (parse_bytes(value, &n) < 0 || n < lo || n > CONFIG_MAX_HEADER_BYTES_LIMIT)
                        return set_error(ret_error, "%s=%s: not a size between %lu and 1M (bytes; K and M suffixes "
                                         "allowed)", key, value, lo);
                if (target)
                        c->max_target_bytes = (unsigned) n;
                else
                        c->max_header_bytes = (unsigned) n;
                return 0;
        }
        if (streq(key, "DISABLE_IPV6")) {
                r = parse_boolean(value);
                if (r < 0)
                        return set_error(ret_error, "%s=%s: not a boolean (use 1, true, yes, on or 0, false, no, off)",
                                         key, value);
                c->disable_ipv6 = r;
                return 0;
        }
        if (streq(key, "TZ"))
                return 0; /* journald stamps the time */

        return -ENOENT;
}

int config_load_environment(Config *c, char *const *envp, char **ret_error) {
        for (char *const *e = envp; e && *e; e++) {
                _cleanup_free_ char *key = NULL, *error = NULL;
                const char *eq = strchr(*e, '=');
                int r;

                if (!eq)
                        continue;
                key = strndup(*e, eq - *e);
                if (!key)
                        return -ENOMEM;
                r = config_set(c, key, eq + 1, &error);
                if (r == -ENOENT)
                        continue;
                if (r == -EINVAL)
                        return set_error(ret_error, "environment: %s", error);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int read_file(const char *path, char **ret, size_t *ret_size) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if (st.st_size > (off_t) ENV_FILE_SIZE_MAX)
                return -EFBIG;
        buf = malloc(ENV_FILE_SIZE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, buf + size, ENV_FILE_SIZE_MAX + 1 - size);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                size += (size_t) n;
                if (size > ENV_FILE_SIZE_MAX)
                        return -EFBIG;
        }
        buf[size] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_size = size;
        return 0;
}

int config_load_file(Config *c, const char *path, char ***warnings, char **ret_error) {
        _cleanup_free_ char *text = NULL;
        EnvFile f = {};
        const char *why = NULL;
        unsigned line = 0;
        size_t size = 0;
        int r;

        r = read_file(path, &text, &size);
        if (r < 0)
                return set_error(ret_error, "%s: cannot read the policy file: %s", path,
                                 r == -EBADFD ? "not a regular file" : r == -EFBIG ? "larger than 1 MiB" : strerror(-r));

        r = env_file_parse(text, size, &f, &line, &why);
        if (r == -EINVAL)
                return set_error(ret_error, "%s:%u: %s", path, line, why);
        if (r < 0)
                return r;

        for (size_t i = 0; i < f.n_entries; i++) {
                const EnvEntry *e = &f.entries[i];
                _cleanup_free_ char *error = NULL;

                r = config_set(c, e->key, e->value, &error);
                if (r == -ENOENT) {
                        const char *s = config_suggest(e->key);
                        char *w = NULL;

                        if (asprintf(&w, "%s:%u: %s=%s: unknown variable, ignoring%s%s%s", path, e->line, e->key,
                                     e->value, s ? "; did you mean " : "", strempty(s), s ? "?" : "") < 0)
                                w = NULL;
                        r = strv_push(warnings, w);
                        if (r < 0)
                                break;
                        continue;
                }
                if (r == -EINVAL) {
                        r = set_error(ret_error, "%s:%u: %s", path, e->line, error);
                        break;
                }
                if (r < 0)
                        break;
        }

        env_file_done(&f);
        return r < 0 ? r : 0;
}

static size_t edit_distance(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        size_t row[64];

        if (lb >= ELEMENTSOF(row) || la >= ELEMENTSOF(row))
                return SIZE_MAX;
        for (size_t j = 0; j <= lb; j++)
                row[j] = j;
        for (size_t i = 1; i <= la; i++) {
                size_t diag = row[0];
                row[0] = i;
                for (size_t j = 1; j <= lb; j++) {
                        size_t up = row[j];
                        size_t cost = toupper((unsigned char) a[i - 1]) == toupper((unsigned char) b[j - 1]) ? 0 : 1;
                        row[j] = MIN(MIN(row[j] + 1, row[j - 1] + 1), diag + cost);
                        diag = up;
                }
        }
        return row[lb];
}

const char *config_suggest(const char *name) {
        const char *const *lists[] = { policy_variable_names, setting_names };
        const char *best = NULL;
        size_t best_distance = SIZE_MAX;

        for (size_t l = 0; l < ELEMENTSOF(lists); l++)
                for (const char *const *v = lists[l]; *v; v++) {
                        size_t d = edit_distance(name, *v);
                        if (d < best_distance) {
                                best_distance = d;
                                best = *v;
                        }
                }
        /* A typo or two, or the same word in another case; not a different word. */
        return best_distance <= MAX((size_t) 1, MIN((size_t) 3, strlen(name) / 4)) ? best : NULL;
}
