/* hosts: client processes by host token; see hosts.h. */
#include "server/hosts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"

_Static_assert((HOSTS_BUCKETS & (HOSTS_BUCKETS - 1)) == 0, "HOSTS_BUCKETS is a power of two");

/* Tokens are random, but the client chooses them: FNV-1a spreads a chosen
 * one no worse than a random one, and a client that piles its own tokens
 * into one chain only slows its own lookups (one per Hello). */
static host **hosts_chain(hosts *hs, const uint8_t *token)
{
    uint64_t h = hash_fnv1a(HASH_FNV_INIT, token, WIRE_HOST_TOKEN_LEN);
    return &hs->bucket[h & (HOSTS_BUCKETS - 1)];
}

int hosts_init(hosts *hs)
{
    hs->n = 0;
    hs->bucket = calloc(HOSTS_BUCKETS, sizeof *hs->bucket);
    return hs->bucket ? 0 : -ENOMEM;
}

void hosts_free(hosts *hs)
{
    if (!hs->bucket) return;
    for (size_t i = 0; i < HOSTS_BUCKETS; i++) {
        while (hs->bucket[i]) {
            host *h = hs->bucket[i];
            hs->bucket[i] = h->next;
            free(h);
        }
    }
    free(hs->bucket);
    hs->bucket = NULL;
    hs->n = 0;
}

host *hosts_join(hosts *hs, const uint8_t token[WIRE_HOST_TOKEN_LEN])
{
    host **chain = hosts_chain(hs, token);
    for (host *h = *chain; h; h = h->next) {
        if (!memcmp(h->token, token, WIRE_HOST_TOKEN_LEN)) {
            h->conns++;
            return h;
        }
    }
    host *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    memcpy(h->token, token, WIRE_HOST_TOKEN_LEN);
    h->conns = 1;
    h->next = *chain;
    *chain = h;
    hs->n++;
    return h;
}

void hosts_leave(hosts *hs, host *h)
{
    if (--h->conns > 0) return;
    for (host **p = hosts_chain(hs, h->token); *p; p = &(*p)->next) {
        if (*p == h) {
            *p = h->next;
            break;
        }
    }
    hs->n--;
    free(h);
}

int host_has_model(const host *h, const uint8_t ref[WIRE_REF_LEN])
{
    return h->has_model && !memcmp(h->model, ref, WIRE_REF_LEN);
}

void host_set_model(host *h, const uint8_t ref[WIRE_REF_LEN])
{
    memcpy(h->model, ref, WIRE_REF_LEN);
    h->has_model = 1;
}
