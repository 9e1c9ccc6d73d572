/* test_sio.c - the Socket.IO packet codec: every packet type, namespaces,
 * ack ids, attachment counts, the header, event and ack writers
 * round-tripping (the ack id after a namespace with '[' in it), an event's
 * name and arguments, and a binary packet's reassembly. */
#include <stdint.h>

#include <errno.h>

#include "check.h"
#include "wire/sio.h"

#define PARSE(s, pkt) sio_parse(s, sizeof(s) - 1, 64, pkt)

static void test_parse_valid(void)
{
	struct sio_packet p;

	CHECK_INT(PARSE("0", &p), 0);
	CHECK_INT(p.type, SIO_CONNECT);
	CHECK_MEM(p.nsp, p.nsp_len, "/", 1);
	CHECK_INT(p.id, -1);
	CHECK_UINT(p.len, 0);

	CHECK_INT(PARSE("0/messages,{\"token\":\"x\"}", &p), 0);
	CHECK_MEM(p.nsp, p.nsp_len, "/messages", 9);
	CHECK_MEM(p.data, p.len, "{\"token\":\"x\"}", 13);

	CHECK_INT(PARSE("1/admin,", &p), 0);
	CHECK_INT(p.type, SIO_DISCONNECT);
	CHECK_MEM(p.nsp, p.nsp_len, "/admin", 6);
	CHECK_UINT(p.len, 0);

	/* A namespace running to the end of the packet, with no comma. */
	CHECK_INT(PARSE("1/admin", &p), 0);
	CHECK_MEM(p.nsp, p.nsp_len, "/admin", 6);

	CHECK_INT(PARSE("2[\"hello\",1]", &p), 0);
	CHECK_INT(p.type, SIO_EVENT);
	CHECK_INT(p.id, -1);
	CHECK_MEM(p.data, p.len, "[\"hello\",1]", 11);

	CHECK_INT(PARSE("2/messages,12[\"a\"]", &p), 0);
	CHECK_INT(p.id, 12);
	CHECK_MEM(p.data, p.len, "[\"a\"]", 5);

	CHECK_INT(PARSE("3/messages,7[{\"ok\":true}]", &p), 0);
	CHECK_INT(p.type, SIO_ACK);
	CHECK_INT(p.id, 7);

	CHECK_INT(PARSE("51-[\"up\",{\"_placeholder\":true,\"num\":0}]", &p), 0);
	CHECK_INT(p.type, SIO_BINARY_EVENT);
	CHECK_UINT(p.attachments, 1);
	CHECK_MEM(p.nsp, p.nsp_len, "/", 1);

	CHECK_INT(PARSE("62-/messages,15[1]", &p), 0);
	CHECK_INT(p.type, SIO_BINARY_ACK);
	CHECK_UINT(p.attachments, 2);
	CHECK_MEM(p.nsp, p.nsp_len, "/messages", 9);
	CHECK_INT(p.id, 15);

	CHECK_INT(PARSE("2/m,9007199254740991[\"x\"]", &p), 0);
	CHECK_INT(p.id, 9007199254740991LL);
}

static void test_parse_invalid(void)
{
	struct sio_packet p;

	CHECK_INT(sio_parse("", 0, 64, &p), -EBADMSG);
	CHECK_INT(PARSE("7", &p), -EBADMSG);
	CHECK_INT(PARSE("x", &p), -EBADMSG);
	/* Binary types need "<n>-". */
	CHECK_INT(PARSE("5[\"a\"]", &p), -EBADMSG);
	CHECK_INT(PARSE("51[\"a\"]", &p), -EBADMSG);
	CHECK_INT(PARSE("5-[\"a\"]", &p), -EBADMSG);
	/* More attachments than allowed. */
	CHECK_INT(PARSE("565-[\"a\"]", &p), -EBADMSG);
	CHECK_INT(PARSE("599999999999999999999-[\"a\"]", &p), -EBADMSG);
	/* An ack id over 2^53 - 1. */
	CHECK_INT(PARSE("29007199254740992[\"x\"]", &p), -EBADMSG);
}

