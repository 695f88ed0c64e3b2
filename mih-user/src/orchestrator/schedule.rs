//! Handover scheduling in front of the [`Orchestrator`], sans-IO: triggers
//! that cannot start now wait in a bounded queue, and migrations the RAN
//! has made necessary are retried after a rollback.
//!
//! ```text
//! X2 trigger ─► request ──► Orchestrator::start_handover ──► started
//!                  │ Busy / TooMany
//!                  ▼
//!   queue (one entry per UE, max_queued, queue_deadline) ◄── a newer trigger replaces
//!                  │ the UE's handover finished, or a slot freed (on_finished)
//!                  ▼
//!   start, or drop: already there / left
//!
//! Event::Finished(rolled back, X2, retryable cause) ──► retry at now + backoff
//!   (initial · factor^(n-1), capped, jittered; max_attempts) ──► start, or gave up
//! ```
//!
//! [`Scheduler`] owns no socket, task or clock. Inputs carry `now` and the
//! [`Orchestrator`] (and the [`NodeView`]) it acts on:
//! [`Scheduler::request`] (an X2 trigger), [`Scheduler::start_now`] (the
//! operator: started or refused, never queued), [`Scheduler::on_finished`]
//! (every [`Event::Finished`](super::Event::Finished) of the orchestrator),
//! [`Scheduler::handle_timeout`], [`Scheduler::abort`],
//! [`Scheduler::ue_left`] and [`Scheduler::shutdown`]. Outputs are
//! [`Scheduler::poll_event`] (one [`ScheduleEvent`] per thing worth a log
//! line), [`Scheduler::poll_timeout`], [`Scheduler::stats`] and
//! [`Scheduler::pending`] (the queued and retrying UEs, for status).
//!
//! **Queue.** A trigger the orchestrator refuses with
//! [`StartError::Busy`] (the UE moves already, in either role) or
//! [`StartError::TooMany`] (`max_outgoing` handovers open) waits; any other
//! refusal is returned. A UE has at most one waiting entry: a newer trigger
//! for it replaces the older one (the latest RAN decision wins), keeping
//! its place in the queue. At most `max_queued` entries (queued and
//! retrying together) wait; a trigger that finds the table full is refused
//! ([`Refusal::QueueFull`]). A queued trigger that has not started within
//! `queue_deadline` is dropped ([`Fate::Expired`]). Waiting entries start
//! in arrival order when a slot frees; one that waits for its UE's own
//! handover waits for that handover's `Finished`.
//!
//! **Already there.** When a UE's handover ends and a trigger for it
//! waits, where the UE now is decides. A source only moves UEs it
//! serves: after committing A→B, a waiting "go to B" is void
//! ([`Fate::AlreadyThere`]), and any other waiting move of that UE from
//! here too ([`Fate::Left`]). After an incoming A→B committed the UE is
//! here, so a waiting B→A starts. After an incoming A→B rolled back the
//! UE stays at A, so a waiting B→A is void ([`Fate::AlreadyThere`]).
//! After a rollback at the source the waiting trigger starts.
//!
//! **Retry.** After the RAN's handover the UE is gone from this cell
//! whether or not its state followed, so a migration an X2 trigger asked
//! for is retried when it rolled back for a cause that can change
//! ([`retryable`]): the same target, attempt `n + 1` after
//! `min(retry_initial · retry_factor^(n-1), retry_max)`, less a
//! deterministic jitter of up to `jitter_percent` (a hash of the seed, the
//! UE and `n`), at most `max_attempts` attempts in all. Operator
//! handovers are not retried (the operator sees the outcome). A retry
//! stops when a migration commits, when the attempts are spent
//! ([`Fate::GaveUp`]), when a newer trigger replaces it, on
//! [`Scheduler::abort`], when the UE leaves (no service has it when the
//! retry is due, or [`Scheduler::ue_left`]) and on shutdown.
//!
//! **Fates.** Every request ends in exactly one [`Fate`]; the counts are
//! in [`SchedulerStats::ended`].

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use cxtp::profile::status;
use mihf::wire::Status;

use super::core::{HandoverId, HandoverRequest, NodeView, Orchestrator, StartError};
use super::mih::canonical;
use super::record::{Cause, MigrationRecord, TriggerKind};
use crate::api::{Outcome, Role};

#[cfg(test)]
mod tests;

/// Number of a request (per scheduler, from 1, in the order of
/// [`Scheduler::request`] calls).
pub type RequestNo = u64;

