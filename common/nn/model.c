/* model: a network of any registered architecture (arch.h), trained with
 * SGD; see model.h.
 *
 * A model is its parameter table, three buffers of table.total floats
 * (weights, gradients, momentum), the architecture's network state (its
 * tensors' places in those buffers and its activation workspace) and the
 * softmax cross-entropy around it, which every architecture shares. The
 * workspace holds MODEL_CHUNK samples at most: a larger mini-batch is run in
 * chunks whose parameter gradients add up (nothing in the networks mixes
 * samples, so this is exact), which keeps a model's memory bounded whatever
 * batch a coordinator asks for.
 *
 * Threads (model_set_threads). A model with T threads has T lanes: itself
 * and T-1 replicas that read its weights and own their gradients and
 * network workspace. Most layers are split by samples: a mini-batch is cut
 * into T contiguous slices and lane i runs slice i, each gradient scaled by
 * 1/(whole batch); at the end every thread adds the lanes' gradients over
 * its own block of the parameters, in lane order, and applies the SGD step
 * to that block.
 *
 * An architecture's widest linear layer (arch.h: wide; cnn-se's fc1, 90% of
 * its parameters) is split by output features instead. Split by samples, a
 * layer whose weights are read once per multiply costs every lane the whole
 * weight read (forward and for the input gradient) for a few samples, a
 * whole weight gradient written per lane, and the sum of those gradients:
 * at batch 10 on 2 threads that made a training 26% more CPU work than on
 * one. Split by outputs, thread t owns rows [lo, hi) of the weight: it
 * multiplies them with the whole batch's input, writes their gradient
 * straight into the model's (nothing to sum) and steps them while they
 * are in its cache, and each thread's rows stay in its own cache from one
 * mini-batch to the next. Its part of the input gradient, dh[:, lo:hi)
 * W[lo:hi), is added to the other threads' in thread order by the lane
 * that needs those rows. A mini-batch then runs in rounds of at most
 * `round` samples (the shared buffers' size), each round in five pool
 * calls:
 *
 *   head      lane i: its slice, up to the layer's input f     (by samples)
 *   wide fwd  thread t: h[:, lo:hi) for the whole round        (by outputs)
 *   tail      lane i: the rest of the forward pass, the loss,
 *             and back to the gradient dh at h                 (by samples)
 *   wide bwd  thread t: dW[lo:hi), db[lo:hi), its part of df,
 *             after the last round the step of W[lo:hi)         (by outputs)
 *   head bwd  lane i: df = the threads' parts, then the rest
 *             of the backward pass                             (by samples)
 *
 * then one call for the sum and step of every other parameter. Every split
 * is fixed by T, so results are deterministic for a given T; they differ
 * from one thread's only by the order of sums over samples and, in df,
 * over the layer's outputs (float reassociation), see model_set_threads.
 */
#include "common/nn/model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/nn/arch.h"
#include "common/nn/layers.h"
#include "common/nn/simd.h"
#include "common/nn/tpool.h"
#include "common/rng.h"

/* Samples per chunk of workspace: large enough that cnn-se's conv2 sgemm
 * has a wide N (32 * 64 columns), small enough that a cnn-se model stays
 * near 20 MB (13 MB of workspace, 8 MB of weights, gradients and momentum). */
#define MODEL_CHUNK 32

struct model {
    param_table t;
    const model_arch *arch;
    void *net;                  /* the architecture's state (arch.h) */
    int max_batch;
    int chunk;                  /* samples the workspace holds */

    float *w;                   /* (t.total) weights; a replica's are its primary's */
    float *g;                   /* (t.total) gradients */
    float *v;                   /* (t.total) momentum; NULL in a replica */
    int owns_w;                 /* 0 in a replica */

    /* Threads: lane[0] is this model, lane[1..lanes) its replicas. */
    int lanes;
    model **lane;               /* (lanes), NULL while lanes == 1 */
    int *lane_n;                /* (lanes) samples of the current batch per lane */
    tpool *pool;                /* NULL while lanes == 1 */

