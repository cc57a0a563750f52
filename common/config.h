/* config: what every sefl program takes besides its own flags, and the
 * config file that can stand in for its flags:
 *   --config FILE   an INI file with one key per long flag (without "--"):
 *                   "lr = 0.05"; a flag without a value is "verbose = true"
 *                   (or false). Keys before any section, or in the section
 *                   named after the program ("[sefl-server]"), apply; other
 *                   "[sefl-*]" sections belong to other programs and are
 *                   skipped, so one file can configure several. Unknown keys,
 *                   unknown sections and malformed lines are one-line errors
 *                   naming FILE:LINE, and so is a bad value (the program's
 *                   own check, located by config_where). Limits: lines of
 *                   CONFIG_MAX_LINE characters, CONFIG_MAX_ARGS keys; no
 *                   indented lines (inih reads them as the continuation
 *                   of the previous value).
 *   --print-config  prints the effective settings as an INI file that
 *                   --config reads back (flags given, then the others as
 *                   comments with the default --help states) and exits 0.
 *   --log-format F  text or json (log.h).
 *   --version       prints "PROG VERSION" (version.h) and exits 0.
 * SEFL_LOG (log.h) is read by config_begin: an unknown level is a usage error.
 *
 * How it works: the file's keys become "--key=value" arguments placed before
 * the command line's, and the program's own getopt_long loop parses them all,
 * so the command line wins and a new flag needs no config code. Usage in a
 * program's flag parsing:
 *   static const struct option opts[] = { ...its own..., CONFIG_OPTIONS, { 0, 0, 0, 0 } };
 *   if (config_begin("sefl-x", usage, opts, &argc, &argv, err)) return -1;
 *   while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) switch (c) {
 *       ... its own cases ...
 *       default: if (config_option(c, argv, err)) return -1;
 *   }
 *   if (rc < 0) { config_where(err); return -1; }   a value check that failed
 *   ... its own checks ...
 *   config_end();                                   --print-config exits here
 * One configuration per process: the state is the module's (a program parses
 * its flags once). The rewritten argv lives until exit.
 */
#ifndef SEFL_CONFIG_H
#define SEFL_CONFIG_H

#include <getopt.h>

#define CONFIG_MAX_ARGS 1024        /* keys in a file, and keys plus arguments */
#define CONFIG_MAX_ARGS_TEXT "1024"
#define CONFIG_MAX_LINE 198         /* characters in a line of the file (inih's
                                       INI_MAX_LINE, less newline and NUL) */

enum {
    CONFIG_OPT_CONFIG = 0x10000,     /* above any program's own option values */
    CONFIG_OPT_PRINT,
    CONFIG_OPT_LOG_FORMAT,
    CONFIG_OPT_VERSION,
};

#define CONFIG_OPTIONS                                                                       \
    { "config", required_argument, 0, CONFIG_OPT_CONFIG },                                   \
    { "print-config", no_argument, 0, CONFIG_OPT_PRINT },                                    \
    { "log-format", required_argument, 0, CONFIG_OPT_LOG_FORMAT },                           \
    { "version", no_argument, 0, CONFIG_OPT_VERSION }

/* The lines each program's --help shows for these options. */
#define CONFIG_USAGE                                                                         \
    "  --config FILE           read flags from an INI file (key = value per long\n"          \
    "                          flag; flags on the command line win)\n"                       \
    "  --print-config          print the effective settings as such a file, exit\n"          \
    "  --log-format F          text or json (one object per line) (default text)\n"          \
    "  --version               print the version and exit\n"                                 \
    "  -h, --help              this text\n"

/* Reads SEFL_LOG, finds --config FILE in argv and replaces argc and argv by
 * the file's arguments followed by the command line's (without --config).
 * prog names the program (its INI section, its JSON logs); usage (may be
 * NULL) is its --help text, read for the defaults --print-config shows;
 * opts is its getopt_long table including CONFIG_OPTIONS (borrowed until
 * exit). Returns 0, or -EINVAL (-ENOENT, -ENOMEM) with err. */
int config_begin(const char *prog, const char *usage, const struct option *opts, int *argc,
                 char ***argv, char *err);

/* For the getopt_long loop's default case: handles CONFIG_OPT_* (--version
 * prints and exits 0) and turns anything else ('?', ':') into the one-line
 * error of an unknown or incomplete option. Returns 0 or -EINVAL with err
 * (located by config_where). */
int config_option(int opt, char *const argv[], char *err);

/* When the argument getopt_long took last came from the config file,
 * prefixes err with "FILE:LINE: ". Call it when a value check in the loop
 * failed. */
void config_where(char *err);

/* After the program's own checks: with --print-config, prints the
 * effective settings to stdout and exits 0; otherwise returns. */
void config_end(void);

/* The config file given, or NULL. */
const char *config_path(void);

#endif
