/* strategy: the aggregation seam of the coordinator; see strategy.h. */
#include "server/strategy.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/rng.h"
#include "server/agg.h"
#include "server/rules.h"

struct strategy {
    strategy_spec spec;
    size_t n;                   /* floats per update */
    int k;                      /* most updates per round */
    const float *global;        /* (n) borrowed from strategy_begin */
    agg figures;                /* n = 0: example-weighted train figures and count */
    agg sum;                    /* fedavg: running sum of the updates (n) */
    float *delta;               /* fedavg: (n) one update's new - global */
    float *held;                /* robust rules: (k, n) the round's updates */
    double *col;                /* robust rules: (k) one coordinate, or Krum's scores */
    double *dist;               /* krum: (k, k) squared distances */
    int *pick;                  /* krum: (k) chosen indices */
    int clipped;
    double norm_sum, norm_max;  /* of the updates folded in, before clipping */
    double last_norm;           /* of the last one folded in, before clipping */
};

static int strategy_holds(const strategy_spec *spec)
{
    return spec->rule != STRATEGY_FEDAVG;
}

int strategy_parse(const char *text, strategy_spec *spec, char *err)
{
    char *end;
    if (!strcmp(text, "fedavg")) {
        spec->rule = STRATEGY_FEDAVG;
        return 0;
    }
    if (!strcmp(text, "median")) {
        spec->rule = STRATEGY_MEDIAN;
        return 0;
    }
    if (!strncmp(text, "trimmed:", 8)) {
        errno = 0;
        double b = strtod(text + 8, &end);
        if (errno || end == text + 8 || *end || !(b >= 0 && b < 0.5)) {
            err_set(err, "--aggregate %s: BETA must be a number in [0, 0.5)", text);
            return -EINVAL;
        }
        spec->rule = STRATEGY_TRIMMED;
        spec->beta = b;
        return 0;
    }
    int multi = !strncmp(text, "multikrum:", 10);
    if (multi || !strncmp(text, "krum:", 5)) {
        const char *p = text + (multi ? 10 : 5);
        errno = 0;
        long f = strtol(p, &end, 10), m = 1;
        int ok = !errno && end != p && f >= 0 && f <= 100000;
        if (ok && multi) {
            ok = *end == ',';
            p = end + 1;
            if (ok) m = strtol(p, &end, 10);
            ok = ok && !errno && end != p && m >= 1 && m <= 100000;
        }
        if (!ok || *end) {
            err_set(err, "--aggregate %s: expected %s with integers F >= 0%s", text,
                    multi ? "multikrum:F,M" : "krum:F", multi ? " and M >= 1" : "");
            return -EINVAL;
        }
        spec->rule = multi ? STRATEGY_MULTIKRUM : STRATEGY_KRUM;
        spec->f = (int)f;
        spec->m = (int)m;
        return 0;
    }
    err_set(err, "--aggregate %s: expected fedavg, median, trimmed:BETA, krum:F or "
            "multikrum:F,M", text);
    return -EINVAL;
}

void strategy_name(const strategy_spec *spec, char *buf, size_t size)
{
    switch (spec->rule) {
    case STRATEGY_MEDIAN: snprintf(buf, size, "median"); break;
    case STRATEGY_TRIMMED: snprintf(buf, size, "trimmed:%g", spec->beta); break;
    case STRATEGY_KRUM: snprintf(buf, size, "krum:%d", spec->f); break;
    case STRATEGY_MULTIKRUM: snprintf(buf, size, "multikrum:%d,%d", spec->f, spec->m); break;
    default: snprintf(buf, size, "fedavg"); break;
    }
}

uint64_t strategy_memory(const strategy_spec *spec, size_t n, int k)
{
    uint64_t fedavg = (uint64_t)n * (sizeof(double) + sizeof(float));
    if (!strategy_holds(spec)) return fedavg;
    uint64_t b = (uint64_t)k * n * sizeof(float) + (uint64_t)k * sizeof(double);
    if (spec->rule == STRATEGY_KRUM || spec->rule == STRATEGY_MULTIKRUM)
        b += (uint64_t)k * k * sizeof(double) + (uint64_t)k * sizeof(int);
    return b;
}

int strategy_check(const strategy_spec *spec, size_t n, int k, uint64_t max_bytes, char *err)
{
    char name[STRATEGY_NAME_MAX];
    strategy_name(spec, name, sizeof name);
    if (spec->dp && (spec->rule != STRATEGY_FEDAVG || !(spec->clip > 0))) {
        err_set(err, "DP-FedAvg (--dp-clip) needs --aggregate fedavg, not %s", name);
        return -EINVAL;
    }
    if ((spec->rule == STRATEGY_KRUM || spec->rule == STRATEGY_MULTIKRUM) &&
        k < 2 * spec->f + 3) {
        err_set(err, "--aggregate %s tolerates F attackers among K >= 2F+3 updates; "
                "--clients-per-round %d is too few", name, k);
        return -EINVAL;
    }
    if (spec->rule == STRATEGY_MULTIKRUM && spec->m > k) {
        err_set(err, "--aggregate %s averages M updates, more than --clients-per-round %d",
                name, k);
        return -EINVAL;
    }
    uint64_t need = strategy_memory(spec, n, k);
    if (need > max_bytes) {
        err_set(err, "--aggregate %s holds --clients-per-round %d updates of %zu floats: "
                "%.1f MB, over --max-agg-memory %.1f MB", name, k, n, need / 1e6,
                max_bytes / 1e6);
        return -EINVAL;
    }
    return 0;
}

