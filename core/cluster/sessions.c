/* sessions.c - connection state recovery across nodes (see sessions.h):
 * the records of this node's recoverable sockets and the copy of its
 * recovery log in Redis, the claim of another node's session by a client
 * that comes back here, and the end of a held socket another node
 * recovered. */
#include "cluster/sessions.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/map.h"
#include "base/metrics.h"
#include "base/settings.h"
#include "cluster/cluster.h"
#include "hub/recovery.h"

/* The keys' lifetime past the last refresh: the recovery window, and the
 * liveness key's TTL (a node that died is known dead after it). */
#define SESSIONS_GRACE_MS 15000
#define SESSIONS_REFRESH_S 5.0
/* The channel a claim is told on: "<incarnation><pid>". Tagged as the keys
 * are: published with cluster_command, on the shard that holds them. */
#define SESSIONS_CHANNEL "{parley}:recovery"
/* The incarnation at the end of a pid, in hex. */
#define INC_LEN 16

/* Writes what one loop iteration of this node logged and published (one
 * call per iteration, not one per emit: the fixed part of a call, and each
 * command inside it, is most of the cost). The log's entries of the
 * iteration go as ONE stream entry: KEYS[1] is this node's log (id = the
 * batch's last offset, `d` = its entries as netstrings: offset, entry,
 * ...), KEYS[2] its index (the same ids: `t` Redis's time in ms, `e` and
 * `b` the node's running count of entries and bytes logged before the
 * batch), KEYS[3] its meta hash (`dropped`: the newest offset cut for the
 * count or the bytes), KEYS[4..] the histories of the rooms broadcast into.
 * ARGV[1..13]: the log's bounds (entries, bytes, ms of age by Redis's
 * clock), the keys' TTL, an offset that never got there (0: none), the
 * batch's entries, a history's cap, how many messages, the batch's last
 * offset, the running count and bytes before it and after it; ARGV[14] the
 * batch; ARGV[15] '1' when the node asks for the bounds to be looked at;
 * then the published messages, and for each history key the index of its
 * message among them.
 *
 * Asked (the node knows the head's count, bytes and age from the last time:
 * only when a bound may be passed, after Redis came back, or at the head's
 * age), the oldest batches past the bounds are cut, read from the small
 * index, with two XTRIM MINID; over the count or the bytes, down to 7/8 of
 * them, so that most calls look at nothing. A batch cut for the count or
 * the bytes is noted (a session that missed one of its entries cannot be
 * recovered); one cut for its age is not: a client within its window got
 * it, or it was not its (sessions.c's on_claim). The keys get their TTL
 * then too (the refresh keeps it). Each history gets its message (XADD's
 * own approximate MAXLEN trims it) and its TTL once. Returns {entries cut,
 * and when asked: the head's running count and bytes, and the ms until it
 * ages out}. */
static const char flush_lua[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local nmsg, n, noted, ret = tonumber(ARGV[8]), 0, nil, {0}\n"
	"if tonumber(ARGV[6]) > 0 then\n"
	"  local maxev, maxb, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
	"  local E, B = tonumber(ARGV[12]), tonumber(ARGV[13])\n"
	"  local id = ARGV[9] .. '-0'\n"
	"  redis.call('XADD', KEYS[1], id, 'd', ARGV[14])\n"
	"  redis.call('XADD', KEYS[2], id, 't', now, 'e', ARGV[10], 'b', ARGV[11])\n"
	"  if ARGV[15] == '1' then\n"
	"    redis.call('HSETNX', KEYS[3], 'dropped', 0)\n"
	"    for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end\n"
	"    local cut, first, head, hb, hat, step, more = nil, nil, nil, B, nil, 1, true\n"
	"    local limev, limb\n"
	"    while more do\n"
	"      local h = redis.call('XRANGE', KEYS[2], cut and '(' .. cut or '-', '+', 'COUNT', step)\n"
	"      more = #h > 0\n"
	"      for _, x in ipairs(h) do\n"
	"        local at, e, b = tonumber(x[2][2]), tonumber(x[2][4]), tonumber(x[2][6])\n"
	"        if not first then\n"
	"          first = e\n"
	/* Over a bound: down to 7/8 of it, so that the next cut is many
	 * batches away (the node asks again only then, or at the head's age). */
	"          if E - e > maxev or B - b > maxb then\n"
	"            limev, limb = math.floor(maxev * 7 / 8), math.floor(maxb * 7 / 8)\n"
	"          else limev, limb = maxev, maxb end\n"
	"        end\n"
	"        head, hb, hat = e, b, at\n"
	"        if E - e <= limev and B - b <= limb and at + window > now then more = false break end\n"
	"        if at + window > now then noted = x[1] end\n"
	"        cut, head, hb, hat = x[1], nil, B, nil\n"
	"      end\n"
	"      step = math.min(step * 4, 256)\n"
	"    end\n"
	"    if cut then\n"
	"      local min = string.match(cut, '^(%d+)') .. '-1'\n"
	"      redis.call('XTRIM', KEYS[1], 'MINID', min)\n"
	"      redis.call('XTRIM', KEYS[2], 'MINID', min)\n"
	"      n = (head or E) - first\n"
	"    end\n"
	"    ret = {n, head or E, hb, hat and hat + window - now or window}\n"
	"  end\n"
	"  local hole = tonumber(ARGV[5])\n"
	"  local d = noted and tonumber(string.match(noted, '^(%d+)')) or 0\n"
	"  if hole > d then d = hole end\n"
	/* Offsets grow, so a batch cut now is newer than any cut before; a
	 * hole may not be. */
	"  if d > 0 and (noted or d > tonumber(redis.call('HGET', KEYS[3], 'dropped') or '0')) then\n"
	"    redis.call('HSET', KEYS[3], 'dropped', d)\n"
	"  end\n"
	"end\n"
	"local base, seen = 15, {}\n"
	"for i = 4, #KEYS do\n"
	"  local k = KEYS[i]\n"
	"  redis.call('XADD', k, 'MAXLEN', '~', ARGV[7], '*', 'm', ARGV[base + tonumber(ARGV[base + nmsg + i - 3])])\n"
	"  if not seen[k] then redis.call('PEXPIRE', k, ARGV[4]) seen[k] = true end\n"
	"end\n"
	"return ret\n";

/* Claims the session of the pid ARGV[1], made by the node of incarnation
 * ARGV[2] (or recovered since by the one its forward key names), for a
 * client of the record prefix ARGV[3] (user, namespace, parser); ARGV[4]
 * is the user's part alone. Taken once: the record goes. Returns
 * {'unknown'}, {'other'} (another user's: left alone) or {'ok', record,
 * newest offset dropped, the Redis time of the log's last entry in ms (0:
 * none), incarnation, the log's batches that end after offset ARGV[5],
 * the broadcasts of its rooms (and its namespace's everyone) in Redis since the later of
 * that entry and the session's start}: the entries cover what its node
 * delivered, the rooms' history what came after (its node dead, or the
 * broadcast not yet there). */
static const char claim_lua[] =
	"local fwd = '{parley}:rfwd:' .. ARGV[1]\n"
	"local inc = redis.call('GET', fwd) or ARGV[2]\n"
	"local hkey = '{parley}:rsess:' .. inc\n"
	"local rec = redis.call('HGET', hkey, ARGV[1])\n"
	"if not rec then return {'unknown'} end\n"
	"if string.sub(rec, 1, #ARGV[3]) ~= ARGV[3] then\n"
	"  if string.sub(rec, 1, #ARGV[4]) ~= ARGV[4] then return {'other'} end\n"
	"  return {'unknown'}\n"
	"end\n"
	"redis.call('HDEL', hkey, ARGV[1])\n"
	"redis.call('DEL', fwd)\n"
	"local lkey = '{parley}:rlog:' .. inc\n"
	"local dropped = redis.call('HGET', lkey .. ':meta', 'dropped') or '0'\n"
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local entries = redis.call('XRANGE', lkey, '(' .. ARGV[5] .. '-0', '+')\n"
	"local last = redis.call('XREVRANGE', lkey .. ':idx', '+', '-', 'COUNT', 1)[1]\n"
	"local after = last and tonumber(last[2][2]) or 0\n"
	/* the record's netstrings: user, namespace, parser, sid, born, floor,
	 * alien, since (ms), rooms */
	"local pos, f = 1, {}\n"
	"local function ns()\n"
	"  local c = string.find(rec, ':', pos, true)\n"
	"  local n = tonumber(string.sub(rec, pos, c - 1))\n"
	"  pos = c + 1 + n\n"
	"  return string.sub(rec, c + 1, c + n)\n"
	"end\n"
	"for i = 1, 9 do f[i] = ns() end\n"
	"if tonumber(f[8]) > after then after = tonumber(f[8]) end\n"
	"local start = tostring(after + 1) .. '-0'\n"
	"local hist = {}\n"
	"for i = 1, tonumber(f[9]) do\n"
	"  local room = ns()\n"
	"  ns()\n"
	"  hist[i] = redis.call('XRANGE', '{parley}:hist:' .. f[2] .. ':room:' .. room, start, '+')\n"
	"end\n"
	"hist[#hist + 1] = redis.call('XRANGE', '{parley}:hist:' .. f[2] .. ':everyone', start, '+')\n"
	"return {'ok', rec, dropped, tostring(after), inc, entries, hist}\n";

/* A growing buffer of netstrings ("<len>:<bytes>"): the records and the
 * log's entries, read back by the same code on any node. */
struct out {
	char *p;
	size_t len, cap;
};

static void out_put(struct out *o, const char *s, size_t len)
{
	char head[24];
	int n = snprintf(head, sizeof(head), "%zu:", len);

	if (o->len + (size_t)n + len > o->cap) {
		o->cap = (o->len + (size_t)n + len) * 2 + 64;
		o->p = xrealloc(o->p, o->cap);
	}
	memcpy(o->p + o->len, head, (size_t)n);
	memcpy(o->p + o->len + n, s, len);
	o->len += (size_t)n + len;
}

static void out_num(struct out *o, uint64_t v)
{
	char buf[24];

	out_put(o, buf, (size_t)snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v));
}

