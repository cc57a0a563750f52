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

/* One epoch over d's train split in shuffled mini-batches with every
 * tensor outside `train` frozen: their gradients are zeroed before each
 * step, and with no weight decay (newcomer_adapt refuses it) SGD leaves a
 * tensor with zero gradient and zero momentum exactly where it is.
 * order (n_train) is the shuffled sample order, xb/yb the gather buffers. */
static void newcomer_epoch(model *m, param_sel train, const trainer_data *d,
                           const newcomer_config *cfg, rng *r, int *order, float *xb, uint8_t *yb)
{
    const param_table *t = model_table(m);
    float *g = model_grads(m);
    for (int i = 0; i < d->n_train; i++) order[i] = d->train ? d->train[i] : i;
    rng_shuffle_int(r, order, d->n_train);
    for (int i = 0; i < d->n_train; i += cfg->batch) {
        const int b = d->n_train - i < cfg->batch ? d->n_train - i : cfg->batch;
        for (int j = 0; j < b; j++) {
            memcpy(xb + (long)j * MODEL_PIXELS, d->train_x + (long)order[i + j] * MODEL_PIXELS,
                   MODEL_PIXELS * sizeof *xb);
            yb[j] = d->train_y[order[i + j]];
        }
        model_forward_backward(m, xb, yb, b, NULL);
        for (int k = 0; k < t->n; k++)
            if (!params_selected(&t->p[k], train))
                memset(g + t->p[k].offset, 0, t->p[k].size * sizeof *g);
        model_sgd_step(m, &cfg->sgd, NULL);
    }
}

int newcomer_adapt(const param_table *t, unsigned private_mask, const float *w,
                   const trainer_data *d, const newcomer_config *cfg, double *acc, float *out,
                   char *err)
{
    if (cfg->epochs < 1 || cfg->epochs > NEWCOMER_MAX_EPOCHS || cfg->batch < 1 ||
        cfg->batch > MODEL_MAX_BATCH || cfg->sgd.weight_decay != 0) {
        err_set(err, "newcomer training wants 1..%d epochs, batch 1..%d and no weight decay",
                NEWCOMER_MAX_EPOCHS, MODEL_MAX_BATCH);
        return -EINVAL;
    }
    if (d->n_test < 1 || d->n_train < 1) {
        err_set(err, "a newcomer needs train and test samples");
        return -EINVAL;
    }
    const int max_batch = cfg->batch > NEWCOMER_MIN_BATCH ? cfg->batch : NEWCOMER_MIN_BATCH;
    model *m = model_new(t, max_batch);
    int *order = malloc((size_t)d->n_train * sizeof *order);                  /* (n_train) */
    float *xb = malloc((size_t)cfg->batch * MODEL_PIXELS * sizeof *xb);     /* (batch, 784) */
    uint8_t *yb = malloc((size_t)cfg->batch);                                /* (batch) */
    int rc = -ENOMEM;
    if (!m || !order || !xb || !yb) {
        err_set(err, "out of memory");
        goto out;
    }
    memcpy(model_params(m), w, t->total * sizeof *w);
    model_reset_momentum(m);
    rng r;
    rng_seed(&r, cfg->seed);
    model_stats st;
    model_evaluate(m, d->test_x, d->test_y, d->test, d->n_test, &st);
    acc[0] = st.accuracy;
    for (int e = 1; e <= cfg->epochs; e++) {
        if (private_mask) {
            newcomer_epoch(m, params_private(private_mask), d, cfg, &r, order, xb, yb);
            model_evaluate(m, d->test_x, d->test_y, d->test, d->n_test, &st);
        }
        acc[e] = st.accuracy;
    }
    if (out) memcpy(out, model_params(m), t->total * sizeof *out);
    rc = 0;
out:
    model_free(m);
    free(order);
    free(xb);
    free(yb);
    return rc;
}

int newcomer_epochs_to(const double *acc, int epochs, double frac)
{
    for (int e = 0; e < epochs; e++)
        if (acc[e] >= frac * acc[epochs]) return e;
    return epochs;
}
