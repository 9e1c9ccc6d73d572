/* test_json.c - unit tests for core/wire/json.c: the validator (grammar, UTF-8,
 * surrogates, depth, truncation), iteration, lookup, unescape, json_uint,
 * json_uint_write and json_escape. Inputs sit in exact-size buffers so ASan
 * sees any over-read. */
#include "wire/json.h"

#include <errno.h>

#include "check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Validates `len` bytes of `s` copied into a buffer of exactly that size. */
static enum json_kind validate_exact(const char *s, size_t len, int max_depth)
{
	char *buf = malloc(len ? len : 1);
	enum json_kind kind;

	memcpy(buf, s, len);
	kind = json_validate(buf, len, max_depth);
	free(buf);
	return kind;
}

static void expect_validate(const char *s, size_t len, int max_depth,
			    enum json_kind want, int line)
{
	enum json_kind got = validate_exact(s, len, max_depth);

	if (!check_int(got, want, __FILE__, line, "json_validate kind")) {
		fputs("  input: ", stderr);
		check_print_mem(s, len);
		fputc('\n', stderr);
	}
}

#define VALID(lit, kind) expect_validate(lit, sizeof(lit) - 1, 64, kind, __LINE__)
#define INVALID(lit) expect_validate(lit, sizeof(lit) - 1, 64, JSON_INVALID, __LINE__)
#define DEPTH(lit, depth, kind) expect_validate(lit, sizeof(lit) - 1, depth, kind, __LINE__)

static struct json_span span(const char *s)
{
	return (struct json_span){ s, strlen(s) };
}

static void test_valid_grammar(void)
{
	VALID("0", JSON_NUMBER);
	VALID("-0", JSON_NUMBER);
	VALID("7", JSON_NUMBER);
	VALID("-12", JSON_NUMBER);
	VALID("1.5", JSON_NUMBER);
	VALID("-0.0e+5", JSON_NUMBER);
	VALID("1E10", JSON_NUMBER);
	VALID("1e-3", JSON_NUMBER);
	VALID("0.125E-2", JSON_NUMBER);
	VALID("123456789012345678901234567890", JSON_NUMBER);
	VALID("true", JSON_TRUE);
	VALID("false", JSON_FALSE);
	VALID("null", JSON_NULL);
	VALID("\"\"", JSON_STRING);
	VALID("\"abc\"", JSON_STRING);
	VALID("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", JSON_STRING);
	VALID("\"\\u0000\"", JSON_STRING);
	VALID("\"\\u00e9\\u00E9\"", JSON_STRING);
	VALID("\"\x7f\"", JSON_STRING);
	VALID("[]", JSON_ARRAY);
	VALID("{}", JSON_OBJECT);
	VALID("[1,2,3]", JSON_ARRAY);
	VALID("{\"a\":1}", JSON_OBJECT);
	VALID(" \t\n\r[ ] \n", JSON_ARRAY);
	VALID("  42  ", JSON_NUMBER);
	VALID("{ \"a\" : [ 1 , 2 ] , \"b\" : { } }", JSON_OBJECT);
	VALID("{\"a\":[{\"b\":null}],\"c\":{},\"d\":[[],[true,false]]}", JSON_OBJECT);
	VALID("{\"\":0}", JSON_OBJECT);
	VALID("{\"a\":1,\"a\":2}", JSON_OBJECT);
	VALID("[\"a\",-1.5e3,{\"x\":\"y\"},null]", JSON_ARRAY);
	VALID("[0,-0,0.0,1e0]", JSON_ARRAY);
}

