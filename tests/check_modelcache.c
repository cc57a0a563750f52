/* check_modelcache: model references (common/fl/wire_ref.c) and the client
 * process's model cache (client/modelcache.c).
 *
 * The reference: the same tensors give the same hash, every byte a decoder
 * reads changes it (data, name, shape, encoding, scales), and wire_decode
 * accepts the new fields only at their lengths (Hello.host_token,
 * model_ref of TrainTask and EvalTask, ModelRequest). The cache: hits and
 * misses by reference and private mask, the newest MODELCACHE_ENTRIES
 * models kept, waiters called once with a reference of their own, cancel,
 * and the host token (random per cache, or the one given). The session's
 * use of it against a coordinator is in check_session.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "client/modelcache.h"
#include "client/trainer.h"
#include "common/fl/wire.h"
#include "common/fl/wire_enc.h"
#include "common/fl/wire_ref.h"
#include "common/log.h"
#include "common/nn/params.h"
#include "tests/check_main.h"
#include "tests/check_params_fixture.h"

static param_table T;           /* cnn-se, r = 8, with the fc1 gate */
static float *M;                /* (T.total) a model with distinct values */

static void setup(void)
{
    M = check_params_normal(&T);
}

static void teardown(void)
{
    free(M);
    M = NULL;
}

/* The reference of M's shared set (private SE) encoded as e. */
static void ref_of(const float *buf, wire_enc e, uint8_t out[WIRE_REF_LEN])
{
    wire_tensors wt;
    ck_assert_int_eq(wire_tensors_encode(&T, params_shared(PARAM_SE), buf, NULL, e, 0, &wt), 0);
    ck_assert_int_eq(wire_model_ref(wt.v, wt.n, out), 0);
    wire_tensors_release(&wt);
}

/* ---- the reference ------------------------------------------------------ */

START_TEST(test_ref_covers_what_is_decoded)
{
    const wire_enc f32 = { WIRE_F32, 0 }, int8 = { WIRE_INT8, 1 }, int8t = { WIRE_INT8, 0 };
    uint8_t a[WIRE_REF_LEN], b[WIRE_REF_LEN];
    ref_of(M, f32, a);
    ref_of(M, f32, b);
    ck_assert_mem_eq(a, b, WIRE_REF_LEN);
    /* The same values in another encoding (or int8 scales) are another model on the wire. */
    ref_of(M, int8, b);
    ck_assert(memcmp(a, b, WIRE_REF_LEN) != 0);
    uint8_t c[WIRE_REF_LEN];
    ref_of(M, int8t, c);
    ck_assert(memcmp(b, c, WIRE_REF_LEN) != 0);
    /* One bit of one value of the shared set. */
    const param_info *p = params_find(&T, "fc.bias");
    ck_assert_ptr_nonnull(p);
    float keep = M[p->offset + 9];
    uint32_t bits;
    memcpy(&bits, &M[p->offset + 9], 4);
    bits ^= 1;
    memcpy(&M[p->offset + 9], &bits, 4);
    ref_of(M, f32, b);
    ck_assert(memcmp(a, b, WIRE_REF_LEN) != 0);
    M[p->offset + 9] = keep;
    /* A private tensor is not sent, so not in the reference. */
    const param_info *se = params_find(&T, "se1.fc1.bias");
    M[se->offset] += 1;
    ref_of(M, f32, b);
    ck_assert_mem_eq(a, b, WIRE_REF_LEN);

    /* Name, shape and encoding of one tensor, data unchanged. */
    wire_tensors wt;
    ck_assert_int_eq(wire_tensors_build(&T, params_shared(PARAM_SE), M, &wt), 0);
    ck_assert_int_eq(wire_model_ref(wt.v, wt.n, b), 0);
    ck_assert_mem_eq(a, b, WIRE_REF_LEN);
    char *name = wt.t[0].name;
    wt.t[0].name = "conv1.weighs";
    ck_assert_int_eq(wire_model_ref(wt.v, wt.n, b), 0);
    ck_assert(memcmp(a, b, WIRE_REF_LEN) != 0);
    wt.t[0].name = name;
    wt.t[0].shape[0]++;
    ck_assert_int_eq(wire_model_ref(wt.v, wt.n, b), 0);
    ck_assert(memcmp(a, b, WIRE_REF_LEN) != 0);
    wt.t[0].shape[0]--;
    wt.t[0].encoding = SEFL__ENCODING__F16;
    ck_assert_int_eq(wire_model_ref(wt.v, wt.n, b), 0);
    ck_assert(memcmp(a, b, WIRE_REF_LEN) != 0);
    wt.t[0].encoding = SEFL__ENCODING__F32;
    /* The order of the tensors. */
    Sefl__Tensor *first = wt.v[0];
    wt.v[0] = wt.v[1];
    wt.v[1] = first;
    ck_assert_int_eq(wire_model_ref(wt.v, wt.n, b), 0);
    ck_assert(memcmp(a, b, WIRE_REF_LEN) != 0);
    wire_tensors_release(&wt);
}
END_TEST

