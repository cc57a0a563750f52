#!/usr/bin/env bash
# fl_rounds: one coordinator, three sefl-client processes on a pat:2 share
# of Fashion-MNIST, three rounds with an evaluation every two rounds (so at
# rounds 2 and 3), over mutual TLS on loopback. Checks that every round
# commits with all three clients, that the global backbone changes every
# round, that each client's file holds its own private SE weights (different
# between clients), that server.db holds the rounds, clients and
# EvalReports, and that everything exits 0 and lets go of its port.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
sefl_need_fmnist || exit 0

sefl_fl_begin fl_rounds 3 15 '*.log'
sefl_start_server "$T/server.log" 127.0.0.1:0 --certs "$T/certs" --db "$T/server.db" \
    --rounds 3 --clients-per-round 3 --min-clients 3 --round-timeout 60 --eval-every 2 \
    --lr 0.05 --batch 32 --heartbeat 2 || exit 1
for i in 0 1 2; do sefl_start_client "$T" "$i" 3 "$SEFL_PORT" --max-samples 300; done

sefl_wait_exit "$SEFL_SERVER_PID" 120
sefl_check "sefl-server exits 0 after 3 rounds" [ $? = 0 ]
rc=0
for pid in "${SEFL_CLIENT_PIDS[@]}"; do sefl_wait_exit "$pid" 30 || rc=1; done
sefl_check "every sefl-client exits 0 on Bye{done}" [ $rc = 0 ]
sefl_check "all processes exited and the port is free" \
    sefl_all_gone "$SEFL_PORT" "$SEFL_SERVER_PID" "${SEFL_CLIENT_PIDS[@]}"

db=$T/server.db
sefl_check "server.db: rounds 1..3, each with 3 clients, 900 examples, attempt 1" \
    [ "$(sefl_sql "$db" "SELECT group_concat(round||':'||clients||':'||examples||':'||attempt, ' ') FROM rounds")" \
      = "1:3:900:1 2:3:900:1 3:3:900:1" ]
sefl_check "server.db: round figures recorded (loss, seconds >= coord_seconds > 0)" \
    [ "$(sefl_sql "$db" "SELECT count(*) FROM rounds WHERE train_loss > 0 AND seconds >= coord_seconds AND coord_seconds > 0")" = 3 ]
sefl_check "server.db: models of rounds 1, 2, 3 kept, all of them distinct" \
    [ "$(sefl_sql "$db" "SELECT group_concat(round) || ' ' || count(DISTINCT checksum) || ' ' || count(DISTINCT params) FROM models")" = "1,2,3 3 3" ]
# The private SE tensors of the global model never change (they are not
# aggregated), so the models differing means the shared backbone moved.
# Compare one backbone tensor's bytes directly: conv1.weight is first.
sefl_check "global backbone (conv1.weight) changes every round" \
    [ "$(sefl_sql "$db" "SELECT count(DISTINCT substr(params, 1, 3200)) FROM models")" = 3 ]
sefl_check "server.db: the three clients, 3 rounds and 900 examples each" \
    [ "$(sefl_sql "$db" "SELECT group_concat(name||':'||rounds||':'||examples, ' ') FROM (SELECT * FROM clients ORDER BY name)")" \
      = "client-0000:3:900 client-0001:3:900 client-0002:3:900" ]
sefl_check "server.db: EvalReports of rounds 2 and 3 from every client" \
    [ "$(sefl_sql "$db" "SELECT group_concat(round||':'||client, ' ') FROM (SELECT * FROM eval_reports ORDER BY round, client)")" \
      = "2:client-0000 2:client-0001 2:client-0002 3:client-0000 3:client-0001 3:client-0002" ]
sefl_check "server.db: meta says server, cnn-se, r 8, private se" \
    [ "$(sefl_sql "$db" "SELECT group_concat(value, ',') FROM (SELECT value FROM meta WHERE key IN ('kind','arch','r','private_groups') ORDER BY key)")" \
      = "cnn-se,server,se,8" ]

ok=1
for i in 0 1 2; do
    n=$(sefl_sql "$T/c$i.db" "SELECT count(*) FROM tensors WHERE name LIKE 'se%' AND round = 3")
    [ "$n" = 12 ] || ok=0
done
sefl_check "each client file holds its 12 private SE tensors of round 3" [ $ok = 1 ]
sums=$(for i in 0 1 2; do sefl_sql "$T/c$i.db" "SELECT group_concat(checksum, '') FROM (SELECT checksum FROM tensors ORDER BY name)"; done | sort -u | wc -l)
sefl_check "the private SE weights differ between the three clients" [ "$sums" = 3 ]
# The global model still holds the initial SE weights: a client's trained
# se1.fc1.weight must differ from every global model's bytes for it.
c0=$(sefl_sql "$T/c0.db" "SELECT hex(data) FROM tensors WHERE name = 'se1.fc1.weight'")
sefl_check "a client's SE weights moved away from the initial ones" \
    [ "$(sefl_sql "$db" "SELECT count(*) FROM models WHERE instr(hex(params), '$c0') > 0")" = 0 ]
sefl_check "server log: 3 joined, 3 rounds started and committed, 2 evaluations" \
    [ "$(grep -cE 'client client-000[0-2] joined|INFO round [1-3] started|INFO round [1-3] committed: clients 3|eval round [23] done: 3 of 3' "$T/server.log")" = 11 ]
sefl_check "server log: ends with done and exit 0" \
    [ "$(grep -cE 'done: 3 rounds committed|exit 0$' "$T/server.log")" = 2 ]

sefl_summary
