/* store_api_pg.c - the message store's and kv's host functions on
 * PostgreSQL (core.store_*, core.kv_*, core.store_wait): the same names,
 * arguments and results as store_api.c's, kv.c's and tickets.c's, each one
 * prepared statement (store/pg_schema.c) sent through store/pg.c. Each
 * checks its arguments as LMDB's does (raising alike), queues its statement
 * and returns core.PENDING and a ticket (tickets_pending); the statement's
 * answer resumes the job (the seam's script_resume_with) with the values LMDB's would
 * have returned, as core/lua/runtime/api.lua says for each. A call the
 * store could not answer (PostgreSQL unreachable, the statement failed)
 * resumes reads and writes without an error value of their own with
 * core.PENDING and the error's text, which settle raises in the job (the
 * client gets a 503 or 500: runtime/helpers.lua's script_failed); send, the
 * waits and kv's writes resume with nil and the error, as LMDB's do. */
#include "lua/host.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "base/scratch.h"
#include "lua/jsonlua.h"
#include "lua/tickets.h"
#include "store/messages.h"
#include "store/pg_schema.h"
#include "store/record.h"

#define NAME_MAX_BYTES MESSAGES_NAME_MAX
#define PARAMS_MAX 12
/* kv.c's bounds, the same on both backends. */
#define KV_SWEEP_MS 30000

/* Wall-clock ms: message times, expiries (LMDB's are the same clock). */
static int64_t clock_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How a failed call resumes its job. */
enum failure {
	FAIL_RAISE,    /* core.PENDING, the error: settle raises it */
	FAIL_NIL_ERR,  /* nil, the error (send, kv writes) */
	FAIL_ERR,      /* the error alone (store_wait) */
};

/* A call in flight: the job's ticket and how to push the answer. */
struct pg_wait {
	uintptr_t ticket;
	int (*push)(lua_State *L, const PGresult *res);
	enum failure failure;
	const PGresult *res;
	int err;
	unsigned long members_gen; /* members_gen when it was queued */
	/* A send's record from after its id to its seq (send_middle), which
	 * the answer completes (push_record); empty for other calls. */
	size_t middle_len;
	char middle[];
};

/* How many store_set_members this process has queued: a send_as whose
 * answer finds it moved since the send was queued tells its script that
 * the members it answers may be older than the membership now. */
static unsigned long members_gen;
/* The call whose answer is being pushed (push_values). */
static const struct pg_wait *answering;

/* The error's text: parley_strerror's, and for PARLEY_EUNAVAILABLE the
 * reason the store is down when it is ("PARLEY_EUNAVAILABLE: PostgreSQL
 * unreachable: ..."), which the client's 503 repeats. */
static void push_error(lua_State *L, int err)
{
	const char *why;

	if (err == PARLEY_EUNAVAILABLE && pg_down(&why))
		lua_pushfstring(L, "PARLEY_EUNAVAILABLE: %s", why);
	else
		lua_pushstring(L, parley_strerror(err));
}

/* The answer's values, in a protected call of its own. */
static int push_values(lua_State *L)
{
	struct pg_wait *w = lua_touserdata(L, 1);

	lua_settop(L, 0);
	answering = w;
	return w->push(L, w->res);
}

static int push_answer(lua_State *L, void *ctx)
{
	struct pg_wait *w = ctx;
	int base = lua_gettop(L);

	if (!w->err) {
		/* Should making the values raise (the memory budget), the job
		 * raises it, as the call would have at once on LMDB: resumed
		 * with core.PENDING and the message, which settle raises. */
		lua_pushcfunction(L, push_values);
		lua_pushlightuserdata(L, w);
		if (lua_pcall(L, 1, LUA_MULTRET, 0) == 0)
			return lua_gettop(L) - base;
		tickets_pending(L, 0);
		lua_pop(L, 1);
		lua_insert(L, -2);
		return 2;
	}
	switch (w->failure) {
	case FAIL_RAISE:
		tickets_pending(L, 0);
		lua_pop(L, 1);
		push_error(L, w->err);
		return 2;
	case FAIL_NIL_ERR:
		lua_pushnil(L);
		push_error(L, w->err);
		return 2;
	case FAIL_ERR:
		push_error(L, w->err);
		return 1;
	}
	return 0;
}

/* The seam's script_resume_with, given at registration. */
static void (*resume_with)(uintptr_t ticket, int (*push)(lua_State *L, void *ctx), void *ctx);

static void on_answer(void *arg, const PGresult *res, int err)
{
	struct pg_wait *w = arg;

	w->res = res;
	w->err = err;
	resume_with(w->ticket, push_answer, w);
	free(w);
}

/* A call's wait, answered by `push`, with `middle_len` bytes of a send's
 * record kept (NULL: none). */
static struct pg_wait *wait_new(int (*push)(lua_State *L, const PGresult *res),
				enum failure failure, const char *middle, size_t middle_len)
{
	struct pg_wait *w = xmalloc(sizeof(*w) + middle_len);

	w->ticket = tickets_new();
	w->push = push;
	w->failure = failure;
	w->res = NULL;
	w->err = 0;
	w->members_gen = members_gen;
	w->middle_len = middle_len;
	if (middle_len)
		memcpy(w->middle, middle, middle_len);
	return w;
}

/* Queues statement `stmt` for wait `w` and answers core.PENDING, ticket:
 * the job is resumed with what w->push pushes of the answer. Text
 * parameters (NUL-terminated), NULL for SQL NULL; those `binary` marks are
 * `lengths` bytes (binary NULL: all text, lengths unused). */
static int queue(lua_State *L, struct pg_wait *w, enum pg_kind kind, enum pg_stmt stmt, int n,
		 const char *const *values, const int *lengths, const int *binary)
{
	uintptr_t ticket = w->ticket;
	int lens[PARAMS_MAX];

	/* pg_call copies lengths[i] bytes of each: a text's own, a binary
	 * value's as given. */
	for (int i = 0; i < n; i++)
		lens[i] = binary && binary[i] ? lengths[i] : values[i] ? (int)strlen(values[i]) : 0;
	pg_call(kind, (int)stmt, n, values, lens, binary, on_answer, w);
	return tickets_pending(L, ticket);
}

/* queue, the answer pushed by `push`. */
static int call(lua_State *L, enum pg_kind kind, enum pg_stmt stmt, int n,
		const char *const *values, const int *lengths, const int *binary,
		int (*push)(lua_State *L, const PGresult *res), enum failure failure)
{
	return queue(L, wait_new(push, failure, NULL, 0), kind, stmt, n, values, lengths, binary);
}

/* ---- arguments ---- */

/* A text[] literal: {"a","b"}, each element quoted, " and \ escaped. */
struct array_buf {
	char *p;
	size_t len, cap;
};

