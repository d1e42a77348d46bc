/* SPDX-License-Identifier: MIT */
#pragma once

/* Everything the environment and the EnvironmentFile may hold, turned into one Config.
 * Never logs: problems come back as strings for the caller to print. */

#include <stdbool.h>

#include "macro.h"
#include "policy.h"

#define CONFIG_DEFAULT_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define CONFIG_DEFAULT_KEEPALIVE_USEC (10 * USEC_PER_SEC)
#define CONFIG_DEFAULT_DRAIN_USEC (5 * USEC_PER_SEC)
#define CONFIG_DEFAULT_MAX_CONNECTIONS 1024U
#define CONFIG_DEFAULT_HEADER_TIMEOUT_USEC (10 * USEC_PER_SEC)
#define CONFIG_DEFAULT_MAX_TARGET_BYTES 8192U
#define CONFIG_DEFAULT_MAX_HEADER_BYTES (16U * 1024U)
#define CONFIG_MAX_HEADER_BYTES_LIMIT (1024U * 1024U)

typedef struct Config {
        Policy policy;
        char *socket_path;
        int log_level; /* syslog priority: LOG_DEBUG shows allowed requests */
        usec_t timeout_usec;
        usec_t keepalive_usec;
        usec_t drain_usec;
        unsigned max_connections;              /* all listeners together */
        unsigned max_listener_connections;     /* each listener; 0: no limit of its own */
        usec_t header_timeout_usec;            /* to receive a request's headers */
        unsigned max_target_bytes;             /* of a request-target (414 beyond) */
        unsigned max_header_bytes;             /* of a request line and headers (431 beyond) */
        bool disable_ipv6;
} Config;

int config_init(Config *c);
void config_done(Config *c);

/* Applies one variable. Returns 0; -ENOENT when no such variable exists; -EINVAL with
 * *ret_error ("POST=maybe: not a boolean ...") for a bad value; -ENOMEM. */
int config_set(Config *c, const char *key, const char *value, char **ret_error);

/* Applies the known variables of an environment block; others are ignored. */
int config_load_environment(Config *c, char *const *envp, char **ret_error);

/* Applies an EnvironmentFile. Unknown names are warnings ("PATH:3: CONTAINER: unknown
 * variable, ignoring; did you mean CONTAINERS?"), appended to *warnings (NULL-terminated). */
int config_load_file(Config *c, const char *path, char ***warnings, char **ret_error);

/* The known variable closest to a misspelt one, or NULL. */
const char *config_suggest(const char *name);

int parse_duration(const char *s, usec_t *ret);
/* A byte count: digits with an optional K, KiB, M or MiB (powers of 1024). */
int parse_bytes(const char *s, unsigned long *ret);
int parse_log_level(const char *s);
const char *log_level_to_string(int level);

void strv_free(char **l);
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free);
