/* partition: how samples are spread over simulated clients.
 *
 * Specs (deterministic from a seed, the same on every machine):
 *   iid        shuffled, equal shares
 *   dir:ALPHA  per class, proportions over clients ~ Dir(ALPHA), redrawn until
 *              every client has >= PARTITION_MIN_SAMPLES (PFLlib's "practical")
 *   pat:K      K classes per client (PFLlib's "pathological")
 *   feat:D     IID labels; client c sees image domain c mod D (dataset.h):
 *              0 the image as it is, 1 inverted (1 - x: dark garment on a
 *              white ground), 2 rotated 90 degrees (the same pixels, other
 *              spatial features), 3 low contrast (0.3 x + 0.35: the same
 *              mean brightness, a third of the contrast). Only the input
 *              statistics differ, so re-weighting channels (SE) has
 *              something to adapt that the classifier (head) does not.
 *   feat:D+dir:ALPHA  the domains of feat:D with the labels of dir:ALPHA
 *              (feature shift and label skew at once)
 *   draw:N     each client draws N distinct samples uniformly from the whole
 *              pool, independently of the other clients, so clients' data
 *              overlap. For load and scale tests only (10,000 clients of 20
 *              samples need 200,000 samples; Fashion-MNIST has 70,000): no
 *              learning result should use it, since clients share samples.
 * Each client's samples are shuffled and split 75% train / 25% test
 * (train gets floor(0.75 n)).
 */
#ifndef SEFL_PARTITION_H
#define SEFL_PARTITION_H

#include <stdint.h>

#define PARTITION_MIN_SAMPLES 10
#define PARTITION_MAX_CLIENTS 100000
/* draw:N: at most this many sample indices over all clients (16 MB). */
#define PARTITION_MAX_DRAWN (4 * 1024 * 1024)

enum { PART_IID, PART_DIR, PART_PAT, PART_FEAT, PART_DRAW };

typedef struct {
    int kind;                   /* PART_* */
    double alpha;               /* dir; feat: 0 for IID labels, else Dir(alpha) labels */
    int k;                      /* pat: classes per client */
    int domains;                /* feat: D (1..4) */
    int draw;                   /* draw: N samples per client */
} partition_spec;

typedef struct {
    int n_clients;
    int *start;                 /* (n_clients + 1): client c's samples are idx[start[c] .. start[c+1]) */
    int *n_train;               /* (n_clients): the first n_train[c] of them are its train split */
    int *idx;                   /* (total) sample indices into the pooled dataset */
    int domains;                /* feat:D, else 1 */
} partition;

/* Parses "iid", "dir:0.1", "pat:2", "feat:4", "feat:4+dir:0.3", "draw:20".
 * Returns 0 or -EINVAL with err. */
int partition_parse(const char *s, partition_spec *out, char *err);

/* Partitions n samples with labels y (classes 0..n_classes-1) over n_clients.
 * Returns 0, or negative with err (e.g. pat:K with K > n_classes, too few
 * samples for n_clients * PARTITION_MIN_SAMPLES, draw:N with N > n, or more
 * than PARTITION_MAX_DRAWN indices in all). */
int partition_make(const partition_spec *spec, const uint8_t *y, int n, int n_classes,
                   int n_clients, uint64_t seed, partition *out, char *err);

void partition_free(partition *p); /* accepts a zeroed or freed partition */

/* Client c's train indices (n_train[c]) and test indices. */
static inline const int *partition_train(const partition *p, int c) { return p->idx + p->start[c]; }
static inline int partition_ntrain(const partition *p, int c) { return p->n_train[c]; }
static inline const int *partition_test(const partition *p, int c) { return p->idx + p->start[c] + p->n_train[c]; }
static inline int partition_ntest(const partition *p, int c) { return p->start[c + 1] - p->start[c] - p->n_train[c]; }
/* Image domain of client c (0 unless feat:D). */
static inline int partition_domain(const partition *p, int c) { return c % p->domains; }

#endif
