/* SPDX-License-Identifier: MIT */
/* Request-target canonicalization and the policy decision, on any bytes: input is
 * "METHOD TARGET" plus one byte choosing the policy. Checks the invariants too: an
 * allowed request's path is canonical, and "needs" is set exactly for refusals. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http-util.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const vars[] = { "CONTAINERS", "POST", "IMAGES", "EXEC", "ALLOW_EXEC", "ALLOW_LOGS",
                                            "ALLOW_START", "ALLOW_RESTARTS", "DELETE", "SWARM" };
        char *buf, *space;
        HttpTarget t;
        Policy p;
        Verdict v;
        char explain[512];

        if (size < 1)
                return 0;
        policy_init_default(&p);
        for (size_t i = 0; i < 8; i++)
                if (data[0] & (1u << i))
                        (void) policy_set(&p, vars[i], "1");
        if (data[0] & 0x80)
                (void) policy_set(&p, vars[8 + (data[0] & 1)], "0");

        buf = malloc(size);
        if (!buf)
                return 0;
        memcpy(buf, data + 1, size - 1);
        buf[size - 1] = '\0';
        space = strchr(buf, ' ');
        if (!space) {
                free(buf);
                return 0;
        }
        *space = '\0';

        if (http_target_parse(space + 1, &t) == 0) {
                assert(t.path[0] == '/');
                assert(!strstr(t.path, "//"));
                assert(!strstr(t.path, "/./") && !strstr(t.path, "/../"));
                policy_decide(&p, buf, t.path, &v);
                assert(v.allowed == (v.n_needs == 0 && !v.reason));
                if (v.allowed)
                        assert(v.rule);
                (void) verdict_explain(&v, explain, sizeof(explain));
                http_target_done(&t);
        }
        free(buf);
        return 0;
}
