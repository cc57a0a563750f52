/* testswitch: the test-only switches of a client session, compiled into
 * test builds only.
 *
 * The Makefile compiles testswitch.c twice: with SEFL_TEST_SWITCHES into
 * the test programs (build/test-bin/sefl-client, sefl-sim) and the Check
 * suites, and without it into the release programs of build/bin, where
 * testswitch_init reads nothing from the environment and every switch stays
 * off (tests/integration/release_switches.sh checks that the release
 * binaries do not even contain the switches' names). In a test build:
 *   SEFL_TAP_DIR=DIR   every frame the session sends is appended to
 *                      DIR/NAME.frames as on the wire before encryption
 *                      (4-byte big-endian length + Envelope);
 *   SEFL_FAULT=nan|shape|stale|duplicate
 *                      the session's first Update is corrupted: a NaN in
 *                      its first tensor, a wrong first dimension of its
 *                      first tensor, round - 1, or sent twice;
 *   SEFL_HOST_TOKEN=HEX  the process's host token (32 hex digits) instead of
 *                      a random one, so that two processes can claim the
 *                      same (tests/integration/fl_model_refs.sh).
 */
#ifndef SEFL_TESTSWITCH_H
#define SEFL_TESTSWITCH_H

#include <stddef.h>
#include <stdint.h>

enum { FAULT_NONE, FAULT_NAN, FAULT_SHAPE, FAULT_STALE, FAULT_DUPLICATE };

typedef struct {
    char *tap_path;             /* NULL unless SEFL_TAP_DIR is set; owned */
    int fault;                  /* FAULT_*: applied to the next Update, then cleared */
} testswitch;

/* Reads the switches for client `name` (all off in a release build).
 * Returns 0, or negative with err for a bad value; ts is then all off. */
int testswitch_init(testswitch *ts, const char *name, char *err);

/* Appends one wire frame to the tap file, when there is one. */
void testswitch_tap(const testswitch *ts, const char *name, const uint8_t *frame, size_t len);

void testswitch_free(testswitch *ts);

/* SEFL_HOST_TOKEN: returns 1 with the token in out when it is set, 0 when
 * it is not (always in a release build), or -EINVAL with err when it is
 * not 32 hex digits. */
int testswitch_host_token(uint8_t *out, size_t len, char *err);           /* accepts a zeroed one */

/* The --help lines of the switches: empty in a release build. */
const char *testswitch_help(void);

#endif
