/* gemm: C = alpha * op(A) op(B) + beta * C, by sefl's AVX-512 kernel or by
 * OpenBLAS; see gemm.h for the contract and why there are two.
 *
 * The own kernel. Every product is reduced to one form,
 *
 *   P (m, n) = X (m, K) Y (K, n),   X read with any row/column strides,
 *                                   Y read row by row (n contiguous floats),
 *
 * stored into C either as is or transposed. A tile of 8 rows by 32 columns
 * of P lives in 16 registers for the whole sum over k: each k loads 32
 * floats of Y (two vectors), broadcasts 8 floats of X and does 16 fused
 * multiply-adds. Nothing is packed: X's 8 rows are read in place (each a
 * stream the caches follow) and Y's rows are contiguous already. Only
 * A (M, K) B^T, where neither operand has contiguous rows of the output's
 * width, needs a copy: the smaller operand is transposed into a buffer, and
 * if that was A the product is computed as C^T = B A^T.
 *
 * Tiles are visited so that the larger operand is streamed from memory once
 * and the smaller one is re-read from cache.
 */
#include "common/nn/gemm.h"

#include <cblas.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BACKEND_OPENBLAS, BACKEND_AVX512, BACKEND_AUTO };

static int backend = BACKEND_OPENBLAS;
static pthread_once_t backend_once = PTHREAD_ONCE_INIT;

static void gemm_openblas(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha,
                          const float *A, int lda, const float *B, int ldb, float beta,
                          float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta == GEMM_T ? CblasTrans : CblasNoTrans,
                tb == GEMM_T ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta,
                C, ldc);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <immintrin.h>

#define GEMM_MR 8  /* rows of a register tile */
#define GEMM_NR 32 /* columns of a register tile: two vectors of 16 */
#define AVX512 __attribute__((target("avx512f")))

static int avx512_usable(void)
{
    return __builtin_cpu_supports("avx512f");
}

/* One tile: P (mr, n) = X (mr, K) Y (K, n) with mr <= 8, n <= 32, then
 * c[r * crs + j * ccs] = alpha * P[r][j] + beta * (that element).
 * x[r * xrs + k * xks] is X[r][k]; y + k * ldy is row k of Y. mr is a
 * constant at each call site, so the loops over rows unroll and the 16
 * accumulators stay in registers. The unroll pragmas are needed: without
 * them GCC 12 keeps the accumulators in memory and the kernel runs at well
 * under half its speed. */
static inline __attribute__((always_inline)) AVX512 void
gemm_tile(const int mr, long K, const float *x, long xrs, long xks, const float *y, long ldy,
          int n, float alpha, float beta, float *c, long crs, long ccs)
{
    const __mmask16 m0 = n >= 16 ? 0xFFFF : (__mmask16)((1u << n) - 1);
    const __mmask16 m1 = n >= 32 ? 0xFFFF : n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1);
    __m512 p0[GEMM_MR], p1[GEMM_MR];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) p0[r] = p1[r] = _mm512_setzero_ps();
    for (long k = 0; k < K; k++, x += xks, y += ldy) {
        const __m512 y0 = _mm512_maskz_loadu_ps(m0, y);
        const __m512 y1 = _mm512_maskz_loadu_ps(m1, y + 16);
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            const __m512 xr = _mm512_set1_ps(x[r * xrs]);
            p0[r] = _mm512_fmadd_ps(xr, y0, p0[r]);
            p1[r] = _mm512_fmadd_ps(xr, y1, p1[r]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    if (ccs == 1) {
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            float *cr = c + r * crs;
            __m512 v0 = _mm512_mul_ps(va, p0[r]), v1 = _mm512_mul_ps(va, p1[r]);
            if (beta != 0.0f) {
                v0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, cr), v0);
                v1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, cr + 16), v1);
            }
            _mm512_mask_storeu_ps(cr, m0, v0);
            _mm512_mask_storeu_ps(cr + 16, m1, v1);
        }
        return;
    }
    /* Transposed store: through a small buffer, element by element. Only
     * products with a long sum over k take this path, so its cost is small
     * beside the tile's multiply-adds. */
    float t[GEMM_MR][GEMM_NR];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
        _mm512_storeu_ps(t[r], p0[r]);
        _mm512_storeu_ps(t[r] + 16, p1[r]);
    }
    for (int j = 0; j < n; j++)
        for (int r = 0; r < mr; r++) {
            float *e = c + r * crs + j * ccs;
            *e = beta != 0.0f ? alpha * t[r][j] + beta * *e : alpha * t[r][j];
        }
}

