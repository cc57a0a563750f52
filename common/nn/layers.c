/* layers: forward/backward pairs over plain float arrays; see layers.h for
 * the shapes and the (C, B, H, W) layout of convolution activations.
 *
 * The heavy work is in gemm (gemm.h: sefl's AVX-512 kernel, or OpenBLAS on
 * one thread); the loops here are the data movement around it (im2col,
 * col2im) and the cheap elementwise layers.
 */
#include "common/nn/layers.h"

#include <math.h>
#include <string.h>

#include "common/nn/gemm.h"
#include "common/nn/simd.h"

/* x where y > 0, else 0 (ReLU and its gradient mask in one form). */
static inline v4f v4_where_pos(v4f y, v4f x)
{
    return v4_select(y > v4_splat(0.0f), x, v4_splat(0.0f));
}

/* Sum of x[0..n) with four vector accumulators: an add's latency would
 * otherwise bound the loop, not the loads. */
static float sum_n(const float *x, long n)
{
    v4f a0 = v4_splat(0.0f), a1 = a0, a2 = a0, a3 = a0;
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 += v4_load(x + i);
        a1 += v4_load(x + i + 4);
        a2 += v4_load(x + i + 8);
        a3 += v4_load(x + i + 12);
    }
    for (; i + 4 <= n; i += 4) a0 += v4_load(x + i);
    v4f a = (a0 + a1) + (a2 + a3);
    float s = (a[0] + a[1]) + (a[2] + a[3]);
    for (; i < n; i++) s += x[i];
    return s;
}

/* Sum of x[i] * y[i] over [0..n), as sum_n. */
static float dot_n(const float *x, const float *y, long n)
{
    v4f a0 = v4_splat(0.0f), a1 = a0;
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        a0 += v4_load(x + i) * v4_load(y + i);
        a1 += v4_load(x + i + 4) * v4_load(y + i + 4);
    }
    for (; i + 4 <= n; i += 4) a0 += v4_load(x + i) * v4_load(y + i);
    v4f a = a0 + a1;
    float s = (a[0] + a[1]) + (a[2] + a[3]);
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}

/* y[i] = x[i] * a + b over [0..n); y may be x. */
static void scale_add_n(const float *x, float a, float b, float *y, long n)
{
    const v4f va = v4_splat(a), vb = v4_splat(b);
    long i = 0;
    for (; i + 4 <= n; i += 4) v4_store(y + i, v4_load(x + i) * va + vb);
    for (; i < n; i++) y[i] = x[i] * a + b;
}

/* Writes bias[o] into every element of row o of y (rows, n), so an sgemm
 * with beta = 1 adds the product on top. */
static void fill_rows(float *y, const float *bias, int rows, long n)
{
    for (int o = 0; o < rows; o++) {
        float *row = y + (long)o * n;
        const v4f b = v4_splat(bias[o]);
        long i = 0;
        for (; i + 4 <= n; i += 4) v4_store(row + i, b);
        for (; i < n; i++) row[i] = bias[o];
    }
}

/* dbias[o] (+)= the sum of row o of dy (rows, n). */
static void sum_rows(const float *dy, float *dbias, int rows, long n, int acc)
{
    for (int o = 0; o < rows; o++) {
        const float s = sum_n(dy + (long)o * n, n);
        dbias[o] = acc ? dbias[o] + s : s;
    }
}

/* col (C*K*K, B*OH*OW): row (c, kh, kw), column (b, oh, ow) holds
 * x[c][b][oh+kh][ow+kw]. Each inner copy is one output row of OW floats. */
