# A throw-away PostgreSQL server for the case-store tests, on 127.0.0.1 only.
#
# Sourced by .ci/run; a developer runs the PostgreSQL tests locally the same way:
#     . .ci/postgres.sh && pg_test_start     # installs Debian's server if missing (root), starts it,
#                                            # exports GEOAPP_TEST_DATABASE_URL
#     python -m pytest tests/cases
#     pg_test_stop                           # stops it and deletes its data
#
# The server runs as the "postgres" user when we are root (initdb refuses root), else as the caller;
# its data and socket live in a fresh temporary folder; it listens on a free port of 127.0.0.1 only,
# and the test role has a random password (scram-sha-256), so other users of the machine cannot use it.

pg_test_bin() {
    # The newest installed server's bin folder (Debian keeps them out of PATH).
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$dir" ] && command -v initdb >/dev/null 2>&1; then
        dir=$(dirname "$(command -v initdb)")
    fi
    echo "$dir"
}

pg_test_as_owner() {
    # Run a command as the server's owner, from / (a root-only checkout folder is not readable for it).
    if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

pg_test_start() {
    local bin port password
    bin=$(pg_test_bin)
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "PostgreSQL server not found: install it (Debian: sudo apt-get install -y postgresql)" >&2
            return 1
        fi
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        bin=$(pg_test_bin)
    fi
    PG_TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/geoapp-pg.XXXXXX")
    PG_TEST_BIN=$bin
    chmod 700 "$PG_TEST_DIR"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$PG_TEST_DIR"; fi
    password=$(python3 -c "import secrets; print(secrets.token_hex(16))")
    port=$(python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
    # Superuser = the owner, by peer authentication on the private socket only; TCP needs a password.
    pg_test_as_owner "$bin/initdb" -D "$PG_TEST_DIR/data" --auth-local=peer --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >"$PG_TEST_DIR/initdb.log" 2>&1 \
        || { cat "$PG_TEST_DIR/initdb.log" >&2; return 1; }
    pg_test_as_owner "$bin/pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/server.log" -w \
        -o "-k $PG_TEST_DIR -h 127.0.0.1 -p $port -c max_connections=200 -c fsync=off" start >/dev/null \
        || { cat "$PG_TEST_DIR/server.log" >&2; return 1; }
    # The tests' role: may create databases (one per test, dropped after it), nothing else. The
    # password goes through stdin, not the process list.
    printf "CREATE ROLE geoapp LOGIN CREATEDB PASSWORD '%s';\nCREATE DATABASE geoapp_test OWNER geoapp;\n" \
        "$password" | pg_test_as_owner "$bin/psql" -q -v ON_ERROR_STOP=1 -h "$PG_TEST_DIR" -p "$port" -d postgres \
        || { pg_test_stop; return 1; }
    export GEOAPP_TEST_DATABASE_URL="postgresql+psycopg://geoapp:${password}@127.0.0.1:${port}/geoapp_test"
    echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') for the tests on 127.0.0.1:$port (data in $PG_TEST_DIR)"
}

pg_test_stop() {
    [ -n "${PG_TEST_DIR:-}" ] || return 0
    local pid="" _
    if [ -f "$PG_TEST_DIR/data/postmaster.pid" ]; then pid=$(head -n 1 "$PG_TEST_DIR/data/postmaster.pid"); fi
    # Immediate: the data is thrown away, so there is no shutdown checkpoint to wait for.
    pg_test_as_owner "$PG_TEST_BIN/pg_ctl" -D "$PG_TEST_DIR/data" -m immediate -w -t 120 stop >/dev/null 2>&1 || true
    # Delete the folder only once the server has exited (a server still writing would leave files behind).
    if [ -n "$pid" ]; then
        for _ in $(seq 1 600); do  # gone, or a zombie waiting to be reaped
            case "$(ps -o stat= -p "$pid" 2>/dev/null)" in ""|Z*) break ;; esac
            sleep 0.2
        done
    fi
    rm -rf "$PG_TEST_DIR" || { sleep 1; rm -rf "$PG_TEST_DIR"; } \
        || echo "could not delete $PG_TEST_DIR: delete it by hand" >&2
    unset PG_TEST_DIR GEOAPP_TEST_DATABASE_URL
}
