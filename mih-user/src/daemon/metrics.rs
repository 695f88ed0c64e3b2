//! Prometheus text exposition (format 0.0.4) of the daemon, written by
//! hand as mihfd does, and the minimal HTTP/1.0 endpoint that serves it
//! (`GET /metrics`, `GET /status`; one request per connection, bounded as
//! the control socket is: [`super::listener`], `metrics.max_connections`,
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
//! | `mih_user_complete_total` | counter | `event` (`sent`, `answered`, `unanswered`: the source's MIH_N2N_HO_Complete and its repeats; `stale`: Completes received of another attempt, answered and ignored) |
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

/// Counters of one local listener (control socket, metrics endpoint).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerCounters {
    /// Connections open now.
    pub open: u64,
    /// Connections admitted.
    pub accepted: u64,
    /// Connections closed at once: every connection had a request in
    /// progress.
    pub refused_full: u64,
    /// Idle connections closed to make room for a new one.
    pub evicted_idle: u64,
    /// Connections closed because a request did not arrive, or an answer
    /// was not taken, in time.
    pub timeouts: u64,
    /// `accept()` errors (each retried after a backoff).
    pub accept_errors: u64,
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
    for (role, v) in s.orchestrator.started.labeled() {
        let _ = writeln!(
            o,
            "mih_user_migrations_started_total{{role=\"{role}\"}} {v}"
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
    for (role, v) in s.in_progress.labeled() {
        let _ = writeln!(o, "mih_user_handovers_in_progress{{role=\"{role}\"}} {v}");
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
        ("stale", s.orchestrator.cxtp_stale),
    ] {
        let _ = writeln!(o, "mih_user_cxtp_messages_total{{direction=\"{d}\"}} {v}");
    }
    head(
        &mut o,
        "complete_total",
        "counter",
        "MIH_N2N_HO_Complete: sent (with repeats), answered, unanswered after the repeats (source); of another attempt (destination).",
    );
    for (e, v) in [
        ("sent", s.orchestrator.complete_sent),
        ("answered", s.orchestrator.complete_answered),
        ("unanswered", s.orchestrator.complete_unanswered),
        ("stale", s.orchestrator.complete_stale),
    ] {
        let _ = writeln!(o, "mih_user_complete_total{{event=\"{e}\"}} {v}");
    }
    counter(
        &mut o,
        "commit_repeated_total",
        "MIH_N2N_HO_Commit indications of an attempt seen already.",
        s.orchestrator.commit_repeated,
    );
    counter(
        &mut o,
        "cxtp_send_errors_total",
        "CXTP messages that could not be sent.",
        s.driver.cxtp_send_errors,
    );
    let cx = &s.cxtp;
    head(
        &mut o,
        "cxtp_connections_open",
        "gauge",
        "CXTP connections open.",
    );
    for (d, v) in [("in", cx.open_incoming), ("out", cx.open_outgoing)] {
        let _ = writeln!(o, "mih_user_cxtp_connections_open{{direction=\"{d}\"}} {v}");
    }
    counter(
        &mut o,
        "cxtp_connections_accepted_total",
        "CXTP connections accepted (past the peer filter and the caps).",
        cx.accepted,
    );
    head(
        &mut o,
        "cxtp_connections_refused_total",
        "counter",
        "CXTP connections closed before anything was read, by reason.",
    );
    for (r, v) in [
        ("unknown_peer", cx.refused_unknown_peer),
        ("limit", cx.refused_limit),
        ("peer_limit", cx.refused_peer_limit),
    ] {
        let _ = writeln!(
            o,
            "mih_user_cxtp_connections_refused_total{{reason=\"{r}\"}} {v}"
        );
    }
    head(
        &mut o,
        "cxtp_connections_closed_total",
        "counter",
        "CXTP connections closed by us, by reason.",
    );
    for (r, v) in [("idle", cx.closed_idle), ("invalid", cx.closed_invalid)] {
        let _ = writeln!(
            o,
            "mih_user_cxtp_connections_closed_total{{reason=\"{r}\"}} {v}"
        );
    }
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
        counter(&mut o, name, help, v);
    }
    let local = &s.listeners;
    head(
        &mut o,
        "local_connections_open",
        "gauge",
        "Control and metrics connections open.",
    );
    for (l, c) in local {
        let _ = writeln!(
            o,
            "mih_user_local_connections_open{{listener=\"{l}\"}} {}",
            c.open
        );
    }
    head(
        &mut o,
        "local_connections_accepted_total",
        "counter",
        "Control and metrics connections admitted.",
    );
    for (l, c) in local {
        let _ = writeln!(
            o,
            "mih_user_local_connections_accepted_total{{listener=\"{l}\"}} {}",
            c.accepted
        );
    }
    head(
        &mut o,
        "local_connections_refused_total",
        "counter",
        "Control and metrics connections closed at once, by reason.",
    );
    for (l, c) in local {
        let _ = writeln!(
            o,
            "mih_user_local_connections_refused_total{{listener=\"{l}\",reason=\"busy\"}} {}",
            c.refused_full
        );
    }
    head(
        &mut o,
        "local_connections_closed_total",
        "counter",
        "Control and metrics connections closed by us, by reason.",
    );
    for (l, c) in local {
        for (r, v) in [("evicted_idle", c.evicted_idle), ("timeout", c.timeouts)] {
            let _ = writeln!(
                o,
                "mih_user_local_connections_closed_total{{listener=\"{l}\",reason=\"{r}\"}} {v}"
            );
        }
    }
    head(
        &mut o,
        "accept_errors_total",
        "counter",
        "accept() errors, each retried after a backoff, by listener.",
    );
    let _ = writeln!(
        o,
        "mih_user_accept_errors_total{{listener=\"cxtp\"}} {}",
        cx.accept_errors
    );
    let _ = writeln!(
        o,
        "mih_user_accept_errors_total{{listener=\"api\"}} {}",
        a.accept_errors
    );
    for (l, c) in local {
        let _ = writeln!(
            o,
            "mih_user_accept_errors_total{{listener=\"{l}\"}} {}",
            c.accept_errors
        );
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

/// Serve `GET /metrics` and `GET /status` on `l`, one request per
/// connection (see [`super::listener`] for the bounds).
pub(super) async fn serve(
    h: super::MihUserHandle,
    l: tokio::net::TcpListener,
    limits: super::listener::LocalLimits,
    stats: std::sync::Arc<super::listener::LocalStats>,
) {
    super::listener::serve("metrics", l, limits, stats, move |s, conn| {
        let h = h.clone();
        async move {
            let _ = http(h, s, conn).await;
        }
    })
    .await
}

/// Longest request head read.
const MAX_HEAD: usize = 8192;

async fn http(
    h: super::MihUserHandle,
    mut s: tokio::net::TcpStream,
    conn: super::listener::Conn,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let read = async {
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() <= MAX_HEAD {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, std::io::Error>(buf)
    };
    let Some(buf) = conn.request(read).await else {
        return Ok(()); // no request in time
    };
    let buf = buf?;
    let line = String::from_utf8_lossy(&buf);
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let (status, ctype, body) = match path {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", h.metrics_text()),
        "/status" => ("200 OK", "application/json", h.status_json().to_string()),
        _ => (
            "404 Not Found",
            "text/plain",
            "try /metrics or /status\n".into(),
        ),
    };
    let head = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        s.write_all(head.as_bytes()).await?;
        s.write_all(body.as_bytes()).await?;
        s.shutdown().await
    };
    conn.answer(write).await.unwrap_or(Ok(()))
}
