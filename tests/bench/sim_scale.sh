#!/usr/bin/env bash
# sim_scale: what the system costs on top of training, with many simulated
# clients on one machine. Runs a coordinator and one sefl-sim with CLIENTS
# clients (default 200, pat:2, all selected each round, ROUNDS rounds of one
# local epoch with batch 10, one evaluation round after the last), records
# the peak RSS of both processes (VmHWM from /proc, sampled every 0.2 s while
# they run), then runs the single-thread trainer benchmark
# `sefl-bench train --batch 10 --samples 6000`, and prints `name value` lines:
#   sim_peak_rss_mib, server_peak_rss_mib   peak resident memory
#   sim_peak_kib_per_client,                the same divided by the clients:
#   server_peak_kib_per_client              what one more client costs, at most
#   sim_run_rss_max_mib                     sefl-sim's largest sampled VmRSS once
#                                           the dataset is loaded and partitioned
#                                           (the peak above is the loading's)
#   sim_idle_kib_per_client,                VmRSS when round 1 starts (every
#   server_idle_kib_per_client              client connected, none busy) over
#                                           the clients: what an idle client
#                                           costs, the fixed part included
#   sim_large_frames, sim_inflight_peak,    sefl-sim's bound on large frames
#   sim_inflight_waits                      (--max-inflight-frames, INFLIGHT):
#                                           how many came, most at once, waits
#   sim_train_samples, sim_seconds          samples trained (examples x epochs)
#                                           and sefl-sim's wall time, connect to exit
#   sim_samples_per_s                       the two divided
#   round_seconds_mean, coord_seconds_mean  from server.db: wall time of a round,
#                                           and the coordinator's own part of it
#   bench_train_samples_per_s               the trainer alone, one thread
#   system_efficiency                       sim_samples_per_s / (threads x bench)
#   sim_cpu_s, server_cpu_s                 CPU time (user + system) of each process
#   train_cpu_s                             CPU time of the trainings themselves
#                                           (worker threads inside model_train)
#   overhead_cpu_per_train_cpu              (sim_cpu + server_cpu - train_cpu) / train_cpu:
#                                           what the system costs on top of training,
#                                           in CPU, so not skewed by other load; the
#                                           evaluations' forward passes count as cost
#   eval_cpu_s                              CPU time of the evaluations themselves
#                                           (worker threads inside model_evaluate)
#   overhead_cpu_per_compute_cpu            (sim_cpu + server_cpu - train_cpu - eval_cpu)
#                                           / (train_cpu + eval_cpu): the system's own
#                                           cost (TLS, encoding, SQLite, scheduling, the
#                                           coordinator) per CPU-s of the model's math
#   sim_cpu_s_per_round,                    the two processes' CPU time divided by the
#   server_cpu_s_per_round                  training rounds (the final evaluation's
#                                           share included)
#   server_bytes_per_round                  bytes the coordinator sent in a training
#                                           round (its "round N: sent B bytes" lines,
#                                           mean over the rounds; TLS records included)
#   server_bytes_eval                       the same for the final evaluation
#   models_full_per_round,                  tasks of a training round sent with the
#   models_by_ref_per_round                 model in full and by reference (mean)
#   sim_models_full, sim_refs_resolved,     sefl-sim's model cache: models received in
#   sim_models_asked                        full, references resolved (at once or after
#                                           waiting), models asked for (ModelRequest)
# Wall-time figures (samples/s, efficiency) depend on what else the machine
# runs; the script prints the load average before and after.
# Not part of `make check` (about two minutes on 2 cores).
# Environment: CLIENTS, ROUNDS, PER_ROUND (clients per round, default all),
# PARTITION, THREADS (default: cores), MAX_SAMPLES (default: no cap),
# SERVER_ARGS (more sefl-server flags, e.g. "--wire-dtype int8 --update-dtype
# int8", "--eval-clients 100", or "--model-refs off" for the bytes and CPU
# of sending every client its own copy), SIM_ARGS (more sefl-sim flags),
# INFLIGHT (sefl-sim --max-inflight-frames, default its own), KEEP=1 (keep
# the work directory).
# Every client connects from 127.0.0.1, so the coordinator's admission
# limits per address (--preauth-per-addr, --handshakes-per-sec) are off.
# The issue-12 figures: CLIENTS=1000|5000|10000 MAX_SAMPLES=20
# PARTITION=draw:27 (two rounds and one evaluation of every client, all over
# mTLS; each client 20 train and 7 test samples). draw:N lets clients share
# samples: no partition of the 70,000 images gives 10,000 clients 20 each.
set -u
cd "$(dirname "$0")/../.."
. tests/lib.sh

