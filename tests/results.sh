#!/usr/bin/env bash
# make results: the README's results table (long; not part of make check).
#
# PFLlib's protocol on the real Fashion-MNIST: 20 clients, all join every
# round, lr 0.005, batch 10, 1 local epoch; partitions pat:2 (pathological)
# and dir:0.1 (practical); policies local-only, --private none (FedAvg), se
# (ours), head (FedPer), se,head. As many rounds as fit about RESULTS_HOURS
# (default 2) hours for the whole table: one round is measured first and the
# count printed. ROUNDS=N skips the measurement.
#
# Writes results-out/PARTITION/POLICY/ (server.db, logs, eval.txt/json) and
# the Markdown table to results-out/table.md, which it also prints.
set -euo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
. tests/lib.sh

CLIENTS=20
SEED=1
HOURS=${RESULTS_HOURS:-2}
OUT=results-out
PARTITIONS="pat:2 dir:0.1"
POLICIES="local none se head se,head"
HYPER="--lr 0.005 --batch 10 --epochs 1"

make -s -j"$(nproc)" "$BIN/sefl-certs" "$BIN/sefl-server" "$BIN/sefl-sim" "$BIN/sefl-eval"
rm -rf "$OUT"
mkdir -p "$OUT"
"$BIN/sefl-certs" init --dir "$OUT/certs" --clients "$CLIENTS" --server-name 127.0.0.1 \
    >"$OUT/certs.log" 2>&1 || { cat "$OUT/certs.log"; exit 1; }

trap 'sefl_stop $SEFL_SERVER_PID $SEFL_SIM_PID' EXIT
SEFL_SERVER_PID=
SEFL_SIM_PID=

# run DIR PARTITION POLICY ROUNDS: one run of the table into DIR.
run() {
    local dir=$1 part=$2 policy=$3 rounds=$4 every=$(( $4 >= 10 ? $4 / 10 : 1 ))
    if [ "$policy" = local ]; then
        mkdir -p "$dir"
        "$BIN/sefl-sim" --local-only --db "$dir/server.db" --state "$dir/clients" \
            --clients "$CLIENTS" --partition "$part" --seed "$SEED" --rounds "$rounds" \
            $HYPER >"$dir/sim.log" 2>&1 ||
            { tail -n 20 "$dir/sim.log"; echo "results: local-only run failed"; return 1; }
        return 0
    fi
    sefl_run_federated "$dir" "$OUT/certs" $((rounds * 600 + 120)) \
        "--rounds $rounds --clients-per-round $CLIENTS --min-clients $CLIENTS --round-timeout 600
         --eval-every $every --private $policy --seed $SEED $HYPER" \
        "--clients $CLIENTS --partition $part --seed $SEED"
}

if [ -n "${ROUNDS:-}" ]; then
    echo "results: ROUNDS=$ROUNDS given, no measurement"
    ROUNDS_GIVEN=1
else
    # The whole one-round run (start, data loading, the round, the
    # evaluation) is the unit, so the estimate errs towards finishing early.
    echo "results: measuring one round (--private se, pat:2, full data)"
    t0=$(date +%s)
    run "$OUT/measure" pat:2 se 1
    per=$(( $(date +%s) - t0 ))
    round=$(sqlite3 "$OUT/measure/server.db" "SELECT printf('%.1f', seconds) FROM rounds WHERE round = 1")
    runs=$(( $(echo $PARTITIONS | wc -w) * $(echo $POLICIES | wc -w) ))
    ROUNDS=$(awk -v h="$HOURS" -v s="$per" -v n="$runs" 'BEGIN {
        r = int(h * 3600 / (s * n)); if (r < 1) r = 1; print r }')
    echo "results: a one-round run took $per s (the round itself $round s);" \
         "$runs runs in $HOURS h allow $ROUNDS rounds each"
fi
echo "results: $ROUNDS rounds per run, $(nproc) cores"

# Per run: weighted accuracy, std, min (last round), best round and its
# accuracy, private parameters per client, from sefl-eval's name-value lines.
declare -A ACC STD MIN BEST PRIV
pct() { awk -v v="$(sefl_value "$1" "$2")" 'BEGIN { printf "%.2f", 100 * v }'; }
for part in $PARTITIONS; do
    for policy in $POLICIES; do
        dir=$OUT/${part/:/}/${policy/,/+}
        t0=$(date +%s)
        echo "== $part $policy"
        run "$dir" "$part" "$policy" "$ROUNDS" || exit 1
        "$BIN/sefl-eval" --db "$dir/server.db" --best --json "$dir/eval.json" >"$dir/eval.txt"
        k=$part/$policy
        ACC[$k]=$(pct "$dir/eval.txt" weighted_accuracy)
        STD[$k]=$(pct "$dir/eval.txt" std_accuracy)
        MIN[$k]=$(pct "$dir/eval.txt" min_accuracy)
        BEST[$k]="$(pct "$dir/eval.txt" best_weighted_accuracy) (r$(sefl_value "$dir/eval.txt" best_round))"
        PRIV[$k]=$(sefl_value "$dir/eval.txt" params_private)
        echo "   weighted accuracy ${ACC[$k]} %, std ${STD[$k]}, min ${MIN[$k]}," \
             "best ${BEST[$k]}, $(($(date +%s) - t0)) s"
    done
done

# PFLlib's published figures for the same protocol (their table, 2000
# rounds; FedRep is not run here).
declare -A THEIRS=([none]="80.41 / 85.85" [head]="99.47 / 97.44")
declare -A LABEL=([local]="Local only" [none]="FedAvg" [se]="**sefl: private SE gates (ours)**"
                  [head]="FedPer (private head)" [se,head]="private SE gates + head")
{
    echo "### Fashion-MNIST, 20 clients, personalized test accuracy (%)"
    echo
    if [ -n "${ROUNDS_GIVEN:-}" ]; then
        sized="set by ROUNDS=$ROUNDS: a short run, not the $HOURS-hour table"
    else
        sized="what fits about $HOURS h on this $(nproc)-core machine"
    fi
    echo "All clients every round, lr 0.005, batch 10, 1 local epoch, **$ROUNDS rounds**" \
         "($sized), seed $SEED." \
         "Sample-weighted accuracy over clients at the last round (as PFLlib reports)," \
         "std and min over clients; best = best evaluated round (r: its number)." \
         "Made by \`$( [ -n "${ROUNDS_GIVEN:-}" ] && echo "ROUNDS=$ROUNDS ")make results\`."
    echo
    echo "| method | --private | pat:2 acc | std | min | best | dir:0.1 acc | std | min | best | private params per client | PFLlib's published, 2000 rounds (theirs): pat / dir |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for policy in $POLICIES; do
        a=pat:2/$policy
        b=dir:0.1/$policy
        name=${LABEL[$policy]}
        flag=$policy
        [ "$policy" = local ] && flag="(sefl-sim --local-only)"
        echo "| $name | $flag | ${ACC[$a]} | ${STD[$a]} | ${MIN[$a]} | ${BEST[$a]} | ${ACC[$b]} | ${STD[$b]} | ${MIN[$b]} | ${BEST[$b]} | ${PRIV[$a]} | ${THEIRS[$policy]:-—} |"
    done
    echo "| FedRep (not run here) | | | | | | | | | | | 99.56 / 97.56 |"
    echo
    echo "The last column is PFLlib's own published result (their code, 2000 rounds), not a run of sefl."
} >"$OUT/table.md"
echo
cat "$OUT/table.md"
echo
echo "results: table in $OUT/table.md; wall time $(($(date +%s) - START)) s"
