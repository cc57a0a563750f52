/* session: one client's side of the conversation in proto/fl.proto, on a
 * libuv loop, with reconnects; see session.h.
 *
 * States: WAITING (backoff timer armed) -> CONNECTING (conn_connect, TLS
 * handshake) -> HELLO (Hello sent, waiting for Welcome) -> READY (serving
 * tasks) -> back to WAITING when the connection closes, unless the session
 * is stopping. Everything here runs on the loop thread except the job's
 * build hook (session_build_update), which runs on a worker and touches
 * only the job, the session's out_frame and the fault switch.
 */
#include "client/session.h"
#include "client/testswitch.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/net/conn.h"
#include "common/hash.h"
#include "client/pstore.h"
#include "common/rng.h"
#include "common/net/tls.h"
#include "common/fl/wire.h"
#include "common/fl/wire_enc.h"
#include "common/fl/wire_ref.h"
#include "common/version.h"

#define SESSION_SOFTWARE "sefl/" SEFL_VERSION

enum { ST_WAITING, ST_CONNECTING, ST_HELLO, ST_READY };

/* A task received and not yet given to the trainer. */
typedef struct {
    int train;                  /* 1 TrainTask, 0 EvalTask */
    uint32_t round;
    unsigned private_mask;
    trainer_globals *globals;   /* reference owned by the task */
    int epochs;
    int batch;
    sgd_config sgd;
    uint64_t seed;
    wire_enc update_enc;        /* how the Update goes back (TrainTask.update_encoding) */
    int private_epochs;         /* local schedule (trainer_job) */
    float private_lr;
} session_task;

struct session {
    uv_loop_t *loop;
    trainer *tr;
    session_config cfg;
    char host[256];             /* server host, also the certificate name checked */
    tls_ctx *tls;
    conn *c;                    /* NULL while disconnected */
    uint64_t gen;               /* bumped at each close: a job's answer goes only to its connection */
    int state;                  /* ST_* */
    uv_timer_t timer;           /* reconnect backoff; while connected, the keepalive
                                   of a connection waiting for an rxlimit slot */
    int attempt;                /* failed connections since the last Welcome */
    int permanent;              /* permanent failures in a row (session.h) */
    rng jitter;

    /* From Welcome. */
    uint64_t heartbeat_ms;      /* the coordinator's heartbeat period */
    uint64_t ping_nonce;        /* of our own Heartbeats */
    uint64_t init_seed;
    unsigned welcome_mask;

    /* The job in flight (at most one per session), allocated while it runs:
     * an idle client of sefl-sim holds none. */
    trainer_job *job;
    int job_running;
    uint64_t job_gen;           /* gen of the connection the task came on */
    wire_enc job_enc;           /* how the running job's Update is encoded */
    uint8_t *out_frame;         /* (out_len) Update frame built by the worker */
    size_t out_len;

    session_task pending[SESSION_MAX_PENDING];
    int n_pending;

    /* A task whose model reference the cache did not hold (its globals
     * NULL), while waiter is linked; the timer bounds the wait. */
    session_task ref_task;
    modelcache_waiter waiter;

    int stopping;               /* no reconnect; finish when idle */
    int closing_timer;
    int status;                 /* final status: 0 or the fatal error */
    char err[SEFL_ERRLEN];

    testswitch ts;              /* test-only switches (testswitch.h); off in release builds */
};

static void session_connect(session *s);
static void session_run_next(session *s);
static void session_on_rx_wait(conn *c, int waiting);

/* Per-task lines go to debug in a simulation of many clients. */
#define session_log(s, ...) log_msg((s)->cfg.quiet ? LOG_DEBUG : LOG_INFO, __VA_ARGS__)

static void session_emit(session *s, int type, const trainer_job *j, int status, const char *err)
{
    if (!s->cfg.on_event) return;
    session_event ev = { .type = type, .status = status, .err = err };
    if (j) {
        ev.train = j->train;
        ev.round = j->round;
        ev.epochs = j->train ? j->epochs : 0;
        ev.stats = j->train ? &j->train_stats : &j->eval_stats;
        ev.train_cpu = j->train_cpu;
        ev.eval_cpu = j->eval_cpu;
    }
    s->cfg.on_event(s, &ev);
}

const char *session_name(const session *s)
{
    return s->cfg.name;
}

void *session_user(const session *s)
{
    return s->cfg.user;
}

/* Sends an encoded frame on the current connection (and taps it). */
static int session_send_frame(session *s, const uint8_t *frame, size_t len)
{
    if (!s->c) return -ENOTCONN;
    testswitch_tap(&s->ts, s->cfg.name, frame, len);
    int rc = conn_send_frame(s->c, frame, len);
    if (rc < 0) log_warn("%s: cannot send a frame: %s", s->cfg.name, strerror(-rc));
    return rc;
}

