/* tls: mbedTLS configuration for sefl's mutual TLS, and the version shim.
 *
 * A tls_ctx holds what every connection of one role shares: the project CA,
 * this side's certificate and key, the RNG, and an mbedtls_ssl_config with
 * TLS 1.2+ only, ECDHE with AEAD suites, and (by default) a required peer
 * certificate. Certificates come from `sefl-certs` (server/sefl-certs.c):
 *   DIR/ca.crt, DIR/server.crt, DIR/server.key, DIR/clients/NAME.crt|.key
 * Differences between mbedTLS 2.28 (Debian 12) and 3.x stay inside tls.c.
 */
#ifndef SEFL_TLS_H
#define SEFL_TLS_H

#include <stddef.h>

typedef struct tls_ctx tls_ctx;

/* Server side: DIR/ca.crt, DIR/server.crt, DIR/server.key; clients must
 * present a certificate signed by the CA. Returns 0 or negative with err. */
int tls_ctx_new_server(tls_ctx **out, const char *certs_dir, char *err);

/* Client side: DIR/ca.crt, DIR/clients/NAME.crt and .key; the server's
 * certificate must match server_name (a DNS name or IP literal). */
int tls_ctx_new_client(tls_ctx **out, const char *certs_dir, const char *name,
                       const char *server_name, char *err);

/* Same, with explicit file paths (tests use these for foreign/expired certs);
 * cert and key may be NULL for a client without a certificate. */
int tls_ctx_new_client_files(tls_ctx **out, const char *ca, const char *cert, const char *key,
                             const char *server_name, char *err);

/* What many client identities of one process can share (sefl-sim, one
 * identity per simulated client): the CA chain of DIR/ca.crt and one RNG.
 * Alone it serves no connection (tls_ssl_setup refuses it). Sharing it
 * saves each identity its own copies, about 40 KB (the RNG's entropy
 * context is 38 KB with Debian's mbedTLS). Returns 0 or negative with err. */
int tls_ctx_new_shared(tls_ctx **out, const char *certs_dir, char *err);

/* tls_ctx_new_client, using shared's CA chain and RNG (DIR/ca.crt is not
 * read); shared NULL: the same as tls_ctx_new_client. shared must outlive
 * the context, and every context sharing it must be used on one thread
 * (the loop's): that is the RNG's thread. -EINVAL with err when shared was
 * not made by tls_ctx_new_shared. */
int tls_ctx_new_client_shared(tls_ctx **out, const tls_ctx *shared, const char *certs_dir,
                              const char *name, const char *server_name, char *err);

void tls_ctx_free(tls_ctx *c);   /* accepts NULL; after every conn using it is closed */

/* The negotiated-suite names offered by this build, comma-separated (for logs). */
const char *tls_suites_offered(void);

/* For conn.c, which drives one mbedtls_ssl_context per connection. */
struct mbedtls_ssl_context;

/* Prepares ssl (mbedtls_ssl_init'ed by the caller, who frees it) for one
 * connection of c's role: the shared config and, on a client, the name the
 * server's certificate must carry. c must outlive ssl. Returns 0 or a
 * negative mbedTLS error. */
int tls_ssl_setup(tls_ctx *c, struct mbedtls_ssl_context *ssl);

/* Copies the CN of the peer's verified certificate into out (n bytes).
 * Returns 0, or -ENOENT when there is no peer certificate or it has no CN
 * that fits. */
int tls_peer_cn(const struct mbedtls_ssl_context *ssl, char *out, size_t n);

/* Why a handshake failed, for a client deciding whether retrying can help:
 * TLS_FAIL_NONE for a transient failure (refused, reset, timeout, a
 * malformed record), otherwise a permanent one: this side refused the
 * peer's certificate (not signed by the CA, not carrying the expected name,
 * expired or not yet valid, revoked, or another defect), or the peer sent a
 * fatal alert during the handshake (it refused this side's certificate). */
enum {
    TLS_FAIL_NONE,
    TLS_FAIL_UNTRUSTED,
    TLS_FAIL_NAME,
    TLS_FAIL_EXPIRED,
    TLS_FAIL_REVOKED,
    TLS_FAIL_CERT,
    TLS_FAIL_REFUSED,
};
int tls_failure(const struct mbedtls_ssl_context *ssl, int ret);

/* The names the last peer certificate checked by c carried, as one line:
 * "CN server, DNS localhost, IP 127.0.0.1" ("" before any). Set during a
 * handshake on c's loop, so read it right after the handshake failed. */
const char *tls_peer_names(const tls_ctx *c);

/* One line (into out, n bytes) for mbedTLS error ret on ssl:
 * "certificate verify failed: <reasons>" when a certificate was refused,
 * else mbedTLS's own text and code. */
void tls_error_text(const struct mbedtls_ssl_context *ssl, int ret, char *out, size_t n);

#endif
