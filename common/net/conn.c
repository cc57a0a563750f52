/* conn: framed mutual-TLS connections on libuv streams (see conn.h).
 *
 * Data path. uv_read fills `in` with ciphertext; mbedTLS pulls it through
 * conn_bio_recv (WANT_READ when it is used up) and pushes records through
 * conn_bio_send, which appends them to `wcur`; conn_flush hands `wcur` to
 * uv_write as one request. Because the send callback always accepts,
 * mbedtls_ssl_write never answers WANT_WRITE; the bound on queued output is
 * max_outq, checked in conn_send before anything is encrypted. Decrypted
 * bytes go to a frame_reader, which checks each length prefix against the
 * current limit before allocating and hands whole payloads to on_frame.
 *
 * With an rxlimit (conn_limits.rx), plaintext is taken from mbedTLS at most
 * up to the end of the current length prefix or payload, so the reader is
 * at rest right after each prefix; a prefix over the rxlimit's size needs a
 * slot, and without one the conn stops reading until the slot is granted.
 * Until it holds a slot an open conn also reads its socket only as far as
 * mbedTLS asked for (the rest of a record header or body, conn_bio_recv's
 * rx_want), so stopping leaves no ciphertext of ours behind: what was read
 * sits in mbedTLS's own record buffer, the rest in the kernel.
 *
 * States: RESOLVING -> CONNECTING (clients) -> HANDSHAKE -> OPEN -> CLOSING
 * -> CLOSED. A client whose connect fails goes CONNECTING -> NEXT (the
 * failed TCP handle closing) -> CONNECTING on a new handle for the next
 * resolved address, until one connects or none is left. One timer serves
 * three purposes by state: opening deadline (resolution, then each connect
 * attempt with its TLS handshake), idle deadline, and the linger bound of a
 * close. Closing sends close_notify (when a session exists) after the
 * queued frames, half-closes the TCP stream, and waits for the peer's EOF
 * or the linger bound before uv_close: closing with unread input would
 * make the kernel send a reset that can destroy our last frames (an Error
 * reply) in flight.
 *
 * Lifetime: two handles (tcp, timer); when both close callbacks have run,
 * on_close is called once and the conn is freed. Between two connect
 * attempts tcp is closed and, once its close callback ran, initialised
 * again; that close is not one of the two. Requests in flight (writes,
 * connect, shutdown) are cancelled by uv_close and complete before that.
 */
#include "common/net/conn.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ssl.h>

#include "common/net/frame.h"
#include "common/net/netstats.h"
#include "common/log.h"

#define CONN_IN_CAP (64u << 10)      /* ciphertext input; > 3 TLS records */
#define CONN_WBUF_MIN (32u << 10)    /* first allocation of a write buffer */
#define CONN_CLOSE_LINGER_MS 2000    /* how long a close waits for writes and the peer's EOF */
#define CONN_NAME_MAX 64             /* a certificate CN */
#define CONN_HOST_MAX 255
#define CONN_TARGET_MAX (CONN_HOST_MAX + 9)   /* "[HOST]:PORT" and its NUL */
#define CONN_RECORD 16384            /* TLS plaintext record size */

enum conn_state {
    CONN_RESOLVING,                  /* client: getaddrinfo in flight */
    CONN_CONNECTING,                 /* client: TCP connect in flight */
    CONN_NEXT,                       /* client: a failed attempt's handle closing */
    CONN_HANDSHAKE,
    CONN_OPEN,                       /* on_open was called */
    CONN_CLOSING,                    /* last bytes queued, waiting for writes and EOF */
    CONN_CLOSED,                     /* uv_close called on both handles */
};

/* One address a client may connect to. */
typedef union {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
} conn_addr;

/* One uv_write of ciphertext: what mbedTLS produced since the last flush. */
typedef struct {
    uv_write_t req;
    conn *c;
    size_t len;                      /* bytes used in data */
    size_t cap;
    uint8_t *data;                   /* (cap) ciphertext */
} conn_wreq;

struct conn {
    uv_tcp_t tcp;                    /* the stream; its data points back here */
    uv_timer_t timer;                /* handshake, idle or linger deadline */
    uv_getaddrinfo_t gai;            /* client: resolving the host */
    uv_connect_t connect_req;        /* client: connecting */
    conn_addr addrs[CONN_ADDRS_MAX]; /* client: the addresses to try, in order */
    int naddrs;                      /* client: how many of addrs are set */
    int next;                        /* client: index of the next address to try */
    char target[CONN_TARGET_MAX];    /* client: the HOST:PORT asked for, for errors */
    uv_shutdown_t shutdown_req;      /* closing: half-close after the last write */
    uv_loop_t *loop;
    tls_ctx *tls;                    /* shared, owned by the caller */
    mbedtls_ssl_context ssl;
    conn_limits lim;
    conn_callbacks cb;
    void (*on_drain)(conn *c);       /* optional, conn_set_on_drain */
    void (*on_rx_wait)(conn *c, int waiting);   /* optional, conn_set_on_rx_wait */
    void *user;
    int state;                       /* enum conn_state */
    int handles;                     /* handles initialised and not yet closed */
    int shut;                        /* our half-close is done */
    int peer_eof;                    /* the peer's EOF arrived */
    int accepted;                    /* from conn_listen: its failed handshakes are logged */
    uint8_t *in;                     /* ciphertext mbedTLS reads: the thread's conn_rbuf
                                        during a read callback, else keep or NULL */
    uint8_t *keep;                   /* (keep_cap) ciphertext left over from a read, or
                                        NULL (most of the time: an idle conn holds none) */
    size_t keep_cap;                 /* the bytes left over, grown to CONN_IN_CAP to read more */
    size_t in_off, in_len;           /* [in_off, in_len) of in not yet taken by mbedTLS */
    conn_wreq *wcur;                 /* ciphertext collected, not yet written */
    size_t inflight;                 /* bytes in uv_write requests not yet done */
    frame_reader fr;
    rxlimit_waiter rxw;              /* its slot of lim.rx, if any */
    size_t rx_want;                  /* ciphertext bytes mbedTLS last asked for and lacked */
    int rx_stopped;                  /* reading stopped to wait for a slot */
    uint64_t last_rx;                /* uv_now of the last bytes received */
    int status;                      /* for on_close: 0 or a negative error */
    int tls_fail;                    /* TLS_FAIL_* of a failed handshake */
    int has_reason;
    char reason[SEFL_ERRLEN];
    char peer_name[CONN_NAME_MAX + 1];
    char peer_addr[64];
    char suite[96];                  /* "TLSv1.2 TLS-ECDHE-..." once open */
    gate *gate;                      /* accepted: the listener's gate (a reference), else NULL */
    int gate_slot;                   /* its address's slot in the gate */
    int gate_pending;                /* counted as in the handshake by the gate */
};