/* Encodes e and decodes it back; returns the WIRE_ERR_* code (0: valid). */
static uint32_t roundtrip(Sefl__Envelope *e, Sefl__Envelope **out)
{
    uint8_t *frame;
    size_t len;
    char err[SEFL_ERRLEN];
    uint32_t code = 0;
    ck_assert_int_eq(wire_encode(e, &frame, &len), 0);
    int rc = wire_decode(frame + 4, len - 4, &T, wire_alloc_limit(len), out, &code, err);
    free(frame);
    ck_assert_int_eq(rc == 0, code == 0);
    return code;
}

START_TEST(test_ref_fields_decode)
{
    uint8_t token[WIRE_HOST_TOKEN_LEN + 1] = { 1, 2, 3 }, ref[WIRE_REF_LEN + 1] = { 9, 8, 7 };
    Sefl__Envelope *d = NULL;

    Sefl__ModelSpec spec;
    wire_spec_from_table(&T, &spec);
    Sefl__Hello h = SEFL__HELLO__INIT;
    h.spec = &spec;
    h.train_examples = 1;
    h.host_token = (ProtobufCBinaryData){ WIRE_HOST_TOKEN_LEN, token };
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    e.msg_case = SEFL__ENVELOPE__MSG_HELLO;
    e.hello = &h;
    ck_assert_uint_eq(roundtrip(&e, &d), 0);
    ck_assert_uint_eq(d->hello->host_token.len, WIRE_HOST_TOKEN_LEN);
    ck_assert_mem_eq(d->hello->host_token.data, token, WIRE_HOST_TOKEN_LEN);
    wire_free(d);
    h.host_token.len = 0;                 /* an older client: no token */
    ck_assert_uint_eq(roundtrip(&e, &d), 0);
    wire_free(d);
    h.host_token.len = WIRE_HOST_TOKEN_LEN - 1;
    ck_assert_uint_eq(roundtrip(&e, &d), WIRE_ERR_MALFORMED);
    h.host_token.len = WIRE_HOST_TOKEN_LEN + 1;
    ck_assert_uint_eq(roundtrip(&e, &d), WIRE_ERR_MALFORMED);

    /* A TrainTask by reference: no tensors, the reference kept. */
    Sefl__TrainTask t = SEFL__TRAIN_TASK__INIT;
    t.round = 3;
    t.lr = 0.1f;
    t.batch = 10;
    t.epochs = 1;
    t.private_groups = "se";
    t.model_ref = (ProtobufCBinaryData){ WIRE_REF_LEN, ref };
    e.msg_case = SEFL__ENVELOPE__MSG_TRAIN_TASK;
    e.train_task = &t;
    ck_assert_uint_eq(roundtrip(&e, &d), 0);
    ck_assert_uint_eq(d->train_task->n_tensors, 0);
    ck_assert_uint_eq(d->train_task->model_ref.len, WIRE_REF_LEN);
    ck_assert_mem_eq(d->train_task->model_ref.data, ref, WIRE_REF_LEN);
    wire_free(d);
    t.model_ref.len = WIRE_REF_LEN - 1;
    ck_assert_uint_eq(roundtrip(&e, &d), WIRE_ERR_MALFORMED);
    t.model_ref.len = WIRE_REF_LEN + 1;
    ck_assert_uint_eq(roundtrip(&e, &d), WIRE_ERR_MALFORMED);

    Sefl__EvalTask v = SEFL__EVAL_TASK__INIT;
    v.round = 3;
    v.private_groups = "se";
    v.model_ref = (ProtobufCBinaryData){ WIRE_REF_LEN, ref };
    e.msg_case = SEFL__ENVELOPE__MSG_EVAL_TASK;
    e.eval_task = &v;
    ck_assert_uint_eq(roundtrip(&e, &d), 0);
    ck_assert_mem_eq(d->eval_task->model_ref.data, ref, WIRE_REF_LEN);
    wire_free(d);
    v.model_ref.len = 1;
    ck_assert_uint_eq(roundtrip(&e, &d), WIRE_ERR_MALFORMED);

    /* A ModelRequest must name a model. */
    Sefl__ModelRequest r = SEFL__MODEL_REQUEST__INIT;
    r.round = 3;
    r.model_ref = (ProtobufCBinaryData){ WIRE_REF_LEN, ref };
    e.msg_case = SEFL__ENVELOPE__MSG_MODEL_REQUEST;
    e.model_request = &r;
    ck_assert_uint_eq(roundtrip(&e, &d), 0);
    ck_assert_uint_eq(d->model_request->round, 3);
    ck_assert_mem_eq(d->model_request->model_ref.data, ref, WIRE_REF_LEN);
    wire_free(d);
    r.model_ref.len = 0;
    ck_assert_uint_eq(roundtrip(&e, &d), WIRE_ERR_MALFORMED);
    r.model_ref.len = WIRE_REF_LEN + 1;
    ck_assert_uint_eq(roundtrip(&e, &d), WIRE_ERR_MALFORMED);
}
END_TEST

