/* check_arch_mbv2: the mbv2-se architecture (arch_mbv2_se.c). Its table for
 * each placement and gate (names, shapes, groups, hash distinct per
 * option), the options it refuses, its forward pass against a reference in
 * double written from the network's definition, the gradient of every
 * tensor against finite differences of that reference, chunked batches,
 * one batch split across threads, training on a little of Fashion-MNIST,
 * and its MACs.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/data/dataset.h"
#include "common/log.h"
#include "common/nn/layers.h"
#include "common/nn/model.h"
#include "common/nn/params.h"
#include "common/rng.h"
#include "tests/check_main.h"

static model_opts opts(const char *placement, const char *gate, int r)
{
    model_opts o = model_opts_default();
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(model_opts_set(&o, MODEL_OPT_ARCH, "mbv2-se", err), 0);
    ck_assert_int_eq(model_opts_set(&o, MODEL_OPT_SE_PLACEMENT, placement, err), 0);
    ck_assert_int_eq(model_opts_set(&o, MODEL_OPT_GATE, gate, err), 0);
    o.r = r;
    return o;
}

static param_table table(const char *placement, const char *gate, int r)
{
    param_table t;
    char err[SEFL_ERRLEN] = "";
    model_opts o = opts(placement, gate, r);
    ck_assert_msg(params_build(&t, &o, err) == 0, "%s", err);
    return t;
}

static model *new_model(const char *placement, const char *gate, int max_batch, uint64_t seed)
{
    param_table t = table(placement, gate, 8);
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

/* ---- the table ---- */

START_TEST(test_table)
{
    param_table t = table("", "", 8);
    /* the defaults are settled into the table */
    ck_assert_str_eq(t.arch, "mbv2-se");
    ck_assert_str_eq(t.se_placement, "after-depthwise");
    ck_assert_str_eq(t.gate, "se");
    ck_assert_int_eq(t.r, 8);
    ck_assert_int_eq(t.fc1_gate, 0);
    ck_assert_int_eq(t.n, 2 + 4 * 10 + 4);
    static const struct { const char *name; int ndim, d[4]; unsigned groups; } some[] = {
        { "stem.weight", 4, { 16, 1, 3, 3 }, PARAM_BACKBONE },
        { "b1.expand.weight", 4, { 32, 16, 1, 1 }, PARAM_BACKBONE },
        { "b1.dw.weight", 4, { 32, 1, 3, 3 }, PARAM_BACKBONE },
        { "b1.se.fc1.weight", 2, { 4, 32 }, PARAM_SE },
        { "b1.se.fc2.bias", 1, { 32 }, PARAM_SE },
        { "b1.project.weight", 4, { 24, 32, 1, 1 }, PARAM_BACKBONE },
        { "b2.se.fc1.weight", 2, { 12, 96 }, PARAM_SE },
        { "b4.se.fc2.weight", 2, { 128, 16 }, PARAM_SE },
        { "b4.project.bias", 1, { 32 }, PARAM_BACKBONE },
        { "last.weight", 4, { 128, 32, 1, 1 }, PARAM_BACKBONE },
        { "fc.weight", 2, { 10, 128 }, PARAM_BACKBONE | PARAM_HEAD },
        { "fc.bias", 1, { 10 }, PARAM_BACKBONE | PARAM_HEAD },
    };
    for (size_t i = 0; i < sizeof some / sizeof some[0]; i++) {
        const param_info *p = params_find(&t, some[i].name);
        ck_assert_msg(p != NULL, "%s missing", some[i].name);
        ck_assert_int_eq(p->ndim, some[i].ndim);
        for (int d = 0; d < p->ndim; d++) ck_assert_int_eq(p->shape[d], some[i].d[d]);
        ck_assert_uint_eq(p->groups, some[i].groups);
    }
    /* the tensors tile the buffer */
    size_t off = 0;
    for (int i = 0; i < t.n; i++) {
        ck_assert_uint_eq(t.p[i].offset, off);
        off += t.p[i].size;
    }
    ck_assert_uint_eq(off, t.total);

    /* after the projection the gates are on 24 and 32 channels */
    param_table pw = table("after-pointwise", "se", 8);
    ck_assert_int_eq(params_find(&pw, "b1.se.fc1.weight")->shape[1], 24);
    ck_assert_int_eq(params_find(&pw, "b4.se.fc1.weight")->shape[0], 4);
    ck_assert_uint_lt(params_count(&pw, params_group(PARAM_SE)), params_count(&t, params_group(PARAM_SE)));
    ck_assert_uint_eq(params_count(&pw, params_group(PARAM_BACKBONE)),
                      params_count(&t, params_group(PARAM_BACKBONE)));
    /* ECA: one kernel per block, k from the gated width; no r */
    param_table e = table("after-depthwise", "eca", 8), ep = table("after-pointwise", "eca", 0);
    ck_assert_int_eq(e.r, 0);
    ck_assert_int_eq(e.n, 2 + 4 * 7 + 4);
    ck_assert_int_eq(params_find(&e, "b1.eca.weight")->shape[2], 3);   /* 32 */
    ck_assert_int_eq(params_find(&e, "b4.eca.weight")->shape[2], 5);   /* 128 */
    ck_assert_int_eq(params_find(&ep, "b4.eca.weight")->shape[2], 3);  /* 32 */
    ck_assert_uint_eq(params_count(&e, params_group(PARAM_SE)), 3 + 3 + 3 + 5);
    ck_assert_uint_eq(params_find(&e, "b1.eca.weight")->groups, PARAM_SE);
    /* every option is in the hash; the same options give the same hash */
    const uint64_t h[] = { t.hash, pw.hash, e.hash, ep.hash, table("", "", 4).hash };
    for (size_t i = 0; i < 5; i++)
        for (size_t j = i + 1; j < 5; j++) ck_assert_uint_ne(h[i], h[j]);
    ck_assert_uint_eq(table("after-depthwise", "se", 8).hash, t.hash);
    /* params_opts rebuilds the same table */
    param_table u;
    model_opts o = params_opts(&e);
    ck_assert_int_eq(params_build(&u, &o, NULL), 0);
    ck_assert_uint_eq(u.hash, e.hash);
}
END_TEST