static void array_put(struct array_buf *a, const char *s, size_t n)
{
	if (a->len + n + 1 > a->cap) {
		a->cap = (a->len + n + 1) * 2;
		a->p = scratch_realloc(a->p, a->cap);
	}
	memcpy(a->p + a->len, s, n);
	a->len += n;
	a->p[a->len] = '\0';
}

static void array_add(struct array_buf *a, const char *s, size_t n)
{
	array_put(a, a->len > 1 ? ",\"" : "\"", a->len > 1 ? 2 : 1);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			array_put(a, "\\", 1);
		array_put(a, s + i, 1);
	}
	array_put(a, "\"", 1);
}

/* The strings of the table at `idx` (at most `max`; those that are no
 * user id left out, or, with `strict`, refused with `what`'s error) as a
 * text[] literal in scratch memory. */
static char *array_of(lua_State *L, int idx, size_t max, int strict, const char *what)
{
	struct array_buf a = { 0 };
	size_t n = lua_objlen(L, idx);

	array_put(&a, "{", 1);
	for (size_t i = 1; i <= n && i <= max; i++) {
		size_t ulen = 0;
		lua_rawgeti(L, idx, (int)i);
		const char *u = lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER ?
				lua_tolstring(L, -1, &ulen) : NULL;
		if (u && ulen && ulen <= NAME_MAX_BYTES && !memchr(u, '\0', ulen))
			array_add(&a, u, ulen);
		else if (strict) {
			scratch_free(a.p);
			luaL_error(L, "%s %d is not a user id", what, (int)i);
		}
		lua_pop(L, 1);
	}
	array_put(&a, "}", 1);
	return a.p;
}

