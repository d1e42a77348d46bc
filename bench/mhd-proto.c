/* SPDX-License-Identifier: MIT */
/* Two bare libmicrohttpd proxies. They first answered one question: how much would an
 * event loop save against libmicrohttpd's thread per connection (bench/README.md, "Where
 * the proxy's cost is")? The loop now also runs in bench/run.sh as the floor at 1
 * connection for any proxy built on libmicrohttpd. Both forward GETs to a daemon's Unix
 * socket over kept connections and answer with the daemon's body and one header; no
 * policy, no checks. They differ only in how they wait:
 *
 *   thread  MHD_USE_THREAD_PER_CONNECTION: the connection's thread blocks in poll() on the
 *           daemon, as docker-socket-proxy did before it had a loop.
 *   loop    one thread: MHD with MHD_USE_EPOLL and no thread of its own, our epoll set
 *           holding MHD's and the daemon connections; a connection waiting on the daemon is
 *           suspended and resumed when its daemon connection becomes readable, as
 *           docker-socket-proxy does.
 *
 * Build: gcc -O2 -Wall -Wextra -o mhd-proto bench/mhd-proto.c -lmicrohttpd
 * Run:   mhd-proto thread|loop PORT DAEMON-SOCKET   (listens on 127.0.0.1:PORT)
 * A test rig, not a proxy: daemon answers must carry a Content-Length and fit in 64 KiB. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define ANSWER_MAX (64 * 1024)
#define IDLE_MAX 256

static const char *daemon_path;
static bool use_loop;
static int loop_epoll = -1;
static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER;
static int idle[IDLE_MAX], n_idle;

typedef struct Request {
        struct MHD_Connection *connection;
        int fd;          /* the daemon connection */
        bool sent;
        bool in_epoll;
        size_t n;
        char answer[ANSWER_MAX];
} Request;

static int daemon_connect(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        pthread_mutex_lock(&idle_lock);
        if (n_idle > 0) {
                fd = idle[--n_idle];
                pthread_mutex_unlock(&idle_lock);
                return fd;
        }
        pthread_mutex_unlock(&idle_lock);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (use_loop ? SOCK_NONBLOCK : 0), 0);
        if (fd < 0)
                return -1;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", daemon_path);
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

/* Whether the whole answer is in: then its head's and body's sizes. */
static bool answer_complete(const Request *r, size_t *head_size, size_t *body_size) {
        const char *end = memmem(r->answer, r->n, "\r\n\r\n", 4), *cl;

        if (!end)
                return false;
        *head_size = (size_t) (end - r->answer) + 4;
        cl = memmem(r->answer, *head_size, "Content-Length: ", 16);
        *body_size = cl ? strtoul(cl + 16, NULL, 10) : 0;
        return r->n >= *head_size + *body_size;
}

