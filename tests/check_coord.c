/* check_coord: the coordinator (server/coord.c) against scripted clients
 * built on conn.c and wire.c, all on one libuv loop over loopback TLS with
 * certificates from build/bin/sefl-certs.
 *
 * The round test checks FedAvg exactly: three selected clients send
 * updates whose values are known, a fourth (not selected) and the third's
 * malformed updates (stale and future round, missing tensor, zero and
 * oversized weight, duplicate) are each answered with Error{REJECTED}, and
 * the committed model's shared set equals the example-weighted mean of the
 * three valid updates while its private tensors keep their initial values.
 * Its tasks go out one at a time (a send window of one byte). The same run
 * checks what monitoring reads: coord_get_status before and after, and the
 * event metrics counting the commit and each rejection under its reason.
 *
 * A client that leaves mid-round (its connection closed, as a killed
 * client's is) ends the round at once when waiting cannot change the
 * outcome: a commit with the updates in, or an abandon and a retry. Those
 * tests set a deadline (an hour) far beyond Check's timeout, so waiting for
 * it would fail them. A client welcomed while an evaluation is open is
 * evaluated in it. Clients that send one host token get a task's model in
 * full once and references after; a ModelRequest is answered in full once
 * per client and task, and refused otherwise.
 * Every test ends with uv_loop_close() == 0.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common/net/conn.h"
#include "server/coord.h"
#include "server/metrics.h"
#include "common/log.h"
#include "common/nn/model.h"
#include "common/nn/params.h"
#include "common/fl/state.h"
#include "common/store.h"
#include "common/net/tls.h"
#include "common/fl/wire.h"
#include "common/fl/wire_ref.h"
#include "tests/check_main.h"
#include "tests/check_sql.h"

enum { N_FAKES = 4, N_BAD = 6, SEED = 7 };

static char base_dir[64], certs_dir[128];
static param_table table;

/* Script of a fake client. */
enum { ROLE_GOOD, ROLE_BAD, ROLE_LATE, ROLE_SILENT };

typedef struct {
    int role;
    char name[80];
    tls_ctx *tls;
    conn *c;
    float value;                /* its update's base value */
    uint32_t examples;          /* its Hello train_examples and Update weight */
    uint32_t task_round;        /* round of the TrainTask it got, 0: none */
    uint32_t quit_round;        /* closes on its TrainTask of this round, 0: never */
    int rejoin;                 /* reconnections left after quitting, or (silent) after
                                   the coordinator closed it */
    int hold_eval;              /* keeps its EvalReport (fake_eval_report sends it) */
    uint32_t poison_round;      /* its update of this round is scaled by 1e6, 0: never */
    uint32_t diverge_round;     /* answers this round with Error{DIVERGED}, 0: never */
    uint32_t eval_round;        /* round of the EvalTask it got last */
    int welcomed, errors, byes, evals, trains, closed, sent, pings;
    uint8_t token;              /* sends a host token of 16 such bytes, 0: none */
    int ask;                    /* on its first reference: a ModelRequest with a wrong
                                   model, then the right one, then the same again */
    int asked;                  /* 1: requests sent, 2: the full task came */
    int train_full, train_refs, eval_full, eval_refs;  /* tasks in full / by reference */
    uint8_t label[WIRE_REF_LEN];  /* model_ref of its last full task */
    uint8_t ref[WIRE_REF_LEN];    /* model_ref of its last task by reference */
    char bye[32];
    float *buf;                 /* (table.total) its model */
} fake;

static uv_loop_t loop;
static coord *co;
static fake fakes[N_FAKES];
static int released;            /* the good clients may send */
static char db_path[160];

static coord_config test_config(void)
{
    coord_config c;
    coord_config_default(&c);
    c.listen = "127.0.0.1:0";
    c.certs_dir = certs_dir;
    c.db_path = db_path;
    c.rounds = 1;
    c.clients_per_round = 3;
    c.min_clients = 3;
    c.over_select = 1.0;
    c.round_timeout = 20;
    c.eval_every = 0;
    c.seed = SEED;
    c.heartbeat = 5;
    return c;
}

static void fake_send(fake *f, Sefl__Envelope *e)
{
    uint8_t *frame;
    size_t len;
    ck_assert_int_eq(wire_encode(e, &frame, &len), 0);
    ck_assert_int_eq(conn_send_frame(f->c, frame, len), 0);
    free(frame);
}

/* Sends an Update of round with the shared set filled from value (element i
 * gets value + (i % 7) / 4) and the given weight; drop_last leaves the last
 * tensor out. */
static void fake_update(fake *f, uint32_t round, float value, uint32_t examples, int drop_last)
{
    param_sel sh = params_shared(PARAM_SE);
    size_t n = params_count(&table, sh);
    float *flat = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) flat[i] = value + (float)(i % 7) * 0.25f;
    params_scatter(&table, sh, flat, f->buf);
    free(flat);
    wire_tensors wt;
    ck_assert_int_eq(wire_tensors_build(&table, sh, f->buf, &wt), 0);
    Sefl__Update u = SEFL__UPDATE__INIT;
    u.round = round;
    u.examples = examples;
    u.tensors = wt.v;
    u.n_tensors = wt.n - (drop_last ? 1 : 0);
    u.train_loss = 1.0f;
    u.train_accuracy = 0.5f;
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    e.msg_case = SEFL__ENVELOPE__MSG_UPDATE;
    e.update = &u;
    fake_send(f, &e);
    wire_tensors_release(&wt);
    f->sent++;
}

/* A good client's answer to its TrainTask of round: its update (scaled by
 * 1e6 in its poison_round), or Error{DIVERGED} in its diverge_round. */
