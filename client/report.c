/* report: statistics of per-client accuracy and their text, CSV and JSON
 * forms (report.h). Reading the db is in report_db.c, the chart in
 * report_svg.c.
 */
#include "client/report.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double report_quantile(const double *x, int n, double q)
{
    if (n <= 0) return NAN;
    double h = q * (n - 1);
    int lo = (int)floor(h);
    if (lo >= n - 1) return x[n - 1];
    return x[lo] + (h - lo) * (x[lo + 1] - x[lo]);
}

void report_summarize(const double *acc, const long *examples, int n, report_summary *s)
{
    memset(s, 0, sizeof *s);
    s->clients = n;
    s->weighted = s->mean = s->std = s->min = s->p10 = s->median = NAN;
    if (n <= 0) return;

    double wsum = 0, sum = 0;
    for (int i = 0; i < n; i++) {
        wsum += acc[i] * (double)examples[i];
        s->examples += examples[i];
        sum += acc[i];
    }
    if (s->examples > 0) s->weighted = wsum / (double)s->examples;
    s->mean = sum / n;
    double var = 0;
    for (int i = 0; i < n; i++) var += (acc[i] - s->mean) * (acc[i] - s->mean);
    s->std = sqrt(var / n);

    /* The percentiles need a sorted copy; when it cannot be had, the
     * minimum is still exact and the percentiles stay NAN. */
    double *sorted = malloc((size_t)n * sizeof *sorted);   /* (n) */
    if (!sorted) {
        s->min = acc[0];
        for (int i = 1; i < n; i++) if (acc[i] < s->min) s->min = acc[i];
        return;
    }
    memcpy(sorted, acc, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_double);
    s->min = sorted[0];
    s->p10 = report_quantile(sorted, n, 0.10);
    s->median = report_quantile(sorted, n, 0.50);
    free(sorted);
}

int report_compute(report *r)
{
    const report_run *a = &r->run;
    int n = a->n, ret = 0;
    double *acc = malloc(((size_t)n + 1) * sizeof *acc);      /* (n) */
    long *ex = malloc(((size_t)n + 1) * sizeof *ex);          /* (n) */
    double *bacc = malloc(((size_t)n + 1) * sizeof *bacc);    /* (matched) */
    long *bex = malloc(((size_t)n + 1) * sizeof *bex);        /* (matched) */
    if (!acc || !ex || !bacc || !bex) { ret = -ENOMEM; goto out; }

    for (int i = 0; i < n; i++) {
        acc[i] = a->c[i].accuracy;
        ex[i] = a->c[i].examples;
    }
    report_summarize(acc, ex, n, &r->s);

    r->best = 0;
    for (int i = 1; i < a->ncurve; i++)
        if (isnan(a->curve[r->best].weighted_accuracy) ||
            a->curve[i].weighted_accuracy > a->curve[r->best].weighted_accuracy) r->best = i;

    if (!r->has_base) goto out;
    free(r->base_acc);
    r->base_acc = malloc(((size_t)n + 1) * sizeof *r->base_acc);
    if (!r->base_acc) { ret = -ENOMEM; goto out; }

    /* Both runs are sorted by name (report_load_run), so one merge pass
     * joins them. The baseline's summary is over the clients present in
     * both, so that its figures and ours describe the same people; its
     * weights are its own test examples (the same split when the partition
     * is). */
    int m = 0, j = 0;
    const report_run *b = &r->base;
    r->better = r->worse = r->equal = r->missing = 0;
    for (int i = 0; i < n; i++) {
        while (j < b->n && strcmp(b->c[j].name, a->c[i].name) < 0) j++;
        if (j == b->n || strcmp(b->c[j].name, a->c[i].name)) {
            r->base_acc[i] = NAN;
            r->missing++;
            continue;
        }
        r->base_acc[i] = b->c[j].accuracy;
        bacc[m] = b->c[j].accuracy;
        bex[m] = b->c[j].examples;
        m++;
        double d = acc[i] - b->c[j].accuracy;
        if (d > REPORT_EQUAL_EPS) r->better++;
        else if (d < -REPORT_EQUAL_EPS) r->worse++;
        else r->equal++;
    }
    report_summarize(bacc, bex, m, &r->bs);
out:
    free(acc);
    free(ex);
    free(bacc);
    free(bex);
    return ret;
}

void report_free(report *r)
{
    if (!r) return;
    report_run_free(&r->run);
    report_run_free(&r->base);
    free(r->base_acc);
    r->base_acc = NULL;
}

/* The summary statistics in the order every writer lists them. */
typedef struct {
    const char *name;
    size_t off;     /* offset of the double in report_summary */
} stat_field;

