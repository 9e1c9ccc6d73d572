/* guard.c - the runaway-script guard (see guard.h): a per-call allocation
 * budget in the Lua state's allocator, and a time budget enforced by a count
 * hook that a ticking SIGALRM installs once a call has run too long (the way
 * luajit.c stops a script on Ctrl-C), and by guard_check for C code that runs
 * long (pattern matching). The ticker runs only while Lua does. */
#define _GNU_SOURCE
#include "lua/guard.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>

#include "base/log.h"
#include "base/metrics.h"

/* Instructions between two stops once the budget is spent: the hook keeps
 * firing, so a script that catches the error is stopped again at once. */
#define STOP_EVERY 1000
/* The ticker stops after this many ticks without a call into Lua. */
#define IDLE_TICKS 20

uint64_t guard_timeouts;
uint64_t guard_memory_refusals;
uint64_t guard_allocated_bytes;

static lua_State *state;
static const char *const *protected_sources;
static char stop_token;

/* Bytes the Lua state has allocated since the guard began counting (signed:
 * what it held before is freed later); only differences matter. */
static long long heap_bytes;
static long long call_base;   /* heap_bytes when the outermost call began */
static long long memory_budget;
/* LuaJIT's own allocator, which the guard's wraps: faster than malloc. */
static lua_Alloc inner_alloc;
static void *inner_ud;

static timer_t ticker;
static int ticker_made;
static long tick_ms;
static long ticks_allowed;    /* ticks a call may run */

/* Shared with the signal handler. */
static volatile sig_atomic_t depth;       /* calls into Lua in progress */
static volatile sig_atomic_t serial;      /* which outermost call it is */
static volatile sig_atomic_t ticker_on;
static volatile sig_atomic_t hooked;      /* the stop hook is installed */
static volatile sig_atomic_t stopped;     /* the hook stopped script code */

void *guard_stop_token(void)
{
	return &stop_token;
}

long long guard_heap_bytes(void)
{
	return heap_bytes;
}

static void *guard_alloc(void *ud, void *p, size_t osize, size_t nsize)
{
	void *q;

	(void)ud;
	/* Refuse growth past the budget of the running call; the script gets
	 * "not enough memory", and nothing outside the call is affected. */
	if (depth && nsize > osize &&
	    heap_bytes + (long long)(nsize - osize) > call_base + memory_budget) {
		guard_memory_refusals++;
		return NULL;
	}
	q = inner_alloc(inner_ud, p, osize, nsize);
	if (q || nsize == 0)
		heap_bytes += (long long)nsize - (long long)osize;
	if (q && nsize > osize)
		guard_allocated_bytes += nsize - osize;
	return q;
}

/* Raises the stop in L: the error the runtime knows and passes on. */
static void stop_script(lua_State *L)
{
	stopped = 1;
	lua_pushlightuserdata(L, &stop_token);
	lua_error(L);
}

/* Whether the function at `level` of L's stack runs for the runtime: it is
 * the runtime's code, or a Lua helper of the host's that the runtime called.
 * Scripts and the runtime are files ("@path"); a Lua chunk named "=..." is
 * such a helper (gmatch's iterator, core/lua/pattern.c) and runs for its caller.
 * A C function counts as a script's: the runtime calls scripts through
 * xpcall, so what a script tail-calls looks called by xpcall. */
static int runs_for_runtime(lua_State *L, int level)
{
	lua_Debug ar;

	while (lua_getstack(L, level, &ar) && lua_getinfo(L, "S", &ar)) {
		if (ar.what[0] == 'C' || ar.source[0] != '=') {
			for (const char *const *s = protected_sources; *s; s++)
				if (strcmp(ar.source, *s) == 0)
					return 1;
			return 0;
		}
		level++;
	}
	return 0;
}

/* Runs every STOP_EVERY instructions once the budget is spent: stops the
 * script's code wherever it is, but lets the runtime finish its work. */
static void on_stop_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	if (!runs_for_runtime(L, 0))
		stop_script(L);
}

int guard_expired(void)
{
	return hooked;
}

void guard_check(lua_State *L)
{
	/* Level 1 is what called the running C function: the runtime's own
	 * calls finish, as under the hook. */
	if (guard_expired() && !runs_for_runtime(L, 1))
		stop_script(L);
}

