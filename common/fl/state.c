/* state: server.db, the coordinator's durable state; see state.h, whose
 * schema comment sefl-eval and scripts read the file by. */
#include "common/fl/state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/store.h"

struct state {
    sqlite3 *db;
    const param_table *t;       /* borrowed from the config: outlives the state */
    char path[256];             /* for messages */
};

static const char state_ddl[] =
    "CREATE TABLE rounds(round INTEGER PRIMARY KEY, committed_at TEXT NOT NULL,"
    " clients INTEGER NOT NULL, examples INTEGER NOT NULL, train_loss REAL,"
    " train_accuracy REAL, seconds REAL, coord_seconds REAL, attempt INTEGER);"
    "CREATE TABLE models(round INTEGER PRIMARY KEY, params BLOB NOT NULL, checksum TEXT NOT NULL);"
    "CREATE TABLE clients(name TEXT PRIMARY KEY, first_seen TEXT, last_seen TEXT,"
    " rounds INTEGER NOT NULL DEFAULT 0, examples INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE eval_reports(round INTEGER NOT NULL, client TEXT NOT NULL,"
    " examples INTEGER NOT NULL, accuracy REAL NOT NULL, loss REAL NOT NULL,"
    " received_at TEXT, PRIMARY KEY(round, client));";

/* The meta entries that bind a file to one model and private set, as text
 * (the form store_meta_get returns), in the order they are checked. */
typedef struct {
    const char *key;
    char value[64];
    const char *flag;           /* the command-line option that sets it, for the message */
    const char *absent;         /* the value of a file made before the key existed, or NULL */
} state_meta_item;

enum { STATE_META_N = 10 };

static void state_meta_items(const state_config *cfg, state_meta_item it[STATE_META_N])
{
    const param_table *t = cfg->t;
    it[0] = (state_meta_item){ .key = "arch", .flag = "the architecture" };
    snprintf(it[0].value, sizeof it[0].value, "%s", t->arch);
    it[1] = (state_meta_item){ .key = "r", .flag = "--r" };
    snprintf(it[1].value, sizeof it[1].value, "%d", t->r);
    it[2] = (state_meta_item){ .key = "fc1_gate", .flag = "the fc1 gate" };
    snprintf(it[2].value, sizeof it[2].value, "%d", t->fc1_gate);
    it[3] = (state_meta_item){ .key = "table_hash", .flag = "the parameter table" };
    snprintf(it[3].value, sizeof it[3].value, "%016" PRIx64, t->hash);
    it[4] = (state_meta_item){ .key = "private_groups", .flag = "--private" };
    snprintf(it[4].value, sizeof it[4].value, "%s", params_private_name(cfg->private_mask));
    it[5] = (state_meta_item){ .key = "init_seed", .flag = "--seed" };
    snprintf(it[5].value, sizeof it[5].value, "%" PRIu64, cfg->init_seed);
    it[6] = (state_meta_item){ .key = "local_schedule", .flag = "--local-schedule", .absent = "joint" };
    if (cfg->private_epochs > 0)
        snprintf(it[6].value, sizeof it[6].value, "private-first:%d", cfg->private_epochs);
    else
        snprintf(it[6].value, sizeof it[6].value, "joint");
    it[7] = (state_meta_item){ .key = "private_lr", .flag = "--private-lr", .absent = "lr" };
    if (cfg->private_lr > 0) snprintf(it[7].value, sizeof it[7].value, "%g", (double)cfg->private_lr);
    else snprintf(it[7].value, sizeof it[7].value, "lr");
    it[8] = (state_meta_item){ .key = "wire_dtype", .flag = "--wire-dtype", .absent = "f32" };
    snprintf(it[8].value, sizeof it[8].value, "%s", cfg->wire_dtype ? cfg->wire_dtype : "f32");
    it[9] = (state_meta_item){ .key = "update_dtype", .flag = "--update-dtype", .absent = "f32" };
    snprintf(it[9].value, sizeof it[9].value, "%s", cfg->update_dtype ? cfg->update_dtype : "f32");
}

