/* check_gates: the SE gate view and the newcomer adaptation behind
 * sefl-eval --gates and --newcomers. model_gates against gates computed by
 * hand, pruned multiply-accumulates against the layer shapes, gate
 * statistics over several workspace chunks against one-image passes,
 * pruning that is exact for a closed gate and real for an open one, class
 * sets and the pair similarity on known vectors, and private-only training
 * that leaves every shared tensor bit for bit where it was. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "client/gates.h"
#include "client/newcomer.h"
#include "common/log.h"
#include "common/nn/layers.h"
#include "common/nn/model.h"
#include "common/rng.h"
#include "tests/check_main.h"

static param_table table(int r, int gate)
{
    param_table t;
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(params_build(&t, &(model_opts){ .arch = "cnn-se", .r = r, .fc1_gate = gate }, err), 0);
    return t;
}

static float *tensor(const param_table *t, float *w, const char *name)
{
    const param_info *p = params_find(t, name);
    ck_assert_ptr_nonnull(p);
    return w + p->offset;
}

/* n random images (n, 784) and labels. */
static void random_data(uint64_t seed, int n, float **x, uint8_t **y)
{
    rng r;
    rng_seed(&r, seed);
    *x = malloc((size_t)n * MODEL_PIXELS * sizeof **x);
    *y = malloc((size_t)n);
    ck_assert(*x && *y);
    for (long i = 0; i < (long)n * MODEL_PIXELS; i++) (*x)[i] = (float)rng_uniform(&r);
    for (int i = 0; i < n; i++) (*y)[i] = (uint8_t)rng_below(&r, MODEL_CLASSES);
}

/* With every se*.fc2.weight zero, each gate is gate_of (layers.h) of its output bias
 * whatever the image: model_gates must return exactly that for every row. */
START_TEST(test_model_gates)
{
    param_table t = table(8, 1);
    model *m = model_new(&t, 8);
    ck_assert_ptr_nonnull(m);
    model_init(m, 3);
    float *w = model_params(m);
    const char *blocks[3] = { "se1", "se2", "se3" };
    const int width[3] = { 32, 64, 512 };
    for (int k = 0; k < 3; k++) {
        char name[PARAM_NAME_MAX];
        snprintf(name, sizeof name, "%s.fc2.weight", blocks[k]);
        memset(tensor(&t, w, name), 0, params_find(&t, name)->size * sizeof *w);
        snprintf(name, sizeof name, "%s.fc2.bias", blocks[k]);
        float *b = tensor(&t, w, name);
        for (int c = 0; c < width[k]; c++) b[c] = (float)(c % 7) - 3.0f;
    }
    float *x;
    uint8_t *y;
    random_data(1, 5, &x, &y);
    model_forward(m, x, y, 5, NULL);
    for (int k = 0; k < 3; k++) {
        int C = 0;
        const float *e = model_gates(m, k, &C);
        ck_assert_ptr_nonnull(e);
        ck_assert_int_eq(C, width[k]);
        for (int b = 0; b < 5; b++)
            for (int c = 0; c < C; c++)
                ck_assert_float_eq_tol(e[b * C + c], gate_of((float)(c % 7) - 3.0f), 1e-7f);
    }
    int C = -1;
    ck_assert_ptr_null(model_gates(m, 3, &C));
    ck_assert_ptr_null(model_gates(m, -1, &C));
    model_free(m);
    param_table ng = table(8, 0);
    model *n = model_new(&ng, 4);
    ck_assert_ptr_null(model_gates(n, 2, &C));
    ck_assert_ptr_nonnull(model_gates(n, 1, &C));
    model_free(n);
    free(x);
    free(y);
}
END_TEST

/* Removing a channel removes the multiplies that make it, that its SE
 * block spends on it, and that the next layer spends reading it. */
