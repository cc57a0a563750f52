#!/bin/bash
# plateau.sh: the round-by-round weighted accuracy at the start of a
# federated run, the figure behind MODEL_GATE_BIAS (common/nn/model.h).
#
# For each partition in CASES it runs the real coordinator and sefl-sim on
# 127.0.0.1 (20 clients, all every round, PFLlib's lr 0.005, batch 10, one
# local epoch, --private se, evaluation every round) for ROUNDS rounds and
# prints, per round,
#     plateau_<LABEL>_<partition>_r<R> <weighted accuracy in %>
# then `plateau_<LABEL>_<partition>_seconds S`. The weighted accuracy is
# sefl-eval's: sum(accuracy * examples) / sum(examples) over the clients'
# EvalReports of that round (the new global model with each client's private
# gates, on its test split).
#
# Environment: CASES (default "iid feat:4 pat:2 dir:0.1"), ROUNDS (8),
# MAX_SAMPLES (per-client cap on train and test samples, sefl-sim
# --max-samples; default 0: all ~2,600 train samples per client), PRIVATE
# (se), LABEL (default "now"), THREADS (sefl-sim --threads, default 2), and
# SEFL_BIN: the directory of the programs to run (default build/bin). The
# "before" curve is this script run with the programs of a build from before
# the fix:
#     mkdir /tmp/before && git archive 625f230~1 | tar -x -C /tmp/before &&
#         make -C /tmp/before -j2 all
#     SEFL_BIN=/tmp/before/build/bin LABEL=before bash tests/bench/plateau.sh
# Run directories stay in OUT (default plateau-out/LABEL).
set -u
cd "$(dirname "$0")/../.."
. tests/lib.sh
BIN=${SEFL_BIN:-$BIN}
CASES=${CASES:-iid feat:4 pat:2 dir:0.1}
ROUNDS=${ROUNDS:-8}
MAX_SAMPLES=${MAX_SAMPLES:-0}
PRIVATE=${PRIVATE:-se}
LABEL=${LABEL:-now}
THREADS=${THREADS:-2}
OUT=${OUT:-plateau-out/$LABEL}
CLIENTS=20

for p in sefl-certs sefl-server sefl-sim; do
    if [ ! -x "$BIN/$p" ]; then
        echo "plateau: $BIN/$p is missing; run make first (or set SEFL_BIN)" >&2
        exit 1
    fi
done
sefl_need_fmnist || exit 0

rm -rf "$OUT"
mkdir -p "$OUT"
"$BIN/sefl-certs" init --dir "$OUT/certs" --clients "$CLIENTS" --server-name 127.0.0.1 \
    >"$OUT/certs.log" 2>&1 || { cat "$OUT/certs.log"; exit 1; }
SEFL_SERVER_PID=
SEFL_SIM_PID=
trap 'sefl_stop $SEFL_SERVER_PID $SEFL_SIM_PID' EXIT

cap=
[ "$MAX_SAMPLES" = 0 ] || cap="--max-samples $MAX_SAMPLES"
echo "plateau: $LABEL ($BIN), $ROUNDS rounds, $CLIENTS clients, --private $PRIVATE," \
     "lr 0.005 batch 10 1 epoch, max samples per client ${MAX_SAMPLES/#0/all}"
fail=0
for part in $CASES; do
    dir=$OUT/${part/:/}
    t0=$(date +%s)
    if ! sefl_run_federated "$dir" "$OUT/certs" $((ROUNDS * 600 + 120)) \
        "--rounds $ROUNDS --clients-per-round $CLIENTS --min-clients $CLIENTS --round-timeout 600
         --eval-every 1 --private $PRIVATE --seed 1 --lr 0.005 --batch 10 --epochs 1" \
        "--clients $CLIENTS --partition $part --seed 1 --threads $THREADS $cap"; then
        fail=1
        continue
    fi
    sefl_sql "$dir/server.db" "SELECT round, printf('%.2f', 100.0 * sum(accuracy * examples) / sum(examples))
                               FROM eval_reports GROUP BY round ORDER BY round" |
        while IFS='|' read -r r acc; do echo "plateau_${LABEL}_${part}_r$r $acc"; done
    echo "plateau_${LABEL}_${part}_seconds $(($(date +%s) - t0))"
done
exit "$fail"
