/* check_config: --config FILE through a program's own getopt_long loop: the
 * file's keys come first so the command line wins, flags as true/false,
 * other programs' sections skipped, unknown keys and sections and bad lines
 * refused naming FILE:LINE, a bad value located by config_where, --config
 * missing or twice, SEFL_LOG and --log-format refused when unknown,
 * --version and --print-config exiting 0. */
#include <check.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/config.h"
#include "common/log.h"
#include "tests/check_main.h"

static char dir[64], path[128];

static const char usage[] =
    "usage: prog [options]\n"
    "  --lr X                  learning rate (default 0.01)\n"
    "  --batch B               batch size (default 10; at most 100)\n"
    "  --name NAME             a name\n"
    "  --verbose               more lines\n"
    CONFIG_USAGE;

enum { O_LR = 256, O_BATCH, O_NAME, O_VERBOSE, O_HELP };
static const struct option opts[] = {
    { "lr", 1, 0, O_LR }, { "batch", 1, 0, O_BATCH }, { "name", 1, 0, O_NAME },
    { "verbose", 0, 0, O_VERBOSE }, { "help", 0, 0, O_HELP }, CONFIG_OPTIONS, { 0, 0, 0, 0 },
};

typedef struct {
    double lr;
    long batch;
    const char *name;
    int verbose;
} args;

static void setup(void)
{
    strcpy(dir, "/tmp/check_config.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/prog.ini", dir);
    unsetenv("SEFL_LOG");
}

static void teardown(void)
{
    ck_assert_int_eq(check_rm_rf(dir), 0);
}

static void write_file(const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* A program's parse, as sefl-server's: returns 0, or -1 with err. */
static int parse(int argc, char **argv, args *a, char *err)
{
    *a = (args){ .lr = 0.01, .batch = 10 };
    if (config_begin("prog", usage, opts, &argc, &argv, err)) return -1;
    optind = 0;
    opterr = 0;
    int c, rc = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_LR: rc = cli_parse_double("--lr", optarg, 0, 10, &a->lr, err); break;
        case O_BATCH: rc = cli_parse_long("--batch", optarg, 1, 100, &a->batch, err); break;
        case O_NAME: a->name = optarg; break;
        case O_VERBOSE: a->verbose = 1; break;
        default: rc = config_option(c, argv, err); break;
        }
    }
    if (rc < 0) {
        config_where(err);
        return -1;
    }
    return cli_no_operands(argc, argv, err) < 0 ? -1 : 0;
}

#define ARGV(...) ((char *[]){ "prog", __VA_ARGS__, NULL })
static int ARGC(char **v)
{
    int n = 0;
    while (v[n]) n++;
    return n;
}

START_TEST(test_file_then_command_line)
{
    write_file("# a comment\n; another\n[prog]\nlr = 0.5\nbatch = 20\nname = a b c\n"
               "verbose = true\n\n[sefl-other]\nnot-ours = 1\n");
    char err[SEFL_ERRLEN] = "";
    args a;
    char **v1 = ARGV("--config", path);
    ck_assert_msg(parse(ARGC(v1), v1, &a, err) == 0, "%s", err);
    ck_assert_double_eq(a.lr, 0.5);
    ck_assert_int_eq(a.batch, 20);
    ck_assert_str_eq(a.name, "a b c");
    ck_assert_int_eq(a.verbose, 1);
    ck_assert_str_eq(config_path(), path);

    /* the command line wins, before or after --config */
    char **v2 = ARGV("--batch", "30", "--config", path, "--lr=0.25");
    ck_assert_msg(parse(ARGC(v2), v2, &a, err) == 0, "%s", err);
    ck_assert_double_eq(a.lr, 0.25);
    ck_assert_int_eq(a.batch, 30);

    /* keys before any section apply; a flag set false is not given */
    write_file("lr = 2\nverbose = false\n");
    char **v3 = ARGV("--config=" "/dev/null", "--lr", "1");
    ck_assert_msg(parse(ARGC(v3), v3, &a, err) == 0, "%s", err);
    ck_assert_double_eq(a.lr, 1);
    char **v4 = ARGV("--config", path);
    ck_assert_msg(parse(ARGC(v4), v4, &a, err) == 0, "%s", err);
    ck_assert_double_eq(a.lr, 2);
    ck_assert_int_eq(a.verbose, 0);
    ck_assert_ptr_null(a.name);
}
END_TEST

