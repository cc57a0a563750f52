/* netstats: process-wide transport counters and the rate-limited handshake
 * log; see netstats.h. */
#include "common/net/netstats.h"

#include <errno.h>
#include <stdatomic.h>
#include <uv.h>

#include <mbedtls/ssl.h>
#include <mbedtls/x509.h>

#include "common/log.h"
#include "common/ratelimit.h"

const char *const netstats_hs_reason[NETSTATS_HS_NREASONS] = {
    "timeout", "closed", "certificate", "peer_alert", "protocol", "network",
};

/* Relaxed atomics: each counter is read on its own, never as a set that must
 * be consistent, so no ordering between them is needed. */
static atomic_uint_least64_t netstats_sent, netstats_received;
static atomic_uint_least64_t netstats_hs[NETSTATS_HS_NREASONS];
static atomic_uint_least64_t netstats_suppressed_total;

static ratelimit netstats_log_limit = RATELIMIT_INIT(NETSTATS_LOG_BURST, NETSTATS_LOG_WINDOW_S);

void netstats_get(netstats *out)
{
    out->bytes_sent = atomic_load_explicit(&netstats_sent, memory_order_relaxed);
    out->bytes_received = atomic_load_explicit(&netstats_received, memory_order_relaxed);
    for (int i = 0; i < NETSTATS_HS_NREASONS; i++)
        out->hs_failed[i] = atomic_load_explicit(&netstats_hs[i], memory_order_relaxed);
    out->hs_log_suppressed = atomic_load_explicit(&netstats_suppressed_total, memory_order_relaxed);
}

void netstats_add_sent(size_t n)
{
    atomic_fetch_add_explicit(&netstats_sent, n, memory_order_relaxed);
}

void netstats_add_received(size_t n)
{
    atomic_fetch_add_explicit(&netstats_received, n, memory_order_relaxed);
}

int netstats_hs_class(int status)
{
    switch (status) {
    case UV_ETIMEDOUT: return NETSTATS_HS_TIMEOUT;
    case UV_EOF: return NETSTATS_HS_CLOSED;
    case -EACCES:
    case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
    case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
    case MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE:
    case MBEDTLS_ERR_SSL_BAD_HS_CERTIFICATE_VERIFY:
    case MBEDTLS_ERR_SSL_PEER_VERIFY_FAILED:
        return NETSTATS_HS_CERTIFICATE;
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE: return NETSTATS_HS_PEER_ALERT;
    default: break;
    }
    /* Anything else from libuv is a negative errno (above -4096); the codes
     * mbedtls_ssl_handshake returns come from its SSL, X.509, PK and ECP
     * modules, all -0x1000 and below. */
    if (status < 0 && status > -4096) return NETSTATS_HS_NETWORK;
    return NETSTATS_HS_PROTOCOL;
}

void netstats_handshake_failed(const char *peer_addr, int status, const char *reason)
{
    int cls = netstats_hs_class(status);
    atomic_fetch_add_explicit(&netstats_hs[cls], 1, memory_order_relaxed);

    uint64_t dropped;
    int log_it = ratelimit_allow(&netstats_log_limit, &dropped);
    if (dropped)
        log_warn("TLS handshake failures: %llu log lines suppressed in the last %d s",
                 (unsigned long long)dropped, NETSTATS_LOG_WINDOW_S);
    if (log_it)
        log_warn("TLS handshake from %s failed (%s): %s", peer_addr[0] ? peer_addr : "?",
                 netstats_hs_reason[cls], reason);
    else
        atomic_fetch_add_explicit(&netstats_suppressed_total, 1, memory_order_relaxed);
}
