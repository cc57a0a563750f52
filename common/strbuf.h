/* strbuf: a growing NUL-terminated text buffer, for rendering documents
 * (Prometheus text, JSON) whose length is not known in advance.
 *
 * Ownership: the strbuf owns p; strbuf_free releases it and leaves an empty
 * buffer that may be used again. An allocation failure is sticky: the
 * buffer stops growing, later appends do nothing, and strbuf_error (and
 * every append) reports -ENOMEM, so a caller may append a whole document
 * and check once at the end.
 */
#ifndef SEFL_STRBUF_H
#define SEFL_STRBUF_H

#include <stddef.h>

typedef struct {
    char *p;                    /* (cap) the text, NUL-terminated once anything was appended */
    size_t len;                 /* bytes of text, without the NUL */
    size_t cap;
    int failed;                 /* an allocation failed */
} strbuf;

#define STRBUF_INIT { NULL, 0, 0, 0 }

/* Appends formatted text. Returns 0 or -ENOMEM. */
int strbuf_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends n bytes of s. Returns 0 or -ENOMEM. */
int strbuf_append(strbuf *b, const char *s, size_t n);
/* Appends s as a JSON string literal, quotes included (control characters
 * as \u00XX, quote and backslash escaped; bytes >= 0x80 are copied, so
 * UTF-8 stays UTF-8). Returns 0 or -ENOMEM. */
int strbuf_json_string(strbuf *b, const char *s);
/* 0, or -ENOMEM when an append failed since init or the last free. */
int strbuf_error(const strbuf *b);
/* Empties the buffer, keeping its memory. */
void strbuf_reset(strbuf *b);
void strbuf_free(strbuf *b);     /* accepts NULL */

#endif
