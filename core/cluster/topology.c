/* topology.c - hash slots and the masters that serve them (see
 * topology.h). */
#include "cluster/topology.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), the checksum the
 * Redis Cluster specification names for key slots; bit by bit, as the
 * keys hashed here are channel names and a few fixed keys. */
static uint16_t crc16(const char *p, size_t len)
{
	uint16_t crc = 0;

	for (size_t i = 0; i < len; i++) {
		crc ^= (uint16_t)((uint8_t)p[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = crc & 0x8000 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
	}
	return crc;
}

unsigned topology_slot(const char *key, size_t len)
{
	/* A {tag}: only what is between the first '{' and the first '}'
	 * after it is hashed, when that is not empty. */
	const char *open = memchr(key, '{', len);

	if (open) {
		const char *tag = open + 1;
		const char *close = memchr(tag, '}', len - (size_t)(tag - key));
		if (close && close > tag)
			return crc16(tag, (size_t)(close - tag)) & (TOPOLOGY_SLOTS - 1);
	}
	return crc16(key, len) & (TOPOLOGY_SLOTS - 1);
}

void topology_single(struct topology *t, const struct link_addr *a)
{
	memset(t, 0, sizeof(*t));
	t->nshards = 1;
	t->shard[0] = *a;
}

static int same_addr(const struct link_addr *a, const struct link_addr *b)
{
	return a->port == b->port && strcmp(a->host, b->host) == 0 && strcmp(a->path, b->path) == 0;
}

/* The master of one CLUSTER SLOTS entry, [host, port, id, ...], into `a`. */
static int read_master(const redisReply *m, const struct link_addr *seed, struct link_addr *a,
		       char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	const char *host;

	if (m->type != REDIS_REPLY_ARRAY || m->elements < 2 ||
	    m->element[0]->type != REDIS_REPLY_STRING || m->element[1]->type != REDIS_REPLY_INTEGER) {
		snprintf(err, errlen, "CLUSTER SLOTS: a master is not [host, port, ...]");
		return -EINVAL;
	}
	host = m->element[0]->str;
	memset(a, 0, sizeof(*a));
	if (!host[0] || strcmp(host, "?") == 0) {
		if (!seed->host[0]) {
			snprintf(err, errlen, "CLUSTER SLOTS names a master without an address, and "
					      "PARLEY_REDIS is a Unix socket");
			return -EINVAL;
		}
		host = seed->host;
	}
	if (getaddrinfo(host, NULL, &hints, &res) != 0) {
		snprintf(err, errlen, "CLUSTER SLOTS names the master %.64s: not a numeric address",
			 host);
		return -EINVAL;
	}
	freeaddrinfo(res);
	snprintf(a->host, sizeof(a->host), "%s", host);
	a->port = (int)m->element[1]->integer;
	return 0;
}

int topology_read(const redisReply *r, const struct link_addr *seed, struct topology *t,
		  char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	memset(t->slot, TOPOLOGY_NONE, sizeof(t->slot));
	if (r->type != REDIS_REPLY_ARRAY) {
		snprintf(err, errlen, "CLUSTER SLOTS: not an array");
		return -EINVAL;
	}
	for (size_t i = 0; i < r->elements; i++) {
		const redisReply *e = r->element[i];
		struct link_addr a;
		size_t k;
		long long from, to;
		int rc;

		if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
		    e->element[0]->type != REDIS_REPLY_INTEGER ||
		    e->element[1]->type != REDIS_REPLY_INTEGER) {
			snprintf(err, errlen, "CLUSTER SLOTS: an entry is not [from, to, master, ...]");
			return -EINVAL;
		}
		from = e->element[0]->integer;
		to = e->element[1]->integer;
		if (from < 0 || to >= TOPOLOGY_SLOTS || from > to) {
			snprintf(err, errlen, "CLUSTER SLOTS: slots %lld-%lld", from, to);
			return -EINVAL;
		}
		if ((rc = read_master(e->element[2], seed, &a, err, errlen)) < 0)
			return rc;
		for (k = 0; k < t->nshards && !same_addr(&t->shard[k], &a); k++)
			;
		if (k == t->nshards) {
			if (k == TOPOLOGY_MAX_SHARDS) {
				snprintf(err, errlen, "more than %d masters", TOPOLOGY_MAX_SHARDS);
				return -EINVAL;
			}
			t->shard[t->nshards++] = a;
		}
		memset(t->slot + from, (int)k, (size_t)(to - from + 1));
	}
	if (!t->nshards) {
		snprintf(err, errlen, "CLUSTER SLOTS: no master serves a slot yet");
		return -EINVAL;
	}
	return 0;
}

int topology_same(const struct topology *a, const struct topology *b)
{
	if (a->nshards != b->nshards)
		return 0;
	for (size_t i = 0; i < TOPOLOGY_SLOTS; i++) {
		int ka = a->slot[i], kb = b->slot[i];
		if ((ka == TOPOLOGY_NONE) != (kb == TOPOLOGY_NONE))
			return 0;
		if (ka != TOPOLOGY_NONE && !same_addr(&a->shard[ka], &b->shard[kb]))
			return 0;
	}
	return 1;
}
