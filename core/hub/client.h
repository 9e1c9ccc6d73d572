/* client.h - sockets: one per namespace connection (or plain WebSocket),
 * with their user, rooms and pending acks; the namespaces they connect to;
 * and the emits that reach them, each encoded at most once per wire format
 * however many sockets get it. A socket lives on a connection (net/conn.h):
 * what it sends goes out through conn_send. Errors are negative codes
 * (base/error.h). Sockets are hub's: client_new makes them, client_free
 * ends them, and nothing else frees one. */
#ifndef PARLEY_CLIENT_H
#define PARLEY_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/frame.h"
#include "base/map.h"
#include "hub/room.h"
#include "wire/sio.h"

struct ack_wait;
struct client;
struct conn;
struct recovery;

/* How sockets report to the layer that decides what they may do (the Lua
 * seam sets these at start: client_set_hooks). Hub calls the last two
 * itself; the protocols reach the rest through client_connect,
 * client_connected, client_event and client_answer below. */
struct client_hooks {
	/* May the new socket `cl` connect? `auth` is its CONNECT payload (a
	 * JSON object, valid during the call) or NULL. 0 to accept (having set
	 * its user), or PARLEY_EREFUSED with a status code in `*code` and a
	 * message in `msg` (`msg_cap` bytes, NUL-terminated). */
	int (*on_connect)(struct client *cl, const char *auth, size_t auth_len, int *code,
			  char *msg, size_t msg_cap);
	/* The client knows it is connected. */
	void (*on_connected)(struct client *cl);
	/* An event from the client: `args` is the JSON array of its arguments
	 * after the name ("[]" for none); `ack_id` is -1 when none was asked.
	 * What it is given is valid during the call; the hook may free `cl`
	 * (client_free). */
	void (*on_event)(struct client *cl, const char *name, size_t name_len, const char *args,
			 size_t args_len, const struct sio_attachment *att, unsigned natt,
			 int64_t ack_id);
	/* The answer to the server's request `id` (`args`, a JSON array, valid
	 * during the call), or none: `args` NULL and `why` "timeout" or
	 * "disconnected". */
	void (*on_ack)(struct client *cl, uint64_t id, const char *args, size_t args_len,
		       const struct sio_attachment *att, unsigned natt, const char *why);
	/* A connected socket (one with a user) is going, for `reason`. */
	void (*on_disconnect)(struct client *cl, const char *reason);
	/* Connection state recovery: the held socket `cl` is taking over from
	 * `fresh`, the socket the client's CONNECT just made (accepted, with
	 * the same user), which goes without its disconnect hooks. The
	 * connected hook follows for `cl`. */
	void (*on_resume)(struct client *cl, struct client *fresh);
	/* Connection state recovery across nodes: `cl`, accepted, takes the
	 * id of a session another node made (it had `fresh_id` until now).
	 * The connected hook follows for it, recovered. */
	void (*on_adopt)(struct client *cl, const char *fresh_id);
};

/* Sets the hooks (NULL: none; `h` must outlive them). Without a hook, a
 * connect is refused (500), and events and answers are dropped. */
void client_set_hooks(const struct client_hooks *h);

/* What a socket's frames look like on the wire, chosen by its protocol. */
enum client_format {
	CLIENT_SIO,   /* Socket.IO packets (in Engine.IO messages) */
	/* {"event": NAME, "data": ..., "ack": N} ("args": [...] for several);
	 * the socket is its connection */
	CLIENT_PLAIN,
	CLIENT_SIO_MSGPACK, /* Socket.IO packets as socket.io-msgpack-parser's binary messages */
};

struct client {
	char id[24];
	struct conn *conn;
	struct nsp *nsp;
	struct room_set rooms;
	char *user_id;
	char *auth; /* the CONNECT payload (JSON), or NULL when empty */
	struct client *next; /* in conn->clients */
	uint64_t next_ack;
	struct ack_wait *acks;
	int closing; /* client_free has begun: hooks must not free it again */
	enum client_format format;
	/* Connection state recovery (hub/recovery.h): its pid and log, or NULL
	 * (a plain socket, or PARLEY_RECOVERY_WINDOW 0). While the socket is
	 * held, `conn` is NULL: what is sent to it is only logged. */
	struct recovery *rec;
	/* The offset of the newest event sent (or, held, due) to it: kept
	 * here, on memory each delivery touches anyway, so that recovery
	 * costs a delivery one store (the server's log has the event). */
	uint64_t sent_offset;
	int64_t connected_at; /* ms since the epoch when the socket was made (the admin API) */
};

struct emit;

