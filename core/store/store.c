/* store.c - the LMDB store (see store.h): the environment and its named
 * databases, write batches with an overlay of pending writes for point reads,
 * the writer thread that group-commits them, and short read transactions in
 * the loop thread. Uses LMDB, pthreads and libev (to wake the loop). */
#define _GNU_SOURCE
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <lmdb.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "base/map.h"
#include "base/metrics.h"

/* error.h's range of LMDB's codes is lmdb.h's. */
_Static_assert(PARLEY_LMDB_FIRST == MDB_KEYEXIST && PARLEY_LMDB_LAST == MDB_LAST_ERRCODE,
	       "error.h's LMDB range is not lmdb.h's");

#define KEY_MAX 511 /* LMDB's default largest key */
#define GROUP_MAX 256 /* batches per write transaction */
/* Less room than this left after a write failed with EIO: it failed for
 * want of room (see commit_error). */
#define ROOM_MIN (1 << 20)

uint64_t store_commits;
uint64_t store_batches;
uint64_t store_failures;
uint64_t store_full_map;
uint64_t store_full_disk;

static const char *const db_names[STORE_DB_COUNT] = {
	"kv", "messages", "conv", "status", "members", "userconv", "idem", "users", "seen", "meta",
	"annot", "hidden", "inbox", "recent", "parts",
};

/* One write, packed in its batch's buffer: the header, the key, the value. */
struct op {
	uint8_t db;
	uint8_t del;
	uint16_t klen;
	uint32_t vlen;
};

struct store_batch {
	struct store_batch *next;
	uint64_t seq;
	uint64_t heard;   /* failed commits the loop had heard of at submit */
	uint64_t after;   /* fails if a write batch from this seq on failed (0: none) */
	int after_set;    /* store_batch_after named it */
	uint64_t failure; /* the failed commit that failed it, numbered (0: none) */
	void (*done)(void *arg, int err);
	void *arg;
	int err;
	unsigned char *buf; /* packed ops */
	size_t len, cap;
};

/* A write not yet committed, as point reads must see it. Points into the
 * batch's buffer, which lives until the batch completes. */
struct pending {
	uint64_t seq;
	int deleted;
	const void *val;
	size_t vlen;
};

static MDB_env *env;
static MDB_dbi dbis[STORE_DB_COUNT];
static MDB_txn *rtxn; /* the loop thread's read transaction, live between
		       * its first read of a loop iteration and the iteration's end */
static int reading;   /* rtxn is renewed */
static void (*after_completions)(void);
static struct map overlay; /* db byte + key -> struct pending */
static uint64_t next_seq = 1;
static unsigned char *scratch; /* a copy of the last value read */
static size_t scratch_cap;

static pthread_t writer;
static int writer_running;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static struct store_batch *queue_head, *queue_tail; /* submitted, guarded by mu */
static struct store_batch *done_head, *done_tail;   /* committed, guarded by mu */
static int stopping;                                 /* guarded by mu */
static struct ev_loop *loop;
static ev_async wake;
/* A failed commit is a barrier (see store_submit): the loop thread counts
 * the failures it has heard of and the batches it has seen complete... */
static uint64_t failures_heard;
static uint64_t completed_upto;
/* ...and the writer thread the failures it made, the last one's error, and
 * the last write batch that failed. */
static uint64_t failures_made;
static int failure_err;
static uint64_t last_failed_seq;
static int owner_fd = -1; /* DIR/parley.lock, flock()ed while this process owns DIR */

/* An LMDB return code as error.h's: LMDB gives errno values as they are
 * (positive) and its own as negatives. */
static int lmdb_code(int rc)
{
	return rc > 0 ? -rc : rc;
}

int store_full(int err)
{
	return err == MDB_MAP_FULL ? STORE_FULL_MAP :
	       err == -ENOSPC || err == -EDQUOT || err == -EFBIG ? STORE_FULL_DISK : 0;
}

/* ---- batches ---- */

struct store_batch *store_batch_new(void)
{
	return xcalloc(1, sizeof(struct store_batch));
}

