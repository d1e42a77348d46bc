/* SPDX-License-Identifier: MIT */
/* The least a proxy can do, as a floor for the benchmark's latency figures: a thread per
 * client connection, with a connection of its own to the daemon's Unix socket, copying
 * bytes both ways as they come. No HTTP is parsed and nothing is checked; it is a measuring
 * rod, not a proxy. What it costs over a direct connection (two more wake-ups a request,
 * and the socket work on both sides) any proxy pays.
 *
 * Build: gcc -O2 -Wall -pthread -o relay bench/relay.c
 * Run:   relay PORT DAEMON-SOCKET   (listens on 127.0.0.1:PORT) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct sockaddr_un daemon_address = { .sun_family = AF_UNIX };

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t w = write(fd, p, n);
                if (w <= 0)
                        return -1;
                p += w;
                n -= (size_t) w;
        }
        return 0;
}

static void *relay(void *arg) {
        static __thread char buf[256 * 1024];
        int client = (int) (long) arg, daemon = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (daemon >= 0 && connect(daemon, (struct sockaddr *) &daemon_address, sizeof(daemon_address)) == 0)
                for (;;) {
                        struct pollfd p[2] = { { .fd = client, .events = POLLIN }, { .fd = daemon, .events = POLLIN } };
                        int done = 0;

                        if (poll(p, 2, -1) < 0)
                                break;
                        for (int i = 0; i < 2 && !done; i++) {
                                ssize_t n;

                                if (!p[i].revents)
                                        continue;
                                n = read(p[i].fd, buf, sizeof(buf));
                                done = n <= 0 || write_all(p[1 - i].fd, buf, (size_t) n) < 0;
                        }
                        if (done)
                                break;
                }
        close(client);
        if (daemon >= 0)
                close(daemon);
        return NULL;
}

int main(int argc, char **argv) {
        struct sockaddr_in a = { .sin_family = AF_INET };
        int one = 1, l;

        if (argc != 3 || strlen(argv[2]) >= sizeof(daemon_address.sun_path)) {
                fprintf(stderr, "usage: relay PORT DAEMON-SOCKET\n");
                return 2;
        }
        a.sin_port = htons((uint16_t) atoi(argv[1]));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        strcpy(daemon_address.sun_path, argv[2]);
        l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(l, (struct sockaddr *) &a, sizeof(a)) < 0 || listen(l, 512) < 0) {
                perror("relay: listen");
                return 1;
        }
        for (;;) {
                int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
                pthread_attr_t attr;
                pthread_t t;

                if (c < 0)
                        continue;
                (void) setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                pthread_attr_init(&attr);
                pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
                if (pthread_create(&t, &attr, relay, (void *) (long) c) != 0)
                        close(c);
                pthread_attr_destroy(&attr);
        }
}
