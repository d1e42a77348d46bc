/* SPDX-License-Identifier: MIT */
/*
 * The benchmark's small C helper: a stand-in for the Docker endpoints nginx cannot serve, and
 * the clients that measure them. Built by bench/run.sh; not part of the proxy.
 *
 *   standin serve UNIX_PATH [TCP_PORT]
 *       A "daemon" on a Unix socket (and on 127.0.0.1:TCP_PORT, for the direct figures), one
 *       thread per connection:
 *         POST /exec/ID/start with "Upgrade: tcp"  -> "HTTP/1.1 101 UPGRADED", then echoes bytes,
 *                                                     half-close passed back (like docker exec)
 *         POST /containers/ID/attach             -> the same, without a body (docker attach, run -i)
 *         (either without "Upgrade": "200 OK" and the connection taken over, as the daemon does)
 *         GET  /events?bench_interval=MS&bench_count=N&bench_first=MS
 *                                                  -> a chunked stream: the head at once (with
 *                                                     X-Bench-Stamp-Ns), then one Docker-shaped
 *                                                     event every MS, each stamped with the
 *                                                     CLOCK_MONOTONIC time of its write
 *   standin tunnel ADDR MIB [exec|attach]
 *       exec start (or attach) through ADDR, then MIB MiB each way at once; prints "mb_s=..."
 *   standin events ADDR COUNT INTERVAL_MS
 *       one /events stream; prints how long the head and each event took from the stand-in's
 *       write to our read: "head_ms=.. first_ms=.. p50_ms=.. p99_ms=.. max_ms=.. n=.."
 *   standin streams ADDR N HOLD_S PID
 *       N /events streams at once; once all have delivered an event, holds them HOLD_S seconds,
 *       reads PID's VmRSS, and prints "open=.. delivering=.. rss_kib=.. threads=.."
 *   standin ttfb ADDR PATH
 *       milliseconds from connect() to the first byte of the response: "ms=.. status=.."
 *
 * ADDR is unix:/path or tcp:HOST:PORT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define ECHO_BUFFER (256U * 1024U)
#define STAMP_MARK "\"benchMonoNs\":"

static uint64_t mono_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static uint64_t real_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

static void die(const char *what) {
        fprintf(stderr, "standin: %s: %s\n", what, strerror(errno));
        exit(1);
}

static int send_all(int fd, const void *p, size_t n) {
        const char *c = p;
        while (n > 0) {
                ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -1;
                }
                c += k;
                n -= (size_t) k;
        }
        return 0;
}

static int connect_addr(const char *addr) {
        int fd;

        if (strncmp(addr, "unix:", 5) == 0) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", addr + 5);
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return -1;
                if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                        close(fd);
                        return -1;
                }
                return fd;
        }
        if (strncmp(addr, "tcp:", 4) == 0)
                addr += 4;
        char host[256];
        snprintf(host, sizeof(host), "%s", addr);
        char *colon = strrchr(host, ':');
        if (!colon) {
                errno = EINVAL;
                return -1;
        }
        *colon = '\0';
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t) atoi(colon + 1)) };
        if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
                errno = EINVAL;
                return -1;
        }
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        int one = 1;
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, (struct sockaddr *) &sin, sizeof(sin)) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

/* Reads a head (up to the blank line) into buf; returns its length, with any bytes after it
 * left in buf[head..*len). -1 on EOF or error. */
