/* sefl-sim: many simulated federated clients in one process.
 *
 * Every client of the process is a session (session.h), the same code as
 * sefl-client, with its own certificate (client-%04d for client id i), its
 * own mutual-TLS connection and its own private SQLite file
 * (STATE/client-%04d.db); all share one libuv loop and one trainer, which
 * runs at most --threads trainings at once on the libuv thread pool. The
 * dataset is loaded and partitioned once per process; an idle client holds
 * no model. --shard I/N runs the I-th of N contiguous slices of the client
 * ids, so N machines running the same command together run every client
 * exactly once. --holdout H never runs the last H client ids (of the whole
 * partition, whatever the shard): they keep their share of the data but
 * take part in no round, the newcomers sefl-eval --newcomers adapts.
 *
 * --local-only trains every client of the slice on its own data alone (no
 * coordinator) for --rounds rounds of --epochs epochs, evaluating after each
 * round, and writes the EvalReports into --db in server.db's schema with
 * meta kind 'local', the baseline sefl-eval compares against.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "client/attack.h"
#include "client/setup.h"
#include "client/testswitch.h"
#include "common/cli.h"
#include "common/fdlimit.h"
#include "common/memtune.h"
#include "common/config.h"
#include "common/log.h"
#include "common/nn/model.h"
#include "common/nn/params.h"
#include "common/net/rxlimit.h"
#include "common/net/tls.h"
#include "client/pstore.h"
#include "common/rng.h"
#include "client/session.h"
#include "common/fl/state.h"
#include "client/trainer.h"
#include "common/fl/wire.h"

#define SIM_NAME_LEN 32
#define SIM_PATH_MAX 4096
#define SIM_PROGRESS_MS 500
/* Large frames (a task with the model: 2.3 MB at the default model) being
 * received at once, by default. Each costs its bytes twice while it is
 * decoded (the frame and the unpacked message), about 37 MB for 8, and one
 * loop thread decodes them one at a time anyway: more would only buffer. */
#define SIM_INFLIGHT_DEFAULT 8
#define SIM_LARGE_FRAME (64u << 10)   /* frames over this take a slot */

static const char usage[] =
    "usage: sefl-sim --server HOST:PORT --certs DIR --clients N --partition SPEC --seed S\n"
    "                --state DIR [--shard I/N] [options]\n"
    "       sefl-sim --local-only --clients N --partition SPEC --seed S --state DIR --db FILE\n"
    "                --rounds R [--epochs E --batch B --lr L ...] [--shard I/N]\n"
    "\n"
    "Runs simulated clients of one deterministic partition of the pooled 70,000\n"
    "Fashion-MNIST samples in one process: one libuv loop, one mutual-TLS\n"
    "connection per client (certificate DIR/clients/client-%04d for client id i),\n"
    "trainings on the libuv thread pool, one private SQLite file per client.\n"
    "\n"
    "  --server HOST:PORT   coordinator; HOST must match its certificate\n"
    "  --certs DIR          sefl-certs output (ca.crt, clients/client-NNNN.crt|.key)\n"
    "  --clients N          clients in the partition (1..100000)\n"
    "  --partition SPEC     iid, dir:ALPHA, pat:K, feat:D, feat:D+dir:ALPHA or draw:N\n"
    "  --seed S             partition seed (the same on every machine)\n"
    "  --state DIR          private stores: DIR/client-NNNN.db (local-only:\n"
    "                       DIR/client-NNNN.local.db); created when missing\n"
    "  --shard I/N          run only the I-th (0-based) of N contiguous slices of\n"
    "                       the client ids: ids [I*clients/N, (I+1)*clients/N)\n"
    "                       (auto: I and N from a Kubernetes Indexed Job,\n"
    "                       JOB_COMPLETION_INDEX and JOB_COMPLETIONS, or a Slurm\n"
    "                       array, SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT)\n"
    "  --holdout H          never run the last H client ids (held out of every\n"
    "                       round; sefl-eval --newcomers adapts them later)\n"
    "  --threads T          trainings at once (default: one per usable core: the\n"
    "                       CPU affinity mask, capped by the cgroup CPU quota)\n"
    "  --threads-per-training P  threads each of those trainings splits its\n"
    "                       mini-batches across (default 1: with many clients,\n"
    "                       T trainings at once already fill the cores; up to\n"
    "                       T x P threads compute at once)\n"
    "  --data DIR           Fashion-MNIST directory (default " DATASET_DEFAULT_DIR ")\n"
    "  --max-samples N      each client uses at most N train and N test samples\n"
    "  --r R                SE reduction ratio (default 8; must match the coordinator)\n"
    MODEL_OPTS_USAGE
    "  --backoff-min-ms MS  first reconnect delay (default 200)\n"
    "  --backoff-max-ms MS  longest reconnect delay (default 30000)\n"
    "  --max-attempts N     a client stops after N failures in a row that only a\n"
    "                       person can fix (certificates; see sefl-client --help)\n"
    "                       (default 3)\n"
    "  --max-inflight-frames N  large frames (over 64 KiB: tasks carrying the\n"
    "                       model) received and decoded at once, over all clients\n"
    "                       (default 8; 0: no bound); the other clients stop\n"
    "                       reading until a slot frees, so the coordinator waits\n"
    "                       (TCP flow control) instead of sefl-sim buffering\n"
    "  --verbose            log every client's events, not one line per round\n"
    "Local-only baseline (no coordinator):\n"
    "  --local-only         train each client on its own data alone\n"
    "  --db FILE            where the EvalReports go (server.db schema, kind 'local')\n"
    "  --rounds R           rounds (each: E epochs, then an evaluation); clients\n"
    "                       whose files hold k rounds go on from round k+1\n"
    "  --epochs E           local epochs per round (default 1)\n"
    "  --batch B            batch size (default 10)\n"
    "  --lr L               learning rate (default 0.005)\n"
    "  --momentum M         (default 0)\n"
    "  --weight-decay W     (default 0)\n"
    "  --init-seed S        model initialisation seed (default: --seed)\n"
    "TEST TOOL, to measure aggregation rules (never for real clients):\n"
    "  --attack KIND        the attacking clients poison their updates: signflip\n"
    "                       (global - u), scale:S (global + S*u), gauss:SIGMA\n"
    "                       (global + noise), nan (must be refused), labelflip\n"
    "                       (train on labels 9 - y); u = trained - global\n"
    "  --attackers F        fraction of the partition's clients attacking: the\n"
    "                       first ceil(F * N) client ids (default 0.2 with --attack)\n"
    CONFIG_USAGE
    "Progress: a refreshing line on a terminal, else one log line per round.\n";

