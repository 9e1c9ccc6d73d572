/* store.h - the LMDB store: one environment under PARLEY_DATA_DIR. The loop
 * thread reads (each read is a short read-only transaction, never held across
 * a return to the loop) and builds write batches; one writer thread commits
 * every batch queued since its last commit in one transaction, so many
 * writes share one fsync (group commit), and reports each batch back to the
 * loop once it is durable. Until then a point read sees the batch's writes
 * (an overlay of pending writes); scans see committed data only.
 * Errors are negative codes (base/error.h): LMDB's own (MDB_MAP_FULL, ...)
 * and negative errno values (-ENOSPC, -EIO, ...), named by
 * parley_strerror(). Every function is for the loop thread. */
#ifndef PARLEY_STORE_H
#define PARLEY_STORE_H

#include <stddef.h>
#include <stdint.h>

struct ev_loop;

/* The named databases. */
enum store_db {
	STORE_KV,       /* plugin key-value: plugin "\0" key -> expiry(8) value */
	STORE_MESSAGES, /* message id -> message record */
	STORE_CONV,     /* conversation id "\0" seq(8) -> message id */
	STORE_STATUS,   /* message id "\0" user id -> status; message id -> joined counts */
	STORE_MEMBERS,  /* conversation id "\0" user id -> "" */
	STORE_USERCONV, /* user id "\0" conversation id -> "" (members, the other way) */
	STORE_IDEM,     /* sender "\0" client message id -> message id */
	STORE_USERS,    /* user id -> profile JSON */
	STORE_SEEN,     /* user id -> last seen ms(8) */
	STORE_META,     /* counters that survive restarts; read cursors */
	STORE_ANNOT,    /* message id "\0" name -> JSON (reactions, ... of plugins) */
	STORE_HIDDEN,   /* message id "\0" user id -> "" (deleted for that user) */
	STORE_INBOX,    /* user id "\0" conversation id -> activity ms(8) unread(4) */
	STORE_RECENT,   /* user id "\0" activity ms(8) conversation id -> "" (inbox order) */
	STORE_PARTS,    /* conversation id "\0" user id -> "" (whose inbox holds it) */
	STORE_DB_COUNT
};

/* Makes `dir` (created if missing) this process's own: takes an exclusive
 * lock on DIR/parley.lock and writes our pid in it. The store keeps state
 * of its own beside LMDB's (sequence numbers, pending writes), so a second
 * process writing the same directory would lose acked messages. Returns 0,
 * or a negative errno (logged): -EBUSY when another process holds it (the
 * message names the directory and that process's pid), -ENOTDIR when it is
 * not a directory, -ENAMETOOLONG, or what mkdir, open or the lock file's
 * write said. The lock goes when store_close runs or the process ends,
 * however it ends. Call it before anything else is started. */
int store_claim(const char *dir);
/* Opens (creating) the environment in `dir`, which store_claim took, with
 * a map of `map_size` bytes; `loop` (which must outlive the store) runs the
 * completions of committed batches. Returns 0, or a negative code
 * (logged): LMDB's (MDB_INVALID: a file that is not an LMDB database,
 * MDB_MAP_FULL..., or an errno of its own, negated), -EINVAL without
 * store_claim, or the errno pthread_create gave for the writer, negated.
 * Nothing is left open then. */
int store_open(const char *dir, size_t map_size, struct ev_loop *loop);
/* Waits for the writer to commit what is queued (their completions run
 * here), then closes, and lets the directory go. Safe when the store never
 * opened (a claimed directory is let go), and twice. */
void store_close(void);

/* Copies the database in `dir` into the new directory `dest` (created; it
 * must not exist), compacted (LMDB's mdb_env_copy2 with MDB_CP_COMPACT):
 * a snapshot of one read transaction, so it is safe while a parley process
 * writes `dir` (it takes no part of store_claim's lock) and holds every
 * write committed before it began: every acked message. `dest` is then a
 * data directory of its own. Returns 0, or a negative code (logged): an
 * errno (-EEXIST: dest exists; -ENOENT: no database in dir) or LMDB's. */
int store_backup(const char *dir, const char *dest);

/* ---- writing ---- */

struct store_batch;

/* A new, empty batch, the caller's until store_submit or store_batch_free.
 * Never NULL. */
struct store_batch *store_batch_new(void);
/* Adds a write (a put, or a delete of a key that may be absent); the key
 * and value are copied. Keys are 1..511 bytes: the core builds them, so
 * another length is a bug and aborts. */
void store_put(struct store_batch *b, enum store_db db, const void *key, size_t klen,
	       const void *val, size_t vlen);
void store_del(struct store_batch *b, enum store_db db, const void *key, size_t klen);
/* Frees a batch that will not be submitted. NULL is a no-op. */
void store_batch_free(struct store_batch *b);
/* Hands the batch (ownership included) to the writer; it cannot fail here.
 * `done(arg, err)` (NULL: none; `arg` is the caller's) runs in the loop
 * thread once it is committed and synced (err 0) or failed (a negative
 * code: MDB_MAP_FULL when the map is full, -ENOSPC when the disk is, -EIO,
 * ...; nothing of the batch was written). Batches commit in the
 * order they were submitted, and a failed commit is a barrier: every batch
 * queued behind it that was submitted before the loop heard of the failure
 * (before its completion ran) fails too, untried, with the same error, so
 * that nothing derived from a lost write (a conversation's next sequence
 * number, a counter read from the overlay) lands after it. An empty batch
 * completes after everything queued before it, and fails if a write batch
 * that had not completed when it was submitted failed: a way to wait until
 * earlier writes are durable. Returns the batch's sequence number. */