/* Reads the next netstring of [*p, end): 0 with it in `*s`, `*len`, or -1
 * when malformed. */
static int in_get(const char **p, const char *end, const char **s, size_t *len)
{
	size_t n = 0;
	const char *q = *p;

	while (q < end && *q >= '0' && *q <= '9' && n < ((size_t)1 << 40))
		n = n * 10 + (size_t)(*q++ - '0');
	if (q == *p || q >= end || *q != ':' || (size_t)(end - q - 1) < n)
		return -1;
	*s = q + 1;
	*len = n;
	*p = q + 1 + n;
	return 0;
}

static int in_num(const char **p, const char *end, uint64_t *v)
{
	const char *s;
	size_t len;

	if (in_get(p, end, &s, &len) < 0 || !len || len > 20)
		return -1;
	*v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (uint64_t)(s[i] - '0');
	}
	return 0;
}

static struct {
	int on;
	char inc[INC_LEN + 1];
	char sess_key[48], log_key[48], index_key[56], meta_key[56];
	/* entries and their bytes logged to Redis so far (the index's `e`, `b`) */
	uint64_t logged, logged_bytes;
	/* the log's head in Redis, as last told: its running count and bytes,
	 * and when (the loop's time) it ages out; `check` asks the next flush
	 * to look at the bounds anyway (first write, Redis back, a failure) */
	uint64_t head_e, head_b;
	double head_until;
	int check, asking; /* asking: a look at the bounds is on its way */
	char ttl[24];
	char flush_sha[48], claim_sha[48];
	/* pids recovered here from another node -> the client's offset then
	 * (one of that node's) + 1 */
	struct map adopted;
	uint64_t hole;      /* an offset whose append may not have got there */
	ev_timer refresh;
	/* What this loop iteration logged and published, written in one
	 * script call when it ends (flush_lua): the log's entries (offset,
	 * entry: 2 pieces each), the published messages, and per room
	 * broadcast into its history key and the index of its message. */
	struct batch {
		struct out log; /* netstrings: offset, entry, ... */
		struct piece { char *p; size_t len; } *msgs, *keys;
		size_t *key_msg;
		size_t nlog, nmsgs, msgcap, nkeys, keycap;
		size_t bytes;
		uint64_t last; /* the newest offset logged in it */
	} batch;
	ev_prepare flush;
} ss;

/* A batch is written within the iteration once it holds this many pieces
 * or bytes: one script call stays short for Redis. */
#define BATCH_MAX_PIECES 2048
#define BATCH_MAX_BYTES (4u << 20)

static uint64_t appends, append_failed, dropped_total, records_written, adopted_count,
	history_appends;
static uint64_t claims[5];
enum { RECOVERED, UNKNOWN_PID, OTHER_USER, LOG_LOST, CLIENT_GONE };

