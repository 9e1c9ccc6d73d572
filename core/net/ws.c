/* ws.c - the listening socket, each connection's first request head, and
 * parley's WebSockets (see ws.h): the upgrade, frames in (one read buffer
 * for every socket), frames out (what the socket does not take is kept),
 * control frames and the closing handshake. */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "net/ws.h"

#include <libwebsockets.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/settings.h"
#include "net/peers.h"
#include "wire/base64.h"
#include "wire/json.h"
#include "wire/websocket.h"

enum ws_state {
	WS_HEAD,    /* reading the first request head */
	WS_OPEN,    /* upgraded: frames both ways */
	WS_CLOSING, /* our close frame is sent or queued: waiting for the peer's */
	WS_DONE,    /* to be freed by the callback that is running, or next */
};

struct ws {
	int fd;
	unsigned state : 2;
	unsigned in_message : 1;  /* a fragmented message is open */
	unsigned msg_binary : 1;  /* ... and it is binary */
	unsigned paused : 1;      /* reading stopped (ws_pause) */
	unsigned want_writable : 1;
	unsigned peer_closed : 1; /* the peer's close frame came */
	unsigned counted : 1;     /* in open_count */
	unsigned failing : 1;     /* the peer broke the protocol (fail) */
	unsigned deflate : 1;     /* permessage-deflate agreed */
	unsigned msg_deflated : 1; /* the message being read is compressed */
	unsigned wr_shut : 1;     /* ... our close frame is out: write side shut */
	unsigned events : 2;      /* what io watches: EV_READ | EV_WRITE */
	uint16_t head_wait_ms;    /* the head came in part: the last wait */
	uint32_t head_waited_ms;  /* ... and all waits so far */
	uint32_t in_len, in_cap;  /* a head or frame begun, not all read */
	uint32_t out_off, out_len;
	uint32_t msg_len, msg_cap;
	unsigned char *in;
	unsigned char *out;       /* bytes the socket has not taken */
	char *msg;                /* the fragments of a message so far */
	void *owner;              /* NULL before the upgrade and once closing */
	struct ws *prev, *next;   /* every WebSocket, for ws_fini */
	ev_io io;
	ev_timer timer; /* the head's deadline, the closing handshake's, or 0 s
			 * to free a WebSocket that ended outside its callback */
};

/* Every read goes here first: an idle socket holds no buffer of its own,
 * only the part of a frame (or head) that a read cut off. */
static unsigned char rbuf[64u << 10];

/* A request head longer than this is not ours: lws gets it (and refuses
 * it past max_http_header_data). */
#define HEAD_MAX 8192u
/* How long a peer gets to answer our close frame. */
#define CLOSE_WAIT_MS 3000
/* Descriptors kept out of the accept loop's reach, for our own files (the
 * database, logs, script reloads). */
#define FD_RESERVE 64
/* After accept fails for want of descriptors, how long it rests: accepting
 * again at once would spin (NOTES.md). */
#define ACCEPT_REST_MS 100

static int listen_fd = -1;
static ev_io listen_io;
static ev_timer accept_rest;
static int fd_ceiling; /* descriptors at or above are closed at accept */
static struct ws *all;
static unsigned open_count; /* upgraded and not yet freed */
static struct lws_context *http; /* where a request that is not an upgrade goes */
static const struct ws_handler *handler;

static void on_io(struct ev_loop *loop, ev_io *io, int revents);
static void consume(struct ws *w, unsigned char *buf, size_t len);

/* ---- lifetime ---- */

static void set_events(struct ws *w)
{
	int ev = 0;

	if (w->state != WS_DONE) {
		if (!w->paused || w->state == WS_CLOSING)
			ev |= EV_READ;
		if (w->out_len || w->want_writable)
			ev |= EV_WRITE;
	}
	if (ev == (int)w->events)
		return;
	ev_io_stop(clock_loop, &w->io);
	ev_io_modify(&w->io, ev);
	if (ev)
		ev_io_start(clock_loop, &w->io);
	w->events = (unsigned)ev;
}

static void ws_free(struct ws *w)
{
	ev_io_stop(clock_loop, &w->io);
	timer_stop(&w->timer);
	if (w->fd >= 0)
		close(w->fd);
	peers_closed(w);
	if (w->counted)
		open_count--;
	if (w->prev)
		w->prev->next = w->next;
	else
		all = w->next;
	if (w->next)
		w->next->prev = w->prev;
	free(w->in);
	free(w->out);
	free(w->msg);
	free(w);
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct ws *w = (struct ws *)((char *)t - offsetof(struct ws, timer));
	char addr[48];

	(void)loop;
	(void)revents;
	if (w->state == WS_HEAD && !life.stopping) {
		metrics_limit("connect_timeout");
		peers_address(w->fd, addr, sizeof(addr));
		log_info("%s: no complete HTTP request within PARLEY_CONNECT_TIMEOUT (%d ms): "
			 "connection dropped", addr, settings.connect_timeout_ms);
	}
	/* A closing handshake's deadline, or a WebSocket that ended outside
	 * its own callback. */
	ws_free(w);
}

