/* check_params: the cnn-se parameter table (names, shapes, offsets, groups,
 * hash, unchanged since before architectures were pluggable), building by
 * architecture name and options, selections, gather/scatter, private-set
 * names and checksums. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/nn/params.h"
#include "tests/check_main.h"

static param_table build(int r, int gate)
{
    param_table t;
    char err[SEFL_ERRLEN] = "";
    ck_assert_int_eq(params_build(&t, &(model_opts){ .arch = "cnn-se", .r = r, .fc1_gate = gate }, err), 0);
    return t;
}

START_TEST(test_table_layout)
{
    param_table t = build(8, 1);
    static const struct { const char *name; int ndim, d[4]; unsigned groups; } want[] = {
        { "conv1.weight", 4, { 32, 1, 5, 5 }, PARAM_BACKBONE },
        { "conv1.bias", 1, { 32 }, PARAM_BACKBONE },
        { "se1.fc1.weight", 2, { 4, 32 }, PARAM_SE },
        { "se1.fc1.bias", 1, { 4 }, PARAM_SE },
        { "se1.fc2.weight", 2, { 32, 4 }, PARAM_SE },
        { "se1.fc2.bias", 1, { 32 }, PARAM_SE },
        { "conv2.weight", 4, { 64, 32, 5, 5 }, PARAM_BACKBONE },
        { "conv2.bias", 1, { 64 }, PARAM_BACKBONE },
        { "se2.fc1.weight", 2, { 8, 64 }, PARAM_SE },
        { "se2.fc1.bias", 1, { 8 }, PARAM_SE },
        { "se2.fc2.weight", 2, { 64, 8 }, PARAM_SE },
        { "se2.fc2.bias", 1, { 64 }, PARAM_SE },
        { "fc1.weight", 2, { 512, 1024 }, PARAM_BACKBONE },
        { "fc1.bias", 1, { 512 }, PARAM_BACKBONE },
        { "se3.fc1.weight", 2, { 64, 512 }, PARAM_SE },
        { "se3.fc1.bias", 1, { 64 }, PARAM_SE },
        { "se3.fc2.weight", 2, { 512, 64 }, PARAM_SE },
        { "se3.fc2.bias", 1, { 512 }, PARAM_SE },
        { "fc.weight", 2, { 10, 512 }, PARAM_BACKBONE | PARAM_HEAD },
        { "fc.bias", 1, { 10 }, PARAM_BACKBONE | PARAM_HEAD },
    };
    const int n = (int)(sizeof want / sizeof want[0]);
    ck_assert_str_eq(t.arch, "cnn-se");
    ck_assert_int_eq(t.r, 8);
    ck_assert_int_eq(t.fc1_gate, 1);
    ck_assert_int_eq(t.n, n);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const param_info *p = &t.p[i];
        ck_assert_str_eq(p->name, want[i].name);
        ck_assert_int_eq(p->ndim, want[i].ndim);
        size_t size = 1;
        for (int d = 0; d < p->ndim; d++) {
            ck_assert_int_eq(p->shape[d], want[i].d[d]);
            size *= (size_t)want[i].d[d];
        }
        ck_assert_uint_eq(p->groups, want[i].groups);
        ck_assert_uint_eq(p->offset, off);
        ck_assert_uint_eq(p->size, size);
        ck_assert_ptr_eq(params_find(&t, want[i].name), p);
        off += size;
    }
    /* The same count PyTorch prints for torch_ref.py's Net(). */
    ck_assert_uint_eq(t.total, 649526);
    ck_assert_uint_eq(off, t.total);
    ck_assert_ptr_null(params_find(&t, "conv3.weight"));
    ck_assert_ptr_null(params_find(&t, ""));
}
END_TEST

START_TEST(test_no_gate_and_ratio)
{
    param_table g = build(8, 1), ng = build(8, 0), r4 = build(4, 1);
    ck_assert_int_eq(ng.n, g.n - 4);
    ck_assert_ptr_null(params_find(&ng, "se3.fc1.weight"));
    ck_assert_uint_eq(ng.total, g.total - (64 * 512 + 64 + 512 * 64 + 512));
    /* fc follows fc1 directly without the gate */
    ck_assert_uint_eq(params_find(&ng, "fc.weight")->offset,
                      params_find(&ng, "fc1.bias")->offset + 512);
    ck_assert_int_eq(params_find(&r4, "se2.fc1.weight")->shape[0], 16);
    ck_assert_int_eq(params_find(&r4, "se3.fc2.weight")->shape[1], 128);
    /* the hash covers r, the gate and the layout */
    ck_assert_uint_ne(g.hash, ng.hash);
    ck_assert_uint_ne(g.hash, r4.hash);
    ck_assert_uint_eq(g.hash, build(8, 1).hash);
    ck_assert_uint_eq(build(8, 7).hash, g.hash); /* any nonzero gate is the gate */
    param_table t = build(1, 1);
    ck_assert_int_eq(params_find(&t, "se1.fc1.weight")->shape[0], 32);
}
END_TEST