uint64_t store_submit(struct store_batch *b, void (*done)(void *arg, int err), void *arg);
/* Makes `b` fail unless every write batch from sequence number `seq` on,
 * submitted before it, commits: for a write derived from one still pending
 * (see store_pending), or a wait for that one only. 0 is no dependency (an
 * empty batch told so waits for nothing in particular). */
void store_batch_after(struct store_batch *b, uint64_t seq);
/* The sequence number of the batch that holds a pending (not yet
 * completed) write of the key, or 0. */
uint64_t store_pending(enum store_db db, const void *key, size_t klen);
/* How many failed commits the loop thread has heard of. What a module keeps
 * of pending writes (cached sequence numbers) must be read again from the
 * database when this changes: the barrier failed every write it had not
 * seen completed. */
uint64_t store_failures_heard(void);

/* ---- reading ---- */

/* Looks a key up, pending writes first. Returns 1 with `*val`/`*vlen` set
 * (the store's: valid until the next store call from this thread), 0 when
 * absent (a key of no allowed length included), or a negative code (LMDB's
 * read transaction or mdb_get failed). STORE_CONV, STORE_USERCONV,
 * STORE_RECENT and STORE_PARTS are only scanned: the overlay leaves their
 * writes out, and a point read of them is a bug and aborts. */
int store_get(enum store_db db, const void *key, size_t klen, const void **val, size_t *vlen);
/* As store_get without the copy, for values too large to copy at each read
 * (a message record): `*val` stays valid until the loop's read transaction
 * ends (store_read_done, or a round of completions), so within one call
 * from Lua, never across a return to the loop. */
int store_peek(enum store_db db, const void *key, size_t klen, const void **val, size_t *vlen);

/* Calls `each(arg, key, klen, val, vlen)` for the committed keys that start
 * with `prefix`, in key order, from `start` (a key at or after which to
 * begin; NULL for the first), until it returns non-zero (stop) or `limit`
 * calls. Returns the number of calls, or a negative code (LMDB's; calls
 * already made stand). Pointers are the database's: valid only during the
 * call, which must not call the store nor raise a Lua error (the cursor
 * would be left open). */
long store_scan(enum store_db db, const void *prefix, size_t plen, const void *start,
		size_t slen, long limit,
		int (*each)(void *arg, const void *k, size_t kl, const void *v, size_t vl),
		void *arg);
/* As store_scan, backwards: the committed keys that start with `prefix`
 * (1..510 bytes) and sort before `before` (`blen` bytes; NULL: all of
 * them), the last first, until `each` returns non-zero or `limit` calls.
 * Returns the number of calls (0 for an empty or too long prefix), or a
 * negative code (LMDB's). The same rules for `each` as store_scan's. */
long store_scan_back(enum store_db db, const void *prefix, size_t plen, const void *before,
		     size_t blen, long limit,
		     int (*each)(void *arg, const void *k, size_t kl, const void *v, size_t vl),
		     void *arg);
/* The last committed key that starts with `prefix`: 1 and its key copied to
 * `out` (`*olen` bytes, at most `cap`), 0 when none (or when it is longer
 * than `cap`, or `prefix` is empty or too long), or a negative code
 * (LMDB's). */
int store_last(enum store_db db, const void *prefix, size_t plen, void *out, size_t cap,
	       size_t *olen);

/* Ends the loop thread's read transaction: reads share one snapshot from
 * the first read of a loop iteration until this, which the loop calls
 * between iterations (and the store itself when commits land). */
void store_read_done(void);
/* `fn` runs after each round of batch completions (to act on them at once);
 * NULL: nothing. One at a time: a second call replaces the first. */
void store_on_completions(void (*fn)(void));

/* Whether a write's error (a negative code) means the store is full, and
 * what is full: STORE_FULL_MAP for the map (PARLEY_MAP_SIZE, MDB_MAP_FULL),
 * STORE_FULL_DISK for the disk (-ENOSPC, -EDQUOT, or -EFBIG for the file
 * size limit; a write the disk cut short, which LMDB reports as EIO, is
 * given as one of these), 0 otherwise. A classifier, not an error code.
 * The store's messages are parley_strerror()'s (base/error.h). */
enum { STORE_FULL_MAP = 1, STORE_FULL_DISK = 2 };
int store_full(int err);

/* For /metrics. */
extern uint64_t store_commits;   /* transactions committed */
extern uint64_t store_batches;   /* batches they carried */
extern uint64_t store_failures;  /* batches that failed */
extern uint64_t store_full_map;  /* of those, for a full map */
extern uint64_t store_full_disk; /* of those, for a full disk */

#endif
