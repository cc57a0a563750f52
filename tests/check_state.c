/* check_state: server.db: creation with the round-0 model, commits in one
 * transaction with pruning to the last STATE_KEEP_MODELS models, resume,
 * refusal of a file made for other settings, run settings recorded,
 * compared on resume (refused, or recorded as a change with allow_change)
 * and learnt while running, the db lock, detection of damaged models,
 * clients and eval_reports rows, the penalty box kept across a restart
 * and pruned by the commits, and the last evaluation read back. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/nn/params.h"
#include "common/fl/state.h"
#include "common/store.h"
#include "tests/check_main.h"
#include "tests/check_sql.h"

static char dir[64], path[128];
static param_table table;
static float *init, *buf, *back;   /* (table.total) each */

static void setup(void)
{
    char err[SEFL_ERRLEN];
    check_mkdtemp(dir, sizeof dir, "/tmp/check_state.XXXXXX");
    snprintf(path, sizeof path, "%s/server.db", dir);
    ck_assert_int_eq(params_build(&table, &(model_opts){ .arch = "cnn-se", .r = 8, .fc1_gate = 1 }, err), 0);
    init = malloc(table.total * sizeof(float));
    buf = malloc(table.total * sizeof(float));
    back = malloc(table.total * sizeof(float));
    for (size_t i = 0; i < table.total; i++) init[i] = (float)(i % 97) * 0.01f;
}

static void teardown(void)
{
    ck_assert_int_eq(check_rm_rf(dir), 0);
    free(init);
    free(buf);
    free(back);
}

static state_config config(unsigned private_mask, uint64_t seed)
{
    return (state_config){ .t = &table, .private_mask = private_mask, .init_seed = seed };
}

static void exec_raw(const char *sql)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void commit(state *s, uint32_t round, float fill)
{
    char err[SEFL_ERRLEN] = "";
    for (size_t i = 0; i < table.total; i++) buf[i] = fill + (float)i * 1e-6f;
    state_participant p[2] = { { "client-0000", 100 }, { "client-0001", 50 + round } };
    state_round r = { .round = round, .clients = 2, .examples = 150 + round, .train_loss = 0.5,
                      .train_accuracy = 0.8, .seconds = 1.5, .coord_seconds = 0.1, .attempt = 1 };
    ck_assert_msg(state_commit_round(s, &r, buf, p, 2, err) == 0, "%s", err);
}

START_TEST(test_new_file_holds_round0)
{
    state *s;
    char err[SEFL_ERRLEN] = "";
    state_config c = config(PARAM_SE, 42);
    ck_assert_msg(state_open(path, &c, init, &s, err) == 0, "%s", err);
    uint32_t round = 99;
    ck_assert_int_eq(state_load(s, back, &round, err), 0);
    ck_assert_uint_eq(round, 0);
    ck_assert_int_eq(memcmp(back, init, table.total * sizeof(float)), 0);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT count(*) FROM rounds"), 0);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT value FROM meta WHERE key='r'"), 8);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT value='se' FROM meta WHERE key='private_groups'"), 1);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT value='server' FROM meta WHERE key='kind'"), 1);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT value='cnn-se' FROM meta WHERE key='arch'"), 1);
    state_close(s);
    state_close(NULL);
}
END_TEST

