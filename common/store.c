/* store: opening and checking sefl's SQLite files, meta values, transactions
 * and checksummed float blobs; see store.h.
 *
 * Both server.db and the clients' private files go through store_open, so a
 * file of the wrong kind (a client file given as --db to the coordinator), a
 * file from another program, or a damaged file is refused the same way, with
 * one line that says which file and what to do.
 */
#include "common/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/hash.h"
#include "common/log.h"

/* Blobs hold the floats as this machine does; every machine we build for is
 * little-endian, and this stops a build where the files would not agree. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "store blobs assume a little-endian machine"
#endif

/* Maps a SQLite result to our error codes: damage and non-database files
 * are -EBADMSG (the user must move the file away), running out of memory
 * -ENOMEM (the file is not at fault), the rest -EIO. */
static int store_errno(int rc)
{
    rc &= 0xff;
    if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) return -EBADMSG;
    return rc == SQLITE_NOMEM ? -ENOMEM : -EIO;
}

int store_exec(sqlite3 *db, const char *sql, char *err)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK) return 0;
    err_set(err, "%s: %s", sqlite3_db_filename(db, "main"), msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return store_errno(rc);
}

int store_begin(sqlite3 *db, char *err)
{
    return store_exec(db, "BEGIN IMMEDIATE", err);
}

int store_commit(sqlite3 *db, char *err)
{
    return store_exec(db, "COMMIT", err);
}

void store_rollback(sqlite3 *db)
{
    /* Fails only when no transaction is open, which is what we want anyway. */
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

int store_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err)
{
    int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
    if (rc == SQLITE_OK) return 0;
    err_set(err, "%s: %s", sqlite3_db_filename(db, "main"), sqlite3_errmsg(db));
    *st = NULL;
    return store_errno(rc);
}

int store_meta_get(sqlite3 *db, const char *key, char *buf, size_t size, char *err)
{
    sqlite3_stmt *st = NULL;
    int ret = store_prepare(db, "SELECT value FROM meta WHERE key = ?", &st, err);
    if (ret) return ret;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        err_set(err, "%s: meta has no %s", sqlite3_db_filename(db, "main"), key);
        ret = -ENOENT;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        err_set(err, "%s: %s", sqlite3_db_filename(db, "main"), sqlite3_errmsg(db));
        ret = store_errno(rc);
        goto out;
    }
    const unsigned char *v = sqlite3_column_text(st, 0);
    size_t n = (size_t)sqlite3_column_bytes(st, 0);
    if (!v && sqlite3_errcode(db) == SQLITE_NOMEM) {
        err_set(err, "%s: out of memory reading meta %s", sqlite3_db_filename(db, "main"), key);
        ret = -ENOMEM;
        goto out;
    }
    if (size > STORE_META_MAX) size = STORE_META_MAX;
    if (!v || n + 1 > size) {
        err_set(err, "%s: meta %s is %s", sqlite3_db_filename(db, "main"), key,
                v ? "too long" : "null");
        ret = v ? -ENAMETOOLONG : -ENOENT;
        goto out;
    }
    memcpy(buf, v, n);
    buf[n] = 0;
out:
    sqlite3_finalize(st);
    return ret;
}

/* Binds the value with the type the caller gave it, so that schema_version
 * is an INTEGER that sqlite3 CLI users can compare numerically. */
