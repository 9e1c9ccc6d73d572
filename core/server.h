/* server.h - the running server: its settings, the lws context, and the
 * connections and sockets it serves. A `conn` is one client's transport (an
 * Engine.IO session over polling and/or WebSocket, or a plain WebSocket); a
 * `client` is one socket on it: a Socket.IO namespace connection, or the
 * plain WebSocket's single peer. One server per process, in `srv`. */
#ifndef PARLEY_SERVER_H
#define PARLEY_SERVER_H

#include <signal.h>
#include <stdint.h>

#include <ev.h>
#include <libwebsockets.h>

#include "base/clock.h"
#include "base/frame.h"
#include "base/settings.h"
#include "base/map.h"
#include "hub/room.h"
#include "wire/sio.h"

struct ws;

enum conn_kind { CONN_EIO, CONN_PLAIN };
enum conn_transport { TRANSPORT_POLLING, TRANSPORT_WEBSOCKET };
enum conn_state { CONN_OPEN, CONN_CLOSED };

/* What the handshake request said, kept for each namespace CONNECT. */
struct handshake {
	char *query;       /* decoded "key\0value\0" pairs */
	size_t query_len;
	int nquery;
	char *authorization; /* the Authorization header, or NULL */
	char addr[48];       /* the peer's address */
};

/* A binary packet waiting for its attachments, and the client (of the
 * packet's namespace, or NULL) it goes to once complete. What it holds is
 * capped (PARLEY_MAX_BINARY_PENDING, and srv.binary_pending against
 * PARLEY_MAX_BINARY_PENDING_TOTAL), and so is the wait for the next
 * attachment (PARLEY_BINARY_TIMEOUT): engine.c. */
struct pending_binary {
	struct client *client;
	struct conn *conn;
	struct sio_binary pkt; /* pkt.bytes: what it holds, counted in srv.binary_pending */
	ev_timer timeout; /* armed while attachments are due */
};
/* Frees `b` and what it holds, and gives its bytes back to the server's
 * count. NULL is a no-op. */
void pending_binary_free(struct pending_binary *b);

/* Small fields are bit-fields: an idle connection should cost little. */
struct conn {
	enum conn_kind kind : 2;
	enum conn_transport transport : 2;
	enum conn_state state : 2;
	unsigned pong_due : 1;
	unsigned upgrading : 1; /* "2probe" seen on the probe, "5" not yet */
	unsigned in_sid_map : 1; /* found by sid (it began on polling) */
	unsigned dirty : 1;      /* on srv.dirty: frames queued since the last flush */
	unsigned doomed : 1;     /* over its output cap: closed after the callback */
	unsigned awaiting_connect : 1; /* no namespace connected yet (its deadline runs) */
	unsigned poll_close : 1; /* shutting down: the Engine.IO close packet is queued */
	unsigned close_sent : 1; /* ... and a poll has taken it: the session is done */
	unsigned close_on_upgrade : 1; /* shutting down mid-upgrade: close once "5" comes */
	uint16_t ws_close_code;  /* the WebSocket close code conn_close sends */
	uint16_t close_code;     /* close the WebSocket with this once the queue drains */
	char sid[24];
	struct ws *ws;     /* the WebSocket: websocket transport, or plain */
	struct ws *probe;  /* a WebSocket being upgraded to, until "5" */
	struct lws *poll;  /* the pending long-poll GET */
	struct outq out;
	struct client *clients;
	struct handshake hs;
	ev_timer heartbeat;
	struct pending_binary *bin;
	char *close_text; /* the reason sent with close_code */
	struct throttle *throttle; /* reading paused until its timer fires */
	struct conn *all_prev, *all_next; /* srv.all */
	struct conn *dirty_next;
	struct conn *doomed_next;
	struct conn *reap_next;
};

/* A server-to-client ack the server is waiting for. */
struct ack_wait {
	struct ack_wait *next;
	struct client *client;
	uint64_t id;
	ev_timer timeout;
};

struct client {
	char id[24];
	struct conn *conn;
	struct nsp *nsp;
	struct room_set rooms;
	char *user_id;
	char *auth; /* the CONNECT payload (JSON), or NULL when empty */
	struct client *next; /* in conn->clients */
	uint64_t next_ack;
	struct ack_wait *acks;
	int closing; /* client_free has begun: hooks must not free it again */
};

struct server {
	struct lws_context *ctx;
	struct map conns;   /* Engine.IO sid -> struct conn, for sessions that
			     * began on polling (the others are never looked up) */
	struct conn *all;   /* every open connection */
	struct map clients; /* socket id -> struct client */
	struct map nsps;    /* namespace name -> struct nsp */
	/* nsp_lookup's last answer: whatever frees a namespace clears it. */
	struct nsp *last_nsp;
	struct conn *reap;  /* closed, freed after the callback returns */
	struct conn *doomed; /* to close after the callback returns */
	struct conn *dirty; /* WebSockets with frames to write this iteration */
	volatile sig_atomic_t reload_requested;
	unsigned ws_open;   /* WebSockets upgraded and not yet closed (ws.c) */
	int64_t started_ms;
	uint64_t sockets;   /* connected clients */
	size_t binary_pending; /* bytes held by binary packets not yet complete */
};

extern struct server srv;

/* ---- server.c: the lws side (HTTP) and the drain ---- */

/* Starts listening with the settings; returns 0 or -1 (logged). */
int server_start(void);
/* Serves until server_stop(): runs the event loop, and between iterations
 * writes what was queued, frees what was closed and reloads on request. */
