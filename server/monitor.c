/* monitor: renders the coordinator's figures on its loop and publishes
 * them to the HTTP endpoint; see monitor.h. */
#include "server/monitor.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/fl/settings.h"
#include "common/log.h"
#include "common/net/netstats.h"
#include "common/nn/params.h"
#include "server/coord_metrics.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/procstat.h"

struct monitor {
    uv_loop_t *loop;
    uv_timer_t timer;
    int timer_on;                /* initialised, not yet closed */
    http *h;                     /* owned */
    const coord *co;             /* borrowed; NULL before monitor_attach */
    metrics *reg;                /* owned: the families below */
    metric *round, *last_round, *connected, *selected, *reported, *deadline, *eval_acc,
        *eval_round, *ready, *run_info, *cand_refused, *reports_refused, *capped, *penalised,
        *diverged, *waiting, *eligible, *refused, *boxed, *conn_open, *conn_refused, *hs, *hs_suppressed, *sent, *received, *cpu, *rss, *vms, *fds, *max_fds,
        *start;
    const char *run_id_value[1]; /* sefl_run_info's label value: the coord's run id */
    gate_stats gate;             /* the last admission counters seen (kept once the
                                    listener is closed, so the counters never fall back) */
    strbuf text, json, table;    /* rendered on each refresh, reused */
    int proc_warned;             /* /proc failed once: said so, not again */
};

/* The reason label of sefl_connections_refused_total, in gate_stats' order:
 * --preauth-per-addr, --handshakes-per-sec, the descriptor budget, accept
 * failing for want of descriptors. */
enum { MONITOR_REFUSALS = 4 };
static const char *const monitor_refusal[MONITOR_REFUSALS] = {
    "per_addr", "rate", "open_limit", "out_of_fds",
};

/* The reason label of sefl_round_waiting, as coord_status.waiting names it. */
enum { MONITOR_WAITS = 2 };
static const char *const monitor_wait[MONITOR_WAITS] = { "clients", "refused" };

/* ---- the settings of the run ------------------------------------------ */

enum { MONITOR_TABLE_WIDTH = 80 };

/* The run settings as /status shows them: the ones that change the result,
 * exactly as server.db records them (coord_run_settings), then those that
 * only change how the run is operated. */
static void monitor_settings(const coord_config *c, settings *s)
{
    coord_run_settings(c, s);
    settings_add(s, "rounds", "%d", c->rounds);
    settings_add(s, "round-timeout", "%.9g", c->round_timeout);
    settings_add(s, "eval-every", "%d", c->eval_every);
    settings_add(s, "heartbeat", "%d", c->heartbeat);
}

/* A value that reads whole as a finite JSON number goes out as one; the
 * rest (names, "private-first:2", "100x") as strings. */
static void monitor_json_value(strbuf *b, const char *v)
{
    char *end;
    double d = strtod(v, &end);
    int number = v[0] && *end == 0 && isfinite(d) && (v[0] == '-' || (v[0] >= '0' && v[0] <= '9'));
    if (number) strbuf_append(b, v, strlen(v));
    else strbuf_json_string(b, v);
}

/* ---- status documents -------------------------------------------------- */

static void monitor_json_time(strbuf *b, const char *key, double t)
{
    if (t > 0) strbuf_printf(b, ",\"%s\":%.3f", key, t);
    else strbuf_printf(b, ",\"%s\":null", key);
}

/* The refused clients a status lists, as JSON objects. */
static void monitor_json_refused(strbuf *b, const coord_status *st)
{
    for (int i = 0; i < st->n_refused && i < COORD_STATUS_REFUSED; i++) {
        strbuf_append(b, i ? ",{\"client\":" : "{\"client\":", i ? 11 : 10);
        strbuf_json_string(b, st->refused[i].client);
        strbuf_append(b, ",\"why\":", 7);
        strbuf_json_string(b, st->refused[i].why);
        strbuf_append(b, "}", 1);
    }
}

