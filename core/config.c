/* config.c - parley's settings (see config.h): one table describes every
 * setting; defaults, the Lua config file (run as data in a bare LuaJIT state
 * with no libraries) and the environment all pass through the same checks. */
#include "config.h"

#include "base/alloc.h"
#include "base/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <luajit.h>

#ifndef PARLEY_VERSION
#define PARLEY_VERSION "0.1.0"
#endif
/* Where `cmake --install` puts the default scripts and plugins (CMake's
 * PARLEY_SHARE_DIR, from the install prefix). */
#ifndef PARLEY_SHARE_DIR
#define PARLEY_SHARE_DIR "/usr/local/share/parley"
#endif
#ifndef PARLEY_SANITIZER
#define PARLEY_SANITIZER ""
#endif

#define CONFIG_DEFAULT_FILE "./parley.conf.lua"
/* A config file is data: a few thousand instructions build any sane table.
 * The budget only stops a file that loops, so startup cannot hang. */
#define CONFIG_MAX_INSTRUCTIONS 10000000
/* Values quoted in messages are cut here, so a stray blob stays readable. */
#define CONFIG_QUOTE_MAX 64

enum setting_type {
	SETTING_INT,      /* int, decimal in min..max */
	SETTING_SIZE,     /* size_t, decimal in min..max */
	SETTING_PATH,     /* string, not empty */
	SETTING_OPTIONAL, /* string, empty = NULL */
	SETTING_SECRET,   /* string, empty = NULL, else at least min bytes */
	SETTING_PLUGINS,  /* comma-separated plugin names, normalised */
	SETTING_LOG,      /* int, a log level name */
};

struct setting {
	const char *key;       /* key in the config file */
	const char *env;       /* environment variable */
	enum setting_type type;
	size_t offset;         /* field in struct config */
	const char *def;       /* default; NULL = unset */
	long long min, max;
	const char *unit;      /* appended to range messages, or "" */
	const char *meaning;   /* one line for --help */
};

#define FIELD(f) offsetof(struct config, f)

