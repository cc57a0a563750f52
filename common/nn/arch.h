/* arch: the model architectures and the one table that registers them.
 *
 * An architecture is a table builder and a network: it lays out its tensors
 * in a param_table (params.h) for the options it takes, and runs forward and
 * backward passes over a model's weight and gradient buffers. model.c owns
 * everything the architectures share (the buffers, SGD, mini-batches,
 * chunking, softmax cross-entropy, initialisation) and dispatches to the
 * architecture its table names.
 *
 * Adding an architecture: its file in common/nn/ defining one `const
 * model_arch arch_ID`, its test, and its ID on the ARCH_LIST line of arch.c.
 * Nothing else names an architecture: programs pass --arch and the options
 * through model_opts, the wire and server.db carry the table's arch, options
 * and hash.
 */
#ifndef SEFL_ARCH_H
#define SEFL_ARCH_H

#include <stddef.h>

#include "common/nn/params.h"

typedef struct model_arch {
    const char *name;           /* what --arch takes and the table records */

    /* model_init draws every tensor from PyTorch's default U(-1/sqrt(fan_in),
     * 1/sqrt(fan_in)); a convolution's weights (4-D tensors) get that bound
     * times conv_gain. 1 keeps PyTorch's default; sqrt(6) is He's uniform
     * bound, which keeps the activations' scale through ReLU layers in a
     * deep network without normalisation. */
    double conv_gain;

    /* Settles the options o for this architecture into t (r, fc1_gate,
     * se_placement, gate: "" for an option it does not have) and appends
     * its tensors. t arrives zeroed with t->arch set. Returns 0, or -EINVAL
     * with err for an option it refuses. */
    int (*build)(param_table *t, const model_opts *o, char *err);

    /* The network's own state for table t (one that build made): pointers
     * into the weights w and gradients g (t->total floats each, owned by
     * the caller and outliving the net) and activation workspace for B
     * samples. Returns NULL when out of memory. */
    void *(*net_new)(const param_table *t, const float *w, float *g, int B);
    void (*net_free)(void *net);        /* accepts NULL */

    /* logits (B, 10) of x (B, 28*28), B <= the net's B; keeps in the
     * workspace what backward needs. */
    void (*forward)(void *net, const float *x, float *logits, int B);

    /* From dlogits (B, 10) of the last forward pass: every parameter
     * gradient, written (acc 0) or added (acc 1). */
    void (*backward)(void *net, const float *dlogits, int B, int acc);

    /* Optional: the network cut around its widest linear layer, for
     * model_set_threads, which splits that one layer across threads by its
     * output features and every other layer by samples (model.c says why).
     * wide is the layer's name: its tensors are WIDE.weight (out, in) and
     * WIDE.bias (out), the bias right after the weight in the table; NULL
     * when the architecture has no such layer (then every layer is split
     * by samples). forward and backward must compute exactly
     *   forward_head: x (B, 28*28) -> f (B, in), the layer's input
     *   h (B, out) = f WIDE.weight^T + WIDE.bias
     *   forward_tail: h -> logits (B, 10); h is not written
     * and
     *   backward_tail: dlogits (B, 10) -> dh (B, out), the gradient at h
     *   the layer's gradients, and df (B, in) = dh WIDE.weight
     *   backward_head: df -> every gradient before the layer; df is not
     *   written
     * with the tail's and head's parameter gradients written or added per
     * acc, as backward does. f, h, dh and df are the caller's buffers; what
     * backward_tail needs of the forward pass stays in the workspace. */
    const char *wide;
    void (*forward_head)(void *net, const float *x, float *f, int B);
    void (*forward_tail)(void *net, const float *h, float *logits, int B);
    void (*backward_tail)(void *net, const float *dlogits, float *dh, int B, int acc);
    void (*backward_head)(void *net, const float *df, int B, int acc);

    /* Multiply-accumulates per sample of a forward pass of t, with or
     * without the gates (PARAM_SE). */
    long (*macs)(const param_table *t, int with_gates);

    /* The gate view (model.h: model_gates, model_macs_pruned), or NULL
     * when the architecture has none: the gates (n, C) of gate block
     * `block` (0..MODEL_SE_BLOCKS-1) from the last forward pass, NULL for
     * a block it lacks; and the MACs with removed[k] channels of block k's
     * layer pruned. */
    const float *(*gates)(const void *net, int block, int *channels);
    long (*macs_pruned)(const param_table *t, const int *removed);
} model_arch;

/* For the architectures' net_new: the workspace is one allocation of n
 * floats, 64-byte aligned (free() releases it), that a layout function
 * carves into buffers. arch_carve assigns n floats at *off of base (base
 * NULL: only counts, to size the allocation), each buffer 64-byte aligned
 * for gemm. */
float *arch_workspace(long n);
float *arch_carve(float *base, long *off, long n);

/* The architecture called name, or NULL. */
const model_arch *arch_find(const char *name);

/* Writes the registered names, comma-separated ("cnn-se, mbv2-se"), into
 * buf (n bytes, cut short if it must be), for messages. */
void arch_names(char *buf, size_t n);

#endif