static struct metrics_value sessions_metrics[] = {
	{ .name = "parley_cluster_recovery_appends_total",
	  .help = "Emits copied to this node's recovery log in Redis (one per emit logged here).",
	  .type = "counter", .count = &appends },
	{ .name = "parley_cluster_recovery_append_failed_total",
	  .help = "Emits that did not reach the log in Redis (Redis down or the command lost): a "
		  "session that missed one starts anew.", .type = "counter", .count = &append_failed },
	{ .name = "parley_cluster_recovery_dropped_total",
	  .help = "Entries the log in Redis dropped to keep its bounds (PARLEY_REDIS_RECOVERY_MAX_"
		  "EVENTS, PARLEY_REDIS_RECOVERY_MAX_BYTES, PARLEY_RECOVERY_WINDOW).",
	  .type = "counter", .count = &dropped_total },
	{ .name = "parley_cluster_recovery_history_total",
	  .help = "Broadcasts this node added to a room's history in Redis (one per targeted room; "
		  "PARLEY_REDIS_ROOM_HISTORY).", .type = "counter", .count = &history_appends },
	{ .name = "parley_cluster_recovery_records_total",
	  .help = "Writes of a recoverable socket's record (a connect, a join, a leave).",
	  .type = "counter", .count = &records_written },
	{ .name = "parley_cluster_recovery_adopted",
	  .help = "Sockets here that were recovered from another node (their forward key is kept "
		  "alive).", .type = "gauge", .count = &adopted_count },
	{ .name = "parley_cluster_recovery_claims_total{result=\"recovered\"}",
	  .help = "Recoveries of another node's session tried here: recovered; refused as a new "
		  "session (unknown_pid, other_user, log_lost); the client went meanwhile "
		  "(client_gone).", .type = "counter", .count = &claims[RECOVERED] },
	{ .name = "parley_cluster_recovery_claims_total{result=\"unknown_pid\"}",
	  .count = &claims[UNKNOWN_PID] },
	{ .name = "parley_cluster_recovery_claims_total{result=\"other_user\"}",
	  .count = &claims[OTHER_USER] },
	{ .name = "parley_cluster_recovery_claims_total{result=\"log_lost\"}",
	  .count = &claims[LOG_LOST] },
	{ .name = "parley_cluster_recovery_claims_total{result=\"client_gone\"}",
	  .count = &claims[CLIENT_GONE] },
};

/* ---- scripts ---- */

static void on_loaded(void *arg, const redisReply *r)
{
	char *sha = arg;

	if (r && r->type == REDIS_REPLY_STRING && r->len < sizeof(ss.flush_sha))
		memcpy(sha, r->str, r->len + 1);
}

/* Redis (back) up: it may have restarted empty, without the scripts. */
static void on_up(void)
{
	const char *argv[] = { "SCRIPT", "LOAD", flush_lua };
	size_t lens[] = { 6, 4, sizeof(flush_lua) - 1 };

	ss.flush_sha[0] = ss.claim_sha[0] = '\0';
	ss.check = 1;
	cluster_command(3, argv, lens, on_loaded, ss.flush_sha);
	argv[2] = claim_lua;
	lens[2] = sizeof(claim_lua) - 1;
	cluster_command(3, argv, lens, on_loaded, ss.claim_sha);
}

/* Runs `body` with `nkeys` of `argc` arguments: EVALSHA once Redis has the
 * script, EVAL until then. */
static int run_script(const char *sha, const char *body, int argc, const char **args,
		      const size_t *lens, int nkeys, cluster_reply_fn done, void *arg)
{
	const char *argv[16];
	size_t alen[16];
	char nk[8];

	if (argc + 3 > 16)
		return -EINVAL;
	argv[0] = sha[0] ? "EVALSHA" : "EVAL";
	alen[0] = strlen(argv[0]);
	argv[1] = sha[0] ? sha : body;
	alen[1] = strlen(argv[1]);
	argv[2] = nk;
	alen[2] = (size_t)snprintf(nk, sizeof(nk), "%d", nkeys);
	for (int i = 0; i < argc; i++) {
		argv[3 + i] = args[i];
		alen[3 + i] = lens[i];
	}
	return cluster_command(argc + 3, argv, alen, done, arg);
}

/* ---- this node's log, copied, and the rooms' history: one call an
 * iteration ---- */

static void batch_grow(struct piece **v, size_t n, size_t *cap, size_t add)
{
	if (n + add > *cap) {
		*cap = (n + add) * 2 + 16;
		*v = xrealloc(*v, *cap * sizeof(**v));
	}
}

static void batch_clear(struct batch *b)
{
	b->log.len = 0;
	for (size_t i = 0; i < b->nmsgs; i++)
		free(b->msgs[i].p);
	for (size_t i = 0; i < b->nkeys; i++)
		free(b->keys[i].p);
	b->nlog = b->nmsgs = b->nkeys = 0;
	b->bytes = 0;
	b->last = 0;
}

/* What a flush carried, for its reply. */
struct flushed {
	size_t entries;
	uint64_t last;
};

/* The entries of a flush that may not have got there: a claim must not
 * take their absence for nothing missed. */
static void batch_failed(size_t entries, uint64_t last)
{
	append_failed += entries;
	if (last > ss.hole)
		ss.hole = last;
}

static void on_flushed(void *arg, const redisReply *r)
{
	struct flushed *f = arg;

	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->element[0]->type != REDIS_REPLY_INTEGER) {
		batch_failed(f->entries, f->last);
		ss.check = 1;
		ss.asking = 0;
	} else {
		dropped_total += (uint64_t)(r->element[0]->integer > 0 ? r->element[0]->integer : 0);
		if (r->elements == 4 && r->element[3]->type == REDIS_REPLY_INTEGER) {
			ss.head_e = (uint64_t)r->element[1]->integer;
			ss.head_b = (uint64_t)r->element[2]->integer;
			ss.head_until = ev_now(clock_loop) + (double)r->element[3]->integer / 1000.;
			ss.asking = 0;
		}
	}
	free(f);
}

