/* test_store.c - core/store/store.c alone: a real LMDB directory under a
 * temporary folder, the store's writer thread, and a libev loop this test
 * runs for the completions. No server, no Lua. The directory claim, point
 * reads of pending writes (the overlay) before their commit, scans (both
 * ways) and store_last of committed data only, group commit, completion
 * order, the failure barrier after a full map (MDB_MAP_FULL), a commit the
 * file size limit cuts short (-EFBIG, negative as every code the store
 * gives), and a close that waits for queued writes.
 *
 * To keep a write in flight for as long as a check needs, a child process
 * (forked first, before any thread) takes the environment's write lock on
 * request, as tests/harness/lmdb_hold.c does for the integration tests:
 * the writer's next transaction waits for it. */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>
#include <lmdb.h>

#include "check.h"
#include "base/error.h"
#include "store/store.h"

/* ---- the lock holder ---- */

static pid_t holder = -1;
static int to_holder = -1, from_holder = -1;

/* The child: "h<dir>\n" takes the write lock of the environment in <dir>
 * and answers 'H'; "r\n" lets it go and answers 'R'. Ends when its input
 * does. */
static void holder_main(int in, int out)
{
	FILE *f = fdopen(in, "r");
	char line[4096];
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;

	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		char answer = 'E';
		if (line[0] == 'h' && !env) {
			/* A map size of 0 takes the one the environment has. */
			if (mdb_env_create(&env) == 0 && mdb_env_set_mapsize(env, 0) == 0 &&
			    mdb_env_set_maxdbs(env, 64) == 0 &&
			    mdb_env_open(env, line + 1, MDB_NOTLS, 0600) == 0 &&
			    mdb_txn_begin(env, NULL, 0, &txn) == 0)
				answer = 'H';
		} else if (line[0] == 'r' && env) {
			mdb_txn_abort(txn);
			mdb_env_close(env);
			env = NULL;
			txn = NULL;
			answer = 'R';
		}
		if (write(out, &answer, 1) != 1)
			break;
	}
	_exit(0);
}

static void holder_start(void)
{
	int down[2], up[2];

	if (pipe(down) < 0 || pipe(up) < 0) {
		perror("pipe");
		exit(2);
	}
	holder = fork();
	if (holder < 0) {
		perror("fork");
		exit(2);
	}
	if (holder == 0) {
		close(down[1]);
		close(up[0]);
		holder_main(down[0], up[1]);
	}
	close(down[0]);
	close(up[1]);
	to_holder = down[1];
	from_holder = up[0];
}

/* Sends a command and returns the holder's one-byte answer. */
static char holder_ask(const char *cmd, const char *dir)
{
	char line[4096], answer = 0;
	int n = snprintf(line, sizeof(line), "%s%s\n", cmd, dir ? dir : "");

	if (write(to_holder, line, (size_t)n) != n || read(from_holder, &answer, 1) != 1)
		return 0;
	return answer;
}

static void holder_stop(void)
{
	if (holder <= 0)
		return;
	close(to_holder);
	close(from_holder);
	waitpid(holder, NULL, 0);
	holder = -1;
}

#define HOLD(dir) CHECK_INT(holder_ask("h", dir), 'H')
#define RELEASE() CHECK_INT(holder_ask("r", NULL), 'R')

/* ---- the loop and completions ---- */

static struct ev_loop *loop;
static int waiting;  /* completions not yet run */
static int finished; /* completions run so far, for their order */

struct rec {
	int done; /* how many times done() ran: once */
	int err;
	int order; /* its place among all completions */
	/* What a point read of `probe` gave from inside the callback. */
	const char *probe;
	char seen[16];
	int seen_rc;
};

static void on_done(void *arg, int err)
{
	struct rec *r = arg;

	r->done++;
	r->err = err;
	r->order = ++finished;
	waiting--;
	if (r->probe) {
		const void *v;
		size_t vl;
		r->seen_rc = store_get(STORE_KV, r->probe, strlen(r->probe), &v, &vl);
		if (r->seen_rc == 1 && vl < sizeof(r->seen))
			memcpy(r->seen, v, vl);
	}
}

static uint64_t submit(struct store_batch *b, struct rec *r)
{
	waiting++;
	return store_submit(b, on_done, r);
}

