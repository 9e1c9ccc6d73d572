/* messages.c - the message store (see messages.h). Keys and values:
 *   messages  id(16 hex) -> u32 json length, the record's JSON, then the
 *             recipients at send time, each followed by a NUL (written once:
 *             a record is as large as its message)
 *   conv      conversation "\0" seq(8, big-endian) -> id
 *   status    id "\0" user -> level(1) updated ms(8) [flags(1): STATUS_JOINED]
 *             id -> joined recipients at sent, delivered, read (3 x u32)
 *   members   conversation "\0" user -> ""      userconv  user "\0" conversation -> ""
 *   idem      sender "\0" client message id -> id
 *   users     user -> profile JSON              seen      user -> ms(8)
 *   meta      "rc" "\0" conversation "\0" user -> seq(8) (a user's read cursor)
 *   annot     id "\0" name -> JSON: a plugin's field of the message, shown with it
 *   hidden    id "\0" user -> "": deleted for that user only
 * Ids are time-ordered, so the last key of `messages` is the last id given.
 * A conversation's next sequence number is cached after its first message,
 * and whether it has registered members after the first question.
 * The host functions build in scratch memory (scratch.h), and submit their
 * store batch before they push what they return: a push may raise (the
 * memory budget refusing it), and must strand neither. */
#include "store/messages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>

#include "wire/json.h"
#include "lua/jsonlua.h"
#include "base/log.h"
#include "base/map.h"
#include "base/scratch.h"
#include "lua/tickets.h"
#include "store/store.h"

#define ID_LEN 16
#define NAME_MAX_BYTES 200   /* ids, user ids, conversation ids */
#define RECIPIENTS_MAX 10000
#define STATUS_LIST_MAX 1000 /* ids in one store.set_status */
#define SYNC_MAX 500
#define READ_MAX 5000
/* A status row's flag: the user joined the message's recipients after it
 * was sent (an open conversation's newcomer who marked it). */
#define STATUS_JOINED 1

static uint64_t last_id;
static struct map seqs; /* conversation -> (uintptr_t) last seq, once known */
/* conversation -> (uintptr_t) 1 + whether it has registered members, once
 * asked; a fresh map when it grows past REGISTERED_CACHE_MAX. */
static struct map registered_cache;
#define REGISTERED_CACHE_MAX 100000

static const char *const status_names[] = { "none", "sent", "delivered", "read" };

/* ---- small helpers ---- */

struct buf {
	char *p;
	size_t len, cap;
};

#define BUF_FIRST 512 /* a record with its content fits in the first block */

static void buf_put(struct buf *b, const void *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		if (b->cap < BUF_FIRST)
			b->cap = BUF_FIRST;
		b->p = scratch_realloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
	buf_put(b, s, strlen(s));
}

/* A JSON string token for `s`. */
static void buf_json_string(struct buf *b, const char *s, size_t n)
{
	char small[256];
	char *tmp = json_escaped_max(n) <= sizeof(small) ? small :
		    scratch_alloc(json_escaped_max(n));
	size_t m = json_escape(s, n, tmp);

	buf_put(b, tmp, m);
	if (tmp != small)
		scratch_free(tmp);
}

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes `v` as `width` decimal digits. */
static void put_digits(char *out, unsigned v, int width)
{
	for (int i = width - 1; i >= 0; i--, v /= 10)
		out[i] = (char)('0' + v % 10);
}

/* "2026-11-25T23:27:00.123Z" into out[25]. The date and time of the last
 * second asked for are kept: every message of a second shares them, and
 * formatting them anew cost more than the rest of a send's record. */
static void iso_time(int64_t ms, char out[64])
{
	static int64_t cached_s = -1;
	static char cached[20];
	int64_t s = ms / 1000, frac = ms % 1000;

	if (frac < 0) {
		frac += 1000;
		s--;
	}

	if (s != cached_s) {
		time_t t = (time_t)s;
		struct tm tm;
		gmtime_r(&t, &tm);
		put_digits(cached, (unsigned)(tm.tm_year + 1900) % 10000, 4);
		cached[4] = '-';
		put_digits(cached + 5, (unsigned)tm.tm_mon + 1, 2);
		cached[7] = '-';
		put_digits(cached + 8, (unsigned)tm.tm_mday, 2);
		cached[10] = 'T';
		put_digits(cached + 11, (unsigned)tm.tm_hour, 2);
		cached[13] = ':';
		put_digits(cached + 14, (unsigned)tm.tm_min, 2);
		cached[16] = ':';
		put_digits(cached + 17, (unsigned)tm.tm_sec, 2);
		cached[19] = '.';
		cached_s = s;
	}
	memcpy(out, cached, 20);
	put_digits(out + 20, (unsigned)frac, 3);
	out[23] = 'Z';
	out[24] = '\0';
}

/* a "\0" b into out; returns the length, or 0 when it would not fit. */
static size_t pair_key(char *out, size_t cap, const char *a, size_t alen, const char *b,
		       size_t blen)
{
	if (alen + 1 + blen > cap)
		return 0;
	memcpy(out, a, alen);
	out[alen] = '\0';
	memcpy(out + alen + 1, b, blen);
	return alen + 1 + blen;
}

static const char *check_name(lua_State *L, int idx, const char *what, size_t *len)
{
	const char *s = luaL_checklstring(L, idx, len);

	if (*len == 0 || *len > NAME_MAX_BYTES || memchr(s, '\0', *len))
		luaL_error(L, "store: %s must be 1 to %d bytes without NUL", what, NAME_MAX_BYTES);
	return s;
}

/* A string field of the table at `t` (read raw: no script code runs for
 * it, and the table keeps the string alive), or NULL when absent. */
static const char *field_string(lua_State *L, int t, const char *name, size_t *len)
{
	const char *s;

	lua_pushstring(L, name);
	lua_rawget(L, t);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		*len = 0;
		return NULL;
	}
	if (lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "store.send: %s must be a string", name);
	s = lua_tolstring(L, -1, len);
	/* The table keeps the string alive while we use it. */
	lua_pop(L, 1);
	return s;
}

/* Forgets what the caches took from pending writes once the store has
 * heard of a failed commit: the cached sequence numbers and membership may
 * be ahead of what is stored. Nothing queued before the loop heard of the
 * failure commits after it (store_submit's barrier), so the database is
 * then the truth, and the next message of a conversation takes the number
 * after its last stored one: a failed send leaves no gap. */
static void caches_check(void)
{
	static uint64_t failures;

	if (store_failures_heard() == failures)
		return;
	failures = store_failures_heard();
	map_fini(&seqs);
	map_init(&seqs);
	map_fini(&registered_cache);
	map_init(&registered_cache);
}

/* Called when one of our batches is done. */
static void on_written(void *ticket, int err)
{
	if (ticket)
		tickets_done(ticket, err);
}

/* Submits `b` (which it takes); returns the ticket its completion resumes,
 * for the caller to push. */
static lua_Number submit(struct store_batch *b)
{
	uintptr_t ticket = tickets_new();

	store_submit(b, on_written, (void *)ticket);
	return (lua_Number)ticket;
}

