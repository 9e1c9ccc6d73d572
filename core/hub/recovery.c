/* recovery.c - connection state recovery (see recovery.h): pids, the
 * server's log of emits with where each went, the window a dropped socket
 * is held for, and the claim of a held socket by a client that comes back,
 * with the replay of the entries that were its. */
#include <errno.h>
#include <string.h>

#include "hub/recovery.h"

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/map.h"
#include "base/metrics.h"
#include "base/settings.h"
#include "hub/client.h"
#include "hub/room.h"
#include "net/conn.h"

/* The rooms a socket left that a replay may still need: a socket that
 * leaves more forgets the oldest, and recovers no more from before it. */
#define RECOVERY_LEFT_MAX 16

enum entry_kind { TO_ROOMS, TO_ALL, TO_SOCKET };

/* One emit of the log. Its bytes are in the log's byte ring at `pos`: its
 * Socket.IO packet (`text_len` bytes), then its `nrooms` rooms,
 * `nexcept_rooms` excepted rooms and `nexcept_sids` excepted socket ids
 * (TO_SOCKET: its one socket's id), each as a uint32_t length and its
 * bytes. A copy, not a reference to the frame that was sent: that frame is
 * freed once written, while it is still in the cache, as without recovery,
 * and the log is written in one sequence. */
struct log_entry {
	uint64_t offset;
	uint64_t pos;           /* in `bytes`, modulo its size */
	int64_t at_ms;          /* when it was logged (the loop's time) */
	struct nsp *nsp;
	struct frame **att;     /* its attachments (references), or NULL */
	unsigned natt;
	enum entry_kind kind;
	uint32_t text_len, len; /* the packet's bytes; all its bytes */
	uint32_t nrooms, nexcept_rooms, nexcept_sids;
	size_t att_bytes;
};


/* What a held socket has more: made when it is held, so that the many
 * sockets that are connected pay nothing for it. */
struct recovery_hold {
	struct recovery *r;
	ev_timer window;          /* ends the socket when the window passes */
	uint64_t hold_sent;       /* the socket's newest offset when it was held */
	/* The last offset issued then: none after `hold_sent` up to this one
	 * went to the socket, so the log may drop those. */
	uint64_t hold_point;
	struct recovery *prev, *next; /* in `held` */
	char reason[64];          /* why its transport dropped */
};

struct recovery {
	struct client *owner;
	uint64_t born;            /* the last offset issued when it was made */
	/* It forgot a room it left then: no replay from before this offset. */
	uint64_t left_floor;
	struct left_room *left[RECOVERY_LEFT_MAX];
	uint32_t nleft;
	unsigned lost : 1;        /* held, the log lost an event it missed: it ends */
	uint64_t replay_from;     /* claimed: the client has every event up to this */
	struct recovery_hold *hold; /* while it is held */
	char pid[RECOVERY_PID_MAX + 1];
};

static void (*end_socket)(struct client *cl, const char *reason);
static struct frame *(*msgpack_frame)(const char *pkt, size_t len, struct frame **att,
				      unsigned natt);
/* pid -> struct recovery, of the held sockets: only those can be claimed,
 * and a connected socket does not pay for an entry. Pids are 120 random
 * bits: one is checked against these only. */
static struct map pids;
static struct recovery *held;     /* the held sockets */
static uint64_t last_offset;
/* What ends every pid this server makes (cluster mode: its incarnation, so
 * that another node knows whose the pid is), or "". */
static char pid_suffix[RECOVERY_PID_MAX - 20 + 1];

/* The log: a ring of `cap` entries (a power of two, or 0), in offset order,
 * and their bytes in a ring of PARLEY_RECOVERY_MAX_BYTES (allocated at the
 * first emit; pages are the system's until written): `bytes_tail` is where
 * the next goes, positions counting up over the server's life. */
static struct log_entry *ring;
static uint32_t ring_head, ring_count, ring_cap;
static char *bytes;
static size_t bytes_cap;
static uint64_t bytes_tail;
static size_t att_bytes;          /* attachments the log holds */
/* The newest offset the log dropped (0: none): an offset after it is
 * there if it was logged at all. */
