/* check_wire: every message type survives encode/decode, and every way a
 * payload can be wrong is refused with its WIRE_ERR_* code and one line,
 * before the message reaches anyone. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/net/frame.h"
#include "common/log.h"
#include "common/nn/params.h"
#include "common/rng.h"
#include "common/fl/wire.h"
#include "common/fl/wire_enc.h"
#include "tests/check_main.h"
#include "tests/check_params_fixture.h"

static param_table T;           /* cnn-se, r = 8, with the fc1 gate */
static float *M;                /* (T.total) a model buffer with distinct values */

static void setup(void)
{
    M = check_params_normal(&T);
}

static void teardown(void)
{
    free(M);
    M = NULL;
}

/* ---- helpers ---------------------------------------------------------- */

/* A payload without the prefix, as frame_reader delivers it. */
typedef struct {
    uint8_t *frame;
    size_t len;
} packed;

static const uint8_t *pl(const packed *p) { return p->frame + FRAME_HEADER; }
static size_t pl_len(const packed *p) { return p->len - FRAME_HEADER; }

static packed enc(Sefl__Envelope *e)
{
    packed p;
    ck_assert_int_eq(wire_encode(e, &p.frame, &p.len), 0);
    ck_assert_uint_gt(p.len, FRAME_HEADER);
    /* The prefix is the payload length, big-endian. */
    size_t n = (size_t)p.frame[0] << 24 | (size_t)p.frame[1] << 16 | (size_t)p.frame[2] << 8 | p.frame[3];
    ck_assert_uint_eq(n, p.len - FRAME_HEADER);
    return p;
}

/* Packs without wire_encode, which would set the version. */
static packed enc_raw(const Sefl__Envelope *e)
{
    packed p;
    size_t n = sefl__envelope__get_packed_size(e);
    p.frame = malloc(FRAME_HEADER + n);
    ck_assert_ptr_nonnull(p.frame);
    frame_put_header(p.frame, (uint32_t)n);
    sefl__envelope__pack(e, p.frame + FRAME_HEADER);
    p.len = FRAME_HEADER + n;
    return p;
}

static Sefl__Envelope *dec_ok(const packed *p)
{
    Sefl__Envelope *e = NULL;
    uint32_t code = 99;
    char err[SEFL_ERRLEN] = "";
    int rc = wire_decode(pl(p), pl_len(p), &T, wire_alloc_limit(pl_len(p)), &e, &code, err);
    ck_assert_msg(rc == 0, "decode failed: %s", err);
    ck_assert_ptr_nonnull(e);
    return e;
}

/* Decodes bytes that must be refused; returns the code and checks that the
 * error is one non-empty line and that nothing came out. */
static uint32_t dec_bytes_fail(const uint8_t *b, size_t n, size_t alloc_limit, char *err)
{
    Sefl__Envelope *e = (Sefl__Envelope *)&e;   /* must be reset to NULL */
    uint32_t code = 0;
    err[0] = 0;
    int rc = wire_decode(b, n, &T, alloc_limit, &e, &code, err);
    ck_assert_int_lt(rc, 0);
    ck_assert_ptr_null(e);
    ck_assert_uint_ne(code, 0);
    ck_assert_uint_gt(strlen(err), 0);
    ck_assert_ptr_null(strchr(err, '\n'));
    return code;
}

/* Encodes e (version set) and expects refusal with code; frees the frame. */
static void expect_fail(Sefl__Envelope *e, uint32_t code, const char *needle)
{
    char err[SEFL_ERRLEN];
    packed p = enc(e);
    uint32_t got = dec_bytes_fail(pl(&p), pl_len(&p), wire_alloc_limit(pl_len(&p)), err);
    ck_assert_msg(got == code, "code %u, expected %u (%s)", got, code, err);
    ck_assert_msg(strstr(err, needle), "error '%s' does not mention '%s'", err, needle);
    free(p.frame);
}

static Sefl__Envelope envelope(Sefl__Envelope__MsgCase c, void *m)
{
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    e.msg_case = c;
    e.hello = m;   /* a union: any member */
    return e;
}

/* An Update carrying tensors v[0..n). */
static Sefl__Envelope update_with(Sefl__Update *u, Sefl__Tensor **v, size_t n)
{
    sefl__update__init(u);
    u->round = 3;
    u->examples = 100;
    u->n_tensors = n;
    u->tensors = v;
    return envelope(SEFL__ENVELOPE__MSG_UPDATE, u);
}

/* A copy of one table tensor as F32 into x (data points into M). */
static void tensor_of(Sefl__Tensor *x, uint32_t *shape, const char *name)
{
    const param_info *p = params_find(&T, name);
    ck_assert_ptr_nonnull(p);
    sefl__tensor__init(x);
    x->name = (char *)p->name;
    x->n_shape = (size_t)p->ndim;
    x->shape = shape;
    for (int i = 0; i < p->ndim; i++) shape[i] = (uint32_t)p->shape[i];
    x->encoding = SEFL__ENCODING__F32;
    x->data.len = p->size * 4;
    x->data.data = (uint8_t *)(M + p->offset);
}

/* ---- round trips ------------------------------------------------------ */

START_TEST(test_hello_welcome)
{
    Sefl__ModelSpec spec;
    wire_spec_from_table(&T, &spec);
    ck_assert_str_eq(spec.arch, "cnn-se");
    ck_assert_uint_eq(spec.table_hash, T.hash);

    Sefl__Hello h = SEFL__HELLO__INIT;
    h.spec = &spec;
    h.train_examples = 1234;
    h.test_examples = 411;
    h.software = "sefl 0.1";
    Sefl__Envelope e = envelope(SEFL__ENVELOPE__MSG_HELLO, &h);
    packed p = enc(&e);
    Sefl__Envelope *d = dec_ok(&p);
    ck_assert_uint_eq(d->version, WIRE_VERSION);
    ck_assert_int_eq(d->msg_case, SEFL__ENVELOPE__MSG_HELLO);
    ck_assert_uint_eq(d->hello->train_examples, 1234);
    ck_assert_uint_eq(d->hello->test_examples, 411);
    ck_assert_str_eq(d->hello->software, "sefl 0.1");
    ck_assert_uint_eq(d->hello->spec->r, 8);
    ck_assert(d->hello->spec->fc1_gate);
    ck_assert_str_eq(d->hello->partition, "");
    wire_free(d);
    free(p.frame);

    /* Hello.partition: printable ASCII up to WIRE_MAX_PARTITION bytes */
    char part[WIRE_MAX_PARTITION + 2], err[SEFL_ERRLEN];
    memset(part, 'p', sizeof part);
    part[WIRE_MAX_PARTITION] = 0;
    h.partition = part;
    p = enc(&e);
    d = dec_ok(&p);
    ck_assert_str_eq(d->hello->partition, part);
    wire_free(d);
    free(p.frame);
    part[WIRE_MAX_PARTITION] = 'p';
    part[WIRE_MAX_PARTITION + 1] = 0;
    p = enc_raw(&e);
    ck_assert_uint_eq(dec_bytes_fail(pl(&p), pl_len(&p), 1 << 16, err), WIRE_ERR_MALFORMED);
    ck_assert_ptr_nonnull(strstr(err, "Hello.partition"));
    free(p.frame);
    h.partition = "dir:0.3 clients=10\nseed=1";
    p = enc_raw(&e);
    ck_assert_uint_eq(dec_bytes_fail(pl(&p), pl_len(&p), 1 << 16, err), WIRE_ERR_MALFORMED);
    free(p.frame);
    h.partition = "";

    Sefl__Welcome w = SEFL__WELCOME__INIT;
    w.spec = &spec;
    w.client_id = "client-0007";
    w.round = 12;
    w.private_groups = "se,head";
    w.heartbeat_seconds = 5;
    w.init_seed = 0x123456789abcdefull;
    e = envelope(SEFL__ENVELOPE__MSG_WELCOME, &w);
    p = enc(&e);
    d = dec_ok(&p);
    ck_assert_str_eq(d->welcome->client_id, "client-0007");
    ck_assert_uint_eq(d->welcome->round, 12);
    ck_assert_str_eq(d->welcome->private_groups, "se,head");
    ck_assert_uint_eq(d->welcome->heartbeat_seconds, 5);
    ck_assert_uint_eq(d->welcome->init_seed, 0x123456789abcdefull);
    wire_free(d);
    free(p.frame);
}
END_TEST