static void on_watchdog(struct ev_loop *l, ev_timer *t, int revents)
{
	(void)l;
	(void)t;
	(void)revents;
	/* Not a timing check: a completion that never comes would hang the
	 * test run instead of failing it. */
	fprintf(stderr, "test_store: completions never came (%d waiting)\n", waiting);
	holder_stop();
	_exit(1);
}

/* Runs the loop until every submitted batch has completed. */
static void run_completions(void)
{
	ev_timer watchdog;

	ev_timer_init(&watchdog, on_watchdog, 60., 0.);
	ev_timer_start(loop, &watchdog);
	while (waiting > 0)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &watchdog);
	/* As the server does between loop iterations. */
	store_read_done();
}

/* ---- helpers ---- */

static char root[] = "/tmp/parley-store-XXXXXX";

static const char *dir_in_root(const char *name)
{
	static char path[4][256];
	static int next;
	char *p = path[next++ & 3];

	snprintf(p, sizeof(path[0]), "%s/%s", root, name);
	return p;
}

static void put_str(struct store_batch *b, enum store_db db, const char *k, const char *v)
{
	store_put(b, db, k, strlen(k), v, strlen(v));
}

/* A point read of KV `k`: 1 and its value in `out`, 0, or an error. */
static int get_str(const char *k, char *out, size_t cap)
{
	const void *v;
	size_t vl;
	int rc = store_get(STORE_KV, k, strlen(k), &v, &vl);

	out[0] = '\0';
	if (rc == 1 && vl < cap) {
		memcpy(out, v, vl);
		out[vl] = '\0';
	}
	return rc;
}

/* A conversation key: id "\0" seq as 8 big-endian bytes. */
static size_t conv_key(unsigned char *out, const char *conv, uint64_t seq)
{
	size_t n = strlen(conv) + 1;

	memcpy(out, conv, n);
	for (int i = 0; i < 8; i++)
		out[n + i] = (unsigned char)(seq >> (56 - 8 * i));
	return n + 8;
}

struct scan_seen {
	int n;
	uint64_t seq[16];
	int stop_at; /* return non-zero at this call (1-based), 0: never */
};

static int on_scan(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct scan_seen *s = arg;
	const unsigned char *p = k;
	uint64_t seq = 0;

	(void)v;
	(void)vl;
	for (size_t i = kl - 8; i < kl; i++)
		seq = seq << 8 | p[i];
	if (s->n < 16)
		s->seq[s->n] = seq;
	s->n++;
	return s->stop_at && s->n == s->stop_at;
}

/* ---- the tests ---- */

static void test_claim(void)
{
	const char *dir = dir_in_root("claimed");
	const char *file = dir_in_root("a-file");
	char path[512], pid[32];
	FILE *f;

	/* Opening needs the claim first. */
	CHECK_INT(store_open(dir, 1 << 20, loop), -EINVAL);
	/* Not a directory. */
	f = fopen(file, "w");
	if (f)
		fclose(f);
	CHECK_INT(store_claim(file), -ENOTDIR);
	/* Made if missing, locked, our pid written in the lock file. */
	CHECK_INT(store_claim(dir), 0);
	snprintf(path, sizeof(path), "%s/parley.lock", dir);
	f = fopen(path, "r");
	if (CHECK(f != NULL)) {
		char want[32];
		snprintf(want, sizeof(want), "%ld\n", (long)getpid());
		CHECK(fgets(pid, sizeof(pid), f) != NULL);
		CHECK_STR(pid, want);
		fclose(f);
	}
	/* flock locks an open file, not a process: a second claim, even from
	 * this process, is refused while the first holds it. */
	CHECK_INT(store_claim(dir), -EBUSY);
}

