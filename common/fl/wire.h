/* wire: sefl's protobuf messages on the wire (proto/fl.proto).
 *
 * A frame is a 4-byte big-endian length, then one packed Envelope. conn.c
 * cuts the byte stream into frames (checking the length against its limit
 * before allocating); this module turns a frame's payload into a validated
 * Envelope and back. Decoding uses a bounded allocator and checks every
 * field before the message reaches anyone: protocol version, a known oneof,
 * model spec, tensor names and shapes against the parameter table, element
 * counts against byte lengths, finite floats. Nothing is trusted because it
 * parsed.
 */
#ifndef SEFL_WIRE_H
#define SEFL_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "common/net/frame.h"
#include "proto/fl.pb-c.h"
#include "common/nn/params.h"

#define WIRE_VERSION 1
#define WIRE_MAX_STRING 256                   /* any string field */
#define WIRE_MAX_BATCH 65536                  /* TrainTask.batch: 1..this */
#define WIRE_MAX_EPOCHS 1000                  /* TrainTask.epochs: 1..this */
#define WIRE_MAX_PARTITION 127               /* Hello.partition: printable ASCII that fits
                                                a run setting (settings.h) */
#define WIRE_ALLOC_SLACK (16u << 10)          /* see wire_alloc_limit */

/* Error codes carried in Error.code. */
enum {
    WIRE_ERR_MALFORMED = 1,     /* not a valid Envelope / unknown message */
    WIRE_ERR_VERSION = 2,       /* protocol version mismatch */
    WIRE_ERR_MODEL = 3,         /* model spec mismatch */
    WIRE_ERR_TENSOR = 4,        /* tensor name/shape/size/value invalid */
    WIRE_ERR_PROTOCOL = 5,      /* a message not allowed in this state */
    WIRE_ERR_REJECTED = 6,      /* valid but refused (stale round, duplicate, ...) */
    WIRE_ERR_LIMIT = 7,         /* a frame or a field over its limit */
    WIRE_ERR_SHUTDOWN = 8,
    /* A client's local training gave a NaN or infinite loss or parameter:
     * it sends this instead of an Update and stays connected. */
    WIRE_ERR_DIVERGED = 40,
};

/* Decodes and validates one frame payload (without the length prefix).
 * The table t gives the tensor names and shapes that may appear; spec fields
 * are checked against t. alloc_limit bounds the bytes the unpacker may
 * allocate (wire_alloc_limit(len) is enough for our messages). On success
 * *out is the Envelope (free with wire_free). On failure returns a negative
 * error, writes one line into err and sets *code to a WIRE_ERR_* code for the
 * Error reply. */
int wire_decode(const uint8_t *payload, size_t len, const param_table *t,
                size_t alloc_limit, Sefl__Envelope **out, uint32_t *code, char *err);
void wire_free(Sefl__Envelope *e);            /* accepts NULL */

/* An alloc_limit for wire_decode that every valid message of payload_len
 * bytes fits in: 2 * payload_len + WIRE_ALLOC_SLACK (small messages unpack
 * into structs larger than their bytes). */
size_t wire_alloc_limit(size_t payload_len);

/* Packs e (its version is set to WIRE_VERSION) into a new buffer with the
 * 4-byte length prefix: *frame (malloc'd, caller frees), *len bytes in all.
 * Returns 0, -ENOMEM, or -EMSGSIZE when the payload exceeds 4 GiB - 1. */
int wire_encode(Sefl__Envelope *e, uint8_t **frame, size_t *len);

/* Fills spec with the model spec of t (strings point into t). */
void wire_spec_from_table(const param_table *t, Sefl__ModelSpec *spec);

/* Tensor set for a message: the selected tensors of buf as f32 tensors.
 * wire_tensors_build allocates ts (n tensors, each pointing into buf for its
 * data, so buf must outlive the message); free with wire_tensors_release
 * (which frees the arrays but not buf). Returns 0 or -ENOMEM. Other
 * encodings: wire_tensors_encode (wire_enc.h). */
typedef struct {
    Sefl__Tensor **v;           /* (n) pointers, as the Envelope wants them */
    Sefl__Tensor *t;            /* (n) storage */
    uint32_t *shapes;           /* (n * PARAM_MAX_DIMS) */
    size_t n;
    uint8_t *data;              /* encoded tensor bytes when not pointing into buf, or NULL */
    float *scales;              /* int8 per-channel scales, or NULL */
} wire_tensors;
int wire_tensors_build(const param_table *t, param_sel sel, const float *buf, wire_tensors *out);
void wire_tensors_release(wire_tensors *w);

/* Copies tensors ts[0..n) (already validated by wire_decode) into the model
 * buffer buf. The set must be exactly the tensors selected by sel, each once;
 * otherwise returns -EINVAL with err and buf is untouched. F16 and INT8
 * tensors are decoded (wire_enc.h). */
int wire_tensors_apply(const param_table *t, param_sel sel, Sefl__Tensor *const *ts, size_t n,
                       float *buf, char *err);

/* The same for tensors that are differences (Update.delta): each selected
 * tensor of buf becomes the base's (a table.total buffer) plus the decoded
 * value. The sum is not checked for finiteness here (agg_add does). */
int wire_tensors_apply_delta(const param_table *t, param_sel sel, Sefl__Tensor *const *ts,
                             size_t n, const float *base, float *buf, char *err);

/* Fills e and hb (both caller-owned, typically on the stack) as a Heartbeat
 * envelope: a ping (reply 0) or the answer to one (reply 1, the ping's
 * nonce). The coordinator, the client session and the tests all build
 * heartbeats this way. */
void wire_heartbeat(Sefl__Envelope *e, Sefl__Heartbeat *hb, uint64_t nonce, int reply);

/* Builds and encodes an Error envelope (code, message) into *frame. */
int wire_encode_error(uint32_t code, const char *message, uint8_t **frame, size_t *len);

#endif
