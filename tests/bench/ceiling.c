/* ceiling.c - the load generator's ceiling: a minimal single-threaded epoll
 * server that speaks just enough Engine.IO/Socket.IO over WebSocket for
 * loadgen (handshake, open packet, CONNECT, conversation:join, bench:send,
 * typing:start, message:send) and does the least work possible: one frame
 * built per send, copied to each receiver's buffer, one write() per
 * connection per loop turn. Whatever loadgen measures against it is the
 * loadgen's own limit, not a server's. Not a server to use: no pings, no
 * limits, no checks beyond what the benchmark needs. libc + epoll only. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wsproto.h"

#define LISTEN_TOKEN UINT32_MAX
#define MAX_FRAME (1u << 20)
#define ROOM_SLOTS 65536 /* open-addressing table, power of two */

struct conn {
	int fd;
	uint8_t ws;      /* upgraded */
	uint8_t pollout; /* EPOLLOUT registered */
	uint8_t dirty;   /* on the flush list */
	int32_t room;    /* -1: none (one room per connection is all loadgen uses) */
	uint32_t room_pos;
	uint8_t *rbuf;
	uint32_t rlen, rcap;
	uint8_t *wbuf;
	uint32_t wlen, woff, wcap;
};

struct room {
	char name[64];
	uint32_t *members; /* fds */
	uint32_t n, cap;
};

static struct conn *conns; /* indexed by fd */
static size_t conns_cap;
static struct room *rooms;
static uint32_t n_rooms, rooms_cap;
static int32_t room_slots[ROOM_SLOTS];
static uint32_t *dirty_list;
static uint32_t dirty_count;
static int ep, lfd;
static uint8_t *rbuf_shared; /* grows to hold the largest pending frame */
static size_t rbuf_cap;
static uint64_t next_message_id;

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!q && n) {
		fprintf(stderr, "ceiling: out of memory\n");
		exit(1);
	}
	return q;
}

static uint8_t *wb_reserve(struct conn *c, size_t n)
{
	if (c->woff && c->woff == c->wlen)
		c->woff = c->wlen = 0;
	if (c->wlen + n > c->wcap) {
		if (c->woff) {
			memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
			c->wlen -= c->woff;
			c->woff = 0;
		}
		if (c->wlen + n > c->wcap) {
			size_t cap = c->wcap ? c->wcap : 1024;
			while (cap < c->wlen + n)
				cap *= 2;
			c->wbuf = xrealloc(c->wbuf, cap);
			c->wcap = (uint32_t)cap;
		}
	}
	return c->wbuf + c->wlen;
}

static void queue_bytes(struct conn *c, const void *p, size_t n)
{
	memcpy(wb_reserve(c, n), p, n);
	c->wlen += (uint32_t)n;
	if (!c->dirty) {
		c->dirty = 1;
		dirty_list[dirty_count++] = (uint32_t)c->fd;
	}
}

/* Builds one unmasked text frame from up to three pieces into out; returns its length. */
static size_t build_frame(uint8_t *out, const char *a, size_t al, const char *b, size_t bl,
			  const char *z, size_t zl)
{
	size_t hl = wsp_write_header(out, WSP_OP_TEXT, al + bl + zl, NULL);
	memcpy(out + hl, a, al);
	memcpy(out + hl + al, b, bl);
	memcpy(out + hl + al + bl, z, zl);
	return hl + al + bl + zl;
}

static void queue_text(struct conn *c, const char *s, size_t n)
{
	uint8_t hdr[WSP_MAX_HEADER];
	size_t hl = wsp_write_header(hdr, WSP_OP_TEXT, n, NULL);
	queue_bytes(c, hdr, hl);
	queue_bytes(c, s, n);
}

static void conn_close(struct conn *c)
{
	if (c->fd < 0)
		return;
	if (c->room >= 0) {
		/* Swap-remove from the room's member list. */
		struct room *r = &rooms[c->room];
		uint32_t last = r->members[--r->n];
		if (c->room_pos < r->n) {
			r->members[c->room_pos] = last;
			conns[last].room_pos = c->room_pos;
		}
		c->room = -1;
	}
	close(c->fd);
	c->fd = -1;
	free(c->rbuf);
	free(c->wbuf);
	c->rbuf = c->wbuf = NULL;
	c->rlen = c->rcap = c->wlen = c->woff = c->wcap = 0;
}