/* Ends the WebSocket. Inside its own I/O callback the free comes when that
 * returns; anywhere else on the next loop iteration. */
static void ws_done(struct ws *w)
{
	w->state = WS_DONE;
	set_events(w);
	timer_start(&w->timer, on_timer, 0);
}

/* The socket is gone (the peer closed it, or it failed): the owner, if it
 * still has this WebSocket, is told. */
static void ws_gone(struct ws *w)
{
	void *owner = w->owner;

	w->owner = NULL;
	ws_done(w);
	if (owner)
		handler->closed(owner, w, 0, NULL);
}

/* ---- output ---- */

static int out_keep(struct ws *w, const unsigned char *p, size_t n)
{
	size_t need = (size_t)w->out_len + n;

	/* A peer that sends pings and reads nothing must not grow this. */
	if (need > settings.max_buffer + WS_WRITE_BATCH) {
		metrics_protocol_error("slow_consumer");
		metrics_limit("max_buffer");
		log_warn("a WebSocket holds %zu bytes unread (PARLEY_MAX_BUFFER): closing it", need);
		ws_gone(w);
		return -ENOBUFS;
	}
	if (w->out_off) {
		memmove(w->out, w->out + w->out_off, w->out_len);
		w->out_off = 0;
	}
	w->out = xrealloc(w->out, need);
	memcpy(w->out + w->out_len, p, n);
	w->out_len = (uint32_t)need;
	set_events(w);
	return 0;
}

int ws_write(struct ws *w, const void *p, size_t n)
{
	ssize_t k;

	if (w->state == WS_DONE)
		return -EPIPE;
	if (w->out_len)
		return out_keep(w, p, n);
	k = send(w->fd, p, n, MSG_NOSIGNAL);
	if (k < 0) {
		if (errno != EAGAIN && errno != EINTR) {
			int err = -errno;
			ws_gone(w);
			return err;
		}
		k = 0;
	}
	if ((size_t)k < n)
		return out_keep(w, (const unsigned char *)p + k, n - (size_t)k);
	return 0;
}

void ws_attach(struct ws *w, void *owner)
{
	w->owner = owner;
}

int ws_busy(const struct ws *w)
{
	return w->out_len != 0;
}

void ws_want_writable(struct ws *w)
{
	if (w->state != WS_OPEN)
		return;
	w->want_writable = 1;
	set_events(w);
}

static void control_write(struct ws *w, uint8_t opcode, const void *p, size_t n)
{
	unsigned char buf[14 + 125];
	size_t h = ws_header_write(buf, opcode, n);

	memcpy(buf + h, p, n);
	ws_write(w, buf, h + n);
}

void ws_send_text(struct ws *w, const char *p, size_t n)
{
	if (w->state == WS_OPEN && n <= 125)
		control_write(w, WS_TEXT, p, n);
}

static void maybe_finish(struct ws *w)
{
	if (w->state != WS_CLOSING || w->out_len)
		return;
	/* The server closes the TCP connection first (RFC 6455 §7.1.1), once
	 * both close frames have passed and ours is out. */
	if (w->peer_closed) {
		ws_done(w);
		return;
	}
	/* A peer that broke the protocol is not waited for (§7.1.7): once our
	 * close frame is out the connection ends. Only the write side, at
	 * once: closing the socket with the peer's bytes still unread (the
	 * rest of a message over the limit) would send a reset, which can
	 * destroy the close frame before the peer reads it. What still comes
	 * is read and dropped until the peer closes too, or the deadline. */
	if (w->failing && !w->wr_shut) {
		w->wr_shut = 1;
		shutdown(w->fd, SHUT_WR);
	}
}

static void on_writable(struct ws *w)
{
	if (w->out_len) {
		ssize_t k = send(w->fd, w->out + w->out_off, w->out_len, MSG_NOSIGNAL);
		if (k < 0) {
			if (errno != EAGAIN && errno != EINTR)
				ws_gone(w);
			return;
		}
		w->out_off += (uint32_t)k;
		w->out_len -= (uint32_t)k;
		if (w->out_len)
			return;
		free(w->out);
		w->out = NULL;
		w->out_off = 0;
		set_events(w);
	}
	maybe_finish(w);
	if (w->state == WS_OPEN && w->owner) {
		w->want_writable = 0;
		set_events(w);
		handler->writable(w->owner, w);
	}
}

