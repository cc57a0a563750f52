/* check_tpool: the worker pool that splits one training across threads.
 * Every part runs exactly once per call on its own thread, calls follow one
 * another with nothing carried over (back to back, found by a spinning
 * worker, and after a pause longer than the spin, found by a sleeping
 * one), the split covers every item once, and the limits are refused. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "common/nn/tpool.h"
#include "tests/check_main.h"

typedef struct {
    atomic_int runs[TPOOL_MAX_THREADS];
    pthread_t who[TPOOL_MAX_THREADS];
    long sum[TPOOL_MAX_THREADS];
    int threads;
} record;

static void part(void *v, int i)
{
    record *r = v;
    atomic_fetch_add(&r->runs[i], 1);
    r->who[i] = pthread_self();
    long lo, hi;
    tpool_split(1000, r->threads, i, &lo, &hi);
    for (long k = lo; k < hi; k++) r->sum[i] += k;
}

START_TEST(test_run)
{
    for (int t = 1; t <= 5; t++) {
        tpool *p = NULL;
        ck_assert_int_eq(tpool_new(t, &p), 0);
        ck_assert_int_eq(tpool_threads(p), t);
        static record r;
        memset(&r, 0, sizeof r);
        r.threads = t;
        /* Every tenth call comes after twice the spin, when the workers
         * (and, for the slow part below, the caller) have gone to sleep. */
        const struct timespec pause = { 0, 2 * TPOOL_SPIN_NS };
        for (int call = 0; call < 200; call++) {
            if (call % 10 == 0) nanosleep(&pause, NULL);
            tpool_run(p, part, &r);
        }
        long total = 0;
        for (int i = 0; i < t; i++) {
            ck_assert_int_eq(atomic_load(&r.runs[i]), 200);
            total += r.sum[i];
            /* part 0 on the caller, every other part on a thread of its own */
            if (i == 0) ck_assert(pthread_equal(r.who[0], pthread_self()));
            for (int j = 0; j < i; j++) ck_assert(!pthread_equal(r.who[i], r.who[j]));
        }
        ck_assert_int_eq(total, 200L * 999 * 1000 / 2);
        ck_assert_int_eq(atomic_load(&r.runs[t]), 0);
        tpool_free(p);
    }
    tpool_free(NULL);
}
END_TEST

/* A part that outlasts the spin: the caller must sleep and still wake for
 * the last worker to finish, and the workers must sleep between calls. */
static void slow_part(void *v, int i)
{
    record *r = v;
    if (i > 0) {
        const struct timespec t = { 0, 3 * TPOOL_SPIN_NS };
        nanosleep(&t, NULL);
    }
    atomic_fetch_add(&r->runs[i], 1);
}

START_TEST(test_slow)
{
    tpool *p = NULL;
    ck_assert_int_eq(tpool_new(3, &p), 0);
    static record r;
    memset(&r, 0, sizeof r);
    for (int call = 0; call < 20; call++) {
        tpool_run(p, slow_part, &r);
        /* tpool_run returns only when every part has run */
        for (int i = 0; i < 3; i++) ck_assert_int_eq(atomic_load(&r.runs[i]), call + 1);
    }
    tpool_free(p);
}
END_TEST

START_TEST(test_split)
{
    /* contiguous, in order, sizes within one of each other, every item once */
    const long ns[] = { 0, 1, 7, 10, 650000 };
    for (size_t k = 0; k < sizeof ns / sizeof *ns; k++)
        for (int parts = 1; parts <= 9; parts++) {
            long prev = 0, mn = ns[k], mx = 0;
            for (int i = 0; i < parts; i++) {
                long lo, hi;
                tpool_split(ns[k], parts, i, &lo, &hi);
                ck_assert_int_eq(lo, prev);
                ck_assert_int_ge(hi, lo);
                mn = hi - lo < mn ? hi - lo : mn;
                mx = hi - lo > mx ? hi - lo : mx;
                prev = hi;
            }
            ck_assert_int_eq(prev, ns[k]);
            ck_assert_int_le(mx - mn, 1);
        }
}
END_TEST

START_TEST(test_limits)
{
    tpool *p = (tpool *)&p;
    ck_assert_int_eq(tpool_new(0, &p), -EINVAL);
    ck_assert_int_eq(tpool_new(TPOOL_MAX_THREADS + 1, &p), -EINVAL);
    ck_assert_ptr_eq(p, (tpool *)&p); /* untouched on failure */
    ck_assert_int_eq(tpool_new(TPOOL_MAX_THREADS, &p), 0);
    tpool_free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tpool");
    TCase *tc = tcase_create("tpool");
    tcase_add_test(tc, test_run);
    tcase_add_test(tc, test_slow);
    tcase_add_test(tc, test_split);
    tcase_add_test(tc, test_limits);
    suite_add_tcase(s, tc);
    return check_run(s);
}
