/* check_fault: allocation-failure tests in the manner of SQLite's
 * *fault.test. Each test runs one operation with the k-th heap allocation
 * failing, for k = 1, 2, 3, ... until a run reaches no k-th allocation, and
 * checks every time that the operation either fails cleanly (the documented
 * negative errno or NULL, one error line where the API writes one, its
 * outputs left free-able) or succeeds with the right result (SQLite shrugs
 * off some failures, gemm falls back to OpenBLAS). The run with nothing
 * failing comes first and counts the allocations. Each operation is run in
 * two modes: the k-th allocation alone fails ("transient"), and the k-th and
 * every one after it fail ("persistent"), which also shows that the error
 * paths themselves need no memory. Leaks are found by `make check-asan`,
 * where LeakSanitizer checks each test's process at exit.
 *
 * How allocations are failed, without a hook in production code: this
 * binary is linked with --wrap for malloc, calloc, realloc and aligned_alloc
 * (every allocator sefl's code calls; `nm -u libsefl.a` lists them), so the
 * linker sends those calls, made by this file or by an object of
 * libsefl.a, to the __wrap_* functions below, which count them and refuse
 * the chosen one while armed. --wrap rewrites only the objects being linked,
 * so this covers:
 *   - every allocation of sefl's own code, including wire_decode's bounded
 *     protobuf-c allocator (its malloc is in wire.c);
 *   - zlib's inflate state and window: the Makefile links zlib statically
 *     into this binary only, so its objects are rewritten too;
 *   - every SQLite allocation, sqlite3_mprintf included, through SQLite's own
 *     allocator hook (sqlite3_config(SQLITE_CONFIG_MALLOC), as SQLite's
 *     fault tests do), with lookaside off so small allocations are not
 *     served from a preallocated pool.
 * Not covered: allocations inside libc (fopen's FILE and buffer), OpenBLAS,
 * libuv, protobuf-c's default allocator (sefl never uses it) and mbedTLS.
 *
 * --wrap rather than defining malloc in this executable: an executable's
 * malloc would replace AddressSanitizer's for the whole process, and
 * LeakSanitizer sees only ASan's heap, so the ASan run could no longer find
 * the leaks these tests are for. With --wrap, __real_malloc is whatever
 * malloc the process has: ASan's in build-asan, libc's otherwise.
 *
 * Injection is not thread-safe: each operation runs on the test's thread
 * (OpenBLAS's threads allocate through their own library, not counted).
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>
#include <zlib.h>

#include "common/data/dataset.h"
#include "common/net/frame.h"
#include "common/nn/gemm.h"
#include "common/log.h"
#include "common/nn/model.h"
#include "common/nn/params.h"
#include "client/pstore.h"
#include "common/rng.h"
#include "common/fl/wire.h"
#include "tests/check_main.h"

/* ---- allocation failure injection ------------------------------------ */

/* No operation here allocates nearly this often; reaching it means the loop
 * would not end. */
#define FAULT_MAX_RUNS 100000

static struct {
    int armed;          /* allocations are counted (and may fail) */
    int persist;        /* every allocation after fail_at fails too */
    long fail_at;       /* 1-based number of the allocation that fails; 0: none */
    long calls;         /* allocations since fault_arm */
    long failed;        /* allocations refused since fault_arm */
} fault;

/* Starts counting allocations; the k-th fails (k = 0: none does), and with
 * persist every one after it. */
static void fault_arm(long k, int persist)
{
    fault.calls = 0;
    fault.failed = 0;
    fault.fail_at = k;
    fault.persist = persist;
    fault.armed = 1;
}

/* Stops counting; returns the number of allocations refused. */
static long fault_disarm(void)
{
    fault.armed = 0;
    return fault.failed;
}

static int fault_refuse(void)
{
    if (!fault.armed) return 0;
    long n = ++fault.calls;
    if (fault.fail_at == 0 || n < fault.fail_at || (n > fault.fail_at && !fault.persist)) return 0;
    fault.failed++;
    errno = ENOMEM;
    return 1;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);

void *__wrap_malloc(size_t n)
{
    return fault_refuse() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return fault_refuse() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
    return fault_refuse() ? NULL : __real_realloc(p, n);
}

void *__wrap_aligned_alloc(size_t align, size_t n)
{
    return fault_refuse() ? NULL : __real_aligned_alloc(align, n);
}

static sqlite3_mem_methods fault_sqlite_mem;   /* SQLite's own allocator */