typedef struct {
    const char *server, *certs, *partition, *state_dir, *data_dir, *db;
    long clients, shard_i, shard_n, threads, job_threads, max_samples, backoff_min, backoff_max, holdout;
    model_opts model;           /* --arch, its options, --r */
    long rounds, epochs, batch, max_attempts, max_inflight;
    double lr, momentum, weight_decay;
    attack_spec attack;
    double attackers;
    uint64_t seed, init_seed;
    int have_seed, have_init_seed, local_only, verbose;
} sim_args;

typedef struct sim sim;

/* One simulated client. */
typedef struct {
    sim *sim;
    int id;                     /* client id in the partition */
    char name[SIM_NAME_LEN];    /* client-%04d */
    char *db;                   /* its pstore path */
    trainer_data data;
    session *s;                 /* federated mode */
    int attacker;               /* --attack applies to it */
    uint32_t resume;            /* local-only: rounds its file already holds */
    int connected;              /* welcomed, and the connection not closed since */
    int finished;
} sim_client;

/* Figures of the round in progress (federated: the newest TrainTask round). */
typedef struct {
    uint32_t round;
    int trained;                /* clients whose training of this round finished */
    int evaluated;
    double samples;             /* examples x epochs trained in this round */
    uint64_t start_ns;
} sim_round;

struct sim {
    sim_args a;
    uv_loop_t *loop;
    trainer *tr;
    tls_ctx *tls;               /* federated: the CA and RNG every client's TLS shares */
    rxlimit *rx;                /* federated: --max-inflight-frames over every client */
    modelcache *cache;          /* federated: the model cache every session shares */
    param_table table;
    sim_client *cl;             /* (n) the clients of this shard */
    trainer_job *jobs;          /* (n) local-only: client i's job; NULL in federated
                                   mode, where a client holds no job of its own */
    int n;
    int live;                   /* clients not finished */
    int failed;                 /* clients that finished with an error */
    int connected;              /* clients with a welcomed connection */
    int tty;
    sim_round cur;
    double total_samples;
    double train_seconds;       /* summed wall time of the trainings themselves */
    double train_cpu;           /* and their CPU time */
    double eval_cpu;            /* CPU time of the evaluations (model_evaluate) */
    uint64_t start_ns;
    uv_timer_t progress;
    uv_signal_t sig[2];
    int stopping;
    state *out;                 /* local-only: the EvalReport database */
    uint8_t *flipped;           /* --attack labelflip: the pool's labels, 9 - y */
    char part_name[SETUP_PARTITION_LEN]; /* Hello.partition of every client */
};

/* How the clients' models arrived: in full, or by reference to a model
 * this process already held (issue 12: once per process, not per client). */
