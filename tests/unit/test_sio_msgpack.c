/* test_sio_msgpack.c - socket.io-msgpack-parser packets: each packet type
 * decoded to the text parser's form (JSON with placeholders, attachments as
 * views), notepack.io's undefined and ArrayBuffer, each refusal with its
 * code, sizes announced past the message refused before msgpack-c
 * allocates, and a text packet encoded and decoded back. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "check.h"
#include "wire/sio_msgpack.h"

static const struct sio_msgpack_limits LIM = { 32, 64, 1 << 20 };

/* A packet being built with msgpack-c's packer. */
static msgpack_sbuffer sb;
static msgpack_packer pk;

static void begin(void)
{
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
}

/* A packet: a map of `fields` fields. */
static void start(unsigned fields)
{
	begin();
	msgpack_pack_map(&pk, fields);
}

static void str(const char *s)
{
	msgpack_pack_str_with_body(&pk, s, strlen(s));
}

/* The map's type and nsp fields. */
static void head(int type, const char *nsp)
{
	str("type");
	msgpack_pack_int(&pk, type);
	str("nsp");
	str(nsp);
}

static int decode(struct sio_msgpack_packet *m)
{
	const char *why = NULL;
	int r = sio_msgpack_decode(sb.data, sb.size, &LIM, m, &why);

	if (r < 0)
		CHECK(why != NULL);
	return r;
}

static int decode_bytes(const char *p, size_t len, const struct sio_msgpack_limits *lim)
{
	struct sio_msgpack_packet m;
	const char *why = NULL;
	int r = sio_msgpack_decode(p, len, lim, &m, &why);

	if (r == 0)
		sio_msgpack_packet_fini(&m);
	return r;
}

static void test_connect(void)
{
	struct sio_msgpack_packet m;

	start(3);
	head(0, "/messages");
	str("data");
	msgpack_pack_map(&pk, 1);
	str("userId");
	str("alice \"a\"");
	CHECK_INT(decode(&m), 0);
	CHECK_INT(m.pkt.type, SIO_CONNECT);
	CHECK_MEM(m.pkt.nsp, m.pkt.nsp_len, "/messages", 9);
	CHECK_INT(m.pkt.id, -1);
	CHECK_STR(m.pkt.data, "{\"userId\":\"alice \\\"a\\\"\"}");
	CHECK_UINT(m.natt, 0);
	sio_msgpack_packet_fini(&m);
	sio_msgpack_packet_fini(&m); /* a second time does nothing */
	msgpack_sbuffer_destroy(&sb);

	/* No data: none, as "0" in text. */
	start(2);
	head(0, "/");
	CHECK_INT(decode(&m), 0);
	CHECK_UINT(m.pkt.len, 0);
	sio_msgpack_packet_fini(&m);
	msgpack_sbuffer_destroy(&sb);
}

static void test_event(void)
{
	struct sio_msgpack_packet m;
	static const unsigned char bytes[] = { 0, 1, 0xff };

	/* socket.io-client adds its options; an id; values of every kind. */
	start(5);
	head(2, "/m");
	str("options");
	msgpack_pack_map(&pk, 1);
	str("compress");
	msgpack_pack_true(&pk);
	str("id");
	msgpack_pack_uint64(&pk, 9007199254740991ULL);
	str("data");
	msgpack_pack_array(&pk, 8);
	str("ev");
	msgpack_pack_int(&pk, -5);
	msgpack_pack_uint64(&pk, 18446744073709551615ULL);
	msgpack_pack_double(&pk, 2.5);
	msgpack_pack_nil(&pk);
	msgpack_pack_bin_with_body(&pk, bytes, sizeof(bytes));
	msgpack_pack_array(&pk, 0);
	msgpack_pack_map(&pk, 1);
	str("f");
	msgpack_pack_bin_with_body(&pk, "", 0);
	CHECK_INT(decode(&m), 0);
	CHECK_INT(m.pkt.type, SIO_EVENT);
	CHECK_INT(m.pkt.id, 9007199254740991LL);
	CHECK_STR(m.pkt.data, "[\"ev\",-5,18446744073709551615,2.5,null,"
		  "{\"_placeholder\":true,\"num\":0},[],{\"f\":{\"_placeholder\":true,\"num\":1}}]");
	CHECK_UINT(m.natt, 2);
	CHECK_MEM(m.att[0].data, m.att[0].len, bytes, sizeof(bytes));
	CHECK_UINT(m.att[1].len, 0);
	/* Views of the message, not copies. */
	CHECK((const char *)m.att[0].data > sb.data && (const char *)m.att[0].data < sb.data + sb.size);
	sio_msgpack_packet_fini(&m);
	msgpack_sbuffer_destroy(&sb);
}

