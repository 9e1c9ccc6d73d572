/* presence.c - presence across the cluster (see presence.h): each socket's
 * rooms are written to Redis as they change, through a Redis function
 * library (parley_presence, loaded each time Redis is back) that decides a
 * user's first and last socket atomically; the dead nodes' sockets counted
 * out by one survivor; the cluster-wide answers of parley.room_size,
 * room_users, user_sockets and online_users. Uses cluster.c's publishing
 * connection, hub's clients and rooms.
 *
 * Keys (docs/cluster.md): {parley}:room:<nsp>:<room> (hash: "<token>|<sid>"
 * -> user, one field a socket in the room, on any node), {parley}:online:<nsp>
 * (set of users with a socket), {parley}:presence:<nsp>:<user> (hash: s =
 * on|leaving, o = the grace's owner, g = when it went), {parley}:owned:<token>
 * and {parley}:grace:<token> (what a node's life wrote: its memberships, the
 * graces it owns, for whoever counts it out), {parley}:nodes (hash: token ->
 * node id) and {parley}:pnode:<id> (the node's current token, a TTL). A token
 * is "<incarnation>:<epoch>": a new one each time the connection comes back,
 * so that what an earlier connection wrote is counted out as a dead node's
 * is and written again from what the node has now. */
#include "cluster/presence.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "base/metrics.h"
#include "hub/client.h"

/* The node's presence token lives as long as cluster.c's liveness key, and
 * is set again as often: a node that stops is counted out after the TTL. */
#define PRESENCE_TTL_MS 15000
#define PRESENCE_REFRESH_S 5.0
/* How often a node looks for dead nodes to count out. Every node does; the
 * function lets one take each dead node's entries. */
#define PRESENCE_REAP_S 1.0
/* Entries a reap takes at most per call (the rest at the next call, at once):
 * a Redis function blocks Redis while it runs. */
#define PRESENCE_REAP_BATCH 1000
/* How long a leaving user's state outlives an owner that never ends its
 * grace (one hour: chat.schema.lua's longest grace, and a minute). The
 * survivors adopt a dead owner's graces long before. */
#define PRESENCE_STATE_TTL_MS "3660000"
/* The deaths every node reads ({parley}:gone): kept an hour, the last 1,000
 * at least. A node away from Redis longer than that was counted dead
 * itself; its parties' calls were ended by the others. */
#define PRESENCE_GONE_TTL_MS "3600000"
#define PRESENCE_GONE_MAX "1000"
/* Deaths handed over per reap call at most (the rest at the next). */
#define PRESENCE_GONE_BATCH "100"

/* The Redis side. Keys are built from the arguments (FCALL with no keys);
 * every key carries the hash tag {parley}, so that on a Redis Cluster they
 * all live in one slot, on the shard cluster.c sends these calls to (a
 * function may touch only its own shard's keys, of one slot). */
