/* cli: flag parsing and usage errors shared by every sefl program; see cli.h. */
#include "common/cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
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

int cli_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
