/* layers: the forward/backward pairs the `cnn-se` model is built from.
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

/* ---- squeeze-and-excitation ----
 * The excitation of C channels with reduction to R = C/r:
 *   h = relu(s w1^T + b1)   (B, R)
 *   e = sigmoid(h w2^T + b2) (B, C)
 * se_pool_* is the SE of a feature map (s: the spatial mean of each channel,
 * each channel scaled by e) between a convolution's ReLU and its max-pool;
 * se_vec_* applies e to a feature vector directly. */

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

/* ---- softmax cross-entropy over K classes ---- */

/* probs (B, K) from logits (B, K); returns the summed (not mean) loss
 * against labels y (B), so chunks of a batch add up. */
double softmax_xent_forward(const float *logits, const uint8_t *y, float *probs, int B, int K);
/* dlogits (B, K) = scale * (probs - onehot(y)): the gradient of
 * scale * summed loss, scale = 1/batch for the mean. */
void softmax_xent_backward(const float *probs, const uint8_t *y, float *dlogits,
                           int B, int K, float scale);

#endif
