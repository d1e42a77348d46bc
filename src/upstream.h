/* SPDX-License-Identifier: MIT */
#pragma once

/* A blocking HTTP/1.1 client for the Docker daemon's Unix socket, run in the connection's
 * own thread: connect, send, read the response head, read the body decoded. Connections
 * whose response ended cleanly are kept open for the next request (keep-alive). */

#include <stdint.h>

#include "http-util.h"
#include "macro.h"

#define UPSTREAM_BUFFER_SIZE (64U * 1024U)

typedef struct Upstream {
        int fd;
        char *buf; /* UPSTREAM_BUFFER_SIZE bytes read from the daemon */
        size_t start, end; /* unconsumed bytes are buf[start..end) */
        HttpResponseHead head;
        BodyMode body_mode;
        uint64_t body_remaining; /* BODY_LENGTH */
        ChunkedDecoder chunked;
        bool body_done;
        bool reused; /* the connection came from the idle ones: it may have been closed meanwhile */
        usec_t timeout; /* its SO_SNDTIMEO and SO_RCVTIMEO */
} Upstream;

#define UPSTREAM_NULL ((Upstream) { .fd = -EBADF })

/* Connects to the daemon's socket, or with reuse takes an idle connection to it if there is
 * one. Returns 0 or -errno (-ENOENT, -ECONNREFUSED, -EACCES...). */
int upstream_connect(Upstream *u, const char *socket_path, usec_t timeout, bool reuse);
/* Whether a failure on a reused connection means only that the daemon had closed it: the
 * request may then go again on a new one (if it is safe to repeat). */
bool upstream_stale(const Upstream *u, int r);
/* Connects and disconnects at once: can the daemon be reached? 0 or -errno. */
int upstream_probe(const char *socket_path, usec_t timeout);
int upstream_send(Upstream *u, const void *data, size_t size);
/* Sends data as one chunk of a chunked body; size 0 sends the last chunk. */
int upstream_send_chunk(Upstream *u, const void *data, size_t size);

/* Reads and parses the response head, skipping "100 Continue". Returns 0; -ETIMEDOUT;
 * -EBADMSG for a malformed head; -ECONNRESET when the daemon closed first. */
int upstream_read_head(Upstream *u, const char *request_method, usec_t timeout);

/* Waits for the daemon while watching the client and a cancel fd. Returns >0 bytes of body
 * copied to out, 0 at its end, -EPIPE when the client hung up, -ECANCELED when cancel_fd
 * became readable, -ECONNRESET when the daemon ended the body early, -EBADMSG for bad framing. */
ssize_t upstream_read_body(Upstream *u, char *out, size_t max, int client_fd, int cancel_fd);

void upstream_done(Upstream *u);
/* Like upstream_done, but a connection whose response was read to its end cleanly is kept
 * for the next request. */
void upstream_release(Upstream *u, const char *socket_path);
/* Closes the kept connections idle for max_idle or longer. Returns how many. */
unsigned upstream_expire_idle(usec_t max_idle);

/* For "permission denied": who the proxy runs as, who owns the socket with what mode, and
 * how to fix it. */
void upstream_describe_access(const char *socket_path, char *buf, size_t size);
