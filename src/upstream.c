/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <grp.h>
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
        char path[108];
} idle[IDLE_MAX];
static size_t n_idle;
static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;

/* Takes entry i out, under idle_lock. A loop, not memmove(): with _FORTIFY_SOURCE glibc's
 * __memmove_chk is the code of __memcpy_chk, and valgrind 3.19 reports the overlap that
 * memmove() is for as an error. */
static void idle_remove(size_t i) {
        for (size_t j = i + 1; j < n_idle; j++)
                idle[j - 1] = idle[j];
        n_idle--;
}

/* A connection the daemon closed while idle was dropped then (upstream_drop_idle); one it
 * closes just as it is taken shows up as a failed send (upstream_stale). The most recent
 * first; ones to another socket (before a reload changed SOCKET_PATH) are left to expire. */
static int take_idle(const char *socket_path) {
        int fd = -EBADF;

        pthread_mutex_lock(&idle_lock);
        for (size_t i = n_idle; i > 0; i--)
                if (streq(idle[i - 1].path, socket_path)) {
                        fd = idle[i - 1].fd;
                        idle_remove(i - 1);
                        break;
                }
        pthread_mutex_unlock(&idle_lock);
        return fd;
}

int upstream_release(Upstream *u, const char *socket_path) {
        bool keep = u->fd >= 0 && u->body_done && u->start == u->end && u->body_mode != BODY_UNTIL_CLOSE &&
                u->head.status != 101 && !u->head.connection_close && strlen(socket_path) < sizeof(idle[0].path);
        int kept = -EBADF;

        if (keep) {
                pthread_mutex_lock(&idle_lock);
                if (n_idle < IDLE_MAX) {
                        kept = idle[n_idle].fd = TAKE_FD(u->fd);
                        idle[n_idle].since = now_coarse_usec();
                        strcpy(idle[n_idle].path, socket_path);
                        n_idle++;
                }
                pthread_mutex_unlock(&idle_lock);
        }
        upstream_done(u);
        return kept;
}

bool upstream_drop_idle(int fd) {
        bool found = false;

        pthread_mutex_lock(&idle_lock);
        for (size_t i = 0; i < n_idle; i++)
                if (idle[i].fd == fd) {
                        safe_close(fd);
                        idle_remove(i);
                        found = true;
                        break;
                }
        pthread_mutex_unlock(&idle_lock);
        return found;
}

