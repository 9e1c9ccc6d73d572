/* pg.c - the store on PostgreSQL (see pg.h): one libpq connection, non-
 * blocking and in pipeline mode, its socket watched by the libev loop. Each
 * read is sent at once with a sync of its own; writes are group-committed,
 * one group in flight. A group is the pipeline's implicit transaction: its
 * statements, then a sync, which commits them all or none (an explicit
 * BEGIN would leave the session in an aborted block after a failure, to be
 * rolled back before anything pipelined behind it could run); the sync's
 * answer comes once the commit is durable. Uses libpq, libev and base/. */
#define _GNU_SOURCE
#include "store/pg.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/settings.h"

/* Writes one transaction carries at most. */
#define PG_GROUP_MAX 1000
/* A batch (pg.h) stops taking calls once their parameters reach this many
 * bytes: the arrays are built in memory and sent as one message. */
#define PG_BATCH_BYTES (1024 * 1024)
/* Tries of a write that keeps deadlocking or failing to serialize. */
#define PG_TRIES_MAX 5
/* The reconnect's backoff, in seconds: doubled after each failure. */
#define PG_BACKOFF_MIN 0.1
#define PG_BACKOFF_MAX 5.0
/* How long pg_close waits for the answers to what is in flight. */
#define PG_CLOSE_WAIT_MS 3000
/* The advisory lock that serialises migrations between processes. */
#define PG_MIGRATION_LOCK 7022354937L

/* One pg_call: its parameters copied in the same allocation. */
struct pg_job {
	struct pg_job *next;
	enum pg_kind kind;
	int stmt, n, tries;
	const char **values;
	int *lengths, *formats;
	pg_done_fn *done;
	void *arg;
	int err;       /* for the failing list: what done gets */
	int single;    /* its batch failed: sent alone from now on */
	PGresult *res; /* a write's result, kept until its group commits */
};

struct pg_list {
	struct pg_job *head, *tail;
	size_t n;
};

/* What the pipeline answers next, in the order it was sent. */
enum pg_expect_kind {
	PG_EXPECT_JOB,        /* a read's or a write's result */
	PG_EXPECT_BATCH,      /* a batch's: `job` and the `count - 1` writes after it */
	PG_EXPECT_READ_SYNC,  /* the sync after a read */
	PG_EXPECT_GROUP_SYNC, /* the sync that commits the write group */
	PG_EXPECT_PREPARE,    /* a statement prepared after a reconnect */
	PG_EXPECT_PREPARE_SYNC,
};

struct pg_expect {
	struct pg_expect *next;
	enum pg_expect_kind kind;
	struct pg_job *job;
	size_t count;
	PGresult *res; /* the result seen so far (the NULL that ends it is to come) */
};

enum pg_state { PG_CLOSED, PG_DOWN, PG_CONNECTING, PG_UP };

static struct {
	enum pg_state state;
	struct ev_loop *loop;
	PGconn *conn;
	char *uri;
	char masked[256];
	const struct pg_statement *stmts;
	size_t nstmts;
	ev_io rio, wio;
	ev_prepare prepare;
	ev_timer retry;
	double backoff;
	struct pg_list reads, writes, failing;
	/* The write group in flight: its jobs in the order sent. */
	struct pg_list group;
	int group_inflight;
	struct pg_job *group_failed; /* its first statement that failed */
	int group_retry;             /* a deadlock or serialization failure */
	int group_unbatch;           /* a batch failed: its calls go again alone */
	struct pg_expect *expect_head, *expect_tail;
	size_t inflight; /* jobs sent and not yet done */
	char why[256];
} pg;

static uint64_t pg_reconnects, pg_transactions, pg_statements, pg_failures, pg_unavailable,
	pg_retries, pg_batches, pg_batch_failures;

static long long pg_up_read(void)
{
	return pg.state == PG_UP;
}

static long long pg_depth_read(void)
{
	return (long long)(pg.reads.n + pg.writes.n + pg.inflight);
}

static struct metrics_value pg_metrics[] = {
	{ .name = "parley_pg_up", .help = "1 while the connection to PostgreSQL serves, else 0.",
	  .type = "gauge", .read = pg_up_read },
	{ .name = "parley_pg_reconnects_total",
	  .help = "Connections to PostgreSQL made again after one was lost.", .type = "counter",
	  .count = &pg_reconnects },
	{ .name = "parley_pg_transactions_total",
	  .help = "Write transactions committed (each carries a group of writes).",
	  .type = "counter", .count = &pg_transactions },
	{ .name = "parley_pg_statements_total",
	  .help = "Statements answered (reads, and writes once committed).", .type = "counter",
	  .count = &pg_statements },
	{ .name = "parley_pg_failures_total{kind=\"statement\"}",
	  .help = "Store calls that failed, by kind (statement: PostgreSQL refused it; "
		  "unavailable: not connected, connection lost, or the queue full).",
	  .type = "counter", .count = &pg_failures },
	{ .name = "parley_pg_failures_total{kind=\"unavailable\"}", .count = &pg_unavailable },
	{ .name = "parley_pg_retries_total",
	  .help = "Write groups sent again after a deadlock or a serialization failure.",
	  .type = "counter", .count = &pg_retries },
	{ .name = "parley_pg_batches_total",
	  .help = "Runs of writes sent as one statement (a batch: many sends in one call).",
	  .type = "counter", .count = &pg_batches },
	{ .name = "parley_pg_batch_failures_total",
	  .help = "Batches that failed, whose writes went again one by one.",
	  .type = "counter", .count = &pg_batch_failures },
	{ .name = "parley_pg_queue_depth",
	  .help = "Store calls queued or in flight on PostgreSQL.", .type = "gauge",
	  .read = pg_depth_read },
};

