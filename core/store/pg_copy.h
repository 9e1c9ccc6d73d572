/* pg_copy.h - `parley copy-store URI`: an LMDB store moved into PostgreSQL
 * (docs/storage-postgresql.md). For the command only: it blocks, and runs
 * before (instead of) the server. */
#ifndef PARLEY_PG_COPY_H
#define PARLEY_PG_COPY_H

#include <stddef.h>

/* Copies the LMDB store in `dir` (opened with a map of `map_size` bytes;
 * the directory is claimed, so parley must not be running on it) into the
 * PostgreSQL database `uri`, which must be empty or hold an unfinished copy
 * of the same directory: a copy that was interrupted is resumed (rows
 * already there are left as they are). Creates parley's schema there when
 * missing. Prints, per kind of row, how many the LMDB store holds and how
 * many the database holds after the copy. Returns 0 when every count
 * matches, or a negative code (logged: unreachable, not empty, a count
 * that does not match, an LMDB or SQL error). */
int pg_copy(const char *dir, size_t map_size, const char *uri);

#endif
