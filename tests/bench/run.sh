#!/usr/bin/env bash
# run.sh - parley against the Node Socket.IO 4.8.1 reference, under the same
# loads: builds parley, the loadgen and its ceiling server, then for each
# scenario and round starts each server fresh pinned to core 0 (taskset -c 0)
# and drives it with the loadgen pinned to core 1, and prints the side-by-side
# table (medians over rounds, ratios, targets). The table, the machine and the
# raw per-run results are also written to tests/bench/last-run.txt.
#
#   bash tests/bench/run.sh                 # 3 rounds, full sizes (~10 minutes)
#   bash tests/bench/run.sh --quick         # 1 round, smaller sizes (~1 minute)
#   options: --rounds N  --only idle,idleoff,fanout,fanoutoff,latency,awake,typing,send,
#                                 sendroom,sendsplit,presence,mpfanout,mplatency,deflate,deflateoff
#                                 sendpg,sendroompg
#            --out FILE
#   (idleoff and fanoutoff are idle and fanout again, parley only, with
#   connection state recovery off, PARLEY_RECOVERY_WINDOW=0: what recovery,
#   on by default, costs; fanoutoff runs before fanout in even rounds)
#   (awake is the latency scenario again with both cores kept out of idle:
#   on a VM, a vCPU that halts between events can take milliseconds to wake)
#   (mpfanout and mplatency are fanout and latency with every client on
#   socket.io-msgpack-parser, parley and the reference alike)
#   (deflate and deflateoff are fanout with 2 KB messages, permessage-deflate
#   on (PARLEY_WS_COMPRESSION=1, the reference's perMessageDeflate, the
#   loadgen's --deflate) and off; deflateoff runs first in even rounds)
#   (presence is not in the default set: parley scopes user:online to shared
#   conversations, the reference tells the whole namespace)
#   (sendsplit is the send scenario with parley's store writer thread moved
#   to the loadgen's core: outside the one-core rule, parley only; about
#   what a core of its own for the writer would give, less what the loadgen
#   takes of that core)
#   (sendpg and sendroompg are send and sendroom with parley's store on
#   PostgreSQL, parley only, beside the reference's in-memory figures of send
#   and sendroom: a private PostgreSQL 15 (tests/pg.sh) started once, pinned
#   to the loadgen's core, a fresh database each run; left out, with a
#   warning, where PostgreSQL is not installed: tests/deps.sh --test)
#

# Sizes respect the machine: 20000 open files per process, so at most ~19.8k
# sockets on each side (the idle scenario uses 10,000 clients).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH=$ROOT/tests/bench
BUILD=${PARLEY_BUILD_DIR:-$ROOT/build}
ROUNDS=3
QUICK=0
ONLY="idle,idleoff,fanout,fanoutoff,latency,awake,typing,send,sendroom,sendsplit,sendpg,sendroompg,mpfanout,mplatency,deflate,deflateoff"
OUT=$BENCH/last-run.txt
PORT_BASE=${BENCH_PORT_BASE:-4301}
SERVER_CPU=0
LOADGEN_CPU=1
COMMAND="bash tests/bench/run.sh $*"

while [ $# -gt 0 ]; do
	case "$1" in
	--quick) QUICK=1; ROUNDS=1 ;;
	--rounds) ROUNDS=$2; shift ;;
	--only) ONLY=$2; shift ;;
	--out) OUT=$2; shift ;;
	-h|--help) sed -n '2,35p' "$0"; exit 0 ;;
	*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done

# Sizes: full, or --quick.
if [ "$QUICK" = 1 ]; then
	IDLE_N=2000 N=500 DUR=3 LAT_DUR=3 SEND_N=100 PRES_N=1000
else
	IDLE_N=10000 N=1000 DUR=5 LAT_DUR=10 SEND_N=200 PRES_N=2000
fi
FANOUT_DUR=$([ "$QUICK" = 1 ] && echo 3 || echo 10)

die() { echo "run.sh: $*" >&2; exit 1; }
want() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }

cd "$ROOT" || die "no $ROOT"
command -v taskset >/dev/null || die "taskset is missing (util-linux)"
if want awake; then
	chrt --idle 0 true 2>/dev/null ||
		die "chrt --idle does not run here (util-linux; needed by the awake scenario: --only without awake)"
