/* trainer: clients' train/eval jobs on the libuv thread pool, with a bounded
 * pool of models and shared global-model buffers; see trainer.h.
 *
 * Threads: the job queue, the running count and the globals list are
 * touched only on the loop thread (submit, after-work callbacks); the model
 * pool is shared with the workers and guarded by a mutex. A worker reads its
 * job's globals buffer but never changes its reference count.
 */
#include "client/trainer.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/pstore.h"
#include "common/data/dataset.h"
#include "common/fl/wire.h"
#include "common/rng.h"

/* Models get workspace for at least this many samples, so that evaluation
 * (which runs in chunks of the model's batch) is not one sample at a time
 * after a training with a small batch. */
#define TRAINER_MIN_BATCH 32

struct trainer_globals {
    int refs;
    unsigned private_mask;
    float *buf;                 /* (table.total): shared tensors set, private ones 0 */
    trainer_globals *next;
};

typedef struct {
    model *m;
    int max_batch;
} trainer_slot;

struct trainer {
    uv_loop_t *loop;
    param_table table;
    int threads;                /* jobs run at once, at most */
    int job_threads;            /* threads one job's model computes on */
    int running;
    int queued;
    trainer_job *head, *tail;   /* jobs waiting for a thread, FIFO */
    trainer_globals *globals;   /* buffers in use */
    uv_mutex_t pool_lock;       /* guards pool and pool_n */
    trainer_slot *pool;         /* (threads) idle models */
    int pool_n;
};

int trainer_new(uv_loop_t *loop, const param_table *t, int threads, trainer **out, char *err)
{
    if (threads < 1 || threads > TRAINER_MAX_THREADS) {
        err_set(err, "threads must be 1..%d, got %d", TRAINER_MAX_THREADS, threads);
        return -EINVAL;
    }
    trainer *tr = calloc(1, sizeof *tr);
    if (!tr || !(tr->pool = calloc((size_t)threads, sizeof *tr->pool))) {
        free(tr);
        err_set(err, "out of memory");
        return -ENOMEM;
    }
    if (uv_mutex_init(&tr->pool_lock) != 0) {
        free(tr->pool);
        free(tr);
        err_set(err, "cannot create a mutex");
        return -ENOMEM;
    }
    tr->loop = loop;
    tr->table = *t;
    tr->threads = threads;
    tr->job_threads = 1;
    *out = tr;
    return 0;
}

void trainer_free(trainer *tr)
{
    if (!tr) return;
    for (int i = 0; i < tr->pool_n; i++) model_free(tr->pool[i].m);
    while (tr->globals) {
        trainer_globals *g = tr->globals;
        tr->globals = g->next;
        free(g->buf);
        free(g);
    }
    uv_mutex_destroy(&tr->pool_lock);
    free(tr->pool);
    free(tr);
}

int trainer_set_job_threads(trainer *tr, int threads, char *err)
{
    if (threads < 1 || threads > MODEL_MAX_THREADS) {
        err_set(err, "threads per training must be 1..%d, got %d", MODEL_MAX_THREADS, threads);
        return -EINVAL;
    }
    tr->job_threads = threads;
    return 0;
}

const param_table *trainer_table(const trainer *tr)
{
    return &tr->table;
}

int trainer_running(const trainer *tr)
{
    return tr->running;
}

int trainer_queued(const trainer *tr)
{
    return tr->queued;
}

/* Takes an idle model with workspace for max_batch samples, or makes one.
 * At most `threads` jobs run at once and each holds one model, so the pool
 * never holds more than `threads` models. Worker threads. */
static model *trainer_model_get(trainer *tr, int max_batch)
{
    model *m = NULL;
    uv_mutex_lock(&tr->pool_lock);
    if (tr->pool_n > 0) {
        trainer_slot s = tr->pool[--tr->pool_n];
        if (s.max_batch >= max_batch) m = s.m;
        else model_free(s.m);
    }
    uv_mutex_unlock(&tr->pool_lock);
    if (m) return m;
    m = model_new(&tr->table, max_batch);
    if (m && model_set_threads(m, tr->job_threads) < 0) {
        model_free(m);
        m = NULL;
    }
    return m;
}