static void batch_add(struct store_batch *b, enum store_db db, int del, const void *key,
		      size_t klen, const void *val, size_t vlen)
{
	struct op op = { (uint8_t)db, (uint8_t)del, (uint16_t)klen, (uint32_t)vlen };
	size_t need = sizeof(op) + klen + vlen;

	if (klen == 0 || klen > KEY_MAX || vlen > UINT32_MAX) {
		/* A caller bug, not client input: keys are built by the core. */
		log_error("store: refused a key of %zu bytes", klen);
		abort();
	}
	if (b->len + need > b->cap) {
		b->cap = (b->len + need) * 2;
		b->buf = xrealloc(b->buf, b->cap);
	}
	memcpy(b->buf + b->len, &op, sizeof(op));
	memcpy(b->buf + b->len + sizeof(op), key, klen);
	if (vlen)
		memcpy(b->buf + b->len + sizeof(op) + klen, val, vlen);
	b->len += need;
}

void store_batch_free(struct store_batch *b)
{
	if (!b)
		return;
	free(b->buf);
	free(b);
}

void store_put(struct store_batch *b, enum store_db db, const void *key, size_t klen,
	       const void *val, size_t vlen)
{
	batch_add(b, db, 0, key, klen, val, vlen);
}

void store_del(struct store_batch *b, enum store_db db, const void *key, size_t klen)
{
	batch_add(b, db, 1, key, klen, NULL, 0);
}

/* Walks the ops of a batch: calls `fn` with each. */
static void batch_each(struct store_batch *b,
		       void (*fn)(struct store_batch *b, const struct op *op, const unsigned char *key,
				  const unsigned char *val, void *arg),
		       void *arg)
{
	size_t at = 0;

	while (at < b->len) {
		struct op op;
		memcpy(&op, b->buf + at, sizeof(op));
		const unsigned char *key = b->buf + at + sizeof(op);
		fn(b, &op, key, key + op.klen, arg);
		at += sizeof(op) + op.klen + op.vlen;
	}
}

/* The databases only scanned, never read by key (store_get refuses them):
 * their pending writes need no place in the overlay. */
static int scanned_only(enum store_db db)
{
	return db == STORE_CONV || db == STORE_USERCONV || db == STORE_RECENT || db == STORE_PARTS;
}

static size_t overlay_key(unsigned char *out, enum store_db db, const void *key, size_t klen)
{
	out[0] = (unsigned char)db;
	memcpy(out + 1, key, klen);
	return klen + 1;
}

/* The overlay's key of an op, in `k` (`*klen` bytes), its hash, and its
 * pending write if there is one. */
static struct pending *overlay_find(const struct op *op, const unsigned char *key,
				    unsigned char *k, size_t *klen, uint64_t *hash)
{
	*klen = overlay_key(k, op->db, key, op->klen);
	*hash = map_hash((const char *)k, *klen);
	return map_get_hashed(&overlay, (const char *)k, *klen, *hash);
}

static void overlay_add(struct store_batch *b, const struct op *op, const unsigned char *key,
			const unsigned char *val, void *arg)
{
	unsigned char k[1 + KEY_MAX];
	size_t klen;
	uint64_t hash;
	struct pending *p;

	(void)arg;
	if (scanned_only(op->db))
		return;
	p = overlay_find(op, key, k, &klen, &hash);
	if (!p) {
		p = xmalloc(sizeof(*p));
		map_put_hashed(&overlay, (const char *)k, klen, hash, p);
	}
	p->seq = b->seq;
	p->deleted = op->del;
	p->val = val;
	p->vlen = op->vlen;
}

/* The batch is committed (or failed): its writes are what the database says
 * now, unless a later batch wrote the same key. */
static void overlay_drop(struct store_batch *b, const struct op *op, const unsigned char *key,
			 const unsigned char *val, void *arg)
{
	unsigned char k[1 + KEY_MAX];
	size_t klen;
	uint64_t hash;
	struct pending *p;

	(void)val;
	(void)arg;
	if (scanned_only(op->db))
		return;
	p = overlay_find(op, key, k, &klen, &hash);
	if (p && p->seq == b->seq)
		free(map_del_hashed(&overlay, (const char *)k, klen, hash));
}

