/* tls: the per-role mbedTLS configuration behind every sefl connection.
 *
 * One tls_ctx per role (the coordinator's server side, or one client
 * identity talking to one server name) holds the CA chain, this side's
 * certificate and key, an RNG and an mbedtls_ssl_config; conn.c makes one
 * mbedtls_ssl_context per connection from it with tls_ssl_setup. Many client
 * identities of one process may take their CA chain and RNG from one
 * tls_ctx_new_shared context instead of holding copies. Policy:
 * TLS 1.2 or newer, ECDHE-ECDSA with AEAD suites only, the peer's certificate
 * required on both sides and checked against the project CA, and on a client
 * the server's name (DNS name or IP address) checked against its certificate.
 *
 * mbedTLS 2.28 (Debian 12) and 3.x differ in a few calls; the TLS_* shim
 * macros below are the only place that knows.
 */
#include "common/net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

#include "common/log.h"

/* ---- version shim ---------------------------------------------------- */

#if MBEDTLS_VERSION_NUMBER >= 0x03020000
#define TLS_SET_MIN_VERSION_12(conf) \
    mbedtls_ssl_conf_min_tls_version((conf), MBEDTLS_SSL_VERSION_TLS1_2)
#else
#define TLS_SET_MIN_VERSION_12(conf) \
    mbedtls_ssl_conf_min_version((conf), MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3)
#endif

#if MBEDTLS_VERSION_MAJOR >= 3
#include <psa/crypto.h>
#define TLS_PARSE_KEYFILE(pk, path, rng) \
    mbedtls_pk_parse_keyfile((pk), (path), NULL, mbedtls_ctr_drbg_random, (rng))
#define TLS_CHECK_PAIR(pub, prv, rng) \
    mbedtls_pk_check_pair((pub), (prv), mbedtls_ctr_drbg_random, (rng))
/* 3.x may route crypto through PSA (always for TLS 1.3): initialise it once. */
#define TLS_LIBRARY_INIT() psa_crypto_init()
static const uint16_t tls_groups[] = {
    MBEDTLS_SSL_IANA_TLS_GROUP_X25519, MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1, MBEDTLS_SSL_IANA_TLS_GROUP_NONE,
};
#define TLS_SET_GROUPS(conf) mbedtls_ssl_conf_groups((conf), tls_groups)
#else
#define TLS_PARSE_KEYFILE(pk, path, rng) mbedtls_pk_parse_keyfile((pk), (path), NULL)
#define TLS_CHECK_PAIR(pub, prv, rng) mbedtls_pk_check_pair((pub), (prv))
#define TLS_LIBRARY_INIT() 0
static const mbedtls_ecp_group_id tls_groups[] = {
    MBEDTLS_ECP_DP_CURVE25519, MBEDTLS_ECP_DP_SECP256R1, MBEDTLS_ECP_DP_SECP384R1, MBEDTLS_ECP_DP_NONE,
};
#define TLS_SET_GROUPS(conf) mbedtls_ssl_conf_curves((conf), tls_groups)
#endif

/* mbedTLS checks iPAddress SANs against an IP literal host name only from
 * 3.5 on; before that its name check compares DNS names, so tls.c checks
 * IP literals itself in a verify callback. */
#if MBEDTLS_VERSION_NUMBER >= 0x03050000
#define TLS_NATIVE_IP_SAN 1
#else
#define TLS_NATIVE_IP_SAN 0
#endif

/* ---- the context ----------------------------------------------------- */

#define TLS_NAME_MAX 255             /* a DNS name or IP literal */
#define TLS_PEER_NAMES_MAX 512       /* tls_peer_names' line, with its NUL */

/* The RNG: an entropy context (38 KB with Debian's mbedTLS, whose HAVEGE
 * state is most of it) and the DRBG it seeds. */
typedef struct {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
} tls_rng;

