/* check_main.h: what the Check suites (tests/check_*.c) share around their
 * tests. check_run is the end of every suite's main, so that each suite
 * runs and reports the same way: every test in CK_NORMAL mode, so Check
 * prints its summary line, and a non-zero exit status when a test failed.
 * check_rm_rf removes a suite's temporary directory. Header-only because
 * each suite is its own program.
 */
#ifndef SEFL_CHECK_MAIN_H
#define SEFL_CHECK_MAIN_H

#include <check.h>
#include <ftw.h>
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

#endif
