/* eio.c - Engine.IO v4 packet codec (see eio.h). */
#include "wire/eio.h"

#include <string.h>

int eio_parse(const char *p, size_t len, struct eio_packet *pkt)
{
	if (len == 0)
		return -1;
	if (p[0] == 'b') {
		pkt->type = EIO_MESSAGE;
		pkt->base64 = 1;
	} else if (p[0] >= '0' && p[0] <= '6') {
		pkt->type = (enum eio_type)(p[0] - '0');
		pkt->base64 = 0;
	} else {
		return -1;
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
