#!/usr/bin/env bash
# deps.sh - installs what parley needs on Debian 12 and is missing: the build
# tools and libraries (apt), and with --test what the tests use: Chromium
# (apt, for the browser test), strace (apt, for the fsync test), systemd and
# dpkg-dev (apt, for the package test: systemd-analyze, dpkg-shlibdeps), PostgreSQL
# (apt, for the PostgreSQL pass: tests/pg.sh), HAProxy
# and nginx (apt, for the proxy test), promtool (for the metrics test:
# unpacked from Debian's prometheus package into tests/.tmp/promtool, not
# installed, which would start a Prometheus server as a service) and the npm
# packages of the test clients (tests/node_modules) and of the example page
# (examples/web/node_modules), each from its package-lock.json. With
# --plugin-test, only what a plugin's tests use: the test clients' npm
# packages (a Lua plugin's test needs no browser and no strace).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mode=${1:-}
case "$mode" in
"" | --test | --plugin-test) ;;
*) echo "deps: unknown option $mode (--test, --plugin-test)" >&2; exit 2 ;;
esac

packages=(build-essential cmake pkg-config libwebsockets-dev libwebsockets-evlib-ev
	libev-dev libluajit-5.1-dev luajit liblmdb-dev libssl-dev zlib1g-dev libmsgpack-dev curl
	libcurl4-openssl-dev libpq-dev)

if [ "$mode" = "--test" ]; then
	# systemd-analyze, dpkg-shlibdeps: the package test (cpack's .deb, the
	# unit); haproxy, nginx: the proxy test (docs/deploy.md's configs).
	# postgresql: the PostgreSQL pass (tests/pg.sh; its service is not
	# used: the tests run a private one).
	packages+=(chromium strace systemd dpkg-dev haproxy nginx postgresql)
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "$mode" = "--test" ] && [ ! -x "$here/.tmp/promtool/promtool" ]; then
	tmp=$(mktemp -d)
	# apt-get download needs the package lists (a machine that had all the
	# packages above may never have fetched them).
	(cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 ||
		{ $sudo apt-get update -qq && apt-get download prometheus >/dev/null 2>&1; }; } &&
		dpkg-deb -x prometheus_*.deb root)
	mkdir -p "$here/.tmp/promtool"
	cp "$tmp/root/usr/bin/promtool" "$here/.tmp/promtool/promtool"
	rm -rf "$tmp"
fi

if [ -n "$mode" ]; then
	# Node comes with the machine (NOTES.md: do not apt-get install nodejs).
	command -v node >/dev/null || { echo "deps: node is required for the tests" >&2; exit 1; }
	dirs=("$here")
	[ "$mode" = "--test" ] && dirs+=("$here/../examples/web")
	for dir in "${dirs[@]}"; do
		# A node_modules that is a symlink is another checkout's (a git
		# worktree sharing the main one's): npm ci would empty it for
		# everyone who uses it. A fresh worktree's package-lock.json is
		# always "newer", so the date cannot decide here.
		[ -L "$dir/node_modules" ] && [ -d "$dir/node_modules/socket.io-client" -o -d "$dir/node_modules/socket.io" ] && continue
		if [ ! -d "$dir/node_modules" ] ||
			[ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
			(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
		fi
	done
fi
