#!/usr/bin/env bash
# fl_wire: the wire encodings with real processes. One coordinator with
# --wire-dtype int8 --update-dtype int8 (per-channel scales) and three
# sefl-client processes, two rounds and an evaluation: every round commits
# with all three, the TrainTask is under 30% of the f32 one's bytes and so
# is every Update (a delta, rounded stochastically), the global backbone
# moves, and round 2's train loss is within 0.02 of the same run in f32;
# server.db's run settings hold both encodings, and a restart asking for
# other ones is refused with one line naming the setting and leaves the file
# as it was.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
sefl_need_fmnist || exit 0

sefl_fl_begin fl_wire 3 15 '*.log'
# The shared set of cnn-se with private SE gates, as f32 bytes.
F32_BYTES=$(( 4 * (832 + 51264 + 524800 + 5130) ))
sefl_start_server "$T/server.log" 127.0.0.1:0 --certs "$T/certs" --db "$T/server.db" \
    --rounds 2 --clients-per-round 3 --min-clients 3 --round-timeout 60 --eval-every 2 \
    --lr 0.05 --batch 32 --heartbeat 2 --wire-dtype int8 --update-dtype int8 || exit 1
for i in 0 1 2; do sefl_start_client "$T" "$i" 3 "$SEFL_PORT" --max-samples 300 --threads 1; done

sefl_wait_exit "$SEFL_SERVER_PID" 120
sefl_check "sefl-server exits 0 after 2 rounds" [ $? = 0 ]
rc=0
for pid in "${SEFL_CLIENT_PIDS[@]}"; do sefl_wait_exit "$pid" 30 || rc=1; done
sefl_check "every sefl-client exits 0" [ $rc = 0 ]

db=$T/server.db
sefl_check "server.db: rounds 1 and 2, each with 3 clients" \
    [ "$(sefl_sql "$db" "SELECT group_concat(round||':'||clients, ' ') FROM rounds")" = "1:3 2:3" ]
sefl_check "server.db's run settings hold wire-dtype and update-dtype int8/channel" \
    [ "$(sefl_sql "$db" "SELECT group_concat(name||'='||value, ' ') FROM (SELECT * FROM settings WHERE name LIKE '%-dtype' ORDER BY name)")" \
      = "update-dtype=int8/channel wire-dtype=int8/channel" ]
task=$(grep -oE 'round 1 started: .*task [0-9]+ bytes' "$T/server.log" | grep -oE '[0-9]+ bytes' | grep -oE '[0-9]+')
sefl_check "the int8 TrainTask is under 30% of f32's $F32_BYTES bytes (${task:-none})" \
    [ -n "$task" ] && [ "$task" -lt $((F32_BYTES * 3 / 10)) ]
ups=$(grep -oE 'update from client-000[0-2] for round [12]: .* [0-9]+ bytes delta' "$T/server.log" \
    | grep -oE '[0-9]+ bytes' | grep -oE '[0-9]+' | sort -n)
big=$(echo "$ups" | tail -n 1)
sefl_check "six int8 delta Updates, each under 30% of f32's bytes (largest ${big:-none})" \
    [ "$(echo "$ups" | grep -c .)" = 6 ] && [ "$big" -lt $((F32_BYTES * 3 / 10)) ]
sefl_check "global backbone (conv1.weight) changes every round" \
    [ "$(sefl_sql "$db" "SELECT count(DISTINCT substr(params, 1, 3200)) FROM models")" = 3 ]
sefl_check "three EvalReports of round 2" \
    [ "$(sefl_sql "$db" "SELECT count(*) FROM eval_reports WHERE round = 2")" = 3 ]

# The same run in f32: the int8 run trains the same way (the clients' mean
# train loss of round 2 within 0.02 of f32's: a wrongly decoded update or
# delta would throw the model far off).
mkdir -p "$T/f32"
cp -r "$T/certs" "$T/f32/certs"
SEFL_CLIENT_PIDS=()
sefl_start_server "$T/f32/server.log" 127.0.0.1:0 --certs "$T/certs" --db "$T/f32/server.db" \
    --rounds 2 --clients-per-round 3 --min-clients 3 --round-timeout 60 --eval-every 2 \
    --lr 0.05 --batch 32 --heartbeat 2 || exit 1
for i in 0 1 2; do sefl_start_client "$T/f32" "$i" 3 "$SEFL_PORT" --max-samples 300 --threads 1; done
sefl_wait_exit "$SEFL_SERVER_PID" 120
sefl_check "the f32 run exits 0" [ $? = 0 ]
for pid in "${SEFL_CLIENT_PIDS[@]}"; do sefl_wait_exit "$pid" 30; done
l8=$(sefl_sql "$db" "SELECT train_loss FROM rounds WHERE round = 2")
l32=$(sefl_sql "$T/f32/server.db" "SELECT train_loss FROM rounds WHERE round = 2")
sefl_check "round 2 train loss: int8 $l8, f32 $l32, within 0.02" \
    awk -v a="$l8" -v b="$l32" 'BEGIN { d = a - b; exit !(a > 0 && b > 0 && d < 0.02 && d > -0.02) }'

before=$(sefl_sql "$db" "SELECT group_concat(checksum) FROM models")
"$BIN/sefl-server" --listen 127.0.0.1:0 --certs "$T/certs" --db "$db" --rounds 3 \
    --clients-per-round 3 --min-clients 3 --lr 0.05 --batch 32 --update-dtype f16 --wire-dtype int8 \
    2>"$T/resume.log"
rc=$?
sefl_check "a restart with --update-dtype f16 is refused (exit $rc)" [ $rc != 0 ]
sefl_check "with one line naming --update-dtype, the recorded value and this one" \
    grep -q "the run was made with --update-dtype int8/channel, this one has --update-dtype f16" "$T/resume.log"
sefl_check "server.db unchanged by the refused restart" \
    [ "$(sefl_sql "$db" "SELECT group_concat(checksum) FROM models")" = "$before" ]

sefl_summary
