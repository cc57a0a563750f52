/* sefl-eval: per-client personalized accuracy of a run, from its server.db.
 *
 *   sefl-eval --db server.db [--round R] [--best] [--baseline other.db]
 *             [--exclude-clients LIST] [--attackers F --clients N]
 *             [--csv F] [--json F] [--svg F]
 *   sefl-eval --gates --db server.db --state DIR PARTITION-FLAGS [--client I]
 *             [--gate-threshold T]
 *   sefl-eval --newcomers --db server.db --holdout H PARTITION-FLAGS
 *             [--epochs E] [--at LIST] [--lr L] [--batch B]
 *   sefl-eval --plot POINTS --svg F [--logx] [--title T] [--xlabel X] [--ylabel Y]
 *
 * Reads the EvalReports of one round (default: the last evaluated one),
 * prints a row per client and the statistics as `name value` lines that
 * scripts grep (weighted_accuracy 0.9123), optionally against a baseline run
 * on the same partition, and the model's cost from the run's meta. The work
 * is in client/report*.c; this file is arguments, the cost view and files.
 * --gates (client/gates.c) and --newcomers (client/newcomer.c) read the
 * run's final global model and rebuild its clients' data from the partition
 * flags sefl-sim ran with (client/evalrun.c). --plot draws accuracy
 * against any x from a text file (the r sweep's curve).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/config.h"
#include "common/log.h"
#include "common/nn/model.h"
#include "common/nn/params.h"
#include "client/attack.h"
#include "client/evalrun.h"
#include "client/gates.h"
#include "client/newcomer.h"
#include "client/report.h"
#include "common/rng.h"

static void usage(FILE *f)
{
    fputs("usage: sefl-eval --db server.db [--round R] [--best] [--baseline other.db]\n"
          "                 [--exclude-clients LIST] [--attackers F --clients N]\n"
          "                 [--csv FILE] [--json FILE] [--svg FILE]\n"
          "       sefl-eval --gates --db server.db --state DIR --partition SPEC --clients N\n"
          "                 --seed S [--max-samples N] [--client I] [--gate-threshold T]\n"
          "       sefl-eval --newcomers --db server.db --holdout H --partition SPEC --clients N\n"
          "                 --seed S [--max-samples N] [--epochs E] [--at LIST] [--lr L] [--batch B]\n"
          "       sefl-eval --plot POINTS --svg FILE [--logx] [--title T] [--xlabel X] [--ylabel Y]\n"
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
          "  --exclude-clients LIST  leave these clients out of every figure (of the\n"
          "                   baseline too): comma-separated client names (client-0007),\n"
          "                   ids (7 is client-0007) and id ranges (0-3), at most 1024\n"
          "                   bytes; the text says excluded_clients N, the reports of the\n"
          "                   round left out\n"
          "  --attackers F --clients N  leave out the attackers of a sefl-sim run with\n"
          "                   --attack --attackers F of --clients N: client ids\n"
          "                   0..ceil(F*N)-1, as sefl-sim picks them; the figures are then\n"
          "                   over the honest clients only (Byzantine-robustness papers'\n"
          "                   measure). Give it to a run without an attack as well, so\n"
          "                   its figures are over the same clients\n"
          "  --csv FILE       write the numbers as CSV (kind,name,n,value,baseline,difference)\n"
          "  --json FILE      write the same numbers as JSON\n"
          "  --svg FILE       write a chart: per-client accuracy sorted, against the baseline\n"
          "                   (FILE - of --csv, --json or --svg: stdout, without the\n"
          "                   text report)\n"
          CONFIG_USAGE
          "\n"
          "Prints `name value` lines: weighted_accuracy (sum acc*examples / sum examples,\n"
          "as PFLlib reports it), mean_accuracy, std_accuracy (population), min_accuracy,\n"
          "p10_accuracy, median_accuracy, with a baseline the same prefixed baseline_ and\n"
          "better/worse/equal, and the model's cost: params_* per group, params_private,\n"
          "private_fraction, macs_per_sample with and without the SE gates; for a\n"
          "DP-FedAvg run (sefl-server --dp-clip) dp_epsilon, dp_delta, dp_noise, dp_clip,\n"
          "dp_sample_rate and dp_round: the privacy spent up to the reported round, as the\n"
          "coordinator stored it for committed round dp_round (CSV rows of kind dp with\n"
          "n = dp_round; JSON's \"dp\" object). With clients excluded, clients is the\n"
          "count kept and excluded_clients the count left out.\n"
          "\n"
          "The two tools below read the run's newest global model from --db and rebuild\n"
          "its clients' data from the partition flags sefl-sim ran with:\n"
          "  --partition SPEC --clients N --seed S [--max-samples N] [--data DIR]\n"
          "\n"
          "--gates: each client's SE gates over its test images. A client is the global\n"
          "model with the private tensors of its pstore DIR/client-NNNN.db (every client\n"
          "of the partition that has one, or only --client I). Per client and SE block:\n"
          "the channels whose gate stays below --gate-threshold (default 0.05) on every\n"
          "test image, the multiply-accumulates per sample saved by pruning them, and\n"
          "test accuracy with them pruned (their filters zeroed) against unpruned; with\n"
          "--client, every channel's mean, std and max gate. Across clients: the mean\n"
          "cosine similarity of per-channel mean gates for pairs of clients with the same\n"
          "classes (and image domain), overlapping and disjoint classes (a class is one\n"
          "of a client's when it is >= 5% of its train split); _centered after removing\n"
          "each channel's mean over clients.\n"
          "\n"
          "--newcomers: the last H client ids (sefl-sim --holdout H kept them out of\n"
          "training) start from the global model with the run's initial private tensors\n"
          "and train only the run's --private tensors on their own train split, the\n"
          "shared ones frozen. Prints the held-out clients' sample-weighted test accuracy\n"
          "after every local epoch 0..E (default 20; --at picks the name-value lines,\n"
          "default 0,1,5,20) and newcomer_epochs_to_95: the first epoch at >= 95% of the\n"
          "accuracy after E. --lr (default 0.005), --batch (default 10), --momentum\n"
          "(default 0) as the run's clients trained.\n"
          "\n"
          "--plot: draws the points of POINTS (lines 'SERIES X Y [LABEL]', Y an accuracy\n"
          "in [0, 1], # comments) as an SVG chart to --svg FILE, one line per series in\n"
          "ascending X, each LABEL beside its point; --logx for a log-scale x axis\n"
          "(X > 0), --title, --xlabel, --ylabel for its texts. At most 8 series of\n"
          "10000 points.\n"
          "\n"
          "Exit status: 0 done, 1 the db or data cannot be read or has no such reports,\n"
          "2 bad arguments.\n",
          f);
}

/* Fills r->cost from the run's meta: the model is rebuilt from its arch and
 * options (r, fc1_gate, se_placement, gate) so the figures are those of the
 * run, not of today's defaults. Returns 0, or -EINVAL with err when meta
 * does not say enough. */
