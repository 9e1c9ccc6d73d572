/* map.c - the string-keyed hash map declared in map.h: chained buckets, a
 * power-of-two bucket count doubled at load factor 1, keyed by SipHash-2-4
 * under a per-process key from getrandom(). Uses alloc.h and libc. */
#include "base/map.h"

#include "base/alloc.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define MAP_INITIAL_BUCKETS 8

/* The key until map_seed runs: bytes 00 01 .. 0f, the key of the SipHash
 * reference vectors, so an unseeded map_hash can be checked against them. */
static uint64_t sip_k0 = UINT64_C(0x0706050403020100);
static uint64_t sip_k1 = UINT64_C(0x0f0e0d0c0b0a0908);

/* The 8 bytes at p as a little-endian word: one load on a little-endian
 * host (memcpy, as p need not be aligned). */
static uint64_t load_le64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static inline uint64_t rotl(uint64_t x, int b)
{
	return x << b | x >> (64 - b);
}

static inline void sip_round(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = rotl(v[1], 13);
	v[1] ^= v[0];
	v[0] = rotl(v[0], 32);
	v[2] += v[3];
	v[3] = rotl(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = rotl(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = rotl(v[1], 17);
	v[1] ^= v[2];
	v[2] = rotl(v[2], 32);
}

/* SipHash-2-4 of `klen` bytes under the process key; `key` may be NULL when
 * klen is 0. */
uint64_t map_hash(const char *key, size_t klen)
{
	const unsigned char *p = (const unsigned char *)key;
	uint64_t v[4] = {
		UINT64_C(0x736f6d6570736575) ^ sip_k0,
		UINT64_C(0x646f72616e646f6d) ^ sip_k1,
		UINT64_C(0x6c7967656e657261) ^ sip_k0,
		UINT64_C(0x7465646279746573) ^ sip_k1,
	};
	size_t full = klen - klen % 8;
	/* The last word carries the length (mod 256) in its top byte. */
	uint64_t b = (uint64_t)klen << 56;
	uint64_t m;

	for (size_t i = 0; i < full; i += 8) {
		m = load_le64(p + i);
		v[3] ^= m;
		sip_round(v);
		sip_round(v);
		v[0] ^= m;
	}
	if (klen % 8) {
		unsigned char tail[8] = { 0 };
		memcpy(tail, p + full, klen % 8);
		b |= load_le64(tail);
	}
	v[3] ^= b;
	sip_round(v);
	sip_round(v);
	v[0] ^= b;
	v[2] ^= 0xff;
	for (int i = 0; i < 4; i++)
		sip_round(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* Replaces the default key with 16 bytes from getrandom(); aborts if the
 * kernel cannot supply them. Call before any map holds entries. */
void map_seed(void)
{
	unsigned char key[16];
	size_t got = 0;

	while (got < sizeof(key)) {
		ssize_t n = getrandom(key + got, sizeof(key) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* A guessable key would reopen the flooding this map exists
			 * to prevent, so refuse to run rather than go on without. */
			fprintf(stderr, "parley: getrandom failed: %s\n", strerror(errno));
			abort();
		}
		got += (size_t)n;
	}
	sip_k0 = load_le64(key);
	sip_k1 = load_le64(key + 8);
}

/* An empty map that owns no memory yet. */
void map_init(struct map *m)
{
	/* Buckets come with the first map_put, so empty maps cost nothing. */
	m->buckets = NULL;
	m->mask = 0;
	m->count = 0;
}

/* Frees entries and buckets (not values) and leaves `m` as map_init does. */
void map_fini(struct map *m)
{
	if (m->buckets) {
		for (size_t i = 0; i <= m->mask; i++) {
			struct map_entry *e = m->buckets[i];
			while (e) {
				struct map_entry *next = e->next;
				free(e);
				e = next;
			}
		}
		free(m->buckets);
	}
	map_init(m);
}

/* The link that points at the entry for the key: the entry is `**link`, or
 * `*link` is NULL where the key would be appended. The map has buckets. */
static struct map_entry **find_link(const struct map *m, const char *key,
				    size_t klen, uint64_t hash)
{
	struct map_entry **link = &m->buckets[hash & m->mask];

	for (; *link; link = &(*link)->next) {
		struct map_entry *e = *link;
		if (e->hash == hash && e->klen == klen &&
		    (klen == 0 || memcmp(e->key, key, klen) == 0))
			break;
	}
	return link;
}

/* The value under the `klen` bytes of `key`, or NULL. */
void *map_get(const struct map *m, const char *key, size_t klen)
{
	return map_get_hashed(m, key, klen, map_hash(key, klen));
}

void *map_get_hashed(const struct map *m, const char *key, size_t klen, uint64_t hash)
{
	struct map_entry *e;

	if (!m->buckets)
		return NULL;
	e = *find_link(m, key, klen, hash);
	return e ? e->value : NULL;
}

/* Rehashes every entry into `n` buckets (a power of two); hashes are stored,
 * so no key is hashed again. */
static void resize(struct map *m, size_t n)
{
	struct map_entry **buckets = xcalloc(n, sizeof(*buckets));

	if (m->buckets) {
		for (size_t i = 0; i <= m->mask; i++) {
			struct map_entry *e = m->buckets[i];
			while (e) {
				struct map_entry *next = e->next;
				size_t at = e->hash & (n - 1);
				e->next = buckets[at];
				buckets[at] = e;
				e = next;
			}
		}
		free(m->buckets);
	}
	m->buckets = buckets;
	m->mask = n - 1;
}

/* Inserts or replaces; returns the replaced value or NULL. May resize, so
 * never call it while iterating. */
void *map_put(struct map *m, const char *key, size_t klen, void *value)
{
	return map_put_hashed(m, key, klen, map_hash(key, klen), value);
}

void *map_put_hashed(struct map *m, const char *key, size_t klen, uint64_t hash, void *value)
{
	struct map_entry **link, *e;

	if (!m->buckets)
		resize(m, MAP_INITIAL_BUCKETS);
	link = find_link(m, key, klen, hash);
	if (*link) {
		void *old = (*link)->value;
		(*link)->value = value;
		return old;
	}
	if (klen > SIZE_MAX - sizeof(*e) - 1)
		alloc_fail(SIZE_MAX);
	e = xmalloc(sizeof(*e) + klen + 1);
	e->next = NULL;
	e->value = value;
	e->hash = hash;
	e->klen = klen;
	if (klen)
		memcpy(e->key, key, klen);
	e->key[klen] = '\0';
	*link = e;
	m->count++;
	/* Load factor 1: at most one entry per bucket on average. */
	if (m->count > m->mask + 1)
		resize(m, (m->mask + 1) * 2);
	return NULL;
}

/* Unlinks and frees the entry; returns its value or NULL if absent. */
void *map_del(struct map *m, const char *key, size_t klen)
{
	return map_del_hashed(m, key, klen, map_hash(key, klen));
}

void *map_del_hashed(struct map *m, const char *key, size_t klen, uint64_t hash)
{
	struct map_entry **link, *e;
	void *value;

	if (!m->buckets)
		return NULL;
	link = find_link(m, key, klen, hash);
	e = *link;
	if (!e)
		return NULL;
	/* The map never shrinks, so deleting during iteration stays safe. */
	*link = e->next;
	value = e->value;
	free(e);
	m->count--;
	return value;
}

/* A cursor before the first entry; the order is the buckets'. */
void map_iter_init(struct map_iter *it, const struct map *m)
{
	it->m = m;
	it->bucket = 0;
	it->cur = NULL;
	it->next = NULL;
}

/* The next entry or NULL; the one returned may then be map_del'd. */
struct map_entry *map_next(struct map_iter *it)
{
	const struct map *m = it->m;
	struct map_entry *e = it->next;

	/* `next` was read before the caller could delete `cur`. */
	while (!e) {
		if (!m->buckets || it->bucket > m->mask) {
			it->cur = NULL;
			return NULL;
		}
		e = m->buckets[it->bucket++];
	}
	it->cur = e;
	it->next = e->next;
	return e;
}