/// Settings of the [`Scheduler`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Most waiting entries, queued and retrying together.
    pub max_queued: usize,
    /// A queued trigger not started within this long is dropped.
    pub queue_deadline: Duration,
    /// Wait before the second attempt.
    pub retry_initial: Duration,
    /// Each further wait is this many times the previous one.
    pub retry_factor: u32,
    /// Longest wait between two attempts.
    pub retry_max: Duration,
    /// Most attempts of one request, the first included (1: no retry; a
    /// rollback then ends the request as [`Fate::Done`]).
    pub max_attempts: u32,
    /// Each wait is shortened by up to this share of it (0 to 100).
    pub jitter_percent: u8,
    /// Seed of the jitter.
    pub seed: u64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_queued: 1024,
            queue_deadline: Duration::from_secs(10),
            retry_initial: Duration::from_millis(200),
            retry_factor: 2,
            retry_max: Duration::from_secs(5),
            max_attempts: 6,
            jitter_percent: 20,
            seed: 0,
        }
    }
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The orchestrator refused it for a reason waiting does not change
    /// (or the scheduler is shut down).
    #[error(transparent)]
    Start(StartError),
    /// The queue is full.
    #[error("handover queue full ({0} waiting)")]
    QueueFull(usize),
}

impl Refusal {
    /// Label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Start(e) => e.label(),
            Refusal::QueueFull(_) => "queue_full",
        }
    }
}

/// What [`Scheduler::request`] did with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "the request may have been queued rather than started"]
pub enum Requested {
    /// The handover started.
    Started {
        /// The request.
        request: RequestNo,
        /// Its handover.
        id: HandoverId,
    },
    /// It waits (the UE is moving, or too many handovers are open).
    Queued {
        /// The request.
        request: RequestNo,
    },
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fate {
    /// Its handover ran and nothing follows: committed, or rolled back
    /// for a cause a retry cannot change (or not retried: operator).
    Done,
    /// Not started: a refusal that waiting does not change, or no room
    /// in the queue.
    Refused,
    /// Queued longer than `queue_deadline`.
    Expired,
    /// A newer trigger (or an operator handover) for the UE took its place.
    Replaced,
    /// The UE already is where it would have sent it.
    AlreadyThere,
    /// Cancelled: [`Scheduler::abort`], a shutdown.
    Aborted,
    /// Rolled back `max_attempts` times.
    GaveUp,
    /// The UE is not here any more (no service has it, it committed
    /// elsewhere, [`Scheduler::ue_left`]).
    Left,
}

impl Fate {
    /// Every fate.
    pub const ALL: [Fate; 8] = [
        Fate::Done,
        Fate::Refused,
        Fate::Expired,
        Fate::Replaced,
        Fate::AlreadyThere,
        Fate::Aborted,
        Fate::GaveUp,
        Fate::Left,
    ];

    /// Label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Fate::Done => "done",
            Fate::Refused => "refused",
            Fate::Expired => "expired",
            Fate::Replaced => "replaced",
            Fate::AlreadyThere => "already_there",
            Fate::Aborted => "aborted",
            Fate::GaveUp => "gave_up",
            Fate::Left => "left",
        }
    }
}

/// What happened, one log line each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScheduleEvent {
    /// A trigger waits.
    Queued {
        /// Request.
        request: RequestNo,
        /// UE.
        ue: IpAddr,
        /// Destination eNBC.
        target: String,
        /// Why it waits: `busy` or `too_many`.
        reason: &'static str,
        /// Dropped if not started by then.
        deadline: Instant,
    },
    /// A request that waited (queued or retrying) started.
    Started {
        /// Request.
        request: RequestNo,
        /// UE.
        ue: IpAddr,
        /// Destination eNBC.
        target: String,
        /// The handover.
        id: HandoverId,
        /// Its attempt number (1 = first).
        attempt: u32,
        /// Since the request came.
        waited: Duration,
    },
    /// A migration rolled back and will be tried again.
    Retrying {
        /// Request.
        request: RequestNo,
        /// UE.
        ue: IpAddr,
        /// Destination eNBC.
        target: String,
        /// The coming attempt's number (2 = first retry).
        attempt: u32,
        /// When.
        at: Instant,
        /// Why the last attempt rolled back.
        cause: Cause,
    },
    /// The request's handover ran and nothing follows ([`Fate::Done`]).
    Done {
        /// Request.
        request: RequestNo,
        /// UE.
        ue: IpAddr,
        /// Destination eNBC.
        target: String,
        /// Attempts made.
        attempts: u32,
        /// The last one's outcome.
        outcome: Outcome,
        /// Whether it waited in the queue or retried (otherwise the
        /// orchestrator's own record says everything).
        waited: bool,
    },
    /// The attempts are spent ([`Fate::GaveUp`]).
    GaveUp {
        /// Request.
        request: RequestNo,
        /// UE.
        ue: IpAddr,
        /// Destination eNBC.
        target: String,
        /// Attempts made.
        attempts: u32,
        /// Why the last one rolled back.
        cause: Cause,
    },
    /// Queued past its deadline ([`Fate::Expired`]).
    Expired {
        /// Request.
        request: RequestNo,
        /// UE.
        ue: IpAddr,
        /// Destination eNBC.
        target: String,
        /// How long it waited.
        waited: Duration,
    },
    /// Replaced ([`Fate::Replaced`]).
    Replaced {
        /// Request.
        request: RequestNo,
        /// UE.
        ue: IpAddr,
        /// Its destination.
        target: String,
        /// The newer request (`None`: an operator handover).
        by: Option<RequestNo>,
    },
    /// Void: the UE is already there ([`Fate::AlreadyThere`]).
    AlreadyThere {
        /// Request.
        request: RequestNo,
        /// UE.
        ue: IpAddr,
        /// Destination eNBC (where the UE is).
        target: String,
    },
    /// Void: the UE left ([`Fate::Left`]).
    Left {
        /// Request.
        request: RequestNo,
        /// UE.
        ue: IpAddr,
        /// Destination eNBC.
        target: String,
    },
    /// Cancelled ([`Fate::Aborted`]).
    Aborted {
        /// Request.
        request: RequestNo,
        /// UE.
        ue: IpAddr,
        /// Destination eNBC.
        target: String,
        /// Why.
        why: String,
    },
    /// A waiting request could not start, or a retry found no room
    /// ([`Fate::Refused`]).
    Refused {
        /// Request.
        request: RequestNo,
        /// UE.
        ue: IpAddr,
        /// Destination eNBC.
        target: String,
        /// Why.
        error: Refusal,
    },
}

