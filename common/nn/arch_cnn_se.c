/* arch_cnn_se: the `cnn-se` network, sefl's first and default architecture.
 *
 *   conv1 1->32 5x5, ReLU, SE(32, r), maxpool 2      -> 32x12x12
 *   conv2 32->64 5x5, ReLU, SE(64, r), maxpool 2     -> 64x4x4
 *   fc1 1024->512, ReLU, SE-vec(512, r) (option fc1_gate)
 *   fc  512->10 (the head)
 *
 * Options: r (1..32, dividing 32) and fc1_gate; --se-placement and --gate
 * belong to other architectures and are refused. Its table (names, shapes,
 * groups, hash 649,526 floats with the fc1 gate at r 8) is the one sefl had
 * before architectures were pluggable, byte for byte (check_params).
 *
 * Activations of the convolutional part are (C, B, H, W) (layers.h); the
 * pooled conv2 output is transposed once to (B, 1024) in PyTorch's flatten
 * order (c, h, w) for fc1.
 *
 * fc1 is the network's wide layer (arch.h): forward and backward are the
 * head (everything before fc1), fc1 and the tail (everything after it), the
 * same functions a model on several threads calls one part at a time.
 *
 * The layers are called one after the other; most of the time goes to
 * matrix multiplies (gemm.h), most of those in conv2 (forward, dw and dx). The
 * gradients of the convolutional part overwrite the activations they belong
 * to, so the backward pass needs no buffers of its own there.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/nn/arch.h"
#include "common/nn/layers.h"
#include "common/nn/model.h"

/* Geometry of cnn-se. */
#define C1 32                   /* conv1 channels */
#define C2 64                   /* conv2 channels */
#define KS 5                    /* kernel size */
#define H1 24                   /* conv1 output side */
#define P1 12                   /* after pool 1 */
#define H2 8                    /* conv2 output side */
#define P2 4                    /* after pool 2 */
#define FLAT (C2 * P2 * P2)     /* 1024, fc1's input */
#define HID 512                 /* fc1's output */

static int cnn_se_build(param_table *t, const model_opts *o, char *err)
{
    if (o->se_placement[0] || o->gate[0]) {
        err_set(err, "--%s is an option of mbv2-se, not of cnn-se",
                o->se_placement[0] ? "se-placement" : "gate");
        return -EINVAL;
    }
    /* Every SE width (32, 64, 512) must divide by r; 32 is the narrowest. */
    if (o->r < 1 || o->r > 32 || 32 % o->r != 0) {
        err_set(err, "SE reduction ratio %d is invalid: use one of 1, 2, 4, 8, 16, 32", o->r);
        return -EINVAL;
    }
    t->r = o->r;
    t->fc1_gate = o->fc1_gate ? 1 : 0;

    params_add(t, "conv1.weight", PARAM_BACKBONE, 4, 32, 1, 5, 5);
    params_add(t, "conv1.bias", PARAM_BACKBONE, 1, 32, 0, 0, 0);
    params_add_se(t, "se1", 32, t->r);
    params_add(t, "conv2.weight", PARAM_BACKBONE, 4, 64, 32, 5, 5);
    params_add(t, "conv2.bias", PARAM_BACKBONE, 1, 64, 0, 0, 0);
    params_add_se(t, "se2", 64, t->r);
    params_add(t, "fc1.weight", PARAM_BACKBONE, 2, 512, 1024, 0, 0);
    params_add(t, "fc1.bias", PARAM_BACKBONE, 1, 512, 0, 0, 0);
    if (t->fc1_gate) params_add_se(t, "se3", 512, t->r);
    params_add(t, "fc.weight", PARAM_BACKBONE | PARAM_HEAD, 2, 10, 512, 0, 0);
    params_add(t, "fc.bias", PARAM_BACKBONE | PARAM_HEAD, 1, 10, 0, 0, 0);
    return 0;
}

/* Pointers of one SE block into the weight and gradient buffers and into
 * the workspace. */
typedef struct {
    se_weights w;
    se_grads g;
    se_cache c;
} se_block;