START_TEST(test_bad_options)
{
    static const struct { const char *place, *gate; int r; const char *says; } bad[] = {
        { "after-all", "se", 8, "--se-placement 'after-all' is invalid" },
        { "after-depthwise", "cbam", 8, "--gate 'cbam' is invalid" },
        { "after-pointwise", "se", 16, "ratio 16 is invalid for mbv2-se after-pointwise" },
        { "after-depthwise", "se", 64, "ratio 64 is invalid" },
        { "after-depthwise", "se", 3, "ratio 3 is invalid" },
        { "after-depthwise", "se", 0, "ratio 0 is invalid" },
        { "after-depthwise", "eca", 4, "--r 4 does not apply to --gate eca" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        param_table t;
        char err[SEFL_ERRLEN] = "";
        model_opts o = opts(bad[i].place, bad[i].gate, bad[i].r);
        ck_assert_int_eq(params_build(&t, &o, err), -EINVAL);
        ck_assert_msg(strstr(err, bad[i].says) != NULL, "'%s' lacks '%s'", err, bad[i].says);
    }
    /* 32 divides every gated width after the depthwise */
    (void)table("after-depthwise", "se", 32);
}
END_TEST

/* ---- a reference forward pass in double ----
 * The network of arch_mbv2_se.c's opening comment, per sample, with plain
 * loops over (C, H, W) in double. */

static const double *ref_w(const param_table *t, const double *w, const char *fmt, int blk)
{
    char name[PARAM_NAME_MAX];
    snprintf(name, sizeof name, fmt, blk);
    const param_info *p = params_find(t, name);
    ck_assert_msg(p != NULL, "%s missing", name);
    return w + p->offset;
}

/* y (co, hw) = w (co, ci) x (ci, hw) + b, ReLU when relu */
static void ref_pw(const double *x, int ci, int hw, const double *w, const double *b, int co,
                   int relu, double *y)
{
    for (int o = 0; o < co; o++)
        for (int i = 0; i < hw; i++) {
            double s = b[o];
            for (int c = 0; c < ci; c++) s += w[o * ci + c] * x[c * hw + i];
            y[o * hw + i] = relu && s < 0 ? 0 : s;
        }
}

/* The gate of block blk (1-based) on x (c, hw), in place. */
static void ref_gate(const param_table *t, const double *w, int blk, double *x, int c, int hw)
{
    double s[128], e[128];
    for (int k = 0; k < c; k++) {
        s[k] = 0;
        for (int i = 0; i < hw; i++) s[k] += x[k * hw + i];
        s[k] /= hw;
    }
    if (!strcmp(t->gate, "eca")) {
        char name[PARAM_NAME_MAX];
        snprintf(name, sizeof name, "b%d.eca.weight", blk);
        const int kk = params_find(t, name)->shape[2];
        const double *kw = ref_w(t, w, "b%d.eca.weight", blk);
        for (int k = 0; k < c; k++) {
            double z = 0;
            for (int j = 0; j < kk; j++) {
                const int src = k + j - (kk - 1) / 2;
                if (src >= 0 && src < c) z += kw[j] * s[src];
            }
            e[k] = GATE_SCALE / (1.0 + exp(-z));
        }
    } else {
        const int r = c / t->r;
        const double *w1 = ref_w(t, w, "b%d.se.fc1.weight", blk), *b1 = ref_w(t, w, "b%d.se.fc1.bias", blk);
        const double *w2 = ref_w(t, w, "b%d.se.fc2.weight", blk), *b2 = ref_w(t, w, "b%d.se.fc2.bias", blk);
        double h[128];
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
    for (int k = 0; k < c; k++)
        for (int i = 0; i < hw; i++) x[k * hw + i] *= e[k];
}

static double ref_loss(const param_table *t, const double *w, const float *x, const uint8_t *y, int B)
{
    static const int spec[4][4] = { { 16, 32, 24, 2 }, { 24, 96, 24, 1 }, { 24, 96, 32, 2 }, { 32, 128, 32, 1 } };
    static double in[MODEL_PIXELS], a[16 * 26 * 26], e[96 * 13 * 13 * 4], d[128 * 13 * 13], p[32 * 13 * 13];
    const int after_pw = !strcmp(t->se_placement, "after-pointwise");
    double loss = 0.0;
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < MODEL_PIXELS; i++) in[i] = x[(long)b * MODEL_PIXELS + i];
        /* stem: valid 3x3 */
        const double *sw = ref_w(t, w, "stem.weight", 0), *sb = ref_w(t, w, "stem.bias", 0);
        for (int o = 0; o < 16; o++)
            for (int i = 0; i < 26; i++)
                for (int j = 0; j < 26; j++) {
                    double s = sb[o];
                    for (int u = 0; u < 3; u++)
                        for (int v = 0; v < 3; v++) s += sw[o * 9 + u * 3 + v] * in[(i + u) * 28 + j + v];
                    a[(o * 26 + i) * 26 + j] = s > 0 ? s : 0;
                }
        int side = 26;
        for (int k = 0; k < 4; k++) {
            const int ci = spec[k][0], ce = spec[k][1], co = spec[k][2], st = spec[k][3];
            const int os = (side - 1) / st + 1;
            ref_pw(a, ci, side * side, ref_w(t, w, "b%d.expand.weight", k + 1),
                   ref_w(t, w, "b%d.expand.bias", k + 1), ce, 1, e);
            const double *dw = ref_w(t, w, "b%d.dw.weight", k + 1), *db = ref_w(t, w, "b%d.dw.bias", k + 1);
            for (int c = 0; c < ce; c++)
                for (int i = 0; i < os; i++)
                    for (int j = 0; j < os; j++) {
                        double s = db[c];
                        for (int u = 0; u < 3; u++)
                            for (int v = 0; v < 3; v++) {
                                const int ih = i * st + u - 1, iw = j * st + v - 1;
                                if (ih >= 0 && ih < side && iw >= 0 && iw < side)
                                    s += dw[c * 9 + u * 3 + v] * e[(c * side + ih) * side + iw];
                            }
                        d[(c * os + i) * os + j] = s > 0 ? s : 0;
                    }
            if (!after_pw) ref_gate(t, w, k + 1, d, ce, os * os);
            ref_pw(d, ce, os * os, ref_w(t, w, "b%d.project.weight", k + 1),
                   ref_w(t, w, "b%d.project.bias", k + 1), co, 0, p);
            if (after_pw) ref_gate(t, w, k + 1, p, co, os * os);
            const int res = st == 1 && ci == co;
            for (int i = 0; i < co * os * os; i++) a[i] = p[i] + (res ? a[i] : 0);
            side = os;
        }
        ref_pw(a, 32, 49, ref_w(t, w, "last.weight", 0), ref_w(t, w, "last.bias", 0), 128, 1, e);
        double v[128], z[MODEL_CLASSES];
        for (int c = 0; c < 128; c++) {
            v[c] = 0;
            for (int i = 0; i < 49; i++) v[c] += e[c * 49 + i];
            v[c] /= 49;
        }
        const double *fw = ref_w(t, w, "fc.weight", 0), *fb = ref_w(t, w, "fc.bias", 0);
        double mx = -INFINITY, sum = 0.0;
        for (int k = 0; k < MODEL_CLASSES; k++) {
            z[k] = fb[k];
            for (int i = 0; i < 128; i++) z[k] += fw[k * 128 + i] * v[i];
            mx = fmax(mx, z[k]);
        }
        for (int k = 0; k < MODEL_CLASSES; k++) sum += exp(z[k] - mx);
        loss += log(sum) + mx - z[y[b]];
    }
    return loss / B;
}

