#!/usr/bin/env bash
# make robust: the README's robustness table (long; not part of make check).
#
# 20 clients of a dir:0.1 partition of the real Fashion-MNIST, --private se,
# all 20 selected every round, lr 0.05, momentum 0.9, batch 10, 1 local
# epoch (few rounds must learn something), at most
# MAX_SAMPLES (default 150) train and test samples per client, ROUNDS
# (default 30) rounds for every cell. Sized for about 30 minutes on 2 idle
# cores: a 10-round, 100-sample cell trained its 20,000 samples in 13.0 s
# of CPU (sefl-sim's "training CPU"), so 30 x 150 is about 59 CPU-s, 30 s
# on 2 cores, plus about 1 s per round of coordinator and TLS work: about
# 60 s a run, 27 runs (24 cells, 3 DP) and the memory figures. Rows: aggregation rules (fedavg,
# median, trimmed:0.2, krum:4, fedavg + --clip CLIP, fedavg + --server-opt
# adam); columns: no attack, then 20% of the clients (4) attacking with
# signflip, scale:100 and gauss:SIGMA (sefl-sim --attack, a test tool).
# The coordinator's own norm guard (--max-update-norm) is off, so that the
# rules alone are measured (it would refuse the largest attacks itself).
# Cell: weighted accuracy over the honest clients only, as Byzantine-
# robustness papers measure it: sefl-eval --attackers 0.2 --clients 20
# leaves out the 4 attackers (client ids 0..3, as sefl-sim --attackers picks
# them) in every column, "no attack" included, so that the columns compare
# the same 16 clients; at the last evaluated round (every EVERY = 5 rounds
# and the last). A run whose model collapses (fedavg under scale:100: every
# attempt at the next round has clients whose training diverges) is stopped
# by the coordinator itself (exit 3, --max-diverged-attempts); its cell shows
# its last evaluation, marked "collapsed at rN". A run still going after CAP
# seconds (default 1800; none should) is stopped and marked "cut at rN".
#
# Then DP-FedAvg (fedavg, --dp-clip CLIP, no attack) at three noise
# multipliers: accuracy and the epsilon at delta 1e-5 the coordinator stored
# for the last round; and the coordinator-side memory of the strategies
# (sefl-aggbench: peak RSS feeding K simulated updates of the real shared
# set's size to fedavg and median, K = 20 and 200).
#
# Writes robust-out/ (each run's server.db and logs) and robust-out/table.md,
# which it also prints. RULES, ATTACKS, DP_NOISES override the lists (" " for
# none), OUT the directory.
set -uo pipefail
cd "$(dirname "$0")/../.."
START=$(date +%s)
. tests/lib.sh

CLIENTS=20
SEED=1
ROUNDS=${ROUNDS:-30}
MAX_SAMPLES=${MAX_SAMPLES:-150}
CAP=${CAP:-1800}
FRACTION=0.2
CLIP=${CLIP:-2}
SIGMA=${SIGMA:-0.1}
EVERY=${EVERY:-5}
OUT=${OUT:-robust-out}
RULES=${RULES:-"fedavg median trimmed:0.2 krum:4 clip adam"}
ATTACKS=${ATTACKS:-"none signflip scale:100 gauss:$SIGMA"}
DP_NOISES=${DP_NOISES:-"0.01 0.1 1"}
HYPER="--lr 0.05 --momentum 0.9 --batch 10 --epochs 1"

# SKIP_BUILD=1 runs the binaries already in $BIN as they are (e.g. a second
# process finishing some rows with the same binaries as a first).
[ -n "${SKIP_BUILD:-}" ] ||
    make -s -j2 "$BIN/sefl-certs" "$BIN/sefl-server" "$BIN/sefl-sim" "$BIN/sefl-eval" "$BIN/sefl-aggbench"
rm -rf "$OUT"
mkdir -p "$OUT"
"$BIN/sefl-certs" init --dir "$OUT/certs" --clients "$CLIENTS" --server-name 127.0.0.1 \
    >"$OUT/certs.log" 2>&1 || { cat "$OUT/certs.log"; exit 1; }
