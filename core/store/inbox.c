/* inbox.c - each user's conversations, latest activity first (see inbox.h
 * and messages.h's inbox functions). Keys and values:
 *   inbox   user "\0" conversation -> activity(8) unread(4)
 *   recent  user "\0" activity(8) conversation -> "" (the order: the
 *           latest is the last key under the user)
 *   parts   conversation "\0" user -> "" (whose inboxes hold it)
 * A conversation's activity is its last message's id read as a number (ms
 * << 20 and a counter: ids are time-ordered and never repeat, so two
 * conversations active in one millisecond still have an order), or, before
 * it has one, when the user came to it. Its last message is the last key
 * of its sequence (`conv`), read when an entry is shown. So a page of the
 * inbox costs its own size, never a walk of any history, and a message
 * costs one entry per participant. Entries are read through the overlay
 * (a pending write counts); `parts` and `recent` are scanned, durable
 * only: a user who became a participant in a batch still pending when the
 * next message is written is moved by that message only if it is one of
 * its recipients. Uses store.c, record.c, wire/json. */
#include "store/inbox.h"

#include <stdlib.h>
#include <string.h>

#include "base/map.h"
#include "base/scratch.h"
#include "store/messages.h"
#include "store/record.h"
#include "store/store.h"
#include "wire/json.h"

#define ID_LEN MESSAGES_ID_LEN
#define NAME_MAX_BYTES MESSAGES_NAME_MAX
#define ENTRY_LEN 12
/* Participants whose entries one message moves, at most: a conversation
 * holds no more recipients than this either. */
#define PARTS_MAX MESSAGES_RECIPIENTS_MAX
/* user "\0" ms(8) conversation */
#define RECENT_KEY_MAX (NAME_MAX_BYTES + 1 + 8 + NAME_MAX_BYTES)

struct entry {
	int found;
	uint64_t at; /* the activity: ms << 20, see above */
	uint32_t unread;
};

/* An activity of now, for an entry made without a message. */
static uint64_t activity_now(void)
{
	return (uint64_t)record_now_ms() << 20;
}

static void entry_get(const char *user, size_t ulen, const char *conv, size_t clen,
		      struct entry *e)
{
	char key[2 * NAME_MAX_BYTES + 2];
	size_t klen = record_key(key, sizeof(key), user, ulen, conv, clen);
	const unsigned char *v;
	size_t vlen;

	memset(e, 0, sizeof(*e));
	if (!klen || store_get(STORE_INBOX, key, klen, (const void **)&v, &vlen) != 1 ||
	    vlen != ENTRY_LEN)
		return;
	e->found = 1;
	e->at = record_get_u64(v);
	e->unread = (uint32_t)v[8] << 24 | (uint32_t)v[9] << 16 | (uint32_t)v[10] << 8 | v[11];
}

static size_t recent_key(char *out, const char *user, size_t ulen, uint64_t at,
			 const char *conv, size_t clen)
{
	memcpy(out, user, ulen);
	out[ulen] = '\0';
	record_put_u64((unsigned char *)out + ulen + 1, at);
	memcpy(out + ulen + 9, conv, clen);
	return ulen + 9 + clen;
}

/* Writes `now` as the user's entry of the conversation, `old` being what
 * was there: the order's key moves with the activity. */
static void entry_put(struct store_batch *b, const char *user, size_t ulen, const char *conv,
		      size_t clen, const struct entry *old, const struct entry *now)
{
	char key[2 * NAME_MAX_BYTES + 2], rkey[RECENT_KEY_MAX];
	unsigned char v[ENTRY_LEN];
	size_t klen = record_key(key, sizeof(key), user, ulen, conv, clen);

	if (!klen)
		return;
	if (old->found && old->at != now->at)
		store_del(b, STORE_RECENT, rkey, recent_key(rkey, user, ulen, old->at, conv, clen));
	if (!old->found || old->at != now->at)
		store_put(b, STORE_RECENT, rkey, recent_key(rkey, user, ulen, now->at, conv, clen), "",
			  0);
	record_put_u64(v, now->at);
	v[8] = (unsigned char)(now->unread >> 24);
	v[9] = (unsigned char)(now->unread >> 16);
	v[10] = (unsigned char)(now->unread >> 8);
	v[11] = (unsigned char)now->unread;
	store_put(b, STORE_INBOX, key, klen, v, sizeof(v));
	if (!old->found)
		store_put(b, STORE_PARTS, key, record_key(key, sizeof(key), conv, clen, user, ulen),
			  "", 0);
}

