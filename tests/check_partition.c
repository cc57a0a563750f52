/* check_partition: the partitioners on generated labels: coverage (every
 * sample in exactly one client), 75/25 splits, classes per client for pat,
 * minimum sizes for dir, equal shares for iid, determinism from the seed,
 * pinned results for the integer-only schemes, overlapping draws (draw:N),
 * and the refusals. */
#include "common/data/partition.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/rng.h"
#include "tests/check_main.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define N 6000

static uint8_t labels[N];       /* balanced: sample i has class i % 10 */
static uint8_t skewed[N];       /* random, class k with weight k + 1 */

static void make_labels(void)
{
    rng r;
    rng_seed(&r, 7);
    for (int i = 0; i < N; i++) {
        labels[i] = (uint8_t)(i % 10);
        /* Weights 1..10 (sum 55): classes 0..k cover (k+1)(k+2)/2 of them. */
        uint64_t u = rng_below(&r, 55);
        int k = 0;
        while (u >= (uint64_t)(k + 1) * (k + 2) / 2) k++;
        skewed[i] = (uint8_t)k;
    }
}

static partition make(const char *spec, const uint8_t *y, int n, int n_clients, uint64_t seed)
{
    partition_spec ps;
    partition p;
    char err[SEFL_ERRLEN] = "";
    ck_assert_msg(partition_parse(spec, &ps, err) == 0, "%s", err);
    ck_assert_msg(partition_make(&ps, y, n, 10, n_clients, seed, &p, err) == 0, "%s: %s", spec, err);
    return p;
}

/* Checks the structure of p over n samples: contiguous client ranges, each
 * sample at most once (exactly once when all), 75/25 splits, min size.
 * Returns the number of samples placed. */
static int check_structure(const partition *p, int n, int all)
{
    char *seen = calloc((size_t)n, 1);
    ck_assert_int_eq(p->start[0], 0);
    for (int c = 0; c < p->n_clients; c++) {
        int m = p->start[c + 1] - p->start[c];
        ck_assert_int_ge(m, PARTITION_MIN_SAMPLES);
        ck_assert_int_eq(partition_ntrain(p, c), m * 3 / 4);
        ck_assert_int_eq(partition_ntrain(p, c) + partition_ntest(p, c), m);
        ck_assert_ptr_eq(partition_test(p, c), partition_train(p, c) + partition_ntrain(p, c));
        for (int i = p->start[c]; i < p->start[c + 1]; i++) {
            int s = p->idx[i];
            ck_assert_int_ge(s, 0);
            ck_assert_int_lt(s, n);
            ck_assert_msg(!seen[s], "sample %d placed twice", s);
            seen[s] = 1;
        }
    }
    int placed = p->start[p->n_clients];
    if (all) ck_assert_int_eq(placed, n);
    free(seen);
    return placed;
}

static int same(const partition *a, const partition *b)
{
    int total = a->start[a->n_clients];
    return a->n_clients == b->n_clients && total == b->start[b->n_clients] &&
           !memcmp(a->start, b->start, (size_t)(a->n_clients + 1) * sizeof *a->start) &&
           !memcmp(a->n_train, b->n_train, (size_t)a->n_clients * sizeof *a->n_train) &&
           !memcmp(a->idx, b->idx, (size_t)total * sizeof *a->idx);
}

/* Number of distinct classes among client c's samples (train and test). */
static int classes_of(const partition *p, const uint8_t *y, int c)
{
    int has[256] = { 0 }, k = 0;
    for (int i = p->start[c]; i < p->start[c + 1]; i++)
        if (!has[y[p->idx[i]]]++) k++;
    return k;
}