START_TEST(test_macs_pruned)
{
    param_table t = table(8, 1);
    const int none[3] = { 0, 0, 0 }, c1[3] = { 1, 0, 0 }, c2[3] = { 0, 1, 0 }, f[3] = { 0, 0, 1 };
    const long full = model_macs(&t, 1);
    ck_assert_int_eq(model_macs_pruned(&t, none), full);
    /* conv1 channel: its 5x5 filter at 24x24, conv2's 64 filters' 5x5 slice
     * at 8x8, se1's 4 hidden units in and out, and its 24x24 scaling. */
    ck_assert_int_eq(full - model_macs_pruned(&t, c1), 25 * 576 + 64 * 25 * 64 + 2 * 4 + 576);
    /* conv2 channel: 32x5x5 at 8x8, fc1's 512 rows read its 4x4 pooled
     * outputs, se2 (8 hidden) and its 8x8 scaling. */
    ck_assert_int_eq(full - model_macs_pruned(&t, c2), 800 * 64 + 16 * 512 + 2 * 8 + 64);
    /* fc1 feature: one row of 1024, fc's 10 weights, se3 (64 hidden), 1 scaling. */
    ck_assert_int_eq(full - model_macs_pruned(&t, f), 1024 + 10 + 2 * 64 + 1);
    /* Several at once: the multiplies between two removed channels (conv2's
     * from a removed conv1 channel to a removed conv2 one, fc1's from a
     * removed conv2 channel to a removed feature) are saved only once. */
    const int all[3] = { 2, 3, 4 };
    const long s1 = full - model_macs_pruned(&t, c1), s2 = full - model_macs_pruned(&t, c2),
               s3 = full - model_macs_pruned(&t, f);
    ck_assert_int_eq(full - model_macs_pruned(&t, all),
                     2 * s1 + 3 * s2 + 4 * s3 - 2 * 3 * 25 * 64 - 3 * 4 * 16);
}
END_TEST

/* n samples of one split: indices 0..n-1 into x/y, train and test alike. */
static trainer_data split(const float *x, const uint8_t *y, int n)
{
    return (trainer_data){ x, y, NULL, n, x, y, NULL, n, NULL, 0 };
}

/* Statistics over 70 images (three workspace chunks) against gates read
 * one image at a time; the threshold is applied to the largest gate. */
START_TEST(test_measure_stats)
{
    param_table t = table(8, 1);
    model *m = model_new(&t, 1);
    ck_assert_ptr_nonnull(m);
    model_init(m, 5);
    const int n = 70;
    float *x;
    uint8_t *y;
    random_data(2, n, &x, &y);
    trainer_data d = split(x, y, n);
    gates_stats gs;
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(gates_measure(&t, model_params(m), &d, 0.5, &gs, err), 0);
    ck_assert_int_eq(gs.images, n);
    for (int k = 0; k < MODEL_SE_BLOCKS; k++) {
        int C = 0;
        ck_assert_ptr_nonnull(model_gates(m, k, &C));
        ck_assert_int_eq(gs.b[k].channels, C);
        double *sum = calloc((size_t)C, sizeof *sum), *sq = calloc((size_t)C, sizeof *sq);
        double *mx = calloc((size_t)C, sizeof *mx);
        ck_assert(sum && sq && mx);
        for (int i = 0; i < n; i++) {
            model_forward(m, x + (long)i * MODEL_PIXELS, y + i, 1, NULL);
            const float *e = model_gates(m, k, &C);
            for (int c = 0; c < C; c++) {
                sum[c] += e[c];
                sq[c] += (double)e[c] * e[c];
                if (e[c] > mx[c]) mx[c] = e[c];
            }
        }
        int pruned = 0;
        for (int c = 0; c < C; c++) {
            const double mean = sum[c] / n;
            ck_assert_double_eq_tol(gs.b[k].mean[c], mean, 1e-6);
            ck_assert_double_eq_tol(gs.b[k].std[c], sqrt(fmax(sq[c] / n - mean * mean, 0)), 1e-4);
            ck_assert_double_eq_tol(gs.b[k].max[c], mx[c], 1e-6);
            ck_assert_int_eq(gs.b[k].pruned[c], mx[c] < 0.5);
            pruned += mx[c] < 0.5;
        }
        ck_assert_int_eq(gs.b[k].n_pruned, pruned);
        free(sum);
        free(sq);
        free(mx);
    }
    gates_stats_free(&gs);
    gates_stats_free(&gs);   /* a freed one is zeroed: freeing again is fine */
    model_free(m);
    free(x);
    free(y);
}
END_TEST