struct conn_listener {
    uv_tcp_t tcp;
    tls_ctx *tls;
    conn_limits lim;
    conn_callbacks cb;
    void *user;
    int port;
    gate *gate;                      /* admission before authentication (a reference) */
};

static void conn_process(conn *c);
static void conn_begin_close(conn *c, int notify);

conn_limits conn_limits_default(void)
{
    conn_limits l = {
        .max_frame = FRAME_MAX_DEFAULT,
        .max_frame_unauth = FRAME_MAX_UNAUTH,
        .max_outq = 256u << 20,
        .handshake_timeout_ms = 10000,
        .idle_timeout_ms = 0,
        .rx = NULL,
    };
    return l;
}

/* The first reason given is the one on_close reports. */
static void conn_vset_reason(conn *c, int status, const char *fmt, va_list ap)
{
    if (c->has_reason) return;
    c->has_reason = 1;
    c->status = status;
    vsnprintf(c->reason, sizeof c->reason, fmt, ap);
}

static void conn_set_reason(conn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conn_set_reason(conn *c, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    conn_vset_reason(c, status, fmt, ap);
    va_end(ap);
}

/* A write to a peer that has reset the connection raises SIGPIPE, whose
 * default action would end the whole server; the error is handled per
 * connection instead. Left alone if the program chose a handler. */
static void conn_ignore_sigpipe(void)
{
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
}

/* Splits "HOST:PORT" or "[V6]:PORT". Returns 0 or -EINVAL with err. */
static int conn_split(const char *hp, char host[CONN_HOST_MAX + 1], char port[8], char *err)
{
    const char *colon = strrchr(hp, ':');
    if (!colon || colon == hp) goto bad;
    const char *h = hp;
    size_t hlen = (size_t)(colon - hp);
    if (h[0] == '[') {
        if (hlen < 3 || h[hlen - 1] != ']') goto bad;
        h++;
        hlen -= 2;
    }
    if (hlen > CONN_HOST_MAX) goto bad;
    memcpy(host, h, hlen);
    host[hlen] = 0;
    const char *p = colon + 1;
    size_t plen = strlen(p);
    if (plen == 0 || plen > 5 || strspn(p, "0123456789") != plen || atoi(p) > 65535) goto bad;
    memcpy(port, p, plen + 1);
    return 0;
bad:
    err_set(err, "bad address \"%s\" (want HOST:PORT, PORT 0..65535)", hp);
    return -EINVAL;
}

static void conn_format_addr(const struct sockaddr *sa, char *out, size_t n)
{
    char ip[64] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
        snprintf(out, n, "%s:%d", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(a, ip, sizeof ip);
        port = ntohs(a->sin6_port);
        snprintf(out, n, "[%s]:%d", ip, port);
    } else {
        snprintf(out, n, "?");
    }
}

/* ---- mbedTLS memory BIO ---------------------------------------------- */

static int conn_bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    conn *c = ctx;
    conn_wreq *w = c->wcur;
    if (!w) {
        if (!(w = calloc(1, sizeof *w))) return MBEDTLS_ERR_SSL_ALLOC_FAILED;
        w->c = c;
        c->wcur = w;
    }
    if (w->len + len > w->cap) {
        size_t cap = w->cap ? w->cap : CONN_WBUF_MIN;
        while (cap < w->len + len) cap *= 2;
        uint8_t *d = realloc(w->data, cap);
        if (!d) return MBEDTLS_ERR_SSL_ALLOC_FAILED;
        w->data = d;
        w->cap = cap;
    }
    memcpy(w->data + w->len, buf, len);
    w->len += len;
    return (int)len;
}

static int conn_bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    conn *c = ctx;
    size_t have = c->in_len - c->in_off;
    if (have == 0) {
        c->rx_want = len;
        return MBEDTLS_ERR_SSL_WANT_READ;
    }
    if (len > have) len = have;
    memcpy(buf, c->in + c->in_off, len);
    c->in_off += len;
    return (int)len;
}

/* ---- closing ---------------------------------------------------------- */

static void conn_wreq_free(conn_wreq *w)
{
    if (!w) return;
    free(w->data);
    free(w);
}