static ssize_t read_head(int fd, char *buf, size_t size, size_t *len) {
        for (;;) {
                char *end = memmem(buf, *len, "\r\n\r\n", 4);
                if (end)
                        return end + 4 - buf;
                if (*len >= size)
                        return -1;
                ssize_t n = recv(fd, buf + *len, size - *len, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return -1;
                *len += (size_t) n;
        }
}

static const char *header_value(const char *head, size_t head_len, const char *name, size_t *vlen) {
        size_t nl = strlen(name);
        const char *p = memmem(head, head_len, "\r\n", 2), *end = head + head_len;

        while (p && p + 2 < end) {
                p += 2;
                const char *eol = memmem(p, (size_t) (end - p), "\r\n", 2);
                if (!eol || eol == p)
                        return NULL;
                if ((size_t) (eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
                        const char *v = p + nl + 1;
                        while (v < eol && (*v == ' ' || *v == '\t'))
                                v++;
                        *vlen = (size_t) (eol - v);
                        return v;
                }
                p = eol;
        }
        return NULL;
}

static long query_long(const char *target, const char *key, long def) {
        const char *q = strchr(target, '?');
        size_t kl = strlen(key);

        while (q) {
                q++;
                if (strncmp(q, key, kl) == 0 && q[kl] == '=')
                        return strtol(q + kl + 1, NULL, 10);
                q = strchr(q, '&');
        }
        return def;
}

/* ---- the daemon stand-in ---- */

static const char DOCKER_HEADERS[] =
        "Api-Version: 1.43\r\n"
        "Docker-Experimental: false\r\n"
        "Ostype: linux\r\n"
        "Server: Docker/24.0.7 (linux)\r\n";

/* As the daemon does it: 101 when the client asked to upgrade, else 200 and the connection is
 * taken over all the same (the old hijack). Then the "process" echoes its stdin. */
static void serve_exec(int fd, bool upgrade, const char *rest, size_t rest_len) {
        static const char up[] = "HTTP/1.1 101 UPGRADED\r\n"
                                 "Content-Type: application/vnd.docker.raw-stream\r\n"
                                 "Connection: Upgrade\r\n"
                                 "Upgrade: tcp\r\n"
                                 "\r\n";
        static const char hijack[] = "HTTP/1.1 200 OK\r\n"
                                     "Content-Type: application/vnd.docker.raw-stream\r\n"
                                     "\r\n";
        char *buf = malloc(ECHO_BUFFER);

        if (!buf || (upgrade ? send_all(fd, up, sizeof(up) - 1) : send_all(fd, hijack, sizeof(hijack) - 1)) < 0)
                goto out;
        if (rest_len > 0 && send_all(fd, rest, rest_len) < 0)
                goto out;
        for (;;) {
                ssize_t n = recv(fd, buf, ECHO_BUFFER, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                if (send_all(fd, buf, (size_t) n) < 0)
                        goto out;
        }
        (void) shutdown(fd, SHUT_WR); /* stdin's end ends the "process": its output ends too */
        /* Wait for the client's close so that it reads everything we sent. */
        while (recv(fd, buf, ECHO_BUFFER, 0) > 0)
                ;
out:
        free(buf);
}

static void serve_events(int fd, const char *target) {
        long interval = query_long(target, "bench_interval", 1000);
        long count = query_long(target, "bench_count", 0);
        long first = query_long(target, "bench_first", interval);
        char head[512], chunk[1024];
        int n;

        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 200 OK\r\n%sContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                     "X-Bench-Stamp-Ns: %" PRIu64 "\r\n\r\n",
                     DOCKER_HEADERS, mono_ns());
        if (send_all(fd, head, (size_t) n) < 0)
                return;

        uint64_t next = mono_ns() + (uint64_t) first * 1000000ULL;
        for (long i = 0; count == 0 || i < count; i++) {
                for (;;) {
                        uint64_t now = mono_ns();
                        if (now >= next)
                                break;
                        struct pollfd p = { .fd = fd, .events = POLLIN };
                        int r = poll(&p, 1, (int) ((next - now + 999999) / 1000000));
                        if (r > 0) {
                                char junk[256];
                                if (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) <= 0)
                                        return; /* the client went away */
                        }
                }
                uint64_t rt = real_ns();
                char body[768];
                int b = snprintf(body, sizeof(body),
                                 "{\"status\":\"start\",\"id\":\"4f0c2a7e9b1d3c5e7f9a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d%03ld\","
                                 "\"from\":\"nginx:1.25-alpine\",\"Type\":\"container\",\"Action\":\"start\","
                                 "\"Actor\":{\"ID\":\"4f0c2a7e9b1d3c5e7f9a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d%03ld\","
                                 "\"Attributes\":{\"image\":\"nginx:1.25-alpine\",\"name\":\"web-%ld\","
                                 "\"com.docker.compose.project\":\"bench\"}},\"scope\":\"local\","
                                 "\"time\":%" PRIu64 ",\"timeNano\":%" PRIu64 "," STAMP_MARK "%" PRIu64 "}\n",
                                 i % 1000, i % 1000, i, rt / UINT64_C(1000000000), rt, mono_ns());
                n = snprintf(chunk, sizeof(chunk), "%x\r\n%.*s\r\n", b, b, body);
                if (send_all(fd, chunk, (size_t) n) < 0)
                        return;
                next += (uint64_t) interval * 1000000ULL;
        }
        (void) send_all(fd, "0\r\n\r\n", 5);
}

static void *serve_connection(void *arg) {
        int fd = (int) (intptr_t) arg;
        char buf[16384];
        size_t len = 0;

        for (;;) {
                ssize_t head_len = read_head(fd, buf, sizeof(buf) - 1, &len);
                if (head_len < 0)
                        break;
                char method[16] = "", target[2048] = "";
                if (sscanf(buf, "%15s %2047s", method, target) != 2)
                        break;
                size_t vlen = 0;
                const char *v = header_value(buf, (size_t) head_len, "Content-Length", &vlen);
                size_t body = v ? (size_t) strtoull(v, NULL, 10) : 0;
                bool upgrade = header_value(buf, (size_t) head_len, "Upgrade", &vlen) != NULL;
                v = header_value(buf, (size_t) head_len, "Connection", &vlen);
                bool close_after = v && vlen >= 5 && strncasecmp(v, "close", 5) == 0;

                /* The body: what came with the head, then the rest. */
                size_t have = len - (size_t) head_len;
                size_t take = have < body ? have : body;
                size_t left = body - take;
                while (left > 0) {
                        char junk[4096];
                        ssize_t n = recv(fd, junk, left < sizeof(junk) ? left : sizeof(junk), 0);
                        if (n <= 0)
                                goto out;
                        left -= (size_t) n;
                }
                const char *rest = buf + head_len + take;
                size_t rest_len = have - take;

                const char *path = target;
                if (strncmp(path, "/v1.", 4) == 0 && strchr(path + 1, '/'))
                        path = strchr(path + 1, '/');

                size_t pl = strcspn(path, "?");
                if (strcmp(method, "POST") == 0 &&
                    ((strncmp(path, "/exec/", 6) == 0 && pl > 12 && strncmp(path + pl - 6, "/start", 6) == 0) ||
                     (strncmp(path, "/containers/", 12) == 0 && pl > 19 && strncmp(path + pl - 7, "/attach", 7) == 0))) {
                        serve_exec(fd, upgrade, rest, rest_len);
                        break;
                }
                if (strcmp(method, "GET") == 0 && strncmp(path, "/events", 7) == 0 &&
                    (path[7] == '\0' || path[7] == '?')) {
                        serve_events(fd, target);
                        if (close_after)
                                break;
                } else {
                        static const char nf[] = "{\"message\":\"page not found\"}\n";
                        char head[512];
                        int n = snprintf(head, sizeof(head),
                                         "HTTP/1.1 404 Not Found\r\n%sContent-Type: application/json\r\n"
                                         "Content-Length: %zu\r\n\r\n%s",
                                         DOCKER_HEADERS, sizeof(nf) - 1, nf);
                        if (send_all(fd, head, (size_t) n) < 0 || close_after)
                                break;
                }
                memmove(buf, rest, rest_len);
                len = rest_len;
        }
out:
        close(fd);
        return NULL;
}

static int cmd_serve(const char *path, int tcp_port) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct pollfd p[2] = { { .fd = -1, .events = POLLIN }, { .fd = -1, .events = POLLIN } };
        pthread_attr_t attr;

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        (void) unlink(path);
        p[0].fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (p[0].fd < 0 || bind(p[0].fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(p[0].fd, 4096) < 0)
                die(path);
        if (tcp_port > 0) {
                struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t) tcp_port),
                                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                int one = 1;
                p[1].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (p[1].fd < 0)
                        die("socket");
                (void) setsockopt(p[1].fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                if (bind(p[1].fd, (struct sockaddr *) &sin, sizeof(sin)) < 0 || listen(p[1].fd, 4096) < 0)
                        die("tcp listener");
        }
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 128U * 1024U);
        for (;;) {
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        die("poll");
                }
                for (int i = 0; i < 2; i++) {
                        if (!(p[i].revents & POLLIN))
                                continue;
                        int c = accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC);
                        pthread_t t;
                        if (c < 0) {
                                if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == EAGAIN)
                                        continue;
                                die("accept");
                        }
                        if (i == 1) {
                                int one = 1;
                                (void) setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                        }
                        if (pthread_create(&t, &attr, serve_connection, (void *) (intptr_t) c) != 0)
                                close(c);
                }
        }
        return 0;
}

