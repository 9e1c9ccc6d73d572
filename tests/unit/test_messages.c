/* test_messages.c - unit tests for core/store/messages.c, the message
 * store's C API, on a real LMDB directory in a temporary folder and a libev
 * loop of its own: no server, no Lua (the test links the store layer
 * alone). Sending (ids, sequence numbers, idempotent retries), reading,
 * statuses (refusals write nothing), sync (both ways), the inbox, membership, annotations, edits,
 * hiding, profiles and last seen, and what survives a reopen. */
#define _GNU_SOURCE
#include "store/messages.h"

#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "base/scratch.h"
#include "store/store.h"

static struct ev_loop *loop;
static char dir[] = "/tmp/parley-test-messages-XXXXXX";

/* A completion's outcome: set by on_done, read once the loop has run it. */
struct done {
	int called, err;
};

static void on_done(void *arg, int err)
{
	struct done *d = arg;

	d->called++;
	d->err = err;
}

/* Runs the loop until `d`'s completion has run. */
static void wait_done(struct done *d)
{
	while (!d->called)
		ev_run(loop, EVRUN_ONCE);
}

static int contains(const char *hay, size_t len, const char *needle)
{
	return memmem(hay, len, needle, strlen(needle)) != NULL;
}

static void open_store(void)
{
	CHECK_INT(store_claim(dir), 0);
	CHECK_INT(store_open(dir, 64u << 20, loop), 0);
	CHECK_INT(messages_init(), 0);
}

static void close_store(void)
{
	messages_fini();
	store_close();
}

/* Sends `text` from alice to bob in conversation c1. */
static void send_text(const char *cid, const char *content, struct msg_sent *out,
		      struct done *d)
{
	static const char recipients[] = "bob\0alice\0";
	struct msg_new m = {
		.conv = "c1", .conv_len = 2, .sender = "alice", .sender_len = 5,
		.type = "text", .type_len = 4,
		.client_id = cid, .client_id_len = cid ? strlen(cid) : 0,
		.content = content, .content_len = strlen(content),
		.recipients = recipients, .recipients_len = sizeof(recipients) - 1,
	};

	messages_send(&m, on_done, d, out);
}

static char first_id[MESSAGES_ID_LEN + 1], second_id[MESSAGES_ID_LEN + 1];

static void test_send(void)
{
	struct msg_sent a, b, again;
	struct done da = { 0 }, db = { 0 }, dagain = { 0 };

	send_text("m1", "\"hello\"", &a, &da);
	CHECK_UINT(a.seq, 1);
	CHECK_UINT(strlen(a.id), MESSAGES_ID_LEN);
	CHECK_UINT(strlen(a.timestamp), MESSAGES_TIME_LEN - 1);
	CHECK(contains(a.record, a.record_len, "\"content\":\"hello\""));
	CHECK(contains(a.record, a.record_len, "\"clientMessageId\":\"m1\""));
	CHECK(contains(a.record, a.record_len, "\"status\":\"sent\"}"));
	/* Not durable until the loop hears of its commit. */
	CHECK_INT(da.called, 0);
	wait_done(&da);
	CHECK_INT(da.called, 1);
	CHECK_INT(da.err, 0);
	memcpy(first_id, a.id, sizeof(first_id));

	/* A retry of m1 gives the first message back and stores nothing. */
	CHECK_INT(messages_send_again("alice", 5, "m1", 2, on_done, &dagain, &again), 1);
	CHECK_STR(again.id, a.id);
	CHECK_STR(again.timestamp, a.timestamp);
	CHECK_UINT(again.seq, 1);
	CHECK(contains(again.record, again.record_len, "\"content\":\"hello\""));
	wait_done(&dagain);
	CHECK_INT(dagain.err, 0);
	CHECK_INT(messages_send_again("alice", 5, "m2", 2, on_done, &dagain, &again), 0);
	CHECK_INT(messages_send_again("bob", 3, "m1", 2, on_done, &dagain, &again), 0);

	send_text(NULL, "{\"n\":2}", &b, &db);
	CHECK_UINT(b.seq, 2);
	CHECK(strcmp(b.id, a.id) > 0);
	wait_done(&db);
	memcpy(second_id, b.id, sizeof(second_id));
	scratch_free(a.record);
	scratch_free(b.record);
	scratch_free(again.record);
}