struct tls_ctx {
    mbedtls_ssl_config conf;         /* shared by every connection of this role */
    mbedtls_x509_crt ca;             /* trusted project CA (unused when shared) */
    mbedtls_x509_crt cert;           /* this side's certificate (absent: no cert) */
    mbedtls_pk_context key;          /* its private key */
    tls_rng *rng;                    /* owned; NULL when shared */
    const tls_ctx *shared;           /* tls_ctx_new_shared's CA and RNG, or NULL */
    int shared_only;                 /* made by tls_ctx_new_shared: no role */
    int has_cert;                    /* cert and key were loaded */
    char server_name[TLS_NAME_MAX + 1];  /* client: name the server must carry */
    uint8_t ip[16];                  /* client: server_name as an address ... */
    size_t ip_len;                   /* ... 4 or 16 bytes, 0 if a DNS name */
    char peer_names[TLS_PEER_NAMES_MAX]; /* tls_peer_names */
};

/* AEAD suites with ECDHE and ECDSA certificates, in the server's order of
 * preference. ChaCha20-Poly1305 comes first because mbedTLS's own code is
 * what runs at both ends, and there it is the cheaper one: on the 2-core
 * x86 machines of this project sefl-tlsbench measured 373 MB/s raw against
 * 224 for AES-128-GCM (mbedTLS 2.28 does GHASH in portable C), and a bulk
 * transfer took 2.0 CPU-seconds per 500 MB against 3.25. TLS 1.3 suites
 * are added where the library has 1.3. */
static const int tls_suites[] = {
#if defined(MBEDTLS_SSL_PROTO_TLS1_3)
    MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
    MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
#endif
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    0,
};

static char tls_suites_text[512];
static pthread_once_t tls_suites_once = PTHREAD_ONCE_INIT;

static void tls_suites_fill(void)
{
    size_t n = 0;
    for (const int *s = tls_suites; *s; s++) {
        const char *name = mbedtls_ssl_get_ciphersuite_name(*s);
        n += (size_t)snprintf(tls_suites_text + n, sizeof tls_suites_text - n, "%s%s",
                              n ? "," : "", name);
        if (n >= sizeof tls_suites_text) break;
    }
}

const char *tls_suites_offered(void)
{
    pthread_once(&tls_suites_once, tls_suites_fill);
    return tls_suites_text;
}

/* mbedTLS's text for ret, as "what (-0xNNNN)". */
static void tls_strerror(int ret, char *out, size_t n)
{
    char text[160];
    mbedtls_strerror(ret, text, sizeof text);
    snprintf(out, n, "%s (-0x%04x)", text, (unsigned)-ret);
}

/* Loads a PEM certificate (chain) from path into crt, with a clear line. */
static int tls_load_crt(mbedtls_x509_crt *crt, const char *path, const char *what, char *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        err_set(err, "cannot read %s %s: %s (make certificates with `sefl-certs init`)",
                what, path, strerror(e));
        return -e;
    }
    int ret = mbedtls_x509_crt_parse_file(crt, path);
    if (ret != 0) {
        char e[200];
        tls_strerror(ret, e, sizeof e);
        err_set(err, "cannot load %s %s: %s", what, path, e);
        return -EINVAL;
    }
    return 0;
}

static void tls_ctx_init(tls_ctx *c)
{
    mbedtls_ssl_config_init(&c->conf);
    mbedtls_x509_crt_init(&c->ca);
    mbedtls_x509_crt_init(&c->cert);
    mbedtls_pk_init(&c->key);
}

void tls_ctx_free(tls_ctx *c)
{
    if (!c) return;
    mbedtls_ssl_config_free(&c->conf);
    mbedtls_x509_crt_free(&c->ca);
    mbedtls_x509_crt_free(&c->cert);
    mbedtls_pk_free(&c->key);
    if (c->rng) {
        mbedtls_ctr_drbg_free(&c->rng->drbg);
        mbedtls_entropy_free(&c->rng->entropy);
        free(c->rng);
    }
    free(c);
}

/* The CA chain and the DRBG c uses: its own, or those of its shared context. */
static mbedtls_x509_crt *tls_ca(tls_ctx *c)
{
    return c->shared ? (mbedtls_x509_crt *)&c->shared->ca : &c->ca;
}

static mbedtls_ctr_drbg_context *tls_drbg(tls_ctx *c)
{
    return c->shared ? &c->shared->rng->drbg : &c->rng->drbg;
}