/* ---- the cache ---------------------------------------------------------- */

typedef struct {
    uv_loop_t loop;
    trainer *tr;
    modelcache *mc;
} fixture;

static void fx_open(fixture *f, const uint8_t *token)
{
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(uv_loop_init(&f->loop), 0);
    ck_assert_msg(trainer_new(&f->loop, &T, 1, &f->tr, err) == 0, "%s", err);
    ck_assert_msg(modelcache_new(f->tr, token, &f->mc, err) == 0, "%s", err);
}

static void fx_close(fixture *f)
{
    modelcache_free(f->mc);
    trainer_free(f->tr);
    ck_assert_int_eq(uv_loop_close(&f->loop), 0);
}

/* Model number k: M with every shared value plus k, decoded as a client
 * does (trainer_globals_get) from tensors labelled with their reference. */
static trainer_globals *model_k(fixture *f, int k, uint8_t ref[WIRE_REF_LEN])
{
    char err[SEFL_ERRLEN];
    float *buf = malloc(T.total * sizeof *buf);
    for (size_t i = 0; i < T.total; i++) buf[i] = M[i] + (float)k;
    wire_tensors wt;
    trainer_globals *g = NULL;
    ck_assert_int_eq(wire_tensors_build(&T, params_shared(PARAM_SE), buf, &wt), 0);
    ck_assert_int_eq(wire_model_ref(wt.v, wt.n, ref), 0);
    ck_assert_msg(trainer_globals_get(f->tr, PARAM_SE, wt.v, wt.n, &g, err) == 0, "%s", err);
    wire_tensors_release(&wt);
    free(buf);
    return g;
}

