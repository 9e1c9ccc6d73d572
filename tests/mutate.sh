#!/usr/bin/env bash
# mutate.sh - the mutation check (docs/testing.md): breaks parley one line at
# a time in a scratch copy of the work tree, builds it, runs the suites that
# should notice, and prints which breaks were killed (a suite failed) and
# which survived (every suite passed: a promise no test holds). Slow (a
# build and a few test files per mutant), so it is not part of run.sh.
#
#   bash tests/mutate.sh                 # every mutant in tests/mutants.txt
#   bash tests/mutate.sh nosync guard-8x # only these (by name)
#   MUTATE_LIST=my.txt bash tests/mutate.sh
#
# tests/mutants.txt: one mutant a line, fields separated by " | ":
#   name | file | sed expression (one substitution) | suites
# (no " | " inside the expression), where suites are test files under tests/ (integration/x.test.js), "plugins"
# (tests/plugin-test.sh) or "ctest". A mutant whose expression no longer
# changes its file is reported "stale", never "survived". The unmutated copy
# runs the same suites first: a suite that fails there makes every result
# meaningless, and the check stops.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
list=${MUTATE_LIST:-$root/tests/mutants.txt}
per_suite_timeout=${MUTATE_TIMEOUT:-600}
# Each mutant's failing suite output is kept here, to see how it was killed.
logs=${MUTATE_LOGS:-/tmp/parley-mutate-logs}
mkdir -p "$logs"

scratch=$(mktemp -d /tmp/parley-mutate-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
echo "mutate: scratch copy in $scratch (of $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD || echo ', with uncommitted changes'))"
# The tracked files as they are in the work tree (uncommitted edits included).
git -C "$root" ls-files -z --cached --others --exclude-standard |
	(cd "$root" && tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$scratch"
ln -sfn "$root/tests/node_modules" "$scratch/tests/node_modules"
cmake -S "$scratch" -B "$scratch/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || exit 1

build() {
	cmake --build "$scratch/build" -j2 >"$scratch/build.log" 2>&1
}

# Runs the suites named in $1; prints the first that failed, or nothing.
run_suites() {
	local suite
	for suite in $1; do
		case "$suite" in
		ctest)
			(cd "$scratch/build" && timeout "$per_suite_timeout" ctest --output-on-failure) \
				>"$scratch/suite.log" 2>&1 || { echo "$suite"; return; } ;;
		plugins)
			PARLEY_BIN="$scratch/build/parley" timeout "$per_suite_timeout" \
				bash "$scratch/tests/plugin-test.sh" >"$scratch/suite.log" 2>&1 ||
				{ echo "$suite"; return; } ;;
		*)
			(cd "$scratch/tests" && PARLEY_BIN="$scratch/build/parley" timeout "$per_suite_timeout" \
				node --test --test-concurrency=1 --test-timeout=600000 "$suite") \
				>"$scratch/suite.log" 2>&1 || { echo "$suite"; return; } ;;
		esac
	done
}

declare -a names files exprs suites
while IFS= read -r line; do
	case "$line" in '#'* | '') continue ;; esac
	# Split on " | ": the expression, in the middle, may hold a bare "|".
	name=${line%% | *}; rest=${line#* | }
	file=${rest%% | *}; rest=${rest#* | }
	suite=${rest##* | }; expr=${rest% | *}
	if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then continue; fi
	names+=("$name"); files+=("$file"); exprs+=("$expr"); suites+=("$suite")
done <"$list"
[ ${#names[@]} -gt 0 ] || { echo "mutate: no mutant selected from $list"; exit 1; }

echo "mutate: building the unmutated copy"
build || { cat "$scratch/build.log"; exit 1; }
all_suites=$(printf '%s\n' "${suites[@]}" | tr ' ' '\n' | sort -u | tr '\n' ' ')
echo "mutate: baseline: $all_suites"
failed=$(run_suites "$all_suites")
if [ -n "$failed" ]; then
	echo "mutate: $failed fails on the unmutated copy; fix that first:"
	tail -40 "$scratch/suite.log"
	exit 1
fi

results=()
killed=0 survived=0
for i in "${!names[@]}"; do
	name=${names[$i]} file=${files[$i]} expr=${exprs[$i]} suite=${suites[$i]}
	target="$scratch/$file"
	cp "$target" "$scratch/pristine"
	sed -i -e "$expr" "$target"
	if cmp -s "$target" "$scratch/pristine"; then
		result="stale (the expression changes nothing)"
	elif ! build; then
		result="does not build"
	else
		failed=$(run_suites "$suite")
		if [ -n "$failed" ]; then
			cp "$scratch/suite.log" "$logs/$name.log"
			result="killed by $failed"
			killed=$((killed + 1))
		else
			result="SURVIVED"
			survived=$((survived + 1))
		fi
	fi
	cp "$scratch/pristine" "$target"
	echo "mutate: $name: $result"
	results+=("| $name | \`$file\` | $result |")
done
build >/dev/null 2>&1 || true

echo
echo "| mutant | file | result |"
echo "|---|---|---|"
printf '%s\n' "${results[@]}"
echo
echo "mutate: $killed killed, $survived survived of ${#names[@]} (how each was killed: $logs/NAME.log)"
[ "$survived" -eq 0 ]
