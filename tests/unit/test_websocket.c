/* test_websocket.c - the WebSocket wire format: request heads (whole, in
 * part, malformed), header lists, query strings and their decoding, client
 * frame headers and what is wrong with them, masking, server headers, and
 * which permessage-deflate offers are taken. */
#include <stdint.h>

#include "base/frame.h"
#include <errno.h>

#include "check.h"
#include "wire/websocket.h"

/* The output queue writes a frame's header in the frame's headroom. */
_Static_assert(FRAME_HEADROOM >= WS_HEADER_MAX, "no room for a WebSocket header before a frame");

static void test_head(void)
{
	static const char req[] =
		"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
		"Host: x\r\n"
		"Upgrade:  websocket \r\n"
		"Connection: keep-alive, Upgrade\r\n"
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		"\r\n"
		"\x81\x80";
	struct http_head h;
	const struct http_field *f;
	size_t head = sizeof(req) - 1 - 2;

	CHECK_INT(http_head_parse(req, sizeof(req) - 1, &h), (int)head);
	CHECK_MEM(h.method, h.method_len, "GET", 3);
	CHECK_MEM(h.path, h.path_len, "/socket.io/", 11);
	CHECK_MEM(h.query, h.query_len, "EIO=4&transport=websocket", 25);
	CHECK_INT(h.minor, 1);
	CHECK_INT(h.nfields, 4);
	f = http_head_field(&h, "upgrade");
	CHECK(f != NULL);
	if (f) {
		CHECK_MEM(f->value, f->value_len, "websocket", 9);
		CHECK(http_list_has(f->value, f->value_len, "WebSocket"));
	}
	f = http_head_field(&h, "CONNECTION");
	CHECK(f && http_list_has(f->value, f->value_len, "upgrade"));
	CHECK(f && !http_list_has(f->value, f->value_len, "close"));
	CHECK(http_head_field(&h, "origin") == NULL);

	/* Every prefix short of the blank line is a head still coming. */
	for (size_t n = 0; n < head; n++)
		CHECK_INT(http_head_parse(req, n, &h), 0);

	CHECK_INT(http_head_parse("GET / HTTP/1.1\r\n\r\n", 18, &h), 18);
	CHECK(h.query == NULL);
	CHECK_INT(http_head_parse("\r\nGET / HTTP/1.0\r\n\r\n", 20, &h), 20);
	CHECK_INT(h.minor, 0);
}

