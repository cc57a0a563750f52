/* report: per-client personalized accuracy read from a server.db, its
 * statistics, and the text / CSV / JSON / SVG forms that sefl-eval writes.
 *
 * A report is one evaluated round of one run (the EvalReports of that round,
 * one per client), optionally joined by client name with a baseline run on the
 * same partition (another server.db, or the one `sefl-sim --local-only`
 * writes). The statistics follow PFLlib: the headline figure is the
 * sample-weighted accuracy sum(acc * examples) / sum(examples); mean and std
 * (population, as numpy's default) are over clients, p10 and median are
 * percentiles with linear interpolation (numpy's default method).
 *
 * Use: report_load_run() for the run and, if wanted, the baseline;
 * report_compute(); then report_print / report_write_csv / _json / _svg;
 * report_free(). report_db.c reads SQLite, report_svg.c draws the charts,
 * report_xy.c reads the points of an x-y chart, report.c does the rest.
 */
#ifndef SEFL_REPORT_H
#define SEFL_REPORT_H

#include <stdio.h>

#include "common/fl/settings.h"

/* Limits on what is read from a db: a larger value is an error, not a
 * truncation, so a damaged or foreign file cannot make us allocate at will. */
#define REPORT_MAX_CLIENTS 100000        /* eval reports in one round */
#define REPORT_MAX_ROUNDS 1000000        /* distinct evaluated rounds */
#define REPORT_MAX_EXAMPLES 100000000L   /* test examples of one client */
#define REPORT_NAME_MAX 64               /* client name, with its NUL */
#define REPORT_META_MAX 64               /* a meta text value, with its NUL */

/* Two accuracies closer than this count as equal in better/worse/equal. */
#define REPORT_EQUAL_EPS 1e-9

typedef struct {
    char name[REPORT_NAME_MAX];  /* client certificate CN, e.g. client-0007 */
    long examples;               /* its test examples */
    double accuracy;             /* personalized accuracy in [0,1] */
} report_client;

/* One evaluated round: its summary figure, for the curve and --best. */
typedef struct {
    int round;
    int clients;                 /* reports in that round */
    long examples;
    double weighted_accuracy;    /* NAN when examples is 0 */
} report_point;

/* The meta table, as far as sefl-eval needs it; absent keys stay empty / -1. */
typedef struct {
    char arch[REPORT_META_MAX];           /* "cnn-se", "mbv2-se" */
    char se_placement[REPORT_META_MAX];   /* mbv2-se's option, empty if absent */
    char gate[REPORT_META_MAX];           /* mbv2-se's option, empty if absent */
    int r;                                /* SE reduction ratio, -1 if absent */
    int fc1_gate;                         /* -1 if absent */
    char private_groups[REPORT_META_MAX]; /* "se", "none", "head", "se,head" */
    char kind[REPORT_META_MAX];           /* "server" or "local" */
    char partition[REPORT_META_MAX];      /* partition spec, may be empty */
    char table_hash[REPORT_META_MAX];     /* hex text, may be empty */
    char eval_clients[REPORT_META_MAX];   /* --eval-clients: "all" or N; empty if absent */
} report_meta;

/* A run setting changed on resume (--allow-change), from `round` on. */
typedef struct {
    int round;
    char name[SETTINGS_NAME_MAX];
    char old_value[SETTINGS_VALUE_MAX];
    char new_value[SETTINGS_VALUE_MAX];
} report_change;

/* One run read from a db: its meta, its run settings and their changes, the
 * curve of every evaluated round, and the reports of one selected round,
 * sorted by client name. */
typedef struct {
    char db[512];                /* path, as given */
    report_meta meta;
    settings settings;           /* as recorded now; empty for a file without them */
    report_change *changes;      /* (nchanges) by round, then as recorded */
    int nchanges;
    report_point *curve;         /* (ncurve) ascending by round */
    int ncurve;
    int round;                   /* the selected round */
    report_client *c;            /* (n) sorted by name */
    int n;
    long seen;                   /* clients the coordinator has seen (clients table), -1 if none */
    long skipped;                /* eval reports out of range, left out of everything */
    long excluded;               /* reports of `round` left out by the exclusion list */
    int dp;                      /* a DP-FedAvg run: the privacy spent up to `round` below */
    int dp_round;                /* the committed round of the privacy row read */
    double dp_epsilon, dp_delta, dp_noise, dp_rate;  /* from server.db's privacy row of the
                                                        last committed round <= round */
    double dp_clip;              /* the run setting dp-clip; NAN when the file lacks it */
} report_run;

/* Summary of one series of per-client accuracies. */
typedef struct {
    int clients;
    long examples;
    double weighted;             /* sum(acc * examples) / sum(examples); NAN if no examples */
    double mean, std, min, p10, median;  /* NAN if clients == 0 */
} report_summary;

/* Parameter and compute cost of the run's model (the efficiency view). */
typedef struct {
    long total;                  /* every parameter */
    long backbone, se, head;     /* per group; fc is in both backbone and head */
    long private_params;         /* kept on each client, never sent */
    double private_fraction;     /* private_params / total */
    long macs, macs_no_se;       /* multiply-accumulates per sample, with / without SE gates */
} report_cost;

/* Everything sefl-eval prints. `base` and `cost` are optional. */
typedef struct {
    report_run run;
    int has_base;
    report_run base;
    double *base_acc;            /* (run.n) baseline accuracy per client of run, NAN if absent */
    report_summary s;            /* of run.c */
    report_summary bs;           /* of the baseline over the clients present in both */
    int better, worse, equal;    /* clients of run against the baseline */
    int missing;                 /* clients of run absent from the baseline */
    int show_best;               /* print the best round and the curve */
    int best;                    /* index into run.curve of the best weighted accuracy */
    int has_cost;
    report_cost cost;
} report;

