/* check_model: the whole cnn-se network. Initialisation (determinism,
 * bounds), gradients of every tensor of every group against finite
 * differences of the loss, chunked batches, training on separable
 * synthetic data, and the argument checks. */
#include <check.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/nn/layers.h"
#include "common/nn/model.h"
#include "common/nn/params.h"
#include "common/rng.h"

static param_table table(int r, int gate)
{
    param_table t;
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(params_build(&t, &(model_opts){ .arch = "cnn-se", .r = r, .fc1_gate = gate }, err), 0);
    return t;
}

static model *new_model(int r, int gate, int max_batch, uint64_t seed)
{
    param_table t = table(r, gate);
    model *m = model_new(&t, max_batch);
    ck_assert_ptr_nonnull(m);
    model_init(m, seed);
    return m;
}

static void random_batch(rng *r, float *x, uint8_t *y, int B)
{
    for (long i = 0; i < (long)B * MODEL_PIXELS; i++) x[i] = (float)rng_uniform(r);
    for (int b = 0; b < B; b++) y[b] = (uint8_t)rng_below(r, MODEL_CLASSES);
}

START_TEST(test_init)
{
    model *a = new_model(8, 1, 4, 42), *b = new_model(8, 1, 4, 42), *c = new_model(8, 1, 4, 43);
    const param_table *t = model_table(a);
    const size_t bytes = t->total * sizeof(float);
    ck_assert_int_eq(memcmp(model_params(a), model_params(b), bytes), 0);
    ck_assert_int_ne(memcmp(model_params(a), model_params(c), bytes), 0);
    /* Same bytes on every machine: this checksum was recorded on x86-64 and
     * depends only on integer arithmetic, IEEE sqrt and float rounding. */
    ck_assert_uint_eq(params_checksum(t, params_group(PARAM_ALL), model_params(a)),
                      0xbf77f616c430a760ULL);
    /* Bounds 1/sqrt(fan_in) for a weight and for the bias after it, and the
     * draws fill the range (max near the bound, mean near zero). */
    int gates = 0;
    for (int i = 0; i < t->n; i++) {
        const param_info *p = &t->p[i];
        if (model_is_gate_bias(p)) {
            /* The excitations' output biases start every gate at 1. */
            for (size_t k = 0; k < p->size; k++) ck_assert_float_eq(model_params(a)[p->offset + k], MODEL_GATE_BIAS);
            gates++;
            continue;
        }
        const param_info *w = p->ndim > 1 ? p : p - 1;
        const double bound = 1.0 / sqrt((double)(w->size / (size_t)w->shape[0]));
        const float *v = model_params(a) + p->offset;
        double mx = 0.0, sum = 0.0;
        for (size_t k = 0; k < p->size; k++) {
            ck_assert(fabs(v[k]) <= bound);
            mx = fmax(mx, fabs(v[k]));
            sum += v[k];
        }
        if (p->size >= 100) {
            ck_assert_double_gt(mx, 0.95 * bound);
            ck_assert_double_lt(fabs(sum / (double)p->size), 0.2 * bound);
        }
    }
    ck_assert_int_eq(gates, 3);
    /* init also clears momentum: a momentum step right after init equals a
     * plain step */
    float *g = model_grads(a);
    for (size_t k = 0; k < t->total; k++) g[k] = 1.0f;
    const sgd_config mom = { .lr = 0.5f, .momentum = 0.9f };
    model_sgd_step(a, &mom, NULL);
    model_init(a, 42);
    model_sgd_step(a, &mom, NULL);
    for (size_t k = 0; k < t->total; k += 997)
        ck_assert_float_eq_tol(model_params(a)[k], model_params(b)[k] - 0.5f, 1e-6);
    model_free(a);
    model_free(b);
    model_free(c);
}
END_TEST

/* ---- a reference forward pass in double ----
 * The network written out directly from common/README.md (and tests/bench/torch_ref.py's Net)
 * with plain loops over (C, H, W) per sample, in double. It checks the
 * model's forward pass (layouts, flatten order, gate placement), and its
 * finite differences are precise enough to check every gradient. */

static const double *ref_w(const param_table *t, const double *w, const char *name)
{
    const param_info *p = params_find(t, name);
    ck_assert_ptr_nonnull(p);
    return w + p->offset;
}

