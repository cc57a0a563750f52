/* layers: the forward/backward pairs the architectures (arch.h) are built
 * from: cnn-se's convolution, pooling, linear and SE layers, and mbv2-se's
 * pointwise and depthwise convolutions, channel gates on a feature map (SE,
 * ECA) and global average pool.
 *
 * Every layer works on plain float arrays with explicit dimensions; nothing
 * here allocates, keeps state or touches globals, so several models may run
 * on several threads at once. Buffers are named by their shape in comments.
 *
 * Layout. Convolution activations are kept as (C, B, H, W): channel-major
 * across the whole mini-batch. Then a convolution over the batch is one
 * sgemm, W (O, C*K*K) x col (C*K*K, B*OH*OW), whose output is already the
 * next (O, B, OH, OW) activation with no transpose. A single-channel input
 * (B, 1, H, W) is the same array as (1, B, H, W).
 *
 * Gradients of parameters are written with an `acc` flag: 0 overwrites,
 * 1 adds to what is there (a mini-batch processed in several chunks).
 * Input gradients are always overwritten.
 */
#ifndef SEFL_LAYERS_H
#define SEFL_LAYERS_H

#include <math.h>
#include <stdint.h>

/* ---- convolution (stride 1, no padding), im2col + sgemm ---- */

/* y (O, B, OH, OW) = w (O, C, K, K) * x (C, B, H, W) + bias (O), with
 * OH = H-K+1, OW = W-K+1. col (C*K*K, B*OH*OW) is scratch that the backward
 * pass reads, so keep it until then. */
void conv2d_forward(const float *x, const float *w, const float *bias, float *col, float *y,
                    int B, int C, int H, int W, int O, int K);

/* From dy (O, B, OH, OW) and the col of the forward pass: dw (O, C, K, K),
 * dbias (O) (written or added per acc) and, when dx != NULL, dx (C, B, H, W).
 * Computing dx overwrites col with d(col). */
void conv2d_backward(const float *dy, float *col, const float *w, float *dw, float *dbias,
                     float *dx, int B, int C, int H, int W, int O, int K, int acc);

/* ---- ReLU, elementwise over n floats; y may be x, dx may be dy ---- */

void relu_forward(const float *x, float *y, long n);
/* dx = dy where the forward output y > 0, else 0. */
void relu_backward(const float *y, const float *dy, float *dx, long n);

/* ---- 2x2 max-pool, stride 2, over P planes of (H, W), H and W even ----
 * Planes are independent, so any (C, B) or (B, C) order of P works. */

/* y (P, H/2, W/2); arg (P, H/2, W/2) remembers which of the four won (0..3). */
void maxpool2_forward(const float *x, float *y, uint8_t *arg, int P, int H, int W);
/* dx (P, H, W): dy routed to each window's winner, zero elsewhere. */
void maxpool2_backward(const float *dy, const uint8_t *arg, float *dx, int P, int H, int W);

/* ---- linear: y (B, out) = x (B, in) w^T + bias, w (out, in) ---- */

void linear_forward(const float *x, const float *w, const float *bias, float *y,
                    int B, int in, int out);
/* dw (out, in), dbias (out) per acc; dx (B, in) when dx != NULL. */
void linear_backward(const float *dy, const float *x, const float *w, float *dw, float *dbias,
                     float *dx, int B, int in, int out, int acc);

/* The same restricted to the output features [lo, hi) (0 <= lo < hi <= out),
 * so that several threads can compute one layer, each its own block of
 * outputs (model.c). linear_forward_part writes y's columns lo..hi-1 (row
 * stride out) and leaves the others. linear_backward_part writes dw's rows
 * and dbias's entries lo..hi-1 per acc and, when dx != NULL, dx (B, in) =
 * dy[:, lo:hi) w[lo:hi), the part of the input gradient that flows through
 * those outputs (the parts of a split add up to dx). linear_backward_part
 * with dw (and dbias) NULL computes dx alone, with dx NULL the parameter
 * gradients alone. With lo 0 and hi out they are linear_forward and
 * linear_backward. */
