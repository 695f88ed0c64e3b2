//! The daemon's metrics as OpenMetrics text ([`daemon_kit::metrics`], as
//! mihfd's), and the HTTP endpoint that serves them ([`daemon_kit::http`]:
//! `GET /metrics`, `GET /status`; one request per connection, bounded as
//! the control socket is: [`daemon_kit::listener`], `metrics.max_connections`,
//! `metrics.request_timeout_ms`).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `mih_user_migrations_total` | counter | `role`, `outcome`, `cause` |
//! | `mih_user_migration_phase_seconds` | histogram | `role`, `phase` (`mih_commit`, `app_data`, `socket_data`, `cxtp`, `wait_context`, `total`) |
//! | `mih_user_context_octets` | histogram | `role`, `kind` (`app`, `sessions`, `cxtp`) |
//! | `mih_user_handovers_in_progress` | gauge | `role` |
//! | `mih_user_start_refused_total` | counter | `reason` |
//! | `mih_user_admission_refused_total` | counter | `reason` |
//! | `mih_user_handovers_queued_total` | counter | `reason` (`busy`, `too_many`) |
//! | `mih_user_handovers_queued` | gauge | `state` (`queued`, `retrying`) |
//! | `mih_user_handover_retries_total` | counter | |
//! | `mih_user_handovers_gave_up_total` | counter | `cause` |
//! | `mih_user_handover_requests_total` | counter | `fate` (`done`, `refused`, `expired`, `replaced`, `already_there`, `aborted`, `gave_up`, `left`) |
//! | `mih_user_handover_queue_full_total` | counter | |
//! | `mih_user_x2_*_total` | counter | X2 trigger counters |
//! | `mih_user_api_*` | counter/gauge | API server counters |
//! | `mih_user_cxtp_messages_total` | counter | `direction` (`in`, `out`, `dropped`, `stale`: of another attempt) |
//! | `mih_user_complete_total` | counter | `event` (`sent`, `answered`, `unanswered`: the source's MIH_N2N_HO_Complete and its repeats; `stale`: Completes received of another attempt, answered and ignored; `timeout_query`: a destination's complete timeouts that asked the source before committing) |
//! | `mih_user_commit_repeated_total` | counter | |
//! | `mih_user_cxtp_connections_open` | gauge | `direction` (`in`, `out`) |
//! | `mih_user_cxtp_connections_accepted_total` | counter | |
//! | `mih_user_cxtp_connections_refused_total` | counter | `reason` (`unknown_peer`, `limit`, `peer_limit`) |
//! | `mih_user_cxtp_connections_closed_total` | counter | `reason` (`idle`, `invalid`) |
//! | `mih_user_local_connections_open` | gauge | `listener` (`control`, `metrics`) |
//! | `mih_user_local_connections_accepted_total` | counter | `listener` |
//! | `mih_user_local_connections_refused_total` | counter | `listener`, `reason` (`busy`: every connection has a request in progress) |
//! | `mih_user_local_connections_closed_total` | counter | `listener`, `reason` (`evicted_idle`, `timeout`) |
//! | `mih_user_accept_errors_total` | counter | `listener` (`cxtp`, `api`, `control`, `metrics`) |
//! | `mih_user_sap_frames_total` | counter | `direction` |
//! | `mih_user_session_operations_total` | counter | `op` |

use std::collections::BTreeMap;
use std::time::Duration;

use daemon_kit::http::axum::http::StatusCode;
use daemon_kit::http::axum::routing::get;
use daemon_kit::http::axum::Router;
use daemon_kit::http::text;
use daemon_kit::metrics::{labels, time_histograms, Exposition, Histogram, Histograms, Labels};
use daemon_kit::metrics::{prometheus_client::metrics::family::Family, CONTENT_TYPE};

pub use daemon_kit::listener::ListenerCounters;
/// Upper bounds (seconds) of the phase histograms (as mihfd's latency).
pub use daemon_kit::metrics::TIME_BUCKETS;

use crate::orchestrator::{Fate, MigrationRecord, OrchestratorStats, SchedulerStats};

