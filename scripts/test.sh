#!/usr/bin/env bash
# test.sh runs every test of silentrefresh, on a fresh machine too:
#
#   1. go vet and the Go tests with the race detector, against real SQLite
#      files and a throwaway PostgreSQL that this script starts and removes;
#   2. the browser client's unit tests under Node's test runner and its
#      browser tests in real headless Chromium (installed from Debian's
#      "chromium" package when missing and the script runs as root).
#
# The examples' resource servers run under Node (npm ci of their own) and
# Debian's python3 with python3-jwt and python3-cryptography, installed
# like Chromium when missing.
#
# Usage: scripts/test.sh            everything
#        scripts/test.sh go         only the Go tests (PostgreSQL included)
#        scripts/test.sh web        only the browser client's tests
#
# With CI=true a PostgreSQL test that would skip fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
export SILENTREFRESH_PG_DIR=${SILENTREFRESH_PG_DIR:-$(mktemp -d /tmp/silentrefresh-pg.XXXXXX)}

cleanup() {
	scripts/postgres.sh destroy >/dev/null 2>&1 || true
}
trap cleanup EXIT

# need installs the Debian packages named that are missing, when the script
# runs as root with apt-get (a fresh CI machine); otherwise it says what to
# install and fails.
need() {
	local missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "== installing Debian's ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
			|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
	else
		echo "test.sh: missing Debian packages: ${missing[*]} (apt-get install ${missing[*]})" >&2
		exit 1
	fi
}

run_go() {
	# The Python resource server of examples/ runs on Debian's python3 with
	# PyJWT and cryptography.
	need python3-jwt python3-cryptography
	# The throwaway PostgreSQL of the store and e2e tests.
	[ -x "${PG_BIN:-/usr/lib/postgresql/15/bin}/initdb" ] || need postgresql
	echo "== go vet"
	go vet ./...
	echo "== starting a throwaway PostgreSQL"
	eval "$(scripts/postgres.sh start)"
	echo "== go test -race ./..."
	go test -race -count=1 -timeout 20m ./...
}

run_web() {
	[ -x /usr/bin/chromium ] || need chromium
	echo "== browser client tests"
	scripts/test-web.sh
}

case "$what" in
all) run_go; run_web ;;
go) run_go ;;
web) run_web ;;
*) echo "usage: scripts/test.sh [all|go|web]" >&2; exit 2 ;;
esac
echo "== all tests passed"
