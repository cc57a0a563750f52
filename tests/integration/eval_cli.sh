#!/usr/bin/env bash
# eval_cli: sefl-eval as a user runs it, on server.db files made with the
# sqlite3 CLI in the schema of common/fl/state.h: the name-value lines scripts
# grep, the baseline comparison, --round/--best, the CSV/JSON/SVG files,
# --exclude-clients and --attackers (figures over the honest clients), and
# the exit status and one-line message of each error (1: unreadable db or no
# such reports, 2: bad arguments); --plot's chart and its errors.
set -u
cd "$(dirname "$0")/../.."
. tests/lib.sh

pass=0
fail=0
ok() { echo "ok: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
W=$(mktemp -d /tmp/sefl-eval-cli.XXXXXX)
trap 'rm -rf "$W"' EXIT
EVAL=$BIN/sefl-eval
if [ ! -x "$EVAL" ]; then
    echo "FAIL: $EVAL is not built"
    echo "0 passed, 1 failed"
    exit 1
fi

SCHEMA="CREATE TABLE meta(key TEXT PRIMARY KEY, value);
CREATE TABLE eval_reports(round INTEGER NOT NULL, client TEXT NOT NULL, examples INTEGER NOT NULL,
  accuracy REAL NOT NULL, loss REAL NOT NULL, received_at TEXT, PRIMARY KEY(round, client));
INSERT INTO meta VALUES('schema_version', 1), ('kind', 'server'), ('arch', 'cnn-se'), ('r', 8),
  ('fc1_gate', 1);"
# Run: round 2 and 4; at round 4 clients 0..2 have 0.9, 0.6, 0.3 on 100, 100, 200 examples.
sqlite3 "$W/a.db" "$SCHEMA INSERT INTO meta VALUES('private_groups', 'se');
INSERT INTO eval_reports VALUES
  (2, 'client-0000', 100, 0.5, 1, NULL), (2, 'client-0001', 100, 0.5, 1, NULL),
  (2, 'client-0002', 200, 0.9, 1, NULL),
  (4, 'client-0000', 100, 0.9, 1, NULL), (4, 'client-0001', 100, 0.6, 1, NULL),
  (4, 'client-0002', 200, 0.3, 1, NULL);"
# Baseline: client 0 worse, client 1 equal, client 2 better than the run.
sqlite3 "$W/b.db" "$SCHEMA INSERT INTO meta VALUES('private_groups', 'none');
INSERT INTO eval_reports VALUES
  (3, 'client-0000', 100, 0.5, 1, NULL), (3, 'client-0001', 100, 0.6, 1, NULL),
  (3, 'client-0002', 200, 0.4, 1, NULL);"
sqlite3 "$W/noev.db" "CREATE TABLE meta(key TEXT PRIMARY KEY, value);
INSERT INTO meta VALUES('schema_version', 1), ('kind', 'server');"

# expect NAME WANT FILE: the `NAME value` line of FILE has value WANT.
expect() {
    local got
    got=$(sefl_value "$3" "$1")
    if [ "$got" = "$2" ]; then ok "$1 $2"; else bad "$1 is '$got', want '$2'"; fi
}

if "$EVAL" --db "$W/a.db" --baseline "$W/b.db" --best --csv "$W/a.csv" --json "$W/a.json" \
    --svg "$W/a.svg" >"$W/out" 2>"$W/err"; then
    ok "sefl-eval with a baseline exits 0"
else
    bad "sefl-eval exited $?: $(cat "$W/err")"
fi
expect round 4 "$W/out"
expect baseline_round 3 "$W/out"
expect weighted_accuracy 0.5250 "$W/out"          # (90 + 60 + 60) / 400
expect mean_accuracy 0.6000 "$W/out"
expect min_accuracy 0.3000 "$W/out"
expect median_accuracy 0.6000 "$W/out"
expect baseline_weighted_accuracy 0.4750 "$W/out" # (50 + 60 + 80) / 400
expect better 1 "$W/out"
expect worse 1 "$W/out"
expect equal 1 "$W/out"
expect best_round 2 "$W/out"                      # (50 + 50 + 180) / 400 = 0.70
expect params_private 67500 "$W/out"
grep -q '^summary,weighted_accuracy,400,0.525000,0.475000,0.050000$' "$W/a.csv" &&
    ok "CSV summary row" || bad "CSV summary row missing"
grep -q '"weighted_accuracy": 0.525000' "$W/a.json" && ok "JSON summary" || bad "JSON summary missing"
if grep -q '</svg>' "$W/a.svg" && ! grep -q '<script' "$W/a.svg"; then
    ok "SVG written, static"
else
    bad "SVG incomplete"
fi

"$EVAL" --db "$W/a.db" --round 2 >"$W/out2" 2>&1
expect weighted_accuracy 0.7000 "$W/out2"

# err CODE PATTERN ARGS...: sefl-eval exits CODE with one stderr line matching PATTERN.
err() {
    local code=$1 pattern=$2 rc
    shift 2
    "$EVAL" "$@" >/dev/null 2>"$W/e"
    rc=$?
    if [ "$rc" = "$code" ] && [ "$(wc -l <"$W/e")" = 1 ] && grep -q "$pattern" "$W/e"; then
        ok "exit $code: $(cat "$W/e")"
    else
        bad "sefl-eval $* exited $rc with: $(cat "$W/e")"
    fi
}
err 1 "no such database file" --db "$W/missing.db"
err 1 "no eval_reports table" --db "$W/noev.db"
err 1 "no eval reports for round 3" --db "$W/a.db" --round 3
err 1 "no such database file" --db "$W/a.db" --baseline "$W/missing.db"
err 2 "required" --round 1
err 2 "round number" --db "$W/a.db" --round -1
err 2 "unknown" --db "$W/a.db" --frobnicate
"$EVAL" --help | grep -q "usage: sefl-eval" && ok "--help" || bad "--help"

# --plot: an x-y chart of accuracy from a points file.
printf '# r sweep\nprivate-se 270000 0.80 r=2\nprivate-se 17000 0.79 r=32\nprivate-head 5130 0.81\n' >"$W/pts"
if "$EVAL" --plot "$W/pts" --svg "$W/xy.svg" --logx --title "r sweep" >/dev/null 2>"$W/e" &&
    [ "$(grep -c '<polyline' "$W/xy.svg")" = 2 ] && grep -q '>r=32</text>' "$W/xy.svg"; then
    ok "--plot draws two series with their labels"
else
    bad "--plot: $(cat "$W/e")"
fi
printf 'se 1 1.5\n' >"$W/badpts"
err 1 "badpts:1: y must be an accuracy" --plot "$W/badpts" --svg "$W/b.svg"
err 1 "holds no points" --plot /dev/null --svg "$W/b.svg"
err 1 "cannot read" --plot "$W/missing" --svg "$W/b.svg"
err 2 "draws to --svg" --plot "$W/pts"
err 2 "belong to --plot" --db "$W/a.db" --logx

# The honest clients only: --attackers 0.3 --clients 3 leaves out ceil(0.9) =
# 1 client, client-0000 (as sefl-sim --attackers 0.3 picks it): (60 + 60) / 300.
"$EVAL" --db "$W/a.db" --attackers 0.3 --clients 3 >"$W/out3" 2>&1
expect weighted_accuracy 0.4000 "$W/out3"
expect clients 2 "$W/out3"
expect excluded_clients 1 "$W/out3"
"$EVAL" --db "$W/a.db" --exclude-clients client-0002,0 >"$W/out4" 2>&1
expect weighted_accuracy 0.6000 "$W/out4"
expect excluded_clients 2 "$W/out4"
err 2 "go together" --db "$W/a.db" --attackers 0.2
err 2 "attackers" --db "$W/a.db" --attackers 1.5 --clients 3
err 2 "not a client id or a range" --db "$W/a.db" --exclude-clients 2-1
err 1 "no eval reports of a client outside the excluded ones" --db "$W/a.db" --exclude-clients 0-2

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
