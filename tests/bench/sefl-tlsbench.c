/* sefl-tlsbench: measures sefl's TLS transport, and serves as a TLS echo
 * server for integration tests.
 *
 *   sefl-tlsbench [--certs DIR] [--handshakes N] [--megabytes M] [--frame-kb K]
 *   sefl-tlsbench serve --certs DIR [--listen HOST:PORT]
 *
 * The measurement runs a server on its own thread and loop and a client on
 * the main thread, over 127.0.0.1, both through common/conn.c:
 *   - N sequential connections: the time from conn_connect to on_open
 *     (TCP connect plus the mutual-TLS handshake);
 *   - one connection sending M megabytes of K KiB frames as fast as the
 *     output queue drains; the server counts whole frames delivered and
 *     answers a final one-byte frame "!" with its count, so the figure is
 *     MB/s of frames delivered (1 MB = 10^6 bytes);
 *   - the raw speed of the suites' AEADs in mbedTLS on 16 KiB records, the
 *     ceiling the bulk figure is to be read against.
 * Wall-clock figures depend on what else the machine runs; the CPU-time
 * figures (handshake_cpu_ms_both_ends, bulk_MB_per_cpu_s_per_end, aead_*)
 * do much less, and compare the transport with its cipher directly.
 * Prints `name value` lines. Without --certs it makes a temporary project
 * with the sefl-certs next to this program.
 *
 * `serve` echoes every frame back, logs `listening on HOST:PORT`, each open
 * (peer CN, suite) and each close (reason), and stops on SIGTERM/SIGINT.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <mbedtls/chachapoly.h>
#include <mbedtls/gcm.h>

#include "common/net/conn.h"
#include "common/log.h"
#include "common/net/tls.h"
#include "common/version.h"

#define BENCH_MAX_CONNS 1024         /* open connections a server tracks */
#define BENCH_MAX_HANDSHAKES 100000
#define BENCH_MAX_MEGABYTES 100000
#define BENCH_MAX_FRAME_KB 16384
#define BENCH_OUTQ_HIGH (8u << 20)   /* the client refills its queue below this */
#define BENCH_RECORD 16384           /* AEAD message size: one TLS record */

/* ---- the server (echo for `serve`, counting for the bench) ------------ */

typedef struct {
    uv_loop_t loop;
    tls_ctx *tls;
    conn_listener *l;
    uv_async_t stop;                 /* bench: the client thread asks it to stop */
    uv_signal_t sigterm, sigint;     /* serve: stop on either */
    int echo;                        /* echo frames, else count them */
    int quiet;                       /* no per-connection log lines */
    conn *open[BENCH_MAX_CONNS];     /* connections past on_open */
    uint64_t bytes[BENCH_MAX_CONNS]; /* payload bytes of whole frames, per open conn */
    int nopen;
} bench_server;

static int srv_find(const bench_server *s, const conn *c)
{
    for (int i = 0; i < s->nopen; i++)
        if (s->open[i] == c) return i;
    return -1;
}

static void srv_on_open(conn *c)
{
    bench_server *s = conn_user(c);
    if (s->nopen == BENCH_MAX_CONNS) {
        conn_close(c, "too many connections");
        return;
    }
    s->bytes[s->nopen] = 0;
    s->open[s->nopen++] = c;
    /* A test peer is trusted once its certificate is: the big limit. */
    conn_set_authenticated(c);
    if (!s->quiet)
        log_info("open %s from %s (%s)", conn_peer_name(c), conn_peer_addr(c), conn_tls_suite(c));
}

static void srv_on_frame(conn *c, const uint8_t *p, size_t n)
{
    bench_server *s = conn_user(c);
    if (s->echo) {
        int rc = conn_send(c, p, n);
        if (rc < 0) conn_close(c, rc == -ENOBUFS ? "output queue full" : "send failed");
        return;
    }
    int i = srv_find(s, c);
    if (i < 0) return;
    if (n == 1 && p[0] == '!') {
        uint8_t count[8];   /* big-endian byte count */
        for (int b = 0; b < 8; b++) count[b] = (uint8_t)(s->bytes[i] >> (56 - 8 * b));
        conn_send(c, count, sizeof count);
        return;
    }
    s->bytes[i] += n;
}

static void srv_on_close(conn *c, int status, const char *reason)
{
    bench_server *s = conn_user(c);
    int i = srv_find(s, c);
    if (i >= 0) {
        s->nopen--;
        s->open[i] = s->open[s->nopen];
        s->bytes[i] = s->bytes[s->nopen];
    }
    if (!s->quiet) log_info("close %s: %s (status %d)", conn_peer_addr(c), reason, status);
}

