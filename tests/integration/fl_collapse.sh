#!/usr/bin/env bash
# fl_collapse: a collapsed model stops the run instead of stalling it.
# Real processes, a real attack: fedavg with the coordinator's norm guard
# off (--max-update-norm off), 6 clients (iid, 150 samples each) of which 2
# send their update scaled by 1000 (sefl-sim --attack scale:1000, a test
# tool), every client needed in every round (--min-clients 6). The poisoned
# round 1 or 2 is committed; from that model some client's training
# diverges at every attempt of the next round, which can then never gather
# its 6 updates. Before, the coordinator retried that round forever; now,
# after --max-diverged-attempts (default 3) such attempts in a row it
# stops: exit 3, one ERROR line naming the cause and the flags that
# prevent it, the database intact with every round up to the collapsed
# model and nothing after it. A resume on that file stops the same way
# (exit 3: a restart cannot help). The same attack with --clip 2 runs its
# 4 rounds and exits 0. --max-diverged-attempts rejects a bad value.
set -u
cd "$(dirname "$0")/../.."
. tests/lib.sh
sefl_need_fmnist || exit 0
sefl_fl_begin fl_collapse 6 15 '*/*.log'
trap 'sefl_stop "${SEFL_SIM_PID:-}"; sefl_fl_cleanup' EXIT

SERVER="--rounds 4 --clients-per-round 6 --min-clients 6 --over-select 1 --round-timeout 30
        --eval-every 0 --lr 0.05 --momentum 0.9 --seed 3 --max-update-norm off"
SIM="--clients 6 --partition iid --seed 5 --max-samples 150 --threads 2
     --attack scale:1000 --attackers 0.3"

# run DIR SERVER_ARGS: a coordinator on DIR/server.db and the sim against it;
# sets RC to the coordinator's exit status (124 when it ran past 60 s: a
# stall), then stops the sim (its clients would wait for a restart).
run() {
    local port
    mkdir -p "$1"
    # shellcheck disable=SC2086  # the argument strings are split on purpose
    "$BIN/sefl-server" --listen 127.0.0.1:0 --certs "$T/certs" --db "$1/server.db" $2 \
        >>"$1/server.log" 2>&1 &
    SEFL_SERVER_PID=$!
    port=$(sefl_wait_port "$1/server.log" "$SEFL_SERVER_PID" 30) || { RC=1; return; }
    # shellcheck disable=SC2086
    "$BIN/sefl-sim" --server "127.0.0.1:$port" --certs "$T/certs" --state "$1/clients" $SIM \
        >>"$1/sim.log" 2>&1 &
    SEFL_SIM_PID=$!
    sefl_wait_exit "$SEFL_SERVER_PID" 60
    RC=$?
    SEFL_SERVER_PID=
    sefl_stop "$SEFL_SIM_PID"
    SEFL_SIM_PID=
}

D=$T/fedavg
run "$D" "$SERVER --aggregate fedavg"
sefl_check "fedavg under scale:1000, guard off: the coordinator stops with exit 3 (was: a stall)" \
    test "$RC" = 3
line=$(grep " ERROR " "$D/server.log")
sefl_check "one ERROR line says the model collapsed after 3 attempts in a row" \
    sh -c "[ \"\$(grep -c ' ERROR ' '$D/server.log')\" = 1 ] &&
           grep -q 'stopping the run: 3 attempts in a row failed because training from the model of round [0-9]* diverged' '$D/server.log'"
sefl_check "... and names the flags that prevent it" \
    grep -q -- "--max-update-norm .*--clip NORM, --aggregate median" "$D/server.log"
collapsed=$(sed -n 's/.*from the model of round \([0-9]*\) diverged.*/\1/p' <<<"$line")
stopped=$(sed -n 's/.*ERROR round \([0-9]*\): stopping.*/\1/p' <<<"$line")
sefl_check "the stopped round ($stopped) follows the collapsed model's ($collapsed)" \
    test -n "$collapsed" -a "$stopped" = "$((collapsed + 1))"
sefl_check "server.db holds every round up to $collapsed and nothing after, intact" \
    test "$(sefl_sql "$D/server.db" "SELECT max(round) FROM rounds")/$(sefl_sql "$D/server.db" \
          "PRAGMA integrity_check")" = "$collapsed/ok"
sefl_check "the stopped round was tried exactly 3 times" \
    test "$(grep -c "round $stopped abandoned: .* diverged or not finite" "$D/server.log")" = 3

# A restart on the same file resumes from the same model: the same stop.
: >"$D/server.log"
run "$D" "$SERVER --aggregate fedavg"
sefl_check "a resume on the collapsed file stops the same way (exit 3), rounds unchanged" \
    test "$RC/$(sefl_sql "$D/server.db" "SELECT max(round) FROM rounds")" = "3/$collapsed"

run "$T/clip" "$SERVER --aggregate fedavg --clip 2"
sefl_check "the same attack with --clip 2: 4 rounds, exit 0" \
    test "$RC/$(sefl_sql "$T/clip/server.db" "SELECT max(round) FROM rounds")" = "0/4"

"$BIN/sefl-server" --certs "$T/certs" --db "$T/x.db" --max-diverged-attempts -1 >"$T/usage.log" 2>&1
sefl_check "--max-diverged-attempts -1: usage error (exit 2, one line, no file)" \
    test "$?/$(wc -l <"$T/usage.log")/$(test -e "$T/x.db" && echo db)" = "2/1/"
sefl_summary
