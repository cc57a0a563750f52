#!/usr/bin/env bash
# prometheus: a real Prometheus server (Debian's prometheus, started here on
# a loopback port with a generated config and a temporary storage dir,
# scraping every 500 ms) monitors a coordinator started with --http through
# a federated run of three sefl-sim clients. Checks that
#   - /healthz and /readyz answer 200, `promtool check metrics` prints
#     nothing on a scrape taken mid-run, and `sefl-server status` prints the
#     table and the JSON (whose run id is server.db's);
#   - once the clients are stopped (the committed count then stays put),
#     Prometheus' HTTP API answers sefl_rounds_committed_total with exactly
#     the number of rounds committed in server.db, and up{job="sefl"} 1;
#   - a plain-TCP peer that is not TLS is counted as
#     sefl_tls_handshake_failures_total{reason="protocol"} and logged as WARN
#     with its address; a flood of 30 is all counted while the WARN lines
#     stay within the rate limit (the rest counted as suppressed);
#   - the endpoint refuses what it must: 404 for an unknown path, 405 for
#     POST, 431 for request headers over 8 KB, a request left unfinished is
#     closed after the 5 s timeout, a ninth connection from one address is
#     refused; `status` with nothing listening fails
#     with one line; a taken --http port stops a second coordinator before
#     it makes a database.
# /readyz's 503 (before the database is open) lasts microseconds between
# two calls of sefl-server's main and is not caught here.
# Skipped, saying so, when prometheus/promtool or Fashion-MNIST are missing.
# SEFL_KEEP=1 keeps the files and prints where: scrape.txt (a /metrics
# scrape taken after round 2), promtool.out, status.txt and status.json
# (`sefl-server status` then), the logs and Prometheus' config.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
for p in prometheus promtool curl; do
    if ! command -v "$p" >/dev/null; then
        echo "skipped: $p not installed (make deps installs prometheus and curl)"
        echo "0 passed, 0 failed"
        exit 0
    fi
done
sefl_need_fmnist || exit 0

PROM_PID=
sefl_fl_begin prometheus 3 20 '*.log'
trap 'sefl_stop "${SEFL_SIM_PID:-}" "$PROM_PID"; sefl_fl_cleanup' EXIT

