/* rules: the aggregation rules that need every update of a round at once
 * (strategy.h chooses between them and holds the updates).
 *
 * u is a (k, n) row-major array: k updates of n floats, k >= 1. Each rule
 * writes its aggregate into out (n floats) and is unweighted. Arithmetic is
 * in double, so finite inputs up to float's range give finite outputs.
 */
#ifndef SEFL_RULES_H
#define SEFL_RULES_H

#include <stddef.h>

/* coordwise.c: coordinate-wise order statistics; col is (k) doubles of
 * scratch. Median: the middle value, or the mean of the two middle values
 * for an even k. Trimmed mean: the mean of what is left after dropping the
 * floor(beta * k) largest and as many smallest values of each coordinate
 * (0 <= beta < 0.5, so at least one value is left). */
void rules_median(const float *u, int k, size_t n, double *col, float *out);
void rules_trimmed(const float *u, int k, size_t n, double beta, double *col, float *out);

/* krum.c: Multi-Krum (Blanchard et al. 2017, "Machine learning with
 * adversaries: Byzantine tolerant gradient descent"). The score of an update
 * is the sum of its squared L2 distances to its max(1, k - f - 2) nearest
 * other updates; out is the mean of the m updates of lowest score (m = 1 is
 * Krum: the chosen update itself), ties going to the lower index. dist is
 * (k, k) doubles and score (k) doubles of scratch, pick (k) ints receives
 * the chosen indices first. k >= 2 unless m == k == 1; 1 <= m <= k. */
void rules_krum(const float *u, int k, size_t n, int f, int m, double *dist, double *score,
                int *pick, float *out);

#endif
