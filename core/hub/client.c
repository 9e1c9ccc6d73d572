/* client.c - sockets: one per namespace connection (or plain WebSocket),
 * with their user, rooms and pending acks; and the emits that reach them,
 * each encoded at most once per wire format however many sockets get it. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hub/client.h"

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/settings.h"
#include "hub/recovery.h"
#include "net/conn.h"
#include "wire/json.h"
#include "wire/envelope.h"
#include "wire/sio.h"
#include "wire/sio_msgpack.h"

/* A server-to-client ack the server is waiting for. */
struct ack_wait {
	struct ack_wait *next;
	struct client *client;
	uint64_t id;
	ev_timer timeout;
};

static struct map clients; /* socket id -> struct client */
static struct map nsps;    /* namespace name -> struct nsp */
/* nsp_lookup's last answer: whatever frees a namespace clears it. */
static struct nsp *last_nsp;
static uint64_t sockets;   /* connected sockets */
static const struct client_hooks *hooks;

void client_set_hooks(const struct client_hooks *h)
{
	hooks = h;
}

int client_connect(struct client *cl, const char *auth, size_t auth_len, int *code,
		   char *msg, size_t msg_cap)
{
	if (!hooks || !hooks->on_connect) {
		*code = 500;
		snprintf(msg, msg_cap, "no connect hook");
		return PARLEY_EREFUSED;
	}
	return hooks->on_connect(cl, auth, auth_len, code, msg, msg_cap);
}

void client_connected(struct client *cl)
{
	if (hooks && hooks->on_connected)
		hooks->on_connected(cl);
}

void client_event(struct client *cl, const char *name, size_t name_len, const char *args,
		  size_t args_len, const struct sio_attachment *att, unsigned natt,
		  int64_t ack_id)
{
	if (hooks && hooks->on_event)
		hooks->on_event(cl, name, name_len, args, args_len, att, natt, ack_id);
}

/* The answer to a request, or why none comes (`args` NULL). */
static void report_ack(struct client *cl, uint64_t id, const char *args, size_t args_len,
		       const struct sio_attachment *att, unsigned natt, const char *why)
{
	if (hooks && hooks->on_ack)
		hooks->on_ack(cl, id, args, args_len, att, natt, why);
}

void client_answer(struct client *cl, uint64_t id, const char *args, size_t args_len,
		   const struct sio_attachment *att, unsigned natt)
{
	report_ack(cl, id, args, args_len, att, natt, NULL);
}

static struct metrics_value sockets_metric = {
	.name = "parley_sockets", .help = "Connected sockets (namespace connections).",
	.type = "gauge", .count = &sockets,
};

/* A held socket's window passed, or its log overflowed. */
static void end_held(struct client *cl, const char *reason)
{
	client_free(cl, reason);
}

/* Users with a socket connected, each once whatever its namespaces and
 * sockets: a walk of the sockets, at each scrape. */
static long long online_users(void)
{
	struct map seen;
	struct map_iter it;
	struct map_entry *e;
	long long n;

	map_init(&seen);
	map_iter_init(&it, &clients);
	while ((e = map_next(&it))) {
		const struct client *cl = e->value;
		if (cl->user_id && !map_get(&seen, cl->user_id, strlen(cl->user_id)))
			map_put(&seen, cl->user_id, strlen(cl->user_id), (void *)cl);
	}
	n = (long long)seen.count;
	map_fini(&seen);
	return n;
}

/* Rooms with a member, in every namespace (each user's own room counts). */
static long long rooms_open(void)
{
	struct map_iter it;
	struct map_entry *e;
	long long n = 0;

	map_iter_init(&it, &nsps);
	while ((e = map_next(&it)))
		n += (long long)((struct nsp *)e->value)->rooms.count;
	return n;
}

static struct metrics_value users_metric = {
	.name = "parley_online_users", .help = "Users with a socket connected.", .type = "gauge",
	.read = online_users,
};
static struct metrics_value rooms_metric = {
	.name = "parley_rooms", .help = "Rooms with a member, every namespace's (user rooms too).",
	.type = "gauge", .read = rooms_open,
};

static const struct client_watch *watches[CLIENT_WATCHES_MAX];
static unsigned nwatches;

