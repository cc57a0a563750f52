/* http: libmicrohttpd endpoint serving published snapshots; see http.h. */
#include "server/http.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/log.h"
#include "common/ratelimit.h"
#include "common/strbuf.h"

struct http {
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t lock;        /* guards everything below */
    strbuf metrics, json, table; /* the snapshot */
    int ready;
    int published;               /* a snapshot was published at all */
    double beat;                 /* CLOCK_MONOTONIC seconds of the last publish */
    double stale_s;              /* /healthz fails when beat is older */
};

static double http_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* MHD's own error messages (bind failures, requests refused, connection
 * limits hit) as WARN lines, rate-limited as any line a client can cause;
 * they end in a newline that the log line must not repeat. */
static void http_log(void *cls, const char *fmt, va_list ap)
{
    static ratelimit limit = RATELIMIT_INIT(HTTP_LOG_BURST, HTTP_LOG_WINDOW_S);
    uint64_t dropped;
    int ok = ratelimit_allow(&limit, &dropped);
    if (dropped)
        log_warn("http: %llu log lines suppressed in the last %d s", (unsigned long long)dropped,
                 HTTP_LOG_WINDOW_S);
    if (!ok) return;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    log_warn("http: %s", line);
}

static enum MHD_Result http_reply(struct MHD_Connection *c, unsigned code, const char *type,
                                  const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result http_text(struct MHD_Connection *c, unsigned code, const char *text)
{
    return http_reply(c, code, "text/plain; charset=utf-8", text, strlen(text));
}

/* Answers from the snapshot, copied while the lock is held. */
static enum MHD_Result http_from_snapshot(http *h, struct MHD_Connection *c, const strbuf *doc,
                                          const char *type)
{
    pthread_mutex_lock(&h->lock);
    enum MHD_Result ret = h->published
        ? http_reply(c, MHD_HTTP_OK, type, doc->p ? doc->p : "", doc->len)
        : http_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "no snapshot yet\n");
    pthread_mutex_unlock(&h->lock);
    return ret;
}

static enum MHD_Result http_on_request(void *cls, struct MHD_Connection *c, const char *url,
                                       const char *method, const char *version,
                                       const char *upload_data, size_t *upload_data_size,
                                       void **con_cls)
{
    http *h = cls;
    /* Every answer is queued on the first call, before any body is read:
     * no endpoint takes one, so a body is never buffered. */
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
        return http_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    if (!strcmp(url, "/metrics"))
        return http_from_snapshot(h, c, &h->metrics, "text/plain; version=0.0.4; charset=utf-8");
    if (!strcmp(url, "/status")) {
        const char *fmt = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");
        if (fmt && !strcmp(fmt, "table"))
            return http_from_snapshot(h, c, &h->table, "text/plain; charset=utf-8");
        if (fmt && strcmp(fmt, "json"))
            return http_text(c, MHD_HTTP_BAD_REQUEST, "format must be json or table\n");
        return http_from_snapshot(h, c, &h->json, "application/json");
    }
    if (!strcmp(url, "/healthz")) {
        pthread_mutex_lock(&h->lock);
        double age = http_now() - h->beat;
        int published = h->published;
        pthread_mutex_unlock(&h->lock);
        if (published && age < h->stale_s) return http_text(c, MHD_HTTP_OK, "ok\n");
        char msg[96];
        if (published) snprintf(msg, sizeof msg, "stalled: no snapshot for %.0f s\n", age);
        else snprintf(msg, sizeof msg, "no snapshot yet\n");
        return http_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
    }
    if (!strcmp(url, "/readyz")) {
        pthread_mutex_lock(&h->lock);
        int ready = h->ready;
        pthread_mutex_unlock(&h->lock);
        return ready ? http_text(c, MHD_HTTP_OK, "ready\n")
                     : http_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready\n");
    }
    return http_text(c, MHD_HTTP_NOT_FOUND, "not found: /metrics /status /healthz /readyz\n");
}

