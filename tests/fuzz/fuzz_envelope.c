/* fuzz_envelope.c - the plain WebSocket frame {"event","data","ack"}: its
 * fields must lie inside the input, the name within its bound. */
#include <stdint.h>
#include <stdlib.h>

#include "wire/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope e;
	const char *p = (const char *)data;

	if (envelope_parse(p, size, 32, &e) != ENVELOPE_OK)
		return 0;
	if (e.name_len > ENVELOPE_NAME_MAX)
		abort();
	if (e.data.p && (e.data.p < p || e.data.p + e.data.len > p + size))
		abort();
	if (e.kind == ENVELOPE_REPLY && e.ack < 0)
		abort();
	return 0;
}
