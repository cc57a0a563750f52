/* cli: what the sefl programs share around their flags (parsing of numeric
 * flags and the usage-error lines, one clear line each) and what
 * sefl-client and sefl-sim share around a session: the clients' data (own
 * IDX files, or one client's share of a partition of the pooled 70,000
 * Fashion-MNIST samples), and the libuv thread-pool size.
 */
#ifndef SEFL_CLI_H
#define SEFL_CLI_H

#include <stdint.h>
#include <uv.h>

#include "dataset.h"
#include "partition.h"
#include "trainer.h"

/* Parses s as an integer in [min, max] for flag (named in err). Returns 0
 * or -EINVAL with err. */
int cli_parse_long(const char *flag, const char *s, long min, long max, long *out, char *err);
int cli_parse_u64(const char *flag, const char *s, uint64_t *out, char *err);
/* A finite number in [min, max]. */
int cli_parse_double(const char *flag, const char *s, double min, double max, double *out, char *err);

/* The error of a getopt_long loop run with opterr = 0, for the option it
 * just refused (argv[optind - 1]): unknown, or missing its value. Returns
 * -EINVAL with err. */
int cli_bad_option(char *const argv[], char *err);

/* After a getopt_long loop: the sefl programs take no operands, so one left
 * at argv[optind] is an error. Returns 0, or -EINVAL with err. */
int cli_no_operands(int argc, char *const argv[], char *err);

/* Prints the one-line usage error "PROG: MSG (see --help)" to stderr.
 * Returns 2, the exit status of a usage error. */
int cli_usage_error(const char *prog, const char *msg);

/* The reconnect backoff flags of a session: --backoff-max-ms must not be
 * below --backoff-min-ms. Returns 0, or -EINVAL with err. */
int cli_check_backoff(long min_ms, long max_ms, char *err);

/* Loads the pooled Fashion-MNIST of dir (NULL: the Debian package's) and
 * partitions it by spec over n_clients with seed. pool and part are the
 * caller's to free. Returns 0 or negative with err. */
int cli_load_partition(const char *dir, const char *spec, int n_clients, uint64_t seed,
                       dataset *pool, partition *part, char *err);

/* Client c's data in a partition of pool: its train and test indices, each
 * capped at max_samples (0: no cap), and its feat:D domain applied in place
 * to its samples of pool (each sample belongs to one client, so applying
 * every client's domain once leaves each sample in its client's domain). */
void cli_client_data(dataset *pool, const partition *part, int c, int max_samples, trainer_data *out);

/* Loads a client's own IDX files into train and test (the caller frees
 * them) and points out at them, each split capped at max_samples (0: no
 * cap). Returns 0 or negative with err. */
int cli_load_files(const char *train_images, const char *train_labels, const char *test_images,
                   const char *test_labels, int max_samples, dataset *train, dataset *test,
                   trainer_data *out, char *err);

/* Sets UV_THREADPOOL_SIZE to threads + 1 (the trainings plus one thread for
 * name resolution and file work); must run before the loop's first use of
 * the pool. Returns 0 or negative with err. */
int cli_set_threadpool(int threads, char *err);

/* cli_set_threadpool(threads), then uv_loop_init(loop): the pool's size is
 * fixed before the loop can use it. Returns 0 or negative with err. */
int cli_loop_init(uv_loop_t *loop, int threads, char *err);

/* The number of online cores (at least 1). */
int cli_cores(void);

#endif