void ws_pause(struct ws *w, int paused)
{
	w->paused = paused ? 1 : 0;
	set_events(w);
	if (!paused && w->in_len && w->state == WS_OPEN) {
		/* What was read before the pause comes before anything new. */
		size_t len = w->in_len;
		w->in_len = 0;
		consume(w, w->in, len);
	}
}

void ws_close(struct ws *w, int code, const char *reason)
{
	unsigned char payload[125];
	size_t rlen = reason ? strlen(reason) : 0;

	w->owner = NULL;
	if (w->state != WS_OPEN)
		return;
	if (rlen > sizeof(payload) - 2) {
		/* Cut at a character: the reason must stay UTF-8 (RFC 6455 §5.5.1). */
		rlen = sizeof(payload) - 2;
		while (rlen && ((unsigned char)reason[rlen] & 0xc0) == 0x80)
			rlen--;
	}
	payload[0] = (unsigned char)(code >> 8);
	payload[1] = (unsigned char)code;
	if (rlen)
		memcpy(payload + 2, reason, rlen);
	w->state = WS_CLOSING;
	w->want_writable = 0;
	free(w->msg);
	w->msg = NULL;
	w->msg_len = w->msg_cap = 0;
	w->in_message = 0;
	control_write(w, WS_CLOSE, payload, rlen + 2);
	if (w->state == WS_DONE)
		return;
	set_events(w); /* reading again if paused: the answer must be read */
	maybe_finish(w);
	if (w->state != WS_DONE && !w->peer_closed)
		timer_start(&w->timer, on_timer, CLOSE_WAIT_MS);
}

/* ---- input ---- */

/* Closes with `code` for a peer that broke the protocol; the owner is told
 * first (and may close it with the same code itself). */
static void fail(struct ws *w, int code, const char *kind, const char *why)
{
	void *owner = w->owner;

	metrics_protocol_error(kind);
	w->owner = NULL;
	/* Set first: the owner's own ws_close ends it the same way. */
	w->failing = 1;
	if (owner)
		handler->closed(owner, w, code, why);
	ws_close(w, code, why);
}

/* ---- permessage-deflate (RFC 7692) ----
 *
 * Agreed with no context takeover either way: each message is compressed
 * on its own, so a WebSocket keeps no zlib state between messages, and one
 * deflate and one inflate stream serve every WebSocket (the loop runs one
 * at a time). What compression costs in memory is those two streams, for
 * the whole server (~300 KB), never a window per connection. */

/* Messages shorter than this go out as they are (socket.io's threshold):
 * compressing them saves little and costs a deflate each. */
#define DEFLATE_THRESHOLD 1024

static z_stream deflater, inflater;
static int deflater_ready, inflater_ready;
/* RFC 7692 §7.2.1: a message's compressed bytes end with this, which is
 * left off on the wire. */
static const unsigned char deflate_tail[4] = { 0x00, 0x00, 0xff, 0xff };

int ws_compresses(const struct ws *w, int opcode, size_t n)
{
	return w->deflate && n >= DEFLATE_THRESHOLD && (opcode == WS_TEXT || opcode == WS_BINARY);
}

/* The shared deflate stream, made on first use (zlib's allocation fails
 * only for want of memory: the general allocator's rule, abort). */