static void sim_cache_summary(const sim *m)
{
    if (!m->cache) return;
    modelcache_stats st;
    modelcache_get_stats(m->cache, &st);
    log_info("model references: %ld models received in full, %ld references resolved at once, "
             "%ld after waiting for another client's copy, %ld asked for in full", st.full,
             st.hits, st.waited, st.requested);
}

static int sim_parse_shard(const char *s, sim_args *a, char *err)
{
    if (!strcmp(s, "auto")) return cli_shard_auto(&a->shard_i, &a->shard_n, err);
    char *end = NULL;
    errno = 0;
    long i = strtol(s, &end, 10);
    if (errno || end == s || *end != '/') goto bad;
    const char *q = end + 1;
    long n = strtol(q, &end, 10);
    if (errno || end == q || *end || n < 1 || n > PARTITION_MAX_CLIENTS || i < 0 || i >= n) goto bad;
    a->shard_i = i;
    a->shard_n = n;
    return 0;
bad:
    err_set(err, "--shard must be I/N with 0 <= I < N, got '%s'", s);
    return -EINVAL;
}

/* Parses argv into a; returns 0, 1 for --help, or -1 with err. */
static int sim_parse(int argc, char **argv, sim_args *a, char *err)
{
    enum { O_SERVER = 256, O_CERTS, O_CLIENTS, O_PART, O_SEED, O_STATE, O_SHARD, O_THREADS, O_DATA,
           O_MAX, O_R, O_BMIN, O_BMAX, O_VERBOSE, O_LOCAL, O_DB, O_ROUNDS, O_EPOCHS, O_BATCH, O_LR,
           O_MOM, O_WD, O_INIT, O_ATTEMPTS, O_HOLDOUT, O_JOBTH, O_HELP, O_ATTACK, O_ATTACKERS, O_INFLIGHT,
           O_MODEL = 512 };
    static const struct option opts[] = {
        { "server", 1, 0, O_SERVER }, { "certs", 1, 0, O_CERTS }, { "clients", 1, 0, O_CLIENTS },
        { "partition", 1, 0, O_PART }, { "seed", 1, 0, O_SEED }, { "state", 1, 0, O_STATE },
        { "shard", 1, 0, O_SHARD }, { "threads", 1, 0, O_THREADS }, { "data", 1, 0, O_DATA },
        { "max-samples", 1, 0, O_MAX }, { "r", 1, 0, O_R }, { "backoff-min-ms", 1, 0, O_BMIN },
        { "backoff-max-ms", 1, 0, O_BMAX }, { "verbose", 0, 0, O_VERBOSE },
        { "local-only", 0, 0, O_LOCAL }, { "db", 1, 0, O_DB }, { "rounds", 1, 0, O_ROUNDS },
        { "epochs", 1, 0, O_EPOCHS }, { "batch", 1, 0, O_BATCH }, { "lr", 1, 0, O_LR },
        { "momentum", 1, 0, O_MOM }, { "weight-decay", 1, 0, O_WD }, { "init-seed", 1, 0, O_INIT },
        { "max-attempts", 1, 0, O_ATTEMPTS }, { "holdout", 1, 0, O_HOLDOUT },
        { "threads-per-training", 1, 0, O_JOBTH }, { "max-inflight-frames", 1, 0, O_INFLIGHT },
        { "help", 0, 0, O_HELP }, { "attack", 1, 0, O_ATTACK }, { "attackers", 1, 0, O_ATTACKERS },
        MODEL_OPTS_LONGOPTS(O_MODEL), CONFIG_OPTIONS, { 0, 0, 0, 0 },
    };
    memset(a, 0, sizeof *a);
    a->attackers = -1;
    a->shard_n = 1;
    a->threads = cli_cores();
    a->job_threads = 1;
    a->model = model_opts_default();
    a->backoff_min = SESSION_BACKOFF_MIN_MS;
    a->backoff_max = SESSION_BACKOFF_MAX_MS;
    a->max_attempts = SESSION_MAX_ATTEMPTS;
    a->max_inflight = SIM_INFLIGHT_DEFAULT;
    a->epochs = 1;
    a->batch = 10;
    a->lr = 0.005;
    if (config_begin("sefl-sim", usage, opts, &argc, &argv, err)) return -1;
    opterr = 0;
    int c, rc = 0;
    long v = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_SERVER: a->server = optarg; break;
        case O_CERTS: a->certs = optarg; break;
        case O_CLIENTS: rc = cli_parse_long("--clients", optarg, 1, PARTITION_MAX_CLIENTS, &a->clients, err); break;
        case O_PART: a->partition = optarg; break;
        case O_SEED: rc = cli_parse_u64("--seed", optarg, &a->seed, err); a->have_seed = 1; break;
        case O_STATE: a->state_dir = optarg; break;
        case O_SHARD: rc = sim_parse_shard(optarg, a, err); break;
        case O_THREADS: rc = cli_parse_long("--threads", optarg, 1, TRAINER_MAX_THREADS, &a->threads, err); break;
        case O_JOBTH: rc = cli_parse_long("--threads-per-training", optarg, 1, MODEL_MAX_THREADS, &a->job_threads, err); break;
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
        case O_ATTEMPTS: rc = cli_parse_long("--max-attempts", optarg, 1, 1000000, &a->max_attempts, err); break;
        case O_INFLIGHT: rc = cli_parse_long("--max-inflight-frames", optarg, 0, RXLIMIT_MAX_SLOTS, &a->max_inflight, err); break;
        case O_VERBOSE: a->verbose = 1; break;
        case O_LOCAL: a->local_only = 1; break;
        case O_DB: a->db = optarg; break;
        case O_ROUNDS: rc = cli_parse_long("--rounds", optarg, 1, 1000000, &a->rounds, err); break;
        case O_EPOCHS: rc = cli_parse_long("--epochs", optarg, 1, WIRE_MAX_EPOCHS, &a->epochs, err); break;
        case O_BATCH: rc = cli_parse_long("--batch", optarg, 1, MODEL_MAX_BATCH, &a->batch, err); break;
        case O_LR: rc = cli_parse_double("--lr", optarg, 1e-9, 100, &a->lr, err); break;
        case O_MOM: rc = cli_parse_double("--momentum", optarg, 0, 0.999, &a->momentum, err); break;
        case O_WD: rc = cli_parse_double("--weight-decay", optarg, 0, 1, &a->weight_decay, err); break;
        case O_INIT: rc = cli_parse_u64("--init-seed", optarg, &a->init_seed, err); a->have_init_seed = 1; break;
        case O_HOLDOUT: rc = cli_parse_long("--holdout", optarg, 0, PARTITION_MAX_CLIENTS - 1, &a->holdout, err); break;
        case O_ATTACK: rc = attack_parse(optarg, &a->attack, err); break;
        case O_ATTACKERS: rc = cli_parse_double("--attackers", optarg, 0, 1, &a->attackers, err); break;
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
    if (!a->clients || !a->partition || !a->have_seed || !a->state_dir) {
        err_set(err, "--clients, --partition, --seed and --state are required");
        return -1;
    }
    if (a->local_only && (!a->db || !a->rounds)) {
        err_set(err, "--local-only needs --db and --rounds");
        return -1;
    }
    if (!a->local_only && (!a->server || !a->certs)) {
        err_set(err, "--server and --certs are required (or --local-only)");
        return -1;
    }
    if (a->shard_n > a->clients) {
        err_set(err, "--shard N (%ld) must not exceed --clients (%ld)", a->shard_n, a->clients);
        return -1;
    }
    if (a->holdout >= a->clients) {
        err_set(err, "--holdout %ld leaves no client of --clients %ld to train", a->holdout, a->clients);
        return -1;
    }
    if (setup_check_backoff(a->backoff_min, a->backoff_max, err) < 0) return -1;
    if (a->attackers >= 0 && a->attack.kind == ATTACK_NONE) {
        err_set(err, "--attackers needs --attack");
        return -1;
    }
    if (a->attack.kind != ATTACK_NONE && a->local_only) {
        err_set(err, "--attack poisons federated updates; not with --local-only");
        return -1;
    }
    if (a->attackers < 0) a->attackers = 0.2;
    if (!a->have_init_seed) a->init_seed = a->seed;
    config_end();
    return 0;
}

