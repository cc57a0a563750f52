/* idx: reads one IDX file (MNIST's format), gzip-compressed or plain, into
 * a byte array; see idx.h.
 *
 * The file is untrusted: the header is checked (magic, rank, every dimension,
 * the product against overflow and max_bytes) before anything is allocated,
 * the data buffer grows with the bytes actually read rather than with what
 * the header claims, and the file must end exactly where the data ends. For
 * gzip, the stream must be whole (zlib checks its CRC and length) and nothing
 * but further gzip members may follow it.
 */
#include "common/data/idx.h"

#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Data is read in pieces of at most this many bytes, and the buffer starts
 * at most this large. */
#define IDX_CHUNK ((size_t)1 << 20)

/* An open IDX file. A .gz file goes through inflate over our own input
 * buffer rather than gzread, so that bytes after the gzip stream, which
 * gzread skips silently, are seen and refused. */
typedef struct {
    const char *path;
    FILE *f;
    int gz;                     /* the file is gzip: read through z */
    int z_ready;                /* z is initialised */
    int member_done;            /* z reached the end of a gzip member */
    int members;                /* gzip members completed */
    z_stream z;
    uint8_t in[1 << 14];        /* compressed input for z */
} idx_src;

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static int src_open(idx_src *src, const char *path, char *err)
{
    memset(src, 0, sizeof *src);
    src->path = path;
    src->gz = ends_with(path, ".gz");
    src->f = fopen(path, "rb");
    if (!src->f) {
        int rc = -errno;
        err_set(err, "%s: cannot open: %s", path, strerror(errno));
        return rc;
    }
    if (!src->gz) return 0;
    /* 16 + MAX_WBITS: gzip framing only, with its CRC and length checked. */
    if (inflateInit2(&src->z, 16 + MAX_WBITS) != Z_OK) {
        err_set(err, "%s: out of memory for gzip decoding", path);
        return -ENOMEM;
    }
    src->z_ready = 1;
    return 0;
}

static void src_close(idx_src *src)
{
    if (src->z_ready) inflateEnd(&src->z);
    if (src->f) fclose(src->f);
}

/* Reads up to n bytes (n <= UINT_MAX) into buf. Returns the number read,
 * which is less than n only at the end of the data, or a negative error with
 * err (an I/O error, or a corrupt or truncated gzip stream). */
static long src_read(idx_src *src, void *buf, size_t n, char *err)
{
    if (!src->gz) {
        size_t got = fread(buf, 1, n, src->f);
        if (got < n && ferror(src->f)) {
            err_set(err, "%s: read error: %s", src->path, strerror(errno));
            return -EIO;
        }
        return (long)got;
    }
    z_stream *z = &src->z;
    z->next_out = buf;
    z->avail_out = (unsigned)n;
    while (z->avail_out > 0) {
        if (z->avail_in == 0) {
            size_t got = fread(src->in, 1, sizeof src->in, src->f);
            if (ferror(src->f)) {
                err_set(err, "%s: read error: %s", src->path, strerror(errno));
                return -EIO;
            }
            if (got == 0 && src->member_done) break;
            if (got == 0) {
                err_set(err, "%s: truncated gzip stream", src->path);
                return -EINVAL;
            }
            if (z->total_in == 0 && !src->member_done && (got < 2 || src->in[0] != 0x1f || src->in[1] != 0x8b)) {
                err_set(err, "%s: not a gzip file although its name ends in .gz", src->path);
                return -EINVAL;
            }
            z->next_in = src->in;
            z->avail_in = (unsigned)got;
        }
        /* More input after a complete member must be another member (as
         * gzip -c a b > c makes); anything else fails its header check. */
        if (src->member_done) {
            inflateReset(z);
            src->member_done = 0;
        }
        int rc = inflate(z, Z_NO_FLUSH);
        if (rc == Z_STREAM_END) {
            src->member_done = 1;
            src->members++;
        } else if (rc == Z_MEM_ERROR) {
            err_set(err, "%s: out of memory for gzip decoding", src->path);
            return -ENOMEM;
        } else if (rc != Z_OK && src->members > 0 && z->total_out == 0) {
            err_set(err, "%s: bytes after the gzip stream that are not gzip", src->path);
            return -EINVAL;
        } else if (rc != Z_OK) {
            err_set(err, "%s: corrupt gzip data (%s)", src->path, z->msg ? z->msg : "bad stream");
            return -EINVAL;
        }
    }
    return (long)(n - z->avail_out);
}

