/* check_report: the statistics of per-client accuracy (weighted accuracy,
 * mean, std, min, p10, median, better/worse/equal) on hand-made figures, the
 * CSV / JSON / SVG writers, and report_load_run on small server.db files made
 * in a temporary directory, including every limit it enforces. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/log.h"
#include "client/report.h"
#include "tests/check_main.h"

#define TOL 1e-9

static char dir[64];
static char path[128];

static const char *schema_sql =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value);"
    "CREATE TABLE eval_reports(round INTEGER NOT NULL, client TEXT NOT NULL,"
    " examples INTEGER NOT NULL, accuracy REAL NOT NULL, loss REAL NOT NULL, received_at TEXT,"
    " PRIMARY KEY(round, client));"
    "INSERT INTO meta VALUES('schema_version', 1), ('kind', 'server'), ('arch', 'cnn-se'),"
    " ('r', 8), ('fc1_gate', 1), ('private_groups', 'se'), ('partition', 'pat:2');";

static void setup(void)
{
    check_mkdtemp(dir, sizeof dir, "/tmp/check_report.XXXXXX");
    snprintf(path, sizeof path, "%s/server.db", dir);
}

/* A path in the test's directory (a static buffer: one at a time). */
static const char *dir_path(const char *name)
{
    static char p[160];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static void teardown(void)
{
    ck_assert_int_eq(check_rm_rf(dir), 0);
}

/* Creates path with the schema, then runs sql on it. */
static void make_db(const char *p, const char *sql)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(p, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, schema_sql, NULL, NULL, NULL), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "sql failed: %s", msg ? msg : "?");
    sqlite3_close(db);
}

/* Fills a run in memory (no db) with n clients named client-%04d. */
static void fill_run(report_run *run, int n, const double *acc, const long *ex)
{
    memset(run, 0, sizeof *run);
    run->c = calloc((size_t)n, sizeof *run->c);
    ck_assert_ptr_nonnull(run->c);
    run->n = n;
    for (int i = 0; i < n; i++) {
        snprintf(run->c[i].name, sizeof run->c[i].name, "client-%04d", i);
        run->c[i].examples = ex[i];
        run->c[i].accuracy = acc[i];
    }
    run->curve = calloc(1, sizeof *run->curve);
    ck_assert_ptr_nonnull(run->curve);
    run->ncurve = 1;
    run->round = 7;
    run->curve[0] = (report_point){ 7, n, 0, 0.5 };
}

/* Captures what a writer prints into a malloc'd string. */
static char *capture(int (*w)(FILE *, const report *), const report *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(w(f, r), 0);
    fclose(f);
    return buf;
}

START_TEST(test_summary_hand_made)
{
    /* weighted = (0.5*100 + 1*50 + 0.75*50 + 0.25*200) / 400 = 187.5 / 400;
     * mean 0.625; deviations +-0.125, +-0.375: variance 0.078125;
     * sorted 0.25 0.5 0.75 1: p10 at position 0.3, median at 1.5. */
    const double acc[] = { 0.5, 1.0, 0.75, 0.25 };
    const long ex[] = { 100, 50, 50, 200 };
    report_summary s;
    report_summarize(acc, ex, 4, &s);
    ck_assert_int_eq(s.clients, 4);
    ck_assert_int_eq(s.examples, 400);
    ck_assert_double_eq_tol(s.weighted, 0.46875, TOL);
    ck_assert_double_eq_tol(s.mean, 0.625, TOL);
    ck_assert_double_eq_tol(s.std, sqrt(0.078125), TOL);
    ck_assert_double_eq_tol(s.min, 0.25, TOL);
    ck_assert_double_eq_tol(s.p10, 0.325, TOL);
    ck_assert_double_eq_tol(s.median, 0.625, TOL);
}
END_TEST

START_TEST(test_summary_odd_and_edges)
{
    const double acc[] = { 0.9, 0.1, 0.5 };
    const long ex[] = { 10, 10, 10 };
    report_summary s;
    report_summarize(acc, ex, 3, &s);
    ck_assert_double_eq_tol(s.median, 0.5, TOL);          /* the middle value */
    ck_assert_double_eq_tol(s.p10, 0.1 + 0.2 * 0.4, TOL); /* position 0.2 */
    ck_assert_double_eq_tol(s.weighted, 0.5, TOL);

    /* No clients: every figure is NAN, nothing is read. */
    report_summarize(NULL, NULL, 0, &s);
    ck_assert_int_eq(s.clients, 0);
    ck_assert(isnan(s.weighted) && isnan(s.mean) && isnan(s.std) && isnan(s.min));
    ck_assert(isnan(s.p10) && isnan(s.median));

    /* Clients without test examples: no weighted accuracy, but a mean. */
    const long zero[] = { 0, 0 };
    report_summarize(acc, zero, 2, &s);
    ck_assert(isnan(s.weighted));
    ck_assert_double_eq_tol(s.mean, 0.5, TOL);

    /* One client: all the same figure, std 0. */
    report_summarize(acc, ex, 1, &s);
    ck_assert_double_eq_tol(s.p10, 0.9, TOL);
    ck_assert_double_eq_tol(s.median, 0.9, TOL);
    ck_assert_double_eq_tol(s.std, 0.0, TOL);
}
END_TEST

