/* host_sockets.c - the host functions on sockets, rooms and namespaces
 * (core.emit, broadcast, ack, request, join, leave, rooms, disconnect,
 * handshake, ...): what the runtime's Socket and parley.to build on. Uses
 * hub/ (clients, rooms), net/ (a connection's throttle and close). */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/metrics.h"
#include "lua/host.h"
#include "lua/jsonlua.h"
#include "base/scratch.h"
#include "base/settings.h"
#include "cluster/cluster.h"
#include "hub/client.h"
#include "net/conn.h"
#include "wire/json.h"
#include "wire/sio.h"

/* The socket named by the id at `idx`, or NULL when it is gone or going. */
static struct client *check_client(lua_State *S, int idx)
{
	size_t len;
	const char *id = luaL_checklstring(S, idx, &len);
	struct client *cl = client_find(id, len);

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

/* Fills an emit's arguments from (att, plain, ...) at `idx`..the top, as
 * core/lua/binary.lua's encode_args gives them: the attachments (nil:
 * none), the JSON array plain sockets get instead (nil: the same), then
 * the arguments, encoded here (jsonlua_args). It raises for a bad argument
 * or a value with no JSON form, so it comes after everything else that may
 * raise; and nothing that raises may come after it (the frames it makes
 * would be lost). */
static void read_args(lua_State *S, int idx, struct emit *e)
{
	e->plain_args = luaL_optlstring(S, idx + 1, NULL, &e->plain_len);
	if (e->plain_args && e->plain_len >= 2) {
		/* The list without its brackets, as the arguments are. */
		e->plain_args++;
		e->plain_len -= 2;
	}
	check_attachments(S, idx);
	/* Scratch memory (scratch.h): safe from a raise. */
	e->args = jsonlua_args(S, idx + 2, &e->args_len, &e->nargs, &e->args_owned);
	e->natt = read_attachments(S, idx, &e->att);
}

/* Fills an emit from (event, att, plain, ...) at `idx`, as read_args. */
static void read_emit(lua_State *S, int idx, struct emit *e)
{
	memset(e, 0, sizeof(*e));
	e->name = luaL_checklstring(S, idx, &e->name_len);
	read_args(S, idx + 1, e);
}

static void release_emit(struct emit *e)
{
	emit_fini(e);
	free_attachments(e->att, e->natt);
	scratch_free(e->args_owned);
}

static int l_namespace(lua_State *S)
{
	size_t len;
	const char *name = luaL_checklstring(S, 1, &len);

	/* Made once, kept until the server ends (nsp_lookup keeps pointers). */
	nsp_add(name, len);
	return 0;
}

/* emit(sid, event, att, plain, ...) -> true | false */
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

/* broadcast(nsp, rooms|nil, except_sids|sid|nil, except_rooms|nil, event,
 *           att, plain, ...) -> count (the arguments as for emit, request
 *           and ack: read_args) */
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
	t.nexcept_sets = client_room_sets(sids.v, sids.lens, sids.n,
					  except_sets);
	t.except_sets = except_sets;
	count = client_broadcast(n, &t, &e, lua_isnoneornil(S, 2));
	/* Cluster mode: the other nodes' sockets too (the count stays this
	 * node's). A socket's own emit never goes there: it is this node's. */
	struct relay_list except_sids = { sids.v, sids.lens, sids.n };
	cluster_publish(n, lua_isnoneornil(S, 2), &t, &except_sids, &e);
	release_emit(&e);
	strings_free(&rooms);
	strings_free(&sids);
	strings_free(&except_rooms);
	if (except_sets != short_sets)
		free(except_sets);
	lua_pushinteger(S, (lua_Integer)count);
	return 1;
}

/* ack(sid, id, att, plain, ...) */
static int l_ack(lua_State *S)
{
	struct client *cl = check_client(S, 1);
	int64_t id = (int64_t)luaL_checknumber(S, 2);
	struct emit e;

	memset(&e, 0, sizeof(e));
	read_args(S, 3, &e);
	if (cl)
		client_ack(cl, id, &e);
	release_emit(&e);
	return 0;
}

