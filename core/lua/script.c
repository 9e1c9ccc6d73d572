/* script.c - the C half of the Lua seam: the LuaJIT state, the calls into
 * the embedded runtime (core/lua/runtime/) for connections, events, acks and
 * timers, and the `core` table of host functions the runtime builds on: the
 * general ones here, the others by topic (host.h: sockets, timers, kv,
 * tickets; the message store's in store_api.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/watch.h"
#include "lua/cryptolua.h"
#include "lua/guard.h"
#include "lua/host.h"
#include "lua/jsonlua.h"
#include "lua/pattern.h"
#include "base/scratch.h"
#include "lua/script.h"
#include "lua/tickets.h"
#include "base/clock.h"
#include "base/settings.h"
#include "cluster/cluster.h"
#include "hub/client.h"
#include "net/conn.h"
#include "net/http.h"
#include "proto/api.h"

/* The runtime's parts (core/lua/runtime/NAME.lua, embedded by CMake as
 * runtime_NAME_lua), in the order they run, each with `core` and the
 * context the parts share; binary.lua is loaded before them. Their chunk
 * names are what the guard knows the runtime's code by (it never stops
 * it): a part is added here, and in CMake's embed list, or not at all. */
#define RUNTIME_PARTS(X) X(helpers) X(jobs) X(sockets) X(api) X(sandbox) X(plugins) X(dispatch)
#define RUNTIME_DECLARE(n) extern const char runtime_##n##_lua[]; \
	extern const size_t runtime_##n##_lua_len;
#define RUNTIME_CHUNK(n) "@core/lua/runtime/" #n ".lua",
#define RUNTIME_TEXT(n) { runtime_##n##_lua, &runtime_##n##_lua_len },
RUNTIME_PARTS(RUNTIME_DECLARE)
extern const char binary_lua[];
extern const size_t binary_lua_len;

static const char *const runtime_sources[] = { RUNTIME_PARTS(RUNTIME_CHUNK) "@core/lua/binary.lua",
					       NULL };
static const struct {
	const char *text;
	const size_t *len;
} runtime_parts[] = { RUNTIME_PARTS(RUNTIME_TEXT) };

/* Scripts are small: a file larger than this is a mistake. */
#define SCRIPT_FILE_MAX (4u << 20)

uint64_t script_usec;
uint64_t script_calls;

static lua_State *L;
static int runtime_ref = LUA_NOREF; /* the runtime's R: what the core calls */

static uint64_t usec_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Pushes runtime[name]. */
static void push_entry(const char *name)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, runtime_ref);
	lua_getfield(L, -1, name);
	lua_remove(L, -2);
}

/* Calls the function under `nargs` arguments, timing it. Returns 0, or
 * PARLEY_ESCRIPT after logging the error (the stack then holds no
 * results). */
static int call_runtime(const char *what, int nargs, int nresults)
{
	uint64_t start = usec_now(), took;
	int rc, stopped;

	guard_enter();
	scratch_begin();
	rc = lua_pcall(L, nargs, nresults, 0);
	scratch_end();
	stopped = guard_leave(L);
	took = usec_now() - start;
	script_usec += took;
	script_calls++;
	/* How long the stopped call ran, against its budget: the guard's own
	 * account of how late it stops (tests/integration/guard.test.js). */
	if (stopped)
		log_warn("guard: a call into Lua (%s) was stopped after %llu ms; the budget is %d ms "
			 "(PARLEY_SCRIPT_TIMEOUT)", what, (unsigned long long)(took / 1000),
			 settings.script_timeout_ms);
	if (rc != 0) {
		log_error("lua: %s: %s", what, lua_tostring(L, -1));
		lua_pop(L, 1);
		return PARLEY_ESCRIPT;
	}
	return 0;
}

/* ---- core.* ---- */

/* log(level, message[, socket id[, user id]]) */
static int l_log(lua_State *S)
{
	int level = log_level_parse(luaL_checkstring(S, 1));
	const char *msg = luaL_checkstring(S, 2);
	const char *sid = luaL_optstring(S, 3, NULL);
	const char *uid = luaL_optstring(S, 4, NULL);

	if (level < 0)
		level = LOG_INFO;
	if ((int)log_threshold >= level)
		log_record((enum log_level)level, NULL, sid, uid, "%s", msg);
	return 0;
}

