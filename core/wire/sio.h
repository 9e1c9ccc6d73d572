/* sio.h - Socket.IO v5 packet codec:
 *   <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]
 * Parsing splits a packet into views; the payload is validated by the caller
 * (json.h). Encoding writes a packet's header (the payload appended by the
 * caller), or a whole event or ack around the arguments' JSON. A
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

/* Parses the packet in `p` (`pkt` points into it). Returns 0, or -EBADMSG
 * on an unknown type, a binary type without "<n>-" or with more than
 * `max_attachments`, attachments on a non-binary type, a namespace not
 * starting with '/', or an ack id over SIO_MAX_ACK_ID. */
int sio_parse(const char *p, size_t len, unsigned max_attachments,
	      struct sio_packet *pkt);

/* Room a header needs: type, count, '-', namespace, ',', id. */
#define SIO_HEADER_MAX(nsp_len) (1 + 10 + 1 + (nsp_len) + 1 + 20)

/* Writes the header of a packet into `out` (SIO_HEADER_MAX bytes): the
 * attachment count only for binary types, the namespace and its comma
 * unless it is "/" (or empty: the default namespace too), the id unless it
 * is negative. Returns the bytes written. The namespace is written as it
 * is: one with a ',' in it cannot be read back (sio_parse ends it there). */
size_t sio_write_header(char *out, enum sio_type type, unsigned attachments,
			const char *nsp, size_t nsp_len, int64_t id);

/* Room sio_event_write needs: the header, then '[', the name escaped, ','
 * and the arguments, then ']'. */
#define SIO_EVENT_MAX(nsp_len, name_len, args_len) \
	(SIO_HEADER_MAX(nsp_len) + 1 + json_escaped_max(name_len) + 1 + (args_len) + 1)

/* Writes an EVENT packet into `out` (SIO_EVENT_MAX bytes), a BINARY_EVENT
 * when `attachments` is not 0 (the attachments themselves are frames of
 * their own, sent after it; `args` holds their placeholders):
 *     <type>[<attachments>-][<nsp>,][<id>]["<name>"[,<args>]]
 * `name` is `name_len` bytes of UTF-8, written as a JSON string. `args` is
 * the JSON of the arguments after the name, comma-separated with no
 * brackets ("1,{\"a\":2}"), written as it is; NULL or args_len 0 for none.
 * `id` is the ack id the client answers (negative: no answer asked); it
 * goes after the namespace's comma, never inside the namespace, whatever
 * the namespace holds. The Engine.IO message type ('4') that carries the
 * packet is the caller's to write before it. Returns the bytes written. */
size_t sio_event_write(char *out, const char *nsp, size_t nsp_len, int64_t id,
		       unsigned attachments, const char *name, size_t name_len,
		       const char *args, size_t args_len);

/* Room sio_event_offset adds to an event: ',' and the offset as a JSON
 * string. */
#define SIO_OFFSET_MAX (1 + 2 + JSON_UINT_MAX)

/* Adds `offset` as the last argument of the event packet of `len` bytes in
 * `out` (what sio_event_write wrote: it ends with ']'), as a JSON string of
 * its decimal digits: connection state recovery's offset (socket.io >= 4.6),
 * which the client hands back in its next CONNECT to say where it stopped.
 * `out` holds SIO_OFFSET_MAX more bytes. Returns the new length. */
size_t sio_event_offset(char *out, size_t len, uint64_t offset);

/* Room sio_ack_write needs: the header, then '[', the arguments, ']'. */
#define SIO_ACK_MAX(nsp_len, args_len) (SIO_HEADER_MAX(nsp_len) + 1 + (args_len) + 1)

/* Writes an ACK packet answering the client's ack `id` into `out`
 * (SIO_ACK_MAX bytes), a BINARY_ACK when `attachments` is not 0:
 *     <type>[<attachments>-][<nsp>,]<id>[<args>]
 * `args` as for sio_event_write (NULL or args_len 0: an empty list, "[]").
 * `id` is at most SIO_MAX_ACK_ID (the parser refuses more). Returns the
 * bytes written. */
size_t sio_ack_write(char *out, const char *nsp, size_t nsp_len, uint64_t id,
		     unsigned attachments, const char *args, size_t args_len);

/* Splits an EVENT payload (`data`, validated here to `max_depth`): a JSON
 * array whose first element is a string, the event's name (`*name`, the
 * string token). `*args` is the rest after the name: ",a,b]" - the caller
 * swaps the comma for '[' to have the arguments as an array of their own -
 * or p NULL, len 0 when there are none. Both point into `data`. Returns 0,
 * or -EBADMSG when the payload is not such an array. */
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

/* Starts reassembling the parsed binary packet `pkt`, copying its payload
 * (its attachment count was capped by sio_parse); the payload and the
 * attachments together may hold `max_bytes`. Returns 0, and `b` owns its
 * copies until sio_binary_fini; -EINVAL when `pkt` is not a binary type,
 * -EMSGSIZE when its payload alone is over `max_bytes` (nothing is
 * allocated either way). */
int sio_binary_init(struct sio_binary *b, const struct sio_packet *pkt, size_t max_bytes);

/* Adds the next attachment, copying its `len` bytes. Returns 1 when that
 * was the last one announced, 0 while more are due; nothing is kept when
 * it returns -EBADMSG (none was due any more) or -EMSGSIZE (it would take
 * the packet past its max_bytes): checked before the copy. */
int sio_binary_add(struct sio_binary *b, const void *data, size_t len);

/* 1 if every attachment announced has arrived (at once for a count 0),
 * else 0. */
static inline int sio_binary_complete(const struct sio_binary *b)
{
	return b->count == b->expected;
}

/* Frees what `b` holds; `b` is then empty (a second call does nothing). */
void sio_binary_fini(struct sio_binary *b);

#endif
