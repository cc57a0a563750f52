/* check_layers: every layer's forward against a direct reference and its
 * backward against central finite differences.
 *
 * A backward pass is checked through the scalar L = sum(g * y) for a fixed
 * random g: dL/dinput must be what backward returns when given dy = g. The
 * sum is taken in double, and outputs a perturbation does not reach are
 * bit-identical in both evaluations, so the difference quotient is accurate
 * to about 1e-4 relative; the tolerance (1e-2 relative) is far below the
 * error of reading a neighbour's gradient.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/nn/layers.h"
#include "common/rng.h"

static rng R;

static float *rnd(long n, float lo, float hi)
{
    float *p = malloc((size_t)n * sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (long i = 0; i < n; i++) p[i] = lo + (hi - lo) * (float)rng_uniform(&R);
    return p;
}

static float *zeros(long n)
{
    float *p = calloc((size_t)n, sizeof *p);
    ck_assert_ptr_nonnull(p);
    return p;
}

static double dot(const float *g, const float *y, long n)
{
    double s = 0.0;
    for (long i = 0; i < n; i++) s += (double)g[i] * y[i];
    return s;
}

/* Compares grad (n) of the tensor x with central differences of loss() at
 * every coordinate when n <= 1024, else at 1024 random ones. Returns the
 * number of coordinates out of tolerance (and prints them). */
static int fd_check(const char *what, double (*loss)(void), float *x, const float *grad, long n,
                    float eps)
{
    double gmax = 0.0;
    for (long i = 0; i < n; i++) gmax = fmax(gmax, fabs(grad[i]));
    int bad = 0;
    const long picks = n <= 1024 ? n : 1024;
    for (long k = 0; k < picks; k++) {
        const long i = n <= 1024 ? k : (long)rng_below(&R, (uint64_t)n);
        const float v = x[i];
        const float hi = v + eps, lo = v - eps;
        x[i] = hi;
        const double lp = loss();
        x[i] = lo;
        const double lm = loss();
        x[i] = v;
        const double num = (lp - lm) / ((double)hi - lo);
        if (fabs(num - grad[i]) > 1e-2 * fabs(num) + 1e-4 * gmax + 1e-6) {
            fprintf(stderr, "%s[%ld]: analytic %.6g numeric %.6g\n", what, i, grad[i], num);
            bad++;
        }
    }
    return bad;
}

/* ---- conv2d ---- */

/* OW = 6: rows of one vector step and a two-float tail */
enum { CB = 2, CC = 3, CH = 7, CW = 8, CO = 4, CK = 3, COH = CH - CK + 1, COW = CW - CK + 1 };
#define CN ((long)CB * COH * COW)
static float *cx, *cw, *cbias, *ccol, *cy, *cg;

static double conv_loss(void)
{
    conv2d_forward(cx, cw, cbias, ccol, cy, CB, CC, CH, CW, CO, CK);
    return dot(cg, cy, CO * CN);
}

START_TEST(test_conv2d)
{
    rng_seed(&R, 1);
    cx = rnd((long)CC * CB * CH * CW, -1, 1);   /* (C, B, H, W) */
    cw = rnd((long)CO * CC * CK * CK, -1, 1);   /* (O, C, K, K) */
    cbias = rnd(CO, -1, 1);
    ccol = zeros((long)CC * CK * CK * CN);
    cy = zeros(CO * CN);                         /* (O, B, OH, OW) */
    cg = rnd(CO * CN, -1, 1);

    /* forward against the definition of a valid, stride-1 convolution */
    conv_loss();
    for (int o = 0; o < CO; o++)
        for (int b = 0; b < CB; b++)
            for (int i = 0; i < COH; i++)
                for (int j = 0; j < COW; j++) {
                    double s = cbias[o];
                    for (int c = 0; c < CC; c++)
                        for (int u = 0; u < CK; u++)
                            for (int v = 0; v < CK; v++)
                                s += (double)cw[((o * CC + c) * CK + u) * CK + v] *
                                     cx[((c * CB + b) * CH + i + u) * CW + j + v];
                    ck_assert_double_eq_tol(cy[((o * CB + b) * COH + i) * COW + j], s, 1e-5);
                }

    float *dw = zeros((long)CO * CC * CK * CK), *db = zeros(CO), *dx = zeros((long)CC * CB * CH * CW);
    conv_loss();
    conv2d_backward(cg, ccol, cw, dw, db, dx, CB, CC, CH, CW, CO, CK, 0);
    ck_assert_int_eq(fd_check("conv.x", conv_loss, cx, dx, (long)CC * CB * CH * CW, 1e-2f), 0);
    ck_assert_int_eq(fd_check("conv.w", conv_loss, cw, dw, (long)CO * CC * CK * CK, 1e-2f), 0);
    ck_assert_int_eq(fd_check("conv.b", conv_loss, cbias, db, CO, 1e-2f), 0);

    /* acc = 1 adds to what is there; without dx, col is left for reuse */
    float *dw2 = zeros((long)CO * CC * CK * CK), *db2 = zeros(CO);
    for (int i = 0; i < CO * CC * CK * CK; i++) dw2[i] = 1.0f;
    for (int i = 0; i < CO; i++) db2[i] = -2.0f;
    conv_loss();
    conv2d_backward(cg, ccol, cw, dw2, db2, NULL, CB, CC, CH, CW, CO, CK, 1);
    for (int i = 0; i < CO * CC * CK * CK; i++) ck_assert_float_eq_tol(dw2[i], dw[i] + 1.0f, 1e-5);
    for (int i = 0; i < CO; i++) ck_assert_float_eq_tol(db2[i], db[i] - 2.0f, 1e-5);
    free(dw2);
    free(db2);
    free(dw);
    free(db);
    free(dx);
    free(cx);
    free(cw);
    free(cbias);
    free(ccol);
    free(cy);
    free(cg);
}
END_TEST

