/* check_store: store_open's create/check/refuse paths, meta values,
 * transactions and checksummed float blobs, on files in a temporary dir. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/store.h"
#include "tests/check_main.h"
#include "tests/check_sql.h"

static char dir[64];
static char path[128];

static const store_schema schema = {
    .kind = "server", .alt_kind = "local", .version = 1,
    .ddl = "CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB, sum TEXT);",
};

static void setup(void)
{
    check_mkdtemp(dir, sizeof dir, "/tmp/check_store.XXXXXX");
    snprintf(path, sizeof path, "%s/a.db", dir);
}

static void teardown(void)
{
    ck_assert_int_eq(check_rm_rf(dir), 0);
}

static void write_file(const char *p, const void *data, size_t n)
{
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

START_TEST(test_create_then_reopen)
{
    sqlite3 *db;
    int created = -1;
    char err[SEFL_ERRLEN] = "", buf[64];
    ck_assert_int_eq(store_open(path, &schema, STORE_CREATE, &db, &created, err), 0);
    ck_assert_int_eq(created, 1);
    ck_assert_int_eq(store_meta_get(db, "kind", buf, sizeof buf, err), 0);
    ck_assert_str_eq(buf, "server");
    ck_assert_int_eq(check_sql_int(db, "SELECT value FROM meta WHERE key='schema_version'"), 1);
    ck_assert_int_eq(check_sql_int(db, "SELECT typeof(value)='integer'"
                                       " FROM meta WHERE key='schema_version'"), 1);
    ck_assert_int_eq(check_sql_int(db, "SELECT count(*) FROM t"), 0);
    /* durability settings the coordinator's commits rely on */
    ck_assert_int_eq(check_sql_int(db, "PRAGMA synchronous"), 2);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    store_close(db);

    ck_assert_int_eq(store_open(path, &schema, STORE_CREATE, &db, &created, err), 0);
    ck_assert_int_eq(created, 0);
    store_close(db);
    ck_assert_int_eq(store_open(path, &schema, STORE_READONLY, &db, NULL, err), 0);
    store_close(db);
    store_close(NULL);
}
END_TEST

START_TEST(test_missing_and_empty)
{
    sqlite3 *db = (sqlite3 *)1;
    char err[SEFL_ERRLEN] = "";
    ck_assert_int_eq(store_open(path, &schema, 0, &db, NULL, err), -ENOENT);
    ck_assert_ptr_null(db);
    ck_assert_ptr_nonnull(strstr(err, "no such database"));
    ck_assert_int_eq(store_open(path, &schema, STORE_READONLY | STORE_CREATE, &db, NULL, err), -ENOENT);
    ck_assert_int_eq(access(path, F_OK), -1);

    write_file(path, "", 0);
    ck_assert_int_eq(store_open(path, &schema, 0, &db, NULL, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "empty file"));
    int created = 0;
    ck_assert_int_eq(store_open(path, &schema, STORE_CREATE, &db, &created, err), 0);
    ck_assert_int_eq(created, 1);
    store_close(db);
}
END_TEST

START_TEST(test_refuses_garbage)
{
    char junk[8192];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 7 + 3);
    write_file(path, junk, sizeof junk);
    sqlite3 *db;
    char err[SEFL_ERRLEN] = "";
    ck_assert_int_eq(store_open(path, &schema, STORE_CREATE, &db, NULL, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "not a SQLite database"));
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_ptr_null(strchr(err, '\n'));
    /* never silently replaced */
    FILE *f = fopen(path, "rb");
    char back[16];
    ck_assert_uint_eq(fread(back, 1, sizeof back, f), sizeof back);
    fclose(f);
    ck_assert_int_eq(memcmp(back, junk, sizeof back), 0);
}
END_TEST

