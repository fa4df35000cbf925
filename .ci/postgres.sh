#!/usr/bin/env bash
# A throwaway PostgreSQL for cg's tests and benchmarks, in a temporary directory.
#
#   eval "$(.ci/postgres.sh start)"   # exports CG_TEST_PG_URL (and CG_TEST_PG_DIR for `stop`)
#   cargo test -p cg-store            # the PostgreSQL tests run when CG_TEST_PG_URL is set
#   eval "$(.ci/postgres.sh stop)"    # stops the server, removes the directory, unsets the vars
#
# `start` installs Debian's `postgresql` package when no `initdb` is found (needs root and apt),
# creates a cluster owned by the `postgres` user when run as root, and starts it on 127.0.0.1 on a
# free port with its unix socket in the same directory. Authentication is `trust`: it listens on
# loopback only and is meant for tests. `stop [DIR]` takes the directory from CG_TEST_PG_DIR or
# its argument. Only the `export`/`unset` lines go to stdout; progress goes to stderr.
set -euo pipefail

DB_NAME=${CG_TEST_PG_DB:-cg_test}
MARKER=.cg-postgres

log() { echo "postgres.sh: $*" >&2; }
die() { log "$*"; exit 1; }

find_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x $d/initdb ]]; then echo "$d"; return 0; fi
    done
    if command -v initdb >/dev/null 2>&1; then
        dirname "$(readlink -f "$(command -v initdb)")"
        return 0
    fi
    return 1
}

install_postgres() {
    [[ $(id -u) -eq 0 ]] || die "initdb not found and not root: install PostgreSQL (apt-get install postgresql)"
    command -v apt-get >/dev/null 2>&1 || die "initdb not found and no apt-get: install PostgreSQL by hand"
    log "installing PostgreSQL from Debian's packages"
    # Do not let the package create and start its own cluster: we make ours below.
    mkdir -p /etc/postgresql-common
    if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
        echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold postgresql >&2
}

# Runs a command as the cluster's owner: `postgres` when we are root, ourselves otherwise.
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

start() {
    local bindir dir port
    bindir=$(find_bindir) || { install_postgres; bindir=$(find_bindir) || die "initdb still not found after installing"; }
    log "using $bindir"
    if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    fi
    dir=$(mktemp -d "${TMPDIR:-/tmp}/cg-postgres.XXXXXX")
    touch "$dir/$MARKER"
    chmod 700 "$dir"
    if [[ $(id -u) -eq 0 ]]; then chown -R postgres: "$dir"; fi
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; rm -rf "$dir"; die "initdb failed"; }
    local started=0
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=300" \
            start >&2; then
            started=1
            break
        fi
        log "start on port $port failed, trying another"
    done
    if [[ $started -ne 1 ]]; then
        cat "$dir/server.log" >&2 || true
        rm -rf "$dir"
        die "could not start PostgreSQL"
    fi
    echo "$bindir" > "$dir/bindir"
    as_owner "$bindir/createdb" -h "$dir" -p "$port" -U postgres "$DB_NAME" >&2
    log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, database $DB_NAME, directory $dir"
    echo "export CG_TEST_PG_URL=postgres://postgres@127.0.0.1:$port/$DB_NAME"
    echo "export CG_TEST_PG_DIR=$dir"
}

stop() {
    local dir=${1:-${CG_TEST_PG_DIR:-}}
    [[ -n $dir ]] || die "stop: no directory given and CG_TEST_PG_DIR is not set"
    [[ -e $dir/$MARKER ]] || die "stop: $dir is not a directory made by postgres.sh start"
    local bindir
    bindir=$(cat "$dir/bindir" 2>/dev/null || find_bindir || true)
    if [[ -n $bindir && -e $dir/data/postmaster.pid ]]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || log "pg_ctl stop failed; removing anyway"
    fi
    rm -rf "$dir"
    log "stopped and removed $dir"
    echo "unset CG_TEST_PG_URL CG_TEST_PG_DIR"
}

case ${1:-} in
    start) start ;;
    stop) shift; stop "$@" ;;
    *) echo "usage: $0 start | stop [DIR]" >&2; exit 2 ;;
esac