int monitor_status_json(const coord_status *st, strbuf *b)
{
    strbuf_append(b, "{\"run_id\":", 10);
    strbuf_json_string(b, st->run_id);
    strbuf_append(b, ",\"phase\":", 9);
    strbuf_json_string(b, st->phase);
    strbuf_printf(b, ",\"ready\":%s,\"round\":%u,\"last_committed_round\":%u,\"attempt\":%d",
                  st->ready ? "true" : "false", st->round, st->last_round, st->attempt);
    monitor_json_time(b, "deadline", st->deadline);
    strbuf_printf(b, ",\"clients\":{\"connected\":%d,\"selected\":%d,\"reported\":%d}",
                  st->connected, st->selected, st->reported);
    strbuf_printf(b, ",\"eval_tasks\":{\"sent\":%d,\"reported\":%d}", st->eval_sent, st->eval_got);
    monitor_json_time(b, "last_commit", st->last_commit);
    if (st->has_eval)
        strbuf_printf(b, ",\"last_eval\":{\"round\":%u,\"weighted_accuracy\":%.6f}",
                      st->eval_round, st->eval_accuracy);
    else
        strbuf_append(b, ",\"last_eval\":null", 17);
    if (st->waiting) {
        strbuf_append(b, ",\"waiting\":{\"reason\":", 21);
        strbuf_json_string(b, st->waiting);
        strbuf_printf(b, ",\"round\":%u,\"eligible\":%d,\"needed\":%d,\"refused\":[", st->next_round,
                      st->eligible, st->cfg->min_clients);
        monitor_json_refused(b, st);
        strbuf_append(b, "]}", 2);
    } else {
        strbuf_append(b, ",\"waiting\":null", 15);
    }
    strbuf_printf(b, ",\"refused_in_round\":{\"round\":%u,\"clients\":%d,\"listed\":[",
                  st->next_round, st->n_refused);
    monitor_json_refused(b, st);
    strbuf_printf(b, "]},\"penalty_box\":%d", st->boxed);
    strbuf_append(b, ",\"settings\":{", 13);
    settings set;
    monitor_settings(st->cfg, &set);
    for (int i = 0; i < set.n; i++) {
        strbuf_printf(b, "%s\"%s\":", i ? "," : "", set.item[i].name);
        monitor_json_value(b, set.item[i].value);
    }
    strbuf_append(b, "}}\n", 3);
    return strbuf_error(b);
}

/* "2026-11-30T07:01:02Z (in 12 s)" or "(3 s ago)". */
static void monitor_table_time(strbuf *b, double t, double now)
{
    char s[32];
    time_t secs = (time_t)t;
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    /* The deadline is ahead, a commit behind: say which, never "in 0 s" for
     * a commit a fraction of a second old. */
    if (t > now) strbuf_printf(b, "%s (in %.0f s)", s, t - now);
    else strbuf_printf(b, "%s (%.0f s ago)", s, now - t);
}

