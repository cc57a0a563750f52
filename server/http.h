/* http: the coordinator's plain-HTTP monitoring endpoint, served by
 * libmicrohttpd from a snapshot the loop thread publishes.
 *
 *   GET /metrics               Prometheus text format 0.0.4
 *   GET /status                JSON; /status?format=table: the same as a
 *                              small text table (what `sefl-server status`
 *                              prints)
 *   GET /healthz               200 "ok" while the publisher is alive (its
 *                              last http_publish less than HTTP_STALE_S
 *                              seconds ago), else 503
 *   GET /readyz                200 "ready" while the last snapshot said
 *                              ready, else 503
 *   anything else              404; a method other than GET or HEAD: 405
 * The suggested address is 127.0.0.1:9464 (HTTP_SUGGESTED_ADDR; the port
 * Prometheus' registry of default ports gives exporters of this kind).
 *
 * Why a snapshot and MHD's own thread, rather than MHD's external select
 * mode driven from the libuv loop: the rounds must never wait on a scraper,
 * and with MHD in the loop a slow or hostile HTTP client would share the
 * loop's time with the federated clients. Here the loop renders its figures
 * a few times a second (monitor.h) and copies them in under a mutex held
 * for a memcpy; MHD's thread answers from the copy and never touches the
 * coordinator's state. A stalled loop shows as a stale snapshot, which is
 * exactly what /healthz reports.
 *
 * Limits (refusals; tests/integration/prometheus.sh tests each but the
 * total connection limit):
 *   request headers over HTTP_MAX_REQUEST bytes: 431 and closed
 *   a request body: not read (every endpoint answers without one)
 *   HTTP_TIMEOUT_S seconds without progress: the connection is closed
 *   HTTP_MAX_CONN connections at once, HTTP_MAX_PER_IP from one address
 * Refusals are logged as WARN lines, at most HTTP_LOG_BURST per
 * HTTP_LOG_WINDOW_S seconds plus a "suppressed" count.
 */
#ifndef SEFL_HTTP_H
#define SEFL_HTTP_H

#include <stddef.h>

#define HTTP_SUGGESTED_ADDR "127.0.0.1:9464"
#define HTTP_MAX_REQUEST 8192
#define HTTP_TIMEOUT_S 5
#define HTTP_MAX_CONN 32
#define HTTP_MAX_PER_IP 8
#define HTTP_STALE_S 10
#define HTTP_LOG_BURST 10          /* MHD's WARN lines per window, at most */
#define HTTP_LOG_WINDOW_S 10

#define HTTP_HOST_MAX 255

typedef struct http http;

/* Splits "HOST:PORT" ("[IPv6]:PORT" too; HOST may be empty) into host and
 * a decimal port 0..65535. Returns 0, or -EINVAL with err naming --http. */
int http_split_addr(const char *hp, char host[HTTP_HOST_MAX + 1], char port[6], char *err);

/* Starts serving on "HOST:PORT" (HOST a name or address; port 0 picks one,
 * see http_port) from an empty snapshot: /readyz 503, /healthz 503 until
 * the first publish. /healthz fails once no publish came for stale_s
 * seconds (sefl-server: HTTP_STALE_S). Returns 0 with *out, or negative
 * with err (e.g. the port is taken). */
int http_start(const char *host_port, double stale_s, http **out, char *err);

int http_port(const http *h);

/* The documents of one snapshot, NUL-terminated; copied. */
typedef struct {
    const char *metrics;
    const char *status_json;
    const char *status_table;
    int ready;
} http_snapshot;

/* Replaces the snapshot and marks the publisher alive. Any thread. Returns
 * 0, or -ENOMEM: the snapshot is then dropped, every endpoint answers 503
 * until a publish succeeds (a process that cannot publish is not healthy). */
int http_publish(http *h, const http_snapshot *s);

/* Stops serving (waits for MHD's thread) and frees. Accepts NULL. */
void http_free(http *h);

#endif
