/* scratch.c - memory a host function holds for one call into Lua (see
 * scratch.h): each block is linked into the list of what the calls in
 * progress hold, and unlinked when it is freed; what is left in the list
 * when the outermost call ends was stranded by an error. */
#include "base/scratch.h"

#include <stdlib.h>

#include "base/alloc.h"

/* A block's links (both NULL: taken outside a call, in no list). */
union scratch_head {
	struct {
		union scratch_head *prev, *next;
	} link;
	max_align_t align; /* what follows is aligned as malloc's memory is */
};

static union scratch_head held = { .link = { &held, &held } };
static int depth; /* calls into Lua in progress */

static void insert(union scratch_head *h)
{
	h->link.prev = &held;
	h->link.next = held.link.next;
	held.link.next->link.prev = h;
	held.link.next = h;
}

static void unlink_head(union scratch_head *h)
{
	h->link.prev->link.next = h->link.next;
	h->link.next->link.prev = h->link.prev;
}

void scratch_begin(void)
{
	depth++;
}

void scratch_end(void)
{
	if (--depth)
		return;
	while (held.link.next != &held) {
		union scratch_head *h = held.link.next;
		unlink_head(h);
		free(h);
	}
}

void *scratch_alloc(size_t n)
{
	union scratch_head *h = xmalloc(sizeof(*h) + n);

	if (depth)
		insert(h);
	else
		h->link.prev = h->link.next = NULL;
	return h + 1;
}

void *scratch_realloc(void *p, size_t n)
{
	union scratch_head *h;
	int linked;

	if (!p)
		return scratch_alloc(n);
	h = (union scratch_head *)p - 1;
	linked = h->link.next != NULL;
	if (linked)
		unlink_head(h);
	h = xrealloc(h, sizeof(*h) + n);
	if (linked)
		insert(h);
	return h + 1;
}

void scratch_free(void *p)
{
	union scratch_head *h;

	if (!p)
		return;
	h = (union scratch_head *)p - 1;
	if (h->link.next)
		unlink_head(h);
	free(h);
}