static void test_write_header(void)
{
	char buf[SIO_HEADER_MAX(16)];
	size_t n;

	n = sio_write_header(buf, SIO_EVENT, 0, "/", 1, -1);
	CHECK_MEM(buf, n, "2", 1);
	n = sio_write_header(buf, SIO_EVENT, 0, "/messages", 9, -1);
	CHECK_MEM(buf, n, "2/messages,", 11);
	n = sio_write_header(buf, SIO_ACK, 0, "/messages", 9, 42);
	CHECK_MEM(buf, n, "3/messages,42", 13);
	n = sio_write_header(buf, SIO_BINARY_EVENT, 3, "/", 1, -1);
	CHECK_MEM(buf, n, "53-", 3);
	n = sio_write_header(buf, SIO_BINARY_ACK, 1, "/a", 2, 0);
	CHECK_MEM(buf, n, "61-/a,0", 7);
	n = sio_write_header(buf, SIO_BINARY_EVENT, 12, "/", 1, 9007199254740991);
	CHECK_MEM(buf, n, "512-9007199254740991", 20);
	n = sio_write_header(buf, SIO_ACK, 0, "/", 1, INT64_MAX);
	CHECK_MEM(buf, n, "39223372036854775807", 20);
	/* An empty namespace is the default one: no stray comma ("2,"), which
	 * the parser would leave at the front of the payload. */
	n = sio_write_header(buf, SIO_EVENT, 0, "", 0, 3);
	CHECK_MEM(buf, n, "23", 2);

	/* What the writer writes, the parser reads back. */
	struct sio_packet p;
	char pkt[64];
	n = sio_write_header(pkt, SIO_BINARY_ACK, 2, "/chat", 5, 99);
	memcpy(pkt + n, "[1]", 3);
	CHECK_INT(sio_parse(pkt, n + 3, 64, &p), 0);
	CHECK_INT(p.type, SIO_BINARY_ACK);
	CHECK_UINT(p.attachments, 2);
	CHECK_MEM(p.nsp, p.nsp_len, "/chat", 5);
	CHECK_INT(p.id, 99);
	CHECK_MEM(p.data, p.len, "[1]", 3);
}

/* The `n` bytes written at `buf` are the literal `lit`. */
#define CHECK_WROTE(buf, n, lit) CHECK_MEM(buf, n, lit, sizeof(lit) - 1)

/* Parses `n` bytes an encoder wrote back into the packet's fields, and an
 * event's name (unescaped) and arguments (",a,b]") when it has them. */
static int read_back(const char *buf, size_t n, struct sio_packet *p, char *name,
		     size_t cap, struct json_span *args)
{
	struct json_span tok;

	if (sio_parse(buf, n, 64, p) < 0)
		return -1;
	if (p->type != SIO_EVENT && p->type != SIO_BINARY_EVENT)
		return 0;
	if (sio_event_split(p->data, p->len, 32, &tok, args) < 0 ||
	    json_string_unescape(tok, name, cap) < 0)
		return -1;
	return 0;
}

