/* script.h - the Lua seam: one long-lived LuaJIT state running the embedded
 * runtime (the files of core/lua/runtime/), which loads the scripts folder
 * and plugins and dispatches to their hooks. The core calls in here for every connection,
 * event, ack and disconnection; the host API (script.c and the files of
 * lua/host.h) calls back out. */
#ifndef PARLEY_SCRIPT_H
#define PARLEY_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

struct client;
struct conn;
struct sio_attachment;

/* Creates the state, loads the runtime and the scripts; `on_change` (may
 * be NULL) is what a change to a loaded file runs (PARLEY_WATCH). Returns
 * 0; PARLEY_ESCRIPT when the runtime or the scripts did not load (logged
 * with file and line), -ENOMEM when the Lua state or the guard's timer
 * could not be made (logged). script_fini cleans up either way. */
int script_init(void (*on_change)(void));
/* Stops the timers, the watcher and the hooks, and closes the state. */
void script_fini(void);
/* Runs the scripts' shutdown hooks: the server is stopping, every socket
 * is gone, and the store is still open for what they write. A no-op when
 * the scripts never loaded. */
void script_shutdown(void);
/* Loads the scripts and plugins again beside the ones in force and swaps
 * them in only if everything loaded; otherwise the old keep running and the
 * error is logged with its file and line. Returns 0, or PARLEY_ESCRIPT
 * (the old version still runs). */
int script_reload(void);

/* Asks the connect hooks about a new socket (hub's on_connect). `auth` is
 * the CONNECT payload (JSON object) or NULL. On acceptance sets the
 * socket's user and returns 0; on refusal returns PARLEY_EREFUSED with the
 * status code and message filled in (500 "a script failed" when the
 * runtime itself failed, logged). */
int script_connect(struct client *cl, const char *auth, size_t auth_len,
		   int *code, char *msg, size_t msg_cap);
/* Runs the connected hooks, once the client knows it is connected. */
void script_connected(struct client *cl);
/* Runs the disconnect hooks. */
void script_disconnect(struct client *cl, const char *reason);
/* The held socket `cl` is recovered by the client whose CONNECT made
 * `fresh` (hub's on_resume): the runtime forgets `fresh` and marks `cl`'s
 * socket recovered for its connected hooks. */
void script_resume(struct client *cl, struct client *fresh);
/* Dispatches a client event. `args` is the JSON array of the arguments after
 * the name (possibly "[]"); `ack_id` is -1 when none was asked for. */
void script_event(struct client *cl, const char *name, size_t name_len,
		  const char *args, size_t args_len,
		  const struct sio_attachment *att, unsigned natt, int64_t ack_id);
/* Delivers the client's answer to a server ack request (`args` NULL on a
 * timeout or disconnection, with `why` saying which). An answer to an ack
 * that is not pending is dropped. */
void script_ack(struct client *cl, uint64_t id, const char *args,
		size_t args_len, const struct sio_attachment *att, unsigned natt,
		const char *why);

/* Hands an HTTP API request to the Lua routes; the answer comes through
 * api_respond under `id`, now or later. `body` is NULL when there is none. */
struct handshake;
void script_http(const char *id, const char *method, const char *path,
		 const struct handshake *query, const char *body, size_t body_len);

/* A host function that answers later returned core.PENDING and a ticket
 * (tickets_pending); its answer has come: resumes the job waiting for
 * `ticket` with the values `push` pushes (it returns how many: the values
 * the function would have returned at once, in the same order), as
 * R.resume(ticket, ...). `push` runs in protected mode under the call's
 * memory budget: should it raise (no memory left), the job is resumed with
 * nil and the error's message instead, never left waiting. A ticket nobody
 * waits for (its job is gone) is dropped. */
struct lua_State;
/* Cluster mode: what the cluster decided of a user (cluster/presence.h's
 * presence_change_fn), for the scripts' presence hooks. */
void script_presence(const char *nsp, size_t nsp_len, const char *user, size_t user_len,
		     const char *state, int64_t gone_ms);
/* Cluster mode: another node died (cluster/presence.h's presence_gone_fn),
 * for the scripts' node_gone hooks. */
void script_node_gone(const char *node, size_t len, const char *inc, size_t inc_len);

void script_resume_with(uintptr_t ticket, int (*push)(struct lua_State *L, void *ctx), void *ctx);

/* Microseconds spent in Lua, and calls made, since start (for /metrics). */
extern uint64_t script_usec;
extern uint64_t script_calls;
/* Loads of the scripts (the first, and each reload) that took over, and
 * those refused (the running version stayed). */
extern uint64_t script_loads;
extern uint64_t script_loads_refused;

#endif
