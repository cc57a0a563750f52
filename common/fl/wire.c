/* wire: sefl's Envelope from frame payload to validated message and back.
 *
 * wire_decode is the only door through which a peer's bytes become a message
 * the coordinator or a client acts on. It works in three passes:
 *   1. protobuf-c unpacks the payload with a bounded allocator, so a small
 *      payload cannot make us allocate much (many empty sub-messages, huge
 *      packed counts) and a large one no more than the caller allows;
 *   2. a walk over the raw bytes checks every string field, because the
 *      unpacked C string hides what matters: protobuf-c cuts a string at an
 *      embedded NUL, so its true length and contents are only in the bytes
 *      (the walk also refuses field number 0, which protobuf-c lets by);
 *   3. the unpacked message is checked field by field against the parameter
 *      table (version, oneof, model spec, tensors, numbers).
 * Any failure gives a WIRE_ERR_* code and one line for the Error reply.
 *
 * Rules a valid Envelope follows (beyond what the .proto says):
 * - version == WIRE_VERSION and one message of the oneof is set;
 * - every string is valid UTF-8, at most WIRE_MAX_STRING bytes, with no NUL
 *   or other control character (strings end up in one-line logs);
 * - Hello/Welcome carry a model spec equal to this side's table;
 *   private_groups parse (params_parse_private); Welcome.client_id is set;
 * - tensors: a name of the table, at most once per message, the table's
 *   ndim and shape, F32 with 4 bytes per element, all finite, F16 with 2
 *   bytes per element, all finite, or INT8 with 1 byte per element and a
 *   finite nonzero scale small enough that scale * 127 stays finite: one
 *   (scale) or one per row of dimension 0 (scales, then scale is 0); only
 *   INT8 carries scales; TrainTask.update_encoding is a known Encoding;
 * - Hello.host_token is empty or WIRE_HOST_TOKEN_LEN bytes; model_ref (TrainTask,
 *   EvalTask) empty or WIRE_REF_LEN bytes, ModelRequest.model_ref WIRE_REF_LEN;
 * - floats in TrainTask, Update and EvalReport are finite and >= 0,
 *   accuracies at most 1; TrainTask.batch and .epochs within their limits;
 *   Error.code is one of the WIRE_ERR_* codes.
 *
 * Tensor bytes are the little-endian IEEE-754 floats of the model buffer.
 * The host is assumed little-endian (checked at compile time), which is what
 * lets wire_tensors_build point the message at the model buffer itself.
 */
#include "common/fl/wire.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/net/frame.h"
#include "common/fl/wire_enc.h"
#include "common/fl/wire_ref.h"
#include "common/log.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "wire.c assumes a little-endian host: F32 tensor bytes are the model buffer's bytes"
#endif

_Static_assert(PARAM_MAX_TENSORS <= 64, "tensor sets are tracked in a uint64_t mask");

/* Sub-messages nest at most Envelope > TrainTask > Tensor; a deeper walk
 * means the bytes do not follow our schema. */
#define WIRE_MAX_DEPTH 4

/* ---- bounded allocator ------------------------------------------------ */

/* Each block carries its size in front so that free can give it back to the
 * budget; the header is padded so the block stays suitably aligned. */
typedef union {
    size_t size;
    max_align_t align;
} wire_block;

typedef struct {
    size_t limit;               /* bytes (blocks and headers) allowed at once */
    size_t used;
    int over;                   /* an allocation was refused for the limit */
    int oom;                    /* malloc itself failed */
} wire_budget;

static void *wire_budget_alloc(void *data, size_t size)
{
    wire_budget *b = data;
    if (size > b->limit || sizeof(wire_block) > b->limit - size ||
        size + sizeof(wire_block) > b->limit - b->used) {
        b->over = 1;
        return NULL;
    }
    wire_block *h = malloc(sizeof *h + size);
    if (!h) {
        b->oom = 1;
        return NULL;
    }
    h->size = size + sizeof *h;
    b->used += h->size;
    return h + 1;
}

/* data is NULL when a decoded Envelope is freed after its budget is gone. */
static void wire_budget_free(void *data, void *p)
{
    if (!p) return;
    wire_block *h = (wire_block *)p - 1;
    if (data) ((wire_budget *)data)->used -= h->size;
    free(h);
}

