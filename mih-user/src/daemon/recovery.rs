//! Recovery at start: the attempts a previous process froze, exported and
//! did not finish, from the session journal (`crate::sessions::journal`).
//!
//! Before the daemon serves anything, `Backends::from_config` opens the
//! journal (bad entries are moved aside and logged) and [`Recovery::start`]
//! reserves every UE found in it (no handover of it in either role until
//! its entry is resolved) and asks each entry's destination what became
//! of the attempt: MIH_N2N_HO_Complete(Failure) with the attempt id, which
//! also rolls the attempt back there if it is still under way
//! ([`Orchestrator::query_attempt`]); an entry that says committed is
//! confirmed instead (Complete(Success)). [`journal::decide`] then says,
//! per entry, what to do; the recovery task carries it out:
//!
//! * **restore** (as a rollback): the sessions are rebuilt here, the path
//!   switch back to this eNBC running before they leave repair mode (it
//!   ends the hold: removing the hold earlier would let the UE's packets
//!   reach a host without the socket, which answers with a RST), then the
//!   release hook; the sockets go to their services over the hand-off
//!   socket (kept here until a service announces itself, which a
//!   reconnecting one does with its next `HELO`; the rebuild waits up to
//!   [`SERVICE_WAIT`] for it), and the services are told through the API
//!   that the UE stays (`MigrationOutcome(source, rolled back)`) once they
//!   are registered;
//! * **commit** (ours, or the destination's): the release hook only (the
//!   destination's path switch ended the hold), the services told
//!   committed;
//! * **unresolved** (the destination may have committed and cannot say):
//!   nothing is rebuilt; the hold is ended without taking the path back
//!   (the release hook, or for a built-in blackhole route a delete that
//!   only removes it while it is still a blackhole), and the entry is moved
//!   to `aside/` for the operator.
//!
//! The entry is removed once its sessions are rebuilt and handed over (or
//! released), then the UE is free to move again. A restored migration the
//! RAN had triggered (X2) is retried then, as after any rollback
//! ([`crate::orchestrator::schedule::Scheduler::retry_recovered`]).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::config::HookConfig;
use super::hooks;
use crate::api::{Outcome, Role};
use crate::orchestrator::mih::AttemptOutcome;
use crate::orchestrator::Orchestrator;
use crate::sessions::handoff::{HandoffSessions, Hook};
use crate::sessions::journal::{self, Decision, Entry, EntryHandle, PeerAnswer, Phase};
use crate::sessions::route::{is_not_found, RouteHandle};

/// How long a restore waits for the services of its sessions to announce
/// themselves on the hand-off socket before it rebuilds anyway (the
/// sockets are then kept here for them).
pub const SERVICE_WAIT: Duration = Duration::from_secs(10);
/// How long the services of an entry have to (re)register with the API to
/// be told the outcome.
pub const OUTCOME_WAIT: Duration = Duration::from_secs(60);

/// One unfinished entry.
struct Item {
    entry: Entry,
    handle: EntryHandle,
    answer: Option<PeerAnswer>,
    /// A question is out (an [`crate::orchestrator::Event::AttemptOutcome`]
    /// will come).
    asking: bool,
    started: Instant,
    /// A restore decided at this time, waiting for the services.
    restore_since: Option<Instant>,
}

impl Item {
    fn ue(&self) -> IpAddr {
        self.entry.record.ue
    }
    fn attempt(&self) -> Option<NonZeroU32> {
        self.entry.record.attempt
    }
}

/// A service to tell how a recovered migration ended, once it is
/// registered.
struct Tell {
    service: String,
    ue: IpAddr,
    outcome: Outcome,
    cause: String,
    until: Instant,
}

/// A restored X2-triggered migration to retry once the UE's services are
/// registered again (a retry before that would find no service and end).
struct Retry {
    ue: IpAddr,
    peer: String,
    until: Instant,
}

