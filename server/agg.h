/* agg: FedAvg as a running weighted sum.
 *
 * The coordinator folds each client's update into the sum as it arrives and
 * drops it, so its memory is one accumulator of the shared set whatever the
 * number of clients. The weight of an update is its number of training
 * examples (McMahan et al.'s FedAvg). Sums are kept in double so that the
 * order in which updates arrive changes the mean only in the last float bit.
 */
#ifndef SEFL_AGG_H
#define SEFL_AGG_H

#include <stddef.h>
#include <stdint.h>

/* Largest weight of one update: no client holds more samples than a dataset. */
#define AGG_MAX_WEIGHT 1000000u

typedef struct {
    size_t n;           /* floats per update */
    double *sum;        /* (n) sum over updates of weight * value */
    double weight;      /* sum of weights */
    double loss;        /* sum of weight * train loss */
    double accuracy;    /* sum of weight * train accuracy */
    int count;          /* updates folded in */
} agg;

/* Allocates an empty accumulator for vectors of n floats. Returns 0 or -ENOMEM. */
int agg_init(agg *a, size_t n);
void agg_free(agg *a);                  /* accepts a zeroed or freed agg */

/* Empties the sum (start of a round or of a retried round). */
void agg_reset(agg *a);

/* Folds v (n floats) with weight w (1..AGG_MAX_WEIGHT) and the update's
 * train figures. Returns 0; -EINVAL for a weight out of range, -EDOM when v
 * or a figure holds a NaN or infinity; on error the sum is unchanged. */
int agg_add(agg *a, const float *v, uint32_t w, float loss, float accuracy);

/* Writes the weighted mean into out (n floats). Returns 0, or -ENODATA when
 * nothing was folded in (out untouched). */
int agg_mean(const agg *a, float *out);

#endif
