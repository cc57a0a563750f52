/* cli: flag parsing and usage errors shared by the sefl programs; client
 * data set-up and thread-pool sizing shared by sefl-client and sefl-sim;
 * see cli.h. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "model.h"

int cli_parse_long(const char *flag, const char *s, long min, long max, long *out, char *err)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        err_set(err, "%s must be an integer in %ld..%ld, got '%s'", flag, min, max, s);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

int cli_parse_u64(const char *flag, const char *s, uint64_t *out, char *err)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') {
        err_set(err, "%s must be a non-negative integer, got '%s'", flag, s);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *flag, const char *s, double min, double max, double *out, char *err)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < min || v > max) {
        err_set(err, "%s must be a number in [%g, %g], got '%s'", flag, min, max, s);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

int cli_bad_option(char *const argv[], char *err)
{
    err_set(err, "unknown or incomplete option '%s'", argv[optind - 1]);
    return -EINVAL;
}

int cli_no_operands(int argc, char *const argv[], char *err)
{
    if (optind >= argc) return 0;
    err_set(err, "unexpected argument '%s'", argv[optind]);
    return -EINVAL;
}

int cli_usage_error(const char *prog, const char *msg)
{
    fprintf(stderr, "%s: %s (see --help)\n", prog, msg);
    return 2;
}

int cli_check_backoff(long min_ms, long max_ms, char *err)
{
    if (max_ms >= min_ms) return 0;
    err_set(err, "--backoff-max-ms must be at least --backoff-min-ms");
    return -EINVAL;
}

int cli_load_partition(const char *dir, const char *spec, int n_clients, uint64_t seed,
                       dataset *pool, partition *part, char *err)
{
    partition_spec ps;
    int rc = partition_parse(spec, &ps, err);
    if (rc < 0) return rc;
    rc = dataset_load_fmnist_all(dir, pool, err);
    if (rc < 0) return rc;
    rc = partition_make(&ps, pool->y, pool->n, MODEL_CLASSES, n_clients, seed, part, err);
    if (rc < 0) dataset_free(pool);
    return rc;
}

static int cli_cap(int n, int max_samples)
{
    return max_samples > 0 && n > max_samples ? max_samples : n;
}

void cli_client_data(dataset *pool, const partition *part, int c, int max_samples, trainer_data *out)
{
    int domain = partition_domain(part, c);
    if (domain != 0) {
        const int *idx = part->idx + part->start[c];
        for (int i = part->start[c]; i < part->start[c + 1]; i++, idx++)
            dataset_apply_domain(pool->x + (size_t)*idx * MODEL_PIXELS, 1, domain);
    }
    out->train_x = out->test_x = pool->x;
    out->train_y = out->test_y = pool->y;
    out->train = partition_train(part, c);
    out->n_train = cli_cap(partition_ntrain(part, c), max_samples);
    out->test = partition_test(part, c);
    out->n_test = cli_cap(partition_ntest(part, c), max_samples);
}

int cli_load_files(const char *train_images, const char *train_labels, const char *test_images,
                   const char *test_labels, int max_samples, dataset *train, dataset *test,
                   trainer_data *out, char *err)
{
    int rc = dataset_load_idx(train_images, train_labels, train, err);
    if (rc < 0) return rc;
    rc = dataset_load_idx(test_images, test_labels, test, err);
    if (rc < 0) {
        dataset_free(train);
        return rc;
    }
    *out = (trainer_data){ train->x, train->y, NULL, cli_cap(train->n, max_samples),
                           test->x, test->y, NULL, cli_cap(test->n, max_samples) };
    return 0;
}

int cli_set_threadpool(int threads, char *err)
{
    char v[16];
    snprintf(v, sizeof v, "%d", threads + 1);
    if (setenv("UV_THREADPOOL_SIZE", v, 1) < 0) {
        err_set(err, "cannot set UV_THREADPOOL_SIZE: %s", strerror(errno));
        return -errno;
    }
    return 0;
}

int cli_loop_init(uv_loop_t *loop, int threads, char *err)
{
    int rc = cli_set_threadpool(threads, err);
    if (rc < 0) return rc;
    if ((rc = uv_loop_init(loop)) < 0) err_set(err, "cannot create the event loop: %s", uv_strerror(rc));
    return rc;
}

int cli_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
