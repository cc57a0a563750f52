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

    float *w;                   /* (t.total) weights */
    float *g;                   /* (t.total) gradients */
    float *v;                   /* (t.total) momentum */

    /* Mini-batch gathered by model_train / model_evaluate. */
    float *xb;                  /* (max_batch, 784) */
    uint8_t *yb;                /* (max_batch) */

    float *logits;              /* (chunk, 10) */
    float *probs;               /* (chunk, 10) */
    float *dlogits;             /* (chunk, 10) */
};

model *model_new(const param_table *t, int max_batch)
{
    if (max_batch < 1 || max_batch > MODEL_MAX_BATCH) return NULL;
    /* The networks index their tensors by the table their architecture
     * builds: refuse any other layout rather than index a tensor that is
     * not there. */
    param_table want;
    const model_opts o = params_opts(t);
    if (params_build(&want, &o, NULL) || want.hash != t->hash) return NULL;

    model *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->t = want;
    m->arch = arch_find(want.arch);
    m->max_batch = max_batch;
    m->chunk = max_batch < MODEL_CHUNK ? max_batch : MODEL_CHUNK;
    m->w = calloc(want.total, sizeof *m->w);
    m->g = calloc(want.total, sizeof *m->g);
    m->v = calloc(want.total, sizeof *m->v);
    m->xb = malloc((size_t)max_batch * MODEL_PIXELS * sizeof *m->xb);
    m->yb = malloc((size_t)max_batch);
    m->logits = malloc((size_t)m->chunk * 3 * MODEL_CLASSES * sizeof *m->logits);
    if (!m->w || !m->g || !m->v || !m->xb || !m->yb || !m->logits) {
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

void model_free(model *m)
{
    if (!m) return;
    if (m->arch) m->arch->net_free(m->net);
    free(m->w);
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

float model_forward_backward(model *m, const float *x, const uint8_t *y, int B, int *correct)
{
    if (B < 1 || B > m->max_batch) return NAN;
    double loss = 0.0;
    int right = 0;
    for (int i = 0; i < B; i += m->chunk) {
        const int n = B - i < m->chunk ? B - i : m->chunk;
        loss += model_forward_chunk(m, x + (long)i * MODEL_PIXELS, y + i, n);
        right += model_count_correct(m, y + i, n);
        model_backward_chunk(m, y + i, n, 1.0f / (float)B, i > 0);
    }
    if (correct) *correct = right;
    return (float)(loss / B);
}

void model_sgd_step(model *m, const sgd_config *c, const float *ref)
{
    /* Tensor by tensor, so that each can be frozen or get its own rate;
     * the table has a few dozen tensors, so the calls cost nothing next to
     * the floats they step. */
    sgd_config one = *c;
    for (int i = 0; i < m->t.n; i++) {
        const param_info *p = &m->t.p[i];
        if (params_selected(p, c->frozen)) continue;
        one.lr = params_selected(p, c->alt) ? c->alt_lr : c->lr;
        sgd_step(m->w + p->offset, m->g + p->offset, m->v + p->offset, ref ? ref + p->offset : NULL,
                 p->size, &one);
    }
}

static double model_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Copies the samples idx[0..n) (idx NULL: first..first+n) into the model's
 * gather buffers. */
static void model_gather(model *m, const float *x, const uint8_t *y, const int *idx, int first, int n)
{
    for (int i = 0; i < n; i++) {
        const int s = idx ? idx[first + i] : first + i;
        memcpy(m->xb + (long)i * MODEL_PIXELS, x + (long)s * MODEL_PIXELS,
               MODEL_PIXELS * sizeof *m->xb);
        m->yb[i] = y[s];
    }
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
            model_gather(m, x, y, order, i, b);
            loss += (double)model_forward_backward(m, m->xb, m->yb, b, &right) * b;
            correct += right;
            model_sgd_step(m, c, ref);
        }
        st->examples = n;
        st->loss = n ? loss / n : 0.0;
        st->accuracy = n ? (double)correct / n : 0.0;
        st->seconds = model_now() - t0;
    }
    free(order);
    return 0;
}

void model_evaluate(model *m, const float *x, const uint8_t *y, const int *idx, int n,
                    model_stats *st)
{
    const double t0 = model_now();
    double loss = 0.0;
    long correct = 0;
    for (int i = 0; i < n; i += m->chunk) {
        const int b = n - i < m->chunk ? n - i : m->chunk;
        model_gather(m, x, y, idx, i, b);
        loss += model_forward_chunk(m, m->xb, m->yb, b);
        correct += model_count_correct(m, m->yb, b);
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
