/* sefl-client: one federated device.
 *
 * Connects to the coordinator over mutual TLS with its certificate, trains
 * the shared backbone together with its private weights (kept in its own
 * SQLite file, never sent) when asked, reports its personalized accuracy,
 * and reconnects with backoff whenever the connection drops, until the
 * coordinator says the run is done. The conversation is the session module
 * (session.h); this file is flags, data and signals.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "client/setup.h"
#include "client/testswitch.h"
#include "common/cli.h"
#include "common/config.h"
#include "common/log.h"
#include "common/nn/params.h"
#include "client/session.h"
#include "client/trainer.h"

static const char usage[] =
    "usage: sefl-client --server HOST:PORT --certs DIR --name NAME --db FILE DATA [options]\n"
    "\n"
    "One federated client: trains the shared backbone and its private weights\n"
    "(kept in FILE, never sent) when the coordinator asks, and reports its\n"
    "accuracy; reconnects with exponential backoff and jitter until the\n"
    "coordinator ends the run (then exits 0).\n"
    "\n"
    "  --server HOST:PORT   coordinator; HOST must match its certificate\n"
    "  --certs DIR          DIR/ca.crt and DIR/clients/NAME.crt|.key (sefl-certs)\n"
    "  --name NAME          this client's certificate name, e.g. client-0003\n"
    "  --db FILE            private store (SQLite; created when missing; a\n"
    "                       corrupt or foreign file is an error, never replaced)\n"
    "DATA is either its own IDX files (gzip or plain):\n"
    "  --train-images F --train-labels F --test-images F --test-labels F\n"
    "or its share of a partition of the pooled 70,000 Fashion-MNIST samples:\n"
    "  --partition SPEC     iid, dir:ALPHA, pat:K, feat:D, feat:D+dir:ALPHA or draw:N\n"
    "  --num-clients N      clients in the partition\n"
    "  --index I            this client's index, 0..N-1\n"
    "  --seed S             partition seed (same on every client)\n"
    "  --data DIR           Fashion-MNIST directory (default " DATASET_DEFAULT_DIR ")\n"
    "Options:\n"
    "  --max-samples N      use at most N train and N test samples (fast tests)\n"
    "  --r R                SE reduction ratio of the model (default 8; must match\n"
    "                       the coordinator's)\n"
    "  --threads T          threads one training (and evaluation) computes on,\n"
    "                       each taking a slice of every mini-batch (default: one\n"
    "                       per core, at most 64)\n"
    MODEL_OPTS_USAGE
    "  --backoff-min-ms MS  first reconnect delay (default 200)\n"
    "  --backoff-max-ms MS  longest reconnect delay (default 30000)\n"
    "  --max-attempts N     stop (exit 1) after N failures in a row that only a\n"
    "                       person can fix: certificates not trusted, not naming\n"
    "                       the server, expired, refused (default 3); refused or\n"
    "                       dropped connections are retried without end\n"
    CONFIG_USAGE
    "Logs one line per event to stderr (SEFL_LOG=debug|info|warn|error).\n";

typedef struct {
    const char *server, *certs, *name, *db;
    const char *files[4];       /* train images, train labels, test images, test labels */
    const char *partition, *data_dir;
    long num_clients, index, max_samples, backoff_min, backoff_max, max_attempts, threads;
    model_opts model;           /* --arch, its options, --r */
    uint64_t seed;
    int have_seed;
} client_args;

typedef struct {
    uv_signal_t sig[2];
    session *s;
    int status;
} client_app;