void store_batch_after(struct store_batch *b, uint64_t seq)
{
	b->after_set = 1;
	if (seq && (!b->after || seq < b->after))
		b->after = seq;
}

uint64_t store_pending(enum store_db db, const void *key, size_t klen)
{
	unsigned char k[1 + KEY_MAX];
	struct pending *p;

	if (scanned_only(db) || klen == 0 || klen > KEY_MAX)
		return 0;
	p = map_get(&overlay, (const char *)k, overlay_key(k, db, key, klen));
	return p ? p->seq : 0;
}

uint64_t store_failures_heard(void)
{
	return failures_heard;
}

uint64_t store_submit(struct store_batch *b, void (*done)(void *arg, int err), void *arg)
{
	b->seq = next_seq++;
	b->heard = failures_heard;
	/* A wait answers for every write not yet reported to the loop, unless
	 * it was told which one it waits for. */
	if (b->len == 0 && !b->after_set)
		store_batch_after(b, completed_upto + 1);
	b->done = done;
	b->arg = arg;
	batch_each(b, overlay_add, NULL);
	pthread_mutex_lock(&mu);
	if (queue_tail)
		queue_tail->next = b;
	else
		queue_head = b;
	queue_tail = b;
	pthread_cond_signal(&cv);
	pthread_mutex_unlock(&mu);
	return b->seq;
}

/* ---- the writer thread ---- */

struct apply {
	MDB_txn *txn;
	int err;
};

static void apply_op(struct store_batch *b, const struct op *op, const unsigned char *key,
		     const unsigned char *val, void *arg)
{
	struct apply *a = arg;
	MDB_val k = { op->klen, (void *)key };
	MDB_val v = { op->vlen, (void *)val };
	int rc;

	(void)b;
	if (a->err)
		return;
	if (op->del) {
		rc = mdb_del(a->txn, dbis[op->db], &k, NULL);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	} else {
		rc = mdb_put(a->txn, dbis[op->db], &k, &v, 0);
	}
	a->err = rc;
}

/* What a failed commit's error (a negative code) means. LMDB answers a
 * short write with EIO (its source says "short write, filesystem full?"):
 * a disk that filled up, or the file size limit reached, in the middle of
 * a write. Those are told from an I/O error by the room left. */
