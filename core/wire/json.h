/* json.h - a validating JSON scanner over a byte span: no allocation, no tree.
 * The core uses it to pick the event name and arguments out of a Socket.IO
 * packet and the fields out of a plain WebSocket envelope without decoding the
 * payload; payloads travel on to Lua as the exact bytes the client sent. */
#ifndef PARLEY_JSON_H
#define PARLEY_JSON_H

#include <stddef.h>
#include <stdint.h>

enum json_kind {
	JSON_INVALID = 0,
	JSON_OBJECT,
	JSON_ARRAY,
	JSON_STRING,
	JSON_NUMBER,
	JSON_TRUE,
	JSON_FALSE,
	JSON_NULL,
};

/* A view of bytes owned by someone else: valid as long as they are. */
struct json_span {
	const char *p;
	size_t len;
};

/* Cursor over the members of one array or object (see json_iter_begin). */
struct json_iter {
	const char *p;
	const char *end;
	int first;
};

/* Errors are negative codes (base/error.h): -EBADMSG for input that is not
 * what the function reads, -ENOBUFS for an answer that does not fit the
 * caller's buffer. Nothing here allocates or keeps a pointer past a call.
 *
 * Checks that the `len` bytes at `p` are exactly one JSON value (RFC 8259),
 * with optional surrounding whitespace, strings in valid UTF-8 (no overlongs,
 * no surrogates encoded in UTF-8, escapes \uD800-\uDFFF only as proper pairs),
 * and no more than `max_depth` nested arrays/objects. Returns the kind of the
 * value, or JSON_INVALID. Never reads past p + len. */
enum json_kind json_validate(const char *p, size_t len, int max_depth);

/* The kind of the value a span holds, judged from its first non-space byte.
 * The span must come from validated input. */
enum json_kind json_kind_of(struct json_span v);

/* Starts iterating the array or object in `v` (validated input, surrounding
 * whitespace allowed). Returns 0, or -EBADMSG when `v` holds neither. */
int json_iter_begin(struct json_span v, struct json_iter *it);

/* Next array element: 1 and `*elem` set (trimmed of whitespace, pointing
 * into the iterated span), 0 at the end. */
int json_array_next(struct json_iter *it, struct json_span *elem);

/* Next object member: 1 with `*key` (the raw string token, quotes included)
 * and `*val` set, 0 at the end. */
int json_object_next(struct json_iter *it, struct json_span *key,
		     struct json_span *val);

/* Looks up the member named `key` (compared after unescaping the member's
 * name) in the object `obj`. Returns 1 and sets `*val` (into `obj`), 0 if
 * absent, -EBADMSG if `obj` is not an object. The first match wins. */
int json_object_get(struct json_span obj, const char *key, struct json_span *val);

/* Unescapes the string token `s` (quotes included) into `out`, which holds
 * `cap` bytes, and NUL-terminates it. Returns the length without the NUL;
 * -EBADMSG when `s` is not a string token, -ENOBUFS when it does not fit. */
long json_string_unescape(struct json_span s, char *out, size_t cap);

/* Parses the number token `v` as an integer in [0, 2^53]. Returns 0 and sets
 * `*out`, or -EBADMSG (not a number, negative, fractional, exponent, or too
 * large). */
int json_uint(struct json_span v, uint64_t *out);

/* Writes `v` in decimal, no sign and no leading zero, into `out`
 * (JSON_UINT_MAX bytes), and returns the bytes written (no NUL). A JSON
 * number json_uint reads back when `v` is at most 2^53. */
size_t json_uint_write(char *out, uint64_t v);
#define JSON_UINT_MAX 20 /* the digits of 2^64 - 1 */

/* 1 if the `len` bytes at `p` are valid UTF-8 by the rules json_validate
 * applies inside strings, else 0. */
int json_utf8_valid(const char *p, size_t len);

/* Writes `s` (`len` bytes of UTF-8) as a JSON string token with quotes into
 * `out`, which must hold json_escaped_max(len) bytes. Escapes '"', '\\' and
 * control characters; leaves '/' and non-ASCII alone. Returns bytes written. */
size_t json_escape(const char *s, size_t len, char *out);
#define json_escaped_max(len) ((len) * 6 + 2)

#endif
