/* frame.h - outbound frames and per-connection output queues. A frame is
 * encoded once and shared by reference by every socket it goes to, so a
 * broadcast to N sockets costs one encoding and N queue slots. */
#ifndef PARLEY_FRAME_H
#define PARLEY_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* The room before a frame's payload. The output queue writes the frame's
 * WebSocket header there (wire/websocket.h: at most WS_HEADER_MAX, 10
 * bytes), so that the header and the payload leave in one piece. 16 is
 * libwebsockets' LWS_PRE as well, so a payload may also be given to
 * lws_write in place: net/http.h asserts that it still is. */
#define FRAME_HEADROOM 16

struct frame {
	uint32_t refs;
	uint32_t len;
	uint8_t binary; /* a WebSocket binary message (an attachment) */
	uint8_t opcode; /* a WebSocket control frame (0x9 ping), or 0 for data */
	/* FRAME_HEADROOM bytes of headroom, then the payload, then a NUL. */
	unsigned char buf[];
};

#define frame_data(f) ((f)->buf + FRAME_HEADROOM)

/* A new frame of `len` bytes copied from `data` (or left for the caller to
 * fill when `data` is NULL), holding one reference: the caller's, to give
 * to a queue or drop with frame_unref. Never NULL (the allocator aborts);
 * `len` is below 4 GiB (the caller's limits keep it far below). */
struct frame *frame_new(const void *data, size_t len, int binary);
/* The same, from two pieces: `a` then `b` (a text frame). */
struct frame *frame_new2(const void *a, size_t alen, const void *b, size_t blen);
/* Takes one more reference: the caller owns it. */
static inline struct frame *frame_ref(struct frame *f)
{
	f->refs++;
	return f;
}
/* Drops one reference; frees at zero. NULL is a no-op. */
void frame_unref(struct frame *f);

/* A ring of frame references, empty until first used. */
struct outq {
	struct frame **slot;
	uint32_t head;
	uint32_t count;
	uint32_t cap; /* a power of two, or 0 */
	size_t bytes; /* payload bytes queued */
};

/* Appends a reference to `f` (the queue takes it: callers frame_ref first). */
void outq_push(struct outq *q, struct frame *f);
/* Returns the oldest frame without removing it, or NULL. */
static inline struct frame *outq_peek(const struct outq *q)
{
	return q->count ? q->slot[q->head] : NULL;
}
/* Removes the oldest frame and returns the reference the queue held: the
 * caller owns it now. NULL when the queue is empty. */
struct frame *outq_pop(struct outq *q);
/* Drops every queued reference and the ring itself. */
void outq_clear(struct outq *q);

#endif
