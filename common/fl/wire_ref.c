/* wire_ref: model references and host tokens; see wire_ref.h. */
#include "common/fl/wire_ref.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include <mbedtls/sha256.h>

/* Folds v as 4 little-endian bytes (the host is little-endian: wire.c). */
static int wire_ref_u32(mbedtls_sha256_context *c, uint32_t v)
{
    return mbedtls_sha256_update_ret(c, (const unsigned char *)&v, sizeof v);
}

static int wire_ref_tensor(mbedtls_sha256_context *c, const Sefl__Tensor *x)
{
    uint64_t len = x->data.len;
    int rc = mbedtls_sha256_update_ret(c, (const unsigned char *)x->name, strlen(x->name) + 1);
    if (!rc) rc = wire_ref_u32(c, (uint32_t)x->n_shape);
    for (size_t d = 0; !rc && d < x->n_shape; d++) rc = wire_ref_u32(c, x->shape[d]);
    if (!rc) rc = wire_ref_u32(c, (uint32_t)x->encoding);
    if (!rc) rc = wire_ref_u32(c, (uint32_t)x->n_scales);
    if (!rc) rc = mbedtls_sha256_update_ret(c, (const unsigned char *)&x->scale, sizeof x->scale);
    if (!rc && x->n_scales)
        rc = mbedtls_sha256_update_ret(c, (const unsigned char *)x->scales,
                                       x->n_scales * sizeof *x->scales);
    if (!rc) rc = mbedtls_sha256_update_ret(c, (const unsigned char *)&len, sizeof len);
    if (!rc && x->data.len) rc = mbedtls_sha256_update_ret(c, x->data.data, x->data.len);
    return rc;
}

int wire_model_ref(Sefl__Tensor *const *ts, size_t n, uint8_t out[WIRE_REF_LEN])
{
    mbedtls_sha256_context c;
    mbedtls_sha256_init(&c);
    int rc = mbedtls_sha256_starts_ret(&c, 0);
    for (size_t i = 0; !rc && i < n; i++) rc = wire_ref_tensor(&c, ts[i]);
    if (!rc) rc = mbedtls_sha256_finish_ret(&c, out);
    mbedtls_sha256_free(&c);
    return rc ? -EIO : 0;
}

int wire_host_token(uint8_t out[WIRE_HOST_TOKEN_LEN])
{
    ssize_t got = getrandom(out, WIRE_HOST_TOKEN_LEN, 0);
    if (got == WIRE_HOST_TOKEN_LEN) return 0;
    return got < 0 ? -errno : -EIO;
}

const char *wire_ref_short(const uint8_t *ref, char *buf)
{
    for (int i = 0; i < 8; i++) snprintf(buf + 2 * i, 3, "%02x", ref[i]);
    return buf;
}
