/* check_gemm: gemm against a direct double-precision product, on both
 * backends (OpenBLAS and, where the CPU has AVX-512, sefl's own kernel) and
 * on "auto", which times both at each new shape and keeps the faster.
 *
 * Each element is compared with the reference within the worst-case
 * rounding bound of a float sum of K products, 2 K eps sum|alpha a b| plus
 * the rounding of beta c: a wrong index, a dropped or doubled term, or a
 * tile edge handled wrongly is off by the size of a whole product, far
 * beyond it. Every C has padding between its rows holding a guard value
 * that must survive, so a write outside (M, N) fails too.
 */
#include <check.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/check_main.h"
#include "common/nn/gemm.h"
#include "common/rng.h"

#define GUARD 12345.0f

static const char *const backends[] = { "openblas", "avx512", "auto" };

/* Selects backend i for this test process (each Check test runs in its own
 * process); returns 0 when the CPU cannot run it, so the test does nothing. */
static int use_backend(int i)
{
    const int err = gemm_set_backend(backends[i]);
    if (err == -ENOTSUP) {
        printf("check_gemm: %s is not available on this CPU; its tests do nothing\n", backends[i]);
        return 0;
    }
    ck_assert_int_eq(err, 0);
    ck_assert_str_eq(gemm_backend(), backends[i]);
    return 1;
}

static float *rnd(rng *r, long n)
{
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (long i = 0; i < n; i++) p[i] = (float)(2.0 * rng_uniform(r) - 1.0);
    return p;
}

/* op(X)[i][k] of X with row stride ld. */
static float at(const float *x, int ld, gemm_op op, int i, int k)
{
    return op == GEMM_N ? x[(long)i * ld + k] : x[(long)k * ld + i];
}

/* Runs one gemm of the given shape on random data with padded leading
 * dimensions and checks every element of C and every guard. beta == 0
 * starts C as NaN, which must not reach the result. Returns the number of
 * bad elements (and prints the first). */
static int check_one(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, float beta,
                     int pad, uint64_t seed)
{
    rng r;
    rng_seed(&r, seed);
    const int lda = (ta == GEMM_N ? K : M) + pad, ldb = (tb == GEMM_N ? N : K) + pad;
    const int ldc = N + pad;
    float *A = rnd(&r, (long)(ta == GEMM_N ? M : K) * lda);
    float *B = rnd(&r, (long)(tb == GEMM_N ? K : N) * ldb);
    float *C0 = rnd(&r, (long)M * ldc);
    float *C = malloc((size_t)M * ldc * sizeof *C);
    ck_assert_ptr_nonnull(C);
    for (long e = 0; e < (long)M * ldc; e++) {
        if (e % ldc >= N) C0[e] = GUARD;
        else if (beta == 0.0f) C0[e] = NAN;
        C[e] = C0[e];
    }
    gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    int bad = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < ldc; j++) {
            const long e = (long)i * ldc + j;
            if (j >= N) {
                if (C[e] != GUARD && !bad++)
                    printf("gemm %c%c %dx%dx%d: guard at (%d, %d) overwritten\n", "NT"[ta],
                           "NT"[tb], M, N, K, i, j);
                continue;
            }
            double ref = 0.0, mag = 0.0;
            for (int k = 0; k < K; k++) {
                const double p = (double)alpha * at(A, lda, ta, i, k) * at(B, ldb, tb, k, j);
                ref += p;
                mag += fabs(p);
            }
            if (beta != 0.0f) {
                ref += (double)beta * C0[e];
                mag += fabs((double)beta * C0[e]);
            }
            const double tol = 2.0 * (K + 2) * FLT_EPSILON * mag + 1e-30;
            if (!(fabs(C[e] - ref) <= tol) && !bad++)
                printf("gemm %c%c %dx%dx%d alpha %g beta %g: C[%d][%d] = %.9g, want %.9g (tol %.3g)\n",
                       "NT"[ta], "NT"[tb], M, N, K, alpha, beta, i, j, C[e], ref, tol);
        }
    free(A);
    free(B);
    free(C0);
    free(C);
    return bad;
}