/* ---- ReLU ---- */

enum { RN = 50 };
static float *rx, *ry, *rg;

static double relu_loss(void)
{
    relu_forward(rx, ry, RN);
    return dot(rg, ry, RN);
}

START_TEST(test_relu)
{
    rng_seed(&R, 2);
    rx = rnd(RN, 0.1f, 1.0f);
    /* half negative, none within 0.1 of the kink */
    for (int i = 0; i < RN; i += 2) rx[i] = -rx[i];
    ry = zeros(RN);
    rg = rnd(RN, -1, 1);
    relu_loss();
    for (int i = 0; i < RN; i++) ck_assert_float_eq(ry[i], rx[i] > 0 ? rx[i] : 0.0f);
    float *dx = zeros(RN);
    relu_backward(ry, rg, dx, RN);
    ck_assert_int_eq(fd_check("relu.x", relu_loss, rx, dx, RN, 1e-3f), 0);
    /* in place: y may be x, dx may be dy */
    float *t = malloc(RN * sizeof *t);
    memcpy(t, rg, RN * sizeof *t);
    relu_backward(ry, t, t, RN);
    ck_assert_int_eq(memcmp(t, dx, RN * sizeof *t), 0);
    memcpy(t, rx, RN * sizeof *t);
    relu_loss();
    relu_forward(t, t, RN);
    ck_assert_int_eq(memcmp(t, ry, RN * sizeof *t), 0);
    free(t);
    free(dx);
    free(rx);
    free(ry);
    free(rg);
}
END_TEST

/* ---- 2x2 max-pool ---- */

/* OW = 6: one four-window vector step and two single windows per row */
enum { MP = 3, MH = 4, MW = 12 };
#define MN ((long)MP * MH * MW)
#define MON ((long)MP * (MH / 2) * (MW / 2))
static float *mx, *my, *mg;
static uint8_t *marg;

static double pool_loss(void)
{
    maxpool2_forward(mx, my, marg, MP, MH, MW);
    return dot(mg, my, MON);
}

START_TEST(test_maxpool2)
{
    rng_seed(&R, 3);
    /* distinct values 0.1 apart, shuffled: no ties, no winner change under eps */
    int *perm = malloc(MN * sizeof *perm);
    for (int i = 0; i < MN; i++) perm[i] = i;
    rng_shuffle_int(&R, perm, (int)MN);
    mx = zeros(MN);
    for (int i = 0; i < MN; i++) mx[i] = 0.1f * (float)perm[i] - 3.0f;
    my = zeros(MON);
    marg = malloc(MON);
    mg = rnd(MON, -1, 1);
    pool_loss();
    for (int p = 0; p < MP; p++)
        for (int i = 0; i < MH / 2; i++)
            for (int j = 0; j < MW / 2; j++) {
                const float *w = mx + (p * MH + 2 * i) * MW + 2 * j;
                float m = fmaxf(fmaxf(w[0], w[1]), fmaxf(w[MW], w[MW + 1]));
                ck_assert_float_eq(my[(p * (MH / 2) + i) * (MW / 2) + j], m);
            }
    float *dx = rnd(MN, 5, 6); /* every element must be overwritten */
    maxpool2_backward(mg, marg, dx, MP, MH, MW);
    ck_assert_int_eq(fd_check("pool.x", pool_loss, mx, dx, MN, 1e-3f), 0);
    /* ties go to the first of the window, and only to it: windows of one
     * to four equal maxima, in the vector and in the single-window path */
    static const float tie[2][10] = { { 1, 1, 0, 1, 0, 0, 1, 1, 1, 1 },
                                      { 1, 1, 1, 1, 1, 0, 0, 1, 0, 0 } };
    static const float want[2][10] = { { 1, 0, 0, 1, 0, 0, 1, 0, 1, 0 },
                                       { 0, 0, 0, 0, 1, 0, 0, 0, 0, 0 } };
    float ty[5], tdx[2][10], ones[5] = { 1, 1, 1, 1, 1 };
    uint8_t ta[5];
    maxpool2_forward(&tie[0][0], ty, ta, 1, 2, 10);
    maxpool2_backward(ones, ta, &tdx[0][0], 1, 2, 10);
    for (int i = 0; i < 5; i++) ck_assert_float_eq(ty[i], 1.0f);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 10; j++) ck_assert_float_eq(tdx[i][j], want[i][j]);
    free(perm);
    free(dx);
    free(mx);
    free(my);
    free(mg);
    free(marg);
}
END_TEST

