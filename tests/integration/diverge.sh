#!/usr/bin/env bash
# diverge: a client whose local training diverges (a real one: --lr 100
# makes SGD blow up to NaN or infinity in loss or parameters) sends Error{40 training diverged} instead of an
# Update, commits nothing (its store keeps the last good private tensors),
# and stays connected; the
# coordinator counts each one, keeps the clients, and abandons the attempt
# at once (nothing more to come) instead of waiting for its deadline.
# --max-diverged-attempts 0 keeps the coordinator retrying, so that this
# test stops it itself at a point it chooses; the stop after N such
# attempts is fl_collapse.sh's.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
sefl_need_fmnist || exit 0

sefl_fl_begin diverge 2 20 '*.log'
sefl_start_server "$T/server.log" 127.0.0.1:0 --certs "$T/certs" --db "$T/server.db" \
    --rounds 1 --clients-per-round 2 --min-clients 2 --eval-every 0 --round-timeout 120 \
    --lr 100 --batch 32 --heartbeat 2 --max-diverged-attempts 0 || exit 1
for i in 0 1; do sefl_start_client "$T" "$i" 2 "$SEFL_PORT" --max-samples 300; done

log=$T/server.log
sefl_wait_log "$log" 'training diverged in round 1 .*; it stays connected \(diverged so far: 3\)' 60
sefl_check "the coordinator counts diverged trainings (3 so far) and keeps the clients" [ $? = 0 ]
sefl_stop "$SEFL_SERVER_PID"
sefl_check "attempts with diverged clients end at once, never by the deadline" \
    sefl_not grep -q 'abandoned.*by the deadline' "$log"
sefl_check "no client was closed before the coordinator stopped" \
    [ "$(sed -n '1,/signal 15 received/p' "$log" | grep -c ' left: ')" = 0 ]
sefl_check "a diverged client said why, instead of an update" \
    grep -q 'training diverged in round 1: loss .*; reporting it instead of an update' "$T"/c[01].log
sefl_need_py "$T" >/dev/null || SEFL_PY=python3
bad=$("$SEFL_PY" - "$T/c0.db" "$T/c1.db" <<'PY'
import math, sqlite3, struct, sys
bad = 0
for f in sys.argv[1:]:
    db = sqlite3.connect(f)
    for (b,) in db.execute("SELECT data FROM tensors"):
        bad += sum(1 for x in struct.unpack("<%df" % (len(b) // 4), b) if not math.isfinite(x))
    bad += db.execute("SELECT count(*) FROM history WHERE kind = 'train' AND (loss IS NULL OR abs(loss) > 1e38)").fetchone()[0]
print(bad)
PY
)
sefl_check "no diverged training reached a client store (non-finite tensors or losses: $bad)" [ "$bad" = 0 ]
sefl_check "no round committed" [ "$(sefl_sql "$T/server.db" "SELECT count(*) FROM rounds")" = 0 ]
sefl_summary
