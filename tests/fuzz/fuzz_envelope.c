/* fuzz_envelope: wire_decode and wire_tensors_apply on arbitrary payloads.
 *
 * The table is cnn-se with r = 8 and no fc1 gate: its private (se) set is
 * small enough (about 1.4k floats) that seeds carrying exactly that set fit
 * in a few kilobytes, so the fuzzer reaches the copy path of apply and not
 * only its refusals. Properties checked on every input:
 * - a refusal has a WIRE_ERR_* code and one non-empty line;
 * - an accepted message re-encodes into bytes that are accepted again and
 *   re-encode identically (validation does not depend on the encoding);
 * - apply either fills the model buffer with finite values or leaves it
 *   untouched.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/nn/params.h"
#include "common/fl/wire.h"

static param_table T;
static float *buf;              /* (T.total) */
static float *orig;             /* (T.total) what buf held before apply */

static void fuzz_init(void)
{
    char err[SEFL_ERRLEN];
    if (params_build(&T, &(model_opts){ .arch = "cnn-se", .r = 8, .fc1_gate = 0 }, err)) abort();
    buf = malloc(T.total * sizeof *buf);
    orig = malloc(T.total * sizeof *orig);
    if (!buf || !orig) abort();
    for (size_t i = 0; i < T.total; i++) orig[i] = (float)i;
}

static void fuzz_apply(Sefl__Tensor *const *ts, size_t n, param_sel sel)
{
    char err[SEFL_ERRLEN];
    memcpy(buf, orig, T.total * sizeof *buf);
    int rc = wire_tensors_apply(&T, sel, ts, n, buf, err);
    if (rc == 0) {
        for (size_t i = 0; i < T.total; i++)
            if (!isfinite(buf[i])) abort();
    } else if (rc != -EINVAL || memcmp(buf, orig, T.total * sizeof *buf) || !err[0]) {
        abort();
    }
}

static Sefl__Envelope *fuzz_decode(const uint8_t *p, size_t n, size_t limit)
{
    Sefl__Envelope *e = NULL;
    uint32_t code = 0;
    char err[SEFL_ERRLEN] = "";
    int rc = wire_decode(p, n, &T, limit, &e, &code, err);
    if (rc) {
        if (e || code < WIRE_ERR_MALFORMED || code > WIRE_ERR_SHUTDOWN || !err[0] || strchr(err, '\n'))
            abort();
        return NULL;
    }
    if (!e) abort();
    return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!buf) fuzz_init();
    Sefl__Envelope *e = fuzz_decode(data, size, wire_alloc_limit(size));
    if (!e) return 0;

    Sefl__Tensor **ts = NULL;
    size_t n = 0;
    switch (e->msg_case) {
    case SEFL__ENVELOPE__MSG_TRAIN_TASK: ts = e->train_task->tensors; n = e->train_task->n_tensors; break;
    case SEFL__ENVELOPE__MSG_UPDATE: ts = e->update->tensors; n = e->update->n_tensors; break;
    case SEFL__ENVELOPE__MSG_EVAL_TASK: ts = e->eval_task->tensors; n = e->eval_task->n_tensors; break;
    default: break;
    }
    fuzz_apply(ts, n, params_group(PARAM_SE));
    fuzz_apply(ts, n, params_group(PARAM_HEAD));
    fuzz_apply(ts, n, params_shared(PARAM_SE));

    /* Re-encoded, the message must pass again, with room to unpack: the
     * first encoding may have been longer (repeated fields) or shorter. */
    uint8_t *f1 = NULL, *f2 = NULL;
    size_t l1, l2;
    if (wire_encode(e, &f1, &l1)) abort();
    Sefl__Envelope *e2 = fuzz_decode(f1 + FRAME_HEADER, l1 - FRAME_HEADER, 2 * wire_alloc_limit(size + l1));
    if (!e2) abort();
    if (wire_encode(e2, &f2, &l2) || l1 != l2 || memcmp(f1, f2, l1)) abort();
    free(f1);
    free(f2);
    wire_free(e2);
    wire_free(e);
    return 0;
}
