/* topology.h - where a key or a channel lives when Redis is a Redis
 * Cluster: its hash slot (CRC16 of the key, or of its {hash tag}, modulo
 * 16384, as the cluster specification defines it), and which master serves
 * each slot, read from a CLUSTER SLOTS reply. A Redis that is not a cluster
 * is one shard serving every slot. */
#ifndef PARLEY_TOPOLOGY_H
#define PARLEY_TOPOLOGY_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "cluster/link.h"

#define TOPOLOGY_SLOTS 16384
/* The most masters a node talks to: two links each. */
#define TOPOLOGY_MAX_SHARDS 64
/* A slot no master serves (a cluster being set up, or failing over). */
#define TOPOLOGY_NONE 0xff

struct topology {
	size_t nshards;
	struct link_addr shard[TOPOLOGY_MAX_SHARDS];
	uint8_t slot[TOPOLOGY_SLOTS]; /* slot -> index in shard[], or TOPOLOGY_NONE */
};

/* The hash slot of `key` (`len` bytes). */
unsigned topology_slot(const char *key, size_t len);
/* One shard at `a` serving every slot: a Redis that is not a cluster. */
void topology_single(struct topology *t, const struct link_addr *a);
/* Reads a CLUSTER SLOTS reply `r` into `t`: the masters in the order met,
 * a master given without an address ("" or "?") taken to be `seed`'s host.
 * A master's address must be numeric (nothing resolves a name on the
 * loop). Returns 0, or -EINVAL with the reason in `err`. */
int topology_read(const redisReply *r, const struct link_addr *seed, struct topology *t,
		  char *err, size_t errlen);
/* 1 when `a` and `b` send every slot to the same addresses. */
int topology_same(const struct topology *a, const struct topology *b);

#endif