static void deflater_init(void)
{
	if (deflater_ready)
		return;
	if (deflateInit2(&deflater, Z_BEST_SPEED, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	deflater_ready = 1;
}

size_t ws_deflate_room(size_t n)
{
	/* deflateBound covers a whole stream, and is never less than the
	 * message itself; the sync flush adds its empty block (5 bytes). */
	deflater_init();
	return WS_HEADER_MAX + (size_t)deflateBound(&deflater, (uLong)n) + 64;
}

size_t ws_deflate_write(int opcode, const void *p, size_t n, unsigned char *out)
{
	size_t room = ws_deflate_room(n) - WS_HEADER_MAX;
	unsigned char *z = out + WS_HEADER_MAX;
	size_t zlen, h;

	deflateReset(&deflater);
	deflater.next_in = (Bytef *)(uintptr_t)p;
	deflater.avail_in = (uInt)n;
	deflater.next_out = z;
	deflater.avail_out = (uInt)room;
	deflate(&deflater, Z_SYNC_FLUSH);
	zlen = room - deflater.avail_out;
	if (deflater.avail_in || !deflater.avail_out) {
		/* It did not all fit (deflateBound says it cannot happen): the
		 * message goes as it is, which RFC 7692 allows any message. */
		h = ws_header_write(out, (uint8_t)opcode, n);
		memcpy(out + h, p, n);
		return h + n;
	}
	if (zlen >= 4 && memcmp(z + zlen - 4, deflate_tail, 4) == 0)
		zlen -= 4;
	/* The header goes just before the payload, with RSV1 set: compressed. */
	h = ws_header_len(zlen);
	ws_header_write(z - h, (uint8_t)opcode, zlen);
	z[-(ptrdiff_t)h] |= 0x40;
	memmove(out, z - h, h + zlen);
	return h + zlen;
}

/* Inflates a compressed message into a new buffer (the caller frees it):
 * its length in *outlen, or NULL with *code the close code: 1009 past
 * PARLEY_MAX_PAYLOAD (checked as it grows: a small message may inflate to
 * anything), 1007 for bytes that are not deflate data. */
static char *inflate_message(const char *p, size_t len, size_t *outlen, int *code)
{
	size_t cap = len * 4 + 256, n = 0;
	char *out;
	int rc = Z_OK;

	if (!inflater_ready) {
		if (inflateInit2(&inflater, -15) != Z_OK)
			abort();
		inflater_ready = 1;
	}
	if (cap > settings.max_payload + 1)
		cap = settings.max_payload + 1;
	out = xmalloc(cap);
	inflateReset(&inflater);
	for (int part = 0; part < 2; part++) {
		/* The message, then the tail the sender left off. */
		inflater.next_in = part ? (Bytef *)(uintptr_t)deflate_tail : (Bytef *)(uintptr_t)p;
		inflater.avail_in = part ? 4 : (uInt)len;
		while (inflater.avail_in) {
			if (n == cap) {
				if (cap > settings.max_payload) {
					*code = WS_MESSAGE_TOO_BIG;
					goto fail;
				}
				cap = cap * 2 > settings.max_payload + 1 ? settings.max_payload + 1 : cap * 2;
				out = xrealloc(out, cap);
			}
			inflater.next_out = (Bytef *)out + n;
			inflater.avail_out = (uInt)(cap - n);
			rc = inflate(&inflater, Z_SYNC_FLUSH);
			n = cap - inflater.avail_out;
			if (rc == Z_STREAM_END)
				break;
			/* Z_BUF_ERROR with room left to write: no progress is
			 * possible on this input. */
			if (rc != Z_OK && (rc != Z_BUF_ERROR || inflater.avail_out)) {
				*code = WS_INVALID_PAYLOAD;
				goto fail;
			}
		}
	}
	if (n > settings.max_payload) {
		*code = WS_MESSAGE_TOO_BIG;
		goto fail;
	}
	*outlen = n;
	return out;
fail:
	free(out);
	return NULL;
}

/* Hands a whole message to its owner, inflated first if it came
 * compressed. Text must be UTF-8 (RFC 6455 §8.1), checked on the whole
 * message. */
static void deliver(struct ws *w, const char *p, size_t len, int binary)
{
	char *inflated = NULL;

	if (w->msg_deflated) {
		int code = 0;
		w->msg_deflated = 0;
		inflated = inflate_message(p, len, &len, &code);
		if (!inflated) {
			char why[96];
			if (code == WS_MESSAGE_TOO_BIG) {
				metrics_limit("max_payload");
				snprintf(why, sizeof(why), "a WebSocket message inflating past %zu bytes "
					 "(PARLEY_MAX_PAYLOAD)", settings.max_payload);
				fail(w, code, "payload_too_large", why);
			} else {
				fail(w, code, "bad_deflate", "a compressed message that does not inflate");
			}
			return;
		}
		p = inflated;
	}
	if (!binary && !json_utf8_valid(p, len))
		fail(w, WS_INVALID_PAYLOAD, "bad_utf8", "text message of invalid UTF-8");
	else
		handler->message(w->owner, w, p, len, binary);
	free(inflated);
}

static void on_close_frame(struct ws *w, const unsigned char *p, size_t len)
{
	unsigned code = len >= 2 ? (unsigned)p[0] << 8 | p[1] : 0;
	void *owner = w->owner;

	w->peer_closed = 1;
	if (w->state != WS_OPEN) {
		maybe_finish(w);
		return;
	}
	/* The answer echoes the peer's code; a malformed close gets 1002. */
	if (len == 1 || (len >= 2 && !ws_close_code_valid(code)))
		code = WS_PROTOCOL_ERROR;
	else if (len > 2 && !json_utf8_valid((const char *)p + 2, len - 2))
		code = WS_INVALID_PAYLOAD;
	if (code == WS_PROTOCOL_ERROR || code == WS_INVALID_PAYLOAD)
		metrics_protocol_error("bad_close_frame");
	w->owner = NULL;
	ws_close(w, code ? (int)code : WS_NORMAL, NULL);
	if (owner)
		handler->closed(owner, w, 0, NULL);
}

static void on_frame(struct ws *w, const struct ws_frame *f, unsigned char *p)
{
	void *owner = w->owner;
	size_t len = (size_t)f->len;

	switch (f->opcode) {
	case WS_PING:
		if (w->state == WS_OPEN)
			control_write(w, WS_PONG, p, len);
		return;
	case WS_PONG:
		if (owner && w->state == WS_OPEN)
			handler->pong(owner, 1);
		return;
	case WS_CLOSE:
		on_close_frame(w, p, len);
		return;
	}
	if (w->state != WS_OPEN || !owner)
		return; /* closing: what still comes is read and dropped */
	/* A peer that talks is alive (for a heartbeat of WebSocket pings). */
	handler->pong(owner, 0);
	if (f->opcode != WS_CONT)
		w->msg_binary = f->opcode == WS_BINARY;
	if (f->fin && !w->in_message) {
		/* The common case: a whole message in one frame, no copy. */
		deliver(w, (const char *)p, len, w->msg_binary);
		return;
	}
	if ((size_t)w->msg_len + len > w->msg_cap) {
		size_t cap = ((size_t)w->msg_len + len) * 2;
		if (cap > settings.max_payload)
			cap = settings.max_payload;
		w->msg = xrealloc(w->msg, cap);
		w->msg_cap = (uint32_t)cap;
	}
	memcpy(w->msg + w->msg_len, p, len);
	w->msg_len += (uint32_t)len;
	w->in_message = !f->fin;
	if (f->fin) {
		char *m = w->msg;
		size_t n = w->msg_len;
		w->msg = NULL;
		w->msg_len = w->msg_cap = 0;
		deliver(w, m, n, w->msg_binary);
		free(m);
	}
}

/* Handles the whole frames at `buf` and returns how many bytes they took;
 * the rest is a frame begun. Unmasks in place. */
static size_t frames(struct ws *w, unsigned char *buf, size_t len)
{
	size_t off = 0;

	/* A pause (ws_pause) stops here too: what was read already waits. */
	while (off < len && (w->state == WS_CLOSING || (w->state == WS_OPEN && !w->paused))) {
		struct ws_frame f;
		int hl = ws_frame_parse(buf + off, len - off, &f);
		const char *err;

		if (!hl)
			break;
		/* RSV1 on the first frame of a data message: compressed
		 * (RFC 7692 §6), where permessage-deflate was agreed. */
		if (w->deflate && (f.rsv & 4) && !w->in_message &&
		    (f.opcode == WS_TEXT || f.opcode == WS_BINARY)) {
			f.rsv &= (uint8_t)~4;
			w->msg_deflated = 1;
		} else if (f.opcode == WS_TEXT || f.opcode == WS_BINARY) {
			w->msg_deflated = 0;
		}
		err = ws_frame_error(&f, w->in_message);
		if (err) {
			if (w->state == WS_CLOSING)
				ws_done(w);
			else
				fail(w, WS_PROTOCOL_ERROR, "bad_ws_frame", err);
			return len;
		}
		if (!(f.opcode & 0x8) && (uint64_t)w->msg_len + f.len > settings.max_payload) {
			char why[96];
			if (w->state == WS_CLOSING) {
				ws_done(w); /* not buffered for a close that may not come */
				return len;
			}
			snprintf(why, sizeof(why), "a WebSocket message over %zu bytes (PARLEY_MAX_PAYLOAD)",
				 settings.max_payload);
			metrics_limit("max_payload");
			fail(w, WS_MESSAGE_TOO_BIG, "payload_too_large", why);
			return len;
		}
		if (len - off - (size_t)hl < f.len)
			break;
		ws_unmask(buf + off + hl, (size_t)f.len, f.mask, 0);
		on_frame(w, &f, buf + off + hl);
		off += (size_t)hl + (size_t)f.len;
	}
	return off;
}

/* Keeps `n` bytes at `p` as the start of the next frame or head. */
static void keep_input(struct ws *w, const unsigned char *p, size_t n)
{
	if (p == w->in) {
		w->in_len = (uint32_t)n; /* still the frame begun: nothing moves */
		return;
	}
	if (n > w->in_cap) {
		free(w->in);
		w->in = xmalloc(n);
		w->in_cap = (uint32_t)n;
	}
	memmove(w->in, p, n);
	w->in_len = (uint32_t)n;
}

/* Handles the frames at `buf` and keeps the rest in w->in: a frame begun,
 * or frames read before a pause. */
static void consume(struct ws *w, unsigned char *buf, size_t len)
{
	size_t used = frames(w, buf, len);

	if (w->state == WS_DONE)
		return;
	if (used < len) {
		keep_input(w, buf + used, len - used);
	} else {
		free(w->in);
		w->in = NULL;
		w->in_len = w->in_cap = 0;
	}
}

static void on_frames_readable(struct ws *w)
{
	ssize_t n = recv(w->fd, rbuf, sizeof(rbuf), 0);
	unsigned char *buf = rbuf;
	size_t len;

	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		ws_gone(w);
		return;
	}
	/* After a protocol error nothing is read as frames: the bytes are the
	 * rest of what was refused, and are dropped (maybe_finish). */
	if (w->failing)
		return;
	len = (size_t)n;
	if (w->in_len) {
		/* A frame begun in an earlier read: the two join in w->in. */
		size_t need = (size_t)w->in_len + len;
		if (need > w->in_cap) {
			w->in = xrealloc(w->in, need);
			w->in_cap = (uint32_t)need;
		}
		memcpy(w->in + w->in_len, rbuf, len);
		buf = w->in;
		len = need;
		w->in_len = 0;
	}
	consume(w, buf, len);
}

/* ---- the upgrade ---- */

static void accept_key(const char *key, size_t len, char out[29])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	unsigned char in[64 + sizeof(guid)], md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	memcpy(in, key, len);
	memcpy(in + len, guid, sizeof(guid) - 1);
	EVP_Digest(in, len + sizeof(guid) - 1, md, &mdlen, EVP_sha1(), NULL);
	out[base64_encode(md, 20, out)] = '\0';
}