/* Parses argv into a; returns 0, 1 for --help, or -1 with err. */
static int client_parse(int argc, char **argv, client_args *a, char *err)
{
    enum { O_SERVER = 256, O_CERTS, O_NAME, O_DB, O_TRI, O_TRL, O_TEI, O_TEL, O_PART, O_NUM,
           O_INDEX, O_SEED, O_DATA, O_MAX, O_R, O_BMIN, O_BMAX, O_ATTEMPTS, O_THREADS, O_HELP,
           O_MODEL = 512 };
    static const struct option opts[] = {
        { "server", 1, 0, O_SERVER }, { "certs", 1, 0, O_CERTS }, { "name", 1, 0, O_NAME },
        { "db", 1, 0, O_DB }, { "train-images", 1, 0, O_TRI }, { "train-labels", 1, 0, O_TRL },
        { "test-images", 1, 0, O_TEI }, { "test-labels", 1, 0, O_TEL },
        { "partition", 1, 0, O_PART }, { "num-clients", 1, 0, O_NUM }, { "index", 1, 0, O_INDEX },
        { "seed", 1, 0, O_SEED }, { "data", 1, 0, O_DATA }, { "max-samples", 1, 0, O_MAX },
        { "r", 1, 0, O_R }, { "backoff-min-ms", 1, 0, O_BMIN }, { "backoff-max-ms", 1, 0, O_BMAX },
        { "max-attempts", 1, 0, O_ATTEMPTS }, { "threads", 1, 0, O_THREADS },
        { "help", 0, 0, O_HELP }, MODEL_OPTS_LONGOPTS(O_MODEL), CONFIG_OPTIONS, { 0, 0, 0, 0 },
    };
    memset(a, 0, sizeof *a);
    a->num_clients = -1;
    a->index = -1;
    a->model = model_opts_default();
    a->backoff_min = SESSION_BACKOFF_MIN_MS;
    a->threads = cli_cores() < MODEL_MAX_THREADS ? cli_cores() : MODEL_MAX_THREADS;
    a->backoff_max = SESSION_BACKOFF_MAX_MS;
    a->max_attempts = SESSION_MAX_ATTEMPTS;
    if (config_begin("sefl-client", usage, opts, &argc, &argv, err)) return -1;
    opterr = 0;
    int c, rc = 0;
    long v = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_SERVER: a->server = optarg; break;
        case O_CERTS: a->certs = optarg; break;
        case O_NAME: a->name = optarg; break;
        case O_DB: a->db = optarg; break;
        case O_TRI: case O_TRL: case O_TEI: case O_TEL: a->files[c - O_TRI] = optarg; break;
        case O_PART: a->partition = optarg; break;
        case O_NUM: rc = cli_parse_long("--num-clients", optarg, 1, PARTITION_MAX_CLIENTS, &a->num_clients, err); break;
        case O_INDEX: rc = cli_parse_long("--index", optarg, 0, PARTITION_MAX_CLIENTS - 1, &a->index, err); break;
        case O_SEED: rc = cli_parse_u64("--seed", optarg, &a->seed, err); a->have_seed = 1; break;
        case O_DATA: a->data_dir = optarg; break;
        case O_MAX: rc = cli_parse_long("--max-samples", optarg, 1, DATASET_MAX_SAMPLES, &a->max_samples, err); break;
        case O_R:
            if (!(rc = cli_parse_long("--r", optarg, 1, 64, &v, err))) a->model.r = (int)v;
            break;
        case O_MODEL + MODEL_OPT_ARCH:
        case O_MODEL + MODEL_OPT_SE_PLACEMENT:
        case O_MODEL + MODEL_OPT_GATE: rc = model_opts_set(&a->model, c - O_MODEL, optarg, err); break;
        case O_BMIN: rc = cli_parse_long("--backoff-min-ms", optarg, 1, 3600000, &a->backoff_min, err); break;
        case O_BMAX: rc = cli_parse_long("--backoff-max-ms", optarg, 1, 3600000, &a->backoff_max, err); break;
        case O_THREADS: rc = cli_parse_long("--threads", optarg, 1, MODEL_MAX_THREADS, &a->threads, err); break;
        case O_ATTEMPTS: rc = cli_parse_long("--max-attempts", optarg, 1, 1000000, &a->max_attempts, err); break;
        case 'h':
        case O_HELP: return 1;
        default: rc = config_option(c, argv, err); break;
        }
    }
    if (rc < 0) {
        config_where(err);
        return -1;
    }
    if (cli_no_operands(argc, argv, err) < 0) return -1;
    if (!a->server || !a->certs || !a->name || !a->db) {
        err_set(err, "--server, --certs, --name and --db are required");
        return -1;
    }
    int nfiles = !!a->files[0] + !!a->files[1] + !!a->files[2] + !!a->files[3];
    if (nfiles && a->partition) {
        err_set(err, "give either the four IDX files or --partition, not both");
        return -1;
    }
    if (!a->partition && nfiles != 4) {
        err_set(err, "data: give --train-images, --train-labels, --test-images and --test-labels, "
                "or --partition with --num-clients, --index and --seed");
        return -1;
    }
    if (a->partition && (a->num_clients < 0 || a->index < 0 || !a->have_seed)) {
        err_set(err, "--partition needs --num-clients, --index and --seed");
        return -1;
    }
    if (a->partition && a->index >= a->num_clients) {
        err_set(err, "--index %ld must be below --num-clients %ld", a->index, a->num_clients);
        return -1;
    }
    if (setup_check_backoff(a->backoff_min, a->backoff_max, err) < 0) return -1;
    config_end();
    return 0;
}

