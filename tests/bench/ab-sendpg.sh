#!/usr/bin/env bash
# ab-sendpg.sh - run.sh's sendpg load (200 senders each alone in its room,
# window 8, parley's store on PostgreSQL) against several parley binaries in
# interleaved rounds: a private PostgreSQL (tests/pg.sh) pinned to core 1
# with the loadgen, each parley on core 0 with its own tree's scripts, a
# fresh database each run. Prints acks/s and the CPU per ack of parley and
# of PostgreSQL (all its processes); read the ratios within a round.
#
#   bash tests/bench/ab-sendpg.sh ROUNDS SECONDS LABEL=BINARY ...
#   bash tests/bench/ab-sendpg.sh 3 5 new=build/parley main=/tmp/base/build/parley
#
# The loadgen is this tree's (build/tests/bench/loadgen, as run.sh builds it).
set -u
[ $# -ge 3 ] || { sed -n '2,13p' "$0"; exit 2; }
ROUNDS=$1 DUR=$2; shift 2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOADGEN=$ROOT/build/tests/bench/loadgen
PORT=4391
PGD=$(mktemp -d /tmp/parley-ab-pg.XXXXXX)
URI=$(taskset -c 1 bash $ROOT/tests/pg.sh start $PGD)
PGPID=$(head -1 $PGD/data/postmaster.pid)
trap 'bash $ROOT/tests/pg.sh stop $PGD >/dev/null 2>&1; rm -rf $PGD' EXIT
. "$ROOT/tests/bench/lib.sh"
n=0
for round in $(seq $ROUNDS); do
	for spec in "$@"; do
		label=${spec%%=*} bin=${spec#*=}
		n=$((n+1))
		psql "$URI" -qXc "CREATE DATABASE ab_$n" >/dev/null
		db=${URI/\/postgres\?/\/ab_$n?}
		data=$(mktemp -d /tmp/parley-ab.XXXXXX)
		tree_parley "$bin" "$data" $PORT PARLEY_STORE="$db"
		spid=$SPID
		out=$(taskset -c 1 $LOADGEN --port $PORT --server-pid $spid --db-pid $PGPID --label $label \
			--mode send --clients 200 --room 1 --window 8 --duration $DUR 2>/dev/null | grep '^RESULT ')
		kill -TERM $spid; wait $spid 2>/dev/null
		rm -rf $data
		psql "$URI" -qXc "DROP DATABASE ab_$n WITH (FORCE)" >/dev/null
		acks=$(field acks_per_s "$out") cpu=$(field server_cpu_s "$out") dbc=$(field db_cpu_s "$out") d=$(field duration_s "$out")
		echo "round=$round $label acks_per_s=$acks server_us_per_ack=$(awk -v c=$cpu -v a=$acks -v t=$d 'BEGIN{printf "%.1f", 1e6*c/(a*t)}') pg_us_per_ack=$(awk -v c=$dbc -v a=$acks -v t=$d 'BEGIN{printf "%.1f", 1e6*c/(a*t)}') pg_cpu_s=$dbc err=$(field ack_err "$out") lost=$(field lost "$out") load=$(cut -d' ' -f1 /proc/loadavg)"
		echo "  $out"
	done
done
