/* check_strategy: the aggregation seam (strategy.h) and its rules
 * (rules.h) against direct computations on small sets, clipping, the
 * memory bound, extreme finite inputs; the server optimizers (sopt.h)
 * against steps computed by hand. */
#include <check.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "server/agg.h"
#include "server/rules.h"
#include "server/sopt.h"
#include "server/strategy.h"
#include "tests/check_main.h"

static strategy *make(const char *rule, size_t n, int k, double clip)
{
    strategy_spec sp = { 0 };
    char err[SEFL_ERRLEN];
    ck_assert_msg(strategy_parse(rule, &sp, err) == 0, "%s", err);
    sp.clip = clip;
    ck_assert_msg(strategy_check(&sp, n, k, STRATEGY_MAX_AGG_MEMORY, err) == 0, "%s", err);
    strategy *s;
    ck_assert_int_eq(strategy_new(&sp, n, k, &s, err), 0);
    return s;
}

/* Feeds the rows of u (k, n) as new models over a zero global, so the
 * updates are the rows themselves, each with weight 1 + its index. */
static void feed(strategy *s, const float *global, const float *u, int k, size_t n)
{
    strategy_begin(s, global);
    for (int i = 0; i < k; i++)
        ck_assert_int_eq(strategy_add(s, u + (size_t)i * n, (uint32_t)(1 + i), 0.5f, 0.25f), 0);
}

START_TEST(test_median_odd_even)
{
    static const float g[2] = { 0, 0 };
    /* Odd k = 5: the middle of each column after sorting. */
    const float u5[5 * 2] = { 3, -1, 1, 7, 2, 0, 9, 4, -5, 100 };
    float out[2];
    strategy *s = make("median", 2, 5, 0);
    feed(s, g, u5, 5, 2);
    ck_assert_int_eq(strategy_finish(s, 0, out), 0);
    ck_assert_float_eq(out[0], 2);      /* sorted -5 1 2 3 9 */
    ck_assert_float_eq(out[1], 4);      /* sorted -1 0 4 7 100 */
    /* Even k = 4: the mean of the two middle values. */
    feed(s, g, u5, 4, 2);
    ck_assert_int_eq(strategy_finish(s, 0, out), 0);
    ck_assert_float_eq(out[0], 2.5f);   /* sorted 1 2 3 9 */
    ck_assert_float_eq(out[1], 2);      /* sorted -1 0 4 7 */
    strategy_free(s);
}
END_TEST

START_TEST(test_median_relative_to_global)
{
    /* Updates are new - global: the aggregate is relative to the global. */
    const float g[1] = { 10 };
    const float v[3] = { 11, 14, 10.5f };
    float out[1];
    strategy *s = make("median", 1, 3, 0);
    feed(s, g, v, 3, 1);
    ck_assert_int_eq(strategy_finish(s, 0, out), 0);
    ck_assert_float_eq(out[0], 1);
    strategy_free(s);
}
END_TEST

START_TEST(test_trimmed_with_ties)
{
    static const float g[1] = { 0 };
    /* k = 10, beta 0.2: drop the 2 largest and 2 smallest; the ties at 5
     * and 1 are equal values, so which copy goes does not matter. */
    const float u[10] = { 5, 5, 5, 1, 1, 1, 2, 3, 100, -100 };
    float out[1];
    strategy *s = make("trimmed:0.2", 1, 10, 0);
    feed(s, g, u, 10, 1);
    ck_assert_int_eq(strategy_finish(s, 0, out), 0);
    /* sorted -100 1 1 1 2 3 5 5 5 100 -> 1 1 2 3 5 5 */
    ck_assert_float_eq_tol(out[0], 17.0f / 6, 1e-6f);
    strategy_free(s);
    /* beta 0 is the unweighted mean. */
    s = make("trimmed:0", 1, 10, 0);
    feed(s, g, u, 10, 1);
    ck_assert_int_eq(strategy_finish(s, 0, out), 0);
    ck_assert_float_eq_tol(out[0], 2.3f, 1e-6f);
    strategy_free(s);
}
END_TEST

