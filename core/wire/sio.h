/* sio.h - Socket.IO v5 packet codec:
 *   <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]
 * Parsing splits a packet into views; the payload is validated by the caller
 * (json.h). Encoding writes a packet's header; the payload is appended. A
 * binary packet's attachments are collected by sio_binary_*; the runtime
 * (core/lua/binary.lua) puts them in place of their placeholders. */
#ifndef PARLEY_SIO_H
#define PARLEY_SIO_H

#include <stddef.h>
#include <stdint.h>

#include "wire/json.h"

enum sio_type {
	SIO_CONNECT = 0,
	SIO_DISCONNECT = 1,
	SIO_EVENT = 2,
	SIO_ACK = 3,
	SIO_CONNECT_ERROR = 4,
	SIO_BINARY_EVENT = 5,
	SIO_BINARY_ACK = 6,
};

/* Ack ids and attachment counts are capped well below what the reference
 * client can produce in a session's lifetime. */
#define SIO_MAX_ACK_ID 9007199254740991ULL /* 2^53 - 1 */

struct sio_packet {
	enum sio_type type;
	unsigned attachments; /* binary packets only */
	const char *nsp;      /* "/" when the packet names none */
	size_t nsp_len;
	int64_t id;           /* ack id, -1 when absent */
	const char *data;     /* JSON payload, len 0 when absent */
	size_t len;
};

/* Parses the packet in `p`. Fails (-1) on an unknown type, a binary type
 * without "<n>-" or with more than `max_attachments`, attachments on a
 * non-binary type, a namespace not starting with '/', or an ack id over
 * SIO_MAX_ACK_ID. Returns 0 on success. */
int sio_parse(const char *p, size_t len, unsigned max_attachments,
	      struct sio_packet *pkt);

/* Room a header needs: type, count, '-', namespace, ',', id. */
#define SIO_HEADER_MAX(nsp_len) (1 + 10 + 1 + (nsp_len) + 1 + 20)

/* Writes the header of a packet into `out` (SIO_HEADER_MAX bytes): the
 * attachment count only for binary types, the namespace unless it is "/",
 * the id unless it is negative. Returns the bytes written. */
size_t sio_write_header(char *out, enum sio_type type, unsigned attachments,
			const char *nsp, size_t nsp_len, int64_t id);

/* Splits an EVENT payload (`data`, validated here to `max_depth`): a JSON
 * array whose first element is a string, the event's name (`*name`, the
 * string token). `*args` is the rest after the name: ",a,b]" - the caller
 * swaps the comma for '[' to have the arguments as an array of their own -
 * or p NULL, len 0 when there are none. Returns 0, or -1 when the payload
 * is not such an array. */
int sio_event_split(const char *data, size_t len, int max_depth,
		    struct json_span *name, struct json_span *args);

/* One attachment of a binary packet: a copy of its bytes. */
struct sio_attachment {
	unsigned char *data;
	size_t len;
};

/* A binary packet (BINARY_EVENT or BINARY_ACK) being reassembled: its header
 * and JSON payload, then the attachments the header announced, in order. */
struct sio_binary {
	enum sio_type type;
	int64_t id;
	char *json;      /* the payload, NUL-terminated; owned */
	size_t json_len;
	unsigned expected; /* the header's attachment count */
	unsigned count;    /* attachments received so far */
	struct sio_attachment *att; /* `expected` slots; owned */
	size_t bytes;      /* held: the payload and the attachments so far */
	size_t max_bytes;  /* the most `bytes` may reach */
};

/* What sio_binary_init and sio_binary_add return for bytes past max_bytes. */
#define SIO_BINARY_TOO_BIG (-2)

/* Starts reassembling the parsed binary packet `pkt`, copying its payload
 * (its attachment count was capped by sio_parse); the payload and the
 * attachments together may hold `max_bytes`. Returns 0; -1 when `pkt` is
 * not a binary type, SIO_BINARY_TOO_BIG when its payload alone is over
 * `max_bytes` (nothing is allocated either way). */
int sio_binary_init(struct sio_binary *b, const struct sio_packet *pkt, size_t max_bytes);

/* Adds the next attachment, copying its `len` bytes. Returns 1 when that
 * was the last one announced, 0 while more are due; nothing is kept when
 * it returns -1 (none was due any more) or SIO_BINARY_TOO_BIG (it would
 * take the packet past its max_bytes): checked before the copy. */
int sio_binary_add(struct sio_binary *b, const void *data, size_t len);

/* Whether every attachment announced has arrived (at once for a count 0). */
static inline int sio_binary_complete(const struct sio_binary *b)
{
	return b->count == b->expected;
}

/* Frees what `b` holds. */
void sio_binary_fini(struct sio_binary *b);

#endif