static const struct setting setting_table[] = {
	{ "port", "PORT", SETTING_INT, FIELD(port), "3000", 1, 65535, "",
	  "TCP port to listen on, 1..65535" },
	{ "data_dir", "PARLEY_DATA_DIR", SETTING_PATH, FIELD(data_dir), "./data", 0, 0, "",
	  "directory of the database" },
	{ "store", "PARLEY_STORE", SETTING_OPTIONAL, FIELD(store), NULL, 0, 0, "",
	  "where the store is: unset or lmdb: LMDB in PARLEY_DATA_DIR; a postgresql:// URI: PostgreSQL" },
	{ "pg_max_queue", "PARLEY_PG_MAX_QUEUE", SETTING_INT, FIELD(pg_max_queue), "100000", 100,
	  10000000, "",
	  "store calls queued or in flight on PostgreSQL at most; past it one fails (503)" },
	{ "pg_writers", "PARLEY_PG_WRITERS", SETTING_INT, FIELD(pg_writers), "2", 1, 16, "",
	  "connections to PostgreSQL, each with a write transaction in flight; the writes "
	  "about one conversation all go through one" },
	{ "redis", "PARLEY_REDIS", SETTING_OPTIONAL, FIELD(redis), NULL, 0, 0, "",
	  "cluster mode: the Redis the nodes share, redis://host[:port][/db] or unix:///path.sock; "
	  "needs PARLEY_STORE on PostgreSQL" },
	{ "node_id", "PARLEY_NODE_ID", SETTING_OPTIONAL, FIELD(node_id), NULL, 0, 0, "",
	  "this node's name in the cluster (unique per node); unset: <hostname>:<port>" },
	{ "redis_max_backlog", "PARLEY_REDIS_MAX_BACKLOG", SETTING_SIZE, FIELD(redis_max_backlog),
	  "64MiB", 65536, 4294967296LL, " (bytes)",
	  "most broadcasts unsent to a slow Redis may hold; past it they stay on this node" },
	{ "redis_recovery_max_events", "PARLEY_REDIS_RECOVERY_MAX_EVENTS", SETTING_INT,
	  FIELD(redis_recovery_max_events), "10000", 1, 16777216, "",
	  "cluster mode: emits this node keeps in Redis for recoveries on another node (the "
	  "oldest go first; a session that missed one starts anew)" },
	{ "redis_recovery_max_bytes", "PARLEY_REDIS_RECOVERY_MAX_BYTES", SETTING_SIZE,
	  FIELD(redis_recovery_max_bytes), "16MiB", 1024, 1073741824, " (bytes)",
	  "cluster mode: bytes of emits this node keeps in Redis for recoveries on another node" },
	{ "redis_room_history", "PARLEY_REDIS_ROOM_HISTORY", SETTING_INT, FIELD(redis_room_history),
	  "1000", 1, 1000000, "",
	  "cluster mode: a room's latest broadcasts kept in Redis (for the recovery window) for "
	  "sessions whose node died; a session that missed more starts anew" },
	{ "map_size", "PARLEY_MAP_SIZE", SETTING_SIZE, FIELD(map_size), "4GiB",
	  1048576, 1099511627776LL, " (bytes)",
	  "most the database may hold, 1 MiB..1 TiB (the file grows as it fills)" },
	{ "frontend_url", "FRONTEND_URL", SETTING_OPTIONAL, FIELD(frontend_url), NULL, 0, 0, "",
	  "origins allowed to connect (CORS, WebSocket), comma-separated, * any; unset: any origin" },
	{ "jwt_secret", "JWT_SECRET", SETTING_SECRET, FIELD(jwt_secret), NULL, 16, 0, "",
	  "HS256 secret for client tokens, 16+ bytes; unset: development auth" },
	{ "api_key", "PARLEY_API_KEY", SETTING_OPTIONAL, FIELD(api_key), NULL, 0, 0, "",
	  "key for the HTTP API; unset: the HTTP API is refused" },
	{ "ping_interval", "PARLEY_PING_INTERVAL", SETTING_INT, FIELD(ping_interval_ms), "25000",
	  100, 3600000, " (ms)", "milliseconds between pings, 100..3600000" },
	{ "ping_timeout", "PARLEY_PING_TIMEOUT", SETTING_INT, FIELD(ping_timeout_ms), "20000",
	  100, 3600000, " (ms)", "milliseconds to wait for a pong, 100..3600000" },
	{ "max_payload", "PARLEY_MAX_PAYLOAD", SETTING_SIZE, FIELD(max_payload), "1000000",
	  64, 104857600, " (bytes)", "largest message in bytes, 64..104857600" },
	{ "max_buffer", "PARLEY_MAX_BUFFER", SETTING_SIZE, FIELD(max_buffer), "16MiB",
	  65536, 1073741824, " (bytes)",
	  "most queued for one connection that does not read; past it it is closed" },
	{ "max_binary_pending", "PARLEY_MAX_BINARY_PENDING", SETTING_SIZE, FIELD(max_binary_pending),
	  "4000000", 64, 4294967296LL, " (bytes)",
	  "most one connection's unfinished binary event may hold (payload and attachments)" },
	{ "max_binary_pending_total", "PARLEY_MAX_BINARY_PENDING_TOTAL", SETTING_SIZE,
	  FIELD(max_binary_pending_total), "256MiB", 64, 68719476736LL, " (bytes)",
	  "most every connection's unfinished binary events may hold together" },
	{ "binary_timeout", "PARLEY_BINARY_TIMEOUT", SETTING_INT, FIELD(binary_timeout_ms), "10000",
	  100, 600000, " (ms)",
	  "time an unfinished binary event waits for its next attachment, 100..600000 ms" },
	{ "max_user_sockets", "PARLEY_MAX_USER_SOCKETS", SETTING_INT, FIELD(max_user_sockets), "100",
	  0, 1000000, "", "sockets one user may have in a namespace, 0: no limit" },
	{ "max_rooms", "PARLEY_MAX_ROOMS", SETTING_INT, FIELD(max_rooms), "1000", 1, 1000000, "",
	  "rooms one socket may be in" },
	{ "max_args", "PARLEY_MAX_ARGS", SETTING_INT, FIELD(max_args), "64", 1, 4096, "",
	  "arguments one event or ack from a client may have, 1..4096" },
	{ "max_queued_events", "PARLEY_MAX_QUEUED_EVENTS", SETTING_INT, FIELD(max_queued_events),
	  "1000", 1, 1000000, "", "events of one socket that may wait behind its job waiting on a "
	  "read or its connected hooks" },
	{ "max_conns_per_ip", "PARLEY_MAX_CONNS_PER_IP", SETTING_INT, FIELD(max_conns_per_ip), "0",
	  0, 1000000, "", "TCP connections from one address, 0: no limit (behind a proxy)" },
	{ "connect_timeout", "PARLEY_CONNECT_TIMEOUT", SETTING_INT, FIELD(connect_timeout_ms), "10000",
	  100, 600000, " (ms)",
	  "time to finish a handshake (HTTP, WebSocket, Socket.IO CONNECT), 100..600000 ms" },
	{ "ws_compression", "PARLEY_WS_COMPRESSION", SETTING_INT, FIELD(ws_compression), "0", 0, 1, "",
	  "1: WebSocket messages of 1 KB and more compressed (permessage-deflate) for clients that offer it" },
	{ "shutdown_timeout", "PARLEY_SHUTDOWN_TIMEOUT", SETTING_INT, FIELD(shutdown_timeout_ms),
	  "3000", 100, 600000, " (ms)",
	  "most SIGTERM's drain may take (writes commit, clients are told), 100..600000 ms" },
	{ "script_timeout", "PARLEY_SCRIPT_TIMEOUT", SETTING_INT, FIELD(script_timeout_ms), "250",
	  10, 60000, " (ms)", "time one hook or handler may run before it is stopped, 10..60000 ms" },
	{ "script_memory", "PARLEY_SCRIPT_MEMORY", SETTING_SIZE, FIELD(script_memory), "64MiB",
	  1048576, 4294967296LL, " (bytes)",
	  "memory one hook or handler may add to the Lua heap, 1 MiB..4 GiB" },
	{ "http_max_response", "PARLEY_HTTP_MAX_RESPONSE", SETTING_SIZE, FIELD(http_max_response),
	  "1MiB", 1024, 1073741824, " (bytes)",
	  "largest answer a script's parley.http.request takes, 1 KiB..1 GiB (past it: \"too large\")" },
	{ "http_max_inflight", "PARLEY_HTTP_MAX_INFLIGHT", SETTING_INT, FIELD(http_max_inflight), "64",
	  1, 100000, "", "scripts' HTTP requests in flight at once; past it one is refused" },
	{ "push_url", "PARLEY_PUSH_URL", SETTING_OPTIONAL, FIELD(push_url), NULL, 0, 0, "",
	  "plugins/push: the webhook notified of messages to users with no socket (http or https)" },
	{ "push_secret", "PARLEY_PUSH_SECRET", SETTING_OPTIONAL, FIELD(push_secret), NULL, 0, 0, "",
	  "plugins/push: the key of the webhook's X-Parley-Signature (HMAC-SHA256)" },
	{ "bind", "PARLEY_BIND", SETTING_OPTIONAL, FIELD(bind), NULL, 0, 0, "",
	  "address the main port listens on (an IPv4 or IPv6 literal); unset: every address" },
	{ "metrics_addr", "PARLEY_METRICS_ADDR", SETTING_OPTIONAL, FIELD(metrics_addr), NULL, 0, 0,
	  "", "address:port that serves /metrics instead of the main port (e.g. 127.0.0.1:9100)" },
	{ "guard_socket_stops", "PARLEY_GUARD_SOCKET_STOPS", SETTING_INT, FIELD(guard_socket_stops),
	  "3", 1, 1000, "",
	  "guard stops of one socket's calls in a minute at which it is disconnected, 1..1000" },
	{ "guard_handler_stops", "PARLEY_GUARD_HANDLER_STOPS", SETTING_INT,
	  FIELD(guard_handler_stops), "5", 1, 1000, "",
	  "guard stops of one handler in a minute at which it is disabled until a reload, 1..1000" },
	{ "guard_throttle", "PARLEY_GUARD_THROTTLE", SETTING_INT, FIELD(guard_throttle_ms), "1000",
	  0, 60000, " (ms)",
	  "pause of a socket whose call the guard stopped, times its stops, 0..60000 ms" },
	{ "scripts", "PARLEY_SCRIPTS", SETTING_PATH, FIELD(scripts_dir), NULL, 0, 0, "",
	  "directory of the Lua scripts; unset: ./scripts if it holds init.lua, else the installed "
	  "ones (" PARLEY_SHARE_DIR "/scripts)" },
	{ "plugins", "PARLEY_PLUGINS", SETTING_PLUGINS, FIELD(plugins), "", 0, 0, "",
	  "plugins to enable, comma-separated (file: \"a,b\" or {\"a\",\"b\"})" },
	{ "plugin_path", "PARLEY_PLUGIN_PATH", SETTING_PATH, FIELD(plugin_path), NULL, 0, 0, "",
	  "directories searched for plugins, ';'-separated; unset: plugins;" PARLEY_SHARE_DIR
	  "/plugins" },
	{ "watch", "PARLEY_WATCH", SETTING_INT, FIELD(watch), "1", 0, 1, "",
	  "1: reload the scripts when one of their files changes; 0: on SIGHUP only" },
	{ "static", "PARLEY_STATIC", SETTING_OPTIONAL, FIELD(static_mount), NULL, 0, 0, "",
	  "files to serve: \"/prefix=directory\" (e.g. /app=examples/web); unset: none" },
	{ "recovery_window", "PARLEY_RECOVERY_WINDOW", SETTING_INT, FIELD(recovery_window_ms),
	  "120000", 0, 86400000, " (ms)",
	  "how long a dropped Socket.IO session can be recovered (its id, rooms and missed events), "
	  "0: off" },
	{ "recovery_max_events", "PARLEY_RECOVERY_MAX_EVENTS", SETTING_INT,
	  FIELD(recovery_max_events), "65536", 1, 16777216, "",
	  "emits the server keeps for recoveries (a broadcast is one, whatever its rooms); a "
	  "session that missed one the log dropped starts anew" },
	{ "recovery_max_bytes", "PARLEY_RECOVERY_MAX_BYTES", SETTING_SIZE, FIELD(recovery_max_bytes),
	  "67108864", 1024, 1073741824, " (bytes)",
	  "bytes of emits the server keeps for recoveries; a session that missed one the log "
	  "dropped starts anew" },
	{ "log", "PARLEY_LOG", SETTING_LOG, FIELD(log_level), "info", 0, 0, "",
	  "log level: error, warn, info or debug" },
	{ "log_format", "PARLEY_LOG_FORMAT", SETTING_OPTIONAL, FIELD(log_format), NULL, 0, 0, "",
	  "text (the default) or json: one JSON object per line (time, level, module, socket, user, "
	  "message)" },
};

