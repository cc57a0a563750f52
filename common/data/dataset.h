/* dataset: labelled 28x28 images as floats, and Fashion-MNIST loading.
 *
 * Images are (n, 784) floats in [0,1] (pixel / 255), labels (n) in 0..9.
 */
#ifndef SEFL_DATASET_H
#define SEFL_DATASET_H

#include <stdint.h>

#define DATASET_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"
#define DATASET_MAX_SAMPLES 1000000

typedef struct {
    int n;
    float *x;                   /* (n, 784) */
    uint8_t *y;                 /* (n) */
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

void dataset_free(dataset *d);  /* accepts a zeroed or freed dataset */

/* feat:D image domains: 0 identity, 1 inverted, 2 rotated 90, 3 low contrast.
 * Transforms the n images of x (n, 784) in place. */
void dataset_apply_domain(float *x, int n, int domain);

#endif
