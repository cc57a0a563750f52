/* metrics: a small registry of Prometheus metric families (counters, gauges,
 * histograms) and their rendering in the Prometheus text exposition format
 * (version 0.0.4): "# HELP", "# TYPE", then one sample per line.
 *
 * A family has either one series, or one label whose values are fixed when
 * the family is made (e.g. reason="timeout", reason="certificate"): every
 * series exists from the start at 0, as the Prometheus instrumentation
 * guide asks, and the number of series can never grow with what peers send.
 * Series are addressed by the index of their label value.
 *
 * Names are checked when a family is made (metric names
 * [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* not starting
 * with "__", counters ending in _total, no name twice); help texts and
 * label values may hold anything and are escaped when rendered.
 *
 * Threads: none inside. The owner updates and renders from one thread
 * (sefl-server: the loop thread) and publishes the rendered text.
 * Ownership: the registry copies names and help texts; label value arrays
 * are referenced, not copied, and must outlive the registry (string
 * literals in practice).
 */
#ifndef SEFL_METRICS_H
#define SEFL_METRICS_H

#include <stdint.h>

#include "common/strbuf.h"

#define METRICS_MAX_FAMILIES 48
#define METRICS_MAX_SERIES 16     /* label values of one family */
#define METRICS_MAX_BUCKETS 24    /* finite upper bounds of one histogram */
#define METRICS_NAME_MAX 96
#define METRICS_HELP_MAX 256

enum { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

typedef struct metrics metrics;
typedef struct metric metric;

/* Returns a new empty registry, or NULL when out of memory. */
metrics *metrics_new(void);
void metrics_free(metrics *m);   /* accepts NULL */

/* Adds a counter or gauge family. label NULL (and n 0): one series, index 0;
 * otherwise n (1..METRICS_MAX_SERIES) series labelled label=values[i].
 * Returns 0 with *out (owned by m), or -EINVAL (a bad or duplicate name, a
 * counter not ending in _total, a bad n), -ENOSPC (METRICS_MAX_FAMILIES
 * reached), with err. */
int metrics_add(metrics *m, int type, const char *name, const char *help, const char *label,
                const char *const *values, int n, metric **out, char *err);

/* Adds a histogram with n (1..METRICS_MAX_BUCKETS) strictly increasing
 * finite upper bounds; the +Inf bucket is implied. Rendered as
 * NAME_bucket{le="..."} (cumulative), NAME_sum and NAME_count. Returns as
 * metrics_add. */
int metrics_add_histogram(metrics *m, const char *name, const char *help, const double *bounds,
                          int n, metric **out, char *err);

/* Adds v to series i of a counter or gauge (a counter ignores v < 0, which
 * would break its monotonicity). An i out of range is ignored. */
void metric_add(metric *f, int i, double v);
/* Sets series i of a gauge, or of a counter whose source counts on its own
 * (e.g. bytes counted by the transport). */
void metric_set(metric *f, int i, double v);
/* Counts one observation in a histogram (NaN is ignored). */
void metric_observe(metric *f, double v);
/* The value of series i (0 for a bad i); for a histogram, its count. */
double metric_value(const metric *f, int i);

/* Appends every family, in the order they were added, to out. Returns 0 or
 * -ENOMEM. */
int metrics_render(const metrics *m, strbuf *out);

/* Appends v as Prometheus writes a float: integers without a fraction,
 * otherwise the shortest of %.15g/%.17g that reads back exactly, and
 * NaN, +Inf, -Inf. */
int metrics_format_value(strbuf *out, double v);

#endif
