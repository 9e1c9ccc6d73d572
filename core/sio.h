/* sio.h - Socket.IO v5 packet codec:
 *   <type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]
 * Parsing splits a packet into views; the payload is validated by the caller
 * (json.h). Encoding writes a packet's header; the payload is appended. */
#ifndef PARLEY_SIO_H
#define PARLEY_SIO_H

#include <stddef.h>
#include <stdint.h>

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

#endif
