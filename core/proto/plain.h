/* plain.h - the plain WebSocket endpoint at a namespace's path: JSON text
 * frames {"event": NAME, "data": ..., "ack": N} both ways, one socket per
 * connection (CLIENT_PLAIN), authenticated by the same connect hooks as
 * Socket.IO, kept alive by WebSocket pings. */
#ifndef PARLEY_PLAIN_H
#define PARLEY_PLAIN_H

#include "net/http.h"

struct nsp;
struct ws;

/* A new plain connection of namespace `n` on WebSocket `w`, opened by a
 * request whose handshake was `hs` (the connection takes what it holds:
 * `hs` is left empty):
 * its socket is authenticated at once, or refused with an error frame and
 * a 4000 + status close. */
void plain_ws_open(struct ws *w, struct handshake *hs, struct nsp *n);

#endif
