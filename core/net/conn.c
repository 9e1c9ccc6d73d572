/* conn.c - one client's transport: its output queue, its WebSocket writer,
 * the Engine.IO heartbeat, and a close that disconnects its sockets and
 * defers the free until the callback that caused it has returned. */
#include <string.h>
#include <sys/random.h>

#include "net/conn.h"

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/map.h"
#include "base/metrics.h"
#include "base/settings.h"
#include "hub/client.h"
#include "net/http.h"
#include "net/ws.h"
#include "proto/engine.h"
#include "proto/plain.h"
#include "wire/base64.h"
#include "wire/eio.h"
#include "wire/websocket.h"

static struct map sessions; /* Engine.IO sid -> struct conn, for sessions that
			     * began on polling (the others are never looked up) */
static struct conn *all;    /* every open connection */
static struct conn *reap;   /* closed, freed after the callback returns */
static struct conn *doomed; /* to close after the callback returns */
static struct conn *dirty;  /* WebSockets with frames to write this iteration */

/* A connection whose reading is paused (conn_throttle). */
struct throttle {
	ev_timer timer;
	struct conn *conn;
};

void conn_new_sid(char out[24])
{
	unsigned char raw[15];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		/* getrandom on Linux does not fail for 15 bytes once seeded. */
		log_error("getrandom failed");
		abort();
	}
	base64url_encode(raw, sizeof(raw), out);
}

void conn_init(void)
{
	map_init(&sessions);
}

struct conn *conn_find(const char *sid)
{
	return map_get(&sessions, sid, strlen(sid));
}

struct conn *conn_all(void)
{
	return all;
}

struct conn *conn_new(enum conn_kind kind, enum conn_transport transport)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->kind = kind;
	c->transport = transport;
	c->state = CONN_OPEN;
	do
		conn_new_sid(c->sid);
	while (map_get(&sessions, c->sid, strlen(c->sid)));
	if (transport == TRANSPORT_POLLING) {
		map_put(&sessions, c->sid, strlen(c->sid), c);
		c->in_sid_map = 1;
	}
	c->all_next = all;
	if (all)
		all->all_prev = c;
	all = c;
	metrics_connection(kind == CONN_PLAIN ? METRICS_PLAIN :
			   transport == TRANSPORT_POLLING ? METRICS_POLLING :
			   METRICS_WEBSOCKET, +1);
	return c;
}

/* A WebSocket's frames are not written when queued but once per loop
 * iteration (conn_flush), so everything one iteration sends a socket goes
 * out in one write. A parked poll is answered on its writable callback. */
static void wake_writer(struct conn *c)
{
	if (c->transport == TRANSPORT_WEBSOCKET) {
		if (c->ws && !c->dirty) {
			c->dirty = 1;
			c->dirty_next = dirty;
			dirty = c;
		}
	} else if (c->poll) {
		lws_callback_on_writable(c->poll);
	}
}

void conn_send(struct conn *c, struct frame *f)
{
	if (c->state != CONN_OPEN) {
		frame_unref(f);
		return;
	}
	/* Nothing goes after the Engine.IO close packet: the client stops
	 * reading there. */
	if (c->doomed || c->poll_close) {
		frame_unref(f);
		return;
	}
	outq_push(&c->out, f);
	if (c->out.bytes > settings.max_buffer) {
		/* Closing here could change rooms under a broadcast walk: the
		 * connection is closed after the current callback instead. */
		metrics_protocol_error("slow_consumer");
		metrics_limit("max_buffer");
		log_warn("%s: %zu bytes wait unread (PARLEY_MAX_BUFFER): closing the slow consumer",
			 c->sid, c->out.bytes);
		outq_clear(&c->out);
		c->doomed = 1;
		c->doomed_next = doomed;
		doomed = c;
		return;
	}
	if (c->out.count == 1)
		wake_writer(c);
}