#define SETTING_COUNT (sizeof(setting_table) / sizeof(setting_table[0]))

/* Writes "file: name: message", dropping the parts that are NULL. */
static void __attribute__((format(printf, 5, 6)))
config_fail(char *err, size_t errlen, const char *file, const char *name, const char *fmt, ...)
{
	va_list ap;
	size_t n = 0;
	int w;

	if (!err || errlen == 0)
		return;
	err[0] = '\0';
	if (file) {
		w = snprintf(err, errlen, "%s: ", file);
		n = w < 0 ? 0 : (size_t)w;
	}
	if (name && n < errlen) {
		w = snprintf(err + n, errlen - n, "%s: ", name);
		n += w < 0 ? 0 : (size_t)w;
	}
	if (n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - n, fmt, ap);
		va_end(ap);
	}
}

/* Parses a plain decimal integer: an optional '-', then digits, nothing else
 * (no spaces, '+', hex or trailing junk). Returns 0 or -EINVAL. */
static int config_parse_integer(const char *s, long long *out)
{
	const char *digits = s[0] == '-' ? s + 1 : s;
	char *end;

	if (*digits < '0' || *digits > '9')
		return -EINVAL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno == ERANGE || *end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

/* Parses a size: a decimal integer, then optionally a unit after optional
 * blanks: KiB, MiB, GiB, TiB (powers of 1024, as the README writes sizes),
 * kB, MB, GB, TB (powers of 1000) or B, in any case. "4GiB" and "4 GiB"
 * are 4294967296. Returns 0 or -EINVAL (a fraction, another unit, or a
 * value past what a long long holds). */
static int config_parse_size(const char *s, long long *out)
{
	static const struct { const char *unit; long long scale; } units[] = {
		{ "b", 1 }, { "kib", 1LL << 10 }, { "mib", 1LL << 20 }, { "gib", 1LL << 30 },
		{ "tib", 1LL << 40 }, { "kb", 1000LL }, { "mb", 1000000LL }, { "gb", 1000000000LL },
		{ "tb", 1000000000000LL },
	};
	size_t digits = strspn(s, "0123456789");
	const char *unit = s + digits;
	char number[32];
	long long n;

	if (digits == 0 || digits >= sizeof(number))
		return -EINVAL;
	memcpy(number, s, digits);
	number[digits] = '\0';
	if (config_parse_integer(number, &n) != 0)
		return -EINVAL;
	unit += strspn(unit, " ");
	if (*unit == '\0' && unit == s + digits) {
		*out = n;
		return 0;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(unit, units[i].unit) != 0)
			continue;
		if (n > LLONG_MAX / units[i].scale)
			return -EINVAL;
		*out = n * units[i].scale;
		return 0;
	}
	return -EINVAL;
}

/* True when `name` (len bytes) is a plugin name: [a-z0-9_-]+. */
static int config_is_plugin_name(const char *name, size_t len)
{
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char ch = name[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
			return 0;
	}
	return 1;
}

/* True when the comma-separated `list` already holds `name`. */
static int config_list_has(const char *list, const char *name, size_t len)
{
	const char *p = list;

	while (*p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if (n == len && memcmp(p, name, len) == 0)
			return 1;
		if (!comma)
			break;
		p = comma + 1;
	}
	return 0;
}

/* Checks a comma-separated plugin list and stores it as "a,b" (blanks around
 * names dropped) in *out, which the caller frees. Returns 0 or -EINVAL. */
