/* cluster.c - cluster mode on Redis (see cluster.h): the room watcher that
 * subscribes and unsubscribes, the publishing of broadcasts, the delivery
 * of the other nodes' with their duplicates dropped, the node's liveness
 * key, /healthz's degraded state and the parley_cluster_* metrics. */
#include "cluster/cluster.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/settings.h"
#include "cluster/link.h"

/* How long the start's check of Redis may take. */
#define CLUSTER_START_TIMEOUT_S 3
/* The liveness key's lifetime, and how often it is set again: a node that
 * stops refreshing it is gone after the TTL (the base of presence across
 * nodes, issue 19). */
#define CLUSTER_LIVENESS_TTL_MS 15000
#define CLUSTER_LIVENESS_EVERY_S 5.0
/* A node not heard from for this long is forgotten by the duplicate check:
 * the copies of one broadcast arrive within moments of each other. */
#define CLUSTER_PEER_IDLE_MS 60000
/* The duplicate check's window: how far behind the newest serial of a node
 * a copy may still come (the copies of one broadcast are published back to
 * back on one connection, so they are never far apart). */
#define CLUSTER_WINDOW 64

/* The most channels of their own the modules may follow, and the most
 * modules told when Redis is back (cluster_listen, cluster_on_up). */
#define CLUSTER_MAX_LISTENERS 8

/* The event a socket gets when broadcasts may not have reached it: this
 * node's subscribing connection was lost (Redis down, or Redis closed it as
 * a slow subscriber), or another node kept broadcasts to itself (Redis down
 * for it, or its backlog full). Clients answer with messages:sync for the
 * conversations they show (docs/cluster.md, "Faults"). */
#define CLUSTER_RESYNC_EVENT "cluster:resync"

/* A command on the publishing connection waiting for its reply. */
struct pending {
	cluster_reply_fn done;
	void *arg;
};

/* Something waiting until Redis has answered the subscribing connection's
 * commands up to `mark`. */
struct sub_waiter {
	uint64_t mark;
	uint64_t tick;  /* the liveness tick it came in */
	void (*fn)(void *arg);
	void *arg;
};

/* What this node has seen of another's broadcasts. */
struct peer {
	uint64_t incarnation; /* the node's start this state is of */
	uint64_t high;        /* the highest serial seen */
	uint64_t window;      /* bit i: serial high - i was seen */
	int64_t seen_ms;
};

static struct {
	int on;
	char node[256];
	size_t node_len;
	uint64_t incarnation;
	uint64_t serial;
	char shown[320]; /* the URI, for the logs */
	struct link_addr addr;
	struct link *pub, *sub;
	struct map peers; /* node id -> struct peer */
	ev_timer liveness;
	/* Commands were refused for the backlog: once it drains, the modules
	 * write what they keep in Redis again (their up hooks, from this
	 * timer: never inside a module's own call). */
	int owed_up;
	ev_timer drained;
	/* The subscribing connection's commands since it came up, and the
	 * replies to them so far (each (un)subscription has one; Redis answers
	 * in order): what waits for a subscription (cluster_subscribed) waits
	 * until `sub_answered` reaches the count when it asked. */
	uint64_t sub_sent, sub_answered;
	uint64_t tick; /* liveness ticks (every 5 s) */
	struct sub_waiter *sub_waiters;
	size_t nsub_waiters, sub_waiters_cap;
	ev_timer sweep;
	char why[448];
	/* The publishing connection's commands not yet answered, oldest first
	 * (a ring: head, count, cap). Redis answers a connection's commands in
	 * order, so each reply is the oldest's. */
	struct pending *waiting;
	size_t head, count, cap;
	struct {
		char *channel;
		size_t len;
		cluster_message_fn fn;
	} listeners[CLUSTER_MAX_LISTENERS];
	size_t nlisteners;
	void (*up_hooks[CLUSTER_MAX_LISTENERS])(void);
	size_t nup_hooks;
	cluster_published_fn on_publish;
	/* The subscribing connection: up once at least; lost since (a notice is
	 * owed to this node's sockets); the replies to its resubscription still
	 * to come before the notice goes (then the subscriptions are in force,
	 * and a messages:sync the notice prompts misses nothing). */
	int sub_was_up, sub_lost;
	size_t sub_expect;
	/* Broadcasts stayed on this node since the last notice: one is owed to
	 * the other nodes. */
	int unsent;
} cl;

static uint64_t refused_commands;
static uint64_t published, unsent_down, unsent_backlog, received, own, duplicates, malformed,
	unknown_nsp, deliveries, subscriptions, redis_errors, resync_local, resync_remote;

static long long up_read(void)
{
	return cl.pub && cl.sub && link_is_up(cl.pub) && link_is_up(cl.sub);
}

