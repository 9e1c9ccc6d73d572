/* test_sio.c - the Socket.IO packet codec: every packet type, namespaces,
 * ack ids, attachment counts, and the header writer round-tripping. */
#include <stdint.h>

#include "check.h"
#include "sio.h"

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

int main(void)
{
	test_parse_valid();
	test_parse_invalid();
	test_write_header();
	return check_report("test_sio");
}
