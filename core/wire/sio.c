/* sio.c - Socket.IO v5 packet codec (see sio.h): the header, an event's
 * name and arguments (with json.c), binary packets' reassembly. */
#include "wire/sio.h"

#include <errno.h>
#include <string.h>

#include "base/alloc.h"

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int sio_parse(const char *p, size_t len, unsigned max_attachments,
	      struct sio_packet *pkt)
{
	size_t i = 0;

	if (len == 0 || p[0] < '0' || p[0] > '6')
		return -EBADMSG;
	pkt->type = (enum sio_type)(p[0] - '0');
	pkt->attachments = 0;
	pkt->nsp = "/";
	pkt->nsp_len = 1;
	pkt->id = -1;
	i = 1;

	if (pkt->type == SIO_BINARY_EVENT || pkt->type == SIO_BINARY_ACK) {
		uint64_t n = 0;
		size_t start = i;
		while (i < len && is_digit(p[i])) {
			n = n * 10 + (uint64_t)(p[i] - '0');
			if (n > max_attachments)
				return -EBADMSG;
			i++;
		}
		if (i == start || i >= len || p[i] != '-')
			return -EBADMSG;
		pkt->attachments = (unsigned)n;
		i++;
	}

	if (i < len && p[i] == '/') {
		size_t start = i;
		while (i < len && p[i] != ',')
			i++;
		pkt->nsp = p + start;
		pkt->nsp_len = i - start;
		if (i < len)
			i++; /* the comma */
	}

	if (i < len && is_digit(p[i])) {
		uint64_t id = 0;
		while (i < len && is_digit(p[i])) {
			id = id * 10 + (uint64_t)(p[i] - '0');
			if (id > SIO_MAX_ACK_ID)
				return -EBADMSG;
			i++;
		}
		pkt->id = (int64_t)id;
	}

	pkt->data = p + i;
	pkt->len = len - i;
	return 0;
}

size_t sio_write_header(char *out, enum sio_type type, unsigned attachments,
			const char *nsp, size_t nsp_len, int64_t id)
{
	size_t n = 0;

	out[n++] = (char)('0' + type);
	if (type == SIO_BINARY_EVENT || type == SIO_BINARY_ACK) {
		n += json_uint_write(out + n, attachments);
		out[n++] = '-';
	}
	if (nsp_len && !(nsp_len == 1 && nsp[0] == '/')) {
		memcpy(out + n, nsp, nsp_len);
		n += nsp_len;
		out[n++] = ',';
	}
	if (id >= 0)
		n += json_uint_write(out + n, (uint64_t)id);
	return n;
}

size_t sio_event_write(char *out, const char *nsp, size_t nsp_len, int64_t id,
		       unsigned attachments, const char *name, size_t name_len,
		       const char *args, size_t args_len)
{
	size_t n = sio_write_header(out, attachments ? SIO_BINARY_EVENT : SIO_EVENT, attachments,
				    nsp, nsp_len, id);

	out[n++] = '[';
	n += json_escape(name, name_len, out + n);
	if (args && args_len) {
		out[n++] = ',';
		memcpy(out + n, args, args_len);
		n += args_len;
	}
	out[n++] = ']';
	return n;
}

size_t sio_event_offset(char *out, size_t len, uint64_t offset)
{
	size_t n = len - 1; /* over the closing ']' */

	out[n++] = ',';
	out[n++] = '"';
	n += json_uint_write(out + n, offset);
	out[n++] = '"';
	out[n++] = ']';
	return n;
}

size_t sio_ack_write(char *out, const char *nsp, size_t nsp_len, uint64_t id,
		     unsigned attachments, const char *args, size_t args_len)
{
	size_t n = sio_write_header(out, attachments ? SIO_BINARY_ACK : SIO_ACK, attachments,
				    nsp, nsp_len, (int64_t)id);

	out[n++] = '[';
	if (args && args_len) {
		memcpy(out + n, args, args_len);
		n += args_len;
	}
	out[n++] = ']';
	return n;
}

int sio_event_split(const char *data, size_t len, int max_depth,
		    struct json_span *name, struct json_span *args)
{
	struct json_iter it;
	struct json_span first;

	if (json_validate(data, len, max_depth) != JSON_ARRAY)
		return -EBADMSG;
	if (json_iter_begin((struct json_span){ data, len }, &it) < 0 ||
	    json_array_next(&it, &first) != 1 || json_kind_of(first) != JSON_STRING)
		return -EBADMSG;
	*name = first;
	/* The byte after the name (and any whitespace) is the comma or the
	 * array's closing bracket. */
	const char *rest = first.p + first.len;
	const char *end = data + len;
	while (rest < end && *rest != ',' && *rest != ']')
		rest++;
	if (rest < end && *rest == ',') {
		args->p = rest;
		args->len = (size_t)(end - rest);
	} else {
		args->p = NULL;
		args->len = 0;
	}
	return 0;
}

int sio_binary_init(struct sio_binary *b, const struct sio_packet *pkt, size_t max_bytes)
{
	if (pkt->type != SIO_BINARY_EVENT && pkt->type != SIO_BINARY_ACK)
		return -EINVAL;
	if (pkt->len > max_bytes)
		return -EMSGSIZE;
	b->bytes = pkt->len;
	b->max_bytes = max_bytes;
	b->type = pkt->type;
	b->id = pkt->id;
	b->json = xstrndup(pkt->data, pkt->len);
	b->json_len = pkt->len;
	b->expected = pkt->attachments;
	b->count = 0;
	b->att = xcalloc(pkt->attachments, sizeof(*b->att));
	return 0;
}

int sio_binary_add(struct sio_binary *b, const void *data, size_t len)
{
	struct sio_attachment *a;

	if (b->count >= b->expected)
		return -EBADMSG;
	if (len > b->max_bytes - b->bytes)
		return -EMSGSIZE;
	b->bytes += len;
	a = &b->att[b->count++];
	a->data = xmalloc(len);
	if (len)
		memcpy(a->data, data, len);
	a->len = len;
	return b->count == b->expected;
}

void sio_binary_fini(struct sio_binary *b)
{
	for (unsigned i = 0; i < b->count; i++)
		free(b->att[i].data);
	free(b->att);
	free(b->json);
	b->att = NULL;
	b->json = NULL;
	b->count = b->expected = 0;
	b->bytes = 0;
}
