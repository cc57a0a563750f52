/* dataset: labelled 28x28 images as floats in [0,1], loaded from IDX files
 * (Fashion-MNIST by default), and the image domains of the feat:D partition;
 * see dataset.h.
 *
 * The label file is read first: its length n then bounds the image file to
 * exactly n * 784 bytes, so a wrong image file fails on its header.
 */
#include "common/data/dataset.h"

#include "common/data/idx.h"
#include "common/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATASET_SIDE 28
#define DATASET_PIXELS (DATASET_SIDE * DATASET_SIDE)
#define DATASET_CLASSES 10

/* dataset_load_idx, keeping the pixels as bytes (pix) when bytes != 0. */
static int dataset_load_idx_as(const char *images, const char *labels, int bytes, dataset *out,
                               char *err)
{
    idx_array li = { 0 }, ii = { 0 };
    memset(out, 0, sizeof *out);
    int rc = idx_read(labels, DATASET_MAX_SAMPLES, &li, err);
    if (rc) goto out;
    rc = -EINVAL;
    if (li.rank != 1) {
        err_set(err, "%s: a label file has rank 1, this one has rank %d", labels, li.rank);
        goto out;
    }
    int n = (int)li.count;
    for (int i = 0; i < n; i++) {
        if (li.data[i] >= DATASET_CLASSES) {
            err_set(err, "%s: label %d of sample %d is not a class 0..%d", labels,
                    li.data[i], i, DATASET_CLASSES - 1);
            goto out;
        }
    }
    rc = idx_read(images, (size_t)n * DATASET_PIXELS, &ii, err);
    if (rc == -EFBIG) {
        err_set(err, "%s: more image data than the %d labels of %s", images, n, labels);
        goto out;
    }
    if (rc) goto out;
    rc = -EINVAL;
    if (ii.rank != 3 || ii.dims[1] != DATASET_SIDE || ii.dims[2] != DATASET_SIDE) {
        err_set(err, "%s: expected images of shape (n, 28, 28)", images);
        goto out;
    }
    if (ii.dims[0] != (uint32_t)n) {
        err_set(err, "%s has %u images but %s has %d labels", images, ii.dims[0], labels, n);
        goto out;
    }

    if (bytes) {
        /* The image buffer becomes the dataset's, as the labels below. */
        out->pix = ii.data;
        ii.data = NULL;
    } else {
        out->x = malloc((size_t)n * DATASET_PIXELS * sizeof *out->x);
        if (!out->x) {
            rc = -ENOMEM;
            err_set(err, "out of memory for %d images of %s", n, images);
            goto out;
        }
        for (size_t i = 0; i < ii.count; i++) out->x[i] = ii.data[i] / 255.0f;
    }
    /* The label buffer becomes the dataset's: same bytes, same allocator. */
    out->y = li.data;
    li.data = NULL;
    out->n = n;
    rc = 0;
out:
    idx_free(&li);
    idx_free(&ii);
    if (rc) dataset_free(out);
    return rc;
}

int dataset_load_idx(const char *images, const char *labels, dataset *out, char *err)
{
    return dataset_load_idx_as(images, labels, 0, out, err);
}

static int dataset_load_fmnist_as(const char *dir, int train, int bytes, dataset *out, char *err)
{
    char images[PATH_MAX], labels[PATH_MAX];
    const char *part = train ? "train" : "t10k";
    if (!dir) dir = DATASET_DEFAULT_DIR;
    int a = snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte.gz", dir, part);
    int b = snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte.gz", dir, part);
    if (a < 0 || b < 0 || (size_t)a >= sizeof images || (size_t)b >= sizeof labels) {
        memset(out, 0, sizeof *out);
        err_set(err, "dataset directory name too long");
        return -ENAMETOOLONG;
    }
    return dataset_load_idx_as(images, labels, bytes, out, err);
}

int dataset_load_fmnist(const char *dir, int train, dataset *out, char *err)
{
    return dataset_load_fmnist_as(dir, train, 0, out, err);
}

