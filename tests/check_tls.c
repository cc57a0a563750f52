/* check_tls: the TLS configuration module (common/tls.c) without a network:
 * loading a project made by build/bin/sefl-certs, the errors a user sees for
 * missing or mismatched files and bad names, the suites offered, and the
 * text of mbedTLS errors. Handshakes themselves are tested in check_conn.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ssl.h>

#include "common/log.h"
#include "common/net/tls.h"
#include "tests/check_main.h"

static char dir[64];
static char certs[128];

static void paths(const char *name, char *ca, char *crt, char *key)
{
    snprintf(ca, 256, "%s/ca.crt", certs);
    snprintf(crt, 256, "%s/clients/%s.crt", certs, name);
    snprintf(key, 256, "%s/clients/%s.key", certs, name);
}

START_TEST(test_load_project)
{
    char err[SEFL_ERRLEN];
    tls_ctx *s = NULL, *c = NULL, *ip = NULL;
    ck_assert_msg(tls_ctx_new_server(&s, certs, err) == 0, "%s", err);
    ck_assert_msg(tls_ctx_new_client(&c, certs, "client-0000", "localhost", err) == 0, "%s", err);
    ck_assert_msg(tls_ctx_new_client(&ip, certs, "client-0000", "::1", err) == 0, "%s", err);
    /* Each context makes sessions. */
    mbedtls_ssl_context ssl;
    mbedtls_ssl_init(&ssl);
    ck_assert_int_eq(tls_ssl_setup(c, &ssl), 0);
    char cn[65];
    ck_assert_int_eq(tls_peer_cn(&ssl, cn, sizeof cn), -ENOENT);   /* no peer yet */
    ck_assert_str_eq(cn, "");
    mbedtls_ssl_free(&ssl);
    tls_ctx_free(s);
    tls_ctx_free(c);
    tls_ctx_free(ip);
}
END_TEST

START_TEST(test_missing_files)
{
    char err[SEFL_ERRLEN], ca[256], crt[256], key[256];
    tls_ctx *t = (tls_ctx *)1;
    ck_assert_int_lt(tls_ctx_new_server(&t, "/nonexistent", err), 0);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(err, "/nonexistent/ca.crt") && strstr(err, "sefl-certs init"), "%s", err);
    ck_assert_int_lt(tls_ctx_new_client(&t, certs, "nobody", "localhost", err), 0);
    ck_assert_msg(strstr(err, "clients/nobody.crt"), "%s", err);
    /* A key that is not the certificate's. */
    paths("client-0000", ca, crt, key);
    snprintf(key, sizeof key, "%s/server.key", certs);
    ck_assert_int_lt(tls_ctx_new_client_files(&t, ca, crt, key, "localhost", err), 0);
    ck_assert_msg(strstr(err, "does not belong to certificate"), "%s", err);
    /* A file that is not a certificate. */
    ck_assert_int_lt(tls_ctx_new_client_files(&t, key, NULL, NULL, "localhost", err), 0);
    ck_assert_msg(strstr(err, "cannot load CA certificate"), "%s", err);
}
END_TEST

START_TEST(test_server_name_limits)
{
    char err[SEFL_ERRLEN], ca[256], crt[256], key[256], name[300];
    tls_ctx *t;
    paths("client-0000", ca, crt, key);
    ck_assert_int_eq(tls_ctx_new_client_files(&t, ca, crt, key, "", err), -EINVAL);
    memset(name, 'a', 256);
    name[256] = 0;
    ck_assert_int_eq(tls_ctx_new_client_files(&t, ca, crt, key, name, err), -EINVAL);
    ck_assert_msg(strstr(err, "1 to 255"), "%s", err);
    name[255] = 0;   /* 255 is the limit, and fits */
    ck_assert_msg(tls_ctx_new_client_files(&t, ca, crt, key, name, err) == 0, "%s", err);
    tls_ctx_free(t);
    /* A certificate without its key, or a key alone, is refused. */
    ck_assert_int_eq(tls_ctx_new_client_files(&t, ca, crt, NULL, "localhost", err), -EINVAL);
    ck_assert_int_eq(tls_ctx_new_client_files(&t, ca, NULL, key, "localhost", err), -EINVAL);
    /* Without a certificate is allowed (tests; the server refuses it). */
    ck_assert_msg(tls_ctx_new_client_files(&t, ca, NULL, NULL, "localhost", err) == 0, "%s", err);
    tls_ctx_free(t);
    tls_ctx_free(NULL);
}
END_TEST

