#!/usr/bin/env bash
# fl_faults: malformed updates are refused and never folded in. Six
# clients; with SEFL_FAULT the client engineer's test switch corrupts a
# client's first Update: a NaN (client-0002), a wrong shape (client-0003),
# the previous round's number (client-0004), or the update sent twice
# (client-0005). With --min-clients 6, attempt 1 of round 1 collects only
# the three valid updates (two good clients and the duplicate's first), so
# it is abandoned, nothing of it committed; a later attempt, with the
# faults spent, commits with all six. (tests/check_coord.c checks the
# committed numbers exactly against the valid updates.) The NaN and shape
# clients, whose connections the coordinator closes, train on 3000 samples
# and the others on 300, so that they report last: the first of them to go
# makes the coordinator abandon attempt 1 at once, after the other faults
# were seen with the round open. The second may still be training attempt
# 1 when attempt 2 starts, and its fault then ends attempt 2 too.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
sefl_need_fmnist || exit 0
SEFL_CLIENT_BIN=$TEST_BIN/sefl-client   # the switches exist in test builds only

sefl_fl_begin fl_faults 6 12 '*.log'
sefl_start_server "$T/server.log" 127.0.0.1:0 --certs "$T/certs" --db "$T/server.db" \
    --rounds 1 --clients-per-round 6 --min-clients 6 --round-timeout 120 --eval-every 0 \
    --lr 0.05 --batch 32 --heartbeat 2 || exit 1
faults=("" "" nan shape stale duplicate)
samples=(300 300 3000 3000 300 300)
for i in 0 1 2 3 4 5; do
    SEFL_FAULT=${faults[$i]} sefl_start_client "$T" "$i" 6 "$SEFL_PORT" --max-samples "${samples[$i]}"
done

sefl_wait_exit "$SEFL_SERVER_PID" 120
sefl_check "the coordinator commits round 1 and exits 0" [ $? = 0 ]
rc=0
for pid in "${SEFL_CLIENT_PIDS[@]}"; do sefl_wait_exit "$pid" 30 || rc=1; done
sefl_check "all six clients exit 0" [ $rc = 0 ]
sefl_check "all processes exited and the port is free" \
    sefl_all_gone "$SEFL_PORT" "$SEFL_SERVER_PID" "${SEFL_CLIENT_PIDS[@]}"

log=$T/server.log
sefl_check "NaN update: refused by the decoder, Error sent and connection closed" \
    grep -qE 'client client-0002 \(.*\): .*(finite|NaN|nan).*; closing' "$log"
sefl_check "wrong-shape update: refused, Error sent and connection closed" \
    grep -qE 'client client-0003 \(.*\): tensor .*(dimension|shape).*; closing' "$log"
sefl_check "stale update: rejected with its reason" \
    grep -q 'rejected update from client-0004: stale round 0, round 1 is in progress' "$log"
sefl_check "duplicate update: the second copy rejected" \
    grep -q 'rejected update from client-0005: duplicate update for round 1' "$log"
sefl_check "no update of the NaN, shape or stale client was folded in attempt 1" \
    [ "$(sed -n '1,/round 1 abandoned/p' "$log" | grep -cE 'update from client-000[234] for round 1:')" = 0 ]
sefl_check "attempt 1 abandoned with only the 3 valid updates, when the closed clients left" \
    grep -qE 'round 1 abandoned: 3 of 6 needed updates, at most [12] more to come: selected clients left \(attempt 1\)' "$log"
sefl_check "round 1 committed once, in a later attempt, with all six (7200 examples)" \
    [ "$(sefl_sql "$T/server.db" "SELECT group_concat(round || ':' || clients || ':' || examples || ':' || (attempt > 1)) FROM rounds")" = "1:6:7200:1" ]
sefl_check "the model of round 0 is still the only other model stored" \
    [ "$(sefl_sql "$T/server.db" "SELECT group_concat(round) FROM models")" = "0,1" ]

sefl_summary
