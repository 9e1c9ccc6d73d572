/* fuzz_jwt.c - the default auth script in JWT mode, with the real JSON and
 * crypto bindings: any presented token (as auth.token, the token query
 * parameter, or an Authorization header) may be refused, never crash, and
 * is accepted only when it is one the driver signed itself with valid
 * claims - as the user those claims name. Forgery, `alg: none`, a swapped
 * algorithm, expired or early tokens, all land as refusals. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lua/cryptolua.h"
#include "lua/jsonlua.h"

#ifndef PARLEY_SOURCE_DIR
#define PARLEY_SOURCE_DIR "."
#endif

#define SECRET "fuzz-secret"

/* The clock auth.lua reads: fixed, so that exp and nbf are reproducible. */
static const char now_lua[] = "parley.now = function() return 1800000000 * 1000 end";

/* The tokens that must pass, by their signed part: `genuine[header.payload]
 * = userId`. Literal texts, so that tests/fuzz/seed.js signs the same ones
 * (and signed ones that must fail: expired, early, alg none, HS512...). */
static const char setup_lua[] =
	"local c = parley.crypto\n"
	"local h = c.base64url_encode('{\"alg\":\"HS256\",\"typ\":\"JWT\"}')\n"
	"genuine = {}\n"
	"for claims, user in pairs({\n"
	"  ['{\"sub\":\"alice\"}'] = 'alice',\n"
	"  ['{\"sub\":\"bob\",\"exp\":1800000100,\"name\":\"Bob\"}'] = 'bob',\n"
	"  ['{\"userId\":\"carol\",\"nbf\":1700000000}'] = 'carol',\n"
	"}) do\n"
	"  genuine[h .. '.' .. c.base64url_encode(claims)] = user\n"
	"end\n";

/* Runs connect with the token placed as `where` says, and checks both
 * ways: accepted exactly when the token is a genuine one with its correct
 * signature, and then as the user it names. */
static const char attempt_lua[] =
	"local auth, where, token = ...\n"
	"local c = parley.crypto\n"
	"local hs = { auth = {}, query = {}, headers = {} }\n"
	"local presented = token\n"
	"if where == 0 then hs.auth.token = token\n"
	"elseif where == 1 then hs.query.token = token\n"
	"else\n"
	"  local h = where == 2 and 'Bearer ' .. token or token\n"
	"  hs.headers.authorization = h\n"
	"  presented = h:match('^[Bb]earer%s+(%S+)%s*$')\n"
	"end\n"
	"local signed = presented and presented:match('^([^.]*%.[^.]*)%.')\n"
	"local user = signed and genuine[signed]\n"
	"local good = user and presented == signed .. '.' ..\n"
	"  c.base64url_encode(c.hmac_sha256(parley.settings.jwt_secret, signed))\n"
	"local who, code = auth.connect({}, hs)\n"
	"if who then\n"
	"  if not good or who.userId ~= user then\n"
	"    error('accepted a token the driver did not sign: ' .. token)\n"
	"  end\n"
	"elseif good then\n"
	"  error('refused a genuine token: ' .. token)\n"
	"elseif code ~= 401 then\n"
	"  error('refused without a 401')\n"
	"end\n";

static lua_State *L;
static int auth_ref, attempt_ref;

static void run(const char *chunk, size_t len, const char *name)
{
	if (luaL_loadbuffer(L, chunk, len, name) != 0 || lua_pcall(L, 0, 0, 0) != 0) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		abort();
	}
}

static void setup(void)
{
	L = luaL_newstate();
	luaL_openlibs(L);

	/* The part of the `parley` table auth.lua uses. */
	lua_newtable(L);
	jsonlua_open(L);
	lua_setfield(L, -2, "json");
	lua_newtable(L);
	cryptolua_register(L);
	lua_getfield(L, -1, "secure_equals");
	lua_setfield(L, -2, "equals");
	lua_setfield(L, -2, "crypto");
	lua_newtable(L);
	lua_pushliteral(L, SECRET);
	lua_setfield(L, -2, "jwt_secret");
	lua_setfield(L, -2, "settings");
	lua_setglobal(L, "parley");
	run(now_lua, sizeof(now_lua) - 1, "now");
	run(setup_lua, sizeof(setup_lua) - 1, "setup");

	if (luaL_loadfile(L, PARLEY_SOURCE_DIR "/scripts/auth.lua") != 0 ||
	    lua_pcall(L, 0, 1, 0) != 0) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		abort();
	}
	auth_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	if (luaL_loadbuffer(L, attempt_lua, sizeof(attempt_lua) - 1, "attempt") != 0)
		abort();
	attempt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!L)
		setup();
	if (size < 1)
		return 0;
	lua_rawgeti(L, LUA_REGISTRYINDEX, attempt_ref);
	lua_rawgeti(L, LUA_REGISTRYINDEX, auth_ref);
	lua_pushinteger(L, data[0] % 4);
	lua_pushlstring(L, (const char *)data + 1, size - 1);
	if (lua_pcall(L, 3, 0, 0) != 0) {
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
		abort();
	}
	lua_gc(L, LUA_GCSTEP, 0);
	return 0;
}
