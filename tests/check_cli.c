/* check_cli: the shared flag helpers that read the machine and the
 * environment: cores from the affinity mask and the cgroup CPU quota text,
 * and --shard auto from a Kubernetes Indexed Job's or a Slurm array's
 * variables. */
#include <check.h>
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/log.h"
#include "tests/check_main.h"

START_TEST(test_cpu_quota_text)
{
    ck_assert_int_eq(cli_cpu_quota("max 100000\n"), 0);
    ck_assert_int_eq(cli_cpu_quota("100000 100000\n"), 1);
    ck_assert_int_eq(cli_cpu_quota("150000 100000"), 2);      /* 1.5 CPUs: 2 threads */
    ck_assert_int_eq(cli_cpu_quota("50000 100000"), 1);
    ck_assert_int_eq(cli_cpu_quota("400000 100000"), 4);
    ck_assert_int_eq(cli_cpu_quota(""), 0);
    ck_assert_int_eq(cli_cpu_quota("lots 100000"), 0);
    ck_assert_int_eq(cli_cpu_quota("100000 0"), 0);
    ck_assert_int_eq(cli_cpu_quota("-1 100000"), 0);          /* v1's "no limit" */
}
END_TEST

/* The affinity mask bounds the count (Check runs each test in its own
 * process, so narrowing it here touches nothing else). */
START_TEST(test_cores_follow_affinity)
{
    int all = cli_cores();
    ck_assert_int_ge(all, 1);
    cpu_set_t set;
    ck_assert_int_eq(sched_getaffinity(0, sizeof set, &set), 0);
    int first = -1;
    for (int c = 0; c < CPU_SETSIZE && first < 0; c++)
        if (CPU_ISSET(c, &set)) first = c;
    CPU_ZERO(&set);
    CPU_SET(first, &set);
    ck_assert_int_eq(sched_setaffinity(0, sizeof set, &set), 0);
    ck_assert_int_eq(cli_cores(), 1);
}
END_TEST

static void clear_env(void)
{
    static const char *vars[] = { "JOB_COMPLETION_INDEX", "JOB_COMPLETIONS", "SLURM_ARRAY_TASK_ID",
                                  "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN" };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
}

START_TEST(test_shard_auto)
{
    char err[SEFL_ERRLEN] = "";
    long i = -1, n = -1;
    clear_env();
    ck_assert_int_eq(cli_shard_auto(&i, &n, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "JOB_COMPLETION_INDEX and JOB_COMPLETIONS"));

    setenv("JOB_COMPLETION_INDEX", "2", 1);
    ck_assert_int_eq(cli_shard_auto(&i, &n, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "not JOB_COMPLETIONS"));
    setenv("JOB_COMPLETIONS", "3", 1);
    ck_assert_int_eq(cli_shard_auto(&i, &n, err), 0);
    ck_assert_int_eq(i, 2);
    ck_assert_int_eq(n, 3);
    setenv("JOB_COMPLETIONS", "2", 1);
    ck_assert_int_eq(cli_shard_auto(&i, &n, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "index 2 is not below the count 2"));
    setenv("JOB_COMPLETIONS", "two", 1);
    ck_assert_int_eq(cli_shard_auto(&i, &n, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "JOB_COMPLETIONS must be an integer"));

    /* Slurm, numbered from 1 (--array=1-4) */
    clear_env();
    setenv("SLURM_ARRAY_TASK_ID", "4", 1);
    ck_assert_int_eq(cli_shard_auto(&i, &n, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "not SLURM_ARRAY_TASK_COUNT"));
    setenv("SLURM_ARRAY_TASK_COUNT", "4", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "1", 1);
    ck_assert_int_eq(cli_shard_auto(&i, &n, err), 0);
    ck_assert_int_eq(i, 3);
    ck_assert_int_eq(n, 4);
    unsetenv("SLURM_ARRAY_TASK_MIN");
    ck_assert_int_eq(cli_shard_auto(&i, &n, err), -EINVAL);
    clear_env();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_cpu_quota_text);
    tcase_add_test(tc, test_cores_follow_affinity);
    tcase_add_test(tc, test_shard_auto);
    suite_add_tcase(s, tc);
    return check_run(s);
}
