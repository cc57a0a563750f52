/* memtune: fixed mmap threshold; see memtune.h for why. */
#include "common/memtune.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

void memtune_init(void)
{
#ifdef __GLIBC__
    /* Setting it also turns glibc's dynamic adjustment off. */
    mallopt(M_MMAP_THRESHOLD, MEMTUNE_MMAP_THRESHOLD);
#endif
}
