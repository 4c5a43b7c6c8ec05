#!/usr/bin/env bash
# profile.sh writes a CPU profile of `silentrefresh serve` under the refresh
# load of bench/peers.sh (refreshbench from ../shared/peers, 64 sessions),
# on SQLite and on PostgreSQL, and prints the top of each by cumulative
# time with the number of refreshes, to turn into CPU per refresh.
#
#   bench/profile.sh                   8 s per backend, profiles in ./profiles
#   DURATION=10s OUT=/tmp/prof bench/profile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-8s}
WORKERS=${WORKERS:-64}
OUT=${OUT:-$PWD/profiles}
if [ -z "${PEERS:-}" ]; then
	for p in ../shared/peers ../../shared/peers /work/shared/peers; do
		if [ -f "$p/go.mod" ]; then PEERS=$(cd "$p" && pwd); break; fi
	done
fi
[ -n "${PEERS:-}" ] || { echo "profile.sh: set PEERS to the peers module (../shared/peers)" >&2; exit 1; }
mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/silentrefresh-prof.XXXXXX)
export SILENTREFRESH_PG_DIR=${SILENTREFRESH_PG_DIR:-$(mktemp -d /tmp/silentrefresh-pg.XXXXXX)}
PID=
cleanup() {
	if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
	scripts/postgres.sh destroy >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap cleanup EXIT
(cd "$PEERS" && go build -o "$TMP/refreshbench" ./cmd/refreshbench)
CGO_ENABLED=0 go build -o "$TMP/silentrefresh" ./cmd/silentrefresh
eval "$(scripts/postgres.sh start)"
PGDSN=$SILENTREFRESH_TEST_POSTGRES
psql "$PGDSN" -qc "DROP DATABASE IF EXISTS profile" -c "CREATE DATABASE profile" >/dev/null
PGDB=$(echo "$PGDSN" | sed -E 's#/[^/?]*(\?|$)#/profile\1#')
declare -A DB=([sqlite]="sqlite:$TMP/sr.db" [postgres]="$PGDB")
for b in sqlite postgres; do
	printf 'pw\n' | "$TMP/silentrefresh" user add --db "${DB[$b]}" --username alice --password-stdin >/dev/null
	"$TMP/silentrefresh" serve --addr 127.0.0.1:18090 --db "${DB[$b]}" --log-level warn --cpu-profile "$OUT/$b.pprof" >"$TMP/$b.log" 2>&1 &
	PID=$!
	for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/18090) 2>/dev/null && break; sleep 0.05; done
	"$TMP/refreshbench" -url http://127.0.0.1:18090/oauth2/token -d "$DURATION" -workers "$WORKERS" | tee "$OUT/$b.txt"
	kill -TERM "$PID"; wait "$PID" || true; PID=
	echo "== $b: $(grep -h . "$OUT/$b.txt" | tr '\n' ' ')"
	go tool pprof -top -cum -nodecount=60 "$OUT/$b.pprof" 2>/dev/null | head -75
done
