/* gen_corpus: writes the seed corpus of the fuzz targets.
 *
 *   make fuzz-corpus   (runs build/fuzz/gen_corpus tests/fuzz/corpus)
 *
 * The files are committed under tests/fuzz/corpus/<target>/; this program is
 * how they were made, so they can be remade when the protocol changes. Seeds
 * are valid messages of every type and near-valid ones (one thing wrong), so
 * the fuzzer starts next to every check instead of having to find the
 * protobuf structure by itself. The table is the one fuzz_envelope uses:
 * cnn-se, r = 8, no fc1 gate.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "common/net/frame.h"
#include "common/data/idx.h"
#include "common/log.h"
#include "common/nn/params.h"
#include "common/rng.h"
#include "common/fl/wire.h"

static const char *out_dir;
static param_table T;
static float *M;                /* (T.total) */

static void put(const char *target, const char *name, const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", out_dir, target);
    if (mkdir(path, 0755) && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", out_dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
        perror(path);
        exit(1);
    }
}

/* Encodes e and writes its payload (no prefix) as an envelope seed. */
static void put_env(const char *name, Sefl__Envelope *e, int keep_version)
{
    uint32_t v = e->version;
    uint8_t *f;
    size_t n;
    if (wire_encode(e, &f, &n)) exit(1);
    if (keep_version) {
        /* wire_encode sets the version; pack again with the one asked for. */
        e->version = v;
        n = FRAME_HEADER + sefl__envelope__pack(e, f + FRAME_HEADER);
    }
    put("fuzz_envelope", name, f + FRAME_HEADER, n - FRAME_HEADER);
    free(f);
}

static Sefl__Envelope env(Sefl__Envelope__MsgCase c, void *m)
{
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    e.msg_case = c;
    e.hello = m;   /* a union: any member */
    return e;
}

/* The selected tensors as INT8 (q = round(x / scale)), in q's storage. */
static void to_int8(wire_tensors *ts, int8_t *q)
{
    for (size_t i = 0; i < ts->n; i++) {
        Sefl__Tensor *x = ts->v[i];
        const float *src = (const float *)x->data.data;   /* (size) */
        size_t size = x->data.len / 4;
        float max = 1e-6f;
        for (size_t k = 0; k < size; k++) max = fabsf(src[k]) > max ? fabsf(src[k]) : max;
        x->scale = max / 127;
        for (size_t k = 0; k < size; k++) q[k] = (int8_t)lrintf(src[k] / x->scale);
        x->encoding = SEFL__ENCODING__INT8;
        x->data.data = (uint8_t *)q;
        x->data.len = size;
        q += size;
    }
}