    /* The wide layer split by outputs (arch.h), while lanes > 1 and the
     * architecture has one; wide_w NULL otherwise. */
    const param_info *wide_w, *wide_b;  /* its tensors, in t */
    int wide_in, wide_out;
    int round;                  /* samples per round */
    float *wide_buf;            /* the one allocation of the four below */
    float *wf;                  /* (round, in) the layer's input */
    float *wh;                  /* (round, out) its output */
    float *wdh;                 /* (round, out) the gradient at its output */
    float *wdf;                 /* (lanes, round, in) each thread's part of the input gradient */

    /* Mini-batch gathered by model_train / model_evaluate. */
    float *xb;                  /* (max_batch, 784) */
    uint8_t *yb;                /* (max_batch) */

    float *logits;              /* (chunk, 10) */
    float *probs;               /* (chunk, 10) */
    float *dlogits;             /* (chunk, 10) */
};

/* A model of table t (already checked) for max_batch samples, owning its
 * weights when shared_w is NULL, else a replica computing with shared_w
 * (no momentum). NULL when an allocation fails. */
static model *model_alloc(const param_table *t, int max_batch, float *shared_w)
{
    model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->t = *t;
    m->arch = arch_find(t->arch);
    m->max_batch = max_batch;
    m->chunk = max_batch < MODEL_CHUNK ? max_batch : MODEL_CHUNK;
    m->lanes = 1;
    m->owns_w = !shared_w;
    m->w = shared_w ? shared_w : calloc(t->total, sizeof *m->w);
    m->g = calloc(t->total, sizeof *m->g);
    m->v = shared_w ? NULL : calloc(t->total, sizeof *m->v);
    m->xb = malloc((size_t)max_batch * MODEL_PIXELS * sizeof *m->xb);
    m->yb = malloc((size_t)max_batch);
    m->logits = malloc((size_t)m->chunk * 3 * MODEL_CLASSES * sizeof *m->logits);
    if (!m->w || !m->g || (!shared_w && !m->v) || !m->xb || !m->yb || !m->logits) {
        model_free(m);
        return NULL;
    }
    m->probs = m->logits + (size_t)m->chunk * MODEL_CLASSES;
    m->dlogits = m->probs + (size_t)m->chunk * MODEL_CLASSES;
    m->net = m->arch->net_new(&m->t, m->w, m->g, m->chunk);
    if (!m->net) {
        model_free(m);
        return NULL;
    }
    return m;
}

model *model_new(const param_table *t, int max_batch)
{
    if (max_batch < 1 || max_batch > MODEL_MAX_BATCH) return NULL;
    /* The networks index their tensors by the table their architecture
     * builds: refuse any other layout rather than index a tensor that is
     * not there. */
    param_table want;
    const model_opts o = params_opts(t);
    if (params_build(&want, &o, NULL) || want.hash != t->hash) return NULL;
    return model_alloc(&want, max_batch, NULL);
}

/* Drops the replicas, the pool and the wide layer's buffers: one lane
 * again. */
static void model_drop_lanes(model *m)
{
    for (int i = 1; i < m->lanes; i++) model_free(m->lane[i]);
    free(m->lane);
    free(m->lane_n);
    tpool_free(m->pool);
    free(m->wide_buf);
    m->lane = NULL;
    m->lane_n = NULL;
    m->pool = NULL;
    m->wide_w = m->wide_b = NULL;
    m->wide_buf = NULL;
    m->lanes = 1;
}

/* Finds the architecture's wide layer and allocates its buffers for
 * `threads` lanes; leaves wide_w NULL when there is none. Returns 0,
 * -ENOMEM, or -EINVAL when the table lacks the layer arch.h describes. */
static int model_wide_setup(model *m, int threads)
{
    if (!m->arch->wide) return 0;
    char name[PARAM_NAME_MAX];
    snprintf(name, sizeof name, "%s.weight", m->arch->wide);
    const param_info *w = params_find(&m->t, name);
    snprintf(name, sizeof name, "%s.bias", m->arch->wide);
    const param_info *b = params_find(&m->t, name);
    /* arch.h promises both, the bias right after the weight; an
     * architecture that breaks the promise gets no threads (check_model
     * starts threads on every cnn-se table it builds). */
    if (!w || !b || w->ndim != 2 || b->size != (size_t)w->shape[0] ||
        b->offset != w->offset + w->size)
        return -EINVAL;
    m->wide_out = w->shape[0];
    m->wide_in = w->shape[1];
    /* A round gives every lane at least one sample and is at most a
     * chunk when threads are few, which bounds the buffers (the threads'
     * parts of the input gradient grow as threads * round). */
    m->round = threads > MODEL_CHUNK ? threads : MODEL_CHUNK;
    if (m->round > m->max_batch) m->round = m->max_batch;
    const long in = m->wide_in, out = m->wide_out, r = m->round;
    long off = 0;
    float *base = NULL;
    for (int pass = 0; pass < 2; pass++) {
        off = 0;
        m->wf = arch_carve(base, &off, r * in);
        m->wh = arch_carve(base, &off, r * out);
        m->wdh = arch_carve(base, &off, r * out);
        m->wdf = arch_carve(base, &off, threads * r * in);
        if (!pass && !(base = m->wide_buf = arch_workspace(off))) return -ENOMEM;
    }
    m->wide_w = w;
    m->wide_b = b;
    return 0;
}

