/* host.h - inside the Lua seam: the tables of `core` functions each file of
 * host functions adds, and what they give script.c. They never call into
 * script.c: what they hand up (a timer due, jobs to resume) goes through the
 * callback script.c gives them. Not for use outside core/lua/. */
#ifndef PARLEY_HOST_H
#define PARLEY_HOST_H

#include <stdint.h>

#include <lua.h>

struct handshake;

/* Pushes a handshake's query parameters as a table of strings (those that
 * are UTF-8), and `s` or nil for NULL (host_sockets.c; script.c uses them
 * for the connect and HTTP hooks). */
void host_push_query(lua_State *S, const struct handshake *hs);
void host_push_optstring(lua_State *S, const char *s);

/* Each adds its functions to the table at the top of the stack. */
/* host_sockets.c: emit, broadcast, ack, request, error, join, leave, rooms,
 * in_room, room_size, room_sockets, room_users, disconnect, online_users,
 * throttle, handshake, transport, namespace. */
void host_sockets_register(lua_State *S);
/* host_timers.c: timer(id, ms), cancel(id); a timer that comes due is
 * handed to `on_due` (the seam runs the script's callback); host_timers_fini
 * stops them. */
void host_timers_register(lua_State *S, void (*on_due)(double id));
void host_timers_fini(void);
/* kv.c: kv_get, kv_set, kv_delete, kv_keys; kv_start arms the sweep of
 * expired entries, kv_fini stops it. */
void kv_register(lua_State *S);
void kv_start(void);
void kv_fini(void);
/* host_http.c: http_request(method, url, headers, body, timeout_ms,
 * follow) -> ticket | nil, err, on libcurl's multi interface driven by the
 * loop. A request that ends is handed to `on_done` (the seam resumes the
 * job waiting for `ticket`), which pushes the answer with host_http_push
 * ({status, headers, body}, or nil, err: returns how many values); the
 * reply is host_http.c's, valid during the call. Returns 0, or -1 (logged)
 * when libcurl would not start. host_http_fini ends what is in flight
 * without resuming anyone. */
struct http_reply;
int host_http_register(lua_State *S, void (*on_done)(uintptr_t ticket, struct http_reply *r));
int host_http_push(lua_State *S, const struct http_reply *r);
void host_http_fini(void);
/* host_metrics.c: metric_declare(family, type, help, {series}),
 * metric_add(series, delta), metric_set(series, value): series scripts
 * count on /metrics. */
void host_metrics_register(lua_State *S);
/* store_args.c: what the store's host functions on either backend check
 * alike. A name argument (a conversation, user or message id: 1 to
 * MESSAGES_NAME_MAX bytes without NUL, or a Lua error naming `what`); a
 * string field of the table at `t`, read raw (NULL when absent, a Lua error
 * when it is no string; the table keeps it alive); a status's level (an
 * enum msg_status, or a Lua error). */
const char *store_arg_name(lua_State *L, int idx, const char *what, size_t *len);
const char *store_arg_field(lua_State *L, int t, const char *name, size_t *len);
int store_arg_level(lua_State *L, int idx);
/* Plugin kv's bounds, and the first two arguments of kv_*(ns, key, ...):
 * the namespace (`*nlen` bytes) returned and the key; NULL, with nil and
 * the error pushed, when the key is unusable (empty, too long) or the
 * namespace is (too long, a NUL: the runtime names it, so a bug). */
#define KV_NS_MAX 64
#define KV_KEY_MAX 400
#define KV_VALUE_MAX (1u << 20)
const char *store_kv_args(lua_State *L, size_t *nlen, const char **key, size_t *klen);
/* store_api.c: the message store's store_* functions and iso_time. */
void store_api_register(lua_State *L);
/* store_api_pg.c: the same store_* and kv_* functions, and store_wait, on
 * PostgreSQL (store/pg.h): registered over the LMDB ones when the store is
 * PostgreSQL; each answer resumes its job through `resume_with` (the
 * seam's script_resume_with). store_api_pg_start arms the sweep of expired
 * kv entries (in kv_start's place), store_api_pg_fini stops it. */
void store_api_pg_register(lua_State *L,
			   void (*resume_with)(uintptr_t ticket,
					       int (*push)(lua_State *L, void *ctx), void *ctx));
void store_api_pg_start(void);
/* host_presence.c: cluster mode's presence_room_size, presence_room_users,
 * presence_online_users and presence_expire, and core.presence_cluster
 * (true); nothing outside cluster mode. Answers resume through `resume_with`. */
void host_presence_register(lua_State *L,
			    void (*resume_with)(uintptr_t ticket,
						int (*push)(lua_State *L, void *ctx), void *ctx));
void store_api_pg_fini(void);

#endif
