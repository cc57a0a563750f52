#!/usr/bin/env bash
# fl_personal: the personalization tools on real runs. Two federated runs
# of 6 simulated clients on pat:2 (private se, then head) with
# `sefl-sim --holdout 2`, then:
#   - the held-out clients 4 and 5 never connect (server.db's clients
#     table, no private file) and the others train every round;
#   - sefl-eval --gates: one line per trained client whose unpruned
#     accuracy is the EvalReport of the run's last round for that client (the
#     same model on the same test images), the per-channel table of
#     --client (608 channels), pruning at a high threshold that removes
#     channels and saves MACs, the similarity figures;
#   - sefl-eval --newcomers on both runs: the two held-out clients, the
#     accuracy after every epoch, the epochs to 95%, and the private
#     parameter count of each run's private set;
#   - bad arguments exit 2 with one line; a held-out --client, an empty
#     --state, a local-only db, a --holdout that names a trained client and
#     partition flags that do not give the run's test splits exit 1 with
#     one line.
cd "$(dirname "$0")/../.." || exit 1
source tests/lib.sh
sefl_need_fmnist || exit 0

sefl_fl_begin fl_personal 6 20 '*/*.log'
EVAL=$BIN/sefl-eval
PART="--partition pat:2 --clients 6 --seed 3 --max-samples 120"
for p in se head; do
    sefl_run_federated "$T/$p" "$T/certs" 120 \
        "--rounds 2 --clients-per-round 4 --min-clients 4 --eval-every 2 --private $p --lr 0.05 --batch 10 --seed 3" \
        "$PART --holdout 2 --threads 2"
    sefl_check "federated run with --private $p and --holdout 2 exits 0" [ $? = 0 ]
done
db=$T/se/server.db
sefl_check "server.db: only clients 0..3 ever connected, each in both rounds" \
    [ "$(sefl_sql "$db" "SELECT group_concat(name||':'||rounds, ' ') FROM (SELECT * FROM clients ORDER BY name)")" \
      = "client-0000:2 client-0001:2 client-0002:2 client-0003:2" ]
sefl_check "no private file for the held-out clients" \
    [ "$(ls "$T/se/clients")" = "$(printf 'client-0000.db\nclient-0001.db\nclient-0002.db\nclient-0003.db')" ]
sefl_check "sefl-sim logs the held-out count" grep -q "2 held out" "$T/se/sim.log"

# --gates on the se run.
"$EVAL" --gates --db "$db" --state "$T/se/clients" $PART >"$T/gates.out" 2>"$T/gates.err"
sefl_check "sefl-eval --gates exits 0" [ $? = 0 ]
sefl_check "--gates: 4 clients measured" [ "$(sefl_value "$T/gates.out" clients)" = 4 ]
"$EVAL" --db "$db" >"$T/report.out"
same=1
for c in 0 1 2 3; do
    g=$(awk -v n="client-000$c" '$1 == n { print $7 }' "$T/gates.out")
    r=$(awk -v n="client-000$c" '$1 == n { print $3 }' "$T/report.out")
    [ -n "$g" ] && [ "$g" = "$r" ] || same=0
done
sefl_check "--gates: each client's unpruned accuracy is its EvalReport of the last round" [ $same = 1 ]
for k in macs_per_sample weighted_accuracy weighted_accuracy_pruned gate_pairs_disjoint \
    gate_cosine_disjoint gate_cosine_centered_disjoint; do
    sefl_check "--gates prints $k" grep -qE "^$k [-0-9.]+$" "$T/gates.out"
done
pairs=$(awk '/^gate_pairs_/ { s += $2 } END { print s }' "$T/gates.out")
sefl_check "--gates: the pairs of 4 clients are 6" [ "$pairs" = 6 ]

"$EVAL" --gates --db "$db" --state "$T/se/clients" $PART --client 1 --gate-threshold 0.99 \
    >"$T/gates1.out" 2>&1
sefl_check "--gates --client 1 exits 0" [ $? = 0 ]
sefl_check "--client 1: one line per channel (32 + 64 + 512)" \
    [ "$(grep -c '^client-0001 se[123] ' "$T/gates1.out")" = 608 ]
pruned=$(awk '$1 == "client-0001" && NF == 7 && $7 == 1' "$T/gates1.out" | wc -l)
sefl_check "threshold 0.99 prunes channels (a gate under 0.99 on every image), each listed" \
    [ "$pruned" -gt 0 ] && [ "$(sefl_value "$T/gates1.out" pruned_channels_mean)" = "$pruned.00" ]
sefl_check "and saves MACs" [ "$(sefl_value "$T/gates1.out" macs_saved_mean)" -gt 0 ]

