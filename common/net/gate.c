/* gate: per-address admission before the TLS handshake and the listener's
 * descriptor budget; see gate.h. */
#include "common/net/gate.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define GATE_WARN_MS 1000         /* one WARN line per cause per second at most */

typedef struct {
    unsigned char key[16];      /* IPv4 address, or an IPv6 /64 prefix */
    int len;                    /* 4 or 8; 0: the slot is free */
    int pending;                /* its connections still in the handshake */
    double tokens;              /* handshakes it may still start now */
    uint64_t stamp_ms;          /* when tokens was last brought up to date */
} gate_slot;

enum { WARN_ADDR, WARN_RATE, WARN_OPEN, WARN_FDS, WARN_N };

struct gate {
    int refs;
    conn_preauth cfg;
    gate_stats st;
    int full;                   /* at max_open: refusing; logged when it ends */
    uint64_t warned_ms[WARN_N]; /* when each cause last logged */
    int warned[WARN_N];
    gate_slot slots[GATE_SLOTS];
};

conn_preauth conn_preauth_default(void)
{
    return (conn_preauth){ .max_per_addr = GATE_MAX_PER_ADDR, .per_sec = GATE_PER_SEC,
                           .burst = GATE_BURST, .max_open = 0 };
}

gate *gate_new(const conn_preauth *cfg)
{
    gate *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->refs = 1;
    gate_set(g, cfg);
    return g;
}

void gate_set(gate *g, const conn_preauth *cfg)
{
    g->cfg = *cfg;
    if (g->cfg.burst < 1) g->cfg.burst = 1;
}

void gate_ref(gate *g)
{
    g->refs++;
}

void gate_unref(gate *g)
{
    if (g && --g->refs == 0) free(g);
}

/* 1 when the cause may log now (and records that it did). */
static int gate_may_warn(gate *g, int cause, uint64_t now_ms)
{
    if (g->warned[cause] && now_ms - g->warned_ms[cause] < GATE_WARN_MS) return 0;
    g->warned[cause] = 1;
    g->warned_ms[cause] = now_ms;
    return 1;
}

static int gate_key(const struct sockaddr *sa, unsigned char key[16])
{
    if (sa->sa_family == AF_INET) {
        memcpy(key, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 4;
    }
    if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 8);
        return 8;
    }
    return 0;
}

/* Brings a slot's bucket up to now. */
static void gate_refill(const gate *g, gate_slot *s, uint64_t now_ms)
{
    double t = s->tokens + (double)(now_ms - s->stamp_ms) / 1000.0 * g->cfg.per_sec;
    s->tokens = t > g->cfg.burst ? g->cfg.burst : t;
    s->stamp_ms = now_ms;
}

/* The slot of key, or a free one for it, or -1 when every slot is busy. A
 * slot is free again once its address has nothing pending and a full
 * bucket: forgetting it then changes nothing. */
static int gate_slot_for(gate *g, const unsigned char *key, int len, uint64_t now_ms)
{
    int spare = -1;
    for (int i = 0; i < GATE_SLOTS; i++) {
        gate_slot *s = &g->slots[i];
        if (s->len == len && !memcmp(s->key, key, (size_t)len)) return i;
        if (spare >= 0) continue;
        if (s->len == 0) spare = i;
        else if (s->pending == 0) {
            gate_refill(g, s, now_ms);
            if (g->cfg.per_sec <= 0 || s->tokens >= g->cfg.burst) spare = i;
        }
    }
    if (spare < 0) return -1;
    gate_slot *s = &g->slots[spare];
    memset(s, 0, sizeof *s);
    memcpy(s->key, key, (size_t)len);
    s->len = len;
    s->tokens = g->cfg.burst;
    s->stamp_ms = now_ms;
    return spare;
}

int gate_admit(gate *g, const struct sockaddr *sa, const char *addr, uint64_t now_ms, int *ok)
{
    *ok = 0;
    if (g->cfg.max_open > 0 && g->st.open >= g->cfg.max_open) {
        g->st.refused_open++;
        g->full = 1;
        if (gate_may_warn(g, WARN_OPEN, now_ms))
            log_warn("connections at the descriptor budget (%ld open, limit %d): refusing new "
                     "connections (refused so far: %ld)", g->st.open, g->cfg.max_open,
                     g->st.refused_open);
        return -1;
    }
    unsigned char key[16];
    int len = gate_key(sa, key);
    int slot = len ? gate_slot_for(g, key, len, now_ms) : -1;
    if (slot < 0) {
        if (len) g->st.untracked++;
    } else {
        gate_slot *s = &g->slots[slot];
        if (g->cfg.max_per_addr > 0 && s->pending >= g->cfg.max_per_addr) {
            g->st.refused_addr++;
            if (gate_may_warn(g, WARN_ADDR, now_ms))
                log_warn("refused a connection from %s: %d of its connections are still in the "
                         "TLS handshake (limit %d per address; refused so far: %ld)", addr,
                         s->pending, g->cfg.max_per_addr, g->st.refused_addr);
            return -1;
        }
        if (g->cfg.per_sec > 0) {
            gate_refill(g, s, now_ms);
            if (s->tokens < 1) {
                g->st.refused_rate++;
                if (gate_may_warn(g, WARN_RATE, now_ms))
                    log_warn("refused a connection from %s: over %g handshakes per second per "
                             "address (burst %d; refused so far: %ld)", addr, g->cfg.per_sec,
                             g->cfg.burst, g->st.refused_rate);
                return -1;
            }
            s->tokens -= 1;
        }
        s->pending++;
    }
    if (g->full) {
        g->full = 0;
        log_info("descriptors available again: accepting (%ld open, %ld refused while full)",
                 g->st.open, g->st.refused_open);
    }
    g->st.open++;
    *ok = 1;
    return slot;
}

void gate_opened(gate *g, int slot)
{
    if (slot >= 0 && g->slots[slot].pending > 0) g->slots[slot].pending--;
}

void gate_closed(gate *g, int slot, int pending)
{
    if (pending) gate_opened(g, slot);
    if (g->st.open > 0) g->st.open--;
}

void gate_out_of_fds(gate *g, const char *why, uint64_t now_ms)
{
    g->st.out_of_fds++;
    g->full = 1;
    if (gate_may_warn(g, WARN_FDS, now_ms))
        log_warn("accept failed: %s (%ld open connections; failures so far: %ld); accepting "
                 "resumes as descriptors free up", why, g->st.open, g->st.out_of_fds);
}

void gate_get_stats(const gate *g, gate_stats *out)
{
    *out = g->st;
}
