/* SPDX-License-Identifier: MIT */
/* The EnvironmentFile parser and every setting behind it, on any bytes. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>

#include "config.h"
#include "env-file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *why = NULL;
        unsigned line = 0;
        EnvFile f = {};
        Config c;

        if (env_file_parse((const char *) data, size, &f, &line, &why) < 0) {
                assert(why && line >= 1);
                return 0;
        }
        if (config_init(&c) < 0) {
                env_file_done(&f);
                return 0;
        }
        for (size_t i = 0; i < f.n_entries; i++) {
                char *error = NULL;
                int r = config_set(&c, f.entries[i].key, f.entries[i].value, &error);
                assert(r != -EINVAL || error);
                free(error);
                if (r == -ENOENT)
                        (void) config_suggest(f.entries[i].key);
        }
        config_done(&c);
        env_file_done(&f);
        return 0;
}