static int cost_from_meta(const report_meta *m, report_cost *c, char *err)
{
    param_table t;
    unsigned mask = 0;
    if (m->r < 0 || m->fc1_gate < 0) {
        err_set(err, "no cost view: meta lacks r or fc1_gate");
        return -EINVAL;
    }
    model_opts o = model_opts_default();
    o.r = m->r;
    o.fc1_gate = m->fc1_gate;
    if (model_opts_set(&o, MODEL_OPT_ARCH, m->arch, err) < 0 ||
        model_opts_set(&o, MODEL_OPT_SE_PLACEMENT, m->se_placement, err) < 0 ||
        model_opts_set(&o, MODEL_OPT_GATE, m->gate, err) < 0 || params_build(&t, &o, err) < 0) {
        char why[SEFL_ERRLEN];
        snprintf(why, sizeof why, "%s", err);
        err_set(err, "no cost view: the model in meta: %s", why);
        return -EINVAL;
    }
    if (m->table_hash[0] && strtoull(m->table_hash, NULL, 16) != t.hash)
        log_warn("meta table_hash %s differs from this build's %s table (%016llx);"
                 " the cost view describes this build's model", m->table_hash, t.arch,
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

/* Writes one output file with writer w (path "-": stdout); returns 0 or -1
 * with err. */
static int write_file(const char *path, int (*w)(FILE *, const report *), const report *r,
                      char *err)
{
    if (!strcmp(path, "-")) {
        if (w(stdout, r) < 0 || fflush(stdout) != 0) {
            err_set(err, "cannot write to stdout");
            return -1;
        }
        return 0;
    }
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

#define EVAL_MAX_AT 16

typedef struct {
    const char *db, *base, *csv, *json, *svg, *state_dir, *plot, *title, *xlabel, *ylabel;
    const char *exclude;        /* --exclude-clients LIST */
    double attackers;           /* --attackers F; -1: not given */
    char *excluded;             /* owned: both as report_exclude_parse writes them, or NULL */
    int round, best, gates, newcomers, logx;
    evalrun_data data;
    int have_seed;
    long client, holdout, epochs, batch;
    double threshold, lr, momentum;
    int at[EVAL_MAX_AT];        /* --at epochs */
    int n_at;
} eval_args;

/* Parses --at "0,1,5,20" into a->at. Returns 0 or -EINVAL with err. */
static int eval_parse_at(const char *s, eval_args *a, char *err)
{
    char buf[256];
    a->n_at = 0;
    if (snprintf(buf, sizeof buf, "%s", s) >= (int)sizeof buf) goto bad;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long v;
        if (a->n_at == EVAL_MAX_AT ||
            cli_parse_long("--at", tok, 0, NEWCOMER_MAX_EPOCHS, &v, err) < 0)
            goto bad;
        a->at[a->n_at++] = (int)v;
    }
    if (a->n_at > 0) return 0;
bad:
    err_set(err, "--at wants up to %d epoch counts 0..%d separated by commas, got '%s'",
            EVAL_MAX_AT, NEWCOMER_MAX_EPOCHS, s);
    return -EINVAL;
}

/* How many of the output files are "-" (stdout). */
static int eval_dashes(const eval_args *a)
{
    return (a->csv && !strcmp(a->csv, "-")) + (a->json && !strcmp(a->json, "-")) +
           (a->svg && !strcmp(a->svg, "-"));
}

/* The clients the report leaves out, in report_exclude_parse's form (NULL
 * when none): --exclude-clients, and the first ceil(F*N) ids for
 * --attackers F --clients N (attack_count, as sefl-sim picks them).
 * Returns 0 or -1 with err. */
static int eval_exclude(const eval_args *a, char **out, char *err)
{
    char list[64 + 1024];
    int attackers = a->attackers >= 0 ? attack_count(a->attackers, (int)a->data.clients) : 0;
    *out = NULL;
    if (!a->exclude && attackers == 0) return 0;
    if (a->exclude && strlen(a->exclude) > 1024) {
        err_set(err, "--exclude-clients: a list of at most 1024 bytes (use id ranges)");
        return -1;
    }
    snprintf(list, sizeof list, "%s%s", a->exclude ? a->exclude : "",
             a->exclude && attackers ? "," : "");
    if (attackers) snprintf(list + strlen(list), 64, "0-%d", attackers - 1);
    return report_exclude_parse(list, out, err) < 0 ? -1 : 0;
}

/* Parses argv into a; returns 0, 1 for --help, or -1 with err; with
 * --print-config, prints and exits 0 once the flags are checked. */
static int eval_parse(int argc, char **argv, eval_args *a, char *err)
{
    enum { O_DB = 256, O_ROUND, O_BEST, O_BASE, O_CSV, O_JSON, O_SVG, O_HELP, O_GATES, O_NEW,
           O_STATE, O_PART, O_CLIENTS, O_SEED, O_MAX, O_DATA, O_CLIENT, O_THR, O_HOLD, O_EPOCHS,
           O_AT, O_LR, O_BATCH, O_MOM, O_PLOT, O_LOGX, O_TITLE, O_XLABEL, O_YLABEL, O_EXCLUDE,
           O_ATTACKERS };
    static const struct option opts[] = {
        { "db", 1, 0, O_DB }, { "round", 1, 0, O_ROUND }, { "best", 0, 0, O_BEST },
        { "baseline", 1, 0, O_BASE }, { "csv", 1, 0, O_CSV }, { "json", 1, 0, O_JSON },
        { "svg", 1, 0, O_SVG }, { "help", 0, 0, O_HELP }, { "gates", 0, 0, O_GATES },
        { "newcomers", 0, 0, O_NEW }, { "state", 1, 0, O_STATE }, { "partition", 1, 0, O_PART },
        { "clients", 1, 0, O_CLIENTS }, { "seed", 1, 0, O_SEED }, { "max-samples", 1, 0, O_MAX },
        { "data", 1, 0, O_DATA }, { "client", 1, 0, O_CLIENT }, { "gate-threshold", 1, 0, O_THR },
        { "holdout", 1, 0, O_HOLD }, { "epochs", 1, 0, O_EPOCHS }, { "at", 1, 0, O_AT },
        { "lr", 1, 0, O_LR }, { "batch", 1, 0, O_BATCH }, { "momentum", 1, 0, O_MOM },
        { "plot", 1, 0, O_PLOT }, { "logx", 0, 0, O_LOGX }, { "title", 1, 0, O_TITLE },
        { "xlabel", 1, 0, O_XLABEL }, { "ylabel", 1, 0, O_YLABEL },
        { "exclude-clients", 1, 0, O_EXCLUDE }, { "attackers", 1, 0, O_ATTACKERS }, CONFIG_OPTIONS,
        { 0, 0, 0, 0 },
    };
    /* usage is a function here: --print-config shows no defaults. */
    if (config_begin("sefl-eval", NULL, opts, &argc, &argv, err)) return -1;
    memset(a, 0, sizeof *a);
    a->round = -1;
    a->client = -1;
    a->attackers = -1;
    a->threshold = GATES_DEFAULT_THRESHOLD;
    a->epochs = 20;
    a->batch = 10;
    a->lr = 0.005;
    static const int at[] = { 0, 1, 5, 20 };
    memcpy(a->at, at, sizeof at);
    a->n_at = 4;
    int c, rc = 0, have_at = 0;
    long v;
    opterr = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_DB: a->db = optarg; break;
        case O_BASE: a->base = optarg; break;
        case O_CSV: a->csv = optarg; break;
        case O_JSON: a->json = optarg; break;
        case O_SVG: a->svg = optarg; break;
        case O_BEST: a->best = 1; break;
        case 'h':
        case O_HELP: return 1;
        case O_ROUND:
            if (cli_parse_long("--round", optarg, 0, INT_MAX, &v, err) < 0) {
                err_set(err, "--round wants a round number >= 0, not '%s'", optarg);
                return -1;
            }
            a->round = (int)v;
            break;
        case O_GATES: a->gates = 1; break;
        case O_NEW: a->newcomers = 1; break;
        case O_STATE: a->state_dir = optarg; break;
        case O_PART: a->data.partition = optarg; break;
        case O_DATA: a->data.data_dir = optarg; break;
        case O_CLIENTS: rc = cli_parse_long("--clients", optarg, 1, PARTITION_MAX_CLIENTS, &a->data.clients, err); break;
        case O_SEED: rc = cli_parse_u64("--seed", optarg, &a->data.seed, err); a->have_seed = 1; break;
        case O_MAX: rc = cli_parse_long("--max-samples", optarg, 1, DATASET_MAX_SAMPLES, &a->data.max_samples, err); break;
        case O_CLIENT: rc = cli_parse_long("--client", optarg, 0, PARTITION_MAX_CLIENTS - 1, &a->client, err); break;
        case O_THR: rc = cli_parse_double("--gate-threshold", optarg, 1e-6, 0.999, &a->threshold, err); break;
        case O_HOLD: rc = cli_parse_long("--holdout", optarg, 1, PARTITION_MAX_CLIENTS - 1, &a->holdout, err); break;
        case O_EPOCHS: rc = cli_parse_long("--epochs", optarg, 1, NEWCOMER_MAX_EPOCHS, &a->epochs, err); break;
        case O_AT: rc = eval_parse_at(optarg, a, err); have_at = 1; break;
        case O_LR: rc = cli_parse_double("--lr", optarg, 1e-9, 100, &a->lr, err); break;
        case O_BATCH: rc = cli_parse_long("--batch", optarg, 1, MODEL_MAX_BATCH, &a->batch, err); break;
        case O_MOM: rc = cli_parse_double("--momentum", optarg, 0, 0.999, &a->momentum, err); break;
        case O_PLOT: a->plot = optarg; break;
        case O_LOGX: a->logx = 1; break;
        case O_TITLE: a->title = optarg; break;
        case O_XLABEL: a->xlabel = optarg; break;
        case O_YLABEL: a->ylabel = optarg; break;
        case O_EXCLUDE: a->exclude = optarg; break;
        case O_ATTACKERS: rc = cli_parse_double("--attackers", optarg, 0, 1, &a->attackers, err); break;
        default: rc = config_option(c, argv, err); break;
        }
    }
    if (rc < 0) {
        config_where(err);
        return -1;
    }
    if (cli_no_operands(argc, argv, err) < 0) return -1;
    if (eval_dashes(a) > 1) {
        err_set(err, "only one of --csv, --json and --svg can be - (stdout)");
        return -1;
    }
    if (a->plot) {
        if (!a->svg || a->db || a->gates || a->newcomers) {
            err_set(err, "--plot POINTS draws to --svg FILE and takes no --db, --gates or --newcomers");
            return -1;
        }
        config_end();
        return 0;
    }
    if (a->logx || a->title || a->xlabel || a->ylabel) {
        err_set(err, "--logx, --title, --xlabel and --ylabel belong to --plot");
        return -1;
    }
    if (!a->db) {
        err_set(err, "--db FILE is required");
        return -1;
    }
    if (a->gates && a->newcomers) {
        err_set(err, "--gates and --newcomers are separate reports: give one");
        return -1;
    }
    if (!a->gates && !a->newcomers) {
        if ((a->attackers >= 0) != (a->data.clients > 0)) {
            err_set(err, "--attackers F and --clients N go together in the accuracy report (the"
                    " attackers are client ids 0..ceil(F*N)-1)");
            return -1;
        }
        if (eval_exclude(a, &a->excluded, err) < 0) return -1;
        config_end();
        return 0;
    }
    if (a->base || a->csv || a->json || a->svg || a->best || a->round >= 0 || a->exclude ||
        a->attackers >= 0) {
        err_set(err, "--round, --best, --baseline, --exclude-clients, --attackers, --csv, --json"
                " and --svg belong to the accuracy report, not to --%s",
                a->gates ? "gates" : "newcomers");
        return -1;
    }
    if (!a->data.partition || !a->data.clients || !a->have_seed) {
        err_set(err, "--%s needs the run's --partition, --clients and --seed",
                a->gates ? "gates" : "newcomers");
        return -1;
    }
    if (a->gates && !a->state_dir) {
        err_set(err, "--gates needs --state DIR, the clients' private stores");
        return -1;
    }
    if (a->gates && a->client >= a->data.clients) {
        err_set(err, "--client %ld is not a client id of --clients %ld", a->client, a->data.clients);
        return -1;
    }
    if (a->newcomers && (!a->holdout || a->holdout >= a->data.clients)) {
        err_set(err, "--newcomers needs --holdout H with 1 <= H < --clients");
        return -1;
    }
    for (int i = 0; a->newcomers && i < a->n_at; i++)
        if (a->at[i] > a->epochs) {
            if (!have_at) { a->n_at = i; break; }    /* the defaults past a smaller --epochs */
            err_set(err, "--at %d is past --epochs %ld", a->at[i], a->epochs);
            return -1;
        }
    config_end();
    return 0;
}