typedef struct {
    int r;                      /* SE reduction ratio */
    int fc1_gate;               /* se3 exists */
    const param_table *t;       /* the model's table, for binding */
    const float *w;             /* (t.total) the model's weights */
    float *g;                   /* (t.total) the model's gradients */

    /* Tensors inside w, with their gradients inside g. */
    const float *conv1_w, *conv1_b, *conv2_w, *conv2_b, *fc1_w, *fc1_b, *fc_w, *fc_b;
    float *conv1_dw, *conv1_db, *conv2_dw, *conv2_db, *fc1_dw, *fc1_db, *fc_dw, *fc_db;
    se_block se1, se2, se3;     /* se3 only when t.fc1_gate */

    /* Workspace for `chunk` samples (B below). */
    float *ws;                  /* the one allocation the buffers below point into */
    uint8_t *arg;               /* the one allocation of the pooling winners */
    float *col1;                /* (25, B*576) */
    float *a1;                  /* (32, B, 24, 24) conv1, then relu(conv1); backward: its gradient */
    float *m1;                  /* (32, B, 12, 12) pooled relu(conv1) */
    uint8_t *arg1;              /* (32, B, 12, 12) */
    float *p1;                  /* (32, B, 12, 12) after SE and pool; backward: its gradient */
    float *col2;                /* (800, B*64); backward: d(col2) */
    float *a2;                  /* (64, B, 8, 8) conv2, then relu(conv2); backward: its gradient */
    float *m2;                  /* (64, B, 4, 4) pooled relu(conv2) */
    uint8_t *arg2;              /* (64, B, 4, 4) */
    float *p2;                  /* (64, B, 4, 4) after SE and pool; backward: its gradient */
    float *f;                   /* (B, 1024) p2 flattened per sample */
    float *df;                  /* (B, 1024) */
    float *r3;                  /* (B, 512) relu(fc1) */
    float *y3;                  /* (B, 512) after the gate (fc's input) */
    float *d3;                  /* (B, 512) gradient at fc's input, then at fc1's output */
    float *dh;                  /* (B, 512) SE scratch, at least (B, R) of every block */
    float *dg;                  /* (B, 512) SE scratch, at least (B, C) of every block */
} cnn_se;

/* Lays the workspace for B samples out in base; returns its size in floats.
 * Called once with base NULL to size the allocation. */
static long cnn_se_layout(cnn_se *m, float *base, int B)
{
    const int r = m->r;
    long off = 0;
    m->col1 = arch_carve(base, &off, (long)KS * KS * B * H1 * H1);
    m->a1 = arch_carve(base, &off, (long)C1 * B * H1 * H1);
    m->m1 = arch_carve(base, &off, (long)C1 * B * P1 * P1);
    m->p1 = arch_carve(base, &off, (long)C1 * B * P1 * P1);
    m->col2 = arch_carve(base, &off, (long)C1 * KS * KS * B * H2 * H2);
    m->a2 = arch_carve(base, &off, (long)C2 * B * H2 * H2);
    m->m2 = arch_carve(base, &off, (long)C2 * B * P2 * P2);
    m->p2 = arch_carve(base, &off, (long)C2 * B * P2 * P2);
    m->f = arch_carve(base, &off, (long)B * FLAT);
    m->df = arch_carve(base, &off, (long)B * FLAT);
    m->r3 = arch_carve(base, &off, (long)B * HID);
    m->y3 = arch_carve(base, &off, (long)B * HID);
    m->d3 = arch_carve(base, &off, (long)B * HID);
    m->dh = arch_carve(base, &off, (long)B * HID);
    m->dg = arch_carve(base, &off, (long)B * HID);
    se_block *se[3] = { &m->se1, &m->se2, &m->se3 };
    const int width[3] = { C1, C2, HID };
    for (int i = 0; i < 3; i++) {
        /* se3 gates fc1's features directly: nothing to squeeze. */
        se[i]->c.s = i < 2 ? arch_carve(base, &off, (long)B * width[i]) : NULL;
        se[i]->c.h = arch_carve(base, &off, (long)B * (width[i] / r));
        se[i]->c.e = arch_carve(base, &off, (long)B * width[i]);
    }
    return off;
}

static void cnn_se_bind_se(cnn_se *m, se_block *s, const char *prefix)
{
    static const char *parts[4] = { "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias" };
    const float **w[4] = { &s->w.w1, &s->w.b1, &s->w.w2, &s->w.b2 };
    float **g[4] = { &s->g.w1, &s->g.b1, &s->g.w2, &s->g.b2 };
    char name[PARAM_NAME_MAX];
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%s.%s", prefix, parts[i]);
        const param_info *p = params_find(m->t, name);
        *w[i] = m->w + p->offset;
        *g[i] = m->g + p->offset;
    }
}