/* Makes c's own RNG and loads its CA chain. */
static int tls_ctx_own(tls_ctx *c, const char *ca, char *err)
{
    static const char pers[] = "sefl-tls";
    char e[200];
    int ret;
    if (!(c->rng = calloc(1, sizeof *c->rng))) {
        err_set(err, "out of memory");
        return -ENOMEM;
    }
    mbedtls_entropy_init(&c->rng->entropy);
    mbedtls_ctr_drbg_init(&c->rng->drbg);
    if ((ret = TLS_LIBRARY_INIT()) != 0) {
        err_set(err, "cannot initialise the crypto library (%d)", ret);
        return -EIO;
    }
    ret = mbedtls_ctr_drbg_seed(&c->rng->drbg, mbedtls_entropy_func, &c->rng->entropy,
                                (const unsigned char *)pers, sizeof pers - 1);
    if (ret != 0) {
        tls_strerror(ret, e, sizeof e);
        err_set(err, "cannot seed the random generator: %s", e);
        return -EIO;
    }
    return tls_load_crt(&c->ca, ca, "CA certificate", err);
}

/* Appends to c->peer_names the CN and the DNS and IP subject alternative
 * names of crt, the leaf certificate being checked. */
static void tls_note_names(tls_ctx *c, const mbedtls_x509_crt *crt)
{
    char *out = c->peer_names;
    size_t n = sizeof c->peer_names, len = 0;
    out[0] = 0;
    for (const mbedtls_x509_name *nm = &crt->subject; nm; nm = nm->next)
        if (!MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &nm->oid) && len < n)
            len += (size_t)snprintf(out + len, n - len, "CN %.*s", (int)nm->val.len, nm->val.p);
    for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s && len < n; s = s->next) {
        if (!s->buf.p) continue;
        char ip[INET6_ADDRSTRLEN];
        if (s->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME))
            len += (size_t)snprintf(out + len, n - len, "%sDNS %.*s", len ? ", " : "",
                                    (int)s->buf.len, s->buf.p);
        else if (s->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_IP_ADDRESS) &&
                 (s->buf.len == 4 || s->buf.len == 16) &&
                 inet_ntop(s->buf.len == 4 ? AF_INET : AF_INET6, s->buf.p, ip, sizeof ip))
            len += (size_t)snprintf(out + len, n - len, "%sIP %s", len ? ", " : "", ip);
    }
}

/* Every certificate chain a client checks comes through here: the leaf's
 * names are kept for the message of a failed handshake (tls_peer_names).
 * Without TLS_NATIVE_IP_SAN, when the client expects an IP address, the
 * leaf certificate must list it as an iPAddress SAN (a DNS name or CN that
 * happens to spell the address does not count). */
static int tls_verify(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    tls_ctx *c = arg;
    if (depth != 0) return 0;
    tls_note_names(c, crt);
    if (!c->ip_len || TLS_NATIVE_IP_SAN) return 0;
    for (const mbedtls_x509_sequence *s = &crt->subject_alt_names; s; s = s->next) {
        if (s->buf.p && s->buf.tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_IP_ADDRESS) &&
            s->buf.len == c->ip_len && memcmp(s->buf.p, c->ip, c->ip_len) == 0)
            return 0;
    }
    *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
    return 0;
}

/* Everything both roles share: RNG, files, suites, version, verification.
 * With shared, its CA and RNG are used and ca is not read. */
