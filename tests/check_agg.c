/* check_agg: FedAvg's running weighted sum: means, weights and limits, and
 * rejected updates leaving the sum untouched. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "server/agg.h"
#include "tests/check_main.h"

START_TEST(test_weighted_mean)
{
    agg a;
    ck_assert_int_eq(agg_init(&a, 3), 0);
    const float u[3] = { 1, 2, 3 }, v[3] = { 5, -2, 0 };
    float out[3] = { 7, 7, 7 };
    ck_assert_int_eq(agg_mean(&a, out), -ENODATA);
    ck_assert_float_eq(out[0], 7);
    ck_assert_int_eq(agg_add(&a, u, 100, 1.0f, 0.5f), 0);
    ck_assert_int_eq(agg_add(&a, v, 300, 2.0f, 0.9f), 0);
    ck_assert_int_eq(agg_mean(&a, out), 0);
    ck_assert_float_eq_tol(out[0], (100 * 1 + 300 * 5) / 400.0f, 1e-6f);
    ck_assert_float_eq_tol(out[1], (100 * 2 - 300 * 2) / 400.0f, 1e-6f);
    ck_assert_float_eq_tol(out[2], 0.75f, 1e-6f);
    ck_assert_int_eq(a.count, 2);
    ck_assert_double_eq_tol(a.loss / a.weight, 1.75, 1e-9);
    ck_assert_double_eq_tol(a.accuracy / a.weight, 0.8, 1e-6);

    agg_reset(&a);
    ck_assert_int_eq(a.count, 0);
    ck_assert_int_eq(agg_mean(&a, out), -ENODATA);
    ck_assert_int_eq(agg_add(&a, v, 1, 0, 0), 0);
    ck_assert_int_eq(agg_mean(&a, out), 0);
    ck_assert_float_eq(out[0], 5);
    agg_free(&a);
    agg_free(&a);
}
END_TEST

/* The mean of identical updates is that update exactly, whatever the
 * weights: the sum is in double, so nothing drifts. */
START_TEST(test_identical_updates_exact)
{
    enum { N = 1000 };
    static float v[N], out[N];
    for (int i = 0; i < N; i++) v[i] = sinf((float)i) * 3.3f;
    agg a;
    ck_assert_int_eq(agg_init(&a, N), 0);
    for (uint32_t w = 1; w <= 50; w++) ck_assert_int_eq(agg_add(&a, v, w * 977, 0, 0), 0);
    ck_assert_int_eq(agg_mean(&a, out), 0);
    for (int i = 0; i < N; i++) ck_assert_float_eq(out[i], v[i]);
    agg_free(&a);
}
END_TEST

START_TEST(test_rejects_leave_sum_unchanged)
{
    agg a;
    ck_assert_int_eq(agg_init(&a, 4), 0);
    const float good[4] = { 1, 1, 1, 1 };
    float bad[4] = { 9, 9, 9, NAN };
    ck_assert_int_eq(agg_add(&a, good, 10, 0.1f, 0.2f), 0);
    ck_assert_int_eq(agg_add(&a, bad, 10, 0, 0), -EDOM);
    bad[3] = INFINITY;
    ck_assert_int_eq(agg_add(&a, bad, 10, 0, 0), -EDOM);
    bad[3] = 9;
    ck_assert_int_eq(agg_add(&a, bad, 10, NAN, 0), -EDOM);
    ck_assert_int_eq(agg_add(&a, bad, 10, 0, -INFINITY), -EDOM);
    /* weight limits: 0 and one past AGG_MAX_WEIGHT refused */
    ck_assert_int_eq(agg_add(&a, bad, 0, 0, 0), -EINVAL);
    ck_assert_int_eq(agg_add(&a, bad, AGG_MAX_WEIGHT + 1, 0, 0), -EINVAL);
    ck_assert_int_eq(a.count, 1);
    float out[4];
    ck_assert_int_eq(agg_mean(&a, out), 0);
    for (int i = 0; i < 4; i++) ck_assert_float_eq(out[i], 1);
    ck_assert_int_eq(agg_add(&a, bad, AGG_MAX_WEIGHT, 0, 0), 0);
    ck_assert_int_eq(agg_mean(&a, out), 0);
    ck_assert_float_eq_tol(out[0], (10.0 + 9.0 * AGG_MAX_WEIGHT) / (10 + AGG_MAX_WEIGHT), 1e-5);
    agg_free(&a);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("agg");
    TCase *tc = tcase_create("agg");
    tcase_add_test(tc, test_weighted_mean);
    tcase_add_test(tc, test_identical_updates_exact);
    tcase_add_test(tc, test_rejects_leave_sum_unchanged);
    suite_add_tcase(s, tc);
    return check_run(s);
}
