#!/usr/bin/env bash
# preauth: peers that never authenticate cannot keep honest clients out.
# 1. 40 idle TCP connections from 127.0.0.1 against --preauth-per-addr 10:
#    the 11th is refused at once with a WARN line, and an honest client
#    connecting from 127.0.0.2 meanwhile completes a round.
# 2. 30 connections at once against --handshakes-per-sec 2
#    --handshake-burst 5: those over the rate are refused with a WARN line.
# 3. The coordinator under `ulimit -n 64` raises its limit to the hard limit
#    (64), logs it, and keeps 47 connections at most: 100 idle connections
#    get a WARN with the count; once they close, accepting resumes (logged)
#    and an honest client completes a round.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh

sefl_fl_begin preauth 1 20 '*.log'
sefl_need_py "$T" || exit 0

# flood PORT N HOLD_S: N TCP connections from 127.0.0.1 that send nothing,
# held HOLD_S seconds; prints how many the server closed before that.
flood() {
    "$SEFL_PY" - "$@" <<'PY'
import socket, sys, time
port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    socks.append(s)
time.sleep(hold)
closed = 0
for s in socks:
    s.setblocking(False)
    try:
        closed += s.recv(1) == b""
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print(closed)
PY
}

# 1. per-address handshakes in progress
sefl_start_server "$T/server1.log" 127.0.0.1:0 --certs "$T/certs" --db "$T/s1.db" \
    --rounds 1 --clients-per-round 1 --min-clients 1 --eval-every 0 --heartbeat 2 \
    --preauth-per-addr 10 || exit 1
flood "$SEFL_PORT" 40 6 >"$T/flood1.out" &
flood_pid=$!
sleep 1
sefl_start_py "$T" client-0000 "$SEFL_PORT" --bind 127.0.0.2
sefl_wait_exit "$SEFL_SERVER_PID" 30
sefl_check "with 40 idle connections from 127.0.0.1 held, a client from 127.0.0.2 completes the round" [ $? = 0 ]
wait "$flood_pid"
sefl_check "30 of the 40 idle connections were closed at once ($(cat "$T/flood1.out"))" \
    [ "$(cat "$T/flood1.out")" -ge 30 ]
sefl_check "the refusal is a WARN line with the limit and the count" \
    grep -qE 'WARN refused a connection from 127\.0\.0\.1:[0-9]+: 10 of its connections are still in the TLS handshake \(limit 10 per address; refused so far: 1\)' "$T/server1.log"

# 2. handshakes per second per address
sefl_start_server "$T/server2.log" 127.0.0.1:0 --certs "$T/certs" --db "$T/s2.db" \
    --rounds 1 --clients-per-round 1 --min-clients 1 --eval-every 0 --heartbeat 2 \
    --handshakes-per-sec 2 --handshake-burst 5 --preauth-per-addr 0 || exit 1
flood "$SEFL_PORT" 30 2 >"$T/flood2.out"
sefl_check "30 connections at once: all but the burst and the rate's refused ($(cat "$T/flood2.out"))" \
    [ "$(cat "$T/flood2.out")" -ge 20 ]
sefl_check "the refusal names the rate" \
    grep -qE 'WARN refused a connection from 127\.0\.0\.1:[0-9]+: over 2 handshakes per second per address \(burst 5; refused so far: 1\)' "$T/server2.log"
sefl_stop "$SEFL_SERVER_PID"

# 3. descriptors
(ulimit -n 64 && exec "$BIN/sefl-server" --listen 127.0.0.1:0 --certs "$T/certs" --db "$T/s3.db" \
    --rounds 1 --clients-per-round 1 --min-clients 1 --eval-every 0 --heartbeat 2 \
    --preauth-per-addr 0 --handshakes-per-sec 0) 2>"$T/server3.log" &
SEFL_SERVER_PID=$!
SEFL_PORT=$(sefl_wait_port "$T/server3.log" "$SEFL_SERVER_PID" 20) || exit 1
sefl_check "the open-files limit and the connection budget are logged" \
    grep -qE 'open files limit 64 \(was 64, hard limit 64\): at most 47 connections at once' "$T/server3.log"
flood "$SEFL_PORT" 100 3 >"$T/flood3.out"
sefl_check "100 idle connections: those over the budget closed at once ($(cat "$T/flood3.out"))" \
    [ "$(cat "$T/flood3.out")" -ge 50 ]
sefl_check "running out is a WARN with the count" \
    grep -qE 'WARN connections at the descriptor budget \(47 open, limit 47\): refusing new connections \(refused so far: 1\)' "$T/server3.log"
sefl_start_py "$T" client-0000 "$SEFL_PORT"
sefl_wait_exit "$SEFL_SERVER_PID" 30
sefl_check "once they closed, a client completes the round" [ $? = 0 ]
sefl_check "accepting resumed, logged with the refusals" \
    grep -qE 'descriptors available again: accepting \([0-9]+ open, [0-9]+ refused while full\)' "$T/server3.log"
sefl_summary