/* notepack.io: undefined is fixext 1 of type 0 holding 0 (a field left
 * out, or null in an array), an ArrayBuffer an ext of type 0. */
static void test_notepack_forms(void)
{
	struct sio_msgpack_packet m;
	static const unsigned char ab[] = { 9, 8, 7 };

	start(4);
	head(2, "/");
	str("id");
	msgpack_pack_ext_with_body(&pk, "\0", 1, 0);
	str("data");
	msgpack_pack_array(&pk, 3);
	str("x");
	msgpack_pack_ext_with_body(&pk, "\0", 1, 0);
	msgpack_pack_ext_with_body(&pk, ab, sizeof(ab), 0);
	CHECK_INT(decode(&m), 0);
	CHECK_INT(m.pkt.id, -1);
	CHECK_STR(m.pkt.data, "[\"x\",null,{\"_placeholder\":true,\"num\":0}]");
	CHECK_MEM(m.att[0].data, m.att[0].len, ab, sizeof(ab));
	sio_msgpack_packet_fini(&m);
	msgpack_sbuffer_destroy(&sb);

	/* Another ext type has no JSON form. */
	start(3);
	head(2, "/");
	str("data");
	msgpack_pack_array(&pk, 2);
	str("x");
	msgpack_pack_ext_with_body(&pk, "ab", 2, 5);
	CHECK_INT(decode(&m), -EPROTO);
	msgpack_sbuffer_destroy(&sb);
}

static void test_refused(void)
{
	struct sio_msgpack_packet m;

	/* Not a map. */
	begin();
	msgpack_pack_array(&pk, 1);
	msgpack_pack_int(&pk, 2);
	CHECK_INT(decode(&m), -EPROTO);
	msgpack_sbuffer_destroy(&sb);

	/* Unknown packet types, and a type that is a string. */
	for (int t = 5; t <= 7; t++) {
		start(3);
		head(t, "/");
		str("data");
		msgpack_pack_array(&pk, 0);
		CHECK_INT(decode(&m), -EPROTO);
		msgpack_sbuffer_destroy(&sb);
	}
	start(2);
	str("type");
	str("2");
	str("nsp");
	str("/");
	CHECK_INT(decode(&m), -EPROTO);
	msgpack_sbuffer_destroy(&sb);

	/* Data of the wrong kind for the type. */
	start(3);
	head(2, "/");
	str("data");
	str("x");
	CHECK_INT(decode(&m), -EPROTO);
	msgpack_sbuffer_destroy(&sb);
	start(3);
	head(1, "/");
	str("data");
	msgpack_pack_array(&pk, 0);
	CHECK_INT(decode(&m), -EPROTO);
	msgpack_sbuffer_destroy(&sb);

	/* A namespace that is not '/'-led, or has a comma; a negative id. */
	start(2);
	head(0, "messages");
	CHECK_INT(decode(&m), -EPROTO);
	msgpack_sbuffer_destroy(&sb);
	start(2);
	head(0, "/a,b");
	CHECK_INT(decode(&m), -EPROTO);
	msgpack_sbuffer_destroy(&sb);
	start(4);
	head(2, "/");
	str("id");
	msgpack_pack_int(&pk, -1);
	str("data");
	msgpack_pack_array(&pk, 0);
	CHECK_INT(decode(&m), -EPROTO);
	msgpack_sbuffer_destroy(&sb);

	/* A string that is not UTF-8; a map key in the data that is not a
	 * string. */
	start(3);
	head(2, "/");
	str("data");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_str_with_body(&pk, "\xff\xfe", 2);
	CHECK_INT(decode(&m), -EPROTO);
	msgpack_sbuffer_destroy(&sb);
	start(3);
	head(2, "/");
	str("data");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_int(&pk, 2);
	CHECK_INT(decode(&m), -EPROTO);
	msgpack_sbuffer_destroy(&sb);

	/* Truncated at every length, and a byte too many. */
	start(3);
	head(2, "/");
	str("data");
	msgpack_pack_array(&pk, 2);
	str("event");
	str("a string of some length");
	CHECK_INT(decode(&m), 0);
	sio_msgpack_packet_fini(&m);
	for (size_t n = 0; n < sb.size; n++)
		CHECK_INT(decode_bytes(sb.data, n, &LIM), -EBADMSG);
	msgpack_pack_nil(&pk);
	CHECK_INT(decode(&m), -EBADMSG);
	msgpack_sbuffer_destroy(&sb);

	/* Sizes announced past the message: refused before msgpack-c would
	 * allocate 96 GiB for the array's slots. */
	CHECK_INT(decode_bytes("\xdd\xff\xff\xff\xff", 5, &LIM), -EBADMSG);
	CHECK_INT(decode_bytes("\xdf\x7f\xff\xff\xff", 5, &LIM), -EBADMSG);
	CHECK_INT(decode_bytes("\xdb\xff\xff\xff\xff" "abc", 8, &LIM), -EBADMSG);
	CHECK_INT(decode_bytes("\xc6\x00\x00\x00\x04" "abc", 8, &LIM), -EBADMSG);
	CHECK_INT(decode_bytes("\xc1", 1, &LIM), -EBADMSG);
}

