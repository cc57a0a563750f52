/* cli: what every sefl program shares around its flags: parsing of numeric
 * flags and the usage-error lines, one clear line each.
 */
#ifndef SEFL_CLI_H
#define SEFL_CLI_H

#include <stdint.h>

/* Parses s as an integer in [min, max] for flag (named in err). Returns 0
 * or -EINVAL with err. */
int cli_parse_long(const char *flag, const char *s, long min, long max, long *out, char *err);
int cli_parse_u64(const char *flag, const char *s, uint64_t *out, char *err);
/* A finite number in [min, max]. */
int cli_parse_double(const char *flag, const char *s, double min, double max, double *out, char *err);

/* The error of a getopt_long loop run with opterr = 0, for the option it
 * just refused (argv[optind - 1]): unknown, or missing its value. Returns
 * -EINVAL with err. */
int cli_bad_option(char *const argv[], char *err);

/* After a getopt_long loop: the sefl programs take no operands, so one left
 * at argv[optind] is an error. Returns 0, or -EINVAL with err. */
int cli_no_operands(int argc, char *const argv[], char *err);

/* Prints the one-line usage error "PROG: MSG (see --help)" to stderr.
 * Returns 2, the exit status of a usage error. */
int cli_usage_error(const char *prog, const char *msg);

/* The cores this process may use (at least 1): the CPUs of its affinity
 * mask (taskset, cpusets, Slurm's binding), lowered to the CPU quota of its
 * cgroup rounded up (Kubernetes and systemd CPU limits: cgroup v2 cpu.max,
 * or v1 cpu.cfs_quota_us / cpu.cfs_period_us), not the host's core count. */
int cli_cores(void);

/* The cores a cgroup CPU quota allows, ceil(quota / period), from the text
 * of cgroup v2's cpu.max ("QUOTA PERIOD" or "max PERIOD"); 0 when there is
 * no limit or the text is not that. */
int cli_cpu_quota(const char *cpu_max);

/* --shard auto: the slice I of N this process runs, from the environment of
 * a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, and JOB_COMPLETIONS, which
 * the manifest sets to the Job's completions) or of a Slurm job array
 * (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT).
 * Returns 0, or -EINVAL with err when neither is set or a value is bad. */
int cli_shard_auto(long *i, long *n, char *err);

#endif
