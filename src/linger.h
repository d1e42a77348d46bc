/* SPDX-License-Identifier: MIT */
#pragma once

/* Refused connections, drained by the event loop: after our answer and the end of our
 * stream, what the client still sends is read and dropped for a while (at most
 * CLIENT_GATE_LINGER_USEC and CLIENT_GATE_LINGER_BYTES), so that closing does not reset
 * the connection before the client has read the answer. A second fd keeps the socket open
 * after libmicrohttpd closes its own. */

#include "event-loop.h"

typedef struct Lingering Lingering;

typedef struct LingerSet {
        EventLoop *loop;
        Lingering *head;
} LingerSet;

/* Drains fd (which stays the caller's) on the set's loop. 0 or -errno. */
int linger_set_add(LingerSet *set, int fd);
/* Ends every drain now. */
void linger_set_clear(LingerSet *set);
