/* inbox.c - what a chat list costs (docs/benchmarks.md, "The inbox"): the
 * message store alone (core/store, a real LMDB directory, its writer
 * thread, a libev loop; no server, no Lua) filled with one user's
 * CONVS conversations of SHORT messages each, plus LONG_CONVS of them with
 * LONG messages, then timed: a page of the user's list (the index kept on
 * write, messages_inbox), a walk through all of it, one item, a page for a
 * user with 100 conversations (the cost must not grow with the count),
 * what a send costs the loop with the index to keep, and what the same
 * list costs computed per request from the histories (the last message
 * and the unread count of every conversation, read from its sequence):
 * the scan the index saves.
 *
 *   build/tests/bench/inbox [CONVS [SHORT [LONG_CONVS [LONG]]]]
 *                                    (10000 20 10 10000) */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "base/scratch.h"
#include "store/messages.h"
#include "store/store.h"

static struct ev_loop *loop;
static int pending_done;
static int failures;

static void on_done(void *arg, int err)
{
	(void)arg;
	pending_done--;
	if (err)
		failures++;
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Waits for every submitted batch. */
static void drain(void)
{
	while (pending_done > 0)
		ev_run(loop, EVRUN_ONCE);
}

static double send_one(const char *conv, const char *sender, const char *to, int n)
{
	char recipients[512], content[64];
	size_t rlen = (size_t)snprintf(recipients, sizeof(recipients), "%s", to) + 1;
	struct msg_new m = {
		.conv = conv, .conv_len = strlen(conv), .sender = sender,
		.sender_len = strlen(sender), .type = "text", .type_len = 4,
		.recipients = recipients, .recipients_len = rlen,
	};
	struct msg_sent out;
	double t;

	m.content_len = (size_t)snprintf(content, sizeof(content), "\"message %d of %s\"", n, conv);
	m.content = content;
	pending_done++;
	t = now_us();
	messages_send(&m, on_done, NULL, &out);
	t = now_us() - t;
	scratch_free(out.record);
	/* Group commit: the writer takes what is queued; wait now and then so
	 * the queue stays bounded. */
	if (pending_done >= 2000)
		drain();
	return t;
}

/* The per-request computation the index replaces: for each conversation
 * of the user, its last message and the messages after the user's read
 * point (all of them here: the user read nothing), from its sequence. */
struct counting {
	long n;
};

static int count_one(void *arg, const void *k, size_t kl, const void *v, size_t vl)
{
	(void)k;
	(void)kl;
	(void)v;
	(void)vl;
	((struct counting *)arg)->n++;
	return 0;
}

static double naive_list(const char *user, long *unread_total)
{
	size_t len;
	char *convs = messages_conversations_of(user, strlen(user), &len);
	double t = now_us();

	*unread_total = 0;
	for (const char *c = convs; c && c < convs + len; c += strlen(c) + 1) {
		char prefix[MESSAGES_NAME_MAX + 1];
		size_t clen = strlen(c), jl;
		struct counting k = { 0 };
		memcpy(prefix, c, clen + 1);
		char *last = messages_sync_before(c, clen, UINT64_MAX, 1, NULL, 0, &jl);
		scratch_free(last);
		store_scan(STORE_CONV, prefix, clen + 1, NULL, 0, 1L << 30, count_one, &k);
		*unread_total += k.n;
	}
	t = now_us() - t;
	scratch_free(convs);
	return t;
}

static void members(const char *conv, const char *a, const char *b)
{
	char list[512];
	size_t n = (size_t)snprintf(list, sizeof(list), "%s%c%s", a, 0, b) + 1;

	pending_done++;
	messages_set_members(conv, strlen(conv), list, n, on_done, NULL);
}

int main(int argc, char **argv)
{
	int convs = argc > 1 ? atoi(argv[1]) : 10000;
	int shorts = argc > 2 ? atoi(argv[2]) : 20;
	int longs = argc > 3 ? atoi(argv[3]) : 10;
	int long_len = argc > 4 ? atoi(argv[4]) : 10000;
	char dir[] = "/tmp/parley-bench-inbox-XXXXXX", conv[64], peer[64], cmd[128];
	double t, send_total = 0;
	long sends = 0, unread = 0;
	size_t len;
	char *json;
	int reps = 200;

	loop = ev_loop_new(EVFLAG_AUTO);
	if (!mkdtemp(dir) || store_claim(dir) < 0 || store_open(dir, (size_t)16 << 30, loop) < 0 ||
	    messages_init() < 0) {
		fprintf(stderr, "inbox: cannot open a store in %s\n", dir);
		return 1;
	}
	printf("filling: %d conversations of %d messages, %d of them with %d\n", convs, shorts,
	       longs, long_len);
	t = now_us();
	/* Registered conversations of "me" and one peer each (so "me" lists
	 * them through its membership too), then the messages, the peer
	 * writing, "me" receiving. */
	for (int i = 0; i < convs; i++) {
		snprintf(conv, sizeof(conv), "conv-%05d", i);
		snprintf(peer, sizeof(peer), "peer-%05d", i);
		members(conv, "me", peer);
	}
	drain();
	for (int i = 0; i < convs; i++) {
		int n = i < longs ? long_len : shorts;
		snprintf(conv, sizeof(conv), "conv-%05d", i);
		snprintf(peer, sizeof(peer), "peer-%05d", i);
		for (int j = 0; j < n; j++, sends++)
			send_total += send_one(conv, peer, "me", j);
	}
	/* A small inbox, for the cost against the count. */
	for (int i = 0; i < 100; i++) {
		snprintf(conv, sizeof(conv), "small-%03d", i);
		members(conv, "few", "other");
		for (int j = 0; j < shorts; j++, sends++)
			send_total += send_one(conv, "other", "few", j);
	}
	drain();
	printf("filled in %.1f s: %ld messages, %d failed\n", (now_us() - t) / 1e6, sends, failures);
	printf("send, the loop's part (record, statuses, inbox entries), 2 participants: "
	       "%.1f us per message\n", send_total / (double)sends);

	/* A page of 20, the latest: each read in a new snapshot. */
	t = now_us();
	for (int r = 0; r < reps; r++) {
		store_read_done();
		json = messages_inbox("me", 2, NULL, 0, 20, &len);
		scratch_free(json);
	}
	printf("conversations:list, first page of 20 of %d: %.1f us\n", convs + 0,
	       (now_us() - t) / reps);
	t = now_us();
	for (int r = 0; r < reps; r++) {
		store_read_done();
		json = messages_inbox("few", 3, NULL, 0, 20, &len);
		scratch_free(json);
	}
	printf("conversations:list, first page of 20 of 100: %.1f us\n", (now_us() - t) / reps);

	/* The whole list, 100 at a time, following `before`. */
	{
		char before[MESSAGES_NAME_MAX + 1] = "";
		int pages = 0, total = 0;
		t = now_us();
		for (;;) {
			store_read_done();
			json = messages_inbox("me", 2, before[0] ? before : NULL, strlen(before), 100,
					      &len);
			if (!json)
				break;
			pages++;
			/* The last conversationId of the page. */
			char *p = json, *lastc = NULL;
			while ((p = strstr(p, "{\"conversationId\":\"")) != NULL) {
				lastc = p + 19;
				p = lastc;
				total++;
			}
			int more = strstr(json, "\"hasMore\":true") != NULL;
			if (lastc) {
				size_t n = (size_t)(strchr(lastc, '"') - lastc);
				memcpy(before, lastc, n);
				before[n] = '\0';
			}
			scratch_free(json);
			if (!more || !lastc)
				break;
		}
		printf("the whole list of %d, in %d pages of 100: %.1f ms (%.1f us a page; %d listed)\n",
		       convs, pages, (now_us() - t) / 1e3, (now_us() - t) / pages, total);
	}

	t = now_us();
	for (int r = 0; r < reps; r++) {
		store_read_done();
		snprintf(conv, sizeof(conv), "conv-%05d", r % (longs ? longs : 1));
		json = messages_inbox_item("me", 2, conv, strlen(conv), &len);
		scratch_free(json);
	}
	printf("one item (conversation:updated), a conversation of %d messages: %.1f us\n", long_len,
	       (now_us() - t) / reps);

	store_read_done();
	t = naive_list("me", &unread);
	printf("the same list computed per request from the histories (last message and a count "
	       "per conversation, %ld messages read): %.1f ms\n", unread, t / 1e3);

	messages_fini();
	store_close();
	ev_loop_destroy(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	return failures ? 1 : 0;
}
