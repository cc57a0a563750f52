#!/usr/bin/env bash
# http_cost: what the coordinator's --http endpoint costs the rounds. The
# same small federated run (CLIENTS simulated clients in one sefl-sim,
# ROUNDS rounds, MAX_SAMPLES samples each, no evaluation until the last
# round) three ways, REPS times in turn:
#   off      no --http
#   idle     --http, nobody asking
#   scraped  --http, a scraper GETting /metrics SCRAPE_HZ times a second (a
#            new connection each time, as Prometheus does) for the whole run
# Rounds per second come from server.db: committed rounds / the sum of their
# selection-to-commit seconds. Prints `name value` lines: each run's
# rounds/s, the medians per way, the ratios scraped/idle and scraped/off,
# the scrapes made and their median latency, and the coordinator's CPU
# seconds (GNU time) per way. On a shared machine the run-to-run noise is
# larger than the endpoint's cost; compare the ratio with the spread of the
# runs of one way.
#
#   bash tests/bench/http_cost.sh       (not part of make check; ~2 min)
# Environment: CLIENTS (4), ROUNDS (8), MAX_SAMPLES (300), REPS (3),
# SCRAPE_HZ (10), OUT (a temp dir, kept).
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
sefl_need_fmnist >/dev/null || { echo "http_cost: Fashion-MNIST not installed"; exit 1; }
CLIENTS=${CLIENTS:-4}
ROUNDS=${ROUNDS:-8}
MAX_SAMPLES=${MAX_SAMPLES:-300}
REPS=${REPS:-3}
SCRAPE_HZ=${SCRAPE_HZ:-10}
OUT=${OUT:-$(mktemp -d /tmp/http_cost.XXXXXX)}
SCRAPER_PID=
trap 'sefl_stop "${SEFL_SERVER_PID:-}" "${SEFL_SIM_PID:-}" "$SCRAPER_PID"' EXIT
[ -d "$OUT/certs" ] || "$BIN/sefl-certs" init --dir "$OUT/certs" --clients "$CLIENTS" >/dev/null 2>&1

# The scraper: GET /metrics every 1/HZ s until killed or the coordinator is
# gone (it exits after its last round); then prints the number of scrapes
# and their median latency in ms.
SCRAPER='
import http.client, os, signal, statistics, sys, time
port, hz = int(sys.argv[1]), float(sys.argv[2])
lat = []
def done(*_):
    # Once: the coordinator may be gone and the SIGTERM on its way.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("scrapes", len(lat))
    print("scrape_ms_median", round(statistics.median(lat) * 1e3, 3) if lat else 0, flush=True)
    os._exit(0)
signal.signal(signal.SIGTERM, done)
nxt = time.monotonic()
while True:
    t = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", "/metrics")
        r = c.getresponse()
        body = r.read()
    except (OSError, http.client.HTTPException):  # the coordinator is gone
        done()
    c.close()
    if r.status != 200 or b"sefl_rounds_committed_total" not in body:
        print("bad scrape", r.status, file=sys.stderr)
        sys.exit(1)
    lat.append(time.monotonic() - t)
    nxt += 1 / hz
    time.sleep(max(0, nxt - time.monotonic()))
'

# run WAY REP: one run; prints its `name value` lines.
run() {
    local way=$1 rep=$2 dir=$OUT/$1-$2 http=() port hport
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$way" != off ] && http=(--http 127.0.0.1:0)
    /usr/bin/time -f 'cpu %U %S' -o "$dir/time.txt" "$BIN/sefl-server" --listen 127.0.0.1:0 \
        --certs "$OUT/certs" --db "$dir/server.db" "${http[@]}" --rounds "$ROUNDS" \
        --clients-per-round "$CLIENTS" --min-clients "$CLIENTS" --over-select 1 \
        --round-timeout 600 --eval-every 0 --batch 32 --heartbeat 30 2>"$dir/server.log" &
    SEFL_SERVER_PID=$!
    port=$(sefl_wait_port "$dir/server.log" "$SEFL_SERVER_PID" 30) || { tail -n 5 "$dir/server.log"; return 1; }
    if [ "$way" = scraped ]; then
        hport=$(sed -n 's/.*http: serving .* on port \([0-9]*\)$/\1/p' "$dir/server.log")
        python3 -c "$SCRAPER" "$hport" "$SCRAPE_HZ" >"$dir/scraper.txt" 2>"$dir/scraper.err" &
        SCRAPER_PID=$!
    fi
    "$BIN/sefl-sim" --server "127.0.0.1:$port" --certs "$OUT/certs" --clients "$CLIENTS" \
        --partition pat:2 --seed 1 --state "$dir/clients" --max-samples "$MAX_SAMPLES" \
        >"$dir/sim.log" 2>&1 &
    SEFL_SIM_PID=$!
    sefl_wait_exit "$SEFL_SERVER_PID" 1200 || { tail -n 5 "$dir/server.log"; return 1; }
    SEFL_SERVER_PID=
    if [ -n "$SCRAPER_PID" ]; then
        kill -TERM "$SCRAPER_PID" 2>/dev/null
        wait "$SCRAPER_PID" || { echo "http_cost: the scraper failed: $(tail -n 1 "$dir/scraper.err")"; return 1; }
        SCRAPER_PID=
        sed "s/^/http_cost_${way}_${rep}_/; s/ / /" "$dir/scraper.txt"
    fi
    sefl_wait_exit "$SEFL_SIM_PID" 60 || return 1
    SEFL_SIM_PID=
    echo "http_cost_${way}_${rep}_rounds_per_s $(sefl_sql "$dir/server.db" \
        "SELECT printf('%.4f', count(*) / sum(seconds)) FROM rounds")"
    echo "http_cost_${way}_${rep}_server_cpu_s $(awk '{ printf "%.2f", $2 + $3 }' "$dir/time.txt")"
}

echo "# http_cost: $CLIENTS clients, $ROUNDS rounds, max-samples $MAX_SAMPLES, scraper ${SCRAPE_HZ} Hz, $(nproc) cores; files in $OUT"
for ((rep = 1; rep <= REPS; rep++)); do
    for way in off idle scraped; do run "$way" "$rep" || exit 1; done
done | tee "$OUT/figures.txt"
median() { grep -E "^http_cost_$1_[0-9]+_$2 " "$OUT/figures.txt" | awk '{ print $2 }' | sort -g |
    awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for way in off idle scraped; do
    echo "http_cost_${way}_rounds_per_s_median $(median "$way" rounds_per_s)"
    echo "http_cost_${way}_server_cpu_s_median $(median "$way" server_cpu_s)"
done
off=$(median off rounds_per_s) idle=$(median idle rounds_per_s) scraped=$(median scraped rounds_per_s)
echo "http_cost_ratio_scraped_vs_idle $(awk -v a="$scraped" -v b="$idle" 'BEGIN { printf "%.4f", a / b }')"
echo "http_cost_ratio_scraped_vs_off $(awk -v a="$scraped" -v b="$off" 'BEGIN { printf "%.4f", a / b }')"
echo "http_cost_scrape_ms_median $(median scraped scrape_ms_median)"
