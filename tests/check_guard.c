/* check_guard: the coordinator's own checks: EvalReport and Hello bounds,
 * the weight cap, update norms against the round's lower median and an
 * absolute bound, the --max-update-norm parser, the penalty box and the
 * clients refused for a round. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "server/guard.h"
#include "tests/check_main.h"

START_TEST(test_report_bounds)
{
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(guard_check_report(250, 0.9f, 0.3f, 250, err), 0);
    ck_assert_int_eq(guard_check_report(1, 0.0f, 0.0f, 250, err), 0);
    ck_assert_int_eq(guard_check_report(1, 1.0f, 0.0f, 1, err), 0);
    /* The report: 2^32-1 examples against a test split of 250. */
    ck_assert_int_eq(guard_check_report(4294967295u, 1.0f, 0.0f, 250, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "examples 4294967295 outside 1..250"));
    ck_assert_int_eq(guard_check_report(251, 0.5f, 0.1f, 250, err), -EINVAL);
    ck_assert_int_eq(guard_check_report(0, 0.5f, 0.1f, 250, err), -EINVAL);
    ck_assert_int_eq(guard_check_report(10, 1.0001f, 0.1f, 250, err), -EINVAL);
    ck_assert_int_eq(guard_check_report(10, -0.0001f, 0.1f, 250, err), -EINVAL);
    ck_assert_int_eq(guard_check_report(10, NAN, 0.1f, 250, err), -EINVAL);
    ck_assert_int_eq(guard_check_report(10, 0.5f, INFINITY, 250, err), -EINVAL);
    ck_assert_int_eq(guard_check_report(10, 0.5f, NAN, 250, err), -EINVAL);
    ck_assert_int_eq(guard_check_report(10, 0.5f, -1.0f, 250, err), -EINVAL);

    ck_assert_int_eq(guard_check_hello(1, 0, err), 0);
    ck_assert_int_eq(guard_check_hello(GUARD_MAX_DECLARED, GUARD_MAX_DECLARED, err), 0);
    ck_assert_int_eq(guard_check_hello(0, 10, err), -EINVAL);
    ck_assert_int_eq(guard_check_hello(GUARD_MAX_DECLARED + 1, 10, err), -EINVAL);
    ck_assert_int_eq(guard_check_hello(10, GUARD_MAX_DECLARED + 1, err), -EINVAL);
}
END_TEST

START_TEST(test_weight_cap)
{
    guard_config c;
    guard_config_default(&c);
    /* 0.5: at most the others' total. The 1,000,000 against ten
     * clients of 2,000 is capped to 20,000: half the round, not 98%. */
    ck_assert_uint_eq(guard_weight_cap(&c, 1000000, 20000), 20000);
    ck_assert_uint_eq(guard_weight_cap(&c, 2000, 1018000), 2000);
    ck_assert_uint_eq(guard_weight_cap(&c, 500, 0), 500);      /* alone in its round */
    ck_assert_uint_eq(guard_weight_cap(&c, 500, 0), 500);
    c.max_weight_share = 0.25;                                  /* w <= 1/3 of the others */
    ck_assert_uint_eq(guard_weight_cap(&c, 1000, 300), 100);
    ck_assert_uint_eq(guard_weight_cap(&c, 1000, 1), 1);        /* never 0 */
    c.max_weight_share = 1;
    ck_assert_uint_eq(guard_weight_cap(&c, 1000000, 1), 1000000);
}
END_TEST