static const char *value(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* ---- answers ---- */

static int push_nothing(lua_State *L, const PGresult *res)
{
	(void)L;
	(void)res;
	return 0;
}

/* A write that LMDB answers with its ticket: nil (nothing to wait for). */
static int push_ticket_nil(lua_State *L, const PGresult *res)
{
	(void)res;
	lua_pushnil(L);
	return 1;
}

/* One text column, a JSON value: raw, or nil when NULL or no row. */
static int push_raw_or_nil(lua_State *L, const PGresult *res)
{
	const char *v = PQntuples(res) ? value(res, 0, 0) : NULL;

	if (!v) {
		lua_pushnil(L);
		return 1;
	}
	jsonlua_push_raw(L, v, (size_t)PQgetlength(res, 0, 0));
	return 1;
}

/* As push_raw_or_nil, but nothing at all when none (store_profile). */
static int push_raw_or_none(lua_State *L, const PGresult *res)
{
	const char *v = PQntuples(res) ? value(res, 0, 0) : NULL;

	if (!v)
		return 0;
	jsonlua_push_raw(L, v, (size_t)PQgetlength(res, 0, 0));
	return 1;
}

/* The first column of every row, as an array of strings. */
static int push_names(lua_State *L, const PGresult *res)
{
	int n = PQntuples(res);

	lua_createtable(L, n, 0);
	jsonlua_mark_array(L);
	for (int i = 0; i < n; i++) {
		lua_pushlstring(L, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0));
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

static void push_validated(lua_State *L, const PGresult *res, int row, int col)
{
	jsonlua_push_validated(L, PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col));
}

/* ---- the message store ---- */

/* A send's record as the client gets it (messages.c's, with its status):
 * of a new message (column `created` true), the wait's middle completed
 * with the id, seq and sender profile (columns `id`, `id` + 2 and `id` + 3)
 * the answer has; else the record the answer has (column `record`), the
 * earlier message's whose key the send's was. */
static void push_record(lua_State *L, const PGresult *res, int record, int created, int id)
{
	struct record_buf b = { 0 };

	if (PQgetvalue(res, 0, created)[0] != 't') {
		jsonlua_push_raw(L, PQgetvalue(res, 0, record), (size_t)PQgetlength(res, 0, record));
		return;
	}
	record_buf_str(&b, "{\"messageId\":\"");
	record_buf_str(&b, PQgetvalue(res, 0, id));
	record_buf_put(&b, answering->middle, answering->middle_len);
	record_buf_str(&b, PQgetvalue(res, 0, id + 2));
	if (value(res, 0, id + 3)) {
		record_buf_str(&b, ",\"sender\":");
		record_buf_put(&b, PQgetvalue(res, 0, id + 3), (size_t)PQgetlength(res, 0, id + 3));
	}
	record_buf_str(&b, ",\"status\":\"sent\"}");
	jsonlua_push_raw(L, b.p, b.len);
	scratch_free(b.p);
}

/* store_send's answer: rec, created, id, ts, seq, err (nil: committed). */
static int push_sent(lua_State *L, const PGresult *res)
{
	if (PQntuples(res) != 1 || PQnfields(res) != 6 || !value(res, 0, 2) ||
	    (PQgetvalue(res, 0, 1)[0] != 't' && !value(res, 0, 0))) {
		lua_pushnil(L);
		lua_pushstring(L, parley_strerror(PARLEY_ESTATEMENT));
		return 2;
	}
	push_record(L, res, 0, 1, 2);
	lua_pushboolean(L, PQgetvalue(res, 0, 1)[0] == 't');
	lua_pushstring(L, PQgetvalue(res, 0, 2));
	lua_pushstring(L, PQgetvalue(res, 0, 3));
	lua_pushnumber(L, strtod(PQgetvalue(res, 0, 4), NULL));
	lua_pushnil(L);
	return 6;
}

/* The fields of a send's table (at 1) that both sends take, checked as
 * LMDB's store_send checks them (raising alike); `content` in scratch
 * memory, the caller's to free. */
struct send_fields {
	const char *conv, *sender, *cid, *type, *reply_to;
	char *content;
	size_t content_len;
};

static void send_fields(lua_State *L, const char *what, struct send_fields *f)
{
	size_t clen, slen, cidlen, tlen, rlen, len;
	const char *err = NULL;

	luaL_checktype(L, 1, LUA_TTABLE);
	f->conv = store_arg_field(L, 1, "conversationId", &clen);
	f->sender = store_arg_field(L, 1, "senderId", &slen);
	f->cid = store_arg_field(L, 1, "clientMessageId", &cidlen);
	f->type = store_arg_field(L, 1, "type", &tlen);
	f->reply_to = store_arg_field(L, 1, "replyTo", &rlen);
	if (!f->conv || !f->sender || !f->type || clen > NAME_MAX_BYTES ||
	    slen > NAME_MAX_BYTES || cidlen > NAME_MAX_BYTES || rlen > NAME_MAX_BYTES || tlen > 32)
		luaL_error(L, "%s: conversationId, senderId and type are required", what);
	/* Text parameters end at a NUL: a name with one is no name. */
	if (memchr(f->conv, '\0', clen) || memchr(f->sender, '\0', slen) ||
	    (f->cid && memchr(f->cid, '\0', cidlen)) || memchr(f->type, '\0', tlen) ||
	    (f->reply_to && memchr(f->reply_to, '\0', rlen)))
		luaL_error(L, "%s: names cannot hold NUL", what);
	lua_pushliteral(L, "content");
	lua_rawget(L, 1);
	f->content = jsonlua_encode(L, -1, &len, &err);
	f->content_len = len;
	lua_pop(L, 1);
	if (!f->content)
		luaL_error(L, "%s: content: %s", what, err);
}

/* A send's record from after its id to its seq, messages.c's fields in its
 * order: ","conversationId":...,"timestamp":"<when>","seq": (push_record
 * completes it). */
static void send_middle(struct record_buf *b, const struct send_fields *f, const char *when)
{
	record_buf_str(b, "\",\"conversationId\":");
	record_buf_json(b, f->conv, strlen(f->conv));
	record_buf_str(b, ",\"senderId\":");
	record_buf_json(b, f->sender, strlen(f->sender));
	if (f->cid) {
		record_buf_str(b, ",\"clientMessageId\":");
		record_buf_json(b, f->cid, strlen(f->cid));
	}
	record_buf_str(b, ",\"type\":");
	record_buf_json(b, f->type, strlen(f->type));
	record_buf_str(b, ",\"content\":");
	record_buf_put(b, f->content, f->content_len);
	if (f->reply_to) {
		record_buf_str(b, ",\"replyTo\":");
		record_buf_json(b, f->reply_to, strlen(f->reply_to));
	}
	record_buf_str(b, ",\"timestamp\":\"");
	record_buf_str(b, when);
	record_buf_str(b, "\",\"seq\":");
}

/* Queues send statement `stmt` with its `n` values, the answer pushed by
 * `push`, which completes the new message's record from the middle made
 * here. */
static int call_send(lua_State *L, enum pg_stmt stmt, int n, const char *const *values,
		     const struct send_fields *f, const char *when,
		     int (*push)(lua_State *L, const PGresult *res))
{
	struct record_buf middle = { 0 };
	struct pg_wait *w;

	send_middle(&middle, f, when);
	w = wait_new(push, FAIL_NIL_ERR, middle.p, middle.len);
	scratch_free(middle.p);
	return queue(L, w, PG_WRITE, stmt, n, values, NULL, NULL);
}

static int l_send(lua_State *L)
{
	struct send_fields f;
	const char *err = NULL;
	size_t len;
	char *sender_json = NULL, *recipients = NULL, now_s[24], when[MESSAGES_TIME_LEN];
	const char *values[PARAMS_MAX];
	int64_t now = clock_wall_ms();
	int rc;

	send_fields(L, "store.send", &f);
	lua_pushliteral(L, "sender");
	lua_rawget(L, 1);
	if (!lua_isnil(L, -1)) {
		sender_json = jsonlua_encode(L, -1, &len, &err);
		if (!sender_json) {
			scratch_free(f.content);
			return luaL_error(L, "store.send: sender: %s", err);
		}
	}
	lua_pop(L, 1);
	lua_pushliteral(L, "recipients");
	lua_rawget(L, 1);
	recipients = lua_istable(L, -1) ? array_of(L, lua_gettop(L), MESSAGES_RECIPIENTS_MAX, 0,
						   NULL) : NULL;
	lua_pop(L, 1);
	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	messages_iso_time(now, when);
	values[0] = f.conv;
	values[1] = f.sender;
	values[2] = f.cid;
	values[3] = f.type;
	values[4] = f.content;
	values[5] = f.reply_to;
	values[6] = sender_json;
	values[7] = recipients ? recipients : "{}";
	values[8] = now_s;
	values[9] = when;
	rc = call_send(L, PGS_SEND, 10, values, &f, when, push_sent);
	scratch_free(f.content);
	scratch_free(sender_json);
	scratch_free(recipients);
	return rc;
}

/* store_send_as's answer: false (refused: not a member) | rec, created,
 * id, ts, seq, sender (the profile's JSON text), members (nil: open),
 * participants, stale (members set in this process since the send was
 * queued: what it answers may be older than the membership now). */
static int push_sent_as(lua_State *L, const PGresult *res)
{
	if (PQntuples(res) != 1 || PQnfields(res) != 9) {
		lua_pushnil(L);
		lua_pushstring(L, parley_strerror(PARLEY_ESTATEMENT));
		return 2;
	}
	if (PQgetvalue(res, 0, 0)[0] == 't') {
		lua_pushboolean(L, 0);
		return 1;
	}
	if (!value(res, 0, 3) || (PQgetvalue(res, 0, 2)[0] != 't' && !value(res, 0, 1))) {
		lua_pushnil(L);
		lua_pushstring(L, parley_strerror(PARLEY_ESTATEMENT));
		return 2;
	}
	push_record(L, res, 1, 2, 3);
	lua_pushboolean(L, PQgetvalue(res, 0, 2)[0] == 't');
	lua_pushstring(L, PQgetvalue(res, 0, 3));
	lua_pushstring(L, PQgetvalue(res, 0, 4));
	lua_pushnumber(L, strtod(PQgetvalue(res, 0, 5), NULL));
	if (value(res, 0, 6))
		lua_pushlstring(L, PQgetvalue(res, 0, 6), (size_t)PQgetlength(res, 0, 6));
	else
		lua_pushnil(L);
	for (int col = 7; col <= 8; col++) {
		if (value(res, 0, col))
			push_validated(L, res, 0, col);
		else
			lua_pushnil(L);
	}
	lua_pushboolean(L, answering->members_gen != members_gen);
	return 9;
}

/* A profile field given to store_send_as: its JSON text in scratch memory,
 * or NULL when absent (nil or false: the stored profile's is taken). */
static char *profile_field(lua_State *L, int t, const char *name)
{
	const char *err = NULL;
	size_t len;
	char *json = NULL;

	lua_getfield(L, t, name);
	if (lua_toboolean(L, -1))
		json = jsonlua_encode(L, -1, &len, &err);
	lua_pop(L, 1);
	if (err)
		luaL_error(L, "store.send_as: profile.%s: %s", name, err);
	return json;
}

/* The recipients of an open conversation's send (store_send_as's
 * roomUsers, at `idx`) as a text[] literal in scratch memory: at most
 * MESSAGES_RECIPIENTS_MAX, those that are no user id and the sender left
 * out. A list of up to SEND_AS_CLEAN_MAX is also made distinct here (first
 * place kept), which parley_send_as then takes as it is: its query that
 * does that is most of what a send into a small room would cost it. */
#define SEND_AS_CLEAN_MAX 64
static char *recipients_of(lua_State *L, int idx, const char *sender)
{
	struct array_buf a = { 0 };
	size_t n = lua_objlen(L, idx), count = 0;
	const char *kept[SEND_AS_CLEAN_MAX];
	int clean = n <= SEND_AS_CLEAN_MAX, top = lua_gettop(L);

	/* What is kept stays on the stack while we look (a number's text
	 * lives nowhere else). */
	luaL_checkstack(L, SEND_AS_CLEAN_MAX + 2, "store.send_as: roomUsers");
	array_put(&a, "{", 1);
	for (size_t i = 1; i <= n && i <= MESSAGES_RECIPIENTS_MAX; i++) {
		size_t ulen = 0;
		int seen = 0;
		lua_rawgeti(L, idx, (int)i);
		const char *u = lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER ?
				lua_tolstring(L, -1, &ulen) : NULL;
		if (!u || !ulen || ulen > NAME_MAX_BYTES || memchr(u, '\0', ulen) ||
		    strcmp(u, sender) == 0) {
			lua_pop(L, 1);
			continue;
		}
		for (size_t j = 0; clean && j < count && !seen; j++)
			seen = strcmp(kept[j], u) == 0;
		if (!seen)
			array_add(&a, u, ulen);
		if (clean && !seen)
			kept[count++] = u;
		else
			lua_pop(L, 1);
	}
	lua_settop(L, top);
	array_put(&a, "}", 1);
	return a.p;
}

static int l_send_as(lua_State *L)
{
	static const char *const fields[3] = { "name", "avatar", "phoneNumber" };
	struct send_fields f;
	char *profile[3] = { NULL, NULL, NULL }, *room_users = NULL;
	char now_s[24], when[MESSAGES_TIME_LEN];
	const char *values[PARAMS_MAX];
	int64_t now = clock_wall_ms();
	int rc;

	send_fields(L, "store.send_as", &f);
	lua_pushliteral(L, "profile");
	lua_rawget(L, 1);
	if (lua_istable(L, -1)) {
		/* A field that raises strands nothing: scratch memory. */
		for (int i = 0; i < 3; i++)
			profile[i] = profile_field(L, lua_gettop(L), fields[i]);
	}
	lua_pop(L, 1);
	lua_pushliteral(L, "roomUsers");
	lua_rawget(L, 1);
	room_users = lua_istable(L, -1) ? recipients_of(L, lua_gettop(L), f.sender) : NULL;
	lua_pop(L, 1);
	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	messages_iso_time(now, when);
	values[0] = f.conv;
	values[1] = f.sender;
	values[2] = f.cid;
	values[3] = f.type;
	values[4] = f.content;
	values[5] = f.reply_to;
	values[6] = profile[0];
	values[7] = profile[1];
	values[8] = profile[2];
	values[9] = room_users ? room_users : "{}";
	values[10] = now_s;
	values[11] = when;
	rc = call_send(L, PGS_SEND_AS, 12, values, &f, when, push_sent_as);
	scratch_free(f.content);
	for (int i = 0; i < 3; i++)
		scratch_free(profile[i]);
	scratch_free(room_users);
	return rc;
}

/* record, conversationId, senderId, seq, recipients | nothing */
static int push_message(lua_State *L, const PGresult *res)
{
	if (PQntuples(res) != 1)
		return 0;
	jsonlua_push_raw(L, PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
	lua_pushstring(L, PQgetvalue(res, 0, 1));
	lua_pushstring(L, PQgetvalue(res, 0, 2));
	lua_pushnumber(L, strtod(PQgetvalue(res, 0, 3), NULL));
	push_validated(L, res, 0, 4);
	return 5;
}

static int l_message(lua_State *L)
{
	size_t idlen;
	const char *id = luaL_checklstring(L, 1, &idlen);

	/* No message has another id's length (nor a NUL in it). */
	if (idlen != MESSAGES_ID_LEN || memchr(id, '\0', idlen))
		id = "";
	return call(L, PG_READ, PGS_MESSAGE, 1, &id, NULL, NULL, push_message, FAIL_RAISE);
}

static int l_sync(lua_State *L)
{
	size_t clen, vlen = 0;
	const char *conv = store_arg_name(L, 1, "conversationId", &clen);
	lua_Number after = luaL_optnumber(L, 2, 0);
	lua_Integer limit = luaL_optinteger(L, 3, 50);
	const char *viewer = luaL_optlstring(L, 4, NULL, &vlen);
	char after_s[24], limit_s[24];
	const char *values[4] = { conv, after_s, limit_s, viewer };

	snprintf(after_s, sizeof(after_s), "%lld",
		 after < 0 ? 0LL : after > 9e18 ? 9000000000000000000LL : (long long)after);
	snprintf(limit_s, sizeof(limit_s), "%ld",
		 (long)(limit < 1 ? 1 : limit > MESSAGES_SYNC_MAX ? MESSAGES_SYNC_MAX : limit));
	return call(L, PG_READ, PGS_SYNC, 4, values, NULL, NULL, push_raw_or_nil, FAIL_RAISE);
}

static int l_sync_before(lua_State *L)
{
	size_t clen, vlen = 0;
	const char *conv = store_arg_name(L, 1, "conversationId", &clen);
	int newest = lua_isnoneornil(L, 2);
	lua_Number n = newest ? 0 : luaL_checknumber(L, 2);
	lua_Integer limit = luaL_optinteger(L, 3, 50);
	const char *viewer = luaL_optlstring(L, 4, NULL, &vlen);
	char before_s[24], limit_s[24];
	const char *values[4] = { conv, before_s, limit_s, viewer };

	/* nil (or past every seq): the newest; below 1: nothing before it. */
	if (newest || n >= 9e18)
		values[1] = NULL;
	else
		snprintf(before_s, sizeof(before_s), "%lld", n < 1 ? 0LL : (long long)n);
	snprintf(limit_s, sizeof(limit_s), "%ld",
		 (long)(limit < 1 ? 1 : limit > MESSAGES_SYNC_MAX ? MESSAGES_SYNC_MAX : limit));
	return call(L, PG_READ, PGS_SYNC_BEFORE, 4, values, NULL, NULL, push_raw_or_nil,
		    FAIL_RAISE);
}

/* set_status's answer: changes (the list) | nil, why, the id refused */
static int push_changes_list(lua_State *L, const PGresult *res)
{
	if (PQntuples(res) != 1)
		return 0;
	if (value(res, 0, 0)) {
		lua_pushnil(L);
		lua_pushstring(L, PQgetvalue(res, 0, 0));
		lua_pushstring(L, PQgetvalue(res, 0, 1));
		return 3;
	}
	push_validated(L, res, 0, 2);
	lua_pushnil(L); /* the ticket: committed already */
	return 2;
}

/* The same for one id: its change alone. */
static int push_change_one(lua_State *L, const PGresult *res)
{
	int n = push_changes_list(L, res);

	if (n != 2)
		return n;
	lua_pop(L, 1);
	lua_rawgeti(L, -1, 1);
	lua_remove(L, -2);
	lua_pushnil(L);
	return 2;
}

static int l_set_status(lua_State *L)
{
	size_t ulen, clen = 0;
	int list = lua_istable(L, 1), level, rc;
	const char *user, *conv = NULL;
	struct array_buf ids = { 0 };
	char level_s[4], now_s[24], when[MESSAGES_TIME_LEN];
	int64_t now = clock_wall_ms();
	const char *values[7];

	if (!list)
		luaL_checkstring(L, 1);
	user = store_arg_name(L, 2, "userId", &ulen);
	level = store_arg_level(L, 3);
	if (!lua_isnoneornil(L, 5))
		conv = store_arg_name(L, 5, "conversationId", &clen);
	if (list && lua_objlen(L, 1) > MESSAGES_STATUS_LIST_MAX)
		return luaL_error(L, "store.set_status: more than %d message ids",
				  MESSAGES_STATUS_LIST_MAX);
	array_put(&ids, "{", 1);
	for (size_t i = 0, n = list ? lua_objlen(L, 1) : 1; i < n; i++) {
		size_t idlen;
		const char *id;
		if (list) {
			lua_rawgeti(L, 1, (int)i + 1);
			if (lua_type(L, -1) != LUA_TSTRING) {
				scratch_free(ids.p);
				return luaL_error(L, "store.set_status: messageIds[%d] is not a string",
						  (int)i + 1);
			}
		} else {
			lua_pushvalue(L, 1);
		}
		id = lua_tolstring(L, -1, &idlen);
		/* An id with a NUL names no message: the store says so. */
		array_add(&ids, id, memchr(id, '\0', idlen) ? strlen(id) + 1 : idlen);
		lua_pop(L, 1);
	}
	array_put(&ids, "}", 1);
	snprintf(level_s, sizeof(level_s), "%d", level);
	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	messages_iso_time(now, when);
	values[0] = ids.p;
	values[1] = user;
	values[2] = level_s;
	values[3] = lua_toboolean(L, 4) ? "true" : "false";
	values[4] = conv;
	values[5] = now_s;
	values[6] = when;
	rc = call(L, PG_WRITE, PGS_SET_STATUS, 7, values, NULL, NULL,
		  list ? push_changes_list : push_change_one, FAIL_RAISE);
	scratch_free(ids.p);
	return rc;
}

/* read_upto's answer: { changes }, count, ticket (nil) */
static int push_read(lua_State *L, const PGresult *res)
{
	if (PQntuples(res) != 1)
		return 0;
	push_validated(L, res, 0, 0);
	lua_pushinteger(L, atoi(PQgetvalue(res, 0, 1)));
	lua_pushnil(L);
	return 3;
}

static int l_read_upto(lua_State *L)
{
	size_t clen, ulen;
	const char *conv = store_arg_name(L, 1, "conversationId", &clen);
	const char *user = store_arg_name(L, 2, "userId", &ulen);
	char upto_s[24], now_s[24], when[MESSAGES_TIME_LEN];
	int64_t now = clock_wall_ms();
	const char *values[6] = { conv, user, upto_s, lua_toboolean(L, 4) ? "true" : "false",
				  now_s, when };

	if (lua_isnoneornil(L, 3)) {
		values[2] = NULL;
	} else {
		lua_Number upto = luaL_checknumber(L, 3);
		if (upto >= 9e18)
			values[2] = NULL;
		else
			snprintf(upto_s, sizeof(upto_s), "%lld", upto < 0 ? 0LL : (long long)upto);
	}
	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	messages_iso_time(now, when);
	return call(L, PG_WRITE, PGS_READ_UPTO, 6, values, NULL, NULL, push_read, FAIL_RAISE);
}

static int l_members(lua_State *L)
{
	size_t clen;
	const char *conv = store_arg_name(L, 1, "conversationId", &clen);

	return call(L, PG_READ, PGS_MEMBERS, 1, &conv, NULL, NULL, push_names, FAIL_RAISE);
}

static int l_conversations_of(lua_State *L)
{
	size_t ulen;
	const char *user = store_arg_name(L, 1, "userId", &ulen);

	return call(L, PG_READ, PGS_CONVERSATIONS_OF, 1, &user, NULL, NULL, push_names,
		    FAIL_RAISE);
}

static int l_participants(lua_State *L)
{
	size_t clen;
	const char *conv = store_arg_name(L, 1, "conversationId", &clen);

	return call(L, PG_READ, PGS_PARTICIPANTS, 1, &conv, NULL, NULL, push_names, FAIL_RAISE);
}

static int push_is_member(lua_State *L, const PGresult *res)
{
	int rows = PQntuples(res) == 1;

	lua_pushboolean(L, rows && PQgetvalue(res, 0, 0)[0] == 't');
	lua_pushboolean(L, rows && PQgetvalue(res, 0, 1)[0] == 't');
	return 2;
}

static int l_is_member(lua_State *L)
{
	size_t clen, ulen;
	const char *values[2];

	values[0] = store_arg_name(L, 1, "conversationId", &clen);
	values[1] = store_arg_name(L, 2, "userId", &ulen);
	return call(L, PG_READ, PGS_IS_MEMBER, 2, values, NULL, NULL, push_is_member, FAIL_RAISE);
}

static int l_set_members(lua_State *L)
{
	size_t clen;
	const char *conv = store_arg_name(L, 1, "conversationId", &clen);
	char now_s[24], *members;
	const char *values[3];
	int rc;

	luaL_checktype(L, 2, LUA_TTABLE);
	members = array_of(L, 2, MESSAGES_RECIPIENTS_MAX, 1, "store.set_members: member");
	snprintf(now_s, sizeof(now_s), "%lld", (long long)clock_wall_ms());
	values[0] = conv;
	values[1] = members;
	values[2] = now_s;
	members_gen++;
	rc = call(L, PG_WRITE, PGS_SET_MEMBERS, 3, values, NULL, NULL, push_ticket_nil,
		  FAIL_RAISE);
	scratch_free(members);
	return rc;
}

static int l_inbox(lua_State *L)
{
	size_t ulen, blen = 0;
	const char *user = store_arg_name(L, 1, "userId", &ulen);
	const char *before = lua_isnoneornil(L, 2) ? NULL :
			     store_arg_name(L, 2, "conversationId", &blen);
	lua_Integer limit = luaL_optinteger(L, 3, 20);
	char limit_s[24];
	const char *values[3] = { user, before, limit_s };

	snprintf(limit_s, sizeof(limit_s), "%ld",
		 (long)(limit < 1 ? 1 : limit > MESSAGES_INBOX_MAX ? MESSAGES_INBOX_MAX : limit));
	return call(L, PG_READ, PGS_INBOX, 3, values, NULL, NULL, push_raw_or_nil, FAIL_RAISE);
}

static int l_inbox_item(lua_State *L)
{
	size_t ulen, clen;
	const char *values[2];

	values[0] = store_arg_name(L, 1, "userId", &ulen);
	values[1] = store_arg_name(L, 2, "conversationId", &clen);
	return call(L, PG_READ, PGS_INBOX_ITEM, 2, values, NULL, NULL, push_raw_or_nil,
		    FAIL_RAISE);
}

/* { { item = raw JSON, users = { ... } }, ... }: rows (item, user) with
 * the same items next to each other. */
static int push_updates(lua_State *L, const PGresult *res)
{
	int n = PQntuples(res), groups = 0, k = 0;

	lua_newtable(L);
	for (int i = 0; i < n; i++) {
		if (i == 0 || strcmp(PQgetvalue(res, i, 0), PQgetvalue(res, i - 1, 0)) != 0) {
			if (i > 0)
				lua_rawseti(L, -2, ++groups);
			lua_createtable(L, 0, 2);
			jsonlua_push_raw(L, PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0));
			lua_setfield(L, -2, "item");
			lua_newtable(L);
			lua_setfield(L, -2, "users");
			k = 0;
		}
		lua_getfield(L, -1, "users");
		lua_pushstring(L, PQgetvalue(res, i, 1));
		lua_rawseti(L, -2, ++k);
		lua_pop(L, 1);
	}
	if (n > 0)
		lua_rawseti(L, -2, ++groups);
	return 1;
}

static int l_inbox_updates(lua_State *L)
{
	size_t clen;
	const char *conv = store_arg_name(L, 1, "conversationId", &clen);
	const char *values[2];
	char *users;
	int rc;

	luaL_checktype(L, 2, LUA_TTABLE);
	users = array_of(L, 2, MESSAGES_RECIPIENTS_MAX, 0, NULL);
	values[0] = conv;
	values[1] = users;
	rc = call(L, PG_READ, PGS_INBOX_UPDATES, 2, values, NULL, NULL, push_updates, FAIL_RAISE);
	scratch_free(users);
	return rc;
}

static int l_profile(lua_State *L)
{
	size_t ulen;
	const char *user = store_arg_name(L, 1, "userId", &ulen);

	return call(L, PG_READ, PGS_PROFILE, 1, &user, NULL, NULL, push_raw_or_none, FAIL_RAISE);
}

static int l_set_profile(lua_State *L)
{
	size_t ulen, len;
	const char *user = store_arg_name(L, 1, "userId", &ulen);
	const char *err = NULL, *values[2];
	char *json;
	int rc;

	luaL_checktype(L, 2, LUA_TTABLE);
	json = jsonlua_encode(L, 2, &len, &err);
	if (!json)
		return luaL_error(L, "store.set_profile: %s", err);
	values[0] = user;
	values[1] = json;
	rc = call(L, PG_WRITE, PGS_SET_PROFILE, 2, values, NULL, NULL, push_ticket_nil,
		  FAIL_RAISE);
	scratch_free(json);
	return rc;
}

static int push_last_seen(lua_State *L, const PGresult *res)
{
	if (PQntuples(res) != 1)
		return 0;
	lua_pushnumber(L, strtod(PQgetvalue(res, 0, 0), NULL));
	return 1;
}

static int l_last_seen(lua_State *L)
{
	size_t ulen;
	const char *user = store_arg_name(L, 1, "userId", &ulen);

	return call(L, PG_READ, PGS_LAST_SEEN, 1, &user, NULL, NULL, push_last_seen, FAIL_RAISE);
}

/* A write nobody waits for (last seen, the kv sweep): its failure is
 * pg.c's to log. */
static void on_ignored(void *arg, const PGresult *res, int err)
{
	(void)arg;
	(void)res;
	(void)err;
}

static int l_set_last_seen(lua_State *L)
{
	size_t ulen;
	const char *user = store_arg_name(L, 1, "userId", &ulen);
	lua_Number ms = luaL_checknumber(L, 2);
	char ms_s[24];
	const char *values[2] = { user, ms_s };

	snprintf(ms_s, sizeof(ms_s), "%lld", ms > 0 && ms < 9e18 ? (long long)ms : 0LL);
	/* Queued and not waited for, as LMDB's: the shutdown hooks write last
	 * seen, and cannot wait (pg_close commits what is queued). */
	pg_call(PG_WRITE, PGS_SET_LAST_SEEN, 2, values, NULL, NULL, on_ignored, NULL);
	return 0;
}

static int l_annotate(lua_State *L)
{
	size_t idlen, nlen, len = 0;
	const char *id = luaL_checklstring(L, 1, &idlen);
	const char *name = luaL_checklstring(L, 2, &nlen);
	const char *err = NULL, *values[3];
	char *json = NULL, name_s[33];
	int rc;

	if (idlen != MESSAGES_ID_LEN || memchr(id, '\0', idlen))
		return luaL_error(L, "store.annotate: not a message id");
	switch (messages_annotation_name(name, nlen)) {
	case PARLEY_EBADNAME:
		return luaL_error(L, "store.annotate: '%s' cannot be an annotation's name", name);
	case -EINVAL:
		return luaL_error(L, "store.annotate: names are letters, digits and _");
	}
	if (!lua_isnoneornil(L, 3)) {
		json = jsonlua_encode(L, 3, &len, &err);
		if (!json)
			return luaL_error(L, "store.annotate: %s", err);
	}
	memcpy(name_s, name, nlen);
	name_s[nlen] = '\0';
	values[0] = id;
	values[1] = name_s;
	values[2] = json;
	rc = call(L, PG_WRITE, PGS_ANNOTATE, 3, values, NULL, NULL, push_ticket_nil, FAIL_RAISE);
	scratch_free(json);
	return rc;
}

/* edit's answer: editedAt, ticket (nil) | nil, "not found" */
static int push_edited(lua_State *L, const PGresult *res)
{
	const char *when = PQntuples(res) == 1 ? value(res, 0, 0) : NULL;

	if (!when) {
		lua_pushnil(L);
		lua_pushliteral(L, "not found");
		return 2;
	}
	lua_pushstring(L, when);
	lua_pushnil(L);
	return 2;
}

static int l_edit(lua_State *L)
{
	size_t idlen, clen = 0;
	const char *id = luaL_checklstring(L, 1, &idlen);
	char *content = NULL, when[MESSAGES_TIME_LEN];
	const char *err = NULL, *values[3];
	int rc;

	if (idlen != MESSAGES_ID_LEN || memchr(id, '\0', idlen)) {
		lua_pushnil(L);
		lua_pushliteral(L, "not found");
		return 2;
	}
	if (!lua_isnoneornil(L, 2)) {
		content = jsonlua_encode(L, 2, &clen, &err);
		if (!content)
			return luaL_error(L, "store.edit: content: %s", err);
	}
	messages_iso_time(clock_wall_ms(), when);
	values[0] = id;
	values[1] = content;
	values[2] = when;
	rc = call(L, PG_WRITE, PGS_EDIT, 3, values, NULL, NULL, push_edited, FAIL_RAISE);
	scratch_free(content);
	return rc;
}

static int l_hide(lua_State *L)
{
	size_t idlen, ulen;
	const char *id = luaL_checklstring(L, 1, &idlen);
	const char *values[2];

	if (idlen != MESSAGES_ID_LEN || memchr(id, '\0', idlen))
		return luaL_error(L, "store.hide: not a message id");
	values[0] = id;
	values[1] = store_arg_name(L, 2, "userId", &ulen);
	return call(L, PG_WRITE, PGS_HIDE, 2, values, NULL, NULL, push_ticket_nil, FAIL_RAISE);
}

/* store_wait() -> PENDING, ticket: resumed with nothing once every write
 * queued before is committed, or with the error. */
static int l_store_wait(lua_State *L)
{
	return call(L, PG_WRITE, PGS_WAIT, 0, NULL, NULL, NULL, push_nothing, FAIL_ERR);
}

/* ---- kv (kv.c's, on the kv table) ---- */

/* A bytea column's bytes, in scratch memory (a push that raises after it
 * must strand nothing), or NULL. */
static char *bytes_of(const PGresult *res, int row, int col, size_t *len)
{
	unsigned char *v = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, col), len);
	char *copy;

	if (!v)
		return NULL;
	copy = scratch_alloc(*len ? *len : 1);
	memcpy(copy, v, *len);
	PQfreemem(v);
	return copy;
}

