/* sio_msgpack.h - Socket.IO packets as socket.io-msgpack-parser writes them:
 * one msgpack map {type, data, nsp, id?} in a binary message, binary values
 * inline as msgpack bin. Decoded with Debian's msgpack-c into what the text
 * parser (sio.h) gives the layers above - the packet's fields, its data as
 * JSON with a placeholder {"_placeholder":true,"num":N} for each binary, the
 * binaries as attachments - and encoded from a text packet and its
 * attachments, so that above the codec there is one shape of packet. */
#ifndef PARLEY_SIO_MSGPACK_H
#define PARLEY_SIO_MSGPACK_H

#include <stddef.h>
#include <stdint.h>

#include "wire/sio.h"

/* What a decoded packet may hold (the text path's limits). */
struct sio_msgpack_limits {
	int max_depth;            /* nested arrays/maps in `data`, as json_validate's */
	unsigned max_attachments; /* binary values in `data` */
	size_t max_json;          /* bytes of `data` as JSON */
};

/* A decoded packet. `pkt` is what sio_parse gives for the same packet in
 * text (type CONNECT, DISCONNECT, EVENT, ACK or CONNECT_ERROR: binaries are
 * inline, so never a BINARY_ type; `pkt.attachments` is 0), its `nsp` and
 * `data` (NUL-terminated) pointing into `buf`; `att` are the binary values, each a view of
 * the decoded message's bytes (valid as long as they are). */
struct sio_msgpack_packet {
	struct sio_packet pkt;
	struct sio_attachment *att; /* `natt` slots; owned */
	unsigned natt;
	char *buf; /* the namespace, then the data's JSON; owned */
};

/* Decodes the message `p` (`len` bytes) into `out`. Returns 0, and `out`
 * owns what it holds until sio_msgpack_packet_fini; or, with nothing kept
 * and `*why` saying what was wrong (a static string):
 *   -EBADMSG   not one whole msgpack value (truncated, bytes after it, a
 *              size the message cannot hold, a reserved byte);
 *   -EPROTO    msgpack, but not a Socket.IO packet: not a map, a `type`
 *              that is not an integer from 0 to 4, an `nsp` that is not a
 *              string starting with '/', `data` of the wrong kind for the
 *              type, an `id` that is not an integer up to SIO_MAX_ACK_ID,
 *              a map key that is not a string, a string not UTF-8, an ext
 *              type JSON has no form for;
 *   -ELOOP     nested deeper than `lim->max_depth` (or msgpack-c's 32);
 *   -EMSGSIZE  more binaries than `lim->max_attachments`, or data whose
 *              JSON is over `lim->max_json`.
 * Every size the message announces is checked against the bytes left
 * before msgpack-c allocates for it. */
int sio_msgpack_decode(const void *p, size_t len, const struct sio_msgpack_limits *lim,
		       struct sio_msgpack_packet *out, const char **why);

/* Frees what `m` holds; a second call does nothing. */
void sio_msgpack_packet_fini(struct sio_msgpack_packet *m);

/* An encoded packet: `data`, `len` bytes (the caller frees `data`). */
struct sio_msgpack_buf {
	char *data;
	size_t len;
	size_t cap;
};

/* Encodes the text packet `text` (`len` bytes, as sio_write_header and the
 * encoders write it, with no Engine.IO type before it; its payload valid
 * JSON) as one msgpack map into `out` (empty on entry): a BINARY_EVENT or
 * BINARY_ACK becomes an EVENT or ACK whose placeholders are replaced by
 * the `natt` attachments' bytes as bin. Returns 0, or -EBADMSG when the
 * packet does not parse, its payload is not JSON, a placeholder names no
 * attachment, or it nests over 512 deep (nothing is left in `out`). */
int sio_msgpack_encode(const char *text, size_t len, const struct sio_attachment *att,
		       unsigned natt, struct sio_msgpack_buf *out);

#endif
