/* fdlimit: raise the open-files limit and check a need against it; see
 * fdlimit.h. */
#include "common/fdlimit.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "common/log.h"

static long fdlimit_long(rlim_t v)
{
    return v == RLIM_INFINITY || v > (rlim_t)FDLIMIT_UNLIMITED ? FDLIMIT_UNLIMITED : (long)v;
}

int fdlimit_raise(long need, const char *what, fdlimit_info *out, char *err)
{
    struct rlimit rl;
    memset(out, 0, sizeof *out);
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        int e = errno;
        err_set(err, "cannot read the open-files limit: %s", strerror(e));
        return -e;
    }
    out->was = out->now = fdlimit_long(rl.rlim_cur);
    out->hard = fdlimit_long(rl.rlim_max);
    if (rl.rlim_cur != rl.rlim_max) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            int e = errno;
            err_set(err, "cannot raise the open-files limit from %llu to %llu: %s",
                    (unsigned long long)old, (unsigned long long)rl.rlim_max, strerror(e));
            return -e;
        }
        out->now = out->hard;
    }
    if (need > out->now) {
        err_set(err, "%s need about %ld open files, but the hard limit is %ld (ulimit -Hn): "
                "split them over several processes (sefl-sim --shard I/N) or raise the limit",
                what, need, out->now);
        return -EMFILE;
    }
    return 0;
}
