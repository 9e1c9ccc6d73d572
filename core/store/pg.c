/* pg.c - the store on PostgreSQL (see pg.h): PARLEY_PG_WRITERS libpq
 * connections, each non-blocking and in pipeline mode, their sockets
 * watched by the libev loop. Each read is sent at once with a sync of its
 * own (on the first connection); writes are group-committed, one group in
 * flight per connection, a write going to the connection its statement's
 * routing parameter (a conversation) hashes to. A group is the pipeline's
 * implicit transaction: its statements, then a sync, which commits them
 * all or none (an explicit BEGIN would leave the session in an aborted
 * block after a failure, to be rolled back before anything pipelined behind
 * it could run); the sync's answer comes once the commit is durable. Uses
 * libpq, libev and base/. */
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

/* The most connections a process opens (PARLEY_PG_WRITERS). */
#define PG_CONNS_MAX 16

/* One connection and what it has queued and in flight. */
struct pg_conn {
	enum pg_state state;
	PGconn *conn;
	ev_io rio, wio;
	ev_timer retry;
	double backoff;
	struct pg_list reads, writes;
	/* The write group in flight: its jobs in the order sent. */
	struct pg_list group;
	int group_inflight;
	struct pg_job *group_failed; /* its first statement that failed */
	int group_retry;             /* a deadlock or serialization failure */
	int group_unbatch;           /* a batch failed: its calls go again alone */
	struct pg_expect *expect_head, *expect_tail;
	size_t inflight; /* jobs sent and not yet done */
	char why[256];
};

static struct {
	int open;
	struct ev_loop *loop;
	char *uri;
	char masked[256];
	const struct pg_statement *stmts;
	size_t nstmts;
	ev_prepare prepare;
	struct pg_list failing;
	struct pg_conn conns[PG_CONNS_MAX];
	size_t nconns;
	/* Connections not up: a reconnect is counted, and told, when the
	 * last of them is back (the store is back). */
	size_t ndown;
} pg;

static uint64_t pg_reconnects, pg_transactions, pg_statements, pg_failures, pg_unavailable,
	pg_retries, pg_batches, pg_batch_failures;

/* Calls queued or in flight on every connection. */
static size_t pg_depth(void)
{
	size_t n = 0;

	for (size_t i = 0; i < pg.nconns; i++)
		n += pg.conns[i].reads.n + pg.conns[i].writes.n + pg.conns[i].inflight;
	return n;
}

static long long pg_up_read(void)
{
	return pg.open && pg.ndown == 0;
}

static long long pg_depth_read(void)
{
	return (long long)pg_depth();
}

