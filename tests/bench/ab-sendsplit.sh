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
. "$ROOT/tests/bench/lib.sh"
LOADGEN=$ROOT/build/tests/bench/loadgen
PORT=${BENCH_PORT:-4391}
HZ=$(getconf CLK_TCK)
TMP=$(mktemp -d /tmp/parley-ab.XXXXXX)
SPID=""
trap '[ -n "$SPID" ] && kill -KILL "$SPID" 2>/dev/null; rm -rf "$TMP"' EXIT
die() { echo "ab-sendsplit.sh: $*" >&2; exit 1; }
ticks() { awk '{ print $14 + $15 }' "$1" || die "cannot read $1"; }   # utime + stime
# per_ack TICKS0 TICKS1 SECONDS ACKS/S: µs of the thread's CPU an ack
per_ack() { awk -v a="$1" -v b="$2" -v t="$3" -v n="$4" -v hz="$HZ" 'BEGIN { printf "%.1f", 1e6 * (b - a) / hz / (t * n) }'; }
n=0
for round in $(seq "$ROUNDS"); do
	for spec in "$@"; do
		label=${spec%%=*} bin=${spec#*=}
		n=$((n + 1))
		port_open "$PORT" && die "port $PORT in use (set BENCH_PORT)"
		tree_parley "$bin" "$TMP/data-$n" "$PORT"
		writer=$(store_writer_tid "$SPID")
		[ -n "$writer" ] || die "no parley-store thread in $label"
		taskset -p -c 1 "$writer" >/dev/null
		taskset -c 1 "$LOADGEN" --port "$PORT" --server-pid "$SPID" --label "$label" \
			--mode send --clients 200 --room 1 --window 8 --duration "$DUR" >"$TMP/out" 2>/dev/null &
		lg=$!
		sleep 1.5   # connects and warm-up, then the threads' CPU over the middle of the load
		l0=$(ticks "/proc/$SPID/task/$SPID/stat") w0=$(ticks "/proc/$SPID/task/$writer/stat")
		t0=$(date +%s.%N)
		sleep "$((DUR - 2))"
		l1=$(ticks "/proc/$SPID/task/$SPID/stat") w1=$(ticks "/proc/$SPID/task/$writer/stat")
		t1=$(date +%s.%N)
		wait $lg
		out=$(grep '^RESULT ' "$TMP/out")
		kill -TERM "$SPID"; wait "$SPID" 2>/dev/null
		SPID=""
		rm -rf "$TMP/data-$n"
		acks=$(field acks_per_s "$out")
		[ "${acks:-0}" -gt 0 ] || die "$label: no acks (loadgen: ${out:-no RESULT})"
		secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
		echo "round=$round $label acks_per_s=$acks" \
			"loop_us_per_ack=$(per_ack "$l0" "$l1" "$secs" "$acks")" \
			"writer_us_per_ack=$(per_ack "$w0" "$w1" "$secs" "$acks")" \
			"err=$(field ack_err "$out") lost=$(field lost "$out") load=$(cut -d' ' -f1 /proc/loadavg)"
	done
done
