/* SPDX-License-Identifier: MIT */
#pragma once

/* Logging, for the edges only (main.c, front.c, audit.c). To the journal with structured
 * fields when journald is there, else to stderr with "<N>" priority prefixes. */

#include <stdbool.h>
#include <syslog.h>

#include "macro.h"

typedef enum LogTarget {
        LOG_TARGET_AUTO,
        LOG_TARGET_JOURNAL,
        LOG_TARGET_STDERR,
        _LOG_TARGET_MAX,
} LogTarget;

void log_open(LogTarget target);
void log_set_max_level(int level);
int log_get_max_level(void);
LogTarget log_target_from_string(const char *s);
bool log_to_journal(void);

/* Logs and returns -abs(error) (or 0 when error is 0); "%m" is strerror(error). */
int log_full_errno(int level, int error, const char *fmt, ...) _printf_(3, 4);

/* A structured entry: the MESSAGE, then "KEY=value" fields, NULL-terminated. */
void log_struct(int level, const char *message_id, const char *message, ...) __attribute__((sentinel));
/* The same with fields as an array. */
void log_struct_array(int level, const char *message_id, const char *message, const char *const *fields,
                      size_t n_fields);

#define log_full(level, ...) log_full_errno((level), 0, __VA_ARGS__)
#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)
#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, (e), __VA_ARGS__)
#define log_notice_errno(e, ...) log_full_errno(LOG_NOTICE, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, (e), __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, (e), __VA_ARGS__)
