/* engine.h - Engine.IO v4 and Socket.IO v5 on a connection: the polling
 * handshake, long-poll GET and POST, the upgrade to WebSocket, and the
 * Socket.IO packets (connect, disconnect, events, acks, binary). */
#ifndef PARLEY_ENGINE_H
#define PARLEY_ENGINE_H

#include <stddef.h>

#include <ev.h>

#include "net/conn.h"
#include "net/http.h"
#include "wire/sio.h"

struct client;
struct ws;

/* A binary packet waiting for its attachments, and the client (of the
 * packet's namespace, or NULL) it goes to once complete. What it holds is
 * capped (PARLEY_MAX_BINARY_PENDING, and every connection's together
 * against PARLEY_MAX_BINARY_PENDING_TOTAL), and so is the wait for the
 * next attachment (PARLEY_BINARY_TIMEOUT). */
struct pending_binary {
	struct client *client;
	struct conn *conn;
	struct sio_binary pkt; /* pkt.bytes: what it holds, counted server-wide */
	ev_timer timeout; /* armed while attachments are due */
};
/* Frees `b` and what it holds, and gives its bytes back to the server's
 * count. NULL is a no-op. */
void pending_binary_free(struct pending_binary *b);

/* Handles one Engine.IO packet from the client (`w`: the WebSocket it came
 * on, or NULL for a polling POST). */
void engine_on_packet(struct conn *c, struct ws *w, const char *p,
		      size_t len, int binary);
/* The Engine.IO open packet for `c`, as a new frame. */
struct frame *engine_open_frame(struct conn *c);

/* The HTTP side: a request under /socket.io/ (the handshake, a poll, a
 * POST), the end of a POST's body, a parked poll's writable callback.
 * Each returns what the lws callback should. */
int engine_http_request(struct lws *wsi, struct pss *pss);
int engine_http_body_done(struct lws *wsi, struct pss *pss);
int engine_poll_writable(struct lws *wsi, struct pss *pss);

#endif