static void test_invalid_grammar(void)
{
	INVALID("");
	INVALID("   ");
	INVALID("01");
	INVALID("-01");
	INVALID("00");
	INVALID("-");
	INVALID("1.");
	INVALID(".1");
	INVALID("1e");
	INVALID("1e+");
	INVALID("1E-");
	INVALID("+1");
	INVALID("0x10");
	INVALID("1.5.2");
	INVALID("--1");
	INVALID("NaN");
	INVALID("Infinity");
	INVALID("-Infinity");
	INVALID("tru");
	INVALID("truee");
	INVALID("True");
	INVALID("nul");
	INVALID("nulll");
	INVALID("fals");
	INVALID("[1,]");
	INVALID("{\"a\":1,}");
	INVALID("[,1]");
	INVALID("[1 2]");
	INVALID("{\"a\" 1}");
	INVALID("{a:1}");
	INVALID("{'a':1}");
	INVALID("{\"a\":}");
	INVALID("{,}");
	INVALID("{\"a\"}");
	INVALID("{1:2}");
	INVALID("[");
	INVALID("]");
	INVALID("{");
	INVALID("}");
	INVALID("{\"a\":1");
	INVALID("[1]]");
	INVALID("[1]x");
	INVALID("1 2");
	INVALID("{\"a\":1}}");
	INVALID("[\"a\"");
	INVALID("[}");
	INVALID("{]");
	INVALID("[1,,2]");
	INVALID("{\"a\"::1}");
	INVALID("[1]\0");
	INVALID("\v1");
	INVALID("\f[]");
	INVALID("[1]\xc2\xa0");
	INVALID("\xef\xbb\xbf[]");
}

static void test_strings(void)
{
	INVALID("\"abc");
	INVALID("\"");
	INVALID("\"\\x\"");
	INVALID("\"\\'\"");
	INVALID("\"\\\"");
	INVALID("\"\\");
	INVALID("\"\\u12\"");
	INVALID("\"\\u12G4\"");
	INVALID("\"\\u\"");
	INVALID("\"\\U0041\"");
	INVALID("\"\x01\"");
	INVALID("\"\x1f\"");
	INVALID("\"a\tb\"");
	INVALID("\"a\nb\"");
	INVALID("\"a\0b\"");

	/* Surrogates: only a high one followed at once by a low one. */
	VALID("\"\\uD83D\\uDE00\"", JSON_STRING);
	VALID("\"\\ud83d\\ude00\"", JSON_STRING);
	VALID("\"\\uDBFF\\uDFFF\"", JSON_STRING);
	VALID("\"\\uD800\\uDC00\"", JSON_STRING);
	VALID("\"\\uD7FF\\uE000\"", JSON_STRING);
	INVALID("\"\\uD800\"");
	INVALID("\"\\uDBFF\"");
	INVALID("\"\\uDC00\"");
	INVALID("\"\\uDFFF\\uD800\"");
	INVALID("\"\\uD800\\u0041\"");
	INVALID("\"\\uD800x\"");
	INVALID("\"\\uD800\\\"");
	INVALID("\"\\uDBFF\\uDBFF\"");
	INVALID("\"\\uD800\\uE000\"");
	INVALID("\"\\uD800\\n\"");
	INVALID("\"\\uD800\\uDC0\"");
	INVALID("\"\\uD800\\");
}