static int commit_error(int err)
{
	struct statvfs fs;
	struct stat st;
	struct rlimit lim;
	int fd;

	if (err != -EIO || mdb_env_get_fd(env, &fd) != 0)
		return err;
	if (fstatvfs(fd, &fs) == 0 &&
	    (uint64_t)(geteuid() == 0 ? fs.f_bfree : fs.f_bavail) * fs.f_frsize < ROOM_MIN)
		return -ENOSPC;
	if (getrlimit(RLIMIT_FSIZE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
	    fstat(fd, &st) == 0 && (uint64_t)st.st_size + ROOM_MIN > (uint64_t)lim.rlim_cur)
		return -EFBIG;
	return err;
}

/* Writes every batch of the list that is not doomed (below) in one
 * transaction; sets each batch's err. Returns how many failed. */
/* The writer's commits, each one write and fsync of LMDB's (the writer
 * thread observes; /metrics reads on the loop). */
static struct metrics_histogram commit_seconds = {
	.name = "parley_store_commit_seconds",
	.help = "Time of the store's commits: LMDB's write and fsync of one transaction.",
};

static uint64_t store_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t commit_list(struct store_batch *list)
{
	struct apply a = { NULL, 0 };
	uint64_t failed = 0, last_write = 0, n = 0, commit_start;
	int rc;

	/* Doomed without being tried: a batch the loop submitted before it
	 * heard of a failed commit (it may hold what was derived from the lost
	 * writes: the next sequence number of a conversation, a counter), and
	 * one that waits on writes of which one failed. Those before a doomed
	 * batch in the list are never doomed by it: the writer takes them in
	 * the order they were submitted. */
	for (struct store_batch *b = list; b; b = b->next) {
		b->err = 0;
		b->failure = 0;
		if (b->heard < failures_made || (b->after && last_failed_seq >= b->after)) {
			b->err = failure_err;
			failed++;
			/* A wait that fails writes nothing: no one after it needs to
			 * fail for it (waits would otherwise doom each other forever). */
			if (b->len)
				last_failed_seq = b->seq;
		}
		n++;
	}
	if (failed == n)
		return failed;
	if ((rc = mdb_txn_begin(env, NULL, 0, &a.txn)) != 0)
		goto fail;
	for (struct store_batch *b = list; b && !a.err; b = b->next)
		if (!b->err)
			batch_each(b, apply_op, &a);
	if (a.err) {
		mdb_txn_abort(a.txn);
		rc = a.err;
		goto fail;
	}
	commit_start = store_usec();
	if ((rc = mdb_txn_commit(a.txn)) != 0) /* writes and fsyncs */
		goto fail;
	metrics_observe(&commit_seconds, store_usec() - commit_start);
	return failed;
fail:
	failures_made++;
	failure_err = commit_error(lmdb_code(rc));
	rc = failure_err;
	for (struct store_batch *b = list; b; b = b->next)
		if (!b->err) {
			b->err = rc;
			b->failure = failures_made;
			failed++;
			if (b->len)
				last_write = b->seq;
		}
	if (last_write)
		last_failed_seq = last_write;
	return failed;
}

static void *writer_main(void *unused)
{
	sigset_t all;

	(void)unused;
	/* Named, so that tools can find it: top -H, the benchmark's sendsplit. */
	pthread_setname_np(pthread_self(), "parley-store");
	/* Signals are the loop thread's (the guard's ticker above all). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&mu);
	for (;;) {
		while (!queue_head && !stopping)
			pthread_cond_wait(&cv, &mu);
		if (!queue_head)
			break;
		/* At most GROUP_MAX batches a transaction: LMDB keeps the pages a
		 * transaction dirtied for reuse until the environment closes, so
		 * the largest transaction sets the writer's memory for good (a
		 * backlog of 100,000 batches in one was 150 MB in a soak run). */
		struct store_batch *list = queue_head, *last = queue_head;
		for (int n = 1; n < GROUP_MAX && last->next; n++)
			last = last->next;
		queue_head = last->next;
		if (!queue_head)
			queue_tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&mu);

		uint64_t failed = commit_list(list), n = 0;
		for (struct store_batch *b = list; b; b = b->next)
			n++;

		pthread_mutex_lock(&mu);
		store_failures += failed;
		for (struct store_batch *b = list; b && failed; b = b->next) {
			if (store_full(b->err) == STORE_FULL_MAP)
				store_full_map++;
			else if (store_full(b->err) == STORE_FULL_DISK)
				store_full_disk++;
		}
		if (failed < n) {
			store_commits++;
			store_batches += n - failed;
		}
		if (done_tail)
			done_tail->next = list;
		else
			done_head = list;
		done_tail = last;
		pthread_mutex_unlock(&mu);
		ev_async_send(loop, &wake);
		pthread_mutex_lock(&mu);
	}
	pthread_mutex_unlock(&mu);
	return NULL;
}

/* In the loop thread: the batches the writer finished. */
static void run_completions(void)
{
	struct store_batch *list;

	pthread_mutex_lock(&mu);
	list = done_head;
	done_head = done_tail = NULL;
	pthread_mutex_unlock(&mu);
	/* The committed writes leave the overlay: reads from here on must see
	 * them in the database, so the next read takes a new snapshot. */
	store_read_done();
	/* Heard before any callback runs: what they submit is on the new side
	 * of the barrier. */
	for (struct store_batch *b = list; b; b = b->next) {
		if (b->failure > failures_heard) {
			failures_heard = b->failure;
			log_warn("store: a write failed: %s", parley_strerror(b->err));
		}
		completed_upto = b->seq;
	}
	while (list) {
		struct store_batch *b = list;
		list = b->next;
		batch_each(b, overlay_drop, NULL);
		if (b->done)
			b->done(b->arg, b->err);
		free(b->buf);
		free(b);
	}
	if (after_completions)
		after_completions();
}