/* kv_get's answer: value json, expiry ms | nothing */
static int push_kv_value(lua_State *L, const PGresult *res)
{
	size_t len;
	char *v;

	if (PQntuples(res) != 1 || !(v = bytes_of(res, 0, 0, &len)))
		return 0;
	lua_pushlstring(L, v, len);
	scratch_free(v);
	lua_pushnumber(L, strtod(PQgetvalue(res, 0, 1), NULL));
	return 2;
}

static int l_kv_get(lua_State *L)
{
	size_t nlen, klen;
	const char *key, *ns = store_kv_args(L, &nlen, &key, &klen);
	char now_s[24];
	const char *values[3] = { ns, key, now_s };
	int lengths[3] = { 0, (int)klen, 0 }, binary[3] = { 0, 1, 0 };

	if (!ns)
		return 2;
	snprintf(now_s, sizeof(now_s), "%lld", (long long)clock_wall_ms());
	return call(L, PG_READ, PGS_KV_GET, 3, values, lengths, binary, push_kv_value,
		    FAIL_NIL_ERR);
}

static int push_true(lua_State *L, const PGresult *res)
{
	(void)res;
	lua_pushboolean(L, 1);
	return 1;
}

static int l_kv_set(lua_State *L)
{
	size_t nlen, klen, vlen;
	const char *key, *ns = store_kv_args(L, &nlen, &key, &klen);
	const char *v;
	lua_Number expiry;
	char expiry_s[24];

	if (!ns)
		return 2;
	v = luaL_checklstring(L, 3, &vlen);
	expiry = luaL_optnumber(L, 4, 0);
	if (vlen > KV_VALUE_MAX) {
		lua_pushnil(L);
		lua_pushliteral(L, "values are at most 1 MiB");
		return 2;
	}
	snprintf(expiry_s, sizeof(expiry_s), "%lld",
		 expiry > 0 && expiry < 9e18 ? (long long)expiry : 0LL);
	const char *values[4] = { ns, key, v, expiry_s };
	int lengths[4] = { 0, (int)klen, (int)vlen, 0 }, binary[4] = { 0, 1, 1, 0 };
	return call(L, PG_WRITE, PGS_KV_SET, 4, values, lengths, binary, push_true, FAIL_NIL_ERR);
}