static void test_utf8(void)
{
	VALID("\"\xc3\xa9\"", JSON_STRING);                 /* U+00E9 */
	VALID("\"\xc2\x80\"", JSON_STRING);                 /* U+0080 */
	VALID("\"\xdf\xbf\"", JSON_STRING);                 /* U+07FF */
	VALID("\"\xe0\xa0\x80\"", JSON_STRING);             /* U+0800 */
	VALID("\"\xe2\x82\xac\"", JSON_STRING);             /* U+20AC */
	VALID("\"\xed\x9f\xbf\"", JSON_STRING);             /* U+D7FF */
	VALID("\"\xee\x80\x80\"", JSON_STRING);             /* U+E000 */
	VALID("\"\xef\xbf\xbf\"", JSON_STRING);             /* U+FFFF */
	VALID("\"\xf0\x90\x80\x80\"", JSON_STRING);         /* U+10000 */
	VALID("\"\xf0\x9d\x84\x9e\"", JSON_STRING);         /* U+1D11E */
	VALID("\"\xf4\x8f\xbf\xbf\"", JSON_STRING);         /* U+10FFFF */
	VALID("{\"\xe2\x82\xac\":\"\xf0\x9f\x98\x80\"}", JSON_OBJECT);
	INVALID("\"\x80\"");                                /* lone continuation */
	INVALID("\"\xbf\"");
	INVALID("\"\xc0\x80\"");                            /* overlong NUL */
	INVALID("\"\xc1\xbf\"");                            /* overlong */
	INVALID("\"\xe0\x80\xaf\"");                        /* overlong '/' */
	INVALID("\"\xe0\x9f\xbf\"");                        /* overlong U+07FF */
	INVALID("\"\xf0\x8f\xbf\xbf\"");                    /* overlong U+FFFF */
	INVALID("\"\xed\xa0\x80\"");                        /* U+D800 in UTF-8 */
	INVALID("\"\xed\xbf\xbf\"");                        /* U+DFFF in UTF-8 */
	INVALID("\"\xed\xa0\xbd\xed\xb8\x80\"");            /* CESU-8 pair */
	INVALID("\"\xf4\x90\x80\x80\"");                    /* U+110000 */
	INVALID("\"\xf5\x80\x80\x80\"");
	INVALID("\"\xf8\x88\x80\x80\x80\"");
	INVALID("\"\xfe\"");
	INVALID("\"\xff\"");
	INVALID("\"\xc3\"");                                /* cut by the quote */
	INVALID("\"\xe2\x82\"");
	INVALID("\"\xf0\x9f\x98\"");
	INVALID("\"\xc3\x28\"");                            /* bad continuation */
	INVALID("\"\xe2\x28\xa1\"");
	INVALID("\"\xe2\x82\x28\"");
	INVALID("\"\xf0\x9f\x28\x80\"");
	INVALID("\"\xc3");                                  /* cut by the end */
	INVALID("\"\xf0\x9f\x98");
	INVALID("\xc3\xa9");                                /* outside a string */
}

static void test_depth(void)
{
	DEPTH("[[[]]]", 3, JSON_ARRAY);
	DEPTH("[[[]]]", 2, JSON_INVALID);
	DEPTH("{\"a\":{\"b\":[]}}", 3, JSON_OBJECT);
	DEPTH("{\"a\":{\"b\":[]}}", 2, JSON_INVALID);
	DEPTH("[[],[],{}]", 2, JSON_ARRAY);
	DEPTH("[[[1]],[2]]", 2, JSON_INVALID);
	DEPTH("1", 0, JSON_NUMBER);
	DEPTH("\"[[[\"", 0, JSON_STRING);
	DEPTH("[]", 0, JSON_INVALID);
	DEPTH("[]", 1, JSON_ARRAY);
	DEPTH("[]", -5, JSON_INVALID);
	DEPTH("null", -5, JSON_NULL);

	/* Deep nesting fails fast and never recurses. */
	size_t n = 200000;
	char *deep = malloc(2 * n);
	memset(deep, '[', n);
	memset(deep + n, ']', n);
	CHECK_INT(json_validate(deep, 2 * n, 64), JSON_INVALID);
	CHECK_INT(json_validate(deep, 2 * n, 1 << 30), JSON_INVALID);
	CHECK_INT(json_validate(deep + n - 64, 128, 64), JSON_ARRAY);
	CHECK_INT(json_validate(deep + n - 65, 130, 64), JSON_INVALID);
	CHECK_INT(json_validate(deep + n - 4096, 8192, 1 << 30), JSON_ARRAY);
	CHECK_INT(json_validate(deep, n, 1 << 30), JSON_INVALID);
	free(deep);

	/* Mixed containers: the closer must match what opened at each level. */
	char mixed[] = "[{\"a\":[{\"b\":[]}]}]";
	CHECK_INT(json_validate(mixed, strlen(mixed), 5), JSON_ARRAY);
	CHECK_INT(json_validate(mixed, strlen(mixed), 4), JSON_INVALID);
	mixed[strlen(mixed) - 2] = ']';
	CHECK_INT(json_validate(mixed, strlen(mixed), 5), JSON_INVALID);
}

