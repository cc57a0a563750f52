/* check_collapse: which abandoned attempts count as lost to non-finite
 * training, that the count is of attempts in a row at one round, and that
 * the run stops at exactly max_attempts (never with 0). */
#include <check.h>

#include "server/collapse.h"
#include "tests/check_main.h"

/* One attempt: `bad` non-finite clients, then abandoned with folded in,
 * owed still to come, min needed. Returns collapse_abandoned's answer. */
static int attempt(collapse *c, int new_round, int bad, int folded, int owed, int min)
{
    collapse_attempt(c, new_round);
    for (int i = 0; i < bad; i++) collapse_client(c);
    return collapse_abandoned(c, folded, owed, min);
}

START_TEST(test_stops_at_max)
{
    collapse c = { .max_attempts = 3 };
    /* 6 selected, 6 needed: every attempt has a diverged client. */
    ck_assert_int_eq(attempt(&c, 1, 1, 3, 2, 6), 0);
    ck_assert_int_eq(attempt(&c, 0, 2, 4, 0, 6), 0);
    ck_assert_int_eq(c.lost, 2);
    ck_assert_int_eq(attempt(&c, 0, 6, 0, 0, 6), 1);
    ck_assert_int_eq(c.lost, 3);
}
END_TEST

START_TEST(test_other_failures_do_not_count)
{
    collapse c = { .max_attempts = 2 };
    /* Clients left: 1 diverged, 2 folded, 1 owed, 6 needed: 4 < 6 even
     * had the diverged one delivered. */
    ck_assert_int_eq(attempt(&c, 1, 1, 2, 1, 6), 0);
    ck_assert_int_eq(c.lost, 0);
    /* Nothing diverged: a timeout, whatever the counts. */
    ck_assert_int_eq(attempt(&c, 0, 0, 1, 5, 6), 0);
    ck_assert_int_eq(c.lost, 0);
    /* A lost attempt, then one lost otherwise: not in a row. */
    ck_assert_int_eq(attempt(&c, 0, 3, 3, 0, 6), 0);
    ck_assert_int_eq(attempt(&c, 0, 0, 0, 0, 6), 0);
    ck_assert_int_eq(attempt(&c, 0, 3, 3, 0, 6), 0);
    ck_assert_int_eq(c.lost, 1);
    /* A committed round in between: the next round starts from 0. */
    ck_assert_int_eq(attempt(&c, 1, 3, 3, 0, 6), 0);
    ck_assert_int_eq(c.lost, 1);
    ck_assert_int_eq(attempt(&c, 0, 3, 3, 0, 6), 1);
}
END_TEST

START_TEST(test_candidate)
{
    collapse c = { .max_attempts = 2 };
    /* Every update finite, their mean not: lost whatever the counts. */
    collapse_attempt(&c, 1);
    collapse_candidate(&c);
    ck_assert_int_eq(collapse_abandoned(&c, 10, 0, 2), 0);
    collapse_attempt(&c, 0);
    ck_assert_int_eq(c.candidate, 0);   /* per attempt */
    collapse_candidate(&c);
    ck_assert_int_eq(collapse_abandoned(&c, 10, 0, 2), 1);
}
END_TEST

START_TEST(test_never)
{
    collapse c = { .max_attempts = 0 };
    for (int i = 0; i < 1000; i++) ck_assert_int_eq(attempt(&c, i == 0, 6, 0, 0, 6), 0);
    ck_assert_int_eq(c.lost, 1000);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("collapse");
    TCase *tc = tcase_create("collapse");
    tcase_add_test(tc, test_stops_at_max);
    tcase_add_test(tc, test_other_failures_do_not_count);
    tcase_add_test(tc, test_candidate);
    tcase_add_test(tc, test_never);
    suite_add_tcase(s, tc);
    return check_run(s);
}