static const conn_callbacks srv_cb = { srv_on_open, srv_on_frame, srv_on_close };

static void srv_shutdown(bench_server *s)
{
    if (s->l) conn_listener_close(s->l);
    s->l = NULL;
    /* conn_close makes on_close run later; walk a copy of the list. */
    conn *open[BENCH_MAX_CONNS];
    int n = s->nopen;
    memcpy(open, s->open, (size_t)n * sizeof *open);
    for (int i = 0; i < n; i++) conn_close(open[i], "server stopping");
}

static int srv_start(bench_server *s, const char *certs, const char *listen, int echo, int quiet,
                     char *err)
{
    memset(s, 0, sizeof *s);
    s->echo = echo;
    s->quiet = quiet;
    int ret = uv_loop_init(&s->loop);
    if (ret < 0) {
        err_set(err, "uv_loop_init: %s", uv_strerror(ret));
        return ret;
    }
    if ((ret = tls_ctx_new_server(&s->tls, certs, err)) < 0) return ret;
    conn_limits lim = conn_limits_default();
    lim.max_frame = (size_t)BENCH_MAX_FRAME_KB << 10;
    return conn_listen(&s->loop, listen, s->tls, &lim, &srv_cb, s, &s->l, err);
}

static void srv_finish(bench_server *s)
{
    uv_run(&s->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&s->loop) != 0) log_warn("server loop did not close clean");
    tls_ctx_free(s->tls);
}

/* ---- serve ------------------------------------------------------------ */

static void serve_on_signal(uv_signal_t *h, int signum)
{
    bench_server *s = h->data;
    log_info("signal %d: stopping", signum);
    srv_shutdown(s);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
}

static int serve(const char *certs, const char *listen)
{
    bench_server *s = malloc(sizeof *s);
    char err[SEFL_ERRLEN];
    if (!s || srv_start(s, certs, listen, 1, 0, err) < 0) {
        fprintf(stderr, "sefl-tlsbench: %s\n", s ? err : "out of memory");
        free(s);
        return 1;
    }
    log_info("listening on %.*s:%d", (int)(strrchr(listen, ':') - listen), listen,
             conn_listener_port(s->l));
    log_info("suites offered: %s", tls_suites_offered());
    uv_signal_init(&s->loop, &s->sigterm);
    uv_signal_init(&s->loop, &s->sigint);
    s->sigterm.data = s->sigint.data = s;
    uv_signal_start(&s->sigterm, serve_on_signal, SIGTERM);
    uv_signal_start(&s->sigint, serve_on_signal, SIGINT);
    srv_finish(s);
    free(s);
    log_info("stopped");
    return 0;
}

/* ---- the bench client ------------------------------------------------- */

typedef struct {
    uv_loop_t loop;
    tls_ctx *tls;
    char addr[32];
    conn_limits lim;
    /* handshakes */
    int n, done;
    uint64_t t0;
    double *ms;                      /* (n) connect-to-open times */
    /* bulk */
    conn *c;
    int bang_sent;                   /* the final "!" is queued */
    uint8_t *frame;                  /* (frame_len) payload sent over and over */
    size_t frame_len;
    uint64_t total, sent, delivered;
    uint64_t t_start, t_end;
    char suite[96];
    int failed;
} bench_client;

static void hs_next(bench_client *b);

static void hs_on_open(conn *c)
{
    bench_client *b = conn_user(c);
    b->ms[b->done] = (double)(uv_hrtime() - b->t0) / 1e6;
    snprintf(b->suite, sizeof b->suite, "%s", conn_tls_suite(c));
    conn_close(c, "done");
}

static void hs_on_close(conn *c, int status, const char *reason)
{
    bench_client *b = conn_user(c);
    if (status != 0) {
        fprintf(stderr, "sefl-tlsbench: handshake %d failed: %s\n", b->done, reason);
        b->failed = 1;
        return;
    }
    b->done++;
    hs_next(b);
}

static const conn_callbacks hs_cb = { hs_on_open, NULL, hs_on_close };

static void hs_next(bench_client *b)
{
    if (b->done == b->n) return;
    char err[SEFL_ERRLEN];
    conn *c;
    b->t0 = uv_hrtime();
    if (conn_connect(&b->loop, b->addr, b->tls, &b->lim, &hs_cb, b, &c, err) < 0) {
        fprintf(stderr, "sefl-tlsbench: %s\n", err);
        b->failed = 1;
    }
}

