/* sefl-bench: figures for the trainer, printed as `name value` lines.
 *
 *   sefl-bench train   --batch B --samples N [--threads T] [--data DIR] [--seed S] [MODEL]
 *       T threads (default 1, model_set_threads), the model (MODEL: --arch,
 *       --r, --se-placement, --gate; default cnn-se), the first N
 *       Fashion-MNIST training images: one warm-up epoch, then one timed
 *       epoch (as tests/bench/torch_ref.py speed does, plain SGD at lr
 *       0.005); prints the model's cost (parameters in all and in the
 *       gates, the private set under --private se; MACs per sample with and
 *       without the gates), the trained weights' checksum
 *       (`params_checksum`), wall and CPU seconds, GFLOP/s from the model's
 *       FLOP count, and last `train_samples_per_s X` (wall time).
 *   sefl-bench sgemm
 *       single-thread GFLOP/s (per CPU-second) of gemm (gemm.h) at the shapes
 *       the model multiplies: conv2's three products at batch 10 and 32,
 *       conv1's and fc1's at batch 10 (fc1's forward also at 5 rows and at
 *       half its outputs, what a thread of 2 multiplies when the batch or
 *       the outputs are split), and a large square, the ceiling for
 *       `train`. Each shape as `choice_SHAPE` (the backend gemm chose for
 *       it) and `used_SHAPE_gflops` (gemm as the model calls it), then
 *       `sgemm_SHAPE_gflops` on sefl's kernel alone (CPUs with AVX-512) and
 *       `openblas_SHAPE_gflops` on OpenBLAS alone.
 *   sefl-bench tpool
 *       what one tpool_run of a 2-thread pool costs with parts that do
 *       nothing: `tpool_run_spinning_us` for calls back to back (the worker
 *       finds each within its spin), `tpool_run_asleep_us` for calls after
 *       a pause of twice TPOOL_SPIN_NS (the worker has gone to sleep and
 *       must be woken); the cost a split training pays per pool call.
 *   sefl-bench central --epochs E --batch B --lr L --momentum M [--seed S] [--data DIR] [MODEL]
 *       trains on all 60,000 training images and prints `epoch E test_acc X`
 *       after each epoch (the 10,000 test images).
 *   sefl-bench grads --batch B --batches K --gate-bias G|default [--seed S] [--data DIR]
 *       the gradient norm of every tensor at initialisation
 *       (`grad_norm_TENSOR X`, the mean over K mini-batches of the first
 *       training images) and per group (`grad_norm_group_backbone X`): the
 *       measurement behind MODEL_GATE_BIAS (model.h). --gate-bias replaces
 *       the excitations' output biases after model_init: a number, or
 *       `default` for PyTorch's uniform draw (sefl's start before the fix).
 *       torch_ref.py grads prints the same lines for PyTorch.
 *
 * A benchmark, not a test: it asserts nothing and prints what it measured.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/data/dataset.h"
#include "common/nn/gemm.h"
#include "common/log.h"
#include "common/nn/model.h"
#include "common/nn/params.h"
#include "common/nn/tpool.h"
#include "common/rng.h"
#include "common/version.h"

static const char usage[] =
    "usage: sefl-bench train   [--batch B] [--samples N] [--threads T] [--data DIR] [--seed S] [MODEL]\n"
    "       sefl-bench sgemm\n"
    "       sefl-bench tpool\n"
    "       sefl-bench central [--epochs E] [--batch B] [--lr L] [--momentum M] [--seed S] [--data DIR]\n"
    "                          [MODEL]\n"
    "       sefl-bench grads   [--batch B] [--batches K] [--gate-bias G|default] [--seed S] [--data DIR] [MODEL]\n"
    "\n"
    "  train    the model's cost (params, params_private with the gates private,\n"
    "           macs_per_sample with and without the gates) and its training speed\n"
    "           on the first N Fashion-MNIST training images (defaults: B 10, N 6000,\n"
    "           T 1 thread splitting each mini-batch); one warm-up epoch, one timed\n"
    "           epoch; last line `train_samples_per_s X`\n"
    "  sgemm    single-thread sgemm GFLOP/s at the model's shapes, for comparison\n"
    "  tpool    the cost of one call of a 2-thread pool with nothing to do, with\n"
    "           the worker spinning and with it asleep\n"
    "  central  centralised training on all 60,000 images, `epoch E test_acc X` per\n"
    "           epoch (defaults: E 3, B 32, lr 0.05, momentum 0.9, seed 1)\n"
    "  grads    per-tensor gradient norms at initialisation, mean over K batches of B\n"
    "           (defaults: B 10, K 20, gate bias as model_init sets it; `--gate-bias\n"
    "           default` draws it as PyTorch does)\n"
    "  --data DIR  Fashion-MNIST directory (default " DATASET_DEFAULT_DIR ")\n"
    "MODEL (default cnn-se, r 8, with its fc1 gate):\n"
    "  --r R                SE reduction ratio (default 8)\n"
    MODEL_OPTS_USAGE;

typedef struct {
    int batch;
    int samples;
    int epochs;
    int threads;
    double lr;
    double momentum;
    unsigned long long seed;
    const char *data;
    int batches;
    const char *gate_bias;      /* NULL: as model_init sets it */
    model_opts model;
} bench_opts;

