/* model: a network of the architecture its parameter table names (arch.h:
 * cnn-se, the default, or mbv2-se) with its training and evaluation; every
 * architecture ends in 10 logits and softmax cross-entropy.
 *
 * A model owns one parameter buffer (laid out by its param_table), one
 * gradient buffer of the same size, one momentum buffer, and activation
 * workspace for up to max_batch samples. It is not thread-safe; one model per
 * training job. Compute runs on the calling thread alone unless
 * model_set_threads gives the model more (gemm itself is single-threaded).
 */
#ifndef SEFL_MODEL_H
#define SEFL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "common/nn/optim.h"
#include "common/nn/params.h"
#include "common/nn/tpool.h"

#define MODEL_IMG 28                 /* input is 1x28x28 */
#define MODEL_PIXELS (MODEL_IMG * MODEL_IMG)
#define MODEL_CLASSES 10
#define MODEL_MAX_BATCH 1024
#define MODEL_MAX_THREADS TPOOL_MAX_THREADS

typedef struct model model;

/* Creates a model for table t (copied) with workspace for max_batch samples
 * (1..MODEL_MAX_BATCH). Parameters are zero until model_init. Returns NULL
 * if malloc fails, max_batch is out of range or t is not a table that
 * params_build makes from t's own architecture and options (its hash
 * differs). */
model *model_new(const param_table *t, int max_batch);
void model_free(model *m);               /* accepts NULL */

/* Lets one training or evaluation use `threads` threads (1..MODEL_MAX_THREADS;
 * 1 is the default): model_forward_backward, model_train and model_evaluate
 * then cut each mini-batch (or the evaluated samples) into `threads`
 * contiguous slices computed at once, each by its own replica of the
 * workspace and gradients (about 3 MB each plus workspace), and the
 * gradients are summed in a fixed order. In training (model_train and
 * model_forward_backward), an architecture's widest linear layer (arch.h:
 * wide; cnn-se's fc1) is split by its output features instead, each
 * thread computing, and stepping, its own rows of the weights for the
 * whole batch (model.c says why); a batch then runs in
 * rounds of max(32, threads) samples (at most max_batch), with buffers of
 * ((threads + 1) in + 2 out) floats per sample of a round (0.5 MB for
 * cnn-se on 2 threads). The threads start here and stay until model_free
 * or the next call. Results are deterministic for a given `threads`;
 * across different `threads` they differ only by the order of sums over
 * the batch's samples and the wide layer's outputs (float reassociation:
 * relative differences near 1e-6 per step). Returns 0, -EINVAL (threads out
 * of range) or -ENOMEM / a pthread error, leaving the model on one
 * thread. */
int model_set_threads(model *m, int threads);
int model_threads(const model *m);

const param_table *model_table(const model *m);
float *model_params(model *m);           /* (table.total) */
float *model_grads(model *m);            /* (table.total) */
const float *model_momentum(const model *m); /* (table.total) SGD momentum, for tests */

/* Every excitation's output bias (se*.fc2.bias) starts at this value, so
 * every gate starts at GATE_SCALE * sigmoid(0) = 1 (layers.h) up to its
 * small weights' noise. PyTorch's SE (a plain sigmoid at ~0) starts each
 * gate at 0.5: three in series scale the signal, and so every backbone
 * gradient, by about 1/8, and at PFLlib's lr 0.005 a federated run then
 * learns little but the output biases for its first 10-25 rounds (the
 * start-up plateau; `sefl-bench grads` measures the per-layer gradient
 * norms at initialisation, tests/bench/plateau.sh the round-by-round
 * accuracy). An earlier fix, a plain sigmoid with this bias at 3 (gates at
 * 0.95), ended the plateau but left gates that could only close and
 * barely trained (slope 0.045): private SE fell to FedAvg's level on
 * dir:0.1. */
#define MODEL_GATE_BIAS 0.0f

/* Deterministic initialisation from seed (same seed, same bytes on every
 * machine): PyTorch's default scheme (kaiming-uniform weights, uniform
 * biases with bound 1/sqrt(fan_in)) from an integer PRNG, except the
 * excitations' output biases, which are MODEL_GATE_BIAS. Also zeroes the
 * momentum buffer. */
