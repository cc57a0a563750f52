#!/usr/bin/env bash
# sim_basic: sefl-sim and sefl-client against a real sefl-server on
# loopback with real certificates. Checks that
#   - 6 simulated clients (pat:2) take part in every round of a 2-round run,
#     send EvalReports, and keep private SE weights in their own files
#     (different between clients, tagged with the last round);
#   - two shards (--shard 0/2 and 1/2) together run every client exactly
#     once, each client's private file in one shard only;
#   - --local-only writes an EvalReport per client and round into a
#     server.db-shaped file of kind 'local';
#   - sefl-client, with a partition share and with its own IDX files,
#     finishes a run and exits 0; a coordinator restart (SIGTERM, Bye
#     "shutdown") is survived by reconnecting;
#   - a foreign file where a private store should be stops sefl-sim with a
#     clear error and is left untouched; bad arguments exit 2 with one line.
set -u
cd "$(dirname "$0")/../.."
. tests/lib.sh

pass=0
fail=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
finish() {
    [ "$fail" = 0 ] || echo "sim_basic: logs kept in ${W:-}"
    echo "$pass passed, $fail failed"
    [ "$fail" = 0 ]
    exit $?
}

for b in sefl-certs sefl-server sefl-sim sefl-client; do
    if [ ! -x "$BIN/$b" ]; then
        echo "FAIL: $BIN/$b is not built"
        echo "0 passed, 1 failed"
        exit 1
    fi
