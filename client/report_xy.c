/* report_xy: reads the points of an x-y chart (report.h) from text, one
 * point a line, checking every value before it is drawn. */
#include "client/report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define REPORT_XY_LINE_MAX 256

void report_xy_free(report_xy *c)
{
    for (int i = 0; i < c->nseries; i++) free(c->s[i].p);
    c->nseries = 0;
    memset(c->s, 0, sizeof c->s);
}

/* The series called name, created at the end when new; NULL past the limit. */
static report_series *report_xy_series(report_xy *c, const char *name)
{
    for (int i = 0; i < c->nseries; i++)
        if (!strcmp(c->s[i].name, name)) return &c->s[i];
    if (c->nseries == REPORT_XY_MAX_SERIES) return NULL;
    report_series *s = &c->s[c->nseries++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

/* Parses a finite number; 0 or -EINVAL. */
static int report_xy_number(const char *tok, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(tok, &end);
    return errno || end == tok || *end || !isfinite(*v) ? -EINVAL : 0;
}

int report_xy_read(FILE *f, const char *path, report_xy *c, char *err)
{
    char line[REPORT_XY_LINE_MAX];
    int lineno = 0;
    report_xy_free(c);
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            err_set(err, "%s:%d: line longer than %d bytes", path, lineno, REPORT_XY_LINE_MAX - 2);
            return -ERANGE;
        }
        char *save = NULL, *tok[5];
        int n = 0;
        for (char *t = strtok_r(line, " \t\r\n", &save); t && n < 5; t = strtok_r(NULL, " \t\r\n", &save))
            tok[n++] = t;
        if (n == 0 || tok[0][0] == '#') continue;
        double x, y;
        if (n < 3 || n > 4 || report_xy_number(tok[1], &x) < 0 || report_xy_number(tok[2], &y) < 0) {
            err_set(err, "%s:%d: want 'SERIES X Y [LABEL]' with finite numbers", path, lineno);
            return -EINVAL;
        }
        if (y < 0 || y > 1 || (c->logx && x <= 0)) {
            err_set(err, "%s:%d: y must be an accuracy in [0, 1]%s", path, lineno,
                    c->logx ? " and x > 0 on a log scale" : "");
            return -ERANGE;
        }
        if (strlen(tok[0]) >= REPORT_XY_NAME_MAX || (n == 4 && strlen(tok[3]) >= REPORT_XY_NAME_MAX)) {
            err_set(err, "%s:%d: a series name or label over %d bytes", path, lineno,
                    REPORT_XY_NAME_MAX - 1);
            return -ERANGE;
        }
        report_series *s = report_xy_series(c, tok[0]);
        if (!s || s->n == REPORT_XY_MAX_POINTS) {
            err_set(err, "%s:%d: over %d series or %d points in one", path, lineno,
                    REPORT_XY_MAX_SERIES, REPORT_XY_MAX_POINTS);
            return -ERANGE;
        }
        report_point_xy *p = realloc(s->p, ((size_t)s->n + 1) * sizeof *p);
        if (!p) {
            err_set(err, "out of memory");
            return -ENOMEM;
        }
        s->p = p;
        p[s->n] = (report_point_xy){ .x = x, .y = y };
        if (n == 4) snprintf(p[s->n].label, sizeof p[s->n].label, "%s", tok[3]);
        s->n++;
    }
    if (ferror(f)) {
        err_set(err, "%s: read error", path);
        return -EIO;
    }
    return 0;
}
