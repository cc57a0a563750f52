/* coord: the coordinator's rounds on one libuv loop.
 *
 * A coord accepts mutually authenticated clients (conn.h), answers Hello
 * with Welcome, and runs federated rounds as server/README.md and the conversation
 * in proto/fl.proto describe:
 *   wait until min_clients are connected (not a round), and eligible: a
 *   client refused in the round (its update over the norm bound, or its
 *   second failure in the round's attempts: bad frames, silence while
 *   holding a task; guard.h) is not selected in its attempts, and
 *   when that leaves fewer than min_clients the coord starts no attempt
 *   and logs once "round N waits: E of the C connected clients may take
 *   part, --min-clients M needed; refused in this round: ...; connect more
 *   clients or restart with a lower --min-clients and --allow-change";
 *   select ceil(K * over_select) of the eligible clients at random (all of
 *   them when fewer; the penalty box's clients only to fill up to
 *   min_clients) and send each a TrainTask with the shared set of the
 *   global model;
 *   fold each valid Update into the aggregation strategy (strategy.h:
 *   FedAvg's running sum, or a robust rule holding the round's updates) as
 *   it arrives, refusing anything else with Error{WIRE_ERR_REJECTED} and a log
 *   line "rejected update from NAME: REASON";
 *   commit (state.h) when min(K, selected) updates are in (the strategy's
 *   aggregate applied by the server optimizer, sopt.h), or at the
 *   deadline with at least min_clients; otherwise abandon the attempt and
 *   retry the same round number. The attempt ends before its deadline when
 *   waiting cannot change its outcome: it commits once every selected
 *   client still connected has reported and at least min_clients did, and
 *   is abandoned once the updates in plus the selected clients still
 *   connected that owe one are fewer than min_clients (log line "round N
 *   abandoned: U of M needed updates, at most O more to come: selected
 *   clients left", against "... by the deadline").
 * A task's frame is encoded once per phase and its bytes shared by every
 * connection that gets it; with model_refs, a connection whose process
 * (Hello.host_token, hosts.h) was already queued the model in full gets a
 * small frame with the model's reference instead, and one that asks for
 * the model (ModelRequest) gets the full frame (proto/PROTOCOL.md, "Model
 * references"). Each phase logs "round N: sent B bytes: the model in full
 * to F clients ..., by reference to R ...".
 * Every eval_every rounds, and after the last one, an EvalTask goes to every
 * connected client, and to every client welcomed while the evaluation is
 * open (reports due by the same deadline); each EvalReport is stored. An
 * evaluation ends when every client it waits for has answered or left, or
 * at its deadline. After `rounds` committed rounds every client gets
 * Bye{"done"}; coord_stop sends Bye{"shutdown"}.
 * Either way the coord closes every connection, its listener and timers, so
 * uv_run returns once they are closed.
 *
 * Memory: the global model, one scratch model, the strategy's memory
 * (strategy_memory: n doubles for FedAvg, K updates for the robust rules),
 * the server optimizer's state (up to 2n doubles) and a small
 * record per connection and per selected client; updates are decoded one at
 * a time and dropped once folded in, and tasks are queued on at most
 * send_window bytes' worth of connections at a time.
 */
#ifndef SEFL_COORD_H
#define SEFL_COORD_H

#include <stdint.h>
#include <uv.h>

#include "common/fl/wire_enc.h"
#include "common/fl/settings.h"
#include "common/net/gate.h"

#include "common/net/conn.h"
#include "server/guard.h"
#include "common/nn/params.h"
#include "server/sopt.h"
#include "server/strategy.h"

#define COORD_MAX_PEERS 10000        /* default max_peers */
#define COORD_SEND_WINDOW (64u << 20) /* default send_window: about 27 tasks */

typedef struct coord coord;

typedef struct {
    const char *listen;         /* "HOST:PORT"; port 0 picks one */
    const char *certs_dir;      /* sefl-certs output: ca.crt, server.crt, server.key */
    const char *db_path;        /* server.db */
    int rounds;                 /* committed rounds to run; 0: until coord_stop */
    int clients_per_round;      /* K >= 1 */
    int min_clients;            /* M, 1..K */
    double over_select;         /* F >= 1: select ceil(K * F) */
    double round_timeout;       /* seconds from selection to the deadline */
    int eval_every;             /* evaluate every E committed rounds; 0: only after the last */
    unsigned private_mask;      /* PARAM_* groups that never leave the clients */
    float lr, momentum, weight_decay, prox_mu;
    int batch, epochs;
    int private_epochs;         /* local schedule: 0 joint, P private-first:P (TrainTask) */
    float private_lr;           /* learning rate of the private tensors; 0: lr */
    uint64_t seed;              /* model_init seed; also derives each round's task seed */
    model_opts model;           /* architecture and options (params.h) */
    int heartbeat;              /* seconds between heartbeats to idle clients */
    int max_peers;              /* connections at once (COORD_MAX_PEERS); more are closed */
    size_t send_window;         /* task bytes queued on all connections at once
                                   (COORD_SEND_WINDOW); tasks wait for room */
    wire_enc wire;              /* the global model in TrainTask and EvalTask */
    wire_enc update;            /* what clients send back (TrainTask.update_encoding) */
    int eval_clients;           /* evaluate this many connected clients (sample.h); 0: all */
    int model_refs;             /* send a model once per client process (Hello.host_token)
                                   and references to it on its other connections
                                   (default 1); the model bytes are the same either way */
    guard_config guard;         /* weight share, update norm bound, penalty rounds */
    conn_preauth preauth;       /* per-address limits before the TLS handshake ends */
    strategy_spec agg;          /* aggregation rule, --clip, DP-FedAvg */
    sopt_spec opt;              /* server optimizer */
    uint64_t max_agg_memory;    /* bytes the rule may hold (STRATEGY_MAX_AGG_MEMORY) */
    double dp_delta;            /* DP: epsilon is reported at this delta */
    int allow_change;           /* resume with run settings that differ from the
                                   recorded ones, recording the change */
    int max_diverged_attempts;  /* stop after this many attempts in a row lost to
                                   non-finite training (collapse.h); 0: retry forever */
} coord_config;

