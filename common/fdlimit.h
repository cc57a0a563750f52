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

/* Raises RLIMIT_NOFILE's soft limit to its hard limit and checks that
 * `need` descriptors fit. what names the need in the message, e.g.
 * "20000 clients". Returns 0 and *have (the soft limit now), or -EMFILE
 * with err when need is over the hard limit (the soft limit is raised
 * anyway), or -errno when the limit cannot be read or set. */
int fdlimit_raise(long need, const char *what, long *have, char *err);

#endif
