/* log: one line per event, to stderr, with a UTC timestamp and a level.
 *
 * Every program logs through these so that daemons, simulators and tests
 * produce lines a script can grep: "2026-11-27T22:56:50Z INFO round 3 committed ...".
 */
#ifndef SEFL_LOG_H
#define SEFL_LOG_H

#include <stddef.h>

enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the lowest level printed (default LOG_INFO; SEFL_LOG=debug|info|warn|error
 * in the environment overrides it at the first call). */
void log_set_level(int level);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* Functions that can fail for a reason the user must see take `char *err`
 * of at least SEFL_ERRLEN bytes and write one line into it (no newline). */
#define SEFL_ERRLEN 256
void err_set(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