size_t wire_alloc_limit(size_t payload_len)
{
    if (payload_len > (SIZE_MAX - WIRE_ALLOC_SLACK) / 2) return SIZE_MAX;
    return 2 * payload_len + WIRE_ALLOC_SLACK;
}

void wire_free(Sefl__Envelope *e)
{
    ProtobufCAllocator a = { wire_budget_alloc, wire_budget_free, NULL };
    if (e) sefl__envelope__free_unpacked(e, &a);
}

/* ---- raw field walk --------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 when the bytes
 * there are not one: overlong forms, surrogates and code points past
 * U+10FFFF are refused. */
static size_t wire_utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    size_t k;
    uint32_t cp, min;
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0) { k = 1; cp = c & 0x1f; min = 0x80; }
    else if ((c & 0xf0) == 0xe0) { k = 2; cp = c & 0x0f; min = 0x800; }
    else if ((c & 0xf8) == 0xf0) { k = 3; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n <= k) return 0;
    for (size_t j = 1; j <= k; j++) {
        if ((s[j] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[j] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return k + 1;
}

/* 1 when s[0..n) is text for a one-line field: UTF-8, no control bytes. */
static int wire_text_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x20 || s[i] == 0x7f) return 0;
        size_t k = wire_utf8_seq(s + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

/* Reads one varint. Returns 0, or -1 when it is cut off or too long. */
static int wire_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*pp == end) return -1;
        uint8_t b = *(*pp)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* Checks every field key and every string field in the bytes p[0..n) of a
 * message of type d, and in its sub-messages. The bytes already unpacked,
 * so apart from field numbers a structural failure here is only a safety
 * net. Returns 0 or -EBADMSG with code and err. */
static int wire_check_raw(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
                              int depth, uint32_t *code, char *err)
{
    const uint8_t *end = p + n;
    if (depth > WIRE_MAX_DEPTH) goto malformed;
    while (p < end) {
        uint64_t key, v;
        /* Field number 0 and numbers past 2^29 - 1 do not exist; protobuf-c
         * keeps some of them as unknown fields but cannot read them back
         * once re-encoded. */
        if (wire_varint(&p, end, &key) || key >> 3 == 0 || key >> 3 > 0x1fffffff) goto malformed;
        switch (key & 7) {
        case 0:
            if (wire_varint(&p, end, &v)) goto malformed;
            break;
        case 1:
            if (end - p < 8) goto malformed;
            p += 8;
            break;
        case 5:
            if (end - p < 4) goto malformed;
            p += 4;
            break;
        case 2: {
            if (wire_varint(&p, end, &v) || v > (uint64_t)(end - p)) goto malformed;
            const ProtobufCFieldDescriptor *f = NULL;
            if (key >> 3 <= UINT32_MAX)
                f = protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3));
            if (f && f->type == PROTOBUF_C_TYPE_STRING) {
                if (v > WIRE_MAX_STRING) {
                    *code = WIRE_ERR_LIMIT;
                    err_set(err, "%s.%s is %llu bytes long, over the limit of %d", d->short_name,
                            f->name, (unsigned long long)v, WIRE_MAX_STRING);
                    return -EBADMSG;
                }
                if (!wire_text_ok(p, (size_t)v)) {
                    *code = WIRE_ERR_MALFORMED;
                    err_set(err, "%s.%s is not one line of UTF-8 text (NUL, control or invalid bytes)",
                            d->short_name, f->name);
                    return -EBADMSG;
                }
            } else if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                int rc = wire_check_raw(f->descriptor, p, (size_t)v, depth + 1, code, err);
                if (rc) return rc;
            }
            p += v;
            break;
        }
        default:
            goto malformed;
        }
    }
    return 0;
malformed:
    *code = WIRE_ERR_MALFORMED;
    err_set(err, "not a valid sefl Envelope: bad field encoding in %s", d->short_name);
    return -EBADMSG;
}

/* ---- field checks ----------------------------------------------------- */

