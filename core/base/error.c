/* error.c - names and messages of error codes (see error.h): errno's from
 * the C library, LMDB's from the describer the store hands over, parley's
 * own from the table here. Uses only libc. */
#define _GNU_SOURCE
#include "base/error.h"

#include <stdio.h>
#include <string.h>

static char *(*lmdb_text)(int err);

/* parley's own, in the order of enum parley_error from PARLEY_OWN_LAST. */
static const char *const own[] = {
	"PARLEY_EREFUSED: refused (the status or message given with it says why)",
	"PARLEY_ESCRIPT: a script failed",
	"PARLEY_EBADACK: an ack id must be an integer in 0..2^53",
	"PARLEY_EBADNAME: the name is missing, not a string, empty, too long or reserved",
	"PARLEY_ENOTRECIPIENT: the user is not a recipient of the message",
	"PARLEY_EUNAVAILABLE: the store is unavailable (PostgreSQL unreachable or its queue full)",
	"PARLEY_ESTATEMENT: a statement of the store failed in PostgreSQL",
};

/* What a disk does to a write, in the words an operator reads in a log and
 * a script in a store error (the files parley writes are the store's). */
static const char *disk_text(int e)
{
	switch (e) {
	case ENOSPC:
		return "ENOSPC: no space left on the disk";
	case EDQUOT:
		return "EDQUOT: the disk quota is used up";
	case EFBIG:
		return "EFBIG: the data file reached the file size limit (RLIMIT_FSIZE)";
	case EIO:
		return "EIO: an I/O error";
	case EROFS:
		return "EROFS: the file system is read-only";
	default:
		return NULL;
	}
}

const char *parley_strerror(int err)
{
	static _Thread_local char text[160];
	const char *s;

	if (err == 0)
		return "0: no error";
	if (err < 0 && err >= -PARLEY_ERRNO_MAX) {
		if ((s = disk_text(-err)))
			return s;
		if (strerrorname_np(-err)) {
			snprintf(text, sizeof(text), "%s: %s", strerrorname_np(-err),
				 strerrordesc_np(-err));
			return text;
		}
	} else if (err >= PARLEY_LMDB_FIRST && err <= PARLEY_LMDB_LAST) {
		if (lmdb_text)
			return lmdb_text(err); /* LMDB's own start with their names */
		snprintf(text, sizeof(text), "MDB error %d", err);
		return text;
	} else if (err >= PARLEY_OWN_FIRST && err <= PARLEY_OWN_LAST &&
		   PARLEY_OWN_LAST - err < (int)(sizeof(own) / sizeof(own[0]))) {
		return own[PARLEY_OWN_LAST - err];
	}
	snprintf(text, sizeof(text), "unknown error %d", err);
	return text;
}

void parley_strerror_lmdb(char *(*text)(int err))
{
	lmdb_text = text;
}