# --newcomers on both runs.
for p in se head; do
    "$EVAL" --newcomers --db "$T/$p/server.db" --holdout 2 $PART --epochs 5 --lr 0.05 \
        >"$T/new-$p.out" 2>"$T/new-$p.err"
    sefl_check "sefl-eval --newcomers on the $p run exits 0" [ $? = 0 ]
    sefl_check "--newcomers ($p): clients 4 and 5 adapted" \
        [ "$(awk '$1 ~ /^client-000[45]$/' "$T/new-$p.out" | wc -l)" = 2 ] && \
        [ "$(sefl_value "$T/new-$p.out" newcomers)" = 2 ]
    sefl_check "--newcomers ($p): accuracy after epochs 0 to 5, and epochs to 95%" \
        [ "$(grep -cE '^ +[0-9]+ [01]\.[0-9]{4}$' "$T/new-$p.out")" = 6 ] && \
        grep -qE '^newcomer_epochs_to_95 [0-5]$' "$T/new-$p.out"
done
sefl_check "--newcomers: 67500 private parameters for se, 5130 for head" \
    [ "$(sefl_value "$T/new-se.out" newcomer_private_params)" = 67500 ] && \
    [ "$(sefl_value "$T/new-head.out" newcomer_private_params)" = 5130 ]
sefl_check "--newcomers: default --at 0,1,5,20 cut to --epochs 5" \
    grep -q '^newcomer_accuracy_e5 ' "$T/new-se.out" && sefl_not grep -q '_e20 ' "$T/new-se.out"

# Errors: exit 2 for arguments, 1 for what cannot be read; one line each.
err_is() { # STATUS PATTERN CMD...: CMD exits STATUS with one stderr line matching PATTERN
    local want=$1 pat=$2
    shift 2
    "$@" >/dev/null 2>"$T/e"
    local got=$?
    [ $got = "$want" ] && [ "$(wc -l <"$T/e")" = 1 ] && grep -q -- "$pat" "$T/e"
}
sefl_check "--gates without --state: exit 2" err_is 2 "needs --state" "$EVAL" --gates --db "$db" $PART
sefl_check "--gates without the partition: exit 2" err_is 2 "needs the run's --partition" \
    "$EVAL" --gates --db "$db" --state "$T/se/clients"
sefl_check "--gates and --newcomers together: exit 2" err_is 2 "give one" \
    "$EVAL" --gates --newcomers --db "$db" --state "$T/se/clients" $PART
sefl_check "--gates with --csv: exit 2" err_is 2 "belong to the accuracy report" \
    "$EVAL" --gates --db "$db" --state "$T/se/clients" $PART --csv "$T/x.csv"
sefl_check "--gate-threshold 1: exit 2" err_is 2 "--gate-threshold" \
    "$EVAL" --gates --db "$db" --state "$T/se/clients" $PART --gate-threshold 1
sefl_check "--newcomers --holdout 6 of 6: exit 2" err_is 2 "1 <= H < --clients" \
    "$EVAL" --newcomers --db "$db" --holdout 6 $PART
sefl_check "--newcomers --at past --epochs: exit 2" err_is 2 "past --epochs" \
    "$EVAL" --newcomers --db "$db" --holdout 2 $PART --epochs 3 --at 0,4
sefl_check "--gates --client 4 (held out): exit 1, no file made" err_is 1 "no such file" \
    "$EVAL" --gates --db "$db" --state "$T/se/clients" $PART --client 4
sefl_check "  and no client-0004.db appeared" [ ! -e "$T/se/clients/client-0004.db" ]
sefl_check "--newcomers --holdout 3 (client 3 trained): exit 1" err_is 1 "not a newcomer" \
    "$EVAL" --newcomers --db "$db" --holdout 3 $PART
sefl_check "--gates with another --max-samples than the run's: exit 1" err_is 1 \
    "evaluated on 120 test samples, these flags give it 60" \
    "$EVAL" --gates --db "$db" --state "$T/se/clients" --partition pat:2 --clients 6 --seed 3 --max-samples 60
sefl_check "--gates with fewer --clients than the run's: exit 1" err_is 1 "not a client id of --clients 3" \
    "$EVAL" --gates --db "$db" --state "$T/se/clients" --partition pat:2 --clients 3 --seed 3 --max-samples 120
mkdir -p "$T/empty"
sefl_check "--gates on an empty --state: exit 1" err_is 1 "holds no client" \
    "$EVAL" --gates --db "$db" --state "$T/empty" $PART
"$BIN/sefl-sim" --local-only --db "$T/local.db" --rounds 1 --state "$T/local" $PART >/dev/null 2>&1
sefl_check "--newcomers on a local-only db: exit 1" err_is 1 "local" \
    "$EVAL" --newcomers --db "$T/local.db" --holdout 2 $PART
sefl_check "sefl-sim --holdout 6 of 6 clients: exit 2" err_is 2 "leaves no client" \
    "$BIN/sefl-sim" --local-only --db "$T/l2.db" --rounds 1 --state "$T/l2" $PART --holdout 6

sefl_summary
