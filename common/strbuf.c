/* strbuf: growing text buffer; see strbuf.h. */
#include "common/strbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for n more bytes plus the NUL. */
static int strbuf_reserve(strbuf *b, size_t n)
{
    if (b->failed) return -ENOMEM;
    if (b->len + n + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) {
        if (cap > ((size_t)-1) / 2) goto fail;
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) goto fail;
    b->p = p;
    b->cap = cap;
    return 0;
fail:
    b->failed = 1;
    return -ENOMEM;
}

int strbuf_append(strbuf *b, const char *s, size_t n)
{
    if (strbuf_reserve(b, n)) return -ENOMEM;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

int strbuf_printf(strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return -EINVAL;
    if (strbuf_reserve(b, (size_t)n)) return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int strbuf_json_string(strbuf *b, const char *s)
{
    strbuf_append(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            char esc[2] = { '\\', (char)*c };
            strbuf_append(b, esc, 2);
        } else if (*c < 0x20) {
            strbuf_printf(b, "\\u%04x", *c);
        } else {
            strbuf_append(b, (const char *)c, 1);
        }
    }
    return strbuf_append(b, "\"", 1);
}

int strbuf_error(const strbuf *b)
{
    return b->failed ? -ENOMEM : 0;
}

void strbuf_reset(strbuf *b)
{
    b->len = 0;
    if (b->p) b->p[0] = 0;
}

void strbuf_free(strbuf *b)
{
    if (!b) return;
    free(b->p);
    *b = (strbuf)STRBUF_INIT;
}
