#!/usr/bin/env bash
# postgres.sh starts and stops a throwaway PostgreSQL for the tests.
#
#   scripts/postgres.sh start    initdb (first time) and start; prints export lines
#   scripts/postgres.sh stop     stop the server (fast shutdown); keeps the data
#   scripts/postgres.sh kill     stop at once (immediate shutdown, like a crash)
#   scripts/postgres.sh env      print the export lines of the instance
#   scripts/postgres.sh status   exit 0 if the server is running
#   scripts/postgres.sh destroy  stop and remove the folder
#
# Typical use:
#
#   eval "$(scripts/postgres.sh start)"
#   go test ./...
#   scripts/postgres.sh destroy
#
# The instance lives in $SILENTREFRESH_PG_DIR (default
# /tmp/silentrefresh-postgres), owned by the unprivileged "postgres" user,
# listens on 127.0.0.1 only, on a free port chosen at initdb and kept across
# restarts, with durability on (fsync, synchronous_commit, full_page_writes).
# Authentication is scram-sha-256 with a random password kept in the folder.
#
# The printed lines export SILENTREFRESH_TEST_POSTGRES (a postgres:// DSN of a
# superuser, so tests can CREATE DATABASE) and SILENTREFRESH_PG_DIR.
# PG_BIN overrides where initdb and pg_ctl are found.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DIR=${SILENTREFRESH_PG_DIR:-/tmp/silentrefresh-postgres}
PG_USER=${SILENTREFRESH_PG_OSUSER:-postgres}
DATA="$DIR/data"
SOCK="$DIR/sock"
LOG="$DIR/postgres.log"

die() { echo "postgres.sh: $*" >&2; exit 1; }

# as runs a command as the unprivileged owner of the cluster.
as() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u "$PG_USER" -- "$@"
	else
		"$@"
	fi
}

port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

pick_port() {
	local p i
	for i in $(seq 1 200); do
		p=$((20000 + RANDOM % 40000))
		if port_free "$p"; then
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

print_env() {
	[ -f "$DIR/port" ] || die "no instance in $DIR (run start first)"
	local port pw
	port=$(cat "$DIR/port")
	pw=$(cat "$DIR/password")
	echo "export SILENTREFRESH_TEST_POSTGRES='postgres://postgres:$pw@127.0.0.1:$port/postgres?sslmode=disable'"
	echo "export SILENTREFRESH_PG_DIR='$DIR'"
}

running() {
	[ -f "$DATA/PG_VERSION" ] && as "$PG_BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

init_cluster() {
	[ -x "$PG_BIN/initdb" ] || die "initdb not found in $PG_BIN"
	mkdir -p "$DIR"
	chmod 0755 "$DIR"
	mkdir -p "$SOCK"
	local pw
	pw=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
	umask 077
	printf '%s' "$pw" >"$DIR/password"
	printf '%s\n' "$pw" >"$DIR/pwfile"
	umask 022
	chmod 0644 "$DIR/password"
	if [ "$(id -u)" = 0 ]; then
		chown -R "$PG_USER" "$DIR"
	fi
	as "$PG_BIN/initdb" -D "$DATA" -U postgres --pwfile="$DIR/pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 \
		>"$DIR/initdb.log" 2>&1 || { cat "$DIR/initdb.log" >&2; die "initdb failed"; }
	rm -f "$DIR/pwfile"
	pick_port >"$DIR/port"
	cat >>"$DATA/postgresql.conf" <<EOF

# silentrefresh test instance
listen_addresses = '127.0.0.1'
port = $(cat "$DIR/port")
unix_socket_directories = '$SOCK'
max_connections = 300
shared_buffers = 128MB
fsync = on
synchronous_commit = on
full_page_writes = on
log_min_messages = warning
log_connections = off
log_disconnections = off
EOF
}

start() {
	if running; then
		print_env
		return
	fi
	[ -f "$DATA/PG_VERSION" ] || init_cluster
	local port
	port=$(cat "$DIR/port")
	port_free "$port" || die "port $port is taken by another process"
	as "$PG_BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 start >/dev/null \
		|| { tail -20 "$LOG" >&2; die "pg_ctl start failed"; }
	print_env
}

stop() {
	local mode=$1
	if running; then
		as "$PG_BIN/pg_ctl" -D "$DATA" -m "$mode" -w -t 60 stop >/dev/null
	fi
}

case "${1:-}" in
start) start ;;
stop) stop fast ;;
kill) stop immediate ;;
env) print_env ;;
status) running ;;
destroy)
	stop immediate
	rm -rf "$DIR"
	;;
*)
	echo "usage: $0 start|stop|kill|env|status|destroy" >&2
	exit 2
	;;
esac
