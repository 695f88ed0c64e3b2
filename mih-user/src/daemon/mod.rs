//! The mih-user daemon (feature `daemon`): tokio drivers around the
//! sans-IO [`Orchestrator`].
//!
//! * **MIH_SAP**: a UDP socket on loopback towards the local mihfd; the
//!   daemon registers as the handler of the network handover commands
//!   (MIH_CMD_LIST bit 3) and re-registers every `mihf.register_interval_ms`
//!   (mihfd may restart). Confirms and indications go to the orchestrator.
//! * **Service Mobility API**: the [`ApiServer`] on its Unix socket; the
//!   orchestrator's export/import/outcome actions become calls on it.
//! * **CXTP**: the `cxtp` TCP transport (listen address = this eNBC's CXTP
//!   address); one sending task per peer. Only the `[[peers]]` addresses
//!   may connect (unless `cxtp.accept_any`), with caps per peer and in
//!   total and an idle timeout ([`Config::transport_config`]).
//! * **X2AP**: the [`Tap`] (UDP/TCP taps, pcap replay, timeouts); a
//!   HandoverRequestAcknowledge starts a handover, a HandoverCancel after
//!   it aborts one.
//! * **Operator control**: a Unix socket speaking JSON lines
//!   ([`control`]): `handover`, `abort`, `status`.
//! * **Metrics**: `GET /metrics` (Prometheus text) and `GET /status`
//!   (JSON) on a small HTTP endpoint ([`metrics`]).
//!
//! The control socket and the metrics endpoint share [`daemon_kit::listener`]: a cap
//! on connections that idle ones cannot exhaust and a request timeout.
//! Every listener (these two, the API, CXTP) survives accept errors
//! (`cxtp::transport::accept`).
//!
//! Concurrency: the orchestrator sits behind one `std::sync::Mutex`, never
//! held across an `.await`. Every input (a frame, a message, an answer, a
//! timer) takes the lock, feeds the orchestrator, drains its actions and
//! events, releases the lock and then carries the actions out: short
//! synchronous ones in place (SAP sends, session calls, outcome
//! notifications), the API's export and import in their own tasks (they
//! wait for the services). A timer task sleeps until `poll_timeout()`.

pub mod config;
pub mod control;
#[cfg(target_os = "linux")]
pub mod hooks;
pub mod metrics;
#[cfg(target_os = "linux")]
mod recovery;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cxtp::transport::{TcpSender, TcpTransport};
use mihf::proto::sap::{self, Registration};
use mihf::wire::{CommandList, Message, MihfId};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::api::server::ApiServer;
use crate::orchestrator::{
    flatten_connections, Action, Event, HandoverId, HandoverRequest, MemorySessions,
    MigrationRecord, NodeView, Orchestrator, PendingState, Requested, ScheduleEvent, Scheduler,
    SessionExporter, SessionImporter, StartError, TriggerKind,
};
#[cfg(target_os = "linux")]
use crate::sessions::journal;
use crate::tap::{Pace, Tap};
use crate::x2ap::{ForgetReason, X2Event, X2Trigger};
use config::{Config, SessionMode};
use daemon_kit::listener::{LocalLimits, LocalStats};
use metrics::{DriverCounters, MigrationMetrics, Snapshot};

/// Most migration records kept for `status`.
const RECENT: usize = 32;
/// Most X2-triggered UEs remembered (to abort on a HandoverCancel).
const MAX_X2_UES: usize = 4096;
/// Most handovers remembered per X2 trigger (its first start and retries).
const MAX_X2_HANDOVERS: usize = 16;
/// CXTP messages queued per peer.
const CXTP_QUEUE: usize = 4096;

/// The session exporter and importer the daemon calls.
#[derive(Clone)]
pub struct Backends {
    /// Source side.
    pub exporter: Arc<dyn SessionExporter>,
    /// Destination side.
    pub importer: Arc<dyn SessionImporter>,
    /// `tcp_repair`: the sessions (and their journal), for the recovery.
    #[cfg(target_os = "linux")]
    handoff: Option<Arc<crate::sessions::handoff::HandoffSessions>>,
    /// What the journal held at start: unfinished migrations of a previous
    /// process, recovered by [`MihUser::start`].
    #[cfg(target_os = "linux")]
    recovered: Arc<Mutex<Vec<(journal::Entry, journal::EntryHandle)>>>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends").finish_non_exhaustive()
    }
}

impl Backends {
    /// One object for both sides.
    pub fn both<T: SessionExporter + SessionImporter + 'static>(t: Arc<T>) -> Backends {
        Backends {
            exporter: t.clone(),
            importer: t,
            #[cfg(target_os = "linux")]
            handoff: None,
            #[cfg(target_os = "linux")]
            recovered: Arc::default(),
        }
    }

    /// What `sessions.mode` asks for, without kernel sessions (`none` and
    /// `memory`; `tcp_repair` needs [`Backends::from_config`]).
    pub fn from_mode(mode: SessionMode) -> Backends {
        Backends::both(Arc::new(MemorySessions::new(mode == SessionMode::Memory)))
    }

    /// What `[sessions]` asks for. For `tcp_repair`: checks the capability,
    /// opens the session journal (its lock, and what a previous process
    /// left in it: recovered by [`MihUser::start`]; bad entries are moved
    /// aside and logged), binds the hand-off socket, builds the hooks and
    /// spawns the hand-off reader (call it inside a tokio runtime); the
    /// error says what is missing. `export_timeout` is the services'
    /// (`api.export_timeout_ms`): a socket a service gives after it (its
    /// export rolled back meanwhile) goes back to it 500 ms later.
    pub fn from_config(s: &config::Sessions, export_timeout: Duration) -> Result<Backends, String> {
        if s.mode != SessionMode::TcpRepair {
            return Ok(Backends::from_mode(s.mode));
        }
        #[cfg(target_os = "linux")]
        {
            use crate::sessions::handoff::{HandoffServer, HandoffSessions, Hooks};
            crate::sessions::tcp_repair::check_capability().map_err(|e| {
                format!(
                    "sessions.mode = \"tcp_repair\": {e}; without it, use mode = \"none\" \
                     (application contexts still migrate, TCP connections do not)"
                )
            })?;
            let path = s
                .handoff_socket
                .as_deref()
                .ok_or("sessions.handoff_socket is required with mode = \"tcp_repair\"")?;
            let (journal, specs, found) = open_journal(s)?;
            let server =
                HandoffServer::bind(path).map_err(|e| format!("sessions.handoff_socket: {e}"))?;
            let build = |key: &str, h: &Option<config::HookConfig>| {
                h.as_ref().map(|h| hooks::build(key, h)).transpose()
            };
            let hooks = Hooks {
                hold: build("sessions.hold", &s.hold)?,
                release: build("sessions.release", &s.release)?,
                path_switch: build("sessions.path_switch", &s.path_switch)?,
            };
            let sessions = Arc::new(
                HandoffSessions::new(server, hooks)
                    .with_journal(journal, specs)
                    .with_orphan_timeout(export_timeout + Duration::from_millis(500)),
            );
            let runner = sessions.clone();
            tokio::spawn(async move {
                if let Err(e) = runner.run().await {
                    tracing::error!("hand-off socket reader stopped: {e}");
                }
            });
            let mut b = Backends::both(sessions.clone());
            b.handoff = Some(sessions);
            b.recovered = Arc::new(Mutex::new(found));
            Ok(b)
        }
        #[cfg(not(target_os = "linux"))]
        Err("sessions.mode = \"tcp_repair\" needs Linux".into())
    }
}