/* Sends the batch: EVALSHA once Redis has the script, EVAL until then. */
static void batch_flush(void)
{
	struct batch *b = &ss.batch;
	size_t argc = 3 + 3 + b->nkeys + 15 + b->nmsgs + b->nkeys, k = 0;
	uint64_t events = ss.logged + b->nlog, bytes = ss.logged_bytes + b->log.len;
	/* What the head was when last told errs old: a bound passed is seen. */
	int check = ss.check ||
		    (!ss.asking &&
		     (events - ss.head_e > (uint64_t)settings.redis_recovery_max_events ||
		      bytes - ss.head_b > settings.redis_recovery_max_bytes ||
		      ev_now(clock_loop) >= ss.head_until));
	const char **argv;
	size_t *lens;
	char num[13][24];
	struct flushed *f;

	if (!b->nlog && !b->nkeys)
		return;
	argv = xcalloc(argc, sizeof(*argv));
	lens = xcalloc(argc, sizeof(*lens));
#define ARG(s, n) (argv[k] = (s), lens[k++] = (n))
#define NUM(i, fmt, v) ARG(num[i], (size_t)snprintf(num[i], sizeof(num[i]), fmt, v))
	ARG(ss.flush_sha[0] ? "EVALSHA" : "EVAL", ss.flush_sha[0] ? 7 : 4);
	if (ss.flush_sha[0])
		ARG(ss.flush_sha, strlen(ss.flush_sha));
	else
		ARG(flush_lua, sizeof(flush_lua) - 1);
	NUM(0, "%zu", 3 + b->nkeys);
	ARG(ss.log_key, strlen(ss.log_key));
	ARG(ss.index_key, strlen(ss.index_key));
	ARG(ss.meta_key, strlen(ss.meta_key));
	for (size_t i = 0; i < b->nkeys; i++)
		ARG(b->keys[i].p, b->keys[i].len);
	NUM(1, "%d", settings.redis_recovery_max_events);
	NUM(2, "%zu", settings.redis_recovery_max_bytes);
	NUM(3, "%d", settings.recovery_window_ms);
	ARG(ss.ttl, strlen(ss.ttl));
	NUM(4, "%llu", (unsigned long long)ss.hole);
	NUM(5, "%zu", b->nlog);
	NUM(6, "%d", settings.redis_room_history);
	NUM(7, "%zu", b->nmsgs);
	NUM(8, "%llu", (unsigned long long)b->last);
	NUM(9, "%llu", (unsigned long long)ss.logged);
	NUM(10, "%llu", (unsigned long long)ss.logged_bytes);
	NUM(11, "%llu", (unsigned long long)events);
	NUM(12, "%llu", (unsigned long long)bytes);
	ARG(b->log.len ? b->log.p : "", b->log.len);
	ARG(check ? "1" : "0", 1);
	for (size_t i = 0; i < b->nmsgs; i++)
		ARG(b->msgs[i].p, b->msgs[i].len);
	/* Each history key's message, by its index (1-based) among them. */
	char (*idx)[24] = xcalloc(b->nkeys ? b->nkeys : 1, sizeof(*idx));
	for (size_t i = 0; i < b->nkeys; i++)
		ARG(idx[i], (size_t)snprintf(idx[i], sizeof(idx[i]), "%zu", b->key_msg[i] + 1));
#undef NUM
#undef ARG
	/* Counted as sent either way: a batch that did not get there leaves
	 * a hole, and the bounds then count it as held (they cut earlier). */
	ss.logged = events;
	ss.logged_bytes = bytes;
	if (check && b->nlog) {
		/* Until its answer, the next ones do not look again. */
		ss.check = 0;
		ss.asking = 1;
	}
	f = xmalloc(sizeof(*f));
	f->entries = b->nlog;
	f->last = b->last;
	if (cluster_command((int)k, argv, lens, on_flushed, f) == 0) {
		appends += f->entries;
		history_appends += b->nkeys;
	} else {
		batch_failed(f->entries, f->last);
		free(f);
	}
	free(idx);
	free(argv);
	free(lens);
	batch_clear(b);
}

/* Before the loop waits again (after every other callback of the
 * iteration: the lowest priority): what it logged and published goes. */
static void on_flush(struct ev_loop *loop, ev_prepare *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
	batch_flush();
}

static void batch_check(void)
{
	const struct batch *b = &ss.batch;

	if (b->nlog + b->nmsgs + b->nkeys >= BATCH_MAX_PIECES || b->bytes >= BATCH_MAX_BYTES ||
	    b->nlog * 4 >= (size_t)settings.redis_recovery_max_events)
		batch_flush();
}

static void put_names(struct out *o, const char *const *v, const size_t *lens, size_t n)
{
	out_num(o, n);
	for (size_t i = 0; i < n; i++)
		out_put(o, v[i], lens[i]);
}

/* An emit went into this node's recovery log: the same entry goes to
 * Redis (with this iteration's others), for a recovery elsewhere. */
static void on_logged(struct client *cl, const struct emit *e)
{
	const struct room_target *t = e->target;
	struct batch *b = &ss.batch;
	struct out o = { 0 };
	char id[24];

	out_put(&o, !t ? "S" : e->to_all ? "A" : "R", 1);
	out_put(&o, cl->nsp->name, cl->nsp->name_len);
	out_put(&o, e->name, e->name_len);
	out_put(&o, e->args ? e->args : "", e->args ? e->args_len : 0);
	out_num(&o, e->nargs);
	out_num(&o, e->natt);
	for (unsigned i = 0; i < e->natt; i++)
		out_put(&o, (const char *)frame_data(e->att[i]), e->att[i]->len);
	if (!t) {
		out_num(&o, 0);
		out_num(&o, 0);
		out_num(&o, 1);
		out_put(&o, cl->id, strlen(cl->id));
	} else {
		if (e->to_all)
			out_num(&o, 0);
		else
			put_names(&o, t->rooms, t->room_lens, t->nrooms);
		put_names(&o, t->except_rooms, t->except_lens, t->nexcept_rooms);
		out_num(&o, t->nexcept_sets);
		for (size_t i = 0; i < t->nexcept_sets; i++) {
			const char *sid = ((const struct client *)t->except_sets[i]->owner)->id;
			out_put(&o, sid, strlen(sid));
		}
	}
	out_put(&b->log, id, (size_t)snprintf(id, sizeof(id), "%llu",
					     (unsigned long long)e->offset));
	out_put(&b->log, o.p, o.len);
	b->nlog++;
	b->bytes += o.len;
	free(o.p);
	b->last = e->offset;
	batch_check();
}

/* Each broadcast this node publishes goes into the history of each room it
 * targets too (capped at PARLEY_REDIS_ROOM_HISTORY, living the window):
 * what a session of a node that died missed is read from there. The
 * message goes once with this iteration's batch, however many rooms. */
static void on_published(const struct nsp *n, int everyone, const struct room_target *t,
			 const char *msg, size_t len)
{
	struct batch *b = &ss.batch;
	size_t nrooms = everyone ? 1 : t->nrooms;

	batch_grow(&b->msgs, b->nmsgs, &b->msgcap, 1);
	b->msgs[b->nmsgs] = (struct piece){ xmalloc(len ? len : 1), len };
	memcpy(b->msgs[b->nmsgs++].p, msg, len);
	b->bytes += len;
	size_t had = b->keycap;
	batch_grow(&b->keys, b->nkeys, &b->keycap, nrooms);
	if (b->keycap != had)
		b->key_msg = xrealloc(b->key_msg, b->keycap * sizeof(*b->key_msg));
	for (size_t i = 0; i < nrooms; i++) {
		struct out k = { 0 };
		size_t rlen = everyone ? 0 : t->room_lens[i];
		k.cap = 32 + n->name_len + rlen;
		k.p = xmalloc(k.cap);
		k.len = (size_t)snprintf(k.p, k.cap, "{parley}:hist:%.*s:%s", (int)n->name_len,
					 n->name, everyone ? "everyone" : "room:");
		if (!everyone) {
			memcpy(k.p + k.len, t->rooms[i], rlen);
			k.len += rlen;
		}
		b->key_msg[b->nkeys] = b->nmsgs - 1;
		b->keys[b->nkeys++] = (struct piece){ k.p, k.len };
	}
	batch_check();
}