static void test_write_read(void)
{
	struct rec r1 = { 0 }, r2 = { 0 }, r3 = { 0 };
	struct store_batch *b;
	char v[64];
	const void *p;
	size_t pl;

	b = store_batch_new();
	put_str(b, STORE_KV, "k1", "v1");
	put_str(b, STORE_USERS, "u1", "{\"name\":\"a\"}");
	store_put(b, STORE_MEMBERS, "c1\0u1", 5, "", 0);
	uint64_t seq = submit(b, &r1);
	CHECK(seq > 0);
	/* Before its completion a point read sees the batch's writes. */
	CHECK_UINT(store_pending(STORE_KV, "k1", 2), seq);
	CHECK_INT(get_str("k1", v, sizeof(v)), 1);
	CHECK_STR(v, "v1");
	CHECK_UINT(store_pending(STORE_KV, "k2", 2), 0);
	run_completions();
	CHECK_INT(r1.done, 1);
	CHECK_INT(r1.err, 0);
	/* After it, from the database. */
	CHECK_UINT(store_pending(STORE_KV, "k1", 2), 0);
	CHECK_INT(get_str("k1", v, sizeof(v)), 1);
	CHECK_STR(v, "v1");
	CHECK_INT(store_get(STORE_USERS, "u1", 2, &p, &pl), 1);
	CHECK_MEM(p, pl, "{\"name\":\"a\"}", 12);
	CHECK_INT(store_peek(STORE_USERS, "u1", 2, &p, &pl), 1);
	CHECK_MEM(p, pl, "{\"name\":\"a\"}", 12);
	/* An empty value is there, and empty. */
	CHECK_INT(store_get(STORE_MEMBERS, "c1\0u1", 5, &p, &pl), 1);
	CHECK_UINT(pl, 0);
	CHECK_INT(get_str("absent", v, sizeof(v)), 0);
	/* Keys beyond LMDB's bound are never there. */
	char longkey[600];
	memset(longkey, 'k', sizeof(longkey));
	CHECK_INT(store_get(STORE_KV, longkey, sizeof(longkey), &p, &pl), 0);
	store_read_done();

	/* A delete: gone for point reads at once, and after the commit. */
	b = store_batch_new();
	store_del(b, STORE_KV, "k1", 2);
	store_del(b, STORE_KV, "never-was", 9);
	submit(b, &r2);
	CHECK_INT(get_str("k1", v, sizeof(v)), 0);
	run_completions();
	CHECK_INT(r2.err, 0);
	CHECK_INT(get_str("k1", v, sizeof(v)), 0);

	/* An empty batch completes too (a wait for what came before). */
	submit(store_batch_new(), &r3);
	run_completions();
	CHECK_INT(r3.done, 1);
	CHECK_INT(r3.err, 0);
	CHECK(r3.order > r2.order);

	/* A batch that is not submitted is only freed. */
	b = store_batch_new();
	put_str(b, STORE_KV, "dropped", "x");
	store_batch_free(b);
	store_batch_free(NULL);
	CHECK_INT(get_str("dropped", v, sizeof(v)), 0);
	store_read_done();
}

/* While the writer waits for the lock: point reads see the newest pending
 * write, scans and store_last see only what is committed. */
static void test_overlay_before_commit(const char *dir)
{
	struct rec r1 = { 0 }, r2 = { 0 };
	unsigned char key[32];
	size_t kl = conv_key(key, "ov", 1);
	struct scan_seen seen = { 0 };
	unsigned char last[64];
	size_t ll = 0;
	char v[16];

	HOLD(dir);
	struct store_batch *b = store_batch_new();
	store_put(b, STORE_CONV, key, kl, "m1", 2);
	put_str(b, STORE_KV, "x", "1");
	uint64_t s1 = submit(b, &r1);
	b = store_batch_new();
	put_str(b, STORE_KV, "x", "2");
	uint64_t s2 = submit(b, &r2);
	CHECK(s2 > s1);
	/* The first batch's completion reads x: the second's write is still
	 * the one a read must see, committed or not. */
	r1.probe = "x";

	CHECK_INT(get_str("x", v, sizeof(v)), 1);
	CHECK_STR(v, "2");
	CHECK_UINT(store_pending(STORE_KV, "x", 1), s2);
	/* The conversation's database is only scanned: nothing pending in
	 * the overlay, nothing committed yet. */
	CHECK_UINT(store_pending(STORE_CONV, key, kl), 0);
	CHECK_INT(store_scan(STORE_CONV, "ov", 3, NULL, 0, 10, on_scan, &seen), 0);
	CHECK_INT(seen.n, 0);
	CHECK_INT(store_last(STORE_CONV, "ov", 3, last, sizeof(last), &ll), 0);
	store_read_done();
	/* Nothing completes while the lock is held. */
	ev_run(loop, EVRUN_NOWAIT);
	CHECK_INT(r1.done + r2.done, 0);

	RELEASE();
	run_completions();
	CHECK_INT(r1.err, 0);
	CHECK_INT(r2.err, 0);
	CHECK_INT(r1.order + 1, r2.order);
	CHECK_INT(r1.seen_rc, 1);
	CHECK_STR(r1.seen, "2");
	CHECK_INT(get_str("x", v, sizeof(v)), 1);
	CHECK_STR(v, "2");
	CHECK_INT(store_scan(STORE_CONV, "ov", 3, NULL, 0, 10, on_scan, &seen), 1);
	CHECK_INT(store_last(STORE_CONV, "ov", 3, last, sizeof(last), &ll), 1);
	CHECK_MEM(last, ll, key, kl);
	store_read_done();
}