static void entry_del(struct store_batch *b, const char *user, size_t ulen, const char *conv,
		      size_t clen, const struct entry *old)
{
	char key[2 * NAME_MAX_BYTES + 2], rkey[RECENT_KEY_MAX];

	store_del(b, STORE_INBOX, key, record_key(key, sizeof(key), user, ulen, conv, clen));
	store_del(b, STORE_RECENT, rkey, recent_key(rkey, user, ulen, old->at, conv, clen));
	store_del(b, STORE_PARTS, key, record_key(key, sizeof(key), conv, clen, user, ulen));
}

static int copy_id(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	char *id = arg;

	(void)k;
	(void)kl;
	if (vl == ID_LEN) {
		memcpy(id, v, ID_LEN);
		id[ID_LEN] = '\0';
	}
	return 1;
}

/* The id of the conversation's last durable message into `id`: 1, or 0
 * when it has none. */
static int last_message(const char *conv, size_t clen, char id[ID_LEN + 1])
{
	char prefix[NAME_MAX_BYTES + 1];
	size_t plen = record_key(prefix, sizeof(prefix), conv, clen, "", 0);

	id[0] = '\0';
	return plen && store_scan_back(STORE_CONV, prefix, plen, NULL, 0, 1, copy_id, id) == 1 &&
	       id[0] != '\0';
}

/* When the conversation was last active, for an entry made without a
 * message: its last message's id, or now. */
static uint64_t conversation_at(const char *conv, size_t clen)
{
	char id[ID_LEN + 1];

	if (!last_message(conv, clen, id))
		return activity_now();
	return strtoull(id, NULL, 16);
}

/* ---- writing ---- */

/* Gathers names into a map (name -> flags), so each is written once. */
#define IS_RECIPIENT ((void *)(uintptr_t)2)
#define IS_OTHER ((void *)(uintptr_t)1)

struct gather {
	struct map *m;
	size_t skip;
};

static int gather_part(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct gather *g = arg;

	(void)v;
	(void)vl;
	if (kl > g->skip && !map_get(g->m, (const char *)k + g->skip, kl - g->skip))
		map_put(g->m, (const char *)k + g->skip, kl - g->skip, IS_OTHER);
	return 0;
}

/* The conversation's participants (durable ones) into `m`. */
static void parts_of(const char *conv, size_t clen, struct map *m)
{
	char prefix[NAME_MAX_BYTES + 1];
	size_t plen = record_key(prefix, sizeof(prefix), conv, clen, "", 0);
	struct gather g = { m, plen };

	if (plen)
		store_scan(STORE_PARTS, prefix, plen, NULL, 0, PARTS_MAX, gather_part, &g);
}

void inbox_message(struct store_batch *b, const char *conv, size_t clen, const char *sender,
		   size_t slen, const char *recipients, size_t rlen, uint64_t at)
{
	struct map users;
	struct map_iter it;
	struct map_entry *e;

	map_init(&users);
	parts_of(conv, clen, &users);
	map_put(&users, sender, slen, IS_OTHER);
	for (const char *p = recipients; p && p < recipients + rlen; p += strlen(p) + 1)
		map_put(&users, p, strlen(p), IS_RECIPIENT);
	map_iter_init(&it, &users);
	while ((e = map_next(&it)) != NULL) {
		struct entry old, now;
		entry_get(e->key, e->klen, conv, clen, &old);
		now = old;
		now.found = 1;
		/* Never back: an entry made from the clock may be ahead of an id. */
		now.at = at > old.at ? at : old.at;
		if (e->value == IS_RECIPIENT && now.unread < UINT32_MAX)
			now.unread++;
		entry_put(b, e->key, e->klen, conv, clen, &old, &now);
	}
	map_fini(&users);
}

void inbox_read(struct store_batch *b, const char *conv, size_t clen, const char *user,
		size_t ulen, uint32_t n)
{
	struct entry old, now;

	entry_get(user, ulen, conv, clen, &old);
	if (old.found && n == 0)
		return;
	now = old;
	if (!old.found) {
		now.found = 1;
		now.at = conversation_at(conv, clen);
		now.unread = 0;
	}
	now.unread = now.unread > n ? now.unread - n : 0;
	entry_put(b, user, ulen, conv, clen, &old, &now);
}