static void set_pollout(struct conn *c, int on)
{
	if (c->pollout == on)
		return;
	struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.u32 = (uint32_t)c->fd };
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
	c->pollout = (uint8_t)on;
}

static void flush(struct conn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				set_pollout(c, 1);
				return;
			}
			conn_close(c);
			return;
		}
		c->woff += (uint32_t)n;
	}
	c->woff = c->wlen = 0;
	set_pollout(c, 0);
}

static int32_t room_get(const char *name, size_t len)
{
	if (len >= sizeof rooms[0].name)
		len = sizeof rooms[0].name - 1;
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)name[i]) * 16777619u;
	for (uint32_t i = h & (ROOM_SLOTS - 1);; i = (i + 1) & (ROOM_SLOTS - 1)) {
		int32_t r = room_slots[i];
		if (r == 0) {
			if (n_rooms + 1 >= ROOM_SLOTS / 2)
				return -1;
			if (n_rooms == rooms_cap) {
				rooms_cap = rooms_cap ? rooms_cap * 2 : 1024;
				rooms = xrealloc(rooms, rooms_cap * sizeof *rooms);
			}
			struct room *nr = &rooms[n_rooms];
			memset(nr, 0, sizeof *nr);
			memcpy(nr->name, name, len);
			room_slots[i] = (int32_t)++n_rooms;
			return (int32_t)n_rooms - 1;
		}
		struct room *er = &rooms[r - 1];
		if (strlen(er->name) == len && memcmp(er->name, name, len) == 0)
			return r - 1;
	}
}

/* The string value of "conversationId" in p[0..len): sets *v, returns its length or -1. */
static int conversation_id(const char *p, size_t len, const char **v)
{
	const char *k = memmem(p, len, "\"conversationId\":\"", 18);
	if (!k)
		return -1;
	const char *s = k + 18;
	const char *e = memchr(s, '"', len - (size_t)(s - p));
	if (!e)
		return -1;
	*v = s;
	return (int)(e - s);
}