/* TrainTask, Update and EvalTask with the shared set of the model: the
 * tensors applied to a fresh buffer reproduce exactly the sender's. */
START_TEST(test_tensor_messages)
{
    param_sel shared = params_shared(PARAM_SE);
    wire_tensors ts;
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(wire_tensors_build(&T, shared, M, &ts), 0);
    ck_assert_uint_eq(ts.n, 8);   /* conv1, conv2, fc1, fc: weight and bias */

    Sefl__TrainTask tt = SEFL__TRAIN_TASK__INIT;
    tt.round = 4;
    tt.tensors = ts.v;
    tt.n_tensors = ts.n;
    tt.lr = 0.05f;
    tt.momentum = 0.9f;
    tt.weight_decay = 1e-4f;
    tt.prox_mu = 0;
    tt.batch = 32;
    tt.epochs = 2;
    tt.seed = 99;
    tt.private_groups = "se";
    tt.private_epochs = 3;
    tt.private_lr = 0.02f;
    Sefl__Update up = SEFL__UPDATE__INIT;
    up.round = 4;
    up.examples = 600;
    up.tensors = ts.v;
    up.n_tensors = ts.n;
    up.train_loss = 0.7f;
    up.train_accuracy = 0.8f;
    up.train_seconds = 3.5f;
    Sefl__EvalTask et = SEFL__EVAL_TASK__INIT;
    et.round = 4;
    et.tensors = ts.v;
    et.n_tensors = ts.n;
    et.private_groups = "se";
    Sefl__Envelope es[3] = {
        envelope(SEFL__ENVELOPE__MSG_TRAIN_TASK, &tt),
        envelope(SEFL__ENVELOPE__MSG_UPDATE, &up),
        envelope(SEFL__ENVELOPE__MSG_EVAL_TASK, &et),
    };
    float *got = calloc(T.total, sizeof *got);
    ck_assert_ptr_nonnull(got);
    for (int k = 0; k < 3; k++) {
        packed p = enc(&es[k]);
        Sefl__Envelope *d = dec_ok(&p);
        ck_assert_int_eq(d->msg_case, es[k].msg_case);
        Sefl__Tensor **v;
        size_t n;
        switch (d->msg_case) {
        case SEFL__ENVELOPE__MSG_TRAIN_TASK:
            ck_assert_uint_eq(d->train_task->batch, 32);
            ck_assert_uint_eq(d->train_task->epochs, 2);
            ck_assert_uint_eq(d->train_task->seed, 99);
            ck_assert_float_eq(d->train_task->momentum, 0.9f);
            ck_assert_str_eq(d->train_task->private_groups, "se");
            ck_assert_uint_eq(d->train_task->private_epochs, 3);
            ck_assert_float_eq(d->train_task->private_lr, 0.02f);
            v = d->train_task->tensors;
            n = d->train_task->n_tensors;
            break;
        case SEFL__ENVELOPE__MSG_UPDATE:
            ck_assert_uint_eq(d->update->examples, 600);
            ck_assert_float_eq(d->update->train_seconds, 3.5f);
            v = d->update->tensors;
            n = d->update->n_tensors;
            break;
        default:
            ck_assert_uint_eq(d->eval_task->round, 4);
            v = d->eval_task->tensors;
            n = d->eval_task->n_tensors;
            break;
        }
        memset(got, 0, T.total * sizeof *got);
        ck_assert_int_eq(wire_tensors_apply(&T, shared, v, n, got, err), 0);
        size_t bad = 0;
        for (int j = 0; j < T.n; j++) {
            const param_info *pi = &T.p[j];
            int sel = params_selected(pi, shared);
            for (size_t i = 0; i < pi->size; i++)
                bad += got[pi->offset + i] != (sel ? M[pi->offset + i] : 0.0f);
        }
        ck_assert_uint_eq(bad, 0);
        wire_free(d);
        free(p.frame);
    }
    free(got);
    wire_tensors_release(&ts);
    ck_assert_ptr_null(ts.v);
}
END_TEST

START_TEST(test_small_messages)
{
    Sefl__EvalReport r = SEFL__EVAL_REPORT__INIT;
    r.round = 9;
    r.examples = 250;
    r.accuracy = 0.96f;
    r.loss = 0.11f;
    Sefl__Envelope e = envelope(SEFL__ENVELOPE__MSG_EVAL_REPORT, &r);
    packed p = enc(&e);
    Sefl__Envelope *d = dec_ok(&p);
    ck_assert_uint_eq(d->eval_report->round, 9);
    ck_assert_uint_eq(d->eval_report->examples, 250);
    ck_assert_float_eq(d->eval_report->accuracy, 0.96f);
    ck_assert_float_eq(d->eval_report->loss, 0.11f);
    wire_free(d);
    free(p.frame);

    Sefl__Heartbeat hb = SEFL__HEARTBEAT__INIT;
    hb.nonce = 0xfeedfacecafebeefull;
    hb.reply = 1;
    e = envelope(SEFL__ENVELOPE__MSG_HEARTBEAT, &hb);
    p = enc(&e);
    d = dec_ok(&p);
    ck_assert_uint_eq(d->heartbeat->nonce, 0xfeedfacecafebeefull);
    ck_assert(d->heartbeat->reply);
    wire_free(d);
    free(p.frame);

    Sefl__Bye b = SEFL__BYE__INIT;
    b.reason = "done";
    e = envelope(SEFL__ENVELOPE__MSG_BYE, &b);
    p = enc(&e);
    d = dec_ok(&p);
    ck_assert_str_eq(d->bye->reason, "done");
    wire_free(d);
    free(p.frame);

    /* Error, through wire_encode_error. */
    ck_assert_int_eq(wire_encode_error(WIRE_ERR_REJECTED, "stale round 3", &p.frame, &p.len), 0);
    d = dec_ok(&p);
    ck_assert_int_eq(d->msg_case, SEFL__ENVELOPE__MSG_ERROR);
    ck_assert_uint_eq(d->error->code, WIRE_ERR_REJECTED);
    ck_assert_str_eq(d->error->message, "stale round 3");
    wire_free(d);
    free(p.frame);
}
END_TEST

