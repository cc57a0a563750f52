/* dataset: labelled 28x28 images as floats, and Fashion-MNIST loading.
 *
 * Images are (n, 784) floats in [0,1] (pixel / 255), labels (n) in 0..9.
 * The pool of a simulation (dataset_load_fmnist_pool) keeps the pixels as
 * the bytes they are in the files instead, a quarter of the memory, and a
 * trainer turns one client's samples into floats when it trains or
 * evaluates that client (dataset_gather): the same floats, bit for bit.
 */
#ifndef SEFL_DATASET_H
#define SEFL_DATASET_H

#include <stdint.h>

#define DATASET_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define DATASET_MAX_SAMPLES 1000000

typedef struct {
    int n;
    float *x;                   /* (n, 784), or NULL when the pixels are bytes */
    uint8_t *y;                 /* (n) */
    uint8_t *pix;               /* (n, 784) raw pixels (dataset_load_fmnist_pool), or NULL */
} dataset;

/* Loads an image IDX file (n, 28, 28) and a label IDX file (n) into out;
 * checks they agree on n and labels are < 10. Returns 0 or negative with err. */
int dataset_load_idx(const char *images, const char *labels, dataset *out, char *err);

/* Loads Fashion-MNIST from dir (NULL: DATASET_DEFAULT_DIR): train (60,000)
 * when train != 0, else test (10,000). */
int dataset_load_fmnist(const char *dir, int train, dataset *out, char *err);

/* Loads train and test of dir and concatenates them (70,000 samples, train
 * first), the pool that partitions are drawn from, as PFLlib does. */
int dataset_load_fmnist_all(const char *dir, dataset *out, char *err);

/* The same 70,000 samples with the pixels as bytes (pix set, x NULL). */
int dataset_load_fmnist_pool(const char *dir, dataset *out, char *err);

/* x (n, 784) = the samples idx[0..n) of pix (raw bytes) as floats in
 * [0,1], in image domain `domain` (dataset_apply_domain), and y (n) their
 * labels from labels: exactly the floats a float dataset would hold. */
void dataset_gather(const uint8_t *pix, const uint8_t *labels, const int *idx, int n, int domain,
                    float *x, uint8_t *y);

void dataset_free(dataset *d);  /* accepts a zeroed or freed dataset */

/* feat:D image domains: 0 identity, 1 inverted, 2 rotated 90, 3 low contrast.
 * Transforms the n images of x (n, 784) in place. */
void dataset_apply_domain(float *x, int n, int domain);

#endif
