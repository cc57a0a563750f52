/* check_fdlimit: the open-files raise every connection-holding program
 * shares (sefl-sim, sefl-server). Each test lowers the soft limit first, as
 * a shell's `ulimit -Sn` would, so that the raise has something to do. The
 * tests run in forked processes (Check's default), so the limits they set
 * end with them. */
#include "common/fdlimit.h"
#include "common/log.h"
#include "tests/check_main.h"

#include <check.h>
#include <errno.h>
#include <string.h>
#include <sys/resource.h>

/* Sets the soft limit to soft (at most the hard limit); returns the hard limit. */
static long set_soft(long soft)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && (rlim_t)soft > rl.rlim_max) soft = (long)rl.rlim_max;
    rl.rlim_cur = (rlim_t)soft;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    return rl.rlim_max == RLIM_INFINITY ? FDLIMIT_UNLIMITED : (long)rl.rlim_max;
}

START_TEST(test_raise_to_hard)
{
    long hard = set_soft(64);
    fdlimit_info fl;
    char err[SEFL_ERRLEN] = "";
    ck_assert_int_eq(fdlimit_raise(0, NULL, &fl, err), 0);
    ck_assert_int_eq(fl.was, hard < 64 ? hard : 64);
    ck_assert_int_eq(fl.now, hard);
    ck_assert_int_eq(fl.hard, hard);
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    ck_assert(rl.rlim_cur == rl.rlim_max);
    /* A need that fits passes. */
    ck_assert_int_eq(fdlimit_raise(32, "32 clients", &fl, err), 0);
}
END_TEST

START_TEST(test_need_over_hard)
{
    /* The hard limit may only be lowered, and only in this forked test. */
    struct rlimit rl = { 100, 100 };
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    fdlimit_info fl;
    char err[SEFL_ERRLEN] = "";
    ck_assert_int_eq(fdlimit_raise(5000, "5000 clients", &fl, err), -EMFILE);
    ck_assert_int_eq(fl.now, 100);
    ck_assert_msg(strstr(err, "5000 clients need about 5000 open files, but the hard limit is 100"),
                  "%s", err);
    ck_assert_msg(strstr(err, "--shard"), "%s", err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fdlimit");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_raise_to_hard);
    tcase_add_test(tc, test_need_over_hard);
    suite_add_tcase(s, tc);
    return check_run(s);
}