static void on_event(struct conn *c, const char *ack, size_t ackl, const char *p, size_t len)
{
	/* p: ["name",{...}] */
	const char *name = p + 2;
	const char *q = memchr(name, '"', len - 2);
	if (len < 4 || p[0] != '[' || p[1] != '"' || !q)
		return;
	size_t nl = (size_t)(q - name);
	const char *body = q + 2; /* after the comma */
	size_t bl = len - (size_t)(body - p) - 1; /* without the final ']' */
	if ((size_t)(body - p) + 1 > len)
		return;
	const char *cid = "";
	int cl = conversation_id(body, bl, &cid);
	char out[1024];
	int n;
	if (nl == 17 && memcmp(name, "conversation:join", 17) == 0 && cl >= 0) {
		int32_t r = room_get(cid, (size_t)cl);
		if (r < 0 || c->room >= 0)
			return;
		struct room *room = &rooms[r];
		if (room->n == room->cap) {
			room->cap = room->cap ? room->cap * 2 : 16;
			room->members = xrealloc(room->members, room->cap * sizeof *room->members);
		}
		c->room = r;
		c->room_pos = room->n;
		room->members[room->n++] = (uint32_t)c->fd;
		n = snprintf(out, sizeof out,
			     "42/messages,[\"conversation:joined\",{\"conversationId\":\"%.*s\","
			     "\"success\":true}]", cl, cid);
		queue_text(c, out, (size_t)n);
		n = snprintf(out, sizeof out,
			     "43/messages,%.*s[{\"conversationId\":\"%.*s\",\"success\":true}]",
			     (int)ackl, ack, cl, cid);
		queue_text(c, out, (size_t)n);
		return;
	}
	if (c->room < 0)
		return;
	struct room *room = &rooms[c->room];
	static uint8_t frame[MAX_FRAME + 256];
	size_t fl;
	int include_self = 0;
	if (nl == 10 && memcmp(name, "bench:send", 10) == 0) {
		static const char head[] = "42/messages,[\"bench:recv\",";
		if (bl > MAX_FRAME)
			return;
		fl = build_frame(frame, head, sizeof head - 1, body, bl, "]", 1);
		n = snprintf(out, sizeof out, "43/messages,%.*s[true]", (int)ackl, ack);
	} else if (nl == 12 && memcmp(name, "typing:start", 12) == 0 && cl >= 0) {
		char msg[512];
		int ml = snprintf(msg, sizeof msg,
				  "42/messages,[\"typing:start\",{\"conversationId\":\"%.*s\","
				  "\"userId\":\"c%d\",\"isTyping\":true,\"user\":{\"id\":\"c%d\","
				  "\"name\":\"c%d\"}}]", cl, cid, c->fd, c->fd, c->fd);
		fl = build_frame(frame, msg, (size_t)ml, "", 0, "", 0);
		n = snprintf(out, sizeof out, "43/messages,%.*s[{\"success\":true}]", (int)ackl, ack);
	} else if (nl == 12 && memcmp(name, "message:send", 12) == 0 && cl >= 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t id = ++next_message_id;
		long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		char msg[512];
		int ml = snprintf(msg, sizeof msg,
				  "42/messages,[\"message:received\",{\"id\":\"m%" PRIu64 "\","
				  "\"conversationId\":\"%.*s\",\"senderId\":\"c%d\",\"status\":\"sent\","
				  "\"createdAt\":%lld}]", id, cl, cid, c->fd, ms);
		fl = build_frame(frame, msg, (size_t)ml, "", 0, "", 0);
		include_self = 1;
		n = snprintf(out, sizeof out,
			     "43/messages,%.*s[{\"messageId\":\"m%" PRIu64 "\",\"status\":\"sent\","
			     "\"timestamp\":%lld}]", (int)ackl, ack, id, ms);
	} else {
		return;
	}
	for (uint32_t i = 0; i < room->n; i++) {
		uint32_t fd = room->members[i];
		if (fd != (uint32_t)c->fd || include_self)
			queue_bytes(&conns[fd], frame, fl);
	}
	if (ackl)
		queue_text(c, out, (size_t)n);
}

static void on_message(struct conn *c, const char *p, size_t len)
{
	static const char ns[] = "/messages,";
	if (len < 2 || p[0] != '4')
		return; /* pongs and anything else */
	if (p[1] == '0') {
		char out[64];
		int n = snprintf(out, sizeof out, "40/messages,{\"sid\":\"ceiling-%d\"}", c->fd);
		queue_text(c, out, (size_t)n);
		return;
	}
	if (p[1] != '2' || len < 2 + sizeof ns - 1 || memcmp(p + 2, ns, sizeof ns - 1) != 0)
		return;
	size_t pos = 2 + sizeof ns - 1, a = pos;
	while (pos < len && p[pos] >= '0' && p[pos] <= '9')
		pos++;
	on_event(c, p + a, pos - a, p + pos, len - pos);
}

