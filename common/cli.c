/* cli: flag parsing and usage errors shared by every sefl program; see cli.h. */
#include "common/cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

int cli_parse_long(const char *flag, const char *s, long min, long max, long *out, char *err)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        err_set(err, "%s must be an integer in %ld..%ld, got '%s'", flag, min, max, s);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

int cli_parse_u64(const char *flag, const char *s, uint64_t *out, char *err)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') {
        err_set(err, "%s must be a non-negative integer, got '%s'", flag, s);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *flag, const char *s, double min, double max, double *out, char *err)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < min || v > max) {
        err_set(err, "%s must be a number in [%g, %g], got '%s'", flag, min, max, s);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

int cli_bad_option(char *const argv[], char *err)
{
    err_set(err, "unknown or incomplete option '%s'", argv[optind - 1]);
    return -EINVAL;
}

int cli_no_operands(int argc, char *const argv[], char *err)
{
    if (optind >= argc) return 0;
    err_set(err, "unexpected argument '%s'", argv[optind]);
    return -EINVAL;
}

int cli_usage_error(const char *prog, const char *msg)
{
    fprintf(stderr, "%s: %s (see --help)\n", prog, msg);
    return 2;
}

int cli_cpu_quota(const char *cpu_max)
{
    char quota[32];
    long long period = 0;
    if (sscanf(cpu_max, "%31s %lld", quota, &period) != 2 || period <= 0) return 0;
    if (!strcmp(quota, "max")) return 0;
    char *end;
    errno = 0;
    long long q = strtoll(quota, &end, 10);
    if (errno || *end || q <= 0) return 0;
    long long cores = (q + period - 1) / period;
    return cores > 4096 ? 4096 : (int)cores;
}

/* The first line of path into buf, or -1. */
static int cli_read_line(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *s = fgets(buf, (int)n, f);
    fclose(f);
    return s ? 0 : -1;
}

/* The CPU quota of the cgroup this process is in (0: none found). Looks at
 * the cgroup namespace's root, which is the container's own cgroup under
 * Docker and Kubernetes, and systemd's unit cgroup through /proc/self/cgroup. */
static int cli_cgroup_quota(void)
{
    char buf[256], path[512];
    int q = 0;
    /* cgroup v2: "0::/system.slice/x.service" names our cgroup. */
    if (cli_read_line("/proc/self/cgroup", buf, sizeof buf) == 0 && !strncmp(buf, "0::", 3)) {
        buf[strcspn(buf, "\n")] = 0;
        snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", buf + 3);
        if (cli_read_line(path, buf, sizeof buf) == 0) q = cli_cpu_quota(buf);
    }
    if (!q && cli_read_line("/sys/fs/cgroup/cpu.max", buf, sizeof buf) == 0) q = cli_cpu_quota(buf);
    if (!q) {
        char period[64];
        if (cli_read_line("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", buf, sizeof buf) == 0 &&
            cli_read_line("/sys/fs/cgroup/cpu/cpu.cfs_period_us", period, sizeof period) == 0) {
            char v2[sizeof buf + sizeof period + 2];
            buf[strcspn(buf, "\n")] = 0;
            snprintf(v2, sizeof v2, "%s %s", buf, period);
            if (strtol(buf, NULL, 10) > 0) q = cli_cpu_quota(v2);
        }
    }
    return q;
}

int cli_cores(void)
{
    cpu_set_t set;
    long n = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
    int q = cli_cgroup_quota();
    if (q > 0 && q < n) n = q;
    return n > 0 ? (int)n : 1;
}

/* An environment variable as an integer in [min, max]; 0, -ENOENT when
 * unset, or -EINVAL with err. */
static int cli_env_long(const char *name, long min, long max, long *out, char *err)
{
    const char *s = getenv(name);
    if (!s || !*s) return -ENOENT;
    return cli_parse_long(name, s, min, max, out, err);
}

int cli_shard_auto(long *i, long *n, char *err)
{
    long idx, count, lo = 0;
    int rc = cli_env_long("JOB_COMPLETION_INDEX", 0, LONG_MAX - 1, &idx, err);
    if (rc == 0) {
        if ((rc = cli_env_long("JOB_COMPLETIONS", 1, LONG_MAX, &count, err)) == -ENOENT)
            err_set(err, "--shard auto: JOB_COMPLETION_INDEX is set but not JOB_COMPLETIONS "
                    "(set it to the Job's completions)");
    } else if (rc == -ENOENT) {
        if ((rc = cli_env_long("SLURM_ARRAY_TASK_ID", 0, LONG_MAX - 1, &idx, err)) == -ENOENT) {
            err_set(err, "--shard auto needs JOB_COMPLETION_INDEX and JOB_COMPLETIONS (Kubernetes "
                    "Indexed Job) or SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT (Slurm array)");
            return -EINVAL;
        }
        if (!rc && (rc = cli_env_long("SLURM_ARRAY_TASK_COUNT", 1, LONG_MAX, &count, err)) == -ENOENT)
            err_set(err, "--shard auto: SLURM_ARRAY_TASK_ID is set but not SLURM_ARRAY_TASK_COUNT");
        /* An array --array=1-4 numbers its tasks from 1. */
        if (!rc && cli_env_long("SLURM_ARRAY_TASK_MIN", 0, idx, &lo, err) == -EINVAL) rc = -EINVAL;
        idx -= lo;
    }
    if (rc) return -EINVAL;
    if (idx >= count) {
        err_set(err, "--shard auto: index %ld is not below the count %ld", idx, count);
        return -EINVAL;
    }
    *i = idx;
    *n = count;
    return 0;
}
