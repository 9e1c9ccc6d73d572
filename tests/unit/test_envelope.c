/* test_envelope.c - the plain WebSocket frame: events with and without an
 * ack id, replies, every way a frame is refused (and the ack id a refused
 * event still gives), the name's bound and escapes; several arguments as
 * "args"; the writers byte for byte, and what they write read back by the
 * parser. Inputs sit in
 * exact-size buffers so ASan sees any read past them. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "wire/envelope.h"

#define DEPTH 32

/* The last input PARSE gave: e.data points into it until the next one. */
static char *input;

/* Parses a copy of the literal in a buffer of its size. */
static int parse_lit(const char *lit, size_t len, struct envelope *e)
{
	free(input);
	input = malloc(len ? len : 1);
	memcpy(input, lit, len);
	return envelope_parse(input, len, DEPTH, e);
}

#define PARSE(lit, e) parse_lit(lit, sizeof(lit) - 1, e)
/* The `n` bytes written at `buf` are the literal `lit`. */
#define CHECK_WROTE(buf, n, lit) CHECK_MEM(buf, n, lit, sizeof(lit) - 1)

static void test_parse_events(void)
{
	struct envelope e;

	CHECK_INT(PARSE("{\"event\":\"message:send\",\"data\":{\"text\":\"hi\"}}", &e), 0);
	CHECK_INT(e.kind, ENVELOPE_EVENT);
	CHECK_INT(e.ack, -1);
	CHECK_MEM(e.name, e.name_len, "message:send", 12);
	CHECK_UINT(e.name[e.name_len], 0);
	CHECK_MEM(e.data.p, e.data.len, "{\"text\":\"hi\"}", 13);

	/* Asking for an ack. */
	CHECK_INT(PARSE("{\"event\":\"x\",\"data\":1,\"ack\":5}", &e), 0);
	CHECK_INT(e.kind, ENVELOPE_EVENT);
	CHECK_INT(e.ack, 5);
	CHECK_MEM(e.data.p, e.data.len, "1", 1);

	/* Members in any order, blanks anywhere, no data. */
	CHECK_INT(PARSE(" { \"ack\" : 0 ,\n\"event\" : \"x\" } ", &e), 0);
	CHECK_INT(e.kind, ENVELOPE_EVENT);
	CHECK_INT(e.ack, 0);
	CHECK_MEM(e.name, e.name_len, "x", 1);
	CHECK(e.data.p == NULL && e.data.len == 0);

	/* The largest ack id, 2^53. */
	CHECK_INT(PARSE("{\"event\":\"x\",\"ack\":9007199254740992}", &e), 0);
	CHECK_INT(e.ack, 9007199254740992LL);

	/* The name is unescaped; a key spelled with escapes is the same key. */
	CHECK_INT(PARSE("{\"ev\\u0065nt\":\"a\\u00e9\\\"b\\n\"}", &e), 0);
	CHECK_MEM(e.name, e.name_len, "a\xc3\xa9\"b\n", 6);
	/* A NUL in a name is a byte of it: the length says where it ends. */
	CHECK_INT(PARSE("{\"event\":\"a\\u0000b\"}", &e), 0);
	CHECK_MEM(e.name, e.name_len, "a\0b", 3);

	/* Other members are ignored; the first of a repeated one counts. */
	CHECK_INT(PARSE("{\"x\":[1,{}],\"event\":\"a\",\"event\":\"b\",\"data\":null}", &e),
		  0);
	CHECK_MEM(e.name, e.name_len, "a", 1);
	CHECK_MEM(e.data.p, e.data.len, "null", 4);
	CHECK(e.args.p == NULL && e.args.len == 0);
}

/* Several arguments: "args", an array, in place of "data". */
static void test_parse_args(void)
{
	struct envelope e;

	CHECK_INT(PARSE("{\"event\":\"x\",\"args\":[1,\"2\",{\"3\":[true]}],\"ack\":4}", &e), 0);
	CHECK_INT(e.kind, ENVELOPE_EVENT);
	CHECK_INT(e.ack, 4);
	CHECK_MEM(e.args.p, e.args.len, "[1,\"2\",{\"3\":[true]}]", 20);
	CHECK(e.data.p == NULL);
	CHECK_INT(PARSE("{\"args\":[],\"event\":\"x\"}", &e), 0);
	CHECK_MEM(e.args.p, e.args.len, "[]", 2);
	CHECK_INT(PARSE("{\"ack\":2,\"args\":[null,5]}", &e), 0);
	CHECK_INT(e.kind, ENVELOPE_REPLY);
	CHECK_MEM(e.args.p, e.args.len, "[null,5]", 8);

	/* Not an array, or with "data" too: refused, the ack id kept. */
	CHECK_INT(PARSE("{\"event\":\"x\",\"args\":{\"0\":1},\"ack\":9}", &e), -EINVAL);
	CHECK_INT(e.ack, 9);
	CHECK_INT(PARSE("{\"event\":\"x\",\"args\":\"[1]\"}", &e), -EINVAL);
	CHECK_INT(e.ack, -1);
	CHECK_INT(PARSE("{\"event\":\"x\",\"args\":null}", &e), -EINVAL);
	CHECK_INT(PARSE("{\"event\":\"x\",\"data\":1,\"args\":[2]}", &e), -EINVAL);
	CHECK_INT(PARSE("{\"ack\":3,\"args\":5}", &e), -EINVAL);
	CHECK_INT(e.kind, ENVELOPE_REPLY);
	CHECK_INT(e.ack, 3);
	/* A bad name is told before bad arguments. */
	CHECK_INT(PARSE("{\"event\":7,\"args\":5}", &e), PARLEY_EBADNAME);
}

