//! The sans-IO handover orchestrator: one state machine per UE, in the
//! source or the destination role, plus the CXTP pAR and nAR engines.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cxtp::engine::{self, FailReason, NarEvent, NewRouter, ParEvent, PreviousRouter, Transmit};
use cxtp::profile::{
    fpt, status, verdict, Context, FeatureProfile, ProfileRegistry, TcpSessionContext,
};
use cxtp::segment::SegmentConfig;
use cxtp::wire::{Header, MessageType, StatusEntry};
use mihf::wire::{Body, HoResult, Message, MihfId, Opcode, Status};

use super::mih::{self, N2N_HO_COMMIT, N2N_HO_COMPLETE};
use super::record::{ByRole, Cause, MigrationRecord, Phases, Sizes, TriggerKind};
use crate::api::{is_service_fpt, Connection, ImportReport, Outcome, Role, ServiceContext};
use crate::x2ap::{Ecgi, ForgetReason};

handle!(
    /// Handover identifier (per node, never reused while the node runs).
    HandoverId
);

/// Most session exports remembered after their handover rolled back.
const MAX_ABANDONED: usize = 4096;

/// Most ended attempts whose MIH_N2N_HO_Complete is still being repeated.
const MAX_CLOSING: usize = 4096;

/// Most UEs reserved by recoveries at once.
const MAX_RECOVERING: usize = 65_536;

/// One handover under way, as [`Orchestrator::handover`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandoverInfo {
    /// The UE.
    pub ue: IpAddr,
    /// The handover's ID.
    pub id: HandoverId,
    /// This node's role.
    pub role: Role,
    /// The state's name ("committing", "transferring", ...).
    pub state: &'static str,
}

/// Settings of the [`Orchestrator`].
#[derive(Clone, Debug)]
pub struct OrchestratorConfig {
    /// Our MIH-User ID on the SAP (Source ID of what we send).
    pub user_id: String,
    /// Source: wait this long for the MIH_N2N_HO_Commit.confirm.
    pub mih_timeout: Duration,
    /// Source: longest application export, and longest session export.
    pub export_timeout: Duration,
    /// Destination: longest application import, and longest session import.
    pub import_timeout: Duration,
    /// Destination: after accepting a commit, wait this long for the first
    /// CTD.
    pub context_timeout: Duration,
    /// CXTP: the source waits this long for a CTDR after its last progress
    /// (it covers the destination's import); the destination waits this
    /// long between two messages of a transfer.
    pub transfer_timeout: Duration,
    /// Destination: after a successful CTDR, wait this long for
    /// MIH_N2N_HO_Complete; then commit anyway. Must be longer than
    /// [`OrchestratorConfig::source_horizon`] ("the destination waits
    /// longer than the source keeps trying"), or a Complete(Failure) that
    /// is late but still on its way leaves the UE committed here and
    /// rolled back at the source.
    pub complete_timeout: Duration,
    /// Source: after a handover ended, MIH_N2N_HO_Complete is sent again
    /// this many times (each a new transaction, same attempt id), every
    /// `complete_retry_interval`, until a response echoes the attempt.
    pub complete_retries: u32,
    /// Source: the interval between two MIH_N2N_HO_Complete of one
    /// attempt (and after the last one, how long an answer is awaited).
    pub complete_retry_interval: Duration,
    /// The first attempt id (then +1, never 0); `None`: a random one, so
    /// that the ids of a restarted node do not repeat its earlier ones.
    pub first_attempt: Option<NonZeroU32>,
    /// Most ended attempts remembered with their outcome: incoming ones (a
    /// repeated commit of one is not a new handover; a restarted source
    /// asks what became of one) and outgoing ones the destination had
    /// accepted (a restarted destination asks). The oldest goes first.
    pub max_outcomes: usize,
    /// Destination: how long an ended incoming attempt is remembered.
    pub outcome_memory: Duration,
    /// Most handovers in the source role at once.
    pub max_outgoing: usize,
    /// Admission: most handovers in the destination role at once.
    pub max_incoming: usize,
    /// Admission: most UEs on this node (registered with a service, plus
    /// arriving).
    pub max_ues: usize,
    /// Most peers.
    pub max_peers: usize,
    /// CXTP segmentation and reassembly limits.
    pub segment: SegmentConfig,
}

impl Default for OrchestratorConfig {
    fn default() -> Self {
        OrchestratorConfig {
            user_id: "mih-user".into(),
            mih_timeout: Duration::from_secs(5),
            export_timeout: Duration::from_secs(3),
            import_timeout: Duration::from_secs(3),
            context_timeout: Duration::from_secs(5),
            transfer_timeout: Duration::from_secs(4),
            // Above transfer_timeout + (complete_retries + 1) x
            // complete_retry_interval = 4 + 5 s.
            complete_timeout: Duration::from_secs(10),
            complete_retries: 4,
            complete_retry_interval: Duration::from_secs(1),
            first_attempt: None,
            max_outcomes: 4096,
            outcome_memory: Duration::from_secs(600),
            max_outgoing: 64,
            max_incoming: 64,
            max_ues: 65_536,
            max_peers: 1024,
            segment: SegmentConfig::default(),
        }
    }
}

impl OrchestratorConfig {
    /// How long after a destination's final CTDR the source can still be
    /// telling it how the attempt ended: the source ends the attempt at
    /// most `transfer_timeout` after its last CXTP progress (which precedes
    /// that CTDR), then sends MIH_N2N_HO_Complete for
    /// `(complete_retries + 1) x complete_retry_interval`.
    /// [`OrchestratorConfig::complete_timeout`] must be longer.
    pub fn source_horizon(&self) -> Duration {
        self.transfer_timeout + self.complete_retry_interval * (self.complete_retries + 1)
    }

    /// How long a destination whose complete timeout passed waits for the
    /// answer to its question (MIH_N2N_HO_Complete to the source, repeated
    /// like any Complete) before it commits: the repeats and one interval
    /// more.
    pub fn query_horizon(&self) -> Duration {
        self.complete_retry_interval * (self.complete_retries + 2)
    }
}

/// A random attempt id, never 0 (from the standard library's per-process
/// random hasher keys, and the clock).
fn random_attempt() -> NonZeroU32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    let v = h.finish();
    NonZeroU32::new((v ^ (v >> 32)) as u32).unwrap_or(NonZeroU32::MIN)
}

/// What the orchestrator needs to know about this node's services (the
/// driver answers from the API server).
pub trait NodeView {
    /// The services that have `ue` as a user.
    fn services_of(&self, ue: IpAddr) -> Vec<String>;
    /// Whether `service_id` is registered here.
    fn has_service(&self, service_id: &str) -> bool;
    /// UEs registered with at least one service here.
    fn user_count(&self) -> usize;
}

/// A request to move a UE away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandoverRequest {
    /// The UE.
    pub ue: IpAddr,
    /// The destination eNBC's MIHF ID.
    pub target: String,
    /// What asked.
    pub trigger: TriggerKind,
    /// The target cell, if known (X2).
    pub cell: Option<Ecgi>,
}

/// Why a handover was not started.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A handover of this UE (either role) is under way: a second one is
    /// refused, never interleaved.
    #[error("UE {0} is already moving")]
    Busy(IpAddr),
    /// The target is not a configured peer.
    #[error("unknown target eNBC {0:?}")]
    UnknownTarget(String),
    /// No registered service has the UE: nothing to move.
    #[error("UE {0} is not a user of any registered service")]
    NoServices(IpAddr),
    /// Too many handovers in the source role.
    #[error("too many handovers under way (max {0})")]
    TooMany(usize),
    /// The orchestrator is shut down.
    #[error("shutting down")]
    ShuttingDown,
    /// Every transaction ID towards the local MIHF is held by an open
    /// commit or a Complete still repeated (4095 of them).
    #[error("no free transaction ID towards the local MIHF")]
    NoFreeTid,
}

impl StartError {
    /// Label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            StartError::Busy(_) => "busy",
            StartError::UnknownTarget(_) => "unknown_target",
            StartError::NoServices(_) => "no_services",
            StartError::TooMany(_) => "too_many",
            StartError::ShuttingDown => "shutting_down",
            StartError::NoFreeTid => "no_free_tid",
        }
    }
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // MIH frames dominate; actions are short-lived.
pub enum Action {
    /// Send this frame to the local MIHF's SAP.
    Mih(Message),
    /// Send this CXTP message to the peer router `to`.
    Cxtp {
        /// Peer router.
        to: IpAddr,
        /// The message.
        bytes: Bytes,
    },
    /// Source: ask the services for the UE's contexts (API
    /// `request_export`), then call [`Orchestrator::on_app_exported`].
    ExportApp {
        /// Handover.
        id: HandoverId,
        /// UE.
        ue: IpAddr,
    },
    /// Source: freeze and capture the UE's sessions (`SessionExporter::export`
    /// with the UE's connections from the API), then call
    /// [`Orchestrator::on_sessions_exported`].
    ExportSessions {
        /// Handover.
        id: HandoverId,
        /// UE.
        ue: IpAddr,
    },
    /// Destination: deliver contexts to the services (API
    /// `deliver_import`), then call [`Orchestrator::on_app_imported`].
    ImportApp {
        /// Handover.
        id: HandoverId,
        /// UE.
        ue: IpAddr,
        /// Contexts.
        contexts: Vec<ServiceContext>,
    },
    /// Destination: rebuild sessions (`SessionImporter::import`), then call
    /// [`Orchestrator::on_sessions_imported`].
    ImportSessions {
        /// Handover.
        id: HandoverId,
        /// UE.
        ue: IpAddr,
        /// Sessions.
        sessions: Vec<TcpSessionContext>,
    },
    /// Tell the services how the migration of `ue` ended (API
    /// `notify_outcome`; it also cancels an export/import still pending).
    NotifyOutcome {
        /// UE.
        ue: IpAddr,
        /// Committed or rolled back.
        outcome: Outcome,
        /// Why.
        cause: String,
    },
    /// Source rollback: rebuild the exported sessions here
    /// (`SessionExporter::restore`). Comes before the `NotifyOutcome`.
    RestoreSessions {
        /// UE.
        ue: IpAddr,
        /// What the exporter returned.
        sessions: Vec<TcpSessionContext>,
    },
    /// Source commit: `SessionExporter::release`.
    ReleaseSessions {
        /// UE.
        ue: IpAddr,
    },
    /// Destination commit: `SessionImporter::commit`.
    CommitSessions {
        /// UE.
        ue: IpAddr,
    },
    /// Destination rollback: `SessionImporter::discard`.
    DiscardSessions {
        /// UE.
        ue: IpAddr,
    },
}

