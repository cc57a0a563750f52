/* sefl-certs: provisions the certificates of a sefl deployment.
 *
 *   sefl-certs init  --dir DIR [--clients N] [--server-name NAME]...
 *   sefl-certs issue --dir DIR --name NAME
 *
 * `init` makes a project CA (DIR/ca.crt, DIR/ca.key), a server certificate
 * whose subjectAltName lists the given DNS names and IP addresses plus
 * localhost and 127.0.0.1 (DIR/server.crt, .key), and N client certificates
 * client-0000, client-0001, ... (DIR/clients/NAME.crt, .key). `issue` adds one
 * client certificate signed by the existing CA, so adding a device never
 * re-provisions the others. Keys are EC P-256, written 0600; no file is ever
 * overwritten. A client's identity on the wire is its certificate's CN.
 *
 * Written with mbedTLS's x509write API. mbedTLS 2.28 has no writer for the
 * subjectAltName and extendedKeyUsage extensions, so their DER is built here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

#include "common/cli.h"
#include "common/config.h"
#include "common/log.h"

#define CERTS_MAX_CLIENTS 100000     /* --clients */
#define CERTS_MAX_NAMES 16           /* server names, defaults included */
#define CERTS_HOST_MAX 253           /* a DNS name */
#define CERTS_NAME_MAX 64            /* a client name: the CN's upper bound in X.509 */
#define CERTS_DAYS 3650              /* validity of every certificate */
#define CERTS_PEM_MAX 16384          /* one PEM certificate or key */
#define CERTS_PATH_MAX 4096

/* mbedTLS 3.x wants an RNG for key parsing and PSA initialised (keys may
 * live there); from 3.4 the serial is given as bytes. */
#if MBEDTLS_VERSION_MAJOR >= 3
#include <psa/crypto.h>
#define CERTS_PARSE_KEYFILE(pk, path, drbg) \
    mbedtls_pk_parse_keyfile((pk), (path), NULL, mbedtls_ctr_drbg_random, (drbg))
#define CERTS_LIBRARY_INIT() psa_crypto_init()
#else
#define CERTS_PARSE_KEYFILE(pk, path, drbg) mbedtls_pk_parse_keyfile((pk), (path), NULL)
#define CERTS_LIBRARY_INIT() 0
#endif
#if MBEDTLS_VERSION_NUMBER >= 0x03040000
#define CERTS_SET_SERIAL(crt, mpi, raw, n) mbedtls_x509write_crt_set_serial_raw((crt), (raw), (n))
#else
#define CERTS_SET_SERIAL(crt, mpi, raw, n) mbedtls_x509write_crt_set_serial((crt), (mpi))
#endif

typedef enum { CERT_CA, CERT_SERVER, CERT_CLIENT } cert_kind;

/* What one run works with: the RNG and the CA that signs. */
typedef struct {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_pk_context ca_key;       /* the CA's private key */
    char ca_subject[CERTS_NAME_MAX + 8];  /* "CN=..." of the CA */
    const char *dir;
} certs;

static void certs_mbed_err(char *err, const char *what, int ret)
{
    char e[160];
    mbedtls_strerror(ret, e, sizeof e);
    err_set(err, "%s: %s (-0x%04x)", what, e, (unsigned)-ret);
}

/* Writes a new file; O_EXCL so that nothing is ever overwritten. */
static int certs_write_file(const char *path, const unsigned char *data, size_t len, mode_t mode,
                            char *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (fd < 0) {
        int e = errno;
        err_set(err, "cannot create %s: %s%s", path, strerror(e),
                e == EEXIST ? " (refusing to overwrite it)" : "");
        return -e;
    }
    ssize_t n = write(fd, data, len);
    int ret = (n == (ssize_t)len) ? 0 : -EIO;
    if (close(fd) != 0) ret = -EIO;
    if (ret < 0) err_set(err, "cannot write %s", path);
    return ret;
}

/* A client name becomes a file name and the client's identity. */
static int certs_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CERTS_NAME_MAX || s[0] == '.' || s[0] == '-') return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

