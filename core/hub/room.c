/* room.c - namespaces, rooms and broadcast walks (see room.h). Each
 * membership is recorded twice, in the room and in the member's set, with
 * each side holding the other's index so that leaving is a swap-remove. */
#include "hub/room.h"

#include <errno.h>

#include "base/alloc.h"

static uint64_t broadcast_epoch;
static void (*room_watch)(struct nsp *n, const struct room *r, int opened);

void room_set_watch(void (*on_room)(struct nsp *n, const struct room *r, int opened))
{
	room_watch = on_room;
}

struct nsp *nsp_new(const char *name, size_t len)
{
	struct nsp *n = xcalloc(1, sizeof(*n));

	n->name = xstrndup(name, len);
	n->name_len = len;
	map_init(&n->rooms);
	return n;
}

void nsp_free(struct nsp *n)
{
	struct map_iter it;
	struct map_entry *e;

	if (!n)
		return;
	map_iter_init(&it, &n->rooms);
	while ((e = map_next(&it))) {
		struct room *r = e->value;
		free(r->members);
		free(r);
	}
	map_fini(&n->rooms);
	free(n->name);
	free(n);
}

struct room *room_find(const struct nsp *n, const char *name, size_t len)
{
	return map_get(&n->rooms, name, len);
}

static int set_find(const struct room_set *set, const struct room *r)
{
	for (uint32_t i = 0; i < set->count; i++)
		if (set->v[i].room == r)
			return (int)i;
	return -1;
}

int room_has(const struct nsp *n, const struct room_set *set, const char *name,
	     size_t len)
{
	struct room *r = room_find(n, name, len);

	return r && set_find(set, r) >= 0;
}

int room_stamp(const struct nsp *n, const struct room_set *set, const char *name,
	       size_t len, uint64_t *stamp)
{
	struct room *r = room_find(n, name, len);
	int i = r ? set_find(set, r) : -1;

	if (i < 0)
		return 0;
	*stamp = set->v[i].stamp;
	return 1;
}

int room_join(struct nsp *n, struct room_set *set, const char *name, size_t len,
	      uint64_t stamp)
{
	struct room *r = room_find(n, name, len);

	if (!r) {
		if (len > SIZE_MAX - sizeof(*r) - 1)
			alloc_fail(SIZE_MAX);
		r = xcalloc(1, sizeof(*r) + len + 1);
		memcpy(r->name, name, len);
		r->name_len = len;
		map_put(&n->rooms, name, len, r);
		if (room_watch)
			room_watch(n, r, 1);
	} else if (set_find(set, r) >= 0) {
		return -EEXIST;
	}
	/* Both lists start small: most rooms are a user's, with one or two
	 * sockets in it, and most sockets are in their user's room and one
	 * conversation. An idle connection pays for what it holds. */
	if (r->count == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 1;
		r->members = xrealloc(r->members, r->cap * sizeof(*r->members));
	}
	if (set->count == set->cap) {
		set->cap = set->cap ? set->cap * 2 : 2;
		set->v = xrealloc(set->v, set->cap * sizeof(*set->v));
	}
	r->members[r->count] = (struct room_member){ set, set->count };
	set->v[set->count] = (struct membership){ r, r->count, stamp };
	r->count++;
	set->count++;
	return 0;
}

/* Removes membership `slot` of `set`; returns the room, emptied or not. */
static struct room *unlink_membership(struct room_set *set, uint32_t slot)
{
	struct membership m = set->v[slot];
	struct room *r = m.room;
	uint32_t last;

	/* Swap the room's last member into the freed index. */
	last = r->count - 1;
	if (m.index != last) {
		r->members[m.index] = r->members[last];
		struct room_member *moved = &r->members[m.index];
		moved->set->v[moved->slot].index = m.index;
	}
	r->count--;

	/* Swap the set's last membership into the freed slot. */
	last = set->count - 1;
	if (slot != last) {
		set->v[slot] = set->v[last];
		struct membership *moved = &set->v[slot];
		moved->room->members[moved->index].slot = slot;
	}
	set->count--;
	return r;
}

static void drop_if_empty(struct nsp *n, struct room *r)
{
	if (r->count)
		return;
	map_del(&n->rooms, r->name, r->name_len);
	if (room_watch)
		room_watch(n, r, 0);
	free(r->members);
	free(r);
}

int room_leave(struct nsp *n, struct room_set *set, const char *name, size_t len)
{
	struct room *r = room_find(n, name, len);
	int slot;

	if (!r || (slot = set_find(set, r)) < 0)
		return -ENOENT;
	unlink_membership(set, (uint32_t)slot);
	drop_if_empty(n, r);
	return 0;
}

void room_leave_all(struct nsp *n, struct room_set *set)
{
	while (set->count) {
		struct room *r = unlink_membership(set, set->count - 1);
		drop_if_empty(n, r);
	}
	free(set->v);
	set->v = NULL;
	set->cap = 0;
}

uint64_t room_mark_except(struct nsp *n, const struct room_target *t)
{
	uint64_t epoch = ++broadcast_epoch;

	for (size_t i = 0; i < t->nexcept_sets; i++)
		t->except_sets[i]->mark = epoch;
	for (size_t i = 0; i < t->nexcept_rooms; i++) {
		struct room *r = room_find(n, t->except_rooms[i], t->except_lens[i]);
		for (uint32_t j = 0; r && j < r->count; j++)
			r->members[j].set->mark = epoch;
	}
	return epoch;
}

size_t room_broadcast(struct nsp *n, const struct room_target *t,
		      void (*deliver)(void *owner, void *arg), void *arg)
{
	/* The excluded are marked first: the walk skips anything marked. */
	uint64_t epoch = room_mark_except(n, t);
	size_t delivered = 0;
	for (size_t i = 0; i < t->nrooms; i++) {
		struct room *r = room_find(n, t->rooms[i], t->room_lens[i]);
		for (uint32_t j = 0; r && j < r->count; j++) {
			struct room_set *s = r->members[j].set;
			if (s->mark == epoch)
				continue;
			s->mark = epoch;
			deliver(s->owner, arg);
			delivered++;
		}
	}
	return delivered;
}