START_TEST(test_shared_context)
{
    /* A shared context (CA and RNG) serves no connection of its own, and
     * only a shared context can be shared; a missing CA is the usual line. */
    char err[SEFL_ERRLEN];
    tls_ctx *sh, *c, *t = (tls_ctx *)1;
    ck_assert_msg(tls_ctx_new_shared(&sh, certs, err) == 0, "%s", err);
    mbedtls_ssl_context ssl;
    mbedtls_ssl_init(&ssl);
    ck_assert_int_ne(tls_ssl_setup(sh, &ssl), 0);
    mbedtls_ssl_free(&ssl);
    ck_assert_msg(tls_ctx_new_client_shared(&c, sh, certs, "client-0000", "localhost", err) == 0,
                  "%s", err);
    ck_assert_int_eq(tls_ctx_new_client_shared(&t, c, certs, "client-0000", "localhost", err), -EINVAL);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(err, "tls_ctx_new_shared"), "%s", err);
    /* The identity's own files are still checked. */
    ck_assert_int_lt(tls_ctx_new_client_shared(&t, sh, certs, "nobody", "localhost", err), 0);
    ck_assert_msg(strstr(err, "clients/nobody.crt"), "%s", err);
    ck_assert_int_lt(tls_ctx_new_shared(&t, "/nonexistent", err), 0);
    ck_assert_msg(strstr(err, "/nonexistent/ca.crt"), "%s", err);
    tls_ctx_free(c);
    tls_ctx_free(sh);
}
END_TEST

START_TEST(test_suites_offered)
{
    const char *s = tls_suites_offered();
    ck_assert_msg(strstr(s, "TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256") == s, "%s", s);
    ck_assert_ptr_nonnull(strstr(s, "TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256"));
    ck_assert_ptr_nonnull(strstr(s, "TLS-ECDHE-ECDSA-WITH-AES-256-GCM-SHA384"));
    ck_assert_ptr_null(strstr(s, "CBC"));
    ck_assert_ptr_null(strstr(s, "RSA"));
    ck_assert_ptr_eq(tls_suites_offered(), s);   /* made once */
}
END_TEST

START_TEST(test_error_text)
{
    mbedtls_ssl_context ssl;
    mbedtls_ssl_init(&ssl);
    char out[SEFL_ERRLEN];
    tls_error_text(&ssl, MBEDTLS_ERR_SSL_NO_CIPHER_CHOSEN, out, sizeof out);
    ck_assert_msg(strstr(out, "(-0x7380)") && !strchr(out, '\n'), "%s", out);
    tls_error_text(&ssl, MBEDTLS_ERR_X509_CERT_VERIFY_FAILED, out, sizeof out);
    ck_assert_msg(!strchr(out, '\n'), "%s", out);
    mbedtls_ssl_free(&ssl);
}
END_TEST

int main(void)
{
    check_mkdtemp(dir, sizeof dir, "/tmp/check_tls.XXXXXX");
    snprintf(certs, sizeof certs, "%s/project", dir);
    check_certs("init --dir %s --clients 1", certs);
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_load_project);
    tcase_add_test(tc, test_missing_files);
    tcase_add_test(tc, test_server_name_limits);
    tcase_add_test(tc, test_shared_context);
    tcase_add_test(tc, test_suites_offered);
    tcase_add_test(tc, test_error_text);
    suite_add_tcase(s, tc);
    int status = check_run(s);
    if (check_rm_rf(dir) != 0) return 1;
    return status;
}
