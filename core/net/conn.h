/* conn.h - a connection: one client's transport (polling and/or WebSocket),
 * its output queue and writer, its heartbeat, and a close that frees it
 * only after the callback that closed it has returned. Its protocol (an
 * Engine.IO session, a plain WebSocket) is given at conn_new as a struct
 * conn_ops: conn.c hands it what comes in and asks it what the heartbeat
 * and a close mean, and names nothing above it. The sockets on it
 * (hub/client.h) hang on `clients`. */
#ifndef PARLEY_CONN_H
#define PARLEY_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "base/frame.h"
#include "net/http.h"

struct conn;
struct ws;
struct client;

/* A connection's protocol: what conn.c asks of the layer above. */
struct conn_ops {
	/* One whole message from WebSocket `w` (the connection's, or the
	 * probe of an upgrade). */
	void (*message)(struct conn *c, struct ws *w, const char *p, size_t len, int binary);
	/* The connection is closing (c->state is CONN_CLOSED already, so
	 * what is sent to it is dropped): the protocol frees its sockets
	 * (their disconnect hooks run) and whatever it keeps for it. */
	void (*closed)(struct conn *c, const char *reason);
	/* The server is going (the drain): tell the client after what is
	 * queued for it. */
	void (*shutdown)(struct conn *c);
	/* The heartbeat's ping, sent as a WebSocket ping when `ping_control`
	 * (answered by the pong, or by any frame: conn_ws_pong), else as a
	 * message that the protocol sees answered (conn_heartbeat_start). */
	const char *ping;
	int ping_control;
	/* How /metrics counts it: an enum metrics_transport, or -1 for by its
	 * transport (polling, websocket). */
	int metrics;
};

enum conn_transport { TRANSPORT_POLLING, TRANSPORT_WEBSOCKET };
enum conn_state { CONN_OPEN, CONN_CLOSED };

/* Small fields are bit-fields: an idle connection should cost little. */
struct conn {
	enum conn_transport transport : 2;
	enum conn_state state : 2;
	unsigned pong_due : 1;
	unsigned upgrading : 1; /* "2probe" seen on the probe, "5" not yet */
	unsigned dirty : 1;      /* frames queued since the last conn_flush */
	unsigned doomed : 1;     /* over its output cap: closed after the callback */
	unsigned awaiting_connect : 1; /* no namespace connected yet (its deadline runs) */
	unsigned poll_close : 1; /* shutting down: the Engine.IO close packet is queued */
	unsigned close_sent : 1; /* ... and a poll has taken it: the session is done */
	unsigned close_on_upgrade : 1; /* shutting down mid-upgrade: close once "5" comes */
	unsigned client_closed : 1; /* the client asked to close it: conn_close_soon */
	unsigned drain_pongs : 2; /* pongs owed before the drain's ping is answered */
	uint16_t ws_close_code;  /* the WebSocket close code conn_close sends */
	uint16_t close_code;     /* close the WebSocket with this once the queue drains */
	uint8_t parser;          /* the protocol's: the parser its client speaks (engine.c) */
	char sid[24];
	const struct conn_ops *ops;
	struct ws *ws;     /* the WebSocket: websocket transport, or plain */
	struct ws *probe;  /* a WebSocket being upgraded to, until "5" */
	struct lws *poll;  /* the pending long-poll GET */
	struct outq out;
	struct client *clients; /* the sockets on it: hub's */
	struct handshake hs;
	ev_timer heartbeat;
	void *proto; /* the protocol's own (engine.c: a binary event in progress) */
	char *close_text; /* the reason sent with close_code */
	struct throttle *throttle; /* reading paused until its timer fires */
	struct conn *all_prev, *all_next; /* every open connection (conn_all) */
	struct conn *dirty_next;
	struct conn *doomed_next;
	struct conn *reap_next;
};