START_TEST(test_commit_prune_resume)
{
    state *s;
    char err[SEFL_ERRLEN] = "";
    state_config c = config(PARAM_SE, 42);
    ck_assert_int_eq(state_open(path, &c, init, &s, err), 0);
    for (uint32_t r = 1; r <= 5; r++) commit(s, r, (float)r);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT count(*) FROM rounds"), 5);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT count(*) FROM models"), STATE_KEEP_MODELS);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT min(round) FROM models"), 5 - STATE_KEEP_MODELS + 1);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT rounds FROM clients WHERE name='client-0001'"), 5);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT examples FROM clients WHERE name='client-0001'"),
                     51 + 52 + 53 + 54 + 55);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT attempt FROM rounds WHERE round=3"), 1);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT length(params) FROM models WHERE round=5"),
                     (long long)(table.total * sizeof(float)));

    /* a second commit of round 5 fails and leaves everything as it was */
    float keep = buf[0];
    state_round r = { .round = 5, .clients = 1, .examples = 1, .attempt = 1 };
    state_participant p = { "client-0009", 1 };
    for (size_t i = 0; i < table.total; i++) buf[i] = -1;
    ck_assert_int_ne(state_commit_round(s, &r, buf, &p, 1, err), 0);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT count(*) FROM clients WHERE name='client-0009'"), 0);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT count(*) FROM models"), STATE_KEEP_MODELS);
    state_close(s);

    /* resume: the model of round 5, byte for byte */
    ck_assert_int_eq(state_open(path, &c, init, &s, err), 0);
    uint32_t round = 0;
    ck_assert_int_eq(state_load(s, back, &round, err), 0);
    ck_assert_uint_eq(round, 5);
    ck_assert_float_eq(back[0], keep);
    for (size_t i = 0; i < table.total; i++) buf[i] = 5.0f + (float)i * 1e-6f;
    ck_assert_int_eq(memcmp(back, buf, table.total * sizeof(float)), 0);
    commit(s, 6, 6.0f);
    ck_assert_int_eq(state_round_times(s, 6, 12.5, 0.25, err), 0);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT seconds = 12.5 AND coord_seconds = 0.25"
                                              " FROM rounds WHERE round = 6"), 1);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT seconds = 1.5 FROM rounds WHERE round = 5"), 1);
    state_close(s);
}
END_TEST