static void *fault_sqlite_malloc(int n)
{
    return fault_refuse() ? NULL : fault_sqlite_mem.xMalloc(n);
}

static void *fault_sqlite_realloc(void *p, int n)
{
    return fault_refuse() ? NULL : fault_sqlite_mem.xRealloc(p, n);
}

/* Puts the counting allocator under SQLite; must run before SQLite's first
 * use in the process. */
static void fault_sqlite_install(void)
{
    sqlite3_mem_methods m;
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &fault_sqlite_mem) != SQLITE_OK) abort();
    m = fault_sqlite_mem;
    m.xMalloc = fault_sqlite_malloc;
    m.xRealloc = fault_sqlite_realloc;
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &m) != SQLITE_OK ||
        sqlite3_config(SQLITE_CONFIG_LOOKASIDE, 0, 0) != SQLITE_OK ||
        sqlite3_initialize() != SQLITE_OK)
        abort();
}

/* One run of an operation under test: arms with (k, persist) around the
 * operation itself, checks what it returned, and returns the number of
 * allocations counted while armed. */
typedef long (*fault_op)(void *ctx, long k, int persist);

/* Runs op once with nothing failing, then with allocation k = 1, 2, ...
 * failing until a run counts fewer than k allocations (so nothing failed).
 * Returns the number of runs in which an allocation failed. */
static long fault_loop(fault_op op, void *ctx, int persist)
{
    long runs = 0;
    op(ctx, 0, persist);
    for (long k = 1;; k++) {
        ck_assert_int_lt(k, FAULT_MAX_RUNS);
        if (op(ctx, k, persist) < k) break;
        runs++;
    }
    return runs;
}

/* An error that an API wrote into err: one line, not empty. */
static void assert_error_line(const char *err)
{
    ck_assert_msg(err[0] != 0, "no error line");
    ck_assert_msg(!strchr(err, '\n'), "error is more than one line: %s", err);
}

static char dir[64];
static param_table table;

static void setup(void)
{
    char err[SEFL_ERRLEN];
    /* The pstore test commits (fsync) some four thousand times: on tmpfs
     * that costs nothing, on this machine's disk over a minute. */
    snprintf(dir, sizeof dir, "/dev/shm/check_fault.XXXXXX");
    if (!mkdtemp(dir)) {
        snprintf(dir, sizeof dir, "/tmp/check_fault.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
    }
    ck_assert_int_eq(params_build(&table, &(model_opts){ .arch = "cnn-se", .r = 8, .fc1_gate = 1 }, err), 0);
}

static void teardown(void)
{
    ck_assert_int_eq(check_rm_rf(dir), 0);
}

/* n floats from seed, roughly N(0, 1). */
static void fill_normal(float *v, size_t n, uint64_t seed)
{
    rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) v[i] = (float)rng_normal(&r);
}

/* ---- wire ------------------------------------------------------------- */

typedef struct {
    float *params;          /* (table.total) the sender's model */
    uint8_t *frame;         /* reference encoding of the message */
    size_t len;
    int msg_case;           /* SEFL__ENVELOPE__MSG_TRAIN_TASK or _UPDATE */
    float *got;             /* (table.total) tensors applied from a decoded message */
} wire_ctx;

/* Builds the shared-set tensors of c->params into ts and a TrainTask or an
 * Update carrying them into e (tt, up: storage). */
static int wire_message(wire_ctx *c, wire_tensors *ts, Sefl__Envelope *e, Sefl__TrainTask *tt,
                        Sefl__Update *up)
{
    int rc = wire_tensors_build(&table, params_shared(PARAM_SE), c->params, ts);
    if (rc) return rc;
    sefl__envelope__init(e);
    if (c->msg_case == SEFL__ENVELOPE__MSG_TRAIN_TASK) {
        sefl__train_task__init(tt);
        tt->round = 3;
        tt->tensors = ts->v;
        tt->n_tensors = ts->n;
        tt->lr = 0.05f;
        tt->momentum = 0.9f;
        tt->batch = 32;
        tt->epochs = 1;
        tt->private_groups = "se";
        e->msg_case = SEFL__ENVELOPE__MSG_TRAIN_TASK;
        e->train_task = tt;
    } else {
        sefl__update__init(up);
        up->round = 3;
        up->examples = 600;
        up->tensors = ts->v;
        up->n_tensors = ts->n;
        up->train_loss = 0.5f;
        up->train_accuracy = 0.75f;
        e->msg_case = SEFL__ENVELOPE__MSG_UPDATE;
        e->update = up;
    }
    return 0;
}