void client_add_watch(const struct client_watch *w)
{
	assert(nwatches < CLIENT_WATCHES_MAX);
	watches[nwatches++] = w;
}

void client_remove_watch(const struct client_watch *w)
{
	for (unsigned i = 0; i < nwatches; i++)
		if (watches[i] == w) {
			memmove(&watches[i], &watches[i + 1], (nwatches - i - 1) * sizeof(*watches));
			nwatches--;
			return;
		}
}

/* Tells the watches that `cl` (with a user) joined or left `name`. */
static void watch_member(struct client *cl, const char *name, size_t len, int joined)
{
	for (unsigned i = 0; i < nwatches; i++) {
		if (watches[i]->member)
			watches[i]->member(cl, name, len, joined);
		if (watches[i]->changed && cl->rec)
			watches[i]->changed(cl);
	}
}

int client_recover_elsewhere(struct client *cl, const char *pid, size_t pid_len,
			     int has_offset, uint64_t offset, void (*answer)(struct client *cl))
{
	if (!cl->rec)
		return 0;
	for (unsigned i = 0; i < nwatches; i++)
		if (watches[i]->claim)
			return watches[i]->claim(cl, pid, pid_len, has_offset, offset, answer);
	return 0;
}

int client_adopt(struct client *cl, const char *sid)
{
	char fresh[sizeof(cl->id)];

	if (strlen(sid) >= sizeof(cl->id) || map_get(&clients, sid, strlen(sid)))
		return -EEXIST;
	memcpy(fresh, cl->id, sizeof(fresh));
	map_del(&clients, cl->id, strlen(cl->id));
	snprintf(cl->id, sizeof(cl->id), "%s", sid);
	map_put(&clients, cl->id, strlen(cl->id), cl);
	if (hooks && hooks->on_adopt)
		hooks->on_adopt(cl, fresh);
	return 0;
}

void client_init(void)
{
	metrics_register(&sockets_metric);
	metrics_register(&users_metric);
	metrics_register(&rooms_metric);
	recovery_init(end_held, client_msgpack_frame);
	map_init(&clients);
	map_init(&nsps);
}

void client_fini(void)
{
	struct map_iter it;
	struct map_entry *e;

	last_nsp = NULL;
	map_iter_init(&it, &nsps);
	while ((e = map_next(&it)))
		nsp_free(e->value);
	map_fini(&nsps);
	map_fini(&clients);
	recovery_fini();
}

void nsp_add(const char *name, size_t len)
{
	if (!map_get(&nsps, name, len))
		map_put(&nsps, name, len, nsp_new(name, len));
}

struct client *client_find(const char *id, size_t len)
{
	return map_get(&clients, id, len);
}

const struct map *client_all(void)
{
	return &clients;
}

const struct map *client_namespaces(void)
{
	return &nsps;
}

uint64_t client_count(void)
{
	return sockets;
}

struct nsp *nsp_lookup(const char *name, size_t len)
{
	struct nsp *n = last_nsp;

	/* Most lookups in a row name the same namespace. */
	if (n && n->name_len == len && memcmp(n->name, name, len) == 0)
		return n;
	n = map_get(&nsps, name, len);
	if (n)
		last_nsp = n;
	return n;
}

struct client *client_new(struct conn *c, struct nsp *n, enum client_format format)
{
	struct client *cl = xcalloc(1, sizeof(*cl));
	struct timespec ts;

	cl->format = format;
	clock_gettime(CLOCK_REALTIME, &ts);
	cl->connected_at = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	/* A socket id is a fresh session-style id, unique among sockets. */
	do
		conn_new_sid(cl->id);
	while (map_get(&clients, cl->id, strlen(cl->id)));
	cl->conn = c;
	cl->nsp = n;
	cl->rooms.owner = cl;
	cl->next = c->clients;
	c->clients = cl;
	map_put(&clients, cl->id, strlen(cl->id), cl);
	if (format != CLIENT_PLAIN && settings.recovery_window_ms > 0)
		cl->rec = recovery_new(cl);
	return cl;
}

void client_set_user(struct client *cl, const char *user_id, size_t len)
{
	char room[512];

	free(cl->user_id);
	cl->user_id = xstrndup(user_id, len);
	if (len + 5 < sizeof(room)) {
		memcpy(room, "user:", 5);
		memcpy(room + 5, user_id, len);
		client_join(cl, room, len + 5);
	}
	cl->nsp->sockets++;
	sockets++;
}