/* Points the named tensors into the weight and gradient buffers. */
static void cnn_se_bind(cnn_se *m)
{
    static const char *names[8] = { "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                    "fc1.weight", "fc1.bias", "fc.weight", "fc.bias" };
    const float **w[8] = { &m->conv1_w, &m->conv1_b, &m->conv2_w, &m->conv2_b,
                           &m->fc1_w, &m->fc1_b, &m->fc_w, &m->fc_b };
    float **g[8] = { &m->conv1_dw, &m->conv1_db, &m->conv2_dw, &m->conv2_db,
                     &m->fc1_dw, &m->fc1_db, &m->fc_dw, &m->fc_db };
    for (int i = 0; i < 8; i++) {
        const param_info *p = params_find(m->t, names[i]);
        *w[i] = m->w + p->offset;
        *g[i] = m->g + p->offset;
    }
    cnn_se_bind_se(m, &m->se1, "se1");
    cnn_se_bind_se(m, &m->se2, "se2");
    if (m->fc1_gate) cnn_se_bind_se(m, &m->se3, "se3");
}

static void cnn_se_free(void *net)
{
    cnn_se *m = net;
    if (!m) return;
    free(m->ws);
    free(m->arg);
    free(m);
}

static void *cnn_se_new(const param_table *t, const float *w, float *g, int B)
{
    cnn_se *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->r = t->r;
    m->fc1_gate = t->fc1_gate;
    m->t = t;
    m->w = w;
    m->g = g;
    m->ws = arch_workspace(cnn_se_layout(m, NULL, B));
    /* Both pooling layers' winners, one byte per pooled output. */
    m->arg = malloc((size_t)B * (C1 * P1 * P1 + C2 * P2 * P2));
    if (!m->ws || !m->arg) {
        cnn_se_free(m);
        return NULL;
    }
    cnn_se_layout(m, m->ws, B);
    m->arg1 = m->arg;
    m->arg2 = m->arg + (size_t)B * C1 * P1 * P1;
    cnn_se_bind(m);
    return m;
}

/* Everything before fc1: x (B, 784) -> f (B, 1024), fc1's input. */
static void cnn_se_forward_head(void *net, const float *x, float *f, int B)
{
    cnn_se *m = net;
    const int r = m->r;
    conv2d_forward(x, m->conv1_w, m->conv1_b, m->col1, m->a1, B, 1, MODEL_IMG, MODEL_IMG, C1, KS);
    se_pool_forward(m->a1, &m->se1.w, &m->se1.c, m->m1, m->arg1, m->p1, B, C1, C1 / r, H1, H1);
    conv2d_forward(m->p1, m->conv2_w, m->conv2_b, m->col2, m->a2, B, C1, P1, P1, C2, KS);
    se_pool_forward(m->a2, &m->se2.w, &m->se2.c, m->m2, m->arg2, m->p2, B, C2, C2 / r, H2, H2);

    /* (64, B, 16) -> (B, 64*16): PyTorch's flatten order per sample. */
    for (int c = 0; c < C2; c++)
        for (int b = 0; b < B; b++)
            memcpy(f + (long)b * FLAT + c * P2 * P2, m->p2 + ((long)c * B + b) * P2 * P2,
                   P2 * P2 * sizeof *f);
}

/* Everything after fc1's multiply: h (B, 512) -> logits (B, 10). */
static void cnn_se_forward_tail(void *net, const float *h, float *logits, int B)
{
    cnn_se *m = net;
    relu_forward(h, m->r3, (long)B * HID);
    const float *feat = m->r3;
    if (m->fc1_gate) {
        se_vec_forward(m->r3, &m->se3.w, &m->se3.c, m->y3, B, HID, HID / m->r);
        feat = m->y3;
    }
    linear_forward(feat, m->fc_w, m->fc_b, logits, B, HID, MODEL_CLASSES);
}

static void cnn_se_forward(void *net, const float *x, float *logits, int B)
{
    cnn_se *m = net;
    cnn_se_forward_head(m, x, m->f, B);
    /* fc1's output goes to r3, where the tail's ReLU keeps it. */
    linear_forward(m->f, m->fc1_w, m->fc1_b, m->r3, B, FLAT, HID);
    cnn_se_forward_tail(m, m->r3, logits, B);
}

/* dlogits (B, 10) -> dh (B, 512), the gradient at fc1's output (before
 * its ReLU); dh may be the workspace's d3. */
static void cnn_se_backward_tail(void *net, const float *dlogits, float *dh, int B, int acc)
{
    cnn_se *m = net;
    const float *feat = m->fc1_gate ? m->y3 : m->r3;
    linear_backward(dlogits, feat, m->fc_w, m->fc_dw, m->fc_db, m->d3, B, HID, MODEL_CLASSES, acc);
    if (m->fc1_gate)
        se_vec_backward(m->d3, m->r3, &m->se3.w, &m->se3.c, &m->se3.g, m->dh, m->dg, m->d3,
                        B, HID, HID / m->r, acc);
    relu_backward(m->r3, m->d3, dh, (long)B * HID);
}

/* df (B, 1024), the gradient at fc1's input -> every gradient before fc1. */
static void cnn_se_backward_head(void *net, const float *df, int B, int acc)
{
    cnn_se *m = net;
    const int r = m->r;
    /* Gradients of the convolutional part overwrite the activations they
     * belong to, which the backward pass no longer needs. */
    float *dp2 = m->p2, *dp1 = m->p1;
    for (int c = 0; c < C2; c++)
        for (int b = 0; b < B; b++)
            memcpy(dp2 + ((long)c * B + b) * P2 * P2, df + (long)b * FLAT + c * P2 * P2,
                   P2 * P2 * sizeof *dp2);
    se_pool_backward(dp2, m->a2, m->arg2, m->m2, &m->se2.w, &m->se2.c, &m->se2.g, m->dh, m->dg,
                     B, C2, C2 / r, H2, H2, acc);
    conv2d_backward(m->a2, m->col2, m->conv2_w, m->conv2_dw, m->conv2_db, dp1,
                    B, C1, P1, P1, C2, KS, acc);
    se_pool_backward(dp1, m->a1, m->arg1, m->m1, &m->se1.w, &m->se1.c, &m->se1.g, m->dh, m->dg,
                     B, C1, C1 / r, H1, H1, acc);
    /* The input image needs no gradient. */
    conv2d_backward(m->a1, m->col1, m->conv1_w, m->conv1_dw, m->conv1_db, NULL,
                    B, 1, MODEL_IMG, MODEL_IMG, C1, KS, acc);
}

static void cnn_se_backward(void *net, const float *dlogits, int B, int acc)
{
    cnn_se *m = net;
    cnn_se_backward_tail(m, dlogits, m->d3, B, acc);
    linear_backward(m->d3, m->f, m->fc1_w, m->fc1_dw, m->fc1_db, m->df, B, FLAT, HID, acc);
    cnn_se_backward_head(m, m->df, B, acc);
}

/* Multiply-accumulates per sample of the network with c1 channels out of
 * conv1, c2 out of conv2 and hid features out of fc1, with or without the
 * SE gates: each layer's weights times the positions they slide over, each
 * SE block's two linear layers (their hidden width R fixed by the table)
 * and its per-element scaling (the squeeze's additions are not counted). */
static long cnn_se_macs_width(const param_table *t, int with_se, long c1, long c2, long hid)
{
    static const char *se_w1[MODEL_SE_BLOCKS] = { "se1.fc1.weight", "se2.fc1.weight", "se3.fc1.weight" };
    const long width[MODEL_SE_BLOCKS] = { c1, c2, hid };
    const long positions[MODEL_SE_BLOCKS] = { H1 * H1, H2 * H2, 1 };
    long macs = KS * KS * c1 * H1 * H1 + c1 * KS * KS * c2 * H2 * H2 + c2 * P2 * P2 * hid
              + hid * MODEL_CLASSES;
    for (int k = 0; with_se && k < MODEL_SE_BLOCKS; k++) {
        const param_info *w1 = params_find(t, se_w1[k]);
        if (w1) macs += 2L * w1->shape[0] * width[k] + width[k] * positions[k];
    }
    return macs;
}

static long cnn_se_macs(const param_table *t, int with_se)
{
    return cnn_se_macs_width(t, with_se, C1, C2, HID);
}

static long cnn_se_macs_pruned(const param_table *t, const int *removed)
{
    return cnn_se_macs_width(t, 1, C1 - removed[0], C2 - removed[1], HID - removed[2]);
}

static const float *cnn_se_gates(const void *net, int block, int *channels)
{
    static const int width[MODEL_SE_BLOCKS] = { C1, C2, HID };
    const cnn_se *m = net;
    if (block == 2 && !m->fc1_gate) return NULL;
    const se_block *s[MODEL_SE_BLOCKS] = { &m->se1, &m->se2, &m->se3 };
    *channels = width[block];
    return s[block]->c.e;
}

const model_arch arch_cnn_se = {
    .name = "cnn-se",
    .conv_gain = 1.0,
    .build = cnn_se_build,
    .net_new = cnn_se_new,
    .net_free = cnn_se_free,
    .forward = cnn_se_forward,
    .backward = cnn_se_backward,
    .wide = "fc1",
    .forward_head = cnn_se_forward_head,
    .forward_tail = cnn_se_forward_tail,
    .backward_tail = cnn_se_backward_tail,
    .backward_head = cnn_se_backward_head,
    .macs = cnn_se_macs,
    .gates = cnn_se_gates,
    .macs_pruned = cnn_se_macs_pruned,
};
