#!/usr/bin/env bash
# lua-cost.sh - what the default scripts cost per event: acked events per
# second through the full default path (typing:start: auth'd socket, the
# validate filter, chat.lua's handler, in a room of one so nothing is
# relayed) against a handler that does nothing (bench:noop), parley pinned
# to core 0 and the loadgen to core 1, several rounds.
#
#   bash tests/bench/lua-cost.sh [--rounds N] [--clients N] [--duration S]
set -eu
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ROUNDS=3 CLIENTS=200 DUR=5
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2; shift ;;
	--clients) CLIENTS=$2; shift ;;
	--duration) DUR=$2; shift ;;
	*) echo "lua-cost.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
cd "$ROOT"
cmake -S . -B build >/dev/null && cmake --build build --target parley loadgen -j2 >/dev/null
PORT=${BENCH_PORT:-4391}
TMP=$(mktemp -d /tmp/parley-luacost.XXXXXX)
SPID=""
trap '[ -n "$SPID" ] && kill -KILL "$SPID" 2>/dev/null; rm -rf "$TMP"' EXIT
if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then
	echo "lua-cost.sh: port $PORT is in use (set BENCH_PORT)" >&2
	exit 1
fi

run() { # mode -> "events/s server_cpu_s"
	PORT=$PORT PARLEY_PLUGIN_PATH=tests/plugins PARLEY_PLUGINS=bench PARLEY_LOG=warn \
		PARLEY_DATA_DIR="$TMP/data-$1-$RANDOM" taskset -c 0 ./build/parley >>"$TMP/parley.log" 2>&1 &
	local pid=$!
	SPID=$pid
	for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
	local out
	out=$(taskset -c 1 ./build/tests/bench/loadgen --port $PORT --server-pid $pid --mode "$1" \
		--clients "$CLIENTS" --room 1 --window 8 --duration "$DUR" 2>/dev/null | grep '^RESULT')
	kill -TERM $pid; wait $pid 2>/dev/null || true
	SPID=""
	local acks cpu errs
	acks=$(sed -n 's/.* acks_per_s=\([0-9]*\).*/\1/p' <<<"$out")
	cpu=$(sed -n 's/.* server_cpu_s=\([0-9.]*\).*/\1/p' <<<"$out")
	errs=$(sed -n 's/.* ack_err=\([0-9]*\).*/\1/p' <<<"$out")
	echo "$acks $cpu $errs"
}

printf 'parley: events per second, default scripts against a trivial handler\n'
printf 'date %s, commit %s, %d clients x window 8, %d s, %d rounds\n' \
	"$(date -u '+%Y-%m-%d %H:%M UTC')" "$(git rev-parse --short HEAD)" "$CLIENTS" "$DUR" "$ROUNDS"
printf '%-6s %-42s %12s %14s %8s\n' round event "acks/s" "CPU us/event" errors
for r in $(seq "$ROUNDS"); do
	for mode in noop typing; do
		read -r acks cpu errs < <(run $mode)
		us=$(awk -v c="$cpu" -v a="$acks" -v d="$DUR" 'BEGIN { printf "%.2f", a ? c * 1e6 / (a * d) : 0 }')
		name=$([ $mode = noop ] && echo "bench:noop (handler returns true)" || echo "typing:start (auth, validate, chat.lua)")
		printf '%-6s %-42s %12s %14s %8s\n' "$r" "$name" "$acks" "$us" "$errs"
	done
done
