/* frame: cuts a byte stream into length-prefixed frames.
 *
 * Frame = 4-byte big-endian length + payload. The length is checked against
 * the reader's limit as soon as its 4 bytes are in, before any allocation,
 * so a peer cannot make us allocate more than the limit. Pure (no I/O), so
 * the decoder can be fuzzed on its own; conn.c feeds it decrypted bytes.
 */
#ifndef SEFL_FRAME_H
#define SEFL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER 4                   /* length prefix */
#define FRAME_MAX_DEFAULT (64u << 20)    /* payload limit after Hello/Welcome */
#define FRAME_MAX_UNAUTH (64u << 10)     /* payload limit before Hello/Welcome */

typedef struct {
    size_t limit;               /* largest payload accepted */
    uint8_t hdr[4];
    size_t hdr_have;            /* bytes of hdr read so far */
    uint8_t *buf;               /* (need) payload being assembled, owned */
    size_t need;                /* payload length of the current frame */
    size_t have;                /* payload bytes read so far */
} frame_reader;

/* Called once per complete payload (valid only during the call). A nonzero
 * return stops frame_reader_feed, which then returns that value. */
typedef int (*frame_cb)(void *arg, const uint8_t *payload, size_t len);

void frame_reader_init(frame_reader *r, size_t limit);
void frame_reader_set_limit(frame_reader *r, size_t limit);

/* Feeds n bytes. Returns 0, -EMSGSIZE when a length prefix is over the limit
 * (the stream is then unusable), -ENOMEM, or the callback's nonzero value.
 * A payload of length 0 is a frame: the callback gets len 0 (and a non-NULL
 * pointer). After -EMSGSIZE, r->need holds the refused length and every
 * later feed returns -EMSGSIZE again. */
int frame_reader_feed(frame_reader *r, const uint8_t *p, size_t n, frame_cb cb, void *arg);

/* Bytes the reader wants next to finish what it is collecting: the rest of
 * the length prefix, or of the payload. A reader fed at most this many
 * bytes at a time stops exactly after each prefix and each payload. */
size_t frame_reader_want(const frame_reader *r);

/* 1 while the current frame's length prefix is in (r->need is its payload
 * length) and its payload is not complete, else 0. */
int frame_reader_in_payload(const frame_reader *r);

void frame_reader_free(frame_reader *r);   /* accepts a zeroed reader */

/* Writes the 4-byte big-endian prefix for a payload of len bytes. */
void frame_put_header(uint8_t hdr[4], uint32_t len);

#endif
