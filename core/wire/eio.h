/* eio.h - Engine.IO v4 packet codec: one packet in a WebSocket frame, or
 * several joined by the record separator 0x1e in a long-polling body.
 * Pure functions over byte spans; the server owns sessions and transports. */
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

/* Parses one text packet: a type digit then its data, or "b" then base64.
 * Returns 0, or -1 for an empty packet or an unknown type. */
int eio_parse(const char *p, size_t len, struct eio_packet *pkt);

/* Walks a polling payload: sets the next segment between separators and
 * advances `*cur`. Returns 1 with a segment, 0 when `*cur` reached `end`. */
int eio_payload_next(const char **cur, const char *end, const char **seg,
		     size_t *seglen);

#endif