static double sim_seconds_since(uint64_t ns)
{
    return (double)(uv_hrtime() - ns) / 1e9;
}

/* The progress line (terminal) or nothing; rounds are logged on change.
 * log_progress keeps it off the log lines' way. */
static void sim_progress_cb(uv_timer_t *t)
{
    sim *m = t->data;
    double dt = sim_seconds_since(m->cur.start_ns);
    char line[256];
    if (m->a.local_only)
        snprintf(line, sizeof line, "round %u | training %d, queued %d | trained %d of %d | failed %d"
                 " | %.0f samples/s", m->cur.round, trainer_running(m->tr), trainer_queued(m->tr),
                 m->cur.trained, m->n, m->failed, dt > 0 ? m->cur.samples / dt : 0.0);
    else
        snprintf(line, sizeof line, "round %u | connected %d, connecting %d, failed %d | training %d,"
                 " queued %d | trained %d, evaluated %d of %d | %.0f samples/s", m->cur.round,
                 m->connected, m->live - m->connected, m->failed, trainer_running(m->tr),
                 trainer_queued(m->tr), m->cur.trained, m->cur.evaluated, m->n,
                 dt > 0 ? m->cur.samples / dt : 0.0);
    log_progress(line);
}

/* Logs the figures of the round that just ended (one line per round). */
static void sim_round_end(sim *m)
{
    if (m->cur.round == 0 && m->cur.trained == 0 && m->cur.evaluated == 0) return;
    double dt = sim_seconds_since(m->cur.start_ns);
    log_info("round %u: %d of %d clients trained, %d evaluated, %.0f samples in %.1f s (%.0f samples/s)",
             m->cur.round, m->cur.trained, m->n, m->cur.evaluated, m->cur.samples, dt,
             dt > 0 ? m->cur.samples / dt : 0.0);
}