static const char library[] =
	"#!lua name=parley_presence\n"
	"local TTL = " PRESENCE_STATE_TTL_MS "\n"
	"local GONE_TTL, GONE_MAX, GONE_BATCH = " PRESENCE_GONE_TTL_MS ", " PRESENCE_GONE_MAX ", "
	PRESENCE_GONE_BATCH "\n"
	"local function room_key(nsp, room) return '{parley}:room:' .. nsp .. ':' .. room end\n"
	"local function state_key(nsp, user) return '{parley}:presence:' .. nsp .. ':' .. user end\n"
	"local function user_of(room)\n"
	"  if string.sub(room, 1, 5) == 'user:' then return string.sub(room, 6) end\n"
	"end\n"
	/* The user's sockets over the cluster went from `before` to `after`. */
	"local function moved(token, nsp, user, before, after, now)\n"
	"  local sk = state_key(nsp, user)\n"
	"  if before == 0 and after > 0 then\n"
	"    redis.call('SADD', '{parley}:online:' .. nsp, user)\n"
	"    local s = redis.call('HGET', sk, 's')\n"
	"    local o = redis.call('HGET', sk, 'o')\n"
	"    redis.call('DEL', sk)\n"
	"    redis.call('HSET', sk, 's', 'on')\n"
	"    if s == 'leaving' then\n"
	"      if o then redis.call('SREM', '{parley}:grace:' .. o, cjson.encode({nsp, user})) end\n"
	"      return 'back'\n"
	"    end\n"
	"    return 'online'\n"
	"  elseif before > 0 and after == 0 then\n"
	"    redis.call('SREM', '{parley}:online:' .. nsp, user)\n"
	"    redis.call('HSET', sk, 's', 'leaving', 'o', token, 'g', now)\n"
	"    redis.call('PEXPIRE', sk, TTL)\n"
	"    redis.call('SADD', '{parley}:grace:' .. token, cjson.encode({nsp, user}))\n"
	"    redis.call('PEXPIRE', '{parley}:grace:' .. token, TTL)\n"
	"    return 'leaving'\n"
	"  end\n"
	"  return false\n"
	"end\n"
	/* join(token, nsp, room, sid, user, now) */
	"redis.register_function('parley_join', function(_, a)\n"
	"  local rk = room_key(a[2], a[3])\n"
	"  local before = redis.call('HLEN', rk)\n"
	"  if redis.call('HSETNX', rk, a[1] .. '|' .. a[4], a[5]) == 0 then return false end\n"
	"  redis.call('SADD', '{parley}:owned:' .. a[1], cjson.encode({a[2], a[3], a[4]}))\n"
	"  local u = user_of(a[3])\n"
	"  if not u then return false end\n"
	"  return moved(a[1], a[2], u, before, before + 1, a[6])\n"
	"end)\n"
	/* leave(token, nsp, room, sid, now) */
	"redis.register_function('parley_leave', function(_, a)\n"
	"  local rk = room_key(a[2], a[3])\n"
	"  if redis.call('HDEL', rk, a[1] .. '|' .. a[4]) == 0 then return false end\n"
	"  redis.call('SREM', '{parley}:owned:' .. a[1], cjson.encode({a[2], a[3], a[4]}))\n"
	"  local u = user_of(a[3])\n"
	"  if not u then return false end\n"
	"  local after = redis.call('HLEN', rk)\n"
	"  return moved(a[1], a[2], u, after + 1, after, a[5])\n"
	"end)\n"
	/* reap(token, now, batch, cursor) -> { more, cursor, { id, inc, ... },
	 * nsp1, user1, ... }: the nodes whose token is no longer current (dead,
	 * restarted, or reconnected) counted out; the users they left with no
	 * socket, and the graces they owned, are the caller's to end. A token
	 * whose node's liveness key no longer holds its incarnation is a death
	 * (a reconnect keeps the incarnation): the first reap that sees it
	 * appends it to the stream {parley}:gone, once per incarnation (the
	 * marker {parley}:gone:<inc>). Every node's reap reads the deaths after
	 * its cursor ("": from now) and gets them with the new cursor. */
	"redis.register_function('parley_reap', function(_, a)\n"
	"  local token, now, budget, cursor = a[1], a[2], tonumber(a[3]), a[4]\n"
	"  local out = {0}\n"
	/* From now: but a death this very call finds is told (a cluster that
	 * starts again learns of its members that died while it was down). */
	"  if cursor == '' then\n"
	"    local last = redis.call('XREVRANGE', '{parley}:gone', '+', '-', 'COUNT', 1)\n"
	"    cursor = last[1] and last[1][1] or '0-0'\n"
	"  end\n"
	"  local reg = redis.call('HGETALL', '{parley}:nodes')\n"
	"  for i = 1, #reg, 2 do\n"
	"    local t, id = reg[i], reg[i + 1]\n"
	"    if budget <= 0 then out[1] = 1; break end\n"
	"    local inc = string.sub(t, 1, 16)\n"
	"    local alive = redis.call('GET', '{parley}:node:' .. id) == inc\n"
	"    if t ~= token and (redis.call('GET', '{parley}:pnode:' .. id) ~= t or not alive) then\n"
	"      if not alive and redis.call('SET', '{parley}:gone:' .. inc, id, 'NX', 'PX', GONE_TTL) then\n"
	"        redis.call('XADD', '{parley}:gone', 'MAXLEN', '~', GONE_MAX, '*', 'node', id, 'inc', inc)\n"
	"        redis.call('PEXPIRE', '{parley}:gone', GONE_TTL)\n"
	"      end\n"
	"      local owned, grace = '{parley}:owned:' .. t, '{parley}:grace:' .. t\n"
	"      local batch = redis.call('SPOP', owned, budget)\n"
	"      budget = budget - #batch\n"
	"      for _, e in ipairs(batch) do\n"
	"        local m = cjson.decode(e)\n"
	"        local rk = room_key(m[1], m[2])\n"
	"        local u = user_of(m[2])\n"
	"        if redis.call('HDEL', rk, t .. '|' .. m[3]) == 1 and u then\n"
	"          local after = redis.call('HLEN', rk)\n"
	"          if moved(token, m[1], u, after + 1, after, now) == 'leaving' then\n"
	"            out[#out + 1] = m[1]; out[#out + 1] = u\n"
	"          end\n"
	"        end\n"
	"      end\n"
	"      if budget > 0 then\n"
	"        local graces = redis.call('SPOP', grace, budget)\n"
	"        budget = budget - #graces\n"
	"        for _, e in ipairs(graces) do\n"
	"          local g = cjson.decode(e)\n"
	"          local sk = state_key(g[1], g[2])\n"
	"          if redis.call('HGET', sk, 's') == 'leaving' and redis.call('HGET', sk, 'o') == t then\n"
	"            redis.call('HSET', sk, 'o', token)\n"
	"            redis.call('SADD', '{parley}:grace:' .. token, e)\n"
	"            redis.call('PEXPIRE', '{parley}:grace:' .. token, TTL)\n"
	"            out[#out + 1] = g[1]; out[#out + 1] = g[2]\n"
	"          end\n"
	"        end\n"
	"      end\n"
	"      if redis.call('SCARD', owned) == 0 and redis.call('SCARD', grace) == 0 then\n"
	"        redis.call('HDEL', '{parley}:nodes', t)\n"
	"      else\n"
	"        out[1] = 1\n"
	"      end\n"
	"    end\n"
	"  end\n"
	"  local gone = {}\n"
	"  for _, e in ipairs(redis.call('XRANGE', '{parley}:gone', '(' .. cursor, '+', 'COUNT', GONE_BATCH)) do\n"
	"    cursor = e[1]\n"
	"    gone[#gone + 1] = e[2][2]; gone[#gone + 1] = e[2][4]\n"
	"  end\n"
	"  table.insert(out, 2, cursor)\n"
	"  table.insert(out, 3, gone)\n"
	"  return out\n"
	"end)\n"
	/* expire(token, nsp, user...) -> the users confirmed offline: still
	 * leaving with this node the owner (or their state lost with a Redis
	 * that restarted), and no socket anywhere. */
	"redis.register_function('parley_expire', function(_, a)\n"
	"  local token, nsp, out = a[1], a[2], {}\n"
	"  for i = 3, #a do\n"
	"    local sk = state_key(nsp, a[i])\n"
	"    local s = redis.call('HGET', sk, 's')\n"
	"    local o = redis.call('HGET', sk, 'o')\n"
	"    if redis.call('HLEN', room_key(nsp, 'user:' .. a[i])) == 0\n"
	"        and ((s == 'leaving' and o == token) or not s) then\n"
	"      redis.call('DEL', sk)\n"
	"      redis.call('SREM', '{parley}:grace:' .. token, cjson.encode({nsp, a[i]}))\n"
	"      out[#out + 1] = a[i]\n"
	"    end\n"
	"  end\n"
	"  return out\n"
	"end)\n"
	/* room_sizes(nsp, room...) -> each room's sockets on every node */
	"redis.register_function{function_name = 'parley_room_sizes', flags = {'no-writes'},\n"
	"  callback = function(_, a)\n"
	"    local out = {}\n"
	"    for i = 2, #a do out[#out + 1] = redis.call('HLEN', room_key(a[1], a[i])) end\n"
	"    return out\n"
	"  end}\n"
	/* room_users(nsp, room) -> the distinct users of the room's sockets */
	"redis.register_function{function_name = 'parley_room_users', flags = {'no-writes'},\n"
	"  callback = function(_, a)\n"
	"    local seen, out = {}, {}\n"
	"    for _, u in ipairs(redis.call('HVALS', room_key(a[1], a[2]))) do\n"
	"      if not seen[u] then seen[u] = true; out[#out + 1] = u end\n"
	"    end\n"
	"    return out\n"
	"  end}\n";

