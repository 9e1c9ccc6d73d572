/* engine.h - Engine.IO v4 and Socket.IO v5 on a connection: the polling
 * handshake, long-poll GET and POST, the upgrade to WebSocket, heartbeats,
 * and the Socket.IO packets (connect, disconnect, events, acks, binary).
 * A session is a connection (net/conn.h) speaking engine.c's conn_ops; its
 * sockets are hub's (CLIENT_SIO). What a function returns "for the lws
 * callback" is lws's contract (0 to go on, non-zero to close). */
#ifndef PARLEY_ENGINE_H
#define PARLEY_ENGINE_H

#include "net/conn.h"
#include "net/http.h"

struct ws;

/* Makes the map of sessions; engine_fini frees it, once every connection
 * is closed. */
void engine_init(void);
void engine_fini(void);

/* The session that began on polling under `sid` (net/conn.h's), or NULL. */
struct conn *engine_session(const char *sid);
/* A new session on WebSocket `w`, opened by a request whose handshake was
 * `hs` (the session takes what it holds: `hs` is left empty). */
void engine_ws_open(struct ws *w, struct handshake *hs);
/* WebSocket `w` probes an upgrade of polling session `c`. */
void engine_probe_open(struct conn *c, struct ws *w);

/* A request under /socket.io/: the handshake, a poll (parked until there
 * is something to send), a POST of packets (answered once its body is
 * read). Returns what the lws callback should. */
int engine_http_request(struct lws *wsi, struct pss *pss);

#endif