/* read_file(path) -> contents | nil, err */
static int l_read_file(lua_State *S)
{
	const char *path = luaL_checkstring(S, 1);
	FILE *f = fopen(path, "rb");
	struct stat st;
	char *buf;

	if (!f) {
		lua_pushnil(S);
		lua_pushfstring(S, "%s: %s", path, strerror(errno));
		return 2;
	}
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size > SCRIPT_FILE_MAX) {
		fclose(f);
		lua_pushnil(S);
		lua_pushfstring(S, "%s: not a regular file under 4 MiB", path);
		return 2;
	}
	/* Scratch: the memory budget may refuse the string. */
	buf = scratch_alloc((size_t)st.st_size + 1);
	size_t n = fread(buf, 1, (size_t)st.st_size, f);
	fclose(f);
	lua_pushlstring(S, buf, n);
	scratch_free(buf);
	return 1;
}

/* renew_budget(): the runtime's own work from here on gets a fresh memory
 * budget (guard_renew) */
static int l_renew_budget(lua_State *S)
{
	(void)S;
	guard_renew();
	return 0;
}

/* utf8_valid(s) -> whether s is UTF-8 (what a JSON string may hold) */
static int l_utf8_valid(lua_State *S)
{
	size_t len;
	const char *s = luaL_checklstring(S, 1, &len);

	lua_pushboolean(S, json_utf8_valid(s, len));
	return 1;
}

/* limit(which, message[, level]): counts a tripped limit and logs why, at
 * info unless a level is given (what an operator must act on: "warn") */
static int l_limit(lua_State *S)
{
	const char *which = luaL_checkstring(S, 1);
	const char *msg = luaL_checkstring(S, 2);
	int level = log_level_parse(luaL_optstring(S, 3, "info"));

	metrics_limit(which);
	if (level < 0)
		level = LOG_INFO;
	if ((int)log_threshold >= level)
		log_write((enum log_level)level, "%s", msg);
	return 0;
}

/* From a client event to its ack, the store's commits it waited for
 * included: what the client waits. */
static struct metrics_histogram ack_seconds = {
	.name = "parley_ack_seconds",
	.help = "Time from a client event to its ack (the handler's work and the store "
		"commits it waited for).",
};

/* clock_us() -> microseconds on a monotonic clock */
static int l_clock_us(lua_State *S)
{
	lua_pushnumber(S, (lua_Number)usec_now());
	return 1;
}

/* observe_ack(started): an ack sent, for an event that came at `started`
 * (clock_us) */
static int l_observe_ack(lua_State *S)
{
	lua_Number started = luaL_checknumber(S, 1);
	uint64_t now = usec_now();

	metrics_observe(&ack_seconds, started > 0 && (uint64_t)started <= now ?
				      now - (uint64_t)started : 0);
	return 0;
}

/* now() -> milliseconds since the epoch */
static int l_now(lua_State *S)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	lua_pushnumber(S, (lua_Number)ts.tv_sec * 1000 + (lua_Number)(ts.tv_nsec / 1000000));
	return 1;
}

/* http_respond(request id, status, json) -> true | false (gone) */
static int l_http_respond(lua_State *S)
{
	const char *id = luaL_checkstring(S, 1);
	int status = (int)luaL_checkinteger(S, 2);
	size_t len;
	const char *body = luaL_checklstring(S, 3, &len);

	if (status < 100 || status > 599)
		status = 500;
	lua_pushboolean(S, api_respond(id, status, body, len) == 0);
	return 1;
}

static const luaL_Reg core_functions[] = {
	{ "log", l_log },
	{ "read_file", l_read_file },
	{ "limit", l_limit },
	{ "utf8_valid", l_utf8_valid },
	{ "renew_budget", l_renew_budget },
	{ "now", l_now },
	{ "clock_us", l_clock_us },
	{ "observe_ack", l_observe_ack },
	{ "http_respond", l_http_respond },
	{ NULL, NULL },
};

/* ---- what the host functions' files call back ---- */

/* A script timer came due: R.timer(id). */
static void fire_timer(double id)
{
	push_entry("timer");
	lua_pushnumber(L, id);
	call_runtime("timer", 1, 0);
}

/* Jobs whose writes became durable (or failed): R.resume_all({ticket,
 * err|false, ticket, err|false, ...}). */