START_TEST(test_krum_picks_the_central_one)
{
    static const float g[2] = { 0, 0 };
    /* Four honest updates around (1, 1), the third closest to all, and two
     * far ones; with f = 2, each score sums the 2 nearest others. */
    const float u[6 * 2] = { 1.2f, 1, 0.8f, 1, 1, 1.05f, 1, 0.8f, 50, 50, -40, 60 };
    float out[2];
    strategy *s = make("krum:1", 2, 6, 0);
    feed(s, g, u, 6, 2);
    ck_assert_int_eq(strategy_finish(s, 0, out), 0);
    ck_assert_float_eq(out[0], 1);
    ck_assert_float_eq(out[1], 1.05f);
    strategy_free(s);

    /* Direct: scores by hand for the rules function, and Multi-Krum's mean. */
    double dist[36], score[6];
    int pick[6];
    rules_krum(u, 6, 2, 1, 2, dist, score, pick, out);
    /* Update 2 (1, 1.05): nearest three others are 0 (0.04+0.0025), 1
     * (0.04+0.0025), 3 (0+0.0625): the score with k-f-2 = 3 neighbours. */
    ck_assert_double_eq_tol(score[2], 0.0425 + 0.0425 + 0.0625, 1e-6);
    ck_assert_int_eq(pick[0], 2);
    /* Second: update 3 (1, 0.8): 2 (0.0625), 0 (0.08), 1 (0.08). */
    ck_assert_double_eq_tol(score[3], 0.0625 + 0.08 + 0.08, 1e-6);
    ck_assert_int_eq(pick[1], 3);
    ck_assert_float_eq_tol(out[0], 1, 1e-6f);
    ck_assert_float_eq_tol(out[1], 0.925f, 1e-6f);
    /* Update 0 (1.2, 1): 2 (0.0425), 3 (0.08), 1 (0.16). */
    ck_assert_double_eq_tol(score[0], 0.0425 + 0.08 + 0.16, 1e-6);
    /* Exact ties go to the lower index: three identical updates score 0. */
    const float t[5 * 2] = { 9, 9, 2, 2, 2, 2, 2, 2, -9, 4 };
    rules_krum(t, 5, 2, 1, 2, dist, score, pick, out);
    ck_assert_int_eq(pick[0], 1);
    ck_assert_int_eq(pick[1], 2);
    ck_assert_float_eq(out[0], 2);
}
END_TEST

START_TEST(test_fedavg_weighted_and_figures)
{
    const float g[2] = { 1, 1 };
    const float u[2 * 2] = { 2, 1, 5, -3 };   /* updates (1, 0) w1 and (4, -4) w2 */
    float out[2];
    strategy *s = make("fedavg", 2, 4, 0);
    float none[2];
    strategy_begin(s, g);
    ck_assert_int_eq(strategy_finish(s, 0, none), -ENODATA);
    feed(s, g, u, 2, 2);
    ck_assert_int_eq(strategy_finish(s, 0, out), 0);
    ck_assert_float_eq_tol(out[0], 3, 1e-6f);
    ck_assert_float_eq_tol(out[1], -8.0f / 3, 1e-6f);
    ck_assert_int_eq(strategy_count(s), 2);
    ck_assert_double_eq_tol(strategy_train_loss(s), 0.5, 1e-9);
    ck_assert_double_eq_tol(strategy_train_accuracy(s), 0.25, 1e-9);
    strategy_free(s);
}
END_TEST

