/* log: one line per event, to stderr, with a UTC timestamp and a level.
 *
 * Every program logs through these so that daemons, simulators and tests
 * produce lines a script can grep:
 *   text: "2026-11-27T22:56:50.123Z INFO round 3 committed ..."
 *   json: {"ts":"2026-11-27T22:56:50.123Z","level":"info","prog":"sefl-server",
 *          "pid":4242,"msg":"round 3 committed ...","round":3,"clients":10}
 * (--log-format, set through config.h). The structured fields after msg
 * are those a log_fields call gives (a text line carries only the message,
 * which says the same in words). A terminal progress line
 * (log_progress) is cleared before a log line is written, so the two never
 * share a line.
 */
#ifndef SEFL_LOG_H
#define SEFL_LOG_H

#include <stddef.h>

enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum { LOG_TEXT, LOG_JSON };

/* Reads SEFL_LOG (debug, info, warn or error, in any case; unset: info).
 * Returns 0, or -EINVAL with err for any other value. Programs call it
 * through config_begin, before they log; a library user that never calls
 * it gets info. */
int log_init_env(char *err);

/* Sets the lowest level printed (default LOG_INFO). */
void log_set_level(int level);

/* Parses "text" or "json" into LOG_TEXT / LOG_JSON and sets it, with prog
 * (borrowed: a string literal) named in JSON records. Returns 0 or -EINVAL
 * with err. */
int log_set_format(const char *name, char *err);
void log_set_prog(const char *prog);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One structured field of a record: a key and a text, integer or number. */
typedef struct {
    const char *key;
    int type;                   /* LOG_F_* */
    const char *s;
    long long i;
    double d;
} log_field;
enum { LOG_F_STR, LOG_F_INT, LOG_F_NUM };
#define LOG_STR(k, v) ((log_field){ .key = (k), .type = LOG_F_STR, .s = (v) })
#define LOG_INT(k, v) ((log_field){ .key = (k), .type = LOG_F_INT, .i = (long long)(v) })
#define LOG_NUM(k, v) ((log_field){ .key = (k), .type = LOG_F_NUM, .d = (double)(v) })

/* log_msg with n fields f that JSON records carry as their own keys
 * (numbers as JSON numbers; a NaN or infinity as null). */
void log_fields(int level, const log_field *f, int n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Draws text as the terminal's progress line ("\r", the text, the rest of
 * the line cleared, no newline); the next log line clears it first. For
 * stderr on a terminal only. */
void log_progress(const char *text);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* Functions that can fail for a reason the user must see take `char *err`
 * of at least SEFL_ERRLEN bytes and write one line into it (no newline). */
#define SEFL_ERRLEN 256
void err_set(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
