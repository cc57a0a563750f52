/* check_session: a client session (client/session.c with its trainer and
 * pstore) against a scripted coordinator on loopback, over real mutual TLS
 * with certificates made by build/bin/sefl-certs.
 *
 * The fake coordinator plays one script per test: the whole conversation
 * (Welcome, Heartbeat, TrainTask, EvalTask, Bye "done"), a Bye "shutdown"
 * that must bring the client back, a model mismatch that must end it, a
 * message other than Welcome first that must be refused, the test-only switches
 * (SEFL_FAULT, SEFL_TAP_DIR) that other suites rely on, and model references
 * (a reference the process does not hold is asked for, never trained on
 * another model; a task whose label is not its tensors' hash is refused). Each test ends with
 * every handle closed and uv_loop_close() == 0.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/net/conn.h"
#include "common/log.h"
#include "common/nn/model.h"
#include "common/nn/params.h"
#include "client/pstore.h"
#include "common/rng.h"
#include "client/session.h"
#include "common/net/tls.h"
#include "client/trainer.h"
#include "common/fl/wire.h"
#include "common/fl/wire_ref.h"
#include "client/modelcache.h"
#include "tests/check_main.h"

#define N_TRAIN 30
#define N_TEST 10
#define INIT_SEED 42

static char base_dir[64];
static char certs_dir[128];
static param_table table;
static float images[(N_TRAIN + N_TEST) * MODEL_PIXELS];   /* (40, 784) */
static uint8_t labels[N_TRAIN + N_TEST];

enum { SCRIPT_FULL, SCRIPT_SHUTDOWN, SCRIPT_MODEL_MISMATCH, SCRIPT_EARLY_MESSAGE, SCRIPT_BIG_BATCH,
       SCRIPT_SUPERSEDE, SCRIPT_OVERFLOW, SCRIPT_RETRY, SCRIPT_RETRY_OTHER, SCRIPT_REF_MISS,
       SCRIPT_REF_BAD_LABEL };

/* How fake_task sends the model: plain tensors (no model_ref), tensors
 * labelled with their reference, the reference alone, or tensors with a
 * label that is not their hash. */
enum { TASK_PLAIN, TASK_LABELLED, TASK_REF, TASK_BAD_LABEL };

/* Nonce of the heartbeat that follows a burst of tasks: its reply proves
 * the client has taken in every task before it (frames are handled in
 * order), which opens the gate holding the trainer. */
#define GATE_NONCE 99

typedef struct {
    uv_loop_t loop;
    tls_ctx *tls;
    conn_listener *l;
    char addr[32];
    int script;
    float *global;              /* (table.total) the "global model" sent */
    trainer *tr;
    session *s;
    char db[160];
    /* What the fake coordinator saw. */
    int conns, hellos, hb_replies, updates, reports;
    uint32_t hello_train, hello_test;
    uint32_t update_round, update_examples, report_examples, report_round;
    int update_tensors, update_se, update_changed;
    uint32_t update_code;       /* WIRE_ERR_* of an Update that failed to decode */
    uint32_t client_error;      /* Error.code the client sent */
    uint32_t update_rounds, report_rounds;   /* bit r: an answer for round r */
    uv_sem_t gate;              /* holds the trainer's one thread (queue scripts) */
    /* What the session reported. */
    int finished, fin_status, welcomed, disconnected;
    int trainings;              /* SESSION_TASK_START of TrainTasks */
    /* Model references. */
    modelcache *cache;          /* the session's cache (reference scripts), or NULL */
    size_t hello_token_len;     /* Hello.host_token's length */
    int requests;               /* ModelRequests received */
    uint32_t request_round;
    int request_ref_ok;         /* its model_ref was the referenced model's */
    int trainings_at_request;   /* trainings started when the request came */
    uint64_t ref_sent_ms;       /* loop time the reference was sent */
    uint64_t request_wait_ms;   /* from the reference to the request */
} fake;

static void fake_send(conn *c, Sefl__Envelope *e)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    ck_assert_int_eq(wire_encode(e, &frame, &len), 0);
    ck_assert_int_eq(conn_send_frame(c, frame, len), 0);
    free(frame);
}

static void fake_welcome(fake *f, conn *c)
{
    Sefl__ModelSpec spec = SEFL__MODEL_SPEC__INIT;
    Sefl__Welcome w = SEFL__WELCOME__INIT;
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    wire_spec_from_table(&table, &spec);
    w.spec = &spec;
    w.client_id = "client-0000";
    w.private_groups = "se";
    w.heartbeat_seconds = 1;
    w.init_seed = INIT_SEED;
    e.msg_case = SEFL__ENVELOPE__MSG_WELCOME;
    e.welcome = &w;
    fake_send(c, &e);
    conn_set_authenticated(c);
}

