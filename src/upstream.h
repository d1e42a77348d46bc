/* SPDX-License-Identifier: MIT */
#pragma once

/* A non-blocking HTTP/1.1 client for the Docker daemon's Unix socket: connect, send, read
 * the response head, read the body decoded. Each call does what it can now and answers
 * -EAGAIN for the rest; the caller waits for the socket. Connections whose response ended
 * cleanly are kept open for the next request (keep-alive). */

#include <stdint.h>
#include <sys/uio.h>

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
} Upstream;

#define UPSTREAM_NULL ((Upstream) { .fd = -EBADF })

/* Connects to the daemon's socket, or with reuse takes an idle connection to it if there is
 * one. Returns 0 or -errno (-ENOENT, -ECONNREFUSED, -EACCES...). */
int upstream_connect(Upstream *u, const char *socket_path, bool reuse);
/* Whether a failure on a reused connection means only that the daemon had closed it: the
 * request may then go again on a new one (if it is safe to repeat). */
bool upstream_stale(const Upstream *u, int r);
/* Connects and disconnects at once: can the daemon be reached? 0 or -errno. */
int upstream_probe(const char *socket_path);
/* Sends what the socket takes now. Returns the bytes sent, -EAGAIN or -errno. */
ssize_t upstream_send(Upstream *u, const struct iovec *iov, size_t n);

/* Reads and parses the response head, skipping "100 Continue". Returns 0; -EAGAIN while it
 * is incomplete; -EBADMSG for a malformed head; -ECONNRESET when the daemon closed first. */
int upstream_read_head(Upstream *u, const char *request_method);

/* Returns >0 bytes of body copied to out, 0 at its end, -EAGAIN when the daemon has sent
 * nothing more yet, -ECONNRESET when it ended the body early, -EBADMSG for bad framing. */
ssize_t upstream_read_body(Upstream *u, char *out, size_t max);

/* If all the rest of a chunked body is in the buffer already, decodes it there: *ret and
 * *ret_size are its bytes (valid until the next read), and the body is done. Returns whether
 * it was. */
bool upstream_body_buffered(Upstream *u, char **ret, size_t *ret_size);

void upstream_done(Upstream *u);
/* Like upstream_done, but a connection whose response was read to its end cleanly is kept
 * for the next request. Returns the kept fd, or -EBADF if it was closed. */
int upstream_release(Upstream *u, const char *socket_path);
/* A kept connection became readable (the daemon closed it): closes it. Returns whether it
 * was kept. */
bool upstream_drop_idle(int fd);
/* Closes the kept connections idle for max_idle or longer, telling closing() first. Returns
 * how many. */
unsigned upstream_expire_idle(usec_t max_idle, void (*closing)(int fd, void *userdata), void *userdata);
/* Frees the spare read buffers that no request took since the last call (all of them if
 * all is set). Returns how many. */
unsigned upstream_trim_buffers(bool all);
/* When upstream_expire_idle(max_idle) will next have a kept connection to close:
 * USEC_INFINITY if none is kept. */
usec_t upstream_idle_deadline(usec_t max_idle);

/* For "permission denied": who the proxy runs as, who owns the socket with what mode, and
 * how to fix it. */
void upstream_describe_access(const char *socket_path, char *buf, size_t size);
