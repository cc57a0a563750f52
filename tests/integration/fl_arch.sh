#!/usr/bin/env bash
# fl_arch: the architecture seam end to end, with real processes. A
# coordinator and two sefl-client processes run mbv2-se with ECA gates after
# the projection (--arch mbv2-se --se-placement after-pointwise --gate eca)
# for two rounds over mutual TLS. Checks that a client asking for another
# gate is refused by the coordinator with a model mismatch and exits, that
# the run commits with the two right ones, that server.db's meta records the
# architecture and its options, that each client file holds its own four
# private ECA kernels, that sefl-eval's cost view describes mbv2-se from the
# run's meta, that a resume with another gate is refused naming --gate, and
# that every program says in one line that an unknown --arch is unknown.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
sefl_need_fmnist || exit 0

MODEL=(--arch mbv2-se --se-placement after-pointwise --gate eca)
sefl_fl_begin fl_arch 3 15 '*.log'
sefl_start_server "$T/server.log" 127.0.0.1:0 --certs "$T/certs" --db "$T/server.db" \
    --rounds 2 --clients-per-round 2 --min-clients 2 --round-timeout 60 --eval-every 2 \
    --lr 0.02 --batch 20 --heartbeat 2 "${MODEL[@]}" || exit 1

# The same architecture with SE gates instead: refused at Hello.
sefl_start_client "$T" 2 3 "$SEFL_PORT" --max-samples 100 --arch mbv2-se \
    --se-placement after-pointwise --gate se
sefl_wait_exit "$SEFL_CLIENT_PID" 30
sefl_check "a client with --gate se exits non-zero" [ $? != 0 ]
sefl_check "its log says the model mismatches, naming both gates" \
    grep -qE "model mismatch.*gate='eca'.*gate='se'|model mismatch.*gate='se'.*gate='eca'" "$T/c2.log"
SEFL_CLIENT_PIDS=()

for i in 0 1; do sefl_start_client "$T" "$i" 3 "$SEFL_PORT" --max-samples 100 "${MODEL[@]}"; done
sefl_wait_exit "$SEFL_SERVER_PID" 120
sefl_check "sefl-server exits 0 after 2 rounds of mbv2-se" [ $? = 0 ]
rc=0
for pid in "${SEFL_CLIENT_PIDS[@]}"; do sefl_wait_exit "$pid" 30 || rc=1; done
sefl_check "both sefl-client processes exit 0" [ $rc = 0 ]

db=$T/server.db
sefl_check "server.db: rounds 1 and 2 with 2 clients each" \
    [ "$(sefl_sql "$db" "SELECT group_concat(round||':'||clients, ' ') FROM rounds")" = "1:2 2:2" ]
sefl_check "server.db: meta records mbv2-se, after-pointwise, eca, r 0" \
    [ "$(sefl_sql "$db" "SELECT group_concat(key||'='||value, ',') FROM (SELECT * FROM meta WHERE key IN ('arch','se_placement','gate','r') ORDER BY key)")" \
      = "arch=mbv2-se,gate=eca,r=0,se_placement=after-pointwise" ]
ok=1
for i in 0 1; do
    [ "$(sefl_sql "$T/c$i.db" "SELECT group_concat(name) FROM (SELECT name FROM tensors WHERE round = 2 ORDER BY name)")" \
      = "b1.eca.weight,b2.eca.weight,b3.eca.weight,b4.eca.weight" ] || ok=0
done
sefl_check "each client file holds exactly its four private ECA kernels" [ $ok = 1 ]
sefl_check "the ECA kernels differ between the two clients" \
    [ "$(for i in 0 1; do sefl_sql "$T/c$i.db" "SELECT group_concat(checksum, '') FROM (SELECT checksum FROM tensors WHERE round = 2 ORDER BY name)"; done | sort -u | wc -l)" = 2 ]

"$BIN/sefl-eval" --db "$db" >"$T/eval.txt" 2>"$T/eval.log"
sefl_check "sefl-eval reads the run" [ $? = 0 ]
sefl_check "sefl-eval's cost view is mbv2-se's: 29126 params, 12 private" \
    [ "$(sefl_value "$T/eval.txt" params_total) $(sefl_value "$T/eval.txt" params_private)" = "29126 12" ]
sefl_check "sefl-eval: MACs per sample 2800352, 2788768 without the gates" \
    [ "$(sefl_value "$T/eval.txt" macs_per_sample) $(sefl_value "$T/eval.txt" macs_per_sample_without_se)" = "2800352 2788768" ]

# Resuming the file with SE gates instead of ECA is refused before listening.
"$BIN/sefl-server" --listen 127.0.0.1:0 --certs "$T/certs" --db "$db" --rounds 3 \
    --arch mbv2-se --se-placement after-pointwise --gate se 2>"$T/resume.log"
sefl_check "a resume with --gate se exits non-zero" [ $? != 0 ]
sefl_check "and says the file was made with gate eca (--gate)" \
    grep -q "made with gate = eca, this run has se (--gate)" "$T/resume.log"
sefl_check "the file still holds its 2 rounds" [ "$(sefl_sql "$db" "SELECT max(round) FROM rounds")" = 2 ]

# An unknown architecture is a usage error (exit 2, one line) everywhere.
# refused_arch RC OUT: RC is 2 and OUT one line naming the architectures.
refused_arch() {
    [ "$1" = 2 ] && [ "$(echo "$2" | wc -l)" = 1 ] &&
        [[ "$2" == *"'resnet' is unknown: use one of cnn-se, mbv2-se"* ]]
}
for cmd in "sefl-server --certs $T/certs --db $T/x.db" "sefl-client --server 127.0.0.1:1 --certs $T/certs --name client-0000 --db $T/x.db --partition iid --num-clients 2 --index 0 --seed 1" \
           "sefl-sim --local-only --clients 2 --partition iid --seed 1 --state $T/s --db $T/x.db --rounds 1" \
           "sefl-bench train"; do
    # shellcheck disable=SC2086  # cmd is split on purpose
    out=$("$BIN"/$cmd --arch resnet 2>&1 >/dev/null)
    rc=$?
    sefl_check "${cmd%% *} --arch resnet: exit 2, one line naming the architectures" \
        refused_arch "$rc" "$out"
done
sefl_check "no file was created by a refused program" [ ! -e "$T/x.db" ]

sefl_summary