static void fake_bye(conn *c, const char *reason)
{
    Sefl__Bye b = SEFL__BYE__INIT;
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    b.reason = (char *)reason;
    e.msg_case = SEFL__ENVELOPE__MSG_BYE;
    e.bye = &b;
    fake_send(c, &e);
}

/* Sends a task with f->global as its model, sent as mode says (TASK_*). */
static void fake_task_as(fake *f, conn *c, int train, uint32_t batch, uint32_t round, int mode)
{
    wire_tensors wt;
    Sefl__TrainTask t = SEFL__TRAIN_TASK__INIT;
    Sefl__EvalTask v = SEFL__EVAL_TASK__INIT;
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    uint8_t ref[WIRE_REF_LEN];
    ck_assert_int_eq(wire_tensors_build(&table, params_shared(PARAM_SE), f->global, &wt), 0);
    ck_assert_int_eq(wire_model_ref(wt.v, wt.n, ref), 0);
    if (mode == TASK_BAD_LABEL) ref[0] ^= 1;
    ProtobufCBinaryData label = { mode == TASK_PLAIN ? 0 : WIRE_REF_LEN, ref };
    size_t n = mode == TASK_REF ? 0 : wt.n;
    if (train) {
        t.round = round;
        t.tensors = wt.v;
        t.n_tensors = n;
        t.model_ref = label;
        t.lr = 0.05f;
        t.batch = batch;
        t.epochs = 1;
        t.seed = 9;
        t.private_groups = "se";
        e.msg_case = SEFL__ENVELOPE__MSG_TRAIN_TASK;
        e.train_task = &t;
    } else {
        v.round = round;
        v.tensors = wt.v;
        v.n_tensors = n;
        v.model_ref = label;
        v.private_groups = "se";
        e.msg_case = SEFL__ENVELOPE__MSG_EVAL_TASK;
        e.eval_task = &v;
    }
    fake_send(c, &e);
    if (mode == TASK_REF) f->ref_sent_ms = uv_now(&f->loop);
    wire_tensors_release(&wt);
}

static void fake_task(fake *f, conn *c, int train, uint32_t batch, uint32_t round)
{
    fake_task_as(f, c, train, batch, round, TASK_PLAIN);
}

/* The global model of round r of the reference scripts: round 1's is the
 * initial model, round 2's another one. */
static void fake_next_global(fake *f)
{
    for (size_t i = 0; i < table.total; i++) f->global[i] *= 0.5f;
}

/* The client process asks for a model it was referred to: answer with the
 * task in full (TASK_LABELLED, so that the process keeps it). */
static void fake_on_model_request(fake *f, conn *c, const Sefl__ModelRequest *r)
{
    wire_tensors wt;
    uint8_t ref[WIRE_REF_LEN];
    ck_assert_int_eq(wire_tensors_build(&table, params_shared(PARAM_SE), f->global, &wt), 0);
    ck_assert_int_eq(wire_model_ref(wt.v, wt.n, ref), 0);
    wire_tensors_release(&wt);
    f->requests++;
    f->request_round = r->round;
    f->request_ref_ok = !memcmp(r->model_ref.data, ref, WIRE_REF_LEN);
    f->trainings_at_request = f->trainings;
    f->request_wait_ms = uv_now(&f->loop) - f->ref_sent_ms;
    fake_task_as(f, c, 1, 10, r->round, TASK_LABELLED);
}

static void fake_heartbeat(conn *c, uint64_t nonce)
{
    Sefl__Heartbeat h;
    Sefl__Envelope e;
    wire_heartbeat(&e, &h, nonce, 0);
    fake_send(c, &e);
}