fi
command -v node >/dev/null || die "node is missing"
[ "$(nproc)" -ge 2 ] || die "needs 2 cores: the server on core $SERVER_CPU, the loadgen on core $LOADGEN_CPU"
(cd "$BENCH/reference" && node -e "require.resolve('socket.io')" 2>/dev/null) ||
	die "socket.io is not installed: run 'npm ci --prefix tests' (or 'npm ci' in tests/bench/reference)"

# Build: parley, loadgen, ceiling (the root CMakeLists adds tests/bench).
echo "== build ($BUILD)"
if grep -q '^SANITIZER:STRING=.\+' "$BUILD/CMakeCache.txt" 2>/dev/null; then
	die "$BUILD is a sanitizer build: benchmark a normal build (PARLEY_BUILD_DIR=...)"
fi
cmake -S "$ROOT" -B "$BUILD" >/dev/null || die "cmake configure failed"
cmake --build "$BUILD" --target parley loadgen ceiling -j 2 >/dev/null ||
	die "build failed (cmake --build $BUILD --target parley loadgen ceiling)"
PARLEY=$BUILD/parley
LOADGEN=$BUILD/tests/bench/loadgen
CEILING=$BUILD/tests/bench/ceiling
for b in "$PARLEY" "$LOADGEN" "$CEILING"; do [ -x "$b" ] || die "missing $b"; done

TMP=$(mktemp -d /tmp/parley-bench.XXXXXX)
RAW=$TMP/raw.txt
LOG=$TMP/runs.log
: >"$RAW"
SPID=""
AWAKE=""
PG_DIR=""
cleanup() {
	[ -n "$SPID" ] && kill -KILL "$SPID" 2>/dev/null
	[ -n "$AWAKE" ] && kill -KILL $AWAKE 2>/dev/null
	rm -rf "$TMP/data"
	pg_stop
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# keep_awake on|off: a busy loop on each core at SCHED_IDLE, which runs
# only when nothing else wants the core and gives way at once when the server
# or the loadgen wakes; but the core never goes idle, so a wake-up costs a
# context switch instead of a trip through the hypervisor (on this VM's
# halting vCPUs, milliseconds at the tail).
keep_awake() {
	local cpu
	if [ "$1" = on ]; then
		for cpu in $SERVER_CPU $LOADGEN_CPU; do
			taskset -c "$cpu" chrt --idle 0 bash -c 'while :; do :; done' &
			AWAKE="$AWAKE $!"
		done
	elif [ -n "$AWAKE" ]; then
		kill $AWAKE 2>/dev/null
		wait $AWAKE 2>/dev/null
		AWAKE=""
	fi
}

# The PostgreSQL of sendpg and sendroompg: tests/pg.sh's private cluster
# (fsync on, synchronous_commit as PostgreSQL ships it: on), started under
# taskset so that the postmaster and every process it forks stay on the
# loadgen's core; its own directory, outside $TMP, which the postgres user
# cannot enter when we are root. Sets PG_URI (the base URI) and PG_PID (the
# postmaster, whose children are the backends and writers).
PG_URI=""
PG_PID=""
PG_DB=0
pg_start() {
	PG_DIR=$(mktemp -d /tmp/parley-bench-pg.XXXXXX)
	PG_URI=$(taskset -c $LOADGEN_CPU bash "$ROOT/tests/pg.sh" start "$PG_DIR") ||
		die "PostgreSQL did not start (tests/pg.sh start $PG_DIR; see $PG_DIR/postgres.log)"
	PG_PID=$(head -1 "$PG_DIR/data/postmaster.pid")
	local p
	for p in $PG_PID $(pgrep -P "$PG_PID"); do
		taskset -a -p -c $LOADGEN_CPU "$p" >/dev/null || die "taskset -p -c $LOADGEN_CPU $p failed"
	done
}
pg_stop() {
	[ -n "$PG_DIR" ] || return 0
	bash "$ROOT/tests/pg.sh" stop "$PG_DIR" >/dev/null 2>&1
	rm -rf "$PG_DIR"
	PG_DIR=""
}
# pg_database: a fresh database for one run; sets PG_DB_URI.
pg_database() {
	PG_DB=$((PG_DB + 1))
	psql "$PG_URI" -qXc "CREATE DATABASE bench_$PG_DB" >/dev/null ||
		die "CREATE DATABASE bench_$PG_DB failed"
	PG_DB_URI=${PG_URI/\/postgres\?/\/bench_$PG_DB?}
}
pg_drop_database() {
	psql "$PG_URI" -qXc "DROP DATABASE bench_$PG_DB WITH (FORCE)" >/dev/null 2>&1
}

. "$ROOT/tests/bench/lib.sh"

# start_server KIND PORT [ENV...]: starts it pinned to core 0; sets SPID.
start_server() {
	local kind=$1 port=$2
	shift 2
	port_open "$port" && die "port $port is already in use (set BENCH_PORT_BASE)"
	case $kind in
	parley)
		mkdir -p "$TMP/data"
		env "$@" PORT=$port PARLEY_PLUGIN_PATH=tests/plugins PARLEY_PLUGINS=bench PARLEY_LOG=warn \
			PARLEY_DATA_DIR="$TMP/data/$port-$RANDOM" \
			taskset -c $SERVER_CPU "$PARLEY" >>"$TMP/parley.log" 2>&1 &
		;;
	socketio)
		env "$@" PORT=$port taskset -c $SERVER_CPU node "$BENCH/reference/server.js" \
			>>"$TMP/reference.log" 2>&1 &
		;;
	ceiling)
		taskset -c $SERVER_CPU "$CEILING" "$port" >>"$TMP/ceiling.log" 2>&1 &
		;;
	esac
	SPID=$!
	for _ in $(seq 100); do
		port_open "$port" && return 0
		kill -0 "$SPID" 2>/dev/null || break
		sleep 0.1
	done
	die "$kind did not start on port $port (see $TMP/$kind.log)"
}

