/* setup: what sefl-client and sefl-sim share around a session: the
 * reconnect backoff flags, the clients' data (own IDX files, or one client's
 * share of a partition of the pooled 70,000 Fashion-MNIST samples), and the
 * libuv thread-pool size.
 */
#ifndef SEFL_SETUP_H
#define SEFL_SETUP_H

#include <stdint.h>
#include <uv.h>

#include "client/modelcache.h"
#include "client/trainer.h"
#include "common/data/dataset.h"
#include "common/data/partition.h"

/* The reconnect backoff flags of a session: --backoff-max-ms must not be
 * below --backoff-min-ms. Returns 0, or -EINVAL with err. */
int setup_check_backoff(long min_ms, long max_ms, char *err);

/* Loads the pooled Fashion-MNIST of dir (NULL: the Debian package's) and
 * partitions it by spec over n_clients with seed. With bytes, the pool keeps
 * its pixels as bytes (pool->pix, a quarter of the memory; the trainer makes
 * each job's floats), else as floats (pool->x) for code that reads the
 * images itself. pool and part are the caller's to free. Returns 0 or
 * negative with err. */
int setup_load_partition(const char *dir, const char *spec, int n_clients, uint64_t seed,
                         int bytes, dataset *pool, partition *part, char *err);

#define SETUP_PARTITION_LEN 128     /* setup_partition_name's text, with its NUL */

/* Names a partition as a run setting and Hello.partition carry it:
 * "SPEC clients=N seed=S", with " max-samples=M" when M > 0, so two
 * clients with equal names have their data from the same partition. */
void setup_partition_name(char out[SETUP_PARTITION_LEN], const char *spec, long n_clients,
                          uint64_t seed, long max_samples);

/* Client c's data in a partition of pool: its train and test indices, each
 * capped at max_samples (0: no cap), and its feat:D domain applied in place
 * to its samples of pool (each sample belongs to one client, so applying
 * every client's domain once leaves each sample in its client's domain). */
void setup_client_data(dataset *pool, const partition *part, int c, int max_samples, trainer_data *out);

/* Loads a client's own IDX files into train and test (the caller frees
 * them) and points out at them, each split capped at max_samples (0: no
 * cap). Returns 0 or negative with err. */
int setup_load_files(const char *train_images, const char *train_labels, const char *test_images,
                   const char *test_labels, int max_samples, dataset *train, dataset *test,
                   trainer_data *out, char *err);

/* Sets UV_THREADPOOL_SIZE to threads + 1 (the trainings plus one thread for
 * name resolution and file work); must run before the loop's first use of
 * the pool. Returns 0 or negative with err. */
int setup_set_threadpool(int threads, char *err);

/* setup_set_threadpool(threads), then uv_loop_init(loop): the pool's size is
 * fixed before the loop can use it. Returns 0 or negative with err. */
int setup_loop_init(uv_loop_t *loop, int threads, char *err);

/* The process's model cache (modelcache.h) for the sessions of tr: its
 * host token from the OS's CSPRNG, or in a test build SEFL_HOST_TOKEN's
 * (testswitch.h). Returns 0 and *out, or negative with err. */
int setup_modelcache(trainer *tr, modelcache **out, char *err);

#endif