void conn_close(struct conn *c, const char *reason)
{
	if (c->state == CONN_CLOSED)
		return;
	log_debug("%s: closed (%s)", c->sid, reason);
	/* Closed first, so that the disconnect hooks' emits to it are dropped
	 * and freeing its sockets cannot close it again. */
	c->state = CONN_CLOSED;
	while (c->clients)
		client_free(c->clients, reason);
	timer_stop(&c->heartbeat);
	/* A binary packet still waiting for attachments goes now: its bytes
	 * are released with the connection, not when it is reaped. */
	pending_binary_free(c->bin);
	c->bin = NULL;
	if (c->throttle) {
		timer_stop(&c->throttle->timer);
		free(c->throttle);
		c->throttle = NULL;
	}
	if (c->in_sid_map)
		map_del(&sessions, c->sid, strlen(c->sid));
	if (c->all_prev)
		c->all_prev->all_next = c->all_next;
	else
		all = c->all_next;
	if (c->all_next)
		c->all_next->all_prev = c->all_prev;
	metrics_connection(c->kind == CONN_PLAIN ? METRICS_PLAIN :
			   c->transport == TRANSPORT_POLLING ? METRICS_POLLING :
			   METRICS_WEBSOCKET, -1);
	int code = c->ws_close_code ? c->ws_close_code :
		   life.stopping ? WS_GOING_AWAY : WS_NORMAL;
	if (c->ws) {
		ws_close(c->ws, code, reason);
		c->ws = NULL;
	}
	if (c->probe) {
		ws_close(c->probe, code, reason);
		c->probe = NULL;
	}
	if (c->poll) {
		/* A parked poll is answered with a close packet, not dropped. */
		struct pss *pss = lws_wsi_user(c->poll);
		pss->conn = NULL;
		pss->dead_poll = 1;
		lws_callback_on_writable(c->poll);
		c->poll = NULL;
	}
	c->reap_next = reap;
	reap = c;
}

void conn_reap(void)
{
	while (doomed) {
		struct conn *c = doomed;
		doomed = c->doomed_next;
		conn_close(c, "slow consumer");
	}
	while (reap) {
		struct conn *c = reap;
		reap = c->reap_next;
		outq_clear(&c->out);
		pending_binary_free(c->bin);
		http_handshake_fini(&c->hs);
		free(c->close_text);
		free(c);
	}
}

void conn_close_all(const char *reason)
{
	while (all)
		conn_close(all, reason);
}

void conn_fini(void)
{
	dirty = NULL; /* every connection is closed: nothing to write */
	conn_reap();
	map_fini(&sessions);
}

/* The heartbeat: a ping every pingInterval, and a connection that has not
 * answered the last one within pingTimeout is closed. Engine.IO pings with
 * its "2" packet; a plain WebSocket with a WebSocket ping, and anything it
 * sends counts as the answer. */
static void on_heartbeat(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct conn *c = lws_container_of(t, struct conn, heartbeat);
	static const char ping[] = "2";

	(void)loop;
	(void)revents;
	if (c->awaiting_connect) {
		/* The first timer of an Engine.IO session is its deadline to
		 * connect a namespace (Socket.IO's connectTimeout). */
		c->awaiting_connect = 0;
		if (!c->clients) {
			metrics_limit("connect_timeout");
			log_info("%s: no namespace connected within PARLEY_CONNECT_TIMEOUT: closing",
				 c->sid);
			conn_close(c, "connect timeout");
			return;
		}
		int rest = settings.ping_interval_ms - settings.connect_timeout_ms;
		timer_start(&c->heartbeat, on_heartbeat, rest > 0 ? rest : 0);
		return;
	}
	if (c->pong_due) {
		metrics_protocol_error("ping_timeout");
		conn_close(c, "ping timeout");
		return;
	}
	c->pong_due = 1;
	if (c->kind == CONN_PLAIN) {
		/* A WebSocket ping; the pong restarts the heartbeat. */
		struct frame *f = frame_new("p", 1, 0);
		f->opcode = 0x9;
		conn_send(c, f);
	} else {
		conn_send(c, frame_new(ping, 1, 0));
	}
	timer_start(&c->heartbeat, on_heartbeat, settings.ping_timeout_ms);
}