static void wire_setup(wire_ctx *c, int msg_case)
{
    memset(c, 0, sizeof *c);
    c->msg_case = msg_case;
    c->params = malloc(table.total * sizeof *c->params);
    c->got = malloc(table.total * sizeof *c->got);
    ck_assert(c->params && c->got);
    fill_normal(c->params, table.total, 11);
    wire_tensors ts;
    Sefl__Envelope e;
    Sefl__TrainTask tt;
    Sefl__Update up;
    ck_assert_int_eq(wire_message(c, &ts, &e, &tt, &up), 0);
    ck_assert_int_eq(wire_encode(&e, &c->frame, &c->len), 0);
    wire_tensors_release(&ts);
}

static void wire_teardown(wire_ctx *c)
{
    free(c->params);
    free(c->got);
    free(c->frame);
}

static long wire_decode_op(void *ctx, long k, int persist)
{
    wire_ctx *c = ctx;
    const uint8_t *payload = c->frame + FRAME_HEADER;
    size_t n = c->len - FRAME_HEADER;
    static Sefl__Envelope sentinel;
    Sefl__Envelope *e = &sentinel;      /* decode must set it, to NULL on failure */
    uint32_t code = 99;
    char err[SEFL_ERRLEN] = "";

    fault_arm(k, persist);
    int rc = wire_decode(payload, n, &table, wire_alloc_limit(n), &e, &code, err);
    long failed = fault_disarm();

    if (rc) {
        ck_assert_int_gt(failed, 0);
        ck_assert_int_eq(rc, -ENOMEM);
        ck_assert_uint_eq(code, WIRE_ERR_LIMIT);
        ck_assert_ptr_null(e);
        assert_error_line(err);
        ck_assert_ptr_nonnull(strstr(err, "out of memory"));
        return fault.calls;
    }
    ck_assert_int_eq(e->msg_case, c->msg_case);
    Sefl__Tensor **v = c->msg_case == SEFL__ENVELOPE__MSG_TRAIN_TASK ? e->train_task->tensors
                                                                     : e->update->tensors;
    size_t nt = c->msg_case == SEFL__ENVELOPE__MSG_TRAIN_TASK ? e->train_task->n_tensors
                                                              : e->update->n_tensors;
    memset(c->got, 0, table.total * sizeof *c->got);
    ck_assert_int_eq(wire_tensors_apply(&table, params_shared(PARAM_SE), v, nt, c->got, err), 0);
    for (int i = 0; i < table.n; i++) {
        const param_info *p = &table.p[i];
        if (!params_selected(p, params_shared(PARAM_SE))) continue;
        ck_assert(!memcmp(c->got + p->offset, c->params + p->offset, p->size * sizeof(float)));
    }
    if (c->msg_case == SEFL__ENVELOPE__MSG_TRAIN_TASK) {
        ck_assert_uint_eq(e->train_task->batch, 32);
        ck_assert_str_eq(e->train_task->private_groups, "se");
    } else {
        ck_assert_uint_eq(e->update->examples, 600);
    }
    wire_free(e);
    return fault.calls;
}

static long wire_encode_op(void *ctx, long k, int persist)
{
    wire_ctx *c = ctx;
    wire_tensors ts;
    Sefl__Envelope e;
    Sefl__TrainTask tt;
    Sefl__Update up;
    uint8_t *frame = NULL;
    size_t len = 0;

    fault_arm(k, persist);
    int rc = wire_message(c, &ts, &e, &tt, &up);
    if (rc == 0) {
        rc = wire_encode(&e, &frame, &len);
        wire_tensors_release(&ts);
    }
    long failed = fault_disarm();

    if (rc) {
        ck_assert_int_gt(failed, 0);
        ck_assert_int_eq(rc, -ENOMEM);
        ck_assert_ptr_null(frame);
        return fault.calls;
    }
    ck_assert_uint_eq(len, c->len);
    ck_assert(!memcmp(frame, c->frame, len));
    free(frame);
    return fault.calls;
}

static long wire_error_op(void *ctx, long k, int persist)
{
    (void)ctx;
    uint8_t *frame = NULL;
    size_t len = 0;
    fault_arm(k, persist);
    int rc = wire_encode_error(WIRE_ERR_REJECTED, "stale round", &frame, &len);
    long failed = fault_disarm();
    if (rc) {
        ck_assert_int_gt(failed, 0);
        ck_assert_int_eq(rc, -ENOMEM);
        ck_assert_ptr_null(frame);
        return fault.calls;
    }
    Sefl__Envelope *e = NULL;
    uint32_t code;
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(wire_decode(frame + FRAME_HEADER, len - FRAME_HEADER, &table,
                                 wire_alloc_limit(len), &e, &code, err), 0);
    ck_assert_int_eq(e->msg_case, SEFL__ENVELOPE__MSG_ERROR);
    ck_assert_str_eq(e->error->message, "stale round");
    wire_free(e);
    free(frame);
    return fault.calls;
}

