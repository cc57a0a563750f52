/* attack: poisoning behaviours of test clients; see attack.h. */
#include "client/attack.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/rng.h"

int attack_parse(const char *text, attack_spec *a, char *err)
{
    static const struct { const char *name; int kind, arg; } kinds[] = {
        { "signflip", ATTACK_SIGNFLIP, 0 }, { "labelflip", ATTACK_LABELFLIP, 0 },
        { "nan", ATTACK_NAN, 0 }, { "scale:", ATTACK_SCALE, 1 }, { "gauss:", ATTACK_GAUSS, 1 },
    };
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
        size_t len = strlen(kinds[i].name);
        if (kinds[i].arg ? strncmp(text, kinds[i].name, len) : strcmp(text, kinds[i].name))
            continue;
        a->kind = kinds[i].kind;
        a->s = 0;
        if (!kinds[i].arg) return 0;
        char *end;
        errno = 0;
        a->s = strtod(text + len, &end);
        if (errno || end == text + len || *end || !isfinite(a->s) || fabs(a->s) > 1e6 ||
            (a->kind == ATTACK_GAUSS && !(a->s > 0))) {
            err_set(err, "--attack %s: %s needs a number%s, at most 1e6 in size", text,
                    kinds[i].name, a->kind == ATTACK_GAUSS ? " > 0" : "");
            return -EINVAL;
        }
        return 0;
    }
    err_set(err, "--attack %s: expected signflip, scale:S, gauss:SIGMA, labelflip or nan", text);
    return -EINVAL;
}

int attack_count(double fraction, int clients)
{
    return (int)ceil(fraction * clients - 1e-9);
}

void attack_apply(const attack_spec *a, const param_table *t, param_sel sel, const float *global,
                  float *params, uint64_t seed)
{
    rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < t->n; i++) {
        const param_info *p = &t->p[i];
        if (!params_selected(p, sel)) continue;
        for (size_t j = p->offset; j < p->offset + p->size; j++) {
            double u = (double)params[j] - global[j];
            switch (a->kind) {
            case ATTACK_SIGNFLIP: params[j] = (float)(global[j] - u); break;
            case ATTACK_SCALE: params[j] = (float)(global[j] + a->s * u); break;
            case ATTACK_GAUSS: params[j] = (float)(global[j] + a->s * rng_normal(&r)); break;
            default: break;
            }
        }
        if (a->kind == ATTACK_NAN) {
            params[p->offset] = NAN;
            return;
        }
    }
}

uint8_t *attack_flip_labels(const uint8_t *y, size_t n)
{
    uint8_t *f = malloc(n ? n : 1);
    if (!f) return NULL;
    for (size_t i = 0; i < n; i++) f[i] = (uint8_t)(9 - y[i]);
    return f;
}
