/* check_frame: the frame reader cut a stream into the frames that were
 * written, however the stream is chunked, and refuses a length over its
 * limit before allocating. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/net/frame.h"
#include "common/rng.h"
#include "tests/check_main.h"

/* Collects every delivered payload back to back, with their lengths. */
typedef struct {
    uint8_t data[1 << 16];
    size_t used;
    size_t lens[256];
    size_t n;
    int stop_at;                /* return 7 from the callback for frame number stop_at */
} sink;

static int sink_cb(void *arg, const uint8_t *payload, size_t len)
{
    sink *s = arg;
    ck_assert_ptr_nonnull(payload);
    ck_assert_uint_le(s->used + len, sizeof s->data);
    ck_assert_uint_lt(s->n, 256);
    memcpy(s->data + s->used, payload, len);
    s->used += len;
    s->lens[s->n++] = len;
    return (int)s->n == s->stop_at ? 7 : 0;
}

/* A stream of nframes frames of lengths 0, 1, 2, ... (len i holds bytes
 * i+k), written into st; returns its length. */
static size_t make_stream(uint8_t *st, int nframes)
{
    size_t o = 0;
    for (int i = 0; i < nframes; i++) {
        frame_put_header(st + o, (uint32_t)i);
        o += 4;
        for (int k = 0; k < i; k++) st[o++] = (uint8_t)(i + k);
    }
    return o;
}

/* One assertion per call: Check records every passing assertion, which
 * would dominate a per-byte loop. */
static void check_sink(const sink *s, int nframes)
{
    size_t o = 0, bad = 0;
    ck_assert_uint_eq(s->n, (size_t)nframes);
    for (int i = 0; i < nframes; i++) {
        bad += s->lens[i] != (size_t)i;
        for (int k = 0; k < i; k++) bad += s->data[o++] != (uint8_t)(i + k);
    }
    ck_assert_uint_eq(bad, 0);
}

START_TEST(test_put_header)
{
    uint8_t h[4];
    frame_put_header(h, 0x01020304u);
    ck_assert(h[0] == 1 && h[1] == 2 && h[2] == 3 && h[3] == 4);
    frame_put_header(h, 0xffffffffu);
    ck_assert(h[0] == 0xff && h[3] == 0xff);
}
END_TEST

START_TEST(test_whole_stream)
{
    static uint8_t st[8192];
    static sink s;
    memset(&s, 0, sizeof s);
    size_t n = make_stream(st, 100);
    frame_reader r;
    frame_reader_init(&r, 1000);
    ck_assert_int_eq(frame_reader_feed(&r, st, n, sink_cb, &s), 0);
    check_sink(&s, 100);
    ck_assert_ptr_null(r.buf);
    frame_reader_free(&r);
}
END_TEST

START_TEST(test_byte_by_byte)
{
    static uint8_t st[8192];
    static sink s;
    memset(&s, 0, sizeof s);
    size_t n = make_stream(st, 100);
    frame_reader r;
    frame_reader_init(&r, 1000);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) rc = frame_reader_feed(&r, st + i, 1, sink_cb, &s);
    ck_assert_int_eq(rc, 0);
    check_sink(&s, 100);
    frame_reader_free(&r);
}
END_TEST

START_TEST(test_random_chunks)
{
    static uint8_t st[8192];
    static sink s;
    size_t n = make_stream(st, 100);
    rng g;
    rng_seed(&g, 42);
    for (int trial = 0; trial < 200; trial++) {
        memset(&s, 0, sizeof s);
        frame_reader r;
        frame_reader_init(&r, 1000);
        size_t i = 0;
        int rc = 0;
        while (i < n && !rc) {
            size_t k = 1 + (size_t)rng_below(&g, trial % 2 ? 300 : 9);
            if (k > n - i) k = n - i;
            rc = frame_reader_feed(&r, st + i, k, sink_cb, &s);
            i += k;
        }
        ck_assert_int_eq(rc, 0);
        check_sink(&s, 100);
        frame_reader_free(&r);
    }
}
END_TEST

/* A payload of length 0 is delivered as a frame (see frame.c). */
START_TEST(test_empty_payload)
{
    static sink s;
    memset(&s, 0, sizeof s);
    uint8_t st[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };
    frame_reader r;
    frame_reader_init(&r, 16);
    ck_assert_int_eq(frame_reader_feed(&r, st, 8, sink_cb, &s), 0);
    ck_assert_uint_eq(s.n, 2);
    ck_assert_uint_eq(s.lens[0], 0);
    frame_reader_free(&r);
}
END_TEST

