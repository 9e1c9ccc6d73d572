/* relay.h - the message one node publishes to the others for a broadcast
 * (cluster mode, core/cluster/): who sent it (the node, its incarnation and
 * a serial), where it goes (namespace, rooms or everyone, the rooms and
 * sockets it skips) and what it carries (the event, its JSON arguments, the
 * plain sockets' own arguments, the binary attachments), in a binary
 * layout of length-prefixed fields. The writer and the checked reader,
 * tested alone. */
#ifndef PARLEY_RELAY_H
#define PARLEY_RELAY_H

#include <stddef.h>
#include <stdint.h>

/* Strings side by side, as struct room_target takes them. */
struct relay_list {
	const char **v;
	size_t *lens;
	size_t n;
};

struct relay_msg {
	const char *origin; /* the node's id (PARLEY_NODE_ID) */
	size_t origin_len;
	uint64_t incarnation; /* random at each start of the node */
	uint64_t serial;      /* the node's broadcasts, counted from 1 */
	const char *nsp;
	size_t nsp_len;
	int everyone; /* 1: every socket of the namespace (rooms is empty) */
	struct relay_list rooms, except_rooms, except_sids;
	const char *event;
	size_t event_len;
	unsigned nargs;
	const char *args;  /* JSON, comma-separated, no brackets; NULL: none */
	size_t args_len;
	const char *plain; /* plain sockets' arguments when they differ; NULL: the same */
	size_t plain_len;
	struct relay_list att; /* binary attachments */
};

/* The message as bytes: a new buffer of `*len` bytes the caller frees.
 * Never NULL. */
char *relay_encode(const struct relay_msg *m, size_t *len);
/* Reads the `len` bytes at `p` into `m`, whose strings point into `p` (valid
 * as long as it is). Returns 0, or -EBADMSG for anything that is not a whole
 * message of this version (a count or a length past the end included:
 * nothing is allocated for it). On success the lists are allocated:
 * relay_msg_fini frees them. */
int relay_decode(const char *p, size_t len, struct relay_msg *m);
/* Frees what relay_decode allocated; `m` zeroed. Safe on a zeroed `m`. */
void relay_msg_fini(struct relay_msg *m);

#endif
