# tests/lib.sh: shell helpers shared by the integration scripts, the demo
# and the results run. Sourced, never run. Add functions, do not change the
# meaning of existing ones.
#
# Expects the caller to be at the repository root. Sets BUILD (default
# build), BIN (release programs) and TEST_BIN (the test builds of sefl-client
# and sefl-sim, with the switches of client/testswitch.h).

BUILD=${BUILD:-build}
BIN=$BUILD/bin
TEST_BIN=$BUILD/test-bin

# sefl_wait_port LOG PID [TIMEOUT_S]: waits until the coordinator logging to
# LOG prints its `listening ... HOST:PORT` line and prints PORT. Fails (1) when
# PID exits first or after TIMEOUT_S seconds (default 20).
sefl_wait_port() {
    local log=$1 pid=$2 timeout=${3:-20} i port
    for ((i = 0; i < timeout * 10; i++)); do
        port=$(sed -n 's/.*listening.*:\([0-9][0-9]*\).*/\1/p' "$log" 2>/dev/null | head -n 1)
        if [ -n "$port" ]; then
            echo "$port"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# sefl_wait_exit PID TIMEOUT_S: waits for PID, a background child of this
# shell, and returns its exit status; after TIMEOUT_S seconds sends TERM,
# then KILL, and returns 124.
sefl_wait_exit() {
    local pid=$1 timeout=$2 i
    for ((i = 0; i < timeout * 10; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid"
            return $?
        fi
        sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 124
}

# sefl_stop PID...: ends background children of this shell: TERM, up to 5 s,
# then KILL. For cleanup traps; never fails.
sefl_stop() {
    local pid
    for pid in "$@"; do
        if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for pid in "$@"; do
        if [ -n "$pid" ]; then sefl_wait_exit "$pid" 5 >/dev/null 2>&1 || true; fi
    done
    return 0
}

# sefl_value FILE NAME: prints the value of the first `NAME value` line of
# FILE (the form sefl-eval and sefl-bench print), or nothing.
sefl_value() {
    awk -v k="$2" '$1 == k { print $2; exit }' "$1"
}

# sefl_run_federated DIR CERTS TIMEOUT_S "SERVER_ARGS" "SIM_ARGS": one
# federated run on this machine. Starts sefl-server on 127.0.0.1:0 with
# --certs CERTS --db DIR/server.db and SERVER_ARGS (split on spaces), reads
# its port, runs sefl-sim --server 127.0.0.1:PORT --certs CERTS --state
# DIR/clients with SIM_ARGS, and waits for both (the coordinator at most
# TIMEOUT_S seconds). Logs go to DIR/server.log and DIR/sim.log. Returns 0
# when both exit 0; otherwise prints the failing log's tail and returns 1.
# SEFL_SERVER_PID and SEFL_SIM_PID name the running processes, for a trap
# that calls sefl_stop on them.
sefl_run_federated() {
    local dir=$1 certs=$2 timeout=$3 server_args=$4 sim_args=$5 port
    mkdir -p "$dir"
    # shellcheck disable=SC2086  # the argument strings are split on purpose
    "$BIN/sefl-server" --listen 127.0.0.1:0 --certs "$certs" --db "$dir/server.db" \
        $server_args >"$dir/server.log" 2>&1 &
    SEFL_SERVER_PID=$!
    if ! port=$(sefl_wait_port "$dir/server.log" "$SEFL_SERVER_PID" 30); then
        tail -n 20 "$dir/server.log"
        echo "the coordinator did not start (log: $dir/server.log)"
        return 1
    fi
    # shellcheck disable=SC2086
    "$BIN/sefl-sim" --server "127.0.0.1:$port" --certs "$certs" --state "$dir/clients" \
        $sim_args >"$dir/sim.log" 2>&1 &
    SEFL_SIM_PID=$!
    if ! sefl_wait_exit "$SEFL_SERVER_PID" "$timeout"; then
        tail -n 20 "$dir/server.log"
        echo "the coordinator failed or timed out (log: $dir/server.log)"
        return 1
    fi
    SEFL_SERVER_PID=
    if ! sefl_wait_exit "$SEFL_SIM_PID" 60; then
        tail -n 20 "$dir/sim.log"
        echo "sefl-sim failed (log: $dir/sim.log)"
        return 1
    fi
    SEFL_SIM_PID=
    return 0
}

# ---- federated integration tests (tests/integration/fl_*.sh) -------------

# sefl_check DESC CMD...: runs CMD and counts the result: prints "ok - DESC"
# or "FAIL - DESC". sefl_summary prints the "N passed, N failed" line and
# returns 1 when anything failed.
SEFL_PASSED=0
SEFL_FAILED=0
sefl_check() {
    local desc=$1
    shift
    if "$@"; then
        SEFL_PASSED=$((SEFL_PASSED + 1))
        echo "ok - $desc"
    else
        SEFL_FAILED=$((SEFL_FAILED + 1))
        echo "FAIL - $desc"
    fi
}
# sefl_not CMD...: true when CMD fails (`!` for sefl_check).
sefl_not() {
    ! "$@"
}
sefl_summary() {
    echo "$SEFL_PASSED passed, $SEFL_FAILED failed"
    [ "$SEFL_FAILED" = 0 ]
}

# sefl_need_fmnist: returns 1 (after saying why) when the real
# Fashion-MNIST files of the Debian package are not installed.
sefl_need_fmnist() {
    if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
        echo "skipped: Fashion-MNIST not installed (make deps installs dataset-fashion-mnist)"
        echo "0 passed, 0 failed"
        return 1
    fi
}

# sefl_fl_begin NAME CLIENTS TAIL LOGS: the start of a federated test.
# Sets T to a new directory /tmp/NAME.XXXXXX and makes a project of CLIENTS
# client certificates in $T/certs (quietly). Its EXIT trap stops the
# coordinator and the clients (SEFL_SERVER_PID, SEFL_CLIENT_PIDS), prints
# the last TAIL lines of the logs "$T"/LOGS (a glob such as '*.log' or
# '*/*.log') when a check failed, and removes T unless SEFL_KEEP is set.
sefl_fl_begin() {
    T=$(mktemp -d "/tmp/$1.XXXXXX")
    SEFL_FL_TAIL=$3
    SEFL_FL_LOGS=$4
    trap sefl_fl_cleanup EXIT
    "$BIN/sefl-certs" init --dir "$T/certs" --clients "$2" >/dev/null 2>&1
}
sefl_fl_cleanup() {
    sefl_stop "${SEFL_SERVER_PID:-}" "${SEFL_CLIENT_PIDS[@]}"
    # shellcheck disable=SC2086  # SEFL_FL_LOGS is a glob, expanded on purpose
    if [ "$SEFL_FAILED" != 0 ]; then tail -n "$SEFL_FL_TAIL" "$T"/$SEFL_FL_LOGS; fi
    [ -n "${SEFL_KEEP:-}" ] || rm -rf "$T"
}

# sefl_wait_log FILE PATTERN TIMEOUT_S [COUNT]: waits until FILE holds COUNT
# (default 1) lines matching the extended regex PATTERN. Returns 1 on timeout.
sefl_wait_log() {
    local file=$1 pattern=$2 timeout=$3 count=${4:-1} i
    for ((i = 0; i < timeout * 20; i++)); do
        [ "$(grep -cE -- "$pattern" "$file" 2>/dev/null)" -ge "$count" ] && return 0
        sleep 0.05
    done
    echo "timed out after ${timeout}s waiting for '$pattern' in $file" >&2
    return 1
}

# sefl_start_server LOG LISTEN ARGS...: starts sefl-server --listen LISTEN
# ARGS in the background with stderr to LOG; sets SEFL_SERVER_PID and
# SEFL_PORT (the port it listens on). Returns 1 when it does not start.
sefl_start_server() {
    local log=$1 listen=$2
    shift 2
    "$BIN/sefl-server" --listen "$listen" "$@" 2>"$log" &
    SEFL_SERVER_PID=$!
    SEFL_PORT=$(sefl_wait_port "$log" "$SEFL_SERVER_PID" 20) || {
        tail -n 5 "$log"
        return 1
    }
}

# sefl_start_client DIR I N PORT ARGS...: starts sefl-client client-000I
# (certificates in DIR/certs, store DIR/cI.db, log DIR/cI.log) on its share
# I of a pat:2 partition of Fashion-MNIST over N clients; appends its pid to
# SEFL_CLIENT_PIDS and sets SEFL_CLIENT_PID. SEFL_CLIENT_BIN (default the
# release sefl-client) names the program, e.g. "$TEST_BIN/sefl-client".
SEFL_CLIENT_PIDS=()
sefl_start_client() {
    local dir=$1 i=$2 n=$3 port=$4
    shift 4
    "${SEFL_CLIENT_BIN:-$BIN/sefl-client}" --server "127.0.0.1:$port" --certs "$dir/certs" \
        --name "$(printf 'client-%04d' "$i")" --db "$dir/c$i.db" \
        --partition pat:2 --num-clients "$n" --index "$i" --seed 1 \
        --backoff-min-ms 100 --backoff-max-ms 1000 "$@" 2>>"$dir/c$i.log" &
    SEFL_CLIENT_PID=$!
    SEFL_CLIENT_PIDS+=("$SEFL_CLIENT_PID")
}

# sefl_fd_count PID: open file descriptors of a running process.
sefl_fd_count() {
    ls "/proc/$1/fd" 2>/dev/null | wc -l
}

# sefl_all_gone PORT PID...: true when none of the PIDs runs any more and
# nothing listens on 127.0.0.1:PORT.
sefl_all_gone() {
    local port=$1 pid
    shift
    for pid in "$@"; do
        kill -0 "$pid" 2>/dev/null && return 1
    done
    ! ss -ltnH "sport = :$port" 2>/dev/null | grep -q .
}

# sefl_sql DB SQL: one value (or rows) from a SQLite file, read-only.
sefl_sql() {
    sqlite3 -readonly "$1" "$2"
}

# ---- cleanup and certificates (tests/integration/tls_*.sh) ---------------

# sefl_track PID...: remembers background processes for sefl_cleanup.
# sefl_tmpdir VAR: makes a temporary directory, stores its path in VAR and
# remembers it for sefl_cleanup. sefl_cleanup_on_exit installs an EXIT trap
# that stops every tracked process (sefl_stop) and removes those
# directories, so a failing or interrupted script leaves nothing behind.
SEFL_TRACKED_PIDS=()
SEFL_TRACKED_DIRS=()
sefl_track() {
    SEFL_TRACKED_PIDS+=("$@")
}
sefl_tmpdir() {
    local d
    d=$(mktemp -d "${TMPDIR:-/tmp}/sefl.XXXXXX") || return 1
    SEFL_TRACKED_DIRS+=("$d")
    printf -v "$1" '%s' "$d"
}
sefl_cleanup() {
    if [ ${#SEFL_TRACKED_PIDS[@]} -gt 0 ]; then sefl_stop "${SEFL_TRACKED_PIDS[@]}"; fi
    local d
    for d in "${SEFL_TRACKED_DIRS[@]}"; do rm -rf -- "$d"; done
    return 0
}
sefl_cleanup_on_exit() {
    trap sefl_cleanup EXIT
}

# sefl_make_certs DIR [ARGS...]: a fresh project in DIR with
# `sefl-certs init --dir DIR ARGS` (e.g. --clients 2). Quiet on success;
# prints sefl-certs' error and returns 1 otherwise.
sefl_make_certs() {
    local dir=$1 out
    shift
    if ! out=$("$BIN/sefl-certs" init --dir "$dir" "$@" 2>&1); then
        echo "$out"
        return 1
    fi
}

# ---- the Python client (tests/integration/py_client.py) -------------------

# sefl_need_py DIR: finds a Python 3 with google.protobuf (Debian's
# python3-protobuf lives in /usr/bin/python3's path) and protoc, generates
# DIR/fl_pb2.py from proto/fl.proto, and sets SEFL_PY. Returns 1 (after
# saying why) when either is missing.
sefl_need_py() {
    local py
    SEFL_PY=
    for py in /usr/bin/python3 python3; do
        if "$py" -c 'import google.protobuf' 2>/dev/null; then SEFL_PY=$py; break; fi
    done
    if [ -z "$SEFL_PY" ] || ! command -v protoc >/dev/null; then
        echo "skipped: needs python3-protobuf and protobuf-compiler (make deps installs them)"
        echo "0 passed, 0 failed"
        return 1
    fi
    protoc --python_out="$1" -Iproto proto/fl.proto
}

# sefl_start_py DIR NAME PORT [ARGS...]: starts py_client.py as NAME against
# 127.0.0.1:PORT with DIR/certs and DIR/fl_pb2.py, output to DIR/NAME.py.log;
# sets SEFL_PY_PID and adds it to SEFL_CLIENT_PIDS.
sefl_start_py() {
    local dir=$1 name=$2 port=$3
    shift 3
    "$SEFL_PY" tests/integration/py_client.py --server "127.0.0.1:$port" --certs "$dir/certs" \
        --name "$name" --pb-dir "$dir" "$@" >>"$dir/$name.py.log" 2>&1 &
    SEFL_PY_PID=$!
    SEFL_CLIENT_PIDS+=("$SEFL_PY_PID")
}
