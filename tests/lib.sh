# tests/lib.sh: shell helpers shared by the integration scripts, the demo
# and the results run. Sourced, never run. Add functions, do not change the
# meaning of existing ones.
#
# Expects the caller to be at the repository root. Sets BUILD (default
# build) and BIN.

BUILD=${BUILD:-build}
BIN=$BUILD/bin

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
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
    done
    for pid in "$@"; do
        [ -n "$pid" ] && sefl_wait_exit "$pid" 5 >/dev/null 2>&1
    done
    return 0
}

# sefl_value FILE NAME: prints the value of the first `NAME value` line of
# FILE (the form sefl-eval and sefl-bench print), or nothing.
sefl_value() {
    awk -v k="$2" '$1 == k { print $2; exit }' "$1"
}
