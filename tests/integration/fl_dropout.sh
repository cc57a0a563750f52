#!/usr/bin/env bash
# fl_dropout: kill -9 one of three clients while it trains. The round's
# deadline is long (--round-timeout 120): the coordinator must not wait for
# it once the killed client's connection has closed.
# 1. --min-clients 2: the round commits as soon as the victim is gone, with
#    the two updates that arrived, and the run goes on without it.
# 2. --min-clients 3: the round can no longer reach 3 updates, so it is
#    abandoned as soon as the victim is gone (log line saying so, long
#    before the deadline) and retried when the client is back; it then
#    commits as attempt 2. The coordinator holds as many descriptors with
#    the restarted client as it did before the kill (the dead connection
#    was closed, nothing leaked).
# The victim trains on 3000 samples, the others on 300, so it is the one
# still training when the other two have reported. "Long before the
# deadline" is a wait of at most 30 s for a log line, never a timing.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
sefl_need_fmnist || exit 0

sefl_fl_begin fl_dropout 3 12 '*/*.log'

# lines_in_order FILE A B: the first line of FILE matching the extended
# regex A comes before the first one matching B.
lines_in_order() {
    local a b
    a=$(grep -nE -m 1 -- "$2" "$1" | cut -d: -f1)
    b=$(grep -nE -m 1 -- "$3" "$1" | cut -d: -f1)
    [ -n "$a" ] && [ -n "$b" ] && [ "$a" -lt "$b" ]
}

common=(--certs "$T/certs" --clients-per-round 3 --round-timeout 120 --eval-every 0 --lr 0.05
        --batch 32 --heartbeat 2)

# --- 1. --min-clients 2 ----------------------------------------------------
# All three start together; a round may start before the last one has
# joined, so the victim is killed in the first round that selected all
# three (R), once the other two have reported in it.
D=$T/m2
mkdir -p "$D" && ln -s "$T/certs" "$D/certs"
sefl_start_server "$D/server.log" 127.0.0.1:0 "${common[@]}" --db "$D/server.db" \
    --min-clients 2 --rounds 3 || exit 1
sefl_start_client "$D" 0 3 "$SEFL_PORT" --max-samples 300
sefl_start_client "$D" 1 3 "$SEFL_PORT" --max-samples 300
sefl_start_client "$D" 2 3 "$SEFL_PORT" --max-samples 3000
victim=$SEFL_CLIENT_PID
sefl_wait_log "$D/server.log" 'INFO round [0-9]+ started: selected 3' 60
R=$(sed -n 's/.*INFO round \([0-9]*\) started: selected 3.*/\1/p' "$D/server.log" | head -n 1)
sefl_wait_log "$D/server.log" "update from client-000[01] for round $R:" 60 2
kill -9 "$victim"
wait "$victim" 2>/dev/null
sefl_check "min-clients 2: round ${R:-?} commits once the killed client is gone, before its deadline" \
    sefl_wait_log "$D/server.log" "round $R committed: clients 2" 30
sefl_wait_exit "$SEFL_SERVER_PID" 90
sefl_check "min-clients 2: the coordinator finishes 3 rounds and exits 0" [ $? = 0 ]
rc=0
for pid in "${SEFL_CLIENT_PIDS[@]:0:2}"; do sefl_wait_exit "$pid" 30 || rc=1; done
sefl_check "min-clients 2: the surviving clients exit 0" [ $rc = 0 ]
sefl_check "min-clients 2: the killed client's departure is logged" \
    grep -q 'client client-0002 left' "$D/server.log"
sefl_check "min-clients 2: the departure came before the commit" \
    lines_in_order "$D/server.log" 'client client-0002 left' "round $R committed"
sefl_check "min-clients 2: round ${R:-?} committed without it (2 clients, first attempt)" \
    [ "$(sefl_sql "$D/server.db" "SELECT clients || ':' || examples || ':' || attempt FROM rounds WHERE round = ${R:-0}")" = "2:600:1" ]
sefl_check "min-clients 2: no update of the killed client was folded in round ${R:-?}" \
    sefl_not grep -q "update from client-0002 for round $R:" "$D/server.log"
sefl_check "min-clients 2: the later rounds ran with the two left" \
    [ "$(sefl_sql "$D/server.db" "SELECT count(*) FROM rounds WHERE round > ${R:-9} AND clients = 2")" = $((3 - ${R:-9})) ]
sefl_check "min-clients 2: all processes exited and the port is free" \
    sefl_all_gone "$SEFL_PORT" "$SEFL_SERVER_PID" "${SEFL_CLIENT_PIDS[@]}"

# --- 2. --min-clients 3 ----------------------------------------------------
D=$T/m3
mkdir -p "$D" && ln -s "$T/certs" "$D/certs"
SEFL_CLIENT_PIDS=()
sefl_start_server "$D/server.log" 127.0.0.1:0 "${common[@]}" --db "$D/server.db" \
    --min-clients 3 --rounds 1 || exit 1
sefl_start_client "$D" 0 3 "$SEFL_PORT" --max-samples 300
sefl_start_client "$D" 1 3 "$SEFL_PORT" --max-samples 300
sefl_start_client "$D" 2 3 "$SEFL_PORT" --max-samples 3000
victim=$SEFL_CLIENT_PID
sefl_wait_log "$D/server.log" 'update from client-000[01] for round 1' 60 2
fds_before=$(sefl_fd_count "$SEFL_SERVER_PID")
kill -9 "$victim"
wait "$victim" 2>/dev/null
sefl_check "min-clients 3: the round is abandoned once the killed client is gone, before its deadline" \
    sefl_wait_log "$D/server.log" 'round 1 abandoned: 2 of 3 needed updates, at most 0 more to come: selected clients left \(attempt 1\); retrying' 30
sefl_check "min-clients 3: the departure came before the abandon" \
    lines_in_order "$D/server.log" 'client client-0002 left' 'round 1 abandoned'
sefl_check "min-clients 3: it waits for a third client" \
    sefl_wait_log "$D/server.log" 'waiting for clients: 2 connected, 3 needed' 10
sefl_start_client "$D" 2 3 "$SEFL_PORT" --max-samples 300
sefl_wait_log "$D/server.log" 'INFO round 1 started: selected 3 .*attempt 2' 60
fds_after=$(sefl_fd_count "$SEFL_SERVER_PID")
sefl_check "min-clients 3: same descriptor count with the client back ($fds_before then $fds_after)" \
    [ "$fds_before" = "$fds_after" ]
sefl_wait_exit "$SEFL_SERVER_PID" 90
sefl_check "min-clients 3: the retried round commits and the coordinator exits 0" [ $? = 0 ]
sefl_check "min-clients 3: round 1 committed as attempt 2 with 3 clients" \
    [ "$(sefl_sql "$D/server.db" "SELECT round || ':' || clients || ':' || attempt FROM rounds")" = "1:3:2" ]
sefl_check "min-clients 3: no attempt waited for its deadline" \
    sefl_not grep -q 'by the deadline' "$D/server.log"
rc=0
for pid in "${SEFL_CLIENT_PIDS[@]}"; do
    [ "$pid" = "$victim" ] && continue
    sefl_wait_exit "$pid" 30 || rc=1
done
sefl_check "min-clients 3: the other clients and the restarted one exit 0" [ $rc = 0 ]
sefl_check "min-clients 3: all processes exited and the port is free" \
    sefl_all_gone "$SEFL_PORT" "$SEFL_SERVER_PID" "${SEFL_CLIENT_PIDS[@]}"

sefl_summary
