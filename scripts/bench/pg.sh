# PostgreSQL pgbench under each configuration, for scripts/bench.sh (sourced after common.sh;
# needs AGENT). A private cluster (initdb, -A trust, a Unix socket in its own directory, no TCP)
# as in scripts/postgres-watch.sh; if we are root, the server runs as the postgres user. Each
# run starts the postmaster itself (not pg_ctl) under the tool, so the tool wraps the postmaster
# and every backend it forks; pgbench, the client, is never observed.
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PGW=
PG_PID=

pg_as() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# pg_setup: initdb and pgbench -i (scale 4) once; returns 1 (with a message) if impossible.
pg_setup() {
    [ -x "$PGBIN/postgres" ] && [ -x "$PGBIN/initdb" ] || { echo "no PostgreSQL in $PGBIN" >&2; return 1; }
    command -v pgbench >/dev/null || [ -x "$PGBIN/pgbench" ] || { echo "no pgbench" >&2; return 1; }
    PGW=$(mktemp -d /tmp/mapagent-bench-pg.XXXXXX)
    chmod 755 "$PGW"
    [ "$(id -u)" = 0 ] && chown postgres: "$PGW"
    pg_as "$PGBIN/initdb" -D "$PGW/data" -A trust -U postgres >"$PGW/initdb.log" 2>&1 || { cat "$PGW/initdb.log" >&2; return 1; }
    pg_start none || return 1
    pg_as "$PGBIN/pgbench" -h "$PGW" -q -i -s 4 postgres >"$PGW/init.log" 2>&1 || { cat "$PGW/init.log" >&2; pg_stop; return 1; }
    pg_stop
}

# pg_start CFG: starts the postmaster under CFG and waits (up to 60 s) until it accepts.
pg_start() {
    local pg=("$PGBIN/postgres" -D "$PGW/data" -k "$PGW" -c listen_addresses= -c logging_collector=off)
    local as=(); [ "$(id -u)" = 0 ] && as=(runuser -u postgres --)
    rm -rf "$PGW/rec" "$PGW"/ht* "$PGW/perf.data"
    case $1 in
        none) "${as[@]}" "${pg[@]}" ;;
        agent) "${as[@]}" env LD_PRELOAD="$AGENT" MAPAGENT_DIR="$PGW/rec" \
                   MAPAGENT_WATCH=debug_query_string:str MAPAGENT_WATCH_MS=1 "${pg[@]}" ;;
        agent-nok) "${as[@]}" env LD_PRELOAD="$AGENT" MAPAGENT_DIR="$PGW/rec" MAPAGENT_KERNEL_PAGES=0 \
                   MAPAGENT_WATCH=debug_query_string:str MAPAGENT_WATCH_MS=1 "${pg[@]}" ;;
        perf) perf record -q -e dummy -o "$PGW/perf.data" -- "${as[@]}" "${pg[@]}" ;;
        heaptrack) "${as[@]}" heaptrack -o "$PGW/ht" "${pg[@]}" ;;
        strace) strace -f -e trace=memory -o /dev/null "${as[@]}" "${pg[@]}" ;;
    esac >>"$PGW/server.log" 2>&1 </dev/null &
    PG_PID=$!
    local i
    for i in $(seq 600); do
        pg_as "$PGBIN/pg_isready" -q -h "$PGW" -d postgres && return 0
        kill -0 "$PG_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "postgres did not start under $1 (see $PGW/server.log)" >&2
    pg_stop
    return 1
}

# pg_stop: fast shutdown; waits for the wrapper (perf, strace, heaptrack) to finish too.
pg_stop() {
    [ -n "$PG_PID" ] || return 0
    pg_as "$PGBIN/pg_ctl" -D "$PGW/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    local i
    for i in $(seq 300); do kill -0 "$PG_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PG_PID" 2>/dev/null && kill "$PG_PID" 2>/dev/null
    wait "$PG_PID" 2>/dev/null || true
    PG_PID=
    if [ -d "$PGW/rec" ]; then ls "$PGW/rec" | wc -l >"$PGW/last_recs"; fi   # the agent's last run
    rm -rf "$PGW/rec" "$PGW"/ht* "$PGW/perf.data"
}

# pg_tps CFG SECS: pgbench (4 clients, 2 threads) for SECS under CFG; prints tps or nothing.
pg_tps() {
    pg_start "$1" || return 0
    pg_as "$PGBIN/pgbench" -h "$PGW" -c 4 -j 2 -T "$2" postgres 2>&1 |
        awk '/^tps = / {print $3; exit}' || true
    pg_stop
}

# pg_cleanup: stops a server left running (even one started in a subshell) and removes all.
pg_cleanup() {
    pg_stop
    if [ -n "$PGW" ] && [ -e "$PGW/data/postmaster.pid" ]; then
        pg_as "$PGBIN/pg_ctl" -D "$PGW/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    if [ -n "$PGW" ]; then rm -rf "$PGW"; fi
    PGW=
}
