/* arch: the registry of model architectures; see arch.h. */
#include "common/nn/arch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The one line a new architecture adds itself to: X(ID) for the
 * `const model_arch arch_ID` its file defines. The first is the default. */
#define ARCH_LIST X(cnn_se) X(mbv2_se)

#define X(id) extern const model_arch arch_##id;
ARCH_LIST
#undef X

#define X(id) &arch_##id,
static const model_arch *const arch_list[] = { ARCH_LIST };
#undef X

#define ARCH_N (sizeof arch_list / sizeof arch_list[0])

float *arch_workspace(long n)
{
    return aligned_alloc(64, (size_t)(n > 0 ? n : 16) * sizeof(float));
}

float *arch_carve(float *base, long *off, long n)
{
    float *p = base ? base + *off : NULL;
    *off += (n + 15) & ~15L;
    return p;
}

const model_arch *arch_find(const char *name)
{
    for (size_t i = 0; name && i < ARCH_N; i++)
        if (!strcmp(arch_list[i]->name, name)) return arch_list[i];
    return NULL;
}

void arch_names(char *buf, size_t n)
{
    size_t off = 0;
    if (n) buf[0] = '\0';
    for (size_t i = 0; i < ARCH_N && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, "%s%s", i ? ", " : "", arch_list[i]->name);
}
