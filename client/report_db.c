/* report_db: reads one run (meta, the per-round curve, one round's
 * EvalReports) from a server.db for the report module (report.h).
 *
 * The db is opened read-only through store_open (which checks it is a sefl
 * file of the right kind and version), so sefl-eval can read the file of a
 * coordinator that is still running (WAL lets a reader see the last commit).
 * Every count and value is checked against the limits in report.h before it
 * is used: the file may come from another machine, another version, or a
 * hand edit. A stored EvalReport out of range (a client that lied before
 * the coordinator checked reports, or a hand edit) is skipped and counted,
 * never a reason to refuse the whole file.
 */
#include "client/report.h"

#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/fl/state.h"
#include "common/store.h"

/* Returns 1 when db has a table called name, 0 when not, -EIO on failure. */
static int table_exists(sqlite3 *db, const char *name)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return -EIO;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW) return 1;
    return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Copies a text column into out (cap bytes with the NUL); -ERANGE if longer
 * or holding a NUL byte. */
static int copy_text(sqlite3_stmt *st, int col, char *out, size_t cap)
{
    const unsigned char *s = sqlite3_column_text(st, col);
    int len = sqlite3_column_bytes(st, col);
    if (!s) { out[0] = 0; return 0; }
    if (len < 0 || (size_t)len >= cap || strlen((const char *)s) != (size_t)len) return -ERANGE;
    memcpy(out, s, (size_t)len + 1);
    return 0;
}

/* Reads a meta text value into out (REPORT_META_MAX bytes); an absent key
 * leaves it empty. */
static int meta_text(sqlite3 *db, const char *key, char *out, char *err)
{
    int ret = store_meta_get(db, key, out, REPORT_META_MAX, err);
    if (ret == -ENOENT) { out[0] = 0; return 0; }
    return ret;
}

/* Reads a small non-negative meta integer; absent leaves *v at -1. */
static int meta_int(sqlite3 *db, const char *path, const char *key, int *v, char *err)
{
    char buf[REPORT_META_MAX], *end;
    int ret = meta_text(db, key, buf, err);
    if (ret < 0 || !buf[0]) return ret;
    long x = strtol(buf, &end, 10);
    if (*end || x < 0 || x > 1024) {
        err_set(err, "%s: meta %s = '%s' is not a number in 0..1024", path, key, buf);
        return -ERANGE;
    }
    *v = (int)x;
    return 0;
}

static int load_meta(sqlite3 *db, const char *path, report_meta *m, char *err)
{
    int ret;
    memset(m, 0, sizeof *m);
    m->r = -1;
    m->fc1_gate = -1;
    if ((ret = meta_text(db, "arch", m->arch, err)) < 0 ||
        (ret = meta_text(db, "se_placement", m->se_placement, err)) < 0 ||
        (ret = meta_text(db, "gate", m->gate, err)) < 0 ||
        (ret = meta_text(db, "private_groups", m->private_groups, err)) < 0 ||
        (ret = meta_text(db, "kind", m->kind, err)) < 0 ||
        (ret = meta_text(db, "partition", m->partition, err)) < 0 ||
        (ret = meta_text(db, "table_hash", m->table_hash, err)) < 0 ||
        (ret = meta_text(db, "eval_clients", m->eval_clients, err)) < 0 ||
        (ret = meta_int(db, path, "r", &m->r, err)) < 0 ||
        (ret = meta_int(db, path, "fc1_gate", &m->fc1_gate, err)) < 0)
        return ret == -ENAMETOOLONG ? -ERANGE : ret;
    return 0;
}

/* store_prepare, with the error naming path as the user gave it (not the
 * absolute name SQLite holds). Returns 0 or -EIO with err. */
static int prepare(sqlite3 *db, const char *path, const char *sql, sqlite3_stmt **st, char *err)
{
    if (store_prepare(db, sql, st, NULL) == 0) return 0;
    err_set(err, "%s: %s", path, sqlite3_errmsg(db));
    return -EIO;
}

