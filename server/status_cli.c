/* status_cli: the `status` subcommand of sefl-server; see status_cli.h.
 *
 * The request is HTTP/1.0 with "Connection: close", so the reply ends at
 * EOF and only its status line and the blank line before the body need
 * reading: the one server it talks to is sefl-server's libmicrohttpd. */
#include "server/status_cli.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "server/http.h"

static const char status_usage[] =
    "usage: sefl-server status --http HOST:PORT [--json]\n"
    "\n"
    "Prints the status of the coordinator whose --http endpoint is HOST:PORT\n"
    "(e.g. " HTTP_SUGGESTED_ADDR "): run id, phase, round, deadline, clients connected,\n"
    "selected and reported, last commit, last evaluation and run settings.\n"
    "\n"
    "  --http HOST:PORT   the coordinator's --http address\n"
    "  --json             print the JSON document of GET /status instead of the table\n"
    "  --help             this text\n"
    "Exit 0, 1 when nothing answers (or not with a status), 2 on bad arguments.\n";

/* Connects to host_port with the timeout on every step; returns the socket
 * or -1 with err. */
static int status_connect(const char *host_port, char *err)
{
    char host[HTTP_HOST_MAX + 1], port[6];
    if (http_split_addr(host_port, host, port, err)) return -1;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
    int rc = getaddrinfo(host[0] ? host : "localhost", port, &hints, &res);
    if (rc) {
        err_set(err, "cannot resolve %s: %s", host_port, gai_strerror(rc));
        return -1;
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        /* On Linux SO_SNDTIMEO bounds connect() too. */
        struct timeval tv = { .tv_sec = STATUS_CLI_TIMEOUT_S };
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
            saved = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        err_set(err, "no coordinator answers at %s: %s", host_port,
                saved == EINPROGRESS || saved == EAGAIN ? "connect timed out" : strerror(saved));
    return fd;
}

int status_cli_get(const char *host_port, const char *path, int *code, strbuf *body, char *err)
{
    int fd = status_connect(host_port, err);
    if (fd < 0) return -1;
    strbuf reply = STRBUF_INIT;
    int ret = -1;
    char req[512];
    int len = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n",
                       path, host_port);
    if (len >= (int)sizeof req || send(fd, req, (size_t)len, MSG_NOSIGNAL) != len) {
        err_set(err, "%s: cannot send the request: %s", host_port, strerror(errno));
        goto out;
    }
    char buf[8192];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {
        if (reply.len + (size_t)n > STATUS_CLI_MAX_REPLY) {
            err_set(err, "%s: reply over %u bytes", host_port, STATUS_CLI_MAX_REPLY);
            goto out;
        }
        if (strbuf_append(&reply, buf, (size_t)n)) {
            err_set(err, "out of memory");
            goto out;
        }
    }
    if (n < 0) {
        err_set(err, "%s: no reply: %s", host_port,
                errno == EAGAIN ? "timed out" : strerror(errno));
        goto out;
    }
    char *start = reply.p ? strstr(reply.p, "\r\n\r\n") : NULL;
    if (!start || sscanf(reply.p, "HTTP/1.%*d %d", code) != 1) {
        err_set(err, "%s: not an HTTP reply (is it the --http address, not --listen?)", host_port);
        goto out;
    }
    start += 4;
    ret = strbuf_append(body, start, reply.len - (size_t)(start - reply.p)) ? -1 : 0;
    if (ret) err_set(err, "out of memory");
out:
    strbuf_free(&reply);
    close(fd);
    return ret;
}

int status_cli_main(int argc, char **argv)
{
    enum { O_HTTP = 256, O_JSON, O_HELP };
    static const struct option opts[] = {
        { "http", 1, 0, O_HTTP }, { "json", 0, 0, O_JSON }, { "help", 0, 0, O_HELP }, { 0, 0, 0, 0 },
    };
    const char *addr = NULL;
    int json = 0, opt;
    char err[SEFL_ERRLEN];
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case O_HTTP: addr = optarg; break;
        case O_JSON: json = 1; break;
        case O_HELP: fputs(status_usage, stdout); return 0;
        default: cli_bad_option(argv, err); return cli_usage_error("sefl-server status", err);
        }
    }
    if (cli_no_operands(argc, argv, err) < 0) return cli_usage_error("sefl-server status", err);
    if (!addr) return cli_usage_error("sefl-server status", "--http HOST:PORT is required");
    char host[HTTP_HOST_MAX + 1], port[6];
    if (http_split_addr(addr, host, port, err)) return cli_usage_error("sefl-server status", err);
    strbuf body = STRBUF_INIT;
    const char *path = json ? "/status" : "/status?format=table";
    int code = 0, rc = status_cli_get(addr, path, &code, &body, err);
    /* The endpoint's error bodies are one line. */
    if (rc == 0 && code != 200)
        err_set(err, "%s%s: HTTP %d: %.*s", addr, path, code,
                (int)strcspn(body.p ? body.p : "", "\n"), body.p ? body.p : "");
    if (rc == 0 && code == 200) fputs(body.p ? body.p : "", stdout);
    else fprintf(stderr, "sefl-server status: %s\n", err);
    strbuf_free(&body);
    return rc == 0 && code == 200 ? 0 : 1;
}