static void resume_jobs(const uintptr_t *tickets, const int *errs, size_t n)
{
	push_entry("resume_all");
	lua_createtable(L, (int)(2 * n), 0);
	for (size_t i = 0; i < n; i++) {
		lua_pushnumber(L, (lua_Number)tickets[i]);
		lua_rawseti(L, -2, (int)(2 * i + 1));
		if (errs[i])
			lua_pushstring(L, parley_strerror(errs[i]));
		else
			lua_pushboolean(L, 0);
		lua_rawseti(L, -2, (int)(2 * i + 2));
	}
	call_runtime("resume_all", 1, 0);
}

/* script_resume_with's push, with its context, for push_answer. */
struct answer {
	int (*push)(lua_State *S, void *ctx);
	void *ctx;
};

/* push_answer(answer): the values answer.push pushes. */
static int push_answer(lua_State *S)
{
	struct answer *a = lua_touserdata(S, 1);

	lua_settop(S, 0);
	return a->push(S, a->ctx);
}

/* resume_with(answer, ticket): R.resume(ticket, <the answer's values>), or
 * R.resume(ticket, nil, why) when pushing them raised. In one call into Lua,
 * so that the values are made under the call's memory budget. */
static int resume_with(lua_State *S)
{
	struct answer *a = lua_touserdata(S, 1);
	int base;

	lua_rawgeti(S, LUA_REGISTRYINDEX, runtime_ref);
	lua_getfield(S, -1, "resume");
	lua_remove(S, -2);
	lua_pushvalue(S, 2);
	base = lua_gettop(S);
	lua_pushcfunction(S, push_answer);
	lua_pushlightuserdata(S, a);
	if (lua_pcall(S, 1, LUA_MULTRET, 0) != 0) {
		/* The job still answers its client: give it a budget for that. */
		guard_renew();
		if (!lua_isstring(S, -1)) {
			lua_pop(S, 1);
			lua_pushliteral(S, "the answer could not be read");
		}
		lua_pushnil(S);
		lua_insert(S, -2);
	}
	lua_call(S, lua_gettop(S) - base + 1, 0);
	return 0;
}

void script_resume_with(uintptr_t ticket, int (*push)(lua_State *L, void *ctx), void *ctx)
{
	struct answer a = { push, ctx };

	if (!L)
		return;
	lua_pushcfunction(L, resume_with);
	lua_pushlightuserdata(L, &a);
	lua_pushnumber(L, (lua_Number)ticket);
	call_runtime("resume", 2, 0);
}

/* A script's HTTP request ended: R.resume(ticket, answer | nil, err), the
 * answer made under the call's memory budget (script_resume_with). */
static int push_http(lua_State *S, void *r)
{
	return host_http_push(S, r);
}

static void resume_http(uintptr_t ticket, struct http_reply *r)
{
	script_resume_with(ticket, push_http, r);
}

/* ---- calls in ---- */

static struct metrics_value lua_metrics[] = {
	{ .name = "parley_lua_seconds_total", .help = "Time spent running Lua.", .type = "counter",
	  .usec = &script_usec },
	{ .name = "parley_lua_calls_total", .help = "Calls into Lua.", .type = "counter",
	  .count = &script_calls },
	{ .name = "parley_script_loads_total{result=\"ok\"}",
	  .help = "Loads of the scripts and plugins (the first and each reload): ok took over, "
		  "refused left the running version.",
	  .type = "counter", .count = &script_loads },
	{ .name = "parley_script_loads_total{result=\"refused\"}", .count = &script_loads_refused },
};

/* Recovery across nodes: the socket `fresh_id` the connect hooks accepted
 * is now `cl->id`, a session another node made. */
static void script_adopt(struct client *cl, const char *fresh_id)
{
	push_entry("adopted");
	lua_pushstring(L, cl->id);
	lua_pushstring(L, fresh_id);
	call_runtime("adopted", 2, 0);
}

static const struct client_hooks client_hooks = {
	.on_connect = script_connect,
	.on_connected = script_connected,
	.on_event = script_event,
	.on_ack = script_ack,
	.on_disconnect = script_disconnect,
	.on_resume = script_resume,
	.on_adopt = script_adopt,
};
static const struct api_hooks api_hooks = { .on_request = script_http };