/* A server name: an IP literal or a DNS name of letters, digits, '-', '.'. */
static int certs_host_ok(const char *s)
{
    uint8_t ip[16];
    if (inet_pton(AF_INET, s, ip) == 1 || inet_pton(AF_INET6, s, ip) == 1) return 1;
    size_t n = strlen(s);
    if (n == 0 || n > CERTS_HOST_MAX || s[0] == '.' || s[0] == '-') return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '-'))
            return 0;
    return 1;
}

/* Writes the tag and length header in front of the len content bytes just
 * written before *p (asn1write writes backwards). Returns len plus the
 * header's size, or < 0. */
static int certs_der_wrap(unsigned char **p, unsigned char *buf, int len, unsigned char tag)
{
    int ret;
    if ((ret = mbedtls_asn1_write_len(p, buf, (size_t)len)) < 0) return ret;
    len += ret;
    if ((ret = mbedtls_asn1_write_tag(p, buf, tag)) < 0) return ret;
    return len + ret;
}

/* subjectAltName value: SEQUENCE OF GeneralName, dNSName [2] IA5String or
 * iPAddress [7] OCTET STRING (4 or 16 bytes). asn1write writes backwards from
 * the end of buf; *der points at the result. Returns its length or < 0. */
static int certs_san_der(const char *const *names, int n, unsigned char *buf, size_t size,
                         unsigned char **der)
{
    unsigned char *p = buf + size;
    int len = 0, ret;
    for (int i = n - 1; i >= 0; i--) {
        uint8_t ip[16];
        size_t iplen = 0;
        if (inet_pton(AF_INET, names[i], ip) == 1) iplen = 4;
        else if (inet_pton(AF_INET6, names[i], ip) == 1) iplen = 16;
        int item = 0;
        if (iplen) {
            if ((ret = mbedtls_asn1_write_raw_buffer(&p, buf, ip, iplen)) < 0) return ret;
            item += ret;
        } else {
            if ((ret = mbedtls_asn1_write_raw_buffer(&p, buf, (const unsigned char *)names[i],
                                                     strlen(names[i]))) < 0)
                return ret;
            item += ret;
        }
        int tag = MBEDTLS_ASN1_CONTEXT_SPECIFIC |
                  (iplen ? MBEDTLS_X509_SAN_IP_ADDRESS : MBEDTLS_X509_SAN_DNS_NAME);
        if ((ret = certs_der_wrap(&p, buf, item, (unsigned char)tag)) < 0) return ret;
        len += ret;
    }
    if ((ret = certs_der_wrap(&p, buf, len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) < 0)
        return ret;
    *der = p;
    return ret;
}

/* extendedKeyUsage value: SEQUENCE { serverAuth or clientAuth }, so that a
 * client certificate cannot serve as the server's and the other way round. */
static int certs_eku_der(cert_kind kind, unsigned char *buf, size_t size, unsigned char **der)
{
    unsigned char *p = buf + size;
    int len = 0, ret;
    if (kind == CERT_SERVER)
        ret = mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_SERVER_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH));
    else
        ret = mbedtls_asn1_write_oid(&p, buf, MBEDTLS_OID_CLIENT_AUTH, MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH));
    if (ret < 0)
        return ret;
    len += ret;
    if ((ret = certs_der_wrap(&p, buf, len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) < 0)
        return ret;
    *der = p;
    return ret;
}

static void certs_time(char out[16], time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y%m%d%H%M%S", &tm);
}

/* Makes an EC P-256 key into key (initialised by the caller). */
static int certs_make_key(certs *s, mbedtls_pk_context *key, char *err)
{
    int ret = mbedtls_pk_setup(key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
    if (ret == 0)
        ret = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*key),
                                  mbedtls_ctr_drbg_random, &s->drbg);
    if (ret != 0) certs_mbed_err(err, "cannot make an EC key", ret);
    return ret ? -EIO : 0;
}

/* Signs a certificate of kind for subject_key (CN cn; SANs names[0..n) for
 * a server) with the CA and writes it as PEM to path. For CERT_CA the key
 * signs itself. expired makes one that ended yesterday (rejection tests). */
