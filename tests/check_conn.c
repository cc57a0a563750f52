/* check_conn: the TLS transport (common/conn.c, common/tls.c) over loopback.
 *
 * Every test runs a real server and real clients on one libuv loop with
 * certificates made by build/bin/sefl-certs (a project CA with client-0000
 * and an expired client, plus a second, foreign project). Rejection tests
 * check the reason the server gives and then that a good client is still
 * served. Every test ends with uv_loop_close() == 0.
 *
 * A client tries each address of a name in turn. This machine's resolver
 * may give "localhost" one address only, so those tests give
 * conn_connect_addrs the list a resolver would ("::1 then 127.0.0.1"), with
 * real sockets behind every address: refused ones, a listener that never
 * answers (its accept queue full) and a real server.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "common/net/conn.h"
#include "common/log.h"
#include "common/nn/params.h"
#include "common/net/tls.h"
#include "common/fl/wire.h"
#include "tests/check_main.h"

static char base_dir[64];
static char certs_dir[128];   /* the project: ca, server, clients/client-0000, clients/expired */
static char other_dir[128];   /* a foreign project with its own CA and client-0000 */
static param_table table;     /* the default model's, for wire_decode */

/* ---- a test server ---------------------------------------------------- */

typedef struct server server;
typedef void (*frame_handler)(server *s, conn *c, const uint8_t *p, size_t n);

struct server {
    uv_loop_t loop;
    tls_ctx *tls;
    conn_listener *l;
    char addr[64];               /* "127.0.0.1:PORT", "[::1]:PORT" */
    int auth;                    /* raise the frame limit on open */
    frame_handler on_frame;      /* NULL: echo */
    int opened, closed, frames;
    int last_status;
    char last_reason[SEFL_ERRLEN];
    char last_peer[80];
    char last_addr[80];
};

static void srv_on_open(conn *c)
{
    server *s = conn_user(c);
    s->opened++;
    snprintf(s->last_peer, sizeof s->last_peer, "%s", conn_peer_name(c));
    snprintf(s->last_addr, sizeof s->last_addr, "%s", conn_peer_addr(c));
    if (s->auth) conn_set_authenticated(c);
}

static void srv_on_frame(conn *c, const uint8_t *p, size_t n)
{
    server *s = conn_user(c);
    s->frames++;
    if (s->on_frame) s->on_frame(s, c, p, n);
    else ck_assert_int_eq(conn_send(c, p, n), 0);
}

static void srv_on_close(conn *c, int status, const char *reason)
{
    server *s = conn_user(c);
    s->closed++;
    s->last_status = status;
    snprintf(s->last_reason, sizeof s->last_reason, "%s", reason);
}

static const conn_callbacks srv_cb = { srv_on_open, srv_on_frame, srv_on_close };

/* Starts a server listening on listen ("IP:0"), s->addr the address to
 * dial. Returns 0, or the conn_listen error (s is then stopped). */
static int server_start_at(server *s, const conn_limits *lim, const char *listen)
{
    char err[SEFL_ERRLEN];
    memset(s, 0, sizeof *s);
    ck_assert_int_eq(uv_loop_init(&s->loop), 0);
    ck_assert_msg(tls_ctx_new_server(&s->tls, certs_dir, err) == 0, "%s", err);
    int ret = conn_listen(&s->loop, listen, s->tls, lim, &srv_cb, s, &s->l, err);
    if (ret < 0) {
        ck_assert_int_eq(uv_run(&s->loop, UV_RUN_DEFAULT), 0);
        ck_assert_int_eq(uv_loop_close(&s->loop), 0);
        tls_ctx_free(s->tls);
        return ret;
    }
    ck_assert_int_gt(conn_listener_port(s->l), 0);
    snprintf(s->addr, sizeof s->addr, "%.*s%d", (int)(strlen(listen) - 1), listen,
             conn_listener_port(s->l));
    return 0;
}

static void server_start(server *s, const conn_limits *lim)
{
    ck_assert_int_eq(server_start_at(s, lim, "127.0.0.1:0"), 0);
}

static void server_stop(server *s)
{
    conn_listener_close(s->l);
    ck_assert_int_eq(uv_run(&s->loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&s->loop), 0);
    tls_ctx_free(s->tls);
}

/* ---- a test client ---------------------------------------------------- */

typedef struct {
    const uint8_t *msg;          /* sent nsend times on open (conn_send) */
    size_t len;
    int nsend;
    int raw;                     /* send msg with conn_send_frame instead */
    int auth;                    /* raise the frame limit on open */
    int opened, closed, frames, echoed;
    int status;
    char reason[SEFL_ERRLEN];
    char peer[80];
    char addr[80];               /* conn_peer_addr on open */
    char suite[96];
    int send_rc[4];              /* conn_send results, first four */
    size_t outq;                 /* conn_outq_bytes right after those sends */
    int drains;                  /* on_drain calls */
    int reply_case;              /* of the last frame, decoded as an Envelope */
    uint32_t reply_code;         /* its Error.code */
} client;

static void cli_on_drain(conn *c)
{
    client *k = conn_user(c);
    k->drains++;
}

static void cli_on_open(conn *c)
{
    client *k = conn_user(c);
    k->opened = 1;
    conn_set_on_drain(c, cli_on_drain);
    snprintf(k->peer, sizeof k->peer, "%s", conn_peer_name(c));
    snprintf(k->addr, sizeof k->addr, "%s", conn_peer_addr(c));
    snprintf(k->suite, sizeof k->suite, "%s", conn_tls_suite(c));
    if (k->auth) conn_set_authenticated(c);
    for (int i = 0; i < k->nsend; i++) {
        int rc = k->raw ? conn_send_frame(c, k->msg, k->len) : conn_send(c, k->msg, k->len);
        if (i < 4) k->send_rc[i] = rc;
    }
    k->outq = conn_outq_bytes(c);
    if (k->nsend == 0) conn_close(c, "done");
}

static void cli_on_frame(conn *c, const uint8_t *p, size_t n)
{
    client *k = conn_user(c);
    k->frames++;
    if (n == k->len && (n == 0 || memcmp(p, k->msg, n) == 0)) k->echoed++;
    Sefl__Envelope *e;
    uint32_t code;
    char err[SEFL_ERRLEN];
    if (wire_decode(p, n, &table, 2 * n + 4096, &e, &code, err) == 0) {
        k->reply_case = e->msg_case;
        if (e->msg_case == SEFL__ENVELOPE__MSG_ERROR) k->reply_code = e->error->code;
        wire_free(e);
    }
    if (k->frames == k->nsend) conn_close(c, "done");
}

static void cli_on_close(conn *c, int status, const char *reason)
{
    client *k = conn_user(c);
    k->closed++;
    k->status = status;
    snprintf(k->reason, sizeof k->reason, "%s", reason);
}

static const conn_callbacks cli_cb = { cli_on_open, cli_on_frame, cli_on_close };

static tls_ctx *client_tls(const char *dir, const char *name, const char *server_name)
{
    char err[SEFL_ERRLEN];
    tls_ctx *t;
    ck_assert_msg(tls_ctx_new_client(&t, dir, name, server_name, err) == 0, "%s", err);
    return t;
}