int monitor_status_table(const coord_status *st, strbuf *b)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    strbuf_printf(b, "run        %s\n", st->run_id[0] ? st->run_id : "(none recorded)");
    strbuf_printf(b, "phase      %s%s\n", st->phase, st->ready ? "" : " (not ready)");
    if (!strcmp(st->phase, "train"))
        strbuf_printf(b, "round      %u (attempt %d)\n", st->round, st->attempt);
    if (st->deadline > 0) {
        strbuf_append(b, "deadline   ", 11);
        monitor_table_time(b, st->deadline, now);
        strbuf_append(b, "\n", 1);
    }
    strbuf_printf(b, "clients    %d connected, %d selected, %d reported\n", st->connected,
                  st->selected, st->reported);
    if (!strcmp(st->phase, "eval"))
        strbuf_printf(b, "evaluation %d of %d reports\n", st->eval_got, st->eval_sent);
    strbuf_printf(b, "committed  round %u", st->last_round);
    if (st->last_commit > 0) {
        strbuf_append(b, " at ", 4);
        monitor_table_time(b, st->last_commit, now);
    }
    strbuf_append(b, "\n", 1);
    if (st->has_eval)
        strbuf_printf(b, "last eval  round %u: weighted accuracy %.4f\n", st->eval_round,
                      st->eval_accuracy);
    if (st->waiting && !strcmp(st->waiting, "clients"))
        strbuf_printf(b, "waiting    for clients: %d connected, --min-clients %d\n", st->connected,
                      st->cfg->min_clients);
    else if (st->waiting)
        strbuf_printf(b, "waiting    round %u: %d eligible, --min-clients %d: connect more\n"
                      "           clients or lower --min-clients\n", st->next_round, st->eligible,
                      st->cfg->min_clients);
    /* One line per refused client, cut to the table's width. */
    for (int i = 0; i < st->n_refused && i < COORD_STATUS_REFUSED; i++) {
        char line[MONITOR_TABLE_WIDTH - 10];
        snprintf(line, sizeof line, "%s: %s", st->refused[i].client, st->refused[i].why);
        strbuf_printf(b, "%s %s\n", i ? "          " : "refused   ", line);
    }
    if (st->n_refused > COORD_STATUS_REFUSED)
        strbuf_printf(b, "           and %d more\n", st->n_refused - COORD_STATUS_REFUSED);
    if (st->boxed) strbuf_printf(b, "penalised  %d clients in the penalty box\n", st->boxed);
    settings set;
    monitor_settings(st->cfg, &set);
    strbuf_append(b, "settings  ", 10);
    /* Wrapped before MONITOR_TABLE_WIDTH columns, continuation lines
     * indented under the first flag. */
    size_t col = 10;
    for (int i = 0; i < set.n; i++) {
        const setting *it = &set.item[i];
        size_t w = 4 + strlen(it->name) + strlen(it->value);   /* " --name value" */
        if (i > 0 && col + w > MONITOR_TABLE_WIDTH) {
            strbuf_append(b, "\n          ", 11);
            col = 10;
        }
        strbuf_printf(b, " --%s %s", it->name, it->value);
        col += w;
    }
    strbuf_append(b, "\n", 1);
    return strbuf_error(b);
}

/* ---- metrics ------------------------------------------------------------ */

