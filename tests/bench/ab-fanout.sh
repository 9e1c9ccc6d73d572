#!/usr/bin/env bash
# ab-fanout.sh - the fan-out load of run.sh (1,000 clients, rooms of 10, 100
# senders x window 8) against several parley binaries or settings, in
# interleaved rounds, parley only: for an A/B of two commits, build each
# (e.g. the base into /tmp/base/build) and name them here. Prints the server
# CPU per delivery of every run; read the ratios within a round (other work on
# the machine moves every figure between rounds).
#
#   bash tests/bench/ab-fanout.sh ROUNDS SECONDS LABEL=BINARY[:ENV=V,...] ...
#   bash tests/bench/ab-fanout.sh 5 10 mainoff=/tmp/base/build/parley:PARLEY_RECOVERY_WINDOW=0 \
#       mainon=/tmp/base/build/parley newoff=build/parley:PARLEY_RECOVERY_WINDOW=0 newon=build/parley
#
# The loadgen is this tree's (build/tests/bench/loadgen, as run.sh builds it);
# servers on core 0, the loadgen on core 1, the port BENCH_PORT_BASE+9 (4310).
set -u
[ $# -ge 3 ] || { sed -n '2,15p' "$0"; exit 2; }
ROUNDS=$1 DUR=$2
shift 2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOADGEN=$ROOT/build/tests/bench/loadgen
PORT=$(( ${BENCH_PORT_BASE:-4301} + 9 ))
[ -x "$LOADGEN" ] || { echo "ab-fanout.sh: no $LOADGEN (run.sh builds it)" >&2; exit 1; }
cd "$ROOT" || exit 1
. "$ROOT/tests/bench/lib.sh"
for round in $(seq "$ROUNDS"); do
	for spec in "$@"; do
		label=${spec%%=*} rest=${spec#*=}
		bin=${rest%%:*} envs=()
		[ "$rest" != "$bin" ] && IFS=, read -r -a envs <<<"${rest#*:}"
		port_open "$PORT" && { echo "ab-fanout.sh: port $PORT in use" >&2; exit 1; }
		data=$(mktemp -d /tmp/parley-ab.XXXXXX)
		env "${envs[@]}" PORT=$PORT PARLEY_PLUGIN_PATH=tests/plugins PARLEY_PLUGINS=bench \
			PARLEY_LOG=warn PARLEY_DATA_DIR="$data" taskset -c 0 "$bin" >/dev/null 2>&1 &
		spid=$!
		for _ in $(seq 100); do port_open "$PORT" && break; sleep 0.1; done
		out=$(taskset -c 1 "$LOADGEN" --port "$PORT" --server-pid "$spid" --label "$label" \
			--mode fanout --clients 1000 --room 10 --window 8 --duration "$DUR" 2>/dev/null |
			grep '^RESULT ')
		kill -TERM "$spid"
		wait "$spid" 2>/dev/null
		rm -rf "$data"
		cpu=$(field server_cpu_s "$out") dps=$(field deliveries_per_s "$out")
		dur=$(field duration_s "$out") lost=$(field lost "$out")
		per=$(awk -v c="$cpu" -v d="$dps" -v t="$dur" 'BEGIN { if (d * t > 0) printf "%.3f", 1e6 * c / (d * t); else print "-" }')
		echo "round=$round $label cpu_per_delivery_us=$per deliveries_per_s=$dps server_cpu_s=$cpu lost=$lost load=$(cut -d' ' -f1 /proc/loadavg)"
	done
done