static const char *status_text(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 426: return "Upgrade Required";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

/* Whether the text holds a %00: decoded, it would end a C string early
 * (lws drops a request with one without an answer). */
static int has_encoded_nul(const char *p, size_t n)
{
	for (size_t i = 0; i + 2 < n; i++)
		if (p[i] == '%' && p[i + 1] == '0' && p[i + 2] == '0')
			return 1;
	return 0;
}

/* Answers the request with an HTTP error and ends the connection. */
static void refuse(struct ws *w, int status, const char *why)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf),
			 "HTTP/1.1 %d %s\r\ncontent-type: text/html\r\ncontent-length: %zu\r\n"
			 "%sconnection: close\r\n\r\n%s",
			 status, status_text(status), strlen(why),
			 status == 426 ? "sec-websocket-version: 13\r\n" : "", why);

	metrics_http_error(status);
	/* The socket's buffer is empty: a reply this small is taken whole. */
	if (send(w->fd, buf, (size_t)n, MSG_NOSIGNAL) < 0)
		log_debug("refusing an upgrade: %s", strerror(errno));
	ws_done(w);
}

/* Whether the client offers permessage-deflate in a form parley takes. */
static int deflate_offered(const struct http_head *h)
{
	const struct http_field *ext = http_head_field(h, "sec-websocket-extensions");

	return ext && ws_deflate_offered(ext->value, ext->value_len);
}

