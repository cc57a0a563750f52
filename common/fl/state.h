/* state: the coordinator's server.db (schema in notes/db.md).
 *
 * What a restarted coordinator needs lives here: meta (the model and private
 * set the file was made for), committed rounds with their figures, the
 * global model of the last STATE_KEEP_MODELS rounds with an FNV-1a checksum,
 * the clients seen, and every EvalReport. A round is committed in one
 * transaction (rounds row + models row + clients rows + pruning of old
 * models) or not at all, with synchronous=FULL, so a kill -9 at any instant
 * leaves either the previous round or the new one.
 *
 * With a server optimizer its state is stored beside each kept model
 * (opt_state), and a DP run stores each round's privacy spent (privacy);
 * both in the round's transaction.
 *
 * The initial model is stored as round 0 when the file is created (no rounds
 * row), so resuming before the first commit and comparing the first round's
 * model against its start work like any other round.
 */
#ifndef SEFL_STATE_H
#define SEFL_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "common/nn/params.h"

#define STATE_SCHEMA_VERSION 1
#define STATE_KEEP_MODELS 3

typedef struct state state;

typedef struct {
    const param_table *t;       /* the model every stored buffer is laid out by */
    unsigned private_mask;      /* PARAM_* groups kept on the clients */
    uint64_t init_seed;         /* model_init seed of the initial model */
    const char *kind;           /* meta kind: NULL for "server"; "local" for sefl-sim --local-only */
    const char *partition;      /* partition spec when known, else NULL */
    const struct state_setting *settings; /* more result-changing settings, recorded */
    int n_settings;             /* in meta like the ones above (may be 0) */
} state_config;

/* A setting recorded in meta when the file is created and compared on
 * every open, like the model's own; a file made before the setting existed
 * (key absent) matches only the value dflt. */
typedef struct state_setting {
    const char *key;            /* meta key */
    const char *value;          /* this run's value, as text */
    const char *flag;           /* the option(s) that set it, for the message */
    const char *dflt;           /* the value an older file implies */
} state_setting;

/* Opens or creates path. A new file gets meta from cfg and init (table.total
 * floats) as the model of round 0. An existing file must be a sefl database
 * of cfg's kind whose meta (arch, r, fc1_gate, table_hash, private_groups,
 * init_seed) matches cfg; otherwise one line in err says which setting
 * differs. Returns 0 with *out (close with state_close), or negative. */
int state_open(const char *path, const state_config *cfg, const float *init, state **out,
               char *err);
void state_close(state *s);                    /* accepts NULL */

/* Loads the model of the last committed round (0 before the first commit)
 * into buf (table.total floats) after verifying its size and checksum, and
 * sets *round. Returns 0, or -EBADMSG with err when the file is damaged or
 * inconsistent (buf then untouched). */
int state_load(state *s, float *buf, uint32_t *round, char *err);

typedef struct {
    uint32_t round;
    int clients;                /* updates folded in */
    long long examples;         /* their training examples */
    double train_loss;          /* example-weighted means of the updates' figures */
    double train_accuracy;
    double seconds;             /* selection to commit */
    double coord_seconds;       /* the coordinator's own work in the round */
    int attempt;                /* 1 + abandoned attempts before this one */
    const double *opt_state;    /* server optimizer state saved with the model (sopt.h), */
    size_t opt_len;             /* opt_len doubles; 0: none */
    int dp;                     /* 1: a DP-FedAvg round; the privacy row below is stored */
    double dp_rate;             /* the round's client sampling rate q */
    double dp_noise;            /* noise multiplier z */
    double dp_epsilon;          /* epsilon spent after this round, at dp_delta */
    double dp_delta;
} state_round;

typedef struct {
    const char *name;           /* certificate CN */
    uint32_t examples;
} state_participant;

/* Commits round r with model buf (table.total floats) and its n
 * participants in one transaction, then keeps only the models of the last
 * STATE_KEEP_MODELS rounds. Returns 0, or negative with err and nothing
 * written (e.g. r->round already committed). */
int state_commit_round(state *s, const state_round *r, const float *buf,
                       const state_participant *p, int n, char *err);

/* Loads the server optimizer state committed with round's model into buf
 * (len doubles). Returns 0, or -EBADMSG with err when it is missing, of
 * another size or damaged (buf then untouched). */
int state_load_opt(state *s, uint32_t round, double *buf, size_t len, char *err);

/* Calls fn with the sampling rate and noise multiplier of every committed
 * DP round, oldest first (the accountant's history on resume). Returns 0
 * or negative with err. */
int state_privacy_rounds(state *s, void (*fn)(void *user, double rate, double noise), void *user,
                         char *err);

/* Sets the seconds and coord_seconds of a committed round: the coordinator
 * learns how long the commit took only after it. Returns 0 or negative. */
int state_round_times(state *s, uint32_t round, double seconds, double coord_seconds, char *err);

/* Records that a client connected now (first_seen once, last_seen each time). */
int state_client_seen(state *s, const char *name, char *err);

/* Stores (or replaces) the EvalReport of client for round. */
int state_eval_report(state *s, uint32_t round, const char *client, uint32_t examples,
                      double accuracy, double loss, char *err);

#endif