/* wire_encode_error makes a message the peer accepts out of any text: cut
 * to WIRE_MAX_STRING on a character boundary, control and invalid bytes
 * replaced. */
START_TEST(test_encode_error_sanitises)
{
    char msg[600];
    memset(msg, 'x', sizeof msg);
    memcpy(msg + 253, "\xc3\xa9\xc3\xa9", 4);   /* "éé" across the limit */
    msg[sizeof msg - 1] = 0;
    packed p;
    ck_assert_int_eq(wire_encode_error(WIRE_ERR_TENSOR, msg, &p.frame, &p.len), 0);
    Sefl__Envelope *d = dec_ok(&p);
    ck_assert_uint_eq(strlen(d->error->message), 255);   /* 253 x + one 2-byte é */
    wire_free(d);
    free(p.frame);

    ck_assert_int_eq(wire_encode_error(WIRE_ERR_TENSOR, "a\nb\xff" "c", &p.frame, &p.len), 0);
    d = dec_ok(&p);
    ck_assert_str_eq(d->error->message, "a?b?c");
    wire_free(d);
    free(p.frame);

    ck_assert_int_eq(wire_encode_error(WIRE_ERR_SHUTDOWN, NULL, &p.frame, &p.len), 0);
    d = dec_ok(&p);
    ck_assert_str_eq(d->error->message, "");
    wire_free(d);
    free(p.frame);
}
END_TEST

/* A 3 MiB tensor (768 x 1024 floats) in a table of its own, through the
 * frame reader and the decoder. */
static Sefl__Envelope *big_decoded;

static int big_cb(void *arg, const uint8_t *payload, size_t len)
{
    const param_table *t = arg;
    uint32_t code;
    char err[SEFL_ERRLEN];
    int rc = wire_decode(payload, len, t, wire_alloc_limit(len), &big_decoded, &code, err);
    ck_assert_msg(rc == 0, "%s", err);
    return 0;
}

START_TEST(test_3mb_tensor)
{
    static param_table t;
    memset(&t, 0, sizeof t);
    strcpy(t.arch, "test");
    t.n = 1;
    strcpy(t.p[0].name, "big.weight");
    t.p[0].ndim = 2;
    t.p[0].shape[0] = 768;
    t.p[0].shape[1] = 1024;
    t.p[0].groups = PARAM_BACKBONE;
    t.p[0].size = 768 * 1024;
    t.total = t.p[0].size;
    float *src = malloc(t.total * sizeof *src);   /* (768, 1024) */
    float *dst = calloc(t.total, sizeof *dst);    /* (768, 1024) */
    ck_assert(src && dst);
    for (size_t i = 0; i < t.total; i++) src[i] = (float)i * 0.25f - 1000.0f;

    wire_tensors ts;
    ck_assert_int_eq(wire_tensors_build(&t, params_group(PARAM_BACKBONE), src, &ts), 0);
    Sefl__Update u;
    Sefl__Envelope e = update_with(&u, ts.v, ts.n);
    packed p = enc(&e);
    ck_assert_uint_gt(p.len, 3u << 20);

    frame_reader r;
    frame_reader_init(&r, FRAME_MAX_DEFAULT);
    rng g;
    rng_seed(&g, 3);
    for (size_t i = 0; i < p.len;) {
        size_t k = 1 + (size_t)rng_below(&g, 16384);
        if (k > p.len - i) k = p.len - i;
        ck_assert_int_eq(frame_reader_feed(&r, p.frame + i, k, big_cb, &t), 0);
        i += k;
    }
    frame_reader_free(&r);
    ck_assert_ptr_nonnull(big_decoded);
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(wire_tensors_apply(&t, params_group(PARAM_BACKBONE), big_decoded->update->tensors,
                                        big_decoded->update->n_tensors, dst, err), 0);
    ck_assert_int_eq(memcmp(src, dst, t.total * sizeof *src), 0);
    wire_free(big_decoded);
    big_decoded = NULL;
    wire_tensors_release(&ts);
    free(p.frame);
    free(src);
    free(dst);
}
END_TEST

/* wire_alloc_limit is enough for the largest message (every tensor) and
 * for the smallest (whose structs outweigh its bytes). */
START_TEST(test_alloc_limit_enough)
{
    wire_tensors ts;
    ck_assert_int_eq(wire_tensors_build(&T, params_group(PARAM_ALL), M, &ts), 0);
    ck_assert_uint_eq(ts.n, (size_t)T.n);
    Sefl__Update u;
    Sefl__Envelope e = update_with(&u, ts.v, ts.n);
    packed p = enc(&e);
    Sefl__Envelope *d = dec_ok(&p);
    wire_free(d);
    free(p.frame);
    wire_tensors_release(&ts);

    Sefl__Heartbeat hb = SEFL__HEARTBEAT__INIT;
    e = envelope(SEFL__ENVELOPE__MSG_HEARTBEAT, &hb);
    p = enc(&e);
    d = dec_ok(&p);
    wire_free(d);
    free(p.frame);

    /* Saturates instead of wrapping. */
    ck_assert_uint_eq(wire_alloc_limit(SIZE_MAX), SIZE_MAX);
    ck_assert_uint_eq(wire_alloc_limit(SIZE_MAX / 2), SIZE_MAX);
}
END_TEST

/* ---- rejections ------------------------------------------------------- */

/* A frame longer than the reader's limit never reaches the decoder. */
START_TEST(test_reject_frame_over_limit)
{
    wire_tensors ts;
    ck_assert_int_eq(wire_tensors_build(&T, params_shared(PARAM_SE), M, &ts), 0);
    Sefl__Update u;
    Sefl__Envelope e = update_with(&u, ts.v, ts.n);
    packed p = enc(&e);
    frame_reader r;
    frame_reader_init(&r, FRAME_MAX_UNAUTH);
    ck_assert_int_eq(frame_reader_feed(&r, p.frame, p.len, big_cb, &T), -EMSGSIZE);
    ck_assert_ptr_null(r.buf);
    frame_reader_free(&r);
    free(p.frame);
    wire_tensors_release(&ts);
}
END_TEST

