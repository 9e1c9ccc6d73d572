/* tickets.h - jobs that wait for the store. A job that wrote yields a
 * ticket (tickets_new); the batch's completion callback, tickets_done with
 * the ticket as its argument, queues it; after each round of the store's
 * completions the runtime resumes every queued job in one call. The store
 * knows nothing of this: it is only given tickets_done as a callback. */
#ifndef PARLEY_TICKETS_H
#define PARLEY_TICKETS_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

/* A new ticket (never 0). */
uintptr_t tickets_new(void);
/* A store completion: `arg` is the ticket, `err` the store's (0: durable,
 * or a negative code, base/error.h). Give it to store_submit as the
 * batch's `done`. */
void tickets_done(void *arg, int err);

/* A host function that answers later (a store on another machine): returns
 * tickets_pending(S, ticket), which pushes core.PENDING and the ticket, and
 * later hands its answer to script_resume_with(ticket, ...). The runtime's
 * C.settle makes the script's job wait for it (core/lua/runtime/api.lua
 * says, for each store and kv function, what the answer holds). */
int tickets_pending(lua_State *S, uintptr_t ticket);

/* Adds core.PENDING (a light userdata no script can make), and
 * core.store_wait() -> PENDING, ticket (resumed with nothing, or the
 * store's error, once everything written so far is durable) to the table at
 * the top of the stack. */
void tickets_register(lua_State *S);
/* From now on, after each round of store completions, hands the seam every
 * ticket queued since the last (with its error: 0 durable, or a negative
 * code) to resume its job; the arrays are tickets.c's, valid during the
 * call. tickets_fini stops that and frees the queue. */
void tickets_start(void (*on_durable)(const uintptr_t *tickets, const int *errs, size_t n));
void tickets_fini(void);

#endif