void pg_mask_uri(const char *uri, char *out, size_t outlen)
{
	const char *p = uri, *scheme, *at, *end;
	size_t used = 0;

	if (!outlen)
		return;
#define PUT(s, len)                                                        \
	do {                                                               \
		size_t l_ = (len);                                         \
		if (l_ > outlen - 1 - used)                                \
			l_ = outlen - 1 - used;                            \
		memcpy(out + used, (s), l_);                               \
		used += l_;                                                \
	} while (0)
	/* The userinfo's password: between the first ':' after the scheme and
	 * the '@' that ends the userinfo (before any '/', '?' or '#'). */
	scheme = strstr(p, "://");
	if (scheme) {
		const char *auth = scheme + 3, *colon;
		end = auth + strcspn(auth, "/?#");
		at = memrchr(auth, '@', (size_t)(end - auth));
		colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		if (colon) {
			PUT(p, (size_t)(colon + 1 - p));
			PUT("***", 3);
			p = at;
		}
	}
	/* A password parameter, in the query (or a key=value string). */
	while (*p) {
		const char *q = strstr(p, "password=");
		if (!q || (q > uri && !strchr("?& \t", q[-1]))) {
			if (!q) {
				PUT(p, strlen(p));
				break;
			}
			PUT(p, (size_t)(q + 9 - p));
			p = q + 9;
			continue;
		}
		PUT(p, (size_t)(q + 9 - p));
		PUT("***", 3);
		p = q + 9 + strcspn(q + 9, "& \t#");
	}
#undef PUT
	out[used] = '\0';
}

static void pg_list_push(struct pg_list *l, struct pg_job *j)
{
	j->next = NULL;
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
	l->n++;
}

static struct pg_job *pg_list_pop(struct pg_list *l)
{
	struct pg_job *j = l->head;

	if (j) {
		l->head = j->next;
		if (!l->head)
			l->tail = NULL;
		l->n--;
		j->next = NULL;
	}
	return j;
}

/* Puts `front`'s jobs, in their order, before `l`'s; empties `front`. */
static void pg_list_prepend(struct pg_list *l, struct pg_list *front)
{
	if (!front->head)
		return;
	front->tail->next = l->head;
	if (!l->tail)
		l->tail = front->tail;
	l->head = front->head;
	l->n += front->n;
	memset(front, 0, sizeof(*front));
}

static void pg_job_free(struct pg_job *j)
{
	if (j) {
		PQclear(j->res);
		free(j);
	}
}

/* Tells `j` it is done and frees it. */
static void pg_job_finish(struct pg_job *j, const PGresult *res, int err)
{
	if (err == PARLEY_EUNAVAILABLE)
		pg_unavailable++;
	else if (err)
		pg_failures++;
	else
		pg_statements++;
	j->done(j->arg, err ? NULL : res, err);
	pg_job_free(j);
}

static void pg_set_why(const char *what, const char *detail)
{
	size_t len;

	snprintf(pg.why, sizeof(pg.why), "PostgreSQL unreachable: %s%s%s", what,
		 detail && *detail ? ": " : "", detail ? detail : "");
	/* libpq's messages run on several lines, indented with tabs: one
	 * line, single spaces. */
	len = 0;
	for (char *c = pg.why; *c; c++) {
		char ch = *c == '\n' || *c == '\t' ? ' ' : *c;
		if (ch != ' ' || (len && pg.why[len - 1] != ' '))
			pg.why[len++] = ch;
	}
	pg.why[len] = '\0';
	while (len && pg.why[len - 1] == ' ')
		pg.why[--len] = '\0';
}

static void pg_wake(void)
{
	if (pg.loop && !ev_is_active(&pg.prepare))
		ev_prepare_start(pg.loop, &pg.prepare);
}

/* Whether a failed result is the connection's rather than the statement's:
 * libpq's own (no SQLSTATE), a connection exception (class 08), or the
 * server going away (57P01..57P03). */
static int pg_is_connection_error(const PGresult *r)
{
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

	return !state || strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0;
}

static int pg_is_retryable(const PGresult *r)
{
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

	return state && (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0);
}

static void pg_expect(enum pg_expect_kind kind, struct pg_job *job)
{
	struct pg_expect *e = xcalloc(1, sizeof(*e));

	e->kind = kind;
	e->job = job;
	if (pg.expect_tail)
		pg.expect_tail->next = e;
	else
		pg.expect_head = e;
	pg.expect_tail = e;
}