int http_split_addr(const char *hp, char host[HTTP_HOST_MAX + 1], char port[6], char *err)
{
    const char *colon = strrchr(hp, ':');
    size_t n = colon ? (size_t)(colon - hp) : 0;
    if (!colon || n > HTTP_HOST_MAX) {
        err_set(err, "--http %s: expected HOST:PORT", hp);
        return -EINVAL;
    }
    memcpy(host, hp, n);
    host[n] = 0;
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        memmove(host, host + 1, n - 2);
        host[n - 2] = 0;
    }
    char *end;
    long v = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || v < 0 || v > 65535 || strlen(colon + 1) > 5) {
        err_set(err, "--http %s: the port must be 0..65535", hp);
        return -EINVAL;
    }
    snprintf(port, 6, "%ld", v);
    return 0;
}

/* Resolves "HOST:PORT" for binding (an empty HOST: every address). */
static int http_resolve(const char *hp, struct addrinfo **res, char *err)
{
    char host[HTTP_HOST_MAX + 1], port[6];
    int ret = http_split_addr(hp, host, port, err);
    if (ret) return ret;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, res);
    if (rc) {
        err_set(err, "--http %s: cannot resolve %s: %s", hp, host, gai_strerror(rc));
        return -EINVAL;
    }
    return 0;
}

/* Binds and listens ourselves, so that a failure names its errno (MHD's
 * start gives only NULL). Returns the socket, or a negative errno with err. */
static int http_listen(const char *host_port, const struct addrinfo *ai, char *err)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0) goto fail;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) goto fail;
    return fd;
fail:;
    int e = errno;
    err_set(err, "--http %s: cannot listen: %s", host_port, strerror(e));
    if (fd >= 0) close(fd);
    return -e;
}

int http_start(const char *host_port, double stale_s, http **out, char *err)
{
    *out = NULL;
    struct addrinfo *ai = NULL;
    http *h = NULL;
    int fd = -1;
    int ret = http_resolve(host_port, &ai, err);
    if (ret) return ret;
    if ((fd = http_listen(host_port, ai, err)) < 0) {
        ret = fd;
        goto out;
    }
    h = calloc(1, sizeof *h);
    if (!h) {
        err_set(err, "out of memory");
        ret = -ENOMEM;
        goto out;
    }
    pthread_mutex_init(&h->lock, NULL);
    h->stale_s = stale_s;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(
        flags, 0, NULL, NULL, http_on_request, h,
        /* First, so that MHD says nothing through its own logger. */
        MHD_OPTION_EXTERNAL_LOGGER, http_log, NULL,
        MHD_OPTION_LISTEN_SOCKET, fd,
        /* The request line and headers must fit in this pool: more is
         * answered 431 and closed. */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_MAX_REQUEST,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONN,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)HTTP_MAX_PER_IP,
        MHD_OPTION_END);
    if (!h->d) {
        /* MHD logged why through http_log (threads, memory). */
        err_set(err, "--http %s: cannot start the HTTP server", host_port);
        ret = -EIO;
        goto out;
    }
    fd = -1;   /* MHD's now: MHD_stop_daemon closes it */
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : -1;
    *out = h;
    h = NULL;
out:
    if (fd >= 0) close(fd);
    http_free(h);
    freeaddrinfo(ai);
    return ret;
}

int http_port(const http *h)
{
    return h->port;
}

static int http_copy(strbuf *dst, const char *src)
{
    strbuf_reset(dst);
    return strbuf_append(dst, src ? src : "", src ? strlen(src) : 0);
}

int http_publish(http *h, const http_snapshot *s)
{
    pthread_mutex_lock(&h->lock);
    int ret = 0;
    if (http_copy(&h->metrics, s->metrics) || http_copy(&h->json, s->status_json) ||
        http_copy(&h->table, s->status_table)) {
        /* A buffer that failed stays failed: start the three afresh. */
        strbuf_free(&h->metrics);
        strbuf_free(&h->json);
        strbuf_free(&h->table);
        h->published = 0;
        ret = -ENOMEM;
    } else {
        h->published = 1;
        h->ready = s->ready;
        h->beat = http_now();
    }
    pthread_mutex_unlock(&h->lock);
    return ret;
}

void http_free(http *h)
{
    if (!h) return;
    if (h->d) MHD_stop_daemon(h->d);
    pthread_mutex_destroy(&h->lock);
    strbuf_free(&h->metrics);
    strbuf_free(&h->json);
    strbuf_free(&h->table);
    free(h);
}
