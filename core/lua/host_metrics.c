/* host_metrics.c - series scripts and plugins count on /metrics
 * (parley.metrics): each family is declared once with all its series, so
 * that they render together, and each series is a metrics_value of ours,
 * kept for the life of the process (a reload declares it again: the same
 * series, its count kept). */
#include <stdint.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/map.h"
#include "base/metrics.h"
#include "lua/host.h"

/* Series scripts may declare, all families together: /metrics stays small. */
#define SCRIPT_SERIES_MAX 256

struct script_series {
	struct metrics_value v;
	uint64_t value;
	char *name, *help, *type;
};

static struct map series; /* series name -> struct script_series */
static size_t nseries;

static struct script_series *series_new(const char *name, const char *help, const char *type,
					int seconds)
{
	struct script_series *s = xcalloc(1, sizeof(*s));

	s->name = xstrdup(name);
	s->v.name = s->name;
	if (help) {
		s->help = xstrdup(help);
		s->type = xstrdup(type);
		s->v.help = s->help;
		s->v.type = s->type;
	}
	if (seconds)
		s->v.usec = &s->value;
	else
		s->v.count = &s->value;
	map_put(&series, name, strlen(name), s);
	nseries++;
	metrics_register(&s->v);
	return s;
}

/* metric_declare(family, type, help, {series...}) -> true | nil, err.
 * type: "counter", "gauge" or "seconds" (a counter of seconds, counted in
 * microseconds). The runtime checked the names. A family declared before
 * is left as it is. */
static int l_metric_declare(lua_State *S)
{
	const char *family = luaL_checkstring(S, 1);
	const char *type = luaL_checkstring(S, 2);
	const char *help = luaL_checkstring(S, 3);
	int seconds = strcmp(type, "seconds") == 0;
	size_t n;

	luaL_checktype(S, 4, LUA_TTABLE);
	n = lua_objlen(S, 4);
	lua_rawgeti(S, 4, 1);
	if (n == 0 || !lua_isstring(S, -1))
		return luaL_error(S, "metric_declare: no series");
	if (map_get(&series, lua_tostring(S, -1), strlen(lua_tostring(S, -1)))) {
		lua_pushboolean(S, 1);
		return 1;
	}
	lua_pop(S, 1);
	if (nseries + n > SCRIPT_SERIES_MAX) {
		lua_pushnil(S);
		lua_pushfstring(S, "at most %d series in all", SCRIPT_SERIES_MAX);
		return 2;
	}
	for (size_t i = 1; i <= n; i++) {
		lua_rawgeti(S, 4, (int)i);
		series_new(lua_tostring(S, -1), i == 1 ? help : NULL,
			   seconds ? "counter" : type, seconds);
		lua_pop(S, 1);
	}
	(void)family;
	lua_pushboolean(S, 1);
	return 1;
}

/* metric_add(series, delta) / metric_set(series, value) -> true | nil, err */
static int change(lua_State *S, int set)
{
	size_t len;
	const char *name = luaL_checklstring(S, 1, &len);
	lua_Number v = luaL_checknumber(S, 2);
	struct script_series *s = map_get(&series, name, len);

	if (!s) {
		lua_pushnil(S);
		lua_pushfstring(S, "no series %s: declare it first", name);
		return 2;
	}
	if (s->v.usec)
		v *= 1e6; /* seconds given, microseconds kept */
	if (set)
		s->value = v > 0 ? (uint64_t)v : 0;
	else if (v >= 0)
		s->value += (uint64_t)v;
	else
		s->value -= (uint64_t)-v > s->value ? s->value : (uint64_t)-v;
	lua_pushboolean(S, 1);
	return 1;
}

static int l_metric_add(lua_State *S)
{
	return change(S, 0);
}

static int l_metric_set(lua_State *S)
{
	return change(S, 1);
}

static const luaL_Reg functions[] = {
	{ "metric_declare", l_metric_declare },
	{ "metric_add", l_metric_add },
	{ "metric_set", l_metric_set },
	{ NULL, NULL },
};

void host_metrics_register(lua_State *S)
{
	map_init(&series);
	luaL_register(S, NULL, functions);
}
