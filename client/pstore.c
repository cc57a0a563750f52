/* pstore: a client's private SQLite file (private tensors, their round, the
 * client's own figures); see pstore.h. Opening, kind/version checks and the
 * checksummed blobs come from store.h, shared with the coordinator's
 * server.db; this file adds the client's tables and the model-table check.
 */
#include "client/pstore.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/store.h"

#define PSTORE_KIND "client"
#define PSTORE_SHAPE_LEN (PARAM_MAX_DIMS * 12)   /* "d0,d1,d2,d3" */

struct pstore {
    sqlite3 *db;
    const param_table *t;
    char path[256];             /* for messages (may be cut) */
};

static const char *pstore_ddl =
    "CREATE TABLE tensors(name TEXT PRIMARY KEY, shape TEXT NOT NULL, round INTEGER NOT NULL,"
    "                     data BLOB NOT NULL, checksum TEXT NOT NULL);"
    "CREATE TABLE history(id INTEGER PRIMARY KEY, kind TEXT NOT NULL, round INTEGER NOT NULL,"
    "                     examples INTEGER NOT NULL, loss REAL, accuracy REAL, seconds REAL,"
    "                     at TEXT NOT NULL);";

static void pstore_shape_text(const param_info *p, char out[PSTORE_SHAPE_LEN])
{
    int n = 0;
    out[0] = 0;
    for (int d = 0; d < p->ndim; d++)
        n += snprintf(out + n, PSTORE_SHAPE_LEN - (size_t)n, d ? ",%d" : "%d", p->shape[d]);
}

/* Checks that an existing file was made for this model and this client. */
static int pstore_check_meta(pstore *ps, const char *name, char *err)
{
    char v[STORE_META_MAX], want[32];
    int rc = store_meta_get(ps->db, "table_hash", v, sizeof v, err);
    if (rc == -ENOMEM) return rc;
    if (rc < 0) return -EBADMSG;
    snprintf(want, sizeof want, "%016" PRIx64, ps->t->hash);
    if (strcmp(v, want) != 0) {
        err_set(err, "%s: made for another model (table hash %s, this model %s); "
                "use another file", ps->path, v, want);
        return -EBADMSG;
    }
    rc = store_meta_get(ps->db, "name", v, sizeof v, err);
    if (rc == -ENOMEM) return rc;
    if (rc < 0) return -EBADMSG;
    if (strcmp(v, name) != 0) {
        err_set(err, "%s: belongs to client '%s', not '%s'; use another file", ps->path, v, name);
        return -EBADMSG;
    }
    return 0;
}

int pstore_open(const char *path, const char *name, const param_table *t, pstore **out, char *err)
{
    char hash[32];
    char *ddl = NULL;
    int rc = -ENOMEM;
    pstore *ps = calloc(1, sizeof *ps);
    *out = NULL;
    if (!ps) goto nomem;
    ps->t = t;
    snprintf(ps->path, sizeof ps->path, "%s", path);

    /* The identity of the file goes in with the tables, in the same
     * transaction, so a file is never left without it. */
    snprintf(hash, sizeof hash, "%016" PRIx64, t->hash);
    ddl = sqlite3_mprintf("%s INSERT INTO meta VALUES('name', %Q), ('arch', %Q), ('table_hash', %Q);",
                          pstore_ddl, name, t->arch, hash);
    if (!ddl) goto nomem;
    store_schema schema = { PSTORE_KIND, NULL, PSTORE_SCHEMA_VERSION, ddl };
    int created = 0;
    rc = store_open(path, &schema, STORE_CREATE, &ps->db, &created, err);
    if (rc < 0) goto fail;
    if (!created && (rc = pstore_check_meta(ps, name, err)) < 0) goto fail;
    sqlite3_free(ddl);
    *out = ps;
    return 0;
nomem:
    err_set(err, "out of memory");
fail:
    sqlite3_free(ddl);
    pstore_close(ps);
    return rc;
}

void pstore_close(pstore *ps)
{
    if (!ps) return;
    store_close(ps->db);
    free(ps);
}