START_TEST(test_quantile)
{
    const double x[] = { 1, 2, 3, 4, 5 };
    ck_assert_double_eq_tol(report_quantile(x, 5, 0.0), 1, TOL);
    ck_assert_double_eq_tol(report_quantile(x, 5, 1.0), 5, TOL);
    ck_assert_double_eq_tol(report_quantile(x, 5, 0.1), 1.4, TOL);
    ck_assert_double_eq_tol(report_quantile(x, 5, 0.5), 3, TOL);
    ck_assert(isnan(report_quantile(x, 0, 0.5)));
}
END_TEST

/* Run: clients 0..4; baseline: clients 0..3 (client 4 missing) and an
 * extra client 9 the run does not have. */
static void make_pair(report *r)
{
    static const double acc[] = { 0.9, 0.5, 0.7, 0.6, 0.8 };
    static const long ex[] = { 10, 20, 30, 40, 50 };
    static const double bacc[] = { 0.8, 0.6, 0.7, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0 };
    static const long bex[] = { 10, 20, 30, 40, 1, 1, 1, 1, 1, 1 };
    memset(r, 0, sizeof *r);
    fill_run(&r->run, 5, acc, ex);
    fill_run(&r->base, 10, bacc, bex);
    /* Keep clients 0..3 and 9 of the baseline, sorted by name. */
    r->base.c[4] = r->base.c[9];
    r->base.n = 5;
    r->has_base = 1;
    ck_assert_int_eq(report_compute(r), 0);
}

START_TEST(test_baseline_counts)
{
    report r;
    make_pair(&r);
    ck_assert_int_eq(r.better, 2);   /* client 0 (+0.1), client 3 (+0.4) */
    ck_assert_int_eq(r.worse, 1);    /* client 1 (-0.1) */
    ck_assert_int_eq(r.equal, 1);    /* client 2 */
    ck_assert_int_eq(r.missing, 1);  /* client 4 */
    ck_assert(isnan(r.base_acc[4]));
    ck_assert_double_eq_tol(r.base_acc[3], 0.2, TOL);
    /* The baseline's summary covers the four shared clients only. */
    ck_assert_int_eq(r.bs.clients, 4);
    ck_assert_int_eq(r.bs.examples, 100);
    ck_assert_double_eq_tol(r.bs.weighted, (0.8 * 10 + 0.6 * 20 + 0.7 * 30 + 0.2 * 40) / 100, TOL);
    ck_assert_double_eq_tol(r.bs.min, 0.2, TOL);
    ck_assert_int_eq(r.s.clients, 5);
    ck_assert_double_eq_tol(r.s.weighted, (9 + 10 + 21 + 24 + 40) / 150.0, TOL);
    report_free(&r);
}
END_TEST

START_TEST(test_best_round)
{
    report r;
    const double acc[] = { 0.5 };
    const long ex[] = { 10 };
    memset(&r, 0, sizeof r);
    fill_run(&r.run, 1, acc, ex);
    free(r.run.curve);
    r.run.curve = calloc(4, sizeof *r.run.curve);
    ck_assert_ptr_nonnull(r.run.curve);
    r.run.ncurve = 4;
    /* A first round without examples (NAN) must not hide the later best;
     * a tie keeps the earlier round. */
    r.run.curve[0] = (report_point){ 1, 1, 0, NAN };
    r.run.curve[1] = (report_point){ 2, 1, 10, 0.7 };
    r.run.curve[2] = (report_point){ 3, 1, 10, 0.8 };
    r.run.curve[3] = (report_point){ 4, 1, 10, 0.8 };
    ck_assert_int_eq(report_compute(&r), 0);
    ck_assert_int_eq(r.run.curve[r.best].round, 3);
    report_free(&r);
}
END_TEST

