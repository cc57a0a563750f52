/* coord: rounds, selection, deadlines and evaluation rounds of the
 * coordinator; see coord.h.
 *
 * Everything runs on the loop thread. The coord is in one phase at a time:
 * IDLE (waiting for enough eligible clients, or between rounds), TRAIN (a round's
 * TrainTasks are out, updates are being folded in), EVAL (EvalTasks are
 * out), DONE (closing down). coord_advance decides what comes next whenever
 * something changes: a client is welcomed, a round commits or is abandoned,
 * an evaluation ends. A round or evaluation ends before its deadline once
 * its outcome is known: every task it still waits for was answered or its
 * client left (commit, or end the evaluation), or too few selected clients
 * are left to reach min_clients (abandon).
 *
 * Each attempt at a round gets a fresh task id; a client holds the id of
 * the TrainTask it was sent, so an update is accepted only from a client
 * selected for the attempt in progress, once.
 *
 * Every penalty goes through coord_penalise, which also stores it in
 * server.db; a verdict on what a client sent (an update over the norm
 * bound, or its second failure in one round: bad frames, silence holding
 * a task) refuses it for the round to come or in progress (last_round +
 * 1), and coord_advance waits rather than start an attempt with fewer
 * eligible clients than min_clients.
 */
#include "server/coord.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "server/collapse.h"
#include "server/sample.h"
#include "server/coord_metrics.h"
#include "server/hosts.h"
#include "server/guard.h"
#include "server/rdp.h"
#include "common/net/conn.h"
#include "common/net/netstats.h"
#include "common/log.h"
#include "common/nn/model.h"
#include "common/nn/params.h"
#include "common/rng.h"
#include "common/store.h"
#include "common/fl/state.h"
#include "common/net/tls.h"
#include "common/fl/wire.h"
#include "common/fl/wire_ref.h"

enum { CO_IDLE, CO_TRAIN, CO_EVAL, CO_DONE };

/* Why the coordinator, idle, starts no attempt: fewer clients connected
 * than min_clients, or enough connected but too few of them eligible for
 * the round because the others were refused in it. */
enum { COORD_WAIT_NONE, COORD_WAIT_CLIENTS, COORD_WAIT_REFUSED };

#define COORD_NAME_MAX 65            /* a CN: sefl-certs' longest name (64) + NUL */
#define COORD_SILENT_BEATS 3         /* heartbeats without a word before a close */
#define COORD_PUMP_MS 5              /* how often a waiting window is refilled */

/* A conn's user pointer is the coord until the handshake completes, then
 * its peer; both begin with this tag so that on_close can tell them apart. */
enum { USER_COORD = 0x636f6f72, USER_PEER = 0x70656572 };

typedef struct peer peer;
struct peer {
    int tag;                     /* USER_PEER */
    coord *co;
    conn *c;
    peer *prev, *next;           /* co->peers, newest first */
    char name[COORD_NAME_MAX];   /* certificate CN */
    int welcomed;                /* Hello answered: counts in n_ready */
    int closing;                 /* conn_close called or the conn closed: left */
    uint32_t train_examples;     /* from Hello: the largest weight we accept */
    uint32_t test_examples;
    uint64_t task;               /* id of the TrainTask attempt it holds, 0: none */
    int reported;                /* its update for `task` was folded in */
    int eval_pending;            /* an EvalTask of the current evaluation is unanswered */
    int send_pending;            /* the current task frame is still to be queued for it */
    host *host;                  /* its process by Hello.host_token (--model-refs), or NULL */
    int want_full;               /* it asked for the phase's model (ModelRequest) */
    int got_full;                /* the phase's task was queued to it in full */
    uint64_t last_rx_ms;         /* loop time of its last frame (or of the open) */
    uint32_t weight_cap;         /* the most weight its update carries this attempt */
    int part;                    /* its index in parts once its update is folded in */
};

struct coord {
    int tag;                     /* USER_COORD */
    uv_loop_t *loop;
    coord_config cfg;
    param_table t;
    param_sel shared;            /* what goes over the wire */
    size_t n_shared;             /* floats in the shared set */
    float *global;               /* (t.total) the last committed model */
    float *scratch;              /* (t.total) an update applied, or the model being committed */
    float *flat;                 /* (n_shared) the shared set of one update, or the aggregate */
    float *gflat;                /* (n_shared) the global shared set the round started from */
    strategy *strat;             /* the round's aggregation */
    sopt *opt;                   /* the server optimizer and its state */
    rdp_acct acct;               /* DP: privacy spent by the committed rounds */
    double dp_rate;              /* DP: the attempt's sampling rate, selected / connected */
    state *st;
    tls_ctx *tls;
    conn_listener *lis;
    uv_timer_t deadline;         /* round or evaluation deadline */
    uv_timer_t heartbeat;
    uv_timer_t pump;             /* refills the send window while tasks wait */
    uv_timer_t settle;           /* decides, from the loop, a phase a departure may have ended */
    uint8_t *task_frame;         /* the current TrainTask/EvalTask frame, owned */
    size_t task_len;
    /* Model references (--model-refs): the same task with the model's
     * reference instead of its tensors, owned, for the connections whose
     * process was already queued the model in full; NULL when off. */
    uint8_t *ref_frame;
    size_t ref_len;
    uint8_t task_ref[WIRE_REF_LEN]; /* the reference of the phase's model */
    hosts hosts;                 /* client processes by host token */
    int n_full, n_refs, n_asked; /* the phase's tasks sent in full, as references, asked for */
    uint64_t phase_sent;         /* netstats bytes_sent when the phase started */
    int n_send_pending;          /* peers with send_pending set */
    int phase;                   /* CO_* */
    int exit_status;

    peer *peers;                 /* every opened connection, welcomed or not */
    int n_peers;
    int n_ready;                 /* welcomed and not closing */

    uint32_t last_round;         /* last committed round */
    uint32_t round;              /* round of the attempt in progress (or last tried) */
    int attempt;                 /* attempts at `round` so far */
    uint64_t task;               /* id of the attempt in progress */
    uint64_t next_task;
    int target;                  /* updates that commit at once: min(K, selected) */
    int selected;
    int open;                    /* selected peers still connected that have not reported */
    state_participant *parts;    /* (selected) who contributed to the round */
    char (*part_names)[COORD_NAME_MAX]; /* (selected) their names, owned */
    uint64_t round_start_ns;
    double coord_seconds;        /* wall time of the coordinator's own work in this attempt */
    double coord_cpu;            /* the same work's CPU time (less under CPU contention) */
    int waiting;                 /* COORD_WAIT_*: why no attempt starts (the last line logged) */

    int eval_due;                /* an evaluation of last_round is to run */
    uint32_t eval_round;
    int eval_sent, eval_got;
    uint64_t eval_cut;           /* sample_key at most this: in the evaluation's sample */
    double eval_acc_sum;         /* sum of examples * accuracy of the reports */
    long long eval_examples;

    uint64_t hb_nonce;
    guard g;                     /* report, weight and norm checks; the penalty box */
    collapse col;                /* attempts lost to non-finite training (collapse.h) */
    char norm_name[32];          /* --max-update-norm as given, for log lines */

    coord_metrics met;           /* event metrics, for monitoring */
    char run_id[STATE_RUN_ID_LEN + 1];
    double last_commit_unix;     /* wall clock of the last commit; 0: none yet */
    int has_eval;                /* the figures of the last evaluation below are set */
    uint32_t last_eval_round;
    double last_eval_acc;
    int lock_fd;                 /* holds the db's lock (store_lock) while open */
    char partition[SETTINGS_VALUE_MAX]; /* the last partition a client reported */
};

static void coord_advance(coord *co);
static void coord_on_deadline(uv_timer_t *t);
static void coord_on_settle(uv_timer_t *t);
static void coord_eval_join(coord *co, peer *p);

/* Seconds since the Unix epoch, for figures an operator reads. */
static double coord_unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double coord_since(uint64_t start_ns)
{
    return (double)(uv_hrtime() - start_ns) / 1e9;
}

/* When a piece of the coordinator's own work started, by the wall clock
 * and by the loop thread's CPU clock: on a machine shared with training
 * clients the two differ, and both are worth knowing. */
typedef struct {
    uint64_t wall;               /* uv_hrtime() */
    double cpu;                  /* seconds of thread CPU time */
} coord_clock;

static double coord_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static coord_clock coord_clock_now(void)
{
    return (coord_clock){ uv_hrtime(), coord_cpu_now() };
}

/* Adds the work since t0 to the attempt's figures. */
static void coord_account(coord *co, coord_clock t0)
{
    co->coord_seconds += coord_since(t0.wall);
    co->coord_cpu += coord_cpu_now() - t0.cpu;
}

/* ---- sending ----------------------------------------------------------- */

static void peer_close(peer *p, const char *reason);

/* Queues an encoded frame for p; a peer whose queue is full is closed (it is
 * not reading, and we will not buffer without bound for it). */
static int peer_send_frame(peer *p, const uint8_t *frame, size_t len)
{
    int ret = conn_send_frame(p->c, frame, len);
    if (ret) peer_close(p, ret == -ENOBUFS ? "output queue full" : "send failed");
    return ret;
}

static int peer_send(peer *p, Sefl__Envelope *e)
{
    uint8_t *frame;
    size_t len;
    int ret = wire_encode(e, &frame, &len);
    if (ret) {
        peer_close(p, "out of memory encoding a frame");
        return ret;
    }
    ret = peer_send_frame(p, frame, len);
    free(frame);
    return ret;
}