void store_on_completions(void (*fn)(void))
{
	after_completions = fn;
}

static void on_wake(struct ev_loop *l, ev_async *w, int revents)
{
	(void)l;
	(void)w;
	(void)revents;
	run_completions();
}

/* ---- reading ---- */

static int read_begin(void)
{
	int rc;

	if (reading)
		return 0;
	rc = mdb_txn_renew(rtxn);
	reading = rc == 0;
	return rc;
}

void store_read_done(void)
{
	if (reading) {
		mdb_txn_reset(rtxn);
		reading = 0;
	}
}

static const void *keep(const void *p, size_t n)
{
	/* An empty value (a set's member) may come first, before the scratch
	 * buffer exists: memcpy must not see its NULL. */
	if (n == 0)
		return "";
	if (n > scratch_cap) {
		scratch_cap = n * 2;
		scratch = xrealloc(scratch, scratch_cap);
	}
	memcpy(scratch, p, n);
	return scratch;
}

static int get(enum store_db db, const void *key, size_t klen, const void **val, size_t *vlen,
	       int copy)
{
	unsigned char k[1 + KEY_MAX];
	struct pending *p;
	MDB_val mk = { klen, (void *)key }, mv;
	int rc;

	if (scanned_only(db)) {
		/* A caller bug: a pending write there would not be seen. */
		log_error("store: a point read of a database that is only scanned");
		abort();
	}
	if (klen == 0 || klen > KEY_MAX)
		return 0;
	p = map_get(&overlay, (const char *)k, overlay_key(k, db, key, klen));
	if (p) {
		if (p->deleted)
			return 0;
		*val = p->val;
		*vlen = p->vlen;
		return 1;
	}
	if ((rc = read_begin()) != 0)
		return lmdb_code(rc);
	rc = mdb_get(rtxn, dbis[db], &mk, &mv);
	if (rc == 0) {
		/* Copied: once the transaction ends the page may be reused. */
		*val = copy ? keep(mv.mv_data, mv.mv_size) : mv.mv_data;
		*vlen = mv.mv_size;
	}
	if (rc == MDB_NOTFOUND)
		return 0;
	return rc ? lmdb_code(rc) : 1;
}

int store_get(enum store_db db, const void *key, size_t klen, const void **val, size_t *vlen)
{
	return get(db, key, klen, val, vlen, 1);
}

int store_peek(enum store_db db, const void *key, size_t klen, const void **val, size_t *vlen)
{
	return get(db, key, klen, val, vlen, 0);
}

static int has_prefix(const MDB_val *k, const void *prefix, size_t plen)
{
	return k->mv_size >= plen && memcmp(k->mv_data, prefix, plen) == 0;
}

/* The walk of store_scan and store_scan_back: from where `cur` stands (`rc`:
 * how positioning it went), calls `each` on each key that starts with
 * `prefix`, at most `limit`, moving by `step`; closes the cursor. Returns
 * how many were seen, or a store error. */
static long scan_walk(MDB_cursor *cur, int rc, MDB_val *k, MDB_val *v, MDB_cursor_op step,
		      const void *prefix, size_t plen, long limit,
		      int (*each)(void *arg, const void *k, size_t kl, const void *v, size_t vl),
		      void *arg)
{
	long n = 0;

	while (rc == 0 && n < limit && has_prefix(k, prefix, plen)) {
		n++;
		if (each(arg, k->mv_data, k->mv_size, v->mv_data, v->mv_size))
			break;
		rc = mdb_cursor_get(cur, k, v, step);
	}
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return lmdb_code(rc);
	return n;
}

