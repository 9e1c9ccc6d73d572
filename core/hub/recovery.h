/* recovery.h - connection state recovery (socket.io >= 4.6): each Socket.IO
 * socket has a private id (pid), and every event sent without an ack has
 * an offset, one per emit server-wide, that the client sees as its last
 * argument. The server keeps ONE log of those emits, each with where it
 * went (its namespace, rooms and exceptions, or its one socket), as
 * Socket.IO's SessionAwareAdapter does: a broadcast to a room of ten is one
 * entry, and a delivery writes nothing but the socket's newest offset. A
 * socket whose transport drops is held for PARLEY_RECOVERY_WINDOW, still in
 * its rooms. A client that comes back with its pid and the offset of the
 * last event it took gets the socket back with what it missed - the log's
 * entries after that offset that went to it, judged by the rooms it was in
 * at each entry's time - or, when the log lost one of them, nothing: a new
 * session. The log is bounded server-wide (PARLEY_RECOVERY_MAX_EVENTS,
 * PARLEY_RECOVERY_MAX_BYTES) and by the window. Part of hub: client.c owns
 * the sockets and calls in here; what ends a held socket goes back through
 * the callback given to recovery_init. */
#ifndef PARLEY_RECOVERY_H
#define PARLEY_RECOVERY_H

#include <stddef.h>
#include <stdint.h>

#include "base/frame.h"

/* The longest pid: 20 random characters, and in cluster mode the
 * incarnation of the node that made it (16 hex digits). */
#define RECOVERY_PID_MAX 36

/* A room the socket left: it was in it for the events of offsets in
 * (since, until]. */
struct left_room {
	uint64_t since, until;
	size_t len;
	char name[];
};

struct client;
struct conn;
struct nsp;
struct recovery;
struct room_target;

/* Registers the metrics; `on_end(cl, reason)` is called (from a timer, on
 * the loop) when a held socket's window passes or the log lost an event it
 * missed: the socket is to be freed, with its disconnect hooks, for
 * `reason`. `msgpack(pkt, len, att, natt)` makes a msgpack socket's frame
 * of a logged text packet and its attachments at replay (NULL: it could
 * not, and logged why): client.c's encoder, which stays client.c's. */
void recovery_init(void (*on_end)(struct client *cl, const char *reason),
		   struct frame *(*msgpack)(const char *pkt, size_t len, struct frame **att,
					    unsigned natt));
/* Frees the log and the map of pids; every socket must be gone. */
void recovery_fini(void);

/* Recovery for the socket `cl`: a fresh pid (found by recovery_claim once
 * the socket is held). Never NULL. */
struct recovery *recovery_new(struct client *cl);
/* Forgets the pid and what the socket left. NULL is a no-op. */
void recovery_free(struct recovery *r);
/* The pid (20 url-safe characters and the suffix, NUL-terminated). */
const char *recovery_pid(const struct recovery *r);

/* ---- for cluster mode (cluster/sessions.c) ---- */

/* Every pid made from now on ends with `suffix` (copied; at most 16
 * characters), which tells the other nodes whose it is. */
void recovery_set_pid_suffix(const char *suffix);
/* The socket of `r` takes the pid `pid` (`len` bytes, at most
 * RECOVERY_PID_MAX): a session another node made, recovered here. */
void recovery_set_pid(struct recovery *r, const char *pid, size_t len);
/* The last offset issued when `r` was made, and the offset before which it
 * forgot the rooms it left (`*left_floor`). */
uint64_t recovery_born(const struct recovery *r, uint64_t *left_floor);
/* The rooms the socket of `r` left that a replay may still need (`*n`),
 * oldest first; valid until it next leaves one. */
const struct left_room *const *recovery_left_rooms(const struct recovery *r, uint32_t *n);
/* 1 when the socket of `pid` is held here, else 0. */
int recovery_holds(const char *pid, size_t len);
/* Ends the held socket of `pid` for `reason`: another node recovered it.
 * 0, or -ENOENT when no socket of that pid is held here. */
int recovery_drop(const char *pid, size_t len, const char *reason);

/* The offset of a new event: every emit to Socket.IO sockets has its own,
 * increasing over the server's life, and all its recipients see the same
 * one (the frame is encoded once). */
uint64_t recovery_next_offset(void);
/* The last offset issued (0: none yet): a room joined now is stamped with
 * it (room_join), and the events after it are the room's for the socket. */
uint64_t recovery_last_offset(void);

/* Logs the emit of `offset` in namespace `n`: `text` is its Socket.IO
 * packet (a text frame, with the offset) and `att` its `natt` attachments
 * (the log takes references to each); it went to the rooms and past the
 * exceptions of `t` (every socket of `n` when `to_all`, `t`'s exceptions
 * still), or, `t` NULL, to the socket `sid` alone. What it names is
 * copied. The oldest entries go to keep the bounds. */
void recovery_log(struct nsp *n, uint64_t offset, struct frame *text, struct frame **att,
		  unsigned natt, const struct room_target *t, int to_all, const char *sid);
/* An event was logged for the held socket of `r` (client_emit): when the
 * log has already lost one the socket may have missed, the socket ends
 * (on_end, after this call: a broadcast may be walking its rooms). */
void recovery_missed(struct recovery *r);
/* The socket of `r` left the room `name`, which it had joined with
 * `stamp`: remembered (the last few), so that a replay still gives it the
 * room's events from while it was in, and none from after. */
void recovery_left(struct recovery *r, const char *name, size_t len, uint64_t stamp);

/* The socket's transport dropped for `reason` (copied): it is held until
 * the window passes. */
void recovery_hold(struct recovery *r, const char *reason);
/* 1 while the socket is held. */
int recovery_is_held(const struct recovery *r);

/* The held socket that `cl`, just accepted by the connect hooks, may take
 * over: the one `pid` names, of the same namespace, parser and user, when
 * the log holds every event after `offset` that went to it (without an
 * offset, `has_offset` 0: every event since it was made). It is then held
 * no more, and remembers where its replay starts. NULL otherwise, counted
 * and logged by why: a pid never issued (or past its window), another
 * user's (left alone), or an offset the socket was never sent or that the
 * log moved past (that session is ended: nobody can recover it any
 * more). */
struct client *recovery_claim(struct client *cl, const char *pid, size_t pid_len,
			      int has_offset, uint64_t offset);
/* Queues on `c`, in their order, the events the claimed socket missed. */
void recovery_replay(struct recovery *r, struct conn *c);

/* Every held socket ends, for `reason` (the server is going). */
void recovery_end_all(const char *reason);

#endif