static void trainer_model_put(trainer *tr, model *m, int max_batch)
{
    if (!m) return;
    uv_mutex_lock(&tr->pool_lock);
    if (tr->pool_n < tr->threads) {
        tr->pool[tr->pool_n++] = (trainer_slot){ m, max_batch };
        m = NULL;
    }
    uv_mutex_unlock(&tr->pool_lock);
    model_free(m);
}

/* Loads the client's starting parameters into w: its private tensors from
 * the pstore (the initialisation where it has none yet), then the shared
 * tensors of the global model (private ones kept). */
static int trainer_load(trainer *tr, trainer_job *j, pstore *ps, model *m)
{
    const param_table *t = &tr->table;
    param_sel psel = params_private(j->private_mask);
    float *w = model_params(m);
    int want = 0;
    for (int i = 0; i < t->n; i++) want += params_selected(&t->p[i], psel);

    int rc = pstore_load(ps, psel, w, NULL, j->err);
    if (rc >= 0 && rc < want) {
        /* A first task (or a new private set): start the missing tensors
         * from the model's initialisation, keeping those stored. Only then,
         * as initialising every parameter costs more than loading a few. */
        model_init(m, j->init_seed);
        rc = pstore_load(ps, psel, w, NULL, j->err);
    }
    if (rc < 0 || !j->globals) return rc < 0 ? rc : 0;

    /* (params_count(private)) the private tensors, kept across the copy */
    float *priv = malloc((params_count(t, psel) + 1) * sizeof *priv);
    if (!priv) {
        err_set(j->err, "out of memory");
        return -ENOMEM;
    }
    params_gather(t, psel, w, priv);
    memcpy(w, j->globals->buf, t->total * sizeof *w);
    params_scatter(t, psel, priv, w);
    free(priv);
    return 0;
}

/* CPU seconds used by the calling thread: the cost of a training whatever
 * else the machine runs, which wall time is not. */
static double trainer_thread_cpu(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0.0;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A client's train (test = 0) or test split as model_train and
 * model_evaluate take it: the data's own arrays, or floats gathered from a
 * pool of raw pixels into buffers of the job's (own = 1). */
typedef struct {
    const float *x;
    const uint8_t *y;
    const int *idx;
    float *own_x;
    uint8_t *own_y;
} trainer_samples;

static void trainer_samples_free(trainer_samples *s)
{
    free(s->own_x);
    free(s->own_y);
}

static int trainer_samples_get(const trainer_data *d, int test, trainer_samples *s)
{
    const int n = test ? d->n_test : d->n_train;
    const int *idx = test ? d->test : d->train;
    memset(s, 0, sizeof *s);
    if (!d->pix) {
        *s = (trainer_samples){ test ? d->test_x : d->train_x, test ? d->test_y : d->train_y, idx,
                                NULL, NULL };
        return 0;
    }
    s->own_x = malloc((size_t)(n > 0 ? n : 1) * MODEL_PIXELS * sizeof *s->own_x);
    s->own_y = malloc((size_t)(n > 0 ? n : 1));
    if (!s->own_x || !s->own_y) {
        trainer_samples_free(s);
        return -ENOMEM;
    }
    dataset_gather(d->pix, test ? d->test_y : d->train_y, idx, n, d->domain, s->own_x, s->own_y);
    s->x = s->own_x;
    s->y = s->own_y;
    return 0;
}

/* 1 when the loss and every one of the n parameters w are finite. */
static int trainer_finite(double loss, const float *w, size_t n)
{
    if (!isfinite(loss)) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(w[i])) return 0;
    return 1;
}