static int l_kv_delete(lua_State *L)
{
	size_t nlen, klen;
	const char *key, *ns = store_kv_args(L, &nlen, &key, &klen);
	const char *values[2] = { ns, key };
	int lengths[2] = { 0, (int)klen }, binary[2] = { 0, 1 };

	if (!ns)
		return 2;
	return call(L, PG_WRITE, PGS_KV_DELETE, 2, values, lengths, binary, push_true,
		    FAIL_NIL_ERR);
}

static int push_kv_keys(lua_State *L, const PGresult *res)
{
	int n = PQntuples(res), count = 0;

	lua_createtable(L, n, 0);
	jsonlua_mark_array(L);
	for (int i = 0; i < n; i++) {
		size_t len;
		char *k = bytes_of(res, i, 0, &len);
		if (!k)
			continue;
		lua_pushlstring(L, k, len);
		scratch_free(k);
		lua_rawseti(L, -2, ++count);
	}
	return 1;
}

static int l_kv_keys(lua_State *L)
{
	size_t nlen, plen;
	const char *ns = luaL_checklstring(L, 1, &nlen);
	const char *prefix = luaL_optlstring(L, 2, "", &plen);
	lua_Integer limit = luaL_optinteger(L, 3, 1000);
	char now_s[24], limit_s[24];
	const char *values[4] = { ns, prefix, now_s, limit_s };
	int lengths[4] = { 0, (int)plen, 0, 0 }, binary[4] = { 0, 1, 0, 0 };

	if (nlen > KV_NS_MAX || plen > KV_KEY_MAX || memchr(ns, '\0', nlen))
		return luaL_error(L, "kv: prefix too long");
	snprintf(now_s, sizeof(now_s), "%lld", (long long)clock_wall_ms());
	snprintf(limit_s, sizeof(limit_s), "%ld", (long)(limit < 1 ? 1 : limit));
	return call(L, PG_READ, PGS_KV_KEYS, 4, values, lengths, binary, push_kv_keys,
		    FAIL_RAISE);
}