/* The shared values of g are model k's. */
static int is_model_k(const trainer_globals *g, int k)
{
    const param_info *p = params_find(&T, "fc1.weight");
    const float *w = trainer_globals_params(g);
    return w[p->offset] == M[p->offset] + (float)k && w[p->offset + 77] == M[p->offset + 77] + (float)k;
}

START_TEST(test_cache_hit_miss_evict)
{
    fixture f;
    fx_open(&f, NULL);
    uint8_t r1[WIRE_REF_LEN], r2[WIRE_REF_LEN], r3[WIRE_REF_LEN];
    trainer_globals *g1 = model_k(&f, 1, r1), *g2 = model_k(&f, 2, r2), *g3 = model_k(&f, 3, r3);
    ck_assert_ptr_null(modelcache_get(f.mc, r1, PARAM_SE));

    modelcache_put(f.mc, r1, PARAM_SE, g1);
    /* The jobs that held model 1 are done: the cache's reference keeps it. */
    trainer_globals_put(f.tr, g1);
    trainer_globals *h = modelcache_get(f.mc, r1, PARAM_SE);
    ck_assert_ptr_nonnull(h);
    ck_assert(is_model_k(h, 1));
    trainer_globals_put(f.tr, h);
    /* The same reference under another private set is another model. */
    ck_assert_ptr_null(modelcache_get(f.mc, r1, PARAM_SE | PARAM_HEAD));
    /* A second put of model 1 does not take a second entry. */
    h = modelcache_get(f.mc, r1, PARAM_SE);
    modelcache_put(f.mc, r1, PARAM_SE, h);
    trainer_globals_put(f.tr, h);
    ck_assert_int_eq(modelcache_entries(f.mc), 1);

    modelcache_put(f.mc, r2, PARAM_SE, g2);
    trainer_globals_put(f.tr, g2);
    ck_assert_int_eq(modelcache_entries(f.mc), 2);
    /* Model 3 evicts the oldest, model 1; 2 and 3 stay. */
    modelcache_put(f.mc, r3, PARAM_SE, g3);
    ck_assert_int_eq(modelcache_entries(f.mc), MODELCACHE_ENTRIES);
    ck_assert_ptr_null(modelcache_get(f.mc, r1, PARAM_SE));
    h = modelcache_get(f.mc, r2, PARAM_SE);
    ck_assert_ptr_nonnull(h);
    ck_assert(is_model_k(h, 2));
    trainer_globals_put(f.tr, h);
    h = modelcache_get(f.mc, r3, PARAM_SE);
    ck_assert_ptr_eq(h, g3);
    trainer_globals_put(f.tr, h);
    trainer_globals_put(f.tr, g3);

    modelcache_stats st;
    modelcache_get_stats(f.mc, &st);
    ck_assert_int_eq(st.full, 4);
    ck_assert_int_eq(st.hits, 4);
    ck_assert_int_eq(st.misses, 3);
    fx_close(&f);
}
END_TEST

typedef struct {
    modelcache_waiter w;
    int calls;
    trainer_globals *got;
} waiter;

static void on_ready(modelcache_waiter *w, trainer_globals *g)
{
    waiter *x = w->user;
    x->calls++;
    x->got = g;
    ck_assert(!w->linked);
}

static void waiter_init(waiter *x, const uint8_t *ref)
{
    memset(x, 0, sizeof *x);
    memcpy(x->w.ref, ref, WIRE_REF_LEN);
    x->w.private_mask = PARAM_SE;
    x->w.ready = on_ready;
    x->w.user = x;
}

