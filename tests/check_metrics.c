/* check_metrics: the metric registry's text rendering (HELP/TYPE lines,
 * labelled series, escaping, float formatting), histogram buckets, the
 * names it refuses, and the process figures from /proc. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "server/metrics.h"
#include "server/procstat.h"
#include "tests/check_main.h"

static const char *const reasons[] = { "stale", "not_selected" };

START_TEST(test_counter_gauge_render)
{
    metrics *m = metrics_new();
    ck_assert_ptr_nonnull(m);
    metric *c, *g, *r;
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(metrics_add(m, METRIC_COUNTER, "x_rounds_total", "Rounds committed.", NULL,
                                 NULL, 0, &c, err), 0);
    ck_assert_int_eq(metrics_add(m, METRIC_GAUGE, "x_round", "Current round.", NULL, NULL, 0, &g,
                                 err), 0);
    ck_assert_int_eq(metrics_add(m, METRIC_COUNTER, "x_rejected_total", "Rejected updates.",
                                 "reason", reasons, 2, &r, err), 0);
    metric_add(c, 0, 3);
    metric_add(c, 0, -1);            /* a counter never goes down */
    metric_set(g, 0, 2.5);
    metric_add(r, 1, 1);
    metric_add(r, 7, 1);             /* out of range: ignored */
    strbuf b = STRBUF_INIT;
    ck_assert_int_eq(metrics_render(m, &b), 0);
    ck_assert_str_eq(b.p, "# HELP x_rounds_total Rounds committed.\n"
                          "# TYPE x_rounds_total counter\n"
                          "x_rounds_total 3\n"
                          "# HELP x_round Current round.\n"
                          "# TYPE x_round gauge\n"
                          "x_round 2.5\n"
                          "# HELP x_rejected_total Rejected updates.\n"
                          "# TYPE x_rejected_total counter\n"
                          "x_rejected_total{reason=\"stale\"} 0\n"
                          "x_rejected_total{reason=\"not_selected\"} 1\n");
    ck_assert_double_eq(metric_value(c, 0), 3);
    ck_assert_double_eq(metric_value(r, 1), 1);
    ck_assert_double_eq(metric_value(r, 9), 0);
    strbuf_free(&b);
    metrics_free(m);
    metrics_free(NULL);
}
END_TEST

/* HELP escapes \ and newline; label values also the double quote. */
START_TEST(test_escaping)
{
    static const char *const odd[] = { "a\"b\\c\nd" };
    metrics *m = metrics_new();
    metric *f;
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(metrics_add(m, METRIC_GAUGE, "x_odd", "Line one\nback\\slash \"q\"", "v",
                                 odd, 1, &f, err), 0);
    strbuf b = STRBUF_INIT;
    ck_assert_int_eq(metrics_render(m, &b), 0);
    ck_assert_str_eq(b.p, "# HELP x_odd Line one\\nback\\\\slash \"q\"\n"
                          "# TYPE x_odd gauge\n"
                          "x_odd{v=\"a\\\"b\\\\c\\nd\"} 0\n");
    strbuf_free(&b);
    metrics_free(m);
}
END_TEST

START_TEST(test_value_format)
{
    const struct { double v; const char *s; } cases[] = {
        { 0, "0" }, { -3, "-3" }, { 1e15, "1000000000000000" }, { 0.1, "0.1" },
        { 1.0 / 3, "0.33333333333333331" }, { 2.5e-7, "2.5e-07" }, { 1e300, "1e+300" },
        { NAN, "NaN" }, { INFINITY, "+Inf" }, { -INFINITY, "-Inf" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        strbuf b = STRBUF_INIT;
        ck_assert_int_eq(metrics_format_value(&b, cases[i].v), 0);
        ck_assert_str_eq(b.p, cases[i].s);
        strbuf_free(&b);
    }
}
END_TEST

/* Buckets are cumulative, an observation on a bound falls in that bound's
 * bucket (le: less or equal), the +Inf bucket equals the count. */
START_TEST(test_histogram)
{
    metrics *m = metrics_new();
    metric *h;
    char err[SEFL_ERRLEN];
    const double bounds[] = { 0.5, 1, 10 };
    ck_assert_int_eq(metrics_add_histogram(m, "x_seconds", "Durations.", bounds, 3, &h, err), 0);
    const double obs[] = { 0.1, 0.5, 0.75, 3, 3, 100, NAN };
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++) metric_observe(h, obs[i]);
    strbuf b = STRBUF_INIT;
    ck_assert_int_eq(metrics_render(m, &b), 0);
    ck_assert_str_eq(b.p, "# HELP x_seconds Durations.\n"
                          "# TYPE x_seconds histogram\n"
                          "x_seconds_bucket{le=\"0.5\"} 2\n"
                          "x_seconds_bucket{le=\"1\"} 3\n"
                          "x_seconds_bucket{le=\"10\"} 5\n"
                          "x_seconds_bucket{le=\"+Inf\"} 6\n"
                          "x_seconds_sum 107.35\n"
                          "x_seconds_count 6\n");
    ck_assert_double_eq(metric_value(h, 0), 6);
    strbuf_free(&b);
    metrics_free(m);
}
END_TEST

