/* pg_copy.c - `parley copy-store URI` (see pg_copy.h): each kind of row of
 * the LMDB store (store/messages.c's layout) read in key order and
 * inserted into the tables of store/pg_schema_1.sql, a transaction every
 * CHUNK rows. Every insert leaves a row that is already there as it is
 * (ON CONFLICT DO NOTHING, or the same values again), so running the
 * command again after an interruption resumes it: the rows committed
 * before are skipped, the rest copied. A table of its own, parley_copy,
 * remembers which directory is being copied, so that a database holding
 * anything else is refused rather than merged into.
 * What the LMDB store keeps only to find rows faster (a conversation's
 * index by seq, the members the other way, the inbox's order, a message's
 * joined counts) is not copied: PostgreSQL's keys and indexes are that.
 * Blocking libpq: it runs instead of the server, not on its loop. */
#include "store/pg_copy.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ev.h>
#include <libpq-fe.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "store/messages.h"
#include "store/pg.h"
#include "store/pg_schema.h"
#include "store/record.h"
#include "store/store.h"

#define CHUNK 1000 /* rows a transaction */
#define PARAMS_MAX 5

/* One row's parameters: text ones are copies (libpq reads a text parameter
 * up to its NUL, and LMDB's bytes have none), binary ones point into the
 * LMDB entry. */
struct copy_row {
	const char *values[PARAMS_MAX];
	int lengths[PARAMS_MAX], binary[PARAMS_MAX];
	char *copies[PARAMS_MAX];
};

/* A kind of row, as the LMDB store holds it and PostgreSQL will. */
struct kind {
	const char *name;
	enum store_db db;
	const char *prefix; /* of the LMDB keys of this kind (NULL: all) */
	size_t plen;
	const char *insert; /* one row, $1.. as `row` fills them */
	const char *count;  /* the rows of this kind in PostgreSQL */
	/* Fills the parameters from an LMDB entry: their number, or 0 when
	 * the entry is not of this kind (skipped, not counted). */
	int (*row)(const char *k, size_t kl, const char *v, size_t vl, struct copy_row *r);
};

/* The copy of one kind under way. */
struct copy {
	PGconn *db;
	const struct kind *kind;
	long seen;     /* LMDB entries of this kind */
	long in_chunk; /* rows sent since the last COMMIT */
	int err;
};

/* ---- one row's parameters ---- */

static void param(struct copy_row *r, int i, const char *s, size_t len)
{
	r->copies[i] = xstrndup(s, len);
	r->values[i] = r->copies[i];
	r->lengths[i] = (int)len;
	r->binary[i] = 0;
}

/* Bytes as they are, for a bytea. */
static void param_bytes(struct copy_row *r, int i, const char *s, size_t len)
{
	r->values[i] = s;
	r->lengths[i] = (int)len;
	r->binary[i] = 1;
}

static void param_number(struct copy_row *r, int i, uint64_t v)
{
	char text[24];

	snprintf(text, sizeof(text), "%" PRIu64, v);
	param(r, i, text, strlen(text));
}

/* A big-endian word as decimal text. */
static void param_u64(struct copy_row *r, int i, const void *p)
{
	param_number(r, i, record_get_u64(p));
}

static void row_free(struct copy_row *r)
{
	for (int i = 0; i < PARAMS_MAX; i++)
		free(r->copies[i]);
}

/* Splits "a\0b" at its first NUL: the length of a, or 0 when there is no
 * NUL or either side is empty. */
static size_t split(const char *k, size_t kl)
{
	const char *nul = memchr(k, '\0', kl);

	if (!nul || nul == k || (size_t)(nul - k) + 1 == kl)
		return 0;
	return (size_t)(nul - k);
}

/* `key` is a "\0" b: $1 a, $2 b. */
static int row_pair(const char *k, size_t kl, struct copy_row *r)
{
	size_t a = split(k, kl);

	if (!a)
		return 0;
	param(r, 0, k, a);
	param(r, 1, k + a + 1, kl - a - 1);
	return 2;
}

/* The NUL-terminated names back to back as a text[] literal: {"a","b"}. */
static char *array_literal(const char *names, size_t len)
{
	char *out = xmalloc(2 * len + 3 * (len + 1) + 3), *o = out;

	*o++ = '{';
	for (const char *p = names; p < names + len; p += strlen(p) + 1) {
		if (o > out + 1)
			*o++ = ',';
		*o++ = '"';
		for (const char *c = p; *c; c++) {
			if (*c == '"' || *c == '\\')
				*o++ = '\\';
			*o++ = *c;
		}
		*o++ = '"';
	}
	*o++ = '}';
	*o = '\0';
	return out;
}