/* The accuracy report of one round of a run (the default mode). */
static int eval_report(const eval_args *a, char *err)
{
    report r;
    int status = -1;
    memset(&r, 0, sizeof r);
    if (report_load_run(a->db, a->round, a->excluded, &r.run, err) < 0) goto out;
    if (a->base) {
        r.has_base = 1;
        if (report_load_run(a->base, -1, a->excluded, &r.base, err) < 0) goto out;
        if (r.run.meta.partition[0] && r.base.meta.partition[0] &&
            strcmp(r.run.meta.partition, r.base.meta.partition))
            log_warn("baseline partition %s differs from %s: per-client differences compare"
                     " different data", r.base.meta.partition, r.run.meta.partition);
    }
    r.show_best = a->best;
    char cost_err[SEFL_ERRLEN];
    if (cost_from_meta(&r.run.meta, &r.cost, cost_err) == 0) r.has_cost = 1;
    else log_warn("%s", cost_err);
    if (report_compute(&r) < 0) { err_set(err, "out of memory"); goto out; }
    if (r.has_base && r.missing)
        log_warn("%d clients of %s have no report in the baseline's round %d", r.missing, a->db,
                 r.base.round);

    if (!eval_dashes(a) && (report_print(stdout, &r) < 0 || fflush(stdout) != 0)) {
        err_set(err, "cannot write to stdout");
        goto out;
    }
    if (a->csv && write_file(a->csv, report_write_csv, &r, err) < 0) goto out;
    if (a->json && write_file(a->json, report_write_json, &r, err) < 0) goto out;
    if (a->svg && write_file(a->svg, report_write_svg, &r, err) < 0) goto out;
    status = 0;
out:
    report_free(&r);
    return status;
}

