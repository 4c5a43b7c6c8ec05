#!/usr/bin/env bash
# ab.sh measures the refresh path of the work tree against a base revision
# in one run: both servers on SQLite and on PostgreSQL, the same load
# (refreshbench from ../shared/peers, 64 sessions), the four taking turns
# in every round. It prints the median refreshes/s and server CPU per
# refresh of each, and the median per-round ratio new/base.
#
#   bench/ab.sh main                   5 rounds of 6 s
#   ROUNDS=7 DURATION=8s bench/ab.sh HEAD~1
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:?usage: bench/ab.sh REVISION}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-6s}
WORKERS=${WORKERS:-64}
. bench/harness.sh ab
mkdir "$TMP/base-src"
git archive "$BASE" | tar -x -C "$TMP/base-src"
(cd "$TMP/base-src" && CGO_ENABLED=0 go build -o "$TMP/base" ./cmd/silentrefresh)
CGO_ENABLED=0 go build -o "$TMP/new" ./cmd/silentrefresh
(cd "$PEERS" && go build -o "$TMP/refreshbench" ./cmd/refreshbench)
eval "$(scripts/postgres.sh start)"
PGDSN=$SILENTREFRESH_TEST_POSTGRES
TCK=$(getconf CLK_TCK)
PGMASTER=$(head -1 "$SILENTREFRESH_PG_DIR/data/postmaster.pid")
declare -A URL DB
port=18100
for v in base new; do
	for b in sqlite postgres; do
		k=$v-$b
		if [ "$b" = sqlite ]; then
			DB[$k]="sqlite:$TMP/$v.db"
		else
			psql "$PGDSN" -qc "DROP DATABASE IF EXISTS ab_$v" -c "CREATE DATABASE ab_$v" >/dev/null
			DB[$k]=$(echo "$PGDSN" | sed -E "s#/[^/?]*(\?|\$)#/ab_$v\1#")
		fi
		printf 'pw\n' | "$TMP/$v" user add --db "${DB[$k]}" --username alice --password-stdin >/dev/null
		"$TMP/$v" serve --addr "127.0.0.1:$port" --db "${DB[$k]}" --log-level warn >"$TMP/$k.log" 2>&1 &
		PIDS+=("$!")
		echo "$!" >"$TMP/$k.pid"
		URL[$k]=http://127.0.0.1:$port/oauth2/token
		for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
		port=$((port + 1))
	done
done
cputicks() { # the server's CPU ticks, for PostgreSQL plus every backend
	local pids
	pids=$(cat "$TMP/$1.pid")
	case $1 in *postgres) pids="$pids $PGMASTER $(pgrep -P "$PGMASTER" | tr '\n' ' ')" ;; esac
	for p in $pids; do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true; done | awk '{s += $1} END {print s + 0}'
}
rate() { sed -nE 's/.*rate=([0-9]+)\/s.*/\1/p' "$1" | tail -1; }
count() { sed -nE 's/.*refreshes=([0-9]+) .*/\1/p' "$1" | tail -1; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
for r in $(seq "$ROUNDS"); do
	for b in sqlite postgres; do
		order="base new"
		if [ $((r % 2)) = 0 ]; then order="new base"; fi
		for v in $order; do
			k=$v-$b
			c0=$(cputicks "$k")
			"$TMP/refreshbench" -url "${URL[$k]}" -d 1ms -workers "$WORKERS" >/dev/null
			c1=$(cputicks "$k")
			"$TMP/refreshbench" -url "${URL[$k]}" -d "$DURATION" -workers "$WORKERS" >"$TMP/$k-$r.txt"
			c2=$(cputicks "$k")
			awk -v a="$((c1 - c0))" -v b="$((c2 - c1))" -v n="$(count "$TMP/$k-$r.txt")" -v t="$TCK" \
				'BEGIN {printf "%.0f\n", (b - a) / t / n * 1e6}' >"$TMP/cpu-$k-$r.txt"
			echo "round $r $k: rate=$(rate "$TMP/$k-$r.txt")/s cpu/refresh=$(cat "$TMP/cpu-$k-$r.txt")us" >&2
		done
	done
done
echo
echo "$(date -u +%F), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $ROUNDS rounds of $DURATION, $WORKERS workers, base $(git rev-parse --short "$BASE"), medians"
echo
echo "| backend | base refreshes/s | new refreshes/s | new/base | base CPU/refresh | new CPU/refresh | new/base |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for b in sqlite postgres; do
	rr=$(for r in $(seq "$ROUNDS"); do awk -v a="$(rate "$TMP/new-$b-$r.txt")" -v c="$(rate "$TMP/base-$b-$r.txt")" 'BEGIN {print a / c}'; done | median)
	cr=$(for r in $(seq "$ROUNDS"); do awk -v a="$(cat "$TMP/cpu-new-$b-$r.txt")" -v c="$(cat "$TMP/cpu-base-$b-$r.txt")" 'BEGIN {print a / c}'; done | median)
	printf '| %s | %s | %s | %.2f× | %s µs | %s µs | %.2f× |\n' "$b" \
		"$(for r in $(seq "$ROUNDS"); do rate "$TMP/base-$b-$r.txt"; done | median)" \
		"$(for r in $(seq "$ROUNDS"); do rate "$TMP/new-$b-$r.txt"; done | median)" "$rr" \
		"$(for r in $(seq "$ROUNDS"); do cat "$TMP/cpu-base-$b-$r.txt"; done | median)" \
		"$(for r in $(seq "$ROUNDS"); do cat "$TMP/cpu-new-$b-$r.txt"; done | median)" "$cr"
done
