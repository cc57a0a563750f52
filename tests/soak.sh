#!/usr/bin/env bash
# soak (make soak; bounded, not part of make check): a chaotic run that must
# still complete with a clean record.
#   - 20 simulated clients in 4 sefl-sim shards of 5 (test builds, tapping
#     every frame they send) on small data (--max-samples, SOAK_SAMPLES);
#   - SOAK_ROUNDS (200) rounds of K = 10 (over-selected 1.3), min 5;
#   - about every SOAK_CHAOS_S seconds one random shard (5 clients, so 30%
#     of the clients are hit over the first few events) vanishes: kill -9
#     and a restart 2 s later, SIGSTOP for 4 s (reads stall past the 3
#     heartbeats of 1 s), or its sockets closed under it (ss -K);
#   - the coordinator is kill -9'd and restarted 10 times, spread over the
#     rounds;
#   - two attackers with valid certificates (py_client.py): a scaled update
#     (x1e6) and a falsified EvalReport (2^32-1 examples), restarted when
#     they exit.
# Asserts: every round commits; every committed model is finite; server.db
# and every client file pass integrity_check; no private tensor name or
# private tensor bytes appear in any frame a client sent (as fl_privacy.sh
# scans them). Prints `name value` figures: rounds committed, attempts
# abandoned, candidates refused, reports refused, clients dropped, time
# lost per coordinator restart, wall seconds. Exit 0 when every assertion
# held. SOAK_KEEP=1 keeps the directory.
cd "$(dirname "$0")/.." || exit 1
source tests/lib.sh
sefl_need_fmnist || exit 1

