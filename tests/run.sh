#!/usr/bin/env bash
# run.sh - the whole test suite from a fresh checkout: installs what is
# missing, builds parley (and an ASan+UBSan build), runs the unit tests
# under ctest, then the integration tests and the plugin tests
# (tests/plugin-test.sh) against the real binary on loopback, first the
# normal build and then the sanitizer build, then both suites again on the
# normal build with the store on a private PostgreSQL (tests/pg.sh;
# PARLEY_SKIP_PG=1 leaves that pass out).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash tests/deps.sh --test

jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSANITIZER=address,undefined >/dev/null
cmake --build build-asan -j"$jobs"

echo "== unit tests (ctest)"
(cd build && ctest --output-on-failure)
(cd build-asan && ctest --output-on-failure)

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== integration tests (build/parley)"
(cd tests && PARLEY_BIN="$root/build/parley" node --test --test-concurrency=1 --test-timeout=600000 integration/)
echo "== plugin tests (tests/plugin-test.sh, build/parley)"
PARLEY_BIN="$root/build/parley" bash tests/plugin-test.sh
if [ "${PARLEY_SKIP_ASAN:-0}" != "1" ]; then
	echo "== integration and plugin tests under ASan+UBSan (build-asan/parley)"
	(cd tests && PARLEY_BIN="$root/build-asan/parley" node --test --test-concurrency=1 --test-timeout=600000 integration/)
	PARLEY_BIN="$root/build-asan/parley" bash tests/plugin-test.sh
fi
if [ "${PARLEY_SKIP_PG:-0}" != "1" ]; then
	echo "== integration and plugin tests with the store on PostgreSQL (build/parley)"
	pgdir=$(mktemp -d /tmp/parley-pg-XXXXXX)
	# Stopped however the pass ends.
	trap 'bash "$root/tests/pg.sh" stop "$pgdir" || true; rm -rf "$pgdir"' EXIT
	PARLEY_TEST_PG=$(bash tests/pg.sh start "$pgdir")
	export PARLEY_TEST_PG
	(cd tests && PARLEY_BIN="$root/build/parley" node --test --test-concurrency=1 --test-timeout=600000 integration/)
	PARLEY_BIN="$root/build/parley" bash tests/plugin-test.sh
fi
