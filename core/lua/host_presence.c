/* host_presence.c - cluster mode's presence questions for scripts
 * (core.presence_*): each asks Redis (cluster/presence.c) and answers
 * core.PENDING and a ticket; the reply resumes the job (the seam's
 * script_resume_with). Redis unreachable, or the reply lost: the answer is
 * false, and runtime/api.lua answers from this node. Not registered
 * outside cluster mode: there parley.room_size and the rest stay the
 * synchronous host_sockets.c functions. */
#include "lua/host.h"

#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/alloc.h"
#include "cluster/cluster.h"
#include "cluster/presence.h"
#include "lua/jsonlua.h"
#include "lua/tickets.h"

/* Names in one presence_expire or presence_room_sizes call at most
 * (chat.lua's sweep sends up to 500; api.lua cuts room_sizes' lists to
 * this): the call is one Redis function, which blocks Redis while it runs. */
#define NAMES_MAX 1000

static void (*resume_with)(uintptr_t ticket, int (*push)(lua_State *L, void *ctx), void *ctx);

/* The reply as the script sees it: an integer, an array of strings, or
 * false (no reply: ask this node). */
static int push_reply(lua_State *L, void *ctx)
{
	const redisReply *r = ctx;

	if (!r || r->type == REDIS_REPLY_ERROR) {
		lua_pushboolean(L, 0);
		return 1;
	}
	if (r->type == REDIS_REPLY_INTEGER) {
		lua_pushinteger(L, (lua_Integer)r->integer);
		return 1;
	}
	lua_createtable(L, r->type == REDIS_REPLY_ARRAY ? (int)r->elements : 0, 0);
	jsonlua_mark_array(L);
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		if (r->element[i]->type == REDIS_REPLY_INTEGER)
			lua_pushinteger(L, (lua_Integer)r->element[i]->integer);
		else
			lua_pushlstring(L, r->element[i]->str ? r->element[i]->str : "",
					r->element[i]->len);
		lua_rawseti(L, -2, (int)i + 1);
	}
	return 1;
}

static void on_reply(void *arg, const redisReply *r)
{
	resume_with((uintptr_t)arg, push_reply, (void *)r);
}

static int ask(lua_State *S, enum presence_query q)
{
	size_t nlen, rlen = 0;
	const char *nsp = luaL_checklstring(S, 1, &nlen);
	const char *room = q == PRESENCE_ONLINE_USERS ? "" : luaL_checklstring(S, 2, &rlen);
	uintptr_t ticket = tickets_new();

	if (presence_query(q, nsp, nlen, room, rlen, on_reply, (void *)ticket) < 0) {
		lua_pushboolean(S, 0);
		return 1;
	}
	return tickets_pending(S, ticket);
}

/* presence_room_size(nsp, room) -> PENDING, ticket (an integer), or false */
static int l_room_size(lua_State *S)
{
	return ask(S, PRESENCE_ROOM_SIZE);
}

/* presence_room_users(nsp, room) -> PENDING, ticket (an array), or false */
static int l_room_users(lua_State *S)
{
	return ask(S, PRESENCE_ROOM_USERS);
}

/* presence_online_users(nsp) -> PENDING, ticket (an array), or false */
static int l_online_users(lua_State *S)
{
	return ask(S, PRESENCE_ONLINE_USERS);
}

/* What asks Redis about a list of names (presence_expire,
 * presence_room_sizes). */
typedef int (*ask_many_fn)(const char *nsp, size_t nsp_len, const char *const *names,
			   const size_t *lens, size_t n, cluster_reply_fn done, void *arg);

/* name(nsp, { string, ... }) -> PENDING, ticket, or false (Redis
 * unreachable). At most NAMES_MAX strings: the call is one Redis function,
 * which blocks Redis while it runs. */
static int ask_many(lua_State *S, const char *name, ask_many_fn ask_fn)
{
	size_t nlen, n;
	const char *nsp = luaL_checklstring(S, 1, &nlen);
	const char **names;
	size_t *lens;
	uintptr_t ticket;
	int rc;

	luaL_checktype(S, 2, LUA_TTABLE);
	n = lua_objlen(S, 2);
	if (n > NAMES_MAX)
		return luaL_error(S, "%s: at most %d names a call", name, NAMES_MAX);
	names = xcalloc(n + 1, sizeof(*names));
	lens = xcalloc(n + 1, sizeof(*lens));
	for (size_t i = 0; i < n; i++) {
		lua_rawgeti(S, 2, (int)i + 1);
		if (lua_type(S, -1) != LUA_TSTRING) {
			free(names);
			free(lens);
			return luaL_error(S, "%s: name %d is not a string", name, (int)i + 1);
		}
		/* The table holds the string while the call copies it. */
		names[i] = lua_tolstring(S, -1, &lens[i]);
		lua_pop(S, 1);
	}
	ticket = tickets_new();
	rc = ask_fn(nsp, nlen, names, lens, n, on_reply, (void *)ticket);
	free(names);
	free(lens);
	if (rc < 0) {
		lua_pushboolean(S, 0);
		return 1;
	}
	return tickets_pending(S, ticket);
}

/* presence_expire(nsp, { user, ... }) -> PENDING, ticket (the users the
 * cluster confirms offline), or false (Redis unreachable: none confirmed,
 * ask again later). */
static int l_expire(lua_State *S)
{
	return ask_many(S, "presence_expire", presence_expire);
}

/* presence_room_sizes(nsp, { room, ... }) -> PENDING, ticket (each room's
 * sockets on every node, in order), or false (ask this node). */
static int l_room_sizes(lua_State *S)
{
	return ask_many(S, "presence_room_sizes", presence_room_sizes);
}

static int push_true(lua_State *L, void *ctx)
{
	(void)ctx;
	lua_pushboolean(L, 1);
	return 1;
}

static void on_subscribed(void *arg)
{
	resume_with((uintptr_t)arg, push_true, NULL);
}

/* subscribed() -> true once every room this node has started to follow is
 * followed in Redis: at once, or PENDING, ticket (runtime sockets.lua's
 * join waits, so that its answer never comes before the room's
 * broadcasts from the other nodes reach this node). */
static int l_subscribed(lua_State *S)
{
	uintptr_t ticket = tickets_new();

	if (!cluster_subscribed(on_subscribed, (void *)ticket)) {
		lua_pushboolean(S, 1);
		return 1;
	}
	return tickets_pending(S, ticket);
}

static const luaL_Reg functions[] = {
	{ "subscribed", l_subscribed },
	{ "presence_room_size", l_room_size },
	{ "presence_room_users", l_room_users },
	{ "presence_online_users", l_online_users },
	{ "presence_expire", l_expire },
	{ "presence_room_sizes", l_room_sizes },
	{ NULL, NULL },
};

void host_presence_register(lua_State *L,
			    void (*resume)(uintptr_t ticket,
					   int (*push)(lua_State *L, void *ctx), void *ctx))
{
	if (!presence_on())
		return;
	resume_with = resume;
	luaL_register(L, NULL, functions);
	lua_pushboolean(L, 1);
	lua_setfield(L, -2, "presence_cluster");
}