/* ---- the records of this node's sockets ---- */

/* The part of a record a claim checks: the user's, then the namespace and
 * the parser. */
static void put_prefix(struct out *o, const char *user, const struct nsp *n, int format,
		       size_t *user_part)
{
	char f = (char)('0' + format);

	out_put(o, user, strlen(user));
	if (user_part)
		*user_part = o->len;
	out_put(o, n->name, n->name_len);
	out_put(o, &f, 1);
}

static void on_changed(struct client *cl)
{
	struct out o = { 0 };
	uint64_t floor, born = recovery_born(cl->rec, &floor);
	const struct left_room *const *left;
	uint32_t nleft;
	const char *pid = recovery_pid(cl->rec);

	put_prefix(&o, cl->user_id, cl->nsp, cl->format, NULL);
	out_put(&o, cl->id, strlen(cl->id));
	out_num(&o, born);
	out_num(&o, floor);
	/* Recovered here from another node: the client's offset then, one
	 * of that node's (0 stored as 1: none). */
	uintptr_t alien = (uintptr_t)map_get(&ss.adopted, pid, strlen(pid));
	out_num(&o, alien ? alien - 1 : 0);
	out_num(&o, (uint64_t)cl->connected_at);
	out_num(&o, cl->rooms.count);
	for (uint32_t i = 0; i < cl->rooms.count; i++) {
		const struct room *r = cl->rooms.v[i].room;
		out_put(&o, r->name, r->name_len);
		out_num(&o, cl->rooms.v[i].stamp);
	}
	left = recovery_left_rooms(cl->rec, &nleft);
	out_num(&o, nleft);
	for (uint32_t i = 0; i < nleft; i++) {
		out_put(&o, left[i]->name, left[i]->len);
		out_num(&o, left[i]->since);
		out_num(&o, left[i]->until);
	}
	const char *argv[] = { "HSET", ss.sess_key, pid, o.p };
	size_t lens[] = { 4, strlen(ss.sess_key), strlen(pid), o.len };
	/* Redis down: the record is not there, and a claim elsewhere gives a
	 * new session (this node still recovers it itself). */
	if (cluster_command(4, argv, lens, NULL, NULL) == 0) {
		/* Expiring from its first write (the refresh keeps it). */
		const char *exp[] = { "PEXPIRE", ss.sess_key, ss.ttl };
		size_t elens[] = { 7, strlen(ss.sess_key), strlen(ss.ttl) };
		cluster_command(3, exp, elens, NULL, NULL);
		records_written++;
	}
	free(o.p);
}

static void on_gone(struct client *cl)
{
	const char *pid = recovery_pid(cl->rec);
	const char *argv[] = { "HDEL", ss.sess_key, pid };
	size_t lens[] = { 4, strlen(ss.sess_key), strlen(pid) };

	cluster_command(3, argv, lens, NULL, NULL);
	/* Its forward key (if it was recovered here) expires by itself: a
	 * claim that follows it finds no record. It is not deleted here,
	 * since another node may have recovered the session just now and
	 * pointed it at itself. */
	if (map_get(&ss.adopted, pid, strlen(pid))) {
		map_del(&ss.adopted, pid, strlen(pid));
		adopted_count--;
	}
}

static void set_forward(const char *pid)
{
	char key[64];
	const char *argv[] = { "SET", key, ss.inc, "PX", ss.ttl };
	size_t lens[] = { 3, (size_t)snprintf(key, sizeof(key), "{parley}:rfwd:%s", pid), INC_LEN,
			  2, strlen(ss.ttl) };

	cluster_command(5, argv, lens, NULL, NULL);
}

/* Every few seconds: this node's keys live on while it does, and die a
 * window (and the liveness TTL) after it. */
static void on_refresh(struct ev_loop *loop, ev_timer *w, int revents)
{
	const char *keys[] = { ss.sess_key, ss.log_key, ss.index_key, ss.meta_key };
	struct map_iter it;
	struct map_entry *e;

	(void)loop;
	(void)w;
	(void)revents;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *argv[] = { "PEXPIRE", keys[i], ss.ttl };
		size_t lens[] = { 7, strlen(keys[i]), strlen(ss.ttl) };
		cluster_command(3, argv, lens, NULL, NULL);
	}
	map_iter_init(&it, &ss.adopted);
	while ((e = map_next(&it))) {
		char key[64];
		const char *argv[] = { "PEXPIRE", key, ss.ttl };
		size_t lens[] = { 7, (size_t)snprintf(key, sizeof(key), "{parley}:rfwd:%.*s",
						      (int)e->klen, (const char *)e->key),
				  strlen(ss.ttl) };
		cluster_command(3, argv, lens, NULL, NULL);
	}
}

/* Another node recovered a session: when it was held here, it ends. */
static void on_claimed(const char *data, size_t len)
{
	if (len <= INC_LEN || memcmp(data, ss.inc, INC_LEN) != 0)
		return;
	if (recovery_drop(data + INC_LEN, len - INC_LEN, "recovered on another node") == 0)
		log_info("cluster: a session held here was recovered on another node: ended");
}

/* ---- a claim of another node's session ---- */

/* A record, read. */
struct record {
	const char *sid;
	size_t sid_len;
	uint64_t born, floor;
	uint64_t alien; /* the client's offset of another node when it was recovered here */
	uint64_t since_ms; /* when the socket connected */
	uint64_t nrooms, nleft;
	const char *rooms; /* the netstrings of the rooms, from here */
	const char *left;
	const char *end;
};

struct claim {
	char fresh[24];            /* the socket the CONNECT made */
	char pid[RECOVERY_PID_MAX + 1];
	int has_offset;
	uint64_t offset;
	void (*answer)(struct client *cl);
	size_t nrooms;             /* the rooms it had, left while it waits */
	char **rooms;
	size_t *lens;
};

static void claim_free(struct claim *c)
{
	for (size_t i = 0; i < c->nrooms; i++)
		free(c->rooms[i]);
	free(c->rooms);
	free(c->lens);
	free(c);
}

