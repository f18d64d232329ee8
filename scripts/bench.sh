#!/usr/bin/env bash
# Overhead of the agent next to its peers, in one run: every workload with no agent, with
# libmapagent.so (LD_PRELOAD, MAPAGENT_DIR in a scratch directory), under `perf record -e
# dummy`, under heaptrack and under `strace -f -e trace=memory -o /dev/null`, and the agent
# without its kernel timeline (MAPAGENT_KERNEL_PAGES=0: what the perf events cost). Every cell
# is the median of RUNS runs, the configurations interleaved run by run (each run goes through
# all of them in turn, starting one further along each time); ratios are to "none". Prints a Markdown
# table (stdout; progress on stderr), then the syscalls of the application and of the agent's
# collector process in the 1-thread storm, then callgrind's instructions per hooked call.
#   scripts/bench.sh [RUNS]              (default 5; needs perf, heaptrack, strace; a missing
#                                         tool, library or program gives n/a cells)
#   BENCH_QUICK=1 scripts/bench.sh 1     the same with tiny counts, to check the script works
#   PG_SECS=N                            pgbench seconds per run (default 10, quick 2)
#   BENCH_CALLGRIND=0|1                  the callgrind figure (default 1, quick 0)
set -euo pipefail
cd "$(dirname "$0")/.."
CMDLINE="$0${*:+ $*}"
for v in BENCH_QUICK PG_SECS BENCH_CALLGRIND BENCH_ROWS; do
    [ -n "${!v:-}" ] && CMDLINE="$v=${!v} $CMDLINE"
done
RUNS=${1:-5}
QUICK=${BENCH_QUICK:-}
[ "$QUICK" = 0 ] && QUICK=
q() { if [ -n "$QUICK" ]; then echo "$2"; else echo "$1"; fi; }   # q FULL QUICK
PAIRS=$(q 100000 2000)   # mmap+munmap pairs, 1 thread (rows 1 and 3)
T4=$(q 25000 500)        # pairs per thread, 4 threads (row 2): the same 100,000 in all
DLN=$(q 500 20)          # dlopen+dlclose pairs
LOOPN=$(q 200 20)        # /bin/true in the bash loop
FORKN=$(q 100 20)        # forks in row 10
TRUE_REPS=$(q 10 3)      # spawns per /bin/true cell (median of them; perf and heaptrack: 2, quick 1)
PG_SECS=${PG_SECS:-$(q 10 2)}
CALLGRIND=${BENCH_CALLGRIND:-$(q 1 0)}
LIBDIR=/usr/lib/x86_64-linux-gnu
OUT=target/bench
mkdir -p "$OUT"
cargo build --release -q -p mapagent-agent -p mapagent
AGENT=$PWD/target/release/libmapagent.so
CC=${CC:-cc}
$CC -O2 -o $OUT/mmap_storm scripts/bench/mmap_storm.c -lpthread
$CC -O2 -o $OUT/dlopen_storm scripts/bench/dlopen_storm.c -ldl
$CC -O2 -o $OUT/startup scripts/bench/startup.c
$CC -O2 -o $OUT/fork_storm c-tests/fork_storm.c -ldl -lpthread
. scripts/bench/common.sh
. scripts/bench/pg.sh
trap 'pg_cleanup; rm -rf "$TMP"' EXIT

CONFIGS=(none agent agent-nok perf heaptrack strace)
NCFG=${#CONFIGS[@]}
declare -A R SKIP NOTE

# value CFG FIELD CMD...: the workload's own FIELD line (WALL: ns of the storm, RESULT: ns per
# pair), measured inside the program, under CFG; nothing if it failed.
value() {
    local cfg=$1 field=$2; shift 2
    { case $cfg in
        none) "$@" ;;
        agent) LD_PRELOAD=$AGENT MAPAGENT_DIR=$TMP/rec "$@" ;;
        agent-nok) LD_PRELOAD=$AGENT MAPAGENT_DIR=$TMP/rec MAPAGENT_KERNEL_PAGES=0 "$@" ;;
        perf) perf record -q -e dummy -o "$TMP/perf.data" -- "$@" 2>/dev/null ;;
        heaptrack) heaptrack -o "$TMP/ht" "$@" 2>/dev/null ;;
        strace) strace -f -e trace=memory -o /dev/null "$@" ;;
    esac || true; } | awk -v f="$field" '$1 == f {print $2}'
    rm -rf "$TMP/rec" "$TMP/perf.data"* "$TMP"/ht*
}

