#!/usr/bin/env bash
# attacks: issue 10's six attacks replayed against the coordinator with its
# defences. Four honest simulated clients (one sefl-sim) run ATTACK_ROUNDS
# rounds (K = 4, min 3, over-selection 1.25) without an attacker, then once
# per attack with one attacker beside them (py_client.py, a valid
# certificate, written from proto/PROTOCOL.md):
#   report   an EvalReport of 2^32-1 examples and accuracy 1.0
#   scale    an update equal to the global model times 1e6
#   declare  1,000,000 train examples declared in Hello and in its updates
#   stall    stops reading once it holds a TrainTask
#   slow     sends its update one byte every 0.5 s
#   fds      idle TCP connections from 127.0.0.2 kept open against a
#            coordinator under `ulimit -n 128` (--preauth-per-addr 32)
# For each it prints the coordinator's log line about the attacker and
# `attack_NAME_rate_ratio R`: committed rounds per second with the attacker
# over the same with an honest fifth client in its place (py_client.py
# without --attack: the same extra process, connection and CPU), and
# `attack_NAME_rate_ratio_alone R` against the four honest clients alone.
# 1.0 is no slower. On a shared 2-core machine single runs vary by about
# 10-20%. Prints `name value` lines; asserts nothing (a benchmark).
# About 4 minutes.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
sefl_need_fmnist || exit 1

ROUNDS=${ATTACK_ROUNDS:-8}
T=$(mktemp -d /tmp/attacks.XXXXXX)
SERVER_PID= SIM_PID= ATTACK_PID= FLOOD_PID=
cleanup() {
    sefl_stop "$SERVER_PID" "$SIM_PID" "$ATTACK_PID" "$FLOOD_PID"
    [ -n "${ATTACK_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
"$BIN/sefl-certs" init --dir "$T/certs" --clients 5 >/dev/null 2>&1 || exit 1
sefl_need_py "$T" >/dev/null || exit 1

# run NAME: one run; prints the wall seconds of the coordinator (start to
# exit after ROUNDS rounds).
run() {
    local name=$1 d=$T/$1 nofile=1024 t0 t1
    mkdir -p "$d"
    [ "$name" = fds ] && nofile=128
    t0=$(date +%s.%N)
    (ulimit -n "$nofile" && exec "$BIN/sefl-server" --listen 127.0.0.1:0 --certs "$T/certs" \
        --db "$d/server.db" --rounds "$ROUNDS" --clients-per-round 4 --min-clients 3 \
        --over-select 1.25 --eval-every "$ROUNDS" --round-timeout 60 --heartbeat 1 \
        --lr 0.05 --batch 10 --preauth-per-addr 32) 2>"$d/server.log" &
    SERVER_PID=$!
    SEFL_PORT=$(sefl_wait_port "$d/server.log" "$SERVER_PID" 20) || return 1
    case $name in
    none) ;;
    honest)
        "$SEFL_PY" tests/integration/py_client.py --server "127.0.0.1:$SEFL_PORT" \
            --certs "$T/certs" --name client-0004 --pb-dir "$T" >"$d/attacker.log" 2>&1 &
        ATTACK_PID=$!
        ;;
    fds)
        "$SEFL_PY" - "$SEFL_PORT" >"$d/flood.log" 2>&1 <<'PY' &
import socket, sys, time
port, socks = int(sys.argv[1]), []
while True:
    socks = [s for s in socks if s.fileno() >= 0]
    while len(socks) < 200:
        try:
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.settimeout(1)
            s.connect(("127.0.0.1", port))
            socks.append(s)
        except OSError:
            break
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                s.close()
        except BlockingIOError:
            pass
        except OSError:
            s.close()
    time.sleep(0.2)
PY
        FLOOD_PID=$!
        ;;
    *)
        "$SEFL_PY" tests/integration/py_client.py --server "127.0.0.1:$SEFL_PORT" \
            --certs "$T/certs" --name client-0004 --pb-dir "$T" --attack "$name" \
            >"$d/attacker.log" 2>&1 &
        ATTACK_PID=$!
        ;;
    esac
    "$BIN/sefl-sim" --server "127.0.0.1:$SEFL_PORT" --certs "$T/certs" --clients 4 \
        --partition pat:2 --seed 1 --state "$d/clients" --threads 1 --max-samples 200 \
        2>"$d/sim.log" &
    SIM_PID=$!
    sefl_wait_exit "$SERVER_PID" 300 >/dev/null
    t1=$(date +%s.%N)
    sefl_wait_exit "$SIM_PID" 30 >/dev/null
    sefl_stop "$ATTACK_PID" "$FLOOD_PID"
    ATTACK_PID= FLOOD_PID=
    awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f", a - b }'
}

# The coordinator's line about each attack.
declare -A pattern=(
    [report]='refused eval report from client-0004'
    [scale]='candidate model refused'
    [declare]='client-0004 .*weight 1000000 capped'
    [stall]='client client-0004 penalised.*silent'
    [slow]='client client-0004 penalised.*silent'
    [fds]='refused a connection from 127\.0\.0\.2|descriptor budget'
)

alone=$(run none) || exit 1
echo "attack_none_seconds $alone"
echo "attack_none_rounds_per_second $(awk -v s="$alone" -v r="$ROUNDS" 'BEGIN { printf "%.4f", r / s }')"
base=$(run honest) || exit 1
echo "attack_honest5_seconds $base"
echo "attack_honest5_rounds_per_second $(awk -v s="$base" -v r="$ROUNDS" 'BEGIN { printf "%.4f", r / s }')"
for a in report scale declare stall slow fds; do
    s=$(run "$a") || { echo "attack_${a}_error run failed"; continue; }
    committed=$(sefl_sql "$T/$a/server.db" "SELECT count(*) FROM rounds")
    line=$(grep -E "${pattern[$a]}" "$T/$a/server.log" | head -n 1 | cut -d' ' -f2-)
    echo "attack $a: ${line:-(no line)}"
    echo "attack_${a}_seconds $s"
    echo "attack_${a}_rounds_committed $committed"
    echo "attack_${a}_rate_ratio $(awk -v b="$base" -v s="$s" -v c="$committed" -v r="$ROUNDS" \
        'BEGIN { printf "%.3f", (c / s) / (r / b) }')"
    echo "attack_${a}_rate_ratio_alone $(awk -v b="$alone" -v s="$s" -v c="$committed" -v r="$ROUNDS" \
        'BEGIN { printf "%.3f", (c / s) / (r / b) }')"
done