static int read_record(const char *p, size_t len, struct record *r)
{
	const char *end = p + len, *s;
	size_t n;

	memset(r, 0, sizeof(*r));
	r->end = end;
	/* user, namespace, parser: the claim matched them */
	for (int i = 0; i < 3; i++)
		if (in_get(&p, end, &s, &n) < 0)
			return -1;
	if (in_get(&p, end, &r->sid, &r->sid_len) < 0 || in_num(&p, end, &r->born) < 0 ||
	    in_num(&p, end, &r->floor) < 0 || in_num(&p, end, &r->alien) < 0 ||
	    in_num(&p, end, &r->since_ms) < 0 || in_num(&p, end, &r->nrooms) < 0)
		return -1;
	r->rooms = p;
	for (uint64_t i = 0; i < r->nrooms; i++) {
		uint64_t stamp;
		if (in_get(&p, end, &s, &n) < 0 || in_num(&p, end, &stamp) < 0)
			return -1;
	}
	if (in_num(&p, end, &r->nleft) < 0)
		return -1;
	r->left = p;
	for (uint64_t i = 0; i < r->nleft; i++) {
		uint64_t a, b;
		if (in_get(&p, end, &s, &n) < 0 || in_num(&p, end, &a) < 0 ||
		    in_num(&p, end, &b) < 0)
			return -1;
	}
	return 0;
}

/* Was the session in the room `name` when the event of offset `o` went?
 * (hub/recovery.c's was_in, on the record.) */
static int was_in(const struct record *r, const char *name, size_t len, uint64_t o)
{
	/* The record was checked whole when read: these are set below. */
	const char *p = r->rooms, *s = NULL;
	size_t n = 0;
	uint64_t a = 0, b = 0;

	for (uint64_t i = 0; i < r->nrooms; i++) {
		in_get(&p, r->end, &s, &n);
		in_num(&p, r->end, &a);
		if (n == len && memcmp(s, name, len) == 0 && a < o)
			return 1;
	}
	p = r->left;
	for (uint64_t i = 0; i < r->nleft; i++) {
		in_get(&p, r->end, &s, &n);
		in_num(&p, r->end, &a);
		in_num(&p, r->end, &b);
		if (n == len && memcmp(s, name, len) == 0 && a < o && o <= b)
			return 1;
	}
	return 0;
}

/* An entry of the log, read: what to send, and whether it went to the
 * session of `r`. -1 when malformed. */
static int read_entry(const char *p, size_t len, uint64_t offset, const struct record *r,
		      const struct nsp *n, struct emit *e, struct frame **att, size_t max_att,
		      int *went)
{
	const char *end = p + len, *kind, *s;
	size_t klen, slen;
	uint64_t nargs, natt, count;
	int in;

	memset(e, 0, sizeof(*e));
	*went = 0;
	if (in_get(&p, end, &kind, &klen) < 0 || klen != 1 || in_get(&p, end, &s, &slen) < 0)
		return -1;
	if (slen != n->name_len || memcmp(s, n->name, slen) != 0 || offset <= r->born)
		return 0; /* another namespace's, or from before the session */
	if (in_get(&p, end, &e->name, &e->name_len) < 0 ||
	    in_get(&p, end, &e->args, &e->args_len) < 0 || in_num(&p, end, &nargs) < 0 ||
	    in_num(&p, end, &natt) < 0 || natt > max_att)
		return -1;
	e->nargs = (unsigned)nargs;
	if (!e->args_len)
		e->args = NULL;
	for (uint64_t i = 0; i < natt; i++) {
		if (in_get(&p, end, &s, &slen) < 0)
			return -1;
		att[i] = frame_new(s, slen, 1);
		e->natt++;
	}
	e->att = att;
	in = kind[0] == 'A';
	if (in_num(&p, end, &count) < 0)
		return -1;
	for (uint64_t i = 0; i < count; i++) {
		if (in_get(&p, end, &s, &slen) < 0)
			return -1;
		if (!in && was_in(r, s, slen, offset))
			in = 1;
	}
	if (in_num(&p, end, &count) < 0)
		return -1;
	for (uint64_t i = 0; i < count; i++) {
		if (in_get(&p, end, &s, &slen) < 0)
			return -1;
		if (in && was_in(r, s, slen, offset))
			in = 0;
	}
	if (in_num(&p, end, &count) < 0)
		return -1;
	for (uint64_t i = 0; i < count; i++) {
		if (in_get(&p, end, &s, &slen) < 0)
			return -1;
		int same = slen == r->sid_len && memcmp(s, r->sid, slen) == 0;
		/* One socket's own emit: it is the socket named. */
		if (kind[0] == 'S')
			in = same;
		else if (same)
			in = 0;
	}
	*went = in;
	return 0;
}

static void rejoin(struct client *cl, const struct claim *c)
{
	for (size_t i = 0; i < c->nrooms; i++)
		client_join(cl, c->rooms[i], c->lens[i]);
}

/* The missed entries (the log's batches that end after the client's
 * offset `from`: those of its entries after it), sent again as this node's
 * own emits to the socket: each gets an offset of this node (and goes into
 * its log, and so into Redis), so that the client's offset stays one this
 * node's log knows. 0, or -1 when an entry did not read. */
static int replay(struct client *cl, const struct record *r, const redisReply *batches,
		  uint64_t from)
{
	for (size_t i = 0; i < batches->elements; i++) {
		const redisReply *d = batches->element[i]->element[1]->element[1];
		const char *p = d->str, *end = d->str + d->len;
		while (p < end) {
			struct frame *att[64];
			struct emit e;
			const char *s;
			size_t len;
			uint64_t offset;
			int went, rc;
			if (in_num(&p, end, &offset) < 0 || in_get(&p, end, &s, &len) < 0)
				return -1;
			if (offset <= from)
				continue;
			rc = read_entry(s, len, offset, r, cl->nsp, &e, att,
					sizeof(att) / sizeof(att[0]), &went);
			if (rc == 0 && went && cl->conn)
				client_emit(cl, &e);
			emit_fini(&e);
			for (unsigned k = 0; k < e.natt; k++)
				frame_unref(att[k]);
			if (rc < 0)
				return -1;
		}
	}
	return 0;
}

/* Did the broadcast `m` of a room's history go to the session of `r`
 * (its rooms now, not an excepted room, not its socket)? */
static int history_went_to(const struct record *r, const struct relay_msg *m)
{
	int in = m->everyone;

	for (size_t i = 0; !in && i < m->rooms.n; i++)
		in = was_in(r, m->rooms.v[i], m->rooms.lens[i], UINT64_MAX);
	for (size_t i = 0; in && i < m->except_rooms.n; i++)
		in = !was_in(r, m->except_rooms.v[i], m->except_rooms.lens[i], UINT64_MAX);
	for (size_t i = 0; in && i < m->except_sids.n; i++)
		in = !(m->except_sids.lens[i] == r->sid_len &&
		       memcmp(m->except_sids.v[i], r->sid, r->sid_len) == 0);
	return in;
}

/* A stream id's parts, to order the rooms' histories by. */
static void stream_id(const char *s, uint64_t *ms, uint64_t *seq)
{
	char *end;

	*ms = strtoull(s, &end, 10);
	*seq = *end == '-' ? strtoull(end + 1, NULL, 10) : 0;
}

