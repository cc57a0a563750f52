/* metrics: Prometheus metric families and their text rendering; see
 * metrics.h. */
#include "server/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

struct metric {
    int type;                           /* METRIC_* */
    char name[METRICS_NAME_MAX];
    char help[METRICS_HELP_MAX];
    char label[METRICS_NAME_MAX];       /* "" for a family of one series */
    const char *const *values;          /* (nseries) label values, not owned */
    int nseries;
    double val[METRICS_MAX_SERIES];     /* counter or gauge series */
    double bounds[METRICS_MAX_BUCKETS]; /* (nbounds) histogram upper bounds */
    int nbounds;
    uint64_t buckets[METRICS_MAX_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
    double sum;
    uint64_t count;
};

struct metrics {
    metric fam[METRICS_MAX_FAMILIES];
    int n;
};

metrics *metrics_new(void)
{
    return calloc(1, sizeof(metrics));
}

void metrics_free(metrics *m)
{
    free(m);
}

static int metrics_name_ok(const char *s, int colon)
{
    if (!s[0] || strlen(s) >= METRICS_NAME_MAX) return 0;
    for (const char *c = s; *c; c++) {
        int alpha = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' ||
                    (colon && *c == ':');
        if (!alpha && !(c > s && *c >= '0' && *c <= '9')) return 0;
    }
    return 1;
}

static int metrics_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Checks what every family needs and takes the next slot. */
static int metrics_new_family(metrics *m, int type, const char *name, const char *help,
                              metric **out, char *err)
{
    *out = NULL;
    if (!metrics_name_ok(name, 1)) {
        err_set(err, "metric name '%s' is not [a-zA-Z_:][a-zA-Z0-9_:]*", name);
        return -EINVAL;
    }
    if (type == METRIC_COUNTER && !metrics_ends_with(name, "_total")) {
        err_set(err, "counter %s does not end in _total", name);
        return -EINVAL;
    }
    if (strlen(help) >= METRICS_HELP_MAX) {
        err_set(err, "help text of %s over %d bytes", name, METRICS_HELP_MAX - 1);
        return -EINVAL;
    }
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->fam[i].name, name)) {
            err_set(err, "metric %s added twice", name);
            return -EINVAL;
        }
    if (m->n == METRICS_MAX_FAMILIES) {
        err_set(err, "more than %d metric families", METRICS_MAX_FAMILIES);
        return -ENOSPC;
    }
    metric *f = &m->fam[m->n];
    memset(f, 0, sizeof *f);
    f->type = type;
    snprintf(f->name, sizeof f->name, "%s", name);
    snprintf(f->help, sizeof f->help, "%s", help);
    *out = f;
    return 0;
}

int metrics_add(metrics *m, int type, const char *name, const char *help, const char *label,
                const char *const *values, int n, metric **out, char *err)
{
    if (type != METRIC_COUNTER && type != METRIC_GAUGE) {
        err_set(err, "metric %s: metrics_add makes counters and gauges", name);
        return -EINVAL;
    }
    if (label && (!metrics_name_ok(label, 0) || !strncmp(label, "__", 2) || !values || n < 1 ||
                  n > METRICS_MAX_SERIES)) {
        err_set(err, "metric %s: label '%s' needs a valid name and 1..%d values", name, label,
                METRICS_MAX_SERIES);
        return -EINVAL;
    }
    metric *f;
    int ret = metrics_new_family(m, type, name, help, &f, err);
    if (ret) return ret;
    if (label) {
        snprintf(f->label, sizeof f->label, "%s", label);
        f->values = values;
        f->nseries = n;
    } else {
        f->nseries = 1;
    }
    m->n++;
    *out = f;
    return 0;
}

int metrics_add_histogram(metrics *m, const char *name, const char *help, const double *bounds,
                          int n, metric **out, char *err)
{
    int ok = n >= 1 && n <= METRICS_MAX_BUCKETS;
    for (int i = 0; ok && i < n; i++)
        ok = isfinite(bounds[i]) && (i == 0 || bounds[i] > bounds[i - 1]);
    if (!ok) {
        err_set(err, "histogram %s: 1..%d increasing finite bounds needed", name,
                METRICS_MAX_BUCKETS);
        return -EINVAL;
    }
    metric *f;
    int ret = metrics_new_family(m, METRIC_HISTOGRAM, name, help, &f, err);
    if (ret) return ret;
    memcpy(f->bounds, bounds, (size_t)n * sizeof *bounds);
    f->nbounds = n;
    m->n++;
    *out = f;
    return 0;
}

