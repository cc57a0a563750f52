/* state: the coordinator's server.db (its schema is below).
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
 *
 * Schema (schema_version 1; sefl-eval, tests and users' scripts read the
 * file by it, so a change here is a new schema_version):
 *   meta(key TEXT PRIMARY KEY, value)
 *       schema_version, kind ('server', or 'local' for the file
 *       `sefl-sim --local-only` writes), created_at (UTC ISO 8601), and what
 *       binds the file to one run: arch, r, fc1_gate, table_hash (16 hex
 *       digits), private_groups ('se', 'none', 'head', 'se,head'),
 *       init_seed, local_schedule ('joint' or 'private-first:P'),
 *       private_lr ('lr' when it is --lr, else the number), partition
 *       (the spec, when known), and run_id (32 hex digits of random bits
 *       made with the file, absent in files made before it: what
 *       monitoring names the run by). A file without local_schedule or
 *       private_lr (made before they existed) reads as joint and lr.
 *   rounds(round INTEGER PRIMARY KEY, committed_at TEXT, clients INTEGER,
 *          examples INTEGER, train_loss REAL, train_accuracy REAL,
 *          seconds REAL, coord_seconds REAL, attempt INTEGER)
 *       one row per committed round: updates folded in, their examples,
 *       example-weighted train figures, selection-to-commit wall time, the
 *       coordinator's own CPU share of it, and 1 + abandoned attempts
 *   models(round INTEGER PRIMARY KEY, params BLOB, checksum TEXT)
 *       the whole parameter buffer (table.total float32, little-endian) of
 *       round 0 and of the last STATE_KEEP_MODELS committed rounds, with its
 *       FNV-1a 64 checksum as 16 lowercase hex digits
 *   clients(name TEXT PRIMARY KEY, first_seen TEXT, last_seen TEXT,
 *           rounds INTEGER, examples INTEGER)
 *       every client (certificate CN) that said Hello, the rounds it took
 *       part in and the training examples it contributed
 *   eval_reports(round INTEGER, client TEXT, examples INTEGER,
 *                accuracy REAL, loss REAL, received_at TEXT,
 *                PRIMARY KEY(round, client))
 *       every EvalReport: the client's personalized test accuracy and loss
 *       on its own test split after that round
 *   settings(name TEXT PRIMARY KEY, value TEXT, since_round INTEGER)
 *       the run settings (settings.h): every setting that changes the
 *       result, named by its long flag ('lr', 'clients-per-round', ...,
 *       'partition' as clients report it), its value as text and the first
 *       round that used it
 *   setting_changes(round INTEGER, name TEXT, old_value TEXT,
 *                   new_value TEXT, changed_at TEXT)
 *       each change a resume with --allow-change (or a client reporting
 *       another partition) made, from `round` on
 *   penalties(client TEXT PRIMARY KEY, until_round INTEGER,
 *             refused_round INTEGER, reason TEXT, penalised_at TEXT)
 *       the coordinator's penalty box (server/guard.h): the client is not
 *       selected while the last committed round is below until_round
 *       (unless the others are too few), and not at all in the attempts at
 *       refused_round (0: none); reason is its last penalty's. Written when
 *       a penalty is given; the round commit's transaction deletes the rows
 *       that are over (both rounds at most the committed one)
 * The settings tables came after schema_version 1 without a new version: a
 * file made before them gets them, empty, on its next writable open (and
 * then records the settings of that run from its last round), and readers
 * that do not know them are unaffected; so did opt_state, privacy and
 * penalties, created empty in an older file on its next writable open.
 */
#ifndef SEFL_STATE_H
#define SEFL_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "common/fl/settings.h"
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
    int private_epochs;         /* local schedule: 0 joint, P private-first:P */
    float private_lr;           /* learning rate of the private tensors; 0: the run's lr */
    const settings *run;        /* the run settings (settings.h) to record and
                                   check; NULL for none (kind "local") */
    int allow_change;           /* a run setting that differs from the recorded
                                   one is recorded as a change, not refused */
    const char *eval_clients;   /* --eval-clients ("all" or N), rewritten at each open (it
                                   changes what is evaluated, not what is trained); NULL:
                                   not recorded */
} state_config;

