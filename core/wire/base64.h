/* base64.h - RFC 4648 base64, standard alphabet with padding (Engine.IO's `b`
 * packets on polling) and the unpadded url-safe alphabet (session ids). */
#ifndef PARLEY_BASE64_H
#define PARLEY_BASE64_H

#include <stddef.h>

#define base64_encoded_len(n) (((n) + 2) / 3 * 4)
#define base64_decoded_max(n) ((n) / 4 * 3 + 3)

/* Encodes `len` bytes into `out` (base64_encoded_len(len) bytes, no NUL).
 * Returns the number of bytes written. */
size_t base64_encode(const unsigned char *in, size_t len, char *out);

/* Decodes padded standard base64 into `out` (base64_decoded_max(len) bytes).
 * Returns the decoded length, or -EBADMSG on any invalid character, bad
 * padding or bad length (`out` may hold garbage then). Whitespace is not
 * accepted. */
long base64_decode(const char *in, size_t len, unsigned char *out);

/* Encodes with the url-safe alphabet and no padding; writes a NUL after.
 * `out` holds base64_encoded_len(len) + 1 bytes. Returns the length. */
size_t base64url_encode(const unsigned char *in, size_t len, char *out);

/* Decodes unpadded url-safe base64 (JWT segments) into `out`
 * (base64_decoded_max(len) bytes). Returns the decoded length, or -EBADMSG
 * on a character outside the alphabet, a length of 4n+1, or non-zero
 * trailing bits (so that each byte string has one encoding). */
long base64url_decode(const char *in, size_t len, unsigned char *out);

#endif