static void conn_free(conn *c)
{
    if (c->gate) {
        gate_closed(c->gate, c->gate_slot, c->gate_pending);
        gate_unref(c->gate);
    }
    if (c->lim.rx) rxlimit_release(c->lim.rx, &c->rxw);
    mbedtls_ssl_free(&c->ssl);
    frame_reader_free(&c->fr);
    conn_wreq_free(c->wcur);
    free(c->keep);
    free(c);
}

static void conn_on_handle_closed(uv_handle_t *h)
{
    conn *c = h->data;
    if (--c->handles > 0) return;
    if (c->cb.on_close) c->cb.on_close(c, c->status, c->has_reason ? c->reason : "closed");
    conn_free(c);
}

/* Closes both handles; on_close follows once both are closed. Between two
 * connect attempts the TCP handle is already closing, and
 * conn_on_attempt_closed counts it when it is done. */
static void conn_teardown(conn *c)
{
    if (c->state == CONN_CLOSED) return;
    c->state = CONN_CLOSED;
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, conn_on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_on_handle_closed);
}

static void conn_on_write(uv_write_t *req, int status)
{
    conn_wreq *w = (conn_wreq *)req;
    conn *c = w->c;
    c->inflight -= w->len;
    if (status == 0) netstats_add_sent(w->len);
    conn_wreq_free(w);
    if (status < 0 && c->state != CONN_CLOSED) {
        conn_set_reason(c, status, "write failed: %s", uv_strerror(status));
        conn_teardown(c);
    } else if (status == 0 && c->state == CONN_OPEN && c->on_drain) {
        c->on_drain(c);
    }
}

/* Hands the collected ciphertext to uv_write. Returns 0 or a uv error (the
 * conn is then torn down). */
static int conn_flush(conn *c)
{
    conn_wreq *w = c->wcur;
    if (!w || w->len == 0 || c->state == CONN_CLOSED) return 0;
    c->wcur = NULL;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
    int ret = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_on_write);
    if (ret < 0) {
        conn_wreq_free(w);
        conn_set_reason(c, ret, "write failed: %s", uv_strerror(ret));
        conn_teardown(c);
        return ret;
    }
    c->inflight += w->len;
    return 0;
}

static void conn_maybe_done(conn *c)
{
    if (c->state == CONN_CLOSING && c->shut && c->peer_eof) conn_teardown(c);
}

static void conn_on_shutdown(uv_shutdown_t *req, int status)
{
    conn *c = req->data;
    if (c->state != CONN_CLOSING) return;
    if (status < 0) {
        conn_teardown(c);
        return;
    }
    c->shut = 1;
    conn_maybe_done(c);
}

static void conn_on_timer(uv_timer_t *t);
static void conn_attempt_failed(conn *c, int status);
static void conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* A closing conn frames nothing more: its slot (held or awaited) goes back,
 * and reading resumes if it had stopped, to see the peer's EOF. */
static void conn_rx_drop(conn *c)
{
    if (!c->lim.rx) return;
    rxlimit_release(c->lim.rx, &c->rxw);
    if (c->rx_stopped) {
        c->rx_stopped = 0;
        uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read);
    }
}

/* Starts an orderly close: close_notify if notify and a session exists,
 * flush, half-close, then wait (bounded) for the peer's EOF. */
static void conn_begin_close(conn *c, int notify)
{
    switch (c->state) {
    case CONN_RESOLVING:
        /* Nothing may close until getaddrinfo returns (its request lives in
         * c): its callback sees CLOSING and tears down. The timer stops so
         * that no linger bound tears down first. */
        c->state = CONN_CLOSING;
        uv_timer_stop(&c->timer);
        uv_cancel((uv_req_t *)&c->gai);
        return;
    case CONN_CONNECTING:
    case CONN_NEXT:
        conn_teardown(c);
        return;
    case CONN_CLOSING:
    case CONN_CLOSED:
        return;
    default:
        break;
    }
    conn_rx_drop(c);
    if (notify && c->state == CONN_OPEN) mbedtls_ssl_close_notify(&c->ssl);
    c->state = CONN_CLOSING;
    if (conn_flush(c) < 0) return;
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, conn_on_shutdown) < 0) {
        conn_teardown(c);
        return;
    }
    uv_timer_start(&c->timer, conn_on_timer, CONN_CLOSE_LINGER_MS, 0);
}

