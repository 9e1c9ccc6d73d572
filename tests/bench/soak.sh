#!/usr/bin/env bash
# soak.sh - parley under churn for a long while (tests/bench/soak.js): a
# pool of socket.io (websocket and polling) and plain WebSocket clients,
# a slice replaced every second, half of them dropping dead, durable
# messages, typing, read receipts and malformed frames throughout. Prints
# the server's memory and open files per sample, and checks that once
# every client has left it is back to no sockets and the same descriptors.
#
#   bash tests/bench/soak.sh [--seconds 600] [--pool 300] [--churn 30]
#                            [--sample 30] [--rate 1] [--asan]
# --asan runs build-asan/parley (leaks reported at exit fail the run).
set -eu
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BIN=./build/parley
PASS=()
while [ $# -gt 0 ]; do
	case "$1" in
	--asan) BIN=./build-asan/parley ;;
	--seconds|--pool|--churn|--sample|--rate) PASS+=("$1" "$2"); shift ;;
	*) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
if [ "$BIN" = ./build/parley ]; then
	cmake -S . -B build >/dev/null && cmake --build build --target parley -j2 >/dev/null
else
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSANITIZER=address,undefined >/dev/null
	cmake --build build-asan --target parley -j2 >/dev/null
fi
PORT=${BENCH_PORT:-4395}
TMP=$(mktemp -d /tmp/parley-soak.XXXXXX)
SPID=""
trap '[ -n "$SPID" ] && kill -KILL "$SPID" 2>/dev/null; rm -rf "$TMP"' EXIT

# A short heartbeat so that dead polling sessions are reaped within the
# run; parley on core 0, the clients on core 1.
PORT=$PORT PARLEY_DATA_DIR="$TMP/data" PARLEY_LOG=warn \
	PARLEY_PING_INTERVAL=5000 PARLEY_PING_TIMEOUT=5000 \
	ASAN_OPTIONS=detect_leaks=1 taskset -c 0 "$BIN" >"$TMP/parley.log" 2>&1 &
SPID=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
echo "date $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD), $BIN"
taskset -c 1 node tests/bench/soak.js --port "$PORT" --pid "$SPID" "${PASS[@]}"
kill -TERM "$SPID"
rc=0
wait "$SPID" || rc=$?
SPID=""
if [ "$rc" != 0 ] || grep -q "ERROR: \(Address\|Leak\)Sanitizer\|runtime error:" "$TMP/parley.log"; then
	echo "parley exited with $rc:"; tail -50 "$TMP/parley.log"; exit 1
fi
echo "parley exited cleanly (status 0)"