static void test_event_write(void)
{
	char buf[SIO_EVENT_MAX(16, 32, 64)], name[64];
	struct sio_packet p;
	struct json_span args;
	size_t n;

	/* The default namespace is left out, "/" or empty alike. */
	n = sio_event_write(buf, "/", 1, -1, 0, "hello", 5, "1,{\"a\":2}", 9);
	CHECK_WROTE(buf, n, "2[\"hello\",1,{\"a\":2}]");
	n = sio_event_write(buf, "", 0, -1, 0, "hello", 5, "1", 1);
	CHECK_WROTE(buf, n, "2[\"hello\",1]");
	/* No arguments: the name alone. */
	n = sio_event_write(buf, "/", 1, -1, 0, "ping", 4, NULL, 0);
	CHECK_WROTE(buf, n, "2[\"ping\"]");
	n = sio_event_write(buf, "/m", 2, -1, 0, "ping", 4, "ignored", 0);
	CHECK_WROTE(buf, n, "2/m,[\"ping\"]");
	/* A namespace, an ack id after its comma. */
	n = sio_event_write(buf, "/messages", 9, 12, 0, "a", 1, "null", 4);
	CHECK_WROTE(buf, n, "2/messages,12[\"a\",null]");
	n = sio_event_write(buf, "/", 1, 0, 0, "a", 1, "[]", 2);
	CHECK_WROTE(buf, n, "20[\"a\",[]]");
	/* Attachments: a BINARY_EVENT with their count. */
	n = sio_event_write(buf, "/", 1, -1, 1, "up", 2, "{\"_placeholder\":true,\"num\":0}", 29);
	CHECK_WROTE(buf, n, "51-[\"up\",{\"_placeholder\":true,\"num\":0}]");
	n = sio_event_write(buf, "/chat", 5, 7, 12, "up", 2, "1", 1);
	CHECK_WROTE(buf, n, "512-/chat,7[\"up\",1]");
	/* The name is a JSON string: quotes, backslashes and control bytes
	 * escaped, UTF-8 as it is. */
	n = sio_event_write(buf, "/", 1, -1, 0, "a\"b\\c\n\x01\xc3\xa9", 9, NULL, 0);
	CHECK_WROTE(buf, n, "2[\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\"]");

	/* Round trips: what the writer writes, the parser reads back. */
	static const struct {
		const char *nsp;
		int64_t id;
		unsigned att;
		const char *name;
		const char *args; /* ",a,b]" as sio_event_split gives them, or NULL */
	} rt[] = {
		{ "/", -1, 0, "message:send", "{\"text\":\"hi\"}" },
		{ "/messages", 0, 0, "x", NULL },
		{ "/messages", 9007199254740991, 0, "typing", "true,2" },
		{ "/a", 3, 2, "file", "{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}" },
		{ "/", 5, 64, "\"quoted\"", "\"\\u00e9\"" },
	};
	for (size_t i = 0; i < sizeof(rt) / sizeof(rt[0]); i++) {
		size_t alen = rt[i].args ? strlen(rt[i].args) : 0;
		char big[SIO_EVENT_MAX(16, 32, 128)];
		n = sio_event_write(big, rt[i].nsp, strlen(rt[i].nsp), rt[i].id, rt[i].att,
				    rt[i].name, strlen(rt[i].name), rt[i].args, alen);
		CHECK(n <= SIO_EVENT_MAX(strlen(rt[i].nsp), strlen(rt[i].name), alen));
		if (!CHECK_INT(read_back(big, n, &p, name, sizeof(name), &args), 0))
			continue;
		CHECK_INT(p.type, rt[i].att ? SIO_BINARY_EVENT : SIO_EVENT);
		CHECK_UINT(p.attachments, rt[i].att);
		CHECK_MEM(p.nsp, p.nsp_len, rt[i].nsp, strlen(rt[i].nsp));
		CHECK_INT(p.id, rt[i].id);
		CHECK_STR(name, rt[i].name);
		if (rt[i].args) {
			/* ",<args>]" */
			CHECK_UINT(args.len, alen + 2);
			CHECK_MEM(args.p + 1, args.len - 2, rt[i].args, alen);
		} else {
			CHECK(args.p == NULL);
		}
	}
}

/* The ack id of a server request goes right after the namespace's comma,
 * whatever the namespace holds: a '[' in it is part of the name (the
 * runtime accepts any namespace starting with '/', and sio_parse reads a
 * namespace up to its comma). hub/client.c's client_request spliced the id
 * in at the first '[' of the encoded packet, which put it inside such a
 * namespace: "42/ns17[x,[..." for namespace "/ns[x". */