int script_init(void (*on_change)(void))
{
	for (size_t i = 0; i < sizeof(lua_metrics) / sizeof(lua_metrics[0]); i++)
		metrics_register(&lua_metrics[i]);
	metrics_histogram_register(&ack_seconds);
	L = guard_newstate(settings.script_timeout_ms, settings.script_memory,
			   runtime_sources);
	if (!L)
		return -ENOMEM; /* logged: the state, or the guard's timer */
	luaL_openlibs(L);
	/* string.find, match, gmatch and gsub that the guard can stop (also
	 * s:find: strings index this table), before any Lua code runs. */
	lua_getglobal(L, "string");
	pattern_register(L, guard_check);
	lua_pop(L, 1);

	lua_newtable(L);
	luaL_register(L, NULL, core_functions);
	host_sockets_register(L);
	host_timers_register(L, fire_timer);
	if (host_http_register(L, resume_http) < 0)
		return PARLEY_ESCRIPT;
	kv_register(L);
	host_metrics_register(L);
	tickets_register(L);
	store_api_register(L);
	/* On PostgreSQL the store's functions are store_api_pg.c's, with the
	 * same names: nothing above the host functions knows the backend. */
	if (settings.store)
		store_api_pg_register(L, script_resume_with);
	/* Cluster mode: presence questions answered by Redis. */
	host_presence_register(L, script_resume_with);
	cryptolua_register(L);
	jsonlua_open(L);
	lua_setfield(L, -2, "json");
	lua_pushlightuserdata(L, guard_stop_token());
	lua_setfield(L, -2, "stop_token");
	/* Binary values and placeholders (core/lua/binary.lua): JSON and base64. */
	if (luaL_loadbuffer(L, binary_lua, binary_lua_len, "@core/lua/binary.lua") != 0) {
		log_error("lua: %s", lua_tostring(L, -1));
		return PARLEY_ESCRIPT;
	}
	lua_getfield(L, -2, "json");
	lua_getfield(L, -3, "base64");
	if (lua_pcall(L, 2, 1, 0) != 0) {
		log_error("lua: %s", lua_tostring(L, -1));
		return PARLEY_ESCRIPT;
	}
	lua_setfield(L, -2, "binary");
	/* The settings scripts may read (parley.settings). */
	lua_newtable(L);
	if (settings.jwt_secret) {
		lua_pushstring(L, settings.jwt_secret);
		lua_setfield(L, -2, "jwt_secret");
	}
	/* plugins/push's webhook, when set (PARLEY_PUSH_URL, PARLEY_PUSH_SECRET). */
	if (settings.push_url) {
		lua_pushstring(L, settings.push_url);
		lua_setfield(L, -2, "push_url");
	}
	if (settings.push_secret) {
		lua_pushstring(L, settings.push_secret);
		lua_setfield(L, -2, "push_secret");
	}
	lua_pushinteger(L, settings.ping_interval_ms);
	lua_setfield(L, -2, "ping_interval");
	lua_pushinteger(L, settings.ping_timeout_ms);
	lua_setfield(L, -2, "ping_timeout");
	lua_pushnumber(L, (lua_Number)settings.max_payload);
	lua_setfield(L, -2, "max_payload");
	lua_pushinteger(L, settings.max_user_sockets);
	lua_setfield(L, -2, "max_user_sockets");
	lua_pushinteger(L, settings.max_args);
	lua_setfield(L, -2, "max_args");
	lua_pushinteger(L, settings.max_queued_events);
	lua_setfield(L, -2, "max_queued_events");
	lua_pushinteger(L, settings.guard_socket_stops);
	lua_setfield(L, -2, "guard_socket_stops");
	lua_pushinteger(L, settings.guard_handler_stops);
	lua_setfield(L, -2, "guard_handler_stops");
	lua_pushinteger(L, settings.guard_throttle_ms);
	lua_setfield(L, -2, "guard_throttle");
	/* Cluster mode's node id (nil on one node): plugins that share state
	 * through the store record which node holds what. */
	if (cluster_node()) {
		char inc[24];
		lua_pushstring(L, cluster_node());
		lua_setfield(L, -2, "node_id");
		/* This start of the node: what a node_gone hook names as the
		 * start that died (a restart under the same id is a new one). */
		snprintf(inc, sizeof(inc), "%016llx", (unsigned long long)cluster_incarnation());
		lua_pushstring(L, inc);
		lua_setfield(L, -2, "node_start");
	}
	/* Whether the store's reads answer later (PostgreSQL) or at once. */
	lua_pushboolean(L, settings.store != NULL);
	lua_setfield(L, -2, "store_reads_wait");
	lua_setfield(L, -2, "settings");
	/* The parts, in order, on one context table; the last leaves there what
	 * the core calls (R). */
	lua_newtable(L);
	for (size_t i = 0; i < sizeof(runtime_parts) / sizeof(runtime_parts[0]); i++) {
		if (luaL_loadbuffer(L, runtime_parts[i].text, *runtime_parts[i].len,
				    runtime_sources[i]) != 0) {
			log_error("lua: %s", lua_tostring(L, -1));
			return PARLEY_ESCRIPT;
		}
		lua_pushvalue(L, -3);
		lua_pushvalue(L, -3);
		if (call_runtime("runtime", 2, 0) < 0)
			return PARLEY_ESCRIPT;
	}
	lua_getfield(L, -1, "R");
	runtime_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pop(L, 2);
	/* The sockets and the HTTP API report here from now on. */
	client_set_hooks(&client_hooks);
	api_set_hooks(&api_hooks);
	if (settings.store)
		store_api_pg_start();
	else
		kv_start();
	tickets_start(resume_jobs);
	if (settings.watch && on_change)
		watch_init(clock_loop, on_change);

	return script_reload();
}