START_TEST(test_refuses_other_settings)
{
    state *s;
    char err[SEFL_ERRLEN] = "";
    state_config c = config(PARAM_SE, 42);
    ck_assert_int_eq(state_open(path, &c, init, &s, err), 0);
    state_close(s);

    state_config none = config(0, 42);
    ck_assert_int_eq(state_open(path, &none, init, &s, err), -EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err, "private_groups = se, this run has none (--private)"));

    state_config seed = config(PARAM_SE, 43);
    ck_assert_int_eq(state_open(path, &seed, init, &s, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--seed"));

    param_table t4;
    ck_assert_int_eq(params_build(&t4, &(model_opts){ .arch = "cnn-se", .r = 4, .fc1_gate = 1 }, err), 0);
    state_config r4 = { .t = &t4, .private_mask = PARAM_SE, .init_seed = 42 };
    ck_assert_int_eq(state_open(path, &r4, init, &s, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--r"));

    /* The local schedule and the private rate are recorded and checked. */
    state_config pf = c;
    pf.private_epochs = 2;
    ck_assert_int_eq(state_open(path, &pf, init, &s, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "local_schedule = joint, this run has private-first:2 (--local-schedule)"));
    state_config plr = c;
    plr.private_lr = 0.05f;
    ck_assert_int_eq(state_open(path, &plr, init, &s, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "private_lr = lr, this run has 0.05 (--private-lr)"));
    char sched[160];
    snprintf(sched, sizeof sched, "%s/sched.db", dir);
    pf.private_lr = 0.05f;
    ck_assert_int_eq(state_open(sched, &pf, init, &s, err), 0);
    state_close(s);
    ck_assert_int_eq(check_sql_file_int(sched, "SELECT value = 'private-first:2' FROM meta"
                                               " WHERE key = 'local_schedule'"), 1);
    ck_assert_int_eq(state_open(sched, &pf, init, &s, err), 0);
    state_close(s);
    ck_assert_int_eq(state_open(sched, &c, init, &s, err), -EINVAL);
    /* A file made before the two settings existed resumes as joint at lr,
     * and only so. */
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "DELETE FROM meta WHERE key IN ('local_schedule', 'private_lr')",
                                  NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(state_open(path, &c, init, &s, err), 0);
    state_close(s);
    ck_assert_int_eq(state_open(path, &pf, init, &s, err), -EINVAL);

    /* a file of sefl-sim --local-only is not one the coordinator resumes */
    char local[160];
    snprintf(local, sizeof local, "%s/local.db", dir);
    state_config lc = c;
    lc.kind = "local";
    lc.partition = "pat:2";
    ck_assert_int_eq(state_open(local, &lc, init, &s, err), 0);
    state_close(s);
    ck_assert_int_eq(state_open(local, &c, init, &s, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "'local'"));
}
END_TEST

START_TEST(test_run_settings)
{
    state *s;
    char err[SEFL_ERRLEN] = "";
    settings run = { .n = 0 };
    settings_add(&run, "lr", "%.9g", 0.05);
    settings_add(&run, "batch", "%d", 32);
    state_config c = config(PARAM_SE, 42);
    c.run = &run;
    ck_assert_int_eq(state_open(path, &c, init, &s, err), 0);
    commit(s, 1, 1.0f);
    commit(s, 2, 2.0f);
    state_close(s);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT count(*) FROM settings WHERE since_round = 0"
                                              " AND ((name = 'lr' AND value = '0.05') OR"
                                              " (name = 'batch' AND value = '32'))"), 2);

    /* the same settings resume; another lr is refused naming it, file unchanged */
    ck_assert_msg(state_open(path, &c, init, &s, err) == 0, "%s", err);
    state_close(s);
    settings other = run;
    snprintf(other.item[0].value, sizeof other.item[0].value, "0.1");
    c.run = &other;
    ck_assert_int_eq(state_open(path, &c, init, &s, err), -EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err, "made with --lr 0.05, this one has --lr 0.1") != NULL, "%s", err);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT count(*) FROM setting_changes"), 0);

    /* allow_change: recorded from the next round, with the old value */
    c.allow_change = 1;
    ck_assert_msg(state_open(path, &c, init, &s, err) == 0, "%s", err);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT count(*) FROM setting_changes WHERE round = 3"
                                              " AND name = 'lr' AND old_value = '0.05'"
                                              " AND new_value = '0.1'"), 1);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT since_round FROM settings WHERE name = 'lr'"), 3);

    /* a setting learnt while running: first recorded, then a change */
    char was[SETTINGS_VALUE_MAX] = "x";
    ck_assert_int_eq(state_observe_setting(s, "partition", "pat:2 clients=3 seed=1", 3, was, err), 0);
    ck_assert_str_eq(was, "");
    ck_assert_int_eq(state_observe_setting(s, "partition", "pat:2 clients=3 seed=1", 3, was, err), 0);
    ck_assert_str_eq(was, "");
    ck_assert_int_eq(state_observe_setting(s, "partition", "iid clients=3 seed=1", 4, was, err), 0);
    ck_assert_str_eq(was, "pat:2 clients=3 seed=1");
    ck_assert_int_eq(check_sql_file_int(path, "SELECT count(*) FROM setting_changes WHERE round = 4"
                                              " AND name = 'partition'"), 1);
    int n = -1;
    ck_assert_int_eq(state_eval_count(s, 2, &n, err), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(state_eval_report(s, 2, "client-0000", 10, 0.5, 1.0, err), 0);
    ck_assert_int_eq(state_eval_count(s, 2, &n, err), 0);
    ck_assert_int_eq(n, 1);
    state_close(s);
}
END_TEST

/* One lock holder at a time; the lock goes with its descriptor. */
START_TEST(test_lock)
{
    char err[SEFL_ERRLEN] = "";
    int fd1 = -1, fd2 = -1;
    ck_assert_int_eq(store_lock(path, &fd1, err), 0);
    ck_assert_int_eq(access(path, F_OK), 0);
    ck_assert_int_eq(store_lock(path, &fd2, err), -EBUSY);
    ck_assert_int_eq(fd2, -1);
    ck_assert_ptr_nonnull(strstr(err, "in use by another process"));
    close(fd1);
    ck_assert_int_eq(store_lock(path, &fd2, err), 0);
    close(fd2);
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no/such/dir/server.db", dir);
    ck_assert_int_eq(store_lock(missing, &fd1, err), -ENOENT);
}
END_TEST

