/* sefl-server: the federated-learning coordinator daemon.
 *
 * Flags and signals only: the rounds are coord.c, the database state.c.
 * SIGTERM and SIGINT stop it cleanly (Bye{"shutdown"} to every client, the
 * database closed consistent, exit 0); after --rounds committed rounds it
 * sends Bye{"done"} and exits 0. Exit 2 on bad arguments and on start
 * failures that a restart cannot fix (server_start_status), 3 when the model
 * collapsed (coord.h, COORD_EXIT_COLLAPSED), 1 on the others and when its
 * database fails, so that a service manager restarts it only when that can
 * help (deploy/sefl-server.service: RestartPreventExitStatus=2 3).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/cli.h"
#include "common/fdlimit.h"
#include "common/memtune.h"
#include "common/config.h"
#include "server/coord.h"
#include "common/nn/model.h"
#include "common/log.h"
#include "common/nn/params.h"
#include "server/http.h"
#include "server/monitor.h"
#include "server/status_cli.h"

static const char usage[] =
    "usage: sefl-server --certs DIR --db FILE [options]\n"
    "       sefl-server status --http HOST:PORT [--json]   (see status --help)\n"
    "\n"
    "Coordinator of federated rounds: selects clients, sends them the shared\n"
    "part of the global model, aggregates their updates (FedAvg by number of\n"
    "training examples, or another --aggregate rule) and commits each round to\n"
    "FILE (SQLite). Restarted on\n"
    "the same FILE it resumes after the last committed round.\n"
    "\n"
    "  --listen HOST:PORT      address to listen on (default 0.0.0.0:7443; port 0\n"
    "                          picks one; the log says `listening HOST:PORT`)\n"
    "  --certs DIR             DIR/ca.crt, DIR/server.crt, DIR/server.key (sefl-certs)\n"
    "  --db FILE               server.db: created when missing, locked while running;\n"
    "                          an existing file must match --arch and its options,\n"
    "                          --private, --seed, --local-schedule, --private-lr, the\n"
    "                          guard's settings and the run settings it recorded\n"
    "                          (--allow-change)\n"
    "  --rounds R              exit 0 after R committed rounds (default 0: run until\n"
    "                          SIGTERM)\n"
    "  --clients-per-round K   updates that commit a round at once (default 10)\n"
    "  --min-clients M         clients needed to start a round, and updates needed to\n"
    "                          commit one at the deadline (default 2, at most K)\n"
    "  --over-select F         select ceil(K*F) clients, all when fewer are connected\n"
    "                          (default 1.3)\n"
    "  --round-timeout SEC     deadline of a round or an evaluation (default 300)\n"
    "  --eval-every E          EvalTask to every client every E rounds and after the\n"
    "                          last (default 5; 0: only after the last)\n"
    "  --private GROUPS        se, none, head or se,head: parameters that never leave\n"
    "                          the clients (default se)\n"
    "  --lr X                  local SGD learning rate (default 0.01)\n"
    "  --momentum X            local SGD momentum (default 0)\n"
    "  --weight-decay X        local SGD weight decay (default 0)\n"
    "  --prox-mu X             FedProx proximal term, 0 for FedAvg (default 0)\n"
    "  --batch B               local mini-batch size (default 10)\n"
    "  --epochs N              local epochs per round (default 1)\n"
    "  --local-schedule S      joint (default): every tensor trained together for\n"
    "                          --epochs; private-first:P (1..1000): the private\n"
    "                          tensors alone for P epochs with the shared ones frozen,\n"
    "                          then the shared ones for --epochs with the private\n"
    "                          ones frozen (FedRep's schedule); needs --private\n"
    "  --private-lr X          learning rate of the private tensors (default: --lr)\n"
    "  --seed S                initialisation seed of the model, also the rounds' task\n"
    "                          seeds (default 1)\n"
    "  --r R                   SE reduction ratio (default 8)\n"
    MODEL_OPTS_USAGE
    "  --heartbeat SEC         heartbeat to idle clients every SEC seconds; silent for\n"
    "                          3 of them closes the client (default 10)\n"
    "  --wire-dtype D          f32, f16 or int8: how the global model goes to the\n"
    "                          clients (default f32)\n"
    "  --update-dtype D        f32, f16 or int8: how clients send their updates; f16\n"
    "                          and int8 send the difference from the global model,\n"
    "                          int8 rounded stochastically (default f32)\n"
    "  --int8-scale S          channel or tensor: one int8 scale per output channel\n"
    "                          or one per tensor (default channel)\n"
    "  --model-refs on|off     send a model once per client process and a reference\n"
    "                          to it (its SHA-256) on the process's other\n"
    "                          connections, by the host token in their Hello; the\n"
    "                          clients get the same model either way (default on)\n"
    "  --eval-clients N|all    evaluate N connected clients, the same sample each\n"
    "                          time (smallest hash of seed and name), or all of them\n"
    "                          (default all)\n"
    "  --max-weight-share F    one update's most share of the selected clients'\n"
    "                          declared examples, (0, 1] (default 0.5; 1: no cap)\n"
    "  --max-update-norm V     bound on ||update - global||: Nx (N times the round's\n"
    "                          lower median), a number, or off (default 100x); a round\n"
    "                          over it is retried without that update\n"
    "  --penalty-rounds N      committed rounds a client sits out of selection after\n"
    "                          stalling, bad frames, a refused report or update, or\n"
    "                          a diverged training (default 3; kept in --db across\n"
    "                          restarts). An update over the norm bound, or bad\n"
    "                          frames or a stall for the second time in one round,\n"
    "                          also keep it out of the rest of that round,\n"
    "                          even when the others are fewer than --min-clients:\n"
    "                          the round then waits for more clients\n"
    "  --max-diverged-attempts N  stop the run (exit 3) when N attempts in a row at\n"
    "                          one round fail because the clients' training from the\n"
    "                          global model diverged or gave non-finite values: the\n"
    "                          model has collapsed and retrying cannot help (default\n"
    "                          3; 0: retry forever)\n"
    "  --preauth-per-addr N    connections from one address still in their TLS\n"
    "                          handshake at once (default 256; 0: no limit)\n"
    "  --handshakes-per-sec R  TLS handshakes one address may start per second\n"
    "                          (default 100; 0: no limit)\n"
    "  --handshake-burst N     ... and at once before that rate applies (default 256)\n"
    "  --http HOST:PORT        serve plain HTTP for monitoring (default off; e.g.\n"
    "                          " HTTP_SUGGESTED_ADDR "): /metrics (Prometheus), /status\n"
    "                          (JSON), /healthz, /readyz\n"
    "Aggregation (run settings: recorded in FILE like --lr):\n"
    "  --aggregate RULE        fedavg (example-weighted mean), median, trimmed:BETA\n"
    "                          (drop the BETA fraction at each end per coordinate),\n"
    "                          krum:F or multikrum:F,M (F attackers tolerated, needs\n"
    "                          K >= 2F+3; M updates averaged); default fedavg. The\n"
    "                          robust rules are unweighted and hold K updates\n"
    "  --max-agg-memory MB     refuse to start when the rule would hold more (default\n"
    "                          2048)\n"
    "  --clip NORM             scale each update (new - global) to L2 norm <= NORM\n"
    "                          before the rule (default 0: off)\n"
    "  --server-opt OPT        sgd, avgm, adam, yogi or adagrad over the aggregate\n"
    "                          (Reddi et al. 2021; default sgd)\n"
    "  --server-lr X           server learning rate (default 1: sgd is plain FedAvg)\n"
    "  --server-momentum X     avgm momentum (default 0.9)\n"
    "  --beta1 X, --beta2 X    adam/yogi/adagrad moments (default 0.9, 0.99)\n"
    "  --tau X                 adaptivity (default 0.001)\n"
    "  --dp-clip C             DP-FedAvg: clip each update to C, equal weights\n"
    "                          (needs --aggregate fedavg, excludes --clip)\n"
    "  --dp-noise Z            Gaussian noise of std Z*C/K on the mean (default 0)\n"
    "  --dp-delta D            epsilon is logged and stored per round at D (default 1e-5)\n"
    "  --allow-change          resume although a run setting (lr, momentum,\n"
    "                          weight-decay, prox-mu, batch, epochs, clients-per-round,\n"
    "                          min-clients, over-select) differs from the one FILE\n"
    "                          recorded; the change and its round are recorded\n"
    CONFIG_USAGE
    "Logs one line per event to stderr (SEFL_LOG=debug|info|warn|error).\n"
    "Exit status: 0 done or stopped; 2 bad arguments or configuration, including\n"
    "certificates that cannot be read and a database made for other settings\n"
    "(restarting cannot help); 3 the model collapsed (--max-diverged-attempts;\n"
    "restarting on the same FILE cannot help either); 1 any other failure (port in\n"
    "use, database locked by another coordinator, the database failing while\n"
    "running).\n";

typedef struct {
    coord *co;
    monitor *mon;               /* --http, else NULL */
    uv_signal_t sig[2];
} server_app;