static void fake_on_hello(fake *f, conn *c, const Sefl__Hello *h)
{
    f->hellos++;
    f->hello_train = h->train_examples;
    f->hello_test = h->test_examples;
    f->hello_token_len = h->host_token.len;
    switch (f->script) {
    case SCRIPT_REF_MISS:
        /* Round 1 in full, labelled: the process keeps it. */
        fake_welcome(f, c);
        fake_task_as(f, c, 1, 10, 1, TASK_LABELLED);
        break;
    case SCRIPT_REF_BAD_LABEL:
        fake_welcome(f, c);
        if (f->conns == 1) fake_task_as(f, c, 1, 10, 1, TASK_BAD_LABEL);
        else fake_bye(c, "done");
        break;
    case SCRIPT_FULL:
        fake_welcome(f, c);
        fake_heartbeat(c, 7);
        fake_task(f, c, 1, 10, 1);
        break;
    case SCRIPT_SHUTDOWN:
        fake_welcome(f, c);
        if (f->conns == 1) {
            fake_bye(c, "shutdown");
            conn_close(c, "shutdown");
        } else {
            fake_bye(c, "done");
        }
        break;
    case SCRIPT_MODEL_MISMATCH: {
        uint8_t *frame = NULL;
        size_t len = 0;
        ck_assert_int_eq(wire_encode_error(WIRE_ERR_MODEL, "model spec mismatch", &frame, &len), 0);
        ck_assert_int_eq(conn_send_frame(c, frame, len), 0);
        free(frame);
        conn_close(c, "model mismatch");
        break;
    }
    case SCRIPT_SUPERSEDE:
        /* Round 1 goes to the (held) trainer; 2 waits; 3 replaces it. */
        fake_welcome(f, c);
        for (uint32_t r = 1; r <= 3; r++) fake_task(f, c, 1, 10, r);
        fake_heartbeat(c, GATE_NONCE);
        break;
    case SCRIPT_RETRY:
        /* The coordinator retries round 1 (same model, settings, seed)
         * while the client still trains its first attempt. */
        fake_welcome(f, c);
        fake_task(f, c, 1, 10, 1);
        fake_task(f, c, 1, 10, 1);
        fake_heartbeat(c, GATE_NONCE);
        break;
    case SCRIPT_RETRY_OTHER:
        /* Round 1 again but with another batch size: another task. */
        fake_welcome(f, c);
        fake_task(f, c, 1, 10, 1);
        fake_task(f, c, 1, 5, 1);
        fake_heartbeat(c, GATE_NONCE);
        break;
    case SCRIPT_OVERFLOW:
        /* Round 1 trains; six evaluations wait in a queue of four. */
        fake_welcome(f, c);
        fake_task(f, c, 1, 10, 1);
        for (uint32_t r = 1; r <= 6; r++) fake_task(f, c, 0, 0, r);
        fake_heartbeat(c, GATE_NONCE);
        break;
    case SCRIPT_BIG_BATCH:
        fake_welcome(f, c);
        if (f->conns == 1) fake_task(f, c, 1, MODEL_MAX_BATCH + 1, 1);
        else fake_bye(c, "done");
        break;
    case SCRIPT_EARLY_MESSAGE:
        if (f->conns == 1) {
            fake_heartbeat(c, 7);
        } else {
            fake_welcome(f, c);
            fake_bye(c, "done");
        }
        break;
    }
}

static void fake_on_update(fake *f, conn *c, const Sefl__Update *u)
{
    f->updates++;
    f->update_round = u->round;
    f->update_examples = u->examples;
    f->update_tensors = (int)u->n_tensors;
    float *got = calloc(table.total, sizeof *got);
    char err[SEFL_ERRLEN];
    for (size_t i = 0; i < u->n_tensors; i++)
        if (!strncmp(u->tensors[i]->name, "se", 2)) f->update_se++;
    ck_assert_msg(wire_tensors_apply(&table, params_shared(PARAM_SE), u->tensors, u->n_tensors, got, err) == 0,
                  "%s", err);
    f->update_changed = memcmp(got, f->global, table.total * sizeof *got) != 0;
    f->update_rounds |= 1u << u->round;
    free(got);
    /* After the first Update, an evaluation: its report comes after any
     * second Update, so counting updates at Bye sees them all. */
    if ((f->script == SCRIPT_FULL || f->script == SCRIPT_RETRY || f->script == SCRIPT_RETRY_OTHER) &&
        f->updates == 1)
        fake_task(f, c, 0, 0, 1);
    if (f->script == SCRIPT_SUPERSEDE && f->updates == 2) fake_bye(c, "done");
    /* Round 2 refers to a model the process does not hold (it holds round
     * 1's): it must ask for it, not train round 1's. Then an evaluation of
     * round 2 by reference, which it now holds. */
    if (f->script == SCRIPT_REF_MISS && f->updates == 1) {
        fake_next_global(f);
        fake_task_as(f, c, 1, 10, 2, TASK_REF);
    }
    if (f->script == SCRIPT_REF_MISS && f->updates == 2) fake_task_as(f, c, 0, 0, 2, TASK_REF);
}

static void fake_on_frame(conn *c, const uint8_t *p, size_t n)
{
    fake *f = conn_user(c);
    Sefl__Envelope *e = NULL;
    uint32_t code = 0;
    char err[SEFL_ERRLEN];
    if (wire_decode(p, n, &table, wire_alloc_limit(n), &e, &code, err) < 0) {
        /* Only the faulty Updates of the SEFL_FAULT tests get here; answer
         * with the evaluation so that the conversation goes on. */
        f->update_code = code;
        f->updates++;
        if (f->updates == 1) fake_task(f, c, 0, 0, 1);
        return;
    }
    switch (e->msg_case) {
    case SEFL__ENVELOPE__MSG_HELLO:
        fake_on_hello(f, c, e->hello);
        break;
    case SEFL__ENVELOPE__MSG_HEARTBEAT:
        ck_assert(e->heartbeat->reply);
        if (e->heartbeat->nonce == GATE_NONCE) uv_sem_post(&f->gate);
        else ck_assert_uint_eq(e->heartbeat->nonce, 7);
        f->hb_replies++;
        break;
    case SEFL__ENVELOPE__MSG_UPDATE:
        fake_on_update(f, c, e->update);
        break;
    case SEFL__ENVELOPE__MSG_EVAL_REPORT:
        f->reports++;
        f->report_round = e->eval_report->round;
        f->report_examples = e->eval_report->examples;
        f->report_rounds |= 1u << e->eval_report->round;
        if (f->script != SCRIPT_OVERFLOW || f->reports == SESSION_MAX_PENDING) fake_bye(c, "done");
        break;
    case SEFL__ENVELOPE__MSG_ERROR:
        f->client_error = e->error->code;
        break;
    case SEFL__ENVELOPE__MSG_MODEL_REQUEST:
        fake_on_model_request(f, c, e->model_request);
        break;
    default:
        ck_abort_msg("unexpected message %d from the client", e->msg_case);
    }
    wire_free(e);
}