/* The model's loss against the reference, then a few coordinates of every
 * tensor's gradient (among those at least a tenth of the tensor's largest)
 * against central differences of the reference. */
enum { GB = 2 };
#ifndef GRAD_SEED
#define GRAD_SEED 6
#endif
static void grad_run(const char *placement, const char *gate)
{
    model *m = new_model(placement, gate, GB, GRAD_SEED);
    float *x = malloc(GB * MODEL_PIXELS * sizeof *x);
    uint8_t y[GB];
    rng r;
    rng_seed(&r, 6);
    random_batch(&r, x, y, GB);
    const param_table *t = model_table(m);
    double *w = malloc(t->total * sizeof *w);
    ck_assert_ptr_nonnull(w);
    /* Biases start away from 0 so a ReLU's kink is rarely within eps of a
     * pre-activation the differences cross. */
    for (size_t k = 0; k < t->total; k++) w[k] = model_params(m)[k];
    const float loss = model_forward_backward(m, x, y, GB, NULL);
    ck_assert_double_eq_tol(loss, ref_loss(t, w, x, y, GB), 1e-5);
    const float *g = model_grads(m);
    int bad = 0, checked = 0;
    for (int i = 0; i < t->n; i++) {
        const param_info *p = &t->p[i];
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
                fprintf(stderr, "%s %s %s[%zu]: analytic %.6g numeric %.6g (max %.3g)\n", placement,
                        gate, p->name, k - p->offset, g[k], num, gmax);
                bad++;
            }
        }
    }
    ck_assert_int_ge(checked, 3 * t->n / 2);
    ck_assert_int_eq(bad, 0);
    free(w);
    free(x);
    model_free(m);
}