/// What happened, for logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A handover started here.
    Started {
        /// Handover.
        id: HandoverId,
        /// UE.
        ue: IpAddr,
        /// Our role.
        role: Role,
        /// The other eNBC.
        peer: String,
        /// What started it.
        trigger: TriggerKind,
    },
    /// A peer's commit was refused by admission.
    AdmissionRefused {
        /// UE (if the request named one).
        ue: Option<IpAddr>,
        /// The requesting MIHF.
        peer: String,
        /// Label (busy, unknown_peer, not_registered, capacity, bad_request).
        label: &'static str,
        /// Reason sent back.
        reason: String,
    },
    /// A migration ended.
    Finished(MigrationRecord),
    /// The answer to [`Orchestrator::query_attempt`]: what the
    /// destination says became of an attempt of an earlier process
    /// (`None`: no answer within the repeats).
    AttemptOutcome {
        /// UE.
        ue: IpAddr,
        /// The destination.
        peer: String,
        /// The attempt asked about.
        attempt: u32,
        /// Its answer.
        outcome: Option<mih::AttemptOutcome>,
    },
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrchestratorStats {
    /// Handovers started.
    pub started: ByRole<u64>,
    /// Committed.
    pub committed: ByRole<u64>,
    /// Rolled back.
    pub rolled_back: ByRole<u64>,
    /// Starts refused, by label.
    pub start_refused: BTreeMap<&'static str, u64>,
    /// Admissions refused, by label.
    pub admission_refused: BTreeMap<&'static str, u64>,
    /// Rollbacks by cause label.
    pub causes: BTreeMap<&'static str, u64>,
    /// Inputs for a handover that no longer exists (late answers).
    pub stale_inputs: u64,
    /// MIH_N2N_HO_Complete indications answered but acted on nowhere: of
    /// another attempt than the UE's incoming handover, without an
    /// attempt id, or for no handover (a repeat of one already acted on).
    pub complete_stale: u64,
    /// MIH_N2N_HO_Commit indications of an attempt seen already (the
    /// network repeated it): answered as the first, no new handover.
    pub commit_repeated: u64,
    /// MIH_N2N_HO_Complete requests sent (first sends and repeats).
    pub complete_sent: u64,
    /// Ended attempts whose Complete a response of the destination
    /// acknowledged.
    pub complete_answered: u64,
    /// Ended attempts whose Complete was never answered within the
    /// repeats.
    pub complete_unanswered: u64,
    /// Complete sends (first or repeat) skipped because every TID towards
    /// the local MIHF was in use; the repeats go on at their interval.
    pub complete_no_tid: u64,
    /// Destination: complete timeouts that asked the source before
    /// committing (MIH_N2N_HO_Complete with the attempt id).
    pub timeout_queries: u64,
    /// CXTP messages of another attempt dropped: a CTD/PCTD for a UE not
    /// awaiting contexts or carrying another transfer id, a CTDR whose
    /// echo names another transfer or repeats an answer, a CTC for an
    /// identified push, a CTDR/CTC for a UE not transferring.
    pub cxtp_stale: u64,
    /// MIH frames we did not expect (unknown TID, other primitives).
    pub mih_unexpected: u64,
    /// CXTP messages dropped (unknown peer, unexpected type or MN,
    /// malformed).
    pub cxtp_dropped: u64,
    /// CXTP messages sent.
    pub cxtp_sent: u64,
    /// CXTP messages received and accepted.
    pub cxtp_received: u64,
}

#[derive(Clone, Debug)]
enum State {
    // Source.
    Committing {
        tid: u16,
    },
    ExportingApp,
    ExportingSessions {
        contexts: Vec<ServiceContext>,
    },
    Transferring,
    // Destination.
    AwaitingContexts,
    ImportingApp {
        sessions: Vec<TcpSessionContext>,
        results: Vec<(u16, u8)>,
    },
    ImportingSessions {
        results: Vec<(u16, u8)>,
    },
    AwaitingComplete,
}

#[derive(Clone, Copy, Debug, Default)]
struct Times {
    commit_sent: Option<Instant>,
    commit_done: Option<Instant>,
    app_start: Option<Instant>,
    app_done: Option<Instant>,
    sess_start: Option<Instant>,
    sess_done: Option<Instant>,
    cxtp_start: Option<Instant>,
    cxtp_done: Option<Instant>,
}

fn span(a: Option<Instant>, b: Option<Instant>) -> Option<Duration> {
    Some(b?.saturating_duration_since(a?))
}

#[derive(Debug)]
struct Handover {
    id: HandoverId,
    /// The source's attempt id (MIH vendor TLV kind 3, CXTP transfer id).
    attempt: NonZeroU32,
    ue: IpAddr,
    role: Role,
    peer: String,
    peer_ip: IpAddr,
    trigger: TriggerKind,
    state: State,
    started: Instant,
    deadline: Option<Instant>,
    times: Times,
    sizes: Sizes,
    /// The services were asked (export or import): they must hear the outcome.
    api_asked: bool,
    /// Source: exported sessions, kept for a rollback.
    sessions: Option<Vec<TcpSessionContext>>,
    /// Destination: the importer built sessions.
    sessions_imported: bool,
    /// Source: the destination accepted the commit (tell it the end).
    peer_accepted: bool,
    /// Destination: taken back from the session journal after a restart
    /// ([`Orchestrator::recover_incoming`]).
    recovered: bool,
    /// Destination: the complete timeout passed once and the source was
    /// asked; the next deadline commits.
    asked_at_timeout: bool,
}

/// Why a [`Closing`] sends MIH_N2N_HO_Complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClosingKind {
    /// A source tells how its attempt ended.
    Tell,
    /// A restarted source's question ([`Orchestrator::query_attempt`]):
    /// its answer (or the lack of one) is an [`Event::AttemptOutcome`].
    Query,
    /// A restarted destination's question about its recovered incoming
    /// attempt ([`Orchestrator::recover_incoming`]), to the source: the
    /// answer commits or rolls back that attempt here.
    IncomingQuery,
}

impl Handover {
    fn info(&self) -> HandoverInfo {
        HandoverInfo {
            ue: self.ue,
            id: self.id,
            role: self.role,
            state: state_name(&self.state),
        }
    }
}

/// An ended attempt (source) whose MIH_N2N_HO_Complete is repeated until
/// the destination answers.
#[derive(Debug)]
struct Closing {
    ue: IpAddr,
    peer: String,
    result: HoResult,
    /// Why the Complete is sent.
    kind: ClosingKind,
    /// The TIDs of every Complete sent for it.
    tids: Vec<u16>,
    sends: u32,
    /// Next repeat, or (after the last) when to stop waiting.
    next: Instant,
}

/// An attempt that ended here, in either role (a destination's, which a
/// restarted source asks about; a source's, which a restarted destination
/// asks about).
#[derive(Debug)]
struct EndedIncoming {
    role: Role,
    peer: String,
    attempt: u32,
    committed: bool,
    at: Instant,
}

/// The sans-IO orchestrator. See the [module documentation](super).
pub struct Orchestrator {
    cfg: OrchestratorConfig,
    user_id: MihfId,
    peers: HashMap<String, IpAddr>,
    handovers: HashMap<IpAddr, Handover>,
    tids: HashMap<u16, IpAddr>,
    next_tid: u16,
    next_id: HandoverId,
    next_attempt: NonZeroU32,
    /// Ended attempts still telling their destination: attempt → state.
    closing: HashMap<u32, Closing>,
    /// TIDs of the Completes of `closing`: TID → attempt.
    complete_tids: HashMap<u16, u32>,
    /// Incoming attempts that ended here, oldest first.
    ended_incoming: VecDeque<EndedIncoming>,
    /// UEs whose sessions a recovery may restore: no handover in either
    /// role until it ends.
    recovering: std::collections::HashSet<IpAddr>,
    par: PreviousRouter,
    nar: NewRouter,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
    stats: OrchestratorStats,
    shut: bool,
    /// Session exports still running for handovers that rolled back:
    /// their sessions are restored when the answer comes.
    abandoned_exports: HashMap<HandoverId, IpAddr>,
}

impl std::fmt::Debug for Orchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orchestrator")
            .field("user_id", &self.user_id)
            .field("handovers", &self.handovers.len())
            .finish_non_exhaustive()
    }
}

fn peek(bytes: &[u8]) -> Option<(MessageType, IpAddr)> {
    let h = Header::parse(bytes).ok()?;
    Some((h.msg_type, h.mn_addr(bytes).ok()?))
}

