/* fdlimit: raise the open-files limit and check a need against it; see
 * fdlimit.h. */
#include "common/fdlimit.h"

#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "common/log.h"

int fdlimit_raise(long need, const char *what, long *have, char *err)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        err_set(err, "cannot read the open-files limit: %s", strerror(errno));
        return -errno;
    }
    if (rl.rlim_cur != rl.rlim_max) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            err_set(err, "cannot raise the open-files limit from %llu to %llu: %s",
                    (unsigned long long)old, (unsigned long long)rl.rlim_max, strerror(errno));
            return -errno;
        }
    }
    *have = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)0x7fffffff
                ? 0x7fffffff : (long)rl.rlim_cur;
    if (need > *have) {
        err_set(err, "%s need about %ld open files, but the hard limit is %ld (ulimit -Hn): "
                "split them over several processes (sefl-sim --shard I/N) or raise the limit",
                what, need, *have);
        return -EMFILE;
    }
    return 0;
}
