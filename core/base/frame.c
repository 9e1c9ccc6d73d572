/* frame.c - shared outbound frames and output rings (see frame.h). */
#include "base/frame.h"
#include "base/alloc.h"

struct frame *frame_new(const void *data, size_t len, int binary)
{
	struct frame *f = xmalloc(sizeof(*f) + FRAME_HEADROOM + len + 1);

	f->refs = 1;
	f->len = (uint32_t)len;
	f->binary = (uint8_t)binary;
	f->opcode = 0;
	if (data)
		memcpy(frame_data(f), data, len);
	frame_data(f)[len] = '\0';
	return f;
}

struct frame *frame_new2(const void *a, size_t alen, const void *b, size_t blen)
{
	struct frame *f = frame_new(NULL, alen + blen, 0);

	memcpy(frame_data(f), a, alen);
	memcpy(frame_data(f) + alen, b, blen);
	return f;
}

void frame_unref(struct frame *f)
{
	if (f && --f->refs == 0)
		free(f);
}

void outq_push(struct outq *q, struct frame *f)
{
	if (q->count == q->cap) {
		uint32_t cap = q->cap ? q->cap * 2 : 4;
		struct frame **slot = xmalloc(cap * sizeof(*slot));
		/* Unwrap the ring into the new array, oldest first. */
		for (uint32_t i = 0; i < q->count; i++)
			slot[i] = q->slot[(q->head + i) & (q->cap - 1)];
		free(q->slot);
		q->slot = slot;
		q->head = 0;
		q->cap = cap;
	}
	q->slot[(q->head + q->count) & (q->cap - 1)] = f;
	q->count++;
	q->bytes += f->len;
}

struct frame *outq_pop(struct outq *q)
{
	struct frame *f;

	if (!q->count)
		return NULL;
	f = q->slot[q->head];
	q->head = (q->head + 1) & (q->cap - 1);
	q->count--;
	q->bytes -= f->len;
	if (q->count == 0) {
		/* Drained: an idle connection keeps no ring (malloc keeps small
		 * blocks at hand for the next burst). */
		free(q->slot);
		q->slot = NULL;
		q->cap = 0;
		q->head = 0;
	}
	return f;
}

void outq_clear(struct outq *q)
{
	struct frame *f;

	while ((f = outq_pop(q)))
		frame_unref(f);
	free(q->slot);
	memset(q, 0, sizeof(*q));
}