static void test_get(void)
{
	struct msg_view v;

	CHECK_INT(messages_get(first_id, MESSAGES_ID_LEN, &v), 1);
	CHECK_STR(v.conv, "c1");
	CHECK_STR(v.sender, "alice");
	CHECK_UINT(v.seq, 1);
	/* The sender is left out of the recipients. */
	CHECK_MEM(v.recipients, v.recipients_len, "bob\0", 4);
	CHECK(contains(v.record, v.record_len, "\"seq\":1,\"status\":\"sent\"}"));
	scratch_free(v.record);
	scratch_free(v.recipients);
	CHECK_INT(messages_get("0000000000000000", MESSAGES_ID_LEN, &v), 0);
	CHECK_INT(messages_get("short", 5, &v), 0);
	CHECK_INT(messages_has(first_id, MESSAGES_ID_LEN), 1);
	CHECK_INT(messages_has("0000000000000000", MESSAGES_ID_LEN), 0);
}

static void test_status(void)
{
	const char *ids[2] = { first_id, "ffffffffffffffff" };
	size_t lens[2] = { MESSAGES_ID_LEN, MESSAGES_ID_LEN }, refused = 99;
	struct msg_change ch[2];
	struct done d = { 0 };
	struct msg_view v;

	/* All or nothing: the unknown second id refuses the first too. */
	CHECK_INT(messages_set_status(ids, lens, 2, "bob", 3, MSG_DELIVERED, 0, NULL, 0, on_done,
				      &d, ch, &refused),
		  -ENOENT);
	CHECK_UINT(refused, 1);
	CHECK_INT(messages_set_status(ids, lens, 1, "carol", 5, MSG_READ, 0, NULL, 0, on_done, &d,
				      ch, &refused),
		  PARLEY_ENOTRECIPIENT);
	CHECK_UINT(refused, 0);
	/* Another conversation's message is not found there. */
	CHECK_INT(messages_set_status(ids, lens, 1, "bob", 3, MSG_READ, 0, "c2", 2, on_done, &d,
				      ch, &refused),
		  -ENOENT);
	CHECK_INT(d.called, 0);

	CHECK_INT(messages_set_status(ids, lens, 1, "bob", 3, MSG_DELIVERED, 0, "c1", 2, on_done,
				      &d, ch, &refused),
		  0);
	CHECK_STR(ch[0].id, first_id);
	CHECK_STR(ch[0].conv, "c1");
	CHECK_STR(ch[0].sender, "alice");
	CHECK_INT(ch[0].aggregate_before, MSG_SENT);
	CHECK_INT(ch[0].aggregate, MSG_DELIVERED);
	wait_done(&d);
	CHECK_INT(d.err, 0);
	CHECK_INT(messages_get(first_id, MESSAGES_ID_LEN, &v), 1);
	CHECK(contains(v.record, v.record_len, "\"status\":\"delivered\"}"));
	scratch_free(v.record);
	scratch_free(v.recipients);

	/* Read up to everything: both messages, whose aggregates both move. */
	struct msg_change *changes;
	size_t n;
	int count;
	struct done dr = { 0 };
	messages_read_upto("c1", 2, "bob", 3, UINT64_MAX, 0, on_done, &dr, &changes, &n, &count);
	CHECK_INT(count, 2);
	CHECK_UINT(n, 2);
	CHECK_INT(changes[0].aggregate, MSG_READ);
	scratch_free(changes);
	wait_done(&dr);
	/* The cursor moved: nothing is left to read. */
	struct done dr2 = { 0 };
	messages_read_upto("c1", 2, "bob", 3, UINT64_MAX, 0, on_done, &dr2, &changes, &n, &count);
	CHECK_INT(count, 0);
	CHECK_UINT(n, 0);
	scratch_free(changes);
	wait_done(&dr2);
}