int model_set_threads(model *m, int threads)
{
    if (threads < 1 || threads > MODEL_MAX_THREADS || !m->owns_w) return -EINVAL;
    if (threads == m->lanes) return 0;
    model_drop_lanes(m);
    if (threads == 1) return 0;
    int rc = -ENOMEM;
    if (!(m->lane = calloc((size_t)threads, sizeof *m->lane)) ||
        !(m->lane_n = calloc((size_t)threads, sizeof *m->lane_n)))
        goto out;
    m->lane[0] = m;
    if ((rc = model_wide_setup(m, threads)) < 0) goto out;
    rc = -ENOMEM;
    /* A replica sees at most its slice of the largest batch (of a round,
     * no larger, when the wide layer is split). */
    const int slice = (m->max_batch + threads - 1) / threads;
    for (m->lanes = 1; m->lanes < threads; m->lanes++)
        if (!(m->lane[m->lanes] = model_alloc(&m->t, slice, m->w))) goto out;
    rc = tpool_new(threads, &m->pool);
out:
    if (rc < 0) model_drop_lanes(m);
    return rc;
}

int model_threads(const model *m)
{
    return m->lanes;
}

void model_free(model *m)
{
    if (!m) return;
    model_drop_lanes(m);
    if (m->arch) m->arch->net_free(m->net);
    if (m->owns_w) free(m->w);
    free(m->g);
    free(m->v);
    free(m->xb);
    free(m->yb);
    free(m->logits);
    free(m);
}

const param_table *model_table(const model *m)
{
    return &m->t;
}

float *model_params(model *m)
{
    return m->w;
}

float *model_grads(model *m)
{
    return m->g;
}

const float *model_momentum(const model *m)
{
    return m->v;
}

int model_is_gate_bias(const param_info *p)
{
    const size_t n = strlen(p->name), k = strlen(".fc2.bias");
    return (p->groups & PARAM_SE) && n > k && !strcmp(p->name + n - k, ".fc2.bias");
}

void model_init(model *m, uint64_t seed)
{
    /* PyTorch's default: kaiming_uniform(a = sqrt(5)) on a weight is
     * U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and its bias uses the same bound.
     * Every bias follows its weight in the table, so it inherits the fan-in
     * of the tensor before it. The draws are integer-derived doubles and
     * sqrt is correctly rounded, so every machine gets the same floats.
     * A convolution's weights (4-D) have their bound times the
     * architecture's conv_gain (arch.h); 1 for cnn-se, whose bytes this
     * leaves as they were. */
    rng r;
    rng_seed(&r, seed);
    double bound = 1.0;
    for (int i = 0; i < m->t.n; i++) {
        const param_info *p = &m->t.p[i];
        if (p->ndim > 1) bound = 1.0 / sqrt((double)(p->size / (size_t)p->shape[0]));
        const double b = p->ndim == 4 ? bound * m->arch->conv_gain : bound;
        float *w = m->w + p->offset;
        for (size_t k = 0; k < p->size; k++) w[k] = (float)((2.0 * rng_uniform(&r) - 1.0) * b);
        /* The gates start open (model.h); the draws above still happen, so
         * every other tensor gets the same bytes as under the plain scheme. */
        if (model_is_gate_bias(p))
            for (size_t k = 0; k < p->size; k++) w[k] = MODEL_GATE_BIAS;
    }
    model_reset_momentum(m);
}

void model_reset_momentum(model *m)
{
    memset(m->v, 0, m->t.total * sizeof *m->v);
}