START_TEST(test_reject_malformed)
{
    char err[SEFL_ERRLEN];
    static const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    static const uint8_t cut[] = { 0x08, 0x01, 0x12, 0x10, 0x0a };   /* Hello of 16 bytes, 1 there */
    static const uint8_t group[] = { 0x08, 0x01, 0x13 };            /* wire type 3 */
    static const uint8_t wrongtype[] = { 0x08, 0x01, 0x10, 0x01 };   /* hello as a varint */
    ck_assert_uint_eq(dec_bytes_fail(garbage, sizeof garbage, 1 << 16, err), WIRE_ERR_MALFORMED);
    ck_assert_uint_eq(dec_bytes_fail(cut, sizeof cut, 1 << 16, err), WIRE_ERR_MALFORMED);
    ck_assert_uint_eq(dec_bytes_fail(group, sizeof group, 1 << 16, err), WIRE_ERR_MALFORMED);
    ck_assert_uint_eq(dec_bytes_fail(wrongtype, sizeof wrongtype, 1 << 16, err), WIRE_ERR_MALFORMED);
    ck_assert_uint_eq(dec_bytes_fail(garbage, 0, 1 << 16, err), WIRE_ERR_MALFORMED);
    ck_assert_str_eq(err, "empty frame");

    /* Field number 0 (found by fuzz_envelope): protobuf-c keeps the
     * two-byte key 0x82 0x00 as an unknown field, though it refuses the
     * same key re-encoded as 0x02. */
    static const uint8_t field0[] = { 0x08, 0x01, 0x52, 0x00, 0x82, 0x00, 0x00 };
    static const uint8_t field0_nested[] = { 0x08, 0x01, 0x52, 0x03, 0x82, 0x00, 0x00 };
    ck_assert_uint_eq(dec_bytes_fail(field0, sizeof field0, 1 << 16, err), WIRE_ERR_MALFORMED);
    ck_assert_uint_eq(dec_bytes_fail(field0_nested, sizeof field0_nested, 1 << 16, err), WIRE_ERR_MALFORMED);
}
END_TEST

/* Field 12 is not in this version's oneof (11 is ModelRequest): it unpacks
 * as an unknown field and leaves the case unset. An Envelope with only a
 * version is the same. */
START_TEST(test_reject_unknown_oneof)
{
    char err[SEFL_ERRLEN];
    static const uint8_t unknown[] = { 0x08, 0x01, 0x62, 0x02, 0x08, 0x01 };
    static const uint8_t none[] = { 0x08, 0x01 };
    ck_assert_uint_eq(dec_bytes_fail(unknown, sizeof unknown, 1 << 16, err), WIRE_ERR_MALFORMED);
    ck_assert_ptr_nonnull(strstr(err, "no message"));
    ck_assert_uint_eq(dec_bytes_fail(none, sizeof none, 1 << 16, err), WIRE_ERR_MALFORMED);
}
END_TEST

START_TEST(test_reject_version)
{
    char err[SEFL_ERRLEN];
    Sefl__Bye b = SEFL__BYE__INIT;
    Sefl__Envelope e = envelope(SEFL__ENVELOPE__MSG_BYE, &b);
    uint32_t bad[] = { 0, WIRE_VERSION + 1, 0xffffffffu };
    for (int i = 0; i < 3; i++) {
        e.version = bad[i];
        packed p = enc_raw(&e);
        ck_assert_uint_eq(dec_bytes_fail(pl(&p), pl_len(&p), 1 << 16, err), WIRE_ERR_VERSION);
        free(p.frame);
    }
}
END_TEST

START_TEST(test_reject_spec)
{
    Sefl__ModelSpec spec;
    Sefl__Hello h = SEFL__HELLO__INIT;
    h.spec = &spec;
    Sefl__Envelope e = envelope(SEFL__ENVELOPE__MSG_HELLO, &h);

    wire_spec_from_table(&T, &spec);
    spec.table_hash ^= 1;
    expect_fail(&e, WIRE_ERR_MODEL, "model mismatch");
    wire_spec_from_table(&T, &spec);
    spec.arch = "cnn";
    expect_fail(&e, WIRE_ERR_MODEL, "model mismatch");
    wire_spec_from_table(&T, &spec);
    spec.r = 4;
    expect_fail(&e, WIRE_ERR_MODEL, "r=4");
    wire_spec_from_table(&T, &spec);
    spec.fc1_gate = 0;
    expect_fail(&e, WIRE_ERR_MODEL, "model mismatch");
    h.spec = NULL;
    expect_fail(&e, WIRE_ERR_MODEL, "no model spec");

    /* The same check guards Welcome. */
    wire_spec_from_table(&T, &spec);
    spec.table_hash = 0;
    Sefl__Welcome w = SEFL__WELCOME__INIT;
    w.spec = &spec;
    w.client_id = "client-0000";
    w.private_groups = "se";
    e = envelope(SEFL__ENVELOPE__MSG_WELCOME, &w);
    expect_fail(&e, WIRE_ERR_MODEL, "model mismatch");
}
END_TEST

START_TEST(test_reject_tensors)
{
    Sefl__Tensor a, b;
    uint32_t sa[PARAM_MAX_DIMS], sb[PARAM_MAX_DIMS];
    Sefl__Tensor *v[2] = { &a, &b };
    Sefl__Update u;
    Sefl__Envelope e;
    float bad[32];   /* (32) conv1.bias */

    tensor_of(&a, sa, "conv1.bias");
    tensor_of(&b, sb, "fc.weight");
    e = update_with(&u, v, 2);
    packed p = enc(&e);   /* the good pair decodes */
    wire_free(dec_ok(&p));
    free(p.frame);

    a.name = "conv9.weight";
    expect_fail(&e, WIRE_ERR_TENSOR, "unknown tensor 'conv9.weight'");
    tensor_of(&a, sa, "fc.weight");
    expect_fail(&e, WIRE_ERR_TENSOR, "appears twice");

    tensor_of(&a, sa, "fc.weight");
    sa[1] = 511;
    a.data.len = 10 * 511 * 4;
    expect_fail(&e, WIRE_ERR_TENSOR, "dimension 1");
    tensor_of(&a, sa, "conv1.bias");
    a.n_shape = 2;
    sa[1] = 1;
    expect_fail(&e, WIRE_ERR_TENSOR, "2 dimensions");
    a.n_shape = 0;
    expect_fail(&e, WIRE_ERR_TENSOR, "0 dimensions");

    /* Byte length disagreeing with the shape, in both encodings. */
    tensor_of(&a, sa, "conv1.bias");
    a.data.len -= 4;
    expect_fail(&e, WIRE_ERR_TENSOR, "need 128");
    a.data.len += 5;
    expect_fail(&e, WIRE_ERR_TENSOR, "need 128");
    a.encoding = SEFL__ENCODING__INT8;
    a.scale = 0.1f;
    a.data.len = 33;
    expect_fail(&e, WIRE_ERR_TENSOR, "need 32");
    a.data.len = 128;
    expect_fail(&e, WIRE_ERR_TENSOR, "need 32");
    a.encoding = (Sefl__Encoding)7;
    expect_fail(&e, WIRE_ERR_TENSOR, "unknown encoding 7");

    /* Non-finite values, anywhere in the tensor. */
    tensor_of(&a, sa, "conv1.bias");
    memcpy(bad, M + params_find(&T, "conv1.bias")->offset, sizeof bad);
    a.data.data = (uint8_t *)bad;
    bad[31] = NAN;
    expect_fail(&e, WIRE_ERR_TENSOR, "element 31 is not finite");
    bad[31] = 0;
    bad[0] = -INFINITY;
    expect_fail(&e, WIRE_ERR_TENSOR, "element 0 is not finite");
    bad[0] = INFINITY;
    expect_fail(&e, WIRE_ERR_TENSOR, "not finite");
    bad[0] = 1;
    p = enc(&e);
    wire_free(dec_ok(&p));
    free(p.frame);

    /* INT8 scales: zero, NaN, Inf, so large that 127 * scale overflows. */
    int8_t q[32] = { 0 };   /* (32) */
    a.encoding = SEFL__ENCODING__INT8;
    a.data.data = (uint8_t *)q;
    a.data.len = 32;
    float scales[] = { 0.0f, NAN, INFINITY, -INFINITY, 3e38f };
    for (int i = 0; i < 5; i++) {
        a.scale = scales[i];
        expect_fail(&e, WIRE_ERR_TENSOR, "int8 scale");
    }
    a.scale = -0.01f;
    p = enc(&e);
    wire_free(dec_ok(&p));
    free(p.frame);
}
END_TEST

