/* ratelimit: fixed-window event limiter; see ratelimit.h. */
#include "common/ratelimit.h"

#include <time.h>

int ratelimit_allow(ratelimit *r, uint64_t *dropped_before)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    *dropped_before = 0;
    pthread_mutex_lock(&r->lock);
    if (now - r->start >= r->window_s) {
        *dropped_before = r->dropped;
        r->start = now;
        r->used = 0;
        r->dropped = 0;
    }
    int ok = r->used < r->burst;
    if (ok) r->used++;
    else r->dropped++;
    pthread_mutex_unlock(&r->lock);
    return ok;
}
