/* SPDX-License-Identifier: MIT */
#pragma once

/* A tiny TAP (Test Anything Protocol) emitter with the function names of c-tap-harness's
 * tests/tap/basic.h. Results go to stdout; diagnostics are "# " lines on stdout so that
 * they stay in order with the results.
 *
 * At exit the lazy plan ("1..N") is printed if plan_lazy() was used, a summary is written
 * as a diagnostic, and the process exits with status 1 when a test failed or the number of
 * tests run differs from the plan (so that a harness that only looks at the exit status
 * also sees the failure). */

#include <stdbool.h>

#define TAP_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Announce the number of tests, or print the plan at the end (plan_lazy). */
void plan(unsigned long count);
void plan_lazy(void);

/* Each returns whether the test passed. */
bool ok(bool success, const char *format, ...) TAP_PRINTF(2, 3);
bool is_int(long wanted, long seen, const char *format, ...) TAP_PRINTF(3, 4);
/* NULL is a value of its own: it equals only NULL. */
bool is_string(const char *wanted, const char *seen, const char *format, ...) TAP_PRINTF(3, 4);

/* Skip one test with a reason. */
void skip(const char *reason, ...) TAP_PRINTF(1, 2);

/* A "# " comment line. */
void diag(const char *format, ...) TAP_PRINTF(1, 2);

/* Abort the whole test program: "Bail out! ..." and exit status 255. */
void bail(const char *format, ...) TAP_PRINTF(1, 2) __attribute__((noreturn));

/* How many tests failed so far. */
unsigned long tap_failed(void);