static int session_send(session *s, Sefl__Envelope *e)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    int rc = wire_encode(e, &frame, &len);
    if (rc == 0) rc = session_send_frame(s, frame, len);
    free(frame);
    return rc;
}

/* A bad frame from the coordinator: Error{code} then close (fl.proto). */
static void session_protocol_error(session *s, uint32_t code, const char *msg)
{
    log_warn("%s: closing: %s", s->cfg.name, msg);
    uint8_t *frame = NULL;
    size_t len = 0;
    if (wire_encode_error(code, msg, &frame, &len) == 0) session_send_frame(s, frame, len);
    free(frame);
    conn_close(s->c, msg);
}

static void session_drop_pending(session *s)
{
    for (int i = 0; i < s->n_pending; i++) trainer_globals_put(s->tr, s->pending[i].globals);
    s->n_pending = 0;
}

/* Ends a wait for a referenced model (the task waiting is dropped). */
static void session_ref_stop(session *s)
{
    if (!s->waiter.linked) return;
    modelcache_cancel(s->cfg.cache, &s->waiter);
    uv_timer_stop(&s->timer);
}

static void session_timer_close_cb(uv_handle_t *h)
{
    session *s = h->data;
    session_emit(s, SESSION_FINISHED, NULL, s->status, s->status ? s->err : NULL);
}

/* Finishes a stopping session once nothing is in flight. */
static void session_maybe_finish(session *s)
{
    if (!s->stopping || s->c || s->job_running || s->closing_timer) return;
    s->closing_timer = 1;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, session_timer_close_cb);
}

/* Ends the session with an error that retrying cannot fix. */
static void session_fail(session *s, int status, const char *err)
{
    log_error("%s: %s", s->cfg.name, err);
    if (!s->status) {
        s->status = status;
        snprintf(s->err, sizeof s->err, "%s", err);
    }
    session_stop(s);
}

void session_stop(session *s)
{
    if (s->stopping) return;
    s->stopping = 1;
    session_drop_pending(s);
    session_ref_stop(s);
    uv_timer_stop(&s->timer);
    if (s->c) conn_close(s->c, "client stopping");
    session_maybe_finish(s);
}

static void session_timer_cb(uv_timer_t *t)
{
    session_connect(t->data);
}

/* Arms the reconnect timer: exponential backoff from backoff_min_ms, capped
 * at backoff_max_ms, with "equal jitter" (half fixed, half random) so that
 * many clients dropped together do not all come back in the same instant. */
static void session_schedule(session *s)
{
    uint64_t d = s->cfg.backoff_min_ms;
    for (int i = 0; i < s->attempt && d < s->cfg.backoff_max_ms; i++) d *= 2;
    if (d > s->cfg.backoff_max_ms) d = s->cfg.backoff_max_ms;
    d = d / 2 + rng_below(&s->jitter, d / 2 + 1);
    if (s->attempt < 64) s->attempt++;
    s->state = ST_WAITING;
    session_log(s, "%s: reconnecting in %.1f s", s->cfg.name, (double)d / 1000.0);
    uv_timer_start(&s->timer, session_timer_cb, d, 0);
}

static void session_on_open(conn *c)
{
    session *s = conn_user(c);
    const param_table *t = trainer_table(s->tr);
    Sefl__ModelSpec spec = SEFL__MODEL_SPEC__INIT;
    Sefl__Hello hello = SEFL__HELLO__INIT;
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;

    wire_spec_from_table(t, &spec);
    hello.spec = &spec;
    hello.train_examples = (uint32_t)s->cfg.data.n_train;
    hello.test_examples = (uint32_t)s->cfg.data.n_test;
    hello.software = SESSION_SOFTWARE;
    if (s->cfg.partition) hello.partition = (char *)s->cfg.partition;
    if (s->cfg.cache) {
        hello.host_token.len = WIRE_HOST_TOKEN_LEN;
        hello.host_token.data = (uint8_t *)modelcache_token(s->cfg.cache);
    }
    e.msg_case = SEFL__ENVELOPE__MSG_HELLO;
    e.hello = &hello;
    session_log(s, "%s: connected to %s", s->cfg.name, s->cfg.server);
    conn_set_on_rx_wait(c, session_on_rx_wait);
    s->state = ST_HELLO;
    if (session_send(s, &e) < 0) conn_close(c, "cannot send Hello");
}

