#!/usr/bin/env bash
# ab-sendsplit.sh - run.sh's sendsplit load (200 senders each alone in its
# room, window 8, the store on LMDB, parley's store writer thread moved to
# the loadgen's core) against several parley binaries in interleaved
# rounds. Each parley runs on core 0 with its own tree's scripts and a
# fresh data directory. Prints acks/s and the CPU per ack of the loop
# thread and of the writer thread (from /proc/PID/task/TID/stat over the
# load); read the ratios within a round.
#
#   bash tests/bench/ab-sendsplit.sh ROUNDS SECONDS LABEL=BINARY ...
#   bash tests/bench/ab-sendsplit.sh 3 5 new=build/parley main=/tmp/base/build/parley
#
# The loadgen is this tree's (build/tests/bench/loadgen, as run.sh builds it).
set -u
[ $# -ge 3 ] || { sed -n '2,14p' "$0"; exit 2; }
ROUNDS=$1 DUR=$2; shift 2
[ "$DUR" -ge 4 ] || { echo "ab-sendsplit.sh: SECONDS must be 4 or more (1.5 s of warm-up, then the threads' CPU)" >&2; exit 2; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOADGEN=$ROOT/build/tests/bench/loadgen
PORT=${BENCH_PORT:-4391}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
field() { grep -o " $1=[-0-9.]*" <<<"$2" | head -1 | cut -d= -f2; }
ticks() { awk '{ print $14 + $15 }' "$1" 2>/dev/null || echo 0; }   # utime + stime
for round in $(seq "$ROUNDS"); do
	for spec in "$@"; do
		label=${spec%%=*} bin=${spec#*=}
		data=$(mktemp -d /tmp/parley-ab.XXXXXX)
		tree=$(cd "$(dirname "$bin")/.." && pwd)
		PARLEY_SCRIPTS=$tree/scripts PORT=$PORT PARLEY_PLUGIN_PATH=$tree/tests/plugins PARLEY_PLUGINS=bench \
			PARLEY_LOG=warn PARLEY_DATA_DIR=$data taskset -c 0 "$bin" >/dev/null 2>&1 &
		spid=$!
		for _ in $(seq 100); do port_open "$PORT" && break; sleep 0.1; done
		writer=""
		for _ in $(seq 50); do
			for t in /proc/"$spid"/task/*; do
				[ "$(cat "$t/comm" 2>/dev/null)" = parley-store ] && writer=${t##*/}
			done
			[ -n "$writer" ] && break
			sleep 0.1
		done
		[ -n "$writer" ] || { echo "no parley-store thread in $label" >&2; kill -KILL $spid; exit 1; }
		taskset -p -c 1 "$writer" >/dev/null
		taskset -c 1 "$LOADGEN" --port "$PORT" --server-pid $spid --label "$label" \
			--mode send --clients 200 --room 1 --window 8 --duration "$DUR" >"$data/out" 2>/dev/null &
		lg=$!
		sleep 1.5   # connects and warm-up, then the threads' CPU over the middle of the load
		l0=$(ticks /proc/$spid/task/$spid/stat) w0=$(ticks /proc/$spid/task/"$writer"/stat)
		a0=$(date +%s.%N)
		sleep "$((DUR - 2))"
		l1=$(ticks /proc/$spid/task/$spid/stat) w1=$(ticks /proc/$spid/task/"$writer"/stat)
		a1=$(date +%s.%N)
		wait $lg
		out=$(grep '^RESULT ' "$data/out")
		kill -TERM $spid; wait $spid 2>/dev/null
		rm -rf "$data"
		acks=$(field acks_per_s "$out")
		hz=$(getconf CLK_TCK)
		echo "round=$round $label acks_per_s=$acks" \
			"loop_us_per_ack=$(awk -v a=$l0 -v b=$l1 -v s=$a0 -v e=$a1 -v n=$acks -v hz=$hz 'BEGIN{printf "%.1f", 1e6*(b-a)/hz/((e-s)*n)}')" \
			"writer_us_per_ack=$(awk -v a=$w0 -v b=$w1 -v s=$a0 -v e=$a1 -v n=$acks -v hz=$hz 'BEGIN{printf "%.1f", 1e6*(b-a)/hz/((e-s)*n)}')" \
			"err=$(field ack_err "$out") lost=$(field lost "$out") load=$(cut -d' ' -f1 /proc/loadavg)"
	done
done
