/* websocket.h - the WebSocket wire format (RFC 6455) as far as a server
 * needs it: the HTTP request head that asks for the upgrade, the headers of
 * client frames, masking, and the query string. Pure codecs: no I/O and no
 * server state, unit tested and fuzzed alone. */
#ifndef PARLEY_WEBSOCKET_H
#define PARLEY_WEBSOCKET_H

#include <stddef.h>
#include <stdint.h>

/* ---- the request head ---- */

struct http_field {
	const char *name;
	const char *value; /* surrounding blanks trimmed */
	uint16_t name_len;
	uint16_t value_len;
};

/* More header lines than this and the head is refused (431). */
#define HTTP_HEAD_MAX_FIELDS 64

struct http_head {
	const char *method;
	const char *path;  /* the target up to '?' */
	const char *query; /* after '?' (not decoded), or NULL */
	uint16_t method_len;
	uint16_t path_len;
	uint16_t query_len;
	uint8_t minor;     /* HTTP/1.<minor> */
	int nfields;
	struct http_field fields[HTTP_HEAD_MAX_FIELDS];
};

/* Parses the request head at the start of `buf` (`h` points into it).
 * Returns its length, the blank line included, once it is all there; 0
 * while it may still become one; -EBADMSG when the request line or a
 * header line is not HTTP/1.x; -EMSGSIZE past HTTP_HEAD_MAX_FIELDS lines. */
int http_head_parse(const char *buf, size_t len, struct http_head *h);
/* The first field named `name` (case-insensitive; `h`'s), or NULL. */
const struct http_field *http_head_field(const struct http_head *h, const char *name);
/* 1 if the comma-separated list `v` holds `token` (case-insensitive), else
 * 0. */
int http_list_has(const char *v, size_t len, const char *token);
/* 1 if a Sec-WebSocket-Extensions value of `len` bytes holds a
 * permessage-deflate offer (RFC 7692) parley takes, else 0: one whose
 * parameters are all known (server_no_context_takeover,
 * client_no_context_takeover, client_max_window_bits with or without a
 * value) and that asks no server window under 15 bits. */
int ws_deflate_offered(const char *v, size_t len);

/* Steps through "k=v&k2=v2": at each call the next pair (raw, not decoded,
 * pointing into `q`), `v` NULL for a bare key. Returns 1 with a pair, 0 at
 * the end. `*pos` starts at 0. */
int query_next(const char *q, size_t qlen, size_t *pos, const char **k, size_t *klen,
	       const char **v, size_t *vlen);
/* Decodes %XX escapes and '+' (a space) from `in` into `out` (room for
 * `len` bytes: never longer) and returns the length. A '%' not followed by
 * two hex digits stays as it is. */
size_t url_decode(const char *in, size_t len, char *out);

/* ---- frames ---- */

enum ws_opcode {
	WS_CONT = 0x0, WS_TEXT = 0x1, WS_BINARY = 0x2,
	WS_CLOSE = 0x8, WS_PING = 0x9, WS_PONG = 0xA,
};

/* Close codes (RFC 6455 §7.4.1) parley sends. */
enum ws_close_code {
	WS_NORMAL = 1000, WS_GOING_AWAY = 1001, WS_PROTOCOL_ERROR = 1002,
	WS_INVALID_PAYLOAD = 1007, WS_POLICY_VIOLATION = 1008, WS_MESSAGE_TOO_BIG = 1009,
};

struct ws_frame {
	uint64_t len;      /* payload bytes */
	uint8_t mask[4];
	uint8_t fin;
	uint8_t rsv;       /* the three reserved bits */
	uint8_t opcode;
	uint8_t masked;
	uint8_t head_len;  /* 2 to 14 bytes */
};

/* Parses a frame header at `p`. Returns its length, or 0 while fewer bytes
 * than the header are there. Checks nothing: see ws_frame_error. */
int ws_frame_parse(const uint8_t *p, size_t n, struct ws_frame *f);
/* What is wrong with a client frame's header, for a frame that `in_message`
 * (a fragmented message is open) or not: NULL, or the reason to close with
 * 1002 (a static string). */
const char *ws_frame_error(const struct ws_frame *f, int in_message);
/* XORs `n` bytes with the mask, starting at byte `offset` of the payload. */
void ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], size_t offset);
/* The most bytes a server frame header takes: 2, then a 64-bit length
 * (a server never masks, so no key). */
#define WS_HEADER_MAX 10

/* How many bytes ws_header_write writes for a payload of `len` bytes: 2
 * below 126, 4 up to 65535, 10 above. For writing the header in front of a
 * payload already in place: `ws_header_write(payload - ws_header_len(len),
 * ...)`. */
size_t ws_header_len(uint64_t len);
/* Writes the header of a server frame into `out` (WS_HEADER_MAX bytes of
 * room, or ws_header_len(len)): FIN set, no reserved bits, `opcode` (its
 * low four bits, an enum ws_opcode), never masked, the payload length
 * `len` in the shortest form RFC 6455 §5.2 allows. Returns the bytes
 * written, ws_header_len(len). The one writer of server frame headers,
 * for control frames and queued frames alike. */
size_t ws_header_write(uint8_t *out, uint8_t opcode, uint64_t len);
/* 1 if a close frame's status code may be sent by a peer (RFC 6455 §7.4),
 * else 0. */
int ws_close_code_valid(unsigned code);

#endif