/* What a person must do about a permanent handshake failure (tls.h). */
static void session_hint(const session *s, int kind, char *out, size_t n)
{
    const char *dir = s->cfg.certs_dir, *name = s->cfg.name;
    switch (kind) {
    case TLS_FAIL_UNTRUSTED:
        snprintf(out, n, "the coordinator's certificate is not signed by %s/ca.crt: use the ca.crt of "
                 "the sefl-certs directory the coordinator runs with (sefl-server --certs)", dir);
        break;
    case TLS_FAIL_NAME:
        snprintf(out, n, "the coordinator's certificate does not carry the name '%s' of --server: "
                 "connect to a name it carries, or make its certificates with sefl-certs init "
                 "--dir DIR --server-name %s", s->host, s->host);
        break;
    case TLS_FAIL_EXPIRED:
    case TLS_FAIL_REVOKED:
        snprintf(out, n, "the coordinator's certificate is %s: make new certificates with sefl-certs "
                 "init --dir DIR --server-name %s and restart the coordinator with them",
                 kind == TLS_FAIL_EXPIRED ? "expired or not yet valid" : "revoked", s->host);
        break;
    case TLS_FAIL_REFUSED:
        snprintf(out, n, "the coordinator refused this client's certificate %s/clients/%s.crt (not "
                 "signed by its CA, expired or revoked): issue one from the coordinator's CA with "
                 "sefl-certs issue --dir DIR --name %s", dir, name, name);
        break;
    default:
        snprintf(out, n, "the coordinator's certificate is unusable: make new certificates with "
                 "sefl-certs init --dir DIR --server-name %s", s->host);
        break;
    }
}

/* A handshake failed for a reason retrying alone cannot fix: an ERROR line
 * with the fix, and the end of the session after max_attempts in a row.
 * Returns 1 when the session ended. */
static int session_permanent(session *s, int kind, const char *reason)
{
    char hint[768], line[1280];
    session_hint(s, kind, hint, sizeof hint);
    int max = s->cfg.max_attempts > 0 ? s->cfg.max_attempts : SESSION_MAX_ATTEMPTS;
    s->permanent++;
    snprintf(line, sizeof line, "cannot join %s: %s. Fix: %s", s->cfg.server, reason, hint);
    const log_field f[] = {
        LOG_STR("event", "join_refused"), LOG_STR("client", s->cfg.name),
        LOG_STR("server", s->cfg.server), LOG_INT("attempt", s->permanent),
        LOG_INT("max_attempts", max),
    };
    if (s->permanent < max) {
        log_fields(LOG_ERROR, f, 5, "%s: %s (attempt %d of %d)", s->cfg.name, line, s->permanent, max);
        return 0;
    }
    char err[SEFL_ERRLEN];
    snprintf(err, sizeof err, "giving up after %d attempts (--max-attempts)", max);
    log_fields(LOG_ERROR, f, 5, "%s: %s", s->cfg.name, line);
    session_fail(s, -EACCES, err);
    return 1;
}

static void session_on_close(conn *c, int status, const char *reason)
{
    session *s = conn_user(c);
    int kind = conn_tls_failure(c);
    s->c = NULL;
    s->gen++;
    session_drop_pending(s);
    session_ref_stop(s);
    session_log(s, "%s: connection closed: %s", s->cfg.name, reason ? reason : "closed");
    if (s->stopping) {
        session_maybe_finish(s);
        return;
    }
    if (kind != TLS_FAIL_NONE && session_permanent(s, kind, reason ? reason : "closed")) return;
    session_emit(s, SESSION_DISCONNECTED, NULL, status, reason);
    session_schedule(s);
}

static void session_on_welcome(session *s, const Sefl__Welcome *w)
{
    char err[SEFL_ERRLEN];
    if (s->state != ST_HELLO) {
        session_protocol_error(s, WIRE_ERR_PROTOCOL, "Welcome after Welcome");
        return;
    }
    if (params_parse_private(w->private_groups, &s->welcome_mask, err) < 0) {
        session_protocol_error(s, WIRE_ERR_PROTOCOL, err);
        return;
    }
    if (strcmp(w->client_id, s->cfg.name) != 0)
        log_warn("%s: the coordinator calls this client '%s'", s->cfg.name, w->client_id);
    s->init_seed = w->init_seed;
    s->heartbeat_ms = (uint64_t)(w->heartbeat_seconds ? w->heartbeat_seconds : 1) * 1000;
    s->state = ST_READY;
    s->attempt = 0;
    s->permanent = 0;
    conn_set_authenticated(s->c);
    session_log(s, "%s: welcomed: round %u, private %s, heartbeat %u s", s->cfg.name, w->round,
                params_private_name(s->welcome_mask), w->heartbeat_seconds);
    session_event ev = { .type = SESSION_WELCOMED, .round = w->round };
    if (s->cfg.on_event) s->cfg.on_event(s, &ev);
}

/* Checks a TrainTask's settings against the ranges a training can run with
 * (wire_decode has checked the wire's own limits: epochs, finite numbers). */
