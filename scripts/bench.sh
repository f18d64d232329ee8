#!/usr/bin/env bash
# Overhead of the agent next to its peers, in one run: each workload with no agent, with
# libmapagent.so, under `perf record -e dummy`, under heaptrack and under
# `strace -f -e trace=memory`. Every cell is the median of RUNS runs; ratios are to "none".
#   scripts/bench.sh [RUNS]        (default 5; needs perf, heaptrack, strace)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
OUT=target/bench
mkdir -p "$OUT"
cargo build --release -q -p mapagent-agent -p mapagent
AGENT=$PWD/target/release/libmapagent.so
CC=${CC:-cc}
$CC -O2 -o $OUT/mmap_storm scripts/bench/mmap_storm.c
$CC -O2 -o $OUT/dlopen_storm scripts/bench/dlopen_storm.c -ldl
$CC -O2 -o $OUT/startup scripts/bench/startup.c
$CC -O2 -shared -fPIC -DPLUG=plug_bench -o $OUT/libplug_bench.so c-tests/plug.c
. scripts/bench/common.sh

# run CONFIG CMD... : prints the workload's own number (its RESULT line, ns) under CONFIG
run() {
    local cfg=$1; shift
    case $cfg in
        none) "$@" ;;
        agent) LD_PRELOAD=$AGENT MAPAGENT_DIR=$TMP/rec "$@"; rm -rf "$TMP/rec" ;;
        perf) perf record -q -e dummy -o "$TMP/perf.data" -- "$@" 2>/dev/null; rm -f "$TMP/perf.data" ;;
        heaptrack) heaptrack -o "$TMP/ht" "$@" 2>/dev/null; rm -f "$TMP"/ht* ;;
        strace) strace -f -e trace=memory -o /dev/null "$@" ;;
    esac | awk '/^RESULT /{print $2}'
}

# The start-up workload spawns children; each tool wraps each child (perf and heaptrack take
# a second or so to start, so they get fewer runs).
run_startup() {
    local cfg=$1
    case $cfg in
        none) $OUT/startup 200 /bin/true ;;
        agent) MAPAGENT_DIR=$TMP/rec BENCH_CHILD_PRELOAD=$AGENT $OUT/startup 200 /bin/true; rm -rf "$TMP/rec" ;;
        perf) $OUT/startup 5 perf record -q -e dummy -o "$TMP/perf.data" -- /bin/true ;;
        heaptrack) $OUT/startup 5 sh -c "heaptrack -o $TMP/ht /bin/true >/dev/null 2>&1" ;;
        strace) $OUT/startup 50 strace -f -e trace=memory -o /dev/null /bin/true ;;
    esac | awk '/^RESULT /{print $2}'
}

CONFIGS=(none agent perf heaptrack strace)
declare -A R
workloads=(
    "mmap_touch|64 KiB mmap+touch+munmap (ns/pair)|run CFG $OUT/mmap_storm touch 50000"
    "mmap_untouched|64 KiB mmap+munmap, untouched (ns/pair)|run CFG $OUT/mmap_storm untouched 100000"
    "dlopen|dlopen+dlclose small library (ns/pair)|run CFG $OUT/dlopen_storm $OUT/libplug_bench.so 2000"
    "startup|/bin/true start to exit (ns)|run_startup CFG"
)
# Configurations are interleaved run by run, so drifts of a shared, noisy machine hit all alike.
for w in "${workloads[@]}"; do
    IFS='|' read -r key label cmd <<<"$w"
    declare -A vals=()
    for _ in $(seq "$RUNS"); do
        for cfg in "${CONFIGS[@]}"; do vals[$cfg]+="$(${cmd//CFG/$cfg}) "; done
    done
    for cfg in "${CONFIGS[@]}"; do R[$key,$cfg]=$(printf '%s\n' ${vals[$cfg]} | median); done
    unset vals
done

printf '\nmedian of %s runs; ratio to no agent in parentheses\n\n' "$RUNS"
printf '| %-44s |' "workload"; for c in "${CONFIGS[@]}"; do printf ' %-20s |' "$c"; done; echo
printf '|%s|' "$(printf -- '-%.0s' {1..46})"; for c in "${CONFIGS[@]}"; do printf '%s|' "$(printf -- '-%.0s' {1..22})"; done; echo
for w in "${workloads[@]}"; do
    IFS='|' read -r key label cmd <<<"$w"
    base=${R[$key,none]}
    printf '| %-44s |' "$label"
    for c in "${CONFIGS[@]}"; do
        v=${R[$key,$c]}
        printf ' %-20s |' "$(awk -v v="$v" -v b="$base" 'BEGIN { if (v >= 1e6) s = sprintf("%.2f ms", v/1e6); else if (v >= 1e3) s = sprintf("%.2f us", v/1e3); else s = sprintf("%.0f ns", v); printf "%s (%.2fx)", s, v/b }')"
    done
    echo
done
# The agent's own cost per hooked call and on start-up, which the targets are stated in.
awk -v a="${R[mmap_untouched,agent]}" -v n="${R[mmap_untouched,none]}" 'BEGIN { printf "\nagent: %+.0f ns per hooked call (untouched pairs: 2 calls)\n", (a-n)/2 }'
awk -v a="${R[startup,agent]}" -v n="${R[startup,none]}" 'BEGIN { printf "agent: %+.2f ms added to the start of /bin/true\n", (a-n)/1e6 }'

# Wall-clock medians on a shared VM cannot resolve ~100 ns; instructions can. callgrind counts
# the application thread's user-space instructions, deterministically, at two loop lengths:
# the slope is the cost per mmap+munmap pair, with and without the agent.
if command -v valgrind >/dev/null; then
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
        echo $(( (b - a) / 10000 ))
    }
    base=$(per_pair "")
    with=$(per_pair "$AGENT")
    echo "agent: $(( (with - base) / 2 )) instructions added per hooked call in the application thread (callgrind: $base -> $with per mmap+munmap pair)"
fi