void linear_forward_part(const float *x, const float *w, const float *bias, float *y,
                         int B, int in, int out, int lo, int hi);
void linear_backward_part(const float *dy, const float *x, const float *w, float *dw,
                          float *dbias, float *dx, int B, int in, int out, int lo, int hi, int acc);

/* ---- squeeze-and-excitation ----
 * The excitation of C channels with reduction to R = C/r:
 *   h = relu(s w1^T + b1)   (B, R)
 *   e = gate(h w2^T + b2)   (B, C), gate(z) = GATE_SCALE * sigmoid(z)
 * se_pool_* is the SE of a feature map (s: the spatial mean of each channel,
 * each channel scaled by e) between a convolution's ReLU and its max-pool;
 * se_vec_* applies e to a feature vector directly. */

/* Every SE and ECA gate is GATE_SCALE * sigmoid(z): with z = 0 at the start
 * a gate is 1 (the signal passes unscaled, so three gates in series do not
 * shrink the backbone's gradients), its slope is GATE_SCALE/4 = 0.5 (it
 * trains at once), and it can both open (up to 2) and close (down to 0) a
 * channel. A plain sigmoid gate must choose: starting at 0.5 it scales
 * three gates' signal by 1/8 (the start-up plateau on balanced labels),
 * starting near 1 (a high output bias) it can only close and barely moves
 * (slope 0.05). tests/bench/plateau.sh and make results measure both. */
#define GATE_SCALE 2.0f
static inline float gate_of(float z) { return GATE_SCALE / (1.0f + expf(-z)); }
/* d(gate)/dz written with the gate's value e. */
static inline float gate_slope(float e) { return e * (1.0f - e / GATE_SCALE); }

typedef struct {
    const float *w1;   /* (R, C) */
    const float *b1;   /* (R) */
    const float *w2;   /* (C, R) */
    const float *b2;   /* (C) */
} se_weights;

typedef struct {
    float *w1, *b1, *w2, *b2;   /* same shapes as se_weights */
} se_grads;

/* What the backward pass needs from the forward pass. */
typedef struct {
    float *s;          /* (B, C) squeezed input */
    float *h;          /* (B, R) */
    float *e;          /* (B, C) gate */
} se_cache;

/* y = maxpool2(SE(relu(a))) for a convolution's output a (C, B, H, W),
 * H and W even. Fused because the gate e > 0 scales a whole channel and so
 * commutes with the max: y = e * maxpool2(relu(a)). That leaves one pass
 * over the full-size activation forward and one backward, where the layers
 * one by one would make eight.
 * On return a holds relu(a); m (C, B, H/2, W/2) the pooled relu(a) and arg
 * (C, B, H/2, W/2) the winners (maxpool2_forward), y (C, B, H/2, W/2). */
void se_pool_forward(float *a, const se_weights *p, se_cache *c, float *m, uint8_t *arg,
                     float *y, int B, int C, int R, int H, int W);
/* From dy (C, B, H/2, W/2), which is overwritten, and what the forward pass
 * left (a = relu(a), m, arg, c): the excitation's gradients per acc, and in
 * a, in place, d(loss)/d(a) before the ReLU. dh (B, R), dg (B, C) are
 * scratch. */
void se_pool_backward(float *dy, float *a, const uint8_t *arg, const float *m,
                      const se_weights *p, const se_cache *c, se_grads *g, float *dh, float *dg,
                      int B, int C, int R, int H, int W, int acc);

/* x, y (B, C), distinct; c->s is not used (the squeeze is x itself). */
void se_vec_forward(const float *x, const se_weights *p, se_cache *c, float *y,
                    int B, int C, int R);
/* dh (B, R) and dg (B, C) are scratch; dx (B, C) may be dy. */
void se_vec_backward(const float *dy, const float *x, const se_weights *p, const se_cache *c,
                     se_grads *g, float *dh, float *dg, float *dx, int B, int C, int R, int acc);

/* ---- pointwise (1x1) convolution ----
 * y (O, B, H, W) = w (O, C) x (C, B, H, W) + bias (O), one gemm over the
 * whole batch with N = B*HW (HW = H*W); w is PyTorch's (O, C, 1, 1). */