static void peer_send_error(peer *p, uint32_t code, const char *msg)
{
    /* The peer's decoder refuses strings over WIRE_MAX_STRING. */
    char line[WIRE_MAX_STRING];
    snprintf(line, sizeof line, "%s", msg);
    uint8_t *frame;
    size_t len;
    if (wire_encode_error(code, line, &frame, &len) == 0) {
        peer_send_frame(p, frame, len);
        free(frame);
    }
}

static void peer_send_bye(peer *p, const char *reason)
{
    Sefl__Bye bye = SEFL__BYE__INIT;
    bye.reason = (char *)reason;
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    e.msg_case = SEFL__ENVELOPE__MSG_BYE;
    e.bye = &bye;
    peer_send(p, &e);
}

/* ---- peers joining and leaving ---------------------------------------- */

/* p holds a TrainTask of the attempt in progress and has not answered it. */
static int peer_training(const peer *p)
{
    const coord *co = p->co;
    return co->phase == CO_TRAIN && p->task == co->task && !p->reported;
}

/* Bookkeeping of a peer that is gone or going: it no longer counts, and a
 * round or evaluation it leaves may be decided now (coord_on_settle).
 * Idempotent. */
static void peer_leave(peer *p, const char *reason)
{
    coord *co = p->co;
    if (p->closing) return;
    p->closing = 1;
    if (p->send_pending) {
        p->send_pending = 0;
        co->n_send_pending--;
    }
    if (!p->welcomed) return;
    co->n_ready--;
    log_info("client %s left: %s (connected %d)", p->name, reason, co->n_ready);
    int awaited = p->eval_pending || peer_training(p);
    if (p->eval_pending) {
        p->eval_pending = 0;
        co->eval_sent--;
    }
    if (peer_training(p)) co->open--;
    /* Decided from the loop, not from inside whatever closed this peer (a
     * loop over the peers, a send, a Hello replacing it). */
    if (awaited) uv_timer_start(&co->settle, coord_on_settle, 0, 0);
}

static void peer_close(peer *p, const char *reason)
{
    if (p->closing) return;
    peer_leave(p, reason);
    conn_close(p->c, reason);
}

/* Penalises name (guard_penalise) and stores its entry in server.db, so
 * that a restarted coordinator keeps it. refuse: the penalty is a verdict
 * on what the client sent, which also refuses it the round in progress. A
 * failed write costs the entry's survival of a restart, not the penalty. */
static void coord_penalise(coord *co, const char *name, int refuse, const char *why)
{
    const guard_penalty *e = guard_penalise(&co->g, name, co->last_round,
                                            refuse ? co->last_round + 1 : 0, why);
    if (!e) return;
    char err[SEFL_ERRLEN];
    state_penalty sp = { e->name, e->until, e->refused_round, e->why };
    if (state_put_penalty(co->st, &sp, err))
        log_warn("client %s: penalty not stored, a restart would forget it: %s", name, err);
}

/* Penalises name for a failure that may not repeat (bad frames, silence
 * while holding a task): the GUARD_ROUND_STRIKES-th in the attempts at
 * one round refuses it for the rest of that round (guard_strike). */
static void coord_penalise_failure(coord *co, const char *name, const char *why)
{
    uint32_t round = co->last_round + 1;
    if (!guard_strike(&co->g, name, co->last_round, round)) {
        coord_penalise(co, name, 0, why);
        return;
    }
    char line[SEFL_ERRLEN + 64];
    snprintf(line, sizeof line, "%s (its failure %d in round %u)", why, GUARD_ROUND_STRIKES,
             round);
    coord_penalise(co, name, 1, line);
}

/* Sends Error{code, msg} and closes: a peer that breaks the protocol. */
static void peer_fail(peer *p, uint32_t code, const char *msg)
{
    log_warn("client %s (%s): %s; closing", p->name[0] ? p->name : "?", conn_peer_addr(p->c), msg);
    peer_send_error(p, code, msg);
    if (p->welcomed) coord_penalise_failure(p->co, p->name, msg);
    peer_close(p, msg);
}

static void coord_on_open(conn *c)
{
    coord *co = conn_user(c);
    if (co->phase == CO_DONE || co->n_peers >= co->cfg.max_peers) {
        conn_close(c, co->phase == CO_DONE ? "shutting down" : "too many connections");
        return;
    }
    peer *p = calloc(1, sizeof *p);
    if (!p) {
        conn_close(c, "out of memory");
        return;
    }
    p->tag = USER_PEER;
    p->co = co;
    p->c = c;
    p->last_rx_ms = uv_now(co->loop);
    p->next = co->peers;
    if (co->peers) co->peers->prev = p;
    co->peers = p;
    co->n_peers++;
    conn_set_user(c, p);
}

static void coord_on_close(conn *c, int status, const char *reason)
{
    const int *tag = conn_user(c);
    if (*tag != USER_PEER) return;      /* closed before on_open: no peer */
    peer *p = conn_user(c);
    coord *co = p->co;
    peer_leave(p, reason && reason[0] ? reason : "closed");
    if (p->host) hosts_leave(&co->hosts, p->host);
    if (p->prev) p->prev->next = p->next;
    else co->peers = p->next;
    if (p->next) p->next->prev = p->prev;
    co->n_peers--;
    free(p);
}

/* Records the partition a client's data comes from among the run settings;
 * clients of one run report the same, so only a new one costs a write. */
static void coord_note_partition(coord *co, const char *name, const char *partition)
{
    if (!partition[0] || !strcmp(partition, co->partition)) return;
    char err[SEFL_ERRLEN], was[SETTINGS_VALUE_MAX];
    if (state_observe_setting(co->st, "partition", partition, co->last_round + 1, was, err)) {
        log_warn("%s", err);
        return;
    }
    if (was[0])
        log_warn("client %s reports partition '%s', the run so far recorded '%s'; recorded as "
                 "a change from round %u", name, partition, was, co->last_round + 1);
    snprintf(co->partition, sizeof co->partition, "%s", partition);
}

static void coord_on_hello(peer *p, const Sefl__Hello *h)
{
    coord *co = p->co;
    const char *name = conn_peer_name(p->c);
    if (!name[0] || strlen(name) >= COORD_NAME_MAX) {
        peer_fail(p, WIRE_ERR_PROTOCOL, "certificate CN empty or too long");
        return;
    }
    /* The identity is the certificate: a second connection with the same CN
     * is the same client reconnecting, so the older one goes. */
    for (peer *q = co->peers; q; q = q->next)
        if (q != p && q->welcomed && !q->closing && !strcmp(q->name, name))
            peer_close(q, "replaced by a newer connection");
    char err[SEFL_ERRLEN];
    if (guard_check_hello(h->train_examples, h->test_examples, err)) {
        peer_fail(p, WIRE_ERR_LIMIT, err);
        return;
    }
    snprintf(p->name, sizeof p->name, "%s", name);
    p->train_examples = h->train_examples;
    p->test_examples = h->test_examples;

    Sefl__ModelSpec spec;
    wire_spec_from_table(&co->t, &spec);
    Sefl__Welcome w = SEFL__WELCOME__INIT;
    w.spec = &spec;
    w.client_id = p->name;
    w.round = co->last_round;
    w.private_groups = (char *)params_private_name(co->cfg.private_mask);
    w.heartbeat_seconds = (uint32_t)co->cfg.heartbeat;
    w.init_seed = co->cfg.seed;
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    e.msg_case = SEFL__ENVELOPE__MSG_WELCOME;
    e.welcome = &w;
    if (peer_send(p, &e)) return;
    conn_set_authenticated(p->c);
    p->welcomed = 1;
    co->n_ready++;
    /* Out of memory for the record only costs the references. */
    if (co->cfg.model_refs && h->host_token.len == WIRE_HOST_TOKEN_LEN)
        p->host = hosts_join(&co->hosts, h->host_token.data);

    if (state_client_seen(co->st, p->name, err)) log_warn("%s", err);
    uint32_t old_train, old_test;
    int changed = state_client_declared(co->st, p->name, p->train_examples, p->test_examples,
                                        &old_train, &old_test, err);
    if (changed < 0) log_warn("%s", err);
    else if (changed)
        log_warn("client %s declares other counts than before: train %u (was %u), test %u "
                 "(was %u)", p->name, p->train_examples, old_train, p->test_examples, old_test);
    coord_note_partition(co, p->name, h->partition);
    const log_field f[] = {
        LOG_STR("event", "client_joined"), LOG_STR("client", p->name),
        LOG_STR("addr", conn_peer_addr(p->c)), LOG_INT("connected", co->n_ready),
    };
    log_fields(LOG_INFO, f, 4, "client %s joined from %s (train %u, test %u; connected %d)", p->name,
               conn_peer_addr(p->c), p->train_examples, p->test_examples, co->n_ready);
    if (co->phase == CO_EVAL) coord_eval_join(co, p);
    coord_advance(co);
}

/* ---- rounds ------------------------------------------------------------ */

static int peer_ready(const peer *p)
{
    return p->welcomed && !p->closing;
}

/* p gets the task in full: references are off, its process sent no host
 * token or was not yet queued this model in full, or it asked for it. */
static int coord_sends_full(const coord *co, const peer *p)
{
    return !co->ref_frame || !p->host || p->want_full || !host_has_model(p->host, co->task_ref);
}

/* Queues the task frame for waiting peers while the bytes queued on all
 * connections stay within the send window (always at least one peer, so a
 * frame larger than the window still goes). A TrainTask or EvalTask is the
 * whole shared model (2.3 MB by default); queued for every client of a
 * large evaluation at once it would make memory grow with the number of
 * clients, so tasks go out in a window that refills as bytes are written.
 * The frame's bytes are the phase's one copy (coord_encode_task); each
 * connection holds only its TLS records of it while they are written. */

