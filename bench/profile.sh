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
. bench/harness.sh prof
mkdir -p "$OUT"
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
	PIDS=("$!")
	for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/18090) 2>/dev/null && break; sleep 0.05; done
	"$TMP/refreshbench" -url http://127.0.0.1:18090/oauth2/token -d "$DURATION" -workers "$WORKERS" | tee "$OUT/$b.txt"
	kill -TERM "${PIDS[0]}"; wait "${PIDS[0]}" || true; PIDS=()
	echo "== $b: $(grep -h . "$OUT/$b.txt" | tr '\n' ' ')"
	go tool pprof -top -cum -nodecount=60 "$OUT/$b.pprof" 2>/dev/null | head -75
done
