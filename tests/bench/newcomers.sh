#!/usr/bin/env bash
# newcomers (`make newcomers`, not part of make check): how fast a client
# that never took part adapts, by private set. For each of POLICIES (se
# head se,head) one federated run in which `sefl-sim --holdout HOLDOUT` keeps
# the last HOLDOUT clients out of every round; then `sefl-eval --newcomers`
# gives each held-out client the final global model with fresh private
# tensors (the model's initialisation), trains only those on its own train
# split and measures its test accuracy after every local epoch 0..EPOCHS.
# Prints a table (accuracy after 0, 1, 5 and EPOCHS epochs, the first epoch
# at >= 95% of the last, the trained clients' own accuracy at the last
# round for comparison) and draws the curves to OUT/newcomers.svg.
#
# Sized for the shared 2-core machine by default: 20 clients of which
# HOLDOUT 4 held out, SPLIT dir:0.1, ROUNDS 20, MAX_SAMPLES 300 train and
# test samples per client, PFLlib's lr 0.005, batch 10, 1 epoch per round,
# EPOCHS 20 newcomer epochs at the same lr and batch. Environment: SPLIT,
# CLIENTS, HOLDOUT, ROUNDS, MAX_SAMPLES, EPOCHS, LR, SEED (1), POLICIES,
# OUT (newcomers-out).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
sefl_need_fmnist >/dev/null || { echo "newcomers: Fashion-MNIST not installed"; exit 1; }

SPLIT=${SPLIT:-dir:0.1}
CLIENTS=${CLIENTS:-20}
HOLDOUT=${HOLDOUT:-4}
ROUNDS=${ROUNDS:-20}
MAX_SAMPLES=${MAX_SAMPLES:-300}
EPOCHS=${EPOCHS:-20}
LR=${LR:-0.005}
SEED=${SEED:-1}
POLICIES=${POLICIES:-se head se,head}
OUT=${OUT:-newcomers-out}
START=$(date +%s)
TRAINED=$((CLIENTS - HOLDOUT))
AT=$(printf '%s\n' 0 1 5 "$EPOCHS" | awk -v e="$EPOCHS" '$1 <= e' | sort -nu | paste -sd,)
DATA="--clients $CLIENTS --partition $SPLIT --seed $SEED --max-samples $MAX_SAMPLES"

rm -rf "$OUT"
mkdir -p "$OUT"
"$BIN/sefl-certs" init --dir "$OUT/certs" --clients "$CLIENTS" >"$OUT/certs.log" 2>&1 ||
    { cat "$OUT/certs.log"; exit 1; }
SEFL_SERVER_PID=
SEFL_SIM_PID=
trap 'sefl_stop $SEFL_SERVER_PID $SEFL_SIM_PID' EXIT

echo "newcomers: $SPLIT, $CLIENTS clients ($HOLDOUT held out), $ROUNDS rounds," \
     "--max-samples $MAX_SAMPLES, $EPOCHS newcomer epochs"
pct() { awk -v v="$1" 'BEGIN { printf "%.2f", 100 * v }'; }
: >"$OUT/rows.md"
: >"$OUT/points.txt"
for policy in $POLICIES; do
    dir=$OUT/${policy/,/+}
    t0=$(date +%s)
    sefl_run_federated "$dir" "$OUT/certs" $((ROUNDS * 600 + 120)) \
        "--rounds $ROUNDS --clients-per-round $TRAINED --min-clients $TRAINED --round-timeout 600
         --eval-every $ROUNDS --private $policy --lr $LR --batch 10 --epochs 1 --seed $SEED" \
        "$DATA --holdout $HOLDOUT --threads 2" || { echo "newcomers: the $policy run failed"; exit 1; }
    "$BIN/sefl-eval" --db "$dir/server.db" >"$dir/eval.txt" || exit 1
    "$BIN/sefl-eval" --newcomers --db "$dir/server.db" --holdout "$HOLDOUT" $DATA \
        --epochs "$EPOCHS" --at "$AT" --lr "$LR" --batch 10 >"$dir/newcomers.txt" ||
        { echo "newcomers: sefl-eval --newcomers failed on the $policy run"; exit 1; }
    n=$dir/newcomers.txt
    echo "| $policy | $(sefl_value "$n" newcomer_private_params) | $(pct "$(sefl_value "$n" newcomer_accuracy_e0)")" \
         "| $(pct "$(sefl_value "$n" newcomer_accuracy_e1)") | $(pct "$(sefl_value "$n" newcomer_accuracy_e5)")" \
         "| $(pct "$(sefl_value "$n" "newcomer_accuracy_e$EPOCHS")") | $(sefl_value "$n" newcomer_epochs_to_95)" \
         "| $(pct "$(sefl_value "$dir/eval.txt" weighted_accuracy)") |" >>"$OUT/rows.md"
    # The per-epoch lines "  E ACC" of the weighted curve.
    awk -v s="private-$policy" '/^# epoch weighted_accuracy/ { on = 1; next }
        on && /^ +[0-9]+ [0-9.]+$/ { print s, $1, $2; next } { on = 0 }' "$n" >>"$OUT/points.txt"
    echo "newcomers: $policy: $(tail -n 1 "$OUT/rows.md"), $(($(date +%s) - t0)) s"
done
{
    echo "| --private | private params | newcomers' acc (%) after 0 epochs | 1 | 5 | $EPOCHS | epochs to 95% of epoch $EPOCHS | trained clients' acc (%) |"
    echo "|---|---|---|---|---|---|---|---|"
    cat "$OUT/rows.md"
} >"$OUT/table.md"
"$BIN/sefl-eval" --plot "$OUT/points.txt" --svg "$OUT/newcomers.svg" \
    --title "Newcomers: $SPLIT, $HOLDOUT of $CLIENTS clients held out, global model of round $ROUNDS, lr $LR" \
    --xlabel "local epochs training only the private tensors" \
    --ylabel "held-out clients' weighted test accuracy" || { echo "newcomers: drawing failed"; exit 1; }
cat "$OUT/table.md"
echo "newcomers: table $OUT/table.md, curves $OUT/newcomers.svg; wall time $(($(date +%s) - START)) s"
