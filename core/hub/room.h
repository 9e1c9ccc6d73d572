/* room.h - namespaces and rooms: who is in which room, joined and left in
 * O(1), and the walk of a broadcast over several rooms that reaches each
 * member once. Members are `struct room_set`s embedded in their owners.
 * Errors are negative codes (base/error.h). */
#ifndef PARLEY_ROOM_H
#define PARLEY_ROOM_H

#include <stddef.h>
#include <stdint.h>

#include "base/map.h"

struct room;
struct room_set;

struct membership {
	struct room *room;
	uint32_t index; /* this member's slot in room->members */
	/* The caller's stamp of the join (room_join): for recovery, the last
	 * event offset issued before it, so that a replay knows which of a
	 * room's events came after the socket joined. */
	uint64_t stamp;
};

/* The rooms one socket is in; `owner` is the socket. */
struct room_set {
	struct membership *v;
	uint32_t count;
	uint32_t cap;
	uint64_t mark; /* last broadcast that reached (or excluded) it */
	void *owner;
};

struct room_member {
	struct room_set *set;
	uint32_t slot; /* this room's index in set->v */
};

struct room {
	struct room_member *members;
	uint32_t count;
	uint32_t cap;
	size_t name_len;
	char name[]; /* NUL-terminated */
};

struct nsp {
	char *name;
	size_t name_len;
	struct map rooms;
	uint32_t sockets; /* connected sockets */
};

/* Told when a room of any namespace is made for its first member (`opened`
 * 1) or goes with its last (0), after the namespace's map of rooms changed: cluster
 * mode follows the rooms this node has members in. NULL: nobody is told.
 * The watcher must not join or leave rooms. */
void room_set_watch(void (*on_room)(struct nsp *n, const struct room *r, int opened));

/* A namespace named `name` (copied). Never NULL. */
struct nsp *nsp_new(const char *name, size_t len);
/* Frees the namespace and its rooms; members must have left. NULL is a no-op. */
void nsp_free(struct nsp *n);

/* Adds `set` to the room `name` (copied), creating it, with `stamp` kept
 * with the membership. Returns 0, or -EEXIST when it is there already
 * (nothing changes, the first stamp stays). */
int room_join(struct nsp *n, struct room_set *set, const char *name, size_t len,
	      uint64_t stamp);
/* Removes `set` from the room, deleting an emptied room. Returns 0, or
 * -ENOENT when it was not there. */
int room_leave(struct nsp *n, struct room_set *set, const char *name, size_t len);
/* Removes `set` from every room and frees its list. */
void room_leave_all(struct nsp *n, struct room_set *set);
/* The room (the namespace's: valid until its last member leaves), or NULL
 * when nobody is in it. */
struct room *room_find(const struct nsp *n, const char *name, size_t len);
/* 1 if `set` is in the room, else 0. */
int room_has(const struct nsp *n, const struct room_set *set, const char *name,
	     size_t len);
/* 1 if `set` is in the room, with its join's stamp in `*stamp`; else 0. */
int room_stamp(const struct nsp *n, const struct room_set *set, const char *name,
	       size_t len, uint64_t *stamp);

/* A broadcast: the rooms it goes to and those (and sockets) it skips. */
struct room_target {
	const char *const *rooms;
	const size_t *room_lens;
	size_t nrooms;
	const char *const *except_rooms;
	const size_t *except_lens;
	size_t nexcept_rooms;
	struct room_set *const *except_sets;
	size_t nexcept_sets;
};

/* Starts a broadcast: marks the target's excepted sets and the members of
 * its excepted rooms with a new epoch, and returns it. A member whose mark
 * equals the epoch is skipped (room_broadcast does this itself). */
uint64_t room_mark_except(struct nsp *n, const struct room_target *t);

/* Calls `deliver(owner, arg)` once for every member of the target's rooms
 * that is in no excepted room and is not an excepted set, however many of
 * the rooms it is in. Returns the number of deliveries. `deliver` must not
 * join or leave rooms. */
size_t room_broadcast(struct nsp *n, const struct room_target *t,
		      void (*deliver)(void *owner, void *arg), void *arg);

#endif
