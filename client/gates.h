/* gates: what a client's SE gates do on its own test images (sefl-eval
 * --gates), and how alike two clients' gates are.
 *
 * For one personalized model (the global model with a client's private
 * tensors) over a client's test images, per SE block and channel: the mean
 * and spread of the gate, its largest value, and whether it stays below a
 * threshold on every image. Such channels contribute almost nothing, so they
 * can be pruned: the layer that makes the channel loses that output, its SE
 * block and the next layer lose that input. gates_measure does exactly that
 * to a copy of the parameters (zeroing the channel's filter or row and its
 * bias, so the channel is exactly zero after the ReLU, as if absent) and
 * measures test accuracy with and without the pruning, and the
 * multiply-accumulates per sample saved (model_macs_pruned).
 *
 * Across clients, gates_similarity compares the vectors of per-channel mean
 * gates (every block's channels in a row) of each pair of clients by cosine
 * similarity, split by whether the pair shares its classes (and image
 * domain): if private gates specialise to the data, pairs with the same
 * classes should be more alike than pairs with none in common.
 */
#ifndef SEFL_GATES_H
#define SEFL_GATES_H

#include <stdint.h>
#include <stdio.h>

#include "client/trainer.h"
#include "common/nn/model.h"

#define GATES_DEFAULT_THRESHOLD 0.05
/* A class is one of a client's classes when it makes up at least this
 * share of the client's train split (pat:K gives each of its K classes
 * about 1/K; dir:ALPHA many classes a handful of samples). */
#define GATES_CLASS_SHARE 0.05
/* Channels over every block: 32 + 64 + 512. */
#define GATES_MAX_CHANNELS 608

typedef struct {
    int channels;               /* C; 0 when the model lacks this block */
    double *mean;               /* (C) mean gate over the test images */
    double *std;                /* (C) population standard deviation over them */
    double *max;                /* (C) largest gate on any test image */
    unsigned char *pruned;      /* (C) 1 when max < threshold */
    int n_pruned;
} gates_block;

typedef struct {
    gates_block b[MODEL_SE_BLOCKS];
    double threshold;
    long images;                /* test images measured */
    long macs, macs_pruned;     /* per sample, with the SE gates: unpruned, pruned */
    double accuracy, accuracy_pruned;
} gates_stats;

/* Measures the model with parameters w (t->total floats, not changed) over
 * the test images x/y selected by d's test indices: the statistics above
 * with threshold in (0, 1). Fills out (freed with gates_stats_free, also
 * on failure). Returns 0, or negative with err (-EINVAL no test images or a
 * bad threshold, -ENOMEM). */
int gates_measure(const param_table *t, const float *w, const trainer_data *d, double threshold,
                  gates_stats *out, char *err);
void gates_stats_free(gates_stats *s);    /* accepts a zeroed or freed one */

/* Zeroes in w (t->total) the weights and bias that produce channel ch of SE
 * block `block`'s layer (conv1, conv2 or fc1), which prunes it. */
void gates_prune_channel(const param_table *t, float *w, int block, int ch);

/* Writes the per-channel mean gates of s, block after block, into v
 * (GATES_MAX_CHANNELS); returns how many were written. */
int gates_mean_vector(const gates_stats *s, double *v);

/* A client's classes: bit k set when class k makes up at least
 * GATES_CLASS_SHARE of the n labels y[idx[i]] (idx NULL: y[0..n)). */
unsigned gates_classes(const uint8_t *y, const int *idx, int n);

/* Cosine similarity of pairs of clients' mean-gate vectors. */
typedef struct {
    int pairs;
    double cosine;              /* mean over the pairs; NAN without pairs */
    double centered;            /* the same after subtracting each channel's mean over clients */
} gates_pairs;

typedef struct {
    gates_pairs same;           /* the same classes and image domain */
    gates_pairs overlap;        /* some classes in common, or the same classes in another domain */
    gates_pairs disjoint;       /* no class in common */
} gates_similarity_out;

/* Compares the n vectors v[i] (dim each) of clients with class sets
 * classes[i] and image domains domain[i]. Returns 0 or -ENOMEM. */
int gates_similarity(const double *const *v, int dim, const unsigned *classes, const int *domain,
                     int n, gates_similarity_out *out);

/* Prints the per-channel table of s for client name: one line per channel
 * "name block channel mean std max pruned". Returns 0 or -EIO. */
int gates_print_channels(FILE *f, const char *name, const gates_stats *s);

#endif