/* Every op combination over sizes around the kernel's tile edges (8 rows,
 * 16 and 32 columns), K = 0 included, with alpha and beta varied. */
START_TEST(test_small_shapes)
{
    if (!use_backend(_i)) return;
    static const int Ms[] = { 1, 2, 7, 8, 9, 17 }, Ns[] = { 1, 15, 16, 17, 31, 32, 33, 65 };
    static const int Ks[] = { 0, 1, 5, 64 };
    static const float ab[][2] = { { 1.0f, 0.0f }, { 1.0f, 1.0f }, { 0.5f, -0.25f } };
    int bad = 0, runs = 0;
    uint64_t seed = 1;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (size_t m = 0; m < sizeof Ms / sizeof *Ms; m++)
                for (size_t n = 0; n < sizeof Ns / sizeof *Ns; n++)
                    for (size_t k = 0; k < sizeof Ks / sizeof *Ks; k++)
                        for (size_t v = 0; v < sizeof ab / sizeof *ab; v++, runs++, seed++)
                            bad += check_one(ta, tb, Ms[m], Ns[n], Ks[k], ab[v][0], ab[v][1],
                                             (int)(seed % 4), seed) != 0;
    ck_assert_int_eq(runs, 2 * 2 * 6 * 8 * 4 * 3);
    ck_assert_int_eq(bad, 0);
}
END_TEST

/* The shapes the model runs (conv2 at batch 10 and 32, conv1 and fc1 at
 * batch 10), which take the kernel's other paths: a wide second operand
 * read a panel at a time, panels copied when rows lie 4 KB apart, the
 * smaller operand transposed for A B^T. */
START_TEST(test_model_shapes)
{
    if (!use_backend(_i)) return;
    static const struct { gemm_op ta, tb; int M, N, K; float beta; } s[] = {
        { GEMM_N, GEMM_N, 64, 640, 800, 1.0f },    /* conv2 forward, b10 */
        { GEMM_N, GEMM_T, 64, 800, 640, 0.0f },    /* conv2 dw */
        { GEMM_T, GEMM_N, 800, 640, 64, 0.0f },    /* conv2 dcol */
        { GEMM_N, GEMM_N, 64, 2048, 800, 1.0f },   /* conv2 forward, b32: rows 8 KB apart */
        { GEMM_T, GEMM_N, 800, 2048, 64, 0.0f },   /* conv2 dcol, b32 */
        { GEMM_N, GEMM_N, 32, 5760, 25, 1.0f },    /* conv1 forward */
        { GEMM_N, GEMM_T, 32, 25, 5760, 1.0f },    /* conv1 dw, accumulated */
        { GEMM_N, GEMM_T, 10, 512, 1024, 1.0f },   /* fc1 forward */
        { GEMM_T, GEMM_N, 512, 1024, 10, 0.0f },   /* fc1 dw */
        { GEMM_N, GEMM_N, 10, 1024, 512, 0.0f },   /* fc1 dx */
        { GEMM_T, GEMM_T, 40, 300, 90, 0.5f },     /* A^T B^T, not used by the model */
    };
    for (size_t i = 0; i < sizeof s / sizeof *s; i++)
        ck_assert_int_eq(check_one(s[i].ta, s[i].tb, s[i].M, s[i].N, s[i].K, 1.0f, s[i].beta, 0,
                                   100 + i),
                         0);
}
END_TEST

/* The same call gives the same bytes: training is reproducible run to run
 * and thread to thread only if the multiply is. */