static void test_head_bad(void)
{
	struct http_head h;
	char many[64 * 8 + 64];
	size_t n = 0;

	CHECK_INT(http_head_parse("\x16\x03\x01\x02", 4, &h), -EBADMSG);
	CHECK_INT(http_head_parse("GET / HTTP/2.0\r\n\r\n", 18, &h), -EBADMSG);
	CHECK_INT(http_head_parse("GET  / HTTP/1.1\r\n\r\n", 19, &h), -EBADMSG);
	CHECK_INT(http_head_parse("GET / HTTP/1.1\n\n", 16, &h), -EBADMSG);
	CHECK_INT(http_head_parse("GET / HTTP/1.1\r\nno colon\r\n\r\n", 28, &h), -EBADMSG);
	CHECK_INT(http_head_parse("GET / HTTP/1.1\r\n: empty\r\n\r\n", 27, &h), -EBADMSG);
	CHECK_INT(http_head_parse("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 26, &h), -EBADMSG);

	n += (size_t)snprintf(many, sizeof(many), "GET / HTTP/1.1\r\n");
	for (int i = 0; i <= HTTP_HEAD_MAX_FIELDS; i++)
		n += (size_t)snprintf(many + n, sizeof(many) - n, "X%02d: v\r\n", i);
	n += (size_t)snprintf(many + n, sizeof(many) - n, "\r\n");
	CHECK_INT(http_head_parse(many, n, &h), -EMSGSIZE);
}

static void test_query(void)
{
	static const char q[] = "EIO=4&&bare&userId=a%20b+c&bad=%zz&t=%41";
	const char *k, *v;
	size_t pos = 0, klen, vlen, len;
	char out[64];

	CHECK_INT(query_next(q, sizeof(q) - 1, &pos, &k, &klen, &v, &vlen), 1);
	CHECK_MEM(k, klen, "EIO", 3);
	CHECK_MEM(v, vlen, "4", 1);
	CHECK_INT(query_next(q, sizeof(q) - 1, &pos, &k, &klen, &v, &vlen), 1);
	CHECK_MEM(k, klen, "bare", 4);
	CHECK(v == NULL);
	CHECK_INT(query_next(q, sizeof(q) - 1, &pos, &k, &klen, &v, &vlen), 1);
	len = url_decode(v, vlen, out);
	CHECK_MEM(out, len, "a b c", 5);
	CHECK_INT(query_next(q, sizeof(q) - 1, &pos, &k, &klen, &v, &vlen), 1);
	len = url_decode(v, vlen, out);
	CHECK_MEM(out, len, "%zz", 3);
	CHECK_INT(query_next(q, sizeof(q) - 1, &pos, &k, &klen, &v, &vlen), 1);
	len = url_decode(v, vlen, out);
	CHECK_MEM(out, len, "A", 1);
	CHECK_INT(query_next(q, sizeof(q) - 1, &pos, &k, &klen, &v, &vlen), 0);
	len = url_decode("%4", 2, out);
	CHECK_MEM(out, len, "%4", 2);
}

static void test_frames(void)
{
	/* RFC 6455 §5.7: a masked "Hello". */
	uint8_t hello[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58 };
	uint8_t big[14] = { 0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4 };
	uint8_t mid[8] = { 0x01, 0xfe, 0x01, 0x00, 9, 9, 9, 9 };
	struct ws_frame f;

	for (size_t n = 0; n < 6; n++)
		CHECK_INT(ws_frame_parse(hello, n, &f), 0);
	CHECK_INT(ws_frame_parse(hello, sizeof(hello), &f), 6);
	CHECK_INT(f.fin, 1);
	CHECK_INT(f.opcode, WS_TEXT);
	CHECK_UINT(f.len, 5);
	CHECK(ws_frame_error(&f, 0) == NULL);
	CHECK(ws_frame_error(&f, 1) != NULL); /* a new message inside one */
	ws_unmask(hello + 6, 5, f.mask, 0);
	CHECK_MEM(hello + 6, 5, "Hello", 5);

	CHECK_INT(ws_frame_parse(big, sizeof(big), &f), 14);
	CHECK_UINT(f.len, 65536);
	CHECK_INT(ws_frame_parse(mid, sizeof(mid), &f), 8);
	CHECK_UINT(f.len, 256);
	CHECK_INT(f.fin, 0);
	CHECK(ws_frame_error(&f, 0) == NULL);

	/* What a client may not send. */
	uint8_t unmasked[] = { 0x81, 0x05 };
	uint8_t rsv[] = { 0xc1, 0x80, 0, 0, 0, 0 };
	uint8_t cont[] = { 0x80, 0x80, 0, 0, 0, 0 };
	uint8_t longping[] = { 0x89, 0xfe, 0x00, 0x7e, 0, 0, 0, 0 };
	uint8_t fragclose[] = { 0x08, 0x80, 0, 0, 0, 0 };
	uint8_t op3[] = { 0x83, 0x80, 0, 0, 0, 0 };
	uint8_t top[] = { 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4 };

	ws_frame_parse(unmasked, sizeof(unmasked), &f);
	CHECK(ws_frame_error(&f, 0) != NULL);
	ws_frame_parse(rsv, sizeof(rsv), &f);
	CHECK(ws_frame_error(&f, 0) != NULL);
	ws_frame_parse(cont, sizeof(cont), &f);
	CHECK(ws_frame_error(&f, 0) != NULL);
	CHECK(ws_frame_error(&f, 1) == NULL);
	ws_frame_parse(longping, sizeof(longping), &f);
	CHECK(ws_frame_error(&f, 0) != NULL);
	ws_frame_parse(fragclose, sizeof(fragclose), &f);
	CHECK(ws_frame_error(&f, 0) != NULL);
	ws_frame_parse(op3, sizeof(op3), &f);
	CHECK(ws_frame_error(&f, 0) != NULL);
	ws_frame_parse(top, sizeof(top), &f);
	CHECK(ws_frame_error(&f, 0) != NULL);
}

static void test_unmask_offsets(void)
{
	const uint8_t mask[4] = { 1, 2, 3, 4 };
	uint8_t a[37], b[37];

	/* Unmasking in pieces at any offsets equals unmasking at once. */
	for (size_t cut = 0; cut <= sizeof(a); cut++) {
		for (size_t i = 0; i < sizeof(a); i++)
			a[i] = b[i] = (uint8_t)(i * 7);
		ws_unmask(a, sizeof(a), mask, 0);
		ws_unmask(b, cut, mask, 0);
		ws_unmask(b + cut, sizeof(b) - cut, mask, cut);
		CHECK_MEM(b, sizeof(b), a, sizeof(a));
	}
	for (size_t i = 0; i < sizeof(a); i++)
		CHECK_UINT(a[i], (uint8_t)((i * 7) ^ mask[i & 3]));
}

/* Each length at the edges of the three forms (RFC 6455 §5.2), byte for
 * byte, and read back by the parser with FIN, no mask, no reserved bits. */
static void test_server_header(void)
{
	static const struct {
		uint64_t len;
		size_t hlen;
		uint8_t bytes[WS_HEADER_MAX];
	} cases[] = {
		{ 0, 2, { 0x81, 0 } },
		{ 1, 2, { 0x81, 1 } },
		{ 125, 2, { 0x81, 125 } },
		{ 126, 4, { 0x81, 126, 0x00, 126 } },
		{ 127, 4, { 0x81, 126, 0x00, 127 } },
		{ 65535, 4, { 0x81, 126, 0xff, 0xff } },
		{ 65536, 10, { 0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0 } },
		{ 0xffffffffULL, 10, { 0x81, 127, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff } },
		{ 0x100000005ULL, 10, { 0x81, 127, 0, 0, 0, 1, 0, 0, 0, 5 } },
		{ 0x0102030405060708ULL, 10, { 0x81, 127, 1, 2, 3, 4, 5, 6, 7, 8 } },
		{ INT64_MAX, 10, { 0x81, 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } },
	};
	uint8_t h[WS_HEADER_MAX + 4];
	struct ws_frame f;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(h, 0xee, sizeof(h));
		size_t n = ws_header_write(h, WS_TEXT, cases[i].len);
		CHECK_UINT(n, cases[i].hlen);
		CHECK_UINT(ws_header_len(cases[i].len), cases[i].hlen);
		CHECK_MEM(h, n, cases[i].bytes, cases[i].hlen);
		/* Not a byte past the header. */
		CHECK_UINT(h[n], 0xee);
		CHECK_INT(ws_frame_parse(h, n, &f), (int)n);
		CHECK_UINT(f.len, cases[i].len);
		CHECK_INT(f.fin, 1);
		CHECK_INT(f.rsv, 0);
		CHECK_INT(f.masked, 0);
		CHECK_INT(f.opcode, WS_TEXT);
	}

	/* Every opcode goes in the low four bits, FIN always set. */
	static const uint8_t ops[] = { WS_CONT, WS_TEXT, WS_BINARY, WS_CLOSE, WS_PING, WS_PONG };
	for (size_t i = 0; i < sizeof(ops); i++) {
		CHECK_UINT(ws_header_write(h, ops[i], 3), 2);
		CHECK_UINT(h[0], 0x80 | ops[i]);
		CHECK_UINT(h[1], 3);
		CHECK_INT(ws_frame_parse(h, 2, &f), 2);
		CHECK_INT(f.opcode, ops[i]);
	}
	/* Bits above the opcode's four cannot reach RSV or FIN. */
	CHECK_UINT(ws_header_write(h, 0xf2, 3), 2);
	CHECK_UINT(h[0], 0x82);

	/* Written in front of a payload already in place, as the output queue
	 * does: the header ends where the payload begins. */
	uint8_t buf[WS_HEADER_MAX + 300];
	uint8_t *payload = buf + WS_HEADER_MAX;
	memset(payload, 'x', 300);
	uint8_t *start = payload - ws_header_len(300);
	CHECK_UINT(ws_header_write(start, WS_BINARY, 300), 4);
	CHECK(start == buf + 6);
	CHECK_INT(ws_frame_parse(start, 4, &f), 4);
	CHECK_UINT(f.len, 300);
	CHECK_INT(f.opcode, WS_BINARY);
	CHECK_UINT(payload[0], 'x');

	CHECK(ws_close_code_valid(1000));
	CHECK(ws_close_code_valid(4401));
	CHECK(!ws_close_code_valid(1005));
	CHECK(!ws_close_code_valid(999));
	CHECK(!ws_close_code_valid(2000));
}

static void test_deflate_offer(void)
{
	static const char *const taken[] = {
		"permessage-deflate",
		"permessage-deflate; client_max_window_bits",
		" Permessage-Deflate ;client_max_window_bits=10; server_no_context_takeover ",
		"permessage-deflate; server_max_window_bits=15; client_no_context_takeover",
		"x-webkit-deflate-frame, permessage-deflate",
		"permessage-deflate; server_max_window_bits=10, permessage-deflate",
	};
	static const char *const declined[] = {
		"", ",", ";", "x-webkit-deflate-frame", "permessage-deflat", "permessage-deflate-x",
		"permessage-deflate; server_max_window_bits=10",
		"permessage-deflate; server_max_window_bits",
		"permessage-deflate; foo",
		"permessage-deflate; server_no_context_takeover=1",
		"foo; permessage-deflate",
	};

	for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
		CHECK_INT(ws_deflate_offered(taken[i], strlen(taken[i])), 1);
	for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++)
		CHECK_INT(ws_deflate_offered(declined[i], strlen(declined[i])), 0);
	/* The value is not a string: nothing past its length is read. */
	CHECK_INT(ws_deflate_offered("permessage-deflate; foo", 18), 1);
}

int main(void)
{
	test_head();
	test_head_bad();
	test_query();
	test_frames();
	test_unmask_offsets();
	test_server_header();
	test_deflate_offer();
	return check_report("test_websocket");
}
