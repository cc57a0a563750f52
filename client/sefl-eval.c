/* sefl-eval: per-client personalized accuracy of a run, from its server.db.
 *
 *   sefl-eval --db server.db [--round R] [--best] [--baseline other.db]
 *             [--csv F] [--json F] [--svg F]
 *
 * Reads the EvalReports of one round (default: the last evaluated one),
 * prints a row per client and the statistics as `name value` lines that
 * scripts grep (weighted_accuracy 0.9123), optionally against a baseline run
 * on the same partition, and the model's cost from the run's meta. The work
 * is in client/report*.c; this file is arguments, the cost view and files.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/log.h"
#include "common/nn/model.h"
#include "common/nn/params.h"
#include "client/report.h"

static void usage(FILE *f)
{
    fputs("usage: sefl-eval --db server.db [--round R] [--best] [--baseline other.db]\n"
          "                 [--csv FILE] [--json FILE] [--svg FILE]\n"
          "\n"
          "Per-client personalized accuracy from the eval reports of a server.db (or of\n"
          "the db that sefl-sim --local-only writes).\n"
          "\n"
          "  --db FILE        the run to report (required)\n"
          "  --round R        the evaluated round to report (default: the last one)\n"
          "  --best           also list every evaluated round and the best one by\n"
          "                   sample-weighted accuracy\n"
          "  --baseline FILE  another run on the same partition (e.g. --private none, or\n"
          "                   sefl-sim --local-only), at its own last evaluated round:\n"
          "                   adds its accuracy per client, the difference, its statistics\n"
          "                   over the same clients, and clients better/worse/equal\n"
          "  --csv FILE       write the numbers as CSV (kind,name,n,value,baseline,difference)\n"
          "  --json FILE      write the same numbers as JSON\n"
          "  --svg FILE       write a chart: per-client accuracy sorted, against the baseline\n"
          "  --help           this text\n"
          "\n"
          "Prints `name value` lines: weighted_accuracy (sum acc*examples / sum examples,\n"
          "as PFLlib reports it), mean_accuracy, std_accuracy (population), min_accuracy,\n"
          "p10_accuracy, median_accuracy, with a baseline the same prefixed baseline_ and\n"
          "better/worse/equal, and the model's cost: params_* per group, params_private,\n"
          "private_fraction, macs_per_sample with and without the SE gates; for a\n"
          "DP-FedAvg run (sefl-server --dp-clip) dp_epsilon, dp_delta and dp_noise: the\n"
          "privacy spent up to the reported round, as the coordinator stored it.\n"
          "Exit status: 0 done, 1 the db cannot be read or has no such reports, 2 bad arguments.\n",
          f);
}

/* Fills r->cost from the run's meta: the model is rebuilt from (arch, r,
 * fc1_gate) so the figures are those of the run, not of today's defaults.
 * Returns 0, or -EINVAL with err when meta does not say enough. */
static int cost_from_meta(const report_meta *m, report_cost *c, char *err)
{
    param_table t;
    unsigned mask = 0;
    if (strcmp(m->arch, "cnn-se")) {
        err_set(err, "no cost view: arch '%s' in meta is not cnn-se", m->arch);
        return -EINVAL;
    }
    if (m->r < 0 || m->fc1_gate < 0) {
        err_set(err, "no cost view: meta lacks r or fc1_gate");
        return -EINVAL;
    }
    if (params_build_cnn_se(&t, m->r, m->fc1_gate, err) < 0) return -EINVAL;
    if (m->table_hash[0] && strtoull(m->table_hash, NULL, 16) != t.hash)
        log_warn("meta table_hash %s differs from this build's cnn-se table (%016llx);"
                 " the cost view describes this build's model", m->table_hash,
                 (unsigned long long)t.hash);
    /* A local-only run shares nothing: every parameter stays on the client. */
    if (!strcmp(m->kind, "local")) mask = PARAM_ALL;
    else if (params_parse_private(m->private_groups[0] ? m->private_groups : "none", &mask, err) < 0)
        return -EINVAL;

    c->total = (long)t.total;
    c->backbone = (long)params_count(&t, params_group(PARAM_BACKBONE));
    c->se = (long)params_count(&t, params_group(PARAM_SE));
    c->head = (long)params_count(&t, params_group(PARAM_HEAD));
    c->private_params = (long)params_count(&t, params_private(mask));
    c->private_fraction = t.total ? (double)c->private_params / (double)t.total : 0;
    c->macs = model_macs(&t, 1);
    c->macs_no_se = model_macs(&t, 0);
    return 0;
}