static void pg_schedule_reconnect(void);

/* The connection is gone (or never came): everything in flight and queued
 * fails PARLEY_EUNAVAILABLE now, and a reconnect is scheduled. */
static void pg_lost(const char *what)
{
	struct pg_list fail = { 0 };
	struct pg_expect *e;
	struct pg_job *j;

	if (pg.conn) {
		pg_set_why(what, PQerrorMessage(pg.conn));
		/* Loud once; each further try while down, quieter. */
		if (pg.state == PG_UP)
			log_error("pg: %s (%s)", pg.why, pg.masked);
		else
			log_warn("pg: %s (%s)", pg.why, pg.masked);
		ev_io_stop(pg.loop, &pg.rio);
		ev_io_stop(pg.loop, &pg.wio);
		PQfinish(pg.conn);
		pg.conn = NULL;
	}
	/* The state first: a done below that calls again is failed in turn. */
	pg.state = PG_DOWN;
	while ((e = pg.expect_head)) {
		pg.expect_head = e->next;
		PQclear(e->res);
		if (e->kind == PG_EXPECT_JOB && e->job->kind == PG_READ)
			pg_list_push(&fail, e->job);
		free(e);
	}
	pg.expect_tail = NULL;
	/* The group's writes, then the queued ones, in the order they came. */
	pg_list_prepend(&pg.writes, &pg.group);
	pg.group_inflight = 0;
	pg.group_failed = NULL;
	pg.group_retry = 0;
	pg.group_unbatch = 0;
	pg.inflight = 0;
	while ((j = pg_list_pop(&pg.reads)))
		pg_list_push(&fail, j);
	while ((j = pg_list_pop(&pg.writes)))
		pg_list_push(&fail, j);
	while ((j = pg_list_pop(&fail)))
		pg_job_finish(j, NULL, PARLEY_EUNAVAILABLE);
	if (pg.loop)
		pg_schedule_reconnect();
}

static void pg_watch_write(int on)
{
	if (on && !ev_is_active(&pg.wio))
		ev_io_start(pg.loop, &pg.wio);
	else if (!on && ev_is_active(&pg.wio))
		ev_io_stop(pg.loop, &pg.wio);
}

/* Pushes what libpq buffered to the socket; watches for writability while
 * some is left. Returns 0, or -1 when the connection is gone (handled). */
static int pg_flush(void)
{
	int rc = PQflush(pg.conn);

	if (rc < 0) {
		pg_lost("the connection was lost");
		return -1;
	}
	pg_watch_write(rc == 1);
	return 0;
}

static int pg_send_job(struct pg_job *j)
{
	const struct pg_statement *s = &pg.stmts[j->stmt];

	if (!PQsendQueryPrepared(pg.conn, s->name, j->n, j->values, j->lengths, j->formats, 0))
		return -1;
	pg_expect(PG_EXPECT_JOB, j);
	pg.inflight++;
	return 0;
}

/* A text[] literal being built: {"a",NULL,"b\"c"}. */
struct pg_buf {
	char *p;
	size_t len, cap;
};

static void pg_buf_put(struct pg_buf *b, const char *s, size_t len)
{
	if (b->len + len + 1 > b->cap) {
		b->cap = (b->len + len + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, len);
	b->len += len;
	b->p[b->len] = '\0';
}

/* Appends `s` (NULL: SQL NULL) as the array's next element: quoted, its "
 * and \ escaped. */
static void pg_buf_element(struct pg_buf *b, const char *s, size_t len, int first)
{
	size_t from = 0;

	if (!first)
		pg_buf_put(b, ",", 1);
	if (!s) {
		pg_buf_put(b, "NULL", 4);
		return;
	}
	pg_buf_put(b, "\"", 1);
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '"' && s[i] != '\\')
			continue;
		pg_buf_put(b, s + from, i - from);
		pg_buf_put(b, "\\", 1);
		from = i;
	}
	pg_buf_put(b, s + from, len - from);
	pg_buf_put(b, "\"", 1);
}

/* Whether `j` may go in a batch of its statement's: it has one, and every
 * parameter is text (a batch's arrays are). */
static int pg_batchable(const struct pg_job *j)
{
	if (j->single || !pg.stmts[j->stmt].batch)
		return 0;
	for (int i = 0; i < j->n; i++)
		if (j->formats[i])
			return 0;
	return 1;
}

static size_t pg_job_bytes(const struct pg_job *j)
{
	size_t bytes = 0;

	for (int i = 0; i < j->n; i++)
		bytes += (size_t)j->lengths[i];
	return bytes;
}

/* Sends `first` and the `count - 1` writes after it (one statement's, all
 * batchable) as one call of the statement's batch: parameter i the text[]
 * of their parameters i. Returns 0, or -1 when libpq would not send. */