static struct metrics_value cluster_metrics[] = {
	{ .name = "parley_cluster_redis_up",
	  .help = "1 while both connections to Redis (publishing, subscribing) serve, else 0.",
	  .type = "gauge", .read = up_read },
	{ .name = "parley_cluster_published_total",
	  .help = "Broadcasts published to the other nodes, counted once each (a broadcast "
		  "is one SPUBLISH per targeted room's channel).", .type = "counter",
	  .count = &published },
	{ .name = "parley_cluster_unsent_total{reason=\"down\"}",
	  .help = "Broadcasts that stayed on this node: Redis unreachable (down), or more than "
		  "PARLEY_REDIS_MAX_BACKLOG unsent to it (backlog).",
	  .type = "counter", .count = &unsent_down },
	{ .name = "parley_cluster_unsent_total{reason=\"backlog\"}", .count = &unsent_backlog },
	{ .name = "parley_cluster_commands_refused_total", .help = "Commands of the cluster's "
	  "modules (presence, sessions) refused while more than PARLEY_REDIS_MAX_BACKLOG was "
	  "unsent to Redis; what they keep there is written again once it drains.",
	  .type = "counter", .count = &refused_commands },
	{ .name = "parley_cluster_received_total",
	  .help = "Messages that came from Redis (every copy, this node's own included).",
	  .type = "counter", .count = &received },
	{ .name = "parley_cluster_dropped_total{reason=\"own\"}",
	  .help = "Messages received and not delivered: this node's own broadcasts (own), a "
		  "second copy of one broadcast through another of its rooms (duplicate), not a "
		  "message of this version (malformed), a namespace no script declares here "
		  "(namespace).", .type = "counter", .count = &own },
	{ .name = "parley_cluster_dropped_total{reason=\"duplicate\"}", .count = &duplicates },
	{ .name = "parley_cluster_dropped_total{reason=\"malformed\"}", .count = &malformed },
	{ .name = "parley_cluster_dropped_total{reason=\"namespace\"}", .count = &unknown_nsp },
	{ .name = "parley_cluster_deliveries_total",
	  .help = "Sockets of this node reached by the other nodes' broadcasts.",
	  .type = "counter", .count = &deliveries },
	{ .name = "parley_cluster_subscriptions",
	  .help = "Channels this node follows: a room with a member here, or a namespace's "
		  "everyone channel.", .type = "gauge", .count = &subscriptions },
	{ .name = "parley_cluster_redis_errors_total",
	  .help = "Error replies from Redis (logged).", .type = "counter", .count = &redis_errors },
	{ .name = "parley_cluster_resync_total{to=\"local\"}",
	  .help = "cluster:resync notices: to this node's sockets once its subscribing connection "
		  "was back (local), to the other nodes once broadcasts that stayed here could go "
		  "again (remote).", .type = "counter", .count = &resync_local },
	{ .name = "parley_cluster_resync_total{to=\"remote\"}", .count = &resync_remote },
};

/* ---- channels ---- */

/* A room's channel, "parley:<nsp>:room:<name>", or the namespace's
 * everyone channel, "parley:<nsp>:everyone" (`room` NULL). No hash tag: on
 * a Redis Cluster the rooms spread over the shards. Written to `buf`
 * (`cap` bytes) when it fits, else to a new buffer: free it when it is
 * not `buf`. */
static char *channel(const char *nsp, size_t nsp_len, const char *room, size_t room_len,
		     char *buf, size_t cap, size_t *len)
{
	size_t n = 7 + nsp_len + (room ? 6 + room_len : 9);
	char *p = n <= cap ? buf : xmalloc(n);

	memcpy(p, "parley:", 7);
	memcpy(p + 7, nsp, nsp_len);
	if (room) {
		memcpy(p + 7 + nsp_len, ":room:", 6);
		memcpy(p + 13 + nsp_len, room, room_len);
	} else {
		memcpy(p + 7 + nsp_len, ":everyone", 9);
	}
	*len = n;
	return p;
}

/* Returns 1 when the command went, 0 while the link is down. */
static int follow(const char *cmd, const char *nsp, size_t nsp_len, const char *room,
		  size_t room_len)
{
	char buf[256];
	size_t len;
	char *ch = channel(nsp, nsp_len, room, room_len, buf, sizeof(buf), &len);
	const char *argv[] = { cmd, ch };
	size_t lens[] = { strlen(cmd), len };
	int sent;

	/* One channel a command: on a Redis Cluster a command's channels must
	 * share a slot. While the link is down nothing is sent: on_sub_up
	 * subscribes to everything the node follows then. */
	sent = link_send(cl.sub, 2, argv, lens) == 0;
	cl.sub_sent += (uint64_t)sent;
	if (ch != buf)
		free(ch);
	return sent;
}

/* hub's rooms come and go: the node follows the channel of each room it has
 * a member in, and its namespace's everyone channel while it has a room
 * there (every connected socket is in its user's room). */
static void on_room(struct nsp *n, const struct room *r, int opened)
{
	const char *cmd = opened ? "SSUBSCRIBE" : "SUNSUBSCRIBE";

	follow(cmd, n->name, n->name_len, r->name, r->name_len);
	subscriptions += opened ? 1 : (uint64_t)-1;
	if (n->rooms.count == (opened ? 1u : 0u)) {
		follow(cmd, n->name, n->name_len, NULL, 0);
		subscriptions += opened ? 1 : (uint64_t)-1;
	}
}

