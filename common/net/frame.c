/* frame: the stream-to-frames state machine of frame.h.
 *
 * A frame_reader is fed arbitrary chunks of a byte stream (as they come out
 * of TLS) and calls back once per whole payload. The reader is in one of two
 * states: collecting the 4-byte length prefix (hdr_have < 4), or collecting
 * the payload (hdr_have == 4, have < need). The length is compared with the
 * limit the moment its fourth byte arrives, before anything is allocated.
 *
 * Decisions:
 * - A payload of length 0 is a frame like any other: the callback gets a
 *   non-NULL pointer and len 0. Framing does not judge contents; wire_decode
 *   refuses an empty Envelope.
 * - A prefix over the limit makes the stream unusable (there is no way to
 *   resynchronise): every later feed returns -EMSGSIZE again.
 * - The limit is compared with the current frame's length on every feed, so
 *   it is meant to be raised (after Hello/Welcome), not lowered: lowering it
 *   below a frame in progress fails the stream like an over-limit prefix.
 * - When the callback stops the feed, the bytes after that frame in the same
 *   chunk are dropped: stopping means the owner is closing the stream.
 */
#include "common/net/frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void frame_reader_init(frame_reader *r, size_t limit)
{
    memset(r, 0, sizeof *r);
    r->limit = limit;
}

void frame_reader_set_limit(frame_reader *r, size_t limit)
{
    r->limit = limit;
}

/* Back to "collecting a length prefix", releasing the payload buffer. */
static void frame_reader_reset(frame_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->hdr_have = 0;
    r->need = 0;
    r->have = 0;
}

/* Delivers a whole payload and gets ready for the next frame. */
static int frame_deliver(frame_reader *r, const uint8_t *payload, size_t len, frame_cb cb, void *arg)
{
    static const uint8_t empty[1];
    int rc = cb(arg, len ? payload : empty, len);
    frame_reader_reset(r);
    return rc;
}

int frame_reader_feed(frame_reader *r, const uint8_t *p, size_t n, frame_cb cb, void *arg)
{
    for (;;) {
        if (r->hdr_have == 4 && r->need > r->limit) return -EMSGSIZE;
        if (r->hdr_have < 4) {
            if (n == 0) return 0;
            size_t k = 4 - r->hdr_have;
            if (k > n) k = n;
            memcpy(r->hdr + r->hdr_have, p, k);
            r->hdr_have += k;
            p += k;
            n -= k;
            if (r->hdr_have < 4) return 0;
            r->need = (size_t)r->hdr[0] << 24 | (size_t)r->hdr[1] << 16 |
                      (size_t)r->hdr[2] << 8 | (size_t)r->hdr[3];
            r->have = 0;
            if (r->need > r->limit) return -EMSGSIZE;
        }
        /* A payload that is whole in this chunk is delivered from the chunk
         * itself: no allocation, no copy (the common case for small frames). */
        if (r->have == 0 && n >= r->need) {
            size_t len = r->need;
            int rc = frame_deliver(r, p, len, cb, arg);
            if (rc) return rc;
            p += len;
            n -= len;
            continue;
        }
        if (n == 0) return 0;
        if (!r->buf) {
            r->buf = malloc(r->need);
            if (!r->buf) return -ENOMEM;
        }
        size_t k = r->need - r->have;
        if (k > n) k = n;
        memcpy(r->buf + r->have, p, k);
        r->have += k;
        p += k;
        n -= k;
        if (r->have < r->need) return 0;
        int rc = frame_deliver(r, r->buf, r->need, cb, arg);
        if (rc) return rc;
    }
}

size_t frame_reader_want(const frame_reader *r)
{
    return r->hdr_have < 4 ? 4 - r->hdr_have : r->need - r->have;
}

int frame_reader_in_payload(const frame_reader *r)
{
    return r->hdr_have == 4;
}

void frame_reader_free(frame_reader *r)
{
    frame_reader_reset(r);
}

void frame_put_header(uint8_t hdr[4], uint32_t len)
{
    hdr[0] = (uint8_t)(len >> 24);
    hdr[1] = (uint8_t)(len >> 16);
    hdr[2] = (uint8_t)(len >> 8);
    hdr[3] = (uint8_t)len;
}