static int session_check_train(const Sefl__TrainTask *t, char *err)
{
    if (t->batch < 1 || t->batch > MODEL_MAX_BATCH)
        err_set(err, "TrainTask batch %u out of range 1..%d", t->batch, MODEL_MAX_BATCH);
    else if (!isfinite(t->lr) || t->lr <= 0)
        err_set(err, "TrainTask lr %g is not a positive number", (double)t->lr);
    else if (!isfinite(t->momentum) || t->momentum < 0 || t->momentum >= 1)
        err_set(err, "TrainTask momentum %g out of range [0,1)", (double)t->momentum);
    else if (!isfinite(t->weight_decay) || t->weight_decay < 0)
        err_set(err, "TrainTask weight_decay %g is negative", (double)t->weight_decay);
    else if (!isfinite(t->prox_mu) || t->prox_mu < 0)
        err_set(err, "TrainTask prox_mu %g is negative", (double)t->prox_mu);
    else if (!isfinite(t->private_lr) || t->private_lr < 0)
        err_set(err, "TrainTask private_lr %g is negative", (double)t->private_lr);
    else
        return 0;
    return -EINVAL;
}

/* The training in flight answers task as well: same round, same global
 * model and same SGD settings, epochs, batch and seed. That is the
 * coordinator retrying a round it abandoned (coord_abandon): a retry sends
 * the same round's model with the settings of its fixed config and the seed
 * rng_derive(seed, round), so training again would compute the same Update.
 * The model is compared by its globals buffer: trainer_globals_get hands out
 * the buffer already held when the decoded shared set (and private mask)
 * is identical, and the running job keeps its reference until it is done,
 * so equal pointers mean equal tensors, compared once at decoding. The
 * round number alone is not enough: a restarted coordinator may send the
 * same round with another model (a store lost or replaced). A different
 * seed also counts as another task: the seed picks the batches, and a
 * user who sets one expects it to be the one trained with. The Update
 * names only the round, so the frame already built needs no change. */
static int session_job_answers(const session *s, const session_task *task)
{
    const trainer_job *j = s->job;
    return s->job_running && j && j->train && task->train && j->round == task->round &&
           j->globals == task->globals && j->private_mask == task->private_mask &&
           j->epochs == task->epochs && j->batch == task->batch && j->seed == task->seed &&
           j->private_epochs == task->private_epochs && j->private_lr == task->private_lr &&
           !memcmp(&j->sgd, &task->sgd, sizeof j->sgd) &&
           s->job_enc.dtype == task->update_enc.dtype &&
           s->job_enc.per_channel == task->update_enc.per_channel;
}

/* Queues a task behind the running job. A newer TrainTask replaces a
 * waiting one: that round is over for the coordinator. A TrainTask the
 * running training already answers (session_job_answers) is not trained
 * again: the training's Update goes to the connection this task came on. */
static void session_enqueue(session *s, const session_task *task)
{
    if (task->train) {
        for (int i = 0; i < s->n_pending; i++) {
            if (!s->pending[i].train) continue;
            log_warn("%s: TrainTask of round %u superseded by round %u", s->cfg.name,
                     s->pending[i].round, task->round);
            trainer_globals_put(s->tr, s->pending[i].globals);
            memmove(&s->pending[i], &s->pending[i + 1], (size_t)(s->n_pending - i - 1) * sizeof *s->pending);
            s->n_pending--;
            break;
        }
        if (session_job_answers(s, task)) {
            session_log(s, "%s: TrainTask of round %u retried; answering it with the training in flight",
                        s->cfg.name, task->round);
            trainer_globals_put(s->tr, task->globals);
            s->job_gen = s->gen;
            return;
        }
    }
    if (s->n_pending == SESSION_MAX_PENDING) {
        log_warn("%s: too many tasks waiting; dropping the task of round %u", s->cfg.name, s->pending[0].round);
        trainer_globals_put(s->tr, s->pending[0].globals);
        memmove(&s->pending[0], &s->pending[1], (size_t)(s->n_pending - 1) * sizeof *s->pending);
        s->n_pending--;
    }
    s->pending[s->n_pending++] = *task;
    session_run_next(s);
}

/* The model a waiting task refers to arrived on another session of the
 * process (modelcache_put): the task goes on with it. */
static void session_ref_ready(modelcache_waiter *w, trainer_globals *g)
{
    session *s = w->user;
    uv_timer_stop(&s->timer);
    session_task task = s->ref_task;
    task.globals = g;
    session_enqueue(s, &task);
}

/* No session of the process received the referenced model in time (its
 * connection died, the cache evicted it, or the token is another
 * process's): ask the coordinator for the task in full. */
static void session_ref_timeout(uv_timer_t *t)
{
    session *s = t->data;
    char hex[17];
    modelcache_cancel(s->cfg.cache, &s->waiter);
    modelcache_note_request(s->cfg.cache);
    session_log(s, "%s: round %u: model %s not in this process after %d ms; asking for it",
                s->cfg.name, s->ref_task.round, wire_ref_short(s->waiter.ref, hex),
                MODELCACHE_WAIT_MS);
    Sefl__ModelRequest mr = SEFL__MODEL_REQUEST__INIT;
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    mr.round = s->ref_task.round;
    mr.model_ref.len = WIRE_REF_LEN;
    mr.model_ref.data = s->waiter.ref;
    e.msg_case = SEFL__ENVELOPE__MSG_MODEL_REQUEST;
    e.model_request = &mr;
    session_send(s, &e);
}

