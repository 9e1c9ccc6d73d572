/* conn.c - one client's transport: its output queue, its WebSocket writer,
 * its heartbeat, and a close that tells its protocol (which disconnects its
 * sockets) and defers the free until the callback that caused it has
 * returned. What a message means is the protocol's (struct conn_ops). */
#include <stddef.h>
#include <string.h>
#include <sys/random.h>

#include "net/conn.h"

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/settings.h"
#include "net/http.h"
#include "net/ws.h"
#include "wire/base64.h"
#include "wire/websocket.h"

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

struct conn *conn_all(void)
{
	return all;
}

/* How /metrics counts the connection. */
static enum metrics_transport metrics_of(const struct conn *c)
{
	if (c->ops->metrics >= 0)
		return (enum metrics_transport)c->ops->metrics;
	return c->transport == TRANSPORT_POLLING ? METRICS_POLLING : METRICS_WEBSOCKET;
}

struct conn *conn_new(const struct conn_ops *ops, enum conn_transport transport)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->ops = ops;
	c->transport = transport;
	c->state = CONN_OPEN;
	conn_new_sid(c->sid);
	c->all_next = all;
	if (all)
		all->all_prev = c;
	all = c;
	metrics_connection(metrics_of(c), +1);
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
	/* Nothing goes after the protocol's last word (poll_close: the
	 * Engine.IO close packet): the client stops reading there. */
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
	c->ops->closed(c, reason);
	timer_stop(&c->heartbeat);
	if (c->throttle) {
		timer_stop(&c->throttle->timer);
		free(c->throttle);
		c->throttle = NULL;
	}
	if (c->all_prev)
		c->all_prev->all_next = c->all_next;
	else
		all = c->all_next;
	if (c->all_next)
		c->all_next->all_prev = c->all_prev;
	metrics_connection(metrics_of(c), -1);
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
		pss->dead_poll = '1';
		lws_callback_on_writable(c->poll);
		c->poll = NULL;
	}
	c->reap_next = reap;
	reap = c;
}

void conn_close_soon(struct conn *c)
{
	if (c->state != CONN_OPEN || c->doomed)
		return;
	c->client_closed = 1;
	c->doomed = 1;
	c->doomed_next = doomed;
	doomed = c;
}