/* Strings: at most WIRE_MAX_STRING bytes, one line of UTF-8, no NUL. The
 * NUL case is built by hand: protobuf-c would cut the string there. */
START_TEST(test_reject_strings)
{
    char s[WIRE_MAX_STRING + 2];
    char err[SEFL_ERRLEN];
    memset(s, 'a', sizeof s);
    s[WIRE_MAX_STRING] = 0;
    Sefl__Bye b = SEFL__BYE__INIT;
    b.reason = s;
    Sefl__Envelope e = envelope(SEFL__ENVELOPE__MSG_BYE, &b);
    packed p = enc(&e);   /* exactly the limit is fine */
    wire_free(dec_ok(&p));
    free(p.frame);
    s[WIRE_MAX_STRING] = 'a';
    s[WIRE_MAX_STRING + 1] = 0;
    expect_fail(&e, WIRE_ERR_LIMIT, "Bye.reason is 257 bytes");

    Sefl__Error er = SEFL__ERROR__INIT;
    er.code = WIRE_ERR_MODEL;
    er.message = s;
    e = envelope(SEFL__ENVELOPE__MSG_ERROR, &er);
    expect_fail(&e, WIRE_ERR_LIMIT, "Error.message");

    /* Nested strings are walked too: Hello.spec.arch, Tensor.name. */
    Sefl__ModelSpec spec;
    wire_spec_from_table(&T, &spec);
    spec.arch = s;
    Sefl__Hello h = SEFL__HELLO__INIT;
    h.spec = &spec;
    e = envelope(SEFL__ENVELOPE__MSG_HELLO, &h);
    expect_fail(&e, WIRE_ERR_LIMIT, "ModelSpec.arch");
    Sefl__Tensor t;
    uint32_t sh[PARAM_MAX_DIMS];
    Sefl__Tensor *v[1] = { &t };
    tensor_of(&t, sh, "fc.bias");
    t.name = s;
    Sefl__Update u;
    e = update_with(&u, v, 1);
    expect_fail(&e, WIRE_ERR_LIMIT, "Tensor.name");

    b.reason = "two\nlines";
    e = envelope(SEFL__ENVELOPE__MSG_BYE, &b);
    expect_fail(&e, WIRE_ERR_MALFORMED, "Bye.reason is not one line");
    b.reason = "bad \xc0\xaf utf-8";   /* overlong '/' */
    expect_fail(&e, WIRE_ERR_MALFORMED, "UTF-8");
    b.reason = "\xed\xa0\x80";          /* a surrogate */
    expect_fail(&e, WIRE_ERR_MALFORMED, "UTF-8");
    b.reason = "caf\xc3\xa9 \xf0\x9f\x98\x80";
    p = enc(&e);
    wire_free(dec_ok(&p));
    free(p.frame);

    /* Envelope{version 1, bye{reason "ab\0cd"}} */
    static const uint8_t nul[] = { 0x08, 0x01, 0x52, 0x07, 0x0a, 0x05, 'a', 'b', 0, 'c', 'd' };
    ck_assert_uint_eq(dec_bytes_fail(nul, sizeof nul, 1 << 16, err), WIRE_ERR_MALFORMED);
    ck_assert_ptr_nonnull(strstr(err, "Bye.reason"));
}
END_TEST

START_TEST(test_reject_fields)
{
    Sefl__ModelSpec spec;
    wire_spec_from_table(&T, &spec);
    Sefl__Welcome w = SEFL__WELCOME__INIT;
    w.spec = &spec;
    w.private_groups = "se";
    Sefl__Envelope e = envelope(SEFL__ENVELOPE__MSG_WELCOME, &w);
    expect_fail(&e, WIRE_ERR_MALFORMED, "client_id is empty");
    w.client_id = "client-0001";
    w.private_groups = "backbone";
    expect_fail(&e, WIRE_ERR_MALFORMED, "Welcome.private_groups 'backbone'");

    Sefl__TrainTask tt = SEFL__TRAIN_TASK__INIT;
    tt.batch = 32;
    tt.epochs = 1;
    tt.lr = 0.1f;
    tt.private_groups = "none";
    e = envelope(SEFL__ENVELOPE__MSG_TRAIN_TASK, &tt);
    packed p = enc(&e);
    wire_free(dec_ok(&p));
    free(p.frame);
    tt.lr = NAN;
    expect_fail(&e, WIRE_ERR_MALFORMED, "TrainTask.lr");
    tt.lr = 0.1f;
    tt.momentum = -1;
    expect_fail(&e, WIRE_ERR_MALFORMED, "TrainTask.momentum");
    tt.momentum = 0;
    tt.batch = 0;
    expect_fail(&e, WIRE_ERR_LIMIT, "TrainTask.batch is 0");
    tt.batch = WIRE_MAX_BATCH + 1;
    expect_fail(&e, WIRE_ERR_LIMIT, "TrainTask.batch");
    tt.batch = 32;
    tt.epochs = WIRE_MAX_EPOCHS + 1;
    expect_fail(&e, WIRE_ERR_LIMIT, "TrainTask.epochs");
    tt.epochs = 1;
    /* The local schedule: 0 (joint) and 1..WIRE_MAX_EPOCHS private epochs,
     * a finite non-negative private rate (0: lr). */
    tt.private_epochs = WIRE_MAX_EPOCHS;
    p = enc(&e);
    wire_free(dec_ok(&p));
    free(p.frame);
    tt.private_epochs = WIRE_MAX_EPOCHS + 1;
    expect_fail(&e, WIRE_ERR_LIMIT, "TrainTask.private_epochs");
    tt.private_epochs = 0;
    tt.private_lr = -0.5f;
    expect_fail(&e, WIRE_ERR_MALFORMED, "TrainTask.private_lr");
    tt.private_lr = NAN;
    expect_fail(&e, WIRE_ERR_MALFORMED, "TrainTask.private_lr");
    tt.private_lr = 0;
    tt.private_groups = "";
    expect_fail(&e, WIRE_ERR_MALFORMED, "TrainTask.private_groups");

    Sefl__EvalTask et = SEFL__EVAL_TASK__INIT;
    e = envelope(SEFL__ENVELOPE__MSG_EVAL_TASK, &et);
    expect_fail(&e, WIRE_ERR_MALFORMED, "EvalTask.private_groups");

    Sefl__EvalReport r = SEFL__EVAL_REPORT__INIT;
    r.accuracy = 1.5f;
    e = envelope(SEFL__ENVELOPE__MSG_EVAL_REPORT, &r);
    expect_fail(&e, WIRE_ERR_MALFORMED, "EvalReport.accuracy");
    r.accuracy = 0.5f;
    r.loss = INFINITY;
    expect_fail(&e, WIRE_ERR_MALFORMED, "EvalReport.loss");

    Sefl__Update u;
    e = update_with(&u, NULL, 0);
    u.train_accuracy = NAN;
    expect_fail(&e, WIRE_ERR_MALFORMED, "Update.train_accuracy");

    Sefl__Error er = SEFL__ERROR__INIT;
    er.code = 0;
    e = envelope(SEFL__ENVELOPE__MSG_ERROR, &er);
    expect_fail(&e, WIRE_ERR_MALFORMED, "Error.code 0");
    er.code = WIRE_ERR_SHUTDOWN + 1;
    expect_fail(&e, WIRE_ERR_MALFORMED, "Error.code");
}
END_TEST

