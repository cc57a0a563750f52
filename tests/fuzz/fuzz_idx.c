/* fuzz_idx: idx_read on arbitrary files, plain and gzip.
 *
 * idx_read takes a path and picks gzip by the name's ending, so each input
 * is written to a memfd reached through a link named idx or idx.gz in a
 * temporary directory made once per process. Input: byte 0 picks the
 * mode, the rest is the file.
 * - bit 0 clear: the rest is a plain file ("idx");
 * - bit 0 set, bit 1 clear: the rest is the raw bytes of "idx.gz", so the
 *   fuzzer mutates the gzip framing itself;
 * - bits 0 and 1 set: the rest is gzip-compressed here (as two gzip members,
 *   split in the middle, when bit 2 is set too) before it is written, so
 *   mutations reach the IDX layer behind gzip; the same bytes are also read
 *   as a plain file and both reads must agree;
 * - bit 3 set: the limit is FUZZ_MAX_BYTES_BIG instead of FUZZ_MAX_BYTES,
 *   so that a raw gzip file (which inflates up to about 1000 times) can hold
 *   more data than idx_read's first buffer and make it grow.
 * Properties checked on every input:
 * - success: rank 1..IDX_MAX_RANK, no zero dimension, count the product of
 *   the dimensions and at most the limit, and for a plain file the data
 *   are exactly the bytes after the header, with nothing after them;
 * - failure: a negative error, the array zeroed, and one non-empty line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include "common/data/idx.h"
#include "common/log.h"

#define FUZZ_MAX_BYTES ((size_t)1 << 20)
#define FUZZ_MAX_BYTES_BIG ((size_t)4 << 20)

static char dir[64];            /* the temporary directory, "" before init */
static char plain_path[96];     /* dir/idx, a link to the first memfd */
static char gz_path[96];        /* dir/idx.gz, a link to the second memfd */

static void fuzz_cleanup(void)
{
    unlink(plain_path);
    unlink(gz_path);
    rmdir(dir);
}

/* Makes path a symbolic link to a new memfd, so that the file contents live
 * in memory: with a file on the disk, truncated and rewritten for every
 * input, the kernel wrote it out on close (perf showed disk I/O) and the
 * target ran 300 inputs a second instead of about 20000. */
static void link_memfd(const char *path)
{
    char target[64];
    int fd = memfd_create("fuzz_idx", 0);
    if (fd < 0) abort();
    snprintf(target, sizeof target, "/proc/%d/fd/%d", (int)getpid(), fd);
    if (symlink(target, path)) abort();
}

static void fuzz_init(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fuzz_idx.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) abort();
    snprintf(plain_path, sizeof plain_path, "%s/idx", dir);
    snprintf(gz_path, sizeof gz_path, "%s/idx.gz", dir);
    atexit(fuzz_cleanup);
    link_memfd(plain_path);
    link_memfd(gz_path);
}

static void write_plain(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) abort();
}

/* Appends p as one gzip member ("ab" starts a new member, "wb" truncates). */
static void write_gz_member(const char *path, const char *mode, const uint8_t *p, size_t n)
{
    gzFile g = gzopen(path, mode);
    if (!g) abort();
    if (n && gzwrite(g, p, (unsigned)n) != (int)n) abort();
    if (gzclose(g) != Z_OK) abort();
}

/* Reads path with the limit max_bytes and checks the properties that hold
 * for any input. Returns idx_read's result, with the array in a (freed by
 * the caller). */
static int fuzz_read(const char *path, size_t max_bytes, idx_array *a)
{
    char err[SEFL_ERRLEN] = "";
    int rc = idx_read(path, max_bytes, a, err);
    if (rc) {
        if (rc > 0 || a->data || a->count || a->rank || !err[0] || strchr(err, '\n')) abort();
        return rc;
    }
    if (a->rank < 1 || a->rank > IDX_MAX_RANK || !a->data) abort();
    size_t count = 1;
    for (int i = 0; i < a->rank; i++) {
        if (a->dims[i] == 0 || __builtin_mul_overflow(count, a->dims[i], &count)) abort();
    }
    if (count != a->count || count > max_bytes) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (!dir[0]) fuzz_init();
    uint8_t mode = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    size_t max_bytes = mode & 8 ? FUZZ_MAX_BYTES_BIG : FUZZ_MAX_BYTES;

    idx_array a, b;
    if (!(mode & 1)) {
        write_plain(plain_path, p, n);
        if (fuzz_read(plain_path, max_bytes, &a) == 0) {
            size_t head = 4 + 4 * (size_t)a.rank;
            if (n != head + a.count || memcmp(a.data, p + head, a.count)) abort();
        }
        idx_free(&a);
        idx_free(&a);   /* idx_free must accept a freed array */
        return 0;
    }
    if (!(mode & 2)) {
        write_plain(gz_path, p, n);
        fuzz_read(gz_path, max_bytes, &a);
        idx_free(&a);
        return 0;
    }

    size_t half = mode & 4 ? n / 2 : n;
    write_gz_member(gz_path, "wb", p, half);
    if (half < n) write_gz_member(gz_path, "ab", p + half, n - half);
    write_plain(plain_path, p, n);
    int rc_gz = fuzz_read(gz_path, max_bytes, &a);
    int rc_plain = fuzz_read(plain_path, max_bytes, &b);
    if (rc_gz != rc_plain) abort();
    if (rc_gz == 0 && (a.rank != b.rank || memcmp(a.dims, b.dims, sizeof a.dims) || a.count != b.count ||
                       memcmp(a.data, b.data, a.count)))
        abort();
    idx_free(&a);
    idx_free(&b);
    return 0;
}
