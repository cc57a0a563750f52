/* config: --config FILE, --print-config, --log-format and --version for
 * every sefl program; see config.h. */
#include "common/config.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cli.h"
#include "common/log.h"
#include "common/version.h"

/* One argument made from a line of the file. */
typedef struct {
    char *arg;                  /* "--key=value" or "--key", owned */
    int line;
} config_arg;

static struct {
    const char *prog, *usage, *path;
    const struct option *opts;
    config_arg file[CONFIG_MAX_ARGS];
    int nfile;
    char *argv[CONFIG_MAX_ARGS + 2];  /* the rewritten argv, NULL-terminated */
    int argc;
    int print;
    /* While the file is read. */
    int line;
    FILE *f;
    char err[SEFL_ERRLEN];
} cf;

static void config_reset(void)
{
    for (int i = 0; i < cf.nfile; i++) free(cf.file[i].arg);
    memset(&cf, 0, sizeof cf);
}

/* The options a file may not set: they act rather than set. */
static int config_is_action(const struct option *o)
{
    return o->val == CONFIG_OPT_CONFIG || o->val == CONFIG_OPT_PRINT ||
           o->val == CONFIG_OPT_VERSION || !strcmp(o->name, "help");
}

static const struct option *config_find(const char *name)
{
    for (const struct option *o = cf.opts; o->name; o++)
        if (!strcmp(o->name, name)) return o;
    return NULL;
}

/* ini_reader: fgets that counts lines, so that the handler knows its line
 * (Debian's inih is built without INI_HANDLER_LINENO), and refuses a line
 * longer than inih reads at once (INI_MAX_LINE), which inih would otherwise
 * cut into two lines. */
static char *config_reader(char *str, int num, void *stream)
{
    char *s = fgets(str, num, stream);
    if (!s) return NULL;
    cf.line++;
    size_t len = strlen(s);
    if (len == (size_t)num - 1 && s[len - 1] != '\n' && !feof(stream)) {
        if (!cf.err[0])
            err_set(cf.err, "%s:%d: line longer than %d characters", cf.path, cf.line, num - 2);
        return NULL;
    }
    return s;
}

static int config_fail(const char *fmt, const char *a, const char *b)
{
    char msg[SEFL_ERRLEN];
    snprintf(msg, sizeof msg, fmt, a, b);
    if (!cf.err[0]) err_set(cf.err, "%s:%d: %s", cf.path, cf.line, msg);
    return 0;
}

/* ini_handler: one key = value line. Returns 1 to go on, 0 on an error
 * (kept in cf.err; the first one is reported). */
static int config_on_key(void *user, const char *section, const char *name, const char *value)
{
    (void)user;
    if (cf.err[0]) return 0;
    if (section[0] && strcmp(section, cf.prog)) {
        if (!strncmp(section, "sefl-", 5)) return 1;    /* another program's keys */
        return config_fail("unknown section [%s] (sections are named after the sefl programs, "
                           "e.g. [%s])", section, cf.prog);
    }
    const struct option *o = config_find(name);
    if (!o || config_is_action(o))
        return config_fail("unknown key '%s' (%s has no such flag)", name, cf.prog);
    if (cf.nfile == CONFIG_MAX_ARGS) return config_fail("more than %s keys%s", CONFIG_MAX_ARGS_TEXT, "");
    size_t len = strlen(name) + strlen(value) + 4;
    char *arg = malloc(len);
    if (!arg) return config_fail("out of memory%s%s", "", "");
    if (o->has_arg == no_argument) {
        if (!strcasecmp(value, "false") || !strcasecmp(value, "no") || !strcmp(value, "0") ||
            !strcasecmp(value, "off")) {
            free(arg);
            return 1;
        }
        if (strcasecmp(value, "true") && strcasecmp(value, "yes") && strcmp(value, "1") &&
            strcasecmp(value, "on")) {
            free(arg);
            return config_fail("%s takes no value: give true or false, not '%s'", name, value);
        }
        snprintf(arg, len, "--%s", name);
    } else {
        snprintf(arg, len, "--%s=%s", name, value);
    }
    cf.file[cf.nfile++] = (config_arg){ .arg = arg, .line = cf.line };
    return 1;
}