START_TEST(test_detects_damaged_model)
{
    state *s;
    char err[SEFL_ERRLEN] = "";
    state_config c = config(PARAM_SE, 42);
    ck_assert_int_eq(state_open(path, &c, init, &s, err), 0);
    commit(s, 1, 1.0f);
    commit(s, 2, 2.0f);
    uint32_t round = 7;
    memset(back, 0, table.total * sizeof(float));

    /* one flipped bit in the blob */
    exec_raw("UPDATE models SET params = CAST(substr(params, 1, 99) || x'ff' || substr(params, 101)"
             " AS BLOB) WHERE round = 2");
    ck_assert_int_eq(state_load(s, back, &round, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "checksum"));
    ck_assert_uint_eq(round, 7);
    ck_assert_float_eq(back[0], 0);

    /* a blob one float short */
    exec_raw("UPDATE models SET params = substr(params, 5) WHERE round = 2");
    ck_assert_int_eq(state_load(s, back, &round, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "expected"));

    /* the newest model missing: committed round 2 without its model */
    exec_raw("DELETE FROM models WHERE round = 2");
    ck_assert_int_eq(state_load(s, back, &round, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "last committed round 2"));
    exec_raw("DELETE FROM models");
    ck_assert_int_eq(state_load(s, back, &round, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "holds no model"));
    state_close(s);
}
END_TEST

START_TEST(test_clients_and_eval_reports)
{
    state *s;
    char err[SEFL_ERRLEN] = "";
    state_config c = config(PARAM_SE | PARAM_HEAD, 1);
    ck_assert_int_eq(state_open(path, &c, init, &s, err), 0);
    ck_assert_int_eq(state_client_seen(s, "client-0003", err), 0);
    ck_assert_int_eq(state_client_seen(s, "client-0003", err), 0);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT rounds FROM clients WHERE name='client-0003'"), 0);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT first_seen IS NOT NULL AND last_seen IS NOT NULL"
                                  " FROM clients WHERE name='client-0003'"), 1);
    ck_assert_int_eq(state_eval_report(s, 3, "client-0003", 120, 0.9, 0.3, err), 0);
    ck_assert_int_eq(state_eval_report(s, 3, "client-0004", 80, 0.7, 0.6, err), 0);
    ck_assert_int_eq(state_eval_report(s, 3, "client-0003", 120, 0.95, 0.2, err), 0);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT count(*) FROM eval_reports"), 2);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT accuracy = 0.95"
                                              " FROM eval_reports WHERE client='client-0003'"), 1);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT value='se,head'"
                                              " FROM meta WHERE key='private_groups'"), 1);
    state_close(s);
}
END_TEST

/* The optimizer state and privacy rows commit with the round and the
 * optimizer state is pruned with the models; a damaged one is refused. */