START_TEST(test_iid)
{
    partition p = make("iid", labels, N - 3, 7, 1);
    check_structure(&p, N - 3, 1);
    ck_assert_int_eq(p.domains, 1);
    int lo = N, hi = 0;
    for (int c = 0; c < 7; c++) {
        int m = p.start[c + 1] - p.start[c];
        lo = m < lo ? m : lo;
        hi = m > hi ? m : hi;
        ck_assert_int_eq(partition_domain(&p, c), 0);
    }
    ck_assert_int_le(hi - lo, 1);
    ck_assert_int_eq(hi, (N - 3 + 6) / 7);
    /* Shuffled: a client's first samples are not simply consecutive. */
    ck_assert_int_ne(p.idx[1], p.idx[0] + 1);
    partition_free(&p);
    partition_free(&p);
    partition_free(NULL);
}
END_TEST

START_TEST(test_feat)
{
    partition p = make("feat:3", skewed, N, 10, 1);
    check_structure(&p, N, 1);
    ck_assert_int_eq(p.domains, 3);
    for (int c = 0; c < 10; c++) ck_assert_int_eq(partition_domain(&p, c), c % 3);
    partition q = make("iid", skewed, N, 10, 1);
    /* feat:D draws its samples exactly as iid does; only the domains differ. */
    ck_assert(same(&p, &q));
    partition_free(&p);
    partition_free(&q);

    /* feat:D+dir:A: the owners of dir:A, the domains of feat:D. */
    p = make("feat:4+dir:0.3", labels, N, 20, 1);
    q = make("dir:0.3", labels, N, 20, 1);
    check_structure(&p, N, 1);
    ck_assert(same(&p, &q));
    ck_assert_int_eq(p.domains, 4);
    ck_assert_int_eq(q.domains, 1);
    for (int c = 0; c < 20; c++) ck_assert_int_eq(partition_domain(&p, c), c % 4);
    /* and its labels are skewed: fewer classes per client than iid's 10 */
    int k = 0;
    for (int c = 0; c < 20; c++) k += classes_of(&p, labels, c);
    ck_assert_int_lt(k, 20 * 10);
    partition_free(&p);
    partition_free(&q);
}
END_TEST

START_TEST(test_pat)
{
    static const struct { const char *spec; int k, clients; const uint8_t *y; } cases[] = {
        { "pat:2", 2, 20, labels }, { "pat:3", 3, 7, labels }, { "pat:2", 2, 20, skewed },
        { "pat:10", 10, 4, labels }, { "pat:1", 1, 10, labels },
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        partition p = make(cases[t].spec, cases[t].y, N, cases[t].clients, 3);
        check_structure(&p, N, 1);
        int holders[10] = { 0 };
        for (int c = 0; c < cases[t].clients; c++) {
            ck_assert_int_eq(classes_of(&p, cases[t].y, c), cases[t].k);
            int has[10] = { 0 };
            for (int i = p.start[c]; i < p.start[c + 1]; i++) has[cases[t].y[p.idx[i]]] = 1;
            for (int k = 0; k < 10; k++) holders[k] += has[k];
        }
        /* Classes are dealt evenly: held by clients*K/10 clients, give or take one. */
        int lo = 1 << 30, hi = 0;
        for (int k = 0; k < 10; k++) {
            lo = holders[k] < lo ? holders[k] : lo;
            hi = holders[k] > hi ? holders[k] : hi;
        }
        ck_assert_int_le(hi - lo, 1);
        partition_free(&p);
    }
}
END_TEST

START_TEST(test_pat_classes_left_out)
{
    /* 3 clients of 2 classes hold classes 0..5; the samples of 6..9 stay out. */
    partition p = make("pat:2", labels, N, 3, 3);
    ck_assert_int_eq(check_structure(&p, N, 0), N * 6 / 10);
    for (int i = 0; i < p.start[3]; i++) ck_assert_int_lt(labels[p.idx[i]], 6);
    partition_free(&p);
}
END_TEST