static void test_sync(void)
{
	size_t len;
	char *json = messages_sync("c1", 2, 0, 50, NULL, 0, &len);

	CHECK(contains(json, len, first_id));
	CHECK(contains(json, len, second_id));
	CHECK(contains(json, len, "\"hasMore\":false}"));
	CHECK(contains(json, len, "\"status\":\"read\",\"statuses\":{\"bob\":\"read\"}"));
	scratch_free(json);
	json = messages_sync("c1", 2, 0, 1, NULL, 0, &len);
	CHECK(contains(json, len, first_id));
	CHECK(!contains(json, len, second_id));
	CHECK(contains(json, len, "\"hasMore\":true}"));
	scratch_free(json);
	json = messages_sync("c1", 2, 1, 50, NULL, 0, &len);
	CHECK(!contains(json, len, first_id));
	CHECK(contains(json, len, second_id));
	scratch_free(json);
	json = messages_sync("nobody", 6, 0, 50, NULL, 0, &len);
	CHECK_MEM(json, len, "{\"messages\":[],\"hasMore\":false}", 31);
	scratch_free(json);

	/* Backwards: the newest one (older ones exist), both oldest first,
	 * before seq 2, before seq 1 (nothing). */
	json = messages_sync_before("c1", 2, UINT64_MAX, 1, NULL, 0, &len);
	CHECK(!contains(json, len, first_id));
	CHECK(contains(json, len, second_id));
	CHECK(contains(json, len, "\"hasMore\":true}"));
	scratch_free(json);
	json = messages_sync_before("c1", 2, UINT64_MAX, 50, NULL, 0, &len);
	CHECK(contains(json, len, "\"hasMore\":false}"));
	CHECK(strstr(json, first_id) && strstr(json, second_id) &&
	      strstr(json, first_id) < strstr(json, second_id));
	scratch_free(json);
	json = messages_sync_before("c1", 2, 2, 50, NULL, 0, &len);
	CHECK(contains(json, len, first_id));
	CHECK(!contains(json, len, second_id));
	CHECK(contains(json, len, "\"hasMore\":false}"));
	scratch_free(json);
	json = messages_sync_before("c1", 2, 1, 50, NULL, 0, &len);
	CHECK_MEM(json, len, "{\"messages\":[],\"hasMore\":false}", 31);
	scratch_free(json);
	json = messages_sync_before("nobody", 6, UINT64_MAX, 50, NULL, 0, &len);
	CHECK_MEM(json, len, "{\"messages\":[],\"hasMore\":false}", 31);
	scratch_free(json);
}

static void test_members(void)
{
	static const char members[] = "alice\0bob\0";
	struct done d = { 0 }, d2 = { 0 };
	size_t len;
	int registered;
	char *names;

	CHECK_INT(messages_is_member("c1", 2, "bob", 3, &registered), 0);
	CHECK_INT(registered, 0);
	messages_set_members("c1", 2, members, sizeof(members) - 1, on_done, &d);
	/* The answer is right before the write is durable. */
	CHECK_INT(messages_is_member("c1", 2, "bob", 3, &registered), 1);
	CHECK_INT(registered, 1);
	wait_done(&d);
	names = messages_members("c1", 2, &len);
	CHECK_MEM(names, len, "alice\0bob\0", 10);
	scratch_free(names);
	names = messages_conversations_of("bob", 3, &len);
	CHECK_MEM(names, len, "c1\0", 3);
	scratch_free(names);
	/* The new list replaces the old one. */
	messages_set_members("c1", 2, "carol", 6, on_done, &d2);
	wait_done(&d2);
	CHECK_INT(messages_is_member("c1", 2, "bob", 3, &registered), 0);
	CHECK_INT(messages_is_member("c1", 2, "carol", 5, &registered), 1);
	names = messages_conversations_of("bob", 3, &len);
	CHECK_UINT(len, 0);
	scratch_free(names);
}