/* messages: id -> the record's JSON and its recipients. */
static int row_message(const char *k, size_t kl, const char *v, size_t vl, struct copy_row *r)
{
	struct record rec;

	(void)k;
	if (kl != MESSAGES_ID_LEN || record_parse(v, vl, &rec) < 0)
		return 0;
	param(r, 0, rec.json, rec.json_len);
	r->copies[1] = array_literal(rec.recipients, rec.recipients_len);
	r->values[1] = r->copies[1];
	return 2;
}

/* statuses: id "\0" user -> level(1) ms(8) [flags(1)]; the id alone keys
 * the joined counts, which PostgreSQL counts itself. */
static int row_status(const char *k, size_t kl, const char *v, size_t vl, struct copy_row *r)
{
	if (kl <= MESSAGES_ID_LEN + 1 || k[MESSAGES_ID_LEN] != '\0' || vl < 9)
		return 0;
	param(r, 0, k, MESSAGES_ID_LEN);
	param(r, 1, k + MESSAGES_ID_LEN + 1, kl - MESSAGES_ID_LEN - 1);
	param_number(r, 2, (unsigned char)v[0]);
	param_u64(r, 3, v + 1);
	param(r, 4, vl > 9 && (v[9] & 1) ? "t" : "f", 1);
	return 5;
}

/* idempotency: sender "\0" client message id -> message id. */
static int row_idem(const char *k, size_t kl, const char *v, size_t vl, struct copy_row *r)
{
	if (!row_pair(k, kl, r) || vl != MESSAGES_ID_LEN)
		return 0;
	param(r, 2, v, vl);
	return 3;
}

/* members: conversation "\0" user. */
static int row_member(const char *k, size_t kl, const char *v, size_t vl, struct copy_row *r)
{
	(void)v, (void)vl;
	return row_pair(k, kl, r);
}

/* users: user -> profile JSON. */
static int row_profile(const char *k, size_t kl, const char *v, size_t vl, struct copy_row *r)
{
	param(r, 0, k, kl);
	param(r, 1, v, vl);
	return 2;
}

/* seen: user -> ms(8). */
static int row_seen(const char *k, size_t kl, const char *v, size_t vl, struct copy_row *r)
{
	if (vl != 8)
		return 0;
	param(r, 0, k, kl);
	param_u64(r, 1, v);
	return 2;
}

/* meta: "rc" "\0" conversation "\0" user -> seq(8), a read cursor. */
static int row_cursor(const char *k, size_t kl, const char *v, size_t vl, struct copy_row *r)
{
	if (kl <= 3 || vl != 8 || !row_pair(k + 3, kl - 3, r))
		return 0;
	param_u64(r, 2, v);
	return 3;
}

/* annotations: id "\0" name -> JSON. */
static int row_annotation(const char *k, size_t kl, const char *v, size_t vl, struct copy_row *r)
{
	if (!row_pair(k, kl, r))
		return 0;
	param(r, 2, v, vl);
	return 3;
}

/* inbox: user "\0" conversation -> activity(8) unread(4). */
static int row_inbox(const char *k, size_t kl, const char *v, size_t vl, struct copy_row *r)
{
	const unsigned char *u = (const unsigned char *)v;

	if (vl != 12 || !row_pair(k, kl, r))
		return 0;
	param_u64(r, 2, v);
	param_number(r, 3, (uint32_t)u[8] << 24 | (uint32_t)u[9] << 16 | (uint32_t)u[10] << 8 | u[11]);
	return 4;
}

/* kv: plugin "\0" key -> expiry ms(8) value; the key and value are bytes. */
static int row_kv(const char *k, size_t kl, const char *v, size_t vl, struct copy_row *r)
{
	size_t plen = split(k, kl);

	if (vl < 8 || !plen)
		return 0;
	param(r, 0, k, plen);
	param_bytes(r, 1, k + plen + 1, kl - plen - 1);
	param_bytes(r, 2, v + 8, vl - 8);
	param_u64(r, 3, v);
	return 4;
}

/* In the order they must go: statuses, annotations and hides find their
 * message's conversation and seq in `messages`. */
