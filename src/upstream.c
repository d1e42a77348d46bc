/* SPDX-License-Identifier: MIT */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <grp.h>
#include <sys/time.h>
#include <sys/un.h>

#include "fd-util.h"
#include "upstream.h"

/* Idle connections to the daemon, most recent last: as many as requests ran at once,
 * up to IDLE_MAX, each closed after an idle time (upstream_expire_idle). One that the daemon
 * closed or that has bytes pending is dropped when taken. */
#define IDLE_MAX 64U

static struct {
        int fd;
        usec_t since;
        usec_t timeout; /* its SO_SNDTIMEO and SO_RCVTIMEO */
        char path[108];
} idle[IDLE_MAX];
static size_t n_idle;
static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;

static int take_idle(const char *socket_path, usec_t *ret_timeout) {
        for (;;) {
                struct pollfd p = { .events = POLLIN };
                bool usable;

                pthread_mutex_lock(&idle_lock);
                if (n_idle == 0) {
                        pthread_mutex_unlock(&idle_lock);
                        return -EBADF;
                }
                n_idle--;
                p.fd = idle[n_idle].fd;
                *ret_timeout = idle[n_idle].timeout;
                usable = streq(idle[n_idle].path, socket_path);
                pthread_mutex_unlock(&idle_lock);

                /* Readable while idle: the daemon closed it, or sent what nobody asked for. */
                if (usable && poll(&p, 1, 0) == 0)
                        return p.fd;
                safe_close(p.fd);
        }
}

void upstream_release(Upstream *u, const char *socket_path) {
        bool keep = u->fd >= 0 && u->body_done && u->start == u->end && u->body_mode != BODY_UNTIL_CLOSE &&
                u->head.status != 101 && !u->head.connection_close && strlen(socket_path) < sizeof(idle[0].path);

        if (keep) {
                pthread_mutex_lock(&idle_lock);
                if (n_idle < IDLE_MAX) {
                        idle[n_idle].fd = TAKE_FD(u->fd);
                        idle[n_idle].since = now_coarse_usec();
                        idle[n_idle].timeout = u->timeout;
                        strcpy(idle[n_idle].path, socket_path);
                        n_idle++;
                }
                pthread_mutex_unlock(&idle_lock);
        }
        upstream_done(u);
}

unsigned upstream_expire_idle(usec_t max_idle) {
        usec_t now = now_coarse_usec();
        unsigned closed = 0;
        size_t kept = 0;

        pthread_mutex_lock(&idle_lock);
        /* Oldest first: the ones at the bottom of the stack. */
        for (size_t i = 0; i < n_idle; i++) {
                if (now - idle[i].since >= max_idle) {
                        safe_close(idle[i].fd);
                        closed++;
                } else
                        idle[kept++] = idle[i];
        }
        n_idle = kept;
        pthread_mutex_unlock(&idle_lock);
        return closed;
}

bool upstream_stale(const Upstream *u, int r) {
        /* Nothing of a response came: the daemon closed the connection before our request. */
        return u->reused && u->end == 0 && (r == -ECONNRESET || r == -EPIPE);
}

/* A thread keeps its last read buffer for its next request (a connection's requests run in
 * one thread): a 64 KiB malloc() and free() per request cost more than the rest of the
 * request's bookkeeping. The buffer is freed when the thread ends. */
static pthread_key_t spare_buffer_key;
static pthread_once_t spare_buffer_once = PTHREAD_ONCE_INIT;
static bool spare_buffer_usable;

static void spare_buffer_init(void) {
        spare_buffer_usable = pthread_key_create(&spare_buffer_key, free) == 0;
}

static char *buffer_take(void) {
        char *b;

        (void) pthread_once(&spare_buffer_once, spare_buffer_init);
        if (spare_buffer_usable && (b = pthread_getspecific(spare_buffer_key))) {
                (void) pthread_setspecific(spare_buffer_key, NULL);
                return b;
        }
        return malloc(UPSTREAM_BUFFER_SIZE);
}

static void buffer_give_back(char *b) {
        if (!b)
                return;
        (void) pthread_once(&spare_buffer_once, spare_buffer_init);
        if (spare_buffer_usable && !pthread_getspecific(spare_buffer_key) &&
            pthread_setspecific(spare_buffer_key, b) == 0)
                return;
        free(b);
}

/* Bounds a daemon that stops reading our request, and the first read of its answer
 * (upstream_read_head); later reads are bounded with poll(). */