/// Open the session journal of `[sessions]` (`tcp_repair`): its lock, the
/// entries a previous process left (bad ones moved aside, logged), and the
/// hooks' description recorded with every entry.
#[cfg(target_os = "linux")]
#[allow(clippy::type_complexity)]
fn open_journal(
    s: &config::Sessions,
) -> Result<
    (
        Arc<journal::Journal>,
        journal::HookSpecs,
        Vec<(journal::Entry, journal::EntryHandle)>,
    ),
    String,
> {
    let dir = s
        .journal_dir()
        .ok_or("sessions.journal_dir: no directory (and no handoff_socket to put it next to)")?;
    let (j, scan) = journal::Journal::open(journal::JournalConfig {
        dir,
        max_entries: s.journal_max_entries,
        max_bytes: s.journal_max_bytes,
    })
    .map_err(|e| format!("sessions.journal_dir: {e}"))?;
    for e in &scan.bad {
        tracing::error!(target: "mih_user::recovery", "{e} (moved to {}/)", journal::ASIDE);
    }
    for p in &scan.over_cap {
        tracing::error!(target: "mih_user::recovery", entry = %p.display(), "journal entry over sessions.journal_max_entries / journal_max_bytes: left for the next start");
    }
    if scan.removed_temp > 0 {
        tracing::info!(target: "mih_user::recovery", files = scan.removed_temp, "removed the temporary files of an interrupted journal write");
    }
    let json =
        |h: &Option<config::HookConfig>| h.as_ref().and_then(|h| serde_json::to_string(h).ok());
    let specs = journal::HookSpecs {
        hold: json(&s.hold),
        release: json(&s.release),
        path_switch: json(&s.path_switch),
    };
    tracing::info!(target: "mih_user::recovery", dir = %j.dir().display(), unfinished = scan.entries.len(), "session journal open");
    Ok((Arc::new(j), specs, scan.entries))
}

/// Why an operator handover did not produce a record.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// Not started.
    #[error(transparent)]
    Start(#[from] StartError),
    /// No outcome within the wait.
    #[error("no outcome within {0:?}")]
    Timeout(Duration),
    /// The daemon stopped.
    #[error("the daemon stopped")]
    Stopped,
}

#[derive(Default)]
struct Io {
    sap_out: AtomicU64,
    sap_in: AtomicU64,
    sap_bad: AtomicU64,
    sap_send_errors: AtomicU64,
    cxtp_send_errors: AtomicU64,
    x2_not_started: AtomicU64,
    registered: AtomicBool,
}

struct State {
    orch: Orchestrator,
    /// X2 triggers that wait, and retries after rollbacks.
    sched: Scheduler,
    armed: Option<Instant>,
    metrics: MigrationMetrics,
    sessions: std::collections::BTreeMap<&'static str, u64>,
    waiters: HashMap<HandoverId, oneshot::Sender<MigrationRecord>>,
    recent: VecDeque<MigrationRecord>,
    /// Old eNB UE X2AP ID → the migration its trigger asked for.
    x2_ues: HashMap<u16, X2Migration>,
    mihf_id: Option<String>,
    /// Source rollbacks whose destination refused the contexts (failed
    /// CTDR, CTC): it cannot commit (recorded in the session journal).
    rollback_refused: HashMap<IpAddr, bool>,
    /// The session journal's recovery after a restart.
    #[cfg(target_os = "linux")]
    recovery: recovery::Recovery,
}

/// What an X2 trigger started: the scheduler's request and the handovers
/// it ran (a queued start, retries), which a HandoverCancel of that X2
/// handover may abort, and nothing else.
struct X2Migration {
    ue: IpAddr,
    request: crate::orchestrator::schedule::RequestNo,
    handovers: Vec<HandoverId>,
}

struct Shared {
    state: Mutex<State>,
    timer: Notify,
    api: ApiServer,
    sap: Arc<UdpSocket>,
    mihf_sap: SocketAddr,
    user_id: MihfId,
    cxtp: TcpSender,
    cxtp_queues: Mutex<HashMap<IpAddr, mpsc::Sender<Bytes>>>,
    backends: Backends,
    lanes: Arc<SessionLanes>,
    tap: Option<Tap>,
    io: Io,
    /// Control socket and metrics endpoint counters (when they run).
    control_stats: Option<Arc<LocalStats>>,
    metrics_stats: Option<Arc<LocalStats>>,
    started: Instant,
}

/// A job of the session backends.
type LaneJob = Box<dyn FnOnce() + Send>;

/// Work of the session backends, run on tokio's blocking pool: the jobs
/// of one UE in the order they were given, one after the other (as the
/// orchestrator asked for them); different UEs' at the same time. The
/// result of an export or import reaches the orchestrator as an input,
/// like a service's answer.
#[derive(Default)]
struct SessionLanes {
    /// UEs with a job running → their jobs waiting.
    lanes: Mutex<HashMap<IpAddr, VecDeque<LaneJob>>>,
}

impl SessionLanes {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, VecDeque<LaneJob>>> {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(self: &Arc<Self>, ue: IpAddr, job: impl FnOnce() + Send + 'static) {
        let job: LaneJob = Box::new(job);
        {
            let mut l = self.lock();
            if let Some(q) = l.get_mut(&ue) {
                // The UE's lane is running: after the jobs before it.
                q.push_back(job);
                return;
            }
            l.insert(ue, VecDeque::new());
        }
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut next = Some(job);
            while let Some(j) = next.take() {
                j();
                let mut l = me.lock();
                next = l.get_mut(&ue).and_then(VecDeque::pop_front);
                if next.is_none() {
                    l.remove(&ue);
                }
            }
        });
    }

    /// No job running or waiting.
    fn idle(&self) -> bool {
        self.lock().is_empty()
    }

    /// UEs with a job running or waiting.
    fn busy(&self) -> usize {
        self.lock().len()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct ApiView<'a>(&'a ApiServer);

impl NodeView for ApiView<'_> {
    fn services_of(&self, ue: IpAddr) -> Vec<String> {
        self.0
            .user_connections(ue)
            .into_iter()
            .map(|(s, _)| s)
            .collect()
    }
    fn has_service(&self, id: &str) -> bool {
        self.0.has_service(id)
    }
    fn user_count(&self) -> usize {
        self.0.user_count()
    }
}