static uint64_t dropped_through;
static const char *drop_limit;    /* the limit the last drop was for */
static ev_timer expiry;           /* drops entries older than the window */

static uint64_t held_count;       /* sockets held now */
static uint64_t log_events;       /* entries the log holds */
static uint64_t log_bytes;        /* their bytes */
static uint64_t claims[5];

enum claim_result { RECOVERED, UNKNOWN_PID, OTHER_USER, LOG_LOST, EXPIRED };

static struct metrics_value recovery_metrics[] = {
	{ .name = "parley_recovery_held", .help = "Socket.IO sockets whose transport dropped, "
	  "held for a recovery (PARLEY_RECOVERY_WINDOW).", .type = "gauge", .count = &held_count },
	{ .name = "parley_recovery_log_events", .help = "Emits the server's recovery log holds, "
	  "one per broadcast however many sockets it reached (PARLEY_RECOVERY_MAX_EVENTS).",
	  .type = "gauge", .count = &log_events },
	{ .name = "parley_recovery_log_bytes", .help = "Bytes of the emits the recovery log holds: "
	  "their frames and where they went (PARLEY_RECOVERY_MAX_BYTES).",
	  .type = "gauge", .count = &log_bytes },
	{ .name = "parley_recovery_total{result=\"recovered\"}", .help = "Recovery attempts and "
	  "held sockets that ended: recovered; refused as a new session (unknown_pid, other_user, "
	  "log_lost); expired (held past the window).", .type = "counter",
	  .count = &claims[RECOVERED] },
	{ .name = "parley_recovery_total{result=\"unknown_pid\"}", .count = &claims[UNKNOWN_PID] },
	{ .name = "parley_recovery_total{result=\"other_user\"}", .count = &claims[OTHER_USER] },
	{ .name = "parley_recovery_total{result=\"log_lost\"}", .count = &claims[LOG_LOST] },
	{ .name = "parley_recovery_total{result=\"expired\"}", .count = &claims[EXPIRED] },
};

static struct log_entry *entry_at(uint32_t i)
{
	return &ring[(ring_head + i) & (ring_cap - 1)];
}

static void drop_oldest(const char *limit)
{
	struct log_entry *e = entry_at(0);

	dropped_through = e->offset;
	drop_limit = limit;
	for (unsigned i = 0; i < e->natt; i++)
		frame_unref(e->att[i]);
	free(e->att);
	att_bytes -= e->att_bytes;
	log_events--;
	ring_head = (ring_head + 1) & (ring_cap - 1);
	ring_count--;
	log_bytes = (ring_count ? bytes_tail - entry_at(0)->pos : 0) + att_bytes;
}

/* The loop's time in ms: a log entry's age needs no more. */
static int64_t loop_ms(void)
{
	return (int64_t)(ev_now(clock_loop) * 1000);
}

/* Drops what is older than the window, and comes back when the next one
 * will be: a quiet server's log empties. */
static void on_expiry(struct ev_loop *loop, ev_timer *t, int revents)
{
	int64_t now = loop_ms();

	(void)loop;
	(void)revents;
	while (ring_count && entry_at(0)->at_ms + settings.recovery_window_ms <= now)
		drop_oldest("recovery_window");
	if (ring_count)
		timer_start(t, on_expiry,
			    (double)(entry_at(0)->at_ms + settings.recovery_window_ms - now));
}

void recovery_init(void (*on_end)(struct client *cl, const char *reason),
		   struct frame *(*msgpack)(const char *pkt, size_t len, struct frame **att,
					    unsigned natt))
{
	end_socket = on_end;
	msgpack_frame = msgpack;
	map_init(&pids);
	for (size_t i = 0; i < sizeof(recovery_metrics) / sizeof(recovery_metrics[0]); i++)
		metrics_register(&recovery_metrics[i]);
}

void recovery_fini(void)
{
	timer_stop(&expiry);
	while (ring_count)
		drop_oldest(NULL);
	free(ring);
	ring = NULL;
	ring_cap = ring_head = 0;
	free(bytes);
	bytes = NULL;
	map_fini(&pids);
}

struct recovery *recovery_new(struct client *cl)
{
	struct recovery *r = xcalloc(1, sizeof(*r));

