/* coord_metrics: the coordinator's event metric families; see
 * coord_metrics.h. */
#include "server/coord_metrics.h"

#include <errno.h>
#include <stddef.h>

#include "common/log.h"

static const char *const coord_rej_reason[COORD_REJ_N] = {
    "no_round", "stale_round", "unknown_round", "not_selected",
    "duplicate", "bad_examples", "bad_tensors", "not_finite",
};

/* Round durations from a fraction of a second (tiny models, loopback) to
 * the default round timeout (300 s) and beyond. */
static const double coord_duration_bounds[] = { 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600 };

int coord_metrics_init(coord_metrics *cm, char *err)
{
    *cm = (coord_metrics){ 0 };
    cm->reg = metrics_new();
    if (!cm->reg) {
        err_set(err, "out of memory");
        return -ENOMEM;
    }
    int ret;
    if ((ret = metrics_add(cm->reg, METRIC_COUNTER, "sefl_rounds_committed_total",
                           "Rounds committed to the database since the process started.", NULL,
                           NULL, 0, &cm->committed, err)) ||
        (ret = metrics_add(cm->reg, METRIC_COUNTER, "sefl_rounds_abandoned_total",
                           "Round attempts abandoned (too few updates) since the process started.",
                           NULL, NULL, 0, &cm->abandoned, err)) ||
        (ret = metrics_add_histogram(cm->reg, "sefl_round_duration_seconds",
                                     "Seconds from selection to commit of committed rounds.",
                                     coord_duration_bounds,
                                     (int)(sizeof coord_duration_bounds / sizeof(double)),
                                     &cm->duration, err)) ||
        (ret = metrics_add(cm->reg, METRIC_COUNTER, "sefl_updates_accepted_total",
                           "Client updates folded into a round.", NULL, NULL, 0, &cm->accepted,
                           err)) ||
        (ret = metrics_add(cm->reg, METRIC_COUNTER, "sefl_updates_rejected_total",
                           "Client updates rejected, by reason.", "reason", coord_rej_reason,
                           COORD_REJ_N, &cm->rejected, err)))
        goto out;
    return 0;
out:
    coord_metrics_free(cm);
    return ret;
}

void coord_metrics_free(coord_metrics *cm)
{
    if (!cm) return;
    metrics_free(cm->reg);
    *cm = (coord_metrics){ 0 };
}