impl Orchestrator {
    /// New orchestrator; `peers` maps the MIHF ID of each neighbouring
    /// eNBC to the address of its CXTP router.
    pub fn new(
        cfg: OrchestratorConfig,
        peers: impl IntoIterator<Item = (String, IpAddr)>,
    ) -> Orchestrator {
        let engine_cfg = engine::Config {
            max_transfer_time: cfg.transfer_timeout,
            cache_time: cfg.transfer_timeout,
            ack: true,
            // Messages in flight before CTDRs must come back: a 1 MiB
            // context is 17 messages, so 16 keeps it to about two round
            // trips (the receiver's memory is bounded by the reassembly
            // limits, not by this).
            window: 16,
            segment: cfg.segment.clone(),
            ..engine::Config::default()
        };
        let mut o = Orchestrator {
            user_id: MihfId::new(cfg.user_id.clone().into_bytes()),
            peers: HashMap::new(),
            handovers: HashMap::new(),
            tids: HashMap::new(),
            next_tid: 1,
            next_id: HandoverId(1),
            next_attempt: cfg.first_attempt.unwrap_or_else(random_attempt),
            closing: HashMap::new(),
            complete_tids: HashMap::new(),
            ended_incoming: VecDeque::new(),
            recovering: Default::default(),
            par: PreviousRouter::new(engine_cfg.clone()),
            nar: NewRouter::new(engine_cfg, ProfileRegistry::with_builtins()),
            actions: VecDeque::new(),
            events: VecDeque::new(),
            stats: OrchestratorStats::default(),
            shut: false,
            abandoned_exports: HashMap::new(),
            cfg,
        };
        for (id, ip) in peers {
            let _ = o.add_peer(id, ip);
        }
        o
    }

    /// The configuration.
    pub fn config(&self) -> &OrchestratorConfig {
        &self.cfg
    }

    /// Add or replace a peer. Fails when the table is full or the address
    /// already belongs to another peer.
    pub fn add_peer(&mut self, mihf_id: String, cxtp: IpAddr) -> Result<(), String> {
        let cxtp = mih::canonical(cxtp);
        if self.peers.iter().any(|(k, v)| *v == cxtp && *k != mihf_id) {
            return Err(format!(
                "{cxtp} is already the CXTP address of another peer"
            ));
        }
        if !self.peers.contains_key(&mihf_id) && self.peers.len() >= self.cfg.max_peers {
            return Err(format!("peer table full ({})", self.cfg.max_peers));
        }
        self.peers.insert(mihf_id, cxtp);
        Ok(())
    }

    /// Counters.
    pub fn stats(&self) -> &OrchestratorStats {
        &self.stats
    }

    /// Handovers under way.
    pub fn in_progress(&self) -> ByRole<usize> {
        let s = self
            .handovers
            .values()
            .filter(|h| h.role == Role::Source)
            .count();
        ByRole {
            source: s,
            destination: self.handovers.len() - s,
        }
    }

    /// Whether `ue` is moving (either role), or reserved by a recovery.
    pub fn is_moving(&self, ue: IpAddr) -> bool {
        let ue = mih::canonical(ue);
        self.handovers.contains_key(&ue) || self.recovering.contains(&ue)
    }

    /// The destination of `ue`'s handover under way (either role: the
    /// other eNBC).
    pub fn peer_of(&self, ue: IpAddr) -> Option<&str> {
        self.handovers
            .get(&mih::canonical(ue))
            .map(|h| h.peer.as_str())
    }

    /// What started the handover of `ue`.
    pub fn trigger_of(&self, ue: IpAddr) -> Option<TriggerKind> {
        self.handovers.get(&mih::canonical(ue)).map(|h| h.trigger)
    }

    /// The handover of `ue`.
    pub fn handover(&self, ue: IpAddr) -> Option<HandoverInfo> {
        self.handovers.get(&mih::canonical(ue)).map(Handover::info)
    }

    /// Every handover under way, by ID.
    pub fn handovers(&self) -> Vec<HandoverInfo> {
        let mut v: Vec<_> = self.handovers.values().map(Handover::info).collect();
        v.sort_by_key(|h| h.id);
        v
    }

    /// Next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The attempt id of `ue`'s handover under way.
    pub fn attempt(&self, ue: IpAddr) -> Option<u32> {
        self.handovers
            .get(&mih::canonical(ue))
            .map(|h| h.attempt.get())
    }

    /// Ended attempts whose MIH_N2N_HO_Complete is still being repeated.
    pub fn closing(&self) -> usize {
        self.closing.len()
    }