/* A fatal condition: records why, then closes in order. */
static void conn_fail(conn *c, int status, int notify, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void conn_fail(conn *c, int status, int notify, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    conn_vset_reason(c, status, fmt, ap);
    va_end(ap);
    /* A client's own handshake failure reaches its owner through on_close;
     * a server's would otherwise go unseen, so it is logged and counted. */
    if (c->accepted && c->state == CONN_HANDSHAKE)
        netstats_handshake_failed(c->peer_addr, status, c->reason);
    conn_begin_close(c, notify);
}

void conn_close(conn *c, const char *reason)
{
    conn_set_reason(c, 0, "%s", reason ? reason : "closed");
    conn_begin_close(c, 1);
}

/* ---- timers ----------------------------------------------------------- */

static void conn_on_timer(uv_timer_t *t)
{
    conn *c = t->data;
    switch (c->state) {
    case CONN_RESOLVING:
        conn_fail(c, UV_ETIMEDOUT, 0, "cannot resolve %s: no answer in %llu ms", c->target,
                  (unsigned long long)c->lim.handshake_timeout_ms);
        break;
    case CONN_CONNECTING:
        conn_attempt_failed(c, UV_ETIMEDOUT);
        break;
    case CONN_HANDSHAKE:
        conn_fail(c, UV_ETIMEDOUT, 0, "handshake timeout (%llu ms)",
                  (unsigned long long)c->lim.handshake_timeout_ms);
        break;
    case CONN_OPEN: {
        uint64_t idle = uv_now(c->loop) - c->last_rx;
        if (idle >= c->lim.idle_timeout_ms)
            conn_fail(c, UV_ETIMEDOUT, 1, "idle timeout (nothing received for %llu ms)",
                      (unsigned long long)idle);
        else
            uv_timer_start(&c->timer, conn_on_timer, c->lim.idle_timeout_ms - idle, 0);
        break;
    }
    case CONN_CLOSING:
        conn_teardown(c);   /* the linger bound: stop waiting for writes or EOF */
        break;
    default:
        break;
    }
}

/* ---- reading ---------------------------------------------------------- */

/* The read buffer of every conn of this thread's loop. libuv calls a
 * handle's read callback right after its alloc callback, and mbedTLS pulls
 * input until it wants more, so the bytes of a read are used up before any
 * other conn reads; a conn holds a buffer of its own (keep) only for bytes
 * left over, and only until they are taken. With thousands of connections
 * that is 64 KB each not held. */
static _Thread_local uint8_t conn_rbuf[CONN_IN_CAP];

/* With an rxlimit, an open conn without a slot reads exactly what mbedTLS
 * lacks (conn.c's opening comment). */
static int conn_rx_exact(const conn *c)
{
    return c->lim.rx && c->state == CONN_OPEN && c->rxw.state != RXLIMIT_W_HELD;
}

static void conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn *c = h->data;
    if (!c->keep) {
        buf->base = (char *)conn_rbuf;
        buf->len = sizeof conn_rbuf;
        if (conn_rx_exact(c) && c->rx_want > 0 && c->rx_want < buf->len) buf->len = c->rx_want;
        return;
    }
    /* Left-over bytes move to the front of keep; the read goes after them. */
    if (c->in_off > 0) {
        memmove(c->keep, c->keep + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    if (c->keep_cap < CONN_IN_CAP) {
        uint8_t *k = realloc(c->keep, CONN_IN_CAP);
        if (!k) {
            /* A zero-length buffer: libuv reports UV_ENOBUFS to conn_on_read. */
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        c->keep = c->in = k;
        c->keep_cap = CONN_IN_CAP;
    }
    buf->base = (char *)c->keep + c->in_len;
    buf->len = CONN_IN_CAP - c->in_len;
}

/* After a read is processed: bytes mbedTLS did not take (when the conn
 * stopped reading mid-way, e.g. after a failed handshake) move from the
 * shared buffer to keep, sized to them; keep is freed once empty. Returns 0
 * or -ENOMEM. */
static int conn_keep_rest(conn *c)
{
    const size_t rest = c->in_len - c->in_off;
    if (c->in == conn_rbuf && rest > 0) {
        if (!(c->keep = malloc(rest))) return -ENOMEM;
        memcpy(c->keep, conn_rbuf + c->in_off, rest);
        c->keep_cap = rest;
        c->in = c->keep;
        c->in_off = 0;
        c->in_len = rest;
    } else if (rest == 0) {
        free(c->keep);
        c->keep = c->in = NULL;
        c->keep_cap = 0;
        c->in_off = c->in_len = 0;
    }
    return 0;
}

static int conn_on_payload(void *arg, const uint8_t *payload, size_t len)
{
    conn *c = arg;
    if (c->cb.on_frame) c->cb.on_frame(c, payload, len);
    /* The frame is decoded and dropped: its slot, if it took one, is free. */
    if (c->lim.rx) rxlimit_release(c->lim.rx, &c->rxw);
    /* The owner may have closed c from on_frame: stop delivering then. */
    return c->state == CONN_OPEN ? 0 : 1;
}

/* After a length prefix over the rxlimit's size: takes a slot, or stops
 * reading until one is granted (conn_rx_granted). Returns 1 when c must
 * stop taking plaintext. */
static int conn_rx_wait(conn *c)
{
    if (!frame_reader_in_payload(&c->fr) || c->fr.have > 0 || c->fr.need <= rxlimit_large(c->lim.rx))
        return 0;
    if (rxlimit_acquire(c->lim.rx, &c->rxw)) return 0;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->rx_stopped = 1;
    if (c->on_rx_wait) c->on_rx_wait(c, 1);
    return 1;
}

static void conn_rx_granted(rxlimit_waiter *w)
{
    conn *c = (conn *)((char *)w - offsetof(conn, rxw));
    c->rx_stopped = 0;
    if (c->state != CONN_OPEN) {
        rxlimit_release(c->lim.rx, &c->rxw);
        return;
    }
    int ret = uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read);
    if (ret < 0) {
        conn_fail(c, ret, 0, "cannot read: %s", uv_strerror(ret));
        return;
    }
    if (c->on_rx_wait) c->on_rx_wait(c, 0);
    /* What was read before the stop: the rest of a record in mbedTLS, and
     * any ciphertext kept. */
    conn_process(c);
    if (conn_keep_rest(c) < 0) conn_fail(c, -ENOMEM, 0, "out of memory for received bytes");
}

static void conn_handshake_done(conn *c)
{
    if (tls_peer_cn(&c->ssl, c->peer_name, sizeof c->peer_name) < 0) {
        conn_fail(c, -EACCES, 1, "peer certificate has no usable CN");
        return;
    }
    snprintf(c->suite, sizeof c->suite, "%s %s", mbedtls_ssl_get_version(&c->ssl),
             mbedtls_ssl_get_ciphersuite(&c->ssl));
    c->state = CONN_OPEN;
    if (c->gate && c->gate_pending) {
        gate_opened(c->gate, c->gate_slot);
        c->gate_pending = 0;
    }
    uv_timer_stop(&c->timer);
    if (c->lim.idle_timeout_ms)
        uv_timer_start(&c->timer, conn_on_timer, c->lim.idle_timeout_ms, 0);
    if (c->cb.on_open) c->cb.on_open(c);
}

/* Drives the handshake, then decrypts and cuts frames until mbedTLS wants
 * more input. Any output it produced is flushed. */
static void conn_process(conn *c)
{
    if (c->state == CONN_HANDSHAKE) {
        int ret = mbedtls_ssl_handshake(&c->ssl);
        if (conn_flush(c) < 0) return;
        if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) return;
        if (ret != 0) {
            char why[SEFL_ERRLEN];
            tls_error_text(&c->ssl, ret, why, sizeof why);
            c->tls_fail = tls_failure(&c->ssl, ret);
            /* The names the refused certificate carries: what a fix needs. */
            const char *names = c->tls_fail == TLS_FAIL_NONE || c->tls_fail == TLS_FAIL_REFUSED
                                    ? "" : tls_peer_names(c->tls);
            conn_fail(c, ret, 0, "TLS handshake failed: %s%s%s", why,
                      names[0] ? "; its certificate carries " : "", names);
            return;
        }
        conn_handshake_done(c);
    }
    while (c->state == CONN_OPEN && !c->rx_stopped) {
        uint8_t plain[CONN_RECORD];
        size_t want = sizeof plain, fw = frame_reader_want(&c->fr);
        if (c->lim.rx && fw > 0 && fw < want) want = fw;
        int ret = mbedtls_ssl_read(&c->ssl, plain, want);
        if (ret > 0) {
            int rc = frame_reader_feed(&c->fr, plain, (size_t)ret, conn_on_payload, c);
            if (rc == -EMSGSIZE)
                conn_fail(c, -EMSGSIZE, 1, "frame of %zu bytes over limit %zu", c->fr.need,
                          c->fr.limit);
            else if (rc == -ENOMEM)
                conn_fail(c, -ENOMEM, 1, "out of memory for a frame of %zu bytes", c->fr.need);
            else if (rc == 0 && c->lim.rx && c->state == CONN_OPEN && conn_rx_wait(c))
                break;
            continue;
        }
        if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) break;
        if (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || ret == 0) {
            conn_fail(c, 0, 1, "closed by peer");
        } else {
            char why[SEFL_ERRLEN];
            tls_error_text(&c->ssl, ret, why, sizeof why);
            conn_fail(c, ret, 0, "TLS error: %s", why);
        }
    }
    conn_flush(c);
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = s->data;
    if (nread == 0) return;
    if (c->state == CONN_CLOSING) {
        /* Our side is done: drain and drop until the peer's EOF. */
        c->in_off = c->in_len = 0;
        free(c->keep);
        c->keep = c->in = NULL;
        c->keep_cap = 0;
        if (nread == UV_EOF) {
            c->peer_eof = 1;
            uv_read_stop(s);
            conn_maybe_done(c);
        } else if (nread < 0) {
            conn_teardown(c);
        }
        return;
    }
    if (c->state != CONN_HANDSHAKE && c->state != CONN_OPEN) return;
    if (nread < 0) {
        if (nread == UV_EOF) c->peer_eof = 1;
        if (nread == UV_EOF && c->state == CONN_HANDSHAKE)
            conn_fail(c, UV_EOF, 0, "connection closed during the TLS handshake");
        else if (nread == UV_EOF)
            conn_fail(c, UV_EOF, 0, "connection closed by peer without close_notify");
        else
            conn_fail(c, (int)nread, 0, "read failed: %s", uv_strerror((int)nread));
        return;
    }
    if (buf->base == (char *)conn_rbuf) {
        c->in = conn_rbuf;
        c->in_off = 0;
        c->in_len = (size_t)nread;
    } else {
        c->in = c->keep;
        c->in_len += (size_t)nread;
    }
    netstats_add_received((size_t)nread);
    c->last_rx = uv_now(c->loop);
    conn_process(c);
    /* conn_process may have closed c, but not freed it: that waits for
     * the handles' close callbacks, which run after this one. */
    if (conn_keep_rest(c) < 0) conn_fail(c, -ENOMEM, 0, "out of memory for received bytes");
}