/* Each refusal is one line naming FILE:LINE (or the flag). */
START_TEST(test_refusals)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        { "lr = 0.5\nfrobnicate = 1\n", ":2: unknown key 'frobnicate' (prog has no such flag)" },
        { "\n\nbatch = 1000\n", ":3: --batch must be an integer in 1..100, got '1000'" },
        { "lr =\n", ":1: --lr must be a number in [0, 10], got ''" },
        { "verbose = sometimes\n", ":1: verbose takes no value: give true or false, not 'sometimes'" },
        { "[nope]\nlr = 1\n", ":2: unknown section [nope]" },
        { "lr 0.5\n", ":1: not a 'key = value' line" },
        { "config = other.ini\n", ":1: unknown key 'config'" },
        { "help = true\n", ":1: unknown key 'help'" },
        { "log-format = yaml\n", ":1: --log-format must be text or json, got 'yaml'" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(cases[i].text);
        char err[SEFL_ERRLEN] = "";
        args a;
        char **v = ARGV("--config", path);
        ck_assert_int_eq(parse(ARGC(v), v, &a, err), -1);
        char want[SEFL_ERRLEN];
        snprintf(want, sizeof want, "%s%s", path, cases[i].want);
        ck_assert_msg(!strncmp(err, want, strlen(want)), "case %zu: '%s', want '%s'", i, err, want);
        ck_assert_ptr_null(strchr(err, '\n'));
    }

    /* the limits: a line too long, too many keys */
    {
        char text[400];
        memset(text, 'x', sizeof text);
        memcpy(text, "name = ", 7);
        text[7 + CONFIG_MAX_LINE - 6] = 0;          /* one character over */
        char body[512];
        snprintf(body, sizeof body, "lr = 1\n%s\n", text);
        write_file(body);
        char e2[SEFL_ERRLEN] = "";
        args a2;
        char **v = ARGV("--config", path);
        ck_assert_int_eq(parse(ARGC(v), v, &a2, e2), -1);
        char want[SEFL_ERRLEN];
        snprintf(want, sizeof want, "%s:2: line longer than %d characters", path, CONFIG_MAX_LINE);
        ck_assert_str_eq(e2, want);
        text[7 + CONFIG_MAX_LINE - 7] = 0;          /* exactly the limit */
        snprintf(body, sizeof body, "%s\n", text);
        write_file(body);
        ck_assert_msg(parse(ARGC(v), v, &a2, e2) == 0, "%s", e2);
        ck_assert_int_eq((int)strlen(a2.name), CONFIG_MAX_LINE - 7);

        FILE *f = fopen(path, "w");
        for (int i = 0; i <= CONFIG_MAX_ARGS; i++) fputs("batch = 5\n", f);
        fclose(f);
        ck_assert_int_eq(parse(ARGC(v), v, &a2, e2), -1);
        snprintf(want, sizeof want, "%s:%d: more than %d keys", path, CONFIG_MAX_ARGS + 1, CONFIG_MAX_ARGS);
        ck_assert_str_eq(e2, want);
    }

    /* a bad value on the command line names no file */
    write_file("lr = 0.5\n");
    char err[SEFL_ERRLEN] = "";
    args a;
    char **v1 = ARGV("--config", path, "--batch", "0");
    ck_assert_int_eq(parse(ARGC(v1), v1, &a, err), -1);
    ck_assert_str_eq(err, "--batch must be an integer in 1..100, got '0'");
    char **v2 = ARGV("--config", path, "--bogus");
    ck_assert_int_eq(parse(ARGC(v2), v2, &a, err), -1);
    ck_assert_str_eq(err, "unknown or incomplete option '--bogus'");

    char missing[160];
    snprintf(missing, sizeof missing, "%s/none.ini", dir);
    char **v3 = ARGV("--config", missing);
    ck_assert_int_eq(parse(ARGC(v3), v3, &a, err), -1);
    ck_assert_ptr_nonnull(strstr(err, "No such file"));
    char **v4 = ARGV("--config", path, "--config", path);
    ck_assert_int_eq(parse(ARGC(v4), v4, &a, err), -1);
    ck_assert_str_eq(err, "--config given twice");
    char **v5 = ARGV("--config");
    ck_assert_int_eq(parse(ARGC(v5), v5, &a, err), -1);
    ck_assert_str_eq(err, "--config needs a FILE");
    char **v6 = ARGV("--conf", path);
    ck_assert_int_eq(parse(ARGC(v6), v6, &a, err), -1);
    ck_assert_str_eq(err, "write --config in full");
}
END_TEST