/* The globals of a task: decoded from its tensors (and, when the task is
 * labelled with a reference, checked against it and kept in the process's
 * cache), or taken from the cache for a reference. Returns 1 when the task
 * waits for its model (session_ref_ready or _timeout go on with it), 0 with
 * task->globals set, or negative after a protocol error. */
static int session_task_model(session *s, session_task *task, Sefl__Tensor *const *ts, size_t n,
                              const ProtobufCBinaryData *ref)
{
    char err[SEFL_ERRLEN];
    modelcache *mc = s->cfg.cache;
    if (n == 0 && ref->len == WIRE_REF_LEN) {
        if (!mc) {
            session_protocol_error(s, WIRE_ERR_PROTOCOL,
                                   "a model reference, but this client sent no host token");
            return -EPROTO;
        }
        if ((task->globals = modelcache_get(mc, ref->data, task->private_mask))) return 0;
        s->ref_task = *task;
        memcpy(s->waiter.ref, ref->data, WIRE_REF_LEN);
        s->waiter.private_mask = task->private_mask;
        s->waiter.ready = session_ref_ready;
        s->waiter.user = s;
        modelcache_wait(mc, &s->waiter);
        uv_timer_start(&s->timer, session_ref_timeout, MODELCACHE_WAIT_MS, 0);
        return 1;
    }
    int rc = trainer_globals_get(s->tr, task->private_mask, ts, n, &task->globals, err);
    if (rc < 0) {
        session_protocol_error(s, WIRE_ERR_TENSOR, err);
        return rc;
    }
    if (!mc || ref->len == 0) return 0;
    /* The label is checked, so that a cache entry is the model its
     * reference names whatever the coordinator does. */
    uint8_t mine[WIRE_REF_LEN];
    if ((rc = wire_model_ref(ts, n, mine)) < 0 || memcmp(mine, ref->data, WIRE_REF_LEN)) {
        trainer_globals_put(s->tr, task->globals);
        task->globals = NULL;
        session_protocol_error(s, WIRE_ERR_TENSOR, "the task's model_ref is not its tensors' hash");
        return rc < 0 ? rc : -EBADMSG;
    }
    modelcache_put(mc, ref->data, task->private_mask, task->globals);
    return 0;
}

static void session_on_task(session *s, int train, uint32_t round, const char *private_groups,
                            Sefl__Tensor *const *ts, size_t n, const ProtobufCBinaryData *ref,
                            const Sefl__TrainTask *tt)
{
    char err[SEFL_ERRLEN];
    session_task task = { .train = train, .round = round };
    if (s->state != ST_READY) {
        session_protocol_error(s, WIRE_ERR_PROTOCOL, "task before Welcome");
        return;
    }
    if (tt && session_check_train(tt, err) < 0) {
        session_protocol_error(s, WIRE_ERR_PROTOCOL, err);
        return;
    }
    if (params_parse_private(private_groups, &task.private_mask, err) < 0) {
        session_protocol_error(s, WIRE_ERR_PROTOCOL, err);
        return;
    }
    if (tt) {
        task.epochs = (int)tt->epochs;
        task.batch = (int)tt->batch;
        task.sgd = (sgd_config){ .lr = tt->lr, .momentum = tt->momentum,
                                  .weight_decay = tt->weight_decay, .prox_mu = tt->prox_mu };
        task.seed = tt->seed;
        /* wire_decode checked that the encoding is a known one. */
        wire_enc_from_encoding(tt->update_encoding, tt->update_per_channel, &task.update_enc);
        task.private_epochs = (int)tt->private_epochs;
        task.private_lr = tt->private_lr;
    }
    /* A newer task ends the wait for an older one's model: the coordinator
     * has moved on from it. */
    session_ref_stop(s);
    if (session_task_model(s, &task, ts, n, ref) != 0) return;
    session_enqueue(s, &task);
}

