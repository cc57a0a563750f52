#!/usr/bin/env bash
# fl_robust: aggregation rules against poisoned updates, with real processes:
# a sefl-server per rule and a sefl-sim of 10 clients (iid, 150 samples
# each, 4 rounds of 1 local epoch) of which 2 send their update scaled by
# 1000 (sefl-sim --attack scale:1000 --attackers 0.2, a test tool).
# With --aggregate fedavg the model is ruined: its final evaluation is near
# chance (0.1), or there is none at all when the clients' training from the
# collapsed model diverges, so that a round cannot gather its updates: the
# coordinator then stops the run (exit 3, --max-diverged-attempts; see
# fl_collapse.sh) instead of retrying forever -- which counts as accuracy 0.
# Either way the fedavg run must end by itself. median, trimmed:0.2, krum:2 and
# fedavg with --clip 2 keep learning: each must beat fedavg by a clear gap
# (GAP, 0.1 in accuracy: at least twice chance), not reach a fixed figure.
# The coordinator's own norm guard (--max-update-norm, 100x the median by
# default) would refuse these updates before any rule sees them: it is
# turned off here, so that the rules alone are measured.
# Also: a `nan` attacker's updates are refused by the coordinator's checks
# and the rounds commit without them; sefl-server refuses bad --aggregate
# settings with one line and exit 2, and a resume with another rule.
set -u
cd "$(dirname "$0")/../.."
. tests/lib.sh
sefl_need_fmnist || exit 0
sefl_fl_begin fl_robust 10 15 '*/*.log'
# A run that failed leaves its sim to this trap as well.
trap 'sefl_stop "${SEFL_SIM_PID:-}"; sefl_fl_cleanup' EXIT

GAP=0.1
SERVER="--rounds 4 --clients-per-round 10 --min-clients 10 --over-select 1 --round-timeout 30
        --eval-every 0 --lr 0.05 --momentum 0.9 --seed 3 --max-update-norm off"
SIM="--clients 10 --partition iid --seed 5 --max-samples 150 --threads 2
     --attack scale:1000 --attackers 0.2"

declare -A ACC
for rule in fedavg median trimmed:0.2 krum:2 clip; do
    dir=$T/${rule/:/}
    args="--aggregate $rule"
    [ "$rule" = clip ] && args="--aggregate fedavg --clip 2"
    if [ "$rule" = fedavg ]; then
        # Its collapse may stop the run (exit 3): not a failure, a stall is.
        end=done
        sefl_run_federated "$dir" "$T/certs" 60 "$SERVER $args" "$SIM" >/dev/null || end=failed
        [ $end = failed ] && grep -q "stopping the run: 3 attempts in a row" "$dir/server.log" &&
            end="stopped on a collapsed model, counts as accuracy 0"
        sefl_stop "${SEFL_SERVER_PID:-}" "${SEFL_SIM_PID:-}"
        sefl_check "fedavg: the run ends by itself ($end)" test "$end" != failed
    else
        sefl_check "$rule: server and sim exit 0" \
            sefl_run_federated "$dir" "$T/certs" 120 "$SERVER $args" "$SIM"
        sefl_stop "${SEFL_SERVER_PID:-}" "${SEFL_SIM_PID:-}"
    fi
    "$BIN/sefl-eval" --db "$dir/server.db" --round 4 >"$dir/eval.txt" 2>&1
    ACC[$rule]=$(sefl_value "$dir/eval.txt" weighted_accuracy)
    [ "$rule" = fedavg ] && [ -z "${ACC[$rule]}" ] && ACC[$rule]=0
    echo "   $rule: weighted accuracy ${ACC[$rule]:-none}"
done
gap() { awk -v a="$1" -v b="$2" -v g="$GAP" 'BEGIN { exit !(a != "" && b != "" && a - b >= g) }'; }
for rule in median trimmed:0.2 krum:2 clip; do
    sefl_check "$rule (${ACC[$rule]:-none}) beats fedavg (${ACC[fedavg]:-none}) by >= $GAP" \
        gap "${ACC[$rule]:-}" "${ACC[fedavg]:-}"