/* The broadcasts of the session's rooms since its node last logged (in
 * `hist`, one list per room), oldest first, each once however many of its
 * rooms it went to: what its node did not deliver (it died, or had not
 * yet had them). */
static void replay_history(struct client *cl, const struct record *r, const redisReply *hist)
{
	size_t n = hist->elements;
	size_t *at = xcalloc(n ? n : 1, sizeof(*at));
	struct map seen;

	map_init(&seen);
	for (;;) {
		size_t best = n;
		uint64_t best_ms = 0, best_seq = 0;
		for (size_t i = 0; i < n; i++) {
			uint64_t ms, seq;
			if (at[i] >= hist->element[i]->elements)
				continue;
			stream_id(hist->element[i]->element[at[i]]->element[0]->str, &ms, &seq);
			if (best == n || ms < best_ms || (ms == best_ms && seq < best_seq)) {
				best = i;
				best_ms = ms;
				best_seq = seq;
			}
		}
		if (best == n || !cl->conn)
			break;
		const redisReply *v = hist->element[best]->element[at[best]++]->element[1]->element[1];
		struct relay_msg m;
		char key[300];
		if (relay_decode(v->str, v->len, &m) < 0)
			continue;
		int klen = snprintf(key, sizeof(key), "%.*s/%llx/%llu", (int)m.origin_len, m.origin,
				    (unsigned long long)m.incarnation, (unsigned long long)m.serial);
		if (klen > 0 && (size_t)klen < sizeof(key) && !map_get(&seen, key, (size_t)klen) &&
		    m.nsp_len == cl->nsp->name_len && memcmp(m.nsp, cl->nsp->name, m.nsp_len) == 0 &&
		    history_went_to(r, &m)) {
			struct frame **att = xcalloc(m.att.n ? m.att.n : 1, sizeof(*att));
			struct emit e;
			map_put(&seen, key, (size_t)klen, (void *)1);
			memset(&e, 0, sizeof(e));
			e.name = m.event;
			e.name_len = m.event_len;
			e.args = m.args;
			e.args_len = m.args_len;
			e.nargs = m.nargs;
			for (size_t i = 0; i < m.att.n; i++)
				att[i] = frame_new(m.att.v[i], m.att.lens[i], 1);
			e.att = att;
			e.natt = (unsigned)m.att.n;
			client_emit(cl, &e);
			emit_fini(&e);
			for (size_t i = 0; i < m.att.n; i++)
				frame_unref(att[i]);
			free(att);
		}
		relay_msg_fini(&m);
	}
	map_fini(&seen);
	free(at);
}

/* Whether the claim's reply is a whole {'ok', ...}: its parts checked. */
static int reply_ok(const redisReply *r)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 7 ||
	    r->element[6]->type != REDIS_REPLY_ARRAY)
		return 0;
	for (size_t i = 0; i < r->element[6]->elements; i++) {
		const redisReply *h = r->element[6]->element[i];
		if (h->type != REDIS_REPLY_ARRAY)
			return 0;
		for (size_t k = 0; k < h->elements; k++) {
			const redisReply *x = h->element[k];
			if (x->type != REDIS_REPLY_ARRAY || x->elements != 2 ||
			    x->element[1]->type != REDIS_REPLY_ARRAY ||
			    x->element[1]->elements != 2 ||
			    x->element[1]->element[1]->type != REDIS_REPLY_STRING)
				return 0;
		}
	}
	for (size_t i = 0; i < 5; i++)
		if (r->element[i]->type != REDIS_REPLY_STRING)
			return 0;
	if (r->element[5]->type != REDIS_REPLY_ARRAY)
		return 0;
	for (size_t i = 0; i < r->element[5]->elements; i++) {
		const redisReply *x = r->element[5]->element[i];
		if (x->type != REDIS_REPLY_ARRAY || x->elements != 2 ||
		    x->element[0]->type != REDIS_REPLY_STRING)
			return 0;
		const redisReply *f = x->element[1];
		if (f->type != REDIS_REPLY_ARRAY || f->elements != 2)
			return 0;
		for (size_t k = 0; k < 2; k++)
			if (f->element[k]->type != REDIS_REPLY_STRING)
				return 0;
	}
	return 1;
}

static void on_claim(void *arg, const redisReply *r)
{
	struct claim *c = arg;
	struct client *cl = client_find(c->fresh, strlen(c->fresh));
	struct record rec;
	const char *why = NULL;
	int result;

	if (!cl || cl->closing || !cl->conn) {
		claims[CLIENT_GONE]++;
		goto out;
	}
	if (!r || r->type == REDIS_REPLY_ERROR) {
		result = UNKNOWN_PID;
		why = "Redis did not answer the claim";
	} else if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
		   r->element[0]->type == REDIS_REPLY_STRING &&
		   strcmp(r->element[0]->str, "other") == 0) {
		result = OTHER_USER;
		why = "the pid is another user's session";
	} else if (!reply_ok(r)) {
		result = UNKNOWN_PID;
		why = "a pid that names no session in the cluster";
	} else if (read_record(r->element[1]->str, r->element[1]->len, &rec) < 0) {
		result = UNKNOWN_PID;
		why = "its record does not read";
	} else {
		uint64_t dropped = strtoull(r->element[2]->str, NULL, 10);
		uint64_t from = c->has_offset ? c->offset : rec.born;
		const redisReply *entries = r->element[5];
		/* An offset the client had from the node it recovered on before
		 * this record's (it got nothing there since): from its start. */
		if (c->has_offset && rec.alien && c->offset == rec.alien)
			from = rec.born;
		/* As on one node (recovery_claim): every event after the
		 * client's offset must be there, and the rooms it left then
		 * remembered. (Entries older than the window may be gone: the
		 * client got them, or they were not its; the record itself
		 * lives a window after its node.) */
		if ((c->has_offset && c->offset == 0) || dropped > from || from < rec.floor) {
			result = LOG_LOST;
			why = "the log in Redis no longer holds every event it missed "
			      "(PARLEY_REDIS_RECOVERY_MAX_EVENTS, PARLEY_REDIS_RECOVERY_MAX_BYTES, "
			      "PARLEY_RECOVERY_WINDOW)";
		} else {
			char sid[64];
			const char *p = rec.rooms, *s = NULL;
			size_t n = 0;
			uint64_t stamp;
			snprintf(sid, sizeof(sid), "%.*s", (int)(rec.sid_len < 40 ? rec.sid_len : 0),
				 rec.sid);
			client_adopt(cl, sid);
			recovery_set_pid(cl->rec, c->pid, strlen(c->pid));
			map_put(&ss.adopted, c->pid, strlen(c->pid),
				(void *)(uintptr_t)((c->has_offset ? c->offset : 0) + 1));
			adopted_count++;
			set_forward(c->pid);
			/* The rooms it was in (a room past PARLEY_MAX_ROOMS is one
			 * a script let it join: as here). */
			for (uint64_t i = 0; i < rec.nrooms; i++) {
				in_get(&p, rec.end, &s, &n);
				in_num(&p, rec.end, &stamp);
				client_join(cl, s, n);
			}
			rejoin(cl, c);
			/* Its origin node, if it still holds the socket, lets it go. */
			char msg[INC_LEN + RECOVERY_PID_MAX + 1];
			const char *argv[] = { "SPUBLISH", SESSIONS_CHANNEL, msg };
			size_t lens[] = { 8, sizeof(SESSIONS_CHANNEL) - 1,
					  (size_t)snprintf(msg, sizeof(msg), "%.16s%s",
							   r->element[4]->str, c->pid) };
			cluster_command(3, argv, lens, NULL, NULL);
			claims[RECOVERED]++;
			log_info("%s (%s): recovered a session of node %s (%zu batches of its log after offset "
				 "%llu)", cl->id, cl->user_id, r->element[4]->str, entries->elements,
				 (unsigned long long)from);
			c->answer(cl);
			if (replay(cl, &rec, entries, c->has_offset ? c->offset : 0) < 0)
				log_warn("cluster: an entry of the recovery log in Redis does not "
					 "read: the replay stopped there");
			replay_history(cl, &rec, r->element[6]);
			client_connected(cl);
			goto out;
		}
	}
	claims[result]++;
	log_info("%s (%s): recovery refused: %s: a new session", cl->id, cl->user_id, why);
	rejoin(cl, c);
	c->answer(cl);
	client_connected(cl);