static const stat_field stat_fields[] = {
    { "weighted_accuracy", offsetof(report_summary, weighted) },
    { "mean_accuracy", offsetof(report_summary, mean) },
    { "std_accuracy", offsetof(report_summary, std) },
    { "min_accuracy", offsetof(report_summary, min) },
    { "p10_accuracy", offsetof(report_summary, p10) },
    { "median_accuracy", offsetof(report_summary, median) },
};
#define N_STATS (sizeof stat_fields / sizeof stat_fields[0])

static double stat_get(const report_summary *s, size_t k)
{
    return *(const double *)((const char *)s + stat_fields[k].off);
}

/* The cost figures, in the order every writer lists them. */
static long cost_get(const report_cost *c, int k, const char **name)
{
    static const char *names[] = { "params_total", "params_backbone", "params_se",
                                   "params_head", "params_private", "macs_per_sample",
                                   "macs_per_sample_without_se" };
    const long v[] = { c->total, c->backbone, c->se, c->head, c->private_params, c->macs,
                       c->macs_no_se };
    *name = names[k];
    return v[k];
}
#define N_COSTS 7

/* The privacy figures of a DP-FedAvg run, in the order every writer lists
 * them: those of the privacy row of the last committed round up to the
 * reported one (dp_round, the n of the CSV rows), and the run's clip. */
static double dp_get(const report_run *a, int k, const char **name)
{
    static const char *names[] = { "dp_epsilon", "dp_delta", "dp_noise", "dp_clip",
                                   "dp_sample_rate", "dp_round" };
    const double v[] = { a->dp_epsilon, a->dp_delta, a->dp_noise, a->dp_clip, a->dp_rate,
                         a->dp_round };
    *name = names[k];
    return v[k];
}
#define N_DP 6

static const char *text_or(const char *s, const char *dflt)
{
    return s[0] ? s : dflt;
}

int report_print(FILE *f, const report *r)
{
    const report_run *a = &r->run;
    fprintf(f, "db %s\n", a->db);
    fprintf(f, "kind %s\n", text_or(a->meta.kind, "unknown"));
    fprintf(f, "partition %s\n", text_or(a->meta.partition, "unknown"));
    fprintf(f, "private_groups %s\n", text_or(a->meta.private_groups, "unknown"));
    for (int i = 0; i < a->settings.n; i++)
        fprintf(f, "setting %s %s\n", a->settings.item[i].name, a->settings.item[i].value);
    for (int i = 0; i < a->nchanges; i++)
        fprintf(f, "setting_change %d %s %s -> %s\n", a->changes[i].round, a->changes[i].name,
                a->changes[i].old_value, a->changes[i].new_value);
    fprintf(f, "round %d\n", a->round);
    fprintf(f, "evaluated_rounds %d\n", a->ncurve);
    /* Which clients the round's figures are over: all that were connected,
     * or the coordinator's sample of them (--eval-clients N). */
    if (a->meta.eval_clients[0]) fprintf(f, "eval_clients %s\n", a->meta.eval_clients);
    if (a->seen >= 0) fprintf(f, "clients_seen %ld\n", a->seen);
    if (r->has_base) {
        fprintf(f, "baseline %s\n", r->base.db);
        fprintf(f, "baseline_kind %s\n", text_or(r->base.meta.kind, "unknown"));
        fprintf(f, "baseline_private_groups %s\n", text_or(r->base.meta.private_groups, "unknown"));
        fprintf(f, "baseline_round %d\n", r->base.round);
        fprintf(f, "# %-14s %8s %8s %8s %8s\n", "client", "examples", "accuracy", "baseline",
                "diff");
    } else {
        fprintf(f, "# %-14s %8s %8s\n", "client", "examples", "accuracy");
    }
    for (int i = 0; i < a->n; i++) {
        const report_client *c = &a->c[i];
        fprintf(f, "  %-14s %8ld %8.4f", c->name, c->examples, c->accuracy);
        if (r->has_base && isnan(r->base_acc[i])) fprintf(f, " %8s %8s", "-", "-");
        else if (r->has_base) fprintf(f, " %8.4f %+8.4f", r->base_acc[i], c->accuracy - r->base_acc[i]);
        fputc('\n', f);
    }
    fprintf(f, "clients %d\n", r->s.clients);
    if (a->excluded) fprintf(f, "excluded_clients %ld\n", a->excluded);
    fprintf(f, "examples %ld\n", r->s.examples);
    if (a->skipped) fprintf(f, "skipped_reports %ld\n", a->skipped);
    for (size_t k = 0; k < N_STATS; k++) fprintf(f, "%s %.4f\n", stat_fields[k].name, stat_get(&r->s, k));
    for (int k = 0; a->dp && k < N_DP; k++) {
        const char *name;
        double v = dp_get(a, k, &name);
        fprintf(f, "%s %.15g\n", name, v);   /* epsilon can be 1e6: keep its decimals */
    }
    if (r->has_base) {
        for (size_t k = 0; k < N_STATS; k++)
            fprintf(f, "baseline_%s %.4f\n", stat_fields[k].name, stat_get(&r->bs, k));
        fprintf(f, "weighted_accuracy_difference %+.4f\n", r->s.weighted - r->bs.weighted);
        fprintf(f, "better %d\nworse %d\nequal %d\n", r->better, r->worse, r->equal);
        if (r->missing) fprintf(f, "missing_in_baseline %d\n", r->missing);
    }
    if (r->show_best) {
        fprintf(f, "# round clients weighted_accuracy\n");
        for (int i = 0; i < a->ncurve; i++)
            fprintf(f, "  %5d %7d %.4f\n", a->curve[i].round, a->curve[i].clients,
                    a->curve[i].weighted_accuracy);
        fprintf(f, "best_round %d\n", a->curve[r->best].round);
        fprintf(f, "best_weighted_accuracy %.4f\n", a->curve[r->best].weighted_accuracy);
    }
    if (r->has_cost) {
        for (int k = 0; k < N_COSTS; k++) {
            const char *name;
            long v = cost_get(&r->cost, k, &name);
            fprintf(f, "%s %ld\n", name, v);
        }
        fprintf(f, "private_fraction %.4f\n", r->cost.private_fraction);
    }
    return ferror(f) ? -EIO : 0;
}

