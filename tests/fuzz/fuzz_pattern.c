/* fuzz_pattern.c - parley's pattern matching (core/lua/pattern.c) against
 * LuaJIT's own, on any pattern and subject: every return value and every
 * error message must be the same. Input: one byte choosing the call (and
 * find's init), one giving the pattern's length, the pattern (NULs and all),
 * then the subject. Lengths are capped so that LuaJIT's matcher, which
 * nothing stops, ends soon on a backtracking pattern. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lua/pattern.h"

#define MAX_PATTERN 16
#define MAX_SUBJECT 32

/* run(which, op, init, s, p): one call described as a string. */
static const char check_lua[] =
	"local mine = ...\n"
	"local orig = { find = string.find, match = string.match,\n"
	"	gmatch = string.gmatch, gsub = string.gsub }\n"
	"local function show(...)\n"
	"	local out = {}\n"
	"	for i = 1, select('#', ...) do\n"
	"		local v = select(i, ...)\n"
	"		out[i] = type(v) == 'string' and string.format('%q', v) or tostring(v)\n"
	"	end\n"
	"	return table.concat(out, ' ')\n"
	"end\n"
	"local function pack(...) return { n = select('#', ...), ... } end\n"
	"local function call(f, ...) local r = pack(f(...)) return r end\n"
	"local function run(fns, op, init, s, p)\n"
	"	local calls = {}\n"
	"	local function repl(...) calls[#calls + 1] = show(...) return (...) ~= 'a' and '<' .. tostring(...) .. '>' or nil end\n"
	"	local r\n"
	"	if op == 0 then r = { pcall(call, fns.find, s, p) }\n"
	"	elseif op == 1 then r = { pcall(call, fns.find, s, p, init, true) }\n"
	"	elseif op == 2 then r = { pcall(call, fns.find, s, p, init) }\n"
	"	elseif op == 3 then r = { pcall(call, fns.match, s, p, init) }\n"
	"	elseif op == 4 then r = { pcall(call, fns.gsub, s, p, '[%0|%1]', init) }\n"
	"	elseif op == 5 then r = { pcall(call, fns.gsub, s, p, repl) }\n"
	"	elseif op == 6 then r = { pcall(call, fns.gsub, s, p, { a = 'A', b = false }) }\n"
	"	else\n"
	"		local ok, it = pcall(call, fns.gmatch, s, p)\n"
	"		if not ok then return 'error ' .. tostring(it) end\n"
	"		local out = {}\n"
	"		for _ = 1, 40 do\n"
	"			local ok2, v = pcall(call, it[1])\n"
	"			if not ok2 then out[#out + 1] = 'error ' .. tostring(v) break end\n"
	"			out[#out + 1] = show(unpack(v, 1, v.n))\n"
	"			if v[1] == nil then break end\n"
	"		end\n"
	"		return table.concat(out, ';')\n"
	"	end\n"
	"	if not r[1] then return 'error ' .. tostring(r[2]) end\n"
	"	return show(unpack(r[2], 1, r[2].n)) .. ' calls ' .. table.concat(calls, ';')\n"
	"end\n"
	"return function(op, init, s, p)\n"
	"	local a, b = run(orig, op, init, s, p), run(mine, op, init, s, p)\n"
	"	if a ~= b then\n"
	"		error(string.format('op %d init %d s %q p %q:\\nLuaJIT: %s\\nparley: %s', op, init, s, p, a, b))\n"
	"	end\n"
	"end\n";

static lua_State *L;
static int check_ref;

static void setup(void)
{
	L = luaL_newstate();
	luaL_openlibs(L);
	if (luaL_loadbuffer(L, check_lua, sizeof(check_lua) - 1, "check") != 0)
		abort();
	lua_newtable(L);
	pattern_register(L, NULL);
	if (lua_pcall(L, 1, 1, 0) != 0)
		abort();
	check_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t plen, slen;

	if (!L)
		setup();
	if (size < 2)
		return 0;
	plen = data[1] % (MAX_PATTERN + 1);
	if (plen > size - 2)
		plen = size - 2;
	slen = size - 2 - plen;
	if (slen > MAX_SUBJECT)
		slen = MAX_SUBJECT;
	lua_rawgeti(L, LUA_REGISTRYINDEX, check_ref);
	lua_pushinteger(L, data[0] & 7);
	lua_pushinteger(L, (lua_Integer)(data[0] >> 3) - 8);
	lua_pushlstring(L, (const char *)data + 2 + plen, slen);
	lua_pushlstring(L, (const char *)data + 2, plen);
	if (lua_pcall(L, 4, 0, 0) != 0) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		abort();
	}
	return 0;
}
