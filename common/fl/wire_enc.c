/* wire_enc: f32 / f16 / int8 tensors on the wire; see wire_enc.h.
 *
 * Encoding runs once per message on the sender (the coordinator once per
 * round, a client once per Update): the data of every tensor is packed into
 * one buffer that the wire_tensors own, and the per-channel scales into
 * another. Decoding writes straight into the model buffer.
 */
#include "common/fl/wire_enc.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/rng.h"

#define F16_MAX 65504.0f

int wire_enc_parse(const char *flag, const char *s, int per_channel, wire_enc *out, char *err)
{
    static const char *const names[] = { "f32", "f16", "int8" };
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            *out = (wire_enc){ .dtype = (wire_dtype)i, .per_channel = i == WIRE_INT8 && per_channel };
            return 0;
        }
    err_set(err, "%s must be f32, f16 or int8, got '%s'", flag, s);
    return -EINVAL;
}

const char *wire_enc_name(wire_enc e)
{
    switch (e.dtype) {
    case WIRE_F16: return "f16";
    case WIRE_INT8: return e.per_channel ? "int8/channel" : "int8/tensor";
    default: return "f32";
    }
}

Sefl__Encoding wire_enc_encoding(wire_enc e)
{
    return e.dtype == WIRE_F16 ? SEFL__ENCODING__F16
         : e.dtype == WIRE_INT8 ? SEFL__ENCODING__INT8 : SEFL__ENCODING__F32;
}

int wire_enc_from_encoding(Sefl__Encoding x, int per_channel, wire_enc *out)
{
    switch (x) {
    case SEFL__ENCODING__F32: *out = (wire_enc){ WIRE_F32, 0 }; return 0;
    case SEFL__ENCODING__F16: *out = (wire_enc){ WIRE_F16, 0 }; return 0;
    case SEFL__ENCODING__INT8: *out = (wire_enc){ WIRE_INT8, per_channel != 0 }; return 0;
    default: return -EINVAL;
    }
}

uint16_t wire_f16_from_float(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    const uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00;            /* NaN */
    if (ax >= 0x477ff000u) return sign | 0x7c00;           /* rounds past 65504: Inf */
    if (ax < 0x38800000u) {
        /* Below 2^-14: a subnormal half, m * 2^-24 with m rounded to
         * nearest even by the FPU's default mode (m = 1024 is the smallest
         * normal, which the bits below express correctly). */
        float a;
        memcpy(&a, &ax, 4);
        return sign | (uint16_t)lrintf(a * 16777216.0f);
    }
    /* Normal: rebias the exponent (127 - 15) and round the 13 dropped
     * mantissa bits to nearest even; a carry into the exponent is right. */
    const uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u) - (112u << 23);
    return sign | (uint16_t)(r >> 13);
}

float wire_f16_to_float(uint16_t h)
{
    const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    float f;
    if (e == 0) {
        f = (float)m * 5.9604644775390625e-8f;              /* m * 2^-24 */
    } else {
        const uint32_t x = (e == 0x1f ? 0x7f800000u | (m << 13) : ((e + 112u) << 23) | (m << 13));
        memcpy(&f, &x, 4);
    }
    return (h & 0x8000) ? -f : f;
}

/* The values of tensor p to encode: v[k] = buf[k] - base[k] or buf[k]. */
static float enc_value(const float *buf, const float *base, size_t k)
{
    return base ? buf[k] - base[k] : buf[k];
}

/* f16 of the n values at buf (+ base) into out; -ERANGE when one is not
 * finite or past the f16 range (the tensor then goes as f32). */
static int enc_f16(const float *buf, const float *base, size_t n, uint8_t *out)
{
    for (size_t k = 0; k < n; k++) {
        const float v = enc_value(buf, base, k);
        const uint16_t h = wire_f16_from_float(v);
        if ((h & 0x7c00) == 0x7c00) return -ERANGE;
        memcpy(out + 2 * k, &h, 2);
    }
    return 0;
}

/* Uniform offsets in [0, 1) for stochastic rounding, four per draw of the
 * rng: 16 bits each bias a rounding by at most 2^-16 of a step, far below
 * the quantisation itself, and a draw per value cost more than the rest of
 * the encoding (a model has 582,026 values per update). */
typedef struct {
    rng *r;
    uint64_t bits;
    int left;                   /* offsets still in bits */
} enc_dither;

static float enc_dither_next(enc_dither *d)
{
    if (d->left == 0) {
        d->bits = rng_next(d->r);
        d->left = 4;
    }
    const float u = (float)(d->bits & 0xffffu) * (1.0f / 65536.0f);
    d->bits >>= 16;
    d->left--;
    return u;
}

/* int8 of rows x len values at buf (+ base), one scale per row into
 * scales[0..rows), rounded to nearest (r NULL) or stochastically; -ERANGE
 * when a value is not finite (the tensor then goes as f32). */