/* ---- clients ---- */

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

typedef struct Writer {
        int fd;
        uint64_t total;
} Writer;

static void *tunnel_writer(void *arg) {
        Writer *w = arg;
        char *buf = malloc(ECHO_BUFFER);
        uint64_t sent = 0;

        memset(buf, 'x', ECHO_BUFFER);
        while (sent < w->total) {
                size_t n = w->total - sent < ECHO_BUFFER ? (size_t) (w->total - sent) : ECHO_BUFFER;
                if (send_all(w->fd, buf, n) < 0)
                        die("tunnel send");
                sent += n;
        }
        (void) shutdown(w->fd, SHUT_WR);
        free(buf);
        return NULL;
}

static int cmd_tunnel(const char *addr, long mib, const char *kind) {
        static const char body[] = "{\"Detach\":false,\"Tty\":false}";
        char req[512], head[8192];
        size_t len = 0;
        int fd = connect_addr(addr), n;

        if (fd < 0)
                die(addr);
        if (strcmp(kind, "attach") == 0)
                /* docker attach / run -i: an upgrade without a body */
                n = snprintf(req, sizeof(req),
                             "POST /v1.43/containers/bench/attach?stdin=1&stdout=1&stderr=1&stream=1 HTTP/1.1\r\n"
                             "Host: docker\r\nUser-Agent: Docker-Client/24.0.7 (linux)\r\nContent-Length: 0\r\n"
                             "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n");
        else
                /* docker exec: the upgrade carries the exec start's JSON */
                n = snprintf(req, sizeof(req),
                             "POST /v1.43/exec/bench/start HTTP/1.1\r\nHost: docker\r\nUser-Agent: Docker-Client/24.0.7 (linux)\r\n"
                             "Content-Type: application/json\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                             "Content-Length: %zu\r\n\r\n%s",
                             sizeof(body) - 1, body);
        if (send_all(fd, req, (size_t) n) < 0)
                die("send");
        ssize_t hl = read_head(fd, head, sizeof(head), &len);
        if (hl < 0 || strncmp(head, "HTTP/1.1 101", 12) != 0) {
                char *eol = memchr(head, '\r', len);
                fprintf(stderr, "standin: no 101 from %s: %.*s\n", addr, (int) (eol ? eol - head : (ssize_t) len), head);
                printf("no-101 %.*s\n", (int) (eol ? eol - head : (ssize_t) len), head);
                return 1;
        }

        Writer w = { .fd = fd, .total = (uint64_t) mib << 20 };
        uint64_t got = len - (size_t) hl;
        char *buf = malloc(ECHO_BUFFER);
        pthread_t t;
        uint64_t t0 = mono_ns();

        pthread_create(&t, NULL, tunnel_writer, &w);
        for (;;) {
                ssize_t k = recv(fd, buf, ECHO_BUFFER, 0);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        die("tunnel recv");
                if (k == 0)
                        break;
                got += (uint64_t) k;
        }
        uint64_t t1 = mono_ns();
        pthread_join(t, NULL);
        close(fd);
        if (got != w.total) {
                fprintf(stderr, "standin: tunnel echoed %" PRIu64 " of %" PRIu64 " bytes\n", got, w.total);
                return 1;
        }
        printf("mb_s=%.1f bytes_each_way=%" PRIu64 " seconds=%.3f\n", (double) w.total / 1e6 / ((double) (t1 - t0) / 1e9),
               w.total, (double) (t1 - t0) / 1e9);
        return 0;
}

