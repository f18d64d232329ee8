# Shared by the scripts/bench*.sh benchmarks (sourced): a scratch directory removed at exit,
# medians, and timing one run.
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# median: the middle of the numbers on stdin.
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# ns COMMAND...: wall time of one run in nanoseconds (output discarded; failure aborts)
ns() {
    local s e
    s=$(date +%s%N)
    "$@" >/dev/null 2>"$TMP/err" || { cat "$TMP/err" >&2; exit 1; }
    e=$(date +%s%N)
    echo $((e - s))
}
