/* test_topology.c - where a key lives on a Redis Cluster: the slots of
 * keys and hash tags against what redis-server's CLUSTER KEYSLOT answered
 * (Redis 7.0.15, the values written here); a CLUSTER SLOTS reply, parsed
 * from its RESP bytes by hiredis as on the wire, read into the slot map (a
 * master met twice is one shard, a master without an address is the seed's
 * host, uncovered slots are no shard); malformed replies refused with the
 * reason. */
#include <errno.h>

#include "check.h"
#include "cluster/topology.h"

static void test_slots(void)
{
	static const struct {
		const char *key;
		unsigned slot;
	} v[] = {
		{ "123456789", 12739 },
		{ "foo", 12182 },
		{ "bar", 5061 },
		{ "parley", 11367 },
		{ "{parley}:node:A", 11367 },
		{ "parley:/messages:room:conversation:x", 10560 },
		{ "{user1000}.following", 3443 },
		{ "foo{}{bar}", 8363 },     /* an empty tag: the whole key */
		{ "foo{{bar}}zap", 4015 },  /* the tag is "{bar" */
		{ "foo{bar}{zap}", 5061 },  /* the first tag: "bar" */
		{ "", 0 },
		{ "{}", 15257 },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		CHECK_UINT(topology_slot(v[i].key, strlen(v[i].key)), v[i].slot);
}

/* The reply hiredis reads from `resp`. */
static redisReply *parse(const char *resp)
{
	redisReader *r = redisReaderCreate();
	void *reply = NULL;

	redisReaderFeed(r, resp, strlen(resp));
	if (redisReaderGetReply(r, &reply) != REDIS_OK)
		reply = NULL;
	redisReaderFree(r);
	return reply;
}

/* A master at 127.0.0.1:7001, as CLUSTER SLOTS gives one: [host, port, id]. */
#define MASTER "*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nid\r\n"

static void test_read(void)
{
	struct link_addr seed = { .host = "10.0.0.9", .port = 7000 };
	struct topology t;
	char err[160];
	/* Three ranges, two masters (one of them twice, once with a replica),
	 * one given as "" (the seed's host); slots 100-199 served by nobody. */
	redisReply *r = parse("*3\r\n"
			      "*4\r\n:0\r\n:99\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nid\r\n"
			      "*3\r\n$9\r\n127.0.0.1\r\n:7004\r\n$2\r\nid\r\n"
			      "*3\r\n:200\r\n:8191\r\n*3\r\n$0\r\n\r\n:7002\r\n$2\r\nid\r\n"
			      "*3\r\n:8192\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nid\r\n");

	if (!CHECK(r != NULL))
		return;
	CHECK_INT(topology_read(r, &seed, &t, err, sizeof(err)), 0);
	CHECK_UINT(t.nshards, 2);
	CHECK_STR(t.shard[0].host, "127.0.0.1");
	CHECK_INT(t.shard[0].port, 7001);
	CHECK_STR(t.shard[1].host, "10.0.0.9");
	CHECK_INT(t.shard[1].port, 7002);
	CHECK_UINT(t.slot[0], 0);
	CHECK_UINT(t.slot[99], 0);
	CHECK_UINT(t.slot[100], TOPOLOGY_NONE);
	CHECK_UINT(t.slot[199], TOPOLOGY_NONE);
	CHECK_UINT(t.slot[200], 1);
	CHECK_UINT(t.slot[8191], 1);
	CHECK_UINT(t.slot[8192], 0);
	CHECK_UINT(t.slot[16383], 0);

	struct topology same = t, other = t;
	CHECK(topology_same(&t, &same));
	other.slot[150] = 1; /* a slot now served */
	CHECK(!topology_same(&t, &other));
	other = t;
	other.shard[1].port = 7003; /* a failover: another address */
	CHECK(!topology_same(&t, &other));

	struct topology one;
	topology_single(&one, &seed);
	CHECK_UINT(one.nshards, 1);
	CHECK_UINT(one.slot[16383], 0);
	CHECK(!topology_same(&one, &t));
	freeReplyObject(r);
}

static void refused(const char *resp, const char *why)
{
	struct link_addr seed = { .path = "/run/redis.sock" };
	struct topology t;
	char err[160] = "";
	redisReply *r = parse(resp);

	if (!CHECK(r != NULL))
		return;
	CHECK_INT(topology_read(r, &seed, &t, err, sizeof(err)), -EINVAL);
	if (!CHECK(strstr(err, why) != NULL))
		fprintf(stderr, "  the reason was: %s\n", err);
	freeReplyObject(r);
}

static void test_refused(void)
{
	refused("+OK\r\n", "not an array");
	refused("*0\r\n", "no master");
	refused("*1\r\n*2\r\n:0\r\n:5\r\n", "not [from, to, master");
	refused("*1\r\n*3\r\n:10\r\n:5\r\n" MASTER, "slots 10-5");
	refused("*1\r\n*3\r\n:0\r\n:16384\r\n" MASTER, "slots 0-16384");
	refused("*1\r\n*3\r\n:0\r\n:5\r\n*3\r\n$11\r\nredis.local\r\n:7001\r\n$2\r\nid\r\n",
		"not a numeric address");
	/* No address, and PARLEY_REDIS a Unix socket: no host to take. */
	refused("*1\r\n*3\r\n:0\r\n:5\r\n*3\r\n$0\r\n\r\n:7001\r\n$2\r\nid\r\n", "Unix socket");
	refused("*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n:1\r\n:2\r\n", "a master is not");
}

int main(void)
{
	test_slots();
	test_read();
	test_refused();
	return check_report("test_topology");
}
