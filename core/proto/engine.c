/* engine.c - Engine.IO v4 and Socket.IO v5 on a connection: the polling
 * handshake, long-poll GET and POST, the upgrade to WebSocket, heartbeats,
 * and the Socket.IO packets (connect, disconnect, events, acks, binary). */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "proto/engine.h"

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/settings.h"
#include "hub/client.h"
#include "hub/recovery.h"
#include "net/conn.h"
#include "net/http.h"
#include "net/ws.h"
#include "wire/base64.h"
#include "wire/eio.h"
#include "wire/json.h"
#include "wire/sio.h"
#include "wire/sio_msgpack.h"
#include "wire/websocket.h"

#define MAX_ATTACHMENTS 64
#define JSON_MAX_DEPTH 32

/* The Socket.IO parser a connection's client speaks (c->parser), told by
 * its first packet: a text one for the default parser, a binary one for
 * socket.io-msgpack-parser, which writes nothing else. It is kept for the
 * session: the server's packets to it are written for that parser. */
enum parser {
	PARSER_UNKNOWN = 0,
	PARSER_JSON,
	PARSER_MSGPACK,
};

/* A binary packet waiting for its attachments (a connection's c->proto),
 * and the namespace whose socket on the connection it goes to once
 * complete (NULL: none). What it holds is capped (PARLEY_MAX_BINARY_PENDING,
 * and every connection's together in `binary_pending` against
 * PARLEY_MAX_BINARY_PENDING_TOTAL), and so is the wait for the next
 * attachment (PARLEY_BINARY_TIMEOUT). */
struct pending_binary {
	struct nsp *nsp;
	struct conn *conn;
	struct sio_binary pkt; /* pkt.bytes: what it holds, counted in binary_pending */
	ev_timer timeout; /* armed while attachments are due */
};

/* Bytes held by binary packets not yet complete, every connection's. */
static size_t binary_pending;
/* Engine.IO sid -> struct conn, for sessions that began on polling (the
 * others are never looked up). */
static struct map sessions;

static void on_message(struct conn *c, struct ws *w, const char *p, size_t len, int binary);
static void on_closed(struct conn *c, const char *reason);
static void on_shutdown(struct conn *c);

static const struct conn_ops engine_ops = {
	.message = on_message,
	.closed = on_closed,
	.shutdown = on_shutdown,
	.ping = "2", /* answered by the client's "3" */
	.ping_control = 0,
	.metrics = -1,
};

void engine_init(void)
{
	map_init(&sessions);
}

void engine_fini(void)
{
	map_fini(&sessions);
}

struct conn *engine_session(const char *sid)
{
	return map_get(&sessions, sid, strlen(sid));
}

/* Frees `b` and what it holds, and gives its bytes back to the server's
 * count. NULL is a no-op. */
static void pending_binary_free(struct pending_binary *b)
{
	if (!b)
		return;
	timer_stop(&b->timeout);
	binary_pending -= b->pkt.bytes;
	sio_binary_fini(&b->pkt);
	free(b);
}

/* The Engine.IO open packet for `c`, as a new frame. */
static struct frame *open_frame(struct conn *c)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf),
			 "0{\"sid\":\"%s\",\"upgrades\":[%s],\"pingInterval\":%d,"
			 "\"pingTimeout\":%d,\"maxPayload\":%zu}",
			 c->sid, c->transport == TRANSPORT_POLLING ? "\"websocket\"" : "",
			 settings.ping_interval_ms, settings.ping_timeout_ms,
			 settings.max_payload);
	return frame_new(buf, (size_t)n, 0);
}

static const char ok_body[] = "ok";

/* The Engine.IO error body {"code":N,"message":"..."} with status 400. */
static int engine_error(struct lws *wsi, struct pss *pss, int code, const char *msg)
{
	char body[128];
	int n = snprintf(body, sizeof(body), "{\"code\":%d,\"message\":\"%s\"}", code, msg);

	metrics_http_error(400);
	return http_respond(wsi, pss, 400, "application/json", body, (size_t)n);
}

static int poll_writable(struct lws *wsi, struct pss *pss);
static int post_body_done(struct lws *wsi, struct pss *pss);
static void poll_closed(struct lws *wsi, struct pss *pss);

/* A long-poll GET, parked until there is something to send; a POST of
 * packets, answered once its body is read. */
