#!/usr/bin/env bash
# cluster.sh - fan-out across two (and four) parley nodes on Redis, beside
# one node, in the same run (issue 19): 1,000 clients in rooms of 10, each
# room's members alternating between the nodes (5 and 5 on two), one sender
# per room (the senders spread over the nodes), a paced 2,000 sends/s;
# deliveries/s and the latency from send to receipt, all of it and that of
# the members on another node alone; the nodes' CPU per delivery; Redis's
# CPU and bytes per published message. The same load on ONE node (no
# Redis, the same store) is the comparison.
#
# Two events, paced, in every setup:
#   fanout  bench:send (tests/plugins/bench: a script's room broadcast, no
#           store): what the cluster itself costs.
#   send    message:send, durable through PostgreSQL (the chat send the
#           issue means), paced the same: PostgreSQL is in every send's
#           path, so this one is also the store's test (docs/scaling.md).
# and, not paced, the most the setups deliver:
#   fanmax  bench:send with 8 unacked per sender (loadgen --mode fanout)
#           and at most 8 deliveries due per client (--undelivered), 5 s:
#           deliveries per core of the nodes, broadcasts Redis takes.
#
#   bash tests/bench/cluster.sh                  # 2 rounds (~3 minutes)
#   bash tests/bench/cluster.sh --quick          # 1 round, 500 clients, 3 s
#   options: --rounds N  --only fanout,send,fanmax  --rate R  --out FILE
#            --nodes 2,4   the cluster sizes beside one node (2 to 4; default 2,4):
#                          with 4, each room has members on every node and
#                          Redis sends each broadcast to 4 subscribers, which
#                          with 2 splits Redis's cost into per SPUBLISH and
#                          per copy
#            --node-env VAR=VALUE   set in every node's environment (repeatable),
#                          e.g. PARLEY_RECOVERY_WINDOW=0: recovery off, so no
#                          recovery log copied into Redis
#
# Placement (2 cores): the parley nodes (one, or all) on core 0, the
# loadgen, Redis and PostgreSQL on core 1; so every setup gives the servers
# the same one core. Everything it starts (PostgreSQL, Redis, the nodes) is
# stopped on exit. Needs PostgreSQL 15 and redis-server (tests/deps.sh --test).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH=$ROOT/tests/bench
BUILD=${PARLEY_BUILD_DIR:-$ROOT/build}
ROUNDS=2
QUICK=0
ONLY=fanout,send,fanmax
RATE=2000
OUT=$BENCH/last-cluster-run.txt
PORT_A=${BENCH_PORT_BASE:-4311}
CLUSTER_SIZES=2,4
NODE_ENV=()
SERVER_CPU=0
OTHER_CPU=1
REDIS=${REDIS_SERVER:-/usr/bin/redis-server}
COMMAND="bash tests/bench/cluster.sh $*"

while [ $# -gt 0 ]; do
	case "$1" in
	--quick) QUICK=1; ROUNDS=1 ;;
	--rounds) ROUNDS=$2; shift ;;
	--only) ONLY=$2; shift ;;
	--rate) RATE=$2; shift ;;
	--nodes) CLUSTER_SIZES=$2; shift ;;
	--node-env) NODE_ENV+=("$2"); shift ;;
	--out) OUT=$2; shift ;;
	-h|--help) sed -n '2,37p' "$0"; exit 0 ;;
	*) echo "cluster.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
for n in ${CLUSTER_SIZES//,/ }; do
	case $n in 2|3|4) ;; *) echo "cluster.sh: --nodes takes sizes from 2 to 4 (the loadgen's ports)" >&2; exit 2 ;; esac
done
if [ "$QUICK" = 1 ]; then N=500 DUR=3 MAX_DUR=3; else N=1000 DUR=10 MAX_DUR=5; fi

die() { echo "cluster.sh: $*" >&2; exit 1; }
want() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }

cd "$ROOT" || die "no $ROOT"
command -v taskset >/dev/null || die "taskset is missing (util-linux)"
[ "$(nproc)" -ge 2 ] || die "needs 2 cores"
[ -x "$REDIS" ] || die "no $REDIS (tests/deps.sh --test installs redis-server)"
[ -x "${PG_BIN:-/usr/lib/postgresql/15/bin}/initdb" ] && command -v psql >/dev/null ||
	die "PostgreSQL 15 is not installed (tests/deps.sh --test)"

echo "== build ($BUILD)"
if grep -q '^SANITIZER:STRING=.\+' "$BUILD/CMakeCache.txt" 2>/dev/null; then
	die "$BUILD is a sanitizer build: benchmark a normal build (PARLEY_BUILD_DIR=...)"
fi
cmake -S "$ROOT" -B "$BUILD" >/dev/null || die "cmake configure failed"
cmake --build "$BUILD" --target parley loadgen -j 2 >/dev/null ||
	die "build failed (cmake --build $BUILD --target parley loadgen)"
PARLEY=$BUILD/parley
LOADGEN=$BUILD/tests/bench/loadgen

TMP=$(mktemp -d /tmp/parley-cluster-bench.XXXXXX)
RAW=$TMP/raw.txt
: >"$RAW"
NODES=()
REDIS_PID=""
PG_DIR=""
cleanup() {
	local p
	for p in "${NODES[@]}"; do kill -KILL "$p" 2>/dev/null; done
	[ -n "$REDIS_PID" ] && { kill -TERM "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null; }
	[ -n "$PG_DIR" ] && { bash "$ROOT/tests/pg.sh" stop "$PG_DIR" >/dev/null 2>&1; rm -rf "$PG_DIR"; }
	rm -rf "$TMP/data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. "$ROOT/tests/bench/lib.sh"

# PostgreSQL (tests/pg.sh: fsync on, synchronous_commit on) on core 1, every
# process it forks too; its own directory outside $TMP (the postgres user
# cannot enter $TMP when we are root). A fresh database for each run.
PG_DIR=$(mktemp -d /tmp/parley-cluster-pg.XXXXXX)
PG_URI=$(taskset -c $OTHER_CPU bash "$ROOT/tests/pg.sh" start "$PG_DIR") ||
	die "PostgreSQL did not start (see $PG_DIR/postgres.log)"
PG_PID=$(head -1 "$PG_DIR/data/postmaster.pid")
for p in $PG_PID $(pgrep -P "$PG_PID"); do taskset -a -p -c $OTHER_CPU "$p" >/dev/null; done
PG_DB=0
pg_database() {
	PG_DB=$((PG_DB + 1))
	psql "$PG_URI" -qXc "CREATE DATABASE cbench_$PG_DB" >/dev/null || die "CREATE DATABASE failed"
	PG_DB_URI=${PG_URI/\/postgres\?/\/cbench_$PG_DB?}
}
pg_drop_database() {
	psql "$PG_URI" -qXc "DROP DATABASE cbench_$PG_DB WITH (FORCE)" >/dev/null 2>&1
}

# Redis: a Unix socket only, no persistence, on core 1.
REDIS_SOCK=$TMP/redis.sock
taskset -c $OTHER_CPU "$REDIS" --port 0 --unixsocket "$REDIS_SOCK" --dir "$TMP" --save '' \
	--appendonly no >"$TMP/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 50); do
	[ "$(redis-cli -s "$REDIS_SOCK" PING 2>/dev/null)" = PONG ] && break
	sleep 0.1
done
[ "$(redis-cli -s "$REDIS_SOCK" PING 2>/dev/null)" = PONG ] || die "redis-server did not start ($TMP/redis.log)"
echo "== PostgreSQL $PG_URI (postmaster $PG_PID), Redis $REDIS_SOCK (pid $REDIS_PID), both on core $OTHER_CPU"

# start_node PORT [ENV...]: a parley on core 0 on the run's database.
start_node() {
	local port=$1
	shift
	port_open "$port" && die "port $port is already in use (set BENCH_PORT_BASE)"
	mkdir -p "$TMP/data"
	env "${NODE_ENV[@]}" "$@" PORT="$port" PARLEY_STORE="$PG_DB_URI" PARLEY_PLUGIN_PATH=tests/plugins \
		PARLEY_PLUGINS=bench PARLEY_LOG=warn PARLEY_DATA_DIR="$TMP/data/$port" \
		taskset -c $SERVER_CPU "$PARLEY" >>"$TMP/parley.log" 2>&1 &
	local pid=$!
	NODES+=("$pid")
	for _ in $(seq 100); do
		port_open "$port" && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	die "parley did not start on port $port (see $TMP/parley.log)"
}

stop_nodes() {
	local p alive=1
	for p in "${NODES[@]}"; do kill -0 "$p" 2>/dev/null || alive=0; kill -TERM "$p" 2>/dev/null; done
	for p in "${NODES[@]}"; do
		for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	NODES=()
	rm -rf "$TMP/data"
	ALIVE=$alive
}

# run SCEN(fanout|send|fanmax) SETUP(1node|<n>nodes) ROUND
run() {
	local scen=$1 setup=$2 round=$3 args=() load
	case $scen in
	fanout) load=(--mode latency --event bench --rate "$RATE" --duration "$DUR" --warmup 1) ;;
	# A store that falls behind leaves seconds of sends queued: the
	# drain waits longer for them before counting the missing.
	send) load=(--mode latency --event send --rate "$RATE" --duration "$DUR" --warmup 1 --drain 20) ;;
	# At most 8 deliveries due per member: the window's worth (the
	# acks come before the other node's deliveries).
	fanmax) load=(--mode fanout --window 8 --undelivered $((N * 8)) --duration "$MAX_DUR") ;;
	esac
	pg_database
	if [ "$setup" = 1node ]; then
		start_node "$PORT_A"
		args=(--port "$PORT_A" --server-pid "${NODES[0]}")
	else
		local i ports=() pids
		for i in $(seq 0 $((${setup%nodes} - 1))); do
			start_node $((PORT_A + i)) PARLEY_REDIS="unix://$REDIS_SOCK" PARLEY_NODE_ID=bench-$i
			ports+=($((PORT_A + i)))
		done
		pids=$(IFS=,; echo "${NODES[*]}")
		args=(--port "$(IFS=,; echo "${ports[*]}")" --server-pid "$pids"
			--redis-pid "$REDIS_PID" --redis-sock "$REDIS_SOCK" --cluster-metrics)
	fi
	local out rc
	out=$(timeout 300 taskset -c $OTHER_CPU "$LOADGEN" "${args[@]}" --db-pid "$PG_PID" \
		--label "$setup" --clients "$N" --room 10 "${load[@]}" 2>>"$TMP/loadgen.err")
	rc=$?
	stop_nodes
	pg_drop_database
	local result
	result=$(grep '^RESULT ' <<<"$out" | head -1)
	echo "SCEN=$scen SETUP=$setup ROUND=$round RC=$rc ALIVE=$ALIVE ${result:-RESULT}" >>"$RAW"
	grep -v '^RESULT ' <<<"$out" | sed "s/^/  [$scen $setup r$round] /"
	[ "$ALIVE" = 1 ] || echo "  [$scen $setup r$round] A NODE DIED (see $TMP/parley.log)"
}