int client_join(struct client *cl, const char *name, size_t len)
{
	/* The events after this one are the room's for this socket. */
	int rc = room_join(cl->nsp, &cl->rooms, name, len, recovery_last_offset());

	if (rc == 0 && cl->user_id)
		watch_member(cl, name, len, 1);
	return rc;
}

int client_leave(struct client *cl, const char *name, size_t len)
{
	uint64_t stamp;
	int rc;

	if (!room_stamp(cl->nsp, &cl->rooms, name, len, &stamp))
		return -ENOENT;
	/* A replay still owes it the room's events from while it was in. */
	if (cl->rec)
		recovery_left(cl->rec, name, len, stamp);
	rc = room_leave(cl->nsp, &cl->rooms, name, len);
	if (rc == 0 && cl->user_id)
		watch_member(cl, name, len, 0);
	return rc;
}

static void ack_wait_free(struct ack_wait *w)
{
	timer_stop(&w->timeout);
	free(w);
}

void client_free(struct client *cl, const char *reason)
{
	struct client **pp;
	struct conn *c = cl->conn;
	int plain = cl->format == CLIENT_PLAIN;

	if (cl->closing)
		return;
	cl->closing = 1;
	/* Hooks run only for sockets Lua accepted (they have a user). */
	if (reason && cl->user_id && hooks && hooks->on_disconnect)
		hooks->on_disconnect(cl, reason);
	while (cl->acks) {
		struct ack_wait *w = cl->acks;
		cl->acks = w->next;
		uint64_t id = w->id;
		ack_wait_free(w);
		if (cl->user_id)
			report_ack(cl, id, NULL, 0, NULL, 0, "disconnected");
	}
	for (unsigned w = 0; cl->user_id && w < nwatches; w++)
		for (uint32_t i = 0; watches[w]->member && i < cl->rooms.count; i++)
			watches[w]->member(cl, cl->rooms.v[i].room->name,
					   cl->rooms.v[i].room->name_len, 0);
	room_leave_all(cl->nsp, &cl->rooms);
	for (unsigned w = 0; cl->rec && cl->user_id && w < nwatches; w++)
		if (watches[w]->gone)
			watches[w]->gone(cl);
	/* A held socket is on no connection. */
	for (pp = c ? &c->clients : NULL; pp && *pp; pp = &(*pp)->next)
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	recovery_free(cl->rec);
	map_del(&clients, cl->id, strlen(cl->id));
	if (cl->user_id) {
		cl->nsp->sockets--;
		sockets--;
	}
	free(cl->user_id);
	free(cl->auth);
	free(cl);
	/* A plain WebSocket is its socket: without it the connection ends,
	 * unless it is already closing after a last frame. */
	if (plain && reason && !c->close_code)
		conn_close(c, reason);
}

void client_free_all(struct conn *c, const char *reason)
{
	while (c->clients)
		client_free(c->clients, reason);
}

void client_hold_all(struct conn *c, const char *reason)
{
	struct client *cl, **pp = &c->clients;

	while ((cl = *pp)) {
		/* Only a socket the hooks accepted has a session to come back to. */
		if (!cl->rec || !cl->user_id || cl->closing) {
			pp = &cl->next;
			continue;
		}
		*pp = cl->next;
		cl->next = NULL;
		cl->conn = NULL;
		recovery_hold(cl->rec, reason);
	}
	client_free_all(c, reason);
}

struct client *client_recover(struct client *cl, const char *pid, size_t pid_len,
			      int has_offset, uint64_t offset)
{
	struct client *old;
	struct conn *c = cl->conn;

	old = recovery_claim(cl, pid, pid_len, has_offset, offset);
	if (!old)
		return cl;
	if (hooks && hooks->on_resume)
		hooks->on_resume(old, cl);
	/* No hooks for the socket the CONNECT made: to the scripts it never
	 * was (on_resume told them). */
	client_free(cl, NULL);
	old->conn = c;
	old->next = c->clients;
	c->clients = old;
	return old;
}

void client_replay(struct client *cl)
{
	recovery_replay(cl->rec, cl->conn);
}

/* ---- emits ---- */