static void session_on_frame(conn *c, const uint8_t *payload, size_t len)
{
    session *s = conn_user(c);
    Sefl__Envelope *e = NULL;
    uint32_t code = 0;
    char err[SEFL_ERRLEN];

    if (wire_decode(payload, len, trainer_table(s->tr), wire_alloc_limit(len), &e, &code, err) < 0) {
        session_protocol_error(s, code, err);
        return;
    }
    if (s->state == ST_HELLO && e->msg_case != SEFL__ENVELOPE__MSG_WELCOME &&
        e->msg_case != SEFL__ENVELOPE__MSG_ERROR && e->msg_case != SEFL__ENVELOPE__MSG_BYE) {
        session_protocol_error(s, WIRE_ERR_PROTOCOL, "expected Welcome");
        goto out;
    }
    switch (e->msg_case) {
    case SEFL__ENVELOPE__MSG_WELCOME:
        session_on_welcome(s, e->welcome);
        break;
    case SEFL__ENVELOPE__MSG_TRAIN_TASK: {
        const Sefl__TrainTask *t = e->train_task;
        session_on_task(s, 1, t->round, t->private_groups, t->tensors, t->n_tensors,
                        &t->model_ref, t);
        break;
    }
    case SEFL__ENVELOPE__MSG_EVAL_TASK: {
        const Sefl__EvalTask *t = e->eval_task;
        session_on_task(s, 0, t->round, t->private_groups, t->tensors, t->n_tensors,
                        &t->model_ref, NULL);
        break;
    }
    case SEFL__ENVELOPE__MSG_HEARTBEAT:
        if (!e->heartbeat->reply) {
            Sefl__Heartbeat hb;
            Sefl__Envelope r;
            wire_heartbeat(&r, &hb, e->heartbeat->nonce, 1);
            session_send(s, &r);
        }
        break;
    case SEFL__ENVELOPE__MSG_ERROR: {
        const Sefl__Error *er = e->error;
        if (er->code == WIRE_ERR_MODEL || er->code == WIRE_ERR_VERSION) {
            snprintf(err, sizeof err, "the coordinator refused this client: %s (error %u). Fix: %s",
                     er->message, er->code, er->code == WIRE_ERR_MODEL
                     ? "give the client the coordinator's model settings (--r)"
                     : "run the same sefl version (--version) on both sides");
            session_fail(s, -EPROTO, err);
        } else {
            log_warn("%s: coordinator error %u: %s", s->cfg.name, er->code, er->message);
        }
        break;
    }
    case SEFL__ENVELOPE__MSG_BYE:
        if (!strcmp(e->bye->reason, "done")) {
            log_info("%s: the coordinator finished the run", s->cfg.name);
            session_stop(s);
        } else {
            session_log(s, "%s: coordinator said bye: %s", s->cfg.name, e->bye->reason);
            conn_close(c, "coordinator said bye");
        }
        break;
    default:
        session_protocol_error(s, WIRE_ERR_PROTOCOL, "message not allowed from a coordinator");
        break;
    }
out:
    wire_free(e);
}

/* Worker thread: encodes the Update from the trained parameters, with the
 * test-only fault or the test tool's attack applied. */
static int session_build_update(trainer_job *j, const float *params)
{
    session *s = j->user;
    const param_table *t = trainer_table(s->tr);
    param_sel sel = params_shared(j->private_mask);
    const float *src = params;
    float *copy = NULL;         /* (table.total) params altered: FAULT_NAN or an attack */
    wire_tensors wt = { 0 };
    int rc;

    attack_spec nan_fault = { .kind = ATTACK_NAN };
    const attack_spec *att = s->ts.fault == FAULT_NAN ? &nan_fault : s->cfg.attack;
    if (att && att->kind != ATTACK_NONE && att->kind != ATTACK_LABELFLIP && j->globals) {
        copy = malloc(t->total * sizeof *copy);
        if (!copy) goto nomem;
        memcpy(copy, params, t->total * sizeof *copy);
        attack_apply(att, t, sel, trainer_globals_params(j->globals), copy, j->seed);
        src = copy;
    }
    /* f16 and int8 send the difference from the task's model as decoded;
     * int8 rounds stochastically, from a seed of its own per client and
     * round so that the clients' rounding errors are independent. */
    const int delta = s->job_enc.dtype != WIRE_F32;
    const uint64_t name_hash = hash_fnv1a(HASH_FNV_INIT, s->cfg.name, strlen(s->cfg.name));
    if (wire_tensors_encode(t, sel, src, delta ? trainer_globals_params(j->globals) : NULL,
                            s->job_enc, rng_derive(j->seed, name_hash) | 1, &wt) < 0)
        goto nomem;
    if (s->ts.fault == FAULT_SHAPE && wt.n > 0) wt.t[0].shape[0] += 1;

    Sefl__Update u = SEFL__UPDATE__INIT;
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    u.round = s->ts.fault == FAULT_STALE ? j->round - 1 : j->round;
    u.examples = (uint32_t)j->data->n_train;
    u.n_tensors = wt.n;
    u.tensors = wt.v;
    u.train_loss = (float)j->train_stats.loss;
    u.train_accuracy = (float)j->train_stats.accuracy;
    u.train_seconds = (float)j->train_stats.seconds;
    u.delta = delta;
    e.msg_case = SEFL__ENVELOPE__MSG_UPDATE;
    e.update = &u;
    rc = wire_encode(&e, &s->out_frame, &s->out_len);
    wire_tensors_release(&wt);
    free(copy);
    if (rc < 0) err_set(j->err, "cannot encode the Update: out of memory");
    return rc;
nomem:
    wire_tensors_release(&wt);
    free(copy);
    err_set(j->err, "out of memory building the Update");
    return -ENOMEM;
}