/* ---- creating --------------------------------------------------------- */

/* A conn without handles yet: the caller initialises tcp and timer. */
static int conn_new(uv_loop_t *loop, tls_ctx *tls, const conn_limits *lim,
                    const conn_callbacks *cb, void *user, conn **out)
{
    *out = NULL;
    conn *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    mbedtls_ssl_init(&c->ssl);
    c->loop = loop;
    c->tls = tls;
    c->lim = lim ? *lim : conn_limits_default();
    c->cb = *cb;
    c->user = user;
    frame_reader_init(&c->fr, c->lim.max_frame_unauth);
    c->rxw.granted = conn_rx_granted;
    c->rx_want = 5;   /* a TLS record header, until mbedTLS asks */
    int ret = tls_ssl_setup(tls, &c->ssl);
    if (ret != 0) {
        conn_free(c);
        return -ENOMEM;
    }
    mbedtls_ssl_set_bio(&c->ssl, c, conn_bio_send, conn_bio_recv, NULL);
    c->tcp.data = c;
    c->timer.data = c;
    *out = c;
    return 0;
}

/* Both handles; after this the conn is freed only through conn_teardown. */
static int conn_init_handles(conn *c)
{
    int ret = uv_tcp_init(c->loop, &c->tcp);
    if (ret < 0) return ret;
    uv_timer_init(c->loop, &c->timer);   /* cannot fail on a live loop */
    c->handles = 2;
    if (c->lim.handshake_timeout_ms)
        uv_timer_start(&c->timer, conn_on_timer, c->lim.handshake_timeout_ms, 0);
    return 0;
}

