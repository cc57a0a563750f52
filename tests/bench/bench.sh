#!/bin/bash
# bench.sh (`make bench`): one-thread training speed of sefl against the
# PyTorch peer (tests/bench/torch_ref.py, Debian's
# python3-torch) on the same machine, same model, same data.
#
# For each batch size it runs `sefl-bench train` and `torch_ref.py speed`
# with the same batch and samples, alternating (so a busy moment on the
# machine hits both about equally), and prints the medians and the ratio:
#   ratio_b10 X   ratio_b32 X      (sefl samples/s over PyTorch's)
# PAIRS (default 3) and SAMPLES (default 6000) may be set in the environment.
# OPENBLAS_CORETYPE, if set, is left as it is: it is part of the machine.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
BENCH=$BUILD/bin/sefl-bench
REF=tests/bench/torch_ref.py
PY=/usr/bin/python3              # Debian's torch is installed for the system python
PAIRS=${PAIRS:-3}
SAMPLES=${SAMPLES:-6000}

if [ ! -x "$BENCH" ]; then
    echo "bench: $BENCH is missing; run make first" >&2
    exit 1
fi
if [ ! -f "$REF" ]; then
    echo "bench: the PyTorch reference $REF is missing" >&2
    exit 1
fi
# python3-torch is large, so `make deps` leaves it out and the bench installs it.
if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
    echo "bench: installing python3-torch (once)"
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-torch python3-numpy >/dev/null ||
        { echo "bench: could not install python3-torch" >&2; exit 1; }
fi

# value NAME: the value of the last `NAME value` line on stdin
value() { awk -v k="$1" '$1 == k { v = $2 } END { print v }'; }
# median of the numbers on stdin, one per line
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

echo "bench: $(nproc) cpus, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, $PAIRS pairs of $SAMPLES samples per batch size"
"$BENCH" sgemm | grep -E '^(gemm_backend|(sgemm|openblas)_(conv2_fwd_b10|conv2_fwd_b32|fc1_fwd_b10|square_1024)_gflops)'
fail=0
for b in 10 32; do
    : >"$tmp/s"
    : >"$tmp/t"
    : >"$tmp/g"
    for i in $(seq "$PAIRS"); do
        out=$("$BENCH" train --batch "$b" --samples "$SAMPLES") || { echo "bench: sefl-bench failed" >&2; fail=1; break; }
        s=$(echo "$out" | value train_samples_per_s)
        echo "$out" | value gflops >>"$tmp/g"
        t=$("$PY" "$REF" speed --batch "$b" --samples "$SAMPLES" --threads 1 2>/dev/null | value train_samples_per_s)
        if [ -z "$s" ] || [ -z "$t" ]; then echo "bench: a run printed no figure" >&2; fail=1; break; fi
        echo "batch $b run $i sefl $s torch $t"
        echo "$s" >>"$tmp/s"
        echo "$t" >>"$tmp/t"
    done
    [ "$fail" = 0 ] || break
    ms=$(median <"$tmp/s")
    mt=$(median <"$tmp/t")
    echo "sefl_samples_per_s_b$b $ms"
    echo "torch_samples_per_s_b$b $mt"
    echo "sefl_gflops_b$b $(median <"$tmp/g")"
    echo "ratio_b$b $(awk -v s="$ms" -v t="$mt" 'BEGIN { printf "%.2f", s / t }')"
done
exit "$fail"
