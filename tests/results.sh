#!/usr/bin/env bash
# make results: the README's results table (long; not part of make check).
#
# PFLlib's protocol on the real Fashion-MNIST: 20 clients, all join every
# round, lr 0.005, batch 10, 1 local epoch, evaluation every round. Columns
# are partitions (PARTITIONS, default pat:2, dir:0.1, feat:4 and
# feat:4+dir:0.3), rows are policies (ROWS, default all of them):
#   local   sefl-sim --local-only: each client trains alone
#   fedavg  --private none
#   se      --private se (joint schedule)
#   se-pf   --private se --local-schedule private-first:1
#   se-pf-lr  the same with --private-lr 0.05 (10x --lr; not in the default ROWS)
#   head    --private head (FedPer)
#   fedrep  --private head --local-schedule private-first:1 (FedRep)
#   sehead  --private se,head --local-schedule private-first:1 (FedRep + gates)
# Every cell runs the same number of rounds: ROUNDS=N, or as many as fit
# RESULTS_HOURS (default 2) hours for the whole table, from one measured
# round. MAX_SAMPLES=N caps every client's train and test samples
# (sefl-sim --max-samples; default 0, all ~2,600 train samples per client):
# the table then says so. EVAL_EVERY=E (default 1) evaluates the federated
# runs every E rounds and after the last (local-only runs evaluate every
# round); the best round is the best evaluated one.
#
# Writes results-out/PART/ROW/ (server.db, logs, eval.txt, curve.txt), a
# curve per partition (results-out/curve-PART.svg: weighted accuracy over
# rounds, one line per row), the Markdown table (results-out/table.md,
# also printed), and `results_PART_ROW_{last,best,std,min}` lines.
set -euo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
. tests/lib.sh

CLIENTS=20
SEED=1
HOURS=${RESULTS_HOURS:-2}
OUT=results-out
PARTITIONS=${PARTITIONS:-pat:2 dir:0.1 feat:4 feat:4+dir:0.3}
ROWS=${ROWS:-local fedavg se se-pf head fedrep sehead}
MAX_SAMPLES=${MAX_SAMPLES:-0}
EVAL_EVERY=${EVAL_EVERY:-1}
HYPER="--lr 0.005 --batch 10 --epochs 1"
declare -A FLAGS=([fedavg]="--private none" [se]="--private se"
    [se-pf]="--private se --local-schedule private-first:1"
    [se-pf-lr]="--private se --local-schedule private-first:1 --private-lr 0.05" [head]="--private head"
    [fedrep]="--private head --local-schedule private-first:1"
    [sehead]="--private se,head --local-schedule private-first:1")
declare -A LABEL=([local]="Local only" [fedavg]="FedAvg" [se]="sefl: private SE gates, joint"
    [se-pf]="sefl: private SE gates, private-first:1"
    [se-pf-lr]="sefl: private SE gates, private-first:1, --private-lr 0.05" [head]="FedPer (private head)"
    [fedrep]="FedRep (private head, private-first:1)" [sehead]="private SE gates + head, private-first:1")
# PFLlib's published figures for this protocol (their code, 2000 rounds,
# pathological / Dir 0.1).
declare -A THEIRS=([fedavg]="80.41 / 85.85" [head]="99.47 / 97.44" [fedrep]="99.56 / 97.56")
for row in $ROWS; do
    [ -n "${LABEL[$row]:-}" ] || { echo "results: unknown row '$row'" >&2; exit 2; }
done

make -s -j2 "$BIN/sefl-certs" "$BIN/sefl-server" "$BIN/sefl-sim" "$BIN/sefl-eval"
rm -rf "$OUT"
mkdir -p "$OUT"
"$BIN/sefl-certs" init --dir "$OUT/certs" --clients "$CLIENTS" --server-name 127.0.0.1 \
    >"$OUT/certs.log" 2>&1 || { cat "$OUT/certs.log"; exit 1; }

trap 'sefl_stop $SEFL_SERVER_PID $SEFL_SIM_PID' EXIT
SEFL_SERVER_PID=
SEFL_SIM_PID=
CAP=
[ "$MAX_SAMPLES" = 0 ] || CAP="--max-samples $MAX_SAMPLES"

# run DIR PARTITION ROW ROUNDS: one cell of the table into DIR.
run() {
    local dir=$1 part=$2 row=$3 rounds=$4
    if [ "$row" = local ]; then
        mkdir -p "$dir"
        "$BIN/sefl-sim" --local-only --db "$dir/server.db" --state "$dir/clients" \
            --clients "$CLIENTS" --partition "$part" --seed "$SEED" --rounds "$rounds" \
            $HYPER $CAP >"$dir/sim.log" 2>&1 ||
            { tail -n 20 "$dir/sim.log"; echo "results: local-only run failed"; return 1; }
        return 0
    fi
    sefl_run_federated "$dir" "$OUT/certs" $((rounds * 600 + 120)) \
        "--rounds $rounds --clients-per-round $CLIENTS --min-clients $CLIENTS --round-timeout 600
         --eval-every $EVAL_EVERY ${FLAGS[$row]} --seed $SEED $HYPER" \
        "--clients $CLIENTS --partition $part --seed $SEED $CAP"
}

ncells=$(( $(echo $PARTITIONS | wc -w) * $(echo $ROWS | wc -w) ))
if [ -n "${ROUNDS:-}" ]; then
    echo "results: ROUNDS=$ROUNDS given, no measurement"
    ROUNDS_GIVEN=1
