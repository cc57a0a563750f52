#!/usr/bin/env bash
# ops_refusals: every refusal an operator meets, with real processes, files
# and sockets: --help/--version/bad arguments of every program (exit 0 / 2,
# one line), --config errors naming FILE:LINE, --print-config read back by
# --config unchanged, a bad SEFL_LOG, --log-format json lines, a second
# coordinator on one db, a coordinator on a busy port leaving no db, and a
# client whose certificates the coordinator does not trust or that asks for
# a name the coordinator's certificate does not carry, or whose own
# certificate the coordinator refuses or that has none (ERROR with the fix,
# exit 1 after --max-attempts).
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh

sefl_fl_begin ops_refusals 2 20 '*.log'
PROGS=(sefl-server sefl-client sefl-sim sefl-eval sefl-certs)

# ---- every program: --help, -h, --version, a bad option -------------------
version=$(sed -n 's/^#define SEFL_VERSION "\(.*\)"$/\1/p' common/version.h)
for p in "${PROGS[@]}"; do
    sefl_check "$p --help exits 0 with the usage" sh -c "'$BIN/$p' --help | grep -q '^usage: $p'"
    sefl_check "$p -h exits 0 with the usage" sh -c "'$BIN/$p' -h | grep -q '^usage: $p'"
    sefl_check "$p --version prints '$p $version'" [ "$("$BIN/$p" --version)" = "$p $version" ]
    "$BIN/$p" --frobnicate >/dev/null 2>"$T/bad.err"
    rc=$?
    sefl_check "$p --frobnicate exits 2 with one line" \
        [ "$rc-$(wc -l <"$T/bad.err")" = "2-1" ]
done

# ---- config files ----------------------------------------------------------
server=(--certs "$T/certs" --db "$T/a.db")
printf '# settings\n[sefl-server]\nlr = 0.05\nbatch = 32\n\n[sefl-sim]\nthreads = 1\n' >"$T/ok.ini"
"$BIN/sefl-server" --config "$T/ok.ini" "${server[@]}" --batch 16 --print-config >"$T/p1.ini"
sefl_check "--print-config: the file's lr, the command line's batch" \
    [ "$(grep -E '^(lr|batch) = ' "$T/p1.ini" | tr '\n' ' ')" = "lr = 0.05 batch = 16 " ]
"$BIN/sefl-server" --config "$T/p1.ini" --print-config >"$T/p2.ini"
sefl_check "--print-config output read back by --config prints the same" cmp -s "$T/p1.ini" "$T/p2.ini"
sefl_check "  and names every flag of --help" \
    [ "$(grep -cE '^#? ?[a-z-]+ =' "$T/p1.ini")" -ge 20 ]
"$BIN/sefl-sim" --config "$T/ok.ini" --server h:1 --certs c --clients 2 --partition iid --seed 1 \
    --state s --print-config >"$T/sim.ini"
sefl_check "one file configures two programs: sefl-sim reads its own section" \
    grep -qx 'threads = 1' "$T/sim.ini"

printf '[sefl-server]\nlr = 0.05\nlearning-rate = 0.1\n' >"$T/badkey.ini"
"$BIN/sefl-server" --config "$T/badkey.ini" "${server[@]}" 2>"$T/badkey.err"
sefl_check "unknown key: exit 2" [ $? = 2 ]
sefl_check "  one line naming FILE:LINE and the key" \
    grep -qx "sefl-server: $T/badkey.ini:3: unknown key 'learning-rate' (sefl-server has no such flag) (see --help)" "$T/badkey.err"
printf 'batch = many\n' >"$T/badval.ini"
"$BIN/sefl-server" --config "$T/badval.ini" "${server[@]}" 2>"$T/badval.err"
sefl_check "bad value: exit 2, FILE:LINE and the flag's rule" \
    [ "$?-$(grep -c "^sefl-server: $T/badval.ini:1: --batch must be an integer in 1\.\.[0-9]*, got 'many' (see --help)$" "$T/badval.err")" = "2-1" ]
sefl_check "no database was made by refused starts" [ ! -e "$T/a.db" ]

SEFL_LOG=chatty "$BIN/sefl-server" "${server[@]}" 2>"$T/level.err"
sefl_check "SEFL_LOG=chatty: exit 2 with one line" \
    [ "$?-$(cat "$T/level.err")" = "2-sefl-server: SEFL_LOG must be debug, info, warn or error, got 'chatty' (see --help)" ]
"$BIN/sefl-server" "${server[@]}" --log-format yaml 2>/dev/null
sefl_check "--log-format yaml: exit 2" [ $? = 2 ]

# ---- the coordinator's database: lock, busy port, JSON logs --------------
# On every address, so that a client can ask for 127.0.0.2, a name its
# certificate does not carry.
SEFL_LOG=INFO sefl_start_server "$T/first.log" 0.0.0.0:0 "${server[@]}" --log-format json || exit 1
port=$SEFL_PORT
sefl_check "--log-format json: every line is one JSON object with ts (ms), level, msg" \
    python3 -c '
