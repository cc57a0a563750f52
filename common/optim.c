/* optim: one SGD step with momentum, weight decay and a FedProx term; see
 * optim.h for the update rule (PyTorch's torch.optim.SGD conventions). */
#include "optim.h"

void sgd_step(float *w, const float *g, float *v, const float *ref, size_t n, const sgd_config *c)
{
    const float lr = c->lr, mom = c->momentum, wd = c->weight_decay;
    const float mu = ref ? c->prox_mu : 0.0f;
    /* Separate loops for the common cases keep each one a simple stream the
     * compiler vectorises; the general loop below is the definition. */
    if (mom == 0.0f && wd == 0.0f && mu == 0.0f) {
        for (size_t i = 0; i < n; i++) w[i] -= lr * g[i];
        return;
    }
    for (size_t i = 0; i < n; i++) {
        float d = g[i] + wd * w[i];
        if (mu != 0.0f) d += mu * (w[i] - ref[i]);
        if (mom != 0.0f) {
            v[i] = mom * v[i] + d;
            d = v[i];
        }
        w[i] -= lr * d;
    }
}