static void test_parse_replies(void)
{
	struct envelope e;

	CHECK_INT(PARSE("{\"ack\":3,\"data\":[1,2]}", &e), 0);
	CHECK_INT(e.kind, ENVELOPE_REPLY);
	CHECK_INT(e.ack, 3);
	CHECK_MEM(e.data.p, e.data.len, "[1,2]", 5);
	CHECK_UINT(e.name_len, 0);

	CHECK_INT(PARSE("{\"ack\":0}", &e), 0);
	CHECK_INT(e.kind, ENVELOPE_REPLY);
	CHECK_INT(e.ack, 0);
	CHECK(e.data.p == NULL);
}

static void test_parse_refused(void)
{
	struct envelope e;

	/* Not one JSON object. */
	CHECK_INT(PARSE("", &e), -EBADMSG);
	CHECK_INT(PARSE("[]", &e), -EBADMSG);
	CHECK_INT(PARSE("\"event\"", &e), -EBADMSG);
	CHECK_INT(PARSE("null", &e), -EBADMSG);
	CHECK_INT(PARSE("{", &e), -EBADMSG);
	CHECK_INT(PARSE("{\"event\":\"x\"", &e), -EBADMSG);
	CHECK_INT(PARSE("{\"event\":\"x\"}{}", &e), -EBADMSG);
	CHECK_INT(PARSE("{\"event\":\"x\",}", &e), -EBADMSG);
	CHECK_INT(PARSE("{\"event\":\"\xff\"}", &e), -EBADMSG);
	CHECK_INT(PARSE("{\"event\":\"x\",\"data\":\"\x01\"}", &e), -EBADMSG);
	/* Nested deeper than max_depth: the object is one level. */
	char deep[2 * DEPTH + 32];
	size_t n = 0;
	n += (size_t)sprintf(deep, "{\"event\":\"x\",\"data\":");
	for (int i = 0; i < DEPTH; i++)
		deep[n++] = '[';
	for (int i = 0; i < DEPTH; i++)
		deep[n++] = ']';
	deep[n++] = '}';
	CHECK_INT(envelope_parse(deep, n, DEPTH, &e), -EBADMSG);
	CHECK_INT(envelope_parse(deep, n, DEPTH + 1, &e), 0);

	/* An ack id that is not an integer in 0..2^53. */
	CHECK_INT(PARSE("{\"event\":\"x\",\"ack\":-1}", &e), PARLEY_EBADACK);
	CHECK_INT(PARSE("{\"event\":\"x\",\"ack\":1.5}", &e), PARLEY_EBADACK);
	CHECK_INT(PARSE("{\"event\":\"x\",\"ack\":1e3}", &e), PARLEY_EBADACK);
	CHECK_INT(PARSE("{\"event\":\"x\",\"ack\":\"1\"}", &e), PARLEY_EBADACK);
	CHECK_INT(PARSE("{\"event\":\"x\",\"ack\":null}", &e), PARLEY_EBADACK);
	CHECK_INT(PARSE("{\"event\":\"x\",\"ack\":9007199254740993}", &e), PARLEY_EBADACK);
	CHECK_INT(PARSE("{\"ack\":true,\"data\":1}", &e), PARLEY_EBADACK);

	/* No usable event: the ack id, if any, is kept so the error can
	 * answer it. */
	CHECK_INT(PARSE("{}", &e), PARLEY_EBADNAME);
	CHECK_INT(e.ack, -1);
	CHECK_INT(PARSE("{\"data\":1}", &e), PARLEY_EBADNAME);
	CHECK_INT(PARSE("{\"event\":5,\"ack\":7}", &e), PARLEY_EBADNAME);
	CHECK_INT(e.ack, 7);
	CHECK_INT(PARSE("{\"event\":\"\",\"ack\":8}", &e), PARLEY_EBADNAME);
	CHECK_INT(e.ack, 8);
	CHECK_INT(PARSE("{\"event\":null}", &e), PARLEY_EBADNAME);
	CHECK_INT(PARSE("{\"event\":[\"x\"]}", &e), PARLEY_EBADNAME);
}