START_TEST(test_settings_opt_state_privacy)
{
    state *s;
    char err[SEFL_ERRLEN] = "";
    state_config c = config(PARAM_SE, 42);
    ck_assert_int_eq(state_open(path, &c, init, &s, err), 0);
    double opt[3] = { 1.5, -2, 1e-300 }, back_opt[3];
    for (uint32_t r = 1; r <= STATE_KEEP_MODELS + 2; r++) {
        opt[0] = r;
        state_round rr = { .round = r, .clients = 1, .examples = 1, .attempt = 1,
                           .opt_state = opt, .opt_len = 3, .dp = 1, .dp_rate = 0.5,
                           .dp_noise = 1.1, .dp_epsilon = r * 0.25, .dp_delta = 1e-5 };
        for (size_t i = 0; i < table.total; i++) buf[i] = (float)r;
        state_participant p = { "client-0000", 1 };
        ck_assert_msg(state_commit_round(s, &rr, buf, &p, 1, err) == 0, "%s", err);
    }
    uint32_t last = 0;
    ck_assert_int_eq(state_load(s, back, &last, err), 0);
    ck_assert_int_eq(state_load_opt(s, last, back_opt, 3, err), 0);
    ck_assert_double_eq(back_opt[0], STATE_KEEP_MODELS + 2);
    ck_assert_double_eq(back_opt[2], 1e-300);
    ck_assert_int_eq(state_load_opt(s, last, back_opt, 4, err), -EBADMSG);
    ck_assert_int_eq(state_load_opt(s, 1, back_opt, 3, err), -EBADMSG);   /* pruned */
    ck_assert_int_eq(check_sql_file_int(path, "SELECT count(*) FROM opt_state"), STATE_KEEP_MODELS);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT count(*) FROM privacy"), STATE_KEEP_MODELS + 2);
    state_close(s);
    exec_raw("UPDATE opt_state SET state = zeroblob(24)");
    ck_assert_int_eq(state_open(path, &c, init, &s, err), 0);
    ck_assert_int_eq(state_load_opt(s, last, back_opt, 3, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "checksum"));
    state_close(s);
}
END_TEST

/* The counts a client declares are kept per name; a change is reported
 * with the old ones. */
START_TEST(test_declared_counts)
{
    char err[SEFL_ERRLEN] = "";
    state *s = NULL;
    state_config c = config(PARAM_SE, 1);
    ck_assert_int_eq(state_open(path, &c, init, &s, err), 0);
    uint32_t ot = 7, oe = 7;
    ck_assert_int_eq(state_client_declared(s, "client-0001", 2000, 500, &ot, &oe, err), 0);
    ck_assert_int_eq(state_client_declared(s, "client-0001", 2000, 500, &ot, &oe, err), 0);
    ck_assert_uint_eq(ot, 7);
    ck_assert_int_eq(state_client_declared(s, "client-0002", 10, 5, &ot, &oe, err), 0);
    ck_assert_int_eq(state_client_declared(s, "client-0001", 1000000, 500, &ot, &oe, err), 1);
    ck_assert_uint_eq(ot, 2000);
    ck_assert_uint_eq(oe, 500);
    state_close(s);
    /* Kept across a restart. */
    ck_assert_int_eq(state_open(path, &c, init, &s, err), 0);
    ck_assert_int_eq(state_client_declared(s, "client-0001", 2000, 500, &ot, &oe, err), 1);
    ck_assert_uint_eq(ot, 1000000);
    state_close(s);
}
END_TEST

/* The read-only view the eval tools use: the model rebuilt from meta, the
 * newest model readable, nothing writable; a local-only db, a missing file
 * and meta this build cannot rebuild are refused with one line. */