START_TEST(test_refuses_foreign_sqlite)
{
    sqlite3 *raw;
    ck_assert_int_eq(sqlite3_open(path, &raw), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(raw, "CREATE TABLE foo(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    sqlite3 *db;
    char err[SEFL_ERRLEN] = "";
    ck_assert_int_eq(store_open(path, &schema, STORE_CREATE, &db, NULL, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "not a sefl server database"));
}
END_TEST

START_TEST(test_refuses_other_kind_and_version)
{
    store_schema client = { .kind = "client", .version = 1, .ddl = NULL };
    sqlite3 *db;
    char err[SEFL_ERRLEN] = "";
    ck_assert_int_eq(store_open(path, &client, STORE_CREATE, &db, NULL, err), 0);
    store_close(db);
    ck_assert_int_eq(store_open(path, &schema, STORE_CREATE, &db, NULL, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "is a sefl 'client' database, expected 'server'"));

    /* alt_kind is accepted: sefl-eval reads 'local' files too */
    store_schema local = { .kind = "local", .version = 1, .ddl = NULL };
    ck_assert_int_eq(store_open(path, &local, 0, &db, NULL, err), -EBADMSG);
    snprintf(path, sizeof path, "%s/local.db", dir);
    ck_assert_int_eq(store_open(path, &local, STORE_CREATE, &db, NULL, err), 0);
    store_close(db);
    ck_assert_int_eq(store_open(path, &schema, 0, &db, NULL, err), 0);
    store_close(db);

    store_schema v2 = schema;
    v2.version = 2;
    ck_assert_int_eq(store_open(path, &v2, 0, &db, NULL, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "schema_version 1, this program reads 2"));
}
END_TEST

START_TEST(test_refuses_corrupt_page)
{
    sqlite3 *db;
    char err[SEFL_ERRLEN] = "";
    ck_assert_int_eq(store_open(path, &schema, STORE_CREATE, &db, NULL, err), 0);
    static float v[4096];
    ck_assert_int_eq(store_begin(db, err), 0);
    for (int k = 0; k < 20; k++) {
        sqlite3_stmt *st;
        ck_assert_int_eq(store_prepare(db, "INSERT INTO t(k, v, sum) VALUES(?, ?, 'x')", &st, err), 0);
        sqlite3_bind_int(st, 1, k);
        ck_assert_int_eq(store_bind_floats(st, 2, v, 4096), 0);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
        sqlite3_finalize(st);
    }
    ck_assert_int_eq(store_commit(db, err), 0);
    store_close(db);   /* the last close checkpoints the WAL into the file */

    /* Smash the b-tree root page of t and its neighbour. */
    int fd = open(path, O_WRONLY);
    ck_assert_int_ge(fd, 0);
    char junk[8192];
    memset(junk, 0xA5, sizeof junk);
    ck_assert_int_eq(pwrite(fd, junk, sizeof junk, 4096), (ssize_t)sizeof junk);
    close(fd);
    ck_assert_int_eq(store_open(path, &schema, STORE_CREATE, &db, NULL, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, path));
}
END_TEST

START_TEST(test_meta_values)
{
    sqlite3 *db;
    char err[SEFL_ERRLEN] = "", buf[STORE_META_MAX + 64];
    ck_assert_int_eq(store_open(path, &schema, STORE_CREATE, &db, NULL, err), 0);
    ck_assert_int_eq(store_meta_set(db, "arch", "cnn-se", err), 0);
    ck_assert_int_eq(store_meta_set_int(db, "r", 8, err), 0);
    ck_assert_int_eq(store_meta_get(db, "r", buf, sizeof buf, err), 0);
    ck_assert_str_eq(buf, "8");
    ck_assert_int_eq(store_meta_set(db, "arch", "other", err), 0);
    ck_assert_int_eq(store_meta_get(db, "arch", buf, sizeof buf, err), 0);
    ck_assert_str_eq(buf, "other");
    ck_assert_int_eq(store_meta_get(db, "nope", buf, sizeof buf, err), -ENOENT);

    /* limits: the caller's buffer, and STORE_META_MAX whatever the buffer */
    ck_assert_int_eq(store_meta_get(db, "arch", buf, 5, err), -ENAMETOOLONG);
    ck_assert_int_eq(store_meta_get(db, "arch", buf, 6, err), 0);
    char longv[STORE_META_MAX + 1];
    memset(longv, 'x', sizeof longv - 1);
    longv[sizeof longv - 1] = 0;
    ck_assert_int_eq(store_meta_set(db, "long", longv, err), 0);
    ck_assert_int_eq(store_meta_get(db, "long", buf, sizeof buf, err), -ENAMETOOLONG);
    longv[STORE_META_MAX - 1] = 0;
    ck_assert_int_eq(store_meta_set(db, "long", longv, err), 0);
    ck_assert_int_eq(store_meta_get(db, "long", buf, sizeof buf, err), 0);
    ck_assert_uint_eq(strlen(buf), STORE_META_MAX - 1);
    store_close(db);
}
END_TEST

START_TEST(test_transactions)
{
    sqlite3 *db;
    char err[SEFL_ERRLEN] = "";
    ck_assert_int_eq(store_open(path, &schema, STORE_CREATE, &db, NULL, err), 0);
    ck_assert_int_eq(store_begin(db, err), 0);
    ck_assert_int_eq(store_exec(db, "INSERT INTO t(k) VALUES(1)", err), 0);
    store_rollback(db);
    ck_assert_int_eq(check_sql_int(db, "SELECT count(*) FROM t"), 0);
    ck_assert_int_eq(store_begin(db, err), 0);
    ck_assert_int_eq(store_exec(db, "INSERT INTO t(k) VALUES(1)", err), 0);
    ck_assert_int_eq(store_commit(db, err), 0);
    ck_assert_int_eq(check_sql_int(db, "SELECT count(*) FROM t"), 1);
    ck_assert_int_eq(store_exec(db, "INSERT INTO nosuch VALUES(1)", err), -EIO);
    ck_assert_ptr_nonnull(strstr(err, "nosuch"));
    sqlite3_stmt *st;
    ck_assert_int_eq(store_prepare(db, "SELECT * FROM nosuch", &st, err), -EIO);
    ck_assert_ptr_null(st);
    store_close(db);
}
END_TEST

START_TEST(test_checksum_hex)
{
    char s[STORE_CHECKSUM_LEN];
    store_checksum_hex("", 0, s);
    ck_assert_str_eq(s, "cbf29ce484222325");   /* FNV-1a 64 offset basis */
    store_checksum_hex("a", 1, s);
    ck_assert_str_eq(s, "af63dc4c8601ec8c");   /* published test vector */
}
END_TEST

START_TEST(test_float_blobs)
{
    sqlite3 *db;
    char err[SEFL_ERRLEN] = "", sum[STORE_CHECKSUM_LEN];
    ck_assert_int_eq(store_open(path, &schema, STORE_CREATE, &db, NULL, err), 0);
    float v[100], back[101];
    for (int i = 0; i < 100; i++) v[i] = (float)i * 0.25f - 3.0f;
    store_checksum_hex(v, sizeof v, sum);
    sqlite3_stmt *st;
    ck_assert_int_eq(store_prepare(db, "INSERT INTO t(k, v, sum) VALUES(1, ?, ?)", &st, err), 0);
    ck_assert_int_eq(store_bind_floats(st, 1, v, 100), 0);
    sqlite3_bind_text(st, 2, sum, -1, SQLITE_STATIC);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);

    ck_assert_int_eq(store_prepare(db, "SELECT v, sum FROM t WHERE k = 1", &st, err), 0);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    const char *stored = (const char *)sqlite3_column_text(st, 1);
    ck_assert_str_eq(stored, sum);
    ck_assert_int_eq(store_column_floats(st, 0, sum, back, 100, "blob", err), 0);
    ck_assert_int_eq(memcmp(back, v, sizeof v), 0);

    /* a size that differs by one float either way is refused, back untouched */
    memset(back, 0, sizeof back);
    ck_assert_int_eq(store_column_floats(st, 0, sum, back, 101, "model of round 1", err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "model of round 1"));
    ck_assert_int_eq(store_column_floats(st, 0, sum, back, 99, "blob", err), -EBADMSG);
    ck_assert_int_eq(store_column_floats(st, 0, "0000000000000000", back, 100, "blob", err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "checksum"));
    ck_assert_int_eq(store_column_floats(st, 0, NULL, back, 100, "blob", err), -EBADMSG);
    ck_assert_float_eq(back[0], 0.0f);
    sqlite3_finalize(st);
    store_close(db);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_create_then_reopen);
    tcase_add_test(tc, test_missing_and_empty);
    tcase_add_test(tc, test_refuses_garbage);
    tcase_add_test(tc, test_refuses_foreign_sqlite);
    tcase_add_test(tc, test_refuses_other_kind_and_version);
    tcase_add_test(tc, test_refuses_corrupt_page);
    tcase_add_test(tc, test_meta_values);
    tcase_add_test(tc, test_transactions);
    tcase_add_test(tc, test_checksum_hex);
    tcase_add_test(tc, test_float_blobs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run(store_suite());
}
