/* recovery.h - connection state recovery (socket.io >= 4.6): each Socket.IO
 * socket has a private id (pid) and a log of the last events sent to it,
 * each event marked with an offset that the client sees as its last
 * argument. A socket whose transport drops is held for
 * PARLEY_RECOVERY_WINDOW: still in its rooms, its events logged, not sent.
 * A client that comes back with its pid and the offset of the last event it
 * took gets the socket back with what it missed, or, when the log cannot
 * give all of it, nothing: a new session. The log is bounded per socket
 * (PARLEY_RECOVERY_MAX_EVENTS, PARLEY_RECOVERY_MAX_BYTES). Frames are
 * shared references (base/frame.h): a log costs a slot per event, not a
 * copy. Part of hub: client.c owns the sockets and calls in here; what
 * ends a held socket goes back through the callback given to
 * recovery_init. */
#ifndef PARLEY_RECOVERY_H
#define PARLEY_RECOVERY_H

#include <stddef.h>
#include <stdint.h>

#include "base/frame.h"

struct client;
struct conn;
struct recovery;

/* Registers the metrics; `on_end(cl, reason)` is called (from a timer, on
 * the loop) when a held socket's window passes or its log overflows: the
 * socket is to be freed, with its disconnect hooks, for `reason`. */
void recovery_init(void (*on_end)(struct client *cl, const char *reason));
/* Frees the map of pids; every socket must be gone. */
void recovery_fini(void);

/* Recovery for the socket `cl`: a fresh pid (found by recovery_claim once
 * the socket is held) and an empty log. Never NULL. */
struct recovery *recovery_new(struct client *cl);
/* Forgets the pid and drops the log. NULL is a no-op. */
void recovery_free(struct recovery *r);
/* The pid (20 url-safe characters, NUL-terminated). */
const char *recovery_pid(const struct recovery *r);

/* The offset of a new event: every event a Socket.IO socket gets has its
 * own, increasing over the server's life, and all its recipients see the
 * same one (the frame is encoded once). */
uint64_t recovery_next_offset(void);
/* Logs a frame sent (or, held, due) to the socket: an event with its
 * `offset`, or with 0 an attachment of the event logged before it. The log
 * takes a reference. The oldest events go to make room; a held socket
 * that would lose one it never got is ended (on_end, after this call). */
void recovery_log(struct recovery *r, struct frame *f, uint64_t offset);

/* The socket's transport dropped for `reason` (copied): it is held until
 * the window passes. */
void recovery_hold(struct recovery *r, const char *reason);
/* 1 while the socket is held. */
int recovery_is_held(const struct recovery *r);

/* The held socket that `cl`, just accepted by the connect hooks, may take
 * over: the one `pid` names, of the same namespace and user, whose log holds
 * every event after `offset` (without an offset, `has_offset` 0: every event
 * it was ever sent). It is then held no more, and remembers where its
 * replay starts. NULL otherwise, counted and logged by why: a pid never
 * issued (or past its window), another user's (left alone), or a log that
 * lost events (that session is ended: nobody can recover it any more). */
struct client *recovery_claim(struct client *cl, const char *pid, size_t pid_len,
			      int has_offset, uint64_t offset);
/* Queues on `c`, in their order, the events the claimed socket missed. */
void recovery_replay(struct recovery *r, struct conn *c);

/* Every held socket ends, for `reason` (the server is going). */
void recovery_end_all(const char *reason);

#endif
