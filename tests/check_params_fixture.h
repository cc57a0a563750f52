/* check_params_fixture.h: the model buffer the wire and model-cache suites
 * test against: cnn-se at r 8 with the fc1 gate, every float drawn from a
 * normal distribution with seed 1, so every tensor holds distinct values. */
#ifndef SEFL_CHECK_PARAMS_FIXTURE_H
#define SEFL_CHECK_PARAMS_FIXTURE_H

#include <check.h>
#include <stdlib.h>

#include "common/log.h"
#include "common/nn/params.h"
#include "common/rng.h"

/* Builds *t and returns a (t->total) buffer the caller frees. */
static inline float *check_params_normal(param_table *t)
{
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(params_build(t, &(model_opts){ .arch = "cnn-se", .r = 8, .fc1_gate = 1 }, err), 0);
    float *m = malloc(t->total * sizeof *m);
    ck_assert_ptr_nonnull(m);
    rng g;
    rng_seed(&g, 1);
    for (size_t i = 0; i < t->total; i++) m[i] = (float)rng_normal(&g);
    return m;
}

#endif