void model_init(model *m, uint64_t seed);

/* 1 when p is an excitation's output bias (the tensors MODEL_GATE_BIAS sets). */
int model_is_gate_bias(const param_info *p);

/* Zeroes the momentum buffer (start of a local training job). */
void model_reset_momentum(model *m);

/* Forward pass on B samples x (B, 28*28) floats in [0,1]: returns the mean
 * cross-entropy against labels y (B) and, if logits != NULL, writes (B, 10). */
float model_forward(model *m, const float *x, const uint8_t *y, int B, float *logits);

/* Forward + backward on B samples; grads (table.total) hold d(mean loss)/dw.
 * Returns the mean loss; *correct (may be NULL) gets the number of samples
 * whose argmax matched the label. */
float model_forward_backward(model *m, const float *x, const uint8_t *y, int B, int *correct);

/* One SGD step with the current gradients (optim.h); ref (table.total) is the
 * proximal reference or NULL. c->frozen and c->alt choose, tensor by tensor,
 * which are left alone (weights and momentum) and which step at c->alt_lr:
 * the primitive of the local schedules (client/trainer.h). */
void model_sgd_step(model *m, const sgd_config *c, const float *ref);

typedef struct {
    double loss;        /* mean cross-entropy */
    double accuracy;    /* fraction correct */
    long examples;
    double seconds;     /* wall time */
} model_stats;

/* Trains `epochs` epochs over the samples idx[0..n) (idx NULL: 0..n-1) of
 * images x (N, 784) and labels y (N) in mini-batches of `batch`, shuffled
 * each epoch by a PRNG seeded with seed, SGD per c, proximal reference ref
 * (may be NULL). The momentum buffer carries on from the last call, so one
 * run may train in several calls; a new job calls model_reset_momentum
 * first. Fills st with the figures of the last epoch. Returns 0, -EINVAL for batch out of range, or -ENOMEM. */
int model_train(model *m, const float *x, const uint8_t *y, const int *idx, int n,
                int epochs, int batch, const sgd_config *c, const float *ref,
                uint64_t seed, model_stats *st);

/* Accuracy and mean loss over the samples idx[0..n) (idx NULL: 0..n-1). */
void model_evaluate(model *m, const float *x, const uint8_t *y, const int *idx, int n,
                    model_stats *st);

/* Multiply-accumulates per sample of a forward pass of t's architecture,
 * with or without the gates (PARAM_SE), for sefl-eval's cost view and
 * sefl-bench; -1 for a table of no registered architecture. */
long model_macs(const param_table *t, int with_gates);

/* The gate view of sefl-eval --gates (client/gates.h), which cnn-se has
 * (arch.h: gates, macs_pruned); for another architecture model_macs_pruned
 * is -1 and model_gates NULL.
 * SE blocks, in forward order: the gate of conv1's channels, of conv2's,
 * and of fc1's features (the last only when the table has the fc1 gate). */
enum { MODEL_SE_BLOCKS = 3 };

/* The same with the SE gates and with removed[k] channels of SE block k's
 * layer pruned away (conv1's or conv2's output channels, fc1's outputs):
 * every multiply that reads or writes a removed channel is gone, in the
 * layer, in its SE block and in the layer after it. The SE blocks' hidden
 * widths stay. removed[k] must be within 0..that layer's width. */
long model_macs_pruned(const param_table *t, const int removed[MODEL_SE_BLOCKS]);

/* The gates (n, C) of SE block `block` (0..MODEL_SE_BLOCKS-1) computed by
 * the last model_forward or model_evaluate, one row per sample of the last
 * workspace chunk: all of a model_forward call's B samples when B <=
 * min(max_batch, 32). *channels gets C. Returns NULL for a block the model
 * lacks (se3 without the fc1 gate) or out of range. The rows belong to the
 * model and change with the next pass. */
const float *model_gates(const model *m, int block, int *channels);

#endif
