#!/usr/bin/env bash
# peers.sh measures silentrefresh beside the yardstick of ../shared/peers in
# one run, with one load generator: refresh throughput of ory/fosite (its
# in-memory store, not durable) against silentrefresh on SQLite and on
# PostgreSQL (both durable: synchronous=FULL, fsync on), then bearer-checked
# requests against the HTTP floor of the same server. It prints one table
# with ratios (medians over ROUNDS rounds of the ratio within each round,
# the backends one after the other in each round so that they see about
# the same machine load), the CPU time each server spends per refresh and
# its peak RSS.
#
#   bench/peers.sh                     3 rounds of 8 s per backend
#   ROUNDS=5 DURATION=10s bench/peers.sh
#   PEERS=/path/to/peers bench/peers.sh
#
# fosite is built from the peers module into a temporary folder; it never
# becomes a dependency of this module. A throwaway PostgreSQL is started
# with scripts/postgres.sh and removed at the end. RSS is the server's peak
# resident set (VmHWM) over its refresh rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
WORKERS=${WORKERS:-64}
. bench/harness.sh peers

echo "building into $TMP" >&2
(cd "$PEERS" && go build -o "$TMP/fosite" ./cmd/fositeserver && go build -o "$TMP/refreshbench" ./cmd/refreshbench && go build -o "$TMP/bearerbench" ./cmd/bearerbench)
CGO_ENABLED=0 go build -o "$TMP/silentrefresh" ./cmd/silentrefresh
eval "$(scripts/postgres.sh start)"
PGDSN=$SILENTREFRESH_TEST_POSTGRES
# A database of its own, so that the run starts on empty tables.
psql "$PGDSN" -qc "DROP DATABASE IF EXISTS peers" -c "CREATE DATABASE peers" >/dev/null
PGDB=$(echo "$PGDSN" | sed -E 's#/[^/?]*(\?|$)#/peers\1#')

waitport() { # waitport HOST:PORT
	for _ in $(seq 200); do
		if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "peers.sh: nothing listens on $1" >&2
	return 1
}

