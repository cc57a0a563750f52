/* check_sql.h: one integer out of a SQLite database, for the Check suites
 * that look inside the files the modules write (check_store, check_state,
 * check_coord). Header-only because each suite is its own program.
 */
#ifndef SEFL_CHECK_SQL_H
#define SEFL_CHECK_SQL_H

#include <check.h>
#include <sqlite3.h>

/* The first column of the first row of sql on db; fails the test when the
 * query does not prepare or returns no row. */
static inline long long check_sql_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* check_sql_int on a second connection to the file at path, as sefl-eval
 * would read it while the module holds its own. */
static inline long long check_sql_file_int(const char *path, const char *sql)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    long long v = check_sql_int(db, sql);
    sqlite3_close(db);
    return v;
}

#endif