static void session_send_eval_report(session *s, const trainer_job *j)
{
    Sefl__EvalReport r = SEFL__EVAL_REPORT__INIT;
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    r.round = j->round;
    r.examples = (uint32_t)j->eval_stats.examples;
    r.accuracy = (float)j->eval_stats.accuracy;
    r.loss = (float)j->eval_stats.loss;
    e.msg_case = SEFL__ENVELOPE__MSG_EVAL_REPORT;
    e.eval_report = &r;
    session_send(s, &e);
}

/* Loop thread: the job is over; answer on the connection it came from. */
static void session_job_done(trainer_job *j)
{
    session *s = j->user;
    const model_stats *st = j->train ? &j->train_stats : &j->eval_stats;
    int live = s->c && s->gen == s->job_gen && s->state == ST_READY;

    s->job_running = 0;
    if (j->status < 0) {
        session_emit(s, SESSION_TASK_DONE, j, j->status, j->err);
        session_fail(s, j->status, j->err);
    } else {
        if (!live) {
            log_warn("%s: round %u %s done after the connection closed; answer dropped",
                     s->cfg.name, j->round, j->train ? "training" : "evaluation");
        } else if (j->train && j->diverged) {
            /* Nothing was committed: the private tensors stay the last good
             * ones in the store. The coordinator counts the failure and
             * keeps the connection. */
            log_warn("%s: %s; reporting it instead of an update", s->cfg.name, j->err);
            uint8_t *frame = NULL;
            size_t len = 0;
            if (wire_encode_error(WIRE_ERR_DIVERGED, j->err, &frame, &len) == 0)
                session_send_frame(s, frame, len);
            free(frame);
        } else if (j->train) {
            session_send_frame(s, s->out_frame, s->out_len);
            if (s->ts.fault == FAULT_DUPLICATE) session_send_frame(s, s->out_frame, s->out_len);
            s->ts.fault = FAULT_NONE;
        } else {
            session_send_eval_report(s, j);
        }
        if (j->train)
            session_log(s, "%s: round %u trained: %ld examples, loss %.4f, accuracy %.4f, %.2f s",
                        s->cfg.name, j->round, st->examples, st->loss, st->accuracy, st->seconds);
        else
            session_log(s, "%s: round %u evaluated: %ld examples, loss %.4f, accuracy %.4f",
                        s->cfg.name, j->round, st->examples, st->loss, st->accuracy);
        session_emit(s, SESSION_TASK_DONE, j, 0, NULL);
    }
    free(s->out_frame);
    s->out_frame = NULL;
    s->out_len = 0;
    free(s->job);   /* j */
    s->job = NULL;
    if (s->stopping) session_maybe_finish(s);
    else session_run_next(s);
}

/* Gives the oldest waiting task to the trainer when no job of ours runs. */
static void session_run_next(session *s)
{
    if (s->job_running || s->n_pending == 0 || s->stopping) return;
    session_task task = s->pending[0];
    memmove(&s->pending[0], &s->pending[1], (size_t)(s->n_pending - 1) * sizeof *s->pending);
    s->n_pending--;

    trainer_job *j = calloc(1, sizeof *j);
    if (!j) {
        trainer_globals_put(s->tr, task.globals);
        session_fail(s, -ENOMEM, "out of memory for a job");
        return;
    }
    s->job = j;
    j->train = task.train;
    j->eval = !task.train;
    j->db_path = s->cfg.db_path;
    j->name = s->cfg.name;
    j->data = &s->cfg.data;
    j->init_seed = s->init_seed;
    j->private_mask = task.private_mask;
    j->globals = task.globals;
    j->round = task.round;
    j->epochs = task.epochs;
    j->batch = task.batch;
    j->sgd = task.sgd;
    j->seed = task.seed;
    s->job_enc = task.update_enc;
    j->private_epochs = task.private_epochs;
    j->private_lr = task.private_lr;
    j->build = task.train ? session_build_update : NULL;
    j->done = session_job_done;
    j->user = s;
    s->job_running = 1;
    s->job_gen = s->gen;
    session_emit(s, SESSION_TASK_START, j, 0, NULL);
    trainer_submit(s->tr, j);
}

/* While the connection waits for a slot to read a large frame (sefl-sim's
 * rxlimit), the coordinator's heartbeats wait behind that frame, unread and
 * unanswered; a coordinator closes a client silent for 3 heartbeats. So the
 * session pings it (Heartbeat, reply = false) once when the wait begins and
 * then every heartbeat period, and its answers are read with the rest. */
