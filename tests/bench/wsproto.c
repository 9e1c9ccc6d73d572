/* wsproto.c - SHA-1, base64 and WebSocket frame headers for the benchmark
 * tools (see wsproto.h). Plain C, libc only. */
#include "wsproto.h"

#include <string.h>

static uint32_t rol32(uint32_t x, int n)
{
	return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
	uint32_t w[80];
	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
	for (int i = 0; i < 80; i++) {
		uint32_t f, k;
		if (i < 20) {
			f = (b & c) | (~b & d);
			k = 0x5A827999;
		} else if (i < 40) {
			f = b ^ c ^ d;
			k = 0x6ED9EBA1;
		} else if (i < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8F1BBCDC;
		} else {
			f = b ^ c ^ d;
			k = 0xCA62C1D6;
		}
		uint32_t t = rol32(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = rol32(b, 30);
		b = a;
		a = t;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

void wsp_sha1(const void *data, size_t len, uint8_t out[20])
{
	uint32_t h[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0 };
	const uint8_t *p = data;
	size_t left = len;
	while (left >= 64) {
		sha1_block(h, p);
		p += 64;
		left -= 64;
	}
	/* The tail, the 0x80 marker and the bit length fill one or two blocks. */
	uint8_t tail[128];
	memset(tail, 0, sizeof tail);
	memcpy(tail, p, left);
	tail[left] = 0x80;
	size_t blocks = left + 9 <= 64 ? 1 : 2;
	uint64_t bits = (uint64_t)len * 8;
	for (int i = 0; i < 8; i++)
		tail[blocks * 64 - 1 - i] = (uint8_t)(bits >> (8 * i));
	for (size_t i = 0; i < blocks; i++)
		sha1_block(h, tail + 64 * i);
	for (int i = 0; i < 5; i++) {
		out[4 * i] = (uint8_t)(h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(h[i] >> 8);
		out[4 * i + 3] = (uint8_t)h[i];
	}
}

size_t wsp_base64(const uint8_t *in, size_t len, char *out)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[o++] = abc[(v >> 18) & 63];
		out[o++] = abc[(v >> 12) & 63];
		out[o++] = i + 1 < len ? abc[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? abc[v & 63] : '=';
	}
	out[o] = '\0';
	return o;
}

void wsp_accept_key(const char *key, size_t key_len, char out[29])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	char buf[128 + sizeof guid];
	uint8_t digest[20];
	if (key_len > 128)
		key_len = 128;
	memcpy(buf, key, key_len);
	memcpy(buf + key_len, guid, sizeof guid - 1);
	wsp_sha1(buf, key_len + sizeof guid - 1, digest);
	wsp_base64(digest, 20, out);
}

int wsp_parse_header(const uint8_t *buf, size_t len, struct wsp_frame *f)
{
	if (len < 2)
		return 0;
	if (buf[0] & 0x30)
		return -1;
	f->fin = buf[0] >> 7;
	f->rsv1 = (buf[0] >> 6) & 1;
	f->opcode = buf[0] & 0x0F;
	f->masked = buf[1] >> 7;
	uint64_t n = buf[1] & 0x7F;
	size_t pos = 2;
	if (n == 126) {
		if (len < 4)
			return 0;
		n = (uint64_t)buf[2] << 8 | buf[3];
		pos = 4;
	} else if (n == 127) {
		if (len < 10)
			return 0;
		n = 0;
		for (int i = 0; i < 8; i++)
			n = n << 8 | buf[2 + i];
		pos = 10;
	}
	if (f->masked) {
		if (len < pos + 4)
			return 0;
		memcpy(f->mask, buf + pos, 4);
		pos += 4;
	}
	f->payload_len = n;
	f->header_len = pos;
	return 1;
}

size_t wsp_write_header(uint8_t *out, int opcode, uint64_t len, const uint8_t *mask)
{
	size_t pos;
	out[0] = (uint8_t)(0x80 | opcode);
	uint8_t mbit = mask ? 0x80 : 0;
	if (len < 126) {
		out[1] = (uint8_t)(mbit | len);
		pos = 2;
	} else if (len <= 0xFFFF) {
		out[1] = mbit | 126;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		pos = 4;
	} else {
		out[1] = mbit | 127;
		for (int i = 0; i < 8; i++)
			out[2 + i] = (uint8_t)(len >> (8 * (7 - i)));
		pos = 10;
	}
	if (mask) {
		memcpy(out + pos, mask, 4);
		pos += 4;
	}
	return pos;
}

void wsp_apply_mask(uint8_t *p, size_t len, const uint8_t mask[4])
{
	for (size_t i = 0; i < len; i++)
		p[i] ^= mask[i & 3];
}