static const struct kind kinds[] = {
	{ "messages", STORE_MESSAGES, NULL, 0,
	  "INSERT INTO messages SELECT r->>'conversationId', (r->>'seq')::bigint, "
	  "r->>'messageId', r->>'senderId', r->>'clientMessageId', r->>'type', "
	  "coalesce((r->'content')::text, 'null'), r->>'replyTo', (r->'sender')::text, "
	  "r->>'timestamp', r->>'editedAt', coalesce((r->>'deleted')::boolean, false), $2::text[] "
	  "FROM (SELECT $1::json AS r) j ON CONFLICT DO NOTHING",
	  "SELECT count(*) FROM messages", row_message },
	{ "statuses", STORE_STATUS, NULL, 0,
	  "INSERT INTO statuses SELECT m.conversation_id, m.seq, $2, $3::smallint, $4::bigint, "
	  "$2 = ANY (m.recipients) OR $5::boolean, array_position(m.recipients, $2) "
	  "FROM messages m WHERE m.message_id = $1 ON CONFLICT DO NOTHING",
	  "SELECT count(*) FROM statuses", row_status },
	{ "annotations", STORE_ANNOT, NULL, 0,
	  "INSERT INTO annotations SELECT m.conversation_id, m.seq, $2, $3 FROM messages m "
	  "WHERE m.message_id = $1 ON CONFLICT DO NOTHING",
	  "SELECT count(*) FROM annotations", row_annotation },
	{ "hides", STORE_HIDDEN, NULL, 0,
	  "INSERT INTO hides SELECT m.conversation_id, m.seq, $2 FROM messages m "
	  "WHERE m.message_id = $1 ON CONFLICT DO NOTHING",
	  "SELECT count(*) FROM hides", row_member },
	{ "idempotency keys", STORE_IDEM, NULL, 0,
	  "INSERT INTO idempotency VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
	  "SELECT count(*) FROM idempotency", row_idem },
	{ "members", STORE_MEMBERS, NULL, 0,
	  "INSERT INTO members VALUES ($1, $2) ON CONFLICT DO NOTHING",
	  "SELECT count(*) FROM members", row_member },
	{ "profiles", STORE_USERS, NULL, 0,
	  "INSERT INTO users (user_id, profile) VALUES ($1, $2) ON CONFLICT (user_id) "
	  "DO UPDATE SET profile = excluded.profile",
	  "SELECT count(*) FROM users WHERE profile IS NOT NULL", row_profile },
	{ "last seen", STORE_SEEN, NULL, 0,
	  "INSERT INTO users (user_id, last_seen) VALUES ($1, $2::bigint) ON CONFLICT (user_id) "
	  "DO UPDATE SET last_seen = excluded.last_seen",
	  "SELECT count(*) FROM users WHERE last_seen IS NOT NULL", row_seen },
	{ "read cursors", STORE_META, "rc", 3,
	  "INSERT INTO read_cursors VALUES ($1, $2, $3::bigint) ON CONFLICT DO NOTHING",
	  "SELECT count(*) FROM read_cursors", row_cursor },
	{ "inbox entries", STORE_INBOX, NULL, 0,
	  "INSERT INTO inbox VALUES ($1, $2, $3::bigint, $4::bigint) ON CONFLICT DO NOTHING",
	  "SELECT count(*) FROM inbox", row_inbox },
	{ "plugin kv", STORE_KV, NULL, 0,
	  "INSERT INTO kv VALUES ($1, $2, $3, $4::bigint) ON CONFLICT DO NOTHING",
	  "SELECT count(*) FROM kv", row_kv },
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

/* ---- talking to PostgreSQL ---- */

/* Runs `sql` (no parameters) and checks it answered `want`: 0, or
 * PARLEY_ESTATEMENT (logged). */
static int exec(PGconn *db, const char *sql, ExecStatusType want)
{
	PGresult *res = PQexec(db, sql);
	int rc = 0;

	if (PQresultStatus(res) != want) {
		log_error("copy-store: %s: %s", sql, PQerrorMessage(db));
		rc = PARLEY_ESTATEMENT;
	}
	PQclear(res);
	return rc;
}

/* The first column of the first row of a one-parameter query as a number
 * (`*out`): 0, or PARLEY_ESTATEMENT (logged). */
static int query_long(PGconn *db, const char *sql, const char *param1, long long *out)
{
	PGresult *res = PQexecParams(db, sql, param1 ? 1 : 0, NULL, &param1, NULL, NULL, 0);
	int rc = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_error("copy-store: %s: %s", sql, PQerrorMessage(db));
		rc = PARLEY_ESTATEMENT;
	} else {
		*out = PQntuples(res) ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : -1;
	}
	PQclear(res);
	return rc;
}