/* Prints one line about a bad argument and exits 2, as every sefl program does. */
static void bench_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void bench_bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sefl-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see sefl-bench --help)\n");
    va_end(ap);
    exit(2);
}

/* 1 when word is one of the space-separated words of list. */
static int bench_word_in(const char *list, const char *word)
{
    const size_t n = strlen(word);
    for (const char *p = list; n && (p = strstr(p, word)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0)) return 1;
    return 0;
}

static int bench_int(const char *flag, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        bench_bad("%s needs an integer %ld..%ld, got '%s'", flag, lo, hi, s);
    return (int)v;
}

static double bench_real(const char *flag, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        bench_bad("%s needs a number in [%g, %g], got '%s'", flag, lo, hi, s);
    return v;
}

/* Sets the text model option of flag f to v: 1 when f is one, 0 when not;
 * a bad value exits. */
static int bench_model_flag(const char *f, const char *v, model_opts *m)
{
    static const char *flags[MODEL_OPT_N] = { "--arch", "--se-placement", "--gate" };
    for (int k = 0; k < MODEL_OPT_N; k++) {
        if (strcmp(f, flags[k])) continue;
        char err[SEFL_ERRLEN];
        if (model_opts_set(m, k, v, err)) bench_bad("%s", err);
        return 1;
    }
    return 0;
}

/* Parses the flags after the command; `allowed` lists the flags the command
 * takes, so `sgemm --batch 3` is an error rather than silently ignored. */
static void bench_parse(int argc, char **argv, const char *allowed, bench_opts *o)
{
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            fputs(usage, stdout);
            exit(0);
        }
        if (strncmp(f, "--", 2) || !bench_word_in(allowed, f + 2))
            bench_bad("unknown option '%s' for %s", f, argv[1]);
        if (i + 1 >= argc) bench_bad("%s needs a value", f);
        const char *v = argv[++i];
        if (!strcmp(f, "--batch")) o->batch = bench_int(f, v, 1, MODEL_MAX_BATCH);
        else if (!strcmp(f, "--samples")) o->samples = bench_int(f, v, 1, 60000);
        else if (!strcmp(f, "--epochs")) o->epochs = bench_int(f, v, 1, 1000);
        else if (!strcmp(f, "--threads")) o->threads = bench_int(f, v, 1, MODEL_MAX_THREADS);
        else if (!strcmp(f, "--lr")) o->lr = bench_real(f, v, 0.0, 10.0);
        else if (!strcmp(f, "--momentum")) o->momentum = bench_real(f, v, 0.0, 0.999);
        else if (!strcmp(f, "--seed")) o->seed = (unsigned long long)bench_int(f, v, 0, 2147483647);
        else if (!strcmp(f, "--data")) o->data = v;
        else if (!strcmp(f, "--batches")) o->batches = bench_int(f, v, 1, 1000);
        else if (!strcmp(f, "--gate-bias")) {
            if (strcmp(v, "default")) bench_real(f, v, -20.0, 20.0);
            o->gate_bias = v;
        } else if (!strcmp(f, "--r")) o->model.r = bench_int(f, v, 1, 64);
        else if (bench_model_flag(f, v, &o->model)) continue;
        else bench_bad("unknown option '%s' for %s", f, argv[1]);
    }
    /* A bad model option is a usage error, before any data is loaded. */
    param_table t;
    char err[SEFL_ERRLEN];
    if (params_build(&t, &o->model, err)) bench_bad("%s", err);
}