# sendsplit: parley's store writer thread (named parley-store) to the
# loadgen's core; the loop thread stays on the server's. The thread starts
# after the port opens (the store opens after listen): looked for up to 5 s.
writer_to_loadgen_core() {
	local t
	t=$(store_writer_tid "$SPID")
	[ -n "$t" ] || die "sendsplit: no parley-store thread in process $SPID"
	taskset -p -c $LOADGEN_CPU "$t" >/dev/null || die "sendsplit: taskset -p -c $LOADGEN_CPU $t failed"
}

stop_server() {
	[ -n "$SPID" ] || return 0
	kill -TERM "$SPID" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$SPID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$SPID" 2>/dev/null
	wait "$SPID" 2>/dev/null
	SPID=""
	rm -rf "$TMP/data"
}

# measure SCEN ROUND KIND [ENV...] -- LOADGEN ARGS...
measure() {
	local scen=$1 round=$2 kind=$3 port
	shift 3
	local envs=()
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
	shift
	case $kind in parley) port=$PORT_BASE ;; socketio) port=$((PORT_BASE + 1)) ;; *) port=$((PORT_BASE + 2)) ;; esac
	start_server "$kind" "$port" "${envs[@]}"
	[ "$scen" = sendsplit ] && writer_to_loadgen_core
	local out rc alive=1 db=()
	case $scen in sendpg|sendroompg) db=(--db-pid "$PG_PID") ;; esac
	out=$(timeout 600 taskset -c $LOADGEN_CPU "$LOADGEN" --port "$port" --server-pid "$SPID" \
		"${db[@]}" --label "$kind" "$@" 2>>"$TMP/loadgen.err")
	rc=$?
	kill -0 "$SPID" 2>/dev/null || alive=0
	stop_server
	local result
	result=$(grep '^RESULT ' <<<"$out" | head -1)
	echo "SCEN=$scen ROUND=$round SERVER=$kind RC=$rc ALIVE=$alive ${result:-RESULT}" >>"$RAW"
	grep -v '^RESULT ' <<<"$out" | sed "s/^/  [$scen r$round] /" | tee -a "$LOG"
	[ $alive = 1 ] || echo "  [$scen r$round] $kind: THE SERVER PROCESS DIED" | tee -a "$LOG"
}

