/* SPDX-License-Identifier: MIT */
/* The chunked decoder fed in pieces: the first byte sets the piece size. Whatever the
 * split, the decoded payload must be the same as when fed at once. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int decode(const char *in, size_t size, size_t piece, char *out, size_t *out_size) {
        ChunkedDecoder d = CHUNKED_DECODER_INIT;
        size_t pos = 0;

        *out_size = 0;
        while (pos < size) {
                size_t n = piece ? (piece < size - pos ? piece : size - pos) : size - pos;
                size_t consumed;
                const char *p;
                size_t psize;
                int r = chunked_decode(&d, in + pos, n, &consumed, &p, &psize);

                if (r < 0)
                        return r;
                assert(consumed <= n);
                if (r == CHUNKED_DATA) {
                        assert(p >= in + pos && p + psize <= in + pos + consumed);
                        memcpy(out + *out_size, p, psize);
                        *out_size += psize;
                }
                pos += consumed;
                if (r == CHUNKED_DONE)
                        return 1;
                if (consumed == 0 && r != CHUNKED_DATA)
                        break;
        }
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *a, *b;
        size_t an, bn;
        int ra, rb;

        if (size < 1)
                return 0;
        a = malloc(size);
        b = malloc(size);
        if (!a || !b) {
                free(a);
                free(b);
                return 0;
        }
        ra = decode((const char *) data + 1, size - 1, 0, a, &an);
        rb = decode((const char *) data + 1, size - 1, (size_t) data[0] % 17 + 1, b, &bn);
        assert(ra == rb);
        if (ra >= 0) {
                assert(an == bn);
                assert(memcmp(a, b, an) == 0);
        }
        free(a);
        free(b);
        return 0;
}