static void on_upgrade(struct conn *c, const char *req, size_t len)
{
	const char *k = memmem(req, len, "Sec-WebSocket-Key:", 18);
	if (!k)
		k = memmem(req, len, "sec-websocket-key:", 18);
	if (!k) {
		conn_close(c);
		return;
	}
	k += 18;
	while (*k == ' ')
		k++;
	const char *e = memchr(k, '\r', len - (size_t)(k - req));
	if (!e) {
		conn_close(c);
		return;
	}
	char accept[29], resp[256];
	wsp_accept_key(k, (size_t)(e - k), accept);
	int n = snprintf(resp, sizeof resp,
			 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
	queue_bytes(c, resp, (size_t)n);
	char open[160];
	n = snprintf(open, sizeof open,
		     "0{\"sid\":\"ceiling-%d\",\"upgrades\":[],\"pingInterval\":25000,"
		     "\"pingTimeout\":20000,\"maxPayload\":1000000}", c->fd);
	queue_text(c, open, (size_t)n);
	c->ws = 1;
}

static void on_readable(struct conn *c)
{
	size_t have = c->rlen;
	if (rbuf_cap < have + 65536) {
		rbuf_cap = (have + 65536) * 2;
		rbuf_shared = xrealloc(rbuf_shared, rbuf_cap);
	}
	memcpy(rbuf_shared, c->rbuf, have);
	ssize_t n = read(c->fd, rbuf_shared + have, rbuf_cap - have);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		conn_close(c);
		return;
	}
	size_t len = have + (size_t)n, pos = 0;
	if (!c->ws) {
		uint8_t *end = memmem(rbuf_shared, len, "\r\n\r\n", 4);
		if (!end) {
			if (len > 8192)
				conn_close(c);
			goto keep;
		}
		on_upgrade(c, (const char *)rbuf_shared, (size_t)(end - rbuf_shared) + 4);
		if (c->fd < 0)
			return;
		pos = (size_t)(end - rbuf_shared) + 4;
	}
	while (pos < len) {
		struct wsp_frame f;
		int r = wsp_parse_header(rbuf_shared + pos, len - pos, &f);
		if (r == 0)
			break;
		/* Fragmented and oversized client frames are out of scope here,
		 * and compressed ones (it agrees to no extension). */
		if (r < 0 || f.rsv1 || !f.masked || !f.fin || f.payload_len > MAX_FRAME) {
			conn_close(c);
			return;
		}
		if (len - pos - f.header_len < f.payload_len)
			break;
		uint8_t *p = rbuf_shared + pos + f.header_len;
		size_t pl = (size_t)f.payload_len;
		wsp_apply_mask(p, pl, f.mask);
		pos += f.header_len + pl;
		if (f.opcode == WSP_OP_TEXT)
			on_message(c, (const char *)p, pl);
		else if (f.opcode == WSP_OP_CLOSE) {
			conn_close(c);
			return;
		}
	}
keep:
	c->rlen = (uint32_t)(len - pos);
	if (c->rlen > c->rcap) {
		c->rcap = c->rlen;
		c->rbuf = xrealloc(c->rbuf, c->rcap);
	}
	memcpy(c->rbuf, rbuf_shared + pos, c->rlen);
}

static void on_accept(void)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if ((size_t)fd >= conns_cap) {
			size_t cap = conns_cap;
			conns_cap = (size_t)fd * 2 + 64;
			conns = xrealloc(conns, conns_cap * sizeof *conns);
			memset(conns + cap, 0, (conns_cap - cap) * sizeof *conns);
			dirty_list = xrealloc(dirty_list, conns_cap * sizeof *dirty_list);
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct conn *c = &conns[fd];
		memset(c, 0, sizeof *c);
		c->fd = fd;
		c->room = -1;
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)fd };
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	}
}

int main(int argc, char **argv)
{
	const char *port_env = getenv("PORT");
	int port = argc > 1 ? atoi(argv[1]) : port_env ? atoi(port_env) : 3999;
	signal(SIGPIPE, SIG_IGN);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(0x7F000001u);
	if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0) {
		perror("ceiling: bind/listen");
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = LISTEN_TOKEN };
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	fprintf(stderr, "ceiling: the loadgen's ceiling server on 127.0.0.1:%d\n", port);
	struct epoll_event evs[512];
	for (;;) {
		int n = epoll_wait(ep, evs, 512, -1);
		for (int i = 0; i < n; i++) {
			uint32_t id = evs[i].data.u32;
			if (id == LISTEN_TOKEN) {
				on_accept();
				continue;
			}
			struct conn *c = &conns[id];
			if (c->fd < 0)
				continue;
			if (evs[i].events & EPOLLOUT)
				flush(c);
			if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				on_readable(c);
		}
		for (uint32_t i = 0; i < dirty_count; i++) {
			struct conn *c = &conns[dirty_list[i]];
			c->dirty = 0;
			if (c->fd >= 0)
				flush(c);
		}
		dirty_count = 0;
	}
}