static void fake_answer(fake *f, uint32_t round)
{
    if (round == f->diverge_round) {
        uint8_t *frame;
        size_t len;
        ck_assert_int_eq(wire_encode_error(WIRE_ERR_DIVERGED, "training diverged", &frame, &len), 0);
        ck_assert_int_eq(conn_send_frame(f->c, frame, len), 0);
        free(frame);
        return;
    }
    fake_update(f, round, round == f->poison_round ? f->value * 1e6f : f->value, f->examples, 0);
}

/* From now on the good clients send their updates, first those they held. */
static void release(void)
{
    released = 1;
    for (int i = 0; i < N_FAKES; i++)
        if (fakes[i].role == ROLE_GOOD && fakes[i].task_round) fake_answer(&fakes[i], fakes[i].task_round);
}

static void fake_connect(fake *f);

/* Round 1 with clients 3, 0 and 1 (min_clients 3 starts it when they are
 * in), their answers held until client 2 is connected too. */
static void start_with_3_0_1_then_2(void)
{
    fake_connect(&fakes[3]);
    fake_connect(&fakes[0]);
    fake_connect(&fakes[1]);
    while (!fakes[3].task_round || !fakes[0].task_round || !fakes[1].task_round)
        uv_run(&loop, UV_RUN_ONCE);
    fake_connect(&fakes[2]);
    while (!fakes[2].welcomed) uv_run(&loop, UV_RUN_ONCE);
    release();
}

/* The good clients send once every malformed update has been answered, so
 * that each rejection happened while the round was open. */
static void maybe_release(void)
{
    if (released || fakes[1].errors < N_BAD || fakes[3].errors < 1) return;
    release();
}

/* Answers the EvalTask f got last. */
static void fake_eval_report(fake *f)
{
    Sefl__EvalReport r = SEFL__EVAL_REPORT__INIT;
    r.round = f->eval_round;
    r.examples = 10;
    r.accuracy = 0.5f;
    r.loss = 1.0f;
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    e.msg_case = SEFL__ENVELOPE__MSG_EVAL_REPORT;
    e.eval_report = &r;
    fake_send(f, &e);
}

static void fake_on_open(conn *c)
{
    fake *f = conn_user(c);
    Sefl__ModelSpec spec;
    wire_spec_from_table(&table, &spec);
    Sefl__Hello h = SEFL__HELLO__INIT;
    h.spec = &spec;
    h.train_examples = f->examples;
    h.test_examples = 10;
    uint8_t token[WIRE_HOST_TOKEN_LEN];
    memset(token, f->token, sizeof token);
    if (f->token) h.host_token = (ProtobufCBinaryData){ sizeof token, token };
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    e.msg_case = SEFL__ENVELOPE__MSG_HELLO;
    e.hello = &h;
    fake_send(f, &e);
}

static void fake_model_request(fake *f, uint32_t round, const uint8_t *ref, int wrong)
{
    uint8_t r[WIRE_REF_LEN];
    memcpy(r, ref, sizeof r);
    r[5] ^= (uint8_t)wrong;
    Sefl__ModelRequest m = SEFL__MODEL_REQUEST__INIT;
    m.round = round;
    m.model_ref = (ProtobufCBinaryData){ sizeof r, r };
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    e.msg_case = SEFL__ENVELOPE__MSG_MODEL_REQUEST;
    e.model_request = &m;
    fake_send(f, &e);
}

static void fake_on_train(fake *f, const Sefl__TrainTask *t)
{
    f->task_round = t->round;
    f->trains++;
    if (t->n_tensors == 0 && t->model_ref.len == WIRE_REF_LEN) {
        /* A reference: this fake holds the model by the full task another
         * connection of its token got (the test checks the labels). */
        f->train_refs++;
        memcpy(f->ref, t->model_ref.data, WIRE_REF_LEN);
        if (f->ask && !f->asked) {
            f->asked = 1;
            fake_model_request(f, t->round, t->model_ref.data, 1);
            fake_model_request(f, t->round, t->model_ref.data, 0);
        } else if (released) {
            fake_answer(f, t->round);
        }
        return;
    }
    if (t->model_ref.len == WIRE_REF_LEN) memcpy(f->label, t->model_ref.data, WIRE_REF_LEN);
    f->train_full++;
    /* The full task it asked for: asking again is refused. */
    if (f->asked == 1) {
        f->asked = 2;
        fake_model_request(f, t->round, t->model_ref.data, 0);
    }
    if (t->round == f->quit_round) {
        /* Gone mid-round, as a killed client: no update, no Bye. */
        conn_close(f->c, "quit");
        return;
    }
    /* The task carries exactly the shared set of the global model. */
    char err[SEFL_ERRLEN];
    ck_assert_msg(wire_tensors_apply(&table, params_shared(PARAM_SE), t->tensors, t->n_tensors,
                                     f->buf, err) == 0, "%s", err);
    ck_assert_str_eq(t->private_groups, "se");
    if (f->role == ROLE_BAD) {
        uint32_t r = t->round;
        fake_update(f, r - 1, 100.0f, f->examples, 0);          /* stale */
        fake_update(f, r + 1, 100.0f, f->examples, 0);          /* future */
        fake_update(f, r, 100.0f, f->examples, 1);              /* a tensor missing */
        fake_update(f, r, 100.0f, 0, 0);                        /* no weight */
        fake_update(f, r, 100.0f, f->examples + 1, 0);          /* more than its train split */
        fake_update(f, r, f->value, f->examples, 0);            /* valid */
        fake_update(f, r, 100.0f, f->examples, 0);              /* duplicate */
        /* The client that was not selected joins now, with the round open. */
        fake_connect(&fakes[3]);
    } else if (f->role == ROLE_GOOD && released) {
        fake_answer(f, t->round);
    }
}

