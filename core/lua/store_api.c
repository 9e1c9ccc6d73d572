/* store_api.c - the message store's host functions (core.store_*, which
 * parley.store builds on): each reads its Lua arguments, calls the C API of
 * store/messages.h and pushes what it answers. A write's ticket comes from
 * lua/tickets.c: the store is given tickets_done as the batch's completion.
 * Answers are scratch memory (base/scratch.h), and each function submits
 * its batch (the C API does, before it returns) before it pushes: a push may
 * raise (the memory budget refusing it), and must strand neither. */
#include "lua/host.h"

#include <errno.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/scratch.h"
#include "lua/jsonlua.h"
#include "lua/tickets.h"
#include "store/messages.h"

#define NAME_MAX_BYTES MESSAGES_NAME_MAX

/* A new ticket, for the batch the next call submits. */
static void *ticket_new(lua_Number *pushed)
{
	uintptr_t ticket = tickets_new();

	*pushed = (lua_Number)ticket;
	return (void *)ticket;
}

/* Pushes the NUL-terminated names back to back in `names` as an array. */
static void push_names(lua_State *L, const char *names, size_t len)
{
	int n = 0;

	lua_newtable(L);
	jsonlua_mark_array(L);
	for (const char *p = names; p && p < names + len; p += strlen(p) + 1) {
		lua_pushstring(L, p);
		lua_rawseti(L, -2, ++n);
	}
}

/* store_send({conversationId, senderId, clientMessageId?, type, content,
 *             replyTo?, sender?, recipients}) ->
 *   record (raw JSON), created, messageId, timestamp, seq, ticket|nil
 * A clientMessageId seen before from the same sender gives back that
 * message (created false) and creates nothing. */
static int l_send(lua_State *L)
{
	struct msg_new m;
	struct msg_sent sent;
	const char *err = NULL;
	char *content_json, *sender_json = NULL, *recipients = NULL;
	size_t rlen = 0, rcap = 0;
	lua_Number ticket;
	void *arg;

	memset(&m, 0, sizeof(m));
	luaL_checktype(L, 1, LUA_TTABLE);
	m.conv = store_arg_field(L, 1, "conversationId", &m.conv_len);
	m.sender = store_arg_field(L, 1, "senderId", &m.sender_len);
	m.client_id = store_arg_field(L, 1, "clientMessageId", &m.client_id_len);
	m.type = store_arg_field(L, 1, "type", &m.type_len);
	m.reply_to = store_arg_field(L, 1, "replyTo", &m.reply_to_len);
	if (!m.conv || !m.sender || !m.type || m.conv_len > NAME_MAX_BYTES ||
	    m.sender_len > NAME_MAX_BYTES || m.client_id_len > NAME_MAX_BYTES ||
	    m.reply_to_len > NAME_MAX_BYTES || m.type_len > 32)
		return luaL_error(L, "store.send: conversationId, senderId and type are required");

	/* An idempotent retry: the first result again. */
	if (m.client_id && m.client_id_len) {
		arg = ticket_new(&ticket);
		if (messages_send_again(m.sender, m.sender_len, m.client_id, m.client_id_len,
					tickets_done, arg, &sent)) {
			jsonlua_push_raw(L, sent.record, sent.record_len);
			scratch_free(sent.record);
			lua_pushboolean(L, 0);
			lua_pushlstring(L, sent.id, MESSAGES_ID_LEN);
			lua_pushstring(L, sent.timestamp);
			lua_pushnumber(L, (lua_Number)sent.seq);
			lua_pushnumber(L, ticket);
			return 6;
		}
	}

	lua_pushliteral(L, "content");
	lua_rawget(L, 1);
	content_json = jsonlua_encode(L, -1, &m.content_len, &err);
	lua_pop(L, 1);
	if (!content_json)
		return luaL_error(L, "store.send: content: %s", err);
	m.content = content_json;
	lua_pushliteral(L, "sender");
	lua_rawget(L, 1);
	if (!lua_isnil(L, -1)) {
		sender_json = jsonlua_encode(L, -1, &m.sender_json_len, &err);
		if (!sender_json) {
			scratch_free(content_json);
			return luaL_error(L, "store.send: sender: %s", err);
		}
		m.sender_json = sender_json;
	}
	lua_pop(L, 1);
	/* The recipients, NUL-terminated, back to back (copied: a number
	 * converted to a string here is referenced by nothing once popped). */
	lua_pushliteral(L, "recipients");
	lua_rawget(L, 1);
	if (lua_istable(L, -1)) {
		size_t n = lua_objlen(L, -1);
		for (size_t i = 1; i <= n && i <= MESSAGES_RECIPIENTS_MAX; i++) {
			size_t ulen;
			lua_rawgeti(L, -1, (int)i);
			const char *u = lua_tolstring(L, -1, &ulen);
			if (u && ulen && ulen <= NAME_MAX_BYTES && !memchr(u, '\0', ulen)) {
				if (rlen + ulen + 1 > rcap) {
					rcap = (rlen + ulen + 1) * 2;
					recipients = scratch_realloc(recipients, rcap);
				}
				memcpy(recipients + rlen, u, ulen + 1);
				rlen += ulen + 1;
			}
			lua_pop(L, 1);
		}
	}
	lua_pop(L, 1);
	m.recipients = recipients;
	m.recipients_len = rlen;

	/* Stored whatever happens next: should a push below raise, a retry
	 * with the same clientMessageId finds the message. */
	arg = ticket_new(&ticket);
	messages_send(&m, tickets_done, arg, &sent);
	scratch_free(content_json);
	scratch_free(sender_json);
	scratch_free(recipients);
	jsonlua_push_raw(L, sent.record, sent.record_len);
	scratch_free(sent.record);
	lua_pushboolean(L, 1);
	lua_pushstring(L, sent.id);
	lua_pushstring(L, sent.timestamp);
	lua_pushnumber(L, (lua_Number)sent.seq);
	lua_pushnumber(L, ticket);
	return 6;
}