impl ScheduleEvent {
    /// The request it is about.
    pub fn request(&self) -> RequestNo {
        match self {
            ScheduleEvent::Queued { request, .. }
            | ScheduleEvent::Started { request, .. }
            | ScheduleEvent::Retrying { request, .. }
            | ScheduleEvent::Done { request, .. }
            | ScheduleEvent::GaveUp { request, .. }
            | ScheduleEvent::Expired { request, .. }
            | ScheduleEvent::Replaced { request, .. }
            | ScheduleEvent::AlreadyThere { request, .. }
            | ScheduleEvent::Left { request, .. }
            | ScheduleEvent::Aborted { request, .. }
            | ScheduleEvent::Refused { request, .. } => *request,
        }
    }

    /// The fate it reports, if it ends the request.
    pub fn fate(&self) -> Option<Fate> {
        Some(match self {
            ScheduleEvent::Queued { .. }
            | ScheduleEvent::Started { .. }
            | ScheduleEvent::Retrying { .. } => return None,
            ScheduleEvent::Done { .. } => Fate::Done,
            ScheduleEvent::GaveUp { .. } => Fate::GaveUp,
            ScheduleEvent::Expired { .. } => Fate::Expired,
            ScheduleEvent::Replaced { .. } => Fate::Replaced,
            ScheduleEvent::AlreadyThere { .. } => Fate::AlreadyThere,
            ScheduleEvent::Left { .. } => Fate::Left,
            ScheduleEvent::Aborted { .. } => Fate::Aborted,
            ScheduleEvent::Refused { .. } => Fate::Refused,
        })
    }
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    /// Calls of [`Scheduler::request`].
    pub requests: u64,
    /// Handovers the scheduler started (every attempt, at once or later).
    pub started: u64,
    /// Requests queued, by reason (`busy`, `too_many`).
    pub queued: BTreeMap<&'static str, u64>,
    /// Retry attempts started.
    pub retries: u64,
    /// Requests refused, and retries dropped, because the queue was full.
    pub queue_full: u64,
    /// Requests given up, by the cause label of the last rollback.
    pub gave_up: BTreeMap<&'static str, u64>,
    /// Requests ended, by [`Fate::label`].
    pub ended: BTreeMap<&'static str, u64>,
    /// Started handovers whose `Finished` never came (forgotten to keep
    /// the table bounded; ended as [`Fate::Done`]).
    pub untracked: u64,
    /// Events dropped because nobody polled them.
    pub events_dropped: u64,
}

impl SchedulerStats {
    /// Requests that ended with `fate`.
    pub fn ended(&self, fate: Fate) -> u64 {
        self.ended.get(fate.label()).copied().unwrap_or(0)
    }
}

/// A waiting request's state, for status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PendingState {
    /// Waits for its UE or a slot.
    Queued {
        /// `busy` or `too_many`.
        reason: &'static str,
        /// Dropped if not started by then.
        deadline: Instant,
    },
    /// Waits for its next attempt.
    Retrying {
        /// When.
        at: Instant,
        /// Why the last attempt rolled back.
        cause: Cause,
    },
}

/// A waiting request, for status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Request.
    pub request: RequestNo,
    /// UE.
    pub ue: IpAddr,
    /// Destination eNBC.
    pub target: String,
    /// What asked.
    pub trigger: TriggerKind,
    /// Queued or retrying.
    pub state: PendingState,
    /// Attempts made so far (the next one is `attempts + 1`).
    pub attempts: u32,
    /// When the request came.
    pub since: Instant,
}

#[derive(Clone, Debug)]
struct Entry {
    no: RequestNo,
    /// Place in the queue (arrival order; a replacement keeps it).
    seq: u64,
    req: HandoverRequest,
    since: Instant,
    attempts: u32,
    /// It waited at some point (queued, or a retry).
    waited: bool,
    wait: Wait,
}

#[derive(Clone, Debug)]
enum Wait {
    Queued {
        deadline: Instant,
        reason: &'static str,
        /// Waits for its UE's handover to finish (`on_finished`).
        after_finish: bool,
    },
    Retry {
        at: Instant,
        cause: Cause,
    },
}