static int wire_check_spec(const Sefl__ModelSpec *s, const param_table *t, const char *what,
                           uint32_t *code, char *err)
{
    if (!s) {
        *code = WIRE_ERR_MODEL;
        err_set(err, "%s carries no model spec", what);
        return -EBADMSG;
    }
    if (strcmp(s->arch, t->arch) || s->r != (uint32_t)t->r || !s->fc1_gate != !t->fc1_gate ||
        strcmp(s->se_placement, t->se_placement) || strcmp(s->gate, t->gate) ||
        s->table_hash != t->hash) {
        *code = WIRE_ERR_MODEL;
        err_set(err,
                "model mismatch: peer has %.32s r=%u fc1_gate=%d se_placement='%.32s' gate='%.32s' "
                "table %016llx, this side has %s r=%d fc1_gate=%d se_placement='%s' gate='%s' "
                "table %016llx; run both with the same --arch and options",
                s->arch, s->r, s->fc1_gate ? 1 : 0, s->se_placement, s->gate,
                (unsigned long long)s->table_hash, t->arch, t->r, t->fc1_gate ? 1 : 0,
                t->se_placement, t->gate, (unsigned long long)t->hash);
        return -EBADMSG;
    }
    return 0;
}

/* A number a peer reports or prescribes: finite, >= 0 and at most max. */
static int wire_check_float(float v, float max, const char *what, uint32_t *code, char *err)
{
    if (!isfinite(v) || v < 0 || v > max) {
        *code = WIRE_ERR_MALFORMED;
        err_set(err, "%s is %g, expected a finite value in [0, %g]", what, (double)v, (double)max);
        return -EBADMSG;
    }
    return 0;
}

static int wire_check_count(uint32_t v, uint32_t max, const char *what, uint32_t *code, char *err)
{
    if (v < 1 || v > max) {
        *code = WIRE_ERR_LIMIT;
        err_set(err, "%s is %u, expected 1..%u", what, v, max);
        return -EBADMSG;
    }
    return 0;
}

static int wire_check_groups(const char *s, const char *what, uint32_t *code, char *err)
{
    unsigned mask;
    if (params_parse_private(s, &mask, err)) {
        *code = WIRE_ERR_MALFORMED;
        err_set(err, "%s '%s' is not one of none, se, head, se,head", what, s);
        return -EBADMSG;
    }
    return 0;
}

/* Finds tensor x in the table and checks its shape, encoding and byte
 * length: what must hold before its bytes may be read as the table entry.
 * Returns the entry, or NULL with code and err. */
static const param_info *wire_tensor_layout(const param_table *t, const Sefl__Tensor *x,
                                            uint32_t *code, char *err)
{
    const param_info *p = x->name ? params_find(t, x->name) : NULL;
    *code = WIRE_ERR_TENSOR;
    if (!p) {
        err_set(err, "unknown tensor '%s'", x->name ? x->name : "");
        return NULL;
    }
    if (x->n_shape != (size_t)p->ndim) {
        err_set(err, "tensor %s has %zu dimensions, expected %d", p->name, x->n_shape, p->ndim);
        return NULL;
    }
    for (int i = 0; i < p->ndim; i++) {
        if (x->shape[i] != (uint32_t)p->shape[i]) {
            err_set(err, "tensor %s has size %u in dimension %d, expected %d", p->name, x->shape[i],
                    i, p->shape[i]);
            return NULL;
        }
    }
    size_t want;
    switch (x->encoding) {
    case SEFL__ENCODING__F32: want = p->size * sizeof(float); break;
    case SEFL__ENCODING__F16: want = p->size * 2; break;
    case SEFL__ENCODING__INT8: want = p->size; break;
    default:
        err_set(err, "tensor %s has unknown encoding %d", p->name, (int)x->encoding);
        return NULL;
    }
    if (x->data.len != want) {
        err_set(err, "tensor %s holds %zu bytes, its shape and encoding need %zu", p->name,
                x->data.len, want);
        return NULL;
    }
    if (x->n_scales && (x->encoding != SEFL__ENCODING__INT8 ||
                        x->n_scales != (size_t)p->shape[0] || x->scale != 0.0f)) {
        err_set(err, "tensor %s carries %zu scales, expected none or (int8, scale 0) %d",
                p->name, x->n_scales, p->shape[0]);
        return NULL;
    }
    *code = 0;
    return p;
}

/* An int8 scale: finite, nonzero and small enough that scale * 127 stays
 * finite. */