static void coord_pump_send(coord *co)
{
    size_t queued = 0;
    int hosted = 0;              /* waiting peers that may get a reference */
    for (peer *p = co->peers; p; p = p->next) {
        if (!p->closing) queued += conn_outq_bytes(p->c);
        hosted += p->send_pending && p->host && co->ref_frame;
    }
    for (peer *p = co->peers, *next; p && co->n_send_pending > 0; p = next) {
        next = p->next;
        if (!p->send_pending) continue;
        int full = coord_sends_full(co, p);
        size_t len = full ? co->task_len : co->ref_len;
        hosted -= p->host && co->ref_frame;
        if (queued > 0 && queued + len > co->cfg.send_window) {
            /* A reference (a few dozen bytes) still fits after a full model
             * that does not, so the rest is scanned only while a peer that
             * may get one is left. */
            if (hosted <= 0) break;
            continue;
        }
        p->send_pending = 0;
        co->n_send_pending--;
        if (peer_send_frame(p, full ? co->task_frame : co->ref_frame, len)) continue;
        queued += len;
        if (!full) {
            co->n_refs++;
            continue;
        }
        co->n_full++;
        p->got_full = 1;
        /* Its process holds the model once this frame is read: the other
         * connections of the process get the reference from now on. */
        if (p->host && co->ref_frame) host_set_model(p->host, co->task_ref);
    }
    if (co->n_send_pending == 0) uv_timer_stop(&co->pump);
    else log_debug("send window full (%zu bytes queued): %d clients wait for their task", queued,
                   co->n_send_pending);
}

static void coord_on_pump(uv_timer_t *t)
{
    coord *co = t->data;
    coord_clock t0 = coord_clock_now();
    coord_pump_send(co);
    if (co->phase == CO_TRAIN) coord_account(co, t0);
}

/* Marks p to be sent the phase's task frame. */
static void coord_queue_task(coord *co, peer *p)
{
    p->send_pending = 1;
    co->n_send_pending++;
}

/* Sends what fits in the window now; the pump timer sends the rest. */
static void coord_send_queued(coord *co)
{
    coord_pump_send(co);
    if (co->n_send_pending > 0) uv_timer_start(&co->pump, coord_on_pump, COORD_PUMP_MS, COORD_PUMP_MS);
}

/* Encodes the phase's task e (a TrainTask or EvalTask whose other fields
 * are set) with the tensors wt into co->task_frame, once for every
 * connection that gets it in full, and with --model-refs, labelled with
 * the model's reference, also into co->ref_frame: the same task with the
 * reference and no tensors. Returns 0 or a negative error (frames unset). */
static int coord_encode_task(coord *co, Sefl__Envelope *e, wire_tensors *wt)
{
    int train = e->msg_case == SEFL__ENVELOPE__MSG_TRAIN_TASK;
    ProtobufCBinaryData *ref = train ? &e->train_task->model_ref : &e->eval_task->model_ref;
    size_t *n = train ? &e->train_task->n_tensors : &e->eval_task->n_tensors;
    Sefl__Tensor ***ts = train ? &e->train_task->tensors : &e->eval_task->tensors;
    free(co->task_frame);
    free(co->ref_frame);
    co->task_frame = co->ref_frame = NULL;
    co->task_len = co->ref_len = 0;
    *n = wt->n;
    *ts = wt->v;
    int rc = 0;
    if (co->cfg.model_refs) {
        if ((rc = wire_model_ref(wt->v, wt->n, co->task_ref)) < 0) return rc;
        ref->len = WIRE_REF_LEN;
        ref->data = co->task_ref;
    }
    if ((rc = wire_encode(e, &co->task_frame, &co->task_len))) return rc;
    if (co->cfg.model_refs) {
        *n = 0;
        *ts = NULL;
        if ((rc = wire_encode(e, &co->ref_frame, &co->ref_len))) {
            free(co->task_frame);
            co->task_frame = NULL;
            return rc;
        }
    }
    return 0;
}

/* Starts sending the phase's task (coord_encode_task) to the peers marked
 * send_pending. */
static void coord_start_sending(coord *co)
{
    co->n_full = co->n_refs = co->n_asked = 0;
    coord_send_queued(co);
}

/* Ends the phase's sending: peers still waiting for the task (over-selected
 * ones a commit made unnecessary) do not get it. Logs what the phase sent:
 * the bytes on every connection since it started, and how many tasks went
 * in full and as references. */
static void coord_stop_sending(coord *co)
{
    for (peer *p = co->peers; p; p = p->next) p->send_pending = p->want_full = p->got_full = 0;
    co->n_send_pending = 0;
    if (co->task_frame && (co->phase == CO_TRAIN || co->phase == CO_EVAL)) {
        netstats ns;
        netstats_get(&ns);
        log_info("%sround %u: sent %llu bytes: the model in full to %d clients (%zu bytes), by "
                 "reference to %d (%zu bytes), %d of them asked for it in full",
                 co->phase == CO_EVAL ? "eval " : "",
                 co->phase == CO_EVAL ? co->eval_round : co->round,
                 (unsigned long long)(ns.bytes_sent - co->phase_sent), co->n_full, co->task_len,
                 co->n_refs, co->ref_len, co->n_asked);
    }
    free(co->task_frame);
    co->task_frame = NULL;
    co->task_len = 0;
    free(co->ref_frame);
    co->ref_frame = NULL;
    co->ref_len = 0;
    if (!uv_is_closing((uv_handle_t *)&co->pump)) uv_timer_stop(&co->pump);
}

/* The phase starts now: its bytes are counted from here. */
static void coord_phase_begin(coord *co)
{
    netstats ns;
    netstats_get(&ns);
    co->phase_sent = ns.bytes_sent;
}

/* p may be selected in the round to come (or in progress): connected and
 * not refused in that round (guard.h). */
static int peer_eligible(const coord *co, const peer *p)
{
    return peer_ready(p) && !guard_refused(&co->g, p->name, co->last_round + 1);
}

/* Connected clients that may be selected in the round to come. Without
 * a refusal for that round (nearly always) it is every connected one, and
 * the peers are not walked: coord_advance runs at every Hello. */
static int coord_eligible(const coord *co)
{
    if (guard_refused_count(&co->g, co->last_round + 1) == 0) return co->n_ready;
    int n = 0;
    for (const peer *p = co->peers; p; p = p->next) n += peer_eligible(co, p);
    return n;
}

/* Selects `want` of the `left` eligible peers that are (boxed = 1) or are
 * not (boxed = 0) in the penalty box, uniformly (Knuth's selection
 * sampling: one pass, no array of candidates), and marks them for the
 * task. */
static int coord_select_from(coord *co, rng *r, int want, int left, int boxed)
{
    int chosen = 0;
    for (peer *p = co->peers; p && want > 0; p = p->next) {
        if (!peer_eligible(co, p) || guard_penalised(&co->g, p->name, co->last_round) != boxed)
            continue;
        if ((int)rng_below(r, (uint64_t)left--) < want) {
            want--;
            p->task = co->task;
            p->reported = 0;
            coord_queue_task(co, p);
            chosen++;
        }
    }
    return chosen;
}

/* Selects `want` of the eligible peers (never one refused in this round)
 * outside the penalty box; penalised ones fill up only when the others are
 * fewer than min_clients, so a penalty from an earlier round never stops
 * the run. Then gives each selected peer its weight cap against the
 * counts the others declared. */
static int coord_select(coord *co, int want, int eligible)
{
    rng r;
    rng_seed(&r, rng_derive(co->cfg.seed, ((uint64_t)co->round << 20) + (uint64_t)co->attempt));
    int boxed = 0;
    for (peer *p = co->peers; p; p = p->next)
        boxed += peer_eligible(co, p) && guard_penalised(&co->g, p->name, co->last_round);
    int free_n = eligible - boxed;
    int chosen = coord_select_from(co, &r, want, free_n, 0);
    if (boxed > 0 && free_n < co->cfg.min_clients) {
        int more = want - chosen < boxed ? want - chosen : boxed;
        log_warn("round %u: only %d connected clients are outside the penalty box, %d needed; "
                 "selecting %d penalised ones", co->round, free_n, co->cfg.min_clients, more);
        chosen += coord_select_from(co, &r, more, boxed, 1);
    }
    unsigned long long declared = 0;
    for (peer *p = co->peers; p; p = p->next)
        if (p->task == co->task) declared += p->train_examples;
    for (peer *p = co->peers; p; p = p->next)
        if (p->task == co->task)
            p->weight_cap = guard_weight_cap(&co->cfg.guard, p->train_examples,
                                             declared - p->train_examples);
    return chosen;
}

/* Stops taking work and closes everything; `bye` is sent to welcomed peers. */
static void coord_finish(coord *co, const char *bye)
{
    if (co->phase == CO_DONE) return;
    if (co->phase == CO_TRAIN)
        log_info("round %u dropped: %s (nothing of it is committed)", co->round, bye);
    co->phase = CO_DONE;
    coord_stop_sending(co);
    for (peer *p = co->peers, *next; p; p = next) {
        next = p->next;
        if (p->closing) continue;
        if (p->welcomed) peer_send_bye(p, bye);
        peer_close(p, bye);
    }
    if (co->lis) conn_listener_close(co->lis);
    co->lis = NULL;
    uv_close((uv_handle_t *)&co->deadline, NULL);
    uv_close((uv_handle_t *)&co->heartbeat, NULL);
    uv_close((uv_handle_t *)&co->pump, NULL);
    uv_close((uv_handle_t *)&co->settle, NULL);
}

/* Starts an attempt at the next round with `eligible` (>= min_clients)
 * clients that may be selected. */
