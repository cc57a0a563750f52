/* procstat: this process's figures from /proc, as Prometheus' standard
 * process_* metrics define them (the client libraries' "process collector"):
 * CPU seconds (user + system), resident and virtual memory, open and
 * maximum file descriptors, start time in seconds since the Unix epoch.
 *
 * Linux only (/proc/self/stat, /proc/self/fd, /proc/stat's btime). Reading
 * costs a few system calls plus one per open descriptor.
 */
#ifndef SEFL_PROCSTAT_H
#define SEFL_PROCSTAT_H

typedef struct {
    double cpu_seconds;          /* utime + stime */
    double resident_bytes;
    double virtual_bytes;
    double open_fds;
    double max_fds;              /* RLIMIT_NOFILE soft limit; -1 for unlimited */
    double start_time;           /* seconds since the epoch */
} procstat;

/* Fills *out. Returns 0, or a negative errno (with err) when /proc cannot
 * be read or parsed. */
int procstat_read(procstat *out, char *err);

#endif
