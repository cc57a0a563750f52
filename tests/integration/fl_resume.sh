#!/usr/bin/env bash
# fl_resume: kill -9 the coordinator in the middle of round 3 (its clients
# are training), restart it on the same server.db and port: it resumes after
# round 2 with a byte-identical model, the clients reconnect by themselves,
# and the run goes on to round 4 with every process exiting 0.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
sefl_need_fmnist || exit 0

sefl_fl_begin fl_resume 3 12 '*.log'

args=(--certs "$T/certs" --db "$T/server.db" --rounds 4 --clients-per-round 3 --min-clients 3
      --round-timeout 60 --eval-every 0 --lr 0.05 --batch 32 --heartbeat 2)
sefl_start_server "$T/first.log" 127.0.0.1:0 "${args[@]}" || exit 1
port=$SEFL_PORT
first=$SEFL_SERVER_PID
for i in 0 1 2; do sefl_start_client "$T" "$i" 3 "$port" --max-samples 600; done

sefl_wait_log "$T/first.log" 'INFO round 3 started' 90
kill -9 "$first"
wait "$first" 2>/dev/null
sefl_check "the coordinator was killed with round 3 in progress (rounds 1, 2 committed)" \
    [ "$(sefl_sql "$T/server.db" "SELECT group_concat(round) FROM rounds")" = "1,2" ]
before=$(sefl_sql "$T/server.db" "SELECT checksum || ' ' || hex(params) FROM models WHERE round = 2" | md5sum)
sum2=$(sefl_sql "$T/server.db" "SELECT checksum FROM models WHERE round = 2")

sefl_start_server "$T/second.log" "127.0.0.1:$port" "${args[@]}"
sefl_check "the coordinator restarts on the same port and database" [ $? = 0 ]
sefl_check "it resumes after round 2 with the stored model (checksum $sum2)" \
    grep -q "resuming after round 2 .*checksum $sum2" "$T/second.log"
sefl_wait_exit "$SEFL_SERVER_PID" 120
sefl_check "the restarted coordinator finishes round 4 and exits 0" [ $? = 0 ]
rc=0
for pid in "${SEFL_CLIENT_PIDS[@]}"; do sefl_wait_exit "$pid" 30 || rc=1; done
sefl_check "every client reconnected, carried on and exited 0" [ $rc = 0 ]
sefl_check "all processes exited and the port is free" \
    sefl_all_gone "$port" "$first" "$SEFL_SERVER_PID" "${SEFL_CLIENT_PIDS[@]}"

after=$(sefl_sql "$T/server.db" "SELECT checksum || ' ' || hex(params) FROM models WHERE round = 2" | md5sum)
sefl_check "the model of round 2 is byte-identical before and after the restart" [ "$before" = "$after" ]
sefl_check "rounds 1..4 committed once each, all with 3 clients" \
    [ "$(sefl_sql "$T/server.db" "SELECT group_concat(round || ':' || clients) FROM rounds")" = "1:3,2:3,3:3,4:3" ]
sefl_check "round 3 was committed by the restarted coordinator" \
    grep -q "round 3 committed: clients 3" "$T/second.log"
sefl_check "the clients were welcomed again at round 2" \
    [ "$(grep -c 'welcomed: round 2' "$T"/c[012].log | awk -F: '{ s += $2 } END { print s }')" -ge 3 ]

# The same command again: the run reached --rounds 4 and was evaluated.
"$BIN/sefl-server" --listen 127.0.0.1:0 "${args[@]}" 2>"$T/again.log"
sefl_check "resuming a finished run says so and exits 0" [ $? = 0 ]
sefl_check "  the log says there is nothing to do" \
    grep -q 'run already finished: 4 of --rounds 4 committed and evaluated' "$T/again.log"
sefl_check "the run settings are recorded (lr 0.05, batch 32)" \
    [ "$(sefl_sql "$T/server.db" "SELECT group_concat(value) FROM (SELECT value FROM settings WHERE name IN ('lr', 'batch') ORDER BY name)")" = "32,0.0500000007" ]
sefl_check "the clients' partition is recorded" \
    [ "$(sefl_sql "$T/server.db" "SELECT value FROM settings WHERE name = 'partition'")" = "pat:2 clients=3 seed=1 max-samples=600" ]

# A longer run with fewer clients per round: refused without --allow-change.
more=(--rounds 6 --min-clients 1 --clients-per-round 1)
"$BIN/sefl-server" --listen 127.0.0.1:0 "${args[@]}" "${more[@]}" 2>"$T/changed.log"
sefl_check "a changed setting on resume exits 2 (a configuration error)" [ $? = 2 ]
sefl_check "  with one line naming the setting" \
    grep -q 'the run was made with --clients-per-round 3, this one has --clients-per-round 1; give the same value, or --allow-change' "$T/changed.log"

# SIGTERM in the middle of round 5 of a longer run on the same database:
# Bye{"shutdown"}, exit 0, round 5 not committed, the file intact.
SEFL_CLIENT_PIDS=()
sefl_start_server "$T/third.log" 127.0.0.1:0 "${args[@]}" "${more[@]}" --allow-change || exit 1
sefl_check "sefl-eval prints the run settings and the changes" \
    sh -c "'$BIN/sefl-eval' --db '$T/server.db' | grep -cxE 'setting lr 0.0500000007|setting partition pat:2 clients=3 seed=1 max-samples=600|setting_change 5 (clients-per-round|min-clients) 3 -> 1' | grep -qx 4"
sefl_check "--allow-change records the changes from round 5" \
    [ "$(sefl_sql "$T/server.db" "SELECT group_concat(round || ':' || name || ':' || old_value || '>' || new_value) FROM setting_changes")" = "5:clients-per-round:3>1,5:min-clients:3>1" ]
sefl_start_client "$T" 0 3 "$SEFL_PORT" --max-samples 3000
sefl_wait_log "$T/third.log" 'INFO round 5 started' 60
kill -TERM "$SEFL_SERVER_PID"
sefl_wait_exit "$SEFL_SERVER_PID" 30
sefl_check "SIGTERM mid-round: the coordinator exits 0" [ $? = 0 ]
sefl_check "SIGTERM mid-round: the round is dropped, the client told to come back later" \
    sefl_wait_log "$T/c0.log" 'coordinator said bye: shutdown' 10
sefl_check "SIGTERM mid-round: log says so" \
    grep -q 'round 5 dropped: shutdown' "$T/third.log"
sefl_stop "${SEFL_CLIENT_PIDS[@]}"
sefl_check "SIGTERM mid-round: rounds 1..4 committed, nothing of round 5, file intact" \
    [ "$(sefl_sql "$T/server.db" "SELECT max(round) || ' ' || count(*) FROM rounds")-$(sefl_sql "$T/server.db" "PRAGMA quick_check")" = "4 4-ok" ]

sefl_summary