/* Batches queued while the writer waits share its next transactions: ten
 * batches in at most two commits (the one it took before the lock was
 * let go, and the rest), completed in the order they were submitted. */
static void test_group_commit(const char *dir)
{
	struct rec r[10] = { { 0 } };
	uint64_t commits = store_commits, batches = store_batches;
	char k[16];

	HOLD(dir);
	for (int i = 0; i < 10; i++) {
		struct store_batch *b = store_batch_new();
		snprintf(k, sizeof(k), "g%d", i);
		put_str(b, STORE_KV, k, "v");
		submit(b, &r[i]);
	}
	RELEASE();
	run_completions();
	for (int i = 0; i < 10; i++) {
		CHECK_INT(r[i].done, 1);
		CHECK_INT(r[i].err, 0);
		if (i)
			CHECK_INT(r[i].order, r[i - 1].order + 1);
	}
	CHECK_UINT(store_batches - batches, 10);
	CHECK(store_commits - commits >= 1 && store_commits - commits <= 2);
}

static void test_scans(void)
{
	struct rec r = { 0 };
	unsigned char key[32], last[64], small[4];
	size_t kl, ll;
	struct store_batch *b = store_batch_new();

	/* c1: 1..5; c10 (the prefix "c1" without its NUL would take it in):
	 * 1..2; c2: 7. Written out of order. */
	static const uint64_t c1[] = { 3, 1, 5, 2, 4 };
	for (int i = 0; i < 5; i++) {
		kl = conv_key(key, "c1", c1[i]);
		store_put(b, STORE_CONV, key, kl, "m", 1);
	}
	for (uint64_t s = 1; s <= 2; s++) {
		kl = conv_key(key, "c10", s);
		store_put(b, STORE_CONV, key, kl, "m", 1);
	}
	kl = conv_key(key, "c2", 7);
	store_put(b, STORE_CONV, key, kl, "m", 1);
	submit(b, &r);
	run_completions();
	CHECK_INT(r.err, 0);

	/* Everything of c1, in key order. */
	struct scan_seen s = { 0 };
	CHECK_INT(store_scan(STORE_CONV, "c1", 3, NULL, 0, 100, on_scan, &s), 5);
	for (int i = 0; i < 5; i++)
		CHECK_UINT(s.seq[i], (uint64_t)i + 1);
	/* At most `limit`. */
	memset(&s, 0, sizeof(s));
	CHECK_INT(store_scan(STORE_CONV, "c1", 3, NULL, 0, 2, on_scan, &s), 2);
	CHECK_UINT(s.seq[1], 2);
	/* From a key on. */
	memset(&s, 0, sizeof(s));
	kl = conv_key(key, "c1", 3);
	CHECK_INT(store_scan(STORE_CONV, "c1", 3, key, kl, 100, on_scan, &s), 3);
	CHECK_UINT(s.seq[0], 3);
	CHECK_UINT(s.seq[2], 5);
	/* Until the callback says stop: that call counts. */
	memset(&s, 0, sizeof(s));
	s.stop_at = 2;
	CHECK_INT(store_scan(STORE_CONV, "c1", 3, NULL, 0, 100, on_scan, &s), 2);
	/* A prefix with nothing under it, and one past every key. */
	memset(&s, 0, sizeof(s));
	CHECK_INT(store_scan(STORE_CONV, "c3", 3, NULL, 0, 100, on_scan, &s), 0);
	CHECK_INT(store_scan(STORE_CONV, "zz", 2, NULL, 0, 100, on_scan, &s), 0);
	/* No prefix: every key of the database, test_overlay_before_commit's
	 * one included. */
	memset(&s, 0, sizeof(s));
	CHECK_INT(store_scan(STORE_CONV, "", 0, NULL, 0, 100, on_scan, &s), 9);

	/* Backwards: from the last key under the prefix (c10 follows c1's
	 * range and is not taken in), the last first, at most `limit`. */
	memset(&s, 0, sizeof(s));
	CHECK_INT(store_scan_back(STORE_CONV, "c1", 3, NULL, 0, 100, on_scan, &s), 5);
	for (int i = 0; i < 5; i++)
		CHECK_UINT(s.seq[i], (uint64_t)5 - i);
	memset(&s, 0, sizeof(s));
	CHECK_INT(store_scan_back(STORE_CONV, "c1", 3, NULL, 0, 2, on_scan, &s), 2);
	CHECK_UINT(s.seq[0], 5);
	CHECK_UINT(s.seq[1], 4);
	/* Before a key that is there (it is left out), and before one that is
	 * not (past the last: everything). */
	memset(&s, 0, sizeof(s));
	kl = conv_key(key, "c1", 3);
	CHECK_INT(store_scan_back(STORE_CONV, "c1", 3, key, kl, 100, on_scan, &s), 2);
	CHECK_UINT(s.seq[0], 2);
	CHECK_UINT(s.seq[1], 1);
	memset(&s, 0, sizeof(s));
	kl = conv_key(key, "c1", 99);
	CHECK_INT(store_scan_back(STORE_CONV, "c1", 3, key, kl, 100, on_scan, &s), 5);
	CHECK_UINT(s.seq[0], 5);
	/* Before the first: nothing. The last key of the database (c2's, with
	 * no key after it), a prefix with nothing under it, none at all. */
	memset(&s, 0, sizeof(s));
	kl = conv_key(key, "c1", 1);
	CHECK_INT(store_scan_back(STORE_CONV, "c1", 3, key, kl, 100, on_scan, &s), 0);
	CHECK_INT(store_scan_back(STORE_CONV, "c2", 3, NULL, 0, 100, on_scan, &s), 1);
	CHECK_UINT(s.seq[0], 7);
	memset(&s, 0, sizeof(s));
	CHECK_INT(store_scan_back(STORE_CONV, "c3", 3, NULL, 0, 100, on_scan, &s), 0);
	CHECK_INT(store_scan_back(STORE_CONV, "a", 2, NULL, 0, 100, on_scan, &s), 0);
	CHECK_INT(store_scan_back(STORE_CONV, "", 0, NULL, 0, 100, on_scan, &s), 0);
	/* Until the callback says stop. */
	s.stop_at = 3;
	CHECK_INT(store_scan_back(STORE_CONV, "c1", 3, NULL, 0, 100, on_scan, &s), 3);

	/* store_last: the highest key under the prefix, whether a key follows
	 * the prefix's range (c1: c10 does) or none does (c2). */
	CHECK_INT(store_last(STORE_CONV, "c1", 3, last, sizeof(last), &ll), 1);
	kl = conv_key(key, "c1", 5);
	CHECK_MEM(last, ll, key, kl);
	CHECK_INT(store_last(STORE_CONV, "c10", 4, last, sizeof(last), &ll), 1);
	kl = conv_key(key, "c10", 2);
	CHECK_MEM(last, ll, key, kl);
	CHECK_INT(store_last(STORE_CONV, "c2", 3, last, sizeof(last), &ll), 1);
	kl = conv_key(key, "c2", 7);
	CHECK_MEM(last, ll, key, kl);
	/* None, or a key larger than the room given, or no prefix. */
	CHECK_INT(store_last(STORE_CONV, "c3", 3, last, sizeof(last), &ll), 0);
	CHECK_INT(store_last(STORE_CONV, "a", 2, last, sizeof(last), &ll), 0);
	CHECK_INT(store_last(STORE_CONV, "c1", 3, small, sizeof(small), &ll), 0);
	CHECK_INT(store_last(STORE_CONV, "", 0, last, sizeof(last), &ll), 0);
	store_read_done();
}

