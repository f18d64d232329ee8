#!/usr/bin/env bash
# PostgreSQL under the agent: which queries were running during perf's samples, per backend.
#   scripts/postgres-watch.sh [SECONDS]   (default 10; run as root or as the postgres user)
#   NOAGENT=1 scripts/postgres-watch.sh  the same without the agent (compare pgbench's tps)
# Starts a throwaway cluster with libmapagent.so preloaded and debug_query_string watched
# (MAPAGENT_WATCH=debug_query_string:str, sampled every millisecond), runs pgbench for SECONDS
# under `perf record -a -k CLOCK_MONOTONIC`, stops the server and prints, per backend, the
# queries that were current during its samples. PostgreSQL forks a backend per connection and
# lives on signals: this is also the agent's fork and signal handling under real load.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$PGBIN/postgres" ] || { echo "no PostgreSQL server binaries (set PGBIN)" >&2; exit 1; }
cargo build --release -q -p mapagent-agent -p mapagent
AGENT=$PWD/target/release/libmapagent.so
M=$PWD/target/release/mapagent
W=$(mktemp -d /tmp/mapagent-pg.XXXXXX)
chmod 755 "$W"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres: "$W"
stop() { as_pg "$PGBIN/pg_ctl" -D "$W/data" -m fast -w stop >/dev/null 2>&1 || true; }
trap stop EXIT

as_pg "$PGBIN/initdb" -D "$W/data" -A trust -U postgres >/dev/null
PRELOAD=$AGENT
[ -n "${NOAGENT:-}" ] && PRELOAD=   # NOAGENT=1: the same run without the agent, for tps
as_pg env LD_PRELOAD="$PRELOAD" MAPAGENT_DIR="$W/rec" \
    MAPAGENT_WATCH=debug_query_string:str MAPAGENT_WATCH_MS="${WATCH_MS:-1}" \
    "$PGBIN/pg_ctl" -D "$W/data" -l "$W/server.log" -w \
    -o "-k $W -c listen_addresses=''" start >/dev/null
as_pg "$PGBIN/pgbench" -h "$W" -q -i -s 4 postgres >/dev/null 2>&1
echo "pgbench for ${SECS}s under perf record -a -k CLOCK_MONOTONIC ..." >&2
perf record -q -a -k CLOCK_MONOTONIC -F 499 -o "$W/perf.data" -- \
    runuser -u postgres -- "$PGBIN/pgbench" -h "$W" -c 4 -j 2 -T "$SECS" postgres >"$W/pgbench.txt" 2>&1
stop
trap - EXIT
grep -E "^(tps|number of transactions actually processed)" "$W/pgbench.txt" >&2 || true
echo "records: $(ls "$W/rec" | wc -l) process files in $W/rec; perf.data: $W/perf.data" >&2
[ -n "${NOAGENT:-}" ] && exit 0
"$M" watch "$W/rec" --perf "$W/perf.data" --normalize --top 8