done
if [ ! -r /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
    echo "sim_basic: skipped: Fashion-MNIST not installed (make deps installs dataset-fashion-mnist)"
    echo "0 passed, 0 failed (skipped: no Fashion-MNIST)"
    exit 0
fi

N=6
ROUNDS=2
SAMPLES=40
W=$(mktemp -d /tmp/sefl-sim-basic.XXXXXX)
PIDS=()
cleanup() {
    sefl_stop "${PIDS[@]}" "${SEFL_SERVER_PID:-}" "${SEFL_SIM_PID:-}"
    # A failure keeps the logs and databases for a look.
    [ "$fail" = 0 ] && rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

"$BIN/sefl-certs" init --dir "$W/certs" --clients "$N" >"$W/certs.log" 2>&1 ||
    { cat "$W/certs.log"; bad "sefl-certs init"; finish; }
SERVER_ARGS="--rounds $ROUNDS --clients-per-round $N --min-clients $N --over-select 1 \
--round-timeout 40 --eval-every 1 --lr 0.005 --seed 3 --heartbeat 1"
q() { sqlite3 "$1" "$2" 2>/dev/null; }
names() { for ((c = $1; c < $2; c++)); do printf 'client-%04d\n' "$c"; done; }

# 1. One sefl-sim with all clients.
if sefl_run_federated "$W/one" "$W/certs" 60 "$SERVER_ARGS" \
    "--clients $N --partition pat:2 --seed 5 --max-samples $SAMPLES --threads 2"; then
    ok "coordinator and sefl-sim ($N clients, $ROUNDS rounds) exited 0"
else
    bad "federated run with one sefl-sim"
fi
DB=$W/one/server.db
got=$(q "$DB" "SELECT name FROM clients WHERE rounds = $ROUNDS ORDER BY name")
check "every client took part in all $ROUNDS rounds" [ "$got" = "$(names 0 $N)" ]
got=$(q "$DB" "SELECT COUNT(DISTINCT client) FROM eval_reports WHERE round = $ROUNDS")
check "every client sent an EvalReport for round $ROUNDS" [ "$got" = "$N" ]
se=$(q "$W/one/clients/client-0000.db" "SELECT COUNT(*) FROM tensors WHERE name LIKE 'se%' AND round = $ROUNDS")
other=$(q "$W/one/clients/client-0000.db" "SELECT COUNT(*) FROM tensors WHERE name NOT LIKE 'se%'")
check "a client's file holds its SE tensors of round $ROUNDS ($se) and nothing else ($other)" \
    [ "${se:-0}" -gt 0 -a "${other:-1}" = 0 ]
sums=$(for ((c = 0; c < N; c++)); do
    q "$W/one/clients/$(printf client-%04d $c).db" "SELECT group_concat(checksum) FROM tensors"
done | sort -u | wc -l)
check "private weights differ between the $N clients" [ "$sums" = "$N" ]
hist=$(q "$W/one/clients/client-0003.db" "SELECT COUNT(*) FROM history WHERE kind = 'train'")
check "a client's history holds its $ROUNDS trainings" [ "$hist" = "$ROUNDS" ]
grep -q "round $ROUNDS: $N of $N clients trained" "$W/one/sim.log"
check "sefl-sim logged one line per round" [ $? = 0 ]

# 2. Two shards of the same partition.
mkdir -p "$W/two"
"$BIN/sefl-server" --listen 127.0.0.1:0 --certs "$W/certs" --db "$W/two/server.db" $SERVER_ARGS \
    >"$W/two/server.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
if PORT=$(sefl_wait_port "$W/two/server.log" "$SERVER" 20); then
    for i in 0 1; do
        "$BIN/sefl-sim" --server "127.0.0.1:$PORT" --certs "$W/certs" --clients "$N" --partition pat:2 \
            --seed 5 --state "$W/two/shard$i" --shard "$i/2" --max-samples "$SAMPLES" --threads 1 \
            >"$W/two/shard$i.log" 2>&1 &
        PIDS+=($!)
    done
    check "coordinator with two shards exited 0" sefl_wait_exit "$SERVER" 60
    check "shard 0/2 exited 0" sefl_wait_exit "${PIDS[1]}" 20
    check "shard 1/2 exited 0" sefl_wait_exit "${PIDS[2]}" 20
else
    bad "coordinator for the shard run did not start"
fi
got=$(q "$W/two/server.db" "SELECT name FROM clients WHERE rounds = $ROUNDS ORDER BY name")
check "two shards: every client took part in all $ROUNDS rounds" [ "$got" = "$(names 0 $N)" ]
a=$(cd "$W/two/shard0" && ls ./*.db | sort)
b=$(cd "$W/two/shard1" && ls ./*.db | sort)
both=$(comm -12 <(echo "$a") <(echo "$b") | grep -c . || true)
check "shard 0 ran clients 0-2, shard 1 clients 3-5, none both" \
    [ "$(echo $a)" = "./client-0000.db ./client-0001.db ./client-0002.db" -a \
      "$(echo $b)" = "./client-0003.db ./client-0004.db ./client-0005.db" -a "$both" = 0 ]

# 3. The local-only baseline.
if "$BIN/sefl-sim" --local-only --clients "$N" --partition pat:2 --seed 5 --state "$W/local" \
    --db "$W/local.db" --rounds 2 --epochs 1 --batch 10 --lr 0.005 --max-samples "$SAMPLES" \
    >"$W/local.log" 2>&1; then
    ok "sefl-sim --local-only exited 0"
else
    tail -n 5 "$W/local.log"
    bad "sefl-sim --local-only"
fi
got=$(q "$W/local.db" "SELECT client FROM eval_reports WHERE round = 2 ORDER BY client")
check "local-only: an EvalReport per client" [ "$got" = "$(names 0 $N)" ]
got=$(q "$W/local.db" "SELECT value FROM meta WHERE key = 'kind'")
check "local-only: meta kind is 'local'" [ "$got" = local ]
"$BIN/sefl-sim" --local-only --clients "$N" --partition pat:2 --seed 5 --state "$W/local" \
    --db "$W/local.db" --rounds 3 --max-samples "$SAMPLES" >"$W/local3.log" 2>&1
got=$(q "$W/local.db" "SELECT COUNT(*) FROM eval_reports WHERE round = 3"):$(q \
    "$W/local/client-0002.local.db" "SELECT group_concat(round) FROM history WHERE kind = 'train'")
check "local-only: --rounds 3 on the same state goes on with round 3 only ($got)" [ "$got" = "$N:1,2,3" ]

# 4. sefl-client: one with a partition share, one with its own IDX files;
# the coordinator is stopped after round 1 (Bye "shutdown") and restarted
# on the same port and database: both clients reconnect and finish.
F=/usr/share/datasets/fashion-mnist
mkdir -p "$W/cl"
run_server() {
    "$BIN/sefl-server" --listen "127.0.0.1:$1" --certs "$W/certs" --db "$W/cl/server.db" \
        --rounds 2 --clients-per-round 2 --min-clients 2 --over-select 1 --round-timeout 40 \
        --eval-every 1 --lr 0.005 --seed 3 >>"$W/cl/server.log" 2>&1 &
    SERVER=$!
    PIDS+=("$SERVER")
}
run_server 0
if PORT=$(sefl_wait_port "$W/cl/server.log" "$SERVER" 20); then
    "$BIN/sefl-client" --server "127.0.0.1:$PORT" --certs "$W/certs" --name client-0000 \
        --db "$W/cl/c0.db" --partition pat:2 --num-clients "$N" --index 0 --seed 5 \
        --max-samples "$SAMPLES" --backoff-min-ms 50 --backoff-max-ms 400 >"$W/cl/c0.log" 2>&1 &
    C0=$!
    "$BIN/sefl-client" --server "127.0.0.1:$PORT" --certs "$W/certs" --name client-0001 \
        --db "$W/cl/c1.db" --train-images "$F/t10k-images-idx3-ubyte.gz" \
        --train-labels "$F/t10k-labels-idx1-ubyte.gz" --test-images "$F/t10k-images-idx3-ubyte.gz" \
        --test-labels "$F/t10k-labels-idx1-ubyte.gz" --max-samples "$SAMPLES" \
        --backoff-min-ms 50 --backoff-max-ms 400 >"$W/cl/c1.log" 2>&1 &
    C1=$!
    PIDS+=("$C0" "$C1")
    for ((i = 0; i < 300; i++)); do
        grep -q "round 1 committed" "$W/cl/server.log" && break
        sleep 0.1
    done
    kill -TERM "$SERVER"
    check "coordinator stopped by SIGTERM exits 0" sefl_wait_exit "$SERVER" 20
    run_server "$PORT"
    check "restarted coordinator finished its rounds" sefl_wait_exit "$SERVER" 60
    check "sefl-client (partition share) exited 0" sefl_wait_exit "$C0" 20
    check "sefl-client (own IDX files) exited 0" sefl_wait_exit "$C1" 20
    n=$(grep -c "reconnecting in" "$W/cl/c0.log")
    check "sefl-client reconnected after the restart" [ "$n" -ge 1 ]
    got=$(q "$W/cl/server.db" "SELECT COUNT(*) FROM clients WHERE rounds = 2")
    check "both sefl-clients took part in both rounds" [ "$got" = 2 ]
else
    bad "coordinator for the sefl-client run did not start"
fi

# 5. Refusals: a foreign private store, bad arguments.
mkdir -p "$W/foreign"
head -c 4096 /dev/urandom >"$W/foreign/client-0000.db"
before=$(md5sum <"$W/foreign/client-0000.db")
"$BIN/sefl-sim" --server 127.0.0.1:1 --certs "$W/certs" --clients 2 --partition iid --seed 1 \
    --state "$W/foreign" >"$W/foreign.log" 2>&1
st=$?
check "sefl-sim refuses a foreign private store (exit $st)" [ "$st" != 0 ]
check "...with a clear line" grep -q "client-0000.db: not a SQLite database" "$W/foreign.log"
check "...and leaves the file untouched" [ "$(md5sum <"$W/foreign/client-0000.db")" = "$before" ]
"$BIN/sefl-sim" --clients 0 --partition iid --seed 1 --state "$W/x" >"$W/bad.log" 2>&1
st=$?
check "bad arguments: exit 2 with one line" [ "$st" = 2 -a "$(wc -l <"$W/bad.log")" = 1 ]
"$BIN/sefl-client" --server 127.0.0.1:1 >"$W/bad.log" 2>&1
st=$?
check "sefl-client bad arguments: exit 2 with one line" [ "$st" = 2 -a "$(wc -l <"$W/bad.log")" = 1 ]
check "--help exits 0" "$BIN/sefl-sim" --help >/dev/null
finish
