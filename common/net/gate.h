/* gate: who may open a connection to a listener before authenticating.
 *
 * A TLS handshake costs the server a descriptor, memory and CPU before it
 * knows who the peer is, so a peer with no valid certificate could keep
 * honest clients out. The gate bounds that, per remote address (IPv4, or
 * IPv6 by its /64 network, as one host holds a whole /64):
 *   - connections from one address still in their TLS handshake at once
 *     (max_per_addr);
 *   - handshakes started per second by one address, a token bucket of
 *     `burst` handshakes refilled at per_sec;
 * and for the listener as a whole, the connections it keeps open at once
 * (max_open: the descriptor budget, set below the process's open-files
 * limit so that the database and logs always have descriptors).
 * A refused connection is closed at once, before its handshake. Refusals
 * are WARN lines with counts, at most one per cause per second; accepting
 * resumes by itself as connections close, which is logged too.
 *
 * At most GATE_SLOTS addresses are tracked at once; an address seen when
 * every slot is in use is admitted untracked (the limits are per address,
 * not a fleet-wide cap) and counted.
 *
 * Ownership: a gate is reference-counted: the listener holds one reference
 * and every connection it admitted holds one until it is freed, as
 * connections outlive their listener while closing.
 */
#ifndef SEFL_GATE_H
#define SEFL_GATE_H

#include <stdint.h>
#include <sys/socket.h>

#define GATE_SLOTS 4096
#define GATE_MAX_PER_ADDR 256     /* default max_per_addr */
#define GATE_PER_SEC 100.0        /* default per_sec */
#define GATE_BURST 256            /* default burst */

typedef struct {
    int max_per_addr;           /* handshakes in progress from one address; 0: no limit */
    double per_sec;             /* handshakes one address may start per second; 0: no limit */
    int burst;                  /* handshakes one address may start at once (>= 1) */
    int max_open;               /* connections open at once; 0: no limit */
} conn_preauth;

conn_preauth conn_preauth_default(void);

typedef struct gate gate;

/* Returns a new gate with one reference, or NULL when out of memory. */
gate *gate_new(const conn_preauth *cfg);
void gate_set(gate *g, const conn_preauth *cfg);
void gate_ref(gate *g);
void gate_unref(gate *g);                     /* accepts NULL */

/* Decides on a connection just accepted from sa (addr: its text, for the
 * log) at loop time now_ms. Returns the slot to hand back to gate_opened
 * and gate_closed (-1: untracked) and sets *ok; *ok = 0 means refuse it
 * (logged). */
int gate_admit(gate *g, const struct sockaddr *sa, const char *addr, uint64_t now_ms, int *ok);

/* The connection of slot finished its handshake: no longer pending. */
void gate_opened(gate *g, int slot);

/* The connection of slot is gone; pending when it never finished its
 * handshake. */
void gate_closed(gate *g, int slot, int pending);

/* accept() itself failed for want of descriptors (EMFILE/ENFILE): a WARN
 * with the count (at most one line a second). */
void gate_out_of_fds(gate *g, const char *why, uint64_t now_ms);

/* Counters since the gate was made, for tests and the log. */
typedef struct {
    long open;                  /* connections open now */
    long refused_addr;          /* over max_per_addr */
    long refused_rate;          /* over per_sec */
    long refused_open;          /* over max_open */
    long out_of_fds;            /* accept failures with EMFILE/ENFILE */
    long untracked;             /* admitted with every slot in use */
} gate_stats;
void gate_get_stats(const gate *g, gate_stats *out);

#endif