static struct metrics_value pg_metrics[] = {
	{ .name = "parley_pg_up",
	  .help = "1 while every connection to PostgreSQL (PARLEY_PG_WRITERS) serves, else 0.",
	  .type = "gauge", .read = pg_up_read },
	{ .name = "parley_pg_reconnects_total",
	  .help = "Times the store came back: every connection to PostgreSQL made again after "
		  "one or more were lost.", .type = "counter",
	  .count = &pg_reconnects },
	{ .name = "parley_pg_transactions_total",
	  .help = "Write transactions committed (each carries a group of writes; one in flight "
		  "per connection).",
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
	  .help = "Runs of sends sent as one statement (a batch: one send or many in one call).",
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

static void pg_set_why(struct pg_conn *c, const char *what, const char *detail)
{
	size_t len;

	snprintf(c->why, sizeof(c->why), "PostgreSQL unreachable: %s%s%s", what,
		 detail && *detail ? ": " : "", detail ? detail : "");
	/* libpq's messages run on several lines, indented with tabs: one
	 * line, single spaces. */
	len = 0;
	for (char *p = c->why; *p; p++) {
		char ch = *p == '\n' || *p == '\t' ? ' ' : *p;
		if (ch != ' ' || (len && c->why[len - 1] != ' '))
			c->why[len++] = ch;
	}
	c->why[len] = '\0';
	while (len && c->why[len - 1] == ' ')
		c->why[--len] = '\0';
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

static void pg_expect(struct pg_conn *c, enum pg_expect_kind kind, struct pg_job *job)
{
	struct pg_expect *e = xcalloc(1, sizeof(*e));

	e->kind = kind;
	e->job = job;
	if (c->expect_tail)
		c->expect_tail->next = e;
	else
		c->expect_head = e;
	c->expect_tail = e;
}

static void pg_schedule_reconnect(struct pg_conn *c);

/* The connection is gone (or never came): everything in flight and queued
 * fails PARLEY_EUNAVAILABLE now, and a reconnect is scheduled. */
static void pg_lost(struct pg_conn *c, const char *what)
{
	struct pg_list fail = { 0 };
	struct pg_expect *e;
	struct pg_job *j;

	if (c->conn) {
		pg_set_why(c, what, PQerrorMessage(c->conn));
		/* Loud once (the first connection to go); each further try while
		 * down, quieter. */
		if (c->state == PG_UP && !pg.ndown)
			log_error("pg: %s (%s)", c->why, pg.masked);
		else
			log_warn("pg: %s (%s)", c->why, pg.masked);
		ev_io_stop(pg.loop, &c->rio);
		ev_io_stop(pg.loop, &c->wio);
		PQfinish(c->conn);
		c->conn = NULL;
	}
	/* The state first: a done below that calls again is failed in turn. */
	if (c->state == PG_UP)
		pg.ndown++;
	c->state = PG_DOWN;
	while ((e = c->expect_head)) {
		c->expect_head = e->next;
		PQclear(e->res);
		if (e->kind == PG_EXPECT_JOB && e->job->kind == PG_READ)
			pg_list_push(&fail, e->job);
		free(e);
	}
	c->expect_tail = NULL;
	/* The group's writes, then the queued ones, in the order they came. */
	pg_list_prepend(&c->writes, &c->group);
	c->group_inflight = 0;
	c->group_failed = NULL;
	c->group_retry = 0;
	c->group_unbatch = 0;
	c->inflight = 0;
	while ((j = pg_list_pop(&c->reads)))
		pg_list_push(&fail, j);
	while ((j = pg_list_pop(&c->writes)))
		pg_list_push(&fail, j);
	while ((j = pg_list_pop(&fail)))
		pg_job_finish(j, NULL, PARLEY_EUNAVAILABLE);
	if (pg.loop)
		pg_schedule_reconnect(c);
}

static void pg_watch_write(struct pg_conn *c, int on)
{
	if (on && !ev_is_active(&c->wio))
		ev_io_start(pg.loop, &c->wio);
	else if (!on && ev_is_active(&c->wio))
		ev_io_stop(pg.loop, &c->wio);
}

/* Pushes what libpq buffered to the socket; watches for writability while
 * some is left. Returns 0, or -1 when the connection is gone (handled). */
static int pg_flush(struct pg_conn *c)
{
	int rc = PQflush(c->conn);

	if (rc < 0) {
		pg_lost(c, "the connection was lost");
		return -1;
	}
	pg_watch_write(c, rc == 1);
	return 0;
}

static int pg_send_job(struct pg_conn *c, struct pg_job *j)
{
	const struct pg_statement *s = &pg.stmts[j->stmt];

	if (!PQsendQueryPrepared(c->conn, s->name, j->n, j->values, j->lengths, j->formats, 0))
		return -1;
	pg_expect(c, PG_EXPECT_JOB, j);
	c->inflight++;
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
static int pg_send_batch(struct pg_conn *c, struct pg_job *first, size_t count)
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
	ok = PQsendQueryPrepared(c->conn, pg.stmts[s->batch].name, n, values, NULL, NULL, 0);
	for (int i = 0; i < n; i++)
		free(arrays[i].p);
	free(arrays);
	free(values);
	if (!ok)
		return -1;
	pg_batches++;
	pg_expect(c, PG_EXPECT_BATCH, first);
	c->expect_tail->count = count;
	c->inflight += count;
	return 0;
}

/* Sends the queued reads, each with its sync, and a write group when none
 * is in flight: a run of writes that can go as one batch goes as one.
 * Returns 0, or -1 when the connection is gone (handled). */
static int pg_send(struct pg_conn *c)
{
	struct pg_job *j;
	int sent = 0;

	while ((j = pg_list_pop(&c->reads))) {
		if (pg_send_job(c, j) < 0 || !PQpipelineSync(c->conn)) {
			pg_list_push(&c->reads, j); /* failed with the rest in pg_lost */
			pg_lost(c, "cannot send to PostgreSQL");
			return -1;
		}
		pg_expect(c, PG_EXPECT_READ_SYNC, NULL);
		sent = 1;
	}
	if (!c->group_inflight && c->writes.n) {
		while (c->group.n < PG_GROUP_MAX && (j = pg_list_pop(&c->writes))) {
			size_t count = 1, bytes = pg_job_bytes(j);
			struct pg_job *next;
			pg_list_push(&c->group, j);
			while (pg_batchable(j) && c->group.n < PG_GROUP_MAX &&
			       bytes < PG_BATCH_BYTES && (next = c->writes.head) &&
			       next->stmt == j->stmt && next->n == j->n && pg_batchable(next)) {
				pg_list_push(&c->group, pg_list_pop(&c->writes));
				bytes += pg_job_bytes(next);
				count++;
			}
			/* One batchable write goes as a batch too: a send is
			 * written one way (schema 4's parley_send_many), its own
			 * statement only once its batch failed. */
			if (pg_batchable(j) ? pg_send_batch(c, j, count) < 0 : pg_send_job(c, j) < 0)
				goto lost;
		}
		if (!PQpipelineSync(c->conn))
			goto lost;
		pg_expect(c, PG_EXPECT_GROUP_SYNC, NULL);
		c->group_inflight = 1;
		sent = 1;
	}
	return sent ? pg_flush(c) : 0;
lost:
	pg_lost(c, "cannot send to PostgreSQL");
	return -1;
}

/* The write group's sync came back: its transaction committed, or was
 * rolled back because a statement failed. */
static void pg_group_done(struct pg_conn *c)
{
	struct pg_list group = c->group, again = { 0 };
	struct pg_job *j, *failed = c->group_failed;
	int retry = c->group_retry, unbatch = c->group_unbatch;

	memset(&c->group, 0, sizeof(c->group));
	c->group_inflight = 0;
	c->group_failed = NULL;
	c->group_retry = 0;
	c->group_unbatch = 0;
	c->inflight -= group.n;
	if (!failed && !retry && !unbatch) {
		pg_transactions++;
		/* The next group goes first: what the committed writes' jobs do
		 * now (a send's acks and deliveries) keeps the loop for a while,
		 * which PostgreSQL would otherwise spend waiting. A connection
		 * lost meanwhile fails only what was not committed. */
		if (c->writes.n)
			pg_send(c);
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
	pg_list_prepend(&c->writes, &again);
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
static int pg_complete_batch(struct pg_conn *c, struct pg_expect *e)
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
	if (c->group_failed || c->group_retry)
		return 0;
	if (st == PGRES_FATAL_ERROR && pg_is_retryable(r)) {
		c->group_retry = 1;
		return 0;
	}
	log_warn("pg: a batch of %zu calls of %s failed (%s): each goes again alone",
		 e->count, pg.stmts[j->stmt].name,
		 st == PGRES_FATAL_ERROR ? PQresultErrorMessage(r) : "not a row a call");
	for (size_t i = 0; i < e->count; i++, j = j->next)
		j->single = 1;
	c->group_unbatch = 1;
	pg_batch_failures++;
	return 0;
}

/* One command's results are all in (`e->res`, or NULL: none came). Returns
 * 0, or -1 when the connection is gone (handled). */
static int pg_complete(struct pg_conn *c, struct pg_expect *e)
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
		return pg_complete_batch(c, e);
	if (st == PGRES_FATAL_ERROR && (!r || pg_is_connection_error(r)))
		return -1;
	if (j->kind == PG_READ) {
		c->inflight--;
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
	} else if (st == PGRES_FATAL_ERROR && !c->group_failed && !c->group_retry &&
		   !c->group_unbatch) {
		if (pg_is_retryable(r)) {
			c->group_retry = 1;
		} else {
			pg_log_statement_error(j, r);
			c->group_failed = j;
		}
	}
	return 0;
}

/* Reads every result libpq has, in the pipeline's order. */
static void pg_read_results(struct pg_conn *c)
{
	int nulls = 0;

	while (c->conn && !PQisBusy(c->conn)) {
		PGresult *r = PQgetResult(c->conn);
		struct pg_expect *e = c->expect_head;
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
				c->expect_head = e->next;
				if (!c->expect_head)
					c->expect_tail = NULL;
				int rc = pg_complete(c, e);
				PQclear(e->res);
				free(e);
				if (rc < 0) {
					pg_lost(c, "the connection was lost");
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
					pg_lost(c, "the connection was lost");
					return;
				}
				if (e->kind == PG_EXPECT_GROUP_SYNC && !c->group_failed &&
				    !c->group_retry) {
					log_error("pg: a commit failed: %s", PQresultErrorMessage(r));
					if (pg_is_retryable(r))
						c->group_retry = 1;
					else
						c->group_failed = c->group.head;
				}
				PQclear(r);
				continue;
			}
			PQclear(r);
			c->expect_head = e->next;
			if (!c->expect_head)
				c->expect_tail = NULL;
			if (e->kind == PG_EXPECT_GROUP_SYNC)
				pg_group_done(c);
			free(e);
			continue;
		}
		if (e->res)
			PQclear(r); /* one result per command is all parley's give */
		else
			e->res = r;
	}
	if (c->conn && PQstatus(c->conn) == CONNECTION_BAD)
		pg_lost(c, "the connection was lost");
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pg_conn *c = w->data;

	(void)loop, (void)revents;
	if (!PQconsumeInput(c->conn)) {
		pg_lost(c, "the connection was lost");
		return;
	}
	pg_read_results(c);
	/* libpq may have more to send once it has read (a full socket). */
	if (c->conn)
		pg_send(c);
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop, (void)revents;
	pg_flush(w->data);
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
	for (size_t i = 0; i < pg.nconns; i++)
		if (pg.conns[i].state == PG_UP)
			pg_send(&pg.conns[i]);
}

/* Enters pipeline mode and sends the statements' PREPAREs: what is queued
 * goes after them on the same pipeline. Returns 0, or -1 (not handled). */
static int pg_start_pipeline(struct pg_conn *c, int prepare)
{
	if (PQsetnonblocking(c->conn, 1) != 0 || !PQenterPipelineMode(c->conn))
		return -1;
	if (prepare) {
		for (size_t i = 0; i < pg.nstmts; i++) {
			if (!PQsendPrepare(c->conn, pg.stmts[i].name, pg.stmts[i].sql,
					   pg.stmts[i].nparams, NULL))
				return -1;
			pg_expect(c, PG_EXPECT_PREPARE, NULL);
		}
		if (!PQpipelineSync(c->conn))
			return -1;
		pg_expect(c, PG_EXPECT_PREPARE_SYNC, NULL);
	}
	ev_io_set(&c->rio, PQsocket(c->conn), EV_READ);
	ev_io_set(&c->wio, PQsocket(c->conn), EV_WRITE);
	ev_io_start(pg.loop, &c->rio);
	c->state = PG_UP;
	c->backoff = PG_BACKOFF_MIN;
	c->why[0] = '\0';
	return 0;
}

static void on_connect_io(struct ev_loop *loop, ev_io *w, int revents);

/* One step of the non-blocking connect: watches what PQconnectPoll wants. */
static void pg_connect_step(struct pg_conn *c)
{
	PostgresPollingStatusType st = PQconnectPoll(c->conn);

	ev_io_stop(pg.loop, &c->rio);
	switch (st) {
	case PGRES_POLLING_READING:
	case PGRES_POLLING_WRITING:
		/* The socket may change between steps (another host, another
		 * address). */
		ev_io_init(&c->rio, on_connect_io, PQsocket(c->conn),
			   st == PGRES_POLLING_READING ? EV_READ : EV_WRITE);
		ev_io_start(pg.loop, &c->rio);
		return;
	case PGRES_POLLING_OK:
		ev_io_init(&c->rio, on_readable, -1, EV_READ);
		if (pg_start_pipeline(c, 1) < 0) {
			pg_lost(c, "cannot start the pipeline");
			return;
		}
		/* The store is back once every connection is. */
		if (pg.ndown && !--pg.ndown) {
			pg_reconnects++;
			log_warn("pg: connected again to %s", pg.masked);
		}
		pg_flush(c);
		return;
	default:
		pg_lost(c, "cannot connect");
		return;
	}
}

static void on_connect_io(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop, (void)revents;
	pg_connect_step(w->data);
}

static void on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pg_conn *c = w->data;

