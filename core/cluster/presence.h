/* presence.h - presence across the cluster (issue 19, item 3): every
 * socket's rooms, this node's and the others', counted in Redis, so that a
 * user's sockets, a room's size and users, and who is online answer for the
 * whole cluster; a user going from no socket to one anywhere, or from one
 * to none, decided once, atomically, in a Redis function; a dead node's
 * sockets counted out by one survivor. Uses cluster.c's publishing
 * connection (cluster_command) and hub's rooms. */
#ifndef PARLEY_PRESENCE_H
#define PARLEY_PRESENCE_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"

/* What the cluster decided of a user of namespace `nsp`: "online" (first
 * socket anywhere), "leaving" (no socket anywhere: this node owns the grace
 * period; `gone_ms` is when, wall clock), "back" (a socket again during the
 * grace: nobody is told). Strings valid during the call. */
typedef void (*presence_change_fn)(const char *nsp, size_t nsp_len, const char *user,
				   size_t user_len, const char *state, int64_t gone_ms);

/* After cluster_open: counts this node's rooms in Redis from now on (again
 * each time Redis is back) and hands the cluster's decisions to `changed`.
 * A no-op outside cluster mode. */
void presence_open(presence_change_fn changed);
/* Another node died (its liveness key expired, or holds a new start under
 * its name): `node` (`len` bytes) is its id, `inc` (`inc_len`) the start
 * that died (cluster_incarnation's 16 hex digits); valid during the call.
 * Every node is told, once per death, within a second of the survivor that
 * counted it out; never of its own id. */
typedef void (*presence_gone_fn)(const char *node, size_t len, const char *inc,
				 size_t inc_len);
/* Where deaths go (NULL: nowhere). */
void presence_on_gone(presence_gone_fn fn);
/* Stops counting; safe twice and when never opened. */
void presence_close(void);
/* 1 while presence is counted in Redis (cluster mode), else 0. */
int presence_on(void);

enum presence_query {
	PRESENCE_ROOM_SIZE,   /* integer: the room's sockets on every node */
	PRESENCE_ROOM_USERS,  /* array: the distinct users of those sockets */
	PRESENCE_ONLINE_USERS /* array: the users with a socket anywhere (`room` unused) */
};

/* Asks Redis; `done` gets the reply (NULL: connection lost). Returns 0, or
 * PARLEY_EUNAVAILABLE when Redis is unreachable (`done` is not called: the
 * caller answers from this node). */
int presence_query(enum presence_query q, const char *nsp, size_t nsp_len, const char *room,
		   size_t room_len, cluster_reply_fn done, void *arg);

/* The sockets on every node of each of `n` rooms (of `nsp`), in one
 * question: `done` gets an array of integers, in the rooms' order. Returns
 * 0 or PARLEY_EUNAVAILABLE (`done` not called). */
int presence_room_sizes(const char *nsp, size_t nsp_len, const char *const *rooms,
			const size_t *lens, size_t n, cluster_reply_fn done, void *arg);

/* The grace of `users` (of `nsp`) this node owns is over: `done` gets the
 * array of those the cluster confirms offline now (no socket anywhere, not
 * taken over by a reconnect; each confirmed to one node only). Returns 0 or
 * PARLEY_EUNAVAILABLE (`done` not called). */
int presence_expire(const char *nsp, size_t nsp_len, const char *const *users,
		    const size_t *lens, size_t n, cluster_reply_fn done, void *arg);

#endif
