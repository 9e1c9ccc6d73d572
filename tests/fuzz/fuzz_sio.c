/* fuzz_sio.c - Socket.IO packets: the header (type, attachments, namespace,
 * ack id), the payload as JSON, an event's name, and the packet written
 * back - its header, and a whole event or ack by the encoders - and parsed
 * again to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/json.h"
#include "wire/sio.h"

/* An event: written again from its parts, it reads back to the same. */
static void event_again(const struct sio_packet *pkt, const char *name, long nlen,
			struct json_span args)
{
	/* The arguments without the comma before them and the bracket after. */
	const char *inner = args.p ? args.p + 1 : NULL;
	size_t ilen = args.p ? args.len - 2 : 0;
	char *out = malloc(SIO_EVENT_MAX(pkt->nsp_len, (size_t)nlen, ilen));
	struct sio_packet again;
	struct json_span name2, args2;
	char back[256];

	size_t n = sio_event_write(out, pkt->nsp, pkt->nsp_len, pkt->id, pkt->attachments, name,
				   (size_t)nlen, inner, ilen);
	if (n > SIO_EVENT_MAX(pkt->nsp_len, (size_t)nlen, ilen))
		abort();
	/* The count picks the type: a binary event announcing no attachment
	 * ("50-[...]") is written as the plain event it amounts to. */
	enum sio_type type = pkt->attachments ? SIO_BINARY_EVENT : SIO_EVENT;
	if (sio_parse(out, n, 64, &again) < 0 || again.type != type || again.id != pkt->id ||
	    again.attachments != pkt->attachments || again.nsp_len != pkt->nsp_len ||
	    memcmp(again.nsp, pkt->nsp, pkt->nsp_len) != 0)
		abort();
	if (sio_event_split(again.data, again.len, 32, &name2, &args2) < 0 ||
	    json_string_unescape(name2, back, sizeof(back)) != nlen ||
	    memcmp(back, name, (size_t)nlen) != 0)
		abort();
	if ((args.p == NULL) != (args2.p == NULL) ||
	    (args.p && (args2.len != args.len || memcmp(args2.p, args.p, args.len) != 0)))
		abort();
	free(out);
}

/* An ack with an array payload: written again, the same bytes. */
static void ack_again(const struct sio_packet *pkt)
{
	const char *inner = pkt->data + 1;
	size_t ilen = pkt->len - 2;
	char *out = malloc(SIO_ACK_MAX(pkt->nsp_len, ilen));
	struct sio_packet again;

	size_t n = sio_ack_write(out, pkt->nsp, pkt->nsp_len, (uint64_t)pkt->id, pkt->attachments,
				 inner, ilen);
	if (n > SIO_ACK_MAX(pkt->nsp_len, ilen))
		abort();
	enum sio_type type = pkt->attachments ? SIO_BINARY_ACK : SIO_ACK;
	if (sio_parse(out, n, 64, &again) < 0 || again.type != type || again.id != pkt->id ||
	    again.attachments != pkt->attachments || again.nsp_len != pkt->nsp_len ||
	    memcmp(again.nsp, pkt->nsp, pkt->nsp_len) != 0 || again.len != pkt->len ||
	    memcmp(again.data, pkt->data, pkt->len) != 0)
		abort();
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sio_packet pkt, again;
	char head[SIO_HEADER_MAX(256) + 1], name[256];
	struct json_span first, args;
	long nlen = -1;

	if (sio_parse((const char *)data, size, 64, &pkt) < 0)
		return 0;
	if (pkt.len && sio_event_split(pkt.data, pkt.len, 32, &first, &args) == 0)
		nlen = json_string_unescape(first, name, sizeof(name));
	if (pkt.nsp_len > 256)
		return 0;
	size_t n = sio_write_header(head, pkt.type, pkt.attachments, pkt.nsp, pkt.nsp_len, pkt.id);
	if (sio_parse(head, n, 64, &again) < 0 || again.type != pkt.type || again.id != pkt.id ||
	    again.attachments != pkt.attachments || again.nsp_len != pkt.nsp_len ||
	    memcmp(again.nsp, pkt.nsp, pkt.nsp_len) != 0)
		abort();
	/* A payload starting with a digit would run into the id when written
	 * again: only payloads the encoders write, arrays with nothing around
	 * them, go round. */
	if (nlen >= 0 && (pkt.type == SIO_EVENT || pkt.type == SIO_BINARY_EVENT) &&
	    pkt.data[0] == '[' && pkt.data[pkt.len - 1] == ']')
		event_again(&pkt, name, nlen, args);
	if ((pkt.type == SIO_ACK || pkt.type == SIO_BINARY_ACK) && pkt.id >= 0 && pkt.len >= 2 &&
	    pkt.data[0] == '[' && pkt.data[pkt.len - 1] == ']' &&
	    json_validate(pkt.data, pkt.len, 32) == JSON_ARRAY)
		ack_again(&pkt);
	return 0;
}