	(void)loop, (void)revents;
	c->conn = PQconnectStart(pg.uri);
	if (!c->conn) {
		pg_set_why(c, "cannot connect", "out of memory");
		pg_schedule_reconnect(c);
		return;
	}
	if (PQstatus(c->conn) == CONNECTION_BAD) {
		pg_lost(c, "cannot connect");
		return;
	}
	/* libpq's rule: the first step waits for the socket to be writable. */
	c->state = PG_CONNECTING;
	ev_io_init(&c->rio, on_connect_io, PQsocket(c->conn), EV_WRITE);
	ev_io_start(pg.loop, &c->rio);
}

static void pg_schedule_reconnect(struct pg_conn *c)
{
	ev_timer_stop(pg.loop, &c->retry);
	ev_timer_set(&c->retry, c->backoff, 0.);
	ev_timer_start(pg.loop, &c->retry);
	c->backoff *= 2;
	if (c->backoff > PG_BACKOFF_MAX)
		c->backoff = PG_BACKOFF_MAX;
}

static size_t pg_queue_max(void)
{
	return settings.pg_max_queue > 0 ? (size_t)settings.pg_max_queue : 100000;
}

/* A call's job, its parameters copied (pg_call's). */
static struct pg_job *pg_job_new(enum pg_kind kind, int stmt, int n, const char *const *values,
				 const int *lengths, const int *binary, pg_done_fn *done, void *arg)
{
	size_t bytes = sizeof(struct pg_job), data = 0;
	struct pg_job *j;
	char *p;

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
	return j;
}