long store_scan(enum store_db db, const void *prefix, size_t plen, const void *start,
		size_t slen, long limit,
		int (*each)(void *arg, const void *k, size_t kl, const void *v, size_t vl),
		void *arg)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = read_begin()) != 0)
		return lmdb_code(rc);
	if ((rc = mdb_cursor_open(rtxn, dbis[db], &cur)) != 0)
		return lmdb_code(rc);
	if (start && slen) {
		k.mv_size = slen;
		k.mv_data = (void *)start;
	} else {
		k.mv_size = plen;
		k.mv_data = (void *)prefix;
	}
	rc = k.mv_size ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) :
			 mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	return scan_walk(cur, rc, &k, &v, MDB_NEXT, prefix, plen, limit, each, arg);
}

/* Puts `cur` on the last key that sorts before `before` (`blen` bytes; with
 * none, before every key that starts with `prefix`: the prefix, then 0xff
 * bytes, is past them all). Returns LMDB's code: 0, MDB_NOTFOUND when no
 * key is there. */
static int cursor_before(MDB_cursor *cur, const void *prefix, size_t plen, const void *before,
			 size_t blen, MDB_val *k, MDB_val *v)
{
	unsigned char bound[KEY_MAX];
	int rc;

	if (before && blen) {
		k->mv_size = blen;
		k->mv_data = (void *)before;
	} else {
		memcpy(bound, prefix, plen);
		memset(bound + plen, 0xff, KEY_MAX - plen);
		k->mv_size = KEY_MAX;
		k->mv_data = bound;
	}
	/* The first key at or after the bound; the one before it is ours (or
	 * the last of all, when none is at or after it). Once positioned, `k`
	 * points into the database, not at `bound`. */
	rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
	return rc == 0 ? mdb_cursor_get(cur, k, v, MDB_PREV) :
	       rc == MDB_NOTFOUND ? mdb_cursor_get(cur, k, v, MDB_LAST) : rc;
}

long store_scan_back(enum store_db db, const void *prefix, size_t plen, const void *before,
		     size_t blen, long limit,
		     int (*each)(void *arg, const void *k, size_t kl, const void *v, size_t vl),
		     void *arg)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if (plen == 0 || plen >= KEY_MAX || blen > KEY_MAX)
		return 0;
	if ((rc = read_begin()) != 0)
		return lmdb_code(rc);
	if ((rc = mdb_cursor_open(rtxn, dbis[db], &cur)) != 0)
		return lmdb_code(rc);
	rc = cursor_before(cur, prefix, plen, before, blen, &k, &v);
	return scan_walk(cur, rc, &k, &v, MDB_PREV, prefix, plen, limit, each, arg);
}

int store_last(enum store_db db, const void *prefix, size_t plen, void *out, size_t cap,
	       size_t *olen)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc, found = 0;

	if (plen == 0 || plen >= KEY_MAX)
		return 0;
	if ((rc = read_begin()) != 0)
		return lmdb_code(rc);
	if ((rc = mdb_cursor_open(rtxn, dbis[db], &cur)) != 0)
		return lmdb_code(rc);
	rc = cursor_before(cur, prefix, plen, NULL, 0, &k, &v);
	if (rc == 0 && has_prefix(&k, prefix, plen) && k.mv_size <= cap) {
		memcpy(out, k.mv_data, k.mv_size);
		*olen = k.mv_size;
		found = 1;
	}
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return lmdb_code(rc);
	return found;
}

/* ---- open and close ---- */

/* The holder's pid as its lock file says (it writes it right after taking
 * the lock, so a reader may come in between: look again for a moment). */
static void read_owner(int fd, char *pid, size_t cap)
{
	for (int tries = 0; tries < 20; tries++) {
		ssize_t n = pread(fd, pid, cap - 1, 0);
		if (n > 0) {
			pid[n] = '\0';
			pid[strcspn(pid, "\n")] = '\0';
			return;
		}
		usleep(10000);
	}
	snprintf(pid, cap, "unknown");
}

