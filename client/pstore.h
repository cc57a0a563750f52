/* pstore: a client's private store, one SQLite file per client.
 *
 * It holds what never leaves the device: the client's private tensors (the
 * parameters of the coordinator's private set, e.g. the SE gates) as blobs
 * with their shape, an FNV-1a checksum and the round they belong to, and a
 * history of the client's own train and eval figures. Schema:
 *
 *   meta(key PRIMARY KEY, value)   schema_version, kind = 'client', name,
 *                                  arch, table_hash (hex), created_at
 *   tensors(name PRIMARY KEY, shape TEXT "d0,d1,...", round, data BLOB,
 *           checksum TEXT)         the private set of the last commit
 *   history(id PRIMARY KEY, kind 'train'|'eval', round, examples, loss,
 *           accuracy, seconds, at)
 *
 * A file that is not SQLite, is another program's database (a server.db),
 * has another schema version, belongs to another model table, or holds a
 * blob whose checksum or shape does not match is a clear error: the file is
 * never silently replaced. Opening a missing file creates it.
 *
 * A pstore handle is used by one thread at a time (the loop at start, then
 * the training job that has the client's task).
 */
#ifndef SEFL_PSTORE_H
#define SEFL_PSTORE_H

#include <stdint.h>

#include "common/nn/params.h"

#define PSTORE_SCHEMA_VERSION 1

typedef struct pstore pstore;

/* Figures of one train or eval job, for the history. */
typedef struct {
    uint32_t round;
    long examples;
    double loss;
    double accuracy;
    double seconds;
} pstore_figures;

/* Opens path (creating it with the schema if it does not exist) for client
 * `name` and model table t (the caller keeps t alive while the handle is
 * open). An existing file must be a pstore of PSTORE_SCHEMA_VERSION for the
 * same table hash, made for the same client name (a file of client-0003
 * opened as client-0004 is refused). Returns 0 and *out, or a negative error with one line in err. */
int pstore_open(const char *path, const char *name, const param_table *t, pstore **out, char *err);

void pstore_close(pstore *ps);   /* accepts NULL */

/* Reads the stored tensors selected by sel into their slices of buf
 * (t->total floats, the table's layout); tensors of sel that are not stored
 * are left untouched. *round (may be NULL) gets the round of the stored set
 * (0 when nothing is stored). Returns the number of tensors read, or a
 * negative error with err: -EBADMSG for a checksum or size mismatch,
 * -EINVAL for a tensor the table lacks or a shape that differs, -ENOMEM,
 * -EIO. */
int pstore_load(pstore *ps, param_sel sel, float *buf, uint32_t *round, char *err);

/* *round gets the round of the stored set (0 when nothing is stored)
 * without reading the tensors. Returns 0 or negative with err. */
int pstore_round(pstore *ps, uint32_t *round, char *err);

/* In one transaction: replaces the stored tensors with the tensors of buf
 * selected by sel, tagged with fig->round, and appends a 'train' history
 * row with fig. On failure nothing changes (the previous set stays).
 * Returns 0 or negative with err. */
int pstore_commit(pstore *ps, param_sel sel, const float *buf, const pstore_figures *fig, char *err);

/* Appends an 'eval' history row. Returns 0 or negative with err. */
int pstore_record_eval(pstore *ps, const pstore_figures *fig, char *err);

#endif
