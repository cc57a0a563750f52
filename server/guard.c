/* guard: the coordinator's checks on clients' claims, weights, update norms
 * and its penalty box; see guard.h. */
#include "server/guard.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

void guard_config_default(guard_config *c)
{
    *c = (guard_config){
        .max_weight_share = GUARD_MAX_WEIGHT_SHARE,
        .max_norm = 0,
        .norm_factor = GUARD_NORM_FACTOR,
        .penalty_rounds = GUARD_PENALTY_ROUNDS,
    };
}

int guard_parse_norm(const char *s, guard_config *c, char *err)
{
    char *end;
    if (!strcmp(s, "off")) {
        c->max_norm = 0;
        c->norm_factor = 0;
        return 0;
    }
    double v = strtod(s, &end);
    int relative = end != s && *end == 'x' && end[1] == 0;
    if (end == s || (*end && !relative) || !isfinite(v) || v <= 0 || v > 1e12) {
        err_set(err, "--max-update-norm: expected Nx (N times the round's median norm), a "
                "number > 0 or off, got '%s'", s);
        return -EINVAL;
    }
    c->max_norm = relative ? 0 : v;
    c->norm_factor = relative ? v : 0;
    return 0;
}

void guard_norm_name(const guard_config *c, char *out, size_t n)
{
    if (c->max_norm > 0) snprintf(out, n, "%g", c->max_norm);
    else if (c->norm_factor > 0) snprintf(out, n, "%gx", c->norm_factor);
    else snprintf(out, n, "off");
}

int guard_init(guard *g, const guard_config *cfg, int cap)
{
    memset(g, 0, sizeof *g);
    g->cfg = *cfg;
    g->cap = cap > 0 ? cap : 1;
    g->norms = calloc((size_t)g->cap, sizeof *g->norms);
    g->sorted = calloc((size_t)g->cap, sizeof *g->sorted);
    g->owners = calloc((size_t)g->cap, sizeof *g->owners);
    if (!g->norms || !g->sorted || !g->owners) {
        guard_free(g);
        return -ENOMEM;
    }
    return 0;
}

void guard_free(guard *g)
{
    free(g->norms);
    free(g->sorted);
    free(g->owners);
    free(g->box);
    memset(g, 0, sizeof *g);
}

int guard_check_hello(uint32_t train, uint32_t test, char *err)
{
    if (train < 1 || train > GUARD_MAX_DECLARED || test > GUARD_MAX_DECLARED) {
        err_set(err, "Hello declares train %u, test %u examples: train must be 1..%u, test "
                "0..%u", train, test, GUARD_MAX_DECLARED, GUARD_MAX_DECLARED);
        return -EINVAL;
    }
    return 0;
}

int guard_check_report(uint32_t examples, float accuracy, float loss, uint32_t test_examples,
                       char *err)
{
    if (examples < 1 || examples > test_examples) {
        err_set(err, "examples %u outside 1..%u (its test split in Hello)", examples,
                test_examples);
        return -EINVAL;
    }
    if (!(accuracy >= 0 && accuracy <= 1)) {
        err_set(err, "accuracy %g outside [0, 1]", (double)accuracy);
        return -EINVAL;
    }
    if (!isfinite(loss) || loss < 0) {
        err_set(err, "loss %g is not a finite number >= 0", (double)loss);
        return -EINVAL;
    }
    return 0;
}

uint32_t guard_weight_cap(const guard_config *c, uint32_t own, unsigned long long others)
{
    double f = c->max_weight_share;
    if (f >= 1 || others == 0) return own;
    /* w <= f * (w + others)  <=>  w <= f / (1 - f) * others */
    double cap = floor(f / (1 - f) * (double)others);
    if (cap < 1) cap = 1;
    return cap < (double)own ? (uint32_t)cap : own;
}

void guard_round_reset(guard *g)
{
    g->n_norms = 0;
}

void guard_add_norm(guard *g, double norm, int owner)
{
    if (g->n_norms >= g->cap) return;
    g->norms[g->n_norms] = norm;
    g->owners[g->n_norms] = owner;
    g->n_norms++;
}

static int guard_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int guard_largest(const guard *g)
{
    int best = -1;
    for (int i = 0; i < g->n_norms; i++)
        if (best < 0 || g->norms[i] > g->norms[best]) best = i;
    return best < 0 ? -1 : g->owners[best];
}