static void fake_on_open(conn *c)
{
    fake *f = conn_user(c);
    f->conns++;
    ck_assert_str_eq(conn_peer_name(c), "client-0000");
}

static void fake_on_close(conn *c, int status, const char *reason)
{
    (void)c;
    (void)status;
    (void)reason;
}

static void on_session_event(session *s, const session_event *ev)
{
    fake *f = session_user(s);
    if (ev->type == SESSION_WELCOMED) f->welcomed++;
    if (ev->type == SESSION_DISCONNECTED) f->disconnected++;
    if (ev->type == SESSION_TASK_START && ev->train) f->trainings++;
    if (ev->type == SESSION_FINISHED) {
        f->finished++;
        f->fin_status = ev->status;
        conn_listener_close(f->l);
    }
}

/* Worker thread: holds the trainer's only thread until the gate opens. */
static int blocker_build(trainer_job *j, const float *params)
{
    (void)params;
    uv_sem_wait(&((fake *)j->user)->gate);
    return 0;
}

static void blocker_done(trainer_job *j)
{
    ck_assert_msg(j->status == 0, "%s", j->err);
}

/* Runs the session against script until both sides are done. */
static void run_script(fake *f, int script)
{
    static const conn_callbacks cb = { fake_on_open, fake_on_frame, fake_on_close };
    char err[SEFL_ERRLEN];
    memset(f, 0, sizeof *f);
    f->script = script;
    ck_assert_int_eq(uv_loop_init(&f->loop), 0);
    ck_assert_msg(tls_ctx_new_server(&f->tls, certs_dir, err) == 0, "%s", err);
    conn_limits lim = conn_limits_default();
    ck_assert_msg(conn_listen(&f->loop, "127.0.0.1:0", f->tls, &lim, &cb, f, &f->l, err) == 0, "%s", err);
    snprintf(f->addr, sizeof f->addr, "127.0.0.1:%d", conn_listener_port(f->l));
    snprintf(f->db, sizeof f->db, "%s/client-0000-%d.db", base_dir, script);
    remove(f->db);

    model *m = model_new(&table, 1);
    ck_assert_ptr_nonnull(m);
    model_init(m, INIT_SEED);
    f->global = malloc(table.total * sizeof *f->global);
    memcpy(f->global, model_params(m), table.total * sizeof *f->global);
    model_free(m);

    ck_assert_msg(trainer_new(&f->loop, &table, 1, &f->tr, err) == 0, "%s", err);
    if (script == SCRIPT_REF_MISS || script == SCRIPT_REF_BAD_LABEL)
        ck_assert_msg(modelcache_new(f->tr, NULL, &f->cache, err) == 0, "%s", err);
    /* The queue scripts need the session's tasks to pile up behind a job
     * that cannot finish before the client has seen them all. */
    int gated = script == SCRIPT_SUPERSEDE || script == SCRIPT_OVERFLOW || script == SCRIPT_RETRY ||
                script == SCRIPT_RETRY_OTHER;
    char blocker_db[192];
    trainer_data blocker_data = { images, labels, NULL, 1, images, labels, NULL, 1, NULL, 0 };
    trainer_job blocker = { .train = 1, .db_path = blocker_db, .name = "blocker", .data = &blocker_data,
                            .private_mask = PARAM_SE, .round = 1, .epochs = 1, .batch = 1,
                            .sgd = { 0.01f, 0, 0, 0 }, .build = blocker_build, .done = blocker_done,
                            .user = f };
    if (gated) {
        ck_assert_int_eq(uv_sem_init(&f->gate, 0), 0);
        snprintf(blocker_db, sizeof blocker_db, "%s/blocker-%d.db", base_dir, script);
        remove(blocker_db);
        trainer_submit(f->tr, &blocker);
    }
    session_config cfg = {
        .server = f->addr, .certs_dir = certs_dir, .name = "client-0000", .db_path = f->db,
        .data = { images, labels, NULL, N_TRAIN, images + N_TRAIN * MODEL_PIXELS, labels + N_TRAIN,
                  NULL, N_TEST },
        .backoff_min_ms = 10, .backoff_max_ms = 40, .jitter_seed = 1,
        .quiet = 1, .on_event = on_session_event, .user = f, .cache = f->cache,
    };
    ck_assert_msg(session_start(&f->loop, f->tr, &cfg, &f->s, err) == 0, "%s", err);
    ck_assert_int_eq(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(f->finished, 1);
    session_free(f->s);
    modelcache_free(f->cache);
    trainer_free(f->tr);
    if (gated) uv_sem_destroy(&f->gate);
    ck_assert_int_eq(uv_loop_close(&f->loop), 0);
    tls_ctx_free(f->tls);
    free(f->global);
}

START_TEST(test_conversation)
{
    fake f;
    char err[SEFL_ERRLEN];
    run_script(&f, SCRIPT_FULL);
    ck_assert_int_eq(f.fin_status, 0);
    ck_assert_int_eq(f.conns, 1);
    ck_assert_uint_eq(f.hello_train, N_TRAIN);
    ck_assert_uint_eq(f.hello_test, N_TEST);
    ck_assert_int_eq(f.hb_replies, 1);
    ck_assert_int_eq(f.updates, 1);
    ck_assert_uint_eq(f.update_round, 1);
    ck_assert_uint_eq(f.update_examples, N_TRAIN);
    /* Exactly the shared set came back, trained, and no SE tensor. */
    int shared = 0;
    for (int i = 0; i < table.n; i++) shared += params_selected(&table.p[i], params_shared(PARAM_SE));
    ck_assert_int_eq(f.update_tensors, shared);
    ck_assert_int_eq(f.update_se, 0);
    ck_assert(f.update_changed);
    ck_assert_int_eq(f.reports, 1);
    ck_assert_uint_eq(f.report_round, 1);
    ck_assert_uint_eq(f.report_examples, N_TEST);

    /* The private SE tensors of round 1 are in the client's file, trained
     * away from their initial values. */
    pstore *ps = NULL;
    float *w = calloc(table.total, sizeof *w);
    uint32_t round = 0;
    ck_assert_msg(pstore_open(f.db, "client-0000", &table, &ps, err) == 0, "%s", err);
    ck_assert_int_gt(pstore_load(ps, params_private(PARAM_SE), w, &round, err), 0);
    ck_assert_uint_eq(round, 1);
    pstore_close(ps);
    const param_info *p = params_find(&table, "se3.fc2.weight");
    ck_assert_ptr_nonnull(p);
    model *m = model_new(&table, 1);
    model_init(m, INIT_SEED);
    ck_assert(memcmp(w + p->offset, model_params(m) + p->offset, p->size * sizeof *w) != 0);
    model_free(m);
    free(w);
}
END_TEST

START_TEST(test_shutdown_reconnects)
{
    fake f;
    run_script(&f, SCRIPT_SHUTDOWN);
    ck_assert_int_eq(f.fin_status, 0);
    ck_assert_int_eq(f.conns, 2);
    ck_assert_int_eq(f.hellos, 2);
    ck_assert_int_eq(f.welcomed, 2);
    ck_assert_int_eq(f.disconnected, 1);
}
END_TEST

START_TEST(test_model_mismatch_is_fatal)
{
    fake f;
    run_script(&f, SCRIPT_MODEL_MISMATCH);
    ck_assert_int_lt(f.fin_status, 0);
    ck_assert_int_eq(f.conns, 1);
}
END_TEST

START_TEST(test_message_before_welcome_refused)
{
    fake f;
    run_script(&f, SCRIPT_EARLY_MESSAGE);
    ck_assert_uint_eq(f.client_error, WIRE_ERR_PROTOCOL);
    ck_assert_int_eq(f.conns, 2);
    ck_assert_int_eq(f.fin_status, 0);
}
END_TEST

/* A TrainTask waiting behind a running job is replaced by a newer one. */
START_TEST(test_newer_train_task_supersedes)
{
    fake f;
    run_script(&f, SCRIPT_SUPERSEDE);
    ck_assert_int_eq(f.fin_status, 0);
    ck_assert_int_eq(f.trainings, 2);
    ck_assert_int_eq(f.updates, 2);
    ck_assert_uint_eq(f.update_rounds, (1u << 1) | (1u << 3));
}
END_TEST

/* A retried round (same round, model, settings, seed) arriving while its
 * first attempt trains is answered by that training: one training, one
 * Update (the Update names only the round; it answers the newest task). */
START_TEST(test_retried_round_reuses_training)
{
    fake f;
    run_script(&f, SCRIPT_RETRY);
    ck_assert_int_eq(f.fin_status, 0);
    ck_assert_int_eq(f.trainings, 1);
    ck_assert_int_eq(f.updates, 1);
    ck_assert_uint_eq(f.update_rounds, 1u << 1);
    ck_assert_int_eq(f.reports, 1);
}
END_TEST

/* The same round with other settings is another task: trained again. A
 * different round is test_newer_train_task_supersedes (rounds 1 and 3 both
 * trained and answered). */
START_TEST(test_retried_round_other_settings_trains_again)
{
    fake f;
    run_script(&f, SCRIPT_RETRY_OTHER);
    ck_assert_int_eq(f.fin_status, 0);
    ck_assert_int_eq(f.trainings, 2);
    ck_assert_int_eq(f.updates, 2);
    ck_assert_int_eq(f.reports, 1);
}
END_TEST

/* Tasks waiting behind a running job are capped at SESSION_MAX_PENDING;
 * the oldest go first. */
START_TEST(test_pending_tasks_capped)
{
    fake f;
    run_script(&f, SCRIPT_OVERFLOW);
    ck_assert_int_eq(f.fin_status, 0);
    ck_assert_int_eq(f.updates, 1);
    ck_assert_int_eq(f.reports, SESSION_MAX_PENDING);
    ck_assert_uint_eq(f.report_rounds, (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6));
}
END_TEST

/* A batch the model cannot run is a bad task: Error and close, then the
 * client comes back. */
START_TEST(test_batch_over_limit_refused)
{
    fake f;
    run_script(&f, SCRIPT_BIG_BATCH);
    ck_assert_uint_eq(f.client_error, WIRE_ERR_PROTOCOL);
    ck_assert_int_eq(f.updates, 0);
    ck_assert_int_eq(f.conns, 2);
    ck_assert_int_eq(f.fin_status, 0);
}
END_TEST

/* A reference to a model the process does not hold (it holds another
 * one) is not trained on: after MODELCACHE_WAIT_MS the session asks for
 * that model (ModelRequest with the task's round and reference), trains
 * the task sent in full, and resolves a later reference to it at once. */
START_TEST(test_reference_not_held_is_asked_for)
{
    fake f;
    run_script(&f, SCRIPT_REF_MISS);
    ck_assert_int_eq(f.fin_status, 0);
    ck_assert_uint_eq(f.hello_token_len, WIRE_HOST_TOKEN_LEN);
    ck_assert_int_eq(f.requests, 1);
    ck_assert_uint_eq(f.request_round, 2);
    ck_assert(f.request_ref_ok);
    /* Only round 1 had started training when round 2's model was asked for. */
    ck_assert_int_eq(f.trainings_at_request, 1);
    ck_assert_uint_ge(f.request_wait_ms, MODELCACHE_WAIT_MS - 50);
    ck_assert_int_eq(f.trainings, 2);
    ck_assert_uint_eq(f.update_rounds, (1u << 1) | (1u << 2));
    /* The evaluation by reference was answered without another request. */
    ck_assert_int_eq(f.reports, 1);
    ck_assert_uint_eq(f.report_round, 2);
}
END_TEST

/* A task whose model_ref is not its tensors' hash is refused (Error
 * TENSOR, close) and nothing is trained or cached; a client without a
 * cache sends no host token. */
START_TEST(test_reference_label_checked)
{
    fake f;
    run_script(&f, SCRIPT_REF_BAD_LABEL);
    ck_assert_int_eq(f.fin_status, 0);
    ck_assert_uint_eq(f.client_error, WIRE_ERR_TENSOR);
    ck_assert_int_eq(f.trainings, 0);
    ck_assert_int_eq(f.conns, 2);
    run_script(&f, SCRIPT_SHUTDOWN);
    ck_assert_uint_eq(f.hello_token_len, 0);
}
END_TEST

static void run_fault(const char *fault, fake *f)
{
    setenv("SEFL_FAULT", fault, 1);
    run_script(f, SCRIPT_FULL);
    unsetenv("SEFL_FAULT");
    ck_assert_int_eq(f->fin_status, 0);
}

START_TEST(test_fault_switches)
{
    fake f;
    run_fault("stale", &f);
    ck_assert_int_eq(f.updates, 1);
    ck_assert_uint_eq(f.update_round, 0);
    run_fault("duplicate", &f);
    ck_assert_int_eq(f.updates, 2);
    ck_assert_uint_eq(f.update_round, 1);
    run_fault("nan", &f);
    ck_assert_uint_eq(f.update_code, WIRE_ERR_TENSOR);
    run_fault("shape", &f);
    ck_assert_uint_eq(f.update_code, WIRE_ERR_TENSOR);
}
END_TEST

START_TEST(test_tap)
{
    fake f;
    char dir[128], path[192];
    snprintf(dir, sizeof dir, "%s/tap", base_dir);
    ck_assert_int_eq(uv_fs_mkdir(NULL, &(uv_fs_t){ 0 }, dir, 0700, NULL), 0);
    setenv("SEFL_TAP_DIR", dir, 1);
    run_script(&f, SCRIPT_FULL);
    unsetenv("SEFL_TAP_DIR");

    /* The tap holds every frame sent, length-prefixed as on the wire. */
    snprintf(path, sizeof path, "%s/client-0000.frames", dir);
    FILE *in = fopen(path, "rb");
    ck_assert_ptr_nonnull(in);
    int cases[8], n = 0;
    uint8_t hdr[4];
    while (fread(hdr, 1, 4, in) == 4) {
        size_t len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
        uint8_t *buf = malloc(len + 1);
        ck_assert_uint_eq(fread(buf, 1, len, in), len);
        Sefl__Envelope *e = NULL;
        uint32_t code;
        char err[SEFL_ERRLEN];
        ck_assert_msg(wire_decode(buf, len, &table, wire_alloc_limit(len), &e, &code, err) == 0, "%s", err);
        ck_assert_int_lt(n, 8);
        cases[n++] = e->msg_case;
        wire_free(e);
        free(buf);
    }
    fclose(in);
    ck_assert_int_eq(n, 4);
    ck_assert_int_eq(cases[0], SEFL__ENVELOPE__MSG_HELLO);
    ck_assert_int_eq(cases[1], SEFL__ENVELOPE__MSG_HEARTBEAT);
    ck_assert_int_eq(cases[2], SEFL__ENVELOPE__MSG_UPDATE);
    ck_assert_int_eq(cases[3], SEFL__ENVELOPE__MSG_EVAL_REPORT);
}
END_TEST

static void eval_done(trainer_job *j)
{
    *(int *)j->user = 1;
}

/* A client's first task starts its private tensors at the global model's
 * initialisation: evaluating the initial global model on a fresh pstore
 * gives exactly the initial model's figures. */
START_TEST(test_first_task_starts_from_init)
{
    char err[SEFL_ERRLEN], db[160];
    uv_loop_t loop;
    trainer *tr = NULL;
    trainer_globals *g = NULL;
    wire_tensors wt;
    int done = 0;
    snprintf(db, sizeof db, "%s/first.db", base_dir);
    remove(db);

    model *m = model_new(&table, 32);
    ck_assert_ptr_nonnull(m);
    model_init(m, INIT_SEED);
    model_stats want;
    model_evaluate(m, images + N_TRAIN * MODEL_PIXELS, labels + N_TRAIN, NULL, N_TEST, &want);

    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_msg(trainer_new(&loop, &table, 1, &tr, err) == 0, "%s", err);
    ck_assert_int_eq(wire_tensors_build(&table, params_shared(PARAM_SE), model_params(m), &wt), 0);
    ck_assert_msg(trainer_globals_get(tr, PARAM_SE, wt.v, wt.n, &g, err) == 0, "%s", err);
    wire_tensors_release(&wt);
    trainer_data data = { images, labels, NULL, N_TRAIN, images + N_TRAIN * MODEL_PIXELS,
                          labels + N_TRAIN, NULL, N_TEST, NULL, 0 };
    trainer_job j = { .eval = 1, .db_path = db, .name = "client-0000", .data = &data,
                      .init_seed = INIT_SEED, .private_mask = PARAM_SE, .globals = g,
                      .round = 1, .done = eval_done, .user = &done };
    trainer_submit(tr, &j);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(done, 1);
    ck_assert_msg(j.status == 0, "%s", j.err);
    ck_assert_int_eq(j.eval_stats.examples, N_TEST);
    ck_assert(j.eval_stats.loss == want.loss);
    ck_assert(j.eval_stats.accuracy == want.accuracy);
    trainer_free(tr);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    model_free(m);
}
END_TEST

static float *schedule_out;     /* (table.total) what schedule_build saw */

static int schedule_build(trainer_job *j, const float *params)
{
    memcpy(schedule_out, params, table.total * sizeof *params);
    return 0;
}

/* The local schedule private-first:2 with --private-lr: the trainer's
 * parameters are exactly those of the gates trained alone for two epochs
 * at the private rate (rest frozen, shuffle seed rng_derive(seed, 1)),
 * then the rest alone for one epoch at lr (gates frozen, the task's seed),
 * momentum starting at zero. */
START_TEST(test_private_first_schedule)
{
    char err[SEFL_ERRLEN], db[160];
    uv_loop_t loop;
    trainer *tr = NULL;
    trainer_globals *g = NULL;
    wire_tensors wt;
    int done = 0;
    snprintf(db, sizeof db, "%s/schedule.db", base_dir);
    remove(db);
    schedule_out = calloc(table.total, sizeof *schedule_out);

    model *m = model_new(&table, 32);
    ck_assert_ptr_nonnull(m);
    model_init(m, INIT_SEED);
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_msg(trainer_new(&loop, &table, 1, &tr, err) == 0, "%s", err);
    ck_assert_int_eq(wire_tensors_build(&table, params_shared(PARAM_SE), model_params(m), &wt), 0);
    ck_assert_msg(trainer_globals_get(tr, PARAM_SE, wt.v, wt.n, &g, err) == 0, "%s", err);
    wire_tensors_release(&wt);
    trainer_data data = { images, labels, NULL, N_TRAIN, images + N_TRAIN * MODEL_PIXELS,
                          labels + N_TRAIN, NULL, N_TEST, NULL, 0 };
    trainer_job j = { .train = 1, .db_path = db, .name = "client-0000", .data = &data,
                      .init_seed = INIT_SEED, .private_mask = PARAM_SE, .globals = g, .round = 1,
                      .epochs = 1, .batch = 10, .sgd = { .lr = 0.05f, .momentum = 0.9f }, .seed = 9,
                      .private_epochs = 2, .private_lr = 0.2f,
                      .build = schedule_build, .done = eval_done, .user = &done };
    trainer_submit(tr, &j);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(done, 1);
    ck_assert_msg(j.status == 0, "%s", j.err);

    /* The same by hand on the model. */
    const param_sel se = params_private(PARAM_SE), rest = params_shared(PARAM_SE);
    const size_t bytes = table.total * sizeof(float);
    float *init = malloc(bytes), *gates = malloc(bytes);
    memcpy(init, model_params(m), bytes);
    sgd_config c = { .lr = 0.05f, .momentum = 0.9f, .frozen = rest, .alt = se, .alt_lr = 0.2f };
    model_stats st;
    ck_assert_int_eq(model_train(m, images, labels, NULL, N_TRAIN, 2, 10, &c, NULL, rng_derive(9, 1), &st), 0);
    memcpy(gates, model_params(m), bytes);
    c.frozen = se;
    ck_assert_int_eq(model_train(m, images, labels, NULL, N_TRAIN, 1, 10, &c, NULL, 9, &st), 0);
    ck_assert_int_eq(memcmp(schedule_out, model_params(m), bytes), 0);
    /* Both parts moved; the gates only in the first phase. */
    ck_assert(memcmp(gates, init, bytes) != 0);
    ck_assert(memcmp(model_params(m), gates, bytes) != 0);
    float *stored = calloc(table.total, sizeof *stored);
    pstore *ps = NULL;
    uint32_t round = 0;
    ck_assert_msg(pstore_open(db, "client-0000", &table, &ps, err) == 0, "%s", err);
    ck_assert_int_gt(pstore_load(ps, se, stored, &round, err), 0);
    pstore_close(ps);
    for (int i = 0; i < table.n; i++) {
        const param_info *p = &table.p[i];
        if (params_selected(p, se))
            ck_assert_int_eq(memcmp(stored + p->offset, gates + p->offset, p->size * sizeof(float)), 0);
    }
    trainer_free(tr);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    model_free(m);
    free(init);
    free(gates);
    free(stored);
    free(schedule_out);
}
END_TEST

static void setup_all(void)
{
    char err[SEFL_ERRLEN];
    check_mkdtemp(base_dir, sizeof base_dir, "/tmp/check_session.XXXXXX");
    snprintf(certs_dir, sizeof certs_dir, "%s/certs", base_dir);
    check_certs("init --dir %s --clients 1", certs_dir);
    if (params_build(&table, &(model_opts){ .arch = "cnn-se", .r = 8, .fc1_gate = 1 }, err) < 0) {
        fprintf(stderr, "check_session: %s\n", err);
        exit(1);
    }
    rng r;
    rng_seed(&r, 3);
    for (size_t i = 0; i < sizeof images / sizeof *images; i++) images[i] = (float)rng_uniform(&r);
    for (int i = 0; i < N_TRAIN + N_TEST; i++) labels[i] = (uint8_t)(i % MODEL_CLASSES);
}

int main(void)
{
    setup_all();
    /* One training thread plus one for name resolution, before any loop
     * uses the pool. */
    setenv("UV_THREADPOOL_SIZE", "2", 1);
    log_set_level(LOG_WARN);
    Suite *s = suite_create("session");
    TCase *tc = tcase_create("session");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_conversation);
    tcase_add_test(tc, test_shutdown_reconnects);
    tcase_add_test(tc, test_model_mismatch_is_fatal);
    tcase_add_test(tc, test_message_before_welcome_refused);
    tcase_add_test(tc, test_batch_over_limit_refused);
    tcase_add_test(tc, test_newer_train_task_supersedes);
    tcase_add_test(tc, test_pending_tasks_capped);
    tcase_add_test(tc, test_retried_round_reuses_training);
    tcase_add_test(tc, test_retried_round_other_settings_trains_again);
    tcase_add_test(tc, test_fault_switches);
    tcase_add_test(tc, test_tap);
    tcase_add_test(tc, test_first_task_starts_from_init);
    tcase_add_test(tc, test_private_first_schedule);
    tcase_add_test(tc, test_reference_not_held_is_asked_for);
    tcase_add_test(tc, test_reference_label_checked);
    suite_add_tcase(s, tc);
    int status = check_run(s);
    if (check_rm_rf(base_dir) != 0) fprintf(stderr, "check_session: could not remove %s\n", base_dir);
    return status;
}
