/* fuzz_jsonlua.c - JSON on the Lua side: every document the scanner accepts
 * decodes, encodes without error, and decodes again to an equal value; the
 * second encoding is as long as the first (key order may differ, content
 * may not). This is the path every event's arguments take to a script and
 * back. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lualib.h>

#include "wire/json.h"
#include "lua/jsonlua.h"

/* Deep equality with JSON's meaning: arrays keep their mark, null is the
 * NULL light userdata, boxed big numbers compare by their text. */
static const char check_lua[] =
	"local json, text = ...\n"
	"local function eq(a, b)\n"
	"  if type(a) ~= type(b) then return false end\n"
	"  if type(a) == 'userdata' then return tostring(a) == tostring(b) end\n"
	"  if type(a) ~= 'table' then return a == b end\n"
	"  if json.is_array(a) ~= json.is_array(b) then return false end\n"
	"  for k, v in pairs(a) do if not eq(v, b[k]) then return false end end\n"
	"  for k in pairs(b) do if a[k] == nil then return false end end\n"
	"  return true\n"
	"end\n"
	"local v1 = json.decode(text)\n"
	"local t1 = json.encode(v1)\n"
	"local v2, err = json.decode(t1)\n"
	"if err then error('re-decode failed: ' .. t1) end\n"
	"if not eq(v1, v2) then error('value changed: ' .. t1) end\n"
	"local t2 = json.encode(v2)\n"
	"if #t2 ~= #t1 then error('encoding not stable: ' .. t1 .. ' / ' .. t2) end\n";

static lua_State *L;
static int check_ref;

static void setup(void)
{
	L = luaL_newstate();
	luaL_openlibs(L);
	if (luaL_loadbuffer(L, check_lua, sizeof(check_lua) - 1, "check") != 0)
		abort();
	check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	jsonlua_open(L);
	lua_setglobal(L, "json");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!L)
		setup();
	/* The scanner decides what is JSON; only documents reach scripts. */
	if (json_validate((const char *)data, size, 32) == JSON_INVALID)
		return 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, check_ref);
	lua_getglobal(L, "json");
	lua_pushlstring(L, (const char *)data, size);
	if (lua_pcall(L, 2, 0, 0) != 0) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		abort();
	}
	lua_gc(L, LUA_GCSTEP, 0);
	return 0;
}
