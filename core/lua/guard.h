/* guard.h - stops runaway Lua. Every call from the core into Lua has a time
 * budget and an allocation budget. Time: a ticking timer signal notices a
 * call that has run past its budget and installs a count hook, which stops
 * the script's code (not the runtime's) with an error that the script's own
 * pcall cannot keep (the runtime rethrows it). Script code runs with the JIT
 * off for its functions, since LuaJIT runs no hooks inside compiled loops.
 * A hook runs only between Lua instructions, so C functions that can run
 * long ask guard_check themselves (pattern matching, core/lua/pattern.c).
 * Memory: the state's allocator refuses what would grow the heap by more
 * than the budget during one call. */
#ifndef PARLEY_GUARD_H
#define PARLEY_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

/* Sets the budgets and creates the Lua state (with the guard's allocator),
 * the caller's until guard_close; or returns NULL (logged: the state or the
 * ticker could not be made). `sources` is a NULL-terminated list, kept by
 * reference, of the chunk names of the code the guard never stops (the
 * runtime), e.g. "@core/lua/runtime/helpers.lua". */
lua_State *guard_newstate(int timeout_ms, size_t memory_budget,
			  const char *const *sources);
/* Closes the state (NULL: none) and stops the ticker. */
void guard_close(lua_State *L);

/* Brackets a call into Lua; calls nest, and the budgets belong to the
 * outermost. guard_leave returns 1 when the guard stopped script code
 * during the call, else 0. */
void guard_enter(void);
int guard_leave(lua_State *L);

/* Gives the rest of the running call a memory budget of its own, counted
 * from the heap as it is now: for the runtime's work after a script failed
 * (perhaps by spending the whole budget), which must still answer. */
void guard_renew(void);

/* The error value a stop raises (a light userdata no script can make). */
void *guard_stop_token(void);

/* 1 when the running call has spent its time budget, else 0. Cheap: reads
 * the flag the ticker sets. */
int guard_expired(void);

/* For C functions that scripts call and that can run long: once the budget
 * is spent, stops the script there as the hook would (raises the stop
 * token in L, counted as a stop), unless the runtime called the function;
 * otherwise returns. Call it every few thousand steps. */
void guard_check(lua_State *L);

/* Counters for /metrics. */
extern uint64_t guard_timeouts;         /* calls stopped for running too long */
extern uint64_t guard_memory_refusals;  /* allocations refused over the budget */
extern uint64_t guard_allocated_bytes;  /* bytes the Lua heap grew by, ever (garbage to collect) */

/* The Lua heap's size now, in bytes (a gauge for /metrics). */
long long guard_heap_bytes(void);

#endif