START_TEST(test_open_read)
{
    state *s, *rd;
    state_run run;
    char err[SEFL_ERRLEN] = "";
    state_config c = config(PARAM_SE | PARAM_HEAD, 42);
    ck_assert_msg(state_open(path, &c, init, &s, err) == 0, "%s", err);
    commit(s, 1, 0.25f);
    state_close(s);
    ck_assert_msg(state_open_read(path, &run, &rd, err) == 0, "%s", err);
    ck_assert_uint_eq(run.t.hash, table.hash);
    ck_assert_uint_eq(run.private_mask, PARAM_SE | PARAM_HEAD);
    ck_assert_uint_eq(run.init_seed, 42);
    uint32_t round = 0;
    ck_assert_int_eq(state_load(rd, back, &round, err), 0);
    ck_assert_uint_eq(round, 1);
    ck_assert_int_eq(memcmp(back, buf, table.total * sizeof(float)), 0);
    ck_assert_int_ne(state_client_seen(rd, "client-0009", err), 0);
    state_close(rd);

    exec_raw("UPDATE meta SET value = '3' WHERE key = 'r'");
    ck_assert_int_eq(state_open_read(path, &run, &rd, err), -EINVAL);
    ck_assert_ptr_null(rd);
    ck_assert_ptr_nonnull(strstr(err, "cannot rebuild"));
    exec_raw("UPDATE meta SET value = 'x8' WHERE key = 'r'");
    ck_assert_int_eq(state_open_read(path, &run, &rd, err), -EBADMSG);
    exec_raw("UPDATE meta SET value = '8' WHERE key = 'r'; UPDATE meta SET value = '0' WHERE key = 'fc1_gate'");
    ck_assert_int_eq(state_open_read(path, &run, &rd, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "parameter table"));
    exec_raw("UPDATE meta SET value = '1' WHERE key = 'fc1_gate'; DELETE FROM meta WHERE key = 'init_seed'");
    ck_assert_int_eq(state_open_read(path, &run, &rd, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "init_seed"));
    exec_raw("INSERT INTO meta VALUES('init_seed', '42'); UPDATE meta SET value = 'local' WHERE key = 'kind'");
    ck_assert_int_eq(state_open_read(path, &run, &rd, err), -EBADMSG);
    char missing[160];
    snprintf(missing, sizeof missing, "%s/none.db", dir);
    ck_assert_int_eq(state_open_read(missing, &run, &rd, err), -ENOENT);
    ck_assert_int_ne(access(missing, F_OK), 0);
}
END_TEST

/* What state_penalties hands back, collected. */
typedef struct {
    int n;
    char client[4][STATE_CLIENT_NAME_MAX + 1];
    uint32_t until[4], refused[4];
    char reason[4][64];
} penalties_seen;

static int collect_penalty(void *user, const state_penalty *p)
{
    penalties_seen *seen = user;
    ck_assert_int_lt(seen->n, 4);
    snprintf(seen->client[seen->n], sizeof seen->client[0], "%s", p->client);
    seen->until[seen->n] = p->until;
    seen->refused[seen->n] = p->refused_round;
    snprintf(seen->reason[seen->n], sizeof seen->reason[0], "%s", p->reason);
    seen->n++;
    return 0;
}

/* Penalties written after round 1 come back after a reopen, longest first;
 * an entry is replaced by its client's next one; the commit of round 2
 * drops the entry refused in round 2 whose box ended, and keeps one boxed
 * until round 4; after the commit of round 4 none is left. A row with a
 * round out of range is refused with one line naming its client. */
START_TEST(test_penalties)
{
    state *s;
    char err[SEFL_ERRLEN] = "";
    state_config c = config(PARAM_SE, 1);
    ck_assert_msg(state_open(path, &c, init, &s, err) == 0, "%s", err);
    commit(s, 1, 1.0f);
    state_penalty a = { "client-0000", 4, 2, "update norm 1e5 over the bound 312" };
    state_penalty b = { "client-0001", 1, 2, "a bad frame" };
    state_penalty b2 = { "client-0001", 2, 2, "a bad frame, again" };
    ck_assert_msg(state_put_penalty(s, &a, err) == 0, "%s", err);
    ck_assert_msg(state_put_penalty(s, &b, err) == 0, "%s", err);
    ck_assert_msg(state_put_penalty(s, &b2, err) == 0, "%s", err);
    state_close(s);

    ck_assert_msg(state_open(path, &c, init, &s, err) == 0, "%s", err);
    penalties_seen seen = { 0 };
    ck_assert_msg(state_penalties(s, 1, 10, collect_penalty, &seen, err) == 0, "%s", err);
    ck_assert_int_eq(seen.n, 2);
    ck_assert_str_eq(seen.client[0], "client-0000");
    ck_assert_uint_eq(seen.until[0], 4);
    ck_assert_uint_eq(seen.refused[0], 2);
    ck_assert_str_eq(seen.reason[0], "update norm 1e5 over the bound 312");
    ck_assert_str_eq(seen.client[1], "client-0001");
    ck_assert_uint_eq(seen.until[1], 2);
    ck_assert_str_eq(seen.reason[1], "a bad frame, again");
    memset(&seen, 0, sizeof seen);
    ck_assert_int_eq(state_penalties(s, 1, 1, collect_penalty, &seen, err), 0);
    ck_assert_int_eq(seen.n, 1);

    commit(s, 2, 2.0f);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT count(*) FROM penalties"), 1);
    memset(&seen, 0, sizeof seen);
    ck_assert_int_eq(state_penalties(s, 2, 10, collect_penalty, &seen, err), 0);
    ck_assert_int_eq(seen.n, 1);
    ck_assert_str_eq(seen.client[0], "client-0000");
    commit(s, 3, 3.0f);
    commit(s, 4, 4.0f);
    ck_assert_int_eq(check_sql_file_int(path, "SELECT count(*) FROM penalties"), 0);

    exec_raw("INSERT INTO penalties VALUES('client-0009', -1, 0, 'x', 'now')");
    exec_raw("INSERT INTO penalties VALUES('client-0008', 9, 0, 'x', 'now')");
    memset(&seen, 0, sizeof seen);
    ck_assert_int_eq(state_penalties(s, 4, 10, collect_penalty, &seen, err), 0);
    ck_assert_int_eq(seen.n, 1);               /* until -1 is not in effect: not read */
    exec_raw("UPDATE penalties SET refused_round = 5000000000 WHERE client = 'client-0009'");
    ck_assert_int_eq(state_penalties(s, 4, 10, collect_penalty, &seen, err), -EBADMSG);
    ck_assert_ptr_nonnull(strstr(err, "penalties row (client 'client-0009')"));
    ck_assert_ptr_null(strchr(err, '\n'));
    state_close(s);
}
END_TEST