static const struct http_route poll_route = { .writable = poll_writable, .closed = poll_closed };
static const struct http_route post_route = { .body_done = post_body_done, .closed = poll_closed };

/* A client broke the protocol: count it, and close its connection only
 * (a WebSocket with close code 1002). */
static void protocol_error(struct conn *c, const char *kind, const char *reason)
{
	metrics_protocol_error(kind);
	c->ws_close_code = WS_PROTOCOL_ERROR;
	conn_close(c, reason);
}

/* Takes the queue as one polling payload: packets joined by the record
 * separator, binary ones as "b" + base64; in a buffer with LWS_PRE bytes of
 * headroom that the caller frees. The close packet (last in the queue once
 * poll_close is set) goes alone, in the poll after the others: socket.io-
 * client hands a payload's packets on to its sockets a microtask later,
 * but closes at once on the close packet, rejecting every ack still owed
 * ("socket has been disconnected"), those in the same payload included. */
static char *drain_payload(struct conn *c, size_t *len)
{
	uint32_t take = c->out.count;
	size_t cap = 0, n = 0;
	char *out;
	struct frame *f;

	if (c->poll_close && take > 1)
		take--;
	for (uint32_t i = 0; i < take; i++) {
		struct frame *g = c->out.slot[(c->out.head + i) & (c->out.cap - 1)];
		cap += eio_payload_room(g->len, g->binary);
	}
	out = xmalloc(LWS_PRE + cap + 1);
	for (uint32_t i = 0; i < take && (f = outq_pop(&c->out)); i++) {
		n = eio_payload_append(out + LWS_PRE, n, frame_data(f), f->len, f->binary);
		frame_unref(f);
	}
	*len = n;
	return out;
}

/* Responds to a parked or immediate poll with everything queued. */
static int poll_flush(struct lws *wsi, struct pss *pss, struct conn *c)
{
	size_t len;
	char *payload = drain_payload(c, &len);
	int rc = http_respond(wsi, pss, 200, "text/plain; charset=UTF-8",
			      payload + LWS_PRE, len);

	free(payload);
	/* The payload carried the close packet. The session stays until the
	 * drain ends all: a POST the client sent meanwhile is still answered
	 * "ok", where an unknown sid would show the client a transport error
	 * if that answer came in before this one. */
	if (c->poll_close && c->out.count == 0)
		c->close_sent = 1;
	return rc;
}

static int handshake(struct lws *wsi, struct pss *pss)
{
	char buf[64];
	const char *transport = http_query_arg(wsi, "transport=", buf, sizeof(buf));
	struct conn *c;

	if (!transport || strcmp(transport, "polling") != 0) {
		metrics_protocol_error("bad_transport");
		return engine_error(wsi, pss, 0, "Transport unknown");
	}
	if (pss->method != HTTP_GET) {
		metrics_protocol_error("bad_handshake_method");
		return engine_error(wsi, pss, 2, "Bad handshake method");
	}
	if (life.draining) {
		/* A keep-alive connection may still ask: the client retries. */
		metrics_http_error(503);
		return http_respond(wsi, pss, 503, "text/plain", "server shutting down", 20);
	}
	c = conn_new(&engine_ops, TRANSPORT_POLLING);
	/* Found by its sid from now on: the sid is unique among those. */
	while (map_get(&sessions, c->sid, strlen(c->sid)))
		conn_new_sid(c->sid);
	map_put(&sessions, c->sid, strlen(c->sid), c);
	http_handshake_copy(&c->hs, wsi);
	conn_send(c, open_frame(c));
	conn_heartbeat_open(c);
	return poll_flush(wsi, pss, c);
}

