#!/usr/bin/env bash
# run.sh reproduces docs/BENCHMARKS.md: every benchmark beside its
# baseline in the same run, medians over -count runs (the machine is
# shared and noisy: read the medians, not single runs).
#
#   bench/run.sh                 everything (starts a throwaway PostgreSQL)
#   COUNT=10 bench/run.sh        more runs per benchmark
#
# Raw results go to bench/out/ (not committed); the summary tables are
# printed by benchstat.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-6}
OUT=bench/out
mkdir -p "$OUT"
export SILENTREFRESH_PG_DIR=${SILENTREFRESH_PG_DIR:-$(mktemp -d /tmp/silentrefresh-pg.XXXXXX)}
trap 'scripts/postgres.sh destroy >/dev/null 2>&1 || true' EXIT
eval "$(scripts/postgres.sh start)"
benchstat() { go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da "$@"; }

echo "== bearer verification vs raw ed25519.Verify (token)"
go test -run '^$' -bench 'Verify|Mint' -benchmem -count "$COUNT" ./token | tee "$OUT/token.txt" >/dev/null
benchstat "$OUT/token.txt"

echo "== client hot path: floor vs x/oauth2 vs silentrefresh, 32-way parallel; refresh storm"
go test -run '^$' -bench 'RoundTripInterleaved|Storm' -benchmem -count "$COUNT" ./client | tee "$OUT/client.txt" >/dev/null
benchstat "$OUT/client.txt"

echo "== DPoP beside bearer: client per request, server per request, refresh end to end"
go test -run '^$' -bench 'RoundTripDPoP' -benchmem -count "$COUNT" ./client | tee "$OUT/dpop-client.txt" >/dev/null
go test -run '^$' -bench 'RequireDPoP' -benchmem -count "$COUNT" ./bearer | tee "$OUT/dpop-bearer.txt" >/dev/null
go test -run '^$' -bench 'RefreshDPoP' -benchmem -count "$COUNT" ./server | tee "$OUT/dpop-server.txt" >/dev/null
for f in client bearer server; do benchstat "$OUT/dpop-$f.txt"; done

echo "== one rotation: SQLite vs PostgreSQL store; a refresh through the engine"
go test -run '^$' -bench 'Exchange|EngineRefresh' -benchmem -count "$COUNT" ./store/sqlite ./store/postgres | tee "$OUT/store.txt" >/dev/null
benchstat "$OUT/store.txt"

echo "== refresh throughput over HTTP, SQLite vs PostgreSQL, 16 and 64 sessions"
go run ./bench/refresh -sessions 16,64 -duration 10s | tee "$OUT/http.txt"

echo "== login flood against serve: 300 and 1,000 concurrent logins, --password-hashes default and 1"
go run ./bench/loginflood -password-hashes 0,1 | tee "$OUT/loginflood.txt"
echo "== beside fosite in memory (../shared/peers): refresh throughput, bearer checks vs /healthz, RSS"
bench/peers.sh