static int monitor_families(monitor *m, char *err)
{
    metrics *r = m->reg;
    int ret;
#define G(var, name, help) \
    if ((ret = metrics_add(r, METRIC_GAUGE, name, help, NULL, NULL, 0, &m->var, err))) return ret
#define C(var, name, help) \
    if ((ret = metrics_add(r, METRIC_COUNTER, name, help, NULL, NULL, 0, &m->var, err))) return ret
    G(round, "sefl_round", "Round of the attempt in progress, or the last one tried.");
    G(last_round, "sefl_last_committed_round", "Last round committed to server.db.");
    G(connected, "sefl_clients_connected", "Clients welcomed and connected.");
    G(selected, "sefl_clients_selected", "Clients selected for the round in progress.");
    G(reported, "sefl_clients_reported", "Updates folded into the round in progress.");
    G(deadline, "sefl_round_deadline_timestamp_seconds",
      "Unix time of the deadline of the round or evaluation in progress; 0 when none.");
    G(eval_acc, "sefl_eval_weighted_accuracy",
      "Example-weighted accuracy of the last evaluation, also one stored in server.db "
      "before a restart (NaN while there is none).");
    G(eval_round, "sefl_eval_round", "Round of the last evaluation (0 while there is none).");
    G(ready, "sefl_ready", "1 while listening with the database open, else 0.");
    if ((ret = metrics_add(r, METRIC_GAUGE, "sefl_run_info", "The run's id in server.db; always 1.",
                           "run_id", m->run_id_value, 1, &m->run_info, err)))
        return ret;
    C(cand_refused, "sefl_candidates_refused_total",
      "Candidate models not committed: an update over --max-update-norm, or a mean not finite.");
    C(reports_refused, "sefl_eval_reports_refused_total",
      "EvalReports refused as impossible for their client.");
    C(capped, "sefl_updates_weight_capped_total", "Updates whose weight --max-weight-share capped.");
    C(penalised, "sefl_clients_penalised_total", "Clients put in the penalty box.");
    C(diverged, "sefl_trainings_diverged_total", "Local trainings the clients reported diverged.");
    if ((ret = metrics_add(r, METRIC_GAUGE, "sefl_round_waiting",
                           "1 while no round can start, by why: fewer clients connected than "
                           "--min-clients, or too few eligible (the others refused in the round).",
                           "reason", monitor_wait, MONITOR_WAITS, &m->waiting, err)))
        return ret;
    G(eligible, "sefl_clients_eligible",
      "Connected clients that may be selected in the round to come (not refused in it).");
    G(refused, "sefl_clients_refused_in_round",
      "Clients refused in the round to come or in progress: not selected in its attempts.");
    G(boxed, "sefl_clients_penalty_box", "Clients in the penalty box (sit out --penalty-rounds).");
    G(conn_open, "sefl_connections_open", "Client connections open, authenticated or not.");
    if ((ret = metrics_add(r, METRIC_COUNTER, "sefl_connections_refused_total",
                           "Connections closed before their TLS handshake, by the limit they hit.",
                           "reason", monitor_refusal, MONITOR_REFUSALS, &m->conn_refused, err)))
        return ret;
    if ((ret = metrics_add(r, METRIC_COUNTER, "sefl_tls_handshake_failures_total",
                           "TLS handshakes of incoming connections that failed, by reason.",
                           "reason", netstats_hs_reason, NETSTATS_HS_NREASONS, &m->hs, err)))
        return ret;
    C(hs_suppressed, "sefl_tls_handshake_log_suppressed_total",
      "Handshake failure log lines dropped by the rate limit.");
    C(sent, "sefl_bytes_sent_total", "Bytes written to client connections (TLS records).");
    C(received, "sefl_bytes_received_total", "Bytes read from client connections (TLS records).");
    C(cpu, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.");
    G(rss, "process_resident_memory_bytes", "Resident memory size in bytes.");
    G(vms, "process_virtual_memory_bytes", "Virtual memory size in bytes.");
    G(fds, "process_open_fds", "Number of open file descriptors.");
    G(max_fds, "process_max_fds", "Maximum number of open file descriptors.");
    G(start, "process_start_time_seconds", "Start time of the process since unix epoch in seconds.");
#undef G
#undef C
    return 0;
}

/* Sets the gauges and counters that mirror a source with counts of its own. */
static void monitor_update(monitor *m, const coord_status *st)
{
    metric_set(m->round, 0, st->round);
    metric_set(m->last_round, 0, st->last_round);
    metric_set(m->connected, 0, st->connected);
    metric_set(m->selected, 0, st->selected);
    metric_set(m->reported, 0, st->reported);
    metric_set(m->deadline, 0, st->deadline);
    metric_set(m->eval_acc, 0, st->has_eval ? st->eval_accuracy : NAN);
    metric_set(m->eval_round, 0, st->has_eval ? st->eval_round : 0);
    metric_set(m->ready, 0, st->ready);
    metric_set(m->run_info, 0, 1);
    metric_set(m->cand_refused, 0, (double)st->candidates_refused);
    metric_set(m->reports_refused, 0, (double)st->reports_refused);
    metric_set(m->capped, 0, (double)st->weights_capped);
    metric_set(m->penalised, 0, (double)st->penalised);
    metric_set(m->diverged, 0, (double)st->diverged);
    for (int i = 0; i < MONITOR_WAITS; i++)
        metric_set(m->waiting, i, st->waiting && !strcmp(st->waiting, monitor_wait[i]));
    metric_set(m->eligible, 0, st->eligible);
    metric_set(m->refused, 0, st->n_refused);
    metric_set(m->boxed, 0, st->boxed);
    if (st->has_gate) m->gate = st->gate;
    metric_set(m->conn_open, 0, (double)m->gate.open);
    const long refused[MONITOR_REFUSALS] = { m->gate.refused_addr, m->gate.refused_rate,
                                             m->gate.refused_open, m->gate.out_of_fds };
    for (int i = 0; i < MONITOR_REFUSALS; i++) metric_set(m->conn_refused, i, (double)refused[i]);
    netstats ns;
    netstats_get(&ns);
    for (int i = 0; i < NETSTATS_HS_NREASONS; i++) metric_set(m->hs, i, (double)ns.hs_failed[i]);
    metric_set(m->hs_suppressed, 0, (double)ns.hs_log_suppressed);
    metric_set(m->sent, 0, (double)ns.bytes_sent);
    metric_set(m->received, 0, (double)ns.bytes_received);
    procstat ps;
    char err[SEFL_ERRLEN];
    if (procstat_read(&ps, err) == 0) {
        metric_set(m->cpu, 0, ps.cpu_seconds);
        metric_set(m->rss, 0, ps.resident_bytes);
        metric_set(m->vms, 0, ps.virtual_bytes);
        metric_set(m->fds, 0, ps.open_fds);
        metric_set(m->max_fds, 0, ps.max_fds);
        metric_set(m->start, 0, ps.start_time);
    } else if (!m->proc_warned) {
        m->proc_warned = 1;
        log_warn("http: process figures unavailable: %s", err);
    }
}

static void monitor_publish(monitor *m)
{
    if (!m->co) return;
    coord_status st;
    coord_get_status(m->co, &st);
    monitor_update(m, &st);
    strbuf_reset(&m->text);
    strbuf_reset(&m->json);
    strbuf_reset(&m->table);
    metrics_render(coord_event_metrics(m->co), &m->text);
    metrics_render(m->reg, &m->text);
    monitor_status_json(&st, &m->json);
    monitor_status_table(&st, &m->table);
    int ret = strbuf_error(&m->text) || strbuf_error(&m->json) || strbuf_error(&m->table);
    if (ret) {
        /* Start afresh next time; this round of figures is lost. */
        strbuf_free(&m->text);
        strbuf_free(&m->json);
        strbuf_free(&m->table);
    }
    http_snapshot snap = { m->text.p, m->json.p, m->table.p, st.ready };
    if (ret || http_publish(m->h, &snap)) log_warn("http: out of memory publishing the figures");
}

static void monitor_on_timer(uv_timer_t *t)
{
    monitor_publish(t->data);
}

int monitor_start(uv_loop_t *loop, const char *host_port, monitor **out, char *err)
{
    *out = NULL;
    monitor *m = calloc(1, sizeof *m);
    if (!m) {
        err_set(err, "out of memory");
        return -ENOMEM;
    }
    m->loop = loop;
    int ret = http_start(host_port, HTTP_STALE_S, &m->h, err);
    if (ret) goto fail;
    m->reg = metrics_new();
    if (!m->reg) {
        err_set(err, "out of memory");
        ret = -ENOMEM;
        goto fail;
    }
    m->run_id_value[0] = "";
    if ((ret = monitor_families(m, err))) goto fail;
    log_info("http: serving /metrics /status /healthz /readyz on port %d", http_port(m->h));
    *out = m;
    return 0;
fail:
    monitor_free(m);
    return ret;
}

void monitor_attach(monitor *m, const coord *co)
{
    coord_status st;
    coord_get_status(co, &st);
    m->co = co;
    /* The label value array is referenced by the registry: it points at the
     * coord's copy of the id, which lives as long as co. */
    m->run_id_value[0] = st.run_id;
    uv_timer_init(m->loop, &m->timer);
    m->timer.data = m;
    m->timer_on = 1;
    uv_timer_start(&m->timer, monitor_on_timer, MONITOR_REFRESH_MS, MONITOR_REFRESH_MS);
    /* Monitoring must not keep the process up once the coord is done. */
    uv_unref((uv_handle_t *)&m->timer);
    monitor_publish(m);
}

int monitor_port(const monitor *m)
{
    return http_port(m->h);
}

void monitor_close(monitor *m)
{
    if (!m || !m->timer_on) return;
    monitor_publish(m);
    m->co = NULL;
    uv_close((uv_handle_t *)&m->timer, NULL);
    m->timer_on = 0;
}

void monitor_free(monitor *m)
{
    if (!m) return;
    http_free(m->h);
    metrics_free(m->reg);
    strbuf_free(&m->text);
    strbuf_free(&m->json);
    strbuf_free(&m->table);
    free(m);
}