/* A valid message that needs more memory to unpack than allowed: a real
 * Update with a small limit, and a tiny payload of many empty tensors whose
 * structs outweigh its bytes many times over. */
START_TEST(test_reject_alloc_limit)
{
    char err[SEFL_ERRLEN];
    wire_tensors ts;
    ck_assert_int_eq(wire_tensors_build(&T, params_shared(PARAM_SE), M, &ts), 0);
    Sefl__Update u;
    Sefl__Envelope e = update_with(&u, ts.v, ts.n);
    packed p = enc(&e);
    ck_assert_uint_eq(dec_bytes_fail(pl(&p), pl_len(&p), pl_len(&p) / 2, err), WIRE_ERR_LIMIT);
    ck_assert_ptr_nonnull(strstr(err, "to unpack"));
    free(p.frame);
    wire_tensors_release(&ts);

    /* Envelope{version 1, update{tensors: 4000 x empty}} */
    size_t n = 4000;
    uint8_t *b = malloc(8 + 2 * n);
    ck_assert_ptr_nonnull(b);
    size_t o = 0, inner = 2 * n;
    b[o++] = 0x08;
    b[o++] = 0x01;
    b[o++] = 0x2a;   /* field 5, length-delimited */
    b[o++] = (uint8_t)(0x80 | (inner & 0x7f));
    b[o++] = (uint8_t)(inner >> 7);
    for (size_t i = 0; i < n; i++) {
        b[o++] = 0x1a;   /* Update.tensors, field 3 */
        b[o++] = 0x00;
    }
    ck_assert_uint_eq(dec_bytes_fail(b, o, wire_alloc_limit(o), err), WIRE_ERR_LIMIT);
    /* With room to unpack, it is refused for what it is. */
    ck_assert_uint_eq(dec_bytes_fail(b, o, 100u << 20, err), WIRE_ERR_TENSOR);
    free(b);
}
END_TEST

/* ---- wire_tensors_apply ----------------------------------------------- */

START_TEST(test_apply_exact_set)
{
    char err[SEFL_ERRLEN];
    param_sel shared = params_shared(PARAM_SE);
    wire_tensors ts;
    ck_assert_int_eq(wire_tensors_build(&T, params_group(PARAM_ALL), M, &ts), 0);
    float *buf = malloc(T.total * sizeof *buf);
    float *orig = malloc(T.total * sizeof *orig);
    ck_assert(buf && orig);
    for (size_t i = 0; i < T.total; i++) orig[i] = buf[i] = -7.0f;

    /* The shared set, picked out of all tensors, in table order. */
    Sefl__Tensor *v[PARAM_MAX_TENSORS + 1];
    size_t n = 0;
    for (size_t i = 0; i < ts.n; i++)
        if (params_selected(params_find(&T, ts.v[i]->name), shared)) v[n++] = ts.v[i];
    ck_assert_uint_eq(n, 8);

    /* Missing one. */
    ck_assert_int_eq(wire_tensors_apply(&T, shared, v, n - 1, buf, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "expected 8 tensors, got 7"));
    /* One replaced by a duplicate. */
    Sefl__Tensor *keep = v[3];
    v[3] = v[2];
    ck_assert_int_eq(wire_tensors_apply(&T, shared, v, n, buf, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "twice"));
    /* One replaced by a private tensor. */
    v[3] = ts.v[2];   /* se1.fc1.weight */
    ck_assert_int_eq(wire_tensors_apply(&T, shared, v, n, buf, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "se1.fc1.weight is not in the expected set"));
    v[3] = keep;
    /* One extra. */
    v[n] = ts.v[2];
    ck_assert_int_eq(wire_tensors_apply(&T, shared, v, n + 1, buf, err), -EINVAL);
    ck_assert_int_eq(memcmp(buf, orig, T.total * sizeof *buf), 0);

    /* Order does not matter: reversed, exactly the selected slices change. */
    for (size_t i = 0; i < n / 2; i++) {
        Sefl__Tensor *x = v[i];
        v[i] = v[n - 1 - i];
        v[n - 1 - i] = x;
    }
    ck_assert_int_eq(wire_tensors_apply(&T, shared, v, n, buf, err), 0);
    for (int j = 0; j < T.n; j++) {
        const param_info *pi = &T.p[j];
        int sel = params_selected(pi, shared);
        ck_assert_int_eq(memcmp(buf + pi->offset, sel ? M + pi->offset : orig + pi->offset,
                                pi->size * sizeof *buf), 0);
    }
    free(buf);
    free(orig);
    wire_tensors_release(&ts);
}
END_TEST

/* An INT8 tensor is dequantised as scale * q. */
START_TEST(test_apply_int8)
{
    char err[SEFL_ERRLEN];
    const param_info *p = params_find(&T, "fc.bias");
    int8_t q[10] = { -128, -1, 0, 1, 2, 3, 50, 100, 126, 127 };   /* (10) */
    Sefl__Tensor x;
    uint32_t sh[PARAM_MAX_DIMS];
    tensor_of(&x, sh, "fc.bias");
    x.encoding = SEFL__ENCODING__INT8;
    x.scale = 0.5f;
    x.data.data = (uint8_t *)q;
    x.data.len = sizeof q;
    Sefl__Tensor *v[1] = { &x };
    Sefl__Update u;
    Sefl__Envelope e = update_with(&u, v, 1);
    packed pk = enc(&e);
    Sefl__Envelope *d = dec_ok(&pk);
    float *buf = calloc(T.total, sizeof *buf);
    ck_assert_ptr_nonnull(buf);
    param_sel head = { PARAM_HEAD, 0 };
    /* The head group is fc.weight and fc.bias: one tensor is not the set. */
    ck_assert_int_eq(wire_tensors_apply(&T, head, d->update->tensors, 1, buf, err), -EINVAL);
    Sefl__Tensor fw;
    uint32_t shw[PARAM_MAX_DIMS];
    tensor_of(&fw, shw, "fc.weight");
    Sefl__Tensor *both[2] = { d->update->tensors[0], &fw };
    ck_assert_int_eq(wire_tensors_apply(&T, head, both, 2, buf, err), 0);
    for (int i = 0; i < 10; i++) ck_assert_float_eq(buf[p->offset + (size_t)i], 0.5f * q[i]);
    free(buf);
    wire_free(d);
    free(pk.frame);
}
END_TEST

/* ---- encodings (wire_enc.h) ------------------------------------------- */