/* The emit as a Socket.IO EVENT (BINARY_EVENT with attachments) of the
 * namespace `n`, asking for the ack `id` (negative: none). An event with
 * no ack gets its recovery offset here, the first time (e->offset). */
static struct frame *write_sio(struct emit *e, struct nsp *n, int64_t id)
{
	size_t alen = e->args ? e->args_len : 0;
	struct frame *f;
	char *p;

	f = frame_new(NULL, 1 + SIO_EVENT_MAX(n->name_len, e->name_len, alen) + SIO_OFFSET_MAX, 0);
	p = (char *)frame_data(f);
	p[0] = '4';
	f->len = (uint32_t)(1 + sio_event_write(p + 1, n->name, n->name_len, id, e->natt, e->name,
						 e->name_len, e->args, alen));
	/* An event with no ack asked carries its recovery offset, last: the
	 * same for every recipient, so the frame stays shared. (An ack id is
	 * one socket's, and not replayed.) */
	if (id < 0 && settings.recovery_window_ms > 0) {
		if (!e->offset)
			e->offset = recovery_next_offset();
		f->len = (uint32_t)(1 + sio_event_offset(p + 1, f->len - 1, e->offset));
	}
	return f;
}

/* The same, counted as an encoding. */
static struct frame *encode_sio(struct emit *e, struct nsp *n, int64_t id)
{
	metrics_encoding();
	return write_sio(e, n, id);
}

/* The arguments plain sockets get: their own when they differ. */
static const char *plain_args(const struct emit *e, size_t *len)
{
	*len = e->plain_args ? e->plain_len : e->args ? e->args_len : 0;
	return e->plain_args ? e->plain_args : e->args;
}

/* The emit as a plain envelope, asking for the ack `id` (negative: none). */
static struct frame *encode_plain(const struct emit *e, int64_t id)
{
	size_t alen;
	const char *args = plain_args(e, &alen);
	struct frame *f;

	metrics_encoding();
	f = frame_new(NULL, ENVELOPE_EVENT_MAX(e->name_len, alen), 0);
	f->len = (uint32_t)envelope_event_write((char *)frame_data(f), e->name, e->name_len, args,
						alen, e->nargs, id);
	return f;
}

struct frame *client_msgpack_frame(const char *pkt, size_t len, struct frame **att,
				   unsigned natt)
{
	/* A script's emit may hold any number of binaries: on the heap. */
	struct sio_attachment *views = xcalloc(natt, sizeof(*views));
	struct sio_msgpack_buf out = { 0 };
	struct frame *f = NULL;

	for (unsigned i = 0; i < natt; i++) {
		views[i].data = frame_data(att[i]);
		views[i].len = att[i]->len;
	}
	if (sio_msgpack_encode(pkt, len, views, natt, &out) < 0) {
		log_warn("a packet the server made does not encode as msgpack (%zu bytes): dropped",
			 len);
		goto out;
	}
	f = frame_new(out.data, out.len, 1);
	free(out.data);
out:
	free(views);
	return f;
}

/* The emit for a msgpack socket of the namespace `n`, asking for the ack
 * `id` (negative: none): its text packet, encoded again. NULL when that
 * fails (client_msgpack_frame). The text packet goes to `*text` (a
 * reference the caller owns) when `text` is not NULL. */
static struct frame *encode_msgpack(struct emit *e, struct nsp *n, int64_t id,
				    struct frame **text_out)
{
	/* The text frame JSON sockets of the same namespace got, when there
	 * is one: a broadcast to both kinds writes its text once. */
	struct frame *text = id < 0 && e->sio[0] && e->nsp == n ? frame_ref(e->sio[0]) :
				 write_sio(e, n, id);
	struct frame *f;

	metrics_encoding();
	f = client_msgpack_frame((const char *)frame_data(text) + 1, text->len - 1, e->att,
				 e->natt);
	if (text_out)
		*text_out = text;
	else
		frame_unref(text);
	return f;
}

/* Logs `e` for recovery, once, as `text` (its Socket.IO packet for the
 * namespace of `cl`, the socket it reaches first): to where its broadcast
 * goes, or to `cl` alone. */