/// The recovery of one daemon's journal (inside the daemon's state; the
/// recovery task drives it).
#[derive(Default)]
pub(super) struct Recovery {
    items: Vec<Item>,
    timeout: Duration,
    tell: Vec<Tell>,
    retries: Vec<Retry>,
    /// Entries handed to [`carry_out`] and not yet back (UE, handover id,
    /// phase): still listed, so the status never shows a gap.
    carrying: Vec<(IpAddr, u64, &'static str)>,
    sessions: Option<Arc<HandoffSessions>>,
}

/// An entry whose decision is made, to carry out outside the lock.
pub(super) struct Work {
    item: Item,
    decision: Decision,
}

impl Work {
    /// Its UE.
    pub(super) fn ue(&self) -> IpAddr {
        self.item.ue()
    }
}

fn answer_of(o: AttemptOutcome) -> Option<PeerAnswer> {
    match o {
        AttemptOutcome::Committed => Some(PeerAnswer::Committed),
        AttemptOutcome::RolledBack => Some(PeerAnswer::RolledBack),
        AttemptOutcome::Unknown => Some(PeerAnswer::Unknown),
        // Not an answer to a Failure: ask again.
        AttemptOutcome::InProgress => None,
    }
}

fn decision_label(d: Decision) -> &'static str {
    match d {
        Decision::FinishCommit => "finish_commit",
        Decision::PeerCommitted => "peer_committed",
        Decision::Restore => "restore",
        Decision::Ask => "ask",
        Decision::Unresolved => "unresolved",
    }
}

impl Recovery {
    /// The entries a scan found (oldest first), answered within `timeout`.
    pub(super) fn new(
        entries: Vec<(Entry, EntryHandle)>,
        timeout: Duration,
        sessions: Option<Arc<HandoffSessions>>,
        now: Instant,
    ) -> Recovery {
        Recovery {
            items: entries
                .into_iter()
                .map(|(entry, handle)| Item {
                    entry,
                    handle,
                    answer: None,
                    asking: false,
                    started: now,
                    restore_since: None,
                })
                .collect(),
            timeout,
            tell: Vec::new(),
            retries: Vec::new(),
            carrying: Vec::new(),
            sessions,
        }
    }

    /// Whether anything is left to do.
    pub(super) fn is_idle(&self) -> bool {
        self.items.is_empty()
            && self.tell.is_empty()
            && self.retries.is_empty()
            && self.carrying.is_empty()
    }

    /// [`carry_out`] of `ue`'s entry is back.
    pub(super) fn carried(&mut self, ue: IpAddr) {
        if let Some(i) = self.carrying.iter().position(|c| c.0 == ue) {
            self.carrying.remove(i);
        }
    }

    /// Retry the restored migration of `ue` to `peer` once its services
    /// are registered again (within [`OUTCOME_WAIT`]).
    pub(super) fn retry_later(&mut self, now: Instant, ue: IpAddr, peer: String) {
        self.retries.push(Retry {
            ue,
            peer,
            until: now + OUTCOME_WAIT,
        });
    }

    /// The retries whose UE has its services again (to hand to the
    /// scheduler now); those whose services did not come back in time are
    /// dropped.
    pub(super) fn due_retries(
        &mut self,
        now: Instant,
        view: &dyn crate::orchestrator::NodeView,
    ) -> Vec<(IpAddr, String)> {
        let mut out = Vec::new();
        self.retries.retain(|r| {
            if !view.services_of(r.ue).is_empty() {
                out.push((r.ue, r.peer.clone()));
                return false;
            }
            if now >= r.until {
                warn!(target: "mih_user::recovery", ue = %r.ue, "no service registered the restored UE again: its migration is not retried");
                return false;
            }
            true
        });
        out
    }

    /// Entries not resolved yet.
    pub(super) fn pending(&self) -> usize {
        self.items.len()
    }

