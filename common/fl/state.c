/* state: server.db, the coordinator's durable state; see state.h, whose
 * schema comment sefl-eval and scripts read the file by. */
#include "common/fl/state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

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

/* Tables added after schema version 1: created in a new file and, when
 * missing, in an older one on open (they only ever gain rows). */
static const char state_ddl_added[] =
    "CREATE TABLE IF NOT EXISTS opt_state(round INTEGER PRIMARY KEY, state BLOB NOT NULL,"
    " checksum TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS privacy(round INTEGER PRIMARY KEY, sample_rate REAL NOT NULL,"
    " noise REAL NOT NULL, epsilon REAL NOT NULL, delta REAL NOT NULL);"
    "CREATE TABLE IF NOT EXISTS penalties(client TEXT PRIMARY KEY, until_round INTEGER NOT NULL,"
    " refused_round INTEGER NOT NULL, reason TEXT NOT NULL, penalised_at TEXT NOT NULL);";
/* The run settings (settings.h) and their changes. Apart from state_ddl
 * because a file made before they existed gets them on its next open. */
static const char state_settings_ddl[] =
    "CREATE TABLE IF NOT EXISTS settings(name TEXT PRIMARY KEY, value TEXT NOT NULL,"
    " since_round INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS setting_changes(round INTEGER NOT NULL, name TEXT NOT NULL,"
    " old_value TEXT NOT NULL, new_value TEXT NOT NULL, changed_at TEXT NOT NULL);";

/* The meta entries that bind a file to one model and private set, as text
 * (the form store_meta_get returns), in the order they are checked. */
typedef struct {
    const char *key;
    char value[64];
    const char *flag;           /* the command-line option that sets it, for the message */
    const char *absent;         /* the value of a file made before the key existed, or NULL */
} state_meta_item;

enum { STATE_META_N = 10 };

/* Appends (key, value) to it[n] unless value is empty; absent as in
 * state_meta_item. Returns the new count. */
static int state_meta_add(state_meta_item *it, int n, const char *key, const char *flag,
                          const char *absent, const char *value)
{
    if (!value[0]) return n;
    it[n] = (state_meta_item){ .key = key, .flag = flag, .absent = absent };
    snprintf(it[n].value, sizeof it[n].value, "%s", value);
    return n + 1;
}

/* Fills it and returns how many items there are, in the order they are
 * checked: the architecture and its own options first, so that a resume
 * with another --gate says so rather than that r or the table differ. An
 * option the architecture does not have (se_placement, gate: "") is not
 * recorded, so a cnn-se file's meta is what it was before those options
 * existed. */
static int state_meta_items(const state_config *cfg, state_meta_item it[STATE_META_N])
{
    const param_table *t = cfg->t;
    char r[16], gate[16], hash[24], seed[24], sched[32], plr[32];
    snprintf(r, sizeof r, "%d", t->r);
    snprintf(gate, sizeof gate, "%d", t->fc1_gate);
    snprintf(hash, sizeof hash, "%016" PRIx64, t->hash);
    snprintf(seed, sizeof seed, "%" PRIu64, cfg->init_seed);
    if (cfg->private_epochs > 0) snprintf(sched, sizeof sched, "private-first:%d", cfg->private_epochs);
    else snprintf(sched, sizeof sched, "joint");
    if (cfg->private_lr > 0) snprintf(plr, sizeof plr, "%g", (double)cfg->private_lr);
    else snprintf(plr, sizeof plr, "lr");
    int n = state_meta_add(it, 0, "arch", "--arch", NULL, t->arch);
    n = state_meta_add(it, n, "se_placement", "--se-placement", NULL, t->se_placement);
    n = state_meta_add(it, n, "gate", "--gate", NULL, t->gate);
    n = state_meta_add(it, n, "r", "--r", NULL, r);
    n = state_meta_add(it, n, "fc1_gate", "the fc1 gate", NULL, gate);
    n = state_meta_add(it, n, "table_hash", "the parameter table", NULL, hash);
    n = state_meta_add(it, n, "private_groups", "--private", NULL,
                       params_private_name(cfg->private_mask));
    n = state_meta_add(it, n, "init_seed", "--seed", NULL, seed);
    n = state_meta_add(it, n, "local_schedule", "--local-schedule", "joint", sched);
    return state_meta_add(it, n, "private_lr", "--private-lr", "lr", plr);
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

/* Runs one prepared statement to completion; part of a transaction. */
static int state_step(state *s, sqlite3_stmt *st, char *err)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) return 0;
    err_set(err, "%s: %s", s->path, sqlite3_errmsg(s->db));
    return -EIO;
}

