/* tickets.c - jobs waiting for the store: a job that wrote yields a
 * ticket; the store's completion of the batch (tickets_done, a callback the
 * store is given) queues it, and after each round of completions one call
 * into the runtime (resume_all) resumes every job whose writes are durable. */
#include "lua/tickets.h"

#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/alloc.h"
#include "store/store.h"

/* Jobs to resume, gathered over a round of store completions and resumed
 * by one call into Lua (resume_durable). */
static struct {
	uintptr_t *tickets;
	int *errs;
	size_t n, cap;
} durable;

void tickets_done(void *arg, int err)
{
	if (durable.n == durable.cap) {
		durable.cap = durable.cap ? durable.cap * 2 : 64;
		durable.tickets = xrealloc(durable.tickets, durable.cap * sizeof(*durable.tickets));
		durable.errs = xrealloc(durable.errs, durable.cap * sizeof(*durable.errs));
	}
	durable.tickets[durable.n] = (uintptr_t)arg;
	durable.errs[durable.n] = err;
	durable.n++;
}

static void (*resume)(const uintptr_t *tickets, const int *errs, size_t n);

/* After a round of store completions: every job queued, in one call. */
static void resume_durable(void)
{
	size_t n = durable.n;

	if (!n || !resume)
		return;
	durable.n = 0;
	resume(durable.tickets, durable.errs, n);
}

uintptr_t tickets_new(void)
{
	static uintptr_t next_ticket;

	return ++next_ticket;
}

/* core.PENDING: its address is the sentinel. */
static char pending;

int tickets_pending(lua_State *S, uintptr_t ticket)
{
	lua_pushlightuserdata(S, (void *)&pending);
	lua_pushnumber(S, (lua_Number)ticket);
	return 2;
}

/* store_wait() -> PENDING, ticket: the runtime resumes the waiting job with
 * nothing, or the store's error, once everything written so far is
 * committed and synced. */
static int l_store_wait(lua_State *S)
{
	uintptr_t ticket = tickets_new();

	store_submit(store_batch_new(), tickets_done, (void *)ticket);
	return tickets_pending(S, ticket);
}

static const luaL_Reg functions[] = {
	{ "store_wait", l_store_wait },
	{ NULL, NULL },
};

void tickets_register(lua_State *S)
{
	luaL_register(S, NULL, functions);
	lua_pushlightuserdata(S, (void *)&pending);
	lua_setfield(S, -2, "PENDING");
}

void tickets_start(void (*on_durable)(const uintptr_t *tickets, const int *errs, size_t n))
{
	resume = on_durable;
	store_on_completions(resume_durable);
}

void tickets_fini(void)
{
	store_on_completions(NULL);
	resume = NULL;
	free(durable.tickets);
	free(durable.errs);
	memset(&durable, 0, sizeof(durable));
}