static void gen_envelopes(void)
{
    Sefl__ModelSpec spec;
    wire_spec_from_table(&T, &spec);

    Sefl__Hello h = SEFL__HELLO__INIT;
    h.spec = &spec;
    h.train_examples = 600;
    h.test_examples = 200;
    h.software = "sefl";
    Sefl__Envelope e = env(SEFL__ENVELOPE__MSG_HELLO, &h);
    put_env("hello", &e, 0);
    spec.table_hash ^= 0x10;
    put_env("hello_bad_hash", &e, 0);
    wire_spec_from_table(&T, &spec);
    uint8_t token[16] = { 0x5e, 0xf1 }, ref[32] = { 0x0d, 0xe1 };
    h.host_token = (ProtobufCBinaryData){ sizeof token, token };
    put_env("hello_host_token", &e, 0);

    Sefl__Welcome w = SEFL__WELCOME__INIT;
    w.spec = &spec;
    w.client_id = "client-0003";
    w.round = 7;
    w.private_groups = "se";
    w.heartbeat_seconds = 10;
    w.init_seed = 42;
    e = env(SEFL__ENVELOPE__MSG_WELCOME, &w);
    put_env("welcome", &e, 0);

    wire_tensors se, head;
    if (wire_tensors_build(&T, params_group(PARAM_SE), M, &se) ||
        wire_tensors_build(&T, params_group(PARAM_HEAD), M, &head))
        exit(1);

    Sefl__TrainTask tt = SEFL__TRAIN_TASK__INIT;
    tt.round = 8;
    tt.tensors = se.v;
    tt.n_tensors = se.n;
    tt.lr = 0.05f;
    tt.momentum = 0.9f;
    tt.batch = 32;
    tt.epochs = 1;
    tt.seed = 5;
    tt.private_groups = "se";
    e = env(SEFL__ENVELOPE__MSG_TRAIN_TASK, &tt);
    put_env("train_task_se_f32", &e, 0);
    tt.batch = 0;
    put_env("train_task_batch0", &e, 0);
    tt.batch = 32;
    /* By reference: the model's hash and no tensors. */
    tt.model_ref = (ProtobufCBinaryData){ sizeof ref, ref };
    tt.n_tensors = 0;
    put_env("train_task_ref", &e, 0);
    tt.n_tensors = se.n;
    tt.model_ref.len = 0;

    Sefl__ModelRequest mr = SEFL__MODEL_REQUEST__INIT;
    mr.round = 8;
    mr.model_ref = (ProtobufCBinaryData){ sizeof ref, ref };
    e = env(SEFL__ENVELOPE__MSG_MODEL_REQUEST, &mr);
    put_env("model_request", &e, 0);

    Sefl__Update u = SEFL__UPDATE__INIT;
    u.round = 8;
    u.examples = 600;
    u.tensors = se.v;
    u.n_tensors = se.n;
    u.train_loss = 0.5f;
    u.train_accuracy = 0.75f;
    u.train_seconds = 2;
    e = env(SEFL__ENVELOPE__MSG_UPDATE, &u);
    /* One tensor wrong at a time, on the F32 set. */
    Sefl__Tensor *first = se.v[0];
    se.v[0] = se.v[1];
    put_env("update_duplicate", &e, 0);
    se.v[0] = first;
    first->shape[0]++;
    put_env("update_bad_shape", &e, 0);
    first->shape[0]--;
    first->data.len -= 4;
    put_env("update_bad_len_f32", &e, 0);
    first->data.len += 4;
    float *x1 = (float *)se.v[1]->data.data;   /* points into M */
    float saved = x1[2];
    x1[2] = NAN;
    put_env("update_nan", &e, 0);
    x1[2] = saved;

    int8_t *q = malloc(T.total);
    int8_t *qh = malloc(T.total);
    if (!q || !qh) exit(1);
    to_int8(&se, q);
    put_env("update_se_int8", &e, 0);
    float scale = se.v[3]->scale;
    se.v[3]->scale = 0;
    put_env("update_bad_scale", &e, 0);
    se.v[3]->scale = scale;
    se.v[3]->data.len++;
    put_env("update_bad_len_int8", &e, 0);
    se.v[3]->data.len--;

    Sefl__EvalTask et = SEFL__EVAL_TASK__INIT;
    et.round = 8;
    to_int8(&head, qh);
    et.tensors = head.v;
    et.n_tensors = head.n;
    et.private_groups = "se";
    e = env(SEFL__ENVELOPE__MSG_EVAL_TASK, &et);
    put_env("eval_task_head_int8", &e, 0);

    Sefl__EvalReport r = SEFL__EVAL_REPORT__INIT;
    r.round = 8;
    r.examples = 200;
    r.accuracy = 0.9f;
    r.loss = 0.3f;
    e = env(SEFL__ENVELOPE__MSG_EVAL_REPORT, &r);
    put_env("eval_report", &e, 0);

    Sefl__Heartbeat hb = SEFL__HEARTBEAT__INIT;
    hb.nonce = 77;
    e = env(SEFL__ENVELOPE__MSG_HEARTBEAT, &hb);
    put_env("heartbeat", &e, 0);
    e.version = 2;
    put_env("heartbeat_version2", &e, 1);

    Sefl__Error er = SEFL__ERROR__INIT;
    er.code = WIRE_ERR_MODEL;
    er.message = "model mismatch";
    e = env(SEFL__ENVELOPE__MSG_ERROR, &er);
    put_env("error", &e, 0);

    Sefl__Bye b = SEFL__BYE__INIT;
    b.reason = "done";
    e = env(SEFL__ENVELOPE__MSG_BYE, &b);
    put_env("bye", &e, 0);

    /* Hand-made bytes: a oneof field this version does not know (12), and a
     * string with a NUL inside. */
    static const uint8_t unknown[] = { 0x08, 0x01, 0x62, 0x02, 0x08, 0x01 };
    static const uint8_t nul[] = { 0x08, 0x01, 0x52, 0x07, 0x0a, 0x05, 'd', 'o', 0, 'n', 'e' };
    put("fuzz_envelope", "unknown_oneof", unknown, sizeof unknown);
    put("fuzz_envelope", "bye_nul", nul, sizeof nul);

    free(q);
    free(qh);
    wire_tensors_release(&se);
    wire_tensors_release(&head);
}