static void server_on_signal(uv_signal_t *h, int signum)
{
    server_app *app = h->data;
    log_info("signal %d received", signum);
    coord_stop(app->co);
}

/* Parses --local-schedule: "joint" (0) or "private-first:P" (P epochs, 1..1000). */
static int server_parse_schedule(const char *s, int *private_epochs, char *err)
{
    static const char pf[] = "private-first:";
    long v;
    if (!strcmp(s, "joint")) {
        *private_epochs = 0;
        return 0;
    }
    if (strncmp(s, pf, sizeof pf - 1) ||
        cli_parse_long("--local-schedule private-first:P", s + sizeof pf - 1, 1, 1000, &v, err)) {
        err_set(err, "--local-schedule must be joint or private-first:P (P 1..1000), got '%s'", s);
        return -1;
    }
    *private_epochs = (int)v;
    return 0;
}

/* Parses argv into c; returns 0, 1 for --help, or -1 with err. */
static int server_parse(int argc, char **argv, coord_config *c, const char **http_addr, char *err)
{
    enum { O_LISTEN = 256, O_CERTS, O_DB, O_ROUNDS, O_K, O_M, O_F, O_TIMEOUT, O_EVAL, O_PRIV,
           O_LR, O_MOM, O_WD, O_MU, O_BATCH, O_EPOCHS, O_SEED, O_R, O_HB, O_SCHED, O_PLR,
           O_SHARE, O_NORM, O_PENALTY, O_PREAUTH, O_HSRATE, O_HSBURST, O_HTTP, O_ALLOW, O_HELP,
           O_AGG, O_AGGMEM, O_CLIP, O_SOPT, O_SLR, O_SMOM, O_B1, O_B2, O_TAU, O_DPCLIP, O_DPNOISE,
           O_DPDELTA, O_WIRE, O_UPD, O_SCALE, O_EVALN, O_REFS, O_DIVERGED, O_MODEL = 512 };
    static const struct option opts[] = {
        { "listen", 1, 0, O_LISTEN }, { "certs", 1, 0, O_CERTS }, { "db", 1, 0, O_DB },
        { "rounds", 1, 0, O_ROUNDS }, { "clients-per-round", 1, 0, O_K },
        { "min-clients", 1, 0, O_M }, { "over-select", 1, 0, O_F },
        { "round-timeout", 1, 0, O_TIMEOUT }, { "eval-every", 1, 0, O_EVAL },
        { "private", 1, 0, O_PRIV }, { "lr", 1, 0, O_LR }, { "momentum", 1, 0, O_MOM },
        { "weight-decay", 1, 0, O_WD }, { "prox-mu", 1, 0, O_MU }, { "batch", 1, 0, O_BATCH },
        { "epochs", 1, 0, O_EPOCHS }, { "seed", 1, 0, O_SEED }, { "r", 1, 0, O_R },
        { "heartbeat", 1, 0, O_HB }, { "local-schedule", 1, 0, O_SCHED },
        { "private-lr", 1, 0, O_PLR }, { "max-weight-share", 1, 0, O_SHARE },
        { "max-update-norm", 1, 0, O_NORM }, { "penalty-rounds", 1, 0, O_PENALTY },
        { "preauth-per-addr", 1, 0, O_PREAUTH }, { "handshakes-per-sec", 1, 0, O_HSRATE },
        { "handshake-burst", 1, 0, O_HSBURST }, { "http", 1, 0, O_HTTP },
        { "aggregate", 1, 0, O_AGG }, { "max-agg-memory", 1, 0, O_AGGMEM }, { "clip", 1, 0, O_CLIP },
        { "server-opt", 1, 0, O_SOPT }, { "server-lr", 1, 0, O_SLR },
        { "server-momentum", 1, 0, O_SMOM }, { "beta1", 1, 0, O_B1 }, { "beta2", 1, 0, O_B2 },
        { "tau", 1, 0, O_TAU }, { "dp-clip", 1, 0, O_DPCLIP }, { "dp-noise", 1, 0, O_DPNOISE },
        { "dp-delta", 1, 0, O_DPDELTA }, { "wire-dtype", 1, 0, O_WIRE },
        { "update-dtype", 1, 0, O_UPD }, { "int8-scale", 1, 0, O_SCALE },
        { "eval-clients", 1, 0, O_EVALN }, { "model-refs", 1, 0, O_REFS },
        { "max-diverged-attempts", 1, 0, O_DIVERGED },
        { "allow-change", 0, 0, O_ALLOW }, { "help", 0, 0, O_HELP }, MODEL_OPTS_LONGOPTS(O_MODEL),
        CONFIG_OPTIONS, { 0, 0, 0, 0 },
    };
    coord_config_default(c);
    c->certs_dir = c->db_path = NULL;
    if (config_begin("sefl-server", usage, opts, &argc, &argv, err)) return -1;
    opterr = 0;
    int opt, rc = 0;
    long v = 0;
    double d = 0, clip = 0, dp_clip = 0;
    const char *wire = "f32", *update = "f32", *scale = "channel";
    while (rc == 0 && (opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case O_LISTEN: c->listen = optarg; break;
        case O_CERTS: c->certs_dir = optarg; break;
        case O_DB: c->db_path = optarg; break;
        case O_ROUNDS:
            if (!(rc = cli_parse_long("--rounds", optarg, 0, 1000000, &v, err))) c->rounds = (int)v;
            break;
        case O_K:
            if (!(rc = cli_parse_long("--clients-per-round", optarg, 1, 100000, &v, err)))
                c->clients_per_round = (int)v;
            break;
        case O_M:
            if (!(rc = cli_parse_long("--min-clients", optarg, 1, 100000, &v, err)))
                c->min_clients = (int)v;
            break;
        case O_F: rc = cli_parse_double("--over-select", optarg, 1, 10, &c->over_select, err); break;
        case O_TIMEOUT:
            rc = cli_parse_double("--round-timeout", optarg, 0.1, 86400, &c->round_timeout, err);
            break;
        case O_EVAL:
            if (!(rc = cli_parse_long("--eval-every", optarg, 0, 1000000, &v, err)))
                c->eval_every = (int)v;
            break;
        case O_PRIV: rc = params_parse_private(optarg, &c->private_mask, err); break;
        case O_LR:
            if (!(rc = cli_parse_double("--lr", optarg, 0, 100, &d, err))) c->lr = (float)d;
            break;
        case O_MOM:
            if (!(rc = cli_parse_double("--momentum", optarg, 0, 1, &d, err))) c->momentum = (float)d;
            break;
        case O_WD:
            if (!(rc = cli_parse_double("--weight-decay", optarg, 0, 1, &d, err)))
                c->weight_decay = (float)d;
            break;
        case O_MU:
            if (!(rc = cli_parse_double("--prox-mu", optarg, 0, 100, &d, err))) c->prox_mu = (float)d;
            break;
        case O_BATCH:
            if (!(rc = cli_parse_long("--batch", optarg, 1, MODEL_MAX_BATCH, &v, err))) c->batch = (int)v;
            break;
        case O_EPOCHS:
            if (!(rc = cli_parse_long("--epochs", optarg, 1, 1000, &v, err))) c->epochs = (int)v;
            break;
        case O_SEED: rc = cli_parse_u64("--seed", optarg, &c->seed, err); break;
        case O_R:
            if (!(rc = cli_parse_long("--r", optarg, 1, 64, &v, err))) c->model.r = (int)v;
            break;
        case O_MODEL + MODEL_OPT_ARCH:
        case O_MODEL + MODEL_OPT_SE_PLACEMENT:
        case O_MODEL + MODEL_OPT_GATE: rc = model_opts_set(&c->model, opt - O_MODEL, optarg, err); break;
        case O_HB:
            if (!(rc = cli_parse_long("--heartbeat", optarg, 1, 3600, &v, err))) c->heartbeat = (int)v;
            break;
        case O_SCHED: rc = server_parse_schedule(optarg, &c->private_epochs, err); break;
        case O_PLR:
            if (!(rc = cli_parse_double("--private-lr", optarg, 1e-9, 100, &d, err))) c->private_lr = (float)d;
            break;
        case O_WIRE: wire = optarg; break;
        case O_UPD: update = optarg; break;
        case O_SCALE: scale = optarg; break;
        case O_EVALN:
            if (!strcmp(optarg, "all")) c->eval_clients = 0;
            else if (!(rc = cli_parse_long("--eval-clients", optarg, 1, 1000000, &v, err)))
                c->eval_clients = (int)v;
            break;
        case O_REFS:
            if (!strcmp(optarg, "on") || !strcmp(optarg, "off")) c->model_refs = !strcmp(optarg, "on");
            else {
                err_set(err, "--model-refs must be on or off, got '%s'", optarg);
                rc = -1;
            }
            break;
        case O_SHARE:
            rc = cli_parse_double("--max-weight-share", optarg, 1e-6, 1, &c->guard.max_weight_share,
                                  err);
            break;
        case O_NORM: rc = guard_parse_norm(optarg, &c->guard, err); break;
        case O_PENALTY:
            if (!(rc = cli_parse_long("--penalty-rounds", optarg, 0, 1000000, &v, err)))
                c->guard.penalty_rounds = (int)v;
            break;
        case O_DIVERGED:
            if (!(rc = cli_parse_long("--max-diverged-attempts", optarg, 0, 1000000, &v, err)))
                c->max_diverged_attempts = (int)v;
            break;
        case O_PREAUTH:
            if (!(rc = cli_parse_long("--preauth-per-addr", optarg, 0, 1000000, &v, err)))
                c->preauth.max_per_addr = (int)v;
            break;
        case O_HSRATE:
            rc = cli_parse_double("--handshakes-per-sec", optarg, 0, 1e6, &c->preauth.per_sec, err);
            break;
        case O_HSBURST:
            if (!(rc = cli_parse_long("--handshake-burst", optarg, 1, 1000000, &v, err)))
                c->preauth.burst = (int)v;
            break;
        case O_AGG: rc = strategy_parse(optarg, &c->agg, err); break;
        case O_AGGMEM:
            if (!(rc = cli_parse_long("--max-agg-memory", optarg, 1, 1L << 30, &v, err)))
                c->max_agg_memory = (uint64_t)v << 20;
            break;
        case O_CLIP: rc = cli_parse_double("--clip", optarg, 0, 1e30, &clip, err); break;
        case O_SOPT: rc = sopt_parse(optarg, &c->opt, err); break;
        case O_SLR: rc = cli_parse_double("--server-lr", optarg, 0, 1000, &c->opt.lr, err); break;
        case O_SMOM:
            rc = cli_parse_double("--server-momentum", optarg, 0, 1, &c->opt.momentum, err);
            break;
        case O_B1: rc = cli_parse_double("--beta1", optarg, 0, 1, &c->opt.beta1, err); break;
        case O_B2: rc = cli_parse_double("--beta2", optarg, 0, 1, &c->opt.beta2, err); break;
        case O_TAU: rc = cli_parse_double("--tau", optarg, 1e-12, 1, &c->opt.tau, err); break;
        case O_DPCLIP: rc = cli_parse_double("--dp-clip", optarg, 1e-12, 1e30, &dp_clip, err); break;
        case O_DPNOISE:
            rc = cli_parse_double("--dp-noise", optarg, 0, 1000, &c->agg.dp_noise, err);
            break;
        case O_DPDELTA:
            rc = cli_parse_double("--dp-delta", optarg, 1e-300, 0.5, &c->dp_delta, err);
            break;
        case O_HTTP: {
            char host[HTTP_HOST_MAX + 1], port[6];
            rc = http_split_addr(optarg, host, port, err);
            *http_addr = optarg;
            break;
        }
        case O_ALLOW: c->allow_change = 1; break;
        case 'h':
        case O_HELP: return 1;
        default: rc = config_option(opt, argv, err); break;
        }
    }
    if (rc < 0) {
        config_where(err);
        return -1;
    }
    if (cli_no_operands(argc, argv, err) < 0) return -1;
    if (strcmp(scale, "channel") && strcmp(scale, "tensor")) {
        err_set(err, "--int8-scale must be channel or tensor, got '%s'", scale);
        return -1;
    }
    if (wire_enc_parse("--wire-dtype", wire, !strcmp(scale, "channel"), &c->wire, err) < 0 ||
        wire_enc_parse("--update-dtype", update, !strcmp(scale, "channel"), &c->update, err) < 0)
        return -1;
    if (!c->certs_dir || !c->db_path) {
        err_set(err, "--certs and --db are required");
        return -1;
    }
    if (clip > 0 && dp_clip > 0) {
        err_set(err, "--clip and --dp-clip both clip each update; give one");
        return -1;
    }
    if (c->agg.dp_noise > 0 && !(dp_clip > 0)) {
        err_set(err, "--dp-noise needs --dp-clip (the noise is a multiple of the clip)");
        return -1;
    }
    c->agg.clip = dp_clip > 0 ? dp_clip : clip;
    c->agg.dp = dp_clip > 0;
    if (c->min_clients > c->clients_per_round) {
        err_set(err, "--min-clients %d is more than --clients-per-round %d", c->min_clients,
                c->clients_per_round);
        return -1;
    }
    if (c->private_epochs > 0 && !c->private_mask) {
        err_set(err, "--local-schedule private-first needs private tensors; --private is none");
        return -1;
    }
    /* Checked here so that a bad model option is a usage error, not a
     * start failure. */
    param_table t;
    if (params_build(&t, &c->model, err)) return -1;
    config_end();
    return 0;
}