START_TEST(test_clip_leaves_small_updates)
{
    const float g[2] = { 0, 0 };
    const float small[2] = { 0.3f, 0.4f };  /* norm 0.5 */
    const float big[2] = { 30, 40 };        /* norm 50 */
    float out[2];
    strategy *s = make("fedavg", 2, 2, 1.0);
    strategy_begin(s, g);
    ck_assert_int_eq(strategy_add(s, small, 1, 0, 0), 0);
    ck_assert_int_eq(strategy_finish(s, 0, out), 0);
    ck_assert_float_eq(out[0], 0.3f);
    ck_assert_float_eq(out[1], 0.4f);
    ck_assert_int_eq(strategy_clipped(s), 0);
    strategy_begin(s, g);
    ck_assert_int_eq(strategy_add(s, big, 1, 0, 0), 0);
    ck_assert_double_eq_tol(strategy_last_norm(s), 50, 1e-9);   /* before clipping */
    ck_assert_int_eq(strategy_finish(s, 0, out), 0);
    ck_assert_float_eq_tol(out[0], 0.6f, 1e-6f);
    ck_assert_float_eq_tol(out[1], 0.8f, 1e-6f);
    ck_assert_int_eq(strategy_clipped(s), 1);
    strategy_free(s);
    /* Before a robust rule too: the median of clipped updates. */
    s = make("median", 2, 3, 1.0);
    const float u[3 * 2] = { 30, 40, 0.3f, 0.4f, 0, 0 };
    feed(s, g, u, 3, 2);
    ck_assert_int_eq(strategy_finish(s, 0, out), 0);
    ck_assert_float_eq(out[0], 0.3f);
    ck_assert_float_eq(out[1], 0.4f);
    strategy_free(s);
}
END_TEST

START_TEST(test_rejects_leave_round_unchanged)
{
    const float g[2] = { 0, 0 };
    const float ok[2] = { 1, 1 };
    float bad[2] = { 1, NAN };
    strategy *s = make("median", 2, 2, 0);
    strategy_begin(s, g);
    ck_assert_int_eq(strategy_add(s, bad, 1, 0, 0), -EDOM);
    ck_assert_int_eq(strategy_add(s, ok, 1, NAN, 0), -EDOM);
    ck_assert_int_eq(strategy_add(s, ok, 0, 0, 0), -EINVAL);
    ck_assert_int_eq(strategy_add(s, ok, AGG_MAX_WEIGHT + 1, 0, 0), -EINVAL);
    ck_assert_int_eq(strategy_count(s), 0);
    /* Beyond float range once the global is subtracted, and not clipped. */
    const float far_g[2] = { -FLT_MAX, 0 };
    const float far_v[2] = { FLT_MAX, 0 };
    strategy_begin(s, far_g);
    ck_assert_int_eq(strategy_add(s, far_v, 1, 0, 0), -ERANGE);
    strategy_begin(s, g);
    ck_assert_int_eq(strategy_add(s, ok, 1, 0, 0), 0);
    ck_assert_int_eq(strategy_add(s, ok, 1, 0, 0), 0);
    ck_assert_int_eq(strategy_add(s, ok, 1, 0, 0), -ENOSPC);
    ck_assert_int_eq(strategy_count(s), 2);
    strategy_free(s);
}
END_TEST

/* Every rule with finite but extreme inputs: 1e30 against small values
 * gives finite outputs, and the robust rules ignore the one extreme update
 * among five. */
START_TEST(test_extreme_inputs)
{
    static const char *rules[] = { "fedavg", "median", "trimmed:0.2", "krum:1",
                                   "multikrum:1,2" };
    const float g[2] = { 0, 0 };
    const float u[5 * 2] = { 1, 1, 1, 1, 1, 1, 1, 1, 1e30f, -1e30f };
    for (int r = 0; r < 5; r++) {
        float out[2];
        strategy *s = make(rules[r], 2, 5, 0);
        feed(s, g, u, 5, 2);
        ck_assert_int_eq(strategy_finish(s, 0, out), 0);
        ck_assert_msg(isfinite(out[0]) && isfinite(out[1]), "%s not finite", rules[r]);
        if (r > 0) ck_assert_msg(out[0] == 1 && out[1] == 1, "%s: %g %g", rules[r], out[0], out[1]);
        else ck_assert_float_eq_tol(out[0], (4 + 5e30) / 15, 1e24);
        strategy_free(s);
    }
    /* With a clip the extreme update is brought down to the bound. */
    float out[2];
    strategy *s = make("fedavg", 2, 5, 2.0);
    feed(s, g, u, 5, 2);
    ck_assert_int_eq(strategy_finish(s, 0, out), 0);
    ck_assert_float_eq_tol(out[0], (10 + 5 * sqrtf(2)) / 15, 1e-5f);
    strategy_free(s);
}
END_TEST