/* Forward pass of B <= chunk samples x (B, 784); leaves logits and probs
 * in the workspace and returns the summed cross-entropy. */
static double model_forward_chunk(model *m, const float *x, const uint8_t *y, int B)
{
    m->arch->forward(m->net, x, m->logits, B);
    return softmax_xent_forward(m->logits, y, m->probs, B, MODEL_CLASSES);
}

/* Backward pass of the chunk just run forward; parameter gradients are
 * written (acc 0) or added (acc 1); scale is 1/(whole batch). */
static void model_backward_chunk(model *m, const uint8_t *y, int B, float scale, int acc)
{
    softmax_xent_backward(m->probs, y, m->dlogits, B, MODEL_CLASSES, scale);
    m->arch->backward(m->net, m->dlogits, B, acc);
}

/* Samples among the B in the workspace whose highest logit is the label. */
static int model_count_correct(const model *m, const uint8_t *y, int B)
{
    int correct = 0;
    for (int b = 0; b < B; b++) {
        const float *z = m->logits + (long)b * MODEL_CLASSES;
        int best = 0;
        for (int k = 1; k < MODEL_CLASSES; k++)
            if (z[k] > z[best]) best = k;
        correct += best == y[b];
    }
    return correct;
}

float model_forward(model *m, const float *x, const uint8_t *y, int B, float *logits)
{
    if (B < 1 || B > m->max_batch) return NAN;
    double loss = 0.0;
    for (int i = 0; i < B; i += m->chunk) {
        const int n = B - i < m->chunk ? B - i : m->chunk;
        loss += model_forward_chunk(m, x + (long)i * MODEL_PIXELS, y + i, n);
        if (logits)
            memcpy(logits + (long)i * MODEL_CLASSES, m->logits,
                   (size_t)n * MODEL_CLASSES * sizeof *logits);
    }
    return (float)(loss / B);
}

/* Forward and backward passes of B samples on one lane, in chunks; the
 * gradients are of scale * summed loss. Returns the summed loss and adds
 * the samples classified right to *correct. */
static double model_lane_fb(model *m, const float *x, const uint8_t *y, int B, float scale,
                            int *correct)
{
    double loss = 0.0;
    for (int i = 0; i < B; i += m->chunk) {
        const int n = B - i < m->chunk ? B - i : m->chunk;
        loss += model_forward_chunk(m, x + (long)i * MODEL_PIXELS, y + i, n);
        *correct += model_count_correct(m, y + i, n);
        model_backward_chunk(m, y + i, n, scale, i > 0);
    }
    return loss;
}

/* Copies the samples idx[first..first+n) (idx NULL: first..first+n-1) of
 * x (N, 784) and y (N) into rows at..at+n-1 of the model's gather
 * buffers. */
static void model_gather(model *m, const float *x, const uint8_t *y, const int *idx, int first,
                         int n, int at)
{
    for (int i = 0; i < n; i++) {
        const int s = idx ? idx[first + i] : first + i;
        memcpy(m->xb + (long)(at + i) * MODEL_PIXELS, x + (long)s * MODEL_PIXELS,
               MODEL_PIXELS * sizeof *m->xb);
        m->yb[at + i] = y[s];
    }
}

/* Where a mini-batch's samples come from when the lanes gather them
 * themselves (model_train): samples idx[first..first+B) of x and y. */
typedef struct {
    const float *x;             /* (N, 784) */
    const uint8_t *y;           /* (N) */
    const int *idx;
    int first;
} model_src;

/* One mini-batch over the lanes of a model with threads: what each pool
 * thread reads and writes. */
typedef struct {
    model *m;
    const float *x;             /* (B, 784) */
    const uint8_t *y;           /* (B) */
    const model_src *src;       /* non-NULL: x and y are the model's gather
                                 * buffers, which each lane fills with its
                                 * own rows from src first */
    int B;
    double loss[MODEL_MAX_THREADS];
    int correct[MODEL_MAX_THREADS];
    const sgd_config *c;        /* step: NULL only sums the gradients */
    const float *ref;
    /* The wide layer's current round: samples [r0, r0 + rn) of the batch. */
    int r0, rn;
} model_batch;

/* Pool part i of the forward and backward pass: slice i of the batch on
 * lane i. A lane with no samples (B < threads) leaves its gradients as they
 * are and is skipped by the sum. */
