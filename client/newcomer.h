/* newcomer: how fast a client that never took part in training adapts to
 * its own data (sefl-eval --newcomers).
 *
 * A held-out client (sefl-sim --holdout) starts from the run's final global
 * model with the private tensors of the run's initialisation, exactly what
 * a new client's first task would start from, and trains only its private
 * tensors (the run's --private set; every shared tensor stays frozen) on its
 * own train split, epoch after epoch. Its test accuracy is measured before
 * the first epoch and after each one, so the tools can ask how many epochs
 * it takes to come within 95% of where it ends.
 */
#ifndef SEFL_NEWCOMER_H
#define SEFL_NEWCOMER_H

#include <stdint.h>

#include "client/trainer.h"
#include "common/nn/optim.h"
#include "common/nn/params.h"

#define NEWCOMER_MAX_EPOCHS 1000

typedef struct {
    int epochs;                 /* 1..NEWCOMER_MAX_EPOCHS local epochs */
    int batch;                  /* 1..MODEL_MAX_BATCH */
    sgd_config sgd;             /* for the private tensors (frozen is set to the shared ones) */
    uint64_t seed;              /* shuffle seed of the first epoch; each epoch derives its own */
} newcomer_config;

/* Starts from w (t->total floats, not changed), trains the tensors of
 * private_mask on d's train split for cfg->epochs epochs with the other
 * tensors frozen, and writes into acc (cfg->epochs + 1) the test accuracy on
 * d's test split after 0, 1, ..., epochs epochs. With nothing private the
 * model never changes and every entry is the first. out (t->total, may be
 * NULL) gets the parameters after the last epoch. Returns 0, or negative
 * with err (-EINVAL bad config or no train or test samples, -ENOMEM). */
int newcomer_adapt(const param_table *t, unsigned private_mask, const float *w,
                   const trainer_data *d, const newcomer_config *cfg, double *acc, float *out,
                   char *err);

/* The first epoch e in 0..epochs with acc[e] >= frac * acc[epochs]
 * (acc has epochs + 1 entries). */
int newcomer_epochs_to(const double *acc, int epochs, double frac);

#endif
