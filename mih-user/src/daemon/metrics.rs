//! Prometheus text exposition (format 0.0.4) of the daemon, written by
//! hand as mihfd does, and the minimal HTTP/1.0 endpoint that serves it
//! (`GET /metrics`, `GET /status`).
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
//! | `mih_user_cxtp_messages_total` | counter | `direction` (`in`, `out`, `dropped`) |
//! | `mih_user_sap_frames_total` | counter | `direction` |
//! | `mih_user_session_operations_total` | counter | `op` |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::orchestrator::{Fate, MigrationRecord, OrchestratorStats, SchedulerStats};

/// Upper bounds (seconds) of the phase histograms (as mihfd's latency).
pub const TIME_BUCKETS: [f64; 18] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 15.0,
];
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

/// A fixed-bucket histogram.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// Empty, over `bounds`.
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// Add one value.
    pub fn observe(&mut self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    fn render(&self, o: &mut String, name: &str, labels: &str) {
        let mut cum = 0;
        for (i, b) in self.bounds.iter().enumerate() {
            cum += self.counts[i];
            let _ = writeln!(o, "{name}_bucket{{{labels},le=\"{b}\"}} {cum}");
        }
        cum += self.counts[self.bounds.len()];
        let _ = writeln!(o, "{name}_bucket{{{labels},le=\"+Inf\"}} {cum}");
        let _ = writeln!(o, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(o, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// What the daemon accumulates from finished migrations.
#[derive(Debug, Default)]
pub struct MigrationMetrics {
    outcomes: BTreeMap<(&'static str, &'static str, &'static str), u64>,
    phases: BTreeMap<(&'static str, &'static str), Histogram>,
    sizes: BTreeMap<(&'static str, &'static str), Histogram>,
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
                    .entry((role, phase))
                    .or_insert_with(|| Histogram::new(&TIME_BUCKETS))
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
                .entry((role, kind))
                .or_insert_with(|| Histogram::new(&SIZE_BUCKETS))
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
    /// In progress [source, destination].
    pub in_progress: [usize; 2],
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
    /// Uptime.
    pub uptime: Duration,
}

fn counter(o: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        o,
        "# HELP mih_user_{name} {help}\n# TYPE mih_user_{name} counter\nmih_user_{name} {v}"
    );
}

fn gauge(o: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        o,
        "# HELP mih_user_{name} {help}\n# TYPE mih_user_{name} gauge\nmih_user_{name} {v}"
    );
}

fn head(o: &mut String, name: &str, ty: &str, help: &str) {
    let _ = writeln!(
        o,
        "# HELP mih_user_{name} {help}\n# TYPE mih_user_{name} {ty}"
    );
}

/// Render every metric.
pub fn render(s: &Snapshot<'_>) -> String {
    let mut o = String::with_capacity(16 * 1024);
    head(
        &mut o,
        "migrations_started_total",
        "counter",
        "Migrations started.",
    );
    let roles = ["source", "destination"];
    for (i, role) in roles.iter().enumerate() {
        let _ = writeln!(
            o,
            "mih_user_migrations_started_total{{role=\"{role}\"}} {}",
            s.orchestrator.started[i]
        );
    }
    head(
        &mut o,
        "migrations_total",
        "counter",
        "Finished migrations.",
    );
    for ((role, outcome, cause), v) in &s.migrations.outcomes {
        let _ = writeln!(
            o,
            "mih_user_migrations_total{{role=\"{role}\",outcome=\"{outcome}\",cause=\"{cause}\"}} {v}"
        );
    }
    head(
        &mut o,
        "migration_phase_seconds",
        "histogram",
        "Phases of each migration (MIH commit, application data, socket data, CXTP, total).",
    );
    for ((role, phase), h) in &s.migrations.phases {
        h.render(
            &mut o,
            "mih_user_migration_phase_seconds",
            &format!("role=\"{role}\",phase=\"{phase}\""),
        );
    }
    head(
        &mut o,
        "context_octets",
        "histogram",
        "Context sizes of each migration.",
    );
    for ((role, kind), h) in &s.migrations.sizes {
        h.render(
            &mut o,
            "mih_user_context_octets",
            &format!("role=\"{role}\",kind=\"{kind}\""),
        );
    }
    head(
        &mut o,
        "handovers_in_progress",
        "gauge",
        "Handovers under way.",
    );
    for (i, role) in roles.iter().enumerate() {
        let _ = writeln!(
            o,
            "mih_user_handovers_in_progress{{role=\"{role}\"}} {}",
            s.in_progress[i]
        );
    }
    head(
        &mut o,
        "start_refused_total",
        "counter",
        "Handovers not started, by reason.",
    );
    for (k, v) in &s.orchestrator.start_refused {
        let _ = writeln!(o, "mih_user_start_refused_total{{reason=\"{k}\"}} {v}");
    }
    head(
        &mut o,
        "admission_refused_total",
        "counter",
        "Peer commits refused by admission, by reason.",
    );
    for (k, v) in &s.orchestrator.admission_refused {
        let _ = writeln!(o, "mih_user_admission_refused_total{{reason=\"{k}\"}} {v}");
    }
    render_schedule(&mut o, s.schedule, s.waiting);
    counter(
        &mut o,
        "stale_inputs_total",
        "Answers for handovers that had ended.",
        s.orchestrator.stale_inputs,
    );
    counter(
        &mut o,
        "mih_unexpected_total",
        "MIH frames not expected (unknown TID, other primitives).",
        s.orchestrator.mih_unexpected,
    );
    head(
        &mut o,
        "cxtp_messages_total",
        "counter",
        "CXTP messages by direction.",
    );
    for (d, v) in [
        ("out", s.orchestrator.cxtp_sent),
        ("in", s.orchestrator.cxtp_received),
        ("dropped", s.orchestrator.cxtp_dropped),
    ] {
        let _ = writeln!(o, "mih_user_cxtp_messages_total{{direction=\"{d}\"}} {v}");
    }
    counter(
        &mut o,
        "cxtp_send_errors_total",
        "CXTP messages that could not be sent.",
        s.driver.cxtp_send_errors,
    );
    head(&mut o, "sap_frames_total", "counter", "MIH_SAP frames.");
    for (i, d) in ["out", "in", "undecodable", "send_error"]
        .iter()
        .enumerate()
    {
        let _ = writeln!(
            o,
            "mih_user_sap_frames_total{{direction=\"{d}\"}} {}",
            s.driver.sap[i]
        );
    }
    gauge(
        &mut o,
        "sap_registered",
        "1 once mihfd confirmed our registration.",
        u64::from(s.driver.sap_registered),
    );
    head(
        &mut o,
        "session_operations_total",
        "counter",
        "Session exporter/importer calls.",
    );
    for (k, v) in &s.driver.sessions {
        let _ = writeln!(o, "mih_user_session_operations_total{{op=\"{k}\"}} {v}");
    }
    if let Some(x) = &s.x2 {
        for (name, help, v) in [
            ("x2_pdus_total", "X2AP PDUs received.", x.pdus),
            (
                "x2_malformed_total",
                "X2AP PDUs that did not decode.",
                x.malformed,
            ),
            (
                "x2_ignored_total",
                "X2AP PDUs of other procedures.",
                x.ignored,
            ),
            ("x2_prepared_total", "HandoverRequests.", x.prepared),
            ("x2_triggered_total", "Handovers triggered.", x.triggered),
            ("x2_forgotten_total", "Pending UEs forgotten.", x.forgotten),
            ("x2_released_total", "UEContextReleases.", x.released),
            ("x2_timeouts_total", "Pending UEs timed out.", x.timeouts),
            ("x2_evicted_total", "Pending UEs evicted.", x.evicted),
            (
                "x2_unknown_ue_total",
                "Messages about unknown UEs.",
                x.unknown_ue,
            ),
            (
                "x2_unknown_target_total",
                "Triggers towards unknown targets.",
                x.unknown_target,
            ),
        ] {
            counter(&mut o, name, help, v);
        }
        counter(
            &mut o,
            "x2_not_started_total",
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
    ] {
        counter(&mut o, name, help, v);
    }
    gauge(
        &mut o,
        "api_connections_open",
        "API connections open.",
        a.connections_open,
    );
    gauge(
        &mut o,
        "uptime_seconds",
        "Seconds since start.",
        s.uptime.as_secs(),
    );
    o
}

/// The scheduler's counters: queued triggers, retries, how requests ended.
fn render_schedule(o: &mut String, s: &SchedulerStats, waiting: [usize; 2]) {
    head(
        o,
        "handovers_queued_total",
        "counter",
        "X2 triggers queued because the UE was moving or too many handovers were open.",
    );
    for reason in ["busy", "too_many"] {
        let v = s.queued.get(reason).copied().unwrap_or(0);
        let _ = writeln!(
            o,
            "mih_user_handovers_queued_total{{reason=\"{reason}\"}} {v}"
        );
    }
    head(
        o,
        "handovers_queued",
        "gauge",
        "Handovers waiting: queued, or retrying after a rollback.",
    );
    for (state, v) in [("queued", waiting[0]), ("retrying", waiting[1])] {
        let _ = writeln!(o, "mih_user_handovers_queued{{state=\"{state}\"}} {v}");
    }
    counter(
        o,
        "handover_retries_total",
        "Retry attempts started after rollbacks.",
        s.retries,
    );
    head(
        o,
        "handovers_gave_up_total",
        "counter",
        "Handovers whose retries were exhausted, by the cause of the last rollback.",
    );
    for (k, v) in &s.gave_up {
        let _ = writeln!(o, "mih_user_handovers_gave_up_total{{cause=\"{k}\"}} {v}");
    }
    head(
        o,
        "handover_requests_total",
        "counter",
        "X2 handover requests by how they ended.",
    );
    for f in Fate::ALL {
        let _ = writeln!(
            o,
            "mih_user_handover_requests_total{{fate=\"{}\"}} {}",
            f.label(),
            s.ended(f)
        );
    }
    counter(
        o,
        "handover_queue_full_total",
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