START_TEST(test_bad_ratio)
{
    param_table t;
    const int bad[] = { 0, -8, 3, 5, 6, 12, 64, 33 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[SEFL_ERRLEN] = "";
        ck_assert_int_eq(params_build(&t, &(model_opts){ .arch = "cnn-se", .r = bad[i], .fc1_gate = 1 }, err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "ratio"));
    }
    const int good[] = { 1, 2, 4, 8, 16, 32 };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_int_eq(params_build(&t, &(model_opts){ .arch = "cnn-se", .r = good[i], .fc1_gate = 1 }, NULL), 0);
}
END_TEST

/* cnn-se's tables are byte for byte what sefl built before the
 * architecture seam: the hashes and sizes below were printed by
 * params_build_cnn_se at commit a77a6d4. Peers, server.db and client files
 * of older runs therefore still match. */
START_TEST(test_cnn_se_unchanged)
{
    static const struct { int r, gate; uint64_t hash; size_t total; } golden[] = {
        { 8, 0, 0xd261fdc6cf9cdfb2ULL, 583414 },  { 8, 1, 0x964ca580060e34e3ULL, 649526 },
        { 4, 0, 0xd2d3f4f210994a7aULL, 584706 },  { 4, 1, 0xcbee00aa3550d293ULL, 716418 },
        { 1, 0, 0x5dcea29661aabd27ULL, 592458 },  { 1, 1, 0xa2b0d6cdf4cf0a24ULL, 1117770 },
        { 32, 0, 0xa9bd1c87f62af295ULL, 582445 }, { 32, 1, 0x5b2dab66765ed404ULL, 599357 },
    };
    for (size_t i = 0; i < sizeof golden / sizeof golden[0]; i++) {
        param_table t = build(golden[i].r, golden[i].gate);
        ck_assert_uint_eq(t.hash, golden[i].hash);
        ck_assert_uint_eq(t.total, golden[i].total);
        ck_assert_str_eq(t.se_placement, "");
        ck_assert_str_eq(t.gate, "");
    }
    /* The programs' defaults are that cnn-se, r 8 with the fc1 gate. */
    param_table t;
    model_opts o = model_opts_default();
    ck_assert_int_eq(params_build(&t, &o, NULL), 0);
    ck_assert_uint_eq(t.hash, 0x964ca580060e34e3ULL);
    /* params_opts gives back what rebuilds the same table. */
    param_table u;
    o = params_opts(&t);
    ck_assert_int_eq(params_build(&u, &o, NULL), 0);
    ck_assert_uint_eq(u.hash, t.hash);
}
END_TEST

/* Unknown architectures and options of another architecture are refused
 * with a line that says what to use; too long values do not reach the
 * table. */