static int pg_send_batch(struct pg_job *first, size_t count)
{
	const struct pg_statement *s = &pg.stmts[first->stmt];
	int n = first->n, ok;
	struct pg_buf *arrays = xcalloc((size_t)n, sizeof(*arrays));
	const char **values = xcalloc((size_t)n, sizeof(*values));

	for (int i = 0; i < n; i++) {
		struct pg_job *j = first;
		pg_buf_put(&arrays[i], "{", 1);
		for (size_t k = 0; k < count; k++, j = j->next)
			pg_buf_element(&arrays[i], j->values[i], (size_t)j->lengths[i], k == 0);
		pg_buf_put(&arrays[i], "}", 1);
		values[i] = arrays[i].p;
	}
	ok = PQsendQueryPrepared(pg.conn, pg.stmts[s->batch].name, n, values, NULL, NULL, 0);
	for (int i = 0; i < n; i++)
		free(arrays[i].p);
	free(arrays);
	free(values);
	if (!ok)
		return -1;
	pg_batches++;
	pg_expect(PG_EXPECT_BATCH, first);
	pg.expect_tail->count = count;
	pg.inflight += count;
	return 0;
}

/* Sends the queued reads, each with its sync, and a write group when none
 * is in flight: a run of writes that can go as one batch goes as one.
 * Returns 0, or -1 when the connection is gone (handled). */
static int pg_send(void)
{
	struct pg_job *j;
	int sent = 0;

	while ((j = pg_list_pop(&pg.reads))) {
		if (pg_send_job(j) < 0 || !PQpipelineSync(pg.conn)) {
			pg_list_push(&pg.reads, j); /* failed with the rest in pg_lost */
			pg_lost("cannot send to PostgreSQL");
			return -1;
		}
		pg_expect(PG_EXPECT_READ_SYNC, NULL);
		sent = 1;
	}
	if (!pg.group_inflight && pg.writes.n) {
		while (pg.group.n < PG_GROUP_MAX && (j = pg_list_pop(&pg.writes))) {
			size_t count = 1, bytes = pg_job_bytes(j);
			struct pg_job *next;
			pg_list_push(&pg.group, j);
			while (pg_batchable(j) && pg.group.n < PG_GROUP_MAX &&
			       bytes < PG_BATCH_BYTES && (next = pg.writes.head) &&
			       next->stmt == j->stmt && next->n == j->n && pg_batchable(next)) {
				pg_list_push(&pg.group, pg_list_pop(&pg.writes));
				bytes += pg_job_bytes(next);
				count++;
			}
			if (count > 1 ? pg_send_batch(j, count) < 0 : pg_send_job(j) < 0)
				goto lost;
		}
		if (!PQpipelineSync(pg.conn))
			goto lost;
		pg_expect(PG_EXPECT_GROUP_SYNC, NULL);
		pg.group_inflight = 1;
		sent = 1;
	}
	return sent ? pg_flush() : 0;
lost:
	pg_lost("cannot send to PostgreSQL");
	return -1;
}

/* The write group's sync came back: its transaction committed, or was
 * rolled back because a statement failed. */
static void pg_group_done(void)
{
	struct pg_list group = pg.group, again = { 0 };
	struct pg_job *j, *failed = pg.group_failed;
	int retry = pg.group_retry, unbatch = pg.group_unbatch;

	memset(&pg.group, 0, sizeof(pg.group));
	pg.group_inflight = 0;
	pg.group_failed = NULL;
	pg.group_retry = 0;
	pg.group_unbatch = 0;
	pg.inflight -= group.n;
	if (!failed && !retry && !unbatch) {
		pg_transactions++;
		while ((j = pg_list_pop(&group)))
			pg_job_finish(j, j->res, 0);
		return;
	}
	/* Rolled back: the others go again first, in their order, so that
	 * writes still commit in the order they were queued. A deadlock or a
	 * serialization failure is no statement's fault: all go again, a few
	 * times. So does a failed batch, its calls alone: the one at fault
	 * fails by itself, the others commit as they would have. */
	if (retry)
		pg_retries++;
	while ((j = pg_list_pop(&group))) {
		PQclear(j->res);
		j->res = NULL;
		if (j == failed && !retry) {
			pg_job_finish(j, NULL, PARLEY_ESTATEMENT);
		} else if (retry && ++j->tries >= PG_TRIES_MAX) {
			log_error("pg: a write still failed after %d tries (deadlock or "
				  "serialization failure): refused", PG_TRIES_MAX);
			pg_job_finish(j, NULL, PARLEY_EUNAVAILABLE);
		} else {
			pg_list_push(&again, j);
		}
	}
	pg_list_prepend(&pg.writes, &again);
	pg_wake();
}

/* A failed statement's message, once. */
static void pg_log_statement_error(const struct pg_job *j, const PGresult *r)
{
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

	log_error("pg: statement %s failed (%s): %s", pg.stmts[j->stmt].name,
		  state ? state : "no SQLSTATE", PQresultErrorMessage(r));
}

/* Row `row` of `r` as a result of its own, with `r`'s columns: what the
 * call of that row would have had alone. */
