/* check_main.h: the fixtures every Check suite (tests/check_*.c) shares.
 * check_run is the end of every suite's main, so that each suite runs and
 * reports the same way: every test in CK_NORMAL mode, so Check prints its
 * summary line, and a non-zero exit status when a test failed.
 * check_mkdtemp makes a suite's temporary directory and check_rm_rf removes
 * it; check_certs makes certificates with the real sefl-certs of the build
 * being tested ($BUILD, default build; the Makefile builds it before any
 * suite). Header-only because each suite is its own program.
 */
#ifndef SEFL_CHECK_MAIN_H
#define SEFL_CHECK_MAIN_H

#include <check.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* Runs every test of s (the runner takes s and frees it) and returns the
 * exit status: EXIT_SUCCESS when no test failed, else EXIT_FAILURE. */
static inline int check_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

static inline int check_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes the directory tree dir, like rm -rf but without a shell (the
 * tree's own files first, links not followed). Returns 0, or -1 when dir
 * or something in it could not be removed. */
static inline int check_rm_rf(const char *dir)
{
    return nftw(dir, check_rm_entry, 8, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

/* Makes a new directory from template (e.g. "/tmp/check_x.XXXXXX", at most
 * n bytes with its NUL) into dir. A suite cannot run without it, so a
 * failure ends the suite with one line. */
static inline void check_mkdtemp(char *dir, size_t n, const char *template)
{
    snprintf(dir, n, "%s", template);
    if (!mkdtemp(dir)) {
        perror(template);
        exit(1);
    }
}

/* Runs "$BUILD/bin/sefl-certs ARGS", ARGS from fmt, output discarded. A
 * suite cannot run without its certificates, so a failure ends it with the
 * command in one line. */
static inline void check_certs(const char *fmt, ...)
{
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char args[1536], cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%s/bin/sefl-certs %s >/dev/null 2>&1", build, args);
    if (system(cmd) != 0) {
        fprintf(stderr, "suite setup failed: %s\n", cmd);
        exit(1);
    }
}

#endif
