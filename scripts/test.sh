#!/usr/bin/env bash
# test.sh runs every test of silentrefresh, on a fresh machine too:
#
#   1. go vet and the Go tests with the race detector, against real SQLite
#      files and a throwaway PostgreSQL that this script starts and removes;
#   2. the browser client's unit tests under Node's test runner and its
#      browser tests in real headless Chromium (installed from Debian's
#      "chromium" package when missing and the script runs as root).
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

run_go() {
	echo "== go vet"
	go vet ./...
	echo "== starting a throwaway PostgreSQL"
	eval "$(scripts/postgres.sh start)"
	echo "== go test -race ./..."
	go test -race -count=1 -timeout 20m ./...
}

run_web() {
	if [ ! -x /usr/bin/chromium ]; then
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
			echo "== installing Debian's chromium for the browser tests"
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
				|| { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
		else
			echo "test.sh: /usr/bin/chromium is missing; install Debian's chromium package (apt-get install chromium)" >&2
			exit 1
		fi
	fi
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
