/* coord_metrics: the coordinator's event metrics (what happened since the
 * process started), owned by the coord and updated on its loop thread:
 *   sefl_rounds_committed_total, sefl_rounds_abandoned_total,
 *   sefl_round_duration_seconds (histogram, selection to commit),
 *   sefl_updates_accepted_total, sefl_updates_rejected_total{reason}.
 * Figures of the present (round, clients, accuracy) are not here: they are
 * read from coord_get_status when the metrics are rendered (monitor.h).
 */
#ifndef SEFL_COORD_METRICS_H
#define SEFL_COORD_METRICS_H

#include "server/metrics.h"

/* Why an update was rejected: the reason label's values. */
enum {
    COORD_REJ_NO_ROUND,       /* no round in progress */
    COORD_REJ_STALE,          /* for an earlier round */
    COORD_REJ_UNKNOWN_ROUND,  /* for a round not started */
    COORD_REJ_NOT_SELECTED,   /* the client holds no task of this attempt */
    COORD_REJ_DUPLICATE,      /* a second update for the attempt */
    COORD_REJ_EXAMPLES,       /* a weight outside 1..its train split */
    COORD_REJ_TENSORS,        /* not exactly the shared tensor set */
    COORD_REJ_NOT_FINITE,     /* a NaN or infinity */
    COORD_REJ_N
};

typedef struct {
    metrics *reg;             /* owned */
    metric *committed, *abandoned, *duration, *accepted, *rejected;
} coord_metrics;

/* Makes the registry and its families. Returns 0, or negative with err. */
int coord_metrics_init(coord_metrics *cm, char *err);
void coord_metrics_free(coord_metrics *cm);   /* accepts NULL and a zeroed struct */

#endif
