/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "client-gate.h"
#include "fd-util.h"

static _Atomic(ClientGate *) *gated;
static unsigned gated_size;
static ClientGateReport report_refusal;
static ClientGateLinger linger;

int client_gate_setup(unsigned max_fds, ClientGateReport report, ClientGateLinger linger_after_refusal) {
        /* Lazily backed by the kernel: only the slots of fd numbers in use take memory. */
        _Atomic(ClientGate *) *table = calloc(max_fds, sizeof(*gated));

        if (!table)
                return -ENOMEM;
        free(gated);
        gated = table;
        gated_size = max_fds;
        report_refusal = report;
        linger = linger_after_refusal;
        return 0;
}

int client_gate_attach(ClientGate *g, int fd, size_t max_target, size_t max_head) {
        if (fd < 0 || (unsigned) fd >= gated_size)
                return -EMFILE;
        request_gate_init(&g->gate, max_target, max_head);
        g->fd = fd;
        g->owed = g->answered = false;
        g->completed = 0;
        atomic_store_explicit(&gated[fd], g, memory_order_release);
        return 0;
}

void client_gate_detach(ClientGate *g) {
        if (g->fd >= 0 && (unsigned) g->fd < gated_size)
                atomic_store_explicit(&gated[g->fd], NULL, memory_order_release);
        g->fd = -EBADF;
}

static const char *status_phrase(unsigned status) {
        switch (status) {
        case 414:
                return "URI Too Long";
        case 431:
                return "Request Header Fields Too Large";
        default:
                return "Bad Request";
        }
}

/* " (N bytes)", in a buffer of the calling thread. */
static const char *limit_note(size_t limit) {
        static __thread char note[48];

        snprintf(note, sizeof(note), " (%zu bytes)", limit);
        return note;
}

/* The gate's verdict, as the daemon words its errors, then the end of the stream. */
static void answer(ClientGate *g) {
        char response[512], body[256];
        int n, b;

        g->answered = true;
        g->owed = false;
        b = snprintf(body, sizeof(body), "{\"message\":\"docker-socket-proxy: %s%s\"}\n", g->gate.error,
                     !strstr(g->gate.error, "SOCKET_PROXY_") ? "" :
                     g->gate.status == 414 ? limit_note(g->gate.max_target) : limit_note(g->gate.max_head));
        n = snprintf(response, sizeof(response),
                     "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     g->gate.status, status_phrase(g->gate.status), b, body);
        (void) send(g->fd, response, (size_t) MIN(n, (int) sizeof(response) - 1), MSG_NOSIGNAL | MSG_DONTWAIT);
        (void) shutdown(g->fd, SHUT_WR);
        /* The parser's reads see the end of the stream from now on (g->answered). */
        if (linger)
                (void) linger(g);
        if (report_refusal)
                report_refusal(g);
}

void client_gate_request_done(ClientGate *g) {
        g->completed++;
        if (g->owed && g->completed >= g->gate.requests)
                answer(g);
}

/* libmicrohttpd's reads come here (see client-gate.h). */
ssize_t recv(int fd, void *buf, size_t len, int flags) {
        ClientGate *g = fd >= 0 && (unsigned) fd < gated_size ?
                atomic_load_explicit(&gated[fd], memory_order_acquire) : NULL;
        ssize_t n;
        size_t fine;

        if (g && !(flags & MSG_PEEK)) {
                if (g->answered)
                        return 0;
                if (g->owed) {
                        /* The parser wants more, so the requests before the refused one are done. */
                        answer(g);
                        return 0;
                }
        }
        n = recvfrom(fd, buf, len, flags, NULL, NULL);
        if (!g || n <= 0 || (flags & MSG_PEEK))
                return n;
        fine = request_gate_feed(&g->gate, buf, (size_t) n);
        if (fine == (size_t) n)
                return n;
        if (g->gate.request_began > 0) {
                /* Complete requests came first: they are served, then the refusal. */
                g->owed = true;
                return g->gate.request_began;
        }
        answer(g);
        return 0;
}
