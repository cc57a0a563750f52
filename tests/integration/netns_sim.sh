#!/usr/bin/env bash
# netns_sim: many machines, tested on one. Builds three hosts as network
# namespaces joined by veth pairs (the coordinator in one, a sefl-sim shard
# in each of the other two, each shard on its own /24 towards the
# coordinator), runs a few small rounds, and checks that every client of
# both shards took part, exactly once each, and that the shards split the
# clients between them. Addresses are private ones that exist only inside
# these namespaces, so no traffic leaves the machine.
#
# Needs root and a working `ip netns`; otherwise it says why it skipped and
# exits 0. The namespaces and every process are removed on any exit (trap).
set -u
cd "$(dirname "$0")/../.."
. tests/lib.sh

NAME=netns_sim
CLIENTS=${NETNS_CLIENTS:-6}
ROUNDS=${NETNS_ROUNDS:-2}
SAMPLES=${NETNS_SAMPLES:-40}     # train and test examples per client, each split
pass=0
fail=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
finish() { echo "$pass passed, $fail failed"; [ "$fail" = 0 ]; exit $?; }
skip() {
    echo "$NAME: skipped: $*"
    echo "0 passed, 0 failed (skipped: $*)"
    exit 0
}

[ "$(id -u)" = 0 ] || skip "needs root to create network namespaces"
command -v ip >/dev/null 2>&1 || skip "no ip command (iproute2)"
for b in sefl-certs sefl-server sefl-sim; do
    if [ ! -x "$BIN/$b" ]; then
        echo "FAIL: $BIN/$b is not built"
        echo "0 passed, 1 failed"
        exit 1
    fi
done

TAG=$$
NS_C=sefl$TAG-coord
NS_0=sefl$TAG-shard0
NS_1=sefl$TAG-shard1
W=$(mktemp -d /tmp/sefl-netns.XXXXXX)
PIDS=()

cleanup() {
    sefl_stop "${PIDS[@]}"
    for ns in "$NS_C" "$NS_0" "$NS_1"; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# Probe once: containers often refuse namespaces even to root.
if ! out=$(ip netns add "$NS_C" 2>&1); then
    skip "ip netns add failed: $out"
fi
ip netns add "$NS_0" && ip netns add "$NS_1" || skip "ip netns add failed"

# coordinator 10.77.1.1 <-> shard0 10.77.1.2; coordinator 10.77.2.1 <-> shard1 10.77.2.2
setup_link() {   # setup_link I NS: the veth pair of shard I, living in NS
    local i=$1 ns=$2
    local c=vc$i-$TAG s=vs$i-$TAG
    ip link add "$c" type veth peer name "$s" &&
        ip link set "$c" netns "$NS_C" && ip link set "$s" netns "$ns" &&
        ip -n "$NS_C" addr add "10.77.$((i + 1)).1/24" dev "$c" &&
        ip -n "$ns" addr add "10.77.$((i + 1)).2/24" dev "$s" &&
        ip -n "$NS_C" link set "$c" up && ip -n "$ns" link set "$s" up &&
        ip -n "$ns" link set lo up
}
if ! out=$({ ip -n "$NS_C" link set lo up && setup_link 0 "$NS_0" && setup_link 1 "$NS_1"; } 2>&1); then
    skip "cannot build veth links between namespaces: $out"
fi
# The server certificate names both of the coordinator's addresses, so each
# shard checks it against the address it dials.
"$BIN/sefl-certs" init --dir "$W/certs" --clients "$CLIENTS" \
    --server-name 10.77.1.1 --server-name 10.77.2.1 >"$W/certs.log" 2>&1 ||
    { cat "$W/certs.log"; bad "sefl-certs init"; finish; }

ip netns exec "$NS_C" "$BIN/sefl-server" --listen 0.0.0.0:0 --certs "$W/certs" --db "$W/server.db" \
    --rounds "$ROUNDS" --clients-per-round "$CLIENTS" --min-clients "$CLIENTS" \
    --round-timeout 30 --epochs 1 --batch 10 --lr 0.005 --seed 7 \
    >"$W/server.log" 2>&1 &
SERVER=$!
PIDS+=("$SERVER")
if ! PORT=$(sefl_wait_port "$W/server.log" "$SERVER" 20); then
    cat "$W/server.log"
    bad "coordinator did not report its port"
    finish
fi
ok "coordinator listening on port $PORT in $NS_C"

for i in 0 1; do
    ns=$NS_0
    [ "$i" = 1 ] && ns=$NS_1
    ip netns exec "$ns" "$BIN/sefl-sim" --server "10.77.$((i + 1)).1:$PORT" --certs "$W/certs" \
        --clients "$CLIENTS" --partition pat:2 --seed 7 --state "$W/shard$i" --shard "$i/2" \
        --max-samples "$SAMPLES" >"$W/shard$i.log" 2>&1 &
    PIDS+=($!)
done

if sefl_wait_exit "$SERVER" 40; then
    ok "coordinator finished $ROUNDS rounds and exited 0"
else
    tail -n 20 "$W/server.log"
    bad "coordinator did not finish its rounds (status $?)"
fi
for i in 0 1; do
    if sefl_wait_exit "${PIDS[$((i + 1))]}" 5; then
        ok "shard $i/2 exited 0"
    else
        tail -n 5 "$W/shard$i.log"
        bad "shard $i/2 did not exit cleanly"
    fi
done

# Every client of both shards took part in every round.
q() { sqlite3 "$W/server.db" "$1" 2>/dev/null; }
want=$(for ((c = 0; c < CLIENTS; c++)); do printf 'client-%04d\n' "$c"; done)
got=$(q "SELECT name FROM clients WHERE rounds = $ROUNDS ORDER BY name")
if [ "$got" = "$want" ]; then
    ok "all $CLIENTS clients took part in all $ROUNDS rounds (server.db clients)"
else
    bad "clients with $ROUNDS rounds: $(echo $got) (want $(echo $want))"
fi
n=$(q "SELECT COUNT(*) FROM rounds")
[ "$n" = "$ROUNDS" ] && ok "$ROUNDS rounds committed" || bad "rounds committed: $n"
n=$(q "SELECT COUNT(DISTINCT client) FROM eval_reports")
[ "$n" = "$CLIENTS" ] && ok "$CLIENTS clients sent eval reports" || bad "clients with eval reports: $n"

# Each shard's clients came over its own link, from its own address.
j0=$(grep -c "joined from 10\.77\.1\.2" "$W/server.log" || true)
j1=$(grep -c "joined from 10\.77\.2\.2" "$W/server.log" || true)
if [ "$j0" -ge $((CLIENTS / 2)) ] && [ "$j1" -ge $((CLIENTS - CLIENTS / 2)) ]; then
    ok "clients joined from 10.77.1.2 ($j0) and 10.77.2.2 ($j1)"
else
    bad "joins from 10.77.1.2: $j0, from 10.77.2.2: $j1"
fi

# The shards split the clients: each ran a non-empty part, and the parts
# are disjoint (each client's private file exists in one shard only).
a=$(cd "$W/shard0" 2>/dev/null && ls | sort)
b=$(cd "$W/shard1" 2>/dev/null && ls | sort)
na=$(echo "$a" | grep -c . || true)
nb=$(echo "$b" | grep -c . || true)
both=$(comm -12 <(echo "$a") <(echo "$b") | grep -c . || true)
if [ "$na" -gt 0 ] && [ "$nb" -gt 0 ] && [ "$both" = 0 ]; then
    ok "shard0 kept $na private files, shard1 $nb, none in both"
else
    bad "state files: shard0 $na, shard1 $nb, in both $both"
fi
finish