/* Copies column col of st's row into out (size bytes); a NULL or too long
 * text is the file's fault. Returns 0 or -ERANGE with err. */
static int column_text(sqlite3_stmt *st, int col, const char *path, char *out, size_t size,
                       char *err)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    if (!v || strlen((const char *)v) >= size) {
        err_set(err, "%s: a run setting is empty or longer than %zu bytes", path, size - 1);
        return -ERANGE;
    }
    snprintf(out, size, "%s", (const char *)v);
    return 0;
}

/* The run settings and their changes (state.h), when the file has them (a
 * file from before them, or a local-only baseline, has none). */
static int load_settings(sqlite3 *db, const char *path, report_run *run, char *err)
{
    sqlite3_stmt *st = NULL;
    int ret = 0, rc;
    if (sqlite3_table_column_metadata(db, NULL, "setting_changes", "round", NULL, NULL, NULL, NULL,
                                      NULL) != SQLITE_OK)
        return 0;
    if ((ret = prepare(db, path, "SELECT name, value FROM settings ORDER BY rowid", &st, err)) < 0)
        return ret;
    while (!ret && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (run->settings.n == SETTINGS_MAX) {
            err_set(err, "%s: more than %d run settings", path, SETTINGS_MAX);
            ret = -ERANGE;
            break;
        }
        setting *it = &run->settings.item[run->settings.n];
        if (!(ret = column_text(st, 0, path, it->name, sizeof it->name, err)) &&
            !(ret = column_text(st, 1, path, it->value, sizeof it->value, err)))
            run->settings.n++;
    }
    if (!ret && rc != SQLITE_DONE) {
        err_set(err, "%s: reading settings: %s", path, sqlite3_errmsg(db));
        ret = -EIO;
    }
    sqlite3_finalize(st);
    if (ret) return ret;
    if ((ret = prepare(db, path, "SELECT round, name, old_value, new_value FROM setting_changes"
                       " ORDER BY round, rowid", &st, err)) < 0)
        return ret;
    while (!ret && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        report_change *more = realloc(run->changes, (size_t)(run->nchanges + 1) * sizeof *more);
        if (!more) {
            err_set(err, "out of memory");
            ret = -ENOMEM;
            break;
        }
        run->changes = more;
        report_change *c = &more[run->nchanges];
        c->round = sqlite3_column_int(st, 0);
        if (!(ret = column_text(st, 1, path, c->name, sizeof c->name, err)) &&
            !(ret = column_text(st, 2, path, c->old_value, sizeof c->old_value, err)) &&
            !(ret = column_text(st, 3, path, c->new_value, sizeof c->new_value, err)))
            run->nchanges++;
    }
    if (!ret && rc != SQLITE_DONE) {
        err_set(err, "%s: reading setting_changes: %s", path, sqlite3_errmsg(db));
        ret = -EIO;
    }
    sqlite3_finalize(st);
    return ret;
}

/* The rows every query reads: round, examples (0..REPORT_MAX_EXAMPLES) and
 * accuracy (0..1) in range, a client name of 1..REPORT_NAME_MAX - 1 bytes
 * without a NUL. */
#define REPORT_STR(x) #x
#define REPORT_XSTR(x) REPORT_STR(x)
/* SQL has no L suffix: the limit is spelled out, and checked to agree. */
#define VALID_MAX_EXAMPLES "100000000"
_Static_assert(REPORT_MAX_EXAMPLES == 100000000L, "VALID_MAX_EXAMPLES must equal it");
#define VALID_ROW                                                                              \
    "(typeof(examples) = 'integer' AND typeof(accuracy) IN ('real', 'integer')"               \
    " AND typeof(round) = 'integer' AND examples >= 0"                                        \
    " AND examples <= " VALID_MAX_EXAMPLES " AND accuracy >= 0 AND accuracy <= 1" \
    " AND round >= 0 AND round <= 2147483647 AND typeof(client) = 'text'"                    \
    " AND length(CAST(client AS BLOB)) BETWEEN 1 AND " REPORT_XSTR(REPORT_NAME_MAX) " - 1"     \
    " AND instr(CAST(client AS BLOB), X'00') = 0)"