/* Queues `j` on connection `c`, or on the failing list (told at the next
 * loop iteration, never inside pg_call) when it cannot go. */
static void pg_queue(struct pg_conn *c, struct pg_job *j)
{
	int known = j->stmt >= 0 && (size_t)j->stmt < pg.nstmts;

	/* Past PARLEY_PG_MAX_QUEUE the database is far behind: a call fails
	 * rather than memory growing without bound. */
	if (c->state != PG_UP || !known || pg_depth() >= pg_queue_max()) {
		if (c->state == PG_UP && known) {
			log_warn("pg: %zu calls queued or in flight (PARLEY_PG_MAX_QUEUE): a call "
				 "is refused", pg_queue_max());
			metrics_limit("pg_queue");
		}
		j->err = c->state == PG_UP && !known ? PARLEY_ESTATEMENT : PARLEY_EUNAVAILABLE;
		pg_list_push(&pg.failing, j);
	} else {
		pg_list_push(j->kind == PG_READ ? &c->reads : &c->writes, j);
	}
	pg_wake();
}

/* The connection a write of `j`'s statement goes to: the one its routing
 * parameter hashes to (FNV-1a), so that every write about one conversation
 * goes through one connection, in the order it was made; the first for the
 * others and every read. */
static struct pg_conn *pg_route(const struct pg_job *j)
{
	int route = j->stmt >= 0 && (size_t)j->stmt < pg.nstmts ? pg.stmts[j->stmt].route : 0;
	uint32_t h = 2166136261u;