/* kv_incr's answer: the new value's JSON | nil, why */
static int push_incr(lua_State *L, const PGresult *res)
{
	const char *v = PQntuples(res) == 1 ? value(res, 0, 0) : NULL;

	if (!v) {
		lua_pushnil(L);
		lua_pushliteral(L, "parley.kv.incr: the value is not a number");
		return 2;
	}
	lua_pushstring(L, v);
	return 1;
}

/* kv_incr(ns, key, delta, expiry ms | nil) -> the new value's JSON | nil,
 * err: kv.incr in one statement (PostgreSQL only: on LMDB api.lua reads
 * and writes, which nothing can come between there). */
static int l_kv_incr(lua_State *L)
{
	size_t nlen, klen;
	const char *key, *ns = store_kv_args(L, &nlen, &key, &klen);
	lua_Number delta, expiry;
	char delta_s[32], expiry_s[24], now_s[24];

	if (!ns)
		return 2;
	delta = luaL_checknumber(L, 3);
	expiry = luaL_optnumber(L, 4, -1);
	snprintf(delta_s, sizeof(delta_s), "%.17g", delta);
	snprintf(expiry_s, sizeof(expiry_s), "%lld",
		 expiry > 0 && expiry < 9e18 ? (long long)expiry : 0LL);
	snprintf(now_s, sizeof(now_s), "%lld", (long long)clock_wall_ms());
	const char *values[5] = { ns, key, delta_s, expiry < 0 ? NULL : expiry_s, now_s };
	int lengths[5] = { 0, (int)klen, 0, 0, 0 }, binary[5] = { 0, 1, 0, 0, 0 };
	return call(L, PG_WRITE, PGS_KV_INCR, 5, values, lengths, binary, push_incr,
		    FAIL_NIL_ERR);
}