/* Train and test of dir, concatenated, as floats or (bytes) as bytes. */
static int dataset_load_all_as(const char *dir, int bytes, dataset *out, char *err)
{
    dataset tr = { 0 }, te = { 0 };
    memset(out, 0, sizeof *out);
    int rc = dataset_load_fmnist_as(dir, 1, bytes, &tr, err);
    if (rc) goto out;
    rc = dataset_load_fmnist_as(dir, 0, bytes, &te, err);
    if (rc) goto out;
    if (tr.n > DATASET_MAX_SAMPLES - te.n) {
        rc = -EFBIG;
        err_set(err, "train and test together exceed %d samples", DATASET_MAX_SAMPLES);
        goto out;
    }
    /* Growing train's buffers in place (large blocks move by remapping, not
     * copying) and appending test costs one copy of the smaller part. */
    int n = tr.n + te.n;
    /* One of x and pix is set: the other stays NULL (realloc(NULL, 0) is
     * not asked for: size 0 only when that buffer is unused). */
    const size_t esz = bytes ? 1 : sizeof(float), img = DATASET_PIXELS * esz;
    void *x = realloc(bytes ? (void *)tr.pix : (void *)tr.x, (size_t)n * img);
    if (x && bytes) tr.pix = x;
    else if (x) tr.x = x;
    uint8_t *y = realloc(tr.y, (size_t)n);
    if (y) tr.y = y;
    if (!x || !y) {
        rc = -ENOMEM;
        err_set(err, "out of memory for %d samples", n);
        goto out;
    }
    memcpy((uint8_t *)x + (size_t)tr.n * img, bytes ? (void *)te.pix : (void *)te.x,
           (size_t)te.n * img);
    memcpy(tr.y + tr.n, te.y, (size_t)te.n);
    tr.n = n;
    *out = tr;
    memset(&tr, 0, sizeof tr);
out:
    dataset_free(&tr);
    dataset_free(&te);
    return rc;
}

int dataset_load_fmnist_all(const char *dir, dataset *out, char *err)
{
    return dataset_load_all_as(dir, 0, out, err);
}

int dataset_load_fmnist_pool(const char *dir, dataset *out, char *err)
{
    return dataset_load_all_as(dir, 1, out, err);
}

void dataset_free(dataset *d)
{
    if (!d) return;
    free(d->x);
    free(d->pix);
    free(d->y);
    memset(d, 0, sizeof *d);
}

/* Rotates one (28, 28) image by 90 degrees counter-clockwise: the top row
 * becomes the left column, read from the bottom up. */
static void rotate90(float *img)
{
    float t[DATASET_PIXELS];    /* (28, 28) */
    memcpy(t, img, sizeof t);
    for (int r = 0; r < DATASET_SIDE; r++)
        for (int c = 0; c < DATASET_SIDE; c++)
            img[r * DATASET_SIDE + c] = t[c * DATASET_SIDE + (DATASET_SIDE - 1 - r)];
}

void dataset_apply_domain(float *x, int n, int domain)
{
    size_t total = (size_t)n * DATASET_PIXELS;
    switch (domain) {
    case 1:
        for (size_t i = 0; i < total; i++) x[i] = 1.0f - x[i];
        break;
    case 2:
        for (int i = 0; i < n; i++) rotate90(x + (size_t)i * DATASET_PIXELS);
        break;
    case 3:
        /* Squeezes [0,1] into [0.35,0.65]: same mean brightness, a third of the contrast. */
        for (size_t i = 0; i < total; i++) x[i] = 0.3f * x[i] + 0.35f;
        break;
    default:
        /* Domain 0 is the identity; partition_domain never yields more than 3. */
        break;
    }
}

void dataset_gather(const uint8_t *pix, const uint8_t *labels, const int *idx, int n, int domain,
                    float *x, uint8_t *y)
{
    for (int i = 0; i < n; i++) {
        const uint8_t *p = pix + (size_t)idx[i] * DATASET_PIXELS;
        float *o = x + (size_t)i * DATASET_PIXELS;
        for (int k = 0; k < DATASET_PIXELS; k++) o[k] = p[k] / 255.0f;
        y[i] = labels[idx[i]];
    }
    dataset_apply_domain(x, n, domain);
}