/* What cluster mode follows of the sockets: their rooms (cluster/presence.c
 * counts the members over the nodes) and the recoverable ones
 * (cluster/sessions.c: connection state recovery across nodes). Any member
 * may be NULL; outside cluster mode no watch is added, so one node pays
 * nothing for them. */
struct client_watch {
	/* An accepted socket (one with a user) joined a room (`joined` 1) or
	 * left it (0), its own user's room included, and for each of its rooms
	 * as it goes. Must not join or leave rooms. */
	void (*member)(const struct client *cl, const char *room, size_t len, int joined);
	/* The emit `e` went into the recovery log (first delivered to `cl`,
	 * its target still set). */
	void (*logged)(struct client *cl, const struct emit *e);
	/* The user or the rooms of a recoverable socket changed. */
	void (*changed)(struct client *cl);
	/* A recoverable socket with a user is being freed. */
	void (*gone)(struct client *cl);
	/* Is `pid` a session of another node's? Then the claim is started for
	 * `cl` (accepted) and 1 returned: `answer(cl)` (the CONNECT answer)
	 * runs when it is settled, the socket recovered or not, then the
	 * connected hook. 0: not another node's. */
	int (*claim)(struct client *cl, const char *pid, size_t pid_len, int has_offset,
		     uint64_t offset, void (*answer)(struct client *cl));
};
/* Adds a watch (at most CLIENT_WATCHES_MAX; `w` must outlive it, or be
 * removed first); each is told in the order added. */
#define CLIENT_WATCHES_MAX 4
void client_add_watch(const struct client_watch *w);
/* Removes a watch added before; a no-op for one that is not. */
void client_remove_watch(const struct client_watch *w);
/* The claim of a pid another node made, when cluster mode knows it (the
 * first watch with a claim): 1 pending, 0 not another node's. */
int client_recover_elsewhere(struct client *cl, const char *pid, size_t pid_len,
			     int has_offset, uint64_t offset, void (*answer)(struct client *cl));
/* `cl` takes the socket id `sid` (a session recovered from another node),
 * when no socket here has it: 0, or -EEXIST (it keeps its own). The
 * scripts are told (on_adopt). */
int client_adopt(struct client *cl, const char *sid);

/* A payload to send: one event and its arguments (or an ack's arguments:
 * client_ack), encoded once per wire format and shared by every recipient. */
struct emit {
	const char *name;
	size_t name_len;
	/* JSON of the arguments, comma-separated without brackets ("1,\"a\""),
	 * or NULL for none */
	const char *args;
	size_t args_len;
	unsigned nargs;   /* the values in `args` */
	char *args_owned; /* `args` when it was encoded for this emit: freed with it */
	/* The same arguments for plain sockets when they differ (binaries as
	 * base64 rather than placeholders), or NULL */
	const char *plain_args;
	size_t plain_len;
	struct frame **att; /* binary attachments for Socket.IO */
	unsigned natt;
	struct frame *sio[1]; /* encoded lazily; [0] for the namespace */
	struct frame *plain;
	struct nsp *nsp;
	struct frame *msgpack; /* for msgpack sockets, encoded lazily ... */
	struct nsp *msgpack_nsp; /* ... for this namespace */
	uint64_t offset; /* its recovery offset, once encoded for Socket.IO (0: none) */
	/* Where a broadcast goes (set by client_broadcast and the like for
	 * recovery's log, valid while it walks; NULL: client_emit's one
	 * socket), whether to every socket of the namespace, and whether the
	 * log has it already. */
	const struct room_target *target;
	unsigned to_all : 1;
	unsigned logged : 1;
};

/* Makes the maps of sockets and namespaces. */
void client_init(void);
/* Frees the namespaces; every socket must be gone. */
void client_fini(void);

/* A new socket of namespace `n` on `c` (hung on c->clients), with a fresh
 * id, speaking `format`. Never NULL. */
struct client *client_new(struct conn *c, struct nsp *n, enum client_format format);
/* Disconnects and frees the socket: the disconnect hook (for a socket with
 * a user), rooms, pending acks (their hooks told "disconnected"). A plain
 * socket's connection closes with it (`reason` not NULL), unless a close
 * is arranged already. `cl` is gone when this returns (a call from its own
 * disconnect hook does nothing: the first call frees it). */
void client_free(struct client *cl, const char *reason);
/* Disconnects every socket on `c` (its connection is closing). */
void client_free_all(struct conn *c, const char *reason);
/* The transport of `c` dropped for `reason`: its Socket.IO sockets that
 * can be recovered are held (off the connection, still in their rooms),
 * the others freed as by client_free_all. */