static int tls_ctx_make(tls_ctx **out, int endpoint, const tls_ctx *shared, const char *ca,
                        const char *cert, const char *key, char *err)
{
    char e[200];
    int ret;
    *out = NULL;
    tls_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        err_set(err, "out of memory");
        return -ENOMEM;
    }
    tls_ctx_init(c);
    c->shared = shared;
    if (!shared && (ret = tls_ctx_own(c, ca, err)) < 0) goto out;
    if (cert && key) {
        if ((ret = tls_load_crt(&c->cert, cert, "certificate", err)) < 0) goto out;
        ret = TLS_PARSE_KEYFILE(&c->key, key, tls_drbg(c));
        if (ret != 0) {
            tls_strerror(ret, e, sizeof e);
            err_set(err, "cannot load key %s: %s", key, e);
            ret = -EINVAL;
            goto out;
        }
        if (TLS_CHECK_PAIR(&c->cert.pk, &c->key, tls_drbg(c)) != 0) {
            err_set(err, "key %s does not belong to certificate %s", key, cert);
            ret = -EINVAL;
            goto out;
        }
        c->has_cert = 1;
    }

    ret = mbedtls_ssl_config_defaults(&c->conf, endpoint, MBEDTLS_SSL_TRANSPORT_STREAM,
                                      MBEDTLS_SSL_PRESET_DEFAULT);
    if (ret != 0) {
        tls_strerror(ret, e, sizeof e);
        err_set(err, "cannot configure TLS: %s", e);
        ret = -EINVAL;
        goto out;
    }
    TLS_SET_MIN_VERSION_12(&c->conf);
    mbedtls_ssl_conf_ciphersuites(&c->conf, tls_suites);
    /* Key exchange groups, fastest first. mbedTLS 2.28's default list
     * starts with P-521, which makes every handshake several times slower;
     * P-256 must stay listed, it is the curve of our ECDSA certificates. */
    TLS_SET_GROUPS(&c->conf);
    mbedtls_ssl_conf_rng(&c->conf, mbedtls_ctr_drbg_random, tls_drbg(c));
    mbedtls_ssl_conf_authmode(&c->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&c->conf, tls_ca(c), NULL);
    if (c->has_cert && (ret = mbedtls_ssl_conf_own_cert(&c->conf, &c->cert, &c->key)) != 0) {
        tls_strerror(ret, e, sizeof e);
        err_set(err, "cannot use certificate %s: %s", cert, e);
        ret = -EINVAL;
        goto out;
    }
    *out = c;
    c = NULL;
    ret = 0;
out:
    tls_ctx_free(c);
    return ret;
}

int tls_ctx_new_shared(tls_ctx **out, const char *certs_dir, char *err)
{
    char ca[4096];
    snprintf(ca, sizeof ca, "%s/ca.crt", certs_dir);
    *out = NULL;
    tls_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        err_set(err, "out of memory");
        return -ENOMEM;
    }
    tls_ctx_init(c);
    c->shared_only = 1;
    int ret = tls_ctx_own(c, ca, err);
    if (ret < 0) {
        tls_ctx_free(c);
        return ret;
    }
    *out = c;
    return 0;
}

int tls_ctx_new_server(tls_ctx **out, const char *certs_dir, char *err)
{
    char ca[4096], cert[4096], key[4096];
    snprintf(ca, sizeof ca, "%s/ca.crt", certs_dir);
    snprintf(cert, sizeof cert, "%s/server.crt", certs_dir);
    snprintf(key, sizeof key, "%s/server.key", certs_dir);
    return tls_ctx_make(out, MBEDTLS_SSL_IS_SERVER, NULL, ca, cert, key, err);
}

/* A client context: its own CA and RNG (ca read), or shared's. */
static int tls_ctx_new_client_with(tls_ctx **out, const tls_ctx *shared, const char *ca,
                                   const char *cert, const char *key, const char *server_name,
                                   char *err)
{
    *out = NULL;
    if (!cert != !key) {
        err_set(err, "a client certificate needs its key (and a key its certificate)");
        return -EINVAL;
    }
    if (!server_name || !*server_name || strlen(server_name) > TLS_NAME_MAX) {
        err_set(err, "server name must be 1 to %d characters", TLS_NAME_MAX);
        return -EINVAL;
    }
    if (shared && !shared->shared_only) {
        err_set(err, "a client can share only a context made by tls_ctx_new_shared");
        return -EINVAL;
    }
    tls_ctx *c;
    int ret = tls_ctx_make(&c, MBEDTLS_SSL_IS_CLIENT, shared, ca, cert, key, err);
    if (ret < 0) return ret;
    snprintf(c->server_name, sizeof c->server_name, "%s", server_name);
    if (inet_pton(AF_INET, server_name, c->ip) == 1) c->ip_len = 4;
    else if (inet_pton(AF_INET6, server_name, c->ip) == 1) c->ip_len = 16;
    mbedtls_ssl_conf_verify(&c->conf, tls_verify, c);
    *out = c;
    return 0;
}