/* Rows of a client not in the exclusion list bound to :excl (report.h's
 * newline-delimited form; the empty text when nothing is excluded). */
#define KEPT_ROW " AND instr(:excl, char(10) || client || char(10)) = 0"

/* Binds the exclusion list (NULL: none) to st's :excl. */
static void bind_excl(sqlite3_stmt *st, const char *exclude)
{
    sqlite3_bind_text(st, sqlite3_bind_parameter_index(st, ":excl"), exclude ? exclude : "", -1,
                      SQLITE_STATIC);
}

/* Counts the eval reports out of range, which every later query skips, and
 * says so on stderr. */
static int count_skipped(sqlite3 *db, const char *path, report_run *run, char *err)
{
    sqlite3_stmt *st = NULL;
    int ret = 0;
    if (prepare(db, path, "SELECT COUNT(*) FROM eval_reports WHERE NOT " VALID_ROW, &st, err) < 0)
        return -EIO;
    if (sqlite3_step(st) != SQLITE_ROW) {
        err_set(err, "%s: checking eval_reports: %s", path, sqlite3_errmsg(db));
        ret = -EIO;
    } else {
        run->skipped = (long)sqlite3_column_int64(st, 0);
        if (run->skipped > 0)
            log_warn("%s: skipped %ld eval reports with a round, examples (0..%ld), accuracy "
                     "(0..1) or client name out of range", path, run->skipped,
                     REPORT_MAX_EXAMPLES);
    }
    sqlite3_finalize(st);
    return ret;
}

/* Runs a one-row, one-integer query with an optional int parameter (?1)
 * and the exclusion list (:excl, when the query names it) on the file at
 * path. Returns 0 or -EIO with err. */
static int query_count(sqlite3 *db, const char *path, const char *sql, int bind, int param,
                       const char *exclude, sqlite3_int64 *out, char *err)
{
    sqlite3_stmt *st = NULL;
    if (prepare(db, path, sql, &st, err) < 0) return -EIO;
    if (bind) sqlite3_bind_int(st, 1, param);
    bind_excl(st, exclude);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW) return 0;
    err_set(err, "%s: %s", path, sqlite3_errmsg(db));
    return -EIO;
}

static int load_curve(sqlite3 *db, const char *path, const char *exclude, report_run *run,
                      char *err)
{
    sqlite3_int64 n = 0;
    if (query_count(db, path, "SELECT COUNT(DISTINCT round) FROM eval_reports WHERE " VALID_ROW
                    KEPT_ROW, 0, 0, exclude, &n, err) < 0)
        return -EIO;
    sqlite3_int64 all = n;
    if (n == 0 && exclude && exclude[1] &&
        query_count(db, path, "SELECT COUNT(*) FROM eval_reports WHERE " VALID_ROW, 0, 0, NULL,
                    &all, err) < 0)
        return -EIO;
    if (n == 0) {
        if (all > 0)
            err_set(err, "%s has no eval reports of a client outside the excluded ones", path);
        else if (run->skipped)
            err_set(err, "%s has no eval reports in range (%ld skipped)", path, run->skipped);
        else
            err_set(err, "%s has no eval reports yet (no round was evaluated)", path);
        return -EINVAL;
    }
    if (n > REPORT_MAX_ROUNDS) {
        err_set(err, "%s has %lld evaluated rounds, over the limit of %d", path, (long long)n,
                REPORT_MAX_ROUNDS);
        return -ERANGE;
    }
    run->curve = calloc((size_t)n, sizeof *run->curve);
    if (!run->curve) { err_set(err, "out of memory"); return -ENOMEM; }

    sqlite3_stmt *st = NULL;
    int ret = 0;
    if (prepare(db, path,
                "SELECT round, COUNT(*), SUM(examples), SUM(accuracy * examples) FROM eval_reports"
                " WHERE " VALID_ROW KEPT_ROW " GROUP BY round ORDER BY round", &st, err) < 0)
        return -EIO;
    bind_excl(st, exclude);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        /* A writer may have committed a new round since the count. */
        if (run->ncurve == n) break;
        report_point *p = &run->curve[run->ncurve++];
        p->round = sqlite3_column_int(st, 0);
        sqlite3_int64 clients = sqlite3_column_int64(st, 1);
        if (clients > REPORT_MAX_CLIENTS) {
            err_set(err, "%s: round %d has %lld eval reports, over the limit of %d", path,
                    p->round, (long long)clients, REPORT_MAX_CLIENTS);
            ret = -ERANGE;
            goto out;
        }
        p->clients = (int)clients;
        p->examples = (long)sqlite3_column_int64(st, 2);
        p->weighted_accuracy = p->examples > 0 ? sqlite3_column_double(st, 3) / (double)p->examples
                                               : NAN;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        err_set(err, "%s: reading eval_reports: %s", path, sqlite3_errmsg(db));
        ret = -EIO;
    }