/* Counted once decided, so that a test (or an operator) can wait for the
 * outcome of a SIGHUP or a file change on /metrics instead of sleeping. */
uint64_t script_loads;
uint64_t script_loads_refused;

int script_reload(void)
{
	struct config *cfg = &settings;

	push_entry("load");
	lua_pushstring(L, cfg->scripts_dir);
	lua_pushstring(L, cfg->plugins ? cfg->plugins : "");
	lua_pushstring(L, cfg->plugin_path);
	if (cfg->config_file)
		lua_pushstring(L, cfg->config_file);
	else
		lua_pushnil(L);
	if (call_runtime("load", 4, 2) < 0) {
		script_loads_refused++;
		return PARLEY_ESCRIPT;
	}
	if (lua_isnil(L, -2)) {
		log_error("scripts not loaded: %s", lua_tostring(L, -1));
		lua_pop(L, 2);
		script_loads_refused++;
		return PARLEY_ESCRIPT;
	}
	lua_pop(L, 2);
	script_loads++;
	if (cfg->watch) {
		/* Watch what was loaded, for the next change. */
		push_entry("files");
		if (call_runtime("files", 0, 1) == 0) {
			size_t n = lua_objlen(L, -1);
			for (size_t i = 1; i <= n; i++) {
				lua_rawgeti(L, -1, (int)i);
				if (lua_isstring(L, -1))
					watch_file(lua_tostring(L, -1));
				lua_pop(L, 1);
			}
			lua_pop(L, 1);
		}
		/* The config file holds the plugin list and plugin_config. */
		if (cfg->config_file)
			watch_file(cfg->config_file);
	}
	return 0;
}

void script_shutdown(void)
{
	if (!L)
		return;
	push_entry("shutdown");
	call_runtime("shutdown", 0, 0);
}

void script_fini(void)
{
	host_timers_fini();
	host_http_fini();
	kv_fini();
	store_api_pg_fini();
	tickets_fini();
	watch_fini();
	client_set_hooks(NULL);
	api_set_hooks(NULL);
	guard_close(L);
	L = NULL;
}


int script_connect(struct client *cl, const char *auth, size_t auth_len,
		   int *code, char *msg, size_t msg_cap)
{
	const struct handshake *hs = &cl->conn->hs;

	/* Kept for the socket's handshake, which scripts may read later. */
	if (auth && auth_len > 2)
		cl->auth = xstrndup(auth, auth_len);
	push_entry("connect");
	lua_pushstring(L, cl->id);
	lua_pushlstring(L, cl->nsp->name, cl->nsp->name_len);
	host_push_query(L, hs);
	if (auth)
		lua_pushlstring(L, auth, auth_len);
	else
		lua_pushnil(L);
	host_push_optstring(L, hs->authorization);
	lua_pushstring(L, hs->addr);
	if (call_runtime("connect", 6, 3) < 0) {
		*code = 500;
		snprintf(msg, msg_cap, "a script failed");
		return PARLEY_EREFUSED;
	}
	if (lua_type(L, -3) == LUA_TSTRING) {
		size_t len;
		const char *user = lua_tolstring(L, -3, &len);
		client_set_user(cl, user, len);
		lua_pop(L, 3);
		return 0;
	}
	*code = lua_isnumber(L, -2) ? (int)lua_tointeger(L, -2) : 401;
	snprintf(msg, msg_cap, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "unauthorized");
	lua_pop(L, 3);
	return PARLEY_EREFUSED;
}

