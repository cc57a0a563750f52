/* settings: the run settings that change a run's result, as a list of
 * name = text pairs.
 *
 * The coordinator lists its settings once (coord_run_settings in
 * server/coord_settings.c: one settings_add line per setting), server.db
 * records the list when the run starts (state.h: table settings) and a
 * resumed coordinator compares its own list against the recorded one, so
 * that a run can be reproduced from its database and never silently
 * continues with another learning rate. Names are the long flags without
 * "--" ("lr", "clients-per-round"), so a message can name the flag. Values
 * are text formatted so that equal settings give equal text (floats with
 * %.9g, which round-trips a float).
 */
#ifndef SEFL_SETTINGS_H
#define SEFL_SETTINGS_H

#define SETTINGS_MAX 64              /* settings in one list */
#define SETTINGS_NAME_MAX 32         /* a name, with its NUL */
#define SETTINGS_VALUE_MAX 128       /* a value, with its NUL */

typedef struct {
    char name[SETTINGS_NAME_MAX];
    char value[SETTINGS_VALUE_MAX];
} setting;

typedef struct {
    setting item[SETTINGS_MAX];
    int n;
} settings;

/* Appends name = printf(fmt, ...). A name already in the list, a name or
 * value too long, or a full list is a programming error: it aborts with a
 * message, as a registration that silently lost a setting would make runs
 * unreproducible. */
void settings_add(settings *s, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The value of name, or NULL when the list has none. */
const char *settings_get(const settings *s, const char *name);

#endif
