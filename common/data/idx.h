/* idx: reader for IDX files (the MNIST / Fashion-MNIST format), gzip or plain.
 *
 * An IDX file: magic 0x0000TTRR (TT = 0x08 unsigned byte, RR = rank 1..4),
 * then RR big-endian uint32 dimensions, then the data. The reader checks the
 * magic, the rank, every dimension and the total size against max_bytes and
 * against the bytes actually in the file; a truncated, trailing-garbage or
 * corrupt file is a clear error, never an over-read.
 */
#ifndef SEFL_IDX_H
#define SEFL_IDX_H

#include <stddef.h>
#include <stdint.h>

#define IDX_MAX_RANK 4

typedef struct {
    int rank;
    uint32_t dims[IDX_MAX_RANK];
    size_t count;               /* product of dims */
    uint8_t *data;              /* (count), owned; free with idx_free */
} idx_array;

/* Reads path (gzip-compressed if it ends in .gz, else plain) into out.
 * Refuses more than max_bytes of data. Returns 0, or a negative error with err. */
int idx_read(const char *path, size_t max_bytes, idx_array *out, char *err);
void idx_free(idx_array *a);    /* accepts a zeroed or freed array */

#endif
