/* tpool: workers that run one function on every thread; see pool.h.
 *
 * One generation counter under one mutex: tpool_run publishes fn and arg,
 * bumps the generation and wakes every worker; each worker runs its part,
 * and the last to finish wakes the caller. A worker remembers the last
 * generation it ran, so a spurious wake-up or a late start never runs a
 * part twice or skips one.
 */
#include "common/nn/tpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

typedef struct {
    tpool *p;
    int id;                         /* 1..threads-1 */
    pthread_t th;
} tpool_worker;

struct tpool {
    int threads;
    pthread_mutex_t mu;
    pthread_cond_t go;              /* workers wait here for a new generation */
    pthread_cond_t done;            /* the caller waits here for pending == 0 */
    unsigned long gen;              /* bumped once per tpool_run */
    int pending;                    /* workers still running this generation */
    int stop;
    void (*fn)(void *arg, int i);
    void *arg;
    tpool_worker *w;                 /* (threads - 1) */
    int started;                    /* workers created so far */
};

static void *tpool_main(void *v)
{
    tpool_worker *w = v;
    tpool *p = w->p;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen) pthread_cond_wait(&p->go, &p->mu);
        if (p->stop) break;
        seen = p->gen;
        void (*fn)(void *, int) = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->mu);
        fn(arg, w->id);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
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
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
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
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->pending = p->threads - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    fn(arg, 0);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void tpool_split(long n, int parts, int i, long *lo, long *hi)
{
    *lo = n * i / parts;
    *hi = n * (i + 1) / parts;
}