/* store_message(id) -> record (raw JSON), conversationId, senderId, seq,
 *                      recipients | nil */
static int l_message(lua_State *L)
{
	size_t idlen;
	const char *id = luaL_checklstring(L, 1, &idlen);
	struct msg_view v;

	if (!messages_get(id, idlen, &v))
		return 0;
	jsonlua_push_raw(L, v.record, v.record_len);
	scratch_free(v.record);
	lua_pushlstring(L, v.conv, v.conv_len);
	lua_pushlstring(L, v.sender, v.sender_len);
	lua_pushnumber(L, (lua_Number)v.seq);
	push_names(L, v.recipients, v.recipients_len);
	scratch_free(v.recipients);
	return 5;
}

/* store_sync(conversationId, after seq, limit[, viewer]) -> raw JSON
 *   {"messages":[record + annotations + status + statuses...], "hasMore": bool}
 * Messages are durable ones, oldest first; those the viewer deleted for
 * themselves are left out. */
static int l_sync(lua_State *L)
{
	size_t clen, vlen = 0, len;
	const char *conv = store_arg_name(L, 1, "conversationId", &clen);
	uint64_t after = (uint64_t)luaL_optnumber(L, 2, 0);
	lua_Integer limit = luaL_optinteger(L, 3, 50);
	const char *viewer = luaL_optlstring(L, 4, NULL, &vlen);
	char *json = messages_sync(conv, clen, after, (long)limit, viewer, vlen, &len);

	jsonlua_push_raw(L, json, len);
	scratch_free(json);
	return 1;
}

/* store_sync_before(conversationId, before seq | nil, limit[, viewer]) ->
 *   raw JSON as store_sync's: the `limit` durable messages just before
 *   `before` (nil: the newest), oldest first; "hasMore": older ones exist. */