/* ---- records ---- */

struct record {
	const char *json;
	size_t json_len;
	const char *recipients; /* NUL-terminated names, back to back */
	size_t recipients_len;
};

/* Reads a stored message value into `r` (pointers into `v`). */
static int record_parse(const void *v, size_t vlen, struct record *r)
{
	const unsigned char *p = v;
	uint32_t n;

	if (vlen < 4)
		return -1;
	n = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	if (4 + (size_t)n > vlen)
		return -1;
	r->json = (const char *)p + 4;
	r->json_len = n;
	r->recipients = (const char *)p + 4 + n;
	r->recipients_len = vlen - 4 - n;
	return 0;
}

/* The message `id` read into `r`, without a copy (a record is as large as
 * its message, and a conversation:read reads thousands): valid until the
 * calling host function returns (see store_peek). */
static int message_load(const char *id, size_t idlen, struct record *r)
{
	const void *v;
	size_t vlen;
	int rc = store_peek(STORE_MESSAGES, id, idlen, &v, &vlen);

	if (rc <= 0)
		return rc;
	return record_parse(v, vlen, r) < 0 ? -1 : 1;
}

static void record_value(struct buf *v, const char *json, size_t jlen, const char *rec,
			 size_t rlen)
{
	unsigned char head[4] = { (unsigned char)(jlen >> 24), (unsigned char)(jlen >> 16),
				  (unsigned char)(jlen >> 8), (unsigned char)jlen };

	buf_put(v, head, 4);
	buf_put(v, json, jlen);
	if (rlen)
		buf_put(v, rec, rlen);
}

/* A JSON string field's value in a record (the core wrote it: no escapes
 * in ids), copied into `out`; its length, or 0. */
static size_t record_field(const struct record *r, const char *field, char *out, size_t cap)
{
	struct json_span v;
	long n;

	if (json_object_get((struct json_span){ r->json, r->json_len }, field, &v) != 1)
		return 0;
	n = json_string_unescape(v, out, cap);
	return n > 0 ? (size_t)n : 0;
}

/* A user's status of a message: its level (0: none), and whether the user
 * joined the message's recipients after it was sent (STATUS_JOINED). */
static int status_of(const char *id, const char *user, size_t ulen, int *flags)
{
	char key[ID_LEN + 1 + NAME_MAX_BYTES];
	size_t klen = pair_key(key, sizeof(key), id, ID_LEN, user, ulen);
	const void *v;
	size_t vlen;

	*flags = 0;
	if (!klen || store_get(STORE_STATUS, key, klen, &v, &vlen) != 1 || vlen < 9)
		return 0;
	if (vlen > 9)
		*flags = ((const unsigned char *)v)[9];
	return ((const unsigned char *)v)[0];
}

static void status_put(struct store_batch *b, const char *id, const char *user, size_t ulen,
		       int level, int64_t at, int flags)
{
	char key[ID_LEN + 1 + NAME_MAX_BYTES];
	unsigned char word[10];

	word[0] = (unsigned char)level;
	put_u64(word + 1, (uint64_t)at);
	word[9] = (unsigned char)flags;
	store_put(b, STORE_STATUS, key, pair_key(key, sizeof(key), id, ID_LEN, user, ulen), word,
		  flags ? 10 : 9);
}

/* How many joined recipients a message has at each level (at[0] unused):
 * kept under the bare message id in STATUS, so that the aggregate of a
 * message costs one read for all its joined recipients. */
struct joined {
	uint32_t at[MSG_READ + 1];
};

static uint32_t joined_total(const struct joined *j)
{
	return j->at[MSG_SENT] + j->at[MSG_DELIVERED] + j->at[MSG_READ];
}