/* Writes one output file with writer w; returns 0 or -1 with err. */
static int write_file(const char *path, int (*w)(FILE *, const report *), const report *r,
                      char *err)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        err_set(err, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    int ret = w(f, r);
    if (fclose(f) != 0 || ret < 0) {
        err_set(err, "cannot write %s: %s", path, ret == -ENOMEM ? "out of memory" : "write failed");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "db", required_argument, NULL, 'd' },
        { "round", required_argument, NULL, 'r' },
        { "best", no_argument, NULL, 'b' },
        { "baseline", required_argument, NULL, 'B' },
        { "csv", required_argument, NULL, 'c' },
        { "json", required_argument, NULL, 'j' },
        { "svg", required_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *db = NULL, *base = NULL, *csv = NULL, *json = NULL, *svg = NULL;
    int round = -1, best = 0, opt;
    char err[SEFL_ERRLEN];
    report r;
    memset(&r, 0, sizeof r);

    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'd': db = optarg; break;
        case 'B': base = optarg; break;
        case 'c': csv = optarg; break;
        case 'j': json = optarg; break;
        case 's': svg = optarg; break;
        case 'b': best = 1; break;
        case 'h': usage(stdout); return 0;
        case 'r': {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || v < 0 || v > INT_MAX) {
                fprintf(stderr, "sefl-eval: --round wants a round number >= 0, not '%s'\n", optarg);
                return 2;
            }
            round = (int)v;
            break;
        }
        default:
            cli_bad_option(argv, err);
            return cli_usage_error("sefl-eval", err);
        }
    }
    if (cli_no_operands(argc, argv, err) < 0) return cli_usage_error("sefl-eval", err);
    if (!db) return cli_usage_error("sefl-eval", "--db FILE is required");

    int status = 1;
    if (report_load_run(db, round, &r.run, err) < 0) goto out;
    if (base) {
        r.has_base = 1;
        if (report_load_run(base, -1, &r.base, err) < 0) goto out;
        if (r.run.meta.partition[0] && r.base.meta.partition[0] &&
            strcmp(r.run.meta.partition, r.base.meta.partition))
            log_warn("baseline partition %s differs from %s: per-client differences compare"
                     " different data", r.base.meta.partition, r.run.meta.partition);
    }
    r.show_best = best;
    char cost_err[SEFL_ERRLEN];
    if (cost_from_meta(&r.run.meta, &r.cost, cost_err) == 0) r.has_cost = 1;
    else log_warn("%s", cost_err);
    if (report_compute(&r) < 0) { err_set(err, "out of memory"); goto out; }
    if (r.has_base && r.missing)
        log_warn("%d clients of %s have no report in the baseline's round %d", r.missing, db,
                 r.base.round);

    if (report_print(stdout, &r) < 0 || fflush(stdout) != 0) {
        err_set(err, "cannot write to stdout");
        goto out;
    }
    if (csv && write_file(csv, report_write_csv, &r, err) < 0) goto out;
    if (json && write_file(json, report_write_json, &r, err) < 0) goto out;
    if (svg && write_file(svg, report_write_svg, &r, err) < 0) goto out;
    status = 0;
out:
    if (status) fprintf(stderr, "sefl-eval: %s\n", err);
    report_free(&r);
    return status;
}
