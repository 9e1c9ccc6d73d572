/* lmdb_hold.c - a test helper: opens the LMDB environment in a directory,
 * takes its write lock (begins a write transaction), prints "held", and
 * keeps the lock until its stdin closes, then lets go without writing.
 * parley's store writer needs that lock for every commit, so while it is
 * held a write stays in flight for as long as a test wants
 * (tests/integration/shutdown.test.js). Uses liblmdb only. */
#include <stdio.h>

#include <lmdb.h>

int main(int argc, char **argv)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: lmdb_hold DIRECTORY\n");
		return 2;
	}
	/* A map size of 0 takes the one the environment was made with. */
	if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_mapsize(env, 0)) != 0 ||
	    (rc = mdb_env_set_maxdbs(env, 64)) != 0 ||
	    (rc = mdb_env_open(env, argv[1], MDB_NOTLS, 0600)) != 0 ||
	    (rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
		goto fail;
	printf("held\n");
	fflush(stdout);
	while (getchar() != EOF)
		;
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return 0;
fail:
	fprintf(stderr, "lmdb_hold: %s: %s\n", argv[1], mdb_strerror(rc));
	if (env)
		mdb_env_close(env);
	return 1;
}
