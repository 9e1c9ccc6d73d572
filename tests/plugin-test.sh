#!/usr/bin/env bash
# plugin-test.sh - runs the tests of scripts and plugins against the real
# parley: every test/*.test.js under the folders given (default: plugins/*
# and examples/plugins/*), with `require('parley-testing')` available.
#
#   bash tests/plugin-test.sh                      # all of the repository's
#   bash tests/plugin-test.sh path/to/my-plugin    # one plugin of yours
#
# PARLEY_BIN picks the binary (default: build/parley, built if missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# What the plugin tests need, no more: no browser, no strace.
bash "$root/tests/deps.sh" --plugin-test >/dev/null
if [ -z "${PARLEY_BIN:-}" ]; then
	if [ ! -x "$root/build/parley" ]; then
		cmake -S "$root" -B "$root/build" >/dev/null
		cmake --build "$root/build" -j"$(nproc)" --target parley >/dev/null
	fi
	export PARLEY_BIN="$root/build/parley"
fi

folders=("$@")
if [ ${#folders[@]} -eq 0 ]; then
	for d in "$root"/plugins/* "$root"/examples/plugins/*; do
		[ -d "$d/test" ] && folders+=("$d")
	done
fi
files=()
for d in "${folders[@]}"; do
	for f in "$d"/test/*.test.js; do
		[ -e "$f" ] && files+=("$(cd "$(dirname "$f")" && pwd)/$(basename "$f")")
	done
done
if [ ${#files[@]} -eq 0 ]; then
	echo "plugin-test: no test/*.test.js under ${folders[*]:-plugins/ examples/plugins/}"
	exit 0
fi
export NODE_PATH="$root/tests/harness:$root/tests/node_modules${NODE_PATH:+:$NODE_PATH}"
cd "$root/tests"
exec node --test --test-concurrency=1 --test-timeout=600000 "${files[@]}"