int engine_http_request(struct lws *wsi, struct pss *pss)
{
	char buf[64];
	const char *v;
	struct conn *c;

	if (pss->method == HTTP_OPTIONS)
		return http_respond(wsi, pss, 204, "text/plain", "", 0);
	v = http_query_arg(wsi, "EIO=", buf, sizeof(buf));
	if (!v || strcmp(v, "4") != 0) {
		metrics_protocol_error("bad_eio_version");
		return engine_error(wsi, pss, 5, "Unsupported protocol version");
	}
	v = http_query_arg(wsi, "sid=", buf, sizeof(buf));
	if (!v)
		return handshake(wsi, pss);

	c = engine_session(v);
	v = http_query_arg(wsi, "transport=", buf, sizeof(buf));
	if (!v || strcmp(v, "polling") != 0) {
		metrics_protocol_error("bad_transport");
		return engine_error(wsi, pss, 0, "Transport unknown");
	}
	if (!c) {
		metrics_protocol_error("unknown_sid");
		return engine_error(wsi, pss, 1, "Session ID unknown");
	}
	if (c->transport != TRANSPORT_POLLING) {
		metrics_protocol_error("poll_after_upgrade");
		return engine_error(wsi, pss, 3, "Bad request");
	}
	if (pss->method == HTTP_POST) {
		/* The body arrives in HTTP_BODY callbacks; answered at completion. */
		pss->conn = c;
		pss->route = &post_route;
		return 0;
	}
	if (pss->method != HTTP_GET) {
		metrics_protocol_error("bad_method");
		return engine_error(wsi, pss, 2, "Bad method");
	}
	if (c->poll) {
		/* Two polls at once break the protocol: end the session. */
		protocol_error(c, "poll_overlap", "poll overlap");
		return engine_error(wsi, pss, 3, "Bad request");
	}
	pss->conn = c;
	pss->route = &poll_route;
	if (c->out.count)
		return poll_flush(wsi, pss, c);
	if (c->upgrading) {
		/* Probing: do not hold a poll the client must finish first. */
		pss->conn = NULL;
		return http_respond(wsi, pss, 200, "text/plain; charset=UTF-8", "6", 1);
	}
	/* Park the request; lws would drop a deferred response after 5 s. */
	c->poll = wsi;
	lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
	return 0;
}

/* Feeds one segment of a POST body to the connection. */
static void post_segment(struct conn *c, const char *seg, size_t len)
{
	struct eio_packet pkt;

	if (len && seg[0] == 'b') {
		unsigned char *raw = xmalloc(base64_decoded_max(len - 1));
		long n = base64_decode(seg + 1, len - 1, raw);
		if (n < 0)
			protocol_error(c, "bad_base64", "invalid base64 packet");
		else
			on_message(c, NULL, (const char *)raw, (size_t)n, 1);
		free(raw);
		return;
	}
	if (eio_parse(seg, len, &pkt) < 0) {
		protocol_error(c, "bad_eio_packet", "invalid packet");
		return;
	}
	on_message(c, NULL, seg, len, 0);
}

static int post_body_done(struct lws *wsi, struct pss *pss)
{
	struct conn *c = pss->conn;
	const char *cur, *end, *seg;
	size_t seglen;

	if (!c || c->state != CONN_OPEN) {
		metrics_protocol_error("unknown_sid");
		return engine_error(wsi, pss, 1, "Session ID unknown");
	}
	if (pss->body_too_large) {
		metrics_protocol_error("payload_too_large");
		metrics_limit("max_payload");
		log_info("%s (%s): a polling POST body over %zu bytes (PARLEY_MAX_PAYLOAD): 413, "
			 "session closed", c->sid, c->hs.addr, settings.max_payload);
		metrics_http_error(413);
		conn_close(c, "payload too large");
		return http_respond(wsi, pss, 413, "text/plain", "payload too large", 17);
	}
	cur = pss->body;
	end = pss->body + pss->body_len;
	while (c->state == CONN_OPEN && eio_payload_next(&cur, end, &seg, &seglen))
		post_segment(c, seg, seglen);
	pss->conn = NULL;
	return http_respond(wsi, pss, 200, "text/html", ok_body, 2);
}

static int poll_writable(struct lws *wsi, struct pss *pss)
{
	struct conn *c = pss->conn;

	if (pss->dead_poll) {
		char packet = pss->dead_poll;
		pss->dead_poll = 0;
		return http_respond(wsi, pss, 200, "text/plain; charset=UTF-8", &packet, 1);
	}
	if (!c || c->poll != wsi)
		return 0;
	c->poll = NULL;
	pss->conn = NULL;
	if (c->transport == TRANSPORT_WEBSOCKET || (c->upgrading && !c->out.count))
		/* Upgrading or upgraded: the parked poll is released with a noop. */
		return http_respond(wsi, pss, 200, "text/plain; charset=UTF-8", "6", 1);
	return poll_flush(wsi, pss, c);
}

/* The poll's connection is gone: the session no longer waits on it. */
static void poll_closed(struct lws *wsi, struct pss *pss)
{
	struct conn *c = pss->conn;

	if (c && c->poll == wsi)
		c->poll = NULL;
}