/* Reads the recorded value of setting name into buf (SETTINGS_VALUE_MAX).
 * Returns 0, -ENOENT when there is none, or a SQLite failure. */
static int state_get_setting(state *s, const char *name, char *buf, char *err)
{
    sqlite3_stmt *st;
    int ret = store_prepare(s->db, "SELECT value FROM settings WHERE name = ?", &st, err);
    if (ret) return ret;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        if (!v) {
            err_set(err, "%s: reading setting %s: %s", s->path, name, sqlite3_errmsg(s->db));
            ret = sqlite3_errcode(s->db) == SQLITE_NOMEM ? -ENOMEM : -EIO;
        } else {
            snprintf(buf, SETTINGS_VALUE_MAX, "%s", (const char *)v);
        }
    } else if (rc == SQLITE_DONE) {
        ret = -ENOENT;
    } else {
        err_set(err, "%s: reading setting %s: %s", s->path, name, sqlite3_errmsg(s->db));
        ret = -EIO;
    }
    sqlite3_finalize(st);
    return ret;
}

/* Records name = value from round on; old (the value it replaces, NULL when
 * there was none) also goes into setting_changes. Part of a transaction. */
static int state_set_setting(state *s, const char *name, const char *old, const char *value,
                             uint32_t round, char *err)
{
    sqlite3_stmt *st;
    int ret = store_prepare(s->db, "INSERT OR REPLACE INTO settings(name, value, since_round)"
                            " VALUES(?, ?, ?)", &st, err);
    if (ret) return ret;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, round);
    if ((ret = state_step(s, st, err)) || !old) return ret;
    char now[STORE_TIME_LEN];
    store_now_iso(now);
    if ((ret = store_prepare(s->db, "INSERT INTO setting_changes(round, name, old_value, new_value,"
                             " changed_at) VALUES(?, ?, ?, ?, ?)", &st, err)))
        return ret;
    sqlite3_bind_int64(st, 1, round);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, old, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, value, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, now, -1, SQLITE_STATIC);
    return state_step(s, st, err);
}

/* The one integer sql answers, with round bound to its parameter when it
 * has one. Returns 0, or negative with err. */
static int state_query_int(state *s, const char *sql, uint32_t round, long long *out, char *err)
{
    sqlite3_stmt *st;
    int ret = store_prepare(s->db, sql, &st, err);
    if (ret) return ret;
    if (sqlite3_bind_parameter_count(st) > 0) sqlite3_bind_int64(st, 1, round);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
    } else {
        err_set(err, "%s: %s", s->path, sqlite3_errmsg(s->db));
        ret = -EIO;
    }
    sqlite3_finalize(st);
    return ret;
}

/* The last committed round (0 before the first). */
static int state_last_round(state *s, uint32_t *round, char *err)
{
    long long v = 0;
    int ret = state_query_int(s, "SELECT coalesce(max(round), 0) FROM rounds", 0, &v, err);
    if (!ret) *round = (uint32_t)v;
    return ret;
}

/* Compares cfg->run with the recorded settings of an existing file and
 * records what is new or (with allow_change) changed, in one transaction. */
static int state_check_settings(state *s, const state_config *cfg, char *err)
{
    uint32_t last = 0;
    int ret = store_begin(s->db, err);
    if (ret) return ret;
    if ((ret = store_exec(s->db, state_settings_ddl, err)) || (ret = state_last_round(s, &last, err)))
        goto out;
    for (int i = 0; cfg->run && i < cfg->run->n; i++) {
        const setting *it = &cfg->run->item[i];
        char have[SETTINGS_VALUE_MAX];
        ret = state_get_setting(s, it->name, have, err);
        if (ret == -ENOENT) {
            ret = state_set_setting(s, it->name, NULL, it->value, last, err);
        } else if (!ret && strcmp(have, it->value)) {
            if (!cfg->allow_change) {
                err_set(err, "%s: the run was made with --%s %s, this one has --%s %s; give the "
                        "same value, or --allow-change to record the change from round %u",
                        s->path, it->name, have, it->name, it->value, last + 1);
                ret = -EINVAL;
                goto out;
            }
            log_warn("setting --%s changed from %s to %s from round %u (--allow-change)", it->name,
                     have, it->value, last + 1);
            ret = state_set_setting(s, it->name, have, it->value, last + 1, err);
        }
        if (ret) goto out;
    }
    ret = store_commit(s->db, err);
out:
    if (ret) store_rollback(s->db);
    return ret;
}