else
    # The whole one-round run (start, data loading, the round, the
    # evaluation) is the unit, so the estimate errs towards finishing early.
    echo "results: measuring one round (--private se, pat:2)"
    t0=$(date +%s)
    run "$OUT/measure" pat:2 se 1
    per=$(( $(date +%s) - t0 ))
    ROUNDS=$(awk -v h="$HOURS" -v s="$per" -v n="$ncells" 'BEGIN {
        r = int(h * 3600 / (s * n)); if (r < 1) r = 1; print r }')
    echo "results: a one-round run took $per s; $ncells runs in $HOURS h allow $ROUNDS rounds each"
fi
echo "results: $ROUNDS rounds per cell, $ncells cells, max samples per client ${MAX_SAMPLES/#0/all}, $(nproc) cores"

# write_table: the Markdown table of the partitions done so far ($DONE),
# so that a run cut short still leaves its finished columns.
write_table() {
    {
        echo "### Fashion-MNIST, 20 clients, personalized test accuracy (%)"
        echo
        if [ -n "${ROUNDS_GIVEN:-}" ]; then
            sized="set by ROUNDS=$ROUNDS"
        else
            sized="what fits about $HOURS h on this $(nproc)-core machine"
        fi
        samples="all samples of each client"
        [ "$MAX_SAMPLES" = 0 ] || samples="at most $MAX_SAMPLES train and $MAX_SAMPLES test samples per client"
        echo "All clients every round, lr 0.005, batch 10, 1 local epoch, **$ROUNDS rounds** ($sized)," \
             "$samples, evaluated every $EVAL_EVERY round(s), seed $SEED. Each cell: sample-weighted accuracy over clients at the last round" \
             "(as PFLlib reports) / at the best round; then std and min over clients at the last round." \
             "Made by \`$( [ -n "${ROUNDS_GIVEN:-}" ] && echo "ROUNDS=$ROUNDS ")$( [ "$MAX_SAMPLES" = 0 ] || echo "MAX_SAMPLES=$MAX_SAMPLES ")$( [ "$EVAL_EVERY" = 1 ] || echo "EVAL_EVERY=$EVAL_EVERY ")make results\`."
        echo
        printf '| method | private params per client |'
        for part in $DONE; do printf ' %s last / best | std, min |' "$part"; done
        printf " PFLlib's published, 2000 rounds (theirs): pat / dir |\n"
        printf '|---|---|'
        for part in $DONE; do printf -- '---|---|'; done
        printf -- '---|\n'
        for row in $ROWS; do
            printf '| %s | %s |' "${LABEL[$row]}" "${PRIV[$row]}"
            for part in $DONE; do
                k=$part/$row
                printf ' %s / %s | %s, %s |' "${ACC[$k]}" "${BEST[$k]}" "${STD[$k]}" "${MIN[$k]}"
            done
            printf ' %s |\n' "${THEIRS[$row]:-—}"
        done
        echo
        echo "The last column is PFLlib's own published result (their code, 2000 rounds), not a run of sefl."
    } >"$OUT/table.md"
}

# Per cell: last-round weighted accuracy, std, min, the best round and its
# accuracy, private parameters per client (sefl-eval's name-value lines),
# and the per-round weighted accuracy for the curve.
declare -A ACC STD MIN BEST PRIV
DONE=
pct() { awk -v v="$(sefl_value "$1" "$2")" 'BEGIN { printf "%.2f", 100 * v }'; }
for part in $PARTITIONS; do
    for row in $ROWS; do
        dir=$OUT/${part//[:+]/_}/$row
        t0=$(date +%s)
        echo "== $part $row"
        run "$dir" "$part" "$row" "$ROUNDS" || exit 1
        "$BIN/sefl-eval" --db "$dir/server.db" --best >"$dir/eval.txt"
        k=$part/$row
        ACC[$k]=$(pct "$dir/eval.txt" weighted_accuracy)
        STD[$k]=$(pct "$dir/eval.txt" std_accuracy)
        MIN[$k]=$(pct "$dir/eval.txt" min_accuracy)
        BEST[$k]=$(pct "$dir/eval.txt" best_weighted_accuracy)
        PRIV[$row]=$(sefl_value "$dir/eval.txt" params_private)
        sefl_sql "$dir/server.db" "SELECT round, 100.0 * sum(accuracy * examples) / sum(examples)
                                   FROM eval_reports GROUP BY round ORDER BY round" |
            awk -F'|' -v s="$row" '{ printf "%s %d %.2f\n", s, $1, $2 }' >"$dir/curve.txt"
        echo "results_${part}_${row}_last ${ACC[$k]}"
        echo "results_${part}_${row}_best ${BEST[$k]}"
        echo "results_${part}_${row}_std ${STD[$k]}"
        echo "results_${part}_${row}_min ${MIN[$k]}"
        echo "   $(($(date +%s) - t0)) s"
    done
    for row in $ROWS; do cat "$OUT/${part//[:+]/_}/$row/curve.txt"; done |
        awk -v title="Fashion-MNIST $part, 20 clients: weighted accuracy per round" \
            -v xlabel="round" -v ylabel="weighted test accuracy (%)" -f tests/curves_svg.awk \
            >"$OUT/curve-${part//[:+]/_}.svg"
    DONE="$DONE $part"
    write_table
done


echo
cat "$OUT/table.md"
echo
echo "results: table in $OUT/table.md, curves in $OUT/curve-*.svg; wall time $(($(date +%s) - START)) s"
