/* SPDX-License-Identifier: MIT */
#pragma once

/* The access policy of ../shared/spec/policy.md as data and one pure decision function.
 * No I/O, no logging, no allocation on the decision path. */

#include <stdbool.h>
#include <stdio.h>

typedef enum Section {
        SECTION_EVENTS,
        SECTION_PING,
        SECTION_VERSION,
        SECTION_AUTH,
        SECTION_BUILD,
        SECTION_COMMIT,
        SECTION_CONFIGS,
        SECTION_CONTAINERS,
        SECTION_DISTRIBUTION,
        SECTION_EXEC,
        SECTION_GRPC,
        SECTION_IMAGES,
        SECTION_INFO,
        SECTION_NETWORKS,
        SECTION_NODES,
        SECTION_PLUGINS,
        SECTION_SECRETS,
        SECTION_SERVICES,
        SECTION_SESSION,
        SECTION_SWARM,
        SECTION_SYSTEM,
        SECTION_TASKS,
        SECTION_VOLUMES,
        _SECTION_MAX,
} Section;

typedef enum Guard {
        GUARD_ARCHIVE,
        GUARD_EXPORT,
        GUARD_LOGS,
        GUARD_CHANGES,
        GUARD_TOP,
        GUARD_ATTACH,
        GUARD_EXEC,
        GUARD_KILL,
        GUARD_SWARM_UNLOCKKEY,
        _GUARD_MAX,
} Guard;

typedef enum Grant {
        GRANT_START,
        GRANT_STOP,
        GRANT_RESTARTS,
        GRANT_PAUSE,
        GRANT_UNPAUSE,
        _GRANT_MAX,
} Grant;

/* DELETE, PUT and PATCH follow POST unless set. */
typedef enum WriteMethod {
        WRITE_DELETE,
        WRITE_PUT,
        WRITE_PATCH,
        _WRITE_METHOD_MAX,
} WriteMethod;

typedef enum Tristate {
        TRISTATE_UNSET = -1,
        TRISTATE_OFF = 0,
        TRISTATE_ON = 1,
} Tristate;

typedef struct Policy {
        bool sections[_SECTION_MAX];
        bool post;
        Tristate write_methods[_WRITE_METHOD_MAX];
        bool guards[_GUARD_MAX];
        bool grants[_GRANT_MAX];
} Policy;

/* EVENTS, PING and VERSION on; everything else off. */
void policy_init_default(Policy *p);

/* Sets one policy variable from a boolean value (see parse_boolean()).
 * Returns 0, -ENOENT when the name is not a policy variable, -EINVAL for a bad value. */
int policy_set(Policy *p, const char *name, const char *value);
bool policy_is_variable(const char *name);
/* Every policy variable name, NULL-terminated, for suggestions and documentation. */
extern const char *const policy_variable_names[];

/* 1 for on, 0 for off, -EINVAL for anything else. */
int parse_boolean(const char *v);

#define VERDICT_NEEDS_MAX 4U

typedef struct Verdict {
        bool allowed;
        /* The variable that allowed the request, or the first that would allow it. */
        const char *rule;
        /* Every variable that must be set to 1 for this request to pass; empty when no
         * setting can allow it (CONNECT, TRACE, unknown methods and paths). */
        const char *needs[VERDICT_NEEDS_MAX];
        unsigned n_needs;
        /* A grant that would allow this request on its own ("ALLOW_START"), or NULL. */
        const char *alternative;
        /* Plain words for a refusal that no variable can lift. */
        const char *reason;
} Verdict;

/* Decides on a method and a canonical path (http_target_parse(): decoded, version prefix
 * removed). The path must start with '/'. */
void policy_decide(const Policy *p, const char *method, const char *path, Verdict *ret);

/* "needs CONTAINERS=1 and POST=1", or the reason. Returns what snprintf() returns. */
int verdict_explain(const Verdict *v, char *buf, size_t size);

/* The effective policy in plain words, one rule a line. */
void policy_describe(const Policy *p, FILE *f);
