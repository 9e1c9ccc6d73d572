/* settings.h - what every layer reads of the running server: its settings,
 * which the app fills once at start (config.c: defaults, the config file,
 * the environment) and nothing changes after; and where the server is in
 * its life, which the app moves on (a stop signal, then the drain).
 *
 * The settings are one struct read in place, not a copy handed to each
 * module at init: they are many, every layer reads a few (the Lua seam
 * most), and one struct is one place to add a setting. Below the app they
 * are read only. */
#ifndef PARLEY_SETTINGS_H
#define PARLEY_SETTINGS_H

#include <signal.h>
#include <stddef.h>

struct config {
	int port;                /* PORT, 3000 */
	char *data_dir;          /* PARLEY_DATA_DIR, "./data" */
	char *store;             /* PARLEY_STORE, NULL (LMDB) or a postgresql:// URI */
	int pg_max_queue;        /* PARLEY_PG_MAX_QUEUE, 100000: store calls queued on PostgreSQL */
	int pg_writers;          /* PARLEY_PG_WRITERS, 2: connections to PostgreSQL */
	char *redis;             /* PARLEY_REDIS, NULL; a redis:// or unix:// URI: cluster mode */
	char *node_id;           /* PARLEY_NODE_ID, NULL: "<hostname>:<port>" */
	size_t redis_max_backlog; /* PARLEY_REDIS_MAX_BACKLOG, 64 MiB unsent to Redis at most */
	int redis_recovery_max_events; /* PARLEY_REDIS_RECOVERY_MAX_EVENTS, 10000 per node in Redis */
	size_t redis_recovery_max_bytes; /* PARLEY_REDIS_RECOVERY_MAX_BYTES, 16 MiB per node */
	int redis_room_history;  /* PARLEY_REDIS_ROOM_HISTORY, 1000 broadcasts per room in Redis */
	size_t map_size;         /* PARLEY_MAP_SIZE, 4 GiB */
	char *frontend_url;      /* FRONTEND_URL, NULL = any origin (dev) */
	char *jwt_secret;        /* JWT_SECRET, NULL = dev auth */
	char *api_key;           /* PARLEY_API_KEY, NULL = HTTP API refused */
	int ping_interval_ms;    /* PARLEY_PING_INTERVAL, 25000 */
	int ping_timeout_ms;     /* PARLEY_PING_TIMEOUT, 20000 */
	size_t max_payload;      /* PARLEY_MAX_PAYLOAD, 1000000 bytes */
	size_t max_buffer;       /* PARLEY_MAX_BUFFER, 16 MiB queued for one connection */
	size_t max_binary_pending; /* PARLEY_MAX_BINARY_PENDING, 4000000: a binary event's
				    * payload and attachments held until complete */
	size_t max_binary_pending_total; /* PARLEY_MAX_BINARY_PENDING_TOTAL, 256 MiB: the
					  * same, every connection's together */
	int binary_timeout_ms;   /* PARLEY_BINARY_TIMEOUT, 10000: wait for the next attachment */
	int max_user_sockets;    /* PARLEY_MAX_USER_SOCKETS, 100 per user and namespace */
	int max_rooms;           /* PARLEY_MAX_ROOMS, 1000 per socket */
	int max_args;            /* PARLEY_MAX_ARGS, 64 arguments of one event or ack */
	int max_queued_events;   /* PARLEY_MAX_QUEUED_EVENTS, 1000 events of one socket behind its waiting job */
	int max_conns_per_ip;    /* PARLEY_MAX_CONNS_PER_IP, 0 = unlimited */
	int connect_timeout_ms;  /* PARLEY_CONNECT_TIMEOUT, 10000 */
	int ws_compression;      /* PARLEY_WS_COMPRESSION, 0: permessage-deflate off */
	int shutdown_timeout_ms; /* PARLEY_SHUTDOWN_TIMEOUT, 3000: the drain's bound */
	int script_timeout_ms;   /* PARLEY_SCRIPT_TIMEOUT, 250 */
	size_t script_memory;    /* PARLEY_SCRIPT_MEMORY, 64 MiB */
	size_t http_max_response; /* PARLEY_HTTP_MAX_RESPONSE, 1 MiB: a script's HTTP answer */
	int http_max_inflight;   /* PARLEY_HTTP_MAX_INFLIGHT, 64 script HTTP requests at once */
	char *push_url;          /* PARLEY_PUSH_URL, NULL: plugins/push's webhook */
	char *push_secret;       /* PARLEY_PUSH_SECRET, NULL: plugins/push's HMAC key */
	char *bind;              /* PARLEY_BIND, NULL: every address */
	char *metrics_addr;      /* PARLEY_METRICS_ADDR, NULL: /metrics on the main port */
	int guard_socket_stops;  /* PARLEY_GUARD_SOCKET_STOPS, 3 a minute: the socket is cut off */
	int guard_handler_stops; /* PARLEY_GUARD_HANDLER_STOPS, 5 a minute: the handler is disabled */
	int guard_throttle_ms;   /* PARLEY_GUARD_THROTTLE, 1000: a stopped socket's pause, per stop */
	char *scripts_dir;       /* PARLEY_SCRIPTS, "scripts" */
	char *plugins;           /* PARLEY_PLUGINS, "" (comma-separated names) */
	char *plugin_path;       /* PARLEY_PLUGIN_PATH, "plugins" (';'-separated dirs) */
	int watch;               /* PARLEY_WATCH, 1: reload when a script file changes */
	char *static_mount;      /* PARLEY_STATIC, NULL; "/prefix=directory": files served */
	int recovery_window_ms;  /* PARLEY_RECOVERY_WINDOW, 120000; 0 = no recovery */
	int recovery_max_events; /* PARLEY_RECOVERY_MAX_EVENTS, 65536 emits kept server-wide */
	size_t recovery_max_bytes; /* PARLEY_RECOVERY_MAX_BYTES, 64 MiB kept server-wide */
	int log_level;           /* PARLEY_LOG, info */
	char *log_format;        /* PARLEY_LOG_FORMAT, NULL (text) or "text" / "json" */
	char *config_file;       /* the file that was read, or NULL */
};

/* The settings in force: config_load fills them before anything starts,
 * and config_fini releases them after everything stopped. */
extern struct config settings;

/* Where the server is in its life. The app writes it; the layers below
 * read it to refuse new work and to tell a closing peer why. */
struct life {
	/* SIGTERM or SIGINT came (set in the signal handler): what closes
	 * from now on closes "going away" (1001). */
	volatile sig_atomic_t stopping;
	/* The drain has begun (server.c): new sessions, namespace connects,
	 * events, upgrades and API requests are refused with 503. */
	int draining;
};
extern struct life life;

#endif
