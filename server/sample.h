/* sample: which clients an evaluation asks (--eval-clients N).
 *
 * Evaluating every client of a large run costs a model's bytes per client
 * (2.3 MB in f32), so the coordinator may evaluate a sample instead. The
 * sample is deterministic from the run's seed and the clients' names: each
 * client gets a key hash(seed, name), and an evaluation asks the N
 * connected clients with the smallest keys. The same clients are therefore
 * asked at every evaluation while they stay connected (rounds compare), a
 * restarted coordinator asks the same ones, and anyone can recompute the
 * sample from server.db.
 */
#ifndef SEFL_SAMPLE_H
#define SEFL_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

/* The sampling key of client `name` under seed. */
uint64_t sample_key(uint64_t seed, const char *name);

/* The largest key among the k smallest of keys[0..n) (reordered), or
 * UINT64_MAX when k >= n: a client is in the sample when its key is at most
 * this. */
uint64_t sample_cut(uint64_t *keys, size_t n, size_t k);

#endif
