#!/usr/bin/env bash
# fl_refused: a client refused in a round waits that round out, and what
# the coordinator knows survives a restart. Real processes: sefl-server
# with its norm guard (default --max-update-norm 100x) and --http, every
# client needed (--clients-per-round 4 --min-clients 4), and a sefl-sim of
# clients 0..3 of a 5-client iid partition where client-0000 sends its
# update scaled by 1000 (--attack scale:1000, a test tool).
#   1. Round 1's first attempt refuses client-0000's update and penalises
#      it. Before, the retry selected it again (the penalised fill up when
#      the others are too few) and the round retried forever. Now the
#      coordinator starts no second attempt: it logs once that round 1
#      waits (3 of 4 clients may take part), who was refused and why, and
#      what to do; /status and /metrics say the same. A second sefl-sim
#      with client-0004 connects: round 1 commits at attempt 2 without
#      client-0000, then round 2 (client-0000 still boxed).
#   2. The penalty box is in server.db: a coordinator restarted on the
#      file says client-0000 is boxed until round 3; with clients 0..3
#      alone it fills round 3 up with the boxed client (which only a
#      restored box explains), which is refused again: round 3 waits,
#      then commits once client-0004 is back.
#   3. The restarted coordinator's /metrics and /status report the last
#      evaluation stored in server.db (round 2) before any new one, not
#      NaN.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
sefl_need_fmnist || exit 0
if ! command -v curl >/dev/null; then
    echo "skipped: curl not installed (make deps installs it)"
    echo "0 passed, 0 failed"
    exit 0
fi
sefl_fl_begin fl_refused 5 30 '*.log'
trap 'sefl_stop "${SIM_A:-}" "${SIM_B:-}"; sefl_fl_cleanup' EXIT

SERVER=(--certs "$T/certs" --db "$T/server.db" --clients-per-round 4 --min-clients 4
        --over-select 1 --round-timeout 30 --eval-every 1 --lr 0.05 --seed 3 --heartbeat 5
        --http 127.0.0.1:0)
SIM=(--certs "$T/certs" --clients 5 --partition iid --seed 5 --max-samples 150 --threads 2
     --backoff-min-ms 100 --backoff-max-ms 500)