static int wire_check_scale(const param_info *p, float s, uint32_t *code, char *err)
{
    if (!isfinite(s) || s == 0 || fabsf(s) > FLT_MAX / 128) {
        *code = WIRE_ERR_TENSOR;
        err_set(err, "tensor %s has int8 scale %g, expected finite, nonzero and small enough",
                p->name, (double)s);
        return -EBADMSG;
    }
    return 0;
}

/* Checks the values of a tensor whose layout is right. */
static int wire_tensor_values(const param_info *p, const Sefl__Tensor *x, uint32_t *code, char *err)
{
    if (x->encoding == SEFL__ENCODING__INT8) {
        if (!x->n_scales) return wire_check_scale(p, x->scale, code, err);
        for (size_t i = 0; i < x->n_scales; i++)
            if (wire_check_scale(p, x->scales[i], code, err)) return -EBADMSG;
        return 0;
    }
    if (x->encoding == SEFL__ENCODING__F16) {
        /* Exponent bits all ones is NaN or Inf. */
        for (size_t i = 0; i < p->size; i++) {
            uint16_t bits;
            memcpy(&bits, x->data.data + 2 * i, 2);
            if ((bits & 0x7c00u) == 0x7c00u) {
                *code = WIRE_ERR_TENSOR;
                err_set(err, "tensor %s element %zu is not finite (NaN or Inf)", p->name, i);
                return -EBADMSG;
            }
        }
        return 0;
    }
    /* Exponent bits all ones is NaN or Inf; checked on the bits so that the
     * unaligned bytes are never read as floats. */
    for (size_t i = 0; i < p->size; i++) {
        uint32_t bits;
        memcpy(&bits, x->data.data + 4 * i, 4);
        if ((bits & 0x7f800000u) == 0x7f800000u) {
            *code = WIRE_ERR_TENSOR;
            err_set(err, "tensor %s element %zu is not finite (NaN or Inf)", p->name, i);
            return -EBADMSG;
        }
    }
    return 0;
}

static int wire_check_tensors(const param_table *t, Sefl__Tensor *const *v, size_t n,
                              const char *what, uint32_t *code, char *err)
{
    uint64_t seen = 0;
    for (size_t i = 0; i < n; i++) {
        const param_info *p = wire_tensor_layout(t, v[i], code, err);
        if (!p) return -EBADMSG;
        uint64_t bit = 1ull << (p - t->p);
        if (seen & bit) {
            *code = WIRE_ERR_TENSOR;
            err_set(err, "tensor %s appears twice in %s", p->name, what);
            return -EBADMSG;
        }
        seen |= bit;
        int rc = wire_tensor_values(p, v[i], code, err);
        if (rc) return rc;
    }
    return 0;
}

/* A bytes field that is empty or exactly len bytes long (a host token, a
 * model reference); required: it must not be empty. */
static int wire_check_bytes(const ProtobufCBinaryData *b, size_t len, int required,
                            const char *what, uint32_t *code, char *err)
{
    if (b->len == len || (!required && b->len == 0)) return 0;
    *code = WIRE_ERR_MALFORMED;
    err_set(err, "%s is %zu bytes long, must be %s%zu", what, b->len, required ? "" : "0 or ", len);
    return -EBADMSG;
}