START_TEST(test_csv)
{
    report r;
    make_pair(&r);
    r.show_best = 1;
    r.has_cost = 1;
    r.cost = (report_cost){ 1000, 900, 100, 50, 100, 0.1, 5000, 4000 };
    char *s = capture(report_write_csv, &r);
    const char *head = "kind,name,n,value,baseline,difference\n"
                       "client,client-0000,10,0.900000,0.800000,0.100000\n";
    ck_assert_msg(!strncmp(s, head, strlen(head)), "csv starts: %.120s", s);
    ck_assert_ptr_nonnull(strstr(s, "client,client-0004,50,0.800000,,\n"));
    ck_assert_ptr_nonnull(strstr(s, "summary,weighted_accuracy,150,0.693333,0.490000,0.203333\n"));
    ck_assert_ptr_nonnull(strstr(s, "summary,min_accuracy,5,0.500000,0.200000,0.300000\n"));
    ck_assert_ptr_nonnull(strstr(s, "count,better,2,,,\n"));
    ck_assert_ptr_nonnull(strstr(s, "count,worse,1,,,\n"));
    ck_assert_ptr_nonnull(strstr(s, "count,equal,1,,,\n"));
    ck_assert_ptr_nonnull(strstr(s, "count,missing_in_baseline,1,,,\n"));
    ck_assert_ptr_nonnull(strstr(s, "best,weighted_accuracy,7,0.500000,,\n"));
    ck_assert_ptr_nonnull(strstr(s, "cost,params_private,100,,,\n"));
    ck_assert_ptr_nonnull(strstr(s, "cost,private_fraction,0,0.100000,,\n"));
    free(s);

    /* A name holding the separator is quoted, quotes doubled. */
    strcpy(r.run.c[0].name, "a,\"b\"");
    r.has_base = 0;
    s = capture(report_write_csv, &r);
    ck_assert_ptr_nonnull(strstr(s, "client,\"a,\"\"b\"\"\",10,0.900000,,\n"));
    free(s);
    report_free(&r);
}
END_TEST

START_TEST(test_json)
{
    report r;
    make_pair(&r);
    strcpy(r.run.c[1].name, "x\"\\\n");
    char *s = capture(report_write_json, &r);
    ck_assert_ptr_nonnull(strstr(s, "{\"name\": \"client-0000\", \"examples\": 10, \"accuracy\": 0.900000,"
                                    " \"baseline_accuracy\": 0.800000,"
                                    " \"difference\": 0.100000}"));
    /* The client missing from the baseline has nulls, never NaN. */
    ck_assert_ptr_nonnull(strstr(s, "\"baseline_accuracy\": null, \"difference\": null}"));
    ck_assert_ptr_null(strstr(s, "nan"));
    ck_assert_ptr_nonnull(strstr(s, "\"name\": \"x\\\"\\\\\\u000a\""));
    ck_assert_ptr_nonnull(strstr(s, "\"summary\": {\"clients\": 5, \"examples\": 150,"
                                    " \"weighted_accuracy\": 0.693333"));
    ck_assert_ptr_nonnull(strstr(s, "\"better\": 2, \"worse\": 1, \"equal\": 1,"
                                    " \"missing_in_baseline\": 1}"));
    /* Balanced braces and brackets: a cheap structural check. */
    int depth = 0, in_str = 0;
    for (const char *p = s; *p; p++) {
        if (in_str) {
            if (*p == '\\') p++;
            else if (*p == '"') in_str = 0;
            continue;
        }
        if (*p == '"') in_str = 1;
        else if (*p == '{' || *p == '[') depth++;
        else if (*p == '}' || *p == ']') ck_assert_int_ge(--depth, 0);
    }
    ck_assert_int_eq(depth, 0);
    free(s);
    report_free(&r);
}
END_TEST