/* A round begins with its first TrainTask (federated) or with the first
 * client done with it (local-only, where the first round is timed from the
 * start of the run). */
static void sim_round_begin(sim *m, uint32_t round)
{
    uint64_t start = m->a.local_only && m->cur.round == 0 ? m->start_ns : uv_hrtime();
    sim_round_end(m);
    m->cur = (sim_round){ .round = round, .start_ns = start };
}

static void sim_handle_close_cb(uv_handle_t *h)
{
    (void)h;
}

/* The bound on large frames at work: how many came, how many were being
 * received at most at once, and how many had to wait for a slot. */
static void sim_log_inflight(const sim *m)
{
    if (!m->rx) return;
    rxlimit_stats st;
    rxlimit_get_stats(m->rx, &st);
    char bound[32];
    if (m->a.max_inflight) snprintf(bound, sizeof bound, "%ld", m->a.max_inflight);
    else snprintf(bound, sizeof bound, "0, no bound");
    log_info("large frames (over %zu bytes) received: %llu, at most %d at once "
             "(--max-inflight-frames %s), %llu waited for a slot", st.large,
             (unsigned long long)st.taken, st.peak, bound, (unsigned long long)st.waits);
}

/* Closes the process's own handles so that uv_run returns. */
static void sim_close_handles(sim *m)
{
    uv_close((uv_handle_t *)&m->progress, sim_handle_close_cb);
    for (int i = 0; i < 2; i++) uv_close((uv_handle_t *)&m->sig[i], sim_handle_close_cb);
    rxlimit_close(m->rx);
    m->rx = NULL;
}

/* The last client finished: close the process's own handles so uv_run returns. */
static void sim_client_finished(sim *m, sim_client *c, int status)
{
    c->finished = 1;
    if (status < 0) m->failed++;
    if (--m->live > 0) return;
    sim_round_end(m);
    double dt = sim_seconds_since(m->start_ns);
    /* busy: the share of the training threads' time spent training, the
     * rest being waits for tasks (communication, the coordinator, stragglers). */
    log_info("all %d clients finished (%d failed): %.0f samples trained in %.1f s, %.0f samples/s, "
             "training threads busy %.0f%%, training CPU %.1f s, evaluation CPU %.1f s", m->n,
             m->failed, m->total_samples, dt, dt > 0 ? m->total_samples / dt : 0.0,
             dt > 0 ? 100.0 * m->train_seconds / (dt * (double)m->a.threads) : 0.0, m->train_cpu,
             m->eval_cpu);
    sim_log_inflight(m);
    sim_close_handles(m);
}

static void sim_count_done(sim *m, int train, uint32_t round, int epochs, const model_stats *st,
                           double cpu, double eval_cpu)
{
    m->eval_cpu += eval_cpu;
    if (train && round > m->cur.round) sim_round_begin(m, round);
    if (round != m->cur.round) return;
    if (train) {
        double s = (double)st->examples * epochs;
        m->cur.trained++;
        m->cur.samples += s;
        m->total_samples += s;
        m->train_seconds += st->seconds;
        m->train_cpu += cpu;
    } else {
        m->cur.evaluated++;
    }
}

static void sim_on_event(session *s, const session_event *ev)
{
    sim_client *c = session_user(s);
    sim *m = c->sim;
    switch (ev->type) {
    case SESSION_WELCOMED:
        if (!c->connected) m->connected++;
        c->connected = 1;
        break;
    case SESSION_DISCONNECTED:
        if (c->connected) m->connected--;
        c->connected = 0;
        break;
    case SESSION_TASK_START:
        if (ev->train && ev->round > m->cur.round) sim_round_begin(m, ev->round);
        break;
    case SESSION_TASK_DONE:
        if (ev->status == 0) sim_count_done(m, ev->train, ev->round, ev->epochs, ev->stats, ev->train_cpu,
                                          ev->eval_cpu);
        break;
    case SESSION_FINISHED:
        /* A failed session has logged its error (session_fail). */
        if (c->connected) m->connected--;
        c->connected = 0;
        sim_client_finished(m, c, ev->status);
        break;
    default:
        break;
    }
}