/* TCP is up: start reading and the handshake (a client speaks first). */
static void conn_start_tls(conn *c)
{
    c->state = CONN_HANDSHAKE;
    c->last_rx = uv_now(c->loop);
    uv_tcp_nodelay(&c->tcp, 1);
    int ret = uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read);
    if (ret < 0) {
        conn_set_reason(c, ret, "cannot read: %s", uv_strerror(ret));
        conn_teardown(c);
        return;
    }
    conn_process(c);
}

static void conn_on_accept(uv_stream_t *server, int status)
{
    conn_listener *l = server->data;
    if (status == UV_EMFILE || status == UV_ENFILE) {
        gate_out_of_fds(l->gate, uv_strerror(status), uv_now(server->loop));
        return;
    }
    if (status < 0) {
        log_warn("accept failed: %s", uv_strerror(status));
        return;
    }
    conn *c;
    if (conn_new(server->loop, l->tls, &l->lim, &l->cb, l->user, &c) < 0) {
        log_warn("out of memory for a new connection");
        return;
    }
    if (conn_init_handles(c) < 0) {
        conn_free(c);
        return;
    }
    int ret = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (ret < 0) {
        conn_set_reason(c, ret, "accept failed: %s", uv_strerror(ret));
        conn_teardown(c);
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0)
        conn_format_addr((struct sockaddr *)&ss, c->peer_addr, sizeof c->peer_addr);
    /* Admission before any handshake work: a refused peer costs an accept
     * and a close, nothing more (the gate logs why). */
    int ok;
    c->gate_slot = gate_admit(l->gate, (struct sockaddr *)&ss, c->peer_addr,
                              uv_now(server->loop), &ok);
    if (!ok) {
        conn_set_reason(c, UV_ECONNREFUSED, "refused before the handshake");
        conn_teardown(c);
        return;
    }
    gate_ref(l->gate);
    c->gate = l->gate;
    c->gate_pending = 1;
    c->accepted = 1;
    conn_start_tls(c);
}

static void conn_listener_on_closed(uv_handle_t *h)
{
    conn_listener *l = h->data;
    gate_unref(l->gate);
    free(l);
}

int conn_listen(uv_loop_t *loop, const char *host_port, tls_ctx *tls, const conn_limits *lim,
                const conn_callbacks *cb, void *user, conn_listener **out, char *err)
{
    char host[CONN_HOST_MAX + 1], port[8];
    *out = NULL;
    int ret = conn_split(host_port, host, port, err);
    if (ret < 0) return ret;
    conn_ignore_sigpipe();

    /* Resolving the address to bind happens once, at startup: synchronously. */
    uv_getaddrinfo_t req;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    ret = uv_getaddrinfo(loop, &req, NULL, host[0] ? host : NULL, port, &hints);
    if (ret < 0) {
        err_set(err, "cannot resolve %s: %s", host, uv_strerror(ret));
        return ret;
    }
    conn_listener *l = calloc(1, sizeof *l);
    if (!l) {
        uv_freeaddrinfo(req.addrinfo);
        err_set(err, "out of memory");
        return -ENOMEM;
    }
    conn_preauth pre = conn_preauth_default();
    l->gate = gate_new(&pre);
    if (!l->gate) {
        uv_freeaddrinfo(req.addrinfo);
        free(l);
        err_set(err, "out of memory");
        return -ENOMEM;
    }
    l->tls = tls;
    l->lim = lim ? *lim : conn_limits_default();
    l->cb = *cb;
    l->user = user;
    l->tcp.data = l;
    if ((ret = uv_tcp_init(loop, &l->tcp)) < 0) {
        uv_freeaddrinfo(req.addrinfo);
        gate_unref(l->gate);
        free(l);
        err_set(err, "cannot listen: %s", uv_strerror(ret));
        return ret;
    }
    ret = uv_tcp_bind(&l->tcp, req.addrinfo->ai_addr, 0);
    uv_freeaddrinfo(req.addrinfo);
    if (ret == 0) ret = uv_listen((uv_stream_t *)&l->tcp, SOMAXCONN, conn_on_accept);
    if (ret < 0) {
        err_set(err, "cannot listen on %s: %s", host_port, uv_strerror(ret));
        uv_close((uv_handle_t *)&l->tcp, conn_listener_on_closed);
        return ret;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len);
    l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    *out = l;
    return 0;
}

int conn_listener_port(const conn_listener *l)
{
    return l->port;
}

void conn_listener_set_preauth(conn_listener *l, const conn_preauth *p)
{
    gate_set(l->gate, p);
}

void conn_listener_stats(const conn_listener *l, gate_stats *out)
{
    gate_get_stats(l->gate, out);
}

void conn_listener_close(conn_listener *l)
{
    if (l) uv_close((uv_handle_t *)&l->tcp, conn_listener_on_closed);
}