/* y (C, H-4, W-4) = relu(conv5x5(x (Cin, H, W)) + b) */
static void ref_conv_relu(const double *x, int cin, int h, int wd, const double *k, const double *b,
                          int cout, double *y)
{
    const int oh = h - 4, ow = wd - 4;
    for (int o = 0; o < cout; o++)
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                double s = b[o];
                for (int c = 0; c < cin; c++)
                    for (int u = 0; u < 5; u++)
                        for (int v = 0; v < 5; v++)
                            s += k[((o * cin + c) * 5 + u) * 5 + v] * x[(c * h + i + u) * wd + j + v];
                y[(o * oh + i) * ow + j] = s > 0 ? s : 0;
            }
}

/* gate e (C) of the excitation prefix on the squeezed s (C) */
static void ref_excite(const param_table *t, const double *w, const char *prefix, const double *s,
                       int c, double *e)
{
    char n[4][PARAM_NAME_MAX];
    snprintf(n[0], sizeof n[0], "%s.fc1.weight", prefix);
    snprintf(n[1], sizeof n[1], "%s.fc1.bias", prefix);
    snprintf(n[2], sizeof n[2], "%s.fc2.weight", prefix);
    snprintf(n[3], sizeof n[3], "%s.fc2.bias", prefix);
    const double *w1 = ref_w(t, w, n[0]), *b1 = ref_w(t, w, n[1]);
    const double *w2 = ref_w(t, w, n[2]), *b2 = ref_w(t, w, n[3]);
    const int r = c / t->r;
    double h[512];
    for (int i = 0; i < r; i++) {
        double z = b1[i];
        for (int k = 0; k < c; k++) z += w1[i * c + k] * s[k];
        h[i] = z > 0 ? z : 0;
    }
    for (int k = 0; k < c; k++) {
        double z = b2[k];
        for (int i = 0; i < r; i++) z += w2[k * r + i] * h[i];
        e[k] = GATE_SCALE / (1.0 + exp(-z));
    }
}

/* SE on x (C, H, W), then 2x2 max-pool into y (C, H/2, W/2) */
static void ref_se_pool(const param_table *t, const double *w, const char *prefix, const double *x,
                        int c, int h, double *y)
{
    double s[64] = { 0 }, e[64];
    for (int k = 0; k < c; k++) {
        s[k] = 0;
        for (int i = 0; i < h * h; i++) s[k] += x[k * h * h + i];
        s[k] /= h * h;
    }
    ref_excite(t, w, prefix, s, c, e);
    const int o = h / 2;
    for (int k = 0; k < c; k++)
        for (int i = 0; i < o; i++)
            for (int j = 0; j < o; j++) {
                const double *p = x + (k * h + 2 * i) * h + 2 * j;
                double m = fmax(fmax(p[0], p[1]), fmax(p[h], p[h + 1]));
                y[(k * o + i) * o + j] = m * e[k];
            }
}

/* Mean cross-entropy of the batch under the parameters w (t.total). */
static double ref_loss(const param_table *t, const double *w, const float *x, const uint8_t *y, int B)
{
    static double in[MODEL_PIXELS], a1[32 * 24 * 24], p1[32 * 12 * 12], a2[64 * 8 * 8], f[1024];
    double r3[512], e3[512], z[MODEL_CLASSES];
    double loss = 0.0;
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < MODEL_PIXELS; i++) in[i] = x[(long)b * MODEL_PIXELS + i];
        ref_conv_relu(in, 1, 28, 28, ref_w(t, w, "conv1.weight"), ref_w(t, w, "conv1.bias"), 32, a1);
        ref_se_pool(t, w, "se1", a1, 32, 24, p1);
        ref_conv_relu(p1, 32, 12, 12, ref_w(t, w, "conv2.weight"), ref_w(t, w, "conv2.bias"), 64, a2);
        ref_se_pool(t, w, "se2", a2, 64, 8, f); /* (64, 4, 4) is the flatten order */
        const double *w1 = ref_w(t, w, "fc1.weight"), *b1 = ref_w(t, w, "fc1.bias");
        for (int o = 0; o < 512; o++) {
            double s = b1[o];
            for (int i = 0; i < 1024; i++) s += w1[o * 1024 + i] * f[i];
            r3[o] = s > 0 ? s : 0;
        }
        if (t->fc1_gate) {
            ref_excite(t, w, "se3", r3, 512, e3);
            for (int o = 0; o < 512; o++) r3[o] *= e3[o];
        }
        const double *w2 = ref_w(t, w, "fc.weight"), *b2 = ref_w(t, w, "fc.bias");
        double mx = -INFINITY, sum = 0.0;
        for (int k = 0; k < MODEL_CLASSES; k++) {
            z[k] = b2[k];
            for (int i = 0; i < 512; i++) z[k] += w2[k * 512 + i] * r3[i];
            mx = fmax(mx, z[k]);
        }
        for (int k = 0; k < MODEL_CLASSES; k++) sum += exp(z[k] - mx);
        loss += log(sum) + mx - z[y[b]];
    }
    return loss / B;
}