	r->owner = cl;
	r->born = last_offset;
	do
		conn_new_sid(r->pid);
	while (map_get(&pids, r->pid, strlen(r->pid)));
	if (pid_suffix[0])
		strcat(r->pid, pid_suffix);
	return r;
}

void recovery_set_pid_suffix(const char *suffix)
{
	snprintf(pid_suffix, sizeof(pid_suffix), "%s", suffix ? suffix : "");
}

void recovery_set_pid(struct recovery *r, const char *pid, size_t len)
{
	if (len > RECOVERY_PID_MAX)
		len = RECOVERY_PID_MAX;
	memcpy(r->pid, pid, len);
	r->pid[len] = '\0';
}

uint64_t recovery_born(const struct recovery *r, uint64_t *left_floor)
{
	*left_floor = r->left_floor;
	return r->born;
}

const struct left_room *const *recovery_left_rooms(const struct recovery *r, uint32_t *n)
{
	*n = r->nleft;
	return (const struct left_room *const *)r->left;
}

int recovery_holds(const char *pid, size_t len)
{
	return len <= RECOVERY_PID_MAX && map_get(&pids, pid, len) != NULL;
}

int recovery_drop(const char *pid, size_t len, const char *reason)
{
	struct recovery *r = len <= RECOVERY_PID_MAX ? map_get(&pids, pid, len) : NULL;

	if (!r || !r->hold || r->lost || r->owner->closing)
		return -ENOENT;
	end_socket(r->owner, reason);
	return 0;
}

const char *recovery_pid(const struct recovery *r)
{
	return r->pid;
}

uint64_t recovery_next_offset(void)
{
	return ++last_offset;
}

uint64_t recovery_last_offset(void)
{
	return last_offset;
}

int recovery_is_held(const struct recovery *r)
{
	return r->hold != NULL;
}

/* Appends `len` bytes of `s` to `*p` as a uint32_t length and the bytes. */
static void put_name(char **p, const char *s, size_t len)
{
	uint32_t n = (uint32_t)len;

	memcpy(*p, &n, sizeof(n));
	memcpy(*p + sizeof(n), s, len);
	*p += sizeof(n) + len;
}

/* Reads the name at `*p` and moves past it. */
static const char *get_name(const char **p, size_t *len)
{
	uint32_t n;
	const char *s = *p + sizeof(n);

	memcpy(&n, *p, sizeof(n));
	*len = n;
	*p = s + n;
	return s;
}

/* The entry's bytes. */
static const char *entry_bytes(const struct log_entry *e)
{
	return bytes + e->pos % bytes_cap;
}

