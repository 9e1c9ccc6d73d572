/* plain.h - the plain WebSocket endpoint at a namespace's path: JSON text
 * frames {"event": NAME, "data": ..., "ack": N} both ways, one socket per
 * connection, authenticated by the same connect hooks as Socket.IO. */
#ifndef PARLEY_PLAIN_H
#define PARLEY_PLAIN_H

#include <stddef.h>

struct conn;
struct nsp;

/* Authenticates a new plain connection; returns 0, or -1 after sending the
 * error frame and arranging the 4401 close. */
int plain_on_open(struct conn *c, struct nsp *n);
/* One text message from the client. */
void plain_on_message(struct conn *c, const char *p, size_t len);

#endif