static int wire_check_envelope(const Sefl__Envelope *e, const param_table *t, uint32_t *code,
                               char *err)
{
    int rc = 0;
    if (e->version != WIRE_VERSION) {
        *code = WIRE_ERR_VERSION;
        err_set(err, "protocol version %u, this side speaks version %d", e->version, WIRE_VERSION);
        return -EBADMSG;
    }
    switch (e->msg_case) {
    case SEFL__ENVELOPE__MSG_HELLO:
        /* Printable ASCII only: it goes into server.db and log lines. */
        for (const char *c = e->hello->partition; *c; c++)
            if (*c < 0x20 || *c > 0x7e || c - e->hello->partition >= WIRE_MAX_PARTITION) {
                *code = WIRE_ERR_MALFORMED;
                err_set(err, "Hello.partition is longer than %d bytes or not printable ASCII",
                        WIRE_MAX_PARTITION);
                return -EBADMSG;
            }
        if ((rc = wire_check_bytes(&e->hello->host_token, WIRE_HOST_TOKEN_LEN, 0,
                                   "Hello.host_token", code, err)))
            return rc;
        return wire_check_spec(e->hello->spec, t, "Hello", code, err);
    case SEFL__ENVELOPE__MSG_WELCOME: {
        const Sefl__Welcome *w = e->welcome;
        if ((rc = wire_check_spec(w->spec, t, "Welcome", code, err))) return rc;
        if (!w->client_id[0]) {
            *code = WIRE_ERR_MALFORMED;
            err_set(err, "Welcome.client_id is empty");
            return -EBADMSG;
        }
        return wire_check_groups(w->private_groups, "Welcome.private_groups", code, err);
    }
    case SEFL__ENVELOPE__MSG_TRAIN_TASK: {
        const Sefl__TrainTask *m = e->train_task;
        if ((rc = wire_check_float(m->lr, FLT_MAX, "TrainTask.lr", code, err)) ||
            (rc = wire_check_float(m->momentum, FLT_MAX, "TrainTask.momentum", code, err)) ||
            (rc = wire_check_float(m->weight_decay, FLT_MAX, "TrainTask.weight_decay", code, err)) ||
            (rc = wire_check_float(m->prox_mu, FLT_MAX, "TrainTask.prox_mu", code, err)) ||
            (rc = wire_check_count(m->batch, WIRE_MAX_BATCH, "TrainTask.batch", code, err)) ||
            (rc = wire_check_count(m->epochs, WIRE_MAX_EPOCHS, "TrainTask.epochs", code, err)) ||
            (rc = wire_check_float(m->private_lr, FLT_MAX, "TrainTask.private_lr", code, err)) ||
            (m->private_epochs && (rc = wire_check_count(m->private_epochs, WIRE_MAX_EPOCHS,
                                                          "TrainTask.private_epochs", code, err))) ||
            (rc = wire_check_groups(m->private_groups, "TrainTask.private_groups", code, err)) ||
            (rc = wire_check_bytes(&m->model_ref, WIRE_REF_LEN, 0, "TrainTask.model_ref", code, err)))
            return rc;
        wire_enc ue;
        if (wire_enc_from_encoding(m->update_encoding, m->update_per_channel, &ue) < 0) {
            *code = WIRE_ERR_MALFORMED;
            err_set(err, "TrainTask.update_encoding %d is not a known encoding",
                    (int)m->update_encoding);
            return -EBADMSG;
        }
        return wire_check_tensors(t, m->tensors, m->n_tensors, "TrainTask", code, err);
    }
    case SEFL__ENVELOPE__MSG_UPDATE: {
        const Sefl__Update *m = e->update;
        if ((rc = wire_check_float(m->train_loss, FLT_MAX, "Update.train_loss", code, err)) ||
            (rc = wire_check_float(m->train_accuracy, 1, "Update.train_accuracy", code, err)) ||
            (rc = wire_check_float(m->train_seconds, FLT_MAX, "Update.train_seconds", code, err)))
            return rc;
        return wire_check_tensors(t, m->tensors, m->n_tensors, "Update", code, err);
    }
    case SEFL__ENVELOPE__MSG_EVAL_TASK: {
        const Sefl__EvalTask *m = e->eval_task;
        if ((rc = wire_check_groups(m->private_groups, "EvalTask.private_groups", code, err)) ||
            (rc = wire_check_bytes(&m->model_ref, WIRE_REF_LEN, 0, "EvalTask.model_ref", code, err)))
            return rc;
        return wire_check_tensors(t, m->tensors, m->n_tensors, "EvalTask", code, err);
    }
    case SEFL__ENVELOPE__MSG_EVAL_REPORT: {
        const Sefl__EvalReport *m = e->eval_report;
        if ((rc = wire_check_float(m->accuracy, 1, "EvalReport.accuracy", code, err))) return rc;
        return wire_check_float(m->loss, FLT_MAX, "EvalReport.loss", code, err);
    }
    case SEFL__ENVELOPE__MSG_ERROR:
        if ((e->error->code < WIRE_ERR_MALFORMED || e->error->code > WIRE_ERR_SHUTDOWN) &&
            e->error->code != WIRE_ERR_DIVERGED) {
            *code = WIRE_ERR_MALFORMED;
            err_set(err, "Error.code %u is not a known error code", e->error->code);
            return -EBADMSG;
        }
        return 0;
    case SEFL__ENVELOPE__MSG_MODEL_REQUEST:
        return wire_check_bytes(&e->model_request->model_ref, WIRE_REF_LEN, 1,
                                "ModelRequest.model_ref", code, err);
    case SEFL__ENVELOPE__MSG_HEARTBEAT:
    case SEFL__ENVELOPE__MSG_BYE:
        return 0;
    default:
        /* An unknown field number in the oneof unpacks as an unknown field
         * and leaves the case unset. */
        *code = WIRE_ERR_MALFORMED;
        err_set(err, "the Envelope carries no message this side knows");
        return -EBADMSG;
    }
}

