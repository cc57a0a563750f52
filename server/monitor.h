/* monitor: what sefl-server --http serves. A timer on the coordinator's
 * loop renders, every MONITOR_REFRESH_MS, the Prometheus text (the coord's
 * event metrics, gauges of its status, the transport's counters from
 * netstats.h and the process_* figures), the status JSON and the status
 * table, and publishes them to the HTTP endpoint (http.h), whose own
 * thread serves them. All rendering is on the loop thread, so the
 * coordinator's state is only ever read there.
 *
 * Metrics (names per the Prometheus naming guide; `promtool check metrics`
 * is clean on them, tests/integration/prometheus.sh checks it):
 *   sefl_rounds_committed_total, sefl_rounds_abandoned_total,
 *   sefl_round_duration_seconds (histogram), sefl_updates_accepted_total,
 *   sefl_updates_rejected_total{reason}   (coord_metrics.h)
 *   sefl_round, sefl_last_committed_round, sefl_clients_connected,
 *   sefl_clients_selected, sefl_clients_reported,
 *   sefl_round_deadline_timestamp_seconds, sefl_eval_weighted_accuracy,
 *   sefl_eval_round, sefl_ready, sefl_run_info{run_id},
 *   sefl_candidates_refused_total, sefl_eval_reports_refused_total,
 *   sefl_updates_weight_capped_total, sefl_clients_penalised_total,
 *   sefl_trainings_diverged_total, sefl_round_waiting{reason},
 *   sefl_clients_eligible, sefl_clients_refused_in_round,
 *   sefl_clients_penalty_box, sefl_connections_open,
 *   sefl_connections_refused_total{reason} (from coord_get_status)
 *   sefl_tls_handshake_failures_total{reason},
 *   sefl_tls_handshake_log_suppressed_total,
 *   sefl_bytes_sent_total, sefl_bytes_received_total   (netstats.h)
 *   process_cpu_seconds_total, process_resident_memory_bytes,
 *   process_virtual_memory_bytes, process_open_fds, process_max_fds,
 *   process_start_time_seconds             (procstat.h)
 * Counters count since the process started, as Prometheus expects (it
 * handles the reset at a restart); server.db holds the run's totals.
 */
#ifndef SEFL_MONITOR_H
#define SEFL_MONITOR_H

#include <uv.h>

#include "common/strbuf.h"
#include "server/coord.h"

#define MONITOR_REFRESH_MS 250

typedef struct monitor monitor;

/* Starts the HTTP endpoint on host_port; it answers /readyz 503 until
 * monitor_attach. The refresh timer does not keep the loop alive. Returns
 * 0 with *out, or negative with err (then nothing is left running). */
int monitor_start(uv_loop_t *loop, const char *host_port, monitor **out, char *err);

/* Serves co's figures from now on (publishes at once). co must stay valid
 * until monitor_close. */
void monitor_attach(monitor *m, const coord *co);

int monitor_port(const monitor *m);

/* Publishes a last snapshot (the coord done: /readyz 503) and closes the
 * timer; run the loop afterwards so that the close completes. */
void monitor_close(monitor *m);

/* Stops the HTTP endpoint and frees; after monitor_close and the loop run
 * (or when the timer was never started). Accepts NULL. */
void monitor_free(monitor *m);

/* Renders co's status (what /status serves) as JSON or as the table that
 * `sefl-server status` prints. Exposed for the suites. Returns 0 or
 * -ENOMEM. */
int monitor_status_json(const coord_status *st, strbuf *out);
int monitor_status_table(const coord_status *st, strbuf *out);

#endif
