/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "fd-util.h"
#include "tunnel.h"

typedef struct Direction {
        int from, to;
        char *buf;     /* the bytes read before the tunnel began, then all of them without a pipe */
        size_t start, end;
        int pipe[2];   /* with a pipe, splice() moves the bytes without copying them to us */
        size_t pipe_size;
        size_t in_pipe;
        bool eof;      /* the source said it is done */
        bool shut;     /* and we told the destination */
        uint64_t bytes;
} Direction;

/* Rounds of read-then-write per wake-up: while data flows, poll() is skipped; the bound
 * keeps one busy direction from starving the other. */
#define PUMP_ROUNDS 8
/* A pipe starts at the kernel's default size (64 KiB); one that a read fills is grown to
 * this, once: bulk transfers then take a sixteenth of the system calls. Small pipes are kept
 * for the quiet tunnels, since pipe memory counts against a per-user limit. */
#define PIPE_DEFAULT_SIZE (64U * 1024U)
#define PIPE_BULK_SIZE (1024U * 1024U)

static bool direction_done(const Direction *d) {
        return d->shut;
}

static bool direction_pending(const Direction *d) {
        return d->start < d->end || d->in_pipe > 0;
}

static void direction_drop_pipe(Direction *d) {
        d->pipe[0] = safe_close(d->pipe[0]);
        d->pipe[1] = safe_close(d->pipe[1]);
}

