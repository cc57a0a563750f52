#!/usr/bin/env bash
# fl_sopt_resume: a server optimizer's state survives kill -9. Two runs of
# 3 rounds with --server-opt adam (state m and v beside each model) and 2
# simulated clients with --private none (a client's training is then a
# function of the global model and the task seed only): one uninterrupted,
# one whose coordinator is killed with -9 while round 3 is in progress and
# restarted on the same server.db and port. The model and the optimizer
# state of round 3 must be the same bytes in both files. Two clients, as
# the sum of two updates does not depend on their arrival order.
# Then DP-FedAvg (z 0.001: two clients cannot hide in more noise without
# the model diverging; the epsilon is accordingly huge): a 3-round run and
# a run stopped after 2 rounds and resumed for the third store the same
# epsilon for round 3 (the accountant is rebuilt from the privacy rows),
# epsilon grows each round, and sefl-eval prints the stored value.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
sefl_need_fmnist || exit 0
sefl_fl_begin fl_sopt_resume 2 12 '*/*.log'
# Bit-equal runs need one gemm backend in every process: the default (auto)
# times both at first use, and two processes may choose differently where
# they are close (common/nn/gemm.h).
export SEFL_GEMM=openblas
# A run that failed leaves its sim to this trap as well.
trap 'sefl_stop "${SEFL_SIM_PID:-}"; sefl_fl_cleanup' EXIT

SERVER="--rounds 3 --clients-per-round 2 --min-clients 2 --over-select 1 --round-timeout 60
        --eval-every 0 --private none --lr 0.05 --seed 4 --heartbeat 1
        --server-opt adam --server-lr 0.01 --beta1 0.9 --beta2 0.99 --tau 0.001"
SIM="--clients 2 --partition iid --seed 6 --max-samples 200 --threads 2
     --backoff-min-ms 100 --backoff-max-ms 500"

sefl_check "uninterrupted run: server and sim exit 0" \
    sefl_run_federated "$T/a" "$T/certs" 90 "$SERVER" "$SIM"

mkdir -p "$T/b"
# shellcheck disable=SC2086  # the argument strings are split on purpose
sefl_start_server "$T/b/first.log" 127.0.0.1:0 --certs "$T/certs" --db "$T/b/server.db" $SERVER ||
    exit 1
port=$SEFL_PORT
first=$SEFL_SERVER_PID
# shellcheck disable=SC2086
"$BIN/sefl-sim" --server "127.0.0.1:$port" --certs "$T/certs" --state "$T/b/clients" $SIM \
    >"$T/b/sim.log" 2>&1 &
SEFL_CLIENT_PIDS+=($!)
sefl_wait_log "$T/b/first.log" 'INFO round 3 started' 60
kill -9 "$first"
wait "$first" 2>/dev/null
sefl_check "killed with round 3 in progress (rounds 1, 2 committed)" \
    [ "$(sefl_sql "$T/b/server.db" "SELECT group_concat(round) FROM rounds")" = "1,2" ]
# shellcheck disable=SC2086
sefl_start_server "$T/b/second.log" "127.0.0.1:$port" --certs "$T/certs" --db "$T/b/server.db" \
    $SERVER
sefl_check "the restarted coordinator finishes round 3 and exits 0" \
    sefl_wait_exit "$SEFL_SERVER_PID" 90
sefl_check "the sim exits 0" sefl_wait_exit "${SEFL_CLIENT_PIDS[0]}" 30

sums() {
    sefl_sql "$1" "SELECT (SELECT checksum FROM models WHERE round = $2) || '/' ||
                          (SELECT checksum FROM opt_state WHERE round = $2)"
}
a=$(sums "$T/a/server.db" 3)
b=$(sums "$T/b/server.db" 3)
sefl_check "round 3's model and adam state are the same bytes ($a, $b)" \
    [ "${#a}" = 33 -a "$a" = "$b" ]
a2=$(sums "$T/a/server.db" 2)
sefl_check "the adam state moved between rounds 2 and 3 ($a2)" [ "${a2#*/}" != "${a#*/}" ]
sefl_check "the setting is recorded" \
    [ "$(sefl_sql "$T/b/server.db" "SELECT value FROM settings WHERE name = 'server-opt'")" = \
      "adam lr=0.01 beta1=0.9 beta2=0.99 tau=0.001" ]
# shellcheck disable=SC2086
"$BIN/sefl-server" --listen 127.0.0.1:0 --certs "$T/certs" --db "$T/b/server.db" \
    ${SERVER/adam/yogi} --rounds 4 >"$T/b/third.log" 2>&1
sefl_check "a resume with another server optimizer is refused" \
    grep -q "made with --server-opt adam .* this one has --server-opt yogi" "$T/b/third.log"
DP="--clients-per-round 2 --min-clients 2 --over-select 1 --round-timeout 60 --eval-every 0
    --private none --lr 0.05 --seed 4 --dp-clip 1 --dp-noise 0.001"
sefl_check "DP run of 3 rounds exits 0" \
    sefl_run_federated "$T/dpa" "$T/certs" 90 "--rounds 3 $DP" "$SIM"
sefl_check "DP run of 2 rounds exits 0" \
    sefl_run_federated "$T/dpb" "$T/certs" 90 "--rounds 2 $DP" "$SIM"
sefl_check "... resumed for round 3, exits 0" \
    sefl_run_federated "$T/dpb" "$T/certs" 90 "--rounds 3 $DP" "$SIM"
eps() { sefl_sql "$1" "SELECT group_concat(epsilon, ' ') FROM privacy ORDER BY round"; }
ea=$(eps "$T/dpa/server.db")
eb=$(eps "$T/dpb/server.db")
sefl_check "the same epsilon per round with and without the resume ($ea)" \
    [ -n "$ea" -a "$ea" = "$eb" ]
sefl_check "epsilon grows each round" \
    awk -v e="$ea" 'BEGIN { n = split(e, v, " "); exit !(n == 3 && v[1] < v[2] && v[2] < v[3]) }'
"$BIN/sefl-eval" --db "$T/dpb/server.db" >"$T/dpb/eval.txt" 2>&1
sefl_check "sefl-eval prints the stored epsilon of round 3" \
    awk -v e="${ea##* }" '$1 == "dp_epsilon" { ok = ($2 - e < 1e-4 && e - $2 < 1e-4) } END { exit !ok }' \
    "$T/dpb/eval.txt"
sefl_summary