static void log_emit(struct client *cl, struct emit *e, struct frame *text)
{
	e->logged = 1;
	if (!e->offset)
		return;
	recovery_log(cl->nsp, e->offset, text, e->att, e->natt, e->target, e->to_all,
		     e->target ? NULL : cl->id);
	for (unsigned i = 0; i < nwatches; i++)
		if (watches[i]->logged)
			watches[i]->logged(cl, e);
}

/* What recovery does at each delivery to `cl` (it has a recovery): note
 * the offset; held, a missed event. 1 when the socket is held: nothing
 * to send. */
static int recovery_delivered(struct client *cl, const struct emit *e)
{
	cl->sent_offset = e->offset;
	if (cl->conn)
		return 0;
	recovery_missed(cl->rec);
	return 1;
}

void client_emit(struct client *cl, struct emit *e)
{
	struct conn *c = cl->conn;

	/* A socket on its way out gets nothing more, not even its own
	 * disconnect hooks' broadcasts. */
	if (cl->closing)
		return;
	if (cl->format == CLIENT_PLAIN) {
		if (!e->plain)
			e->plain = encode_plain(e, -1);
		conn_send(c, frame_ref(e->plain));
		return;
	}
	if (cl->format == CLIENT_SIO_MSGPACK) {
		/* One encoding per namespace, shared as the text one is. */
		if (!e->msgpack || e->msgpack_nsp != cl->nsp) {
			struct frame *text = NULL;
			int log = cl->rec && !e->logged;
			frame_unref(e->msgpack);
			e->msgpack = encode_msgpack(e, cl->nsp, -1, log ? &text : NULL);
			e->msgpack_nsp = cl->nsp;
			/* The log keeps the text packet: each parser's frame
			 * can be made from it at a replay. */
			if (log)
				log_emit(cl, e, text);
			frame_unref(text);
		}
		if (!e->msgpack)
			return;
		/* The whole event, attachments inside: one frame. */
		if (cl->rec && recovery_delivered(cl, e))
			return; /* held: logged for its recovery */
		conn_send(c, frame_ref(e->msgpack));
		return;
	}
	if (!e->sio[0] || e->nsp != cl->nsp) {
		frame_unref(e->sio[0]);
		e->sio[0] = encode_sio(e, cl->nsp, -1);
		e->nsp = cl->nsp;
	}
	if (cl->rec) {
		if (!e->logged)
			log_emit(cl, e, e->sio[0]);
		if (recovery_delivered(cl, e))
			return; /* held: logged for its recovery */
	}
	conn_send(c, frame_ref(e->sio[0]));
	for (unsigned i = 0; i < e->natt; i++)
		conn_send(c, frame_ref(e->att[i]));
}

static void deliver(void *owner, void *arg)
{
	client_emit(owner, arg);
}

/* Every socket of a namespace: for broadcasts that name no room. */
static size_t broadcast_all(struct nsp *n, const struct room_target *t, struct emit *e)
{
	uint64_t epoch = room_mark_except(n, t);
	struct map_iter it;
	struct map_entry *ent;
	size_t count = 0;

	map_iter_init(&it, &clients);
	while ((ent = map_next(&it))) {
		struct client *cl = ent->value;
		if (cl->nsp != n || !cl->user_id || cl->rooms.mark == epoch)
			continue;
		client_emit(cl, e);
		count++;
	}
	return count;
}

size_t client_room_sets(const char *const *ids, const size_t *lens, size_t n,
			struct room_set **out)
{
	size_t found = 0;

	for (size_t i = 0; i < n; i++) {
		struct client *cl = client_find(ids[i], lens[i]);
		if (cl)
			out[found++] = &cl->rooms;
	}
	return found;
}

size_t client_broadcast(struct nsp *n, const struct room_target *t, struct emit *e,
			int to_all)
{
	size_t count;

	e->target = t;
	e->to_all = to_all ? 1 : 0;
	count = to_all ? broadcast_all(n, t, e) : room_broadcast(n, t, deliver, e);
	e->target = NULL;
	if (count)
		metrics_event_out(e->name, e->name_len, count);
	return count;
}

void emit_fini(struct emit *e)
{
	frame_unref(e->sio[0]);
	frame_unref(e->plain);
	frame_unref(e->msgpack);
	e->sio[0] = e->plain = e->msgpack = NULL;
}