int tls_ctx_new_client_files(tls_ctx **out, const char *ca, const char *cert, const char *key,
                             const char *server_name, char *err)
{
    return tls_ctx_new_client_with(out, NULL, ca, cert, key, server_name, err);
}

int tls_ctx_new_client(tls_ctx **out, const char *certs_dir, const char *name,
                       const char *server_name, char *err)
{
    return tls_ctx_new_client_shared(out, NULL, certs_dir, name, server_name, err);
}

int tls_ctx_new_client_shared(tls_ctx **out, const tls_ctx *shared, const char *certs_dir,
                              const char *name, const char *server_name, char *err)
{
    char ca[4096], cert[4096], key[4096];
    snprintf(ca, sizeof ca, "%s/ca.crt", certs_dir);
    snprintf(cert, sizeof cert, "%s/clients/%s.crt", certs_dir, name);
    snprintf(key, sizeof key, "%s/clients/%s.key", certs_dir, name);
    return tls_ctx_new_client_with(out, shared, ca, cert, key, server_name, err);
}

int tls_ssl_setup(tls_ctx *c, mbedtls_ssl_context *ssl)
{
    if (c->shared_only) return MBEDTLS_ERR_SSL_BAD_INPUT_DATA;
    int ret = mbedtls_ssl_setup(ssl, &c->conf);
    if (ret != 0) return ret;
    /* A client names the server it expects (also sent as SNI). An IP literal
     * is neither valid SNI nor checked by older mbedTLS, so tls_verify_ip
     * checks it instead. Servers leave this unset. */
    if (c->server_name[0] && (!c->ip_len || TLS_NATIVE_IP_SAN))
        ret = mbedtls_ssl_set_hostname(ssl, c->server_name);
    return ret;
}

int tls_peer_cn(const mbedtls_ssl_context *ssl, char *out, size_t n)
{
    const mbedtls_x509_crt *crt = mbedtls_ssl_get_peer_cert(ssl);
    if (n) out[0] = 0;
    if (!crt) return -ENOENT;
    for (const mbedtls_x509_name *a = &crt->subject; a; a = a->next) {
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &a->oid) != 0) continue;
        if (a->val.len == 0 || a->val.len >= n) return -ENOENT;
        /* The CN becomes an identity in logs and the database: printable only. */
        for (size_t i = 0; i < a->val.len; i++)
            if (a->val.p[i] < 0x20 || a->val.p[i] > 0x7e) return -ENOENT;
        memcpy(out, a->val.p, a->val.len);
        out[a->val.len] = 0;
        return 0;
    }
    return -ENOENT;
}

void tls_error_text(const mbedtls_ssl_context *ssl, int ret, char *out, size_t n)
{
    uint32_t flags = mbedtls_ssl_get_verify_result(ssl);
    if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED && flags != 0 && flags != (uint32_t)-1) {
        /* verify_info writes one reason per line; join them into one. */
        char info[512];
        int len = mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
        for (int i = 0; i < len; i++)
            if (info[i] == '\n') info[i] = (i == len - 1) ? 0 : ';';
        snprintf(out, n, "certificate verify failed: %s", info);
        return;
    }
    tls_strerror(ret, out, n);
}

int tls_failure(const mbedtls_ssl_context *ssl, int ret)
{
    if (ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) return TLS_FAIL_REFUSED;
    if (ret != MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) return TLS_FAIL_NONE;
    uint32_t flags = mbedtls_ssl_get_verify_result(ssl);
    if (flags == (uint32_t)-1) return TLS_FAIL_CERT;
    if (flags & MBEDTLS_X509_BADCERT_NOT_TRUSTED) return TLS_FAIL_UNTRUSTED;
    if (flags & (MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE)) return TLS_FAIL_EXPIRED;
    if (flags & MBEDTLS_X509_BADCERT_REVOKED) return TLS_FAIL_REVOKED;
    if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) return TLS_FAIL_NAME;
    return TLS_FAIL_CERT;
}

const char *tls_peer_names(const tls_ctx *c)
{
    return c->peer_names;
}