/* Runs one client connection against s until both ends have closed. */
static void client_run(server *s, client *k, tls_ctx *t, const conn_limits *lim)
{
    char err[SEFL_ERRLEN];
    conn *c;
    int want = s->closed + 1;
    ck_assert_msg(conn_connect(&s->loop, s->addr, t, lim, &cli_cb, k, &c, err) == 0, "%s", err);
    while (!k->closed || s->closed < want) uv_run(&s->loop, UV_RUN_ONCE);
    ck_assert_int_eq(k->closed, 1);
}

/* A good client exchanges a frame and both sides close cleanly. */
static void good_round(server *s)
{
    static const uint8_t ping[] = "ping";
    client k = { .msg = ping, .len = sizeof ping, .nsend = 1 };
    int opened = s->opened;
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    client_run(s, &k, t, NULL);
    tls_ctx_free(t);
    ck_assert_msg(k.opened && k.echoed == 1 && k.status == 0, "good client: %d %s", k.status, k.reason);
    ck_assert_int_eq(s->opened, opened + 1);
    ck_assert_str_eq(s->last_peer, "client-0000");
    ck_assert_int_eq(s->last_status, 0);
}

/* A client that must be refused: neither side opens, the server says why. */
static void rejected_round(server *s, tls_ctx *t, client *k)
{
    int opened = s->opened;
    client_run(s, k, t, NULL);
    ck_assert_int_eq(k->opened, 0);
    ck_assert_int_lt(k->status, 0);
    ck_assert_int_eq(s->opened, opened);
    ck_assert_int_lt(s->last_status, 0);
}

/* ---- a plain TCP client ----------------------------------------------- */

typedef struct {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    const char *send;            /* bytes written after connecting, or NULL */
    char buf[4096];
    int closed;
} raw_client;

static void raw_on_closed(uv_handle_t *h)
{
    ((raw_client *)h->data)->closed = 1;
}

static void raw_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    raw_client *r = h->data;
    *b = uv_buf_init(r->buf, sizeof r->buf);
}

static void raw_on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    if (n < 0) uv_close((uv_handle_t *)st, raw_on_closed);
}

static void raw_on_connect(uv_connect_t *req, int status)
{
    raw_client *r = req->data;
    ck_assert_int_eq(status, 0);
    if (r->send) {
        uv_buf_t b = uv_buf_init((char *)r->send, (unsigned)strlen(r->send));
        ck_assert_int_eq(uv_write(&r->wreq, (uv_stream_t *)&r->tcp, &b, 1, NULL), 0);
    }
    ck_assert_int_eq(uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_on_read), 0);
}

/* Connects, sends r->send (if any) and waits for the server to hang up. */
static void raw_run(server *s, raw_client *r)
{
    struct sockaddr_in a;
    int want = s->closed + 1;
    ck_assert_int_eq(uv_ip4_addr("127.0.0.1", atoi(strchr(s->addr, ':') + 1), &a), 0);
    ck_assert_int_eq(uv_tcp_init(&s->loop, &r->tcp), 0);
    r->tcp.data = r;
    r->creq.data = r;
    ck_assert_int_eq(uv_tcp_connect(&r->creq, &r->tcp, (struct sockaddr *)&a, raw_on_connect), 0);
    while (!r->closed || s->closed < want) uv_run(&s->loop, UV_RUN_ONCE);
}

/* ---- clients that try several addresses --------------------------------- */

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

/* A port that was just free on 127.0.0.1: listen on 0, learn it, close it.
 * Connecting to it on any loopback address is refused. */
static int free_port(void)
{
    uv_loop_t loop;
    uv_tcp_t probe;
    struct sockaddr_in a;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&loop, &probe);
    ck_assert_int_eq(uv_tcp_bind(&probe, (struct sockaddr *)&a, 0), 0);
    int len = sizeof a;
    uv_tcp_getsockname(&probe, (struct sockaddr *)&a, &len);
    uv_close((uv_handle_t *)&probe, NULL);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    return ntohs(a.sin_port);
}

/* One address to dial: "IP:PORT" or "[IP6]:PORT" (as conn_peer_addr
 * prints it). */
static void addr_parse(const char *ip_port, struct sockaddr_storage *out)
{
    char ip[64];
    const char *colon = strrchr(ip_port, ':');
    int port = atoi(colon + 1);
    memset(out, 0, sizeof *out);
    if (ip_port[0] == '[') {
        snprintf(ip, sizeof ip, "%.*s", (int)(colon - ip_port - 2), ip_port + 1);
        ck_assert_int_eq(uv_ip6_addr(ip, port, (struct sockaddr_in6 *)out), 0);
    } else {
        snprintf(ip, sizeof ip, "%.*s", (int)(colon - ip_port), ip_port);
        ck_assert_int_eq(uv_ip4_addr(ip, port, (struct sockaddr_in *)out), 0);
    }
}

/* Starts conn_connect_addrs to the n addresses ("IP:PORT" each) as a
 * resolver would have listed them for name. */
static conn *connect_list(uv_loop_t *loop, const char *name, const char *const *list, int n,
                          tls_ctx *t, const conn_limits *lim, client *k)
{
    struct sockaddr_storage ss[16];
    const struct sockaddr *sa[16];
    char err[SEFL_ERRLEN];
    ck_assert_int_le(n, 16);
    for (int i = 0; i < n; i++) {
        addr_parse(list[i], &ss[i]);
        sa[i] = (const struct sockaddr *)&ss[i];
    }
    conn *c;
    ck_assert_msg(conn_connect_addrs(loop, name, sa, n, t, lim, &cli_cb, k, &c, err) == 0, "%s", err);
    ck_assert_ptr_nonnull(c);
    return c;
}

/* A listener that never answers a connect: its accept queue (backlog 0)
 * is full with one connection nobody accepts, so the kernel drops further
 * SYNs and a connect to it waits until the dialer gives up. Plain sockets,
 * so that no loop accepts from it; sets fd[0] (listener), fd[1] (filler). */
static int silent_listener(int fd[2])
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    fd[0] = socket(AF_INET, SOCK_STREAM, 0);
    fd[1] = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd[0], 0);
    ck_assert_int_ge(fd[1], 0);
    ck_assert_int_eq(bind(fd[0], (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd[0], 0), 0);
    ck_assert_int_eq(getsockname(fd[0], (struct sockaddr *)&a, &len), 0);
    ck_assert_int_eq(connect(fd[1], (struct sockaddr *)&a, sizeof a), 0);
    return ntohs(a.sin_port);
}

/* ---- tests: good connections ------------------------------------------ */

START_TEST(test_frames_both_ways)
{
    server s;
    server_start(&s, NULL);
    static const uint8_t msg[] = "hello over mutual TLS";
    client k = { .msg = msg, .len = sizeof msg, .nsend = 5 };
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    client_run(&s, &k, t, NULL);
    tls_ctx_free(t);
    ck_assert_int_eq(k.opened, 1);
    ck_assert_int_eq(k.echoed, 5);
    ck_assert_int_eq(s.frames, 5);
    /* Each conn_send is one write; each completed write while open drains. */
    ck_assert_int_ge(k.drains, 1);
    ck_assert_int_le(k.drains, 5);
    ck_assert_int_eq(k.status, 0);
    ck_assert_str_eq(k.reason, "done");
    ck_assert_int_eq(s.last_status, 0);
    ck_assert_str_eq(s.last_reason, "closed by peer");
    ck_assert_str_eq(s.last_peer, "client-0000");
    ck_assert_msg(strncmp(s.last_addr, "127.0.0.1:", 10) == 0 && atoi(s.last_addr + 10) > 0,
                  "peer address %s", s.last_addr);
    ck_assert_str_eq(k.peer, "localhost");
    ck_assert_msg(strcmp(k.suite, "TLSv1.2 TLS-ECDHE-ECDSA-WITH-CHACHA20-POLY1305-SHA256") == 0,
                  "suite %s", k.suite);
    server_stop(&s);
}
END_TEST