static void session_ping(session *s)
{
    if (!s->c || s->state != ST_READY) return;
    Sefl__Heartbeat hb;
    Sefl__Envelope e;
    wire_heartbeat(&e, &hb, ++s->ping_nonce, 0);
    session_send(s, &e);
}

static void session_keepalive_cb(uv_timer_t *t)
{
    session_ping(t->data);
}

static void session_on_rx_wait(conn *c, int waiting)
{
    session *s = conn_user(c);
    if (!waiting) {
        uv_timer_stop(&s->timer);
        return;
    }
    session_ping(s);
    uv_timer_start(&s->timer, session_keepalive_cb, s->heartbeat_ms, s->heartbeat_ms);
}

static void session_connect(session *s)
{
    static const conn_callbacks cb = { session_on_open, session_on_frame, session_on_close };
    conn_limits lim = conn_limits_default();
    char err[SEFL_ERRLEN];

    lim.rx = s->cfg.rx;
    s->state = ST_CONNECTING;
    int rc = conn_connect(s->loop, s->cfg.server, s->tls, &lim, &cb, s, &s->c, err);
    if (rc < 0) {
        s->c = NULL;
        log_warn("%s: cannot connect to %s: %s", s->cfg.name, s->cfg.server, err);
        session_schedule(s);
    }
}

/* Splits "HOST:PORT" (HOST may be "[v6]") and keeps HOST. */
static int session_parse_server(session *s, const char *server, char *err)
{
    const char *colon = strrchr(server, ':');
    const char *h = server;
    size_t n = colon ? (size_t)(colon - server) : 0;
    if (!colon || n == 0 || !colon[1]) {
        err_set(err, "--server must be HOST:PORT, got '%s'", server);
        return -EINVAL;
    }
    if (h[0] == '[' && n >= 2 && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n >= sizeof s->host) {
        err_set(err, "server host name too long");
        return -EINVAL;
    }
    memcpy(s->host, h, n);
    s->host[n] = 0;
    return 0;
}

int session_start(uv_loop_t *loop, trainer *tr, const session_config *cfg, session **out, char *err)
{
    pstore *ps = NULL;
    int rc;

    if (cfg->data.n_train < 1 || cfg->data.n_test < 1) {
        err_set(err, "%s: needs at least one train and one test sample", cfg->name);
        return -EINVAL;
    }
    session *s = calloc(1, sizeof *s);
    if (!s) {
        err_set(err, "out of memory");
        return -ENOMEM;
    }
    s->loop = loop;
    s->tr = tr;
    s->cfg = *cfg;
    if (!s->cfg.backoff_min_ms) s->cfg.backoff_min_ms = SESSION_BACKOFF_MIN_MS;
    if (!s->cfg.backoff_max_ms) s->cfg.backoff_max_ms = SESSION_BACKOFF_MAX_MS;
    if (s->cfg.backoff_max_ms < s->cfg.backoff_min_ms) s->cfg.backoff_max_ms = s->cfg.backoff_min_ms;
    rng_seed(&s->jitter, cfg->jitter_seed ^ hash_fnv1a(HASH_FNV_INIT, cfg->name, strlen(cfg->name)));

    rc = session_parse_server(s, cfg->server, err);
    if (rc < 0) goto fail;
    rc = testswitch_init(&s->ts, cfg->name, err);
    if (rc < 0) goto fail;
    /* Checked now so that a corrupt or foreign file stops the program at
     * start rather than at its first task. */
    rc = pstore_open(cfg->db_path, cfg->name, trainer_table(tr), &ps, err);
    pstore_close(ps);
    if (rc < 0) goto fail;
    rc = tls_ctx_new_client_shared(&s->tls, cfg->tls_shared, cfg->certs_dir, cfg->name, s->host, err);
    if (rc < 0) {
        char crt[PATH_MAX];
        snprintf(crt, sizeof crt, "%s/clients/%s.crt", cfg->certs_dir, cfg->name);
        if (access(crt, F_OK) != 0)
            err_set(err, "no certificate for client '%s' (%s): issue one with sefl-certs issue "
                    "--dir %s --name %s", cfg->name, crt, cfg->certs_dir, cfg->name);
        goto fail;
    }
    rc = uv_timer_init(loop, &s->timer);
    if (rc < 0) {
        err_set(err, "cannot create a timer: %s", uv_strerror(rc));
        goto fail;
    }
    s->timer.data = s;
    *out = s;
    session_connect(s);
    return 0;
fail:
    tls_ctx_free(s->tls);
    testswitch_free(&s->ts);
    free(s);
    return rc;
}

void session_free(session *s)
{
    if (!s) return;
    tls_ctx_free(s->tls);
    free(s->out_frame);
    free(s->job);
    testswitch_free(&s->ts);
    free(s);
}