# wall CFG REPS CMD...: start to exit of the whole command under CFG, the tool wrapping it
# (median of REPS spawns by scripts/bench/startup.c, which is itself never observed: for the
# agent, LD_PRELOAD is set in the command's environment only, and inherited by its children).
wall() {
    local cfg=$1 reps=$2; shift 2
    { case $cfg in
        none) $OUT/startup "$reps" "$@" ;;
        agent) MAPAGENT_DIR=$TMP/rec BENCH_CHILD_PRELOAD=$AGENT $OUT/startup "$reps" "$@" ;;
        agent-nok) MAPAGENT_DIR=$TMP/rec MAPAGENT_KERNEL_PAGES=0 BENCH_CHILD_PRELOAD=$AGENT \
                       $OUT/startup "$reps" "$@" ;;
        perf) $OUT/startup "$reps" perf record -q -e dummy -o "$TMP/perf.data" -- "$@" ;;
        heaptrack) $OUT/startup "$reps" heaptrack -o "$TMP/ht" "$@" ;;
        strace) $OUT/startup "$reps" strace -f -e trace=memory -o /dev/null "$@" ;;
    esac || true; } | awk '$1 == "RESULT" {print $2}'
    rm -rf "$TMP/rec" "$TMP/perf.data"* "$TMP"/ht*
}

# One function per row: m_KEY CFG prints the cell's raw value (ns; tps for pgbench).
m_storm1() { value "$1" WALL $OUT/mmap_storm write1 "$PAIRS"; }
m_storm4() { value "$1" WALL $OUT/mmap_storm write1 "$T4" 4; }
m_untouched() { value "$1" WALL $OUT/mmap_storm untouched "$PAIRS"; }
m_zlib() { value "$1" RESULT $OUT/dlopen_storm $LIBDIR/libz.so.1 "$DLN"; }
m_crypto() { value "$1" RESULT $OUT/dlopen_storm $LIBDIR/libcrypto.so.3 "$DLN"; }
m_true() {
    local r=$TRUE_REPS
    case $1 in perf|heaptrack) r=$(q 2 1) ;; esac
    wall "$1" "$r" /bin/true
}
m_loop() { wall "$1" 1 bash -c "for i in \$(seq $LOOPN); do /bin/true; done"; }
m_java() { wall "$1" 1 java -version; }
m_node() { wall "$1" 1 node -e 0; }
m_pg() { pg_tps "$1" "$PG_SECS"; }
m_forks() { value "$1" WALL $OUT/fork_storm "$FORKN"; }

ROWS=(storm1 storm4 untouched zlib crypto true loop java node pg forks)
[ -n "${BENCH_ROWS:-}" ] && read -r -a ROWS <<<"$BENCH_ROWS"   # e.g. BENCH_ROWS="forks zlib"
declare -A LABEL=(
    [storm1]="1. 64 KiB mmap + 1-byte write + munmap, $PAIRS pairs, 1 thread (storm wall)"
    [storm4]="2. the same, 4 threads x $T4 pairs (storm wall)"
    [untouched]="3. 64 KiB mmap + munmap, untouched, $PAIRS pairs (per pair; added per hooked call)"
    [zlib]="4a. dlopen+dlclose libz.so.1, $DLN pairs (per pair)"
    [crypto]="4b. dlopen+dlclose libcrypto.so.3, $DLN pairs (per pair)"
    [true]="5. \`/bin/true\` start to exit"
    [loop]="6. \`bash -c 'for i in \$(seq $LOOPN); do /bin/true; done'\`"
    [java]="7. \`java -version\`"
    [node]="8. \`node -e 0\`"
    [pg]="9. PostgreSQL 15 pgbench -c 4 -j 2 -T $PG_SECS (tps; higher is better)"
    [forks]="10. $FORKN forks (each maps a page and \`_exit\`s) while 2 threads mmap/munmap and 1 dlopen/dlclose libz (forks wall)"
)
declare -A UNIT=([forks]=ms [storm1]=ms [storm4]=ms [untouched]=ns [zlib]=us [crypto]=us [true]=ms
    [loop]=ms [java]=ms [node]=ms [pg]=tps)

