/* fuzz_eio.c - Engine.IO: a polling payload split on the record separator,
 * each packet parsed, "b" packets decoded from base64. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/base64.h"
#include "wire/eio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *cur = (const char *)data, *end = cur + size, *seg;
	size_t len;
	struct eio_packet pkt;

	while (eio_payload_next(&cur, end, &seg, &len)) {
		if (eio_parse(seg, len, &pkt) == 0 && pkt.base64) {
			unsigned char *raw = malloc(base64_decoded_max(pkt.len) + 1);
			long n = base64_decode(pkt.data, pkt.len, raw);
			if (n > (long)base64_decoded_max(pkt.len))
				abort();
			free(raw);
		}
	}
	/* The whole input as one WebSocket message too. */
	eio_parse((const char *)data, size, &pkt);
	return 0;
}