START_TEST(test_empty_frame)
{
    server s;
    server_start(&s, NULL);
    client k = { .msg = NULL, .len = 0, .nsend = 2 };
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    client_run(&s, &k, t, NULL);
    tls_ctx_free(t);
    ck_assert_int_eq(k.echoed, 2);
    server_stop(&s);
}
END_TEST

START_TEST(test_big_frame_both_ways)
{
    /* A 3 MB frame (a large tensor) after authentication raised the limit. */
    conn_limits lim = conn_limits_default();
    lim.max_frame = 4u << 20;
    server s;
    server_start(&s, &lim);
    s.auth = 1;
    size_t n = 3u << 20;
    uint8_t *big = malloc(n);
    for (size_t i = 0; i < n; i++) big[i] = (uint8_t)(i * 2654435761u >> 13);
    client k = { .msg = big, .len = n, .nsend = 2, .auth = 1 };
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    client_run(&s, &k, t, &lim);
    tls_ctx_free(t);
    ck_assert_int_eq(k.echoed, 2);
    ck_assert_int_eq(s.frames, 2);
    ck_assert_int_eq(k.status, 0);
    free(big);
    server_stop(&s);
}
END_TEST

START_TEST(test_big_frame_before_auth_refused)
{
    /* The same 3 MB frame before authentication is over the small limit. */
    conn_limits lim = conn_limits_default();
    lim.max_frame = 4u << 20;
    server s;
    server_start(&s, &lim);
    size_t n = 3u << 20;
    uint8_t *big = calloc(1, n);
    client k = { .msg = big, .len = n, .nsend = 1 };
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    client_run(&s, &k, t, &lim);
    tls_ctx_free(t);
    ck_assert_int_eq(s.frames, 0);
    ck_assert_int_eq(s.last_status, -EMSGSIZE);
    ck_assert_str_eq(s.last_reason, "frame of 3145728 bytes over limit 65536");
    free(big);
    good_round(&s);
    server_stop(&s);
}
END_TEST

START_TEST(test_many_clients_at_once)
{
    /* One server loop with 40 clients connected at the same time, each
     * exchanging frames of its own. */
    enum { N = 40 };
    server s;
    server_start(&s, NULL);
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    static client k[N];
    static uint8_t msg[N][64];
    char err[SEFL_ERRLEN];
    for (int i = 0; i < N; i++) {
        memset(msg[i], 'a' + i % 26, sizeof msg[i]);
        k[i] = (client){ .msg = msg[i], .len = sizeof msg[i], .nsend = 3 };
        conn *c;
        ck_assert_msg(conn_connect(&s.loop, s.addr, t, NULL, &cli_cb, &k[i], &c, err) == 0, "%s", err);
    }
    int done = 0;
    while (done < N || s.closed < N) {
        uv_run(&s.loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < N; i++) done += k[i].closed;
    }
    for (int i = 0; i < N; i++)
        ck_assert_msg(k[i].echoed == 3 && k[i].status == 0, "client %d: %d echoed, %s", i,
                      k[i].echoed, k[i].reason);
    ck_assert_int_eq(s.opened, N);
    ck_assert_int_eq(s.frames, 3 * N);
    tls_ctx_free(t);
    server_stop(&s);
}
END_TEST

START_TEST(test_shared_identities)
{
    /* Two client identities made from one tls_ctx_new_shared context (the
     * CA chain and RNG of sefl-sim's clients) both connect; one made from a
     * foreign project's shared context trusts that project's CA only, so it
     * refuses our server: the CA in use is the shared one. */
    static const uint8_t ping[] = "ping";
    char err[SEFL_ERRLEN];
    server s;
    server_start(&s, NULL);
    tls_ctx *shared, *foreign, *t[2], *f;
    ck_assert_msg(tls_ctx_new_shared(&shared, certs_dir, err) == 0, "%s", err);
    ck_assert_msg(tls_ctx_new_shared(&foreign, other_dir, err) == 0, "%s", err);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(tls_ctx_new_client_shared(&t[i], shared, certs_dir, "client-0000", "localhost",
                                                err) == 0, "%s", err);
        client k = { .msg = ping, .len = sizeof ping, .nsend = 1 };
        client_run(&s, &k, t[i], NULL);
        ck_assert_msg(k.opened && k.echoed == 1 && k.status == 0, "identity %d: %s", i, k.reason);
    }
    ck_assert_msg(tls_ctx_new_client_shared(&f, foreign, certs_dir, "client-0000", "localhost",
                                            err) == 0, "%s", err);
    client k = { 0 };
    rejected_round(&s, f, &k);
    ck_assert_msg(strstr(k.reason, "certificate verify failed"), "%s", k.reason);
    tls_ctx_free(f);
    for (int i = 0; i < 2; i++) tls_ctx_free(t[i]);
    tls_ctx_free(foreign);
    tls_ctx_free(shared);
    server_stop(&s);
}
END_TEST

/* test_rx_limit: the server answers every client's "go" with a 2 MB frame
 * once all of them have said it, so that the frames reach the clients
 * together. */
enum { RX_N = 4, RX_BIG = 2u << 20 };
static conn *rx_conns[RX_N];
static int rx_go;
static uint8_t *rx_big;

static void rx_srv_frame(server *s, conn *c, const uint8_t *p, size_t n)
{
    rx_conns[rx_go++] = c;
    if (rx_go < RX_N) return;
    for (int i = 0; i < RX_N; i++) ck_assert_int_eq(conn_send(rx_conns[i], rx_big, RX_BIG), 0);
}

static int rx_intact, rx_waits_seen, rx_resumes_seen;

static void rx_cli_frame(conn *c, const uint8_t *p, size_t n)
{
    client *k = conn_user(c);
    k->frames++;
    rx_intact += n == RX_BIG && memcmp(p, rx_big, n) == 0;
    conn_close(c, "done");
}

static void rx_cli_wait(conn *c, int waiting)
{
    if (waiting) rx_waits_seen++;
    else rx_resumes_seen++;
}

static void rx_cli_open(conn *c)
{
    cli_on_open(c);
    conn_set_on_rx_wait(c, rx_cli_wait);
}