void metric_add(metric *f, int i, double v)
{
    if (f->type == METRIC_HISTOGRAM || i < 0 || i >= f->nseries) return;
    if (f->type == METRIC_COUNTER && !(v >= 0)) return;
    f->val[i] += v;
}

void metric_set(metric *f, int i, double v)
{
    if (f->type == METRIC_HISTOGRAM || i < 0 || i >= f->nseries) return;
    f->val[i] = v;
}

void metric_observe(metric *f, double v)
{
    if (f->type != METRIC_HISTOGRAM || isnan(v)) return;
    int b = 0;
    while (b < f->nbounds && v > f->bounds[b]) b++;
    f->buckets[b]++;
    f->sum += v;
    f->count++;
}

double metric_value(const metric *f, int i)
{
    if (f->type == METRIC_HISTOGRAM) return (double)f->count;
    return i >= 0 && i < f->nseries ? f->val[i] : 0;
}

int metrics_format_value(strbuf *out, double v)
{
    if (isnan(v)) return strbuf_append(out, "NaN", 3);
    if (isinf(v)) return v > 0 ? strbuf_append(out, "+Inf", 4) : strbuf_append(out, "-Inf", 4);
    /* Integers up to 2^53 are exact in a double: print them whole. */
    if (v == floor(v) && fabs(v) < 9007199254740992.0) return strbuf_printf(out, "%.0f", v);
    char s[32];
    snprintf(s, sizeof s, "%.15g", v);
    if (strtod(s, NULL) != v) snprintf(s, sizeof s, "%.17g", v);
    return strbuf_printf(out, "%s", s);
}

/* HELP text escapes backslash and newline; a label value also the double
 * quote (the exposition format's two escaping rules). */
static void metrics_escape(strbuf *out, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\') strbuf_append(out, "\\\\", 2);
        else if (*s == '\n') strbuf_append(out, "\\n", 2);
        else if (quote && *s == '"') strbuf_append(out, "\\\"", 2);
        else strbuf_append(out, s, 1);
    }
}

static const char *metrics_type_name(int type)
{
    return type == METRIC_COUNTER ? "counter" : type == METRIC_GAUGE ? "gauge" : "histogram";
}

static void metrics_render_histogram(const metric *f, strbuf *out)
{
    uint64_t cum = 0;
    for (int b = 0; b <= f->nbounds; b++) {
        cum += f->buckets[b];
        strbuf_printf(out, "%s_bucket{le=\"", f->name);
        if (b < f->nbounds) metrics_format_value(out, f->bounds[b]);
        else strbuf_append(out, "+Inf", 4);
        strbuf_printf(out, "\"} %llu\n", (unsigned long long)cum);
    }
    strbuf_printf(out, "%s_sum ", f->name);
    metrics_format_value(out, f->sum);
    strbuf_printf(out, "\n%s_count %llu\n", f->name, (unsigned long long)f->count);
}

int metrics_render(const metrics *m, strbuf *out)
{
    for (int i = 0; i < m->n; i++) {
        const metric *f = &m->fam[i];
        strbuf_printf(out, "# HELP %s ", f->name);
        metrics_escape(out, f->help, 0);
        strbuf_printf(out, "\n# TYPE %s %s\n", f->name, metrics_type_name(f->type));
        if (f->type == METRIC_HISTOGRAM) {
            metrics_render_histogram(f, out);
            continue;
        }
        for (int s = 0; s < f->nseries; s++) {
            strbuf_append(out, f->name, strlen(f->name));
            if (f->label[0]) {
                strbuf_printf(out, "{%s=\"", f->label);
                metrics_escape(out, f->values[s], 1);
                strbuf_append(out, "\"}", 2);
            }
            strbuf_append(out, " ", 1);
            metrics_format_value(out, f->val[s]);
            strbuf_append(out, "\n", 1);
        }
    }
    return strbuf_error(out);
}
