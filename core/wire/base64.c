/* base64.c - RFC 4648 base64 as declared in base64.h: the padded standard
 * alphabet and the unpadded url-safe alphabet, both ways (strict decoding:
 * no whitespace, canonical trailing bits). Uses only libc. */
#include "wire/base64.h"

#include <errno.h>

static const char std_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Encodes with `alphabet`; pads to a multiple of four when `pad` is set.
 * Returns the number of bytes written. */
static size_t encode(const unsigned char *in, size_t len, char *out,
		     const char *alphabet, int pad)
{
	char *o = out;
	size_t i = 0;

	for (; len - i >= 3; i += 3) {
		unsigned long v = (unsigned long)in[i] << 16 | in[i + 1] << 8 | in[i + 2];
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[v >> 12 & 0x3F];
		*o++ = alphabet[v >> 6 & 0x3F];
		*o++ = alphabet[v & 0x3F];
	}
	if (len - i == 1) {
		unsigned long v = (unsigned long)in[i] << 16;
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[v >> 12 & 0x3F];
		if (pad) {
			*o++ = '=';
			*o++ = '=';
		}
	} else if (len - i == 2) {
		unsigned long v = (unsigned long)in[i] << 16 | in[i + 1] << 8;
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[v >> 12 & 0x3F];
		*o++ = alphabet[v >> 6 & 0x3F];
		if (pad)
			*o++ = '=';
	}
	return (size_t)(o - out);
}

/* Padded standard alphabet; writes base64_encoded_len(len) bytes, no NUL. */
size_t base64_encode(const unsigned char *in, size_t len, char *out)
{
	return encode(in, len, out, std_alphabet, 1);
}

/* Url-safe alphabet, no padding, then a NUL not counted in the result. */
size_t base64url_encode(const unsigned char *in, size_t len, char *out)
{
	size_t n = encode(in, len, out, url_alphabet, 0);

	out[n] = '\0';
	return n;
}

/* The value of a character of the alphabet whose last two are c62, c63,
 * or -1. */
static int decode_in(unsigned char c, char c62, char c63)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (unsigned char)c62)
		return 62;
	if (c == (unsigned char)c63)
		return 63;
	return -1;
}

static int decode_char(unsigned char c)
{
	return decode_in(c, '+', '/');
}

/* Strict padded decoding: -EBADMSG unless len is a multiple of 4, '=' appears only
 * as the last one or two bytes, and the bits the padding drops are zero. */
long base64_decode(const char *in, size_t len, unsigned char *out)
{
	const unsigned char *s = (const unsigned char *)in;
	unsigned char *o = out;

	if (len % 4 != 0)
		return -EBADMSG;
	for (size_t i = 0; i < len; i += 4) {
		int last = i + 4 == len;
		int a = decode_char(s[i]), b = decode_char(s[i + 1]);
		int c = decode_char(s[i + 2]), d = decode_char(s[i + 3]);

		if (a < 0 || b < 0)
			return -EBADMSG;
		if (last && s[i + 2] == '=' && s[i + 3] == '=') {
			/* One byte; the four bits left over in `b` must be zero
			 * (RFC 4648 3.5) so that each byte string has one encoding. */
			if (b & 0x0F)
				return -EBADMSG;
			*o++ = (unsigned char)(a << 2 | b >> 4);
			break;
		}
		if (c < 0)
			return -EBADMSG;
		if (last && s[i + 3] == '=') {
			if (c & 0x03)
				return -EBADMSG;
			*o++ = (unsigned char)(a << 2 | b >> 4);
			*o++ = (unsigned char)((b & 0x0F) << 4 | c >> 2);
			break;
		}
		if (d < 0)
			return -EBADMSG;
		*o++ = (unsigned char)(a << 2 | b >> 4);
		*o++ = (unsigned char)((b & 0x0F) << 4 | c >> 2);
		*o++ = (unsigned char)((c & 0x03) << 6 | d);
	}
	return (long)(o - out);
}

/* Unpadded url-safe decoding: -EBADMSG for a length of 4n+1, any character
 * outside the alphabet ('=' included), or trailing bits that are not zero. */
long base64url_decode(const char *in, size_t len, unsigned char *out)
{
	const unsigned char *s = (const unsigned char *)in;
	unsigned char *o = out;
	int v[4];
	size_t i = 0;

	if (len % 4 == 1)
		return -EBADMSG;
	for (; i < len; i += 4) {
		size_t n = len - i < 4 ? len - i : 4;
		for (size_t k = 0; k < n; k++)
			if ((v[k] = decode_in(s[i + k], '-', '_')) < 0)
				return -EBADMSG;
		*o++ = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (n == 2) {
			if (v[1] & 0x0F)
				return -EBADMSG;
			break;
		}
		*o++ = (unsigned char)((v[1] & 0x0F) << 4 | v[2] >> 2);
		if (n == 3) {
			if (v[2] & 0x03)
				return -EBADMSG;
			break;
		}
		*o++ = (unsigned char)((v[2] & 0x03) << 6 | v[3]);
	}
	return (long)(o - out);
}
