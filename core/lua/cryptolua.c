/* cryptolua.c - parley.crypto's functions (see cryptolua.h). Outputs are
 * built in scratch memory (scratch.h): the memory budget may refuse the
 * string they become. */
#include "lua/cryptolua.h"

#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#include <lauxlib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "wire/base64.h"
#include "base/scratch.h"

/* base64(bytes) / base64url_encode(bytes) -> text */
static int encode_base64_with(lua_State *S, size_t (*encode)(const unsigned char *, size_t, char *))
{
	size_t len;
	const char *s = luaL_checklstring(S, 1, &len);
	char *out = scratch_alloc(base64_encoded_len(len) + 1);
	size_t n = encode((const unsigned char *)s, len, out);

	lua_pushlstring(S, out, n);
	scratch_free(out);
	return 1;
}

static int l_base64(lua_State *S)
{
	return encode_base64_with(S, base64_encode);
}

static int l_base64url_encode(lua_State *S)
{
	return encode_base64_with(S, base64url_encode);
}

/* base64_decode(text) / base64url_decode(text) -> bytes | nil, err */
static int decode_base64_with(lua_State *S, long (*decode)(const char *, size_t, unsigned char *))
{
	size_t len;
	const char *s = luaL_checklstring(S, 1, &len);
	unsigned char *out = scratch_alloc(base64_decoded_max(len) + 1);
	long n = decode(s, len, out);

	if (n < 0)
		lua_pushnil(S);
	else
		lua_pushlstring(S, (const char *)out, (size_t)n);
	scratch_free(out);
	if (n >= 0)
		return 1;
	lua_pushliteral(S, "invalid base64");
	return 2;
}

static int l_base64_decode(lua_State *S)
{
	return decode_base64_with(S, base64_decode);
}

static int l_base64url_decode(lua_State *S)
{
	return decode_base64_with(S, base64url_decode);
}

/* hmac_sha256(key, message) -> 32 raw bytes */
static int l_hmac_sha256(lua_State *S)
{
	size_t klen, mlen;
	const char *key = luaL_checklstring(S, 1, &klen);
	const char *msg = luaL_checklstring(S, 2, &mlen);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (klen > INT32_MAX || !HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg,
				      mlen, mac, &n))
		return luaL_error(S, "HMAC-SHA256 failed");
	lua_pushlstring(S, (const char *)mac, n);
	return 1;
}

/* sha256(message) -> 32 raw bytes */
static int l_sha256(lua_State *S)
{
	size_t len;
	const char *msg = luaL_checklstring(S, 1, &len);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (!EVP_Digest(msg, len, md, &n, EVP_sha256(), NULL))
		return luaL_error(S, "SHA-256 failed");
	lua_pushlstring(S, (const char *)md, n);
	return 1;
}

/* equals(a, b) -> whether the strings are equal, in time that depends on
 * their lengths only (for comparing secrets and MACs). */
static int l_secure_equals(lua_State *S)
{
	size_t alen, blen;
	const char *a = luaL_checklstring(S, 1, &alen);
	const char *b = luaL_checklstring(S, 2, &blen);

	lua_pushboolean(S, alen == blen && CRYPTO_memcmp(a, b, alen) == 0);
	return 1;
}

/* random(n) -> n random bytes (1..1024) | nil, err */
static int l_random(lua_State *S)
{
	lua_Integer n = luaL_checkinteger(S, 1);
	unsigned char buf[1024];

	if (n < 1 || n > (lua_Integer)sizeof(buf)) {
		lua_pushnil(S);
		lua_pushliteral(S, "random: between 1 and 1024 bytes");
		return 2;
	}
	if (getrandom(buf, (size_t)n, 0) != (ssize_t)n) {
		lua_pushnil(S);
		lua_pushliteral(S, "random: no entropy");
		return 2;
	}
	lua_pushlstring(S, (const char *)buf, (size_t)n);
	return 1;
}

void cryptolua_register(lua_State *L)
{
	static const luaL_Reg functions[] = {
		{ "base64", l_base64 },
		{ "base64_decode", l_base64_decode },
		{ "base64url_encode", l_base64url_encode },
		{ "base64url_decode", l_base64url_decode },
		{ "hmac_sha256", l_hmac_sha256 },
		{ "sha256", l_sha256 },
		{ "secure_equals", l_secure_equals },
		{ "random", l_random },
		{ NULL, NULL },
	};

	luaL_register(L, NULL, functions);
}