/* A new connection speaking `ops` (which must outlive it), with a fresh
 * random sid. conn.c's: it is freed by conn_reap after conn_close, never by
 * its protocol. Never NULL. */
struct conn *conn_new(const struct conn_ops *ops, enum conn_transport transport);
/* The first open connection (NULL: none); the next is c->all_next. */
struct conn *conn_all(void);
/* Queues `f` for the connection (takes the caller's reference: callers
 * that keep the frame frame_ref it first) and wakes its writer. A frame
 * for a closed or doomed connection is dropped. A queue over
 * PARLEY_MAX_BUFFER dooms the connection (logged, counted): it is closed
 * by conn_reap, after the current callback. */
void conn_send(struct conn *c, struct frame *f);
/* Closes the connection: disconnects its sockets (the protocol's closed),
 * releases its transports and queues it for freeing by conn_reap, after
 * the current callback. `reason` is read during the call (it goes to the
 * log, the protocol and the WebSocket's close frame). Idempotent. */
void conn_close(struct conn *c, const char *reason);
/* The client asked to close the connection: it is closed (reason "client
 * close") once the current loop iteration's callbacks have run, so that
 * what else it sent in the same iteration, on another HTTP connection (a
 * poll sent together with its close), is served first: lws serves requests
 * that came together in no set order. What is sent to it meanwhile is
 * dropped. */
void conn_close_soon(struct conn *c);
/* Stops reading from the connection's WebSocket for `ms` (TCP then slows
 * the sender down): what a rate limit does with a flood. */
void conn_throttle(struct conn *c, int ms);
/* Sends what is queued, then closes the WebSocket with `code` and `text`
 * (copied, at most 100 bytes). */
void conn_close_after_flush(struct conn *c, int code, const char *text);
/* Tells the client the server is going, after what is queued for it (the
 * protocol's shutdown): a WebSocket closes with 1001, a polling session
 * gets the Engine.IO close packet in its next poll response. */
void conn_shutdown(struct conn *c);
/* The drain's barrier: pings the client now, after what is queued for it.
 * Its pong comes after everything the client sent before it read the ping
 * (one ordered stream, or one ordered buffer of polling POSTs), so once
 * conn_drain_answered, every event the client emitted before the server
 * began to stop has arrived (and was answered: processed, or refused 503). */
void conn_drain_ping(struct conn *c);
/* Whether the pong to conn_drain_ping's ping came (a closed connection has
 * nothing more to say). */
int conn_drain_answered(const struct conn *c);
/* Writes a fresh random id (20 url-safe characters) into `out`. */
void conn_new_sid(char out[24]);
/* Writes what each WebSocket queued during this loop iteration, one write
 * per socket. Called between iterations (timers included), before conn_reap. */
void conn_flush(void);
/* Frees connections closed since the last call. */
void conn_reap(void);
/* Closes every connection left: the server is going (their sockets'
 * disconnect hooks run). */
void conn_close_all(const char *reason);
/* Frees every closed connection, with nothing left to write: after
 * conn_close_all and once nothing refers to them (the lws context gone). */
void conn_fini(void);
/* Starts or restarts the heartbeat: the client answered. */
void conn_heartbeat_start(struct conn *c);
/* Starts the timers of a new connection whose client must connect a
 * socket first: the deadline for that (PARLEY_CONNECT_TIMEOUT), then the
 * heartbeat. */
void conn_heartbeat_open(struct conn *c);
/* What the connection's WebSockets report (struct ws_handler, `owner` the
 * connection): one complete message from `w` (ws.c's bytes, valid during
 * the call); `w` takes more (it held output back, or a close waits for the
 * queue); `w` is gone or broke the protocol; the peer is alive. */
void conn_ws_message(void *owner, struct ws *w, const char *data, size_t len, int binary);
void conn_ws_writable(void *owner, struct ws *w);
void conn_ws_closed(void *owner, struct ws *w, int code, const char *why);
void conn_ws_pong(void *owner, int pong);

#endif