    /// The unresolved entries: UE, the handover id of the process that
    /// wrote it, its phase, and the decision waiting to be carried out
    /// (`ask`: for the destination's answer).
    pub(super) fn list(&self) -> Vec<(IpAddr, u64, &'static str, &'static str)> {
        let retries = self
            .retries
            .iter()
            .map(|r| (r.ue, 0, "restored", "services"))
            .chain(
                self.carrying
                    .iter()
                    .map(|&(ue, id, phase)| (ue, id, phase, "carrying_out")),
            );
        self.items
            .iter()
            .map(|i| {
                let waiting = if i.restore_since.is_some() {
                    "restore"
                } else {
                    "ask"
                };
                (
                    i.ue(),
                    i.entry.record.handover_id,
                    i.entry.phase.label(),
                    waiting,
                )
            })
            .chain(retries)
            .collect()
    }

    /// Reserve every UE (before the daemon serves anything).
    pub(super) fn reserve(&mut self, orch: &mut Orchestrator) {
        for it in &self.items {
            let ue = it.ue();
            if let Err(e) = orch.reserve(ue) {
                warn!(target: "mih_user::recovery", %ue, "cannot reserve the UE: {e}");
            }
        }
    }

    /// Ask (or tell) each destination (once the MIHF knows us: a question
    /// sent before the registration would be lost).
    pub(super) fn start(&mut self, now: Instant, orch: &mut Orchestrator) {
        for it in &mut self.items {
            it.started = now;
            let r = &it.entry.record;
            info!(
                target: "mih_user::recovery",
                entry = %it.handle.name(),
                ue = %r.ue,
                peer = %r.peer,
                attempt = r.attempt.map_or(0, NonZeroU32::get),
                handover = r.handover_id,
                phase = it.entry.phase.label(),
                peer_refused = it.entry.peer_refused,
                sessions = r.sessions.len(),
                "unfinished migration in the session journal"
            );
            let Some(attempt) = r.attempt else {
                continue;
            };
            if it.entry.phase == Phase::Committed {
                orch.confirm_attempt(now, r.ue, &r.peer, attempt);
            } else {
                match orch.query_attempt(now, r.ue, &r.peer, attempt) {
                    Ok(()) => it.asking = true,
                    Err(e) => {
                        warn!(target: "mih_user::recovery", ue = %r.ue, peer = %r.peer, "cannot ask the destination: {e}")
                    }
                }
            }
        }
    }

    /// The destination's answer about `attempt` (`None`: none within the
    /// repeats: ask again while the wait lasts).
    pub(super) fn on_answer(
        &mut self,
        now: Instant,
        peer: &str,
        attempt: u32,
        outcome: Option<AttemptOutcome>,
        orch: &mut Orchestrator,
    ) {
        let timeout = self.timeout;
        let Some(it) = self.items.iter_mut().find(|i| {
            i.attempt().map(NonZeroU32::get) == Some(attempt) && i.entry.record.peer == peer
        }) else {
            return;
        };
        it.asking = false;
        info!(
            target: "mih_user::recovery",
            ue = %it.ue(),
            peer,
            attempt,
            answer = outcome.map_or("none", AttemptOutcome::label),
            "destination answered"
        );
        if let Some(a) = outcome.and_then(answer_of) {
            it.answer = Some(a);
            return;
        }
        if now < it.started + timeout {
            if let Some(a) = it.attempt() {
                let ue = it.ue();
                if orch.query_attempt(now, ue, peer, a).is_ok() {
                    it.asking = true;
                }
            }
        }
    }

    /// The entries whose decision is made and that can be carried out now.
    pub(super) fn due(&mut self, now: Instant) -> Vec<Work> {
        let mut out = Vec::new();
        let mut keep = Vec::new();
        for mut it in std::mem::take(&mut self.items) {
            let over = now >= it.started + self.timeout;
            let d = journal::decide(it.entry.phase, it.entry.peer_refused, it.answer, over);
            match d {
                Decision::Ask => keep.push(it),
                Decision::Restore => {
                    let since = *it.restore_since.get_or_insert(now);
                    let ready = self.sessions.as_ref().is_none_or(|s| {
                        it.entry
                            .record
                            .sessions
                            .iter()
                            .all(|c| s.has_service_for(c.local))
                    });
                    if ready || now >= since + SERVICE_WAIT {
                        out.push(Work {
                            item: it,
                            decision: d,
                        });
                    } else {
                        keep.push(it);
                    }
                }
                _ => out.push(Work {
                    item: it,
                    decision: d,
                }),
            }
        }
        self.items = keep;
        self.carrying.extend(out.iter().map(|w| {
            let r = &w.item.entry.record;
            (r.ue, r.handover_id, w.item.entry.phase.label())
        }));
        out
    }

