#!/usr/bin/env bash
# sim_inflight: sefl-sim's bound on large frames being received at once
# (--max-inflight-frames). The same 2-round run of 20 simulated clients
# (every client trains in every round and evaluates after each) twice
# against a fresh coordinator: once with --max-inflight-frames 2, once with
# no bound (0). Checks that
#   - with the bound, sefl-sim's stats line says that at most 2 large frames
#     were received at once and that every task (40 TrainTasks, 40
#     EvalTasks) went through a slot, and the run completes with every
#     client (how many waited, and the peak without a bound, are printed);
#   - both runs commit the same rounds with the same clients and every
#     EvalReport, and reach the same models to 1e-5 in every weight (FedAvg's
#     sum in double depends on the order updates arrive, nothing else does:
#     the two differ around the last float bit; a frame lost or garbled
#     would differ by orders of magnitude more).
# The coordinator runs with --model-refs off, so that every client receives
# its own copy of each task, as from a coordinator that sends no references:
# with references one sefl-sim process gets one large frame per phase and
# the bound has nothing to do.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
sefl_need_fmnist || exit 0

N=20
sefl_fl_begin sim_inflight "$N" 15 '*/*.log'
server_args="--rounds 2 --clients-per-round $N --min-clients $N --over-select 1 --eval-every 1
             --round-timeout 120 --lr 0.05 --batch 10 --seed 3 --model-refs off"
sim_args="--clients $N --partition pat:2 --seed 5 --max-samples 20 --threads 2"

sefl_run_federated "$T/bounded" "$T/certs" 120 "$server_args" "$sim_args --max-inflight-frames 2"
sefl_check "the run with --max-inflight-frames 2 completes" [ $? = 0 ]
sefl_run_federated "$T/free" "$T/certs" 120 "$server_args" "$sim_args --max-inflight-frames 0"
sefl_check "the run without a bound completes" [ $? = 0 ]

# "large frames (over 65536 bytes) received: T, at most P at once (--max-inflight-frames M), W waited for a slot"
stat() { sed -n "s/.*large frames (over 65536 bytes) received: \([0-9]*\), at most \([0-9]*\) at once .*, \([0-9]*\) waited for a slot.*/\\$2/p" "$T/$1/sim.log"; }
taken=$(stat bounded 1) peak=$(stat bounded 2) waits=$(stat bounded 3) free_peak=$(stat free 2)
sefl_check "bounded: at most 2 large frames at once (peak $peak)" [ "${peak:-99}" -le 2 ]
sefl_check "bounded: every task took a slot (40 TrainTasks + 40 EvalTasks = $taken)" [ "${taken:-0}" = 80 ]
# How often clients waited, and how many frames came at once without a
# bound, depend on the timing of the two processes: figures, not checks
# (check_conn's test_rx_limit makes clients wait for certain).
echo "bounded: $waits waits for a slot; unbounded: at most $free_peak at once"

rounds() { sefl_sql "$T/$1/server.db" "SELECT group_concat(round || ':' || clients) FROM rounds"; }
sefl_check "both runs commit rounds 1 and 2 with $N clients ($(rounds bounded) / $(rounds free))" \
    [ "$(rounds bounded) $(rounds free)" = "1:$N,2:$N 1:$N,2:$N" ]
evals() { sefl_sql "$T/$1/server.db" "SELECT count(*) FROM eval_reports"; }
sefl_check "both runs have every EvalReport ($(evals bounded) / $(evals free))" \
    [ "$(evals bounded) $(evals free)" = "$((2 * N)) $((2 * N))" ]
# The largest absolute difference between the two runs' models of each round.
apart=$(python3 - "$T/bounded/server.db" "$T/free/server.db" 2>&1 <<'PY'
import sqlite3, struct, sys
def model(path, rnd):
    with sqlite3.connect("file:%s?mode=ro" % path, uri=True) as db:
        row = db.execute("SELECT params FROM models WHERE round = ?", (rnd,)).fetchone()
    return struct.unpack("<%df" % (len(row[0]) // 4), row[0])
for rnd in (1, 2):
    x, y = (model(p, rnd) for p in sys.argv[1:3])
    assert len(x) == len(y) > 0, "model sizes %d and %d" % (len(x), len(y))
    print("%.3g" % max(abs(p - q) for p, q in zip(x, y)), end=" ")
PY
)
read -r d1 d2 <<<"$apart"
sefl_check "the two runs' models agree to 1e-5 (largest differences: round 1 $d1, round 2 $d2)" \
    python3 -c "import sys; sys.exit(0 if max(map(float, sys.argv[1:3])) <= 1e-5 else 1)" "$d1" "$d2"
sefl_summary
