/* ratelimit: at most `burst` events per `window_s` seconds (fixed windows,
 * CLOCK_MONOTONIC), for log lines an outsider can cause at will, so that a
 * flood cannot fill the disk. The caller reports what was dropped when a
 * new window opens, as the kernel's printk_ratelimit does.
 *
 * Threads: ratelimit_allow may be called from any thread (a mutex inside).
 */
#ifndef SEFL_RATELIMIT_H
#define SEFL_RATELIMIT_H

#include <pthread.h>
#include <stdint.h>

typedef struct {
    int burst;                   /* events allowed per window */
    double window_s;
    pthread_mutex_t lock;        /* guards the fields below */
    double start;                /* monotonic seconds the window opened; < 0: none yet */
    int used;
    uint64_t dropped;            /* refused in the current window */
} ratelimit;

#define RATELIMIT_INIT(burst, window_s) { (burst), (window_s), PTHREAD_MUTEX_INITIALIZER, -1e9, 0, 0 }

/* Returns 1 when the event may be logged, 0 when it is to be dropped. When
 * this call opened a new window, *dropped_before is the number refused in
 * the previous one (else 0): say so before logging. */
int ratelimit_allow(ratelimit *r, uint64_t *dropped_before);

#endif