/* A join or leave of a user's room whose reply may be a decision. */
struct change_ctx {
	size_t nsp_len, user_len;
	int64_t at;
	char data[]; /* nsp, then user */
};

static struct {
	int on;
	presence_change_fn changed;
	char token[48];
	size_t token_len;
	uint64_t epoch;
	char node_key[300]; /* {parley}:pnode:<id> */
	ev_timer refresh, reap;
	int reaping; /* a reap call in flight */
	presence_gone_fn gone;
	/* The last death in {parley}:gone this node was told of ("" until the
	 * first reap answers): kept across reconnects, so that a node away
	 * from Redis for a while hears the deaths it missed. */
	char cursor[48];
	size_t cursor_len;
} pr;

static uint64_t writes, unsent, online_n, leaving_n, back_n, offline_n, reaped, queries, gone_n;

static struct metrics_value presence_metrics[] = {
	{ .name = "parley_cluster_presence_writes_total",
	  .help = "Room joins and leaves of this node's sockets written to Redis.",
	  .type = "counter", .count = &writes },
	{ .name = "parley_cluster_presence_unsent_total",
	  .help = "Room joins and leaves not written while Redis was unreachable (written again "
		  "when it is back).", .type = "counter", .count = &unsent },
	{ .name = "parley_cluster_presence_decisions_total{state=\"online\"}",
	  .help = "What the cluster decided for this node: a user's first socket anywhere "
		  "(online), its last gone and this node owning the grace (leaving), a socket "
		  "again during the grace (back), the grace over with no socket anywhere "
		  "(offline).", .type = "counter", .count = &online_n },
	{ .name = "parley_cluster_presence_decisions_total{state=\"leaving\"}", .count = &leaving_n },
	{ .name = "parley_cluster_presence_decisions_total{state=\"back\"}", .count = &back_n },
	{ .name = "parley_cluster_presence_decisions_total{state=\"offline\"}", .count = &offline_n },
	{ .name = "parley_cluster_presence_reaped_total",
	  .help = "Users a dead node (or this node's earlier connection to Redis) left with no "
		  "socket, counted out by this node.", .type = "counter", .count = &reaped },
	{ .name = "parley_cluster_presence_queries_total",
	  .help = "Cluster-wide presence questions asked of Redis (room_size, room_users, "
		  "user_sockets, online_users).", .type = "counter", .count = &queries },
	{ .name = "parley_cluster_nodes_gone_total",
	  .help = "Deaths of other nodes this node was told of (their node_gone hooks ran here).",
	  .type = "counter", .count = &gone_n },
};

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int presence_on(void)
{
	return pr.on;
}