/* ---- Socket.IO ---- */

static struct client *client_of(struct conn *c, const struct nsp *n)
{
	for (struct client *cl = c->clients; cl; cl = cl->next)
		if (cl->nsp == n)
			return cl;
	return NULL;
}

static void send_packet(struct conn *c, enum sio_type type, const char *nsp,
			size_t nsp_len, const char *json, size_t json_len)
{
	char head[1 + SIO_HEADER_MAX(256)];
	size_t n;

	if (nsp_len > 256)
		return;
	head[0] = '4';
	n = 1 + sio_write_header(head + 1, type, 0, nsp, nsp_len, -1);
	if (c->parser == PARSER_MSGPACK) {
		struct frame *text = frame_new2(head + 1, n - 1, json, json_len);
		struct frame *f = client_msgpack_frame((const char *)frame_data(text), text->len,
						       NULL, 0);
		frame_unref(text);
		if (f)
			conn_send(c, f);
		return;
	}
	conn_send(c, frame_new2(head, n, json, json_len));
}

/* CONNECT_ERROR with a message and, for refusals, data.statusCode. */
static void connect_error(struct conn *c, const char *nsp, size_t nsp_len,
			  const char *msg, int code)
{
	char esc[json_escaped_max(200)];
	char body[sizeof(esc) + 64];
	size_t mlen = strnlen(msg, 200);
	int n;

	esc[json_escape(msg, mlen, esc)] = '\0';
	if (code)
		n = snprintf(body, sizeof(body), "{\"message\":%s,\"data\":{\"statusCode\":%d}}",
			     esc, code);
	else
		n = snprintf(body, sizeof(body), "{\"message\":%s}", esc);
	send_packet(c, SIO_CONNECT_ERROR, nsp, nsp_len, body, (size_t)n);
}

/* The CONNECT answer: {"sid": id} and, with recovery on, {"pid": ...} the
 * client hands back to recover the socket. */
static void send_connected(struct conn *c, const struct client *cl)
{
	char body[96];
	int len;

	if (cl->rec)
		len = snprintf(body, sizeof(body), "{\"sid\":\"%s\",\"pid\":\"%s\"}", cl->id,
			       recovery_pid(cl->rec));
	else
		len = snprintf(body, sizeof(body), "{\"sid\":\"%s\"}", cl->id);
	send_packet(c, SIO_CONNECT, cl->nsp->name, cl->nsp->name_len, body, (size_t)len);
}

/* The CONNECT answer of a socket whose claim of another node's session
 * is settled (recovered or not; its connection is still there). */
static void answer_claim(struct client *cl)
{
	send_connected(cl->conn, cl);
}

/* A recovering client's CONNECT payload holds the pid it was given and the
 * offset of the last event it took (socket.io-client >= 4.6 adds them to
 * its auth): the socket `cl`, accepted, may then be a held one coming
 * back. Returns the socket the client now has. A pid or an offset that is
 * not a short string is no recovery. */
static struct client *recover(struct client *cl, const char *auth, size_t auth_len)
{
	struct json_span obj = { auth, auth_len }, v;
	char pid[RECOVERY_PID_MAX + 8], off[32];
	long plen, olen;
	uint64_t offset = 0;
	int has_offset = 0;

	if (!cl->rec || !auth || json_object_get(obj, "pid", &v) != 1)
		return cl;
	plen = json_kind_of(v) == JSON_STRING ? json_string_unescape(v, pid, sizeof(pid)) : -1;
	if (plen <= 0) {
		metrics_protocol_error("bad_recovery_pid");
		return cl;
	}
	if (json_object_get(obj, "offset", &v) == 1 && json_kind_of(v) == JSON_STRING) {
		olen = json_string_unescape(v, off, sizeof(off));
		has_offset = 1;
		/* Offsets are decimal, from 1: anything else is 0, which names no
		 * event. */
		for (long i = 0; i < olen; i++) {
			if (off[i] < '0' || off[i] > '9' || offset > (UINT64_MAX - 9) / 10) {
				offset = 0;
				break;
			}
			offset = offset * 10 + (uint64_t)(off[i] - '0');
		}
	}
	/* Another node's session (cluster mode): settled when Redis answers. */
	if (client_recover_elsewhere(cl, pid, (size_t)plen, has_offset, offset, answer_claim))
		return NULL;
	return client_recover(cl, pid, (size_t)plen, has_offset, offset);
}

