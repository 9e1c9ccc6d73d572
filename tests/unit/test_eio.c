/* test_eio.c - the Engine.IO packet codec: packet types, binary "b"
 * packets, splitting polling payloads on the record separator, and writing
 * them (byte for byte, and read back packet by packet). */
#include <stdlib.h>

#include <errno.h>

#include "check.h"
#include "wire/base64.h"
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

	CHECK_INT(eio_parse("", 0, &pkt), -EBADMSG);
	CHECK_INT(eio_parse("7", 1, &pkt), -EBADMSG);
	CHECK_INT(eio_parse("x", 1, &pkt), -EBADMSG);
	CHECK_INT(eio_parse("/", 1, &pkt), -EBADMSG);
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

/* The `n` bytes written at `buf` are the literal `lit`. */
#define CHECK_WROTE(buf, n, lit) CHECK_MEM(buf, n, lit, sizeof(lit) - 1)
/* A literal and its length. */
#define LIT(s) s, sizeof(s) - 1

/* A polling payload as the server writes it: byte for byte. */
static void test_payload_write(void)
{
	char out[256];
	size_t n = 0;

	/* One packet: no separator. */
	n = eio_payload_append(out, 0, LIT("40{\"sid\":\"x\"}"), 0);
	CHECK_WROTE(out, n, "40{\"sid\":\"x\"}");
	/* The next ones after a separator; binary as "b" + base64. */
	n = eio_payload_append(out, n, LIT("451-[\"up\",{\"_placeholder\":true,\"num\":0}]"), 0);
	n = eio_payload_append(out, n, "\x01\x02\x03", 3, 1);
	n = eio_payload_append(out, n, "2", 1, 0);
	CHECK_WROTE(out, n, "40{\"sid\":\"x\"}\x1e"
			    "451-[\"up\",{\"_placeholder\":true,\"num\":0}]\x1e"
			    "bAQID\x1e"
			    "2");
	/* Padding, an empty attachment, a separator and NULs inside one. */
	n = eio_payload_append(out, 0, "\xff", 1, 1);
	CHECK_WROTE(out, n, "b/w==");
	n = eio_payload_append(out, 0, "\xff\xfe", 2, 1);
	CHECK_WROTE(out, n, "b//4=");
	n = eio_payload_append(out, 0, "", 0, 1);
	CHECK_WROTE(out, n, "b");
	n = eio_payload_append(out, n, "\x1e\x00\x1e", 3, 1);
	CHECK_WROTE(out, n, "b\x1e" "bHgAe");

	/* The room the encoder is given is enough, and no more is written
	 * than eio_payload_room says, first packet or not. */
	memset(out, 0x55, sizeof(out));
	n = eio_payload_append(out, 0, "hello", 5, 0);
	CHECK(n <= eio_payload_room(5, 0));
	size_t m = eio_payload_append(out, n, "\x00\x01\x02\x03\x04", 5, 1);
	CHECK_UINT(m - n, eio_payload_room(5, 1));
	CHECK_UINT((unsigned char)out[m], 0x55);
	for (size_t len = 0; len < 10; len++)
		CHECK_UINT(eio_payload_room(len, 1), 2 + (len + 2) / 3 * 4);
	CHECK_UINT(eio_payload_room(7, 0), 8);
}

/* Packets of every kind written into one payload come back, in order, as
 * the server's reader (engine.c) takes a POST apart: split, parse, decode. */
static void test_payload_round_trip(void)
{
	static const struct {
		const char *data;
		size_t len;
		int binary;
	} pk[] = {
		{ LIT("0{\"sid\":\"abc\",\"upgrades\":[],\"pingInterval\":25000}"), 0 },
		{ LIT("40/messages,{\"sid\":\"s\"}"), 0 },
		{ LIT("42/messages,[\"message:new\",{\"text\":\"caf\xc3\xa9 \\u001e\"}]"), 0 },
		{ LIT("\x1e\x1e\x00"), 1 },
		{ LIT(""), 1 },
		{ LIT("b"), 1 }, /* a binary message that looks like a prefix */
		{ LIT("3"), 0 },
		{ LIT("6"), 0 },
		{ LIT("\xfa\xfb\xfc\xfd"), 1 },
		{ LIT("1"), 0 },
	};
	size_t count = sizeof(pk) / sizeof(pk[0]), room = 0, n = 0, i = 0;

	for (size_t k = 0; k < count; k++)
		room += eio_payload_room(pk[k].len, pk[k].binary);
	char *out = malloc(room);
	for (size_t k = 0; k < count; k++)
		n = eio_payload_append(out, n, pk[k].data, pk[k].len, pk[k].binary);
	CHECK(n <= room);

	const char *cur = out, *end = out + n, *seg;
	size_t len;
	struct eio_packet pkt;
	while (eio_payload_next(&cur, end, &seg, &len)) {
		if (!CHECK(i < count))
			break;
		CHECK_INT(eio_parse(seg, len, &pkt), 0);
		CHECK_INT(pkt.base64, pk[i].binary);
		if (pk[i].binary) {
			unsigned char raw[16];
			long r = base64_decode(pkt.data, pkt.len, raw);
			CHECK_INT(pkt.type, EIO_MESSAGE);
			CHECK_MEM(raw, r < 0 ? 0 : (size_t)r, pk[i].data, pk[i].len);
		} else {
			CHECK_MEM(seg, len, pk[i].data, pk[i].len);
			CHECK_INT(pkt.type, pk[i].data[0] - '0');
		}
		i++;
	}
	CHECK_UINT(i, count);
	free(out);
}

int main(void)
{
	test_parse();
	test_payload();
	test_payload_write();
	test_payload_round_trip();
	return check_report("test_eio");
}
