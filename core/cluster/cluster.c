/* cluster.c - cluster mode on Redis (see cluster.h): the room watcher that
 * subscribes and unsubscribes, the publishing of broadcasts, the delivery
 * of the other nodes' with their duplicates dropped, the node's liveness
 * key, /healthz's degraded state and the parley_cluster_* metrics.
 *
 * Redis is one server or a Redis Cluster: either way a list of shards, each
 * a master with two links (publishing, subscribing). A room's channel is
 * followed and published on the shard of its slot; the modules' commands
 * (presence, sessions: keys tagged {parley}, one slot) go to the shard of
 * that slot, the home shard. One server is one shard with every slot. On a
 * cluster the slot map is asked for again every liveness tick and whenever
 * Redis answers MOVED, ASK or CLUSTERDOWN or drops a channel's
 * subscription; a changed map opens the links anew (docs/cluster.md). */
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
#include "cluster/topology.h"

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

/* How long the copies of a broadcast that went through several shards are
 * remembered, twice over (two generations): they come through different
 * connections, within moments of each other. */
#define CLUSTER_RECENT_S 2.0
/* And at most this many a generation: a burst turns it over sooner (a
 * copy arrives within moments of the first, long before this many more). */
#define CLUSTER_RECENT_MAX 262144

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

/* Something waiting until Redis has answered each shard's subscribing
 * connection's commands up to its mark (marks[i] for shard i). */
struct sub_waiter {
	uint64_t *marks;
	uint64_t tick;  /* the liveness tick it came in */
	void (*fn)(void *arg);
	void *arg;
};

/* What this node has seen of another's broadcasts, through each shard:
 * a shard's copies come in the order they were published. */
struct peer {
	uint64_t incarnation; /* the node's start this state is of */
	struct {
		uint64_t high;   /* the highest serial seen */
		uint64_t window; /* bit i: serial high - i was seen */
	} w[TOPOLOGY_MAX_SHARDS];
	int64_t seen_ms;
};

/* One master: its links and what each has in flight. */
struct shard {
	unsigned index;
	struct link_addr addr;
	char shown[320]; /* PARLEY_REDIS, or a master's host:port, for the logs */
	struct link *pub, *sub;
	/* The publishing connection's commands not yet answered, oldest first
	 * (a ring: head, count, cap). Redis answers a connection's commands in
	 * order, so each reply is the oldest's. */
	struct pending *waiting;
	size_t head, count, cap;
	/* The subscribing connection's commands since it came up, and the
	 * replies to them so far (each (un)subscription has one; Redis answers
	 * in order): what waits for a subscription (cluster_subscribed) waits
	 * until `sub_answered` reaches the count when it asked. */
	uint64_t sub_sent, sub_answered;
	/* The subscribing connection: up once at least; lost since (a notice is
	 * owed to this node's sockets); the replies to its resubscription still
	 * to come before the notice goes (then the subscriptions are in force,
	 * and a messages:sync the notice prompts misses nothing). */
	int sub_was_up, sub_lost;
	size_t sub_expect;
};

static struct {
	int on;
	char node[256];
	size_t node_len;
	uint64_t incarnation;
	uint64_t serial;
	char shown[320]; /* the URI, for the logs */
	struct link_addr addr;
	/* A Redis Cluster (else one server: one shard, every slot); the slot
	 * map; its shards; the one that holds the modules' keys. */
	int clustered;
	struct topology topo;
	struct shard *shards[TOPOLOGY_MAX_SHARDS];
	size_t nshards;
	struct shard *home;
	/* The slot map asked for and not answered yet; a new one to move to,
	 * from a timer (never inside a link's own call). */
	int asking_slots;
	struct topology next;
	ev_timer rebuild;
	struct map peers; /* node id -> struct peer */
	/* The broadcasts that went through several shards, seen lately: "origin
	 * incarnation serial" -> 1, this generation and the one before. */
	struct map recent[2];
	ev_timer rotate;
	ev_timer liveness;
	/* Commands were refused for the backlog: once it drains, the modules
	 * write what they keep in Redis again (their up hooks, from this
	 * timer: never inside a module's own call). */
	int owed_up;
	ev_timer drained;
	uint64_t tick; /* liveness ticks (every 5 s) */
	struct sub_waiter *sub_waiters;
	size_t nsub_waiters, sub_waiters_cap;
	ev_timer sweep;
	char why[448];
	struct {
		char *channel;
		size_t len;
		cluster_message_fn fn;
	} listeners[CLUSTER_MAX_LISTENERS];
	size_t nlisteners;
	void (*up_hooks[CLUSTER_MAX_LISTENERS])(void);
	size_t nup_hooks;
	cluster_published_fn on_publish;
	/* Broadcasts stayed on this node since the last notice: one is owed to
	 * the other nodes. */
	int unsent;
} cl;

