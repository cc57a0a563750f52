/* sefl-aggbench: the memory and time of an aggregation strategy at the
 * coordinator, fed K simulated updates of the real shared set's size.
 *
 * Builds the default model's table (model_opts_default, --private se, as
 * sefl-server does by default), creates the strategy the coordinator would
 * (--aggregate RULE, at most K updates), then folds in K updates of random
 * values around a random global model, one at a time through one buffer as
 * the coordinator decodes them, and aggregates. Prints `name value` lines:
 * floats, updates, strategy_mb (strategy_memory), peak_rss_mb (getrusage:
 * the whole process, the table and the three buffers of n floats included;
 * MB = 1e6 bytes), add_seconds (folding the K updates in), finish_seconds.
 * One strategy per process, so the peak RSS is its own.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <uv.h>

#include "common/cli.h"
#include "common/log.h"
#include "common/nn/params.h"
#include "common/rng.h"
#include "server/strategy.h"

static const char usage[] =
    "usage: sefl-aggbench --aggregate RULE --updates K\n"
    "Feeds K simulated updates of the default model's shared set (private se) to the\n"
    "aggregation strategy RULE (sefl-server --aggregate) and prints peak_rss_mb,\n"
    "strategy_mb, add_seconds and finish_seconds as `name value` lines.\n";

int main(int argc, char **argv)
{
    enum { O_AGG = 256, O_K, O_HELP };
    static const struct option opts[] = {
        { "aggregate", 1, 0, O_AGG }, { "updates", 1, 0, O_K }, { "help", 0, 0, O_HELP },
        { 0, 0, 0, 0 },
    };
    char err[SEFL_ERRLEN];
    strategy_spec sp = { .rule = STRATEGY_FEDAVG };
    long k = 0;
    int opt, rc = 0;
    opterr = 0;
    while (rc == 0 && (opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case O_AGG: rc = strategy_parse(optarg, &sp, err); break;
        case O_K: rc = cli_parse_long("--updates", optarg, 1, 100000, &k, err); break;
        case O_HELP: fputs(usage, stdout); return 0;
        default: cli_bad_option(argv, err); rc = -1; break;
        }
    }
    if (rc == 0 && k == 0) {
        err_set(err, "--updates is required");
        rc = -1;
    }
    if (rc < 0 || cli_no_operands(argc, argv, err) < 0) return cli_usage_error("sefl-aggbench", err);

    param_table t;
    model_opts mo = model_opts_default();   /* what sefl-server builds by default */
    if (params_build(&t, &mo, err)) return cli_usage_error("sefl-aggbench", err);
    size_t n = params_count(&t, params_shared(PARAM_SE));
    if (strategy_check(&sp, n, (int)k, STRATEGY_MAX_AGG_MEMORY, err)) {
        fprintf(stderr, "sefl-aggbench: %s\n", err);
        return 1;
    }
    strategy *s = NULL;
    float *global = malloc(n * sizeof *global), *v = malloc(n * sizeof *v);
    float *noise = malloc(n * sizeof *noise);
    if (!global || !v || !noise || strategy_new(&sp, n, (int)k, &s, err)) {
        fprintf(stderr, "sefl-aggbench: out of memory\n");
        return 1;
    }
    rng r;
    rng_seed(&r, 1);
    for (size_t j = 0; j < n; j++) {
        global[j] = (float)(0.05 * rng_normal(&r));
        noise[j] = (float)(1e-3 * rng_normal(&r));
    }
    strategy_begin(s, global);
    uint64_t t0 = uv_hrtime();
    for (long i = 0; i < k; i++) {
        /* Update i: the noise rotated by a prime stride, so updates differ
         * without the cost of drawing each anew. */
        size_t off = (size_t)i * 7919 % n;
        for (size_t j = 0; j < n; j++) v[j] = global[j] + noise[(j + off) % n];
        if (strategy_add(s, v, 100, 1, 0.5f)) {
            fprintf(stderr, "sefl-aggbench: update %ld refused\n", i);
            return 1;
        }
    }
    uint64_t t1 = uv_hrtime();
    strategy_finish(s, 1, v);
    uint64_t t2 = uv_hrtime();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("floats %zu\nupdates %ld\nstrategy_mb %.1f\npeak_rss_mb %.1f\nadd_seconds %.3f\n"
           "finish_seconds %.3f\n",
           n, k, strategy_memory(&sp, n, (int)k) / 1e6, ru.ru_maxrss * 1024 / 1e6,
           (double)(t1 - t0) / 1e9, (double)(t2 - t1) / 1e9);
    strategy_free(s);
    free(global);
    free(v);
    free(noise);
    return 0;
}