/* Raises the open-files limit to the hard limit (one descriptor per
 * client; common/fdlimit), logs what it has, and keeps a reserve out of the
 * connections' budget so that the database, certificates and logs never run
 * out. A limit that cannot be raised leaves the budget on what there is. */
static void server_raise_nofile(coord_config *cfg)
{
    fdlimit_info fl;
    char err[SEFL_ERRLEN];
    if (fdlimit_raise(0, NULL, &fl, err) < 0) {
        log_warn("%s", err);
        if (fl.now == 0) return;
    }
    /* + 1: the database's lock (store_lock), open for the process's life. */
    long reserve = (fl.now > 256 ? 64 : fl.now / 4) + 1;
    cfg->preauth.max_open = (int)(fl.now - reserve > 1000000 ? 1000000 : fl.now - reserve);
    log_info("open files limit %ld (was %ld, hard limit %ld): at most %d connections at once",
             fl.now, fl.was, fl.hard == FDLIMIT_UNLIMITED ? -1L : fl.hard, cfg->preauth.max_open);
}

/* A failed start that only a person can fix is a configuration error:
 * files missing, unreadable or not what they must be (certificates, a
 * database of another run or kind), a setting the database refuses. */
static int server_start_status(int ret)
{
    switch (ret) {
    case -EINVAL: case -ENOENT: case -EACCES: case -EPERM: case -EBADMSG: case -ENOTDIR:
    case -EISDIR: case -ENAMETOOLONG:
        return 2;
    default:
        return 1;
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "status")) return status_cli_main(argc - 1, argv + 1);
    coord_config cfg;
    const char *http_addr = NULL;
    char err[SEFL_ERRLEN] = "";
    memtune_init();
    int rc = server_parse(argc, argv, &cfg, &http_addr, err);
    if (rc == 1) {
        fputs(usage, stdout);
        return 0;
    }
    if (rc < 0) return cli_usage_error("sefl-server", err);
    /* A peer that vanishes mid-write must be an error on that connection,
     * not the end of the process. */
    signal(SIGPIPE, SIG_IGN);
    server_raise_nofile(&cfg);

    uv_loop_t loop;
    uv_loop_init(&loop);
    server_app app = { 0 };
    /* The HTTP port first: when it is taken, no database is made. */
    if ((http_addr && (rc = monitor_start(&loop, http_addr, &app.mon, err))) ||
        (rc = coord_start(&loop, &cfg, &app.co, err))) {
        fprintf(stderr, "sefl-server: %s\n", err);
        monitor_free(app.mon);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return server_start_status(rc);
    }
    if (app.mon) monitor_attach(app.mon, app.co);
    const int signums[2] = { SIGTERM, SIGINT };
    for (int i = 0; i < 2; i++) {
        uv_signal_init(&loop, &app.sig[i]);
        app.sig[i].data = &app;
        uv_signal_start(&app.sig[i], server_on_signal, signums[i]);
        /* The signal watchers must not keep the loop alive on their own:
         * the loop ends when the coord has closed everything. */
        uv_unref((uv_handle_t *)&app.sig[i]);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 2; i++) uv_close((uv_handle_t *)&app.sig[i], NULL);
    monitor_close(app.mon);
    uv_run(&loop, UV_RUN_DEFAULT);
    monitor_free(app.mon);
    int status = coord_exit_status(app.co);
    coord_free(app.co);
    if (uv_loop_close(&loop)) log_warn("loop closed with handles still open");
    log_info("exit %d", status);
    return status;
}