START_TEST(test_grad_dw_se)
{
    grad_run("after-depthwise", "se");
}
END_TEST

START_TEST(test_grad_pw_se)
{
    grad_run("after-pointwise", "se");
}
END_TEST

START_TEST(test_grad_dw_eca)
{
    grad_run("after-depthwise", "eca");
}
END_TEST

START_TEST(test_grad_pw_eca)
{
    grad_run("after-pointwise", "eca");
}
END_TEST

/* A batch larger than the workspace (32) runs in chunks whose gradients
 * add up to the whole batch's. */
START_TEST(test_chunks)
{
    enum { B = 40, B1 = 32 };
    model *m = new_model("after-pointwise", "se", B, 3);
    const size_t n = model_table(m)->total;
    float *x = malloc(B * MODEL_PIXELS * sizeof *x);
    float *g = malloc(n * sizeof *g), *g1 = malloc(n * sizeof *g1);
    uint8_t y[B];
    rng r;
    rng_seed(&r, 4);
    random_batch(&r, x, y, B);
    const float loss = model_forward_backward(m, x, y, B, NULL);
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
    free(x);
    free(g);
    free(g1);
    model_free(m);
}
END_TEST

/* One training split across threads: mbv2-se has no wide layer (arch.h),
 * so every layer is split by samples; the gradient is one thread's up to
 * the order of the sum over samples, also when a lane gets no samples
 * (B < threads) or runs its slice in chunks (B 70 on 2 threads), and
 * training on 2 threads stays within rounding of one thread's. */
