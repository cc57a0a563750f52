/* sample: deterministic client samples for evaluation; see sample.h. */
#include "server/sample.h"

#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "common/rng.h"

uint64_t sample_key(uint64_t seed, const char *name)
{
    /* FNV-1a of the name alone is poorly mixed in its high bits for names
     * that differ only in their last digits; rng_derive mixes it with the
     * seed through a full-avalanche function. */
    return rng_derive(seed, hash_fnv1a(HASH_FNV_INIT, name, strlen(name)));
}

static int sample_cmp(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t sample_cut(uint64_t *keys, size_t n, size_t k)
{
    if (k >= n) return UINT64_MAX;
    qsort(keys, n, sizeof *keys, sample_cmp);
    return k ? keys[k - 1] : 0;
}
