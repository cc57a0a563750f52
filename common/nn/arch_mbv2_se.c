/* arch_mbv2_se: `mbv2-se`, a small MobileNetV2-style network with channel
 * gates, for 28x28 single-channel images.
 *
 *   stem   conv 1->16 3x3 (valid), ReLU                        -> 16x26x26
 *   b1     inverted residual 16 -> 32 -> 24, stride 2           -> 24x13x13
 *   b2     inverted residual 24 -> 96 -> 24, stride 1, residual -> 24x13x13
 *   b3     inverted residual 24 -> 96 -> 32, stride 2           -> 32x7x7
 *   b4     inverted residual 32 -> 128 -> 32, stride 1, residual -> 32x7x7
 *   last   conv 1x1 32->128, ReLU, global average pool          -> 128
 *   fc     128->10 (the head)
 *
 * An inverted residual block (Sandler et al., 2018) is a 1x1 expansion
 * (ReLU), a depthwise 3x3 (padding 1, the block's stride, ReLU) and a
 * linear 1x1 projection, plus the input when the shapes match. It differs
 * from the paper's in three ways, said here so nobody compares it to the
 * paper's figures: ReLU instead of ReLU6, no batch normalisation (a
 * federated batch-norm statistic is a question of its own, and sefl has no
 * such layer), and every block expands (the paper's first block does not;
 * b1 expands by 2 only, the others by 4, to keep the 26x26 stage cheap).
 *
 * One channel gate per block, in group `se` (private under --private se):
 *   --se-placement after-depthwise (default): on the expanded channels
 *       between the depthwise ReLU and the projection (MobileNetV3's place);
 *   --se-placement after-pointwise: on the projection's output, before the
 *       residual sum (SE-ResNet's place), on 4x fewer channels.
 *   --gate se (default): the SE excitation, reduction ratio --r (dividing
 *       every gated width: 1, 2, 4 or 8 after-pointwise, up to 32 after
 *       the depthwise);
 *   --gate eca: ECA's 1-D convolution over the channel means, kernel size
 *       eca_kernel_size(C) (3 or 5 here); --r does not apply (the table
 *       records r 0).
 *
 * Convolution weights are initialised with He's uniform bound (conv_gain
 * sqrt(6), see arch.h), not PyTorch's default, for the want of batch
 * normalisation.
 *
 * Activations are (C, B, H, W) as in every layer (layers.h). The backward
 * pass runs through three scratch buffers and two ping-pong buffers for the
 * gradient between blocks; the forward activations stay as they are.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/nn/arch.h"
#include "common/nn/layers.h"
#include "common/nn/model.h"

#define STEM_C 16               /* stem channels */
#define S0 26                   /* stem output side */
#define LAST_C 128              /* the last 1x1 convolution's channels */
#define NBLK 4

/* The blocks: input, expanded and output channels, stride. */
static const struct {
    int in, exp, out, stride;
} ir_spec[NBLK] = {
    { 16, 32, 24, 2 },
    { 24, 96, 24, 1 },
    { 24, 96, 32, 2 },
    { 32, 128, 32, 1 },
};

static const char *const mbv2_placements[] = { "after-depthwise", "after-pointwise" };
static const char *const mbv2_gates[] = { "se", "eca" };

/* One inverted residual block: its tensors, gate and activations. */
typedef struct {
    int ci, ce, co, stride;     /* input, expanded, output channels */
    int H, W, OH, OW;           /* input and output sides */
    int residual;               /* stride 1 and in == out */
    int gw;                     /* channels the gate scales */
    int R;                      /* SE: gw / r */
    int k;                      /* ECA: kernel size */

    const float *we, *be, *wd, *bd, *wp, *bp;   /* expand, depthwise, project */
    float *gwe, *gbe, *gwd, *gbd, *gwp, *gbp;
    se_weights se;              /* --gate se */
    se_grads seg;
    se_cache sec;
    const float *ek;            /* --gate eca: (k) */
    float *gek;
    eca_cache ecc;

    const float *x;             /* (in, B, H, W) the block's input (the previous block's out) */
    float *e;                   /* (exp, B, H, W) relu(expand) */
    float *d;                   /* (exp, B, OH, OW) relu(depthwise) */
    float *dgt;                 /* (exp, B, OH, OW) gated d (after-depthwise) */
    float *p;                   /* (out, B, OH, OW) projection */
    float *pgt;                 /* (out, B, OH, OW) gated p (after-pointwise) */
    float *out;                 /* (out, B, OH, OW) the block's output: p' + x, or p' itself */
    float *outbuf;              /* (out, B, OH, OW) where p' + x goes when residual */
} ir_block;