/* Checks the model's loss against the reference, then its gradient for
 * every tensor of the group against central differences of the reference:
 * a few coordinates per tensor, drawn among those whose gradient is at
 * least a tenth of the tensor's largest (so a neighbour's value, read by a
 * wrong index, would be far outside the tolerance). */
enum { GB = 2 };
static int grad_check(model *m, const float *x, const uint8_t *y, unsigned group)
{
    const param_table *t = model_table(m);
    double *w = malloc(t->total * sizeof *w);
    ck_assert_ptr_nonnull(w);
    for (size_t k = 0; k < t->total; k++) w[k] = model_params(m)[k];
    const float loss = model_forward_backward(m, x, y, GB, NULL);
    ck_assert_double_eq_tol(loss, ref_loss(t, w, x, y, GB), 1e-5);
    const float *g = model_grads(m);
    rng r;
    rng_seed(&r, 9);
    int bad = 0, checked = 0;
    for (int i = 0; i < t->n; i++) {
        const param_info *p = &t->p[i];
        if (!(p->groups & group)) continue;
        double gmax = 0.0;
        for (size_t k = 0; k < p->size; k++) gmax = fmax(gmax, fabs(g[p->offset + k]));
        ck_assert_msg(gmax > 0.0, "%s has no gradient at all", p->name);
        for (int picks = 0, tries = 0; picks < 3 && tries < 10000; tries++) {
            const size_t k = p->offset + rng_below(&r, p->size);
            if (fabs(g[k]) < 0.1 * gmax) continue;
            picks++;
            const double v = w[k], eps = 1e-6;
            w[k] = v + eps;
            const double lp = ref_loss(t, w, x, y, GB);
            w[k] = v - eps;
            const double lm = ref_loss(t, w, x, y, GB);
            w[k] = v;
            const double num = (lp - lm) / (2 * eps);
            checked++;
            if (fabs(num - g[k]) > 5e-3 * fabs(num) + 1e-4 * gmax) {
                fprintf(stderr, "%s[%zu]: analytic %.6g numeric %.6g (max %.3g)\n", p->name,
                        k - p->offset, g[k], num, gmax);
                bad++;
            }
        }
    }
    ck_assert_int_gt(checked, 0);
    free(w);
    return bad;
}

static void grad_run(int r_ratio, int gate, unsigned group)
{
    model *m = new_model(r_ratio, gate, GB, 5);
    float *x = malloc(GB * MODEL_PIXELS * sizeof *x);
    uint8_t y[GB];
    rng r;
    rng_seed(&r, 6);
    random_batch(&r, x, y, GB);
    ck_assert_int_eq(grad_check(m, x, y, group), 0);
    free(x);
    model_free(m);
}

START_TEST(test_grad_backbone)
{
    grad_run(8, 1, PARAM_BACKBONE);
}
END_TEST

START_TEST(test_grad_se)
{
    grad_run(8, 1, PARAM_SE);
}
END_TEST

START_TEST(test_grad_head)
{
    grad_run(8, 1, PARAM_HEAD);
}
END_TEST

START_TEST(test_grad_no_gate_r4)
{
    grad_run(4, 0, PARAM_ALL);
}
END_TEST

/* A batch larger than the workspace runs in chunks; its gradient is the
 * sample-weighted mean of the chunks' gradients, and its loss the mean. */