/* Prints the line of one pairs class of gates_similarity. */
static void eval_print_pairs(const char *name, const gates_pairs *p)
{
    printf("gate_pairs_%s %d\n", name, p->pairs);
    printf("gate_cosine_%s %.4f\n", name, p->cosine);
    printf("gate_cosine_centered_%s %.4f\n", name, p->centered);
}

/* --gates: every client with a pstore (or --client), then the similarity. */
static int eval_gates(const eval_args *a, char *err)
{
    evalrun e;
    int status = -1, n = 0, lo = 0, hi = (int)a->data.clients;
    float *w = NULL;
    double *vec = NULL, **rows = NULL;
    unsigned *classes = NULL;
    int *domain = NULL;
    double acc = 0, acc_pruned = 0, saved = 0, pruned = 0;
    double bmean[MODEL_SE_BLOCKS] = { 0 }, bstd[MODEL_SE_BLOCKS] = { 0 };  /* sums over clients */
    long examples = 0, macs = 0;
    if (evalrun_open(&e, a->db, &a->data, err) < 0) return -1;
    const param_table *t = &e.run.t;
    if (a->client >= 0) {
        lo = (int)a->client;
        hi = lo + 1;
    }
    w = malloc(t->total * sizeof *w);                                   /* (total) */
    vec = malloc((size_t)(hi - lo) * GATES_MAX_CHANNELS * sizeof *vec); /* (clients, 608) */
    rows = malloc((size_t)(hi - lo) * sizeof *rows);
    classes = malloc((size_t)(hi - lo) * sizeof *classes);
    domain = malloc((size_t)(hi - lo) * sizeof *domain);
    if (!w || !vec || !rows || !classes || !domain) {
        err_set(err, "out of memory");
        goto out;
    }
    printf("db %s\nround %u\nprivate_groups %s\ngate_threshold %g\n", a->db, e.round,
           params_private_name(e.run.private_mask), a->threshold);
    printf("# %-12s %6s %9s %9s %9s %10s %8s %8s\n", "client", "images", "se1_off", "se2_off",
           "se3_off", "macs_saved", "accuracy", "pruned");
    int dim = 0;
    for (int c = lo; c < hi; c++) {
        char name[32];
        trainer_data d;
        gates_stats gs;
        evalrun_client_name(c, name, sizeof name);
        int rc = evalrun_client_params(&e, a->state_dir, c, w, NULL, err);
        if (rc == -ENOENT && a->client < 0) continue;   /* held out, or not of this shard */
        if (rc < 0) goto out;
        evalrun_client_data(&e, c, &d);
        if (gates_measure(t, w, &d, a->threshold, &gs, err) < 0) goto out;
        printf("  %-12s %6ld %5d/%-3d %5d/%-3d %5d/%-3d %10ld %8.4f %8.4f\n", name, gs.images,
               gs.b[0].n_pruned, gs.b[0].channels, gs.b[1].n_pruned, gs.b[1].channels,
               gs.b[2].n_pruned, gs.b[2].channels, gs.macs - gs.macs_pruned, gs.accuracy,
               gs.accuracy_pruned);
        if (a->client >= 0) {
            printf("# client block channel mean std max pruned\n");
            if (gates_print_channels(stdout, name, &gs) < 0) {
                gates_stats_free(&gs);
                err_set(err, "cannot write to stdout");
                goto out;
            }
        }
        rows[n] = vec + (size_t)n * GATES_MAX_CHANNELS;
        dim = gates_mean_vector(&gs, rows[n]);
        classes[n] = gates_classes(d.train_y, d.train, d.n_train);
        domain[n] = partition_domain(&e.part, c);
        acc += gs.accuracy * (double)gs.images;
        acc_pruned += gs.accuracy_pruned * (double)gs.images;
        examples += gs.images;
        saved += (double)(gs.macs - gs.macs_pruned);
        pruned += gs.b[0].n_pruned + gs.b[1].n_pruned + gs.b[2].n_pruned;
        macs = gs.macs;
        for (int k = 0; k < MODEL_SE_BLOCKS; k++)
            for (int ch = 0; ch < gs.b[k].channels; ch++) {
                bmean[k] += gs.b[k].mean[ch] / gs.b[k].channels;
                bstd[k] += gs.b[k].std[ch] / gs.b[k].channels;
            }
        n++;
        gates_stats_free(&gs);
    }
    if (n == 0) {
        err_set(err, "%s holds no client-NNNN.db of clients 0..%ld", a->state_dir,
                a->data.clients - 1);
        goto out;
    }
    gates_similarity_out sim;
    if (gates_similarity((const double *const *)rows, dim, classes, domain, n, &sim) < 0) {
        err_set(err, "out of memory");
        goto out;
    }
    printf("clients %d\n", n);
    /* Per block, the mean over clients and channels of each channel's mean
     * gate and of its spread over the test images. */
    for (int k = 0; k < MODEL_SE_BLOCKS; k++) {
        if (bmean[k] == 0 && bstd[k] == 0) continue;   /* a block the model lacks */
        printf("gate_mean_se%d %.4f\n", k + 1, bmean[k] / n);
        printf("gate_std_se%d %.4f\n", k + 1, bstd[k] / n);
    }
    printf("pruned_channels_mean %.2f\n", pruned / n);
    printf("macs_per_sample %ld\n", macs);
    printf("macs_saved_mean %.0f\n", saved / n);
    printf("macs_saved_fraction %.4f\n", macs ? saved / n / (double)macs : 0.0);
    printf("weighted_accuracy %.4f\n", acc / (double)examples);
    printf("weighted_accuracy_pruned %.4f\n", acc_pruned / (double)examples);
    eval_print_pairs("same", &sim.same);
    eval_print_pairs("overlap", &sim.overlap);
    eval_print_pairs("disjoint", &sim.disjoint);
    printf("gate_cosine_same_minus_disjoint %.4f\n", sim.same.centered - sim.disjoint.centered);
    status = fflush(stdout) == 0 ? 0 : -1;
    if (status) err_set(err, "cannot write to stdout");
out:
    free(w);
    free(vec);
    free(rows);
    free(classes);
    free(domain);
    evalrun_free(&e);
    return status;
}