int pstore_load(pstore *ps, param_sel sel, float *buf, uint32_t *round, char *err)
{
    sqlite3_stmt *st = NULL;
    int n = 0, rc;
    if (round) *round = 0;
    rc = store_prepare(ps->db, "SELECT name, shape, round, data, checksum FROM tensors", &st, err);
    if (rc < 0) return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *shape = (const char *)sqlite3_column_text(st, 1);
        const char *sum = (const char *)sqlite3_column_text(st, 4);
        /* A text SQLite could not copy out for want of memory is no damage. */
        if ((!name || !shape || !sum) && sqlite3_errcode(ps->db) == SQLITE_NOMEM) {
            err_set(err, "%s: out of memory reading tensors", ps->path);
            rc = -ENOMEM;
            goto out;
        }
        const param_info *p = name ? params_find(ps->t, name) : NULL;
        char want[PSTORE_SHAPE_LEN], what[PARAM_NAME_MAX + 300];
        if (!p) {
            err_set(err, "%s: stores a tensor '%s' this model does not have; the file is damaged",
                    ps->path, name ? name : "(null)");
            rc = -EINVAL;
            goto out;
        }
        if (!params_selected(p, sel)) continue;
        pstore_shape_text(p, want);
        if (!shape || strcmp(shape, want) != 0) {
            err_set(err, "%s: tensor %s has shape (%s), the model says (%s); the file is damaged",
                    ps->path, p->name, shape ? shape : "", want);
            rc = -EINVAL;
            goto out;
        }
        snprintf(what, sizeof what, "%s: tensor %s", ps->path, p->name);
        rc = store_column_floats(st, 3, sum ? sum : "", buf + p->offset, p->size, what, err);
        if (rc < 0) goto out;
        if (round) *round = (uint32_t)sqlite3_column_int64(st, 2);
        n++;
    }
    if (rc != SQLITE_DONE) {
        err_set(err, "%s: %s", ps->path, sqlite3_errmsg(ps->db));
        rc = -EIO;
        goto out;
    }
    rc = n;
out:
    sqlite3_finalize(st);
    return rc;
}

int pstore_round(pstore *ps, uint32_t *round, char *err)
{
    sqlite3_stmt *st = NULL;
    int rc = store_prepare(ps->db, "SELECT COALESCE(MAX(round), 0) FROM tensors", &st, err);
    if (rc < 0) return rc;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *round = (uint32_t)sqlite3_column_int64(st, 0);
    } else {
        err_set(err, "%s: %s", ps->path, sqlite3_errmsg(ps->db));
        rc = -EIO;
    }
    sqlite3_finalize(st);
    return rc;
}

static int pstore_history(pstore *ps, const char *kind, const pstore_figures *fig, char *err)
{
    sqlite3_stmt *st = NULL;
    char now[STORE_TIME_LEN];
    store_now_iso(now);
    int rc = store_prepare(ps->db,
                           "INSERT INTO history(kind, round, examples, loss, accuracy, seconds, at)"
                           " VALUES(?, ?, ?, ?, ?, ?, ?)", &st, err);
    if (rc < 0) return rc;
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, fig->round);
    sqlite3_bind_int64(st, 3, fig->examples);
    sqlite3_bind_double(st, 4, fig->loss);
    sqlite3_bind_double(st, 5, fig->accuracy);
    sqlite3_bind_double(st, 6, fig->seconds);
    sqlite3_bind_text(st, 7, now, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) {
        err_set(err, "%s: cannot record figures: %s", ps->path, sqlite3_errmsg(ps->db));
        rc = -EIO;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Writes the selected tensors of buf as the stored set (inside a transaction). */
static int pstore_write_tensors(pstore *ps, param_sel sel, const float *buf, uint32_t round, char *err)
{
    sqlite3_stmt *st = NULL;
    int rc = store_exec(ps->db, "DELETE FROM tensors", err);
    if (rc < 0) return rc;
    rc = store_prepare(ps->db, "INSERT INTO tensors(name, shape, round, data, checksum)"
                               " VALUES(?, ?, ?, ?, ?)", &st, err);
    if (rc < 0) return rc;
    for (int i = 0; i < ps->t->n; i++) {
        const param_info *p = &ps->t->p[i];
        char shape[PSTORE_SHAPE_LEN], sum[STORE_CHECKSUM_LEN];
        if (!params_selected(p, sel)) continue;
        pstore_shape_text(p, shape);
        store_checksum_hex(buf + p->offset, p->size * sizeof *buf, sum);
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, shape, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 3, round);
        sqlite3_bind_text(st, 5, sum, -1, SQLITE_TRANSIENT);
        if (store_bind_floats(st, 4, buf + p->offset, p->size) < 0 || sqlite3_step(st) != SQLITE_DONE) {
            err_set(err, "%s: cannot store tensor %s: %s", ps->path, p->name, sqlite3_errmsg(ps->db));
            rc = -EIO;
            break;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

int pstore_commit(pstore *ps, param_sel sel, const float *buf, const pstore_figures *fig, char *err)
{
    int rc = store_begin(ps->db, err);
    if (rc < 0) return rc;
    if ((rc = pstore_write_tensors(ps, sel, buf, fig->round, err)) < 0 ||
        (rc = pstore_history(ps, "train", fig, err)) < 0 ||
        (rc = store_commit(ps->db, err)) < 0) {
        store_rollback(ps->db);
        return rc;
    }
    return 0;
}

int pstore_record_eval(pstore *ps, const pstore_figures *fig, char *err)
{
    return pstore_history(ps, "eval", fig, err);
}