/* A map too small for a batch: the batch fails with MDB_MAP_FULL, and so
 * does every batch submitted before the loop heard of it (a barrier: a
 * write derived from the lost one must not land), untried; a wait that
 * was pending fails too. What is submitted after goes in, unless it
 * depends on a lost write. */
static void test_map_full_barrier(void)
{
	const char *dir = dir_in_root("full");
	struct rec r0 = { 0 }, r1 = { 0 }, r2 = { 0 }, rw = { 0 }, r3 = { 0 }, r4 = { 0 },
		   r5 = { 0 }, r6 = { 0 };
	uint64_t heard = store_failures_heard(), failures = store_failures,
		 full = store_full_map;
	static struct rec filler[255];
	static char big[4000];
	char k[16], v[16];

	if (!CHECK_INT(store_claim(dir), 0) || !CHECK_INT(store_open(dir, 128 << 10, loop), 0))
		return;
	struct store_batch *b = store_batch_new();
	put_str(b, STORE_KV, "before", "kept");
	submit(b, &r0);
	run_completions();
	CHECK_INT(r0.err, 0);

	HOLD(dir);
	/* 64 values of 4 KB: twice the 32 pages of the map. */
	memset(big, 'b', sizeof(big));
	b = store_batch_new();
	for (int i = 0; i < 64; i++) {
		snprintf(k, sizeof(k), "big%d", i);
		store_put(b, STORE_KV, k, strlen(k), big, sizeof(big));
	}
	uint64_t s1 = submit(b, &r1);
	/* 255 small batches behind it: with it they fill the writer's
	 * largest transaction (GROUP_MAX, 256 batches), so the one after them
	 * commits in a later transaction than the full one, whenever the
	 * writer woke - it fails for the barrier, not for sharing the
	 * transaction that failed. */
	for (int i = 0; i < 255; i++) {
		b = store_batch_new();
		snprintf(k, sizeof(k), "f%d", i);
		put_str(b, STORE_KV, k, "f");
		submit(b, &filler[i]);
	}
	b = store_batch_new();
	put_str(b, STORE_KV, "derived", "x");
	submit(b, &r2);
	submit(store_batch_new(), &rw);
	RELEASE();
	run_completions();
	CHECK_INT(r1.err, MDB_MAP_FULL);
	for (int i = 0; i < 255; i++)
		if (!CHECK_INT(filler[i].err, MDB_MAP_FULL))
			break;
	CHECK_INT(r2.err, MDB_MAP_FULL);
	CHECK_INT(rw.err, MDB_MAP_FULL);
	CHECK(r1.order < r2.order && r2.order < rw.order);
	CHECK_UINT(store_failures_heard() - heard, 1);
	CHECK_UINT(store_failures - failures, 258);
	CHECK_UINT(store_full_map - full, 258);
	CHECK_INT(store_full(r1.err), STORE_FULL_MAP);
	/* Named in LMDB's words: the store handed them over as it opened. */
	CHECK_STR(parley_strerror(r1.err), "MDB_MAP_FULL: Environment mapsize limit reached");
	/* Nothing of them is read, from the overlay or the database. */
	CHECK_INT(get_str("derived", v, sizeof(v)), 0);
	CHECK_INT(get_str("big0", v, sizeof(v)), 0);
	CHECK_INT(get_str("before", v, sizeof(v)), 1);
	CHECK_STR(v, "kept");
	store_read_done();

	/* Heard: what comes next goes in, unless it depends on a lost write;
	 * a wait answers for every write before it, so it fails with that
	 * one. */
	b = store_batch_new();
	put_str(b, STORE_KV, "after", "y");
	submit(b, &r3);
	b = store_batch_new();
	put_str(b, STORE_KV, "depends", "z");
	store_batch_after(b, s1);
	submit(b, &r4);
	submit(store_batch_new(), &r5);
	run_completions();
	CHECK_INT(r3.err, 0);
	CHECK_INT(r4.err, MDB_MAP_FULL);
	CHECK_INT(r5.err, MDB_MAP_FULL);
	CHECK_INT(get_str("after", v, sizeof(v)), 1);
	CHECK_STR(v, "y");
	CHECK_INT(get_str("depends", v, sizeof(v)), 0);
	store_read_done();
	/* That failure was no new commit's: nothing more was heard, and a wait
	 * with no lost write before it completes. */
	CHECK_UINT(store_failures_heard() - heard, 1);
	submit(store_batch_new(), &r6);
	run_completions();
	CHECK_INT(r6.err, 0);
	store_close();
}

