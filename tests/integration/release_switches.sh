#!/usr/bin/env bash
# release_switches: the test-only switches of client/testswitch.h
# (SEFL_FAULT, SEFL_TAP_DIR, the latter writing frames before encryption to
# disk, SEFL_HOST_TOKEN) exist in the test builds (build/test-bin) and in none of the release
# programs of build/bin. The test-build check makes sure the search can find
# them, so that the release check could fail.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
pass=0 fail=0
check() { if eval "$2"; then echo "ok - $1"; pass=$((pass + 1)); else echo "not ok - $1"; fail=$((fail + 1)); fi; }

for p in sefl-client sefl-sim; do
    check "the test build of $p carries the switches" \
        "strings '$TEST_BIN/$p' | grep -q SEFL_FAULT && strings '$TEST_BIN/$p' | grep -q SEFL_TAP_DIR &&
         strings '$TEST_BIN/$p' | grep -q SEFL_HOST_TOKEN"
done
for p in "$BIN"/sefl-*; do
    check "release $(basename "$p") contains none of SEFL_FAULT, SEFL_TAP_DIR, SEFL_HOST_TOKEN" \
        "! strings '$p' | grep -q -e SEFL_FAULT -e SEFL_TAP_DIR -e SEFL_HOST_TOKEN"
done
check "release sefl-client --help names no test switch" \
    "! '$BIN/sefl-client' --help | grep -q -e SEFL_FAULT -e SEFL_TAP"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
