/* pg_schema.h - parley's SQL on PostgreSQL: the migrations that build its
 * schema (migrations[i] takes version i to i+1) and the prepared statements
 * the host functions call by index (store/pg.h's pg_open and pg_call). */
#ifndef PARLEY_PG_SCHEMA_H
#define PARLEY_PG_SCHEMA_H

#include <stddef.h>

#include "store/pg.h"

extern const char *const pg_migrations[];
extern const size_t pg_nmigrations;
extern const struct pg_statement pg_statements[];
extern const size_t pg_nstatements;

#endif
