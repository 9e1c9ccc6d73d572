/* eio.h - Engine.IO v4 packet codec: one packet in a WebSocket frame, or
 * several joined by the record separator 0x1e in a long-polling body, read
 * and written. Pure functions over byte spans; the server owns sessions and
 * transports. */
#ifndef PARLEY_EIO_H
#define PARLEY_EIO_H

#include <stddef.h>

enum eio_type {
	EIO_OPEN = 0,
	EIO_CLOSE = 1,
	EIO_PING = 2,
	EIO_PONG = 3,
	EIO_MESSAGE = 4,
	EIO_UPGRADE = 5,
	EIO_NOOP = 6,
};

#define EIO_SEPARATOR '\x1e'

/* One packet, pointing into the caller's bytes. */
struct eio_packet {
	enum eio_type type;
	int base64;       /* a polling "b<base64>" binary message, not decoded */
	const char *data; /* what follows the type character */
	size_t len;
};

/* Parses one text packet: a type digit then its data, or "b" then base64
 * (`pkt` points into `p`). Returns 0, or -EBADMSG for an empty packet or
 * an unknown type. */
int eio_parse(const char *p, size_t len, struct eio_packet *pkt);

/* Walks a polling payload: sets the next segment between separators (into
 * the payload) and advances `*cur`. Returns 1 with a segment, 0 when `*cur`
 * reached `end`. */
int eio_payload_next(const char **cur, const char *end, const char **seg,
		     size_t *seglen);

/* The most room a packet of `len` bytes takes in a polling payload: the
 * separator before it, then its bytes, or "b" and their base64 when it is
 * `binary`. A payload's buffer holds the sum over its packets. */
size_t eio_payload_room(size_t len, int binary);

/* Appends a packet to the polling payload of `n` bytes at `out` (whose
 * room is the sum of eio_payload_room over its packets): the separator
 * unless it is the first, then a text packet's `len` bytes as they are
 * (its type digit first; never empty, and never with a 0x1e in it, which
 * JSON text cannot hold raw), or a binary message's bytes as "b" + base64.
 * What eio_payload_next and eio_parse (then base64_decode) read back.
 * Returns the payload's new length; writes no NUL. */
size_t eio_payload_append(char *out, size_t n, const void *data, size_t len, int binary);

#endif
