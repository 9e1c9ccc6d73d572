/* test_base64.c - unit tests for core/base64.c: the RFC 4648 test vectors
 * both ways, strict rejection of bad length, padding and characters, the
 * url-safe alphabet, and round trips of every byte value. */
#include "wire/base64.h"

#include <errno.h>

#include "check.h"

#include <stdlib.h>
#include <string.h>

static void expect_vector(const char *plain, const char *b64, int line)
{
	size_t plen = strlen(plain), blen = strlen(b64);
	char enc[64];
	unsigned char *dec = malloc(base64_decoded_max(blen));
	size_t n = base64_encode((const unsigned char *)plain, plen, enc);
	long m;

	check_int(n, base64_encoded_len(plen), __FILE__, line, "base64_encoded_len");
	check_mem(enc, n, b64, blen, __FILE__, line, "base64_encode");
	m = base64_decode(b64, blen, dec);
	if (check_int(m, (long long)plen, __FILE__, line, "base64_decode length"))
		check_mem(dec, (size_t)m, plain, plen, __FILE__, line, "base64_decode");
	free(dec);
}

#define VECTOR(plain, b64) expect_vector(plain, b64, __LINE__)

static void test_rfc4648_vectors(void)
{
	/* RFC 4648 section 10. */
	VECTOR("", "");
	VECTOR("f", "Zg==");
	VECTOR("fo", "Zm8=");
	VECTOR("foo", "Zm9v");
	VECTOR("foob", "Zm9vYg==");
	VECTOR("fooba", "Zm9vYmE=");
	VECTOR("foobar", "Zm9vYmFy");
	VECTOR("Man", "TWFu");
	VECTOR("hello world", "aGVsbG8gd29ybGQ=");
}

/* Decodes from a buffer of exactly `len` bytes into one of exactly
 * base64_decoded_max(len), so over-reads and over-writes show under ASan. */
static long decode_exact(const char *s, size_t len)
{
	char *in = malloc(len ? len : 1);
	unsigned char *out = malloc(base64_decoded_max(len));
	long n;

	memcpy(in, s, len);
	n = base64_decode(in, len, out);
	free(in);
	free(out);
	return n;
}

static void expect_bad(const char *s, size_t len, int line)
{
	if (!check_int(decode_exact(s, len), -EBADMSG, __FILE__, line, "base64_decode")) {
		fputs("  input: ", stderr);
		check_print_mem(s, len);
		fputc('\n', stderr);
	}
}

#define BAD(lit) expect_bad(lit, sizeof(lit) - 1, __LINE__)

static void test_invalid(void)
{
	/* Bad length. */
	BAD("Z");
	BAD("Zg");
	BAD("Zg=");
	BAD("Zm9vY");
	/* Bad padding. */
	BAD("Z===");
	BAD("====");
	BAD("=Zg=");
	BAD("Zg==Zg==");
	BAD("Zm8=Zm9v");
	BAD("Zg=a");
	BAD("Z=g=");
	BAD("Zm9v=");
	BAD("Zm9v====");
	/* Leftover bits must be zero (RFC 4648 3.5). */
	BAD("Zh==");
	BAD("Zm9=");
	/* Characters outside the padded standard alphabet. */
	BAD("Zm9-");
	BAD("Zm9_");
	BAD("Zm9v\n");
	BAD("Zm 9v");
	BAD(" Zm9v");
	BAD("Zm9v\r\nZm9v");
	BAD("Zm9\x80");
	BAD("Zm\0v");
	BAD("Zm9.");
	CHECK_INT(decode_exact("Zm8=", 4), 2);
	CHECK_INT(decode_exact("Zg==", 4), 1);
	CHECK_INT(decode_exact("", 0), 0);
}

static void expect_url(const unsigned char *in, size_t len, const char *want, int line)
{
	char out[64];
	size_t n;

	memset(out, 'X', sizeof(out));
	n = base64url_encode(in, len, out);
	check_mem(out, n, want, strlen(want), __FILE__, line, "base64url_encode");
	check_int(out[n], 0, __FILE__, line, "terminating NUL");
}

#define URL(bytes, want) \
	expect_url((const unsigned char *)(bytes), sizeof(bytes) - 1, want, __LINE__)