static double bench_clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double bench_now(void)
{
    return bench_clock(CLOCK_MONOTONIC);
}

/* The model of mo initialised from seed, or NULL. */
static model *bench_model(const model_opts *mo, int batch, unsigned long long seed)
{
    param_table t;
    char err[SEFL_ERRLEN];
    if (params_build(&t, mo, err)) {
        fprintf(stderr, "sefl-bench: %s\n", err);
        return NULL;
    }
    model *m = model_new(&t, batch);
    if (!m) {
        fprintf(stderr, "sefl-bench: out of memory for the model\n");
        return NULL;
    }
    model_init(m, seed);
    return m;
}

static int bench_load(const char *dir, int train, dataset *d)
{
    char err[SEFL_ERRLEN];
    if (dataset_load_fmnist(dir, train, d, err)) {
        fprintf(stderr, "sefl-bench: %s\n", err);
        return -1;
    }
    return 0;
}

static int bench_train(const bench_opts *o)
{
    dataset d = { 0 };
    model *m = NULL;
    int rc = 1;
    if (bench_load(o->data, 1, &d)) goto out;
    if (o->samples > d.n) {
        fprintf(stderr, "sefl-bench: --samples %d is more than the %d training images\n", o->samples, d.n);
        goto out;
    }
    m = bench_model(&o->model, o->batch, o->seed);
    if (!m) goto out;
    if (model_set_threads(m, o->threads)) {
        fprintf(stderr, "sefl-bench: cannot start %d threads\n", o->threads);
        goto out;
    }
    /* torch_ref.py speed: plain SGD, lr 0.005, no momentum. */
    const sgd_config c = { .lr = 0.005f };
    model_stats st;
    model_train(m, d.x, d.y, NULL, o->samples, 1, o->batch, &c, NULL, o->seed, &st);
    /* CPU time as well as wall time: on a shared machine the two differ, and
     * the gap says how much of the wall time other processes took. */
    const double t0 = bench_now(), c0 = bench_clock(CLOCK_PROCESS_CPUTIME_ID);
    model_train(m, d.x, d.y, NULL, o->samples, 1, o->batch, &c, NULL, o->seed + 1, &st);
    const double dt = bench_now() - t0, cpu = bench_clock(CLOCK_PROCESS_CPUTIME_ID) - c0;
    /* forward + backward is about three forward passes of multiply-adds */
    const param_table *t = model_table(m);
    const double flop = 2.0 * 3.0 * (double)model_macs(t, 1);
    printf("arch %s\n", t->arch);
    if (t->se_placement[0]) printf("se_placement %s\n", t->se_placement);
    if (t->gate[0]) printf("gate %s\n", t->gate);
    printf("r %d\n", t->r);
    printf("params %zu\n", t->total);
    printf("params_private %zu\n", params_count(t, params_private(PARAM_SE)));
    printf("macs_per_sample %ld\n", model_macs(t, 1));
    printf("macs_per_sample_no_gates %ld\n", model_macs(t, 0));
    printf("threads %d\n", model_threads(m));
    printf("batch %d\n", o->batch);
    printf("samples %d\n", o->samples);
    printf("train_loss %.4f\n", st.loss);
    /* The trained weights' checksum: two builds (or thread counts) that
     * train to the same bytes print the same line; pin the gemm backend
     * (SEFL_GEMM=sefl) to compare, since "auto" chooses by timing. */
    printf("params_checksum %016llx\n",
           (unsigned long long)params_checksum(t, params_group(PARAM_ALL), model_params(m)));
    printf("seconds %.3f\n", dt);
    printf("cpu_seconds %.3f\n", cpu);
    printf("train_samples_per_cpu_s %.1f\n", o->samples / cpu);
    printf("mflop_per_sample %.2f\n", flop * 1e-6);
    printf("gflops %.2f\n", flop * o->samples / dt * 1e-9);
    printf("train_samples_per_s %.1f\n", o->samples / dt);
    rc = 0;
out:
    model_free(m);
    dataset_free(&d);
    return rc;
}

