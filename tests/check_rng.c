/* check_rng: the deterministic PRNG against published reference outputs,
 * and the distributions built on it (uniform integers, doubles, normals,
 * gammas, shuffles, derived seeds). All draws are seeded, so the statistical
 * bounds below are exact outcomes, not chances; they are set loosely enough
 * that a correct generator passes them for any seed, and a wrong one not. */
#include "common/rng.h"
#include "tests/check_main.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_reference_vectors)
{
    /* splitmix64 from 0: 0xe220a8397b1dcdaf is its published first output. */
    rng r;
    rng_seed(&r, 0);
    ck_assert_uint_eq(r.s[0], 0xe220a8397b1dcdafULL);
    /* xoshiro256** from the state {1, 2, 3, 4}: the reference
     * implementation's first outputs. */
    rng x = { { 1, 2, 3, 4 } };
    ck_assert_uint_eq(rng_next(&x), 11520);
    ck_assert_uint_eq(rng_next(&x), 0);
    ck_assert_uint_eq(rng_next(&x), 1509978240);
    ck_assert_uint_eq(rng_next(&x), 1215971899390074240ULL);
}
END_TEST

START_TEST(test_determinism)
{
    rng a, b, c;
    rng_seed(&a, 12345);
    rng_seed(&b, 12345);
    rng_seed(&c, 12346);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = rng_next(&a);
        ck_assert_uint_eq(x, rng_next(&b));
        differ += x != rng_next(&c);
    }
    ck_assert_int_eq(differ, 1000);
}
END_TEST

START_TEST(test_below_range)
{
    static const uint64_t ns[] = { 1, 2, 3, 7, 10, 1000, (1ULL << 63) + 1, UINT64_MAX };
    rng r;
    rng_seed(&r, 1);
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        uint64_t hi = 0;
        for (int i = 0; i < 20000; i++) {
            uint64_t v = rng_below(&r, ns[t]);
            ck_assert_uint_lt(v, ns[t]);
            if (v > hi) hi = v;
        }
        /* The top of the range is reached (for small n) or approached. */
        if (ns[t] <= 1000) ck_assert_uint_eq(hi, ns[t] - 1);
        else ck_assert_uint_gt(hi, ns[t] / 2);
    }
}
END_TEST

/* Pearson's chi-square of counts[k] against a uniform expectation. */
static double chi_square(const int *counts, int k, int draws)
{
    double e = (double)draws / k, x2 = 0;
    for (int i = 0; i < k; i++) x2 += (counts[i] - e) * (counts[i] - e) / e;
    return x2;
}

START_TEST(test_below_uniform)
{
    /* 9 and 6 degrees of freedom: P(chi2 > 40) and P(chi2 > 35) are under
     * 1e-5, while a modulo-biased or stuck generator lands far above. */
    rng r;
    rng_seed(&r, 99);
    int c10[10] = { 0 }, c7[7] = { 0 };
    for (int i = 0; i < 200000; i++) {
        c10[rng_below(&r, 10)]++;
        c7[rng_below(&r, 7)]++;
    }
    ck_assert_double_lt(chi_square(c10, 10, 200000), 40);
    ck_assert_double_lt(chi_square(c7, 7, 200000), 35);
    /* A range of 3 * 2^62 would be biased by a plain modulo: values below
     * 2^62 would be twice as likely. Rejection keeps each third at 1/3. */
    int thirds[3] = { 0 };
    uint64_t n = 3ULL << 62;
    for (int i = 0; i < 30000; i++) thirds[rng_below(&r, n) / (1ULL << 62)]++;
    ck_assert_double_lt(chi_square(thirds, 3, 30000), 25);
}
END_TEST