#[derive(Clone, Debug)]
struct Run {
    no: RequestNo,
    req: HandoverRequest,
    since: Instant,
    /// Attempts made, this one included.
    attempts: u32,
    waited: bool,
    /// Cancelled while it ran: no retry after it.
    no_retry: bool,
}

enum Try {
    /// Started, or ended: go on with the next entry.
    Next,
    /// No slot: later entries cannot start either.
    Full,
}

/// Events kept until polled, beyond what one input produces.
const MAX_EVENTS: usize = 8192;

/// The sans-IO scheduler. See the [module documentation](self).
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedulerConfig,
    pending: BTreeMap<IpAddr, Entry>,
    running: BTreeMap<HandoverId, Run>,
    events: VecDeque<ScheduleEvent>,
    stats: SchedulerStats,
    next_no: RequestNo,
    next_seq: u64,
    shut: bool,
}

/// Whether a migration that rolled back at the source for `cause` is
/// worth another attempt: the cause lies with the network or the
/// destination's momentary state, not with what is moved or who moves it.
///
/// | cause | retried | why |
/// |---|---|---|
/// | `Refused`, reason "no capacity" / "already moving" / "shutting down" / other | yes | the destination is full, busy with the UE, or restarting; an unknown reason is given the benefit of the doubt |
/// | `Refused`, reason "not registered" / "not a configured peer" / "names no UE" | no | the destination lacks a service, does not know us, or cannot read us: configuration |
/// | `MihFailure` Network Error, Unspecified Failure (no MIH-User there), others | yes | the destination MIHF or its MIH-User is unreachable or restarting |
/// | `MihFailure` Authorization Failure | no | policy |
/// | `MihTimeout` | yes | lost or slow signalling |
/// | `AppExport`, `SessionExport`, `Encode` | no | this node's services, sockets or contexts failed; the same export fails again, and each attempt freezes the UE's service |
/// | `CxtpTimeout`, `CxtpCancelled` | yes | the destination is down, crashed or overloaded |
/// | `CtdrFailure`, every failed entry timed out, lacks capacity, is unavailable, could not be reassembled, or is a session that could not be rebuilt (or an unknown code) | yes | the destination's state can change |
/// | `CtdrFailure` with an entry: unsupported FPT (service not registered), malformed, unauthorised, refused by the service | no | the next attempt carries the same contexts to the same services |
/// | `Aborted` | no | the operator, the RAN (X2 cancel) or a shutdown decided |
/// | `SourceRestarted` | yes | a restarted source restored the UE from its journal ([`Scheduler::retry_recovered`]) |
/// | `NoContext`, `ImportFailed`, `SourceRolledBack`, `CompleteTimeout`, `SourceConfirmed` | no | destination causes; the destination never retries |
pub fn retryable(cause: &Cause) -> bool {
    match cause {
        Cause::Refused { reason, .. } => !refusal_is_final(reason),
        Cause::MihFailure { status } => *status != Status::AUTHORIZATION_FAILURE.0,
        Cause::MihTimeout => true,
        Cause::AppExport(_) | Cause::SessionExport(_) | Cause::Encode(_) => false,
        Cause::CxtpTimeout | Cause::CxtpCancelled => true,
        Cause::CtdrFailure(entries) => {
            entries
                .iter()
                .filter(|e| e.status != status::SUCCESS)
                .all(|e| {
                    !matches!(
                        e.status,
                        status::UNSUPPORTED_FPT
                            | status::MALFORMED
                            | status::UNAUTHORIZED
                            | status::SERVICE_REFUSED
                    )
                })
        }
        Cause::Aborted(_) => false,
        Cause::NoContext
        | Cause::ImportFailed(_)
        | Cause::SourceRolledBack
        | Cause::CompleteTimeout
        | Cause::SourceConfirmed => false,
        Cause::SourceRestarted => true,
    }
}

/// A destination's refusal that waiting does not change (the reasons the
/// orchestrator's admission gives for an unregistered service, an unknown
/// peer and a request without a UE).
fn refusal_is_final(reason: &str) -> bool {
    [
        "is not registered",
        "is not a configured peer",
        "names no UE",
    ]
    .iter()
    .any(|r| reason.contains(r))
}

fn mix(mut z: u64) -> u64 {
    // splitmix64's finaliser.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn jitter_hash(seed: u64, ue: IpAddr, attempt: u32) -> u64 {
    // FNV-1a over the UE's octets and the attempt, then mixed with the seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let octets: Vec<u8> = match ue {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    for b in octets.iter().chain(attempt.to_be_bytes().iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    mix(h ^ mix(seed))
}

impl Scheduler {
    /// New scheduler.
    pub fn new(cfg: SchedulerConfig) -> Scheduler {
        Scheduler {
            cfg,
            pending: BTreeMap::new(),
            running: BTreeMap::new(),
            events: VecDeque::new(),
            stats: SchedulerStats::default(),
            next_no: 1,
            next_seq: 1,
            shut: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    /// Counters.
    pub fn stats(&self) -> &SchedulerStats {
        &self.stats
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<ScheduleEvent> {
        self.events.pop_front()
    }

    /// Earliest queue deadline or retry time.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|e| match &e.wait {
                Wait::Queued { deadline, .. } => *deadline,
                Wait::Retry { at, .. } => *at,
            })
            .min()
    }