/* One LMDB entry (store_scan's callback): its row inserted; every CHUNK
 * rows the transaction commits. Non-zero stops the scan (c->err set). */
static int copy_entry(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct copy *c = arg;
	struct copy_row r;
	PGresult *res;
	int n;

	memset(&r, 0, sizeof(r));
	n = c->kind->row(k, kl, v, vl, &r);
	if (!n)
		return 0;
	c->seen++;
	res = PQexecPrepared(c->db, "copy_row", n, r.values, r.lengths, r.binary, 0);
	row_free(&r);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_error("copy-store: a row of %s: %s", c->kind->name, PQerrorMessage(c->db));
		c->err = PARLEY_ESTATEMENT;
	}
	PQclear(res);
	if (!c->err && ++c->in_chunk == CHUNK) {
		c->in_chunk = 0;
		c->err = exec(c->db, "COMMIT", PGRES_COMMAND_OK);
		if (!c->err)
			c->err = exec(c->db, "BEGIN", PGRES_COMMAND_OK);
	}
	return c->err != 0;
}

/* Copies one kind: its LMDB entries in key order, `*lmdb` of them; then
 * `*pg`, the rows PostgreSQL holds. 0, or a negative code (logged). */
static int copy_kind(PGconn *db, const struct kind *kind, long *lmdb, long long *pg)
{
	struct copy c = { .db = db, .kind = kind };
	PGresult *res = PQprepare(db, "copy_row", kind->insert, 0, NULL);
	long n;

	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_error("copy-store: %s: %s", kind->insert, PQerrorMessage(db));
		PQclear(res);
		return PARLEY_ESTATEMENT;
	}
	PQclear(res);
	c.err = exec(db, "BEGIN", PGRES_COMMAND_OK);
	if (!c.err) {
		n = store_scan(kind->db, kind->prefix ? kind->prefix : "", kind->plen, NULL, 0, LONG_MAX,
			       copy_entry, &c);
		if (n < 0 && !c.err) {
			log_error("copy-store: reading %s from LMDB: %s", kind->name,
				  parley_strerror((int)n));
			c.err = (int)n;
		}
	}
	c.err = c.err ? c.err : exec(db, "COMMIT", PGRES_COMMAND_OK);
	if (c.err)
		exec(db, "ROLLBACK", PGRES_COMMAND_OK);
	c.err = c.err ? c.err : query_long(db, kind->count, NULL, pg);
	exec(db, "DEALLOCATE copy_row", PGRES_COMMAND_OK);
	*lmdb = c.seen;
	return c.err;
}

/* The conversations of the LMDB index: distinct prefixes of its keys. */
struct conversations {
	char last[MESSAGES_NAME_MAX];
	size_t last_len;
	long n;
};

static int count_conversation(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct conversations *cs = arg;
	size_t len = split(k, kl);

	(void)v, (void)vl;
	if (len && len <= sizeof(cs->last) &&
	    (len != cs->last_len || memcmp(k, cs->last, len) != 0)) {
		memcpy(cs->last, k, len);
		cs->last_len = len;
		cs->n++;
	}
	return 0;
}

/* A conversation's sequence goes on after its last copied message. */
static int copy_conversations(PGconn *db, long *lmdb, long long *pg)
{
	struct conversations cs = { .n = 0 };
	long n = store_scan(STORE_CONV, "", 0, NULL, 0, LONG_MAX, count_conversation, &cs);
	int rc;

	if (n < 0) {
		log_error("copy-store: reading conversations from LMDB: %s", parley_strerror((int)n));
		return (int)n;
	}
	*lmdb = cs.n;
	rc = exec(db, "INSERT INTO conversations SELECT conversation_id, max(seq) FROM messages "
		      "GROUP BY conversation_id ON CONFLICT (conversation_id) DO UPDATE "
		      "SET last_seq = greatest(conversations.last_seq, excluded.last_seq)",
		  PGRES_COMMAND_OK);
	return rc ? rc : query_long(db, "SELECT count(*) FROM conversations", NULL, pg);
}

/* Whether the database may take this directory's copy: it holds nothing of
 * parley's yet, or an unfinished copy of `source`. 0; 1 when the copy of
 * `source` is finished (a server may have written since: nothing is copied
 * over it); -ENOTEMPTY (logged), or PARLEY_ESTATEMENT. */
