/* simd: four floats as one value, for the hot elementwise loops of the
 * trainer (layers.c, optim.c).
 *
 * A GCC/Clang vector extension: SSE on x86-64, NEON on arm64, with no
 * intrinsics and no target flags. The build's -O2 does not vectorise loops
 * of unknown length by itself, and these loops over activations and
 * parameters are most of the time spent outside sgemm. Loads and stores go
 * through memcpy, which compiles to unaligned vector moves.
 */
#ifndef SEFL_SIMD_H
#define SEFL_SIMD_H

#include <string.h>

typedef float v4f __attribute__((vector_size(16)));
typedef int v4i __attribute__((vector_size(16)));

static inline v4f v4_load(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void v4_store(float *p, v4f v)
{
    memcpy(p, &v, sizeof v);
}

static inline v4f v4_splat(float x)
{
    return (v4f){ x, x, x, x };
}

/* a where m is set, else b (m: lanes of all ones or all zeros, as the
 * comparisons of vectors give). */
static inline v4f v4_select(v4i m, v4f a, v4f b)
{
    return (v4f)(((v4i)a & m) | ((v4i)b & ~m));
}

#endif