    /// The waiting requests, in queue order.
    pub fn pending(&self) -> Vec<Pending> {
        let mut v: Vec<&Entry> = self.pending.values().collect();
        v.sort_by_key(|e| e.seq);
        v.into_iter()
            .map(|e| Pending {
                request: e.no,
                ue: e.req.ue,
                target: e.req.target.clone(),
                trigger: e.req.trigger,
                state: match &e.wait {
                    Wait::Queued {
                        deadline, reason, ..
                    } => PendingState::Queued {
                        reason,
                        deadline: *deadline,
                    },
                    Wait::Retry { at, cause } => PendingState::Retrying {
                        at: *at,
                        cause: cause.clone(),
                    },
                },
                attempts: e.attempts,
                since: e.since,
            })
            .collect()
    }

    /// Waiting requests: [queued, retrying].
    pub fn pending_counts(&self) -> [usize; 2] {
        let q = self
            .pending
            .values()
            .filter(|e| matches!(e.wait, Wait::Queued { .. }))
            .count();
        [q, self.pending.len() - q]
    }

    /// Handovers started here whose `Finished` has not come yet.
    pub fn tracked(&self) -> usize {
        self.running.len()
    }

    /// The wait after attempt `attempt` (1 = the first) of moving `ue`
    /// failed: `min(retry_initial · retry_factor^(attempt-1), retry_max)`,
    /// less up to `jitter_percent` of it.
    pub fn retry_delay(&self, ue: IpAddr, attempt: u32) -> Duration {
        let cap = self.cfg.retry_max.as_nanos();
        let mut d = self.cfg.retry_initial.as_nanos().min(cap);
        for _ in 1..attempt.max(1) {
            if d >= cap || self.cfg.retry_factor <= 1 {
                break;
            }
            d = d.saturating_mul(u128::from(self.cfg.retry_factor)).min(cap);
        }
        let pct = u128::from(self.cfg.jitter_percent.min(100));
        if pct > 0 {
            let u = u128::from(jitter_hash(self.cfg.seed, canonical(ue), attempt) >> 32);
            d -= (d * pct / 100 * u) >> 32;
        }
        Duration::from_nanos(u64::try_from(d).unwrap_or(u64::MAX))
    }

    // ----------------------------------------------------------- inputs

    /// An X2 trigger (or any request that may wait): start it if the
    /// orchestrator accepts, queue it if the refusal is `Busy` or
    /// `TooMany`, refuse it otherwise. A waiting request for the same UE
    /// is replaced either way.
    pub fn request(
        &mut self,
        now: Instant,
        req: HandoverRequest,
        orch: &mut Orchestrator,
        view: &dyn NodeView,
    ) -> Result<Requested, Refusal> {
        let ue = canonical(req.ue);
        let req = HandoverRequest { ue, ..req };
        self.stats.requests += 1;
        let no = self.next_no;
        self.next_no += 1;
        if self.shut {
            self.end(Fate::Refused);
            return Err(Refusal::Start(StartError::ShuttingDown));
        }
        match orch.start_handover(now, req.clone(), view) {
            Ok(id) => {
                if let Some(old) = self.pending.remove(&ue) {
                    self.replaced(old, Some(no));
                }
                self.stats.started += 1;
                self.track(
                    id,
                    Run {
                        no,
                        req,
                        since: now,
                        attempts: 1,
                        waited: false,
                        no_retry: false,
                    },
                    orch,
                );
                Ok(Requested::Started { request: no, id })
            }
            Err(e @ (StartError::Busy(_) | StartError::TooMany(_))) => {
                let reason = e.label();
                let deadline = now + self.cfg.queue_deadline;
                let seq = match self.pending.remove(&ue) {
                    Some(old) => {
                        let seq = old.seq;
                        self.replaced(old, Some(no));
                        seq
                    }
                    None if self.pending.len() >= self.cfg.max_queued => {
                        self.stats.queue_full += 1;
                        self.end(Fate::Refused);
                        return Err(Refusal::QueueFull(self.cfg.max_queued));
                    }
                    None => self.alloc_seq(),
                };
                let target = req.target.clone();
                self.pending.insert(
                    ue,
                    Entry {
                        no,
                        seq,
                        req,
                        since: now,
                        attempts: 0,
                        waited: true,
                        wait: Wait::Queued {
                            deadline,
                            reason,
                            after_finish: matches!(e, StartError::Busy(_)),
                        },
                    },
                );
                *self.stats.queued.entry(reason).or_default() += 1;
                self.emit(ScheduleEvent::Queued {
                    request: no,
                    ue,
                    target,
                    reason,
                    deadline,
                });
                Ok(Requested::Queued { request: no })
            }
            Err(e) => {
                // The newest decision cannot be carried out, and the
                // older one is not what the RAN wants any more.
                if let Some(old) = self.pending.remove(&ue) {
                    self.replaced(old, Some(no));
                }
                self.end(Fate::Refused);
                Err(Refusal::Start(e))
            }
        }
    }

