/* fuzz_msgpack.c - socket.io-msgpack-parser packets (wire/sio_msgpack.c):
 * a message the decoder takes gives valid JSON within the depth limit, its
 * attachments inside the message; written back as the text packet it
 * amounts to and encoded, it decodes to the same type, namespace and id,
 * and from there encoding and decoding again changes nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/json.h"
#include "wire/sio.h"
#include "wire/sio_msgpack.h"

#define MAX_DEPTH 32
#define MAX_ATT 64

/* The text packet `m` amounts to, as the server would write it. */
static char *text_of(const struct sio_msgpack_packet *m, size_t *len)
{
	enum sio_type type = m->pkt.type;
	char *out;
	size_t n;

	if (m->natt && type == SIO_EVENT)
		type = SIO_BINARY_EVENT;
	else if (m->natt && type == SIO_ACK)
		type = SIO_BINARY_ACK;
	out = malloc(SIO_HEADER_MAX(m->pkt.nsp_len) + m->pkt.len + 1);
	n = sio_write_header(out, type, m->natt, m->pkt.nsp, m->pkt.nsp_len, m->pkt.id);
	memcpy(out + n, m->pkt.data, m->pkt.len);
	*len = n + m->pkt.len;
	return out;
}

/* Encodes `m` as the server would into `buf` and decodes that into
 * `again` (whose attachments point into `buf`: the caller frees it after). */
static void round_trip(const struct sio_msgpack_packet *m, struct sio_msgpack_packet *again,
		       struct sio_msgpack_buf *buf)
{
	/* Floats come back with more digits than msgpack's float32 form. */
	const struct sio_msgpack_limits wide = { MAX_DEPTH, UINT32_MAX, 1u << 30 };
	const char *why;
	size_t len;
	char *text = text_of(m, &len);

	/* A payload starting with a digit would run into the id as text:
	 * the server's payloads are arrays and objects. */
	memset(buf, 0, sizeof(*buf));
	if (sio_msgpack_encode(text, len, m->att, m->natt, buf) < 0)
		abort();
	if (sio_msgpack_decode(buf->data, buf->len, &wide, again, &why) < 0)
		abort();
	if (again->pkt.type != m->pkt.type || again->pkt.id != m->pkt.id ||
	    again->pkt.nsp_len != m->pkt.nsp_len ||
	    memcmp(again->pkt.nsp, m->pkt.nsp, m->pkt.nsp_len) != 0 ||
	    (again->pkt.len == 0) != (m->pkt.len == 0))
		abort();
	free(text);
}

/* How many times `needle` occurs in the `len` bytes at `p`. */
static unsigned count(const char *p, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	unsigned c = 0;

	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(p + i, needle, n) == 0)
			c++;
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct sio_msgpack_limits lim = { MAX_DEPTH, MAX_ATT, 1u << 20 };
	struct sio_msgpack_packet m, second, third;
	struct sio_msgpack_buf buf2, buf3;
	const char *why = NULL;

	if (sio_msgpack_decode(data, size, &lim, &m, &why) < 0) {
		if (!why)
			abort(); /* every refusal says why */
		return 0;
	}
	if (m.pkt.type > SIO_CONNECT_ERROR || m.natt > MAX_ATT || m.pkt.len > lim.max_json ||
	    m.pkt.nsp_len == 0 || m.pkt.nsp[0] != '/')
		abort();
	if (m.pkt.len && json_validate(m.pkt.data, m.pkt.len, MAX_DEPTH) == JSON_INVALID)
		abort();
	for (unsigned i = 0; i < m.natt; i++)
		if (m.att[i].len > size || (const uint8_t *)m.att[i].data < data ||
		    (const uint8_t *)m.att[i].data + m.att[i].len > data + size)
			abort();
	/* Scalar payloads (a CONNECT_ERROR's string) are not what the server
	 * writes; everything else goes round. */
	if (m.pkt.len == 0 || m.pkt.data[0] == '[' || m.pkt.data[0] == '{') {
		round_trip(&m, &second, &buf2);
		/* A client's own {"_placeholder":true,...} objects turn into
		 * binaries on the way: only without them is the rest fixed. */
		if (count(m.pkt.data, m.pkt.len, "\"_placeholder\"") == m.natt) {
			round_trip(&second, &third, &buf3);
			if (third.pkt.len != second.pkt.len ||
			    memcmp(third.pkt.data, second.pkt.data, second.pkt.len) != 0 ||
			    third.natt != second.natt)
				abort();
			for (unsigned i = 0; i < third.natt; i++)
				if (third.att[i].len != second.att[i].len ||
				    memcmp(third.att[i].data, second.att[i].data, third.att[i].len) != 0)
					abort();
			sio_msgpack_packet_fini(&third);
			free(buf3.data);
		}
		sio_msgpack_packet_fini(&second);
		free(buf2.data);
	}
	sio_msgpack_packet_fini(&m);
	return 0;
}
