/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include "log.h"

#define LOG_LINE_MAX 4096
#define JOURNAL_SOCKET "/run/systemd/journal/socket"

static atomic_int max_level = LOG_INFO;
static bool use_journal;

static bool stderr_is_journal_stream(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        return fstat(STDERR_FILENO, &st) >= 0 && (unsigned long long) st.st_dev == dev &&
               (unsigned long long) st.st_ino == ino;
}

void log_open(LogTarget target) {
        switch (target) {
        case LOG_TARGET_JOURNAL:
                use_journal = true;
                break;
        case LOG_TARGET_STDERR:
                use_journal = false;
                break;
        default:
                /* Under systemd stderr is a journal stream; run by hand, a terminal. Anywhere
                 * else (a pipe, a file) the journal is preferred when it is there. */
                use_journal = stderr_is_journal_stream() ||
                              (!isatty(STDERR_FILENO) && access(JOURNAL_SOCKET, W_OK) >= 0);
        }
}

bool log_to_journal(void) {
        return use_journal;
}

void log_set_max_level(int level) {
        atomic_store(&max_level, level);
}

int log_get_max_level(void) {
        return atomic_load(&max_level);
}

LogTarget log_target_from_string(const char *s) {
        if (streq(s, "auto"))
                return LOG_TARGET_AUTO;
        if (streq(s, "journal"))
                return LOG_TARGET_JOURNAL;
        if (streq(s, "stderr") || streq(s, "console"))
                return LOG_TARGET_STDERR;
        return _LOG_TARGET_MAX;
}

static void write_stderr(int level, const char *message) {
        char line[LOG_LINE_MAX + 8];
        int n;

        /* One write() a line, so that threads do not interleave. */
        n = snprintf(line, sizeof(line), "<%d>%s\n", level, message);
        if (n < 0)
                return;
        if ((size_t) n >= sizeof(line)) {
                n = sizeof(line) - 1;
                line[n - 1] = '\n';
        }
        (void) !write(STDERR_FILENO, line, (size_t) n);
}

void log_struct_array(int level, const char *message_id, const char *message, const char *const *fields,
                      size_t n_fields) {
        if (level > log_get_max_level())
                return;

        if (use_journal) {
                char prio[16], mid[64], msg[LOG_LINE_MAX + 16];
                struct iovec iov[32];
                size_t n = 0;

                snprintf(prio, sizeof(prio), "PRIORITY=%d", level);
                snprintf(msg, sizeof(msg), "MESSAGE=%s", message);
                iov[n++] = (struct iovec) { msg, strlen(msg) };
                iov[n++] = (struct iovec) { prio, strlen(prio) };
                iov[n++] = (struct iovec) { (char *) "SYSLOG_IDENTIFIER=docker-socket-proxy", 37 };
                if (message_id) {
                        snprintf(mid, sizeof(mid), "MESSAGE_ID=%s", message_id);
                        iov[n++] = (struct iovec) { mid, strlen(mid) };
                }
                for (size_t i = 0; i < n_fields && n < ELEMENTSOF(iov); i++)
                        if (fields[i])
                                iov[n++] = (struct iovec) { (char *) fields[i], strlen(fields[i]) };
                if (sd_journal_sendv(iov, (int) n) >= 0)
                        return;
                /* journald went away: the line still goes somewhere. */
        }
        write_stderr(level, message);
}

void log_struct(int level, const char *message_id, const char *message, ...) {
        const char *fields[24];
        size_t n = 0;
        va_list ap;

        va_start(ap, message);
        for (const char *f; n < ELEMENTSOF(fields) && (f = va_arg(ap, const char *)); )
                fields[n++] = f;
        va_end(ap);
        log_struct_array(level, message_id, message, fields, n);
}

int log_full_errno(int level, int error, const char *fmt, ...) {
        char message[LOG_LINE_MAX];
        va_list ap;

        error = error < 0 ? -error : error;
        if (level <= log_get_max_level()) {
                int saved = errno;

                errno = error;
                va_start(ap, fmt);
                vsnprintf(message, sizeof(message), fmt, ap);
                va_end(ap);
                errno = saved;
                if (error) {
                        char field[32];
                        snprintf(field, sizeof(field), "ERRNO=%d", error);
                        log_struct(level, NULL, message, field, NULL);
                } else
                        log_struct(level, NULL, message, NULL);
        }
        return -error;
}
