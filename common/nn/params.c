/* params: the parameter table of a model, built by its architecture
 * (arch.h), and the loops over its slices (gather, scatter, count,
 * checksum); see params.h.
 *
 * The table is the single description of where every tensor lives in a
 * model's one parameter buffer. model.c finds its tensors here by name, the
 * wire and the stores move the selected slices with params_gather /
 * params_scatter, and the table hash lets two machines check they agree on
 * the layout before exchanging a single float.
 */
#include "common/nn/params.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/hash.h"
#include "common/log.h"
#include "common/nn/arch.h"

model_opts model_opts_default(void)
{
    return (model_opts){ .arch = "cnn-se", .r = 8, .fc1_gate = 1 };
}

int model_opts_set(model_opts *o, int which, const char *value, char *err)
{
    static const char *flags[MODEL_OPT_N] = { "--arch", "--se-placement", "--gate" };
    char *fields[MODEL_OPT_N] = { o->arch, o->se_placement, o->gate };
    /* Every text field of model_opts has the same size. */
    _Static_assert(sizeof o->arch == PARAM_OPT_MAX && sizeof o->se_placement == PARAM_OPT_MAX &&
                   sizeof o->gate == PARAM_OPT_MAX, "model_opts text fields differ in size");
    if (which < 0 || which >= MODEL_OPT_N) {
        err_set(err, "model option %d does not exist", which);
        return -EINVAL;
    }
    if (strlen(value) >= PARAM_OPT_MAX) {
        err_set(err, "%s '%.32s' is too long to be a valid value", flags[which], value);
        return -EINVAL;
    }
    snprintf(fields[which], PARAM_OPT_MAX, "%s", value);
    return 0;
}

void params_add(param_table *t, const char *name, unsigned groups, int ndim, int d0, int d1,
                int d2, int d3)
{
    param_info *p = &t->p[t->n++];
    int dims[PARAM_MAX_DIMS] = { d0, d1, d2, d3 };
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->groups = groups;
    p->offset = t->total;
    p->size = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = dims[i];
        p->size *= (size_t)dims[i];
    }
    t->total += p->size;
}

void params_add_se(param_table *t, const char *prefix, int c, int r)
{
    char name[PARAM_NAME_MAX];
    snprintf(name, sizeof name, "%s.fc1.weight", prefix);
    params_add(t, name, PARAM_SE, 2, c / r, c, 0, 0);
    snprintf(name, sizeof name, "%s.fc1.bias", prefix);
    params_add(t, name, PARAM_SE, 1, c / r, 0, 0, 0);
    snprintf(name, sizeof name, "%s.fc2.weight", prefix);
    params_add(t, name, PARAM_SE, 2, c, c / r, 0, 0);
    snprintf(name, sizeof name, "%s.fc2.bias", prefix);
    params_add(t, name, PARAM_SE, 1, c, 0, 0, 0);
}

/* Folds a 32-bit integer as 4 little-endian bytes, so the hash does not
 * depend on the host's byte order or int size. */
static uint64_t params_hash_u32(uint64_t h, uint32_t v)
{
    unsigned char b[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24 };
    return hash_fnv1a(h, b, sizeof b);
}

/* Names are folded with their terminating NUL so "ab"+"c" and "a"+"bc"
 * differ. An option the architecture does not have ("") is not folded, so
 * adding an option to the table left the hashes of older tables (cnn-se's)
 * unchanged. */
static uint64_t params_hash_table(const param_table *t)
{
    uint64_t h = hash_fnv1a(HASH_FNV_INIT, t->arch, strlen(t->arch) + 1);
    h = params_hash_u32(h, (uint32_t)t->r);
    h = params_hash_u32(h, (uint32_t)t->fc1_gate);
    if (t->se_placement[0]) h = hash_fnv1a(h, t->se_placement, strlen(t->se_placement) + 1);
    if (t->gate[0]) h = hash_fnv1a(h, t->gate, strlen(t->gate) + 1);
    for (int i = 0; i < t->n; i++) {
        const param_info *p = &t->p[i];
        h = hash_fnv1a(h, p->name, strlen(p->name) + 1);
        h = params_hash_u32(h, (uint32_t)p->ndim);
        for (int d = 0; d < p->ndim; d++) h = params_hash_u32(h, (uint32_t)p->shape[d]);
        h = params_hash_u32(h, p->groups);
    }
    return h;
}