CLIENTS=${CLIENTS:-200}
ROUNDS=${ROUNDS:-2}
PER_ROUND=${PER_ROUND:-$CLIENTS}
PARTITION=${PARTITION:-pat:2}
THREADS=${THREADS:-$(nproc)}
MAX_SAMPLES=${MAX_SAMPLES:-}
SERVER_ARGS=${SERVER_ARGS:-}
SIM_ARGS=${SIM_ARGS:-}
INFLIGHT=${INFLIGHT:-}

for b in sefl-certs sefl-server sefl-sim sefl-bench; do
    [ -x "$BIN/$b" ] || { echo "sim_scale: $BIN/$b is not built (make)"; exit 1; }
done
W=$(mktemp -d /tmp/sefl-sim-scale.XXXXXX)
SERVER= SIM=
cleanup() { sefl_stop "$SERVER" "$SIM"; [ -n "${KEEP:-}" ] && echo "kept $W" || rm -rf "$W"; }
trap cleanup EXIT
trap 'exit 1' INT TERM

hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
# utime + stime in clock ticks (fields 14 and 15; the name in field 2 has no spaces here)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null; }
TCK=$(getconf CLK_TCK)
echo "load_average_before $(cut -d' ' -f1 /proc/loadavg)"

"$BIN/sefl-certs" init --dir "$W/certs" --clients "$CLIENTS" >"$W/certs.log" 2>&1 ||
    { cat "$W/certs.log"; exit 1; }
# shellcheck disable=SC2086  # SERVER_ARGS and SIM_ARGS are split into flags on purpose
"$BIN/sefl-server" --listen 127.0.0.1:0 --certs "$W/certs" --db "$W/server.db" --rounds "$ROUNDS" \
    --clients-per-round "$PER_ROUND" --min-clients "$PER_ROUND" --over-select 1 --eval-every 0 \
    --round-timeout 900 --epochs 1 --batch 10 --lr 0.005 --seed 1 \
    --preauth-per-addr 0 --handshakes-per-sec 0 $SERVER_ARGS >"$W/server.log" 2>&1 &
SERVER=$!
PORT=$(sefl_wait_port "$W/server.log" "$SERVER" 30) || { tail "$W/server.log"; exit 1; }
"$BIN/sefl-sim" --server "127.0.0.1:$PORT" --certs "$W/certs" --clients "$CLIENTS" \
    --partition "$PARTITION" --seed 1 --state "$W/state" --threads "$THREADS" \
    ${MAX_SAMPLES:+--max-samples "$MAX_SAMPLES"} ${INFLIGHT:+--max-inflight-frames "$INFLIGHT"} \
    $SIM_ARGS >"$W/sim.log" 2>&1 &
SIM=$!

sim_hwm=0 server_hwm=0 sim_run=0 sim_cpu=0 server_cpu=0 sim_idle= server_idle=
while kill -0 "$SIM" 2>/dev/null || kill -0 "$SERVER" 2>/dev/null; do
    # A sefl-sim that refused to start (e.g. too few samples for CLIENTS)
    # leaves the coordinator waiting for clients forever: stop here.
    if ! kill -0 "$SIM" 2>/dev/null && grep -q "^sefl-sim: " "$W/sim.log" &&
        ! grep -q "sefl-sim: clients" "$W/sim.log"; then
        tail -n 3 "$W/sim.log"; echo "sim_scale: sefl-sim failed to start"; exit 1
    fi
    if [ -z "$sim_idle" ] && grep -q "round 1 started" "$W/server.log"; then
        sim_idle=$(rss_kib "$SIM") server_idle=$(rss_kib "$SERVER")
    fi
    v=$(cpu_ticks "$SIM"); [ -n "$v" ] && sim_cpu=$v
    v=$(cpu_ticks "$SERVER"); [ -n "$v" ] && server_cpu=$v
    if grep -q "sefl-sim: clients" "$W/sim.log"; then
        v=$(rss_kib "$SIM"); [ -n "$v" ] && [ "$v" -gt "$sim_run" ] && sim_run=$v
    fi
    v=$(hwm_kib "$SIM"); [ -n "$v" ] && [ "$v" -gt "$sim_hwm" ] && sim_hwm=$v
    v=$(hwm_kib "$SERVER"); [ -n "$v" ] && [ "$v" -gt "$server_hwm" ] && server_hwm=$v
    sleep 0.2
done
sefl_wait_exit "$SERVER" 5 || { tail "$W/server.log"; echo "sim_scale: the coordinator failed"; exit 1; }
SERVER=
sefl_wait_exit "$SIM" 5 || { tail "$W/sim.log"; echo "sim_scale: sefl-sim failed"; exit 1; }
SIM=
grep -E "INFO (round [0-9]+:|all )" "$W/sim.log"
grep -E "committed" "$W/server.log"