static void test_event_id_after_namespace(void)
{
	char buf[1 + SIO_EVENT_MAX(8, 8, 16)];
	struct sio_packet p;
	struct json_span args;
	char name[16];
	size_t n;

	/* As the server sends it: the Engine.IO message type, then the packet. */
	buf[0] = '4';
	n = 1 + sio_event_write(buf + 1, "/ns[x", 5, 17, 0, "ev", 2, "{\"a\":[1]}", 9);
	CHECK_WROTE(buf, n, "42/ns[x,17[\"ev\",{\"a\":[1]}]");
	CHECK_INT(read_back(buf + 1, n - 1, &p, name, sizeof(name), &args), 0);
	CHECK_MEM(p.nsp, p.nsp_len, "/ns[x", 5);
	CHECK_INT(p.id, 17);
	CHECK_STR(name, "ev");

	/* Brackets all through the namespace, and a binary event. */
	n = sio_event_write(buf, "/[[", 3, 4, 1, "ev", 2, "[0]", 3);
	CHECK_WROTE(buf, n, "51-/[[,4[\"ev\",[0]]");
	CHECK_INT(read_back(buf, n, &p, name, sizeof(name), &args), 0);
	CHECK_MEM(p.nsp, p.nsp_len, "/[[", 3);
	CHECK_INT(p.id, 4);
	CHECK_UINT(p.attachments, 1);

	/* And in an ack. */
	n = sio_ack_write(buf, "/ns[x", 5, 17, 0, "true", 4);
	CHECK_WROTE(buf, n, "3/ns[x,17[true]");
}

static void test_ack_write(void)
{
	char buf[SIO_ACK_MAX(16, 64)];
	struct sio_packet p;
	size_t n;

	n = sio_ack_write(buf, "/", 1, 0, 0, "{\"ok\":true}", 11);
	CHECK_WROTE(buf, n, "30[{\"ok\":true}]");
	/* No value: an empty list. */
	n = sio_ack_write(buf, "/", 1, 7, 0, NULL, 0);
	CHECK_WROTE(buf, n, "37[]");
	n = sio_ack_write(buf, "/messages", 9, 42, 0, "1,2", 3);
	CHECK_WROTE(buf, n, "3/messages,42[1,2]");
	n = sio_ack_write(buf, "", 0, 42, 0, "1", 1);
	CHECK_WROTE(buf, n, "342[1]");
	/* Attachments: a BINARY_ACK with their count. */
	n = sio_ack_write(buf, "/m", 2, 15, 2, "{\"_placeholder\":true,\"num\":0}", 29);
	CHECK_WROTE(buf, n, "62-/m,15[{\"_placeholder\":true,\"num\":0}]");
	CHECK(n <= SIO_ACK_MAX(2, 29));

	/* Read back. */
	n = sio_ack_write(buf, "/chat", 5, SIO_MAX_ACK_ID, 3, "\"x\"", 3);
	CHECK_INT(sio_parse(buf, n, 64, &p), 0);
	CHECK_INT(p.type, SIO_BINARY_ACK);
	CHECK_UINT(p.attachments, 3);
	CHECK_MEM(p.nsp, p.nsp_len, "/chat", 5);
	CHECK_INT(p.id, (int64_t)SIO_MAX_ACK_ID);
	CHECK_MEM(p.data, p.len, "[\"x\"]", 5);
	CHECK_INT(json_validate(p.data, p.len, 32), JSON_ARRAY);
}

static void test_event_split(void)
{
	struct json_span name, args;
	static const char ev[] = "[\"send\" , 1,{\"a\":2}]";

	CHECK_INT(sio_event_split(ev, sizeof(ev) - 1, 32, &name, &args), 0);
	CHECK_MEM(name.p, name.len, "\"send\"", 6);
	CHECK_MEM(args.p, args.len, ", 1,{\"a\":2}]", 12);
	CHECK_INT(sio_event_split("[\"ping\"]", 8, 32, &name, &args), 0);
	CHECK(args.p == NULL && args.len == 0);
	CHECK_INT(sio_event_split("[1,\"x\"]", 7, 32, &name, &args), -EBADMSG);
	CHECK_INT(sio_event_split("[]", 2, 32, &name, &args), -EBADMSG);
	CHECK_INT(sio_event_split("{\"a\":1}", 7, 32, &name, &args), -EBADMSG);
	CHECK_INT(sio_event_split("[\"x\",[[1]]]", 11, 2, &name, &args), -EBADMSG);
}