static void ticker_set(long ms)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = ms / 1000;
	its.it_value.tv_nsec = (ms % 1000) * 1000000L;
	its.it_interval = its.it_value;
	timer_settime(ticker, 0, &its, NULL);
}

static void on_tick(int sig)
{
	static sig_atomic_t seen_serial, ticks, idle;
	int saved = errno;

	(void)sig;
	if (!depth) {
		if (++idle > IDLE_TICKS) {
			ticker_on = 0;
			ticker_set(0);
		}
		goto out;
	}
	idle = 0;
	if (serial != seen_serial) {
		seen_serial = serial;
		ticks = 0;
		goto out;
	}
	if (++ticks >= ticks_allowed && !hooked) {
		hooked = 1;
		lua_sethook(state, on_stop_hook, LUA_MASKCOUNT, STOP_EVERY);
	}
out:
	errno = saved;
}

static struct metrics_value guard_metrics[] = {
	{ .name = "parley_lua_stopped_total",
	  .help = "Calls into Lua the guard stopped for running past PARLEY_SCRIPT_TIMEOUT.",
	  .type = "counter", .count = &guard_timeouts },
	{ .name = "parley_lua_memory_refusals_total",
	  .help = "Allocations refused for growing the Lua heap past PARLEY_SCRIPT_MEMORY in "
		  "one call.",
	  .type = "counter", .count = &guard_memory_refusals },
	{ .name = "parley_lua_heap_bytes", .help = "The Lua state's heap.", .type = "gauge",
	  .read = guard_heap_bytes },
	{ .name = "parley_lua_allocated_bytes_total",
	  .help = "Bytes the Lua heap has grown by: what its collector has had to take back, "
		  "and how fast.",
	  .type = "counter", .count = &guard_allocated_bytes },
};

lua_State *guard_newstate(int timeout_ms, size_t budget, const char *const *sources)
{
	struct sigevent sev;
	struct sigaction sa;

	for (size_t i = 0; i < sizeof(guard_metrics) / sizeof(guard_metrics[0]); i++)
		metrics_register(&guard_metrics[i]);

	memory_budget = (long long)budget;
	protected_sources = sources;
	tick_ms = timeout_ms / 4;
	if (tick_ms < 5)
		tick_ms = 5;
	if (tick_ms > 50)
		tick_ms = 50;
	/* A call is stopped after its budget plus at most one tick. */
	ticks_allowed = (timeout_ms + tick_ms - 1) / tick_ms;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_tick;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL) < 0) {
		log_error("guard: cannot handle SIGALRM");
		return NULL;
	}
	/* To this thread: the hook must be installed by the thread running Lua,
	 * never by the store's writer. */
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGALRM;
	sev._sigev_un._tid = gettid();
	if (timer_create(CLOCK_MONOTONIC, &sev, &ticker) < 0) {
		log_error("guard: cannot create the timer");
		return NULL;
	}
	ticker_made = 1;
	state = luaL_newstate();
	if (!state) {
		log_error("guard: cannot create the Lua state");
		return NULL;
	}
	inner_alloc = lua_getallocf(state, &inner_ud);
	lua_setallocf(state, guard_alloc, NULL);
	return state;
}

void guard_close(lua_State *L)
{
	if (ticker_made) {
		timer_delete(ticker);
		ticker_made = 0;
		ticker_on = 0;
	}
	if (L) {
		/* LuaJIT frees its allocator's arena only if it is still in place. */
		lua_setallocf(L, inner_alloc, inner_ud);
		lua_close(L);
	}
	state = NULL;
}

void guard_enter(void)
{
	if (depth++)
		return;
	serial++;
	call_base = heap_bytes;
	/* depth is raised first: a tick in between cannot stop the ticker. */
	if (!ticker_on) {
		ticker_on = 1;
		ticker_set(tick_ms);
	}
}

void guard_renew(void)
{
	if (depth)
		call_base = heap_bytes;
}

int guard_leave(lua_State *L)
{
	int was_stopped;

	if (--depth)
		return 0;
	was_stopped = stopped;
	if (hooked) {
		lua_sethook(L, NULL, 0, 0);
		hooked = 0;
	}
	stopped = 0;
	if (was_stopped)
		guard_timeouts++;
	return was_stopped;
}