static void decided(const char *nsp, size_t nsp_len, const char *user, size_t user_len,
		    const char *state, size_t state_len, int64_t at)
{
	if (state_len == 6 && memcmp(state, "online", 6) == 0) {
		online_n++;
		pr.changed(nsp, nsp_len, user, user_len, "online", at);
	} else if (state_len == 7 && memcmp(state, "leaving", 7) == 0) {
		leaving_n++;
		pr.changed(nsp, nsp_len, user, user_len, "leaving", at);
	} else if (state_len == 4 && memcmp(state, "back", 4) == 0) {
		back_n++;
		pr.changed(nsp, nsp_len, user, user_len, "back", at);
	}
}

static void on_change_reply(void *arg, const redisReply *r)
{
	struct change_ctx *c = arg;

	if (r && r->type == REDIS_REPLY_STRING && pr.on)
		decided(c->data, c->nsp_len, c->data + c->nsp_len, c->user_len, r->str, r->len,
			c->at);
	free(c);
}

/* Writes one membership of `cl` (joined or left) to Redis. */
static void write_member(const struct client *cl, const char *room, size_t len, int joined)
{
	char now[24];
	size_t now_len = (size_t)snprintf(now, sizeof(now), "%" PRId64, wall_ms());
	const char *argv[] = { "FCALL", joined ? "parley_join" : "parley_leave", "0", pr.token,
			       cl->nsp->name, room, cl->id, joined ? cl->user_id : now, now };
	size_t lens[] = { 5, joined ? 11 : 12, 1, pr.token_len, cl->nsp->name_len, len,
			  strlen(cl->id), joined ? strlen(cl->user_id) : now_len, now_len };
	struct change_ctx *c = NULL;
	int argc = joined ? 9 : 8;

	/* Only a user's own room makes a decision worth a reply. */
	if (len > 5 && memcmp(room, "user:", 5) == 0) {
		c = xmalloc(sizeof(*c) + cl->nsp->name_len + len - 5);
		c->nsp_len = cl->nsp->name_len;
		c->user_len = len - 5;
		c->at = wall_ms();
		memcpy(c->data, cl->nsp->name, c->nsp_len);
		memcpy(c->data + c->nsp_len, room + 5, c->user_len);
	}
	if (cluster_command(argc, argv, lens, c ? on_change_reply : NULL, c) < 0) {
		/* Written again, with the rest, when Redis is back. */
		unsent++;
		free(c);
		return;
	}
	writes++;
}

