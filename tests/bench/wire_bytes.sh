#!/usr/bin/env bash
# wire_bytes: bytes on the wire and accuracy per tensor encoding. For each
# encoding in ENCODINGS (default "f32 f16 int8 int8/tensor", used both ways:
# --wire-dtype and --update-dtype), one coordinator and one sefl-sim with
# CLIENTS clients (default 20, all selected every round) on a dir:0.1 split
# run ROUNDS rounds (default 15, lr LR = 0.05, batch 10, one epoch, seed 1,
# private SE gates) and one evaluation of every client after the last. (At
# the README's lr 0.005 the first 15 rounds sit on a plateau near chance,
# where encodings cannot be told apart.)
# Prints, per encoding E (E's '/' as '_'):
#   E_task_bytes            one TrainTask frame (the global model going out)
#   E_update_bytes_mean     one Update frame, mean over all of them
#   E_bytes_per_round       sum over the run of task bytes x clients sent to
#                           plus update bytes, divided by the rounds
#   E_bytes_ratio           f32's bytes per round / E's
#   E_weighted_accuracy     sample-weighted test accuracy of the clients
#                           after the last round (their private gates on)
#   E_accuracy_cost_points  f32's accuracy minus E's, in points
# Bytes are the frames' (protobuf Envelope + 4-byte length), as the
# coordinator logs them; TLS adds 22 bytes per 16 KB record on top.
# Not part of make check: about 20 min on 2 cores with the defaults.
# Environment: CLIENTS, ROUNDS, LR, ENCODINGS, PARTITION (dir:0.1), THREADS
# (default: cores), MAX_SAMPLES (default: each client's whole share), OUT
# (a temp dir, kept).
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/lib.sh
sefl_need_fmnist >/dev/null || { echo "wire_bytes: Fashion-MNIST not installed"; exit 1; }

CLIENTS=${CLIENTS:-20}
ROUNDS=${ROUNDS:-15}
LR=${LR:-0.05}
ENCODINGS=${ENCODINGS:-f32 f16 int8 int8/tensor}
PARTITION=${PARTITION:-dir:0.1}
THREADS=${THREADS:-$(nproc)}
MAX_SAMPLES=${MAX_SAMPLES:-}
OUT=${OUT:-$(mktemp -d /tmp/wire_bytes.XXXXXX)}
mkdir -p "$OUT"
SERVER= SIM=
trap 'sefl_stop "$SERVER" "$SIM"' EXIT
trap 'exit 1' INT TERM
[ -d "$OUT/certs" ] || "$BIN/sefl-certs" init --dir "$OUT/certs" --clients "$CLIENTS" >/dev/null 2>&1
echo "wire_bytes: $CLIENTS clients, $PARTITION, $ROUNDS rounds, lr $LR, $THREADS threads," \
     "max-samples ${MAX_SAMPLES:-all}; files in $OUT"

# run ENC: one federated run with encoding ENC both ways, into $OUT/ENC.
run() {
    local enc=$1 dir=$OUT/${1//\//_} dtype=${1%/*} scale=channel
    [ "$enc" = int8/tensor ] && scale=tensor
    rm -rf "$dir"
    mkdir -p "$dir"
    "$BIN/sefl-server" --listen 127.0.0.1:0 --certs "$OUT/certs" --db "$dir/server.db" \
        --rounds "$ROUNDS" --clients-per-round "$CLIENTS" --min-clients "$CLIENTS" \
        --over-select 1 --round-timeout 3600 --eval-every 0 --lr "$LR" --batch 10 --epochs 1 \
        --seed 1 --heartbeat 30 --wire-dtype "$dtype" --update-dtype "$dtype" \
        --int8-scale "$scale" >"$dir/server.log" 2>&1 &
    SERVER=$!
    local port
    port=$(sefl_wait_port "$dir/server.log" "$SERVER" 30) || { tail "$dir/server.log"; return 1; }
    "$BIN/sefl-sim" --server "127.0.0.1:$port" --certs "$OUT/certs" --clients "$CLIENTS" \
        --partition "$PARTITION" --seed 1 --state "$dir/state" --threads "$THREADS" \
        ${MAX_SAMPLES:+--max-samples "$MAX_SAMPLES"} >"$dir/sim.log" 2>&1 &
    SIM=$!
    sefl_wait_exit "$SERVER" 7200 || { tail "$dir/server.log"; return 1; }
    sefl_wait_exit "$SIM" 60 || { tail "$dir/sim.log"; return 1; }
    SERVER= SIM=
}

f32_bpr= f32_acc=
for enc in $ENCODINGS; do
    run "$enc" || { echo "wire_bytes: the $enc run failed"; exit 1; }
    log=$OUT/${enc//\//_}/server.log
    n=${enc//\//_}
    # "round R started: selected S of ... (attempt A, task B bytes)"
    task=$(grep -oE 'round 1 started: .*task [0-9]+ bytes' "$log" | grep -oE '[0-9]+ bytes' | grep -oE '[0-9]+')
    sent=$(grep -E 'round [0-9]+ started: selected' "$log" |
        sed -E 's/.*selected ([0-9]+) of.*task ([0-9]+) bytes.*/\1 \2/' | awk '{ s += $1 * $2 } END { print s + 0 }')
    upd=$(grep -oE 'update from [^ ]+ for round [0-9]+: .* [0-9]+ bytes' "$log" |
        grep -oE '[0-9]+ bytes' | awk '{ s += $1; n++ } END { printf "%d %d\n", s, n }')
    acc=$(grep -oE 'eval round [0-9]+ done: .*weighted accuracy [0-9.]+' "$log" | tail -n 1 | grep -oE '[0-9.]+$')
    bpr=$(awk -v a="$sent" -v b="${upd% *}" -v r="$ROUNDS" 'BEGIN { printf "%.0f", (a + b) / r }')
    echo "${n}_task_bytes $task"
    awk -v s="${upd% *}" -v k="${upd#* }" -v n="$n" 'BEGIN { printf "%s_update_bytes_mean %.0f\n", n, k ? s / k : 0 }'
    echo "${n}_bytes_per_round $bpr"
    if [ "$enc" = f32 ]; then f32_bpr=$bpr f32_acc=$acc; fi
    [ -n "$f32_bpr" ] && awk -v a="$f32_bpr" -v b="$bpr" -v n="$n" 'BEGIN { printf "%s_bytes_ratio %.2f\n", n, a / b }'
    echo "${n}_weighted_accuracy $acc"
    [ -n "$f32_acc" ] && awk -v a="$f32_acc" -v b="$acc" -v n="$n" \
        'BEGIN { printf "%s_accuracy_cost_points %.2f\n", n, 100 * (a - b) }'
done