START=$(date +%s)
echo "== $ROUNDS round(s): $N clients in rooms of 10, $RATE sends/s, ${DUR} s measured; logs in $TMP"
for round in $(seq "$ROUNDS"); do
	echo "== round $round"
	for scen in fanout send fanmax; do
		want "$scen" || continue
		# The setups' order is reversed in even rounds.
		setups=(1node)
		for n in ${CLUSTER_SIZES//,/ }; do setups+=("${n}nodes"); done
		[ $((round % 2)) = 0 ] && setups=($(printf '%s\n' "${setups[@]}" | tac))
		for setup in "${setups[@]}"; do run "$scen" "$setup" "$round"; done
	done
done
ELAPSED=$(($(date +%s) - START))

# The table: one row per run, then the medians. Per delivery, the nodes'
# CPU added up. Per broadcast (parley_cluster_published_total counts a
# broadcast once, however many channels it goes to), Redis's CPU and bytes;
# and Redis's commands per broadcast, which are its SPUBLISHes (one per
# targeted room's channel: bench:send targets the conversation,
# message:send the conversation and the sender's user room) and a few
# PINGs and liveness SETs a second besides.
table() {
	awk '
	function f(k,   m) { if (match(" " $0, " " k "=[^ ]*")) { m = substr(" " $0, RSTART + length(k) + 2, RLENGTH - length(k) - 2); return m } return "" }
	function med(key,   n, m, i, j, t, a, b) {
		n = 0
		m = split(vals[key], b, " ")
		for (i = 1; i <= m; i++) if (b[i] != "-") a[++n] = b[i]
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
		if (n == 0) return "-"
		return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	function put(key, v) { vals[key] = vals[key] " " v }
	BEGIN {
		CONVFMT = "%.10g"; OFMT = "%.10g"
		printf "%-6s %-6s %-2s %8s %7s %11s %11s %6s %7s %7s %7s %7s %6s %6s %6s %8s %6s %6s %7s\n",
			"event", "setup", "r", "sends/s", "acks/s", "deliv/s", "remote/s", "lost", "p50us", "p99us",
			"rp50us", "rp99us", "cpu%", "us/dlv", "cmd/bc", "redisus", "in_B", "out_B", "pgus"
	}
	/^SCEN=/ {
		scen = f("SCEN"); setup = f("SETUP"); r = f("ROUND")
		dl = f("deliveries_per_s"); d = f("duration_s"); cpu = f("server_cpu_s")
		n_del = dl * d
		usd = n_del > 0 ? cpu * 1e6 / n_del : 0
		pub = f("published"); sent = f("sends_per_s") * d
		redis = f("redis_cpu_s")
		pps = (pub != "" && pub > 0) ? sprintf("%.2f", f("redis_commands") / pub) : "-"
		rus = (pub != "" && pub > 0) ? sprintf("%.1f", redis * 1e6 / pub) : "-"
		inb = (pub != "" && pub > 0) ? sprintf("%.0f", f("redis_in_bytes") / pub) : "-"
		outb = (pub != "" && pub > 0) ? sprintf("%.0f", f("redis_out_bytes") / pub) : "-"
		rp50 = f("rlat_p50_us"); rp99 = f("rlat_p99_us"); rem = f("remote_deliveries_per_s")
		if (rp50 == "") { rp50 = "-"; rp99 = "-" }
		if (rem == "") rem = "-"
		acks = f("acks_per_s"); db = f("db_cpu_s")
		pgus = (db > 0 && acks > 0) ? sprintf("%.0f", db * 1e6 / (acks * d)) : "-"
		printf "%-6s %-6s %-2s %8s %7s %11s %11s %6s %7s %7s %7s %7s %6s %6.2f %6s %8s %6s %6s %7s%s\n",
			scen, setup, r, f("sends_per_s"), acks, dl, rem, f("lost"), f("lat_p50_us"), f("lat_p99_us"),
			rp50, rp99, f("server_cpu_pct"), usd, pps, rus, inb, outb, pgus,
			(f("RC") != "0" || f("ALIVE") != "1") ? "  FAILED (rc " f("RC") ")" : ""
		k = scen " " setup
		if (!(k in seen)) { seen[k] = 1; order[++no] = k }
		put(k "|s", f("sends_per_s")); put(k "|d", dl); put(k "|rm", rem); put(k "|l", f("lost"))
		put(k "|p50", f("lat_p50_us")); put(k "|p99", f("lat_p99_us")); put(k "|rp50", rp50); put(k "|rp99", rp99)
		put(k "|cpu", f("server_cpu_pct")); put(k "|usd", sprintf("%.2f", usd)); put(k "|pps", pps)
		put(k "|rus", rus); put(k "|in", inb); put(k "|out", outb); put(k "|pg", pgus); put(k "|a", acks)
	}
	END {
		print ""
		print "medians over the rounds"
		printf "%-6s %-6s %8s %7s %11s %11s %6s %7s %7s %7s %7s %6s %6s %6s %8s %6s %6s %7s\n",
			"event", "setup", "sends/s", "acks/s", "deliv/s", "remote/s", "lost", "p50us", "p99us",
			"rp50us", "rp99us", "cpu%", "us/dlv", "cmd/bc", "redisus", "in_B", "out_B", "pgus"
		for (i = 1; i <= no; i++) {
			k = order[i]; split(k, kk, " ")
			printf "%-6s %-6s %8s %7s %11s %11s %6s %7s %7s %7s %7s %6s %6s %6s %8s %6s %6s %7s\n",
				kk[1], kk[2], med(k "|s"), med(k "|a"), med(k "|d"), med(k "|rm"), med(k "|l"), med(k "|p50"),
				med(k "|p99"), med(k "|rp50"), med(k "|rp99"), med(k "|cpu"), med(k "|usd"),
				med(k "|pps"), med(k "|rus"), med(k "|in"), med(k "|out"), med(k "|pg")
		}
	}' "$RAW"
}

COMMIT=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$ROOT" status --porcelain -- core scripts plugins tests/bench CMakeLists.txt 2>/dev/null | wc -l)
{
	echo "parley cluster benchmark: ${CLUSTER_SIZES//,/ and } nodes on Redis beside one node"
	echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC'); load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
	echo "command:  $COMMAND   ($ROUNDS round(s), ${ELAPSED} s)"
	echo "commit:   $COMMIT$([ "$DIRTY" -gt 0 ] && echo " + uncommitted changes in $DIRTY file(s)")"
	echo "machine:  $(uname -srm); $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
	echo "redis:    $("$REDIS" --version | cut -d' ' -f3) on a Unix socket, no persistence, taskset -c $OTHER_CPU"
	echo "postgres: $(psql "$PG_URI" -qXAtc 'SELECT version()' 2>/dev/null | cut -d, -f1); tests/pg.sh (fsync on), taskset -c $OTHER_CPU; a fresh database per run"
	echo "load:     $N clients, rooms of 10 (client i on node i % n: 5 + 5 members in 2nodes), one sender per room; fanout, send:"
	echo "          $RATE sends/s, ${DUR} s after 1 s of warm-up; fanmax: 8 unacked per sender, ${MAX_DUR} s"
	echo "placing:  parley node(s) taskset -c $SERVER_CPU; loadgen, Redis, PostgreSQL taskset -c $OTHER_CPU"
	echo "nodes:    PARLEY_PLUGIN_PATH=tests/plugins PARLEY_PLUGINS=bench PARLEY_LOG=warn${NODE_ENV[*]:+ ${NODE_ENV[*]}} (default scripts)"
	echo "columns:  deliv/s all deliveries, remote/s those to a member on another node; p50/p99 send to"
	echo "          receipt, all and (rp) the remote ones; cpu% the node(s) in % of a core; us/dlv the nodes'"
	echo "          CPU per delivery; per broadcast (parley_cluster_published_total, one a send): cmd/bc Redis's"
	echo "          commands (its SPUBLISHes, one per targeted channel), redisus Redis's CPU (µs), in_B/out_B"
	echo "          Redis's network bytes in and out; pgus PostgreSQL's CPU per ack (µs); lost: deliveries"
	echo "          still missing when the drain ends (5 s; 20 s for send)"
	echo
	table
	echo
	echo "Per run (RESULT lines of tests/bench/loadgen):"
	cat "$RAW"
} >"$TMP/report.txt"
cp "$TMP/report.txt" "$OUT"
echo
sed '/^Per run/,$d' "$TMP/report.txt"
echo "(written to $OUT)"
