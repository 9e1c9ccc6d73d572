/* pattern.h - Lua 5.1 pattern matching, as LuaJIT 2.1 does it, written for
 * parley: string.find, match, gmatch and gsub as C functions whose matcher
 * counts its steps and lets a budget stop it. Lua's matcher backtracks, so a
 * pattern can take exponential time inside one C call, where no Lua hook
 * runs; the guard (core/lua/guard.c) supplies the budget. Uses only the Lua API. */
#ifndef PARLEY_PATTERN_H
#define PARLEY_PATTERN_H

#include <lua.h>

/* Matching steps between two calls of the budget function. A step is an
 * item tried or a subject byte scanned: a few nanoseconds. */
#define PATTERN_CHECK_STEPS 4096

/* Asked every PATTERN_CHECK_STEPS steps of one call. It returns to let the
 * match go on, or stops it by raising a Lua error (lua_error) on `L`, the
 * state running the call; the error reaches the caller as it is. */
typedef void (*pattern_budget_fn)(lua_State *L);

/* Sets find, match, gmatch and gsub in the table at the top of the stack
 * (the `string` table, or another one to test them beside the originals).
 * They behave as LuaJIT 2.1's: the same results, the same errors (malformed
 * patterns are reported when the match reaches them), the same limits (32
 * captures, "pattern too complex" beyond 200 nested items). `budget` may be
 * NULL: never stopped. Leaves the stack as it was. */
void pattern_register(lua_State *L, pattern_budget_fn budget);

#endif