	if (j->kind == PG_READ || route <= 0 || route > j->n || !j->values[route - 1] ||
	    pg.nconns <= 1)
		return &pg.conns[0];
	for (int i = 0; i < j->lengths[route - 1]; i++)
		h = (h ^ (uint8_t)j->values[route - 1][i]) * 16777619u;
	return &pg.conns[h % pg.nconns];
}

/* A call that goes to every connection (store.wait): done once all have
 * answered, with the first failure if any. */
struct pg_fan {
	pg_done_fn *done;
	void *arg;
	size_t left;
	int err;
};

static void on_fan_done(void *arg, const PGresult *res, int err)
{
	struct pg_fan *f = arg;

	if (err && !f->err)
		f->err = err;
	if (--f->left)
		return;
	f->done(f->arg, f->err ? NULL : res, f->err);
	free(f);
}

void pg_call(enum pg_kind kind, int stmt, int n, const char *const *values, const int *lengths,
	     const int *binary, pg_done_fn *done, void *arg)
{
	struct pg_job *j;

	if (n < 0)
		n = 0;
	if (pg.nconns > 1 && stmt >= 0 && (size_t)stmt < pg.nstmts &&
	    pg.stmts[stmt].route == PG_ROUTE_ALL) {
		struct pg_fan *f = xmalloc(sizeof(*f));
		*f = (struct pg_fan){ done, arg, pg.nconns, 0 };
		for (size_t i = 0; i < pg.nconns; i++)
			pg_queue(&pg.conns[i], pg_job_new(kind, stmt, n, values, lengths, binary,
							  on_fan_done, f));
		return;
	}
	j = pg_job_new(kind, stmt, n, values, lengths, binary, done, arg);
	pg_queue(pg_route(j), j);
}