void strategy_free(strategy *s)
{
    if (!s) return;
    agg_free(&s->figures);
    agg_free(&s->sum);
    free(s->delta);
    free(s->held);
    free(s->col);
    free(s->dist);
    free(s->pick);
    free(s);
}

int strategy_new(const strategy_spec *spec, size_t n, int k, strategy **out, char *err)
{
    *out = NULL;
    strategy *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->spec = *spec;
    s->n = n;
    s->k = k;
    size_t n1 = n ? n : 1;
    if (agg_init(&s->figures, 0)) goto oom;
    if (!strategy_holds(spec)) {
        if (agg_init(&s->sum, n) || !(s->delta = malloc(n1 * sizeof *s->delta))) goto oom;
    } else {
        s->held = malloc((size_t)k * n1 * sizeof *s->held);
        s->col = malloc((size_t)k * sizeof *s->col);
        if (!s->held || !s->col) goto oom;
        if (spec->rule == STRATEGY_KRUM || spec->rule == STRATEGY_MULTIKRUM) {
            s->dist = malloc((size_t)k * k * sizeof *s->dist);
            s->pick = malloc((size_t)k * sizeof *s->pick);
            if (!s->dist || !s->pick) goto oom;
        }
    }
    *out = s;
    return 0;
oom:
    strategy_free(s);
    err_set(err, "out of memory for the aggregation strategy");
    return -ENOMEM;
}

void strategy_begin(strategy *s, const float *global)
{
    s->global = global;
    agg_reset(&s->figures);
    if (!strategy_holds(&s->spec)) agg_reset(&s->sum);
    s->clipped = 0;
    s->norm_sum = s->norm_max = 0;
}

int strategy_add(strategy *s, const float *v, uint32_t w, float loss, float accuracy)
{
    if (w == 0 || w > AGG_MAX_WEIGHT) return -EINVAL;
    if (!isfinite(loss) || !isfinite(accuracy)) return -EDOM;
    int i = s->figures.count;
    if (i >= s->k) return -ENOSPC;
    /* The norm of new - global, in double: checked whole before anything
     * of the round changes. */
    double norm2 = 0;
    for (size_t j = 0; j < s->n; j++) {
        if (!isfinite(v[j])) return -EDOM;
        double d = (double)v[j] - (double)s->global[j];
        norm2 += d * d;
    }
    double norm = sqrt(norm2), scale = 1;
    if (s->spec.clip > 0 && norm > s->spec.clip) scale = s->spec.clip / norm;
    else if (!(norm <= FLT_MAX)) return -ERANGE;   /* some d beyond float, unclipped */
    float *d = strategy_holds(&s->spec) ? s->held + (size_t)i * s->n : s->delta;
    for (size_t j = 0; j < s->n; j++)
        d[j] = (float)(((double)v[j] - (double)s->global[j]) * scale);
    if (!strategy_holds(&s->spec)) {
        /* DP-FedAvg weighs every clipped update the same (see strategy.h). */
        int ret = agg_add(&s->sum, d, s->spec.dp ? 1 : w, 0, 0);
        if (ret) return ret;
    }
    agg_add(&s->figures, NULL, w, loss, accuracy);
    if (scale < 1) s->clipped++;
    s->norm_sum += norm;
    s->last_norm = norm;
    if (norm > s->norm_max) s->norm_max = norm;
    return 0;
}

int strategy_finish(strategy *s, uint64_t seed, float *out)
{
    int k = s->figures.count;
    if (k == 0) return -ENODATA;
    switch (s->spec.rule) {
    case STRATEGY_MEDIAN: rules_median(s->held, k, s->n, s->col, out); break;
    case STRATEGY_TRIMMED: rules_trimmed(s->held, k, s->n, s->spec.beta, s->col, out); break;
    case STRATEGY_KRUM:
        rules_krum(s->held, k, s->n, s->spec.f, 1, s->dist, s->col, s->pick, out);
        break;
    case STRATEGY_MULTIKRUM: {
        int m = s->spec.m < k ? s->spec.m : k;
        rules_krum(s->held, k, s->n, s->spec.f, m, s->dist, s->col, s->pick, out);
        break;
    }
    default:
        agg_mean(&s->sum, out);
        if (s->spec.dp && s->spec.dp_noise > 0) {
            rng r;
            rng_seed(&r, seed);
            double sd = s->spec.dp_noise * s->spec.clip / k;
            for (size_t j = 0; j < s->n; j++) out[j] = (float)(out[j] + sd * rng_normal(&r));
        }
        break;
    }
    return 0;
}

int strategy_count(const strategy *s)
{
    return s->figures.count;
}

int strategy_clipped(const strategy *s)
{
    return s->clipped;
}

double strategy_last_norm(const strategy *s)
{
    return s->last_norm;
}

double strategy_norm_max(const strategy *s)
{
    return s->norm_max;
}

double strategy_norm_mean(const strategy *s)
{
    return s->figures.count ? s->norm_sum / s->figures.count : 0;
}

double strategy_train_loss(const strategy *s)
{
    return s->figures.count ? s->figures.loss / s->figures.weight : 0;
}

double strategy_train_accuracy(const strategy *s)
{
    return s->figures.count ? s->figures.accuracy / s->figures.weight : 0;
}
