/* pg_schema.c - a placeholder until the real schema lands (issue 18's store
 * operations): one migration with a probe table and one statement, enough
 * to exercise the connection, the migrations and the statements. */
#include "store/pg_schema.h"

const char *const pg_migrations[] = {
	"CREATE TABLE parley_probe (id integer PRIMARY KEY)",
};
const size_t pg_nmigrations = sizeof(pg_migrations) / sizeof(pg_migrations[0]);

const struct pg_statement pg_statements[] = {
	{ "parley_probe", "SELECT 1", 0 },
};
const size_t pg_nstatements = sizeof(pg_statements) / sizeof(pg_statements[0]);