static int config_parse_plugins(const char *value, char **out, const char *file,
				const char *name, char *err, size_t errlen)
{
	size_t cap = strlen(value) + 1;
	char *list = xmalloc(cap);
	size_t used = 0;
	const char *p = value;
	int rc = -EINVAL;

	list[0] = '\0';
	/* A value of only blanks is an empty list, not one empty name. */
	if (p[strspn(p, " \t")] == '\0') {
		rc = 0;
		goto out;
	}
	for (;;) {
		const char *end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		const char *stop = end;
		while (stop > p && (stop[-1] == ' ' || stop[-1] == '\t'))
			stop--;
		size_t len = (size_t)(stop - p);
		if (len == 0) {
			config_fail(err, errlen, file, name, "empty plugin name in \"%.*s\"",
				    CONFIG_QUOTE_MAX, value);
			goto out;
		}
		if (!config_is_plugin_name(p, len)) {
			config_fail(err, errlen, file, name,
				    "\"%.*s\" is not a plugin name (a-z, 0-9, '_' and '-')",
				    len > CONFIG_QUOTE_MAX ? CONFIG_QUOTE_MAX : (int)len, p);
			goto out;
		}
		if (config_list_has(list, p, len)) {
			config_fail(err, errlen, file, name, "plugin \"%.*s\" is listed twice",
				    (int)len, p);
			goto out;
		}
		/* The normalised list is never longer than the input. */
		if (used > 0)
			list[used++] = ',';
		memcpy(list + used, p, len);
		used += len;
		list[used] = '\0';
		if (*end == '\0')
			break;
		p = end + 1;
	}
	rc = 0;
out:
	if (rc == 0) {
		*out = list;
	} else {
		free(list);
	}
	return rc;
}

/* Replaces the string field at `field` with a copy of value[0..len), or NULL. */
static void config_set_string(char **field, const char *value, size_t len)
{
	free(*field);
	*field = value ? xstrndup(value, len) : NULL;
}

/* Checks `value` (len bytes) for setting `s` and stores it in `c`. `file` is
 * the config file or NULL; `name` is the file key or the environment name;
 * both prefix any message. Returns 0 or -EINVAL. */
static int config_apply(struct config *c, const struct setting *s, const char *value,
			size_t len, const char *file, const char *name, char *err, size_t errlen)
{
	char *base = (char *)c + s->offset;
	long long n;

	if (strlen(value) != len) {
		config_fail(err, errlen, file, name, "contains a NUL byte");
		return -EINVAL;
	}
	switch (s->type) {
	case SETTING_INT:
		if (config_parse_integer(value, &n) != 0 || n < s->min || n > s->max) {
			config_fail(err, errlen, file, name, "\"%.*s\" is not an integer in %lld..%lld%s",
				    CONFIG_QUOTE_MAX, value, s->min, s->max, s->unit);
			return -EINVAL;
		}
		*(int *)base = (int)n;
		return 0;
	case SETTING_SIZE:
		if (config_parse_size(value, &n) != 0 || n < s->min || n > s->max) {
			config_fail(err, errlen, file, name,
				    "\"%.*s\" is not a size in %lld..%lld bytes (a number of bytes, "
				    "or with a unit: KiB, MiB, GiB, TiB; kB, MB, GB, TB)",
				    CONFIG_QUOTE_MAX, value, s->min, s->max);
			return -EINVAL;
		}
		*(size_t *)base = (size_t)n;
		return 0;
	case SETTING_PATH:
		if (len == 0) {
			config_fail(err, errlen, file, name, "must not be empty");
			return -EINVAL;
		}
		config_set_string((char **)base, value, len);
		return 0;
	case SETTING_OPTIONAL:
		config_set_string((char **)base, len ? value : NULL, len);
		return 0;
	case SETTING_SECRET:
		/* The value is a secret: messages give its length, never its bytes. */
		if (len > 0 && len < (size_t)s->min) {
			config_fail(err, errlen, file, name,
				    "too short (%zu bytes): an HS256 secret needs at least %lld bytes",
				    len, s->min);
			return -EINVAL;
		}
		config_set_string((char **)base, len ? value : NULL, len);
		return 0;
	case SETTING_PLUGINS: {
		char *list;
		if (config_parse_plugins(value, &list, file, name, err, errlen) != 0)
			return -EINVAL;
		free(*(char **)base);
		*(char **)base = list;
		return 0;
	}
	case SETTING_LOG: {
		int level = log_level_parse(value);
		if (level < 0) {
			config_fail(err, errlen, file, name,
				    "\"%.*s\" is not a log level (error, warn, info or debug)",
				    CONFIG_QUOTE_MAX, value);
			return -EINVAL;
		}
		*(int *)base = level;
		return 0;
	}
	}
	return -EINVAL;
}

/* Joins the array of plugin names on top of L's stack into "a,b" in *out
 * (caller frees). Each element must be a plugin name. Returns 0 or -EINVAL. */
static int config_join_plugins(lua_State *L, char **out, const char *file, char *err,
			       size_t errlen)
{
	int t = lua_gettop(L);
	size_t count = lua_objlen(L, t);
	size_t entries = 0;
	size_t used = 0;
	char *list = xmalloc(1);
	int rc = -EINVAL;

	list[0] = '\0';
	/* Only the keys 1..n may be present: anything else is not a list. */
	lua_pushnil(L);
	while (lua_next(L, t)) {
		entries++;
		lua_pop(L, 1);
	}
	if (entries != count) {
		config_fail(err, errlen, file, "plugins",
			    "expected a string or an array of strings");
		goto out;
	}
	for (size_t i = 1; i <= count; i++) {
		size_t len;
		lua_rawgeti(L, t, (int)i);
		if (lua_type(L, -1) != LUA_TSTRING) {
			config_fail(err, errlen, file, "plugins", "element %zu is a %s, not a string",
				    i, luaL_typename(L, -1));
			goto out;
		}
		const char *name = lua_tolstring(L, -1, &len);
		/* Checked here so an element such as "a,b" cannot pass as two names. */
		if (!config_is_plugin_name(name, len)) {
			config_fail(err, errlen, file, "plugins",
				    "\"%.*s\" is not a plugin name (a-z, 0-9, '_' and '-')",
				    CONFIG_QUOTE_MAX, name);
			goto out;
		}
		list = xrealloc(list, used + len + 2);
		if (used > 0)
			list[used++] = ',';
		memcpy(list + used, name, len);
		used += len;
		list[used] = '\0';
		lua_pop(L, 1);
	}
	rc = 0;
out:
	lua_settop(L, t);
	if (rc == 0) {
		*out = list;
	} else {
		free(list);
	}
	return rc;
}

