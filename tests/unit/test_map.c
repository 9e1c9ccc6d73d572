/* test_map.c - unit tests for core/base/map.c: SipHash-2-4 reference vectors and
 * determinism, put/get/del/replace, growth to 100k entries, iteration that
 * deletes the current entry, and keys with embedded NULs (klen matters). */
#include "base/map.h"

#include "check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SipHash-2-4 of the bytes 00 01 .. n-1 under the key 00 01 .. 0f, from the
 * reference implementation's vectors; the last one is the paper's example. */
static const uint64_t sip_vectors[] = {
	UINT64_C(0x726fdb47dd0e0e31), UINT64_C(0x74f839c593dc67fd),
	UINT64_C(0x0d6c8009d9a94f5a), UINT64_C(0x85676696d7fb7e2d),
	UINT64_C(0xcf2794e0277187b7), UINT64_C(0x18765564cd99a68d),
	UINT64_C(0xcbc9466e58fee3ce), UINT64_C(0xab0200f58b01d137),
	UINT64_C(0x93f5f5799a932462), UINT64_C(0x9e0082df0ba9e4b0),
	UINT64_C(0x7a5dbbc594ddb9f3), UINT64_C(0xf4b32f46226bada7),
	UINT64_C(0x751e8fbc860ee5fb), UINT64_C(0x14ea5627c0843d90),
	UINT64_C(0xf723ca908e7af2ee), UINT64_C(0xa129ca6149be45e5),
	UINT64_C(0x3f2acc7f57c29bdb),
};

/* Runs before map_seed: the default key is the reference vectors' key. */
static void test_siphash_vectors(void)
{
	char msg[sizeof(sip_vectors) / sizeof(sip_vectors[0])];

	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (char)i;
	for (size_t n = 0; n < sizeof(msg); n++)
		CHECK_UINT(map_hash(msg, n), sip_vectors[n]);
	CHECK_UINT(map_hash(NULL, 0), sip_vectors[0]);
	/* Words are read from any address: the same bytes one byte further on. */
	char shifted[sizeof(msg) + 1];
	memcpy(shifted + 1, msg, sizeof(msg));
	for (size_t n = 0; n < sizeof(msg); n++)
		CHECK_UINT(map_hash(shifted + 1, n), sip_vectors[n]);
}

static void test_hash_determinism(void)
{
	uint64_t unseeded = map_hash("room:lobby", 10);

	map_seed();
	uint64_t h = map_hash("room:lobby", 10);
	CHECK_UINT(map_hash("room:lobby", 10), h);
	CHECK(h != unseeded);
	CHECK(map_hash("room:lobbx", 10) != h);
	CHECK(map_hash("room:lobby", 9) != map_hash("room:lobby", 10));
	CHECK(map_hash("a\0b", 3) != map_hash("a", 1));
	CHECK(map_hash("a\0", 2) != map_hash("a", 1));
	CHECK(map_hash("", 0) != map_hash("\0", 1));

	/* Hashing reads only the bytes it is given. */
	char a[] = "abcdefghijXYZ", b[] = "abcdefghijQRS";
	CHECK_UINT(map_hash(a, 10), map_hash(b, 10));
}

static void test_basic(void)
{
	struct map m;
	int one = 1, two = 2, three = 3;

	map_init(&m);
	CHECK(map_get(&m, "a", 1) == NULL);
	CHECK(map_del(&m, "a", 1) == NULL);
	CHECK_INT(m.count, 0);

	CHECK(map_put(&m, "a", 1, &one) == NULL);
	CHECK(map_put(&m, "b", 1, &two) == NULL);
	CHECK_INT(m.count, 2);
	CHECK(map_get(&m, "a", 1) == &one);
	CHECK(map_get(&m, "b", 1) == &two);
	CHECK(map_get(&m, "c", 1) == NULL);
	CHECK(map_get(&m, "ab", 2) == NULL);

	/* Replacing returns the old value and keeps the count. */
	CHECK(map_put(&m, "a", 1, &three) == &one);
	CHECK(map_get(&m, "a", 1) == &three);
	CHECK_INT(m.count, 2);

	CHECK(map_del(&m, "a", 1) == &three);
	CHECK(map_get(&m, "a", 1) == NULL);
	CHECK(map_del(&m, "a", 1) == NULL);
	CHECK_INT(m.count, 1);
	CHECK(map_get(&m, "b", 1) == &two);

	/* The key is copied: the caller's buffer may change afterwards. */
	char key[] = "room";
	CHECK(map_put(&m, key, 4, &one) == NULL);
	key[0] = 'X';
	CHECK(map_get(&m, "room", 4) == &one);
	CHECK(map_get(&m, key, 4) == NULL);

	map_fini(&m);
	CHECK(m.buckets == NULL);
	CHECK_INT(m.count, 0);
	CHECK(map_get(&m, "b", 1) == NULL);

	/* A finished map can be used again, and finishing twice is harmless. */
	CHECK(map_put(&m, "b", 1, &two) == NULL);
	CHECK(map_get(&m, "b", 1) == &two);
	map_fini(&m);
	map_fini(&m);
}