START_TEST(test_chunks)
{
    enum { B = 45, B1 = 32 };
    model *m = new_model(8, 1, B, 3);
    const size_t n = model_table(m)->total;
    float *x = malloc(B * MODEL_PIXELS * sizeof *x), *logits = malloc(B * MODEL_CLASSES * sizeof *logits);
    float *g = malloc(n * sizeof *g), *g1 = malloc(n * sizeof *g1);
    uint8_t y[B];
    rng r;
    rng_seed(&r, 4);
    random_batch(&r, x, y, B);
    int correct = -1;
    const float loss = model_forward_backward(m, x, y, B, &correct);
    memcpy(g, model_grads(m), n * sizeof *g);
    const float l1 = model_forward_backward(m, x, y, B1, NULL);
    memcpy(g1, model_grads(m), n * sizeof *g1);
    const float l2 = model_forward_backward(m, x + B1 * MODEL_PIXELS, y + B1, B - B1, NULL);
    ck_assert_float_eq_tol(loss, (l1 * B1 + l2 * (B - B1)) / B, 1e-5);
    double err = 0.0, mag = 0.0;
    for (size_t k = 0; k < n; k++) {
        const double want = ((double)g1[k] * B1 + (double)model_grads(m)[k] * (B - B1)) / B;
        err = fmax(err, fabs(g[k] - want));
        mag = fmax(mag, fabs(want));
    }
    ck_assert_double_lt(err, 1e-5 * mag);
    /* model_forward agrees with the training pass: same loss, and the count
     * of correct samples is the count of argmax hits in its logits */
    ck_assert_float_eq_tol(model_forward(m, x, y, B, logits), loss, 1e-6);
    int hits = 0;
    for (int b = 0; b < B; b++) {
        int best = 0;
        for (int k = 1; k < MODEL_CLASSES; k++)
            if (logits[b * MODEL_CLASSES + k] > logits[b * MODEL_CLASSES + best]) best = k;
        hits += best == y[b];
    }
    ck_assert_int_eq(correct, hits);
    /* a sample's logits do not depend on the rest of its batch */
    float one[MODEL_CLASSES];
    model_forward(m, x + 40 * MODEL_PIXELS, y + 40, 1, one);
    for (int k = 0; k < MODEL_CLASSES; k++) ck_assert_float_eq_tol(one[k], logits[40 * MODEL_CLASSES + k], 1e-5);
    /* out of range batches are refused */
    ck_assert(isnan(model_forward(m, x, y, B + 1, NULL)));
    ck_assert(isnan(model_forward_backward(m, x, y, 0, NULL)));
    free(x);
    free(logits);
    free(g);
    free(g1);
    model_free(m);
}
END_TEST

/* Ten classes, each a bright 6x6 square at its own place on noise. */
static void synthetic(rng *r, float *x, uint8_t *y, int n)
{
    for (int i = 0; i < n; i++) {
        const int c = (int)rng_below(r, MODEL_CLASSES);
        float *img = x + (long)i * MODEL_PIXELS;
        for (int p = 0; p < MODEL_PIXELS; p++) img[p] = 0.3f * (float)rng_uniform(r);
        const int top = 2 + 8 * (c / 4), left = 2 + 6 * (c % 4);
        for (int u = 0; u < 6; u++)
            for (int v = 0; v < 6; v++) img[(top + u) * MODEL_IMG + left + v] = 0.7f + 0.3f * (float)rng_uniform(r);
        y[i] = (uint8_t)c;
    }
}