/* The defaults sefl-server documents. */
void coord_config_default(coord_config *c);

/* The run settings of c (settings.h), in server/coord_settings.c. */
void coord_run_settings(const coord_config *c, settings *s);

/* Opens (or creates) the database, loads the last committed model (or
 * initialises round 0), the penalty box and the last evaluation's figures
 * (state.h), loads the certificates and starts listening; logs
 * "listening HOST:PORT". cfg's strings must outlive the coord. Returns 0 and
 * *out, or negative with err and nothing left running. */
int coord_start(uv_loop_t *loop, const coord_config *cfg, coord **out, char *err);

/* The port it listens on (the chosen one for port 0). */
int coord_port(const coord *co);

/* Stops taking work: the round in progress is dropped (never half applied),
 * every client gets Bye{"shutdown"} and is closed. Safe to call twice. */
void coord_stop(coord *co);

/* 0 when the coord finished its rounds or was stopped, 1 when it stopped
 * because the database failed, COORD_EXIT_COLLAPSED when it stopped because
 * the model collapsed (max_diverged_attempts attempts in a row at one round
 * lost to non-finite training; restarting on the same file cannot help). */
#define COORD_EXIT_COLLAPSED 3
int coord_exit_status(const coord *co);

/* A client refused in the round to come or in progress (guard.h), as a
 * status lists it. */
#define COORD_STATUS_REFUSED 8      /* refused clients a status lists (it counts them all) */
typedef struct {
    const char *client;
    const char *why;            /* its penalty's reason */
} coord_refusal;

/* What the coordinator is doing now, for monitoring (monitor.h). Valid
 * until the next loop iteration; read it on the loop thread. */
typedef struct {
    const coord_config *cfg;    /* the run settings */
    const char *run_id;         /* server.db's run id ("" for an old file) */
    const char *phase;          /* "idle", "train", "eval" or "done" */
    int ready;                  /* listening with the database open, not shutting down */
    uint32_t round;             /* round of the attempt in progress, or last tried */
    uint32_t last_round;        /* last committed round */
    int attempt;                /* attempts at `round` so far */
    double deadline;            /* Unix seconds of the phase's deadline; 0: none */
    int connected;              /* clients welcomed and still connected */
    int selected;               /* clients selected for the attempt in progress (0 otherwise) */
    int reported;               /* their updates folded in so far */
    int eval_sent, eval_got;    /* EvalTasks out and reports in (evaluation in progress) */
    double last_commit;         /* Unix seconds of this process's last commit; 0: none yet */
    int has_eval;               /* an evaluation ended in this process, or server.db
                                   held one at start (a resume) */
    uint32_t eval_round;        /* the last evaluation's round */
    double eval_accuracy;       /* its example-weighted accuracy */
    /* The defences' counts since the process started (guard.h). */
    long candidates_refused;    /* candidate models not committed (norm bound, not finite) */
    long reports_refused;       /* EvalReports refused as impossible */
    long weights_capped;        /* updates whose weight --max-weight-share capped */
    long penalised;             /* clients put in the penalty box */
    long diverged;              /* trainings the clients reported diverged */
    /* Why no attempt starts while idle: NULL when one can, "clients" (fewer
     * connected than min_clients) or "refused" (enough connected, but
     * fewer than min_clients eligible: the others were refused in the
     * round to come). */
    const char *waiting;
    uint32_t next_round;        /* the round to come or in progress: last_round + 1 */
    int eligible;               /* connected clients that may be selected in it */
    int n_refused;              /* clients refused in it, connected or not */
    coord_refusal refused[COORD_STATUS_REFUSED]; /* the first of them */
    int boxed;                  /* clients in the penalty box (guard.h) */
    int has_gate;               /* the listener is open and gate below is set */
    gate_stats gate;            /* its admission counters before authentication */
} coord_status;

void coord_get_status(const coord *co, coord_status *out);

/* The coordinator's event metrics (coord_metrics.h), owned by the coord;
 * updated and read on the loop thread. */
const struct metrics *coord_event_metrics(const coord *co);

/* Frees the coord and closes its database; only after uv_run has returned
 * (every connection and timer closed). Accepts NULL. */
void coord_free(coord *co);

#endif
