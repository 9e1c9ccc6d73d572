/* cluster.h - cluster mode (PARLEY_REDIS): the nodes of one chat service
 * share their broadcasts through Redis's sharded pub/sub. A node follows
 * (SSUBSCRIBE) the channel of every room it has a member in, and its
 * namespace's "everyone" channel while it has a room there; a broadcast a
 * script makes is delivered here at once and published once to the channel
 * of each room it targets; what comes from the other nodes reaches this
 * node's sockets once per broadcast, encoded once. Redis gone: each node
 * serves its own sockets, and reconnects and subscribes again by itself.
 * Uses hub/ (rooms, sockets, emits), cluster/link.c (the connections). */
#ifndef PARLEY_CLUSTER_H
#define PARLEY_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "hub/client.h"
#include "wire/relay.h"

/* At start, before the loop serves anyone (so it may block, a few seconds
 * at most): checks that `uri` (redis://host[:port][/db] or
 * unix:///path[?db=N]) answers and is Redis 7 or later, then opens the
 * publishing and the subscribing connection on the loop and follows the
 * rooms. `node_id` names this node (NULL: "<hostname>:<port>"). Returns 0,
 * or a negative code (logged: unreachable, too old, a bad URI). */
int cluster_open(const char *uri, const char *node_id, int port);
/* Closes the connections; rooms are no longer followed. Safe twice and when
 * never opened. */
void cluster_close(void);

/* A broadcast this node has delivered to its own sockets, for the other
 * nodes: to the namespace's every socket (`everyone` 1: `t`'s rooms are
 * unused) or to `t`'s rooms, skipping `t`'s excepted rooms and the sockets
 * named in `sids`. Published once to each room's channel (the everyone
 * channel for `everyone`). A no-op outside cluster mode; while Redis is
 * unreachable, or its connection has more than PARLEY_REDIS_MAX_BACKLOG
 * unsent, the broadcast stays on this node (counted). */
void cluster_publish(const struct nsp *n, int everyone, const struct room_target *t,
		     const struct relay_list *sids, const struct emit *e);

/* ---- for the cluster's other modules (presence, sessions) ---- */

/* Where a command's reply goes: `r` (valid during the call), or NULL when
 * the connection went before the reply came (the command may or may not
 * have run) or the cluster closed. An error reply is handed over too
 * (and counted in parley_cluster_redis_errors_total). */
typedef void (*cluster_reply_fn)(void *arg, const redisReply *r);
/* Sends a command (its `argc` arguments copied) on the publishing
 * connection, after every broadcast this node published before it: Redis
 * runs a connection's commands in order. `done` (NULL: none) gets its
 * reply, later, on the loop. Returns 0, or PARLEY_EUNAVAILABLE when
 * cluster mode is off, Redis unreachable, or more than
 * PARLEY_REDIS_MAX_BACKLOG is unsent to it (`done` is not called; in the
 * last case the cluster_on_up hooks run again once the backlog drains, to
 * write what was refused). */
int cluster_command(int argc, const char **argv, const size_t *lens, cluster_reply_fn done,
		    void *arg);

/* What a channel's message is handed to (valid during the call). */
typedef void (*cluster_message_fn)(const char *data, size_t len);
/* Follows the sharded channel `name` for as long as the cluster is open
 * (again after every reconnect), its messages to `fn` instead of the
 * broadcast path. At most 8 channels; a no-op outside cluster mode. */
void cluster_listen(const char *name, cluster_message_fn fn);
/* `fn` runs each time the publishing connection is (back) up, and once a
 * backlog that refused commands has drained: what a module keeps in Redis
 * is written again then (Redis may have restarted empty). At most 8; a
 * no-op outside cluster mode. */
void cluster_on_up(void (*fn)(void));
/* `fn` is given each broadcast this node publishes, as published (the
 * relay message `msg`, `len` bytes, valid during the call), with where it
 * went: recovery across nodes keeps the rooms' recent broadcasts. One at
 * most (NULL: none). */
typedef void (*cluster_published_fn)(const struct nsp *n, int everyone,
				     const struct room_target *t, const char *msg, size_t len);
void cluster_on_publish(cluster_published_fn fn);
/* 1 while cluster mode is on and both connections serve, else 0. */
int cluster_is_up(void);
/* This node's id, or NULL outside cluster mode. */
const char *cluster_node(void);
/* This node's start: a random number drawn at cluster_open. */
uint64_t cluster_incarnation(void);

/* 0 when cluster mode is off or serves; 1 with `*why` (the module's text)
 * while a connection to Redis is down: /healthz says degraded. */
int cluster_degraded(const char **why);

#endif
