/* coord_settings: the coordinator's run settings, the ones that change a
 * run's result; see settings.h for what server.db does with them.
 *
 * Adding a setting is one settings_add line here, named by its long flag.
 * Settings that only change how the run is operated (listen address,
 * timeouts' effect aside, heartbeat, eval cadence, limits) are not listed:
 * a resume may change them freely.
 *
 * arch and its options, local-schedule, private-lr and the guard's three
 * were first bound to the
 * file in meta (state.c's meta items and state_config.settings), which
 * refuses a change before this list is compared; they are listed here too
 * so that the settings table and sefl-eval show every setting of the run.
 */
#include <inttypes.h>

#include "common/nn/params.h"
#include "server/coord.h"
#include "server/guard.h"

void coord_run_settings(const coord_config *c, settings *s)
{
    s->n = 0;
    settings_add(s, "arch", "%s", c->model.arch);
    settings_add(s, "r", "%d", c->model.r);
    if (c->model.se_placement[0]) settings_add(s, "se-placement", "%s", c->model.se_placement);
    if (c->model.gate[0]) settings_add(s, "gate", "%s", c->model.gate);
    settings_add(s, "private", "%s", params_private_name(c->private_mask));
    settings_add(s, "seed", "%" PRIu64, c->seed);
    settings_add(s, "lr", "%.9g", (double)c->lr);
    settings_add(s, "momentum", "%.9g", (double)c->momentum);
    settings_add(s, "weight-decay", "%.9g", (double)c->weight_decay);
    settings_add(s, "prox-mu", "%.9g", (double)c->prox_mu);
    settings_add(s, "batch", "%d", c->batch);
    settings_add(s, "epochs", "%d", c->epochs);
    settings_add(s, "clients-per-round", "%d", c->clients_per_round);
    settings_add(s, "min-clients", "%d", c->min_clients);
    settings_add(s, "over-select", "%.9g", c->over_select);
    if (c->private_epochs > 0) settings_add(s, "local-schedule", "private-first:%d", c->private_epochs);
    else settings_add(s, "local-schedule", "joint");
    settings_add(s, "private-lr", "%.9g", (double)c->private_lr);
    settings_add(s, "max-weight-share", "%.9g", c->guard.max_weight_share);
    char norm[32];
    guard_norm_name(&c->guard, norm, sizeof norm);
    settings_add(s, "max-update-norm", "%s", norm);
    settings_add(s, "penalty-rounds", "%d", c->guard.penalty_rounds);
    char agg[STRATEGY_NAME_MAX], opt[SOPT_NAME_MAX];
    strategy_name(&c->agg, agg, sizeof agg);
    settings_add(s, "aggregate", "%s", agg);
    settings_add(s, "clip", "%.9g", c->agg.dp ? 0 : c->agg.clip);
    sopt_name(&c->opt, opt, sizeof opt);
    settings_add(s, "server-opt", "%s", opt);     /* with the optimizer's own settings */
    settings_add(s, "dp-clip", "%.9g", c->agg.dp ? c->agg.clip : 0);
    settings_add(s, "dp-noise", "%.9g", c->agg.dp ? c->agg.dp_noise : 0);
    settings_add(s, "dp-delta", "%.9g", c->dp_delta);
    settings_add(s, "wire-dtype", "%s", wire_enc_name(c->wire));
    settings_add(s, "update-dtype", "%s", wire_enc_name(c->update));
}