/* Inserts the model of round into models; part of a caller's transaction. */
static int state_put_model(state *s, uint32_t round, const float *buf, char *err)
{
    char sum[STORE_CHECKSUM_LEN];
    store_checksum_hex(buf, s->t->total * sizeof(float), sum);
    sqlite3_stmt *st;
    int ret = store_prepare(s->db, "INSERT INTO models(round, params, checksum) VALUES(?, ?, ?)",
                            &st, err);
    if (ret) return ret;
    sqlite3_bind_int64(st, 1, round);
    sqlite3_bind_text(st, 3, sum, -1, SQLITE_STATIC);
    if (store_bind_floats(st, 2, buf, s->t->total) || sqlite3_step(st) != SQLITE_DONE) {
        err_set(err, "%s: storing the model of round %u: %s", s->path, round,
                sqlite3_errmsg(s->db));
        ret = -EIO;
    }
    sqlite3_finalize(st);
    return ret;
}

/* Writes meta and the round-0 model of a new file in one transaction. */
static int state_init_file(state *s, const state_config *cfg, const float *init, char *err)
{
    state_meta_item it[STATE_META_N];
    state_meta_items(cfg, it);
    int ret = store_begin(s->db, err);
    if (ret) return ret;
    for (int i = 0; i < STATE_META_N && !ret; i++) ret = store_meta_set(s->db, it[i].key, it[i].value, err);
    if (!ret && cfg->partition) ret = store_meta_set(s->db, "partition", cfg->partition, err);
    if (!ret) ret = state_put_model(s, 0, init, err);
    if (!ret) ret = store_commit(s->db, err);
    if (ret) store_rollback(s->db);
    return ret;
}

/* Refuses a file made for another model or private set: resuming it would
 * mix incompatible parameters or leak what the old run kept private. */
static int state_check_meta(state *s, const state_config *cfg, char *err)
{
    state_meta_item it[STATE_META_N];
    state_meta_items(cfg, it);
    for (int i = 0; i < STATE_META_N; i++) {
        char have[STORE_META_MAX];
        int ret = store_meta_get(s->db, it[i].key, have, sizeof have, err);
        if (ret == -ENOENT && it[i].absent) snprintf(have, sizeof have, "%s", it[i].absent);
        else if (ret) return ret == -ENOENT ? -EBADMSG : ret;
        if (strcmp(have, it[i].value)) {
            err_set(err, "%s: made with %s = %s, this run has %s (%s); use the same "
                    "settings or another --db", s->path, it[i].key, have, it[i].value,
                    it[i].flag);
            return -EINVAL;
        }
    }
    return 0;
}

int state_open(const char *path, const state_config *cfg, const float *init, state **out,
               char *err)
{
    *out = NULL;
    state *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->t = cfg->t;
    snprintf(s->path, sizeof s->path, "%s", path);
    store_schema schema = {
        .kind = cfg->kind ? cfg->kind : "server",
        .version = STATE_SCHEMA_VERSION,
        .ddl = state_ddl,
    };
    int created = 0;
    int ret = store_open(path, &schema, STORE_CREATE, &s->db, &created, err);
    if (!ret) ret = created ? state_init_file(s, cfg, init, err) : state_check_meta(s, cfg, err);
    /* Not a result of training: recorded for sefl-eval, whatever an earlier
     * run of the file had. */
    if (!ret && cfg->eval_clients) ret = store_meta_set(s->db, "eval_clients", cfg->eval_clients, err);
    if (ret) {
        state_close(s);
        return ret;
    }
    *out = s;
    return 0;
}

void state_close(state *s)
{
    if (!s) return;
    store_close(s->db);
    free(s);
}

int state_load(state *s, float *buf, uint32_t *round, char *err)
{
    sqlite3_stmt *st = NULL;
    int ret = store_prepare(s->db,
                            "SELECT (SELECT coalesce(max(round), 0) FROM rounds), round, params,"
                            " checksum FROM models ORDER BY round DESC LIMIT 1",
                            &st, err);
    if (ret) return ret;
    if (sqlite3_step(st) != SQLITE_ROW) {
        err_set(err, "%s: holds no model; the file is damaged, move it away", s->path);
        ret = -EBADMSG;
        goto out;
    }
    long long last = sqlite3_column_int64(st, 0), mround = sqlite3_column_int64(st, 1);
    if (last != mround || last < 0 || last > UINT32_MAX) {
        err_set(err, "%s: last committed round %lld but newest model is of round %lld; "
                "the file is damaged", s->path, last, mround);
        ret = -EBADMSG;
        goto out;
    }
    char what[320];
    snprintf(what, sizeof what, "%s: model of round %lld", s->path, last);
    ret = store_column_floats(st, 2, (const char *)sqlite3_column_text(st, 3), buf, s->t->total,
                              what, err);
    if (!ret) *round = (uint32_t)last;
out:
    sqlite3_finalize(st);
    return ret;
}

