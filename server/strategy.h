/* strategy: the coordinator's aggregation rule, "updates in, new shared
 * tensors out".
 *
 * A round is strategy_begin (the global model's shared set), one
 * strategy_add per valid client update, then strategy_finish, which writes
 * the aggregated update: a vector to add to the global shared set (through a
 * server optimizer, sopt.h). Every rule works on the update of a client as
 * the difference new - global, so that clipping (--clip, DP) and the
 * distances of Krum mean what the literature means.
 *
 * Rules (strategy_parse's text in brackets):
 *   [fedavg]          mean weighted by training examples (McMahan et al.),
 *                     a running sum in double: memory n doubles, whatever K.
 *   [median]          coordinate-wise median (mean of the two middle values
 *                     for an even count), unweighted (Yin et al. 2018).
 *   [trimmed:BETA]    coordinate-wise mean after dropping the floor(BETA*k)
 *                     largest and smallest values, 0 <= BETA < 0.5.
 *   [krum:F]          the update with the smallest sum of squared distances
 *                     to its max(1, k-F-2) nearest others (Blanchard et al.
 *                     2017); K >= 2F+3 is required at start.
 *   [multikrum:F,M]   the unweighted mean of the M updates of best Krum score.
 * The robust rules are unweighted: a client's claimed example count is
 * itself something an attacker chooses. They hold every update of the round:
 * memory K*n floats (plus K*K doubles for Krum), where K is the most updates
 * a round folds in (--clients-per-round); strategy_memory says how much and
 * the coordinator refuses to start when it exceeds --max-agg-memory.
 *
 * Clipping: with clip > 0 an update whose L2 norm exceeds clip is scaled to
 * norm clip before any rule sees it; smaller updates are untouched.
 * DP-FedAvg (McMahan et al. 2018, "Learning differentially private recurrent
 * language models"): dp set, the rule must be fedavg; every update is
 * clipped to clip and weighs 1 (the mean's sensitivity to one client is
 * clip/k), and Gaussian noise of standard deviation dp_noise*clip/k is added
 * to each coordinate of the mean, drawn from strategy_finish's seed.
 */
#ifndef SEFL_STRATEGY_H
#define SEFL_STRATEGY_H

#include <stddef.h>
#include <stdint.h>

#define STRATEGY_MAX_AGG_MEMORY (2ull << 30) /* default --max-agg-memory: 2 GB */
#define STRATEGY_NAME_MAX 64

enum { STRATEGY_FEDAVG, STRATEGY_MEDIAN, STRATEGY_TRIMMED, STRATEGY_KRUM, STRATEGY_MULTIKRUM };

typedef struct {
    int rule;                   /* STRATEGY_* */
    double beta;                /* trimmed: fraction dropped at each end, [0, 0.5) */
    int f;                      /* krum, multikrum: attackers tolerated (>= 0) */
    int m;                      /* multikrum: updates averaged (>= 1) */
    double clip;                /* L2 bound of each update (new - global); 0: none */
    int dp;                     /* 1: DP-FedAvg (clip > 0, rule fedavg) */
    double dp_noise;            /* z: noise std z*clip/k on the mean (dp only) */
} strategy_spec;

typedef struct strategy strategy;

/* Parses the rule part of spec ("fedavg", "median", "trimmed:0.2", "krum:2",
 * "multikrum:2,5"); clip and dp are left as they were. Returns 0 or -EINVAL
 * with one line in err. */
int strategy_parse(const char *text, strategy_spec *spec, char *err);

/* The canonical text of the rule, as strategy_parse reads it (size >=
 * STRATEGY_NAME_MAX). */
void strategy_name(const strategy_spec *spec, char *buf, size_t size);

/* Checks spec against k, the most updates one round folds in: the rule's
 * own limits (Krum's K >= 2F+3, multikrum's M <= K, DP's rule) and its
 * memory against max_bytes. Returns 0 or -EINVAL with one line in err. */
int strategy_check(const strategy_spec *spec, size_t n, int k, uint64_t max_bytes, char *err);

/* Bytes the rule holds for rounds of at most k updates of n floats. */
uint64_t strategy_memory(const strategy_spec *spec, size_t n, int k);

/* Creates a strategy for updates of n floats, at most k per round (spec
 * must pass strategy_check). Returns 0 and *out, or negative with err. */
int strategy_new(const strategy_spec *spec, size_t n, int k, strategy **out, char *err);
void strategy_free(strategy *s);        /* accepts NULL */

/* Starts a round (or a retried attempt) from the global shared set global
 * (n floats), which the strategy borrows until strategy_finish. */
void strategy_begin(strategy *s, const float *global);

/* Folds in one client's new shared set v (n floats) with weight w (its
 * training examples, 1..AGG_MAX_WEIGHT) and its train figures. Returns 0,
 * -EINVAL for a weight out of range, -EDOM when v or a figure is not
 * finite, -ERANGE when v - global does not fit a float, -ENOSPC when k
 * updates are already in; on error the round is unchanged. */
int strategy_add(strategy *s, const float *v, uint32_t w, float loss, float accuracy);

/* Writes the aggregated update (n floats, to be added to the global shared
 * set) into out; seed draws the DP noise. Returns 0, or -ENODATA when no
 * update was folded in (out untouched). */
int strategy_finish(strategy *s, uint64_t seed, float *out);

/* Updates folded in since strategy_begin, and how many of them clipping
 * scaled down. */
int strategy_count(const strategy *s);
int strategy_clipped(const strategy *s);

/* The largest and the mean L2 norm of the updates (new - global) before
 * clipping, since strategy_begin (0 with no update): what --clip should
 * be chosen against. */
double strategy_norm_max(const strategy *s);
/* ||v - global|| of the update strategy_add folded in last, before
 * clipping (the guard's outlier check reads it rather than sum again). */
double strategy_last_norm(const strategy *s);
double strategy_norm_mean(const strategy *s);

/* Example-weighted means of the updates' train figures (0 with no update). */
double strategy_train_loss(const strategy *s);
double strategy_train_accuracy(const strategy *s);

#endif