/* Channel 5 of conv2 and feature 7 of fc1 with their gates shut (zero
 * weights into and out of the excitation for them, output bias -100, so
 * the gate is exactly 0): both are found, pruning them costs no accuracy
 * and no logit moves, and the MACs saved are those of model_macs_pruned. */
START_TEST(test_measure_prunes_closed_gates)
{
    param_table t = table(8, 1);
    model *m = model_new(&t, 64);
    ck_assert_ptr_nonnull(m);
    model_init(m, 7);
    float *w = model_params(m);
    struct { const char *se; int C, R, ch; } shut[2] = { { "se2", 64, 8, 5 }, { "se3", 512, 64, 7 } };
    for (int i = 0; i < 2; i++) {
        char name[PARAM_NAME_MAX];
        snprintf(name, sizeof name, "%s.fc1.weight", shut[i].se);   /* (R, C) */
        float *w1 = tensor(&t, w, name);
        for (int r = 0; r < shut[i].R; r++) w1[r * shut[i].C + shut[i].ch] = 0;
        snprintf(name, sizeof name, "%s.fc2.weight", shut[i].se);   /* (C, R) */
        memset(tensor(&t, w, name) + shut[i].ch * shut[i].R, 0, shut[i].R * sizeof *w);
        snprintf(name, sizeof name, "%s.fc2.bias", shut[i].se);
        tensor(&t, w, name)[shut[i].ch] = -100.0f;
    }
    const int n = 40;
    float *x;
    uint8_t *y;
    random_data(3, n, &x, &y);
    trainer_data d = split(x, y, n);
    gates_stats gs;
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(gates_measure(&t, w, &d, GATES_DEFAULT_THRESHOLD, &gs, err), 0);
    ck_assert_int_eq(gs.b[0].n_pruned, 0);
    ck_assert_int_eq(gs.b[1].n_pruned, 1);
    ck_assert_int_eq(gs.b[1].pruned[5], 1);
    ck_assert_int_eq(gs.b[2].n_pruned, 1);
    ck_assert_int_eq(gs.b[2].pruned[7], 1);
    ck_assert_double_eq(gs.b[1].max[5], 0.0);
    ck_assert_double_eq(gs.accuracy, gs.accuracy_pruned);
    const int removed[3] = { 0, 1, 1 };
    ck_assert_int_eq(gs.macs, model_macs(&t, 1));
    ck_assert_int_eq(gs.macs_pruned, model_macs_pruned(&t, removed));
    gates_stats_free(&gs);

    /* The same pruning by hand leaves the logits exactly as they were. */
    float *before = malloc(n * MODEL_CLASSES * sizeof *before);
    float *after = malloc(n * MODEL_CLASSES * sizeof *after);
    model_forward(m, x, y, n, before);
    gates_prune_channel(&t, w, 1, 5);
    gates_prune_channel(&t, w, 2, 7);
    model_forward(m, x, y, n, after);
    ck_assert_int_eq(memcmp(before, after, n * MODEL_CLASSES * sizeof *before), 0);
    /* An open gate's channel pruned does move the logits. */
    gates_prune_channel(&t, w, 1, 6);
    model_forward(m, x, y, n, after);
    ck_assert_int_ne(memcmp(before, after, n * MODEL_CLASSES * sizeof *before), 0);
    free(before);
    free(after);
    model_free(m);
    free(x);
    free(y);
}
END_TEST