START_TEST(test_split_threads)
{
    enum { B = 70 };
    float *x = malloc(B * MODEL_PIXELS * sizeof *x);
    uint8_t y[B];
    rng r;
    rng_seed(&r, 6);
    random_batch(&r, x, y, B);
    model *one = new_model("after-depthwise", "se", B, 2);
    const size_t n = model_table(one)->total;
    float *g = malloc(n * sizeof *g);
    const int sizes[] = { 1, 2, 10, B };
    for (int t = 2; t <= 3; t++) {
        model *m = new_model("after-depthwise", "se", B, 2);
        ck_assert_int_eq(model_set_threads(m, t), 0);
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            int c1 = -1, ct = -2;
            const float l1 = model_forward_backward(one, x, y, sizes[k], &c1);
            memcpy(g, model_grads(one), n * sizeof *g);
            const float lt = model_forward_backward(m, x, y, sizes[k], &ct);
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
    /* training (each lane gathers its own samples): within rounding of one
     * thread's */
    const sgd_config c = { .lr = 0.01f, .momentum = 0.9f };
    model *a = new_model("after-depthwise", "se", 10, 2), *init = new_model("after-depthwise", "se", 10, 2);
    model_stats sa, s1;
    ck_assert_int_eq(model_set_threads(a, 2), 0);
    ck_assert_int_eq(model_train(a, x, y, NULL, 40, 1, 10, &c, NULL, 3, &sa), 0);
    ck_assert_int_eq(model_train(one, x, y, NULL, 40, 1, 10, &c, NULL, 3, &s1), 0);
    double err = 0.0, moved = 0.0;
    for (size_t i = 0; i < n; i++) {
        err = fmax(err, fabs((double)model_params(a)[i] - model_params(one)[i]));
        moved = fmax(moved, fabs((double)model_params(one)[i] - model_params(init)[i]));
    }
    ck_assert_double_gt(moved, 1e-3);
    ck_assert_double_lt(err, 1e-4 * moved);
    ck_assert_float_eq_tol(sa.loss, s1.loss, 1e-5);
    model_free(a);
    model_free(init);
    model_free(one);
    free(g);
    free(x);
}
END_TEST

/* Each placement and gate (one loop test each, _i) learns real
 * Fashion-MNIST from a little of it: two epochs on 800 images take the
 * accuracy on 500 unseen ones from chance to well above it. (A
 * squares-at-places synthetic set, as check_model uses, does not suit a
 * network that ends in a global average pool: it tells places apart only
 * through the borders' padding.) */
START_TEST(test_train_fmnist)
{
    enum { N = 800, NT = 500, B = 10 };
    static const char *v[4][2] = { { "after-depthwise", "se" }, { "after-pointwise", "se" },
                                   { "after-depthwise", "eca" }, { "after-pointwise", "eca" } };
    dataset tr = { 0 }, te = { 0 };
    char err[SEFL_ERRLEN] = "";
    ck_assert_msg(dataset_load_fmnist(NULL, 1, &tr, err) == 0, "%s", err);
    ck_assert_msg(dataset_load_fmnist(NULL, 0, &te, err) == 0, "%s", err);
    model *m = new_model(v[_i][0], v[_i][1], B, 1);
    model_stats before, after, st;
    model_evaluate(m, te.x, te.y, NULL, NT, &before);
    const sgd_config c = { .lr = 0.01f, .momentum = 0.9f };
    ck_assert_int_eq(model_train(m, tr.x, tr.y, NULL, N, 2, B, &c, NULL, 7, &st), 0);
    model_evaluate(m, te.x, te.y, NULL, NT, &after);
    fprintf(stderr, "mbv2-se %s %s: test accuracy %.3f -> %.3f\n", v[_i][0], v[_i][1],
            before.accuracy, after.accuracy);
    ck_assert_double_lt(before.accuracy, 0.25);
    ck_assert_double_gt(after.accuracy, 0.25);
    ck_assert_double_gt(after.accuracy, 2 * before.accuracy);
    ck_assert_double_lt(after.loss, before.loss);
    model_free(m);
    dataset_free(&tr);
    dataset_free(&te);
}
END_TEST

START_TEST(test_macs)
{
    param_table t = table("after-depthwise", "se", 8), pw = table("after-pointwise", "se", 8);
    param_table e = table("after-depthwise", "eca", 8);
    /* stem 16*9*676; blocks (expand + depthwise + project):
     * b1 16*32*676 + 32*9*169 + 32*24*169, b2 24*96*169 + 96*9*169 + 96*24*169,
     * b3 24*96*169 + 96*9*49 + 96*32*49, b4 32*128*49 + 128*9*49 + 128*32*49;
     * last 32*128*49; fc 128*10 */
    const long base = 97344 + (346112 + 48672 + 129792) + (389376 + 146016 + 389376) +
                      (389376 + 42336 + 150528) + (200704 + 56448 + 200704) + 200704 + 1280;
    ck_assert_int_eq(model_macs(&t, 0), base);
    ck_assert_int_eq(model_macs(&pw, 0), base);
    ck_assert_int_eq(model_macs(&e, 0), base);
    /* SE after the depthwise: 2 * (c/8 * c) + c * OH*OW per block */
    ck_assert_int_eq(model_macs(&t, 1), base + (2 * 128 + 32 * 169) + (2 * 1152 + 96 * 169) +
                                            (2 * 1152 + 96 * 49) + (2 * 2048 + 128 * 49));
    /* ECA: k * c + c * OH*OW */
    ck_assert_int_eq(model_macs(&e, 1), base + (3 * 32 + 32 * 169) + (3 * 96 + 96 * 169) +
                                            (3 * 96 + 96 * 49) + (5 * 128 + 128 * 49));
    ck_assert_int_lt(model_macs(&pw, 1), model_macs(&t, 1));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("arch_mbv2");
    TCase *tc = tcase_create("arch_mbv2");
    /* the gradient and training tests take seconds each; AddressSanitizer
     * on a shared machine makes that a minute */
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_table);
    tcase_add_test(tc, test_bad_options);
    tcase_add_test(tc, test_grad_dw_se);
    tcase_add_test(tc, test_grad_pw_se);
    tcase_add_test(tc, test_grad_dw_eca);
    tcase_add_test(tc, test_grad_pw_eca);
    tcase_add_test(tc, test_chunks);
    tcase_add_test(tc, test_split_threads);
    tcase_add_test(tc, test_macs);
    suite_add_tcase(s, tc);
    /* a few seconds each, minutes under AddressSanitizer on a busy machine */
    TCase *tt = tcase_create("train");
    tcase_set_timeout(tt, 300);
    tcase_add_loop_test(tt, test_train_fmnist, 0, 4);
    suite_add_tcase(s, tt);
    return check_run(s);
}
