#!/usr/bin/env bash
# pg.sh - a private PostgreSQL 15 for the tests (Debian's postgresql package,
# /usr/lib/postgresql/15/bin): `start DIR` makes a cluster in DIR (initdb on
# first use), starts it listening on a Unix socket in DIR only (no TCP), with
# fsync on as in production, and prints the base URI the harness takes
# (PARLEY_TEST_PG) - when it runs already, only prints it; `stop DIR` stops it (immediately: the tests' data is
# throwaway). PostgreSQL refuses to run as root: as root, DIR belongs to the
# `postgres` user and every command runs as it (runuser).
set -euo pipefail
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
cmd=${1:-}
dir=${2:-}
if [ -z "$dir" ] || { [ "$cmd" != start ] && [ "$cmd" != stop ]; }; then
	echo "usage: tests/pg.sh start|stop DIR" >&2
	exit 2
fi
[ -x "$bin/initdb" ] || { echo "pg.sh: no PostgreSQL in $bin (tests/deps.sh --test installs it)" >&2; exit 1; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
as=()
if [ "$(id -u)" -eq 0 ]; then
	chown postgres: "$dir"
	# The socket's directory must be reachable by the clients (root) and
	# the server (postgres) both.
	chmod 0755 "$dir"
	as=(runuser -u postgres --)
fi
data="$dir/data"
case "$cmd" in
start)
	if [ ! -f "$data/PG_VERSION" ]; then
		"${as[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust --no-sync -E UTF8 \
			--locale=C >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; exit 1; }
	fi
	# fsync on (the default, said for the reader): the tests are about
	# durability. Many tests each open a database: connections to spare.
	# Already running: only the URI.
	if ! "${as[@]}" "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		"${as[@]}" "$bin/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 \
			-o "-k $dir -c listen_addresses='' -c fsync=on -c max_connections=200" \
			start >/dev/null || { tail -n 20 "$dir/postgres.log" >&2; exit 1; }
	fi
	echo "postgresql://postgres@/postgres?host=$dir"
	;;
stop)
	if [ -f "$data/postmaster.pid" ]; then
		"${as[@]}" "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null
	fi
	;;
esac