/* The _hashed calls take map_hash's value and act as the plain ones. */
static void test_hashed(void)
{
	struct map m;
	int one = 1, two = 2;
	uint64_t h = map_hash("user:ana", 8);

	map_init(&m);
	CHECK(map_get_hashed(&m, "user:ana", 8, h) == NULL);
	CHECK(map_del_hashed(&m, "user:ana", 8, h) == NULL);
	CHECK(map_put_hashed(&m, "user:ana", 8, h, &one) == NULL);
	CHECK(map_get(&m, "user:ana", 8) == &one);
	CHECK(map_put_hashed(&m, "user:ana", 8, h, &two) == &one);
	CHECK(map_get_hashed(&m, "user:ana", 8, h) == &two);
	CHECK(map_put(&m, "user:bo", 7, &one) == NULL);
	CHECK(map_get_hashed(&m, "user:bo", 7, map_hash("user:bo", 7)) == &one);
	CHECK_INT(m.count, 2);
	CHECK(map_del_hashed(&m, "user:ana", 8, h) == &two);
	CHECK(map_get(&m, "user:ana", 8) == NULL);
	CHECK_INT(m.count, 1);
	map_fini(&m);
}

static void test_klen(void)
{
	struct map m;
	int v[6];

	map_init(&m);
	CHECK(map_put(&m, "a", 1, &v[0]) == NULL);
	CHECK(map_put(&m, "a\0", 2, &v[1]) == NULL);
	CHECK(map_put(&m, "a\0b", 3, &v[2]) == NULL);
	CHECK(map_put(&m, "a\0c", 3, &v[3]) == NULL);
	CHECK(map_put(&m, "", 0, &v[4]) == NULL);
	CHECK(map_put(&m, "\0", 1, &v[5]) == NULL);
	CHECK_INT(m.count, 6);
	CHECK(map_get(&m, "a", 1) == &v[0]);
	CHECK(map_get(&m, "a\0", 2) == &v[1]);
	CHECK(map_get(&m, "a\0b", 3) == &v[2]);
	CHECK(map_get(&m, "a\0c", 3) == &v[3]);
	CHECK(map_get(&m, "", 0) == &v[4]);
	CHECK(map_get(&m, NULL, 0) == &v[4]);
	CHECK(map_get(&m, "\0", 1) == &v[5]);
	CHECK(map_get(&m, "a\0d", 3) == NULL);

	/* Entries keep klen and a NUL-terminated copy of the key. */
	struct map_iter it;
	struct map_entry *e;
	int seen = 0;
	map_iter_init(&it, &m);
	while ((e = map_next(&it))) {
		if (e->value == &v[2]) {
			CHECK_MEM(e->key, e->klen, "a\0b", 3);
			CHECK_INT(e->key[e->klen], 0);
			seen++;
		}
		if (e->value == &v[4]) {
			CHECK_INT(e->klen, 0);
			CHECK_INT(e->key[0], 0);
			seen++;
		}
	}
	CHECK_INT(seen, 2);

	CHECK(map_del(&m, "a\0", 2) == &v[1]);
	CHECK(map_get(&m, "a", 1) == &v[0]);
	CHECK(map_get(&m, "a\0b", 3) == &v[2]);
	CHECK(map_get(&m, "a\0", 2) == NULL);
	map_fini(&m);
}

static size_t key_of(char *buf, size_t i)
{
	return (size_t)sprintf(buf, "session:%zu", i);
}