static void model_batch_fb(void *v, int i)
{
    model_batch *b = v;
    model *m = b->m;
    long lo, hi;
    tpool_split(b->B, m->lanes, i, &lo, &hi);
    m->lane_n[i] = (int)(hi - lo);
    b->loss[i] = 0.0;
    b->correct[i] = 0;
    if (b->src && hi > lo)
        model_gather(m, b->src->x, b->src->y, b->src->idx, b->src->first + (int)lo, (int)(hi - lo),
                     (int)lo);
    if (hi > lo)
        b->loss[i] = model_lane_fb(m->lane[i], b->x + lo * MODEL_PIXELS, b->y + lo, (int)(hi - lo),
                                   1.0f / (float)b->B, &b->correct[i]);
}

/* y[0..n) += x[0..n): the threads' partial sums added in a fixed order. */
static void model_add_n(float *y, const float *x, long n)
{
    long k = 0;
    for (; k + 4 <= n; k += 4) v4_store(y + k, v4_load(y + k) + v4_load(x + k));
    for (; k < n; k++) y[k] += x[k];
}

/* Lane i's slice [*lo, *hi) of the current round; returns its size. */
static int model_round_slice(const model_batch *b, int i, long *lo, long *hi)
{
    tpool_split(b->rn, b->m->lanes, i, lo, hi);
    return (int)(*hi - *lo);
}

/* Thread t's outputs [*lo, *hi) of the wide layer, in whole cache lines
 * (16 floats of the bias and of each row of h) so that no two threads
 * write one line; empty when the layer has fewer lines than threads. */
static int model_wide_cols(const model *m, int t, int *lo, int *hi)
{
    long a, e;
    tpool_split((m->wide_out + 15) / 16, m->lanes, t, &a, &e);
    *lo = (int)(a * 16);
    *hi = e * 16 < m->wide_out ? (int)(e * 16) : m->wide_out;
    return *hi > *lo;
}

/* Round, pool part i (by samples): lane i's slice up to the wide layer's
 * input, into its rows of wf. */
static void model_wide_head(void *v, int i)
{
    model_batch *b = v;
    model *m = b->m, *l = m->lane[i];
    long lo, hi;
    const int n = model_round_slice(b, i, &lo, &hi);
    if (!n) return;
    const int at = b->r0 + (int)lo;
    if (b->src) model_gather(m, b->src->x, b->src->y, b->src->idx, b->src->first + at, n, at);
    l->arch->forward_head(l->net, b->x + (long)at * MODEL_PIXELS, m->wf + lo * m->wide_in, n);
}

/* Round, pool part t (by outputs): wh's columns [lo, hi) for the round. */
static void model_wide_fwd(void *v, int t)
{
    model_batch *b = v;
    model *m = b->m;
    int lo, hi;
    if (model_wide_cols(m, t, &lo, &hi))
        linear_forward_part(m->wf, m->w + m->wide_w->offset, m->w + m->wide_b->offset, m->wh,
                            b->rn, m->wide_in, m->wide_out, lo, hi);
}

/* Round, pool part i (by samples): the rest of lane i's forward pass from
 * its rows of wh, its loss, and its backward pass back to its rows of wdh.
 * The lane's gradients are written on its first samples of the batch,
 * added after. */
static void model_wide_tail(void *v, int i)
{
    model_batch *b = v;
    model *m = b->m, *l = m->lane[i];
    long lo, hi;
    const int n = model_round_slice(b, i, &lo, &hi);
    if (!n) return;
    const uint8_t *y = b->y + b->r0 + lo;
    l->arch->forward_tail(l->net, m->wh + lo * m->wide_out, l->logits, n);
    b->loss[i] += softmax_xent_forward(l->logits, y, l->probs, n, MODEL_CLASSES);
    b->correct[i] += model_count_correct(l, y, n);
    softmax_xent_backward(l->probs, y, l->dlogits, n, MODEL_CLASSES, 1.0f / (float)b->B);
    l->arch->backward_tail(l->net, l->dlogits, m->wdh + lo * m->wide_out, n, m->lane_n[i] > 0);
}

static void model_step_range(model *m, const sgd_config *c, const float *ref, size_t lo, size_t hi);

