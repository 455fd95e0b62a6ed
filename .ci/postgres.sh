#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the shared-storage sweep tests (tests/test_sweep_postgres.py).
#
#   source .ci/postgres.sh && pg_test_start   # exports ZSLBENCH_TEST_POSTGRES and PG_TEST_DIR
#   ...; pg_test_stop                          # stops the cluster and deletes its folder
#
# or, without sourcing:  eval "$(.ci/postgres.sh start)"  …  .ci/postgres.sh stop "$PG_TEST_DIR"
#
# PostgreSQL comes from the Debian packages when absent. The cluster listens on 127.0.0.1 on a free
# port, with a random password (scram-sha-256), in a temporary folder; as root it runs as the
# `postgres` system user (PostgreSQL refuses to run as root).

pg_test__bindir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$dir" ] && command -v pg_config >/dev/null 2>&1; then dir=$(pg_config --bindir); fi
    if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then
        echo "installing PostgreSQL (apt-get install postgresql)" >&2
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2 || return 1
        dir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    fi
    echo "$dir"
}

pg_test__as_owner() {  # run a command as the cluster's owner
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_test_start() {
    local bindir port password dir
    bindir=$(pg_test__bindir) || { echo "PostgreSQL is not available" >&2; return 1; }
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    password=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
    dir=$(mktemp -d /tmp/zslbench-pg.XXXXXX)
    chmod 755 "$dir"
    printf '%s\n' "$password" > "$dir/pwfile"
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$dir"; fi
    pg_test__as_owner "$bindir/initdb" -D "$dir/data" -U zsl --pwfile="$dir/pwfile" --auth=scram-sha-256 \
        -E UTF8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
    rm -f "$dir/pwfile"
    pg_test__as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=100 -c fsync=off" start >/dev/null \
        || { cat "$dir/server.log" >&2; return 1; }
    PGPASSWORD="$password" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U zsl zslbench \
        || { echo "createdb failed" >&2; return 1; }
    export PG_TEST_DIR="$dir" PG_TEST_BINDIR="$bindir"
    export ZSLBENCH_TEST_POSTGRES="postgresql+psycopg://zsl:${password}@127.0.0.1:${port}/zslbench"
    echo "PostgreSQL test cluster on 127.0.0.1:${port} (folder $dir)" >&2
}

pg_test_stop() {
    local dir=${1:-${PG_TEST_DIR:-}} bindir
    [ -n "$dir" ] && [ -d "$dir" ] || return 0
    bindir=${PG_TEST_BINDIR:-$(pg_test__bindir)}
    pg_test__as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    unset PG_TEST_DIR ZSLBENCH_TEST_POSTGRES
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then  # executed, not sourced
    set -euo pipefail
    case "${1:-}" in
        start)
            pg_test_start
            printf 'export PG_TEST_DIR=%q PG_TEST_BINDIR=%q ZSLBENCH_TEST_POSTGRES=%q\n' \
                "$PG_TEST_DIR" "$PG_TEST_BINDIR" "$ZSLBENCH_TEST_POSTGRES"
            ;;
        stop) pg_test_stop "${2:-${PG_TEST_DIR:-}}" ;;
        *) echo "usage: $0 start | stop [DIR]" >&2; exit 2 ;;
    esac
fi