static void on_connect(struct conn *c, const struct sio_packet *pkt)
{
	struct nsp *n = nsp_lookup(pkt->nsp, pkt->nsp_len);
	struct client *cl;
	char msg[256];
	int code = 0;

	if (pkt->len && json_validate(pkt->data, pkt->len, JSON_MAX_DEPTH) != JSON_OBJECT) {
		protocol_error(c, "bad_connect_payload", "invalid connect payload");
		return;
	}
	if (!n) {
		metrics_protocol_error("unknown_namespace");
		connect_error(c, pkt->nsp, pkt->nsp_len, "Invalid namespace", 0);
		return;
	}
	if (life.draining) {
		/* Unanswered: the session closes within the drain, and the client
		 * reconnects and connects the namespace again. A CONNECT_ERROR
		 * would end its retries for this namespace. */
		return;
	}
	cl = client_of(c, n);
	if (cl) {
		/* Already connected: confirm again, as a retry would expect. */
		send_connected(c, cl);
		return;
	}
	cl = client_new(c, n, c->parser == PARSER_MSGPACK ? CLIENT_SIO_MSGPACK : CLIENT_SIO);
	if (client_connect(cl, pkt->len ? pkt->data : NULL, pkt->len, &code,
			   msg, sizeof(msg)) < 0) {
		metrics_error(code);
		client_free(cl, NULL);
		connect_error(c, pkt->nsp, pkt->nsp_len, msg, code);
		return;
	}
	/* A recovered socket's missed events follow its CONNECT answer, before
	 * anything its connected hooks send. */
	struct client *now = recover(cl, pkt->len ? pkt->data : NULL, pkt->len);
	if (!now)
		return; /* answered when the claim is settled */
	send_connected(c, now);
	if (now != cl)
		client_replay(now);
	client_connected(now);
}

static void dispatch_event(struct client *cl, const char *data, size_t len,
			   const struct sio_attachment *att, unsigned natt, int64_t id)
{
	struct json_span name, args;
	char namebuf[256];
	char *argv = NULL;
	long nlen;

	if (sio_event_split(data, len, JSON_MAX_DEPTH, &name, &args) < 0) {
		protocol_error(cl->conn, "bad_event", "invalid event packet");
		return;
	}
	nlen = json_string_unescape(name, namebuf, sizeof(namebuf));
	if (nlen < 0) {
		client_error(cl, 400, "event name too long", id);
		return;
	}
	if (nlen == 0) {
		client_error(cl, 400, "event name must not be empty", id);
		return;
	}
	if (life.draining) {
		client_error(cl, 503, "the server is shutting down", id);
		return;
	}
	if (args.p) {
		/* Trim trailing spaces before the final ']' is kept as is. */
		argv = xmalloc(args.len);
		memcpy(argv, args.p, args.len);
		argv[0] = '[';
		client_event(cl, namebuf, (size_t)nlen, argv, args.len, att, natt, id);
		free(argv);
	} else {
		client_event(cl, namebuf, (size_t)nlen, "[]", 2, att, natt, id);
	}
}

static void dispatch_ack(struct client *cl, const char *data, size_t len,
			 const struct sio_attachment *att, unsigned natt, int64_t id)
{
	if (id < 0 || json_validate(data, len, JSON_MAX_DEPTH) != JSON_ARRAY) {
		protocol_error(cl->conn, "bad_ack", "invalid ack packet");
		return;
	}
	client_answer(cl, (uint64_t)id, data, len, att, natt);
}

static void finish_binary(struct conn *c)
{
	struct pending_binary *b = c->proto;
	struct sio_binary *pkt = &b->pkt;
	/* The socket it was for may have gone meanwhile (a script disconnected
	 * it); no other can have come, since a CONNECT would have been a text
	 * packet while attachments were due. */
	struct client *cl = b->nsp ? client_of(c, b->nsp) : NULL;

	c->proto = NULL;
	if (cl) {
		if (pkt->type == SIO_BINARY_EVENT)
			dispatch_event(cl, pkt->json, pkt->json_len, pkt->att, pkt->count, pkt->id);
		else
			dispatch_ack(cl, pkt->json, pkt->json_len, pkt->att, pkt->count, pkt->id);
	}
	pending_binary_free(b);
}