START_TEST(test_svg)
{
    report r;
    make_pair(&r);
    strcpy(r.run.meta.partition, "a<b&c");
    char *s = capture(report_write_svg, &r);
    ck_assert(!strncmp(s, "<?xml", 5));
    ck_assert_ptr_nonnull(strstr(s, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    ck_assert_ptr_nonnull(strstr(s, "a&lt;b&amp;c"));
    ck_assert_ptr_null(strstr(s, "<script"));
    ck_assert_ptr_nonnull(strstr(s, "</svg>\n"));
    /* Five personalized markers, four baseline markers (one client missing). */
    int circles = 0, rects = 0;
    for (const char *p = s; (p = strstr(p, "<circle")); p++) circles++;
    for (const char *p = s; (p = strstr(p, "<rect x=")); p++) rects++;
    ck_assert_int_eq(circles, 5 + 1);   /* + the legend's */
    ck_assert_int_eq(rects, 4 + 1);
    free(s);
    report_free(&r);
}
END_TEST

START_TEST(test_load_run)
{
    make_db(path,
            "INSERT INTO eval_reports VALUES(2, 'client-0001', 30, 0.5, 0.7, NULL),"
            " (2, 'client-0000', 10, 1.0, 0.1, NULL), (5, 'client-0001', 30, 0.9, 0.2, NULL),"
            " (5, 'client-0000', 10, 0.7, 0.3, NULL);");
    report_run run;
    char err[SEFL_ERRLEN] = "";
    ck_assert_int_eq(report_load_run(path, -1, NULL, &run, err), 0);
    ck_assert_int_eq(run.round, 5);
    ck_assert_int_eq(run.n, 2);
    ck_assert_str_eq(run.c[0].name, "client-0000");    /* sorted by name */
    ck_assert_int_eq(run.c[1].examples, 30);
    ck_assert_double_eq_tol(run.c[1].accuracy, 0.9, TOL);
    ck_assert_int_eq(run.ncurve, 2);
    ck_assert_int_eq(run.curve[0].round, 2);
    ck_assert_double_eq_tol(run.curve[0].weighted_accuracy, (10 + 15) / 40.0, TOL);
    ck_assert_str_eq(run.meta.arch, "cnn-se");
    ck_assert_str_eq(run.meta.partition, "pat:2");
    ck_assert_int_eq(run.meta.r, 8);
    ck_assert_int_eq(run.meta.fc1_gate, 1);
    report_run_free(&run);

    ck_assert_int_eq(report_load_run(path, 2, NULL, &run, err), 0);
    ck_assert_double_eq_tol(run.c[0].accuracy, 1.0, TOL);
    report_run_free(&run);

    ck_assert_int_eq(report_load_run(path, 3, NULL, &run, err), -ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "no eval reports for round 3"));
    report_run_free(&run);
}
END_TEST

START_TEST(test_load_refusals)
{
    report_run run;
    char err[SEFL_ERRLEN] = "";
    ck_assert_int_eq(report_load_run(path, -1, NULL, &run, err), -ENOENT);
    report_run_free(&run);

    make_db(path, "DROP TABLE eval_reports;");
    ck_assert_int_eq(report_load_run(path, -1, NULL, &run, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "no eval_reports table"));
    report_run_free(&run);
    unlink(path);

    make_db(path, "");
    ck_assert_int_eq(report_load_run(path, -1, NULL, &run, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "no eval reports yet"));
    report_run_free(&run);
    unlink(path);

    /* A client's private file is not a server.db. */
    make_db(path, "UPDATE meta SET value = 'client' WHERE key = 'kind';");
    ck_assert_int_eq(report_load_run(path, -1, NULL, &run, err), -EBADMSG);
    report_run_free(&run);
}
END_TEST

/* A bad report row is skipped and counted, beside a good one that loads;
 * a bad meta value still refuses the file. */
START_TEST(test_load_limits)
{
    static const char *bad_rows[] = {
        "INSERT INTO eval_reports VALUES(1, 'c', 10, 1.5, 0.1, NULL)",
        "INSERT INTO eval_reports VALUES(1, 'c', 10, -0.1, 0.1, NULL)",
        "INSERT INTO eval_reports VALUES(1, 'c', -1, 0.5, 0.1, NULL)",
        "INSERT INTO eval_reports VALUES(1, 'c', 100000001, 0.5, 0.1, NULL)",
        "INSERT INTO eval_reports VALUES(1, 'c', 4294967295, 1.0, 0.0, NULL)",
        "INSERT INTO eval_reports VALUES(1, 'c', 'ten', 0.5, 0.1, NULL)",
        "INSERT INTO eval_reports VALUES(-1, 'c', 10, 0.5, 0.1, NULL)",
        /* REPORT_NAME_MAX - 1 = 63 bytes is the longest name; 64 is skipped. */
        "INSERT INTO eval_reports VALUES(1, printf('%.64c', 'n'), 10, 0.5, 0.1, NULL)",
        "INSERT INTO eval_reports VALUES(1, '', 10, 0.5, 0.1, NULL)",
    };
    for (size_t i = 0; i < sizeof bad_rows / sizeof bad_rows[0]; i++) {
        char sql[512];
        snprintf(sql, sizeof sql, "%s; INSERT INTO eval_reports VALUES(1, 'good', 20, 0.25, 0.1, NULL)",
                 bad_rows[i]);
        make_db(path, sql);
        report_run run;
        char err[SEFL_ERRLEN] = "";
        ck_assert_msg(report_load_run(path, -1, NULL, &run, err) == 0, "case %zu: %s", i, err);
        ck_assert_int_eq(run.skipped, 1);
        ck_assert_int_eq(run.n, 1);
        ck_assert_str_eq(run.c[0].name, "good");
        ck_assert_double_eq_tol(run.curve[0].weighted_accuracy, 0.25, TOL);
        report_run_free(&run);
        unlink(path);
        /* Alone, it leaves no report in range: an error naming the skipped. */
        make_db(path, bad_rows[i]);
        ck_assert_int_eq(report_load_run(path, -1, NULL, &run, err), -EINVAL);
        ck_assert_msg(strstr(err, "1 skipped") != NULL, "case %zu: %s", i, err);
        report_run_free(&run);
        unlink(path);
    }
    static const char *bad_meta[] = {
        /* REPORT_META_MAX - 1 = 63 bytes per meta text value. */
        "INSERT INTO eval_reports VALUES(1, 'c', 10, 0.5, 0.1, NULL);"
        " UPDATE meta SET value = printf('%.64c', 'p') WHERE key = 'partition'",
        "INSERT INTO eval_reports VALUES(1, 'c', 10, 0.5, 0.1, NULL);"
        " UPDATE meta SET value = 'eight' WHERE key = 'r'",
    };
    for (size_t i = 0; i < sizeof bad_meta / sizeof bad_meta[0]; i++) {
        make_db(path, bad_meta[i]);
        report_run run;
        char err[SEFL_ERRLEN] = "";
        ck_assert_msg(report_load_run(path, -1, NULL, &run, err) == -ERANGE, "case %zu: %s", i, err);
        ck_assert_msg(err[0] != 0, "case %zu has no message", i);
        report_run_free(&run);
        unlink(path);
    }

    /* The longest allowed name and meta value load. */
    make_db(path, "INSERT INTO eval_reports VALUES(1, printf('%.63c', 'n'), 100000000, 0.5, 0.1, NULL);"
                  " UPDATE meta SET value = printf('%.63c', 'p') WHERE key = 'partition'");
    report_run run;
    char err[SEFL_ERRLEN] = "";
    ck_assert_msg(report_load_run(path, -1, NULL, &run, err) == 0, "%s", err);
    ck_assert_int_eq((int)strlen(run.c[0].name), REPORT_NAME_MAX - 1);
    ck_assert_int_eq(run.c[0].examples, REPORT_MAX_EXAMPLES);
    report_run_free(&run);
}
END_TEST

/* REPORT_MAX_CLIENTS reports in one round load; one more is refused. */
START_TEST(test_load_client_limit)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k WHERE x < %d)"
             " INSERT INTO eval_reports SELECT 1, printf('client-%%06d', x), 1, 0.5, 0.1, NULL FROM k;",
             REPORT_MAX_CLIENTS);
    make_db(path, sql);
    report_run run;
    char err[SEFL_ERRLEN] = "";
    ck_assert_msg(report_load_run(path, -1, NULL, &run, err) == 0, "%s", err);
    ck_assert_int_eq(run.n, REPORT_MAX_CLIENTS);
    report_run_free(&run);

    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO eval_reports VALUES(1, 'one-more', 1, 0.5, 0.1, NULL)",
                                  NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(report_load_run(path, -1, NULL, &run, err), -ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "over the limit"));
    report_run_free(&run);
}
END_TEST