static int is_upgrade(const struct http_head *h)
{
	const struct http_field *up = http_head_field(h, "upgrade");
	const struct http_field *conn = http_head_field(h, "connection");

	return h->method_len == 3 && memcmp(h->method, "GET", 3) == 0 && up && conn &&
	       http_list_has(up->value, up->value_len, "websocket") &&
	       http_list_has(conn->value, conn->value_len, "upgrade");
}

static void upgrade(struct ws *w, const struct http_head *h)
{
	const struct http_field *key = http_head_field(h, "sec-websocket-key");
	const struct http_field *ver = http_head_field(h, "sec-websocket-version");
	const struct http_field *cl = http_head_field(h, "content-length");
	const char *why = "";
	struct ws_route route;
	char accept[29], resp[256], addr[48];
	unsigned char raw[base64_decoded_max(24)];
	int status = 500, n;

	if (h->minor < 1 || !key || key->value_len != 24 ||
	    base64_decode(key->value, key->value_len, raw) != 16) {
		metrics_protocol_error("bad_upgrade");
		refuse(w, 400, "bad WebSocket upgrade request");
		return;
	}
	/* What would follow a body is taken for frames here, and maybe for
	 * the body by a proxy in front: an upgrade carries none ("0" at most). */
	if ((cl && (cl->value_len != 1 || cl->value[0] != '0')) ||
	    http_head_field(h, "transfer-encoding")) {
		metrics_protocol_error("bad_upgrade");
		refuse(w, 400, "a WebSocket upgrade carries no body");
		return;
	}
	if (!ver || ver->value_len != 2 || memcmp(ver->value, "13", 2) != 0) {
		metrics_protocol_error("bad_upgrade");
		refuse(w, 426, "WebSocket version 13 only");
		return;
	}
	if (handler->check(h, &route, &status, &why) < 0) {
		refuse(w, status, why);
		return;
	}
	accept_key(key->value, key->value_len, accept);
	w->deflate = settings.ws_compression && deflate_offered(h);
	n = snprintf(resp, sizeof(resp),
		     "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
		     "connection: Upgrade\r\nsec-websocket-accept: %s\r\n%s\r\n", accept,
		     w->deflate ? "sec-websocket-extensions: permessage-deflate; "
				  "server_no_context_takeover; client_no_context_takeover\r\n" : "");
	timer_stop(&w->timer);
	w->state = WS_OPEN;
	w->counted = 1;
	open_count++;
	if (ws_write(w, resp, (size_t)n) < 0)
		return;
	peers_address(w->fd, addr, sizeof(addr));
	handler->open(w, h, &route, addr);
}

