/* check_pstore: the client's private SQLite store: round trips, damage
 * detection (checksum, shape), refusal of foreign files and other schema
 * versions, and all-or-nothing commits. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/log.h"
#include "common/nn/params.h"
#include "client/pstore.h"
#include "common/rng.h"
#include "common/store.h"
#include "tests/check_main.h"

static char dir[64];
static param_table table;

static void setup(void)
{
    char err[SEFL_ERRLEN];
    check_mkdtemp(dir, sizeof dir, "/tmp/check_pstore.XXXXXX");
    ck_assert_int_eq(params_build(&table, &(model_opts){ .arch = "cnn-se", .r = 8, .fc1_gate = 1 }, err), 0);
}

static void teardown(void)
{
    ck_assert_int_eq(check_rm_rf(dir), 0);
}

static void path_of(char *out, size_t n, const char *file)
{
    snprintf(out, n, "%s/%s", dir, file);
}

/* (table.total) floats drawn from seed. */
static float *random_params(uint64_t seed)
{
    rng r;
    rng_seed(&r, seed);
    float *v = malloc(table.total * sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (size_t i = 0; i < table.total; i++) v[i] = (float)rng_normal(&r);
    return v;
}

/* Runs SQL on the file directly, as damage or a foreign writer would. */
static void poke(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "");
    sqlite3_close(db);
}

static void commit_round(const char *path, uint32_t round, const float *w)
{
    char err[SEFL_ERRLEN];
    pstore *ps = NULL;
    ck_assert_int_eq(pstore_open(path, "client-0001", &table, &ps, err), 0);
    pstore_figures fig = { round, 100, 0.5, 0.8, 1.0 };
    ck_assert_msg(pstore_commit(ps, params_private(PARAM_SE), w, &fig, err) == 0, "%s", err);
    pstore_close(ps);
}

START_TEST(test_round_trip)
{
    char path[128], err[SEFL_ERRLEN];
    path_of(path, sizeof path, "c.db");
    float *w = random_params(1);
    float *back = calloc(table.total, sizeof *back);
    pstore *ps = NULL;
    uint32_t round = 99;

    /* A new file holds nothing: load reads no tensor and leaves buf alone. */
    ck_assert_int_eq(pstore_open(path, "client-0001", &table, &ps, err), 0);
    ck_assert_int_eq(pstore_load(ps, params_private(PARAM_SE), back, &round, err), 0);
    ck_assert_uint_eq(round, 0);
    round = 99;
    ck_assert_int_eq(pstore_round(ps, &round, err), 0);
    ck_assert_uint_eq(round, 0);
    pstore_close(ps);

    commit_round(path, 7, w);
    ck_assert_int_eq(pstore_open(path, "client-0001", &table, &ps, err), 0);
    int n = pstore_load(ps, params_private(PARAM_SE), back, &round, err);
    int se = 0;
    for (int i = 0; i < table.n; i++) se += params_selected(&table.p[i], params_private(PARAM_SE));
    ck_assert_int_gt(se, 0);
    ck_assert_int_eq(n, se);
    ck_assert_uint_eq(round, 7);
    round = 0;
    ck_assert_int_eq(pstore_round(ps, &round, err), 0);
    ck_assert_uint_eq(round, 7);
    for (int i = 0; i < table.n; i++) {
        const param_info *p = &table.p[i];
        int sel = params_selected(p, params_private(PARAM_SE));
        for (size_t k = 0; k < p->size; k++)
            ck_assert(back[p->offset + k] == (sel ? w[p->offset + k] : 0.0f));
    }
    /* The history holds the training's figures. */
    pstore_figures ev = { 7, 30, 0.4, 0.9, 0.1 };
    ck_assert_int_eq(pstore_record_eval(ps, &ev, err), 0);
    pstore_close(ps);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT group_concat(kind) FROM history", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "train,eval");
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(w);
    free(back);
}
END_TEST

START_TEST(test_checksum_mismatch)
{
    char path[128], err[SEFL_ERRLEN];
    path_of(path, sizeof path, "c.db");
    float *w = random_params(2);
    float *back = calloc(table.total, sizeof *back);
    commit_round(path, 1, w);
    /* Same length, other bytes: only the checksum can tell. */
    poke(path, "UPDATE tensors SET data = zeroblob(length(data)) WHERE name = 'se1.fc1.weight'");
    pstore *ps = NULL;
    ck_assert_int_eq(pstore_open(path, "client-0001", &table, &ps, err), 0);
    ck_assert_int_eq(pstore_load(ps, params_private(PARAM_SE), back, NULL, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "checksum"));
    ck_assert_ptr_nonnull(strstr(err, "se1.fc1.weight"));
    pstore_close(ps);
    free(w);
    free(back);
}
END_TEST

START_TEST(test_shape_mismatch)
{
    char path[128], err[SEFL_ERRLEN];
    path_of(path, sizeof path, "c.db");
    float *w = random_params(3);
    float *back = calloc(table.total, sizeof *back);
    commit_round(path, 1, w);
    poke(path, "UPDATE tensors SET shape = '1,2' WHERE name = 'se1.fc1.weight'");
    pstore *ps = NULL;
    ck_assert_int_eq(pstore_open(path, "client-0001", &table, &ps, err), 0);
    ck_assert_int_eq(pstore_load(ps, params_private(PARAM_SE), back, NULL, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "shape"));
    pstore_close(ps);
    /* A blob of another size is refused before it is copied. */
    commit_round(path, 2, w);
    poke(path, "UPDATE tensors SET data = zeroblob(length(data) + 4) WHERE name = 'se2.fc2.bias'");
    ck_assert_int_eq(pstore_open(path, "client-0001", &table, &ps, err), 0);
    ck_assert_int_eq(pstore_load(ps, params_private(PARAM_SE), back, NULL, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "se2.fc2.bias"));
    pstore_close(ps);
    free(w);
    free(back);
}
END_TEST

