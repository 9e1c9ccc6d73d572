/* map.h - a string-keyed hash map with a per-process random SipHash key, so
 * client-chosen keys (room names, session ids) cannot flood one bucket.
 * Keys are copied into the map; values are the caller's and never freed here. */
#ifndef PARLEY_MAP_H
#define PARLEY_MAP_H

#include <stddef.h>
#include <stdint.h>

struct map_entry {
	struct map_entry *next;
	void *value;
	uint64_t hash;
	size_t klen;
	char key[]; /* NUL-terminated copy */
};

struct map {
	struct map_entry **buckets;
	size_t mask;  /* bucket count - 1; the count is a power of two */
	size_t count; /* entries */
};

/* Cursor for map_next; entries may be deleted with map_del while iterating,
 * but only the entry the cursor last returned. */
struct map_iter {
	const struct map *m;
	size_t bucket;
	struct map_entry *cur;
	struct map_entry *next;
};

/* Seeds the hash from getrandom(); call once at start (tests may skip it). */
void map_seed(void);

/* An empty map (no memory until the first put). */
void map_init(struct map *m);
/* Frees the map's entries and their keys, not the values; `m` is then as
 * map_init left it. */
void map_fini(struct map *m);

/* Returns the value stored under the key, or NULL. */
void *map_get(const struct map *m, const char *key, size_t klen);
/* Stores `value` (not NULL) under the key, replacing any value there; returns
 * the value it replaced or NULL. The map grows as it fills. */
void *map_put(struct map *m, const char *key, size_t klen, void *value);
/* Removes the key; returns its value or NULL if absent. */
void *map_del(struct map *m, const char *key, size_t klen);

/* The same three for a key whose map_hash the caller has: a key looked up
 * and then changed is hashed once. */
void *map_get_hashed(const struct map *m, const char *key, size_t klen, uint64_t hash);
void *map_put_hashed(struct map *m, const char *key, size_t klen, uint64_t hash, void *value);
void *map_del_hashed(struct map *m, const char *key, size_t klen, uint64_t hash);

/* Starts a walk of `m`, in no particular order. */
void map_iter_init(struct map_iter *it, const struct map *m);
/* Returns the next entry (the map's: valid until it is deleted) or NULL at
 * the end. */
struct map_entry *map_next(struct map_iter *it);

/* SipHash-2-4 of the bytes under the process key (exposed for tests). */
uint64_t map_hash(const char *key, size_t klen);

#endif
