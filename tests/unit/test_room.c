/* test_room.c - rooms: join and leave (swap-remove keeps both sides'
 * indexes right), emptied rooms disappear, and a broadcast over several
 * rooms reaches each member once and skips the excepted. */
#include <errno.h>
#include <stdlib.h>

#include "check.h"
#include "hub/room.h"

#define N 100

struct member {
	struct room_set set;
	int hits;
};

static void on_deliver(void *owner, void *arg)
{
	struct member *m = owner;
	(void)arg;
	m->hits++;
}

static void reset(struct member *m, int n)
{
	for (int i = 0; i < n; i++)
		m[i].hits = 0;
}

/* Every membership is recorded consistently on both sides. */
static int consistent(struct nsp *n, struct member *m, int count)
{
	for (int i = 0; i < count; i++)
		for (uint32_t j = 0; j < m[i].set.count; j++) {
			struct membership *ms = &m[i].set.v[j];
			if (ms->room->members[ms->index].set != &m[i].set ||
			    ms->room->members[ms->index].slot != j)
				return 0;
			if (room_find(n, ms->room->name, ms->room->name_len) != ms->room)
				return 0;
		}
	return 1;
}

int main(void)
{
	struct nsp *n = nsp_new("/messages", 9);
	struct member *m = calloc(N, sizeof(*m));
	static const char *const ab[] = { "a", "b" };
	static const size_t ab_len[] = { 1, 1 };

	for (int i = 0; i < N; i++)
		m[i].set.owner = &m[i];

	/* Everyone in "a"; the even ones also in "b"; 0..9 also in "c". */
	for (int i = 0; i < N; i++) {
		CHECK_INT(room_join(n, &m[i].set, "a", 1, 0), 0);
		if (i % 2 == 0)
			room_join(n, &m[i].set, "b", 1, 0);
		if (i < 10)
			room_join(n, &m[i].set, "c", 1, 0);
	}
	CHECK_INT(room_join(n, &m[0].set, "a", 1, 0), -EEXIST);
	CHECK_UINT(room_find(n, "a", 1)->count, N);
	CHECK_UINT(room_find(n, "b", 1)->count, N / 2);
	CHECK(room_has(n, &m[4].set, "b", 1));
	CHECK(!room_has(n, &m[5].set, "b", 1));
	CHECK(consistent(n, m, N));

	/* Two rooms, each member once. */
	struct room_target t = { .rooms = ab, .room_lens = ab_len, .nrooms = 2 };
	CHECK_UINT(room_broadcast(n, &t, on_deliver, NULL), N);
	int once = 1;
	for (int i = 0; i < N; i++)
		once &= m[i].hits == 1;
	CHECK(once);

	/* Except a socket and a room. */
	static const char *const except[] = { "c" };
	static const size_t except_len[] = { 1 };
	struct room_set *skip[] = { &m[50].set };
	reset(m, N);
	t.except_rooms = except;
	t.except_lens = except_len;
	t.nexcept_rooms = 1;
	t.except_sets = skip;
	t.nexcept_sets = 1;
	CHECK_UINT(room_broadcast(n, &t, on_deliver, NULL), N - 10 - 1);
	CHECK_INT(m[5].hits, 0);
	CHECK_INT(m[50].hits, 0);
	CHECK_INT(m[51].hits, 1);

	/* Leaving from the middle keeps the rest consistent. */
	for (int i = 0; i < N; i += 3)
		CHECK_INT(room_leave(n, &m[i].set, "a", 1), 0);
	CHECK_INT(room_leave(n, &m[0].set, "a", 1), -ENOENT);
	CHECK(consistent(n, m, N));
	CHECK_UINT(room_find(n, "a", 1)->count, N - (N + 2) / 3);

	/* An emptied room is gone; leave_all empties a socket. */
	for (int i = 0; i < 10; i++)
		room_leave(n, &m[i].set, "c", 1);
	CHECK(room_find(n, "c", 1) == NULL);
	for (int i = 0; i < N; i++)
		room_leave_all(n, &m[i].set);
	CHECK(room_find(n, "a", 1) == NULL);
	CHECK(room_find(n, "b", 1) == NULL);
	CHECK_UINT(n->rooms.count, 0);

	nsp_free(n);
	free(m);
	return check_report("test_room");
}
