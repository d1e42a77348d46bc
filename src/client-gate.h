/* SPDX-License-Identifier: MIT */
#pragma once

/* Puts the request gate (request-gate.h) between the client sockets and libmicrohttpd.
 * libmicrohttpd 0.9.75 reads a connection with recv() and offers no hook for its
 * transport, so this module defines recv(): the dynamic linker binds libmicrohttpd's calls
 * to it, and every byte of a registered socket passes the gate before the parser sees it.
 * Sockets that are not registered (the daemon's, the tunnels' other side) are untouched.
 *
 * A request that fails the gate is answered here, with 400, 414 or 431 and a JSON message,
 * and its connection ends: libmicrohttpd is given the end of the stream, never the bytes.
 * When complete requests came before it in the same read, they are served first and the
 * answer is owed until they are done (client_gate_request_done). */

#include <stdbool.h>
#include <stdint.h>

#include "macro.h"
#include "request-gate.h"

typedef struct ClientGate {
        RequestGate gate;
        int fd;
        bool owed;           /* a refusal is due once the requests before it are answered */
        bool answered;       /* the refusal is out: the stream is over for the parser */
        uint64_t completed;  /* requests answered on this connection */
} ClientGate;

/* After a refusal, what the client still sends should be read and dropped for a while, so
 * that closing does not reset the connection before the client has read the answer. */
#define CLIENT_GATE_LINGER_USEC (200U * USEC_PER_MSEC)
#define CLIENT_GATE_LINGER_BYTES (256U * 1024U)

/* Called once per refused connection, after the answer is sent. */
typedef void (*ClientGateReport)(ClientGate *g);
/* Called once per refused connection, after the answer and the end of our stream were sent:
 * drains what the client still sends (CLIENT_GATE_LINGER_*) without blocking the caller. */
typedef int (*ClientGateLinger)(ClientGate *g);

/* Sizes the table of gated sockets for fds below max_fds. Call once, before serving. */
int client_gate_setup(unsigned max_fds, ClientGateReport report, ClientGateLinger linger);
/* Starts gating fd. -EMFILE: fd is beyond the table (the connection must be refused). */
int client_gate_attach(ClientGate *g, int fd, size_t max_target, size_t max_head);
/* Stops gating; call before the fd is closed. */
void client_gate_detach(ClientGate *g);
/* One more request on the connection was answered: sends an owed refusal when its turn
 * has come. */
void client_gate_request_done(ClientGate *g);
