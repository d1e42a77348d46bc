/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "env-file.h"
#include "macro.h"

typedef struct Buffer {
        char *data;
        size_t size, allocated;
} Buffer;

static int buffer_put(Buffer *b, char c) {
        if (b->size + 2 > b->allocated) {
                size_t n = MAX(b->allocated * 2, (size_t) 64);
                char *p = realloc(b->data, n);
                if (!p)
                        return -ENOMEM;
                b->data = p;
                b->allocated = n;
        }
        b->data[b->size++] = c;
        b->data[b->size] = '\0';
        return 0;
}

static char *buffer_steal(Buffer *b) {
        char *p = b->data ?: strdup("");
        *b = (Buffer) {};
        return p;
}

static bool key_char(char c, bool first) {
        return c == '_' || isalpha((unsigned char) c) || (!first && isdigit((unsigned char) c));
}

static int add_entry(EnvFile *f, Buffer *key, Buffer *value, unsigned line) {
        EnvEntry *e;

        if (f->n_entries >= ENV_FILE_ENTRIES_MAX)
                return -E2BIG;
        e = realloc(f->entries, (f->n_entries + 1) * sizeof(EnvEntry));
        if (!e)
                return -ENOMEM;
        f->entries = e;
        e[f->n_entries++] = (EnvEntry) {
                .key = buffer_steal(key),
                .value = buffer_steal(value),
                .line = line,
        };
        if (!e[f->n_entries - 1].key || !e[f->n_entries - 1].value)
                return -ENOMEM;
        return 0;
}

int env_file_parse(const char *text, size_t size, EnvFile *ret, unsigned *ret_error_line,
                   const char **ret_error) {
        enum {
                PRE_KEY,
                KEY,
                PRE_EQUALS,
                PRE_VALUE,
                VALUE,
                VALUE_ESCAPE,
                SINGLE_QUOTE,
                DOUBLE_QUOTE,
                DOUBLE_QUOTE_ESCAPE,
                COMMENT,
                COMMENT_ESCAPE,
        } state = PRE_KEY;
        _cleanup_free_ char *key_data = NULL, *value_data = NULL;
        Buffer key = {}, value = {};
        EnvFile f = {};
        unsigned line = 1, key_line = 1;
        size_t keep = 0; /* bytes of value that trimming must not remove (quoted) */
        const char *error = NULL;
        int r = 0;

        for (size_t i = 0; i <= size && !error && r >= 0; i++) {
                /* A virtual newline at the end finishes the last line. */
                char c = i < size ? text[i] : '\n';

                if (i < size && c == '\0') {
                        error = "the file holds a NUL byte";
                        break;
                }

                switch (state) {
                case PRE_KEY:
                        if (c == '#' || c == ';')
                                state = COMMENT;
                        else if (key_char(c, true)) {
                                state = KEY;
                                key_line = line;
                                r = buffer_put(&key, c);
                        } else if (!isspace((unsigned char) c))
                                error = "expected a variable name (letters, digits and '_', not starting with a digit)";
                        break;

                case KEY:
                        if (c == '=')
                                state = PRE_VALUE;
                        else if (key_char(c, false))
                                r = buffer_put(&key, c);
                        else if (c == ' ' || c == '\t')
                                state = PRE_EQUALS;
                        else if (c == '\n')
                                error = "a variable name without '=' and a value";
                        else if (c == '\r')
                                error = "a carriage return after a variable name (Windows line endings?)";
                        else
                                error = "a variable name holds a character that is not a letter, digit or '_'";
                        break;

                case PRE_EQUALS:
                        if (c == '=')
                                state = PRE_VALUE;
                        else if (c != ' ' && c != '\t')
                                error = "expected '=' after the variable name";
                        break;

                case PRE_VALUE:
                        if (c == '\n') {
                                r = add_entry(&f, &key, &value, key_line);
                                keep = 0;
                                state = PRE_KEY;
                        } else if (c == '\'')
                                state = SINGLE_QUOTE;
                        else if (c == '"')
                                state = DOUBLE_QUOTE;
                        else if (c == '\\')
                                state = VALUE_ESCAPE;
                        else if (!isspace((unsigned char) c)) {
                                state = VALUE;
                                r = buffer_put(&value, c);
                        }
                        break;

                case VALUE:
                        if (c == '\n') {
                                while (value.size > keep && isspace((unsigned char) value.data[value.size - 1]))
                                        value.data[--value.size] = '\0';
                                r = add_entry(&f, &key, &value, key_line);
                                keep = 0;
                                state = PRE_KEY;
                        } else if (c == '\\')
                                state = VALUE_ESCAPE;
                        else
                                /* As in systemd, a quote counts only where a value starts. */
                                r = buffer_put(&value, c);
                        break;

                case VALUE_ESCAPE:
                        state = VALUE;
                        if (c != '\n') { /* backslash-newline continues the line */
                                r = buffer_put(&value, c);
                                keep = value.size;
                        } else if (i == size)
                                error = "the file ends inside an escape";
                        break;

                case SINGLE_QUOTE:
                        if (c == '\'') {
                                state = PRE_VALUE;
                                keep = value.size;
                        } else if (i == size)
                                error = "a single quote is not closed";
                        else
                                r = buffer_put(&value, c);
                        break;

                case DOUBLE_QUOTE:
                        if (c == '"') {
                                state = PRE_VALUE;
                                keep = value.size;
                        } else if (c == '\\')
                                state = DOUBLE_QUOTE_ESCAPE;
                        else if (i == size)
                                error = "a double quote is not closed";
                        else
                                r = buffer_put(&value, c);
                        break;

                case DOUBLE_QUOTE_ESCAPE:
                        state = DOUBLE_QUOTE;
                        if (i == size)
                                error = "a double quote is not closed";
                        else if (c == '\n')
                                ; /* continuation */
                        else if (strchr("\"\\`$", c))
                                r = buffer_put(&value, c);
                        else {
                                r = buffer_put(&value, '\\');
                                if (r >= 0)
                                        r = buffer_put(&value, c);
                        }
                        break;

                case COMMENT:
                        if (c == '\\')
                                state = COMMENT_ESCAPE;
                        else if (c == '\n')
                                state = PRE_KEY;
                        break;

                case COMMENT_ESCAPE:
                        state = COMMENT;
                        break;
                }

                if (error || r < 0) {
                        if (state == SINGLE_QUOTE || state == DOUBLE_QUOTE || state == DOUBLE_QUOTE_ESCAPE ||
                            state == VALUE_ESCAPE)
                                line = key_line;
                        break;
                }
                if (c == '\n' && i < size)
                        line++;
        }

        key_data = key.data;
        value_data = value.data;

        if (error || r < 0) {
                env_file_done(&f);
                if (r == -E2BIG)
                        error = "too many variables";
                if (error) {
                        if (ret_error_line)
                                *ret_error_line = line;
                        if (ret_error)
                                *ret_error = error;
                        return -EINVAL;
                }
                return r;
        }

        *ret = f;
        return 0;
}

void env_file_done(EnvFile *f) {
        for (size_t i = 0; i < f->n_entries; i++) {
                free(f->entries[i].key);
                free(f->entries[i].value);
        }
        free(f->entries);
        *f = (EnvFile) {};
}