static bool parse_stamp(const char *p, const char *end, uint64_t *ret) {
        uint64_t v = 0;
        bool any = false;
        while (p < end && *p >= '0' && *p <= '9') {
                v = v * 10 + (uint64_t) (*p++ - '0');
                any = true;
        }
        if (!any || p >= end)
                return false; /* the number may continue in the next read */
        *ret = v;
        return true;
}

static int cmd_events(const char *addr, long count, long interval) {
        char req[512], buf[65536];
        size_t len = 0;
        uint64_t *lat = calloc((size_t) count + 1, sizeof(uint64_t));
        int fd = connect_addr(addr), n;

        if (fd < 0)
                die(addr);
        n = snprintf(req, sizeof(req),
                     "GET /v1.43/events?bench_interval=%ld&bench_count=%ld&bench_first=%ld HTTP/1.1\r\nHost: docker\r\n"
                     "User-Agent: Docker-Client/24.0.7 (linux)\r\n\r\n",
                     interval, count, interval);
        if (send_all(fd, req, (size_t) n) < 0)
                die("send");

        ssize_t hl = read_head(fd, buf, sizeof(buf), &len);
        uint64_t head_at = mono_ns();
        if (hl < 0 || strncmp(buf, "HTTP/1.1 200", 12) != 0) {
                fprintf(stderr, "standin: /events failed on %s\n", addr);
                return 1;
        }
        size_t vlen;
        const char *v = header_value(buf, (size_t) hl, "X-Bench-Stamp-Ns", &vlen);
        double head_ms = v ? (double) (head_at - strtoull(v, NULL, 10)) / 1e6 : -1;

        memmove(buf, buf + hl, len - (size_t) hl);
        len -= (size_t) hl;
        long got = 0;
        size_t scan = 0;
        while (got < count) {
                uint64_t now = mono_ns();
                for (;;) {
                        char *m = memmem(buf + scan, len - scan, STAMP_MARK, sizeof(STAMP_MARK) - 1);
                        uint64_t stamp;
                        if (!m || !parse_stamp(m + sizeof(STAMP_MARK) - 1, buf + len, &stamp))
                                break;
                        lat[got++] = now - stamp;
                        scan = (size_t) (m - buf) + sizeof(STAMP_MARK) - 1;
                        if (got >= count)
                                break;
                }
                if (got >= count)
                        break;
                if (len > sizeof(buf) / 2) {
                        size_t keep = len - scan;
                        memmove(buf, buf + scan, keep);
                        len = keep;
                        scan = 0;
                }
                ssize_t k = recv(fd, buf + len, sizeof(buf) - len, 0);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                len += (size_t) k;
        }
        close(fd);
        if (got == 0) {
                fprintf(stderr, "standin: no event arrived through %s\n", addr);
                return 1;
        }
        double first = (double) lat[0] / 1e6;
        qsort(lat, (size_t) got, sizeof(uint64_t), cmp_u64);
        printf("head_ms=%.3f first_ms=%.3f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f n=%ld\n", head_ms, first,
               (double) lat[got / 2] / 1e6, (double) lat[(got * 99) / 100 < got ? (got * 99) / 100 : got - 1] / 1e6,
               (double) lat[got - 1] / 1e6, got);
        free(lat);
        return 0;
}