static void fake_on_frame(conn *c, const uint8_t *p, size_t n)
{
    fake *f = conn_user(c);
    Sefl__Envelope *e;
    uint32_t code;
    char err[SEFL_ERRLEN];
    ck_assert_msg(wire_decode(p, n, &table, wire_alloc_limit(n), &e, &code, err) == 0, "%s", err);
    switch (e->msg_case) {
    case SEFL__ENVELOPE__MSG_WELCOME:
        f->welcomed = 1;
        conn_set_authenticated(c);
        ck_assert_str_eq(e->welcome->client_id, f->name);
        ck_assert_uint_eq(e->welcome->init_seed, SEED);
        if (f->role == ROLE_LATE) fake_update(f, 1, 100.0f, f->examples, 0);
        break;
    case SEFL__ENVELOPE__MSG_TRAIN_TASK:
        fake_on_train(f, e->train_task);
        break;
    case SEFL__ENVELOPE__MSG_EVAL_TASK:
        f->evals++;
        if (e->eval_task->n_tensors) f->eval_full++;
        else f->eval_refs++;
        f->eval_round = e->eval_task->round;
        if (!f->hold_eval) fake_eval_report(f);
        break;
    case SEFL__ENVELOPE__MSG_ERROR:
        ck_assert_uint_eq(e->error->code, WIRE_ERR_REJECTED);
        f->errors++;
        maybe_release();
        break;
    case SEFL__ENVELOPE__MSG_BYE:
        f->byes++;
        snprintf(f->bye, sizeof f->bye, "%s", e->bye->reason);
        conn_close(c, "bye");
        break;
    case SEFL__ENVELOPE__MSG_HEARTBEAT:
        ck_assert(!e->heartbeat->reply);
        f->pings++;
        if (f->role != ROLE_SILENT) {
            Sefl__Heartbeat hb;
            Sefl__Envelope out;
            wire_heartbeat(&out, &hb, e->heartbeat->nonce, 1);
            fake_send(f, &out);
        }
        break;
    default:
        ck_abort_msg("unexpected message %d", e->msg_case);
    }
    wire_free(e);
}

static void fake_on_close(conn *c, int status, const char *reason)
{
    fake *f = conn_user(c);
    f->closed++;
    f->c = NULL;
    if (f->rejoin > 0 && (f->quit_round || f->role == ROLE_SILENT)) {
        f->rejoin--;
        f->quit_round = 0;
        fake_connect(f);
    }
}

static const conn_callbacks fake_cb = {
    .on_open = fake_on_open, .on_frame = fake_on_frame, .on_close = fake_on_close,
};

static void fake_connect(fake *f)
{
    char err[SEFL_ERRLEN], addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", coord_port(co));
    conn_limits lim = conn_limits_default();
    ck_assert_msg(conn_connect(&loop, addr, f->tls, &lim, &fake_cb, f, &f->c, err) == 0, "%s", err);
}

static void setup(void)
{
    char err[SEFL_ERRLEN];
    /* Check forks a process per test (the pid keeps their files apart), or
     * runs them in this one with CK_FORK=no (the counter does). */
    static int n;
    snprintf(db_path, sizeof db_path, "%s/server-%d-%d.db", base_dir, (int)getpid(), n++);
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    memset(fakes, 0, sizeof fakes);
    released = 0;
    static const int roles[N_FAKES] = { ROLE_GOOD, ROLE_BAD, ROLE_GOOD, ROLE_LATE };
    static const float values[N_FAKES] = { 1.0f, 4.0f, 2.0f, 100.0f };
    static const uint32_t examples[N_FAKES] = { 100, 200, 100, 1000 };
    for (int i = 0; i < N_FAKES; i++) {
        fake *f = &fakes[i];
        f->role = roles[i];
        f->value = values[i];
        f->examples = examples[i];
        snprintf(f->name, sizeof f->name, "client-%04d", i);
        ck_assert_msg(tls_ctx_new_client(&f->tls, certs_dir, f->name, "127.0.0.1", err) == 0, "%s", err);
        f->buf = calloc(table.total, sizeof(float));
    }
}

static void teardown(void)
{
    for (int i = 0; i < N_FAKES; i++) {
        tls_ctx_free(fakes[i].tls);
        free(fakes[i].buf);
    }
}

/* Runs the loop until the coord has closed everything, then frees it and
 * checks that the loop closes clean. */
static void finish_loop(void)
{
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(coord_exit_status(co), 0);
    coord_free(co);
    co = NULL;
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}

/* Reads the stored model of round into out (table.total floats). */
static void load_model(uint32_t round, float *out)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT params, checksum FROM models WHERE round = ?", -1,
                                        &st, NULL), SQLITE_OK);
    sqlite3_bind_int(st, 1, (int)round);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    char err[SEFL_ERRLEN];
    ck_assert_msg(store_column_floats(st, 0, (const char *)sqlite3_column_text(st, 1), out,
                                      table.total, "model", err) == 0, "%s", err);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