int store_claim(const char *dir)
{
	char path[PATH_MAX], real[PATH_MAX], pid[32];
	struct stat st;
	int fd = -1, n, err;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		err = -errno;
		log_error("store: cannot create the data directory %s: %s", dir, strerror(-err));
		return err;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || !realpath(dir, real)) {
		log_error("store: the data directory %s is not a directory", dir);
		return -ENOTDIR;
	}
	n = snprintf(path, sizeof(path), "%s/parley.lock", real);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		log_error("store: the data directory's path is too long: %s", real);
		return -ENAMETOOLONG;
	}
	/* flock: the kernel drops it with the last descriptor, so a killed
	 * process leaves nothing to clean up; CLOEXEC keeps any child (a
	 * sanitizer's symbolizer, say) from holding it past us. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = -errno;
		log_error("store: cannot open %s: %s", path, strerror(-err));
		return err;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK) {
			err = -EBUSY;
			read_owner(fd, pid, sizeof(pid));
			log_error("store: the data directory %s is in use by another parley (pid %s): "
				  "one process per data directory. Give each process its own "
				  "PARLEY_DATA_DIR (several processes on one store need the shared "
				  "store, see --help)", real, pid);
		} else {
			err = -errno;
			log_error("store: cannot lock %s: %s", path, strerror(-err));
		}
		goto fail;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	errno = 0;
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		/* A short write sets no errno: it is one all the same. */
		err = errno ? -errno : -EIO;
		log_error("store: cannot write %s: %s", path, strerror(errno));
		goto fail;
	}
	owner_fd = fd;
	return 0;
fail:
	close(fd);
	return err;
}

/* The map's size and what of it is used: a full map answers 507, and the
 * gap between the two shows it coming. */
static long long store_map_bytes(void)
{
	MDB_envinfo info;

	return env && mdb_env_info(env, &info) == 0 ? (long long)info.me_mapsize : 0;
}

static long long store_used_bytes(void)
{
	MDB_envinfo info;
	MDB_stat st;

	if (!env || mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &st) != 0)
		return 0;
	return (long long)(info.me_last_pgno + 1) * (long long)st.ms_psize;
}

static struct metrics_value store_metrics[] = {
	{ .name = "parley_store_map_bytes",
	  .help = "The store's map size (PARLEY_MAP_SIZE): its most, past which writes get 507.",
	  .type = "gauge", .read = store_map_bytes },
	{ .name = "parley_store_used_bytes",
	  .help = "What the store's map holds: its pages in use, up to the last written.",
	  .type = "gauge", .read = store_used_bytes },
	{ .name = "parley_store_commits_total",
	  .help = "Transactions the store's writer committed (and synced).", .type = "counter",
	  .count = &store_commits },
	{ .name = "parley_store_batches_total", .help = "Write batches those transactions carried.",
	  .type = "counter", .count = &store_batches },
	{ .name = "parley_store_failures_total",
	  .help = "Write batches that failed (full map, I/O).", .type = "counter",
	  .count = &store_failures },
	{ .name = "parley_store_full_total{reason=\"map\"}",
	  .help = "Write batches that failed because the store is full, by what is full (map: "
		  "PARLEY_MAP_SIZE; disk: the file system, a quota or the file size limit).",
	  .type = "counter", .count = &store_full_map },
	{ .name = "parley_store_full_total{reason=\"disk\"}", .count = &store_full_disk },
};