/* Writes what is pending: 1 when all of it went, 0 when the destination is full, -errno. */
static int direction_flush(Direction *d) {
        ssize_t n;

        if (d->start < d->end) {
                n = send(d->to, d->buf + d->start, d->end - d->start, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0)
                        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
                d->start += (size_t) n;
                d->bytes += (uint64_t) n;
                if (d->start < d->end)
                        return 0;
        }
        if (d->in_pipe > 0) {
                n = splice(d->pipe[0], NULL, d->to, NULL, d->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (n < 0)
                        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
                d->in_pipe -= (size_t) n;
                d->bytes += (uint64_t) n;
                if (d->in_pipe > 0)
                        return 0;
        }
        return 1;
}

/* Reads what the source has: >0 bytes now pending, 0 at its end, -EAGAIN, or -errno. */
static ssize_t direction_fill(Direction *d) {
        ssize_t n;

        if (d->pipe[0] >= 0) {
                n = splice(d->from, NULL, d->pipe[1], NULL, d->pipe_size, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (n >= 0) {
                        d->in_pipe = (size_t) n;
                        if ((size_t) n == d->pipe_size && d->pipe_size < PIPE_BULK_SIZE) {
                                int size = fcntl(d->pipe[1], F_SETPIPE_SZ, (int) PIPE_BULK_SIZE);
                                /* Refused (over the per-user limit): go on with the small one. */
                                if (size > 0)
                                        d->pipe_size = (size_t) size;
                        }
                        return n;
                }
                if (errno != EINVAL)
                        return errno == EINTR ? -EAGAIN : -errno;
                /* This pair of sockets cannot splice: copy instead. */
                direction_drop_pipe(d);
        }
        n = recv(d->from, d->buf, TUNNEL_BUFFER_SIZE, MSG_DONTWAIT);
        if (n < 0)
                return errno == EINTR ? -EAGAIN : -errno;
        d->start = 0;
        d->end = (size_t) n;
        return n;
}

/* Moves what it can without blocking. Returns 0, or -errno for a reset or a hard error. */
static int direction_pump(Direction *d, short from_revents) {
        bool readable = from_revents & (POLLIN | POLLHUP | POLLERR | POLLRDHUP);

        if (d->shut)
                return 0;

        for (unsigned round = 0; round < PUMP_ROUNDS; round++) {
                int r;

                /* Write at once, POLLOUT or not: the destination is usually ready, and a full
                 * one only answers EAGAIN. */
                r = direction_flush(d);
                if (r <= 0)
                        return r; /* the destination is full: wait for POLLOUT */
                if (d->eof || !readable)
                        break;
                size_t asked = d->pipe[0] >= 0 ? d->pipe_size : TUNNEL_BUFFER_SIZE;
                ssize_t n = direction_fill(d);
                if (n == -EAGAIN)
                        break;
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        d->eof = true;
                /* A short read means the source is drained for now. */
                readable = n > 0 && (size_t) n >= asked;
                if (!readable && n > 0) {
                        r = direction_flush(d);
                        if (r <= 0)
                                return r;
                        break;
                }
        }

        if (d->eof && !direction_pending(d)) {
                /* The source is done and all it sent arrived: say so, and keep the other way open. */
                (void) shutdown(d->to, SHUT_WR);
                d->shut = true;
        }
        return 0;
}

static short direction_events_from(const Direction *d) {
        return !d->shut && !d->eof && !direction_pending(d) ? POLLIN | POLLRDHUP : 0;
}

static short direction_events_to(const Direction *d) {
        return !d->shut && direction_pending(d) ? POLLOUT : 0;
}

int tunnel_run(int client_fd, int daemon_fd, const void *client_pending, size_t client_pending_size,
               const void *daemon_pending, size_t daemon_pending_size, int cancel_fd, TunnelStats *ret) {
        _cleanup_free_ char *up_buf = malloc(TUNNEL_BUFFER_SIZE), *down_buf = malloc(TUNNEL_BUFFER_SIZE);
        Direction up = { .from = client_fd, .to = daemon_fd, .buf = up_buf, .pipe = { -EBADF, -EBADF },
                         .pipe_size = PIPE_DEFAULT_SIZE };
        Direction down = { .from = daemon_fd, .to = client_fd, .buf = down_buf, .pipe = { -EBADF, -EBADF },
                           .pipe_size = PIPE_DEFAULT_SIZE };
        int r = 0;

        *ret = (TunnelStats) {};
        if (!up_buf || !down_buf)
                return -ENOMEM;
        if (client_pending_size > TUNNEL_BUFFER_SIZE || daemon_pending_size > TUNNEL_BUFFER_SIZE)
                return -ENOBUFS;
        /* splice() has no per-call MSG_DONTWAIT for the sockets' side: the fds themselves must
         * not block, or one direction would wait inside splice() while the other starves. */
        r = fd_nonblock(client_fd, true);
        if (r >= 0)
                r = fd_nonblock(daemon_fd, true);
        if (r < 0)
                return r;
        /* Without pipes (out of fds, say) the bytes are copied through the buffers. */
        if (pipe2(up.pipe, O_CLOEXEC | O_NONBLOCK) < 0)
                up.pipe[0] = up.pipe[1] = -EBADF;
        if (pipe2(down.pipe, O_CLOEXEC | O_NONBLOCK) < 0)
                down.pipe[0] = down.pipe[1] = -EBADF;
        /* Either may be NULL when its size is 0. */
        if (client_pending_size > 0)
                memcpy(up.buf, client_pending, client_pending_size);
        up.end = client_pending_size;
        if (daemon_pending_size > 0)
                memcpy(down.buf, daemon_pending, daemon_pending_size);
        down.end = daemon_pending_size;

        while (!(direction_done(&up) && direction_done(&down))) {
                short client_events = direction_events_from(&up) | direction_events_to(&down);
                short daemon_events = direction_events_from(&down) | direction_events_to(&up);
                /* A side we read to its end and owe nothing is watched only for hanging up:
                 * a client killed while the daemon is silent ends the tunnel at once. */
                bool client_watch = !client_events && up.eof && !direction_pending(&down);
                bool daemon_watch = !daemon_events && down.eof && !direction_pending(&up);
                struct pollfd p[3] = {
                        { .fd = client_events || client_watch ? client_fd : -1, .events = client_events },
                        { .fd = daemon_events || daemon_watch ? daemon_fd : -1, .events = daemon_events },
                        { .fd = cancel_fd, .events = POLLIN },
                };

                if (poll(p, 3, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                if (p[2].revents) {
                        r = -ECANCELED;
                        break;
                }
                if ((client_watch && (p[0].revents & (POLLHUP | POLLERR))) ||
                    (daemon_watch && (p[1].revents & (POLLHUP | POLLERR)))) {
                        r = -ECONNRESET;
                        break;
                }
                r = direction_pump(&up, p[0].revents);
                if (r >= 0)
                        r = direction_pump(&down, p[1].revents);
                if (r < 0)
                        break;
        }

        direction_drop_pipe(&up);
        direction_drop_pipe(&down);
        ret->client_to_daemon = up.bytes;
        ret->daemon_to_client = down.bytes;
        ret->end_reason = r;
        return r;
}