static void sim_on_signal(uv_signal_t *h, int signum)
{
    sim *m = h->data;
    if (m->stopping) return;
    m->stopping = 1;
    log_info("signal %d: stopping %d clients", signum, m->live);
    for (int i = 0; i < m->n; i++)
        if (m->cl[i].s && !m->cl[i].finished) session_stop(m->cl[i].s);
}

/* The shuffle seed of a client's local round: distinct per client and round. */
static uint64_t sim_local_seed(const sim *m, const sim_client *c, uint32_t round)
{
    return rng_derive(rng_derive(m->a.seed, (uint64_t)c->id), round);
}

/* Local-only: one client's job of one round is over; record and go on. */
static void sim_local_done(trainer_job *j)
{
    sim_client *c = j->user;
    sim *m = c->sim;
    char err[SEFL_ERRLEN];
    if (j->status < 0) {
        log_error("%s: %s", c->name, j->err);
        sim_client_finished(m, c, j->status);
        return;
    }
    sim_count_done(m, 1, j->round, j->epochs, &j->train_stats, j->train_cpu, j->eval_cpu);
    sim_count_done(m, 0, j->round, 0, &j->eval_stats, 0, 0);
    if (state_eval_report(m->out, j->round, c->name, (uint32_t)j->eval_stats.examples,
                          j->eval_stats.accuracy, j->eval_stats.loss, err) < 0) {
        log_error("%s: %s", c->name, err);
        sim_client_finished(m, c, -EIO);
        return;
    }
    if (m->a.verbose)
        log_info("%s: round %u: train loss %.4f, accuracy %.4f on %ld test samples", c->name, j->round,
                 j->train_stats.loss, j->eval_stats.accuracy, j->eval_stats.examples);
    if ((long)j->round >= m->a.rounds || m->stopping) {
        sim_client_finished(m, c, 0);
        return;
    }
    j->round++;
    j->seed = sim_local_seed(m, c, j->round);
    trainer_submit(m->tr, j);
}

static void sim_local_signal(uv_signal_t *h, int signum)
{
    sim *m = h->data;
    if (!m->stopping) log_info("signal %d: stopping after the jobs in flight", signum);
    m->stopping = 1;
}

/* Local-only: reads the round each client's file already holds, so that a
 * second run with a larger --rounds goes on rather than training again
 * under round numbers already reported. Any unreadable file stops the run
 * before a client starts. */
static int sim_local_prepare(sim *m, char *err)
{
    for (int i = 0; i < m->n; i++) {
        sim_client *c = &m->cl[i];
        pstore *ps = NULL;
        int rc = pstore_open(c->db, c->name, &m->table, &ps, err);
        if (rc == 0) rc = pstore_round(ps, &c->resume, err);
        pstore_close(ps);
        if (rc < 0) return rc;
    }
    return 0;
}

static void sim_local_start(sim *m, sim_client *c)
{
    trainer_job *j = &m->jobs[c - m->cl];
    if ((long)c->resume >= m->a.rounds) {
        log_info("%s: already trained %u rounds", c->name, c->resume);
        sim_client_finished(m, c, 0);
        return;
    }
    memset(j, 0, sizeof *j);
    j->train = j->eval = 1;
    j->db_path = c->db;
    j->name = c->name;
    j->data = &c->data;
    j->init_seed = m->a.init_seed;
    j->private_mask = PARAM_ALL;   /* alone: the whole model is the client's */
    j->round = c->resume + 1;
    j->epochs = (int)m->a.epochs;
    j->batch = (int)m->a.batch;
    j->sgd = (sgd_config){ .lr = (float)m->a.lr, .momentum = (float)m->a.momentum,
                          .weight_decay = (float)m->a.weight_decay };
    j->seed = sim_local_seed(m, c, j->round);
    j->done = sim_local_done;
    j->user = c;
    trainer_submit(m->tr, j);
}

/* Opens the local-only EvalReport database (server.db schema, kind 'local'). */
static int sim_open_out(sim *m, char *err)
{
    model *init = model_new(&m->table, 1);
    if (!init) {
        err_set(err, "out of memory");
        return -ENOMEM;
    }
    model_init(init, m->a.init_seed);
    state_config sc = { .t = &m->table, .private_mask = PARAM_ALL, .init_seed = m->a.init_seed,
                        .kind = "local", .partition = m->a.partition };
    int rc = state_open(m->a.db, &sc, model_params(init), &m->out, err);
    model_free(init);
    return rc;
}

static int sim_mkdir(const char *dir, char *err)
{
    if (mkdir(dir, 0700) == 0 || errno == EEXIST) return 0;
    err_set(err, "cannot create --state %s: %s", dir, strerror(errno));
    return -errno;
}

static int sim_attackers(const sim *m)
{
    int k = 0;
    for (int i = 0; i < m->n; i++) k += m->cl[i].attacker;
    return k;
}