/* A binary packet past one of its limits: it is dropped (its bytes are
 * released now) and the connection closed, as socket.io closes one whose
 * binary packet cannot be put together: refusing one event is not
 * possible, since the attachments still on their way would be taken for
 * what comes after it. */
static void binary_refused(struct conn *c, const char *limit, const char *what, int code)
{
	struct pending_binary *b = c->proto;

	metrics_limit(limit);
	log_info("%s (%s): a binary event holding %zu bytes with %u of %u attachments: %s: closing",
		 c->sid, c->hs.addr, b->pkt.bytes, b->pkt.count, b->pkt.expected, what);
	c->proto = NULL;
	pending_binary_free(b);
	c->ws_close_code = (uint16_t)code;
	conn_close(c, "binary event refused");
}

static void on_binary_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct pending_binary *b = (struct pending_binary *)((char *)t -
							     offsetof(struct pending_binary, timeout));

	(void)loop;
	(void)revents;
	binary_refused(b->conn, "binary_timeout",
		       "no attachment within PARLEY_BINARY_TIMEOUT", WS_PROTOCOL_ERROR);
}

/* Whether `len` more bytes of binary packets fit in the server's cap;
 * refuses the connection's packet (and closes it) when not. */
static int binary_server_room(struct conn *c, size_t len)
{
	if (binary_pending + len <= settings.max_binary_pending_total)
		return 1;
	binary_refused(c, "max_binary_pending_total",
		       "the server's binary events over PARLEY_MAX_BINARY_PENDING_TOTAL",
		       WS_MESSAGE_TOO_BIG);
	return 0;
}

/* The connection's packet took `len` more bytes (sio_binary_* checked them
 * against PARLEY_MAX_BINARY_PENDING before the copy). */
static void binary_held(struct pending_binary *b, size_t len)
{
	binary_pending += len;
	/* The wait is for the next attachment: a big event on a slow link
	 * goes on as long as its attachments keep coming. */
	timer_start(&b->timeout, on_binary_timeout, settings.binary_timeout_ms);
}

/* One Socket.IO packet, from either parser: a msgpack one brings its
 * binaries along (`att`); a text one announces them (BINARY_ types). */
static void on_packet(struct conn *c, const struct sio_packet *p,
		      const struct sio_attachment *att, unsigned natt)
{
	struct sio_packet pkt = *p;
	struct client *cl;
	struct nsp *n;

	if (pkt.type == SIO_CONNECT) {
		on_connect(c, &pkt);
		return;
	}
	n = nsp_lookup(pkt.nsp, pkt.nsp_len);
	cl = n ? client_of(c, n) : NULL;
	switch (pkt.type) {
	case SIO_DISCONNECT:
		if (cl)
			client_free(cl, "client namespace disconnect");
		return;
	case SIO_EVENT:
	case SIO_ACK:
		if (!cl) {
			/* Socket.IO ignores packets for a namespace not joined. */
			metrics_protocol_error("not_connected");
			return;
		}
		if (pkt.type == SIO_EVENT)
			dispatch_event(cl, pkt.data, pkt.len, att, natt, pkt.id);
		else
			dispatch_ack(cl, pkt.data, pkt.len, att, natt, pkt.id);
		return;
	case SIO_BINARY_EVENT:
	case SIO_BINARY_ACK: {
		struct pending_binary *b = xcalloc(1, sizeof(*b));
		b->nsp = cl ? n : NULL;
		b->conn = c;
		b->pkt.expected = pkt.attachments; /* for the log, if refused */
		c->proto = b;
		if (!binary_server_room(c, pkt.len))
			return;
		/* The payload is at most PARLEY_MAX_PAYLOAD, which config.c keeps
		 * below the cap: in practice only attachments are refused. */
		if (sio_binary_init(&b->pkt, &pkt, settings.max_binary_pending) < 0) {
			binary_refused(c, "max_binary_pending", "over PARLEY_MAX_BINARY_PENDING",
				       WS_MESSAGE_TOO_BIG);
			return;
		}
		binary_held(b, pkt.len);
		if (sio_binary_complete(&b->pkt))
			finish_binary(c);
		return;
	}
	default:
		protocol_error(c, "bad_sio_type", "unexpected packet type");
		return;
	}
}

