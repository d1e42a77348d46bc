/* SPDX-License-Identifier: MIT */
/* env_file_parse(): systemd's EnvironmentFile= syntax, as the policy file is written. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env-file.h"
#include "tap.h"

#define ELEMS(x) (sizeof(x) / sizeof((x)[0]))

/* "KEY=[value] KEY=[value]", control bytes as \xNN, or "error N: message". */
static char *render(const char *text, size_t size, unsigned *ret_line) {
        static char buf[8192];
        const char *why = NULL;
        unsigned line = 0;
        size_t n = 0;
        EnvFile f = {};
        int r;

        r = env_file_parse(text, size, &f, &line, &why);
        if (r < 0) {
                snprintf(buf, sizeof buf, "error %u: %s", line, why ? why : "(no message)");
                if (ret_line)
                        *ret_line = line;
                return buf;
        }
        buf[0] = '\0';
        for (size_t i = 0; i < f.n_entries && n + 16 < sizeof buf; i++) {
                n += (size_t) snprintf(buf + n, sizeof buf - n, "%s%s=[", i ? " " : "", f.entries[i].key);
                for (const unsigned char *p = (const unsigned char *) f.entries[i].value; *p && n + 8 < sizeof buf; p++)
                        if (*p < 0x20 || *p == 0x7f)
                                n += (size_t) snprintf(buf + n, sizeof buf - n, "\\x%02x", *p);
                        else
                                buf[n++] = (char) *p;
                n += (size_t) snprintf(buf + n, sizeof buf - n, "]");
        }
        env_file_done(&f);
        return buf;
}

static void test_values(void) {
        static const struct {
                const char *name, *text, *want;
        } cases[] = {
                { "two variables", "POST=1\nCONTAINERS=1\n", "POST=[1] CONTAINERS=[1]" },
                { "no newline at the end", "POST=1", "POST=[1]" },
                { "an empty file", "", "" },
                { "comments and blank lines only", "# c\n; c\n\n   \n\t# indented\n", "" },
                { "comments between variables", "# header\nA=1\n; semicolon\nB=2\n#C=3\n", "A=[1] B=[2]" },
                { "leading whitespace", "   A=1\n\tB=2\n", "A=[1] B=[2]" },
                { "spaces around '='", "A = 1\nB\t=\t2\nC =3\nD= 4\n", "A=[1] B=[2] C=[3] D=[4]" },
                { "empty values", "A=\nB=   \nC=''\nD=\"\"\n", "A=[] B=[] C=[] D=[]" },
                { "trailing whitespace is trimmed", "A=1   \nB=a b  \t\n", "A=[1] B=[a b]" },
                { "inner whitespace is kept", "A=a  b\n", "A=[a  b]" },
                { "'#' after a value is part of it", "A=1 # comment\n", "A=[1 # comment]" },
                { "';' after a value is part of it", "A=1;2\n", "A=[1;2]" },
                { "'=' in a value", "A=a=b\n", "A=[a=b]" },
                { "a path", "SOCKET_PATH=/run/user/1000/docker.sock\n", "SOCKET_PATH=[/run/user/1000/docker.sock]" },
                { "UTF-8 in a value", "TZ=Europe/Z\xc3\xbcrich\n", "TZ=[Europe/Z\xc3\xbcrich]" },
                { "lowercase and digits in keys", "_A=1\nA_1=2\nabc=3\n", "_A=[1] A_1=[2] abc=[3]" },
                { "a repeated key is kept twice, in order", "A=1\nA=2\n", "A=[1] A=[2]" },
                /* Single quotes: everything literal. */
                { "single quotes are literal", "A='a \\\"b\\\" $c \\\\ # ;'\n", "A=[a \\\"b\\\" $c \\\\ # ;]" },
                { "single quotes keep whitespace", "A='  x  '\n", "A=[  x  ]" },
                { "single quotes span lines", "A='x\ny'\n", "A=[x\\x0ay]" },
                /* Double quotes: \" \\ \$ \` escapes, other backslashes kept, continuation. */
                { "double-quote escapes", "A=\"a\\\"b\\\\c\\$d\\`e\"\n", "A=[a\"b\\c$d`e]" },
                { "other backslashes are kept in double quotes", "A=\"a\\nb\\x\"\n", "A=[a\\nb\\x]" },
                { "backslash-newline in double quotes", "A=\"foo\\\nbar\"\n", "A=[foobar]" },
                { "a newline in double quotes", "A=\"foo\nbar\"\n", "A=[foo\\x0abar]" },
                { "double quotes keep whitespace", "A=\"  x  \"\n", "A=[  x  ]" },
                { "'#' in double quotes", "A=\"a # b\"\n", "A=[a # b]" },
                { "whitespace after a closing quote is trimmed", "A=\"x\"   \nB='y'\t\n", "A=[x] B=[y]" },
                { "quoted parts join", "A='a'\"b\"c\n", "A=[abc]" },
                /* Unquoted: backslash escapes and continuation. */
                { "unquoted escapes", "A=a\\ b\\\\c\\#\n", "A=[a b\\c#]" },
                { "an escaped trailing space is kept", "A=x\\ \n", "A=[x ]" },
                { "an escaped quote", "A=\\\"x\\\"\n", "A=[\"x\"]" },
                { "backslash-newline continues an unquoted value", "A=foo\\\nbar\nB=2\n", "A=[foobar] B=[2]" },
                { "continuation keeps the next line's indentation", "A=foo\\\n  bar\n", "A=[foo  bar]" },
                { "a value that starts on the next line", "A=\\\nvalue\n", "A=[value]" },
                /* Files written on Windows. */
                { "CRLF line ends", "POST=1\r\nCONTAINERS=1\r\n", "POST=[1] CONTAINERS=[1]" },
                { "CRLF after a quoted value", "A=\"x\"\r\n", "A=[x]" },
                { "CRLF after a comment", "# c\r\nA=1\r\n", "A=[1]" },
        };

        for (size_t i = 0; i < ELEMS(cases); i++)
                is_string(cases[i].want, render(cases[i].text, strlen(cases[i].text), NULL), "env-file: %s",
                          cases[i].name);

        /* The size given bounds the parse, not a NUL. */
        is_string("A=[1]", render("A=1\nB=2", 3, NULL), "env-file: only the given size is parsed");
}

