/* SPDX-License-Identifier: MIT */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* vasprintf(); the project sets it for every file */
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"

static unsigned long tap_planned;   /* 0 until plan() */
static unsigned long tap_number;    /* tests run */
static unsigned long tap_failures;
static bool tap_lazy;
static bool tap_planned_once;
static bool tap_bailed;
static pid_t tap_pid;               /* only the planning process finishes the run */

static void tap_finish(void) {
        bool bad;

        if (tap_bailed || getpid() != tap_pid)
                return;
        if (tap_lazy)
                printf("1..%lu\n", tap_number);

        if (!tap_lazy && tap_planned != tap_number)
                printf("# Looks like you planned %lu test%s but ran %lu\n", tap_planned,
                       tap_planned == 1 ? "" : "s", tap_number);
        if (tap_failures > 0)
                printf("# Looks like you failed %lu test%s of %lu\n", tap_failures,
                       tap_failures == 1 ? "" : "s", tap_number);

        bad = tap_failures > 0 || (!tap_lazy && tap_planned != tap_number) || tap_number == 0;
        fflush(stdout);
        fflush(stderr);
        if (bad)
                _exit(1); /* exit() must not be called from an atexit() handler */
}

static void tap_start(void) {
        if (tap_planned_once)
                bail("plan() called twice");
        tap_planned_once = true;
        tap_pid = getpid();
        /* Line-buffered results: a crash must not swallow the lines before it. */
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (atexit(tap_finish) != 0)
                bail("atexit() failed");
}

void plan(unsigned long count) {
        tap_start();
        tap_planned = count;
        printf("1..%lu\n", count);
}

void plan_lazy(void) {
        tap_start();
        tap_lazy = true;
}

static void tap_result(bool success, const char *format, va_list ap) {
        if (!tap_planned_once)
                bail("a test ran before plan()");
        tap_number++;
        if (!success)
                tap_failures++;
        printf("%sok %lu", success ? "" : "not ", tap_number);
        if (format && *format) {
                fputs(" - ", stdout);
                /* '#' would start a directive (SKIP, TODO): escape it as TAP says, and keep
                 * the description on one line. */
                char *s = NULL;
                if (vasprintf(&s, format, ap) < 0)
                        bail("out of memory");
                for (const char *p = s; *p; p++) {
                        if (*p == '#')
                                fputs("\\#", stdout);
                        else
                                putchar(*p == '\n' || *p == '\r' ? ' ' : *p);
                }
                free(s);
        }
        putchar('\n');
}

bool ok(bool success, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        tap_result(success, format, ap);
        va_end(ap);
        return success;
}

bool is_int(long wanted, long seen, const char *format, ...) {
        bool success = wanted == seen;
        va_list ap;

        va_start(ap, format);
        tap_result(success, format, ap);
        va_end(ap);
        if (!success)
                diag("     wanted: %ld\n       seen: %ld", wanted, seen);
        return success;
}

/* Prints a string with its control bytes escaped, so that a diagnostic stays one line. */
static void diag_string(const char *label, const char *s) {
        fputs("# ", stdout);
        fputs(label, stdout);
        if (!s) {
                fputs("(null)\n", stdout);
                return;
        }
        putchar('"');
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                if (*p == '\\' || *p == '"')
                        printf("\\%c", *p);
                else if (*p < 0x20 || *p >= 0x7f)
                        printf("\\x%02x", *p);
                else
                        putchar(*p);
        }
        fputs("\"\n", stdout);
}

bool is_string(const char *wanted, const char *seen, const char *format, ...) {
        bool success = wanted && seen ? strcmp(wanted, seen) == 0 : wanted == seen;
        va_list ap;

        va_start(ap, format);
        tap_result(success, format, ap);
        va_end(ap);
        if (!success) {
                diag_string("     wanted: ", wanted);
                diag_string("       seen: ", seen);
        }
        return success;
}

void skip(const char *reason, ...) {
        va_list ap;

        if (!tap_planned_once)
                bail("a test ran before plan()");
        tap_number++;
        printf("ok %lu # skip", tap_number);
        if (reason && *reason) {
                putchar(' ');
                va_start(ap, reason);
                vprintf(reason, ap);
                va_end(ap);
        }
        putchar('\n');
}

void diag(const char *format, ...) {
        char *s = NULL, *line, *save = NULL;
        va_list ap;

        va_start(ap, format);
        if (vasprintf(&s, format, ap) < 0)
                s = NULL;
        va_end(ap);
        if (!s)
                return;
        fflush(stdout);
        for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                printf("# %s\n", line);
        free(s);
        fflush(stdout);
}

void bail(const char *format, ...) {
        va_list ap;

        fflush(stdout);
        fputs("Bail out! ", stdout);
        va_start(ap, format);
        vprintf(format, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
        tap_bailed = true;
        exit(255);
}

unsigned long tap_failed(void) {
        return tap_failures;
}