void inbox_members(struct store_batch *b, const char *conv, size_t clen, const char *members,
		   size_t len)
{
	struct map keep, had;
	struct map_iter it;
	struct map_entry *e;
	size_t n = 0;
	uint64_t at = 0;

	if (!members || !len)
		return;
	map_init(&keep);
	map_init(&had);
	for (const char *u = members; u < members + len && n < PARTS_MAX; u += strlen(u) + 1, n++)
		map_put(&keep, u, strlen(u), IS_OTHER);
	/* Out with those who are no longer members... */
	parts_of(conv, clen, &had);
	map_iter_init(&it, &had);
	while ((e = map_next(&it)) != NULL) {
		struct entry old;
		if (map_get(&keep, e->key, e->klen))
			continue;
		entry_get(e->key, e->klen, conv, clen, &old);
		if (old.found)
			entry_del(b, e->key, e->klen, conv, clen, &old);
	}
	/* ...and each member has it, as it was or from now. */
	map_iter_init(&it, &keep);
	while ((e = map_next(&it)) != NULL) {
		struct entry old, now;
		entry_get(e->key, e->klen, conv, clen, &old);
		if (old.found)
			continue;
		if (!at)
			at = conversation_at(conv, clen);
		memset(&now, 0, sizeof(now));
		now.found = 1;
		now.at = at;
		entry_put(b, e->key, e->klen, conv, clen, &old, &now);
	}
	map_fini(&keep);
	map_fini(&had);
}

/* ---- reading ---- */

/* Appends the text a chat list shows of a message: a text's first
 * MESSAGES_PREVIEW_CHARS characters; for other types a string content, or
 * an object's "caption" or "name", cut alike; "" otherwise. */
static void append_preview(struct record_buf *out, struct json_span content)
{
	struct json_span s = content, f;
	char *text;
	long n;
	size_t cut = 0, chars = 0;

	if (json_kind_of(content) == JSON_OBJECT &&
	    (json_object_get(content, "caption", &f) == 1 ||
	     json_object_get(content, "name", &f) == 1))
		s = f;
	if (json_kind_of(s) != JSON_STRING) {
		record_buf_str(out, "\"\"");
		return;
	}
	text = scratch_alloc(s.len + 1);
	n = json_string_unescape(s, text, s.len + 1);
	if (n < 0)
		n = 0;
	/* Whole characters only: a cut never splits one. */
	while (cut < (size_t)n && chars < MESSAGES_PREVIEW_CHARS) {
		cut++;
		while (cut < (size_t)n && ((unsigned char)text[cut] & 0xc0) == 0x80)
			cut++;
		chars++;
	}
	record_buf_json(out, text, cut);
	scratch_free(text);
}

/* Appends a JSON member `"name":value` from the record's object, when it
 * has that field. */
static void append_field(struct record_buf *out, struct json_span obj, const char *name)
{
	struct json_span v;

	if (json_object_get(obj, name, &v) != 1)
		return;
	if (out->p[out->len - 1] != '{')
		record_buf_put(out, ",", 1);
	record_buf_put(out, "\"", 1);
	record_buf_str(out, name);
	record_buf_str(out, "\":");
	record_buf_put(out, v.p, v.len);
}

/* Appends what an item shows of the conversation's last message: the
 * object, or null when it has none. */
static void append_last(struct record_buf *out, const char *conv, size_t clen)
{
	char id[ID_LEN + 1];
	struct record r;
	struct json_span obj, content;

	if (!last_message(conv, clen, id) || record_load(id, ID_LEN, &r) != 1) {
		record_buf_str(out, "null");
		return;
	}
	obj = (struct json_span){ r.json, r.json_len };
	record_buf_str(out, "{");
	append_field(out, obj, "messageId");
	append_field(out, obj, "senderId");
	append_field(out, obj, "sender");
	append_field(out, obj, "type");
	append_field(out, obj, "timestamp");
	append_field(out, obj, "seq");
	append_field(out, obj, "deleted");
	record_buf_str(out, ",\"preview\":");
	if (json_object_get(obj, "content", &content) == 1)
		append_preview(out, content);
	else
		record_buf_str(out, "\"\"");
	record_buf_str(out, "}");
}

/* Appends the item of one conversation of a user's inbox, its last
 * message being `last` (append_last's text). */
static void append_item_with(struct record_buf *out, const char *conv, size_t clen,
			     const struct entry *e, const char *last, size_t llen)
{
	char when[MESSAGES_TIME_LEN], digits[JSON_UINT_MAX];

	record_buf_str(out, "{\"conversationId\":");
	record_buf_json(out, conv, clen);
	record_iso_time((int64_t)(e->at >> 20), when);
	record_buf_str(out, ",\"updatedAt\":\"");
	record_buf_str(out, when);
	record_buf_str(out, "\",\"unreadCount\":");
	record_buf_put(out, digits, json_uint_write(digits, e->unread));
	record_buf_str(out, ",\"lastMessage\":");
	record_buf_put(out, last, llen);
	record_buf_str(out, "}");
}

static void append_item(struct record_buf *out, const char *conv, size_t clen,
			const struct entry *e)
{
	struct record_buf last = { 0 };

	append_last(&last, conv, clen);
	append_item_with(out, conv, clen, e, last.p, last.len);
	scratch_free(last.p);
}