    /// Earliest deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.handovers
            .values()
            .filter_map(|h| h.deadline)
            .chain(self.closing.values().map(|c| c.next))
            .chain(self.par.poll_timeout())
            .chain(self.nar.poll_timeout())
            .min()
    }

    // ------------------------------------------------------------ source

    /// Start moving `req.ue` to `req.target` (X2 trigger or operator).
    pub fn start_handover(
        &mut self,
        now: Instant,
        req: HandoverRequest,
        view: &dyn NodeView,
    ) -> Result<HandoverId, StartError> {
        let ue = mih::canonical(req.ue);
        let r = self
            .check_start(ue, &req.target, view)
            .and_then(|v| Ok((v, self.alloc_tid().ok_or(StartError::NoFreeTid)?)));
        let ((peer_ip, services), tid) = match r {
            Ok(v) => v,
            Err(e) => {
                *self.stats.start_refused.entry(e.label()).or_default() += 1;
                return Err(e);
            }
        };
        let attempt = self.alloc_attempt();
        let msg = mih::commit_request(
            tid,
            &self.user_id,
            &req.target,
            ue,
            &services,
            req.cell,
            attempt.get(),
        );
        self.tids.insert(tid, ue);
        let id = self.alloc_id();
        let h = Handover {
            id,
            attempt,
            ue,
            role: Role::Source,
            peer: req.target.clone(),
            peer_ip,
            trigger: req.trigger,
            state: State::Committing { tid },
            started: now,
            deadline: Some(now + self.cfg.mih_timeout),
            times: Times {
                commit_sent: Some(now),
                ..Times::default()
            },
            sizes: Sizes {
                services: services.len(),
                ..Sizes::default()
            },
            api_asked: false,
            sessions: None,
            sessions_imported: false,
            peer_accepted: false,
            recovered: false,
            asked_at_timeout: false,
        };
        self.handovers.insert(ue, h);
        self.stats.started.source += 1;
        self.actions.push_back(Action::Mih(msg));
        self.events.push_back(Event::Started {
            id,
            ue,
            role: Role::Source,
            peer: req.target,
            trigger: req.trigger,
        });
        Ok(id)
    }

    fn check_start(
        &self,
        ue: IpAddr,
        target: &str,
        view: &dyn NodeView,
    ) -> Result<(IpAddr, Vec<String>), StartError> {
        if self.shut {
            return Err(StartError::ShuttingDown);
        }
        if self.handovers.contains_key(&ue) || self.recovering.contains(&ue) {
            return Err(StartError::Busy(ue));
        }
        let peer_ip = self
            .peers
            .get(target)
            .copied()
            .ok_or_else(|| StartError::UnknownTarget(target.to_string()))?;
        if self.in_progress().source >= self.cfg.max_outgoing {
            return Err(StartError::TooMany(self.cfg.max_outgoing));
        }
        let services = view.services_of(ue);
        if services.is_empty() {
            return Err(StartError::NoServices(ue));
        }
        Ok((peer_ip, services))
    }

    fn alloc_id(&mut self) -> HandoverId {
        let id = self.next_id;
        self.next_id.0 += 1;
        id
    }

    fn alloc_attempt(&mut self) -> NonZeroU32 {
        let a = self.next_attempt;
        self.next_attempt = a.checked_add(1).unwrap_or(NonZeroU32::MIN);
        a
    }

    /// A TID towards the local MIHF that no open commit and no repeated
    /// Complete holds (TIDs are 12 bits: 1 to 4095), or None when all are
    /// held. The SAP has no retransmission, so a TID is free again as soon
    /// as its answer came (or its closing ended).
    fn alloc_tid(&mut self) -> Option<u16> {
        if self.tids.len() + self.complete_tids.len() >= 4095 {
            return None;
        }
        loop {
            let t = self.next_tid;
            self.next_tid = if t >= 4095 { 1 } else { t + 1 };
            if !self.tids.contains_key(&t) && !self.complete_tids.contains_key(&t) {
                return Some(t);
            }
        }
    }

    /// The services' contexts for handover `id` (or why there are none).
    pub fn on_app_exported(
        &mut self,
        now: Instant,
        id: HandoverId,
        result: Result<Vec<ServiceContext>, String>,
    ) {
        let Some(ue) = self.find(id, |s| matches!(s, State::ExportingApp)) else {
            return;
        };
        match result {
            Ok(contexts) => {
                let Some(h) = self.handovers.get_mut(&ue) else {
                    return;
                };
                h.times.app_done = Some(now);
                h.times.sess_start = Some(now);
                h.sizes.services = contexts.len();
                h.sizes.app_octets = contexts.iter().map(|c| c.data.len()).sum();
                h.state = State::ExportingSessions { contexts };
                h.deadline = Some(now + self.cfg.export_timeout);
                self.actions.push_back(Action::ExportSessions { id, ue });
            }
            Err(e) => self.rollback(now, ue, Cause::AppExport(e)),
        }
    }

    /// The exported sessions for handover `id` (or why the export failed).
    pub fn on_sessions_exported(
        &mut self,
        now: Instant,
        id: HandoverId,
        result: Result<Vec<TcpSessionContext>, String>,
    ) {
        let Some(ue) = self.find(id, |s| matches!(s, State::ExportingSessions { .. })) else {
            // The handover rolled back while the exporter was freezing the
            // sessions: put them back.
            if let Some(ue) = self.abandoned_exports.remove(&id) {
                if let Ok(sessions) = result {
                    if !sessions.is_empty() {
                        self.actions
                            .push_back(Action::RestoreSessions { ue, sessions });
                    }
                }
            }
            return;
        };
        let sessions = match result {
            Ok(s) => s,
            Err(e) => return self.rollback(now, ue, Cause::SessionExport(e)),
        };
        let Some(h) = self.handovers.get_mut(&ue) else {
            return;
        };
        let State::ExportingSessions { contexts } =
            std::mem::replace(&mut h.state, State::Transferring)
        else {
            return;
        };
        h.times.sess_done = Some(now);
        h.times.cxtp_start = Some(now);
        h.deadline = None;
        let mut cx: Vec<Context> = contexts.iter().map(ServiceContext::to_cxtp).collect();
        for s in &sessions {
            let (presence_vector, data) = s.encode();
            h.sizes.session_octets += data.len();
            cx.push(Context {
                fpt: fpt::TCP_SESSION,
                presence_vector,
                data,
            });
        }
        h.sizes.sessions = sessions.len();
        h.sessions = Some(sessions);
        let (peer_ip, attempt) = (h.peer_ip, h.attempt);
        match self
            .par
            .start_identified_push(now, ue, peer_ip, attempt, cx)
        {
            Ok(()) => self.pump_engines(now),
            Err(e) => self.rollback(now, ue, Cause::Encode(e.to_string())),
        }
    }

    fn find(&mut self, id: HandoverId, want: impl Fn(&State) -> bool) -> Option<IpAddr> {
        let found = self
            .handovers
            .values()
            .find(|h| h.id == id && want(&h.state))
            .map(|h| h.ue);
        if found.is_none() {
            self.stats.stale_inputs += 1;
        }
        found
    }

    /// Roll back the handover of `ue` with the operator's reason. Returns
    /// whether one was rolled back. A destination that has sent its
    /// successful CTDR is not rolled back (`false`): the source may have
    /// committed on it, so only the source's MIH_N2N_HO_Complete (or the
    /// complete timeout) ends it.
    pub fn abort(&mut self, now: Instant, ue: IpAddr, why: &str) -> bool {
        let ue = mih::canonical(ue);
        let Some(h) = self.handovers.get(&ue) else {
            return false;
        };
        if h.role == Role::Destination && matches!(h.state, State::AwaitingComplete) {
            return false;
        }
        self.rollback(now, ue, Cause::Aborted(why.to_string()));
        true
    }

    /// Roll back handover `id` if it is under way in the source role
    /// (a source's handover ends when it commits, so this never undoes a
    /// commit). Returns whether it was rolled back.
    pub fn abort_handover(&mut self, now: Instant, id: HandoverId, why: &str) -> bool {
        let Some(ue) = self
            .handovers
            .values()
            .find(|h| h.id == id && h.role == Role::Source)
            .map(|h| h.ue)
        else {
            return false;
        };
        self.rollback(now, ue, Cause::Aborted(why.to_string()));
        true
    }

    /// The X2 trigger forgot the UE whose `HandoverTriggered` started
    /// handover `id`. Only a HandoverCancel aborts, and only that handover
    /// (see [`Orchestrator::abort_handover`]): a timeout (no
    /// UEContextRelease seen: the handover executed, its end was missed),
    /// an eviction or a superseding HandoverRequest say nothing against the
    /// migration. Returns whether it was rolled back.
    pub fn abort_x2(&mut self, now: Instant, id: HandoverId, reason: &ForgetReason) -> bool {
        match reason {
            ForgetReason::Cancelled(_) => self.abort_handover(now, id, &format!("X2 {reason:?}")),
            _ => false,
        }
    }

    /// Roll back every handover under way and refuse new ones.
    pub fn shutdown(&mut self, now: Instant) {
        self.shut = true;
        let ues: Vec<IpAddr> = self.handovers.keys().copied().collect();
        for ue in ues {
            self.rollback(now, ue, Cause::Aborted("shutting down".into()));
        }
    }

    // --------------------------------------------------------------- MIH

    /// A frame from the local MIHF (a confirm of ours, or an indication of
    /// a peer's command).
    pub fn handle_mih(&mut self, now: Instant, msg: Message, view: &dyn NodeView) {
        let mid = msg.header.mid;
        match (mid.opcode(), &msg.body) {
            (Opcode::Confirm, Body::N2nHoCommitResponse(_))
                if mid == N2N_HO_COMMIT.with_opcode(Opcode::Confirm) =>
            {
                self.on_commit_confirm(now, msg)
            }
            (Opcode::Confirm, _) if mid == N2N_HO_COMPLETE.with_opcode(Opcode::Confirm) => {
                self.on_complete_confirm(now, &msg)
            }
            (Opcode::Indication, Body::N2nHoCommitRequest(_)) => {
                self.on_commit_indication(now, msg, view)
            }
            (Opcode::Indication, Body::N2nHoCompleteRequest(_)) => {
                self.on_complete_indication(now, msg)
            }
            (Opcode::Indication, _) if mid.sid() == mihf::wire::ServiceId::COMMAND => {
                // A command we declared (network handover commands) but do
                // not serve: answer, so the peer is not left waiting.
                self.stats.mih_unexpected += 1;
                let (body, extra) =
                    mihf::proto::status::failure_body(&msg.body, Status::UNSPECIFIED_FAILURE);
                let mut rsp = Message::new(
                    mid.with_opcode(Opcode::Response),
                    msg.header.tid,
                    self.user_id.clone(),
                    msg.source.clone(),
                    body,
                );
                rsp.extra = extra;
                self.actions.push_back(Action::Mih(rsp));
            }
            _ => self.stats.mih_unexpected += 1,
        }
    }

    fn on_commit_confirm(&mut self, now: Instant, msg: Message) {
        let Body::N2nHoCommitResponse(rsp) = &msg.body else {
            return;
        };
        let tid = msg.header.tid;
        let Some(ue) = self.tids.get(&tid).copied() else {
            self.stats.mih_unexpected += 1;
            return;
        };
        // A confirm the local MIHF made (a failure) carries no attempt id;
        // one from the destination echoes ours.
        let ok = self.handovers.get(&ue).is_some_and(|h| {
            matches!(h.state, State::Committing { tid: t } if t == tid)
                && mih::parse_mn_id(&rsp.mn_mihf_id).is_none_or(|u| u == ue)
                && mih::parse_attempt(&msg).is_none_or(|a| a == h.attempt.get())
        });
        if !ok {
            self.stats.mih_unexpected += 1;
            return;
        }
        self.tids.remove(&tid);
        let status = rsp.status;
        if !status.is_success() {
            let cause = if status == Status::REJECTED {
                Cause::Refused {
                    status: status.0,
                    reason: mih::parse_reason(&msg).unwrap_or_default(),
                }
            } else {
                Cause::MihFailure { status: status.0 }
            };
            return self.rollback(now, ue, cause);
        }
        let Some(h) = self.handovers.get_mut(&ue) else {
            return;
        };
        h.peer_accepted = true;
        h.api_asked = true;
        h.times.commit_done = Some(now);
        h.times.app_start = Some(now);
        h.state = State::ExportingApp;
        h.deadline = Some(now + self.cfg.export_timeout);
        let id = h.id;
        self.actions.push_back(Action::ExportApp { id, ue });
    }

    fn refuse(&mut self, msg: &Message, ue: Option<IpAddr>, label: &'static str, reason: String) {
        *self.stats.admission_refused.entry(label).or_default() += 1;
        let rsp = mih::commit_response(msg, &self.user_id, Status::REJECTED, Some(&reason));
        self.actions.push_back(Action::Mih(rsp));
        self.events.push_back(Event::AdmissionRefused {
            ue,
            peer: msg.source.to_string(),
            label,
            reason,
        });
    }

    fn on_commit_indication(&mut self, now: Instant, msg: Message, view: &dyn NodeView) {
        let peer = msg.source.to_string();
        let Some(info) = mih::parse_info(&msg) else {
            return self.refuse(
                &msg,
                None,
                "bad_request",
                "the request names no UE address".into(),
            );
        };
        let ue = info.ue;
        let Some(attempt) = info.attempt.and_then(NonZeroU32::new) else {
            return self.refuse(
                &msg,
                Some(ue),
                "bad_request",
                "the request carries no attempt id".into(),
            );
        };
        // The same commit again (the network repeated it): the same answer,
        // no second handover.
        if let Some(h) = self.handovers.get(&ue) {
            if h.role == Role::Destination && h.peer == peer && h.attempt == attempt {
                self.stats.commit_repeated += 1;
                let rsp = mih::commit_response(&msg, &self.user_id, Status::SUCCESS, None);
                self.actions.push_back(Action::Mih(rsp));
                return;
            }
        }
        if self.ended_outcome(now, &peer, attempt.get()).is_some() {
            self.stats.commit_repeated += 1;
            let why = format!("attempt {attempt} of UE {ue} ended already");
            let rsp = mih::commit_response(&msg, &self.user_id, Status::REJECTED, Some(&why));
            self.actions.push_back(Action::Mih(rsp));
            return;
        }
        if self.shut {
            return self.refuse(&msg, Some(ue), "capacity", "shutting down".into());
        }
        if self.handovers.contains_key(&ue) {
            return self.refuse(&msg, Some(ue), "busy", format!("UE {ue} is already moving"));
        }
        if self.recovering.contains(&ue) {
            return self.refuse(
                &msg,
                Some(ue),
                "busy",
                format!("UE {ue}: a restarted migration is being recovered here"),
            );
        }
        let Some(peer_ip) = self.peers.get(&peer).copied() else {
            return self.refuse(
                &msg,
                Some(ue),
                "unknown_peer",
                format!("{peer} is not a configured peer"),
            );
        };
        if let Some(list) = &info.services {
            if let Some(missing) = list.iter().find(|s| !view.has_service(s)) {
                return self.refuse(
                    &msg,
                    Some(ue),
                    "not_registered",
                    format!("service {missing:?} is not registered here"),
                );
            }
        }
        let incoming = self.in_progress().destination;
        if incoming >= self.cfg.max_incoming || view.user_count() + incoming >= self.cfg.max_ues {
            return self.refuse(
                &msg,
                Some(ue),
                "capacity",
                format!(
                    "no capacity ({} UEs here, {incoming} arriving; limits {} UEs, {} at once)",
                    view.user_count(),
                    self.cfg.max_ues,
                    self.cfg.max_incoming
                ),
            );
        }
        if let Err(e) = self.nar.expect_transfer(
            ue,
            peer_ip,
            now + self.cfg.context_timeout,
            true,
            Some(attempt),
        ) {
            return self.refuse(&msg, Some(ue), "busy", e.to_string());
        }
        let rsp = mih::commit_response(&msg, &self.user_id, Status::SUCCESS, None);
        self.actions.push_back(Action::Mih(rsp));
        let id = self.alloc_id();
        self.start_incoming(
            ue,
            Handover {
                id,
                attempt,
                ue,
                role: Role::Destination,
                peer: peer.clone(),
                peer_ip,
                trigger: TriggerKind::Peer,
                state: State::AwaitingContexts,
                started: now,
                // The nAR engine enforces the context timeout; this one is
                // a backstop.
                deadline: Some(now + self.cfg.context_timeout + self.cfg.transfer_timeout),
                times: Times {
                    commit_sent: Some(now),
                    commit_done: Some(now),
                    ..Times::default()
                },
                sizes: Sizes {
                    services: info.services.as_ref().map_or(0, Vec::len),
                    ..Sizes::default()
                },
                api_asked: false,
                sessions: None,
                sessions_imported: false,
                peer_accepted: true,
                recovered: false,
                asked_at_timeout: false,
            },
        );
    }

    /// A handover in the destination role begins: tracked, counted and
    /// announced ([`Event::Started`]).
    fn start_incoming(&mut self, ue: IpAddr, h: Handover) {
        let (id, peer) = (h.id, h.peer.clone());
        self.handovers.insert(ue, h);
        self.stats.started.destination += 1;
        self.events.push_back(Event::Started {
            id,
            ue,
            role: Role::Destination,
            peer,
            trigger: TriggerKind::Peer,
        });
    }

    fn on_complete_indication(&mut self, now: Instant, msg: Message) {
        let Body::N2nHoCompleteRequest(req) = &msg.body else {
            return;
        };
        let ue = mih::parse_mn_id(&req.mn_mihf_id);
        let peer = msg.source.to_string();
        let attempt = mih::parse_attempt(&msg);
        let result = req.result;
        // Only the attempt of the UE's incoming handover: a Complete of an
        // earlier attempt (repeated, or late, or a restarted source's
        // question) is answered, so the peer's transaction ends, with what
        // became of that attempt, and acts on nothing.
        let found = ue.filter(|u| {
            self.handovers.get(u).is_some_and(|h| {
                h.role == Role::Destination && h.peer == peer && attempt == Some(h.attempt.get())
            })
        });
        let (status, outcome) = match found {
            Some(ue) if result == HoResult::SUCCESS => {
                if matches!(
                    self.handovers.get(&ue).map(|h| &h.state),
                    Some(State::AwaitingComplete)
                ) {
                    self.commit(now, ue, None);
                    (Status::SUCCESS, mih::AttemptOutcome::Committed)
                } else {
                    // The source cannot have seen our CTDR yet: ignore.
                    (Status::SUCCESS, mih::AttemptOutcome::InProgress)
                }
            }
            Some(ue) => {
                // Rolled back before the answer leaves: whoever reads it
                // may restore the sessions at once.
                self.rollback(now, ue, Cause::SourceRolledBack);
                (Status::SUCCESS, mih::AttemptOutcome::RolledBack)
            }
            None => {
                self.stats.complete_stale += 1;
                let o = match attempt.map(|a| (a, self.ended_outcome(now, &peer, a))) {
                    Some((_, Some(true))) => mih::AttemptOutcome::Committed,
                    Some((_, Some(false))) => mih::AttemptOutcome::RolledBack,
                    // Not one of our incoming attempts: perhaps one of
                    // ours to that peer, asked about by a restarted
                    // destination.
                    Some((a, None)) => self.outgoing_outcome(now, &peer, a),
                    None => mih::AttemptOutcome::Unknown,
                };
                (Status::UNSPECIFIED_FAILURE, o)
            }
        };
        if let Some(rsp) = mih::complete_response(&msg, &self.user_id, status, Some(outcome)) {
            self.actions.push_back(Action::Mih(rsp));
        }
    }

    /// Whether the incoming attempt `attempt` of `peer` ended here
    /// committed (`Some(true)`) or rolled back (`Some(false)`), if it is
    /// remembered (forgetting those older than
    /// [`OrchestratorConfig::outcome_memory`]).
    fn ended_outcome(&mut self, now: Instant, peer: &str, attempt: u32) -> Option<bool> {
        self.ended_in(now, Role::Destination, peer, attempt)
    }

    fn ended_in(&mut self, now: Instant, role: Role, peer: &str, attempt: u32) -> Option<bool> {
        self.forget_old_outcomes(now);
        self.ended_incoming
            .iter()
            .rev()
            .find(|e| e.role == role && e.attempt == attempt && e.peer == peer)
            .map(|e| e.committed)
    }

    /// What a source can say of its own attempt `attempt` to `peer` (a
    /// restarted destination asks): still under way, or how it ended if it
    /// is remembered.
    fn outgoing_outcome(&mut self, now: Instant, peer: &str, attempt: u32) -> mih::AttemptOutcome {
        let live = self
            .handovers
            .values()
            .any(|h| h.role == Role::Source && h.peer == peer && h.attempt.get() == attempt);
        if live {
            return mih::AttemptOutcome::InProgress;
        }
        match self.ended_in(now, Role::Source, peer, attempt) {
            Some(true) => mih::AttemptOutcome::Committed,
            Some(false) => mih::AttemptOutcome::RolledBack,
            None => mih::AttemptOutcome::Unknown,
        }
    }

    fn forget_old_outcomes(&mut self, now: Instant) {
        while self
            .ended_incoming
            .front()
            .is_some_and(|e| now.saturating_duration_since(e.at) > self.cfg.outcome_memory)
        {
            self.ended_incoming.pop_front();
        }
    }

    // ------------------------------------------------------------ recovery

    /// A restarted source asks the destination `peer` what became of its
    /// attempt `attempt` to move `ue` (an attempt of an earlier process,
    /// from the session journal): MIH_N2N_HO_Complete(Failure) with the
    /// attempt id, repeated like any Complete until a response echoes it.
    /// The Failure also rolls the attempt back if it is still under way
    /// there. The answer (the response's kind 4) comes as
    /// [`Event::AttemptOutcome`], `None` after the last repeat. `ue` is
    /// reserved ([`Orchestrator::reserve`]) until
    /// [`Orchestrator::end_recovery`].
    pub fn query_attempt(
        &mut self,
        now: Instant,
        ue: IpAddr,
        peer: &str,
        attempt: NonZeroU32,
    ) -> Result<(), String> {
        let ue = mih::canonical(ue);
        if self.closing.contains_key(&attempt.get()) {
            return Err(format!("attempt {attempt} is being closed already"));
        }
        if !self.peers.contains_key(peer) {
            return Err(format!("{peer:?} is not a configured peer"));
        }
        self.reserve(ue)?;
        self.open_closing(
            now,
            ue,
            peer,
            attempt.get(),
            HoResult::FAILURE,
            ClosingKind::Query,
        );
        Ok(())
    }

    /// A restarted source that had committed `attempt` tells the
    /// destination again (MIH_N2N_HO_Complete(Success), repeated until
    /// answered), so it commits without waiting for its timeout.
    pub fn confirm_attempt(&mut self, now: Instant, ue: IpAddr, peer: &str, attempt: NonZeroU32) {
        let ue = mih::canonical(ue);
        if self.closing.contains_key(&attempt.get()) || !self.peers.contains_key(peer) {
            return;
        }
        self.open_closing(
            now,
            ue,
            peer,
            attempt.get(),
            HoResult::SUCCESS,
            ClosingKind::Tell,
        );
    }

    /// A restarted destination takes back an incoming attempt its session
    /// journal says was imported (its sessions rebuilt frozen again, the
    /// successful CTDR perhaps sent): the handover waits for the source's
    /// MIH_N2N_HO_Complete as it did before the crash, from `now` for
    /// [`OrchestratorConfig::complete_timeout`]. Success (the source
    /// repeats it until answered) commits, Failure rolls back, and the
    /// timeout commits, as for any successful CTDR; before that,
    /// [`Orchestrator::ask_recovered_sources`] asks the source
    /// (MIH_N2N_HO_Complete with the attempt id, repeated like any
    /// Complete). The UE must not be moving already, and `peer` (the
    /// source) must be configured.
    pub fn recover_incoming(
        &mut self,
        now: Instant,
        ue: IpAddr,
        peer: &str,
        attempt: NonZeroU32,
    ) -> Result<HandoverId, String> {
        let ue = mih::canonical(ue);
        if self.handovers.contains_key(&ue) {
            return Err(format!("UE {ue} is moving"));
        }
        let Some(peer_ip) = self.peers.get(peer).copied() else {
            return Err(format!("{peer:?} is not a configured peer"));
        };
        let id = self.alloc_id();
        self.start_incoming(
            ue,
            Handover {
                id,
                attempt,
                ue,
                role: Role::Destination,
                peer: peer.to_string(),
                peer_ip,
                trigger: TriggerKind::Peer,
                state: State::AwaitingComplete,
                started: now,
                deadline: Some(now + self.cfg.complete_timeout),
                times: Times::default(),
                sizes: Sizes::default(),
                // The services imported before the crash: they hear the end.
                api_asked: true,
                sessions: None,
                sessions_imported: true,
                peer_accepted: true,
                recovered: true,
                asked_at_timeout: false,
            },
        );
        Ok(id)
    }

    /// Ask the sources of the attempts [`Orchestrator::recover_incoming`]
    /// took back (once the local MIHF knows this MIH-User again: a question
    /// sent before is lost): a source that rolled back or committed while
    /// this node was down, and told it then, answers from its table of
    /// ended attempts, and that answer ends the attempt here at once.
    pub fn ask_recovered_sources(&mut self, now: Instant) {
        let asks: Vec<(IpAddr, String, u32)> = self
            .handovers
            .values()
            .filter(|h| h.recovered && matches!(h.state, State::AwaitingComplete))
            .map(|h| (h.ue, h.peer.clone(), h.attempt.get()))
            .collect();
        for (ue, peer, attempt) in asks {
            self.ask_source(now, ue, &peer, attempt);
        }
    }

    /// A destination asks the source `peer` what became of its attempt
    /// `attempt` of `ue` (MIH_N2N_HO_Complete(Failure) with the attempt
    /// id, repeated like any Complete), unless that question is out
    /// already; the answer commits or rolls back the handover here.
    fn ask_source(&mut self, now: Instant, ue: IpAddr, peer: &str, attempt: u32) {
        if !self.closing.contains_key(&attempt) {
            self.open_closing(
                now,
                ue,
                peer,
                attempt,
                HoResult::FAILURE,
                ClosingKind::IncomingQuery,
            );
        }
    }

    /// Keep `ue` from moving (no handover in either role: a start is
    /// refused as [`StartError::Busy`], a peer's commit as busy) while a
    /// recovery may restore its sessions.
    pub fn reserve(&mut self, ue: IpAddr) -> Result<(), String> {
        let ue = mih::canonical(ue);
        if self.handovers.contains_key(&ue) {
            return Err(format!("UE {ue} is moving"));
        }
        if self.recovering.len() >= MAX_RECOVERING && !self.recovering.contains(&ue) {
            return Err(format!("{MAX_RECOVERING} UEs reserved already"));
        }
        self.recovering.insert(ue);
        Ok(())
    }

    /// The recovery of `ue` ended: it may move again.
    pub fn end_recovery(&mut self, ue: IpAddr) {
        self.recovering.remove(&mih::canonical(ue));
    }

    /// UEs reserved by recoveries.
    pub fn recovering(&self) -> usize {
        self.recovering.len()
    }

    // -------------------------------------------------------------- CXTP

    /// A CXTP message from the peer router `from`.
    pub fn handle_cxtp(&mut self, now: Instant, from: IpAddr, bytes: Bytes) {
        let from = mih::canonical(from);
        let Some((ty, mn)) = peek(&bytes) else {
            self.stats.cxtp_dropped += 1;
            return;
        };
        let mn = mih::canonical(mn);
        let h = self.handovers.get(&mn);
        let ok = match ty {
            // To the nAR: only from the source we accepted, while its
            // contexts are awaited (the nAR checks the attempt's id).
            MessageType::Ctd | MessageType::Pctd => h.is_some_and(|h| {
                h.role == Role::Destination
                    && h.peer_ip == from
                    && matches!(h.state, State::AwaitingContexts)
            }),
            // To the pAR: only from the destination we push to, while we
            // push (the pAR checks the echo of the attempt's id).
            MessageType::Ctdr | MessageType::Ctc => h.is_some_and(|h| {
                h.role == Role::Source
                    && h.peer_ip == from
                    && matches!(h.state, State::Transferring)
            }),
            _ => false,
        };
        if !ok {
            // From a peer: a message of an attempt that ended (or of one
            // not started yet).
            let from_peer = self.peers.values().any(|p| *p == from);
            let known = matches!(
                ty,
                MessageType::Ctd | MessageType::Pctd | MessageType::Ctdr | MessageType::Ctc
            );
            if from_peer && known {
                self.stats.cxtp_stale += 1;
            } else {
                self.stats.cxtp_dropped += 1;
            }
            return;
        }
        let before = self.engine_stale();
        match ty {
            MessageType::Ctd | MessageType::Pctd => {
                self.nar.handle_message(now, from, bytes.clone());
                if self.engine_stale() == before {
                    if let Some(h) = self.handovers.get_mut(&mn) {
                        h.times.cxtp_start.get_or_insert(now);
                        h.sizes.cxtp_messages += 1;
                        h.sizes.cxtp_octets += bytes.len();
                    }
                }
            }
            _ => self.par.handle_message(now, from, bytes),
        }
        let stale = self.engine_stale() - before;
        if stale > 0 {
            self.stats.cxtp_stale += stale;
        } else {
            self.stats.cxtp_received += 1;
        }
        self.pump_engines(now);
    }

    /// Messages the engines dropped as belonging to another attempt.
    fn engine_stale(&self) -> u64 {
        let (p, n) = (self.par.stats(), self.nar.stats());
        p.ctdr_stale + p.ctdr_duplicate + p.ctc_ignored + n.ctd_stale + n.ctd_duplicate
    }

    fn pump_engines(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(Transmit { to, payload: bytes }) = self.par.poll_transmit() {
                progressed = true;
                if let Some((MessageType::Ctd | MessageType::Pctd, mn)) = peek(&bytes) {
                    if let Some(h) = self.handovers.get_mut(&mih::canonical(mn)) {
                        h.sizes.cxtp_messages += 1;
                        h.sizes.cxtp_octets += bytes.len();
                    }
                }
                self.stats.cxtp_sent += 1;
                self.actions.push_back(Action::Cxtp { to, bytes });
            }
            while let Some(Transmit { to, payload: bytes }) = self.nar.poll_transmit() {
                progressed = true;
                self.stats.cxtp_sent += 1;
                self.actions.push_back(Action::Cxtp { to, bytes });
            }
            while let Some(e) = self.par.poll_event() {
                progressed = true;
                self.on_par_event(now, e);
            }
            while let Some(e) = self.nar.poll_event() {
                progressed = true;
                self.on_nar_event(now, e);
            }
            if !progressed {
                return;
            }
        }
    }

    fn on_par_event(&mut self, now: Instant, e: ParEvent) {
        let (mn, cause) = match e {
            ParEvent::TransferComplete {
                mn,
                success,
                entries,
                ..
            } => {
                let mn = mih::canonical(mn);
                if !self.transferring(mn) {
                    return;
                }
                if let Some(h) = self.handovers.get_mut(&mn) {
                    h.times.cxtp_done = Some(now);
                }
                if success {
                    return self.commit(now, mn, None);
                }
                (mn, Cause::CtdrFailure(entries))
            }
            ParEvent::TransferFailed { mn, reason, .. } => {
                let mn = mih::canonical(mn);
                if !self.transferring(mn) {
                    return;
                }
                let cause = match reason {
                    FailReason::Cancelled => Cause::CxtpCancelled,
                    _ => Cause::CxtpTimeout,
                };
                (mn, cause)
            }
            ParEvent::ContextsRequested { mn, .. } => {
                // Nobody should ask our pAR (no MN keys here): refuse.
                self.par.abort(mn);
                self.stats.cxtp_dropped += 1;
                return;
            }
            ParEvent::AuthFailed { .. } | ParEvent::Malformed { .. } => {
                self.stats.cxtp_dropped += 1;
                return;
            }
        };
        self.rollback(now, mn, cause);
    }

    fn transferring(&self, mn: IpAddr) -> bool {
        self.handovers
            .get(&mn)
            .is_some_and(|h| h.role == Role::Source && matches!(h.state, State::Transferring))
    }

    fn on_nar_event(&mut self, now: Instant, e: NarEvent) {
        match e {
            NarEvent::ContextsReceived { mn, contexts, .. } => {
                let mn = mih::canonical(mn);
                let waiting = self.handovers.get(&mn).is_some_and(|h| {
                    h.role == Role::Destination && matches!(h.state, State::AwaitingContexts)
                });
                if !waiting {
                    let _ = self.nar.acknowledge(mn, false, Vec::new());
                    self.stats.stale_inputs += 1;
                    return;
                }
                self.on_contexts(now, mn, contexts);
            }
            NarEvent::TransferFailed { mn, reason, .. } => {
                let mn = mih::canonical(mn);
                let waiting = self.handovers.get(&mn).is_some_and(|h| {
                    h.role == Role::Destination && matches!(h.state, State::AwaitingContexts)
                });
                if waiting {
                    let cause = match reason {
                        FailReason::Timeout if self.got_ctd(mn) => Cause::CxtpTimeout,
                        FailReason::Timeout => Cause::NoContext,
                        FailReason::Cancelled => Cause::CxtpCancelled,
                        _ => Cause::CxtpTimeout,
                    };
                    self.rollback(now, mn, cause);
                }
            }
            NarEvent::AuthFailed { .. } | NarEvent::Malformed { .. } => {
                self.stats.cxtp_dropped += 1;
            }
        }
    }

    fn got_ctd(&self, mn: IpAddr) -> bool {
        self.handovers
            .get(&mn)
            .is_some_and(|h| h.times.cxtp_start.is_some())
    }

    fn on_contexts(&mut self, now: Instant, ue: IpAddr, contexts: Vec<Context>) {
        let mut apps = Vec::new();
        let mut sessions = Vec::new();
        let mut results = Vec::new();
        let mut session_octets = 0;
        for c in &contexts {
            if c.fpt == fpt::TCP_SESSION {
                match TcpSessionContext::decode(c.presence_vector, &c.data) {
                    Ok(s) => {
                        session_octets += c.data.len();
                        sessions.push(s);
                    }
                    Err(_) => results.push((c.fpt, status::MALFORMED)),
                }
            } else if is_service_fpt(c.fpt) {
                match ServiceContext::from_cxtp(c) {
                    Ok(s) => apps.push(s),
                    Err(_) => results.push((c.fpt, status::MALFORMED)),
                }
            } else {
                results.push((c.fpt, status::UNSUPPORTED_FPT));
            }
        }
        let Some(h) = self.handovers.get_mut(&ue) else {
            return;
        };
        h.times.cxtp_done = Some(now);
        h.times.app_start = Some(now);
        h.sizes.services = apps.len();
        h.sizes.app_octets = apps.iter().map(|c| c.data.len()).sum();
        h.sizes.sessions = sessions.len();
        h.sizes.session_octets = session_octets;
        h.deadline = Some(now + self.cfg.import_timeout);
        let id = h.id;
        if apps.is_empty() {
            h.times.app_done = Some(now);
            h.state = State::ImportingApp { sessions, results };
            return self.on_app_imported(now, id, Ok(Vec::new()));
        }
        h.api_asked = true;
        h.state = State::ImportingApp { sessions, results };
        self.actions.push_back(Action::ImportApp {
            id,
            ue,
            contexts: apps,
        });
    }

    /// The services' import results for handover `id`.
    pub fn on_app_imported(
        &mut self,
        now: Instant,
        id: HandoverId,
        result: Result<Vec<ImportReport>, String>,
    ) {
        let Some(ue) = self.find(id, |s| matches!(s, State::ImportingApp { .. })) else {
            return;
        };
        let Some(h) = self.handovers.get_mut(&ue) else {
            return;
        };
        let State::ImportingApp {
            sessions,
            mut results,
        } = std::mem::replace(&mut h.state, State::AwaitingComplete)
        else {
            return;
        };
        h.times.app_done = Some(now);
        match result {
            Ok(reports) => results.extend(reports.iter().map(|r| (r.fpt, r.cxtp_status()))),
            Err(_) => results.push((fpt::APP_SERVICE, status::TIMEOUT)),
        }
        h.times.sess_start = Some(now);
        // A service refused: the reply fails whatever the sessions do, so
        // do not rebuild them (a live socket here, and the path switched
        // here, only to be discarded, would race the source's restore).
        let app_failed = results.iter().any(|(_, st)| *st != status::SUCCESS);
        if sessions.is_empty() || app_failed {
            h.state = State::ImportingSessions { results };
            return self.on_sessions_imported(now, id, Vec::new());
        }
        h.sessions_imported = true;
        h.state = State::ImportingSessions { results };
        h.deadline = Some(now + self.cfg.import_timeout);
        self.actions
            .push_back(Action::ImportSessions { id, ue, sessions });
    }

    /// The session importer's results for handover `id` (one per session).
    pub fn on_sessions_imported(
        &mut self,
        now: Instant,
        id: HandoverId,
        results: Vec<Result<(), String>>,
    ) {
        let Some(ue) = self.find(id, |s| matches!(s, State::ImportingSessions { .. })) else {
            return;
        };
        let Some(h) = self.handovers.get_mut(&ue) else {
            return;
        };
        let State::ImportingSessions { results: mut all } =
            std::mem::replace(&mut h.state, State::AwaitingComplete)
        else {
            return;
        };
        h.times.sess_done = Some(now);
        let expected = h.sizes.sessions;
        for i in 0..expected {
            let ok = matches!(results.get(i), Some(Ok(())));
            all.push((
                fpt::TCP_SESSION,
                if ok {
                    status::SUCCESS
                } else {
                    status::SESSION_FAILED
                },
            ));
        }
        let (success, entries) = verdict(all);
        let _ = self.nar.acknowledge(ue, success, entries.clone());
        self.pump_engines(now);
        if success {
            if let Some(h) = self.handovers.get_mut(&ue) {
                h.deadline = Some(now + self.cfg.complete_timeout);
            }
        } else {
            self.rollback(now, ue, Cause::ImportFailed(entries));
        }
    }

    // ------------------------------------------------------------ timers

    /// Fire the deadlines due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.par.handle_timeout(now);
        self.nar.handle_timeout(now);
        self.pump_engines(now);
        self.closing_timeouts(now);
        let due: Vec<IpAddr> = self
            .handovers
            .values()
            .filter(|h| h.deadline.is_some_and(|d| d <= now))
            .map(|h| h.ue)
            .collect();
        for ue in due {
            let Some(h) = self.handovers.get(&ue) else {
                continue;
            };
            let cause = match &h.state {
                State::Committing { .. } => Cause::MihTimeout,
                State::ExportingApp => Cause::AppExport("no answer in time".into()),
                State::ExportingSessions { .. } => Cause::SessionExport("no answer in time".into()),
                State::Transferring => Cause::CxtpTimeout,
                State::AwaitingContexts => Cause::NoContext,
                State::ImportingApp { .. } | State::ImportingSessions { .. } => {
                    Cause::ImportFailed(vec![StatusEntry {
                        fpt: 0,
                        status: status::TIMEOUT,
                    }])
                }
                State::AwaitingComplete if !h.asked_at_timeout => {
                    // Silence since the CTDR: the Complete may be lost
                    // (committed there) or every Complete(Failure) may be
                    // (rolled back and serving there, the UE's path
                    // switched back): committing now could make both ends
                    // serve the session, and this end's would be stale
                    // (its peer acknowledges data it never sent: a stall
                    // for good). Ask the source first, as a restarted
                    // destination does; its answer decides, and only a
                    // source that stays silent (or cannot say) through the
                    // repeats leaves the commit to the next deadline.
                    let (peer, attempt) = (h.peer.clone(), h.attempt.get());
                    if let Some(h) = self.handovers.get_mut(&ue) {
                        h.asked_at_timeout = true;
                        h.deadline = Some(now + self.cfg.query_horizon());
                    }
                    self.ask_source(now, ue, &peer, attempt);
                    self.stats.timeout_queries += 1;
                    continue;
                }
                State::AwaitingComplete => {
                    self.commit(now, ue, Some(Cause::CompleteTimeout));
                    continue;
                }
            };
            // (At the destination, rollback() answers the CTDR the source
            // waits for.)
            self.rollback(now, ue, cause);
        }
        self.pump_engines(now);
    }

    // ---------------------------------------------------------- outcomes

    fn commit(&mut self, now: Instant, ue: IpAddr, note: Option<Cause>) {
        let Some(h) = self.handovers.remove(&ue) else {
            return;
        };
        match h.role {
            Role::Source => {
                if h.sessions.is_some() {
                    self.actions.push_back(Action::ReleaseSessions { ue });
                }
                self.actions.push_back(Action::NotifyOutcome {
                    ue,
                    outcome: Outcome::Committed,
                    cause: "CTDR success".into(),
                });
                self.par.abort(ue);
                self.start_closing(now, &h, HoResult::SUCCESS);
                self.stats.committed.source += 1;
            }
            Role::Destination => {
                self.nar.abort(ue);
                if h.sessions_imported {
                    self.actions.push_back(Action::CommitSessions { ue });
                }
                if h.api_asked {
                    self.actions.push_back(Action::NotifyOutcome {
                        ue,
                        outcome: Outcome::Committed,
                        cause: note
                            .as_ref()
                            .map_or_else(|| "source committed".into(), ToString::to_string),
                    });
                }
                self.stats.committed.destination += 1;
            }
        }
        self.finish(now, h, Outcome::Committed, note);
    }

    fn rollback(&mut self, now: Instant, ue: IpAddr, cause: Cause) {
        let Some(h) = self.handovers.remove(&ue) else {
            return;
        };
        let text = cause.to_string();
        match h.role {
            Role::Source => {
                if let State::Committing { tid } = h.state {
                    self.tids.remove(&tid);
                }
                if matches!(h.state, State::ExportingSessions { .. }) {
                    if self.abandoned_exports.len() >= MAX_ABANDONED {
                        // Drivers answer every export; this only bounds a broken one.
                        self.abandoned_exports.clear();
                    }
                    self.abandoned_exports.insert(h.id, ue);
                }
                self.par.abort(ue);
                if let Some(s) = &h.sessions {
                    self.actions.push_back(Action::RestoreSessions {
                        ue,
                        sessions: s.clone(),
                    });
                }
                if h.api_asked {
                    self.actions.push_back(Action::NotifyOutcome {
                        ue,
                        outcome: Outcome::RolledBack,
                        cause: text,
                    });
                }
                // Also after a MIH timeout: the destination may have
                // accepted a commit whose answer was lost or late; it then
                // stops waiting for contexts at once.
                if h.peer_accepted || cause == Cause::MihTimeout {
                    self.start_closing(now, &h, HoResult::FAILURE);
                }
                self.stats.rolled_back.source += 1;
            }
            Role::Destination => {
                if matches!(h.state, State::AwaitingContexts) {
                    // Tell the source (CTC) if a transfer had started.
                    self.nar.cancel(now, ue);
                } else {
                    let _ = self.nar.acknowledge(
                        ue,
                        false,
                        vec![StatusEntry {
                            fpt: 0,
                            status: status::TIMEOUT,
                        }],
                    );
                }
                // Whatever the engine still held of this attempt.
                self.nar.abort(ue);
                if h.sessions_imported {
                    self.actions.push_back(Action::DiscardSessions { ue });
                }
                if h.api_asked {
                    self.actions.push_back(Action::NotifyOutcome {
                        ue,
                        outcome: Outcome::RolledBack,
                        cause: text,
                    });
                }
                self.stats.rolled_back.destination += 1;
            }
        }
        *self.stats.causes.entry(cause.label()).or_default() += 1;
        self.pump_engines(now);
        self.finish(now, h, Outcome::RolledBack, Some(cause));
    }

    // ------------------------------------------------ telling the end (source)

    /// Tell the destination how attempt `h` ended, and keep telling it
    /// (every `complete_retry_interval`, at most `complete_retries` more
    /// times) until a response echoes the attempt: a lost
    /// Complete(Failure) would otherwise let the destination commit at its
    /// complete timeout what the source restored.
    fn start_closing(&mut self, now: Instant, h: &Handover, result: HoResult) {
        let peer = h.peer.clone();
        self.open_closing(now, h.ue, &peer, h.attempt.get(), result, ClosingKind::Tell);
    }

    fn open_closing(
        &mut self,
        now: Instant,
        ue: IpAddr,
        peer: &str,
        attempt: u32,
        result: HoResult,
        kind: ClosingKind,
    ) {
        if self.closing.len() >= MAX_CLOSING {
            // Bounded: give up on the one closest to its end.
            if let Some(a) = self
                .closing
                .iter()
                .min_by_key(|(_, c)| (c.next, c.sends))
                .map(|(a, _)| *a)
            {
                self.give_up_closing(a);
            }
        }
        self.closing.insert(
            attempt,
            Closing {
                ue,
                peer: peer.to_string(),
                result,
                kind,
                tids: Vec::new(),
                sends: 0,
                next: now,
            },
        );
        self.send_complete(now, attempt);
    }

    /// No answer for `attempt` within the repeats (or evicted).
    fn give_up_closing(&mut self, attempt: u32) {
        if let Some(c) = self.closing.get(&attempt) {
            if c.kind == ClosingKind::Query {
                self.events.push_back(Event::AttemptOutcome {
                    ue: c.ue,
                    peer: c.peer.clone(),
                    attempt,
                    outcome: None,
                });
            }
        }
        self.end_closing(attempt);
        self.stats.complete_unanswered += 1;
    }

    fn send_complete(&mut self, now: Instant, attempt: u32) {
        let tid = self.alloc_tid();
        let Some(c) = self.closing.get_mut(&attempt) else {
            return;
        };
        c.sends += 1;
        c.next = now + self.cfg.complete_retry_interval;
        let Some(tid) = tid else {
            // Every TID is taken: this send is skipped, the repeats go on
            // (and end) as if it had been lost.
            self.stats.complete_no_tid += 1;
            return;
        };
        c.tids.push(tid);
        let msg = mih::complete_request(tid, &self.user_id, &c.peer, c.ue, c.result, attempt);
        self.complete_tids.insert(tid, attempt);
        self.stats.complete_sent += 1;
        self.actions.push_back(Action::Mih(msg));
    }

    fn end_closing(&mut self, attempt: u32) {
        if let Some(c) = self.closing.remove(&attempt) {
            for t in c.tids {
                self.complete_tids.remove(&t);
            }
        }
    }

    /// A MIH_N2N_HO_Complete.confirm: the destination's answer ends the
    /// repeats when it echoes the attempt; a confirm without it (the local
    /// MIHF's failure: the peer was not reached) does not.
    fn on_complete_confirm(&mut self, now: Instant, msg: &Message) {
        let Some(&attempt) = self.complete_tids.get(&msg.header.tid) else {
            self.stats.mih_unexpected += 1;
            return;
        };
        if mih::parse_attempt(msg) == Some(attempt) {
            if let Some(c) = self
                .closing
                .get(&attempt)
                .filter(|c| c.kind == ClosingKind::IncomingQuery)
            {
                let outcome = mih::parse_outcome(msg).unwrap_or(mih::AttemptOutcome::Unknown);
                let (ue, peer) = (c.ue, c.peer.clone());
                let ours = self.handovers.get(&ue).is_some_and(|h| {
                    h.role == Role::Destination
                        && h.peer == peer
                        && h.attempt.get() == attempt
                        && matches!(h.state, State::AwaitingComplete)
                });
                match outcome {
                    mih::AttemptOutcome::Committed | mih::AttemptOutcome::RolledBack => {
                        self.end_closing(attempt);
                        self.stats.complete_answered += 1;
                        if ours && outcome == mih::AttemptOutcome::Committed {
                            self.commit(now, ue, Some(Cause::SourceConfirmed));
                        } else if ours {
                            self.rollback(now, ue, Cause::SourceRolledBack);
                        }
                    }
                    // Under way there, or not remembered: ask again at the
                    // next repeat; the complete timeout decides at last.
                    _ => {}
                }
                return;
            }
            if let Some(c) = self.closing.get(&attempt) {
                if c.kind == ClosingKind::Query {
                    // A destination that does not say (no kind 4) cannot
                    // vouch for either outcome.
                    let outcome = mih::parse_outcome(msg).unwrap_or(mih::AttemptOutcome::Unknown);
                    self.events.push_back(Event::AttemptOutcome {
                        ue: c.ue,
                        peer: c.peer.clone(),
                        attempt,
                        outcome: Some(outcome),
                    });
                }
            }
            self.end_closing(attempt);
            self.stats.complete_answered += 1;
        }
    }

    fn closing_timeouts(&mut self, now: Instant) {
        let due: Vec<u32> = self
            .closing
            .iter()
            .filter(|(_, c)| c.next <= now)
            .map(|(a, _)| *a)
            .collect();
        for a in due {
            let done = self
                .closing
                .get(&a)
                .is_some_and(|c| c.sends > self.cfg.complete_retries);
            if done {
                self.give_up_closing(a);
            } else {
                self.send_complete(now, a);
            }
        }
    }

    fn finish(&mut self, now: Instant, h: Handover, outcome: Outcome, cause: Option<Cause>) {
        if h.role == Role::Destination || h.peer_accepted {
            self.forget_old_outcomes(now);
            while self.ended_incoming.len() >= self.cfg.max_outcomes.max(1) {
                self.ended_incoming.pop_front();
            }
            self.ended_incoming.push_back(EndedIncoming {
                role: h.role,
                peer: h.peer.clone(),
                attempt: h.attempt.get(),
                committed: outcome == Outcome::Committed,
                at: now,
            });
        }
        let t = &h.times;
        let phases = match h.role {
            Role::Source => Phases {
                mih_commit: span(t.commit_sent, t.commit_done),
                wait_context: None,
                app_data: span(t.app_start, t.app_done),
                socket_data: span(t.sess_start, t.sess_done),
                cxtp: span(t.cxtp_start, t.cxtp_done),
                total: now.saturating_duration_since(h.started),
            },
            Role::Destination => Phases {
                mih_commit: None,
                wait_context: span(t.commit_done, t.cxtp_start),
                app_data: span(t.app_start, t.app_done),
                socket_data: span(t.sess_start, t.sess_done),
                cxtp: span(t.cxtp_start, t.cxtp_done),
                total: now.saturating_duration_since(h.started),
            },
        };
        self.events.push_back(Event::Finished(MigrationRecord {
            id: h.id,
            attempt: h.attempt.get(),
            ue: h.ue,
            role: h.role,
            peer: h.peer,
            trigger: h.trigger,
            outcome,
            cause,
            phases,
            sizes: h.sizes,
        }));
    }
}

fn state_name(s: &State) -> &'static str {
    match s {
        State::Committing { .. } => "committing",
        State::ExportingApp => "exporting_app",
        State::ExportingSessions { .. } => "exporting_sessions",
        State::Transferring => "transferring",
        State::AwaitingContexts => "awaiting_contexts",
        State::ImportingApp { .. } => "importing_app",
        State::ImportingSessions { .. } => "importing_sessions",
        State::AwaitingComplete => "awaiting_complete",
    }
}

/// The connections of `ue` from [`crate::api`] as one list (what a
/// session exporter gets).
pub fn flatten_connections(per_service: Vec<(String, Vec<Connection>)>) -> Vec<Connection> {
    let mut all: Vec<Connection> = per_service.into_iter().flat_map(|(_, c)| c).collect();
    all.sort_by_key(|c| (c.client, c.server));
    all.dedup();
    all
}
