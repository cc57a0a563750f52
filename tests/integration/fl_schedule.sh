#!/usr/bin/env bash
# fl_schedule: the local schedules of the private tensors, end to end with a
# real sefl-server and sefl-sim on loopback. Checks that
#   - a run with --local-schedule private-first:1 --private-lr 0.02 (4
#     clients, pat:2, 2 rounds) finishes, every client trains and reports,
#     and the private SE tensors move from their initialisation;
#   - server.db records local_schedule and private_lr, and a restart that
#     changes either is refused with one line naming the flag, leaving the
#     file as it was;
#   - bad values exit 2 with one line: an unknown schedule, P out of range,
#     a non-positive rate, private-first with --private none.
# The schedule's arithmetic (frozen tensors, rates, seeds) is checked
# byte for byte in check_model and check_session.
set -u
cd "$(dirname "$0")/../.."
. tests/lib.sh
sefl_need_fmnist || exit 0
for b in sefl-certs sefl-server sefl-sim; do
    [ -x "$BIN/$b" ] || { echo "FAIL: $BIN/$b is not built"; echo "0 passed, 1 failed"; exit 1; }
done

N=4
sefl_fl_begin fl_schedule "$N" 20 '*/*.log'
ARGS="--rounds 2 --clients-per-round $N --min-clients $N --over-select 1 --round-timeout 300
      --eval-every 1 --lr 0.01 --seed 4 --heartbeat 1"
SCHED="--local-schedule private-first:1 --private-lr 0.02"

sefl_check "a private-first:1 run with --private-lr finishes" \
    sefl_run_federated "$T/run" "$T/certs" 600 "$ARGS $SCHED" \
    "--clients $N --partition pat:2 --seed 5 --max-samples 60 --threads 2"
DB=$T/run/server.db
sefl_check "every client took part in both rounds" \
    [ "$(sefl_sql "$DB" "SELECT count(*) FROM clients WHERE rounds = 2")" = "$N" ]
sefl_check "every client reported for round 2" \
    [ "$(sefl_sql "$DB" "SELECT count(*) FROM eval_reports WHERE round = 2")" = "$N" ]
sefl_check "server.db records local_schedule private-first:1" \
    [ "$(sefl_sql "$DB" "SELECT value FROM meta WHERE key = 'local_schedule'")" = "private-first:1" ]
sefl_check "server.db records private_lr 0.02" \
    [ "$(sefl_sql "$DB" "SELECT value FROM meta WHERE key = 'private_lr'")" = "0.02" ]
# Every gate bias starts at MODEL_GATE_BIAS, 3.0f (bytes 00 00 40 40);
# the private phase trains them away from it.
start=$(printf '00004040%.0s' $(seq 32))
got=$(sqlite3 -readonly "$T/run/clients/client-0000.db" \
    "SELECT round || ' ' || hex(data) FROM tensors WHERE name = 'se1.fc2.bias'" 2>/dev/null)
sefl_check "a client's gates are stored for round 2 and trained away from their start" \
    eval '[ "${got%% *}" = 2 ] && [ "${got#* }" != "$start" ] && [ ${#got} -gt 200 ]'

# Resuming with another schedule or rate is refused; the file is unchanged.
sum=$(md5sum <"$DB")
for change in "--local-schedule joint" "--local-schedule private-first:2 --private-lr 0.02" \
              "--local-schedule private-first:1"; do
    out=$("$BIN/sefl-server" --listen 127.0.0.1:0 --certs "$T/certs" --db "$DB" $ARGS $change 2>&1)
    rc=$?
    flag=--local-schedule
    [ "$change" = "--local-schedule private-first:1" ] && flag=--private-lr
    sefl_check "resume with '$change' refused (exit $rc) naming $flag" \
        eval '[ "$rc" = 2 ] && echo "$out" | grep -q -- "($flag)"'
done
sefl_check "the refused resumes left server.db as it was" [ "$(md5sum <"$DB")" = "$sum" ]

for bad in "--local-schedule fedrep" "--local-schedule private-first:0" \
           "--local-schedule private-first:1001" "--private-lr 0" "--private-lr -1" \
           "--local-schedule private-first:1 --private none"; do
    out=$("$BIN/sefl-server" --certs "$T/certs" --db "$T/bad.db" $bad 2>&1)
    rc=$?
    sefl_check "'$bad' exits 2 with one line" \
        eval '[ "$rc" = 2 ] && [ "$(echo "$out" | wc -l)" = 1 ] && [ ! -e "$T/bad.db" ]'
done
sefl_summary
