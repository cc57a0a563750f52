/* check_http: the monitoring endpoint (server/http.c) over real loopback
 * sockets, read with the status subcommand's client (status_cli_get):
 * 503 before the first snapshot, each document after it, /readyz
 * following the snapshot's ready flag, /healthz failing once the publisher
 * has been silent for longer than its stale limit and recovering, 404 and
 * 400, a taken port refused with its errno; and the HOST:PORT splitter. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/strbuf.h"
#include "server/http.h"
#include "server/status_cli.h"
#include "tests/check_main.h"

static http *h;
static char addr[64];

/* GETs path; returns the status code and leaves the body in *body (reset first). */
static int get(const char *path, strbuf *body)
{
    char err[SEFL_ERRLEN];
    int code = 0;
    strbuf_reset(body);
    ck_assert_msg(status_cli_get(addr, path, &code, body, err) == 0, "%s", err);
    return code;
}

static void start(double stale_s)
{
    char err[SEFL_ERRLEN];
    ck_assert_msg(http_start("127.0.0.1:0", stale_s, &h, err) == 0, "%s", err);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", http_port(h));
}

START_TEST(test_documents_and_probes)
{
    start(30);
    strbuf b = STRBUF_INIT;
    ck_assert_int_eq(get("/healthz", &b), 503);
    ck_assert_str_eq(b.p, "no snapshot yet\n");
    ck_assert_int_eq(get("/readyz", &b), 503);
    ck_assert_int_eq(get("/metrics", &b), 503);

    http_snapshot s = { "m_total 1\n", "{\"a\":1}\n", "phase x\n", 0 };
    ck_assert_int_eq(http_publish(h, &s), 0);
    ck_assert_int_eq(get("/metrics", &b), 200);
    ck_assert_str_eq(b.p, "m_total 1\n");
    ck_assert_int_eq(get("/status", &b), 200);
    ck_assert_str_eq(b.p, "{\"a\":1}\n");
    ck_assert_int_eq(get("/status?format=json", &b), 200);
    ck_assert_str_eq(b.p, "{\"a\":1}\n");
    ck_assert_int_eq(get("/status?format=table", &b), 200);
    ck_assert_str_eq(b.p, "phase x\n");
    ck_assert_int_eq(get("/status?format=xml", &b), 400);
    ck_assert_int_eq(get("/healthz", &b), 200);
    ck_assert_int_eq(get("/readyz", &b), 503);
    ck_assert_int_eq(get("/nope", &b), 404);
    ck_assert_int_eq(get("/metrics/", &b), 404);

    s.ready = 1;
    s.metrics = "m_total 2\n";
    ck_assert_int_eq(http_publish(h, &s), 0);
    ck_assert_int_eq(get("/readyz", &b), 200);
    ck_assert_str_eq(b.p, "ready\n");
    ck_assert_int_eq(get("/metrics", &b), 200);
    ck_assert_str_eq(b.p, "m_total 2\n");
    strbuf_free(&b);
    http_free(h);
    http_free(NULL);
}
END_TEST

/* /healthz is the liveness of the publisher: silent longer than the stale
 * limit, it fails; a publish brings it back. */
START_TEST(test_healthz_goes_stale)
{
    start(0.3);
    strbuf b = STRBUF_INIT;
    http_snapshot s = { "", "", "", 1 };
    ck_assert_int_eq(http_publish(h, &s), 0);
    ck_assert_int_eq(get("/healthz", &b), 200);
    nanosleep(&(struct timespec){ .tv_nsec = 500 * 1000 * 1000 }, NULL);
    ck_assert_int_eq(get("/healthz", &b), 503);
    ck_assert_ptr_nonnull(strstr(b.p, "stalled"));
    /* Ready or not is the snapshot's word, not the publisher's liveness. */
    ck_assert_int_eq(get("/readyz", &b), 200);
    ck_assert_int_eq(http_publish(h, &s), 0);
    ck_assert_int_eq(get("/healthz", &b), 200);
    strbuf_free(&b);
    http_free(h);
}
END_TEST

START_TEST(test_port_taken)
{
    start(30);
    http *second = NULL;
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(http_start(addr, 30, &second, err), -EADDRINUSE);
    ck_assert_ptr_null(second);
    ck_assert_ptr_nonnull(strstr(err, "Address already in use"));
    http_free(h);
}
END_TEST

START_TEST(test_split_addr)
{
    char host[HTTP_HOST_MAX + 1], port[6], err[SEFL_ERRLEN];
    ck_assert_int_eq(http_split_addr("127.0.0.1:9464", host, port, err), 0);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_str_eq(port, "9464");
    ck_assert_int_eq(http_split_addr("[::1]:0", host, port, err), 0);
    ck_assert_str_eq(host, "::1");
    ck_assert_str_eq(port, "0");
    ck_assert_int_eq(http_split_addr(":80", host, port, err), 0);
    ck_assert_str_eq(host, "");
    static const char *const bad[] = { "x", "h:", "h:70000", "h:12a", "h:-1", "h:000080" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(http_split_addr(bad[i], host, port, err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "--http"));
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_documents_and_probes);
    tcase_add_test(tc, test_healthz_goes_stale);
    tcase_add_test(tc, test_port_taken);
    tcase_add_test(tc, test_split_addr);
    suite_add_tcase(s, tc);
    return check_run(s);
}
