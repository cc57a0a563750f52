/* gemm: the single-precision matrix multiply every layer of the model runs on.
 *
 *   C (M, N) = alpha * op(A) op(B) + beta * C     (row-major, op = N or T)
 *
 * Two backends behind one call: sefl's own kernel on a CPU with AVX-512
 * (checked at run time) and OpenBLAS's cblas_sgemm (one thread), which is
 * all there is elsewhere. The own kernel exists because some machines this
 * trains on run OpenBLAS with its Haswell (AVX2) kernels, which leave half
 * of an AVX-512 core's multiply-add width unused, and because the model's
 * matrices are small and oddly shaped (M = 10 or 32 or 64), where a general
 * library spends a large share of its time packing operands.
 *
 * Neither backend is the faster at every shape on every CPU (on an Intel
 * Xeon with AVX-512, OpenBLAS's own AVX-512 kernels beat sefl's at a 1024
 * square by 3x while sefl's win the model's small products), so by default
 * ("auto") the first product of each shape in a process is timed on both
 * and the faster one does that shape from then on (gemm_choice says which).
 * The environment variable SEFL_GEMM=sefl (or avx512) or SEFL_GEMM=openblas
 * forces one backend; any other value means auto.
 *
 * Results are deterministic for a given backend, shape and input: every
 * element is summed over k in the same order on every call and thread.
 * The two backends sum in different orders, so they agree to rounding, not
 * to the bit. Under "auto" the choice is made by a timing, so two processes
 * may choose differently at a shape whose backends are close and their
 * results then differ in the last bits: pin a backend with SEFL_GEMM for
 * bit-for-bit reruns.
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
 * OpenBLAS if that allocation fails; the first product of a shape under
 * "auto" allocates a scratch (M, N) for the timing and, without it, runs
 * sefl's kernel untimed. */
void gemm(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc);

/* Shapes whose choice a process remembers; a further shape runs sefl's
 * kernel untimed. The model multiplies at a few dozen shapes. */
#define GEMM_MAX_CHOICES 256

/* The backend gemm() uses: "auto" (the faster per shape, on a CPU with
 * AVX-512 unless SEFL_GEMM says otherwise), "avx512" or "openblas". */
const char *gemm_backend(void);

/* What gemm() runs for this shape: "avx512" or "openblas"; under "auto",
 * NULL until the shape's first product has been timed. Thread-safe. */
const char *gemm_choice(gemm_op ta, gemm_op tb, int M, int N, int K, int lda, int ldb);

/* Selects the backend by name for the rest of the process ("auto",
 * "avx512" or its other name "sefl", "openblas"), for tests and benchmarks
 * that compare them; choices already timed are kept. Returns 0, or
 * -ENOTSUP when this CPU or build cannot run it, -EINVAL for another name.
 * Not to be called while another thread is inside gemm(). */
int gemm_set_backend(const char *name);

#endif
