/* fuzz_websocket.c - what parley reads off a new connection itself: the
 * request head (fields, header lists, permessage-deflate offers, the query
 * and its decoding), then
 * client frames (headers, their checks, unmasking) to the end of the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/websocket.h"

static void inside(const uint8_t *base, size_t size, const char *p, size_t n)
{
	if (n && ((const uint8_t *)p < base || (const uint8_t *)p + n > base + size))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_head h;
	uint8_t *copy = malloc(size + 1);
	int r = http_head_parse((const char *)data, size, &h);
	size_t off = 0;

	memcpy(copy, data, size);
	if (r > 0) {
		const char *k, *v;
		size_t pos = 0, klen, vlen;
		char *out;

		if ((size_t)r > size)
			abort();
		inside(data, (size_t)r, h.method, h.method_len);
		inside(data, (size_t)r, h.path, h.path_len);
		for (int i = 0; i < h.nfields; i++) {
			inside(data, (size_t)r, h.fields[i].name, h.fields[i].name_len);
			inside(data, (size_t)r, h.fields[i].value, h.fields[i].value_len);
			http_list_has(h.fields[i].value, h.fields[i].value_len, "upgrade");
			ws_deflate_offered(h.fields[i].value, h.fields[i].value_len);
		}
		http_head_field(&h, "sec-websocket-key");
		out = malloc((size_t)h.query_len + 1);
		while (query_next(h.query, h.query_len, &pos, &k, &klen, &v, &vlen)) {
			inside(data, (size_t)r, k, klen);
			if (url_decode(k, klen, out) > klen)
				abort();
			if (v && url_decode(v, vlen, out) > vlen)
				abort();
		}
		free(out);
		off = (size_t)r;
	}
	while (off < size) {
		struct ws_frame f;
		int hl = ws_frame_parse(copy + off, size - off, &f);
		if (!hl)
			break;
		ws_frame_error(&f, 0);
		ws_frame_error(&f, 1);
		if (f.len > size - off - (size_t)hl)
			break;
		ws_unmask(copy + off + hl, (size_t)f.len, f.mask, off & 3);
		off += (size_t)hl + (size_t)f.len;
	}
	free(copy);
	return 0;
}