/* Tells every socket of this node that broadcasts may have missed it
 * (CLUSTER_RESYNC_EVENT {reason}): delivered here only. */
static void tell_local(const char *reason)
{
	char args[64];
	int len = snprintf(args, sizeof(args), "{\"reason\":\"%s\"}", reason);
	struct map_iter it;
	struct map_entry *me;

	map_iter_init(&it, client_namespaces());
	while ((me = map_next(&it))) {
		struct nsp *n = me->value;
		struct room_target t;
		struct emit e;
		if (!n->sockets)
			continue;
		memset(&t, 0, sizeof(t));
		memset(&e, 0, sizeof(e));
		e.name = CLUSTER_RESYNC_EVENT;
		e.name_len = sizeof(CLUSTER_RESYNC_EVENT) - 1;
		e.args = args;
		e.args_len = (size_t)len;
		e.nargs = 1;
		client_broadcast(n, &t, &e, 1);
		emit_fini(&e);
	}
	resync_local++;
	log_info("cluster: subscribed again after a loss: told this node's sockets to catch up "
		 "(%s)", CLUSTER_RESYNC_EVENT);
}

/* Runs (and forgets) the waiters whose subscriptions Redis has answered;
 * every one of them when `all` (the connection went: what they wait for is
 * caught up by the resync that follows, not by waiting). */
static void run_sub_waiters(int all)
{
	size_t i = 0;

	while (i < cl.nsub_waiters && (all || cl.sub_waiters[i].mark <= cl.sub_answered))
		i++;
	if (!i)
		return;
	/* Taken off first: a waiter's function may ask again. */
	struct sub_waiter *done = xmalloc(i * sizeof(*done));
	memcpy(done, cl.sub_waiters, i * sizeof(*done));
	memmove(cl.sub_waiters, cl.sub_waiters + i, (cl.nsub_waiters - i) * sizeof(*done));
	cl.nsub_waiters -= i;
	for (size_t k = 0; k < i; k++)
		done[k].fn(done[k].arg);
	free(done);
}

int cluster_subscribed(void (*fn)(void *arg), void *arg)
{
	if (!cl.on || !link_is_up(cl.sub) || cl.sub_answered >= cl.sub_sent)
		return 0;
	if (cl.nsub_waiters == cl.sub_waiters_cap) {
		cl.sub_waiters_cap = cl.sub_waiters_cap ? cl.sub_waiters_cap * 2 : 16;
		cl.sub_waiters = xrealloc(cl.sub_waiters,
					  cl.sub_waiters_cap * sizeof(*cl.sub_waiters));
	}
	cl.sub_waiters[cl.nsub_waiters++] = (struct sub_waiter){ cl.sub_sent, cl.tick, fn, arg };
	return 1;
}

/* The subscribing connection is (back) up: every channel the node follows,
 * subscribed again (Redis forgot them with the connection). After a loss,
 * this node's sockets are told to catch up once Redis has answered every
 * one of these subscriptions. */
static void on_sub_up(void *arg)
{
	struct map_iter it, rit;
	struct map_entry *e, *re;
	size_t sent = 0;

	(void)arg;
	/* A new connection: the link sent its SELECT before this. */
	cl.sub_sent = cl.addr.db ? 1 : 0;
	cl.sub_answered = 0;
	map_iter_init(&it, client_namespaces());
	while ((e = map_next(&it))) {
		struct nsp *n = e->value;
		if (!n->rooms.count)
			continue;
		sent += (size_t)follow("SSUBSCRIBE", n->name, n->name_len, NULL, 0);
		map_iter_init(&rit, &n->rooms);
		while ((re = map_next(&rit))) {
			const struct room *r = re->value;
			sent += (size_t)follow("SSUBSCRIBE", n->name, n->name_len, r->name,
					       r->name_len);
		}
	}
	for (size_t i = 0; i < cl.nlisteners; i++) {
		const char *argv[] = { "SSUBSCRIBE", cl.listeners[i].channel };
		size_t lens[] = { 10, cl.listeners[i].len };
		if (link_send(cl.sub, 2, argv, lens) == 0) {
			sent++;
			cl.sub_sent++; /* follow() counts its own */
		}
	}
	cl.sub_was_up = 1;
	if (!cl.sub_lost)
		return;
	/* The link sent its SELECT before this: its reply comes first. */
	cl.sub_expect = sent + (cl.addr.db ? 1 : 0);
	if (!cl.sub_expect) {
		cl.sub_lost = 0;
		tell_local("subscription");
	}
}

/* ---- commands on the publishing connection ---- */

/* Sends a command on the publishing connection, its reply to go to `done`
 * (NULL: an error reply is counted and logged, anything else dropped). */