/* A new file's run id: 128 random bits in hex, so that monitoring can
 * tell two runs apart even when all their settings are equal. */
static int state_new_run_id(state *s, char *err)
{
    uint8_t b[STATE_RUN_ID_LEN / 2];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        err_set(err, "getrandom: %s", strerror(errno));
        return -EIO;
    }
    char hex[STATE_RUN_ID_LEN + 1];
    for (size_t i = 0; i < sizeof b; i++) snprintf(hex + 2 * i, 3, "%02x", b[i]);
    return store_meta_set(s->db, "run_id", hex, err);
}

/* Writes meta and the round-0 model of a new file in one transaction. */
static int state_init_file(state *s, const state_config *cfg, const float *init, char *err)
{
    state_meta_item it[STATE_META_N];
    const int n = state_meta_items(cfg, it);
    int ret = store_begin(s->db, err);
    if (ret) return ret;
    for (int i = 0; i < n && !ret; i++) ret = store_meta_set(s->db, it[i].key, it[i].value, err);
    if (!ret && cfg->partition) ret = store_meta_set(s->db, "partition", cfg->partition, err);
    if (!ret) ret = state_new_run_id(s, err);
    if (!ret) ret = store_exec(s->db, state_settings_ddl, err);
    for (int i = 0; cfg->run && i < cfg->run->n && !ret; i++)
        ret = state_set_setting(s, cfg->run->item[i].name, NULL, cfg->run->item[i].value, 0, err);
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
    const int n = state_meta_items(cfg, it);
    for (int i = 0; i < n; i++) {
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
    if (!ret && !created) ret = state_check_settings(s, cfg, err);
    if (!ret) ret = store_exec(s->db, state_ddl_added, err);
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

int state_run_id(state *s, char out[STATE_RUN_ID_LEN + 1], char *err)
{
    int ret = store_meta_get(s->db, "run_id", out, STATE_RUN_ID_LEN + 1, err);
    if (ret == -ENOENT) {
        out[0] = 0;
        return 0;
    }
    return ret;
}

/* Reads the meta integer key of s's file into *v (0..max); -EBADMSG with
 * err when absent or not such a number. */
static int state_meta_long(state *s, const char *key, unsigned long long max,
                           unsigned long long *v, char *err)
{
    char buf[STORE_META_MAX], *end;
    int ret = store_meta_get(s->db, key, buf, sizeof buf, err);
    if (ret == -ENOENT || ret == -ENAMETOOLONG) {
        err_set(err, "%s: meta %s is missing or too long; not a complete server.db", s->path, key);
        return -EBADMSG;
    }
    if (ret) return ret;
    errno = 0;
    *v = strtoull(buf, &end, 10);
    if (errno || end == buf || *end || buf[0] == '-' || *v > max) {
        err_set(err, "%s: meta %s = '%s' is not a number in 0..%llu", s->path, key, buf, max);
        return -EBADMSG;
    }
    return 0;
}

int state_open_read(const char *path, state_run *run, state **out, char *err)
{
    *out = NULL;
    memset(run, 0, sizeof *run);
    state *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->t = &run->t;
    snprintf(s->path, sizeof s->path, "%s", path);
    store_schema schema = { .kind = "server", .version = STATE_SCHEMA_VERSION, .ddl = state_ddl };
    char arch[STORE_META_MAX], priv[STORE_META_MAX], hash[STORE_META_MAX];
    unsigned long long r = 0, gate = 0, seed = 0;
    int ret = store_open(path, &schema, STORE_READONLY, &s->db, NULL, err);
    if (!ret && ((ret = store_meta_get(s->db, "arch", arch, sizeof arch, err)) ||
                 (ret = store_meta_get(s->db, "private_groups", priv, sizeof priv, err)) ||
                 (ret = store_meta_get(s->db, "table_hash", hash, sizeof hash, err)))) {
        if (ret == -ENOENT || ret == -ENAMETOOLONG) {
            err_set(err, "%s: meta lacks arch, private_groups or table_hash; not a complete"
                    " server.db", path);
            ret = -EBADMSG;
        }
    }
    if (!ret) ret = state_meta_long(s, "r", 64, &r, err);
    if (!ret) ret = state_meta_long(s, "fc1_gate", 1, &gate, err);
    if (!ret) ret = state_meta_long(s, "init_seed", UINT64_MAX, &seed, err);
    if (ret) goto out;
    /* The architecture's own options are in meta only when it has them. */
    model_opts o = model_opts_default();
    char tmp[SEFL_ERRLEN], opt[2][STORE_META_MAX] = { "", "" };
    static const char *opt_keys[2] = { "se_placement", "gate" };
    for (int i = 0; i < 2 && !ret; i++) {
        ret = store_meta_get(s->db, opt_keys[i], opt[i], sizeof opt[i], err);
        if (ret == -ENOENT) ret = 0;
    }
    if (ret) goto out;
    o.r = (int)r;
    o.fc1_gate = (int)gate;
    if (model_opts_set(&o, MODEL_OPT_ARCH, arch, tmp) < 0 ||
        model_opts_set(&o, MODEL_OPT_SE_PLACEMENT, opt[0], tmp) < 0 ||
        model_opts_set(&o, MODEL_OPT_GATE, opt[1], tmp) < 0 || params_build(&run->t, &o, tmp) < 0) {
        err_set(err, "%s: this build cannot rebuild its model (arch %.32s, r %llu): %s", path, arch,
                r, tmp);
        ret = -EINVAL;
        goto out;
    }
    char want[STORE_CHECKSUM_LEN];
    snprintf(want, sizeof want, "%016" PRIx64, run->t.hash);
    if (strcmp(hash, want)) {
        err_set(err, "%s: its parameter table (%s) is not this build's %s (%s)", path, hash,
                run->t.arch, want);
        ret = -EINVAL;
        goto out;
    }
    if (params_parse_private(priv, &run->private_mask, tmp) < 0) {
        err_set(err, "%s: meta private_groups '%s' is not a private set", path, priv);
        ret = -EBADMSG;
        goto out;
    }
    run->init_seed = seed;
out:
    if (ret) state_close(s);
    else *out = s;
    return ret;
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

/* Inserts the server optimizer state of round (len doubles); part of a
 * caller's transaction. */
static int state_put_opt(state *s, uint32_t round, const double *v, size_t len, char *err)
{
    char sum[STORE_CHECKSUM_LEN];
    store_checksum_hex(v, len * sizeof *v, sum);
    sqlite3_stmt *st;
    int ret = store_prepare(s->db, "INSERT INTO opt_state(round, state, checksum) VALUES(?, ?, ?)",
                            &st, err);
    if (ret) return ret;
    sqlite3_bind_int64(st, 1, round);
    sqlite3_bind_blob64(st, 2, v, len * sizeof *v, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, sum, -1, SQLITE_STATIC);
    return state_step(s, st, err);
}

int state_load_opt(state *s, uint32_t round, double *buf, size_t len, char *err)
{
    sqlite3_stmt *st;
    int ret = store_prepare(s->db, "SELECT state, checksum FROM opt_state WHERE round = ?", &st,
                            err);
    if (ret) return ret;
    sqlite3_bind_int64(st, 1, round);
    ret = -EBADMSG;
    if (sqlite3_step(st) != SQLITE_ROW) {
        err_set(err, "%s: no server optimizer state for round %u; the file is damaged", s->path,
                round);
        goto out;
    }
    const void *blob = sqlite3_column_blob(st, 0);
    size_t bytes = (size_t)sqlite3_column_bytes(st, 0);
    const char *want = (const char *)sqlite3_column_text(st, 1);
    char sum[STORE_CHECKSUM_LEN] = "";
    if (blob && bytes == len * sizeof *buf) store_checksum_hex(blob, bytes, sum);
    if (!blob || bytes != len * sizeof *buf || !want || strcmp(sum, want)) {
        err_set(err, "%s: server optimizer state of round %u: wrong size or checksum; the file "
                "is damaged", s->path, round);
        goto out;
    }
    memcpy(buf, blob, bytes);
    ret = 0;
out:
    sqlite3_finalize(st);
    return ret;
}

int state_privacy_rounds(state *s, void (*fn)(void *user, double rate, double noise), void *user,
                         char *err)
{
    sqlite3_stmt *st;
    int ret = store_prepare(s->db, "SELECT sample_rate, noise FROM privacy ORDER BY round", &st,
                            err);
    if (ret) return ret;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(user, sqlite3_column_double(st, 0), sqlite3_column_double(st, 1));
    if (rc != SQLITE_DONE) {
        err_set(err, "%s: reading the privacy rounds: %s", s->path, sqlite3_errmsg(s->db));
        ret = -EIO;
    }
    sqlite3_finalize(st);
    return ret;
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
    if (r->opt_len && (ret = state_put_opt(s, r->round, r->opt_state, r->opt_len, err))) goto out;
    if (r->dp) {
        if ((ret = store_prepare(s->db,
                                 "INSERT INTO privacy(round, sample_rate, noise, epsilon, delta)"
                                 " VALUES(?, ?, ?, ?, ?)",
                                 &st, err)))
            goto out;
        sqlite3_bind_int64(st, 1, r->round);
        sqlite3_bind_double(st, 2, r->dp_rate);
        sqlite3_bind_double(st, 3, r->dp_noise);
        sqlite3_bind_double(st, 4, r->dp_epsilon);
        sqlite3_bind_double(st, 5, r->dp_delta);
        if ((ret = state_step(s, st, err))) goto out;
    }

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
    if ((ret = store_prepare(s->db,
                             "DELETE FROM opt_state WHERE round NOT IN (SELECT round FROM models)",
                             &st, err)))
        goto out;
    if ((ret = state_step(s, st, err))) goto out;
    /* The penalty box as of this commit: entries that neither box a client
     * nor refuse it a round after this one are over. */
    if ((ret = store_prepare(s->db,
                             "DELETE FROM penalties WHERE until_round <= ?1 AND refused_round <= ?1",
                             &st, err)))
        goto out;
    sqlite3_bind_int64(st, 1, r->round);
    if ((ret = state_step(s, st, err))) goto out;
    ret = store_commit(s->db, err);
out:
    if (ret) store_rollback(s->db);
    return ret;
}

int state_put_penalty(state *s, const state_penalty *p, char *err)
{
    char now[STORE_TIME_LEN];
    store_now_iso(now);
    sqlite3_stmt *st;
    int ret = store_prepare(s->db,
                            "INSERT OR REPLACE INTO penalties(client, until_round, refused_round,"
                            " reason, penalised_at) VALUES(?, ?, ?, ?, ?)",
                            &st, err);
    if (ret) return ret;
    sqlite3_bind_text(st, 1, p->client, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, p->until);
    sqlite3_bind_int64(st, 3, p->refused_round);
    sqlite3_bind_text(st, 4, p->reason, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, now, -1, SQLITE_STATIC);
    return state_step(s, st, err);
}

int state_penalties(state *s, uint32_t last_round, int max,
                    int (*fn)(void *user, const state_penalty *p), void *user, char *err)
{
    sqlite3_stmt *st;
    int ret = store_prepare(s->db,
                            "SELECT client, until_round, refused_round, reason FROM penalties"
                            " WHERE until_round > ?1 OR refused_round > ?1"
                            " ORDER BY until_round DESC, refused_round DESC, client LIMIT ?2",
                            &st, err);
    if (ret) return ret;
    sqlite3_bind_int64(st, 1, last_round);
    sqlite3_bind_int(st, 2, max);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *client = (const char *)sqlite3_column_text(st, 0);
        const char *reason = (const char *)sqlite3_column_text(st, 3);
        int ints = sqlite3_column_type(st, 1) == SQLITE_INTEGER &&
                   sqlite3_column_type(st, 2) == SQLITE_INTEGER;
        sqlite3_int64 until = sqlite3_column_int64(st, 1), refused = sqlite3_column_int64(st, 2);
        if (!client || !client[0] || strlen(client) > STATE_CLIENT_NAME_MAX || !ints ||
            until < 0 || until > UINT32_MAX || refused < 0 || refused > UINT32_MAX) {
            err_set(err, "%s: a penalties row (client '%.64s') has a client name or round out of "
                    "range; the file is damaged: delete the row to resume", s->path,
                    client ? client : "");
            ret = -EBADMSG;
            break;
        }
        state_penalty p = { client, (uint32_t)until, (uint32_t)refused, reason ? reason : "" };
        if ((ret = fn(user, &p))) break;
    }
    if (!ret && rc != SQLITE_DONE) {
        err_set(err, "%s: reading the penalties: %s", s->path, sqlite3_errmsg(s->db));
        ret = -EIO;
    }
    sqlite3_finalize(st);
    return ret;
}

int state_last_eval(state *s, uint32_t *round, double *accuracy, int *found, char *err)
{
    /* The rows the coordinator stores pass its checks; a file an older
     * sefl wrote may hold falsified ones, which are left out: rows whose
     * examples, accuracy or round are not integers and numbers in range.
     * sefl-eval's filter (client/report_db.c, VALID_ROW) also checks the
     * client's name and has tighter bounds, so on such a file the two may
     * differ; on rows this coordinator wrote they agree. */
    static const char sql[] =
        "WITH ok AS (SELECT round, examples, accuracy FROM eval_reports"
        " WHERE typeof(examples) = 'integer' AND examples >= 1 AND examples <= 4294967295"
        " AND typeof(accuracy) IN ('real', 'integer') AND accuracy >= 0 AND accuracy <= 1"
        " AND typeof(round) = 'integer' AND round >= 0 AND round <= 4294967295)"
        " SELECT round, sum(examples * accuracy) / sum(examples) FROM ok"
        " WHERE round = (SELECT max(round) FROM ok) GROUP BY round";
    sqlite3_stmt *st;
    int ret = store_prepare(s->db, sql, &st, err);
    if (ret) return ret;
    *found = 0;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *found = 1;
        *round = (uint32_t)sqlite3_column_int64(st, 0);
        *accuracy = sqlite3_column_double(st, 1);
    } else if (rc != SQLITE_DONE) {
        err_set(err, "%s: reading the last evaluation: %s", s->path, sqlite3_errmsg(s->db));
        ret = -EIO;
    }
    sqlite3_finalize(st);
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

int state_client_declared(state *s, const char *name, uint32_t train, uint32_t test,
                          uint32_t *old_train, uint32_t *old_test, char *err)
{
    char key[128], have[STORE_META_MAX], now[32];
    snprintf(key, sizeof key, "declared:%s", name);
    snprintf(now, sizeof now, "%u,%u", train, test);
    int ret = store_meta_get(s->db, key, have, sizeof have, err);
    if (ret && ret != -ENOENT) return ret;
    if (!ret && !strcmp(have, now)) return 0;
    int changed = 0;
    if (!ret) {
        unsigned a = 0, b = 0;
        changed = 1;
        if (sscanf(have, "%u,%u", &a, &b) != 2) a = b = 0;
        *old_train = a;
        *old_test = b;
    }
    ret = store_meta_set(s->db, key, now, err);
    return ret ? ret : changed;
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

int state_observe_setting(state *s, const char *name, const char *value, uint32_t round,
                          char *replaced, char *err)
{
    char have[SETTINGS_VALUE_MAX];
    replaced[0] = 0;
    int ret = state_get_setting(s, name, have, err);
    if (ret && ret != -ENOENT) return ret;
    if (!ret && !strcmp(have, value)) return 0;
    int had = ret == 0;
    if ((ret = store_begin(s->db, err))) return ret;
    ret = state_set_setting(s, name, had ? have : NULL, value, round, err);
    if (!ret) ret = store_commit(s->db, err);
    if (ret) store_rollback(s->db);
    else if (had) snprintf(replaced, SETTINGS_VALUE_MAX, "%s", have);
    return ret;
}

int state_eval_count(state *s, uint32_t round, int *n, char *err)
{
    long long v = 0;
    int ret = state_query_int(s, "SELECT count(*) FROM eval_reports WHERE round = ?", round, &v, err);
    if (!ret) *n = (int)v;
    return ret;
}