/* CSV field: quoted, with quotes doubled, when it holds a separator. */
static void csv_text(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* A number cell; NAN is an empty cell. */
static void csv_num(FILE *f, double v)
{
    fputc(',', f);
    if (!isnan(v)) fprintf(f, "%.6f", v);
}

static void csv_row(FILE *f, const char *kind, const char *name, long n, double v, double b)
{
    fprintf(f, "%s,", kind);
    csv_text(f, name);
    fprintf(f, ",%ld", n);
    csv_num(f, v);
    csv_num(f, b);
    csv_num(f, v - b);
    fputc('\n', f);
}

int report_write_csv(FILE *f, const report *r)
{
    const report_run *a = &r->run;
    fprintf(f, "kind,name,n,value,baseline,difference\n");
    for (int i = 0; i < a->n; i++)
        csv_row(f, "client", a->c[i].name, a->c[i].examples, a->c[i].accuracy,
                r->has_base ? r->base_acc[i] : NAN);
    for (size_t k = 0; k < N_STATS; k++)
        csv_row(f, "summary", stat_fields[k].name, k == 0 ? r->s.examples : r->s.clients,
                stat_get(&r->s, k), r->has_base ? stat_get(&r->bs, k) : NAN);
    if (a->excluded) csv_row(f, "count", "excluded_clients", a->excluded, NAN, NAN);
    for (int k = 0; a->dp && k < N_DP - 1; k++) {
        const char *name;
        double v = dp_get(a, k, &name);
        csv_row(f, "dp", name, a->dp_round, v, NAN);
    }
    if (r->has_base) {
        csv_row(f, "count", "better", r->better, NAN, NAN);
        csv_row(f, "count", "worse", r->worse, NAN, NAN);
        csv_row(f, "count", "equal", r->equal, NAN, NAN);
        csv_row(f, "count", "missing_in_baseline", r->missing, NAN, NAN);
    }
    if (r->show_best) {
        for (int i = 0; i < a->ncurve; i++)
            csv_row(f, "round", "weighted_accuracy", a->curve[i].round,
                    a->curve[i].weighted_accuracy, NAN);
        csv_row(f, "best", "weighted_accuracy", a->curve[r->best].round,
                a->curve[r->best].weighted_accuracy, NAN);
    }
    if (r->has_cost) {
        for (int k = 0; k < N_COSTS; k++) {
            const char *name;
            long v = cost_get(&r->cost, k, &name);
            csv_row(f, "cost", name, v, NAN, NAN);
        }
        csv_row(f, "cost", "private_fraction", 0, r->cost.private_fraction, NAN);
    }
    return ferror(f) ? -EIO : 0;
}

/* JSON string with the escapes RFC 8259 requires. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* JSON has no NaN; an absent figure is null. */
static void json_num(FILE *f, double v)
{
    if (isnan(v)) fputs("null", f);
    else fprintf(f, "%.6f", v);
}

static void json_summary(FILE *f, const report_summary *s)
{
    fprintf(f, "{\"clients\": %d, \"examples\": %ld", s->clients, s->examples);
    for (size_t k = 0; k < N_STATS; k++) {
        fprintf(f, ", \"%s\": ", stat_fields[k].name);
        json_num(f, stat_get(s, k));
    }
    fputc('}', f);
}

static void json_run_head(FILE *f, const report_run *a)
{
    fputs("\"db\": ", f);
    json_str(f, a->db);
    fputs(", \"kind\": ", f);
    json_str(f, a->meta.kind);
    fputs(", \"partition\": ", f);
    json_str(f, a->meta.partition);
    fputs(", \"private_groups\": ", f);
    json_str(f, a->meta.private_groups);
    fprintf(f, ", \"round\": %d, \"evaluated_rounds\": %d, \"excluded_clients\": %ld", a->round,
            a->ncurve, a->excluded);
    if (a->dp) {
        fputs(", \"dp\": {", f);
        for (int k = 0; k < N_DP; k++) {
            const char *name;
            double v = dp_get(a, k, &name);
            fprintf(f, "%s\"%s\": ", k ? ", " : "", name + 3);
            /* %.9g: a delta of 1e-7 must not print as 0. */
            if (isnan(v)) fputs("null", f);
            else fprintf(f, "%.9g", v);
        }
        fputc('}', f);
    }
    fputs(", \"settings\": {", f);
    for (int i = 0; i < a->settings.n; i++) {
        if (i) fputs(", ", f);
        json_str(f, a->settings.item[i].name);
        fputs(": ", f);
        json_str(f, a->settings.item[i].value);
    }
    fputs("}, \"setting_changes\": [", f);
    for (int i = 0; i < a->nchanges; i++) {
        fprintf(f, "%s{\"round\": %d, \"name\": ", i ? ", " : "", a->changes[i].round);
        json_str(f, a->changes[i].name);
        fputs(", \"old\": ", f);
        json_str(f, a->changes[i].old_value);
        fputs(", \"new\": ", f);
        json_str(f, a->changes[i].new_value);
        fputc('}', f);
    }
    fputc(']', f);
}

int report_write_json(FILE *f, const report *r)
{
    const report_run *a = &r->run;
    fputs("{", f);
    json_run_head(f, a);
    fputs(",\n \"clients\": [", f);
    for (int i = 0; i < a->n; i++) {
        fputs(i ? ",\n  {\"name\": " : "\n  {\"name\": ", f);
        json_str(f, a->c[i].name);
        fprintf(f, ", \"examples\": %ld, \"accuracy\": ", a->c[i].examples);
        json_num(f, a->c[i].accuracy);
        if (r->has_base) {
            fputs(", \"baseline_accuracy\": ", f);
            json_num(f, r->base_acc[i]);
            fputs(", \"difference\": ", f);
            json_num(f, a->c[i].accuracy - r->base_acc[i]);
        }
        fputc('}', f);
    }
    fputs("],\n \"summary\": ", f);
    json_summary(f, &r->s);
    if (r->has_base) {
        fputs(",\n \"baseline\": {", f);
        json_run_head(f, &r->base);
        fputs(", \"summary\": ", f);
        json_summary(f, &r->bs);
        fprintf(f, ", \"better\": %d, \"worse\": %d, \"equal\": %d, \"missing_in_baseline\": %d}",
                r->better, r->worse, r->equal, r->missing);
    }
    if (r->show_best) {
        fputs(",\n \"rounds\": [", f);
        for (int i = 0; i < a->ncurve; i++) {
            fprintf(f, "%s{\"round\": %d, \"clients\": %d, \"examples\": %ld, \"weighted_accuracy\": ",
                    i ? ", " : "", a->curve[i].round, a->curve[i].clients, a->curve[i].examples);
            json_num(f, a->curve[i].weighted_accuracy);
            fputc('}', f);
        }
        fprintf(f, "],\n \"best\": {\"round\": %d, \"weighted_accuracy\": ", a->curve[r->best].round);
        json_num(f, a->curve[r->best].weighted_accuracy);
        fputc('}', f);
    }
    if (r->has_cost) {
        fputs(",\n \"cost\": {", f);
        for (int k = 0; k < N_COSTS; k++) {
            const char *name;
            long v = cost_get(&r->cost, k, &name);
            fprintf(f, "\"%s\": %ld, ", name, v);
        }
        fputs("\"private_fraction\": ", f);
        json_num(f, r->cost.private_fraction);
        fputc('}', f);
    }
    fputs("}\n", f);
    return ferror(f) ? -EIO : 0;
}