/* REPORT_MAX_ROUNDS evaluated rounds load; one more is refused. */
START_TEST(test_load_round_limit)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM k WHERE x < %d)"
             " INSERT INTO eval_reports SELECT x, 'c', 1, 0.5, 0.1, NULL FROM k;",
             REPORT_MAX_ROUNDS);
    make_db(path, sql);
    report_run run;
    char err[SEFL_ERRLEN] = "";
    ck_assert_msg(report_load_run(path, -1, NULL, &run, err) == 0, "%s", err);
    ck_assert_int_eq(run.ncurve, REPORT_MAX_ROUNDS);
    report_run_free(&run);

    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO eval_reports VALUES(0, 'c', 1, 0.5, 0.1, NULL)",
                                  NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(report_load_run(path, -1, NULL, &run, err), -ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "evaluated rounds, over the limit"));
    report_run_free(&run);
}
END_TEST

/* Reads text into c through a memory stream; returns report_xy_read's result. */
static int xy_read(const char *text, int logx, report_xy *c, char *err)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    ck_assert_ptr_nonnull(f);
    c->logx = logx;
    int rc = report_xy_read(f, "pts", c, err);
    fclose(f);
    return rc;
}

/* Counts the occurrences of needle in hay. */
static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

START_TEST(test_xy_read)
{
    report_xy c = { 0 };
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(xy_read("# r sweep\n\nse 270000 0.8 r=2\nhead 5130 0.81\n  se 17000\t0.79 r=32\n",
                             1, &c, err), 0);
    ck_assert_int_eq(c.nseries, 2);
    ck_assert_str_eq(c.s[0].name, "se");
    ck_assert_int_eq(c.s[0].n, 2);
    ck_assert_double_eq(c.s[0].p[1].x, 17000);
    ck_assert_double_eq(c.s[0].p[1].y, 0.79);
    ck_assert_str_eq(c.s[0].p[1].label, "r=32");
    ck_assert_str_eq(c.s[1].p[0].label, "");
    report_xy_free(&c);
    report_xy_free(&c);

    struct { const char *text; int logx, rc; const char *msg; } bad[] = {
        { "se 1 0.5\nse 2\n", 0, -EINVAL, "pts:2: want" },
        { "se 1 0.5 a b\n", 0, -EINVAL, "pts:1: want" },
        { "se x 0.5\n", 0, -EINVAL, "pts:1" },
        { "se 1 nan\n", 0, -EINVAL, "pts:1" },
        { "se 1 1.5\n", 0, -ERANGE, "[0, 1]" },
        { "se 0 0.5\n", 1, -ERANGE, "log scale" },
        { "se -3 0.5\n", 0, 0, NULL },
        { "a 1 0\nb 1 0\nc 1 0\nd 1 0\ne 1 0\nf 1 0\ng 1 0\nh 1 0\ni 1 0\n", 0, -ERANGE, "pts:9: over 8 series" },
        { "abcdefghijabcdefghijabcdefghijabc 1 0.5\n", 0, -ERANGE, "over 31 bytes" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        report_xy d = { 0 };
        err[0] = 0;
        ck_assert_int_eq(xy_read(bad[i].text, bad[i].logx, &d, err), bad[i].rc);
        if (bad[i].msg) ck_assert_msg(strstr(err, bad[i].msg), "case %zu: %s", i, err);
        report_xy_free(&d);
    }
    /* A line over the buffer is refused, not split into two points. */
    char longline[600];
    memset(longline, ' ', sizeof longline);
    memcpy(longline, "se 1 0.5", 8);
    longline[sizeof longline - 2] = '\n';
    longline[sizeof longline - 1] = 0;
    ck_assert_int_eq(xy_read(longline, 0, &c, err), -ERANGE);
    report_xy_free(&c);
}
END_TEST

START_TEST(test_xy_svg)
{
    report_xy c = { 0 };
    char err[SEFL_ERRLEN], *buf = NULL;
    size_t len = 0;
    ck_assert_int_eq(xy_read("se 270000 0.8 r=2\nse 17000 0.7 r<32\nse 67500 0.9\nhead 5130 0.85\n",
                             1, &c, err), 0);
    c.title = "r & accuracy";
    c.xlabel = "private parameters";
    FILE *f = open_memstream(&buf, &len);
    ck_assert_int_eq(report_write_xy_svg(f, &c), 0);
    fclose(f);
    ck_assert_int_eq(count_of(buf, "<polyline"), 2);
    ck_assert_int_eq(count_of(buf, "<circle"), 4 + 2);          /* points + legend markers */
    ck_assert_ptr_nonnull(strstr(buf, "r &amp; accuracy"));
    ck_assert_ptr_nonnull(strstr(buf, "r&lt;32"));
    ck_assert_ptr_nonnull(strstr(buf, ">5130</text>"));         /* a tick at each distinct x */
    ck_assert_ptr_nonnull(strstr(buf, "</svg>"));
    ck_assert_ptr_null(strstr(buf, "<script"));
    /* The se line joins its points by ascending x: 17000, 67500, 270000,
     * so its x pixel coordinates rise along the polyline. */
    const char *pl = strstr(buf, "points=\"");
    double x1, y1, x2, y2, x3, y3;
    ck_assert_int_eq(sscanf(pl, "points=\"%lf,%lf %lf,%lf %lf,%lf", &x1, &y1, &x2, &y2, &x3, &y3), 6);
    ck_assert(x1 < x2 && x2 < x3);
    ck_assert(y2 < y1);                                          /* 0.9 above 0.7 */
    free(buf);
    report_xy_free(&c);
    report_xy none = { 0 };
    f = open_memstream(&buf, &len);
    ck_assert_int_eq(report_write_xy_svg(f, &none), -EINVAL);
    fclose(f);
    free(buf);
}
END_TEST

/* --exclude-clients: names, ids and ranges into the newline-delimited
 * list; every malformed item refused with one line. */
START_TEST(test_exclude_parse)
{
    char *x = NULL, err[SEFL_ERRLEN] = "";
    ck_assert_msg(report_exclude_parse("0-2,client-0009,7,edge-a", &x, err) == 0, "%s", err);
    ck_assert_str_eq(x, "\nclient-0000\nclient-0001\nclient-0002\nclient-0009\nclient-0007\n"
                        "edge-a\n");
    free(x);
    ck_assert_int_eq(report_exclude_parse("12345", &x, err), 0);
    ck_assert_str_eq(x, "\nclient-12345\n");   /* %04d, as sefl-sim names client 12345 */
    free(x);
    static const char *bad[] = { "", ",,", "3-1", "1-", "1-x", "2x", "999999-1000000",
                                 "client-0000000000000000000000000000000000000000000000000000000000001" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        x = (char *)1;
        ck_assert_msg(report_exclude_parse(bad[i], &x, err) == -EINVAL, "case %zu", i);
        ck_assert_ptr_null(x);
        ck_assert_msg(strstr(err, "--exclude-clients") && !strchr(err, '\n'), "%s", err);
    }
    /* More than REPORT_MAX_CLIENTS names is refused before any is written. */
    ck_assert_int_eq(report_exclude_parse("0-999999", &x, err), -ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "more than"));
}
END_TEST