START_TEST(test_round_fedavg_exact_and_rejections)
{
    char err[SEFL_ERRLEN];
    coord_config cfg = test_config();
    /* One task queued at a time: the tasks go out as the window drains. */
    cfg.send_window = 1;
    ck_assert_msg(coord_start(&loop, &cfg, &co, err) == 0, "%s", err);
    coord_status st;
    coord_get_status(co, &st);
    ck_assert_str_eq(st.phase, "idle");
    ck_assert_int_eq(st.ready, 1);
    ck_assert_int_eq(strlen(st.run_id), STATE_RUN_ID_LEN);
    ck_assert_double_eq(st.last_commit, 0);
    for (int i = 0; i < 3; i++) fake_connect(&fakes[i]);
    uv_run(&loop, UV_RUN_DEFAULT);

    /* What monitoring sees: one commit, each rejection under its reason. */
    coord_get_status(co, &st);
    ck_assert_str_eq(st.phase, "done");
    ck_assert_int_eq(st.ready, 0);
    ck_assert_uint_eq(st.last_round, 1);
    ck_assert_double_gt(st.last_commit, 1e9);
    ck_assert_int_eq(st.has_eval, 1);
    ck_assert_uint_eq(st.eval_round, 1);
    strbuf text = STRBUF_INIT;
    ck_assert_int_eq(metrics_render(coord_event_metrics(co), &text), 0);
    static const char *const want[] = {
        "\nsefl_rounds_committed_total 1\n", "\nsefl_rounds_abandoned_total 0\n",
        "\nsefl_updates_accepted_total 3\n", "\nsefl_round_duration_seconds_count 1\n",
        "{reason=\"stale_round\"} 1\n", "{reason=\"unknown_round\"} 1\n",
        "{reason=\"bad_tensors\"} 1\n", "{reason=\"bad_examples\"} 2\n",
        "{reason=\"duplicate\"} 1\n", "{reason=\"not_selected\"} 1\n",
        "{reason=\"no_round\"} 0\n", "{reason=\"not_finite\"} 0\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(text.p, want[i]), "no '%s' in:\n%s", want[i], text.p);
    strbuf_free(&text);
    finish_loop();

    /* every malformed update and the unselected client's were refused */
    ck_assert_int_eq(fakes[1].errors, N_BAD);
    ck_assert_int_eq(fakes[3].errors, 1);
    ck_assert_int_eq(fakes[0].errors + fakes[2].errors, 0);
    ck_assert_uint_eq(fakes[3].task_round, 0);
    for (int i = 0; i < N_FAKES; i++) {
        ck_assert_int_eq(fakes[i].byes, 1);
        ck_assert_str_eq(fakes[i].bye, "done");
        ck_assert_int_eq(fakes[i].evals, 1);
        ck_assert_int_eq(fakes[i].closed, 1);
    }

    /* The committed shared set is the weighted mean of the valid updates. */
    float *got = malloc(table.total * sizeof(float));
    load_model(1, got);
    param_sel sh = params_shared(PARAM_SE);
    size_t n = params_count(&table, sh);
    float *flat = malloc(n * sizeof(float));
    params_gather(&table, sh, got, flat);
    double w[3] = { 100, 200, 100 }, v[3] = { 1, 4, 2 };
    for (size_t i = 0; i < n; i++) {
        double d = (double)(i % 7) * 0.25, s = 0;
        for (int k = 0; k < 3; k++) s += w[k] * (v[k] + d);
        ck_assert_float_eq_tol(flat[i], (float)(s / 400.0), 1e-5f);
    }
    /* Its private tensors are the initial model's, untouched. */
    model *m = model_new(&table, 1);
    model_init(m, SEED);
    param_sel pv = params_private(PARAM_SE);
    size_t np = params_count(&table, pv);
    float *a = malloc(np * sizeof(float)), *b = malloc(np * sizeof(float));
    params_gather(&table, pv, got, a);
    params_gather(&table, pv, model_params(m), b);
    ck_assert_int_eq(memcmp(a, b, np * sizeof(float)), 0);
    /* and the round-0 model is the initialisation itself */
    load_model(0, got);
    ck_assert_int_eq(memcmp(got, model_params(m), table.total * sizeof(float)), 0);
    model_free(m);
    free(a);
    free(b);
    free(flat);
    free(got);

    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT clients FROM rounds WHERE round = 1"), 3);
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT examples FROM rounds WHERE round = 1"), 400);
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT count(*) FROM eval_reports WHERE round = 1"), 4);
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT count(*) FROM clients WHERE rounds = 1"), 3);
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT rounds FROM clients WHERE name = 'client-0003'"), 0);
}
END_TEST

static void stop_when_tasks_out(uv_idle_t *h)
{
    int got = 0;
    for (int i = 0; i < 3; i++) got += fakes[i].task_round != 0;
    if (got < 3) return;
    coord_stop(co);
    coord_stop(co);
    uv_close((uv_handle_t *)h, NULL);
}

/* coord_stop mid-round: Bye{"shutdown"} to everyone, nothing committed,
 * the loop closes clean. */
START_TEST(test_stop_mid_round)
{
    char err[SEFL_ERRLEN];
    coord_config cfg = test_config();
    for (int i = 0; i < 3; i++) fakes[i].role = ROLE_SILENT;
    ck_assert_msg(coord_start(&loop, &cfg, &co, err) == 0, "%s", err);
    for (int i = 0; i < 3; i++) fake_connect(&fakes[i]);
    uv_idle_t idle;
    uv_idle_init(&loop, &idle);
    uv_idle_start(&idle, stop_when_tasks_out);
    finish_loop();
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_eq(fakes[i].task_round, 1);
        ck_assert_str_eq(fakes[i].bye, "shutdown");
        ck_assert_int_eq(fakes[i].closed, 1);
    }
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT count(*) FROM rounds"), 0);
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT count(*) FROM models"), 1);
}
END_TEST

/* The connection limit: with max_peers 1 a second client is closed before
 * any Hello is answered. The one admitted has the longest name sefl-certs
 * issues (64 characters), which is its identity in Welcome. */
