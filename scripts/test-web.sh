#!/usr/bin/env bash
# Tests the browser client (web/): the module's unit tests under Node's test
# runner, then the browser tests in headless Chromium against the real
# server built from this tree. Exits non-zero on any failure.
#
#   scripts/test-web.sh            # everything
#   CHROMIUM_PATH=/path/chromium scripts/test-web.sh
#   SILENTREFRESH_TEST_OUTPUT=dir  # where screenshots go (default web/test-output)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

command -v node >/dev/null || { echo "test-web: node is not installed" >&2; exit 1; }
command -v npm >/dev/null || { echo "test-web: npm is not installed" >&2; exit 1; }

echo "== web: npm ci"
npm ci --prefix web --no-audit --no-fund --prefer-offline --loglevel=error

echo "== web: unit tests"
node --test web/test/unit/

chromium="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
	echo "test-web: Chromium not found at $chromium: install it (apt-get install -y chromium) or set CHROMIUM_PATH" >&2
	exit 1
fi
export CHROMIUM_PATH="$chromium"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "== web: building the server"
CGO_ENABLED=0 go build -o "$tmp/silentrefresh" ./cmd/silentrefresh

echo "== web: browser tests (Chromium $("$chromium" --version 2>/dev/null | grep -o '[0-9][0-9.]*' | head -1))"
SILENTREFRESH_BIN="$tmp/silentrefresh" node --test --test-concurrency=1 web/test/browser/