import json, re, sys
lines = open(sys.argv[1]).read().splitlines()
assert lines
for l in lines:
    o = json.loads(l)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", o["ts"]), o
    assert o["level"] in ("debug", "info", "warn", "error") and o["msg"] and o["prog"] == "sefl-server"
' "$T/first.log"

"$BIN/sefl-server" --listen 127.0.0.1:0 "${server[@]}" 2>"$T/second.log"
sefl_check "a second coordinator on the same db exits 1" [ $? = 1 ]
sefl_check "  saying the file is in use" grep -q "a.db is in use by another process (locked)" "$T/second.log"

"$BIN/sefl-server" --listen "127.0.0.1:$port" --certs "$T/certs" --db "$T/b.db" 2>"$T/busy.log"
sefl_check "a coordinator on a busy port exits 1" [ $? = 1 ]
sefl_check "  and leaves no database" [ ! -e "$T/b.db" ]

# ---- clients that cannot join ----------------------------------------------
if sefl_need_fmnist >/dev/null; then
    # Another project's CA: neither side trusts the other.
    "$BIN/sefl-certs" init --dir "$T/other" --clients 1 >/dev/null 2>&1
    client=(--partition iid --num-clients 2 --index 0 --seed 1 --max-samples 50
            --backoff-min-ms 50 --backoff-max-ms 100 --max-attempts 2)
    timeout 60 "$BIN/sefl-client" --server "127.0.0.1:$port" --certs "$T/other" \
        --name client-0000 --db "$T/c1.db" "${client[@]}" \
        2>"$T/untrusted.log"
    sefl_check "untrusted coordinator certificate: the client exits 1" [ $? = 1 ]
    sefl_check "  after 2 ERROR lines naming the fix" \
        [ "$(grep -c "ERROR client-0000: cannot join 127.0.0.1:$port: TLS handshake failed: certificate verify failed: .*Fix: the coordinator's certificate is not signed by $T/other/ca.crt" "$T/untrusted.log")" = 2 ]
    sefl_check "  and saying it gave up" grep -q 'giving up after 2 attempts (--max-attempts)' "$T/untrusted.log"

    timeout 60 "$BIN/sefl-sim" --server "127.0.0.1:$port" --certs "$T/other" --clients 1 \
        --partition iid --seed 1 --max-samples 50 --state "$T/simstate" --backoff-min-ms 50 \
        --backoff-max-ms 100 --max-attempts 2 2>"$T/sim.log"
    sefl_check "sefl-sim whose clients cannot join exits 1" [ $? = 1 ]
    sefl_check "  its client said why, and the summary counts it failed" \
        [ "$(grep -c 'client-0000: giving up after 2 attempts' "$T/sim.log")-$(grep -c 'all 1 clients finished (1 failed)' "$T/sim.log")" = "1-1" ]

    # The right CA, but an address the server certificate does not carry.
    timeout 60 "$BIN/sefl-client" --server "127.0.0.2:$port" --certs "$T/certs" \
        --name client-0000 --db "$T/c2.db" "${client[@]}" \
        2>"$T/name.log"
    sefl_check "a name the coordinator's certificate lacks: the client exits 1" [ $? = 1 ]
    sefl_check "  the ERROR lists the names it carries and the sefl-certs command" \
        grep -q "its certificate carries CN .*IP 127.0.0.1.*does not carry the name '127.0.0.2' of --server: .*sefl-certs init --dir DIR --server-name 127.0.0.2" "$T/name.log"

    # A client certificate that expired: the coordinator refuses it.
    "$BIN/sefl-certs" issue --dir "$T/certs" --name client-0077 --expired >/dev/null
    timeout 60 "$BIN/sefl-client" --server "127.0.0.1:$port" --certs "$T/certs" \
        --name client-0077 --db "$T/c4.db" "${client[@]}" 2>"$T/refused.log"
    sefl_check "a client certificate the coordinator refuses: the client exits 1" [ $? = 1 ]
    sefl_check "  the ERROR says the coordinator refused it and how to issue one" \
        grep -q "Fix: the coordinator refused this client's certificate $T/certs/clients/client-0077.crt .*sefl-certs issue --dir DIR --name client-0077" "$T/refused.log"

    timeout 60 "$BIN/sefl-client" --server "127.0.0.1:$port" --certs "$T/certs" \
        --name client-0042 --db "$T/c3.db" "${client[@]}" \
        2>"$T/noname.log"
    sefl_check "a client name without a certificate: exit 1 with the sefl-certs issue command" \
        [ "$?-$(grep -c "no certificate for client 'client-0042'.*sefl-certs issue --dir $T/certs --name client-0042" "$T/noname.log")" = "1-1" ]
else
    echo "skipped: client refusals (Fashion-MNIST not installed)"
fi

kill -TERM "$SEFL_SERVER_PID"
sefl_wait_exit "$SEFL_SERVER_PID" 20
sefl_check "the coordinator stops with exit 0" [ $? = 0 ]
sefl_start_server "$T/third.log" 127.0.0.1:0 "${server[@]}"
sefl_check "its lock went with it: the db opens again" [ $? = 0 ]
sefl_summary