static int trainer_train(trainer *tr, trainer_job *j, pstore *ps, model *m)
{
    const param_table *t = &tr->table;
    const trainer_data *d = j->data;
    float *w = model_params(m);
    float *ref = NULL;          /* (table.total) FedProx reference: the starting point */
    int rc;

    if (j->sgd.prox_mu > 0) {
        ref = malloc(t->total * sizeof *ref);
        if (!ref) {
            err_set(j->err, "out of memory");
            return -ENOMEM;
        }
        memcpy(ref, w, t->total * sizeof *ref);
    }
    trainer_samples s;
    if ((rc = trainer_samples_get(d, 0, &s)) < 0) {
        free(ref);
        err_set(j->err, "out of memory for %d samples", d->n_train);
        return rc;
    }
    /* The schedule, as per-tensor choices of the SGD step: private tensors
     * at their own rate; private-first trains them first with the shared
     * ones frozen, then freezes them. The frozen sets are disjoint, so the
     * momentum of one phase never reaches the other. */
    const param_sel priv = params_private(j->private_mask);
    sgd_config c = j->sgd;
    c.alt = priv;
    c.alt_lr = j->private_lr > 0 ? j->private_lr : j->sgd.lr;
    uint64_t t0 = uv_hrtime();
    double c0 = trainer_thread_cpu();
    model_reset_momentum(m); /* a job starts afresh: the pool's model ran another */
    /* Gathered samples are in index order, so the shuffle picks the same
     * samples in the same order as from the pool. */
    rc = 0;
    if (j->private_epochs > 0 && j->globals) {
        c.frozen = params_shared(j->private_mask);
        rc = model_train(m, s.x, s.y, s.idx, d->n_train, j->private_epochs, j->batch, &c, ref,
                         rng_derive(j->seed, 1), &j->train_stats);
        c.frozen = priv;
    }
    if (rc == 0)
        rc = model_train(m, s.x, s.y, s.idx, d->n_train, j->epochs, j->batch, &c, ref, j->seed,
                         &j->train_stats);
    trainer_samples_free(&s);
    j->train_cpu = trainer_thread_cpu() - c0;
    j->train_stats.seconds = (double)(uv_hrtime() - t0) / 1e9;
    free(ref);
    if (rc < 0) {
        err_set(j->err, "training failed: batch %d out of range 1..%d", j->batch, MODEL_MAX_BATCH);
        return rc;
    }
    /* A diverged training commits nothing: the store keeps the last good
     * private tensors, which the next task starts from, and the caller
     * reports the failure instead of an update. */
    if (!trainer_finite(j->train_stats.loss, w, t->total)) {
        j->diverged = 1;
        err_set(j->err, "training diverged in round %u: loss %g", j->round, j->train_stats.loss);
        return 0;
    }
    pstore_figures fig = { j->round, j->train_stats.examples, j->train_stats.loss,
                           j->train_stats.accuracy, j->train_stats.seconds };
    rc = pstore_commit(ps, params_private(j->private_mask), w, &fig, j->err);
    if (rc < 0) return rc;
    return j->build ? j->build(j, w) : 0;
}

static int trainer_run(trainer *tr, trainer_job *j)
{
    int max_batch = j->batch > TRAINER_MIN_BATCH ? j->batch : TRAINER_MIN_BATCH;
    pstore *ps = NULL;
    model *m = NULL;
    int rc;

    if (j->train && (j->batch < 1 || j->batch > MODEL_MAX_BATCH)) {
        err_set(j->err, "batch %d out of range 1..%d", j->batch, MODEL_MAX_BATCH);
        return -EINVAL;
    }
    rc = pstore_open(j->db_path, j->name, &tr->table, &ps, j->err);
    if (rc < 0) goto out;
    m = trainer_model_get(tr, max_batch);
    if (!m) {
        err_set(j->err, "out of memory for a model");
        rc = -ENOMEM;
        goto out;
    }
    rc = trainer_load(tr, j, ps, m);
    if (rc < 0) goto out;
    if (j->train) {
        rc = trainer_train(tr, j, ps, m);
        if (rc < 0) goto out;
    }
    if (j->eval && !j->diverged) {
        trainer_samples s;
        if ((rc = trainer_samples_get(j->data, 1, &s)) < 0) {
            err_set(j->err, "out of memory for %d samples", j->data->n_test);
            goto out;
        }
        const double c0 = trainer_thread_cpu();
        model_evaluate(m, s.x, s.y, s.idx, j->data->n_test, &j->eval_stats);
        j->eval_cpu = trainer_thread_cpu() - c0;
        trainer_samples_free(&s);
        pstore_figures fig = { j->round, j->eval_stats.examples, j->eval_stats.loss,
                               j->eval_stats.accuracy, j->eval_stats.seconds };
        rc = pstore_record_eval(ps, &fig, j->err);
    }
out:
    trainer_model_put(tr, m, max_batch);
    pstore_close(ps);
    return rc;
}