static void test_annotate_edit_hide(void)
{
	struct done d1 = { 0 }, d2 = { 0 }, d3 = { 0 }, d4 = { 0 };
	char when[MESSAGES_TIME_LEN];
	struct msg_view v;
	size_t len;
	char *json;

	CHECK_INT(messages_annotation_name("reactions", 9), 0);
	CHECK_INT(messages_annotation_name("status", 6), PARLEY_EBADNAME);
	CHECK_INT(messages_annotation_name("", 0), PARLEY_EBADNAME);
	CHECK_INT(messages_annotation_name("a-b", 3), -EINVAL);
	messages_annotate(first_id, "reactions", 9, "{\"+1\":[\"bob\"]}", 14, on_done, &d1);
	wait_done(&d1);
	CHECK_INT(messages_get(first_id, MESSAGES_ID_LEN, &v), 1);
	CHECK(contains(v.record, v.record_len, ",\"reactions\":{\"+1\":[\"bob\"]},\"status\""));
	scratch_free(v.record);
	scratch_free(v.recipients);

	CHECK_INT(messages_edit("0000000000000000", MESSAGES_ID_LEN, "1", 1, on_done, &d2, when),
		  -ENOENT);
	CHECK_INT(messages_edit(second_id, MESSAGES_ID_LEN, NULL, 0, on_done, &d2, when), 0);
	wait_done(&d2);
	CHECK_INT(messages_get(second_id, MESSAGES_ID_LEN, &v), 1);
	CHECK(contains(v.record, v.record_len, "\"content\":null,\"deleted\":true,\"editedAt\":\""));
	CHECK(contains(v.record, v.record_len, when));
	CHECK(!contains(v.record, v.record_len, "\"n\":2"));
	scratch_free(v.record);
	scratch_free(v.recipients);

	messages_hide(first_id, "bob", 3, on_done, &d3);
	wait_done(&d3);
	json = messages_sync("c1", 2, 0, 50, "bob", 3, &len);
	CHECK(!contains(json, len, first_id));
	CHECK(contains(json, len, second_id));
	scratch_free(json);
	json = messages_sync("c1", 2, 0, 50, "alice", 5, &len);
	CHECK(contains(json, len, first_id));
	scratch_free(json);

	const void *profile;
	int64_t ms = 0;
	messages_set_profile("bob", 3, "{\"name\":\"Bob\"}", 14, on_done, &d4);
	CHECK_INT(messages_profile("bob", 3, &profile, &len), 1);
	CHECK_MEM(profile, len, "{\"name\":\"Bob\"}", 14);
	CHECK_INT(messages_profile("nobody", 6, &profile, &len), 0);
	messages_set_last_seen("bob", 3, 1234567);
	CHECK_INT(messages_last_seen("bob", 3, &ms), 1);
	CHECK(ms == 1234567);
	CHECK_INT(messages_last_seen("nobody", 6, &ms), 0);
	wait_done(&d4);
}

