#!/usr/bin/env bash
# make demo: the main job end to end on one machine, in one command.
#
# Installs the Debian packages (make deps), builds the programs, makes
# certificates, starts a coordinator on 127.0.0.1 (port chosen by the OS),
# runs 20 simulated clients on a pat:2 partition of the real Fashion-MNIST
# with private SE gates, then the same with nothing private (FedAvg), and
# prints sefl-eval's per-client comparison of the two and the wall time.
# Everything goes to demo-out/. Sized to finish in under 5 minutes on 2
# cores: fewer rounds and a per-client sample cap, both printed.
#
# Overrides: DEMO_ROUNDS, DEMO_SAMPLES (per client and split), DEMO_EPOCHS,
# DEMO_LR.
set -euo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
. tests/lib.sh

ROUNDS=${DEMO_ROUNDS:-10}
SAMPLES=${DEMO_SAMPLES:-500}
EPOCHS=${DEMO_EPOCHS:-1}
LR=${DEMO_LR:-0.05}
CLIENTS=20
PARTITION=pat:2
SEED=1
OUT=demo-out

echo "== make deps"
make -s deps
echo "== build"
make -s -j"$(nproc)" "$BIN/sefl-certs" "$BIN/sefl-server" "$BIN/sefl-sim" "$BIN/sefl-eval"

rm -rf "$OUT"
mkdir -p "$OUT"
echo "== certificates: $OUT/certs (CA, server for 127.0.0.1, $CLIENTS clients)"
"$BIN/sefl-certs" init --dir "$OUT/certs" --clients "$CLIENTS" --server-name 127.0.0.1 \
    >"$OUT/certs.log" 2>&1 || { cat "$OUT/certs.log"; exit 1; }

echo "== reduced to fit 5 minutes on 2 cores:"
echo "   $ROUNDS rounds (PFLlib reports 2000), $EPOCHS local epoch(s), at most $SAMPLES train and"
echo "   $SAMPLES test samples per client (a full pat:2 share is about 2600 / 875), and"
echo "   lr $LR (PFLlib: 0.005) so that so few steps learn; batch 10 as PFLlib."
echo "   make results runs PFLlib's protocol on the full data."

trap 'sefl_stop $SEFL_SERVER_PID $SEFL_SIM_PID' EXIT
SEFL_SERVER_PID=
SEFL_SIM_PID=

# run POLICY: one federated run with --private POLICY into $OUT/POLICY.
run() {
    local t0
    t0=$(date +%s)
    echo "== --private $1: coordinator on 127.0.0.1, sefl-sim with $CLIENTS clients"
    sefl_run_federated "$OUT/$1" "$OUT/certs" 600 \
        "--rounds $ROUNDS --clients-per-round $CLIENTS --min-clients $CLIENTS --round-timeout 120
         --private $1 --lr $LR --batch 10 --epochs $EPOCHS --seed $SEED" \
        "--clients $CLIENTS --partition $PARTITION --seed $SEED --max-samples $SAMPLES" || exit 1
    grep -E "round [0-9]+ committed" "$OUT/$1/server.log" | tail -n 1 | sed 's/^/   last: /' || true
    echo "   $ROUNDS rounds in $(($(date +%s) - t0)) s"
}

run se
run none

echo "== sefl-eval: --private se against --private none (FedAvg) as baseline"
"$BIN/sefl-eval" --db "$OUT/se/server.db" --baseline "$OUT/none/server.db" --best \
    --csv "$OUT/eval.csv" --json "$OUT/eval.json" --svg "$OUT/eval.svg"
echo "== files: $OUT/eval.csv $OUT/eval.json $OUT/eval.svg, logs in $OUT/*/"
echo "demo wall time: $(($(date +%s) - START)) s"
