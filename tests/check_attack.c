/* check_attack: the test tool's poisoned updates (client/attack.h) on a
 * real parameter table: each kind against the formula, only the selected
 * (shared) tensors touched, the attacker count, flipped labels, parsing. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "client/attack.h"
#include "common/log.h"
#include "tests/check_main.h"

static param_table t;
static float *g, *p, *orig;     /* (t.total) each */

static void setup(void)
{
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(params_build(&t, &(model_opts){ .arch = "cnn-se", .r = 8, .fc1_gate = 1 }, err), 0);
    g = malloc(t.total * sizeof *g);
    p = malloc(t.total * sizeof *p);
    orig = malloc(t.total * sizeof *orig);
    for (size_t j = 0; j < t.total; j++) {
        g[j] = (float)(j % 13) * 0.1f;
        orig[j] = p[j] = g[j] + (float)((j % 7) - 3) * 0.01f;
    }
}

static void teardown(void)
{
    free(g);
    free(p);
    free(orig);
}

/* Applies text to p with the shared set of --private se; checks that the
 * private (SE) tensors are untouched and returns the first shared index. */
static size_t apply(const char *text)
{
    attack_spec a;
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(attack_parse(text, &a, err), 0);
    param_sel sel = params_shared(PARAM_SE);
    attack_apply(&a, &t, sel, g, p, 42);
    size_t first = t.total, changed = 0;
    for (int i = 0; i < t.n; i++) {
        const param_info *pi = &t.p[i];
        if (params_selected(pi, sel)) {
            if (first == t.total) first = pi->offset;
            continue;
        }
        for (size_t j = pi->offset; j < pi->offset + pi->size; j++) changed += p[j] != orig[j];
    }
    ck_assert_uint_eq(changed, 0);
    return first;
}

START_TEST(test_signflip_scale)
{
    size_t j = apply("signflip");
    ck_assert_float_eq_tol(p[j], g[j] - (orig[j] - g[j]), 1e-6f);
    for (size_t k = 0; k < t.total; k++) p[k] = orig[k];
    j = apply("scale:100");
    ck_assert_float_eq_tol(p[j], g[j] + 100 * (orig[j] - g[j]), 1e-4f);
}
END_TEST

START_TEST(test_gauss_nan_labelflip)
{
    size_t j = apply("gauss:0.5");
    /* The honest update is gone: the spread of p - g is the noise's. */
    double s = 0, s2 = 0;
    size_t n = 0;
    for (int i = 0; i < t.n; i++) {
        if (!params_selected(&t.p[i], params_shared(PARAM_SE))) continue;
        for (size_t k = t.p[i].offset; k < t.p[i].offset + t.p[i].size; k++, n++) {
            double d = (double)p[k] - g[k];
            s += d;
            s2 += d * d;
        }
    }
    ck_assert_double_eq_tol(sqrt(s2 / n - (s / n) * (s / n)), 0.5, 0.01);
    for (size_t k = 0; k < t.total; k++) p[k] = orig[k];
    j = apply("nan");
    ck_assert(isnan(p[j]));
    ck_assert(!isnan(p[j + 1]));
    for (size_t k = 0; k < t.total; k++) p[k] = orig[k];
    apply("labelflip");                 /* the update itself is left alone */
    size_t changed = 0;
    for (size_t k = 0; k < t.total; k++) changed += p[k] != orig[k];
    ck_assert_uint_eq(changed, 0);
    const uint8_t y[4] = { 0, 3, 9, 5 };
    uint8_t *f = attack_flip_labels(y, 4);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(f[0], 9);
    ck_assert_int_eq(f[1], 6);
    ck_assert_int_eq(f[2], 0);
    ck_assert_int_eq(f[3], 4);
    free(f);
}
END_TEST

START_TEST(test_parse_and_count)
{
    attack_spec a;
    char err[SEFL_ERRLEN];
    const char *bad[] = { "", "flip", "scale:", "scale:x", "scale:1e7", "gauss:0", "gauss:-1",
                          "nan:1", "signflip:2" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(attack_parse(bad[i], &a, err) == -EINVAL, "%s accepted", bad[i]);
    ck_assert_int_eq(attack_parse("scale:-3", &a, err), 0);
    ck_assert_int_eq(a.kind, ATTACK_SCALE);
    ck_assert_double_eq(a.s, -3);
    ck_assert_int_eq(attack_count(0.2, 10), 2);
    ck_assert_int_eq(attack_count(0.2, 20), 4);
    ck_assert_int_eq(attack_count(0.25, 10), 3);   /* ceil(2.5) */
    ck_assert_int_eq(attack_count(0, 10), 0);
    ck_assert_int_eq(attack_count(1, 7), 7);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("attack");
    TCase *tc = tcase_create("attack");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_signflip_scale);
    tcase_add_test(tc, test_gauss_nan_labelflip);
    tcase_add_test(tc, test_parse_and_count);
    suite_add_tcase(s, tc);
    return check_run(s);
}