/* The inbox: kept by sends and reads, latest activity first. */
static void test_inbox(void)
{
	static const char to_bob[] = "bob\0";
	struct msg_new m = {
		.conv = "ib", .conv_len = 2, .sender = "alice", .sender_len = 5,
		.type = "text", .type_len = 4, .content = "\"hi bob\"", .content_len = 8,
		.recipients = to_bob, .recipients_len = sizeof(to_bob) - 1,
	};
	struct msg_sent a, b, c;
	struct done d1 = { 0 }, d2 = { 0 }, d3 = { 0 }, d4 = { 0 };
	struct msg_change ch[2];
	size_t len, refused;
	char *json;

	messages_send(&m, on_done, &d1, &a);
	m.conv = "ib2";
	m.conv_len = 3;
	messages_send(&m, on_done, &d2, &c);
	m.conv = "ib";
	m.conv_len = 2;
	messages_send(&m, on_done, &d4, &b);
	scratch_free(a.record);
	scratch_free(b.record);
	scratch_free(c.record);
	wait_done(&d4);
	/* bob: "ib" (two unread, its last message b) before "ib2"; not c1,
	 * whose members no longer include bob (test_members). */
	json = messages_inbox("bob", 3, NULL, 0, 10, &len);
	CHECK(strstr(json, "\"ib\"") && strstr(json, "\"ib2\"") &&
	      strstr(json, "\"ib\"") < strstr(json, "\"ib2\""));
	CHECK(!contains(json, len, "\"c1\""));
	CHECK(contains(json, len, "\"unreadCount\":2,"));
	CHECK(contains(json, len, "\"unreadCount\":1,"));
	CHECK(contains(json, len, b.id));
	CHECK(contains(json, len, "\"preview\":\"hi bob\""));
	scratch_free(json);
	/* A page of one, then the next after it; a before not there: NULL. */
	json = messages_inbox("bob", 3, NULL, 0, 1, &len);
	CHECK(contains(json, len, "\"ib\"") && !contains(json, len, "\"ib2\""));
	CHECK(contains(json, len, "\"hasMore\":true}"));
	scratch_free(json);
	json = messages_inbox("bob", 3, "ib", 2, 1, &len);
	CHECK(contains(json, len, "\"ib2\"") && contains(json, len, "\"hasMore\":false}"));
	scratch_free(json);
	/* carol, the member c1 has now, has it (no unread: she joined after). */
	json = messages_inbox("carol", 5, NULL, 0, 10, &len);
	CHECK(contains(json, len, "\"c1\"") && contains(json, len, "\"unreadCount\":0,"));
	scratch_free(json);
	CHECK(messages_inbox("bob", 3, "nowhere", 7, 1, &len) == NULL);
	/* The sender has nothing unread there. */
	json = messages_inbox_item("alice", 5, "ib", 2, &len);
	CHECK(contains(json, len, "\"unreadCount\":0,"));
	scratch_free(json);
	CHECK(messages_inbox_item("carol", 5, "ib", 2, &len) == NULL);
	/* bob reads a, named twice: one less. */
	const char *ids[2] = { a.id, a.id };
	size_t lens[2] = { MESSAGES_ID_LEN, MESSAGES_ID_LEN };
	CHECK_INT(messages_set_status(ids, lens, 2, "bob", 3, MSG_READ, 0, "ib", 2, on_done, &d3,
				      ch, &refused), 0);
	wait_done(&d3);
	json = messages_inbox_item("bob", 3, "ib", 2, &len);
	CHECK(contains(json, len, "\"unreadCount\":1,"));
	scratch_free(json);
	json = messages_participants("ib", 2, &len);
	CHECK_UINT(len, 10);
	scratch_free(json);
}

/* After a reopen the sequence goes on, ids stay ordered, and retries are
 * still recognised. */
static void test_reopen(void)
{
	struct msg_sent c, again;
	struct done d = { 0 }, d2 = { 0 };

	close_store();
	open_store();
	CHECK_INT(messages_send_again("alice", 5, "m1", 2, on_done, &d, &again), 1);
	CHECK_STR(again.id, first_id);
	scratch_free(again.record);
	wait_done(&d);
	send_text("m3", "3", &c, &d2);
	CHECK_UINT(c.seq, 3);
	CHECK(strcmp(c.id, second_id) > 0);
	scratch_free(c.record);
	wait_done(&d2);
}

int main(void)
{
	char cmd[sizeof(dir) + 16];

	loop = ev_loop_new(EVFLAG_AUTO);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	open_store();
	test_send();
	test_get();
	test_status();
	test_sync();
	test_members();
	test_annotate_edit_hide();
	test_inbox();
	test_reopen();
	close_store();
	ev_loop_destroy(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return check_report("test_messages");
}