START_TEST(test_peer_limit_and_longest_name)
{
    char err[SEFL_ERRLEN];
    coord_config cfg = test_config();
    cfg.rounds = 0;
    cfg.clients_per_round = cfg.min_clients = 2;
    cfg.max_peers = 1;
    fake *f = &fakes[0];
    tls_ctx_free(f->tls);
    memset(f->name, 'n', 64);
    f->name[64] = 0;
    ck_assert_msg(tls_ctx_new_client(&f->tls, certs_dir, f->name, "127.0.0.1", err) == 0, "%s", err);
    ck_assert_msg(coord_start(&loop, &cfg, &co, err) == 0, "%s", err);
    fake_connect(f);
    while (!f->welcomed) uv_run(&loop, UV_RUN_ONCE);
    fake_connect(&fakes[1]);
    while (!fakes[1].closed) uv_run(&loop, UV_RUN_ONCE);
    ck_assert_int_eq(fakes[1].welcomed, 0);
    coord_stop(co);
    finish_loop();
    ck_assert_str_eq(f->bye, "shutdown");
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT length(name) FROM clients"), 64);
}
END_TEST

/* Heartbeats: an idle client that answers stays; one that says nothing
 * for 3 heartbeats is closed (without a Bye). */
START_TEST(test_heartbeat_closes_silent_client)
{
    char err[SEFL_ERRLEN];
    coord_config cfg = test_config();
    cfg.rounds = 0;
    cfg.heartbeat = 1;
    fakes[1].role = ROLE_SILENT;
    ck_assert_msg(coord_start(&loop, &cfg, &co, err) == 0, "%s", err);
    fake_connect(&fakes[0]);
    fake_connect(&fakes[1]);
    while (!fakes[1].closed) uv_run(&loop, UV_RUN_ONCE);
    ck_assert_int_eq(fakes[1].welcomed, 1);
    ck_assert_int_ge(fakes[1].pings, 2);
    ck_assert_int_eq(fakes[1].byes, 0);
    ck_assert_int_eq(fakes[0].closed, 0);
    ck_assert_int_ge(fakes[0].pings, 3);
    coord_stop(co);
    finish_loop();
    ck_assert_str_eq(fakes[0].bye, "shutdown");
}
END_TEST

/* Fakes 0..2 follow the script of a good client. */
static void all_good(void)
{
    for (int i = 0; i < 3; i++) fakes[i].role = ROLE_GOOD;
}

/* Runs the loop until *flag is set or f's connection closed. */
static void run_until(const int *flag, const fake *f)
{
    while (!*flag && !f->closed) uv_run(&loop, UV_RUN_ONCE);
}

/* min_clients 2: round 2 selects all three clients, one leaves mid-round
 * and the two others report: the round commits with them at once. Round 1
 * runs with the first two while the third joins, so that round 2 finds
 * all three connected. */
START_TEST(test_commit_when_the_rest_left)
{
    char err[SEFL_ERRLEN];
    coord_config cfg = test_config();
    all_good();
    cfg.rounds = 2;
    cfg.min_clients = 2;
    cfg.round_timeout = 3600;
    fakes[2].quit_round = 2;
    ck_assert_msg(coord_start(&loop, &cfg, &co, err) == 0, "%s", err);
    fake_connect(&fakes[0]);
    fake_connect(&fakes[1]);
    while (!fakes[0].task_round || !fakes[1].task_round) uv_run(&loop, UV_RUN_ONCE);
    fake_connect(&fakes[2]);
    run_until(&fakes[2].welcomed, &fakes[2]);
    release();
    finish_loop();

    ck_assert_int_eq(fakes[2].trains, 1);
    ck_assert_uint_eq(fakes[2].task_round, 2);
    ck_assert_int_eq(fakes[2].byes, 0);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(fakes[i].trains, 2);
        ck_assert_str_eq(fakes[i].bye, "done");
        ck_assert_int_eq(fakes[i].errors, 0);
    }
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT count(*) FROM rounds"), 2);
    ck_assert_int_eq(check_sql_file_int(db_path,
                                        "SELECT clients * 10 + attempt FROM rounds WHERE round = 2"),
                     21);
}
END_TEST

/* min_clients 3: one of the three selected leaves mid-round, so the round
 * can no longer reach 3 updates: it is abandoned at once and retried when
 * the client is back, then commits as attempt 2. */
START_TEST(test_abandon_when_min_unreachable)
{
    char err[SEFL_ERRLEN];
    coord_config cfg = test_config();
    all_good();
    cfg.round_timeout = 3600;
    released = 1;
    fakes[2].quit_round = 1;
    fakes[2].rejoin = 1;
    ck_assert_msg(coord_start(&loop, &cfg, &co, err) == 0, "%s", err);
    for (int i = 0; i < 3; i++) fake_connect(&fakes[i]);
    finish_loop();

    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(fakes[i].trains, 2);
        ck_assert_str_eq(fakes[i].bye, "done");
    }
    ck_assert_int_eq(fakes[2].closed, 2);
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT count(*) FROM rounds"), 1);
    ck_assert_int_eq(check_sql_file_int(db_path,
                                        "SELECT clients * 10 + attempt FROM rounds WHERE round = 1"),
                     32);
}
END_TEST

/* Checks that the shared set committed in round is the mean of values
 * v[0..n) (each update's element i being v + (i % 7) / 4) with weights w. */
static void check_mean(uint32_t round, const double *w, const double *v, int n)
{
    float *got = malloc(table.total * sizeof(float));
    load_model(round, got);
    param_sel sh = params_shared(PARAM_SE);
    size_t count = params_count(&table, sh);
    float *flat = malloc(count * sizeof(float));
    params_gather(&table, sh, got, flat);
    double wsum = 0;
    for (int k = 0; k < n; k++) wsum += w[k];
    for (size_t i = 0; i < count; i++) {
        double d = (double)(i % 7) * 0.25, s = 0;
        for (int k = 0; k < n; k++) s += w[k] * (v[k] + d);
        ck_assert_float_eq_tol(flat[i], (float)(s / wsum), 1e-4f);
    }
    free(flat);
    free(got);
}