/* gemm_tile with mr as a constant: one unrolled copy per row count. */
static AVX512 void gemm_tile_rows(int mr, long K, const float *x, long xrs, long xks,
                                  const float *y, long ldy, int n, float alpha, float beta,
                                  float *c, long crs, long ccs)
{
    switch (mr) {
#define GEMM_CASE(R) \
    case R: gemm_tile(R, K, x, xrs, xks, y, ldy, n, alpha, beta, c, crs, ccs); break;
        GEMM_CASE(8) GEMM_CASE(7) GEMM_CASE(6) GEMM_CASE(5)
        GEMM_CASE(4) GEMM_CASE(3) GEMM_CASE(2) GEMM_CASE(1)
#undef GEMM_CASE
    }
}

/* Y larger than this many floats (512 KB) does not stay in L2 between tiles. */
#define GEMM_Y_CACHED (128L * 1024)

/* P (m, n) = X (m, K) Y (K, n) into C as gemm_tile describes, tile by tile.
 * Returns 0, or -ENOMEM (nothing written).
 *
 * When Y fits in L2, tiles go along rows of C: an (8, K) slice of X stays in
 * L1 while the sweep over Y's columns reads Y from L2, and C is written row
 * after row. A larger Y is read once instead, a (K, 32) panel at a time,
 * each panel reused by every 8-row slice of X. If Y's rows lie a multiple of
 * 4 KB apart, a panel read in place falls into a few cache sets only and
 * does not stay in L2 from one slice to the next; then, when enough slices
 * reuse it to repay the copy, the panel is first copied to contiguous
 * memory. */
static AVX512 int gemm_run(int m, int n, long K, float alpha, const float *x, long xrs,
                           long xks, const float *y, long ldy, float beta, float *c, long crs,
                           long ccs)
{
    if (K * n <= GEMM_Y_CACHED || K * n <= K * m) {
        for (int i = 0; i < m; i += GEMM_MR)
            for (int j = 0; j < n; j += GEMM_NR)
                gemm_tile_rows(m - i < GEMM_MR ? m - i : GEMM_MR, K, x + i * xrs, xrs, xks,
                               y + j, ldy, n - j < GEMM_NR ? n - j : GEMM_NR, alpha, beta,
                               c + i * crs + j * ccs, crs, ccs);
        return 0;
    }
    float *panel = NULL; /* (K, 32) */
    if (ldy % 1024 == 0 && m >= 4 * GEMM_MR) {
        panel = malloc((size_t)K * GEMM_NR * sizeof *panel);
        if (!panel) return -ENOMEM;
    }
    for (int j = 0; j < n; j += GEMM_NR) {
        const int nj = n - j < GEMM_NR ? n - j : GEMM_NR;
        const float *yj = y + j;
        long ldp = ldy;
        if (panel) {
            for (long k = 0; k < K; k++)
                memcpy(panel + k * GEMM_NR, y + k * ldy + j, (size_t)nj * sizeof *panel);
            yj = panel;
            ldp = GEMM_NR;
        }
        for (int i = 0; i < m; i += GEMM_MR)
            gemm_tile_rows(m - i < GEMM_MR ? m - i : GEMM_MR, K, x + i * xrs, xrs, xks, yj, ldp,
                           nj, alpha, beta, c + i * crs + j * ccs, crs, ccs);
    }
    free(panel);
    return 0;
}

/* t (K, R) = s^T for s (R, K) with row stride lds, in 8 x 8 blocks so both
 * sides are touched a cache line at a time. */
static void transpose(const float *s, long lds, int R, int K, float *t)
{
    for (int r0 = 0; r0 < R; r0 += 8)
        for (int k0 = 0; k0 < K; k0 += 8) {
            const int r1 = r0 + 8 < R ? r0 + 8 : R, k1 = k0 + 8 < K ? k0 + 8 : K;
            for (int r = r0; r < r1; r++)
                for (int k = k0; k < k1; k++) t[(long)k * R + r] = s[r * lds + k];
        }
}

