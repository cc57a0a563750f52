/* check_optim: sgd_step against hand-computed updates (plain, momentum,
 * weight decay, proximal term, all together) over several steps. */
#include <check.h>
#include <math.h>

#include "common/nn/optim.h"
#include "tests/check_main.h"

#define EPS 1e-6f

START_TEST(test_plain)
{
    float w[3] = { 1.0f, -2.0f, 0.5f };
    const float g[3] = { 0.5f, -1.0f, 4.0f };
    const sgd_config c = { .lr = 0.1f };
    sgd_step(w, g, NULL, NULL, 3, &c);
    ck_assert_float_eq_tol(w[0], 0.95f, EPS);
    ck_assert_float_eq_tol(w[1], -1.9f, EPS);
    ck_assert_float_eq_tol(w[2], 0.1f, EPS);
}
END_TEST

START_TEST(test_momentum)
{
    /* PyTorch's convention: v = m v + g, w -= lr v (no dampening). */
    float w[2] = { 1.0f, 2.0f }, v[2] = { 0.0f, 0.0f };
    const float g[2] = { 1.0f, -2.0f };
    const sgd_config c = { .lr = 0.5f, .momentum = 0.9f };
    sgd_step(w, g, v, NULL, 2, &c);
    ck_assert_float_eq_tol(v[0], 1.0f, EPS);
    ck_assert_float_eq_tol(w[0], 0.5f, EPS);
    ck_assert_float_eq_tol(w[1], 3.0f, EPS);
    sgd_step(w, g, v, NULL, 2, &c);
    ck_assert_float_eq_tol(v[0], 1.9f, EPS);
    ck_assert_float_eq_tol(v[1], -3.8f, EPS);
    ck_assert_float_eq_tol(w[0], 0.5f - 0.95f, EPS);
    ck_assert_float_eq_tol(w[1], 3.0f + 1.9f, EPS);
}
END_TEST

START_TEST(test_weight_decay)
{
    float w[1] = { 2.0f };
    const float g[1] = { 1.0f };
    const sgd_config c = { .lr = 0.1f, .weight_decay = 0.5f };
    sgd_step(w, g, NULL, NULL, 1, &c);
    /* g' = 1 + 0.5 * 2 = 2 */
    ck_assert_float_eq_tol(w[0], 1.8f, EPS);
}
END_TEST

START_TEST(test_prox)
{
    float w[2] = { 3.0f, -1.0f };
    const float g[2] = { 0.0f, 1.0f }, ref[2] = { 1.0f, 1.0f };
    const sgd_config c = { .lr = 0.25f, .prox_mu = 2.0f };
    sgd_step(w, g, NULL, ref, 2, &c);
    /* g' = g + 2 (w - ref): 4 and 1 - 4 = -3 */
    ck_assert_float_eq_tol(w[0], 2.0f, EPS);
    ck_assert_float_eq_tol(w[1], -0.25f, EPS);
    /* without a reference the proximal term is off */
    float w2[1] = { 3.0f };
    const float g2[1] = { 0.0f };
    sgd_step(w2, g2, NULL, NULL, 1, &c);
    ck_assert_float_eq_tol(w2[0], 3.0f, EPS);
}
END_TEST

START_TEST(test_all_terms)
{
    float w[1] = { 1.0f }, v[1] = { 0.5f };
    const float g[1] = { 0.2f }, ref[1] = { 0.0f };
    const sgd_config c = { .lr = 0.1f, .momentum = 0.5f, .weight_decay = 0.1f, .prox_mu = 0.3f };
    sgd_step(w, g, v, ref, 1, &c);
    /* g' = 0.2 + 0.1 + 0.3 = 0.6; v = 0.25 + 0.6 = 0.85; w = 1 - 0.085 */
    ck_assert_float_eq_tol(v[0], 0.85f, EPS);
    ck_assert_float_eq_tol(w[0], 0.915f, EPS);
    sgd_step(w, g, v, ref, 1, &c);
    /* g' = 0.2 + 0.0915 + 0.2745 = 0.566; v = 0.425 + 0.566 = 0.991 */
    ck_assert_float_eq_tol(v[0], 0.991f, EPS);
    ck_assert_float_eq_tol(w[0], 0.915f - 0.0991f, EPS);
}
END_TEST

START_TEST(test_all_terms_vector)
{
    /* The same step on nine equal elements: the vector path (two groups of
     * four) and the scalar tail must give the hand-computed value. */
    float w[9], v[9], g[9], ref[9];
    for (int i = 0; i < 9; i++) {
        w[i] = 1.0f;
        v[i] = 0.5f;
        g[i] = 0.2f;
        ref[i] = 0.0f;
    }
    const sgd_config c = { .lr = 0.1f, .momentum = 0.5f, .weight_decay = 0.1f, .prox_mu = 0.3f };
    sgd_step(w, g, v, ref, 9, &c);
    for (int i = 0; i < 9; i++) {
        ck_assert_float_eq_tol(v[i], 0.85f, EPS);
        ck_assert_float_eq_tol(w[i], 0.915f, EPS);
    }
}
END_TEST

START_TEST(test_long_vector)
{
    /* Lengths that are not a multiple of any vector width, every element. */
    enum { N = 1037 };
    static float w[N], v[N], g[N];
    for (int i = 0; i < N; i++) {
        w[i] = (float)i;
        g[i] = (float)(i % 7) - 3.0f;
        v[i] = 1.0f;
    }
    const sgd_config c = { .lr = 0.5f, .momentum = 0.5f };
    sgd_step(w, g, v, NULL, N, &c);
    for (int i = 0; i < N; i++) {
        float vi = 0.5f + ((float)(i % 7) - 3.0f);
        ck_assert_float_eq_tol(v[i], vi, EPS);
        ck_assert_float_eq_tol(w[i], (float)i - 0.5f * vi, 1e-4f);
    }
    const sgd_config p = { .lr = 1.0f };
    sgd_step(w, g, NULL, NULL, N, &p);
    for (int i = 0; i < N; i++)
        ck_assert_float_eq_tol(w[i], (float)i - 0.5f * (0.5f + g[i]) - g[i], 1e-4f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("optim");
    tcase_add_test(tc, test_plain);
    tcase_add_test(tc, test_momentum);
    tcase_add_test(tc, test_weight_decay);
    tcase_add_test(tc, test_prox);
    tcase_add_test(tc, test_all_terms);
    tcase_add_test(tc, test_all_terms_vector);
    tcase_add_test(tc, test_long_vector);
    suite_add_tcase(s, tc);
    return check_run(s);
}