/* Pruning zeroes the channel's row of weights and its bias, nothing else. */
START_TEST(test_prune_channel)
{
    param_table t = table(8, 1);
    float *w = malloc(t.total * sizeof *w);
    for (size_t i = 0; i < t.total; i++) w[i] = 1.0f;
    gates_prune_channel(&t, w, 0, 3);
    size_t zero = 0;
    for (size_t i = 0; i < t.total; i++) zero += w[i] == 0.0f;
    ck_assert_uint_eq(zero, 25 + 1);
    const float *cw = tensor(&t, w, "conv1.weight");
    for (int k = 0; k < 25; k++) ck_assert_float_eq(cw[3 * 25 + k], 0.0f);
    ck_assert_float_eq(tensor(&t, w, "conv1.bias")[3], 0.0f);
    gates_prune_channel(&t, w, 2, 511);
    ck_assert_float_eq(tensor(&t, w, "fc1.weight")[511 * 1024 + 1023], 0.0f);
    ck_assert_float_eq(tensor(&t, w, "fc1.weight")[510 * 1024 + 1023], 1.0f);
    ck_assert_float_eq(tensor(&t, w, "fc1.bias")[511], 0.0f);
    free(w);
}
END_TEST

START_TEST(test_measure_rejects)
{
    param_table t = table(8, 1);
    float *w = calloc(t.total, sizeof *w);
    float x[MODEL_PIXELS] = { 0 };
    uint8_t y[1] = { 0 };
    trainer_data d = split(x, y, 1), none = split(x, y, 0);
    gates_stats gs;
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(gates_measure(&t, w, &none, 0.05, &gs, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "no test images"));
    ck_assert_int_eq(gates_measure(&t, w, &d, 0.0, &gs, err), -EINVAL);
    ck_assert_int_eq(gates_measure(&t, w, &d, 1.0, &gs, err), -EINVAL);
    ck_assert_int_eq(gates_measure(&t, w, &d, NAN, &gs, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "threshold"));
    /* an architecture without a gate view is refused in one line */
    param_table mb;
    model_opts o = model_opts_default();
    ck_assert_int_eq(model_opts_set(&o, MODEL_OPT_ARCH, "mbv2-se", err), 0);
    ck_assert_int_eq(params_build(&mb, &o, err), 0);
    float *wm = calloc(mb.total, sizeof *wm);
    ck_assert_int_eq(gates_measure(&mb, wm, &d, 0.05, &gs, err), -ENOTSUP);
    ck_assert_str_eq(err, "the gate view is cnn-se's; mbv2-se has none");
    free(wm);
    free(w);
}
END_TEST

START_TEST(test_classes)
{
    /* 100 labels: class 0 x50, 1 x45, 2 x5 (exactly 5%), 3 x0; class 9 once
     * through an index list. */
    uint8_t y[101];
    int idx[100];
    for (int i = 0; i < 100; i++) y[i] = i < 50 ? 0 : i < 95 ? 1 : 2;
    y[100] = 9;
    ck_assert_uint_eq(gates_classes(y, NULL, 100), 0x7u);
    for (int i = 0; i < 100; i++) idx[i] = i < 96 ? i : 100;   /* 4 nines: 4% */
    ck_assert_uint_eq(gates_classes(y, idx, 100), 0x3u);
    ck_assert_uint_eq(gates_classes(y, NULL, 0), 0u);
}
END_TEST

/* Four clients: 0 and 1 with classes {0,1} in domain 0, 2 with {2,3}, 3
 * with {1,2}. Pairs: same (0,1); disjoint (0,2), (1,2); overlap the rest. */