/* Every proper prefix of a valid document that is not itself a number must
 * be invalid, read from a buffer of exactly that size. */
static void test_truncation(void)
{
	static const char doc[] =
		"{\"a\":[1,\"x\\u00e9\\uD83D\\uDE00\xc3\xa9\",true,null,-2.5e+3],"
		"\"b\\\"\":{\"c\":false}}";
	size_t len = sizeof(doc) - 1;
	int bad = 0;

	CHECK_INT(validate_exact(doc, len, 8), JSON_OBJECT);
	for (size_t i = 0; i < len; i++)
		if (validate_exact(doc, i, 8) != JSON_INVALID)
			bad++;
	CHECK_INT(bad, 0);
	CHECK_INT(json_validate(NULL, 0, 8), JSON_INVALID);
}

static void test_kind_of(void)
{
	CHECK_INT(json_kind_of(span(" {}")), JSON_OBJECT);
	CHECK_INT(json_kind_of(span("\n[1]")), JSON_ARRAY);
	CHECK_INT(json_kind_of(span("\"s\"")), JSON_STRING);
	CHECK_INT(json_kind_of(span("-1")), JSON_NUMBER);
	CHECK_INT(json_kind_of(span("5")), JSON_NUMBER);
	CHECK_INT(json_kind_of(span("true")), JSON_TRUE);
	CHECK_INT(json_kind_of(span("false")), JSON_FALSE);
	CHECK_INT(json_kind_of(span("null")), JSON_NULL);
	CHECK_INT(json_kind_of(span("  ")), JSON_INVALID);
	CHECK_INT(json_kind_of(span("")), JSON_INVALID);
}

static void test_array_iteration(void)
{
	static const char *const want[] = {
		"1", "\"two, ]\"", "{\"a\":[3,\"}\"]}", "[]", "null", "-4.5e1", "\"\\\"\"",
	};
	const char *doc = " [1, \"two, ]\" ,{\"a\":[3,\"}\"]},\n[], null ,-4.5e1,\"\\\"\"] ";
	struct json_iter it;
	struct json_span elem;
	size_t n = 0;

	CHECK_INT(json_validate(doc, strlen(doc), 8), JSON_ARRAY);
	CHECK_INT(json_iter_begin(span(doc), &it), 0);
	while (json_array_next(&it, &elem)) {
		if (n < sizeof(want) / sizeof(want[0]))
			CHECK_MEM(elem.p, elem.len, want[n], strlen(want[n]));
		n++;
	}
	CHECK_INT(n, sizeof(want) / sizeof(want[0]));
	CHECK_INT(json_array_next(&it, &elem), 0);

	CHECK_INT(json_iter_begin(span("[ ]"), &it), 0);
	CHECK_INT(json_array_next(&it, &elem), 0);
	CHECK_INT(json_iter_begin(span("[[1,2],[3]]"), &it), 0);
	CHECK(json_array_next(&it, &elem));
	struct json_iter inner;
	struct json_span x;
	CHECK_INT(json_iter_begin(elem, &inner), 0);
	CHECK(json_array_next(&inner, &x) && x.len == 1 && x.p[0] == '1');
	CHECK(json_array_next(&inner, &x) && x.len == 1 && x.p[0] == '2');
	CHECK_INT(json_array_next(&inner, &x), 0);
	CHECK(json_array_next(&it, &elem));
	CHECK_MEM(elem.p, elem.len, "[3]", 3);
	CHECK_INT(json_array_next(&it, &elem), 0);

	CHECK_INT(json_iter_begin(span("\"[1]\""), &it), -EBADMSG);
	CHECK_INT(json_iter_begin(span("12"), &it), -EBADMSG);
	CHECK_INT(json_iter_begin(span("   "), &it), -EBADMSG);

	/* A span cut short mid-container must still end without over-reading. */
	const char cut[] = "[1,\"abc";
	char *buf = malloc(sizeof(cut) - 1);
	memcpy(buf, cut, sizeof(cut) - 1);
	CHECK_INT(json_iter_begin((struct json_span){ buf, sizeof(cut) - 1 }, &it), 0);
	n = 0;
	while (json_array_next(&it, &elem) && n < 10)
		n++;
	CHECK_INT(n, 2);
	free(buf);
}

