/* scratch.h - memory that a host function (a C function scripts call), or
 * the lower layer it calls (the message store builds its answers here),
 * holds for the length of one call into Lua. A Lua error there (an allocation the
 * memory budget refuses, the guard's stop, a bad argument) longjmps out of
 * the function, past the free() it meant to do: what it took from here and
 * did not give back is freed when the outermost call into Lua returns.
 * Taken outside a call (a fuzz driver), it is ordinary memory. */
#ifndef PARLEY_SCRATCH_H
#define PARLEY_SCRATCH_H

#include <stddef.h>

/* Bracket a call into Lua (guard_enter and guard_leave do); calls nest, and
 * scratch_end of the outermost frees what is still held. */
void scratch_begin(void);
void scratch_end(void);

/* As xmalloc, xrealloc and free (aborts on out-of-memory). Only for what
 * the function drops before it returns: never keep a pointer to scratch
 * memory past the call. scratch_realloc(NULL, n) is scratch_alloc(n), and
 * scratch_free(NULL) does nothing. */
void *scratch_alloc(size_t n);
void *scratch_realloc(void *p, size_t n);
void scratch_free(void *p);

#endif
