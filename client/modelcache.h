/* modelcache: the decoded global models a client process holds for its
 * sessions, so that the coordinator may send a model once per process and
 * refer to it on its other connections (wire_ref.h, proto/PROTOCOL.md
 * "Model references").
 *
 * One cache per process (sefl-sim: every simulated client's session shares
 * it; sefl-client: its one session). It owns the process's host token,
 * drawn once from the OS's CSPRNG, which every session sends in Hello. It
 * remembers the MODELCACHE_ENTRIES models last received in full, each as a
 * reference to the trainer's read-only globals buffer (trainer.h) under the
 * model_ref the coordinator labelled it with, so it holds at most that many
 * models beyond those jobs hold anyway, however many clients the process
 * runs. A session that receives a reference looks it up (modelcache_get);
 * one that misses may wait for a model another session is still receiving
 * (modelcache_wait), for at most MODELCACHE_WAIT_MS (the session's timer),
 * and then asks the coordinator for it (ModelRequest).
 *
 * Everything runs on the loop thread. Ownership: the cache holds one
 * reference per entry and drops them in modelcache_free, which must come
 * before trainer_free.
 */
#ifndef SEFL_MODELCACHE_H
#define SEFL_MODELCACHE_H

#include <stdint.h>

#include "client/trainer.h"
#include "common/fl/wire_ref.h"

#define MODELCACHE_ENTRIES 2         /* models kept: the last two received in full */
#define MODELCACHE_WAIT_MS 3000      /* how long a session waits for a model another
                                        session of the process is receiving */

typedef struct modelcache modelcache;

/* A session waiting for a model (modelcache_wait): ready runs once, when a
 * model with ref and private_mask is put, with a new reference the callee
 * owns; the waiter is unlinked before the call. */
typedef struct modelcache_waiter modelcache_waiter;
struct modelcache_waiter {
    uint8_t ref[WIRE_REF_LEN];
    unsigned private_mask;
    void (*ready)(modelcache_waiter *w, trainer_globals *g);
    void *user;
    modelcache_waiter *prev, *next; /* internal */
    int linked;                      /* internal: waiting */
};

/* Creates a cache for the globals of tr with a host token from the OS's
 * CSPRNG, or a copy of token when it is not NULL (tests). Returns 0 and
 * *out, or negative with err. */
int modelcache_new(trainer *tr, const uint8_t *token, modelcache **out, char *err);

/* Drops the cache's references; the waiters left are dropped unsignalled.
 * Accepts NULL. */
void modelcache_free(modelcache *mc);

/* The process's host token (WIRE_HOST_TOKEN_LEN bytes). */
const uint8_t *modelcache_token(const modelcache *mc);

/* Remembers g, the model a task labelled ref carried in full, as the newest
 * entry (an entry with the same ref and mask is replaced; past
 * MODELCACHE_ENTRIES the oldest is dropped), taking a reference of its own,
 * then hands it to every waiter for ref and mask. */
void modelcache_put(modelcache *mc, const uint8_t ref[WIRE_REF_LEN], unsigned private_mask,
                    trainer_globals *g);

/* The model with ref and mask with a new reference the caller owns, or
 * NULL when the cache does not hold it. */
trainer_globals *modelcache_get(modelcache *mc, const uint8_t ref[WIRE_REF_LEN],
                                unsigned private_mask);

/* Links w (ref, private_mask, ready and user set) until its model is put or
 * modelcache_cancel. w must stay valid while linked. */
void modelcache_wait(modelcache *mc, modelcache_waiter *w);

/* Unlinks w if it waits; safe on one that does not. */
void modelcache_cancel(modelcache *mc, modelcache_waiter *w);

/* The session that waited for a model in vain asked the coordinator for
 * it (counted in the figures below). */
void modelcache_note_request(modelcache *mc);

/* What the cache did since it was made, for a process's summary line. */
typedef struct {
    long full;                  /* models put (tasks received in full with a reference) */
    long hits;                  /* references resolved at once */
    long misses;                /* references the cache did not hold */
    long waited;                /* misses resolved by a model put while waiting */
    long requested;             /* misses asked for (ModelRequest) */
} modelcache_stats;
void modelcache_get_stats(const modelcache *mc, modelcache_stats *out);

/* Entries held and waiters linked (tests, logs). */
int modelcache_entries(const modelcache *mc);
int modelcache_waiters(const modelcache *mc);

#endif