static void test_binary(void)
{
	struct sio_packet p;
	struct sio_binary b;

	/* Two attachments announced: complete at the second, none after. */
	CHECK_INT(PARSE("52-/m,4[\"up\",{\"_placeholder\":true,\"num\":1}]", &p), 0);
	CHECK_INT(sio_binary_init(&b, &p, 1000), 0);
	CHECK_INT(b.type, SIO_BINARY_EVENT);
	CHECK_INT(b.id, 4);
	CHECK_MEM(b.json, b.json_len, p.data, p.len);
	CHECK_INT(sio_binary_complete(&b), 0);
	CHECK_INT(sio_binary_add(&b, "\x00\x01", 2), 0);
	CHECK_INT(sio_binary_add(&b, "", 0), 1);
	CHECK_INT(sio_binary_complete(&b), 1);
	CHECK_INT(sio_binary_add(&b, "x", 1), -EBADMSG);
	CHECK_UINT(b.count, 2);
	CHECK_MEM(b.att[0].data, b.att[0].len, "\x00\x01", 2);
	CHECK_UINT(b.att[1].len, 0);
	sio_binary_fini(&b);

	/* A count of 0 is complete at once. */
	CHECK_INT(PARSE("60-7[1]", &p), 0);
	CHECK_INT(sio_binary_init(&b, &p, 1000), 0);
	CHECK_INT(sio_binary_complete(&b), 1);
	CHECK_INT(sio_binary_add(&b, "x", 1), -EBADMSG);
	sio_binary_fini(&b);

	/* What it holds is capped, checked before each copy: payload (7 bytes
	 * here) and attachments together. */
	CHECK_INT(PARSE("62-5[\"abc\"]", &p), 0);
	CHECK_INT(sio_binary_init(&b, &p, 6), -EMSGSIZE);
	CHECK_INT(sio_binary_init(&b, &p, 12), 0);
	CHECK_UINT(b.bytes, 7);
	CHECK_INT(sio_binary_add(&b, "abcdef", 6), -EMSGSIZE);
	CHECK_UINT(b.count, 0);
	CHECK_UINT(b.bytes, 7);
	CHECK_INT(sio_binary_add(&b, "abcde", 5), 0);
	CHECK_UINT(b.bytes, 12);
	CHECK_INT(sio_binary_add(&b, "x", 1), -EMSGSIZE);
	CHECK_INT(sio_binary_add(&b, "", 0), 1);
	sio_binary_fini(&b);

	/* Not a binary type: nothing to reassemble. */
	CHECK_INT(PARSE("2[\"x\"]", &p), 0);
	CHECK_INT(sio_binary_init(&b, &p, 1000), -EINVAL);
}

/* The recovery offset is the event's last argument, a string of digits,
 * after every argument there is (or the name alone). */
static void test_event_offset(void)
{
	char buf[SIO_EVENT_MAX(16, 32, 64) + SIO_OFFSET_MAX], name[64];
	struct json_span tok, args;
	size_t n;

	n = sio_event_write(buf, "/", 1, -1, 0, "hello", 5, "1,{\"a\":2}", 9);
	n = sio_event_offset(buf, n, 42);
	CHECK_WROTE(buf, n, "2[\"hello\",1,{\"a\":2},\"42\"]");
	n = sio_event_write(buf, "/messages", 9, -1, 0, "ping", 4, NULL, 0);
	n = sio_event_offset(buf, n, 18446744073709551615ULL);
	CHECK_WROTE(buf, n, "2/messages,[\"ping\",\"18446744073709551615\"]");
	n = sio_event_write(buf, "/", 1, -1, 1, "up", 2, "{\"_placeholder\":true,\"num\":0}", 29);
	n = sio_event_offset(buf, n, 1);
	CHECK_WROTE(buf, n, "51-[\"up\",{\"_placeholder\":true,\"num\":0},\"1\"]");
	/* What it writes is still an event the parser splits. */
	CHECK(sio_event_split(buf + 3, n - 3, 8, &tok, &args) == 0);
	CHECK(json_string_unescape(tok, name, sizeof(name)) == 2);
	(void)name;
}

int main(void)
{
	test_parse_valid();
	test_parse_invalid();
	test_write_header();
	test_event_write();
	test_event_id_after_namespace();
	test_event_offset();
	test_ack_write();
	test_event_split();
	test_binary();
	return check_report("test_sio");
}