static void joined_load(const char *id, struct joined *j)
{
	const void *v;
	size_t vlen;

	memset(j, 0, sizeof(*j));
	if (store_get(STORE_STATUS, id, ID_LEN, &v, &vlen) != 1 || vlen != 12)
		return;
	for (int i = 0; i < 3; i++) {
		const unsigned char *p = (const unsigned char *)v + 4 * i;
		j->at[MSG_SENT + i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
				      (uint32_t)p[2] << 8 | p[3];
	}
}

static void joined_put(struct store_batch *b, const char *id, const struct joined *j)
{
	unsigned char v[12];

	for (int i = 0; i < 3; i++) {
		uint32_t n = j->at[MSG_SENT + i];
		v[4 * i] = (unsigned char)(n >> 24);
		v[4 * i + 1] = (unsigned char)(n >> 16);
		v[4 * i + 2] = (unsigned char)(n >> 8);
		v[4 * i + 3] = (unsigned char)n;
	}
	store_put(b, STORE_STATUS, id, ID_LEN, v, sizeof(v));
}

/* The least advanced status over the recipients (sent without any): those
 * of the record, with `user` (if not NULL) counted at `level` whatever is
 * stored (the caller is about to write that), and the joined ones `j`. */
static int aggregate_with(const char *id, const struct record *r, const struct joined *j,
			  const char *user, size_t ulen, int level)
{
	int least = MSG_READ, any = 0, flags;

	for (const char *p = r->recipients; p < r->recipients + r->recipients_len;
	     p += strlen(p) + 1) {
		size_t plen = strlen(p);
		int s = user && plen == ulen && memcmp(p, user, ulen) == 0 ?
			level : status_of(id, p, plen, &flags);
		any = 1;
		if (s < least)
			least = s;
	}
	for (int lv = MSG_SENT; lv <= MSG_READ; lv++)
		if (j->at[lv]) {
			any = 1;
			if (lv < least)
				least = lv;
			break;
		}
	if (!any || least < MSG_SENT)
		least = MSG_SENT;
	return least;
}

static int aggregate_of(const char *id, const struct record *r)
{
	struct joined j;

	joined_load(id, &j);
	return aggregate_with(id, r, &j, NULL, 0, 0);
}

/* Calls `each(arg, user, ulen, level)` for the joined recipients of a
 * message (committed ones: a join still in a pending batch is counted in
 * the aggregate but listed once it is durable). */
struct each_joined {
	const char *id;
	uint32_t left; /* joined recipients not met yet */
	void (*each)(void *arg, const char *user, size_t ulen, int level);
	void *arg;
};

static int joined_row(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct each_joined *e = arg;
	const char *user = (const char *)k + ID_LEN + 1;
	size_t ulen = kl - ID_LEN - 1;
	char name[NAME_MAX_BYTES];
	int flags, level;

	if (vl < 10 || !(((const unsigned char *)v)[9] & STATUS_JOINED) || ulen > sizeof(name))
		return 0;
	/* The committed row says who joined; a pending write may be newer. */
	memcpy(name, user, ulen);
	level = status_of(e->id, name, ulen, &flags);
	e->each(e->arg, name, ulen, level);
	return --e->left == 0;
}

static void each_joined(const char *id, void (*each)(void *, const char *, size_t, int),
			void *arg)
{
	char prefix[ID_LEN + 1];
	struct joined j;
	struct each_joined e = { id, 0, each, arg };

	joined_load(id, &j);
	e.left = joined_total(&j);
	if (!e.left)
		return;
	memcpy(prefix, id, ID_LEN);
	prefix[ID_LEN] = '\0';
	/* Stops once every joined recipient is met; the rows between them are
	 * users whose status is kept outside the recipients (see set_status). */
	store_scan(STORE_STATUS, prefix, ID_LEN + 1, NULL, 0, 4L * RECIPIENTS_MAX, joined_row, &e);
}

/* Appends ,"status":..,"statuses":{..}} to a record's JSON (without its
 * closing brace) for sync answers. */
static int append_annotation(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct buf *out = arg;

	buf_put(out, ",", 1);
	buf_json_string(out, (const char *)k + ID_LEN + 1, kl - ID_LEN - 1);
	buf_put(out, ":", 1);
	buf_put(out, v, vl);
	return 0;
}

/* ,"name":value for each annotation of the message (committed ones). */
static void append_annotations(struct buf *out, const char *id)
{
	char prefix[ID_LEN + 1];

	memcpy(prefix, id, ID_LEN);
	prefix[ID_LEN] = '\0';
	store_scan(STORE_ANNOT, prefix, ID_LEN + 1, NULL, 0, 64, append_annotation, out);
}

static void put_status_entry(struct buf *out, const char *user, size_t ulen, int level)
{
	if (out->p[out->len - 1] != '{')
		buf_put(out, ",", 1);
	buf_json_string(out, user, ulen);
	buf_str(out, ":\"");
	buf_str(out, status_names[level ? level : MSG_SENT]);
	buf_put(out, "\"", 1);
}

static void joined_status_entry(void *arg, const char *user, size_t ulen, int level)
{
	put_status_entry(arg, user, ulen, level);
}

static void record_with_statuses(struct buf *out, const char *id, const struct record *r)
{
	int flags;

	buf_put(out, r->json, r->json_len - 1);
	append_annotations(out, id);
	buf_str(out, ",\"status\":\"");
	buf_str(out, status_names[aggregate_of(id, r)]);
	buf_str(out, "\",\"statuses\":{");
	for (const char *p = r->recipients; p < r->recipients + r->recipients_len;
	     p += strlen(p) + 1)
		put_status_entry(out, p, strlen(p), status_of(id, p, strlen(p), &flags));
	each_joined(id, joined_status_entry, out);
	buf_str(out, "}}");
}

/* Pushes a record as clients see it: with its status (and annotations,
 * for a message that has an id already stored: NULL for a new one). */
static void push_record(lua_State *L, const char *id, const char *json, size_t len, int status)
{
	struct buf out = { 0 };

	buf_put(&out, json, len - 1);
	if (id)
		append_annotations(&out, id);
	buf_str(&out, ",\"status\":\"");
	buf_str(&out, status_names[status]);
	buf_str(&out, "\"}");
	jsonlua_push_raw(L, out.p, out.len);
	scratch_free(out.p);
}

/* ---- sequence numbers and ids ---- */

static uint64_t next_seq(const char *conv, size_t clen)
{
	uintptr_t cached;
	uint64_t seq;

	caches_check();
	cached = (uintptr_t)map_get(&seqs, conv, clen);

	if (cached) {
		seq = cached;
	} else {
		char prefix[NAME_MAX_BYTES + 1], last[NAME_MAX_BYTES + 9];
		size_t plen = pair_key(prefix, sizeof(prefix), conv, clen, "", 0), llen;
		seq = 0;
		if (store_last(STORE_CONV, prefix, plen, last, sizeof(last), &llen) == 1 &&
		    llen == plen + 8)
			seq = get_u64((unsigned char *)last + plen);
	}
	seq++;
	map_put(&seqs, conv, clen, (void *)(uintptr_t)seq);
	return seq;
}

static void new_id(char out[ID_LEN + 1], int64_t now)
{
	/* Time-ordered and never repeated, even if the clock steps back. */
	uint64_t id = (uint64_t)now << 20;

	if (id <= last_id)
		id = last_id + 1;
	last_id = id;
	for (int i = ID_LEN - 1; i >= 0; i--, id >>= 4)
		out[i] = "0123456789abcdef"[id & 15];
	out[ID_LEN] = '\0';
}

int messages_init(void)
{
	char last[ID_LEN + 1];
	size_t len;

	map_init(&seqs);
	map_init(&registered_cache);
	/* Keys are hex of time-ordered ids: the last one is the newest. */
	if (store_last(STORE_MESSAGES, "", 0, last, sizeof(last), &len) == 1 && len == ID_LEN) {
		last[ID_LEN] = '\0';
		last_id = strtoull(last, NULL, 16);
	}
	return 0;
}

void messages_fini(void)
{
	map_fini(&seqs);
	map_fini(&registered_cache);
}

/* ---- host functions: core.store_* ---- */

/* store_send({conversationId, senderId, clientMessageId?, type, content,
 *             replyTo?, sender?, recipients}) ->
 *   record (raw JSON), created, messageId, timestamp, seq, ticket|nil
 * A clientMessageId seen before from the same sender gives back that
 * message (created false) and creates nothing. */
static int l_send(lua_State *L)
{
	size_t clen, slen, cidlen, tlen, rlen, content_len, sender_len = 0;
	const char *conv, *sender, *cid, *type, *reply;
	char *content_json, *sender_json = NULL;
	const char *err = NULL;
	char idem[NAME_MAX_BYTES * 2 + 2], id[ID_LEN + 1], when[64], convkey[NAME_MAX_BYTES + 9];
	size_t idemlen = 0;
	struct buf json = { 0 }, value = { 0 }, rec = { 0 };
	int64_t now = wall_ms();

	luaL_checktype(L, 1, LUA_TTABLE);
	conv = field_string(L, 1, "conversationId", &clen);
	sender = field_string(L, 1, "senderId", &slen);
	cid = field_string(L, 1, "clientMessageId", &cidlen);
	type = field_string(L, 1, "type", &tlen);
	reply = field_string(L, 1, "replyTo", &rlen);
	if (!conv || !sender || !type || clen > NAME_MAX_BYTES || slen > NAME_MAX_BYTES ||
	    cidlen > NAME_MAX_BYTES || rlen > NAME_MAX_BYTES || tlen > 32)
		return luaL_error(L, "store.send: conversationId, senderId and type are required");

	/* An idempotent retry: the first result again. */
	if (cid && cidlen) {
		const void *v;
		size_t vlen;
		struct record r;
		idemlen = pair_key(idem, sizeof(idem), sender, slen, cid, cidlen);
		if (store_get(STORE_IDEM, idem, idemlen, &v, &vlen) == 1 && vlen == ID_LEN) {
			char prior[ID_LEN + 1], ts[40];
			memcpy(prior, v, ID_LEN);
			prior[ID_LEN] = '\0';
			if (message_load(prior, ID_LEN, &r) == 1) {
				size_t n = record_field(&r, "timestamp", ts, sizeof(ts));
				struct json_span sv;
				uint64_t seq = 0;
				if (json_object_get((struct json_span){ r.json, r.json_len }, "seq", &sv) == 1)
					json_uint(sv, &seq);
				/* It may not be durable yet: wait behind it, and fail
				 * with it if it fails. */
				struct store_batch *w = store_batch_new();
				store_batch_after(w, store_pending(STORE_IDEM, idem, idemlen));
				lua_Number ticket = submit(w);
				push_record(L, prior, r.json, r.json_len, aggregate_of(prior, &r));
				lua_pushboolean(L, 0);
				lua_pushlstring(L, prior, ID_LEN);
				lua_pushlstring(L, ts, n);
				lua_pushnumber(L, (lua_Number)seq);
				lua_pushnumber(L, ticket);
				return 6;
			}
		}
	}

	lua_pushliteral(L, "content");
	lua_rawget(L, 1);
	content_json = jsonlua_encode(L, -1, &content_len, &err);
	lua_pop(L, 1);
	if (!content_json)
		return luaL_error(L, "store.send: content: %s", err);
	lua_pushliteral(L, "sender");
	lua_rawget(L, 1);
	if (!lua_isnil(L, -1)) {
		sender_json = jsonlua_encode(L, -1, &sender_len, &err);
		if (!sender_json) {
			scratch_free(content_json);
			return luaL_error(L, "store.send: sender: %s", err);
		}
	}
	lua_pop(L, 1);
	/* The recipients, NUL-terminated, back to back. */
	lua_pushliteral(L, "recipients");
	lua_rawget(L, 1);
	if (lua_istable(L, -1)) {
		size_t n = lua_objlen(L, -1);
		for (size_t i = 1; i <= n && i <= RECIPIENTS_MAX; i++) {
			size_t ulen;
			lua_rawgeti(L, -1, (int)i);
			const char *u = lua_tolstring(L, -1, &ulen);
			if (u && ulen && ulen <= NAME_MAX_BYTES && !memchr(u, '\0', ulen) &&
			    !(ulen == slen && memcmp(u, sender, slen) == 0))
				buf_put(&rec, u, ulen + 1);
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);

	uint64_t seq = next_seq(conv, clen);
	new_id(id, now);
	iso_time(now, when);

	buf_str(&json, "{\"messageId\":\"");
	buf_str(&json, id);
	buf_str(&json, "\",\"conversationId\":");
	buf_json_string(&json, conv, clen);
	buf_str(&json, ",\"senderId\":");
	buf_json_string(&json, sender, slen);
	if (cid) {
		buf_str(&json, ",\"clientMessageId\":");
		buf_json_string(&json, cid, cidlen);
	}
	buf_str(&json, ",\"type\":");
	buf_json_string(&json, type, tlen);
	buf_str(&json, ",\"content\":");
	buf_put(&json, content_json, content_len);
	if (reply) {
		buf_str(&json, ",\"replyTo\":");
		buf_json_string(&json, reply, rlen);
	}
	buf_str(&json, ",\"timestamp\":\"");
	buf_str(&json, when);
	buf_str(&json, "\"");
	char digits[20];
	int nd = 0;
	for (uint64_t v = seq; nd == 0 || v; v /= 10)
		digits[sizeof(digits) - 1 - nd++] = (char)('0' + v % 10);
	buf_str(&json, ",\"seq\":");
	buf_put(&json, digits + sizeof(digits) - nd, (size_t)nd);
	if (sender_json) {
		buf_str(&json, ",\"sender\":");
		buf_put(&json, sender_json, sender_len);
	}
	buf_put(&json, "}", 1);

	struct store_batch *b = store_batch_new();
	record_value(&value, json.p, json.len, rec.p, rec.len);
	store_put(b, STORE_MESSAGES, id, ID_LEN, value.p, value.len);
	size_t cklen = pair_key(convkey, sizeof(convkey), conv, clen, "", 0);
	put_u64((unsigned char *)convkey + cklen, seq);
	store_put(b, STORE_CONV, convkey, cklen + 8, id, ID_LEN);
	if (idemlen)
		store_put(b, STORE_IDEM, idem, idemlen, id, ID_LEN);
	for (const char *p = rec.p; rec.p && p < rec.p + rec.len; p += strlen(p) + 1)
		status_put(b, id, p, strlen(p), MSG_SENT, now, 0);

	/* Stored whatever happens next: should a push below raise, a retry
	 * with the same clientMessageId finds the message. */
	lua_Number ticket = submit(b);
	push_record(L, NULL, json.p, json.len, MSG_SENT);
	lua_pushboolean(L, 1);
	lua_pushstring(L, id);
	lua_pushstring(L, when);
	lua_pushnumber(L, (lua_Number)seq);
	lua_pushnumber(L, ticket);
	scratch_free(content_json);
	scratch_free(sender_json);
	scratch_free(json.p);
	scratch_free(value.p);
	scratch_free(rec.p);
	return 6;
}

/* Appends a joined recipient's id and a NUL to the buffer: they are pushed
 * once the scan is over (a push may raise, and must not strand its cursor). */
static void collect_joined(void *arg, const char *user, size_t ulen, int level)
{
	(void)level;
	buf_put(arg, user, ulen);
	buf_put(arg, "", 1);
}

/* store_message(id) -> record (raw JSON), conversationId, senderId, seq,
 *                      recipients | nil */
static int l_message(lua_State *L)
{
	size_t idlen;
	const char *id = luaL_checklstring(L, 1, &idlen);
	struct record r;
	char conv[NAME_MAX_BYTES + 1], sender[NAME_MAX_BYTES + 1];
	struct buf joined = { 0 };
	size_t n = 0;

	if (idlen != ID_LEN || message_load(id, idlen, &r) != 1)
		return 0;
	each_joined(id, collect_joined, &joined);
	push_record(L, id, r.json, r.json_len, aggregate_of(id, &r));
	lua_pushlstring(L, conv, record_field(&r, "conversationId", conv, sizeof(conv)));
	lua_pushlstring(L, sender, record_field(&r, "senderId", sender, sizeof(sender)));
	struct json_span sv;
	uint64_t seq = 0;
	if (json_object_get((struct json_span){ r.json, r.json_len }, "seq", &sv) == 1)
		json_uint(sv, &seq);
	lua_pushnumber(L, (lua_Number)seq);
	lua_newtable(L);
	jsonlua_mark_array(L);
	for (const char *p = r.recipients; p < r.recipients + r.recipients_len; p += strlen(p) + 1) {
		lua_pushstring(L, p);
		lua_rawseti(L, -2, (int)++n);
	}
	for (const char *p = joined.p; p && p < joined.p + joined.len; p += strlen(p) + 1) {
		lua_pushstring(L, p);
		lua_rawseti(L, -2, (int)++n);
	}
	scratch_free(joined.p);
	return 5;
}

struct collect_ids {
	char (*ids)[ID_LEN + 1];
	uint64_t *seqs;
	size_t n, cap;
	size_t prefix;
};

static int collect_id(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct collect_ids *c = arg;

	if (vl != ID_LEN || kl != c->prefix + 8 || c->n == c->cap)
		return 0;
	memcpy(c->ids[c->n], v, ID_LEN);
	c->ids[c->n][ID_LEN] = '\0';
	c->seqs[c->n] = get_u64((const unsigned char *)k + c->prefix);
	c->n++;
	return 0;
}

/* The ids of a conversation's messages with seq in (after, upto], at most
 * `limit` (+1 to tell whether there are more). */
static size_t conversation_ids(const char *conv, size_t clen, uint64_t after, size_t limit,
			       struct collect_ids *c)
{
	char prefix[NAME_MAX_BYTES + 1], start[NAME_MAX_BYTES + 9];
	size_t plen = pair_key(prefix, sizeof(prefix), conv, clen, "", 0);

	memcpy(start, prefix, plen);
	put_u64((unsigned char *)start + plen, after + 1);
	c->cap = limit;
	c->ids = scratch_alloc(limit * sizeof(*c->ids));
	c->seqs = scratch_alloc(limit * sizeof(*c->seqs));
	c->n = 0;
	c->prefix = plen;
	store_scan(STORE_CONV, prefix, plen, start, plen + 8, (long)limit, collect_id, c);
	return c->n;
}

static int hidden_for(const char *id, const char *viewer, size_t vlen)
{
	char key[ID_LEN + 1 + NAME_MAX_BYTES];
	const void *v;
	size_t n;

	return viewer && store_get(STORE_HIDDEN, key, pair_key(key, sizeof(key), id, ID_LEN, viewer,
								  vlen), &v, &n) == 1;
}

/* store_sync(conversationId, after seq, limit[, viewer]) -> raw JSON
 *   {"messages":[record + annotations + status + statuses...], "hasMore": bool}
 * Messages are durable ones, oldest first; those the viewer deleted for
 * themselves are left out. */
static int l_sync(lua_State *L)
{
	size_t clen, vlen = 0;
	const char *conv = check_name(L, 1, "conversationId", &clen);
	uint64_t after = (uint64_t)luaL_optnumber(L, 2, 0);
	lua_Integer limit = luaL_optinteger(L, 3, 50);
	const char *viewer = luaL_optlstring(L, 4, NULL, &vlen);
	struct collect_ids c;
	struct buf out = { 0 };
	struct record r;

	if (limit < 1)
		limit = 1;
	if (limit > SYNC_MAX)
		limit = SYNC_MAX;
	conversation_ids(conv, clen, after, (size_t)limit + 1, &c);
	buf_str(&out, "{\"messages\":[");
	for (size_t i = 0; i < c.n && i < (size_t)limit; i++) {
		if (hidden_for(c.ids[i], viewer, vlen) || message_load(c.ids[i], ID_LEN, &r) != 1)
			continue;
		if (out.p[out.len - 1] != '[')
			buf_put(&out, ",", 1);
		record_with_statuses(&out, c.ids[i], &r);
	}
	buf_str(&out, c.n > (size_t)limit ? "],\"hasMore\":true}" : "],\"hasMore\":false}");
	jsonlua_push_raw(L, out.p, out.len);
	scratch_free(out.p);
	scratch_free(c.ids);
	scratch_free(c.seqs);
	return 1;
}

/* Sets `user`'s status of message `id` to `level` if that advances it,
 * adding the user as a recipient when `open` (a conversation without
 * registered members). With `conv`, a message of another conversation
 * counts as no such message. With no batch `b` it only checks: nothing is
 * written, and 0 means the write would be allowed. Fills what the caller
 * reports; returns 1 changed, 0 unchanged, -1 no such message, -2 not a
 * recipient. */
struct status_change {
	char conv[NAME_MAX_BYTES + 1];
	char sender[NAME_MAX_BYTES + 1];
	int aggregate_before, aggregate;
	int64_t at;
};

static int set_status(struct store_batch *b, const char *id, const char *user, size_t ulen,
		      int level, int open, const char *conv, size_t clen,
		      struct status_change *ch)
{
	struct record r;
	struct joined j;
	int current, flags, recipient = 0, rc = 0;
	uint32_t recipients = 0;

	if (message_load(id, ID_LEN, &r) != 1)
		return -1;
	/* A message not yet durable may still fail: its statuses go with it. */
	if (b)
		store_batch_after(b, store_pending(STORE_MESSAGES, id, ID_LEN));
	ch->conv[record_field(&r, "conversationId", ch->conv, sizeof(ch->conv) - 1)] = '\0';
	if (conv && (strlen(ch->conv) != clen || memcmp(ch->conv, conv, clen) != 0)) {
		rc = -1;
		goto out;
	}
	ch->sender[record_field(&r, "senderId", ch->sender, sizeof(ch->sender) - 1)] = '\0';
	ch->at = wall_ms();
	if (strlen(ch->sender) == ulen && memcmp(ch->sender, user, ulen) == 0)
		goto out; /* a sender's own message has no status for them */
	for (const char *p = r.recipients; p < r.recipients + r.recipients_len; p += strlen(p) + 1) {
		recipients++;
		if (strlen(p) == ulen && memcmp(p, user, ulen) == 0)
			recipient = 1;
	}
	current = status_of(id, user, ulen, &flags);
	joined_load(id, &j);
	ch->aggregate_before = aggregate_with(id, &r, &j, NULL, 0, 0);
	ch->aggregate = ch->aggregate_before;
	if (flags & STATUS_JOINED) {
		recipient = 1;
		if (j.at[current])
			j.at[current]--;
	}
	if (!recipient && !open) {
		rc = -2;
		goto out;
	}
	if (!b)
		goto out;
	if (level <= current)
		goto out;
	if (!recipient && level >= ch->aggregate_before &&
	    recipients + joined_total(&j) < RECIPIENTS_MAX) {
		/* A newcomer to an open conversation becomes a recipient once its
		 * status is at least the message's: counted earlier, a newcomer's
		 * `delivered` would take a message everyone has read back from
		 * read. Until then its own status is kept, outside the aggregate,
		 * and so it stays past RECIPIENTS_MAX recipients. The join is in
		 * its status row and the message's joined counts, not in the
		 * record: a reader must not cost a copy of each message it reads
		 * (a record is up to a whole message). */
		flags |= STATUS_JOINED;
	}
	if (flags & STATUS_JOINED) {
		j.at[level]++;
		joined_put(b, id, &j);
	}
	status_put(b, id, user, ulen, level, ch->at, flags);
	/* The batch is not visible yet: count this user at the new level. */
	ch->aggregate = aggregate_with(id, &r, &j, user, ulen, level);
	rc = 1;
out:
	return rc;
}

static void push_change(lua_State *L, const char *id, const struct status_change *ch)
{
	char when[64];

	iso_time(ch->at, when);
	lua_createtable(L, 0, 6);
	lua_pushstring(L, id);
	lua_setfield(L, -2, "messageId");
	lua_pushstring(L, ch->conv);
	lua_setfield(L, -2, "conversationId");
	lua_pushstring(L, ch->sender);
	lua_setfield(L, -2, "senderId");
	lua_pushstring(L, status_names[ch->aggregate]);
	lua_setfield(L, -2, "status");
	lua_pushboolean(L, ch->aggregate != ch->aggregate_before);
	lua_setfield(L, -2, "changed");
	lua_pushstring(L, when);
	lua_setfield(L, -2, "updatedAt");
}

static int level_of(lua_State *L, int idx)
{
	const char *s = luaL_checkstring(L, idx);

	for (int i = MSG_SENT; i <= MSG_READ; i++)
		if (strcmp(s, status_names[i]) == 0)
			return i;
	return luaL_error(L, "store: status must be sent, delivered or read");
}

/* The message id at `i` of the list at stack index 1 (or the id there when
 * it is no list); raises for an entry that is not a string. The string
 * stays referenced by the list. */
static const char *message_id_at(lua_State *L, int list, size_t i, size_t *len)
{
	const char *id;

	if (!list)
		return lua_tolstring(L, 1, len);
	lua_rawgeti(L, 1, (int)i);
	if (lua_type(L, -1) != LUA_TSTRING)
		luaL_error(L, "store.set_status: messageIds[%d] is not a string", (int)i);
	id = lua_tolstring(L, -1, len);
	lua_pop(L, 1);
	return id;
}

/* store_set_status(messageId | { messageIds }, userId, status, open
 *                  [, conversationId]) ->
 *   change {messageId, conversationId, senderId, status (the aggregate),
 *           changed (the aggregate moved), updatedAt}, ticket
 *   (for a list: { changes }, ticket)
 *   | nil, "not found" | "not a recipient", the id refused
 * With a conversationId, a message of another conversation is "not found".
 * A list is all or nothing: every id is checked before any is written, so
 * a refused id leaves the others as they were. */
static int l_set_status(lua_State *L)
{
	const char *user;
	size_t ulen, n = 1, clen = 0;
	int level, open, list = lua_istable(L, 1);
	const char *conv = NULL;
	struct status_change *changes;
	struct store_batch *b;
	lua_Number ticket;

	if (!list)
		luaL_checkstring(L, 1);
	user = check_name(L, 2, "userId", &ulen);
	level = level_of(L, 3);
	open = lua_toboolean(L, 4);
	if (!lua_isnoneornil(L, 5))
		conv = check_name(L, 5, "conversationId", &clen);
	if (list) {
		n = lua_objlen(L, 1);
		if (n > STATUS_LIST_MAX)
			return luaL_error(L, "store.set_status: more than %d message ids",
					  STATUS_LIST_MAX);
	}
	/* The checks first, for every id: nothing is written unless all pass. */
	for (size_t i = 1; i <= n; i++) {
		size_t idlen;
		const char *id = message_id_at(L, list, i, &idlen);
		int rc = idlen == ID_LEN ? set_status(NULL, id, user, ulen, level, open, conv, clen,
						      &(struct status_change){ 0 })
					 : -1;
		if (rc < 0) {
			lua_pushnil(L);
			lua_pushstring(L, rc == -1 ? "not found" : "not a recipient");
			lua_pushlstring(L, id, idlen);
			return 3;
		}
	}
	/* Then the writes, into one batch submitted before anything is pushed
	 * (see the top). */
	changes = scratch_alloc(n * sizeof(*changes));
	b = store_batch_new();
	for (size_t i = 1; i <= n; i++) {
		size_t idlen;
		const char *id = message_id_at(L, list, i, &idlen);
		memset(&changes[i - 1], 0, sizeof(changes[i - 1]));
		/* An id named twice writes the same rows twice: each call reads
		 * what is committed, not this batch. */
		set_status(b, id, user, ulen, level, open, conv, clen, &changes[i - 1]);
	}
	ticket = submit(b);
	if (list) {
		lua_createtable(L, (int)n, 0);
		jsonlua_mark_array(L);
	}
	for (size_t i = 1; i <= n; i++) {
		size_t idlen;
		push_change(L, message_id_at(L, list, i, &idlen), &changes[i - 1]);
		if (list)
			lua_rawseti(L, -2, (int)i);
	}
	scratch_free(changes);
	lua_pushnumber(L, ticket);
	return 2;
}

/* store_read_upto(conversationId, userId, upto seq or nil, open) ->
 *   { changes whose aggregate moved }, count of messages now read, ticket
 * Marks read every message of the conversation after the user's read
 * cursor up to `upto` (at most 5000 at a time). */
static int l_read_upto(lua_State *L)
{
	size_t clen, ulen;
	const char *conv = check_name(L, 1, "conversationId", &clen);
	const char *user = check_name(L, 2, "userId", &ulen);
	uint64_t upto = lua_isnoneornil(L, 3) ? UINT64_MAX : (uint64_t)luaL_checknumber(L, 3);
	int open = lua_toboolean(L, 4);
	char cur[2 + 2 * NAME_MAX_BYTES + 2];
	size_t curlen = 0;
	uint64_t from = 0, last = 0;
	const void *v;
	size_t vlen;
	struct collect_ids c;
	struct store_batch *b;
	struct status_change *changes;
	size_t *changed; /* the index in c of each change */
	size_t n = 0;
	int count = 0;

	/* "rc" \0 conversation \0 user: where the user had read to. */
	memcpy(cur, "rc", 3);
	curlen = 3 + pair_key(cur + 3, sizeof(cur) - 3, conv, clen, user, ulen);
	if (store_get(STORE_META, cur, curlen, &v, &vlen) == 1 && vlen == 8)
		from = get_u64(v);
	conversation_ids(conv, clen, from, READ_MAX, &c);
	/* The changes are pushed once the batch is submitted (see the top). */
	changes = scratch_alloc((c.n ? c.n : 1) * sizeof(*changes));
	changed = scratch_alloc((c.n ? c.n : 1) * sizeof(*changed));
	b = store_batch_new();
	for (size_t i = 0; i < c.n && c.seqs[i] <= upto; i++) {
		memset(&changes[n], 0, sizeof(changes[n]));
		int rc = set_status(b, c.ids[i], user, ulen, MSG_READ, open, NULL, 0, &changes[n]);
		last = c.seqs[i];
		if (rc == 1)
			count++;
		if (rc == 1 && changes[n].aggregate != changes[n].aggregate_before)
			changed[n++] = i;
	}
	if (last > from) {
		unsigned char word[8];
		put_u64(word, last);
		store_put(b, STORE_META, cur, curlen, word, 8);
	}
	lua_Number ticket = submit(b);
	lua_createtable(L, (int)n, 0);
	jsonlua_mark_array(L);
	for (size_t k = 0; k < n; k++) {
		push_change(L, c.ids[changed[k]], &changes[k]);
		lua_rawseti(L, -2, (int)k + 1);
	}
	scratch_free(changes);
	scratch_free(changed);
	scratch_free(c.ids);
	scratch_free(c.seqs);
	lua_pushinteger(L, count);
	lua_pushnumber(L, ticket);
	return 3;
}

/* ---- membership ---- */

/* The names a scan found, each followed by a NUL, gathered while the
 * store's cursor is open and pushed once it is closed (a push may raise). */
struct collect_names {
	struct buf names;
	size_t skip;
};

static int collect_name(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct collect_names *c = arg;

	(void)v;
	(void)vl;
	buf_put(&c->names, (const char *)k + c->skip, kl - c->skip);
	buf_put(&c->names, "", 1);
	return 0;
}

static int push_names(lua_State *L, enum store_db db, const char *a, size_t alen, long limit)
{
	char prefix[NAME_MAX_BYTES + 1];
	size_t plen = pair_key(prefix, sizeof(prefix), a, alen, "", 0);
	struct collect_names c = { { 0 }, plen };
	int n = 0;

	store_scan(db, prefix, plen, NULL, 0, limit, collect_name, &c);
	lua_newtable(L);
	jsonlua_mark_array(L);
	for (size_t at = 0; at < c.names.len; at += strlen(c.names.p + at) + 1) {
		lua_pushstring(L, c.names.p + at);
		lua_rawseti(L, -2, ++n);
	}
	scratch_free(c.names.p);
	return 1;
}

/* store_members(conversationId) -> { userIds } (empty: not registered) */
static int l_members(lua_State *L)
{
	size_t clen;
	const char *conv = check_name(L, 1, "conversationId", &clen);

	return push_names(L, STORE_MEMBERS, conv, clen, RECIPIENTS_MAX);
}

/* store_conversations_of(userId) -> { conversationIds } */
static int l_conversations_of(lua_State *L)
{
	size_t ulen;
	const char *user = check_name(L, 1, "userId", &ulen);

	return push_names(L, STORE_USERCONV, user, ulen, 100000);
}

/* Whether the conversation has registered members (cached: membership is
 * set through store_set_members, which keeps the cache right). */
static int has_members(const char *conv, size_t clen)
{
	uintptr_t known;
	char prefix[NAME_MAX_BYTES + 1], any[2 * NAME_MAX_BYTES + 2];
	size_t plen, olen;
	int yes;

	caches_check();
	known = (uintptr_t)map_get(&registered_cache, conv, clen);
	if (known)
		return (int)known - 1;
	plen = pair_key(prefix, sizeof(prefix), conv, clen, "", 0);
	yes = store_last(STORE_MEMBERS, prefix, plen, any, sizeof(any), &olen) == 1;
	if (registered_cache.count >= REGISTERED_CACHE_MAX) {
		map_fini(&registered_cache);
		map_init(&registered_cache);
	}
	map_put(&registered_cache, conv, clen, (void *)(uintptr_t)(yes + 1));
	return yes;
}

/* store_is_member(conversationId, userId) -> member, registered (whether
 * the conversation has members at all) */
static int l_is_member(lua_State *L)
{
	size_t clen, ulen, vlen;
	const char *conv = check_name(L, 1, "conversationId", &clen);
	const char *user = check_name(L, 2, "userId", &ulen);
	char key[2 * NAME_MAX_BYTES + 2];
	const void *v;
	int closed = has_members(conv, clen);
	int member = closed &&
		     store_get(STORE_MEMBERS, key, pair_key(key, sizeof(key), conv, clen, user, ulen),
			       &v, &vlen) == 1;

	lua_pushboolean(L, member);
	lua_pushboolean(L, closed);
	return 2;
}

/* store_set_members(conversationId, { userIds }) -> ticket: the list
 * replaces the conversation's members. */
static int l_set_members(lua_State *L)
{
	size_t clen;
	const char *conv = check_name(L, 1, "conversationId", &clen);
	struct store_batch *b;
	char key[2 * NAME_MAX_BYTES + 2];
	size_t n, klen;

	luaL_checktype(L, 2, LUA_TTABLE);
	caches_check(); /* before this batch's answer goes in the cache */
	/* Everything that may raise comes before the batch: the new list's
	 * check, and the old list (a table to push). */
	n = lua_objlen(L, 2);
	if (n > RECIPIENTS_MAX)
		n = RECIPIENTS_MAX;
	for (size_t i = 1; i <= n; i++) {
		size_t ulen = 0;
		lua_rawgeti(L, 2, (int)i);
		const char *u = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &ulen) : NULL;
		if (!u || !ulen || ulen > NAME_MAX_BYTES || memchr(u, '\0', ulen))
			return luaL_error(L, "store.set_members: member %d is not a user id", (int)i);
		lua_pop(L, 1);
	}
	push_names(L, STORE_MEMBERS, conv, clen, RECIPIENTS_MAX);
	b = store_batch_new();
	/* Out with the old... */
	for (size_t i = 1, old = lua_objlen(L, -1); i <= old; i++) {
		size_t ulen;
		lua_rawgeti(L, -1, (int)i);
		const char *u = lua_tolstring(L, -1, &ulen);
		store_del(b, STORE_MEMBERS, key, pair_key(key, sizeof(key), conv, clen, u, ulen));
		store_del(b, STORE_USERCONV, key, pair_key(key, sizeof(key), u, ulen, conv, clen));
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	/* ...in with the new (a later put of the same key wins). */
	for (size_t i = 1; i <= n; i++) {
		size_t ulen;
		lua_rawgeti(L, 2, (int)i);
		const char *u = lua_tolstring(L, -1, &ulen);
		klen = pair_key(key, sizeof(key), conv, clen, u, ulen);
		store_put(b, STORE_MEMBERS, key, klen, "", 0);
		klen = pair_key(key, sizeof(key), u, ulen, conv, clen);
		store_put(b, STORE_USERCONV, key, klen, "", 0);
		lua_pop(L, 1);
	}
	map_put(&registered_cache, conv, clen, (void *)(uintptr_t)(n > 0 ? 2 : 1));
	lua_pushnumber(L, submit(b));
	return 1;
}

/* ---- profiles and last seen ---- */

/* store_profile(userId) -> profile (raw JSON) | nil */
static int l_profile(lua_State *L)
{
	size_t ulen, vlen;
	const char *user = check_name(L, 1, "userId", &ulen);
	const void *v;

	if (store_get(STORE_USERS, user, ulen, &v, &vlen) != 1)
		return 0;
	jsonlua_push_raw(L, v, vlen);
	return 1;
}

/* store_set_profile(userId, profile table) -> ticket */
static int l_set_profile(lua_State *L)
{
	size_t ulen, len;
	const char *user = check_name(L, 1, "userId", &ulen);
	const char *err = NULL;
	char *json;
	struct store_batch *b;

	luaL_checktype(L, 2, LUA_TTABLE);
	json = jsonlua_encode(L, 2, &len, &err);
	if (!json)
		return luaL_error(L, "store.set_profile: %s", err);
	b = store_batch_new();
	store_put(b, STORE_USERS, user, ulen, json, len);
	scratch_free(json);
	lua_pushnumber(L, submit(b));
	return 1;
}

/* store_last_seen(userId) -> ms | nil */
static int l_last_seen(lua_State *L)
{
	size_t ulen, vlen;
	const char *user = check_name(L, 1, "userId", &ulen);
	const void *v;

	if (store_get(STORE_SEEN, user, ulen, &v, &vlen) != 1 || vlen != 8)
		return 0;
	lua_pushnumber(L, (lua_Number)get_u64(v));
	return 1;
}

/* store_set_last_seen(userId, ms) */
static int l_set_last_seen(lua_State *L)
{
	size_t ulen;
	const char *user = check_name(L, 1, "userId", &ulen);
	lua_Number ms = luaL_checknumber(L, 2);
	unsigned char word[8];
	struct store_batch *b = store_batch_new();

	put_u64(word, ms > 0 ? (uint64_t)ms : 0);
	store_put(b, STORE_SEEN, user, ulen, word, 8);
	store_submit(b, on_written, NULL);
	return 0;
}

/* Fields of a record an annotation may not take. */
static int reserved_name(const char *name, size_t len)
{
	static const char *const names[] = {
		"messageId", "conversationId", "senderId", "clientMessageId", "type", "content",
		"replyTo", "timestamp", "seq", "sender", "status", "statuses", "editedAt", "deleted",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
			return 1;
	return 0;
}

/* store_annotate(messageId, name, value|nil) -> ticket: a plugin's field
 * of the message (reactions, ...), shown with it by sync and message();
 * nil removes it. Names are 1-32 letters, digits or underscores. */
static int l_annotate(lua_State *L)
{
	size_t idlen, nlen, len = 0;
	const char *id = luaL_checklstring(L, 1, &idlen);
	const char *name = luaL_checklstring(L, 2, &nlen);
	char key[ID_LEN + 1 + 33];
	const char *err = NULL;
	char *json = NULL;
	struct store_batch *b;

	if (idlen != ID_LEN)
		return luaL_error(L, "store.annotate: not a message id");
	if (nlen == 0 || nlen > 32 || reserved_name(name, nlen))
		return luaL_error(L, "store.annotate: '%s' cannot be an annotation's name", name);
	for (size_t i = 0; i < nlen; i++)
		if (!(name[i] == '_' || (name[i] >= '0' && name[i] <= '9') ||
		      (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z')))
			return luaL_error(L, "store.annotate: names are letters, digits and _");
	if (!lua_isnoneornil(L, 3)) {
		json = jsonlua_encode(L, 3, &len, &err);
		if (!json)
			return luaL_error(L, "store.annotate: %s", err);
	}
	b = store_batch_new();
	size_t klen = pair_key(key, sizeof(key), id, ID_LEN, name, nlen);
	if (json)
		store_put(b, STORE_ANNOT, key, klen, json, len);
	else
		store_del(b, STORE_ANNOT, key, klen);
	scratch_free(json);
	lua_pushnumber(L, submit(b));
	return 1;
}

/* store_edit(messageId, content|nil) -> editedAt, ticket | nil, "not found"
 * Rewrites the stored message: the new content and "editedAt", or, with
 * nil, a tombstone (content null, "deleted": true) - deleted for everyone. */
static int l_edit(lua_State *L)
{
	size_t idlen, clen = 0;
	const char *id = luaL_checklstring(L, 1, &idlen);
	struct buf json = { 0 }, value = { 0 };
	struct record r;
	struct json_iter it;
	struct json_span k, v;
	char *content = NULL, when[64];
	const char *err = NULL;
	int first = 1;

	if (idlen != ID_LEN || message_load(id, ID_LEN, &r) != 1) {
		lua_pushnil(L);
		lua_pushliteral(L, "not found");
		return 2;
	}
	if (!lua_isnoneornil(L, 2)) {
		content = jsonlua_encode(L, 2, &clen, &err);
		if (!content)
			return luaL_error(L, "store.edit: content: %s", err);
	}
	iso_time(wall_ms(), when);
	buf_put(&json, "{", 1);
	json_iter_begin((struct json_span){ r.json, r.json_len }, &it);
	while (json_object_next(&it, &k, &v) == 1) {
		char name[32];
		long n = json_string_unescape(k, name, sizeof(name));
		if (n > 0 && (strcmp(name, "content") == 0 || strcmp(name, "editedAt") == 0 ||
			      strcmp(name, "deleted") == 0))
			continue;
		if (!first)
			buf_put(&json, ",", 1);
		first = 0;
		buf_put(&json, k.p, k.len);
		buf_put(&json, ":", 1);
		buf_put(&json, v.p, v.len);
	}
	if (content) {
		buf_str(&json, ",\"content\":");
		buf_put(&json, content, clen);
		buf_str(&json, ",\"editedAt\":\"");
		buf_str(&json, when);
		buf_str(&json, "\"}");
	} else {
		buf_str(&json, ",\"content\":null,\"deleted\":true,\"editedAt\":\"");
		buf_str(&json, when);
		buf_str(&json, "\"}");
	}
	struct store_batch *b = store_batch_new();
	record_value(&value, json.p, json.len, r.recipients, r.recipients_len);
	store_put(b, STORE_MESSAGES, id, ID_LEN, value.p, value.len);
	lua_Number ticket = submit(b);
	lua_pushstring(L, when);
	lua_pushnumber(L, ticket);
	scratch_free(content);
	scratch_free(json.p);
	scratch_free(value.p);
	return 2;
}

/* store_hide(messageId, userId) -> ticket: deleted for that user only
 * (sync with that viewer leaves it out). */
static int l_hide(lua_State *L)
{
	size_t idlen, ulen;
	const char *id = luaL_checklstring(L, 1, &idlen);
	const char *user = check_name(L, 2, "userId", &ulen);
	char key[ID_LEN + 1 + NAME_MAX_BYTES];
	struct store_batch *b;

	if (idlen != ID_LEN)
		return luaL_error(L, "store.hide: not a message id");
	b = store_batch_new();
	store_put(b, STORE_HIDDEN, key, pair_key(key, sizeof(key), id, ID_LEN, user, ulen), "", 0);
	lua_pushnumber(L, submit(b));
	return 1;
}

/* iso_time(ms) -> "YYYY-MM-DDTHH:MM:SS.mmmZ" */
static int l_iso_time(lua_State *L)
{
	char when[64];

	iso_time((int64_t)luaL_checknumber(L, 1), when);
	lua_pushstring(L, when);
	return 1;
}

void messages_register(lua_State *L)
{
	static const luaL_Reg functions[] = {
		{ "store_send", l_send },
		{ "store_message", l_message },
		{ "store_sync", l_sync },
		{ "store_set_status", l_set_status },
		{ "store_read_upto", l_read_upto },
		{ "store_members", l_members },
		{ "store_set_members", l_set_members },
		{ "store_is_member", l_is_member },
		{ "store_conversations_of", l_conversations_of },
		{ "store_profile", l_profile },
		{ "store_set_profile", l_set_profile },
		{ "store_last_seen", l_last_seen },
		{ "store_set_last_seen", l_set_last_seen },
		{ "iso_time", l_iso_time },
		{ "store_annotate", l_annotate },
		{ "store_edit", l_edit },
		{ "store_hide", l_hide },
		{ NULL, NULL },
	};

	luaL_register(L, NULL, functions);
}