START_TEST(test_similarity)
{
    const double a[2] = { 1, 0 }, b[2] = { 1, 0 }, c[2] = { 0, 1 }, e[2] = { 1, 1 };
    const double *v[4] = { a, b, c, e };
    const unsigned classes[4] = { 0x3, 0x3, 0xc, 0x6 };
    const int domain[4] = { 0, 0, 0, 0 };
    gates_similarity_out s;
    ck_assert_int_eq(gates_similarity(v, 2, classes, domain, 4, &s), 0);
    ck_assert_int_eq(s.same.pairs, 1);
    ck_assert_int_eq(s.disjoint.pairs, 2);
    ck_assert_int_eq(s.overlap.pairs, 3);
    ck_assert_double_eq_tol(s.same.cosine, 1.0, 1e-12);
    ck_assert_double_eq_tol(s.disjoint.cosine, 0.0, 1e-12);
    /* (a,e), (b,e): 1/sqrt 2 each; (c,e): 1/sqrt 2. */
    ck_assert_double_eq_tol(s.overlap.cosine, 1 / sqrt(2.0), 1e-12);
    /* Centered on the mean (0.75, 0.5): a - mu = (0.25, -0.5), c - mu =
     * (-0.75, 0.5): cosine (-0.1875 - 0.25) / (sqrt(0.3125) sqrt(0.8125)). */
    ck_assert_double_eq_tol(s.same.centered, 1.0, 1e-12);
    ck_assert_double_eq_tol(s.disjoint.centered, -0.4375 / sqrt(0.3125 * 0.8125), 1e-12);
    /* The same classes in another image domain are not "same". */
    const int dom2[4] = { 0, 1, 0, 0 };
    ck_assert_int_eq(gates_similarity(v, 2, classes, dom2, 4, &s), 0);
    ck_assert_int_eq(s.same.pairs, 0);
    ck_assert(isnan(s.same.cosine));
    ck_assert_int_eq(s.overlap.pairs, 4);
}
END_TEST

/* Images whose class is written in them: class k lights a 7x7 square at a
 * place of its own, plus noise. */
static void patch_data(uint64_t seed, int n, float **x, uint8_t **y)
{
    rng r;
    rng_seed(&r, seed);
    *x = malloc((size_t)n * MODEL_PIXELS * sizeof **x);
    *y = malloc((size_t)n);
    ck_assert(*x && *y);
    for (int i = 0; i < n; i++) {
        const int k = (int)rng_below(&r, MODEL_CLASSES);
        float *img = *x + (long)i * MODEL_PIXELS;
        for (int p = 0; p < MODEL_PIXELS; p++) img[p] = 0.2f * (float)rng_uniform(&r);
        const int r0 = (k / 4) * 9, c0 = (k % 4) * 7;
        for (int a = 0; a < 7; a++)
            for (int b = 0; b < 7; b++) img[(r0 + a) * MODEL_IMG + c0 + b] = 1.0f;
        (*y)[i] = (uint8_t)k;
    }
}

/* Private-only training moves the private tensors and leaves every shared
 * one bit for bit where it was (momentum on, to check it cannot creep);
 * the accuracy after 0 epochs is the starting model's; the head learns
 * classes written plainly in the images. */
START_TEST(test_newcomer_trains_only_private)
{
    param_table t = table(8, 1);
    model *m = model_new(&t, 32);
    ck_assert_ptr_nonnull(m);
    model_init(m, 11);
    const int n = 120;
    float *x;
    uint8_t *y;
    patch_data(4, n, &x, &y);
    trainer_data d = split(x, y, n);
    /* A trained backbone with a fresh head, as a newcomer finds it. */
    sgd_config pre = { .lr = 0.05f, .momentum = 0.9f };
    model_stats st;
    ck_assert_int_eq(model_train(m, x, y, NULL, n, 5, 10, &pre, NULL, 1, &st), 0);
    model *fresh = model_new(&t, 1);
    ck_assert_ptr_nonnull(fresh);
    model_init(fresh, 12);
    params_copy(&t, params_group(PARAM_HEAD), model_params(fresh), model_params(m));
    model_free(fresh);
    const unsigned masks[3] = { PARAM_SE, PARAM_HEAD, PARAM_SE | PARAM_HEAD };
    newcomer_config cfg = { .epochs = 6, .batch = 10, .sgd = { .lr = 0.05f, .momentum = 0.5f }, .seed = 9 };
    double acc[7];
    float *out = malloc(t.total * sizeof *out);
    char err[SEFL_ERRLEN];
    model_evaluate(m, x, y, NULL, n, &st);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(newcomer_adapt(&t, masks[i], model_params(m), &d, &cfg, acc, out, err), 0);
        ck_assert_double_eq(acc[0], st.accuracy);
        int moved = 0;
        for (int k = 0; k < t.n; k++) {
            const param_info *p = &t.p[k];
            const int same = !memcmp(out + p->offset, model_params(m) + p->offset, p->size * sizeof *out);
            if (!params_selected(p, params_private(masks[i])))
                ck_assert_msg(same, "mask %u: shared %s moved", masks[i], p->name);
            else
                moved += !same;
        }
        /* (A private tensor behind a dead ReLU may get no gradient.) */
        ck_assert_int_gt(moved, 0);
        ck_assert_double_gt(acc[6], acc[0]);
        if (masks[i] & PARAM_HEAD) ck_assert_double_gt(acc[6], acc[0] + 0.3);
    }
    /* The same run again: the same figures (deterministic shuffles). */
    double again[7];
    cfg.epochs = 2;
    ck_assert_int_eq(newcomer_adapt(&t, PARAM_SE, model_params(m), &d, &cfg, again, NULL, err), 0);
    ck_assert_int_eq(newcomer_adapt(&t, PARAM_SE, model_params(m), &d, &cfg, acc, NULL, err), 0);
    ck_assert_int_eq(memcmp(acc, again, 3 * sizeof *acc), 0);
    /* Nothing private: nothing trains, every epoch reports the start. */
    ck_assert_int_eq(newcomer_adapt(&t, 0, model_params(m), &d, &cfg, acc, out, err), 0);
    for (int e = 0; e <= 2; e++) ck_assert_double_eq(acc[e], st.accuracy);
    ck_assert_int_eq(memcmp(out, model_params(m), t.total * sizeof *out), 0);
    free(out);
    model_free(m);
    free(x);
    free(y);
}
END_TEST