/* ---- decode / encode -------------------------------------------------- */

int wire_decode(const uint8_t *payload, size_t len, const param_table *t, size_t alloc_limit,
                Sefl__Envelope **out, uint32_t *code, char *err)
{
    wire_budget b = { alloc_limit, 0, 0, 0 };
    ProtobufCAllocator a = { wire_budget_alloc, wire_budget_free, &b };
    Sefl__Envelope *e = NULL;
    int rc = -EBADMSG;

    *out = NULL;
    *code = 0;
    if (len == 0) {
        *code = WIRE_ERR_MALFORMED;
        err_set(err, "empty frame");
        goto out;
    }
    e = sefl__envelope__unpack(&a, len, payload);
    if (!e) {
        if (b.oom) {
            rc = -ENOMEM;
            *code = WIRE_ERR_LIMIT;
            err_set(err, "out of memory unpacking a %zu-byte message", len);
        } else if (b.over) {
            *code = WIRE_ERR_LIMIT;
            err_set(err, "a %zu-byte message needs more than %zu bytes to unpack", len, alloc_limit);
        } else {
            *code = WIRE_ERR_MALFORMED;
            err_set(err, "not a valid sefl Envelope (protobuf unpack failed on %zu bytes)", len);
        }
        goto out;
    }
    if ((rc = wire_check_raw(&sefl__envelope__descriptor, payload, len, 0, code, err)))
        goto out;
    if ((rc = wire_check_envelope(e, t, code, err))) goto out;
    *out = e;
    e = NULL;
out:
    wire_free(e);
    return rc;
}

int wire_encode(Sefl__Envelope *e, uint8_t **frame, size_t *len)
{
    e->version = WIRE_VERSION;
    size_t n = sefl__envelope__get_packed_size(e);
    if (n > UINT32_MAX) return -EMSGSIZE;
    uint8_t *b = malloc(FRAME_HEADER + n);
    if (!b) return -ENOMEM;
    frame_put_header(b, (uint32_t)n);
    sefl__envelope__pack(e, b + FRAME_HEADER);
    *frame = b;
    *len = FRAME_HEADER + n;
    return 0;
}

void wire_heartbeat(Sefl__Envelope *e, Sefl__Heartbeat *hb, uint64_t nonce, int reply)
{
    sefl__heartbeat__init(hb);
    hb->nonce = nonce;
    hb->reply = reply != 0;
    sefl__envelope__init(e);
    e->msg_case = SEFL__ENVELOPE__MSG_HEARTBEAT;
    e->heartbeat = hb;
}

int wire_encode_error(uint32_t code, const char *message, uint8_t **frame, size_t *len)
{
    /* The peer refuses a string that is long or not one line of UTF-8, and
     * our messages may quote its bytes or be cut by err_set in the middle of
     * a character: keep whole characters that fit, '?' for the rest. */
    char text[WIRE_MAX_STRING + 1];
    const uint8_t *s = (const uint8_t *)(message ? message : "");
    size_t n = strlen((const char *)s), i = 0, o = 0;
    while (i < n) {
        size_t k = (s[i] < 0x20 || s[i] == 0x7f) ? 0 : wire_utf8_seq(s + i, n - i);
        size_t w = k ? k : 1;
        if (o + w > WIRE_MAX_STRING) break;
        if (k) memcpy(text + o, s + i, k);
        else text[o] = '?';
        o += w;
        i += w;
    }
    text[o] = 0;

    Sefl__Error er = SEFL__ERROR__INIT;
    er.code = code;
    er.message = text;
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    e.msg_case = SEFL__ENVELOPE__MSG_ERROR;
    e.error = &er;
    return wire_encode(&e, frame, len);
}