/* The own kernel for every combination of ops. Returns 0, or -ENOMEM when
 * a copy could not be allocated (nothing was written). */
static int gemm_avx512(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha,
                       const float *A, int lda, const float *B, int ldb, float beta, float *C,
                       int ldc)
{
    if (tb == GEMM_N) {
        /* op(B) rows are B's rows; op(A) is read in place either way. */
        return gemm_run(M, N, K, alpha, A, ta == GEMM_N ? lda : 1, ta == GEMM_N ? 1 : lda, B,
                        ldb, beta, C, ldc, 1);
    }
    if (ta == GEMM_T) {
        /* C = A^T B^T = (B A)^T: B (N, K) read in place, A (K, M) by rows. */
        return gemm_run(N, M, K, alpha, B, ldb, 1, A, lda, beta, C, 1, ldc);
    }
    /* C = A B^T with A (M, K) and B (N, K): transpose the smaller one. */
    const int small = M <= N ? M : N;
    float *t = malloc((size_t)small * (size_t)K * sizeof *t + 1);
    if (!t) return -ENOMEM;
    int err;
    if (M <= N) {
        transpose(A, lda, M, K, t); /* t (K, M) = A^T; C^T (N, M) = B t */
        err = gemm_run(N, M, K, alpha, B, ldb, 1, t, M, beta, C, 1, ldc);
    } else {
        transpose(B, ldb, N, K, t); /* t (K, N) = B^T; C = A t */
        err = gemm_run(M, N, K, alpha, A, lda, 1, t, N, beta, C, ldc, 1);
    }
    free(t);
    return err;
}

#else /* no AVX-512 kernel in this build */

static int avx512_usable(void)
{
    return 0;
}

static int gemm_avx512(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha,
                       const float *A, int lda, const float *B, int ldb, float beta, float *C,
                       int ldc)
{
    (void)ta, (void)tb, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda, (void)B;
    (void)ldb, (void)beta, (void)C, (void)ldc;
    return -ENOTSUP;
}

#endif

/* ---- the choice per shape (backend "auto") ----
 *
 * The first product of each shape is timed on both backends, on the
 * caller's own operands into a scratch C, and the faster is remembered for
 * the rest of the process. The table only grows: an entry is written in
 * full under the lock and then published by raising `choices_n` (release),
 * so a reader scans the published entries without taking the lock. */

typedef struct {
    int ta, tb, M, N, K, lda, ldb;  /* the shape */
    int backend;                    /* BACKEND_AVX512 or BACKEND_OPENBLAS */
} gemm_choice_entry;

static gemm_choice_entry choices[GEMM_MAX_CHOICES];
static atomic_int choices_n;
static pthread_mutex_t choices_lock = PTHREAD_MUTEX_INITIALIZER;

/* The published choice for a shape, or -1. */
static int choice_find(gemm_op ta, gemm_op tb, int M, int N, int K, int lda, int ldb)
{
    const int n = atomic_load_explicit(&choices_n, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        const gemm_choice_entry *e = &choices[i];
        if (e->M == M && e->N == N && e->K == K && e->ta == (int)ta && e->tb == (int)tb &&
            e->lda == lda && e->ldb == ldb)
            return e->backend;
    }
    return -1;
}

static double thread_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of one product on backend b into c (M, N), beta 0. A failed
 * own kernel (no memory for its copy) counts as infinitely slow. */
static double time_one(int b, gemm_op ta, gemm_op tb, int M, int N, int K, const float *A,
                       int lda, const float *B, int ldb, float *c)
{
    const double t0 = thread_seconds();
    if (b == BACKEND_OPENBLAS) gemm_openblas(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, c, N);
    else if (gemm_avx512(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, c, N) < 0) return 1e30;
    return thread_seconds() - t0;
}

/* Times both backends on this shape: one untimed call each (first-use
 * costs), then alternating calls until each has run about a millisecond in
 * all, at least twice and at most 20 times; the faster minimum wins
 * (the minimum is what the shape costs when nothing else disturbs it; on a
 * shared machine the mean mostly measures the neighbours). Returns the
 * backend, or -ENOMEM when the scratch C could not be allocated. */