static int l_sync_before(lua_State *L)
{
	size_t clen, vlen = 0, len;
	const char *conv = store_arg_name(L, 1, "conversationId", &clen);
	int newest = lua_isnoneornil(L, 2);
	lua_Number n = newest ? 0 : luaL_checknumber(L, 2);
	/* nil is before nothing: the newest. A seq below 1 has nothing before
	 * it; one past every seq, everything (and no cast overflows). */
	uint64_t before = newest || n >= 1.8e19 ? UINT64_MAX : n < 1 ? 0 : (uint64_t)n;
	lua_Integer limit = luaL_optinteger(L, 3, 50);
	const char *viewer = luaL_optlstring(L, 4, NULL, &vlen);
	char *json = messages_sync_before(conv, clen, before, (long)limit, viewer, vlen, &len);

	jsonlua_push_raw(L, json, len);
	scratch_free(json);
	return 1;
}

static void push_change(lua_State *L, const struct msg_change *ch)
{
	char when[MESSAGES_TIME_LEN];

	messages_iso_time(ch->at, when);
	lua_createtable(L, 0, 6);
	lua_pushstring(L, ch->id);
	lua_setfield(L, -2, "messageId");
	lua_pushstring(L, ch->conv);
	lua_setfield(L, -2, "conversationId");
	lua_pushstring(L, ch->sender);
	lua_setfield(L, -2, "senderId");
	lua_pushstring(L, messages_status_name(ch->aggregate));
	lua_setfield(L, -2, "status");
	lua_pushboolean(L, ch->aggregate != ch->aggregate_before);
	lua_setfield(L, -2, "changed");
	lua_pushstring(L, when);
	lua_setfield(L, -2, "updatedAt");
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
	size_t ulen, n = 1, clen = 0, refused = 0;
	int level, open, list = lua_istable(L, 1), rc;
	const char *conv = NULL;
	const char **ids;
	size_t *idlens;
	struct msg_change *changes;
	lua_Number ticket;
	void *arg;

	if (!list)
		luaL_checkstring(L, 1);
	user = store_arg_name(L, 2, "userId", &ulen);
	level = store_arg_level(L, 3);
	open = lua_toboolean(L, 4);
	if (!lua_isnoneornil(L, 5))
		conv = store_arg_name(L, 5, "conversationId", &clen);
	if (list) {
		n = lua_objlen(L, 1);
		if (n > MESSAGES_STATUS_LIST_MAX)
			return luaL_error(L, "store.set_status: more than %d message ids",
					  MESSAGES_STATUS_LIST_MAX);
	}
	/* The ids stay referenced by the list (or the argument) while used. */
	ids = scratch_alloc((n ? n : 1) * sizeof(*ids));
	idlens = scratch_alloc((n ? n : 1) * sizeof(*idlens));
	for (size_t i = 0; i < n; i++) {
		if (!list) {
			ids[i] = lua_tolstring(L, 1, &idlens[i]);
			continue;
		}
		lua_rawgeti(L, 1, (int)i + 1);
		if (lua_type(L, -1) != LUA_TSTRING)
			return luaL_error(L, "store.set_status: messageIds[%d] is not a string",
					  (int)i + 1);
		ids[i] = lua_tolstring(L, -1, &idlens[i]);
		lua_pop(L, 1);
	}
	changes = scratch_alloc((n ? n : 1) * sizeof(*changes));
	arg = ticket_new(&ticket);
	rc = messages_set_status(ids, idlens, n, user, ulen, level, open, conv, clen, tickets_done,
				 arg, changes, &refused);
	if (rc < 0) {
		lua_pushnil(L);
		lua_pushstring(L, rc == -ENOENT ? "not found" : "not a recipient");
		lua_pushlstring(L, ids[refused], idlens[refused]);
		scratch_free(ids);
		scratch_free(idlens);
		scratch_free(changes);
		return 3;
	}
	scratch_free(ids);
	scratch_free(idlens);
	if (list) {
		lua_createtable(L, (int)n, 0);
		jsonlua_mark_array(L);
	}
	for (size_t i = 0; i < n; i++) {
		push_change(L, &changes[i]);
		if (list)
			lua_rawseti(L, -2, (int)i + 1);
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
	size_t clen, ulen, n;
	const char *conv = store_arg_name(L, 1, "conversationId", &clen);
	const char *user = store_arg_name(L, 2, "userId", &ulen);
	uint64_t upto = lua_isnoneornil(L, 3) ? UINT64_MAX : (uint64_t)luaL_checknumber(L, 3);
	int open = lua_toboolean(L, 4), count;
	struct msg_change *changes;
	lua_Number ticket;
	void *arg = ticket_new(&ticket);

	messages_read_upto(conv, clen, user, ulen, upto, open, tickets_done, arg, &changes, &n,
			   &count);
	lua_createtable(L, (int)n, 0);
	jsonlua_mark_array(L);
	for (size_t k = 0; k < n; k++) {
		push_change(L, &changes[k]);
		lua_rawseti(L, -2, (int)k + 1);
	}
	scratch_free(changes);
	lua_pushinteger(L, count);
	lua_pushnumber(L, ticket);
	return 3;
}

/* store_members(conversationId) -> { userIds } (empty: not registered) */
static int l_members(lua_State *L)
{
	size_t clen, len;
	const char *conv = store_arg_name(L, 1, "conversationId", &clen);
	char *names = messages_members(conv, clen, &len);

	push_names(L, names, len);
	scratch_free(names);
	return 1;
}

/* store_inbox(userId, before conversationId | nil, limit) -> raw JSON
 *   {"conversations":[item, ...], "hasMore": bool}, latest activity first
 *   | nil when `before` is not in the user's inbox */
static int l_inbox(lua_State *L)
{
	size_t ulen, blen = 0, len;
	const char *user = store_arg_name(L, 1, "userId", &ulen);
	const char *before = lua_isnoneornil(L, 2) ? NULL :
			     store_arg_name(L, 2, "conversationId", &blen);
	lua_Integer limit = luaL_optinteger(L, 3, 20);
	char *json = messages_inbox(user, ulen, before, blen, (long)limit, &len);

	if (!json) {
		lua_pushnil(L);
		return 1;
	}
	jsonlua_push_raw(L, json, len);
	scratch_free(json);
	return 1;
}

/* store_inbox_item(userId, conversationId) -> raw JSON item | nil */
static int l_inbox_item(lua_State *L)
{
	size_t ulen, clen, len;
	const char *user = store_arg_name(L, 1, "userId", &ulen);
	const char *conv = store_arg_name(L, 2, "conversationId", &clen);
	char *json = messages_inbox_item(user, ulen, conv, clen, &len);

	if (!json) {
		lua_pushnil(L);
		return 1;
	}
	jsonlua_push_raw(L, json, len);
	scratch_free(json);
	return 1;
}

/* store_inbox_updates(conversationId, { userIds }) ->
 *   { { item = raw JSON, users = { userIds } }, ... }: the conversation's
 *   item for each of the users whose inbox holds it, users with the same
 *   item together (one emit each). */
static int l_inbox_updates(lua_State *L)
{
	size_t clen, n = 0, groups;
	const char *conv = store_arg_name(L, 1, "conversationId", &clen);
	size_t total;
	const char **users;
	size_t *ulens, *item_lens;
	long *group;
	char **items;

	luaL_checktype(L, 2, LUA_TTABLE);
	total = lua_objlen(L, 2);
	if (total > MESSAGES_RECIPIENTS_MAX)
		total = MESSAGES_RECIPIENTS_MAX;
	users = scratch_alloc((total ? total : 1) * sizeof(*users));
	ulens = scratch_alloc((total ? total : 1) * sizeof(*ulens));
	group = scratch_alloc((total ? total : 1) * sizeof(*group));
	items = scratch_alloc((total ? total : 1) * sizeof(*items));
	item_lens = scratch_alloc((total ? total : 1) * sizeof(*item_lens));
	/* The names stay alive in the table, which stays on the stack. */
	for (size_t i = 1; i <= total; i++) {
		lua_rawgeti(L, 2, (int)i);
		if (lua_type(L, -1) == LUA_TSTRING) {
			users[n] = lua_tolstring(L, -1, &ulens[n]);
			if (ulens[n] && ulens[n] <= NAME_MAX_BYTES && !memchr(users[n], '\0', ulens[n]))
				n++;
		}
		lua_pop(L, 1);
	}
	groups = messages_inbox_items(conv, clen, users, ulens, n, group, items, item_lens);
	lua_createtable(L, (int)groups, 0);
	for (size_t g = 0; g < groups; g++) {
		int k = 0;
		lua_createtable(L, 0, 2);
		jsonlua_push_raw(L, items[g], item_lens[g]);
		lua_setfield(L, -2, "item");
		lua_newtable(L);
		for (size_t i = 0; i < n; i++)
			if (group[i] == (long)g) {
				lua_pushlstring(L, users[i], ulens[i]);
				lua_rawseti(L, -2, ++k);
			}
		lua_setfield(L, -2, "users");
		lua_rawseti(L, -2, (int)g + 1);
	}
	for (size_t g = 0; g < groups; g++)
		scratch_free(items[g]);
	scratch_free(users);
	scratch_free(ulens);
	scratch_free(group);
	scratch_free(items);
	scratch_free(item_lens);
	return 1;
}

/* store_participants(conversationId) -> { userIds } whose inbox holds it */
static int l_participants(lua_State *L)
{
	size_t clen, len;
	const char *conv = store_arg_name(L, 1, "conversationId", &clen);
	char *names = messages_participants(conv, clen, &len);

	push_names(L, names, len);
	scratch_free(names);
	return 1;
}

/* store_conversations_of(userId) -> { conversationIds } */
static int l_conversations_of(lua_State *L)
{
	size_t ulen, len;
	const char *user = store_arg_name(L, 1, "userId", &ulen);
	char *names = messages_conversations_of(user, ulen, &len);

	push_names(L, names, len);
	scratch_free(names);
	return 1;
}

/* store_is_member(conversationId, userId) -> member, registered (whether
 * the conversation has members at all) */
static int l_is_member(lua_State *L)
{
	size_t clen, ulen;
	const char *conv = store_arg_name(L, 1, "conversationId", &clen);
	const char *user = store_arg_name(L, 2, "userId", &ulen);
	int registered, member = messages_is_member(conv, clen, user, ulen, &registered);

	lua_pushboolean(L, member);
	lua_pushboolean(L, registered);
	return 2;
}

/* store_set_members(conversationId, { userIds }) -> ticket: the list
 * replaces the conversation's members. */
static int l_set_members(lua_State *L)
{
	size_t clen, n, len = 0;
	const char *conv = store_arg_name(L, 1, "conversationId", &clen);
	char *members = NULL;
	lua_Number ticket;
	void *arg;

	luaL_checktype(L, 2, LUA_TTABLE);
	/* Everything that may raise comes before the batch: the new list's
	 * check. */
	n = lua_objlen(L, 2);
	if (n > MESSAGES_RECIPIENTS_MAX)
		n = MESSAGES_RECIPIENTS_MAX;
	for (size_t i = 1; i <= n; i++) {
		size_t ulen = 0;
		lua_rawgeti(L, 2, (int)i);
		const char *u = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &ulen) : NULL;
		if (!u || !ulen || ulen > NAME_MAX_BYTES || memchr(u, '\0', ulen)) {
			scratch_free(members);
			return luaL_error(L, "store.set_members: member %d is not a user id", (int)i);
		}
		members = scratch_realloc(members, len + ulen + 1);
		memcpy(members + len, u, ulen + 1);
		len += ulen + 1;
		lua_pop(L, 1);
	}
	arg = ticket_new(&ticket);
	messages_set_members(conv, clen, members, len, tickets_done, arg);
	scratch_free(members);
	lua_pushnumber(L, ticket);
	return 1;
}