START_TEST(test_wire_decode)
{
    static const int cases[2] = { SEFL__ENVELOPE__MSG_TRAIN_TASK, SEFL__ENVELOPE__MSG_UPDATE };
    for (int persist = 0; persist < 2; persist++)
        for (int i = 0; i < 2; i++) {
            wire_ctx c;
            wire_setup(&c, cases[i]);
            ck_assert_int_gt(fault_loop(wire_decode_op, &c, persist), 0);
            wire_teardown(&c);
        }
}
END_TEST

START_TEST(test_wire_encode)
{
    for (int persist = 0; persist < 2; persist++) {
        wire_ctx c;
        wire_setup(&c, SEFL__ENVELOPE__MSG_UPDATE);
        ck_assert_int_gt(fault_loop(wire_encode_op, &c, persist), 0);
        wire_teardown(&c);
        ck_assert_int_gt(fault_loop(wire_error_op, NULL, persist), 0);
    }
}
END_TEST

/* ---- frame ------------------------------------------------------------ */

#define FRAME_N 4
static const size_t frame_sizes[FRAME_N] = { 10, 0, 300, 5000 };

typedef struct {
    uint8_t stream[64 * 1024];  /* the frames back to back */
    size_t len;
    int got;                    /* frames delivered so far */
    size_t off;                 /* offset of the next expected payload in stream */
} frame_ctx;

/* Checks each delivered payload against the next frame of the stream,
 * with injection paused: a failing assertion allocates. */
static int frame_check_cb(void *arg, const uint8_t *payload, size_t len)
{
    frame_ctx *c = arg;
    int armed = fault.armed;
    fault.armed = 0;
    ck_assert_int_lt(c->got, FRAME_N);
    ck_assert_uint_eq(len, frame_sizes[c->got]);
    ck_assert(!memcmp(payload, c->stream + c->off + 4, len));
    c->off += 4 + len;
    c->got++;
    fault.armed = armed;
    return 0;
}

static long frame_op(void *ctx, long k, int persist)
{
    frame_ctx *c = ctx;
    frame_reader r;
    int rc = 0;
    c->got = 0;
    c->off = 0;
    frame_reader_init(&r, 1 << 20);
    /* Chunks of 7 bytes: every frame but the empty one spans chunks and
     * is assembled in an allocated buffer. */
    fault_arm(k, persist);
    for (size_t i = 0; i < c->len && !rc; i += 7) {
        size_t n = c->len - i < 7 ? c->len - i : 7;
        rc = frame_reader_feed(&r, c->stream + i, n, frame_check_cb, c);
    }
    long failed = fault_disarm();
    frame_reader_free(&r);
    if (rc) {
        ck_assert_int_gt(failed, 0);
        ck_assert_int_eq(rc, -ENOMEM);
        ck_assert_int_lt(c->got, FRAME_N);
        return fault.calls;
    }
    ck_assert_int_eq(c->got, FRAME_N);
    return fault.calls;
}

START_TEST(test_frame_reader)
{
    static frame_ctx c;
    c.len = 0;
    for (int f = 0; f < FRAME_N; f++) {
        frame_put_header(c.stream + c.len, (uint32_t)frame_sizes[f]);
        c.len += 4;
        for (size_t i = 0; i < frame_sizes[f]; i++) c.stream[c.len++] = (uint8_t)(f * 31 + i);
    }
    for (int persist = 0; persist < 2; persist++)
        ck_assert_int_gt(fault_loop(frame_op, &c, persist), 0);
}
END_TEST

/* ---- idx / dataset ---------------------------------------------------- */

/* Samples in the generated dataset: the images (n * 784 bytes) are larger
 * than idx.c's first buffer (1 MiB), so reading them also grows it. */
#define IDX_SAMPLES 1400

typedef struct {
    char images[128], labels[128];
    uint8_t *pix;               /* (IDX_SAMPLES, 28, 28) */
    uint8_t lab[IDX_SAMPLES];
} idx_ctx;

