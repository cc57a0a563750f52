/* check_rxlimit: the slots of common/net/rxlimit.c on a real libuv loop:
 * taking and giving back, the queue's order, grants announced from the
 * loop (never from inside a release), a waiter leaving the queue or giving
 * back a slot granted and not yet announced, and the figures. */
#include "common/net/rxlimit.h"
#include "tests/check_main.h"

#include <check.h>
#include <errno.h>
#include <uv.h>

typedef struct {
    rxlimit_waiter w;           /* first: the callback casts back */
    int id;
} waiter;

static int order[16];
static int n_order;
static int in_release;          /* set around rxlimit_release calls */

static void on_granted(rxlimit_waiter *w)
{
    ck_assert_int_eq(in_release, 0);
    ck_assert_int_eq(w->state, RXLIMIT_W_HELD);
    order[n_order++] = ((waiter *)w)->id;
}

static void release(rxlimit *l, waiter *w)
{
    in_release = 1;
    rxlimit_release(l, &w->w);
    in_release = 0;
}

START_TEST(test_bounds_and_order)
{
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    rxlimit *l;
    ck_assert_int_eq(rxlimit_new(&loop, 0, 100, &l), -EINVAL);
    ck_assert_int_eq(rxlimit_new(&loop, RXLIMIT_MAX_SLOTS + 1, 100, &l), -EINVAL);
    ck_assert_int_eq(rxlimit_new(&loop, 2, 100, &l), 0);
    ck_assert_uint_eq(rxlimit_large(l), 100);
    waiter w[5];
    for (int i = 0; i < 5; i++) w[i] = (waiter){ .w = { .granted = on_granted }, .id = i };
    n_order = 0;
    /* Two slots: the first two take them, the rest queue in order. */
    ck_assert_int_eq(rxlimit_acquire(l, &w[0].w), 1);
    ck_assert_int_eq(rxlimit_acquire(l, &w[1].w), 1);
    ck_assert_int_eq(rxlimit_acquire(l, &w[1].w), 1);   /* held already: no second slot */
    for (int i = 2; i < 5; i++) ck_assert_int_eq(rxlimit_acquire(l, &w[i].w), 0);
    rxlimit_stats st;
    rxlimit_get_stats(l, &st);
    ck_assert_int_eq(st.in_use, 2);
    ck_assert_int_eq(st.waiting, 3);
    /* w[3] leaves the queue; w[0] gives its slot back: it goes to w[2],
     * announced from the loop, not from the release. */
    release(l, &w[3]);
    ck_assert_int_eq(w[3].w.state, RXLIMIT_W_NONE);
    release(l, &w[0]);
    ck_assert_int_eq(w[2].w.state, RXLIMIT_W_GRANTED);
    ck_assert_int_eq(n_order, 0);
    /* A newcomer cannot take the slot set aside for w[2]. */
    waiter late = { .w = { .granted = on_granted }, .id = 9 };
    ck_assert_int_eq(rxlimit_acquire(l, &late.w), 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(n_order, 1);
    ck_assert_int_eq(order[0], 2);
    /* w[1] gives back: w[4] is granted, but gives the slot back before the
     * announcement, so it passes on to the newcomer. */
    release(l, &w[1]);
    ck_assert_int_eq(w[4].w.state, RXLIMIT_W_GRANTED);
    release(l, &w[4]);
    ck_assert_int_eq(late.w.state, RXLIMIT_W_GRANTED);
    uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(n_order, 2);
    ck_assert_int_eq(order[1], 9);
    rxlimit_get_stats(l, &st);
    ck_assert_int_eq(st.max, 2);
    ck_assert_int_eq(st.in_use, 2);
    ck_assert_int_eq(st.peak, 2);
    ck_assert_int_eq(st.waiting, 0);
    ck_assert_uint_eq(st.taken, 5);     /* w0, w1, w2, w4 (given back), late */
    ck_assert_uint_eq(st.waits, 3);
    release(l, &w[2]);
    release(l, &late);
    rxlimit_get_stats(l, &st);
    ck_assert_int_eq(st.in_use, 0);
    rxlimit_close(l);
    rxlimit_close(NULL);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rxlimit");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_bounds_and_order);
    suite_add_tcase(s, tc);
    return check_run(s);
}