void conn_heartbeat_start(struct conn *c)
{
	/* An unasked pong does not put off the deadline to connect. */
	if (c->awaiting_connect)
		return;
	c->pong_due = 0;
	timer_start(&c->heartbeat, on_heartbeat, settings.ping_interval_ms);
}

void conn_heartbeat_open(struct conn *c)
{
	if (c->kind == CONN_EIO && settings.connect_timeout_ms < settings.ping_interval_ms) {
		c->pong_due = 0;
		c->awaiting_connect = 1;
		timer_start(&c->heartbeat, on_heartbeat, settings.connect_timeout_ms);
		return;
	}
	conn_heartbeat_start(c);
}

void conn_ws_message(void *owner, struct ws *w, const char *data, size_t len, int binary)
{
	struct conn *c = owner;

	if (c->kind == CONN_PLAIN) {
		if (binary) {
			metrics_protocol_error("plain_binary");
			client_error(c->clients, 400, "binary frames are not accepted here", -1);
			return;
		}
		plain_on_message(c, data, len);
		return;
	}
	engine_on_packet(c, w, data, len, binary);
}

/* Writes the WebSocket header of `f` into its headroom and returns where
 * the frame now starts. A shared frame gets the same header whoever it goes
 * to, so writing it again for the next recipient changes nothing. Server
 * frames are never masked. */
static unsigned char *ws_frame_start(struct frame *f, size_t *len)
{
	unsigned char *p = frame_data(f);
	uint8_t op = 0x80 | (f->opcode ? f->opcode : f->binary ? 0x2 : 0x1);

	if (f->len < 126) {
		p -= 2;
		p[1] = (uint8_t)f->len;
	} else if (f->len <= 0xffff) {
		p -= 4;
		p[1] = 126;
		p[2] = (uint8_t)(f->len >> 8);
		p[3] = (uint8_t)f->len;
	} else {
		p -= 10;
		p[1] = 127;
		for (int i = 0; i < 8; i++)
			p[2 + i] = (uint8_t)((uint64_t)f->len >> (56 - 8 * i));
	}
	p[0] = op;
	*len = (size_t)(frame_data(f) - p) + f->len;
	return p;
}

/* What goes out in one write(): the frames a socket gathered during one
 * loop iteration leave together, which is what lets a broadcast cost less
 * than one system call per delivery (NOTES.md: ~150k writes/s per core). */
static unsigned char batch[WS_WRITE_BATCH];

/* Writes queued frames, as many as one batch holds, to the WebSocket, whole
 * frames with their headers. What the socket does not take the WebSocket
 * keeps, and it calls back (conn_ws_writable) once that is out. */
static void write_queued(struct conn *c)
{
	struct frame *f;
	size_t total = 0;

	while ((f = outq_peek(&c->out))) {
		size_t len;
		unsigned char *start = ws_frame_start(f, &len);
		if (total + len > WS_WRITE_BATCH) {
			if (total)
				break;
			/* Too big to batch: straight from the frame. */
			ws_write(c->ws, start, len);
			frame_unref(outq_pop(&c->out));
			goto written;
		}
		memcpy(batch + total, start, len);
		total += len;
		frame_unref(outq_pop(&c->out));
	}
	ws_write(c->ws, batch, total);
written:
	/* A failed write has closed the connection (c->ws is gone). More than
	 * a batch: the rest waits until the socket takes more. */
	if (c->ws && c->out.count && !ws_busy(c->ws))
		ws_want_writable(c->ws);
}

void conn_flush(void)
{
	while (dirty) {
		struct conn *c = dirty;
		dirty = c->dirty_next;
		c->dirty = 0;
		if (c->state != CONN_OPEN || !c->ws || !c->out.count)
			continue;
		/* Output the socket has not taken goes first: the WebSocket
		 * calls back when it is out. */
		if (!ws_busy(c->ws))
			write_queued(c);
	}
}

