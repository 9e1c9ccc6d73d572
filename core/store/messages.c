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
 * (store/edits.c writes those two, and rewrites records for edits).
 * Ids are time-ordered, so the last key of `messages` is the last id given.
 * A conversation's next sequence number is cached after its first message,
 * and whether it has registered members after the first question.
 * Answers are built in scratch memory (base/scratch.h): the Lua bindings
 * (lua/store_api.c) call in here from host functions, where a Lua error
 * may unwind past them before they free what they were given. */
#include "store/messages.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "base/map.h"
#include "base/scratch.h"
#include "store/inbox.h"
#include "store/record.h"
#include "store/store.h"
#include "wire/json.h"

#define ID_LEN MESSAGES_ID_LEN
#define NAME_MAX_BYTES MESSAGES_NAME_MAX
#define RECIPIENTS_MAX MESSAGES_RECIPIENTS_MAX
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

/* A user's status of a message: its level (0: none), and whether the user
 * joined the message's recipients after it was sent (STATUS_JOINED). */
static int status_of(const char *id, const char *user, size_t ulen, int *flags)
{
	char key[ID_LEN + 1 + NAME_MAX_BYTES];
	size_t klen = record_key(key, sizeof(key), id, ID_LEN, user, ulen);
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
	record_put_u64(word + 1, (uint64_t)at);
	word[9] = (unsigned char)flags;
	store_put(b, STORE_STATUS, key, record_key(key, sizeof(key), id, ID_LEN, user, ulen), word,
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
	struct record_buf *out = arg;

	record_buf_put(out, ",", 1);
	record_buf_json(out, (const char *)k + ID_LEN + 1, kl - ID_LEN - 1);
	record_buf_put(out, ":", 1);
	record_buf_put(out, v, vl);
	return 0;
}

/* ,"name":value for each annotation of the message (committed ones). */
static void append_annotations(struct record_buf *out, const char *id)
{
	char prefix[ID_LEN + 1];

	memcpy(prefix, id, ID_LEN);
	prefix[ID_LEN] = '\0';
	store_scan(STORE_ANNOT, prefix, ID_LEN + 1, NULL, 0, 64, append_annotation, out);
}

static void put_status_entry(struct record_buf *out, const char *user, size_t ulen, int level)
{
	if (out->p[out->len - 1] != '{')
		record_buf_put(out, ",", 1);
	record_buf_json(out, user, ulen);
	record_buf_str(out, ":\"");
	record_buf_str(out, status_names[level ? level : MSG_SENT]);
	record_buf_put(out, "\"", 1);
}

static void joined_status_entry(void *arg, const char *user, size_t ulen, int level)
{
	put_status_entry(arg, user, ulen, level);
}

static void record_with_statuses(struct record_buf *out, const char *id, const struct record *r)
{
	int flags;

	record_buf_put(out, r->json, r->json_len - 1);
	append_annotations(out, id);
	record_buf_str(out, ",\"status\":\"");
	record_buf_str(out, status_names[aggregate_of(id, r)]);
	record_buf_str(out, "\",\"statuses\":{");
	for (const char *p = r->recipients; p < r->recipients + r->recipients_len;
	     p += strlen(p) + 1)
		put_status_entry(out, p, strlen(p), status_of(id, p, strlen(p), &flags));
	each_joined(id, joined_status_entry, out);
	record_buf_str(out, "}}");
}

/* A record as clients see it: with its status (and annotations, for a
 * message that has an id already stored: NULL for a new one), scratch. */
static char *record_for_client(const char *id, const char *json, size_t len, int status,
			       size_t *out_len)
{
	struct record_buf out = { 0 };

	record_buf_put(&out, json, len - 1);
	if (id)
		append_annotations(&out, id);
	record_buf_str(&out, ",\"status\":\"");
	record_buf_str(&out, status_names[status]);
	record_buf_str(&out, "\"}");
	*out_len = out.len;
	return out.p;
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
		size_t plen = record_key(prefix, sizeof(prefix), conv, clen, "", 0), llen;
		seq = 0;
		if (store_last(STORE_CONV, prefix, plen, last, sizeof(last), &llen) == 1 &&
		    llen == plen + 8)
			seq = record_get_u64((unsigned char *)last + plen);
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


const char *messages_status_name(int level)
{
	return status_names[level >= MSG_SENT && level <= MSG_READ ? level : MSG_SENT];
}

int messages_status_level(const char *s)
{
	for (int i = MSG_SENT; i <= MSG_READ; i++)
		if (strcmp(s, status_names[i]) == 0)
			return i;
	return 0;
}

void messages_iso_time(int64_t ms, char out[MESSAGES_TIME_LEN])
{
	record_iso_time(ms, out);
}

/* ---- sending ---- */

/* The message's "seq" field, 0 when it has none. */
static uint64_t record_seq(const struct record *r)
{
	struct json_span sv;
	uint64_t seq = 0;

	if (json_object_get((struct json_span){ r->json, r->json_len }, "seq", &sv) == 1)
		json_uint(sv, &seq);
	return seq;
}

int messages_send_again(const char *sender, size_t slen, const char *cid, size_t cidlen,
			void (*done)(void *arg, int err), void *arg, struct msg_sent *out)
{
	char idem[NAME_MAX_BYTES * 2 + 2];
	size_t idemlen = record_key(idem, sizeof(idem), sender, slen, cid, cidlen);
	char prior[ID_LEN + 1];
	const void *v;
	size_t vlen;
	struct record r;

	if (store_get(STORE_IDEM, idem, idemlen, &v, &vlen) != 1 || vlen != ID_LEN)
		return 0;
	memcpy(prior, v, ID_LEN);
	prior[ID_LEN] = '\0';
	if (record_load(prior, ID_LEN, &r) != 1)
		return 0;
	memset(out, 0, sizeof(*out));
	memcpy(out->id, prior, sizeof(prior));
	/* record_field NUL-terminates what it copies (the core wrote it:
	 * MESSAGES_TIME_LEN - 1 characters), and leaves 0 when none. */
	record_field(&r, "timestamp", out->timestamp, sizeof(out->timestamp));
	out->seq = record_seq(&r);
	/* It may not be durable yet: wait behind it, and fail with it if it
	 * fails. */
	struct store_batch *w = store_batch_new();
	store_batch_after(w, store_pending(STORE_IDEM, idem, idemlen));
	store_submit(w, done, arg);
	out->record = record_for_client(prior, r.json, r.json_len, aggregate_of(prior, &r),
					&out->record_len);
	return 1;
}

void messages_send(const struct msg_new *m, void (*done)(void *arg, int err), void *arg,
		   struct msg_sent *out)
{
	char idem[NAME_MAX_BYTES * 2 + 2], convkey[NAME_MAX_BYTES + 9];
	size_t idemlen = 0;
	struct record_buf json = { 0 }, value = { 0 }, rec = { 0 };
	int64_t now = record_now_ms();

	memset(out, 0, sizeof(*out));
	if (m->client_id && m->client_id_len)
		idemlen = record_key(idem, sizeof(idem), m->sender, m->sender_len, m->client_id,
				   m->client_id_len);
	/* The recipients, NUL-terminated, back to back, the sender left out. */
	for (const char *p = m->recipients; p && p < m->recipients + m->recipients_len;
	     p += strlen(p) + 1) {
		size_t ulen = strlen(p);
		if (ulen && ulen <= NAME_MAX_BYTES &&
		    !(ulen == m->sender_len && memcmp(p, m->sender, ulen) == 0))
			record_buf_put(&rec, p, ulen + 1);
	}

	uint64_t seq = next_seq(m->conv, m->conv_len);
	new_id(out->id, now);
	record_iso_time(now, out->timestamp);
	out->seq = seq;

	record_buf_str(&json, "{\"messageId\":\"");
	record_buf_str(&json, out->id);
	record_buf_str(&json, "\",\"conversationId\":");
	record_buf_json(&json, m->conv, m->conv_len);
	record_buf_str(&json, ",\"senderId\":");
	record_buf_json(&json, m->sender, m->sender_len);
	if (m->client_id) {
		record_buf_str(&json, ",\"clientMessageId\":");
		record_buf_json(&json, m->client_id, m->client_id_len);
	}
	record_buf_str(&json, ",\"type\":");
	record_buf_json(&json, m->type, m->type_len);
	record_buf_str(&json, ",\"content\":");
	record_buf_put(&json, m->content, m->content_len);
	if (m->reply_to) {
		record_buf_str(&json, ",\"replyTo\":");
		record_buf_json(&json, m->reply_to, m->reply_to_len);
	}
	record_buf_str(&json, ",\"timestamp\":\"");
	record_buf_str(&json, out->timestamp);
	record_buf_str(&json, "\"");
	char digits[20];
	int nd = 0;
	for (uint64_t v = seq; nd == 0 || v; v /= 10)
		digits[sizeof(digits) - 1 - nd++] = (char)('0' + v % 10);
	record_buf_str(&json, ",\"seq\":");
	record_buf_put(&json, digits + sizeof(digits) - nd, (size_t)nd);
	if (m->sender_json) {
		record_buf_str(&json, ",\"sender\":");
		record_buf_put(&json, m->sender_json, m->sender_json_len);
	}
	record_buf_put(&json, "}", 1);

	struct store_batch *b = store_batch_new();
	record_value(&value, json.p, json.len, rec.p, rec.len);
	store_put(b, STORE_MESSAGES, out->id, ID_LEN, value.p, value.len);
	size_t cklen = record_key(convkey, sizeof(convkey), m->conv, m->conv_len, "", 0);
	record_put_u64((unsigned char *)convkey + cklen, seq);
	store_put(b, STORE_CONV, convkey, cklen + 8, out->id, ID_LEN);
	if (idemlen)
		store_put(b, STORE_IDEM, idem, idemlen, out->id, ID_LEN);
	for (const char *p = rec.p; rec.p && p < rec.p + rec.len; p += strlen(p) + 1)
		status_put(b, out->id, p, strlen(p), MSG_SENT, now, 0);
	inbox_message(b, m->conv, m->conv_len, m->sender, m->sender_len, rec.p, rec.len,
		      strtoull(out->id, NULL, 16));
	store_submit(b, done, arg);
	out->record = record_for_client(NULL, json.p, json.len, MSG_SENT, &out->record_len);
	scratch_free(json.p);
	scratch_free(value.p);
	scratch_free(rec.p);
}

/* ---- reading ---- */

/* Appends a joined recipient's id and a NUL to the buffer. */
static void collect_joined(void *arg, const char *user, size_t ulen, int level)
{
	(void)level;
	record_buf_put(arg, user, ulen);
	record_buf_put(arg, "", 1);
}

int messages_get(const char *id, size_t idlen, struct msg_view *out)
{
	struct record r;
	struct record_buf names = { 0 };

	memset(out, 0, sizeof(*out));
	if (idlen != ID_LEN || record_load(id, idlen, &r) != 1)
		return 0;
	/* The recipients at send time, then the joined ones. */
	if (r.recipients_len)
		record_buf_put(&names, r.recipients, r.recipients_len);
	each_joined(id, collect_joined, &names);
	out->recipients = names.p;
	out->recipients_len = names.len;
	out->record = record_for_client(id, r.json, r.json_len, aggregate_of(id, &r),
					&out->record_len);
	/* record_field NUL-terminates what it copies. */
	out->conv_len = record_field(&r, "conversationId", out->conv, sizeof(out->conv));
	out->conv[out->conv_len] = '\0';
	out->sender_len = record_field(&r, "senderId", out->sender, sizeof(out->sender));
	out->sender[out->sender_len] = '\0';
	out->seq = record_seq(&r);
	return 1;
}

int messages_has(const char *id, size_t idlen)
{
	struct record r;

	return idlen == ID_LEN && record_load(id, idlen, &r) == 1;
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
	c->seqs[c->n] = record_get_u64((const unsigned char *)k + c->prefix);
	c->n++;
	return 0;
}

/* The ids of a conversation's messages with seq in (after, upto], at most
 * `limit` (+1 to tell whether there are more). */
static size_t conversation_ids(const char *conv, size_t clen, uint64_t after, size_t limit,
			       struct collect_ids *c)
{
	char prefix[NAME_MAX_BYTES + 1], start[NAME_MAX_BYTES + 9];
	size_t plen = record_key(prefix, sizeof(prefix), conv, clen, "", 0);

	memcpy(start, prefix, plen);
	record_put_u64((unsigned char *)start + plen, after + 1);
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

	return viewer && store_get(STORE_HIDDEN, key, record_key(key, sizeof(key), id, ID_LEN, viewer,
								  vlen), &v, &n) == 1;
}

/* A page of sync's answer: the first `n` of `c`'s messages (in the order
 * collected, or the reverse when `reverse`), less those `viewer` hid, and
 * whether more are there (`c` holds one more than the page when they are).
 * Frees `c`. */
static char *sync_page(struct collect_ids *c, size_t n, int reverse, const char *viewer,
		       size_t vlen, size_t *len)
{
	struct record_buf out = { 0 };
	struct record r;

	record_buf_str(&out, "{\"messages\":[");
	for (size_t j = 0; j < n; j++) {
		size_t i = reverse ? n - 1 - j : j;

		if (hidden_for(c->ids[i], viewer, vlen) || record_load(c->ids[i], ID_LEN, &r) != 1)
			continue;
		if (out.p[out.len - 1] != '[')
			record_buf_put(&out, ",", 1);
		record_with_statuses(&out, c->ids[i], &r);
	}
	record_buf_str(&out, c->n > n ? "],\"hasMore\":true}" : "],\"hasMore\":false}");
	scratch_free(c->ids);
	scratch_free(c->seqs);
	*len = out.len;
	return out.p;
}

/* A page's size: `limit` within 1..MESSAGES_SYNC_MAX. */
static size_t sync_limit(long limit)
{
	return limit < 1 ? 1 : limit > MESSAGES_SYNC_MAX ? MESSAGES_SYNC_MAX : (size_t)limit;
}

char *messages_sync(const char *conv, size_t clen, uint64_t after, long limit,
		    const char *viewer, size_t vlen, size_t *len)
{
	struct collect_ids c;
	size_t n = sync_limit(limit);

	conversation_ids(conv, clen, after, n + 1, &c);
	return sync_page(&c, c.n < n ? c.n : n, 0, viewer, vlen, len);
}

/* The ids of a conversation's messages with seq below `before`, the newest
 * first, at most `limit`, from the conversation index backwards: a page
 * costs its own size whatever the length of the history. */
static size_t conversation_ids_back(const char *conv, size_t clen, uint64_t before,
				    size_t limit, struct collect_ids *c)
{
	char prefix[NAME_MAX_BYTES + 1], bound[NAME_MAX_BYTES + 9];
	size_t plen = record_key(prefix, sizeof(prefix), conv, clen, "", 0);

	memcpy(bound, prefix, plen);
	record_put_u64((unsigned char *)bound + plen, before);
	c->cap = limit;
	c->ids = scratch_alloc(limit * sizeof(*c->ids));
	c->seqs = scratch_alloc(limit * sizeof(*c->seqs));
	c->n = 0;
	c->prefix = plen;
	store_scan_back(STORE_CONV, prefix, plen, bound, plen + 8, (long)limit, collect_id, c);
	return c->n;
}

char *messages_sync_before(const char *conv, size_t clen, uint64_t before, long limit,
			   const char *viewer, size_t vlen, size_t *len)
{
	struct collect_ids c;
	size_t n = sync_limit(limit);

	/* One more than the page: if it is there, older messages exist.
	 * Collected newest first; answered oldest first. */
	conversation_ids_back(conv, clen, before, n + 1, &c);
	return sync_page(&c, c.n < n ? c.n : n, 1, viewer, vlen, len);
}

/* ---- statuses ---- */

/* Sets `user`'s status of message `id` to `level` if that advances it,
 * adding the user as a recipient when `open` (a conversation without
 * registered members). With `conv`, a message of another conversation
 * counts as no such message. With no batch `b` it only checks: nothing is
 * written, and 0 means the write would be allowed. Fills what the caller
 * reports; returns 1 changed, 0 unchanged, -ENOENT (no such message) or
 * PARLEY_ENOTRECIPIENT. */
static int set_status(struct store_batch *b, const char *id, const char *user, size_t ulen,
		      int level, int open, const char *conv, size_t clen,
		      struct msg_change *ch)
{
	struct record r;
	struct joined j;
	int current, flags, recipient = 0, original = 0, rc = 0;
	uint32_t recipients = 0;

	memcpy(ch->id, id, ID_LEN);
	ch->id[ID_LEN] = '\0';
	if (record_load(id, ID_LEN, &r) != 1)
		return -ENOENT;
	/* A message not yet durable may still fail: its statuses go with it. */
	if (b)
		store_batch_after(b, store_pending(STORE_MESSAGES, id, ID_LEN));
	ch->conv[record_field(&r, "conversationId", ch->conv, sizeof(ch->conv) - 1)] = '\0';
	if (conv && (strlen(ch->conv) != clen || memcmp(ch->conv, conv, clen) != 0)) {
		rc = -ENOENT;
		goto out;
	}
	ch->sender[record_field(&r, "senderId", ch->sender, sizeof(ch->sender) - 1)] = '\0';
	ch->at = record_now_ms();
	if (strlen(ch->sender) == ulen && memcmp(ch->sender, user, ulen) == 0)
		goto out; /* a sender's own message has no status for them */
	for (const char *p = r.recipients; p < r.recipients + r.recipients_len; p += strlen(p) + 1) {
		recipients++;
		if (strlen(p) == ulen && memcmp(p, user, ulen) == 0)
			recipient = original = 1;
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
		rc = PARLEY_ENOTRECIPIENT;
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
	/* Counted unread for the user when sent to it (inbox_message): no
	 * longer. */
	ch->unread_read = original && level == MSG_READ;
	/* The batch is not visible yet: count this user at the new level. */
	ch->aggregate = aggregate_with(id, &r, &j, user, ulen, level);
	rc = 1;
out:
	return rc;
}


/* The user read the messages of `changes`: each conversation among them
 * has one inbox write, its unread count down by the messages counted there
 * (an id named twice, once). */
static void inbox_reads(struct store_batch *b, const char *user, size_t ulen,
			const struct msg_change *changes, size_t n)
{
	struct map seen, convs;
	struct map_iter it;
	struct map_entry *e;

	map_init(&seen);
	map_init(&convs);
	for (size_t i = 0; i < n; i++) {
		const char *c = changes[i].conv;
		uintptr_t count = (uintptr_t)map_get(&convs, c, strlen(c));
		if (!count)
			count = 1; /* stored plus one: a value is never NULL */
		if (changes[i].unread_read && !map_get(&seen, changes[i].id, ID_LEN)) {
			map_put(&seen, changes[i].id, ID_LEN, (void *)1);
			count++;
		}
		map_put(&convs, c, strlen(c), (void *)count);
	}
	map_iter_init(&it, &convs);
	while ((e = map_next(&it)) != NULL)
		if (e->klen)
			inbox_read(b, e->key, e->klen, user, ulen, (uint32_t)((uintptr_t)e->value - 1));
	map_fini(&seen);
	map_fini(&convs);
}

int messages_set_status(const char *const *ids, const size_t *idlens, size_t n,
			const char *user, size_t ulen, int level, int open, const char *conv,
			size_t clen, void (*done)(void *arg, int err), void *arg,
			struct msg_change *changes, size_t *refused)
{
	struct store_batch *b;

	/* The checks first, for every id: nothing is written unless all pass. */
	for (size_t i = 0; i < n; i++) {
		struct msg_change ch;
		int rc = idlens[i] == ID_LEN ? set_status(NULL, ids[i], user, ulen, level, open,
							  conv, clen, &ch)
					     : -ENOENT;
		if (rc < 0) {
			*refused = i;
			return rc;
		}
	}
	/* Then the writes, into one batch. */
	b = store_batch_new();
	for (size_t i = 0; i < n; i++) {
		memset(&changes[i], 0, sizeof(changes[i]));
		/* An id named twice writes the same rows twice: each call reads
		 * what is committed, not this batch. */
		set_status(b, ids[i], user, ulen, level, open, conv, clen, &changes[i]);
	}
	if (level == MSG_READ)
		inbox_reads(b, user, ulen, changes, n);
	store_submit(b, done, arg);
	return 0;
}

void messages_read_upto(const char *conv, size_t clen, const char *user, size_t ulen,
			uint64_t upto, int open, void (*done)(void *arg, int err), void *arg,
			struct msg_change **changes_out, size_t *nchanges, int *count)
{
	char cur[2 + 2 * NAME_MAX_BYTES + 2];
	size_t curlen = 0;
	uint64_t from = 0, last = 0;
	const void *v;
	size_t vlen;
	struct collect_ids c;
	struct store_batch *b;
	struct msg_change *changes;
	size_t n = 0;
	uint32_t unread_read = 0;

	*count = 0;
	/* "rc" \0 conversation \0 user: where the user had read to. */
	memcpy(cur, "rc", 3);
	curlen = 3 + record_key(cur + 3, sizeof(cur) - 3, conv, clen, user, ulen);
	if (store_get(STORE_META, cur, curlen, &v, &vlen) == 1 && vlen == 8)
		from = record_get_u64(v);
	conversation_ids(conv, clen, from, READ_MAX, &c);
	changes = scratch_alloc((c.n ? c.n : 1) * sizeof(*changes));
	b = store_batch_new();
	for (size_t i = 0; i < c.n && c.seqs[i] <= upto; i++) {
		memset(&changes[n], 0, sizeof(changes[n]));
		int rc = set_status(b, c.ids[i], user, ulen, MSG_READ, open, NULL, 0, &changes[n]);
		last = c.seqs[i];
		if (rc == 1)
			(*count)++;
		if (rc == 1 && changes[n].unread_read)
			unread_read++;
		if (rc == 1 && changes[n].aggregate != changes[n].aggregate_before)
			n++;
	}
	if (last > from) {
		unsigned char word[8];
		record_put_u64(word, last);
		store_put(b, STORE_META, cur, curlen, word, 8);
	}
	inbox_read(b, conv, clen, user, ulen, unread_read);
	store_submit(b, done, arg);
	scratch_free(c.ids);
	scratch_free(c.seqs);
	*changes_out = changes;
	*nchanges = n;
}

/* ---- membership ---- */

/* The names a scan found, each followed by a NUL, gathered while the
 * store's cursor is open and pushed once it is closed (a push may raise). */
struct collect_names {
	struct record_buf names;
	size_t skip;
};

static int collect_name(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct collect_names *c = arg;

	(void)v;
	(void)vl;
	record_buf_put(&c->names, (const char *)k + c->skip, kl - c->skip);
	record_buf_put(&c->names, "", 1);
	return 0;
}
/* The names under the prefix `a` "\0" in `db`, NUL-terminated, back to
 * back (scratch). */
static char *names_of(enum store_db db, const char *a, size_t alen, long limit, size_t *len)
{
	char prefix[NAME_MAX_BYTES + 1];
	size_t plen = record_key(prefix, sizeof(prefix), a, alen, "", 0);
	struct collect_names c = { { 0 }, plen };

	store_scan(db, prefix, plen, NULL, 0, limit, collect_name, &c);
	*len = c.names.len;
	return c.names.p;
}

char *messages_members(const char *conv, size_t clen, size_t *len)
{
	return names_of(STORE_MEMBERS, conv, clen, RECIPIENTS_MAX, len);
}

char *messages_conversations_of(const char *user, size_t ulen, size_t *len)
{
	return names_of(STORE_USERCONV, user, ulen, 100000, len);
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
	plen = record_key(prefix, sizeof(prefix), conv, clen, "", 0);
	yes = store_last(STORE_MEMBERS, prefix, plen, any, sizeof(any), &olen) == 1;
	if (registered_cache.count >= REGISTERED_CACHE_MAX) {
		map_fini(&registered_cache);
		map_init(&registered_cache);
	}
	map_put(&registered_cache, conv, clen, (void *)(uintptr_t)(yes + 1));
	return yes;
}

int messages_is_member(const char *conv, size_t clen, const char *user, size_t ulen,
		       int *registered)
{
	char key[2 * NAME_MAX_BYTES + 2];
	const void *v;
	size_t vlen;

	*registered = has_members(conv, clen);
	return *registered &&
	       store_get(STORE_MEMBERS, key, record_key(key, sizeof(key), conv, clen, user, ulen), &v,
			 &vlen) == 1;
}

void messages_set_members(const char *conv, size_t clen, const char *members, size_t len,
			  void (*done)(void *arg, int err), void *arg)
{
	struct store_batch *b;
	char key[2 * NAME_MAX_BYTES + 2];
	size_t klen, oldlen, n = 0;
	char *old;

	caches_check(); /* before this batch's answer goes in the cache */
	old = names_of(STORE_MEMBERS, conv, clen, RECIPIENTS_MAX, &oldlen);
	b = store_batch_new();
	/* Out with the old... */
	for (const char *u = old; u && u < old + oldlen; u += strlen(u) + 1) {
		size_t ulen = strlen(u);
		store_del(b, STORE_MEMBERS, key, record_key(key, sizeof(key), conv, clen, u, ulen));
		store_del(b, STORE_USERCONV, key, record_key(key, sizeof(key), u, ulen, conv, clen));
	}
	scratch_free(old);
	/* ...in with the new (a later put of the same key wins). */
	for (const char *u = members; u && u < members + len && n < RECIPIENTS_MAX;
	     u += strlen(u) + 1, n++) {
		size_t ulen = strlen(u);
		klen = record_key(key, sizeof(key), conv, clen, u, ulen);
		store_put(b, STORE_MEMBERS, key, klen, "", 0);
		klen = record_key(key, sizeof(key), u, ulen, conv, clen);
		store_put(b, STORE_USERCONV, key, klen, "", 0);
	}
	map_put(&registered_cache, conv, clen, (void *)(uintptr_t)(n > 0 ? 2 : 1));
	inbox_members(b, conv, clen, members, len);
	store_submit(b, done, arg);
}

/* ---- profiles and last seen ---- */

int messages_profile(const char *user, size_t ulen, const void **json, size_t *len)
{
	return store_get(STORE_USERS, user, ulen, json, len) == 1;
}

void messages_set_profile(const char *user, size_t ulen, const char *json, size_t len,
			  void (*done)(void *arg, int err), void *arg)
{
	struct store_batch *b = store_batch_new();

	store_put(b, STORE_USERS, user, ulen, json, len);
	store_submit(b, done, arg);
}

int messages_last_seen(const char *user, size_t ulen, int64_t *ms)
{
	const void *v;
	size_t vlen;

	if (store_get(STORE_SEEN, user, ulen, &v, &vlen) != 1 || vlen != 8)
		return 0;
	*ms = (int64_t)record_get_u64(v);
	return 1;
}

void messages_set_last_seen(const char *user, size_t ulen, int64_t ms)
{
	unsigned char word[8];
	struct store_batch *b = store_batch_new();

	record_put_u64(word, ms > 0 ? (uint64_t)ms : 0);
	store_put(b, STORE_SEEN, user, ulen, word, 8);
	store_submit(b, NULL, NULL);
}
