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

typedef struct {
    float lr;
    float momentum;
    float weight_decay;
    float prox_mu;          /* FedProx mu; used only where ref != NULL */
} sgd_config;

/* One step over n parameters: w (n), g (n), v (n, momentum buffer), ref (n or NULL). */
void sgd_step(float *w, const float *g, float *v, const float *ref, size_t n, const sgd_config *c);

#endif