static PGresult *pg_row_result(const PGresult *r, int row)
{
	PGresult *one = PQcopyResult(r, PG_COPYRES_ATTRS);
	int ok = one != NULL;

	for (int c = 0; ok && c < PQnfields(r); c++)
		ok = PQgetisnull(r, row, c) ? PQsetvalue(one, 0, c, NULL, -1)
					    : PQsetvalue(one, 0, c, PQgetvalue(r, row, c),
							 PQgetlength(r, row, c));
	/* The transaction commits with this batch in it: its calls must be
	 * answered, so no memory is as no memory anywhere else (alloc.h). */
	if (!ok)
		alloc_fail((size_t)PQgetlength(r, row, 0));
	return one;
}

/* A batch's result: each of its writes keeps its row until the group's sync.
 * A batch that failed (or answered other than a row a call) makes the group
 * go again with its calls alone. Returns 0, or -1 when the connection is gone. */
static int pg_complete_batch(struct pg_expect *e)
{
	PGresult *r = e->res;
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	struct pg_job *j = e->job;

	if (st == PGRES_FATAL_ERROR && (!r || pg_is_connection_error(r)))
		return -1;
	if (st == PGRES_TUPLES_OK && PQntuples(r) == (int)e->count) {
		for (size_t i = 0; i < e->count; i++, j = j->next)
			j->res = pg_row_result(r, (int)i);
		return 0;
	}
	/* Aborted by a statement before it: the group goes again anyway. */
	if (st != PGRES_TUPLES_OK && st != PGRES_FATAL_ERROR)
		return 0;
	if (pg.group_failed || pg.group_retry)
		return 0;
	if (st == PGRES_FATAL_ERROR && pg_is_retryable(r)) {
		pg.group_retry = 1;
		return 0;
	}
	log_warn("pg: a batch of %zu calls of %s failed (%s): each goes again alone",
		 e->count, pg.stmts[j->stmt].name,
		 st == PGRES_FATAL_ERROR ? PQresultErrorMessage(r) : "not a row a call");
	for (size_t i = 0; i < e->count; i++, j = j->next)
		j->single = 1;
	pg.group_unbatch = 1;
	pg_batch_failures++;
	return 0;
}

/* One command's results are all in (`e->res`, or NULL: none came). Returns
 * 0, or -1 when the connection is gone (handled). */
static int pg_complete(struct pg_expect *e)
{
	PGresult *r = e->res;
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	struct pg_job *j = e->job;

	if (e->kind == PG_EXPECT_PREPARE) {
		if (st != PGRES_COMMAND_OK) {
			log_error("pg: preparing a statement failed after reconnecting: %s",
				  r ? PQresultErrorMessage(r) : "no answer");
			return -1;
		}
		return 0;
	}
	if (e->kind == PG_EXPECT_BATCH)
		return pg_complete_batch(e);
	if (st == PGRES_FATAL_ERROR && (!r || pg_is_connection_error(r)))
		return -1;
	if (j->kind == PG_READ) {
		pg.inflight--;
		if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
			pg_job_finish(j, r, 0);
		} else {
			if (r && st == PGRES_FATAL_ERROR)
				pg_log_statement_error(j, r);
			pg_job_finish(j, NULL, PARLEY_ESTATEMENT);
		}
		return 0;
	}
	/* A write: kept until the group's sync says whether it committed. */
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
		j->res = r;
		e->res = NULL;
	} else if (st == PGRES_FATAL_ERROR && !pg.group_failed && !pg.group_retry &&
		   !pg.group_unbatch) {
		if (pg_is_retryable(r)) {
			pg.group_retry = 1;
		} else {
			pg_log_statement_error(j, r);
			pg.group_failed = j;
		}
	}
	return 0;
}

/* Reads every result libpq has, in the pipeline's order. */
static void pg_read_results(void)
{
	int nulls = 0;

	while (pg.conn && !PQisBusy(pg.conn)) {
		PGresult *r = PQgetResult(pg.conn);
		struct pg_expect *e = pg.expect_head;
		int sync;

		if (!e) {
			/* Nothing asked: a stray result (there should be none). */
			if (!r)
				break;
			PQclear(r);
			continue;
		}
		sync = e->kind == PG_EXPECT_READ_SYNC || e->kind == PG_EXPECT_GROUP_SYNC ||
		       e->kind == PG_EXPECT_PREPARE_SYNC;
		if (!r) {
			/* A command's results end with a NULL; a sync's do not. */
			if (!sync && e->res) {
				nulls = 0;
				pg.expect_head = e->next;
				if (!pg.expect_head)
					pg.expect_tail = NULL;
				int rc = pg_complete(e);
				PQclear(e->res);
				free(e);
				if (rc < 0) {
					pg_lost("the connection was lost");
					return;
				}
				continue;
			}
			if (++nulls > 1)
				break;
			continue;
		}
		nulls = 0;
		if (sync) {
			if (PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
				/* The commit itself failed. */
				if (pg_is_connection_error(r)) {
					PQclear(r);
					pg_lost("the connection was lost");
					return;
				}
				if (e->kind == PG_EXPECT_GROUP_SYNC && !pg.group_failed &&
				    !pg.group_retry) {
					log_error("pg: a commit failed: %s", PQresultErrorMessage(r));
					if (pg_is_retryable(r))
						pg.group_retry = 1;
					else
						pg.group_failed = pg.group.head;
				}
				PQclear(r);
				continue;
			}
			PQclear(r);
			pg.expect_head = e->next;
			if (!pg.expect_head)
				pg.expect_tail = NULL;
			if (e->kind == PG_EXPECT_GROUP_SYNC)
				pg_group_done();
			free(e);
			continue;
		}
		if (e->res)
			PQclear(r); /* one result per command is all parley's give */
		else
			e->res = r;
	}
	if (pg.conn && PQstatus(pg.conn) == CONNECTION_BAD)
		pg_lost("the connection was lost");
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop, (void)w, (void)revents;
	if (!PQconsumeInput(pg.conn)) {
		pg_lost("the connection was lost");
		return;
	}
	pg_read_results();
	/* libpq may have more to send once it has read (a full socket). */
	if (pg.conn)
		pg_send();
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop, (void)w, (void)revents;
	pg_flush();
}