void script_connected(struct client *cl)
{
	push_entry("connected");
	lua_pushstring(L, cl->id);
	call_runtime("connected", 1, 0);
}

void script_resume(struct client *cl, struct client *fresh)
{
	push_entry("recovered");
	lua_pushstring(L, cl->id);
	lua_pushstring(L, fresh->id);
	call_runtime("recovered", 2, 0);
}

void script_presence(const char *nsp, size_t nsp_len, const char *user, size_t user_len,
		     const char *state, int64_t gone_ms)
{
	if (!L)
		return;
	push_entry("presence");
	lua_pushlstring(L, nsp, nsp_len);
	lua_pushlstring(L, user, user_len);
	lua_pushstring(L, state);
	lua_pushnumber(L, (lua_Number)gone_ms);
	call_runtime("presence", 4, 0);
}

void script_node_gone(const char *node, size_t len, const char *inc, size_t inc_len)
{
	if (!L)
		return;
	push_entry("node_gone");
	lua_pushlstring(L, node, len);
	lua_pushlstring(L, inc, inc_len);
	call_runtime("node_gone", 2, 0);
}

void script_disconnect(struct client *cl, const char *reason)
{
	push_entry("disconnect");
	lua_pushstring(L, cl->id);
	lua_pushstring(L, reason);
	call_runtime("disconnect", 2, 0);
}

static void push_attachments(const struct sio_attachment *att, unsigned natt)
{
	if (!natt) {
		lua_pushnil(L);
		return;
	}
	lua_createtable(L, (int)natt, 0);
	for (unsigned i = 0; i < natt; i++) {
		lua_pushlstring(L, (const char *)att[i].data, att[i].len);
		lua_rawseti(L, -2, (int)i + 1);
	}
}

void script_event(struct client *cl, const char *name, size_t name_len,
		  const char *args, size_t args_len,
		  const struct sio_attachment *att, unsigned natt, int64_t ack_id)
{
	int known = 1;
	char id[sizeof(cl->id)];
	uint64_t start = usec_now();

	/* A handler may disconnect the socket: keep its id, not the pointer. */
	memcpy(id, cl->id, sizeof(id));
	push_entry("event");
	lua_pushstring(L, cl->id);
	lua_pushlstring(L, name, name_len);
	/* A JSON array the transport validated (sio_event_split, envelope_parse)
	 * at most 33 levels deep. */
	jsonlua_push_validated(L, args, args_len);
	push_attachments(att, natt);
	if (ack_id >= 0)
		lua_pushnumber(L, (lua_Number)ack_id);
	else
		lua_pushnil(L);
	if (call_runtime("event", 5, 1) == 0) {
		known = lua_toboolean(L, -1);
		lua_pop(L, 1);
	} else {
		/* The runtime itself failed: the client still gets its answer. */
		struct client *still = client_find(id, strlen(id));
		if (still && !still->closing)
			client_error(still, 500, "a script failed", ack_id);
	}
	if (known) {
		metrics_event_in(name, name_len);
		metrics_observe_event(name, name_len, usec_now() - start);
	} else {
		metrics_event_in("_unknown", 8);
		metrics_observe_event("_unknown", 8, usec_now() - start);
	}
}

void script_http(const char *id, const char *method, const char *path,
		 const struct handshake *query, const char *body, size_t body_len)
{
	push_entry("http");
	lua_pushstring(L, id);
	lua_pushstring(L, method);
	lua_pushstring(L, path);
	host_push_query(L, query);
	if (body)
		lua_pushlstring(L, body, body_len);
	else
		lua_pushnil(L);
	if (call_runtime("http", 5, 0) < 0) {
		static const char failed[] =
			"{\"status\":\"error\",\"statusCode\":500,\"message\":\"a script failed\"}";
		api_respond(id, 500, failed, sizeof(failed) - 1);
	}
}

void script_ack(struct client *cl, uint64_t id, const char *args,
		size_t args_len, const struct sio_attachment *att, unsigned natt,
		const char *why)
{
	if (args && client_take_ack(cl, id) < 0)
		return;
	push_entry("ack");
	lua_pushstring(L, cl->id);
	lua_pushnumber(L, (lua_Number)id);
	if (args)
		lua_pushlstring(L, args, args_len);
	else
		lua_pushnil(L);
	push_attachments(att, natt);
	host_push_optstring(L, why);
	call_runtime("ack", 5, 0);
}