START_TEST(test_train_synthetic)
{
    enum { N = 400, NT = 200, B = 10 };
    float *x = malloc(N * MODEL_PIXELS * sizeof *x), *tx = malloc(NT * MODEL_PIXELS * sizeof *tx);
    uint8_t y[N], ty[NT];
    rng r;
    rng_seed(&r, 11);
    synthetic(&r, x, y, N);
    synthetic(&r, tx, ty, NT);
    model *m = new_model(8, 1, B, 1);
    model_stats before, after, st;
    model_evaluate(m, tx, ty, NULL, NT, &before);
    const sgd_config c = { .lr = 0.05f, .momentum = 0.9f };
    ck_assert_int_eq(model_train(m, x, y, NULL, N, 3, B, &c, NULL, 7, &st), 0);
    ck_assert_int_eq(st.examples, N);
    model_evaluate(m, tx, ty, NULL, NT, &after);
    ck_assert_int_eq(after.examples, NT);
    ck_assert_double_lt(before.accuracy, 0.3);
    ck_assert_double_gt(after.accuracy, 0.95);
    ck_assert_double_lt(after.loss, before.loss);
    ck_assert_double_gt(st.accuracy, 0.5);
    /* evaluate through an index list: the odd samples only */
    int idx[NT / 2];
    for (int i = 0; i < NT / 2; i++) idx[i] = 2 * i + 1;
    model_evaluate(m, tx, ty, idx, NT / 2, &st);
    ck_assert_int_eq(st.examples, NT / 2);
    ck_assert_double_gt(st.accuracy, 0.9);
    free(x);
    free(tx);
    model_free(m);
}
END_TEST

START_TEST(test_train_determinism_and_args)
{
    enum { N = 25, B = 10 };
    float *x = malloc(N * MODEL_PIXELS * sizeof *x);
    uint8_t y[N];
    int idx[N];
    rng r;
    rng_seed(&r, 12);
    random_batch(&r, x, y, N);
    for (int i = 0; i < N; i++) idx[N - 1 - i] = i;
    model *a = new_model(8, 1, B, 2), *b = new_model(8, 1, B, 2), *c = new_model(8, 1, B, 2);
    const sgd_config cfg = { .lr = 0.01f, .momentum = 0.5f, .weight_decay = 1e-4f, .prox_mu = 0.1f };
    float *ref = malloc(model_table(a)->total * sizeof *ref);
    memcpy(ref, model_params(a), model_table(a)->total * sizeof *ref);
    model_stats st;
    ck_assert_int_eq(model_train(a, x, y, idx, N, 2, B, &cfg, ref, 3, &st), 0);
    ck_assert_int_eq(st.examples, N); /* the partial last batch counts */
    ck_assert(isfinite(st.loss) && st.loss > 0);
    ck_assert_int_eq(model_train(b, x, y, idx, N, 2, B, &cfg, ref, 3, &st), 0);
    ck_assert_int_eq(model_train(c, x, y, idx, N, 2, B, &cfg, ref, 4, &st), 0);
    const size_t bytes = model_table(a)->total * sizeof(float);
    ck_assert_int_eq(memcmp(model_params(a), model_params(b), bytes), 0);
    ck_assert_int_ne(memcmp(model_params(a), model_params(c), bytes), 0);
    ck_assert_int_eq(model_train(a, x, y, idx, N, 1, 0, &cfg, NULL, 3, &st), -EINVAL);
    ck_assert_int_eq(model_train(a, x, y, idx, N, 1, B + 1, &cfg, NULL, 3, &st), -EINVAL);
    /* no samples, no change */
    memcpy(ref, model_params(a), bytes);
    ck_assert_int_eq(model_train(a, x, y, idx, 0, 1, B, &cfg, NULL, 3, &st), 0);
    ck_assert_int_eq(memcmp(model_params(a), ref, bytes), 0);
    free(ref);
    free(x);
    model_free(a);
    model_free(b);
    model_free(c);
}
END_TEST

/* 1 when every float of the selected tensors of a equals b's. */
static int same_selected(const param_table *t, param_sel sel, const float *a, const float *b)
{
    for (int i = 0; i < t->n; i++)
        if (params_selected(&t->p[i], sel) &&
            memcmp(a + t->p[i].offset, b + t->p[i].offset, t->p[i].size * sizeof *a))
            return 0;
    return 1;
}

/* The primitive of the local schedules: frozen tensors get no update and
 * keep their momentum (zero when never trained, what it was otherwise);
 * the others train, at alt_lr where `alt` selects them. */