/* kv_cas's answer: whether it wrote (a row came back). */
static int push_cas(lua_State *L, const PGresult *res)
{
	lua_pushboolean(L, PQntuples(res) > 0);
	return 1;
}

/* kv_cas(ns, key, expected json | nil, new json | nil, expiry ms or 0) ->
 * true (written) | false (the live value was not `expected`) | nil, err:
 * kv.cas in one statement (PostgreSQL only: on LMDB api.lua reads and
 * writes, which nothing can come between there). Both nil is api.lua's
 * (a read); values compare as bytes, the JSON both sides encoded. */
static int l_kv_cas(lua_State *L)
{
	size_t nlen, klen, elen = 0, vlen = 0;
	const char *key, *ns = store_kv_args(L, &nlen, &key, &klen);
	const char *expected, *v;
	lua_Number expiry;
	char expiry_s[24], now_s[24];

	if (!ns)
		return 2;
	expected = luaL_optlstring(L, 3, NULL, &elen);
	v = luaL_optlstring(L, 4, NULL, &vlen);
	expiry = luaL_optnumber(L, 5, 0);
	if (!expected && !v)
		return luaL_error(L, "kv_cas: an expected or a new value is required");
	if (vlen > KV_VALUE_MAX || elen > KV_VALUE_MAX) {
		lua_pushnil(L);
		lua_pushliteral(L, "values are at most 1 MiB");
		return 2;
	}
	snprintf(expiry_s, sizeof(expiry_s), "%lld",
		 expiry > 0 && expiry < 9e18 ? (long long)expiry : 0LL);
	snprintf(now_s, sizeof(now_s), "%lld", (long long)clock_wall_ms());
	if (!expected) {
		const char *values[5] = { ns, key, v, expiry_s, now_s };
		int lengths[5] = { 0, (int)klen, (int)vlen, 0, 0 }, binary[5] = { 0, 1, 1, 0, 0 };
		return call(L, PG_WRITE, PGS_KV_CAS_ADD, 5, values, lengths, binary, push_cas,
			    FAIL_NIL_ERR);
	}
	if (!v) {
		const char *values[4] = { ns, key, expected, now_s };
		int lengths[4] = { 0, (int)klen, (int)elen, 0 }, binary[4] = { 0, 1, 1, 0 };
		return call(L, PG_WRITE, PGS_KV_CAS_DELETE, 4, values, lengths, binary, push_cas,
			    FAIL_NIL_ERR);
	}
	const char *values[6] = { ns, key, expected, v, expiry_s, now_s };
	int lengths[6] = { 0, (int)klen, (int)elen, (int)vlen, 0, 0 };
	int binary[6] = { 0, 1, 1, 1, 0, 0 };
	return call(L, PG_WRITE, PGS_KV_CAS_SET, 6, values, lengths, binary, push_cas,
		    FAIL_NIL_ERR);
}

