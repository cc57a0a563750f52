/* fuzz_frame: the frame reader on arbitrary bytes.
 *
 * Input: byte 0 picks how the rest is cut into chunks (low bits) and
 * whether the limit is raised after the first frame (bit 7, as a connection
 * does after Hello/Welcome); the rest is the stream. The stream is fed once
 * whole and once in chunks; both feeds must deliver the same frames and end
 * the same way, every payload must be within the limit of the moment, and a
 * payload whose first byte is 0xee stops the feed like a callback that
 * closes the connection.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/net/frame.h"
#include "common/hash.h"

#define FUZZ_LIMIT 256

typedef struct {
    uint64_t h;                 /* hash of every payload, with its length */
    size_t frames;
    frame_reader *r;
    int raise;                  /* raise r's limit after the first frame */
} seen;

static int fuzz_cb(void *arg, const uint8_t *payload, size_t len)
{
    seen *s = arg;
    if (!payload || len > s->r->limit) abort();
    s->h = hash_fnv1a(s->h, &len, sizeof len);
    s->h = hash_fnv1a(s->h, payload, len);
    if (++s->frames == 1 && s->raise) frame_reader_set_limit(s->r, 4 * FUZZ_LIMIT);
    return len && payload[0] == 0xee ? 1 : 0;
}

static int fuzz_feed(const uint8_t *p, size_t n, size_t chunk, seen *s)
{
    frame_reader r;
    int rc = 0;
    frame_reader_init(&r, FUZZ_LIMIT);
    s->r = &r;
    for (size_t i = 0; i < n && !rc; i += chunk)
        rc = frame_reader_feed(&r, p + i, n - i < chunk ? n - i : chunk, fuzz_cb, s);
    /* A failed stream stays failed. */
    if (rc == -EMSGSIZE && frame_reader_feed(&r, p, 1, fuzz_cb, s) != -EMSGSIZE) abort();
    frame_reader_free(&r);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t chunk = 1 + (data[0] & 0x7f) % 37;
    int raise = data[0] >> 7;
    seen whole = { HASH_FNV_INIT, 0, NULL, raise }, parts = { HASH_FNV_INIT, 0, NULL, raise };
    int a = fuzz_feed(data + 1, size - 1, size, &whole);
    int b = fuzz_feed(data + 1, size - 1, chunk, &parts);
    if (a != b || whole.h != parts.h || whole.frames != parts.frames) abort();
    return 0;
}