/* Applies the value on top of L's stack to setting `s`. Returns 0 or -EINVAL. */
static int config_apply_lua(struct config *c, const struct setting *s, lua_State *L,
			    const char *file, char *err, size_t errlen)
{
	int type = lua_type(L, -1);
	const char *value;
	size_t len;

	if (s->type == SETTING_PLUGINS && type == LUA_TTABLE) {
		char *list;
		int rc;
		if (config_join_plugins(L, &list, file, err, errlen) != 0)
			return -EINVAL;
		rc = config_apply(c, s, list, strlen(list), file, s->key, err, errlen);
		free(list);
		return rc;
	}
	if ((s->type == SETTING_INT || s->type == SETTING_SIZE) && type == LUA_TNUMBER) {
		/* Through the decimal parser, so 1.5 or 1e99 get the usual message. */
		lua_pushvalue(L, -1);
		value = lua_tolstring(L, -1, &len);
		int rc = config_apply(c, s, value, len, file, s->key, err, errlen);
		lua_pop(L, 1);
		return rc;
	}
	if (type != LUA_TSTRING) {
		config_fail(err, errlen, file, s->key, "expected %s, got a %s",
			    s->type == SETTING_INT ? "an integer"
			    : s->type == SETTING_SIZE ? "a size (an integer, or a string: \"4GiB\")"
			    : s->type == SETTING_PLUGINS ? "a string or an array of strings"
			    : "a string",
			    lua_typename(L, type));
		return -EINVAL;
	}
	value = lua_tolstring(L, -1, &len);
	return config_apply(c, s, value, len, file, s->key, err, errlen);
}

/* Applies every key of the table on top of L's stack. Returns 0 or -EINVAL. */
static int config_apply_table(struct config *c, lua_State *L, const char *file, char *err,
			      size_t errlen)
{
	int t = lua_gettop(L);

	lua_pushnil(L);
	while (lua_next(L, t)) {
		const struct setting *s = NULL;
		size_t len;

		if (lua_type(L, -2) != LUA_TSTRING) {
			config_fail(err, errlen, file, NULL,
				    "setting names must be strings, found a %s key",
				    luaL_typename(L, -2));
			return -EINVAL;
		}
		const char *key = lua_tolstring(L, -2, &len);
		if (strlen(key) == len && strcmp(key, "plugin_config") == 0) {
			/* Read by the Lua runtime when it loads plugins, not here. */
			if (lua_type(L, -1) != LUA_TTABLE) {
				config_fail(err, errlen, file, "plugin_config",
					    "expected a table, got a %s", luaL_typename(L, -1));
				return -EINVAL;
			}
			lua_pop(L, 1);
			continue;
		}
		for (size_t i = 0; i < SETTING_COUNT && strlen(key) == len; i++)
			if (strcmp(key, setting_table[i].key) == 0)
				s = &setting_table[i];
		if (!s) {
			config_fail(err, errlen, file, NULL, "unknown setting \"%.*s\" (see --help)",
				    CONFIG_QUOTE_MAX, key);
			return -EINVAL;
		}
		if (config_apply_lua(c, s, L, file, err, errlen) != 0)
			return -EINVAL;
		lua_pop(L, 1);
	}
	return 0;
}

struct config_reader {
	FILE *fp;
	int error;             /* errno of a failed read, or 0 */
	char buf[4096];
};

static const char *config_read_chunk(lua_State *L, void *data, size_t *size)
{
	struct config_reader *r = data;

	(void)L;
	*size = fread(r->buf, 1, sizeof(r->buf), r->fp);
	if (*size == 0 && ferror(r->fp))
		r->error = errno ? errno : EIO;
	return *size ? r->buf : NULL;
}

/* Stops a config file that runs too long; the error unwinds to lua_pcall. */
static void config_on_budget(lua_State *L, lua_Debug *ar)
{
	lua_getinfo(L, "Sl", ar);
	luaL_error(L, "%s:%d: runs for over %d instructions; a config file should only build a table",
		   ar->short_src, ar->currentline, CONFIG_MAX_INSTRUCTIONS);
}

/* Reads the config file, if any, into `c`. Returns 0 or -EINVAL. */
static int config_load_file(struct config *c, char *err, size_t errlen)
{
	const char *path = getenv("PARLEY_CONFIG");
	int required = path && *path;
	struct config_reader *reader = NULL;
	lua_State *L = NULL;
	FILE *fp = NULL;
	int rc = -EINVAL;

	if (!required)
		path = CONFIG_DEFAULT_FILE;
	fp = fopen(path, "r");
	if (!fp) {
		if (!required && errno == ENOENT) {
			rc = 0;
			goto out;
		}
		config_fail(err, errlen, required ? "PARLEY_CONFIG" : NULL, NULL,
			    "cannot open \"%s\": %s", path, strerror(errno));
		goto out;
	}
	c->config_file = xstrdup(path);
	L = luaL_newstate();
	if (!L) {
		config_fail(err, errlen, path, NULL, "cannot create a Lua state");
		goto out;
	}
	/* No library is opened: the file builds a table and nothing else. The
	 * interpreter runs it, because LuaJIT skips hooks in compiled loops. */
	luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
	lua_sethook(L, config_on_budget, LUA_MASKCOUNT, CONFIG_MAX_INSTRUCTIONS);

	reader = xcalloc(1, sizeof(*reader));
	reader->fp = fp;
	const char *chunkname = lua_pushfstring(L, "@%s", path);
	/* Mode "t": text only, a precompiled chunk is refused. */
	int status = lua_loadx(L, config_read_chunk, reader, chunkname, "t");
	if (reader->error) {
		config_fail(err, errlen, path, NULL, "cannot read: %s", strerror(reader->error));
		goto out;
	}
	if (status == 0)
		status = lua_pcall(L, 0, 1, 0);
	if (status != 0) {
		/* Lua's messages mostly start with "file:line:"; the rest get the
		 * file name here. */
		const char *msg = lua_tostring(L, -1);
		size_t plen = strlen(path);
		if (!msg)
			msg = "error without a message";
		if (strncmp(msg, path, plen) == 0 && msg[plen] == ':')
			config_fail(err, errlen, NULL, NULL, "%s", msg);
		else
			config_fail(err, errlen, path, NULL, "%s", msg);
		goto out;
	}
	if (lua_type(L, -1) != LUA_TTABLE) {
		config_fail(err, errlen, path, NULL,
			    "must return a table of settings (return { port = 3000 }), it returned %s",
			    lua_isnil(L, -1) ? "nothing" : luaL_typename(L, -1));
		goto out;
	}
	rc = config_apply_table(c, L, path, err, errlen);
out:
	if (L)
		lua_close(L);
	if (fp)
		fclose(fp);
	free(reader);
	return rc;
}

