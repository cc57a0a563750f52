/* conn: a framed, mutually authenticated TLS connection on a libuv TCP stream.
 *
 * mbedTLS is driven through memory buffers: bytes from uv_read go into an
 * input buffer that the ssl BIO receive callback drains; the BIO send
 * callback appends to an output queue written with uv_write. WANT_READ and
 * WANT_WRITE are handled by retrying when bytes arrive or drain. After the
 * handshake the peer's identity is its certificate's CN.
 *
 * Frames: 4-byte big-endian length + payload. The length is checked against
 * the connection's current limit before anything is allocated; a smaller
 * limit holds until the owner raises it (after Hello/Welcome).
 *
 * Ownership: the loop owns a conn from conn_connect/accept until its on_close
 * callback returns; the conn is freed right after that callback, never
 * earlier, so a pointer is valid from on_open (or conn_connect) to on_close.
 * Timers: handshake timeout (no complete handshake in time: close) and idle
 * timeout (nothing received for that long: close).
 *
 * A client tries every address its HOST resolves to, one after another (see
 * conn_connect), as gRPC clients do; happy eyeballs (parallel attempts) is
 * not done.
 */
#ifndef SEFL_CONN_H
#define SEFL_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/net/gate.h"
#include "common/net/rxlimit.h"
#include "common/net/tls.h"

typedef struct conn conn;
typedef struct conn_listener conn_listener;

typedef struct {
    size_t max_frame;            /* limit after conn_set_authenticated */
    size_t max_frame_unauth;     /* limit before */
    size_t max_outq;             /* bytes queued for writing; conn_send fails past it */
    /* Bounds each step of opening: an accepted connection's TLS handshake;
     * a client's name resolution, then each address it tries (TCP connect
     * plus TLS handshake) anew. 0: none (then a silent peer holds its slot). */
    uint64_t handshake_timeout_ms;
    uint64_t idle_timeout_ms;    /* 0: none */
    /* Shared bound on large frames being received at once (rxlimit.h), or
     * NULL: none. With one, an open connection reads its socket only as far
     * as TLS needs for the next record until it holds a slot, so that one
     * that stops for a slot leaves the rest of the bytes in the kernel. */
    rxlimit *rx;
} conn_limits;

/* Defaults: FRAME_MAX_DEFAULT, FRAME_MAX_UNAUTH, 256 MiB, 10 s, 0, NULL. */
conn_limits conn_limits_default(void);

typedef struct {
    /* Handshake done; conn_peer_name is valid. */
    void (*on_open)(conn *c);
    /* One whole frame payload (no prefix); valid only during the call. */
    void (*on_frame)(conn *c, const uint8_t *payload, size_t len);
    /* Last call for c: status 0 for a clean close, else a negative uv/tls
     * error; reason is one line. c is freed after this returns. */
    void (*on_close)(conn *c, int status, const char *reason);
} conn_callbacks;

/* Listens on "HOST:PORT" (PORT 0 picks one: see conn_listener_port). Each
 * accepted connection gets cb and user (conn_user). Returns 0 or negative
 * with err; a failure after the socket was made (e.g. the port is taken)
 * leaves a handle closing on the loop, so run the loop before closing it. */
int conn_listen(uv_loop_t *loop, const char *host_port, tls_ctx *tls, const conn_limits *lim,
                const conn_callbacks *cb, void *user, conn_listener **out, char *err);
int conn_listener_port(const conn_listener *l);
/* Sets the listener's admission limits before authentication (gate.h;
 * default conn_preauth_default()). */
void conn_listener_set_preauth(conn_listener *l, const conn_preauth *p);
/* The listener's admission counters (gate.h). */
void conn_listener_stats(const conn_listener *l, gate_stats *out);
/* Stops accepting and frees the listener (in its close callback). */
void conn_listener_close(conn_listener *l);

/* The most addresses of one name a client tries; a longer list is cut. */
#define CONN_ADDRS_MAX 8

