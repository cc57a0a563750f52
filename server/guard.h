/* guard: the coordinator's own defences against a client that lies, poisons
 * or stalls, whatever aggregation rule folds the updates.
 *
 * Checks on what a client claims (its EvalReport against its Hello), the
 * weight one update may carry in a round (--max-weight-share), the size of
 * each update against the round's other updates (--max-update-norm, kept as
 * one norm per update folded in, never the updates), and the penalty box:
 * clients closed for stalling, bad frames, a refused report or a poisoned
 * update are left out of selection for --penalty-rounds committed rounds.
 * A penalty that is a verdict on what the client sent (its update over the
 * norm bound), or its second failure that may be transient (frames that
 * break the protocol, silence while holding a task) in the attempts at one
 * round (guard_strike), also refuses the client for the rest of that
 * round: every attempt at a round trains from the same model with the same
 * task seed, so selecting it again in a retry would only be refused again
 * (server/README.md, "Refused for the round"). The coordinator persists every entry in server.db (state.h,
 * table penalties) and restores them on resume (guard_restore).
 *
 * Ownership: a guard owns its norm list and penalty list; guard_free
 * releases both. Everything runs on the coordinator's loop thread.
 */
#ifndef SEFL_GUARD_H
#define SEFL_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "common/nn/params.h"

#define GUARD_MAX_WEIGHT_SHARE 0.5   /* default --max-weight-share */
#define GUARD_NORM_FACTOR 100.0      /* default --max-update-norm: 100x the round's median */
#define GUARD_PENALTY_ROUNDS 3       /* default --penalty-rounds */
#define GUARD_MAX_PENALTIES 4096     /* clients in the penalty box at once; the oldest goes */
#define GUARD_MAX_DECLARED 1000000u  /* largest Hello.train_examples / test_examples */
#define GUARD_WHY_MAX 128            /* a penalty's reason as kept and stored, with its NUL */
#define GUARD_ROUND_STRIKES 2        /* failures in one round's attempts that refuse it a round */

typedef struct {
    double max_weight_share;    /* (0, 1]: one update's most share of the round's
                                   declared total; 1: no cap */
    double max_norm;            /* > 0: absolute bound on ||update - global||; 0: relative */
    double norm_factor;         /* relative bound: factor x the round's lower median norm
                                   (used when max_norm is 0; 0 turns the check off) */
    int penalty_rounds;         /* committed rounds a penalised client sits out; 0: none */
} guard_config;

void guard_config_default(guard_config *c);

/* Parses --max-update-norm: "Nx" (N times the round's median update norm),
 * a plain number (an absolute bound) or "off". Returns 0 or -EINVAL with err. */
int guard_parse_norm(const char *s, guard_config *c, char *err);

/* Writes the --max-update-norm setting as guard_parse_norm reads it. */
void guard_norm_name(const guard_config *c, char *out, size_t n);

typedef struct {
    char name[65];
    uint32_t until;             /* selectable again once last_round >= until */
    uint32_t refused_round;     /* not selected at all in this round's attempts; 0: none */
    uint32_t strike_round;      /* the round its strikes below were in (not stored) */
    int strikes;                /* failures (bad frames, silence) in strike_round's attempts */
    char why[GUARD_WHY_MAX];    /* the last penalty's reason, cut to fit */
} guard_penalty;

typedef struct {
    guard_config cfg;
    double *norms;              /* (cap) norm of each update folded in this attempt */
    int *owners;                /* (cap) index of its participant */
    double *sorted;             /* (cap) scratch for the median */
    int n_norms, cap;
    guard_penalty *box;         /* (n_box) penalised clients */
    int n_box;
    /* Counters since start, for the log and for tests. */
    long reports_refused, updates_refused, diverged, penalised, weights_capped;
} guard;

/* cap: the most updates one attempt can fold in (clients selected). Returns
 * 0 or -ENOMEM. */
int guard_init(guard *g, const guard_config *cfg, int cap);
void guard_free(guard *g);                    /* accepts a zeroed or freed guard */

/* Hello's declared counts: each at most GUARD_MAX_DECLARED, and a client
 * that trains on something (train >= 1). Returns 0 or -EINVAL with err. */
int guard_check_hello(uint32_t train, uint32_t test, char *err);

/* An EvalReport against the client's Hello: examples 1..test_examples,
 * accuracy in [0, 1], loss finite and >= 0. Returns 0 or -EINVAL with err. */
int guard_check_report(uint32_t examples, float accuracy, float loss, uint32_t test_examples,
                       char *err);

/* The weight an update of a client declaring `own` examples may carry when
 * the other selected clients declared `others` in all: capped so that it is
 * at most max_weight_share of own + others. A client alone in its round, or
 * a share of 1, keeps its own count. Never 0 for own >= 1. */
uint32_t guard_weight_cap(const guard_config *c, uint32_t own, unsigned long long others);

/* Starts an attempt: forgets the previous attempt's norms. */
void guard_round_reset(guard *g);

/* Records the norm of the update of participant `owner`. */
void guard_add_norm(guard *g, double norm, int owner);

/* Finds the update over the bound: the absolute max_norm, or norm_factor x
 * the lower median of the attempt's norms (no relative bound when that
 * median is 0: unchanged updates give no scale). Returns the owner of the largest
 * such update (and its norm and the bound in *norm, *bound), or -1 when
 * every update is within it. */
int guard_find_outlier(const guard *g, double *norm, double *bound);

/* Owner of the largest norm of the attempt, or -1 with none: the one blamed
 * when the mean itself is not finite. */
int guard_largest(const guard *g);

/* Puts name in the penalty box until committed round last_round +
 * penalty_rounds and logs "client NAME penalised for N rounds (until round
 * U)[ and not selected again in round R]: WHY". refuse_round (0: none) is
 * the round whose attempts name may no longer join (a verdict on what it
 * sent); that holds with penalty_rounds 0 too, when the penalty itself
 * does nothing. Returns the entry as it now is (for the caller to store),
 * or NULL when nothing was recorded (no penalty and no refusal, or out of
 * memory, logged). */
const guard_penalty *guard_penalise(guard *g, const char *name, uint32_t last_round,
                                    uint32_t refuse_round, const char *why);

/* Counts a failure of name in the attempts at round that may be transient
 * (bad frames, silence while holding a task): only the
 * GUARD_ROUND_STRIKES-th in one round counts as a verdict. Returns 1 then
 * (the caller passes round as guard_penalise's refuse_round), else 0; also
 * 0 when out of memory. Strikes are not stored: a restart forgets them. */
int guard_strike(guard *g, const char *name, uint32_t last_round, uint32_t round);

/* Puts an entry read back from server.db into the box as it was (no log
 * line, no count): a restarted coordinator keeps its penalties. Returns 0,
 * or -ENOMEM. */
int guard_restore(guard *g, const char *name, uint32_t until, uint32_t refused_round,
                  const char *why);

/* 1 when name is in the penalty box at committed round last_round. */
int guard_penalised(const guard *g, const char *name, uint32_t last_round);

/* 1 when name was refused for round (it is not selected in its attempts). */
int guard_refused(const guard *g, const char *name, uint32_t round);

/* Walks the entries refused for round: call with *pos = 0, then again with
 * the same pos until it returns NULL. */
const guard_penalty *guard_refused_next(const guard *g, uint32_t round, int *pos);

/* Entries refused for round. */
int guard_refused_count(const guard *g, uint32_t round);

/* Clients in the penalty box at committed round last_round. */
int guard_boxed(const guard *g, uint32_t last_round);

#endif