static void read_status(long pid, long *rss_kib, long *threads) {
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%ld/status", pid);
        FILE *f = fopen(path, "re");
        *rss_kib = *threads = -1;
        if (!f)
                return;
        while (fgets(line, sizeof(line), f)) {
                if (strncmp(line, "VmRSS:", 6) == 0)
                        *rss_kib = strtol(line + 6, NULL, 10);
                else if (strncmp(line, "Threads:", 8) == 0)
                        *threads = strtol(line + 8, NULL, 10);
        }
        fclose(f);
}

typedef struct Stream {
        int fd;
        bool head;
        uint64_t events;
        uint64_t last; /* when the last bytes came */
} Stream;

static int cmd_streams(const char *addr, long n, long hold_s, long pid) {
        const long interval = 500;
        Stream *s = calloc((size_t) n, sizeof(Stream));
        int ep = epoll_create1(EPOLL_CLOEXEC);
        char req[512], buf[16384];
        int rl = snprintf(req, sizeof(req),
                          "GET /v1.43/events?bench_interval=%ld&bench_first=%ld HTTP/1.1\r\nHost: docker\r\n\r\n", interval,
                          interval);
        long opened = 0;

        for (long i = 0; i < n; i++) {
                s[i].fd = connect_addr(addr);
                if (s[i].fd < 0) {
                        fprintf(stderr, "standin: stream %ld: connect: %s\n", i, strerror(errno));
                        break;
                }
                if (send_all(s[i].fd, req, (size_t) rl) < 0)
                        die("send");
                struct epoll_event e = { .events = EPOLLIN, .data.u64 = (uint64_t) i };
                epoll_ctl(ep, EPOLL_CTL_ADD, s[i].fd, &e);
                opened++;
        }

        uint64_t start = mono_ns(), all_at = 0, deadline = start + 30ULL * 1000000000ULL;
        long rss = -1, threads = -1;
        for (;;) {
                uint64_t now = mono_ns();
                if (now >= deadline)
                        break;
                struct epoll_event ev[256];
                int k = epoll_wait(ep, ev, 256, 100);
                now = mono_ns();
                for (int j = 0; j < k; j++) {
                        Stream *t = &s[ev[j].data.u64];
                        ssize_t r = recv(t->fd, buf, sizeof(buf), MSG_DONTWAIT);
                        if (r <= 0) {
                                epoll_ctl(ep, EPOLL_CTL_DEL, t->fd, NULL);
                                continue;
                        }
                        if (!t->head && memmem(buf, (size_t) r, "HTTP/1.1 200", 12))
                                t->head = true;
                        if (memmem(buf, (size_t) r, STAMP_MARK, sizeof(STAMP_MARK) - 1)) {
                                t->events++;
                                t->last = now;
                        }
                }
                if (!all_at) {
                        long ready = 0;
                        for (long i = 0; i < opened; i++)
                                ready += s[i].events > 0;
                        if (ready == opened) {
                                all_at = now;
                                deadline = now + (uint64_t) hold_s * 1000000000ULL;
                        }
                }
        }
        read_status(pid, &rss, &threads);
        uint64_t end = mono_ns();
        long delivering = 0;
        for (long i = 0; i < opened; i++)
                delivering += s[i].events > 0 && end - s[i].last < (uint64_t) interval * 3 * 1000000ULL;
        printf("open=%ld delivering=%ld rss_kib=%ld threads=%ld setup_s=%.2f\n", opened, delivering, rss, threads,
               all_at ? (double) (all_at - start) / 1e9 : -1.0);
        for (long i = 0; i < opened; i++)
                close(s[i].fd);
        return 0;
}

