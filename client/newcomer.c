/* newcomer: private-only adaptation of a held-out client, measured after
 * every epoch; see newcomer.h. */
#include "client/newcomer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/nn/model.h"
#include "common/rng.h"

/* Model workspace: evaluation runs in chunks of the model's batch. */
#define NEWCOMER_MIN_BATCH 32

int newcomer_adapt(const param_table *t, unsigned private_mask, const float *w,
                   const trainer_data *d, const newcomer_config *cfg, double *acc, float *out,
                   char *err)
{
    if (cfg->epochs < 1 || cfg->epochs > NEWCOMER_MAX_EPOCHS || cfg->batch < 1 ||
        cfg->batch > MODEL_MAX_BATCH) {
        err_set(err, "newcomer training wants 1..%d epochs and batch 1..%d", NEWCOMER_MAX_EPOCHS,
                MODEL_MAX_BATCH);
        return -EINVAL;
    }
    if (d->n_test < 1 || d->n_train < 1) {
        err_set(err, "a newcomer needs train and test samples");
        return -EINVAL;
    }
    const int max_batch = cfg->batch > NEWCOMER_MIN_BATCH ? cfg->batch : NEWCOMER_MIN_BATCH;
    model *m = model_new(t, max_batch);
    int rc = -ENOMEM;
    if (!m) {
        err_set(err, "out of memory");
        goto out;
    }
    memcpy(model_params(m), w, t->total * sizeof *w);
    model_reset_momentum(m);
    /* Only the private tensors train: the shared ones are frozen, weights
     * and momentum (model_sgd_step). */
    sgd_config sgd = cfg->sgd;
    sgd.frozen = params_shared(private_mask);
    model_stats st;
    model_evaluate(m, d->test_x, d->test_y, d->test, d->n_test, &st);
    acc[0] = st.accuracy;
    for (int e = 1; e <= cfg->epochs; e++) {
        if (private_mask) {
            /* One epoch per call (momentum carries on), each with its own
             * shuffle. */
            model_stats tr;
            rc = model_train(m, d->train_x, d->train_y, d->train, d->n_train, 1, cfg->batch, &sgd,
                             NULL, rng_derive(cfg->seed, (uint64_t)e), &tr);
            if (rc < 0) {
                err_set(err, "out of memory");
                goto out;
            }
            model_evaluate(m, d->test_x, d->test_y, d->test, d->n_test, &st);
        }
        acc[e] = st.accuracy;
    }
    if (out) memcpy(out, model_params(m), t->total * sizeof *out);
    rc = 0;
out:
    model_free(m);
    return rc;
}

int newcomer_epochs_to(const double *acc, int epochs, double frac)
{
    for (int e = 0; e < epochs; e++)
        if (acc[e] >= frac * acc[epochs]) return e;
    return epochs;
}