START_TEST(test_dir)
{
    static const char *specs[] = { "dir:0.1", "dir:0.5", "dir:100" };
    for (int t = 0; t < 3; t++) {
        for (uint64_t seed = 1; seed <= 3; seed++) {
            partition p = make(specs[t], skewed, N, 20, seed);
            check_structure(&p, N, 1);
            partition_free(&p);
        }
    }
    /* Small alpha concentrates each client on few classes, large alpha
     * spreads it over nearly all of them. */
    partition a = make("dir:0.1", labels, N, 20, 1), b = make("dir:100", labels, N, 20, 1);
    int ka = 0, kb = 0;
    for (int c = 0; c < 20; c++) {
        ka += classes_of(&a, labels, c);
        kb += classes_of(&b, labels, c);
    }
    ck_assert_int_lt(ka, 20 * 6);
    ck_assert_int_eq(kb, 20 * 10);
    partition_free(&a);
    partition_free(&b);
}
END_TEST

START_TEST(test_seeds)
{
    static const char *specs[] = { "iid", "feat:4", "pat:2", "dir:0.3", "feat:4+dir:0.3" };
    for (int t = 0; t < 5; t++) {
        partition a = make(specs[t], skewed, N, 12, 42), b = make(specs[t], skewed, N, 12, 42),
                  c = make(specs[t], skewed, N, 12, 43);
        ck_assert_msg(same(&a, &b), "%s: same seed, different partition", specs[t]);
        ck_assert_msg(!same(&a, &c), "%s: different seed, same partition", specs[t]);
        partition_free(&a);
        partition_free(&b);
        partition_free(&c);
    }
}
END_TEST

static uint64_t digest(const partition *p)
{
    uint64_t h = hash_fnv1a(HASH_FNV_INIT, p->start, (size_t)(p->n_clients + 1) * sizeof *p->start);
    return hash_fnv1a(h, p->idx, (size_t)p->start[p->n_clients] * sizeof *p->idx);
}

START_TEST(test_pinned)
{
    /* iid and pat use integer arithmetic only, so their result is fixed for
     * every machine: a change here breaks simulations sharded over machines
     * of different builds, and must be deliberate. */
    partition a = make("iid", labels, N, 20, 2026), b = make("pat:2", labels, N, 20, 2026);
    ck_assert_uint_eq(digest(&a), 7942961130632801204ULL);
    ck_assert_uint_eq(digest(&b), 18359167965404259332ULL);
    partition_free(&a);
    partition_free(&b);
}
END_TEST

START_TEST(test_parse)
{
    partition_spec s;
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(partition_parse("iid", &s, err), 0);
    ck_assert_int_eq(s.kind, PART_IID);
    ck_assert_int_eq(s.domains, 1);
    ck_assert_int_eq(partition_parse("dir:0.1", &s, err), 0);
    ck_assert_int_eq(s.kind, PART_DIR);
    ck_assert_double_eq(s.alpha, 0.1);
    ck_assert_int_eq(partition_parse("dir:1e-2", &s, err), 0);
    ck_assert_double_eq(s.alpha, 0.01);
    ck_assert_int_eq(partition_parse("pat:2", &s, err), 0);
    ck_assert_int_eq(s.kind, PART_PAT);
    ck_assert_int_eq(s.k, 2);
    ck_assert_int_eq(partition_parse("feat:4", &s, err), 0);
    ck_assert_int_eq(s.kind, PART_FEAT);
    ck_assert_int_eq(s.domains, 4);
    ck_assert_double_eq(s.alpha, 0);
    ck_assert_int_eq(partition_parse("feat:3+dir:0.3", &s, err), 0);
    ck_assert_int_eq(s.kind, PART_FEAT);
    ck_assert_int_eq(s.domains, 3);
    ck_assert_double_eq(s.alpha, 0.3);

    static const char *bad[] = {
        "", "IID", "iid ", "iid:2", "dir", "dir:", "dir:0", "dir:-1", "dir:abc", "dir:nan",
        "dir:inf", "dir:0.1x", "dir:1e999", "pat", "pat:", "pat:0", "pat:-1", "pat:2.5", "pat:2x",
        "pat:257", "pat:99999999999999999999", "feat:", "feat:0", "feat:5", "feat:1.5", "shards:2",
        "feat:4+", "feat:4+dir:", "feat:4+dir:0", "feat:4+dir:-1", "feat:4+dir:nan", "feat:4+pat:2",
        "feat:4+dir:0.3x", "feat:+dir:0.3", "feat:5+dir:0.3", "feat:4dir:0.3", "feat:00000000000000004+dir:1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        ck_assert_msg(partition_parse(bad[i], &s, err) == -EINVAL, "'%s' accepted", bad[i]);
        ck_assert_msg(err[0] && strstr(err, bad[i]), "error '%s' for '%s'", err, bad[i]);
    }
}
END_TEST

