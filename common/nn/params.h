/* params: the parameter table of a model.
 *
 * All parameters of a model live in one contiguous float buffer; this table
 * says where each named tensor is (offset, size in floats), its shape, and
 * which groups it belongs to. Aggregation, checksums, SQLite blobs and wire
 * tensors are loops over slices of that one buffer, selected by group.
 *
 * A table is built from an architecture name and its options (model_opts,
 * params_build); each architecture (arch.h) lays out its own tensors.
 *
 * Groups (a bitmask, a tensor may be in several):
 *   PARAM_BACKBONE  everything that is not a gate (cnn-se: conv1, conv2,
 *                   fc1, fc)
 *   PARAM_SE        every channel gate: excitation W1, b1, W2, b2, or an
 *                   ECA kernel (cnn-se: se1, se2, se3)
 *   PARAM_HEAD      the classifier (cnn-se: fc)
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

#define PARAM_MAX_TENSORS 64
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

#define PARAM_ARCH_MAX 16
#define PARAM_OPT_MAX 16

/* What a model is built from: the architecture's name and its options.
 * Options an architecture does not have are left at their defaults
 * (model_opts_default); the architecture refuses any other value, so a flag
 * is never ignored in silence. */
typedef struct {
    char arch[PARAM_ARCH_MAX];          /* "cnn-se" (default), "mbv2-se" */
    int r;                              /* SE reduction ratio (default 8) */
    int fc1_gate;                       /* cnn-se: the SE-vec gate on fc1's features (default 1) */
    char se_placement[PARAM_OPT_MAX];   /* mbv2-se: "after-depthwise" or "after-pointwise"; "" default */
    char gate[PARAM_OPT_MAX];           /* mbv2-se: "se" or "eca"; "" default */
} model_opts;

/* The defaults every program starts from: cnn-se, r 8, fc1 gate. */
model_opts model_opts_default(void);

/* The text model flags every program takes: --arch, --se-placement,
 * --gate. A program lists MODEL_OPTS_LONGOPTS(BASE) among its getopt_long
 * options (codes BASE + MODEL_OPT_*) and hands each to model_opts_set;
 * r stays a numeric flag of its own. */
enum { MODEL_OPT_ARCH, MODEL_OPT_SE_PLACEMENT, MODEL_OPT_GATE, MODEL_OPT_N };
#define MODEL_OPTS_LONGOPTS(base)                                           \
    { "arch", 1, 0, (base) + MODEL_OPT_ARCH },                              \
    { "se-placement", 1, 0, (base) + MODEL_OPT_SE_PLACEMENT },              \
    { "gate", 1, 0, (base) + MODEL_OPT_GATE }

/* Sets option `which` (MODEL_OPT_*) to value; values are checked by
 * params_build, which knows the architecture. Returns 0, or -EINVAL with
 * err for a value too long to be any option's. */
int model_opts_set(model_opts *o, int which, const char *value, char *err);

/* The usage lines of those flags, for the programs' --help. */
#define MODEL_OPTS_USAGE \
    "  --arch NAME          model architecture (default cnn-se; another name lists them)\n" \
    "  --se-placement P     mbv2-se: where the gates sit, after-depthwise (default)\n" \
    "                       or after-pointwise\n" \
    "  --gate G             mbv2-se: se (default) or eca (ECA's 1-D convolution)\n"

typedef struct {
    char arch[PARAM_ARCH_MAX];          /* the architecture's name */
    int r;                              /* SE reduction ratio */
    int fc1_gate;                       /* cnn-se: 1 when the SE-vec gate on fc1's features exists */
    char se_placement[PARAM_OPT_MAX];   /* options as the architecture settled them; "" when */
    char gate[PARAM_OPT_MAX];           /* it has no such option */
    int n;                              /* number of tensors */
    param_info p[PARAM_MAX_TENSORS];
    size_t total;                       /* floats in the whole buffer */
    uint64_t hash;                      /* FNV-1a over arch, r, fc1_gate, the non-empty options
                                         * and every (name, shape, groups) */
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

/* Fills t with the table of architecture o->arch for options o (arch.h
 * lists the architectures). Returns 0, or -EINVAL (with err) for an unknown
 * architecture or an option it refuses. */
int params_build(param_table *t, const model_opts *o, char *err);

/* The options t was built from (params_build(params_opts(t)) rebuilds t). */
model_opts params_opts(const param_table *t);

/* For the architectures' table builders (arch.h) only: append one tensor of
 * 1..4 dims (unused dims 0) after the last, and the four tensors of an
 * excitation on c channels reduced to c/r, named PREFIX.fc1.weight (c/r, c),
 * .fc1.bias, .fc2.weight (c, c/r), .fc2.bias: PyTorch's nn.Linear(c, c/r),
 * nn.Linear(c/r, c). The builder keeps within PARAM_MAX_TENSORS. */
void params_add(param_table *t, const char *name, unsigned groups, int ndim, int d0, int d1,
                int d2, int d3);
void params_add_se(param_table *t, const char *prefix, int c, int r);

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

/* Copies the selected tensors of the model buffer src into the same slices
 * of dst (both t->total floats) and touches nothing else of dst. */
void params_copy(const param_table *t, param_sel sel, const float *src, float *dst);

/* Parses "se", "head", "se,head", "none" (also "head,se") into a group mask.
 * Returns 0, or -EINVAL with err. */
int params_parse_private(const char *s, unsigned *mask, char *err);

/* Writes the canonical name of a private mask ("none", "se", "head", "se,head"). */
const char *params_private_name(unsigned mask);

/* Checksum of the selected tensors' bytes (FNV-1a 64). */
uint64_t params_checksum(const param_table *t, param_sel sel, const float *buf);

#endif