static void bench_nothing(void *arg, int i)
{
    (void)arg, (void)i;
}

/* Microseconds per tpool_run of a 2-thread pool with empty parts: calls
 * back to back, then calls each after a pause of twice the spin (the
 * pause itself not counted). */
static int bench_tpool(void)
{
    enum { CALLS = 20000, ASLEEP = 200 };
    tpool *p = NULL;
    int err = tpool_new(2, &p);
    if (err) {
        fprintf(stderr, "sefl-bench: cannot start a pool: %s\n", strerror(-err));
        return 1;
    }
    for (int i = 0; i < 100; i++) tpool_run(p, bench_nothing, NULL);
    double t0 = bench_now();
    for (int i = 0; i < CALLS; i++) tpool_run(p, bench_nothing, NULL);
    const double spinning = (bench_now() - t0) / CALLS;
    const struct timespec pause = { 0, 2 * TPOOL_SPIN_NS };
    double asleep = 0.0;
    for (int i = 0; i < ASLEEP; i++) {
        nanosleep(&pause, NULL);
        t0 = bench_now();
        tpool_run(p, bench_nothing, NULL);
        asleep += bench_now() - t0;
    }
    tpool_free(p);
    printf("tpool_threads 2\n");
    printf("tpool_spin_us %.0f\n", TPOOL_SPIN_NS * 1e-3);
    printf("tpool_run_spinning_us %.2f\n", spinning * 1e6);
    printf("tpool_run_asleep_us %.2f\n", asleep / ASLEEP * 1e6);
    return 0;
}

/* GFLOP/s of C (M, N) = A (M, K) B (K, N) with the transposes the model uses,
 * repeated for about a quarter of a second of this thread's CPU time (so
 * other processes on a shared machine change the figure less). */
static double bench_sgemm_one(gemm_op ta, gemm_op tb, int M, int N, int K)
{
    float *a = malloc((size_t)M * K * sizeof *a);
    float *b = malloc((size_t)K * N * sizeof *b);
    float *c = malloc((size_t)M * N * sizeof *c);
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return 0.0;
    }
    rng r;
    rng_seed(&r, 1);
    for (long i = 0; i < (long)M * K; i++) a[i] = (float)rng_uniform(&r);
    for (long i = 0; i < (long)K * N; i++) b[i] = (float)rng_uniform(&r);
    const int lda = ta == GEMM_T ? M : K, ldb = tb == GEMM_T ? K : N;
    long reps = 0;
    /* One call outside the timing: first-use costs (under "auto", the
     * choice's own timing) are not the shape's speed. */
    gemm(ta, tb, M, N, K, 1.0f, a, lda, b, ldb, 0.0f, c, N);
    const double t0 = bench_clock(CLOCK_THREAD_CPUTIME_ID);
    double dt;
    do {
        gemm(ta, tb, M, N, K, 1.0f, a, lda, b, ldb, 0.0f, c, N);
        reps++;
        dt = bench_clock(CLOCK_THREAD_CPUTIME_ID) - t0;
    } while (dt < 0.25);
    free(a);
    free(b);
    free(c);
    return 2.0 * M * N * K * reps / dt * 1e-9;
}

