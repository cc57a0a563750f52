/* settings: a run's result-changing settings as name = text; see settings.h. */
#include "common/fl/settings.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void settings_add(settings *s, const char *name, const char *fmt, ...)
{
    if (s->n >= SETTINGS_MAX || strlen(name) >= SETTINGS_NAME_MAX || settings_get(s, name)) {
        fprintf(stderr, "settings_add: cannot add '%s' (full, too long or twice)\n", name);
        abort();
    }
    setting *it = &s->item[s->n];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(it->value, sizeof it->value, fmt, ap);
    va_end(ap);
    if (len < 0 || len >= (int)sizeof it->value) {
        fprintf(stderr, "settings_add: value of '%s' too long\n", name);
        abort();
    }
    snprintf(it->name, sizeof it->name, "%s", name);
    s->n++;
}

const char *settings_get(const settings *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->item[i].name, name)) return s->item[i].value;
    return NULL;
}