static void im2col(const float *x, float *col, int B, int C, int H, int W, int K)
{
    const int OH = H - K + 1, OW = W - K + 1;
    const long n = (long)B * OH * OW;
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++) {
                float *dst = col + ((long)(c * K + kh) * K + kw) * n;
                for (int b = 0; b < B; b++) {
                    const float *src = x + ((long)(c * B + b) * H + kh) * W + kw;
                    for (int oh = 0; oh < OH; oh++, dst += OW, src += W) {
                        /* rows are 8 or 24 floats: a call to memcpy would cost more */
                        int ow = 0;
                        for (; ow + 4 <= OW; ow += 4) v4_store(dst + ow, v4_load(src + ow));
                        for (; ow < OW; ow++) dst[ow] = src[ow];
                    }
                }
            }
}

/* The adjoint of im2col: dx (C, B, H, W) = sum of every col entry that was
 * copied from each input position. */
static void col2im(const float *col, float *dx, int B, int C, int H, int W, int K)
{
    const int OH = H - K + 1, OW = W - K + 1;
    const long n = (long)B * OH * OW;
    memset(dx, 0, (size_t)C * B * H * W * sizeof *dx);
    for (int c = 0; c < C; c++)
        for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++) {
                const float *src = col + ((long)(c * K + kh) * K + kw) * n;
                for (int b = 0; b < B; b++) {
                    float *dst = dx + ((long)(c * B + b) * H + kh) * W + kw;
                    for (int oh = 0; oh < OH; oh++, src += OW, dst += W) {
                        int ow = 0;
                        for (; ow + 4 <= OW; ow += 4)
                            v4_store(dst + ow, v4_load(dst + ow) + v4_load(src + ow));
                        for (; ow < OW; ow++) dst[ow] += src[ow];
                    }
                }
            }
}

void conv2d_forward(const float *x, const float *w, const float *bias, float *col, float *y,
                    int B, int C, int H, int W, int O, int K)
{
    const int ckk = C * K * K;
    const int n = B * (H - K + 1) * (W - K + 1);
    im2col(x, col, B, C, H, W, K);
    fill_rows(y, bias, O, n);
    gemm(GEMM_N, GEMM_N, O, n, ckk, 1.0f, w, ckk, col, n, 1.0f, y, n);
}

void conv2d_backward(const float *dy, float *col, const float *w, float *dw, float *dbias,
                     float *dx, int B, int C, int H, int W, int O, int K, int acc)
{
    const int ckk = C * K * K;
    const int n = B * (H - K + 1) * (W - K + 1);
    sum_rows(dy, dbias, O, n, acc);
    /* dw (O, CKK) = dy (O, n) col^T (n, CKK) */
    gemm(GEMM_N, GEMM_T, O, ckk, n, 1.0f, dy, n, col, n, acc ? 1.0f : 0.0f, dw, ckk);
    if (!dx) return;
    /* col is no longer needed once dw is done: reuse it for
     * dcol (CKK, n) = w^T (CKK, O) dy (O, n). */
    gemm(GEMM_T, GEMM_N, ckk, n, O, 1.0f, w, ckk, dy, n, 0.0f, col, n);
    col2im(col, dx, B, C, H, W, K);
}