START_TEST(test_frozen_and_alt_lr)
{
    enum { N = 30, B = 10 };
    float *x = malloc(N * MODEL_PIXELS * sizeof *x);
    uint8_t y[N];
    rng r;
    rng_seed(&r, 21);
    random_batch(&r, x, y, N);
    model *a = new_model(8, 1, B, 4);
    const param_table *t = model_table(a);
    const size_t n = t->total;
    const param_sel se = params_private(PARAM_SE), rest = params_shared(PARAM_SE);
    float *w0 = malloc(n * sizeof *w0), *w1 = malloc(n * sizeof *w1), *v1 = malloc(n * sizeof *v1);
    float *zero = calloc(n, sizeof *zero);
    memcpy(w0, model_params(a), n * sizeof *w0);

    /* Phase 1 (private-first): the gates alone, momentum on. */
    sgd_config c = { .lr = 0.05f, .momentum = 0.9f, .frozen = rest };
    model_stats st;
    ck_assert_int_eq(model_train(a, x, y, NULL, N, 2, B, &c, NULL, 5, &st), 0);
    ck_assert(same_selected(t, rest, model_params(a), w0));
    ck_assert(same_selected(t, rest, model_momentum(a), zero));
    ck_assert(!same_selected(t, se, model_params(a), w0));
    ck_assert(!same_selected(t, se, model_momentum(a), zero));

    /* Phase 2: the rest alone; the gates and their momentum stay put. */
    memcpy(w1, model_params(a), n * sizeof *w1);
    memcpy(v1, model_momentum(a), n * sizeof *v1);
    c.frozen = se;
    ck_assert_int_eq(model_train(a, x, y, NULL, N, 1, B, &c, NULL, 6, &st), 0);
    ck_assert(same_selected(t, se, model_params(a), w1));
    ck_assert(same_selected(t, se, model_momentum(a), v1));
    ck_assert(!same_selected(t, rest, model_params(a), w1));

    /* A rate for the selected tensors: one plain step from the same point
     * and gradient moves the gates by 3x, everything else by 1x. */
    model *b = new_model(8, 1, B, 4), *p = new_model(8, 1, B, 4);
    const sgd_config plain = { .lr = 0.01f };
    const sgd_config fast = { .lr = 0.01f, .alt = se, .alt_lr = 0.03f };
    model_forward_backward(b, x, y, B, NULL);
    model_forward_backward(p, x, y, B, NULL);
    model_sgd_step(b, &fast, NULL);
    model_sgd_step(p, &plain, NULL);
    int checked = 0;
    for (size_t k = 0; k < n; k++) {
        const double db = model_params(b)[k] - w0[k], dp = model_params(p)[k] - w0[k];
        if (fabs(dp) < 1e-6) continue;
        const param_info *pi = t->p;
        while (k >= pi->offset + pi->size) pi++;
        const double want = params_selected(pi, se) ? 3.0 : 1.0;
        /* Both deltas are differences of rounded floats: a few ulps of w. */
        const double ulps = 8 * FLT_EPSILON * fabs(w0[k]);
        ck_assert_msg(fabs(db - want * dp) <= 1e-3 * fabs(want * dp) + ulps, "%s: %g vs %g x %g",
                      pi->name, db, want, dp);
        checked++;
    }
    ck_assert_int_gt(checked, 1000);
    free(w0);
    free(w1);
    free(v1);
    free(zero);
    free(x);
    model_free(a);
    model_free(b);
    model_free(p);
}
END_TEST

/* sefl-sim trains several models on several threads at once: the results
 * must be the bytes a model trained alone gets (no shared mutable state). */
typedef struct {
    model *m;
    const float *x;
    const uint8_t *y;
    int n;
} train_job;

static void *train_thread(void *arg)
{
    train_job *j = arg;
    const sgd_config c = { .lr = 0.05f, .momentum = 0.9f };
    model_stats st;
    ck_assert_int_eq(model_train(j->m, j->x, j->y, NULL, j->n, 2, 10, &c, NULL, 5, &st), 0);
    return NULL;
}

START_TEST(test_threads)
{
    enum { N = 60, T = 3 };
    float *x = malloc(N * MODEL_PIXELS * sizeof *x);
    uint8_t y[N];
    rng r;
    rng_seed(&r, 13);
    synthetic(&r, x, y, N);
    model *alone = new_model(8, 1, 10, 1);
    train_job j = { alone, x, y, N };
    train_thread(&j);
    pthread_t th[T];
    train_job jobs[T];
    for (int i = 0; i < T; i++) {
        jobs[i] = (train_job){ new_model(8, 1, 10, 1), x, y, N };
        ck_assert_int_eq(pthread_create(&th[i], NULL, train_thread, &jobs[i]), 0);
    }
    const size_t bytes = model_table(alone)->total * sizeof(float);
    for (int i = 0; i < T; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(memcmp(model_params(jobs[i].m), model_params(alone), bytes), 0);
        model_free(jobs[i].m);
    }
    model_free(alone);
    free(x);
}
END_TEST

