/* check_gate: admission before the TLS handshake: connections in the
 * handshake per address, the per-address handshake rate, the descriptor
 * budget, IPv6 /64 grouping, and slots reused once an address is quiet. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <string.h>

#include "common/log.h"
#include "common/net/gate.h"
#include "tests/check_main.h"

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static struct sockaddr_in6 v6(const char *ip)
{
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &a.sin6_addr);
    return a;
}

static int admit(gate *g, const void *sa, uint64_t now, int *slot)
{
    int ok;
    *slot = gate_admit(g, (const struct sockaddr *)sa, "test", now, &ok);
    return ok;
}

START_TEST(test_per_addr)
{
    conn_preauth p = { .max_per_addr = 3, .per_sec = 0, .burst = 1, .max_open = 0 };
    gate *g = gate_new(&p);
    ck_assert_ptr_nonnull(g);
    struct sockaddr_in a = v4("10.0.0.1"), b = v4("10.0.0.2");
    int s[5];
    for (int i = 0; i < 3; i++) ck_assert_int_eq(admit(g, &a, 0, &s[i]), 1);
    ck_assert_int_eq(admit(g, &a, 0, &s[3]), 0);     /* a fourth in the handshake */
    ck_assert_int_eq(admit(g, &b, 0, &s[4]), 1);     /* another address is not held back */
    gate_opened(g, s[0]);                             /* one finished its handshake */
    ck_assert_int_eq(admit(g, &a, 0, &s[3]), 1);
    gate_closed(g, s[1], 1);                          /* one gave up in the handshake */
    ck_assert_int_eq(admit(g, &a, 0, &s[1]), 1);
    ck_assert_int_eq(admit(g, &a, 0, &s[1]), 0);
    gate_stats st;
    gate_get_stats(g, &st);
    ck_assert_int_eq(st.refused_addr, 2);
    ck_assert_int_eq(st.open, 5);
    gate_unref(g);
}
END_TEST

START_TEST(test_rate)
{
    conn_preauth p = { .max_per_addr = 0, .per_sec = 10, .burst = 4, .max_open = 0 };
    gate *g = gate_new(&p);
    struct sockaddr_in a = v4("10.0.0.1");
    int s;
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(admit(g, &a, 1000, &s), 1);
        gate_opened(g, s);
    }
    ck_assert_int_eq(admit(g, &a, 1000, &s), 0);      /* burst used up */
    ck_assert_int_eq(admit(g, &a, 1050, &s), 0);      /* half a token back */
    ck_assert_int_eq(admit(g, &a, 1100, &s), 1);      /* one token after 100 ms */
    ck_assert_int_eq(admit(g, &a, 1100, &s), 0);
    ck_assert_int_eq(admit(g, &a, 60000, &s), 1);     /* refilled, capped at the burst */
    gate_stats st;
    gate_get_stats(g, &st);
    ck_assert_int_eq(st.refused_rate, 3);
    gate_unref(g);
}
END_TEST

START_TEST(test_budget_and_v6)
{
    conn_preauth p = { .max_per_addr = 2, .per_sec = 0, .burst = 1, .max_open = 3 };
    gate *g = gate_new(&p);
    /* Two addresses of one /64 count as one host; another /64 does not. */
    struct sockaddr_in6 a = v6("2001:db8:1:2::1"), b = v6("2001:db8:1:2::ffff"),
                        c = v6("2001:db8:1:3::1");
    int s[4];
    ck_assert_int_eq(admit(g, &a, 0, &s[0]), 1);
    ck_assert_int_eq(admit(g, &b, 0, &s[1]), 1);
    ck_assert_int_eq(admit(g, &a, 0, &s[2]), 0);
    ck_assert_int_eq(admit(g, &c, 0, &s[2]), 1);
    /* Three open: the budget refuses whoever comes next, until one closes. */
    struct sockaddr_in d = v4("192.0.2.9");
    ck_assert_int_eq(admit(g, &d, 0, &s[3]), 0);
    gate_closed(g, s[0], 1);
    ck_assert_int_eq(admit(g, &d, 0, &s[3]), 1);
    gate_out_of_fds(g, "too many open files", 0);
    gate_stats st;
    gate_get_stats(g, &st);
    ck_assert_int_eq(st.refused_open, 1);
    ck_assert_int_eq(st.out_of_fds, 1);
    ck_assert_int_eq(st.open, 3);
    /* Connections hold references: the gate outlives its first owner. */
    gate_ref(g);
    gate_unref(g);
    gate_closed(g, s[1], 1);
    gate_unref(g);
}
END_TEST

START_TEST(test_slots_reused)
{
    conn_preauth p = { .max_per_addr = 1, .per_sec = 1000, .burst = 1, .max_open = 0 };
    gate *g = gate_new(&p);
    /* More addresses than slots over time: quiet ones (nothing pending, a
     * full bucket) give their slot up, so none is admitted untracked. */
    for (int i = 0; i < GATE_SLOTS * 2; i++) {
        struct sockaddr_in a = v4("10.0.0.0");
        a.sin_addr.s_addr = htonl(0x0a000000u + (uint32_t)i);
        int s;
        ck_assert_int_eq(admit(g, &a, (uint64_t)i * 10, &s), 1);
        ck_assert_int_ge(s, 0);
        gate_opened(g, s);
        gate_closed(g, s, 0);
    }
    gate_stats st;
    gate_get_stats(g, &st);
    ck_assert_int_eq(st.untracked, 0);
    ck_assert_int_eq(st.open, 0);
    gate_unref(g);
}
END_TEST

int main(void)
{
    log_set_level(LOG_ERROR);
    Suite *s = suite_create("gate");
    TCase *tc = tcase_create("gate");
    tcase_add_test(tc, test_per_addr);
    tcase_add_test(tc, test_rate);
    tcase_add_test(tc, test_budget_and_v6);
    tcase_add_test(tc, test_slots_reused);
    suite_add_tcase(s, tc);
    return check_run(s);
}