/* One attachment may be as large as a message, and the server's cap holds
 * at least one connection's. */
static int config_check_binary(const struct config *c, char *err, size_t errlen)
{
	if (c->max_binary_pending < c->max_payload) {
		config_fail(err, errlen, NULL, "PARLEY_MAX_BINARY_PENDING",
			    "%zu is below PARLEY_MAX_PAYLOAD (%zu): one attachment could not arrive",
			    c->max_binary_pending, c->max_payload);
		return -EINVAL;
	}
	if (c->max_binary_pending_total < c->max_binary_pending) {
		config_fail(err, errlen, NULL, "PARLEY_MAX_BINARY_PENDING_TOTAL",
			    "%zu is below PARLEY_MAX_BINARY_PENDING (%zu)", c->max_binary_pending_total,
			    c->max_binary_pending);
		return -EINVAL;
	}
	return 0;
}

/* PARLEY_STATIC is "/prefix=directory": a prefix of its own (not one of
 * parley's paths) and a directory that exists. Checked once every source
 * is read, so the message names both places the value may come from. */
#define STATIC_NAMES "PARLEY_STATIC (file key static)"
static int config_check_static(const struct config *c, char *err, size_t errlen)
{
	static const char *const taken[] = { "/socket.io", "/api", "/messages", "/healthz",
					     "/metrics" };
	const char *v = c->static_mount, *eq;
	struct stat st;

	if (!v)
		return 0;
	eq = strchr(v, '=');
	if (v[0] != '/' || !eq || eq == v + 1 || !eq[1] || eq - v > 100) {
		config_fail(err, errlen, NULL, STATIC_NAMES,
			    "expected \"/prefix=directory\", got \"%.*s\"", CONFIG_QUOTE_MAX, v);
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
		size_t n = strlen(taken[i]);
		if ((size_t)(eq - v) >= n && strncmp(v, taken[i], n) == 0) {
			config_fail(err, errlen, NULL, STATIC_NAMES, "%s is parley's own path", taken[i]);
			return -EINVAL;
		}
	}
	if (stat(eq + 1, &st) != 0 || !S_ISDIR(st.st_mode)) {
		config_fail(err, errlen, NULL, STATIC_NAMES, "%s is not a directory", eq + 1);
		return -EINVAL;
	}
	return 0;
}

/* Whether `v` is an IPv4 or IPv6 literal ("[::1]" too), as ws_bind takes. */
static int config_is_address(const char *v, size_t len)
{
	char text[INET6_ADDRSTRLEN + 1];
	unsigned char bytes[sizeof(struct in6_addr)];

	if (len >= 2 && v[0] == '[' && v[len - 1] == ']') {
		v++;
		len -= 2;
	}
	if (len == 0 || len >= sizeof(text))
		return 0;
	memcpy(text, v, len);
	text[len] = '\0';
	return inet_pton(AF_INET6, text, bytes) == 1 || inet_pton(AF_INET, text, bytes) == 1;
}

/* PARLEY_BIND is an address, PARLEY_METRICS_ADDR an address:port, and
 * PARLEY_LOG_FORMAT text or json: refused at start, naming the setting,
 * rather than found out when parley listens. */
static int config_check_listen(const struct config *c, char *err, size_t errlen)
{
	const char *m = c->metrics_addr, *colon;
	char *end;
	long port;

	if (c->bind && !config_is_address(c->bind, strlen(c->bind))) {
		config_fail(err, errlen, NULL, "PARLEY_BIND (file key bind)",
			    "\"%.*s\" is not an IPv4 or IPv6 address", CONFIG_QUOTE_MAX, c->bind);
		return -EINVAL;
	}
	if (m) {
		colon = strrchr(m, ':');
		errno = 0;
		port = colon ? strtol(colon + 1, &end, 10) : 0;
		if (!colon || !config_is_address(m, (size_t)(colon - m)) || errno || *end ||
		    end == colon + 1 || port < 1 || port > 65535) {
			config_fail(err, errlen, NULL, "PARLEY_METRICS_ADDR (file key metrics_addr)",
				    "expected address:port (e.g. 127.0.0.1:9100), got \"%.*s\"",
				    CONFIG_QUOTE_MAX, m);
			return -EINVAL;
		}
	}
	if (c->log_format && strcmp(c->log_format, "text") != 0 &&
	    strcmp(c->log_format, "json") != 0) {
		config_fail(err, errlen, NULL, "PARLEY_LOG_FORMAT (file key log_format)",
			    "\"%.*s\" is neither text nor json", CONFIG_QUOTE_MAX, c->log_format);
		return -EINVAL;
	}
	return 0;
}

/* The share directory beside the running binary (<bin>/../share/parley):
 * an install unpacked under another root (dpkg -x, cmake --install
 * --prefix) still finds its scripts. Writes it into `out`; returns 0 or
 * -ENOENT. */
static int config_share_beside_binary(char *out, size_t outlen)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return -ENOENT;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	if (snprintf(out, outlen, "%s/../share/parley", exe) >= (int)outlen)
		return -ENOENT;
	return 0;
}

/* Whether `dir` holds a scripts list (init.lua). */
static int config_has_scripts(const char *dir)
{
	char file[PATH_MAX];
	struct stat st;

	return snprintf(file, sizeof(file), "%s/init.lua", dir) < (int)sizeof(file) &&
	       stat(file, &st) == 0 && S_ISREG(st.st_mode);
}

/* Fills in the scripts folder and the plugin path when no source set them:
 * ./scripts when the working directory has one (a checkout), else the
 * installed ones (PARLEY_SHARE_DIR, or the share directory beside the
 * binary). Returns 0, or -ENOENT with a message saying what to set. */
