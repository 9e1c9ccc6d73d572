/* host_timers.c - the runtime's timers (core.timer, core.cancel): one
 * libev timer per armed id, which calls the runtime's `timer` entry when it
 * fires. The runtime keeps what each id runs and who owns it. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/alloc.h"
#include "base/map.h"
#include "lua/host.h"
#include "base/clock.h"

static struct map timers; /* timer id -> struct script_timer */

struct script_timer {
	ev_timer timer;
	lua_Number id;
	char key[24];
};

static void (*fire)(double id); /* the seam's: runs the script's callback */

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct script_timer *t = (struct script_timer *)((char *)w - offsetof(struct script_timer, timer));
	lua_Number id = t->id;

	(void)loop;
	(void)revents;
	map_del(&timers, t->key, strlen(t->key));
	free(t);
	fire(id);
}

/* timer(id, ms): (re)arms timer `id`. */
static int l_timer(lua_State *S)
{
	lua_Number id = luaL_checknumber(S, 1);
	lua_Number ms = luaL_checknumber(S, 2);
	struct script_timer *t;
	char key[24];

	snprintf(key, sizeof(key), "%.0f", id);
	t = map_get(&timers, key, strlen(key));
	if (!t) {
		t = xcalloc(1, sizeof(*t));
		t->id = id;
		memcpy(t->key, key, sizeof(key));
		map_put(&timers, key, strlen(key), t);
	}
	if (ms < 0)
		ms = 0;
	timer_start(&t->timer, on_timer, ms);
	return 0;
}

static int l_cancel(lua_State *S)
{
	char key[24];
	struct script_timer *t;

	snprintf(key, sizeof(key), "%.0f", luaL_checknumber(S, 1));
	t = map_del(&timers, key, strlen(key));
	if (t) {
		timer_stop(&t->timer);
		free(t);
	}
	return 0;
}

static const luaL_Reg functions[] = {
	{ "timer", l_timer },
	{ "cancel", l_cancel },
	{ NULL, NULL },
};

void host_timers_register(lua_State *S, void (*on_due)(double id))
{
	fire = on_due;
	map_init(&timers);
	luaL_register(S, NULL, functions);
}

void host_timers_fini(void)
{
	struct map_iter it;
	struct map_entry *e;

	map_iter_init(&it, &timers);
	while ((e = map_next(&it))) {
		struct script_timer *t = e->value;
		timer_stop(&t->timer);
		free(t);
	}
	map_fini(&timers);
}
