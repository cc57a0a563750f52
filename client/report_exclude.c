/* report_exclude: the list of clients a report leaves out (sefl-eval
 * --exclude-clients, --attackers); see report.h. */
#include "client/report.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

/* Appends "name\n" to the buffer *buf of *len bytes (capacity *cap).
 * Returns 0 or -ENOMEM. */
static int exclude_append(char **buf, size_t *len, size_t *cap, const char *name)
{
    size_t n = strlen(name);
    if (*len + n + 2 > *cap) {
        size_t want = (*cap ? *cap * 2 : 256) + n + 2;
        char *more = realloc(*buf, want);
        if (!more) return -ENOMEM;
        *buf = more;
        *cap = want;
    }
    memcpy(*buf + *len, name, n);
    *len += n;
    (*buf)[(*len)++] = '\n';
    (*buf)[*len] = 0;
    return 0;
}

/* Parses a client id 0..REPORT_MAX_EXCLUDE_ID-1 from the whole of s. */
static int exclude_id(const char *s, long *id)
{
    char *end;
    if (*s < '0' || *s > '9') return -EINVAL;
    errno = 0;
    *id = strtol(s, &end, 10);
    return errno || *end || *id >= REPORT_MAX_EXCLUDE_ID ? -EINVAL : 0;
}

int report_exclude_parse(const char *list, char **out, char *err)
{
    char *buf = NULL, *copy = strdup(list), *save = NULL;
    size_t len = 0, cap = 0;
    long names = 0;
    int ret = -ENOMEM;
    *out = NULL;
    if (!copy || exclude_append(&buf, &len, &cap, "")) goto out;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long lo, hi;
        char *dash = strchr(tok, '-');
        ret = -EINVAL;
        if (!strncmp(tok, "client-", 7) || !(*tok >= '0' && *tok <= '9')) {
            /* A name as the coordinator stored it (a certificate CN). */
            if (strlen(tok) >= REPORT_NAME_MAX || strchr(tok, '\n')) {
                err_set(err, "--exclude-clients: '%.80s' is not a client name of 1..%d bytes",
                        tok, REPORT_NAME_MAX - 1);
                goto out;
            }
            lo = hi = -1;
        } else {
            if (dash) *dash = 0;
            if (exclude_id(tok, &lo) || (dash ? exclude_id(dash + 1, &hi) : (hi = lo, 0)) ||
                hi < lo) {
                if (dash) *dash = '-';
                err_set(err, "--exclude-clients: '%.80s' is not a client id or a range LO-HI of "
                        "ids 0..%d", tok, REPORT_MAX_EXCLUDE_ID - 1);
                goto out;
            }
        }
        if ((names += hi - lo + 1) > REPORT_MAX_CLIENTS) {
            err_set(err, "--exclude-clients: more than %d clients", REPORT_MAX_CLIENTS);
            ret = -ERANGE;
            goto out;
        }
        ret = -ENOMEM;
        if (lo < 0 && exclude_append(&buf, &len, &cap, tok)) goto out;
        for (long id = lo; id >= 0 && id <= hi; id++) {
            char name[32];
            snprintf(name, sizeof name, "client-%04ld", id);
            if (exclude_append(&buf, &len, &cap, name)) goto out;
        }
    }
    ret = 0;
    if (names == 0) {
        err_set(err, "--exclude-clients: no client in '%.80s'", list);
        ret = -EINVAL;
    }
out:
    if (ret == -ENOMEM) err_set(err, "out of memory");
    if (ret == 0) *out = buf;
    else free(buf);
    free(copy);
    return ret;
}
