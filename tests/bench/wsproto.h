/* wsproto.h - the little WebSocket (RFC 6455) the benchmark tools share:
 * SHA-1 and base64 for the handshake keys, frame headers both ways.
 * libc only; used by loadgen.c (client side) and ceiling.c (server side). */
#ifndef PARLEY_BENCH_WSPROTO_H
#define PARLEY_BENCH_WSPROTO_H

#include <stddef.h>
#include <stdint.h>

#define WSP_OP_CONT 0x0
#define WSP_OP_TEXT 0x1
#define WSP_OP_BINARY 0x2
#define WSP_OP_CLOSE 0x8
#define WSP_OP_PING 0x9
#define WSP_OP_PONG 0xA

/* The largest frame header: 2 bytes, 8 of 64-bit length, 4 of mask. */
#define WSP_MAX_HEADER 14

/* SHA-1 of len bytes at data into out[20]. */
void wsp_sha1(const void *data, size_t len, uint8_t out[20]);

/* Standard base64 (with padding) of len bytes into out, NUL-terminated;
 * out needs 4 * ((len + 2) / 3) + 1 bytes. Returns the length written. */
size_t wsp_base64(const uint8_t *in, size_t len, char *out);

/* The Sec-WebSocket-Accept value for a Sec-WebSocket-Key: out needs 29 bytes. */
void wsp_accept_key(const char *key, size_t key_len, char out[29]);

/* One parsed frame header. */
struct wsp_frame {
	int fin;
	int rsv1; /* permessage-deflate: the message is compressed */
	int opcode;
	int masked;
	uint8_t mask[4];
	uint64_t payload_len;
	size_t header_len;
};

/* Parses a frame header at buf[0..len). Returns 1 when the header is complete
 * (f filled in; the payload may still be incomplete), 0 when more bytes are
 * needed, -1 when the header is malformed (RSV2 or RSV3 set; RSV1 is left
 * to the caller, which knows whether permessage-deflate was agreed). */
int wsp_parse_header(const uint8_t *buf, size_t len, struct wsp_frame *f);

/* Writes a frame header for a payload of len bytes into out (at least
 * WSP_MAX_HEADER bytes), masked with mask when mask is not NULL. Returns the
 * header length. */
size_t wsp_write_header(uint8_t *out, int opcode, uint64_t len, const uint8_t *mask);

/* XORs len bytes at p with the 4-byte mask, starting at mask offset 0. */
void wsp_apply_mask(uint8_t *p, size_t len, const uint8_t mask[4]);

#endif