void recovery_log(struct nsp *n, uint64_t offset, struct frame *text, struct frame **att,
		  unsigned natt, const struct room_target *t, int to_all, const char *sid)
{
	struct log_entry *e;
	size_t len = text->len, atts = 0;
	uint64_t pos;
	char *p;

	if (t) {
		for (size_t i = 0; !to_all && i < t->nrooms; i++)
			len += sizeof(uint32_t) + t->room_lens[i];
		for (size_t i = 0; i < t->nexcept_rooms; i++)
			len += sizeof(uint32_t) + t->except_lens[i];
		for (size_t i = 0; i < t->nexcept_sets; i++)
			len += sizeof(uint32_t) +
			       strlen(((struct client *)t->except_sets[i]->owner)->id);
	} else {
		len += sizeof(uint32_t) + strlen(sid);
	}
	for (unsigned i = 0; i < natt; i++)
		atts += att[i]->len;
	if (!bytes) {
		bytes_cap = settings.recovery_max_bytes;
		bytes = xmalloc(bytes_cap);
	}
	/* An entry is in one piece: one that would run past the end starts
	 * at the beginning. */
	pos = bytes_tail;
	if (pos % bytes_cap + len > bytes_cap)
		pos += bytes_cap - pos % bytes_cap;
	/* The bounds, oldest first. */
	while (ring_count && (ring_count >= (uint32_t)settings.recovery_max_events ||
			      pos + len - entry_at(0)->pos > bytes_cap ||
			      (pos + len - entry_at(0)->pos) + att_bytes + atts >
			      settings.recovery_max_bytes))
		drop_oldest(ring_count >= (uint32_t)settings.recovery_max_events ?
			    "recovery_max_events" : "recovery_max_bytes");
	if (len > bytes_cap || len + atts > settings.recovery_max_bytes) {
		/* Too big to keep at all: a hole, that the offsets tell. */
		dropped_through = offset;
		drop_limit = "recovery_max_bytes";
		return;
	}
	if (ring_count == ring_cap) {
		uint32_t cap = ring_cap ? ring_cap * 2 : 64;
		struct log_entry *v = xmalloc(cap * sizeof(*v));
		for (uint32_t i = 0; i < ring_count; i++)
			v[i] = *entry_at(i);
		free(ring);
		ring = v;
		ring_cap = cap;
		ring_head = 0;
	}
	e = entry_at(ring_count);
	*e = (struct log_entry){ .offset = offset, .pos = pos, .at_ms = loop_ms(), .nsp = n,
				 .natt = natt, .text_len = text->len, .len = (uint32_t)len,
				 .kind = !t ? TO_SOCKET : to_all ? TO_ALL : TO_ROOMS,
				 .att_bytes = atts };
	if (natt) {
		e->att = xmalloc(natt * sizeof(*e->att));
		for (unsigned i = 0; i < natt; i++)
			e->att[i] = frame_ref(att[i]);
	}
	p = bytes + pos % bytes_cap;
	memcpy(p, frame_data(text), text->len);
	p += text->len;
	if (t) {
		e->nrooms = to_all ? 0 : (uint32_t)t->nrooms;
		for (size_t i = 0; i < e->nrooms; i++)
			put_name(&p, t->rooms[i], t->room_lens[i]);
		e->nexcept_rooms = (uint32_t)t->nexcept_rooms;
		for (size_t i = 0; i < t->nexcept_rooms; i++)
			put_name(&p, t->except_rooms[i], t->except_lens[i]);
		e->nexcept_sids = (uint32_t)t->nexcept_sets;
		for (size_t i = 0; i < t->nexcept_sets; i++) {
			const char *id = ((struct client *)t->except_sets[i]->owner)->id;
			put_name(&p, id, strlen(id));
		}
	} else {
		put_name(&p, sid, strlen(sid));
	}
	bytes_tail = pos + len;
	ring_count++;
	log_events++;
	att_bytes += atts;
	log_bytes = bytes_tail - entry_at(0)->pos + att_bytes;
	if (!ev_is_active(&expiry))
		timer_start(&expiry, on_expiry, settings.recovery_window_ms);
}

static void on_window(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct recovery_hold *h = (struct recovery_hold *)((char *)t -
							 offsetof(struct recovery_hold, window));
	struct recovery *r = h->r;
	char why[sizeof(h->reason)];

	(void)loop;
	(void)revents;
	if (!r->lost) {
		claims[EXPIRED]++;
		log_debug("%s (%s): not recovered within PARLEY_RECOVERY_WINDOW: ended",
			  r->owner->id, r->owner->user_id);
	}
	/* The hooks hear why the transport dropped, as they would have then. */
	memcpy(why, h->reason, sizeof(why));
	end_socket(r->owner, why);
}

static const char *limit_setting(const char *limit)
{
	return strcmp(limit, "recovery_max_bytes") == 0 ? "PARLEY_RECOVERY_MAX_BYTES" :
	       strcmp(limit, "recovery_window") == 0 ? "PARLEY_RECOVERY_WINDOW" :
	       "PARLEY_RECOVERY_MAX_EVENTS";
}

void recovery_missed(struct recovery *r)
{
	const char *limit = drop_limit ? drop_limit : "recovery_max_events";

	/* It needs every entry since it was held (the entries between its
	 * last event and the hold went elsewhere): one of those is gone. */
	if (r->lost || !r->hold || dropped_through <= r->hold->hold_point)
		return;
	metrics_limit(limit);
	log_info("%s (%s): held for a recovery, the log dropped events it missed (%s): ended",
		 r->owner->id, r->owner->user_id, limit_setting(limit));
	r->lost = 1;
	/* It ends after the broadcast that is logging: rooms must not change
	 * under the walk. */
	timer_start(&r->hold->window, on_window, 0);
}