static int config_read(const char *path, char *err)
{
    cf.path = path;
    cf.f = fopen(path, "r");
    if (!cf.f) {
        int e = errno;
        err_set(err, "--config %s: %s", path, strerror(e));
        return -e;
    }
    int rc = ini_parse_stream(config_reader, cf.f, config_on_key, NULL);
    fclose(cf.f);
    cf.f = NULL;
    if (cf.err[0]) {
        err_set(err, "%s", cf.err);
        return -EINVAL;
    }
    if (rc != 0) {
        err_set(err, "%s:%d: not a 'key = value' line, [section] or comment", path, rc > 0 ? rc : 0);
        return rc == -2 ? -ENOMEM : -EINVAL;
    }
    return 0;
}

int config_begin(const char *prog, const char *usage, const struct option *opts, int *argc,
                 char ***argv, char *err)
{
    config_reset();
    cf.prog = prog;
    cf.usage = usage;
    cf.opts = opts;
    log_set_prog(prog);
    int ret = log_init_env(err);
    if (ret) return ret;

    /* --config FILE or --config=FILE, before a "--" that ends the options. */
    const char *path = NULL;
    int skip_at = -1, skip_n = 0;
    for (int i = 1; i < *argc; i++) {
        const char *a = (*argv)[i];
        if (!strcmp(a, "--")) break;
        const char *v = NULL;
        int n = 0;
        if (!strcmp(a, "--config")) {
            if (i + 1 >= *argc) {
                err_set(err, "--config needs a FILE");
                return -EINVAL;
            }
            v = (*argv)[i + 1];
            n = 2;
        } else if (!strncmp(a, "--config=", 9)) {
            v = a + 9;
            n = 1;
        }
        if (!v) continue;
        if (path) {
            err_set(err, "--config given twice");
            return -EINVAL;
        }
        path = v;
        skip_at = i;
        skip_n = n;
        i += n - 1;
    }
    if (path && (ret = config_read(path, err))) return ret;
    if (cf.nfile + *argc > CONFIG_MAX_ARGS) {
        err_set(err, "more than %d arguments", CONFIG_MAX_ARGS);
        return -E2BIG;
    }
    cf.argv[cf.argc++] = (*argv)[0];
    for (int i = 0; i < cf.nfile; i++) cf.argv[cf.argc++] = cf.file[i].arg;
    for (int i = 1; i < *argc; i++) {
        if (i == skip_at) {
            i += skip_n - 1;
            continue;
        }
        cf.argv[cf.argc++] = (*argv)[i];
    }
    cf.argv[cf.argc] = NULL;
    *argc = cf.argc;
    *argv = cf.argv;
    return 0;
}

int config_option(int opt, char *const argv[], char *err)
{
    int ret = 0;
    switch (opt) {
    case CONFIG_OPT_CONFIG:
        /* config_begin took out every --config; getopt_long found an
         * abbreviation of it ("--conf"), which would otherwise be ignored. */
        err_set(err, "write --config in full");
        ret = -EINVAL;
        break;
    case CONFIG_OPT_PRINT: cf.print = 1; break;
    case CONFIG_OPT_LOG_FORMAT: ret = log_set_format(optarg, err); break;
    case CONFIG_OPT_VERSION:
        printf("%s %s\n", cf.prog, SEFL_VERSION);
        exit(0);
    default: ret = cli_bad_option(argv, err); break;
    }
    if (ret) config_where(err);
    return ret;
}

void config_where(char *err)
{
    /* Once is enough: config_option locates its own errors, and a program
     * may call this again on the same one. */
    size_t plen = cf.path ? strlen(cf.path) : 0;
    if (!plen || (!strncmp(err, cf.path, plen) && err[plen] == ':')) return;
    if (optind < 1 || optind > cf.argc) return;
    const char *last = cf.argv[optind - 1];
    for (int i = 0; i < cf.nfile; i++)
        if (cf.file[i].arg == last) {
            char msg[SEFL_ERRLEN];
            snprintf(msg, sizeof msg, "%s", err);
            err_set(err, "%s:%d: %s", cf.path, cf.file[i].line, msg);
            return;
        }
}