/* systemd's own parser (src/basic/env-file.c, parse_env_file_internal()) treats quotes as quotes
 * only where a value starts (or right after a closing quote); inside an unquoted value they are
 * ordinary characters. A file must mean the same to systemd's EnvironmentFile= and to
 * --env-file (re-read on reload). */
static void test_systemd_compat(void) {
        is_string("A=[foo\"bar\"]", render("A=foo\"bar\"\n", strlen("A=foo\"bar\"\n"), NULL),
                  "env-file: a quote inside an unquoted value is literal, as in systemd");
        is_string("TZ=[it's] B=[2]", render("TZ=it's\nB=2\n", strlen("TZ=it's\nB=2\n"), NULL),
                  "env-file: an apostrophe inside an unquoted value is literal, as in systemd");
}

static void test_errors(void) {
        static const struct {
                const char *name, *text;
                unsigned line;
                const char *word; /* the message holds it */
        } cases[] = {
                { "a line without '='", "A=1\nB=2\nbad line\n", 3, "=" },
                { "a name without '='", "A=1\nB=2\nNOEQUALS\nC=3\n", 3, "=" },
                { "a name alone", "NOEQUALS", 1, "=" },
                { "a name alone at the end", "A=1\nNOEQUALS", 2, "=" },
                { "a name starting with a digit", "1A=1\n", 1, "name" },
                { "a '-' in a name", "A=1\n\n\nA-B=1\n", 4, "name" },
                { "a '.' in a name", "A.B=1\n", 1, "name" },
                { "a space inside a name", "A=1\nKEY WITH SPACE=1\n", 2, "=" },
                { "no name", "A=1\n=1\n", 2, "name" },
                { "'export'", "export A=1\n", 1, "=" },
                { "a UTF-8 name", "\xc3\xa9=1\n", 1, "name" },
                { "an error after a continuation", "A=a\\\nb\nBAD\n", 3, "=" },
                { "an error after a multi-line value", "A=\"x\ny\"\nBAD\n", 3, "=" },
                { "an error after CRLF lines", "A=1\r\nB=2\r\nBAD\r\n", 3, "name" },
                { "an error after comments", "# 1\n; 2\n\n# 4\nBAD\n", 5, "=" },
                { "an unclosed single quote at the end", "A='unclosed", 1, "quote" },
                { "an unclosed double quote at the end", "A=\"unclosed", 1, "quote" },
                { "an escape at the end of a double quote", "A=\"x\\", 1, "quote" },
                /* The line of the quote that is not closed, not the end of the file. */
                { "an unclosed single quote", "A='unclosed\n", 1, "quote" },
                { "an unclosed double quote", "A=1\nB=\"unclosed\nC=3\n", 2, "quote" },
        };

        for (size_t i = 0; i < ELEMS(cases); i++) {
                const char *why = NULL;
                unsigned line = 0;
                EnvFile f = {};
                int r = env_file_parse(cases[i].text, strlen(cases[i].text), &f, &line, &why);

                if (!is_int(-EINVAL, r, "env-file error: %s", cases[i].name)) {
                        env_file_done(&f);
                        continue;
                }
                is_int(cases[i].line, line, "env-file error: %s: the line", cases[i].name);
                ok(why && strstr(why, cases[i].word), "env-file error: %s: the message ('%s') says '%s'",
                   cases[i].name, why ? why : "(null)", cases[i].word);
        }

        /* A NUL byte. */
        {
                static const char text[] = "A=1\nB=2\0\nC=3\n";
                const char *why = NULL;
                unsigned line = 0;
                EnvFile f = {};
                int r = env_file_parse(text, sizeof text - 1, &f, &line, &why);

                is_int(-EINVAL, r, "env-file error: a NUL byte");
                is_int(2, line, "env-file error: a NUL byte: the line");
                ok(why && strstr(why, "NUL"), "env-file error: a NUL byte: the message says NUL");
                r = env_file_parse("\0A=1\n", 5, &f, &line, &why);
                is_int(-EINVAL, r, "env-file error: a NUL byte first");
        }

        /* Without ret_error_line and ret_error. */
        {
                EnvFile f = {};
                is_int(-EINVAL, env_file_parse("BAD\n", 4, &f, NULL, NULL), "env-file error without line and message pointers");
        }

        /* A bound on the number of variables. */
        {
                size_t size = (ENV_FILE_ENTRIES_MAX + 1) * 8 + 1, n = 0;
                char *text = malloc(size);
                const char *why = NULL;
                unsigned line = 0;
                EnvFile f = {};
                int r;

                for (unsigned i = 0; i < ENV_FILE_ENTRIES_MAX; i++)
                        n += (size_t) snprintf(text + n, size - n, "A%04u=1\n", i % 10000);
                r = env_file_parse(text, n, &f, &line, &why);
                is_int(0, r, "env-file: %u variables are accepted", ENV_FILE_ENTRIES_MAX);
                is_int(ENV_FILE_ENTRIES_MAX, (long) f.n_entries, "env-file: %u variables are all kept",
                       ENV_FILE_ENTRIES_MAX);
                env_file_done(&f);
                n += (size_t) snprintf(text + n, size - n, "B=1\n");
                r = env_file_parse(text, n, &f, &line, &why);
                is_int(-EINVAL, r, "env-file: %u variables are refused", ENV_FILE_ENTRIES_MAX + 1);
                free(text);
        }
}

static void test_lines(void) {
        static const char text[] = "# c\n\nA=1\n  B=2\nC=\"x\ny\"\nD=4\\\n5\nE=5\r\nF = 6";
        static const unsigned want[] = { 3, 4, 5, 7, 9, 10 };
        static const char *const keys[] = { "A", "B", "C", "D", "E", "F" };
        const char *why = NULL;
        unsigned line = 0;
        EnvFile f = {};
        int r = env_file_parse(text, sizeof text - 1, &f, &line, &why);

        if (!is_int(0, r, "env-file lines: parsed"))
                return;
        is_int((long) ELEMS(want), (long) f.n_entries, "env-file lines: six variables");
        for (size_t i = 0; i < f.n_entries && i < ELEMS(want); i++) {
                is_string(keys[i], f.entries[i].key, "env-file lines: variable %zu is %s", i + 1, keys[i]);
                is_int(want[i], f.entries[i].line, "env-file lines: %s is on line %u", keys[i], want[i]);
        }
        env_file_done(&f);
        ok(f.entries == NULL && f.n_entries == 0, "env_file_done() empties the EnvFile");
}

int main(void) {
        plan_lazy();

        test_values();
        test_systemd_compat();
        test_errors();
        test_lines();
        return 0;
}
