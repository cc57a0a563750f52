#!/usr/bin/env bash
# arch_results: one results row per architecture variant (issue 9): a short
# federated run of each on the same clients, rounds and samples, the gates
# private (--private se), and the model's cost. Not part of make check.
#
#   bash tests/bench/arch_results.sh          (make arch-results)
#
# 20 sefl-sim clients on a dir:0.1 partition of Fashion-MNIST (seed 1), each
# at most MAX_SAMPLES train and test samples, all clients every round, lr
# 0.005, batch 10, 1 local epoch (results.sh's protocol), ROUNDS rounds with
# an evaluation after the last. Per variant: sefl-eval's weighted accuracy,
# std and min over clients at the last round, the parameters in all and
# kept private per client, MACs per sample with and without the gates; and
# sefl-bench train's one-thread training samples/s (6000 samples, batch 10).
#
# Environment: ROUNDS (15), MAX_SAMPLES (500), CLIENTS (20), VARIANTS (the
# five below, each "ARCH[/PLACEMENT/GATE]"), OUT (arch-results-out).
# Writes OUT/VARIANT/ (server.db, logs, eval.txt, bench.txt) and the
# Markdown table OUT/table.md, which it also prints.
set -euo pipefail
cd "$(dirname "$0")/../.."
START=$(date +%s)
. tests/lib.sh
sefl_need_fmnist >/dev/null || { echo "arch_results: Fashion-MNIST not installed"; exit 1; }

CLIENTS=${CLIENTS:-20}
ROUNDS=${ROUNDS:-15}
MAX_SAMPLES=${MAX_SAMPLES:-500}
SEED=1
PART=dir:0.1
OUT=${OUT:-arch-results-out}
VARIANTS=${VARIANTS:-"cnn-se mbv2-se/after-depthwise/se mbv2-se/after-pointwise/se mbv2-se/after-depthwise/eca mbv2-se/after-pointwise/eca"}
HYPER="--lr 0.005 --batch 10 --epochs 1"

make -s -j2 "$BIN/sefl-certs" "$BIN/sefl-server" "$BIN/sefl-sim" "$BIN/sefl-eval" "$BIN/sefl-bench"
rm -rf "$OUT"
mkdir -p "$OUT"
"$BIN/sefl-certs" init --dir "$OUT/certs" --clients "$CLIENTS" --server-name 127.0.0.1 \
    >"$OUT/certs.log" 2>&1 || { cat "$OUT/certs.log"; exit 1; }
trap 'sefl_stop $SEFL_SERVER_PID $SEFL_SIM_PID' EXIT
SEFL_SERVER_PID=
SEFL_SIM_PID=

# model_flags VARIANT: the model flags every program of the run gets.
model_flags() {
    local arch place gate
    IFS=/ read -r arch place gate <<<"$1"
    echo "--arch $arch${place:+ --se-placement $place}${gate:+ --gate $gate}"
}

pct() { awk -v v="$(sefl_value "$1" "$2")" 'BEGIN { printf "%.2f", 100 * v }'; }

# The table's head first, each row as its run ends, so a cut-short run
# leaves the rows it finished.
{
    echo "### Architectures: Fashion-MNIST, $CLIENTS clients, $PART, private gates (--private se)"
    echo
    echo "All clients every round, at most $MAX_SAMPLES train and $MAX_SAMPLES test samples per" \
         "client, lr 0.005, batch 10, 1 local epoch, **$ROUNDS rounds** (a short run), seed $SEED." \
         "Sample-weighted accuracy (%) over clients after the last round, std and min over clients;" \
         "parameters in all and private per client; multiply-accumulates per sample with and" \
         "without the gates; one-thread training samples/s (\`sefl-bench train\`, 6000 samples," \
         "batch 10) by the wall clock and per CPU-second. Made by" \
         "\`bash tests/bench/arch_results.sh\` on a $(nproc)-core machine shared with other work."
    echo
    echo "| model flags | acc | std | min | params | private | MACs/sample | MACs without gates | train samples/s | per CPU-s |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
} >"$OUT/table.md"

echo "arch_results: $CLIENTS clients, $PART, $ROUNDS rounds, max-samples $MAX_SAMPLES," \
     "--private se, $(nproc) cores; files in $OUT"
for v in $VARIANTS; do
    dir=$OUT/${v//\//_}
    flags=$(model_flags "$v")
    t0=$(date +%s)
    echo "== $v ($flags)"
    sefl_run_federated "$dir" "$OUT/certs" $((ROUNDS * 600 + 120)) \
        "--rounds $ROUNDS --clients-per-round $CLIENTS --min-clients $CLIENTS --round-timeout 600
         --eval-every $ROUNDS --private se --seed $SEED $HYPER $flags" \
        "--clients $CLIENTS --partition $PART --seed $SEED --max-samples $MAX_SAMPLES $flags" ||
        exit 1
    "$BIN/sefl-eval" --db "$dir/server.db" >"$dir/eval.txt"
    # shellcheck disable=SC2086  # flags is split on purpose
    "$BIN/sefl-bench" train --batch 10 --samples 6000 $flags >"$dir/bench.txt" 2>"$dir/bench.log"
    acc=$(pct "$dir/eval.txt" weighted_accuracy)
    std=$(pct "$dir/eval.txt" std_accuracy)
    min=$(pct "$dir/eval.txt" min_accuracy)
    echo "   weighted accuracy $acc %, std $std, min $min, $(($(date +%s) - t0)) s"
    echo "| \`$flags\` | $acc | $std | $min | $(sefl_value "$dir/eval.txt" params_total) |\
 $(sefl_value "$dir/eval.txt" params_private) | $(sefl_value "$dir/eval.txt" macs_per_sample) |\
 $(sefl_value "$dir/eval.txt" macs_per_sample_without_se) | $(sefl_value "$dir/bench.txt" train_samples_per_s) |\
 $(sefl_value "$dir/bench.txt" train_samples_per_cpu_s) |" >>"$OUT/table.md"
done

echo
cat "$OUT/table.md"
echo
echo "arch_results: table in $OUT/table.md; wall time $(($(date +%s) - START)) s"