size_t pg_pending(void)
{
	return pg_depth() + pg.failing.n;
}

int pg_down(const char **why)
{
	if (pg.open && !pg.ndown)
		return 0;
	if (why) {
		*why = "PostgreSQL unreachable: not connected";
		for (size_t i = 0; i < pg.nconns; i++)
			if (pg.conns[i].state != PG_UP && pg.conns[i].why[0])
				*why = pg.conns[i].why;
	}
	return 1;
}

/* At start, blocking: one statement, its failure logged. */
static int pg_exec(PGconn *conn, const char *sql, const char *what)
{
	PGresult *r = PQexec(conn, sql);
	ExecStatusType st = PQresultStatus(r);
	int rc = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		log_error("pg: %s failed on %s: %s", what, pg.masked,
			  r ? PQresultErrorMessage(r) : PQerrorMessage(conn));
		rc = PARLEY_ESTATEMENT;
	}
	PQclear(r);
	return rc;
}

/* Creates or migrates the schema, under an advisory lock that other
 * processes starting at once wait for. */
static int pg_migrate(PGconn *conn, const char *const *migrations, size_t nmigrations)
{
	char sql[160];
	PGresult *r = NULL;
	long version;
	int rc;

	snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock(%ld)", PG_MIGRATION_LOCK);
	if ((rc = pg_exec(conn, sql, "taking the migration lock")) < 0)
		return rc;
	if ((rc = pg_exec(conn, "CREATE TABLE IF NOT EXISTS parley_schema_version ("
			  "version integer PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())",
			  "creating the version table")) < 0)
		goto out;
	r = PQexec(conn, "SELECT coalesce(max(version), 0) FROM parley_schema_version");
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
		if ((rc = pg_exec(conn, "BEGIN", what)) < 0)
			goto out;
		snprintf(sql, sizeof(sql), "INSERT INTO parley_schema_version (version) VALUES (%zu)",
			 v + 1);
		if ((rc = pg_exec(conn, migrations[v], what)) < 0 || (rc = pg_exec(conn, sql, what)) < 0 ||
		    (rc = pg_exec(conn, "COMMIT", what)) < 0) {
			pg_exec(conn, "ROLLBACK", what);
			goto out;
		}
		log_info("pg: migrated %s to schema version %zu", pg.masked, v + 1);
	}
	rc = 0;
out:
	PQclear(r);
	snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock(%ld)", PG_MIGRATION_LOCK);
	pg_exec(conn, sql, "letting the migration lock go");
	return rc;
}

/* Connects `c` at start (blocking), prepares the statements and enters
 * pipeline mode. Returns 0, or a negative code, logged. */
static int pg_conn_open(struct pg_conn *c)
{
	c->conn = PQconnectdb(pg.uri);
	if (!c->conn || PQstatus(c->conn) != CONNECTION_OK) {
		log_error("pg: PostgreSQL unreachable at %s: %s", pg.masked,
			  c->conn ? PQerrorMessage(c->conn) : "out of memory");
		return PARLEY_EUNAVAILABLE;
	}
	return 0;
}