/* Keeps the output queue topped up; after the last frame sends "!". */
static void bulk_fill(bench_client *b)
{
    if (b->bang_sent) return;
    while (b->sent < b->total && conn_outq_bytes(b->c) < BENCH_OUTQ_HIGH) {
        size_t n = b->frame_len;
        if (b->total - b->sent < n) n = (size_t)(b->total - b->sent);
        int rc = conn_send(b->c, b->frame, n);
        if (rc == -ENOBUFS) return;
        if (rc < 0) {
            b->failed = 1;
            return;
        }
        b->sent += n;
    }
    if (b->sent == b->total) {
        b->bang_sent = 1;
        static const uint8_t bang = '!';
        if (conn_send(b->c, &bang, 1) < 0) b->failed = 1;
    }
}

static void bulk_on_drain(conn *c)
{
    bulk_fill(conn_user(c));
}

static void bulk_on_open(conn *c)
{
    bench_client *b = conn_user(c);
    conn_set_authenticated(c);
    conn_set_on_drain(c, bulk_on_drain);
    b->t_start = uv_hrtime();
    bulk_fill(b);
}

static void bulk_on_frame(conn *c, const uint8_t *p, size_t n)
{
    bench_client *b = conn_user(c);
    if (n != 8) return;
    b->t_end = uv_hrtime();
    b->delivered = 0;
    for (int i = 0; i < 8; i++) b->delivered = b->delivered << 8 | p[i];
    conn_close(c, "done");
}

static void bulk_on_close(conn *c, int status, const char *reason)
{
    bench_client *b = conn_user(c);
    if (status != 0 || !b->t_end) {
        fprintf(stderr, "sefl-tlsbench: bulk connection closed: %s\n", reason);
        b->failed = 1;
    }
}

static const conn_callbacks bulk_cb = { bulk_on_open, bulk_on_frame, bulk_on_close };

static void *srv_thread(void *arg)
{
    srv_finish(arg);
    return NULL;
}

static void srv_on_stop(uv_async_t *h)
{
    bench_server *s = h->data;
    srv_shutdown(s);
    uv_close((uv_handle_t *)&s->stop, NULL);
}