START_TEST(test_cache_waiters)
{
    fixture f;
    fx_open(&f, NULL);
    uint8_t r1[WIRE_REF_LEN], r2[WIRE_REF_LEN];
    trainer_globals *g1 = model_k(&f, 1, r1), *g2 = model_k(&f, 2, r2);
    waiter a, b, c;
    waiter_init(&a, r1);
    waiter_init(&b, r1);
    waiter_init(&c, r2);
    modelcache_wait(f.mc, &a.w);
    modelcache_wait(f.mc, &b.w);
    modelcache_wait(f.mc, &c.w);
    modelcache_wait(f.mc, &c.w);          /* twice: still one waiter */
    ck_assert_int_eq(modelcache_waiters(f.mc), 3);
    modelcache_cancel(f.mc, &b.w);
    modelcache_cancel(f.mc, &b.w);        /* twice: harmless */
    ck_assert_int_eq(modelcache_waiters(f.mc), 2);

    /* Model 1 arrives: a (and only a) gets it, with its own reference. */
    modelcache_put(f.mc, r1, PARAM_SE, g1);
    ck_assert_int_eq(a.calls, 1);
    ck_assert_ptr_eq(a.got, g1);
    ck_assert_int_eq(b.calls, 0);
    ck_assert_int_eq(c.calls, 0);
    ck_assert_int_eq(modelcache_waiters(f.mc), 1);
    trainer_globals_put(f.tr, g1);
    trainer_globals_put(f.tr, a.got);     /* a's job done: the cache still holds model 1 */
    trainer_globals *h = modelcache_get(f.mc, r1, PARAM_SE);
    ck_assert(is_model_k(h, 1));
    trainer_globals_put(f.tr, h);

    /* Model 2 under another mask does not wake c; under c's does. */
    modelcache_put(f.mc, r2, PARAM_SE | PARAM_HEAD, g2);
    ck_assert_int_eq(c.calls, 0);
    modelcache_put(f.mc, r2, PARAM_SE, g2);
    ck_assert_int_eq(c.calls, 1);
    ck_assert(is_model_k(c.got, 2));
    trainer_globals_put(f.tr, c.got);
    trainer_globals_put(f.tr, g2);
    ck_assert_int_eq(modelcache_waiters(f.mc), 0);

    modelcache_stats st;
    modelcache_get_stats(f.mc, &st);
    ck_assert_int_eq(st.waited, 2);
    modelcache_note_request(f.mc);
    modelcache_get_stats(f.mc, &st);
    ck_assert_int_eq(st.requested, 1);

    /* A waiter left linked when the cache goes is unlinked, never called. */
    waiter_init(&b, r1);
    modelcache_wait(f.mc, &b.w);
    fx_close(&f);
    ck_assert(!b.w.linked);
    ck_assert_int_eq(b.calls, 0);
}
END_TEST

START_TEST(test_cache_token)
{
    fixture f, g;
    fx_open(&f, NULL);
    fx_open(&g, NULL);
    static const uint8_t zero[WIRE_HOST_TOKEN_LEN];
    /* Random: two processes never share one by chance (2^-128). */
    ck_assert(memcmp(modelcache_token(f.mc), zero, WIRE_HOST_TOKEN_LEN) != 0);
    ck_assert(memcmp(modelcache_token(f.mc), modelcache_token(g.mc), WIRE_HOST_TOKEN_LEN) != 0);
    fx_close(&g);
    uint8_t mine[WIRE_HOST_TOKEN_LEN];
    memcpy(mine, modelcache_token(f.mc), sizeof mine);
    fx_open(&g, mine);
    ck_assert_mem_eq(modelcache_token(g.mc), mine, WIRE_HOST_TOKEN_LEN);
    fx_close(&g);
    fx_close(&f);
}
END_TEST

int main(void)
{
    log_set_level(LOG_WARN);
    Suite *s = suite_create("modelcache");
    TCase *tc = tcase_create("modelcache");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_ref_covers_what_is_decoded);
    tcase_add_test(tc, test_ref_fields_decode);
    tcase_add_test(tc, test_cache_hit_miss_evict);
    tcase_add_test(tc, test_cache_waiters);
    tcase_add_test(tc, test_cache_token);
    suite_add_tcase(s, tc);
    return check_run(s);
}