/// Feed one input to the orchestrator and carry out what follows (the
/// answers of asynchronous actions come back as inputs of their own).
fn drive(shared: &Arc<Shared>, input: impl FnOnce(&mut State, Instant, &dyn NodeView)) {
    let view = ApiView(&shared.api);
    {
        let actions = {
            let mut st = shared.lock();
            let now = Instant::now();
            input(&mut st, now, &view);
            let mut actions = Vec::new();
            // A finished handover may start a waiting one: drain until quiet.
            loop {
                while let Some(a) = st.orch.poll_action() {
                    actions.push(a);
                }
                let mut events = false;
                while let Some(e) = st.orch.poll_event() {
                    events = true;
                    if let Event::Finished(r) = &e {
                        let State { sched, orch, .. } = &mut *st;
                        sched.on_finished(now, r, orch, &view);
                    }
                    on_event(&mut st, e);
                }
                while let Some(e) = st.sched.poll_event() {
                    if let ScheduleEvent::Started { request, id, .. } = &e {
                        if let Some(x) = st.x2_ues.values_mut().find(|x| x.request == *request) {
                            if x.handovers.len() >= MAX_X2_HANDOVERS {
                                x.handovers.remove(0);
                            }
                            x.handovers.push(*id);
                        }
                    }
                    on_schedule_event(e, now);
                }
                if !events {
                    break;
                }
            }
            let next = next_deadline(&st);
            if let Some(n) = next {
                if st.armed.is_none_or(|a| n < a) {
                    st.armed = Some(n);
                    shared.timer.notify_one();
                }
            }
            actions
        };
        for a in actions {
            execute(shared, a);
        }
    }
}

fn us(d: Option<Duration>) -> i64 {
    d.map_or(-1, |d| d.as_micros() as i64)
}

