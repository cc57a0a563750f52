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

/* argv[0] is "status". Returns the exit status. */
int status_cli_main(int argc, char **argv);

#endif
