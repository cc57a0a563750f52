/* optim: SGD with momentum, weight decay and an optional proximal term.
 *
 *   g' = g + weight_decay * w + prox_mu * (w - ref)     (ref may be NULL: no prox)
 *   v  = momentum * v + g'                               (PyTorch's convention)
 *   w  = w - lr * v
 * With momentum 0, v is not read or written (may be NULL).
 */
#ifndef SEFL_OPTIM_H
#define SEFL_OPTIM_H

#include <stddef.h>

#include "common/nn/params.h"

typedef struct {
    float lr;
    float momentum;
    float weight_decay;
    float prox_mu;          /* FedProx mu; used only where ref != NULL */
    /* Per-tensor choices, made by model_sgd_step (sgd_step sees one slice
     * and ignores them). Tensors selected by `frozen` are not stepped at
     * all: their weights and their momentum stay as they are. The others
     * selected by `alt` step at alt_lr instead of lr. A zero selection
     * selects nothing, so a config that sets neither trains every tensor
     * at lr. */
    param_sel frozen;
    param_sel alt;
    float alt_lr;
} sgd_config;

/* One step over n parameters: w (n), g (n), v (n, momentum buffer), ref (n or NULL). */
void sgd_step(float *w, const float *g, float *v, const float *ref, size_t n, const sgd_config *c);

#endif
