/* tpool: workers that run one function on every thread; see tpool.h.
 *
 * One generation counter: tpool_run publishes fn and arg, bumps the
 * generation and wakes any worker asleep; each worker runs its part, and
 * the last to finish wakes the caller if it sleeps. A worker remembers the
 * last generation it ran, so a spurious wake-up or a late start never runs
 * a part twice or skips one.
 *
 * Waiting spins for up to TPOOL_SPIN_NS before it sleeps on a condition
 * variable. One training calls tpool_run six times per mini-batch, a
 * hundred to eight hundred microseconds apart, and waking a sleeping
 * thread costs tens of microseconds on a virtual machine (sefl-bench tpool
 * prints the figure), where a mini-batch of cnn-se takes about 2 ms; a
 * thread that finds its next part within the spin starts it at once. The spin is bounded so an
 * idle pool costs nothing: after it the thread sleeps as before. The
 * counters are atomics so the spin reads them without the mutex; the mutex
 * and condition variables only serve the threads that went to sleep.
 */
#include "common/nn/tpool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
    tpool *p;
    int id;                         /* 1..threads-1 */
    pthread_t th;
} tpool_worker;

struct tpool {
    int threads;
    pthread_mutex_t mu;
    pthread_cond_t go;              /* sleeping workers wait here for a new generation */
    pthread_cond_t done;            /* a sleeping caller waits here for pending == 0 */
    atomic_ulong gen;               /* bumped once per tpool_run */
    atomic_int pending;             /* workers still running this generation */
    atomic_int stop;
    void (*fn)(void *arg, int i);   /* written before gen is bumped, read after */
    void *arg;
    tpool_worker *w;                /* (threads - 1) */
    int started;                    /* workers created so far */
};

static inline void tpool_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long tpool_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Every 64 pauses of a spin: whether TPOOL_SPIN_NS have passed since
 * `start`. It also yields the CPU, which costs a system call when nothing
 * else waits for it and hands it over when something does (more threads
 * than cores: the thread a spinner waits for may be the one waiting). */
static int tpool_spun_out(long start)
{
    sched_yield();
    return tpool_ns() - start > TPOOL_SPIN_NS;
}

/* Spins until *v != old (acquire) or TPOOL_SPIN_NS have passed; returns
 * the value last read. */
static unsigned long tpool_spin_ulong(atomic_ulong *v, unsigned long old)
{
    const long start = tpool_ns();
    unsigned long now;
    for (unsigned k = 1; (now = atomic_load_explicit(v, memory_order_acquire)) == old; k++) {
        tpool_pause();
        if (k % 64 == 0 && tpool_spun_out(start)) break;
    }
    return now;
}

/* Spins while *v > 0 (acquire), at most TPOOL_SPIN_NS; returns the value
 * last read. */
static int tpool_spin_pending(atomic_int *v)
{
    const long start = tpool_ns();
    int now;
    for (unsigned k = 1; (now = atomic_load_explicit(v, memory_order_acquire)) > 0; k++) {
        tpool_pause();
        if (k % 64 == 0 && tpool_spun_out(start)) break;
    }
    return now;
}

static void *tpool_main(void *v)
{
    tpool_worker *w = v;
    tpool *p = w->p;
    unsigned long seen = 0;
    for (;;) {
        if (tpool_spin_ulong(&p->gen, seen) == seen) {
            /* tpool_run and tpool_free bump gen or set stop before they
             * take the mutex to broadcast, so a worker that checks under
             * the mutex and then waits cannot miss the broadcast. */
            pthread_mutex_lock(&p->mu);
            while (!atomic_load(&p->stop) && atomic_load(&p->gen) == seen)
                pthread_cond_wait(&p->go, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) break;
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        p->fn(p->arg, w->id);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

int tpool_new(int threads, tpool **out)
{
    if (threads < 1 || threads > TPOOL_MAX_THREADS) return -EINVAL;
    tpool *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->threads = threads;
    int rc = 0;
    if (threads > 1 && !(p->w = calloc((size_t)threads - 1, sizeof *p->w))) {
        free(p);
        return -ENOMEM;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    for (int i = 0; i < threads - 1; i++) {
        p->w[i] = (tpool_worker){ .p = p, .id = i + 1 };
        if ((rc = pthread_create(&p->w[i].th, NULL, tpool_main, &p->w[i])) != 0) {
            rc = -rc;
            goto out;
        }
        p->started++;
    }
out:
    if (rc < 0) {
        tpool_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void tpool_free(tpool *p)
{
    if (!p) return;
    atomic_store(&p->stop, 1);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++) pthread_join(p->w[i].th, NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->go);
    pthread_mutex_destroy(&p->mu);
    free(p->w);
    free(p);
}

int tpool_threads(const tpool *p)
{
    return p->threads;
}

void tpool_run(tpool *p, void (*fn)(void *arg, int i), void *arg)
{
    if (p->threads == 1) {
        fn(arg, 0);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->threads - 1, memory_order_relaxed);
    /* The release publishes fn, arg and pending to every worker that sees
     * the new generation. */
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0);
    if (tpool_spin_pending(&p->pending) > 0) {
        /* Not done within the spin: sleep. The last worker decrements
         * pending before it takes the mutex to signal, so the check under
         * the mutex cannot miss it. */
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

void tpool_split(long n, int parts, int i, long *lo, long *hi)
{
    *lo = n * i / parts;
    *hi = n * (i + 1) / parts;
}