static void set_timeouts(int fd, usec_t timeout) {
        struct timeval tv = {
                .tv_sec = (time_t) (timeout / USEC_PER_SEC),
                .tv_usec = (suseconds_t) (timeout % USEC_PER_SEC),
        };

        (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

int upstream_connect(Upstream *u, const char *socket_path, usec_t timeout, bool reuse) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (strlen(socket_path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        strcpy(sa.sun_path, socket_path);

        if (!u->buf) {
                u->buf = buffer_take();
                if (!u->buf)
                        return -ENOMEM;
        }
        u->start = u->end = 0;
        u->reused = false;
        u->timeout = timeout;
        if (reuse) {
                usec_t was;

                fd = take_idle(socket_path, &was);
                if (fd >= 0) {
                        /* SOCKET_PROXY_TIMEOUT may have changed since (a reload). */
                        if (was != timeout)
                                set_timeouts(fd, timeout);
                        u->fd = TAKE_FD(fd);
                        u->reused = true;
                        return 0;
                }
        }

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        set_timeouts(fd, timeout);
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                if (errno == EAGAIN)
                        return -ECONNREFUSED; /* the daemon's backlog is full */
                return -errno;
        }
        u->fd = TAKE_FD(fd);
        u->start = u->end = 0;
        return 0;
}

int upstream_send(Upstream *u, const void *data, size_t size) {
        return loop_send(u->fd, data, size);
}

int upstream_send_chunk(Upstream *u, const void *data, size_t size) {
        char head[32];
        int n, r;

        if (size == 0)
                return loop_send(u->fd, "0\r\n\r\n", 5);
        n = snprintf(head, sizeof(head), "%zx\r\n", size);
        r = loop_send(u->fd, head, (size_t) n);
        if (r < 0)
                return r;
        r = loop_send(u->fd, data, size);
        if (r < 0)
                return r;
        return loop_send(u->fd, "\r\n", 2);
}

/* Reads more bytes into the buffer, compacting it first; with wait, blocks up to the
 * socket's SO_RCVTIMEO. Returns bytes read, 0 at EOF, -errno (-EAGAIN: none yet). */
static ssize_t fill(Upstream *u, bool wait) {
        ssize_t n;

        if (u->start > 0) {
                memmove(u->buf, u->buf + u->start, u->end - u->start);
                u->end -= u->start;
                u->start = 0;
        }
        if (u->end >= UPSTREAM_BUFFER_SIZE)
                return -ENOBUFS;
        do
                n = recv(u->fd, u->buf + u->end, UPSTREAM_BUFFER_SIZE - u->end, wait ? 0 : MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        u->end += (size_t) n;
        return n;
}

int upstream_read_head(Upstream *u, const char *request_method, usec_t timeout) {
        usec_t deadline = now_coarse_usec() + timeout;
        bool first_read = true;

        for (;;) {
                ssize_t len = http_head_length(u->buf + u->start, u->end - u->start, HTTP_RESPONSE_HEAD_MAX);
                ssize_t n;
                int r;

                if (len < 0)
                        return -EBADMSG; /* a head larger than we accept */
                if (len > 0) {
                        r = http_response_head_parse(u->buf + u->start, (size_t) len, &u->head);
                        if (r < 0)
                                return r;
                        u->start += (size_t) len;
                        /* Interim answers other than 101 carry nothing for the client. */
                        if (u->head.status >= 100 && u->head.status < 200 && u->head.status != 101)
                                continue;
                        u->body_mode = http_response_body_mode(&u->head, request_method);
                        if (u->head.status == 101)
                                u->body_mode = BODY_NONE;
                        u->body_remaining = u->body_mode == BODY_LENGTH ? (uint64_t) u->head.content_length : 0;
                        u->chunked = CHUNKED_DECODER_INIT;
                        u->body_done = u->body_mode == BODY_NONE ||
                                       (u->body_mode == BODY_LENGTH && u->body_remaining == 0);
                        return 0;
                }

                if (first_read) {
                        /* The head usually comes in one read: wait in recv() itself, bounded
                         * by SO_RCVTIMEO (the timeout), rather than in poll() and then recv(). */
                        first_read = false;
                        n = fill(u, true);
                        if (n == -EAGAIN)
                                return -ETIMEDOUT;
                } else {
                        usec_t now = now_coarse_usec();
                        if (now >= deadline)
                                return -ETIMEDOUT;
                        r = fd_wait_for_event(u->fd, POLLIN, deadline - now);
                        if (r < 0)
                                return r;
                        if (r == 0)
                                return -ETIMEDOUT;
                        n = fill(u, false);
                }
                if (n == -EAGAIN)
                        continue;
                if (n == -ENOBUFS)
                        return -EBADMSG;
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        return -ECONNRESET;
        }
}

/* Blocks until the daemon has bytes for us, or the client or cancel_fd says stop. */
static int wait_readable(Upstream *u, int client_fd, int cancel_fd) {
        for (;;) {
                struct pollfd p[3] = {
                        { .fd = u->fd, .events = POLLIN },
                        { .fd = client_fd, .events = POLLRDHUP },
                        { .fd = cancel_fd, .events = POLLIN },
                };
                int r = poll(p, 3, -1);

                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (p[2].revents)
                        return -ECANCELED;
                if (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR))
                        return -EPIPE;
                if (p[0].revents)
                        return 0;
        }
}

ssize_t upstream_read_body(Upstream *u, char *out, size_t max, int client_fd, int cancel_fd) {
        for (;;) {
                size_t avail = u->end - u->start;
                ssize_t n;
                int r;

                if (u->body_done)
                        return 0;

                if (avail > 0) {
                        switch (u->body_mode) {
                        case BODY_LENGTH: {
                                size_t k = (size_t) MIN((uint64_t) MIN(avail, max), u->body_remaining);
                                memcpy(out, u->buf + u->start, k);
                                u->start += k;
                                u->body_remaining -= k;
                                u->body_done = u->body_remaining == 0;
                                return (ssize_t) k;
                        }
                        case BODY_UNTIL_CLOSE: {
                                size_t k = MIN(avail, max);
                                memcpy(out, u->buf + u->start, k);
                                u->start += k;
                                return (ssize_t) k;
                        }
                        case BODY_CHUNKED: {
                                const char *data;
                                size_t consumed, size;

                                r = chunked_decode(&u->chunked, u->buf + u->start, MIN(avail, max), &consumed, &data, &size);
                                if (r < 0)
                                        return r;
                                /* Payload is consumed only as far as it fits in out. */
                                u->start += consumed;
                                if (r == CHUNKED_DONE) {
                                        u->body_done = true;
                                        return 0;
                                }
                                if (r == CHUNKED_DATA && size > 0) {
                                        memmove(out, data, size);
                                        return (ssize_t) size;
                                }
                                if (consumed > 0)
                                        continue;
                                break;
                        }
                        case BODY_NONE:
                                u->body_done = true;
                                return 0;
                        }
                }

                /* Bodies that need no decoding skip the buffer: read straight into out. */
                if ((u->body_mode == BODY_LENGTH || u->body_mode == BODY_UNTIL_CLOSE) && u->start == u->end) {
                        bool length = u->body_mode == BODY_LENGTH;

                        r = wait_readable(u, client_fd, cancel_fd);
                        if (r < 0)
                                return r;
                        do
                                n = recv(u->fd, out, length ? (size_t) MIN((uint64_t) max, u->body_remaining) : max,
                                         MSG_DONTWAIT);
                        while (n < 0 && errno == EINTR);
                        if (n < 0 && errno == EAGAIN)
                                continue;
                        if (n < 0)
                                return -errno;
                        if (n == 0) {
                                if (length)
                                        return -ECONNRESET;
                                u->body_done = true;
                                return 0;
                        }
                        if (length) {
                                u->body_remaining -= (uint64_t) n;
                                u->body_done = u->body_remaining == 0;
                        }
                        return n;
                }

                r = wait_readable(u, client_fd, cancel_fd);
                if (r < 0)
                        return r;
                n = fill(u, false);
                if (n == -EAGAIN)
                        continue;
                if (n < 0)
                        return n;
                if (n == 0) {
                        if (u->body_mode == BODY_UNTIL_CLOSE) {
                                u->body_done = true;
                                return 0;
                        }
                        return -ECONNRESET;
                }
        }
}

void upstream_done(Upstream *u) {
        u->fd = safe_close(u->fd);
        buffer_give_back(TAKE_PTR(u->buf));
        u->start = u->end = 0;
}

void upstream_describe_access(const char *socket_path, char *buf, size_t size) {
        gid_t groups[64];
        int n = getgroups((int) ELEMENTSOF(groups), groups);
        struct stat st;
        size_t len;

        len = (size_t) snprintf(buf, size, "the proxy runs as uid %u, gid %u, groups", (unsigned) geteuid(),
                                (unsigned) getegid());
        for (int i = 0; i < n && len + 12 < size; i++)
                len += (size_t) snprintf(buf + len, size - len, "%s%u", i ? "," : " ", (unsigned) groups[i]);
        if (n <= 0 && len < size)
                len += (size_t) snprintf(buf + len, size - len, " (none)");
        if (len >= size)
                return;
        if (stat(socket_path, &st) >= 0) {
                struct group *g = getgrgid(st.st_gid);
                const char *group = g && g->gr_name ? g->gr_name : NULL;
                char gid[16];

                snprintf(gid, sizeof(gid), "%u", (unsigned) st.st_gid);
                snprintf(buf + len, size - len,
                         "; the socket belongs to uid %u, group %s (gid %u) with mode %04o; give the proxy that "
                         "group: SupplementaryGroups=%s in its service, or run it as a member of it",
                         (unsigned) st.st_uid, group ?: gid, (unsigned) st.st_gid, (unsigned) (st.st_mode & 07777),
                         group ?: gid);
        }
        else
                snprintf(buf + len, size - len, "; the socket's directory cannot be searched: %s", strerror(errno));
}

int upstream_probe(const char *socket_path, usec_t timeout) {
        Upstream u = UPSTREAM_NULL;
        int r = upstream_connect(&u, socket_path, timeout, false);
        upstream_done(&u);
        return r;
}
