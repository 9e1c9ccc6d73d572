/* pg_schema.c - parley's SQL on PostgreSQL (see pg_schema.h): the schema's
 * migrations, embedded from core/store/pg_schema_<version>.sql at build
 * time, and the prepared statements, each one call of a function those
 * define (or one plain statement). Parameters are text unless said. The
 * writes about a conversation (a send, a status, read up to, members) go
 * through the connection its id routes to (pg.h), so they commit in the
 * order they were made; the other writes and every read, through the
 * first. */
#include "store/pg_schema.h"

extern const char pg_schema_1_sql[];
extern const char pg_schema_2_sql[];
extern const char pg_schema_3_sql[];
extern const char pg_schema_4_sql[];

const char *const pg_migrations[] = {
	pg_schema_1_sql,
	pg_schema_2_sql,
	pg_schema_3_sql,
	pg_schema_4_sql,
};
const size_t pg_nmigrations = sizeof(pg_migrations) / sizeof(pg_migrations[0]);

const struct pg_statement pg_statements[] = {
	/* store_send: the send alone (a plugin's, or a script's own). Of a
	 * new message, both sends answer the id, seq and sender profile, from
	 * which store_api_pg.c makes its record (record_json is only read
	 * when the key was taken: parley_send_many answers it NULL
	 * otherwise). */
	[PGS_SEND] = { "parley_send",
		       "SELECT record_json, created, message_id, sent_at, seq, sender "
		       "FROM parley_send_as($1, $2, $3, $4, $5, $6, $7, NULL, NULL, NULL, false, "
		       "$8::text[], $9::bigint, $10)",
		       10, PGS_SEND_MANY, 1 },
	/* store_send_as: messages.lua's whole send, checks included. */
	[PGS_SEND_AS] = { "parley_send_as",
			  "SELECT * FROM parley_send_as($1, $2, $3, $4, $5, $6, NULL, $7, $8, $9, "
			  "true, $10::text[], $11::bigint, $12)", 12, PGS_SEND_AS_MANY, 1 },
	[PGS_MESSAGE] = { "parley_message", "SELECT * FROM parley_message($1)", 1 },
	[PGS_SYNC] = { "parley_sync", "SELECT parley_sync($1, $2::bigint, $3::integer, $4)", 4 },
	[PGS_SYNC_BEFORE] = { "parley_sync_before",
			      "SELECT parley_sync_before($1, $2::bigint, $3::integer, $4)", 4 },
	[PGS_SET_STATUS] = { "parley_set_status",
			     "SELECT * FROM parley_set_status($1::text[], $2, $3::integer, "
			     "$4::boolean, $5, $6::bigint, $7)", 7, 0, 5 },
	[PGS_READ_UPTO] = { "parley_read_upto",
			    "SELECT * FROM parley_read_upto($1, $2, $3::bigint, $4::boolean, "
			    "$5::bigint, $6)", 6, 0, 1 },
	[PGS_MEMBERS] = { "parley_members",
			  "SELECT user_id FROM members WHERE conversation_id = $1 "
			  "ORDER BY user_id LIMIT 10000", 1 },
	[PGS_SET_MEMBERS] = { "parley_set_members",
			      "SELECT parley_set_members($1, $2::text[], $3::bigint)", 3, 0, 1 },
	[PGS_IS_MEMBER] = { "parley_is_member", "SELECT * FROM parley_is_member($1, $2)", 2 },
	[PGS_CONVERSATIONS_OF] = { "parley_conversations_of",
				   "SELECT conversation_id FROM members WHERE user_id = $1 "
				   "ORDER BY conversation_id LIMIT 100000", 1 },
	[PGS_INBOX] = { "parley_inbox", "SELECT parley_inbox($1, $2, $3::integer)", 3 },
	[PGS_INBOX_ITEM] = { "parley_inbox_item", "SELECT parley_inbox_item($1, $2)", 2 },
	[PGS_INBOX_UPDATES] = { "parley_inbox_updates",
				"SELECT * FROM parley_inbox_updates($1, $2::text[])", 2 },
	[PGS_PARTICIPANTS] = { "parley_participants",
			       "SELECT user_id FROM inbox WHERE conversation_id = $1 "
			       "ORDER BY user_id LIMIT 10000", 1 },
	[PGS_PROFILE] = { "parley_profile",
			  "SELECT profile FROM users WHERE user_id = $1 AND profile IS NOT NULL",
			  1 },
	[PGS_SET_PROFILE] = { "parley_set_profile",
			      "INSERT INTO users (user_id, profile) VALUES ($1, $2) "
			      "ON CONFLICT (user_id) DO UPDATE SET profile = excluded.profile", 2 },
	[PGS_LAST_SEEN] = { "parley_last_seen",
			    "SELECT last_seen FROM users WHERE user_id = $1 "
			    "AND last_seen IS NOT NULL", 1 },
	[PGS_SET_LAST_SEEN] = { "parley_set_last_seen",
				"INSERT INTO users (user_id, last_seen) VALUES ($1, $2::bigint) "
				"ON CONFLICT (user_id) DO UPDATE SET last_seen = excluded.last_seen",
				2 },
	[PGS_ANNOTATE] = { "parley_annotate", "SELECT parley_annotate($1, $2, $3)", 3 },
	[PGS_EDIT] = { "parley_edit", "SELECT parley_edit($1, $2, $3)", 3 },
	[PGS_HIDE] = { "parley_hide", "SELECT parley_hide($1, $2)", 2 },
	/* store_wait: a write that commits after every write queued before,
	 * on every connection. */
	[PGS_WAIT] = { "parley_wait", "SELECT 1", 0, 0, PG_ROUTE_ALL },
	/* kv: $2 the key and $3 a value are bytea (binary parameters). */
	[PGS_KV_GET] = { "parley_kv_get",
			 "SELECT value, expires FROM kv WHERE plugin = $1 AND key = $2::bytea "
			 "AND (expires = 0 OR expires > $3::bigint)", 3 },
	[PGS_KV_SET] = { "parley_kv_set",
			 "INSERT INTO kv VALUES ($1, $2::bytea, $3::bytea, $4::bigint) "
			 "ON CONFLICT (plugin, key) DO UPDATE "
			 "SET value = excluded.value, expires = excluded.expires", 4 },
	[PGS_KV_DELETE] = { "parley_kv_delete",
			    "DELETE FROM kv WHERE plugin = $1 AND key = $2::bytea", 2 },
	[PGS_KV_KEYS] = { "parley_kv_keys",
			  "SELECT key FROM kv WHERE plugin = $1 AND key >= $2::bytea "
			  "AND substring(key FROM 1 FOR octet_length($2::bytea)) = $2::bytea "
			  "AND (expires = 0 OR expires > $3::bigint) ORDER BY key LIMIT $4::integer",
			  4 },
	[PGS_KV_SWEEP] = { "parley_kv_sweep",
			   "DELETE FROM kv WHERE ctid IN (SELECT ctid FROM kv WHERE expires > 0 "
			   "AND expires <= $1::bigint LIMIT 2000)", 1 },
	/* kv.incr in one statement, not schema 1's parley_kv_incr: that one
	 * reads FOR UPDATE, which locks nothing while the key is absent, so
	 * two first increments from two nodes both wrote 1. Here the insert's
	 * conflict waits on the row and adds to what the other wrote; a live
	 * value that is not a number is left alone (no row: NULL). $4 NULL
	 * keeps the live entry's expiry. */
	[PGS_KV_INCR] = { "parley_kv_incr",
			  "INSERT INTO kv VALUES ($1, $2::bytea, "
			  "convert_to($3::float8::text, 'UTF8'), coalesce($4::bigint, 0)) "
			  "ON CONFLICT (plugin, key) DO UPDATE SET "
			  "value = CASE WHEN kv.expires = 0 OR kv.expires > $5::bigint "
			  "THEN convert_to((convert_from(kv.value, 'UTF8')::float8 + $3::float8)::text, "
			  "'UTF8') ELSE excluded.value END, "
			  "expires = CASE WHEN $4::bigint IS NOT NULL THEN $4::bigint "
			  "WHEN kv.expires = 0 OR kv.expires > $5::bigint THEN kv.expires ELSE 0 END "
			  "WHERE (kv.expires <> 0 AND kv.expires <= $5::bigint) "
			  "OR json_typeof(convert_from(kv.value, 'UTF8')::json) = 'number' "
			  "RETURNING convert_from(value, 'UTF8')",
			  5 },
	/* kv.cas, each one statement (a row comes back when it wrote): a
	 * concurrent writer of the row waits on its lock, and the WHERE is
	 * checked again on what it wrote. ADD: the key absent or expired ($5
	 * now); SET and DELETE: the live value is $3 exactly. */
	[PGS_KV_CAS_ADD] = { "parley_kv_cas_add",
			     "INSERT INTO kv VALUES ($1, $2::bytea, $3::bytea, $4::bigint) "
			     "ON CONFLICT (plugin, key) DO UPDATE "
			     "SET value = excluded.value, expires = excluded.expires "
			     "WHERE kv.expires > 0 AND kv.expires <= $5::bigint RETURNING 1",
			     5 },
	[PGS_KV_CAS_SET] = { "parley_kv_cas_set",
			     "UPDATE kv SET value = $4::bytea, expires = $5::bigint "
			     "WHERE plugin = $1 AND key = $2::bytea AND value = $3::bytea "
			     "AND (expires = 0 OR expires > $6::bigint) RETURNING 1",
			     6 },
	[PGS_KV_CAS_DELETE] = { "parley_kv_cas_delete",
				"DELETE FROM kv WHERE plugin = $1 AND key = $2::bytea "
				"AND value = $3::bytea AND (expires = 0 OR expires > $4::bigint) "
				"RETURNING 1",
				4 },
	/* A run of sends of one write group as one statement (pg.h's batch):
	 * each parameter the run's values of the one above, as a text[]. */
	[PGS_SEND_MANY] = { "parley_send_many",
			    "SELECT record_json, created, message_id, sent_at, seq, sender FROM "
			    "parley_send_many($1::text[], $2::text[], $3::text[], $4::text[], "
			    "$5::text[], $6::text[], $7::text[], NULL, NULL, NULL, false, "
			    "$8::text[], $9::bigint[], $10::text[])", 10 },
	[PGS_SEND_AS_MANY] = { "parley_send_as_many",
			       "SELECT * FROM parley_send_many($1::text[], $2::text[], $3::text[], "
			       "$4::text[], $5::text[], $6::text[], NULL, $7::text[], $8::text[], "
			       "$9::text[], true, $10::text[], $11::bigint[], $12::text[])", 12 },
};
const size_t pg_nstatements = sizeof(pg_statements) / sizeof(pg_statements[0]);

/* Every statement of the enum has its row. */
_Static_assert(sizeof(pg_statements) / sizeof(pg_statements[0]) == PGS_COUNT,
	       "pg_statements and enum pg_stmt agree");