size_t messages_inbox_items(const char *conv, size_t clen, const char *const *users,
			    const size_t *ulens, size_t n, long *group, char **items,
			    size_t *item_lens)
{
	struct record_buf last = { 0 };
	struct entry *keys;
	size_t groups = 0;

	if (n == 0)
		return 0;
	keys = scratch_alloc(n * sizeof(*keys));
	/* Users whose entries agree (activity and count) get one item; after a
	 * message that is nearly everyone: the sender, and recipients by how
	 * much they had left unread. The last message is read once. */
	for (size_t i = 0; i < n; i++) {
		struct entry e;
		size_t g;
		entry_get(users[i], ulens[i], conv, clen, &e);
		group[i] = -1;
		if (!e.found)
			continue;
		for (g = 0; g < groups; g++)
			if (keys[g].at == e.at && keys[g].unread == e.unread)
				break;
		if (g == groups) {
			struct record_buf item = { 0 };
			if (!last.p)
				append_last(&last, conv, clen);
			append_item_with(&item, conv, clen, &e, last.p, last.len);
			keys[g] = e;
			items[g] = item.p;
			item_lens[g] = item.len;
			groups++;
		}
		group[i] = (long)g;
	}
	scratch_free(last.p);
	scratch_free(keys);
	return groups;
}

struct page {
	char (*convs)[NAME_MAX_BYTES + 1];
	size_t *lens;
	size_t n, cap, skip;
};

static int collect_conv(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct page *p = arg;

	(void)v;
	(void)vl;
	if (kl <= p->skip + 8 || kl - p->skip - 8 > NAME_MAX_BYTES || p->n == p->cap)
		return 0;
	p->lens[p->n] = kl - p->skip - 8;
	memcpy(p->convs[p->n], (const char *)k + p->skip + 8, p->lens[p->n]);
	p->n++;
	return 0;
}

char *messages_inbox(const char *user, size_t ulen, const char *before, size_t blen, long limit,
		     size_t *len)
{
	char prefix[NAME_MAX_BYTES + 1], bound[RECENT_KEY_MAX];
	size_t plen = record_key(prefix, sizeof(prefix), user, ulen, "", 0), bl = 0;
	struct record_buf out = { 0 };
	struct page p = { 0 };

	*len = 0;
	if (limit < 1)
		limit = 1;
	if (limit > MESSAGES_INBOX_MAX)
		limit = MESSAGES_INBOX_MAX;
	if (before) {
		struct entry e;
		entry_get(user, ulen, before, blen, &e);
		if (!e.found)
			return NULL;
		bl = recent_key(bound, user, ulen, e.at, before, blen);
	}
	/* One more than the page: if it is there, more follow. */
	p.cap = (size_t)limit + 1;
	p.convs = scratch_alloc(p.cap * sizeof(*p.convs));
	p.lens = scratch_alloc(p.cap * sizeof(*p.lens));
	p.skip = plen;
	if (plen)
		store_scan_back(STORE_RECENT, prefix, plen, bl ? bound : NULL, bl, (long)p.cap,
				collect_conv, &p);
	record_buf_str(&out, "{\"conversations\":[");
	for (size_t i = 0; i < p.n && i < (size_t)limit; i++) {
		struct entry e;
		entry_get(user, ulen, p.convs[i], p.lens[i], &e);
		if (!e.found)
			continue;
		if (out.p[out.len - 1] != '[')
			record_buf_put(&out, ",", 1);
		append_item(&out, p.convs[i], p.lens[i], &e);
	}
	record_buf_str(&out, p.n > (size_t)limit ? "],\"hasMore\":true}" : "],\"hasMore\":false}");
	scratch_free(p.convs);
	scratch_free(p.lens);
	*len = out.len;
	return out.p;
}

char *messages_inbox_item(const char *user, size_t ulen, const char *conv, size_t clen,
			  size_t *len)
{
	struct record_buf out = { 0 };
	struct entry e;

	*len = 0;
	entry_get(user, ulen, conv, clen, &e);
	if (!e.found)
		return NULL;
	append_item(&out, conv, clen, &e);
	*len = out.len;
	return out.p;
}

struct names {
	struct record_buf buf;
	size_t skip;
};

static int collect_part(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct names *c = arg;

	(void)v;
	(void)vl;
	record_buf_put(&c->buf, (const char *)k + c->skip, kl - c->skip);
	record_buf_put(&c->buf, "", 1);
	return 0;
}

char *messages_participants(const char *conv, size_t clen, size_t *len)
{
	char prefix[NAME_MAX_BYTES + 1];
	size_t plen = record_key(prefix, sizeof(prefix), conv, clen, "", 0);
	struct names c = { { 0 }, plen };

	if (plen)
		store_scan(STORE_PARTS, prefix, plen, NULL, 0, PARTS_MAX, collect_part, &c);
	*len = c.buf.len;
	return c.buf.p;
}