static int config_find_scripts(struct config *c, char *err, size_t errlen)
{
	char beside[PATH_MAX], dir[PATH_MAX + 16];
	const char *found = NULL;
	int have_beside = config_share_beside_binary(beside, sizeof(beside)) == 0;

	if (!have_beside)
		beside[0] = '\0';

	if (!c->scripts_dir) {
		if (config_has_scripts("scripts")) {
			found = "scripts";
		} else if (config_has_scripts(PARLEY_SHARE_DIR "/scripts")) {
			found = PARLEY_SHARE_DIR "/scripts";
		} else if (have_beside) {
			snprintf(dir, sizeof(dir), "%s/scripts", beside);
			if (config_has_scripts(dir))
				found = dir;
		}
		if (!found) {
			config_fail(err, errlen, NULL, "PARLEY_SCRIPTS",
				    "no scripts found (no init.lua in ./scripts nor in %s/scripts%s%s%s): "
				    "set PARLEY_SCRIPTS (file key scripts) to the folder of parley's Lua "
				    "scripts", PARLEY_SHARE_DIR, have_beside ? " nor in " : "",
				    have_beside ? beside : "", have_beside ? "/scripts" : "");
			return -ENOENT;
		}
		c->scripts_dir = xstrdup(found);
	}
	if (!c->plugin_path) {
		/* A search path: a folder missing from it is skipped. */
		const char *head = "plugins;" PARLEY_SHARE_DIR "/plugins";
		size_t cap = strlen(head) + strlen(beside) + sizeof(";/plugins");
		c->plugin_path = xmalloc(cap);
		snprintf(c->plugin_path, cap, "%s%s%s%s", head, have_beside ? ";" : "",
			 have_beside ? beside : "", have_beside ? "/plugins" : "");
	}
	return 0;
}

/* Fills `c` (zeroed) from the defaults, the config file and the environment.
 * Returns 0 or -EINVAL with a message in `err`. */
/* PARLEY_STORE: unset or "lmdb" (then NULL: LMDB), or a PostgreSQL URI.
 * The value is not quoted back: a URI may hold a password. */
static int config_check_store(struct config *c, char *err, size_t errlen)
{
	if (!c->store)
		return 0;
	if (strcmp(c->store, "lmdb") == 0) {
		free(c->store);
		c->store = NULL;
		return 0;
	}
	if (strncmp(c->store, "postgresql://", 13) == 0 || strncmp(c->store, "postgres://", 11) == 0)
		return 0;
	config_fail(err, errlen, NULL, "PARLEY_STORE (file key store)",
		    "expected lmdb, or a PostgreSQL URI starting with postgresql:// or postgres://");
	return -EINVAL;
}

/* PARLEY_REDIS: a redis:// or unix:// URI (cluster_open reads the rest),
 * and only with the shared store: nodes on LMDB would each keep their own
 * messages. PARLEY_NODE_ID: printable, at most 200 bytes. */
static int config_check_cluster(struct config *c, char *err, size_t errlen)
{
	if (c->node_id) {
		size_t len = strlen(c->node_id);
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)c->node_id[i] <= ' ' || c->node_id[i] == 0x7f)
				len = 0;
		if (!len || len > 200) {
			config_fail(err, errlen, NULL, "PARLEY_NODE_ID (file key node_id)",
				    "expected 1..200 printable characters without spaces");
			return -EINVAL;
		}
	}
	if (!c->redis)
		return 0;
	if (strncmp(c->redis, "redis://", 8) != 0 && strncmp(c->redis, "unix://", 7) != 0) {
		config_fail(err, errlen, NULL, "PARLEY_REDIS (file key redis)",
			    "expected redis://host[:port][/db] or unix:///path.sock");
		return -EINVAL;
	}
	if (!c->store) {
		config_fail(err, errlen, NULL, NULL,
			    "cluster mode (PARLEY_REDIS) needs the shared store: "
			    "PARLEY_STORE=postgresql://...");
		return -EINVAL;
	}
	return 0;
}

static int config_read(struct config *c, char *err, size_t errlen)
{
	/* Defaults go through the same checks as every other source. */
	for (size_t i = 0; i < SETTING_COUNT; i++) {
		const struct setting *s = &setting_table[i];
		if (s->def && config_apply(c, s, s->def, strlen(s->def), "default", s->key,
					   err, errlen) != 0)
			return -EINVAL;
	}
	if (config_load_file(c, err, errlen) != 0)
		return -EINVAL;
	for (size_t i = 0; i < SETTING_COUNT; i++) {
		const struct setting *s = &setting_table[i];
		const char *value = getenv(s->env);
		/* An empty variable counts as unset, as in most shells' defaults. */
		if (!value || !*value)
			continue;
		if (config_apply(c, s, value, strlen(value), NULL, s->env, err, errlen) != 0)
			return -EINVAL;
	}
	if (config_check_store(c, err, errlen) != 0 || config_check_cluster(c, err, errlen) != 0 ||
	    config_check_static(c, err, errlen) != 0 ||
	    config_check_binary(c, err, errlen) != 0 ||
	    config_check_listen(c, err, errlen) != 0 || config_find_scripts(c, err, errlen) != 0)
		return -EINVAL;
	return 0;
}

int config_load(struct config *c, int argc, char **argv, char *err, size_t errlen)
{
	int rc = -EINVAL;

	memset(c, 0, sizeof(*c));
	if (err && errlen)
		err[0] = '\0';

	/* The command line is read first so that --help and --version work even
	 * when the settings are broken. */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			config_usage(stdout);
			rc = 1;
			goto out;
		}
		if (strcmp(argv[i], "--version") == 0) {
			printf("parley %s%s%s\n", PARLEY_VERSION,
			       PARLEY_SANITIZER[0] ? " sanitizer=" : "", PARLEY_SANITIZER);
			rc = 1;
			goto out;
		}
		config_fail(err, errlen, NULL, NULL, "unknown argument: %s (see --help)", argv[i]);
		goto out;
	}

	if (config_read(c, err, errlen) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		config_fini(c);
	return rc;
}

/* What a reload may change in place: each is read afresh where it is used
 * (the scripts at each load, the log level by every log call). The rest is
 * held by what started with it (the port's socket, the open store, the
 * limits the layers copied) and waits for a restart. */
