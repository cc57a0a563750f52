/* check_idx: the IDX reader on generated files, good and damaged, plain and
 * gzip: every header field, truncation, trailing bytes, size limits, and a
 * gzip stream damaged at every byte. */
#include "common/data/idx.h"
#include "common/log.h"
#include "tests/check_main.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

static char tmpdir[64];

/* A path in the suite's temporary directory; returns a static buffer. */
static const char *tmp_path(const char *name)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    return path;
}

static void write_plain(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static void write_gz(const char *path, const void *p, size_t n)
{
    gzFile g = gzopen(path, "wb");
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(gzwrite(g, p, (unsigned)n), (int)n);
    ck_assert_int_eq(gzclose(g), Z_OK);
}

/* Writes name (gzip when it ends in .gz) holding an IDX header with the
 * given magic's low byte (rank) and dims, then n data bytes of a pattern,
 * then extra trailing bytes. Returns the path. */
static const char *write_idx(const char *name, int rank_byte, int ndims, const uint32_t *dims,
                             size_t n, size_t extra)
{
    size_t len = 4 + 4 * (size_t)ndims + n + extra;
    uint8_t *b = malloc(len);
    ck_assert_ptr_nonnull(b);
    b[0] = 0, b[1] = 0, b[2] = 0x08, b[3] = (uint8_t)rank_byte;
    for (int i = 0; i < ndims; i++) {
        uint8_t *d = b + 4 + 4 * i;
        d[0] = dims[i] >> 24, d[1] = dims[i] >> 16, d[2] = dims[i] >> 8, d[3] = dims[i];
    }
    for (size_t i = 0; i < n + extra; i++) b[4 + 4 * ndims + i] = (uint8_t)(i * 7 + 3);
    const char *path = tmp_path(name);
    size_t nl = strlen(name);
    if (nl > 3 && !strcmp(name + nl - 3, ".gz")) write_gz(path, b, len);
    else write_plain(path, b, len);
    free(b);
    return path;
}

/* Reads path expecting failure rc and an error line containing want and
 * naming the file. */
static void expect_fail(const char *path, size_t max, int rc, const char *want)
{
    idx_array a;
    char err[SEFL_ERRLEN] = "";
    ck_assert_int_eq(idx_read(path, max, &a, err), rc);
    ck_assert_msg(strstr(err, want), "error '%s' lacks '%s'", err, want);
    ck_assert_msg(strstr(err, path), "error '%s' does not name the file", err);
    ck_assert_ptr_null(a.data);
    ck_assert_ptr_null(strchr(err, '\n'));
}

static void check_good(const char *name)
{
    uint32_t dims[3] = { 5, 4, 3 };
    const char *path = write_idx(name, 3, 3, dims, 60, 0);
    idx_array a;
    char err[SEFL_ERRLEN] = "";
    ck_assert_int_eq(idx_read(path, 60, &a, err), 0);
    ck_assert_int_eq(a.rank, 3);
    ck_assert_uint_eq(a.dims[0], 5);
    ck_assert_uint_eq(a.dims[1], 4);
    ck_assert_uint_eq(a.dims[2], 3);
    ck_assert_uint_eq(a.count, 60);
    for (size_t i = 0; i < 60; i++) ck_assert_uint_eq(a.data[i], (uint8_t)(i * 7 + 3));
    idx_free(&a);
    ck_assert_ptr_null(a.data);
    idx_free(&a);
}

START_TEST(test_good_plain) { check_good("good3"); }
END_TEST

START_TEST(test_good_gz) { check_good("good3.gz"); }
END_TEST

START_TEST(test_good_ranks)
{
    uint32_t dims[4] = { 7, 2, 2, 3 };
    idx_array a;
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(idx_read(write_idx("r1.gz", 1, 1, dims, 7, 0), 7, &a, err), 0);
    ck_assert_int_eq(a.rank, 1);
    ck_assert_uint_eq(a.count, 7);
    idx_free(&a);
    ck_assert_int_eq(idx_read(write_idx("r4", 4, 4, dims, 84, 0), 84, &a, err), 0);
    ck_assert_int_eq(a.rank, 4);
    ck_assert_uint_eq(a.dims[3], 3);
    ck_assert_uint_eq(a.count, 84);
    idx_free(&a);
}
END_TEST

START_TEST(test_missing_file)
{
    expect_fail(tmp_path("does-not-exist.gz"), 100, -ENOENT, "cannot open");
    expect_fail(tmp_path("does-not-exist"), 100, -ENOENT, "cannot open");
}
END_TEST

START_TEST(test_truncated_data)
{
    uint32_t dims[2] = { 10, 10 };
    expect_fail(write_idx("short", 2, 2, dims, 99, 0), 1000, -EINVAL, "truncated IDX data");
    expect_fail(write_idx("short.gz", 2, 2, dims, 50, 0), 1000, -EINVAL, "truncated IDX data");
    expect_fail(write_idx("nodata.gz", 2, 2, dims, 0, 0), 1000, -EINVAL, "truncated IDX data");
}
END_TEST

START_TEST(test_truncated_header)
{
    uint32_t dims[3] = { 2, 2, 2 };
    /* Rank 3 announced, one dimension present. */
    expect_fail(write_idx("hdr1", 3, 1, dims, 0, 0), 100, -EINVAL, "truncated header");
    expect_fail(write_idx("hdr1.gz", 3, 1, dims, 0, 0), 100, -EINVAL, "truncated header");
    write_plain(tmp_path("hdr2"), "\0\0", 2);
    expect_fail(tmp_path("hdr2"), 100, -EINVAL, "truncated header");
    write_plain(tmp_path("empty"), "", 0);
    expect_fail(tmp_path("empty"), 100, -EINVAL, "truncated header");
}
END_TEST

START_TEST(test_wrong_magic)
{
    uint8_t b[12] = { 0, 0, 0x0d, 1, 0, 0, 0, 4, 1, 2, 3, 4 }; /* float IDX */
    write_plain(tmp_path("float"), b, sizeof b);
    expect_fail(tmp_path("float"), 100, -EINVAL, "magic 0x00000d01");
    b[2] = 8, b[0] = 1;
    write_gz(tmp_path("m1.gz"), b, sizeof b);
    expect_fail(tmp_path("m1.gz"), 100, -EINVAL, "magic");
    /* A gzip file whose name says plain is not an IDX file. */
    b[0] = 0;
    write_gz(tmp_path("zipped-but-plain"), b, sizeof b);
    expect_fail(tmp_path("zipped-but-plain"), 100, -EINVAL, "magic 0x1f8b");
    /* A plain file whose name says gzip is refused too. */
    write_plain(tmp_path("plain-but.gz"), b, sizeof b);
    expect_fail(tmp_path("plain-but.gz"), 100, -EINVAL, "not a gzip file");
}
END_TEST

START_TEST(test_bad_rank)
{
    uint32_t dims[5] = { 1, 1, 1, 1, 1 };
    expect_fail(write_idx("rank0", 0, 0, dims, 1, 0), 100, -EINVAL, "rank 0");
    expect_fail(write_idx("rank5.gz", 5, 5, dims, 1, 0), 100, -EINVAL, "rank 5");
    expect_fail(write_idx("rank255", 255, 5, dims, 1, 0), 100, -EINVAL, "rank 255");
}
END_TEST

START_TEST(test_zero_dim)
{
    uint32_t dims[3] = { 4, 0, 4 };
    expect_fail(write_idx("zero", 3, 3, dims, 0, 0), 100, -EINVAL, "dimension 1 is zero");
    expect_fail(write_idx("zero.gz", 3, 3, dims, 16, 0), 100, -EINVAL, "dimension 1 is zero");
}
END_TEST

START_TEST(test_over_limit)
{
    uint32_t dims[4] = { 10, 10, 0xffffffffu, 0xffffffffu };
    /* Exactly at the limit is fine, one byte under it is not. */
    idx_array a;
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(idx_read(write_idx("lim", 2, 2, dims, 100, 0), 100, &a, err), 0);
    idx_free(&a);
    expect_fail(tmp_path("lim"), 99, -EFBIG, "exceed the limit of 99 bytes");
    /* Products that overflow 64 bits are caught before they are formed. */
    expect_fail(write_idx("huge.gz", 4, 4, dims, 8, 0), SIZE_MAX, -EFBIG, "exceed the limit");
    dims[0] = dims[1] = 0xffffffffu;
    expect_fail(write_idx("huge2", 4, 4, dims, 8, 0), SIZE_MAX, -EFBIG, "exceed the limit");
}
END_TEST

#ifndef __SANITIZE_ADDRESS__
/* How many bytes of address space the process maps now. */
static size_t vm_size(void)
{
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%lu", &pages), 1);
    fclose(f);
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}
#endif

START_TEST(test_lying_header_costs_no_memory)
{
    /* A header claiming 16 GiB, allowed by max_bytes, over 100 real bytes:
     * the reader must fail on truncation, not allocate what the header says.
     * Outside AddressSanitizer (which maps terabytes of shadow) the address
     * space is capped 256 MiB above its current size to prove it. */
#ifndef __SANITIZE_ADDRESS__
    struct rlimit rl = { vm_size() + ((size_t)256 << 20), RLIM_INFINITY };
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &rl), 0);
#endif
    uint32_t dims[3] = { 4, 65536, 65536 };
    expect_fail(write_idx("liar", 3, 3, dims, 100, 0), SIZE_MAX, -EINVAL, "truncated IDX data");
    expect_fail(write_idx("liar.gz", 3, 3, dims, 100, 0), SIZE_MAX, -EINVAL, "truncated IDX data");
}
END_TEST