static int certs_sign(certs *s, cert_kind kind, const char *cn, mbedtls_pk_context *subject_key,
                      const char *const *names, int n, int expired, const char *path, char *err)
{
    mbedtls_x509write_cert crt;
    mbedtls_mpi serial;
    unsigned char *pem = NULL, ext[8192], *der;
    unsigned char raw_serial[16];
    char subject[CERTS_NAME_MAX + 8], from[16], to[16];
    int ret;

    mbedtls_x509write_crt_init(&crt);
    mbedtls_mpi_init(&serial);
    if (!(pem = malloc(CERTS_PEM_MAX))) {
        err_set(err, "out of memory");
        ret = -ENOMEM;
        goto out;
    }
    snprintf(subject, sizeof subject, "CN=%s", cn);
    /* Random positive serial: unique without keeping a counter anywhere. */
    if ((ret = mbedtls_ctr_drbg_random(&s->drbg, raw_serial, sizeof raw_serial)) != 0) goto mbed;
    raw_serial[0] = (raw_serial[0] & 0x7f) | 0x01;
    if ((ret = mbedtls_mpi_read_binary(&serial, raw_serial, sizeof raw_serial)) != 0) goto mbed;

    time_t now = time(NULL);
    if (expired) {
        certs_time(from, now - 2 * 86400);
        certs_time(to, now - 86400);
    } else {
        /* An hour back, for clocks a little behind ours. */
        certs_time(from, now - 3600);
        certs_time(to, now + (time_t)CERTS_DAYS * 86400);
    }

    mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&crt, subject_key);
    mbedtls_x509write_crt_set_issuer_key(&crt, kind == CERT_CA ? subject_key : &s->ca_key);
    if ((ret = mbedtls_x509write_crt_set_subject_name(&crt, subject)) != 0) goto mbed;
    if ((ret = mbedtls_x509write_crt_set_issuer_name(&crt, kind == CERT_CA ? subject : s->ca_subject)) != 0)
        goto mbed;
    if ((ret = CERTS_SET_SERIAL(&crt, &serial, raw_serial, sizeof raw_serial)) != 0) goto mbed;
    if ((ret = mbedtls_x509write_crt_set_validity(&crt, from, to)) != 0) goto mbed;
    if ((ret = mbedtls_x509write_crt_set_basic_constraints(&crt, kind == CERT_CA, 0)) != 0) goto mbed;
    if ((ret = mbedtls_x509write_crt_set_subject_key_identifier(&crt)) != 0) goto mbed;
    if ((ret = mbedtls_x509write_crt_set_authority_key_identifier(&crt)) != 0) goto mbed;
    unsigned int usage = kind == CERT_CA ? MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN
                                         : MBEDTLS_X509_KU_DIGITAL_SIGNATURE;
    if ((ret = mbedtls_x509write_crt_set_key_usage(&crt, usage)) != 0) goto mbed;
    if (kind != CERT_CA) {
        int len = certs_eku_der(kind, ext, sizeof ext, &der);
        if (len < 0) { ret = len; goto mbed; }
        ret = mbedtls_x509write_crt_set_extension(&crt, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                                                  MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE),
                                                  0, der, (size_t)len);
        if (ret != 0) goto mbed;
    }
    if (kind == CERT_SERVER) {
        int len = certs_san_der(names, n, ext, sizeof ext, &der);
        if (len < 0) { ret = len; goto mbed; }
        ret = mbedtls_x509write_crt_set_extension(&crt, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                                  MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME),
                                                  0, der, (size_t)len);
        if (ret != 0) goto mbed;
    }
    if ((ret = mbedtls_x509write_crt_pem(&crt, pem, CERTS_PEM_MAX, mbedtls_ctr_drbg_random, &s->drbg)) != 0)
        goto mbed;
    ret = certs_write_file(path, pem, strlen((char *)pem), 0644, err);
    goto out;
mbed:
    certs_mbed_err(err, "cannot make certificate", ret);
    ret = -EIO;
out:
    free(pem);
    mbedtls_mpi_free(&serial);
    mbedtls_x509write_crt_free(&crt);
    return ret;
}

/* Writes key (PEM, 0600) to path. */
static int certs_write_key(mbedtls_pk_context *key, const char *path, char *err)
{
    unsigned char pem[2048];
    int ret = mbedtls_pk_write_key_pem(key, pem, sizeof pem);
    if (ret != 0) {
        certs_mbed_err(err, "cannot encode key", ret);
        return -EIO;
    }
    ret = certs_write_file(path, pem, strlen((char *)pem), 0600, err);
    mbedtls_platform_zeroize(pem, sizeof pem);
    return ret;
}

