/* attack: model-poisoning behaviours of simulated clients, a TEST TOOL for
 * measuring aggregation rules (sefl-sim --attack); an honest client never
 * uses it.
 *
 * An attacking client trains as usual, then the attack rewrites the shared
 * part of its trained parameters before the Update is encoded, in terms of
 * its update u = new - global:
 *   signflip    sends global - u (the update reversed)
 *   scale:S     sends global + S * u
 *   gauss:SIGMA sends global + N(0, SIGMA^2) per value (u thrown away)
 *   nan         sends its model with one value NaN (the coordinator's wire
 *               checks must refuse it)
 *   labelflip   changes nothing here: it trains on labels y -> 9 - y
 *               (attack_flip_labels), the data poisoning baseline.
 * Which clients attack: the first attack_count(F, N) client ids of the
 * partition, ceil(F * N).
 */
#ifndef SEFL_ATTACK_H
#define SEFL_ATTACK_H

#include <stddef.h>
#include <stdint.h>

#include "common/nn/params.h"

enum { ATTACK_NONE, ATTACK_SIGNFLIP, ATTACK_SCALE, ATTACK_GAUSS, ATTACK_LABELFLIP, ATTACK_NAN };

typedef struct {
    int kind;                   /* ATTACK_* */
    double s;                   /* scale: S; gauss: SIGMA */
} attack_spec;

/* Parses "signflip", "scale:S", "gauss:SIGMA", "labelflip" or "nan".
 * Returns 0 or -EINVAL with err. */
int attack_parse(const char *text, attack_spec *a, char *err);

/* ceil(fraction * clients): the number of attacking clients. */
int attack_count(double fraction, int clients);

/* Rewrites the tensors of sel in params (t->total floats, after training)
 * from global (the same layout, as the round's task sent it); gauss draws
 * from seed. Does nothing for ATTACK_NONE and ATTACK_LABELFLIP. */
void attack_apply(const attack_spec *a, const param_table *t, param_sel sel, const float *global,
                  float *params, uint64_t seed);

/* A copy of the n labels y with every label l replaced by 9 - l, or NULL
 * when out of memory; the caller frees it. */
uint8_t *attack_flip_labels(const uint8_t *y, size_t n);

#endif