START_TEST(test_trailing_bytes)
{
    uint32_t dims[2] = { 3, 3 };
    expect_fail(write_idx("trail", 2, 2, dims, 9, 1), 100, -EINVAL, "trailing bytes");
    expect_fail(write_idx("trail.gz", 2, 2, dims, 9, 1000), 100, -EINVAL, "trailing bytes");
    /* Bytes after the gzip stream itself, which gzread would skip. */
    const char *path = write_idx("after.gz", 2, 2, dims, 9, 0);
    FILE *f = fopen(path, "ab");
    ck_assert_ptr_nonnull(f);
    fputs("garbage", f);
    fclose(f);
    expect_fail(path, 100, -EINVAL, "bytes after the gzip stream");
}
END_TEST

START_TEST(test_gzip_members)
{
    /* gzip -c a b > c: the header in one member, the data in another. */
    uint8_t head[8] = { 0, 0, 8, 1, 0, 0, 0, 3 }, data[3] = { 9, 8, 7 };
    const char *path = tmp_path("members.gz");
    gzFile g = gzopen(path, "wb");
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(gzwrite(g, head, sizeof head), (int)sizeof head);
    ck_assert_int_eq(gzclose(g), Z_OK);
    g = gzopen(path, "ab");
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(gzwrite(g, data, sizeof data), (int)sizeof data);
    ck_assert_int_eq(gzclose(g), Z_OK);
    idx_array a;
    char err[SEFL_ERRLEN] = "";
    ck_assert_msg(idx_read(path, 3, &a, err) == 0, "%s", err);
    ck_assert_uint_eq(a.count, 3);
    ck_assert_uint_eq(a.data[2], 7);
    idx_free(&a);
}
END_TEST