    /// Remember to tell the services of `w` how it ended.
    fn tell(
        &mut self,
        now: Instant,
        services: &[String],
        ue: IpAddr,
        outcome: Outcome,
        cause: &str,
    ) {
        for s in services {
            self.tell.push(Tell {
                service: s.clone(),
                ue,
                outcome,
                cause: cause.to_string(),
                until: now + OUTCOME_WAIT,
            });
        }
    }
}

/// A hook from the journal's description of it (the JSON of its
/// `[sessions]` configuration), or `fallback`.
fn hook_of(key: &str, spec: &Option<String>, fallback: Option<&Hook>) -> Option<Hook> {
    let Some(text) = spec else {
        return fallback.cloned();
    };
    match serde_json::from_str::<HookConfig>(text).map_err(|e| e.to_string()) {
        Ok(cfg) => match hooks::build(key, &cfg) {
            Ok(h) => Some(h),
            Err(e) => {
                warn!(target: "mih_user::recovery", key, "the journal's hook does not build ({e}); using the configured one");
                fallback.cloned()
            }
        },
        Err(e) => {
            warn!(target: "mih_user::recovery", key, "the journal's hook does not parse ({e}); using the configured one");
            fallback.cloned()
        }
    }
}

fn run(key: &str, h: &Hook, ue: IpAddr) {
    if let Err(e) = h(ue) {
        warn!(target: "mih_user::recovery", %ue, key, "hook failed: {e}");
    }
}

/// End the hold of an entry without taking the UE's path back: the
/// release hook, or, for a built-in blackhole route, a delete that only
/// removes it while it is still a blackhole. Returns what was done.
fn end_hold_in_place(entry: &Entry, sessions: &HandoffSessions) -> String {
    let r = &entry.record;
    if let Some(h) = hook_of(
        "sessions.release",
        &r.hooks.release,
        sessions.hooks().release.as_ref(),
    ) {
        return match h(r.ue) {
            Ok(()) => "released (release hook)".into(),
            Err(e) => format!("release hook failed: {e}"),
        };
    }
    let Some(text) = &r.hooks.hold else {
        return "no hold was laid".into();
    };
    let Ok(cfg) = serde_json::from_str::<HookConfig>(text) else {
        return format!("the hold {text} does not parse: left in place");
    };
    let (Some(route), Some("blackhole"), false) = (&cfg.route, cfg.via.as_deref(), cfg.delete)
    else {
        return format!(
            "the hold {text} stays (no sessions.release to end it without moving the UE's path)"
        );
    };
    let handle = match &cfg.netns {
        Some(ns) => RouteHandle::in_netns(&crate::sessions::netns::path(ns)),
        None => RouteHandle::new(),
    };
    let prefix = hooks::parse_prefix(&route.replace("{ue}", &r.ue.to_string()))
        .and_then(|p| Ok((p, cfg.table_for(r.ue)?)));
    match (handle, prefix) {
        (Ok(h), Ok(((dst, len), table))) => match h.delete_blackhole_in(table, dst, len) {
            Ok(()) => format!("blackhole {dst}/{len} deleted"),
            Err(e) if is_not_found(&e) => {
                format!("{dst}/{len} is no blackhole any more (the path moved): left alone")
            }
            Err(e) => format!("deleting the blackhole failed: {e}"),
        },
        (Err(e), _) => format!("the hold's namespace: {e}"),
        (_, Err(e)) => format!("the hold's route: {e}"),
    }
}

/// The services of an entry, and what to tell them.
pub(super) type Told = (Vec<String>, Outcome, String);