/* A name of `len` bytes of 'n', as an event frame. */
static int parse_named(size_t len, struct envelope *e)
{
	char *p = malloc(len + 16);
	size_t n = (size_t)sprintf(p, "{\"event\":\"");
	memset(p + n, 'n', len);
	n += len;
	n += (size_t)sprintf(p + n, "\"}");
	int rc = envelope_parse(p, n, DEPTH, e);
	free(p);
	return rc;
}

static void test_name_bound(void)
{
	struct envelope e;

	CHECK_INT(parse_named(ENVELOPE_NAME_MAX, &e), 0);
	CHECK_UINT(e.name_len, ENVELOPE_NAME_MAX);
	CHECK_UINT(e.name[ENVELOPE_NAME_MAX], 0);
	CHECK_INT(parse_named(ENVELOPE_NAME_MAX + 1, &e), PARLEY_EBADNAME);
	/* The bound is on the unescaped name: six bytes of escape are one. */
	char p[ENVELOPE_NAME_MAX * 6 + 16];
	size_t n = (size_t)sprintf(p, "{\"event\":\"");
	for (int i = 0; i < ENVELOPE_NAME_MAX; i++)
		n += (size_t)sprintf(p + n, "\\u0041");
	n += (size_t)sprintf(p + n, "\"}");
	CHECK_INT(envelope_parse(p, n, DEPTH, &e), 0);
	CHECK_UINT(e.name_len, ENVELOPE_NAME_MAX);
	CHECK_UINT(e.name[0], 'A');
}

/* Writes with envelope_event_write into a buffer of exactly the room it
 * asks for (ASan sees a byte past it) and checks the bytes. */
static void expect_event(const char *name, size_t nlen, const char *data, size_t dlen,
			 unsigned nargs, int64_t ack, const char *want, int line)
{
	size_t room = ENVELOPE_EVENT_MAX(nlen, dlen);
	char *out = malloc(room);
	size_t n = envelope_event_write(out, name, nlen, data, dlen, nargs, ack);

	check_mem(out, n, want, strlen(want), __FILE__, line, "envelope_event_write");
	check_true(n <= room, __FILE__, line, "n <= ENVELOPE_EVENT_MAX");
	free(out);
}

#define EVENT(name, data, dlen, ack, want) \
	expect_event(name, sizeof(name) - 1, data, dlen, 1, ack, want, __LINE__)
#define EVENT_ARGS(name, args, nargs, ack, want) \
	expect_event(name, sizeof(name) - 1, args, sizeof(args) - 1, nargs, ack, want, __LINE__)

static void test_write(void)
{
	char out[ENVELOPE_REPLY_MAX(16)];
	size_t n;

	/* As the plain endpoint sends them today (hub/client.c), byte for byte. */
	EVENT("message:new", "{\"text\":\"hi\"}", 13, -1,
	      "{\"event\":\"message:new\",\"data\":{\"text\":\"hi\"}}");
	EVENT("x", "[1,2]", 5, 0, "{\"event\":\"x\",\"data\":[1,2],\"ack\":0}");
	EVENT("x", "1", 1, 9007199254740991LL,
	      "{\"event\":\"x\",\"data\":1,\"ack\":9007199254740991}");
	/* No data: null. */
	EVENT("x", NULL, 0, -1, "{\"event\":\"x\",\"data\":null}");
	EVENT("x", "ignored", 0, 3, "{\"event\":\"x\",\"data\":null,\"ack\":3}");
	/* The name escaped. */
	EVENT("a\"b\\\n\x01\xc3\xa9", "true", 4, -1,
	      "{\"event\":\"a\\\"b\\\\\\n\\u0001\xc3\xa9\",\"data\":true}");
	/* Several arguments: "args" in place of "data". */
	EVENT_ARGS("x", "1,\"2\",{\"3\":[true]}", 3, -1,
		   "{\"event\":\"x\",\"args\":[1,\"2\",{\"3\":[true]}]}");
	EVENT_ARGS("x", "null,{\"_placeholder\":true,\"num\":0}", 2, 6,
		   "{\"event\":\"x\",\"args\":[null,{\"_placeholder\":true,\"num\":0}],\"ack\":6}");
	/* None: "data": null, however many were said. */
	EVENT_ARGS("x", "", 2, -1, "{\"event\":\"x\",\"data\":null}");
	/* The worst name, several arguments and the widest id (19 digits: it
	 * is signed) fill the room but for one byte. */
	char worst[8];
	memset(worst, 1, sizeof(worst));
	char *big = malloc(ENVELOPE_EVENT_MAX(sizeof(worst), 4));
	n = envelope_event_write(big, worst, sizeof(worst), "1,23", 4, 2, INT64_MAX);
	CHECK_UINT(n, ENVELOPE_EVENT_MAX(sizeof(worst), 4) - 1);
	free(big);

	n = envelope_reply_write(out, 7, "true", 4, 1);
	CHECK_WROTE(out, n, "{\"ack\":7,\"data\":true}");
	n = envelope_reply_write(out, 0, NULL, 0, 0);
	CHECK_WROTE(out, n, "{\"ack\":0,\"data\":null}");
	n = envelope_reply_write(out, 9007199254740992ULL, "\"s\"", 3, 1);
	CHECK_WROTE(out, n, "{\"ack\":9007199254740992,\"data\":\"s\"}");
	CHECK(n <= ENVELOPE_REPLY_MAX(3));
	n = envelope_reply_write(out, 5, "null,1", 6, 2);
	CHECK_WROTE(out, n, "{\"ack\":5,\"args\":[null,1]}");
	CHECK(n <= ENVELOPE_REPLY_MAX(6));
	char widest[ENVELOPE_REPLY_MAX(4)];
	CHECK_UINT(envelope_reply_write(widest, UINT64_MAX, "1,23", 4, 2), sizeof(widest));
}