static int cmd_ttfb(const char *addr, const char *path) {
        char req[512], b[64];
        uint64_t t0 = mono_ns();
        int fd = connect_addr(addr);

        if (fd < 0)
                die(addr);
        int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n", path);
        if (send_all(fd, req, (size_t) n) < 0)
                die("send");
        ssize_t k = recv(fd, b, sizeof(b) - 1, 0);
        uint64_t t1 = mono_ns();
        if (k <= 0) {
                fprintf(stderr, "standin: no answer from %s\n", addr);
                return 1;
        }
        b[k] = '\0';
        printf("ms=%.3f status=%.3s\n", (double) (t1 - t0) / 1e6, k > 12 ? b + 9 : "???");
        close(fd);
        return 0;
}

int main(int argc, char **argv) {
        signal(SIGPIPE, SIG_IGN);
        if ((argc == 3 || argc == 4) && strcmp(argv[1], "serve") == 0)
                return cmd_serve(argv[2], argc == 4 ? atoi(argv[3]) : 0);
        if ((argc == 4 || argc == 5) && strcmp(argv[1], "tunnel") == 0)
                return cmd_tunnel(argv[2], atol(argv[3]), argc == 5 ? argv[4] : "exec");
        if (argc == 5 && strcmp(argv[1], "events") == 0)
                return cmd_events(argv[2], atol(argv[3]), atol(argv[4]));
        if (argc == 6 && strcmp(argv[1], "streams") == 0)
                return cmd_streams(argv[2], atol(argv[3]), atol(argv[4]), atol(argv[5]));
        if (argc == 4 && strcmp(argv[1], "ttfb") == 0)
                return cmd_ttfb(argv[2], argv[3]);
        fprintf(stderr, "usage: see the comment at the top of bench/standin.c\n");
        return 2;
}
