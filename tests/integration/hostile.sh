#!/usr/bin/env bash
# hostile: one run with three honest clients (sefl-client) and six
# attackers with valid certificates (py_client.py, written from
# proto/PROTOCOL.md): a scaled update (x1e6), a falsified EvalReport (2^32-1
# examples, accuracy 1.0), 1,000,000 declared examples, a client that stops
# reading once it holds a task, one that sends its Update one byte every
# 0.5 s, and one that answers with Error{40 training diverged}. Every defence of issue 10 shows in the log, the run commits
# all its rounds, every committed model is finite, and sefl-eval reads the
# database.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
sefl_need_fmnist || exit 0

sefl_fl_begin hostile 9 25 '*.log'
sefl_need_py "$T" || exit 0
sefl_start_server "$T/server.log" 127.0.0.1:0 --certs "$T/certs" --db "$T/server.db" \
    --rounds 3 --clients-per-round 9 --min-clients 3 --eval-every 3 --round-timeout 60 \
    --heartbeat 3 --lr 0.05 --batch 32 --penalty-rounds 5 || exit 1
for i in 0 1 2; do sefl_start_client "$T" "$i" 8 "$SEFL_PORT" --max-samples 300; done
sefl_start_py "$T" client-0003 "$SEFL_PORT" --attack scale
sefl_start_py "$T" client-0004 "$SEFL_PORT" --attack report
sefl_start_py "$T" client-0005 "$SEFL_PORT" --attack declare
sefl_start_py "$T" client-0006 "$SEFL_PORT" --attack stall
sefl_start_py "$T" client-0007 "$SEFL_PORT" --attack diverge
sefl_start_py "$T" client-0008 "$SEFL_PORT" --attack slow

sefl_wait_exit "$SEFL_SERVER_PID" 90
sefl_check "the coordinator commits its 3 rounds and exits 0" [ $? = 0 ]
log=$T/server.log
sefl_check "scaled update: the candidate model refused, not committed, client-0003 named" \
    grep -qE 'candidate model refused, not committed: update from client-0003 refused, update norm [0-9.e+]+ over the bound' "$log"
sefl_check "scaled update: client-0003 penalised" \
    grep -q 'client client-0003 penalised for 5 rounds' "$log"
sefl_check "scaled update: client-0003 in no committed round" \
    [ "$(sefl_sql "$T/server.db" "SELECT rounds FROM clients WHERE name = 'client-0003'")" = 0 ]
sefl_check "falsified EvalReport: refused with its reason and counted" \
    grep -q 'refused eval report from client-0004 for round 3: examples 4294967295 outside 1..200 (its test split in Hello) (refused so far: 1)' "$log"
sefl_check "falsified EvalReport: nothing of client-0004 stored" \
    [ "$(sefl_sql "$T/server.db" "SELECT count(*) FROM eval_reports WHERE client = 'client-0004'")" = 0 ]
sefl_check "1,000,000 declared examples: the weight is capped" \
    grep -qE 'update from client-0005 for round [0-9]+: weight 1000000 capped to [0-9]+ \(--max-weight-share 0.5' "$log"
sefl_check "stalled reader holding a task: closed after 3 heartbeats and penalised" \
    grep -q 'client client-0006 penalised for 5 rounds (until round [0-9]*): silent for 3 heartbeats while holding a task' "$log"
sefl_check "an Update sent one byte every 0.5 s: closed after 3 heartbeats and penalised" \
    grep -q 'client client-0008 penalised for 5 rounds (until round [0-9]*): silent for 3 heartbeats while holding a task' "$log"
sefl_check "diverged training: counted, the client stays connected" \
    grep -qE 'client client-0007: training diverged in round [0-9]+ \(training diverged: loss nan\); it stays connected' "$log"
sefl_check "the diverged client was never closed before the run ended" \
    [ "$(sed -n '1,/done: 3 rounds committed/p' "$log" | grep -c 'client client-0007 left')" = 0 ]
sefl_check "the capped weight is what round rows count (no round of 1,000,000 examples)" \
    [ "$(sefl_sql "$T/server.db" "SELECT count(*) FROM rounds WHERE examples >= 1000000")" = 0 ]
sefl_check "rounds 1..3 committed" \
    [ "$(sefl_sql "$T/server.db" "SELECT group_concat(round) FROM rounds")" = "1,2,3" ]
finite=$("$SEFL_PY" - "$T/server.db" <<'PY'
import math, sqlite3, struct, sys
db = sqlite3.connect(sys.argv[1])
bad = 0
for r, b in db.execute("SELECT round, params FROM models"):
    v = struct.unpack("<%df" % (len(b) // 4), b)
    bad += sum(1 for x in v if not math.isfinite(x) or abs(x) > 1e3)
print(bad)
PY
)
sefl_check "every stored model is finite and small (values over 1e3 or not finite: $finite)" [ "$finite" = 0 ]
sefl_check "server.db passes integrity_check" [ "$(sefl_sql "$T/server.db" "PRAGMA integrity_check")" = ok ]
"$BIN/sefl-eval" --db "$T/server.db" >"$T/eval.txt" 2>"$T/eval.log"
sefl_check "sefl-eval reads the database" [ $? = 0 ]
sefl_summary