# all CMD...: true when every argument string, run as a test, is true
# (sefl_check runs one command; this joins several conditions into one).
all() {
    local c
    for c in "$@"; do eval "$c" || return 1; done
}
# http_code URL [CURL ARGS...]: the status code curl gets (000: none).
http_code() {
    local url=$1
    shift
    curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" "$url"
}
# prom_value QUERY: the value of the first series of an instant query.
prom_value() {
    curl -s --max-time 5 "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' 2>/dev/null
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

sefl_start_server "$T/server.log" 127.0.0.1:0 --certs "$T/certs" --db "$T/server.db" \
    --http 127.0.0.1:0 --clients-per-round 3 --min-clients 3 --round-timeout 60 \
    --eval-every 2 --batch 32 --heartbeat 2 || exit 1
HTTP_PORT=$(sed -n 's/.*http: serving .* on port \([0-9]*\)$/\1/p' "$T/server.log")
H=http://127.0.0.1:$HTTP_PORT
sefl_check "the coordinator logs its --http port" [ -n "$HTTP_PORT" ]
sefl_check "/healthz 200" [ "$(http_code "$H/healthz")" = 200 ]
sefl_check "/readyz 200 once listening with the database open" [ "$(http_code "$H/readyz")" = 200 ]

PROM_PORT=$(free_port)
cat >"$T/prometheus.yml" <<YML
global:
  scrape_interval: 500ms
  scrape_timeout: 400ms
scrape_configs:
  - job_name: sefl
    static_configs:
      - targets: ['127.0.0.1:$HTTP_PORT']
YML
prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/prom-data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$T/prometheus.log" 2>&1 &
PROM_PID=$!

"$BIN/sefl-sim" --server "127.0.0.1:$SEFL_PORT" --certs "$T/certs" --clients 3 --partition pat:2 \
    --seed 1 --state "$T/clients" --max-samples 300 --backoff-min-ms 100 >"$T/sim.log" 2>&1 &
SEFL_SIM_PID=$!

# A peer that speaks no TLS: its handshake fails as "protocol".
exec 3<>"/dev/tcp/127.0.0.1/$SEFL_PORT" && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && exec 3>&-
sefl_wait_log "$T/server.log" 'WARN TLS handshake from 127\.0\.0\.1:[0-9]+ failed \(protocol\)' 10
sefl_check "a non-TLS peer: one WARN line with its address and reason" [ $? = 0 ]

sefl_wait_log "$T/server.log" 'INFO round 2 committed' 90
sefl_check "two rounds committed with the scraper running" [ $? = 0 ]
curl -s --max-time 5 "$H/metrics" >"$T/scrape.txt"
promtool check metrics <"$T/scrape.txt" >"$T/promtool.out" 2>&1
rc=$?
sefl_check "promtool check metrics: exit 0 and nothing printed" \
    all "[ $rc = 0 ]" '[ ! -s "$T/promtool.out" ]' 
sefl_check "the scrape has the required families" \
    [ "$(grep -cE '^# TYPE (sefl_rounds_committed_total|sefl_rounds_abandoned_total|sefl_round|sefl_round_duration_seconds|sefl_clients_connected|sefl_clients_selected|sefl_updates_accepted_total|sefl_updates_rejected_total|sefl_tls_handshake_failures_total|sefl_bytes_sent_total|sefl_bytes_received_total|sefl_eval_weighted_accuracy|process_cpu_seconds_total|process_resident_memory_bytes|process_open_fds|process_max_fds|process_start_time_seconds) ' "$T/scrape.txt")" = 17 ]
sefl_check "the scrape counts the non-TLS peer" \
    grep -qx 'sefl_tls_handshake_failures_total{reason="protocol"} 1' "$T/scrape.txt"
"$BIN/sefl-server" status --http "127.0.0.1:$HTTP_PORT" >"$T/status.txt" 2>&1
sefl_check "status: a table with phase, clients and settings" \
    all '[ "$(grep -cE "^(phase|clients +3 connected|settings +--arch cnn-se)" "$T/status.txt")" = 3 ]' \
        'grep -q -- " --rounds 0" "$T/status.txt"' 
"$BIN/sefl-server" status --http "127.0.0.1:$HTTP_PORT" --json >"$T/status.json" 2>&1
run_id=$(sefl_sql "$T/server.db" "SELECT value FROM meta WHERE key = 'run_id'")
sefl_check "status --json: JSON whose run_id is server.db's, 3 clients connected" \
    [ "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["run_id"], d["clients"]["connected"], d["settings"]["min-clients"])' "$T/status.json")" = "$run_id 3 3" ]

# Stopping the clients freezes the committed count: a round in progress is
# abandoned, none starts without 3 clients.
sefl_stop "$SEFL_SIM_PID"
SEFL_SIM_PID=
sefl_wait_log "$T/server.log" 'waiting for clients: 0 connected' 20
committed=$(sefl_sql "$T/server.db" "SELECT count(*) FROM rounds")
got=
for ((i = 0; i < 60; i++)); do
    got=$(prom_value sefl_rounds_committed_total)
    [ "$got" = "$committed" ] && break
    sleep 0.5
done
sefl_check "Prometheus API: sefl_rounds_committed_total = $committed, the rounds in server.db (got '$got')" \
    all '[ "$got" = "$committed" ]' '[ "$committed" -ge 2 ]' 
sefl_check "Prometheus API: up{job=\"sefl\"} = 1" [ "$(prom_value 'up{job="sefl"}')" = 1 ]

# A flood of 30 more: every one counted, the WARN lines capped at 10 per
# 10 s window, each dropped line counted as suppressed.
for ((i = 0; i < 30; i++)); do
    exec 3<>"/dev/tcp/127.0.0.1/$SEFL_PORT" && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && exec 3>&-
done
metric() { curl -s --max-time 5 "$H/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
for ((i = 0; i < 50; i++)); do
    [ "$(metric 'sefl_tls_handshake_failures_total{reason="protocol"}')" = 31 ] && break
    sleep 0.2
done
sleep 0.3   # one more refresh of the published figures
logged=$(grep -c 'WARN TLS handshake from .* failed (protocol)' "$T/server.log")
suppressed=$(metric sefl_tls_handshake_log_suppressed_total)
sefl_check "a flood of 30 non-TLS peers: 31 counted, $logged logged, $suppressed suppressed" \
    all '[ "$(metric '"'"'sefl_tls_handshake_failures_total{reason="protocol"}'"'"')" = 31 ]' \
        "[ $logged -le 20 ]" "[ $((logged + suppressed)) = 31 ]"

sefl_check "404 for an unknown path" [ "$(http_code "$H/nope")" = 404 ]
sefl_check "405 for POST" [ "$(http_code "$H/metrics" -X POST -d x=1)" = 405 ]
big=$(head -c 9000 /dev/zero | tr '\0' a)
sefl_check "431 for request headers over 8 KB" [ "$(http_code "$H/metrics" -H "X-Big: $big")" = 431 ]
sefl_check "a request under 8 KB is served" [ "$(http_code "$H/metrics" -H "X-Big: ${big:0:7000}")" = 200 ]
start=$SECONDS
timeout 15 bash -c "exec 3<>/dev/tcp/127.0.0.1/$HTTP_PORT; printf 'GET /metr' >&3; cat <&3 >/dev/null"
rc=$? took=$((SECONDS - start))
sefl_check "an unfinished request is closed by the timeout (5 s; took $took s)" \
    all "[ $rc = 0 ]" "[ $took -ge 4 ]" "[ $took -le 8 ]"

# Eight idle connections from this address fill its share; a ninth gets no
# answer; once they close, requests are served again.
per_ip=$(python3 - "$HTTP_PORT" <<'PY'
import http.client, socket, sys
port = int(sys.argv[1])
held = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
try:
    c.request("GET", "/healthz")
    ninth = c.getresponse().status
except (OSError, http.client.HTTPException):
    ninth = "refused"
print(ninth)
for s in held:
    s.close()
PY
)
sefl_check "a ninth connection from one address is refused (got '$per_ip')" [ "$per_ip" = refused ]
sefl_check "served again once those close" [ "$(http_code "$H/healthz")" = 200 ]

out=$("$BIN/sefl-server" status --http "127.0.0.1:$(free_port)" 2>&1)
rc=$?
sefl_check "status with nothing listening: exit 1, one line" \
    all "[ $rc = 1 ]" '[ "$(echo "$out" | wc -l)" = 1 ]' '[[ $out == *"no coordinator answers"* ]]' 
out=$("$BIN/sefl-server" --listen 127.0.0.1:0 --certs "$T/certs" --db "$T/second.db" \
    --http "127.0.0.1:$HTTP_PORT" 2>&1)
rc=$?
sefl_check "a taken --http port: exit 1 naming it, no database made" \
    all "[ $rc = 1 ]" '[[ $out == *"--http 127.0.0.1:$HTTP_PORT: cannot listen: Address already in use"* ]]' '[ ! -e "$T/second.db" ]' 

kill -TERM "$SEFL_SERVER_PID"
sefl_wait_exit "$SEFL_SERVER_PID" 10
sefl_check "sefl-server exits 0 on SIGTERM with --http" [ $? = 0 ]
SEFL_SERVER_PID=
[ -z "${SEFL_KEEP:-}" ] || echo "files kept in $T"
sefl_summary