START_TEST(test_build_by_name)
{
    param_table t;
    char err[SEFL_ERRLEN] = "";
    model_opts o = model_opts_default();
    ck_assert_int_eq(model_opts_set(&o, MODEL_OPT_ARCH, "resnet", err), 0);
    ck_assert_int_eq(params_build(&t, &o, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "'resnet' is unknown"));
    ck_assert_ptr_nonnull(strstr(err, "cnn-se"));
    o = model_opts_default();
    ck_assert_int_eq(model_opts_set(&o, MODEL_OPT_GATE, "eca", err), 0);
    ck_assert_int_eq(params_build(&t, &o, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--gate is an option of mbv2-se"));
    o = model_opts_default();
    ck_assert_int_eq(model_opts_set(&o, MODEL_OPT_SE_PLACEMENT, "after-depthwise", err), 0);
    ck_assert_int_eq(params_build(&t, &o, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--se-placement"));
    o = model_opts_default();
    ck_assert_int_eq(model_opts_set(&o, MODEL_OPT_ARCH, "a-name-longer-than-sixteen", err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--arch"));
    ck_assert_str_eq(o.arch, "cnn-se");
    ck_assert_int_eq(model_opts_set(&o, MODEL_OPT_N, "x", err), -EINVAL);
}
END_TEST

START_TEST(test_selection_counts)
{
    param_table t = build(8, 1);
    const size_t se = params_count(&t, params_group(PARAM_SE));
    const size_t head = params_count(&t, params_group(PARAM_HEAD));
    const size_t bb = params_count(&t, params_group(PARAM_BACKBONE));
    ck_assert_uint_eq(head, 10 * 512 + 10);
    ck_assert_uint_eq(se, (4 * 32 + 4 + 32 * 4 + 32) + (8 * 64 + 8 + 64 * 8 + 64)
                          + (64 * 512 + 64 + 512 * 64 + 512));
    ck_assert_uint_eq(se + bb, t.total);
    ck_assert_uint_eq(params_count(&t, params_group(PARAM_ALL)), t.total);
    ck_assert_uint_eq(params_count(&t, params_group(0)), 0);
    /* shared + private = everything, for every private set */
    const unsigned masks[] = { 0, PARAM_SE, PARAM_HEAD, PARAM_SE | PARAM_HEAD };
    for (size_t i = 0; i < 4; i++) {
        size_t s = params_count(&t, params_shared(masks[i]));
        size_t p = params_count(&t, params_private(masks[i]));
        ck_assert_uint_eq(s + p, t.total);
    }
    ck_assert_uint_eq(params_count(&t, params_shared(PARAM_SE | PARAM_HEAD)), bb - head);
    ck_assert_uint_eq(params_count(&t, params_private(PARAM_HEAD)), head);
    /* fc is in backbone and head: a head-private model shares none of fc */
    const param_info *fc = params_find(&t, "fc.weight");
    ck_assert(!params_selected(fc, params_shared(PARAM_HEAD)));
    ck_assert(params_selected(fc, params_shared(PARAM_SE)));
    ck_assert(params_selected(fc, params_group(PARAM_BACKBONE)));
    ck_assert(!params_selected(params_find(&t, "conv1.bias"), params_private(PARAM_SE)));
}
END_TEST

START_TEST(test_gather_scatter)
{
    param_table t = build(8, 1);
    float *buf = malloc(t.total * sizeof *buf), *copy = malloc(t.total * sizeof *copy);
    float *flat = malloc(t.total * sizeof *flat);
    ck_assert_ptr_nonnull(buf);
    ck_assert_ptr_nonnull(copy);
    ck_assert_ptr_nonnull(flat);
    for (size_t i = 0; i < t.total; i++) buf[i] = (float)i;
    const unsigned masks[] = { 0, PARAM_SE, PARAM_HEAD, PARAM_SE | PARAM_HEAD };
    for (int k = 0; k < 8; k++) {
        param_sel sel = k < 4 ? params_shared(masks[k]) : params_private(masks[k - 4]);
        size_t n = params_count(&t, sel);
        params_gather(&t, sel, buf, flat);
        /* gathered in table order: each selected tensor's floats, contiguously */
        size_t j = 0, bad = 0;
        for (int i = 0; i < t.n; i++) {
            if (!params_selected(&t.p[i], sel)) continue;
            for (size_t e = 0; e < t.p[i].size; e++, j++) bad += flat[j] != (float)(t.p[i].offset + e);
        }
        ck_assert_uint_eq(j, n);
        ck_assert_uint_eq(bad, 0);
        /* scatter of a changed vector writes the selection and nothing else */
        for (size_t i = 0; i < n; i++) flat[i] = -1.0f - (float)i;
        memcpy(copy, buf, t.total * sizeof *buf);
        params_scatter(&t, sel, flat, copy);
        j = 0;
        for (int i = 0; i < t.n; i++) {
            const param_info *p = &t.p[i];
            for (size_t e = 0; e < p->size; e++) {
                float want = params_selected(p, sel) ? -1.0f - (float)j++ : (float)(p->offset + e);
                bad += copy[p->offset + e] != want;
            }
        }
        ck_assert_uint_eq(bad, 0);
        /* gather after scatter gives the vector back, losslessly */
        float *back = malloc((n ? n : 1) * sizeof *back);
        ck_assert_ptr_nonnull(back);
        params_gather(&t, sel, copy, back);
        ck_assert_int_eq(memcmp(back, flat, n * sizeof *back), 0);
        free(back);
    }
    free(buf);
    free(copy);
    free(flat);
}
END_TEST

START_TEST(test_private_names)
{
    unsigned m = 99;
    char err[SEFL_ERRLEN] = "";
    ck_assert_int_eq(params_parse_private("se", &m, err), 0);
    ck_assert_uint_eq(m, PARAM_SE);
    ck_assert_int_eq(params_parse_private("head", &m, err), 0);
    ck_assert_uint_eq(m, PARAM_HEAD);
    ck_assert_int_eq(params_parse_private("se,head", &m, err), 0);
    ck_assert_uint_eq(m, PARAM_SE | PARAM_HEAD);
    ck_assert_int_eq(params_parse_private("head,se", &m, err), 0);
    ck_assert_uint_eq(m, PARAM_SE | PARAM_HEAD);
    ck_assert_int_eq(params_parse_private("none", &m, err), 0);
    ck_assert_uint_eq(m, 0);
    const char *bad[] = { "", "SE", "se,", "backbone", "se,head,se", "nonee" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m = 99;
        ck_assert_int_eq(params_parse_private(bad[i], &m, err), -EINVAL);
        ck_assert_uint_eq(m, 99);
        ck_assert_ptr_nonnull(strstr(err, "private set"));
    }
    ck_assert_str_eq(params_private_name(0), "none");
    ck_assert_str_eq(params_private_name(PARAM_SE), "se");
    ck_assert_str_eq(params_private_name(PARAM_HEAD), "head");
    ck_assert_str_eq(params_private_name(PARAM_SE | PARAM_HEAD), "se,head");
    /* the name parses back to the mask */
    const unsigned masks[] = { 0, PARAM_SE, PARAM_HEAD, PARAM_SE | PARAM_HEAD };
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(params_parse_private(params_private_name(masks[i]), &m, err), 0);
        ck_assert_uint_eq(m, masks[i]);
    }
}
END_TEST

START_TEST(test_checksum)
{
    param_table t = build(8, 1);
    float *buf = calloc(t.total, sizeof *buf);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < t.total; i++) buf[i] = sinf((float)i);
    const param_sel se = params_group(PARAM_SE), sh = params_shared(PARAM_SE);
    uint64_t a = params_checksum(&t, se, buf), b = params_checksum(&t, sh, buf);
    ck_assert_uint_ne(a, b);
    /* a change outside the selection leaves its checksum alone */
    buf[params_find(&t, "conv1.weight")->offset] += 1.0f;
    ck_assert_uint_eq(params_checksum(&t, se, buf), a);
    ck_assert_uint_ne(params_checksum(&t, sh, buf), b);
    /* one bit inside changes it */
    uint32_t bits;
    float *v = &buf[params_find(&t, "se3.fc2.bias")->offset + 7];
    memcpy(&bits, v, 4);
    bits ^= 1;
    memcpy(v, &bits, 4);
    ck_assert_uint_ne(params_checksum(&t, se, buf), a);
    free(buf);
}
END_TEST

/* params_copy writes the selected tensors' slices and nothing else. */
START_TEST(test_copy)
{
    param_table t;
    char err[SEFL_ERRLEN];
    ck_assert_int_eq(params_build(&t, &(model_opts){ .arch = "cnn-se", .r = 8, .fc1_gate = 1 }, err), 0);
    float *src = malloc(t.total * sizeof *src), *dst = malloc(t.total * sizeof *dst);
    for (size_t i = 0; i < t.total; i++) {
        src[i] = 1.0f;
        dst[i] = 2.0f;
    }
    params_copy(&t, params_shared(PARAM_SE), src, dst);
    for (int k = 0; k < t.n; k++) {
        const param_info *p = &t.p[k];
        const float want = params_selected(p, params_shared(PARAM_SE)) ? 1.0f : 2.0f;
        for (size_t j = 0; j < p->size; j++) ck_assert_float_eq(dst[p->offset + j], want);
    }
    free(src);
    free(dst);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("params");
    TCase *tc = tcase_create("params");
    tcase_add_test(tc, test_table_layout);
    tcase_add_test(tc, test_no_gate_and_ratio);
    tcase_add_test(tc, test_bad_ratio);
    tcase_add_test(tc, test_cnn_se_unchanged);
    tcase_add_test(tc, test_build_by_name);
    tcase_add_test(tc, test_selection_counts);
    tcase_add_test(tc, test_gather_scatter);
    tcase_add_test(tc, test_private_names);
    tcase_add_test(tc, test_checksum);
    tcase_add_test(tc, test_copy);
    suite_add_tcase(s, tc);
    return check_run(s);
}