static int bench_sgemm(void)
{
    /* conv2 at batch B: forward W (64, 800) col (800, 64B); dw = dy (64, 64B)
     * col^T; dcol = W^T (800, 64) dy (64, 64B). conv1 and fc1 at batch 10 as
     * the model calls them (fc1's forward also as one of 2 threads runs it). */
    static const struct { const char *name; gemm_op ta, tb; int M, N, K; } shapes[] = {
        { "conv2_fwd_b10", GEMM_N, GEMM_N, 64, 640, 800 },
        { "conv2_dw_b10", GEMM_N, GEMM_T, 64, 800, 640 },
        { "conv2_dx_b10", GEMM_T, GEMM_N, 800, 640, 64 },
        { "conv2_fwd_b32", GEMM_N, GEMM_N, 64, 2048, 800 },
        { "conv2_dw_b32", GEMM_N, GEMM_T, 64, 800, 2048 },
        { "conv2_dx_b32", GEMM_T, GEMM_N, 800, 2048, 64 },
        { "conv1_fwd_b10", GEMM_N, GEMM_N, 32, 5760, 25 },
        { "conv1_dw_b10", GEMM_N, GEMM_T, 32, 25, 5760 },
        { "fc1_fwd_b10", GEMM_N, GEMM_T, 10, 512, 1024 },
        /* one thread's fc1 forward on 2 threads: split by samples (5 rows,
         * all of the weights), and split by outputs (10 rows, half) */
        { "fc1_fwd_b5", GEMM_N, GEMM_T, 5, 512, 1024 },
        { "fc1_fwd_b10_half", GEMM_N, GEMM_T, 10, 256, 1024 },
        { "fc1_dw_b10", GEMM_T, GEMM_N, 512, 1024, 10 },
        { "fc1_dx_b10", GEMM_N, GEMM_N, 10, 1024, 512 },
        { "square_1024", GEMM_N, GEMM_N, 1024, 1024, 1024 },
    };
    /* Shape by shape, so the figures of one shape are taken at nearly the
     * same moment: what the model runs on (under "auto" the first call
     * times both backends and keeps the faster: `choice_SHAPE`), then sefl's
     * kernel alone (where the CPU has one) and OpenBLAS alone. */
    const char *own = gemm_backend();
    printf("gemm_backend %s\n", own);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const gemm_op ta = shapes[i].ta, tb = shapes[i].tb;
        const int M = shapes[i].M, N = shapes[i].N, K = shapes[i].K;
        const int lda = ta == GEMM_T ? M : K, ldb = tb == GEMM_T ? K : N;
        gemm_set_backend(own);
        const double used = bench_sgemm_one(ta, tb, M, N, K);
        printf("choice_%s %s\n", shapes[i].name, gemm_choice(ta, tb, M, N, K, lda, ldb));
        printf("used_%s_gflops %.2f\n", shapes[i].name, used);
        if (gemm_set_backend("avx512") == 0)
            printf("sgemm_%s_gflops %.2f\n", shapes[i].name, bench_sgemm_one(ta, tb, M, N, K));
        gemm_set_backend("openblas");
        printf("openblas_%s_gflops %.2f\n", shapes[i].name, bench_sgemm_one(ta, tb, M, N, K));
    }
    gemm_set_backend(own);
    return 0;
}

static int bench_central(const bench_opts *o)
{
    dataset tr = { 0 }, te = { 0 };
    model *m = NULL;
    int rc = 1;
    if (bench_load(o->data, 1, &tr) || bench_load(o->data, 0, &te)) goto out;
    m = bench_model(&o->model, o->batch, o->seed);
    if (!m) goto out;
    const sgd_config c = { .lr = (float)o->lr, .momentum = (float)o->momentum };
    for (int e = 1; e <= o->epochs; e++) {
        model_stats st, ev;
        /* One model_train call per epoch so the test set is scored in
         * between; momentum carries over from one call to the next. */
        int err = model_train(m, tr.x, tr.y, NULL, tr.n, 1, o->batch, &c, NULL,
                              rng_derive(o->seed, (uint64_t)e), &st);
        if (err) {
            fprintf(stderr, "sefl-bench: training failed: %s\n", strerror(-err));
            goto out;
        }
        model_evaluate(m, te.x, te.y, NULL, te.n, &ev);
        log_info("epoch %d train_loss %.4f train_acc %.4f seconds %.1f test_loss %.4f",
                 e, st.loss, st.accuracy, st.seconds, ev.loss);
        printf("epoch %d test_acc %.4f\n", e, ev.accuracy);
        fflush(stdout);
    }
    rc = 0;
out:
    model_free(m);
    dataset_free(&tr);
    dataset_free(&te);
    return rc;
}

/* Replaces the excitations' output biases: `default` draws them
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as PyTorch's nn.Linear does, a number
 * sets every one to it. */
