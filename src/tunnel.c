/* SPDX-License-Identifier: MIT */
#include <poll.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "fd-util.h"
#include "tunnel.h"

typedef struct Direction {
        int from, to;
        char *buf;
        size_t start, end;
        bool eof;      /* the source said it is done */
        bool shut;     /* and we told the destination */
        uint64_t bytes;
} Direction;

static bool direction_done(const Direction *d) {
        return d->shut;
}

/* Rounds of read-then-write per wake-up: while data flows, poll() is skipped; the bound
 * keeps one busy direction from starving the other. */
#define PUMP_ROUNDS 8

/* Moves what it can without blocking. Returns 0, or -errno for a reset or a hard error. */
static int direction_pump(Direction *d, short from_revents) {
        bool readable = from_revents & (POLLIN | POLLHUP | POLLERR | POLLRDHUP);

        if (d->shut)
                return 0;

        for (unsigned round = 0; round < PUMP_ROUNDS; round++) {
                if (d->start == d->end && !d->eof && readable) {
                        ssize_t n = recv(d->from, d->buf, TUNNEL_BUFFER_SIZE, MSG_DONTWAIT);
                        if (n < 0) {
                                if (errno != EAGAIN && errno != EINTR)
                                        return -errno;
                                readable = false;
                        } else if (n == 0)
                                d->eof = true;
                        else {
                                d->start = 0;
                                d->end = (size_t) n;
                                /* A short read means the source is drained for now. */
                                readable = (size_t) n == TUNNEL_BUFFER_SIZE;
                        }
                }
                /* Write at once, POLLOUT or not: the destination is usually ready, and a full
                 * one only answers EAGAIN. */
                if (d->start < d->end) {
                        ssize_t n = send(d->to, d->buf + d->start, d->end - d->start, MSG_DONTWAIT | MSG_NOSIGNAL);
                        if (n < 0) {
                                if (errno != EAGAIN && errno != EINTR)
                                        return -errno;
                                break;
                        }
                        d->start += (size_t) n;
                        d->bytes += (uint64_t) n;
                        if (d->start < d->end)
                                break; /* the destination is full: wait for POLLOUT */
                }
                if (d->eof || !readable)
                        break;
        }

        if (d->eof && d->start == d->end) {
                /* The source is done and all it sent arrived: say so, and keep the other way open. */
                (void) shutdown(d->to, SHUT_WR);
                d->shut = true;
        }
        return 0;
}

static short direction_events_from(const Direction *d) {
        return !d->shut && !d->eof && d->start == d->end ? POLLIN | POLLRDHUP : 0;
}

static short direction_events_to(const Direction *d) {
        return !d->shut && d->start < d->end ? POLLOUT : 0;
}

int tunnel_run(int client_fd, int daemon_fd, const void *client_pending, size_t client_pending_size,
               const void *daemon_pending, size_t daemon_pending_size, int cancel_fd, TunnelStats *ret) {
        _cleanup_free_ char *up_buf = malloc(TUNNEL_BUFFER_SIZE), *down_buf = malloc(TUNNEL_BUFFER_SIZE);
        Direction up = { .from = client_fd, .to = daemon_fd, .buf = up_buf };
        Direction down = { .from = daemon_fd, .to = client_fd, .buf = down_buf };
        int r = 0;

        *ret = (TunnelStats) {};
        if (!up_buf || !down_buf)
                return -ENOMEM;
        if (client_pending_size > TUNNEL_BUFFER_SIZE || daemon_pending_size > TUNNEL_BUFFER_SIZE)
                return -ENOBUFS;
        memcpy(up.buf, client_pending, client_pending_size);
        up.end = client_pending_size;
        memcpy(down.buf, daemon_pending, daemon_pending_size);
        down.end = daemon_pending_size;

        while (!(direction_done(&up) && direction_done(&down))) {
                short client_events = direction_events_from(&up) | direction_events_to(&down);
                short daemon_events = direction_events_from(&down) | direction_events_to(&up);
                /* A side we read to its end and owe nothing is watched only for hanging up:
                 * a client killed while the daemon is silent ends the tunnel at once. */
                bool client_watch = !client_events && up.eof && down.start == down.end;
                bool daemon_watch = !daemon_events && down.eof && up.start == up.end;
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

        ret->client_to_daemon = up.bytes;
        ret->daemon_to_client = down.bytes;
        ret->end_reason = r;
        return r;
}