START_TEST(test_refused_names)
{
    metrics *m = metrics_new();
    metric *f;
    char err[SEFL_ERRLEN];
    static const char *const one[] = { "a" };
    const double up[] = { 1, 2 }, down[] = { 2, 1 }, inf[] = { 1, INFINITY };
    ck_assert_int_eq(metrics_add(m, METRIC_COUNTER, "x_rounds", "", NULL, NULL, 0, &f, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "_total"));
    ck_assert_int_eq(metrics_add(m, METRIC_GAUGE, "9x", "", NULL, NULL, 0, &f, err), -EINVAL);
    ck_assert_int_eq(metrics_add(m, METRIC_GAUGE, "x-y", "", NULL, NULL, 0, &f, err), -EINVAL);
    ck_assert_int_eq(metrics_add(m, METRIC_GAUGE, "x", "", "__r", one, 1, &f, err), -EINVAL);
    ck_assert_int_eq(metrics_add(m, METRIC_GAUGE, "x", "", "a:b", one, 1, &f, err), -EINVAL);
    ck_assert_int_eq(metrics_add(m, METRIC_GAUGE, "x", "", "r", one, 0, &f, err), -EINVAL);
    ck_assert_int_eq(metrics_add(m, METRIC_HISTOGRAM, "x", "", NULL, NULL, 0, &f, err), -EINVAL);
    ck_assert_int_eq(metrics_add_histogram(m, "h", "", down, 2, &f, err), -EINVAL);
    ck_assert_int_eq(metrics_add_histogram(m, "h", "", inf, 2, &f, err), -EINVAL);
    ck_assert_int_eq(metrics_add_histogram(m, "h", "", up, 0, &f, err), -EINVAL);
    ck_assert_int_eq(metrics_add(m, METRIC_GAUGE, "ns:x", "", NULL, NULL, 0, &f, err), 0);
    ck_assert_int_eq(metrics_add_histogram(m, "ns:x", "", up, 2, &f, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "twice"));
    strbuf b = STRBUF_INIT;
    ck_assert_int_eq(metrics_render(m, &b), 0);
    ck_assert_str_eq(b.p, "# HELP ns:x \n# TYPE ns:x gauge\nns:x 0\n");
    strbuf_free(&b);
    metrics_free(m);
}
END_TEST

START_TEST(test_family_limit)
{
    metrics *m = metrics_new();
    metric *f;
    char err[SEFL_ERRLEN], name[32];
    for (int i = 0; i < METRICS_MAX_FAMILIES; i++) {
        snprintf(name, sizeof name, "g%d", i);
        ck_assert_int_eq(metrics_add(m, METRIC_GAUGE, name, "", NULL, NULL, 0, &f, err), 0);
    }
    ck_assert_int_eq(metrics_add(m, METRIC_GAUGE, "one_more", "", NULL, NULL, 0, &f, err), -ENOSPC);
    metrics_free(m);
}
END_TEST

START_TEST(test_json_string)
{
    strbuf b = STRBUF_INIT;
    ck_assert_int_eq(strbuf_json_string(&b, "a\"b\\c\n\x01é"), 0);
    ck_assert_str_eq(b.p, "\"a\\\"b\\\\c\\u000a\\u0001é\"");
    strbuf_reset(&b);
    ck_assert_int_eq(strbuf_printf(&b, "%d", 42), 0);
    ck_assert_str_eq(b.p, "42");
    strbuf_free(&b);
    strbuf_free(NULL);
}
END_TEST

/* The figures agree with what the test can see of itself: a descriptor it
 * opens is one more, the start time is in the past and recent, the
 * resident size is plausible. */
START_TEST(test_procstat)
{
    procstat a, b;
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(procstat_read(&a, err), 0);
    int fd = dup(2);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(procstat_read(&b, err), 0);
    close(fd);
    ck_assert_double_eq(b.open_fds, a.open_fds + 1);
    ck_assert_double_ge(a.open_fds, 3);
    double now = (double)time(NULL);
    ck_assert_double_le(a.start_time, now + 1);
    ck_assert_double_ge(a.start_time, now - 3600);
    ck_assert_double_gt(a.resident_bytes, 1 << 20);
    ck_assert_double_ge(a.virtual_bytes, a.resident_bytes);
    ck_assert_double_ge(a.cpu_seconds, 0);
    ck_assert(a.max_fds == -1 || a.max_fds >= a.open_fds);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_counter_gauge_render);
    tcase_add_test(tc, test_escaping);
    tcase_add_test(tc, test_value_format);
    tcase_add_test(tc, test_histogram);
    tcase_add_test(tc, test_refused_names);
    tcase_add_test(tc, test_family_limit);
    tcase_add_test(tc, test_json_string);
    tcase_add_test(tc, test_procstat);
    suite_add_tcase(s, tc);
    return check_run(s);
}
