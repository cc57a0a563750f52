#!/usr/bin/env bash
# fl_privacy: what clients send never contains their private tensors.
# With SEFL_TAP_DIR set, each sefl-client appends every frame it sends
# (before encryption) to DIR/NAME.frames. Run 1 (--private se): no frame
# names a private SE tensor, and the bytes of each client's private weights
# (read from its SQLite file after the run) appear in none of its frames,
# while the shared tensors do travel. Run 2 (--private none): the same
# search finds the SE tensors in the frames, so the check can fail.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
sefl_need_fmnist || exit 0
SEFL_CLIENT_BIN=$TEST_BIN/sefl-client   # the switches exist in test builds only

sefl_fl_begin fl_privacy 3 8 '*/*.log'

# run DIR PRIVATE: 3 clients, 2 rounds, evaluation after the last; every
# client taps its frames into DIR/tap.
run() {
    local dir=$1 private=$2 rc=0 pid
    mkdir -p "$dir/tap"
    ln -s "$T/certs" "$dir/certs"
    sefl_start_server "$dir/server.log" 127.0.0.1:0 --certs "$T/certs" --db "$dir/server.db" \
        --rounds 2 --clients-per-round 3 --min-clients 3 --round-timeout 60 --eval-every 0 \
        --private "$private" --lr 0.05 --batch 32 --heartbeat 2 || return 1
    SEFL_CLIENT_PIDS=()
    for i in 0 1 2; do
        SEFL_TAP_DIR=$dir/tap sefl_start_client "$dir" "$i" 3 "$SEFL_PORT" --max-samples 200
    done
    sefl_wait_exit "$SEFL_SERVER_PID" 120 || rc=1
    for pid in "${SEFL_CLIENT_PIDS[@]}"; do sefl_wait_exit "$pid" 30 || rc=1; done
    sefl_all_gone "$SEFL_PORT" "$SEFL_SERVER_PID" "${SEFL_CLIENT_PIDS[@]}" || rc=1
    return $rc
}

# scan TAP CLIENT_DB: prints "names=N bytes=N backbone=N frames=N": how many
# private tensor names of the table and how many stored private tensors'
# bytes (whole, first 64 and last 64 bytes) occur in the client's frames,
# whether the backbone's conv1.weight travels, and the number of frames.
scan() {
    python3 - "$1" "$2" <<'PY'
import sqlite3, struct, sys
tap, db = sys.argv[1], sys.argv[2]
data = open(tap, 'rb').read()
frames, off = 0, 0
while off + 4 <= len(data):
    (n,) = struct.unpack('>I', data[off:off + 4])
    off += 4 + n
    frames += 1
assert off == len(data), "tap file is not a sequence of whole frames"
se_names = [f"se{i}.fc{j}.{k}" for i in (1, 2, 3) for j in (1, 2) for k in ("weight", "bias")]
names = sum(1 for s in se_names if s.encode() in data)
con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
hits = 0
for name, blob in con.execute("SELECT name, data FROM tensors"):
    if blob in data or blob[:64] in data or blob[-64:] in data:
        hits += 1
print(f"names={names} bytes={hits} backbone={int(b'conv1.weight' in data)} frames={frames}")
PY
}

run "$T/se" se
sefl_check "run with --private se: server and clients exit 0, nothing left running" [ $? = 0 ]
ok=1 stored=1
for i in 0 1 2; do
    name=$(printf 'client-%04d' "$i")
    out=$(scan "$T/se/tap/$name.frames" "$T/se/c$i.db")
    echo "  $name --private se: $out"
    [ "${out%% *}" = "names=0" ] || ok=0
    case "$out" in *" bytes=0 backbone=1 "*) ;; *) ok=0 ;; esac
    [ "$(sefl_sql "$T/se/c$i.db" "SELECT count(*) FROM tensors WHERE name LIKE 'se%'")" = 12 ] || stored=0
done
sefl_check "each client stored its 12 private SE tensors (the bytes searched for)" [ $stored = 1 ]
sefl_check "--private se: no private tensor name and no private bytes in any frame; the backbone travels" [ $ok = 1 ]

run "$T/none" none
sefl_check "run with --private none: server and clients exit 0" [ $? = 0 ]
seen=1
for i in 0 1 2; do
    name=$(printf 'client-%04d' "$i")
    out=$(scan "$T/none/tap/$name.frames" "$T/none/c$i.db")
    echo "  $name --private none: $out"
    [ "${out%% *}" = "names=12" ] || seen=0
done
sefl_check "--private none: the same scan sees all 12 SE tensors travel" [ $seen = 1 ]

sefl_summary