out:
    sqlite3_finalize(st);
    return ret;
}

static int load_round(sqlite3 *db, const char *path, const char *exclude, report_run *run,
                      char *err)
{
    sqlite3_int64 n = 0, excluded = 0;
    if (query_count(db, path, "SELECT COUNT(*) FROM eval_reports WHERE round = ?1 AND " VALID_ROW
                    KEPT_ROW, 1, run->round, exclude, &n, err) < 0 ||
        query_count(db, path, "SELECT COUNT(*) FROM eval_reports WHERE round = ?1 AND " VALID_ROW
                    " AND NOT (1" KEPT_ROW ")", 1, run->round, exclude, &excluded, err) < 0)
        return -EIO;
    run->excluded = (long)excluded;
    if (n == 0) {
        err_set(err, "%s has no eval reports%s for round %d (evaluated rounds: %d..%d, %d of them)",
                path, excluded ? " outside the excluded clients" : "", run->round,
                run->curve[0].round, run->curve[run->ncurve - 1].round, run->ncurve);
        return -ERANGE;
    }
    if (n > REPORT_MAX_CLIENTS) {
        err_set(err, "%s: round %d has %lld eval reports, over the limit of %d", path, run->round,
                (long long)n, REPORT_MAX_CLIENTS);
        return -ERANGE;
    }
    run->c = calloc((size_t)n, sizeof *run->c);
    if (!run->c) { err_set(err, "out of memory"); return -ENOMEM; }

    sqlite3_stmt *st = NULL;
    int ret = 0;
    if (prepare(db, path,
                "SELECT client, examples, accuracy FROM eval_reports WHERE round = ?1 AND "
                VALID_ROW KEPT_ROW " ORDER BY client", &st, err) < 0)
        return -EIO;
    sqlite3_bind_int(st, 1, run->round);
    bind_excl(st, exclude);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && run->n < n) {
        report_client *c = &run->c[run->n];
        if (sqlite3_column_type(st, 0) == SQLITE_NULL ||
            copy_text(st, 0, c->name, REPORT_NAME_MAX) < 0 || !c->name[0]) {
            err_set(err, "%s: round %d has a client name that is empty or longer than %d bytes",
                    path, run->round, REPORT_NAME_MAX - 1);
            ret = -ERANGE;
            goto out;
        }
        c->examples = (long)sqlite3_column_int64(st, 1);
        c->accuracy = sqlite3_column_double(st, 2);
        run->n++;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        err_set(err, "%s: reading eval_reports: %s", path, sqlite3_errmsg(db));
        ret = -EIO;
    }
out:
    sqlite3_finalize(st);
    return ret;
}

/* How many clients the coordinator has seen, so that an evaluation of a
 * sample (--eval-clients) says what it is a sample of; -1 without a clients
 * table (sefl-sim --local-only). */