/* Starts client i of the shard (federated: its session; local: its first job). */
static int sim_start_client(sim *m, sim_client *c, char *err)
{
    if (m->a.local_only) {
        sim_local_start(m, c);
        return 0;
    }
    session_config cfg = {
        .server = m->a.server, .certs_dir = m->a.certs, .tls_shared = m->tls, .name = c->name, .db_path = c->db,
        .data = c->data, .backoff_min_ms = (uint64_t)m->a.backoff_min,
        .backoff_max_ms = (uint64_t)m->a.backoff_max,
        .jitter_seed = rng_derive(m->a.seed ^ uv_hrtime(), (uint64_t)c->id),
        .partition = m->part_name, .max_attempts = (int)m->a.max_attempts, .quiet = !m->a.verbose, .on_event = sim_on_event, .user = c,
        .attack = c->attacker ? &m->a.attack : NULL, .rx = m->rx, .cache = m->cache,
    };
    return session_start(m->loop, m->tr, &cfg, &c->s, err);
}

/* One socket per client, and per training at once a pstore file with its
 * journal, plus what the process holds anyway (data files, the loop's own). */
static int sim_fd_limit(const sim *m, long clients, char *err)
{
    char what[64];
    fdlimit_info fl;
    snprintf(what, sizeof what, "%ld clients", clients);
    const long need = (m->a.local_only ? 0 : clients) + 3 * m->a.threads + 64;
    int rc = fdlimit_raise(need, what, &fl, err);
    if (rc == 0) log_debug("sefl-sim: open-files limit %ld, about %ld needed", fl.now, need);
    return rc;
}