static void on_sio_packet(struct conn *c, const char *p, size_t len)
{
	struct sio_packet pkt;

	if (c->proto) {
		protocol_error(c, "missing_attachment", "text packet while attachments were due");
		return;
	}
	if (sio_parse(p, len, MAX_ATTACHMENTS, &pkt) < 0) {
		protocol_error(c, "bad_sio_packet", "invalid packet");
		return;
	}
	on_packet(c, &pkt, NULL, 0);
}

/* A msgpack packet that does not decode: the connection is closed, as
 * socket.io closes one whose packet does not parse. */
static void msgpack_refused(struct conn *c, const char *kind, const char *why)
{
	log_info("%s (%s): a msgpack packet refused (%s): closing", c->sid, c->hs.addr, why);
	protocol_error(c, kind, "invalid msgpack packet");
}

/* One socket.io-msgpack-parser packet: decoded under the text path's
 * limits, then handled as the text packet it amounts to. */
static void on_msgpack_packet(struct conn *c, const char *p, size_t len)
{
	const struct sio_msgpack_limits lim = {
		.max_depth = JSON_MAX_DEPTH,
		.max_attachments = MAX_ATTACHMENTS,
		.max_json = settings.max_payload,
	};
	struct sio_msgpack_packet m;
	const char *why = "";
	int r = sio_msgpack_decode(p, len, &lim, &m, &why);

	if (r < 0) {
		msgpack_refused(c, r == -ELOOP ? "msgpack_depth" : r == -EMSGSIZE ? "msgpack_size" :
				r == -EPROTO ? "msgpack_bad_packet" : "msgpack_malformed", why);
		return;
	}
	c->parser = PARSER_MSGPACK;
	on_packet(c, &m.pkt, m.att, m.natt);
	sio_msgpack_packet_fini(&m);
}

static void on_attachment(struct conn *c, const char *p, size_t len)
{
	struct pending_binary *b = c->proto;
	int r;

	if (!b) {
		protocol_error(c, "unexpected_binary", "binary packet without a binary event");
		return;
	}
	if (!binary_server_room(c, len))
		return;
	/* The header's count is what is due: once it is complete, c->proto is
	 * gone, so an extra attachment lands above as a stray one. */
	r = sio_binary_add(&b->pkt, p, len);
	if (r == -EMSGSIZE) {
		binary_refused(c, "max_binary_pending", "over PARLEY_MAX_BINARY_PENDING",
			       WS_MESSAGE_TOO_BIG);
		return;
	}
	binary_held(b, len);
	if (r == 1)
		finish_binary(c);
}

/* A WebSocket that is probing an upgrade: "2probe", then "5". */
static void on_probe_packet(struct conn *c, struct ws *w, const char *p, size_t len)
{
	if (len == 6 && memcmp(p, "2probe", 6) == 0) {
		ws_send_text(w, "3probe", 6);
		/* The client sends "5" only once its current poll returns: a
		 * parked poll is released with a noop (as engine.io does). */
		c->upgrading = 1;
		if (c->poll)
			lws_callback_on_writable(c->poll);
		return;
	}
	if (len == 1 && p[0] == '5') {
		c->upgrading = 0;
		c->probe = NULL;
		c->ws = w;
		c->transport = TRANSPORT_WEBSOCKET;
		metrics_upgrade();
		if (c->poll)
			lws_callback_on_writable(c->poll);
		if (c->close_on_upgrade)
			conn_shutdown(c);
		else if (c->out.count)
			ws_want_writable(w);
		return;
	}
	metrics_protocol_error("bad_probe");
	c->upgrading = 0;
	c->probe = NULL;
	ws_close(w, WS_PROTOCOL_ERROR, "bad probe");
}

/* One Engine.IO packet from the client (`w`: the WebSocket it came on, or
 * NULL for a polling POST). */