/* partition_make refuses with -EINVAL and an error containing want. */
static void expect_refused(const partition_spec *s, const uint8_t *y, int n, int n_classes,
                           int n_clients, const char *want)
{
    partition p;
    char err[SEFL_ERRLEN] = "";
    int rc = partition_make(s, y, n, n_classes, n_clients, 1, &p, err);
    ck_assert_msg(rc == -EINVAL, "returned %d where '%s' was expected", rc, want);
    ck_assert_msg(strstr(err, want), "error '%s' lacks '%s'", err, want);
    ck_assert_ptr_null(p.idx);
    ck_assert_ptr_null(p.start);
}

START_TEST(test_refusals)
{
    partition_spec iid = { .kind = PART_IID, .domains = 1 };
    expect_refused(&iid, labels, N, 10, 0, "number of clients must be 1..100000");
    expect_refused(&iid, labels, N, 10, PARTITION_MAX_CLIENTS + 1, "number of clients");
    expect_refused(&iid, labels, 99, 10, 10, "too few for 10 clients");
    expect_refused(&iid, labels, N, 0, 10, "number of classes");
    expect_refused(&iid, labels, N, 9, 10, "label 9");

    partition_spec pat = { .kind = PART_PAT, .k = 11, .domains = 1 };
    expect_refused(&pat, labels, N, 10, 10, "pat:11: K must be 1..10");
    pat.k = 0;
    expect_refused(&pat, labels, N, 10, 10, "pat:0");
    /* 20 samples of class 0 over its 4 holders: 5 each, under the minimum. */
    uint8_t *rare = malloc(N);
    for (int i = 0; i < N; i++) rare[i] = (uint8_t)(i < 20 ? 0 : 1 + i % 9);
    pat.k = 1;
    expect_refused(&pat, rare, N, 10, 40, "client 0 would get 5 samples, fewer than 10");
    free(rare);

    partition_spec dir = { .kind = PART_DIR, .alpha = 0, .domains = 1 };
    expect_refused(&dir, labels, N, 10, 10, "ALPHA must be");
    /* Two classes of 50 over 10 clients with a tiny alpha: each class goes
     * almost whole to one client, so 10 each is hopeless and the bounded
     * redraws end in an error. */
    uint8_t two[100];
    for (int i = 0; i < 100; i++) two[i] = (uint8_t)(i % 2);
    dir.alpha = 0.001;
    expect_refused(&dir, two, 100, 10, 10, "could not give each of 10 clients 10 samples");

    partition_spec feat = { .kind = PART_FEAT, .domains = 5 };
    expect_refused(&feat, labels, N, 10, 10, "D must be 1..4");
    partition_spec feat_dir = { .kind = PART_FEAT, .domains = 2, .alpha = -1 };
    expect_refused(&feat_dir, labels, N, 10, 10, "ALPHA must be a number > 0");
    partition_spec odd = { .kind = 99, .domains = 1 };
    expect_refused(&odd, labels, N, 10, 10, "unknown partition kind");
}
END_TEST

START_TEST(test_limits_accepted)
{
    /* Exactly PARTITION_MIN_SAMPLES per client, one client, all in one. */
    partition p = make("iid", labels, 100, 10, 5);
    check_structure(&p, 100, 1);
    for (int c = 0; c < 10; c++) ck_assert_int_eq(p.start[c + 1] - p.start[c], 10);
    partition_free(&p);
    p = make("dir:0.5", labels, N, 1, 5);
    check_structure(&p, N, 1);
    partition_free(&p);
}
END_TEST