static int pub_send(int argc, const char **argv, const size_t *lens, cluster_reply_fn done,
		    void *arg)
{
	int rc = link_send(cl.pub, argc, argv, lens);

	if (rc < 0)
		return rc;
	if (cl.count == cl.cap) {
		size_t cap = cl.cap ? cl.cap * 2 : 64;
		struct pending *w = xcalloc(cap, sizeof(*w));
		for (size_t i = 0; i < cl.count; i++)
			w[i] = cl.waiting[(cl.head + i) % cl.cap];
		free(cl.waiting);
		cl.waiting = w;
		cl.cap = cap;
		cl.head = 0;
	}
	cl.waiting[(cl.head + cl.count) % cl.cap] = (struct pending){ done, arg };
	cl.count++;
	return 0;
}

/* The oldest command waiting, taken off the ring (NULLs when none: a reply
 * nobody asked for, which Redis never sends on this connection). */
static struct pending pub_next(void)
{
	struct pending p = { NULL, NULL };

	if (cl.count) {
		p = cl.waiting[cl.head];
		cl.head = (cl.head + 1) % cl.cap;
		cl.count--;
	}
	return p;
}

/* While commands are owed: the backlog drained, the modules write their
 * state again, as after a reconnect. */
static void on_drained(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	if (!link_is_up(cl.pub) || link_backlog(cl.pub) > settings.redis_max_backlog / 2)
		return;
	ev_timer_stop(clock_loop, w);
	cl.owed_up = 0;
	log_info("cluster: Redis caught up: presence and sessions written again");
	for (size_t i = 0; i < cl.nup_hooks; i++)
		cl.up_hooks[i]();
}

int cluster_command(int argc, const char **argv, const size_t *lens, cluster_reply_fn done,
		    void *arg)
{
	if (!cl.on)
		return PARLEY_EUNAVAILABLE;
	/* Redis reads slower than this node writes: the modules' commands, as
	 * the broadcasts, stay out of a buffer that would grow the node's
	 * memory without bound. What a refused command would have written is
	 * written again, all of it, once the backlog drains (on_drained). */
	if (link_backlog(cl.pub) > settings.redis_max_backlog) {
		metrics_limit("redis_backlog");
		if (!refused_commands++ || !cl.owed_up)
			log_warn("cluster: more than %zu bytes unsent to Redis "
				 "(PARLEY_REDIS_MAX_BACKLOG): presence and sessions are written "
				 "again once it drains", settings.redis_max_backlog);
		if (!cl.owed_up) {
			cl.owed_up = 1;
			ev_timer_start(clock_loop, &cl.drained);
		}
		return PARLEY_EUNAVAILABLE;
	}
	return pub_send(argc, argv, lens, done, arg);
}

void cluster_listen(const char *name, cluster_message_fn fn)
{
	size_t len = strlen(name);
	const char *argv[] = { "SSUBSCRIBE", name };
	size_t lens[] = { 10, len };

	if (!cl.on || cl.nlisteners == CLUSTER_MAX_LISTENERS)
		return;
	cl.listeners[cl.nlisteners].channel = xstrdup(name);
	cl.listeners[cl.nlisteners].len = len;
	cl.listeners[cl.nlisteners].fn = fn;
	cl.nlisteners++;
	/* Down: on_sub_up subscribes when it comes. */
	cl.sub_sent += link_send(cl.sub, 2, argv, lens) == 0;
}

void cluster_on_up(void (*fn)(void))
{
	if (cl.on && cl.nup_hooks < CLUSTER_MAX_LISTENERS)
		cl.up_hooks[cl.nup_hooks++] = fn;
}

void cluster_on_publish(cluster_published_fn fn)
{
	cl.on_publish = fn;
}

int cluster_is_up(void)
{
	return cl.on && up_read();
}

const char *cluster_node(void)
{
	return cl.on ? cl.node : NULL;
}

uint64_t cluster_incarnation(void)
{
	return cl.incarnation;
}

/* ---- liveness ---- */

static void set_liveness(void)
{
	char key[300], value[64], ttl[24];
	const char *argv[] = { "SET", key, value, "PX", ttl };
	size_t lens[] = { 3, (size_t)snprintf(key, sizeof(key), "parley:node:%s", cl.node),
			  (size_t)snprintf(value, sizeof(value), "%016llx",
					   (unsigned long long)cl.incarnation),
			  2, (size_t)snprintf(ttl, sizeof(ttl), "%d", CLUSTER_LIVENESS_TTL_MS) };

	pub_send(5, argv, lens, NULL, NULL);
}

static void tell_others(void);

static void on_liveness(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	set_liveness();
	/* Redis answers a subscription at once, and a silent connection is
	 * dropped after 9 s (which runs the waiters): one still waiting two
	 * ticks on would be a count gone wrong. Better a join that may miss a
	 * broadcast than one that never answers. */
	if (cl.nsub_waiters && cl.sub_waiters[0].tick + 2 <= cl.tick) {
		log_warn("cluster: %zu joins waited 10 s for Redis's answer to a subscription: "
			 "answered now", cl.nsub_waiters);
		run_sub_waiters(1);
	}
	cl.tick++;
	/* A backlog that drained with nothing new to publish: the notice goes
	 * from here. */
	tell_others();
}

static void on_pub_up(void *arg)
{
	(void)arg;
	set_liveness();
	tell_others();
	for (size_t i = 0; i < cl.nup_hooks; i++)
		cl.up_hooks[i]();
}

