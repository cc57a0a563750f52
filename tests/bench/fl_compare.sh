#!/usr/bin/env bash
# fl_compare: the issue-4 comparison. One coordinator and CLIENTS sefl-client
# processes, each on its share of a pat:2 partition of Fashion-MNIST, run
# ROUNDS rounds twice: with --private se (SE gates stay on the clients) and
# with --private none (plain FedAvg). Prints, from the two server.db files,
# every client's personalized accuracy after the last round side by side
# (sample-weighted and plain means below), then each round's wall time and
# how much of it was the coordinator's own work (coord_seconds: encoding
# tasks, validating and folding updates, committing) by the wall clock
# (server.db rounds.coord_seconds) and by the coordinator thread's CPU clock
# (its log line), which differ when clients share the coordinator's cores.
#
#   bash tests/bench/fl_compare.sh            (not part of make check)
# Environment: CLIENTS (10), ROUNDS (10), EPOCHS (1), BATCH (10), LR (0.005),
# MAX_SAMPLES (0: each client's whole share), SEED (1), OUT (a temp dir,
# kept so the databases can be read again).
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
sefl_need_fmnist >/dev/null || { echo "fl_compare: Fashion-MNIST not installed"; exit 1; }

CLIENTS=${CLIENTS:-10}
ROUNDS=${ROUNDS:-10}
EPOCHS=${EPOCHS:-1}
BATCH=${BATCH:-10}
LR=${LR:-0.005}
MAX_SAMPLES=${MAX_SAMPLES:-0}
SEED=${SEED:-1}
OUT=${OUT:-$(mktemp -d /tmp/fl_compare.XXXXXX)}
mkdir -p "$OUT"
trap 'sefl_stop "$SEFL_SERVER_PID" "${SEFL_CLIENT_PIDS[@]}"' EXIT

[ -d "$OUT/certs" ] || "$BIN/sefl-certs" init --dir "$OUT/certs" --clients "$CLIENTS" >/dev/null 2>&1

# run PRIVATE: a whole federated run into $OUT/PRIVATE.
run() {
    local private=$1 dir=$OUT/$1 extra=() i pid start
    rm -rf "$dir"
    mkdir -p "$dir"
    ln -s "$OUT/certs" "$dir/certs"
    [ "$MAX_SAMPLES" != 0 ] && extra=(--max-samples "$MAX_SAMPLES")
    start=$(date +%s.%N)
    sefl_start_server "$dir/server.log" 127.0.0.1:0 --certs "$OUT/certs" --db "$dir/server.db" \
        --rounds "$ROUNDS" --clients-per-round "$CLIENTS" --min-clients "$CLIENTS" \
        --over-select 1 --round-timeout 3600 --eval-every "$ROUNDS" --private "$private" \
        --lr "$LR" --batch "$BATCH" --epochs "$EPOCHS" --seed "$SEED" --heartbeat 30 || return 1
    SEFL_CLIENT_PIDS=()
    for ((i = 0; i < CLIENTS; i++)); do
        sefl_start_client "$dir" "$i" "$CLIENTS" "$SEFL_PORT" "${extra[@]}"
    done
    sefl_wait_exit "$SEFL_SERVER_PID" 7200 || { tail -n 5 "$dir/server.log"; return 1; }
    for pid in "${SEFL_CLIENT_PIDS[@]}"; do sefl_wait_exit "$pid" 60 || return 1; done
    SEFL_SERVER_PID=
    SEFL_CLIENT_PIDS=()
    echo "run --private $private: $(echo "$(date +%s.%N) - $start" | bc) s in all"
}

echo "fl_compare: $CLIENTS sefl-client processes, pat:2, $ROUNDS rounds, epochs $EPOCHS," \
     "batch $BATCH, lr $LR, max-samples $MAX_SAMPLES, $(nproc) cores; files in $OUT"
run se || exit 1
run none || exit 1

sqlite3 -readonly "$OUT/se/server.db" <<SQL
ATTACH '$OUT/none/server.db' AS n;
.mode column
.headers on
SELECT s.client, s.examples AS test_examples,
       printf('%.4f', s.accuracy) AS acc_private_se, printf('%.4f', x.accuracy) AS acc_private_none
FROM eval_reports s JOIN n.eval_reports x ON x.client = s.client AND x.round = s.round
WHERE s.round = $ROUNDS ORDER BY s.client;
SELECT 'weighted' AS summary,
       printf('%.4f', sum(s.accuracy * s.examples) / sum(s.examples)) AS acc_private_se,
       printf('%.4f', sum(x.accuracy * x.examples) / sum(x.examples)) AS acc_private_none
FROM eval_reports s JOIN n.eval_reports x ON x.client = s.client AND x.round = s.round
WHERE s.round = $ROUNDS
UNION ALL
SELECT 'mean', printf('%.4f', avg(s.accuracy)), printf('%.4f', avg(x.accuracy))
FROM eval_reports s JOIN n.eval_reports x ON x.client = s.client AND x.round = s.round
WHERE s.round = $ROUNDS;
SELECT r.round, r.clients, r.examples,
       printf('%.2f', r.seconds) AS se_seconds, printf('%.3f', r.coord_seconds) AS se_coord_s,
       printf('%.1f%%', 100 * r.coord_seconds / r.seconds) AS se_coord_pct,
       printf('%.2f', x.seconds) AS none_seconds, printf('%.3f', x.coord_seconds) AS none_coord_s,
       printf('%.1f%%', 100 * x.coord_seconds / x.seconds) AS none_coord_pct
FROM rounds r JOIN n.rounds x ON x.round = r.round ORDER BY r.round;
SELECT 'total' AS rounds, printf('%.2f', sum(r.seconds)) AS se_seconds,
       printf('%.3f', sum(r.coord_seconds)) AS se_coord_s,
       printf('%.2f', sum(x.seconds)) AS none_seconds, printf('%.3f', sum(x.coord_seconds)) AS none_coord_s
FROM rounds r JOIN n.rounds x ON x.round = r.round;
SQL

# The CPU side of coord_seconds is in the coordinator's log lines only.
echo
echo "coordinator CPU seconds per round (from the logs): --private se | --private none"
paste <(sed -n 's/.*INFO round \([0-9]*\) committed:.*coord_seconds \([0-9.]*\) (cpu \([0-9.]*\)).*/\1 \2 \3/p' "$OUT/se/server.log") \
      <(sed -n 's/.*INFO round \([0-9]*\) committed:.*coord_seconds \([0-9.]*\) (cpu \([0-9.]*\)).*/\2 \3/p' "$OUT/none/server.log") |
    awk 'BEGIN { printf "%-6s %12s %10s %12s %10s\n", "round", "se_wall_s", "se_cpu_s", "none_wall_s", "none_cpu_s" }
         { printf "%-6s %12s %10s %12s %10s\n", $1, $2, $3, $4, $5 }'
