#!/usr/bin/env bash
# sim_sample: evaluation of a sample and the open-files limit, with real
# processes. A coordinator with --eval-clients 5 and one sefl-sim of 12
# clients run two rounds with an evaluation after each: each evaluation
# asks exactly 5 clients, the same 5 both times, and sefl-eval says that the
# figures are over the sample (eval_clients 5, clients_seen 12, clients 5).
# sefl-sim started with a low soft open-files limit runs with its soft limit
# raised to the hard one, and one asked for more clients than the hard limit
# allows is refused with one line saying so, before it loads anything.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
sefl_need_fmnist || exit 0

sefl_fl_begin sim_sample 12 15 '*/*.log'
trap 'sefl_stop "${SEFL_SERVER_PID:-}" "${SEFL_SIM_PID:-}"; sefl_fl_cleanup' EXIT
mkdir -p "$T/run"
"$BIN/sefl-server" --listen 127.0.0.1:0 --certs "$T/certs" --db "$T/run/server.db" --rounds 2 \
    --clients-per-round 12 --min-clients 12 --over-select 1 --round-timeout 60 --eval-every 1 \
    --eval-clients 5 --lr 0.05 --heartbeat 2 >"$T/run/server.log" 2>&1 &
SEFL_SERVER_PID=$!
port=$(sefl_wait_port "$T/run/server.log" "$SEFL_SERVER_PID" 30) || exit 1
hard=$(ulimit -Hn)
( ulimit -Sn 64; exec "$BIN/sefl-sim" --server "127.0.0.1:$port" --certs "$T/certs" \
    --state "$T/run/clients" --clients 12 --partition pat:2 --seed 1 --max-samples 10 --threads 2 \
    >"$T/run/sim.log" 2>&1 ) &
SEFL_SIM_PID=$!
sefl_wait_log "$T/run/sim.log" "sefl-sim: clients" 30
soft=$(awk '/Max open files/ { print $4 }' "/proc/$SEFL_SIM_PID/limits" 2>/dev/null)
sefl_check "sefl-sim raised its soft open-files limit from 64 to the hard limit ($soft of $hard)" \
    [ "$soft" = "$hard" ]
sefl_wait_exit "$SEFL_SERVER_PID" 90
sefl_check "sefl-server exits 0 after 2 rounds" [ $? = 0 ]
sefl_wait_exit "$SEFL_SIM_PID" 30
sefl_check "sefl-sim exits 0" [ $? = 0 ]
SEFL_SERVER_PID= SEFL_SIM_PID=

db=$T/run/server.db
r1=$(sefl_sql "$db" "SELECT group_concat(client) FROM (SELECT client FROM eval_reports WHERE round = 1 ORDER BY client)")
r2=$(sefl_sql "$db" "SELECT group_concat(client) FROM (SELECT client FROM eval_reports WHERE round = 2 ORDER BY client)")
sefl_check "evaluation 1 asked 5 of the 12 clients ($r1)" [ "$(echo "$r1" | tr ',' '\n' | grep -c client)" = 5 ]
sefl_check "evaluation 2 asked the same 5 ($r2)" [ "$r1" = "$r2" ]
sefl_check "the server log says it is a sample" \
    grep -q "eval round 1 started: 5 clients (--eval-clients 5: the sample of seed 1 among 12 connected)" \
    "$T/run/server.log"
"$BIN/sefl-eval" --db "$db" >"$T/run/eval.txt" 2>&1
sefl_check "sefl-eval says eval_clients 5, clients_seen 12, clients 5" \
    [ "$(grep -cE '^(eval_clients 5|clients_seen 12|clients 5)$' "$T/run/eval.txt")" = 3 ]

( ulimit -n 100; exec "$BIN/sefl-sim" --server 127.0.0.1:1 --certs "$T/certs" --state "$T/big" \
    --clients 200 --partition iid --seed 1 >"$T/run/big.log" 2>&1 )
rc=$?
sefl_check "sefl-sim with 200 clients under a hard limit of 100 exits 1 ($rc)" [ $rc = 1 ]
sefl_check "with one line: the clients, the files they need and the limit" \
    [ "$(wc -l <"$T/run/big.log")" = 1 ] && \
    grep -q "200 clients need about [0-9]* open files, but the hard limit is 100 (ulimit -Hn)" "$T/run/big.log"

sefl_summary