static void test_object_iteration(void)
{
	const char *doc = "{ \"a\" : 1 , \"b\\\"c\" : [1,{\"z\":2}] ,\"d\":{},\"e\":\"}\"}";
	static const char *const keys[] = { "\"a\"", "\"b\\\"c\"", "\"d\"", "\"e\"" };
	static const char *const vals[] = { "1", "[1,{\"z\":2}]", "{}", "\"}\"" };
	struct json_iter it;
	struct json_span k, v;
	size_t n = 0;

	CHECK_INT(json_validate(doc, strlen(doc), 8), JSON_OBJECT);
	CHECK_INT(json_iter_begin(span(doc), &it), 0);
	while (json_object_next(&it, &k, &v)) {
		if (n < 4) {
			CHECK_MEM(k.p, k.len, keys[n], strlen(keys[n]));
			CHECK_MEM(v.p, v.len, vals[n], strlen(vals[n]));
		}
		n++;
	}
	CHECK_INT(n, 4);
	CHECK_INT(json_object_next(&it, &k, &v), 0);
	CHECK_INT(json_iter_begin(span(" { } "), &it), 0);
	CHECK_INT(json_object_next(&it, &k, &v), 0);
}

static void expect_get(const char *obj, const char *key, int want_rc, const char *want_val,
		       int line)
{
	struct json_span v = { NULL, 0 };
	int rc = json_object_get(span(obj), key, &v);

	check_int(rc, want_rc, __FILE__, line, "json_object_get");
	if (rc == 1 && want_val)
		check_mem(v.p, v.len, want_val, strlen(want_val), __FILE__, line, "member value");
}

#define GET(obj, key, rc, val) expect_get(obj, key, rc, val, __LINE__)

static void test_object_get(void)
{
	GET("{\"a\":1,\"b\":2,\"a\":3}", "a", 1, "1");
	GET("{\"a\":1,\"b\":[2]}", "b", 1, "[2]");
	GET("{\"a\":1}", "b", 0, NULL);
	GET("{\"ab\":1}", "a", 0, NULL);
	GET("{\"a\":1}", "ab", 0, NULL);
	GET("{}", "a", 0, NULL);
	GET("{\"\":7}", "", 1, "7");
	GET("{\"\\u0061b\":5}", "ab", 1, "5");
	GET("{\"a\\\"b\":1}", "a\"b", 1, "1");
	GET("{\"a\\\\b\":1}", "a\\b", 1, "1");
	GET("{\"a\\/b\":1}", "a/b", 1, "1");
	GET("{\"\\u00e9\":1}", "\xc3\xa9", 1, "1");
	GET("{\"\\ud83d\\ude00\":\"x\"}", "\xf0\x9f\x98\x80", 1, "\"x\"");
	GET("{\"\\n\":true}", "\n", 1, "true");
	GET("{\"a\\u0000b\":1}", "a", 0, NULL);
	GET("{ \"x\" : { \"a\" : 1 } , \"a\" : 2 }", "a", 1, "2");
	GET("[\"a\",1]", "a", -EBADMSG, NULL);
	GET("\"a\"", "a", -EBADMSG, NULL);
	GET("  ", "a", -EBADMSG, NULL);
}

