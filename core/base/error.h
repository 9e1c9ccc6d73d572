/* error.h - parley's one error convention (LMDB's and libuv's). A function
 * that can fail returns 0 on success, or the value that is its result where
 * it has one (a length, a count; 1 or 0 for a lookup: found or not), each
 * said at its declaration; and on failure a negative code:
 *
 *   -1 .. -4095          a negative errno: -ENOENT, -EBADMSG, -ENOSPC, ...
 *   -30799 .. -30780     LMDB's codes as LMDB gives them (MDB_MAP_FULL, ...)
 *   -32099 .. -32000     parley's own (below): what errno has no word for
 *
 * parley_strerror() names any of them. Besides:
 * - constructors return NULL (the allocator itself aborts: base/alloc.h);
 * - a predicate ("whether ...", "1 if ..., else 0") is not an error code;
 * - a call that fails never also runs the callback it was given; a
 *   callback told of a failure (a store batch's done) gets these codes;
 * - a function that logs its failure says "(logged)": the caller does not
 *   log it again;
 * - what a function returns "for the lws callback" is lws's contract, not
 *   this one: 0 to go on, non-zero to close the connection.
 * No dependencies: the codecs (wire/) use it as much as the server. */
#ifndef PARLEY_ERROR_H
#define PARLEY_ERROR_H

#include <errno.h>

/* The ranges. LMDB's bounds are lmdb.h's MDB_KEYEXIST and
 * MDB_LAST_ERRCODE (store.c checks them against it). */
#define PARLEY_ERRNO_MAX 4095
#define PARLEY_LMDB_FIRST (-30799)
#define PARLEY_LMDB_LAST (-30780)
#define PARLEY_OWN_FIRST (-32099)
#define PARLEY_OWN_LAST (-32000)

/* parley's own codes. */
enum parley_error {
	/* Refused by a check (a connect hook, an upgrade's route): the status
	 * or message that comes with it says why. */
	PARLEY_EREFUSED = -32000,
	/* A script, or the runtime, failed (logged with its file and line). */
	PARLEY_ESCRIPT = -32001,
	/* An ack id that is not an integer in 0..2^53. */
	PARLEY_EBADACK = -32002,
	/* A name that is missing, not a string, empty, too long or reserved
	 * (an event's, an annotation's). */
	PARLEY_EBADNAME = -32003,
	/* The user is not a recipient of the message. */
	PARLEY_ENOTRECIPIENT = -32004,
	/* The store cannot answer: PostgreSQL is unreachable, the connection
	 * went before a write's COMMIT was confirmed, or its queue is full. */
	PARLEY_EUNAVAILABLE = -32005,
	/* A statement of the store failed in PostgreSQL (logged with its
	 * message). */
	PARLEY_ESTATEMENT = -32006,
};

/* A message for `err`, starting with the code's name ("ENOSPC: ...",
 * "MDB_MAP_FULL: ...", "PARLEY_EREFUSED: ..."): scripts tell causes apart
 * by the name, whatever the C library's wording. "0: no error" for 0, and
 * "unknown error N" for what is no code. The text is static, or the
 * calling thread's until its next call. */
const char *parley_strerror(int err);

/* LMDB's codes are LMDB's to name: the store layer, which links LMDB (base
 * does not), hands its mdb_strerror here when it opens. Until then they
 * read "MDB error N". */
void parley_strerror_lmdb(char *(*text)(int err));

#endif