/* Expired entries go a slice at a time, as kv.c's sweep. */
static ev_timer sweep_timer;

static void on_sweep(struct ev_loop *loop, ev_timer *t, int revents)
{
	char now_s[24];
	const char *values[1] = { now_s };

	(void)loop;
	(void)revents;
	snprintf(now_s, sizeof(now_s), "%lld", (long long)clock_wall_ms());
	pg_call(PG_WRITE, PGS_KV_SWEEP, 1, values, NULL, NULL, on_ignored, NULL);
	timer_start(t, on_sweep, KV_SWEEP_MS);
}

void store_api_pg_register(lua_State *L,
			   void (*resume)(uintptr_t ticket, int (*push)(lua_State *L, void *ctx),
					  void *ctx))
{
	static const luaL_Reg functions[] = {
		{ "store_send", l_send },
		{ "store_send_as", l_send_as },
		{ "store_message", l_message },
		{ "store_sync", l_sync },
		{ "store_sync_before", l_sync_before },
		{ "store_set_status", l_set_status },
		{ "store_read_upto", l_read_upto },
		{ "store_members", l_members },
		{ "store_set_members", l_set_members },
		{ "store_is_member", l_is_member },
		{ "store_conversations_of", l_conversations_of },
		{ "store_inbox", l_inbox },
		{ "store_inbox_item", l_inbox_item },
		{ "store_participants", l_participants },
		{ "store_inbox_updates", l_inbox_updates },
		{ "store_profile", l_profile },
		{ "store_set_profile", l_set_profile },
		{ "store_last_seen", l_last_seen },
		{ "store_set_last_seen", l_set_last_seen },
		{ "store_annotate", l_annotate },
		{ "store_edit", l_edit },
		{ "store_hide", l_hide },
		{ "store_wait", l_store_wait },
		{ "kv_get", l_kv_get },
		{ "kv_set", l_kv_set },
		{ "kv_delete", l_kv_delete },
		{ "kv_keys", l_kv_keys },
		{ "kv_incr", l_kv_incr },
		{ "kv_cas", l_kv_cas },
		{ NULL, NULL },
	};

	resume_with = resume;
	luaL_register(L, NULL, functions);
}

void store_api_pg_start(void)
{
	timer_start(&sweep_timer, on_sweep, KV_SWEEP_MS);
}

void store_api_pg_fini(void)
{
	timer_stop(&sweep_timer);
}