void client_hold_all(struct conn *c, const char *reason);
/* Recovery of the socket `pid` for the socket `cl` just accepted (see
 * recovery_claim): when it is granted, the held socket replaces `cl` (freed,
 * without hooks) on its connection; `cl` otherwise. Returns the socket the
 * client now has. */
struct client *client_recover(struct client *cl, const char *pid, size_t pid_len,
			      int has_offset, uint64_t offset);
/* Queues the events a socket client_recover gave back missed: after its
 * CONNECT answer, before anything else. */
void client_replay(struct client *cl);
/* What a protocol reports of a socket, handed to the hooks: may it
 * connect (on_connect's contract; PARLEY_EREFUSED with 500 without a hook);
 * it knows it is connected; an event from it; its answer to the server's
 * request `id` (dropped unless pending). */
int client_connect(struct client *cl, const char *auth, size_t auth_len, int *code,
		   char *msg, size_t msg_cap);
void client_connected(struct client *cl);
void client_event(struct client *cl, const char *name, size_t name_len, const char *args,
		  size_t args_len, const struct sio_attachment *att, unsigned natt,
		  int64_t ack_id);
void client_answer(struct client *cl, uint64_t id, const char *args, size_t args_len,
		   const struct sio_attachment *att, unsigned natt);

/* The socket with this id, or NULL. */
struct client *client_find(const char *id, size_t len);
/* The room sets of the sockets of this node among the `n` ids `ids` (of
 * `lens` bytes), into `out` (the caller's, `n` entries): a broadcast's
 * excepted sockets (struct room_target's except_sets). Returns how many
 * were found; an id of no socket here is left out. */
size_t client_room_sets(const char *const *ids, const size_t *lens, size_t n,
			struct room_set **out);
/* Every socket, by id (struct client values): to walk, not to change. */
const struct map *client_all(void);
/* Connected sockets (those the connect hooks accepted). */
uint64_t client_count(void);
/* Sets the user (copied) and joins the room "user:{id}". */
void client_set_user(struct client *cl, const char *user_id, size_t len);
/* Joins or leaves the room `name` (room_join, room_leave: 0, -EEXIST,
 * -ENOENT), minding recovery: a replay gives a socket a room's events from
 * while it was in it only. */
int client_join(struct client *cl, const char *name, size_t len);
int client_leave(struct client *cl, const char *name, size_t len);
/* Sends `e` to the socket, encoding it for the socket's format the first
 * time (the frames stay in `e`, shared, until emit_fini). */
void client_emit(struct client *cl, struct emit *e);
/* Sends `e` to every socket of `t`'s rooms in `n` but the excepted ones
 * (with `to_all`, to every socket of `n` with a user but the excepted
 * ones). Returns how many sockets it reached. */
size_t client_broadcast(struct nsp *n, const struct room_target *t, struct emit *e,
			int to_all);
/* The Socket.IO packet `pkt` (text, `len` bytes, no Engine.IO type before
 * it) and its `natt` attachments `att` as one socket.io-msgpack-parser
 * frame: a new binary frame the caller owns, or NULL (logged) when the
 * packet cannot be encoded - a packet the server made is always valid, so
 * that is a bug. */
struct frame *client_msgpack_frame(const char *pkt, size_t len, struct frame **att,
				   unsigned natt);
/* Releases the frames an emit encoded; the rest of `e` (its arguments,
 * args_owned included) is the caller's to free. */
void emit_fini(struct emit *e);
/* Answers the client's ack `id` with the arguments of `e` (and their
 * attachments; the caller keeps its references and `e`, whose name is
 * unused). */
void client_ack(struct client *cl, int64_t id, const struct emit *e);
/* Removes a pending server-to-client ack: 0, or -ENOENT when it was not
 * pending. */
int client_take_ack(struct client *cl, uint64_t id);
/* Emits with an ack request; the answer or the timeout goes to the on_ack
 * hook. Returns the ack id (a value, not an error: it cannot fail). */
uint64_t client_request(struct client *cl, struct emit *e, int timeout_ms);
/* Sends the Socket.IO `error` event or plain error frame, and answers the
 * client's ack `ack_id` with it too when it is not negative. `message` is
 * copied (at most 1 KB of it). */
void client_error(struct client *cl, int status, const char *message, int64_t ack_id);

/* The namespace `name`, or NULL when no script declared it. */
struct nsp *nsp_lookup(const char *name, size_t len);
/* Every namespace, by name (struct nsp values): to walk, not to change. */
const struct map *client_namespaces(void);
/* Declares the namespace `name` (copied; a no-op when it exists).
 * Namespaces last until client_fini: sockets and lookups keep pointers to
 * them. */
void nsp_add(const char *name, size_t len);

#endif