/* Opens or creates path. A new file gets meta from cfg, cfg->run in table
 * settings (since round 0) and init (table.total floats) as the model of
 * round 0. An existing file must be a sefl database of cfg's kind whose meta
 * (arch, r, fc1_gate, table_hash, private_groups, init_seed, local_schedule,
 * private_lr) matches cfg (a file made before
 * local_schedule and private_lr existed counts as joint, private_lr = lr);
 * otherwise one line in err says which setting differs. Then every setting
 * of cfg->run is compared with the recorded one: a difference is -EINVAL
 * with one line naming the setting, unless cfg->allow_change, when the new
 * value is recorded with a row in setting_changes (round = the next round,
 * the first that uses it), in one transaction. A setting the file has no
 * record of (a file from an older sefl) is recorded without complaint.
 * Returns 0 with *out (close with state_close), or negative. */
int state_open(const char *path, const state_config *cfg, const float *init, state **out,
               char *err);
void state_close(state *s);                    /* accepts NULL */

/* What a finished run's file says about its model, for the tools that read
 * it (sefl-eval --gates, --newcomers). */
typedef struct {
    param_table t;              /* rebuilt from meta (arch, r, fc1_gate), hash checked */
    unsigned private_mask;
    uint64_t init_seed;
} state_run;

/* Opens an existing server.db read-only and fills *run from its meta; then
 * state_load reads its newest global model, and nothing can be written.
 * run must outlive the state (the state lays buffers out by run->t).
 * Returns 0 with *out, or negative with one line in err: -ENOENT missing,
 * -EBADMSG foreign or damaged file (a local-only db included: it holds no
 * global model), -EINVAL meta this build cannot rebuild the model from. */
int state_open_read(const char *path, state_run *run, state **out, char *err);

/* The run id made with the file (meta run_id: STATE_RUN_ID_LEN hex digits of
 * random bits), or "" for a file made before run ids. Returns 0 or
 * negative with err. */
#define STATE_RUN_ID_LEN 32
int state_run_id(state *s, char out[STATE_RUN_ID_LEN + 1], char *err);

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

/* Records a setting learnt while running (the partition a client reports):
 * inserted when absent; when it differs from the recorded value, the new
 * value replaces it with a setting_changes row for round. replaced
 * (SETTINGS_VALUE_MAX bytes) gets the value it replaced, "" when it replaced
 * none. Returns 0 or negative with err. */
int state_observe_setting(state *s, const char *name, const char *value, uint32_t round,
                          char *replaced, char *err);

/* Sets *n to the number of EvalReports stored for round. */
int state_eval_count(state *s, uint32_t round, int *n, char *err);

/* Records that a client connected now (first_seen once, last_seen each time). */
int state_client_seen(state *s, const char *name, char *err);

/* Records the counts name declared in its Hello (meta "declared:NAME").
 * Returns 0 when they are new or unchanged, 1 when they differ from the
 * stored ones (then *old_train, *old_test are those), or negative with err. */
int state_client_declared(state *s, const char *name, uint32_t train, uint32_t test,
                          uint32_t *old_train, uint32_t *old_test, char *err);

/* One entry of the coordinator's penalty box (server/guard.h). */
#define STATE_CLIENT_NAME_MAX 64    /* bytes of a client name (certificate CN) */
typedef struct {
    const char *client;
    uint32_t until;             /* boxed while the last committed round is below it */
    uint32_t refused_round;     /* not selected in this round's attempts; 0: none */
    const char *reason;
} state_penalty;

/* Stores (or replaces) the entry of p->client, in its own transaction.
 * Returns 0 or negative with err. */
int state_put_penalty(state *s, const state_penalty *p, char *err);

/* Calls fn with each stored entry still in effect after committed round
 * last_round (until or refused_round above it), at most max of them, the
 * longest penalties first; fn's non-zero return stops the walk and is
 * returned. A row whose client name (1..STATE_CLIENT_NAME_MAX bytes) or
 * rounds are out of range is -EBADMSG with one line naming it. The strings
 * are valid during the call. Returns 0 or negative with err. */
int state_penalties(state *s, uint32_t last_round, int max,
                    int (*fn)(void *user, const state_penalty *p), void *user, char *err);

/* The newest evaluated round among the stored EvalReports in range
 * (examples >= 1, accuracy in [0, 1]) and its example-weighted accuracy:
 * *found 1 and *round, *accuracy set, or *found 0 when there is none.
 * Returns 0 or negative with err. */
int state_last_eval(state *s, uint32_t *round, double *accuracy, int *found, char *err);

/* Stores (or replaces) the EvalReport of client for round. */
int state_eval_report(state *s, uint32_t round, const char *client, uint32_t examples,
                      double accuracy, double loss, char *err);

#endif
