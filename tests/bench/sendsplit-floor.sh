#!/usr/bin/env bash
# sendsplit-floor.sh - how far the default scripts' policy is from the
# durable target, and where the floor under it is: the sendsplit load
# (ab-sendsplit.sh: LMDB, the store's writer thread on the loadgen's core)
# through this tree's parley with three versions of scripts/messages.lua,
# in interleaved rounds:
#   default   the scripts as they are
#   nopolicy  message:send without its access check, the stored sender
#             profile, the member re-check and the inbox announcement
#             (floor/nopolicy.patch)
#   bare      a message:send handler that only stores, broadcasts to the
#             conversation's room and acks (floor/bare.patch)
# The two cut versions are measurements only: they drop checks a real
# deployment needs. A patch that no longer applies stops the script.
#
#   bash tests/bench/sendsplit-floor.sh [ROUNDS [SECONDS]]
set -eu
ROUNDS=${1:-3} DUR=${2:-5}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build --target parley loadgen -j2 >/dev/null
TMP=$(mktemp -d /tmp/parley-floor.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
for v in default nopolicy bare; do
	mkdir -p "$TMP/$v/build" "$TMP/$v/tests"
	cp -r scripts "$TMP/$v/"
	ln -s "$ROOT/tests/plugins" "$TMP/$v/tests/plugins"
	ln -s "$ROOT/build/parley" "$TMP/$v/build/parley"
	[ $v = default ] || patch -s -d "$TMP/$v" -p1 <"tests/bench/floor/$v.patch"
done
printf 'sendsplit floor: date %s, commit %s, %s rounds of %s s\n' \
	"$(date -u '+%Y-%m-%d %H:%M UTC')" "$(git rev-parse --short HEAD)" "$ROUNDS" "$DUR"
bash tests/bench/ab-sendsplit.sh "$ROUNDS" "$DUR" default="$TMP/default/build/parley" \
	nopolicy="$TMP/nopolicy/build/parley" bare="$TMP/bare/build/parley"