void server_run(void);
/* Both are safe to call from a signal handler. */
void server_stop(void);
void server_request_reload(void);
/* Closes every connection still open (the drain may have left some) and
 * the lws context; the loop stays for what still has to run (the store's
 * last completions, Lua's teardown). */
void server_fini(void);
/* Destroys the event loop, last of all. */
void server_loop_fini(void);

/* ---- conn.c: transports, output, lifecycle ---- */

/* The most a WebSocket writer sends in one write (frames gathered in one
 * loop iteration). */
#define CONN_WRITE_BATCH (64u << 10)

/* A new connection of `kind`, registered under a fresh sid when Engine.IO. */
struct conn *conn_new(enum conn_kind kind, enum conn_transport transport);
/* Queues `f` for the connection (takes a reference of the caller's) and
 * wakes its writer. A queue over the cap closes the connection. */
void conn_send(struct conn *c, struct frame *f);
/* Closes the connection: disconnects its sockets, releases its transports
 * and queues it for freeing after the current callback. Idempotent. */
void conn_close(struct conn *c, const char *reason);
/* Stops reading from the connection's WebSocket for `ms` (TCP then slows
 * the sender down): what a rate limit does with a flood. */
void conn_throttle(struct conn *c, int ms);
/* Sends what is queued, then closes the WebSocket with `code`. */
void conn_close_after_flush(struct conn *c, int code, const char *text);
/* Tells the client the server is going, after what is queued for it: a
 * WebSocket closes with 1001, a polling session gets the Engine.IO close
 * packet in its next poll response and ends there. */
void conn_shutdown(struct conn *c);
/* Writes a fresh random id (20 url-safe characters) into `out`. */
void conn_new_sid(char out[24]);
/* Takes the whole queue as one polling payload (packets joined by 0x1e,
 * binary as "b" + base64), in a buffer with LWS_PRE bytes of headroom that
 * the caller frees. */
char *conn_drain_payload(struct conn *c, size_t *len);
/* Writes what each WebSocket queued during this loop iteration, one write
 * per socket. Called between iterations (timers included), before conn_reap. */
void conn_flush(void);
/* Frees connections closed since the last call. */
void conn_reap(void);
/* Starts or restarts the Engine.IO heartbeat. */
void conn_heartbeat_start(struct conn *c);
/* Starts the timers of a new connection: for Engine.IO, first the deadline
 * to connect a namespace (PARLEY_CONNECT_TIMEOUT), then the heartbeat. */
void conn_heartbeat_open(struct conn *c);
/* Feeds one complete WebSocket message from `w` to the connection. */
void conn_on_message(struct conn *c, struct ws *w, const char *data,
		     size_t len, int binary);
/* Writes what the WebSocket may take now (it held output back, or a close
 * waits for the queue). */
void conn_on_ws_writable(struct conn *c, struct ws *w);

/* ---- engine.c: Engine.IO / Socket.IO over a connection ---- */

/* Handles one Engine.IO packet from the client. */
void engine_on_packet(struct conn *c, struct ws *w, const char *p,
		      size_t len, int binary);
/* The Engine.IO open packet for `c`, as a new frame. */
struct frame *engine_open_frame(struct conn *c);

/* ---- plain.c: the plain WebSocket endpoint ---- */
void plain_on_message(struct conn *c, const char *p, size_t len);
/* Authenticates a new plain connection; returns 0, or -1 after sending the
 * error frame and arranging the 4401 close. */
int plain_on_open(struct conn *c, struct nsp *n);

/* ---- client.c: sockets, emits and acks ---- */

/* A payload to send: one event with at most one argument, encoded once per
 * wire format and shared by every recipient. */
struct emit {
	const char *name;
	size_t name_len;
	const char *data; /* JSON of the argument, or NULL for none */
	size_t data_len;
	char *data_owned; /* `data` when it was encoded for this emit: freed with it */
	const char *plain_data; /* JSON for plain sockets when it differs */
	size_t plain_len;
	struct frame **att; /* binary attachments for Socket.IO */
	unsigned natt;
	struct frame *sio[1]; /* encoded lazily; [0] for the namespace */
	struct frame *plain;
	struct nsp *nsp;
};

struct client *client_new(struct conn *c, struct nsp *n);
/* Disconnects the socket: Lua's disconnect hook, rooms, pending acks. */
void client_free(struct client *cl, const char *reason);
/* Sets the user and joins the room "user:{id}". */
void client_set_user(struct client *cl, const char *user_id, size_t len);
void client_emit(struct client *cl, struct emit *e);
size_t client_broadcast(struct nsp *n, const struct room_target *t, struct emit *e);
/* Releases the frames an emit encoded. */
void emit_fini(struct emit *e);
/* Answers the client's ack `id` with `data` (JSON, one value). */
void client_ack(struct client *cl, int64_t id, const char *data, size_t len,
		struct frame **att, unsigned natt);
/* Removes a pending server-to-client ack; 0 if it was pending, else -1. */
int client_take_ack(struct client *cl, uint64_t id);
/* Emits with an ack request; the answer or the timeout goes to Lua. Returns
 * the ack id. */
uint64_t client_request(struct client *cl, struct emit *e, int timeout_ms);
/* Sends the Socket.IO `error` event or plain error frame. */
void client_error(struct client *cl, int status, const char *message, int64_t ack_id);
struct nsp *nsp_lookup(const char *name, size_t len);

#endif