/* store_profile(userId) -> profile (raw JSON) | nil */
static int l_profile(lua_State *L)
{
	size_t ulen, vlen;
	const char *user = store_arg_name(L, 1, "userId", &ulen);
	const void *v;

	if (!messages_profile(user, ulen, &v, &vlen))
		return 0;
	jsonlua_push_raw(L, v, vlen);
	return 1;
}

/* store_set_profile(userId, profile table) -> ticket */
static int l_set_profile(lua_State *L)
{
	size_t ulen, len;
	const char *user = store_arg_name(L, 1, "userId", &ulen);
	const char *err = NULL;
	char *json;
	lua_Number ticket;
	void *arg;

	luaL_checktype(L, 2, LUA_TTABLE);
	json = jsonlua_encode(L, 2, &len, &err);
	if (!json)
		return luaL_error(L, "store.set_profile: %s", err);
	arg = ticket_new(&ticket);
	messages_set_profile(user, ulen, json, len, tickets_done, arg);
	scratch_free(json);
	lua_pushnumber(L, ticket);
	return 1;
}

/* store_last_seen(userId) -> ms | nil */
static int l_last_seen(lua_State *L)
{
	size_t ulen;
	const char *user = store_arg_name(L, 1, "userId", &ulen);
	int64_t ms;

	if (!messages_last_seen(user, ulen, &ms))
		return 0;
	lua_pushnumber(L, (lua_Number)ms);
	return 1;
}

