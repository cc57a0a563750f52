/* wire_enc: how tensors are encoded on the wire (f32, f16, int8) and the
 * conversions both ways.
 *
 * The coordinator chooses one encoding for what it sends (--wire-dtype: the
 * global model in TrainTask and EvalTask) and one for what clients send
 * back (--update-dtype, carried in each TrainTask). int8 carries one scale
 * per tensor or one per channel (row of dimension 0; one-dimensional
 * tensors always use one scale). f16 and int8 updates carry the difference
 * between the trained tensors and the task's tensors as the client decoded
 * them (Update.delta), which is small and so loses far less to rounding
 * than the weights themselves; int8 updates are rounded stochastically
 * (unbiased: E[decoded] = the exact difference), so the rounding errors of
 * many clients average out instead of adding up. The global model is
 * rounded to nearest.
 *
 * A tensor the chosen encoding cannot carry faithfully (an f16 value past
 * 65504, or a non-finite value) goes as f32 instead, so no value is ever
 * clipped; the decoder accepts any valid encoding per tensor.
 */
#ifndef SEFL_WIRE_ENC_H
#define SEFL_WIRE_ENC_H

#include <stdint.h>

#include "common/fl/wire.h"
#include "common/nn/params.h"

typedef enum { WIRE_F32 = 0, WIRE_F16 = 1, WIRE_INT8 = 2 } wire_dtype;

typedef struct {
    wire_dtype dtype;
    int per_channel;            /* int8: one scale per row of dimension 0 */
} wire_enc;

/* Parses "f32", "f16" or "int8" (per_channel as given). Returns 0 or
 * -EINVAL with one line in err naming flag. */
int wire_enc_parse(const char *flag, const char *s, int per_channel, wire_enc *out, char *err);

/* "f32", "f16", "int8/channel" or "int8/tensor": the name server.db records. */
const char *wire_enc_name(wire_enc e);

/* The Encoding field value of e. */
Sefl__Encoding wire_enc_encoding(wire_enc e);

/* The wire_enc of an Encoding (TrainTask.update_encoding); -EINVAL for an
 * unknown value. */
int wire_enc_from_encoding(Sefl__Encoding x, int per_channel, wire_enc *out);

/* Tensor set of the selected tensors of buf encoded as e: the values
 * buf - base when base is not NULL (a delta), else buf. Rounding: to
 * nearest when seed is 0, else stochastic from seed. F32 without a base
 * points into buf (as wire_tensors_build); anything else is held in out
 * and freed by wire_tensors_release. Returns 0 or -ENOMEM. */
int wire_tensors_encode(const param_table *t, param_sel sel, const float *buf, const float *base,
                        wire_enc e, uint64_t seed, wire_tensors *out);

/* Writes the p->size values of tensor x (validated by wire_decode: layout,
 * scales and finite values checked) into dst, adding base[k] to each when
 * base is not NULL. */
void wire_tensor_decode(const param_info *p, const Sefl__Tensor *x, const float *base, float *dst);

/* Bytes of one IEEE binary16 from a float (round to nearest even; past the
 * f16 range: infinity) and back. */
uint16_t wire_f16_from_float(float f);
float wire_f16_to_float(uint16_t h);

#endif
