/* test_eio.c - the Engine.IO packet codec: packet types, binary "b"
 * packets, and splitting polling payloads on the record separator. */
#include "check.h"
#include "wire/eio.h"

static void test_parse(void)
{
	struct eio_packet pkt;

	CHECK_INT(eio_parse("4hello", 6, &pkt), 0);
	CHECK_INT(pkt.type, EIO_MESSAGE);
	CHECK_INT(pkt.base64, 0);
	CHECK_MEM(pkt.data, pkt.len, "hello", 5);

	CHECK_INT(eio_parse("2", 1, &pkt), 0);
	CHECK_INT(pkt.type, EIO_PING);
	CHECK_UINT(pkt.len, 0);

	CHECK_INT(eio_parse("2probe", 6, &pkt), 0);
	CHECK_MEM(pkt.data, pkt.len, "probe", 5);

	CHECK_INT(eio_parse("6", 1, &pkt), 0);
	CHECK_INT(pkt.type, EIO_NOOP);

	CHECK_INT(eio_parse("bAQID", 5, &pkt), 0);
	CHECK_INT(pkt.base64, 1);
	CHECK_INT(pkt.type, EIO_MESSAGE);
	CHECK_MEM(pkt.data, pkt.len, "AQID", 4);

	CHECK_INT(eio_parse("", 0, &pkt), -1);
	CHECK_INT(eio_parse("7", 1, &pkt), -1);
	CHECK_INT(eio_parse("x", 1, &pkt), -1);
	CHECK_INT(eio_parse("/", 1, &pkt), -1);
}

static void test_payload(void)
{
	const char body[] = "40/messages,{}\x1e" "42/messages,[\"a\"]\x1e" "bAQI=";
	const char *cur = body, *end = body + sizeof(body) - 1, *seg;
	size_t len;

	CHECK_INT(eio_payload_next(&cur, end, &seg, &len), 1);
	CHECK_MEM(seg, len, "40/messages,{}", 14);
	CHECK_INT(eio_payload_next(&cur, end, &seg, &len), 1);
	CHECK_MEM(seg, len, "42/messages,[\"a\"]", 17);
	CHECK_INT(eio_payload_next(&cur, end, &seg, &len), 1);
	CHECK_MEM(seg, len, "bAQI=", 5);
	CHECK_INT(eio_payload_next(&cur, end, &seg, &len), 0);

	/* Empty segments are returned as such: the server refuses them. */
	const char two[] = "\x1e\x1e";
	cur = two;
	end = two + 2;
	CHECK_INT(eio_payload_next(&cur, end, &seg, &len), 1);
	CHECK_UINT(len, 0);
	CHECK_INT(eio_payload_next(&cur, end, &seg, &len), 1);
	CHECK_UINT(len, 0);
	CHECK_INT(eio_payload_next(&cur, end, &seg, &len), 0);

	cur = end = two;
	CHECK_INT(eio_payload_next(&cur, end, &seg, &len), 0);
}

int main(void)
{
	test_parse();
	test_payload();
	return check_report("test_eio");
}