static void expect_unescape(const char *tok, const char *want, size_t wlen, int line)
{
	char out[64];
	long n = json_string_unescape(span(tok), out, sizeof(out));

	if (check_int(n, (long long)wlen, __FILE__, line, "json_string_unescape length")) {
		check_mem(out, (size_t)n, want, wlen, __FILE__, line, "unescaped");
		check_int(out[n], 0, __FILE__, line, "terminating NUL");
	}
}

#define UNESCAPE(tok, want) expect_unescape(tok, want, sizeof(want) - 1, __LINE__)

static void test_unescape(void)
{
	char out[8];

	UNESCAPE("\"\"", "");
	UNESCAPE("\"abc\"", "abc");
	UNESCAPE("\"a\\nb\"", "a\nb");
	UNESCAPE("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t");
	UNESCAPE("\"\\u0041\"", "A");
	UNESCAPE("\"\\u00e9\"", "\xc3\xa9");
	UNESCAPE("\"\\u07FF\"", "\xdf\xbf");
	UNESCAPE("\"\\u20AC\"", "\xe2\x82\xac");
	UNESCAPE("\"\\uFFFF\"", "\xef\xbf\xbf");
	UNESCAPE("\"\\uD83D\\uDE00\"", "\xf0\x9f\x98\x80");
	UNESCAPE("\"\\uD800\\uDC00\"", "\xf0\x90\x80\x80");
	UNESCAPE("\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf");
	UNESCAPE("\"a\\u0000b\"", "a\0b");
	UNESCAPE("\"\xc3\xa9\"", "\xc3\xa9");
	UNESCAPE(" \"x\" ", "x");

	/* Capacity counts the NUL. */
	CHECK_INT(json_string_unescape(span("\"abc\""), out, 4), 3);
	CHECK_STR(out, "abc");
	CHECK_INT(json_string_unescape(span("\"abc\""), out, 3), -ENOBUFS);
	CHECK_INT(json_string_unescape(span("\"\""), out, 1), 0);
	CHECK_INT(json_string_unescape(span("\"\""), out, 0), -ENOBUFS);
	CHECK_INT(json_string_unescape(span("\"\\uD83D\\uDE00\""), out, 4), -ENOBUFS);
	CHECK_INT(json_string_unescape(span("\"\\uD83D\\uDE00\""), out, 5), 4);
	CHECK_INT(json_string_unescape(span("123"), out, sizeof(out)), -EBADMSG);
	CHECK_INT(json_string_unescape(span("[\"a\"]"), out, sizeof(out)), -EBADMSG);
	CHECK_INT(json_string_unescape(span(""), out, sizeof(out)), -EBADMSG);
	CHECK_INT(json_string_unescape(span("\"abc"), out, sizeof(out)), -EBADMSG);
	CHECK_INT(json_string_unescape(span("\"\\uD800\""), out, sizeof(out)), -EBADMSG);
}

static void expect_uint(const char *tok, int want_rc, uint64_t want, int line)
{
	uint64_t got = 12345;
	int rc = json_uint(span(tok), &got);

	if (!check_int(rc, want_rc, __FILE__, line, "json_uint")) {
		fprintf(stderr, "  input: %s\n", tok);
		return;
	}
	if (rc == 0)
		check_uint(got, want, __FILE__, line, "json_uint value");
	else
		check_uint(got, 12345, __FILE__, line, "json_uint left *out alone");
}

#define UINT_OK(tok, v) expect_uint(tok, 0, v, __LINE__)
#define UINT_BAD(tok) expect_uint(tok, -EBADMSG, 0, __LINE__)

