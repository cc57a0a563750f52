/* check_main.h: the end of every Check suite's main (tests/check_*.c),
 * so that each suite runs and reports the same way: every test in CK_NORMAL
 * mode, so Check prints its summary line, and a non-zero exit status when a
 * test failed. Header-only because each suite is its own program.
 */
#ifndef SEFL_CHECK_MAIN_H
#define SEFL_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

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

#endif