static int claim_database(PGconn *db, const char *source, const char *masked)
{
	long long mine, others;
	int rc;

	rc = exec(db, "CREATE TABLE IF NOT EXISTS parley_copy (source text PRIMARY KEY, "
		      "finished boolean NOT NULL)", PGRES_COMMAND_OK);
	if (!rc)
		rc = query_long(db, "SELECT CASE WHEN finished THEN 2 ELSE 1 END FROM parley_copy "
				    "WHERE source = $1", source, &mine);
	if (rc || mine == 1)
		return rc;
	if (mine == 2)
		return 1;
	rc = query_long(db, "SELECT (SELECT count(*) FROM parley_copy) + (SELECT count(*) FROM "
			    "(SELECT 1 FROM messages UNION ALL SELECT 1 FROM members UNION ALL "
			    "SELECT 1 FROM users UNION ALL SELECT 1 FROM kv UNION ALL "
			    "SELECT 1 FROM inbox LIMIT 1) x)", NULL, &others);
	if (rc)
		return rc;
	if (others) {
		log_error("copy-store: %s is not empty (and holds no unfinished copy of %s): "
			  "copy into an empty database", masked, source);
		return -ENOTEMPTY;
	}
	PGresult *res = PQexecParams(db, "INSERT INTO parley_copy VALUES ($1, false)", 1, NULL,
				     &source, NULL, NULL, 0);
	rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : PARLEY_ESTATEMENT;
	if (rc)
		log_error("copy-store: %s", PQerrorMessage(db));
	PQclear(res);
	return rc;
}

static void report(const char *name, long lmdb, long long pg, int *mismatches)
{
	int ok = (long long)lmdb == pg;

	printf("  %-18s %10ld in LMDB %10lld in PostgreSQL  %s\n", name, lmdb, pg,
	       ok ? "ok" : "DIFFERENT");
	*mismatches += !ok;
}

int pg_copy(const char *dir, size_t map_size, const char *uri)
{
	char masked[512], source[PATH_MAX], path[PATH_MAX];
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	PGconn *db = NULL;
	struct stat st;
	int rc, mismatches = 0;
	long lmdb;
	long long pg;

	pg_mask_uri(uri, masked, sizeof(masked));
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (stat(path, &st) < 0 || !realpath(dir, source)) {
		log_error("copy-store: no LMDB store in %s (PARLEY_DATA_DIR)", dir);
		rc = -ENOENT;
		goto out;
	}
	/* The directory is ours for the copy: a parley running on it would
	 * write what the copy has already passed. */
	rc = store_claim(dir);
	if (!rc)
		rc = store_open(dir, map_size, loop);
	if (rc)
		goto out;
	/* The schema, as the server would make it (pg_open migrates). */
	rc = pg_open(uri, loop, pg_migrations, pg_nmigrations, pg_statements, pg_nstatements);
	pg_close();
	if (rc)
		goto out;
	db = PQconnectdb(uri);
	if (PQstatus(db) != CONNECTION_OK) {
		log_error("copy-store: cannot connect to %s: %s", masked, PQerrorMessage(db));
		rc = PARLEY_EUNAVAILABLE;
		goto out;
	}
	rc = claim_database(db, source, masked);
	if (rc == 1) {
		printf("parley: %s was already copied into %s: nothing done\n", source, masked);
		rc = 0;
		goto out;
	}
	if (rc)
		goto out;
	printf("parley: copying the LMDB store in %s into %s\n", source, masked);
	for (size_t i = 0; i < NKINDS; i++) {
		rc = copy_kind(db, &kinds[i], &lmdb, &pg);
		if (rc)
			goto out;
		report(kinds[i].name, lmdb, pg, &mismatches);
	}
	rc = copy_conversations(db, &lmdb, &pg);
	if (rc)
		goto out;
	report("conversations", lmdb, pg, &mismatches);
	if (mismatches) {
		log_error("copy-store: %d kind%s of rows differ in number: see above", mismatches,
			  mismatches == 1 ? "" : "s");
		rc = -EIO;
		goto out;
	}
	rc = query_long(db, "UPDATE parley_copy SET finished = true WHERE source = $1 "
			    "RETURNING 1", source, &pg);
	if (!rc)
		printf("parley: copied: every count matches\n");
out:
	if (db)
		PQfinish(db);
	store_close();
	ev_loop_destroy(loop);
	return rc;
}