/* An excluded client is left out of the round and of the curve alike. */
START_TEST(test_load_excluded)
{
    make_db(path,
            "INSERT INTO eval_reports VALUES(2, 'client-0000', 10, 0.0, 0.7, NULL),"
            " (2, 'client-0001', 30, 0.5, 0.1, NULL), (2, 'client-0002', 10, 1.0, 0.1, NULL),"
            " (5, 'client-0000', 10, 0.1, 0.2, NULL), (5, 'client-0001', 30, 0.9, 0.3, NULL),"
            " (5, 'client-0002', 10, 0.7, 0.3, NULL), (7, 'client-0000', 10, 0.2, 0.3, NULL);");
    report_run run;
    char *x = NULL, err[SEFL_ERRLEN] = "";
    ck_assert_int_eq(report_exclude_parse("0", &x, err), 0);
    ck_assert_msg(report_load_run(path, -1, x, &run, err) == 0, "%s", err);
    /* Round 7 held only client-0000's report: no longer an evaluated round. */
    ck_assert_int_eq(run.round, 5);
    ck_assert_int_eq(run.n, 2);
    ck_assert_int_eq(run.excluded, 1);
    ck_assert_str_eq(run.c[0].name, "client-0001");
    ck_assert_int_eq(run.ncurve, 2);
    ck_assert_int_eq(run.curve[0].clients, 2);
    ck_assert_double_eq_tol(run.curve[0].weighted_accuracy, (15 + 10) / 40.0, TOL);
    report run_report = { .run = run };
    ck_assert_int_eq(report_compute(&run_report), 0);
    ck_assert_double_eq_tol(run_report.s.weighted, (27 + 7) / 40.0, TOL);
    char *s = capture(report_print, &run_report);
    ck_assert_ptr_nonnull(strstr(s, "clients 2\nexcluded_clients 1\n"));
    free(s);
    s = capture(report_write_csv, &run_report);
    ck_assert_ptr_nonnull(strstr(s, "count,excluded_clients,1,,,\n"));
    free(s);
    s = capture(report_write_json, &run_report);
    ck_assert_ptr_nonnull(strstr(s, "\"excluded_clients\": 1"));
    free(s);
    report_free(&run_report);

    /* Without the list: every client, and round 7. */
    ck_assert_int_eq(report_load_run(path, -1, NULL, &run, err), 0);
    ck_assert_int_eq(run.round, 7);
    ck_assert_int_eq(run.excluded, 0);
    report_run_free(&run);

    /* A round whose every report is excluded, and a list that leaves nothing. */
    ck_assert_int_eq(report_load_run(path, 7, x, &run, err), -ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "no eval reports outside the excluded clients for round 7"));
    report_run_free(&run);
    free(x);
    ck_assert_int_eq(report_exclude_parse("0-2", &x, err), 0);
    ck_assert_int_eq(report_load_run(path, -1, x, &run, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "no eval reports of a client outside the excluded ones"));
    report_run_free(&run);
    free(x);
}
END_TEST