static uint64_t refused_commands;
static uint64_t published, unsent_down, unsent_backlog, received, own, duplicates, malformed,
	unknown_nsp, deliveries, subscriptions, redis_errors, resync_local, resync_remote,
	topology_changes;

static long long up_read(void)
{
	if (!cl.nshards)
		return 0;
	for (size_t i = 0; i < cl.nshards; i++)
		if (!link_is_up(cl.shards[i]->pub) || !link_is_up(cl.shards[i]->sub))
			return 0;
	return 1;
}

static long long shards_read(void)
{
	return (long long)cl.nshards;
}

static struct metrics_value cluster_metrics[] = {
	{ .name = "parley_cluster_redis_up",
	  .help = "1 while both connections to Redis (publishing, subscribing) serve, to each "
		  "master of a Redis Cluster, else 0.", .type = "gauge", .read = up_read },
	{ .name = "parley_cluster_redis_shards",
	  .help = "Redis masters this node talks to (1: one Redis, not a cluster).",
	  .type = "gauge", .read = shards_read },
	{ .name = "parley_cluster_topology_changes_total",
	  .help = "Times a Redis Cluster's slot map changed and the links were opened anew.",
	  .type = "counter", .count = &topology_changes },
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

/* The shard that serves `key` (a channel or a key), or NULL while no master
 * serves its slot. */
static struct shard *shard_of(const char *key, size_t len)
{
	unsigned k;

