/* fuzz_envelope.c - the plain WebSocket frame {"event","data"|"args","ack"}:
 * its fields must lie inside the input, the name within its bound; written
 * again by the envelope writers, the frame reads back to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/envelope.h"

static void same_span(struct json_span a, const char *p, size_t len)
{
	if (!a.p || a.len != len || memcmp(a.p, p, len) != 0)
		abort();
}

/* Writes `e` again and parses what was written: "data" as one argument
 * (none is written as null), the inside of "args" as several (none, "[]",
 * as "data": null too). */
static void again(const struct envelope *e)
{
	struct envelope back;
	const char *args = e->data.p;
	size_t len = e->data.len;
	unsigned nargs = 1;

	if (e->args.p) {
		args = e->args.p + 1;
		len = e->args.len - 2;
		nargs = 2;
	}
	size_t room = e->kind == ENVELOPE_EVENT ? ENVELOPE_EVENT_MAX(e->name_len, len) :
			ENVELOPE_REPLY_MAX(len);
	char *out = malloc(room);
	size_t n = e->kind == ENVELOPE_EVENT ?
		   envelope_event_write(out, e->name, e->name_len, args, len, nargs, e->ack) :
		   envelope_reply_write(out, (uint64_t)e->ack, args, len, nargs);

	if (n > room || envelope_parse(out, n, 32, &back) != 0 || back.kind != e->kind ||
	    back.ack != e->ack || back.name_len != e->name_len ||
	    memcmp(back.name, e->name, e->name_len) != 0)
		abort();
	if (e->args.p && len)
		same_span(back.args, e->args.p, e->args.len);
	else if (args && len)
		same_span(back.data, args, len);
	else
		same_span(back.data, "null", 4);
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
	if (e.args.p && (e.args.p < p || e.args.p + e.args.len > p + size || e.data.p ||
			 e.args.len < 2 || e.args.p[0] != '[' || e.args.p[e.args.len - 1] != ']'))
		abort();
	if (e.kind == ENVELOPE_REPLY && e.ack < 0)
		abort();
	again(&e);
	return 0;
}