/* Once per loop iteration, while there is work: calls that failed at once
 * learn it here (never inside pg_call), and what is queued is sent. */
static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct pg_job *j;

	(void)revents;
	ev_prepare_stop(loop, w);
	while ((j = pg_list_pop(&pg.failing)))
		pg_job_finish(j, NULL, j->err);
	if (pg.state == PG_UP)
		pg_send();
}

/* Enters pipeline mode and sends the statements' PREPAREs: what is queued
 * goes after them on the same pipeline. Returns 0, or -1 (not handled). */
static int pg_start_pipeline(int prepare)
{
	if (PQsetnonblocking(pg.conn, 1) != 0 || !PQenterPipelineMode(pg.conn))
		return -1;
	if (prepare) {
		for (size_t i = 0; i < pg.nstmts; i++) {
			if (!PQsendPrepare(pg.conn, pg.stmts[i].name, pg.stmts[i].sql,
					   pg.stmts[i].nparams, NULL))
				return -1;
			pg_expect(PG_EXPECT_PREPARE, NULL);
		}
		if (!PQpipelineSync(pg.conn))
			return -1;
		pg_expect(PG_EXPECT_PREPARE_SYNC, NULL);
	}
	ev_io_set(&pg.rio, PQsocket(pg.conn), EV_READ);
	ev_io_set(&pg.wio, PQsocket(pg.conn), EV_WRITE);
	ev_io_start(pg.loop, &pg.rio);
	pg.state = PG_UP;
	pg.backoff = PG_BACKOFF_MIN;
	pg.why[0] = '\0';
	return 0;
}

static void on_connect_io(struct ev_loop *loop, ev_io *w, int revents);

/* One step of the non-blocking connect: watches what PQconnectPoll wants. */
static void pg_connect_step(void)
{
	PostgresPollingStatusType st = PQconnectPoll(pg.conn);

	ev_io_stop(pg.loop, &pg.rio);
	switch (st) {
	case PGRES_POLLING_READING:
	case PGRES_POLLING_WRITING:
		/* The socket may change between steps (another host, another
		 * address). */
		ev_io_init(&pg.rio, on_connect_io, PQsocket(pg.conn),
			   st == PGRES_POLLING_READING ? EV_READ : EV_WRITE);
		ev_io_start(pg.loop, &pg.rio);
		return;
	case PGRES_POLLING_OK:
		ev_io_init(&pg.rio, on_readable, -1, EV_READ);
		if (pg_start_pipeline(1) < 0) {
			pg_lost("cannot start the pipeline");
			return;
		}
		pg_reconnects++;
		log_warn("pg: connected again to %s", pg.masked);
		pg_flush();
		return;
	default:
		pg_lost("cannot connect");
		return;
	}
}

static void on_connect_io(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop, (void)w, (void)revents;
	pg_connect_step();
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop, (void)w, (void)revents;
	pg.conn = PQconnectStart(pg.uri);
	if (!pg.conn) {
		pg_set_why("cannot connect", "out of memory");
		pg_schedule_reconnect();
		return;
	}
	if (PQstatus(pg.conn) == CONNECTION_BAD) {
		pg_lost("cannot connect");
		return;
	}
	/* libpq's rule: the first step waits for the socket to be writable. */
	pg.state = PG_CONNECTING;
	ev_io_init(&pg.rio, on_connect_io, PQsocket(pg.conn), EV_WRITE);
	ev_io_start(pg.loop, &pg.rio);
}

static void pg_schedule_reconnect(void)
{
	ev_timer_stop(pg.loop, &pg.retry);
	ev_timer_set(&pg.retry, pg.backoff, 0.);
	ev_timer_start(pg.loop, &pg.retry);
	pg.backoff *= 2;
	if (pg.backoff > PG_BACKOFF_MAX)
		pg.backoff = PG_BACKOFF_MAX;
}

