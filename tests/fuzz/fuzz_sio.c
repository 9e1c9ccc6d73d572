/* fuzz_sio.c - Socket.IO packets: the header (type, attachments, namespace,
 * ack id), the payload as JSON, an event's name, and the header written
 * back and parsed again to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/json.h"
#include "wire/sio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sio_packet pkt, again;
	char head[SIO_HEADER_MAX(256) + 1], name[256];
	struct json_iter it;
	struct json_span first;

	if (sio_parse((const char *)data, size, 64, &pkt) < 0)
		return 0;
	if (pkt.len && json_validate(pkt.data, pkt.len, 32) == JSON_ARRAY &&
	    json_iter_begin((struct json_span){ pkt.data, pkt.len }, &it) == 0 &&
	    json_array_next(&it, &first) == 1 && json_kind_of(first) == JSON_STRING)
		json_string_unescape(first, name, sizeof(name));
	if (pkt.nsp_len > 256)
		return 0;
	size_t n = sio_write_header(head, pkt.type, pkt.attachments, pkt.nsp, pkt.nsp_len, pkt.id);
	if (sio_parse(head, n, 64, &again) < 0 || again.type != pkt.type || again.id != pkt.id ||
	    again.attachments != pkt.attachments || again.nsp_len != pkt.nsp_len ||
	    memcmp(again.nsp, pkt.nsp, pkt.nsp_len) != 0)
		abort();
	return 0;
}