static void trainer_work_cb(uv_work_t *w)
{
    trainer_job *j = w->data;
    j->status = trainer_run(j->tr, j);
}

static void trainer_pump(trainer *tr);

static void trainer_after_work_cb(uv_work_t *w, int status)
{
    trainer_job *j = w->data;
    trainer *tr = j->tr;
    if (status == UV_ECANCELED) {
        j->status = -ECANCELED;
        err_set(j->err, "job cancelled");
    }
    tr->running--;
    trainer_globals_put(tr, j->globals);
    j->globals = NULL;
    trainer_pump(tr);
    j->done(j);
}

/* Starts queued jobs while fewer than `threads` run. */
static void trainer_pump(trainer *tr)
{
    while (tr->head && tr->running < tr->threads) {
        trainer_job *j = tr->head;
        tr->head = j->next;
        if (!tr->head) tr->tail = NULL;
        tr->queued--;
        j->next = NULL;
        j->work.data = j;
        int rc = uv_queue_work(tr->loop, &j->work, trainer_work_cb, trainer_after_work_cb);
        if (rc < 0) {
            /* Only an invalid argument makes uv_queue_work fail; report it
             * through the job rather than losing it. */
            j->status = rc;
            err_set(j->err, "cannot queue a job: %s", uv_strerror(rc));
            trainer_globals_put(tr, j->globals);
            j->globals = NULL;
            j->done(j);
            continue;
        }
        tr->running++;
    }
}

void trainer_submit(trainer *tr, trainer_job *j)
{
    j->tr = tr;
    j->status = 0;
    j->err[0] = 0;
    j->next = NULL;
    memset(&j->train_stats, 0, sizeof j->train_stats);
    memset(&j->eval_stats, 0, sizeof j->eval_stats);
    j->train_cpu = j->eval_cpu = 0;
    if (tr->tail) tr->tail->next = j;
    else tr->head = j;
    tr->tail = j;
    tr->queued++;
    trainer_pump(tr);
}

int trainer_globals_get(trainer *tr, unsigned private_mask, Sefl__Tensor *const *ts, size_t n,
                        trainer_globals **out, char *err)
{
    const param_table *t = &tr->table;
    float *buf = calloc(t->total, sizeof *buf);   /* (table.total) */
    if (!buf) {
        err_set(err, "out of memory");
        return -ENOMEM;
    }
    int rc = wire_tensors_apply(t, params_shared(private_mask), ts, n, buf, err);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    for (trainer_globals *g = tr->globals; g; g = g->next) {
        if (g->private_mask == private_mask && !memcmp(g->buf, buf, t->total * sizeof *buf)) {
            free(buf);
            g->refs++;
            *out = g;
            return 0;
        }
    }
    trainer_globals *g = calloc(1, sizeof *g);
    if (!g) {
        free(buf);
        err_set(err, "out of memory");
        return -ENOMEM;
    }
    g->refs = 1;
    g->private_mask = private_mask;
    g->buf = buf;
    g->next = tr->globals;
    tr->globals = g;
    *out = g;
    return 0;
}

trainer_globals *trainer_globals_ref(trainer_globals *g)
{
    g->refs++;
    return g;
}

void trainer_globals_put(trainer *tr, trainer_globals *g)
{
    if (!g || --g->refs > 0) return;
    for (trainer_globals **p = &tr->globals; *p; p = &(*p)->next) {
        if (*p == g) {
            *p = g->next;
            break;
        }
    }
    free(g->buf);
    free(g);
}

const float *trainer_globals_params(const trainer_globals *g)
{
    return g->buf;
}
