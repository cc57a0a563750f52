/* rxlimit: a bound on the large frames a process receives at once, with
 * back-pressure instead of buffering.
 *
 * A process with thousands of connections (sefl-sim) may be sent a large
 * frame (a task carrying the whole model) on all of them at once; with each
 * connection assembling its own, memory would grow with the number of
 * connections. Connections that share an rxlimit (conn_limits.rx) take a
 * slot for every frame whose length prefix says more than `large` bytes,
 * before reading its payload, and keep it until the frame has been handed to
 * on_frame and that call returned (decoded and dropped). With every slot
 * taken, a connection stops reading its socket: the bytes wait in the
 * kernel, and TCP's flow control holds the sender back until a slot frees.
 * Waiting connections get the freed slots in the order they asked.
 *
 * Frames up to `large` bytes (heartbeats, Welcome, Bye, errors) never wait,
 * so an idle connection keeps answering while others wait for a slot.
 *
 * The waiter's granted callback runs from the loop (an idle handle), never
 * from inside rxlimit_release, so a connection resumes on a clean stack.
 *
 * Ownership: one rxlimit per loop, loop thread only; the owner closes it
 * with rxlimit_close after every connection using it has closed, then runs
 * the loop once more (the handle's close frees it).
 */
#ifndef SEFL_RXLIMIT_H
#define SEFL_RXLIMIT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define RXLIMIT_MAX_SLOTS 1000000

typedef struct rxlimit rxlimit;
typedef struct rxlimit_waiter rxlimit_waiter;

/* Embedded in whoever waits (a conn). Zero it before the first use. */
struct rxlimit_waiter {
    rxlimit_waiter *next;       /* internal: queue links */
    rxlimit_waiter *prev;
    int state;                  /* RXLIMIT_W_*; read-only for the owner */
    void (*granted)(rxlimit_waiter *w);  /* the slot asked for is now w's */
};

enum {
    RXLIMIT_W_NONE,             /* neither holds nor waits */
    RXLIMIT_W_QUEUED,           /* waits for a slot */
    RXLIMIT_W_GRANTED,          /* has a slot; granted not yet called */
    RXLIMIT_W_HELD,             /* holds a slot */
};

typedef struct {
    int max;                    /* slots */
    size_t large;               /* frames over this many bytes take a slot */
    int in_use;                 /* slots taken now (granted ones included) */
    int peak;                   /* most slots taken at once so far */
    int waiting;                /* waiters queued now */
    uint64_t taken;             /* slots taken so far */
    uint64_t waits;             /* of them, taken after a wait */
} rxlimit_stats;

/* max slots (1..RXLIMIT_MAX_SLOTS) for frames over `large` bytes, on loop.
 * Returns 0 and *out, -EINVAL for a max out of range, or -ENOMEM. */
int rxlimit_new(uv_loop_t *loop, int max, size_t large, rxlimit **out);

/* Closes the idle handle and frees l in its close callback. Nothing may
 * hold or wait for a slot. Accepts NULL. */
void rxlimit_close(rxlimit *l);

size_t rxlimit_large(const rxlimit *l);

/* Takes a slot for w. Returns 1 when w holds it now; 0 when w is queued
 * (every slot taken, or others queued first): w->granted runs later from
 * the loop, and from then w holds the slot. */
int rxlimit_acquire(rxlimit *l, rxlimit_waiter *w);

/* Gives back w's slot (held, or granted and not yet announced) or takes w
 * out of the queue; nothing when w has neither. */
void rxlimit_release(rxlimit *l, rxlimit_waiter *w);

void rxlimit_get_stats(const rxlimit *l, rxlimit_stats *out);

#endif