START_TEST(test_rx_limit)
{
    /* Four clients share one slot for frames over 64 KiB: one receives its
     * 2 MB frame while the others stop reading (told through on_rx_wait),
     * then each gets the slot in turn; every frame arrives whole. */
    static const conn_callbacks rx_cb = { rx_cli_open, rx_cli_frame, cli_on_close };
    static const uint8_t go[] = "go";
    char err[SEFL_ERRLEN];
    conn_limits lim = conn_limits_default();
    server s;
    server_start(&s, &lim);
    s.auth = 1;
    s.on_frame = rx_srv_frame;
    rx_go = rx_intact = rx_waits_seen = rx_resumes_seen = 0;
    rx_big = malloc(RX_BIG);
    for (size_t i = 0; i < RX_BIG; i++) rx_big[i] = (uint8_t)(i * 2654435761u >> 11);
    rxlimit *rx;
    ck_assert_int_eq(rxlimit_new(&s.loop, 1, 64u << 10, &rx), 0);
    lim.rx = rx;
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    static client k[RX_N];
    for (int i = 0; i < RX_N; i++) {
        k[i] = (client){ .msg = go, .len = sizeof go, .nsend = 1, .auth = 1 };
        conn *c;
        ck_assert_msg(conn_connect(&s.loop, s.addr, t, &lim, &rx_cb, &k[i], &c, err) == 0, "%s", err);
    }
    int done = 0;
    while (done < RX_N || s.closed < RX_N) {
        uv_run(&s.loop, UV_RUN_ONCE);
        done = 0;
        for (int i = 0; i < RX_N; i++) done += k[i].closed;
    }
    for (int i = 0; i < RX_N; i++) ck_assert_msg(k[i].status == 0, "client %d: %s", i, k[i].reason);
    ck_assert_int_eq(rx_intact, RX_N);
    rxlimit_stats st;
    rxlimit_get_stats(rx, &st);
    ck_assert_int_eq(st.peak, 1);
    ck_assert_uint_eq(st.taken, RX_N);
    ck_assert_uint_ge(st.waits, 1);
    ck_assert_uint_eq(st.waits, (uint64_t)rx_waits_seen);
    ck_assert_int_eq(rx_resumes_seen, rx_waits_seen);
    ck_assert_int_eq(st.in_use, 0);
    rxlimit_close(rx);
    tls_ctx_free(t);
    free(rx_big);
    server_stop(&s);
}
END_TEST

START_TEST(test_connect_by_name)
{
    /* "localhost" goes through uv_getaddrinfo, and the server listens on
     * the last address it resolves to. Where that is "::1 then 127.0.0.1"
     * (Debian's usual /etc/hosts), ::1 refuses and 127.0.0.1 serves; where
     * it is 127.0.0.1 alone, that one serves. */
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    uv_getaddrinfo_t req;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    ck_assert_int_eq(uv_getaddrinfo(&loop, &req, NULL, "localhost", NULL, &hints), 0);
    const struct addrinfo *last = req.addrinfo;
    while (last->ai_next) last = last->ai_next;
    char ip[64], listen[80];
    if (last->ai_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)last->ai_addr, ip, sizeof ip);
        snprintf(listen, sizeof listen, "[%s]:0", ip);
    } else {
        uv_ip4_name((const struct sockaddr_in *)last->ai_addr, ip, sizeof ip);
        snprintf(listen, sizeof listen, "%s:0", ip);
    }
    uv_freeaddrinfo(req.addrinfo);
    ck_assert_int_eq(uv_loop_close(&loop), 0);

    server s;
    ck_assert_int_eq(server_start_at(&s, NULL, listen), 0);
    snprintf(s.addr, sizeof s.addr, "localhost:%d", conn_listener_port(s.l));
    good_round(&s);
    server_stop(&s);
}
END_TEST

START_TEST(test_ip_server_name)
{
    /* The server certificate lists 127.0.0.1 as an iPAddress SAN. */
    server s;
    server_start(&s, NULL);
    static const uint8_t msg[] = "ip";
    client k = { .msg = msg, .len = sizeof msg, .nsend = 1 };
    tls_ctx *t = client_tls(certs_dir, "client-0000", "127.0.0.1");
    client_run(&s, &k, t, NULL);
    tls_ctx_free(t);
    ck_assert_msg(k.echoed == 1 && k.status == 0, "%s", k.reason);

    client bad = { 0 };
    t = client_tls(certs_dir, "client-0000", "127.0.0.2");
    rejected_round(&s, t, &bad);
    tls_ctx_free(t);
    ck_assert_msg(strstr(bad.reason, "certificate verify failed"), "%s", bad.reason);
    server_stop(&s);
}
END_TEST

/* ---- tests: rejections ------------------------------------------------- */

START_TEST(test_reject_no_client_cert)
{
    server s;
    server_start(&s, NULL);
    char ca[256], err[SEFL_ERRLEN];
    snprintf(ca, sizeof ca, "%s/ca.crt", certs_dir);
    tls_ctx *t;
    ck_assert_msg(tls_ctx_new_client_files(&t, ca, NULL, NULL, "localhost", err) == 0, "%s", err);
    client k = { 0 };
    rejected_round(&s, t, &k);
    tls_ctx_free(t);
    ck_assert_msg(strstr(s.last_reason, "TLS handshake failed"), "%s", s.last_reason);
    good_round(&s);
    server_stop(&s);
}
END_TEST

START_TEST(test_reject_foreign_ca)
{
    server s;
    server_start(&s, NULL);
    char ca[256], crt[256], key[256], err[SEFL_ERRLEN];
    snprintf(ca, sizeof ca, "%s/ca.crt", certs_dir);
    snprintf(crt, sizeof crt, "%s/clients/client-0000.crt", other_dir);
    snprintf(key, sizeof key, "%s/clients/client-0000.key", other_dir);
    tls_ctx *t;
    ck_assert_msg(tls_ctx_new_client_files(&t, ca, crt, key, "localhost", err) == 0, "%s", err);
    client k = { 0 };
    rejected_round(&s, t, &k);
    tls_ctx_free(t);
    ck_assert_msg(strstr(s.last_reason, "certificate verify failed") &&
                  strstr(s.last_reason, "not correctly signed by the trusted CA"), "%s", s.last_reason);
    good_round(&s);
    server_stop(&s);
}
END_TEST

START_TEST(test_reject_expired)
{
    server s;
    server_start(&s, NULL);
    tls_ctx *t = client_tls(certs_dir, "expired", "localhost");
    client k = { 0 };
    rejected_round(&s, t, &k);
    tls_ctx_free(t);
    ck_assert_msg(strstr(s.last_reason, "certificate verify failed") &&
                  strstr(s.last_reason, "expired"), "%s", s.last_reason);
    good_round(&s);
    server_stop(&s);
}
END_TEST

START_TEST(test_reject_server_name_mismatch)
{
    /* The client refuses a server whose certificate is not for the name. */
    server s;
    server_start(&s, NULL);
    tls_ctx *t = client_tls(certs_dir, "client-0000", "coordinator.example");
    client k = { 0 };
    rejected_round(&s, t, &k);
    tls_ctx_free(t);
    ck_assert_msg(strstr(k.reason, "certificate verify failed") && strstr(k.reason, "Common Name"),
                  "%s", k.reason);
    good_round(&s);
    server_stop(&s);
}
END_TEST

START_TEST(test_reject_foreign_server)
{
    /* A client of the foreign project does not trust our server. */
    server s;
    server_start(&s, NULL);
    tls_ctx *t = client_tls(other_dir, "client-0000", "localhost");
    client k = { 0 };
    rejected_round(&s, t, &k);
    tls_ctx_free(t);
    ck_assert_msg(strstr(k.reason, "certificate verify failed"), "%s", k.reason);
    good_round(&s);
    server_stop(&s);
}
END_TEST