int main(int argc, char **argv)
{
    char err[SEFL_ERRLEN];
    sim m = { 0 };
    memtune_init();
    int rc = sim_parse(argc, argv, &m.a, err);
    if (rc == 1) {
        fputs(usage, stdout);
        fputs(testswitch_help(), stdout);
        return 0;
    }
    if (rc < 0) return cli_usage_error("sefl-sim", err);
    if (params_build(&m.table, &m.a.model, err) < 0) return cli_usage_error("sefl-sim", err);

    dataset pool = { 0 };
    partition part = { 0 };
    uv_loop_t loop;
    int loop_ok = 0, exit_code = 1, started = 0;
    long lo = m.a.shard_i * m.a.clients / m.a.shard_n;
    long hi = (m.a.shard_i + 1) * m.a.clients / m.a.shard_n;
    /* Held-out ids are cut from whichever slice holds them. */
    if (hi > m.a.clients - m.a.holdout) hi = m.a.clients - m.a.holdout;
    if (hi <= lo) {
        log_info("sefl-sim: clients %ld..%ld of this shard are all held out (--holdout %ld): nothing to run",
                 lo, (m.a.shard_i + 1) * m.a.clients / m.a.shard_n - 1, m.a.holdout);
        return 0;
    }

    setup_partition_name(m.part_name, m.a.partition, m.a.clients, m.a.seed, m.a.max_samples);
    if ((rc = sim_mkdir(m.a.state_dir, err)) < 0) goto fail;
    if ((rc = sim_fd_limit(&m, hi - lo, err)) < 0) goto fail;
    if ((rc = setup_load_partition(m.a.data_dir, m.a.partition, (int)m.a.clients, m.a.seed, 1, &pool, &part, err)) < 0)
        goto fail;
    m.n = (int)(hi - lo);
    m.cl = calloc((size_t)m.n, sizeof *m.cl);
    if (m.a.local_only) m.jobs = calloc((size_t)m.n, sizeof *m.jobs);
    if (!m.cl || (m.a.local_only && !m.jobs)) {
        err_set(err, "out of memory for %d clients", m.n);
        goto fail;
    }
    for (int i = 0; i < m.n; i++) {
        sim_client *c = &m.cl[i];
        size_t need = strlen(m.a.state_dir) + SIM_NAME_LEN + 16;
        c->sim = &m;
        c->id = (int)lo + i;
        snprintf(c->name, sizeof c->name, "client-%04d", c->id);
        if (need > SIM_PATH_MAX || !(c->db = malloc(need))) {
            err_set(err, "--state path too long or out of memory");
            goto fail;
        }
        snprintf(c->db, need, "%s/%s%s", m.a.state_dir, c->name, m.a.local_only ? ".local.db" : ".db");
        setup_client_data(&pool, &part, c->id, (int)m.a.max_samples, &c->data);
        c->attacker = m.a.attack.kind != ATTACK_NONE &&
                      c->id < attack_count(m.a.attackers, (int)m.a.clients);
        if (c->attacker && m.a.attack.kind == ATTACK_LABELFLIP) {
            if (!m.flipped && !(m.flipped = attack_flip_labels(pool.y, (size_t)pool.n))) {
                err_set(err, "out of memory for the flipped labels");
                goto fail;
            }
            c->data.train_y = m.flipped;
        }
    }
    if (m.a.attack.kind != ATTACK_NONE)
        log_warn("TEST TOOL: clients 0..%d of %ld attack (--attack), this shard runs %d of them",
                 attack_count(m.a.attackers, (int)m.a.clients) - 1, m.a.clients,
                 sim_attackers(&m));

    if ((rc = setup_loop_init(&loop, (int)m.a.threads, err)) < 0) goto fail;
    loop_ok = 1;
    m.loop = &loop;
    if ((rc = trainer_new(&loop, &m.table, (int)m.a.threads, &m.tr, err)) < 0 ||
        (rc = trainer_set_job_threads(m.tr, (int)m.a.job_threads, err)) < 0 ||
        (!m.a.local_only && (rc = setup_modelcache(m.tr, &m.cache, err)) < 0))
        goto fail;
    if (m.a.local_only && ((rc = sim_local_prepare(&m, err)) < 0 || (rc = sim_open_out(&m, err)) < 0))
        goto fail;
    if (!m.a.local_only && (rc = tls_ctx_new_shared(&m.tls, m.a.certs, err)) < 0) goto fail;
    /* Last of what can fail: its handle needs the loop run to close. 0 is
     * no bound, kept as a bound over every client so that the figures of
     * sim_log_inflight exist to compare with. */
    if (!m.a.local_only &&
        (rc = rxlimit_new(&loop, m.a.max_inflight ? (int)m.a.max_inflight : RXLIMIT_MAX_SLOTS,
                          SIM_LARGE_FRAME, &m.rx)) < 0) {
        err_set(err, "out of memory");
        goto fail;
    }

    m.tty = isatty(2);
    m.start_ns = uv_hrtime();
    m.cur.start_ns = m.start_ns;
    uv_timer_init(&loop, &m.progress);
    m.progress.data = &m;
    int sigs[2] = { SIGINT, SIGTERM };
    for (int i = 0; i < 2; i++) {
        uv_signal_init(&loop, &m.sig[i]);
        m.sig[i].data = &m;
    }
    log_info("sefl-sim: clients %ld..%ld of %ld (%s, seed %llu, %ld held out), %ld training threads%s",
             lo, hi - 1, m.a.clients, m.a.partition, (unsigned long long)m.a.seed, m.a.holdout,
             m.a.threads, m.a.local_only ? ", local-only" : "");

    /* Signals are taken before the clients start: starting thousands of
     * them takes a while, and a background process would otherwise ignore
     * SIGINT until then. The handlers run once the loop does. */
    for (int i = 0; i < 2; i++)
        uv_signal_start(&m.sig[i], m.a.local_only ? sim_local_signal : sim_on_signal, sigs[i]);
    m.live = m.n;
    for (int i = 0; i < m.n; i++, started++) {
        if ((rc = sim_start_client(&m, &m.cl[i], err)) < 0) break;
    }
    if (rc < 0) {
        /* A client that cannot start (bad certificate, foreign pstore) stops
         * the whole run: the others are stopped and the error reported. */
        fprintf(stderr, "sefl-sim: %s\n", err);
        m.live = started;
        m.stopping = 1;
        m.failed = 1;
        for (int i = 0; i < started; i++) session_stop(m.cl[i].s);
        if (started == 0) sim_close_handles(&m);
    } else if (m.live > 0 && m.tty) {
        /* (With every client already done, the handles are closed.) */
        uv_timer_start(&m.progress, sim_progress_cb, SIM_PROGRESS_MS, SIM_PROGRESS_MS);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    exit_code = m.failed ? 1 : 0;
    /* A federated run in which no client trained (wrong coordinator, a run
     * already over) did not do what was asked: a script must see that. */
    if (!m.a.local_only && !m.stopping && m.total_samples == 0 && !m.failed) {
        log_error("no client trained anything: was the run already finished?");
        exit_code = 1;
    }
    goto out;
fail:
    fprintf(stderr, "sefl-sim: %s\n", err);
out:
    for (int i = 0; m.cl && i < m.n; i++) {
        session_free(m.cl[i].s);
        free(m.cl[i].db);
    }
    free(m.cl);
    free(m.jobs);
    tls_ctx_free(m.tls);
    state_close(m.out);
    sim_cache_summary(&m);
    modelcache_free(m.cache);
    trainer_free(m.tr);
    if (loop_ok && uv_loop_close(&loop) != 0) log_warn("event loop closed with handles open");
    partition_free(&part);
    dataset_free(&pool);
    free(m.flipped);
    return exit_code;
}