/* ---- linear ---- */

enum { LB = 3, LI = 5, LO = 4 };
static float *lx, *lw, *lb, *ly, *lg;

static double linear_loss(void)
{
    linear_forward(lx, lw, lb, ly, LB, LI, LO);
    return dot(lg, ly, LB * LO);
}

START_TEST(test_linear)
{
    rng_seed(&R, 4);
    lx = rnd(LB * LI, -1, 1);
    lw = rnd(LO * LI, -1, 1);
    lb = rnd(LO, -1, 1);
    ly = zeros(LB * LO);
    lg = rnd(LB * LO, -1, 1);
    linear_loss();
    for (int b = 0; b < LB; b++)
        for (int o = 0; o < LO; o++) {
            double s = lb[o];
            for (int i = 0; i < LI; i++) s += (double)lx[b * LI + i] * lw[o * LI + i];
            ck_assert_double_eq_tol(ly[b * LO + o], s, 1e-5);
        }
    float *dw = zeros(LO * LI), *db = zeros(LO), *dx = zeros(LB * LI);
    linear_backward(lg, lx, lw, dw, db, dx, LB, LI, LO, 0);
    ck_assert_int_eq(fd_check("linear.x", linear_loss, lx, dx, LB * LI, 1e-2f), 0);
    ck_assert_int_eq(fd_check("linear.w", linear_loss, lw, dw, LO * LI, 1e-2f), 0);
    ck_assert_int_eq(fd_check("linear.b", linear_loss, lb, db, LO, 1e-2f), 0);
    /* acc adds; dx NULL is allowed */
    float *dw2 = zeros(LO * LI), *db2 = zeros(LO);
    linear_backward(lg, lx, lw, dw2, db2, NULL, LB, LI, LO, 0);
    linear_backward(lg, lx, lw, dw2, db2, NULL, LB, LI, LO, 1);
    for (int i = 0; i < LO * LI; i++) ck_assert_float_eq_tol(dw2[i], 2 * dw[i], 1e-5);
    for (int i = 0; i < LO; i++) ck_assert_float_eq_tol(db2[i], 2 * db[i], 1e-5);
    /* Split by outputs [0, 1) and [1, LO) (model.c on threads): the forward
     * parts fill y's columns and leave the others, the backward parts give
     * dw's rows and db's entries, their dx add up to the whole dx, and
     * dw NULL computes dx alone. */
    float *py = rnd(LB * LO, 5, 6), *pdw = rnd(LO * LI, 5, 6), *pdb = rnd(LO, 5, 6);
    float *pdx0 = zeros(LB * LI), *pdx1 = zeros(LB * LI);
    linear_loss(); /* ly as it is at lx, lw, lb (fd_check left a nudged one) */
    linear_forward_part(lx, lw, lb, py, LB, LI, LO, 1, LO);
    for (int b = 0; b < LB; b++) {
        ck_assert_float_ge(py[b * LO], 5.0f); /* column 0 untouched */
        for (int o = 1; o < LO; o++) ck_assert_float_eq_tol(py[b * LO + o], ly[b * LO + o], 1e-6);
    }
    linear_forward_part(lx, lw, lb, py, LB, LI, LO, 0, 1);
    for (int i = 0; i < LB * LO; i++) ck_assert_float_eq_tol(py[i], ly[i], 1e-6);
    linear_backward_part(lg, lx, lw, NULL, NULL, pdx0, LB, LI, LO, 0, 1, 0);
    for (int i = 0; i < LO * LI; i++) ck_assert_float_ge(pdw[i], 5.0f); /* dx alone */
    linear_backward_part(lg, lx, lw, pdw, pdb, pdx1, LB, LI, LO, 1, LO, 0);
    for (int i = 0; i < LI; i++) ck_assert_float_ge(pdw[i], 5.0f); /* row 0 untouched */
    ck_assert_float_ge(pdb[0], 5.0f);
    linear_backward_part(lg, lx, lw, pdw, pdb, NULL, LB, LI, LO, 0, 1, 0);
    for (int i = 0; i < LO * LI; i++) ck_assert_float_eq_tol(pdw[i], dw[i], 1e-6);
    for (int i = 0; i < LO; i++) ck_assert_float_eq_tol(pdb[i], db[i], 1e-6);
    for (int i = 0; i < LB * LI; i++) ck_assert_float_eq_tol(pdx0[i] + pdx1[i], dx[i], 1e-5);
    free(py);
    free(pdw);
    free(pdb);
    free(pdx0);
    free(pdx1);
    free(dw2);
    free(db2);
    free(dw);
    free(db);
    free(dx);
    free(lx);
    free(lw);
    free(lb);
    free(ly);
    free(lg);
}
END_TEST