/* Reads exactly n bytes (n <= IDX_CHUNK) or fails, what says what was being
 * read in the error. */
static int src_read_exact(idx_src *src, void *buf, size_t n, const char *what, char *err)
{
    long got = src_read(src, buf, n, err);
    if (got < 0) return (int)got;
    if ((size_t)got < n) {
        err_set(err, "%s: truncated %s (%ld of %zu bytes)", src->path, what, got, n);
        return -EINVAL;
    }
    return 0;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads and checks the header into out (rank, dims, count). */
static int read_header(idx_src *src, size_t max_bytes, idx_array *out, char *err)
{
    uint8_t head[4 + 4 * IDX_MAX_RANK];
    int rc = src_read_exact(src, head, 4, "header", err);
    if (rc) return rc;
    if (head[0] != 0 || head[1] != 0 || head[2] != 0x08) {
        err_set(err, "%s: not an unsigned-byte IDX file (magic 0x%08x, expected 0x000008RR)",
                src->path, be32(head));
        return -EINVAL;
    }
    int rank = head[3];
    if (rank < 1 || rank > IDX_MAX_RANK) {
        err_set(err, "%s: IDX rank %d not supported (1..%d)", src->path, rank, IDX_MAX_RANK);
        return -EINVAL;
    }
    rc = src_read_exact(src, head + 4, 4 * (size_t)rank, "header", err);
    if (rc) return rc;

    size_t count = 1;
    for (int i = 0; i < rank; i++) {
        uint32_t d = be32(head + 4 + 4 * i);
        if (d == 0) {
            err_set(err, "%s: IDX dimension %d is zero", src->path, i);
            return -EINVAL;
        }
        /* Dividing first keeps the running product from ever overflowing. */
        if (count > max_bytes / d) {
            err_set(err, "%s: IDX dimensions exceed the limit of %zu bytes", src->path, max_bytes);
            return -EFBIG;
        }
        count *= d;
        out->dims[i] = d;
    }
    out->rank = rank;
    out->count = count;
    return 0;
}

/* Reads out->count data bytes into a buffer that grows with what the file
 * really holds, so a header that lies costs no more memory than the file. */
static int read_data(idx_src *src, idx_array *out, char *err)
{
    size_t cap = out->count < IDX_CHUNK ? out->count : IDX_CHUNK;
    size_t have = 0;
    int rc = -ENOMEM;
    uint8_t *buf = malloc(cap);
    if (!buf) goto out;
    while (have < out->count) {
        if (have == cap) {
            size_t ncap = cap > out->count / 2 ? out->count : 2 * cap;
            uint8_t *nbuf = realloc(buf, ncap);
            if (!nbuf) goto out;
            buf = nbuf;
            cap = ncap;
        }
        size_t want = cap - have < IDX_CHUNK ? cap - have : IDX_CHUNK;
        long got = src_read(src, buf + have, want, err);
        if (got < 0) {
            rc = (int)got;
            goto out;
        }
        have += (size_t)got;
        if ((size_t)got < want) {
            err_set(err, "%s: truncated IDX data (%zu of %zu bytes)", src->path, have, out->count);
            rc = -EINVAL;
            goto out;
        }
    }
    out->data = buf;
    buf = NULL;
    rc = 0;
out:
    if (rc == -ENOMEM) err_set(err, "%s: out of memory for %zu bytes of IDX data", src->path, out->count);
    free(buf);
    return rc;
}

int idx_read(const char *path, size_t max_bytes, idx_array *out, char *err)
{
    idx_src src;
    memset(out, 0, sizeof *out);
    int rc = src_open(&src, path, err);
    if (rc) goto out;
    rc = read_header(&src, max_bytes, out, err);
    if (rc) goto out;
    rc = read_data(&src, out, err);
    if (rc) goto out;

    /* One more byte must not exist; for gzip this read also makes inflate
     * reach the stream's trailer (CRC and length) and whatever follows it. */
    uint8_t extra;
    long got = src_read(&src, &extra, 1, err);
    if (got < 0) {
        rc = (int)got;
        goto out;
    }
    if (got > 0) {
        err_set(err, "%s: trailing bytes after the %zu bytes of IDX data", path, out->count);
        rc = -EINVAL;
    }
out:
    src_close(&src);
    if (rc) idx_free(out);
    return rc;
}

void idx_free(idx_array *a)
{
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}
