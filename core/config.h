/* config.h - parley's settings (SPEC §6): built-in defaults, then the config
 * file (parley.conf.lua, or the file PARLEY_CONFIG names), then the
 * environment. Every value is checked; a bad one is refused with its name. */
#ifndef PARLEY_CONFIG_H
#define PARLEY_CONFIG_H

#include <stddef.h>
#include <stdio.h>

struct config {
	int port;                /* PORT, 3000 */
	char *data_dir;          /* PARLEY_DATA_DIR, "./data" */
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
	int max_conns_per_ip;    /* PARLEY_MAX_CONNS_PER_IP, 0 = unlimited */
	int connect_timeout_ms;  /* PARLEY_CONNECT_TIMEOUT, 10000 */
	int shutdown_timeout_ms; /* PARLEY_SHUTDOWN_TIMEOUT, 3000: the drain's bound */
	int script_timeout_ms;   /* PARLEY_SCRIPT_TIMEOUT, 250 */
	size_t script_memory;    /* PARLEY_SCRIPT_MEMORY, 64 MiB */
	char *scripts_dir;       /* PARLEY_SCRIPTS, "scripts" */
	char *plugins;           /* PARLEY_PLUGINS, "" (comma-separated names) */
	char *plugin_path;       /* PARLEY_PLUGIN_PATH, "plugins" (';'-separated dirs) */
	int watch;               /* PARLEY_WATCH, 1: reload when a script file changes */
	char *static_mount;      /* PARLEY_STATIC, NULL; "/prefix=directory": files served */
	int log_level;           /* PARLEY_LOG, info */
	char *config_file;       /* the file that was read, or NULL */
};

/* Fills `c` from defaults, the config file and the environment, then the
 * command line (`--help`, `--version`). Returns 0 to run, 1 when the command
 * line asked only for help or the version (printed to stdout), or -1 with a
 * message in `err` naming the setting at fault. On -1 or 1, `c` is released. */
int config_load(struct config *c, int argc, char **argv, char *err, size_t errlen);

/* Releases the strings `c` owns. */
void config_fini(struct config *c);

/* Prints every setting with its environment name, default and meaning. */
void config_usage(FILE *out);

#endif