/* Round 1's first attempt has clients 3, 0 and 1; client 3's update is
 * scaled by 1e6. The candidate is refused before the commit (its norm is
 * far over 100x the round's median), client 3 gets an Error and is
 * penalised, and the retry, without it, commits exactly the mean of the
 * three honest updates of clients 0, 1 and 2. */
START_TEST(test_poisoned_update_refused)
{
    char err[SEFL_ERRLEN];
    coord_config cfg = test_config();
    all_good();
    fakes[3].role = ROLE_GOOD;
    fakes[3].examples = 100;
    fakes[3].poison_round = 1;
    cfg.clients_per_round = 4;
    cfg.round_timeout = 3600;
    ck_assert_msg(coord_start(&loop, &cfg, &co, err) == 0, "%s", err);
    start_with_3_0_1_then_2();
    finish_loop();

    ck_assert_int_eq(fakes[3].trains, 1);
    ck_assert_int_eq(fakes[3].errors, 1);
    ck_assert_int_eq(fakes[2].trains, 1);
    for (int i = 0; i < 3; i++) ck_assert_int_eq(fakes[i].errors, 0);
    for (int i = 0; i < 2; i++) ck_assert_int_eq(fakes[i].trains, 2);
    ck_assert_int_eq(check_sql_file_int(db_path,
                                        "SELECT clients * 10 + attempt FROM rounds WHERE round = 1"),
                     32);
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT rounds FROM clients WHERE name = 'client-0003'"), 0);
    const double w[3] = { 100, 200, 100 }, v[3] = { 1, 4, 2 };
    check_mean(1, w, v, 3);
}
END_TEST

/* Runs the loop until the coord, idle, waits because clients refused in
 * the round to come leave too few eligible. */
static void run_until_refused_wait(coord_status *st)
{
    for (;;) {
        coord_get_status(co, st);
        if (st->waiting && !strcmp(st->waiting, "refused")) return;
        uv_run(&loop, UV_RUN_ONCE);
    }
}

/* Every client needed (K = min_clients = 3, three connected): client 3's
 * update of round 1 is over the norm bound, so it is penalised and refused
 * for round 1. With two eligible clients left the coordinator starts no
 * second attempt (client 3 trained once, the others once) but waits, and
 * its status says why and names client 3. Client 2 connecting ends the
 * wait: attempt 2 commits without client 3; round 2 leaves client 3 out
 * too (boxed, and not needed); the box entry is in server.db. A restart
 * on the file restores it (client 3 boxed until round 3) and reports the
 * stored evaluation of round 2 before any new one. */
START_TEST(test_refused_client_waits_for_round)
{
    char err[SEFL_ERRLEN];
    coord_config cfg = test_config();
    all_good();
    fakes[3].role = ROLE_GOOD;
    fakes[3].examples = 100;
    fakes[3].poison_round = 1;
    cfg.rounds = 2;
    cfg.round_timeout = 3600;
    released = 1;
    ck_assert_msg(coord_start(&loop, &cfg, &co, err) == 0, "%s", err);
    fake_connect(&fakes[3]);
    fake_connect(&fakes[0]);
    fake_connect(&fakes[1]);
    coord_status st;
    run_until_refused_wait(&st);
    ck_assert_int_eq(st.connected, 3);
    ck_assert_int_eq(st.eligible, 2);
    ck_assert_uint_eq(st.next_round, 1);
    ck_assert_int_eq(st.n_refused, 1);
    ck_assert_str_eq(st.refused[0].client, "client-0003");
    ck_assert_ptr_nonnull(strstr(st.refused[0].why, "over the bound"));
    ck_assert_int_eq(st.boxed, 1);
    ck_assert_str_eq(st.phase, "idle");
    /* Nothing more happens while it waits. */
    for (int i = 0; i < 20; i++) uv_run(&loop, UV_RUN_NOWAIT);
    for (int i = 0; i < 4; i++) ck_assert_int_eq(fakes[i].trains, i == 2 ? 0 : 1);
    ck_assert_int_eq(fakes[3].errors, 1);
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT until_round * 10 + refused_round FROM "
                                                 "penalties WHERE client = 'client-0003'"), 31);
    fake_connect(&fakes[2]);
    finish_loop();

    ck_assert_int_eq(fakes[3].trains, 1);
    ck_assert_str_eq(fakes[3].bye, "done");
    for (int i = 0; i < 3; i++) ck_assert_int_eq(fakes[i].trains, i == 2 ? 2 : 3);
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT group_concat(round || ':' || clients || "
                                                 "':' || attempt) = '1:3:2,2:3:1' FROM rounds"), 1);
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT rounds FROM clients WHERE name = "
                                                 "'client-0003'"), 0);
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT until_round * 10 + refused_round FROM "
                                                 "penalties WHERE client = 'client-0003'"), 31);

    ck_assert_int_eq(uv_loop_init(&loop), 0);
    cfg.rounds = 3;
    ck_assert_msg(coord_start(&loop, &cfg, &co, err) == 0, "%s", err);
    coord_get_status(co, &st);
    ck_assert_int_eq(st.boxed, 1);
    ck_assert_int_eq(st.n_refused, 0);
    ck_assert_int_eq(st.has_eval, 1);
    ck_assert_uint_eq(st.eval_round, 2);
    ck_assert_double_eq_tol(st.eval_accuracy, 0.5, 1e-6);
    ck_assert_str_eq(st.waiting, "clients");
    coord_stop(co);
    finish_loop();
}
END_TEST