/* --newcomers: the held-out clients' accuracy epoch by epoch. */
static int eval_newcomers(const eval_args *a, char *err)
{
    evalrun e;
    int status = -1;
    const int E = (int)a->epochs, first = (int)(a->data.clients - a->holdout);
    float *w = NULL;
    double *acc = NULL, *sum = NULL;
    long examples = 0;
    if (evalrun_open(&e, a->db, &a->data, err) < 0) return -1;
    const param_table *t = &e.run.t;
    w = malloc(t->total * sizeof *w);               /* (total) */
    acc = malloc((size_t)(E + 1) * sizeof *acc);    /* (E + 1) one client */
    sum = calloc((size_t)(E + 1), sizeof *sum);     /* (E + 1) weighted sums */
    if (!w || !acc || !sum || evalrun_newcomer_params(&e, w) < 0) {
        err_set(err, "out of memory");
        goto out;
    }
    for (int c = first; c < (int)a->data.clients; c++) {
        if (e.evaluated[c]) {
            err_set(err, "client-%04d took part in %s (it has eval reports): not a newcomer; give"
                    " the --holdout sefl-sim ran with", c, a->db);
            goto out;
        }
    }
    printf("db %s\nround %u\nprivate_groups %s\nnewcomer_private_params %zu\n", a->db, e.round,
           params_private_name(e.run.private_mask),
           params_count(t, params_private(e.run.private_mask)));
    printf("# %-12s %6s %6s", "client", "train", "test");
    for (int i = 0; i < a->n_at; i++) printf("   ep%-4d", a->at[i]);
    printf(" to95\n");
    for (int c = first; c < (int)a->data.clients; c++) {
        char name[32];
        trainer_data d;
        evalrun_client_name(c, name, sizeof name);
        evalrun_client_data(&e, c, &d);
        newcomer_config cfg = {
            .epochs = E, .batch = (int)a->batch,
            .sgd = { .lr = (float)a->lr, .momentum = (float)a->momentum },
            .seed = rng_derive(a->data.seed, (uint64_t)c),
        };
        if (newcomer_adapt(t, e.run.private_mask, w, &d, &cfg, acc, NULL, err) < 0) goto out;
        printf("  %-12s %6d %6d", name, d.n_train, d.n_test);
        for (int i = 0; i < a->n_at; i++) printf(" %8.4f", acc[a->at[i]]);
        printf(" %4d\n", newcomer_epochs_to(acc, E, 0.95));
        for (int k = 0; k <= E; k++) sum[k] += acc[k] * d.n_test;
        examples += d.n_test;
    }
    printf("# epoch weighted_accuracy\n");
    for (int k = 0; k <= E; k++) {
        sum[k] /= (double)examples;
        printf("  %5d %.4f\n", k, sum[k]);
    }
    printf("newcomers %ld\nnewcomer_examples %ld\n", a->holdout, examples);
    for (int i = 0; i < a->n_at; i++) printf("newcomer_accuracy_e%d %.4f\n", a->at[i], sum[a->at[i]]);
    printf("newcomer_epochs_to_95 %d\n", newcomer_epochs_to(sum, E, 0.95));
    status = fflush(stdout) == 0 ? 0 : -1;
    if (status) err_set(err, "cannot write to stdout");
out:
    free(w);
    free(acc);
    free(sum);
    evalrun_free(&e);
    return status;
}