static int load_seen(sqlite3 *db, const char *path, report_run *run, char *err)
{
    run->seen = -1;
    int ret = table_exists(db, "clients");
    if (ret <= 0) return ret < 0 ? -EIO : 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM clients", -1, &st, NULL) != SQLITE_OK) {
        err_set(err, "cannot read %s: %s", path, sqlite3_errmsg(db));
        return -EIO;
    }
    if (sqlite3_step(st) == SQLITE_ROW) run->seen = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return 0;
}

/* The privacy spent by a DP-FedAvg run (the coordinator's privacy table,
 * absent from other runs) up to the selected round, and the run's dp-clip
 * setting (NAN in a file without settings). */
static int load_privacy(sqlite3 *db, const char *path, report_run *run, char *err)
{
    int ret = table_exists(db, "privacy");
    if (ret < 0) err_set(err, "cannot read %s: %s", path, sqlite3_errmsg(db));
    if (ret <= 0) return ret;
    ret = 0;
    sqlite3_stmt *st = NULL;
    if (prepare(db, path,
                "SELECT epsilon, delta, noise, sample_rate, round FROM privacy WHERE round <= ?"
                " ORDER BY round DESC LIMIT 1", &st, err) < 0)
        return -EIO;
    sqlite3_bind_int(st, 1, run->round);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        run->dp = 1;
        run->dp_epsilon = sqlite3_column_double(st, 0);
        run->dp_delta = sqlite3_column_double(st, 1);
        run->dp_noise = sqlite3_column_double(st, 2);
        run->dp_rate = sqlite3_column_double(st, 3);
        run->dp_round = sqlite3_column_int(st, 4);
        run->dp_clip = NAN;
        for (int i = 0; i < run->settings.n; i++)
            if (!strcmp(run->settings.item[i].name, "dp-clip"))
                run->dp_clip = strtod(run->settings.item[i].value, NULL);
    } else if (rc != SQLITE_DONE) {
        err_set(err, "%s: reading privacy: %s", path, sqlite3_errmsg(db));
        ret = -EIO;
    }
    sqlite3_finalize(st);
    return ret;
}

int report_load_run(const char *path, int round, const char *exclude, report_run *run, char *err)
{
    /* Both the coordinator's file and the one sefl-sim --local-only writes
     * have this schema; anything else is refused by store_open. */
    static const store_schema schema = { "server", "local", STATE_SCHEMA_VERSION, NULL };
    memset(run, 0, sizeof *run);
    sqlite3 *db = NULL;
    int ret;

    if (strlen(path) >= sizeof run->db) {
        err_set(err, "db path is longer than %zu bytes", sizeof run->db - 1);
        return -ERANGE;
    }
    memcpy(run->db, path, strlen(path) + 1);
    if ((ret = store_open(path, &schema, STORE_READONLY, &db, NULL, err)) < 0) goto out;
    ret = table_exists(db, "eval_reports");
    if (ret < 0) {
        err_set(err, "cannot read %s: %s", path, sqlite3_errmsg(db));
        goto out;
    }
    if (!ret) {
        err_set(err, "%s has no eval_reports table: is it a sefl server.db?", path);
        ret = -EINVAL;
        goto out;
    }
    if ((ret = load_meta(db, path, &run->meta, err)) < 0) goto out;
    if ((ret = load_settings(db, path, run, err)) < 0) goto out;
    if ((ret = count_skipped(db, path, run, err)) < 0) goto out;
    if ((ret = load_curve(db, path, exclude, run, err)) < 0) goto out;
    run->round = round >= 0 ? round : run->curve[run->ncurve - 1].round;
    if ((ret = load_round(db, path, exclude, run, err)) < 0) goto out;
    if ((ret = load_seen(db, path, run, err)) < 0) goto out;
    ret = load_privacy(db, path, run, err);
out:
    store_close(db);
    return ret;
}

void report_run_free(report_run *run)
{
    if (!run) return;
    free(run->changes);
    run->changes = NULL;
    run->nchanges = 0;
    free(run->curve);
    free(run->c);
    run->curve = NULL;
    run->c = NULL;
    run->n = run->ncurve = 0;
}