/* Every client needed (K = min_clients = 3): client 2 holds its task
 * without a word (nor a heartbeat answer), is closed and reconnects. The
 * first silence only penalises it, and attempt 2 selects it again (it is
 * needed); the second in round 1 refuses it for the round, so with it
 * connected again the coordinator waits instead of a third attempt. */
START_TEST(test_silent_twice_refused_for_round)
{
    char err[SEFL_ERRLEN];
    coord_config cfg = test_config();
    all_good();
    fakes[2].role = ROLE_SILENT;
    fakes[2].rejoin = 2;
    cfg.heartbeat = 1;
    cfg.round_timeout = 3600;
    ck_assert_msg(coord_start(&loop, &cfg, &co, err) == 0, "%s", err);
    for (int i = 0; i < 3; i++) fake_connect(&fakes[i]);
    coord_status st;
    run_until_refused_wait(&st);
    ck_assert_int_eq(fakes[2].trains, 2);
    ck_assert_int_eq(fakes[0].trains, 2);
    ck_assert_int_eq(st.n_refused, 1);
    ck_assert_str_eq(st.refused[0].client, "client-0002");
    ck_assert_ptr_nonnull(strstr(st.refused[0].why, "silent for 3 heartbeats while holding a "
                                                    "task (its failure 2 in round 1)"));
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT refused_round FROM penalties WHERE "
                                                 "client = 'client-0002'"), 1);
    coord_stop(co);
    finish_loop();
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT count(*) FROM rounds"), 0);
}
END_TEST

/* Round 1 has clients 3, 0 and 1: client 3 declares 1000 examples against
 * 300 for the two others, so its weight is capped to 300 (max share 0.5).
 * In round 2 (all four) it reports a diverged training: counted, kept
 * connected, and the round commits with the three others at once. */
START_TEST(test_weight_cap_and_diverged)
{
    char err[SEFL_ERRLEN];
    coord_config cfg = test_config();
    all_good();
    fakes[3].role = ROLE_GOOD;
    fakes[3].value = 8;
    fakes[3].diverge_round = 2;
    cfg.clients_per_round = 4;
    cfg.rounds = 2;
    cfg.round_timeout = 3600;
    ck_assert_msg(coord_start(&loop, &cfg, &co, err) == 0, "%s", err);
    start_with_3_0_1_then_2();
    finish_loop();

    const double w1[3] = { 300, 100, 200 }, v1[3] = { 8, 1, 4 };
    check_mean(1, w1, v1, 3);
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT examples FROM rounds WHERE round = 1"), 600);
    ck_assert_int_eq(check_sql_file_int(db_path,
                                        "SELECT clients * 10 + attempt FROM rounds WHERE round = 2"),
                     31);
    ck_assert_int_eq(fakes[3].trains, 2);
    ck_assert_int_eq(fakes[3].closed, 1);            /* only by the final Bye */
    ck_assert_str_eq(fakes[3].bye, "done");
    const double w2[3] = { 100, 200, 100 }, v2[3] = { 1, 4, 2 };
    check_mean(2, w2, v2, 3);
}
END_TEST

/* The evaluation after round 1 waits for client 0's report; client 2,
 * welcomed meanwhile, gets the EvalTask too (through a one-byte send
 * window) and its report is stored. Client 0 then leaves without a report,
 * which ends the evaluation: nobody else is awaited. */
START_TEST(test_eval_takes_late_joiner)
{
    char err[SEFL_ERRLEN];
    coord_config cfg = test_config();
    all_good();
    cfg.clients_per_round = cfg.min_clients = 2;
    cfg.round_timeout = 3600;
    cfg.send_window = 1;
    released = 1;
    fakes[0].hold_eval = 1;
    ck_assert_msg(coord_start(&loop, &cfg, &co, err) == 0, "%s", err);
    fake_connect(&fakes[0]);
    fake_connect(&fakes[1]);
    run_until(&fakes[0].evals, &fakes[0]);
    fake_connect(&fakes[2]);
    run_until(&fakes[2].evals, &fakes[2]);
    ck_assert_int_eq(fakes[2].evals, 1);
    conn_close(fakes[0].c, "quit");
    finish_loop();

    ck_assert_int_eq(fakes[2].trains, 0);
    ck_assert_int_eq(fakes[2].errors, 0);
    ck_assert_int_eq(fakes[0].byes, 0);
    for (int i = 1; i < 3; i++) ck_assert_str_eq(fakes[i].bye, "done");
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT count(*) FROM eval_reports WHERE round = 1 "
                                                 "AND client IN ('client-0001', 'client-0002')"), 2);
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT count(*) FROM eval_reports"), 2);
}
END_TEST

/* Three clients of one process (one host token): round 1's TrainTask and
 * the evaluation go in full to one of them and by reference to the two
 * others, labelled with one reference; with --model-refs off, or without a
 * token, all three get it in full. Client 0 asks for the model when it gets
 * a reference: a wrong model is refused (Error REJECTED, connection kept),
 * the right one comes in full, and asking again is refused. */
static void run_refs(int model_refs, uint8_t token)
{
    char err[SEFL_ERRLEN];
    coord_config cfg = test_config();
    all_good();
    cfg.model_refs = model_refs;
    released = 1;
    for (int i = 0; i < 3; i++) fakes[i].token = token;
    fakes[0].ask = 1;
    ck_assert_msg(coord_start(&loop, &cfg, &co, err) == 0, "%s", err);
    for (int i = 0; i < 3; i++) fake_connect(&fakes[i]);
    finish_loop();
    for (int i = 0; i < 3; i++) ck_assert_str_eq(fakes[i].bye, "done");
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT clients FROM rounds WHERE round = 1"), 3);
    ck_assert_int_eq(check_sql_file_int(db_path, "SELECT count(*) FROM eval_reports"), 3);
}

