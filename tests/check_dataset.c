/* check_dataset: loading labelled images from generated IDX files (and the
 * real Fashion-MNIST when installed), the checks that refuse inconsistent
 * files, and the feat:D image domains. */
#include "common/data/dataset.h"
#include "common/log.h"
#include "tests/check_main.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char tmpdir[64];

static const char *tmp_path(char *buf, const char *name)
{
    snprintf(buf, 256, "%s/%s", tmpdir, name);
    return buf;
}

/* Writes a gzip IDX file with the given dims and data. */
static void write_idx_gz(const char *path, int rank, const uint32_t *dims, const uint8_t *data, size_t n)
{
    gzFile g = gzopen(path, "wb");
    ck_assert_ptr_nonnull(g);
    uint8_t head[4] = { 0, 0, 8, (uint8_t)rank };
    ck_assert_int_eq(gzwrite(g, head, 4), 4);
    for (int i = 0; i < rank; i++) {
        uint8_t d[4] = { dims[i] >> 24, dims[i] >> 16, dims[i] >> 8, dims[i] };
        ck_assert_int_eq(gzwrite(g, d, 4), 4);
    }
    if (n) ck_assert_int_eq(gzwrite(g, data, (unsigned)n), (int)n);
    ck_assert_int_eq(gzclose(g), Z_OK);
}

/* Writes n images (pixel i of image s = (s * 784 + i) % 256) and the given
 * labels under names derived from tag. */
static void write_set(const char *tag, int n_images, uint32_t side2, int n_labels, const uint8_t *labels,
                      char *images, char *labelpath)
{
    char name[64];
    snprintf(name, sizeof name, "%s-images.gz", tag);
    tmp_path(images, name);
    snprintf(name, sizeof name, "%s-labels.gz", tag);
    tmp_path(labelpath, name);
    size_t np = (size_t)n_images * 28 * side2;
    uint8_t *px = malloc(np + 1);
    for (size_t i = 0; i < np; i++) px[i] = (uint8_t)(i % 256);
    uint32_t idims[3] = { (uint32_t)n_images, 28, side2 }, ldims[1] = { (uint32_t)n_labels };
    write_idx_gz(images, 3, idims, px, np);
    write_idx_gz(labelpath, 1, ldims, labels, (size_t)n_labels);
    free(px);
}

static void expect_refused(const char *images, const char *labels, const char *want)
{
    dataset d;
    char err[SEFL_ERRLEN] = "";
    ck_assert_int_lt(dataset_load_idx(images, labels, &d, err), 0);
    ck_assert_msg(strstr(err, want), "error '%s' lacks '%s'", err, want);
    ck_assert_ptr_null(d.x);
    ck_assert_ptr_null(d.y);
    ck_assert_int_eq(d.n, 0);
}

START_TEST(test_load_small)
{
    char im[256], lb[256], err[SEFL_ERRLEN] = "";
    uint8_t labels[5] = { 0, 9, 3, 3, 7 };
    write_set("good", 5, 28, 5, labels, im, lb);
    dataset d;
    ck_assert_msg(dataset_load_idx(im, lb, &d, err) == 0, "%s", err);
    ck_assert_int_eq(d.n, 5);
    ck_assert_mem_eq(d.y, labels, 5);
    for (size_t i = 0; i < 5 * 784; i++)
        ck_assert_float_eq_tol(d.x[i], (float)(i % 256) / 255.0f, 1e-7f);
    ck_assert_float_eq(d.x[255], 1.0f);
    ck_assert_float_eq(d.x[256], 0.0f);
    dataset_free(&d);
    ck_assert_ptr_null(d.x);
    dataset_free(&d);
    dataset_free(NULL);
}
END_TEST

START_TEST(test_label_out_of_range)
{
    char im[256], lb[256];
    uint8_t labels[4] = { 0, 1, 10, 2 };
    write_set("lab10", 4, 28, 4, labels, im, lb);
    expect_refused(im, lb, "label 10 of sample 2");
    labels[2] = 255;
    write_set("lab255", 4, 28, 4, labels, im, lb);
    expect_refused(im, lb, "label 255");
}
END_TEST

START_TEST(test_count_mismatch)
{
    char im[256], lb[256];
    uint8_t labels[6] = { 0 };
    /* Fewer images than labels: the image file's header disagrees. */
    write_set("fewer", 5, 28, 6, labels, im, lb);
    expect_refused(im, lb, "has 5 images but");
    /* More images than labels: refused by the size bound, before reading. */
    write_set("more", 6, 28, 5, labels, im, lb);
    expect_refused(im, lb, "more image data than the 5 labels");
}
END_TEST

