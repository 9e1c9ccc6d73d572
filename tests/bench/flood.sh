#!/usr/bin/env bash
# flood.sh - does one client flooding at full speed hurt everyone else?
# Latency at a fixed rate (1,000 clients in rooms of 10, 2,000 sends/s)
# measured three ways, parley pinned to core 0 and both load generators to
# core 1: alone; with a flooder (one client sending bench:send with 256 in
# flight, as fast as it can) and the ratelimit plugin; and with the flooder
# and no rate limit, to show what the plugin prevents.
#
#   bash tests/bench/flood.sh [--rounds N] [--duration S]
set -eu
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ROUNDS=3 DUR=8
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) ROUNDS=$2; shift ;;
	--duration) DUR=$2; shift ;;
	*) echo "flood.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
cd "$ROOT"
cmake -S . -B build >/dev/null && cmake --build build --target parley loadgen -j2 >/dev/null
PORT=${BENCH_PORT:-4393}
TMP=$(mktemp -d /tmp/parley-flood.XXXXXX)
SPID="" FPID=""
trap '[ -n "$SPID" ] && kill -KILL "$SPID" 2>/dev/null; [ -n "$FPID" ] && kill -KILL "$FPID" 2>/dev/null; rm -rf "$TMP"' EXIT
cat >"$TMP/parley.conf.lua" <<'CONF'
return { plugin_config = { ratelimit = {
	events = { ["bench:send"] = { rate = 100, burst = 200 } },
} } }
CONF

# run PLUGINS FLOOD(0|1) -> "p50 p99 max flooder_acks flooder_refused"
run() {
	PORT=$PORT PARLEY_PLUGIN_PATH="tests/plugins;plugins" PARLEY_PLUGINS=$1 PARLEY_LOG=warn \
		PARLEY_CONFIG="$TMP/parley.conf.lua" PARLEY_DATA_DIR="$TMP/data-$RANDOM" \
		taskset -c 0 ./build/parley >>"$TMP/parley.log" 2>&1 &
	SPID=$!
	for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
	if [ "$2" = 1 ]; then
		taskset -c 1 ./build/tests/bench/loadgen --port $PORT --mode fanout --clients 1 --room 1 \
			--window 256 --duration $((DUR + 3)) --prefix flood- >"$TMP/flood.out" 2>/dev/null &
		FPID=$!
		sleep 1
	fi
	local out
	out=$(taskset -c 1 ./build/tests/bench/loadgen --port $PORT --server-pid $SPID --mode latency \
		--clients 1000 --room 10 --rate 2000 --duration "$DUR" --warmup 1 2>/dev/null | grep '^RESULT')
	if [ -n "$FPID" ]; then wait $FPID 2>/dev/null || true; FPID=""; fi
	kill -TERM $SPID; wait $SPID 2>/dev/null || true
	SPID=""
	local f
	f=$(grep '^RESULT' "$TMP/flood.out" 2>/dev/null || true)
	rm -f "$TMP/flood.out"
	printf '%s %s %s %s %s %s\n' \
		"$(sed -n 's/.* lat_p50_us=\([0-9]*\).*/\1/p' <<<"$out")" \
		"$(sed -n 's/.* lat_p99_us=\([0-9]*\).*/\1/p' <<<"$out")" \
		"$(sed -n 's/.* lat_max_us=\([0-9]*\).*/\1/p' <<<"$out")" \
		"$(sed -n 's/.* lost=\([0-9]*\).*/\1/p' <<<"$out")" \
		"$(sed -n 's/.* acked=\([0-9]*\).*/\1/p' <<<"$f")" \
		"$(sed -n 's/.* ack_err=\([0-9]*\).*/\1/p' <<<"$f")"
}

echo "flood: latency of 1,000 clients at 2,000 sends/s (rooms of 10), $DUR s, $ROUNDS rounds"
echo "date $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD)"
printf '%-6s %-44s %8s %8s %8s %6s %14s %14s\n' round case "p50 us" "p99 us" "max us" lost "flooder acked" "flooder 429"
for r in $(seq "$ROUNDS"); do
	for c in "bench,ratelimit 0 alone, ratelimit on" "bench,ratelimit 1 flooder, ratelimit on" "bench 1 flooder, no rate limit"; do
		set -- $c
		read -r p50 p99 max lost fa fr < <(run "$1" "$2")
		shift 2
		printf '%-6s %-44s %8s %8s %8s %6s %14s %14s\n' "$r" "$*" "$p50" "$p99" "$max" "$lost" "${fa:--}" "${fr:--}"
	done
done
