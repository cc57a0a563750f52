/* trainer: runs clients' train and eval jobs off the loop thread.
 *
 * One trainer per libuv loop, shared by every client session on it (one in
 * sefl-client, many in sefl-sim). A job names a client (its data and its
 * pstore file) and what to do; the trainer runs at most `threads` jobs at
 * once on the libuv thread pool and queues the rest, so heartbeats and other
 * clients' frames keep flowing while a client trains.
 *
 * Memory stays bounded as the number of clients grows: a model (parameters,
 * gradients, momentum, workspace) exists only while a job runs, taken from a
 * pool of at most `threads` models; a queued job holds no model. The global
 * model a task carries is decoded once into a trainer_globals buffer that
 * every client of the loop with the same model shares (the coordinator
 * sends the same shared set to every client of a round).
 *
 * A job, on its worker thread:
 *   1. the client's private tensors from its pstore (those it has none of
 *      yet from model_init(init_seed), so a first-time client starts equal
 *      to the global model's initialisation), then the shared tensors from
 *      globals;
 *   2. train: model_train on the client's train split (per the job's local
 *      schedule: one call, or the private tensors then the shared ones),
 *      then pstore_commit of
 *      the private set with the round, then the job's build hook (which
 *      encodes the Update from the trained parameters);
 *   3. eval: model_evaluate on the test split, history row in the pstore.
 * Then its done callback runs on the loop thread.
 */
#ifndef SEFL_TRAINER_H
#define SEFL_TRAINER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "proto/fl.pb-c.h"
#include "common/log.h"
#include "common/nn/model.h"
#include "common/nn/params.h"

#define TRAINER_MAX_THREADS 256

typedef struct trainer trainer;

/* One client's data: indices into image sets that the caller keeps alive
 * and unchanged while the trainer runs (in sefl-sim every client's indices
 * point into one pooled set; sefl-client with its own files has a train
 * set and a test set, indices NULL). A pool of raw pixels (pix, with
 * train_x and test_x NULL and both index lists set) is turned into floats
 * for the client's job only (dataset_gather, in its image domain), so a
 * process holds its images once, as bytes, however many clients it runs. */
typedef struct {
    const float *train_x;       /* (N, 784) images the train indices point into */
    const uint8_t *train_y;     /* (N) labels */
    const int *train;           /* (n_train) indices, or NULL for 0..n_train-1 */
    int n_train;
    const float *test_x;        /* (M, 784) */
    const uint8_t *test_y;      /* (M) */
    const int *test;            /* (n_test) indices, or NULL for 0..n_test-1 */
    int n_test;
    const uint8_t *pix;         /* (N, 784) raw pixels both index lists point into, or NULL */
    int domain;                 /* with pix: the client's feat:D image domain */
} trainer_data;

/* The shared set of a global model, decoded once and shared by reference
 * between the jobs of every client on the loop. */
typedef struct trainer_globals trainer_globals;

typedef struct trainer_job trainer_job;
struct trainer_job {
    /* Inputs, set by the caller. */
    int train;                  /* 1: train, commit, build */
    int eval;                   /* 1: evaluate on the test split (after training if both) */
    const char *db_path;        /* the client's pstore file */
    const char *name;           /* the client's name (pstore owner) */
    const trainer_data *data;
    uint64_t init_seed;         /* seed of the model's initialisation (Welcome) */
    unsigned private_mask;      /* PARAM_* groups kept in the pstore */
    trainer_globals *globals;   /* shared tensors, or NULL (local-only: all private);
                                   the job takes the caller's reference */
    uint32_t round;
    int epochs;
    int batch;
    sgd_config sgd;             /* frozen/alt are set by the trainer from the schedule */
    uint64_t seed;              /* shuffle seed */
    /* Local schedule (TrainTask.private_epochs, .private_lr). 0: joint,
     * every tensor trained together for `epochs`. P > 0: private-first:P,
     * the private tensors alone for P epochs (shared frozen), then the
     * shared ones for `epochs` (private frozen). With no globals (local
     * only) everything is private and the schedule is joint. */
    int private_epochs;
    float private_lr;           /* learning rate of the private tensors; 0: sgd.lr */
    /* Runs on the worker after a successful training with the trained
     * parameters (table.total floats); may be NULL. Returns 0 or negative
     * with err filled. */
    int (*build)(trainer_job *j, const float *params);
    /* Runs on the loop thread when the job is over (status set). */
    void (*done)(trainer_job *j);
    void *user;

    /* Outputs. */
    int status;                 /* 0 or a negative error (err says why) */
    char err[SEFL_ERRLEN];
    model_stats train_stats;    /* the last epoch's figures; seconds: all epochs */
    int diverged;               /* training gave a NaN or infinite loss or parameter:
                                   nothing was committed or built (status 0) */
    double train_cpu;           /* CPU seconds of the worker thread in model_train */
    model_stats eval_stats;
    double eval_cpu;            /* CPU seconds of the worker thread in model_evaluate */

    /* Internal. */
    trainer *tr;
    uv_work_t work;
    trainer_job *next;
};

/* Creates a trainer for table t (copied) on loop, running at most threads
 * jobs at once (1..TRAINER_MAX_THREADS). The libuv thread pool must have at
 * least threads + 1 threads (UV_THREADPOOL_SIZE, set before the loop first
 * uses the pool) so that name resolution is never stuck behind trainings.
 * Returns 0 or negative with err. */
int trainer_new(uv_loop_t *loop, const param_table *t, int threads, trainer **out, char *err);

/* Lets each job's training and evaluation use `threads` threads
 * (model_set_threads; 1..MODEL_MAX_THREADS, default 1), so one client trains
 * on several cores. Up to threads x job-threads threads then compute at once.
 * Before the first submit. Returns 0 or -EINVAL with err. */
int trainer_set_job_threads(trainer *tr, int threads, char *err);

/* Frees the trainer: every submitted job must be done. Accepts NULL. */
void trainer_free(trainer *tr);

const param_table *trainer_table(const trainer *tr);

/* Queues j; j must stay valid until its done callback. */
void trainer_submit(trainer *tr, trainer_job *j);

/* Jobs running and queued (for progress displays). */
int trainer_running(const trainer *tr);
int trainer_queued(const trainer *tr);

/* Decodes tensors ts[0..n) (validated by wire_decode) as the shared set of
 * private_mask into a globals buffer, or takes a new reference to an
 * identical one already held. Returns 0 and *out, or negative with err
 * (wrong tensor set: -EINVAL; -ENOMEM). Loop thread only. */
int trainer_globals_get(trainer *tr, unsigned private_mask, Sefl__Tensor *const *ts, size_t n,
                        trainer_globals **out, char *err);

/* Takes one more reference to g (for a holder other than a job: the model
 * cache, modelcache.h) and returns g. Loop thread only. */
trainer_globals *trainer_globals_ref(trainer_globals *g);

/* Drops a reference (accepts NULL). Loop thread only. */
void trainer_globals_put(trainer *tr, trainer_globals *g);

/* The global model a globals buffer holds (table.total floats; the private
 * tensors 0), read-only; valid while the reference is held. */
const float *trainer_globals_params(const trainer_globals *g);

#endif