# "all N clients finished (0 failed): X samples trained in T s, Y samples/s"
line=$(grep "clients finished" "$W/sim.log")
train_cpu=$(echo "$line" | sed -n 's/.*training CPU \([0-9.]*\) s.*/\1/p')
eval_cpu=$(echo "$line" | sed -n 's/.*evaluation CPU \([0-9.]*\) s.*/\1/p')
samples=$(echo "$line" | sed -n 's/.*: \([0-9]*\) samples trained in \([0-9.]*\) s.*/\1/p')
seconds=$(echo "$line" | sed -n 's/.*: \([0-9]*\) samples trained in \([0-9.]*\) s.*/\2/p')
rounds=$(sqlite3 "$W/server.db" "SELECT printf('%.2f %.3f', AVG(seconds), AVG(coord_seconds)) FROM rounds")

"$BIN/sefl-bench" train --batch 10 --samples 6000 >"$W/bench.log" 2>&1 ||
    { cat "$W/bench.log"; echo "sim_scale: sefl-bench failed"; exit 1; }
bench=$(sefl_value "$W/bench.log" train_samples_per_s)

echo "clients $CLIENTS"
echo "clients_per_round $PER_ROUND"
echo "rounds $ROUNDS"
echo "threads $THREADS"
echo "sim_peak_rss_mib $((sim_hwm / 1024))"
echo "server_peak_rss_mib $((server_hwm / 1024))"
echo "sim_peak_kib_per_client $((sim_hwm / CLIENTS))"
echo "server_peak_kib_per_client $((server_hwm / CLIENTS))"
echo "sim_run_rss_max_mib $((sim_run / 1024))"
echo "sim_idle_kib_per_client $((${sim_idle:-0} / CLIENTS))"
echo "server_idle_kib_per_client $((${server_idle:-0} / CLIENTS))"
# "large frames (over B bytes) received: T, at most P at once (--max-inflight-frames M), W waited for a slot"
sed -n 's/.*large frames (over [0-9]* bytes) received: \([0-9]*\), at most \([0-9]*\) at once .*, \([0-9]*\) waited.*/sim_large_frames \1\nsim_inflight_peak \2\nsim_inflight_waits \3/p' "$W/sim.log"
echo "sim_train_samples $samples"
echo "sim_seconds $seconds"
awk -v s="$samples" -v t="$seconds" 'BEGIN { printf "sim_samples_per_s %.1f\n", s / t }'
echo "round_seconds_mean ${rounds% *}"
echo "coord_seconds_mean ${rounds#* }"
echo "bench_train_samples_per_s $bench"
awk -v s="$samples" -v t="$seconds" -v b="$bench" -v n="$THREADS" \
    'BEGIN { printf "system_efficiency %.3f\n", (s / t) / (n * b) }'
awk -v a="$sim_cpu" -v b="$server_cpu" -v k="$TCK" -v t="$train_cpu" -v e="$eval_cpu" 'BEGIN {
    printf "sim_cpu_s %.1f\nserver_cpu_s %.1f\ntrain_cpu_s %.1f\n", a / k, b / k, t
    printf "overhead_cpu_per_train_cpu %.3f\n", (a / k + b / k - t) / t
    printf "eval_cpu_s %.1f\n", e
    printf "overhead_cpu_per_compute_cpu %.3f\n", (a / k + b / k - t - e) / (t + e) }'
awk -v a="$sim_cpu" -v b="$server_cpu" -v k="$TCK" -v r="$ROUNDS" 'BEGIN {
    printf "sim_cpu_s_per_round %.2f\nserver_cpu_s_per_round %.2f\n", a / k / r, b / k / r }'
# "round N: sent B bytes: the model in full to F clients (L bytes), by reference to R (...)"
awk '/INFO round [0-9]+: sent [0-9]+ bytes/ {
        for (i = 1; i <= NF; i++) {
            if ($i == "sent") b += $(i + 1)
            if ($i == "to" && $(i + 1) ~ /^[0-9]+$/) { if (++k % 2) f += $(i + 1); else r += $(i + 1) }
        }
        n++
     }
     /INFO eval round [0-9]+: sent [0-9]+ bytes/ { for (i = 1; i <= NF; i++) if ($i == "sent") e = $(i + 1) }
     END {
        if (n) printf "server_bytes_per_round %.0f\nmodels_full_per_round %.1f\nmodels_by_ref_per_round %.1f\n", b / n, f / n, r / n
        if (e != "") printf "server_bytes_eval %d\n", e
     }' "$W/server.log"
# "model references: F models received in full, H references resolved at once, W after waiting ..., A asked for in full"
sed -n 's/.*model references: \([0-9]*\) models received in full, \([0-9]*\) references resolved at once, \([0-9]*\) after waiting.*, \([0-9]*\) asked for in full.*/sim_models_full \1\nsim_refs_resolved \2 \3\nsim_models_asked \4/p' "$W/sim.log" |
    awk '$1 == "sim_refs_resolved" { print $1, $2 + $3; next } { print }'
echo "load_average_after $(cut -d' ' -f1 /proc/loadavg)"