static double clock_seconds(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of the whole process (client and server threads). */
static double cpu_seconds(void)
{
    return clock_seconds(CLOCK_PROCESS_CPUTIME_ID);
}

static double thread_cpu_seconds(void)
{
    return clock_seconds(CLOCK_THREAD_CPUTIME_ID);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs the handshake and bulk measurements against a server thread. */
static int bench_transport(const char *certs, const char *name, int handshakes, uint64_t megabytes,
                           size_t frame_kb)
{
    char err[SEFL_ERRLEN];
    bench_server *s = malloc(sizeof *s);
    bench_client *b = calloc(1, sizeof *b);
    pthread_t th;
    int ret = 1, started = 0;
    if (!s || !b) goto out;
    if (srv_start(s, certs, "127.0.0.1:0", 0, 1, err) < 0) {
        fprintf(stderr, "sefl-tlsbench: %s\n", err);
        goto out;
    }
    uv_async_init(&s->loop, &s->stop, srv_on_stop);
    s->stop.data = s;
    if (pthread_create(&th, NULL, srv_thread, s) != 0) goto out;
    started = 1;

    uv_loop_init(&b->loop);
    snprintf(b->addr, sizeof b->addr, "127.0.0.1:%d", conn_listener_port(s->l));
    b->lim = conn_limits_default();
    b->lim.max_frame = (size_t)BENCH_MAX_FRAME_KB << 10;
    if (tls_ctx_new_client(&b->tls, certs, name, "localhost", err) < 0) {
        fprintf(stderr, "sefl-tlsbench: %s\n", err);
        uv_loop_close(&b->loop);
        goto out;
    }
    b->n = handshakes;
    b->ms = calloc((size_t)handshakes + 1, sizeof *b->ms);
    double cpu0 = cpu_seconds();
    hs_next(b);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    double cpu = cpu_seconds() - cpu0;
    if (!b->failed && handshakes > 0) {
        double sum = 0;
        for (int i = 0; i < handshakes; i++) sum += b->ms[i];
        qsort(b->ms, (size_t)handshakes, sizeof *b->ms, cmp_double);
        for (char *sp = strchr(b->suite, ' '); sp; sp = strchr(sp, ' ')) *sp = '/';
        printf("tls_negotiated %s\n", b->suite);
        printf("handshakes %d\n", handshakes);
        printf("handshake_ms_mean %.3f\n", sum / handshakes);
        printf("handshake_ms_p50 %.3f\n", b->ms[handshakes / 2]);
        printf("handshake_ms_p90 %.3f\n", b->ms[handshakes * 9 / 10]);
        /* Both ends' CPU per handshake: steadier than wall time on a busy machine. */
        printf("handshake_cpu_ms_both_ends %.3f\n", cpu * 1e3 / handshakes);
    }

    if (!b->failed && megabytes > 0) {
        b->total = megabytes * 1000000u;
        b->frame_len = frame_kb << 10;
        b->frame = malloc(b->frame_len);
        for (size_t i = 0; b->frame && i < b->frame_len; i++) b->frame[i] = (uint8_t)(i * 131);
        if (!b->frame || conn_connect(&b->loop, b->addr, b->tls, &b->lim, &bulk_cb, b, &b->c, err) < 0) {
            fprintf(stderr, "sefl-tlsbench: cannot start the bulk connection: %s\n", err);
            b->failed = 1;
        }
        double bulk_cpu0 = cpu_seconds();
        uv_run(&b->loop, UV_RUN_DEFAULT);
        double bulk_cpu = cpu_seconds() - bulk_cpu0;
        if (!b->failed && b->delivered != b->total) {
            fprintf(stderr, "sefl-tlsbench: server counted %llu bytes of %llu\n",
                    (unsigned long long)b->delivered, (unsigned long long)b->total);
            b->failed = 1;
        }
        if (!b->failed) {
            double secs = (double)(b->t_end - b->t_start) / 1e9;
            printf("bulk_frame_bytes %zu\n", b->frame_len);
            printf("bulk_megabytes %llu\n", (unsigned long long)megabytes);
            printf("bulk_seconds %.3f\n", secs);
            printf("bulk_MBps %.1f\n", (double)b->total / 1e6 / secs);
            printf("bulk_cpu_seconds_both_ends %.3f\n", bulk_cpu);
            /* Sender and receiver each do one AEAD pass: compare with the
             * raw figures below. */
            printf("bulk_MB_per_cpu_s_per_end %.1f\n", (double)b->total / 1e6 / (bulk_cpu / 2));
        }
    }
    if (uv_loop_close(&b->loop) != 0) fprintf(stderr, "sefl-tlsbench: client loop not clean\n");
    ret = b->failed;
out:
    if (started) {
        uv_async_send(&s->stop);
        pthread_join(th, NULL);
    }
    if (b) {
        tls_ctx_free(b->tls);
        free(b->ms);
        free(b->frame);
    }
    free(b);
    free(s);
    return ret;
}

/* ---- raw AEAD speed --------------------------------------------------- */

/* MB per CPU-second of encrypt-and-tag over BENCH_RECORD-byte messages,
 * total bytes. CPU time, not wall time: the figure is the cipher's, not the
 * machine's load. */
static double aead_speed(int which, uint64_t total)
{
    static uint8_t in[BENCH_RECORD], out[BENCH_RECORD];
    uint8_t key[32] = { 1, 2, 3 }, iv[12] = { 0 }, aad[13] = { 0 }, tag[16];
    mbedtls_gcm_context gcm;
    mbedtls_chachapoly_context cp;
    mbedtls_gcm_init(&gcm);
    mbedtls_chachapoly_init(&cp);
    if (which == 2) mbedtls_chachapoly_setkey(&cp, key);
    else mbedtls_gcm_setkey(&gcm, MBEDTLS_CIPHER_ID_AES, key, which == 0 ? 128 : 256);
    uint64_t n = total / BENCH_RECORD;
    double t0 = thread_cpu_seconds();
    for (uint64_t i = 0; i < n; i++) {
        iv[11] = (uint8_t)i;   /* a fresh nonce per record, as TLS does */
        if (which == 2)
            mbedtls_chachapoly_encrypt_and_tag(&cp, sizeof in, iv, aad, sizeof aad, in, out, tag);
        else
            mbedtls_gcm_crypt_and_tag(&gcm, MBEDTLS_GCM_ENCRYPT, sizeof in, iv, sizeof iv, aad,
                                      sizeof aad, in, out, sizeof tag, tag);
    }
    double secs = thread_cpu_seconds() - t0;
    mbedtls_gcm_free(&gcm);
    mbedtls_chachapoly_free(&cp);
    return (double)(n * BENCH_RECORD) / 1e6 / secs;
}

/* ---- main ------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: sefl-tlsbench [--certs DIR] [--name NAME] [--handshakes N] [--megabytes M]\n"
        "                     [--frame-kb K] [--aead-megabytes A]\n"
        "       sefl-tlsbench serve --certs DIR [--listen HOST:PORT]\n"
        "\n"
        "Measures the mutual-TLS transport over 127.0.0.1: mean connect+handshake time\n"
        "of N connections (default 200), MB/s of M megabytes (default 1000) of K KiB\n"
        "frames (default 1024) delivered over one connection, and mbedTLS's raw AEAD\n"
        "speed per CPU-second on 16 KiB records (A megabytes each, default 500).\n"
        "Prints `name value` lines. Without --certs a\n"
        "temporary project is made with the sefl-certs next to this program.\n"
        "serve: a TLS echo server for tests (default --listen 127.0.0.1:0); logs\n"
        "`listening on HOST:PORT`, opens and closes; stops on SIGTERM or SIGINT.\n");
}

static int bad(const char *msg, const char *arg)
{
    fprintf(stderr, "sefl-tlsbench: %s %s (see --help)\n", msg, arg ? arg : "");
    return 2;
}

static int parse_num(const char *s, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > max) return -1;
    *out = v;
    return 0;
}

/* Makes a temporary project with the sefl-certs beside this program. */
static int make_temp_certs(char *dir, size_t n)
{
    char exe[PATH_MAX], cmd[3 * PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return -1;
    exe[len] = 0;
    *strrchr(exe, '/') = 0;
    snprintf(dir, n, "/tmp/sefl-tlsbench.XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(cmd, sizeof cmd, "'%s/sefl-certs' init --dir '%s/certs' --clients 1 >/dev/null", exe, dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *certs = NULL, *listen = "127.0.0.1:0", *name = "client-0000";
    long handshakes = 200, megabytes = 1000, frame_kb = 1024, aead_mb = 500;
    int is_serve = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--version")) {
            printf("sefl-tlsbench %s\n", SEFL_VERSION);
            return 0;
        }
        if (!strcmp(a, "serve") && i == 1) {
            is_serve = 1;
            continue;
        }
        if (i + 1 >= argc) return bad("missing value or unknown argument:", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--certs")) certs = v;
        else if (!strcmp(a, "--listen")) listen = v;
        else if (!strcmp(a, "--name")) name = v;
        else if (!strcmp(a, "--handshakes")) {
            if (parse_num(v, BENCH_MAX_HANDSHAKES, &handshakes) < 0) return bad("bad --handshakes", v);
        } else if (!strcmp(a, "--megabytes")) {
            if (parse_num(v, BENCH_MAX_MEGABYTES, &megabytes) < 0) return bad("bad --megabytes", v);
        } else if (!strcmp(a, "--aead-megabytes")) {
            if (parse_num(v, BENCH_MAX_MEGABYTES, &aead_mb) < 0) return bad("bad --aead-megabytes", v);
        } else if (!strcmp(a, "--frame-kb")) {
            if (parse_num(v, BENCH_MAX_FRAME_KB - 1, &frame_kb) < 0 || frame_kb == 0)
                return bad("bad --frame-kb (1..16383)", v);
        } else {
            return bad("unknown option", a);
        }
    }
    if (is_serve) {
        if (!certs) return bad("serve needs --certs", NULL);
        return serve(certs, listen);
    }

    char tmp[64] = "", certs_tmp[128];
    if (!certs) {
        if (make_temp_certs(tmp, sizeof tmp) < 0) {
            fprintf(stderr, "sefl-tlsbench: cannot make certificates with sefl-certs\n");
            return 1;
        }
        snprintf(certs_tmp, sizeof certs_tmp, "%s/certs", tmp);
        certs = certs_tmp;
    }
    printf("tls_suites_offered %s\n", tls_suites_offered());
    int ret = bench_transport(certs, name, (int)handshakes, (uint64_t)megabytes, (size_t)frame_kb);
    if (aead_mb > 0) {
        uint64_t total = (uint64_t)aead_mb * 1000000u;
        printf("aead_aes_128_gcm_MB_per_cpu_s %.1f\n", aead_speed(0, total));
        printf("aead_aes_256_gcm_MB_per_cpu_s %.1f\n", aead_speed(1, total));
        printf("aead_chacha20_poly1305_MB_per_cpu_s %.1f\n", aead_speed(2, total));
    }
    if (tmp[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd) != 0) fprintf(stderr, "sefl-tlsbench: could not remove %s\n", tmp);
    }
    return ret;
}
