#!/usr/bin/env bash
# r_sweep (`make r-sweep`, not part of make check): the SE reduction ratio r
# against accuracy. One federated run per r in RS (2 4 8 16 32) with
# --private se on one split, plus one --private head run (FedPer) as the
# reference point; prints a table of private parameters per client against
# sample-weighted accuracy (last round), std and min over clients, and the
# gate view of each run (sefl-eval --gates at the default threshold 0.05:
# channels shut on every test image per client, the MACs per sample their
# pruning saves, accuracy with them pruned, and the centered cosine
# similarity of gate patterns of clients with the same classes minus that
# of clients with disjoint ones), and draws the curve (sefl-eval --plot,
# client/report_svg.c) to OUT/r_sweep.svg.
#
# Sized for the shared 2-core machine by default: 20 clients, SPLIT dir:0.1,
# ROUNDS 20 rounds, each client capped at MAX_SAMPLES 300 train and 300
# test samples, PFLlib's lr 0.005, batch 10, 1 epoch. Environment: SPLIT,
# CLIENTS, ROUNDS, MAX_SAMPLES, RS, LR, SEED (1), HEAD (1: also the head
# run; 0: not), OUT (r-sweep-out). Writes OUT/table.md, OUT/points.txt,
# OUT/r_sweep.svg and one directory per run.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
sefl_need_fmnist >/dev/null || { echo "r_sweep: Fashion-MNIST not installed"; exit 1; }

SPLIT=${SPLIT:-dir:0.1}
CLIENTS=${CLIENTS:-20}
ROUNDS=${ROUNDS:-20}
MAX_SAMPLES=${MAX_SAMPLES:-300}
RS=${RS:-2 4 8 16 32}
LR=${LR:-0.005}
SEED=${SEED:-1}
HEAD=${HEAD:-1}
OUT=${OUT:-r-sweep-out}
START=$(date +%s)
HYPER="--lr $LR --batch 10 --epochs 1 --seed $SEED"
DATA="--clients $CLIENTS --partition $SPLIT --seed $SEED --max-samples $MAX_SAMPLES"

rm -rf "$OUT"
mkdir -p "$OUT"
"$BIN/sefl-certs" init --dir "$OUT/certs" --clients "$CLIENTS" >"$OUT/certs.log" 2>&1 ||
    { cat "$OUT/certs.log"; exit 1; }
SEFL_SERVER_PID=
SEFL_SIM_PID=
trap 'sefl_stop $SEFL_SERVER_PID $SEFL_SIM_PID' EXIT

# run NAME PRIVATE R: one federated run into OUT/NAME; prints its table row
# and appends its point (series, private parameters, accuracy).
run() {
    local name=$1 private=$2 r=$3 dir=$OUT/$1 t0
    t0=$(date +%s)
    sefl_run_federated "$dir" "$OUT/certs" $((ROUNDS * 600 + 120)) \
        "--rounds $ROUNDS --clients-per-round $CLIENTS --min-clients $CLIENTS --round-timeout 600
         --eval-every $ROUNDS --private $private --r $r $HYPER" \
        "$DATA --r $r --threads 2" || return 1
    "$BIN/sefl-eval" --db "$dir/server.db" >"$dir/eval.txt" || return 1
    "$BIN/sefl-eval" --gates --db "$dir/server.db" --state "$dir/clients" $DATA >"$dir/gates.txt" ||
        return 1
    local priv frac acc std min g=$dir/gates.txt
    priv=$(sefl_value "$dir/eval.txt" params_private)
    frac=$(sefl_value "$dir/eval.txt" private_fraction)
    acc=$(sefl_value "$dir/eval.txt" weighted_accuracy)
    std=$(sefl_value "$dir/eval.txt" std_accuracy)
    min=$(sefl_value "$dir/eval.txt" min_accuracy)
    awk -v p="$private" -v r="$r" -v n="$priv" -v f="$frac" -v a="$acc" -v s="$std" -v m="$min" \
        -v pc="$(sefl_value "$g" pruned_channels_mean)" -v ms="$(sefl_value "$g" macs_saved_fraction)" \
        -v pa="$(sefl_value "$g" weighted_accuracy_pruned)" \
        -v sim="$(sefl_value "$g" gate_cosine_same_minus_disjoint)" \
        'BEGIN { printf "| %s | %s | %s | %.2f%% | %.2f | %.2f | %.2f | %s | %.2f%% | %.2f | %s |\n",
                 p, r, n, 100 * f, 100 * a, 100 * s, 100 * m, pc, 100 * ms, 100 * pa, sim }' \
        >>"$OUT/rows.md"
    if [ "$private" = se ]; then echo "private-SE $priv $acc r=$r"; else echo "private-$private $priv $acc"; fi \
        >>"$OUT/points.txt"
    echo "r_sweep: $name: private $priv, weighted accuracy $acc, $(($(date +%s) - t0)) s"
}

echo "r_sweep: $SPLIT, $CLIENTS clients, $ROUNDS rounds, --max-samples $MAX_SAMPLES, r in $RS"
: >"$OUT/rows.md"
: >"$OUT/points.txt"
for r in $RS; do run "se-r$r" se "$r" || { echo "r_sweep: the r=$r run failed"; exit 1; }; done
if [ "$HEAD" = 1 ]; then run head-r8 head 8 || { echo "r_sweep: the head run failed"; exit 1; }; fi
{
    echo "| --private | r | private params per client | of the model | weighted acc (%) | std | min | gates shut (of 608, mean per client) | MACs saved | acc. pruned (%) | gate similarity same - disjoint classes |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    cat "$OUT/rows.md"
} >"$OUT/table.md"
"$BIN/sefl-eval" --plot "$OUT/points.txt" --svg "$OUT/r_sweep.svg" --logx \
    --title "SE reduction ratio r: $SPLIT, $CLIENTS clients, $ROUNDS rounds at lr $LR, max $MAX_SAMPLES samples" \
    --xlabel "private parameters per client (log scale)" --ylabel "sample-weighted test accuracy" ||
    { echo "r_sweep: drawing the curve failed"; exit 1; }
cat "$OUT/table.md"
echo "r_sweep: table $OUT/table.md, curve $OUT/r_sweep.svg; wall time $(($(date +%s) - START)) s"
