/* check_monitor: the status documents /status serves (JSON and the table
 * `sefl-server status` prints) rendered from a coord_status: every field,
 * null for what did not happen yet, the run settings with their flag names
 * and the text server.db records (numbers as JSON numbers, the rest as
 * strings), strings escaped, the table within 80 columns; a coordinator
 * waiting for eligible clients says why and lists who was refused. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "common/nn/params.h"
#include "common/strbuf.h"
#include "server/coord.h"
#include "server/monitor.h"
#include "tests/check_main.h"

static coord_config cfg;

static coord_status status_idle(void)
{
    coord_config_default(&cfg);
    return (coord_status){ .cfg = &cfg, .run_id = "ab\"c", .phase = "idle", .ready = 1 };
}

START_TEST(test_json_idle)
{
    coord_status st = status_idle();
    strbuf b = STRBUF_INIT;
    ck_assert_int_eq(monitor_status_json(&st, &b), 0);
    ck_assert_str_eq(b.p,
        "{\"run_id\":\"ab\\\"c\",\"phase\":\"idle\",\"ready\":true,\"round\":0,"
        "\"last_committed_round\":0,\"attempt\":0,\"deadline\":null,"
        "\"clients\":{\"connected\":0,\"selected\":0,\"reported\":0},"
        "\"eval_tasks\":{\"sent\":0,\"reported\":0},\"last_commit\":null,\"last_eval\":null,"
        "\"waiting\":null,\"refused_in_round\":{\"round\":0,\"clients\":0,\"listed\":[]},"
        "\"penalty_box\":0,\"settings\":{\"arch\":\"cnn-se\",\"r\":8,\"private\":\"se\",\"seed\":1,"
        "\"lr\":0.00999999978,\"momentum\":0,\"weight-decay\":0,\"prox-mu\":0,\"batch\":10,"
        "\"epochs\":1,\"clients-per-round\":10,\"min-clients\":2,\"over-select\":1.3,"
        "\"local-schedule\":\"joint\",\"private-lr\":0,\"max-weight-share\":0.5,"
        "\"max-update-norm\":\"100x\",\"penalty-rounds\":3,\"aggregate\":\"fedavg\",\"clip\":0,"
        "\"server-opt\":\"sgd lr=1\",\"dp-clip\":0,\"dp-noise\":0,\"dp-delta\":1e-05,\"wire-dtype\":\"f32\",\"update-dtype\":\"f32\",\"rounds\":0,"
        "\"round-timeout\":300,\"eval-every\":5,\"heartbeat\":10}}\n");
    strbuf_free(&b);
}
END_TEST

START_TEST(test_json_training)
{
    coord_status st = status_idle();
    st.phase = "train";
    st.round = 7;
    st.last_round = 6;
    st.attempt = 2;
    st.deadline = 1800000000.5;
    st.connected = 5;
    st.selected = 4;
    st.reported = 3;
    st.last_commit = 1799999999.25;
    st.has_eval = 1;
    st.eval_round = 5;
    st.eval_accuracy = 0.875;
    cfg.private_mask = PARAM_SE | PARAM_HEAD;
    cfg.lr = 0.005f;
    cfg.private_epochs = 2;
    snprintf(cfg.model.arch, sizeof cfg.model.arch, "mbv2-se");
    snprintf(cfg.model.gate, sizeof cfg.model.gate, "eca");
    cfg.private_lr = 0.1f;
    strbuf b = STRBUF_INIT;
    ck_assert_int_eq(monitor_status_json(&st, &b), 0);
    const char *want[] = {
        "\"phase\":\"train\"", "\"round\":7,\"last_committed_round\":6,\"attempt\":2",
        "\"deadline\":1800000000.500", "\"connected\":5,\"selected\":4,\"reported\":3",
        "\"last_commit\":1799999999.250",
        "\"last_eval\":{\"round\":5,\"weighted_accuracy\":0.875000}",
        "\"private\":\"se,head\"", "\"lr\":0.00499999989,",
        "\"arch\":\"mbv2-se\",\"r\":8,\"gate\":\"eca\",",
        "\"local-schedule\":\"private-first:2\",\"private-lr\":0.100000001,",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(b.p, want[i]), "no %s in %s", want[i], b.p);
    strbuf_free(&b);
}
END_TEST

START_TEST(test_table)
{
    coord_status st = status_idle();
    st.run_id = "";
    st.phase = "eval";
    st.ready = 0;
    st.eval_sent = 4;
    st.eval_got = 1;
    st.has_eval = 1;
    st.eval_round = 3;
    st.eval_accuracy = 0.5;
    strbuf b = STRBUF_INIT;
    ck_assert_int_eq(monitor_status_table(&st, &b), 0);
    const char *want[] = {
        "run        (none recorded)\n", "phase      eval (not ready)\n",
        "evaluation 1 of 4 reports\n", "committed  round 0\n",
        "last eval  round 3: weighted accuracy 0.5000\n", "settings   --arch cnn-se --r 8 ",
        " --lr 0.00999999978", " --max-update-norm 100x", " --heartbeat 10\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(b.p, want[i]), "no '%s' in:\n%s", want[i], b.p);
    ck_assert_ptr_null(strstr(b.p, "deadline"));
    /* No line of the table is wider than 80 columns. */
    for (const char *l = b.p; *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0))
        ck_assert_uint_le(strcspn(l, "\n"), 80);
    strbuf_free(&b);
}
END_TEST