# start NAME ADDR CMD... starts a server in the background; its pid goes to
# $TMP/NAME.pid.
start() {
	local name=$1 addr=$2
	shift 2
	if (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null; then
		echo "peers.sh: $addr is taken by another process" >&2
		return 1
	fi
	"$@" >"$TMP/$name.log" 2>&1 &
	local pid=$!
	PIDS+=("$pid")
	echo "$pid" >"$TMP/$name.pid"
	waitport "$addr"
}
stop() {
	local pid
	pid=$(cat "$TMP/$1.pid")
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
hwm() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$(cat "$TMP/$1.pid")/status"; }

printf 'pw\n' | "$TMP/silentrefresh" user add --db "sqlite:$TMP/sr.db" --username alice --password-stdin >/dev/null
printf 'pw\n' | "$TMP/silentrefresh" user add --db "$PGDB" --username alice --password-stdin >/dev/null

start fosite 127.0.0.1:19096 "$TMP/fosite" --addr 127.0.0.1:19096
start sqlite 127.0.0.1:18080 "$TMP/silentrefresh" serve --addr 127.0.0.1:18080 --db "sqlite:$TMP/sr.db" --log-level warn
start postgres 127.0.0.1:18081 "$TMP/silentrefresh" serve --addr 127.0.0.1:18081 --db "$PGDB" --log-level warn

declare -A URL=(
	[fosite]=http://127.0.0.1:19096/token
	[sqlite]=http://127.0.0.1:18080/oauth2/token
	[postgres]=http://127.0.0.1:18081/oauth2/token
)
rate() { sed -nE 's/.*rate=([0-9]+)\/s.*/\1/p' "$1" | tail -1; }
count() { sed -nE 's/.*refreshes=([0-9]+) .*/\1/p' "$1" | tail -1; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# cputicks NAME: CPU time (clock ticks) used so far by the server NAME, for
# PostgreSQL by its postmaster and every backend.
TCK=$(getconf CLK_TCK)
PGMASTER=$(head -1 "$SILENTREFRESH_PG_DIR/data/postmaster.pid")
cputicks() {
	local pids
	pids=$(cat "$TMP/$1.pid")
	if [ "$1" = postgres ]; then pids="$pids $PGMASTER $(pgrep -P "$PGMASTER" | tr '\n' ' ')"; fi
	for p in $pids; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done | awk '{s += $1} END {print s + 0}'
}

# Each round runs every backend twice: once with a 1 ms clock (the
# same-token check and the logins alone, whose password hashing is not a
# refresh) and once for DURATION; the CPU of the first is taken off the
# second to give the CPU per refresh.
for r in $(seq "$ROUNDS"); do
	for b in fosite sqlite postgres; do
		c0=$(cputicks "$b")
		"$TMP/refreshbench" -url "${URL[$b]}" -d 1ms -workers "$WORKERS" >/dev/null
		c1=$(cputicks "$b")
		"$TMP/refreshbench" -url "${URL[$b]}" -d "$DURATION" -workers "$WORKERS" >"$TMP/refresh-$b-$r.txt"
		c2=$(cputicks "$b")
		awk -v a="$((c1 - c0))" -v b="$((c2 - c1))" -v n="$(count "$TMP/refresh-$b-$r.txt")" -v t="$TCK" \
			'BEGIN {printf "%.0f\n", (b - a) / t / n * 1e6}' >"$TMP/cpu-$b-$r.txt"
		echo "round $r $b: $(grep -h . "$TMP/refresh-$b-$r.txt" | tr '\n' ' ') cpu/refresh=$(cat "$TMP/cpu-$b-$r.txt")us" >&2
	done
done
RSS_SQLITE=$(hwm sqlite)
RSS_PG=$(hwm postgres)

declare -A BASE=([sqlite]=http://127.0.0.1:18080 [postgres]=http://127.0.0.1:18081)
for r in $(seq "$ROUNDS"); do
	for b in sqlite postgres; do
		for u in healthz api/heartbeat; do
			"$TMP/bearerbench" -token-url "${URL[$b]}" -url "${BASE[$b]}/$u" -d "$DURATION" -workers "$WORKERS" >"$TMP/bearer-$b-${u//\//_}-$r.txt"
			echo "round $r $b /$u: $(cat "$TMP/bearer-$b-${u//\//_}-$r.txt")" >&2
		done
	done
done

med() { for r in $(seq "$ROUNDS"); do rate "$TMP/$1-$r.txt"; done | median; }
medcpu() { for r in $(seq "$ROUNDS"); do cat "$TMP/cpu-$1-$r.txt"; done | median; }
# medratio A B: the median over rounds of A's rate over B's in that round.
medratio() {
	for r in $(seq "$ROUNDS"); do
		awk -v a="$(rate "$TMP/$1-$r.txt")" -v b="$(rate "$TMP/$2-$r.txt")" 'BEGIN {print a / b}'
	done | median | awk '{printf "%.2f×", $1}'
}
F=$(med refresh-fosite)
S=$(med refresh-sqlite)
P=$(med refresh-postgres)

echo
echo "$(date -u +%F), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $ROUNDS rounds of $DURATION, $WORKERS workers, medians"
echo
echo "| refresh, $WORKERS sessions | refreshes/s | vs fosite in memory | server CPU per refresh | server peak RSS |"
echo "|---|---:|---:|---:|---:|"
echo "| ory/fosite, in-memory store, HMAC tokens (not durable) | $F | 1.00× | $(medcpu fosite) µs | $(hwm fosite) MiB |"
echo "| silentrefresh on SQLite (synchronous=FULL, group commit) | $S | $(medratio refresh-sqlite refresh-fosite) | $(medcpu sqlite) µs | $RSS_SQLITE MiB |"
echo "| silentrefresh on PostgreSQL (fsync on, batched commits) | $P | $(medratio refresh-postgres refresh-fosite) | $(medcpu postgres) µs (server + PostgreSQL) | $RSS_PG MiB |"
echo
echo "| bearer-checked request, $WORKERS workers | requests/s | vs /healthz of the same server |"
echo "|---|---:|---:|"
for b in sqlite postgres; do
	name=SQLite
	[ "$b" = postgres ] && name=PostgreSQL
	echo "| $name: \`GET /healthz\` (the HTTP floor) | $(med "bearer-$b-healthz") | 1.00× |"
	echo "| $name: \`GET /api/heartbeat\` (signature, claims, session check) | $(med "bearer-$b-api_heartbeat") | $(medratio "bearer-$b-api_heartbeat" "bearer-$b-healthz") |"
done
echo
echo "Ratios are medians of the per-round ratios (each round runs the backends one after the other)."