/* Makes a key and a certificate for it: DIR/clients/NAME.{crt,key} for a
 * client, DIR/server.{crt,key} for the server. The key is written first so a
 * certificate never exists without its key. */
static int certs_make_pair(certs *s, cert_kind kind, const char *cn, const char *const *names,
                           int n, int expired, char *err)
{
    char crt_path[CERTS_PATH_MAX], key_path[CERTS_PATH_MAX];
    if (kind == CERT_SERVER) {
        snprintf(crt_path, sizeof crt_path, "%s/server.crt", s->dir);
        snprintf(key_path, sizeof key_path, "%s/server.key", s->dir);
    } else {
        snprintf(crt_path, sizeof crt_path, "%s/clients/%s.crt", s->dir, cn);
        snprintf(key_path, sizeof key_path, "%s/clients/%s.key", s->dir, cn);
    }
    if (access(crt_path, F_OK) == 0) {
        err_set(err, "%s exists: refusing to overwrite it", crt_path);
        return -EEXIST;
    }
    mbedtls_pk_context key;
    mbedtls_pk_init(&key);
    int ret = certs_make_key(s, &key, err);
    if (ret == 0) ret = certs_write_key(&key, key_path, err);
    if (ret == 0) ret = certs_sign(s, kind, cn, &key, names, n, expired, crt_path, err);
    mbedtls_pk_free(&key);
    return ret;
}

/* mkdir -p: the parents of --dir are made too. */
static int certs_mkdir(const char *path, mode_t mode, char *err)
{
    char p[CERTS_PATH_MAX];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; ; s++) {
        if (*s != '/' && *s != 0) continue;
        char saved = *s;
        *s = 0;
        if (mkdir(p, mode) != 0 && errno != EEXIST) {
            err_set(err, "cannot create directory %s: %s", p, strerror(errno));
            return -errno;
        }
        *s = saved;
        if (!saved) return 0;
    }
}

static int certs_open(certs *s, const char *dir, char *err)
{
    static const char pers[] = "sefl-certs";
    memset(s, 0, sizeof *s);
    mbedtls_entropy_init(&s->entropy);
    mbedtls_ctr_drbg_init(&s->drbg);
    mbedtls_pk_init(&s->ca_key);
    s->dir = dir;
    if (strlen(dir) > CERTS_PATH_MAX - 64) {
        err_set(err, "--dir path too long");
        return -ENAMETOOLONG;
    }
    int ret = CERTS_LIBRARY_INIT();
    if (ret != 0) {
        err_set(err, "cannot initialise the crypto library (%d)", ret);
        return -EIO;
    }
    ret = mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func, &s->entropy,
                                (const unsigned char *)pers, sizeof pers - 1);
    if (ret != 0) {
        certs_mbed_err(err, "cannot seed the random generator", ret);
        return -EIO;
    }
    return 0;
}

static void certs_close(certs *s)
{
    mbedtls_pk_free(&s->ca_key);
    mbedtls_ctr_drbg_free(&s->drbg);
    mbedtls_entropy_free(&s->entropy);
}