START_TEST(test_norm_parse)
{
    guard_config c;
    guard_config_default(&c);
    char err[SEFL_ERRLEN], name[32];
    guard_norm_name(&c, name, sizeof name);
    ck_assert_str_eq(name, "100x");
    ck_assert_int_eq(guard_parse_norm("20x", &c, err), 0);
    ck_assert_double_eq(c.norm_factor, 20);
    ck_assert_double_eq(c.max_norm, 0);
    ck_assert_int_eq(guard_parse_norm("3.5", &c, err), 0);
    ck_assert_double_eq(c.max_norm, 3.5);
    guard_norm_name(&c, name, sizeof name);
    ck_assert_str_eq(name, "3.5");
    ck_assert_int_eq(guard_parse_norm("off", &c, err), 0);
    guard_norm_name(&c, name, sizeof name);
    ck_assert_str_eq(name, "off");
    static const char *bad[] = { "", "x", "0", "-1", "5y", "5xx", "nan", "inf", "1e13" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(guard_parse_norm(bad[i], &c, err) == -EINVAL, "'%s' accepted", bad[i]);
}
END_TEST

START_TEST(test_norms)
{
    guard_config c;
    guard_config_default(&c);
    guard g;
    ck_assert_int_eq(guard_init(&g, &c, 5), 0);
    double norm, bound;
    ck_assert_int_eq(guard_find_outlier(&g, &norm, &bound), -1);
    /* Two updates: the lower median is the honest one, so 1e6 x is caught. */
    guard_add_norm(&g, 2.0, 0);
    guard_add_norm(&g, 2e6, 1);
    ck_assert_int_eq(guard_find_outlier(&g, &norm, &bound), 1);
    ck_assert_double_eq(norm, 2e6);
    ck_assert_double_eq(bound, 200);
    ck_assert_int_eq(guard_largest(&g), 1);
    /* Honest spread within 100x passes. */
    guard_round_reset(&g);
    guard_add_norm(&g, 1.0, 0);
    guard_add_norm(&g, 50.0, 1);
    guard_add_norm(&g, 3.0, 2);
    ck_assert_int_eq(guard_find_outlier(&g, &norm, &bound), -1);
    /* The one over the bound is named; no more than cap norms are kept. */
    guard_add_norm(&g, 400.0, 3);
    guard_add_norm(&g, 9000.0, 4);
    guard_add_norm(&g, 1e9, 5);               /* past cap: dropped */
    ck_assert_int_eq(g.n_norms, 5);
    ck_assert_int_eq(guard_find_outlier(&g, &norm, &bound), 4);
    ck_assert_double_eq(bound, 5000);          /* lower median of 1 3 50 400 9000 = 50 */
    /* A zero median (updates equal to the global model) sets no bound. */
    guard_round_reset(&g);
    guard_add_norm(&g, 0, 0);
    guard_add_norm(&g, 0, 1);
    guard_add_norm(&g, 7, 2);
    ck_assert_int_eq(guard_find_outlier(&g, &norm, &bound), -1);
    guard_free(&g);

    /* An absolute bound applies whatever the median. */
    c.max_norm = 10;
    c.norm_factor = 0;
    ck_assert_int_eq(guard_init(&g, &c, 2), 0);
    guard_add_norm(&g, 11, 0);
    guard_add_norm(&g, 12, 1);
    ck_assert_int_eq(guard_find_outlier(&g, &norm, &bound), 1);
    ck_assert_double_eq(bound, 10);
    guard_free(&g);
    guard_free(&g);                            /* a freed guard frees again */
}
END_TEST

START_TEST(test_penalty_box)
{
    guard_config c;
    guard_config_default(&c);
    guard g;
    ck_assert_int_eq(guard_init(&g, &c, 4), 0);
    ck_assert_int_eq(guard_penalised(&g, "client-0001", 0), 0);
    guard_penalise(&g, "client-0001", 5, 0, "stalled");
    ck_assert_int_eq(guard_penalised(&g, "client-0001", 5), 1);
    ck_assert_int_eq(guard_penalised(&g, "client-0001", 5 + GUARD_PENALTY_ROUNDS - 1), 1);
    ck_assert_int_eq(guard_penalised(&g, "client-0001", 5 + GUARD_PENALTY_ROUNDS), 0);
    ck_assert_int_eq(guard_penalised(&g, "client-0002", 5), 0);
    /* Penalised again later: the later term holds. */
    guard_penalise(&g, "client-0001", 20, 0, "again");
    ck_assert_int_eq(guard_penalised(&g, "client-0001", 21), 1);
    ck_assert_int_eq(g.penalised, 2);
    /* The box is bounded: GUARD_MAX_PENALTIES + 1 live entries drop the oldest. */
    for (int i = 0; i < GUARD_MAX_PENALTIES + 1; i++) {
        char name[32];
        snprintf(name, sizeof name, "c%d", i);
        guard_penalise(&g, name, 100, 0, "many");
    }
    ck_assert_int_eq(g.n_box, GUARD_MAX_PENALTIES);
    ck_assert_int_eq(guard_penalised(&g, "c0", 100), 0);
    ck_assert_int_eq(guard_penalised(&g, "c1", 100), 1);
    guard_free(&g);

    /* --penalty-rounds 0: nobody is ever boxed. */
    c.penalty_rounds = 0;
    ck_assert_int_eq(guard_init(&g, &c, 1), 0);
    ck_assert_ptr_null(guard_penalise(&g, "x", 1, 0, "no"));
    ck_assert_int_eq(guard_penalised(&g, "x", 1), 0);
    guard_free(&g);
}
END_TEST

/* A verdict refuses a client the round it happened in, on top of the
 * penalty: guard_refused and guard_refused_next name it for that round
 * only, the reason is kept (cut to GUARD_WHY_MAX), a later penalty without
 * a verdict keeps the refusal, and with --penalty-rounds 0 the refusal
 * still holds while nobody is boxed. A second silence in one round is a
 * verdict, the first is not. Restored entries count as given. */
START_TEST(test_refused_for_the_round)
{
    guard_config c;
    guard_config_default(&c);
    guard g;
    ck_assert_int_eq(guard_init(&g, &c, 4), 0);
    char long_why[300];
    memset(long_why, 'w', sizeof long_why - 1);
    long_why[sizeof long_why - 1] = 0;
    const guard_penalty *e = guard_penalise(&g, "attacker", 4, 5, long_why);
    ck_assert_ptr_nonnull(e);
    ck_assert_uint_eq(e->until, 4 + GUARD_PENALTY_ROUNDS);
    ck_assert_uint_eq(e->refused_round, 5);
    ck_assert_uint_eq(strlen(e->why), GUARD_WHY_MAX - 1);
    guard_penalise(&g, "staller", 4, 0, "silent");
    ck_assert_int_eq(guard_refused(&g, "attacker", 5), 1);
    ck_assert_int_eq(guard_refused(&g, "attacker", 6), 0);
    ck_assert_int_eq(guard_refused(&g, "staller", 5), 0);
    ck_assert_int_eq(guard_refused(&g, "nobody", 5), 0);
    ck_assert_int_eq(guard_refused_count(&g, 5), 1);
    ck_assert_int_eq(guard_boxed(&g, 4), 2);
    int pos = 0, n = 0;
    while ((e = guard_refused_next(&g, 5, &pos))) {
        ck_assert_str_eq(e->name, "attacker");
        n++;
    }
    ck_assert_int_eq(n, 1);
    pos = 0;
    ck_assert_ptr_null(guard_refused_next(&g, 6, &pos));
    /* A stall in the same round keeps the refusal and takes the new reason. */
    e = guard_penalise(&g, "attacker", 4, 0, "silent");
    ck_assert_uint_eq(e->refused_round, 5);
    ck_assert_str_eq(e->why, "silent");

    /* Silences: the second in one round's attempts is the verdict (which
     * the caller passes on to guard_penalise); one in another round starts
     * the count again. */
    ck_assert_int_eq(guard_strike(&g, "staller", 4, 5), 0);
    ck_assert_int_eq(guard_strike(&g, "staller", 4, 5), 1);
    ck_assert_int_eq(guard_strike(&g, "staller", 5, 6), 0);
    ck_assert_int_eq(guard_refused_count(&g, 5), 1);
    guard_free(&g);

    c.penalty_rounds = 0;
    ck_assert_int_eq(guard_init(&g, &c, 1), 0);
    e = guard_penalise(&g, "attacker", 9, 10, "over the bound");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(guard_refused(&g, "attacker", 10), 1);
    ck_assert_int_eq(guard_penalised(&g, "attacker", 9), 0);
    ck_assert_int_eq(guard_boxed(&g, 9), 0);
    ck_assert_int_eq(g.penalised, 0);
    /* Restored as stored: boxed until 12, refused in round 10. */
    ck_assert_int_eq(guard_restore(&g, "back", 12, 10, "from the db"), 0);
    ck_assert_int_eq(guard_penalised(&g, "back", 11), 1);
    ck_assert_int_eq(guard_refused(&g, "back", 10), 1);
    ck_assert_int_eq(g.penalised, 0);
    guard_free(&g);
}
END_TEST

int main(void)
{
    log_set_level(LOG_ERROR);
    Suite *s = suite_create("guard");
    TCase *tc = tcase_create("guard");
    tcase_add_test(tc, test_report_bounds);
    tcase_add_test(tc, test_weight_cap);
    tcase_add_test(tc, test_norm_parse);
    tcase_add_test(tc, test_norms);
    tcase_add_test(tc, test_penalty_box);
    tcase_add_test(tc, test_refused_for_the_round);
    suite_add_tcase(s, tc);
    return check_run(s);
}
