/* params: the parameter table of a model.
 *
 * All parameters of a model live in one contiguous float buffer; this table
 * says where each named tensor is (offset, size in floats), its shape, and
 * which groups it belongs to. Aggregation, checksums, SQLite blobs and wire
 * tensors are loops over slices of that one buffer, selected by group.
 *
 * Groups (a bitmask, a tensor may be in several):
 *   PARAM_BACKBONE  conv1, conv2, fc1, fc
 *   PARAM_SE        every excitation W1, b1, W2, b2 (se1, se2, se3)
 *   PARAM_HEAD      fc
 * The coordinator's private set is a mask of groups ("se" -> PARAM_SE,
 * "head" -> PARAM_HEAD, "se,head", "none" -> 0). A tensor is private when its
 * groups intersect the private mask; every other tensor is shared.
 */
#ifndef SEFL_PARAMS_H
#define SEFL_PARAMS_H

#include <stddef.h>
#include <stdint.h>

enum {
    PARAM_BACKBONE = 1u << 0,
    PARAM_SE       = 1u << 1,
    PARAM_HEAD     = 1u << 2,
    PARAM_ALL      = PARAM_BACKBONE | PARAM_SE | PARAM_HEAD,
};

#define PARAM_MAX_TENSORS 32
#define PARAM_NAME_MAX 32
#define PARAM_MAX_DIMS 4

typedef struct {
    char name[PARAM_NAME_MAX];  /* e.g. "conv1.weight", "se1.fc1.bias" */
    int ndim;
    int shape[PARAM_MAX_DIMS];  /* PyTorch order: conv (out, in, kh, kw), linear (out, in) */
    unsigned groups;            /* PARAM_* bits */
    size_t offset;              /* in floats, into the parameter buffer */
    size_t size;                /* in floats: product of shape */
} param_info;

typedef struct {
    char arch[16];              /* "cnn-se" */
    int r;                      /* SE reduction ratio */
    int fc1_gate;               /* 1 when the SE-vec gate on fc1's features exists */
    int n;                      /* number of tensors */
    param_info p[PARAM_MAX_TENSORS];
    size_t total;               /* floats in the whole buffer */
    uint64_t hash;              /* FNV-1a over arch, r, fc1_gate and every (name, shape, groups) */
} param_table;

/* Selects the tensors whose groups intersect `any` and do not intersect
 * `none`. Shared set: {PARAM_ALL, private}; private set: {private, 0}. */
typedef struct {
    unsigned any;
    unsigned none;
} param_sel;

static inline param_sel params_shared(unsigned private_mask) { return (param_sel){ PARAM_ALL, private_mask }; }
static inline param_sel params_private(unsigned private_mask) { return (param_sel){ private_mask, 0 }; }
static inline param_sel params_group(unsigned g) { return (param_sel){ g, 0 }; }

/* Fills t with the table of the default `cnn-se` architecture (common/README.md)
 * for reduction ratio r (1..64, dividing 32) and with or without the fc1
 * gate. Returns 0, or -EINVAL (with err) for a bad r. */
int params_build_cnn_se(param_table *t, int r, int fc1_gate, char *err);

/* Returns the tensor called name, or NULL. */
const param_info *params_find(const param_table *t, const char *name);

/* Returns 1 when p is selected by sel. */
int params_selected(const param_info *p, param_sel sel);

/* Number of floats in the selected tensors. */
size_t params_count(const param_table *t, param_sel sel);

/* Copies the selected tensors, in table order, from the model buffer `buf`
 * into the flat vector `flat` (params_count floats). */
void params_gather(const param_table *t, param_sel sel, const float *buf, float *flat);

/* The inverse of params_gather: writes flat into the selected tensors of buf
 * and touches nothing else. */
void params_scatter(const param_table *t, param_sel sel, const float *flat, float *buf);

/* Parses "se", "head", "se,head", "none" (also "head,se") into a group mask.
 * Returns 0, or -EINVAL with err. */
int params_parse_private(const char *s, unsigned *mask, char *err);

/* Writes the canonical name of a private mask ("none", "se", "head", "se,head"). */
const char *params_private_name(unsigned mask);

/* Checksum of the selected tensors' bytes (FNV-1a 64). */
uint64_t params_checksum(const param_table *t, param_sel sel, const float *buf);

#endif
