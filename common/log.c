/* log: timestamped one-line log records on stderr; see log.h. */
#include "common/log.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static int log_level = LOG_INFO;
static int log_format = LOG_TEXT;
static const char *log_prog = "sefl";
/* A progress line is on the terminal: the next record clears it. Records
 * come from the loop and the training threads, hence the lock. */
static int log_progress_shown;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const log_names[] = { "debug", "info", "warn", "error" };

int log_init_env(char *err)
{
    const char *s = getenv("SEFL_LOG");
    if (!s) return 0;
    for (int i = LOG_DEBUG; i <= LOG_ERROR; i++)
        if (!strcasecmp(s, log_names[i])) {
            log_level = i;
            return 0;
        }
    err_set(err, "SEFL_LOG must be debug, info, warn or error, got '%s'", s);
    return -EINVAL;
}

void log_set_level(int level)
{
    log_level = level;
}

int log_set_format(const char *name, char *err)
{
    if (!strcmp(name, "text")) log_format = LOG_TEXT;
    else if (!strcmp(name, "json")) log_format = LOG_JSON;
    else {
        err_set(err, "--log-format must be text or json, got '%s'", name);
        return -EINVAL;
    }
    return 0;
}

void log_set_prog(const char *prog)
{
    log_prog = prog;
}

/* Appends s to buf (at n of size) as the body of a JSON string; returns the
 * new length, at most size - 1 (a record too long is cut, still valid). */
static size_t log_json_text(char *buf, size_t n, size_t size, const char *s)
{
    for (; *s && n + 7 < size; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(buf + n, size - n, "\\u%04x", c);
        } else {
            buf[n++] = (char)c;
        }
    }
    buf[n] = 0;
    return n;
}

/* Appends the fields to a JSON record being built in buf (at n of size);
 * returns the new length. */
static size_t log_json_fields(char *buf, size_t n, size_t size, const log_field *f, int nf)
{
    for (int k = 0; k < nf && n + 8 < size; k++) {
        buf[n++] = ',';
        buf[n++] = '"';
        n = log_json_text(buf, n, size - 4, f[k].key);
        buf[n++] = '"';
        buf[n++] = ':';
        int w = 0;
        if (f[k].type == LOG_F_STR) {
            buf[n++] = '"';
            n = log_json_text(buf, n, size - 2, f[k].s ? f[k].s : "");
            buf[n++] = '"';
        } else if (f[k].type == LOG_F_INT) {
            w = snprintf(buf + n, size - n, "%lld", f[k].i);
        } else if (isfinite(f[k].d)) {
            w = snprintf(buf + n, size - n, "%.6g", f[k].d);
        } else {
            w = snprintf(buf + n, size - n, "null");
        }
        n += w > 0 ? (size_t)w : 0;
        if (n >= size) n = size - 1;
        buf[n] = 0;
    }
    return n;
}

static void log_vrecord(int level, const log_field *f, int nf, const char *fmt, va_list ap)
{
    if (level < log_level) return;
    char msg[1024], line[2048], ts[40];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t t = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + t, sizeof ts - t, ".%03ldZ", now.tv_nsec / 1000000);
    vsnprintf(msg, sizeof msg, fmt, ap);

    size_t n;
    if (log_format == LOG_JSON) {
        n = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"prog\":\"%s\","
                             "\"pid\":%ld,\"msg\":\"", ts, log_names[level], log_prog,
                             (long)getpid());
        n = log_json_text(line, n, sizeof line - 3, msg);
        line[n++] = '"';
        n = log_json_fields(line, n, sizeof line - 3, f, nf);
        line[n++] = '}';
        line[n] = 0;
    } else {
        /* Upper-case level names, as scripts and tests grep them. */
        static const char *const upper[] = { "DEBUG", "INFO", "WARN", "ERROR" };
        int k = snprintf(line, sizeof line, "%s %s %s", ts, upper[level], msg);
        n = k < (int)sizeof line ? (size_t)k : sizeof line - 1;
    }
    if (n + 1 < sizeof line) {
        line[n++] = '\n';
        line[n] = 0;
    }
    /* One fputs of a whole line keeps lines from several threads whole. */
    pthread_mutex_lock(&log_lock);
    if (log_progress_shown) fputs("\r\033[K", stderr);
    log_progress_shown = 0;
    fputs(line, stderr);
    pthread_mutex_unlock(&log_lock);
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vrecord(level, NULL, 0, fmt, ap);
    va_end(ap);
}

void log_fields(int level, const log_field *f, int n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vrecord(level, f, n, fmt, ap);
    va_end(ap);
}

void log_progress(const char *text)
{
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "\r%s\033[K", text);
    fflush(stderr);
    log_progress_shown = 1;
    pthread_mutex_unlock(&log_lock);
}

void err_set(char *err, const char *fmt, ...)
{
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, SEFL_ERRLEN, fmt, ap);
    va_end(ap);
}