/* ---- what comes from the other nodes ---- */

/* Whether the broadcast (`origin`, `incarnation`, `serial`) was delivered
 * already; records it when not. */
static int seen_before(const char *origin, size_t len, uint64_t incarnation, uint64_t serial)
{
	struct peer *p = map_get(&cl.peers, origin, len);
	uint64_t behind;

	if (!p) {
		p = xcalloc(1, sizeof(*p));
		map_put(&cl.peers, origin, len, p);
	}
	p->seen_ms = now_ms();
	/* A node that started again counts from 1 again. */
	if (p->incarnation != incarnation || !p->window) {
		p->incarnation = incarnation;
		p->high = serial;
		p->window = 1;
		return 0;
	}
	if (serial > p->high) {
		uint64_t ahead = serial - p->high;
		p->window = ahead >= CLUSTER_WINDOW ? 1 : (p->window << ahead) | 1;
		p->high = serial;
		return 0;
	}
	behind = p->high - serial;
	/* Older than the window: its copies came long ago. */
	if (behind >= CLUSTER_WINDOW || (p->window >> behind) & 1)
		return 1;
	p->window |= (uint64_t)1 << behind;
	return 0;
}

static void deliver(const char *data, size_t len)
{
	struct relay_msg m;
	struct room_target t;
	struct room_set **sets = NULL;
	struct frame **att = NULL;
	struct emit e;
	struct nsp *n;

	received++;
	if (relay_decode(data, len, &m) < 0) {
		malformed++;
		log_warn("cluster: a message of %zu bytes from Redis is not a broadcast of this "
			 "version: dropped", len);
		return;
	}
	if (m.origin_len == cl.node_len && memcmp(m.origin, cl.node, cl.node_len) == 0 &&
	    m.incarnation == cl.incarnation) {
		/* This node delivered it when it published it. */
		own++;
		goto out;
	}
	if (seen_before(m.origin, m.origin_len, m.incarnation, m.serial)) {
		duplicates++;
		goto out;
	}
	n = nsp_lookup(m.nsp, m.nsp_len);
	if (!n) {
		unknown_nsp++;
		goto out;
	}
	memset(&t, 0, sizeof(t));
	t.rooms = m.rooms.v;
	t.room_lens = m.rooms.lens;
	t.nrooms = m.rooms.n;
	t.except_rooms = m.except_rooms.v;
	t.except_lens = m.except_rooms.lens;
	t.nexcept_rooms = m.except_rooms.n;
	/* An excepted socket is one node's: here, those that are this node's. */
	sets = xcalloc(m.except_sids.n, sizeof(*sets));
	t.nexcept_sets = client_room_sets(m.except_sids.v, m.except_sids.lens, m.except_sids.n,
					  sets);
	t.except_sets = sets;
	memset(&e, 0, sizeof(e));
	e.name = m.event;
	e.name_len = m.event_len;
	e.args = m.args;
	e.args_len = m.args_len;
	e.nargs = m.nargs;
	e.plain_args = m.plain;
	e.plain_len = m.plain_len;
	att = xcalloc(m.att.n, sizeof(*att));
	for (size_t i = 0; i < m.att.n; i++)
		att[i] = frame_new(m.att.v[i], m.att.lens[i], 1);
	e.att = att;
	e.natt = (unsigned)m.att.n;
	deliveries += client_broadcast(n, &t, &e, m.everyone);
	emit_fini(&e);
	for (size_t i = 0; i < m.att.n; i++)
		frame_unref(att[i]);
out:
	free(att);
	free(sets);
	relay_msg_fini(&m);
}

static int is_smessage(const redisReply *r)
{
	return r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
	       r->element[0]->type == REDIS_REPLY_STRING &&
	       r->element[1]->type == REDIS_REPLY_STRING &&
	       r->element[2]->type == REDIS_REPLY_STRING &&
	       strcmp(r->element[0]->str, "smessage") == 0;
}

static void on_sub_reply(void *arg, const redisReply *r)
{
	(void)arg;
	/* Redis answers a connection's commands in order: the first replies
	 * after a reconnect (every one but the messages of the channels) are
	 * those of on_sub_up's subscriptions. */
	if (cl.sub_expect && !is_smessage(r) && --cl.sub_expect == 0) {
		cl.sub_lost = 0;
		tell_local("subscription");
	}
	if (!is_smessage(r)) {
		cl.sub_answered++;
		if (cl.nsub_waiters)
			run_sub_waiters(0);
	}
	if (r->type == REDIS_REPLY_ERROR) {
		redis_errors++;
		log_warn("cluster: Redis refused a subscription: %s", r->str);
		return;
	}
	/* ["smessage", channel, payload]; the (un)subscribe confirmations
	 * need nothing. */
	if (!is_smessage(r))
		return;
	for (size_t i = 0; i < cl.nlisteners; i++) {
		if (r->element[1]->len == cl.listeners[i].len &&
		    memcmp(r->element[1]->str, cl.listeners[i].channel, cl.listeners[i].len) == 0) {
			cl.listeners[i].fn(r->element[2]->str, r->element[2]->len);
			return;
		}
	}
	deliver(r->element[2]->str, r->element[2]->len);
}

