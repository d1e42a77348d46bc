/* SPDX-License-Identifier: MIT */
#pragma once

/* systemd's EnvironmentFile= syntax: KEY=VALUE lines, '#' and ';' comments, single and
 * double quotes, backslash escapes and continuation lines. Pure: parses a buffer. */

#include <stddef.h>

#define ENV_FILE_SIZE_MAX (1024U * 1024U)
#define ENV_FILE_ENTRIES_MAX 4096U

typedef struct EnvEntry {
        char *key;
        char *value;
        unsigned line; /* where the key starts, from 1 */
} EnvEntry;

typedef struct EnvFile {
        EnvEntry *entries;
        size_t n_entries;
} EnvFile;

/* Returns 0, -ENOMEM, or -EINVAL with the line and a description of the problem. */
int env_file_parse(const char *text, size_t size, EnvFile *ret, unsigned *ret_error_line,
                   const char **ret_error);
void env_file_done(EnvFile *f);