/* A coordinator that waits because the round's refused clients leave too
 * few eligible: the JSON says why, with the refused clients and their
 * reasons (escaped); the table says what to do, one line per refused
 * client within 80 columns, and counts the ones it does not list. */
static coord_status status_waiting(void)
{
    coord_status st = status_idle();
    cfg.min_clients = 4;
    st.last_round = 1;
    st.next_round = 2;
    st.connected = 4;
    st.eligible = 3;
    st.waiting = "refused";
    st.boxed = 1;
    st.n_refused = COORD_STATUS_REFUSED + 2;
    static char names[COORD_STATUS_REFUSED][16];
    for (int i = 0; i < COORD_STATUS_REFUSED; i++) {
        snprintf(names[i], sizeof names[i], "client-%04d", i);
        st.refused[i] = (coord_refusal){ names[i], i ? "bad frame" :
            "update norm 1.2e+05 over the bound 312 (--max-update-norm 100x) in round 2, \"x\"" };
    }
    return st;
}

START_TEST(test_json_waiting)
{
    coord_status st = status_waiting();
    strbuf b = STRBUF_INIT;
    ck_assert_int_eq(monitor_status_json(&st, &b), 0);
    const char *want[] = {
        "\"waiting\":{\"reason\":\"refused\",\"round\":2,\"eligible\":3,\"needed\":4,"
        "\"refused\":[{\"client\":\"client-0000\",\"why\":\"update norm 1.2e+05 over the bound 312 "
        "(--max-update-norm 100x) in round 2, \\\"x\\\"\"},{\"client\":\"client-0001\"",
        "\"refused_in_round\":{\"round\":2,\"clients\":10,\"listed\":[{\"client\":\"client-0000\"",
        "\"penalty_box\":1,",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(b.p, want[i]), "no %s in %s", want[i], b.p);
    ck_assert_ptr_null(strstr(b.p, "client-0008"));
    strbuf_free(&b);
}
END_TEST

START_TEST(test_table_waiting)
{
    coord_status st = status_waiting();
    strbuf b = STRBUF_INIT;
    ck_assert_int_eq(monitor_status_table(&st, &b), 0);
    const char *want[] = {
        "waiting    round 2: 3 eligible, --min-clients 4: connect more\n"
        "           clients or lower --min-clients\n",
        "refused    client-0000: update norm 1.2e+05 over the bound 312 (--max-update-nor\n",
        "           client-0001: bad frame\n", "           and 2 more\n",
        "penalised  1 clients in the penalty box\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(b.p, want[i]), "no '%s' in:\n%s", want[i], b.p);
    for (const char *l = b.p; *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] != 0))
        ck_assert_uint_le(strcspn(l, "\n"), 80);
    strbuf_free(&b);

    st.waiting = "clients";
    st.n_refused = 0;
    st.connected = 2;
    ck_assert_int_eq(monitor_status_table(&st, &b), 0);
    ck_assert_msg(strstr(b.p, "waiting    for clients: 2 connected, --min-clients 4\n"), "%s", b.p);
    ck_assert_ptr_null(strstr(b.p, "refused"));
    strbuf_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("monitor");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_json_idle);
    tcase_add_test(tc, test_json_training);
    tcase_add_test(tc, test_table);
    tcase_add_test(tc, test_json_waiting);
    tcase_add_test(tc, test_table_waiting);
    suite_add_tcase(s, tc);
    return check_run(s);
}
