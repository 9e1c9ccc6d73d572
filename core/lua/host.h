/* host.h - inside the Lua seam: what script.c (the state and the calls into
 * the runtime) gives the files of host functions, and the tables of `core`
 * functions each of them adds. Not for use outside core/lua/. */
#ifndef PARLEY_HOST_H
#define PARLEY_HOST_H

#include <lua.h>

struct handshake;

/* The seam's Lua state (NULL before script_init and after script_fini). */
lua_State *script__state(void);
/* Pushes R[name]: an entry of what the runtime gives the core to call. */
void script__push_entry(const char *name);
/* Calls the entry pushed under `nargs` arguments with the guard's budgets,
 * timed for /metrics. Returns 0, or -1 after logging the error (the stack
 * then holds no results). */
int script__call(const char *what, int nargs, int nresults);
/* Pushes a handshake's query parameters as a table of strings (those that
 * are UTF-8). */
void script__push_query(lua_State *S, const struct handshake *hs);
/* Pushes `s`, or nil for NULL. */
void script__push_optstring(lua_State *S, const char *s);

/* Each adds its functions to the table at the top of the stack. */
/* host_sockets.c: emit, broadcast, ack, request, error, join, leave, rooms,
 * in_room, room_size, room_sockets, room_users, disconnect, online_users,
 * throttle, handshake, transport, namespace. */
void host_sockets_register(lua_State *S);
/* host_timers.c: timer(id, ms), cancel(id); host_timers_fini stops them. */
void host_timers_register(lua_State *S);
void host_timers_fini(void);
/* kv.c: kv_get, kv_set, kv_delete, kv_keys; kv_start arms the sweep of
 * expired entries, kv_fini stops it. */
void kv_register(lua_State *S);
void kv_start(void);
void kv_fini(void);
/* store_api.c: the message store's store_* functions and iso_time. */
void store_api_register(lua_State *L);

#endif
