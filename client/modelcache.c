/* modelcache: the process's decoded models by reference; see modelcache.h.
 *
 * The entries are a tiny array kept newest first: with MODELCACHE_ENTRIES
 * at 2, a scan is cheaper than any index. Waiters are a doubly linked list
 * so that a session can leave it in O(1) whatever the number of sessions.
 */
#include "client/modelcache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t ref[WIRE_REF_LEN];
    unsigned private_mask;
    trainer_globals *g;          /* one reference owned by the cache */
} modelcache_entry;

struct modelcache {
    trainer *tr;
    uint8_t token[WIRE_HOST_TOKEN_LEN];
    modelcache_entry e[MODELCACHE_ENTRIES]; /* (n) newest first */
    int n;
    modelcache_waiter *head, *tail;
    int n_waiters;
    modelcache_stats st;
};

int modelcache_new(trainer *tr, const uint8_t *token, modelcache **out, char *err)
{
    modelcache *mc = calloc(1, sizeof *mc);
    if (!mc) {
        err_set(err, "out of memory");
        return -ENOMEM;
    }
    mc->tr = tr;
    int rc = 0;
    if (token) memcpy(mc->token, token, WIRE_HOST_TOKEN_LEN);
    else if ((rc = wire_host_token(mc->token)) < 0) {
        err_set(err, "cannot draw a host token from the OS's random source: %s", strerror(-rc));
        free(mc);
        return rc;
    }
    *out = mc;
    return 0;
}

void modelcache_free(modelcache *mc)
{
    if (!mc) return;
    for (int i = 0; i < mc->n; i++) trainer_globals_put(mc->tr, mc->e[i].g);
    for (modelcache_waiter *w = mc->head; w; w = w->next) w->linked = 0;
    free(mc);
}

const uint8_t *modelcache_token(const modelcache *mc)
{
    return mc->token;
}

static int modelcache_find(const modelcache *mc, const uint8_t *ref, unsigned private_mask)
{
    for (int i = 0; i < mc->n; i++)
        if (mc->e[i].private_mask == private_mask && !memcmp(mc->e[i].ref, ref, WIRE_REF_LEN))
            return i;
    return -1;
}

void modelcache_put(modelcache *mc, const uint8_t ref[WIRE_REF_LEN], unsigned private_mask,
                    trainer_globals *g)
{
    int i = modelcache_find(mc, ref, private_mask);
    mc->st.full++;
    if (i < 0) {
        /* Evict the oldest when full; its buffer lives on while jobs use it. */
        if (mc->n == MODELCACHE_ENTRIES) trainer_globals_put(mc->tr, mc->e[--mc->n].g);
        i = mc->n++;
    } else {
        trainer_globals_put(mc->tr, mc->e[i].g);
    }
    /* Move slot i to the front. */
    memmove(&mc->e[1], &mc->e[0], (size_t)i * sizeof mc->e[0]);
    memcpy(mc->e[0].ref, ref, WIRE_REF_LEN);
    mc->e[0].private_mask = private_mask;
    mc->e[0].g = trainer_globals_ref(g);

    /* Each ready callback may link or unlink waiters (its session's next
     * task); take the next one only after the call, from the list as it is
     * then, restarting from the head. */
    for (modelcache_waiter *w = mc->head; w;) {
        if (w->private_mask != private_mask || memcmp(w->ref, ref, WIRE_REF_LEN)) {
            w = w->next;
            continue;
        }
        modelcache_cancel(mc, w);
        mc->st.waited++;
        w->ready(w, trainer_globals_ref(g));
        w = mc->head;
    }
}

trainer_globals *modelcache_get(modelcache *mc, const uint8_t ref[WIRE_REF_LEN],
                                unsigned private_mask)
{
    int i = modelcache_find(mc, ref, private_mask);
    if (i < 0) {
        mc->st.misses++;
        return NULL;
    }
    mc->st.hits++;
    return trainer_globals_ref(mc->e[i].g);
}

void modelcache_wait(modelcache *mc, modelcache_waiter *w)
{
    if (w->linked) return;
    w->linked = 1;
    w->next = NULL;
    w->prev = mc->tail;
    if (mc->tail) mc->tail->next = w;
    else mc->head = w;
    mc->tail = w;
    mc->n_waiters++;
}

void modelcache_cancel(modelcache *mc, modelcache_waiter *w)
{
    if (!w->linked) return;
    if (w->prev) w->prev->next = w->next;
    else mc->head = w->next;
    if (w->next) w->next->prev = w->prev;
    else mc->tail = w->prev;
    w->prev = w->next = NULL;
    w->linked = 0;
    mc->n_waiters--;
}

void modelcache_note_request(modelcache *mc)
{
    mc->st.requested++;
}

void modelcache_get_stats(const modelcache *mc, modelcache_stats *out)
{
    *out = mc->st;
}

int modelcache_entries(const modelcache *mc)
{
    return mc->n;
}

int modelcache_waiters(const modelcache *mc)
{
    return mc->n_waiters;
}
