/* procstat: process figures from /proc; see procstat.h. */
#include "server/procstat.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"

/* btime: the boot time in seconds since the epoch, from /proc/stat. */
static int procstat_boot_time(double *out, char *err)
{
    FILE *f = fopen("/proc/stat", "r");
    if (!f) {
        err_set(err, "cannot open /proc/stat: %s", strerror(errno));
        return -errno;
    }
    char line[256];
    int ret = -EBADMSG;
    unsigned long long bt;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "btime %llu", &bt) == 1) {
            *out = (double)bt;
            ret = 0;
            break;
        }
    fclose(f);
    if (ret) err_set(err, "no btime in /proc/stat");
    return ret;
}

static int procstat_count_fds(double *out, char *err)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        err_set(err, "cannot open /proc/self/fd: %s", strerror(errno));
        return -errno;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    /* The directory stream itself was one of them. */
    *out = n - 1;
    return 0;
}

int procstat_read(procstat *out, char *err)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (!f) {
        err_set(err, "cannot open /proc/self/stat: %s", strerror(errno));
        return -errno;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* The command name (field 2) is in parentheses and may hold spaces:
     * the fields after it start after the last ')'. */
    char *p = strrchr(buf, ')');
    unsigned long long utime, stime, start, vsize;
    long long rss;
    if (!p || sscanf(p + 2,
                     "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d "
                     "%*d %*d %llu %llu %lld",
                     &utime, &stime, &start, &vsize, &rss) != 5) {
        err_set(err, "cannot parse /proc/self/stat");
        return -EBADMSG;
    }
    double hz = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);
    double boot = 0;
    int ret = procstat_boot_time(&boot, err);
    if (ret) return ret;
    if ((ret = procstat_count_fds(&out->open_fds, err))) return ret;
    struct rlimit rl;
    out->max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                       ? (double)rl.rlim_cur : -1;
    out->cpu_seconds = (double)(utime + stime) / hz;
    out->start_time = boot + (double)start / hz;
    out->virtual_bytes = (double)vsize;
    out->resident_bytes = (double)rss * page;
    return 0;
}
