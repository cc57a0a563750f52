/* store: small SQLite helpers shared by the coordinator's server.db
 * (server/state.c) and a client's private store (client/pstore.c).
 *
 * Every sefl database has a table meta(key TEXT PRIMARY KEY, value) holding
 * at least schema_version, kind and created_at. store_open creates that table
 * and the caller's schema in a new (or empty) file, in one transaction, and
 * for an existing file checks that it is a readable SQLite database of the
 * expected kind and schema version, refusing a foreign or corrupt file with
 * one clear line: such a file is never silently replaced.
 *
 * Parameter blobs are float arrays stored little-endian, as the machine holds
 * them, with an FNV-1a 64 checksum as 16 lowercase hex digits beside them.
 */
#ifndef SEFL_STORE_H
#define SEFL_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>

#define STORE_CHECKSUM_LEN 17        /* 16 hex digits + NUL */
#define STORE_TIME_LEN 32            /* "2026-11-27T22:56:50Z" + NUL, with room */
#define STORE_META_MAX 256           /* longest meta text value store_meta_get returns */

typedef struct {
    const char *kind;       /* meta kind written into a new file and required on open */
    const char *alt_kind;   /* another kind accepted on open (NULL: none) */
    int version;            /* meta schema_version written and required */
    const char *ddl;        /* statements creating the other tables of a new file */
} store_schema;

enum {
    STORE_CREATE = 1u << 0,          /* create the file when missing or empty */
    STORE_READONLY = 1u << 1,        /* open for reading only (implies no create) */
};

/* Opens path. A missing or empty file is created (with STORE_CREATE) with
 * meta (schema_version, kind = schema->kind, created_at) and schema->ddl in
 * one transaction. An existing file must pass SQLite's quick_check and have
 * meta.kind equal to kind or alt_kind and meta.schema_version equal to
 * version. Writable connections use WAL and synchronous=FULL, so a committed
 * transaction survives a crash. *created (may be NULL) is set to 1 when the
 * file was created now. Returns 0 with *out open (close with store_close),
 * or a negative errno with one line in err: -ENOENT missing file without
 * STORE_CREATE, -EBADMSG corrupt or foreign file or wrong kind/version,
 * -ENOMEM when SQLite runs out of memory (never -EBADMSG then: the file is
 * not at fault), -EIO other SQLite failures. */
int store_open(const char *path, const store_schema *schema, unsigned flags, sqlite3 **out,
               int *created, char *err);
void store_close(sqlite3 *db);       /* accepts NULL */

/* In the functions below, as in store_open, SQLite's failures are -EBADMSG
 * for a corrupt file, -ENOMEM when it ran out of memory, -EIO otherwise. */

/* Runs one or more SQL statements without results. Returns 0 or a SQLite
 * failure with err. */
int store_exec(sqlite3 *db, const char *sql, char *err);

/* Transactions: BEGIN IMMEDIATE (takes the write lock at once), COMMIT,
 * ROLLBACK (which never fails in a way the caller could act on). */
int store_begin(sqlite3 *db, char *err);
int store_commit(sqlite3 *db, char *err);
void store_rollback(sqlite3 *db);

/* Prepares sql into *st. Returns 0 or a SQLite failure with err naming the
 * statement's error. */
int store_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err);

/* meta values. store_meta_get copies the text of key into buf (size bytes,
 * at most STORE_META_MAX used); returns 0, -ENOENT when absent, -ENAMETOOLONG
 * when longer than size - 1, or a SQLite failure. store_meta_set inserts or
 * replaces. */
int store_meta_get(sqlite3 *db, const char *key, char *buf, size_t size, char *err);
int store_meta_set(sqlite3 *db, const char *key, const char *value, char *err);
int store_meta_set_int(sqlite3 *db, const char *key, long long value, char *err);

/* Takes an exclusive lock on the database path for as long as *fd stays
 * open, so that two processes never write one run: flock(2) on the file
 * itself (created empty when missing, which store_open then treats as a new
 * file), independent of SQLite's own locks. Close *fd only after
 * store_close: closing another descriptor of the file would drop SQLite's
 * POSIX locks. Returns 0 with *fd, -EBUSY with err naming the file when
 * another process holds it, or another negative errno with err. */
int store_lock(const char *path, int *fd, char *err);

/* FNV-1a 64 of n bytes as 16 lowercase hex digits. */
void store_checksum_hex(const void *p, size_t n, char out[STORE_CHECKSUM_LEN]);

/* Binds v (n floats) as a blob to parameter idx of st (SQLite copies it).
 * Returns 0 or -EIO. */
int store_bind_floats(sqlite3_stmt *st, int idx, const float *v, size_t n);

/* Copies the blob in column col of st's current row into v (n floats) after
 * checking that it holds exactly n floats and that its checksum equals
 * checksum (16 hex digits). Returns 0, or -EBADMSG (-ENOMEM when SQLite
 * ran out of memory reading it) with err (what names the blob in the
 * message, e.g. "model of round 3") and v untouched. */
int store_column_floats(sqlite3_stmt *st, int col, const char *checksum, float *v, size_t n,
                        const char *what, char *err);

/* The current UTC time as ISO-8601 text ("2026-11-27T22:56:50Z"). */
void store_now_iso(char out[STORE_TIME_LEN]);

#endif