START_TEST(test_reject_plain_tcp_garbage)
{
    server s;
    server_start(&s, NULL);
    raw_client r = { .send = "GET / HTTP/1.0\r\nHost: x\r\n\r\n" };
    raw_run(&s, &r);
    ck_assert_int_eq(s.opened, 0);
    ck_assert_int_lt(s.last_status, 0);
    ck_assert_msg(strstr(s.last_reason, "TLS handshake failed"), "%s", s.last_reason);
    good_round(&s);
    server_stop(&s);
}
END_TEST

START_TEST(test_handshake_timeout)
{
    conn_limits lim = conn_limits_default();
    lim.handshake_timeout_ms = 200;
    server s;
    server_start(&s, &lim);
    raw_client r = { .send = NULL };
    raw_run(&s, &r);
    ck_assert_int_eq(s.opened, 0);
    ck_assert_int_eq(s.last_status, UV_ETIMEDOUT);
    ck_assert_str_eq(s.last_reason, "handshake timeout (200 ms)");
    good_round(&s);
    server_stop(&s);
}
END_TEST

START_TEST(test_idle_timeout)
{
    conn_limits lim = conn_limits_default();
    lim.idle_timeout_ms = 200;
    server s;
    server_start(&s, &lim);
    /* Opens and then says nothing: no frame is sent and no close either. */
    client k = { .nsend = 1, .msg = (const uint8_t *)"x", .len = 1 };
    k.nsend = 0;
    conn_callbacks quiet = cli_cb;
    quiet.on_open = NULL;
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    char err[SEFL_ERRLEN];
    conn *c;
    ck_assert_msg(conn_connect(&s.loop, s.addr, t, NULL, &quiet, &k, &c, err) == 0, "%s", err);
    while (!k.closed || s.closed < 1) uv_run(&s.loop, UV_RUN_ONCE);
    tls_ctx_free(t);
    ck_assert_int_eq(s.opened, 1);
    ck_assert_int_eq(s.last_status, UV_ETIMEDOUT);
    ck_assert_msg(strstr(s.last_reason, "idle timeout"), "%s", s.last_reason);
    ck_assert_int_eq(k.status, 0);
    ck_assert_str_eq(k.reason, "closed by peer");
    server_stop(&s);
}
END_TEST

START_TEST(test_length_prefix_over_limit)
{
    server s;
    server_start(&s, NULL);
    /* 99999999 = 0x05F5E0FF, then a few bytes of a "payload". */
    static const uint8_t lie[] = { 0x05, 0xf5, 0xe0, 0xff, 1, 2, 3, 4 };
    client k = { .msg = lie, .len = sizeof lie, .nsend = 1, .raw = 1 };
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    client_run(&s, &k, t, NULL);
    tls_ctx_free(t);
    ck_assert_int_eq(k.opened, 1);
    ck_assert_int_eq(s.frames, 0);
    ck_assert_int_eq(s.last_status, -EMSGSIZE);
    ck_assert_str_eq(s.last_reason, "frame of 99999999 bytes over limit 65536");
    ck_assert_str_eq(k.reason, "closed by peer");
    good_round(&s);
    server_stop(&s);
}
END_TEST

/* ---- tests: bad messages over a real connection ------------------------ */

/* The tiny protocol server: validates every frame with wire_decode; a bad
 * one gets an Error and the connection is closed (the reason is the error),
 * a good one gets a Heartbeat reply. */
static void wire_handler(server *s, conn *c, const uint8_t *p, size_t n)
{
    Sefl__Envelope *e;
    uint32_t code;
    char err[SEFL_ERRLEN];
    uint8_t *frame;
    size_t len;
    if (wire_decode(p, n, &table, 2 * n + 4096, &e, &code, err) < 0) {
        ck_assert_int_eq(wire_encode_error(code, err, &frame, &len), 0);
        ck_assert_int_eq(conn_send_frame(c, frame, len), 0);
        free(frame);
        conn_close(c, err);
        return;
    }
    wire_free(e);
    Sefl__Heartbeat hb = SEFL__HEARTBEAT__INIT;
    hb.nonce = 7;
    hb.reply = 1;
    Sefl__Envelope r = SEFL__ENVELOPE__INIT;
    r.msg_case = SEFL__ENVELOPE__MSG_HEARTBEAT;
    r.heartbeat = &hb;
    ck_assert_int_eq(wire_encode(&r, &frame, &len), 0);
    ck_assert_int_eq(conn_send_frame(c, frame, len), 0);
    free(frame);
}

static size_t pack(Sefl__Envelope *e, uint8_t **out)
{
    size_t n = sefl__envelope__get_packed_size(e);
    *out = malloc(n + 1);
    ck_assert_uint_eq(sefl__envelope__pack(e, *out), n);
    return n;
}

/* A valid Heartbeat is answered; the server is still serving. */
static void wire_good_round(server *s)
{
    Sefl__Heartbeat hb = SEFL__HEARTBEAT__INIT;
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    e.version = WIRE_VERSION;
    e.msg_case = SEFL__ENVELOPE__MSG_HEARTBEAT;
    e.heartbeat = &hb;
    uint8_t *msg;
    size_t n = pack(&e, &msg);
    client k = { .msg = msg, .len = n, .nsend = 1 };
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    client_run(s, &k, t, NULL);
    tls_ctx_free(t);
    free(msg);
    ck_assert_int_eq(k.reply_case, SEFL__ENVELOPE__MSG_HEARTBEAT);
    ck_assert_int_eq(k.status, 0);
}

/* Sends one payload; expects an Error with code and the server's close
 * reason to contain what. */
static void wire_bad_round(const uint8_t *msg, size_t n, uint32_t code, const char *what)
{
    server s;
    server_start(&s, NULL);
    s.on_frame = wire_handler;
    client k = { .msg = msg, .len = n, .nsend = 1 };
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    client_run(&s, &k, t, NULL);
    tls_ctx_free(t);
    ck_assert_int_eq(k.opened, 1);
    ck_assert_int_eq(k.reply_case, SEFL__ENVELOPE__MSG_ERROR);
    ck_assert_uint_eq(k.reply_code, code);
    ck_assert_int_eq(s.last_status, 0);
    ck_assert_msg(strstr(s.last_reason, what), "reason: %s", s.last_reason);
    wire_good_round(&s);
    server_stop(&s);
}

enum { BAD_SHAPE, BAD_NAN, BAD_BYTES };