/* Rows of the wide layer whose gradient is computed and stepped at a time
 * (128 KB of cnn-se's fc1): the step reads the gradient while it is still
 * in cache. */
#define MODEL_WIDE_STEP_ROWS 32

/* Round, pool part t (by outputs): the gradients of the wide layer's rows
 * [lo, hi) straight into the model's (written on the first round, added
 * after) and this thread's part of the input gradient; after the last
 * round, with c, the rows are stepped too, a block at a time right after
 * the block's gradient, once the input gradient has read them as they
 * were. Only this thread reads or writes those rows in this call, so
 * stepping them here is safe. */
static void model_wide_bwd(void *v, int t)
{
    model_batch *b = v;
    model *m = b->m;
    int lo, hi;
    if (!model_wide_cols(m, t, &lo, &hi)) return;
    const size_t w = m->wide_w->offset, bias = m->wide_b->offset, in = (size_t)m->wide_in;
    float *df = m->wdf + (long)t * m->round * m->wide_in;
    const int acc = b->r0 > 0;
    if (!b->c || b->r0 + b->rn < b->B) {
        linear_backward_part(m->wdh, m->wf, m->w + w, m->g + w, m->g + bias, df, b->rn,
                             m->wide_in, m->wide_out, lo, hi, acc);
        return;
    }
    linear_backward_part(m->wdh, m->wf, m->w + w, NULL, NULL, df, b->rn, m->wide_in,
                         m->wide_out, lo, hi, acc);
    for (int a = lo; a < hi; a += MODEL_WIDE_STEP_ROWS) {
        const int e = hi - a < MODEL_WIDE_STEP_ROWS ? hi : a + MODEL_WIDE_STEP_ROWS;
        linear_backward_part(m->wdh, m->wf, m->w + w, m->g + w, m->g + bias, NULL, b->rn,
                             m->wide_in, m->wide_out, a, e, acc);
        model_step_range(m, b->c, b->ref, w + (size_t)a * in, w + (size_t)e * in);
    }
    model_step_range(m, b->c, b->ref, bias + (size_t)lo, bias + (size_t)hi);
}

/* Round, pool part i (by samples): lane i's rows of the input gradient,
 * the threads' parts added in thread order into the first one's, then the
 * rest of its backward pass. */
static void model_wide_head_bwd(void *v, int i)
{
    model_batch *b = v;
    model *m = b->m, *l = m->lane[i];
    long lo, hi;
    const int n = model_round_slice(b, i, &lo, &hi);
    if (!n) return;
    const long len = (long)n * m->wide_in;
    float *df = NULL;
    for (int t = 0; t < m->lanes; t++) {
        int a, e;
        if (!model_wide_cols(m, t, &a, &e)) continue;
        float *part = m->wdf + ((long)t * m->round + lo) * m->wide_in;
        if (!df) {
            df = part;
            continue;
        }
        model_add_n(df, part, len);
    }
    l->arch->backward_head(l->net, df, n, m->lane_n[i] > 0);
    m->lane_n[i] += n;
}

/* The SGD step c over the parameters [lo, hi) of m, tensor by tensor, so
 * that each can be frozen or get its own rate (sgd_config); the table has a
 * few dozen tensors, so the calls cost nothing next to the floats they
 * step. The whole step is [0, total); the threads of a model each step a
 * block. */
static void model_step_range(model *m, const sgd_config *c, const float *ref, size_t lo, size_t hi)
{
    sgd_config one = *c;
    for (int i = 0; i < m->t.n; i++) {
        const param_info *p = &m->t.p[i];
        const size_t a = p->offset > lo ? p->offset : lo;
        const size_t b = p->offset + p->size < hi ? p->offset + p->size : hi;
        if (a >= b || params_selected(p, c->frozen)) continue;
        one.lr = params_selected(p, c->alt) ? c->alt_lr : c->lr;
        sgd_step(m->w + a, m->g + a, m->v + a, ref ? ref + a : NULL, b - a, &one);
    }
}

/* Parameters summed and stepped at a time: small enough to stay in L1
 * between the sum and the step. */
#define MODEL_STEP_BLOCK 1024

/* The lanes' gradients summed into m->g over [lo, hi), in lane order, then
 * (with c) the SGD step there. */
