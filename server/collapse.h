/* collapse: telling a round that cannot succeed from one that was unlucky.
 *
 * When a poisoned or oversized update gets into the global model (fedavg
 * with the norm guard off, for instance), the model can collapse: every
 * client's training from it diverges (Error{DIVERGED}) or yields non-finite
 * values, so no attempt at the next round gathers its updates. The round's
 * task seed is the same at every attempt, so retrying cannot help; the
 * coordinator used to retry forever. collapse counts, per attempt, the
 * clients whose answer was not finite (and whether the aggregate itself was
 * not), and per round the attempts lost to that; after max_attempts such
 * attempts in a row the coordinator stops the run (exit status 3) with one
 * line naming the cause and the flags that prevent it.
 *
 * An attempt counts as lost to non-finite training when it is abandoned and
 * either its aggregate was not finite, or the clients that answered with
 * non-finite values would have made up min_clients with the updates folded
 * in and those still owed. An attempt abandoned for another reason (only
 * because clients left, say) does not count and resets the count.
 * Plain counters: no allocation, no ownership.
 */
#ifndef SEFL_COLLAPSE_H
#define SEFL_COLLAPSE_H

#define COLLAPSE_MAX_ATTEMPTS 3      /* default --max-diverged-attempts */

typedef struct {
    int max_attempts;           /* stop after this many lost attempts in a row; 0: never */
    int nonfinite;              /* clients of this attempt that diverged or sent non-finite values */
    int candidate;              /* this attempt's aggregate (or its step) was not finite */
    int lost;                   /* attempts at this round lost to non-finite training, in a row */
} collapse;

/* Starts an attempt; new_round says it is the first attempt at its round. */
void collapse_attempt(collapse *c, int new_round);

/* A selected client's training diverged, or its update was not finite. */
void collapse_client(collapse *c);

/* The attempt's aggregate, or the model it would make, was not finite. */
void collapse_candidate(collapse *c);

/* The attempt was abandoned with `folded` updates in, `owed` more owed by
 * selected clients still connected, `min_clients` needed. Returns 1 when
 * this makes max_attempts lost attempts in a row: the run must stop; 0
 * otherwise. */
int collapse_abandoned(collapse *c, int folded, int owed, int min_clients);

#endif