	if (cl.nshards <= 1)
		return cl.nshards ? cl.shards[0] : NULL;
	k = cl.topo.slot[topology_slot(key, len)];
	return k == TOPOLOGY_NONE ? NULL : cl.shards[k];
}

/* (Un)subscribes a channel on its shard's subscribing connection: one
 * channel a command (on a Redis Cluster a command's channels must share a
 * slot). `only`: send only when the channel is that shard's (a shard that
 * came back subscribes to its own). Returns 1 when the command went, 0
 * when not (the link down: its on_sub_up subscribes to everything the node
 * follows on it then). */
static int follow_channel(const char *cmd, const char *ch, size_t len, const struct shard *only)
{
	struct shard *s = shard_of(ch, len);
	const char *argv[] = { cmd, ch };
	size_t lens[] = { strlen(cmd), len };
	int sent;

	if (!s || (only && s != only))
		return 0;
	sent = link_send(s->sub, 2, argv, lens) == 0;
	s->sub_sent += (uint64_t)sent;
	return sent;
}

static int follow(const char *cmd, const char *nsp, size_t nsp_len, const char *room,
		  size_t room_len, const struct shard *only)
{
	char buf[256];
	size_t len;
	char *ch = channel(nsp, nsp_len, room, room_len, buf, sizeof(buf), &len);
	int sent = follow_channel(cmd, ch, len, only);

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

	follow(cmd, n->name, n->name_len, r->name, r->name_len, NULL);
	subscriptions += opened ? 1 : (uint64_t)-1;
	if (n->rooms.count == (opened ? 1u : 0u)) {
		follow(cmd, n->name, n->name_len, NULL, 0, NULL);
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

/* Whether every shard has answered `w`'s subscriptions (a shard whose
 * subscribing connection is down counts as done: the resync after it
 * covers what it misses). */
static int sub_waiter_met(const struct sub_waiter *w)
{
	for (size_t i = 0; i < cl.nshards; i++) {
		const struct shard *s = cl.shards[i];
		if (link_is_up(s->sub) && s->sub_answered < w->marks[i])
			return 0;
	}
	return 1;
}

/* Runs (and forgets) the waiters whose subscriptions Redis has answered;
 * every one of them when `all` (the shards change, or the cluster closes). */
static void run_sub_waiters(int all)
{
	struct sub_waiter *done;
	size_t ndone = 0, kept = 0;

	if (!cl.nsub_waiters)
		return;
	/* Taken off first: a waiter's function may ask again. */
	done = xmalloc(cl.nsub_waiters * sizeof(*done));
	for (size_t i = 0; i < cl.nsub_waiters; i++) {
		if (all || sub_waiter_met(&cl.sub_waiters[i]))
			done[ndone++] = cl.sub_waiters[i];
		else
			cl.sub_waiters[kept++] = cl.sub_waiters[i];
	}
	cl.nsub_waiters = kept;
	for (size_t k = 0; k < ndone; k++) {
		free(done[k].marks);
		done[k].fn(done[k].arg);
	}
	free(done);
}

int cluster_subscribed(void (*fn)(void *arg), void *arg)
{
	struct sub_waiter w = { NULL, cl.tick, fn, arg };
	int behind = 0;

	if (!cl.on)
		return 0;
	for (size_t i = 0; i < cl.nshards; i++) {
		const struct shard *s = cl.shards[i];
		behind |= link_is_up(s->sub) && s->sub_answered < s->sub_sent;
	}
	if (!behind)
		return 0;
	w.marks = xcalloc(cl.nshards, sizeof(*w.marks));
	for (size_t i = 0; i < cl.nshards; i++)
		w.marks[i] = cl.shards[i]->sub_sent;
	if (cl.nsub_waiters == cl.sub_waiters_cap) {
		cl.sub_waiters_cap = cl.sub_waiters_cap ? cl.sub_waiters_cap * 2 : 16;
		cl.sub_waiters = xrealloc(cl.sub_waiters,
					  cl.sub_waiters_cap * sizeof(*cl.sub_waiters));
	}
	cl.sub_waiters[cl.nsub_waiters++] = w;
	return 1;
}

/* A shard's resubscription is answered: once no shard's is still to come,
 * this node's sockets are told to catch up, once. */
static void resubscribed(struct shard *s)
{
	s->sub_lost = 0;
	for (size_t i = 0; i < cl.nshards; i++)
		if (cl.shards[i]->sub_lost)
			return;
	tell_local("subscription");
}

/* A shard's subscribing connection is (back) up: every channel the node
 * follows there, subscribed again (Redis forgot them with the connection).
 * After a loss, this node's sockets are told to catch up once Redis has
 * answered every one of these subscriptions. */
static void on_sub_up(void *arg)
{
	struct shard *s = arg;
	struct map_iter it, rit;
	struct map_entry *e, *re;
	size_t sent = 0;

	/* A new connection: the link sent its SELECT before this. */
	s->sub_sent = s->addr.db ? 1 : 0;
	s->sub_answered = 0;
	map_iter_init(&it, client_namespaces());
	while ((e = map_next(&it))) {
		struct nsp *n = e->value;
		if (!n->rooms.count)
			continue;
		sent += (size_t)follow("SSUBSCRIBE", n->name, n->name_len, NULL, 0, s);
		map_iter_init(&rit, &n->rooms);
		while ((re = map_next(&rit))) {
			const struct room *r = re->value;
			sent += (size_t)follow("SSUBSCRIBE", n->name, n->name_len, r->name,
					       r->name_len, s);
		}
	}
	for (size_t i = 0; i < cl.nlisteners; i++)
		sent += (size_t)follow_channel("SSUBSCRIBE", cl.listeners[i].channel,
					       cl.listeners[i].len, s);
	s->sub_was_up = 1;
	if (!s->sub_lost)
		return;
	/* The link sent its SELECT before this: its reply comes first. */
	s->sub_expect = sent + (s->addr.db ? 1 : 0);
	if (!s->sub_expect)
		resubscribed(s);
}

/* ---- commands on the publishing connection ---- */

/* Sends a command on a shard's publishing connection, its reply to go to
 * `done` (NULL: an error reply is counted and logged, anything else
 * dropped). */
static int pub_send(struct shard *s, int argc, const char **argv, const size_t *lens,
		    cluster_reply_fn done, void *arg)
{
	int rc = link_send(s->pub, argc, argv, lens);

	if (rc < 0)
		return rc;
	if (s->count == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct pending *w = xcalloc(cap, sizeof(*w));
		for (size_t i = 0; i < s->count; i++)
			w[i] = s->waiting[(s->head + i) % s->cap];
		free(s->waiting);
		s->waiting = w;
		s->cap = cap;
		s->head = 0;
	}
	s->waiting[(s->head + s->count) % s->cap] = (struct pending){ done, arg };
	s->count++;
	return 0;
}

/* The oldest command waiting, taken off the ring (NULLs when none: a reply
 * nobody asked for, which Redis never sends on this connection). */
static struct pending pub_next(struct shard *s)
{
	struct pending p = { NULL, NULL };

	if (s->count) {
		p = s->waiting[s->head];
		s->head = (s->head + 1) % s->cap;
		s->count--;
	}
	return p;
}

/* A shard's commands still unanswered, each told with NULL (they may or
 * may not have run). */
static void pub_fail(struct shard *s)
{
	while (s->count) {
		struct pending p = pub_next(s);
		if (p.done)
			p.done(p.arg, NULL);
	}
}

/* While commands are owed: the backlog drained, the modules write their
 * state again, as after a reconnect. */
static void on_drained(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	if (!cl.home || !link_is_up(cl.home->pub) ||
	    link_backlog(cl.home->pub) > settings.redis_max_backlog / 2)
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
	/* The modules' keys are all tagged {parley}: one slot, one shard. */
	if (!cl.on || !cl.home)
		return PARLEY_EUNAVAILABLE;
	/* Redis reads slower than this node writes: the modules' commands, as
	 * the broadcasts, stay out of a buffer that would grow the node's
	 * memory without bound. What a refused command would have written is
	 * written again, all of it, once the backlog drains (on_drained). */
	if (link_backlog(cl.home->pub) > settings.redis_max_backlog) {
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
	return pub_send(cl.home, argc, argv, lens, done, arg);
}

void cluster_listen(const char *name, cluster_message_fn fn)
{
	size_t len = strlen(name);

	if (!cl.on || cl.nlisteners == CLUSTER_MAX_LISTENERS)
		return;
	cl.listeners[cl.nlisteners].channel = xstrdup(name);
	cl.listeners[cl.nlisteners].len = len;
	cl.listeners[cl.nlisteners].fn = fn;
	cl.nlisteners++;
	/* Down: on_sub_up subscribes when it comes. */
	follow_channel("SSUBSCRIBE", name, len, NULL);
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
	size_t lens[] = { 3, (size_t)snprintf(key, sizeof(key), "{parley}:node:%s", cl.node),
			  (size_t)snprintf(value, sizeof(value), "%016llx",
					   (unsigned long long)cl.incarnation),
			  2, (size_t)snprintf(ttl, sizeof(ttl), "%d", CLUSTER_LIVENESS_TTL_MS) };

	if (cl.home)
		pub_send(cl.home, 5, argv, lens, NULL, NULL);
}

static void tell_others(void);
static void ask_slots(void);

static void on_liveness(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	set_liveness();
	/* Redis answers a subscription at once, and a silent connection is
	 * dropped after 9 s (which counts as answered): one still waiting two
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
	/* A failover or a resharding that no reply showed us yet. */
	ask_slots();
}

static void on_pub_up(void *arg)
{
	struct shard *s = arg;

	if (s == cl.home) {
		set_liveness();
		for (size_t i = 0; i < cl.nup_hooks; i++)
			cl.up_hooks[i]();
	}
	tell_others();
}

/* ---- what comes from the other nodes ---- */

/* Forgets what was seen of every other node's broadcasts. */
static void peers_forget(void)
{
	struct map_iter it;
	struct map_entry *e;

	map_iter_init(&it, &cl.peers);
	while ((e = map_next(&it)))
		free(e->value);
	map_fini(&cl.peers);
}

/* Whether the broadcast (`origin`, `incarnation`, `serial`), come through
 * shard `k` and through no other, was delivered already; records it when
 * not. */
static int seen_before(const char *origin, size_t len, uint64_t incarnation, uint64_t serial,
		       unsigned k)
{
	struct peer *p = map_get(&cl.peers, origin, len);
	uint64_t behind;

	if (!p) {
		p = xcalloc(1, sizeof(*p));
		map_put(&cl.peers, origin, len, p);
	}
	p->seen_ms = now_ms();
	/* A node that started again counts from 1 again. */
	if (p->incarnation != incarnation) {
		memset(p->w, 0, sizeof(p->w));
		p->incarnation = incarnation;
	}
	if (!p->w[k].window) {
		p->w[k].high = serial;
		p->w[k].window = 1;
		return 0;
	}
	if (serial > p->w[k].high) {
		uint64_t ahead = serial - p->w[k].high;
		p->w[k].window = ahead >= CLUSTER_WINDOW ? 1 : (p->w[k].window << ahead) | 1;
		p->w[k].high = serial;
		return 0;
	}
	behind = p->w[k].high - serial;
	/* Older than the window: its copies came long ago. */
	if (behind >= CLUSTER_WINDOW || (p->w[k].window >> behind) & 1)
		return 1;
	p->w[k].window |= (uint64_t)1 << behind;
	return 0;
}

/* Whether a broadcast into several rooms went through more than one shard:
 * then its copies come through different connections, in no set order,
 * and the shards' windows cannot tell the second copy. */
static int across_shards(const struct relay_msg *m)
{
	struct shard *first = NULL;

	if (cl.nshards == 1 || m->everyone || m->rooms.n < 2)
		return 0;
	for (size_t i = 0; i < m->rooms.n; i++) {
		char buf[256];
		size_t len;
		char *ch = channel(m->nsp, m->nsp_len, m->rooms.v[i], m->rooms.lens[i], buf,
				   sizeof(buf), &len);
		struct shard *s = shard_of(ch, len);
		if (ch != buf)
			free(ch);
		if (i && s != first)
			return 1;
		first = s;
	}
	return 0;
}

/* The older generation of the broadcasts seen through several shards
 * dropped, the current one made the older. */
static void rotate_recent(void)
{
	map_fini(&cl.recent[1]);
	cl.recent[1] = cl.recent[0];
	map_init(&cl.recent[0]);
}

/* The same for a broadcast that went through several shards: remembered
 * for CLUSTER_RECENT_S to twice that. */
static int seen_recently(const struct relay_msg *m)
{
	char key[300];
	size_t len = m->origin_len < 256 ? m->origin_len : 256;

	memcpy(key, m->origin, len);
	memcpy(key + len, &m->incarnation, 8);
	memcpy(key + len + 8, &m->serial, 8);
	len += 16;
	if (map_get(&cl.recent[0], key, len) || map_get(&cl.recent[1], key, len))
		return 1;
	if (cl.recent[0].count >= CLUSTER_RECENT_MAX)
		rotate_recent();
	map_put(&cl.recent[0], key, len, (void *)1);
	return 0;
}

static void on_rotate(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	rotate_recent();
}

static void deliver(struct shard *s, const char *data, size_t len)
{
	struct relay_msg m;
	struct room_target t;
	struct room_set **sets = NULL;
	struct frame **att = NULL;
	struct emit e;
	struct nsp *n;
	int dup;

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
	dup = across_shards(&m) ? seen_recently(&m) :
				  seen_before(m.origin, m.origin_len, m.incarnation, m.serial, s->index);
	if (dup) {
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

/* An error that says the slot map changed: a key or a channel of a slot
 * another master serves now, or a cluster without a master for a slot. */
static int is_redirect(const redisReply *r)
{
	return r->type == REDIS_REPLY_ERROR &&
	       (strncmp(r->str, "MOVED ", 6) == 0 || strncmp(r->str, "ASK ", 4) == 0 ||
		strncmp(r->str, "CLUSTERDOWN", 11) == 0);
}

static int is_sunsubscribe(const redisReply *r)
{
	return r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
	       r->element[0]->type == REDIS_REPLY_STRING &&
	       strcmp(r->element[0]->str, "sunsubscribe") == 0;
}

static void on_sub_reply(void *arg, const redisReply *r)
{
	struct shard *s = arg;

	/* Redis drops the subscriptions of a slot that moves to another master
	 * with an sunsubscribe nobody asked for (none is asked for when every
	 * command is answered): the slot map changed. */
	if (is_sunsubscribe(r) && s->sub_answered >= s->sub_sent) {
		log_info("cluster: Redis at %s dropped the channel %.100s: the slot map changed",
			 s->shown, r->element[1]->type == REDIS_REPLY_STRING ? r->element[1]->str : "");
		ask_slots();
		return;
	}
	/* Redis answers a connection's commands in order: the first replies
	 * after a reconnect (every one but the messages of the channels) are
	 * those of on_sub_up's subscriptions. */
	if (s->sub_expect && !is_smessage(r) && --s->sub_expect == 0)
		resubscribed(s);
	if (!is_smessage(r)) {
		s->sub_answered++;
		if (cl.nsub_waiters)
			run_sub_waiters(0);
	}
	if (r->type == REDIS_REPLY_ERROR) {
		redis_errors++;
		log_warn("cluster: Redis at %s refused a subscription: %s", s->shown, r->str);
		if (is_redirect(r))
			ask_slots();
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
	deliver(s, r->element[2]->str, r->element[2]->len);
}

static void on_pub_reply(void *arg, const redisReply *r)
{
	struct shard *s = arg;
	struct pending p = pub_next(s);

	if (r->type == REDIS_REPLY_ERROR) {
		redis_errors++;
		if (!p.done)
			log_warn("cluster: Redis at %s refused a command: %s", s->shown, r->str);
		if (is_redirect(r))
			ask_slots();
	}
	if (p.done)
		p.done(p.arg, r);
}

static void set_why(const struct shard *s, const char *why)
{
	snprintf(cl.why, sizeof(cl.why), "Redis unreachable at %.200s: %.200s", s->shown, why);
}

static void on_sub_down(void *arg, const char *why)
{
	struct shard *s = arg;

	/* What was published from now until the subscriptions are back does
	 * not reach this node. */
	if (s->sub_was_up)
		s->sub_lost = 1;
	s->sub_expect = 0;
	set_why(s, why);
	/* What waits on this shard waits no more (a down shard counts as
	 * answered: the resync after it covers what it misses). */
	run_sub_waiters(0);
	/* A master gone may have been replaced by its replica. */
	ask_slots();
}

/* A shard's publishing connection went: the commands it had not answered
 * get no reply (each told with NULL; they may or may not have run). */
static void on_pub_down(void *arg, const char *why)
{
	struct shard *s = arg;

	set_why(s, why);
	pub_fail(s);
	ask_slots();
}

static const struct link_ops pub_ops = { on_pub_up, on_pub_reply, on_pub_down };
static const struct link_ops sub_ops = { on_sub_up, on_sub_reply, on_sub_down };

/* ---- the shards and the slot map ---- */

static struct shard *shard_new(const struct link_addr *a, unsigned index)
{
	struct shard *s = xcalloc(1, sizeof(*s));

	s->index = index;
	s->addr = *a;
	if (!cl.clustered)
		snprintf(s->shown, sizeof(s->shown), "%s", cl.shown);
	else
		snprintf(s->shown, sizeof(s->shown), "%s:%d", a->host, a->port);
	s->pub = link_new(a, "publish", &pub_ops, s);
	s->sub = link_new(a, "subscribe", &sub_ops, s);
	return s;
}

static void shard_free(struct shard *s)
{
	link_free(s->pub);
	link_free(s->sub);
	pub_fail(s);
	free(s->waiting);
	free(s);
}

/* Opens the links of `t`'s shards. `again`: they replace others, and what
 * was published meanwhile may have missed this node (it is told to catch
 * up once every shard has subscribed). */
static void shards_open(const struct topology *t, int again)
{
	static const char tag[] = "{parley}";

	cl.topo = *t;
	cl.nshards = t->nshards;
	for (size_t i = 0; i < t->nshards; i++) {
		cl.shards[i] = shard_new(&t->shard[i], (unsigned)i);
		cl.shards[i]->sub_was_up = cl.shards[i]->sub_lost = again;
	}
	cl.home = shard_of(tag, sizeof(tag) - 1);
	if (!cl.home)
		log_warn("cluster: no Redis master serves the slot of the keys tagged {parley} yet");
}

static void shards_close(void)
{
	struct shard *gone[TOPOLOGY_MAX_SHARDS];
	size_t n = cl.nshards;

	/* Off the list first: a command's callback told NULL below may send
	 * another, which must find no shard. */
	memcpy(gone, cl.shards, n * sizeof(*gone));
	cl.nshards = 0;
	cl.home = NULL;
	for (size_t i = 0; i < n; i++)
		shard_free(gone[i]);
}

/* The slot map changed: every link opened anew (a resharding or a
 * failover is rare; opening anew is simple and always right). The peers'
 * windows are per shard: they start again. From a timer: never inside a
 * link's own call. */
static void on_rebuild(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	if (!cl.on)
		return;
	topology_changes++;
	log_warn("cluster: the Redis Cluster's slot map changed: %zu masters now, links opened "
		 "anew", cl.next.nshards);
	shards_close();
	run_sub_waiters(1);
	peers_forget();
	shards_open(&cl.next, 1);
}

static void on_slots(void *arg, const redisReply *r)
{
	char err[160];

	(void)arg;
	cl.asking_slots = 0;
	if (!r || r->type == REDIS_REPLY_ERROR)
		return;
	if (topology_read(r, &cl.addr, &cl.next, err, sizeof(err)) < 0) {
		log_warn("cluster: %s", err);
		return;
	}
	if (!topology_same(&cl.next, &cl.topo) && !ev_is_active(&cl.rebuild))
		ev_timer_start(clock_loop, &cl.rebuild);
}

/* Asks a master that answers for the slot map (a Redis Cluster only; one
 * question at a time), each time the next one: a master whose view is
 * behind (it has not heard of a failover yet) is not the only one asked. */
static void ask_slots(void)
{
	static const char *argv[] = { "CLUSTER", "SLOTS" };
	static const size_t lens[] = { 7, 5 };
	static size_t next;

	if (!cl.on || !cl.clustered || cl.asking_slots || ev_is_active(&cl.rebuild))
		return;
	for (size_t k = 0; k < cl.nshards; k++) {
		struct shard *s = cl.shards[(next + k) % cl.nshards];
		if (link_is_up(s->pub) && pub_send(s, 2, argv, lens, on_slots, NULL) == 0) {
			cl.asking_slots = 1;
			next = (next + k + 1) % cl.nshards;
			return;
		}
	}
}

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

	if (!cl.unsent || !cl.nshards)
		return;
	for (size_t i = 0; i < cl.nshards; i++)
		if (!link_is_up(cl.shards[i]->pub) ||
		    link_backlog(cl.shards[i]->pub) > settings.redis_max_backlog)
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

/* Whether shard `s` (NULL: no master serves the slot) cannot take a
 * publication now: unreachable (1) or more than PARLEY_REDIS_MAX_BACKLOG
 * unsent to it (2). What it cannot take stays on this node, and the other
 * nodes are told once it can (tell_others). */
static int refuses(const struct shard *s)
{
	if (!s || !link_is_up(s->pub)) {
		cl.unsent = 1;
		return 1;
	}
	/* Redis reads slower than this node publishes: what it cannot take
	 * stays here rather than growing the node's memory. */
	if (link_backlog(s->pub) > settings.redis_max_backlog) {
		cl.unsent = 1;
		metrics_limit("redis_backlog");
		if (!unsent_backlog)
			log_warn("cluster: more than %zu bytes unsent to Redis at %s "
				 "(PARLEY_REDIS_MAX_BACKLOG): broadcasts stay on this node until it "
				 "catches up", settings.redis_max_backlog, s->shown);
		return 2;
	}
	return 0;
}

static void count_unsent(int why)
{
	if (why == 1)
		unsent_down++;
	else if (why == 2)
		unsent_backlog++;
}

void cluster_publish(const struct nsp *n, int everyone, const struct room_target *t,
		     const struct relay_list *sids, const struct emit *e)
{
	struct relay_msg m;
	const char **att = NULL;
	size_t *att_lens = NULL, len;
	char *msg;
	int why = 0, went = 0;

	if (!cl.on)
		return;
	/* One Redis: all of it goes, or none. */
	if (cl.nshards <= 1 && (why = refuses(cl.nshards ? cl.shards[0] : NULL))) {
		count_unsent(why);
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
	/* Every publication of this node into a channel goes through one
	 * connection, its shard's: Redis runs a connection's commands in order
	 * and hands a channel's messages to each subscriber in the order they
	 * were published, over that subscriber's one connection to the shard.
	 * So two broadcasts this node makes into a room reach every other node
	 * in the order it made them. */
	for (size_t i = 0; i < (everyone ? 1 : t->nrooms); i++) {
		char buf[256];
		size_t clen;
		char *ch = channel(n->name, n->name_len, everyone ? NULL : t->rooms[i],
				   everyone ? 0 : t->room_lens[i], buf, sizeof(buf), &clen);
		struct shard *s = shard_of(ch, clen);
		const char *argv[] = { "SPUBLISH", ch, msg };
		size_t lens[] = { 8, clen, len };
		int no = cl.nshards > 1 ? refuses(s) : 0;
		if (!no)
			went |= pub_send(s, 3, argv, lens, NULL, NULL) == 0;
		else if (!why)
			why = no;
		if (ch != buf)
			free(ch);
	}
	count_unsent(why);
	published += (uint64_t)went;
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
	if (!cl.home) {
		*why = "no Redis master serves the slot of parley's keys ({parley})";
		return 1;
	}
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

/* At start: Redis answers, and is 7 or later (sharded pub/sub); `t` is its
 * slot map when it is a Redis Cluster, else its one shard. May block,
 * bounded by CLUSTER_START_TIMEOUT_S. Returns 0 or a negative code, logged. */
static int check_redis(const struct link_addr *a, struct topology *t)
{
	char err[160];
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
	freeReplyObject(r);
	r = redisCommand(c, "CLUSTER SLOTS");
	if (r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "cluster support disabled")) {
		topology_single(t, a);
		cl.clustered = 0;
		rc = 0;
		goto out;
	}
	if (!r || r->type == REDIS_REPLY_ERROR) {
		log_error("cluster: Redis at %s did not answer CLUSTER SLOTS: %s", cl.shown,
			  r ? r->str : c->errstr);
		goto out;
	}
	if (topology_read(r, a, t, err, sizeof(err)) < 0) {
		log_error("cluster: Redis Cluster at %s: %s", cl.shown, err);
		rc = -EINVAL;
		goto out;
	}
	if (a->db) {
		log_error("cluster: %s is a Redis Cluster: it has database 0 only, not %d",
			  cl.shown, a->db);
		rc = -EINVAL;
		goto out;
	}
	cl.clustered = 1;
	log_info("cluster: %s is a Redis Cluster of %zu masters", cl.shown, t->nshards);
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
	if ((rc = check_redis(&cl.addr, &cl.next)) < 0)
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
	map_init(&cl.recent[0]);
	map_init(&cl.recent[1]);
	for (size_t i = 0; i < sizeof(cluster_metrics) / sizeof(cluster_metrics[0]); i++)
		metrics_register(&cluster_metrics[i]);
	cl.on = 1;
	snprintf(cl.why, sizeof(cl.why), "Redis at %.200s: connecting", cl.shown);
	shards_open(&cl.next, 0);
	room_set_watch(on_room);
	ev_timer_init(&cl.rebuild, on_rebuild, 0., 0.);
	ev_timer_init(&cl.rotate, on_rotate, CLUSTER_RECENT_S, CLUSTER_RECENT_S);
	ev_timer_start(clock_loop, &cl.rotate);
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
	if (!cl.on)
		return;
	room_set_watch(NULL);
	ev_timer_stop(clock_loop, &cl.liveness);
	ev_timer_stop(clock_loop, &cl.drained);
	cl.owed_up = 0;
	ev_timer_stop(clock_loop, &cl.sweep);
	ev_timer_stop(clock_loop, &cl.rebuild);
	ev_timer_stop(clock_loop, &cl.rotate);
	/* Nobody is left to answer their commands. */
	shards_close();
	run_sub_waiters(1);
	free(cl.sub_waiters);
	cl.sub_waiters = NULL;
	cl.sub_waiters_cap = 0;
	for (size_t i = 0; i < cl.nlisteners; i++)
		free(cl.listeners[i].channel);
	cl.nlisteners = cl.nup_hooks = 0;
	cl.on_publish = NULL;
	peers_forget();
	map_fini(&cl.recent[0]);
	map_fini(&cl.recent[1]);
	cl.asking_slots = 0;
	cl.on = 0;
}
