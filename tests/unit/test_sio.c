/* test_sio.c - the Socket.IO packet codec: every packet type, namespaces,
 * ack ids, attachment counts, the header writer round-tripping, an event's
 * name and arguments, and a binary packet's reassembly. */
#include <stdint.h>

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

	CHECK_INT(sio_parse("", 0, 64, &p), -1);
	CHECK_INT(PARSE("7", &p), -1);
	CHECK_INT(PARSE("x", &p), -1);
	/* Binary types need "<n>-". */
	CHECK_INT(PARSE("5[\"a\"]", &p), -1);
	CHECK_INT(PARSE("51[\"a\"]", &p), -1);
	CHECK_INT(PARSE("5-[\"a\"]", &p), -1);
	/* More attachments than allowed. */
	CHECK_INT(PARSE("565-[\"a\"]", &p), -1);
	CHECK_INT(PARSE("599999999999999999999-[\"a\"]", &p), -1);
	/* An ack id over 2^53 - 1. */
	CHECK_INT(PARSE("29007199254740992[\"x\"]", &p), -1);
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

static void test_event_split(void)
{
	struct json_span name, args;
	static const char ev[] = "[\"send\" , 1,{\"a\":2}]";

	CHECK_INT(sio_event_split(ev, sizeof(ev) - 1, 32, &name, &args), 0);
	CHECK_MEM(name.p, name.len, "\"send\"", 6);
	CHECK_MEM(args.p, args.len, ", 1,{\"a\":2}]", 12);
	CHECK_INT(sio_event_split("[\"ping\"]", 8, 32, &name, &args), 0);
	CHECK(args.p == NULL && args.len == 0);
	CHECK_INT(sio_event_split("[1,\"x\"]", 7, 32, &name, &args), -1);
	CHECK_INT(sio_event_split("[]", 2, 32, &name, &args), -1);
	CHECK_INT(sio_event_split("{\"a\":1}", 7, 32, &name, &args), -1);
	CHECK_INT(sio_event_split("[\"x\",[[1]]]", 11, 2, &name, &args), -1);
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
	CHECK_INT(sio_binary_add(&b, "x", 1), -1);
	CHECK_UINT(b.count, 2);
	CHECK_MEM(b.att[0].data, b.att[0].len, "\x00\x01", 2);
	CHECK_UINT(b.att[1].len, 0);
	sio_binary_fini(&b);

	/* A count of 0 is complete at once. */
	CHECK_INT(PARSE("60-7[1]", &p), 0);
	CHECK_INT(sio_binary_init(&b, &p, 1000), 0);
	CHECK_INT(sio_binary_complete(&b), 1);
	CHECK_INT(sio_binary_add(&b, "x", 1), -1);
	sio_binary_fini(&b);

	/* What it holds is capped, checked before each copy: payload (7 bytes
	 * here) and attachments together. */
	CHECK_INT(PARSE("62-5[\"abc\"]", &p), 0);
	CHECK_INT(sio_binary_init(&b, &p, 6), SIO_BINARY_TOO_BIG);
	CHECK_INT(sio_binary_init(&b, &p, 12), 0);
	CHECK_UINT(b.bytes, 7);
	CHECK_INT(sio_binary_add(&b, "abcdef", 6), SIO_BINARY_TOO_BIG);
	CHECK_UINT(b.count, 0);
	CHECK_UINT(b.bytes, 7);
	CHECK_INT(sio_binary_add(&b, "abcde", 5), 0);
	CHECK_UINT(b.bytes, 12);
	CHECK_INT(sio_binary_add(&b, "x", 1), SIO_BINARY_TOO_BIG);
	CHECK_INT(sio_binary_add(&b, "", 0), 1);
	sio_binary_fini(&b);

	/* Not a binary type: nothing to reassemble. */
	CHECK_INT(PARSE("2[\"x\"]", &p), 0);
	CHECK_INT(sio_binary_init(&b, &p, 1000), -1);
}

int main(void)
{
	test_parse_valid();
	test_parse_invalid();
	test_write_header();
	test_event_split();
	test_binary();
	return check_report("test_sio");
}