static size_t pg_queue_max(void)
{
	return settings.pg_max_queue > 0 ? (size_t)settings.pg_max_queue : 100000;
}

void pg_call(enum pg_kind kind, int stmt, int n, const char *const *values, const int *lengths,
	     const int *binary, pg_done_fn *done, void *arg)
{
	size_t bytes = sizeof(struct pg_job), data = 0;
	struct pg_job *j;
	char *p;

	if (n < 0)
		n = 0;
	for (int i = 0; i < n; i++)
		if (values[i])
			data += (lengths ? (size_t)lengths[i] : strlen(values[i])) + 1;
	bytes += (size_t)n * (sizeof(char *) + 2 * sizeof(int)) + data;
	j = xcalloc(1, bytes);
	j->kind = kind;
	j->stmt = stmt;
	j->n = n;
	j->done = done;
	j->arg = arg;
	j->values = (const char **)(j + 1);
	j->lengths = (int *)(j->values + n);
	j->formats = j->lengths + n;
	p = (char *)(j->formats + n);
	for (int i = 0; i < n; i++) {
		size_t len;
		if (!values[i])
			continue;
		len = lengths ? (size_t)lengths[i] : strlen(values[i]);
		/* Text parameters are read up to a NUL: one is added. */
		memcpy(p, values[i], len);
		p[len] = '\0';
		j->values[i] = p;
		j->lengths[i] = (int)len;
		j->formats[i] = binary && binary[i] ? 1 : 0;
		p += len + 1;
	}
	/* Past PARLEY_PG_MAX_QUEUE the database is far behind: a call fails
	 * rather than memory growing without bound. */
	if (pg.state != PG_UP || stmt < 0 || (size_t)stmt >= pg.nstmts ||
	    pg.reads.n + pg.writes.n + pg.inflight >= pg_queue_max()) {
		if (pg.state == PG_UP && stmt >= 0 && (size_t)stmt < pg.nstmts) {
			log_warn("pg: %zu calls queued or in flight (PARLEY_PG_MAX_QUEUE): a call "
				 "is refused", pg_queue_max());
			metrics_limit("pg_queue");
		}
		j->err = pg.state == PG_UP && (stmt < 0 || (size_t)stmt >= pg.nstmts)
				 ? PARLEY_ESTATEMENT
				 : PARLEY_EUNAVAILABLE;
		pg_list_push(&pg.failing, j);
	} else {
		pg_list_push(kind == PG_READ ? &pg.reads : &pg.writes, j);
	}
	pg_wake();
}

size_t pg_pending(void)
{
	return pg.reads.n + pg.writes.n + pg.inflight + pg.failing.n;
}

int pg_down(const char **why)
{
	if (pg.state == PG_UP)
		return 0;
	if (why)
		*why = pg.why[0] ? pg.why : "PostgreSQL unreachable: not connected";
	return 1;
}

/* At start, blocking: one statement, its failure logged. */
static int pg_exec(const char *sql, const char *what)
{
	PGresult *r = PQexec(pg.conn, sql);
	ExecStatusType st = PQresultStatus(r);
	int rc = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		log_error("pg: %s failed on %s: %s", what, pg.masked,
			  r ? PQresultErrorMessage(r) : PQerrorMessage(pg.conn));
		rc = PARLEY_ESTATEMENT;
	}
	PQclear(r);
	return rc;
}

/* Creates or migrates the schema, under an advisory lock that other
 * processes starting at once wait for. */
static int pg_migrate(const char *const *migrations, size_t nmigrations)
{
	char sql[160];
	PGresult *r = NULL;
	long version;
	int rc;

	snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock(%ld)", PG_MIGRATION_LOCK);
	if ((rc = pg_exec(sql, "taking the migration lock")) < 0)
		return rc;
	if ((rc = pg_exec("CREATE TABLE IF NOT EXISTS parley_schema_version ("
			  "version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())",
			  "creating the version table")) < 0)
		goto out;
	r = PQexec(pg.conn, "SELECT coalesce(max(version), 0) FROM parley_schema_version");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		log_error("pg: reading the schema version failed on %s: %s", pg.masked,
			  PQresultErrorMessage(r));
		rc = PARLEY_ESTATEMENT;
		goto out;
	}
	version = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	if (version > (long)nmigrations) {
		log_error("pg: the database %s has schema version %ld, newer than this parley "
			  "knows (%zu): run a parley at least as new as the one that migrated it",
			  pg.masked, version, nmigrations);
		rc = -EPROTO;
		goto out;
	}
	for (size_t v = (size_t)version; v < nmigrations; v++) {
		char what[64];
		snprintf(what, sizeof(what), "migration %zu", v + 1);
		if ((rc = pg_exec("BEGIN", what)) < 0)
			goto out;
		snprintf(sql, sizeof(sql), "INSERT INTO parley_schema_version (version) VALUES (%zu)",
			 v + 1);
		if ((rc = pg_exec(migrations[v], what)) < 0 || (rc = pg_exec(sql, what)) < 0 ||
		    (rc = pg_exec("COMMIT", what)) < 0) {
			pg_exec("ROLLBACK", what);
			goto out;
		}
		log_info("pg: migrated %s to schema version %zu", pg.masked, v + 1);
	}
	rc = 0;