START_TEST(test_f16_bits)
{
    /* exact values, rounding to nearest even, range ends, subnormals */
    const struct { float f; uint16_t h; } c[] = {
        { 0.0f, 0x0000 }, { -0.0f, 0x8000 }, { 1.0f, 0x3c00 }, { -2.0f, 0xc000 },
        { 65504.0f, 0x7bff }, { 65519.0f, 0x7bff }, { 65520.0f, 0x7c00 }, { 1e6f, 0x7c00 },
        { 6.103515625e-05f, 0x0400 }, { 5.9604644775390625e-08f, 0x0001 },
        { 2.9802322387695312e-08f, 0x0000 }, /* half the smallest subnormal: ties to even */
        { 1.0f + 1.0f / 2048, 0x3c00 },      /* tie between 1 and 1+2^-10: even (1) */
        { 1.0f + 3.0f / 2048, 0x3c02 },      /* tie: even (1+2^-9) */
        { 0.333333333f, 0x3555 },
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++)
        ck_assert_msg(wire_f16_from_float(c[i].f) == c[i].h, "%g -> %04x, want %04x",
                      (double)c[i].f, wire_f16_from_float(c[i].f), c[i].h);
    ck_assert_uint_eq(wire_f16_from_float(NAN) & 0x7c00, 0x7c00);
    /* every finite half survives the round trip */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue;
        ck_assert_uint_eq(wire_f16_from_float(wire_f16_to_float((uint16_t)h)), h);
    }
    ck_assert_float_eq(wire_f16_to_float(0x3555), 0.333251953125f);
}
END_TEST

/* The SE tensors of M (vectors and matrices of 4 to 512 rows, a ninth of
 * the backbone's floats, so the test stays quick) through every encoding,
 * as a delta from a base and as values: the decoded tensors are within each
 * encoding's rounding bound of the exact ones, and the bytes shrink as they
 * should. */
START_TEST(test_encode_round_trip)
{
    char err[SEFL_ERRLEN];
    const param_sel sel = params_group(PARAM_SE);
    float *base = malloc(T.total * sizeof *base), *out = malloc(T.total * sizeof *out);
    ck_assert(base && out);
    rng g;
    rng_seed(&g, 2);
    for (size_t i = 0; i < T.total; i++) base[i] = M[i] + 0.01f * (float)rng_normal(&g);
    const wire_enc encs[] = { { WIRE_F32, 0 }, { WIRE_F16, 0 }, { WIRE_INT8, 0 }, { WIRE_INT8, 1 } };
    size_t bytes[4][2];
    for (int k = 0; k < 4; k++)
        for (int delta = 0; delta < 2; delta++)
            for (uint64_t seed = 0; seed < 2; seed++) {
                wire_tensors wt;
                ck_assert_int_eq(wire_tensors_encode(&T, sel, M, delta ? base : NULL, encs[k],
                                                     seed, &wt), 0);
                Sefl__Update u;
                Sefl__Envelope e = update_with(&u, wt.v, wt.n);
                u.delta = delta;
                packed pk = enc(&e);
                bytes[k][delta] = pk.len;
                wire_tensors_release(&wt);
                Sefl__Envelope *d = dec_ok(&pk);
                ck_assert(d->update->delta == (delta != 0));
                memset(out, 0, T.total * sizeof *out);
                ck_assert_int_eq(wire_tensors_apply_delta(&T, sel, d->update->tensors,
                                                          d->update->n_tensors,
                                                          delta ? base : NULL, out, err), 0);
                for (int i = 0; i < T.n; i++) {
                    const param_info *p = &T.p[i];
                    if (!params_selected(p, sel)) continue;
                    const size_t rows = encs[k].per_channel && p->ndim > 1 ? (size_t)p->shape[0] : 1;
                    const size_t len = p->size / rows;
                    for (size_t r = 0; r < rows; r++) {
                        double amax = 0;
                        for (size_t j = 0; j < len; j++) {
                            const size_t o = p->offset + r * len + j;
                            amax = fmax(amax, fabs((double)M[o] - (delta ? base[o] : 0)));
                        }
                        for (size_t j = 0; j < len; j++) {
                            const size_t o = p->offset + r * len + j;
                            const double want = M[o], got = out[o];
                            const double v = want - (delta ? base[o] : 0);
                            /* the subtraction and the base's addition */
                            double tol = 1e-6 * (fabs(want) + (delta ? fabs(base[o]) : 0));
                            if (encs[k].dtype == WIRE_F16) tol += fabs(v) / 2048 + 6e-8;
                            /* int8: half a step to nearest, under one stochastically */
                            if (encs[k].dtype == WIRE_INT8) tol += amax / 127 * (seed ? 1.0 : 0.5) * 1.0001;
                            ck_assert_msg(fabs(got - want) <= tol, "%s %s delta %d seed %d: %s[%zu] %g, want %g",
                                          wire_enc_name(encs[k]), p->name, delta, (int)seed, p->name,
                                          r * len + j, got, want);
                        }
                    }
                }
                wire_free(d);
                free(pk.frame);
            }
    /* f32 4 bytes per value, f16 2, int8 1 (plus a scale per row: 4 bytes
     * in 64 or more, over 3.5x still) */
    ck_assert_uint_gt(bytes[0][0], 19 * bytes[1][0] / 10);
    ck_assert_uint_gt(bytes[0][0], 39 * bytes[2][0] / 10);
    ck_assert_uint_gt(bytes[0][0], 35 * bytes[3][0] / 10);
    ck_assert_uint_gt(bytes[3][0], bytes[2][0]);
    free(base);
    free(out);
}
END_TEST

/* Stochastic rounding is unbiased: a value a third of a step above a
 * multiple, encoded with many seeds, decodes on average to itself, where
 * rounding to nearest is off by a third of a step every time. A value f16
 * cannot hold sends its tensor as f32, unclipped. */
START_TEST(test_encode_stochastic_and_fallback)
{
    char err[SEFL_ERRLEN];
    const param_sel sel = { PARAM_HEAD, 0 };
    const param_info *fb = params_find(&T, "fc.bias");
    float *buf = calloc(T.total, sizeof *buf), *out = calloc(T.total, sizeof *out);
    ck_assert(buf && out);
    /* fc.bias: 127 (sets the step to 1) and 0.3333 */
    buf[fb->offset] = 127.0f;
    buf[fb->offset + 1] = 1.0f / 3;
    double sum = 0;
    const int n = 400;
    for (int s = 1; s <= n; s++) {
        wire_tensors wt;
        ck_assert_int_eq(wire_tensors_encode(&T, sel, buf, NULL, (wire_enc){ WIRE_INT8, 0 },
                                             (uint64_t)s, &wt), 0);
        ck_assert_int_eq(wire_tensors_apply(&T, sel, wt.v, wt.n, out, err), 0);
        const float got = out[fb->offset + 1];
        ck_assert(got == 0.0f || got == 1.0f);
        sum += got;
        wire_tensors_release(&wt);
    }
    /* mean of 400 Bernoulli(1/3): sd 0.024 */
    ck_assert_double_lt(fabs(sum / n - 1.0 / 3), 0.1);
    wire_tensors wt;
    ck_assert_int_eq(wire_tensors_encode(&T, sel, buf, NULL, (wire_enc){ WIRE_INT8, 0 }, 0, &wt), 0);
    ck_assert_int_eq(wire_tensors_apply(&T, sel, wt.v, wt.n, out, err), 0);
    ck_assert_float_eq(out[fb->offset + 1], 0.0f);
    wire_tensors_release(&wt);

    buf[fb->offset] = 1e5f;   /* past f16's 65504 */
    ck_assert_int_eq(wire_tensors_encode(&T, sel, buf, NULL, (wire_enc){ WIRE_F16, 0 }, 0, &wt), 0);
    for (size_t i = 0; i < wt.n; i++)
        ck_assert_int_eq(wt.t[i].encoding, strcmp(wt.t[i].name, "fc.bias") ? SEFL__ENCODING__F16
                                                                          : SEFL__ENCODING__F32);
    ck_assert_int_eq(wire_tensors_apply(&T, sel, wt.v, wt.n, out, err), 0);
    ck_assert_float_eq(out[fb->offset], 1e5f);
    wire_tensors_release(&wt);
    free(buf);
    free(out);
}
END_TEST