void client_ack(struct client *cl, int64_t id, const struct emit *e)
{
	struct conn *c = cl->conn;
	size_t alen = e->args ? e->args_len : 0;
	struct frame *f;
	char *p;

	if (!c)
		return; /* held: an answer is not replayed */
	if (cl->format == CLIENT_PLAIN) {
		const char *args = plain_args(e, &alen);
		f = frame_new(NULL, ENVELOPE_REPLY_MAX(alen), 0);
		f->len = (uint32_t)envelope_reply_write((char *)frame_data(f), (uint64_t)id, args,
							alen, e->nargs);
		conn_send(c, f);
		return;
	}
	f = frame_new(NULL, 1 + SIO_ACK_MAX(cl->nsp->name_len, alen), 0);
	p = (char *)frame_data(f);
	p[0] = '4';
	f->len = (uint32_t)(1 + sio_ack_write(p + 1, cl->nsp->name, cl->nsp->name_len,
					       (uint64_t)id, e->natt, e->args, alen));
	if (cl->format == CLIENT_SIO_MSGPACK) {
		struct frame *m = client_msgpack_frame(p + 1, f->len - 1, e->att, e->natt);
		frame_unref(f);
		if (m)
			conn_send(c, m);
		return;
	}
	conn_send(c, f);
	for (unsigned i = 0; i < e->natt; i++)
		conn_send(c, frame_ref(e->att[i]));
}

static void on_ack_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct ack_wait *w = (struct ack_wait *)((char *)t - offsetof(struct ack_wait, timeout));
	struct client *cl = w->client;
	struct ack_wait **pp;

	(void)loop;
	(void)revents;
	for (pp = &cl->acks; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	uint64_t id = w->id;
	free(w);
	report_ack(cl, id, NULL, 0, NULL, 0, "timeout");
}

/* Takes the pending ack `id` off the socket's list; 0, or -ENOENT when it
 * was not there. */
int client_take_ack(struct client *cl, uint64_t id)
{
	for (struct ack_wait **pp = &cl->acks; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id) {
			struct ack_wait *w = *pp;
			*pp = w->next;
			ack_wait_free(w);
			return 0;
		}
	return -ENOENT;
}

uint64_t client_request(struct client *cl, struct emit *e, int timeout_ms)
{
	struct conn *c = cl->conn;
	struct ack_wait *w = xcalloc(1, sizeof(*w));
	uint64_t id = cl->next_ack++;

	w->client = cl;
	w->id = id;
	w->next = cl->acks;
	cl->acks = w;
	timer_start(&w->timeout, on_ack_timeout, timeout_ms);
	/* Held: the request is not replayed (its answer would come to
	 * nobody); it times out. */
	if (!c)
		return id;

	/* An encoding of its own: the ack id is this socket's. */
	if (cl->format == CLIENT_PLAIN) {
		conn_send(c, encode_plain(e, (int64_t)id));
		return id;
	}
	if (cl->format == CLIENT_SIO_MSGPACK) {
		struct frame *m = encode_msgpack(e, cl->nsp, (int64_t)id, NULL);
		if (m)
			conn_send(c, m);
		return id;
	}
	conn_send(c, encode_sio(e, cl->nsp, (int64_t)id));
	for (unsigned i = 0; i < e->natt; i++)
		conn_send(c, frame_ref(e->att[i]));
	return id;
}

void client_error(struct client *cl, int status, const char *message, int64_t ack_id)
{
	size_t mlen = strnlen(message, 1024);
	char *esc = xmalloc(json_escaped_max(mlen) + 1);
	char *body = xmalloc(json_escaped_max(mlen) + 96);
	size_t elen = json_escape(message, mlen, esc);
	int n;

	esc[elen] = '\0';
	n = snprintf(body, json_escaped_max(mlen) + 96,
		     "{\"status\":\"error\",\"message\":%s,\"statusCode\":%d}", esc, status);
	struct emit e = { .name = "error", .name_len = 5, .args = body, .args_len = (size_t)n,
			  .nargs = 1 };
	metrics_error(status);
	client_emit(cl, &e);
	metrics_event_out("error", 5, 1);
	emit_fini(&e);
	if (ack_id >= 0)
		client_ack(cl, ack_id, &e);
	free(esc);
	free(body);
}
