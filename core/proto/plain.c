/* plain.c - the plain WebSocket endpoint: JSON text frames
 * {"event": NAME, "data": ..., "ack": N} both ways ("args": [...] in place
 * of "data" for several arguments), one socket per connection,
 * authenticated by the same connect hooks as Socket.IO. */
#include <errno.h>
#include <string.h>

#include "proto/plain.h"

#include "base/alloc.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/settings.h"
#include "hub/client.h"
#include "net/conn.h"
#include "net/ws.h"
#include "wire/envelope.h"
#include "wire/json.h"
#include "wire/websocket.h"

#define JSON_MAX_DEPTH 32

static void on_message(struct conn *c, struct ws *w, const char *p, size_t len, int binary);
static void on_closed(struct conn *c, const char *reason);
static void on_shutdown(struct conn *c);

static const struct conn_ops plain_ops = {
	.message = on_message,
	.closed = on_closed,
	.shutdown = on_shutdown,
	.ping = "p",
	.ping_control = 1, /* a WebSocket ping: the pong, or anything, answers */
	.metrics = METRICS_PLAIN,
};

/* The envelope's arguments as an array, the shape Socket.IO events and
 * acks have: "args" as it is (no copy: *owned NULL), "data" as a
 * one-element array, "[]" without either. The caller frees *owned. */
static const char *args_of(const struct envelope *e, size_t *len, char **owned)
{
	char *args;

	*owned = NULL;
	if (e->args.p) {
		*len = e->args.len;
		return e->args.p;
	}
	if (!e->data.p) {
		*len = 2;
		return "[]";
	}
	args = xmalloc(e->data.len + 2);
	args[0] = '[';
	memcpy(args + 1, e->data.p, e->data.len);
	args[e->data.len + 1] = ']';
	*len = e->data.len + 2;
	*owned = args;
	return args;
}

/* Authenticates the new connection's socket; a refusal sends the error
 * frame and arranges the 4401 close. */
static void authenticate(struct conn *c, struct nsp *n)
{
	struct client *cl = client_new(c, n, CLIENT_PLAIN);
	char msg[256];
	int code = 0;

	if (client_connect(cl, NULL, 0, &code, msg, sizeof(msg)) == 0) {
		client_connected(cl);
		return;
	}
	/* Refused: say why in an error frame, then close with 4000 + status. */
	client_error(cl, code, msg, -1);
	client_free(cl, NULL);
	conn_close_after_flush(c, 4000 + (code >= 100 && code < 1000 ? code : 401), msg);
}

void plain_ws_open(struct ws *w, struct handshake *hs, struct nsp *n)
{
	struct conn *c = conn_new(&plain_ops, TRANSPORT_WEBSOCKET);

	c->ws = w;
	ws_attach(w, c);
	c->hs = *hs;
	memset(hs, 0, sizeof(*hs));
	conn_heartbeat_start(c);
	authenticate(c, n);
}

static void on_message(struct conn *c, struct ws *w, const char *p, size_t len, int binary)
{
	struct client *cl = c->clients;
	struct envelope e;
	size_t alen;
	const char *args;
	char *owned;

	(void)w;
	if (binary) {
		metrics_protocol_error("plain_binary");
		if (cl)
			client_error(cl, 400, "binary frames are not accepted here", -1);
		return;
	}
	if (!cl || c->close_code)
		return;
	switch (envelope_parse(p, len, JSON_MAX_DEPTH, &e)) {
	case -EBADMSG:
		metrics_protocol_error("plain_bad_json");
		client_error(cl, 400, "invalid JSON: expected {\"event\": NAME, \"data\": ...}", -1);
		return;
	case PARLEY_EBADACK:
		metrics_protocol_error("plain_bad_ack");
		client_error(cl, 400, "ack must be a non-negative integer", -1);
		return;
	case PARLEY_EBADNAME:
		metrics_protocol_error("plain_bad_event");
		client_error(cl, 400, "event must be a non-empty string", e.ack);
		return;
	case -EINVAL:
		metrics_protocol_error("plain_bad_args");
		/* A reply's ack id is the server's own: nothing to answer. */
		client_error(cl, 400, "args must be an array, and comes without data",
			     e.kind == ENVELOPE_REPLY ? -1 : e.ack);
		return;
	default:
		break;
	}
	if (life.draining && e.kind != ENVELOPE_REPLY) {
		client_error(cl, 503, "the server is shutting down", e.ack);
		return;
	}
	args = args_of(&e, &alen, &owned);
	if (e.kind == ENVELOPE_REPLY)
		client_answer(cl, (uint64_t)e.ack, args, alen, NULL, 0);
	else
		client_event(cl, e.name, e.name_len, args, alen, NULL, 0, e.ack);
	free(owned);
}

static void on_closed(struct conn *c, const char *reason)
{
	client_free_all(c, reason);
}

static void on_shutdown(struct conn *c)
{
	/* A close already arranged (a refused socket's 4401) stands. */
	if (!c->close_code)
		conn_close_after_flush(c, WS_GOING_AWAY, "server shutting down");
}