/* An Update with one tensor (the table's smallest) spoiled as asked. */
static size_t pack_bad_update(int how, uint8_t **out)
{
    const param_info *p = &table.p[0];
    for (int i = 1; i < table.n; i++)
        if (table.p[i].size < p->size) p = &table.p[i];
    float *vals = calloc(p->size, sizeof(float));   /* (p->size) */
    uint32_t shape[PARAM_MAX_DIMS];
    for (int i = 0; i < p->ndim; i++) shape[i] = (uint32_t)p->shape[i];
    Sefl__Tensor x = SEFL__TENSOR__INIT;
    x.name = (char *)p->name;
    x.n_shape = (size_t)p->ndim;
    x.shape = shape;
    x.encoding = SEFL__ENCODING__F32;
    x.data.data = (uint8_t *)vals;
    x.data.len = p->size * sizeof(float);
    if (how == BAD_SHAPE) shape[0] += 1;
    if (how == BAD_NAN) vals[p->size - 1] = NAN;
    if (how == BAD_BYTES) x.data.len -= sizeof(float);
    Sefl__Tensor *xs[1] = { &x };
    Sefl__Update u = SEFL__UPDATE__INIT;
    u.round = 1;
    u.examples = 10;
    u.n_tensors = 1;
    u.tensors = xs;
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    e.version = WIRE_VERSION;
    e.msg_case = SEFL__ENVELOPE__MSG_UPDATE;
    e.update = &u;
    size_t n = pack(&e, out);
    free(vals);
    return n;
}

START_TEST(test_wire_malformed_protobuf)
{
    static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x12 };
    wire_bad_round(junk, sizeof junk, WIRE_ERR_MALFORMED, "not a valid sefl Envelope");
}
END_TEST

START_TEST(test_wire_unknown_oneof)
{
    /* version = 1, then field 15 (not in the oneof) as a varint. */
    static const uint8_t unknown[] = { 0x08, 0x01, 0x78, 0x01 };
    wire_bad_round(unknown, sizeof unknown, WIRE_ERR_MALFORMED, "no message this side knows");
}
END_TEST

START_TEST(test_wire_wrong_version)
{
    Sefl__Heartbeat hb = SEFL__HEARTBEAT__INIT;
    Sefl__Envelope e = SEFL__ENVELOPE__INIT;
    e.version = WIRE_VERSION + 1;
    e.msg_case = SEFL__ENVELOPE__MSG_HEARTBEAT;
    e.heartbeat = &hb;
    uint8_t *msg;
    size_t n = pack(&e, &msg);
    wire_bad_round(msg, n, WIRE_ERR_VERSION, "protocol version 2");
    free(msg);
}
END_TEST

START_TEST(test_wire_tensor_wrong_shape)
{
    uint8_t *msg;
    size_t n = pack_bad_update(BAD_SHAPE, &msg);
    wire_bad_round(msg, n, WIRE_ERR_TENSOR, "in dimension 0");
    free(msg);
}
END_TEST

START_TEST(test_wire_tensor_nan)
{
    uint8_t *msg;
    size_t n = pack_bad_update(BAD_NAN, &msg);
    wire_bad_round(msg, n, WIRE_ERR_TENSOR, "not finite");
    free(msg);
}
END_TEST

START_TEST(test_wire_tensor_byte_length)
{
    uint8_t *msg;
    size_t n = pack_bad_update(BAD_BYTES, &msg);
    wire_bad_round(msg, n, WIRE_ERR_TENSOR, "its shape and encoding need");
    free(msg);
}
END_TEST

/* ---- tests: the API's edges ------------------------------------------- */

START_TEST(test_output_queue_bound)
{
    server s;
    server_start(&s, NULL);
    conn_limits lim = conn_limits_default();
    lim.max_outq = 100000;
    static uint8_t chunk[40000];
    client k = { .msg = chunk, .len = sizeof chunk, .nsend = 3 };
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    char err[SEFL_ERRLEN];
    conn *c;
    ck_assert_msg(conn_connect(&s.loop, s.addr, t, &lim, &cli_cb, &k, &c, err) == 0, "%s", err);
    /* Before the handshake nothing can be sent. */
    ck_assert_int_eq(conn_send(c, chunk, 10), -ENOTCONN);
    /* Two frames fit in 100000 bytes of queue, the third does not. */
    while (!k.opened) uv_run(&s.loop, UV_RUN_ONCE);
    ck_assert_int_eq(k.send_rc[0], 0);
    ck_assert_int_eq(k.send_rc[1], 0);
    ck_assert_int_eq(k.send_rc[2], -ENOBUFS);
    ck_assert_uint_gt(k.outq, 80000);
    ck_assert_uint_le(k.outq, 100000);
    conn_close(c, "enough");
    ck_assert_int_eq(conn_send(c, chunk, 10), -ENOTCONN);
    while (!k.closed || s.closed < 1) uv_run(&s.loop, UV_RUN_ONCE);
    tls_ctx_free(t);
    ck_assert_int_eq(k.closed, 1);
    ck_assert_int_eq(k.status, 0);
    ck_assert_str_eq(k.reason, "enough");
    server_stop(&s);
}
END_TEST

START_TEST(test_close_while_resolving)
{
    server s;
    server_start(&s, NULL);
    client k = { 0 };
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    char err[SEFL_ERRLEN];
    conn *c;
    ck_assert_msg(conn_connect(&s.loop, s.addr, t, NULL, &cli_cb, &k, &c, err) == 0, "%s", err);
    conn_close(c, "changed my mind");
    ck_assert_int_eq(uv_run(&s.loop, UV_RUN_NOWAIT) >= 0, 1);
    while (!k.closed) uv_run(&s.loop, UV_RUN_ONCE);
    ck_assert_int_eq(k.closed, 1);
    ck_assert_int_eq(k.opened, 0);
    ck_assert_str_eq(k.reason, "changed my mind");
    tls_ctx_free(t);
    server_stop(&s);
}
END_TEST

