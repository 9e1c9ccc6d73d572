/* script.c - the C half of the Lua seam: the LuaJIT state, the calls into
 * the embedded runtime (core/lua/runtime.lua) for connections, events, acks and
 * timers, and the `core` table of host functions the runtime builds on. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "base/alloc.h"
#include "wire/base64.h"
#include "lua/cryptolua.h"
#include "lua/guard.h"
#include "net/http.h"
#include "lua/jsonlua.h"
#include "base/log.h"
#include "store/messages.h"
#include "base/metrics.h"
#include "lua/pattern.h"
#include "lua/scratch.h"
#include "lua/script.h"
#include "server.h"
#include "store/store.h"
#include "base/watch.h"

extern const char runtime_lua[];
extern const size_t runtime_lua_len;
extern const char binary_lua[];
extern const size_t binary_lua_len;
/* The runtime's chunks: the guard never stops them. */
static const char *const runtime_sources[] = { "@core/lua/runtime.lua", "@core/lua/binary.lua", NULL };

/* Scripts are small: a file larger than this is a mistake. */
#define SCRIPT_FILE_MAX (4u << 20)
/* A plugin's key-value keys (after its name) and values. */
#define KV_KEY_MAX 400
#define KV_VALUE_MAX (1u << 20)
/* How often expired key-value entries are swept, and how many are looked
 * at per sweep. */
#define KV_SWEEP_MS 30000
#define KV_SWEEP_BATCH 2000

uint64_t script_usec;
uint64_t script_calls;

static lua_State *L;
static int runtime_ref = LUA_NOREF; /* the table runtime.lua returned */
static struct map timers;           /* timer id -> struct script_timer */

struct script_timer {
	ev_timer timer;
	lua_Number id;
	char key[24];
};

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

/* Calls the function under `nargs` arguments, timing it. Returns 0, or -1
 * after logging the error (the stack then holds no results). */
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
			 srv.cfg->script_timeout_ms);
	if (rc != 0) {
		log_error("lua: %s: %s", what, lua_tostring(L, -1));
		lua_pop(L, 1);
		return -1;
	}
	return 0;
}

/* The socket named by the id at `idx`, or NULL when it is gone or going. */
static struct client *check_client(lua_State *S, int idx)
{
	size_t len;
	const char *id = luaL_checklstring(S, idx, &len);
	struct client *cl = map_get(&srv.clients, id, len);

	return cl && !cl->closing ? cl : NULL;
}

/* Reads the optional attachments table at `idx` (checked by the caller:
 * nil or a table) into new frames. Nothing here raises: an attachment that
 * is not a string is empty (converting a number would allocate, and so
 * could raise, with the frames made so far held). */
static unsigned read_attachments(lua_State *S, int idx, struct frame ***out)
{
	unsigned n;

	*out = NULL;
	if (lua_isnoneornil(S, idx))
		return 0;
	n = (unsigned)lua_objlen(S, idx);
	if (!n)
		return 0;
	*out = xcalloc(n, sizeof(**out));
	for (unsigned i = 0; i < n; i++) {
		size_t len = 0;
		const char *p = "";
		lua_rawgeti(S, idx, (int)i + 1);
		if (lua_type(S, -1) == LUA_TSTRING)
			p = lua_tolstring(S, -1, &len);
		(*out)[i] = frame_new(p, len, 1);
		lua_pop(S, 1);
	}
	return n;
}

static void check_attachments(lua_State *S, int idx)
{
	if (!lua_isnoneornil(S, idx))
		luaL_checktype(S, idx, LUA_TTABLE);
}

static void free_attachments(struct frame **att, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		frame_unref(att[i]);
	free(att);
}

/* Fills an emit from (event, json, att, plain) at `idx`..idx+3; a json that
 * is not text is encoded here (jsonlua_payload). It raises for a bad
 * argument or a value with no JSON form, so it comes after everything else
 * that may raise; and nothing that raises may come after it (the frames
 * it makes would be lost). */
static void read_emit(lua_State *S, int idx, struct emit *e)
{
	memset(e, 0, sizeof(*e));
	e->name = luaL_checklstring(S, idx, &e->name_len);
	e->plain_data = luaL_optlstring(S, idx + 3, NULL, &e->plain_len);
	check_attachments(S, idx + 2);
	/* Scratch memory (scratch.h): safe from a raise. */
	e->data = jsonlua_payload(S, idx + 1, &e->data_len, &e->data_owned);
	e->natt = read_attachments(S, idx + 2, &e->att);
}

