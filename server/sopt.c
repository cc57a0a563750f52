/* sopt: server optimizers; see sopt.h. */
#include "server/sopt.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

struct sopt {
    sopt_spec spec;
    size_t n;
    size_t len;                 /* doubles of state */
    double *cur;                /* (len) m, then v for the adaptive ones */
    double *next;               /* (len) the pending state of the last step */
    float *x;                   /* (n) the pending new values */
};

static const char *const sopt_names[] = { "sgd", "avgm", "adagrad", "yogi", "adam" };

void sopt_spec_default(sopt_spec *s)
{
    *s = (sopt_spec){ .kind = SOPT_SGD, .lr = 1, .momentum = 0.9, .beta1 = 0.9, .beta2 = 0.99,
                      .tau = 1e-3 };
}

int sopt_parse(const char *text, sopt_spec *s, char *err)
{
    for (int i = 0; i < (int)(sizeof sopt_names / sizeof *sopt_names); i++) {
        if (!strcmp(text, sopt_names[i])) {
            s->kind = i;
            return 0;
        }
    }
    err_set(err, "--server-opt %s: expected sgd, avgm, adam, yogi or adagrad", text);
    return -EINVAL;
}

void sopt_name(const sopt_spec *s, char *buf, size_t size)
{
    switch (s->kind) {
    case SOPT_SGD: snprintf(buf, size, "sgd lr=%g", s->lr); break;
    case SOPT_AVGM: snprintf(buf, size, "avgm lr=%g momentum=%g", s->lr, s->momentum); break;
    default:
        snprintf(buf, size, "%s lr=%g beta1=%g beta2=%g tau=%g", sopt_names[s->kind], s->lr,
                 s->beta1, s->beta2, s->tau);
        break;
    }
}

size_t sopt_state_len(const sopt_spec *s, size_t n)
{
    return s->kind == SOPT_SGD ? 0 : s->kind == SOPT_AVGM ? n : 2 * n;
}

void sopt_free(sopt *o)
{
    if (!o) return;
    free(o->cur);
    free(o->next);
    free(o->x);
    free(o);
}

int sopt_new(const sopt_spec *spec, size_t n, sopt **out)
{
    *out = NULL;
    sopt *o = calloc(1, sizeof *o);
    if (!o) return -ENOMEM;
    o->spec = *spec;
    o->n = n;
    o->len = sopt_state_len(spec, n);
    o->cur = calloc(o->len + 1, sizeof *o->cur);
    o->next = calloc(o->len + 1, sizeof *o->next);
    o->x = malloc((n ? n : 1) * sizeof *o->x);
    if (!o->cur || !o->next || !o->x) {
        sopt_free(o);
        return -ENOMEM;
    }
    if (o->len == 2 * n)
        for (size_t j = 0; j < n; j++) o->cur[n + j] = spec->tau * spec->tau;
    *out = o;
    return 0;
}

int sopt_step(sopt *o, const float *d, float *x)
{
    const sopt_spec *p = &o->spec;
    size_t n = o->n;
    double *m = o->next, *v = o->next + n;
    const double *m0 = o->cur, *v0 = o->cur + n;
    for (size_t j = 0; j < n; j++) {
        double g = d[j], step;
        switch (p->kind) {
        case SOPT_SGD: step = g; break;
        case SOPT_AVGM:
            m[j] = p->momentum * m0[j] + g;
            step = m[j];
            break;
        default:
            m[j] = p->beta1 * m0[j] + (1 - p->beta1) * g;
            if (p->kind == SOPT_ADAGRAD) {
                v[j] = v0[j] + g * g;
            } else if (p->kind == SOPT_YOGI) {
                double s = v0[j] - g * g;
                v[j] = v0[j] - (1 - p->beta2) * g * g * ((s > 0) - (s < 0));
            } else {
                v[j] = p->beta2 * v0[j] + (1 - p->beta2) * g * g;
            }
            step = m[j] / (sqrt(v[j]) + p->tau);
            break;
        }
        double nx = (double)x[j] + p->lr * step;
        if (!(fabs(nx) <= FLT_MAX)) return -ERANGE;
        o->x[j] = (float)nx;
    }
    memcpy(x, o->x, n * sizeof *x);
    return 0;
}

const double *sopt_pending(const sopt *o)
{
    return o->next;
}

void sopt_accept(sopt *o)
{
    memcpy(o->cur, o->next, o->len * sizeof *o->cur);
}

double *sopt_state(sopt *o)
{
    return o->cur;
}