/* What the writers write, the parser reads back to the same fields. */
static void test_round_trip(void)
{
	static const struct {
		const char *name;
		const char *data; /* NULL: none */
		int64_t ack;
	} rt[] = {
		{ "message:send", "{\"conversationId\":\"c1\",\"text\":\"caf\xc3\xa9\"}", -1 },
		{ "typing", "true", 0 },
		{ "a \"quoted\" \\ name\t", "[null,{\"a\":[]}]", 42 },
		{ "x", NULL, 9007199254740992LL },
		{ "\xf0\x9f\x98\x80", "\"\\u001e\"", 1 },
	};
	struct envelope e;

	for (size_t i = 0; i < sizeof(rt) / sizeof(rt[0]); i++) {
		size_t nlen = strlen(rt[i].name), dlen = rt[i].data ? strlen(rt[i].data) : 0;
		char *out = malloc(ENVELOPE_EVENT_MAX(nlen, dlen));
		size_t n = envelope_event_write(out, rt[i].name, nlen, rt[i].data, dlen, 1,
						rt[i].ack);

		CHECK_INT(envelope_parse(out, n, DEPTH, &e), 0);
		CHECK_INT(e.kind, ENVELOPE_EVENT);
		CHECK_MEM(e.name, e.name_len, rt[i].name, nlen);
		CHECK_INT(e.ack, rt[i].ack);
		if (rt[i].data)
			CHECK_MEM(e.data.p, e.data.len, rt[i].data, dlen);
		else
			CHECK_MEM(e.data.p, e.data.len, "null", 4);
		free(out);

		if (rt[i].ack < 0)
			continue;
		out = malloc(ENVELOPE_REPLY_MAX(dlen));
		n = envelope_reply_write(out, (uint64_t)rt[i].ack, rt[i].data, dlen, 1);
		CHECK_INT(envelope_parse(out, n, DEPTH, &e), 0);
		CHECK_INT(e.kind, ENVELOPE_REPLY);
		CHECK_INT(e.ack, rt[i].ack);
		if (rt[i].data)
			CHECK_MEM(e.data.p, e.data.len, rt[i].data, dlen);
		free(out);
	}

	/* Several arguments come back as the "args" array. */
	static const char list[] = "1,\"a\",[null]";
	char *out = malloc(ENVELOPE_EVENT_MAX(1, sizeof(list) - 1));
	size_t n = envelope_event_write(out, "x", 1, list, sizeof(list) - 1, 3, 2);
	CHECK_INT(envelope_parse(out, n, DEPTH, &e), 0);
	CHECK_MEM(e.args.p, e.args.len, "[1,\"a\",[null]]", sizeof(list) + 1);
	CHECK(e.data.p == NULL);
	n = envelope_reply_write(out, 2, list, sizeof(list) - 1, 3);
	CHECK_INT(envelope_parse(out, n, DEPTH, &e), 0);
	CHECK_INT(e.kind, ENVELOPE_REPLY);
	CHECK_MEM(e.args.p, e.args.len, "[1,\"a\",[null]]", sizeof(list) + 1);
	free(out);
}

int main(void)
{
	test_parse_events();
	test_parse_replies();
	test_parse_args();
	test_parse_refused();
	test_name_bound();
	test_write();
	test_round_trip();
	free(input);
	return check_report("test_envelope");
}
