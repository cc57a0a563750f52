/* rng: a small deterministic PRNG (xoshiro256** seeded by splitmix64).
 *
 * Same seed, same sequence on every machine: partitions, initialisation and
 * shuffles depend only on integer arithmetic here, so they agree bit for bit
 * across the machines of a simulation.
 */
#ifndef SEFL_RNG_H
#define SEFL_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} rng;

void rng_seed(rng *r, uint64_t seed);
uint64_t rng_next(rng *r);
/* Uniform in [0, n) without modulo bias; n > 0. */
uint64_t rng_below(rng *r, uint64_t n);
/* Uniform double in [0, 1) with 53 random bits. */
double rng_uniform(rng *r);
/* Standard normal (Box-Muller on rng_uniform). */
double rng_normal(rng *r);
/* Gamma(shape, 1), shape > 0 (Marsaglia-Tsang). */
double rng_gamma(rng *r, double shape);
/* Fisher-Yates shuffle of a[0..n). */
void rng_shuffle_int(rng *r, int *a, int n);
/* Derives an independent seed from (seed, stream), e.g. one per client. */
uint64_t rng_derive(uint64_t seed, uint64_t stream);

#endif