/// What [`carry_out`] did (for the UE of its [`Work`]): the outcome to tell its
/// services, a counter label, and the peer to retry the migration to (a
/// restored X2-triggered migration: the RAN has moved the UE).
pub(super) struct Done {
    pub tell: Option<Told>,
    pub counter: &'static str,
    pub retry: Option<String>,
}

/// Carry out one decision (outside the daemon's lock).
pub(super) fn carry_out(w: Work, sessions: &HandoffSessions) -> Done {
    let Work { item, decision } = w;
    let e = &item.entry;
    let r = &e.record;
    let ue = r.ue;
    let journal = sessions.journal();
    let hooks = sessions.hooks();
    let release = hook_of("sessions.release", &r.hooks.release, hooks.release.as_ref());
    let attempt = r.attempt.map_or(0, NonZeroU32::get);
    let label = decision_label(decision);
    let tell;
    let mut retry = None;
    let counter = match decision {
        Decision::Restore => {
            let switch = hook_of(
                "sessions.path_switch",
                &r.hooks.path_switch,
                hooks.path_switch.as_ref(),
            );
            let results = sessions.restore_recovered(ue, &r.sessions, switch.as_ref());
            if let Some(h) = &release {
                run("sessions.release", h, ue);
            }
            let failed: Vec<String> = results
                .iter()
                .filter_map(|r| r.as_ref().err().map(ToString::to_string))
                .collect();
            if failed.is_empty() {
                info!(target: "mih_user::recovery", %ue, attempt, decision = label, phase = e.phase.label(), sessions = r.sessions.len(), kept_for_services = sessions.undelivered(), "sessions restored here");
            } else {
                error!(target: "mih_user::recovery", %ue, attempt, decision = label, "sessions not restored: {}", failed.join("; "));
            }
            tell = Some((
                r.services.clone(),
                Outcome::RolledBack,
                "recovered after a restart: the UE stays here".to_string(),
            ));
            if r.x2_trigger && failed.is_empty() {
                retry = Some(r.peer.clone());
            }
            if failed.is_empty() {
                "recovered_restore"
            } else {
                "recovered_restore_failed"
            }
        }
        Decision::FinishCommit | Decision::PeerCommitted => {
            if let Some(h) = &release {
                run("sessions.release", h, ue);
            }
            info!(target: "mih_user::recovery", %ue, attempt, decision = label, peer = %r.peer, "migration committed: state dropped here");
            tell = Some((
                r.services.clone(),
                Outcome::Committed,
                "recovered after a restart: the UE moved".to_string(),
            ));
            "recovered_commit"
        }
        Decision::Unresolved | Decision::Ask => {
            let hold = end_hold_in_place(e, sessions);
            let aside = journal.map(|j| j.move_aside(item.handle, "unresolved"));
            error!(
                target: "mih_user::recovery",
                %ue,
                attempt,
                peer = %r.peer,
                phase = e.phase.label(),
                answer = ?item.answer,
                hold = %hold,
                entry = ?aside.as_ref().map(|r| r.as_ref().map(|p| p.display().to_string()).map_err(ToString::to_string)),
                "migration not resolved: the destination may have committed and cannot say; the sessions are not restored here"
            );
            return Done {
                tell: None,
                counter: "recovered_unresolved",
                retry: None,
            };
        }
    };
    if let Some(j) = journal {
        if let Err(err) = j.remove(item.handle) {
            error!(target: "mih_user::recovery", %ue, "session journal: {err}");
        }
    }
    Done {
        tell,
        counter,
        retry,
    }
}

impl Recovery {
    /// Record what to tell the services after [`carry_out`].
    pub(super) fn told_later(&mut self, now: Instant, ue: IpAddr, tell: Option<Told>) {
        if let Some((services, outcome, cause)) = tell {
            self.tell(now, &services, ue, outcome, &cause);
        }
    }