trap 'sefl_stop ${SEFL_SERVER_PID:-} ${SEFL_SIM_PID:-}' EXIT

# rule_args RULE: the coordinator's flags for a row.
rule_args() {
    case $1 in
    clip) echo "--aggregate fedavg --clip $CLIP" ;;
    adam) echo "--aggregate fedavg --server-opt adam --server-lr 0.01 --tau 0.001" ;;
    dp:*) echo "--aggregate fedavg --dp-clip $CLIP --dp-noise ${1#dp:}" ;;
    *) echo "--aggregate $1" ;;
    esac
}

# run DIR SERVER_ARGS SIM_ARGS: one federated run; its status is the
# coordinator's (3: it stopped on a collapsed model), 124 when it was cut
# after CAP seconds. The sim is stopped once the coordinator has exited (its
# clients wait for a restart after a stop).
run() {
    local dir=$1 port rc
    mkdir -p "$dir"
    # shellcheck disable=SC2086  # the argument strings are split on purpose
    "$BIN/sefl-server" --listen 127.0.0.1:0 --certs "$OUT/certs" --db "$dir/server.db" $2 \
        >"$dir/server.log" 2>&1 &
    SEFL_SERVER_PID=$!
    port=$(sefl_wait_port "$dir/server.log" "$SEFL_SERVER_PID" 30) || return 1
    # shellcheck disable=SC2086
    "$BIN/sefl-sim" --server "127.0.0.1:$port" --certs "$OUT/certs" --state "$dir/clients" $3 \
        >"$dir/sim.log" 2>&1 &
    SEFL_SIM_PID=$!
    sefl_wait_exit "$SEFL_SERVER_PID" "$CAP"
    rc=$?
    if [ $rc = 0 ]; then sefl_wait_exit "$SEFL_SIM_PID" 60 || rc=1; fi
    sefl_stop "$SEFL_SIM_PID"
    return $rc
}

# cell DIR RULE ATTACK: one run; prints the cell's text.
cell() {
    local dir=$1 rule=$2 attack=$3 sim_attack="" acc last note="" rc
    [ "$attack" != none ] && sim_attack="--attack $attack --attackers $FRACTION"
    run "$dir" \
        "--rounds $ROUNDS --clients-per-round $CLIENTS --min-clients $CLIENTS --over-select 1
         --round-timeout 60 --eval-every $EVERY --private se --seed $SEED $HYPER
         --max-update-norm off $(rule_args "$rule")" \
        "--clients $CLIENTS --partition dir:0.1 --seed $SEED --max-samples $MAX_SAMPLES
         $sim_attack"
    rc=$?
    if [ $rc != 0 ]; then
        last=$(sqlite3 "$dir/server.db" "SELECT coalesce(max(round), 0) FROM rounds" 2>/dev/null)
        case $rc in
        3) note=" (collapsed at r$((${last:-0} + 1)))" ;;
        124) note=" (cut at r$((${last:-0} + 1)) after $CAP s)" ;;
        *) note=" (failed at r$((${last:-0} + 1)), exit $rc)" ;;
        esac
    fi
    "$BIN/sefl-eval" --db "$dir/server.db" --attackers $FRACTION --clients $CLIENTS \
        >"$dir/eval.txt" 2>&1
    acc=$(sefl_value "$dir/eval.txt" weighted_accuracy)
    if [ -n "$acc" ]; then
        awk -v v="$acc" -v n="$note" 'BEGIN { printf "%.2f%s", 100 * v, n }'
    else
        echo "no evaluation$note"
    fi
}

declare -A CELL
for rule in $RULES; do
    for attack in $ATTACKS; do
        dir=$OUT/${rule/:/}-${attack/:/}
        t0=$(date +%s)
        CELL[$rule/$attack]=$(cell "$dir" "$rule" "$attack")
        echo "robust: $rule / $attack: ${CELL[$rule/$attack]} ($(($(date +%s) - t0)) s)"
    done
