/* params: the parameter table of the `cnn-se` model and the loops over its
 * slices (gather, scatter, count, checksum); see params.h.
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

/* Appends one tensor after the last one; shapes have 1..4 dims. */
static void params_add(param_table *t, const char *name, unsigned groups,
                       int ndim, int d0, int d1, int d2, int d3)
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

/* The four tensors of an excitation on c channels: fc1 squeezes c -> c/r,
 * fc2 expands back; PyTorch's nn.Linear(c, c/r), nn.Linear(c/r, c). */
static void params_add_se(param_table *t, const char *prefix, int c, int r)
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
 * differ. */
static uint64_t params_hash_table(const param_table *t)
{
    uint64_t h = hash_fnv1a(HASH_FNV_INIT, t->arch, strlen(t->arch) + 1);
    h = params_hash_u32(h, (uint32_t)t->r);
    h = params_hash_u32(h, (uint32_t)t->fc1_gate);
    for (int i = 0; i < t->n; i++) {
        const param_info *p = &t->p[i];
        h = hash_fnv1a(h, p->name, strlen(p->name) + 1);
        h = params_hash_u32(h, (uint32_t)p->ndim);
        for (int d = 0; d < p->ndim; d++) h = params_hash_u32(h, (uint32_t)p->shape[d]);
        h = params_hash_u32(h, p->groups);
    }
    return h;
}

int params_build_cnn_se(param_table *t, int r, int fc1_gate, char *err)
{
    /* Every SE width (32, 64, 512) must divide by r; 32 is the narrowest. */
    if (r < 1 || r > 32 || 32 % r != 0) {
        err_set(err, "SE reduction ratio %d is invalid: use one of 1, 2, 4, 8, 16, 32", r);
        return -EINVAL;
    }
    memset(t, 0, sizeof *t);
    snprintf(t->arch, sizeof t->arch, "cnn-se");
    t->r = r;
    t->fc1_gate = fc1_gate ? 1 : 0;

    params_add(t, "conv1.weight", PARAM_BACKBONE, 4, 32, 1, 5, 5);
    params_add(t, "conv1.bias", PARAM_BACKBONE, 1, 32, 0, 0, 0);
    params_add_se(t, "se1", 32, r);
    params_add(t, "conv2.weight", PARAM_BACKBONE, 4, 64, 32, 5, 5);
    params_add(t, "conv2.bias", PARAM_BACKBONE, 1, 64, 0, 0, 0);
    params_add_se(t, "se2", 64, r);
    params_add(t, "fc1.weight", PARAM_BACKBONE, 2, 512, 1024, 0, 0);
    params_add(t, "fc1.bias", PARAM_BACKBONE, 1, 512, 0, 0, 0);
    if (t->fc1_gate) params_add_se(t, "se3", 512, r);
    params_add(t, "fc.weight", PARAM_BACKBONE | PARAM_HEAD, 2, 10, 512, 0, 0);
    params_add(t, "fc.bias", PARAM_BACKBONE | PARAM_HEAD, 1, 10, 0, 0, 0);

    t->hash = params_hash_table(t);
    return 0;
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