    /// Tell the services that are registered now; forget those that did
    /// not come back in time.
    pub(super) fn tell_services(&mut self, now: Instant, api: &crate::api::server::ApiServer) {
        self.tell.retain(|t| {
            if api.notify_service(&t.service, t.ue, Role::Source, t.outcome, &t.cause) {
                return false;
            }
            if now >= t.until {
                warn!(target: "mih_user::recovery", ue = %t.ue, service = %t.service, "service did not come back to hear the outcome");
                return false;
            }
            true
        });
    }
}

/// The destination's entries of a previous process (phases imported and
/// resuming: incoming attempts whose sessions were rebuilt here and not
/// yet committed or discarded), recovered before the daemon serves
/// anything; the source's entries are returned for [`Recovery`].
///
/// * **imported**: the sessions are rebuilt frozen again and the attempt
///   waits for the source's MIH_N2N_HO_Complete as before the crash
///   ([`Orchestrator::recover_incoming`]): the source, which committed on
///   the successful CTDR or rolled back without one, repeats its Complete
///   until it is answered; without one the complete timeout commits, as
///   it would have without the crash;
/// * **resuming**: the commit was under way: rebuilt and committed at once
///   (path switch, then the sockets leave repair mode and go to their
///   services).
///
/// Returns the source's entries and counters (`recovered_import`,
/// `recovered_resume`, `recovered_import_failed`).
pub(super) fn recover_incoming(
    entries: Vec<(Entry, EntryHandle)>,
    sessions: Option<&HandoffSessions>,
    orch: &mut Orchestrator,
    now: Instant,
) -> (Vec<(Entry, EntryHandle)>, Vec<&'static str>) {
    let (incoming, rest): (Vec<_>, Vec<_>) = entries
        .into_iter()
        .partition(|(e, _)| e.phase.is_incoming());
    let mut counters = Vec::new();
    for (e, h) in incoming {
        let r = &e.record;
        let ue = r.ue;
        let attempt = r.attempt.map_or(0, NonZeroU32::get);
        info!(target: "mih_user::recovery", entry = %h.name(), %ue, peer = %r.peer, attempt, phase = e.phase.label(), sessions = r.sessions.len(), "unfinished incoming migration in the session journal");
        let Some(s) = sessions else {
            continue;
        };
        let aside = |h: EntryHandle, why: &str| {
            if let Some(j) = s.journal() {
                if let Err(err) = j.move_aside(h, why) {
                    error!(target: "mih_user::recovery", %ue, "session journal: {err}");
                }
            }
        };
        let Some(a) = r.attempt else {
            error!(target: "mih_user::recovery", %ue, "incoming entry without an attempt id: set aside");
            aside(h, "no attempt id");
            counters.push("recovered_import_failed");
            continue;
        };
        let phase = e.phase;
        let results = s.recover_import(&e, h);
        let failed: Vec<String> = results
            .iter()
            .filter_map(|x| x.as_ref().err().map(ToString::to_string))
            .collect();
        if failed.len() == results.len() {
            error!(target: "mih_user::recovery", %ue, attempt, "imported sessions not rebuilt: {}", failed.join("; "));
            counters.push("recovered_import_failed");
            continue;
        }
        if phase == Phase::Resuming {
            use crate::orchestrator::sessions::SessionImporter;
            s.commit(ue);
            info!(target: "mih_user::recovery", %ue, attempt, sessions = results.len() - failed.len(), "incoming migration committed after a restart");
            counters.push("recovered_resume");
            continue;
        }
        match orch.recover_incoming(now, ue, &r.peer, a) {
            Ok(id) => {
                info!(target: "mih_user::recovery", %ue, attempt, handover = id.0, sessions = results.len() - failed.len(), "imported sessions rebuilt: waiting for the source's MIH_N2N_HO_Complete");
                counters.push("recovered_import");
            }
            Err(err) => {
                use crate::orchestrator::sessions::SessionImporter;
                error!(target: "mih_user::recovery", %ue, attempt, "incoming migration cannot be taken back ({err}): sessions discarded");
                s.discard(ue);
                counters.push("recovered_import_failed");
            }
        }
    }
    (rest, counters)
}