/// The orchestrator's and the scheduler's earliest deadline.
fn next_deadline(st: &State) -> Option<Instant> {
    match (st.orch.poll_timeout(), st.sched.poll_timeout()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn ms_until(t: Instant, now: Instant) -> u64 {
    t.saturating_duration_since(now).as_millis() as u64
}

/// One line per scheduler event, target `mih_user::schedule`.
fn on_schedule_event(e: ScheduleEvent, now: Instant) {
    const T: &str = "mih_user::schedule";
    match e {
        ScheduleEvent::Queued {
            request,
            ue,
            target,
            reason,
            deadline,
        } => {
            info!(target: T, request, %ue, target, reason, deadline_ms = ms_until(deadline, now), "handover queued")
        }
        ScheduleEvent::Started {
            request,
            ue,
            target,
            id,
            attempt,
            waited,
        } => {
            info!(target: T, request, %ue, target, id = id.0, attempt, waited_ms = waited.as_millis() as u64, "waiting handover started")
        }
        ScheduleEvent::Retrying {
            request,
            ue,
            target,
            attempt,
            at,
            cause,
        } => {
            info!(target: T, request, %ue, target, attempt, in_ms = ms_until(at, now), cause_label = cause.label(), cause = %cause, "handover will be retried")
        }
        ScheduleEvent::Done {
            request,
            ue,
            target,
            attempts,
            outcome,
            waited,
        } => {
            let outcome = match outcome {
                crate::api::Outcome::Committed => "committed",
                crate::api::Outcome::RolledBack => "rolled_back",
            };
            if waited {
                info!(target: T, request, %ue, target, attempts, outcome, "scheduled handover done");
            } else {
                debug!(target: T, request, %ue, target, attempts, outcome, "scheduled handover done");
            }
        }
        ScheduleEvent::GaveUp {
            request,
            ue,
            target,
            attempts,
            cause,
        } => {
            info!(target: T, request, %ue, target, attempts, cause_label = cause.label(), cause = %cause, "handover retries exhausted; the UE stays served from here")
        }
        ScheduleEvent::Expired {
            request,
            ue,
            target,
            waited,
        } => {
            info!(target: T, request, %ue, target, waited_ms = waited.as_millis() as u64, "queued handover expired")
        }
        ScheduleEvent::Replaced {
            request,
            ue,
            target,
            by,
        } => {
            let by = by.map_or_else(|| "operator".to_string(), |b| b.to_string());
            info!(target: T, request, %ue, target, by, "handover replaced by a newer one")
        }
        ScheduleEvent::AlreadyThere {
            request,
            ue,
            target,
        } => {
            info!(target: T, request, %ue, target, "queued handover dropped: the UE is already there")
        }
        ScheduleEvent::Left {
            request,
            ue,
            target,
        } => {
            info!(target: T, request, %ue, target, "queued handover dropped: the UE is not here any more")
        }
        ScheduleEvent::Aborted {
            request,
            ue,
            target,
            why,
        } => info!(target: T, request, %ue, target, why, "waiting handover cancelled"),
        ScheduleEvent::Refused {
            request,
            ue,
            target,
            error,
        } => {
            info!(target: T, request, %ue, target, reason = error.label(), error = %error, "waiting handover refused")
        }
    }
}

fn on_event(st: &mut State, e: Event) {
    match e {
        Event::AttemptOutcome {
            peer,
            attempt,
            outcome,
            ..
        } => {
            #[cfg(target_os = "linux")]
            {
                let State { recovery, orch, .. } = st;
                recovery.on_answer(Instant::now(), &peer, attempt, outcome, orch);
            }
            #[cfg(not(target_os = "linux"))]
            let _ = (peer, attempt, outcome);
        }
        Event::Started {
            id,
            ue,
            role,
            peer,
            trigger,
        } => info!(
            id = id.0,
            %ue,
            role = crate::orchestrator::role_label(role),
            peer,
            trigger = trigger.label(),
            "migration started"
        ),
        Event::AdmissionRefused {
            ue,
            peer,
            label,
            reason,
        } => warn!(ue = ?ue, peer, refusal = label, reason, "handover refused by admission"),
        Event::Finished(r) => {
            let p = &r.phases;
            let s = &r.sizes;
            let cause = r.cause.as_ref().map(|c| c.to_string()).unwrap_or_default();
            // One line per migration with every phase (µs; -1 = not reached).
            info!(
                target: "mih_user::migration",
                id = r.id.0,
                ue = %r.ue,
                role = r.role_label(),
                peer = %r.peer,
                trigger = r.trigger.label(),
                outcome = r.outcome_label(),
                cause_label = r.cause.as_ref().map_or("none", |c| c.label()),
                cause = %mihf::wire::Escaped::new(&cause),
                mih_commit_us = us(p.mih_commit),
                app_data_us = us(p.app_data),
                socket_data_us = us(p.socket_data),
                cxtp_us = us(p.cxtp),
                wait_context_us = us(p.wait_context),
                total_us = p.total.as_micros() as u64,
                services = s.services,
                app_octets = s.app_octets,
                sessions = s.sessions,
                session_octets = s.session_octets,
                cxtp_messages = s.cxtp_messages,
                cxtp_octets = s.cxtp_octets,
                "migration finished"
            );
            st.metrics.record(&r);
            if r.role == crate::api::Role::Source && r.outcome == crate::api::Outcome::RolledBack {
                use crate::orchestrator::Cause;
                let refused = matches!(r.cause, Some(Cause::CtdrFailure(_) | Cause::CxtpCancelled));
                if st.rollback_refused.len() >= MAX_X2_UES {
                    st.rollback_refused.clear();
                }
                st.rollback_refused.insert(r.ue, refused);
            }
            if let Some(w) = st.waiters.remove(&r.id) {
                let _ = w.send(r.clone());
            }
            if st.recent.len() >= RECENT {
                st.recent.pop_front();
            }
            st.recent.push_back(r);
        }
    }
}

fn count(shared: &Shared, op: &'static str) {
    *shared.lock().sessions.entry(op).or_default() += 1;
}

/// What a journalling exporter or importer records of `ue`'s handover
/// `id` (its attempt id, peer and trigger, from the orchestrator).
fn attempt_of(
    shared: &Shared,
    id: HandoverId,
    ue: IpAddr,
    services: Vec<String>,
) -> crate::orchestrator::sessions::ExportAttempt {
    let st = shared.lock();
    crate::orchestrator::sessions::ExportAttempt {
        handover_id: id,
        attempt: st.orch.attempt(ue).and_then(std::num::NonZeroU32::new),
        peer: st.orch.peer_of(ue).unwrap_or_default().to_string(),
        services,
        x2_trigger: st.orch.trigger_of(ue) == Some(TriggerKind::X2),
    }
}

fn execute(shared: &Arc<Shared>, a: Action) {
    match a {
        Action::Mih(m) => send_sap(shared, &m),
        Action::Cxtp { to, bytes } => send_cxtp(shared, to, bytes),
        Action::ExportApp { id, ue } => {
            let me = shared.clone();
            tokio::spawn(async move {
                let r = me.api.request_export(ue).await.map_err(|e| e.to_string());
                drive(&me, move |st, now, _| st.orch.on_app_exported(now, id, r));
            });
        }
        Action::ImportApp { id, ue, contexts } => {
            let me = shared.clone();
            tokio::spawn(async move {
                let r = me
                    .api
                    .deliver_import(ue, contexts)
                    .await
                    .map_err(|e| e.to_string());
                drive(&me, move |st, now, _| st.orch.on_app_imported(now, id, r));
            });
        }
        // The session backends block (TCP_REPAIR calls, the journal's
        // fsyncs, route hooks): off the runtime's threads, in order per UE,
        // UEs in parallel (`SessionLanes`).
        Action::ExportSessions { id, ue } => {
            let per_service = shared.api.user_connections(ue);
            let services = per_service.iter().map(|(s, _)| s.clone()).collect();
            let attempt = attempt_of(shared, id, ue, services);
            let conns = flatten_connections(per_service);
            let me = shared.clone();
            shared.lanes.run(ue, move || {
                let exporter = &me.backends.exporter;
                let r = exporter
                    .export_attempt(ue, &conns, &attempt)
                    .and_then(|sessions| {
                        // Marked sent (durably, with a journal) before the
                        // first CTD can leave; if that fails, nothing leaves.
                        match exporter.sending(ue) {
                            Ok(()) => Ok(sessions),
                            Err(e) => {
                                let _ = exporter.restore(ue, &sessions);
                                Err(e)
                            }
                        }
                    })
                    .map_err(|e| e.to_string());
                count(&me, if r.is_ok() { "export" } else { "export_failed" });
                drive(&me, move |st, now, _| {
                    st.orch.on_sessions_exported(now, id, r)
                });
            });
        }
        Action::ImportSessions { id, ue, sessions } => {
            let attempt = attempt_of(shared, id, ue, Vec::new());
            let me = shared.clone();
            shared.lanes.run(ue, move || {
                let r: Vec<Result<(), String>> = me
                    .backends
                    .importer
                    .import_attempt(ue, &sessions, &attempt)
                    .into_iter()
                    .map(|r| r.map_err(|e| e.to_string()))
                    .collect();
                count(&me, "import");
                drive(&me, move |st, now, _| {
                    st.orch.on_sessions_imported(now, id, r)
                });
            });
        }
        Action::NotifyOutcome { ue, outcome, cause } => {
            if let Err(e) = shared.api.notify_outcome(ue, outcome, &cause) {
                debug!(%ue, "no services to tell: {e}");
            }
        }
        Action::RestoreSessions { ue, sessions } => {
            let refused = shared.lock().rollback_refused.remove(&ue).unwrap_or(false);
            let me = shared.clone();
            shared.lanes.run(ue, move || {
                me.backends.exporter.rolling_back(ue, refused);
                match me.backends.exporter.restore(ue, &sessions) {
                    Ok(()) => count(&me, "restore"),
                    Err(e) => {
                        count(&me, "restore_failed");
                        warn!(%ue, "sessions could not be restored: {e}");
                    }
                }
            });
        }
        Action::ReleaseSessions { ue } => {
            let me = shared.clone();
            shared.lanes.run(ue, move || {
                me.backends.exporter.release(ue);
                count(&me, "release");
            });
        }
        Action::CommitSessions { ue } => {
            let me = shared.clone();
            shared.lanes.run(ue, move || {
                me.backends.importer.commit(ue);
                count(&me, "commit");
            });
        }
        Action::DiscardSessions { ue } => {
            let me = shared.clone();
            shared.lanes.run(ue, move || {
                me.backends.importer.discard(ue);
                count(&me, "discard");
            });
        }
    }
}

fn send_sap(shared: &Shared, m: &Message) {
    match m.to_bytes() {
        Ok(b) => match shared.sap.try_send_to(&b, shared.mihf_sap) {
            Ok(_) => {
                shared.io.sap_out.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                shared.io.sap_send_errors.fetch_add(1, Ordering::Relaxed);
                warn!(error = %e, "SAP send failed");
            }
        },
        Err(e) => {
            shared.io.sap_send_errors.fetch_add(1, Ordering::Relaxed);
            warn!(error = %e, "MIH frame does not encode");
        }
    }
}

fn send_cxtp(shared: &Arc<Shared>, to: IpAddr, bytes: Bytes) {
    let mut queues = shared.cxtp_queues.lock().unwrap_or_else(|e| e.into_inner());
    let tx = queues
        .entry(to)
        .or_insert_with(|| {
            let (tx, mut rx) = mpsc::channel::<Bytes>(CXTP_QUEUE);
            let sender = shared.cxtp.clone();
            let me = Arc::downgrade(shared);
            tokio::spawn(async move {
                while let Some(b) = rx.recv().await {
                    if let Err(e) = sender.send(to, b).await {
                        if let Some(me) = me.upgrade() {
                            me.io.cxtp_send_errors.fetch_add(1, Ordering::Relaxed);
                        }
                        debug!(%to, error = %e, "CXTP send failed");
                    }
                }
            });
            tx
        })
        .clone();
    drop(queues);
    if tx.try_send(bytes).is_err() {
        shared.io.cxtp_send_errors.fetch_add(1, Ordering::Relaxed);
    }
}

fn registration(user_id: &MihfId) -> Message {
    sap::register_indication(
        &Registration {
            user_id: user_id.clone(),
            commands: CommandList::NET_HO,
            ..Registration::default()
        },
        &MihfId::from_static(sap::LOCAL_MIHF),
        0,
    )
}

async fn sap_reader(shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = match shared.sap.recv_from(&mut buf).await {
            Ok(v) => v,
            Err(e) => {
                // ICMP port unreachable while mihfd is down, etc.
                debug!(error = %e, "SAP receive error");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if from != shared.mihf_sap {
            continue;
        }
        let msg = match Message::from_bytes(Bytes::copy_from_slice(&buf[..n])) {
            Ok(m) => m,
            Err(e) => {
                shared.io.sap_bad.fetch_add(1, Ordering::Relaxed);
                debug!(error = %e, "undecodable SAP frame");
                continue;
            }
        };
        shared.io.sap_in.fetch_add(1, Ordering::Relaxed);
        if msg.header.mid == sap::USER_REGISTER_CONFIRM {
            let id = msg.source.to_string();
            if mihf::proto::status::status_of(&msg).is_some_and(|s| !s.is_success()) {
                // mihfd's user table is full: not registered; retried.
                if shared.io.registered.swap(false, Ordering::Relaxed) {
                    warn!(mihf_id = %id, sap = %shared.mihf_sap, "mihfd refused the registration");
                }
                continue;
            }
            if !shared.io.registered.swap(true, Ordering::Relaxed) {
                info!(mihf_id = %id, sap = %shared.mihf_sap, "registered with mihfd");
            }
            shared.lock().mihf_id = Some(id);
            continue;
        }
        drive(&shared, move |st, now, view| {
            st.orch.handle_mih(now, msg, view)
        });
    }
}

async fn sap_register(shared: Arc<Shared>, every: Duration) {
    let reg = registration(&shared.user_id);
    let mut warned = false;
    loop {
        send_sap(&shared, &reg);
        // Retry quickly until the first confirm.
        let wait = if shared.io.registered.load(Ordering::Relaxed) {
            every
        } else {
            every.min(Duration::from_millis(500))
        };
        tokio::time::sleep(wait).await;
        if !shared.io.registered.load(Ordering::Relaxed) && !warned {
            warned = true;
            warn!(sap = %shared.mihf_sap, "no User_Register.confirm from mihfd yet; retrying");
        }
    }
}

async fn timer_task(shared: Arc<Shared>) {
    loop {
        let next = {
            let mut st = shared.lock();
            let next = next_deadline(&st);
            st.armed = next;
            next
        };
        let sleep = async {
            match next {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {
                drive(&shared, |st, now, _| {
                    st.orch.handle_timeout(now);
                    st.armed = None;
                });
                // After the orchestrator's Finished events reached it.
                drive(&shared, |st, now, view| {
                    let State { sched, orch, .. } = st;
                    sched.handle_timeout(now, orch, view);
                });
            }
            _ = shared.timer.notified() => {}
        }
    }
}

/// Carry out the journal's recovery: the decisions as they are made (the
/// rebuilds and hooks outside the lock), then the services told, until
/// nothing is left.
#[cfg(target_os = "linux")]
async fn recovery_task(shared: Arc<Shared>) {
    let Some(sessions) = shared.backends.handoff.clone() else {
        return;
    };
    // A question sent before mihfd confirmed our registration is lost.
    let t = Instant::now();
    while !shared.io.registered.load(Ordering::Relaxed) && t.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drive(&shared, |st, now, _| {
        let State { recovery, orch, .. } = &mut *st;
        recovery.start(now, orch);
        // The destination's recovered imports ask their sources too.
        orch.ask_recovered_sources(now);
    });
    loop {
        let work = shared.lock().recovery.due(Instant::now());
        for w in work {
            let s = sessions.clone();
            let ue = w.ue();
            // Rebuilds and hooks block (a hook command may take seconds).
            let done = tokio::task::spawn_blocking(move || recovery::carry_out(w, &s)).await;
            let Ok(recovery::Done {
                tell,
                counter,
                retry,
                ..
            }) = done
            else {
                tracing::error!(target: "mih_user::recovery", %ue, "the recovery of this UE's entry failed (its task panicked)");
                drive(&shared, |st, _, _| {
                    st.orch.end_recovery(ue);
                    st.recovery.carried(ue);
                });
                continue;
            };
            count(&shared, counter);
            drive(&shared, |st, now, _| {
                st.orch.end_recovery(ue);
                st.recovery.carried(ue);
                st.recovery.told_later(now, ue, tell);
                if let Some(target) = retry {
                    // Retried once its services are back (the status
                    // lists it as recovering until then).
                    st.recovery.retry_later(now, ue, target);
                }
            });
        }
        drive(&shared, |st, now, view| {
            let State {
                recovery, sched, ..
            } = &mut *st;
            for (ue, target) in recovery.due_retries(now, view) {
                let req = HandoverRequest {
                    ue,
                    target,
                    trigger: TriggerKind::X2,
                    cell: None,
                };
                // Queued in the same step as it leaves the recovery: the
                // status shows it recovering or waiting, never neither.
                if sched.retry_recovered(now, req) {
                    info!(target: "mih_user::recovery", %ue, "restored migration to be retried (X2-triggered)");
                }
            }
        });
        {
            let mut st = shared.lock();
            st.recovery.tell_services(Instant::now(), &shared.api);
            if st.recovery.is_idle() {
                info!(target: "mih_user::recovery", "session journal recovered");
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn cxtp_receiver(shared: Arc<Shared>, mut transport: TcpTransport) {
    use cxtp::transport::Transport;
    while let Some((from, bytes)) = transport.recv().await {
        drive(&shared, move |st, now, _| {
            st.orch.handle_cxtp(now, from, bytes)
        });
    }
}

async fn x2_consumer(shared: Arc<Shared>, mut rx: mpsc::Receiver<X2Event>) {
    while let Some(e) = rx.recv().await {
        match e {
            X2Event::HandoverTriggered(t) => {
                let req = HandoverRequest {
                    ue: t.ue_address,
                    target: t.target_mihf_id.clone(),
                    trigger: TriggerKind::X2,
                    cell: Some(t.target_cell),
                };
                let old = t.old_enb_ue_x2ap_id;
                let mut result = None;
                drive(&shared, |st, now, view| {
                    let State { sched, orch, .. } = &mut *st;
                    let r = sched.request(now, req, orch, view);
                    let started = match &r {
                        Ok(Requested::Started { request, id }) => Some((*request, vec![*id])),
                        Ok(Requested::Queued { request }) => Some((*request, Vec::new())),
                        Err(_) => None,
                    };
                    if let Some((request, handovers)) = started {
                        // The newest X2 handover of the UE is the one a
                        // HandoverCancel can still withdraw.
                        let ue = crate::orchestrator::mih::canonical(t.ue_address);
                        st.x2_ues.retain(|_, x| x.ue != ue);
                        if st.x2_ues.len() >= MAX_X2_UES {
                            st.x2_ues.clear();
                        }
                        st.x2_ues.insert(
                            old,
                            X2Migration {
                                ue,
                                request,
                                handovers,
                            },
                        );
                    }
                    result = Some(r);
                });
                if let Some(Err(e)) = result {
                    shared.io.x2_not_started.fetch_add(1, Ordering::Relaxed);
                    warn!(ue = %t.ue_address, target = %t.target_mihf_id, "X2 trigger not acted on: {e}");
                }
            }
            X2Event::Forget {
                old_enb_ue_x2ap_id,
                triggered,
                reason,
                ..
            } => {
                let why = format!("X2 {reason:?}");
                drive(&shared, |st, now, _| {
                    let Some(x) = st.x2_ues.remove(&old_enb_ue_x2ap_id) else {
                        return;
                    };
                    // Only a HandoverCancel withdraws the migration, and only
                    // the handovers this trigger started (in the source
                    // role, before they commit): a timeout (no
                    // UEContextRelease seen) means the handover executed.
                    if !triggered || !matches!(reason, ForgetReason::Cancelled(_)) {
                        return;
                    }
                    // The RAN withdrew it: no queued start, no retry.
                    let waiting = st.sched.abort(x.ue, &why);
                    let mut aborted = false;
                    for id in &x.handovers {
                        aborted |= st.orch.abort_x2(now, *id, &reason);
                    }
                    if aborted || waiting {
                        info!(ue = %x.ue, reason = %why, "handover aborted by X2");
                    }
                });
            }
            X2Event::Released(r) => {
                shared.lock().x2_ues.remove(&r.old_enb_ue_x2ap_id);
                debug!(old = r.old_enb_ue_x2ap_id, ue = ?r.ue_address, "X2 handover complete");
            }
            X2Event::HandoverPrepared(p) => {
                debug!(old = p.old_enb_ue_x2ap_id, ue = ?p.ue_address, "X2 HandoverRequest")
            }
            X2Event::UnknownUe(u) => warn!(?u, "X2: unknown UE"),
            X2Event::UnknownTarget(u) => warn!(?u, "X2: unknown target"),
            X2Event::Ignored { .. } => {}
            X2Event::Malformed(e) => debug!(error = %e, "malformed X2AP PDU"),
        }
    }
}

/// Bound addresses of a running daemon.
#[derive(Clone, Debug)]
pub struct Addrs {
    /// CXTP listener.
    pub cxtp: SocketAddr,
    /// Service Mobility API socket.
    pub api: PathBuf,
    /// Our SAP socket.
    pub sap_local: SocketAddr,
    /// X2 UDP tap.
    pub x2_udp: Option<SocketAddr>,
    /// X2 TCP tap.
    pub x2_tcp: Option<SocketAddr>,
    /// Control socket.
    pub control: Option<PathBuf>,
    /// Metrics endpoint.
    pub metrics: Option<SocketAddr>,
}

/// A running mih-user daemon.
pub struct MihUser {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    /// Where it listens.
    pub addrs: Addrs,
}

fn with_key<T>(key: &str, r: io::Result<T>) -> io::Result<T> {
    r.map_err(|e| io::Error::new(e.kind(), format!("{key}: {e}")))
}

impl MihUser {
    /// Bind everything and start (inside a tokio runtime). Errors name the
    /// configuration key.
    pub async fn start(cfg: &Config, backends: Backends) -> io::Result<MihUser> {
        cfg.validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let api = with_key("api.socket", ApiServer::bind(cfg.api_config()).await)?;
        if cfg.peers.is_empty() && !cfg.cxtp.accept_any {
            warn!("no [[peers]]: every incoming CXTP connection will be refused");
        }
        let transport = TcpTransport::bind(cfg.transport_config()).await;
        let transport = match with_key("cxtp.listen", transport) {
            Ok(t) => t,
            Err(e) => {
                api.shutdown().await;
                return Err(e);
            }
        };
        let cxtp_addr = transport.local_addr();
        let bind: SocketAddr = if cfg.mihf.sap.is_ipv4() {
            SocketAddr::from(([127, 0, 0, 1], 0))
        } else {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0))
        };
        let sap = Arc::new(with_key("mihf.sap", UdpSocket::bind(bind).await)?);
        let sap_local = sap.local_addr()?;
        // X2: the trigger and its sockets.
        let x2 = &cfg.x2;
        let wants_x2 = x2.udp.is_some() || x2.tcp.is_some() || x2.pcap.is_some();
        let mut x2_parts = None;
        let (mut x2_udp, mut x2_tcp) = (None, None);
        if wants_x2 {
            let trigger = cfg
                .trigger_config()
                .and_then(X2Trigger::new)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            let (tap, rx) = Tap::new(trigger, 1024);
            let udp = match x2.udp {
                Some(a) => Some(with_key("x2.udp", UdpSocket::bind(a).await)?),
                None => None,
            };
            let tcp = match x2.tcp {
                Some(a) => Some(with_key("x2.tcp", tokio::net::TcpListener::bind(a).await)?),
                None => None,
            };
            let pcap = match &x2.pcap {
                Some(p) => Some(with_key("x2.pcap", std::fs::read(p))?),
                None => None,
            };
            x2_udp = udp.as_ref().map(|s| s.local_addr()).transpose()?;
            x2_tcp = tcp.as_ref().map(|s| s.local_addr()).transpose()?;
            x2_parts = Some((tap, rx, udp, tcp, pcap));
        }
        let control = match &cfg.control.socket {
            Some(p) => Some(with_key("control.socket", control::bind(p))?),
            None => None,
        };
        let metrics_listener = match cfg.metrics.listen {
            Some(a) => Some(with_key(
                "metrics.listen",
                tokio::net::TcpListener::bind(a).await,
            )?),
            None => None,
        };
        let metrics_addr = metrics_listener
            .as_ref()
            .map(|l| l.local_addr())
            .transpose()?;

        #[cfg_attr(not(target_os = "linux"), allow(unused_mut))]
        let mut orch = Orchestrator::new(cfg.orchestrator_config(), cfg.peer_list());
        #[cfg(target_os = "linux")]
        let recovered =
            std::mem::take(&mut *backends.recovered.lock().unwrap_or_else(|e| e.into_inner()));
        // A destination's unfinished imports first: rebuilt frozen and
        // waiting for their source again before anything is served.
        #[cfg(target_os = "linux")]
        let (recovered, recovered_counts) = recovery::recover_incoming(
            recovered,
            backends.handoff.as_deref(),
            &mut orch,
            Instant::now(),
        );
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                orch,
                sched: Scheduler::new(cfg.scheduler_config()),
                armed: None,
                metrics: MigrationMetrics::default(),
                sessions: Default::default(),
                waiters: HashMap::new(),
                recent: VecDeque::new(),
                x2_ues: HashMap::new(),
                mihf_id: None,
                rollback_refused: HashMap::new(),
                #[cfg(target_os = "linux")]
                recovery: recovery::Recovery::new(
                    recovered,
                    Duration::from_millis(cfg.sessions.recovery_timeout_ms),
                    backends.handoff.clone(),
                    Instant::now(),
                ),
            }),
            timer: Notify::new(),
            api,
            sap,
            mihf_sap: cfg.mihf.sap,
            user_id: MihfId::new(cfg.mihf.user_id.clone().into_bytes()),
            cxtp: transport.sender(),
            cxtp_queues: Mutex::new(HashMap::new()),
            backends,
            lanes: Arc::new(SessionLanes::default()),
            tap: x2_parts.as_ref().map(|p| p.0.clone()),
            io: Io::default(),
            control_stats: control.as_ref().map(|_| Arc::default()),
            metrics_stats: metrics_listener.as_ref().map(|_| Arc::default()),
            started: Instant::now(),
        });
        #[cfg(target_os = "linux")]
        let incoming_recovered = recovered_counts.contains(&"recovered_import");
        #[cfg(target_os = "linux")]
        for c in recovered_counts {
            *shared.lock().sessions.entry(c).or_default() += 1;
        }
        // The journal's unfinished migrations: their UEs reserved before
        // anything runs (their destinations are asked by the recovery task,
        // once mihfd knows us).
        #[cfg(target_os = "linux")]
        let recovering = {
            let mut st = shared.lock();
            let State { recovery, orch, .. } = &mut *st;
            recovery.reserve(orch);
            recovery.pending() > 0 || incoming_recovered
        };
        let mut tasks = vec![
            tokio::spawn(sap_reader(shared.clone())),
            tokio::spawn(sap_register(
                shared.clone(),
                Duration::from_millis(cfg.mihf.register_interval_ms),
            )),
            tokio::spawn(timer_task(shared.clone())),
            tokio::spawn(cxtp_receiver(shared.clone(), transport)),
        ];
        #[cfg(target_os = "linux")]
        if recovering {
            tasks.push(tokio::spawn(recovery_task(shared.clone())));
        }
        if let Some((tap, rx, udp, tcp, pcap)) = x2_parts {
            tasks.push(tokio::spawn(x2_consumer(shared.clone(), rx)));
            let t = tap.clone();
            tasks.push(tokio::spawn(async move { t.run_timeouts().await }));
            if let Some(s) = udp {
                let t = tap.clone();
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = t.run_udp(s).await {
                        warn!("X2 UDP tap stopped: {e}");
                    }
                }));
            }
            if let Some(l) = tcp {
                let t = tap.clone();
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = t.run_tcp(l).await {
                        warn!("X2 TCP tap stopped: {e}");
                    }
                }));
            }
            if let Some(file) = pcap {
                let t = tap.clone();
                let pace = if x2.pcap_speed > 0.0 {
                    Pace::RealTime {
                        speed: x2.pcap_speed,
                    }
                } else {
                    Pace::AsFastAsPossible
                };
                tasks.push(tokio::spawn(async move {
                    match t.replay_pcap(&file, pace).await {
                        Ok(stats) => info!(?stats, "X2 pcap replayed"),
                        Err(e) => warn!("X2 pcap replay failed: {e}"),
                    }
                }));
            }
        }
        let control_path = control.as_ref().map(|(_, p)| p.clone());
        if let (Some((listener, _)), Some(stats)) = (control, &shared.control_stats) {
            tasks.push(tokio::spawn(control::serve(
                MihUserHandle {
                    shared: shared.clone(),
                },
                listener,
                LocalLimits {
                    max_connections: cfg.control.max_connections,
                    request_timeout: Duration::from_millis(cfg.control.request_timeout_ms),
                },
                stats.clone(),
            )));
        }
        if let (Some(l), Some(stats)) = (metrics_listener, &shared.metrics_stats) {
            tasks.push(tokio::spawn(metrics::serve(
                MihUserHandle {
                    shared: shared.clone(),
                },
                l,
                LocalLimits {
                    max_connections: cfg.metrics.max_connections,
                    request_timeout: Duration::from_millis(cfg.metrics.request_timeout_ms),
                },
                stats.clone(),
            )));
        }
        let addrs = Addrs {
            cxtp: cxtp_addr,
            api: shared.api.socket_path().to_path_buf(),
            sap_local,
            x2_udp,
            x2_tcp,
            control: control_path,
            metrics: metrics_addr,
        };
        info!(
            user_id = %cfg.mihf.user_id,
            sap = %cfg.mihf.sap,
            api = %addrs.api.display(),
            cxtp = %addrs.cxtp,
            x2_udp = ?addrs.x2_udp,
            x2_tcp = ?addrs.x2_tcp,
            control = ?addrs.control,
            metrics = ?addrs.metrics,
            peers = cfg.peers.len(),
            "mih-user started"
        );
        Ok(MihUser {
            shared,
            tasks,
            addrs,
        })
    }

    /// A cloneable handle for operator calls.
    pub fn handle(&self) -> MihUserHandle {
        MihUserHandle {
            shared: self.shared.clone(),
        }
    }

    /// The API server (tests, embedding).
    pub fn api(&self) -> &ApiServer {
        &self.shared.api
    }

    /// Stop: roll back every handover under way (services told, sessions
    /// restored, peers told), leave the SAP, close every socket.
    pub async fn shutdown(self) {
        drive(&self.shared, |st, now, _| {
            st.sched.shutdown();
            st.orch.shutdown(now);
        });
        // The sessions it restored (and whatever else the session
        // backends were doing) are back before the process ends.
        let end = Instant::now() + Duration::from_secs(30);
        while !self.shared.lanes.idle() && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Let the last MIH and CXTP messages leave.
        tokio::time::sleep(Duration::from_millis(50)).await;
        send_sap(
            &self.shared,
            &sap::deregister_indication(
                &self.shared.user_id,
                &MihfId::from_static(sap::LOCAL_MIHF),
                0,
            ),
        );
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        self.shared
            .cxtp_queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.shared.api.shutdown().await;
        if let Some(p) = &self.addrs.control {
            let _ = std::fs::remove_file(p);
        }
        info!("mih-user stopped");
    }
}

