/* session: one federated client's conversation with the coordinator.
 *
 * A session connects over mutual TLS (conn.h), says Hello, waits for
 * Welcome, then serves tasks as proto/fl.proto's header describes: a
 * TrainTask becomes a trainer job (trainer.h) whose Update is sent when the
 * job is done, an EvalTask becomes an eval job answered with an EvalReport,
 * a Heartbeat is answered at once (the loop never trains). Bye "done" ends
 * the session; Bye "shutdown", an Error that closes, or a dropped connection
 * make it reconnect after an exponential backoff with jitter; an Error
 * saying the model or protocol version differs ends it with an error, as
 * retrying cannot help. A handshake that fails for a reason only a person
 * can fix (the coordinator's certificate not signed by our CA, not carrying
 * the --server name, expired or revoked; the coordinator refusing ours) is
 * logged as an ERROR saying what to do, and ends the session with an error
 * after max_attempts of them in a row; a refused, reset or timed-out
 * connection is retried without end. Any number of sessions may share one loop and one
 * trainer (sefl-sim).
 *
 * Tasks that arrive while the session's job runs wait in a queue of at most
 * SESSION_MAX_PENDING (the oldest is dropped past it); a newer TrainTask
 * supersedes a waiting one (the older round is over). A TrainTask that
 * repeats the running training's (the coordinator retrying the round: same
 * round, model, settings and seed) is answered by that training's Update.
 *
 * A task that refers to a model (model_ref without tensors) takes it from
 * the process's model cache; when the cache does not hold it, the session
 * waits up to MODELCACHE_WAIT_MS for another session of the process to
 * receive it in full, then answers ModelRequest and the coordinator sends
 * the task in full. Any newer task, or the connection closing, ends the
 * wait; a reference is never trained on any other model than its own.
 *
 * Test builds add switches read from the environment when a session starts
 * (a tap of every frame sent, a corrupted first Update): client/testswitch.h.
 *
 * Ownership: a session lives from session_start until its SESSION_FINISHED
 * event; the program frees it with session_free after that event (or after
 * session_start failed, which frees everything itself).
 */
#ifndef SEFL_SESSION_H
#define SEFL_SESSION_H

#include <stdint.h>
#include <uv.h>

#include "client/attack.h"
#include "client/modelcache.h"
#include "common/log.h"
#include "client/trainer.h"
#include "common/net/rxlimit.h"
#include "common/net/tls.h"

#define SESSION_BACKOFF_MIN_MS 200
#define SESSION_BACKOFF_MAX_MS 30000
#define SESSION_MAX_PENDING 4         /* tasks waiting behind a running job */
#define SESSION_MAX_ATTEMPTS 3        /* default max_attempts */

typedef struct session session;

enum {
    SESSION_WELCOMED,           /* Welcome received: round = last committed round */
    SESSION_TASK_START,         /* a job started or was queued: train/eval, round */
    SESSION_TASK_DONE,          /* a job finished and its answer was sent (or not: status) */
    SESSION_DISCONNECTED,       /* the connection closed; a reconnect is scheduled */
    SESSION_FINISHED,           /* last event: done (status 0) or failed (status < 0, err) */
};

typedef struct {
    int type;                   /* SESSION_* */
    int train;                  /* TASK_*: 1 for a TrainTask, 0 for an EvalTask */
    uint32_t round;
    int epochs;                 /* TASK_*: local epochs of a TrainTask (0 for eval) */
    int status;                 /* 0 or a negative error */
    const char *err;            /* one line when status < 0 */
    const model_stats *stats;   /* TASK_DONE: the job's train or eval figures */
    double train_cpu;           /* TASK_DONE of a training: its CPU seconds */
    double eval_cpu;            /* TASK_DONE: the CPU seconds of its evaluation, if any */
} session_event;

typedef struct {
    const char *server;         /* "HOST:PORT"; HOST is also the name checked
                                   against the server's certificate */
    const char *certs_dir;      /* DIR/ca.crt, DIR/clients/NAME.crt|.key */
    const tls_ctx *tls_shared;  /* CA chain and RNG shared by the process's sessions
                                   (tls_ctx_new_shared on certs_dir; must outlive
                                   the session), or NULL: the session's own */
    const char *name;           /* certificate name = the client's identity */
    const char *db_path;        /* the client's pstore file */
    trainer_data data;          /* its train/test split (n_train >= 1, n_test >= 1) */
    uint64_t backoff_min_ms;    /* first reconnect delay (0: SESSION_BACKOFF_MIN_MS) */
    uint64_t backoff_max_ms;    /* cap on the delay (0: SESSION_BACKOFF_MAX_MS) */
    uint64_t jitter_seed;       /* seeds the backoff jitter */
    int max_attempts;           /* permanent failures (see below) in a row before
                                   the session ends with an error; 0:
                                   SESSION_MAX_ATTEMPTS */
    const char *partition;      /* Hello.partition (setup_partition_name), NULL
                                   when the client reads its own files */
    int quiet;                  /* per-task log lines at debug level (many clients) */
    rxlimit *rx;                /* bound on large frames received at once, shared by
                                   the process's sessions (rxlimit.h), or NULL */
    modelcache *cache;          /* the process's model cache (modelcache.h), shared
                                   by its sessions: its host token goes in Hello and
                                   model references are resolved from it; NULL: no
                                   token, so the coordinator sends every model in full */
    const attack_spec *attack;  /* TEST TOOL (sefl-sim --attack): rewrites each Update
                                   (attack.h); NULL for an honest client */
    void (*on_event)(session *s, const session_event *ev);   /* may be NULL */
    void *user;
} session_config;

/* Creates a session on loop using trainer tr: loads its certificate, opens
 * its pstore once to check it (a corrupt or foreign file fails here), and
 * starts connecting. cfg's strings and data must outlive the session.
 * Returns 0 and *out, or negative with err (nothing is left behind). */
int session_start(uv_loop_t *loop, trainer *tr, const session_config *cfg, session **out, char *err);

/* Stops the session: no new connection; the current one is closed after any
 * running job; SESSION_FINISHED (status 0) follows. Safe to call twice. */
void session_stop(session *s);

/* Frees a session after SESSION_FINISHED. Accepts NULL. */
void session_free(session *s);

const char *session_name(const session *s);
void *session_user(const session *s);

#endif
