/* check_rdp: the RDP accountant of the sampled Gaussian mechanism against
 * values published in TensorFlow Privacy's tests
 * (github.com/tensorflow/privacy, tensorflow_privacy/privacy/analysis/):
 *   rdp_accountant_test.py: test_compute_rdp_no_data, _no_sampling,
 *     _scalar (compute_rdp(0.1, 2, 10, 5) = 0.07737), _sequence
 *     (compute_rdp(0.01, 2.5, 50, [.., 5, 50, 100, ..]) = [.., 2.1808e-03,
 *     2.3846e-02, 1.6742e+02, ..]) and test_get_privacy_spent_check_target_delta
 *     (constant RDP 1.1 at orders 2..32, delta 1e-5: eps 1.32783806176 at
 *     order 32);
 *   compute_dp_sgd_privacy_test.py: Test0 (n 60000, batch 150, noise 1.3,
 *     15 epochs, delta 1e-5: eps 0.7242234026109595 at order 19).
 * Only the values at integer orders are used: sefl's accountant has no
 * fractional orders. */
#include <check.h>
#include <math.h>

#include "server/rdp.h"
#include "tests/check_main.h"

START_TEST(test_compute_rdp_published)
{
    ck_assert_double_eq(rdp_sgm(0, 10, 20), 0);
    ck_assert_double_eq_tol(rdp_sgm(1, 10, 20), 0.1, 1e-15);
    ck_assert_double_eq_tol(10 * rdp_sgm(0.1, 2, 5), 0.07737, 5e-6);
    const int orders[3] = { 5, 50, 100 };
    const double want[3] = { 2.1808e-03, 2.3846e-02, 1.6742e+02 };
    for (int i = 0; i < 3; i++) {
        double got = 50 * rdp_sgm(0.01, 2.5, orders[i]);
        ck_assert_msg(fabs(got - want[i]) <= 1e-4 * want[i], "order %d: %g, want %g", orders[i],
                      got, want[i]);
    }
    ck_assert(isinf(rdp_sgm(0.5, 0, 3)));
}
END_TEST

START_TEST(test_epsilon_published)
{
    double rdp[31];
    for (int i = 0; i < 31; i++) rdp[i] = 1.1;      /* orders 2..32 */
    int order;
    ck_assert_double_eq_tol(rdp_epsilon_of(rdp, 31, 1e-5, &order), 1.32783806176, 1e-9);
    ck_assert_int_eq(order, 32);
    /* DP-SGD on MNIST-sized data: q = 150/60000, 15 epochs = 6000 steps. */
    rdp_acct a;
    rdp_init(&a);
    ck_assert_double_eq(rdp_epsilon(&a, 1e-5, NULL), 0);
    rdp_compose(&a, 150.0 / 60000, 1.3, 6000);
    ck_assert_double_eq_tol(rdp_epsilon(&a, 1e-5, &order), 0.7242234026109595, 1e-9);
    ck_assert_int_eq(order, 19);
}
END_TEST

/* Composition adds: two rounds at once equal two rounds one by one, and
 * more rounds, less noise or a higher rate spend more. */
START_TEST(test_composition_monotone)
{
    rdp_acct a, b;
    rdp_init(&a);
    rdp_init(&b);
    rdp_compose(&a, 0.5, 1.0, 2);
    rdp_compose(&b, 0.5, 1.0, 1);
    double e1 = rdp_epsilon(&b, 1e-5, NULL);
    rdp_compose(&b, 0.5, 1.0, 1);
    for (int i = 0; i < RDP_N_ORDERS; i++) ck_assert_double_eq_tol(a.rdp[i], b.rdp[i], 1e-12);
    double e2 = rdp_epsilon(&b, 1e-5, NULL);
    ck_assert(e2 > e1);
    rdp_init(&a);
    rdp_compose(&a, 0.5, 2.0, 2);
    ck_assert(rdp_epsilon(&a, 1e-5, NULL) < e2);
    rdp_init(&a);
    rdp_compose(&a, 1.0, 1.0, 2);
    ck_assert(rdp_epsilon(&a, 1e-5, NULL) > e2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rdp");
    TCase *tc = tcase_create("rdp");
    tcase_add_test(tc, test_compute_rdp_published);
    tcase_add_test(tc, test_epsilon_published);
    tcase_add_test(tc, test_composition_monotone);
    suite_add_tcase(s, tc);
    return check_run(s);
}