/* Clients left out of every figure of a report (sefl-eval --exclude-clients,
 * --attackers): typically the attackers of a sefl-sim --attack run, so that
 * accuracy is measured over the honest clients only, as Byzantine-robustness
 * papers measure it. list is comma-separated items, each a client name
 * (client-0007), a client id (7, meaning client-0007 as sefl-sim and
 * sefl-certs name them) or a range of ids (0-3, both ends included), at most
 * REPORT_MAX_CLIENTS names in all, ids below REPORT_MAX_EXCLUDE_ID. Writes
 * *out: the names, each followed by a newline and the whole preceded by one
 * (the form report_load_run matches against), malloc'd, the caller frees it.
 * Returns 0, or -EINVAL / -ERANGE with one line in err (*out NULL), -ENOMEM. */
#define REPORT_MAX_EXCLUDE_ID 1000000
int report_exclude_parse(const char *list, char **out, char *err);

/* Opens db read-only and fills run: meta, the per-round curve, and the
 * reports of `round` (-1: the last evaluated round), leaving out the
 * clients of exclude (report_exclude_parse's form; NULL: none) from the
 * curve and the round alike. The file must be a sefl
 * db of kind server or local (store_open). Returns 0, or negative with one
 * line in err: store_open's errors for a missing (-ENOENT) or foreign or
 * damaged (-EBADMSG) file, -EINVAL for a db without eval_reports or without
 * any report in range, -ERANGE for a round with no reports, a meta value or
 * a count over a limit (a report out of range is skipped and counted in
 * run->skipped instead),
 * -EIO for a SQLite failure, -ENOMEM. run is released with report_run_free
 * whatever the result. */
int report_load_run(const char *db, int round, const char *exclude, report_run *run, char *err);
void report_run_free(report_run *run);   /* accepts a zeroed or freed run */

/* Summarizes n accuracies acc (n) with weights examples (n); examples may be
 * NULL only when n is 0. Fills s; never fails (without memory for a sorted
 * copy, p10 and median are NAN and the rest exact). */
void report_summarize(const double *acc, const long *examples, int n, report_summary *s);

/* The q-quantile (0..1) of the n ascending values x (n) with linear
 * interpolation; NAN when n is 0. */
double report_quantile(const double *x, int n, double q);

/* Fills r's derived fields (summaries, baseline join, counts, best round)
 * from r->run and, when r->has_base, r->base. Returns 0 or -ENOMEM. */
int report_compute(report *r);
void report_free(report *r);             /* accepts a zeroed report; frees runs too */

/* Writers. Text is `name value` lines and a per-client table; CSV has the
 * columns kind,name,n,value,baseline,difference with one row per client
 * (kind client, n = examples), per statistic (kind summary, n = clients, or
 * examples for weighted_accuracy), per count (kind count, n = the count), per
 * evaluated round when show_best (kind round, n = round), the best round (kind
 * best) and the cost (kind cost, integers in n, the fraction in value).
 * JSON carries the same numbers. The SVG is a static chart of per-client
 * accuracy, clients sorted by personalized accuracy, with the baseline for
 * the same clients. Return 0, or -EIO when a write fails (report_write_svg
 * also -ENOMEM). */
int report_print(FILE *f, const report *r);
int report_write_csv(FILE *f, const report *r);
int report_write_json(FILE *f, const report *r);
int report_write_svg(FILE *f, const report *r);

/* A line chart of named series of (x, y) points with y an accuracy in
 * [0, 1] (sefl-eval --plot: the r sweep's private parameters against
 * accuracy). */
#define REPORT_XY_MAX_SERIES 8
#define REPORT_XY_MAX_POINTS 10000       /* per series */
#define REPORT_XY_NAME_MAX 32            /* a series name or point label, with its NUL */

typedef struct {
    double x, y;
    char label[REPORT_XY_NAME_MAX];      /* drawn beside the point; may be empty */
} report_point_xy;

typedef struct {
    char name[REPORT_XY_NAME_MAX];
    int n;
    report_point_xy *p;                  /* (n) in file order */
} report_series;

typedef struct {
    const char *title, *xlabel, *ylabel; /* the caller's strings, may be NULL */
    int logx;                            /* x on a log scale (every x > 0) */
    int nseries;
    report_series s[REPORT_XY_MAX_SERIES];
} report_xy;

/* Reads points from f, one per line "SERIES X Y [LABEL]" (whitespace
 * separated; blank lines and lines starting with # skipped) into c's series,
 * in order of first appearance. X must be finite (> 0 when c->logx), Y in
 * [0, 1], names and labels at most REPORT_XY_NAME_MAX - 1 bytes, within the
 * limits above. Returns 0, or -EINVAL / -ERANGE with "PATH:LINE: why" in err
 * (path names f in messages), -ENOMEM. Free c with report_xy_free either way. */
int report_xy_read(FILE *f, const char *path, report_xy *c, char *err);
void report_xy_free(report_xy *c);      /* accepts a zeroed or freed one */

/* Draws c as a static SVG: one coloured line with markers per series, points
 * joined in ascending x, labels beside their points. Returns 0, -EINVAL
 * without any point, -ENOMEM or -EIO. */
int report_write_xy_svg(FILE *f, const report_xy *c);

#endif