static void on_member(const struct client *cl, const char *room, size_t len, int joined)
{
	if (pr.on)
		write_member(cl, room, len, joined);
}

static const struct client_watch watch = { .member = on_member };

/* ---- the node's token, and counting the dead out ---- */

static void set_token(void)
{
	char ttl[16];
	const char *argv[] = { "SET", pr.node_key, pr.token, "PX", ttl };
	size_t lens[] = { 3, strlen(pr.node_key), pr.token_len, 2,
			  (size_t)snprintf(ttl, sizeof(ttl), "%d", PRESENCE_TTL_MS) };

	cluster_command(5, argv, lens, NULL, NULL);
}

static void on_refresh(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	set_token();
}

static void reap(void);

/* Other nodes' deaths, each once here (the stream holds each once, the
 * cursor moves past it). This node's own id is left out: it is another
 * incarnation under our name (a restart faster than the TTL), and what
 * names our id is ours now. */
static void told_gone(const redisReply *ids)
{
	const char *self = cluster_node();

	for (size_t i = 0; i + 1 < ids->elements; i += 2) {
		const redisReply *id = ids->element[i], *inc = ids->element[i + 1];
		if (id->type != REDIS_REPLY_STRING || inc->type != REDIS_REPLY_STRING ||
		    (strlen(self) == id->len && memcmp(self, id->str, id->len) == 0))
			continue;
		gone_n++;
		log_info("cluster: node %.*s (start %.*s) is gone: its liveness key expired or "
			 "holds a new start", (int)id->len, id->str, (int)inc->len, inc->str);
		if (pr.gone)
			pr.gone(id->str, id->len, inc->str, inc->len);
	}
}

