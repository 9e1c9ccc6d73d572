# shellcheck shell=bash
# lib.sh - what the benchmark scripts share (run.sh, cluster.sh, ab-*.sh),
# sourced by them: nothing here runs on its own.

# port_open PORT: whether something listens on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# field NAME LINE: the value of NAME= in a loadgen RESULT line.
field() { grep -o " $1=[-0-9.]*" <<<"$2" | head -1 | cut -d= -f2; }

# store_writer_tid PID: the thread id of parley's store writer (the thread
# named parley-store) in process PID, looked for up to 5 s (the store opens
# after the port does); prints nothing when there is none.
store_writer_tid() {
	local t
	for _ in $(seq 50); do
		for t in /proc/"$1"/task/*; do
			[ "$(cat "$t/comm" 2>/dev/null)" = parley-store ] && { echo "${t##*/}"; return 0; }
		done
		sleep 0.1
	done
}

# tree_parley BIN DATA PORT [VAR=VALUE ...]: starts BIN on core 0 with its
# own tree's scripts and test plugins (BIN/../../scripts, the bench
# plugin), the store in DATA, quiet; waits up to 10 s for PORT. Sets SPID.
tree_parley() {
	local bin=$1 data=$2 port=$3 tree
	shift 3
	tree=$(cd "$(dirname "$bin")/.." && pwd)
	env "$@" PARLEY_SCRIPTS="$tree/scripts" PORT="$port" PARLEY_PLUGIN_PATH="$tree/tests/plugins" \
		PARLEY_PLUGINS=bench PARLEY_LOG=warn PARLEY_DATA_DIR="$data" \
		taskset -c 0 "$bin" >/dev/null 2>&1 &
	# shellcheck disable=SC2034 # the caller's
	SPID=$!
	for _ in $(seq 100); do port_open "$port" && break; sleep 0.1; done
}