/* Reads a whole file into a malloc'd buffer. */
static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    uint8_t *b = malloc(1 << 16);
    ck_assert_ptr_nonnull(b);
    *n = fread(b, 1, 1 << 16, f);
    ck_assert(feof(f));
    fclose(f);
    return b;
}

START_TEST(test_corrupt_gzip_every_byte)
{
    /* Data with little redundancy, so the deflate stream is a few hundred
     * bytes and every one of them matters. */
    uint32_t dims[1] = { 400 };
    size_t len;
    uint8_t *good = slurp(write_idx("base.gz", 1, 1, dims, 400, 0), &len);
    ck_assert_uint_gt(len, 100);
    const char *path = tmp_path("bad.gz");
    idx_array a;
    char err[SEFL_ERRLEN];
    /* Bytes 0..9 are the gzip header; 4..9 (time, flags, OS) may change
     * harmlessly. Every byte after them is deflate data or the CRC/length
     * trailer, and damaging it must be an error, never a crash. */
    for (size_t i = 10; i < len; i++) {
        uint8_t *b = malloc(len);
        memcpy(b, good, len);
        b[i] ^= 0x5a;
        write_plain(path, b, len);
        free(b);
        err[0] = 0;
        ck_assert_msg(idx_read(path, 1000, &a, err) < 0, "flip at %zu accepted", i);
        ck_assert_ptr_null(a.data);
        ck_assert_msg(strstr(err, path), "error '%s' at %zu does not name the file", err, i);
    }
    /* Cut short anywhere, including inside the trailer. */
    for (size_t cut = 0; cut < len; cut++) {
        write_plain(path, good, cut);
        ck_assert_msg(idx_read(path, 1000, &a, err) < 0, "cut at %zu accepted", cut);
        ck_assert_ptr_null(a.data);
    }
    free(good);
}
END_TEST

START_TEST(test_free_null)
{
    idx_free(NULL);
    idx_array a = { 0 };
    idx_free(&a);
}
END_TEST

int main(void)
{
    check_mkdtemp(tmpdir, sizeof tmpdir, "/tmp/check_idx.XXXXXX");
    Suite *s = suite_create("idx");
    TCase *tc = tcase_create("idx");
    tcase_add_test(tc, test_good_plain);
    tcase_add_test(tc, test_good_gz);
    tcase_add_test(tc, test_good_ranks);
    tcase_add_test(tc, test_missing_file);
    tcase_add_test(tc, test_truncated_data);
    tcase_add_test(tc, test_truncated_header);
    tcase_add_test(tc, test_wrong_magic);
    tcase_add_test(tc, test_bad_rank);
    tcase_add_test(tc, test_zero_dim);
    tcase_add_test(tc, test_over_limit);
    tcase_add_test(tc, test_lying_header_costs_no_memory);
    tcase_add_test(tc, test_trailing_bytes);
    tcase_add_test(tc, test_gzip_members);
    tcase_add_test(tc, test_corrupt_gzip_every_byte);
    tcase_add_test(tc, test_free_null);
    suite_add_tcase(s, tc);
    int status = check_run(s);
    check_rm_rf(tmpdir);
    return status;
}
