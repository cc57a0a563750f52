#!/bin/bash
# coverage.sh (`make coverage`): line coverage per folder of the whole test
# run. Builds everything with gcov instrumentation into build-cov, runs
# `make check` there (every suite and integration script), collects the
# counts with lcov and prints one line per folder:
#   coverage FOLDER LINES_HIT LINES_TOTAL PERCENT
# then the total. The lcov tracefile stays in build-cov/coverage.info
# (genhtml build-cov/coverage.info -o DIR makes the HTML pages).
set -u
cd "$(dirname "$0")/.." || exit 1
B=build-cov
command -v lcov >/dev/null || { echo "coverage: lcov is missing (make deps installs it)" >&2; exit 1; }

rm -rf "$B"
make --no-print-directory BUILD="$B" OPT=-O0 COVERAGE=1 check >"$B.log" 2>&1
rc=$?
mkdir -p "$B"
mv "$B.log" "$B/check.log"
[ "$rc" = 0 ] || echo "coverage: make check failed under coverage (see $B/check.log); figures are of what ran"

lcov --quiet --capture --directory "$B/obj" --output-file "$B/all.info" --rc lcov_branch_coverage=0 2>/dev/null || {
    echo "coverage: lcov found no data" >&2; exit 1; }
# Only the project's own sources (not the generated protobuf code, not the tests).
lcov --quiet --extract "$B/all.info" "$PWD/common/*" "$PWD/server/*" "$PWD/client/*" \
    --output-file "$B/coverage.info" 2>/dev/null

# Folders by the file paths in the tracefile: SF: names a file, LH/LF its
# lines hit and found.
awk -v root="$PWD/" '
    /^SF:/ { f = substr($0, 4); sub(root, "", f); n = split(f, p, "/"); d = p[1]; for (i = 2; i < n; i++) d = d "/" p[i] }
    /^LH:/ { hit[d] += substr($0, 4); th += substr($0, 4) }
    /^LF:/ { tot[d] += substr($0, 4); tt += substr($0, 4) }
    END {
        for (d in tot) printf "coverage %-12s %6d %6d %5.1f%%\n", d, hit[d], tot[d], 100 * hit[d] / tot[d] | "sort"
        close("sort")
        printf "coverage %-12s %6d %6d %5.1f%%\n", "total", th, tt, 100 * th / tt
    }' "$B/coverage.info"
exit "$rc"
