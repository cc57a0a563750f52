/* fdlimit: the open-files limit of a process that holds one connection per
 * client (sefl-sim with thousands of simulated clients, the coordinator).
 *
 * The soft limit (often 1024) is raised to the hard limit, which any
 * process may do, so a large run needs no `ulimit -n` first; and a run that
 * cannot fit under the hard limit is refused before it starts, with one
 * line saying how many files it needs and what the limit is, instead of
 * failing connection by connection later.
 */
#ifndef SEFL_FDLIMIT_H
#define SEFL_FDLIMIT_H

/* The limits around a raise; an unlimited limit reads FDLIMIT_UNLIMITED. */
typedef struct {
    long was;                   /* soft limit before the raise */
    long now;                   /* soft limit after it */
    long hard;                  /* hard limit */
} fdlimit_info;

#define FDLIMIT_UNLIMITED 0x7fffffffL

/* Raises RLIMIT_NOFILE's soft limit to its hard limit and checks that
 * `need` descriptors fit (need <= 0: no check; what is then unused). what
 * names the need in the message, e.g. "20000 clients". Returns 0 with *out
 * filled, -EMFILE with err when need is over the hard limit (the soft limit
 * is raised anyway, *out filled), -errno with err when the limit cannot be
 * set (*out then holds the limits unchanged), or -errno with err when it
 * cannot be read (*out zeroed). */
int fdlimit_raise(long need, const char *what, fdlimit_info *out, char *err);

#endif