static void coord_start_round(coord *co, int eligible)
{
    coord_clock t0 = coord_clock_now();
    uint32_t round = co->last_round + 1;
    co->attempt = round == co->round ? co->attempt + 1 : 1;
    co->round = round;
    co->task = ++co->next_task;
    co->coord_seconds = co->coord_cpu = 0;
    co->round_start_ns = t0.wall;
    params_gather(&co->t, co->shared, co->global, co->gflat);
    strategy_begin(co->strat, co->gflat);
    guard_round_reset(&co->g);
    collapse_attempt(&co->col, co->attempt == 1);

    int k = co->cfg.clients_per_round;
    int want = (int)ceil(k * co->cfg.over_select - 1e-9);
    if (want > eligible) want = eligible;
    /* A refused client has no chance of selection: the others' is want of
     * the eligible (the larger rate, so the accountant never undercounts). */
    co->dp_rate = (double)want / eligible;

    coord_phase_begin(co);
    wire_tensors wt;
    if (wire_tensors_encode(&co->t, co->shared, co->global, NULL, co->cfg.wire, 0, &wt)) goto oom;
    Sefl__TrainTask tt = SEFL__TRAIN_TASK__INIT;
    tt.update_encoding = wire_enc_encoding(co->cfg.update);
    tt.update_per_channel = co->cfg.update.per_channel;
    tt.round = round;
    tt.lr = co->cfg.lr;
    tt.momentum = co->cfg.momentum;
    tt.weight_decay = co->cfg.weight_decay;
    tt.prox_mu = co->cfg.prox_mu;
    tt.batch = (uint32_t)co->cfg.batch;
    tt.epochs = (uint32_t)co->cfg.epochs;
    tt.private_epochs = (uint32_t)co->cfg.private_epochs;
    tt.private_lr = co->cfg.private_lr;
    tt.seed = rng_derive(co->cfg.seed, round);
    tt.private_groups = (char *)params_private_name(co->cfg.private_mask);
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    e.msg_case = SEFL__ENVELOPE__MSG_TRAIN_TASK;
    e.train_task = &tt;
    int ret = coord_encode_task(co, &e, &wt);
    wire_tensors_release(&wt);
    if (ret) goto oom;
    size_t len = co->task_len;

    co->phase = CO_TRAIN;
    co->selected = co->open = coord_select(co, want, eligible);
    co->target = want < k ? want : k;
    coord_start_sending(co);
    log_debug("round %u: TrainTask encoded and queued in %.3f s", round, coord_since(t0.wall));
    coord_account(co, t0);
    char refused[48] = "";
    if (eligible < co->n_ready)
        snprintf(refused, sizeof refused, " (%d refused in this round)", co->n_ready - eligible);
    log_info("round %u started: selected %d of %d connected%s, commit at %d updates or at the "
             "deadline with >= %d (attempt %d, task %zu bytes)",
             round, co->selected, co->n_ready, refused, co->target, co->cfg.min_clients,
             co->attempt, len);
    /* Timers count from the loop's cached time; refresh it so the deadline
     * is a full round_timeout from now, after the sends above. */
    uv_update_time(co->loop);
    uv_timer_start(&co->deadline, coord_on_deadline, (uint64_t)(co->cfg.round_timeout * 1000), 0);
    return;
oom:
    log_error("round %u: out of memory building the TrainTask", round);
    co->exit_status = 1;
    coord_finish(co, "shutdown");
}

/* p is to get the EvalTask of the evaluation in progress and answer it. */
static void coord_eval_add(coord *co, peer *p)
{
    p->eval_pending = 1;
    coord_queue_task(co, p);
    co->eval_sent++;
}

/* Sets eval_cut so that the evaluation asks the cfg.eval_clients connected
 * clients of smallest sample_key (all of them when eval_clients is 0 or at
 * least the number connected). Returns 0 or -ENOMEM. */
static int coord_eval_sample(coord *co)
{
    co->eval_cut = UINT64_MAX;
    if (co->cfg.eval_clients <= 0 || co->cfg.eval_clients >= co->n_ready) return 0;
    uint64_t *keys = malloc((size_t)co->n_ready * sizeof *keys);
    if (!keys) return -ENOMEM;
    size_t n = 0;
    for (peer *p = co->peers; p && n < (size_t)co->n_ready; p = p->next)
        if (peer_ready(p)) keys[n++] = sample_key(co->cfg.seed, p->name);
    co->eval_cut = sample_cut(keys, n, (size_t)co->cfg.eval_clients);
    free(keys);
    return 0;
}

static void coord_start_eval(coord *co)
{
    wire_tensors wt;
    coord_phase_begin(co);
    if (wire_tensors_encode(&co->t, co->shared, co->global, NULL, co->cfg.wire, 0, &wt)) goto oom;
    Sefl__EvalTask et = SEFL__EVAL_TASK__INIT;
    et.round = co->last_round;
    et.private_groups = (char *)params_private_name(co->cfg.private_mask);
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    e.msg_case = SEFL__ENVELOPE__MSG_EVAL_TASK;
    e.eval_task = &et;
    int ret = coord_encode_task(co, &e, &wt);
    wire_tensors_release(&wt);
    if (ret) goto oom;

    co->phase = CO_EVAL;
    co->eval_due = 0;
    co->eval_round = co->last_round;
    co->eval_sent = co->eval_got = 0;
    co->eval_acc_sum = 0;
    co->eval_examples = 0;
    if (coord_eval_sample(co) < 0) goto oom;
    for (peer *p = co->peers; p; p = p->next)
        if (peer_ready(p) && sample_key(co->cfg.seed, p->name) <= co->eval_cut) coord_eval_add(co, p);
    if (co->cfg.eval_clients > 0)
        log_info("eval round %u started: %d clients (--eval-clients %d: the sample of seed %llu "
                 "among %d connected)", co->eval_round, co->eval_sent, co->cfg.eval_clients,
                 (unsigned long long)co->cfg.seed, co->n_ready);
    else
        log_info("eval round %u started: %d clients", co->eval_round, co->eval_sent);
    uv_timer_start(&co->deadline, coord_on_deadline,
                   co->eval_sent ? (uint64_t)(co->cfg.round_timeout * 1000) : 0, 0);
    /* A failed send un-counts its peer; coord_on_settle ends an evaluation
     * left with no report to wait for. */
    coord_start_sending(co);
    return;
oom:
    log_error("eval round %u: out of memory building the EvalTask", co->last_round);
    co->exit_status = 1;
    coord_finish(co, "shutdown");
}

/* As Flower evaluates whoever is connected, a client welcomed while an
 * evaluation is open is evaluated too: its task goes through the same
 * window and its report is due by the same deadline. */
static void coord_eval_join(coord *co, peer *p)
{
    /* Under --eval-clients, only a client that would have been in the
     * sample had it been connected at the start. */
    if (sample_key(co->cfg.seed, p->name) > co->eval_cut) return;
    coord_eval_add(co, p);
    log_info("eval round %u: client %s joined it (%d clients)", co->eval_round, p->name,
             co->eval_sent);
    coord_send_queued(co);
}

static void coord_end_eval(coord *co)
{
    uv_timer_stop(&co->deadline);
    coord_stop_sending(co);
    for (peer *p = co->peers; p; p = p->next) p->eval_pending = 0;
    log_info("eval round %u done: %d of %d reports, weighted accuracy %.4f", co->eval_round,
             co->eval_got, co->eval_sent,
             co->eval_examples ? co->eval_acc_sum / (double)co->eval_examples : 0.0);
    if (co->eval_examples) {
        co->has_eval = 1;
        co->last_eval_round = co->eval_round;
        co->last_eval_acc = co->eval_acc_sum / (double)co->eval_examples;
    }
    co->phase = CO_IDLE;
    coord_advance(co);
}

static void coord_abandon(coord *co, const char *why);

/* The candidate model (its shared set in flat) is checked before a commit:
 * every update's norm within --max-update-norm, and the mean finite. A
 * failing candidate is not committed: its worst update's client is
 * penalised and the attempt is abandoned and retried; a client whose
 * update was over the bound is not selected again in this round, one
 * blamed for a mean that is not finite only when it must be. Returns 1
 * when it refused (and abandoned). */
static int coord_refuse_candidate(coord *co)
{
    double norm = 0, bound = 0;
    char why[SEFL_ERRLEN + 96], name_line[SEFL_ERRLEN];
    int who = guard_find_outlier(&co->g, &norm, &bound);
    int outlier = who >= 0;
    if (outlier) {
        snprintf(name_line, sizeof name_line, "update norm %.4g over the bound %.4g "
                 "(--max-update-norm %s) in round %u", norm, bound, co->norm_name, co->round);
        snprintf(why, sizeof why, ": update from %s refused, %s", co->part_names[who], name_line);
    } else {
        int finite = 1;
        for (size_t i = 0; i < co->n_shared && finite; i++) finite = isfinite(co->flat[i]);
        if (finite) return 0;
        who = guard_largest(&co->g);
        collapse_candidate(&co->col);
        snprintf(name_line, sizeof name_line, "the mean of round %u is not finite and its update "
                 "was the largest", co->round);
        snprintf(why, sizeof why, ": candidate model not finite, largest update from %s",
                 who >= 0 ? co->part_names[who] : "?");
    }
    co->g.updates_refused++;
    log_warn("round %u: candidate model refused, not committed%s", co->round, why);
    if (who >= 0) {
        char who_name[COORD_NAME_MAX];
        snprintf(who_name, sizeof who_name, "%s", co->part_names[who]);
        /* An update over the bound is a verdict on it: the retry trains
         * from the same model with the same seed, so the client is not
         * selected again in this round. A mean that is not finite only
         * blames the largest update; collapse.h decides about those. */
        coord_penalise(co, who_name, outlier, name_line);
        for (peer *p = co->peers; p; p = p->next)
            if (peer_ready(p) && !strcmp(p->name, who_name))
                peer_send_error(p, WIRE_ERR_REJECTED, name_line);
    }
    coord_abandon(co, ", candidate model refused");
    return 1;
}