/* Runs one prepared statement to completion; part of a transaction. */
static int state_step(state *s, sqlite3_stmt *st, char *err)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) return 0;
    err_set(err, "%s: %s", s->path, sqlite3_errmsg(s->db));
    return -EIO;
}

int state_commit_round(state *s, const state_round *r, const float *buf,
                       const state_participant *p, int n, char *err)
{
    char now[STORE_TIME_LEN];
    store_now_iso(now);
    sqlite3_stmt *st;
    int ret = store_begin(s->db, err);
    if (ret) return ret;

    if ((ret = store_prepare(s->db,
                             "INSERT INTO rounds(round, committed_at, clients, examples, train_loss,"
                             " train_accuracy, seconds, coord_seconds, attempt)"
                             " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             &st, err)))
        goto out;
    sqlite3_bind_int64(st, 1, r->round);
    sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, r->clients);
    sqlite3_bind_int64(st, 4, r->examples);
    sqlite3_bind_double(st, 5, r->train_loss);
    sqlite3_bind_double(st, 6, r->train_accuracy);
    sqlite3_bind_double(st, 7, r->seconds);
    sqlite3_bind_double(st, 8, r->coord_seconds);
    sqlite3_bind_int(st, 9, r->attempt);
    if ((ret = state_step(s, st, err))) goto out;
    if ((ret = state_put_model(s, r->round, buf, err))) goto out;

    for (int i = 0; i < n; i++) {
        if ((ret = store_prepare(s->db,
                                 "INSERT INTO clients(name, first_seen, last_seen, rounds, examples)"
                                 " VALUES(?1, ?2, ?2, 1, ?3) ON CONFLICT(name) DO UPDATE SET"
                                 " last_seen = ?2, rounds = rounds + 1, examples = examples + ?3",
                                 &st, err)))
            goto out;
        sqlite3_bind_text(st, 1, p[i].name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, p[i].examples);
        if ((ret = state_step(s, st, err))) goto out;
    }

    if ((ret = store_prepare(s->db,
                             "DELETE FROM models WHERE round NOT IN"
                             " (SELECT round FROM models ORDER BY round DESC LIMIT ?)",
                             &st, err)))
        goto out;
    sqlite3_bind_int(st, 1, STATE_KEEP_MODELS);
    if ((ret = state_step(s, st, err))) goto out;
    ret = store_commit(s->db, err);
out:
    if (ret) store_rollback(s->db);
    return ret;
}

int state_round_times(state *s, uint32_t round, double seconds, double coord_seconds, char *err)
{
    sqlite3_stmt *st;
    int ret = store_prepare(s->db, "UPDATE rounds SET seconds = ?, coord_seconds = ? WHERE round = ?",
                            &st, err);
    if (ret) return ret;
    sqlite3_bind_double(st, 1, seconds);
    sqlite3_bind_double(st, 2, coord_seconds);
    sqlite3_bind_int64(st, 3, round);
    return state_step(s, st, err);
}

int state_client_seen(state *s, const char *name, char *err)
{
    char now[STORE_TIME_LEN];
    store_now_iso(now);
    sqlite3_stmt *st;
    int ret = store_prepare(s->db,
                            "INSERT INTO clients(name, first_seen, last_seen) VALUES(?1, ?2, ?2)"
                            " ON CONFLICT(name) DO UPDATE SET last_seen = ?2",
                            &st, err);
    if (ret) return ret;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
    return state_step(s, st, err);
}

int state_eval_report(state *s, uint32_t round, const char *client, uint32_t examples,
                      double accuracy, double loss, char *err)
{
    char now[STORE_TIME_LEN];
    store_now_iso(now);
    sqlite3_stmt *st;
    int ret = store_prepare(s->db,
                            "INSERT OR REPLACE INTO eval_reports(round, client, examples, accuracy,"
                            " loss, received_at) VALUES(?, ?, ?, ?, ?, ?)",
                            &st, err);
    if (ret) return ret;
    sqlite3_bind_int64(st, 1, round);
    sqlite3_bind_text(st, 2, client, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, examples);
    sqlite3_bind_double(st, 4, accuracy);
    sqlite3_bind_double(st, 5, loss);
    sqlite3_bind_text(st, 6, now, -1, SQLITE_STATIC);
    return state_step(s, st, err);
}