START_TEST(test_limit)
{
    static sink s;
    memset(&s, 0, sizeof s);
    uint8_t st[4 + 64] = { 0 };
    frame_reader r;
    frame_reader_init(&r, 64);

    /* Exactly the limit is accepted. */
    frame_put_header(st, 64);
    ck_assert_int_eq(frame_reader_feed(&r, st, sizeof st, sink_cb, &s), 0);
    ck_assert_uint_eq(s.n, 1);

    /* One over is refused as soon as the 4th prefix byte is in, with no
     * payload buffer allocated, and the stream stays failed. */
    frame_put_header(st, 65);
    ck_assert_int_eq(frame_reader_feed(&r, st, 3, sink_cb, &s), 0);
    ck_assert_int_eq(frame_reader_feed(&r, st + 3, 1, sink_cb, &s), -EMSGSIZE);
    ck_assert_ptr_null(r.buf);
    ck_assert_uint_eq(r.need, 65);   /* for the caller's error line */
    ck_assert_int_eq(frame_reader_feed(&r, st + 4, 10, sink_cb, &s), -EMSGSIZE);
    ck_assert_uint_eq(s.n, 1);
    frame_reader_free(&r);

    /* A huge prefix is refused the same way. */
    frame_reader_init(&r, 64);
    frame_put_header(st, 0xffffffffu);
    ck_assert_int_eq(frame_reader_feed(&r, st, 4, sink_cb, &s), -EMSGSIZE);
    ck_assert_ptr_null(r.buf);
    frame_reader_free(&r);
}
END_TEST

/* Raising the limit (after Hello/Welcome) lets larger frames through. */
START_TEST(test_set_limit)
{
    static uint8_t st[4 + 1000];
    static sink s;
    memset(&s, 0, sizeof s);
    frame_put_header(st, 1000);
    frame_reader r;
    frame_reader_init(&r, 100);
    frame_reader_set_limit(&r, 1000);
    ck_assert_int_eq(frame_reader_feed(&r, st, 10, sink_cb, &s), 0);
    ck_assert_ptr_nonnull(r.buf);   /* a partial payload is held in the reader */
    ck_assert_int_eq(frame_reader_feed(&r, st + 10, sizeof st - 10, sink_cb, &s), 0);
    ck_assert_uint_eq(s.n, 1);
    ck_assert_uint_eq(s.lens[0], 1000);
    frame_reader_free(&r);
}
END_TEST

/* A nonzero callback value stops the feed and is returned; frames before it
 * were delivered, frames after it in the same chunk were not. */
START_TEST(test_callback_stops)
{
    static uint8_t st[8192];
    static sink s;
    memset(&s, 0, sizeof s);
    s.stop_at = 5;
    size_t n = make_stream(st, 20);
    frame_reader r;
    frame_reader_init(&r, 1000);
    ck_assert_int_eq(frame_reader_feed(&r, st, n, sink_cb, &s), 7);
    ck_assert_uint_eq(s.n, 5);
    frame_reader_free(&r);

    /* The same when the stopping frame was assembled from pieces. */
    memset(&s, 0, sizeof s);
    s.stop_at = 5;
    frame_reader_init(&r, 1000);
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) rc = frame_reader_feed(&r, st + i, 1, sink_cb, &s);
    ck_assert_int_eq(rc, 7);
    ck_assert_uint_eq(s.n, 5);
    frame_reader_free(&r);
}
END_TEST

/* Freeing a zeroed reader, and a reader holding a partial payload. */
START_TEST(test_free)
{
    frame_reader z;
    memset(&z, 0, sizeof z);
    frame_reader_free(&z);

    static sink s;
    uint8_t st[4 + 10] = { 0 };
    frame_put_header(st, 10);
    frame_reader r;
    frame_reader_init(&r, 100);
    ck_assert_int_eq(frame_reader_feed(&r, st, 8, sink_cb, &s), 0);
    ck_assert_ptr_nonnull(r.buf);
    frame_reader_free(&r);
    ck_assert_ptr_null(r.buf);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("frame");
    TCase *tc = tcase_create("frame");
    tcase_add_test(tc, test_put_header);
    tcase_add_test(tc, test_whole_stream);
    tcase_add_test(tc, test_byte_by_byte);
    tcase_add_test(tc, test_random_chunks);
    tcase_add_test(tc, test_empty_payload);
    tcase_add_test(tc, test_limit);
    tcase_add_test(tc, test_set_limit);
    tcase_add_test(tc, test_callback_stops);
    tcase_add_test(tc, test_free);
    suite_add_tcase(su, tc);
    return check_run(su);
}