/* The seed of a round's DP noise: from the OS, never from --seed, which
 * every client can learn from its task seeds (a DP run is therefore not
 * bit-reproducible). */
static uint64_t coord_noise_seed(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, 0) != (ssize_t)sizeof s) s = uv_hrtime();
    return s;
}

/* Commits the round: the strategy's aggregate (in flat), once the guard
 * accepts it, is applied to the global shared set by the server optimizer
 * and becomes the shared set of the new global model, whose private tensors
 * keep their values; the database gets the round, model, optimizer state,
 * privacy spent and participants in one transaction. */
static void coord_commit(coord *co, coord_clock t0)
{
    uv_timer_stop(&co->deadline);
    char err[SEFL_ERRLEN];
    int n = strategy_count(co->strat);
    const strategy_spec *ag = &co->cfg.agg;
    strategy_finish(co->strat, ag->dp ? coord_noise_seed() : 0, co->flat);
    if (coord_refuse_candidate(co)) return;
    if (sopt_step(co->opt, co->flat, co->gflat)) {
        collapse_candidate(&co->col);
        coord_abandon(co, ", but their aggregate would make the model non-finite");
        return;
    }
    memcpy(co->scratch, co->global, co->t.total * sizeof(float));
    params_scatter(&co->t, co->shared, co->gflat, co->scratch);
    log_info("round %u: update norms mean %.4g, max %.4g", co->round,
             strategy_norm_mean(co->strat), strategy_norm_max(co->strat));
    if (strategy_clipped(co->strat))
        log_info("round %u: clipped %d of %d updates to norm %g", co->round,
                 strategy_clipped(co->strat), n, ag->clip);

    long long examples = 0;
    for (int i = 0; i < n; i++) examples += co->parts[i].examples;
    state_round r = {
        .round = co->round,
        .clients = n,
        .examples = examples,
        .train_loss = strategy_train_loss(co->strat),
        .train_accuracy = strategy_train_accuracy(co->strat),
        .attempt = co->attempt,
        .opt_state = sopt_pending(co->opt),
        .opt_len = sopt_state_len(&co->cfg.opt, co->n_shared),
    };
    rdp_acct spent = co->acct;
    if (ag->dp) {
        rdp_compose(&spent, co->dp_rate, ag->dp_noise, 1);
        r.dp = 1;
        r.dp_rate = co->dp_rate;
        r.dp_noise = ag->dp_noise;
        r.dp_delta = co->cfg.dp_delta;
        r.dp_epsilon = rdp_epsilon(&spent, co->cfg.dp_delta, NULL);
    }
    r.coord_seconds = co->coord_seconds + coord_since(t0.wall);
    r.seconds = coord_since(co->round_start_ns);
    uint64_t tc = uv_hrtime();
    if (state_commit_round(co->st, &r, co->scratch, co->parts, n, err)) {
        log_error("round %u: commit failed: %s", co->round, err);
        co->exit_status = 1;
        coord_finish(co, "shutdown");
        return;
    }
    sopt_accept(co->opt);
    co->acct = spent;
    if (ag->dp)
        log_info("round %u: privacy spent epsilon %.4f at delta %g (sampling rate %.4f, noise "
                 "multiplier %g)", r.round, r.dp_epsilon, r.dp_delta, r.dp_rate, r.dp_noise);
    /* The row was written inside the transaction whose time we now know:
     * put the whole of it in the figures (a crash before this leaves the
     * figures without the commit's own time, nothing worse). */
    coord_account(co, t0);
    r.coord_seconds = co->coord_seconds;
    r.seconds = coord_since(co->round_start_ns);
    if (state_round_times(co->st, r.round, r.seconds, r.coord_seconds, err)) log_warn("%s", err);
    log_debug("round %u: database commit took %.3f s", r.round, coord_since(tc));
    metric_add(co->met.committed, 0, 1);
    metric_observe(co->met.duration, r.seconds);
    co->last_commit_unix = coord_unix_now();
    /* Swap: scratch now holds the committed model. */
    float *tmp = co->global;
    co->global = co->scratch;
    co->scratch = tmp;
    co->last_round = co->round;
    coord_stop_sending(co);
    for (peer *p = co->peers; p; p = p->next) p->task = 0;
    co->phase = CO_IDLE;
    const log_field f[] = {
        LOG_STR("event", "round_committed"), LOG_INT("round", r.round), LOG_INT("clients", r.clients),
        LOG_INT("examples", r.examples), LOG_NUM("train_loss", r.train_loss),
        LOG_NUM("train_accuracy", r.train_accuracy), LOG_NUM("seconds", r.seconds),
        LOG_NUM("coord_seconds", r.coord_seconds), LOG_INT("attempt", r.attempt),
    };
    log_fields(LOG_INFO, f, (int)(sizeof f / sizeof f[0]),
               "round %u committed: clients %d, examples %lld, train_loss %.4f, train_accuracy "
               "%.4f, seconds %.3f, coord_seconds %.3f (cpu %.3f), attempt %d",
               r.round, r.clients, r.examples, r.train_loss, r.train_accuracy, r.seconds,
               r.coord_seconds, co->coord_cpu, r.attempt);
    int rounds = co->cfg.rounds;
    if ((co->cfg.eval_every > 0 && co->last_round % (uint32_t)co->cfg.eval_every == 0) ||
        (rounds > 0 && co->last_round == (uint32_t)rounds))
        co->eval_due = 1;
    coord_advance(co);
}

/* Drops the attempt in progress and retries the same round as soon as
 * enough clients are connected; `why` ends the log line's count of updates
 * with why they fell short. */
static void coord_abandon(coord *co, const char *why)
{
    uv_timer_stop(&co->deadline);
    int stop = collapse_abandoned(&co->col, strategy_count(co->strat), co->open,
                                  co->cfg.min_clients);
    char diverged[64] = "";
    if (co->col.nonfinite)
        snprintf(diverged, sizeof diverged, "; %d diverged or not finite", co->col.nonfinite);
    log_warn("round %u abandoned: %d of %d needed updates%s%s (attempt %d); %s", co->round,
             strategy_count(co->strat), co->cfg.min_clients, why, diverged, co->attempt,
             stop ? "not retried" : "retrying");
    metric_add(co->met.abandoned, 0, 1);
    coord_stop_sending(co);
    for (peer *p = co->peers; p; p = p->next) p->task = 0;
    co->phase = CO_IDLE;
    if (stop) {
        /* Every attempt trains from the same model with the same task seed:
         * a further one would fail the same way (collapse.h). */
        log_error("round %u: stopping the run: %d attempts in a row failed because training "
                  "from the model of round %u diverged or gave non-finite values (%d of %d "
                  "selected clients in the last attempt%s): that model has collapsed, most "
                  "likely from a poisoned or oversized update; nothing after round %u is "
                  "committed; prevent it with --max-update-norm (default 100x), --clip NORM, "
                  "--aggregate median|trimmed:BETA|krum:F or a lower --lr", co->round,
                  co->col.lost, co->last_round, co->col.nonfinite, co->selected,
                  co->col.candidate ? ", and their aggregate was not finite" : "",
                  co->last_round);
        co->exit_status = COORD_EXIT_COLLAPSED;
        coord_finish(co, "the model collapsed");
        return;
    }
    coord_advance(co);
}

static void coord_on_deadline(uv_timer_t *t)
{
    coord *co = t->data;
    if (co->phase == CO_TRAIN) {
        if (strategy_count(co->strat) >= co->cfg.min_clients) coord_commit(co, coord_clock_now());
        else coord_abandon(co, " by the deadline");
    } else if (co->phase == CO_EVAL) {
        coord_end_eval(co);
    }
}

/* Ends the attempt in progress when waiting for its deadline cannot change
 * the outcome: commit once target updates are in, or once at least
 * min_clients are and no selected client still connected owes one; abandon
 * once the updates in and those still owed cannot reach min_clients. */
static void coord_settle_round(coord *co, coord_clock t0)
{
    int need = co->cfg.min_clients;
    if (strategy_count(co->strat) >= co->target || (co->open == 0 && strategy_count(co->strat) >= need)) {
        coord_commit(co, t0);
    } else if (strategy_count(co->strat) + co->open < need) {
        char why[64];
        snprintf(why, sizeof why, ", at most %d more to come: selected clients left", co->open);
        coord_abandon(co, why);
    }
}

/* Armed by a departure. It re-checks the phase it finds, so firing after
 * that phase already ended (and another began) decides nothing wrongly. */
static void coord_on_settle(uv_timer_t *t)
{
    coord *co = t->data;
    if (co->phase == CO_TRAIN) coord_settle_round(co, coord_clock_now());
    else if (co->phase == CO_EVAL && co->eval_got == co->eval_sent) coord_end_eval(co);
}

/* The one line that says why the next round waits although enough clients
 * are connected: those refused in it, each with its reason (the first
 * few), and what the operator can do. */