unsigned upstream_expire_idle(usec_t max_idle, void (*closing)(int fd, void *userdata), void *userdata) {
        usec_t now = now_coarse_usec();
        unsigned closed = 0;
        size_t kept = 0;

        pthread_mutex_lock(&idle_lock);
        /* Oldest first: the ones at the bottom of the stack. */
        for (size_t i = 0; i < n_idle; i++) {
                if (now - idle[i].since >= max_idle) {
                        if (closing)
                                closing(idle[i].fd, userdata);
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

/* Read buffers that no request holds, kept for the next ones: a 64 KiB malloc() and free()
 * per request cost more than the rest of its bookkeeping, and with many requests in flight
 * the allocator also merges and splits those chunks each time. As many are kept as were in
 * use at once, up to SPARE_BUFFERS_MAX; upstream_trim_buffers() frees the ones that no
 * request needed since it last ran. The most recently used is taken first: its pages are
 * the likeliest to be in the cache. */
#define SPARE_BUFFERS_MAX 64U

static struct {
        char *buf[SPARE_BUFFERS_MAX];
        size_t n;
        size_t low_water; /* the fewest spares since the last trim: that many were not needed */
} spare;
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;

static char *buffer_take(void) {
        char *b = NULL;

        pthread_mutex_lock(&spare_lock);
        if (spare.n > 0) {
                b = spare.buf[--spare.n];
                spare.low_water = MIN(spare.low_water, spare.n);
        }
        pthread_mutex_unlock(&spare_lock);
        return b ?: malloc(UPSTREAM_BUFFER_SIZE);
}

static void buffer_give_back(char *b) {
        if (!b)
                return;
        pthread_mutex_lock(&spare_lock);
        if (spare.n < SPARE_BUFFERS_MAX)
                spare.buf[spare.n++] = TAKE_PTR(b);
        pthread_mutex_unlock(&spare_lock);
        free(b);
}

unsigned upstream_trim_buffers(bool all) {
        char *unused[SPARE_BUFFERS_MAX];
        size_t k;

        pthread_mutex_lock(&spare_lock);
        /* The least recently used sit at the bottom of the stack. */
        k = all ? spare.n : MIN(spare.low_water, spare.n);
        if (k > 0) {
                memcpy(unused, spare.buf, k * sizeof(char *));
                /* A loop, as in idle_remove(). */
                for (size_t j = k; j < spare.n; j++)
                        spare.buf[j - k] = spare.buf[j];
                spare.n -= k;
        }
        spare.low_water = spare.n;
        pthread_mutex_unlock(&spare_lock);

        for (size_t i = 0; i < k; i++)
                free(unused[i]);
        return (unsigned) k;
}

usec_t upstream_idle_deadline(usec_t max_idle) {
        usec_t deadline = USEC_INFINITY;

        pthread_mutex_lock(&idle_lock);
        for (size_t i = 0; i < n_idle; i++)
                deadline = MIN(deadline, usec_add(idle[i].since, max_idle));
        pthread_mutex_unlock(&idle_lock);
        return deadline;
}

int upstream_connect(Upstream *u, const char *socket_path, bool reuse) {
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
        if (reuse) {
                fd = take_idle(socket_path);
                if (fd >= 0) {
                        u->fd = TAKE_FD(fd);
                        u->reused = true;
                        return 0;
                }
        }

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* A Unix socket connects at once or not at all. */
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                if (errno == EAGAIN)
                        return -ECONNREFUSED; /* the daemon's backlog is full */
                return -errno;
        }
        u->fd = TAKE_FD(fd);
        return 0;
}

ssize_t upstream_send(Upstream *u, const struct iovec *iov, size_t n) {
        struct msghdr m = { .msg_iov = (struct iovec *) iov, .msg_iovlen = n };
        ssize_t k;

        do
                k = sendmsg(u->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (k < 0 && errno == EINTR);
        return k < 0 ? -errno : k;
}

/* Reads more bytes into the buffer, compacting it first. Returns bytes read, 0 at EOF,
 * -errno (-EAGAIN: none yet). */
static ssize_t fill(Upstream *u) {
        ssize_t n;

        if (u->start > 0) {
                memmove(u->buf, u->buf + u->start, u->end - u->start);
                u->end -= u->start;
                u->start = 0;
        }
        if (u->end >= UPSTREAM_BUFFER_SIZE)
                return -ENOBUFS;
        do
                n = recv(u->fd, u->buf + u->end, UPSTREAM_BUFFER_SIZE - u->end, MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        u->end += (size_t) n;
        return n;
}

int upstream_read_head(Upstream *u, const char *request_method) {
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

                n = fill(u);
                if (n == -ENOBUFS)
                        return -EBADMSG;
                if (n < 0)
                        return (int) n; /* -EAGAIN: not yet */
                if (n == 0)
                        return -ECONNRESET;
        }
}

ssize_t upstream_read_body(Upstream *u, char *out, size_t max) {
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

                        do
                                n = recv(u->fd, out, length ? (size_t) MIN((uint64_t) max, u->body_remaining) : max,
                                         MSG_DONTWAIT);
                        while (n < 0 && errno == EINTR);
                        if (n < 0)
                                return -errno; /* -EAGAIN: not yet */
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

                n = fill(u);
                if (n < 0)
                        return n; /* -EAGAIN: not yet */
                if (n == 0) {
                        if (u->body_mode == BODY_UNTIL_CLOSE) {
                                u->body_done = true;
                                return 0;
                        }
                        return -ECONNRESET;
                }
        }
}

bool upstream_body_buffered(Upstream *u, char **ret, size_t *ret_size) {
        ChunkedDecoder d = u->chunked;
        size_t at = u->start, out = u->start, consumed, size;
        const char *data;
        int r;

        if (u->body_mode != BODY_CHUNKED || u->body_done)
                return false;
        /* First only look: nothing changes unless the body's end is in the buffer. */
        for (;;) {
                r = chunked_decode(&d, u->buf + at, u->end - at, &consumed, &data, &size);
                if (r < 0 || r == CHUNKED_NEED_MORE || (consumed == 0 && r != CHUNKED_DONE))
                        return false;
                at += consumed;
                if (r == CHUNKED_DONE)
                        break;
        }
        /* Then decode in place: the payload moves toward the start, never past what is
         * still to be read. */
        d = u->chunked;
        at = u->start;
        for (;;) {
                r = chunked_decode(&d, u->buf + at, u->end - at, &consumed, &data, &size);
                if (r == CHUNKED_DATA && size > 0) {
                        memmove(u->buf + out, data, size);
                        out += size;
                }
                at += consumed;
                if (r != CHUNKED_DATA)
                        break;
        }
        *ret = u->buf + u->start;
        *ret_size = out - u->start;
        u->start = at;
        u->chunked = d;
        u->body_done = true;
        return true;
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

int upstream_probe(const char *socket_path) {
        Upstream u = UPSTREAM_NULL;
        int r = upstream_connect(&u, socket_path, false);
        upstream_done(&u);
        return r;
}