/* store_close waits for the writer to commit what is queued and runs its
 * completions; the directory is free again after it, the data there. */
static void test_close_commits(const char *dir)
{
	struct rec r = { 0 };
	char v[16];

	struct store_batch *b = store_batch_new();
	put_str(b, STORE_KV, "last", "words");
	submit(b, &r);
	store_close();
	CHECK_INT(r.done, 1);
	CHECK_INT(r.err, 0);

	if (!CHECK_INT(store_claim(dir), 0) || !CHECK_INT(store_open(dir, 64 << 20, loop), 0))
		return;
	CHECK_INT(get_str("last", v, sizeof(v)), 1);
	CHECK_STR(v, "words");
	CHECK_INT(get_str("x", v, sizeof(v)), 1);
	CHECK_STR(v, "2");
	store_read_done();
	store_close();
	/* Closing twice is harmless. */
	store_close();
}

static void test_errors(void)
{
	/* Errors are negative codes: errno's negated, LMDB's as LMDB gives
	 * them (negative already). */
	CHECK_INT(store_full(MDB_MAP_FULL), STORE_FULL_MAP);
	CHECK_INT(store_full(-ENOSPC), STORE_FULL_DISK);
	CHECK_INT(store_full(-EDQUOT), STORE_FULL_DISK);
	CHECK_INT(store_full(-EFBIG), STORE_FULL_DISK);
	CHECK_INT(store_full(-EIO), 0);
	CHECK_INT(store_full(ENOSPC), 0);
	CHECK_INT(store_full(0), 0);
	CHECK(strncmp(parley_strerror(-ENOSPC), "ENOSPC: ", 8) == 0);
	CHECK(strncmp(parley_strerror(-EFBIG), "EFBIG: ", 7) == 0);
	CHECK(strncmp(parley_strerror(-EIO), "EIO: ", 5) == 0);
	CHECK(strncmp(parley_strerror(-EACCES), "EACCES: ", 8) == 0);
}

