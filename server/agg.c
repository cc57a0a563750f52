/* agg: the running weighted sum behind FedAvg; see agg.h. */
#include "server/agg.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int agg_init(agg *a, size_t n)
{
    memset(a, 0, sizeof *a);
    a->sum = calloc(n ? n : 1, sizeof *a->sum);
    if (!a->sum) return -ENOMEM;
    a->n = n;
    return 0;
}

void agg_free(agg *a)
{
    free(a->sum);
    memset(a, 0, sizeof *a);
}

void agg_reset(agg *a)
{
    memset(a->sum, 0, a->n * sizeof *a->sum);
    a->weight = a->loss = a->accuracy = 0;
    a->count = 0;
}

int agg_add(agg *a, const float *v, uint32_t w, float loss, float accuracy)
{
    if (w == 0 || w > AGG_MAX_WEIGHT) return -EINVAL;
    if (!isfinite(loss) || !isfinite(accuracy)) return -EDOM;
    /* Check the whole vector before touching the sum, so a rejected update
     * leaves no trace in the round. */
    for (size_t i = 0; i < a->n; i++)
        if (!isfinite(v[i])) return -EDOM;
    double dw = w;
    for (size_t i = 0; i < a->n; i++) a->sum[i] += dw * v[i];
    a->weight += dw;
    a->loss += dw * loss;
    a->accuracy += dw * accuracy;
    a->count++;
    return 0;
}

int agg_mean(const agg *a, float *out)
{
    if (a->count == 0) return -ENODATA;
    for (size_t i = 0; i < a->n; i++) out[i] = (float)(a->sum[i] / a->weight);
    return 0;
}