ROUNDS=${SOAK_ROUNDS:-200}
SAMPLES=${SOAK_SAMPLES:-60}
CHAOS_S=${SOAK_CHAOS_S:-6}
RESTARTS=10
SHARDS=4
T=$(mktemp -d /tmp/soak.XXXXXX)
SERVER_PID= SHARD_PIDS=() ATTACK_PIDS=()
cleanup() {
    sefl_stop "$SERVER_PID" "${SHARD_PIDS[@]}" "${ATTACK_PIDS[@]}"
    if [ -n "${SOAK_KEEP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
fail=0
check() {
    if "${@:2}"; then echo "ok - $1"; else echo "FAIL - $1"; fail=1; fi
}

"$BIN/sefl-certs" init --dir "$T/certs" --clients 22 >/dev/null 2>&1 || exit 1
sefl_need_py "$T" || exit 1
mkdir -p "$T/clients" "$T/tap"

start_server() {
    local n=$1
    "$BIN/sefl-server" --listen "127.0.0.1:${PORT:-0}" --certs "$T/certs" --db "$T/server.db" \
        --rounds "$ROUNDS" --clients-per-round 10 --min-clients 5 --over-select 1.3 \
        --eval-every 20 --round-timeout 30 --heartbeat 1 --lr 0.05 --batch 10 \
        2>"$T/server.$n.log" &
    SERVER_PID=$!
    PORT=$(sefl_wait_port "$T/server.$n.log" "$SERVER_PID" 30) || {
        tail -n 5 "$T/server.$n.log"
        exit 1
    }
}
start_shard() {
    SEFL_TAP_DIR=$T/tap "$TEST_BIN/sefl-sim" --server "127.0.0.1:$PORT" --certs "$T/certs" \
        --clients 20 --partition pat:2 --seed 1 --state "$T/clients" --shard "$1/$SHARDS" \
        --threads 1 --max-samples "$SAMPLES" --backoff-min-ms 100 --backoff-max-ms 2000 \
        2>>"$T/shard$1.log" &
    SHARD_PIDS[$1]=$!
}
start_attacker() {
    local i=$1 attack
    attack=$([ "$i" = 0 ] && echo scale || echo report)
    "$SEFL_PY" tests/integration/py_client.py --server "127.0.0.1:$PORT" --certs "$T/certs" \
        --name "client-002$i" --pb-dir "$T" --attack "$attack" >>"$T/attacker$i.log" 2>&1 &
    ATTACK_PIDS[$i]=$!
}
committed() {
    sefl_sql "$T/server.db" "SELECT coalesce(max(round), 0) FROM rounds" 2>/dev/null || echo 0
}
now() {
    date +%s.%N
}
minus() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'
}

t_start=$(now)
start_server 0
for ((s = 0; s < SHARDS; s++)); do start_shard "$s"; done
start_attacker 0
start_attacker 1

# Coordinator kills at evenly spread rounds, each a little off the grid.
kill_at=()
for ((k = 1; k <= RESTARTS; k++)); do
    at=$((ROUNDS * k / (RESTARTS + 1) + RANDOM % 5))
    kill_at+=($((at < ROUNDS - 1 ? at : ROUNDS - 1)))
done
restart=0 lost=() pending_kill= events=0 vanished=() next_chaos=$(($(date +%s) + CHAOS_S))
deadline=$(($(date +%s) + ${SOAK_MAX_S:-1500}))
while :; do
    sleep 0.5
    last=$(committed)
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        wait "$SERVER_PID"
        rc=$?
        if [ "$rc" = 0 ] && [ "$last" -ge "$ROUNDS" ]; then break; fi
        echo "coordinator exited $rc at round $last"
        fail=1
        break
    fi
    if [ "$(date +%s)" -gt "$deadline" ]; then
        echo "soak: out of time at round $last"
        fail=1
        break
    fi
    # Time lost to a restart: from the kill to the first commit after it.
    if [ -n "$pending_kill" ] && [ "$last" -gt "$pending_round" ]; then
        lost+=("$(minus "$(now)" "$pending_kill")")
        pending_kill=
    fi
    if [ "$restart" -lt "$RESTARTS" ] && [ "$last" -ge "${kill_at[$restart]}" ] && [ -z "$pending_kill" ]; then
        kill -9 "$SERVER_PID"
        wait "$SERVER_PID" 2>/dev/null
        pending_kill=$(now) pending_round=$last
        restart=$((restart + 1))
        echo "chaos: coordinator kill -9 at round $last ($restart of $RESTARTS)"
        start_server "$restart"
    fi
    for i in 0 1; do
        kill -0 "${ATTACK_PIDS[$i]}" 2>/dev/null || { wait "${ATTACK_PIDS[$i]}" 2>/dev/null; start_attacker "$i"; }
    done
    if [ "$(date +%s)" -ge "$next_chaos" ]; then
        next_chaos=$(($(date +%s) + CHAOS_S))
        s=$((RANDOM % SHARDS))
        events=$((events + 1))
        vanished[$s]=1
        case $((RANDOM % 3)) in
        0)
            echo "chaos: shard $s kill -9 at round $last"
            kill -9 "${SHARD_PIDS[$s]}" 2>/dev/null
            wait "${SHARD_PIDS[$s]}" 2>/dev/null
            (sleep 2) && start_shard "$s"
            ;;
        1)
            echo "chaos: shard $s stopped for 4 s at round $last"
            kill -STOP "${SHARD_PIDS[$s]}" 2>/dev/null
            (sleep 4; kill -CONT "${SHARD_PIDS[$s]}" 2>/dev/null) &
            ;;
        2)
            echo "chaos: shard $s sockets closed at round $last"
            # Each of the shard's connections, by its local port (needs
            # the kernel's socket-destroy support; a no-op without it).
            for lp in $(ss -tnpH "( dport = :$PORT )" 2>/dev/null |
                        grep "pid=${SHARD_PIDS[$s]}," | awk '{ n = split($4, a, ":"); print a[n] }'); do
                ss -K -tn "( sport = :$lp )" >/dev/null 2>&1 || true
            done
            ;;
        esac
    fi
done
wall=$(minus "$(now)" "$t_start")
# The shards end on Bye "done"; give them a moment, then stop the rest.
for ((s = 0; s < SHARDS; s++)); do sefl_wait_exit "${SHARD_PIDS[$s]}" 30 >/dev/null 2>&1; done
sefl_stop "${ATTACK_PIDS[@]}"

logs=("$T"/server.*.log)
count() { cat "${logs[@]}" | grep -cE "$1"; }
check "all $ROUNDS rounds committed" [ "$(committed)" = "$ROUNDS" ]
check "rounds 1..$ROUNDS each committed once" \
    [ "$(sefl_sql "$T/server.db" "SELECT count(DISTINCT round) FROM rounds")" = "$ROUNDS" ]