static void test_growth(void)
{
	enum { N = 100000 };
	struct map m;
	char key[32];
	size_t missing = 0, wrong = 0;

	map_init(&m);
	for (size_t i = 0; i < N; i++) {
		size_t n = key_of(key, i);
		if (map_put(&m, key, n, (void *)(uintptr_t)(i + 1)) != NULL)
			wrong++;
	}
	CHECK_INT(wrong, 0);
	CHECK_INT(m.count, N);
	/* A power-of-two bucket count, and at most one entry per bucket. */
	CHECK_INT((m.mask + 1) & m.mask, 0);
	CHECK(m.count <= m.mask + 1);
	CHECK(m.mask + 1 <= 2 * (size_t)N);

	for (size_t i = 0; i < N; i++) {
		size_t n = key_of(key, i);
		if (map_get(&m, key, n) != (void *)(uintptr_t)(i + 1))
			missing++;
	}
	CHECK_INT(missing, 0);

	/* Longest chain: with a good hash, far from the entry count. */
	size_t longest = 0;
	for (size_t b = 0; b <= m.mask; b++) {
		size_t len = 0;
		for (struct map_entry *e = m.buckets[b]; e; e = e->next)
			len++;
		if (len > longest)
			longest = len;
	}
	CHECK(longest < 16);

	/* Delete the even keys; the odd ones stay. */
	wrong = 0;
	for (size_t i = 0; i < N; i += 2) {
		size_t n = key_of(key, i);
		if (map_del(&m, key, n) != (void *)(uintptr_t)(i + 1))
			wrong++;
	}
	CHECK_INT(wrong, 0);
	CHECK_INT(m.count, N / 2);
	missing = 0;
	for (size_t i = 0; i < N; i++) {
		size_t n = key_of(key, i);
		void *want = i % 2 ? (void *)(uintptr_t)(i + 1) : NULL;
		if (map_get(&m, key, n) != want)
			missing++;
	}
	CHECK_INT(missing, 0);
	map_fini(&m);
}

static void test_iteration(void)
{
	enum { N = 5000 };
	struct map m;
	struct map_iter it;
	struct map_entry *e;
	unsigned char *seen = calloc(N, 1);
	char key[32];
	size_t visits = 0, dup = 0, bad_del = 0;

	map_init(&m);
	map_iter_init(&it, &m);
	CHECK(map_next(&it) == NULL);
	CHECK(map_next(&it) == NULL);

	for (size_t i = 0; i < N; i++)
		map_put(&m, key, key_of(key, i), (void *)(uintptr_t)(i + 1));

	/* Every entry exactly once. */
	map_iter_init(&it, &m);
	while ((e = map_next(&it))) {
		size_t i = (uintptr_t)e->value - 1;
		if (seen[i]++)
			dup++;
		visits++;
	}
	CHECK_INT(visits, N);
	CHECK_INT(dup, 0);
	CHECK(map_next(&it) == NULL);

	/* Deleting the current entry, here every third, leaves the walk intact. */
	memset(seen, 0, N);
	visits = dup = 0;
	map_iter_init(&it, &m);
	while ((e = map_next(&it))) {
		size_t i = (uintptr_t)e->value - 1;
		if (seen[i]++)
			dup++;
		visits++;
		if (i % 3 == 0) {
			void *value = e->value;
			if (map_del(&m, e->key, e->klen) != value)
				bad_del++;
		}
	}
	CHECK_INT(visits, N);
	CHECK_INT(dup, 0);
	CHECK_INT(bad_del, 0);
	CHECK_INT(m.count, N - (N + 2) / 3);

	/* Deleting every entry as it comes empties the map. */
	visits = 0;
	map_iter_init(&it, &m);
	while ((e = map_next(&it))) {
		map_del(&m, e->key, e->klen);
		visits++;
	}
	CHECK_INT(visits, N - (N + 2) / 3);
	CHECK_INT(m.count, 0);
	map_iter_init(&it, &m);
	CHECK(map_next(&it) == NULL);
	map_fini(&m);
	free(seen);
}

int main(void)
{
	test_siphash_vectors();
	test_hash_determinism();
	test_basic();
	test_hashed();
	test_klen();
	test_growth();
	test_iteration();
	return check_report("test_map");
}