static void test_uint(void)
{
	UINT_OK("0", 0);
	UINT_OK("1", 1);
	UINT_OK("42", 42);
	UINT_OK(" 7 ", 7);
	UINT_OK("9007199254740991", (UINT64_C(1) << 53) - 1);
	UINT_OK("9007199254740992", UINT64_C(1) << 53);
	UINT_BAD("9007199254740993");
	UINT_BAD("9999999999999999");
	UINT_BAD("18446744073709551615");
	UINT_BAD("18446744073709551616");
	UINT_BAD("99999999999999999999999");
	UINT_BAD("01");
	UINT_BAD("00");
	UINT_BAD("1e3");
	UINT_BAD("1E3");
	UINT_BAD("1.0");
	UINT_BAD("1.5");
	UINT_BAD("-1");
	UINT_BAD("-0");
	UINT_BAD("");
	UINT_BAD("\"1\"");
	UINT_BAD("true");
	UINT_BAD("+1");
}

static void test_uint_write(void)
{
	static const uint64_t v[] = { 0, 1, 9, 10, 42, 100, 65535, 9007199254740991ULL,
				      UINT64_C(1) << 53 };
	char out[JSON_UINT_MAX + 1], want[32];
	uint64_t back;

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		size_t n = json_uint_write(out, v[i]);
		snprintf(want, sizeof(want), "%llu", (unsigned long long)v[i]);
		CHECK_MEM(out, n, want, strlen(want));
		/* What it writes, json_uint reads back. */
		CHECK_INT(json_uint((struct json_span){ out, n }, &back), 0);
		CHECK_UINT(back, v[i]);
	}
	/* The widest fills JSON_UINT_MAX. */
	CHECK_UINT(json_uint_write(out, UINT64_MAX), JSON_UINT_MAX);
	CHECK_MEM(out, JSON_UINT_MAX, "18446744073709551615", 20);
}

static void expect_escape(const char *s, size_t len, const char *want, int line)
{
	char *out = malloc(json_escaped_max(len));
	size_t n = json_escape(s, len, out);

	check_mem(out, n, want, strlen(want), __FILE__, line, "json_escape");
	check_int(json_validate(out, n, 1), JSON_STRING, __FILE__, line, "escaped validates");
	free(out);
}

#define ESCAPE(lit, want) expect_escape(lit, sizeof(lit) - 1, want, __LINE__)

static void test_escape(void)
{
	ESCAPE("", "\"\"");
	ESCAPE("abc", "\"abc\"");
	ESCAPE("a\"b\\c", "\"a\\\"b\\\\c\"");
	ESCAPE("\n\t\r\b\f", "\"\\n\\t\\r\\b\\f\"");
	ESCAPE("\x01\x1f", "\"\\u0001\\u001f\"");
	ESCAPE("a\0b", "\"a\\u0000b\"");
	ESCAPE("\x7f", "\"\\u007f\"");
	ESCAPE("a/b", "\"a/b\"");
	ESCAPE("\xc3\xa9\xf0\x9f\x98\x80", "\"\xc3\xa9\xf0\x9f\x98\x80\"");

	/* The worst case fills json_escaped_max exactly. */
	char worst[16], out[json_escaped_max(16)];
	memset(worst, 1, sizeof(worst));
	CHECK_INT(json_escape(worst, sizeof(worst), out), json_escaped_max(16));

	/* Every ASCII byte survives escape then unescape. */
	char all[128], back[128 * 6 + 3], *esc = malloc(json_escaped_max(128));
	for (int i = 0; i < 128; i++)
		all[i] = (char)i;
	size_t n = json_escape(all, sizeof(all), esc);
	CHECK_INT(json_validate(esc, n, 1), JSON_STRING);
	long m = json_string_unescape((struct json_span){ esc, n }, back, sizeof(back));
	CHECK_MEM(back, m < 0 ? 0 : (size_t)m, all, sizeof(all));
	free(esc);
}

int main(void)
{
	test_valid_grammar();
	test_invalid_grammar();
	test_strings();
	test_utf8();
	test_depth();
	test_truncation();
	test_kind_of();
	test_array_iteration();
	test_object_iteration();
	test_object_get();
	test_unescape();
	test_uint();
	test_uint_write();
	test_escape();
	return check_report("test_json");
}