/* draw:N: every client holds N distinct samples, split 75/25, the clients
 * together more than the pool (so they overlap), the same from the same
 * seed, and its limits refused. */
START_TEST(test_draw)
{
    enum { POOL = 500, CLIENTS = 400, PER = 20 };
    partition p = make("draw:20", labels, POOL, CLIENTS, 9), q = make("draw:20", labels, POOL, CLIENTS, 9);
    partition other = make("draw:20", labels, POOL, CLIENTS, 10);
    ck_assert_int_eq(p.n_clients, CLIENTS);
    ck_assert_int_eq(p.start[CLIENTS], CLIENTS * PER);
    int *uses = calloc(POOL, sizeof *uses);
    for (int c = 0; c < CLIENTS; c++) {
        ck_assert_int_eq(p.start[c + 1] - p.start[c], PER);
        ck_assert_int_eq(partition_ntrain(&p, c), 15);
        ck_assert_int_eq(partition_ntest(&p, c), 5);
        ck_assert_int_eq(partition_domain(&p, c), 0);
        for (int i = p.start[c]; i < p.start[c + 1]; i++) {
            ck_assert_int_ge(p.idx[i], 0);
            ck_assert_int_lt(p.idx[i], POOL);
            for (int j = p.start[c]; j < i; j++) ck_assert_int_ne(p.idx[j], p.idx[i]);
            uses[p.idx[i]]++;
        }
    }
    /* 8,000 draws over 500 samples: 16 each on average, none left out. */
    for (int i = 0; i < POOL; i++) ck_assert_int_gt(uses[i], 0);
    ck_assert_mem_eq(p.idx, q.idx, sizeof(int) * CLIENTS * PER);
    ck_assert(memcmp(p.idx, other.idx, sizeof(int) * CLIENTS * PER) != 0);
    free(uses);
    partition_free(&p);
    partition_free(&q);
    partition_free(&other);

    /* N equal to the pool: every client holds all of it. */
    p = make("draw:100", labels, 100, 3, 1);
    for (int c = 0; c < 3; c++) {
        int sum = 0;
        for (int i = p.start[c]; i < p.start[c + 1]; i++) sum += p.idx[i];
        ck_assert_int_eq(sum, 99 * 100 / 2);
    }
    partition_free(&p);

    partition_spec s;
    char err[SEFL_ERRLEN] = "";
    ck_assert_int_eq(partition_parse("draw:20", &s, err), 0);
    ck_assert_int_eq(s.kind, PART_DRAW);
    ck_assert_int_eq(s.draw, 20);
    static const char *bad[] = { "draw", "draw:", "draw:9", "draw:0", "draw:-20", "draw:2.5", "draw:20x",
                                 "draw:99999999999" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        ck_assert_msg(partition_parse(bad[i], &s, err) == -EINVAL, "'%s' accepted", bad[i]);
        ck_assert_msg(strstr(err, bad[i]), "error '%s' for '%s'", err, bad[i]);
    }
    partition_spec big = { .kind = PART_DRAW, .draw = 101, .domains = 1 };
    expect_refused(&big, labels, 100, 10, 10, "draw:101: N must be 10..100");
    big.draw = 100;
    expect_refused(&big, labels, N, 10, PARTITION_MAX_CLIENTS, "more than the 4194304 a partition holds");
    big.draw = N;
    expect_refused(&big, labels, N, 10, 1000, "use fewer clients or a smaller N");
}
END_TEST

int main(void)
{
    make_labels();
    Suite *s = suite_create("partition");
    TCase *tc = tcase_create("partition");
    tcase_add_test(tc, test_iid);
    tcase_add_test(tc, test_feat);
    tcase_add_test(tc, test_pat);
    tcase_add_test(tc, test_pat_classes_left_out);
    tcase_add_test(tc, test_dir);
    tcase_add_test(tc, test_seeds);
    tcase_add_test(tc, test_pinned);
    tcase_add_test(tc, test_parse);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_limits_accepted);
    tcase_add_test(tc, test_draw);
    suite_add_tcase(s, tc);
    return check_run(s);
}
