/* fuzz_eio.c - Engine.IO: a polling payload split on the record separator,
 * each packet parsed, "b" packets decoded from base64; a payload whose
 * packets all read written again by the encoder to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/base64.h"
#include "wire/eio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *cur = (const char *)data, *end = cur + size, *seg;
	size_t len, room = 0, n = 0;
	struct eio_packet pkt;
	/* The payload written again, packet by packet, as the server would:
	 * text as it is, binary from its decoded bytes. */
	size_t cap = 2 * size + 8;
	char *again = malloc(cap);
	int whole = size > 0;

	while (eio_payload_next(&cur, end, &seg, &len)) {
		if (eio_parse(seg, len, &pkt) < 0) {
			whole = 0;
			continue;
		}
		if (!pkt.base64) {
			room += eio_payload_room(len, 0);
			if (whole && n + eio_payload_room(len, 0) > cap)
				abort();
			if (whole)
				n = eio_payload_append(again, n, seg, len, 0);
			continue;
		}
		unsigned char *raw = malloc(base64_decoded_max(pkt.len) + 1);
		long r = base64_decode(pkt.data, pkt.len, raw);
		if (r > (long)base64_decoded_max(pkt.len))
			abort();
		if (r < 0) {
			whole = 0;
		} else {
			room += eio_payload_room((size_t)r, 1);
			/* Base64 decoding is strict, so the same bytes come back
			 * no longer than they came. */
			if (whole && n + eio_payload_room((size_t)r, 1) > cap)
				abort();
			if (whole)
				n = eio_payload_append(again, n, raw, (size_t)r, 1);
		}
		free(raw);
	}
	/* A payload that ends in a separator has an empty last packet, which
	 * eio_payload_next does not return: it cannot come back the same. */
	if (size && data[size - 1] == EIO_SEPARATOR)
		whole = 0;
	if (whole && (n > room || n != size || memcmp(again, data, size) != 0))
		abort();
	free(again);
	/* The whole input as one WebSocket message too. */
	eio_parse((const char *)data, size, &pkt);
	return 0;
}