START_TEST(test_connect_refused)
{
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    int port = free_port();
    char addr[32], want[SEFL_ERRLEN], err[SEFL_ERRLEN];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);

    client k = { 0 };
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    conn *c;
    ck_assert_msg(conn_connect(&loop, addr, t, NULL, &cli_cb, &k, &c, err) == 0, "%s", err);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(k.closed, 1);
    ck_assert_int_eq(k.status, UV_ECONNREFUSED);
    snprintf(want, sizeof want, "cannot connect to %s: connection refused", addr);
    ck_assert_str_eq(k.reason, want);

    /* By name: every address localhost has refuses, the line names the
     * name and the (last) address. */
    client n = { 0 };
    snprintf(addr, sizeof addr, "localhost:%d", port);
    ck_assert_msg(conn_connect(&loop, addr, t, NULL, &cli_cb, &n, &c, err) == 0, "%s", err);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(n.closed, 1);
    ck_assert_int_eq(n.status, UV_ECONNREFUSED);
    snprintf(want, sizeof want, "cannot connect to %s at ", addr);
    ck_assert_msg(strncmp(n.reason, want, strlen(want)) == 0 &&
                  strstr(n.reason, ": connection refused"), "%s", n.reason);
    tls_ctx_free(t);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_bad_addresses)
{
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    char err[SEFL_ERRLEN];
    conn *c;
    conn_listener *l;
    ck_assert_int_eq(conn_connect(&loop, "localhost", t, NULL, &cli_cb, NULL, &c, err), -EINVAL);
    ck_assert_msg(strstr(err, "want HOST:PORT"), "%s", err);
    ck_assert_int_eq(conn_connect(&loop, "127.0.0.1:65536", t, NULL, &cli_cb, NULL, &c, err), -EINVAL);
    ck_assert_int_eq(conn_listen(&loop, "127.0.0.1:x", t, NULL, &srv_cb, NULL, &l, err), -EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_ptr_null(l);
    tls_ctx_free(t);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* ---- tests: several addresses for one name ----------------------------- */

/* Dials list (for "name") against s until both ends have closed; the
 * client sends one frame and checks its echo. */
static void list_round(server *s, const char *const *list, int n, client *k)
{
    static const uint8_t ping[] = "ping";
    *k = (client){ .msg = ping, .len = sizeof ping, .nsend = 1 };
    int want = s->closed + 1;
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    connect_list(&s->loop, "name.test:1", list, n, t, NULL, k);
    while (!k->closed || (k->opened && s->closed < want)) uv_run(&s->loop, UV_RUN_ONCE);
    tls_ctx_free(t);
    ck_assert_int_eq(k->closed, 1);
}

START_TEST(test_connect_next_address)
{
    /* "localhost" as ::1 then 127.0.0.1 with the server on 127.0.0.1: ::1
     * refuses (or is unreachable without IPv6), 127.0.0.1 serves. */
    server s;
    server_start(&s, NULL);
    char v4[64], v6[64];
    snprintf(v4, sizeof v4, "127.0.0.1:%d", conn_listener_port(s.l));
    snprintf(v6, sizeof v6, "[::1]:%d", conn_listener_port(s.l));
    client k;
    list_round(&s, (const char *[]){ v6, v4 }, 2, &k);
    ck_assert_msg(k.opened && k.echoed == 1 && k.status == 0, "%d %s", k.status, k.reason);
    ck_assert_str_eq(k.addr, v4);
    ck_assert_int_eq(s.opened, 1);
    /* The first address is tried first: it serves at once. */
    list_round(&s, (const char *[]){ v4, v6 }, 2, &k);
    ck_assert_msg(k.opened && k.echoed == 1, "%s", k.reason);
    ck_assert_str_eq(k.addr, v4);
    server_stop(&s);

    /* The reverse: the server on ::1 only, 127.0.0.1 refuses first. */
    if (server_start_at(&s, NULL, "[::1]:0") < 0) return;   /* no IPv6 here */
    snprintf(v4, sizeof v4, "127.0.0.1:%d", conn_listener_port(s.l));
    snprintf(v6, sizeof v6, "[::1]:%d", conn_listener_port(s.l));
    list_round(&s, (const char *[]){ v4, v6 }, 2, &k);
    ck_assert_msg(k.opened && k.echoed == 1 && k.status == 0, "%d %s", k.status, k.reason);
    ck_assert_str_eq(k.addr, v6);
    ck_assert_int_eq(s.opened, 1);
    server_stop(&s);
}
END_TEST

START_TEST(test_connect_silent_address_then_next)
{
    /* The first two addresses never answer: each attempt times out on its
     * own, and the third address still gets a whole attempt (the timeout
     * is per address, not for the sequence). */
    conn_limits lim = conn_limits_default();
    lim.handshake_timeout_ms = 300;
    int fd[2];
    int hole = silent_listener(fd);
    server s;
    server_start(&s, &lim);
    char silent[64];
    snprintf(silent, sizeof silent, "127.0.0.1:%d", hole);
    static const uint8_t ping[] = "ping";
    client k = { .msg = ping, .len = sizeof ping, .nsend = 1 };
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    connect_list(&s.loop, "name.test:1", (const char *[]){ silent, silent, s.addr }, 3, t, &lim, &k);
    while (!k.closed || (k.opened && s.closed < 1)) uv_run(&s.loop, UV_RUN_ONCE);
    ck_assert_msg(k.opened && k.echoed == 1 && k.status == 0, "%d %s", k.status, k.reason);
    ck_assert_str_eq(k.addr, s.addr);

    /* Alone, the silent address ends in one timeout error. */
    client lone = { 0 };
    connect_list(&s.loop, "silent.test:1", (const char *[]){ silent }, 1, t, &lim, &lone);
    while (!lone.closed) uv_run(&s.loop, UV_RUN_ONCE);
    ck_assert_int_eq(lone.status, UV_ETIMEDOUT);
    char want[SEFL_ERRLEN];
    snprintf(want, sizeof want, "cannot connect to silent.test:1 at %s: connection timed out", silent);
    ck_assert_str_eq(lone.reason, want);
    tls_ctx_free(t);
    server_stop(&s);
    close(fd[1]);
    close(fd[0]);
}
END_TEST

START_TEST(test_connect_all_refused)
{
    /* Every address refuses: one on_close with the last error, in one
     * line; the attempts leave no descriptor behind. */
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    int port = free_port();
    char a[3][64], want[SEFL_ERRLEN];
    snprintf(a[0], sizeof a[0], "127.0.0.2:%d", port);
    snprintf(a[1], sizeof a[1], "[::1]:%d", port);
    snprintf(a[2], sizeof a[2], "127.0.0.3:%d", port);
    snprintf(want, sizeof want,
             "cannot connect to three.test:1 at any of its 3 addresses (last %s): connection refused",
             a[2]);
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    int before = -1;
    for (int i = 0; i < 21; i++) {
        if (i == 1) before = count_fds();   /* after a first run opened whatever is lazy */
        client k = { 0 };
        connect_list(&loop, "three.test:1", (const char *[]){ a[0], a[1], a[2] }, 3, t, NULL, &k);
        ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
        ck_assert_int_eq(k.closed, 1);
        ck_assert_int_eq(k.opened, 0);
        ck_assert_int_eq(k.status, UV_ECONNREFUSED);
        ck_assert_str_eq(k.reason, want);
    }
    ck_assert_int_eq(count_fds(), before);
    tls_ctx_free(t);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

START_TEST(test_connect_addrs_limit)
{
    /* Ten refusing addresses: the first CONN_ADDRS_MAX (8) are tried. */
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    int port = free_port();
    char a[10][64], want[SEFL_ERRLEN], err[SEFL_ERRLEN];
    const char *list[10];
    for (int i = 0; i < 10; i++) {
        snprintf(a[i], sizeof a[i], "127.0.0.%d:%d", i + 2, port);
        list[i] = a[i];
    }
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    client k = { 0 };
    connect_list(&loop, "ten.test:1", list, 10, t, NULL, &k);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(CONN_ADDRS_MAX, 8);
    snprintf(want, sizeof want,
             "cannot connect to ten.test:1 at any of its 8 addresses (last %s): connection refused",
             a[7]);
    ck_assert_str_eq(k.reason, want);

    /* Addresses of other families are skipped; none left is an error now,
     * with no on_close. */
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    struct sockaddr_storage v4;
    addr_parse(a[0], &v4);
    const struct sockaddr *mixed[2] = { (struct sockaddr *)&un, (struct sockaddr *)&v4 };
    client m = { 0 };
    conn *c;
    ck_assert_msg(conn_connect_addrs(&loop, "mixed.test:1", mixed, 2, t, NULL, &cli_cb, &m, &c, err) == 0,
                  "%s", err);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    snprintf(want, sizeof want, "cannot connect to mixed.test:1 at %s: connection refused", a[0]);
    ck_assert_str_eq(m.reason, want);
    client none = { 0 };
    ck_assert_int_eq(conn_connect_addrs(&loop, "unix.test:1", mixed, 1, t, NULL, &cli_cb, &none, &c, err),
                     -EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(err, "no IPv4 or IPv6 address to connect to unix.test:1");
    ck_assert_int_eq(conn_connect_addrs(&loop, "empty.test:1", mixed, 0, t, NULL, &cli_cb, &none, &c, err),
                     -EINVAL);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(none.closed, 0);
    tls_ctx_free(t);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* For test_close_during_retry: a check handle that closes c in the first
 * loop iteration that ends with a TCP handle closing, which is a failed
 * attempt's (check callbacks run after I/O and before close callbacks). */
typedef struct {
    uv_check_t check;
    conn *c;
    int done;                    /* conn_close was called */
} closer;

static void find_closing_tcp(uv_handle_t *h, void *arg)
{
    if (h->type == UV_TCP && uv_is_closing(h)) *(int *)arg = 1;
}

static void closer_on_check(uv_check_t *chk)
{
    closer *w = chk->data;
    int closing = 0;
    uv_walk(chk->loop, find_closing_tcp, &closing);
    if (!closing || w->done) return;
    w->done = 1;
    conn_close(w->c, "changed my mind");
    uv_check_stop(chk);
}

START_TEST(test_close_during_retry)
{
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    int port = free_port();
    char a[3][64];
    for (int i = 0; i < 3; i++) snprintf(a[i], sizeof a[i], "127.0.0.%d:%d", i + 2, port);
    const char *list[3] = { a[0], a[1], a[2] };
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    client warm = { 0 };
    connect_list(&loop, "three.test:1", list, 3, t, NULL, &warm);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    int before = count_fds();

    /* Between two attempts: the failed handle is closing, not yet done. */
    client k = { 0 };
    closer w = { .c = connect_list(&loop, "three.test:1", list, 3, t, NULL, &k) };
    ck_assert_int_eq(uv_check_init(&loop, &w.check), 0);
    w.check.data = &w;
    ck_assert_int_eq(uv_check_start(&w.check, closer_on_check), 0);
    while (!k.closed) uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&w.check, NULL);
    ck_assert_int_eq(w.done, 1);
    ck_assert_int_eq(k.closed, 1);
    ck_assert_int_eq(k.status, 0);
    ck_assert_str_eq(k.reason, "changed my mind");

    /* After each number of loop iterations in turn, until the sequence ends
     * by itself: some of those closes land during a later attempt. */
    int later = 0, finished = 0;
    for (int steps = 0; steps < 100 && !finished; steps++) {
        client r = { 0 };
        conn *c = connect_list(&loop, "three.test:1", list, 3, t, NULL, &r);
        for (int i = 0; i < steps && !r.closed; i++) uv_run(&loop, UV_RUN_ONCE);
        if (r.closed) {
            finished = 1;
            ck_assert_int_eq(r.status, UV_ECONNREFUSED);
        } else {
            later += strcmp(conn_peer_addr(c), a[0]) != 0;
            conn_close(c, "changed my mind");
            ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
            ck_assert_int_eq(r.closed, 1);
            ck_assert_str_eq(r.reason, "changed my mind");
        }
    }
    ck_assert_int_eq(finished, 1);
    ck_assert_int_ge(later, 1);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(count_fds(), before);
    tls_ctx_free(t);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* ---- test: no leak of descriptors over many connections --------------- */

START_TEST(test_many_cycles_no_fd_growth)
{
    server s;
    server_start(&s, NULL);
    tls_ctx *t = client_tls(certs_dir, "client-0000", "localhost");
    good_round(&s);   /* first use warms up whatever is lazily opened */
    int before = count_fds();
    for (int i = 0; i < 1000; i++) {
        client k = { 0 };
        client_run(&s, &k, t, NULL);
        ck_assert_msg(k.opened && k.status == 0, "cycle %d: %s", i, k.reason);
    }
    ck_assert_int_eq(s.opened, 1001);
    ck_assert_int_eq(s.closed, 1001);
    ck_assert_int_eq(count_fds(), before);
    tls_ctx_free(t);
    server_stop(&s);
}
END_TEST

/* ---- setup ------------------------------------------------------------- */

static void make_certs(void)
{
    check_mkdtemp(base_dir, sizeof base_dir, "/tmp/check_conn.XXXXXX");
    snprintf(certs_dir, sizeof certs_dir, "%s/project", base_dir);
    snprintf(other_dir, sizeof other_dir, "%s/foreign", base_dir);
    check_certs("init --dir %s --clients 1", certs_dir);
    check_certs("issue --dir %s --name expired --expired", certs_dir);
    check_certs("init --dir %s --clients 1", other_dir);
}

static Suite *conn_suite(void)
{
    Suite *s = suite_create("conn");
    TCase *tc = tcase_create("good");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_frames_both_ways);
    tcase_add_test(tc, test_empty_frame);
    tcase_add_test(tc, test_big_frame_both_ways);
    tcase_add_test(tc, test_big_frame_before_auth_refused);
    tcase_add_test(tc, test_many_clients_at_once);
    tcase_add_test(tc, test_shared_identities);
    tcase_add_test(tc, test_rx_limit);
    tcase_add_test(tc, test_connect_by_name);
    tcase_add_test(tc, test_ip_server_name);
    suite_add_tcase(s, tc);

    tc = tcase_create("reject");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_reject_no_client_cert);
    tcase_add_test(tc, test_reject_foreign_ca);
    tcase_add_test(tc, test_reject_expired);
    tcase_add_test(tc, test_reject_server_name_mismatch);
    tcase_add_test(tc, test_reject_foreign_server);
    tcase_add_test(tc, test_reject_plain_tcp_garbage);
    tcase_add_test(tc, test_handshake_timeout);
    tcase_add_test(tc, test_idle_timeout);
    tcase_add_test(tc, test_length_prefix_over_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("wire");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_wire_malformed_protobuf);
    tcase_add_test(tc, test_wire_unknown_oneof);
    tcase_add_test(tc, test_wire_wrong_version);
    tcase_add_test(tc, test_wire_tensor_wrong_shape);
    tcase_add_test(tc, test_wire_tensor_nan);
    tcase_add_test(tc, test_wire_tensor_byte_length);
    suite_add_tcase(s, tc);

    tc = tcase_create("api");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_output_queue_bound);
    tcase_add_test(tc, test_close_while_resolving);
    tcase_add_test(tc, test_connect_refused);
    tcase_add_test(tc, test_bad_addresses);
    suite_add_tcase(s, tc);

    tc = tcase_create("addresses");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_connect_next_address);
    tcase_add_test(tc, test_connect_silent_address_then_next);
    tcase_add_test(tc, test_connect_all_refused);
    tcase_add_test(tc, test_connect_addrs_limit);
    tcase_add_test(tc, test_close_during_retry);
    suite_add_tcase(s, tc);

    tc = tcase_create("cycles");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_many_cycles_no_fd_growth);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    char err[SEFL_ERRLEN];
    if (params_build(&table, &(model_opts){ .arch = "cnn-se", .r = 8, .fc1_gate = 1 }, err) < 0) {
        fprintf(stderr, "check_conn: %s\n", err);
        return 1;
    }
    make_certs();
    int status = check_run(conn_suite());
    if (check_rm_rf(base_dir) != 0) {
        fprintf(stderr, "check_conn: cannot remove %s\n", base_dir);
        return 1;
    }
    return status;
}