START_TEST(test_sefl_log)
{
    char err[SEFL_ERRLEN] = "";
    args a;
    char **v = ARGV("--lr", "1");
    setenv("SEFL_LOG", "Debug", 1);
    ck_assert_msg(parse(ARGC(v), v, &a, err) == 0, "%s", err);
    setenv("SEFL_LOG", "WARN", 1);
    ck_assert_msg(parse(ARGC(v), v, &a, err) == 0, "%s", err);
    setenv("SEFL_LOG", "verbose", 1);
    ck_assert_int_eq(parse(ARGC(v), v, &a, err), -1);
    ck_assert_str_eq(err, "SEFL_LOG must be debug, info, warn or error, got 'verbose'");
    unsetenv("SEFL_LOG");
}
END_TEST

/* --log-format json: one object per line, fields typed, text escaped;
 * text lines carry the message alone. (Each test runs in its own process,
 * so stderr can be sent to a file here.) */
START_TEST(test_log_json)
{
    char err[SEFL_ERRLEN] = "", file[160], line[1024];
    snprintf(file, sizeof file, "%s/log", dir);
    ck_assert_ptr_nonnull(freopen(file, "w", stderr));
    args a;
    char **v = ARGV("--log-format", "json");
    ck_assert_msg(parse(ARGC(v), v, &a, err) == 0, "%s", err);
    const log_field f[] = { LOG_STR("name", "x\"y"), LOG_INT("round", 3), LOG_NUM("loss", 0.25),
                            LOG_NUM("bad", 0.0 / 0.0) };
    log_fields(LOG_INFO, f, 4, "a \"quoted\"\tline %d", 7);
    log_debug("not shown at info");
    ck_assert_int_eq(log_set_format("text", err), 0);
    log_fields(LOG_WARN, f, 4, "plain %s", "text");
    fflush(stderr);
    FILE *in = fopen(file, "r");
    ck_assert_ptr_nonnull(in);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, in));
    ck_assert_msg(!strncmp(line, "{\"ts\":\"", 7) && line[30] == 'Z' && line[26] == '.', "%s", line);
    ck_assert_msg(strstr(line, "\"level\":\"info\",\"prog\":\"prog\",\"pid\":") != NULL, "%s", line);
    ck_assert_msg(strstr(line, "\"msg\":\"a \\\"quoted\\\"\\u0009line 7\",\"name\":\"x\\\"y\","
                               "\"round\":3,\"loss\":0.25,\"bad\":null}\n") != NULL, "%s", line);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, in));
    ck_assert_msg(strstr(line, "Z WARN plain text\n") != NULL && line[23] == 'Z', "%s", line);
    ck_assert_ptr_null(fgets(line, sizeof line, in));
    fclose(in);
}
END_TEST

/* --version prints and exits 0 (an exit test: Check forks each test). */
START_TEST(test_version_exits_0)
{
    char err[SEFL_ERRLEN] = "";
    args a;
    char **v = ARGV("--version");
    ck_assert_ptr_nonnull(freopen("/dev/null", "w", stdout));
    parse(ARGC(v), v, &a, err);
    ck_abort_msg("--version returned");
}
END_TEST

START_TEST(test_print_config_exits_0)
{
    char err[SEFL_ERRLEN] = "";
    args a;
    char **v = ARGV("--lr", "0.5", "--print-config");
    ck_assert_int_eq(parse(ARGC(v), v, &a, err), 0);
    ck_assert_ptr_nonnull(freopen("/dev/null", "w", stdout));
    config_end();
    ck_abort_msg("--print-config returned");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_file_then_command_line);
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_sefl_log);
    tcase_add_test(tc, test_log_json);
    suite_add_tcase(s, tc);
    /* No fixture: these end the test's process, teardown would not run. */
    TCase *exits = tcase_create("exits");
    tcase_add_exit_test(exits, test_version_exits_0, 0);
    tcase_add_exit_test(exits, test_print_config_exits_0, 0);
    suite_add_tcase(s, exits);
    return check_run(s);
}