START_TEST(test_newcomer_rejects)
{
    param_table t = table(8, 1);
    float *w = calloc(t.total, sizeof *w);
    float x[MODEL_PIXELS] = { 0 };
    uint8_t y[1] = { 0 };
    trainer_data d = split(x, y, 1), none = split(x, y, 0);
    double acc[2];
    char err[SEFL_ERRLEN];
    newcomer_config ok = { .epochs = 1, .batch = 1, .sgd = { .lr = 0.1f } }, bad = ok;
    ck_assert_int_eq(newcomer_adapt(&t, PARAM_SE, w, &none, &ok, acc, NULL, err), -EINVAL);
    bad.epochs = 0;
    ck_assert_int_eq(newcomer_adapt(&t, PARAM_SE, w, &d, &bad, acc, NULL, err), -EINVAL);
    bad = ok;
    bad.batch = MODEL_MAX_BATCH + 1;
    ck_assert_int_eq(newcomer_adapt(&t, PARAM_SE, w, &d, &bad, acc, NULL, err), -EINVAL);
    ck_assert_int_eq(newcomer_adapt(&t, PARAM_SE, w, &d, &ok, acc, NULL, err), 0);
    free(w);
}
END_TEST

START_TEST(test_epochs_to)
{
    const double acc[6] = { 0.1, 0.5, 0.8, 0.96, 0.9, 1.0 };
    ck_assert_int_eq(newcomer_epochs_to(acc, 5, 0.95), 3);
    ck_assert_int_eq(newcomer_epochs_to(acc, 5, 0.5), 1);
    ck_assert_int_eq(newcomer_epochs_to(acc, 5, 0.01), 0);
    const double late[3] = { 0.2, 0.3, 0.9 };
    ck_assert_int_eq(newcomer_epochs_to(late, 2, 0.95), 2);
    const double flat[3] = { 0, 0, 0 };
    ck_assert_int_eq(newcomer_epochs_to(flat, 2, 0.95), 0);
}
END_TEST

static Suite *gates_suite(void)
{
    Suite *s = suite_create("gates");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_model_gates);
    tcase_add_test(tc, test_macs_pruned);
    tcase_add_test(tc, test_measure_stats);
    tcase_add_test(tc, test_measure_prunes_closed_gates);
    tcase_add_test(tc, test_prune_channel);
    tcase_add_test(tc, test_measure_rejects);
    tcase_add_test(tc, test_classes);
    tcase_add_test(tc, test_similarity);
    tcase_add_test(tc, test_newcomer_trains_only_private);
    tcase_add_test(tc, test_newcomer_rejects);
    tcase_add_test(tc, test_epochs_to);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(gates_suite());
}
