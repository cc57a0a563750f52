/* check_netstats: handshake failures counted by reason, the log's rate
 * limit (every failure counted, at most NETSTATS_LOG_BURST lines per
 * window), the reason classes, the byte counters, and the limiter's
 * windows (common/ratelimit). */
#include <check.h>
#include <errno.h>
#include <time.h>
#include <uv.h>

#include <mbedtls/ssl.h>
#include <mbedtls/x509.h>

#include "common/net/netstats.h"
#include "common/ratelimit.h"
#include "tests/check_main.h"

START_TEST(test_classes)
{
    ck_assert_int_eq(netstats_hs_class(UV_ETIMEDOUT), NETSTATS_HS_TIMEOUT);
    ck_assert_int_eq(netstats_hs_class(UV_EOF), NETSTATS_HS_CLOSED);
    ck_assert_int_eq(netstats_hs_class(UV_ECONNRESET), NETSTATS_HS_NETWORK);
    ck_assert_int_eq(netstats_hs_class(-EACCES), NETSTATS_HS_CERTIFICATE);
    ck_assert_int_eq(netstats_hs_class(MBEDTLS_ERR_X509_CERT_VERIFY_FAILED), NETSTATS_HS_CERTIFICATE);
    ck_assert_int_eq(netstats_hs_class(MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE), NETSTATS_HS_CERTIFICATE);
    ck_assert_int_eq(netstats_hs_class(MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE), NETSTATS_HS_PEER_ALERT);
    ck_assert_int_eq(netstats_hs_class(MBEDTLS_ERR_SSL_BAD_HS_CLIENT_HELLO), NETSTATS_HS_PROTOCOL);
    ck_assert_str_eq(netstats_hs_reason[NETSTATS_HS_PEER_ALERT], "peer_alert");
}
END_TEST

/* Check runs each test in its own process, so the counters start at 0. */
START_TEST(test_rate_limit_counts_everything)
{
    enum { N = NETSTATS_LOG_BURST + 15 };
    for (int i = 0; i < N; i++) netstats_handshake_failed("192.0.2.1:5", UV_ETIMEDOUT, "handshake timeout");
    netstats_handshake_failed("192.0.2.1:6", UV_EOF, "closed");
    netstats s;
    netstats_get(&s);
    ck_assert_uint_eq(s.hs_failed[NETSTATS_HS_TIMEOUT], N);
    ck_assert_uint_eq(s.hs_failed[NETSTATS_HS_CLOSED], 1);
    ck_assert_uint_eq(s.hs_failed[NETSTATS_HS_CERTIFICATE], 0);
    /* Within one window only the first BURST lines are written. */
    ck_assert_uint_eq(s.hs_log_suppressed, N + 1 - NETSTATS_LOG_BURST);
}
END_TEST

START_TEST(test_bytes)
{
    netstats_add_sent(10);
    netstats_add_sent(5);
    netstats_add_received(7);
    netstats s;
    netstats_get(&s);
    ck_assert_uint_eq(s.bytes_sent, 15);
    ck_assert_uint_eq(s.bytes_received, 7);
}
END_TEST

/* A new window reports what the previous one dropped, once. */
START_TEST(test_ratelimit_windows)
{
    ratelimit r = RATELIMIT_INIT(2, 0.05);
    uint64_t d;
    ck_assert_int_eq(ratelimit_allow(&r, &d), 1);
    ck_assert_uint_eq(d, 0);
    ck_assert_int_eq(ratelimit_allow(&r, &d), 1);
    ck_assert_int_eq(ratelimit_allow(&r, &d), 0);
    ck_assert_int_eq(ratelimit_allow(&r, &d), 0);
    ck_assert_uint_eq(d, 0);
    nanosleep(&(struct timespec){ .tv_nsec = 60 * 1000 * 1000 }, NULL);
    ck_assert_int_eq(ratelimit_allow(&r, &d), 1);
    ck_assert_uint_eq(d, 2);
    ck_assert_int_eq(ratelimit_allow(&r, &d), 1);
    ck_assert_uint_eq(d, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("netstats");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_classes);
    tcase_add_test(tc, test_rate_limit_counts_everything);
    tcase_add_test(tc, test_bytes);
    tcase_add_test(tc, test_ratelimit_windows);
    suite_add_tcase(s, tc);
    return check_run(s);
}