static void client_signal_close_cb(uv_handle_t *h)
{
    (void)h;
}

static void client_on_event(session *s, const session_event *ev)
{
    client_app *app = session_user(s);
    if (ev->type != SESSION_FINISHED) return;
    app->status = ev->status;
    for (int i = 0; i < 2; i++) uv_close((uv_handle_t *)&app->sig[i], client_signal_close_cb);
}

static void client_on_signal(uv_signal_t *h, int signum)
{
    client_app *app = h->data;
    log_info("%s: signal %d: stopping", session_name(app->s), signum);
    session_stop(app->s);
}

int main(int argc, char **argv)
{
    char err[SEFL_ERRLEN];
    client_args a;
    int rc = client_parse(argc, argv, &a, err);
    if (rc == 1) {
        fputs(usage, stdout);
        fputs(testswitch_help(), stdout);
        return 0;
    }
    if (rc < 0) return cli_usage_error("sefl-client", err);

    param_table table;
    if (params_build(&table, &a.model, err) < 0) return cli_usage_error("sefl-client", err);

    dataset pool = { 0 }, test = { 0 };
    partition part = { 0 };
    trainer_data data;
    trainer *tr = NULL;
    modelcache *cache = NULL;
    client_app app = { .status = 0 };
    uv_loop_t loop;
    int loop_ok = 0, exit_code = 1;

    if (a.partition) {
        rc = setup_load_partition(a.data_dir, a.partition, (int)a.num_clients, a.seed, 1, &pool, &part, err);
        if (rc == 0) setup_client_data(&pool, &part, (int)a.index, (int)a.max_samples, &data);
    } else {
        rc = setup_load_files(a.files[0], a.files[1], a.files[2], a.files[3], (int)a.max_samples,
                            &pool, &test, &data, err);
    }
    if (rc < 0) goto fail;
    log_info("%s: %d train and %d test samples", a.name, data.n_train, data.n_test);

    /* One training at a time: one pool thread for it, one for name lookups. */
    if ((rc = setup_loop_init(&loop, 1, err)) < 0) goto fail;
    loop_ok = 1;
    if ((rc = trainer_new(&loop, &table, 1, &tr, err)) < 0) goto fail;
    if ((rc = trainer_set_job_threads(tr, (int)a.threads, err)) < 0) goto fail;
    if ((rc = setup_modelcache(tr, &cache, err)) < 0) goto fail;

    char part_name[SETUP_PARTITION_LEN];
    if (a.partition) setup_partition_name(part_name, a.partition, a.num_clients, a.seed, a.max_samples);
    session_config cfg = {
        .partition = a.partition ? part_name : NULL, .max_attempts = (int)a.max_attempts,
        .server = a.server, .certs_dir = a.certs, .name = a.name, .db_path = a.db, .data = data,
        .backoff_min_ms = (uint64_t)a.backoff_min, .backoff_max_ms = (uint64_t)a.backoff_max,
        .jitter_seed = (uint64_t)time(NULL) ^ (uint64_t)uv_os_getpid(),
        .on_event = client_on_event, .user = &app, .cache = cache,
    };
    int sigs[2] = { SIGINT, SIGTERM };
    for (int i = 0; i < 2; i++) {
        uv_signal_init(&loop, &app.sig[i]);
        app.sig[i].data = &app;
    }
    if ((rc = session_start(&loop, tr, &cfg, &app.s, err)) < 0) {
        for (int i = 0; i < 2; i++) uv_close((uv_handle_t *)&app.sig[i], client_signal_close_cb);
        uv_run(&loop, UV_RUN_DEFAULT);
        goto fail;
    }
    for (int i = 0; i < 2; i++) uv_signal_start(&app.sig[i], client_on_signal, sigs[i]);
    uv_run(&loop, UV_RUN_DEFAULT);
    session_free(app.s);
    exit_code = app.status < 0 ? 1 : 0;
    if (exit_code == 0) log_info("%s: finished", a.name);
    goto out;
fail:
    fprintf(stderr, "sefl-client: %s\n", err);
out:
    modelcache_free(cache);
    trainer_free(tr);
    if (loop_ok && uv_loop_close(&loop) != 0) log_warn("event loop closed with handles open");
    partition_free(&part);
    dataset_free(&pool);
    dataset_free(&test);
    return exit_code;
}