/* A commit the file size limit cuts short (LMDB says EIO for the short
 * write, or EFBIG): its done(err) gets -EFBIG, a negative code as every
 * error of the store (it came positive, while a read's came negated), and
 * store_full says what is full is the disk. */
static void test_file_limit(void)
{
	const char *dir = dir_in_root("fsize");
	struct rec r0 = { 0 }, r1 = { 0 };
	uint64_t disk = store_full_disk;
	struct rlimit old, lim;
	struct stat st;
	char path[512], k[16];
	static char big[1 << 20];

	if (!CHECK_INT(store_claim(dir), 0) || !CHECK_INT(store_open(dir, 64 << 20, loop), 0))
		return;
	struct store_batch *b = store_batch_new();
	put_str(b, STORE_KV, "small", "x");
	submit(b, &r0);
	run_completions();
	CHECK_INT(r0.err, 0);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (!CHECK_INT(stat(path, &st), 0) || !CHECK_INT(getrlimit(RLIMIT_FSIZE, &old), 0)) {
		store_close();
		return;
	}
	/* The soft limit a page above the file: 4 MB more cannot fit. The
	 * writer blocks every signal, and SIGXFSZ is ignored here as well: the
	 * write fails instead of ending the process. */
	signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = (rlim_t)st.st_size + 4096;
	CHECK_INT(setrlimit(RLIMIT_FSIZE, &lim), 0);
	memset(big, 'b', sizeof(big));
	b = store_batch_new();
	for (int i = 0; i < 4; i++) {
		snprintf(k, sizeof(k), "big%d", i);
		store_put(b, STORE_KV, k, strlen(k), big, sizeof(big));
	}
	submit(b, &r1);
	run_completions();
	setrlimit(RLIMIT_FSIZE, &old);
	CHECK_INT(r1.err, -EFBIG);
	CHECK_INT(store_full(r1.err), STORE_FULL_DISK);
	CHECK_UINT(store_full_disk - disk, 1);
	store_close();
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(void)
{
	/* Before any thread: the child must not inherit a writer thread. */
	holder_start();
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 2;
	}
	loop = ev_loop_new(EVFLAG_AUTO);

	test_errors();
	test_claim();
	const char *dir = dir_in_root("claimed");
	if (CHECK_INT(store_open(dir, 64 << 20, loop), 0)) {
		test_write_read();
		test_overlay_before_commit(dir);
		test_group_commit(dir);
		test_scans();
		test_close_commits(dir);
	}
	test_map_full_barrier();
	test_file_limit();

	holder_stop();
	ev_loop_destroy(loop);
	nftw(root, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	return check_report("test_store");
}