START_TEST(test_wrong_shape)
{
    char im[256], lb[256];
    uint8_t labels[3] = { 0 };
    write_set("narrow", 3, 27, 3, labels, im, lb);
    expect_refused(im, lb, "expected images of shape (n, 28, 28)");
    /* A label file of rank 2. */
    char lb2[256];
    uint32_t dims[2] = { 3, 1 };
    write_idx_gz(tmp_path(lb2, "rank2-labels.gz"), 2, dims, labels, 3);
    write_set("ok", 3, 28, 3, labels, im, lb);
    expect_refused(im, lb2, "has rank 2");
}
END_TEST

START_TEST(test_missing_dir)
{
    dataset d;
    char err[SEFL_ERRLEN] = "";
    ck_assert_int_eq(dataset_load_fmnist("/nonexistent/fm", 1, &d, err), -ENOENT);
    ck_assert_msg(strstr(err, "/nonexistent/fm/train-labels-idx1-ubyte.gz: cannot open"), "%s", err);
    ck_assert_int_eq(dataset_load_fmnist_all("/nonexistent/fm", &d, err), -ENOENT);
    ck_assert_ptr_null(d.x);
}
END_TEST

/* Fashion-MNIST from a fake directory: tiny train and test files under the
 * real names, to check the paths and the train-then-test concatenation. */
START_TEST(test_fmnist_names_and_concat)
{
    char p[256];
    uint8_t ltr[3] = { 1, 2, 3 }, lte[2] = { 8, 9 };
    uint8_t *px = calloc(3 * 784, 1);
    uint32_t d3[3] = { 3, 28, 28 }, d1[1] = { 3 };
    px[0] = 255;
    write_idx_gz(tmp_path(p, "train-images-idx3-ubyte.gz"), 3, d3, px, 3 * 784);
    write_idx_gz(tmp_path(p, "train-labels-idx1-ubyte.gz"), 1, d1, ltr, 3);
    d3[0] = d1[0] = 2;
    px[0] = 0;
    px[784 + 5] = 51;
    write_idx_gz(tmp_path(p, "t10k-images-idx3-ubyte.gz"), 3, d3, px, 2 * 784);
    write_idx_gz(tmp_path(p, "t10k-labels-idx1-ubyte.gz"), 1, d1, lte, 2);
    free(px);

    dataset d;
    char err[SEFL_ERRLEN] = "";
    ck_assert_msg(dataset_load_fmnist(tmpdir, 0, &d, err) == 0, "%s", err);
    ck_assert_int_eq(d.n, 2);
    dataset_free(&d);
    ck_assert_msg(dataset_load_fmnist_all(tmpdir, &d, err) == 0, "%s", err);
    ck_assert_int_eq(d.n, 5);
    uint8_t want[5] = { 1, 2, 3, 8, 9 };
    ck_assert_mem_eq(d.y, want, 5);
    ck_assert_float_eq(d.x[0], 1.0f);
    ck_assert_float_eq_tol(d.x[4 * 784 + 5], 0.2f, 1e-7f);
    ck_assert_ptr_null(d.pix);
    /* The pool keeps bytes: the same samples, train then test, no floats;
     * gathered in every image domain they are the float pool's floats, bit
     * for bit, with their labels. */
    dataset b;
    ck_assert_msg(dataset_load_fmnist_pool(tmpdir, &b, err) == 0, "%s", err);
    ck_assert_int_eq(b.n, 5);
    ck_assert_ptr_null(b.x);
    ck_assert_ptr_nonnull(b.pix);
    ck_assert_mem_eq(b.y, want, 5);
    ck_assert_uint_eq(b.pix[0], 255);
    ck_assert_uint_eq(b.pix[4 * 784 + 5], 51);
    const int idx[3] = { 4, 0, 2 };
    float *g = malloc(3 * 784 * sizeof *g), *f = malloc(3 * 784 * sizeof *f);
    uint8_t gy[3];
    ck_assert(g && f);
    for (int domain = 0; domain < 4; domain++) {
        for (int i = 0; i < 3; i++) memcpy(f + i * 784, d.x + idx[i] * 784, 784 * sizeof *f);
        dataset_apply_domain(f, 3, domain);
        dataset_gather(b.pix, b.y, idx, 3, domain, g, gy);
        ck_assert_mem_eq(g, f, 3 * 784 * sizeof *g);
        ck_assert_uint_eq(gy[0], 9);
        ck_assert_uint_eq(gy[1], 1);
        ck_assert_uint_eq(gy[2], 3);
    }
    free(g);
    free(f);
    dataset_free(&b);
    dataset_free(&d);
}
END_TEST