/* --plot: the points of a text file as an x-y chart. */
static int eval_plot(const eval_args *a, char *err)
{
    report_xy c = { .title = a->title, .xlabel = a->xlabel, .ylabel = a->ylabel, .logx = a->logx };
    int status = -1;
    FILE *in = fopen(a->plot, "r");
    if (!in) {
        err_set(err, "cannot read %s: %s", a->plot, strerror(errno));
        return -1;
    }
    if (report_xy_read(in, a->plot, &c, err) < 0) goto out;
    if (c.nseries == 0) {
        err_set(err, "%s holds no points", a->plot);
        goto out;
    }
    FILE *f = fopen(a->svg, "w");
    if (!f) {
        err_set(err, "cannot write %s: %s", a->svg, strerror(errno));
        goto out;
    }
    int rc = report_write_xy_svg(f, &c);
    if (fclose(f) != 0 || rc < 0) {
        err_set(err, "cannot write %s: %s", a->svg, rc == -ENOMEM ? "out of memory" : "write failed");
        goto out;
    }
    status = 0;
out:
    fclose(in);
    report_xy_free(&c);
    return status;
}

int main(int argc, char **argv)
{
    char err[SEFL_ERRLEN];
    eval_args a;
    int rc = eval_parse(argc, argv, &a, err);
    if (rc == 1) {
        usage(stdout);
        return 0;
    }
    if (rc < 0) return cli_usage_error("sefl-eval", err);
    rc = a.plot ? eval_plot(&a, err) : a.gates ? eval_gates(&a, err)
         : a.newcomers ? eval_newcomers(&a, err) : eval_report(&a, err);
    free(a.excluded);
    if (rc < 0) {
        fprintf(stderr, "sefl-eval: %s\n", err);
        return 1;
    }
    return 0;
}
