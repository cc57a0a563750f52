/* hosts: the coordinator's client processes, grouped by the host token
 * their connections send in Hello (wire_ref.h), and which model each was
 * last sent in full.
 *
 * Connections with the same token share one process's model cache
 * (client/modelcache.h), so once one of them was sent a task's model in
 * full the others get a reference to it. The token is the client's own
 * choice and proves nothing: grouping by it decides only whether a
 * connection gets the model's bytes or its hash, and a connection that
 * cannot resolve the hash asks for the bytes (proto/PROTOCOL.md).
 *
 * A hash table of chains keyed by token; a host lives while connections
 * of it are open (hosts_join / hosts_leave count them). Loop thread only.
 * Memory: one small record per distinct token, so at most one per
 * connection.
 */
#ifndef SEFL_HOSTS_H
#define SEFL_HOSTS_H

#include <stddef.h>
#include <stdint.h>

#include "common/fl/wire_ref.h"

#define HOSTS_BUCKETS 4096           /* chains; a power of two */

typedef struct host host;
struct host {
    uint8_t token[WIRE_HOST_TOKEN_LEN];
    int conns;                   /* open connections with this token */
    int has_model;               /* model below was queued in full to one of them */
    uint8_t model[WIRE_REF_LEN]; /* the reference of that model */
    host *next;                  /* chain */
};

typedef struct {
    host **bucket;               /* (HOSTS_BUCKETS) chains */
    size_t n;                    /* hosts */
} hosts;

/* Returns 0 or -ENOMEM. */
int hosts_init(hosts *hs);
void hosts_free(hosts *hs);      /* every host; accepts a zeroed one */

/* The host of token with one more connection (made when new), or NULL
 * when out of memory. */
host *hosts_join(hosts *hs, const uint8_t token[WIRE_HOST_TOKEN_LEN]);

/* One connection of h fewer; h is freed with its last. */
void hosts_leave(hosts *hs, host *h);

/* h's process holds (or is receiving) the model ref: one of its
 * connections was queued that model in full. */
int host_has_model(const host *h, const uint8_t ref[WIRE_REF_LEN]);
void host_set_model(host *h, const uint8_t ref[WIRE_REF_LEN]);

#endif
