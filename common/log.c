/* log: timestamped one-line log records on stderr; see log.h. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int log_level = -1;

static int log_level_from_env(void)
{
    const char *s = getenv("SEFL_LOG");
    if (!s) return LOG_INFO;
    if (!strcmp(s, "debug")) return LOG_DEBUG;
    if (!strcmp(s, "warn")) return LOG_WARN;
    if (!strcmp(s, "error")) return LOG_ERROR;
    return LOG_INFO;
}

void log_set_level(int level)
{
    log_level = level;
}

void log_msg(int level, const char *fmt, ...)
{
    static const char *names[] = { "DEBUG", "INFO", "WARN", "ERROR" };
    if (log_level < 0) log_level = log_level_from_env();
    if (level < log_level) return;

    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%SZ ", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, "%s ", names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* One fputs of a whole line keeps lines from several threads whole. */
    size_t len = strlen(line);
    if (len + 1 < sizeof line) { line[len] = '\n'; line[len + 1] = 0; }
    fputs(line, stderr);
}

void err_set(char *err, const char *fmt, ...)
{
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, SEFL_ERRLEN, fmt, ap);
    va_end(ap);
}
