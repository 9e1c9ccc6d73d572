/* test_error.c - unit tests for core/base/error.c: every code's message
 * starts with its name (errno's, parley's own, LMDB's through the
 * describer handed over), the store's words for a full or failing disk,
 * and what is no code. */
#include "base/error.h"

#include "check.h"

#include <string.h>

static int starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void test_errno(void)
{
	CHECK_STR(parley_strerror(-EACCES), "EACCES: Permission denied");
	CHECK_STR(parley_strerror(-ENOENT), "ENOENT: No such file or directory");
	CHECK_STR(parley_strerror(-EBADMSG), "EBADMSG: Bad message");
	/* The store's words, which the runtime's store.failure() reads. */
	CHECK_STR(parley_strerror(-ENOSPC), "ENOSPC: no space left on the disk");
	CHECK_STR(parley_strerror(-EDQUOT), "EDQUOT: the disk quota is used up");
	CHECK_STR(parley_strerror(-EFBIG),
		  "EFBIG: the data file reached the file size limit (RLIMIT_FSIZE)");
	CHECK_STR(parley_strerror(-EIO), "EIO: an I/O error");
	CHECK_STR(parley_strerror(-EROFS), "EROFS: the file system is read-only");
}

static void test_own(void)
{
	CHECK(starts(parley_strerror(PARLEY_EREFUSED), "PARLEY_EREFUSED: "));
	CHECK(starts(parley_strerror(PARLEY_ESCRIPT), "PARLEY_ESCRIPT: "));
	CHECK(starts(parley_strerror(PARLEY_EBADACK), "PARLEY_EBADACK: "));
	CHECK(starts(parley_strerror(PARLEY_EBADNAME), "PARLEY_EBADNAME: "));
	CHECK(starts(parley_strerror(PARLEY_ENOTRECIPIENT), "PARLEY_ENOTRECIPIENT: "));
	CHECK(starts(parley_strerror(PARLEY_EUNAVAILABLE), "PARLEY_EUNAVAILABLE: "));
	CHECK(starts(parley_strerror(PARLEY_ESTATEMENT), "PARLEY_ESTATEMENT: "));
	/* In the range, past the last one: no code. */
	CHECK_STR(parley_strerror(PARLEY_ESTATEMENT - 1), "unknown error -32007");
}

static char *fake_lmdb(int err)
{
	return err == -30792 ? "MDB_MAP_FULL: Environment mapsize limit reached" : "MDB_OTHER";
}

static void test_lmdb(void)
{
	/* Before the store hands LMDB's describer over, and after. */
	CHECK_STR(parley_strerror(-30792), "MDB error -30792");
	parley_strerror_lmdb(fake_lmdb);
	CHECK_STR(parley_strerror(-30792), "MDB_MAP_FULL: Environment mapsize limit reached");
	CHECK_STR(parley_strerror(PARLEY_LMDB_FIRST), "MDB_OTHER");
	CHECK_STR(parley_strerror(PARLEY_LMDB_LAST), "MDB_OTHER");
	parley_strerror_lmdb(NULL);
}

static void test_not_codes(void)
{
	CHECK_STR(parley_strerror(0), "0: no error");
	CHECK_STR(parley_strerror(5), "unknown error 5");
	CHECK_STR(parley_strerror(-4000), "unknown error -4000");
	CHECK_STR(parley_strerror(-20000), "unknown error -20000");
}

int main(void)
{
	test_errno();
	test_own();
	test_lmdb();
	test_not_codes();
	return check_report("test_error");
}