/* store_set_last_seen(userId, ms) */
static int l_set_last_seen(lua_State *L)
{
	size_t ulen;
	const char *user = store_arg_name(L, 1, "userId", &ulen);
	lua_Number ms = luaL_checknumber(L, 2);

	messages_set_last_seen(user, ulen, ms > 0 ? (int64_t)ms : 0);
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
	const char *err = NULL;
	char *json = NULL;
	lua_Number ticket;
	void *arg;

	if (idlen != MESSAGES_ID_LEN)
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
	arg = ticket_new(&ticket);
	messages_annotate(id, name, nlen, json, len, tickets_done, arg);
	scratch_free(json);
	lua_pushnumber(L, ticket);
	return 1;
}

/* store_edit(messageId, content|nil) -> editedAt, ticket | nil, "not found"
 * Rewrites the stored message: the new content and "editedAt", or, with
 * nil, a tombstone (content null, "deleted": true) - deleted for everyone. */
static int l_edit(lua_State *L)
{
	size_t idlen, clen = 0;
	const char *id = luaL_checklstring(L, 1, &idlen);
	char *content = NULL, when[MESSAGES_TIME_LEN];
	const char *err = NULL;
	lua_Number ticket;
	void *arg;

	if (!messages_has(id, idlen)) {
		lua_pushnil(L);
		lua_pushliteral(L, "not found");
		return 2;
	}
	if (!lua_isnoneornil(L, 2)) {
		content = jsonlua_encode(L, 2, &clen, &err);
		if (!content)
			return luaL_error(L, "store.edit: content: %s", err);
	}
	arg = ticket_new(&ticket);
	messages_edit(id, idlen, content, clen, tickets_done, arg, when);
	scratch_free(content);
	lua_pushstring(L, when);
	lua_pushnumber(L, ticket);
	return 2;
}