/* Adds sa to the addresses a client tries, if it is IPv4 or IPv6 and there
 * is room: past CONN_ADDRS_MAX the rest of a long list is not tried. */
static void conn_add_addr(conn *c, const struct sockaddr *sa)
{
    if (c->naddrs == CONN_ADDRS_MAX) return;
    if (sa->sa_family == AF_INET)
        c->addrs[c->naddrs++].in = *(const struct sockaddr_in *)sa;
    else if (sa->sa_family == AF_INET6)
        c->addrs[c->naddrs++].in6 = *(const struct sockaddr_in6 *)sa;
}

static void conn_on_connected(uv_connect_t *req, int status)
{
    conn *c = req->data;
    /* Not CONNECTING: the handle was closed meanwhile (conn_close, or this
     * attempt timed out) and this is the cancellation. */
    if (c->state != CONN_CONNECTING) return;
    if (status < 0) {
        conn_attempt_failed(c, status);
        return;
    }
    conn_start_tls(c);
}

/* Starts connecting to the next address, with a deadline of its own. A
 * connect that cannot even start counts as that address failing. */
static void conn_try_next(conn *c)
{
    const struct sockaddr *sa = &c->addrs[c->next++].sa;
    conn_format_addr(sa, c->peer_addr, sizeof c->peer_addr);
    c->state = CONN_CONNECTING;
    if (c->lim.handshake_timeout_ms)
        uv_timer_start(&c->timer, conn_on_timer, c->lim.handshake_timeout_ms, 0);
    c->connect_req.data = c;
    int ret = uv_tcp_connect(&c->connect_req, &c->tcp, sa, conn_on_connected);
    if (ret < 0) conn_attempt_failed(c, ret);
}

/* A failed attempt's TCP handle has closed: the next address gets a new
 * one. If the conn was torn down meanwhile (conn_close), this was the
 * handle's last close instead. */
static void conn_on_attempt_closed(uv_handle_t *h)
{
    conn *c = h->data;
    if (c->state != CONN_NEXT) {
        conn_on_handle_closed(h);
        return;
    }
    uv_tcp_init(c->loop, &c->tcp);   /* cannot fail: AF_UNSPEC makes no socket until connect */
    c->tcp.data = c;
    conn_try_next(c);
}

/* The current address failed before TCP was up (refused, unreachable,
 * timed out...). The next one is tried on a new handle, because a socket
 * whose connect failed cannot connect again and the next address may be of
 * the other family; the handle must finish closing before it is
 * initialised again. After the last address, on_close reports this error. */
static void conn_attempt_failed(conn *c, int status)
{
    if (c->next < c->naddrs) {
        log_debug("connecting to %s (for %s) failed: %s; trying the next address", c->peer_addr,
                  c->target, uv_strerror(status));
        c->state = CONN_NEXT;
        uv_timer_stop(&c->timer);
        uv_close((uv_handle_t *)&c->tcp, conn_on_attempt_closed);
        return;
    }
    if (c->naddrs == 1 && strcmp(c->target, c->peer_addr) == 0)
        conn_set_reason(c, status, "cannot connect to %s: %s", c->target, uv_strerror(status));
    else if (c->naddrs == 1)
        conn_set_reason(c, status, "cannot connect to %s at %s: %s", c->target, c->peer_addr,
                        uv_strerror(status));
    else
        conn_set_reason(c, status, "cannot connect to %s at any of its %d addresses (last %s): %s",
                        c->target, c->naddrs, c->peer_addr, uv_strerror(status));
    conn_teardown(c);
}

static void conn_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    conn *c = req->data;
    if (c->state != CONN_RESOLVING || status < 0) {
        if (status < 0)
            conn_set_reason(c, status, "cannot resolve %s: %s", c->target, uv_strerror(status));
        uv_freeaddrinfo(res);
        conn_teardown(c);
        return;
    }
    /* Every address, in the resolver's order (glibc sorts by RFC 6724,
     * /etc/gai.conf can change it): "localhost" often gives ::1 first
     * while the coordinator listens on 127.0.0.1, which is then tried
     * after ::1 refused. */
    for (const struct addrinfo *a = res; a; a = a->ai_next) conn_add_addr(c, a->ai_addr);
    uv_freeaddrinfo(res);
    if (c->naddrs == 0) {
        conn_set_reason(c, UV_EAI_ADDRFAMILY, "cannot resolve %s: no IPv4 or IPv6 address",
                        c->target);
        conn_teardown(c);
        return;
    }
    conn_try_next(c);
}

/* A client conn with both handles, named name in its errors; resolving or
 * connecting is the caller's next step. Returns 0 or negative with err. */
static int conn_client_new(uv_loop_t *loop, const char *name, tls_ctx *tls,
                           const conn_limits *lim, const conn_callbacks *cb, void *user,
                           conn **out, char *err)
{
    conn_ignore_sigpipe();
    conn *c;
    int ret = conn_new(loop, tls, lim, cb, user, &c);
    if (ret < 0) {
        err_set(err, "cannot set up a TLS session (out of memory)");
        return ret;
    }
    snprintf(c->target, sizeof c->target, "%s", name);
    /* Until an address is tried, peer_addr names what we were asked for. */
    snprintf(c->peer_addr, sizeof c->peer_addr, "%s", name);
    if ((ret = conn_init_handles(c)) < 0) {
        err_set(err, "cannot make a TCP handle: %s", uv_strerror(ret));
        conn_free(c);
        return ret;
    }
    *out = c;
    return 0;
}