void conn_reap(void)
{
	while (doomed) {
		struct conn *c = doomed;
		doomed = c->doomed_next;
		conn_close(c, c->client_closed ? "client close" : "slow consumer");
	}
	while (reap) {
		struct conn *c = reap;
		reap = c->reap_next;
		outq_clear(&c->out);
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

/* Frames compressed during this flush, and what they became. With no
 * context takeover every WebSocket gets the same bytes for one message, so
 * one deflate serves all of a broadcast's recipients. A slot per frame
 * address (a reference kept, so the address cannot be another frame's);
 * messages past DEFLATED_MAX are compressed for each recipient instead, so
 * that the slots' buffers, kept once made, hold about DEFLATED_SLOTS x
 * DEFLATED_MAX bytes at most. */
#define DEFLATED_SLOTS 16
#define DEFLATED_MAX (64 * 1024)

static struct deflated {
	struct frame *f;
	int opcode;
	unsigned char *z;
	size_t len;
} deflated[DEFLATED_SLOTS];

/* The frame `f` compressed (its header included) into `own` (room for
 * ws_deflate_room(f->len), used when it is not kept): `*len` bytes. */
static const unsigned char *deflated_frame(struct frame *f, int opcode, unsigned char *own,
					   size_t *len)
{
	struct deflated *d = &deflated[((uintptr_t)f >> 6) % DEFLATED_SLOTS];

	if (f->len > DEFLATED_MAX) {
		*len = ws_deflate_write(opcode, frame_data(f), f->len, own);
		return own;
	}
	if (d->f != f || d->opcode != opcode) {
		if (!d->z)
			d->z = xmalloc(ws_deflate_room(DEFLATED_MAX));
		d->len = ws_deflate_write(opcode, frame_data(f), f->len, d->z);
		frame_unref(d->f);
		d->f = frame_ref(f);
		d->opcode = opcode;
	}
	*len = d->len;
	return d->z;
}

/* Lets the slots' frames go (at the end of a flush: no frame is kept past
 * it); `buffers`: their buffers too. */
static void deflated_drop(int buffers)
{
	for (int i = 0; i < DEFLATED_SLOTS; i++) {
		frame_unref(deflated[i].f);
		deflated[i].f = NULL;
		if (buffers) {
			free(deflated[i].z);
			deflated[i].z = NULL;
		}
	}
}

void conn_fini(void)
{
	dirty = NULL; /* every connection is closed: nothing to write */
	conn_reap();
	deflated_drop(1);
}

/* The heartbeat: a ping every pingInterval, and a connection that has not
 * answered the last one within pingTimeout is closed. The protocol says
 * what a ping is (Engine.IO: its "2" packet; a plain WebSocket: a WebSocket
 * ping, to which anything it sends counts as the answer). */
static void on_heartbeat(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, heartbeat));
	struct frame *f;

	(void)loop;
	(void)revents;
	if (c->awaiting_connect) {
		/* The first timer (conn_heartbeat_open) is the deadline to
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
	f = frame_new(c->ops->ping, strlen(c->ops->ping), 0);
	if (c->ops->ping_control)
		f->opcode = WS_PING; /* the pong restarts the heartbeat */
	conn_send(c, f);
	timer_start(&c->heartbeat, on_heartbeat, settings.ping_timeout_ms);
}

void conn_drain_ping(struct conn *c)
{
	struct frame *f;

	if (c->state != CONN_OPEN || c->doomed)
		return;
	/* A heartbeat ping still unanswered is answered first: its pong does
	 * not count for this one. */
	c->drain_pongs = c->pong_due ? 2 : 1;
	f = frame_new(c->ops->ping, strlen(c->ops->ping), 0);
	if (c->ops->ping_control)
		f->opcode = WS_PING;
	conn_send(c, f);
}

int conn_drain_answered(const struct conn *c)
{
	return c->state != CONN_OPEN || c->doomed || c->drain_pongs == 0;
}

void conn_heartbeat_start(struct conn *c)
{
	/* A pong of the protocol's (a WebSocket-ping protocol counts only
	 * real pongs, in conn_ws_pong). */
	if (c->drain_pongs && !c->ops->ping_control)
		c->drain_pongs--;
	/* An unasked pong does not put off the deadline to connect. */
	if (c->awaiting_connect)
		return;
	c->pong_due = 0;
	timer_start(&c->heartbeat, on_heartbeat, settings.ping_interval_ms);
}

void conn_heartbeat_open(struct conn *c)
{
	if (settings.connect_timeout_ms < settings.ping_interval_ms) {
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

	c->ops->message(c, w, data, len, binary);
}

/* Writes the WebSocket header of `f` into its headroom and returns where
 * the frame now starts. A shared frame gets the same header whoever it goes
 * to, so writing it again for the next recipient changes nothing. */
static unsigned char *ws_frame_start(struct frame *f, size_t *len)
{
	unsigned char *p = frame_data(f) - ws_header_len(f->len);

	ws_header_write(p, f->opcode ? f->opcode : f->binary ? WS_BINARY : WS_TEXT, f->len);
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
		int opcode = f->opcode ? f->opcode : f->binary ? WS_BINARY : WS_TEXT;
		size_t len;
		unsigned char *start;
		if (ws_compresses(c->ws, opcode, f->len)) {
			/* Compressed (once for all who get it): into the batch,
			 * or on its own when it does not fit one. */
			unsigned char *own = f->len > DEFLATED_MAX ? xmalloc(ws_deflate_room(f->len)) : NULL;
			const unsigned char *z = deflated_frame(f, opcode, own, &len);
			if (total + len > WS_WRITE_BATCH) {
				if (total) {
					free(own);
					break;
				}
				ws_write(c->ws, z, len);
				free(own);
				frame_unref(outq_pop(&c->out));
				goto written;
			}
			memcpy(batch + total, z, len);
			free(own);
			total += len;
			frame_unref(outq_pop(&c->out));
			continue;
		}
		start = ws_frame_start(f, &len);
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
	deflated_drop(0);
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

	/* A heartbeat of WebSocket pings: the pong restarts it, and a peer
	 * that talks is alive (no need for the pong then). */
	if (!c->ops->ping_control)
		return;
	if (pong && c->drain_pongs)
		c->drain_pongs--;
	if (pong ? c->state == CONN_OPEN : c->pong_due)
		conn_heartbeat_start(c);
}

static void on_throttle_end(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct throttle *th = (struct throttle *)((char *)t - offsetof(struct throttle, timer));
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
	if (c->state != CONN_OPEN || c->doomed)
		return;
	c->ops->shutdown(c);
}