# start LOG ROUNDS: a coordinator; sets SEFL_PORT and HTTP (its monitoring
# address).
start() {
    sefl_start_server "$1" 127.0.0.1:0 "${SERVER[@]}" --rounds "$2" || return 1
    sefl_wait_log "$1" 'http: serving' 10 || return 1
    HTTP=127.0.0.1:$(sed -n 's/.*http: serving .* on port \([0-9]*\).*/\1/p' "$1" | head -n 1)
}
# sims: clients 0..3 (client-0000 the attacker) and, with "all", client 4.
sim_a() {
    "$BIN/sefl-sim" --server "127.0.0.1:$SEFL_PORT" "${SIM[@]}" --state "$T/a" --holdout 1 \
        --attack scale:1000 --attackers 0.2 >>"$T/sim_a.log" 2>&1 &
    SIM_A=$!
}
sim_b() {
    "$BIN/sefl-sim" --server "127.0.0.1:$SEFL_PORT" "${SIM[@]}" --state "$T/b" --shard 4/5 \
        >>"$T/sim_b.log" 2>&1 &
    SIM_B=$!
}
metric() { curl -s --max-time 5 "http://$HTTP/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
status() {
    curl -s --max-time 5 "http://$HTTP/status" |
        python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

# ---- 1. the refused client waits the round out -----------------------------
start "$T/server.log" 2 || exit 1
sim_a
sefl_check "round 1: client-0000's update refused by the norm guard" \
    sefl_wait_log "$T/server.log" 'candidate model refused, not committed: update from client-0000' 40
sefl_check "round 1 waits instead of retrying: one line with the counts, who and what to do" \
    sefl_wait_log "$T/server.log" 'WARN round 1 waits: 3 of the 4 connected clients may take part, --min-clients 4 needed; refused in this round: client-0000 \(update norm [0-9.e+]+ over the bound [0-9.e+]+ \(--max-update-norm 100x\) in round 1\); connect more clients or restart with a lower --min-clients and --allow-change$' 10
sefl_check "the penalty line says client-0000 is not selected again in round 1" \
    grep -q 'client client-0000 penalised for 3 rounds (until round 3) and not selected again in round 1: update norm' "$T/server.log"
sleep 2
sefl_check "/status: waiting, reason refused, 3 eligible of 4 needed, client-0000 named" \
    test "$(status 'd["waiting"]["reason"], d["waiting"]["round"], d["waiting"]["eligible"], d["waiting"]["needed"], d["waiting"]["refused"][0]["client"], d["phase"]')" = \
         "('refused', 1, 3, 4, 'client-0000', 'idle')"
sefl_check "/metrics: sefl_round_waiting{reason=\"refused\"} 1, 3 eligible, 1 refused in the round" \
    test "$(metric 'sefl_round_waiting{reason="refused"}')/$(metric sefl_clients_eligible)/$(metric sefl_clients_refused_in_round)" = 1/3/1
sefl_check "no second attempt was started: round 1 started once, the wait logged once" \
    test "$(grep -c 'round 1 started' "$T/server.log")/$(grep -c 'round 1 waits' "$T/server.log")" = 1/1
sefl_check "the penalty is in server.db (until round 3, refused in round 1)" \
    test "$(sefl_sql "$T/server.db" "SELECT until_round || '/' || refused_round FROM penalties WHERE client = 'client-0000'")" = 3/1

sim_b
sefl_wait_exit "$SEFL_SERVER_PID" 60
sefl_check "a 5th client connects: the coordinator finishes rounds 1 and 2, exit 0" test $? = 0
sefl_check "round 1's attempt 2 selects 4 of 5 connected, without the refused client" \
    grep -q 'round 1 started: selected 4 of 5 connected (1 refused in this round), .*attempt 2' "$T/server.log"
sefl_check "rounds 1 and 2 committed with 4 clients (round 1 at attempt 2)" \
    test "$(sefl_sql "$T/server.db" "SELECT group_concat(round || ':' || clients || ':' || attempt) FROM rounds")" = "1:4:2,2:4:1"
sefl_check "client-0000 took part in no round, and the wait was logged once" \
    test "$(sefl_sql "$T/server.db" "SELECT rounds FROM clients WHERE name = 'client-0000'")/$(grep -c 'waits:' "$T/server.log")" = 0/1
rc=0
for pid in "$SIM_A" "$SIM_B"; do sefl_wait_exit "$pid" 30 || rc=1; done
SIM_A= SIM_B=
sefl_check "both sims end with the run (exit 0)" test $rc = 0

# ---- 2 and 3. a restart keeps the penalty box and the last evaluation ------
acc=$(sefl_sql "$T/server.db" "SELECT sum(examples * accuracy) / sum(examples) FROM eval_reports WHERE round = 2")
start "$T/second.log" 3 || exit 1
sefl_check "the restarted coordinator restores the box: client-0000 until round 3" \
    grep -q 'penalty box restored from .*server.db, 1 entry: client-0000 (until round 3)' "$T/second.log"
sleep 0.5
got=$(metric sefl_eval_weighted_accuracy)
sefl_check "/metrics at once: sefl_eval_weighted_accuracy $got = server.db's round 2 ($acc), round 2" \
    awk -v a="$got" -v b="$acc" -v r="$(metric sefl_eval_round)" \
        'BEGIN { d = a - b; exit !(a != "" && a != "NaN" && d < 1e-9 && d > -1e-9 && r == 2) }'
sefl_check "/status: last_eval round 2, one client in the penalty box" \
    test "$(status 'd["last_eval"]["round"], d["penalty_box"]')" = "(2, 1)"
sefl_check "/metrics: sefl_clients_penalty_box 1" test "$(metric sefl_clients_penalty_box)" = 1
# Clients 0..3 alone: three outside the box, four needed. Only a restored
# box makes the coordinator say it fills up with client-0000 (without it,
# client-0000 would be selected as any other client).
sim_a
sefl_check "round 3 waits once client-0000 is refused again in it" \
    sefl_wait_log "$T/second.log" 'WARN round 3 waits: 3 of the 4 connected' 40
sefl_check "the restored box counted: round 3 fills up with the penalised client-0000" \
    grep -q 'round 3: only 3 connected clients are outside the penalty box, 4 needed; selecting 1 penalised ones' "$T/second.log"
sim_b
sefl_wait_exit "$SEFL_SERVER_PID" 60
sefl_check "with client-0004, round 3 commits with 4 clients at attempt 2, exit 0" \
    test "$?/$(sefl_sql "$T/server.db" "SELECT clients || ':' || attempt FROM rounds WHERE round = 3")" = 0/4:2
sefl_check "client-0000 is boxed again (until round 5, refused in round 3), in no round" \
    test "$(sefl_sql "$T/server.db" "SELECT until_round || '/' || refused_round FROM penalties WHERE client = 'client-0000'")/$(sefl_sql "$T/server.db" "SELECT rounds FROM clients WHERE name = 'client-0000'")" = 5/3/0
sefl_stop "$SIM_A" "$SIM_B"
SIM_A= SIM_B=
sefl_summary