START_TEST(test_uniform_and_normal)
{
    rng r;
    rng_seed(&r, 5);
    double sum = 0, nsum = 0, nsq = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double u = rng_uniform(&r);
        ck_assert(u >= 0.0 && u < 1.0);
        sum += u;
        double z = rng_normal(&r);
        ck_assert(isfinite(z));
        nsum += z;
        nsq += z * z;
    }
    /* Standard errors: 0.29 / sqrt(n) = 6.5e-4 for the uniform mean,
     * 2.2e-3 for the normal mean, 3.2e-3 for its variance. */
    ck_assert_double_eq_tol(sum / n, 0.5, 0.004);
    ck_assert_double_eq_tol(nsum / n, 0.0, 0.012);
    ck_assert_double_eq_tol(nsq / n, 1.0, 0.02);
}
END_TEST

START_TEST(test_gamma_moments)
{
    /* Gamma(a, 1) has mean a and variance a. Both the small-shape boost
     * (a < 1) and Marsaglia-Tsang proper (a >= 1) are covered. */
    static const double shapes[] = { 0.05, 0.1, 0.5, 1.0, 2.5, 10.0 };
    rng r;
    rng_seed(&r, 2024);
    int n = 100000;
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        double a = shapes[t], sum = 0, sq = 0;
        for (int i = 0; i < n; i++) {
            double g = rng_gamma(&r, a);
            ck_assert(g >= 0 && isfinite(g));
            sum += g;
            sq += g * g;
        }
        double mean = sum / n, var = sq / n - mean * mean;
        /* Six standard errors of the mean, sqrt(a / n). */
        ck_assert_msg(fabs(mean - a) < 6 * sqrt(a / n), "shape %g: mean %g", a, mean);
        ck_assert_msg(fabs(var - a) < 0.1 * a, "shape %g: variance %g", a, var);
    }
}
END_TEST

START_TEST(test_shuffle)
{
    rng r;
    rng_seed(&r, 3);
    int a[50], seen[50] = { 0 }, first_pos[5] = { 0 };
    for (int i = 0; i < 50; i++) a[i] = i;
    rng_shuffle_int(&r, a, 50);
    for (int i = 0; i < 50; i++) seen[a[i]]++;
    for (int i = 0; i < 50; i++) ck_assert_int_eq(seen[i], 1);
    int moved = 0;
    for (int i = 0; i < 50; i++) moved += a[i] != i;
    ck_assert_int_gt(moved, 40);
    /* Every element lands first equally often (5 elements, 50000 shuffles). */
    for (int t = 0; t < 50000; t++) {
        int b[5] = { 0, 1, 2, 3, 4 };
        rng_shuffle_int(&r, b, 5);
        first_pos[b[0]]++;
    }
    ck_assert_double_lt(chi_square(first_pos, 5, 50000), 30);
    rng_shuffle_int(&r, a, 0);
    rng_shuffle_int(&r, a, 1);
}
END_TEST

START_TEST(test_derive)
{
    ck_assert_uint_eq(rng_derive(7, 3), rng_derive(7, 3));
    ck_assert_uint_ne(rng_derive(7, 3), rng_derive(7, 4));
    ck_assert_uint_ne(rng_derive(7, 3), rng_derive(8, 3));
    ck_assert_uint_ne(rng_derive(0, 0), 0);
    /* Neighbouring streams give unrelated seeds: about half the bits differ. */
    int bits = 0;
    for (uint64_t s = 0; s < 1000; s++) bits += __builtin_popcountll(rng_derive(1, s) ^ rng_derive(1, s + 1));
    ck_assert_int_gt(bits, 1000 * 28);
    ck_assert_int_lt(bits, 1000 * 36);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("rng");
    tcase_add_test(tc, test_reference_vectors);
    tcase_add_test(tc, test_determinism);
    tcase_add_test(tc, test_below_range);
    tcase_add_test(tc, test_below_uniform);
    tcase_add_test(tc, test_uniform_and_normal);
    tcase_add_test(tc, test_gamma_moments);
    tcase_add_test(tc, test_shuffle);
    tcase_add_test(tc, test_derive);
    suite_add_tcase(s, tc);
    return check_run(s);
}
