/* gates: SE gate statistics, pruning of the channels a client's gates
 * close, and the similarity of gate patterns across clients; see gates.h. */
#include "client/gates.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* Test images per forward pass: model_gates returns the rows of one
 * workspace chunk, which holds 32 samples. */
#define GATES_BATCH 32

/* The layer whose output channels each SE block gates. */
static const char *const gates_layer[MODEL_SE_BLOCKS] = { "conv1", "conv2", "fc1" };

void gates_prune_channel(const param_table *t, float *w, int block, int ch)
{
    char name[PARAM_NAME_MAX];
    snprintf(name, sizeof name, "%s.weight", gates_layer[block]);
    const param_info *pw = params_find(t, name);
    snprintf(name, sizeof name, "%s.bias", gates_layer[block]);
    const param_info *pb = params_find(t, name);
    /* (out, in...) weights: output channel ch is one row. */
    const size_t row = pw->size / (size_t)pw->shape[0];
    memset(w + pw->offset + (size_t)ch * row, 0, row * sizeof *w);
    w[pb->offset + (size_t)ch] = 0.0f;
}

void gates_stats_free(gates_stats *s)
{
    for (int k = 0; k < MODEL_SE_BLOCKS; k++) {
        gates_block *b = &s->b[k];
        free(b->mean);
        free(b->std);
        free(b->max);
        free(b->pruned);
    }
    memset(s, 0, sizeof *s);
}

/* Sizes the arrays of every block the model has. */
static int gates_alloc(const model *m, gates_stats *s)
{
    for (int k = 0; k < MODEL_SE_BLOCKS; k++) {
        gates_block *b = &s->b[k];
        int C = 0;
        if (!model_gates(m, k, &C)) continue;
        b->channels = C;
        b->mean = calloc((size_t)C, sizeof *b->mean);
        b->std = calloc((size_t)C, sizeof *b->std);
        b->max = calloc((size_t)C, sizeof *b->max);
        b->pruned = calloc((size_t)C, sizeof *b->pruned);
        if (!b->mean || !b->std || !b->max || !b->pruned) return -ENOMEM;
    }
    return 0;
}

/* Runs the test images through m and turns the gates into the statistics
 * of s: mean holds sums and std sums of squares until the end. */
static void gates_collect(model *m, const trainer_data *d, float *xb, uint8_t *yb, gates_stats *s)
{
    for (int i = 0; i < d->n_test; i += GATES_BATCH) {
        const int n = d->n_test - i < GATES_BATCH ? d->n_test - i : GATES_BATCH;
        for (int j = 0; j < n; j++) {
            const int k = d->test ? d->test[i + j] : i + j;
            memcpy(xb + (long)j * MODEL_PIXELS, d->test_x + (long)k * MODEL_PIXELS,
                   MODEL_PIXELS * sizeof *xb);
            yb[j] = d->test_y[k];
        }
        model_forward(m, xb, yb, n, NULL);
        for (int k = 0; k < MODEL_SE_BLOCKS; k++) {
            gates_block *b = &s->b[k];
            int C;
            const float *e = model_gates(m, k, &C);   /* (n, C) */
            for (int j = 0; e && j < n; j++)
                for (int c = 0; c < C; c++) {
                    const double g = e[(long)j * C + c];
                    b->mean[c] += g;
                    b->std[c] += g * g;
                    if (g > b->max[c]) b->max[c] = g;
                }
        }
    }
    const double n = (double)d->n_test;
    for (int k = 0; k < MODEL_SE_BLOCKS; k++) {
        gates_block *b = &s->b[k];
        for (int c = 0; c < b->channels; c++) {
            const double mean = b->mean[c] / n, var = b->std[c] / n - mean * mean;
            b->mean[c] = mean;
            b->std[c] = var > 0 ? sqrt(var) : 0.0;
            b->pruned[c] = b->max[c] < s->threshold;
            b->n_pruned += b->pruned[c];
        }
    }
}

