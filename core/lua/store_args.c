/* store_args.c - the arguments the store's host functions share, on either
 * backend (store_api.c's and kv.c's LMDB ones, store_api_pg.c's PostgreSQL
 * ones): the
 * same checks and the same errors for the same mistakes. */
#include "lua/host.h"

#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "store/messages.h"

const char *store_arg_name(lua_State *L, int idx, const char *what, size_t *len)
{
	const char *s = luaL_checklstring(L, idx, len);

	if (*len == 0 || *len > MESSAGES_NAME_MAX || memchr(s, '\0', *len))
		luaL_error(L, "store: %s must be 1 to %d bytes without NUL", what, MESSAGES_NAME_MAX);
	return s;
}

const char *store_arg_field(lua_State *L, int t, const char *name, size_t *len)
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

int store_arg_level(lua_State *L, int idx)
{
	int level = messages_status_level(luaL_checkstring(L, idx));

	return level ? level : luaL_error(L, "store: status must be sent, delivered or read");
}

const char *store_kv_args(lua_State *L, size_t *nlen, const char **key, size_t *klen)
{
	const char *ns = luaL_checklstring(L, 1, nlen);

	*key = luaL_checklstring(L, 2, klen);
	if (*klen == 0 || *klen > KV_KEY_MAX || *nlen > KV_NS_MAX || memchr(ns, '\0', *nlen)) {
		lua_pushnil(L);
		lua_pushfstring(L, "keys are 1 to %d bytes", KV_KEY_MAX);
		return NULL;
	}
	return ns;
}