START_TEST(test_domains)
{
    /* Two images with distinct pixel values, to follow each pixel. */
    float *x = malloc(2 * 784 * sizeof *x), *orig = malloc(2 * 784 * sizeof *x);
    for (int i = 0; i < 2 * 784; i++) orig[i] = (float)i / (2 * 784);
    memcpy(x, orig, 2 * 784 * sizeof *x);

    dataset_apply_domain(x, 2, 0);
    ck_assert_mem_eq(x, orig, 2 * 784 * sizeof *x);

    dataset_apply_domain(x, 2, 1);
    for (int i = 0; i < 2 * 784; i++) ck_assert_float_eq_tol(x[i], 1.0f - orig[i], 1e-6f);

    memcpy(x, orig, 2 * 784 * sizeof *x);
    dataset_apply_domain(x, 2, 3);
    for (int i = 0; i < 2 * 784; i++) ck_assert_float_eq_tol(x[i], 0.3f * orig[i] + 0.35f, 1e-6f);

    /* Counter-clockwise: the top-right pixel goes to the top-left, the
     * top-left to the bottom-left; four turns are the identity. */
    memcpy(x, orig, 2 * 784 * sizeof *x);
    dataset_apply_domain(x, 2, 2);
    for (int s = 0; s < 2; s++) {
        const float *o = orig + s * 784, *r = x + s * 784;
        ck_assert_float_eq(r[0], o[27]);
        ck_assert_float_eq(r[27 * 28], o[0]);
        for (int i = 0; i < 28; i++)
            for (int j = 0; j < 28; j++) ck_assert_float_eq(r[i * 28 + j], o[j * 28 + 27 - i]);
    }
    for (int t = 0; t < 3; t++) dataset_apply_domain(x, 2, 2);
    ck_assert_mem_eq(x, orig, 2 * 784 * sizeof *x);
    free(x);
    free(orig);
}
END_TEST

static int real_present(void)
{
    return access(DATASET_DEFAULT_DIR "/train-images-idx3-ubyte.gz", R_OK) == 0 &&
           access(DATASET_DEFAULT_DIR "/t10k-images-idx3-ubyte.gz", R_OK) == 0;
}

static void count_classes(const uint8_t *y, int n, int *counts)
{
    memset(counts, 0, 10 * sizeof *counts);
    for (int i = 0; i < n; i++) counts[y[i]]++;
}

START_TEST(test_real_fmnist)
{
    if (!real_present()) {
        printf("check_dataset: %s not installed, real Fashion-MNIST test skipped "
               "(make deps installs dataset-fashion-mnist)\n", DATASET_DEFAULT_DIR);
        fflush(stdout);
        return;
    }
    dataset tr, all;
    char err[SEFL_ERRLEN] = "";
    int counts[10];
    ck_assert_msg(dataset_load_fmnist(NULL, 1, &tr, err) == 0, "%s", err);
    ck_assert_int_eq(tr.n, 60000);
    count_classes(tr.y, tr.n, counts);
    for (int k = 0; k < 10; k++) ck_assert_int_eq(counts[k], 6000);
    float lo = 1, hi = 0;
    for (size_t i = 0; i < (size_t)tr.n * 784; i++) {
        if (tr.x[i] < lo) lo = tr.x[i];
        if (tr.x[i] > hi) hi = tr.x[i];
    }
    ck_assert_float_eq(lo, 0.0f);
    ck_assert_float_eq(hi, 1.0f);

    ck_assert_msg(dataset_load_fmnist_all(NULL, &all, err) == 0, "%s", err);
    ck_assert_int_eq(all.n, 70000);
    ck_assert_mem_eq(all.y, tr.y, 60000);
    ck_assert_mem_eq(all.x, tr.x, (size_t)60000 * 784 * sizeof *all.x);
    count_classes(all.y + 60000, 10000, counts);
    for (int k = 0; k < 10; k++) ck_assert_int_eq(counts[k], 1000);
    dataset_free(&tr);
    dataset_free(&all);
}
END_TEST

int main(void)
{
    check_mkdtemp(tmpdir, sizeof tmpdir, "/tmp/check_dataset.XXXXXX");
    Suite *s = suite_create("dataset");
    TCase *tc = tcase_create("dataset");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_load_small);
    tcase_add_test(tc, test_label_out_of_range);
    tcase_add_test(tc, test_count_mismatch);
    tcase_add_test(tc, test_wrong_shape);
    tcase_add_test(tc, test_missing_dir);
    tcase_add_test(tc, test_fmnist_names_and_concat);
    tcase_add_test(tc, test_domains);
    tcase_add_test(tc, test_real_fmnist);
    suite_add_tcase(s, tc);
    int status = check_run(s);
    check_rm_rf(tmpdir);
    return status;
}