/* fuzz_frame input: one byte choosing the chunk size, then the stream. */
static void gen_frames(void)
{
    uint8_t s[2048];
    size_t n = 0;
    s[n++] = 3;
    for (uint32_t len = 0; len < 40; len += 13) {
        frame_put_header(s + n, len);
        n += 4;
        for (uint32_t i = 0; i < len; i++) s[n++] = (uint8_t)(i * 7);
    }
    put("fuzz_frame", "small_frames", s, n);

    /* A real frame (an Error envelope), then one at the target's limit
     * (256), then a prefix one over it. */
    uint8_t *f;
    size_t fl;
    if (wire_encode_error(WIRE_ERR_LIMIT, "frame too long", &f, &fl)) exit(1);
    n = 0;
    s[n++] = 0;
    memcpy(s + n, f, fl);
    n += fl;
    free(f);
    frame_put_header(s + n, 256);
    n += 4;
    memset(s + n, 0x55, 256);
    n += 256;
    frame_put_header(s + n, 257);
    n += 4;
    put("fuzz_frame", "at_and_over_limit", s, n);

    /* A frame that stops the feed (first byte 0xee), frames after it, and
     * a cut-off last frame. */
    n = 0;
    s[n++] = 1;
    frame_put_header(s + n, 2);
    n += 4;
    s[n++] = 0xee;
    s[n++] = 0;
    frame_put_header(s + n, 0);
    n += 4;
    frame_put_header(s + n, 100);
    n += 4;
    memset(s + n, 1, 50);
    n += 50;
    put("fuzz_frame", "stop_and_partial", s, n);

    /* Bit 7 of the first byte: the limit is raised after the first frame,
     * so the 600-byte frame after it passes. */
    n = 0;
    s[n++] = 0x80 | 5;
    frame_put_header(s + n, 3);
    n += 4;
    memset(s + n, 2, 3);
    n += 3;
    frame_put_header(s + n, 600);
    n += 4;
    memset(s + n, 3, 600);
    n += 600;
    put("fuzz_frame", "raise_limit", s, n);
}

/* fuzz_idx input: one mode byte (bit 0 gzip, bit 1 compressed by the
 * target, bit 2 in two gzip members, bit 3 the larger limit; see
 * fuzz_idx.c), then the file. s gets
 * the mode byte and a valid IDX file of rank dims and values i * 3;
 * returns its length. */
static size_t idx_seed(uint8_t *s, uint8_t mode, int rank, const uint32_t *dims)
{
    size_t n = 0, count = 1;
    s[n++] = mode;
    s[n++] = 0;
    s[n++] = 0;
    s[n++] = 0x08;
    s[n++] = (uint8_t)rank;
    for (int i = 0; i < rank; i++) {
        frame_put_header(s + n, dims[i]);   /* big-endian uint32, as IDX */
        n += 4;
        count *= dims[i];
    }
    for (size_t i = 0; i < count; i++) s[n++] = (uint8_t)(i * 3);
    return n;
}