/* Starts connecting to "HOST:PORT" (HOST resolved with uv_getaddrinfo).
 * *out is valid until on_close. Failures after this returns arrive as
 * on_close. Returns 0 or negative with err for an immediate failure.
 *
 * The resolved addresses (the first CONN_ADDRS_MAX) are tried in the
 * resolver's order, each on a new socket: a TCP connect that fails
 * (refused, unreachable...) or does not finish within handshake_timeout_ms
 * moves on to the next address. Each address gets the whole
 * handshake_timeout_ms for its connect and TLS handshake, so a first
 * address that silently drops packets costs one timeout and the next is
 * still tried; the worst case is resolution plus CONN_ADDRS_MAX timeouts.
 * Once TCP is up the address is kept: a TLS failure (a certificate, a name)
 * belongs to the service all the addresses serve and is reported, not
 * retried elsewhere. When every address failed, on_close gets the last
 * one's error, one line naming HOST:PORT (and the address if HOST is a
 * name). conn_close works at any point of the sequence. */
int conn_connect(uv_loop_t *loop, const char *host_port, tls_ctx *tls, const conn_limits *lim,
                 const conn_callbacks *cb, void *user, conn **out, char *err);

/* The same, to addresses already resolved: addrs[0..n) in order, IPv4 and
 * IPv6 ones (others are skipped; the first CONN_ADDRS_MAX are tried). The
 * addresses are copied; name (e.g. "HOST:PORT") names the target in
 * errors. For a caller that resolves names its own way, and for tests
 * (a test machine's resolver may give no name two addresses). Returns 0,
 * -EINVAL with err when no address is IPv4 or IPv6, or another negative
 * error with err. */
int conn_connect_addrs(uv_loop_t *loop, const char *name, const struct sockaddr *const *addrs,
                       int n, tls_ctx *tls, const conn_limits *lim, const conn_callbacks *cb,
                       void *user, conn **out, char *err);

/* Queues one frame: writes the length prefix then payload (copied). Returns
 * 0, -ENOBUFS when the output queue would pass max_outq, -ENOTCONN before
 * on_open or after conn_close, -EMSGSIZE over 4 GiB - 1, or -EIO when
 * encryption failed (c is then closing and on_close follows). */
int conn_send(conn *c, const uint8_t *payload, size_t len);
/* Same for a buffer that already holds the prefix (wire_encode's output);
 * -EINVAL when len is shorter than the prefix. */
int conn_send_frame(conn *c, const uint8_t *frame, size_t len);

/* Bytes queued and not yet written (for back-pressure decisions). */
size_t conn_outq_bytes(const conn *c);

/* Optional: on_drain(c) runs each time a queued write completes while c is
 * open, so conn_outq_bytes has gone down; a sender that keeps the queue full
 * (or got -ENOBUFS) sends more from there. NULL turns it off. */
void conn_set_on_drain(conn *c, void (*on_drain)(conn *c));

/* Optional, with an rxlimit: on_rx_wait(c, 1) runs when c stops reading
 * to wait for a slot, on_rx_wait(c, 0) when it has one and reads again.
 * While it waits, c hears nothing from its peer but may still send. NULL
 * turns it off. */
void conn_set_on_rx_wait(conn *c, void (*on_rx_wait)(conn *c, int waiting));

/* Sends close_notify after the queued frames, then closes; on_close follows
 * with status 0 and this reason (unless an earlier error gave one). Calling
 * it again, or on a conn already closing, does nothing. */
void conn_close(conn *c, const char *reason);

/* TLS_FAIL_* (tls.h) when the handshake failed, else TLS_FAIL_NONE; valid
 * until on_close returns, for a client to tell a permanent failure. */
int conn_tls_failure(const conn *c);

/* Raises the frame limit from max_frame_unauth to max_frame. */
void conn_set_authenticated(conn *c);

const char *conn_peer_name(const conn *c);   /* certificate CN, "" before on_open */
const char *conn_peer_addr(const conn *c);   /* "IP:PORT" */
/* Protocol version and suite, e.g. "TLSv1.2 TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256";
 * "" before on_open. */
const char *conn_tls_suite(const conn *c);
void *conn_user(const conn *c);
void conn_set_user(conn *c, void *user);

#endif