static int store_meta_put(sqlite3 *db, const char *key, const char *text, long long num,
                          char *err)
{
    sqlite3_stmt *st = NULL;
    int ret = store_prepare(db, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", &st, err);
    if (ret) return ret;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (text)
        sqlite3_bind_text(st, 2, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(st, 2, num);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        err_set(err, "%s: %s", sqlite3_db_filename(db, "main"), sqlite3_errmsg(db));
        ret = store_errno(rc);
    }
    sqlite3_finalize(st);
    return ret;
}

int store_meta_set(sqlite3 *db, const char *key, const char *value, char *err)
{
    return store_meta_put(db, key, value, 0, err);
}

int store_meta_set_int(sqlite3 *db, const char *key, long long value, char *err)
{
    return store_meta_put(db, key, NULL, value, err);
}

void store_now_iso(char out[STORE_TIME_LEN])
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, STORE_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Creates meta and the caller's tables in an empty file, all or nothing. */
static int store_create(sqlite3 *db, const store_schema *s, char *err)
{
    char now[STORE_TIME_LEN];
    store_now_iso(now);
    int ret = store_begin(db, err);
    if (ret) return ret;
    if ((ret = store_exec(db, "CREATE TABLE meta(key TEXT PRIMARY KEY, value)", err)) ||
        (ret = store_meta_set_int(db, "schema_version", s->version, err)) ||
        (ret = store_meta_set(db, "kind", s->kind, err)) ||
        (ret = store_meta_set(db, "created_at", now, err)) ||
        (s->ddl && (ret = store_exec(db, s->ddl, err))) ||
        (ret = store_commit(db, err))) {
        store_rollback(db);
        return ret;
    }
    return 0;
}

/* Runs PRAGMA quick_check. Returns 1 when it says ok, 0 when it reports
 * damage, -ENOMEM when it ran out of memory in the statement or in reading
 * the text of its row. */
static int store_quick_check(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    const unsigned char *res = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    if (rc == SQLITE_ROW && !res && sqlite3_errcode(db) == SQLITE_NOMEM) rc = SQLITE_NOMEM;
    int ok = res && !strcmp((const char *)res, "ok");
    sqlite3_finalize(st);
    return store_errno(rc) == -ENOMEM ? -ENOMEM : ok;
}

/* Checks an existing file: intact, ours, of the right kind and version. */
static int store_check(sqlite3 *db, const char *path, const store_schema *s, char *err)
{
    /* quick_check reports a page it could not load for want of memory as
     * a finding, in the same words as damage; damage is there again on a
     * second run, a passing shortage is not. */
    int ok = store_quick_check(db);
    if (ok == 0) ok = store_quick_check(db);
    if (ok == -ENOMEM) {
        err_set(err, "%s: out of memory checking the database", path);
        return -ENOMEM;
    }
    if (!ok) goto corrupt;

    char kind[64], version[32];
    int ret = store_meta_get(db, "kind", kind, sizeof kind, err);
    if (ret == 0) ret = store_meta_get(db, "schema_version", version, sizeof version, err);
    if (ret == -ENOMEM) return ret;
    if (ret) {
        err_set(err, "%s: not a sefl %s database (no meta kind/schema_version); "
                "move it away or choose another file", path, s->kind);
        return -EBADMSG;
    }
    if (strcmp(kind, s->kind) && (!s->alt_kind || strcmp(kind, s->alt_kind))) {
        err_set(err, "%s: is a sefl '%s' database, expected '%s'; choose another file",
                path, kind, s->kind);
        return -EBADMSG;
    }
    char want[32];
    snprintf(want, sizeof want, "%d", s->version);
    if (strcmp(version, want)) {
        err_set(err, "%s: schema_version %s, this program reads %d; use a matching "
                "sefl or another file", path, version, s->version);
        return -EBADMSG;
    }
    return 0;
corrupt:
    err_set(err, "%s: corrupt database (integrity check failed); move it away or "
            "restore a copy", path);
    return -EBADMSG;
}

int store_open(const char *path, const store_schema *schema, unsigned flags, sqlite3 **out,
               int *created, char *err)
{
    sqlite3 *db = NULL;
    int ret = 0;
    *out = NULL;
    if (created) *created = 0;

    struct stat sb;
    int exists = stat(path, &sb) == 0;
    int readonly = (flags & STORE_READONLY) != 0;
    if (!exists && (readonly || !(flags & STORE_CREATE))) {
        err_set(err, "%s: no such database file", path);
        return -ENOENT;
    }
    int oflags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(path, &db, oflags, NULL);
    if (rc != SQLITE_OK) {
        err_set(err, "%s: cannot open: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        ret = -EIO;
        goto out;
    }
    sqlite3_busy_timeout(db, 5000);

    /* The first read of the schema is where SQLite notices a file that is
     * not a database at all. Only that verdict condemns the file: running
     * out of memory or an I/O error says nothing about it. */
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        ret = store_errno(rc);
        if (ret == -EBADMSG)
            err_set(err, "%s: not a SQLite database (corrupt or another kind of file); "
                    "move it away or choose another file", path);
        else
            err_set(err, "%s: cannot read: %s", path, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        goto out;
    }
    int tables = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);

    /* WAL keeps readers (sefl-eval) off the writer's back; FULL makes every
     * commit durable, which "no round is ever half applied" relies on. */
    if (!readonly && ((ret = store_exec(db, "PRAGMA journal_mode=WAL", err)) ||
                      (ret = store_exec(db, "PRAGMA synchronous=FULL", err))))
        goto out;

    if (tables == 0) {
        if (readonly || !(flags & STORE_CREATE)) {
            err_set(err, "%s: empty file, not a sefl %s database", path, schema->kind);
            ret = -EBADMSG;
            goto out;
        }
        if ((ret = store_create(db, schema, err))) goto out;
        if (created) *created = 1;
    } else if ((ret = store_check(db, path, schema, err))) {
        goto out;
    }
    *out = db;
    db = NULL;
out:
    sqlite3_close(db);
    return ret;
}

void store_close(sqlite3 *db)
{
    /* sqlite3_close accepts NULL; _v2 would defer on unfinalized statements
     * and hide a leak, which we would rather see as an error in tests. */
    sqlite3_close(db);
}

void store_checksum_hex(const void *p, size_t n, char out[STORE_CHECKSUM_LEN])
{
    snprintf(out, STORE_CHECKSUM_LEN, "%016llx",
             (unsigned long long)hash_fnv1a(HASH_FNV_INIT, p, n));
}

int store_bind_floats(sqlite3_stmt *st, int idx, const float *v, size_t n)
{
    if (n > (size_t)INT32_MAX / sizeof(float)) return -EIO;
    return sqlite3_bind_blob(st, idx, v, (int)(n * sizeof(float)), SQLITE_TRANSIENT) == SQLITE_OK
               ? 0
               : -EIO;
}

int store_column_floats(sqlite3_stmt *st, int col, const char *checksum, float *v, size_t n,
                        const char *what, char *err)
{
    const void *blob = sqlite3_column_blob(st, col);
    size_t bytes = (size_t)sqlite3_column_bytes(st, col);
    if (n && !blob && sqlite3_errcode(sqlite3_db_handle(st)) == SQLITE_NOMEM) {
        err_set(err, "%s: out of memory reading it", what);
        return -ENOMEM;
    }
    if (n > (size_t)INT32_MAX / sizeof(float) || bytes != n * sizeof(float) || (n && !blob)) {
        err_set(err, "%s: %zu bytes, expected %zu floats; the file is damaged", what, bytes, n);
        return -EBADMSG;
    }
    char sum[STORE_CHECKSUM_LEN];
    store_checksum_hex(blob, bytes, sum);
    if (!checksum || strcasecmp(sum, checksum)) {
        err_set(err, "%s: checksum %s does not match stored %s; the file is damaged", what, sum,
                checksum ? checksum : "(null)");
        return -EBADMSG;
    }
    if (n) memcpy(v, blob, bytes);
    return 0;
}

int store_lock(const char *path, int *fd, char *err)
{
    *fd = -1;
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (f < 0) {
        int e = errno;
        err_set(err, "%s: cannot open: %s", path, strerror(e));
        return -e;
    }
    if (flock(f, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(f);
        if (e == EWOULDBLOCK) {
            err_set(err, "%s is in use by another process (locked); stop it first or use "
                    "another --db", path);
            return -EBUSY;
        }
        err_set(err, "%s: cannot lock: %s", path, strerror(e));
        return -e;
    }
    *fd = f;
    return 0;
}
