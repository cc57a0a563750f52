/* evalrun: a finished federated run as the personalization tools read it
 * (sefl-eval --gates and --newcomers): the model table, private set, init
 * seed and newest global model of its server.db, and its clients' data,
 * rebuilt from the same partition flags sefl-sim ran with.
 *
 * A client's model is the global model with its private tensors taken from
 * its own pstore (a trained client) or from the run's initialisation (a
 * newcomer, exactly what a client's first task starts from).
 */
#ifndef SEFL_EVALRUN_H
#define SEFL_EVALRUN_H

#include <stdint.h>

#include "client/trainer.h"
#include "common/data/dataset.h"
#include "common/data/partition.h"
#include "common/fl/state.h"

/* The partition flags of the run, as sefl-sim took them. */
typedef struct {
    const char *data_dir;       /* NULL: the Debian package's Fashion-MNIST */
    const char *partition;      /* spec, required */
    long clients;               /* clients in the partition, required */
    uint64_t seed;              /* partition seed */
    long max_samples;           /* 0: no cap */
} evalrun_data;

typedef struct {
    state_run run;              /* table, private set, init seed */
    float *global;              /* (run.t.total) the newest global model */
    uint32_t round;             /* its round */
    dataset pool;               /* the pooled 70,000 images, each in its client's domain */
    partition part;
    trainer_data *cd;           /* (part.n_clients) each client's splits */
    unsigned char *evaluated;   /* (part.n_clients) 1: in the run's last evaluated round */
} evalrun;

/* Reads db (read-only) and loads and partitions the data per d. e is
 * zeroed first and owns everything it holds (evalrun_free). The flags are
 * checked against the run: every client of the run's last evaluated round
 * must be a client id of d whose test split has as many samples as it was
 * evaluated on, else the flags are not the run's and the figures would
 * describe other data (-EINVAL). A run never evaluated cannot be checked
 * (a warning). Returns 0 or negative with one line in err. */
int evalrun_open(evalrun *e, const char *db, const evalrun_data *d, char *err);
void evalrun_free(evalrun *e);          /* accepts a zeroed or freed evalrun */

/* Client c's train and test split (indices into e->pool, capped). */
void evalrun_client_data(const evalrun *e, int c, trainer_data *out);

/* Writes into w (run.t.total) the global model with client c's private
 * tensors from its pstore STATE_DIR/client-%04d.db, which must exist and
 * hold the whole private set. *round (may be NULL) gets the round of that
 * set. Returns 0, -ENOENT when the client has no file (a held-out client),
 * or negative with err. */
int evalrun_client_params(const evalrun *e, const char *state_dir, int c, float *w,
                          uint32_t *round, char *err);

/* Writes into w (run.t.total) a newcomer's starting point: the global model
 * with the private tensors of the run's initialisation. Returns 0 or
 * -ENOMEM. */
int evalrun_newcomer_params(const evalrun *e, float *w);

/* The client name of id c: client-%04d (at least 12 bytes). */
void evalrun_client_name(int c, char *name, int size);

#endif