/* Gives the connection to lws, which serves HTTP on it from here. Nothing
 * was read from it (the head was only peeked at): lws reads the request as
 * if it had accepted the connection itself. (Handing lws bytes already read,
 * lws_adopt_socket_readbuf, is what peeking avoids: lws 4.1.6 spins inside
 * that call on some malformed requests, a "Content-Length: 12x" POST for
 * one, and logs every adoption as an error.) */
static void to_lws(struct ws *w)
{
	int fd = w->fd;

	/* lws counts it again, as its own (SERVER_NEW_CLIENT_INSTANTIATED). */
	peers_closed(w);
	ev_io_stop(clock_loop, &w->io);
	w->events = 0;
	w->fd = -1;
	if (!lws_adopt_socket(http, fd))
		log_debug("lws did not take a connection (it may have closed it already)");
	ws_done(w);
}

/* The most a head is waited for between two looks, when it came in part. */
#define HEAD_LOOK_MAX_MS 200

static void on_head_timer(struct ev_loop *loop, ev_timer *t, int revents);

/* Looks at the request head without taking it off the socket. A head not
 * all there yet is looked at again later, at growing intervals (the socket
 * stays readable, so waiting on it would spin), until the deadline. */
static void look_at_head(struct ws *w)
{
	static struct http_head h;
	ssize_t n = recv(w->fd, rbuf, HEAD_MAX, MSG_PEEK);
	int r;

	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		ws_done(w);
		return;
	}
	r = http_head_parse((const char *)rbuf, (size_t)n, &h);
	if (r == 0 && (size_t)n < HEAD_MAX) {
		unsigned wait = w->head_wait_ms ? w->head_wait_ms * 2 : 5;
		if (wait > HEAD_LOOK_MAX_MS)
			wait = HEAD_LOOK_MAX_MS;
		if (w->head_waited_ms + wait > (unsigned)settings.connect_timeout_ms)
			wait = (unsigned)settings.connect_timeout_ms - w->head_waited_ms;
		w->head_wait_ms = (uint16_t)wait;
		w->head_waited_ms += wait;
		w->paused = 1; /* not readable: looked at on the timer */
		set_events(w);
		timer_start(&w->timer, on_head_timer, wait);
		return;
	}
	if (r > 0 && (has_encoded_nul(h.path, h.path_len) ||
		      (h.query && has_encoded_nul(h.query, h.query_len)))) {
		if (recv(w->fd, rbuf, (size_t)r, 0) == r)
			refuse(w, 400, "a %00 in the request target");
		else
			ws_done(w);
		return;
	}
	/* Anything but a whole upgrade request is HTTP, lws's to answer. */
	if (r <= 0 || !is_upgrade(&h)) {
		to_lws(w);
		return;
	}
	/* The head is ours: take it off the socket. Frames after it stay there
	 * for the frame reader. */
	if (recv(w->fd, rbuf, (size_t)r, 0) != r) {
		ws_done(w);
		return;
	}
	w->paused = 0;
	set_events(w);
	upgrade(w, &h);
}

static void on_head_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct ws *w = (struct ws *)((char *)t - offsetof(struct ws, timer));

	if (w->state != WS_HEAD || w->head_waited_ms < (unsigned)settings.connect_timeout_ms) {
		look_at_head(w);
		if (w->state == WS_DONE)
			ws_free(w);
		return;
	}
	on_timer(loop, t, revents);
}

static void on_io(struct ev_loop *loop, ev_io *io, int revents)
{
	struct ws *w = (struct ws *)((char *)io - offsetof(struct ws, io));

	(void)loop;
	if ((revents & EV_WRITE) && w->state != WS_DONE)
		on_writable(w);
	if ((revents & EV_READ) && w->state != WS_DONE) {
		if (w->state == WS_HEAD)
			look_at_head(w);
		else
			on_frames_readable(w);
	}
	if (w->state == WS_DONE)
		ws_free(w);
}

/* ---- accepting ---- */

static void on_accept_rest(struct ev_loop *loop, ev_timer *t, int revents)
{
	(void)loop;
	(void)t;
	(void)revents;
	if (listen_fd >= 0)
		ev_io_start(clock_loop, &listen_io);
}