static void on_pub_reply(void *arg, const redisReply *r)
{
	struct pending p = pub_next();

	(void)arg;
	if (r->type == REDIS_REPLY_ERROR) {
		redis_errors++;
		if (!p.done)
			log_warn("cluster: Redis refused a command: %s", r->str);
	}
	if (p.done)
		p.done(p.arg, r);
}

static void set_why(const char *why)
{
	snprintf(cl.why, sizeof(cl.why), "Redis unreachable at %.200s: %.200s", cl.shown, why);
}

static void on_sub_down(void *arg, const char *why)
{
	(void)arg;
	/* What was published from now until the subscriptions are back does
	 * not reach this node. */
	if (cl.sub_was_up)
		cl.sub_lost = 1;
	cl.sub_expect = 0;
	set_why(why);
	run_sub_waiters(1);
}

/* The publishing connection went: the commands it had not answered get no
 * reply (each told with NULL; they may or may not have run). */
static void on_pub_down(void *arg, const char *why)
{
	(void)arg;
	set_why(why);
	while (cl.count) {
		struct pending p = pub_next();
		if (p.done)
			p.done(p.arg, NULL);
	}
}

static const struct link_ops pub_ops = { on_pub_up, on_pub_reply, on_pub_down };
static const struct link_ops sub_ops = { on_sub_up, on_sub_reply, on_sub_down };

/* ---- publishing ---- */

/* Broadcasts stayed on this node (Redis down for it, or its backlog full)
 * and now may go again: every node is told, through each namespace's
 * everyone channel, that its sockets may have missed some
 * (CLUSTER_RESYNC_EVENT {reason: "unsent"}). Does nothing until then. */
static void tell_others(void)
{
	static const char args[] = "{\"reason\":\"unsent\"}";
	struct map_iter it;
	struct map_entry *me;

	if (!cl.unsent || !link_is_up(cl.pub) ||
	    link_backlog(cl.pub) > settings.redis_max_backlog)
		return;
	/* Cleared first: cluster_publish below comes back here. */
	cl.unsent = 0;
	map_iter_init(&it, client_namespaces());
	while ((me = map_next(&it))) {
		struct room_target t;
		struct emit e;
		memset(&t, 0, sizeof(t));
		memset(&e, 0, sizeof(e));
		e.name = CLUSTER_RESYNC_EVENT;
		e.name_len = sizeof(CLUSTER_RESYNC_EVENT) - 1;
		e.args = args;
		e.args_len = sizeof(args) - 1;
		e.nargs = 1;
		cluster_publish(me->value, 1, &t, NULL, &e);
		emit_fini(&e);
	}
	resync_remote++;
	log_info("cluster: broadcasts that stayed on this node: told the other nodes' sockets to "
		 "catch up (%s)", CLUSTER_RESYNC_EVENT);
}

void cluster_publish(const struct nsp *n, int everyone, const struct room_target *t,
		     const struct relay_list *sids, const struct emit *e)
{
	struct relay_msg m;
	const char **att = NULL;
	size_t *att_lens = NULL, len;
	char *msg;

	if (!cl.on)
		return;
	if (!link_is_up(cl.pub)) {
		unsent_down++;
		cl.unsent = 1;
		return;
	}
	/* Redis reads slower than this node publishes: what it cannot take
	 * stays here rather than growing the node's memory. */
	if (link_backlog(cl.pub) > settings.redis_max_backlog) {
		cl.unsent = 1;
		metrics_limit("redis_backlog");
		if (!unsent_backlog++)
			log_warn("cluster: more than %zu bytes unsent to Redis "
				 "(PARLEY_REDIS_MAX_BACKLOG): broadcasts stay on this node until it "
				 "catches up", settings.redis_max_backlog);
		return;
	}
	/* The notice of what stayed here goes before this broadcast. */
	tell_others();
	memset(&m, 0, sizeof(m));
	m.origin = cl.node;
	m.origin_len = cl.node_len;
	m.incarnation = cl.incarnation;
	m.serial = ++cl.serial;
	m.nsp = n->name;
	m.nsp_len = n->name_len;
	m.everyone = everyone;
	if (!everyone) {
		m.rooms.v = (const char **)t->rooms;
		m.rooms.lens = (size_t *)t->room_lens;
		m.rooms.n = t->nrooms;
	}
	m.except_rooms.v = (const char **)t->except_rooms;
	m.except_rooms.lens = (size_t *)t->except_lens;
	m.except_rooms.n = t->nexcept_rooms;
	if (sids)
		m.except_sids = *sids;
	m.event = e->name;
	m.event_len = e->name_len;
	m.nargs = e->nargs;
	m.args = e->args;
	m.args_len = e->args_len;
	m.plain = e->plain_args;
	m.plain_len = e->plain_len;
	if (e->natt) {
		att = xcalloc(e->natt, sizeof(*att));
		att_lens = xcalloc(e->natt, sizeof(*att_lens));
		for (unsigned i = 0; i < e->natt; i++) {
			att[i] = (const char *)frame_data(e->att[i]);
			att_lens[i] = e->att[i]->len;
		}
	}
	m.att.v = att;
	m.att.lens = att_lens;
	m.att.n = e->natt;
	msg = relay_encode(&m, &len);
	/* Every publication of this node goes through this one connection:
	 * Redis runs a connection's commands in order and hands a channel's
	 * messages to each subscriber in the order they were published, over
	 * that subscriber's one connection. So two broadcasts this node makes
	 * into a room reach every other node in the order it made them (on a
	 * Redis Cluster too: a channel lives on one shard). */
	for (size_t i = 0; i < (everyone ? 1 : t->nrooms); i++) {
		char buf[256];
		size_t clen;
		char *ch = channel(n->name, n->name_len, everyone ? NULL : t->rooms[i],
				   everyone ? 0 : t->room_lens[i], buf, sizeof(buf), &clen);
		const char *argv[] = { "SPUBLISH", ch, msg };
		size_t lens[] = { 8, clen, len };
		pub_send(3, argv, lens, NULL, NULL);
		if (ch != buf)
			free(ch);
	}
	published++;
	if (cl.on_publish)
		cl.on_publish(n, everyone, t, msg, len);
	free(msg);
	free(att);
	free(att_lens);
}