out:
	PQclear(r);
	snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock(%ld)", PG_MIGRATION_LOCK);
	pg_exec(sql, "letting the migration lock go");
	return rc;
}

int pg_open(const char *uri, struct ev_loop *loop, const char *const *migrations,
	    size_t nmigrations, const struct pg_statement *stmts, size_t nstmts)
{
	int rc;

	for (size_t i = 0; i < sizeof(pg_metrics) / sizeof(pg_metrics[0]); i++)
		metrics_register(&pg_metrics[i]);
	memset(&pg, 0, sizeof(pg));
	pg_mask_uri(uri, pg.masked, sizeof(pg.masked));
	pg.uri = xstrdup(uri);
	pg.stmts = stmts;
	pg.nstmts = nstmts;
	pg.backoff = PG_BACKOFF_MIN;
	pg.state = PG_DOWN;
	pg.conn = PQconnectdb(uri);
	if (!pg.conn || PQstatus(pg.conn) != CONNECTION_OK) {
		log_error("pg: PostgreSQL unreachable at %s: %s", pg.masked,
			  pg.conn ? PQerrorMessage(pg.conn) : "out of memory");
		rc = PARLEY_EUNAVAILABLE;
		goto fail;
	}
	if ((rc = pg_migrate(migrations, nmigrations)) < 0)
		goto fail;
	for (size_t i = 0; i < nstmts; i++) {
		PGresult *r = PQprepare(pg.conn, stmts[i].name, stmts[i].sql, stmts[i].nparams,
					NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			log_error("pg: preparing statement %s failed on %s: %s", stmts[i].name,
				  pg.masked, PQresultErrorMessage(r));
			PQclear(r);
			rc = PARLEY_ESTATEMENT;
			goto fail;
		}
		PQclear(r);
	}
	pg.loop = loop;
	ev_io_init(&pg.rio, on_readable, -1, EV_READ);
	ev_io_init(&pg.wio, on_writable, -1, EV_WRITE);
	ev_prepare_init(&pg.prepare, on_prepare);
	ev_timer_init(&pg.retry, on_retry, 0., 0.);
	if (pg_start_pipeline(0) < 0) {
		log_error("pg: cannot start the pipeline on %s: %s", pg.masked,
			  PQerrorMessage(pg.conn));
		rc = PARLEY_EUNAVAILABLE;
		goto fail;
	}
	log_info("pg: the store is on PostgreSQL at %s (schema version %zu)", pg.masked,
		 nmigrations);
	return 0;
fail:
	if (pg.conn)
		PQfinish(pg.conn);
	pg.conn = NULL;
	free(pg.uri);
	memset(&pg, 0, sizeof(pg));
	return rc;
}

static long long pg_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pg_close(void)
{
	long long deadline = pg_now_ms() + PG_CLOSE_WAIT_MS;
	struct pg_job *j;

	if (pg.state == PG_CLOSED)
		return;
	/* What failed at once learns it first; then what is queued is sent
	 * and answered, while the wait lasts. */
	while ((j = pg_list_pop(&pg.failing)))
		pg_job_finish(j, NULL, j->err);
	while (pg.state == PG_UP && (pg.reads.n || pg.writes.n || pg.expect_head)) {
		long long left = deadline - pg_now_ms();
		struct pollfd fd;

		if (left <= 0 || pg_send() < 0 || !pg.conn)
			break;
		fd.fd = PQsocket(pg.conn);
		fd.events = POLLIN | (ev_is_active(&pg.wio) ? POLLOUT : 0);
		if (poll(&fd, 1, (int)left) < 0 && errno != EINTR)
			break;
		if (fd.revents & POLLOUT)
			on_writable(pg.loop, &pg.wio, 0);
		if (pg.conn && (fd.revents & (POLLIN | POLLERR | POLLHUP)))
			on_readable(pg.loop, &pg.rio, 0);
	}
	if (pg.state == PG_UP && (pg.reads.n || pg.writes.n || pg.expect_head))
		log_warn("pg: closing with store calls unanswered: they fail");
	/* No reconnect from here: pg_lost fails the rest and schedules none. */
	if (pg.loop) {
		ev_timer_stop(pg.loop, &pg.retry);
		ev_prepare_stop(pg.loop, &pg.prepare);
	}
	{
		struct ev_loop *loop = pg.loop;
		pg.loop = NULL;
		if (pg.conn) {
			ev_io_stop(loop, &pg.rio);
			ev_io_stop(loop, &pg.wio);
			PQfinish(pg.conn);
			pg.conn = NULL;
		}
		pg_lost("closing");
	}
	while ((j = pg_list_pop(&pg.failing)))
		pg_job_finish(j, NULL, j->err);
	free(pg.uri);
	memset(&pg, 0, sizeof(pg));
}