/* ---- SE between ReLU and max-pool, and SE on a vector ---- */

/* W = 12: six windows per row, one vector step and two single windows */
enum { SB = 2, SC = 8, SR = 2, SH = 4, SW = 12, SHW = SH * SW, SQ = SHW / 4 };
static float *sa, *sx, *sy, *sg, *s_s, *s_h, *s_e, *s_m;
static uint8_t *s_arg;
static float *w1, *b1, *w2, *b2;
static int se_vec_mode;

/* se_pool_forward rewrites its input, so it runs on a copy sx of the
 * pre-activation sa that the finite differences perturb. */
static double se_loss(void)
{
    se_weights p = { w1, b1, w2, b2 };
    se_cache c = { s_s, s_h, s_e };
    if (se_vec_mode) {
        se_vec_forward(sa, &p, &c, sy, SB, SC, SR);
        return dot(sg, sy, SB * SC);
    }
    memcpy(sx, sa, (size_t)SC * SB * SHW * sizeof *sx);
    se_pool_forward(sx, &p, &c, s_m, s_arg, sy, SB, SC, SR, SH, SW);
    return dot(sg, sy, (long)SC * SB * SQ);
}

static void se_run(int vec)
{
    se_vec_mode = vec;
    const long n = vec ? SB * SC : (long)SC * SB * SHW;
    const long ny = vec ? SB * SC : (long)SC * SB * SQ;
    if (vec) sa = rnd(n, 0, 2);
    else {
        /* distinct values 0.01 apart, a random half negative and none within
         * 0.1 of the ReLU's kink: no winner or mask changes under eps */
        int *perm = malloc((size_t)n * sizeof *perm);
        for (int i = 0; i < n; i++) perm[i] = i;
        rng_shuffle_int(&R, perm, (int)n);
        sa = zeros(n);
        for (int i = 0; i < n; i++)
            sa[i] = (0.1f + 0.01f * (float)perm[i]) * (rng_below(&R, 2) ? 1.0f : -1.0f);
        free(perm);
    }
    sx = zeros(n);
    sy = zeros(ny);
    sg = rnd(ny, -1, 1);
    s_s = zeros(SB * SC);
    s_h = zeros(SB * SR);
    s_e = zeros(SB * SC);
    s_m = zeros(ny);
    s_arg = malloc((size_t)ny);
    w1 = rnd(SR * SC, -1, 1);
    b1 = rnd(SR, 0.2f, 0.5f);
    w2 = rnd(SC * SR, -1, 1);
    b2 = rnd(SC, -1, 1);
    se_loss();

    /* forward against the definition: SE on relu(a), then the pool */
    for (int b = 0; b < SB; b++) {
        double s[SC], h[SR], e[SC];
        for (int c = 0; c < SC; c++) {
            s[c] = 0;
            if (vec) s[c] = sa[b * SC + c];
            else {
                for (int i = 0; i < SHW; i++) s[c] += fmax(sa[(c * SB + b) * SHW + i], 0.0);
                s[c] /= SHW;
            }
        }
        for (int r = 0; r < SR; r++) {
            h[r] = b1[r];
            for (int c = 0; c < SC; c++) h[r] += (double)w1[r * SC + c] * s[c];
            h[r] = h[r] > 0 ? h[r] : 0;
        }
        for (int c = 0; c < SC; c++) {
            double z = b2[c];
            for (int r = 0; r < SR; r++) z += (double)w2[c * SR + r] * h[r];
            e[c] = GATE_SCALE / (1.0 + exp(-z));
            if (vec) {
                ck_assert_double_eq_tol(sy[b * SC + c], sa[b * SC + c] * e[c], 1e-5);
                continue;
            }
            for (int i = 0; i < SH / 2; i++)
                for (int j = 0; j < SW / 2; j++) {
                    const float *w = sa + ((c * SB + b) * SH + 2 * i) * SW + 2 * j;
                    double best = 0.0;
                    for (int k = 0; k < 4; k++) best = fmax(best, fmax(w[(k / 2) * SW + k % 2], 0.0) * e[c]);
                    ck_assert_double_eq_tol(sy[((c * SB + b) * (SH / 2) + i) * (SW / 2) + j], best, 1e-5);
                }
        }
    }

    float *dx = zeros(n), *dh = zeros(SB * SR), *dg = zeros(SB * SC), *dy = zeros(ny);
    float *gw1 = zeros(SR * SC), *gb1 = zeros(SR), *gw2 = zeros(SC * SR), *gb2 = zeros(SC);
    se_weights p = { w1, b1, w2, b2 };
    se_cache c = { s_s, s_h, s_e };
    se_grads g = { gw1, gb1, gw2, gb2 };
    if (vec) se_vec_backward(sg, sa, &p, &c, &g, dh, dg, dx, SB, SC, SR, 0);
    else {
        memcpy(dy, sg, (size_t)ny * sizeof *dy);
        se_pool_backward(dy, sx, s_arg, s_m, &p, &c, &g, dh, dg, SB, SC, SR, SH, SW, 0);
        memcpy(dx, sx, (size_t)n * sizeof *dx);
    }
    ck_assert_int_eq(fd_check("se.x", se_loss, sa, dx, n, 3e-3f), 0);
    ck_assert_int_eq(fd_check("se.w1", se_loss, w1, gw1, SR * SC, 3e-3f), 0);
    ck_assert_int_eq(fd_check("se.b1", se_loss, b1, gb1, SR, 3e-3f), 0);
    ck_assert_int_eq(fd_check("se.w2", se_loss, w2, gw2, SC * SR, 3e-3f), 0);
    ck_assert_int_eq(fd_check("se.b2", se_loss, b2, gb2, SC, 3e-3f), 0);
    if (!vec) {
        /* a position with a negative pre-activation gets no gradient */
        for (long i = 0; i < n; i++)
            if (sa[i] < 0) ck_assert_float_eq(dx[i], 0.0f);
    }

    if (vec) {
        /* dx may be dy */
        float *t = malloc((size_t)n * sizeof *t);
        memcpy(t, sg, (size_t)n * sizeof *t);
        se_loss();
        se_vec_backward(t, sa, &p, &c, &g, dh, dg, t, SB, SC, SR, 0);
        for (long i = 0; i < n; i++) ck_assert_float_eq_tol(t[i], dx[i], 1e-6);
        free(t);
    }
    free(s_arg);
    float *all[] = { dx, dh, dg, dy, gw1, gb1, gw2, gb2, sa, sx, sy, sg, s_s, s_h, s_e, s_m, w1, b1, w2, b2 };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

START_TEST(test_se_pool)
{
    rng_seed(&R, 5);
    se_run(0);
}
END_TEST

START_TEST(test_se_vec)
{
    rng_seed(&R, 6);
    se_run(1);
}
END_TEST

/* ---- pointwise convolution ---- */

enum { PB = 2, PC = 5, PHW = 7, PO = 3 };
#define PN ((long)PB * PHW)
static float *px, *pw, *pbias, *py, *pg;

static double pw_loss(void)
{
    conv1x1_forward(px, pw, pbias, py, PB, PC, PHW, PO);
    return dot(pg, py, PO * PN);
}

START_TEST(test_conv1x1)
{
    rng_seed(&R, 8);
    px = rnd(PC * PN, -1, 1);      /* (C, B, HW) */
    pw = rnd(PO * PC, -1, 1);      /* (O, C) */
    pbias = rnd(PO, -1, 1);
    py = zeros(PO * PN);
    pg = rnd(PO * PN, -1, 1);
    pw_loss();
    for (int o = 0; o < PO; o++)
        for (long i = 0; i < PN; i++) {
            double s = pbias[o];
            for (int c = 0; c < PC; c++) s += (double)pw[o * PC + c] * px[c * PN + i];
            ck_assert_double_eq_tol(py[o * PN + i], s, 1e-5);
        }
    float *dw = zeros(PO * PC), *db = zeros(PO), *dx = zeros(PC * PN);
    conv1x1_backward(pg, px, pw, dw, db, dx, PB, PC, PHW, PO, 0);
    ck_assert_int_eq(fd_check("pw.x", pw_loss, px, dx, PC * PN, 1e-2f), 0);
    ck_assert_int_eq(fd_check("pw.w", pw_loss, pw, dw, PO * PC, 1e-2f), 0);
    ck_assert_int_eq(fd_check("pw.b", pw_loss, pbias, db, PO, 1e-2f), 0);
    /* acc adds; dx NULL is allowed */
    float *dw2 = zeros(PO * PC), *db2 = zeros(PO);
    conv1x1_backward(pg, px, pw, dw2, db2, NULL, PB, PC, PHW, PO, 0);
    conv1x1_backward(pg, px, pw, dw2, db2, NULL, PB, PC, PHW, PO, 1);
    for (int i = 0; i < PO * PC; i++) ck_assert_float_eq_tol(dw2[i], 2 * dw[i], 1e-5);
    for (int i = 0; i < PO; i++) ck_assert_float_eq_tol(db2[i], 2 * db[i], 1e-5);
    float *all[] = { dw2, db2, dw, db, dx, px, pw, pbias, py, pg };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}
END_TEST

/* ---- depthwise 3x3 convolution, padding 1 ---- */

static int dB, dC, dH, dW, dS, dOH, dOW;
static float *dx_, *dw_, *db_, *dy_, *dg_;

static double dw_loss(void)
{
    dwconv3_forward(dx_, dw_, db_, dy_, dB, dC, dH, dW, dS);
    return dot(dg_, dy_, (long)dC * dB * dOH * dOW);
}

/* Forward against the definition (zero padding at every border), backward
 * against finite differences, acc, on an H x W input with stride s. */
static void dw_run(int B, int C, int H, int W, int s)
{
    dB = B, dC = C, dH = H, dW = W, dS = s;
    dOH = (H - 1) / s + 1, dOW = (W - 1) / s + 1;
    const long nx = (long)C * B * H * W, ny = (long)C * B * dOH * dOW;
    dx_ = rnd(nx, -1, 1);
    dw_ = rnd(C * 9, -1, 1);
    db_ = rnd(C, -1, 1);
    dy_ = zeros(ny);
    dg_ = rnd(ny, -1, 1);
    dw_loss();
    for (int c = 0; c < C; c++)
        for (int b = 0; b < B; b++)
            for (int i = 0; i < dOH; i++)
                for (int j = 0; j < dOW; j++) {
                    double v = db_[c];
                    for (int u = 0; u < 3; u++)
                        for (int q = 0; q < 3; q++) {
                            const int ih = i * s + u - 1, iw = j * s + q - 1;
                            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                            v += (double)dw_[c * 9 + u * 3 + q] * dx_[((long)(c * B + b) * H + ih) * W + iw];
                        }
                    ck_assert_double_eq_tol(dy_[((long)(c * B + b) * dOH + i) * dOW + j], v, 1e-5);
                }
    float *gw = zeros(C * 9), *gb = zeros(C), *gx = zeros(nx);
    /* dx is written, not added: start it dirty */
    for (long i = 0; i < nx; i++) gx[i] = 7.0f;
    dwconv3_backward(dg_, dx_, dw_, gw, gb, gx, B, C, H, W, s, 0);
    ck_assert_int_eq(fd_check("dw.x", dw_loss, dx_, gx, nx, 1e-2f), 0);
    ck_assert_int_eq(fd_check("dw.w", dw_loss, dw_, gw, C * 9, 1e-2f), 0);
    ck_assert_int_eq(fd_check("dw.b", dw_loss, db_, gb, C, 1e-2f), 0);
    float *gw2 = zeros(C * 9), *gb2 = zeros(C);
    for (int i = 0; i < C * 9; i++) gw2[i] = 1.0f;
    for (int i = 0; i < C; i++) gb2[i] = -2.0f;
    dwconv3_backward(dg_, dx_, dw_, gw2, gb2, NULL, B, C, H, W, s, 1);
    for (int i = 0; i < C * 9; i++) ck_assert_float_eq_tol(gw2[i], gw[i] + 1.0f, 1e-5);
    for (int i = 0; i < C; i++) ck_assert_float_eq_tol(gb2[i], gb[i] - 2.0f, 1e-5);
    float *all[] = { gw2, gb2, gw, gb, gx, dx_, dw_, db_, dy_, dg_ };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

START_TEST(test_dwconv3)
{
    rng_seed(&R, 9);
    dw_run(2, 3, 6, 7, 1);      /* stride 1: the output is the input's size */
    dw_run(2, 3, 7, 7, 2);      /* stride 2, odd side: 7 -> 4, both borders padded */
    dw_run(1, 2, 8, 6, 2);      /* stride 2, even sides: 8 -> 4, 6 -> 3 */
    dw_run(1, 1, 13, 13, 2);    /* mbv2-se's 13 -> 7 */
}
END_TEST

/* ---- channel gates on a feature map: SE and ECA ---- */

enum { GB = 2, GC = 12, GR = 3, GHW = 6 };
#define GN ((long)GC * GB * GHW)
static float *gx, *gy, *gg, *g_s, *g_h, *g_e, *gw1, *gb1, *gw2, *gb2, *gk;
static int g_eca, g_k;

static double gate_loss(void)
{
    if (g_eca) {
        eca_cache c = { g_s, g_e };
        eca_forward(gx, gk, &c, gy, GB, GC, GHW, g_k);
    } else {
        se_weights p = { gw1, gb1, gw2, gb2 };
        se_cache c = { g_s, g_h, g_e };
        se_map_forward(gx, &p, &c, gy, GB, GC, GR, GHW);
    }
    return dot(gg, gy, GN);
}

/* The gate of sample b, channel c computed in double from the definition. */
static double gate_ref(int b, int c)
{
    double s[GC];
    for (int ch = 0; ch < GC; ch++) {
        s[ch] = 0;
        for (int i = 0; i < GHW; i++) s[ch] += gx[((long)ch * GB + b) * GHW + i];
        s[ch] /= GHW;
    }
    double z = 0;
    if (g_eca) {
        for (int j = 0; j < g_k; j++) {
            const int src = c + j - (g_k - 1) / 2;
            if (src >= 0 && src < GC) z += (double)gk[j] * s[src];
        }
    } else {
        z = gb2[c];
        for (int r = 0; r < GR; r++) {
            double h = gb1[r];
            for (int ch = 0; ch < GC; ch++) h += (double)gw1[r * GC + ch] * s[ch];
            z += (double)gw2[c * GR + r] * (h > 0 ? h : 0);
        }
    }
    return GATE_SCALE / (1.0 + exp(-z));
}

static void gate_run(int eca, int k)
{
    g_eca = eca, g_k = k;
    gx = rnd(GN, -1, 2);
    gy = zeros(GN);
    gg = rnd(GN, -1, 1);
    g_s = zeros(GB * GC);
    g_h = zeros(GB * GR);
    g_e = zeros(GB * GC);
    gw1 = rnd(GR * GC, -1, 1);
    gb1 = rnd(GR, 0.2f, 0.5f);
    gw2 = rnd(GC * GR, -1, 1);
    gb2 = rnd(GC, -1, 1);
    gk = rnd(k, -1, 1);
    gate_loss();
    for (int c = 0; c < GC; c++)
        for (int b = 0; b < GB; b++) {
            const double e = gate_ref(b, c);
            for (int i = 0; i < GHW; i++) {
                const long at = ((long)c * GB + b) * GHW + i;
                ck_assert_double_eq_tol(gy[at], gx[at] * e, 1e-5);
            }
        }
    float *dx = zeros(GN), *dh = zeros(GB * GR), *dg = zeros(GB * GC);
    float *dw1 = zeros(GR * GC), *db1 = zeros(GR), *dw2 = zeros(GC * GR), *db2 = zeros(GC);
    float *dk = zeros(k);
    se_weights p = { gw1, gb1, gw2, gb2 };
    se_cache c = { g_s, g_h, g_e };
    se_grads g = { dw1, db1, dw2, db2 };
    eca_cache ec = { g_s, g_e };
    if (eca) eca_backward(gg, gx, gk, &ec, dk, dg, dx, GB, GC, GHW, k, 0);
    else se_map_backward(gg, gx, &p, &c, &g, dh, dg, dx, GB, GC, GR, GHW, 0);
    ck_assert_int_eq(fd_check("gate.x", gate_loss, gx, dx, GN, 3e-3f), 0);
    if (eca) {
        ck_assert_int_eq(fd_check("eca.w", gate_loss, gk, dk, k, 3e-3f), 0);
    } else {
        ck_assert_int_eq(fd_check("se_map.w1", gate_loss, gw1, dw1, GR * GC, 3e-3f), 0);
        ck_assert_int_eq(fd_check("se_map.b1", gate_loss, gb1, db1, GR, 3e-3f), 0);
        ck_assert_int_eq(fd_check("se_map.w2", gate_loss, gw2, dw2, GC * GR, 3e-3f), 0);
        ck_assert_int_eq(fd_check("se_map.b2", gate_loss, gb2, db2, GC, 3e-3f), 0);
    }
    /* dx may be dy, and acc adds to the parameter gradients */
    float *t = malloc((size_t)GN * sizeof *t), *dk2 = malloc((size_t)k * sizeof *dk2);
    memcpy(t, gg, (size_t)GN * sizeof *t);
    memcpy(dk2, dk, (size_t)k * sizeof *dk2);
    float *dw1b = malloc(GR * GC * sizeof *dw1b);
    memcpy(dw1b, dw1, GR * GC * sizeof *dw1b);
    gate_loss();
    if (eca) eca_backward(t, gx, gk, &ec, dk2, dg, t, GB, GC, GHW, k, 1);
    else {
        se_grads g2 = { dw1b, db1, dw2, db2 };
        se_map_backward(t, gx, &p, &c, &g2, dh, dg, t, GB, GC, GR, GHW, 1);
    }
    for (long i = 0; i < GN; i++) ck_assert_float_eq_tol(t[i], dx[i], 1e-6);
    if (eca) for (int j = 0; j < k; j++) ck_assert_float_eq_tol(dk2[j], 2 * dk[j], 1e-5);
    else for (int j = 0; j < GR * GC; j++) ck_assert_float_eq_tol(dw1b[j], 2 * dw1[j], 1e-5);
    float *all[] = { t, dk2, dw1b, dx, dh, dg, dw1, db1, dw2, db2, dk, gx, gy, gg, g_s, g_h, g_e,
                     gw1, gb1, gw2, gb2, gk };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

START_TEST(test_se_map)
{
    rng_seed(&R, 10);
    gate_run(0, 1);
}
END_TEST

START_TEST(test_eca)
{
    rng_seed(&R, 11);
    gate_run(1, 3);
    gate_run(1, 5);
    gate_run(1, 1);
    /* k from the channel count: |(log2 C + 1) / 2|, odd (the ECA paper's
     * table: 64 -> 3, 128 -> 5 (4 made odd), 256 -> 5, 512 -> 5) */
    static const int ck[][2] = { { 8, 3 }, { 16, 3 }, { 24, 3 }, { 32, 3 }, { 64, 3 },
                                 { 96, 3 }, { 128, 5 }, { 256, 5 }, { 512, 5 }, { 2048, 7 } };
    for (size_t i = 0; i < sizeof ck / sizeof ck[0]; i++)
        ck_assert_int_eq(eca_kernel_size(ck[i][0]), ck[i][1]);
}
END_TEST

/* ---- global average pool ---- */

enum { AB = 3, AC = 4, AHW = 5 };
static float *ax, *ay, *ag;

static double gap_loss(void)
{
    gap_forward(ax, ay, AB, AC, AHW);
    return dot(ag, ay, AB * AC);
}

START_TEST(test_gap)
{
    rng_seed(&R, 12);
    ax = rnd(AC * AB * AHW, -1, 1);
    ay = zeros(AB * AC);
    ag = rnd(AB * AC, -1, 1);
    gap_loss();
    for (int b = 0; b < AB; b++)
        for (int c = 0; c < AC; c++) {
            double m = 0;
            for (int i = 0; i < AHW; i++) m += ax[(c * AB + b) * AHW + i];
            ck_assert_double_eq_tol(ay[b * AC + c], m / AHW, 1e-6);
        }
    float *dx = zeros(AC * AB * AHW);
    gap_backward(ag, dx, AB, AC, AHW);
    ck_assert_int_eq(fd_check("gap.x", gap_loss, ax, dx, AC * AB * AHW, 1e-2f), 0);
    free(dx);
    free(ax);
    free(ay);
    free(ag);
}
END_TEST

/* ---- softmax cross-entropy ---- */

enum { XB = 3, XK = 5 };
static float *xz, *xp;
static uint8_t xy[XB] = { 4, 0, 2 };

static double xent_loss(void)
{
    return softmax_xent_forward(xz, xy, xp, XB, XK);
}

START_TEST(test_softmax_xent)
{
    rng_seed(&R, 7);
    xz = rnd(XB * XK, -3, 3);
    xp = zeros(XB * XK);
    double loss = xent_loss(), want = 0;
    for (int b = 0; b < XB; b++) {
        double s = 0;
        for (int k = 0; k < XK; k++) s += exp(xz[b * XK + k]);
        want += log(s) - xz[b * XK + xy[b]];
        double ps = 0;
        for (int k = 0; k < XK; k++) {
            ck_assert_double_eq_tol(xp[b * XK + k], exp(xz[b * XK + k]) / s, 1e-6);
            ps += xp[b * XK + k];
        }
        ck_assert_double_eq_tol(ps, 1.0, 1e-6);
    }
    ck_assert_double_eq_tol(loss, want, 1e-5);
    float *dz = zeros(XB * XK);
    softmax_xent_backward(xp, xy, dz, XB, XK, 1.0f);
    ck_assert_int_eq(fd_check("xent.z", xent_loss, xz, dz, XB * XK, 1e-2f), 0);
    /* scale multiplies the gradient (1/batch for the mean loss) */
    float *dz2 = zeros(XB * XK);
    xent_loss();
    softmax_xent_backward(xp, xy, dz2, XB, XK, 0.25f);
    for (int i = 0; i < XB * XK; i++) ck_assert_float_eq_tol(dz2[i], 0.25f * dz[i], 1e-7);
    /* large logits do not overflow */
    float big[2] = { 1000.0f, -1000.0f }, pb[2];
    uint8_t yb = 1;
    double lbig = softmax_xent_forward(big, &yb, pb, 1, 2);
    ck_assert_double_eq_tol(lbig, 2000.0, 1e-3);
    ck_assert(isfinite(pb[0]) && isfinite(pb[1]));
    free(dz);
    free(dz2);
    free(xz);
    free(xp);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("layers");
    TCase *tc = tcase_create("layers");
    tcase_add_test(tc, test_conv2d);
    tcase_add_test(tc, test_relu);
    tcase_add_test(tc, test_maxpool2);
    tcase_add_test(tc, test_linear);
    tcase_add_test(tc, test_se_pool);
    tcase_add_test(tc, test_se_vec);
    tcase_add_test(tc, test_conv1x1);
    tcase_add_test(tc, test_dwconv3);
    tcase_add_test(tc, test_se_map);
    tcase_add_test(tc, test_eca);
    tcase_add_test(tc, test_gap);
    tcase_add_test(tc, test_softmax_xent);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