static int enc_int8(const float *buf, const float *base, size_t rows, size_t len, rng *r,
                    int8_t *out, float *scales)
{
    enc_dither dither = { r, 0, 0 };
    for (size_t i = 0; i < rows; i++) {
        const float *b = buf + i * len, *z = base ? base + i * len : NULL;
        float amax = 0.0f;
        for (size_t k = 0; k < len; k++) {
            const float a = fabsf(enc_value(b, z, k));
            if (!isfinite(a)) return -ERANGE;
            if (a > amax) amax = a;
        }
        /* An all-zero row (or one so small that amax / 127 underflows)
         * still needs a nonzero scale: every q is then 0. */
        float s = amax / 127.0f;
        if (!(s > 0.0f)) s = 1.0f;
        scales[i] = s;
        const float inv = 1.0f / s;
        for (size_t k = 0; k < len; k++) {
            const float x = enc_value(b, z, k) * inv;
            float q = r ? floorf(x + enc_dither_next(&dither)) : rintf(x);
            q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
            out[i * len + k] = (int8_t)q;
        }
    }
    return 0;
}

int wire_tensors_encode(const param_table *t, param_sel sel, const float *buf, const float *base,
                        wire_enc e, uint64_t seed, wire_tensors *out)
{
    int rc = wire_tensors_build(t, sel, buf, out);
    if (rc < 0 || (e.dtype == WIRE_F32 && !base)) return rc;
    /* Room for every tensor as f32 (the fallback) and one scale per row. */
    size_t bytes = 0, nscales = 0;
    for (size_t i = 0; i < out->n; i++) {
        const param_info *p = params_find(t, out->t[i].name);
        bytes += p->size * sizeof(float);
        nscales += (size_t)p->shape[0];
    }
    out->data = malloc(bytes ? bytes : 1);
    out->scales = malloc((nscales ? nscales : 1) * sizeof *out->scales);
    if (!out->data || !out->scales) {
        wire_tensors_release(out);
        return -ENOMEM;
    }
    rng r;
    rng_seed(&r, seed);
    uint8_t *d = out->data;
    float *sc = out->scales;
    for (size_t i = 0; i < out->n; i++) {
        Sefl__Tensor *x = &out->t[i];
        const param_info *p = params_find(t, x->name);
        const float *src = buf + p->offset, *bs = base ? base + p->offset : NULL;
        int done = -ERANGE;
        if (e.dtype == WIRE_F16 && (done = enc_f16(src, bs, p->size, d)) == 0) {
            x->encoding = SEFL__ENCODING__F16;
            x->data.len = p->size * 2;
        } else if (e.dtype == WIRE_INT8) {
            const size_t rows = e.per_channel && p->ndim > 1 ? (size_t)p->shape[0] : 1;
            if ((done = enc_int8(src, bs, rows, p->size / rows, seed ? &r : NULL, (int8_t *)d,
                                 sc)) == 0) {
                x->encoding = SEFL__ENCODING__INT8;
                x->data.len = p->size;
                if (rows > 1) {
                    x->scales = sc;
                    x->n_scales = rows;
                    sc += rows;
                } else {
                    x->scale = sc[0];
                }
            }
        }
        if (done < 0) {
            /* f32, as the values are (with a base: the difference). */
            for (size_t k = 0; k < p->size; k++) {
                const float v = enc_value(src, bs, k);
                memcpy(d + 4 * k, &v, 4);
            }
            x->encoding = SEFL__ENCODING__F32;
            x->data.len = p->size * sizeof(float);
        }
        x->data.data = d;
        d += x->data.len;
    }
    return 0;
}

void wire_tensor_decode(const param_info *p, const Sefl__Tensor *x, const float *base, float *dst)
{
    const uint8_t *s = x->data.data;
    switch (x->encoding) {
    case SEFL__ENCODING__F16:
        for (size_t k = 0; k < p->size; k++) {
            uint16_t h;
            memcpy(&h, s + 2 * k, 2);
            dst[k] = wire_f16_to_float(h);
        }
        break;
    case SEFL__ENCODING__INT8: {
        const int8_t *q = (const int8_t *)s;   /* (p->size) */
        const size_t rows = x->n_scales ? x->n_scales : 1, len = p->size / rows;
        for (size_t i = 0; i < rows; i++) {
            const float sc = x->n_scales ? x->scales[i] : x->scale;
            for (size_t k = 0; k < len; k++) dst[i * len + k] = sc * (float)q[i * len + k];
        }
        break;
    }
    default:
        memcpy(dst, s, p->size * sizeof(float));
        break;
    }
    if (base)
        for (size_t k = 0; k < p->size; k++) dst[k] += base[k];
}