START_TEST(test_model_refs_once_per_token)
{
    run_refs(1, 0x5a);
    int train_full = 0, train_refs = 0, eval_full = 0, eval_refs = 0, full_one = -1;
    for (int i = 0; i < 3; i++) {
        train_full += fakes[i].train_full;
        train_refs += fakes[i].train_refs;
        eval_full += fakes[i].eval_full;
        eval_refs += fakes[i].eval_refs;
        if (fakes[i].train_full && i != 0) full_one = i;
    }
    if (full_one < 0) {
        /* Client 0 got the first full task itself and never asked. */
        ck_assert_int_eq(fakes[0].asked, 0);
        ck_assert_int_eq(train_full, 1);
        ck_assert_int_eq(train_refs, 2);
    } else {
        /* Client 0 got a reference, asked: refused, sent, refused. */
        ck_assert_int_eq(fakes[0].asked, 2);
        ck_assert_int_eq(fakes[0].train_refs, 1);
        ck_assert_int_eq(fakes[0].train_full, 1);
        ck_assert_int_eq(fakes[0].errors, 2);
        ck_assert_int_eq(train_full, 2);
        ck_assert_int_eq(train_refs, 2);
        ck_assert_mem_eq(fakes[0].label, fakes[0].ref, WIRE_REF_LEN);
        ck_assert_mem_eq(fakes[full_one].label, fakes[0].ref, WIRE_REF_LEN);
    }
    for (int i = 0; i < 3; i++)
        if (fakes[i].train_refs && fakes[i].train_full == 0)
            ck_assert_mem_eq(fakes[i].ref, full_one < 0 ? fakes[0].label : fakes[full_one].label,
                             WIRE_REF_LEN);
    ck_assert_int_eq(eval_full, 1);
    ck_assert_int_eq(eval_refs, 2);
}
END_TEST

/* Every client gets the model in full: client 0 never gets a reference to
 * ask about. */
static void check_all_full(void)
{
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(fakes[i].train_full, 1);
        ck_assert_int_eq(fakes[i].train_refs, 0);
        ck_assert_int_eq(fakes[i].eval_full, 1);
        ck_assert_int_eq(fakes[i].eval_refs, 0);
        ck_assert_int_eq(fakes[i].errors, 0);
    }
}

START_TEST(test_model_refs_off)
{
    run_refs(0, 0x5a);
    check_all_full();
}
END_TEST

START_TEST(test_model_refs_no_token)
{
    run_refs(1, 0);
    check_all_full();
}
END_TEST

/* A database made with another private set is refused at start with one
 * line, and nothing is left on the loop. */
START_TEST(test_refuses_other_private_set)
{
    char err[SEFL_ERRLEN] = "";
    coord_config cfg = test_config();
    cfg.rounds = 0;
    ck_assert_msg(coord_start(&loop, &cfg, &co, err) == 0, "%s", err);
    coord_stop(co);
    finish_loop();

    ck_assert_int_eq(uv_loop_init(&loop), 0);
    cfg.private_mask = 0;
    ck_assert_int_eq(coord_start(&loop, &cfg, &co, err), -EINVAL);
    ck_assert_ptr_null(co);
    ck_assert_ptr_nonnull(strstr(err, "--private"));
    ck_assert_ptr_null(strchr(err, '\n'));
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

int main(void)
{
    char err[SEFL_ERRLEN];
    if (params_build(&table, &(model_opts){ .arch = "cnn-se", .r = 8, .fc1_gate = 1 }, err)) {
        fprintf(stderr, "check_coord: %s\n", err);
        return 1;
    }
    log_set_level(getenv("SEFL_LOG") ? LOG_DEBUG : LOG_ERROR);
    check_mkdtemp(base_dir, sizeof base_dir, "/tmp/check_coord.XXXXXX");
    snprintf(certs_dir, sizeof certs_dir, "%s/certs", base_dir);
    char longest[65];
    memset(longest, 'n', 64);
    longest[64] = 0;
    check_certs("init --dir %s --clients %d", certs_dir, N_FAKES);
    check_certs("issue --dir %s --name %s", certs_dir, longest);
    Suite *s = suite_create("coord");
    TCase *tc = tcase_create("coord");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_fedavg_exact_and_rejections);
    tcase_add_test(tc, test_stop_mid_round);
    tcase_add_test(tc, test_refuses_other_private_set);
    tcase_add_test(tc, test_peer_limit_and_longest_name);
    tcase_add_test(tc, test_heartbeat_closes_silent_client);
    tcase_add_test(tc, test_commit_when_the_rest_left);
    tcase_add_test(tc, test_abandon_when_min_unreachable);
    tcase_add_test(tc, test_poisoned_update_refused);
    tcase_add_test(tc, test_refused_client_waits_for_round);
    tcase_add_test(tc, test_silent_twice_refused_for_round);
    tcase_add_test(tc, test_weight_cap_and_diverged);
    tcase_add_test(tc, test_eval_takes_late_joiner);
    tcase_add_test(tc, test_model_refs_once_per_token);
    tcase_add_test(tc, test_model_refs_off);
    tcase_add_test(tc, test_model_refs_no_token);
    suite_add_tcase(s, tc);
    int status = check_run(s);
    if (check_rm_rf(base_dir) != 0) return 1;
    return status;
}