    /// A restarted source restored the sessions of an X2-triggered
    /// migration from its session journal (a rollback its previous process
    /// could not finish): the RAN has moved the UE, so it is retried as
    /// after any rollback, its first retry
    /// [`Scheduler::retry_delay`] after `now` (the process that ran the
    /// first attempt is gone, so the count starts again at one attempt
    /// made). Returns whether it was queued: not when the scheduler is
    /// shut, retries are off (`max_attempts` 1), a newer request waits for
    /// the UE, or the queue is full.
    pub fn retry_recovered(&mut self, now: Instant, req: HandoverRequest) -> bool {
        let ue = canonical(req.ue);
        if self.shut || self.cfg.max_attempts <= 1 || self.pending.contains_key(&ue) {
            return false;
        }
        if self.pending.len() >= self.cfg.max_queued {
            self.stats.queue_full += 1;
            return false;
        }
        self.stats.requests += 1;
        let no = self.next_no;
        self.next_no += 1;
        let at = now + self.retry_delay(ue, 1);
        let seq = self.alloc_seq();
        let cause = Cause::SourceRestarted;
        let target = req.target.clone();
        self.emit(ScheduleEvent::Retrying {
            request: no,
            ue,
            target,
            attempt: 2,
            at,
            cause: cause.clone(),
        });
        self.pending.insert(
            ue,
            Entry {
                no,
                seq,
                req: HandoverRequest { ue, ..req },
                since: now,
                attempts: 1,
                waited: true,
                wait: Wait::Retry { at, cause },
            },
        );
        true
    }

    /// An operator's handover: started now or refused, never queued nor
    /// retried. When it starts it replaces what waits for the UE.
    pub fn start_now(
        &mut self,
        now: Instant,
        req: HandoverRequest,
        orch: &mut Orchestrator,
        view: &dyn NodeView,
    ) -> Result<HandoverId, StartError> {
        let ue = canonical(req.ue);
        if self.shut {
            return Err(StartError::ShuttingDown);
        }
        let id = orch.start_handover(now, HandoverRequest { ue, ..req }, view)?;
        if let Some(old) = self.pending.remove(&ue) {
            self.replaced(old, None);
        }
        Ok(id)
    }

    /// One [`Event::Finished`](super::Event::Finished) of the
    /// orchestrator (every one, either role): retries what needs it,
    /// settles what waited for the UE, starts what a freed slot allows.
    pub fn on_finished(
        &mut self,
        now: Instant,
        record: &MigrationRecord,
        orch: &mut Orchestrator,
        view: &dyn NodeView,
    ) {
        let ue = canonical(record.ue);
        let run = match record.role {
            Role::Source => self.running.remove(&record.id),
            Role::Destination => None,
        };
        let newer = match self.pending.get(&ue) {
            Some(Entry {
                no,
                wait: Wait::Queued { .. },
                ..
            }) => Some(*no),
            _ => None,
        };
        if let Some(run) = run {
            self.after_run(now, ue, run, record, newer);
        }
        if newer.is_some() {
            self.settle(ue, record);
        }
        self.pump(now, orch, view);
    }