int params_build(param_table *t, const model_opts *o, char *err)
{
    const model_arch *a = arch_find(o->arch);
    if (!a) {
        char names[128];
        arch_names(names, sizeof names);
        err_set(err, "architecture '%.32s' is unknown: use one of %s", o->arch, names);
        return -EINVAL;
    }
    memset(t, 0, sizeof *t);
    snprintf(t->arch, sizeof t->arch, "%s", a->name);
    int ret = a->build(t, o, err);
    if (ret) return ret;
    t->hash = params_hash_table(t);
    return 0;
}

model_opts params_opts(const param_table *t)
{
    model_opts o = { .r = t->r, .fc1_gate = t->fc1_gate };
    snprintf(o.arch, sizeof o.arch, "%s", t->arch);
    snprintf(o.se_placement, sizeof o.se_placement, "%s", t->se_placement);
    snprintf(o.gate, sizeof o.gate, "%s", t->gate);
    return o;
}

const param_info *params_find(const param_table *t, const char *name)
{
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->p[i].name, name)) return &t->p[i];
    return NULL;
}

int params_selected(const param_info *p, param_sel sel)
{
    return (p->groups & sel.any) && !(p->groups & sel.none);
}

size_t params_count(const param_table *t, param_sel sel)
{
    size_t n = 0;
    for (int i = 0; i < t->n; i++)
        if (params_selected(&t->p[i], sel)) n += t->p[i].size;
    return n;
}

void params_gather(const param_table *t, param_sel sel, const float *buf, float *flat)
{
    for (int i = 0; i < t->n; i++) {
        const param_info *p = &t->p[i];
        if (!params_selected(p, sel)) continue;
        memcpy(flat, buf + p->offset, p->size * sizeof *flat);
        flat += p->size;
    }
}

void params_scatter(const param_table *t, param_sel sel, const float *flat, float *buf)
{
    for (int i = 0; i < t->n; i++) {
        const param_info *p = &t->p[i];
        if (!params_selected(p, sel)) continue;
        memcpy(buf + p->offset, flat, p->size * sizeof *flat);
        flat += p->size;
    }
}

void params_copy(const param_table *t, param_sel sel, const float *src, float *dst)
{
    for (int i = 0; i < t->n; i++) {
        const param_info *p = &t->p[i];
        if (params_selected(p, sel))
            memcpy(dst + p->offset, src + p->offset, p->size * sizeof *dst);
    }
}

int params_parse_private(const char *s, unsigned *mask, char *err)
{
    static const struct { const char *name; unsigned mask; } names[] = {
        { "none", 0 },
        { "se", PARAM_SE },
        { "head", PARAM_HEAD },
        { "se,head", PARAM_SE | PARAM_HEAD },
        { "head,se", PARAM_SE | PARAM_HEAD },
    };
    for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++) {
        if (!strcmp(s, names[i].name)) {
            *mask = names[i].mask;
            return 0;
        }
    }
    err_set(err, "private set '%s' is invalid: use none, se, head or se,head", s ? s : "");
    return -EINVAL;
}

const char *params_private_name(unsigned mask)
{
    switch (mask & (PARAM_SE | PARAM_HEAD)) {
    case PARAM_SE: return "se";
    case PARAM_HEAD: return "head";
    case PARAM_SE | PARAM_HEAD: return "se,head";
    default: return "none";
    }
}

uint64_t params_checksum(const param_table *t, param_sel sel, const float *buf)
{
    /* The float bytes are hashed as stored: every machine we run on is
     * little-endian IEEE 754, so equal tensors give equal checksums. */
    uint64_t h = HASH_FNV_INIT;
    for (int i = 0; i < t->n; i++) {
        const param_info *p = &t->p[i];
        if (params_selected(p, sel)) h = hash_fnv1a(h, buf + p->offset, p->size * sizeof *buf);
    }
    return h;
}
