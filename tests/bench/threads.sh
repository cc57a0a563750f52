#!/usr/bin/env bash
# threads: one training on 1 and on 2 threads (issue 12's goal: 2 threads at
# >= 1.7x the samples/s of 1). REPS times (default 3), alternating, runs
#   sefl-bench train --batch BATCH --samples SAMPLES --threads T
# (BATCH 10, SAMPLES 3000) for T = 1 then T = 2, and prints per pair
#   pair_I t1 X t2 Y ratio Y/X cpu1 C1 cpu2 C2 other1 O1 other2 O2
# where X and Y are train_samples_per_s, C the run's cpu_seconds (the timed
# epoch), and O the CPU-seconds the rest of the machine used while that
# run lasted (busy time in /proc/stat minus the run's own CPU time, from
# start to exit): a pair whose `other2` is more than a few tenths of a
# second shared the cores with something else and says little. Then
#   ratio_min R  ratio_max R
# over the pairs. With CGROUP set to a cgroup-v1 cpu directory (e.g.
# /sys/fs/cgroup/cpu/results), every run joins it first, as the README's
# figures did, to stand above the machine's other work.
# Not part of make check: about 10 s per pair with the defaults.
# Environment: REPS, BATCH, SAMPLES, CGROUP, and any sefl-bench setting
# (SEFL_GEMM=openblas|sefl pins the gemm backend).
set -u
cd "$(dirname "$0")/../.." || exit 1
BIN=build/bin/sefl-bench
[ -x "$BIN" ] || { echo "threads: $BIN is missing (make)"; exit 1; }
REPS=${REPS:-3}
BATCH=${BATCH:-10}
SAMPLES=${SAMPLES:-3000}
CGROUP=${CGROUP:-}
[ -z "$CGROUP" ] || [ -w "$CGROUP/tasks" ] || { echo "threads: cannot join $CGROUP"; exit 1; }

# CPU-seconds the whole machine has been busy (user, nice, system, irq,
# softirq, steal; /proc/stat counts in 1/100 s).
busy() { awk '/^cpu /{ printf "%.2f\n", ($2 + $3 + $4 + $7 + $8 + $9) / 100; exit }' /proc/stat; }

# run T: prints "samples_per_s cpu_seconds other".
run() {
    local b0 b1 out sps cpu total
    b0=$(busy)
    # The bench runs as a child of a shell in the cgroup, whose `times`
    # then prints the child's user and system CPU time as its second line.
    out=$(bash -c '[ -z "$1" ] || echo $$ > "$1/tasks"; shift; "$@" && times' \
          _ "$CGROUP" "$BIN" train --batch "$BATCH" --samples "$SAMPLES" --threads "$1" 2>&1)
    b1=$(busy)
    sps=$(echo "$out" | awk '/^train_samples_per_s/ { print $2 }')
    cpu=$(echo "$out" | awk '/^cpu_seconds/ { print $2 }')
    total=$(echo "$out" | awk '/^[0-9]+m[0-9.]+s [0-9]+m[0-9.]+s$/ { n++; if (n == 2) {
        split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] } }')
    if [ -z "$sps" ] || [ -z "$total" ]; then
        echo "threads: sefl-bench failed:" >&2
        echo "$out" >&2
        return 1
    fi
    echo "$sps $cpu $(awk -v a="$b0" -v b="$b1" -v t="$total" 'BEGIN { printf "%.2f", b - a - t }')"
}

min=""
max=""
for i in $(seq "$REPS"); do
    one=$(run 1) && two=$(run 2) || exit 1
    read -r s1 c1 o1 <<<"$one"
    read -r s2 c2 o2 <<<"$two"
    r=$(awk -v a="$s1" -v b="$s2" 'BEGIN { printf "%.2f", b / a }')
    echo "pair_$i t1 $s1 t2 $s2 ratio $r cpu1 $c1 cpu2 $c2 other1 $o1 other2 $o2"
    min=$(awk -v m="${min:-$r}" -v r="$r" 'BEGIN { print (r < m ? r : m) }')
    max=$(awk -v m="${max:-$r}" -v r="$r" 'BEGIN { print (r > m ? r : m) }')
done
echo "ratio_min $min"
echo "ratio_max $max"
