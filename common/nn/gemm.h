/* gemm: the single-precision matrix multiply every layer of the model runs on.
 *
 *   C (M, N) = alpha * op(A) op(B) + beta * C     (row-major, op = N or T)
 *
 * Two backends behind one call. On a CPU with AVX-512 (checked at run time)
 * sefl's own kernel runs; elsewhere, or when asked, OpenBLAS's cblas_sgemm
 * (one thread). The own kernel exists because the machines this trains on
 * run OpenBLAS with its Haswell (AVX2) kernels, which leave half of an
 * AVX-512 core's multiply-add width unused, and because the model's
 * matrices are small and oddly shaped (M = 10 or 32 or 64), where a general
 * library spends a large share of its time packing operands.
 *
 * Results are deterministic for a given backend, shape and input: every
 * element is summed over k in the same order on every call and thread.
 * The two backends sum in different orders, so they agree to rounding, not
 * to the bit.
 */
#ifndef SEFL_GEMM_H
#define SEFL_GEMM_H

typedef enum { GEMM_N = 0, GEMM_T = 1 } gemm_op;

/* C (M, N) = alpha * op(A) op(B) + beta * C. op(A) is (M, K): A is (M, K)
 * with row stride lda when ta == GEMM_N, (K, M) when GEMM_T; likewise op(B)
 * is (K, N) from B (K, N) or (N, K) with row stride ldb. When beta == 0, C is
 * not read (it may hold anything, NaN included). C must not overlap A or B.
 * Thread-safe. The own kernel allocates a transposed copy of the smaller
 * operand for A B^T, or a (K, 32) panel of a wide B, and falls back to
 * OpenBLAS if that allocation fails. */
void gemm(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc);

/* The backend gemm() uses: "avx512" or "openblas". Chosen once, from the
 * CPU, unless the environment variable SEFL_GEMM says "openblas". */
const char *gemm_backend(void);

/* Selects the backend by name for the rest of the process ("avx512" or
 * "openblas"), for tests and benchmarks that compare the two. Returns 0, or
 * -ENOTSUP when this CPU or build cannot run it, -EINVAL for another name.
 * Not to be called while another thread is inside gemm(). */
int gemm_set_backend(const char *name);

#endif