done

declare -A DPACC DPEPS
for z in $DP_NOISES; do
    dir=$OUT/dp$z
    t0=$(date +%s)
    DPACC[$z]=$(cell "$dir" "dp:$z" none)
    DPEPS[$z]=$(sqlite3 "$dir/server.db" \
        "SELECT printf('%.3g', epsilon) FROM privacy ORDER BY round DESC LIMIT 1" 2>/dev/null)
    echo "robust: dp noise $z: ${DPACC[$z]}, epsilon ${DPEPS[$z]:-?} ($(($(date +%s) - t0)) s)"
done

declare -A RSS
for rule in fedavg median; do
    for k in 20 200; do
        "$BIN/sefl-aggbench" --aggregate "$rule" --updates "$k" >"$OUT/mem-$rule-$k.txt" 2>&1
        RSS[$rule/$k]=$(awk '$1 == "peak_rss_mb" { print $2 }' "$OUT/mem-$rule-$k.txt")
        echo "robust: memory $rule K=$k: ${RSS[$rule/$k]:-?} MB"
    done
done

declare -A LABEL=([fedavg]="fedavg" [median]="median" [trimmed:0.2]="trimmed:0.2"
                  [krum:4]="krum:4" [clip]="fedavg + --clip $CLIP"
                  [adam]="fedavg + --server-opt adam (lr 0.01)")
{
    echo "### Aggregation rules under attack: weighted accuracy of the honest clients (%)"
    echo
    echo "Fashion-MNIST, $CLIENTS clients, dir:0.1, --private se, all clients every round," \
         "lr 0.05, momentum 0.9, batch 10, 1 local epoch, --max-samples $MAX_SAMPLES, **$ROUNDS rounds** in every" \
         "cell, seed $SEED, the coordinator's norm guard off; attacks by the first 20% of the clients" \
         "(client ids 0..3). **Every cell, no attack included, is over the same 16 honest clients**" \
         "(sefl-eval --attackers $FRACTION --clients $CLIENTS), at the last evaluated round" \
         "(every $EVERY rounds and the last). A cell marked (collapsed at rN) is a run the" \
         "coordinator stopped at round N because its model had collapsed (exit 3," \
         "--max-diverged-attempts): its figure is the last evaluation before that." \
         "Made by \`ROUNDS=$ROUNDS MAX_SAMPLES=$MAX_SAMPLES make robust\`."
    echo
    printf '| rule |'
    for a in $ATTACKS; do [ "$a" = none ] && printf ' no attack |' || printf ' 20%% %s |' "$a"; done
    echo
    printf '|---|'
    for a in $ATTACKS; do printf -- '---|'; done
    echo
    for rule in $RULES; do
        printf '| %s |' "${LABEL[$rule]:-$rule}"
        for a in $ATTACKS; do printf ' %s |' "${CELL[$rule/$a]}"; done
        echo
    done
    echo
    echo "### DP-FedAvg (--dp-clip $CLIP, no attack, same runs otherwise; accuracy over the same 16 clients)"
    echo
    echo "| noise multiplier z | accuracy (%) | epsilon at delta 1e-5 after round $ROUNDS |"
    echo "|---|---|---|"
    for z in $DP_NOISES; do echo "| $z | ${DPACC[$z]} | ${DPEPS[$z]:-?} |"; done
    echo
    echo "### Coordinator memory of the strategy (sefl-aggbench, peak RSS, MB)"
    echo
    echo "| rule | K = 20 | K = 200 |"
    echo "|---|---|---|"
    for rule in fedavg median; do echo "| $rule | ${RSS[$rule/20]} | ${RSS[$rule/200]} |"; done
} >"$OUT/table.md"
echo
cat "$OUT/table.md"
echo
echo "robust: table in $OUT/table.md; wall time $(($(date +%s) - START)) s"
