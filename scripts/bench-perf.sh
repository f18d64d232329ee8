#!/usr/bin/env bash
# Speed of the perf interop, side by side with perf itself in one run:
#   1. `mapagent inject` against `perf inject -b` on the same perf.data of at least 100 MB
#      (perf record of a program running code from a memfd library, with DWARF stacks);
#   2. `mapagent perf` writing a standalone perf.data from a recording of a million file mmaps,
#      in records per second, next to `perf inject` merely copying that same file.
# Every cell is the median of RUNS runs (default 5), the tools interleaved run by run.
#   scripts/bench-perf.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
OUT=target/bench-perf
mkdir -p "$OUT"
cargo build --release -q -p mapagent-agent -p mapagent
AGENT=$PWD/target/release/libmapagent.so
M=$PWD/target/release/mapagent
CC=${CC:-cc}
$CC -O2 -shared -fPIC -DNAME=memfd -o $OUT/libhot_memfd.so c-tests/hot.c
$CC -O2 -Ic-tests -o $OUT/hot_loader c-tests/hot_loader.c -ldl
$CC -O2 -o $OUT/mmap_storm scripts/bench/mmap_storm.c
. scripts/bench/common.sh
mb() { awk -v b="$1" 'BEGIN {printf "%.0f MB", b / 1e6}'; }
secs() { awk -v n="$1" 'BEGIN {printf "%.3f s", n / 1e9}'; }

# --- 1. inject ----------------------------------------------------------------------------
# inject_case NAME SECONDS PERF-RECORD-OPTIONS...: records two copies of the memfd program at
# once (one per CPU) until the perf.data reaches 100 MB, checks that mapagent inject names the
# memfd code, then times both injectors on it. Sets INJ_<field>[NAME].
declare -A INJ_SIZE INJ_RECORDS INJ_NAMED INJ_M INJ_P INJ_DESC
inject_case() {
    local name=$1 secs=$2; shift 2
    local d="$TMP/$name" size
    echo "recording a perf.data of at least 100 MB ($name) ..." >&2
    while :; do
        rm -rf "$d"; mkdir -p "$d"
        perf record -q -o "$d/in.data" "$@" -- \
            env LD_PRELOAD="$AGENT" MAPAGENT_DIR="$d/rec" sh -c \
            "$OUT/hot_loader memfd $OUT/libhot_memfd.so $secs & $OUT/hot_loader memfd $OUT/libhot_memfd.so $secs; wait" \
            >/dev/null 2>&1
        size=$(stat -c %s "$d/in.data")
        [ "$size" -ge 100000000 ] && break
        secs=$((secs * 2))
    done
    INJ_SIZE[$name]=$size
    INJ_DESC[$name]="$* for ${secs}s"
    INJ_RECORDS[$name]=$(perf script -D -i "$d/in.data" 2>/dev/null | grep -c ': PERF_RECORD_' || true)
    # The result must be right, not just fast: perf names the memfd code after mapagent inject.
    "$M" inject -i "$d/in.data" -o "$d/m.data" --buildid-dir "$d/cache" "$d/rec" 2>/dev/null
    INJ_NAMED[$name]=$(perf --buildid-dir "$d/cache" report -i "$d/m.data" --stdio --no-children -g none --sort sym 2>/dev/null |
        awk '/hot_spin_memfd/ {gsub("%", "", $1); s += $1} END {print s + 0}')
    local tm=() tp=()
    for _ in $(seq "$RUNS"); do
        rm -f "$d/m.data" "$d/p.data"
        tm+=("$(ns "$M" inject -i "$d/in.data" -o "$d/m.data" --buildid-dir "$d/cache" "$d/rec")")
        tp+=("$(ns perf --buildid-dir "$d/cache" inject -b -i "$d/in.data" -o "$d/p.data")")
    done
    INJ_M[$name]=$(printf '%s\n' "${tm[@]}" | median)
    INJ_P[$name]=$(printf '%s\n' "${tp[@]}" | median)
    rm -rf "$d"
}
inject_case samples 16 -F 50000 -g
inject_case stacks 2 -F 10000 --call-graph dwarf,4096

# --- 2. standalone perf.data --------------------------------------------------------------
echo "recording a million file mmaps ..." >&2
rm -rf "$TMP/storm"
LD_PRELOAD="$AGENT" MAPAGENT_DIR="$TMP/storm" $OUT/mmap_storm file 1000000 >/dev/null
storm_size=$(du -cb "$TMP"/storm/*.mrec | tail -1 | cut -f1)
$M perf "$TMP/storm" -o "$TMP/s.data" 2>"$TMP/msg"
written=$(sed -n 's/.*wrote \([0-9]*\) records.*/\1/p' "$TMP/msg")
# perf itself reads every record back (PERF_RECORD_SAMPLE lines are the mapping samples).
seen=$(perf script -D -i "$TMP/s.data" 2>/dev/null | grep -cE ': PERF_RECORD_(MMAP2|SAMPLE|COMM|FORK|EXIT)' || true)
declare -a ts tc
for _ in $(seq "$RUNS"); do
    rm -f "$TMP/s.data"
    ts+=("$(ns "$M" perf "$TMP/storm" -o "$TMP/s.data")")
done
m_perf=$(printf '%s\n' "${ts[@]}" | median)
for _ in $(seq "$RUNS"); do
    rm -f "$TMP/c.data"
    tc+=("$(ns perf inject -i "$TMP/s.data" -o "$TMP/c.data")")
done
p_copy=$(printf '%s\n' "${tc[@]}" | median)
s_size=$(stat -c %s "$TMP/s.data")

# --- table --------------------------------------------------------------------------------
rate() { awk -v n="$1" -v t="$2" 'BEGIN {printf "%.1f M records/s", n / (t / 1e9) / 1e6}'; }
cat <<EOF

perf interop, median of $RUNS runs ($(nproc) CPUs, $(uname -r))

1. Merge into a perf record recording (two processes running code from a memfd library).
   After mapagent inject, perf report names hot_spin_memfd for ${INJ_NAMED[samples]}% / ${INJ_NAMED[stacks]}% of samples.

| perf.data | tool | time | throughput | ratio |
|---|---|---|---|---|
EOF
for c in samples stacks; do
    sz=${INJ_SIZE[$c]} m=${INJ_M[$c]} p=${INJ_P[$c]}
    label="$(mb "$sz"), ${INJ_RECORDS[$c]} records (${INJ_DESC[$c]})"
    echo "| $label | mapagent inject | $(secs "$m") | $(awk -v b="$sz" -v t="$m" 'BEGIN {printf "%.0f MB/s", b / 1e6 / (t / 1e9)}') | 1.00 |"
    echo "| | perf inject -b | $(secs "$p") | $(awk -v b="$sz" -v t="$p" 'BEGIN {printf "%.0f MB/s", b / 1e6 / (t / 1e9)}') | $(awk -v a="$p" -v b="$m" 'BEGIN {printf "%.2f", a / b}') |"
done
cat <<EOF

2. Standalone perf.data from $(mb "$storm_size") of agent records (1,000,000 file mmaps + munmaps): $written records, $(mb "$s_size"); perf script -D reads back $seen

| tool | time | throughput | ratio |
|---|---|---|---|
| mapagent perf | $(secs "$m_perf") | $(rate "$written" "$m_perf") | 1.00 |
| perf inject (copying the result) | $(secs "$p_copy") | $(rate "$written" "$p_copy") | $(awk -v a="$p_copy" -v b="$m_perf" 'BEGIN {printf "%.2f", a / b}') |
EOF
