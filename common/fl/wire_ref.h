/* wire_ref: model references, so that a model crosses the wire once per
 * client process instead of once per connection (proto/PROTOCOL.md,
 * "Model references").
 *
 * A client process draws a host token once (WIRE_HOST_TOKEN_LEN random
 * bytes from the OS's CSPRNG) and sends it in the Hello of every
 * connection it opens. The coordinator labels each task frame it sends in
 * full with the model's reference, the SHA-256 of the shared tensors as
 * encoded (wire_model_ref), and sends the other connections of the same
 * token a task with that reference and no tensors. The process resolves it
 * from the model it already decoded, or asks for it (ModelRequest).
 *
 * The reference covers every byte a decoder reads (names, shapes, encoding,
 * scales, data), so two frames with one reference decode to the same model,
 * and a model sent in another encoding has another reference.
 */
#ifndef SEFL_WIRE_REF_H
#define SEFL_WIRE_REF_H

#include <stddef.h>
#include <stdint.h>

#include "proto/fl.pb-c.h"

#define WIRE_HOST_TOKEN_LEN 16       /* Hello.host_token: 128 random bits, or empty */
#define WIRE_REF_LEN 32              /* model_ref: a SHA-256 */

/* The reference of tensors ts[0..n) in this order: SHA-256 over, for each
 * tensor, its name with a terminating NUL, then as 4-byte little-endian
 * unsigned integers the number of dimensions, each dimension, the encoding
 * and the number of per-channel scales, then the bytes of scale and of each
 * per-channel scale (IEEE-754 float32, little-endian), then the data's
 * length as an 8-byte little-endian unsigned integer and the data. Returns
 * 0, or -EIO when the hash library fails. */
int wire_model_ref(Sefl__Tensor *const *ts, size_t n, uint8_t out[WIRE_REF_LEN]);

/* A host token from the OS's CSPRNG (getrandom). Returns 0 or a negative
 * errno (no entropy source). */
int wire_host_token(uint8_t out[WIRE_HOST_TOKEN_LEN]);

/* Writes the first 8 bytes of ref as 16 lowercase hex digits and a NUL, for
 * log lines (buf of at least 17 bytes); returns buf. */
const char *wire_ref_short(const uint8_t *ref, char *buf);

#endif