const char *config_path(void)
{
    return cf.path;
}

/* The default --help states for option name: the text after "(default" in
 * its paragraph, without the words about it, into out; "" when it states
 * none. */
static void config_default(const char *name, char *out, size_t size)
{
    out[0] = 0;
    if (!cf.usage) return;
    char key[64];
    snprintf(key, sizeof key, "\n  --%s", name);
    const char *p = cf.usage;
    size_t klen = strlen(key);
    while ((p = strstr(p, key))) {
        char c = p[klen];
        if (c == ' ' || c == '\n' || c == '=') break;
        p += klen;
    }
    if (!p) return;
    const char *end = strstr(p + klen, "\n  -");
    const char *blank = strstr(p + klen, "\n\n");
    if (!end || (blank && blank < end)) end = blank;
    if (!end) end = p + strlen(p);
    const char *d = strstr(p + klen, "(default");
    if (!d || d > end) return;
    d += 8;
    while (*d == ':' || *d == ' ') d++;
    /* The value ends at ")" or where words about it begin ("; ", ": ", ", "). */
    size_t n = 0;
    while (d[n] && d[n] != ')' && !(strchr(";:,", d[n]) && d[n + 1] == ' ')) n++;
    if (n >= size) n = size - 1;
    memcpy(out, d, n);
    out[n] = 0;
    /* A default stated over two lines of --help: one space for the break. */
    for (char *q = out; *q; q++)
        if (*q == '\n') {
            size_t sp = strspn(q + 1, " ");
            memmove(q + 1, q + 1 + sp, strlen(q + 1 + sp) + 1);
            *q = ' ';
        }
}

/* Whether --help calls option name repeatable: each occurrence counts. */
static int config_repeatable(const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "\n  --%s ", name);
    const char *p = cf.usage ? strstr(cf.usage, key) : NULL;
    if (!p) return 0;
    const char *end = strstr(p + 1, "\n  -");
    const char *r = strstr(p, "repeatable");
    return r && (!end || r < end);
}

void config_end(void)
{
    if (!cf.print) return;
    int nopts = 0;
    while (cf.opts[nopts].name) nopts++;
    /* The last value of every option (each one of a repeatable option), by
     * parsing the arguments again as the program did. */
    const char **vals = calloc((size_t)cf.argc + 1, sizeof *vals);
    int *which = calloc((size_t)cf.argc + 1, sizeof *which);
    if (!vals || !which) {
        fprintf(stderr, "%s: out of memory\n", cf.prog);
        exit(1);
    }
    int n = 0, saved_optind = optind, saved_opterr = opterr, idx;
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(cf.argc, cf.argv, "h", cf.opts, &idx)) != -1) {
        if (c == '?' || c == ':' || c == 'h' || config_is_action(&cf.opts[idx])) continue;
        vals[n] = optarg;
        which[n++] = idx;
    }
    optind = saved_optind;
    opterr = saved_opterr;

    printf("# %s %s: effective settings (--print-config); use with --config FILE.\n"
           "# Commented keys are not set and take the default --help states.\n[%s]\n",
           cf.prog, SEFL_VERSION, cf.prog);
    for (int o = 0; o < nopts; o++) {
        const struct option *op = &cf.opts[o];
        if (config_is_action(op)) continue;
        int rep = config_repeatable(op->name), shown = 0;
        for (int i = n - 1; i >= 0; i--) {
            if (which[i] != o) continue;
            /* Repeatable: every occurrence in order; otherwise the last. */
            if (rep) {
                for (int j = 0; j < n; j++)
                    if (which[j] == o) printf("%s = %s\n", op->name, vals[j] ? vals[j] : "true");
            } else {
                printf("%s = %s\n", op->name, vals[i] ? vals[i] : "true");
            }
            shown = 1;
            break;
        }
        if (shown) continue;
        char d[128];
        config_default(op->name, d, sizeof d);
        if (op->has_arg == no_argument) printf("# %s = false\n", op->name);
        else if (d[0]) printf("# %s = %s\n", op->name, d);
        else printf("# %s =\n", op->name);
    }
    free(vals);
    free(which);
    fflush(stdout);
    exit(ferror(stdout) ? 1 : 0);
}