out:
	claim_free(c);
}

/* Is `pid` another node's? It ends with an incarnation that is not ours
 * (a pid of this node, or one this node recovered and holds, is for
 * recovery_claim). */
static int on_claim_start(struct client *cl, const char *pid, size_t pid_len, int has_offset,
			  uint64_t offset, void (*answer)(struct client *cl))
{
	struct claim *c;
	char prefix[1024], user_part[600];
	struct out o = { 0 };
	size_t upart;

	if (pid_len != RECOVERY_PID_MAX || recovery_holds(pid, pid_len) ||
	    memcmp(pid + pid_len - INC_LEN, ss.inc, INC_LEN) == 0 || !cluster_is_up())
		return 0;
	put_prefix(&o, cl->user_id, cl->nsp, cl->format, &upart);
	if (o.len >= sizeof(prefix)) {
		free(o.p);
		return 0;
	}
	memcpy(prefix, o.p, o.len);
	memcpy(user_part, o.p, upart < sizeof(user_part) ? upart : 0);
	c = xcalloc(1, sizeof(*c));
	snprintf(c->fresh, sizeof(c->fresh), "%s", cl->id);
	memcpy(c->pid, pid, pid_len);
	c->has_offset = has_offset;
	c->offset = offset;
	c->answer = answer;
	/* Until the claim is settled the socket is in no room: nothing may
	 * reach the client before its CONNECT answer and the events it
	 * missed. */
	c->nrooms = cl->rooms.count;
	c->rooms = xcalloc(c->nrooms ? c->nrooms : 1, sizeof(*c->rooms));
	c->lens = xcalloc(c->nrooms ? c->nrooms : 1, sizeof(*c->lens));
	for (size_t i = 0; i < c->nrooms; i++) {
		const struct room *r = cl->rooms.v[i].room;
		c->rooms[i] = xstrndup(r->name, r->name_len);
		c->lens[i] = r->name_len;
	}
	room_leave_all(cl->nsp, &cl->rooms);

	char from[24];
	const char *args[] = { pid, pid + pid_len - INC_LEN, prefix, user_part, from };
	size_t lens[] = { pid_len, INC_LEN, o.len, upart,
			  (size_t)snprintf(from, sizeof(from), "%llu",
					   (unsigned long long)(has_offset ? offset : 0)) };
	free(o.p);
	if (run_script(ss.claim_sha, claim_lua, 5, args, lens, 0, on_claim, c) < 0) {
		rejoin(cl, c);
		claim_free(c);
		return 0;
	}
	return 1;
}

static const struct client_watch watch = {
	.logged = on_logged,
	.changed = on_changed,
	.gone = on_gone,
	.claim = on_claim_start,
};

void sessions_open(void)
{
	if (!cluster_node() || settings.recovery_window_ms <= 0)
		return;
	snprintf(ss.inc, sizeof(ss.inc), "%016llx", (unsigned long long)cluster_incarnation());
	snprintf(ss.sess_key, sizeof(ss.sess_key), "{parley}:rsess:%s", ss.inc);
	snprintf(ss.log_key, sizeof(ss.log_key), "{parley}:rlog:%s", ss.inc);
	snprintf(ss.index_key, sizeof(ss.index_key), "{parley}:rlog:%s:idx", ss.inc);
	snprintf(ss.meta_key, sizeof(ss.meta_key), "{parley}:rlog:%s:meta", ss.inc);
	snprintf(ss.ttl, sizeof(ss.ttl), "%d", settings.recovery_window_ms + SESSIONS_GRACE_MS);
	map_init(&ss.adopted);
	ss.check = 1;
	for (size_t i = 0; i < sizeof(sessions_metrics) / sizeof(sessions_metrics[0]); i++)
		metrics_register(&sessions_metrics[i]);
	recovery_set_pid_suffix(ss.inc);
	client_add_watch(&watch);
	cluster_on_up(on_up);
	cluster_listen(SESSIONS_CHANNEL, on_claimed);
	cluster_on_publish(on_published);
	ev_timer_init(&ss.refresh, on_refresh, SESSIONS_REFRESH_S, SESSIONS_REFRESH_S);
	ev_timer_start(clock_loop, &ss.refresh);
	/* Always on, and last of the iteration's prepare watchers: a batch
	 * filled by another one (a store reply's hooks, the drain) still goes
	 * before the loop waits. */
	ev_prepare_init(&ss.flush, on_flush);
	ev_set_priority(&ss.flush, EV_MINPRI);
	ev_prepare_start(clock_loop, &ss.flush);
	ss.on = 1;
}

void sessions_close(void)
{
	if (!ss.on)
		return;
	client_remove_watch(&watch);
	cluster_on_publish(NULL);
	recovery_set_pid_suffix(NULL);
	ev_timer_stop(clock_loop, &ss.refresh);
	batch_flush();
	ev_prepare_stop(clock_loop, &ss.flush);
	batch_clear(&ss.batch);
	free(ss.batch.log.p);
	free(ss.batch.msgs);
	free(ss.batch.keys);
	free(ss.batch.key_msg);
	memset(&ss.batch, 0, sizeof(ss.batch));
	map_fini(&ss.adopted);
	ss.on = 0;
}