static void coord_log_refused_wait(coord *co, int eligible)
{
    enum { SHOWN = 4 };
    uint32_t round = co->last_round + 1;
    char list[SHOWN * (COORD_NAME_MAX + GUARD_WHY_MAX + 8) + 32];
    size_t len = 0;
    int n = 0, pos = 0;
    const guard_penalty *e;
    list[0] = 0;
    while ((e = guard_refused_next(&co->g, round, &pos))) {
        if (n++ < SHOWN && len < sizeof list)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s (%s)", n > 1 ? "; " : "",
                                    e->name, e->why);
    }
    if (n > SHOWN && len < sizeof list)
        snprintf(list + len, sizeof list - len, "; and %d more", n - SHOWN);
    const log_field f[] = {
        LOG_STR("event", "round_waiting"), LOG_INT("round", round), LOG_INT("eligible", eligible),
        LOG_INT("needed", co->cfg.min_clients), LOG_INT("refused", n),
    };
    log_fields(LOG_WARN, f, 5, "round %u waits: %d of the %d connected clients may take part, "
               "--min-clients %d needed; refused in this round: %s; connect more clients or "
               "restart with a lower --min-clients and --allow-change", round, eligible,
               co->n_ready, co->cfg.min_clients, list);
}

/* Decides what comes next; runs whenever the coord is idle and something
 * changed. */
static void coord_advance(coord *co)
{
    if (co->phase != CO_IDLE) return;
    int rounds = co->cfg.rounds;
    if (co->eval_due) {
        if (co->n_ready > 0) coord_start_eval(co);
        return;
    }
    if (rounds > 0 && co->last_round >= (uint32_t)rounds) {
        log_info("done: %u rounds committed", co->last_round);
        coord_finish(co, "done");
        return;
    }
    int eligible = coord_eligible(co);
    if (eligible >= co->cfg.min_clients) {
        co->waiting = COORD_WAIT_NONE;
        coord_start_round(co, eligible);
        return;
    }
    int why = co->n_ready >= co->cfg.min_clients ? COORD_WAIT_REFUSED : COORD_WAIT_CLIENTS;
    if (why == co->waiting) return;
    co->waiting = why;
    if (why == COORD_WAIT_CLIENTS) {
        log_info("waiting for clients: %d connected, %d needed", co->n_ready,
                 co->cfg.min_clients);
        return;
    }
    coord_log_refused_wait(co, eligible);
}

/* ---- updates and reports ----------------------------------------------- */

static void coord_reject(peer *p, int kind, const char *reason)
{
    metric_add(p->co->met.rejected, kind, 1);
    log_warn("rejected update from %s: %s", p->name, reason);
    peer_send_error(p, WIRE_ERR_REJECTED, reason);
}

/* Validates one Update and folds it in: right round, selected, first
 * update, a plausible weight, exactly the shared tensor set, finite. The
 * update goes through scratch and flat; the sum changes only if all pass. */
static void coord_on_update(peer *p, const Sefl__Update *u, size_t len, coord_clock t0)
{
    coord *co = p->co;
    char reason[SEFL_ERRLEN + 32];
    int kind = COORD_REJ_NO_ROUND;
    if (co->phase != CO_TRAIN) {
        snprintf(reason, sizeof reason, "round %u: no round in progress (last committed %u)",
                 u->round, co->last_round);
        goto reject;
    }
    if (u->round != co->round) {
        kind = u->round < co->round ? COORD_REJ_STALE : COORD_REJ_UNKNOWN_ROUND;
        snprintf(reason, sizeof reason, "%s round %u, round %u is in progress",
                 u->round < co->round ? "stale" : "unknown", u->round, co->round);
        goto reject;
    }
    if (p->task != co->task) {
        kind = COORD_REJ_NOT_SELECTED;
        snprintf(reason, sizeof reason, "not selected for round %u attempt %d", co->round,
                 co->attempt);
        goto reject;
    }
    if (p->reported) {
        kind = COORD_REJ_DUPLICATE;
        snprintf(reason, sizeof reason, "duplicate update for round %u", co->round);
        goto reject;
    }
    if (u->examples == 0 || u->examples > p->train_examples) {
        kind = COORD_REJ_EXAMPLES;
        snprintf(reason, sizeof reason, "examples %u outside 1..%u (its train split)",
                 u->examples, p->train_examples);
        goto reject;
    }
    char err[SEFL_ERRLEN];
    /* A delta is against the model the task carried; adding it to the exact
     * global (not to its f16/int8 rounding the client saw) keeps the
     * rounding of what is sent from piling up in the global model. */
    if (wire_tensors_apply_delta(&co->t, co->shared, u->tensors, u->n_tensors,
                                 u->delta ? co->global : NULL, co->scratch, err)) {
        kind = COORD_REJ_TENSORS;
        snprintf(reason, sizeof reason, "tensor set: %s", err);
        goto reject;
    }
    params_gather(&co->t, co->shared, co->scratch, co->flat);
    uint32_t weight = u->examples < p->weight_cap ? u->examples : p->weight_cap;
    int ret = strategy_add(co->strat, co->flat, weight, u->train_loss, u->train_accuracy);
    if (ret) {
        kind = ret == -EDOM || ret == -ERANGE ? COORD_REJ_NOT_FINITE : COORD_REJ_EXAMPLES;
        if (kind == COORD_REJ_NOT_FINITE) collapse_client(&co->col);
        snprintf(reason, sizeof reason, "%s",
                 ret == -EDOM     ? "a value is not finite"
                 : ret == -ERANGE ? "its difference from the global model is beyond float range"
                 : ret == -ENOSPC ? "the round already holds all the updates it folds in"
                                  : "examples over the limit");
        goto reject;
    }
    if (weight < u->examples) {
        co->g.weights_capped++;
        log_warn("update from %s for round %u: weight %u capped to %u (--max-weight-share %g "
                 "of the selected clients' declared examples)", p->name, co->round, u->examples,
                 weight, co->cfg.guard.max_weight_share);
    }
    p->reported = 1;
    metric_add(co->met.accepted, 0, 1);
    int i = strategy_count(co->strat) - 1;
    /* ||update - global|| over the shared set, as strategy_add summed it:
     * the bound is checked against the round's median before the commit. */
    guard_add_norm(&co->g, strategy_last_norm(co->strat), i);
    snprintf(co->part_names[i], COORD_NAME_MAX, "%s", p->name);
    co->parts[i].name = co->part_names[i];
    co->parts[i].examples = weight;   /* what it weighs in the mean */
    log_info("update from %s for round %u: examples %u, train_loss %.4f, %zu bytes%s (%d of %d)",
             p->name, co->round, u->examples, u->train_loss, len, u->delta ? " delta" : "",
             strategy_count(co->strat), co->target);
    co->open--;
    coord_settle_round(co, t0);
    return;
reject:
    coord_reject(p, kind, reason);
}

static void coord_on_eval_report(peer *p, const Sefl__EvalReport *r)
{
    coord *co = p->co;
    if (co->phase != CO_EVAL || r->round != co->eval_round || !p->eval_pending) {
        log_warn("ignored eval report from %s for round %u: none asked", p->name, r->round);
        peer_send_error(p, WIRE_ERR_REJECTED, "no evaluation of that round asked");
        return;
    }
    char err[SEFL_ERRLEN];
    if (guard_check_report(r->examples, r->accuracy, r->loss, p->test_examples, err)) {
        co->g.reports_refused++;
        log_warn("refused eval report from %s for round %u: %s (refused so far: %ld)", p->name,
                 r->round, err, co->g.reports_refused);
        peer_send_error(p, WIRE_ERR_REJECTED, err);
        coord_penalise(co, p->name, 0, "a falsified eval report");
        p->eval_pending = 0;
        co->eval_sent--;
        if (co->eval_got == co->eval_sent) coord_end_eval(co);
        return;
    }
    if (state_eval_report(co->st, r->round, p->name, r->examples, r->accuracy, r->loss, err)) {
        log_error("eval round %u: %s", r->round, err);
        co->exit_status = 1;
        coord_finish(co, "shutdown");
        return;
    }
    p->eval_pending = 0;
    co->eval_got++;
    co->eval_acc_sum += (double)r->examples * r->accuracy;
    co->eval_examples += r->examples;
    log_info("eval report from %s for round %u: accuracy %.4f, loss %.4f, examples %u", p->name,
             r->round, r->accuracy, r->loss, r->examples);
    if (co->eval_got == co->eval_sent) coord_end_eval(co);
}

/* A client whose local training diverged answers its TrainTask with
 * Error{WIRE_ERR_DIVERGED} instead of an Update: it is counted, stays
 * connected, owes the attempt nothing more, and sits out the next rounds
 * (a retry that selected it again would only wait for the same failure). */
static void coord_on_diverged(peer *p, const char *msg, coord_clock t0)
{
    coord *co = p->co;
    co->g.diverged++;
    if (!peer_training(p)) {
        log_warn("client %s: training diverged (%s), no task of it was open (diverged so far: "
                 "%ld)", p->name, msg, co->g.diverged);
        return;
    }
    log_warn("client %s: training diverged in round %u (%s); it stays connected (diverged so "
             "far: %ld)", p->name, co->round, msg, co->g.diverged);
    coord_penalise(co, p->name, 0, "its training diverged");
    collapse_client(&co->col);
    p->reported = 1;
    co->open--;
    coord_settle_round(co, t0);
}

/* A client whose process did not hold the model its task referred to asks
 * for it: it gets the task in full, once, while that task is open for it
 * (the same model it would have got without references, so a request
 * reveals nothing and costs no more than references being off). */