static void write_idx_gz(const char *path, const uint32_t *dims, int rank, const uint8_t *data,
                         size_t n)
{
    uint8_t head[4 + 4 * 4] = { 0, 0, 0x08, (uint8_t)rank };
    for (int i = 0; i < rank; i++) {
        head[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        head[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        head[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        head[7 + 4 * i] = (uint8_t)dims[i];
    }
    gzFile g = gzopen(path, "wb");
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(gzwrite(g, head, 4 + 4 * (unsigned)rank), 4 + 4 * rank);
    ck_assert_int_eq(gzwrite(g, data, (unsigned)n), (int)n);
    ck_assert_int_eq(gzclose(g), Z_OK);
}

static long dataset_op(void *ctx, long k, int persist)
{
    idx_ctx *c = ctx;
    dataset d;
    char err[SEFL_ERRLEN] = "";
    fault_arm(k, persist);
    int rc = dataset_load_idx(c->images, c->labels, &d, err);
    long failed = fault_disarm();
    if (rc) {
        ck_assert_int_gt(failed, 0);
        ck_assert_msg(rc == -ENOMEM, "rc %d: %s", rc, err);
        assert_error_line(err);
        ck_assert_ptr_nonnull(strstr(err, "out of memory"));
        ck_assert_ptr_null(d.x);
        ck_assert_ptr_null(d.y);
        dataset_free(&d);
        return fault.calls;
    }
    ck_assert_int_eq(d.n, IDX_SAMPLES);
    ck_assert(!memcmp(d.y, c->lab, IDX_SAMPLES));
    size_t i = 0;
    while (i < (size_t)IDX_SAMPLES * MODEL_PIXELS && d.x[i] == c->pix[i] / 255.0f) i++;
    ck_assert_uint_eq(i, (size_t)IDX_SAMPLES * MODEL_PIXELS);
    dataset_free(&d);
    return fault.calls;
}

START_TEST(test_dataset_gz)
{
    static idx_ctx c;
    snprintf(c.images, sizeof c.images, "%s/images.gz", dir);
    snprintf(c.labels, sizeof c.labels, "%s/labels.gz", dir);
    c.pix = malloc((size_t)IDX_SAMPLES * MODEL_PIXELS);
    ck_assert_ptr_nonnull(c.pix);
    rng r;
    rng_seed(&r, 5);
    for (size_t i = 0; i < (size_t)IDX_SAMPLES * MODEL_PIXELS; i++) c.pix[i] = (uint8_t)rng_next(&r);
    for (int i = 0; i < IDX_SAMPLES; i++) c.lab[i] = (uint8_t)rng_below(&r, 10);
    const uint32_t idims[3] = { IDX_SAMPLES, 28, 28 }, ldims[1] = { IDX_SAMPLES };
    write_idx_gz(c.images, idims, 3, c.pix, (size_t)IDX_SAMPLES * MODEL_PIXELS);
    write_idx_gz(c.labels, ldims, 1, c.lab, IDX_SAMPLES);
    for (int persist = 0; persist < 2; persist++)
        ck_assert_int_gt(fault_loop(dataset_op, &c, persist), 0);
    free(c.pix);
}
END_TEST

/* ---- model and gemm --------------------------------------------------- */

static long model_new_op(void *ctx, long k, int persist)
{
    (void)ctx;
    fault_arm(k, persist);
    model *m = model_new(&table, 8);
    long failed = fault_disarm();
    if (!m) {
        ck_assert_int_gt(failed, 0);
        return fault.calls;
    }
    ck_assert_uint_eq(model_table(m)->hash, table.hash);
    const float *w = model_params(m);
    size_t i = 0;
    while (i < table.total && w[i] == 0.0f) i++;
    ck_assert_uint_eq(i, table.total);
    model_free(m);
    return fault.calls;
}

START_TEST(test_model_new)
{
    for (int persist = 0; persist < 2; persist++)
        ck_assert_int_gt(fault_loop(model_new_op, NULL, persist), 0);
}
END_TEST

/* |got - want| within rel * (1 + |want|) for n floats: the two gemm
 * backends sum in different orders and agree to rounding. One assertion for
 * the whole array, because each Check assertion costs a write to the
 * runner. */
static void assert_close(const float *got, const float *want, size_t n, double rel,
                         const char *what)
{
    size_t i = 0;
    while (i < n && fabs((double)got[i] - want[i]) <= rel * (1 + fabs((double)want[i]))) i++;
    ck_assert_msg(i == n, "%s[%zu] is %g, expected %g", what, i, (double)got[i < n ? i : 0],
                  (double)want[i < n ? i : 0]);
}

#define MODEL_B 4

typedef struct {
    model *m;
    float x[MODEL_B * MODEL_PIXELS];
    uint8_t y[MODEL_B];
    float loss;                 /* reference mean loss */
    float *grads;               /* (table.total) reference gradients */
    float *trained;             /* (table.total) reference parameters after model_train */
} model_ctx;

static long model_fb_op(void *ctx, long k, int persist)
{
    model_ctx *c = ctx;
    int correct = -1;
    model_init(c->m, 1);
    memset(model_grads(c->m), 0xff, table.total * sizeof(float));   /* NaN */
    fault_arm(k, persist);
    float loss = model_forward_backward(c->m, c->x, c->y, MODEL_B, &correct);
    fault_disarm();
    ck_assert_int_ge(correct, 0);
    ck_assert_msg(fabsf(loss - c->loss) <= 1e-5f * (1 + c->loss), "k %ld%s: loss %g, expected %g",
                  k, persist ? "+" : "", (double)loss, (double)c->loss);
    assert_close(model_grads(c->m), c->grads, table.total, 1e-4, "grads");
    return fault.calls;
}

static const sgd_config model_sgd = { .lr = 0.05f, .momentum = 0.9f, .weight_decay = 1e-4f };

static long model_train_op(void *ctx, long k, int persist)
{
    model_ctx *c = ctx;
    model_stats st;
    model_init(c->m, 1);
    fault_arm(k, persist);
    int rc = model_train(c->m, c->x, c->y, NULL, MODEL_B, 1, MODEL_B / 2, &model_sgd, NULL, 7, &st);
    long failed = fault_disarm();
    if (rc) {
        ck_assert_int_gt(failed, 0);
        ck_assert_int_eq(rc, -ENOMEM);
        return fault.calls;
    }
    ck_assert_int_eq(st.examples, MODEL_B);
    assert_close(model_params(c->m), c->trained, table.total, 1e-4, "params");
    return fault.calls;
}

START_TEST(test_model_train)
{
    model_ctx *c = calloc(1, sizeof *c);
    ck_assert_ptr_nonnull(c);
    c->m = model_new(&table, MODEL_B);
    c->grads = malloc(table.total * sizeof *c->grads);
    c->trained = malloc(table.total * sizeof *c->trained);
    ck_assert(c->m && c->grads && c->trained);
    fill_normal(c->x, MODEL_B * MODEL_PIXELS, 3);
    for (int i = 0; i < MODEL_B * MODEL_PIXELS; i++) c->x[i] = fabsf(c->x[i]) / 4;
    for (int i = 0; i < MODEL_B; i++) c->y[i] = (uint8_t)(i % MODEL_CLASSES);
    model_init(c->m, 1);
    c->loss = model_forward_backward(c->m, c->x, c->y, MODEL_B, NULL);
    memcpy(c->grads, model_grads(c->m), table.total * sizeof *c->grads);
    model_stats st;
    ck_assert_int_eq(model_train(c->m, c->x, c->y, NULL, MODEL_B, 1, MODEL_B / 2, &model_sgd,
                                 NULL, 7, &st), 0);
    memcpy(c->trained, model_params(c->m), table.total * sizeof *c->trained);
    model_init(c->m, 1);

    /* With the own gemm kernel, the forward and backward passes allocate
     * transposed copies; a refused one falls back to OpenBLAS. The kernel is
     * pinned: "auto" may have chosen OpenBLAS for every shape. */
    const int own = gemm_set_backend("avx512") == 0;
    for (int persist = 0; persist < 2; persist++) {
        long runs = fault_loop(model_fb_op, c, persist);
        if (own) ck_assert_int_gt(runs, 0);
        ck_assert_int_gt(fault_loop(model_train_op, c, persist), 0);
    }
    model_free(c->m);
    free(c->grads);
    free(c->trained);
    free(c);
}
END_TEST

typedef struct {
    gemm_op ta, tb;
    int M, N, K, lda, ldb;
    const float *A, *B;
    float *C;                   /* (M, N) */
    const float *C0;            /* (M, N) C before the call */
    const float *want;          /* (M, N) double-precision reference */
} gemm_ctx;

static long gemm_op_run(void *ctx, long k, int persist)
{
    gemm_ctx *c = ctx;
    memcpy(c->C, c->C0, (size_t)c->M * c->N * sizeof *c->C);
    fault_arm(k, persist);
    gemm(c->ta, c->tb, c->M, c->N, c->K, 0.5f, c->A, c->lda, c->B, c->ldb, 0.25f, c->C, c->N);
    fault_disarm();
    /* beta != 0: a partial product followed by the fallback would count
     * twice and show here. */
    assert_close(c->C, c->want, (size_t)c->M * c->N, 1e-4, "C");
    return fault.calls;
}

/* Runs gemm on (M, N, K) with the given ops and leading dimensions under
 * the fault loop. */
static void gemm_case(gemm_op ta, gemm_op tb, int M, int N, int K, int lda, int ldb)
{
    const int ar = ta == GEMM_N ? M : K, br = tb == GEMM_N ? K : N;
    float *A = malloc((size_t)ar * lda * sizeof *A), *B = malloc((size_t)br * ldb * sizeof *B);
    float *C = malloc((size_t)M * N * sizeof *C), *C0 = malloc((size_t)M * N * sizeof *C0);
    float *want = malloc((size_t)M * N * sizeof *want);
    ck_assert(A && B && C && C0 && want);
    fill_normal(A, (size_t)ar * lda, 1);
    fill_normal(B, (size_t)br * ldb, 2);
    fill_normal(C0, (size_t)M * N, 3);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int p = 0; p < K; p++) {
                double a = ta == GEMM_N ? A[(size_t)i * lda + p] : A[(size_t)p * lda + i];
                double b = tb == GEMM_N ? B[(size_t)p * ldb + j] : B[(size_t)j * ldb + p];
                s += a * b;
            }
            want[(size_t)i * N + j] = (float)(0.5 * s + 0.25 * C0[(size_t)i * N + j]);
        }
    gemm_ctx c = { ta, tb, M, N, K, lda, ldb, A, B, C, C0, want };
    for (int persist = 0; persist < 2; persist++) fault_loop(gemm_op_run, &c, persist);
    free(A);
    free(B);
    free(C);
    free(C0);
    free(want);
}

START_TEST(test_gemm)
{
    /* The own kernel alone, then "auto", whose first product of a shape
     * also allocates a scratch C for the timing (without it: the own kernel,
     * untimed). */
    static const char *const names[] = { "avx512", "auto" };
    for (int i = 0; i < 2; i++) {
        if (gemm_set_backend(names[i]) < 0) continue;
        /* A B^T: the own kernel transposes the smaller operand into a copy. */
        gemm_case(GEMM_N, GEMM_T, 10, 300, 50, 50, 50);
        /* B's rows 4 KB apart and too large for L2: the own kernel copies
         * panels of B. */
        gemm_case(GEMM_N, GEMM_N, 64, 1000, 200, 200, 1024);
    }
}
END_TEST

/* ---- pstore ----------------------------------------------------------- */

typedef struct {
    char path[128];
    uint32_t round;             /* the round of the set committed last */
    float *buf;                 /* (table.total) */
    float *back;                /* (table.total) */
} pstore_ctx;

#define PSTORE_SEL params_private(PARAM_SE)
#define PSTORE_NAME "client-0001"

/* The private set of round r: values that name the round, the tensor and
 * the element, so that a set of another round or a shifted blob shows. */
static void pstore_fill(float *buf, uint32_t r)
{
    for (int i = 0; i < table.n; i++) {
        const param_info *p = &table.p[i];
        if (!params_selected(p, PSTORE_SEL)) continue;
        for (size_t j = 0; j < p->size; j++)
            buf[p->offset + j] = (float)r + (float)i / 64 + (float)j / 65536;
    }
}

/* Opens the file without injection and checks it holds the set of round
 * want (0: nothing stored) intact. */
static void pstore_verify(pstore_ctx *c, uint32_t want)
{
    char err[SEFL_ERRLEN];
    pstore *ps = NULL;
    uint32_t round = 99;
    ck_assert_msg(pstore_open(c->path, PSTORE_NAME, &table, &ps, err) == 0, "%s", err);
    int n = pstore_load(ps, PSTORE_SEL, c->back, &round, err);
    ck_assert_msg(n >= 0, "%s", err);
    ck_assert_uint_eq(round, want);
    if (want) {
        pstore_fill(c->buf, want);
        for (int i = 0; i < table.n; i++) {
            const param_info *p = &table.p[i];
            if (!params_selected(p, PSTORE_SEL)) continue;
            ck_assert(!memcmp(c->back + p->offset, c->buf + p->offset, p->size * sizeof(float)));
        }
    } else {
        ck_assert_int_eq(n, 0);
    }
    pstore_close(ps);
}

/* A pstore error under memory pressure: one line, and never the word that
 * the file is damaged or foreign (-EBADMSG), which would send the user to
 * move a good file away. */
static void pstore_assert_error(int rc, const char *err)
{
    ck_assert_msg(rc == -ENOMEM || rc == -EIO, "rc %d: %s", rc, err);
    assert_error_line(err);
}

/* Open an existing file, commit the next round, load it back, close. */
static long pstore_op(void *ctx, long k, int persist)
{
    pstore_ctx *c = ctx;
    char err[SEFL_ERRLEN] = "";
    pstore *ps = NULL;
    uint32_t next = c->round + 1, round = 0;
    int committed = 0;
    pstore_figures fig = { next, 100, 0.5, 0.75, 1.0 };
    pstore_fill(c->buf, next);
    memset(c->back, 0, table.total * sizeof *c->back);

    fault_arm(k, persist);
    int rc = pstore_open(c->path, PSTORE_NAME, &table, &ps, err);
    if (rc == 0) {
        rc = pstore_commit(ps, PSTORE_SEL, c->buf, &fig, err);
        committed = rc == 0;
    }
    if (rc == 0) rc = pstore_load(ps, PSTORE_SEL, c->back, &round, err);
    pstore_close(ps);
    long failed = fault_disarm();

    if (rc < 0) {
        ck_assert_int_gt(failed, 0);
        pstore_assert_error(rc, err);
    } else {
        ck_assert_int_gt(rc, 0);
        ck_assert_uint_eq(round, next);
        for (int i = 0; i < table.n; i++) {
            const param_info *p = &table.p[i];
            if (!params_selected(p, PSTORE_SEL)) continue;
            ck_assert(!memcmp(c->back + p->offset, c->buf + p->offset, p->size * sizeof(float)));
        }
    }
    /* A failed commit leaves the previous set, a successful one the new
     * set, and either way the file opens without complaint. */
    if (committed) c->round = next;
    pstore_verify(c, c->round);
    return fault.calls;
}

/* Create a new file, commit round 1, close. */
static long pstore_create_op(void *ctx, long k, int persist)
{
    pstore_ctx *c = ctx;
    char err[SEFL_ERRLEN] = "", side[160];
    pstore *ps = NULL;
    int committed = 0;
    pstore_figures fig = { 1, 100, 0.5, 0.75, 1.0 };
    unlink(c->path);
    snprintf(side, sizeof side, "%s-wal", c->path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", c->path);
    unlink(side);
    pstore_fill(c->buf, 1);

    fault_arm(k, persist);
    int rc = pstore_open(c->path, PSTORE_NAME, &table, &ps, err);
    if (rc == 0) {
        rc = pstore_commit(ps, PSTORE_SEL, c->buf, &fig, err);
        committed = rc == 0;
    }
    pstore_close(ps);
    long failed = fault_disarm();

    if (rc < 0) {
        ck_assert_int_gt(failed, 0);
        pstore_assert_error(rc, err);
    }
    /* A creation cut short leaves no file that a later open refuses. */
    pstore_verify(c, committed ? 1 : 0);
    return fault.calls;
}

START_TEST(test_pstore)
{
    pstore_ctx c;
    snprintf(c.path, sizeof c.path, "%s/client.db", dir);
    c.buf = calloc(table.total, sizeof *c.buf);
    c.back = calloc(table.total, sizeof *c.back);
    ck_assert(c.buf && c.back);

    for (int persist = 0; persist < 2; persist++)
        ck_assert_int_gt(fault_loop(pstore_create_op, &c, persist), 0);

    /* The last run of pstore_create_op failed nothing: round 1 is stored. */
    c.round = 1;
    for (int persist = 0; persist < 2; persist++)
        ck_assert_int_gt(fault_loop(pstore_op, &c, persist), 0);
    free(c.buf);
    free(c.back);
}
END_TEST

int main(void)
{
    fault_sqlite_install();
    Suite *s = suite_create("fault");
    TCase *tc = tcase_create("fault");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_wire_decode);
    tcase_add_test(tc, test_wire_encode);
    tcase_add_test(tc, test_frame_reader);
    tcase_add_test(tc, test_dataset_gz);
    tcase_add_test(tc, test_model_new);
    tcase_add_test(tc, test_model_train);
    tcase_add_test(tc, test_gemm);
    tcase_add_test(tc, test_pstore);
    suite_add_tcase(s, tc);
    return check_run(s);
}
