/* fuzz_base64.c - both decoders on any input (no write past their bound),
 * and every decoded result encoding back to the input it came from (each
 * byte string has one encoding). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	unsigned char *out = malloc(base64_decoded_max(size) + 1);
	char *enc = malloc(base64_encoded_len(size) + 1);
	long n;

	n = base64_decode(in, size, out);
	if (n >= 0) {
		size_t m = base64_encode(out, (size_t)n, enc);
		if (m != size || memcmp(enc, in, size) != 0)
			abort();
	}
	n = base64url_decode(in, size, out);
	if (n >= 0) {
		size_t m = base64url_encode(out, (size_t)n, enc);
		if (m != size || memcmp(enc, in, size) != 0)
			abort();
	}
	free(out);
	free(enc);
	return 0;
}
