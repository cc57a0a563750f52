/* tpool: a few worker threads that run one function on every thread at once,
 * for splitting a single training across cores (model_set_threads).
 *
 *   tpool_run(p, fn, arg): fn(arg, 0) on the calling thread and fn(arg, i) on
 *   worker i for i = 1..threads-1, returning when all have returned.
 *
 * The work of one call is split by the caller into `threads` fixed parts, so
 * which thread computes which part never depends on timing: results are as
 * deterministic as with one thread. A waiting thread (a worker between
 * calls, the caller for the workers) spins for at most TPOOL_SPIN_NS, then
 * sleeps on a condition variable: calls a few hundred microseconds apart
 * skip the wake-up, and an idle pool takes no CPU.
 *
 * A pool is used by one thread at a time (the one that owns the model); it
 * is not reentrant: fn must not call tpool_run on the same pool.
 */
#ifndef SEFL_TPOOL_H
#define SEFL_TPOOL_H

/* Most threads one pool runs (one training on one device). */
#define TPOOL_MAX_THREADS 64

/* Longest a waiting thread spins before it sleeps (ns). It covers the
 * usual gap between a training's calls (six per mini-batch, whose parts
 * finish tens of microseconds apart on different threads), and a spinner
 * yields its CPU every 64 pauses, so on a machine with more threads than
 * cores it gives way to the thread it waits for. */
#define TPOOL_SPIN_NS 200000L

typedef struct tpool tpool;

/* Starts threads - 1 workers (threads 1..TPOOL_MAX_THREADS; 1 starts none and
 * tpool_run calls fn directly). Returns 0 and *out (owned by the caller,
 * released with tpool_free), -EINVAL for threads out of range, -ENOMEM or the
 * error of pthread_create (then no thread is left running). */
int tpool_new(int threads, tpool **out);

/* Stops and joins the workers and frees p. Accepts NULL. */
void tpool_free(tpool *p);

int tpool_threads(const tpool *p);

/* Runs fn(arg, i) for i = 0..threads-1, i = 0 on the caller; returns when
 * every call has returned. */
void tpool_run(tpool *p, void (*fn)(void *arg, int i), void *arg);

/* The part [*lo, *hi) of n items that part i of `parts` gets: contiguous,
 * in order, sizes differing by at most one. */
void tpool_split(long n, int parts, int i, long *lo, long *hi);

#endif
