/* main.c - parley's entry point: settings, the Lua scripts, the server loop,
 * and the signals that stop it. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/map.h"
#include "base/metrics.h"
#include "cluster/cluster.h"
#include "cluster/sessions.h"
#include "cluster/presence.h"
#include "lua/script.h"
#include "proto/route.h"
#include "server.h"
#include "store/messages.h"
#include "store/pg_copy.h"
#include "store/pg.h"
#include "store/pg_schema.h"
#include "store/store.h"

static void on_stop_signal(int sig)
{
	(void)sig;
	server_stop();
}

static void on_reload_signal(int sig)
{
	(void)sig;
	server_request_reload();
}

#ifndef PARLEY_VERSION
#define PARLEY_VERSION "0.1.0"
#endif

static long long one(void)
{
	return 1;
}

static struct metrics_value build_info = {
	.name = "parley_build_info{version=\"" PARLEY_VERSION "\"}",
	.help = "The running build: its version in the label, value 1.", .type = "gauge",
	.read = one,
};

/* `parley backup DIR`: a compacted copy of the data directory (the
 * settings' PARLEY_DATA_DIR) into the new directory DIR, safe while parley
 * runs on it (docs/deploy.md). Exits 0, or 1 with the reason. */
static int backup(int argc, char **argv)
{
	char err[512];
	int rc;

	if (argc != 3) {
		fprintf(stderr, "usage: parley backup DIR (a new directory; the data directory "
				"is PARLEY_DATA_DIR's)\n");
		return 2;
	}
	/* The settings say where the data is: the program name alone, so the
	 * command's own words are not read as options. */
	rc = config_load(&settings, 1, argv, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "parley: %s\n", err);
		return 2;
	}
	rc = store_backup(settings.data_dir, argv[2]);
	if (rc == 0)
		printf("parley: backed up %s to %s\n", settings.data_dir, argv[2]);
	config_fini(&settings);
	return rc == 0 ? 0 : 1;
}

/* `parley copy-store URI`: the LMDB store of PARLEY_DATA_DIR copied into the
 * PostgreSQL database URI, to move a server onto it (docs/storage-
 * postgresql.md); parley must not be running on the directory. Exits 0
 * when every count matches, else 1 with the reason. */
static int copy_store(int argc, char **argv)
{
	char err[512];
	int rc;

	if (argc != 3) {
		fprintf(stderr, "usage: parley copy-store postgresql://... (the LMDB store is "
				"PARLEY_DATA_DIR's)\n");
		return 2;
	}
	rc = config_load(&settings, 1, argv, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "parley: %s\n", err);
		return 2;
	}
	rc = pg_copy(settings.data_dir, settings.map_size, argv[2]);
	config_fini(&settings);
	return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	char err[512];
	int rc;

	if (argc > 1 && strcmp(argv[1], "backup") == 0)
		return backup(argc, argv);
	if (argc > 1 && strcmp(argv[1], "copy-store") == 0)
		return copy_store(argc, argv);
	rc = config_load(&settings, argc, argv, err, sizeof(err));
	if (rc == 1)
		return 0;
	if (rc < 0) {
		fprintf(stderr, "parley: %s\n", err);
		return 2;
	}
	log_threshold = (enum log_level)settings.log_level;
	log_json = settings.log_format && strcmp(settings.log_format, "json") == 0;
	map_seed();
	metrics_register(&build_info);
	signal(SIGPIPE, SIG_IGN);

	/* The data directory first: a second process on it stops here, before
	 * it takes a port or touches the store. On PostgreSQL the database is
	 * shared by design and the directory is not used. */
	if (!settings.store && store_claim(settings.data_dir) < 0) {
		rc = 1;
		goto out;
	}
	if (server_start() < 0) {
		rc = 1;
		goto out;
	}
	if (settings.store) {
		/* Unreachable, or a schema newer than ours: logged with the URI
		 * (its password masked), and we stop. */
		if (pg_open(settings.store, clock_loop, pg_migrations, pg_nmigrations, pg_statements,
			    pg_nstatements) < 0) {
			rc = 1;
			goto out;
		}
		route_set_store_check(pg_down);
		/* Cluster mode (config.c allows it only on PostgreSQL):
		 * Redis unreachable or too old at start stops us here. */
		if (settings.redis) {
			if (cluster_open(settings.redis, settings.node_id, settings.port) < 0) {
				rc = 1;
				goto out;
			}
			route_set_degraded_check(cluster_degraded);
			sessions_open();
			/* The cluster's decisions go to the scripts' presence
			 * hooks (the loop runs only after script_init). */
			presence_open(script_presence);
			presence_on_gone(script_node_gone);
		}
	} else if (store_open(settings.data_dir, settings.map_size, clock_loop) < 0 ||
		   messages_init() < 0) {
		rc = 1;
		goto out;
	}
	if (script_init(server_request_reload) < 0) {
		rc = 1;
		goto out;
	}
	signal(SIGINT, on_stop_signal);
	signal(SIGTERM, on_stop_signal);
	signal(SIGHUP, on_reload_signal);
	log_info("parley listening on port %d (scripts: %s%s%s)", settings.port,
		 settings.scripts_dir, settings.plugins && *settings.plugins ? ", plugins: " : "",
		 settings.plugins ? settings.plugins : "");
	server_run();
	/* From here the loop no longer runs and the lws context goes: a late
	 * signal has nothing to ask of them (and must not touch them). */
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	log_info("parley stopping");
	rc = 0;
out:
	/* Connections the drain left close first (their disconnect hooks may
	 * write), then the shutdown hooks write what lives only in memory, then
	 * the store commits what is left, then Lua and the loop go. */
	server_fini();
	script_shutdown();
	sessions_close();
	presence_close();
	cluster_close();
	pg_close();
	store_close();
	messages_fini();
	script_fini();
	server_loop_fini();
	metrics_fini();
	config_fini(&settings);
	return rc;
}