static const char *const config_reloadable[] = { "scripts", "plugins", "plugin_path", "log" };

static int config_is_reloadable(const struct setting *s)
{
	for (size_t i = 0; i < sizeof(config_reloadable) / sizeof(config_reloadable[0]); i++)
		if (strcmp(s->key, config_reloadable[i]) == 0)
			return 1;
	return 0;
}

/* Whether setting `s` differs between `a` and `b`. */
static int config_differs(const struct setting *s, const struct config *a, const struct config *b)
{
	const char *pa = (const char *)a + s->offset, *pb = (const char *)b + s->offset;

	switch (s->type) {
	case SETTING_INT:
	case SETTING_LOG:
		return *(const int *)pa != *(const int *)pb;
	case SETTING_SIZE:
		return *(const size_t *)pa != *(const size_t *)pb;
	default: {
		const char *x = *(char *const *)pa, *y = *(char *const *)pb;
		return (x == NULL) != (y == NULL) || (x && strcmp(x, y) != 0);
	}
	}
}

/* Exchanges the values of setting `s` in `a` and `b`. */
static void config_swap(const struct setting *s, struct config *a, struct config *b)
{
	char *pa = (char *)a + s->offset, *pb = (char *)b + s->offset;

	switch (s->type) {
	case SETTING_INT:
	case SETTING_LOG: {
		int t = *(int *)pa;
		*(int *)pa = *(int *)pb;
		*(int *)pb = t;
		return;
	}
	case SETTING_SIZE: {
		size_t t = *(size_t *)pa;
		*(size_t *)pa = *(size_t *)pb;
		*(size_t *)pb = t;
		return;
	}
	default: {
		char *t = *(char **)pa;
		*(char **)pa = *(char **)pb;
		*(char **)pb = t;
		return;
	}
	}
}

int config_reload(struct config *c, char *err, size_t errlen)
{
	struct config next;
	char fixed[512];
	size_t used = 0;
	char *file;
	int rc;

	memset(&next, 0, sizeof(next));
	fixed[0] = '\0';
	rc = config_read(&next, err, errlen);
	if (rc != 0)
		goto out;
	for (size_t i = 0; i < SETTING_COUNT; i++) {
		const struct setting *s = &setting_table[i];
		int w;
		if (!config_differs(s, c, &next))
			continue;
		if (config_is_reloadable(s)) {
			/* Swapped: the old value goes with `next`. */
			config_swap(s, c, &next);
			continue;
		}
		w = snprintf(fixed + used, sizeof(fixed) - used, "%s%s (%s)", used ? ", " : "",
			     s->key, s->env);
		if (w > 0 && (size_t)w < sizeof(fixed) - used)
			used += (size_t)w;
	}
	if (used)
		log_warn("reload: %s changed, but cannot while parley runs: the running values "
			 "stay until a restart", fixed);
	/* The file read this time is the one the scripts read next. */
	file = c->config_file;
	c->config_file = next.config_file;
	next.config_file = file;
out:
	config_fini(&next);
	return rc;
}

void config_fini(struct config *c)
{
	if (!c)
		return;
	free(c->data_dir);
	free(c->store);
	free(c->redis);
	free(c->node_id);
	free(c->static_mount);
	free(c->bind);
	free(c->metrics_addr);
	free(c->log_format);
	free(c->frontend_url);
	free(c->jwt_secret);
	free(c->api_key);
	free(c->push_url);
	free(c->push_secret);
	free(c->scripts_dir);
	free(c->plugins);
	free(c->plugin_path);
	free(c->config_file);
	memset(c, 0, sizeof(*c));
}

void config_usage(FILE *out)
{
	fprintf(out,
		"usage: parley [--help | --version]\n"
		"       parley backup DIR   copy the database, compacted, into the new\n"
		"                           directory DIR: safe while parley runs\n"
		"\n"
		"Settings: each comes from the environment or from the config file.\n"
		"  %-21s %-14s %-9s %s\n",
		"ENVIRONMENT", "FILE KEY", "DEFAULT", "MEANING");
	for (size_t i = 0; i < SETTING_COUNT; i++) {
		const struct setting *s = &setting_table[i];
		fprintf(out, "  %-21s %-14s %-9s %s\n", s->env, s->key,
			!s->def ? "(unset)" : !*s->def ? "(none)" : s->def, s->meaning);
	}
	fprintf(out,
		"  %-21s %-14s %-9s %s\n"
		"\n"
		"Precedence: built-in defaults < config file < environment. An empty\n"
		"environment variable counts as unset. The config file is Lua run as data\n"
		"(no libraries) and returns a table keyed by the FILE KEY names, e.g.\n"
		"  return { port = 8080, map_size = \"4GiB\", plugins = { \"reactions\" },\n"
		"    plugin_config = { reactions = { max_emoji_bytes = 16 },\n"
		"                      chat = { presence_grace_ms = 3000 } } }\n"
		"where plugin_config holds the settings of each enabled plugin and default\n"
		"script (chat, messages), checked against its schema; a key naming neither\n"
		"is refused. Sizes are bytes, or a number with KiB, MiB, GiB or TiB.\n"
		"\n"
		"One process per data directory: parley locks PARLEY_DATA_DIR/parley.lock,\n"
		"and a second process on the same directory (by any path) exits 1 naming\n"
		"the pid that holds it. Give each process its own directory; several\n"
		"processes on one store need the shared store (PostgreSQL, PARLEY_STORE),\n"
		"with which parley neither locks nor uses the data directory.\n"
		"\n"
		"Signals: SIGHUP (or a change of a script or of the config file, with\n"
		"PARLEY_WATCH=1) reads the settings again and reloads the scripts: the\n"
		"scripts folder, plugins, plugin_path, plugin_config and the log level\n"
		"take effect; a change of any other setting (the port, the store, the\n"
		"limits) is named in a warning and waits for a restart. A broken config\n"
		"file is refused and everything runs on as it was. Ignored once a\n"
		"shutdown began.\n"
		"SIGTERM drains (no new connections, in-flight writes committed, clients\n"
		"told) and exits 0.\n",
		"PARLEY_CONFIG", "-", "-", "config file to read; unset: " CONFIG_DEFAULT_FILE
		" if it exists");
}