static enum MHD_Result respond(Request *r, size_t head_size, size_t body_size) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(body_size, r->answer + head_size,
                                                                    MHD_RESPMEM_MUST_COPY);
        enum MHD_Result ret;

        if (!resp)
                return MHD_NO;
        (void) MHD_add_response_header(resp, "Content-Type", "application/json");
        ret = MHD_queue_response(r->connection, 200, resp);
        MHD_destroy_response(resp);
        return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        Request *r = *con_cls;
        size_t head_size, body_size;

        (void) cls, (void) version, (void) upload_data, (void) upload_data_size;
        if (!r) {
                r = malloc(sizeof(Request));
                if (!r)
                        return MHD_NO;
                *r = (Request) { .connection = c, .fd = -1 };
                *con_cls = r;
                return MHD_YES;
        }
        if (!r->sent) {
                char head[1024];
                int n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: docker\r\n\r\n", method, url);

                r->fd = daemon_connect();
                if (r->fd < 0 || n >= (int) sizeof(head) || send(r->fd, head, (size_t) n, MSG_NOSIGNAL) != n)
                        return MHD_NO;
                r->sent = true;
        }
        for (;;) {
                ssize_t k = recv(r->fd, r->answer + r->n, sizeof(r->answer) - r->n, MSG_DONTWAIT);

                if (k > 0) {
                        r->n += (size_t) k;
                        if (answer_complete(r, &head_size, &body_size))
                                return respond(r, head_size, body_size);
                        if (r->n == sizeof(r->answer))
                                return MHD_NO;
                        continue;
                }
                if (k == 0 || errno != EAGAIN)
                        return MHD_NO;
                if (!use_loop) {
                        struct pollfd p = { .fd = r->fd, .events = POLLIN };
                        (void) poll(&p, 1, -1);
                        continue;
                }
                /* Wait for the daemon outside MHD: its readiness resumes this connection. */
                struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.ptr = r };
                if (epoll_ctl(loop_epoll, r->in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, r->fd, &ev) < 0)
                        return MHD_NO;
                r->in_epoll = true;
                MHD_suspend_connection(c);
                return MHD_YES;
        }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
        Request *r = *con_cls;

        (void) cls, (void) c;
        if (!r)
                return;
        if (r->fd >= 0) {
                if (r->in_epoll)
                        (void) epoll_ctl(loop_epoll, EPOLL_CTL_DEL, r->fd, NULL);
                pthread_mutex_lock(&idle_lock);
                if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && n_idle < IDLE_MAX)
                        idle[n_idle++] = r->fd;
                else
                        close(r->fd);
                pthread_mutex_unlock(&idle_lock);
        }
        free(r);
        *con_cls = NULL;
}

static int run_loop(struct MHD_Daemon *d) {
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD);
        struct epoll_event mhd = { .events = EPOLLIN, .data.ptr = NULL }, events[64];

        if (!info || epoll_ctl(loop_epoll, EPOLL_CTL_ADD, info->epoll_fd, &mhd) < 0)
                return 1;
        for (;;) {
                MHD_UNSIGNED_LONG_LONG timeout;
                int n = epoll_wait(loop_epoll, events, 64,
                                   MHD_get_timeout(d, &timeout) == MHD_YES ? (int) timeout : -1);

                for (int i = 0; i < n; i++) {
                        Request *r = events[i].data.ptr;
                        if (r)
                                MHD_resume_connection(r->connection);
                }
                if (MHD_run(d) != MHD_YES)
                        return 1;
        }
}

int main(int argc, char *argv[]) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        struct MHD_Daemon *d;
        int one = 1, listen_fd;

        if (argc != 4 || (strcmp(argv[1], "thread") != 0 && strcmp(argv[1], "loop") != 0)) {
                fprintf(stderr, "usage: %s thread|loop PORT DAEMON-SOCKET\n", argv[0]);
                return 2;
        }
        use_loop = strcmp(argv[1], "loop") == 0;
        daemon_path = argv[3];
        sa.sin_port = htons((uint16_t) atoi(argv[2]));
        listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (listen_fd < 0 || setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(listen_fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(listen_fd, 128) < 0) {
                perror("listen");
                return 1;
        }
        if (use_loop) {
                loop_epoll = epoll_create1(EPOLL_CLOEXEC);
                if (loop_epoll < 0)
                        return 1;
        }
        d = MHD_start_daemon(use_loop ? MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO | MHD_USE_ERROR_LOG
                                      : MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                                MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG,
                             0, NULL, NULL, on_request, NULL,
                             MHD_OPTION_LISTEN_SOCKET, (MHD_socket) listen_fd,
                             MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                             /* docker-socket-proxy's pool with its default header limit */
                             MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) (40 * 1024),
                             MHD_OPTION_END);
        if (!d) {
                fprintf(stderr, "libmicrohttpd did not start\n");
                return 1;
        }
        if (use_loop)
                return run_loop(d);
        for (;;)
                pause();
}
