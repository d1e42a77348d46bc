/* SPDX-License-Identifier: MIT */
/* The parser of the daemon's response head: the daemon's bytes are not trusted. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        HttpResponseHead h;
        ssize_t len = http_head_length((const char *) data, size, HTTP_RESPONSE_HEAD_MAX);
        char *buf;

        if (len <= 0)
                return 0;
        assert((size_t) len <= size);
        buf = malloc((size_t) len);
        if (!buf)
                return 0;
        memcpy(buf, data, (size_t) len);
        if (http_response_head_parse(buf, (size_t) len, &h) == 0) {
                assert(h.status >= 100 && h.status <= 999);
                assert(h.n_headers <= HTTP_HEADERS_MAX);
                assert(!(h.chunked && h.content_length >= 0));
                for (size_t i = 0; i < h.n_headers; i++)
                        assert(http_is_token(h.headers[i].name) && http_is_field_value(h.headers[i].value));
                (void) http_response_body_mode(&h, "GET");
        }
        free(buf);
        return 0;
}