# What cannot run here is n/a, with the reason as a footnote.
for t in perf heaptrack strace; do
    command -v $t >/dev/null || for k in "${ROWS[@]}"; do SKIP[$k,$t]="$t is not installed"; done
done
for l in zlib:libz.so.1 crypto:libcrypto.so.3; do
    [ -e "$LIBDIR/${l#*:}" ] || for c in "${CONFIGS[@]}"; do SKIP[${l%%:*},$c]="no $LIBDIR/${l#*:}"; done
done
for p in java node; do
    command -v $p >/dev/null || for c in "${CONFIGS[@]}"; do SKIP[$p,$c]="$p is not installed"; done
done
if ! pg_setup; then
    for c in "${CONFIGS[@]}"; do SKIP[pg,$c]="no PostgreSQL cluster could be set up here"; done
fi

number() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
declare -A FAILS
for key in "${ROWS[@]}"; do
    echo "bench: ${LABEL[$key]} ..." >&2
    declare -A vals=()
    # one untimed run first, so that no configuration pays for a cold page cache
    if [ "$key" != pg ] && [ -z "${SKIP[$key,none]:-}" ]; then m_$key none >/dev/null; fi
    for run in $(seq "$RUNS"); do
        for i in $(seq 0 $((NCFG - 1))); do
            cfg=${CONFIGS[$(((i + run - 1) % NCFG))]}
            if [ -n "${SKIP[$key,$cfg]:-}" ]; then continue; fi
            v=$(m_$key "$cfg")
            if number "$v"; then vals[$cfg]+="$v "; else FAILS[$key,$cfg]=$((${FAILS[$key,$cfg]:-0} + 1)); fi
        done
    done
    for cfg in "${CONFIGS[@]}"; do
        R[$key,$cfg]=
        if [ -n "${vals[$cfg]:-}" ]; then R[$key,$cfg]=$(printf '%s\n' ${vals[$cfg]} | median); fi
        if [ -z "${R[$key,$cfg]}" ] && [ -z "${SKIP[$key,$cfg]:-}" ]; then SKIP[$key,$cfg]="$cfg failed in every run"; fi
    done
    unset vals
done

