/* rxlimit: slots for large frames being received; see rxlimit.h.
 *
 * Two FIFO lists of waiters: the queue (asked, no slot free) and the
 * granted list (a slot was set aside for them by a release, and their
 * granted callback is due). A release that finds the queue non-empty moves
 * its head to the granted list with the freed slot, so no newcomer can take
 * it in between, and starts the idle handle, whose callback announces every
 * grant; the callbacks run outside whatever code released the slot.
 */
#include "common/net/rxlimit.h"

#include <errno.h>
#include <stdlib.h>

typedef struct {
    rxlimit_waiter *head, *tail;
} rxlimit_list;

struct rxlimit {
    uv_idle_t idle;             /* announces grants; data points back here */
    int max;
    size_t large;
    int in_use;
    int peak;
    int waiting;
    uint64_t taken, waits;
    rxlimit_list queue;         /* waiting for a slot */
    rxlimit_list granted;       /* given a slot, not yet told */
};

static void rxlimit_push(rxlimit_list *q, rxlimit_waiter *w)
{
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail) q->tail->next = w;
    else q->head = w;
    q->tail = w;
}

static void rxlimit_unlink(rxlimit_list *q, rxlimit_waiter *w)
{
    if (w->prev) w->prev->next = w->next;
    else q->head = w->next;
    if (w->next) w->next->prev = w->prev;
    else q->tail = w->prev;
    w->next = w->prev = NULL;
}

static void rxlimit_take(rxlimit *l)
{
    l->in_use++;
    l->taken++;
    if (l->in_use > l->peak) l->peak = l->in_use;
}

static void rxlimit_on_idle(uv_idle_t *h)
{
    rxlimit *l = h->data;
    rxlimit_waiter *w;
    /* A callback may release (and so grant again): the list is read anew
     * each time. */
    while ((w = l->granted.head)) {
        rxlimit_unlink(&l->granted, w);
        w->state = RXLIMIT_W_HELD;
        w->granted(w);
    }
    uv_idle_stop(&l->idle);
}

/* A slot has been freed: the first waiter gets it. */
static void rxlimit_grant_next(rxlimit *l)
{
    rxlimit_waiter *w = l->queue.head;
    if (!w || l->in_use >= l->max) return;
    rxlimit_unlink(&l->queue, w);
    l->waiting--;
    rxlimit_take(l);
    l->waits++;
    w->state = RXLIMIT_W_GRANTED;
    rxlimit_push(&l->granted, w);
    uv_idle_start(&l->idle, rxlimit_on_idle);
}

int rxlimit_new(uv_loop_t *loop, int max, size_t large, rxlimit **out)
{
    *out = NULL;
    if (max < 1 || max > RXLIMIT_MAX_SLOTS) return -EINVAL;
    rxlimit *l = calloc(1, sizeof *l);
    if (!l) return -ENOMEM;
    l->max = max;
    l->large = large;
    uv_idle_init(loop, &l->idle);   /* cannot fail on a live loop */
    l->idle.data = l;
    *out = l;
    return 0;
}

static void rxlimit_on_closed(uv_handle_t *h)
{
    free(h->data);
}

void rxlimit_close(rxlimit *l)
{
    if (l) uv_close((uv_handle_t *)&l->idle, rxlimit_on_closed);
}

size_t rxlimit_large(const rxlimit *l)
{
    return l->large;
}

int rxlimit_acquire(rxlimit *l, rxlimit_waiter *w)
{
    if (w->state == RXLIMIT_W_HELD) return 1;
    if (w->state != RXLIMIT_W_NONE) return 0;
    if (l->in_use < l->max && !l->queue.head) {
        rxlimit_take(l);
        w->state = RXLIMIT_W_HELD;
        return 1;
    }
    w->state = RXLIMIT_W_QUEUED;
    rxlimit_push(&l->queue, w);
    l->waiting++;
    return 0;
}

void rxlimit_release(rxlimit *l, rxlimit_waiter *w)
{
    const int state = w->state;
    w->state = RXLIMIT_W_NONE;
    if (state == RXLIMIT_W_QUEUED) {
        rxlimit_unlink(&l->queue, w);
        l->waiting--;
        return;
    }
    if (state == RXLIMIT_W_GRANTED) rxlimit_unlink(&l->granted, w);
    if (state == RXLIMIT_W_GRANTED || state == RXLIMIT_W_HELD) {
        l->in_use--;
        rxlimit_grant_next(l);
    }
}

void rxlimit_get_stats(const rxlimit *l, rxlimit_stats *out)
{
    *out = (rxlimit_stats){ .max = l->max, .large = l->large, .in_use = l->in_use,
                            .peak = l->peak, .waiting = l->waiting, .taken = l->taken,
                            .waits = l->waits };
}
