/* status_cli: `sefl-server status --http HOST:PORT [--json]`, which asks a
 * running coordinator's HTTP endpoint (http.h) for /status and prints it as
 * the table or the JSON document the coordinator rendered. One line on
 * stderr and exit 1 when nothing answers, or the answer is not a status;
 * exit 2 on bad arguments.
 */
#ifndef SEFL_STATUS_CLI_H
#define SEFL_STATUS_CLI_H

#define STATUS_CLI_TIMEOUT_S 5        /* connect, send and each read */
#define STATUS_CLI_MAX_REPLY (1u << 20)

#include "common/strbuf.h"

/* GETs path from host_port over HTTP/1.0 (each step bounded by
 * STATUS_CLI_TIMEOUT_S, the reply by STATUS_CLI_MAX_REPLY). Returns 0 with
 * the status code in *code and the body appended to body, or -1 with err
 * (nothing answers, not HTTP, too long). */
int status_cli_get(const char *host_port, const char *path, int *code, strbuf *body, char *err);

/* argv[0] is "status". Returns the exit status. */
int status_cli_main(int argc, char **argv);

#endif
