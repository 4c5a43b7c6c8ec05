# harness.sh holds what the benchmark scripts share: the peers module
# (../shared/peers, or $PEERS), a temporary folder $TMP, a throwaway
# PostgreSQL folder, and the servers they start ($PIDS), all stopped and
# removed when the script exits. Source it from the module's root:
#
#   . bench/harness.sh NAME      # NAME names the script in messages and $TMP
bench_name=${1:?usage: . bench/harness.sh NAME}
if [ -z "${PEERS:-}" ]; then
	for p in ../shared/peers ../../shared/peers /work/shared/peers; do
		if [ -f "$p/go.mod" ]; then PEERS=$(cd "$p" && pwd); break; fi
	done
fi
[ -n "${PEERS:-}" ] || { echo "$bench_name: set PEERS to the peers module (../shared/peers)" >&2; exit 1; }
TMP=$(mktemp -d "/tmp/silentrefresh-$bench_name.XXXXXX")
export SILENTREFRESH_PG_DIR=${SILENTREFRESH_PG_DIR:-$(mktemp -d /tmp/silentrefresh-pg.XXXXXX)}
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	scripts/postgres.sh destroy >/dev/null 2>&1 || true
	rm -rf "$TMP"
}
trap cleanup EXIT