int store_backup(const char *dir, const char *dest)
{
	char file[PATH_MAX];
	MDB_env *src = NULL;
	struct stat st;
	int rc;

	/* The source first: a wrong path must not leave an empty copy. */
	if (snprintf(file, sizeof(file), "%s/data.mdb", dir) >= (int)sizeof(file) ||
	    stat(file, &st) != 0) {
		log_error("store: no database in %s (no data.mdb there)", dir);
		return -ENOENT;
	}
	if (mkdir(dest, 0700) < 0) {
		rc = -errno;
		log_error("store: cannot create the backup directory %s: %s%s", dest, strerror(-rc),
			  rc == -EEXIST ? " (name a new one)" : "");
		return rc;
	}
	/* Read only: LMDB's reader table (lock.mdb) is how it shares the
	 * database with the running parley's writer. The map is the file's. */
	if ((rc = mdb_env_create(&src)) != 0 ||
	    (rc = mdb_env_set_maxdbs(src, STORE_DB_COUNT + 4)) != 0 ||
	    (rc = mdb_env_open(src, dir, MDB_RDONLY | MDB_NOTLS, 0600)) != 0 ||
	    (rc = mdb_env_copy2(src, dest, MDB_CP_COMPACT)) != 0) {
		log_error("store: cannot back up %s to %s: %s", dir, dest, mdb_strerror(rc));
		rc = rc > 0 ? -rc : rc;
		goto out;
	}
	rc = 0;
out:
	if (src)
		mdb_env_close(src);
	return rc;
}

int store_open(const char *dir, size_t map_size, struct ev_loop *l)
{
	MDB_txn *txn;
	int rc, dead;

	for (size_t i = 0; i < sizeof(store_metrics) / sizeof(store_metrics[0]); i++)
		metrics_register(&store_metrics[i]);
	metrics_histogram_register(&commit_seconds);
	/* parley_strerror names LMDB's codes in LMDB's words from now on. */
	parley_strerror_lmdb(mdb_strerror);

	loop = l;
	map_init(&overlay);
	if (owner_fd < 0) {
		log_error("store: %s is opened without store_claim", dir);
		return -EINVAL;
	}
	if ((rc = mdb_env_create(&env)) != 0 ||
	    (rc = mdb_env_set_mapsize(env, map_size)) != 0 ||
	    (rc = mdb_env_set_maxdbs(env, STORE_DB_COUNT + 4)) != 0)
		goto fail;
	/* MDB_NOTLS: read transactions belong to no thread, so the loop keeps
	 * one and renews it for each read. */
	if ((rc = mdb_env_open(env, dir, MDB_NOTLS, 0600)) != 0)
		goto fail;
	mdb_reader_check(env, &dead);
	if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
		goto fail;
	for (int i = 0; i < STORE_DB_COUNT; i++)
		if ((rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &dbis[i])) != 0) {
			mdb_txn_abort(txn);
			goto fail;
		}
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &rtxn)) != 0)
		goto fail;
	mdb_txn_reset(rtxn);

	ev_async_init(&wake, on_wake);
	ev_async_start(loop, &wake);
	stopping = 0;
	if ((rc = pthread_create(&writer, NULL, writer_main, NULL)) != 0) {
		log_error("store: cannot start the writer thread");
		ev_async_stop(loop, &wake);
		goto out; /* pthread_create's rc is an errno, as LMDB's are */
	}
	writer_running = 1;
	return 0;
fail:
	log_error("store: cannot open the database in %s: %s", dir, mdb_strerror(rc));
out:
	if (rtxn)
		mdb_txn_abort(rtxn);
	rtxn = NULL;
	if (env)
		mdb_env_close(env);
	env = NULL;
	return lmdb_code(rc);
}

void store_close(void)
{
	struct map_iter it;
	struct map_entry *e;

	if (writer_running) {
		pthread_mutex_lock(&mu);
		stopping = 1;
		pthread_cond_signal(&cv);
		pthread_mutex_unlock(&mu);
		pthread_join(writer, NULL);
		writer_running = 0;
		run_completions();
		ev_async_stop(loop, &wake);
	}
	store_read_done();
	if (rtxn)
		mdb_txn_abort(rtxn);
	rtxn = NULL;
	if (env)
		mdb_env_close(env);
	env = NULL;
	map_iter_init(&it, &overlay);
	while ((e = map_next(&it)))
		free(e->value);
	map_fini(&overlay);
	free(scratch);
	scratch = NULL;
	scratch_cap = 0;
	/* Last: until the environment is closed the directory is still ours. */
	if (owner_fd >= 0) {
		close(owner_fd);
		owner_fd = -1;
	}
}