/* One training split across threads (model_set_threads): the gradient of a
 * batch is the one-thread gradient up to the order of the sums, also when a
 * lane gets no samples (B < threads), when the batch runs in several
 * rounds (B > 32), and when some threads get none of fc1's outputs (40
 * threads, 32 blocks of 16 outputs); training is deterministic for a given
 * thread count and stays within float rounding of one thread's, with
 * batches of one round and of several; frozen tensors stay put whichever
 * way they are split; evaluation counts the same. */
START_TEST(test_split_threads)
{
    enum { B = 70, N = 45 };
    float *x = malloc(B * MODEL_PIXELS * sizeof *x);
    uint8_t y[B];
    rng r;
    rng_seed(&r, 21);
    random_batch(&r, x, y, B);
    model *one = new_model(8, 1, B, 5);
    const size_t n = model_table(one)->total;
    float *g = malloc(n * sizeof *g);
    const int sizes[] = { 1, 2, 10, B };
    const int threads[] = { 2, 3, 40 };
    for (size_t ti = 0; ti < sizeof threads / sizeof *threads; ti++) {
        const int t = threads[ti];
        model *m = new_model(8, 1, B, 5);
        ck_assert_int_eq(model_set_threads(m, t), 0);
        ck_assert_int_eq(model_threads(m), t);
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            const int b = sizes[k];
            int c1 = -1, ct = -2;
            const float l1 = model_forward_backward(one, x, y, b, &c1);
            memcpy(g, model_grads(one), n * sizeof *g);
            const float lt = model_forward_backward(m, x, y, b, &ct);
            ck_assert_int_eq(c1, ct);
            ck_assert_float_eq_tol(l1, lt, 1e-5);
            double err = 0.0, mag = 0.0;
            for (size_t i = 0; i < n; i++) {
                err = fmax(err, fabs((double)g[i] - model_grads(m)[i]));
                mag = fmax(mag, fabs((double)g[i]));
            }
            ck_assert_double_gt(mag, 0.0);
            ck_assert_double_lt(err, 1e-5 * mag);
        }
        model_free(m);
    }
    /* training: same T, same bytes; T = 1 and T = 2 within rounding, at a
     * batch of one round (10) and of two (45, all of N: rounds of 32 and
     * 13) */
    const sgd_config cfg = { .lr = 0.01f, .momentum = 0.9f, .weight_decay = 1e-4f };
    model *init = new_model(8, 1, N, 2);
    model *a = NULL;
    const int batches[] = { 10, N };
    for (size_t k = 0; k < sizeof batches / sizeof *batches; k++) {
        const int bs = batches[k];
        model_free(a);
        a = new_model(8, 1, N, 2);
        model *b = new_model(8, 1, N, 2), *c = new_model(8, 1, N, 2);
        ck_assert_int_eq(model_set_threads(a, 2), 0);
        ck_assert_int_eq(model_set_threads(b, 2), 0);
        model_stats sa, sb, sc;
        ck_assert_int_eq(model_train(a, x, y, NULL, N, 2, bs, &cfg, NULL, 3, &sa), 0);
        ck_assert_int_eq(model_train(b, x, y, NULL, N, 2, bs, &cfg, NULL, 3, &sb), 0);
        ck_assert_int_eq(model_train(c, x, y, NULL, N, 2, bs, &cfg, NULL, 3, &sc), 0);
        ck_assert_int_eq(memcmp(model_params(a), model_params(b), n * sizeof(float)), 0);
        double err = 0.0, moved = 0.0;
        for (size_t i = 0; i < n; i++) {
            err = fmax(err, fabs((double)model_params(a)[i] - model_params(c)[i]));
            moved = fmax(moved, fabs((double)model_params(c)[i] - model_params(init)[i]));
        }
        ck_assert_double_gt(moved, 1e-3);
        ck_assert_double_lt(err, 1e-4 * moved);
        ck_assert_float_eq_tol(sa.loss, sc.loss, 1e-5);
        model_free(b);
        model_free(c);
    }
    /* each thread steps its block tensor by tensor, and fc1's rows in its
     * part of the split by outputs: frozen tensors stay put, the others
     * move, with T = 2 as with one thread */
    const param_sel frozen[] = { params_group(PARAM_SE), params_group(PARAM_BACKBONE) };
    for (size_t k = 0; k < sizeof frozen / sizeof *frozen; k++) {
        sgd_config fz = cfg;
        fz.frozen = frozen[k];
        model *f = new_model(8, 1, 10, 2);
        model_stats sf;
        ck_assert_int_eq(model_set_threads(f, 2), 0);
        ck_assert_int_eq(model_train(f, x, y, NULL, N, 1, 10, &fz, NULL, 3, &sf), 0);
        const param_table *tt = model_table(f);
        for (int i = 0; i < tt->n; i++) {
            const param_info *p = &tt->p[i];
            const int same = !memcmp(model_params(f) + p->offset, model_params(init) + p->offset,
                                     p->size * sizeof(float));
            ck_assert_msg(same == params_selected(p, fz.frozen), "%s", p->name);
        }
        model_free(f);
    }
    /* evaluation over the lanes counts what one thread counts */
    model_stats ea, ec;
    model_evaluate(a, x, y, NULL, B, &ea);
    ck_assert_int_eq(model_set_threads(a, 1), 0);
    model_evaluate(a, x, y, NULL, B, &ec);
    ck_assert_int_eq(ea.examples, B);
    ck_assert_double_eq(ea.accuracy, ec.accuracy);
    ck_assert_double_eq_tol(ea.loss, ec.loss, 1e-6);
    /* limits */
    ck_assert_int_eq(model_set_threads(a, 0), -EINVAL);
    ck_assert_int_eq(model_set_threads(a, MODEL_MAX_THREADS + 1), -EINVAL);
    ck_assert_int_eq(model_threads(a), 1);
    model_free(a);
    model_free(init);
    model_free(one);
    free(g);
    free(x);
}
END_TEST

