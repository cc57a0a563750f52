/* check_sample: the evaluation sample (--eval-clients). Keys depend on the
 * seed and the name only; the cut admits exactly the k smallest keys; k at
 * or past n admits everyone. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>

#include "server/sample.h"
#include "tests/check_main.h"

START_TEST(test_keys)
{
    ck_assert_uint_eq(sample_key(1, "client-0001"), sample_key(1, "client-0001"));
    ck_assert_uint_ne(sample_key(1, "client-0001"), sample_key(1, "client-0002"));
    ck_assert_uint_ne(sample_key(1, "client-0001"), sample_key(2, "client-0001"));
}
END_TEST

START_TEST(test_cut)
{
    enum { N = 1000 };
    uint64_t keys[N], copy[N];
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "client-%04d", i);
        keys[i] = copy[i] = sample_key(7, name);
    }
    const size_t ks[] = { 1, 5, 37, 999 };
    for (size_t j = 0; j < sizeof ks / sizeof *ks; j++) {
        for (int i = 0; i < N; i++) copy[i] = keys[i];
        const uint64_t cut = sample_cut(copy, N, ks[j]);
        size_t in = 0;
        for (int i = 0; i < N; i++) in += keys[i] <= cut;
        ck_assert_uint_eq(in, ks[j]);
    }
    ck_assert_uint_eq(sample_cut(copy, N, N), UINT64_MAX);
    ck_assert_uint_eq(sample_cut(copy, N, N + 5), UINT64_MAX);
    /* names that differ in one digit spread over the whole key range: the
     * 37 sampled of 1000 are not the first or last 37 names */
    for (int i = 0; i < N; i++) copy[i] = keys[i];
    const uint64_t cut = sample_cut(copy, N, 37);
    int first = 0;
    for (int i = 0; i < 37; i++) first += keys[i] <= cut;
    ck_assert_int_lt(first, 10);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sample");
    TCase *tc = tcase_create("sample");
    tcase_add_test(tc, test_keys);
    tcase_add_test(tc, test_cut);
    suite_add_tcase(s, tc);
    return check_run(s);
}