static void test_url_safe(void)
{
	unsigned char std[8];

	URL("", "");
	URL("f", "Zg");
	URL("fo", "Zm8");
	URL("foo", "Zm9v");
	URL("foob", "Zm9vYg");
	URL("\xfb\xff", "-_8");
	URL("\xfb\xef\xbe", "----");
	URL("\xff\xff\xff", "____");
	URL("\x00\x00\x00\x00", "AAAAAA");
	CHECK_MEM(std, base64_encode((const unsigned char *)"\xfb\xff", 2, (char *)std),
		  "+/8=", 4);
	CHECK_MEM(std, base64_encode((const unsigned char *)"\xff\xff\xff", 3, (char *)std),
		  "////", 4);
}

static void test_round_trip(void)
{
	unsigned char bytes[256], back[base64_decoded_max(base64_encoded_len(256))];
	char enc[base64_encoded_len(256)];
	int bad = 0;

	for (int i = 0; i < 256; i++)
		bytes[i] = (unsigned char)i;
	/* Every length and so every padding case, every byte at every offset. */
	for (size_t len = 0; len <= 256; len++) {
		const unsigned char *in = bytes + (256 - len) / 2;
		size_t n = base64_encode(in, len, enc);
		long m = base64_decode(enc, n, back);

		if (n != base64_encoded_len(len) || m != (long)len || memcmp(back, in, len) != 0)
			bad++;
	}
	CHECK_INT(bad, 0);

	/* The url-safe form differs from the standard one only in its alphabet
	 * and the missing padding. */
	char url[base64_encoded_len(256) + 1];
	size_t n = base64_encode(bytes, 256, enc);
	size_t u = base64url_encode(bytes, 256, url);
	for (size_t i = 0; i < n; i++)
		enc[i] = enc[i] == '+' ? '-' : enc[i] == '/' ? '_' : enc[i];
	while (n > 0 && enc[n - 1] == '=')
		n--;
	CHECK_MEM(url, u, enc, n);
}

static long url_decode(const char *in, unsigned char *out)
{
	return base64url_decode(in, strlen(in), out);
}

static void test_url_decode(void)
{
	unsigned char out[64], bytes[256];
	char url[base64_encoded_len(256) + 1];
	int bad = 0;

	CHECK_INT(url_decode("", out), 0);
	CHECK_INT(url_decode("Zg", out), 1);
	CHECK_MEM(out, 1, "f", 1);
	CHECK_INT(url_decode("Zm8", out), 2);
	CHECK_MEM(out, 2, "fo", 2);
	CHECK_INT(url_decode("Zm9vYg", out), 4);
	CHECK_MEM(out, 4, "foob", 4);
	CHECK_INT(url_decode("-_8", out), 2);
	CHECK_MEM(out, 2, "\xfb\xff", 2);
	/* A JWT header: {"alg":"HS256","typ":"JWT"} */
	CHECK_INT(url_decode("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", out), 27);
	CHECK_MEM(out, 27, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", 27);
	/* Refused: padding, the standard alphabet, 4n+1 lengths, stray bits. */
	CHECK_INT(url_decode("Zg==", out), -EBADMSG);
	CHECK_INT(url_decode("+/8", out), -EBADMSG);
	CHECK_INT(url_decode("Z", out), -EBADMSG);
	CHECK_INT(url_decode("Zm9vY", out), -EBADMSG);
	CHECK_INT(url_decode("Zh", out), -EBADMSG);
	CHECK_INT(url_decode("Zm9", out), -EBADMSG);
	CHECK_INT(url_decode("Zm 8", out), -EBADMSG);
	/* Every length round-trips through the url-safe encoder. */
	for (int i = 0; i < 256; i++)
		bytes[i] = (unsigned char)(i * 7);
	for (size_t len = 0; len <= 256; len++) {
		unsigned char back[base64_decoded_max(base64_encoded_len(256))];
		size_t n = base64url_encode(bytes, len, url);
		if (base64url_decode(url, n, back) != (long)len || memcmp(back, bytes, len) != 0)
			bad++;
	}
	CHECK_INT(bad, 0);
}

int main(void)
{
	test_rfc4648_vectors();
	test_invalid();
	test_url_safe();
	test_url_decode();
	test_round_trip();
	return check_report("test_base64");
}