/* Out of descriptors: accept rests a while rather than spin. */
static void rest_accepting(const char *why)
{
	static int64_t last_log;
	int64_t now = now_ms();

	metrics_limit("open_files");
	if (now - last_log > 10000) {
		last_log = now;
		log_warn("cannot accept connections: %s (the open-files limit): resting %d ms",
			 why, ACCEPT_REST_MS);
	}
	ev_io_stop(clock_loop, &listen_io);
	timer_start(&accept_rest, on_accept_rest, ACCEPT_REST_MS);
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
	(void)loop;
	(void)io;
	(void)revents;
	/* A burst is taken a bounded number at a time: the rest comes on the
	 * next iteration, after what the other sockets have to say. */
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage a;
		socklen_t alen = sizeof(a);
		int one = 1;
		int fd = accept4(listen_fd, (struct sockaddr *)&a, &alen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct ws *w;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				rest_accepting(strerror(errno));
			else if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		if (fd >= fd_ceiling) {
			close(fd);
			rest_accepting("the descriptors kept for the server's own files are reached");
			return;
		}
		if (peers_admit(&a) < 0) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		w = xcalloc(1, sizeof(*w));
		w->fd = fd;
		w->next = all;
		if (all)
			all->prev = w;
		all = w;
		peers_opened(w, &a);
		ev_io_init(&w->io, on_io, fd, EV_READ);
		ev_io_start(clock_loop, &w->io);
		w->events = EV_READ;
		timer_start(&w->timer, on_timer, settings.connect_timeout_ms);
	}
}

int ws_bind(const char *addr, int port)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
				   .sin6_addr = IN6ADDR_ANY_INIT };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_ANY) };
	char text[INET6_ADDRSTRLEN + 2];
	int one = 1, zero = 0, fd = -1, err, family = 0;

	if (addr && *addr) {
		/* "[::1]" as in a URL, or a bare literal; no names: a name may
		 * resolve to several addresses, or change. */
		size_t len = strlen(addr);
		if (addr[0] == '[' && len >= 2 && addr[len - 1] == ']') {
			addr++;
			len -= 2;
		}
		if (len >= sizeof(text)) {
			log_error("cannot listen on %s: not an IPv4 or IPv6 address", addr);
			return -EINVAL;
		}
		memcpy(text, addr, len);
		text[len] = '\0';
		if (inet_pton(AF_INET6, text, &a6.sin6_addr) == 1)
			family = AF_INET6;
		else if (inet_pton(AF_INET, text, &a4.sin_addr) == 1)
			family = AF_INET;
		else {
			log_error("cannot listen on %s: not an IPv4 or IPv6 address", text);
			return -EINVAL;
		}
	}
	/* Both families on one socket where the host has IPv6. */
	if (family != AF_INET) {
		fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd >= 0) {
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (bind(fd, (struct sockaddr *)&a6, sizeof(a6)) < 0) {
				if (family == AF_INET6)
					goto fail;
				close(fd);
				fd = -1;
			}
		} else if (family == AF_INET6) {
			goto fail;
		}
	}
	if (fd < 0) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			goto fail;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&a4, sizeof(a4)) < 0)
			goto fail;
	}
	if (listen(fd, SOMAXCONN) < 0)
		goto fail;
	return fd;
fail:
	err = -errno;
	log_error("cannot listen on %s port %d: %s", addr && *addr ? addr : "every address", port,
		  strerror(-err));
	if (fd >= 0)
		close(fd);
	return err;
}

int ws_listen(const char *addr, int port, const struct ws_handler *h, struct lws_context *ctx)
{
	struct rlimit rl;
	int fd;

	fd = ws_bind(addr, port);
	if (fd < 0)
		return fd;

	fd_ceiling = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
				     rl.rlim_cur > 2 * FD_RESERVE ?
			     (int)rl.rlim_cur - FD_RESERVE : 1 << 30;
	listen_fd = fd;
	http = ctx;
	handler = h;
	ev_io_init(&listen_io, on_accept, fd, EV_READ);
	ev_io_start(clock_loop, &listen_io);
	return 0;
}

void ws_stop_listening(void)
{
	if (listen_fd < 0)
		return;
	ev_io_stop(clock_loop, &listen_io);
	timer_stop(&accept_rest);
	close(listen_fd);
	listen_fd = -1;
}

int ws_is_listening(void)
{
	return listen_fd >= 0;
}

unsigned ws_open_count(void)
{
	return open_count;
}

void ws_fini(void)
{
	ws_stop_listening();
	while (all)
		ws_free(all);
	if (deflater_ready)
		deflateEnd(&deflater);
	if (inflater_ready)
		inflateEnd(&inflater);
	deflater_ready = inflater_ready = 0;
}
