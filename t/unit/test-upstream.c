/* SPDX-License-Identifier: MIT */
/* What upstream.c keeps between requests: spare read buffers (reused most recent first,
 * trimmed once no request needed them for a whole check interval) and idle daemon
 * connections (taken back for the same socket only, closed when they expire). A listening
 * Unix socket in a temporary directory stands in for the daemon: nothing is sent. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fd-util.h"
#include "tap.h"
#include "upstream.h"

static char dir[] = "/tmp/test-upstream-XXXXXX";
static char path[sizeof(dir) + 16], other_path[sizeof(dir) + 16];

static int listen_at(const char *p) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                bail("socket: %m");
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p);
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 64) < 0)
                bail("bind/listen %s: %m", p);
        return fd;
}

/* A response read to its end: what upstream_release() keeps. */
static void finish_cleanly(Upstream *u) {
        u->head.status = 200;
        u->head.connection_close = false;
        u->body_mode = BODY_LENGTH;
        u->body_done = true;
        u->start = u->end = 0;
}

static void test_spare_buffers(void) {
        Upstream u[4];
        char *first;

        for (size_t i = 0; i < 4; i++) {
                u[i] = UPSTREAM_NULL;
                if (upstream_connect(&u[i], path, false) < 0)
                        bail("connect: %m");
        }
        ok(u[0].buf && u[1].buf && u[0].buf != u[1].buf, "requests in flight at once each have a buffer");
        first = u[3].buf;
        for (size_t i = 0; i < 4; i++)
                upstream_done(&u[i]);
        ok(!u[0].buf && u[0].fd < 0, "upstream_done gives back the buffer and closes the connection");

        u[0] = UPSTREAM_NULL;
        (void) upstream_connect(&u[0], path, false);
        is_int(1, u[0].buf == first, "the buffer given back last is taken first");
        upstream_done(&u[0]);

        /* All four were in use during this interval: none is freed yet. */
        is_int(0, upstream_trim_buffers(false), "a trim right after four requests at once frees none");
        u[0] = u[1] = UPSTREAM_NULL;
        (void) upstream_connect(&u[0], path, false);
        (void) upstream_connect(&u[1], path, false);
        upstream_done(&u[0]);
        upstream_done(&u[1]);
        is_int(2, upstream_trim_buffers(false), "the next trim frees the two that no request took meanwhile");
        is_int(2, upstream_trim_buffers(false), "then the two that were used, once a whole interval passed without them");
        is_int(0, upstream_trim_buffers(false), "nothing is left to free");

        /* Three spares, of which a trim frees the one at the bottom: the other two move down. */
        for (size_t i = 0; i < 3; i++) {
                u[i] = UPSTREAM_NULL;
                (void) upstream_connect(&u[i], path, false);
        }
        for (size_t i = 0; i < 3; i++)
                upstream_done(&u[i]);
        (void) upstream_trim_buffers(false);
        u[0] = u[1] = UPSTREAM_NULL;
        (void) upstream_connect(&u[0], path, false);
        (void) upstream_connect(&u[1], path, false);
        first = u[0].buf;
        upstream_done(&u[1]);
        upstream_done(&u[0]);
        is_int(1, upstream_trim_buffers(false), "a trim frees the one spare that no request took");
        u[0] = UPSTREAM_NULL;
        (void) upstream_connect(&u[0], path, false);
        is_int(1, u[0].buf == first, "and keeps the others, the last given back on top");
        upstream_done(&u[0]);
        is_int(2, upstream_trim_buffers(true), "trimming all frees the two kept");

        u[0] = UPSTREAM_NULL;
        (void) upstream_connect(&u[0], path, false);
        upstream_done(&u[0]);
        is_int(1, upstream_trim_buffers(true), "trimming all frees a spare that was just used");
}

static void test_idle_connections(void) {
        Upstream u = UPSTREAM_NULL, v = UPSTREAM_NULL;
        int kept, fd;

        (void) upstream_connect(&u, path, true);
        ok(!u.reused, "with nothing kept, a new connection is made");
        fd = u.fd;
        finish_cleanly(&u);
        kept = upstream_release(&u, path);
        is_int(fd, kept, "a connection whose response ended cleanly is kept");

        (void) upstream_connect(&v, other_path, true);
        ok(!v.reused && v.fd != fd, "a request to another socket does not take it");
        upstream_done(&v);

        v = UPSTREAM_NULL;
        (void) upstream_connect(&v, path, true);
        ok(v.reused && v.fd == fd, "the next request to the same socket does");
        v.head.connection_close = true;
        v.body_mode = BODY_LENGTH;
        v.body_done = true;
        is_int(-EBADF, upstream_release(&v, path), "one the daemon said it closes is not kept");

        ok(upstream_idle_deadline(USEC_PER_SEC) == USEC_INFINITY, "with nothing kept, no expiry is due");
        u = UPSTREAM_NULL;
        (void) upstream_connect(&u, path, true);
        finish_cleanly(&u);
        {
                usec_t before = now_coarse_usec(), deadline;

                (void) upstream_release(&u, path);
                deadline = upstream_idle_deadline(60 * USEC_PER_SEC);
                ok(deadline >= before + 60 * USEC_PER_SEC && deadline <= now_coarse_usec() + 60 * USEC_PER_SEC,
                   "a kept connection is due to close its idle time after it was kept");
                ok(upstream_idle_deadline(USEC_INFINITY) == USEC_INFINITY, "an endless idle time never falls due");
        }
        is_int(0, upstream_expire_idle(USEC_PER_SEC * 60, NULL, NULL), "a kept connection younger than the limit stays");
        is_int(1, upstream_expire_idle(0, NULL, NULL), "one at the limit is closed");
        ok(upstream_idle_deadline(USEC_PER_SEC) == USEC_INFINITY, "once it is closed, no expiry is due");

        /* Three kept; the oldest is dropped (the daemon closed it): the others stay, in order. */
        {
                Upstream w[3];
                int fds[3];

                for (size_t i = 0; i < 3; i++) {
                        w[i] = UPSTREAM_NULL;
                        (void) upstream_connect(&w[i], path, false);
                        finish_cleanly(&w[i]);
                }
                for (size_t i = 0; i < 3; i++)
                        fds[i] = upstream_release(&w[i], path);
                ok(upstream_drop_idle(fds[0]), "the oldest kept connection is dropped when the daemon closes it");
                for (size_t i = 3; i > 1; i--) {
                        w[0] = UPSTREAM_NULL;
                        (void) upstream_connect(&w[0], path, true);
                        is_int(fds[i - 1], w[0].fd, "the kept connections left are taken, the most recent first");
                        upstream_done(&w[0]);
                }
        }
        (void) upstream_trim_buffers(true);
}

int main(void) {
        _cleanup_close_ int l1 = -EBADF, l2 = -EBADF;

        plan_lazy();
        if (!mkdtemp(dir))
                bail("mkdtemp: %m");
        snprintf(path, sizeof(path), "%s/a.sock", dir);
        snprintf(other_path, sizeof(other_path), "%s/b.sock", dir);
        l1 = listen_at(path);
        l2 = listen_at(other_path);

        test_spare_buffers();
        test_idle_connections();

        (void) unlink(path);
        (void) unlink(other_path);
        (void) rmdir(dir);
        return 0;
}