static void model_sum_step(model_batch *b, long lo, long hi)
{
    model *m = b->m;
    const long n = hi - lo;
    float *g = m->g + lo;
    if (!m->lane_n[0]) memset(g, 0, (size_t)n * sizeof *g);
    for (int l = 1; l < m->lanes; l++) {
        if (!m->lane_n[l]) continue;
        model_add_n(g, m->lane[l]->g + lo, n);
    }
    if (b->c) model_step_range(m, b->c, b->ref, (size_t)lo, (size_t)hi);
}

/* Pool part i of the sum and step: part i of the parameters, a block at a
 * time. The wide layer's tensors, when split, are left out (their
 * gradients are whole already and model_wide_bwd stepped them) and the
 * parts are cut from the others, as if the wide layer's range were not
 * there, so every thread gets the same share. */
static void model_batch_step(void *v, int i)
{
    model_batch *b = v;
    model *m = b->m;
    const long total = (long)m->t.total;
    const long wlo = m->wide_w ? (long)m->wide_w->offset : total;
    const long wlen = m->wide_w ? (long)(m->wide_w->size + m->wide_b->size) : 0;
    const long len = total - wlen;
    long lo, hi;
    /* Parts of whole blocks, so no two threads write one cache line (when
     * the wide layer is a whole number of lines, as cnn-se's fc1 is). */
    tpool_split((len + MODEL_STEP_BLOCK - 1) / MODEL_STEP_BLOCK, m->lanes, i, &lo, &hi);
    lo *= MODEL_STEP_BLOCK;
    hi = hi * MODEL_STEP_BLOCK < len ? hi * MODEL_STEP_BLOCK : len;
    for (long o = lo; o < hi; o += MODEL_STEP_BLOCK) {
        const long e = hi - o < MODEL_STEP_BLOCK ? hi : o + MODEL_STEP_BLOCK;
        /* [o, e) counts parameters outside the wide layer: those before
         * it are where they are, those after it wlen further on. */
        if (o < wlo) model_sum_step(b, o, e < wlo ? e : wlo);
        if (e > wlo) model_sum_step(b, (o > wlo ? o : wlo) + wlen, e + wlen);
    }
}

/* Forward and backward pass of B <= max_batch samples over every lane,
 * gradients summed into m->g, then the SGD step c (NULL: none). The
 * samples are x (B, 784) and y (B), or with src those of src, gathered
 * into the model's buffers (by the lanes, each its own rows, when there
 * are several). Returns the mean loss; *correct gets the samples
 * classified right. */
static float model_batch_run(model *m, const float *x, const uint8_t *y, const model_src *src,
                             int B, int *correct, const sgd_config *c, const float *ref)
{
    if (src) {
        x = m->xb;
        y = m->yb;
        if (m->lanes == 1) model_gather(m, src->x, src->y, src->idx, src->first, B, 0);
    }
    if (m->lanes == 1) {
        int right = 0;
        const double loss = model_lane_fb(m, x, y, B, 1.0f / (float)B, &right);
        if (c) model_sgd_step(m, c, ref);
        *correct = right;
        return (float)(loss / B);
    }
    model_batch b = { .m = m, .x = x, .y = y, .src = src, .B = B, .c = c, .ref = ref };
    if (m->wide_w) {
        memset(m->lane_n, 0, (size_t)m->lanes * sizeof *m->lane_n);
        for (b.r0 = 0; b.r0 < B; b.r0 += b.rn) {
            b.rn = B - b.r0 < m->round ? B - b.r0 : m->round;
            tpool_run(m->pool, model_wide_head, &b);
            tpool_run(m->pool, model_wide_fwd, &b);
            tpool_run(m->pool, model_wide_tail, &b);
            tpool_run(m->pool, model_wide_bwd, &b);
            tpool_run(m->pool, model_wide_head_bwd, &b);
        }
    } else {
        tpool_run(m->pool, model_batch_fb, &b);
    }
    tpool_run(m->pool, model_batch_step, &b);
    double loss = 0.0;
    int right = 0;
    for (int i = 0; i < m->lanes; i++) {
        loss += b.loss[i];
        right += b.correct[i];
    }
    *correct = right;
    return (float)(loss / B);
}

float model_forward_backward(model *m, const float *x, const uint8_t *y, int B, int *correct)
{
    if (B < 1 || B > m->max_batch) return NAN;
    int right;
    const float loss = model_batch_run(m, x, y, NULL, B, &right, NULL, NULL);
    if (correct) *correct = right;
    return loss;
}