/* Data nested `depth` arrays deep (the event's own array counts). */
static void nested(int depth)
{
	start(3);
	head(2, "/");
	str("data");
	for (int i = 0; i < depth - 1; i++)
		msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 0);
}

static void test_limits(void)
{
	struct sio_msgpack_packet m;
	struct sio_msgpack_limits lim = LIM;
	const char *why;

	/* msgpack-c's stack holds 32 containers: the packet's map and 31 in
	 * its data. */
	nested(31);
	CHECK_INT(decode(&m), 0);
	sio_msgpack_packet_fini(&m);
	msgpack_sbuffer_destroy(&sb);
	nested(32);
	CHECK_INT(decode(&m), -ELOOP);
	msgpack_sbuffer_destroy(&sb);
	/* A lower JSON limit is the one that counts. */
	lim.max_depth = 4;
	nested(4);
	CHECK_INT(sio_msgpack_decode(sb.data, sb.size, &lim, &m, &why), 0);
	sio_msgpack_packet_fini(&m);
	msgpack_sbuffer_destroy(&sb);
	nested(5);
	CHECK_INT(sio_msgpack_decode(sb.data, sb.size, &lim, &m, &why), -ELOOP);
	msgpack_sbuffer_destroy(&sb);

	/* Attachments: 64 pass, 65 do not. */
	for (int n = 64; n <= 65; n++) {
		start(3);
		head(2, "/");
		str("data");
		msgpack_pack_array(&pk, (size_t)n + 1);
		str("x");
		for (int i = 0; i < n; i++)
			msgpack_pack_bin_with_body(&pk, "a", 1);
		CHECK_INT(decode(&m), n == 64 ? 0 : -EMSGSIZE);
		if (n == 64) {
			CHECK_UINT(m.natt, 64);
			sio_msgpack_packet_fini(&m);
		}
		msgpack_sbuffer_destroy(&sb);
	}

	/* The JSON's size: control characters escape to six bytes each. */
	lim = LIM;
	lim.max_json = 100;
	start(3);
	head(2, "/");
	str("data");
	msgpack_pack_array(&pk, 1);
	/* 20 of them: 122 bytes of JSON from 20 of msgpack. */
	msgpack_pack_str_with_body(&pk, "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01", 20);
	CHECK_INT(sio_msgpack_decode(sb.data, sb.size, &lim, &m, &why), -EMSGSIZE);
	lim.max_json = 200;
	CHECK_INT(sio_msgpack_decode(sb.data, sb.size, &lim, &m, &why), 0);
	sio_msgpack_packet_fini(&m);
	msgpack_sbuffer_destroy(&sb);
}

/* Encodes the text packet and decodes it back. */
static int encode_decode(const char *text, const struct sio_attachment *att, unsigned natt,
			 struct sio_msgpack_packet *m, struct sio_msgpack_buf *buf)
{
	const char *why;

	memset(buf, 0, sizeof(*buf));
	if (sio_msgpack_encode(text, strlen(text), att, natt, buf) < 0)
		return -1;
	return sio_msgpack_decode(buf->data, buf->len, &LIM, m, &why);
}