/* Compresses p[0..n) into z as one gzip member; returns its length. */
static size_t gzip_bytes(const uint8_t *p, size_t n, uint8_t *z, size_t cap)
{
    z_stream st;
    memset(&st, 0, sizeof st);
    if (deflateInit2(&st, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) exit(1);
    st.next_in = (uint8_t *)p;
    st.avail_in = (unsigned)n;
    st.next_out = z;
    st.avail_out = (unsigned)cap;
    if (deflate(&st, Z_FINISH) != Z_STREAM_END) exit(1);
    size_t len = cap - st.avail_out;
    deflateEnd(&st);
    return len;
}

static void gen_idx(void)
{
    uint8_t s[1024], z[1024];
    static const uint32_t d1[] = { 10 };
    static const uint32_t d3[] = { 3, 4, 5 };
    size_t n = idx_seed(s, 0, 1, d1);
    put("fuzz_idx", "plain_rank1", s, n);
    n = idx_seed(s, 0, 3, d3);
    put("fuzz_idx", "plain_rank3", s, n);
    /* The rank-3 file gzipped here, so the seed holds real gzip framing. */
    z[0] = 1;
    n = 1 + gzip_bytes(s + 1, n - 1, z + 1, sizeof z - 1);
    put("fuzz_idx", "gz_rank3", z, n);
    n = idx_seed(s, 3, 1, d1);
    put("fuzz_idx", "gz_by_target_rank1", s, n);
    n = idx_seed(s, 7, 3, d3);
    put("fuzz_idx", "gz_two_members_rank3", s, n);

    /* 2.5 MiB of zeros, more than idx_read's first 1 MiB buffer (so it
     * grows twice), in about 2.5 KiB of gzip (the target's inputs are at
     * most 4096 bytes). */
    static const uint32_t dbig[] = { 5 << 19 };
    size_t zcap = 4096;
    uint8_t *big = malloc(dbig[0] + 16), *zbig = malloc(zcap);
    if (!big || !zbig) exit(1);
    n = idx_seed(big, 0, 1, dbig);
    memset(big + 9, 0, dbig[0]);   /* after the mode byte and the header */
    zbig[0] = 1 | 8;
    n = 1 + gzip_bytes(big + 1, n - 1, zbig + 1, zcap - 1);
    put("fuzz_idx", "gz_big_rank1", zbig, n);

    /* 40000 random bytes, whose gzip is longer than idx_read's 16 KiB input
     * buffer, so that it is refilled mid-stream. This seed also raises the
     * target's input size from libFuzzer's default 4096 to its own. */
    static const uint32_t drand[] = { 40000 };
    n = idx_seed(big, 1, 1, drand);
    rng g;
    rng_seed(&g, 12);
    for (size_t i = 9; i < n; i++) big[i] = (uint8_t)rng_next(&g);
    zcap = 65536;
    uint8_t *zr = realloc(zbig, zcap);
    if (!zr) exit(1);
    zbig = zr;
    zbig[0] = 1;
    n = 1 + gzip_bytes(big + 1, n - 1, zbig + 1, zcap - 1);
    put("fuzz_idx", "gz_refill_rank1", zbig, n);
    free(big);
    free(zbig);
}

int main(int argc, char **argv)
{
    char err[SEFL_ERRLEN];
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus DIR\n");
        return 2;
    }
    out_dir = argv[1];
    if (mkdir(out_dir, 0755) && errno != EEXIST) {
        perror(out_dir);
        return 1;
    }
    if (params_build(&T, &(model_opts){ .arch = "cnn-se", .r = 8, .fc1_gate = 0 }, err)) {
        fprintf(stderr, "gen_corpus: %s\n", err);
        return 1;
    }
    M = malloc(T.total * sizeof *M);
    if (!M) return 1;
    rng g;
    rng_seed(&g, 11);
    for (size_t i = 0; i < T.total; i++) M[i] = (float)(0.1 * rng_normal(&g));
    gen_envelopes();
    gen_frames();
    gen_idx();
    free(M);
    return 0;
}