/* ---- start and end ---- */

int cluster_degraded(const char **why)
{
	if (!cl.on || up_read())
		return 0;
	*why = cl.why[0] ? cl.why : "Redis unreachable";
	return 1;
}

static void on_sweep(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct map_iter it;
	struct map_entry *e;
	int64_t now = now_ms();

	(void)loop;
	(void)w;
	(void)revents;
	map_iter_init(&it, &cl.peers);
	while ((e = map_next(&it))) {
		struct peer *p = e->value;
		if (now - p->seen_ms > CLUSTER_PEER_IDLE_MS) {
			map_del(&cl.peers, e->key, e->klen);
			free(p);
		}
	}
}

/* Reads `uri` into `a`; a host name is resolved here, at start, so that a
 * reconnect never waits for a resolver on the loop. Returns 0 or -EINVAL
 * with the reason in `err`. */
static int parse_uri(const char *uri, struct link_addr *a, char *err, size_t errlen)
{
	memset(a, 0, sizeof(*a));
	if (strncmp(uri, "unix://", 7) == 0) {
		const char *path = uri + 7, *q = strchr(path, '?');
		size_t len = q ? (size_t)(q - path) : strlen(path);
		if (!len || path[0] != '/' || len >= sizeof(a->path)) {
			snprintf(err, errlen, "expected unix:///absolute/path.sock[?db=N]");
			return -EINVAL;
		}
		memcpy(a->path, path, len);
		if (q && (strncmp(q, "?db=", 4) != 0 || (a->db = atoi(q + 4)) < 0)) {
			snprintf(err, errlen, "the only parameter is ?db=N");
			return -EINVAL;
		}
		return 0;
	}
	if (strncmp(uri, "redis://", 8) == 0) {
		const char *host = uri + 8, *end = host + strcspn(host, "/"), *colon;
		char name[256];
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
		int rc;
		if (memchr(host, '@', (size_t)(end - host))) {
			snprintf(err, errlen, "a user or password in the URI is not supported yet");
			return -EINVAL;
		}
		/* [v6]:port, host:port, host */
		if (*host == '[') {
			const char *close = memchr(host, ']', (size_t)(end - host));
			if (!close) {
				snprintf(err, errlen, "an IPv6 address is written [addr]:port");
				return -EINVAL;
			}
			snprintf(name, sizeof(name), "%.*s", (int)(close - host - 1), host + 1);
			colon = close + 1 < end && close[1] == ':' ? close + 1 : NULL;
		} else {
			colon = memchr(host, ':', (size_t)(end - host));
			snprintf(name, sizeof(name), "%.*s", (int)((colon ? colon : end) - host), host);
		}
		a->port = colon ? atoi(colon + 1) : 6379;
		if (!name[0] || a->port < 1 || a->port > 65535) {
			snprintf(err, errlen, "expected redis://host[:port][/db]");
			return -EINVAL;
		}
		if (*end == '/' && end[1] && (a->db = atoi(end + 1)) < 0) {
			snprintf(err, errlen, "the database is a number: redis://host:port/N");
			return -EINVAL;
		}
		rc = getaddrinfo(name, NULL, &hints, &res);
		if (rc != 0 || !res) {
			snprintf(err, errlen, "cannot resolve %.100s: %s", name, gai_strerror(rc));
			return -EINVAL;
		}
		rc = getnameinfo(res->ai_addr, res->ai_addrlen, a->host, sizeof(a->host), NULL, 0,
				 NI_NUMERICHOST);
		freeaddrinfo(res);
		if (rc != 0) {
			snprintf(err, errlen, "cannot resolve %.100s: %s", name, gai_strerror(rc));
			return -EINVAL;
		}
		return 0;
	}
	snprintf(err, errlen, "expected redis://host[:port][/db] or unix:///path.sock");
	return -EINVAL;
}