static void bench_set_gate_bias(model *m, const char *how, unsigned long long seed)
{
    const param_table *t = model_table(m);
    rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < t->n; i++) {
        const param_info *p = &t->p[i];
        if (!model_is_gate_bias(p)) continue;
        /* fc2.weight (C, R) comes just before: its fan-in is R. */
        const double bound = 1.0 / sqrt((double)p[-1].shape[1]);
        for (size_t k = 0; k < p->size; k++)
            model_params(m)[p->offset + k] = strcmp(how, "default")
                ? (float)strtod(how, NULL) : (float)((2.0 * rng_uniform(&r) - 1.0) * bound);
    }
}

static int bench_grads(const bench_opts *o)
{
    dataset d = { 0 };
    model *m = NULL;
    double *sum = NULL;         /* (table.n) summed norms per tensor */
    int rc = 1;
    if (bench_load(o->data, 1, &d)) goto out;
    if ((long)o->batch * o->batches > d.n) {
        fprintf(stderr, "sefl-bench: %d batches of %d are more than the %d training images\n",
                o->batches, o->batch, d.n);
        goto out;
    }
    m = bench_model(&o->model, o->batch, o->seed);
    if (!m) goto out;
    if (o->gate_bias) bench_set_gate_bias(m, o->gate_bias, o->seed);
    const param_table *t = model_table(m);
    sum = calloc((size_t)t->n, sizeof *sum);
    if (!sum) goto out;
    for (int k = 0; k < o->batches; k++) {
        const long first = (long)k * o->batch;
        model_forward_backward(m, d.x + first * MODEL_PIXELS, d.y + first, o->batch, NULL);
        for (int i = 0; i < t->n; i++) {
            const float *g = model_grads(m) + t->p[i].offset;
            double ss = 0.0;
            for (size_t j = 0; j < t->p[i].size; j++) ss += (double)g[j] * g[j];
            sum[i] += sqrt(ss);
        }
    }
    /* A group's norm is the root of its tensors' squared norms; fc is in
     * both backbone and head, as in params.h. */
    static const struct { const char *name; unsigned group; } groups[] = {
        { "backbone", PARAM_BACKBONE }, { "se", PARAM_SE }, { "head", PARAM_HEAD },
    };
    for (int i = 0; i < t->n; i++) printf("grad_norm_%s %.6g\n", t->p[i].name, sum[i] / o->batches);
    for (size_t gi = 0; gi < sizeof groups / sizeof groups[0]; gi++) {
        double ss = 0.0;
        for (int i = 0; i < t->n; i++)
            if (t->p[i].groups & groups[gi].group) ss += (sum[i] / o->batches) * (sum[i] / o->batches);
        printf("grad_norm_group_%s %.6g\n", groups[gi].name, sqrt(ss));
    }
    rc = 0;
out:
    free(sum);
    model_free(m);
    dataset_free(&d);
    return rc;
}

int main(int argc, char **argv)
{
    bench_opts o = { .batch = 10, .samples = 6000, .epochs = 3, .threads = 1, .lr = 0.05,
                     .momentum = 0.9, .seed = 1, .data = NULL,
                     .batches = 20, .gate_bias = NULL, .model = model_opts_default() };
    if (argc < 2) bench_bad("a command is needed: train, sgemm, tpool, central or grads");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("sefl-bench %s\n", SEFL_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "train")) {
        bench_parse(argc, argv, "batch samples threads data seed arch r se-placement gate", &o);
        return bench_train(&o);
    }
    if (!strcmp(cmd, "sgemm")) {
        bench_parse(argc, argv, "", &o);
        return bench_sgemm();
    }
    if (!strcmp(cmd, "tpool")) {
        bench_parse(argc, argv, "", &o);
        return bench_tpool();
    }
    if (!strcmp(cmd, "central")) {
        o.batch = 32;
        bench_parse(argc, argv, "epochs batch lr momentum seed data arch r se-placement gate", &o);
        return bench_central(&o);
    }
    if (!strcmp(cmd, "grads")) {
        bench_parse(argc, argv, "batch batches gate-bias seed data arch r se-placement gate", &o);
        return bench_grads(&o);
    }
    bench_bad("unknown command '%s': use train, sgemm, tpool, central or grads", cmd);
}
