/* SPDX-License-Identifier: MIT */
/* The request gate fed in pieces: the first byte sets the piece size (and the limits).
 * Whatever the split, the verdict must be the one of the feed at once: the same phase,
 * status, error, number of requests, accepted bytes and start of the last request. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request-gate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct Outcome {
        GatePhase phase;
        unsigned status;
        const char *error;
        uint64_t requests;
        size_t accepted;
        size_t began;
} Outcome;

/* piece 0: at once; otherwise pieces of that size, or (sizes != NULL) of the sizes that
 * sizes[] gives in turn. */
static void feed(const uint8_t *in, size_t size, size_t piece, const uint8_t *sizes, size_t n_sizes,
                 size_t max_target, size_t max_head, Outcome *o) {
        RequestGate g;
        size_t pos = 0, turn = 0;
        bool failed = false;

        memset(o, 0, sizeof(*o));
        request_gate_init(&g, max_target, max_head);
        while (pos < size) {
                size_t n = size - pos, r;

                if (sizes && n_sizes > 0)
                        n = (size_t) sizes[turn++ % n_sizes] % 32 + 1;
                else if (piece > 0)
                        n = piece;
                if (n > size - pos)
                        n = size - pos;
                r = request_gate_feed(&g, in + pos, n);
                assert(r <= n);
                assert(g.request_began >= -1 && g.request_began <= (ssize_t) n);
                if (failed) {
                        /* After a failure nothing more is taken. */
                        assert(r == 0);
                        assert(request_gate_failed(&g));
                } else {
                        o->accepted += r;
                        if (g.request_began >= 0)
                                o->began = pos + (size_t) g.request_began;
                        if (request_gate_failed(&g)) {
                                failed = true;
                                assert(g.status == 400 || g.status == 414 || g.status == 431);
                                assert(g.error && *g.error);
                                /* The failing request began before or at the failing byte. */
                                assert(o->began <= o->accepted);
                        } else {
                                assert(r == n);
                                assert(g.status == 0 && g.error == NULL);
                        }
                }
                pos += n;
        }
        if (failed)
                assert(request_gate_feed(&g, "GET / HTTP/1.1\r\n\r\n", 18) == 0);
        assert(o->accepted <= size);
        o->phase = g.phase;
        o->status = g.status;
        o->error = g.error;
        o->requests = g.requests;
}

static void same(const Outcome *a, const Outcome *b) {
        assert(a->phase == b->phase);
        assert(a->status == b->status);
        assert(a->error == b->error);
        assert(a->requests == b->requests);
        assert(a->accepted == b->accepted);
        assert(a->began == b->began);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const struct {
                size_t max_target, max_head;
        } limits[] = {
                { 8192, 65536 }, { 16, 64 }, { 256, 1024 }, { 1, 32 },
                { 64, 256 },     { 4096, 200 }, { 3, 4096 }, { 1024, 1024 },
        };
        const uint8_t *in = data + 1;
        size_t n = size - 1, piece, max_target, max_head;
        Outcome once, pieces, bytes, varied;

        if (size < 1)
                return 0;
        piece = (size_t) (data[0] & 0x1f) + 1;
        max_target = limits[data[0] >> 5].max_target;
        max_head = limits[data[0] >> 5].max_head;

        feed(in, n, 0, NULL, 0, max_target, max_head, &once);
        feed(in, n, piece, NULL, 0, max_target, max_head, &pieces);
        same(&once, &pieces);
        feed(in, n, 1, NULL, 0, max_target, max_head, &bytes);
        same(&once, &bytes);
        /* Pieces of varying sizes, taken from the input itself. */
        feed(in, n, 0, in, n, max_target, max_head, &varied);
        same(&once, &varied);

        if (once.phase != GATE_FAILED)
                assert(once.accepted == n);
        else
                assert(once.accepted < n);
        return 0;
}
