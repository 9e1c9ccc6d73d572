/* ws.h - parley's own WebSocket transport. parley accepts every connection
 * itself and looks at its first request head (MSG_PEEK): a WebSocket
 * upgrade is served here to the end (the 101, frames both ways, the closing
 * handshake); any other request goes to lws with nothing read from it, and
 * lws serves HTTP on it from there (polling, the API, /metrics, static files).
 *
 * Why not lws's WebSockets: lws keeps ~1.8 KB per WebSocket for its whole
 * life (its struct lws, a read buffer of rx_buffer_size, its WebSocket state)
 * and reads no more than the read buffer per read(); here a WebSocket costs
 * its struct ws, and every read goes into one buffer shared by all of them
 * (docs/benchmarks.md, "The read buffer"). */
#ifndef PARLEY_WS_H
#define PARLEY_WS_H

#include <stddef.h>

struct ws;
struct conn;
struct http_head;
struct lws_context;

/* Listens on `port` (IPv6 and IPv4) and accepts on the loop; a request that
 * is not an upgrade goes to `ctx` (lws), which serves HTTP on it. Returns 0
 * or -1 (logged). */
int ws_listen(int port, struct lws_context *ctx);
/* Closes the listening socket: the kernel refuses new connections. */
void ws_stop_listening(void);
/* Whether the listening socket is still open. */
int ws_is_listening(void);
/* WebSockets upgraded and not yet gone (the drain waits for them). */
unsigned ws_open_count(void);
/* Closes every WebSocket left and the listener, at once. */
void ws_fini(void);

/* Ties the WebSocket to its connection (server_ws_open). */
void ws_attach(struct ws *w, struct conn *c);

/* The connection's output: bytes written in order, what the socket does not
 * take kept until it does. Returns 0, or -1 when the socket failed (the
 * WebSocket is then closing, and its connection told). */
int ws_write(struct ws *w, const void *p, size_t n);
/* Whether bytes wait for the socket: the writer waits for the callback. */
int ws_busy(const struct ws *w);
/* Calls conn_on_ws_writable once the socket can take more. */
void ws_want_writable(struct ws *w);
/* One text message, written now (the probe's "3probe"). */
void ws_send_text(struct ws *w, const char *p, size_t n);
/* Stops or resumes reading (TCP then slows the sender down). */
void ws_pause(struct ws *w, int paused);
/* Sends a close frame with `code` and `reason` after what is unwritten, and
 * ends the WebSocket once the peer answers (or a deadline passes). The
 * WebSocket no longer belongs to a connection. No-op once closing. */
void ws_close(struct ws *w, int code, const char *reason);

/* ---- server.c: what the transport asks of the server ---- */

struct nsp;

/* Where a checked upgrade request goes. */
struct ws_route {
	struct nsp *plain;      /* the plain endpoint of this namespace, or NULL */
	struct conn *probe_of;  /* the polling session it probes, or NULL */
};

/* Checks an upgrade request (origin, path, Engine.IO query, drain): 0 with
 * `route` filled to accept it, or the HTTP status refusing it (with `why`
 * for the body). */
int server_ws_check(const struct http_head *h, struct ws_route *route, const char **why);
/* A WebSocket is open on a request server_ws_check routed (in the same
 * callback): makes its connection, or joins the session it probes. */
void server_ws_open(struct ws *w, const struct http_head *h, const struct ws_route *route,
		    const char *addr);
/* The WebSocket of `c` is gone: the peer closed it, or the socket failed. */
void server_ws_closed(struct conn *c, struct ws *w);
/* A pong came (a plain WebSocket's heartbeat). */
void server_ws_pong(struct conn *c);

#endif