int guard_find_outlier(const guard *g, double *norm, double *bound)
{
    if (g->n_norms == 0) return -1;
    double b = g->cfg.max_norm;
    if (b <= 0) {
        if (g->cfg.norm_factor <= 0) return -1;
        /* The lower median: with two updates it is the smaller one, so one
         * poisoned update of two is still measured against an honest one. */
        memcpy(g->sorted, g->norms, (size_t)g->n_norms * sizeof *g->sorted);
        qsort(g->sorted, (size_t)g->n_norms, sizeof *g->sorted, guard_cmp_double);
        b = g->cfg.norm_factor * g->sorted[(g->n_norms - 1) / 2];
        /* Half the updates equal to the global model say nothing about the
         * scale of a step: no relative bound then (the mean stays checked). */
        if (b == 0) return -1;
    }
    int worst = -1;
    for (int i = 0; i < g->n_norms; i++)
        if (!(g->norms[i] <= b) && (worst < 0 || g->norms[i] > g->norms[worst])) worst = i;
    if (worst < 0) return -1;
    *norm = g->norms[worst];
    *bound = b;
    return g->owners[worst];
}

static guard_penalty *guard_find(const guard *g, const char *name)
{
    for (int i = 0; i < g->n_box; i++)
        if (!strcmp(g->box[i].name, name)) return &g->box[i];
    return NULL;
}

/* The entry of name, made when absent: expired entries (neither boxed,
 * refused nor counting strikes after last_round) make room first, and a
 * full box drops its first (oldest) entry rather than grow without bound.
 * NULL: out of memory. */
static guard_penalty *guard_entry(guard *g, const char *name, uint32_t last_round)
{
    guard_penalty *p = guard_find(g, name);
    if (p) return p;
    int k = 0;
    for (int i = 0; i < g->n_box; i++)
        if (g->box[i].until > last_round || g->box[i].refused_round > last_round ||
            g->box[i].strike_round > last_round)
            g->box[k++] = g->box[i];
    g->n_box = k;
    if (g->n_box == GUARD_MAX_PENALTIES) {
        memmove(&g->box[0], &g->box[1], (size_t)(g->n_box - 1) * sizeof *g->box);
        g->n_box--;
    }
    if (!g->box) {
        g->box = calloc(GUARD_MAX_PENALTIES, sizeof *g->box);
        if (!g->box) return NULL;
    }
    p = &g->box[g->n_box++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    return p;
}

const guard_penalty *guard_penalise(guard *g, const char *name, uint32_t last_round,
                                    uint32_t refuse_round, const char *why)
{
    int rounds = g->cfg.penalty_rounds > 0 ? g->cfg.penalty_rounds : 0;
    if (rounds == 0 && refuse_round == 0) return NULL;
    guard_penalty *p = guard_entry(g, name, last_round);
    if (!p) {
        log_warn("client %s not penalised: out of memory", name);
        return NULL;
    }
    uint32_t until = last_round + (uint32_t)rounds;
    if (until > p->until) p->until = until;
    if (refuse_round > p->refused_round) p->refused_round = refuse_round;
    snprintf(p->why, sizeof p->why, "%s", why);
    char refused[48] = "";
    if (refuse_round)
        snprintf(refused, sizeof refused, "%snot selected again in round %u",
                 rounds > 0 ? " and " : "", refuse_round);
    if (rounds > 0) {
        g->penalised++;
        log_warn("client %s penalised for %d rounds (until round %u)%s: %s", name, rounds,
                 p->until, refused, why);
    } else {
        log_warn("client %s %s: %s", name, refused, why);
    }
    return p;
}

int guard_strike(guard *g, const char *name, uint32_t last_round, uint32_t round)
{
    guard_penalty *p = guard_entry(g, name, last_round);
    if (!p) return 0;
    if (p->strike_round != round) {
        p->strike_round = round;
        p->strikes = 0;
    }
    return ++p->strikes >= GUARD_ROUND_STRIKES;
}

int guard_restore(guard *g, const char *name, uint32_t until, uint32_t refused_round,
                  const char *why)
{
    guard_penalty *p = guard_entry(g, name, 0);
    if (!p) return -ENOMEM;
    p->until = until;
    p->refused_round = refused_round;
    snprintf(p->why, sizeof p->why, "%s", why);
    return 0;
}

int guard_penalised(const guard *g, const char *name, uint32_t last_round)
{
    const guard_penalty *p = guard_find(g, name);
    return p && p->until > last_round;
}

int guard_refused(const guard *g, const char *name, uint32_t round)
{
    const guard_penalty *p = guard_find(g, name);
    return p && round > 0 && p->refused_round == round;
}

const guard_penalty *guard_refused_next(const guard *g, uint32_t round, int *pos)
{
    for (; *pos < g->n_box; (*pos)++)
        if (round > 0 && g->box[*pos].refused_round == round) return &g->box[(*pos)++];
    return NULL;
}

int guard_refused_count(const guard *g, uint32_t round)
{
    int n = 0, pos = 0;
    while (guard_refused_next(g, round, &pos)) n++;
    return n;
}

int guard_boxed(const guard *g, uint32_t last_round)
{
    int n = 0;
    for (int i = 0; i < g->n_box; i++) n += g->box[i].until > last_round;
    return n;
}