int gates_measure(const param_table *t, const float *w, const trainer_data *d, double threshold,
                  gates_stats *out, char *err)
{
    memset(out, 0, sizeof *out);
    if (!(threshold > 0 && threshold < 1)) {
        err_set(err, "gate threshold must be in (0, 1), got %g", threshold);
        return -EINVAL;
    }
    if (d->n_test < 1) {
        err_set(err, "no test images to measure the gates on");
        return -EINVAL;
    }
    /* The view reads the gates of MODEL_SE_BLOCKS blocks and prunes their
     * channels: an architecture without the hooks (arch.h) has neither. */
    const int none[MODEL_SE_BLOCKS] = { 0 };
    if (model_macs_pruned(t, none) < 0) {
        err_set(err, "the gate view is cnn-se's; %s has none", t->arch);
        return -ENOTSUP;
    }
    out->threshold = threshold;
    out->images = d->n_test;
    float *xb = malloc((size_t)GATES_BATCH * MODEL_PIXELS * sizeof *xb);   /* (32, 784) */
    uint8_t *yb = malloc(GATES_BATCH);                                      /* (32) */
    model *m = model_new(t, GATES_BATCH);
    int rc = -ENOMEM;
    if (!xb || !yb || !m || gates_alloc(m, out) < 0) {
        err_set(err, "out of memory");
        goto out;
    }
    memcpy(model_params(m), w, t->total * sizeof *w);
    gates_collect(m, d, xb, yb, out);

    model_stats st;
    model_evaluate(m, d->test_x, d->test_y, d->test, d->n_test, &st);
    out->accuracy = st.accuracy;
    int removed[MODEL_SE_BLOCKS] = { 0 };
    for (int k = 0; k < MODEL_SE_BLOCKS; k++) {
        const gates_block *b = &out->b[k];
        for (int c = 0; c < b->channels; c++)
            if (b->pruned[c]) gates_prune_channel(t, model_params(m), k, c);
        removed[k] = b->n_pruned;
    }
    model_evaluate(m, d->test_x, d->test_y, d->test, d->n_test, &st);
    out->accuracy_pruned = st.accuracy;
    out->macs = model_macs(t, 1);
    out->macs_pruned = model_macs_pruned(t, removed);
    rc = 0;
out:
    model_free(m);
    free(xb);
    free(yb);
    if (rc < 0) gates_stats_free(out);
    return rc;
}

int gates_mean_vector(const gates_stats *s, double *v)
{
    int n = 0;
    for (int k = 0; k < MODEL_SE_BLOCKS; k++)
        for (int c = 0; c < s->b[k].channels && n < GATES_MAX_CHANNELS; c++) v[n++] = s->b[k].mean[c];
    return n;
}

unsigned gates_classes(const uint8_t *y, const int *idx, int n)
{
    long count[MODEL_CLASSES] = { 0 };
    for (int i = 0; i < n; i++) {
        const uint8_t l = y[idx ? idx[i] : i];
        if (l < MODEL_CLASSES) count[l]++;
    }
    unsigned set = 0;
    for (int k = 0; k < MODEL_CLASSES; k++)
        if (n > 0 && (double)count[k] >= GATES_CLASS_SHARE * n) set |= 1u << k;
    return set;
}

/* Cosine similarity of a and b (dim each) after subtracting mu (dim, or
 * NULL for none); 0 when either is all zero. */
static double gates_cosine(const double *a, const double *b, const double *mu, int dim)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < dim; i++) {
        const double x = a[i] - (mu ? mu[i] : 0), y = b[i] - (mu ? mu[i] : 0);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0;
}

int gates_similarity(const double *const *v, int dim, const unsigned *classes, const int *domain,
                     int n, gates_similarity_out *out)
{
    double *mu = calloc((size_t)(dim > 0 ? dim : 1), sizeof *mu);   /* (dim) mean over clients */
    if (!mu) return -ENOMEM;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < dim; c++) mu[c] += v[i][c] / n;
    memset(out, 0, sizeof *out);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            gates_pairs *p = !(classes[i] & classes[j]) ? &out->disjoint
                           : classes[i] == classes[j] && domain[i] == domain[j] ? &out->same
                           : &out->overlap;
            p->pairs++;
            p->cosine += gates_cosine(v[i], v[j], NULL, dim);
            p->centered += gates_cosine(v[i], v[j], mu, dim);
        }
    gates_pairs *all[3] = { &out->same, &out->overlap, &out->disjoint };
    for (int k = 0; k < 3; k++) {
        all[k]->cosine = all[k]->pairs ? all[k]->cosine / all[k]->pairs : NAN;
        all[k]->centered = all[k]->pairs ? all[k]->centered / all[k]->pairs : NAN;
    }
    free(mu);
    return 0;
}

int gates_print_channels(FILE *f, const char *name, const gates_stats *s)
{
    static const char *block[MODEL_SE_BLOCKS] = { "se1", "se2", "se3" };
    int rc = 0;
    for (int k = 0; k < MODEL_SE_BLOCKS && rc >= 0; k++) {
        const gates_block *b = &s->b[k];
        for (int c = 0; c < b->channels && rc >= 0; c++)
            rc = fprintf(f, "%s %s %d %.4f %.4f %.4f %d\n", name, block[k], c, b->mean[c], b->std[c],
                         b->max[c], b->pruned[c]);
    }
    return rc < 0 ? -EIO : 0;
}