void conv1x1_forward(const float *x, const float *w, const float *bias, float *y,
                     int B, int C, int HW, int O);
/* dw (O, C), dbias (O) per acc; dx (C, B, H, W) when dx != NULL (not dy). */
void conv1x1_backward(const float *dy, const float *x, const float *w, float *dw, float *dbias,
                      float *dx, int B, int C, int HW, int O, int acc);

/* ---- depthwise 3x3 convolution, zero padding 1, stride 1 or 2 ----
 * Each channel is convolved with its own 3x3 kernel: y (C, B, OH, OW) from
 * x (C, B, H, W), w (C, 1, 3, 3), bias (C), OH = (H-1)/stride + 1 (PyTorch's
 * Conv2d(C, C, 3, stride, padding=1, groups=C)). */
void dwconv3_forward(const float *x, const float *w, const float *bias, float *y,
                     int B, int C, int H, int W, int stride);
/* dw (C, 1, 3, 3), dbias (C) per acc; dx (C, B, H, W) when dx != NULL. */
void dwconv3_backward(const float *dy, const float *x, const float *w, float *dw, float *dbias,
                      float *dx, int B, int C, int H, int W, int stride, int acc);

/* ---- channel gates on a feature map x (C, B, H, W), HW = H*W ----
 * Both squeeze each channel to its spatial mean s (B, C), compute a gate
 * e (B, C) in (0, 1) from s, and scale: y = x * e[b][c]. y and x are
 * distinct; in the backward passes dx may be dy. */

/* SE: e = the excitation of se_weights (as above) on s; c->s, c->h, c->e
 * are filled for the backward pass. */
void se_map_forward(const float *x, const se_weights *p, se_cache *c, float *y,
                    int B, int C, int R, int HW);
/* dh (B, R), dg (B, C) are scratch. */
void se_map_backward(const float *dy, const float *x, const se_weights *p, const se_cache *c,
                     se_grads *g, float *dh, float *dg, float *dx, int B, int C, int R, int HW,
                     int acc);

/* ECA (Wang et al., 2020): e = gate(conv1d(s)) along the channel axis,
 * one kernel w (k) shared by every channel (PyTorch's Conv1d(1, 1, k,
 * padding=(k-1)/2, bias=False), weight (1, 1, k)), zero padded at both
 * ends; k odd, C <= ECA_MAX_CHANNELS. */
#define ECA_MAX_CHANNELS 1024
typedef struct {
    float *s;          /* (B, C) squeezed input */
    float *e;          /* (B, C) gate */
} eca_cache;

/* The kernel size ECA derives from the channel count: t = |(log2(C) + b) /
 * gamma| with gamma = 2, b = 1, rounded down, made odd by adding 1. */
int eca_kernel_size(int C);
void eca_forward(const float *x, const float *w, eca_cache *c, float *y, int B, int C, int HW,
                 int k);
/* dw (k) per acc; dg (B, C) is scratch. */
void eca_backward(const float *dy, const float *x, const float *w, const eca_cache *c, float *dw,
                  float *dg, float *dx, int B, int C, int HW, int k, int acc);

/* ---- global average pool: y (B, C) = the mean of each plane of x (C, B, HW) ---- */
void gap_forward(const float *x, float *y, int B, int C, int HW);
/* dx (C, B, HW) = dy[b][c] / HW everywhere in the plane. */
void gap_backward(const float *dy, float *dx, int B, int C, int HW);

/* ---- softmax cross-entropy over K classes ---- */

/* probs (B, K) from logits (B, K); returns the summed (not mean) loss
 * against labels y (B), so chunks of a batch add up. */
double softmax_xent_forward(const float *logits, const uint8_t *y, float *probs, int B, int K);
/* dlogits (B, K) = scale * (probs - onehot(y)): the gradient of
 * scale * summed loss, scale = 1/batch for the mean. */
void softmax_xent_backward(const float *probs, const uint8_t *y, float *dlogits,
                           int B, int K, float scale);

#endif