check "the coordinator was kill -9'd and restarted $RESTARTS times" [ "$restart" = "$RESTARTS" ]
finite=$("$SEFL_PY" - "$T/server.db" <<'PY'
import math, sqlite3, struct, sys
db = sqlite3.connect(sys.argv[1])
bad = 0
for (b,) in db.execute("SELECT params FROM models"):
    bad += sum(1 for x in struct.unpack("<%df" % (len(b) // 4), b) if not math.isfinite(x) or abs(x) > 1e3)
print(bad)
PY
)
check "every stored model is finite and small (bad values: $finite)" [ "$finite" = 0 ]
check "server.db passes integrity_check" [ "$(sefl_sql "$T/server.db" "PRAGMA integrity_check")" = ok ]
bad_db=0
for f in "$T"/clients/*.db; do
    [ "$(sefl_sql "$f" "PRAGMA integrity_check")" = ok ] || bad_db=$((bad_db + 1))
done
check "every client file passes integrity_check ($(ls "$T"/clients/*.db | wc -l) files, $bad_db bad)" [ "$bad_db" = 0 ]
# Private tensor names in any frame any client sent: grep scans the
# gigabytes of taps at disk speed. The private bytes a client holds now
# were made by its last training, so they could only travel in its last
# frames: those are searched for them (the tail of each tap).
names=$(for n in 1 2 3; do for j in 1 2; do printf 'se%d.fc%d.weight\nse%d.fc%d.bias\n' $n $j $n $j; done; done)
name_hits=$(cat "$T"/tap/*.frames | grep -a -c -F "$names")
tapped=$(cat "$T"/tap/*.frames | wc -c)
byte_hits=$("$SEFL_PY" - "$T/tap" "$T/clients" <<'PY'
import glob, os, sqlite3, sys
tap, clients = sys.argv[1], sys.argv[2]
hits = 0
for f in glob.glob(os.path.join(tap, "*.frames")):
    with open(f, "rb") as fh:
        fh.seek(max(0, os.path.getsize(f) - (32 << 20)))
        data = fh.read()
    db = os.path.join(clients, os.path.basename(f)[:-len(".frames")] + ".db")
    if os.path.exists(db):
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        for (blob,) in con.execute("SELECT data FROM tensors"):
            hits += (blob[:64] in data) + (blob[-64:] in data)
print(hits)
PY
)
check "no private tensor name in $tapped tapped bytes, no private bytes in any client's last frames" \
    [ "$name_hits:$byte_hits" = 0:0 ]
check "the scaled update was refused at least once" [ "$(count 'candidate model refused, not')" -ge 1 ]
check "the falsified report was refused at least once" [ "$(count 'refused eval report')" -ge 1 ]
check "the falsified report was never stored" \
    [ "$(sefl_sql "$T/server.db" "SELECT count(*) FROM eval_reports WHERE client = 'client-0021'")" = 0 ]

echo "soak_rounds_committed $(committed)"
echo "soak_attempts_abandoned $(count 'abandoned')"
echo "soak_candidates_refused $(count 'candidate model refused, not')"
echo "soak_reports_refused $(count 'refused eval report')"
echo "soak_clients_dropped $(cat "${logs[@]}" | grep ' left: ' | grep -vcE 'left: (done|shutdown)')"
echo "soak_clients_penalised $(count 'penalised for')"
echo "soak_chaos_events $events"
echo "soak_shards_hit $(echo "${!vanished[@]}" | wc -w) of $SHARDS"
echo "soak_coordinator_restarts $restart"
if [ ${#lost[@]} -gt 0 ]; then
    printf '%s\n' "${lost[@]}" | awk '{ s += $1; if ($1 > m) m = $1 } END {
        printf "soak_seconds_lost_per_restart_mean %.2f\nsoak_seconds_lost_per_restart_max %.2f\n", s / NR, m }'
fi
echo "soak_wall_seconds $(printf '%.0f' "$wall")"
[ "$fail" = 0 ] && echo "soak: passed" || echo "soak: FAILED"
exit "$fail"