START_TEST(test_deterministic)
{
    if (!use_backend(_i)) return;
    rng r;
    rng_seed(&r, 7);
    const int M = 64, N = 800, K = 640;
    float *A = rnd(&r, (long)M * K), *B = rnd(&r, (long)N * K);
    float *C1 = rnd(&r, (long)M * N), *C2 = rnd(&r, (long)M * N);
    gemm(GEMM_N, GEMM_T, M, N, K, 1.0f, A, K, B, K, 0.0f, C1, N);
    gemm(GEMM_N, GEMM_T, M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N);
    ck_assert_int_eq(memcmp(C1, C2, (size_t)M * N * sizeof *C1), 0);
    free(A);
    free(B);
    free(C1);
    free(C2);
}
END_TEST

START_TEST(test_backend_names)
{
    ck_assert_int_eq(gemm_set_backend("cublas"), -EINVAL);
    ck_assert_int_eq(gemm_set_backend(""), -EINVAL);
    ck_assert_int_eq(gemm_set_backend("openblas"), 0);
    ck_assert_str_eq(gemm_backend(), "openblas");
    ck_assert_str_eq(gemm_choice(GEMM_N, GEMM_N, 3, 4, 5, 5, 4), "openblas");
    const int err = gemm_set_backend("avx512");
    ck_assert(err == 0 || err == -ENOTSUP);
    ck_assert_str_eq(gemm_backend(), err ? "openblas" : "avx512");
    if (!err) {
        ck_assert_int_eq(gemm_set_backend("sefl"), 0);
        ck_assert_str_eq(gemm_backend(), "avx512");
        ck_assert_int_eq(gemm_set_backend("auto"), 0);
        ck_assert_str_eq(gemm_backend(), "auto");
    }
}
END_TEST

static void *auto_thread(void *arg)
{
    *(int *)arg = check_one(GEMM_N, GEMM_T, 24, 300, 200, 1.0f, 0.0f, 0, 77);
    return NULL;
}

/* "auto": a shape has no choice until its first product, then one of the
 * two for good, the same whichever thread asks; four threads meeting a new
 * shape at once all get the right product and one choice is made. Each
 * shape is its own entry (another leading dimension is another shape). */
START_TEST(test_auto_choice)
{
    if (gemm_set_backend("auto") == -ENOTSUP) return;
    ck_assert_ptr_null(gemm_choice(GEMM_N, GEMM_N, 48, 200, 100, 100, 200));
    ck_assert_int_eq(check_one(GEMM_N, GEMM_N, 48, 200, 100, 1.0f, 1.0f, 0, 5), 0);
    const char *c = gemm_choice(GEMM_N, GEMM_N, 48, 200, 100, 100, 200);
    ck_assert_ptr_nonnull(c);
    ck_assert(!strcmp(c, "avx512") || !strcmp(c, "openblas"));
    ck_assert_int_eq(check_one(GEMM_N, GEMM_N, 48, 200, 100, 0.5f, 0.0f, 0, 6), 0);
    ck_assert_str_eq(gemm_choice(GEMM_N, GEMM_N, 48, 200, 100, 100, 200), c);
    ck_assert_ptr_null(gemm_choice(GEMM_N, GEMM_N, 48, 200, 100, 101, 200));
    ck_assert_ptr_null(gemm_choice(GEMM_T, GEMM_N, 48, 200, 100, 100, 200));
    pthread_t th[4];
    int bad[4];
    for (int i = 0; i < 4; i++) ck_assert_int_eq(pthread_create(&th[i], NULL, auto_thread, &bad[i]), 0);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(bad[i], 0);
    }
    ck_assert_ptr_nonnull(gemm_choice(GEMM_N, GEMM_T, 24, 300, 200, 200, 200));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("gemm");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_small_shapes, 0, 3);
    tcase_add_loop_test(tc, test_model_shapes, 0, 3);
    tcase_add_loop_test(tc, test_deterministic, 0, 3);
    tcase_add_test(tc, test_backend_names);
    tcase_add_test(tc, test_auto_choice);
    suite_add_tcase(s, tc);
    return check_run(s);
}