void recovery_left(struct recovery *r, const char *name, size_t len, uint64_t stamp)
{
	struct left_room *l;
	uint32_t k = 0;

	/* Left before any event after its join: it was in it for none. */
	if (stamp == last_offset)
		return;
	/* What the log no longer holds is no replay's. */
	for (uint32_t i = 0; i < r->nleft; i++) {
		if (r->left[i]->until <= dropped_through)
			free(r->left[i]);
		else
			r->left[k++] = r->left[i];
	}
	r->nleft = k;
	if (r->nleft == RECOVERY_LEFT_MAX) {
		/* Forgotten: a replay from before it could not tell it was in. */
		if (r->left[0]->until > r->left_floor)
			r->left_floor = r->left[0]->until;
		free(r->left[0]);
		memmove(&r->left[0], &r->left[1], (RECOVERY_LEFT_MAX - 1) * sizeof(r->left[0]));
		r->nleft--;
	}
	l = xmalloc(sizeof(*l) + len);
	l->since = stamp;
	l->until = last_offset;
	l->len = len;
	memcpy(l->name, name, len);
	r->left[r->nleft++] = l;
}

static void unhold(struct recovery *r)
{
	struct recovery_hold *h = r->hold;

	if (!h)
		return;
	timer_stop(&h->window);
	if (h->prev)
		h->prev->hold->next = h->next;
	else
		held = h->next;
	if (h->next)
		h->next->hold->prev = h->prev;
	free(h);
	r->hold = NULL;
	held_count--;
	map_del(&pids, r->pid, strlen(r->pid));
}

void recovery_free(struct recovery *r)
{
	if (!r)
		return;
	unhold(r);
	for (uint32_t i = 0; i < r->nleft; i++)
		free(r->left[i]);
	free(r);
}

void recovery_hold(struct recovery *r, const char *reason)
{
	struct recovery_hold *h = xcalloc(1, sizeof(*h));

	h->r = r;
	snprintf(h->reason, sizeof(h->reason), "%s", reason);
	h->hold_sent = r->owner->sent_offset;
	h->hold_point = last_offset;
	h->next = held;
	if (held)
		held->hold->prev = r;
	held = r;
	r->hold = h;
	held_count++;
	map_put(&pids, r->pid, strlen(r->pid), r);
	timer_start(&h->window, on_window, settings.recovery_window_ms);
}

/* Was the socket of `r` in the room `name` when the event of offset `o`
 * went? In it now and since before `o`, or in it then and left since. */
static int was_in(const struct recovery *r, const char *name, size_t len, uint64_t o)
{
	const struct client *cl = r->owner;
	uint64_t stamp;

	if (room_stamp(cl->nsp, &cl->rooms, name, len, &stamp) && stamp < o)
		return 1;
	for (uint32_t i = 0; i < r->nleft; i++) {
		const struct left_room *l = r->left[i];
		if (l->since < o && o <= l->until && l->len == len && memcmp(l->name, name, len) == 0)
			return 1;
	}
	return 0;
}

/* Did the entry go to the socket of `r`? As the broadcast's walk chose:
 * a member of one of its rooms (or any socket of its namespace), in none
 * of its excepted rooms, not an excepted socket; or the socket it named. */
static int went_to(const struct recovery *r, const struct log_entry *e)
{
	const struct client *cl = r->owner;
	const char *p = entry_bytes(e) + e->text_len;
	const char *s;
	size_t len;
	int in = e->kind == TO_ALL;

	/* (Nothing before the socket was made was its.) */
	if (e->nsp != cl->nsp || e->offset <= r->born)
		return 0;
	if (e->kind == TO_SOCKET) {
		s = get_name(&p, &len);
		return len == strlen(cl->id) && memcmp(s, cl->id, len) == 0;
	}
	for (uint32_t i = 0; i < e->nrooms; i++) {
		s = get_name(&p, &len);
		if (!in && was_in(r, s, len, e->offset))
			in = 1;
	}
	if (!in)
		return 0;
	for (uint32_t i = 0; i < e->nexcept_rooms; i++) {
		s = get_name(&p, &len);
		if (was_in(r, s, len, e->offset))
			return 0;
	}
	for (uint32_t i = 0; i < e->nexcept_sids; i++) {
		s = get_name(&p, &len);
		if (len == strlen(cl->id) && memcmp(s, cl->id, len) == 0)
			return 0;
	}
	return 1;
}

