#!/usr/bin/env bash
# Speed of the dirty-pages work, side by side with the raw tools in one run:
#   1. `mapagent dirty` on a recording of `rustc --version` (librustc_driver: ~150 MB, 117k
#      relocations, 250k symbols) against `nm -S` (and `nm -S -C`, which demangles as we do)
#      over the same library;
#   2. a snapshot of 1 GiB of mapped memory (three shapes, see scripts/bench/snapshot_1g.c)
#      against a raw /proc/self/pagemap read and mincore of the same range, in one process.
# Every cell is the median of RUNS runs (default 7).
#   scripts/bench-dirty.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-7}
OUT=target/bench-dirty
mkdir -p "$OUT"
cargo build --release -q -p mapagent-agent -p mapagent
AGENT=$PWD/target/release/libmapagent.so
M=$PWD/target/release/mapagent
${CC:-cc} -O2 -Iagent/include -o "$OUT/snapshot_1g" scripts/bench/snapshot_1g.c
. scripts/bench/common.sh
ms() { awk -v n="$1" 'BEGIN {printf "%.2f ms", n / 1e6}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }

# --- 1. mapagent dirty on librustc_driver ------------------------------------------------
"$M" run -o "$TMP/rustc" -- rustc --version >/dev/null 2>&1
"$M" dirty "$TMP/rustc" --image librustc_driver --json >"$TMP/rustc.json" 2>/dev/null
LIB=$(grep -m1 '"path"' "$TMP/rustc.json" | sed 's/.*"path": "\(.*\)",/\1/')
[ -f "$LIB" ] || { echo "librustc_driver not found in the recording" >&2; exit 1; }
declare -a D N NC
for _ in $(seq "$RUNS"); do
    D+=("$(ns "$M" dirty "$TMP/rustc" --image librustc_driver)")
    N+=("$(ns nm -S --defined-only "$LIB")")
    NC+=("$(ns nm -S -C --defined-only "$LIB")")
done
d=$(printf '%s\n' "${D[@]}" | median)
n=$(printf '%s\n' "${N[@]}" | median)
nc=$(printf '%s\n' "${NC[@]}" | median)
dirty_pages=$(grep -m1 '"dirty_pages"' "$TMP/rustc.json" | tr -dc 0-9)
echo
echo "librustc_driver ($(du -m "$LIB" | cut -f1) MB, $dirty_pages private dirty pages), median of $RUNS:"
printf '| %-40s | %10s | %8s |\n' "command" "time" "vs nm -S"
printf '|%s|%s|%s|\n' "------------------------------------------" "------------" "----------"
printf '| %-40s | %10s | %8s |\n' "mapagent dirty --image librustc_driver" "$(ms "$d")" "$(ratio "$d" "$n")"
printf '| %-40s | %10s | %8s |\n' "nm -S" "$(ms "$n")" "1.00x"
printf '| %-40s | %10s | %8s |\n' "nm -S -C" "$(ms "$nc")" "$(ratio "$nc" "$n")"

# --- 2. 1 GiB snapshots ------------------------------------------------------------------
LD_PRELOAD="$AGENT" MAPAGENT_DIR="$TMP/snap" "$OUT/snapshot_1g" "$RUNS" >"$TMP/snap.txt"
# The writer's own duration of each snapshot (SNAPSHOT_END), by label.
"$M" dump "$TMP/snap" | awk '
    / SNAPSHOT / { for (i = 1; i <= NF; i++) if ($i ~ /^label=/) { split($i, a, "="); label = a[2] } }
    / SNAPSHOT_END / { for (i = 1; i <= NF; i++) if ($i ~ /^duration_ns=/) { split($i, a, "="); print label, a[2] } }
' >"$TMP/durations.txt"
echo
echo "1 GiB of mapped memory (4 KiB pages), median of $RUNS, one process:"
printf '| %-12s | %16s | %10s | %14s | %16s | %12s |\n' "shape" "raw pagemap read" "mincore" "agent snapshot" "mapagent_snapshot()" "vs pagemap"
printf '|%s|%s|%s|%s|%s|%s|\n' "--------------" "------------------" "------------" "----------------" "---------------------" "--------------"
while read -r shape _ pm mc call; do
    pm=${pm#pagemap_ns=}; mc=${mc#mincore_ns=}; call=${call#snapshot_call_ns=}
    w=$(awk -v l="bench-$shape" '$1 == l {print $2}' "$TMP/durations.txt" | median)
    printf '| %-12s | %16s | %10s | %14s | %19s | %12s |\n' "$shape" "$(ms "$pm")" "$(ms "$mc")" "$(ms "$w")" "$(ms "$call")" "$(ratio "$w" "$pm")"
done <"$TMP/snap.txt"
echo
echo "agent snapshot: the writer's time for the whole process (reconcile with the kernel's maps,"
echo "then every mapping), from SNAPSHOT_END; mapagent_snapshot(): the caller's wait for it."
