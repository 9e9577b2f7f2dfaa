#!/usr/bin/env bash
# PostgreSQL on loopback for the PostgreSQL connector's tests (crates/rill-connect-postgres):
# Debian's package, a throwaway cluster with logical replication on.
#
#   scripts/postgres.sh start    install the Debian package when no server is installed,
#                                initdb a fresh cluster in $PG_RUN (wal_level=logical), start it
#                                on 127.0.0.1:$PG_PORT, create the database `rill` and a role
#                                `rill` (login, replication, password $PG_PASSWORD), print its
#                                connection string on stdout
#   scripts/postgres.sh stop     stop the server this script started
#
# PG_PORT given: that port, or fail when it is taken. Not given: the first free port from 25432.
# `start` wipes $PG_RUN (default /tmp/rill-postgres), so every start is a fresh cluster.
# initdb refuses to run as root: as root, the cluster belongs to the `postgres` user.
set -euo pipefail

PG_RUN=${PG_RUN:-/tmp/rill-postgres}
PG_PASSWORD=${PG_PASSWORD:-rill-test-password}
WAIT_SECS=${PG_WAIT_SECS:-60}

log() { echo "postgres.sh: $*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

bin_dir() {
    # The newest installed major version.
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [[ -n $dir && -x $dir/initdb ]] && echo "$dir"
}

install() {
    if bin_dir >/dev/null; then return 0; fi
    log "installing PostgreSQL (Debian package)"
    if [[ $(id -u) == 0 ]]; then apt_get() { apt-get "$@"; }; else apt_get() { sudo apt-get "$@"; }; fi
    apt_get update -qq
    DEBIAN_FRONTEND=noninteractive apt_get install -y -qq postgresql >/dev/null
    bin_dir >/dev/null || { log "the postgresql package installed no server"; exit 1; }
}

# Runs a command as the cluster's owner: `postgres` when we are root, ourselves otherwise.
as_owner() {
    if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pick_port() {
    if [[ -n ${PG_PORT:-} ]]; then
        if port_open "$PG_PORT"; then
            log "something already listens on 127.0.0.1:$PG_PORT"
            exit 1
        fi
        echo "$PG_PORT"
        return 0
    fi
    local port
    for ((port = 25432; port < 25532; port++)); do
        if ! port_open "$port"; then echo "$port"; return 0; fi
    done
    log "no free port in 25432..25531"
    exit 1
}

start() {
    install
    local bin port
    bin=$(bin_dir)
    stop quiet
    rm -rf "$PG_RUN"
    mkdir -p "$PG_RUN"
    if [[ $(id -u) == 0 ]]; then chown postgres:postgres "$PG_RUN"; fi
    port=$(pick_port)
    as_owner "$bin/initdb" -D "$PG_RUN/data" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 --no-sync >"$PG_RUN/initdb.log" 2>&1 || {
        log "initdb failed:"
        cat "$PG_RUN/initdb.log" >&2
        exit 1
    }
    # Only loopback, a socket in $PG_RUN (not the system's), and logical decoding for the source.
    as_owner "$bin/pg_ctl" -D "$PG_RUN/data" -l "$PG_RUN/server.log" -w -t "$WAIT_SECS" \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$PG_RUN \
-c wal_level=logical -c max_replication_slots=32 -c max_wal_senders=16 -c fsync=off" \
        start >/dev/null || {
        log "the server did not start; its log ($PG_RUN/server.log):"
        tail -n 40 "$PG_RUN/server.log" >&2 || true
        exit 1
    }
    echo "$port" >"$PG_RUN/port"
    # REPLICATION: the source creates and reads logical replication slots.
    as_owner "$bin/psql" -h "$PG_RUN" -p "$port" -U postgres -d postgres -q -v ON_ERROR_STOP=1 \
        -c "CREATE ROLE rill LOGIN REPLICATION PASSWORD '$PG_PASSWORD'" \
        -c "CREATE DATABASE rill OWNER rill" >/dev/null
    log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') up on 127.0.0.1:$port; log in $PG_RUN/server.log"
    echo "postgres://rill:$PG_PASSWORD@127.0.0.1:$port/rill"
}

stop() {
    [[ -f $PG_RUN/data/postmaster.pid ]] || return 0
    local bin
    bin=$(bin_dir) || return 0
    as_owner "$bin/pg_ctl" -D "$PG_RUN/data" -m fast -w stop >/dev/null 2>&1 || true
    [[ ${1:-} == quiet ]] || log "stopped"
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    *)
        echo "usage: $0 start | stop" >&2
        exit 2
        ;;
esac