static void coord_on_model_request(peer *p, const Sefl__ModelRequest *r)
{
    coord *co = p->co;
    char hex[17];
    int open = (co->phase == CO_TRAIN && peer_training(p) && r->round == co->round) ||
               (co->phase == CO_EVAL && p->eval_pending && r->round == co->eval_round);
    if (!open || !co->ref_frame || p->got_full || p->send_pending ||
        memcmp(r->model_ref.data, co->task_ref, WIRE_REF_LEN)) {
        char msg[96];
        snprintf(msg, sizeof msg, "no open task of round %u refers to model %s for this client",
                 r->round, wire_ref_short(r->model_ref.data, hex));
        log_warn("client %s asked for a model: %s", p->name, msg);
        peer_send_error(p, WIRE_ERR_REJECTED, msg);
        return;
    }
    log_info("client %s asked for model %s of round %u: sending it in full", p->name,
             wire_ref_short(r->model_ref.data, hex), r->round);
    co->n_asked++;
    p->want_full = 1;
    coord_queue_task(co, p);
    coord_send_queued(co);
}

static void coord_on_frame(conn *c, const uint8_t *payload, size_t len)
{
    peer *p = conn_user(c);
    coord *co = p->co;
    if (p->closing) return;
    coord_clock t0 = coord_clock_now();
    p->last_rx_ms = uv_now(co->loop);
    Sefl__Envelope *e = NULL;
    uint32_t code;
    char err[SEFL_ERRLEN];
    if (wire_decode(payload, len, &co->t, wire_alloc_limit(len), &e, &code, err)) {
        peer_fail(p, code, err);
        return;
    }
    int is_update = e->msg_case == SEFL__ENVELOPE__MSG_UPDATE;
    uint64_t task = co->task;   /* a commit below starts another attempt */
    if (!p->welcomed && e->msg_case != SEFL__ENVELOPE__MSG_HELLO) {
        peer_fail(p, WIRE_ERR_PROTOCOL, "the first message must be Hello");
        goto out;
    }
    switch (e->msg_case) {
    case SEFL__ENVELOPE__MSG_HELLO:
        if (p->welcomed) peer_fail(p, WIRE_ERR_PROTOCOL, "a second Hello");
        else coord_on_hello(p, e->hello);
        break;
    case SEFL__ENVELOPE__MSG_UPDATE:
        coord_on_update(p, e->update, len, t0);
        break;
    case SEFL__ENVELOPE__MSG_EVAL_REPORT:
        coord_on_eval_report(p, e->eval_report);
        break;
    case SEFL__ENVELOPE__MSG_MODEL_REQUEST:
        coord_on_model_request(p, e->model_request);
        break;
    case SEFL__ENVELOPE__MSG_HEARTBEAT:
        if (!e->heartbeat->reply) {
            Sefl__Heartbeat hb;
            Sefl__Envelope r;
            wire_heartbeat(&r, &hb, e->heartbeat->nonce, 1);
            peer_send(p, &r);
        }
        break;
    case SEFL__ENVELOPE__MSG_ERROR:
        if (e->error->code == WIRE_ERR_DIVERGED) coord_on_diverged(p, e->error->message, t0);
        else {
            log_warn("client %s sent error %u: %s", p->name, e->error->code, e->error->message);
            peer_close(p, "it sent an error");
        }
        break;
    case SEFL__ENVELOPE__MSG_BYE:
        peer_close(p, e->bye->reason[0] ? e->bye->reason : "bye");
        break;
    default:
        peer_fail(p, WIRE_ERR_PROTOCOL, "a message only the coordinator sends");
        break;
    }
out:
    wire_free(e);
    if (is_update && co->phase == CO_TRAIN && co->task == task) {
        log_debug("update from %s handled in %.3f s", p->name, coord_since(t0.wall));
        coord_account(co, t0);
    }
}

/* ---- heartbeats -------------------------------------------------------- */

/* Pings every welcomed client and closes those silent for
 * COORD_SILENT_BEATS heartbeats (or that never said Hello in that time).
 * A client answers pings from its loop while it trains, so one holding a
 * task is closed like an idle one when it stops reading, and penalised:
 * the round goes on with the others instead of waiting for its deadline. */
static void coord_on_heartbeat(uv_timer_t *t)
{
    coord *co = t->data;
    uint64_t now = uv_now(co->loop);
    uint64_t silent = (uint64_t)co->cfg.heartbeat * 1000 * COORD_SILENT_BEATS;
    for (peer *p = co->peers, *next; p; p = next) {
        next = p->next;
        if (p->closing) continue;
        if (now - p->last_rx_ms > silent) {
            /* A client that stalls every attempt would otherwise hold each
             * of them for 3 heartbeats, forever. */
            if (peer_training(p))
                coord_penalise_failure(co, p->name, "silent for 3 heartbeats while holding a task");
            else if (p->eval_pending)
                coord_penalise(co, p->name, 0, "silent for 3 heartbeats while holding a task");
            peer_close(p, p->welcomed ? "silent for 3 heartbeats" : "no Hello in time");
            continue;
        }
        if (!p->welcomed) continue;
        Sefl__Heartbeat hb;
        Sefl__Envelope e;
        wire_heartbeat(&e, &hb, ++co->hb_nonce, 0);
        peer_send(p, &e);
    }
}

/* ---- lifecycle --------------------------------------------------------- */

void coord_config_default(coord_config *c)
{
    *c = (coord_config){
        .listen = "0.0.0.0:7443",
        .rounds = 0,
        .clients_per_round = 10,
        .min_clients = 2,
        .over_select = 1.3,
        .round_timeout = 300,
        .eval_every = 5,
        .private_mask = PARAM_SE,
        .lr = 0.01f,
        .momentum = 0,
        .weight_decay = 0,
        .prox_mu = 0,
        .batch = 10,
        .epochs = 1,
        .seed = 1,
        .model = model_opts_default(),
        .heartbeat = 10,
        .max_peers = COORD_MAX_PEERS,
        .send_window = COORD_SEND_WINDOW,
        .model_refs = 1,
    };
    guard_config_default(&c->guard);
    c->preauth = conn_preauth_default();
    c->agg = (strategy_spec){ .rule = STRATEGY_FEDAVG };
    c->max_agg_memory = STRATEGY_MAX_AGG_MEMORY;
    c->dp_delta = 1e-5;
    c->max_diverged_attempts = COLLAPSE_MAX_ATTEMPTS;
    sopt_spec_default(&c->opt);
}

/* Puts one stored penalty back in the box (resume). */
static int coord_restore_penalty(void *user, const state_penalty *p)
{
    coord *co = user;
    return guard_restore(&co->g, p->client, p->until, p->refused_round, p->reason);
}

/* A resumed coordinator keeps what it knew: the penalty box, with one line
 * naming the first clients in it, and the last evaluation's figures for
 * monitoring. Returns 0 or negative with err. */
static int coord_resume_memory(coord *co, char *err)
{
    int ret = state_penalties(co->st, co->last_round, GUARD_MAX_PENALTIES, coord_restore_penalty,
                              co, err);
    if (ret == -ENOMEM) err_set(err, "out of memory");
    if (ret) return ret;
    if (co->g.n_box > 0) {
        enum { SHOWN = 4 };
        char list[SHOWN * (COORD_NAME_MAX + 64) + 32];
        size_t len = 0;
        list[0] = 0;
        for (int i = 0; i < co->g.n_box && i < SHOWN && len < sizeof list; i++) {
            const guard_penalty *e = &co->g.box[i];
            char refused[40] = "";
            if (e->refused_round > co->last_round)
                snprintf(refused, sizeof refused, ", refused in round %u", e->refused_round);
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s (until round %u%s)",
                                    i ? ", " : "", e->name, e->until, refused);
        }
        if (co->g.n_box > SHOWN && len < sizeof list)
            snprintf(list + len, sizeof list - len, " and %d more", co->g.n_box - SHOWN);
        log_info("penalty box restored from %s, %d %s: %s", co->cfg.db_path, co->g.n_box,
                 co->g.n_box == 1 ? "entry" : "entries", list);
    }
    int found = 0;
    if ((ret = state_last_eval(co->st, &co->last_eval_round, &co->last_eval_acc, &found, err)))
        return ret;
    co->has_eval = found;
    return 0;
}

/* Adds the privacy of one stored DP round to the accountant (resume). */
static void coord_replay_privacy(void *user, double rate, double noise)
{
    rdp_compose(user, rate, noise, 1);
}

