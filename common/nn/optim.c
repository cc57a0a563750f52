/* optim: one SGD step with momentum, weight decay and a FedProx term; see
 * optim.h for the update rule (PyTorch's torch.optim.SGD conventions). */
#include "common/nn/optim.h"

#include "common/nn/simd.h"

void sgd_step(float *w, const float *g, float *v, const float *ref, size_t n, const sgd_config *c)
{
    const float lr = c->lr, mom = c->momentum, wd = c->weight_decay;
    const float mu = ref ? c->prox_mu : 0.0f;
    const v4f vlr = v4_splat(lr), vmom = v4_splat(mom), vwd = v4_splat(wd), vmu = v4_splat(mu);
    /* The step streams three or four buffers larger than L2, four floats at
     * a time; the tests in the loop are the same every iteration and
     * predicted. The scalar loop after it is the same rule for the tail. */
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const v4f wi = v4_load(w + i);
        v4f d = v4_load(g + i) + vwd * wi;
        if (mu != 0.0f) d += vmu * (wi - v4_load(ref + i));
        if (mom != 0.0f) {
            d += vmom * v4_load(v + i);
            v4_store(v + i, d);
        }
        v4_store(w + i, wi - vlr * d);
    }
    for (; i < n; i++) {
        float d = g[i] + wd * w[i];
        if (mu != 0.0f) d += mu * (w[i] - ref[i]);
        if (mom != 0.0f) {
            v[i] = mom * v[i] + d;
            d = v[i];
        }
        w[i] -= lr * d;
    }
}