/// Upper bounds (octets) of the size histograms.
pub const SIZE_BUCKETS: [f64; 10] = [
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

/// What the daemon accumulates from finished migrations.
#[derive(Debug)]
pub struct MigrationMetrics {
    outcomes: BTreeMap<(&'static str, &'static str, &'static str), u64>,
    /// `{role, phase}`, over [`TIME_BUCKETS`].
    phases: Histograms,
    /// `{role, kind}`, over [`SIZE_BUCKETS`].
    sizes: Histograms,
}

impl Default for MigrationMetrics {
    fn default() -> Self {
        MigrationMetrics {
            outcomes: BTreeMap::new(),
            phases: time_histograms(),
            sizes: Family::new_with_constructor(|| Histogram::new(SIZE_BUCKETS)),
        }
    }
}

impl MigrationMetrics {
    /// Account for one finished migration.
    pub fn record(&mut self, r: &MigrationRecord) {
        let role = r.role_label();
        let cause = r.cause.as_ref().map_or("none", |c| c.label());
        *self
            .outcomes
            .entry((role, r.outcome_label(), cause))
            .or_default() += 1;
        let p = &r.phases;
        for (phase, d) in [
            ("mih_commit", p.mih_commit),
            ("wait_context", p.wait_context),
            ("app_data", p.app_data),
            ("socket_data", p.socket_data),
            ("cxtp", p.cxtp),
            ("total", Some(p.total)),
        ] {
            if let Some(d) = d {
                self.phases
                    .get_or_create(&labels(&[("role", role), ("phase", phase)]))
                    .observe(d.as_secs_f64());
            }
        }
        let s = &r.sizes;
        for (kind, v) in [
            ("app", s.app_octets),
            ("sessions", s.session_octets),
            ("cxtp", s.cxtp_octets),
        ] {
            self.sizes
                .get_or_create(&labels(&[("role", role), ("kind", kind)]))
                .observe(v as f64);
        }
    }
}

/// Counters kept by the drivers.
#[derive(Debug, Clone, Default)]
pub struct DriverCounters {
    /// SAP frames sent / received / undecodable / send errors.
    pub sap: [u64; 4],
    /// Whether mihfd confirmed our registration.
    pub sap_registered: bool,
    /// CXTP send errors.
    pub cxtp_send_errors: u64,
    /// Session operations: export, restore, release, import, commit,
    /// discard, and failures.
    pub sessions: BTreeMap<&'static str, u64>,
    /// X2 events the orchestrator could not act on.
    pub x2_not_started: u64,
}

/// Everything the render needs, snapshotted under the daemon's lock.
pub struct Snapshot<'a> {
    /// Migration histograms.
    pub migrations: &'a MigrationMetrics,
    /// Orchestrator counters.
    pub orchestrator: &'a OrchestratorStats,
    /// In progress.
    pub in_progress: crate::orchestrator::ByRole<usize>,
    /// Scheduler counters.
    pub schedule: &'a SchedulerStats,
    /// Waiting handovers [queued, retrying].
    pub waiting: [usize; 2],
    /// Driver counters.
    pub driver: &'a DriverCounters,
    /// X2 trigger counters, if the tap runs.
    pub x2: Option<crate::x2ap::X2Counters>,
    /// API server counters.
    pub api: crate::api::server::ApiStats,
    /// CXTP transport counters.
    pub cxtp: cxtp::transport::TransportStats,
    /// The local listeners that run (`control`, `metrics`).
    pub listeners: Vec<(&'static str, ListenerCounters)>,
    /// Uptime.
    pub uptime: Duration,
}

/// One label.
fn l1(k: &'static str, v: &str) -> Labels {
    labels(&[(k, v)])
}

/// Render every metric.
pub fn render(s: &Snapshot<'_>) -> String {
    let mut x = Exposition::new();
    x.counters(
        "mih_user_migrations_started_total",
        "Migrations started.",
        s.orchestrator
            .started
            .labeled()
            .map(|(r, v)| (l1("role", r), v)),
    );
    x.counters(
        "mih_user_migrations_total",
        "Finished migrations.",
        s.migrations
            .outcomes
            .iter()
            .map(|(&(role, outcome, cause), &v)| {
                (
                    labels(&[("role", role), ("outcome", outcome), ("cause", cause)]),
                    v,
                )
            }),
    );
    x.metric(
        "mih_user_migration_phase_seconds",
        "Phases of each migration (MIH commit, application data, socket data, CXTP, total).",
        s.migrations.phases.clone(),
    );
    x.metric(
        "mih_user_context_octets",
        "Context sizes of each migration.",
        s.migrations.sizes.clone(),
    );
    x.gauges(
        "mih_user_handovers_in_progress",
        "Handovers under way.",
        s.in_progress
            .labeled()
            .map(|(r, v)| (l1("role", r), v as i64)),
    );
    x.counters(
        "mih_user_start_refused_total",
        "Handovers not started, by reason.",
        s.orchestrator
            .start_refused
            .iter()
            .map(|(k, &v)| (l1("reason", k), v)),
    );
    x.counters(
        "mih_user_admission_refused_total",
        "Peer commits refused by admission, by reason.",
        s.orchestrator
            .admission_refused
            .iter()
            .map(|(k, &v)| (l1("reason", k), v)),
    );
    render_schedule(&mut x, s.schedule, s.waiting);
    x.counter(
        "mih_user_stale_inputs_total",
        "Answers for handovers that had ended.",
        s.orchestrator.stale_inputs,
    );
    x.counter(
        "mih_user_mih_unexpected_total",
        "MIH frames not expected (unknown TID, other primitives).",
        s.orchestrator.mih_unexpected,
    );
    x.counters(
        "mih_user_cxtp_messages_total",
        "CXTP messages by direction.",
        [
            ("out", s.orchestrator.cxtp_sent),
            ("in", s.orchestrator.cxtp_received),
            ("dropped", s.orchestrator.cxtp_dropped),
            ("stale", s.orchestrator.cxtp_stale),
        ]
        .map(|(d, v)| (l1("direction", d), v)),
    );
    x.counters(
        "mih_user_complete_total",
        "MIH_N2N_HO_Complete: sent (with repeats), answered, unanswered after the repeats, sends skipped for want of a free TID (source); of another attempt, questions to the source at the complete timeout (destination).",
        [
            ("sent", s.orchestrator.complete_sent),
            ("answered", s.orchestrator.complete_answered),
            ("unanswered", s.orchestrator.complete_unanswered),
            ("stale", s.orchestrator.complete_stale),
            ("timeout_query", s.orchestrator.timeout_queries),
            ("no_tid", s.orchestrator.complete_no_tid),
        ]
        .map(|(e, v)| (l1("event", e), v)),
    );
    x.counter(
        "mih_user_commit_repeated_total",
        "MIH_N2N_HO_Commit indications of an attempt seen already.",
        s.orchestrator.commit_repeated,
    );
    x.counter(
        "mih_user_cxtp_send_errors_total",
        "CXTP messages that could not be sent.",
        s.driver.cxtp_send_errors,
    );
    let cx = &s.cxtp;
    x.gauges(
        "mih_user_cxtp_connections_open",
        "CXTP connections open.",
        [("in", cx.open_incoming), ("out", cx.open_outgoing)]
            .map(|(d, v)| (l1("direction", d), v as i64)),
    );
    x.counter(
        "mih_user_cxtp_connections_accepted_total",
        "CXTP connections accepted (past the peer filter and the caps).",
        cx.accepted,
    );
    x.counters(
        "mih_user_cxtp_connections_refused_total",
        "CXTP connections closed before anything was read, by reason.",
        [
            ("unknown_peer", cx.refused_unknown_peer),
            ("limit", cx.refused_limit),
            ("peer_limit", cx.refused_peer_limit),
        ]
        .map(|(r, v)| (l1("reason", r), v)),
    );
    x.counters(
        "mih_user_cxtp_connections_closed_total",
        "CXTP connections closed by us, by reason.",
        [("idle", cx.closed_idle), ("invalid", cx.closed_invalid)]
            .map(|(r, v)| (l1("reason", r), v)),
    );
    x.counters(
        "mih_user_sap_frames_total",
        "MIH_SAP frames.",
        ["out", "in", "undecodable", "send_error"]
            .iter()
            .enumerate()
            .map(|(i, d)| (l1("direction", d), s.driver.sap[i])),
    );
    x.gauge(
        "mih_user_sap_registered",
        "1 once mihfd confirmed our registration.",
        i64::from(s.driver.sap_registered),
    );
    x.counters(
        "mih_user_session_operations_total",
        "Session exporter/importer calls.",
        s.driver.sessions.iter().map(|(k, &v)| (l1("op", k), v)),
    );
    if let Some(t) = &s.x2 {
        for (name, help, v) in [
            ("x2_pdus_total", "X2AP PDUs received.", t.pdus),
            (
                "x2_malformed_total",
                "X2AP PDUs that did not decode.",
                t.malformed,
            ),
            (
                "x2_ignored_total",
                "X2AP PDUs of other procedures.",
                t.ignored,
            ),
            ("x2_prepared_total", "HandoverRequests.", t.prepared),
            ("x2_triggered_total", "Handovers triggered.", t.triggered),
            ("x2_forgotten_total", "Pending UEs forgotten.", t.forgotten),
            ("x2_released_total", "UEContextReleases.", t.released),
            ("x2_timeouts_total", "Pending UEs timed out.", t.timeouts),
            ("x2_evicted_total", "Pending UEs evicted.", t.evicted),
            (
                "x2_unknown_ue_total",
                "Messages about unknown UEs.",
                t.unknown_ue,
            ),
            (
                "x2_unknown_target_total",
                "Triggers towards unknown targets.",
                t.unknown_target,
            ),
        ] {
            x.counter(&format!("mih_user_{name}"), help, v);
        }
        x.counter(
            "mih_user_x2_not_started_total",
            "X2 triggers the orchestrator refused.",
            s.driver.x2_not_started,
        );
    }
    let a = &s.api;
    for (name, help, v) in [
        (
            "api_connections_accepted_total",
            "API connections accepted.",
            a.connections_accepted,
        ),
        (
            "api_connections_refused_total",
            "API connections refused.",
            a.connections_refused,
        ),
        (
            "api_malformed_frames_total",
            "API frames that did not decode.",
            a.malformed_frames,
        ),
        (
            "api_slow_consumers_total",
            "API clients closed for not reading.",
            a.slow_consumers,
        ),
        (
            "api_handshake_timeouts_total",
            "API clients without Hello.",
            a.handshake_timeouts,
        ),
        (
            "api_registration_timeouts_total",
            "API clients closed for registering no service in time.",
            a.registration_timeouts,
        ),
        (
            "api_connections_evicted_total",
            "API clients without a service closed to make room.",
            a.connections_evicted,
        ),
    ] {
        x.counter(&format!("mih_user_{name}"), help, v);
    }
    let local = &s.listeners;
    x.gauges(
        "mih_user_local_connections_open",
        "Control and metrics connections open.",
        local
            .iter()
            .map(|(l, c)| (l1("listener", l), c.open as i64)),
    );
    x.counters(
        "mih_user_local_connections_accepted_total",
        "Control and metrics connections admitted.",
        local.iter().map(|(l, c)| (l1("listener", l), c.accepted)),
    );
    x.counters(
        "mih_user_local_connections_refused_total",
        "Control and metrics connections closed at once, by reason.",
        local.iter().map(|(l, c)| {
            (
                labels(&[("listener", l), ("reason", "busy")]),
                c.refused_full,
            )
        }),
    );
    x.counters(
        "mih_user_local_connections_closed_total",
        "Control and metrics connections closed by us, by reason.",
        local.iter().flat_map(|(l, c)| {
            [("evicted_idle", c.evicted_idle), ("timeout", c.timeouts)]
                .map(|(r, v)| (labels(&[("listener", l), ("reason", r)]), v))
        }),
    );
    x.counters(
        "mih_user_accept_errors_total",
        "accept() errors, each retried after a backoff, by listener.",
        [
            (l1("listener", "cxtp"), cx.accept_errors),
            (l1("listener", "api"), a.accept_errors),
        ]
        .into_iter()
        .chain(
            local
                .iter()
                .map(|(l, c)| (l1("listener", l), c.accept_errors)),
        ),
    );
    x.gauge(
        "mih_user_api_connections_open",
        "API connections open.",
        a.connections_open as i64,
    );
    x.gauge(
        "mih_user_uptime_seconds",
        "Seconds since start.",
        s.uptime.as_secs() as i64,
    );
    x.encode()
}

/// The scheduler's counters: queued triggers, retries, how requests ended.
fn render_schedule(x: &mut Exposition, s: &SchedulerStats, waiting: [usize; 2]) {
    x.counters(
        "mih_user_handovers_queued_total",
        "X2 triggers queued because the UE was moving or too many handovers were open.",
        ["busy", "too_many"].map(|reason| {
            (
                l1("reason", reason),
                s.queued.get(reason).copied().unwrap_or(0),
            )
        }),
    );
    x.gauges(
        "mih_user_handovers_queued",
        "Handovers waiting: queued, or retrying after a rollback.",
        [("queued", waiting[0]), ("retrying", waiting[1])]
            .map(|(state, v)| (l1("state", state), v as i64)),
    );
    x.counter(
        "mih_user_handover_retries_total",
        "Retry attempts started after rollbacks.",
        s.retries,
    );
    x.counters(
        "mih_user_handovers_gave_up_total",
        "Handovers whose retries were exhausted, by the cause of the last rollback.",
        s.gave_up.iter().map(|(k, &v)| (l1("cause", k), v)),
    );
    x.counters(
        "mih_user_handover_requests_total",
        "X2 handover requests by how they ended.",
        Fate::ALL
            .iter()
            .map(|f| (l1("fate", f.label()), s.ended(*f))),
    );
    x.counter(
        "mih_user_handover_queue_full_total",
        "Requests refused, and retries dropped, because the queue was full.",
        s.queue_full,
    );
}

/// One migration as JSON (control socket, `/status`).
pub fn record_json(r: &MigrationRecord) -> serde_json::Value {
    let us = |d: Option<Duration>| d.map(|d| d.as_micros() as u64);
    serde_json::json!({
        "id": r.id,
        "ue": r.ue.to_string(),
        "role": r.role_label(),
        "peer": r.peer,
        "trigger": r.trigger.label(),
        "outcome": r.outcome_label(),
        "cause": r.cause.as_ref().map(|c| c.to_string()),
        "cause_label": r.cause.as_ref().map(|c| c.label()),
        "phases_us": {
            "mih_commit": us(r.phases.mih_commit),
            "wait_context": us(r.phases.wait_context),
            "app_data": us(r.phases.app_data),
            "socket_data": us(r.phases.socket_data),
            "cxtp": us(r.phases.cxtp),
            "total": r.phases.total.as_micros() as u64,
        },
        "sizes": {
            "services": r.sizes.services,
            "app_octets": r.sizes.app_octets,
            "sessions": r.sizes.sessions,
            "session_octets": r.sizes.session_octets,
            "cxtp_messages": r.sizes.cxtp_messages,
            "cxtp_octets": r.sizes.cxtp_octets,
        },
    })
}

/// The endpoint's routes.
fn router(h: super::MihUserHandle) -> Router {
    let m = h.clone();
    Router::new()
        .route(
            "/metrics",
            get(move || async move { text(StatusCode::OK, CONTENT_TYPE, m.metrics_text()) }),
        )
        .route(
            "/status",
            get(move || async move {
                text(
                    StatusCode::OK,
                    "application/json",
                    h.status_json().to_string(),
                )
            }),
        )
        .fallback(|| async {
            text(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "try /metrics or /status\n".into(),
            )
        })
}

/// Serve `GET /metrics` and `GET /status` on `l`, one request per
/// connection (see [`daemon_kit::listener`] for the bounds).
pub(super) async fn serve(
    h: super::MihUserHandle,
    l: tokio::net::TcpListener,
    limits: daemon_kit::listener::LocalLimits,
    stats: std::sync::Arc<daemon_kit::listener::LocalStats>,
) {
    daemon_kit::http::serve("metrics", l, limits, stats, router(h)).await
}
