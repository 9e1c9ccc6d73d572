/* test_pg.c - unit tests for core/store/pg.c's pg_mask_uri: a PostgreSQL
 * URI in a message shows everything but its password, in the userinfo or
 * in a password parameter, and a short buffer cuts it, still terminated. */
#include "store/pg.h"

#include "check.h"

#include <string.h>

static void masked(const char *uri, const char *want)
{
	char out[256];

	pg_mask_uri(uri, out, sizeof(out));
	CHECK_STR(out, want);
}

static void test_userinfo(void)
{
	masked("postgresql://alice:s3cret@db.example:5432/chat",
	       "postgresql://alice:***@db.example:5432/chat");
	masked("postgres://alice:s3cret@/chat?host=/run/pg", "postgres://alice:***@/chat?host=/run/pg");
	/* An '@' in the password (percent-encoded or not) is the password's. */
	masked("postgresql://alice:p@ss@db/chat", "postgresql://alice:***@db/chat");
	masked("postgresql://alice:%40x@db/chat", "postgresql://alice:***@db/chat");
	/* No password: nothing to hide. */
	masked("postgresql://alice@db/chat", "postgresql://alice@db/chat");
	masked("postgresql:///chat?host=/tmp", "postgresql:///chat?host=/tmp");
	/* An '@' and ':' after the host are not the userinfo's. */
	masked("postgresql://db/chat?options=a:b@c", "postgresql://db/chat?options=a:b@c");
}

static void test_parameter(void)
{
	masked("postgresql://alice@db/chat?password=s3cret",
	       "postgresql://alice@db/chat?password=***");
	masked("postgresql://alice@db/chat?sslmode=disable&password=s3cret&connect_timeout=3",
	       "postgresql://alice@db/chat?sslmode=disable&password=***&connect_timeout=3");
	masked("postgresql://a:x@db/chat?password=y", "postgresql://a:***@db/chat?password=***");
	/* Only the parameter named password. */
	masked("postgresql://db/chat?nopassword=1", "postgresql://db/chat?nopassword=1");
	/* A key=value string, as libpq also takes. */
	masked("host=/tmp password=s3cret dbname=chat", "host=/tmp password=*** dbname=chat");
}

static void test_short(void)
{
	char out[12];

	pg_mask_uri("postgresql://alice:s3cret@db/chat", out, sizeof(out));
	CHECK_STR(out, "postgresql:");
	pg_mask_uri("postgresql://alice:s3cret@db/chat", out, 1);
	CHECK_STR(out, "");
}

int main(void)
{
	test_userinfo();
	test_parameter();
	test_short();
	return check_report("test_pg");
}