struct client *recovery_claim(struct client *cl, const char *pid, size_t pid_len,
			      int has_offset, uint64_t offset)
{
	struct recovery *r = pid_len < sizeof(r->pid) ? map_get(&pids, pid, pid_len) : NULL;
	struct client *old;
	uint64_t from;

	/* A socket that is connected is not for the taking, nor one that is
	 * ending: to the client it is a pid nobody knows. (A socket of the
	 * other parser is no match either: a client does not change parsers.) */
	if (!r || !r->hold || r->lost || r->owner->closing || r->owner->nsp != cl->nsp ||
	    r->owner->format != cl->format) {
		claims[UNKNOWN_PID]++;
		log_info("%s (%s, %s): recovery refused: a pid that names no socket held in %s: "
			 "a new session", cl->id, cl->user_id, cl->conn->hs.addr, cl->nsp->name);
		return NULL;
	}
	old = r->owner;
	if (strcmp(old->user_id, cl->user_id) != 0) {
		/* Left alone: its own user may still come back for it. */
		claims[OTHER_USER]++;
		log_info("%s (%s, %s): recovery refused: the pid is another user's socket: "
			 "a new session", cl->id, cl->user_id, cl->conn->hs.addr);
		return NULL;
	}
	/* Without an offset the client had no event: it missed every one the
	 * socket was sent. An offset is one the socket was sent (0 names
	 * none); what it missed, the entries after it up to the socket's
	 * newest, must all be in the log still (but for those between its
	 * last event before the hold and the hold: none of them was its),
	 * and the rooms it left then remembered. */
	from = has_offset ? offset : r->born;
	uint64_t need = from < r->hold->hold_sent ? from : r->hold->hold_point;
	if ((has_offset && (offset == 0 || offset > old->sent_offset)) ||
	    (from < old->sent_offset && (need < dropped_through || from < r->left_floor))) {
		claims[LOG_LOST]++;
		log_info("%s (%s): recovery refused: the log no longer holds every event %s missed "
			 "after the client's offset (PARLEY_RECOVERY_MAX_EVENTS, "
			 "PARLEY_RECOVERY_MAX_BYTES, PARLEY_RECOVERY_WINDOW): a new session", cl->id,
			 cl->user_id, old->id);
		/* Nobody can recover it now: it ends as it would have. */
		char why[sizeof(r->hold->reason)];
		memcpy(why, r->hold->reason, sizeof(why));
		end_socket(old, why);
		return NULL;
	}
	claims[RECOVERED]++;
	r->replay_from = from;
	unhold(r);
	return old;
}

/* The index of the first entry after `offset` (ring_count: none). */
static uint32_t first_after(uint64_t offset)
{
	uint32_t lo = 0, hi = ring_count;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (entry_at(mid)->offset <= offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void recovery_replay(struct recovery *r, struct conn *c)
{
	const struct client *cl = r->owner;

	for (uint32_t i = first_after(r->replay_from); i < ring_count; i++) {
		struct log_entry *e = entry_at(i);
		if (e->offset > cl->sent_offset)
			break;
		if (!went_to(r, e))
			continue;
		if (cl->format == CLIENT_SIO_MSGPACK) {
			struct frame *m = msgpack_frame(entry_bytes(e) + 1, e->text_len - 1,
							e->att, e->natt);
			if (m)
				conn_send(c, m);
			continue;
		}
		conn_send(c, frame_new(entry_bytes(e), e->text_len, 0));
		for (unsigned k = 0; k < e->natt; k++)
			conn_send(c, frame_ref(e->att[k]));
	}
	r->replay_from = 0;
}

void recovery_end_all(const char *reason)
{
	while (held)
		end_socket(held->owner, reason);
}
