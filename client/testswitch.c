/* testswitch: the test-only switches of a client session; see testswitch.h.
 * Everything that reads the environment sits under SEFL_TEST_SWITCHES, so a
 * release build carries none of it. */
#include "client/testswitch.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#ifdef SEFL_TEST_SWITCHES

static int testswitch_parse_fault(const char *v, int *fault, char *err)
{
    static const char *names[] = { "", "nan", "shape", "stale", "duplicate" };
    *fault = FAULT_NONE;
    if (!v || !*v) return 0;
    for (int i = 1; i < 5; i++) {
        if (!strcmp(v, names[i])) {
            *fault = i;
            return 0;
        }
    }
    err_set(err, "SEFL_FAULT must be nan, shape, stale or duplicate, got '%s'", v);
    return -EINVAL;
}

int testswitch_init(testswitch *ts, const char *name, char *err)
{
    const char *tap = getenv("SEFL_TAP_DIR");
    *ts = (testswitch){ 0 };
    int rc = testswitch_parse_fault(getenv("SEFL_FAULT"), &ts->fault, err);
    if (rc < 0) return rc;
    if (tap && *tap) {
        size_t n = strlen(tap) + strlen(name) + sizeof "/.frames";
        if (n > PATH_MAX || !(ts->tap_path = malloc(n))) {
            err_set(err, "SEFL_TAP_DIR path too long or out of memory");
            ts->fault = FAULT_NONE;
            return -ENAMETOOLONG;
        }
        snprintf(ts->tap_path, n, "%s/%s.frames", tap, name);
    }
    return 0;
}

void testswitch_tap(const testswitch *ts, const char *name, const uint8_t *frame, size_t len)
{
    if (!ts->tap_path) return;
    FILE *f = fopen(ts->tap_path, "ab");
    if (!f) {
        log_warn("%s: cannot append to tap file %s", name, ts->tap_path);
        return;
    }
    if (fwrite(frame, 1, len, f) != len) log_warn("%s: short write to tap file %s", name, ts->tap_path);
    fclose(f);
}

int testswitch_host_token(uint8_t *out, size_t len, char *err)
{
    const char *v = getenv("SEFL_HOST_TOKEN");
    if (!v || !*v) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned b;
        if (sscanf(v + 2 * i, "%2x", &b) != 1 || !v[2 * i + 1]) goto bad;
        out[i] = (uint8_t)b;
    }
    if (strlen(v) != 2 * len || strspn(v, "0123456789abcdefABCDEF") != 2 * len) goto bad;
    return 1;
bad:
    err_set(err, "SEFL_HOST_TOKEN must be %zu hex digits, got '%s'", 2 * len, v);
    return -EINVAL;
}

const char *testswitch_help(void)
{
    return "Test-only environment switches (this is a test build; never for production use):\n"
           "  SEFL_TAP_DIR=DIR     append every frame sent to DIR/NAME.frames (before TLS)\n"
           "  SEFL_FAULT=nan|shape|stale|duplicate  corrupt the first Update sent\n"
           "  SEFL_HOST_TOKEN=HEX  this process's host token (32 hex digits)\n";
}

#else

int testswitch_init(testswitch *ts, const char *name, char *err)
{
    *ts = (testswitch){ 0 };
    return 0;
}

void testswitch_tap(const testswitch *ts, const char *name, const uint8_t *frame, size_t len)
{
}

int testswitch_host_token(uint8_t *out, size_t len, char *err)
{
    return 0;
}

const char *testswitch_help(void)
{
    return "";
}

#endif

void testswitch_free(testswitch *ts)
{
    free(ts->tap_path);
    ts->tap_path = NULL;
}