int coord_start(uv_loop_t *loop, const coord_config *cfg, coord **out, char *err)
{
    *out = NULL;
    coord *co = calloc(1, sizeof *co);
    if (!co) return -ENOMEM;
    co->tag = USER_COORD;
    co->loop = loop;
    co->cfg = *cfg;
    co->phase = CO_IDLE;
    co->lock_fd = -1;
    int ret = params_build(&co->t, &cfg->model, err);
    if (ret) goto fail;
    co->shared = params_shared(cfg->private_mask);
    co->n_shared = params_count(&co->t, co->shared);
    int cap = (int)ceil(cfg->clients_per_round * cfg->over_select - 1e-9);
    co->global = malloc(co->t.total * sizeof(float));
    co->scratch = malloc(co->t.total * sizeof(float));
    co->flat = malloc((co->n_shared ? co->n_shared : 1) * sizeof(float));
    co->gflat = malloc((co->n_shared ? co->n_shared : 1) * sizeof(float));
    if ((ret = hosts_init(&co->hosts))) {
        err_set(err, "out of memory");
        goto fail;
    }
    co->parts = calloc((size_t)cap, sizeof *co->parts);
    co->part_names = calloc((size_t)cap, sizeof *co->part_names);
    if ((ret = coord_metrics_init(&co->met, err))) goto fail;
    model *m = model_new(&co->t, 1);
    ret = -ENOMEM;
    if ((ret = strategy_check(&cfg->agg, co->n_shared, cfg->clients_per_round,
                              cfg->max_agg_memory, err))) {
        model_free(m);
        goto fail;
    }
    if (!co->global || !co->scratch || !co->flat || !co->gflat || !co->parts ||
        !co->part_names || !m || guard_init(&co->g, &cfg->guard, cap) ||
        sopt_new(&cfg->opt, co->n_shared, &co->opt) ||
        strategy_new(&cfg->agg, co->n_shared, cfg->clients_per_round, &co->strat, err)) {
        model_free(m);
        ret = -ENOMEM;
        err_set(err, "out of memory");
        goto fail;
    }
    rdp_init(&co->acct);
    co->col.max_attempts = cfg->max_diverged_attempts;
    /* The initial model is what a new database starts from; on resume the
     * stored model replaces it. */
    model_init(m, cfg->seed);
    memcpy(co->global, model_params(m), co->t.total * sizeof(float));
    model_free(m);

    /* Certificates, then the listening socket, then the database: a typo in
     * --certs or a busy port must not leave a new or changed database. The
     * lock comes before the file is read so that a second coordinator on
     * the same file stops before it reads or writes anything. */
    if ((ret = tls_ctx_new_server(&co->tls, cfg->certs_dir, err))) goto fail;
    conn_limits lim = conn_limits_default();
    static const conn_callbacks cb = {
        .on_open = coord_on_open, .on_frame = coord_on_frame, .on_close = coord_on_close,
    };
    if ((ret = conn_listen(loop, cfg->listen, co->tls, &lim, &cb, co, &co->lis, err))) goto fail;
    conn_listener_set_preauth(co->lis, &cfg->preauth);
    if ((ret = store_lock(cfg->db_path, &co->lock_fd, err))) goto fail;
    /* The guard's settings are run settings (coord_settings.c): a resume
     * keeps them unless --allow-change records the change. */
    guard_norm_name(&cfg->guard, co->norm_name, sizeof co->norm_name);
    /* The aggregation settings are run settings (coord_settings.c); these
     * texts are for the start-up log line. */
    char agg_name[STRATEGY_NAME_MAX], clip[32], opt_name[SOPT_NAME_MAX], dp[64];
    strategy_name(&cfg->agg, agg_name, sizeof agg_name);
    snprintf(clip, sizeof clip, "%g", cfg->agg.clip);
    sopt_name(&cfg->opt, opt_name, sizeof opt_name);
    if (cfg->agg.dp) snprintf(dp, sizeof dp, "noise=%g delta=%g", cfg->agg.dp_noise, cfg->dp_delta);
    else snprintf(dp, sizeof dp, "off");
    settings run;
    coord_run_settings(cfg, &run);
    char evaln[16] = "all";
    if (cfg->eval_clients > 0) snprintf(evaln, sizeof evaln, "%d", cfg->eval_clients);
    state_config sc = { .t = &co->t, .private_mask = cfg->private_mask, .init_seed = cfg->seed,
                        .private_epochs = cfg->private_epochs, .private_lr = cfg->private_lr,
                        .run = &run, .allow_change = cfg->allow_change, .eval_clients = evaln };
    if ((ret = state_open(cfg->db_path, &sc, co->global, &co->st, err))) goto fail;
    if ((ret = state_load(co->st, co->global, &co->last_round, err))) goto fail;
    if ((ret = state_run_id(co->st, co->run_id, err))) goto fail;
    size_t opt_len = sopt_state_len(&cfg->opt, co->n_shared);
    if (co->last_round > 0 && opt_len &&
        (ret = state_load_opt(co->st, co->last_round, sopt_state(co->opt), opt_len, err)))
        goto fail;
    if (cfg->agg.dp &&
        (ret = state_privacy_rounds(co->st, coord_replay_privacy, &co->acct, err)))
        goto fail;
    if ((ret = coord_resume_memory(co, err))) goto fail;
    co->round = co->last_round;
    if (co->last_round > 0)
        log_info("resuming after round %u from %s (model checksum %016llx)", co->last_round,
                 cfg->db_path,
                 (unsigned long long)params_checksum(&co->t, params_group(PARAM_ALL), co->global));
    int finished = 0;
    if (cfg->rounds > 0 && co->last_round >= (uint32_t)cfg->rounds) {
        /* The final evaluation is what a run that stopped right after its
         * last commit still owes; once stored, there is nothing left to do. */
        int evaluated = 0;
        if ((ret = state_eval_count(co->st, co->last_round, &evaluated, err))) goto fail;
        finished = evaluated > 0;
        co->eval_due = !finished;
    }

    uv_timer_init(loop, &co->deadline);
    uv_timer_init(loop, &co->heartbeat);
    uv_timer_init(loop, &co->pump);
    uv_timer_init(loop, &co->settle);
    co->deadline.data = co->heartbeat.data = co->pump.data = co->settle.data = co;
    uint64_t hb = (uint64_t)cfg->heartbeat * 1000;
    uv_timer_start(&co->heartbeat, coord_on_heartbeat, hb, hb);

    char addr[256];
    snprintf(addr, sizeof addr, "%s", cfg->listen);
    char *colon = strrchr(addr, ':');
    if (colon) *colon = 0;
    log_info("listening %s:%d", addr, conn_listener_port(co->lis));
    log_info("model %s r=%d%s%s%s%s: %zu parameters, %zu shared (private %s), last committed "
             "round %u",
             co->t.arch, co->t.r, co->t.se_placement[0] ? " " : "", co->t.se_placement,
             co->t.gate[0] ? " gate " : "", co->t.gate, co->t.total, co->n_shared, params_private_name(cfg->private_mask),
             co->last_round);
    log_info("aggregate %s, clip %s, server optimizer %s, dp %s: the rule holds %.1f MB", agg_name,
             clip, opt_name, dp,
             strategy_memory(&cfg->agg, co->n_shared, cfg->clients_per_round) / 1e6);
    *out = co;
    if (finished) {
        log_info("run already finished: %u of --rounds %d committed and evaluated in %s; "
                 "nothing to do", co->last_round, cfg->rounds, cfg->db_path);
        coord_finish(co, "done");
        return 0;
    }
    coord_advance(co);
    return 0;
fail:
    /* The listener closes in the loop the caller still runs. */
    conn_listener_close(co->lis);
    coord_free(co);
    return ret;
}

int coord_port(const coord *co)
{
    return co->lis ? conn_listener_port(co->lis) : -1;
}

void coord_stop(coord *co)
{
    if (co->phase == CO_DONE) return;
    log_info("shutting down: stopping work, closing %d connections", co->n_peers);
    coord_finish(co, "shutdown");
}

int coord_exit_status(const coord *co)
{
    return co->exit_status;
}

void coord_free(coord *co)
{
    if (!co) return;
    state_close(co->st);
    /* Only after SQLite has closed the file (see store_lock). */
    if (co->lock_fd >= 0) close(co->lock_fd);
    coord_metrics_free(&co->met);
    tls_ctx_free(co->tls);
    strategy_free(co->strat);
    sopt_free(co->opt);
    guard_free(&co->g);
    free(co->global);
    free(co->gflat);
    free(co->scratch);
    free(co->flat);
    free(co->parts);
    free(co->part_names);
    free(co->task_frame);
    free(co->ref_frame);
    hosts_free(&co->hosts);
    free(co);
}

static double coord_unix_from_timer(const coord *co, const uv_timer_t *t)
{
    if (!uv_is_active((const uv_handle_t *)t)) return 0;
    return coord_unix_now() + (double)uv_timer_get_due_in(t) / 1e3;
}

void coord_get_status(const coord *co, coord_status *out)
{
    static const char *const phases[] = { "idle", "train", "eval", "done" };
    int train = co->phase == CO_TRAIN, eval = co->phase == CO_EVAL;
    *out = (coord_status){
        .cfg = &co->cfg,
        .run_id = co->run_id,
        .phase = phases[co->phase],
        .ready = co->lis != NULL && co->phase != CO_DONE,
        .round = co->round,
        .last_round = co->last_round,
        .attempt = co->attempt,
        .deadline = train || eval ? coord_unix_from_timer(co, &co->deadline) : 0,
        .connected = co->n_ready,
        .selected = train ? co->selected : 0,
        .reported = train ? strategy_count(co->strat) : 0,
        .eval_sent = eval ? co->eval_sent : 0,
        .eval_got = eval ? co->eval_got : 0,
        .last_commit = co->last_commit_unix,
        .has_eval = co->has_eval,
        .eval_round = co->last_eval_round,
        .eval_accuracy = co->last_eval_acc,
        .candidates_refused = co->g.updates_refused,
        .reports_refused = co->g.reports_refused,
        .weights_capped = co->g.weights_capped,
        .penalised = co->g.penalised,
        .diverged = co->g.diverged,
        .has_gate = co->lis != NULL,
        .next_round = co->last_round + 1,
        .eligible = coord_eligible(co),
        .boxed = guard_boxed(&co->g, co->last_round),
    };
    int pos = 0;
    const guard_penalty *e;
    while ((e = guard_refused_next(&co->g, out->next_round, &pos))) {
        if (out->n_refused < COORD_STATUS_REFUSED)
            out->refused[out->n_refused] = (coord_refusal){ e->name, e->why };
        out->n_refused++;
    }
    /* Between rounds the coord is idle only while it cannot start one
     * (coord_advance starts it at once otherwise). */
    if (co->phase == CO_IDLE && !co->eval_due && out->eligible < co->cfg.min_clients)
        out->waiting = co->n_ready >= co->cfg.min_clients ? "refused" : "clients";
    if (co->lis) conn_listener_stats(co->lis, &out->gate);
}

const struct metrics *coord_event_metrics(const coord *co)
{
    return co->met.reg;
}