static int certs_init(certs *s, int nclients, const char *const *extra, int nextra, char *err)
{
    char path[CERTS_PATH_MAX], ca_cn[32], client[32];
    const char *names[CERTS_MAX_NAMES];
    int n = 0, ret;

    snprintf(path, sizeof path, "%s/ca.crt", s->dir);
    if (access(path, F_OK) == 0) {
        err_set(err, "%s exists: refusing to overwrite the project CA (use `sefl-certs issue`)", path);
        return -EEXIST;
    }
    if ((ret = certs_mkdir(s->dir, 0755, err)) < 0) return ret;
    snprintf(path, sizeof path, "%s/clients", s->dir);
    if ((ret = certs_mkdir(path, 0755, err)) < 0) return ret;

    /* A random CA name, so that two projects' CAs are never confused. */
    unsigned char r[4];
    if ((ret = mbedtls_ctr_drbg_random(&s->drbg, r, sizeof r)) != 0) {
        certs_mbed_err(err, "random", ret);
        return -EIO;
    }
    snprintf(ca_cn, sizeof ca_cn, "sefl CA %02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
    snprintf(s->ca_subject, sizeof s->ca_subject, "CN=%s", ca_cn);
    if ((ret = certs_make_key(s, &s->ca_key, err)) < 0) return ret;
    snprintf(path, sizeof path, "%s/ca.key", s->dir);
    if ((ret = certs_write_key(&s->ca_key, path, err)) < 0) return ret;
    snprintf(path, sizeof path, "%s/ca.crt", s->dir);
    if ((ret = certs_sign(s, CERT_CA, ca_cn, &s->ca_key, NULL, 0, 0, path, err)) < 0) return ret;

    /* The given names first (the first is the CN), then the defaults. */
    for (int i = 0; i < nextra; i++) names[n++] = extra[i];
    static const char *const defaults[] = { "localhost", "127.0.0.1" };
    for (int d = 0; d < 2; d++) {
        int seen = 0;
        for (int i = 0; i < n; i++) seen |= !strcmp(names[i], defaults[d]);
        if (!seen) names[n++] = defaults[d];
    }
    if ((ret = certs_make_pair(s, CERT_SERVER, names[0], names, n, 0, err)) < 0) return ret;
    for (int i = 0; i < nclients; i++) {
        snprintf(client, sizeof client, "client-%04d", i);
        if ((ret = certs_make_pair(s, CERT_CLIENT, client, NULL, 0, 0, err)) < 0) return ret;
    }
    printf("sefl-certs: project CA \"%s\", server certificate for", ca_cn);
    for (int i = 0; i < n; i++) printf("%s%s", i ? "," : " ", names[i]);
    printf(", %d client certificate%s in %s\n", nclients, nclients == 1 ? "" : "s", s->dir);
    return 0;
}

/* Loads the CA key and name from DIR for `issue`. */
static int certs_load_ca(certs *s, char *err)
{
    char path[CERTS_PATH_MAX];
    mbedtls_x509_crt ca;
    mbedtls_x509_crt_init(&ca);
    int ret;
    snprintf(path, sizeof path, "%s/ca.crt", s->dir);
    if (access(path, R_OK) != 0) {
        err_set(err, "cannot read %s: %s (make the project with `sefl-certs init --dir %s`)", path,
                strerror(errno), s->dir);
        ret = -ENOENT;
        goto out;
    }
    if ((ret = mbedtls_x509_crt_parse_file(&ca, path)) != 0) {
        certs_mbed_err(err, path, ret);
        ret = -ENOENT;
        goto out;
    }
    ret = -EINVAL;
    err_set(err, "%s has no usable CN", path);
    for (const mbedtls_x509_name *a = &ca.subject; a; a = a->next) {
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &a->oid) != 0) continue;
        if (a->val.len > CERTS_NAME_MAX) break;
        snprintf(s->ca_subject, sizeof s->ca_subject, "CN=%.*s", (int)a->val.len, a->val.p);
        ret = 0;
    }
    if (ret < 0) goto out;
    snprintf(path, sizeof path, "%s/ca.key", s->dir);
    if ((ret = CERTS_PARSE_KEYFILE(&s->ca_key, path, &s->drbg)) != 0) {
        certs_mbed_err(err, path, ret);
        ret = -ENOENT;
    }
out:
    mbedtls_x509_crt_free(&ca);
    return ret;
}

/* --help; built once (it names the limits) and read by config for defaults. */
static const char *certs_usage(void)
{
    static char text[2048];
    if (text[0]) return text;
    snprintf(text, sizeof text,
        "usage: sefl-certs init  --dir DIR [--clients N] [--server-name NAME]...\n"
        "       sefl-certs issue --dir DIR --name NAME [--expired]\n"
        "\n"
        "init   makes a project CA (DIR/ca.crt, ca.key), a server certificate\n"
        "       (DIR/server.crt, server.key) for the given names and IP addresses\n"
        "       plus localhost and 127.0.0.1, and N client certificates\n"
        "       DIR/clients/client-0000.crt/.key, ... Refuses an existing CA.\n"
        "issue  adds DIR/clients/NAME.crt/.key signed by the existing CA.\n"
        "\n"
        "  --dir DIR               certificate directory (created by init)\n"
        "  --clients N             client certificates to make (0..%d, default 0)\n"
        "  --server-name NAME      DNS name or IP address of the server (repeatable, up\n"
        "                          to %d)\n"
        "  --name NAME             client name and certificate CN ([A-Za-z0-9._-], 1..%d)\n"
        "  --expired               (tests) issue a certificate that expired yesterday\n"
        CONFIG_USAGE
        "Keys are EC P-256, written 0600; certificates are valid %d days.\n"
        "Exit status: 0 done, 1 failed, 2 bad arguments.\n",
        CERTS_MAX_CLIENTS, CERTS_MAX_NAMES - 2, CERTS_NAME_MAX, CERTS_DAYS);
    return text;
}

