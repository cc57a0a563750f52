/* evalrun: a finished run's model and data for the personalization tools;
 * see evalrun.h. */
#include "client/evalrun.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/pstore.h"
#include "client/report.h"
#include "client/setup.h"
#include "common/log.h"
#include "common/nn/model.h"

/* Checks d's data against the run's last evaluated round (see evalrun.h)
 * and marks the clients evaluated in it. */
static int evalrun_check(evalrun *e, const char *db, char *err)
{
    report_run run;
    memset(&run, 0, sizeof run);
    int rc = report_load_run(db, -1, NULL, &run, err);
    if (rc == -EINVAL) {
        log_warn("%s: %s; the partition flags cannot be checked against it", db, err);
        report_run_free(&run);
        return 0;
    }
    for (int i = 0; rc == 0 && i < run.n; i++) {
        const report_client *rep = &run.c[i];
        char *end;
        long c = strncmp(rep->name, "client-", 7) ? -1 : strtol(rep->name + 7, &end, 10);
        if (c < 0 || c >= e->part.n_clients || *end) {
            err_set(err, "%s: %s took part in the run but is not a client id of --clients %d:"
                    " give the partition flags sefl-sim ran with", db, rep->name, e->part.n_clients);
            rc = -EINVAL;
        } else if (rep->examples != e->cd[c].n_test) {
            err_set(err, "%s: %s was evaluated on %ld test samples, these flags give it %d: give"
                    " the --partition, --clients, --seed and --max-samples sefl-sim ran with", db,
                    rep->name, rep->examples, e->cd[c].n_test);
            rc = -EINVAL;
        } else {
            e->evaluated[c] = 1;
        }
    }
    report_run_free(&run);
    return rc;
}

int evalrun_open(evalrun *e, const char *db, const evalrun_data *d, char *err)
{
    state *s = NULL;
    memset(e, 0, sizeof *e);
    int rc = state_open_read(db, &e->run, &s, err);
    if (rc < 0) goto out;
    e->global = malloc(e->run.t.total * sizeof *e->global);
    if (!e->global) {
        err_set(err, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    if ((rc = state_load(s, e->global, &e->round, err)) < 0) goto out;
    if (e->round == 0) {
        err_set(err, "%s has no committed round: its model is the initialisation", db);
        rc = -EINVAL;
        goto out;
    }
    /* Floats: the gate view and the newcomers read the images themselves. */
    rc = setup_load_partition(d->data_dir, d->partition, (int)d->clients, d->seed, 0, &e->pool,
                              &e->part, err);
    if (rc < 0) goto out;
    e->cd = calloc((size_t)e->part.n_clients, sizeof *e->cd);
    e->evaluated = calloc((size_t)e->part.n_clients, 1);
    if (!e->cd || !e->evaluated) {
        err_set(err, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    /* Each client's domain is applied to its samples once, here. */
    for (int c = 0; c < e->part.n_clients; c++)
        setup_client_data(&e->pool, &e->part, c, (int)d->max_samples, &e->cd[c]);
    rc = evalrun_check(e, db, err);
out:
    state_close(s);
    if (rc < 0) evalrun_free(e);
    return rc;
}

void evalrun_free(evalrun *e)
{
    free(e->global);
    free(e->cd);
    free(e->evaluated);
    partition_free(&e->part);
    dataset_free(&e->pool);
    memset(e, 0, sizeof *e);
}

void evalrun_client_data(const evalrun *e, int c, trainer_data *out)
{
    *out = e->cd[c];
}

void evalrun_client_name(int c, char *name, int size)
{
    snprintf(name, (size_t)size, "client-%04d", c);
}

int evalrun_client_params(const evalrun *e, const char *state_dir, int c, float *w,
                          uint32_t *round, char *err)
{
    const param_table *t = &e->run.t;
    const param_sel psel = params_private(e->run.private_mask);
    char name[32], path[4096];
    pstore *ps = NULL;
    evalrun_client_name(c, name, sizeof name);
    if (snprintf(path, sizeof path, "%s/%s.db", state_dir, name) >= (int)sizeof path) {
        err_set(err, "--state path too long");
        return -ENAMETOOLONG;
    }
    /* pstore_open would create a missing file: a tool that reads must not. */
    if (access(path, F_OK) != 0) {
        err_set(err, "%s: no such file (a client that never trained, or another --state)", path);
        return -ENOENT;
    }
    int want = 0;
    for (int i = 0; i < t->n; i++) want += params_selected(&t->p[i], psel);
    memcpy(w, e->global, t->total * sizeof *w);
    int rc = pstore_open(path, name, t, &ps, err);
    if (rc == 0) rc = pstore_load(ps, psel, w, round, err);
    if (rc >= 0 && rc < want) {
        err_set(err, "%s holds %d of the run's %d private tensors (%s): not a client of this run"
                " that trained", path, rc, want, params_private_name(e->run.private_mask));
        rc = -EINVAL;
    }
    pstore_close(ps);
    return rc < 0 ? rc : 0;
}

int evalrun_newcomer_params(const evalrun *e, float *w)
{
    const param_table *t = &e->run.t;
    model *m = model_new(t, 1);
    if (!m) return -ENOMEM;
    model_init(m, e->run.init_seed);
    memcpy(w, e->global, t->total * sizeof *w);
    params_copy(t, params_private(e->run.private_mask), model_params(m), w);
    model_free(m);
    return 0;
}
