/* fuzz_envelope.c - the plain WebSocket frame {"event","data","ack"}: its
 * fields must lie inside the input, the name within its bound; written
 * again by the envelope writers, the frame reads back to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/envelope.h"

static void same_data(const struct envelope *a, const struct envelope *b)
{
	/* No data is written as null. */
	const char *p = a->data.p ? a->data.p : "null";
	size_t len = a->data.p ? a->data.len : 4;

	if (!b->data.p || b->data.len != len || memcmp(b->data.p, p, len) != 0)
		abort();
}

/* Writes `e` again and parses what was written. */
static void again(const struct envelope *e)
{
	struct envelope back;
	size_t room = e->kind == ENVELOPE_EVENT ? ENVELOPE_EVENT_MAX(e->name_len, e->data.len) :
			ENVELOPE_REPLY_MAX(e->data.len);
	char *out = malloc(room);
	size_t n = e->kind == ENVELOPE_EVENT ?
		   envelope_event_write(out, e->name, e->name_len, e->data.p, e->data.len, e->ack) :
		   envelope_reply_write(out, (uint64_t)e->ack, e->data.p, e->data.len);

	if (n > room || envelope_parse(out, n, 32, &back) != 0 || back.kind != e->kind ||
	    back.ack != e->ack || back.name_len != e->name_len ||
	    memcmp(back.name, e->name, e->name_len) != 0)
		abort();
	same_data(e, &back);
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope e;
	const char *p = (const char *)data;

	if (envelope_parse(p, size, 32, &e) != 0)
		return 0;
	if (e.name_len > ENVELOPE_NAME_MAX)
		abort();
	if (e.data.p && (e.data.p < p || e.data.p + e.data.len > p + size))
		abort();
	if (e.kind == ENVELOPE_REPLY && e.ack < 0)
		abort();
	again(&e);
	return 0;
}
