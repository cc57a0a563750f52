/* netstats: process-wide transport figures for monitoring: bytes sent and
 * received on every conn, and the TLS handshakes that accepted connections
 * failed, counted by reason and logged as rate-limited WARN lines.
 *
 * The handshake log is limited to NETSTATS_LOG_BURST lines per
 * NETSTATS_LOG_WINDOW_S seconds, so a flood of bad handshakes cannot fill
 * the disk; the first failure logged after a window in which lines were
 * dropped is preceded by "TLS handshake failures: K log lines suppressed in
 * the last S s". Every failure is counted, logged or not.
 *
 * Threads: every function may be called from any thread (atomic counters,
 * the rate limiter under a mutex).
 */
#ifndef SEFL_NETSTATS_H
#define SEFL_NETSTATS_H

#include <stddef.h>
#include <stdint.h>

#define NETSTATS_LOG_BURST 10
#define NETSTATS_LOG_WINDOW_S 10

/* Why a handshake failed, as a metric label ("reason"). */
enum {
    NETSTATS_HS_TIMEOUT,      /* no complete handshake within the handshake timeout */
    NETSTATS_HS_CLOSED,       /* the peer closed the connection mid-handshake */
    NETSTATS_HS_CERTIFICATE,  /* no, untrusted, expired or unusable client certificate */
    NETSTATS_HS_PEER_ALERT,   /* the peer sent a fatal alert (it refused our certificate...) */
    NETSTATS_HS_PROTOCOL,     /* not TLS, or TLS we do not speak (version, suites) */
    NETSTATS_HS_NETWORK,      /* a read or write error (reset...) */
    NETSTATS_HS_NREASONS
};

/* The label value of each NETSTATS_HS_* ("timeout", "closed", ...). */
extern const char *const netstats_hs_reason[NETSTATS_HS_NREASONS];

typedef struct {
    uint64_t bytes_sent;         /* ciphertext written to sockets */
    uint64_t bytes_received;     /* ciphertext read from sockets */
    uint64_t hs_failed[NETSTATS_HS_NREASONS];
    uint64_t hs_log_suppressed;  /* handshake WARN lines dropped by the rate limit */
} netstats;

void netstats_get(netstats *out);
void netstats_add_sent(size_t n);
void netstats_add_received(size_t n);

/* The NETSTATS_HS_* class of a handshake's failure status: a negative uv
 * error, -EACCES (no usable CN), or an mbedTLS error code. */
int netstats_hs_class(int status);

/* Counts a failed handshake of a connection accepted from peer_addr and
 * logs "TLS handshake from ADDR failed (CLASS): REASON" as WARN within the
 * rate limit. */
void netstats_handshake_failed(const char *peer_addr, int status, const char *reason);

#endif