void conn_ws_writable(void *owner, struct ws *w)
{
	struct conn *c = owner;

	if (c->state != CONN_OPEN || w != c->ws)
		return;
	if (c->out.count) {
		write_queued(c);
		/* The close comes on the next callback, after these frames. */
		if (c->ws && c->close_code && !c->out.count)
			ws_want_writable(c->ws);
		return;
	}
	if (c->close_code) {
		/* Everything before the close is out: now close. */
		c->ws = NULL;
		ws_close(w, c->close_code, c->close_text);
		conn_close(c, c->close_text);
	}
}

void conn_ws_closed(void *owner, struct ws *w, int code, const char *why)
{
	struct conn *c = owner;

	if (c->probe == w) {
		/* A probe: the session goes on polling. */
		c->probe = NULL;
		c->upgrading = 0;
		return;
	}
	if (c->ws != w)
		return;
	if (code) {
		log_info("%s (%s): %s: closing with %d", c->sid, c->hs.addr, why, code);
		c->ws_close_code = (uint16_t)code;
		conn_close(c, why); /* closes w with the code */
		return;
	}
	c->ws = NULL;
	conn_close(c, "transport close");
}

void conn_ws_pong(void *owner, int pong)
{
	struct conn *c = owner;

	/* A plain WebSocket's heartbeat is WebSocket pings: the pong restarts
	 * it, and a peer that talks is alive (no need for the pong then). */
	if (c->kind != CONN_PLAIN)
		return;
	if (pong ? c->state == CONN_OPEN : c->pong_due)
		conn_heartbeat_start(c);
}

static void on_throttle_end(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct throttle *th = lws_container_of(t, struct throttle, timer);
	struct conn *c = th->conn;

	(void)loop;
	(void)revents;
	c->throttle = NULL;
	if (c->ws)
		ws_pause(c->ws, 0);
	free(th);
}

void conn_throttle(struct conn *c, int ms)
{
	if (c->state != CONN_OPEN || !c->ws || c->transport != TRANSPORT_WEBSOCKET)
		return;
	if (!c->throttle) {
		c->throttle = xcalloc(1, sizeof(*c->throttle));
		c->throttle->conn = c;
		ws_pause(c->ws, 1);
	}
	timer_start(&c->throttle->timer, on_throttle_end, ms);
}

void conn_close_after_flush(struct conn *c, int code, const char *text)
{
	c->close_code = (uint16_t)code;
	free(c->close_text);
	c->close_text = xstrndup(text, strnlen(text, 100));
	if (c->ws)
		ws_want_writable(c->ws);
}

void conn_shutdown(struct conn *c)
{
	static const char why[] = "server shutting down";

	if (c->state != CONN_OPEN || c->doomed)
		return;
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
		 * is told (engine.c, on "5"). */
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
		/* A close already arranged (a refused plain socket's 4401) stands. */
		if (!c->close_code)
			conn_close_after_flush(c, WS_GOING_AWAY, why);
		return;
	}
	/* Polling: the close packet goes last in the queue; once a poll has
	 * taken it (engine.c), the session waits for the drain to end. */
	conn_send(c, frame_new("1", 1, 0));
	c->poll_close = 1;
	if (c->poll)
		lws_callback_on_writable(c->poll);
}

/* Encodes the whole queue as one polling payload: packets joined by the
 * record separator, binary ones as "b" + base64. */
char *conn_drain_payload(struct conn *c, size_t *len)
{
	size_t cap = 0, n = 0;
	char *out;
	struct frame *f;

	for (uint32_t i = 0; i < c->out.count; i++) {
		struct frame *g = c->out.slot[(c->out.head + i) & (c->out.cap - 1)];
		cap += 1 + (g->binary ? 1 + base64_encoded_len(g->len) : g->len);
	}
	out = xmalloc(LWS_PRE + cap + 1);
	while ((f = outq_pop(&c->out))) {
		char *p = out + LWS_PRE + n;
		if (n)
			*p++ = EIO_SEPARATOR, n++;
		if (f->binary) {
			*p++ = 'b';
			n += 1 + base64_encode(frame_data(f), f->len, p);
		} else {
			memcpy(p, frame_data(f), f->len);
			n += f->len;
		}
		frame_unref(f);
	}
	*len = n;
	return out;
}
