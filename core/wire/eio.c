/* eio.c - Engine.IO v4 packet codec (see eio.h). */
#include "wire/eio.h"

#include <errno.h>
#include <string.h>

#include "wire/base64.h"

int eio_parse(const char *p, size_t len, struct eio_packet *pkt)
{
	if (len == 0)
		return -EBADMSG;
	if (p[0] == 'b') {
		pkt->type = EIO_MESSAGE;
		pkt->base64 = 1;
	} else if (p[0] >= '0' && p[0] <= '6') {
		pkt->type = (enum eio_type)(p[0] - '0');
		pkt->base64 = 0;
	} else {
		return -EBADMSG;
	}
	pkt->data = p + 1;
	pkt->len = len - 1;
	return 0;
}

int eio_payload_next(const char **cur, const char *end, const char **seg,
		     size_t *seglen)
{
	const char *p = *cur;
	const char *sep;

	if (p >= end)
		return 0;
	sep = memchr(p, EIO_SEPARATOR, (size_t)(end - p));
	*seg = p;
	if (sep) {
		*seglen = (size_t)(sep - p);
		*cur = sep + 1;
	} else {
		*seglen = (size_t)(end - p);
		*cur = end;
	}
	return 1;
}

size_t eio_payload_room(size_t len, int binary)
{
	return 1 + (binary ? 1 + base64_encoded_len(len) : len);
}

size_t eio_payload_append(char *out, size_t n, const void *data, size_t len, int binary)
{
	char *p = out + n;

	if (n)
		*p++ = EIO_SEPARATOR;
	if (binary) {
		*p++ = 'b';
		p += base64_encode(data, len, p);
	} else if (len) {
		memcpy(p, data, len);
		p += len;
	}
	return (size_t)(p - out);
}