# --- the table ----------------------------------------------------------------------------
declare -A FOOT_ID
FOOTS=()
mark() {  # mark TEXT: sets M to the footnote number of TEXT (numbered in order of first use)
    if [ -z "${FOOT_ID[$1]:-}" ]; then FOOTS+=("$1"); FOOT_ID[$1]=${#FOOTS[@]}; fi
    M=${FOOT_ID[$1]}
}
# cell KEY CFG: sets CELL to the formatted value and its ratio to none
cell() {
    local key=$1 cfg=$2 v=${R[$1,$2]} b=${R[$1,none]} u=${UNIT[$1]}
    if [ -z "$v" ]; then mark "${SKIP[$key,$cfg]}"; CELL="n/a [$M]"; return 0; fi
    if [ "$key" = untouched ]; then
        v=$(awk -v v="$v" -v n="$PAIRS" 'BEGIN {print v / n}')
        if [ -n "$b" ]; then b=$(awk -v v="$b" -v n="$PAIRS" 'BEGIN {print v / n}'); fi
    fi
    CELL=$(awk -v v="$v" -v b="$b" -v u="$u" -v key="$key" -v cfg="$cfg" 'BEGIN {
        if (u == "ms") s = sprintf(v >= 1e8 ? "%.0f ms" : "%.1f ms", v / 1e6)
        else if (u == "us") s = sprintf("%.1f us", v / 1e3)
        else if (u == "ns") s = sprintf("%.0f ns/pair", v)
        else s = sprintf("%.0f tps", v)
        if (b != "") s = s sprintf(" (%.2fx)", v / b)
        if (key == "untouched" && cfg != "none" && b != "") s = s sprintf(", %+.0f ns/call", (v - b) / 2)
        print s
    }')
    if [ "${FAILS[$key,$cfg]:-0}" -gt 0 ]; then
        mark "failed in some runs (the count is in the cell): the median is of the others"
        CELL+=" (${FAILS[$key,$cfg]} of $RUNS runs failed) [$M]"
    fi
    return 0
}

mark "storm rows (1-3) are the storm's own wall time measured inside the program (clock_gettime around the loop, from releasing the threads to the last one joined); process start-up and exit, and the agent's collector draining what is left at exit, are not in them (they are in rows 5-8). Row 2: each of the 4 threads does $T4 pairs ($((4 * T4)) in all, as in row 1); the machine has $(nproc) CPUs."; NOTE_T=$M
mark "per pair: wall / $PAIRS; per hooked call: (t_cfg - t_none) / ($PAIRS pairs x 2 calls), so the tool's added cost per mmap or munmap."; NOTE_U=$M
mark "rows 4a/4b: the library is not linked into the storm program; a dlopen of a library some tool already loaded into the process would only count a reference: neither libmapagent.so nor heaptrack's preload library depends on libz or libcrypto."; NOTE_D=$M
mark "rows 5-8 time the whole command from spawn to exit, the tool wrapping it: \`perf record -e dummy -- CMD\`, \`heaptrack CMD\`, \`strace -f ... CMD\`; perf's and heaptrack's own start-up (perf record takes about a second) is most of their cells. perf and strace -f follow every child; heaptrack traces only the process it starts (in row 6 bash, not the $LOOPN \`/bin/true\`); the agent's LD_PRELOAD is inherited by bash and every child. Row 5 is the median of $TRUE_REPS spawns per run ($(q 2 1) under perf and heaptrack)."; NOTE_S=$M
ASROOT=; [ "$(id -u)" = 0 ] && ASROOT=", run as the postgres user"
mark "row 9: a private cluster (initdb -A trust, scale 4, Unix socket only$ASROOT); the tool wraps the postmaster started directly (so perf and strace -f follow every backend); the agent runs with MAPAGENT_WATCH=debug_query_string:str MAPAGENT_WATCH_MS=1 (it wrote $(cat "$PGW/last_recs" 2>/dev/null || echo "?") process record files, one per process, in its last run). The pgbench client is never observed. Each run restarts the server under its configuration. heaptrack wraps the postmaster too; whether it also traces the backends the postmaster forks is up to heaptrack (not checked here)."; NOTE_P=$M

echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- kernel: \`$(uname -r)\`, nproc: $(nproc)"
echo "- command: \`$CMDLINE\`"
echo "- median of $RUNS interleaved runs; ratio to none in parentheses"
echo
printf '| workload |'; for c in "${CONFIGS[@]}"; do printf ' %s |' "$c"; done; echo
printf '|---|'; for c in "${CONFIGS[@]}"; do printf -- '---|'; done; echo
for key in "${ROWS[@]}"; do
    label=${LABEL[$key]}
    case $key in
        storm1|storm4|forks) label+=" [$NOTE_T]" ;;
        untouched) label+=" [$NOTE_T][$NOTE_U]" ;;
        zlib|crypto) label+=" [$NOTE_D]" ;;
        true|loop|java|node) label+=" [$NOTE_S]" ;;
        pg) label+=" [$NOTE_P]" ;;
    esac
    printf '| %s |' "$label"
    for c in "${CONFIGS[@]}"; do cell "$key" "$c"; printf ' %s |' "$CELL"; done
    echo
done
echo
for i in "${!FOOTS[@]}"; do echo "$((i + 1)). ${FOOTS[$i]}"; done
pg_cleanup

# --- syscalls of the application and of the collector (row 1, agent, one run) ---------------
# strace -f follows the agent's double vfork into the collector process (the pid that execs
# libmapagent.so); counts are per process, like `strace -f -c` but split.
if command -v strace >/dev/null; then
    echo "bench: strace -f syscall counts, agent, row 1 ..." >&2
    strace -f -o "$TMP/st.txt" -E LD_PRELOAD="$AGENT" -E MAPAGENT_DIR="$TMP/rec" \
        $OUT/mmap_storm write1 "$PAIRS" >/dev/null 2>&1 || true
    rm -rf "$TMP/rec"
    echo
    echo "Syscalls in row 1 under the agent (one run under \`strace -f\`, which slows the application, so the collector keeps up more easily than untraced; \"other\" is the short-lived middle process of the collector's double vfork and any further thread):"
    echo
    awk -v top=6 '
        $2 ~ /^[a-z_0-9]+\(/ {
            pid = $1; if (app == "") app = pid
            name = $2; sub(/\(.*/, "", name)
            if (name == "execve" && $0 ~ /libmapagent\.so/) col = pid
            n[pid, name]++; names[name] = 1; pids[pid] = 1
        }
        END {
            for (nm in names) for (p in pids) {
                g = p == app ? "app" : p == col ? "collector" : "other"
                c[g, nm] += n[p, nm]; tot[g] += n[p, nm]; all[nm] += n[p, nm]
            }
            # the union of the top lines of the application and of the collector
            for (k = 1; k <= top; k++) for (gi = 1; gi <= 2; gi++) {
                g = gi == 1 ? "app" : "collector"; best = ""
                for (nm in names) if (!(nm in shown) && c[g, nm] > 0 && (best == "" || c[g, nm] > c[g, best])) best = nm
                if (best != "") { shown[best] = 1; order[++m] = best }
            }
            print "| syscall | app | collector | other |"
            print "|---|---|---|---|"
            for (i = 1; i <= m; i++) printf "| %s | %d | %d | %d |\n", order[i], c["app", order[i]], c["collector", order[i]], c["other", order[i]]
            printf "| all syscalls | %d | %d | %d |\n", tot["app"], tot["collector"], tot["other"]
            if (col == "") print "\n(no process exec'"'"'d libmapagent.so: the collector was not found in the trace)"
        }' "$TMP/st.txt"
    rm -f "$TMP/st.txt"
fi

# --- instructions per hooked call ---------------------------------------------------------
# Wall-clock medians on a shared VM cannot resolve ~100 ns; instructions can. callgrind counts
# the application's user-space instructions, deterministically, at two loop lengths: the slope
# is the cost per mmap+munmap pair, with and without the agent.
if [ "$CALLGRIND" = 1 ] && command -v valgrind >/dev/null; then
    echo "bench: callgrind ..." >&2
    per_pair() {  # per_pair PRELOAD -> instructions per pair in the main thread
        local n a b
        for n in 10000 20000; do
            LD_PRELOAD=$1 MAPAGENT_DIR=$TMP/rec valgrind --tool=callgrind --separate-threads=yes \
                --callgrind-out-file="$TMP/cg.$n" "$OUT/mmap_storm" untouched "$n" >/dev/null 2>&1
            rm -rf "$TMP/rec"
        done
        a=$(awk '/^summary:/{print $2}' "$TMP/cg.10000-01" 2>/dev/null || awk '/^summary:/{print $2}' "$TMP/cg.10000")
        b=$(awk '/^summary:/{print $2}' "$TMP/cg.20000-01" 2>/dev/null || awk '/^summary:/{print $2}' "$TMP/cg.20000")
        rm -f "$TMP"/cg.*
        echo $(((b - a) / 10000))
    }
    base=$(per_pair "")
    with=$(per_pair "$AGENT")
    echo
    echo "agent: $(((with - base) / 2)) instructions added per hooked call in the application (callgrind: $base -> $with per mmap+munmap pair)"
fi