# One scenario: parley, the reference, and (for load modes) the ceiling.
scenario() {
	local scen=$1 round=$2 ceiling=$3
	shift 3
	measure "$scen" "$round" parley -- "$@"
	measure "$scen" "$round" socketio -- "$@"
	[ "$ceiling" = 1 ] && measure "$scen" "$round" ceiling -- "$@"
}

# The fan-out load on parley with connection state recovery off.
fanoutoff() {
	measure fanoutoff "$1" parley PARLEY_RECOVERY_WINDOW=0 -- --mode fanout --clients $N \
		--room 10 --window 8 --duration $FANOUT_DUR
}

# zfanout deflate|deflateoff ROUND: the fan-out load with 2 KB messages,
# permessage-deflate on or off, on parley and the reference.
zfanout() {
	local round=$2 pe=() re=() lg=()
	[ "$1" = deflate ] && pe=(PARLEY_WS_COMPRESSION=1) re=(REF_DEFLATE=1) lg=(--deflate)
	measure "$1" "$round" parley "${pe[@]}" -- --mode fanout --clients $N --room 10 --window 8 \
		--duration $FANOUT_DUR --pad 2000 "${lg[@]}"
	measure "$1" "$round" socketio "${re[@]}" -- --mode fanout --clients $N --room 10 --window 8 \
		--duration $FANOUT_DUR --pad 2000 "${lg[@]}"
}

# pgsend SCEN ROUND LOADGEN ARGS...: parley on a fresh PostgreSQL database.
pgsend() {
	local scen=$1 round=$2
	shift 2
	pg_database
	measure "$scen" "$round" parley PARLEY_STORE="$PG_DB_URI" -- "$@"
	pg_drop_database
}

if { want sendpg || want sendroompg; } &&
	! { [ -x "${PG_BIN:-/usr/lib/postgresql/15/bin}/initdb" ] && command -v psql >/dev/null; }; then
	echo "run.sh: PostgreSQL 15 is not installed (tests/deps.sh --test): no sendpg, sendroompg" >&2
	ONLY=$(sed 's/,sendpg,/,/g; s/,sendroompg,/,/g' <<<",$ONLY,")
fi
if want sendpg || want sendroompg; then
	pg_start
	echo "== PostgreSQL on core $LOADGEN_CPU: $PG_URI (postmaster $PG_PID)"
fi

START=$(date +%s)
echo "== $ROUNDS round(s); servers on core $SERVER_CPU, loadgen on core $LOADGEN_CPU; logs in $TMP"
for round in $(seq "$ROUNDS"); do
	echo "== round $round"
	want idle && scenario idle "$round" 0 --mode idle --clients $IDLE_N --room 10 --hold 2
	want idleoff && measure idleoff "$round" parley PARLEY_RECOVERY_WINDOW=0 -- --mode idle \
		--clients $IDLE_N --room 10 --hold 2
	want fanoutoff && [ $((round % 2)) = 0 ] && fanoutoff "$round"
	want fanout && scenario fanout "$round" 1 --mode fanout --clients $N --room 10 --window 8 \
		--duration $FANOUT_DUR
	want fanoutoff && [ $((round % 2)) = 1 ] && fanoutoff "$round"
	want latency && scenario latency "$round" 1 --mode latency --clients $N --room 10 --rate 2000 \
		--duration $LAT_DUR --warmup 1
	if want awake; then
		keep_awake on
		scenario awake "$round" 1 --mode latency --clients $N --room 10 --rate 2000 \
			--duration $LAT_DUR --warmup 1
		keep_awake off
	fi
	want typing && scenario typing "$round" 1 --mode typing --clients $N --room 10 --window 8 \
		--duration $DUR
	want send && scenario send "$round" 1 --mode send --clients $SEND_N --room 1 --window 8 \
		--duration $DUR
	want sendroom && scenario sendroom "$round" 1 --mode send --clients $N --room 10 --window 8 \
		--duration $DUR
	if want mpfanout; then
		measure mpfanout "$round" parley -- --mode fanout --clients $N --room 10 --window 8 \
			--duration $FANOUT_DUR --parser msgpack
		measure mpfanout "$round" socketio REF_PARSER=msgpack -- --mode fanout --clients $N \
			--room 10 --window 8 --duration $FANOUT_DUR --parser msgpack
	fi
	# permessage-deflate: the fan-out load with 2 KB messages (over the 1 KB
	# threshold both servers compress from), compression on (parley
	# PARLEY_WS_COMPRESSION=1, the reference perMessageDeflate, the loadgen
	# --deflate) and off; off first in even rounds.
	want deflateoff && [ $((round % 2)) = 0 ] && zfanout deflateoff "$round"
	want deflate && zfanout deflate "$round"
	want deflateoff && [ $((round % 2)) = 1 ] && zfanout deflateoff "$round"
	if want mplatency; then
		measure mplatency "$round" parley -- --mode latency --clients $N --room 10 --rate 2000 \
			--duration $LAT_DUR --warmup 1 --parser msgpack
		measure mplatency "$round" socketio REF_PARSER=msgpack -- --mode latency --clients $N \
			--room 10 --rate 2000 --duration $LAT_DUR --warmup 1 --parser msgpack
	fi
	want sendsplit && measure sendsplit "$round" parley -- --mode send --clients $SEND_N --room 1 \
		--window 8 --duration $DUR
	want sendpg && pgsend sendpg "$round" --mode send --clients $SEND_N --room 1 --window 8 \
		--duration $DUR
	want sendroompg && pgsend sendroompg "$round" --mode send --clients $N --room 10 --window 8 \
		--duration $DUR
