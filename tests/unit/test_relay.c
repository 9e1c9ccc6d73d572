/* test_relay.c - the cluster's broadcast message: a full message (rooms,
 * exceptions, JSON and plain arguments, binary attachments) and an
 * everyone one read back as written; no arguments is not empty arguments;
 * every cut of a message, a bad magic, a trailing byte and a count past the
 * end refused. Inputs sit in exact-size buffers so ASan sees any read past
 * them. */
#include <errno.h>
#include <stdlib.h>

#include "check.h"
#include "wire/relay.h"

static const char *rooms[] = { "conversation:c1", "user:bob" };
static size_t room_lens[] = { 15, 8 };
static const char *except_rooms[] = { "user:ann" };
static size_t except_lens[] = { 8 };
static const char *sids[] = { "sid-1", "sid-2", "" };
static size_t sid_lens[] = { 5, 5, 0 };
static const char *att[] = { "\x00\x01\x02", "" };
static size_t att_lens[] = { 3, 0 };

static struct relay_msg full(void)
{
	struct relay_msg m = {
		.origin = "node-a", .origin_len = 6, .incarnation = 0x0102030405060708ULL,
		.serial = 0xfffffffffffffff0ULL, .nsp = "/messages", .nsp_len = 9,
		.rooms = { rooms, room_lens, 2 }, .except_rooms = { except_rooms, except_lens, 1 },
		.except_sids = { sids, sid_lens, 3 }, .event = "message:received", .event_len = 16,
		.nargs = 2, .args = "{\"a\":1},{\"_placeholder\":true,\"num\":0}", .args_len = 36,
		.plain = "{\"a\":1},\"AAEC\"", .plain_len = 14, .att = { att, att_lens, 2 },
	};
	m.args_len = strlen(m.args);
	m.plain_len = strlen(m.plain);
	return m;
}

/* A copy of `len` bytes of `p` in a buffer of exactly that size. */
static char *exact(const char *p, size_t len)
{
	char *b = malloc(len ? len : 1);
	memcpy(b, p, len);
	return b;
}

static void check_lists(const struct relay_list *got, const struct relay_list *want)
{
	CHECK_UINT(got->n, want->n);
	for (size_t i = 0; i < got->n && i < want->n; i++)
		CHECK_MEM(got->v[i], got->lens[i], want->v[i], want->lens[i]);
}

static void test_round_trip(void)
{
	struct relay_msg m = full(), got;
	size_t len;
	char *buf = relay_encode(&m, &len), *in = exact(buf, len);

	CHECK_INT(relay_decode(in, len, &got), 0);
	CHECK_MEM(got.origin, got.origin_len, "node-a", 6);
	CHECK_UINT(got.incarnation, m.incarnation);
	CHECK_UINT(got.serial, m.serial);
	CHECK_MEM(got.nsp, got.nsp_len, "/messages", 9);
	CHECK_INT(got.everyone, 0);
	check_lists(&got.rooms, &m.rooms);
	check_lists(&got.except_rooms, &m.except_rooms);
	check_lists(&got.except_sids, &m.except_sids);
	check_lists(&got.att, &m.att);
	CHECK_MEM(got.event, got.event_len, m.event, m.event_len);
	CHECK_UINT(got.nargs, 2);
	CHECK_MEM(got.args, got.args_len, m.args, m.args_len);
	CHECK_MEM(got.plain, got.plain_len, m.plain, m.plain_len);
	relay_msg_fini(&got);
	free(in);
	free(buf);
}

static void test_everyone_without_arguments(void)
{
	struct relay_msg m = { .origin = "b", .origin_len = 1, .serial = 1, .nsp = "/", .nsp_len = 1,
			       .everyone = 1, .event = "ping", .event_len = 4 };
	struct relay_msg got;
	size_t len;
	char *buf = relay_encode(&m, &len), *in = exact(buf, len);

	CHECK_INT(relay_decode(in, len, &got), 0);
	CHECK_INT(got.everyone, 1);
	CHECK_UINT(got.rooms.n, 0);
	CHECK(got.args == NULL);
	CHECK(got.plain == NULL);
	CHECK_UINT(got.nargs, 0);
	relay_msg_fini(&got);
	free(in);
	free(buf);

	/* Empty arguments are not none. */
	m.args = "";
	m.args_len = 0;
	buf = relay_encode(&m, &len);
	in = exact(buf, len);
	CHECK_INT(relay_decode(in, len, &got), 0);
	CHECK(got.args != NULL);
	CHECK_UINT(got.args_len, 0);
	relay_msg_fini(&got);
	free(in);
	free(buf);
}

static void test_refused(void)
{
	struct relay_msg m = full(), got;
	size_t len;
	char *buf = relay_encode(&m, &len), *in;

	/* Every cut of the message: never read past it, never accepted. */
	for (size_t cut = 0; cut < len; cut++) {
		in = exact(buf, cut);
		CHECK_INT(relay_decode(in, cut, &got), -EBADMSG);
		free(in);
	}
	/* One byte more: another version's. */
	in = malloc(len + 1);
	memcpy(in, buf, len);
	in[len] = 0;
	CHECK_INT(relay_decode(in, len + 1, &got), -EBADMSG);
	free(in);
	/* A bad magic. */
	in = exact(buf, len);
	in[3] = '2';
	CHECK_INT(relay_decode(in, len, &got), -EBADMSG);
	free(in);
	free(buf);

	/* A list count far past what is left: refused before allocating. */
	struct relay_msg e = { .origin = "", .nsp = "/", .nsp_len = 1, .event = "x", .event_len = 1 };
	buf = relay_encode(&e, &len);
	in = exact(buf, len);
	/* The rooms' count sits 16 bytes before the end (four empty lists). */
	memset(in + len - 16, 0xff, 4);
	CHECK_INT(relay_decode(in, len, &got), -EBADMSG);
	CHECK(got.rooms.v == NULL);
	free(in);
	free(buf);
}

int main(void)
{
	test_round_trip();
	test_everyone_without_arguments();
	test_refused();
	return check_report("test_relay");
}