/* The last evaluation: none in a new file; then the newest round with a
 * report, example-weighted over its reports, and a falsified row (stored
 * by an older sefl) left out. */
START_TEST(test_last_eval)
{
    state *s;
    char err[SEFL_ERRLEN] = "";
    state_config c = config(PARAM_SE, 1);
    ck_assert_msg(state_open(path, &c, init, &s, err) == 0, "%s", err);
    uint32_t round = 77;
    double acc = -1;
    int found = 1;
    ck_assert_msg(state_last_eval(s, &round, &acc, &found, err) == 0, "%s", err);
    ck_assert_int_eq(found, 0);
    ck_assert_int_eq(state_eval_report(s, 2, "client-0000", 100, 0.5, 1.0, err), 0);
    ck_assert_int_eq(state_eval_report(s, 4, "client-0000", 100, 0.5, 1.0, err), 0);
    ck_assert_int_eq(state_eval_report(s, 4, "client-0001", 300, 0.9, 1.0, err), 0);
    exec_raw("INSERT INTO eval_reports VALUES(6, 'liar', 0, 1.0, 0, 'now')");
    exec_raw("INSERT INTO eval_reports VALUES(6, 'liar2', 10, 1.5, 0, 'now')");
    ck_assert_int_eq(state_last_eval(s, &round, &acc, &found, err), 0);
    ck_assert_int_eq(found, 1);
    ck_assert_uint_eq(round, 4);
    ck_assert_double_eq_tol(acc, (100 * 0.5 + 300 * 0.9) / 400, 1e-12);
    state_close(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("state");
    TCase *tc = tcase_create("state");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_new_file_holds_round0);
    tcase_add_test(tc, test_commit_prune_resume);
    tcase_add_test(tc, test_refuses_other_settings);
    tcase_add_test(tc, test_run_settings);
    tcase_add_test(tc, test_lock);
    tcase_add_test(tc, test_detects_damaged_model);
    tcase_add_test(tc, test_clients_and_eval_reports);
    tcase_add_test(tc, test_declared_counts);
    tcase_add_test(tc, test_open_read);
    tcase_add_test(tc, test_settings_opt_state_privacy);
    tcase_add_test(tc, test_penalties);
    tcase_add_test(tc, test_last_eval);
    suite_add_tcase(s, tc);
    return check_run(s);
}