int conn_connect(uv_loop_t *loop, const char *host_port, tls_ctx *tls, const conn_limits *lim,
                 const conn_callbacks *cb, void *user, conn **out, char *err)
{
    char host[CONN_HOST_MAX + 1], port[8];
    *out = NULL;
    int ret = conn_split(host_port, host, port, err);
    if (ret < 0) return ret;
    conn *c;
    if ((ret = conn_client_new(loop, host_port, tls, lim, cb, user, &c, err)) < 0) return ret;
    c->state = CONN_RESOLVING;
    c->gai.data = c;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    if ((ret = uv_getaddrinfo(loop, &c->gai, conn_on_resolved, host, port, &hints)) < 0) {
        /* The caller learns of this failure from the return value, so c
         * goes away without an on_close. */
        err_set(err, "cannot resolve %s: %s", host, uv_strerror(ret));
        c->cb.on_close = NULL;
        conn_teardown(c);
        return ret;
    }
    *out = c;
    return 0;
}

int conn_connect_addrs(uv_loop_t *loop, const char *name, const struct sockaddr *const *addrs,
                       int n, tls_ctx *tls, const conn_limits *lim, const conn_callbacks *cb,
                       void *user, conn **out, char *err)
{
    *out = NULL;
    conn *c;
    int ret = conn_client_new(loop, name, tls, lim, cb, user, &c, err);
    if (ret < 0) return ret;
    for (int i = 0; i < n; i++) conn_add_addr(c, addrs[i]);
    if (c->naddrs == 0) {
        /* As in conn_connect: the return value tells, so no on_close. */
        err_set(err, "no IPv4 or IPv6 address to connect to %s", name);
        c->cb.on_close = NULL;
        conn_teardown(c);
        return -EINVAL;
    }
    conn_try_next(c);
    *out = c;
    return 0;
}

/* ---- sending ---------------------------------------------------------- */

/* Refuses a frame of len plaintext bytes when its ciphertext would take the
 * output queue past max_outq. */
static int conn_room(const conn *c, size_t len)
{
    if (c->state != CONN_OPEN) return -ENOTCONN;
    int exp = mbedtls_ssl_get_record_expansion(&c->ssl);
    size_t cipher = len + (len / CONN_RECORD + 1) * (size_t)(exp > 0 ? exp : 64);
    if (conn_outq_bytes(c) + cipher > c->lim.max_outq) return -ENOBUFS;
    return 0;
}

/* Encrypts len bytes into the write buffer (mbedtls_ssl_write takes at most
 * a record at a time). A failure closes c. */
static int conn_write_plain(conn *c, const uint8_t *p, size_t len)
{
    while (len > 0) {
        int ret = mbedtls_ssl_write(&c->ssl, p, len);
        if (ret <= 0) {
            char why[SEFL_ERRLEN];
            tls_error_text(&c->ssl, ret, why, sizeof why);
            conn_fail(c, ret ? ret : -EIO, 0, "TLS write failed: %s", why);
            return -EIO;
        }
        p += ret;
        len -= (size_t)ret;
    }
    return 0;
}

int conn_send(conn *c, const uint8_t *payload, size_t len)
{
    if (len > UINT32_MAX) return -EMSGSIZE;
    int ret = conn_room(c, len + FRAME_HEADER);
    if (ret < 0) return ret;
    /* The prefix shares the first record with the payload's start, so a
     * small frame costs one record, not two. */
    uint8_t first[CONN_RECORD];
    size_t head = len < CONN_RECORD - FRAME_HEADER ? len : CONN_RECORD - FRAME_HEADER;
    frame_put_header(first, (uint32_t)len);
    if (head) memcpy(first + FRAME_HEADER, payload, head);   /* payload may be NULL when len is 0 */
    if ((ret = conn_write_plain(c, first, FRAME_HEADER + head)) < 0) return ret;
    if (len > head && (ret = conn_write_plain(c, payload + head, len - head)) < 0) return ret;
    return conn_flush(c) < 0 ? -EIO : 0;
}

int conn_send_frame(conn *c, const uint8_t *frame, size_t len)
{
    if (len < FRAME_HEADER) return -EINVAL;
    int ret = conn_room(c, len);
    if (ret < 0) return ret;
    if ((ret = conn_write_plain(c, frame, len)) < 0) return ret;
    return conn_flush(c) < 0 ? -EIO : 0;
}

size_t conn_outq_bytes(const conn *c)
{
    return c->inflight + (c->wcur ? c->wcur->len : 0);
}

void conn_set_on_drain(conn *c, void (*on_drain)(conn *c))
{
    c->on_drain = on_drain;
}

void conn_set_on_rx_wait(conn *c, void (*on_rx_wait)(conn *c, int waiting))
{
    c->on_rx_wait = on_rx_wait;
}

/* ---- accessors -------------------------------------------------------- */

void conn_set_authenticated(conn *c)
{
    frame_reader_set_limit(&c->fr, c->lim.max_frame);
}

const char *conn_peer_name(const conn *c)
{
    return c->peer_name;
}

const char *conn_peer_addr(const conn *c)
{
    return c->peer_addr;
}

const char *conn_tls_suite(const conn *c)
{
    return c->suite;
}

void *conn_user(const conn *c)
{
    return c->user;
}

void conn_set_user(conn *c, void *user)
{
    c->user = user;
}

int conn_tls_failure(const conn *c)
{
    return c->tls_fail;
}
