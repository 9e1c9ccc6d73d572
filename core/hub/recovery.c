/* recovery.c - connection state recovery (see recovery.h): pids, the log
 * of each socket's last events, the window a dropped socket is held for,
 * and the claim of a held socket by a client that comes back. */
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
#include "net/conn.h"

/* One frame of the log: an event (its frame's offset > 0) or one of its
 * attachments (0), which follow it. One pointer: each delivery writes one,
 * to a slot last touched a whole log ago, and eight share a cache line. */
struct recovery_entry {
	struct frame *f;
};

/* What a held socket has more: made when it is held, so that the many
 * sockets that are connected pay nothing for it. */
struct recovery_hold {
	struct recovery *r;
	ev_timer window;          /* ends the socket when the window passes */
	uint64_t hold_offset;     /* the newest offset logged when it was held */
	struct recovery *prev, *next; /* in `held` */
	char reason[64];          /* why its transport dropped */
};

struct recovery {
	struct client *owner;
	struct recovery_entry *v; /* a ring of `cap` (a power of two, or 0) */
	uint32_t head, count, cap;
	uint32_t events;          /* entries with an offset */
	size_t bytes;             /* payload bytes of the frames logged */
	uint32_t replay_from;     /* claimed: the first entry the client has not had */
	unsigned evicted : 1;     /* the log lost its oldest: it is not every event */
	unsigned lost : 1;        /* held, it lost an event it never sent: it ends */
	struct recovery_hold *hold; /* while it is held */
	char pid[24];
};

static void (*end_socket)(struct client *cl, const char *reason);
/* pid -> struct recovery, of the held sockets: only those can be claimed,
 * and a connected socket does not pay for an entry. Pids are 120 random
 * bits: one is checked against these only. */
static struct map pids;
static struct recovery *held;     /* the held sockets */
static uint64_t last_offset;
static uint64_t held_count;       /* sockets held now */
static uint64_t log_events;       /* events every log holds */
static uint64_t log_bytes;        /* their bytes */
static uint64_t claims[5];

enum claim_result { RECOVERED, UNKNOWN_PID, OTHER_USER, LOG_LOST, EXPIRED };