START_TEST(test_parse_and_limits)
{
    strategy_spec sp = { 0 };
    char err[SEFL_ERRLEN], name[STRATEGY_NAME_MAX];
    const char *bad[] = { "", "mean", "trimmed:0.5", "trimmed:-1", "trimmed:x", "krum:",
                          "krum:-1", "krum:2,3", "multikrum:2", "multikrum:2,0", "median:1" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(strategy_parse(bad[i], &sp, err) == -EINVAL, "%s accepted", bad[i]);
    const char *good[] = { "fedavg", "median", "trimmed:0.2", "krum:4", "multikrum:2,5" };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        ck_assert_int_eq(strategy_parse(good[i], &sp, err), 0);
        strategy_name(&sp, name, sizeof name);
        ck_assert_str_eq(name, good[i]);
    }
    /* Krum needs K >= 2F+3; multikrum's M <= K. */
    strategy_parse("krum:2", &sp, err);
    ck_assert_int_eq(strategy_check(&sp, 10, 6, STRATEGY_MAX_AGG_MEMORY, err), -EINVAL);
    ck_assert_int_eq(strategy_check(&sp, 10, 7, STRATEGY_MAX_AGG_MEMORY, err), 0);
    strategy_parse("multikrum:1,6", &sp, err);
    ck_assert_int_eq(strategy_check(&sp, 10, 5, STRATEGY_MAX_AGG_MEMORY, err), -EINVAL);
    /* The memory bound: median holds K updates; fedavg does not grow with K. */
    strategy_parse("median", &sp, err);
    ck_assert_uint_eq(strategy_memory(&sp, 1000, 200), 200u * 1000 * 4 + 200 * 8);
    ck_assert_int_eq(strategy_check(&sp, 1000, 200, 800000, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--max-agg-memory"));
    ck_assert_int_eq(strategy_check(&sp, 1000, 200, 801600, err), 0);
    strategy_parse("fedavg", &sp, err);
    ck_assert_uint_eq(strategy_memory(&sp, 1000, 200), strategy_memory(&sp, 1000, 20));
    /* DP-FedAvg only with fedavg. */
    strategy_parse("median", &sp, err);
    sp.dp = 1;
    sp.clip = 1;
    ck_assert_int_eq(strategy_check(&sp, 10, 5, STRATEGY_MAX_AGG_MEMORY, err), -EINVAL);
}
END_TEST

/* DP-FedAvg: equal weights, noise of std z*C/k from the seed. */
START_TEST(test_dp_noise)
{
    enum { N = 20000 };
    static float g[N], v[2][N], out[N];
    for (int j = 0; j < N; j++) v[0][j] = v[1][j] = 0;
    v[0][0] = 3;                        /* norm 3 > C = 1: clipped to 1 */
    strategy_spec sp = { .rule = STRATEGY_FEDAVG, .clip = 1, .dp = 1, .dp_noise = 0 };
    char err[SEFL_ERRLEN];
    strategy *s;
    ck_assert_int_eq(strategy_new(&sp, N, 2, &s, err), 0);
    strategy_begin(s, g);
    ck_assert_int_eq(strategy_add(s, v[0], 1, 0, 0), 0);
    ck_assert_int_eq(strategy_add(s, v[1], 1000, 0, 0), 0);
    ck_assert_int_eq(strategy_finish(s, 7, out), 0);
    ck_assert_float_eq(out[0], 0.5f);   /* equal weights despite 1 vs 1000 examples */
    strategy_free(s);
    sp.dp_noise = 2;
    ck_assert_int_eq(strategy_new(&sp, N, 2, &s, err), 0);
    strategy_begin(s, g);
    ck_assert_int_eq(strategy_add(s, v[1], 1, 0, 0), 0);
    ck_assert_int_eq(strategy_add(s, v[1], 1, 0, 0), 0);
    ck_assert_int_eq(strategy_finish(s, 7, out), 0);
    double m = 0, sq = 0;
    for (int j = 0; j < N; j++) {
        m += out[j];
        sq += (double)out[j] * out[j];
    }
    m /= N;
    double sd = sqrt(sq / N - m * m);
    /* std z*C/k = 2*1/2 = 1; 20000 draws put the estimate within 3%. */
    ck_assert_double_eq_tol(sd, 1.0, 0.03);
    ck_assert_double_eq_tol(m, 0, 0.03);
    strategy_free(s);
}
END_TEST

/* Two steps of each server optimizer on one coordinate against the
 * formulas of sopt.h worked by hand. */
START_TEST(test_server_optimizers)
{
    const float d1[1] = { 0.5f }, d2[1] = { -0.25f };
    sopt_spec sp;
    char err[SEFL_ERRLEN];
    sopt *o;
    float x[1];

    sopt_spec_default(&sp);
    sp.lr = 2;
    ck_assert_int_eq(sopt_new(&sp, 1, &o), 0);
    x[0] = 1;
    ck_assert_int_eq(sopt_step(o, d1, x), 0);
    ck_assert_float_eq(x[0], 2);        /* 1 + 2 * 0.5 */
    ck_assert_uint_eq(sopt_state_len(&sp, 1), 0);
    sopt_free(o);

    ck_assert_int_eq(sopt_parse("avgm", &sp, err), 0);
    sp.lr = 1;
    sp.momentum = 0.5;
    ck_assert_int_eq(sopt_new(&sp, 1, &o), 0);
    x[0] = 0;
    ck_assert_int_eq(sopt_step(o, d1, x), 0);   /* m = 0.5 */
    sopt_accept(o);
    ck_assert_int_eq(sopt_step(o, d2, x), 0);   /* m = 0.25 - 0.25 = 0 */
    sopt_accept(o);
    ck_assert_float_eq(x[0], 0.5f);
    ck_assert_double_eq(sopt_state(o)[0], 0);
    sopt_free(o);

    /* adam, lr 0.1, b1 0.9, b2 0.99, tau 0.001, v0 = tau^2 = 1e-6. */
    ck_assert_int_eq(sopt_parse("adam", &sp, err), 0);
    sp.lr = 0.1;
    sp.beta1 = 0.9;
    sp.beta2 = 0.99;
    sp.tau = 1e-3;
    ck_assert_int_eq(sopt_new(&sp, 1, &o), 0);
    x[0] = 0;
    ck_assert_int_eq(sopt_step(o, d1, x), 0);
    sopt_accept(o);
    double m = 0.05, v = 0.99e-6 + 0.01 * 0.25, xe = 0.1 * m / (sqrt(v) + 1e-3);
    ck_assert_double_eq_tol(x[0], xe, 1e-6);
    ck_assert_int_eq(sopt_step(o, d2, x), 0);
    m = 0.9 * m + 0.1 * -0.25;
    v = 0.99 * v + 0.01 * 0.0625;
    xe += 0.1 * m / (sqrt(v) + 1e-3);
    ck_assert_double_eq_tol(x[0], xe, 1e-6);
    /* Not accepted: the state is still that of the first step. */
    ck_assert_double_eq_tol(sopt_state(o)[0], 0.05, 1e-12);
    ck_assert_double_eq_tol(sopt_pending(o)[0], m, 1e-12);
    sopt_free(o);

    /* yogi: v1 = v0 - (1-b2) g^2 sign(v0 - g^2) = 1e-6 + 0.01*0.25. */
    ck_assert_int_eq(sopt_parse("yogi", &sp, err), 0);
    ck_assert_int_eq(sopt_new(&sp, 1, &o), 0);
    x[0] = 0;
    ck_assert_int_eq(sopt_step(o, d1, x), 0);
    v = 1e-6 + 0.01 * 0.25;
    ck_assert_double_eq_tol(x[0], 0.1 * 0.05 / (sqrt(v) + 1e-3), 1e-6);
    ck_assert_double_eq_tol(sopt_pending(o)[1], v, 1e-12);
    sopt_free(o);

    /* adagrad: v1 = v0 + g^2. */
    ck_assert_int_eq(sopt_parse("adagrad", &sp, err), 0);
    ck_assert_int_eq(sopt_new(&sp, 1, &o), 0);
    x[0] = 0;
    ck_assert_int_eq(sopt_step(o, d1, x), 0);
    v = 1e-6 + 0.25;
    ck_assert_double_eq_tol(x[0], 0.1 * 0.05 / (sqrt(v) + 1e-3), 1e-6);
    sopt_free(o);
    ck_assert_int_eq(sopt_parse("nesterov", &sp, err), -EINVAL);
}
END_TEST

/* Extreme pseudo-gradients: the adaptive optimizers' steps stay a small
 * multiple of lr (m / sqrt(v) does not grow with the scale of D); sgd refuses a step that leaves float range, changing nothing. */
START_TEST(test_server_optimizer_extremes)
{
    const float d[2] = { 1e30f, -1e30f };
    sopt_spec sp;
    char err[SEFL_ERRLEN];
    const char *names[] = { "adam", "yogi", "adagrad" };
    for (int i = 0; i < 3; i++) {
        sopt_spec_default(&sp);
        sopt_parse(names[i], &sp, err);
        sp.lr = 0.01;
        sopt *o;
        ck_assert_int_eq(sopt_new(&sp, 2, &o), 0);
        float x[2] = { 0, 0 };
        for (int s = 0; s < 3; s++) {
            ck_assert_int_eq(sopt_step(o, d, x), 0);
            sopt_accept(o);
        }
        ck_assert_msg(isfinite(x[0]) && fabsf(x[0]) <= 0.1f, "%s: %g", names[i], x[0]);
        sopt_free(o);
    }
    sopt_spec_default(&sp);
    sp.lr = 1e10;
    sopt *o;
    ck_assert_int_eq(sopt_new(&sp, 2, &o), 0);
    float x[2] = { 1, 2 };
    ck_assert_int_eq(sopt_step(o, d, x), -ERANGE);
    ck_assert_float_eq(x[0], 1);
    ck_assert_float_eq(x[1], 2);
    sopt_free(o);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("strategy");
    TCase *tc = tcase_create("strategy");
    tcase_add_test(tc, test_median_odd_even);
    tcase_add_test(tc, test_median_relative_to_global);
    tcase_add_test(tc, test_trimmed_with_ties);
    tcase_add_test(tc, test_krum_picks_the_central_one);
    tcase_add_test(tc, test_fedavg_weighted_and_figures);
    tcase_add_test(tc, test_clip_leaves_small_updates);
    tcase_add_test(tc, test_rejects_leave_round_unchanged);
    tcase_add_test(tc, test_extreme_inputs);
    tcase_add_test(tc, test_parse_and_limits);
    tcase_add_test(tc, test_dp_noise);
    tcase_add_test(tc, test_server_optimizers);
    tcase_add_test(tc, test_server_optimizer_extremes);
    suite_add_tcase(s, tc);
    return check_run(s);
}