/* request(sid, event, timeout_ms, att, plain, ...) -> id | nil */
static int l_request(lua_State *S)
{
	struct client *cl = check_client(S, 1);
	int timeout = (int)luaL_optinteger(S, 3, 5000);
	struct emit e;

	memset(&e, 0, sizeof(e));
	e.name = luaL_checklstring(S, 2, &e.name_len);
	read_args(S, 4, &e);
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
	if (join && cl->rooms.count >= (uint32_t)settings.max_rooms &&
	    !room_has(cl->nsp, &cl->rooms, room, len)) {
		metrics_limit("max_rooms");
		log_info("%s (%s): in %u rooms already (PARLEY_MAX_ROOMS): join refused", cl->id,
			 cl->user_id ? cl->user_id : "?", cl->rooms.count);
		lua_pushnil(S);
		lua_pushliteral(S, "too many rooms");
		return 2;
	}
	if (join)
		client_join(cl, room, len);
	lua_pushboolean(S, join || client_leave(cl, room, len) == 0);
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

	if (cl && cl->conn && ms > 0) /* a held socket reads nothing */
		conn_throttle(cl->conn, (int)(ms > 60000 ? 60000 : ms));
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
	map_iter_init(&it, client_all());
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
	if (!c) {
		/* Held for a recovery: nothing to tell, nobody to come back. */
		client_free(cl, "server namespace disconnect");
		return 0;
	}
	if (cl->format == CLIENT_PLAIN) {
		conn_close_after_flush(c, 1000, "server disconnect");
		client_free(cl, "server disconnect");
		return 0;
	}
	/* One DISCONNECT packet of the socket's namespace. */
	struct frame *f = frame_new(NULL, 1 + SIO_HEADER_MAX(cl->nsp->name_len), 0);
	char *p = (char *)frame_data(f);
	p[0] = '4';
	f->len = (uint32_t)(1 + sio_write_header(p + 1, SIO_DISCONNECT, 0, cl->nsp->name,
						  cl->nsp->name_len, -1));
	if (cl->format == CLIENT_SIO_MSGPACK) {
		struct frame *m = client_msgpack_frame(p + 1, f->len - 1, NULL, 0);
		frame_unref(f);
		f = m;
	}
	if (f)
		conn_send(c, f);
	client_free(cl, "server namespace disconnect");
	return 0;
}

/* handshake(sid) -> query, auth json|nil, authorization|nil, address
 * (nothing for a socket held for a recovery: its connection is gone) */
static int l_handshake(lua_State *S)
{
	struct client *cl = check_client(S, 1);

	if (!cl || !cl->conn)
		return 0;
	host_push_query(S, &cl->conn->hs);
	if (cl->auth)
		lua_pushstring(S, cl->auth);
	else
		lua_pushnil(S);
	host_push_optstring(S, cl->conn->hs.authorization);
	lua_pushstring(S, cl->conn->hs.addr);
	return 4;
}

/* transport(sid) -> "websocket" | "polling" | "plain" | nil (nil too while
 * it is held for a recovery) */
static int l_transport(lua_State *S)
{
	struct client *cl = check_client(S, 1);

	if (!cl || !cl->conn)
		return 0;
	lua_pushstring(S, cl->format == CLIENT_PLAIN ? "plain" :
		       cl->conn->transport == TRANSPORT_POLLING ? "polling" : "websocket");
	return 1;
}

/* address(sid) -> the peer's address | nil */
static int l_address(lua_State *S)
{
	struct client *cl = check_client(S, 1);

	if (!cl)
		return 0;
	lua_pushstring(S, cl->conn->hs.addr);
	return 1;
}

/* connected_at(sid) -> ms since the epoch when the socket connected | nil */
static int l_connected_at(lua_State *S)
{
	struct client *cl = check_client(S, 1);

	if (!cl)
		return 0;
	lua_pushnumber(S, (lua_Number)cl->connected_at);
	return 1;
}

/* A parameter whose name or value is not UTF-8 is left out: scripts take
 * names and ids from here, and text that no JSON can carry would fail every
 * event that echoes it (a userId=%FF is then no userId at all: 401). */
void host_push_query(lua_State *S, const struct handshake *hs)
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

void host_push_optstring(lua_State *S, const char *s)
{
	if (s)
		lua_pushstring(S, s);
	else
		lua_pushnil(S);
}

static const luaL_Reg functions[] = {
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
	{ "handshake", l_handshake },
	{ "transport", l_transport },
	{ "connected_at", l_connected_at },
	{ "address", l_address },
	{ NULL, NULL },
};

void host_sockets_register(lua_State *S)
{
	luaL_register(S, NULL, functions);
}