/// Operator calls on a running daemon (cheap to clone).
#[derive(Clone)]
pub struct MihUserHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MihUserHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MihUserHandle").finish_non_exhaustive()
    }
}

impl MihUserHandle {
    /// Move `ue` to the eNBC `target` now and wait (at most `wait`) for
    /// the outcome.
    pub async fn handover(
        &self,
        ue: IpAddr,
        target: &str,
        wait: Duration,
    ) -> Result<MigrationRecord, HandoverError> {
        let (tx, rx) = oneshot::channel();
        let mut result = None;
        drive(&self.shared, |st, now, view| {
            // Started or refused, never queued (it replaces a waiting one).
            let State { sched, orch, .. } = &mut *st;
            let r = sched.start_now(
                now,
                HandoverRequest {
                    ue,
                    target: target.to_string(),
                    trigger: TriggerKind::Operator,
                    cell: None,
                },
                orch,
                view,
            );
            if let Ok(id) = r {
                st.waiters.insert(id, tx);
            }
            result = Some(r);
        });
        match result {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => return Err(HandoverError::Stopped),
        }
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(HandoverError::Stopped),
            Err(_) => Err(HandoverError::Timeout(wait)),
        }
    }

    /// Roll back the handover of `ue` and cancel what waits for it (a
    /// queued trigger, a retry), if there is any.
    pub fn abort(&self, ue: IpAddr, why: &str) -> bool {
        let mut done = false;
        drive(&self.shared, |st, now, _| {
            let waiting = st.sched.abort(ue, why);
            done = st.orch.abort(now, ue, why) || waiting;
        });
        done
    }

    /// Whether mihfd confirmed our registration.
    pub fn is_registered(&self) -> bool {
        self.shared.io.registered.load(Ordering::Relaxed)
    }

    /// The local MIHF's ID, once registered.
    pub fn mihf_id(&self) -> Option<String> {
        self.shared.lock().mihf_id.clone()
    }

    /// The last finished migrations (at most 32), oldest first.
    pub fn recent(&self) -> Vec<MigrationRecord> {
        self.shared.lock().recent.iter().cloned().collect()
    }

    /// Handovers under way.
    pub fn in_progress(&self) -> crate::orchestrator::ByRole<usize> {
        self.shared.lock().orch.in_progress()
    }

    /// The status as JSON (control `status`, `GET /status`).
    pub fn status_json(&self) -> serde_json::Value {
        let services: Vec<String> = self
            .shared
            .api
            .services()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        let users = self.shared.api.user_count();
        let st = self.shared.lock();
        let o = st.orch.stats();
        #[allow(unused_mut)]
        let mut handovers: Vec<serde_json::Value> = st
            .orch
            .handovers()
            .into_iter()
            .map(|h| {
                serde_json::json!({
                    "ue": h.ue.to_string(), "id": h.id,
                    "role": crate::orchestrator::role_label(h.role), "state": h.state,
                })
            })
            .collect();
        // Migrations of a previous process the journal's recovery is
        // finishing: still under way, as far as this node can say.
        #[cfg(target_os = "linux")]
        handovers.extend(
            st.recovery
                .list()
                .into_iter()
                .map(|(ue, id, phase, waiting)| {
                    serde_json::json!({
                        "ue": ue.to_string(), "id": id, "role": "source", "state": "recovering",
                        "journal_phase": phase, "waiting_for": waiting,
                    })
                }),
        );
        let crate::orchestrator::ByRole {
            source: src,
            destination: dst,
        } = st.orch.in_progress();
        let now = Instant::now();
        // Queued and retrying UEs, in queue order.
        let waiting: Vec<serde_json::Value> = st
            .sched
            .pending()
            .into_iter()
            .map(|p| {
                let (state, reason, next_try, deadline) = match &p.state {
                    PendingState::Queued { reason, deadline } => (
                        "queued",
                        reason.to_string(),
                        None,
                        Some(ms_until(*deadline, now)),
                    ),
                    PendingState::Retrying { at, cause } => (
                        "retrying",
                        cause.to_string(),
                        Some(ms_until(*at, now)),
                        None,
                    ),
                };
                serde_json::json!({
                    "ue": p.ue.to_string(), "target": p.target, "request": p.request,
                    "trigger": p.trigger.label(), "state": state, "reason": reason,
                    "attempt": p.attempts + 1, "next_try_in_ms": next_try,
                    "deadline_in_ms": deadline,
                    "waiting_ms": now.saturating_duration_since(p.since).as_millis() as u64,
                })
            })
            .collect();
        let ss = st.sched.stats();
        serde_json::json!({
            "ok": true,
            "user_id": self.shared.user_id.to_string(),
            "mihf_id": st.mihf_id,
            "registered": self.shared.io.registered.load(Ordering::Relaxed),
            "services": services,
            "users": users,
            "in_progress": { "source": src, "destination": dst },
            // UEs whose session work (export, import, restore, commit with
            // its path switch, release) is queued or running: a handover's
            // record can be out just before its commit's path switch ran.
            "session_work": self.shared.lanes.busy(),
            "recovering": st.orch.recovering(),
            "handovers": handovers,
            "waiting": waiting,
            "schedule": {
                "requests": ss.requests, "retries": ss.retries, "queued": ss.queued,
                "queue_full": ss.queue_full, "ended": ss.ended, "gave_up": ss.gave_up,
            },
            "started": { "source": o.started.source, "destination": o.started.destination },
            "committed": { "source": o.committed.source, "destination": o.committed.destination },
            "rolled_back": { "source": o.rolled_back.source, "destination": o.rolled_back.destination },
            "sessions": st.sessions,
            "recent": st.recent.iter().map(metrics::record_json).collect::<Vec<_>>(),
        })
    }

    /// The Prometheus text of the metrics.
    pub fn metrics_text(&self) -> String {
        let x2 = self
            .shared
            .tap
            .as_ref()
            .map(|t| t.trigger().counters().clone());
        let api = self.shared.api.stats();
        let st = self.shared.lock();
        let io = &self.shared.io;
        let driver = DriverCounters {
            sap: [
                io.sap_out.load(Ordering::Relaxed),
                io.sap_in.load(Ordering::Relaxed),
                io.sap_bad.load(Ordering::Relaxed),
                io.sap_send_errors.load(Ordering::Relaxed),
            ],
            sap_registered: io.registered.load(Ordering::Relaxed),
            cxtp_send_errors: io.cxtp_send_errors.load(Ordering::Relaxed),
            sessions: {
                let mut m = st.sessions.clone();
                // Releases whose frozen sockets took data after their
                // dump, counted by the socket table itself (exact with
                // releases of several UEs running at once).
                #[cfg(target_os = "linux")]
                if let Some(h) = &self.shared.backends.handoff {
                    let n = h.repair().late_data();
                    if n > 0 {
                        m.insert("release_late_data", n);
                    }
                }
                m
            },
            x2_not_started: io.x2_not_started.load(Ordering::Relaxed),
        };
        let mut listeners = Vec::new();
        for (name, stats) in [
            ("control", &self.shared.control_stats),
            ("metrics", &self.shared.metrics_stats),
        ] {
            if let Some(s) = stats {
                listeners.push((name, s.counters()));
            }
        }
        metrics::render(&Snapshot {
            migrations: &st.metrics,
            orchestrator: st.orch.stats(),
            in_progress: st.orch.in_progress(),
            schedule: st.sched.stats(),
            waiting: st.sched.pending_counts(),
            driver: &driver,
            x2,
            api,
            cxtp: self.shared.cxtp.stats(),
            listeners,
            uptime: self.shared.started.elapsed(),
        })
    }
}