/* At start: Redis answers, and is 7 or later (sharded pub/sub). May block,
 * bounded by CLUSTER_START_TIMEOUT_S. Returns 0 or a negative code, logged. */
static int check_redis(const struct link_addr *a)
{
	struct timeval tv = { CLUSTER_START_TIMEOUT_S, 0 };
	redisContext *c = a->path[0] ? redisConnectUnixWithTimeout(a->path, tv) :
				       redisConnectWithTimeout(a->host, a->port, tv);
	redisReply *r = NULL;
	const char *v;
	int rc = PARLEY_EUNAVAILABLE;

	if (!c || c->err) {
		log_error("cluster: Redis unreachable at %s: %s", cl.shown,
			  c ? c->errstr : "out of memory");
		goto out;
	}
	redisSetTimeout(c, tv);
	r = redisCommand(c, "INFO server");
	if (!r || r->type != REDIS_REPLY_STRING) {
		log_error("cluster: Redis at %s did not answer INFO: %s", cl.shown,
			  r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
		goto out;
	}
	v = strstr(r->str, "redis_version:");
	if (!v || atoi(v + 14) < 7) {
		log_error("cluster: %s is not Redis 7 or later (sharded pub/sub): %.20s", cl.shown,
			  v ? v + 14 : "no redis_version");
		rc = -ENOTSUP;
		goto out;
	}
	rc = 0;
out:
	if (r)
		freeReplyObject(r);
	if (c)
		redisFree(c);
	return rc;
}

int cluster_open(const char *uri, const char *node_id, int port)
{
	char err[160];
	int rc;

	snprintf(cl.shown, sizeof(cl.shown), "%s", uri);
	if ((rc = parse_uri(uri, &cl.addr, err, sizeof(err))) < 0) {
		log_error("cluster: PARLEY_REDIS %s: %s", uri, err);
		return rc;
	}
	if ((rc = check_redis(&cl.addr)) < 0)
		return rc;
	if (node_id) {
		snprintf(cl.node, sizeof(cl.node), "%s", node_id);
	} else {
		char host[200];
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		snprintf(cl.node, sizeof(cl.node), "%s:%d", host, port);
	}
	cl.node_len = strlen(cl.node);
	/* Another start of the same node id: its serials begin again, and the
	 * other nodes must not take them for copies they saw. */
	if (getrandom(&cl.incarnation, sizeof(cl.incarnation), 0) != sizeof(cl.incarnation))
		cl.incarnation = (uint64_t)now_ms() ^ ((uint64_t)getpid() << 32);
	map_init(&cl.peers);
	for (size_t i = 0; i < sizeof(cluster_metrics) / sizeof(cluster_metrics[0]); i++)
		metrics_register(&cluster_metrics[i]);
	cl.on = 1;
	snprintf(cl.why, sizeof(cl.why), "Redis at %.200s: connecting", cl.shown);
	cl.pub = link_new(&cl.addr, "publish", &pub_ops, NULL);
	cl.sub = link_new(&cl.addr, "subscribe", &sub_ops, NULL);
	room_set_watch(on_room);
	ev_timer_init(&cl.drained, on_drained, 0.25, 0.25);
	ev_timer_init(&cl.liveness, on_liveness, CLUSTER_LIVENESS_EVERY_S, CLUSTER_LIVENESS_EVERY_S);
	ev_timer_start(clock_loop, &cl.liveness);
	ev_timer_init(&cl.sweep, on_sweep, CLUSTER_PEER_IDLE_MS / 1000.,
		      CLUSTER_PEER_IDLE_MS / 1000.);
	ev_timer_start(clock_loop, &cl.sweep);
	log_info("cluster: node %s on Redis at %s", cl.node, cl.shown);
	return 0;
}

void cluster_close(void)
{
	struct map_iter it;
	struct map_entry *e;

	if (!cl.on)
		return;
	room_set_watch(NULL);
	ev_timer_stop(clock_loop, &cl.liveness);
	ev_timer_stop(clock_loop, &cl.drained);
	cl.owed_up = 0;
	ev_timer_stop(clock_loop, &cl.sweep);
	run_sub_waiters(1);
	free(cl.sub_waiters);
	cl.sub_waiters = NULL;
	cl.sub_waiters_cap = 0;
	link_free(cl.pub);
	link_free(cl.sub);
	cl.pub = cl.sub = NULL;
	/* Nobody is left to answer them. */
	while (cl.count) {
		struct pending p = pub_next();
		if (p.done)
			p.done(p.arg, NULL);
	}
	free(cl.waiting);
	cl.waiting = NULL;
	cl.cap = 0;
	for (size_t i = 0; i < cl.nlisteners; i++)
		free(cl.listeners[i].channel);
	cl.nlisteners = cl.nup_hooks = 0;
	cl.on_publish = NULL;
	map_iter_init(&it, &cl.peers);
	while ((e = map_next(&it)))
		free(e->value);
	map_fini(&cl.peers);
	cl.on = 0;
}