static struct metrics_value recovery_metrics[] = {
	{ .name = "parley_recovery_held", .help = "Socket.IO sockets whose transport dropped, "
	  "held for a recovery (PARLEY_RECOVERY_WINDOW).", .type = "gauge", .count = &held_count },
	{ .name = "parley_recovery_log_events", .help = "Events the sockets' recovery logs hold "
	  "(PARLEY_RECOVERY_MAX_EVENTS each).", .type = "gauge", .count = &log_events },
	{ .name = "parley_recovery_log_bytes", .help = "Bytes of the events the recovery logs hold "
	  "(PARLEY_RECOVERY_MAX_BYTES each; frames are shared, so memory is less).",
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

void recovery_init(void (*on_end)(struct client *cl, const char *reason))
{
	end_socket = on_end;
	map_init(&pids);
	for (size_t i = 0; i < sizeof(recovery_metrics) / sizeof(recovery_metrics[0]); i++)
		metrics_register(&recovery_metrics[i]);
}

void recovery_fini(void)
{
	map_fini(&pids);
}

struct recovery *recovery_new(struct client *cl)
{
	struct recovery *r = xcalloc(1, sizeof(*r));

	r->owner = cl;
	do
		conn_new_sid(r->pid);
	while (map_get(&pids, r->pid, strlen(r->pid)));
	return r;
}

const char *recovery_pid(const struct recovery *r)
{
	return r->pid;
}

uint64_t recovery_next_offset(void)
{
	return ++last_offset;
}

int recovery_is_held(const struct recovery *r)
{
	return r->hold != NULL;
}

static struct recovery_entry *entry_at(const struct recovery *r, uint32_t i)
{
	return &r->v[(r->head + i) & (r->cap - 1)];
}

/* Drops the oldest event of the log and its attachments. */
static void drop_oldest(struct recovery *r)
{
	do {
		struct recovery_entry *e = entry_at(r, 0);
		if (e->f->offset) {
			r->events--;
			log_events--;
		}
		r->bytes -= e->f->len;
		log_bytes -= e->f->len;
		frame_unref(e->f);
		r->head = (r->head + 1) & (r->cap - 1);
		r->count--;
	} while (r->count && entry_at(r, 0)->f->offset == 0);
	r->evicted = 1;
}

static void drop_all(struct recovery *r)
{
	while (r->count)
		drop_oldest(r);
	free(r->v);
	r->v = NULL;
	r->cap = r->head = 0;
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

/* The held socket lost an event it was never sent: nobody can recover it
 * now, so it ends at once (after the broadcast that is logging: rooms must
 * not change under it), and holds nothing meanwhile. */
static void lose(struct recovery *r, const char *limit)
{
	metrics_limit(limit);
	log_info("%s (%s): held for a recovery, it missed more than %s allows: ended",
		 r->owner->id, r->owner->user_id,
		 strcmp(limit, "recovery_max_bytes") == 0 ? "PARLEY_RECOVERY_MAX_BYTES" :
		 "PARLEY_RECOVERY_MAX_EVENTS");
	r->lost = 1;
	drop_all(r);
	timer_start(&r->hold->window, on_window, 0);
}

void recovery_log(struct recovery *r, struct frame *f, uint64_t offset)
{
	const char *limit = NULL;

	if (r->lost)
		return;
	if (f->len > settings.recovery_max_bytes) {
		/* One event too big to keep: the log would have a hole, so it
		 * starts again after it. */
		limit = "recovery_max_bytes";
		drop_all(r);
		r->evicted = 1;
		if (r->hold && offset)
			lose(r, limit);
		return;
	}
	while (r->count && ((offset && r->events >= (uint32_t)settings.recovery_max_events) ||
			    r->bytes + f->len > settings.recovery_max_bytes)) {
		limit = r->bytes + f->len > settings.recovery_max_bytes ? "recovery_max_bytes" :
		       "recovery_max_events";
		if (r->hold && entry_at(r, 0)->f->offset > r->hold->hold_offset) {
			lose(r, limit);
			return;
		}
		drop_oldest(r);
	}
	if (r->count == r->cap) {
		uint32_t cap = r->cap ? r->cap * 2 : 8;
		struct recovery_entry *v = xmalloc(cap * sizeof(*v));
		for (uint32_t i = 0; i < r->count; i++)
			v[i] = *entry_at(r, i);
		free(r->v);
		r->v = v;
		r->cap = cap;
		r->head = 0;
	}
	f->offset = offset;
	*entry_at(r, r->count) = (struct recovery_entry){ frame_ref(f) };
	r->count++;
	r->bytes += f->len;
	log_bytes += f->len;
	if (offset) {
		r->events++;
		log_events++;
	}
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
	drop_all(r);
	free(r);
}

void recovery_hold(struct recovery *r, const char *reason)
{
	struct recovery_hold *h = xcalloc(1, sizeof(*h));

	h->r = r;
	snprintf(h->reason, sizeof(h->reason), "%s", reason);
	/* Attachments of the last event are logged after it with 0: the
	 * newest offset is the last entry that has one. */
	for (uint32_t i = r->count; i-- > 0 && !h->hold_offset;)
		h->hold_offset = entry_at(r, i)->f->offset;
	h->next = held;
	if (held)
		held->hold->prev = r;
	held = r;
	r->hold = h;
	held_count++;
	map_put(&pids, r->pid, strlen(r->pid), r);
	timer_start(&h->window, on_window, settings.recovery_window_ms);
}

/* Where a replay after `offset` starts: the index of the first event after
 * it, or -ENOENT when the log does not hold it. */
static long replay_start(const struct recovery *r, int has_offset, uint64_t offset)
{
	if (!has_offset)
		return r->evicted ? -ENOENT : 0;
	if (!offset)
		return -ENOENT; /* 0 marks attachments, never an event */
	for (uint32_t i = r->count; i-- > 0;) {
		if (entry_at(r, i)->f->offset != offset)
			continue;
		/* Past the event and its attachments: the client has them. */
		for (i++; i < r->count && entry_at(r, i)->f->offset == 0; i++)
			;
		return i;
	}
	return -ENOENT;
}

struct client *recovery_claim(struct client *cl, const char *pid, size_t pid_len,
			      int has_offset, uint64_t offset)
{
	struct recovery *r = pid_len < sizeof(r->pid) ? map_get(&pids, pid, pid_len) : NULL;
	struct client *old;
	long start;

	/* A socket that is connected is not for the taking, nor one that is
	 * ending: to the client it is a pid nobody knows. */
	/* (A socket of the other parser is no match either: its log is in
	 * frames of that parser.) */
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
	start = replay_start(r, has_offset, offset);
	if (start < 0) {
		claims[LOG_LOST]++;
		log_info("%s (%s): recovery refused: the log of %s no longer holds every event "
			 "after the client's offset (PARLEY_RECOVERY_MAX_EVENTS, "
			 "PARLEY_RECOVERY_MAX_BYTES): a new session", cl->id, cl->user_id, old->id);
		/* Nobody can recover it now: it ends as it would have. */
		char why[sizeof(r->hold->reason)];
		memcpy(why, r->hold->reason, sizeof(why));
		end_socket(old, why);
		return NULL;
	}
	claims[RECOVERED]++;
	r->replay_from = (uint32_t)start;
	unhold(r);
	return old;
}

void recovery_replay(struct recovery *r, struct conn *c)
{
	for (uint32_t i = r->replay_from; i < r->count; i++)
		conn_send(c, frame_ref(entry_at(r, i)->f));
	r->replay_from = 0;
}

void recovery_end_all(const char *reason)
{
	while (held)
		end_socket(held->owner, reason);
}
