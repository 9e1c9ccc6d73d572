/* ws.h - parley's own WebSocket transport. parley accepts every connection
 * itself and looks at its first request head (MSG_PEEK): a WebSocket
 * upgrade is served here to the end (the 101, frames both ways, the closing
 * handshake), reporting to a handler it is given (struct ws_handler); any
 * other request goes to lws with nothing read from it, and lws serves HTTP
 * on it from there (polling, the API, /metrics, static files).
 *
 * Why not lws's WebSockets: lws keeps ~1.8 KB per WebSocket for its whole
 * life (its struct lws, a read buffer of rx_buffer_size, its WebSocket state)
 * and reads no more than the read buffer per read(); here a WebSocket costs
 * its struct ws, and every read goes into one buffer shared by all of them
 * (docs/benchmarks.md, "The read buffer").
 * Errors are negative codes (base/error.h). */
#ifndef PARLEY_WS_H
#define PARLEY_WS_H

#include <stddef.h>

#include "base/error.h"

struct ws;
struct http_head;
struct lws_context;

/* The most one write hands the socket: a writer gathers frames up to this
 * (conn.c), and a WebSocket keeps up to PARLEY_MAX_BUFFER beyond it. */
#define WS_WRITE_BATCH (64u << 10)

/* Where `check` sends an upgrade request, handed back to `open`: the
 * owner's own words, not read here. */
struct ws_route {
	int kind;
	void *target;
};

/* How a WebSocket reports to the layers above, which ws.c does not name:
 * given to ws_listen by the app, from the routes (check, open) and from
 * the connection that owns the WebSocket once it is open (the rest). The
 * owner is what `open` tied the WebSocket to with ws_attach. */
struct ws_handler {
	/* An upgrade request that is a sound WebSocket handshake: 0 with
	 * `route` filled to accept it, or PARLEY_EREFUSED with `*status` the
	 * HTTP status (400..599) refusing it and `*why` its body (a static
	 * string). */
	int (*check)(const struct http_head *h, struct ws_route *route, int *status,
		     const char **why);
	/* The 101 is out, in the same callback as `check` (the head is still
	 * there): the WebSocket is open; `addr` is the peer's address. */
	void (*open)(struct ws *w, const struct http_head *h, const struct ws_route *route,
		     const char *addr);
	/* One whole message; text is valid UTF-8. */
	void (*message)(void *owner, struct ws *w, const char *p, size_t len, int binary);
	/* The socket takes more: ws_want_writable asked for this. */
	void (*writable)(void *owner, struct ws *w);
	/* The WebSocket no longer belongs to `owner`: the peer closed it or
	 * the socket failed (`code` 0), or the peer broke the protocol (`code`
	 * the close code, `why` the reason: the WebSocket is closed with them
	 * once this returns, unless the owner closed it first). */
	void (*closed)(void *owner, struct ws *w, int code, const char *why);
	/* The peer is alive: a pong came (`pong` 1), or a data frame (0). */
	void (*pong)(void *owner, int pong);
};

/* A listening, non-blocking socket on `addr` (an IPv4 or IPv6 literal,
 * "[::1]" too; NULL or "": every address, IPv6 and IPv4) and `port`.
 * Returns the descriptor, or a negative errno (logged): -EINVAL for an
 * address that is none, or socket's, bind's or listen's. */
int ws_bind(const char *addr, int port);
/* Listens on `addr` and `port` (as ws_bind) and accepts on the loop; an upgrade
 * request is served here and reported to `h` (which must outlive the
 * listener), any other request goes to `ctx` (lws, which must outlive it
 * too), which serves HTTP on it. Returns 0, or the negative errno of
 * socket, bind or listen (logged: -EADDRINUSE, -EACCES, ...). */
int ws_listen(const char *addr, int port, const struct ws_handler *h, struct lws_context *ctx);
/* Closes the listening socket: the kernel refuses new connections. A
 * no-op when it is closed. */
void ws_stop_listening(void);
/* 1 if the listening socket is still open, else 0. */
int ws_is_listening(void);
/* WebSockets upgraded and not yet gone (the drain waits for them). */
unsigned ws_open_count(void);
/* Closes every WebSocket left and the listener, at once. */
void ws_fini(void);

/* Ties the WebSocket to `owner` (not owned: the owner lets go of the
 * WebSocket with ws_close, or hears `closed`): what the handler's calls are
 * given. A struct ws is ws.c's: it is freed once it is done, never by the
 * owner. */
void ws_attach(struct ws *w, void *owner);

/* The connection's output: the `n` bytes at `p` (copied when the socket
 * does not take them all: they are the caller's) written in order, what
 * the socket does not take kept until it does. Returns 0; or -EPIPE when
 * the WebSocket is done, -ENOBUFS when more than PARLEY_MAX_BUFFER would
 * wait unread (logged, counted), or send's negative errno: the socket
 * failed, the WebSocket is closing and its owner told (`closed`). */
int ws_write(struct ws *w, const void *p, size_t n);
/* 1 if bytes wait for the socket (the writer waits for the callback),
 * else 0. */
int ws_busy(const struct ws *w);
/* Calls the handler's `writable` once the socket can take more. */
void ws_want_writable(struct ws *w);
/* 1 if a data message (`opcode` WS_TEXT or WS_BINARY) of `n` bytes goes out
 * compressed on `w` (permessage-deflate agreed, PARLEY_WS_COMPRESSION, and
 * the message is 1 KB or more): written with ws_deflate_write. */
int ws_compresses(const struct ws *w, int opcode, size_t n);
/* The most bytes ws_deflate_write writes for a message of `n` bytes. */
size_t ws_deflate_room(size_t n);
/* Writes the frame of a data message of `n` bytes at `p`, compressed, into
 * `out` (ws_deflate_room(n) bytes of room): header with RSV1, then the
 * deflated payload (or, should it not fit, the message as it is). Returns
 * the bytes written. Each message on its own: no state is kept between. */
size_t ws_deflate_write(int opcode, const void *p, size_t n, unsigned char *out);
/* One text message of at most 125 bytes, written now (the probe's
 * "3probe"); dropped when the WebSocket is not open or it is longer. */
void ws_send_text(struct ws *w, const char *p, size_t n);
/* Stops or resumes reading (TCP then slows the sender down). */
void ws_pause(struct ws *w, int paused);
/* Sends a close frame with `code` and `reason` (copied; cut to 123 bytes
 * at a character) after what is unwritten, and ends the WebSocket once the
 * peer answers (or a deadline passes). The WebSocket no longer belongs to
 * its owner: `closed` is not called. No-op once closing. */
void ws_close(struct ws *w, int code, const char *reason);

#endif