static int choice_time(gemm_op ta, gemm_op tb, int M, int N, int K, const float *A, int lda,
                       const float *B, int ldb)
{
    float *c = malloc((size_t)M * (size_t)N * sizeof *c);
    if (!c) return -ENOMEM;
    const int b[2] = { BACKEND_AVX512, BACKEND_OPENBLAS };
    double best[2];
    for (int i = 0; i < 2; i++) best[i] = time_one(b[i], ta, tb, M, N, K, A, lda, B, ldb, c);
    const double each = best[0] < best[1] ? best[0] : best[1];
    int reps = each > 0 ? (int)(1e-3 / each) : 20;
    reps = reps < 2 ? 2 : reps > 20 ? 20 : reps;
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < 2; i++) {
            const double t = time_one(b[i], ta, tb, M, N, K, A, lda, B, ldb, c);
            if (t < best[i]) best[i] = t;
        }
    free(c);
    return best[0] <= best[1] ? BACKEND_AVX512 : BACKEND_OPENBLAS;
}

/* The backend for this shape under "auto": the remembered choice, or a new
 * timing (other threads asking for the same shape meanwhile wait for it).
 * When the table is full or the timing cannot allocate, sefl's kernel runs
 * without a choice being remembered. */
static int choice_get(gemm_op ta, gemm_op tb, int M, int N, int K, const float *A, int lda,
                      const float *B, int ldb)
{
    int b = choice_find(ta, tb, M, N, K, lda, ldb);
    if (b >= 0) return b;
    pthread_mutex_lock(&choices_lock);
    b = choice_find(ta, tb, M, N, K, lda, ldb);
    const int n = atomic_load_explicit(&choices_n, memory_order_relaxed);
    if (b < 0 && n < GEMM_MAX_CHOICES &&
        (b = choice_time(ta, tb, M, N, K, A, lda, B, ldb)) >= 0) {
        choices[n] = (gemm_choice_entry){ (int)ta, (int)tb, M, N, K, lda, ldb, b };
        atomic_store_explicit(&choices_n, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&choices_lock);
    return b >= 0 ? b : BACKEND_AVX512;
}

static void backend_init(void)
{
    /* One thread per training job: parallelism comes from running several
     * jobs (sefl-sim) or from splitting the batch (model_set_threads), and
     * a threaded sgemm at these sizes would only contend. */
    openblas_set_num_threads(1);
    const char *e = getenv("SEFL_GEMM");
    if (!avx512_usable() || (e && !strcmp(e, "openblas"))) backend = BACKEND_OPENBLAS;
    else if (e && (!strcmp(e, "sefl") || !strcmp(e, "avx512"))) backend = BACKEND_AVX512;
    else backend = BACKEND_AUTO;
}

void gemm(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    pthread_once(&backend_once, backend_init);
    int b = backend;
    if (b == BACKEND_AUTO) b = choice_get(ta, tb, M, N, K, A, lda, B, ldb);
    if (b == BACKEND_AVX512 && gemm_avx512(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == 0)
        return;
    gemm_openblas(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static const char *backend_name(int b)
{
    return b == BACKEND_AUTO ? "auto" : b == BACKEND_AVX512 ? "avx512" : "openblas";
}

const char *gemm_backend(void)
{
    pthread_once(&backend_once, backend_init);
    return backend_name(backend);
}

const char *gemm_choice(gemm_op ta, gemm_op tb, int M, int N, int K, int lda, int ldb)
{
    pthread_once(&backend_once, backend_init);
    if (backend != BACKEND_AUTO) return backend_name(backend);
    const int b = choice_find(ta, tb, M, N, K, lda, ldb);
    return b < 0 ? NULL : backend_name(b);
}

int gemm_set_backend(const char *name)
{
    pthread_once(&backend_once, backend_init);
    if (!strcmp(name, "openblas")) {
        backend = BACKEND_OPENBLAS;
        return 0;
    }
    if (!strcmp(name, "avx512") || !strcmp(name, "sefl") || !strcmp(name, "auto")) {
        if (!avx512_usable()) return -ENOTSUP;
        backend = !strcmp(name, "auto") ? BACKEND_AUTO : BACKEND_AVX512;
        return 0;
    }
    return -EINVAL;
}