static void on_reap_reply(void *arg, const redisReply *r)
{
	int more = 0;
	int64_t now = wall_ms();

	(void)arg;
	pr.reaping = 0;
	if (!pr.on || !r || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
		return;
	more = r->element[0]->type == REDIS_REPLY_INTEGER && r->element[0]->integer == 1;
	if (r->element[1]->type == REDIS_REPLY_STRING && r->element[1]->len < sizeof(pr.cursor)) {
		memcpy(pr.cursor, r->element[1]->str, r->element[1]->len);
		pr.cursor_len = r->element[1]->len;
	}
	if (r->element[2]->type == REDIS_REPLY_ARRAY)
		told_gone(r->element[2]);
	for (size_t i = 3; i + 1 < r->elements; i += 2) {
		const redisReply *n = r->element[i], *u = r->element[i + 1];
		if (n->type != REDIS_REPLY_STRING || u->type != REDIS_REPLY_STRING)
			continue;
		reaped++;
		decided(n->str, n->len, u->str, u->len, "leaving", 7, now);
	}
	/* A dead node's rest, at once: its users wait to be told. */
	if (more)
		reap();
}

static void reap(void)
{
	char now[24], batch[16];
	const char *argv[] = { "FCALL", "parley_reap", "0", pr.token, now, batch, pr.cursor };
	size_t lens[] = { 5, 11, 1, pr.token_len,
			  (size_t)snprintf(now, sizeof(now), "%" PRId64, wall_ms()),
			  (size_t)snprintf(batch, sizeof(batch), "%d", PRESENCE_REAP_BATCH),
			  pr.cursor_len };

	if (pr.reaping)
		return;
	if (cluster_command(7, argv, lens, on_reap_reply, NULL) == 0)
		pr.reaping = 1;
}

static void on_reap(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	reap();
}

/* Redis is (back) up: the library loaded, a new token, and every room
 * membership this node has written under it. What an earlier token wrote
 * (before a lost connection, or nothing when Redis restarted empty) is
 * counted out by the next reap, as a dead node's is: a user who stayed
 * meanwhile has this token's entries by then, and is not told anything. */
static void on_up(void)
{
	const char *node = cluster_node();
	const char *load[] = { "FUNCTION", "LOAD", "REPLACE", library };
	size_t load_lens[] = { 8, 4, 7, sizeof(library) - 1 };
	const char *reg[] = { "HSET", "{parley}:nodes", pr.token, node };
	size_t reg_lens[] = { 4, 14, 0, strlen(node) };
	struct map_iter it, rit;
	struct map_entry *e, *re;

	pr.epoch++;
	pr.token_len = (size_t)snprintf(pr.token, sizeof(pr.token), "%016" PRIx64 ":%" PRIu64,
					cluster_incarnation(), pr.epoch);
	reg_lens[2] = pr.token_len;
	pr.reaping = 0;
	cluster_command(4, load, load_lens, NULL, NULL);
	/* The token first: a reap never sees a registered token unset. */
	set_token();
	cluster_command(4, reg, reg_lens, NULL, NULL);
	map_iter_init(&it, client_namespaces());
	while ((e = map_next(&it))) {
		struct nsp *n = e->value;
		map_iter_init(&rit, &n->rooms);
		while ((re = map_next(&rit))) {
			const struct room *r = re->value;
			for (uint32_t i = 0; i < r->count; i++) {
				const struct client *cl = r->members[i].set->owner;
				if (cl->user_id)
					write_member(cl, r->name, r->name_len, 1);
			}
		}
	}
	reap();
}

/* ---- questions ---- */

int presence_query(enum presence_query q, const char *nsp, size_t nsp_len, const char *room,
		   size_t room_len, cluster_reply_fn done, void *arg)
{
	char buf[512];
	char *key = buf;
	size_t klen;
	int rc;

	if (!pr.on || !cluster_is_up())
		return PARLEY_EUNAVAILABLE;
	queries++;
	if (q == PRESENCE_ROOM_USERS) {
		const char *argv[] = { "FCALL_RO", "parley_room_users", "0", nsp, room };
		size_t lens[] = { 8, 17, 1, nsp_len, room_len };
		return cluster_command(5, argv, lens, done, arg);
	}
	klen = q == PRESENCE_ROOM_SIZE ? 14 + nsp_len + 1 + room_len : 16 + nsp_len;
	if (klen > sizeof(buf))
		key = xmalloc(klen);
	if (q == PRESENCE_ROOM_SIZE) {
		memcpy(key, "{parley}:room:", 14);
		memcpy(key + 14, nsp, nsp_len);
		key[14 + nsp_len] = ':';
		memcpy(key + 15 + nsp_len, room, room_len);
	} else {
		memcpy(key, "{parley}:online:", 16);
		memcpy(key + 16, nsp, nsp_len);
	}
	{
		const char *argv[] = { q == PRESENCE_ROOM_SIZE ? "HLEN" : "SMEMBERS", key };
		size_t lens[] = { q == PRESENCE_ROOM_SIZE ? 4u : 8u, klen };
		rc = cluster_command(2, argv, lens, done, arg);
	}
	if (key != buf)
		free(key);
	return rc;
}

/* The confirmed users are counted before the caller's `done` sees them. */
struct expire_ctx {
	cluster_reply_fn done;
	void *arg;
};

static void on_expire_reply(void *arg, const redisReply *r)
{
	struct expire_ctx *x = arg;

	if (r && r->type == REDIS_REPLY_ARRAY)
		offline_n += r->elements;
	x->done(x->arg, r);
	free(x);
}

int presence_room_sizes(const char *nsp, size_t nsp_len, const char *const *rooms,
			const size_t *lens, size_t n, cluster_reply_fn done, void *arg)
{
	const char **argv;
	size_t *alens;
	int rc;

	if (!pr.on || !cluster_is_up())
		return PARLEY_EUNAVAILABLE;
	queries++;
	argv = xcalloc(n + 4, sizeof(*argv));
	alens = xcalloc(n + 4, sizeof(*alens));
	argv[0] = "FCALL_RO";
	alens[0] = 8;
	argv[1] = "parley_room_sizes";
	alens[1] = 17;
	argv[2] = "0";
	alens[2] = 1;
	argv[3] = nsp;
	alens[3] = nsp_len;
	for (size_t i = 0; i < n; i++) {
		argv[4 + i] = rooms[i];
		alens[4 + i] = lens[i];
	}
	rc = cluster_command((int)n + 4, argv, alens, done, arg);
	free(argv);
	free(alens);
	return rc;
}

int presence_expire(const char *nsp, size_t nsp_len, const char *const *users,
		    const size_t *lens, size_t n, cluster_reply_fn done, void *arg)
{
	const char **argv;
	size_t *alens;
	struct expire_ctx *x;
	int rc;

	if (!pr.on || !cluster_is_up())
		return PARLEY_EUNAVAILABLE;
	argv = xcalloc(n + 5, sizeof(*argv));
	alens = xcalloc(n + 5, sizeof(*alens));
	argv[0] = "FCALL";
	alens[0] = 5;
	argv[1] = "parley_expire";
	alens[1] = 13;
	argv[2] = "0";
	alens[2] = 1;
	argv[3] = pr.token;
	alens[3] = pr.token_len;
	argv[4] = nsp;
	alens[4] = nsp_len;
	for (size_t i = 0; i < n; i++) {
		argv[5 + i] = users[i];
		alens[5 + i] = lens[i];
	}
	x = xmalloc(sizeof(*x));
	x->done = done;
	x->arg = arg;
	rc = cluster_command((int)n + 5, argv, alens, on_expire_reply, x);
	if (rc < 0)
		free(x);
	free(argv);
	free(alens);
	return rc;
}

/* ---- start and end ---- */

void presence_open(presence_change_fn changed)
{
	const char *node = cluster_node();

	if (!node || pr.on)
		return;
	pr.changed = changed;
	snprintf(pr.node_key, sizeof(pr.node_key), "{parley}:pnode:%s", node);
	for (size_t i = 0; i < sizeof(presence_metrics) / sizeof(presence_metrics[0]); i++)
		metrics_register(&presence_metrics[i]);
	pr.on = 1;
	client_add_watch(&watch);
	cluster_on_up(on_up);
	ev_timer_init(&pr.refresh, on_refresh, PRESENCE_REFRESH_S, PRESENCE_REFRESH_S);
	ev_timer_start(clock_loop, &pr.refresh);
	ev_timer_init(&pr.reap, on_reap, PRESENCE_REAP_S, PRESENCE_REAP_S);
	ev_timer_start(clock_loop, &pr.reap);
}

void presence_on_gone(presence_gone_fn fn)
{
	pr.gone = fn;
}

void presence_close(void)
{
	if (!pr.on)
		return;
	client_remove_watch(&watch);
	ev_timer_stop(clock_loop, &pr.refresh);
	ev_timer_stop(clock_loop, &pr.reap);
	pr.on = 0;
}