/* A DP-FedAvg run: the privacy row of the last committed round up to the
 * reported one, and the dp-clip setting, in the text, CSV and JSON alike. */
START_TEST(test_load_privacy)
{
    make_db(path,
            "CREATE TABLE privacy(round INTEGER PRIMARY KEY, sample_rate REAL NOT NULL,"
            " noise REAL NOT NULL, epsilon REAL NOT NULL, delta REAL NOT NULL);"
            "CREATE TABLE settings(name TEXT PRIMARY KEY, value TEXT NOT NULL,"
            " since_round INTEGER NOT NULL);"
            "CREATE TABLE setting_changes(round INTEGER NOT NULL, name TEXT NOT NULL,"
            " old_value TEXT NOT NULL, new_value TEXT NOT NULL, changed_at TEXT NOT NULL);"
            "INSERT INTO settings VALUES('dp-clip', '2.5', 0), ('aggregate', 'fedavg', 0);"
            "INSERT INTO privacy VALUES(1, 0.5, 1.1, 0.25, 1e-7), (2, 0.5, 1.1, 0.5, 1e-7),"
            " (3, 0.5, 1.1, 0.75, 1e-7);"
            "INSERT INTO eval_reports VALUES(2, 'client-0000', 10, 0.5, 0.7, NULL),"
            " (4, 'client-0000', 10, 0.6, 0.7, NULL);");
    report r;
    memset(&r, 0, sizeof r);
    char err[SEFL_ERRLEN] = "";
    ck_assert_msg(report_load_run(path, 2, NULL, &r.run, err) == 0, "%s", err);
    ck_assert_int_eq(r.run.dp, 1);
    ck_assert_int_eq(r.run.dp_round, 2);
    ck_assert_double_eq_tol(r.run.dp_epsilon, 0.5, TOL);
    ck_assert_double_eq_tol(r.run.dp_clip, 2.5, TOL);
    ck_assert_int_eq(report_compute(&r), 0);
    char *s = capture(report_print, &r);
    ck_assert_msg(strstr(s, "dp_epsilon 0.5\ndp_delta 1e-07\ndp_noise 1.1\ndp_clip 2.5\n"
                            "dp_sample_rate 0.5\ndp_round 2\n"), "%s", s);
    free(s);
    s = capture(report_write_csv, &r);
    ck_assert_msg(strstr(s, "dp,dp_epsilon,2,0.500000,,\ndp,dp_delta,2,0.000000,,\n"
                            "dp,dp_noise,2,1.100000,,\ndp,dp_clip,2,2.500000,,\n"
                            "dp,dp_sample_rate,2,0.500000,,\n"), "%s", s);
    free(s);
    s = capture(report_write_json, &r);
    ck_assert_msg(strstr(s, "\"dp\": {\"epsilon\": 0.5, \"delta\": 1e-07, \"noise\": 1.1, "
                            "\"clip\": 2.5, \"sample_rate\": 0.5, \"round\": 2}"), "%s", s);
    free(s);
    report_free(&r);

    /* Round 4 was evaluated after round 3, the last with a privacy row. */
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(report_load_run(path, -1, NULL, &r.run, err), 0);
    ck_assert_int_eq(r.run.dp_round, 3);
    ck_assert_double_eq_tol(r.run.dp_epsilon, 0.75, TOL);
    report_free(&r);

    /* A run without DP has no dp figures in any form. */
    make_db(dir_path("plain.db"), "INSERT INTO eval_reports VALUES(1, 'c', 1, 0.5, 0.1, NULL);");
    memset(&r, 0, sizeof r);
    ck_assert_int_eq(report_load_run(dir_path("plain.db"), -1, NULL, &r.run, err), 0);
    ck_assert_int_eq(report_compute(&r), 0);
    s = capture(report_write_json, &r);
    ck_assert_ptr_null(strstr(s, "\"dp\""));
    free(s);
    s = capture(report_write_csv, &r);
    ck_assert_ptr_null(strstr(s, "dp,"));
    free(s);
    report_free(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("report");
    TCase *stats = tcase_create("stats");
    tcase_add_test(stats, test_summary_hand_made);
    tcase_add_test(stats, test_summary_odd_and_edges);
    tcase_add_test(stats, test_quantile);
    tcase_add_test(stats, test_baseline_counts);
    tcase_add_test(stats, test_best_round);
    suite_add_tcase(s, stats);

    TCase *out = tcase_create("writers");
    tcase_add_test(out, test_csv);
    tcase_add_test(out, test_json);
    tcase_add_test(out, test_svg);
    tcase_add_test(out, test_xy_read);
    tcase_add_test(out, test_xy_svg);
    suite_add_tcase(s, out);

    TCase *db = tcase_create("db");
    tcase_add_checked_fixture(db, setup, teardown);
    tcase_set_timeout(db, 60);
    tcase_add_test(db, test_load_run);
    tcase_add_test(db, test_load_refusals);
    tcase_add_test(db, test_load_limits);
    tcase_add_test(db, test_load_client_limit);
    tcase_add_test(db, test_load_round_limit);
    tcase_add_test(db, test_load_excluded);
    tcase_add_test(db, test_load_privacy);
    tcase_add_test(db, test_exclude_parse);
    suite_add_tcase(s, db);

    return check_run(s);
}