typedef struct {
    const param_table *t;
    const float *w;             /* (t.total) the model's weights */
    float *g;                   /* (t.total) the model's gradients */
    int after_pw;               /* 1: gates after the projection */
    int eca;                    /* 1: ECA gates, else SE */

    const float *sw, *sb, *lw, *lb, *fw, *fb;   /* stem, last, fc */
    float *gsw, *gsb, *glw, *glb, *gfw, *gfb;
    ir_block blk[NBLK];

    float *ws;                  /* the one allocation everything below points into */
    float *col;                 /* (9, B*26*26) the stem's im2col */
    float *a0;                  /* (16, B, 26, 26) relu(stem) */
    float *h;                   /* (128, B, 7, 7) relu(last) */
    float *v;                   /* (B, 128) pooled h, fc's input */
    float *dv;                  /* (B, 128) */
    float *ga, *gb;             /* (max C*H*W at a block boundary, B) gradient between blocks */
    float *s1;                  /* (max out*OH*OW, B) */
    float *s2;                  /* (max exp*OH*OW, B) */
    float *s3;                  /* (max exp*H*W and 128*7*7, B) */
    float *dh;                  /* (B, max R) SE scratch */
    float *dg;                  /* (B, max gw) gate scratch */
} mbv2;

/* Index of s in names (n), or -1. */
static int mbv2_pick(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

/* The width the gate of block i scales. */
static int mbv2_gate_width(int i, int after_pw)
{
    return after_pw ? ir_spec[i].out : ir_spec[i].exp;
}

static int mbv2_build(param_table *t, const model_opts *o, char *err)
{
    const char *place = o->se_placement[0] ? o->se_placement : mbv2_placements[0];
    const char *gate = o->gate[0] ? o->gate : mbv2_gates[0];
    const int after_pw = mbv2_pick(place, mbv2_placements, 2);
    const int eca = mbv2_pick(gate, mbv2_gates, 2);
    if (after_pw < 0) {
        err_set(err, "--se-placement '%s' is invalid: use after-depthwise or after-pointwise", place);
        return -EINVAL;
    }
    if (eca < 0) {
        err_set(err, "--gate '%s' is invalid: use se or eca", gate);
        return -EINVAL;
    }
    if (eca) {
        /* ECA has no reduction ratio: 8 is every program's default, 0 what
         * the table records; anything else was asked for and cannot be had. */
        if (o->r != 8 && o->r != 0) {
            err_set(err, "--r %d does not apply to --gate eca (ECA has no reduction ratio)", o->r);
            return -EINVAL;
        }
        t->r = 0;
    } else {
        for (int i = 0; i < NBLK; i++) {
            const int c = mbv2_gate_width(i, after_pw);
            if (o->r < 1 || o->r > c || c % o->r) {
                err_set(err, "SE reduction ratio %d is invalid for mbv2-se %s: use one of %s", o->r,
                        place, after_pw ? "1, 2, 4, 8" : "1, 2, 4, 8, 16, 32");
                return -EINVAL;
            }
        }
        t->r = o->r;
    }
    /* fc1_gate is cnn-se's; no flag sets it, so the programs' default is
     * not an error here. */
    t->fc1_gate = 0;
    snprintf(t->se_placement, sizeof t->se_placement, "%s", place);
    snprintf(t->gate, sizeof t->gate, "%s", gate);

    char name[PARAM_NAME_MAX];
    params_add(t, "stem.weight", PARAM_BACKBONE, 4, STEM_C, 1, 3, 3);
    params_add(t, "stem.bias", PARAM_BACKBONE, 1, STEM_C, 0, 0, 0);
    for (int i = 0; i < NBLK; i++) {
        const int in = ir_spec[i].in, ex = ir_spec[i].exp, out = ir_spec[i].out;
        for (int part = 0; part < 3; part++) {
            /* expand, depthwise, project; the gate after the one its
             * placement names */
            static const char *parts[3] = { "expand", "dw", "project" };
            const int shape[3][4] = { { ex, in, 1, 1 }, { ex, 1, 3, 3 }, { out, ex, 1, 1 } };
            snprintf(name, sizeof name, "b%d.%s.weight", i + 1, parts[part]);
            params_add(t, name, PARAM_BACKBONE, 4, shape[part][0], shape[part][1], shape[part][2],
                       shape[part][3]);
            snprintf(name, sizeof name, "b%d.%s.bias", i + 1, parts[part]);
            params_add(t, name, PARAM_BACKBONE, 1, shape[part][0], 0, 0, 0);
            if (part != (after_pw ? 2 : 1)) continue;
            const int c = mbv2_gate_width(i, after_pw);
            if (eca) {
                snprintf(name, sizeof name, "b%d.eca.weight", i + 1);
                params_add(t, name, PARAM_SE, 3, 1, 1, eca_kernel_size(c), 0);
            } else {
                snprintf(name, sizeof name, "b%d.se", i + 1);
                params_add_se(t, name, c, t->r);
            }
        }
    }
    params_add(t, "last.weight", PARAM_BACKBONE, 4, LAST_C, ir_spec[NBLK - 1].out, 1, 1);
    params_add(t, "last.bias", PARAM_BACKBONE, 1, LAST_C, 0, 0, 0);
    params_add(t, "fc.weight", PARAM_BACKBONE | PARAM_HEAD, 2, MODEL_CLASSES, LAST_C, 0, 0);
    params_add(t, "fc.bias", PARAM_BACKBONE | PARAM_HEAD, 1, MODEL_CLASSES, 0, 0, 0);
    return 0;
}

/* Points *w and *g at the tensor called name. */
static void mbv2_bind1(mbv2 *m, const char *name, const float **w, float **g)
{
    const param_info *p = params_find(m->t, name);
    *w = m->w + p->offset;
    *g = m->g + p->offset;
}

/* Binds the tensors of block i and sets its geometry. */
static void mbv2_bind_block(mbv2 *m, int i, int H)
{
    ir_block *b = &m->blk[i];
    char name[PARAM_NAME_MAX];
    b->ci = ir_spec[i].in;
    b->ce = ir_spec[i].exp;
    b->co = ir_spec[i].out;
    b->stride = ir_spec[i].stride;
    b->H = b->W = H;
    b->OH = b->OW = (H - 1) / b->stride + 1;
    b->residual = b->stride == 1 && b->ci == b->co;
    b->gw = mbv2_gate_width(i, m->after_pw);
#define BIND(part, w, g)                                                     \
    do {                                                                     \
        snprintf(name, sizeof name, "b%d.%s", i + 1, part);                  \
        mbv2_bind1(m, name, &b->w, &b->g);                                   \
    } while (0)
    BIND("expand.weight", we, gwe);
    BIND("expand.bias", be, gbe);
    BIND("dw.weight", wd, gwd);
    BIND("dw.bias", bd, gbd);
    BIND("project.weight", wp, gwp);
    BIND("project.bias", bp, gbp);
    if (m->eca) {
        BIND("eca.weight", ek, gek);
        b->k = params_find(m->t, name)->shape[2];
    } else {
        BIND("se.fc1.weight", se.w1, seg.w1);
        BIND("se.fc1.bias", se.b1, seg.b1);
        BIND("se.fc2.weight", se.w2, seg.w2);
        BIND("se.fc2.bias", se.b2, seg.b2);
        b->R = b->gw / m->t->r;
    }
#undef BIND
}

/* Lays the workspace for B samples out in base (NULL: only counts);
 * returns its size in floats. The blocks must be bound. */
static long mbv2_layout(mbv2 *m, float *base, int B)
{
    long off = 0, bound = (long)STEM_C * S0 * S0, s1 = 0, s2 = 0, s3 = (long)LAST_C * 7 * 7;
    int maxgw = 0, maxr = 1;
    m->col = arch_carve(base, &off, 9L * B * S0 * S0);
    m->a0 = arch_carve(base, &off, (long)STEM_C * B * S0 * S0);
    const float *x = m->a0;
    for (int i = 0; i < NBLK; i++) {
        ir_block *b = &m->blk[i];
        const long hw = (long)b->H * b->W, ohw = (long)b->OH * b->OW;
        b->x = x;
        b->e = arch_carve(base, &off, b->ce * B * hw);
        b->d = arch_carve(base, &off, b->ce * B * ohw);
        b->dgt = m->after_pw ? NULL : arch_carve(base, &off, b->ce * B * ohw);
        b->p = arch_carve(base, &off, b->co * B * ohw);
        b->pgt = m->after_pw ? arch_carve(base, &off, b->co * B * ohw) : NULL;
        b->outbuf = b->residual ? arch_carve(base, &off, b->co * B * ohw) : NULL;
        b->out = b->residual ? b->outbuf : m->after_pw ? b->pgt : b->p;
        b->sec.s = b->ecc.s = arch_carve(base, &off, (long)B * b->gw);
        b->sec.e = b->ecc.e = arch_carve(base, &off, (long)B * b->gw);
        b->sec.h = m->eca ? NULL : arch_carve(base, &off, (long)B * b->R);
        x = b->out;
        bound = b->co * ohw > bound ? b->co * ohw : bound;
        s1 = b->co * ohw > s1 ? b->co * ohw : s1;
        s2 = b->ce * ohw > s2 ? b->ce * ohw : s2;
        s3 = b->ce * hw > s3 ? b->ce * hw : s3;
        maxgw = b->gw > maxgw ? b->gw : maxgw;
        maxr = b->R > maxr ? b->R : maxr;
    }
    m->h = arch_carve(base, &off, (long)LAST_C * B * 7 * 7);
    m->v = arch_carve(base, &off, (long)B * LAST_C);
    m->dv = arch_carve(base, &off, (long)B * LAST_C);
    m->ga = arch_carve(base, &off, bound * B);
    m->gb = arch_carve(base, &off, bound * B);
    m->s1 = arch_carve(base, &off, s1 * B);
    m->s2 = arch_carve(base, &off, s2 * B);
    m->s3 = arch_carve(base, &off, s3 * B);
    m->dh = arch_carve(base, &off, (long)B * maxr);
    m->dg = arch_carve(base, &off, (long)B * maxgw);
    return off;
}

static void mbv2_free(void *net)
{
    mbv2 *m = net;
    if (!m) return;
    free(m->ws);
    free(m);
}

static void *mbv2_new(const param_table *t, const float *w, float *g, int B)
{
    mbv2 *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->t = t;
    m->w = w;
    m->g = g;
    m->after_pw = !strcmp(t->se_placement, mbv2_placements[1]);
    m->eca = !strcmp(t->gate, mbv2_gates[1]);
    mbv2_bind1(m, "stem.weight", &m->sw, &m->gsw);
    mbv2_bind1(m, "stem.bias", &m->sb, &m->gsb);
    mbv2_bind1(m, "last.weight", &m->lw, &m->glw);
    mbv2_bind1(m, "last.bias", &m->lb, &m->glb);
    mbv2_bind1(m, "fc.weight", &m->fw, &m->gfw);
    mbv2_bind1(m, "fc.bias", &m->fb, &m->gfb);
    int side = S0;
    for (int i = 0; i < NBLK; i++) {
        mbv2_bind_block(m, i, side);
        side = m->blk[i].OH;
    }
    m->ws = arch_workspace(mbv2_layout(m, NULL, B));
    if (!m->ws) {
        mbv2_free(m);
        return NULL;
    }
    mbv2_layout(m, m->ws, B);
    return m;
}

/* y = gate(x) on the block's gated width, planes of hw. */
static void mbv2_gate_forward(const mbv2 *m, ir_block *b, const float *x, float *y, int B, int hw)
{
    if (m->eca) eca_forward(x, b->ek, &b->ecc, y, B, b->gw, hw, b->k);
    else se_map_forward(x, &b->se, &b->sec, y, B, b->gw, b->R, hw);
}

/* dx (may be dy) from dy and the gate's input x; gate gradients per acc. */
static void mbv2_gate_backward(mbv2 *m, ir_block *b, const float *dy, const float *x, float *dx,
                               int B, int hw, int acc)
{
    if (m->eca) eca_backward(dy, x, b->ek, &b->ecc, b->gek, m->dg, dx, B, b->gw, hw, b->k, acc);
    else se_map_backward(dy, x, &b->se, &b->sec, &b->seg, m->dh, m->dg, dx, B, b->gw, b->R, hw, acc);
}

static void mbv2_forward(void *net, const float *x, float *logits, int B)
{
    mbv2 *m = net;
    conv2d_forward(x, m->sw, m->sb, m->col, m->a0, B, 1, MODEL_IMG, MODEL_IMG, STEM_C, 3);
    relu_forward(m->a0, m->a0, (long)STEM_C * B * S0 * S0);
    for (int i = 0; i < NBLK; i++) {
        ir_block *b = &m->blk[i];
        const int hw = b->H * b->W, ohw = b->OH * b->OW;
        conv1x1_forward(b->x, b->we, b->be, b->e, B, b->ci, hw, b->ce);
        relu_forward(b->e, b->e, (long)b->ce * B * hw);
        dwconv3_forward(b->e, b->wd, b->bd, b->d, B, b->ce, b->H, b->W, b->stride);
        relu_forward(b->d, b->d, (long)b->ce * B * ohw);
        const float *dsrc = b->d;
        if (!m->after_pw) {
            mbv2_gate_forward(m, b, b->d, b->dgt, B, ohw);
            dsrc = b->dgt;
        }
        conv1x1_forward(dsrc, b->wp, b->bp, b->p, B, b->ce, ohw, b->co);
        const float *psrc = b->p;
        if (m->after_pw) {
            mbv2_gate_forward(m, b, b->p, b->pgt, B, ohw);
            psrc = b->pgt;
        }
        if (b->residual)
            for (long k = 0; k < (long)b->co * B * ohw; k++) b->outbuf[k] = psrc[k] + b->x[k];
    }
    const ir_block *lastb = &m->blk[NBLK - 1];
    const int hw = lastb->OH * lastb->OW;
    conv1x1_forward(lastb->out, m->lw, m->lb, m->h, B, lastb->co, hw, LAST_C);
    relu_forward(m->h, m->h, (long)LAST_C * B * hw);
    gap_forward(m->h, m->v, B, LAST_C, hw);
    linear_forward(m->v, m->fw, m->fb, logits, B, LAST_C, MODEL_CLASSES);
}

static void mbv2_backward(void *net, const float *dlogits, int B, int acc)
{
    mbv2 *m = net;
    const ir_block *lastb = &m->blk[NBLK - 1];
    const int lhw = lastb->OH * lastb->OW;
    linear_backward(dlogits, m->v, m->fw, m->gfw, m->gfb, m->dv, B, LAST_C, MODEL_CLASSES, acc);
    gap_backward(m->dv, m->s3, B, LAST_C, lhw);
    relu_backward(m->h, m->s3, m->s3, (long)LAST_C * B * lhw);
    float *gout = m->ga;
    conv1x1_backward(m->s3, lastb->out, m->lw, m->glw, m->glb, gout, B, lastb->co, lhw, LAST_C,
                     acc);
    for (int i = NBLK - 1; i >= 0; i--) {
        ir_block *b = &m->blk[i];
        const int hw = b->H * b->W, ohw = b->OH * b->OW;
        const float *dp = gout;
        if (m->after_pw) {
            mbv2_gate_backward(m, b, gout, b->p, m->s1, B, ohw, acc);
            dp = m->s1;
        }
        conv1x1_backward(dp, m->after_pw ? b->d : b->dgt, b->wp, b->gwp, b->gbp, m->s2,
                         B, b->ce, ohw, b->co, acc);
        if (!m->after_pw) mbv2_gate_backward(m, b, m->s2, b->d, m->s2, B, ohw, acc);
        relu_backward(b->d, m->s2, m->s2, (long)b->ce * B * ohw);
        dwconv3_backward(m->s2, b->e, b->wd, b->gwd, b->gbd, m->s3, B, b->ce, b->H, b->W,
                         b->stride, acc);
        relu_backward(b->e, m->s3, m->s3, (long)b->ce * B * hw);
        float *gin = gout == m->ga ? m->gb : m->ga;
        conv1x1_backward(m->s3, b->x, b->we, b->gwe, b->gbe, gin, B, b->ci, hw, b->ce, acc);
        if (b->residual)
            for (long k = 0; k < (long)b->ci * B * hw; k++) gin[k] += gout[k];
        gout = gin;
    }
    relu_backward(m->a0, gout, gout, (long)STEM_C * B * S0 * S0);
    /* The input image needs no gradient. */
    conv2d_backward(gout, m->col, m->sw, m->gsw, m->gsb, NULL, B, 1, MODEL_IMG, MODEL_IMG, STEM_C, 3,
                    acc);
}

/* Multiply-accumulates of block i's gate on planes of hw: the SE's two
 * linear layers or ECA's convolution, and the scaling (the squeeze's
 * additions are not counted, as in cnn-se). */
static long mbv2_gate_macs(const param_table *t, int i, long hw)
{
    char name[PARAM_NAME_MAX];
    const int after_pw = !strcmp(t->se_placement, mbv2_placements[1]);
    const long c = mbv2_gate_width(i, after_pw);
    if (!strcmp(t->gate, mbv2_gates[1])) {
        snprintf(name, sizeof name, "b%d.eca.weight", i + 1);
        return (long)params_find(t, name)->size * c + c * hw;
    }
    snprintf(name, sizeof name, "b%d.se.fc1.weight", i + 1);
    return (long)params_find(t, name)->size * 2 + c * hw;
}

static long mbv2_macs(const param_table *t, int with_gates)
{
    long macs = (long)STEM_C * 9 * S0 * S0, side = S0;
    for (int i = 0; i < NBLK; i++) {
        const long hw = side * side, os = (side - 1) / ir_spec[i].stride + 1, ohw = os * os;
        macs += (long)ir_spec[i].in * ir_spec[i].exp * hw + (long)ir_spec[i].exp * 9 * ohw +
                (long)ir_spec[i].exp * ir_spec[i].out * ohw;
        if (with_gates) macs += mbv2_gate_macs(t, i, ohw);
        side = os;
    }
    return macs + (long)ir_spec[NBLK - 1].out * LAST_C * side * side + (long)LAST_C * MODEL_CLASSES;
}

const model_arch arch_mbv2_se = {
    .name = "mbv2-se",
    /* 14 convolutions deep with no normalisation: PyTorch's default bound
     * shrinks the signal about threefold per layer and the network does
     * not start learning (a flat loss of ln 10 for epochs); He's bound
     * keeps it (check_arch_mbv2 trains it). */
    .conv_gain = 2.449489742783178,     /* sqrt(6) */
    .build = mbv2_build,
    .net_new = mbv2_new,
    .net_free = mbv2_free,
    .forward = mbv2_forward,
    .backward = mbv2_backward,
    .macs = mbv2_macs,
};
