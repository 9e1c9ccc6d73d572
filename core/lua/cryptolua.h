/* cryptolua.h - the crypto helpers scripts get as parley.crypto (JWT and
 * signatures): HMAC-SHA256, SHA-256, constant-time comparison, random bytes,
 * base64 and base64url, from libcrypto and base64.c. Apart from the rest of
 * the seam so that a fuzz driver can run the JWT check with them. */
#ifndef PARLEY_CRYPTOLUA_H
#define PARLEY_CRYPTOLUA_H

#include <lua.h>

/* Adds hmac_sha256, sha256, secure_equals, random, base64,
 * base64_decode, base64url_encode, base64url_decode to the table at the
 * top of the stack. */
void cryptolua_register(lua_State *L);

#endif