/* The decoder stays strict with the new encodings: f16 bytes for the shape,
 * finite f16 values, per-channel scales only on int8, one per row, scale 0
 * beside them, each finite and nonzero; a TrainTask's update encoding is a
 * known one. */
START_TEST(test_reject_encodings)
{
    Sefl__Tensor a;
    uint32_t sa[PARAM_MAX_DIMS];
    Sefl__Tensor *v[1] = { &a };
    Sefl__Update u;
    Sefl__Envelope e = update_with(&u, v, 1);
    uint16_t h[20] = { 0 };   /* (20): fc.bias as f16 in the first 10, room for a long length */
    tensor_of(&a, sa, "fc.bias");
    a.encoding = SEFL__ENCODING__F16;
    a.data.data = (uint8_t *)h;
    a.data.len = 20;
    packed p = enc(&e);
    wire_free(dec_ok(&p));
    free(p.frame);
    a.data.len = 40;
    expect_fail(&e, WIRE_ERR_TENSOR, "need 20");
    a.data.len = 20;
    h[9] = 0x7c00;
    expect_fail(&e, WIRE_ERR_TENSOR, "element 9 is not finite");
    h[9] = 0xfe00;
    expect_fail(&e, WIRE_ERR_TENSOR, "element 9 is not finite");
    h[9] = 0x7bff;

    int8_t q[5120] = { 0 };   /* (10, 512) fc.weight as int8 */
    float sc[11];
    for (int i = 0; i < 11; i++) sc[i] = 0.5f;
    tensor_of(&a, sa, "fc.weight");
    a.encoding = SEFL__ENCODING__INT8;
    a.data.data = (uint8_t *)q;
    a.data.len = sizeof q;
    a.scales = sc;
    a.n_scales = 10;
    p = enc(&e);
    wire_free(dec_ok(&p));
    free(p.frame);
    a.n_scales = 11;
    expect_fail(&e, WIRE_ERR_TENSOR, "11 scales");
    a.n_scales = 9;
    expect_fail(&e, WIRE_ERR_TENSOR, "9 scales");
    a.n_scales = 10;
    a.scale = 0.5f;
    expect_fail(&e, WIRE_ERR_TENSOR, "scales");
    a.scale = 0;
    const float badsc[] = { 0.0f, NAN, INFINITY, 3e38f };
    for (int i = 0; i < 4; i++) {
        sc[7] = badsc[i];
        expect_fail(&e, WIRE_ERR_TENSOR, "int8 scale");
    }
    sc[7] = 0.5f;
    tensor_of(&a, sa, "fc.weight");   /* f32 with scales */
    a.scales = sc;
    a.n_scales = 10;
    expect_fail(&e, WIRE_ERR_TENSOR, "scales");

    Sefl__TrainTask t = SEFL__TRAIN_TASK__INIT;
    t.lr = 0.1f;
    t.batch = 10;
    t.epochs = 1;
    t.private_groups = "se";
    t.update_encoding = SEFL__ENCODING__INT8;
    t.update_per_channel = 1;
    Sefl__Envelope te = envelope(SEFL__ENVELOPE__MSG_TRAIN_TASK, &t);
    p = enc(&te);
    Sefl__Envelope *d = dec_ok(&p);
    ck_assert_int_eq(d->train_task->update_encoding, SEFL__ENCODING__INT8);
    ck_assert(d->train_task->update_per_channel);
    wire_free(d);
    free(p.frame);
    t.update_encoding = (Sefl__Encoding)9;
    expect_fail(&te, WIRE_ERR_MALFORMED, "update_encoding 9");
}
END_TEST

START_TEST(test_enc_parse)
{
    char err[SEFL_ERRLEN];
    wire_enc e;
    ck_assert_int_eq(wire_enc_parse("--wire-dtype", "int8", 1, &e, err), 0);
    ck_assert_str_eq(wire_enc_name(e), "int8/channel");
    ck_assert_int_eq(wire_enc_parse("--wire-dtype", "int8", 0, &e, err), 0);
    ck_assert_str_eq(wire_enc_name(e), "int8/tensor");
    ck_assert_int_eq(wire_enc_parse("--wire-dtype", "f16", 1, &e, err), 0);
    ck_assert_str_eq(wire_enc_name(e), "f16");
    ck_assert_int_eq(wire_enc_parse("--update-dtype", "bf16", 1, &e, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--update-dtype must be f32, f16 or int8, got 'bf16'"));
}
END_TEST

START_TEST(test_free_null)
{
    wire_free(NULL);
    wire_tensors_release(NULL);
    wire_tensors z;
    memset(&z, 0, sizeof z);
    wire_tensors_release(&z);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("wire");
    TCase *tc = tcase_create("wire");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_hello_welcome);
    tcase_add_test(tc, test_tensor_messages);
    tcase_add_test(tc, test_small_messages);
    tcase_add_test(tc, test_encode_error_sanitises);
    tcase_add_test(tc, test_3mb_tensor);
    tcase_add_test(tc, test_alloc_limit_enough);
    tcase_add_test(tc, test_reject_frame_over_limit);
    tcase_add_test(tc, test_reject_malformed);
    tcase_add_test(tc, test_reject_unknown_oneof);
    tcase_add_test(tc, test_reject_version);
    tcase_add_test(tc, test_reject_spec);
    tcase_add_test(tc, test_reject_tensors);
    tcase_add_test(tc, test_reject_strings);
    tcase_add_test(tc, test_reject_fields);
    tcase_add_test(tc, test_reject_alloc_limit);
    tcase_add_test(tc, test_apply_exact_set);
    tcase_add_test(tc, test_apply_int8);
    tcase_add_test(tc, test_f16_bits);
    tcase_add_test(tc, test_encode_round_trip);
    tcase_add_test(tc, test_encode_stochastic_and_fallback);
    tcase_add_test(tc, test_reject_encodings);
    tcase_add_test(tc, test_enc_parse);
    tcase_add_test(tc, test_free_null);
    suite_add_tcase(su, tc);
    return check_run(su);
}