static void release_emit(struct emit *e)
{
	emit_fini(e);
	free_attachments(e->att, e->natt);
	scratch_free(e->data_owned);
}

/* ---- core.* ---- */

static int l_log(lua_State *S)
{
	int level = log_level_parse(luaL_checkstring(S, 1));
	const char *msg = luaL_checkstring(S, 2);

	if (level < 0)
		level = LOG_INFO;
	if ((int)log_threshold >= level)
		log_write((enum log_level)level, "%s", msg);
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

static int l_namespace(lua_State *S)
{
	size_t len;
	const char *name = luaL_checklstring(S, 1, &len);

	/* Made once, kept until the server ends (nsp_lookup keeps pointers). */
	if (!map_get(&srv.nsps, name, len))
		map_put(&srv.nsps, name, len, nsp_new(name, len));
	return 0;
}

/* emit(sid, event, json, att, plain) -> true | false */
static int l_emit(lua_State *S)
{
	struct client *cl = check_client(S, 1);
	struct emit e;

	read_emit(S, 2, &e);
	if (!cl) {
		release_emit(&e);
		lua_pushboolean(S, 0);
		return 1;
	}
	client_emit(cl, &e);
	metrics_event_out(e.name, e.name_len, 1);
	release_emit(&e);
	lua_pushboolean(S, 1);
	return 1;
}

/* The strings of a Lua list, for one call: a broadcast names a room or two,
 * so a short list needs no allocation. */
#define SHORT_LIST 8

struct strings {
	const char **v;
	size_t *lens;
	size_t n;
	const char *short_v[SHORT_LIST];
	size_t short_lens[SHORT_LIST];
};

/* Reads the strings of the list at `idx` (none for nil, one for a string)
 * into `s`; the strings stay referenced during the call. An entry that is
 * not a string is "" (one converted here would be referenced by nothing,
 * and collected). The arrays are scratch memory: a later raise strands
 * nothing. */
static void read_strings(lua_State *S, int idx, struct strings *s)
{
	s->v = s->short_v;
	s->lens = s->short_lens;
	s->n = 0;
	if (lua_isnoneornil(S, idx))
		return;
	if (lua_type(S, idx) == LUA_TSTRING) {
		s->v[0] = lua_tolstring(S, idx, &s->lens[0]);
		s->n = 1;
		return;
	}
	luaL_checktype(S, idx, LUA_TTABLE);
	s->n = lua_objlen(S, idx);
	if (s->n > SHORT_LIST) {
		s->v = scratch_alloc(s->n * sizeof(*s->v));
		s->lens = scratch_alloc(s->n * sizeof(*s->lens));
	}
	for (size_t i = 0; i < s->n; i++) {
		s->v[i] = "", s->lens[i] = 0;
		lua_rawgeti(S, idx, (int)i + 1);
		if (lua_type(S, -1) == LUA_TSTRING)
			s->v[i] = lua_tolstring(S, -1, &s->lens[i]);
		lua_pop(S, 1);
	}
}

static void strings_free(struct strings *s)
{
	if (s->v != s->short_v) {
		scratch_free(s->v);
		scratch_free(s->lens);
	}
}

/* Every socket of a namespace: for broadcasts that name no room. */
static size_t broadcast_all(struct nsp *n, const struct room_target *t, struct emit *e)
{
	uint64_t epoch = room_mark_except(n, t);
	struct map_iter it;
	struct map_entry *ent;
	size_t count = 0;

	map_iter_init(&it, &srv.clients);
	while ((ent = map_next(&it))) {
		struct client *cl = ent->value;
		if (cl->nsp != n || !cl->user_id || cl->rooms.mark == epoch)
			continue;
		client_emit(cl, e);
		count++;
	}
	if (count)
		metrics_event_out(e->name, e->name_len, count);
	return count;
}

/* broadcast(nsp, rooms|nil, except_sids|sid|nil, except_rooms|nil, event, json,
 *           att, plain) -> count (json: the text, a raw value or a table, as
 *           for emit, request and ack) */
static int l_broadcast(lua_State *S)
{
	size_t nlen;
	const char *nsp_name = luaL_checklstring(S, 1, &nlen);
	struct nsp *n = nsp_lookup(nsp_name, nlen);
	struct room_target t;
	struct strings rooms, sids, except_rooms;
	struct room_set *short_sets[SHORT_LIST], **except_sets = short_sets;
	struct emit e;
	size_t count;

	if (!n)
		return luaL_error(S, "unknown namespace %s", nsp_name);
	read_strings(S, 2, &rooms);
	read_strings(S, 3, &sids);
	read_strings(S, 4, &except_rooms);
	read_emit(S, 5, &e);
	memset(&t, 0, sizeof(t));
	t.rooms = rooms.v;
	t.room_lens = rooms.lens;
	t.nrooms = rooms.n;
	t.except_rooms = except_rooms.v;
	t.except_lens = except_rooms.lens;
	t.nexcept_rooms = except_rooms.n;
	if (sids.n > SHORT_LIST)
		except_sets = xcalloc(sids.n, sizeof(*except_sets));
	for (size_t i = 0; i < sids.n; i++) {
		struct client *cl = map_get(&srv.clients, sids.v[i], sids.lens[i]);
		if (cl)
			except_sets[t.nexcept_sets++] = &cl->rooms;
	}
	t.except_sets = except_sets;
	if (lua_isnoneornil(S, 2))
		count = broadcast_all(n, &t, &e);
	else
		count = client_broadcast(n, &t, &e);
	release_emit(&e);
	strings_free(&rooms);
	strings_free(&sids);
	strings_free(&except_rooms);
	if (except_sets != short_sets)
		free(except_sets);
	lua_pushinteger(S, (lua_Integer)count);
	return 1;
}

/* ack(sid, id, json|table|nil, att) */
static int l_ack(lua_State *S)
{
	struct client *cl = check_client(S, 1);
	int64_t id = (int64_t)luaL_checknumber(S, 2);
	size_t len = 0;
	char *owned;
	const char *json;
	struct frame **att;
	unsigned natt;

	check_attachments(S, 4);
	json = jsonlua_payload(S, 3, &len, &owned);
	if (!cl) {
		scratch_free(owned);
		return 0;
	}
	natt = read_attachments(S, 4, &att);
	client_ack(cl, id, json, len, att, natt);
	free_attachments(att, natt);
	scratch_free(owned);
	return 0;
}

/* request(sid, event, json, att, plain, timeout_ms) -> id | nil */
static int l_request(lua_State *S)
{
	struct client *cl = check_client(S, 1);
	int timeout = (int)luaL_optinteger(S, 6, 5000);
	struct emit e;

	read_emit(S, 2, &e);
	if (!cl) {
		release_emit(&e);
		lua_pushnil(S);
		return 1;
	}
	if (timeout < 1)
		timeout = 1;
	uint64_t id = client_request(cl, &e, timeout);
	metrics_event_out(e.name, e.name_len, 1);
	release_emit(&e);
	lua_pushnumber(S, (lua_Number)id);
	return 1;
}

/* error(sid, status, message, ack|nil) */
static int l_error(lua_State *S)
{
	struct client *cl = check_client(S, 1);
	int status = (int)luaL_checkinteger(S, 2);
	const char *msg = luaL_optstring(S, 3, "error");
	int64_t ack = lua_isnoneornil(S, 4) ? -1 : (int64_t)luaL_checknumber(S, 4);

	if (cl)
		client_error(cl, status, msg, ack);
	return 0;
}

/* join(sid, room) / leave(sid, room) -> true (false: was not in it) | nil, err */
static int join_or_leave(lua_State *S, int join)
{
	struct client *cl = check_client(S, 1);
	size_t len;
	const char *room = luaL_checklstring(S, 2, &len);

	if (!cl) {
		lua_pushnil(S);
		lua_pushliteral(S, "socket is gone");
		return 2;
	}
	if (join && cl->rooms.count >= (uint32_t)srv.cfg->max_rooms &&
	    !room_has(cl->nsp, &cl->rooms, room, len)) {
		metrics_limit("max_rooms");
		log_info("%s (%s): in %u rooms already (PARLEY_MAX_ROOMS): join refused", cl->id,
			 cl->user_id ? cl->user_id : "?", cl->rooms.count);
		lua_pushnil(S);
		lua_pushliteral(S, "too many rooms");
		return 2;
	}
	if (join)
		room_join(cl->nsp, &cl->rooms, room, len);
	lua_pushboolean(S, join || room_leave(cl->nsp, &cl->rooms, room, len) == 0);
	return 1;
}

static int l_join(lua_State *S)
{
	return join_or_leave(S, 1);
}

static int l_leave(lua_State *S)
{
	return join_or_leave(S, 0);
}

static int l_rooms(lua_State *S)
{
	struct client *cl = check_client(S, 1);

	lua_newtable(S);
	jsonlua_mark_array(S);
	for (uint32_t i = 0; cl && i < cl->rooms.count; i++) {
		struct room *r = cl->rooms.v[i].room;
		lua_pushlstring(S, r->name, r->name_len);
		lua_rawseti(S, -2, (int)i + 1);
	}
	return 1;
}

/* in_room(sid, room) -> whether the socket is in the room */
static int l_in_room(lua_State *S)
{
	struct client *cl = check_client(S, 1);
	size_t len;
	const char *room = luaL_checklstring(S, 2, &len);

	lua_pushboolean(S, cl && room_has(cl->nsp, &cl->rooms, room, len));
	return 1;
}

static struct room *check_room(lua_State *S)
{
	size_t nlen, rlen;
	const char *nsp = luaL_checklstring(S, 1, &nlen);
	const char *room = luaL_checklstring(S, 2, &rlen);
	struct nsp *n = nsp_lookup(nsp, nlen);

	return n ? room_find(n, room, rlen) : NULL;
}

static int l_room_size(lua_State *S)
{
	struct room *r = check_room(S);

	lua_pushinteger(S, r ? (lua_Integer)r->count : 0);
	return 1;
}

static int l_room_sockets(lua_State *S)
{
	struct room *r = check_room(S);

	lua_newtable(S);
	jsonlua_mark_array(S);
	for (uint32_t i = 0; r && i < r->count; i++) {
		struct client *cl = r->members[i].set->owner;
		lua_pushstring(S, cl->id);
		lua_rawseti(S, -2, (int)i + 1);
	}
	return 1;
}

/* room_users(nsp, room) -> the distinct user ids of the room's sockets (as
 * they connected), an array. A room's users are few: the first
 * ROOM_USERS_SHORT are told apart by comparing with each other; past them a
 * Lua table serves as the set. */
#define ROOM_USERS_SHORT 16
static int l_room_users(lua_State *S)
{
	struct room *r = check_room(S);
	const char *first[ROOM_USERS_SHORT];
	int count = 0, set = 0, list;

	lua_newtable(S);
	jsonlua_mark_array(S);
	list = lua_gettop(S);
	for (uint32_t i = 0; r && i < r->count; i++) {
		struct client *cl = r->members[i].set->owner;
		const char *u = cl->user_id;
		int seen = 0;
		if (!u)
			continue;
		for (int j = 0; j < count && j < ROOM_USERS_SHORT && !seen; j++)
			seen = strcmp(first[j], u) == 0;
		if (!seen && set) {
			lua_getfield(S, set, u);
			seen = lua_toboolean(S, -1);
			lua_pop(S, 1);
		}
		if (seen)
			continue;
		if (count < ROOM_USERS_SHORT) {
			first[count] = u;
		} else {
			if (!set) {
				lua_newtable(S);
				set = lua_gettop(S);
			}
			lua_pushboolean(S, 1);
			lua_setfield(S, set, u);
		}
		lua_pushstring(S, u);
		lua_rawseti(S, list, ++count);
	}
	lua_settop(S, list);
	return 1;
}

/* throttle(sid, ms): stop reading from the socket's connection for a while */
static int l_throttle(lua_State *S)
{
	struct client *cl = check_client(S, 1);
	lua_Integer ms = luaL_checkinteger(S, 2);

	if (cl && ms > 0)
		conn_throttle(cl->conn, (int)(ms > 60000 ? 60000 : ms));
	return 0;
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

/* limit(which, message): counts a tripped limit and logs why */
static int l_limit(lua_State *S)
{
	const char *which = luaL_checkstring(S, 1);
	const char *msg = luaL_checkstring(S, 2);

	metrics_limit(which);
	log_info("%s", msg);
	return 0;
}

/* online_users(nsp) -> { user ids with a socket in the namespace } */
static int l_online_users(lua_State *S)
{
	size_t nlen;
	const char *name = luaL_checklstring(S, 1, &nlen);
	struct nsp *n = nsp_lookup(name, nlen);
	struct map_iter it;
	struct map_entry *e;
	int count = 0;

	lua_newtable(S); /* the set of users seen */
	lua_newtable(S);
	jsonlua_mark_array(S);
	map_iter_init(&it, &srv.clients);
	while (n && (e = map_next(&it))) {
		struct client *cl = e->value;
		if (cl->nsp != n || !cl->user_id || cl->closing)
			continue;
		lua_getfield(S, -2, cl->user_id);
		int seen = lua_toboolean(S, -1);
		lua_pop(S, 1);
		if (seen)
			continue;
		lua_pushboolean(S, 1);
		lua_setfield(S, -3, cl->user_id);
		lua_pushstring(S, cl->user_id);
		lua_rawseti(S, -2, ++count);
	}
	return 1;
}

/* disconnect(sid): the server ends the socket (and a plain connection). */
static int l_disconnect(lua_State *S)
{
	struct client *cl = check_client(S, 1);
	struct conn *c;

	if (!cl)
		return 0;
	c = cl->conn;
	if (c->kind == CONN_PLAIN) {
		conn_close_after_flush(c, 1000, "server disconnect");
		client_free(cl, "server disconnect");
		return 0;
	}
	/* One packet: "41" + "/nsp," (nothing after "41" for "/"). */
	if (cl->nsp->name_len > 1) {
		struct frame *f = frame_new(NULL, 2 + cl->nsp->name_len + 1, 0);
		memcpy(frame_data(f), "41", 2);
		memcpy(frame_data(f) + 2, cl->nsp->name, cl->nsp->name_len);
		frame_data(f)[2 + cl->nsp->name_len] = ',';
		conn_send(c, f);
	} else {
		conn_send(c, frame_new("41", 2, 0));
	}
	client_free(cl, "server namespace disconnect");
	return 0;
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct script_timer *t = lws_container_of(w, struct script_timer, timer);
	lua_Number id = t->id;

	(void)loop;
	(void)revents;
	map_del(&timers, t->key, strlen(t->key));
	free(t);
	push_entry("timer");
	lua_pushnumber(L, id);
	call_runtime("timer", 1, 0);
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

/* now() -> milliseconds since the epoch */
static int l_now(lua_State *S)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	lua_pushnumber(S, (lua_Number)ts.tv_sec * 1000 + (lua_Number)(ts.tv_nsec / 1000000));
	return 1;
}

/* ---- plugin key-value storage (in the store's "kv" database) ---- */

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_u64(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Builds "namespace \0 key" into `out`; returns its length, or 0 (with an
 * error message pushed) when the key is unusable. */
static size_t kv_key(lua_State *S, char *out)
{
	size_t nlen, klen;
	const char *ns = luaL_checklstring(S, 1, &nlen);
	const char *key = luaL_checklstring(S, 2, &klen);

	if (klen == 0 || klen > KV_KEY_MAX || nlen > 64) {
		lua_pushnil(S);
		lua_pushfstring(S, "keys are 1 to %d bytes", KV_KEY_MAX);
		return 0;
	}
	memcpy(out, ns, nlen);
	out[nlen] = '\0';
	memcpy(out + nlen + 1, key, klen);
	return nlen + 1 + klen;
}

/* kv_get(ns, key) -> value json, expiry ms (0: none) | nil */
static int l_kv_get(lua_State *S)
{
	char key[64 + 1 + KV_KEY_MAX];
	size_t klen = kv_key(S, key), vlen;
	const void *val;
	int rc;

	if (!klen)
		return 2;
	rc = store_get(STORE_KV, key, klen, &val, &vlen);
	if (rc < 0) {
		lua_pushnil(S);
		lua_pushstring(S, store_strerror(-rc));
		return 2;
	}
	if (rc == 0 || vlen < 8)
		return 0;
	uint64_t expiry = get_u64(val);
	if (expiry && (int64_t)expiry <= wall_ms())
		return 0;
	lua_pushlstring(S, (const char *)val + 8, vlen - 8);
	lua_pushnumber(S, (lua_Number)expiry);
	return 2;
}

/* kv_set(ns, key, json, expiry ms or 0) -> true | nil, err */
static int l_kv_set(lua_State *S)
{
	char key[64 + 1 + KV_KEY_MAX];
	size_t klen = kv_key(S, key), vlen;
	const char *v = luaL_checklstring(S, 3, &vlen);
	lua_Number expiry = luaL_optnumber(S, 4, 0);

	if (!klen)
		return 2;
	if (vlen > KV_VALUE_MAX) {
		lua_pushnil(S);
		lua_pushliteral(S, "values are at most 1 MiB");
		return 2;
	}
	unsigned char *buf = xmalloc(8 + vlen);
	put_u64(buf, expiry > 0 ? (uint64_t)expiry : 0);
	memcpy(buf + 8, v, vlen);
	struct store_batch *b = store_batch_new();
	store_put(b, STORE_KV, key, klen, buf, 8 + vlen);
	store_submit(b, NULL, NULL);
	free(buf);
	lua_pushboolean(S, 1);
	return 1;
}

/* kv_delete(ns, key) -> true | nil, err */
static int l_kv_delete(lua_State *S)
{
	char key[64 + 1 + KV_KEY_MAX];
	size_t klen = kv_key(S, key);

	if (!klen)
		return 2;
	struct store_batch *b = store_batch_new();
	store_del(b, STORE_KV, key, klen);
	store_submit(b, NULL, NULL);
	lua_pushboolean(S, 1);
	return 1;
}

/* The keys a scan found, gathered in scratch memory and pushed once the
 * scan is over: a push may raise (the memory budget), and must not unwind
 * through the store's cursor. Each key is its length (a size_t) then its
 * bytes. */
struct kv_keys {
	char *buf;
	size_t len, cap;
	size_t skip; /* the namespace and its NUL */
	int64_t now;
};

static int collect_key(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct kv_keys *c = arg;
	size_t n = kl - c->skip;

	if (vl >= 8) {
		uint64_t expiry = get_u64(v);
		if (expiry && (int64_t)expiry <= c->now)
			return 0;
	}
	if (c->len + sizeof(n) + n > c->cap) {
		c->cap = (c->len + sizeof(n) + n) * 2;
		c->buf = scratch_realloc(c->buf, c->cap);
	}
	memcpy(c->buf + c->len, &n, sizeof(n));
	memcpy(c->buf + c->len + sizeof(n), (const char *)k + c->skip, n);
	c->len += sizeof(n) + n;
	return 0;
}

/* kv_keys(ns, prefix, limit) -> { keys } (committed ones, in order) */
static int l_kv_keys(lua_State *S)
{
	size_t nlen, plen;
	const char *ns = luaL_checklstring(S, 1, &nlen);
	const char *prefix = luaL_optlstring(S, 2, "", &plen);
	lua_Integer limit = luaL_optinteger(S, 3, 1000);
	char key[64 + 1 + KV_KEY_MAX];
	struct kv_keys c = { NULL, 0, 0, nlen + 1, wall_ms() };
	int count = 0;

	if (nlen > 64 || plen > KV_KEY_MAX)
		return luaL_error(S, "kv: prefix too long");
	memcpy(key, ns, nlen);
	key[nlen] = '\0';
	memcpy(key + nlen + 1, prefix, plen);
	store_scan(STORE_KV, key, nlen + 1 + plen, NULL, 0, limit < 1 ? 1 : limit, collect_key,
		   &c);
	lua_newtable(S);
	jsonlua_mark_array(S);
	for (size_t at = 0; at < c.len;) {
		size_t n;
		memcpy(&n, c.buf + at, sizeof(n));
		lua_pushlstring(S, c.buf + at + sizeof(n), n);
		lua_rawseti(S, -2, ++count);
		at += sizeof(n) + n;
	}
	scratch_free(c.buf);
	return 1;
}

/* ---- waiting for durability ---- */

/* Jobs to resume, gathered over a round of store completions and resumed
 * by one call into Lua (script_resume_durable). */
static struct {
	uintptr_t *tickets;
	int *errs;
	size_t n, cap;
} durable;

void script_durable(void *arg, int err)
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

/* Resumes every job whose writes became durable: R.resume_all({ticket,
 * err|false, ticket, err|false, ...}). */
static void resume_durable(void)
{
	if (!durable.n || !L)
		return;
	push_entry("resume_all");
	lua_createtable(L, (int)(2 * durable.n), 0);
	for (size_t i = 0; i < durable.n; i++) {
		lua_pushnumber(L, (lua_Number)durable.tickets[i]);
		lua_rawseti(L, -2, (int)(2 * i + 1));
		if (durable.errs[i])
			lua_pushstring(L, store_strerror(durable.errs[i]));
		else
			lua_pushboolean(L, 0);
		lua_rawseti(L, -2, (int)(2 * i + 2));
	}
	durable.n = 0;
	call_runtime("resume_all", 1, 0);
}

/* store_wait() -> ticket: the runtime resumes the waiting job with it once
 * everything written so far is committed and synced. */
uintptr_t script_new_ticket(void)
{
	static uintptr_t next_ticket;

	return ++next_ticket;
}

static int l_store_wait(lua_State *S)
{
	uintptr_t ticket = script_new_ticket();

	store_submit(store_batch_new(), script_durable, (void *)ticket);
	lua_pushnumber(S, (lua_Number)ticket);
	return 1;
}

/* Deletes expired key-value entries, a slice of the database at a time. */
static char sweep_from[64 + 1 + KV_KEY_MAX];
static size_t sweep_from_len;
static ev_timer sweep_timer;

struct sweep {
	struct store_batch *b;
	int64_t now;
	int expired;
};

static int sweep_one(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	struct sweep *w = arg;

	if (vl >= 8) {
		uint64_t expiry = get_u64(v);
		if (expiry && (int64_t)expiry <= w->now) {
			store_del(w->b, STORE_KV, k, kl);
			w->expired++;
		}
	}
	if (kl <= sizeof(sweep_from)) {
		memcpy(sweep_from, k, kl);
		sweep_from_len = kl;
	}
	return 0;
}

static void on_sweep(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct sweep w = { store_batch_new(), wall_ms(), 0 };
	long n;

	(void)loop;
	(void)revents;
	n = store_scan(STORE_KV, "", 0, sweep_from_len ? sweep_from : NULL, sweep_from_len,
		       KV_SWEEP_BATCH, sweep_one, &w);
	if (n < KV_SWEEP_BATCH)
		sweep_from_len = 0; /* the end: the next sweep starts over */
	if (w.expired)
		store_submit(w.b, NULL, NULL);
	else
		store_batch_free(w.b);
	timer_start(t, on_sweep, KV_SWEEP_MS);
}

/* Pushes the handshake query as a table of strings. A parameter whose name
 * or value is not UTF-8 is left out: scripts take names and ids from here,
 * and text that no JSON can carry would fail every event that echoes it
 * (a userId=%FF is then no userId at all: 401). */
static void push_query(lua_State *S, const struct handshake *hs)
{
	const char *p = hs->query;

	lua_createtable(S, 0, hs->nquery);
	for (int i = 0; i < hs->nquery; i++) {
		size_t klen = strlen(p);
		const char *v = p + klen + 1;
		size_t vlen = strlen(v);
		if (json_utf8_valid(p, klen) && json_utf8_valid(v, vlen)) {
			lua_pushlstring(S, p, klen);
			lua_pushlstring(S, v, vlen);
			lua_rawset(S, -3);
		}
		p = v + vlen + 1;
	}
}

static void push_optstring(lua_State *S, const char *s)
{
	if (s)
		lua_pushstring(S, s);
	else
		lua_pushnil(S);
}

/* handshake(sid) -> query, auth json|nil, authorization|nil, address */
static int l_handshake(lua_State *S)
{
	struct client *cl = check_client(S, 1);

	if (!cl)
		return 0;
	push_query(S, &cl->conn->hs);
	if (cl->auth)
		lua_pushstring(S, cl->auth);
	else
		lua_pushnil(S);
	push_optstring(S, cl->conn->hs.authorization);
	lua_pushstring(S, cl->conn->hs.addr);
	return 4;
}

/* transport(sid) -> "websocket" | "polling" | "plain" | nil */
static int l_transport(lua_State *S)
{
	struct client *cl = check_client(S, 1);

	if (!cl)
		return 0;
	lua_pushstring(S, cl->conn->kind == CONN_PLAIN ? "plain" :
		       cl->conn->transport == TRANSPORT_POLLING ? "polling" : "websocket");
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
	{ "namespace", l_namespace },
	{ "emit", l_emit },
	{ "broadcast", l_broadcast },
	{ "ack", l_ack },
	{ "request", l_request },
	{ "error", l_error },
	{ "join", l_join },
	{ "leave", l_leave },
	{ "rooms", l_rooms },
	{ "in_room", l_in_room },
	{ "room_size", l_room_size },
	{ "room_sockets", l_room_sockets },
	{ "room_users", l_room_users },
	{ "disconnect", l_disconnect },
	{ "online_users", l_online_users },
	{ "throttle", l_throttle },
	{ "limit", l_limit },
	{ "utf8_valid", l_utf8_valid },
	{ "renew_budget", l_renew_budget },
	{ "timer", l_timer },
	{ "cancel", l_cancel },
	{ "now", l_now },
	{ "kv_get", l_kv_get },
	{ "kv_set", l_kv_set },
	{ "kv_delete", l_kv_delete },
	{ "kv_keys", l_kv_keys },
	{ "store_wait", l_store_wait },
	{ "http_respond", l_http_respond },
	{ "handshake", l_handshake },
	{ "transport", l_transport },
	{ NULL, NULL },
};

/* ---- calls in ---- */

int script_init(void)
{
	map_init(&timers);
	L = guard_newstate(srv.cfg->script_timeout_ms, srv.cfg->script_memory,
			   runtime_sources);
	if (!L)
		return -1;
	luaL_openlibs(L);
	/* string.find, match, gmatch and gsub that the guard can stop (also
	 * s:find: strings index this table), before any Lua code runs. */
	lua_getglobal(L, "string");
	pattern_register(L, guard_check);
	lua_pop(L, 1);

	if (luaL_loadbuffer(L, runtime_lua, runtime_lua_len, "@core/lua/runtime.lua") != 0) {
		log_error("lua: %s", lua_tostring(L, -1));
		return -1;
	}
	lua_newtable(L);
	luaL_register(L, NULL, core_functions);
	messages_register(L);
	cryptolua_register(L);
	jsonlua_open(L);
	lua_setfield(L, -2, "json");
	lua_pushlightuserdata(L, guard_stop_token());
	lua_setfield(L, -2, "stop_token");
	/* Binary values and placeholders (core/lua/binary.lua): JSON and base64. */
	if (luaL_loadbuffer(L, binary_lua, binary_lua_len, "@core/lua/binary.lua") != 0) {
		log_error("lua: %s", lua_tostring(L, -1));
		return -1;
	}
	lua_getfield(L, -2, "json");
	lua_getfield(L, -3, "base64");
	if (lua_pcall(L, 2, 1, 0) != 0) {
		log_error("lua: %s", lua_tostring(L, -1));
		return -1;
	}
	lua_setfield(L, -2, "binary");
	/* The settings scripts may read (parley.settings). */
	lua_newtable(L);
	if (srv.cfg->jwt_secret) {
		lua_pushstring(L, srv.cfg->jwt_secret);
		lua_setfield(L, -2, "jwt_secret");
	}
	lua_pushinteger(L, srv.cfg->ping_interval_ms);
	lua_setfield(L, -2, "ping_interval");
	lua_pushinteger(L, srv.cfg->ping_timeout_ms);
	lua_setfield(L, -2, "ping_timeout");
	lua_pushnumber(L, (lua_Number)srv.cfg->max_payload);
	lua_setfield(L, -2, "max_payload");
	lua_pushinteger(L, srv.cfg->max_user_sockets);
	lua_setfield(L, -2, "max_user_sockets");
	lua_setfield(L, -2, "settings");
	if (call_runtime("runtime", 1, 1) < 0)
		return -1;
	runtime_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	timer_start(&sweep_timer, on_sweep, KV_SWEEP_MS);
	store_on_completions(resume_durable);
	if (srv.cfg->watch)
		watch_init(srv.loop);

	return script_reload();
}

/* Counted once decided, so that a test (or an operator) can wait for the
 * outcome of a SIGHUP or a file change on /metrics instead of sleeping. */
uint64_t script_loads;
uint64_t script_loads_refused;

int script_reload(void)
{
	struct config *cfg = srv.cfg;

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
		return -1;
	}
	if (lua_isnil(L, -2)) {
		log_error("scripts not loaded: %s", lua_tostring(L, -1));
		lua_pop(L, 2);
		script_loads_refused++;
		return -1;
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
	struct map_iter it;
	struct map_entry *e;

	map_iter_init(&it, &timers);
	while ((e = map_next(&it))) {
		struct script_timer *t = e->value;
		timer_stop(&t->timer);
		free(t);
	}
	map_fini(&timers);
	timer_stop(&sweep_timer);
	store_on_completions(NULL);
	free(durable.tickets);
	free(durable.errs);
	memset(&durable, 0, sizeof(durable));
	watch_fini();
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
	push_query(L, hs);
	if (auth)
		lua_pushlstring(L, auth, auth_len);
	else
		lua_pushnil(L);
	push_optstring(L, hs->authorization);
	lua_pushstring(L, hs->addr);
	if (call_runtime("connect", 6, 3) < 0) {
		*code = 500;
		snprintf(msg, msg_cap, "a script failed");
		return -1;
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
	return -1;
}

void script_connected(struct client *cl)
{
	push_entry("connected");
	lua_pushstring(L, cl->id);
	call_runtime("connected", 1, 0);
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
		struct client *still = map_get(&srv.clients, id, strlen(id));
		if (still && !still->closing)
			client_error(still, 500, "a script failed", ack_id);
	}
	if (known)
		metrics_event_in(name, name_len);
	else
		metrics_event_in("_unknown", 8);
}

void script_http(const char *id, const char *method, const char *path,
		 const struct handshake *query, const char *body, size_t body_len)
{
	push_entry("http");
	lua_pushstring(L, id);
	lua_pushstring(L, method);
	lua_pushstring(L, path);
	push_query(L, query);
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
	push_optstring(L, why);
	call_runtime("ack", 5, 0);
}
