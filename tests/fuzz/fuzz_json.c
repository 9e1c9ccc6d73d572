/* fuzz_json.c - the JSON scanner: validation, then a walk of every value
 * of a valid document (objects, arrays, strings unescaped and escaped back
 * to the same text, integers), which must stay inside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/json.h"

static void walk(struct json_span v, int depth)
{
	struct json_iter it;
	struct json_span k, x;
	uint64_t u;

	if (depth > 40)
		abort(); /* validation bounded the depth at 32 */
	switch (json_kind_of(v)) {
	case JSON_OBJECT:
		json_iter_begin(v, &it);
		while (json_object_next(&it, &k, &x) == 1) {
			walk(k, depth + 1);
			walk(x, depth + 1);
		}
		break;
	case JSON_ARRAY:
		json_iter_begin(v, &it);
		while (json_array_next(&it, &x) == 1)
			walk(x, depth + 1);
		break;
	case JSON_STRING: {
		char *out = malloc(v.len + 1);
		long n = json_string_unescape(v, out, v.len + 1);
		if (n < 0 || !json_utf8_valid(out, (size_t)n))
			abort(); /* a valid document's strings unescape to valid UTF-8 */
		char *esc = malloc(json_escaped_max((size_t)n));
		size_t m = json_escape(out, (size_t)n, esc);
		char *back = malloc(m + 1);
		if (json_string_unescape((struct json_span){ esc, m }, back, m + 1) != n ||
		    memcmp(back, out, (size_t)n) != 0)
			abort(); /* escaping then unescaping gives the same bytes */
		free(out);
		free(esc);
		free(back);
		break;
	}
	case JSON_NUMBER:
		json_uint(v, &u);
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_span doc = { (const char *)data, size }, v;

	if (json_validate((const char *)data, size, 32) == JSON_INVALID)
		return 0;
	walk(doc, 0);
	json_object_get(doc, "event", &v);
	return 0;
}