static int certs_bad(const char *msg, const char *arg)
{
    fprintf(stderr, "sefl-certs: %s%s%s (see --help)\n", msg, arg ? " " : "", arg ? arg : "");
    return 2;
}

int main(int argc, char **argv)
{
    enum { O_DIR = 256, O_CLIENTS, O_SNAME, O_NAME, O_EXPIRED, O_HELP };
    static const struct option opts[] = {
        { "dir", 1, 0, O_DIR }, { "clients", 1, 0, O_CLIENTS }, { "server-name", 1, 0, O_SNAME },
        { "name", 1, 0, O_NAME }, { "expired", 0, 0, O_EXPIRED }, { "help", 0, 0, O_HELP },
        CONFIG_OPTIONS, { 0, 0, 0, 0 },
    };
    const char *dir = NULL, *name = NULL, *cmd = NULL;
    const char *names[CERTS_MAX_NAMES];
    int nnames = 0, nclients = 0, expired = 0, opt;
    char err[SEFL_ERRLEN];

    if (config_begin("sefl-certs", certs_usage(), opts, &argc, &argv, err)) return certs_bad(err, NULL);
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const char *bad = NULL;
        switch (opt) {
        case 'h':
        case O_HELP: fputs(certs_usage(), stdout); return 0;
        case O_EXPIRED: expired = 1; break;
        case O_DIR: dir = optarg; break;
        case O_NAME:
            if (!certs_name_ok(optarg)) bad = "bad --name (want 1..64 of [A-Za-z0-9._-]):";
            name = optarg;
            break;
        case O_SNAME:
            if (!certs_host_ok(optarg)) bad = "bad --server-name (want a DNS name or IP):";
            else if (nnames >= CERTS_MAX_NAMES - 2) bad = "too many --server-name:";
            else names[nnames++] = optarg;
            break;
        case O_CLIENTS: {
            long n;
            if (cli_parse_long("--clients", optarg, 0, CERTS_MAX_CLIENTS, &n, err)) {
                config_where(err);
                return certs_bad(err, NULL);
            }
            nclients = (int)n;
            break;
        }
        default:
            if (config_option(opt, argv, err)) return certs_bad(err, NULL);
            break;
        }
        if (bad) {
            snprintf(err, sizeof err, "%s %s", bad, optarg);
            config_where(err);
            return certs_bad(err, NULL);
        }
    }
    if (optind < argc) cmd = argv[optind++];
    if (optind < argc) return certs_bad("unexpected argument", argv[optind]);
    if (!cmd) return certs_bad("missing command (init or issue)", NULL);
    int is_init = !strcmp(cmd, "init");
    if (!is_init && strcmp(cmd, "issue")) return certs_bad("unknown command", cmd);
    if (!dir || !*dir) return certs_bad("missing --dir", NULL);
    if (is_init && (name || expired)) return certs_bad("--name and --expired are for issue", NULL);
    if (!is_init && !name) return certs_bad("issue needs --name", NULL);
    if (!is_init && (nnames || nclients)) return certs_bad("--server-name and --clients are for init", NULL);
    config_end();

    certs s;
    int ret = certs_open(&s, dir, err);
    if (ret == 0) {
        if (is_init) {
            ret = certs_init(&s, nclients, names, nnames, err);
        } else {
            ret = certs_load_ca(&s, err);
            if (ret == 0) ret = certs_make_pair(&s, CERT_CLIENT, name, NULL, 0, expired, err);
            if (ret == 0)
                printf("sefl-certs: client certificate %s/clients/%s.crt%s\n", dir, name,
                       expired ? " (expired)" : "");
        }
    }
    certs_close(&s);
    if (ret < 0) {
        fprintf(stderr, "sefl-certs: %s\n", err);
        return 1;
    }
    return 0;
}