static void on_message(struct conn *c, struct ws *w, const char *p, size_t len, int binary)
{
	struct eio_packet pkt;

	if (w && w == c->probe) {
		on_probe_packet(c, w, p, len);
		return;
	}
	if (binary) {
		/* An attachment the text parser announced, or a whole packet of
		 * socket.io-msgpack-parser's. */
		if (c->parser == PARSER_JSON || c->proto)
			on_attachment(c, p, len);
		else
			on_msgpack_packet(c, p, len);
		return;
	}
	if (eio_parse(p, len, &pkt) < 0 || pkt.base64) {
		protocol_error(c, "bad_eio_packet", "invalid packet");
		return;
	}
	switch (pkt.type) {
	case EIO_MESSAGE:
		if (c->parser == PARSER_MSGPACK) {
			msgpack_refused(c, "msgpack_text_packet", "a text packet on a msgpack session");
			return;
		}
		c->parser = PARSER_JSON;
		on_sio_packet(c, pkt.data, pkt.len);
		return;
	case EIO_PONG:
		conn_heartbeat_start(c);
		return;
	case EIO_PING:
		conn_send(c, frame_new2("3", 1, pkt.data, pkt.len));
		return;
	case EIO_CLOSE:
		if (w) {
			conn_close(c, "client close");
			return;
		}
		/* A POST: a poll the client sent with it may be read after it
		 * (on_closed answers that poll). */
		conn_close_soon(c);
		return;
	case EIO_NOOP:
		return;
	default:
		protocol_error(c, "bad_eio_type", "unexpected packet type");
		return;
	}
}

/* Whether a connection closed for `reason` leaves its sockets to be
 * recovered: a transport that dropped (the client went away, or stopped
 * answering pings), as socket.io holds them; not one the server or the
 * client's socket ended on purpose, nor one closed for breaking a rule. */
static int recoverable(const char *reason)
{
	return strcmp(reason, "transport close") == 0 || strcmp(reason, "ping timeout") == 0 ||
	       strcmp(reason, "client close") == 0;
}

static void on_closed(struct conn *c, const char *reason)
{
	if (c->client_closed && c->poll) {
		/* The client closed its own session (a POST of "1"): its
		 * parked poll is released with a noop, as engine.io does; the
		 * close packet (conn_close) is for a close it did not ask for. */
		struct pss *pss = lws_wsi_user(c->poll);
		pss->conn = NULL;
		pss->dead_poll = '6';
		lws_callback_on_writable(c->poll);
		c->poll = NULL;
	}
	if (recoverable(reason))
		client_hold_all(c, reason);
	else
		client_free_all(c, reason);
	/* A binary packet still waiting for attachments goes now: its bytes
	 * are released with the connection, not when it is reaped. */
	pending_binary_free(c->proto);
	c->proto = NULL;
	if (engine_session(c->sid) == c)
		map_del(&sessions, c->sid, strlen(c->sid));
}

static void on_shutdown(struct conn *c)
{
	static const char why[] = "server shutting down";

	/* socket.io-client reports either way of closing as "transport close"
	 * and reconnects on its own, with backoff: to this server once it is
	 * back, or to another behind the same address. A Socket.IO DISCONNECT
	 * packet would read "io server disconnect", which socket.io-client
	 * takes for "you were kicked" and does not reconnect from: the seed's
	 * client, which never calls connect() again, would stay offline. */
	if (c->probe && c->upgrading) {
		/* "3probe" is answered or on its way: the client may have paused
		 * its polling for the upgrade, and then hears nothing but the
		 * probe - a close packet queued for polling would never reach it,
		 * nor would the probe's own close (its polling stays paused until
		 * the ping timeout). The upgrade finishes; the WebSocket it makes
		 * is told (on_probe_packet, on "5"). */
		c->close_on_upgrade = 1;
		return;
	}
	if (c->probe) {
		/* No "2probe" yet: the client still polls, and hears the close
		 * there after this probe fails. */
		ws_close(c->probe, WS_GOING_AWAY, why);
		c->probe = NULL;
	}
	if (c->transport == TRANSPORT_WEBSOCKET) {
		if (!c->close_code)
			conn_close_after_flush(c, WS_GOING_AWAY, why);
		return;
	}
	/* Polling: the close packet goes last in the queue; once a poll has
	 * taken it (poll_flush), the session waits for the drain to end. */
	conn_send(c, frame_new("1", 1, 0));
	c->poll_close = 1;
	if (c->poll)
		lws_callback_on_writable(c->poll);
}

void engine_ws_open(struct ws *w, struct handshake *hs)
{
	struct conn *c = conn_new(&engine_ops, TRANSPORT_WEBSOCKET);

	c->ws = w;
	ws_attach(w, c);
	c->hs = *hs;
	memset(hs, 0, sizeof(*hs));
	conn_send(c, open_frame(c));
	conn_heartbeat_open(c);
}

void engine_probe_open(struct conn *c, struct ws *w)
{
	c->probe = w;
	ws_attach(w, c);
}