START_TEST(test_new_and_macs)
{
    param_table t = table(8, 1), ng = table(8, 0);
    ck_assert_ptr_null(model_new(&t, 0));
    ck_assert_ptr_null(model_new(&t, MODEL_MAX_BATCH + 1));
    model_free(NULL);
    model *m = model_new(&t, MODEL_MAX_BATCH);
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(model_table(m)->hash, t.hash);
    model_free(m);
    /* a table that is not cnn-se's, or a tampered one, is refused */
    param_table bad = t;
    bad.hash ^= 1;
    ck_assert_ptr_null(model_new(&bad, 4));
    bad = t;
    bad.r = 4;
    ck_assert_ptr_null(model_new(&bad, 4));
    bad = t;
    bad.r = 3;
    ck_assert_ptr_null(model_new(&bad, 4));
    /* conv1 800*576 + conv2 51200*64 + fc1 1024*512 + fc 512*10 */
    ck_assert_int_eq(model_macs(&t, 0), 4267008);
    /* + se1 2*128 + 32*576, se2 2*512 + 64*64, se3 2*32768 + 512 */
    ck_assert_int_eq(model_macs(&t, 1), 4267008 + 18688 + 5120 + 66048);
    ck_assert_int_eq(model_macs(&ng, 1), 4267008 + 18688 + 5120);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_init);
    tcase_add_test(tc, test_grad_backbone);
    tcase_add_test(tc, test_grad_se);
    tcase_add_test(tc, test_grad_head);
    tcase_add_test(tc, test_grad_no_gate_r4);
    tcase_add_test(tc, test_chunks);
    tcase_add_test(tc, test_train_synthetic);
    tcase_add_test(tc, test_train_determinism_and_args);
    tcase_add_test(tc, test_frozen_and_alt_lr);
    tcase_add_test(tc, test_threads);
    tcase_add_test(tc, test_split_threads);
    tcase_add_test(tc, test_new_and_macs);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