done
sefl_check "the sim says the attack is a test tool" \
    grep -q "TEST TOOL: clients 0..1 of 10 attack" "$T/median/sim.log"
sefl_check "the rule is recorded in server.db" \
    test "$(sefl_sql "$T/krum2/server.db" "SELECT value FROM settings WHERE name='aggregate'")" = krum:2
sefl_check "--clip: the attackers' updates were clipped" \
    grep -qE "round 1: clipped [2-9] of 10 updates to norm 2" "$T/clip/server.log"

# A resume with another rule is refused, the file untouched.
before=$(sefl_sql "$T/median/server.db" "SELECT max(round) FROM rounds")
# shellcheck disable=SC2086  # the argument string is split on purpose
"$BIN/sefl-server" --listen 127.0.0.1:0 --certs "$T/certs" --db "$T/median/server.db" \
    $SERVER --rounds 5 --aggregate fedavg >"$T/resume.log" 2>&1
rc=$?
sefl_check "a resume with --aggregate fedavg on a median file refuses saying why" \
    grep -q "made with --aggregate median, this one has --aggregate fedavg" "$T/resume.log"
sefl_check "... exit status 2 (a run setting), rounds unchanged" \
    test "$rc:$(sefl_sql "$T/median/server.db" "SELECT max(round) FROM rounds")" = "2:$before"

# A NaN attacker: refused by the checks, the rounds commit with the others.
# Round 1 starts once 3 of the 4 clients are in, so the attacker may join
# too late for it; it is in by round 2 (selected unless round 1 already
# refused it and put it in the penalty box). Either way one of the two
# rounds refuses it and both commit with the 3 honest clients.
sefl_check "nan attack: server and sim exit 0" \
    sefl_run_federated "$T/nan" "$T/certs" 60 \
    "--rounds 2 --clients-per-round 4 --min-clients 3 --over-select 1 --round-timeout 30 --seed 3" \
    "--clients 4 --partition iid --seed 5 --max-samples 20 --threads 2 --attack nan --attackers 0.25"
sefl_check "nan attack: client-0000's update rejected as not finite" \
    grep -qE "client-0000 .*not finite" "$T/nan/server.log"
sefl_check "nan attack: rounds 1 and 2 committed with the 3 honest clients" \
    test "$(grep -cE "round [12] committed: clients 3," "$T/nan/server.log")" = 2

# Bad settings: one line, exit 2.
usage() {
    "$BIN/sefl-server" --certs "$T/certs" --db "$T/x.db" "$@" >"$T/usage.log" 2>&1
    [ $? = 2 ] && [ "$(wc -l <"$T/usage.log")" = 1 ] && [ ! -e "$T/x.db" ]
}
for bad in "--aggregate trimmed:0.5" "--aggregate krum:x" "--aggregate mean" "--clip -1" \
           "--server-opt sgdm" "--dp-noise 1" "--clip 1 --dp-clip 1" "--beta1 2"; do
    # shellcheck disable=SC2086
    sefl_check "sefl-server $bad: usage error" usage $bad
done
"$BIN/sefl-server" --listen 127.0.0.1:0 --certs "$T/certs" --db "$T/y.db" --clients-per-round 5 \
    --aggregate krum:2 >"$T/krum.log" 2>&1
sefl_check "krum:2 with --clients-per-round 5 is refused at start (K >= 2F+3)" \
    grep -q "K >= 2F+3" "$T/krum.log"
"$BIN/sefl-server" --listen 127.0.0.1:0 --certs "$T/certs" --db "$T/z.db" --clients-per-round 200 \
    --aggregate median --max-agg-memory 100 >"$T/mem.log" 2>&1
sefl_check "median at K=200 over --max-agg-memory 100 (MB) is refused at start" \
    grep -q "over --max-agg-memory" "$T/mem.log"
"$BIN/sefl-sim" --server 127.0.0.1:1 --certs "$T/certs" --clients 2 --partition iid --seed 1 \
    --state "$T/s" --attackers 0.5 >"$T/simusage.log" 2>&1
sefl_check "sefl-sim --attackers without --attack: usage error" \
    grep -q "attackers needs --attack" "$T/simusage.log"
sefl_summary