void model_sgd_step(model *m, const sgd_config *c, const float *ref)
{
    model_step_range(m, c, ref, 0, m->t.total);
}

static double model_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int model_train(model *m, const float *x, const uint8_t *y, const int *idx, int n,
                int epochs, int batch, const sgd_config *c, const float *ref,
                uint64_t seed, model_stats *st)
{
    if (batch < 1 || batch > m->max_batch || n < 0 || epochs < 0) return -EINVAL;
    int *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    if (!order) return -ENOMEM;
    for (int i = 0; i < n; i++) order[i] = idx ? idx[i] : i;
    rng r;
    rng_seed(&r, seed);
    memset(st, 0, sizeof *st);
    for (int e = 0; e < epochs; e++) {
        const double t0 = model_now();
        double loss = 0.0;
        long correct = 0;
        rng_shuffle_int(&r, order, n);
        /* The last, partial batch is trained too: every sample counts. */
        for (int i = 0; i < n; i += batch) {
            const int b = n - i < batch ? n - i : batch;
            int right;
            const model_src src = { .x = x, .y = y, .idx = order, .first = i };
            loss += (double)model_batch_run(m, NULL, NULL, &src, b, &right, c, ref) * b;
            correct += right;
        }
        st->examples = n;
        st->loss = n ? loss / n : 0.0;
        st->accuracy = n ? (double)correct / n : 0.0;
        st->seconds = model_now() - t0;
    }
    free(order);
    return 0;
}

/* Evaluation over the lanes: pool part i scores slice i of the samples. */
typedef struct {
    model *m;
    const float *x;
    const uint8_t *y;
    const int *idx;
    int n;
    double loss[MODEL_MAX_THREADS];
    long correct[MODEL_MAX_THREADS];
} model_eval_job;

/* Scores the samples idx[lo..hi) (idx NULL: lo..hi-1) on one lane. */
static void model_lane_eval(model *m, const float *x, const uint8_t *y, const int *idx, int lo,
                            int hi, double *loss, long *correct)
{
    *loss = 0.0;
    *correct = 0;
    for (int i = lo; i < hi; i += m->chunk) {
        const int b = hi - i < m->chunk ? hi - i : m->chunk;
        model_gather(m, x, y, idx, i, b, 0);
        *loss += model_forward_chunk(m, m->xb, m->yb, b);
        *correct += model_count_correct(m, m->yb, b);
    }
}

static void model_eval_part(void *v, int i)
{
    model_eval_job *e = v;
    long lo, hi;
    tpool_split(e->n, e->m->lanes, i, &lo, &hi);
    model_lane_eval(e->m->lane[i], e->x, e->y, e->idx, (int)lo, (int)hi, &e->loss[i],
                    &e->correct[i]);
}

void model_evaluate(model *m, const float *x, const uint8_t *y, const int *idx, int n,
                    model_stats *st)
{
    const double t0 = model_now();
    double loss = 0.0;
    long correct = 0;
    if (m->lanes == 1) {
        model_lane_eval(m, x, y, idx, 0, n, &loss, &correct);
    } else {
        model_eval_job e = { .m = m, .x = x, .y = y, .idx = idx, .n = n };
        tpool_run(m->pool, model_eval_part, &e);
        for (int i = 0; i < m->lanes; i++) {
            loss += e.loss[i];
            correct += e.correct[i];
        }
    }
    st->examples = n;
    st->loss = n ? loss / n : 0.0;
    st->accuracy = n ? (double)correct / n : 0.0;
    st->seconds = model_now() - t0;
}

long model_macs(const param_table *t, int with_gates)
{
    const model_arch *a = arch_find(t->arch);
    return a ? a->macs(t, with_gates) : -1;
}

long model_macs_pruned(const param_table *t, const int removed[MODEL_SE_BLOCKS])
{
    const model_arch *a = arch_find(t->arch);
    return a && a->macs_pruned ? a->macs_pruned(t, removed) : -1;
}

const float *model_gates(const model *m, int block, int *channels)
{
    if (block < 0 || block >= MODEL_SE_BLOCKS || !m->arch->gates) return NULL;
    return m->arch->gates(m->net, block, channels);
}
