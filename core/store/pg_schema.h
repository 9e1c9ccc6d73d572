/* pg_schema.h - parley's SQL on PostgreSQL: the migrations that build its
 * schema (migrations[i] takes version i to i+1) and the prepared statements
 * the host functions call by index (store/pg.h's pg_open and pg_call; the
 * indexes are enum pg_stmt's). docs/storage-postgresql.md describes the
 * schema. */
#ifndef PARLEY_PG_SCHEMA_H
#define PARLEY_PG_SCHEMA_H

#include <stddef.h>

#include "store/pg.h"

extern const char *const pg_migrations[];
extern const size_t pg_nmigrations;
extern const struct pg_statement pg_statements[];
extern const size_t pg_nstatements;

/* The statements, by index into pg_statements (their parameters are
 * pg_schema.c's; lua/store_api_pg.c and lua/kv_pg.c call them). */
enum pg_stmt {
	PGS_SEND,
	PGS_SEND_AS,
	PGS_MESSAGE,
	PGS_SYNC,
	PGS_SYNC_BEFORE,
	PGS_SET_STATUS,
	PGS_READ_UPTO,
	PGS_MEMBERS,
	PGS_SET_MEMBERS,
	PGS_IS_MEMBER,
	PGS_CONVERSATIONS_OF,
	PGS_INBOX,
	PGS_INBOX_ITEM,
	PGS_INBOX_UPDATES,
	PGS_PARTICIPANTS,
	PGS_PROFILE,
	PGS_SET_PROFILE,
	PGS_LAST_SEEN,
	PGS_SET_LAST_SEEN,
	PGS_ANNOTATE,
	PGS_EDIT,
	PGS_HIDE,
	PGS_WAIT,
	PGS_KV_GET,
	PGS_KV_SET,
	PGS_KV_DELETE,
	PGS_KV_KEYS,
	PGS_KV_SWEEP,
	PGS_KV_INCR,
	PGS_KV_CAS_ADD,
	PGS_KV_CAS_SET,
	PGS_KV_CAS_DELETE,
	PGS_COUNT
};

#endif