START_TEST(test_foreign_files)
{
    char path[128], err[SEFL_ERRLEN];
    pstore *ps = NULL;

    /* Random bytes. */
    path_of(path, sizeof path, "random.db");
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    rng r;
    rng_seed(&r, 4);
    for (int i = 0; i < 8192; i++) fputc((int)(rng_next(&r) & 0xff), f);
    fclose(f);
    ck_assert_int_eq(pstore_open(path, "client-0001", &table, &ps, err), -EBADMSG);
    ck_assert_ptr_null(ps);
    ck_assert_ptr_nonnull(strstr(err, "not a SQLite database"));

    /* Another sefl database: a coordinator's server.db. */
    path_of(path, sizeof path, "server.db");
    sqlite3 *db = NULL;
    store_schema server = { "server", NULL, 1, "CREATE TABLE rounds(round INTEGER PRIMARY KEY)" };
    ck_assert_int_eq(store_open(path, &server, STORE_CREATE, &db, NULL, err), 0);
    store_close(db);
    ck_assert_int_eq(pstore_open(path, "client-0001", &table, &ps, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "'server'"));

    /* Some other program's SQLite file. */
    path_of(path, sizeof path, "other.db");
    poke(path, "CREATE TABLE t(x)");
    ck_assert_int_eq(pstore_open(path, "client-0001", &table, &ps, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "not a sefl"));

    /* A pstore of another client, and one of another model. */
    path_of(path, sizeof path, "c.db");
    float *w = random_params(5);
    commit_round(path, 1, w);
    ck_assert_int_eq(pstore_open(path, "client-0002", &table, &ps, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "client-0001"));
    param_table other;
    ck_assert_int_eq(params_build(&other, &(model_opts){ .arch = "cnn-se", .r = 16, .fc1_gate = 1 }, err), 0);
    ck_assert_int_eq(pstore_open(path, "client-0001", &other, &ps, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "another model"));
    free(w);

    /* The refused files were left as they were. */
    path_of(path, sizeof path, "server.db");
    ck_assert_int_eq(store_open(path, &server, 0, &db, NULL, err), 0);
    store_close(db);
}
END_TEST

START_TEST(test_schema_version)
{
    char path[128], err[SEFL_ERRLEN];
    path_of(path, sizeof path, "c.db");
    float *w = random_params(6);
    commit_round(path, 1, w);
    poke(path, "UPDATE meta SET value = 99 WHERE key = 'schema_version'");
    pstore *ps = NULL;
    ck_assert_int_eq(pstore_open(path, "client-0001", &table, &ps, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "schema_version 99"));
    free(w);
}
END_TEST

START_TEST(test_commit_atomic)
{
    char path[128], err[SEFL_ERRLEN];
    path_of(path, sizeof path, "c.db");
    float *w1 = random_params(7), *w2 = random_params(8);
    float *back = calloc(table.total, sizeof *back);
    commit_round(path, 1, w1);
    /* The history row is the last write of a commit: failing it must undo
     * the tensors already replaced in the same transaction. */
    poke(path, "CREATE TRIGGER fail AFTER INSERT ON history WHEN NEW.round = 2 "
               "BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
    pstore *ps = NULL;
    ck_assert_int_eq(pstore_open(path, "client-0001", &table, &ps, err), 0);
    pstore_figures fig = { 2, 100, 0.5, 0.8, 1.0 };
    ck_assert_int_lt(pstore_commit(ps, params_private(PARAM_SE), w2, &fig, err), 0);
    ck_assert_ptr_nonnull(strstr(err, "injected failure"));
    uint32_t round = 0;
    ck_assert_int_gt(pstore_load(ps, params_private(PARAM_SE), back, &round, err), 0);
    ck_assert_uint_eq(round, 1);
    for (int i = 0; i < table.n; i++) {
        const param_info *p = &table.p[i];
        if (!params_selected(p, params_private(PARAM_SE))) continue;
        ck_assert(!memcmp(back + p->offset, w1 + p->offset, p->size * sizeof *back));
    }
    /* And the handle still works after the failure. */
    fig.round = 3;
    ck_assert_int_eq(pstore_commit(ps, params_private(PARAM_SE), w2, &fig, err), 0);
    ck_assert_int_gt(pstore_load(ps, params_private(PARAM_SE), back, &round, err), 0);
    ck_assert_uint_eq(round, 3);
    pstore_close(ps);
    free(w1);
    free(w2);
    free(back);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pstore");
    TCase *tc = tcase_create("pstore");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_checksum_mismatch);
    tcase_add_test(tc, test_shape_mismatch);
    tcase_add_test(tc, test_foreign_files);
    tcase_add_test(tc, test_schema_version);
    tcase_add_test(tc, test_commit_atomic);
    suite_add_tcase(s, tc);
    return check_run(s);
}