static void test_encode(void)
{
	struct sio_msgpack_packet m;
	struct sio_msgpack_buf buf;
	unsigned char bytes[] = { 1, 2, 3 };
	struct sio_attachment att[] = { { bytes, 3 } };

	CHECK_INT(encode_decode("2/m,7[\"ev\",1,-2,2.5,1e300,18446744073709551615,\"\\u00e9\\n\","
				"{\"a\":[true,false,null]}]", NULL, 0, &m, &buf), 0);
	CHECK_INT(m.pkt.type, SIO_EVENT);
	CHECK_INT(m.pkt.id, 7);
	CHECK_MEM(m.pkt.nsp, m.pkt.nsp_len, "/m", 2);
	CHECK_STR(m.pkt.data, "[\"ev\",1,-2,2.5,1.0000000000000001e+300,18446744073709551615,"
		  "\"\xc3\xa9\\n\",{\"a\":[true,false,null]}]");
	sio_msgpack_packet_fini(&m);
	free(buf.data);

	/* A binary ack: the placeholder becomes the bytes, the type ACK. */
	CHECK_INT(encode_decode("61-/m,3[{\"f\":{\"_placeholder\":true,\"num\":0}}]", att, 1, &m,
				&buf), 0);
	CHECK_INT(m.pkt.type, SIO_ACK);
	CHECK_INT(m.pkt.id, 3);
	CHECK_STR(m.pkt.data, "[{\"f\":{\"_placeholder\":true,\"num\":0}}]");
	CHECK_MEM(m.att[0].data, m.att[0].len, bytes, 3);
	sio_msgpack_packet_fini(&m);
	free(buf.data);

	/* In a packet that is not binary, such an object is an object. */
	CHECK_INT(encode_decode("2[\"x\",{\"_placeholder\":true,\"num\":0}]", NULL, 0, &m, &buf), 0);
	CHECK_UINT(m.natt, 0);
	sio_msgpack_packet_fini(&m);
	free(buf.data);

	/* CONNECT, CONNECT_ERROR, DISCONNECT as engine.c writes them. */
	CHECK_INT(encode_decode("0/messages,{\"sid\":\"abc\"}", NULL, 0, &m, &buf), 0);
	CHECK_INT(m.pkt.type, SIO_CONNECT);
	CHECK_STR(m.pkt.data, "{\"sid\":\"abc\"}");
	sio_msgpack_packet_fini(&m);
	free(buf.data);
	CHECK_INT(encode_decode("4{\"message\":\"no\",\"data\":{\"statusCode\":401}}", NULL, 0, &m,
				&buf), 0);
	CHECK_INT(m.pkt.type, SIO_CONNECT_ERROR);
	CHECK_MEM(m.pkt.nsp, m.pkt.nsp_len, "/", 1);
	sio_msgpack_packet_fini(&m);
	free(buf.data);
	CHECK_INT(encode_decode("1/admin,", NULL, 0, &m, &buf), 0);
	CHECK_INT(m.pkt.type, SIO_DISCONNECT);
	CHECK_UINT(m.pkt.len, 0);
	sio_msgpack_packet_fini(&m);
	free(buf.data);

	/* Each size of container header: written before the count is known,
	 * then made as short as it can be (fixarray, array 16, array 32;
	 * the same for maps). */
	static const unsigned sizes[] = { 0, 15, 16, 65535, 65536 };
	for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		unsigned n = sizes[k];
		size_t cap = 64 + (size_t)n * 16;
		char *text = malloc(cap), *want = malloc(cap);
		size_t t = (size_t)sprintf(text, "2[\"x\",[");
		for (unsigned i = 0; i < n; i++)
			t += (size_t)sprintf(text + t, i ? ",%u" : "%u", i % 100);
		t += (size_t)sprintf(text + t, "],{");
		for (unsigned i = 0; i < n && i < 20; i++)
			t += (size_t)sprintf(text + t, i ? ",\"k%u\":[]" : "\"k%u\":[]", i);
		sprintf(text + t, "}]");
		CHECK_INT(encode_decode(text, NULL, 0, &m, &buf), 0);
		strcpy(want, text + 1);
		CHECK_STR(m.pkt.data, want);
		/* The packet itself: a fixmap of three (type, nsp, data). */
		CHECK_UINT((unsigned char)buf.data[0], 0x83);
		sio_msgpack_packet_fini(&m);
		free(buf.data);
		free(text);
		free(want);
	}

	/* What is not a packet with JSON is refused, with nothing left over. */
	memset(&buf, 0, sizeof(buf));
	CHECK_INT(sio_msgpack_encode("2[\"x\",", 6, NULL, 0, &buf), -EBADMSG);
	CHECK(buf.data == NULL);
	CHECK_INT(sio_msgpack_encode("9", 1, NULL, 0, &buf), -EBADMSG);
}

int main(void)
{
	test_connect();
	test_event();
	test_notepack_forms();
	test_refused();
	test_limits();
	test_encode();
	return check_report("test_sio_msgpack");
}