/* store_hide(messageId, userId) -> ticket: deleted for that user only
 * (sync with that viewer leaves it out). */
static int l_hide(lua_State *L)
{
	size_t idlen, ulen;
	const char *id = luaL_checklstring(L, 1, &idlen);
	const char *user = store_arg_name(L, 2, "userId", &ulen);
	lua_Number ticket;
	void *arg;

	if (idlen != MESSAGES_ID_LEN)
		return luaL_error(L, "store.hide: not a message id");
	arg = ticket_new(&ticket);
	messages_hide(id, user, ulen, tickets_done, arg);
	lua_pushnumber(L, ticket);
	return 1;
}

/* iso_time(ms) -> "YYYY-MM-DDTHH:MM:SS.mmmZ" */
static int l_iso_time(lua_State *L)
{
	char when[MESSAGES_TIME_LEN];

	messages_iso_time((int64_t)luaL_checknumber(L, 1), when);
	lua_pushstring(L, when);
	return 1;
}

void store_api_register(lua_State *L)
{
	static const luaL_Reg functions[] = {
		{ "store_send", l_send },
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
		{ "iso_time", l_iso_time },
		{ "store_annotate", l_annotate },
		{ "store_edit", l_edit },
		{ "store_hide", l_hide },
		{ NULL, NULL },
	};

	luaL_register(L, NULL, functions);
}