done
if want presence; then
	echo "== presence (one round)"
	measure presence 1 parley -- --mode idle --clients $PRES_N --room 10 --hold 1
	measure presence 1 socketio REF_PRESENCE=1 -- --mode idle --clients $PRES_N --room 10 --hold 1
fi
ELAPSED=$(( $(date +%s) - START ))

# The report.
COMMIT=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$ROOT" status --porcelain -- core scripts plugins CMakeLists.txt 2>/dev/null | wc -l)
SIO_DIR=$(cd "$BENCH/reference" && node -e "const p=require('path');let d=p.dirname(require.resolve('socket.io'));while(!require('fs').existsSync(p.join(d,'package.json')))d=p.dirname(d);console.log(d)")
SIO_VERSION=$(node -e "console.log(require('$SIO_DIR/package.json').version)")
{
	echo "parley benchmark: parley vs Node Socket.IO $SIO_VERSION"
	echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "command:  $COMMAND   ($ROUNDS round(s), ${ELAPSED} s)"
	echo "commit:   $COMMIT$([ "$DIRTY" -gt 0 ] && echo " + uncommitted changes in $DIRTY file(s) under core/ scripts/ plugins/")"
	echo "machine:  $(uname -a)"
	echo "cpu:      $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores; open files $(ulimit -Sn)/$(ulimit -Hn)"
	echo "node:     $(node --version), socket.io $SIO_VERSION ($SIO_DIR)"
	echo "pinning:  servers taskset -c $SERVER_CPU, loadgen taskset -c $LOADGEN_CPU"
	echo "parley:   PARLEY_PLUGIN_PATH=tests/plugins PARLEY_PLUGINS=bench PARLEY_LOG=warn (default scripts)"
	[ -n "$PG_DIR" ] && echo "postgres: $(psql "$PG_URI" -qXAtc 'SELECT version()' 2>/dev/null | cut -d, -f1); tests/pg.sh (fsync=on, synchronous_commit=$(psql "$PG_URI" -qXAtc 'SHOW synchronous_commit' 2>/dev/null), shared_buffers=$(psql "$PG_URI" -qXAtc 'SHOW shared_buffers' 2>/dev/null)), taskset -c $LOADGEN_CPU; a fresh database per run"
	echo
	node "$BENCH/report.js" "$RAW"
	echo
	echo "Per run (RESULT lines of tests/bench/loadgen):"
	cat "$RAW"
} >"$TMP/report.txt"
cp "$TMP/report.txt" "$OUT"
echo
sed '/^Per run/,$d' "$TMP/report.txt"
echo "(written to $OUT)"