void wire_spec_from_table(const param_table *t, Sefl__ModelSpec *spec)
{
    sefl__model_spec__init(spec);
    spec->arch = (char *)t->arch;
    spec->r = (uint32_t)t->r;
    spec->fc1_gate = t->fc1_gate ? 1 : 0;
    spec->table_hash = t->hash;
    spec->se_placement = (char *)t->se_placement;
    spec->gate = (char *)t->gate;
}

/* ---- tensor sets ------------------------------------------------------ */

void wire_tensors_release(wire_tensors *w)
{
    if (!w) return;
    free(w->v);
    free(w->t);
    free(w->shapes);
    free(w->data);
    free(w->scales);
    memset(w, 0, sizeof *w);
}

int wire_tensors_build(const param_table *t, param_sel sel, const float *buf, wire_tensors *out)
{
    size_t n = 0;
    memset(out, 0, sizeof *out);
    for (int j = 0; j < t->n; j++) n += params_selected(&t->p[j], sel) ? 1 : 0;
    /* One element at least, so that an empty selection is not mistaken for
     * a failed allocation. */
    size_t cap = n ? n : 1;
    out->v = calloc(cap, sizeof *out->v);
    out->t = calloc(cap, sizeof *out->t);
    out->shapes = calloc(cap * PARAM_MAX_DIMS, sizeof *out->shapes);
    if (!out->v || !out->t || !out->shapes) {
        wire_tensors_release(out);
        return -ENOMEM;
    }
    for (int j = 0; j < t->n; j++) {
        const param_info *p = &t->p[j];
        if (!params_selected(p, sel)) continue;
        Sefl__Tensor *x = &out->t[out->n];
        sefl__tensor__init(x);
        /* The packer only reads these: names and data stay where they are. */
        x->name = (char *)p->name;
        x->n_shape = (size_t)p->ndim;
        x->shape = out->shapes + out->n * PARAM_MAX_DIMS;
        for (int i = 0; i < p->ndim; i++) x->shape[i] = (uint32_t)p->shape[i];
        x->encoding = SEFL__ENCODING__F32;
        x->data.len = p->size * sizeof(float);
        x->data.data = (uint8_t *)(buf + p->offset);
        out->v[out->n++] = x;
    }
    return 0;
}

int wire_tensors_apply(const param_table *t, param_sel sel, Sefl__Tensor *const *ts, size_t n,
                       float *buf, char *err)
{
    return wire_tensors_apply_delta(t, sel, ts, n, NULL, buf, err);
}

int wire_tensors_apply_delta(const param_table *t, param_sel sel, Sefl__Tensor *const *ts,
                             size_t n, const float *base, float *buf, char *err)
{
    const param_info *ps[PARAM_MAX_TENSORS];   /* (n) table entry of ts[i] */
    uint64_t seen = 0;
    size_t want = 0;
    uint32_t code;
    for (int j = 0; j < t->n; j++) want += params_selected(&t->p[j], sel) ? 1 : 0;
    if (n != want) {
        err_set(err, "expected %zu tensors, got %zu", want, n);
        return -EINVAL;
    }
    /* Everything is checked before the first byte is written, so that a bad
     * set leaves buf as it was. n distinct selected tensors out of n
     * selected ones is exactly the selected set. */
    for (size_t i = 0; i < n; i++) {
        const param_info *p = wire_tensor_layout(t, ts[i], &code, err);
        if (!p) return -EINVAL;
        if (!params_selected(p, sel)) {
            err_set(err, "tensor %s is not in the expected set", p->name);
            return -EINVAL;
        }
        uint64_t bit = 1ull << (p - t->p);
        if (seen & bit) {
            err_set(err, "tensor %s appears twice", p->name);
            return -EINVAL;
        }
        seen |= bit;
        ps[i] = p;
    }
    for (size_t i = 0; i < n; i++)
        wire_tensor_decode(ps[i], ts[i], base ? base + ps[i]->offset : NULL, buf + ps[i]->offset);
    return 0;
}