void relu_forward(const float *x, float *y, long n)
{
    long i = 0;
    for (; i + 4 <= n; i += 4) {
        const v4f v = v4_load(x + i);
        v4_store(y + i, v4_where_pos(v, v));
    }
    for (; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void relu_backward(const float *y, const float *dy, float *dx, long n)
{
    long i = 0;
    for (; i + 4 <= n; i += 4) v4_store(dx + i, v4_where_pos(v4_load(y + i), v4_load(dy + i)));
    for (; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

/* One output row of windows from input rows r0, r1, four windows per
 * vector step; the winner is chosen without branches (it is random, a
 * branch would miss half the time). Ties go to the first in row-major
 * order, as in PyTorch. */
static void maxpool2_row(const float *r0, const float *r1, float *y, uint8_t *arg, int OW)
{
    int ow = 0;
    for (; ow + 4 <= OW; ow += 4) {
        const v4f a = v4_load(r0 + 2 * ow), b = v4_load(r0 + 2 * ow + 4);
        const v4f c = v4_load(r1 + 2 * ow), d = v4_load(r1 + 2 * ow + 4);
        const v4f x0 = __builtin_shufflevector(a, b, 0, 2, 4, 6), x1 = __builtin_shufflevector(a, b, 1, 3, 5, 7);
        const v4f x2 = __builtin_shufflevector(c, d, 0, 2, 4, 6), x3 = __builtin_shufflevector(c, d, 1, 3, 5, 7);
        const v4i i01 = x1 > x0, i23 = x3 > x2;
        const v4f m01 = v4_select(i01, x1, x0), m23 = v4_select(i23, x3, x2);
        const v4i low = m23 > m01;
        v4_store(y + ow, v4_select(low, m23, m01));
        /* masks are -1 where true: 2 - i23 is 2 or 3, -i01 is 0 or 1 */
        const v4i w = (low & (2 - i23)) | (~low & -i01);
        for (int k = 0; k < 4; k++) arg[ow + k] = (uint8_t)w[k];
    }
    for (; ow < OW; ow++) {
        const float a0 = r0[2 * ow], a1 = r0[2 * ow + 1], a2 = r1[2 * ow], a3 = r1[2 * ow + 1];
        const int i01 = a1 > a0, i23 = a3 > a2;
        const float m01 = i01 ? a1 : a0, m23 = i23 ? a3 : a2;
        const int low = m23 > m01;
        y[ow] = low ? m23 : m01;
        arg[ow] = (uint8_t)(low ? 2 + i23 : i01);
    }
}

void maxpool2_forward(const float *x, float *y, uint8_t *arg, int P, int H, int W)
{
    const int OH = H / 2, OW = W / 2;
    for (long p = 0; p < P; p++)
        for (int oh = 0; oh < OH; oh++) {
            const float *r0 = x + (p * H + 2 * oh) * W;
            const long o = (p * OH + oh) * OW;
            maxpool2_row(r0, r0 + W, y + o, arg + o, OW);
        }
}

/* The adjoint of maxpool2_row: writes both input rows, dy at each winner
 * and 0 elsewhere, plus `add` everywhere. With relu (the rows' forward
 * values after the ReLU, may be the rows themselves) a position whose value
 * was not positive gets 0: the ReLU's gradient in the same pass. */
static void unpool_row(const float *dy, const uint8_t *arg, float add, const float *relu0,
                       const float *relu1, float *r0, float *r1, int OW)
{
    const v4f zero = v4_splat(0.0f), vadd = v4_splat(add);
    int ow = 0;
    for (; ow + 4 <= OW; ow += 4) {
        const v4f g = v4_load(dy + ow);
        const v4i w = { arg[ow], arg[ow + 1], arg[ow + 2], arg[ow + 3] };
        const v4f g0 = v4_select(w == 0, g, zero), g1 = v4_select(w == 1, g, zero);
        const v4f g2 = v4_select(w == 2, g, zero), g3 = v4_select(w == 3, g, zero);
        v4f out[4] = { __builtin_shufflevector(g0, g1, 0, 4, 1, 5) + vadd,
                       __builtin_shufflevector(g0, g1, 2, 6, 3, 7) + vadd,
                       __builtin_shufflevector(g2, g3, 0, 4, 1, 5) + vadd,
                       __builtin_shufflevector(g2, g3, 2, 6, 3, 7) + vadd };
        if (relu0) {
            out[0] = v4_where_pos(v4_load(relu0 + 2 * ow), out[0]);
            out[1] = v4_where_pos(v4_load(relu0 + 2 * ow + 4), out[1]);
            out[2] = v4_where_pos(v4_load(relu1 + 2 * ow), out[2]);
            out[3] = v4_where_pos(v4_load(relu1 + 2 * ow + 4), out[3]);
        }
        v4_store(r0 + 2 * ow, out[0]);
        v4_store(r0 + 2 * ow + 4, out[1]);
        v4_store(r1 + 2 * ow, out[2]);
        v4_store(r1 + 2 * ow + 4, out[3]);
    }
    for (; ow < OW; ow++) {
        const int a = arg[ow];
        float v[4] = { add, add, add, add };
        v[a] += dy[ow];
        if (relu0) {
            v[0] = relu0[2 * ow] > 0.0f ? v[0] : 0.0f;
            v[1] = relu0[2 * ow + 1] > 0.0f ? v[1] : 0.0f;
            v[2] = relu1[2 * ow] > 0.0f ? v[2] : 0.0f;
            v[3] = relu1[2 * ow + 1] > 0.0f ? v[3] : 0.0f;
        }
        r0[2 * ow] = v[0];
        r0[2 * ow + 1] = v[1];
        r1[2 * ow] = v[2];
        r1[2 * ow + 1] = v[3];
    }
}

void maxpool2_backward(const float *dy, const uint8_t *arg, float *dx, int P, int H, int W)
{
    const int OH = H / 2, OW = W / 2;
    for (long p = 0; p < P; p++)
        for (int oh = 0; oh < OH; oh++) {
            float *r0 = dx + (p * H + 2 * oh) * W;
            const long o = (p * OH + oh) * OW;
            unpool_row(dy + o, arg + o, 0.0f, NULL, NULL, r0, r0 + W, OW);
        }
}

void linear_forward_part(const float *x, const float *w, const float *bias, float *y,
                         int B, int in, int out, int lo, int hi)
{
    for (int b = 0; b < B; b++)
        memcpy(y + (long)b * out + lo, bias + lo, (size_t)(hi - lo) * sizeof *y);
    /* y[:, lo:hi) (B, hi-lo), row stride out, += x (B, in) w[lo:hi)^T */
    gemm(GEMM_N, GEMM_T, B, hi - lo, in, 1.0f, x, in, w + (long)lo * in, in, 1.0f, y + lo, out);
}

void linear_forward(const float *x, const float *w, const float *bias, float *y,
                    int B, int in, int out)
{
    linear_forward_part(x, w, bias, y, B, in, out, 0, out);
}

void linear_backward_part(const float *dy, const float *x, const float *w, float *dw,
                          float *dbias, float *dx, int B, int in, int out, int lo, int hi, int acc)
{
    if (dw) {
        for (int o = lo; o < hi; o++) {
            float s = 0.0f;
            for (int b = 0; b < B; b++) s += dy[(long)b * out + o];
            dbias[o] = acc ? dbias[o] + s : s;
        }
        /* dw[lo:hi) (hi-lo, in) = dy[:, lo:hi)^T (hi-lo, B) x (B, in) */
        gemm(GEMM_T, GEMM_N, hi - lo, in, B, 1.0f, dy + lo, out, x, in, acc ? 1.0f : 0.0f,
             dw + (long)lo * in, in);
    }
    if (!dx) return;
    /* dx (B, in) = dy[:, lo:hi) (B, hi-lo) w[lo:hi) (hi-lo, in) */
    gemm(GEMM_N, GEMM_N, B, in, hi - lo, 1.0f, dy + lo, out, w + (long)lo * in, in, 0.0f, dx, in);
}

void linear_backward(const float *dy, const float *x, const float *w, float *dw, float *dbias,
                     float *dx, int B, int in, int out, int acc)
{
    linear_backward_part(dy, x, w, dw, dbias, dx, B, in, out, 0, out, acc);
}

/* The excitation shared by every SE form: s (B, C) -> c->h (B, R) -> c->e (B, C). */
static void excite_forward(const float *s, const se_weights *p, se_cache *c, int B, int C, int R)
{
    linear_forward(s, p->w1, p->b1, c->h, B, C, R);
    relu_forward(c->h, c->h, (long)B * R);
    linear_forward(c->h, p->w2, p->b2, c->e, B, R, C);
    for (long i = 0; i < (long)B * C; i++) c->e[i] = gate_of(c->e[i]);
}

/* On entry dg (B, C) holds d(loss)/d(gate); on return it holds d(loss)/ds
 * for the squeezed input s. dh (B, R) is scratch. */
static void excite_backward(const float *s, const se_weights *p, const se_cache *c, se_grads *g,
                            float *dh, float *dg, int B, int C, int R, int acc)
{
    for (long i = 0; i < (long)B * C; i++) dg[i] *= gate_slope(c->e[i]);
    linear_backward(dg, c->h, p->w2, g->w2, g->b2, dh, B, R, C, acc);
    relu_backward(c->h, dh, dh, (long)B * R);
    linear_backward(dh, s, p->w1, g->w1, g->b1, dg, B, C, R, acc);
}

void se_pool_forward(float *a, const se_weights *p, se_cache *c, float *m, uint8_t *arg,
                     float *y, int B, int C, int R, int H, int W)
{
    const int HW = H * W, Q = (H / 2) * (W / 2);
    const float inv = 1.0f / (float)HW;
    /* ReLU in place and the channel means in one pass. */
    for (int ch = 0; ch < C; ch++)
        for (int b = 0; b < B; b++) {
            float *ap = a + ((long)ch * B + b) * HW;
            relu_forward(ap, ap, HW);
            c->s[(long)b * C + ch] = sum_n(ap, HW) * inv;
        }
    excite_forward(c->s, p, c, B, C, R);
    maxpool2_forward(a, m, arg, C * B, H, W);
    for (int ch = 0; ch < C; ch++)
        for (int b = 0; b < B; b++) {
            const long off = ((long)ch * B + b) * Q;
            scale_add_n(m + off, c->e[(long)b * C + ch], 0.0f, y + off, Q);
        }
}

void se_pool_backward(float *dy, float *a, const uint8_t *arg, const float *m,
                      const se_weights *p, const se_cache *c, se_grads *g, float *dh, float *dg,
                      int B, int C, int R, int H, int W, int acc)
{
    const int HW = H * W, OH = H / 2, OW = W / 2, Q = OH * OW;
    /* y = e * m: the gate's gradient is sum(dy * m) over the channel (the
     * full-size map reaches y only through the pooled winners). */
    for (int ch = 0; ch < C; ch++)
        for (int b = 0; b < B; b++) {
            const long off = ((long)ch * B + b) * Q;
            dg[(long)b * C + ch] = dot_n(dy + off, m + off, Q);
        }
    excite_backward(c->s, p, c, g, dh, dg, B, C, R, acc);
    /* Each position gets its mean's share ds/HW, and the winners also
     * dy * e through the pool; then the ReLU's mask. In place over a. */
    const float inv = 1.0f / (float)HW;
    for (int ch = 0; ch < C; ch++)
        for (int b = 0; b < B; b++) {
            const long k = (long)b * C + ch, plane = (long)ch * B + b;
            float *dyp = dy + plane * Q, *ap = a + plane * HW;
            scale_add_n(dyp, c->e[k], 0.0f, dyp, Q);
            for (int oh = 0; oh < OH; oh++) {
                float *r0 = ap + 2 * oh * W;
                unpool_row(dyp + oh * OW, arg + plane * Q + oh * OW, dg[k] * inv, r0, r0 + W,
                           r0, r0 + W, OW);
            }
        }
}

void se_vec_forward(const float *x, const se_weights *p, se_cache *c, float *y,
                    int B, int C, int R)
{
    excite_forward(x, p, c, B, C, R);
    for (long i = 0; i < (long)B * C; i++) y[i] = x[i] * c->e[i];
}

void se_vec_backward(const float *dy, const float *x, const se_weights *p, const se_cache *c,
                     se_grads *g, float *dh, float *dg, float *dx, int B, int C, int R, int acc)
{
    for (long i = 0; i < (long)B * C; i++) dg[i] = dy[i] * x[i];
    excite_backward(x, p, c, g, dh, dg, B, C, R, acc);
    for (long i = 0; i < (long)B * C; i++) dx[i] = dy[i] * c->e[i] + dg[i];
}

/* ---- pointwise convolution ---- */

void conv1x1_forward(const float *x, const float *w, const float *bias, float *y,
                     int B, int C, int HW, int O)
{
    const long n = (long)B * HW;
    fill_rows(y, bias, O, n);
    gemm(GEMM_N, GEMM_N, O, (int)n, C, 1.0f, w, C, x, (int)n, 1.0f, y, (int)n);
}

void conv1x1_backward(const float *dy, const float *x, const float *w, float *dw, float *dbias,
                      float *dx, int B, int C, int HW, int O, int acc)
{
    const int n = B * HW;
    sum_rows(dy, dbias, O, n, acc);
    /* dw (O, C) = dy (O, n) x^T (n, C) */
    gemm(GEMM_N, GEMM_T, O, C, n, 1.0f, dy, n, x, n, acc ? 1.0f : 0.0f, dw, C);
    if (!dx) return;
    /* dx (C, n) = w^T (C, O) dy (O, n) */
    gemm(GEMM_T, GEMM_N, C, n, O, 1.0f, w, C, dy, n, 0.0f, dx, n);
}

/* ---- depthwise convolution ---- */

/* The output columns ow whose input column ow*stride + v - 1 lies inside
 * [0, W): [*lo, *hi). Rows are the same with H. */
static void dw_range(int v, int stride, int W, int OW, int *lo, int *hi)
{
    *lo = v == 0 ? 1 : 0;   /* the left pad reaches only column -1, for v = 0 at ow = 0 */
    int h = (W - v) / stride + 1;  /* ow*stride + v - 1 <= W - 1 */
    *hi = h < OW ? h : OW;
}

void dwconv3_forward(const float *x, const float *w, const float *bias, float *y,
                     int B, int C, int H, int W, int stride)
{
    const int OH = (H - 1) / stride + 1, OW = (W - 1) / stride + 1;
    for (int c = 0; c < C; c++) {
        const float *k = w + c * 9;
        for (int b = 0; b < B; b++) {
            const float *xp = x + ((long)c * B + b) * H * W;
            float *yp = y + ((long)c * B + b) * OH * OW;
            for (long i = 0; i < (long)OH * OW; i++) yp[i] = bias[c];
            /* One tap (u, v) at a time over the rows it reaches: the inner
             * loop is a strided multiply-add the compiler vectorises. */
            for (int u = 0; u < 3; u++) {
                int rlo, rhi;
                dw_range(u, stride, H, OH, &rlo, &rhi);
                for (int v = 0; v < 3; v++) {
                    int clo, chi;
                    dw_range(v, stride, W, OW, &clo, &chi);
                    const float kv = k[u * 3 + v];
                    for (int oh = rlo; oh < rhi; oh++) {
                        const float *xr = xp + (long)(oh * stride + u - 1) * W;
                        float *yr = yp + (long)oh * OW;
                        for (int ow = clo; ow < chi; ow++) yr[ow] += kv * xr[ow * stride + v - 1];
                    }
                }
            }
        }
    }
}

void dwconv3_backward(const float *dy, const float *x, const float *w, float *dw, float *dbias,
                      float *dx, int B, int C, int H, int W, int stride, int acc)
{
    const int OH = (H - 1) / stride + 1, OW = (W - 1) / stride + 1;
    for (int c = 0; c < C; c++) {
        const float *k = w + c * 9;
        double gk[9] = { 0 }, gb = 0.0;
        for (int b = 0; b < B; b++) {
            const float *xp = x + ((long)c * B + b) * H * W;
            const float *dyp = dy + ((long)c * B + b) * OH * OW;
            float *dxp = dx ? dx + ((long)c * B + b) * H * W : NULL;
            gb += sum_n(dyp, (long)OH * OW);
            if (dxp) memset(dxp, 0, (size_t)H * W * sizeof *dxp);
            for (int u = 0; u < 3; u++) {
                int rlo, rhi;
                dw_range(u, stride, H, OH, &rlo, &rhi);
                for (int v = 0; v < 3; v++) {
                    int clo, chi;
                    dw_range(v, stride, W, OW, &clo, &chi);
                    const float kv = k[u * 3 + v];
                    float acc_k = 0.0f;
                    for (int oh = rlo; oh < rhi; oh++) {
                        const long row = (long)(oh * stride + u - 1) * W;
                        const float *xr = xp + row, *dyr = dyp + (long)oh * OW;
                        for (int ow = clo; ow < chi; ow++) acc_k += dyr[ow] * xr[ow * stride + v - 1];
                        if (dxp) {
                            float *dxr = dxp + row;
                            for (int ow = clo; ow < chi; ow++) dxr[ow * stride + v - 1] += kv * dyr[ow];
                        }
                    }
                    gk[u * 3 + v] += acc_k;
                }
            }
        }
        for (int i = 0; i < 9; i++) dw[c * 9 + i] = (float)(acc ? dw[c * 9 + i] + gk[i] : gk[i]);
        dbias[c] = (float)(acc ? dbias[c] + gb : gb);
    }
}

/* ---- channel gates on a feature map ---- */

/* s (B, C) = the mean of each plane of x (C, B, HW). */
static void squeeze_map(const float *x, float *s, int B, int C, int HW)
{
    const float inv = 1.0f / (float)HW;
    for (int ch = 0; ch < C; ch++)
        for (int b = 0; b < B; b++) s[(long)b * C + ch] = sum_n(x + ((long)ch * B + b) * HW, HW) * inv;
}

/* y = x * e[b][c] per plane. */
static void scale_map(const float *x, const float *e, float *y, int B, int C, int HW)
{
    for (int ch = 0; ch < C; ch++)
        for (int b = 0; b < B; b++) {
            const long off = ((long)ch * B + b) * HW;
            scale_add_n(x + off, e[(long)b * C + ch], 0.0f, y + off, HW);
        }
}

/* The backward pass of y = x * e(mean(x)) given dg: on entry dg (B, C) is
 * unused; it gets d(loss)/d(e) = sum(dy * x) over each plane. */
static void gate_grad_map(const float *dy, const float *x, float *dg, int B, int C, int HW)
{
    for (int ch = 0; ch < C; ch++)
        for (int b = 0; b < B; b++) {
            const long off = ((long)ch * B + b) * HW;
            dg[(long)b * C + ch] = dot_n(dy + off, x + off, HW);
        }
}

/* dx = dy * e + ds / HW per plane, where ds (B, C) = d(loss)/d(mean). */
static void gate_dx_map(const float *dy, const float *e, const float *ds, float *dx,
                        int B, int C, int HW)
{
    const float inv = 1.0f / (float)HW;
    for (int ch = 0; ch < C; ch++)
        for (int b = 0; b < B; b++) {
            const long k = (long)b * C + ch, off = ((long)ch * B + b) * HW;
            scale_add_n(dy + off, e[k], ds[k] * inv, dx + off, HW);
        }
}

void se_map_forward(const float *x, const se_weights *p, se_cache *c, float *y,
                    int B, int C, int R, int HW)
{
    squeeze_map(x, c->s, B, C, HW);
    excite_forward(c->s, p, c, B, C, R);
    scale_map(x, c->e, y, B, C, HW);
}

void se_map_backward(const float *dy, const float *x, const se_weights *p, const se_cache *c,
                     se_grads *g, float *dh, float *dg, float *dx, int B, int C, int R, int HW,
                     int acc)
{
    gate_grad_map(dy, x, dg, B, C, HW);
    excite_backward(c->s, p, c, g, dh, dg, B, C, R, acc);
    gate_dx_map(dy, c->e, dg, dx, B, C, HW);
}

int eca_kernel_size(int C)
{
    const int t = (int)fabs((log2((double)C) + 1.0) / 2.0);
    return t % 2 ? t : t + 1;
}

void eca_forward(const float *x, const float *w, eca_cache *c, float *y, int B, int C, int HW,
                 int k)
{
    const int pad = (k - 1) / 2;
    squeeze_map(x, c->s, B, C, HW);
    for (int b = 0; b < B; b++) {
        const float *s = c->s + (long)b * C;
        float *e = c->e + (long)b * C;
        for (int ch = 0; ch < C; ch++) {
            float z = 0.0f;
            for (int j = 0; j < k; j++) {
                const int src = ch + j - pad;
                if (src >= 0 && src < C) z += w[j] * s[src];
            }
            e[ch] = gate_of(z);
        }
    }
    scale_map(x, c->e, y, B, C, HW);
}

void eca_backward(const float *dy, const float *x, const float *w, const eca_cache *c, float *dw,
                  float *dg, float *dx, int B, int C, int HW, int k, int acc)
{
    const int pad = (k - 1) / 2;
    gate_grad_map(dy, x, dg, B, C, HW);
    if (!acc) memset(dw, 0, (size_t)k * sizeof *dw);
    for (int b = 0; b < B; b++) {
        const float *s = c->s + (long)b * C, *e = c->e + (long)b * C;
        float *g = dg + (long)b * C;
        /* dg: d/d(gate) -> d/dz through the gate */
        for (int ch = 0; ch < C; ch++) g[ch] *= gate_slope(e[ch]);
        for (int j = 0; j < k; j++) {
            float sum = 0.0f;
            for (int ch = 0; ch < C; ch++) {
                const int src = ch + j - pad;
                if (src >= 0 && src < C) sum += g[ch] * s[src];
            }
            dw[j] += sum;
        }
    }
    /* ds[src] = the sum over the outputs that read s[src]. dg becomes ds
     * one sample at a time, from a copy of that sample's dz. */
    for (int b = 0; b < B; b++) {
        float *g = dg + (long)b * C;
        float dz[ECA_MAX_CHANNELS];
        memcpy(dz, g, (size_t)C * sizeof *dz);
        for (int src = 0; src < C; src++) {
            float sum = 0.0f;
            for (int j = 0; j < k; j++) {
                const int ch = src - j + pad;
                if (ch >= 0 && ch < C) sum += dz[ch] * w[j];
            }
            g[src] = sum;
        }
    }
    gate_dx_map(dy, c->e, dg, dx, B, C, HW);
}

/* ---- global average pool ---- */

void gap_forward(const float *x, float *y, int B, int C, int HW)
{
    squeeze_map(x, y, B, C, HW);
}

void gap_backward(const float *dy, float *dx, int B, int C, int HW)
{
    const float inv = 1.0f / (float)HW;
    for (int ch = 0; ch < C; ch++)
        for (int b = 0; b < B; b++) {
            float *p = dx + ((long)ch * B + b) * HW;
            const float v = dy[(long)b * C + ch] * inv;
            for (int i = 0; i < HW; i++) p[i] = v;
        }
}

double softmax_xent_forward(const float *logits, const uint8_t *y, float *probs, int B, int K)
{
    double loss = 0.0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (long)b * K;
        float *p = probs + (long)b * K;
        float mx = z[0];
        for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
        float sum = 0.0f;
        for (int k = 0; k < K; k++) sum += p[k] = expf(z[k] - mx);
        for (int k = 0; k < K; k++) p[k] /= sum;
        /* log-sum-exp minus the label's logit: no log of a tiny probability. */
        loss += (double)logf(sum) + mx - z[y[b]];
    }
    return loss;
}

void softmax_xent_backward(const float *probs, const uint8_t *y, float *dlogits,
                           int B, int K, float scale)
{
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++) {
            long i = (long)b * K + k;
            dlogits[i] = scale * (probs[i] - (k == y[b] ? 1.0f : 0.0f));
        }
}