static int pg_conn_prepare(struct pg_conn *c)
{
	for (size_t i = 0; i < pg.nstmts; i++) {
		PGresult *r = PQprepare(c->conn, pg.stmts[i].name, pg.stmts[i].sql,
					pg.stmts[i].nparams, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			log_error("pg: preparing statement %s failed on %s: %s", pg.stmts[i].name,
				  pg.masked, PQresultErrorMessage(r));
			PQclear(r);
			return PARLEY_ESTATEMENT;
		}
		PQclear(r);
	}
	ev_io_init(&c->rio, on_readable, -1, EV_READ);
	ev_io_init(&c->wio, on_writable, -1, EV_WRITE);
	ev_timer_init(&c->retry, on_retry, 0., 0.);
	c->rio.data = c->wio.data = c->retry.data = c;
	if (pg_start_pipeline(c, 0) < 0) {
		log_error("pg: cannot start the pipeline on %s: %s", pg.masked,
			  PQerrorMessage(c->conn));
		return PARLEY_EUNAVAILABLE;
	}
	return 0;
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
	pg.loop = loop;
	pg.nconns = settings.pg_writers >= 1 && settings.pg_writers <= PG_CONNS_MAX
			    ? (size_t)settings.pg_writers : 1;
	for (size_t i = 0; i < pg.nconns; i++) {
		pg.conns[i].backoff = PG_BACKOFF_MIN;
		pg.conns[i].state = PG_DOWN;
	}
	ev_prepare_init(&pg.prepare, on_prepare);
	/* The first connection migrates (the others wait for nothing: the
	 * schema is there once it has). */
	if ((rc = pg_conn_open(&pg.conns[0])) < 0 ||
	    (rc = pg_migrate(pg.conns[0].conn, migrations, nmigrations)) < 0)
		goto fail;
	for (size_t i = 0; i < pg.nconns; i++)
		if ((i && (rc = pg_conn_open(&pg.conns[i])) < 0) ||
		    (rc = pg_conn_prepare(&pg.conns[i])) < 0)
			goto fail;
	pg.open = 1;
	log_info("pg: the store is on PostgreSQL at %s (schema version %zu, %zu connection%s)",
		 pg.masked, nmigrations, pg.nconns, pg.nconns == 1 ? "" : "s");
	return 0;
fail:
	for (size_t i = 0; i < pg.nconns; i++) {
		ev_io_stop(loop, &pg.conns[i].rio);
		if (pg.conns[i].conn)
			PQfinish(pg.conns[i].conn);
	}
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

/* Whether connection `c` still has something to send or to be answered. */
static int pg_busy(const struct pg_conn *c)
{
	return c->state == PG_UP && (c->reads.n || c->writes.n || c->expect_head);
}

void pg_close(void)
{
	long long deadline = pg_now_ms() + PG_CLOSE_WAIT_MS;
	struct pollfd fds[PG_CONNS_MAX];
	struct pg_conn *on[PG_CONNS_MAX];
	struct pg_job *j;
	struct ev_loop *loop = pg.loop;
	int left_busy;

	if (!pg.open)
		return;
	/* What failed at once learns it first; then what is queued is sent
	 * and answered on every connection, while the wait lasts. */
	while ((j = pg_list_pop(&pg.failing)))
		pg_job_finish(j, NULL, j->err);
	for (;;) {
		long long left = deadline - pg_now_ms();
		nfds_t n = 0;

		for (size_t i = 0; i < pg.nconns; i++) {
			struct pg_conn *c = &pg.conns[i];
			if (!pg_busy(c) || pg_send(c) < 0 || !c->conn)
				continue;
			on[n] = c;
			fds[n].fd = PQsocket(c->conn);
			fds[n].events = POLLIN | (ev_is_active(&c->wio) ? POLLOUT : 0);
			fds[n].revents = 0;
			n++;
		}
		if (!n || left <= 0)
			break;
		if (poll(fds, n, (int)left) < 0 && errno != EINTR)
			break;
		for (nfds_t k = 0; k < n; k++) {
			if (fds[k].revents & POLLOUT)
				on_writable(loop, &on[k]->wio, 0);
			if (on[k]->conn && (fds[k].revents & (POLLIN | POLLERR | POLLHUP)))
				on_readable(loop, &on[k]->rio, 0);
		}
	}
	left_busy = 0;
	for (size_t i = 0; i < pg.nconns; i++)
		left_busy |= pg_busy(&pg.conns[i]);
	if (left_busy)
		log_warn("pg: closing with store calls unanswered: they fail");
	/* No reconnect from here: with the loop gone, pg_lost fails the rest
	 * and schedules none. */
	ev_prepare_stop(loop, &pg.prepare);
	pg.loop = NULL;
	for (size_t i = 0; i < pg.nconns; i++) {
		struct pg_conn *c = &pg.conns[i];
		ev_timer_stop(loop, &c->retry);
		if (c->conn) {
			ev_io_stop(loop, &c->rio);
			ev_io_stop(loop, &c->wio);
			PQfinish(c->conn);
			c->conn = NULL;
		}
		pg_lost(c, "closing");
	}
	while ((j = pg_list_pop(&pg.failing)))
		pg_job_finish(j, NULL, j->err);
	free(pg.uri);
	memset(&pg, 0, sizeof(pg));
}
