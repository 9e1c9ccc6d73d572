/* pg.h - the store on PostgreSQL: PARLEY_PG_WRITERS libpq connections per
 * process, non-blocking and in pipeline mode on the libev loop. Reads are
 * sent at once; writes are group-committed, one transaction in flight per
 * connection, the writes about one conversation all on one connection; a
 * lost connection fails what was in flight on it and reconnects with
 * backoff. The SQL
 * (migrations, prepared statements) is the caller's (store/pg_schema.c).
 * Every function is for the loop thread. */
#ifndef PARLEY_PG_H
#define PARLEY_PG_H

#include <stddef.h>

#include <libpq-fe.h>

struct ev_loop;

/* A prepared statement: prepared on every (re)connect under `name`. `batch`, when not 0,
 * is the index of a statement that does what a run of calls of this one does, in one call:
 * each of its parameters a text[] of the run's values of that parameter (so only calls
 * whose parameters are all text), answering one row a call, in the calls' order, each the
 * row that call alone would answer (the calls' own statements answer one row each). Such
 * a write, and the run of them queued after it, goes to PostgreSQL as one call of it: one
 * statement for many (the group commit's writes; statement 0 is never a batch); a call
 * goes alone, as its own statement, only once a batch it was in failed.
 * `route`, for a write: 0, it goes through the first connection; i > 0, through the one
 * its parameter i (1-based: a conversation id) hashes to, so that the writes about one
 * conversation commit in the order they were made; PG_ROUTE_ALL, through every
 * connection, answered once all have (a wait for everything written before it). */
struct pg_statement { const char *name; const char *sql; int nparams; int batch; int route; };
#define PG_ROUTE_ALL (-1)

/* At start, before the loop serves anyone (so it may block): connects to `uri`, takes an
 * advisory lock, creates or migrates the schema - `migrations[i]` is the SQL that takes
 * schema version i to i+1, each applied in its own transaction and recorded in a version
 * table; a database whose version is newer than `nmigrations` is refused with a clear
 * message - and prepares `stmts`. Returns 0, or a negative code, logged with the URI
 * (password masked: postgresql://user:***@host/db). */
int pg_open(const char *uri, struct ev_loop *loop, const char *const *migrations,
	    size_t nmigrations, const struct pg_statement *stmts, size_t nstmts);
/* Sends what is queued, waits for the answers (bounded: a few seconds), fails the rest with
 * PARLEY_EUNAVAILABLE, closes. Safe twice and when never opened. */
void pg_close(void);

enum pg_kind { PG_READ, PG_WRITE };
/* `res` valid during the call only; NULL when err != 0. */
typedef void pg_done_fn(void *arg, const PGresult *res, int err);

/* Queues statement `stmt` (an index into pg_open's table) with `n` parameters, copied
 * (values[i] NULL: SQL NULL; lengths[i] its bytes; binary[i] non-zero: binary format,
 * for bytea - `binary` NULL: all text). Never blocks, never calls `done` before it returns.
 * done(arg, res, 0): a PG_READ as soon as it is answered; a PG_WRITE once the transaction
 * holding it has COMMITted (its result is the statement's own).
 * done(arg, NULL, err) otherwise:
 *   PARLEY_EUNAVAILABLE - not connected, or the connection went before the COMMIT was
 *     confirmed (the write may or may not be committed: the SQL functions are idempotent,
 *     so a retry is safe), or the queue is over its bound;
 *   PARLEY_ESTATEMENT - the statement itself failed (logged with PostgreSQL's message).
 * Never done twice, never lost: pg_close fails what is left. */
void pg_call(enum pg_kind kind, int stmt, int n, const char *const *values, const int *lengths,
	     const int *binary, pg_done_fn *done, void *arg);

/* 0 when connected and serving; else 1 with `*why` (static text: "PostgreSQL unreachable:
 * ..."). For /healthz (503 with the reason) and the store's errors. */
int pg_down(const char **why);

/* Store calls queued, in flight, or failed and not yet told: 0 once the
 * store has settled (the shutdown's drain waits for it). */
size_t pg_pending(void);

/* Copies `uri` into `out` (`outlen` bytes, always NUL-terminated, cut if
 * need be) with its password masked: the userinfo's ("user:***@host") and
 * a `password=` parameter's ("password=***"). For every message that names
 * the URI. */
void pg_mask_uri(const char *uri, char *out, size_t outlen);

#endif