    /// Queue deadlines and retry times due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, orch: &mut Orchestrator, view: &dyn NodeView) {
        let mut expired: Vec<(u64, IpAddr)> = self
            .pending
            .iter()
            .filter(|(_, e)| matches!(e.wait, Wait::Queued { deadline, .. } if deadline <= now))
            .map(|(u, e)| (e.seq, *u))
            .collect();
        expired.sort_unstable();
        for (_, ue) in expired {
            if let Some(e) = self.pending.remove(&ue) {
                self.end(Fate::Expired);
                self.emit(ScheduleEvent::Expired {
                    request: e.no,
                    ue,
                    target: e.req.target,
                    waited: now.saturating_duration_since(e.since),
                });
            }
        }
        let mut due: Vec<(Instant, u64, IpAddr)> = self
            .pending
            .iter()
            .filter_map(|(u, e)| match e.wait {
                Wait::Retry { at, .. } if at <= now => Some((at, e.seq, *u)),
                _ => None,
            })
            .collect();
        due.sort_unstable();
        for (_, _, ue) in due {
            if view.services_of(ue).is_empty() {
                self.end_entry(ue, Fate::Left);
            } else if orch.is_moving(ue) {
                self.requeue(now, ue, StartError::Busy(ue).label(), true);
            } else {
                let _ = self.try_start(now, ue, orch, view);
            }
        }
        self.pump(now, orch, view);
    }

    /// Cancel what waits for `ue`, and any retry after its running
    /// handover (the driver aborts that one in the orchestrator). Returns
    /// whether a waiting request was cancelled.
    pub fn abort(&mut self, ue: IpAddr, why: &str) -> bool {
        let ue = canonical(ue);
        self.no_retry(ue);
        let Some(e) = self.pending.remove(&ue) else {
            return false;
        };
        self.end(Fate::Aborted);
        self.emit(ScheduleEvent::Aborted {
            request: e.no,
            ue,
            target: e.req.target,
            why: why.to_string(),
        });
        true
    }

    /// `ue` is not served here any more: drop what waits for it, and no
    /// retry after its running handover. Returns whether something waited.
    pub fn ue_left(&mut self, ue: IpAddr) -> bool {
        let ue = canonical(ue);
        self.no_retry(ue);
        self.end_entry(ue, Fate::Left)
    }

    /// Cancel everything waiting and refuse new requests (the driver
    /// shuts the orchestrator down too).
    pub fn shutdown(&mut self) {
        self.shut = true;
        let mut all: Vec<(u64, IpAddr)> = self.pending.iter().map(|(u, e)| (e.seq, *u)).collect();
        all.sort_unstable();
        for (_, ue) in all {
            if let Some(e) = self.pending.remove(&ue) {
                self.end(Fate::Aborted);
                self.emit(ScheduleEvent::Aborted {
                    request: e.no,
                    ue,
                    target: e.req.target,
                    why: "shutting down".into(),
                });
            }
        }
        for r in self.running.values_mut() {
            r.no_retry = true;
        }
    }

    // -------------------------------------------------------- internals

    fn alloc_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    fn emit(&mut self, e: ScheduleEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(e);
    }

    fn end(&mut self, fate: Fate) {
        *self.stats.ended.entry(fate.label()).or_default() += 1;
    }

    fn replaced(&mut self, old: Entry, by: Option<RequestNo>) {
        self.end(Fate::Replaced);
        self.emit(ScheduleEvent::Replaced {
            request: old.no,
            ue: old.req.ue,
            target: old.req.target,
            by,
        });
    }

    /// End the waiting entry of `ue` with `fate` (Left or AlreadyThere).
    fn end_entry(&mut self, ue: IpAddr, fate: Fate) -> bool {
        let Some(e) = self.pending.remove(&ue) else {
            return false;
        };
        self.end(fate);
        let (request, target) = (e.no, e.req.target);
        self.emit(match fate {
            Fate::AlreadyThere => ScheduleEvent::AlreadyThere {
                request,
                ue,
                target,
            },
            _ => ScheduleEvent::Left {
                request,
                ue,
                target,
            },
        });
        true
    }

    fn no_retry(&mut self, ue: IpAddr) {
        for r in self.running.values_mut().filter(|r| r.req.ue == ue) {
            r.no_retry = true;
        }
    }

    fn track(&mut self, id: HandoverId, run: Run, orch: &Orchestrator) {
        // Every tracked handover is open in the orchestrator until its
        // Finished comes; forget those that are not (a driver that lost
        // an event) so that the table stays bounded.
        if self.running.len() >= orch.config().max_outgoing {
            let gone: Vec<HandoverId> = self
                .running
                .iter()
                .filter(|(id, r)| orch.handover(r.req.ue).is_none_or(|h| h.id != **id))
                .map(|(id, _)| *id)
                .collect();
            for g in gone {
                self.running.remove(&g);
                self.stats.untracked += 1;
                self.end(Fate::Done);
            }
        }
        self.running.insert(id, run);
    }

    /// A handover this scheduler started finished.
    fn after_run(
        &mut self,
        now: Instant,
        ue: IpAddr,
        run: Run,
        record: &MigrationRecord,
        newer: Option<RequestNo>,
    ) {
        let retry = match (&record.outcome, &record.cause) {
            (Outcome::RolledBack, Some(cause))
                if run.req.trigger == TriggerKind::X2
                    && self.cfg.max_attempts > 1
                    && !run.no_retry
                    && !self.shut
                    && retryable(cause) =>
            {
                Some(cause.clone())
            }
            _ => None,
        };
        let target = run.req.target.clone();
        let Some(cause) = retry else {
            self.end(Fate::Done);
            self.emit(ScheduleEvent::Done {
                request: run.no,
                ue,
                target,
                attempts: run.attempts,
                outcome: record.outcome,
                waited: run.waited || run.attempts > 1,
            });
            return;
        };
        if newer.is_some() {
            // A newer trigger waits for this UE: it decides.
            self.end(Fate::Replaced);
            self.emit(ScheduleEvent::Replaced {
                request: run.no,
                ue,
                target,
                by: newer,
            });
            return;
        }
        if run.attempts >= self.cfg.max_attempts {
            self.end(Fate::GaveUp);
            *self.stats.gave_up.entry(cause.label()).or_default() += 1;
            self.emit(ScheduleEvent::GaveUp {
                request: run.no,
                ue,
                target,
                attempts: run.attempts,
                cause,
            });
            return;
        }
        if let Some(old) = self.pending.remove(&ue) {
            // Only a driver feeding events out of order gets here.
            self.replaced(old, Some(run.no));
        }
        if self.pending.len() >= self.cfg.max_queued {
            self.stats.queue_full += 1;
            self.end(Fate::Refused);
            self.emit(ScheduleEvent::Refused {
                request: run.no,
                ue,
                target,
                error: Refusal::QueueFull(self.cfg.max_queued),
            });
            return;
        }
        let at = now + self.retry_delay(ue, run.attempts);
        let seq = self.alloc_seq();
        self.emit(ScheduleEvent::Retrying {
            request: run.no,
            ue,
            target,
            attempt: run.attempts + 1,
            at,
            cause: cause.clone(),
        });
        self.pending.insert(
            ue,
            Entry {
                no: run.no,
                seq,
                req: run.req,
                since: run.since,
                attempts: run.attempts,
                waited: true,
                wait: Wait::Retry { at, cause },
            },
        );
    }

    /// The UE's handover ended while a trigger for it was queued: where
    /// is the UE now, seen from here?
    fn settle(&mut self, ue: IpAddr, record: &MigrationRecord) {
        let Some(e) = self.pending.get_mut(&ue) else {
            return;
        };
        let same = e.req.target == record.peer;
        let void = match (record.role, record.outcome) {
            // It left for the peer: a source only moves the UEs it serves.
            (Role::Source, Outcome::Committed) => {
                Some(if same { Fate::AlreadyThere } else { Fate::Left })
            }
            // It never came and stays at the peer.
            (Role::Destination, Outcome::RolledBack) if same => Some(Fate::AlreadyThere),
            // It stays here, or just arrived: the trigger stands.
            _ => None,
        };
        match void {
            Some(f) => {
                self.end_entry(ue, f);
            }
            None => {
                if let Wait::Queued { after_finish, .. } = &mut e.wait {
                    *after_finish = false;
                }
            }
        }
    }

    /// Start queued requests in queue order while slots are free.
    fn pump(&mut self, now: Instant, orch: &mut Orchestrator, view: &dyn NodeView) {
        if self.shut {
            return;
        }
        let mut order: Vec<(u64, IpAddr)> = self
            .pending
            .iter()
            .filter(|(_, e)| {
                matches!(
                    e.wait,
                    Wait::Queued {
                        after_finish: false,
                        ..
                    }
                )
            })
            .map(|(u, e)| (e.seq, *u))
            .collect();
        order.sort_unstable();
        for (_, ue) in order {
            if orch.is_moving(ue) {
                continue;
            }
            if let Try::Full = self.try_start(now, ue, orch, view) {
                break;
            }
        }
    }

    /// Put the entry of `ue` (back) in the queue.
    fn requeue(&mut self, now: Instant, ue: IpAddr, reason: &'static str, after_finish: bool) {
        let Some(e) = self.pending.get_mut(&ue) else {
            return;
        };
        let deadline = match e.wait {
            Wait::Queued { deadline, .. } => deadline,
            Wait::Retry { .. } => now + self.cfg.queue_deadline,
        };
        e.wait = Wait::Queued {
            deadline,
            reason,
            after_finish,
        };
    }

    /// Start the waiting entry of `ue` now.
    fn try_start(
        &mut self,
        now: Instant,
        ue: IpAddr,
        orch: &mut Orchestrator,
        view: &dyn NodeView,
    ) -> Try {
        let Some(e) = self.pending.get(&ue) else {
            return Try::Next;
        };
        let req = e.req.clone();
        match orch.start_handover(now, req, view) {
            Ok(id) => {
                let Some(e) = self.pending.remove(&ue) else {
                    return Try::Next;
                };
                let attempt = e.attempts + 1;
                self.stats.started += 1;
                if attempt > 1 {
                    self.stats.retries += 1;
                }
                self.emit(ScheduleEvent::Started {
                    request: e.no,
                    ue,
                    target: e.req.target.clone(),
                    id,
                    attempt,
                    waited: now.saturating_duration_since(e.since),
                });
                self.track(
                    id,
                    Run {
                        no: e.no,
                        req: e.req,
                        since: e.since,
                        attempts: attempt,
                        waited: e.waited,
                        no_retry: false,
                    },
                    orch,
                );
                Try::Next
            }
            Err(err @ StartError::TooMany(_)) => {
                self.requeue(now, ue, err.label(), false);
                Try::Full
            }
            Err(err @ StartError::Busy(_)) => {
                self.requeue(now, ue, err.label(), true);
                Try::Next
            }
            Err(StartError::NoServices(_)) => {
                self.end_entry(ue, Fate::Left);
                Try::Next
            }
            Err(StartError::ShuttingDown) => {
                if let Some(e) = self.pending.remove(&ue) {
                    self.end(Fate::Aborted);
                    self.emit(ScheduleEvent::Aborted {
                        request: e.no,
                        ue,
                        target: e.req.target,
                        why: "shutting down".into(),
                    });
                }
                Try::Next
            }
            Err(err) => {
                if let Some(e) = self.pending.remove(&ue) {
                    self.end(Fate::Refused);
                    self.emit(ScheduleEvent::Refused {
                        request: e.no,
                        ue,
                        target: e.req.target,
                        error: Refusal::Start(err),
                    });
                }
                Try::Next
            }
        }
    }
}
