/* setup: what sefl-client and sefl-sim share before a session starts; see
 * setup.h. */
#include "client/setup.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/testswitch.h"
#include "common/log.h"
#include "common/nn/model.h"

int setup_check_backoff(long min_ms, long max_ms, char *err)
{
    if (max_ms >= min_ms) return 0;
    err_set(err, "--backoff-max-ms must be at least --backoff-min-ms");
    return -EINVAL;
}

int setup_load_partition(const char *dir, const char *spec, int n_clients, uint64_t seed,
                         int bytes, dataset *pool, partition *part, char *err)
{
    partition_spec ps;
    int rc = partition_parse(spec, &ps, err);
    if (rc < 0) return rc;
    rc = bytes ? dataset_load_fmnist_pool(dir, pool, err) : dataset_load_fmnist_all(dir, pool, err);
    if (rc < 0) return rc;
    rc = partition_make(&ps, pool->y, pool->n, MODEL_CLASSES, n_clients, seed, part, err);
    if (rc < 0) dataset_free(pool);
    return rc;
}

static int setup_cap(int n, int max_samples)
{
    return max_samples > 0 && n > max_samples ? max_samples : n;
}

void setup_client_data(dataset *pool, const partition *part, int c, int max_samples, trainer_data *out)
{
    int domain = partition_domain(part, c);
    if (domain != 0 && pool->x) {
        const int *idx = part->idx + part->start[c];
        for (int i = part->start[c]; i < part->start[c + 1]; i++, idx++)
            dataset_apply_domain(pool->x + (size_t)*idx * MODEL_PIXELS, 1, domain);
    }
    out->train_x = out->test_x = pool->x;
    out->train_y = out->test_y = pool->y;
    out->train = partition_train(part, c);
    out->n_train = setup_cap(partition_ntrain(part, c), max_samples);
    out->test = partition_test(part, c);
    out->n_test = setup_cap(partition_ntest(part, c), max_samples);
    /* A pool of bytes: the trainer makes the client's floats, domain included. */
    out->pix = pool->pix;
    out->domain = pool->pix ? domain : 0;
}

int setup_load_files(const char *train_images, const char *train_labels, const char *test_images,
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
    *out = (trainer_data){ train->x, train->y, NULL, setup_cap(train->n, max_samples),
                           test->x, test->y, NULL, setup_cap(test->n, max_samples), NULL, 0 };
    return 0;
}

int setup_set_threadpool(int threads, char *err)
{
    char v[16];
    snprintf(v, sizeof v, "%d", threads + 1);
    if (setenv("UV_THREADPOOL_SIZE", v, 1) < 0) {
        err_set(err, "cannot set UV_THREADPOOL_SIZE: %s", strerror(errno));
        return -errno;
    }
    return 0;
}

int setup_loop_init(uv_loop_t *loop, int threads, char *err)
{
    int rc = setup_set_threadpool(threads, err);
    if (rc < 0) return rc;
    if ((rc = uv_loop_init(loop)) < 0) err_set(err, "cannot create the event loop: %s", uv_strerror(rc));
    return rc;
}

void setup_partition_name(char out[SETUP_PARTITION_LEN], const char *spec, long n_clients,
                          uint64_t seed, long max_samples)
{
    int n = snprintf(out, SETUP_PARTITION_LEN, "%s clients=%ld seed=%" PRIu64, spec, n_clients, seed);
    if (max_samples > 0 && n > 0 && n < SETUP_PARTITION_LEN)
        snprintf(out + n, (size_t)(SETUP_PARTITION_LEN - n), " max-samples=%ld", max_samples);
}

int setup_modelcache(trainer *tr, modelcache **out, char *err)
{
    uint8_t token[WIRE_HOST_TOKEN_LEN];
    int rc = testswitch_host_token(token, sizeof token, err);
    if (rc < 0) return rc;
    return modelcache_new(tr, rc ? token : NULL, out, err);
}
