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

/* 0 when cluster mode is off or serves; 1 with `*why` (the module's text)
 * while a connection to Redis is down: /healthz says degraded. */
int cluster_degraded(const char **why);

#endif
