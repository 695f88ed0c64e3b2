//! Sans-IO: how a restarted source asks its destination what became of an
//! attempt it had journalled (MIH_N2N_HO_Complete(Failure) with the
//! attempt id; the answer in the response's vendor TLV kind 4), how the
//! destination remembers the outcomes of its recent incoming attempts, and
//! the recovery's reservation of the UE. Two orchestrators, instant
//! delivery, time by hand; the source "crashes" by being replaced with a
//! fresh orchestrator (a new process) that knows only the journal's
//! attempt id.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mih_user::api::{ImportReport, ImportStatus, Outcome, ServiceContext};
use mih_user::orchestrator::mih::{self, AttemptOutcome};
use mih_user::orchestrator::sessions::synthetic_session;
use mih_user::orchestrator::{
    Action, Event, HandoverRequest, MigrationRecord, NodeView, Orchestrator, OrchestratorConfig,
    StartError, TriggerKind,
};
use mih_user::sessions::journal::{decide, Decision, PeerAnswer, Phase};
use mihf::wire::{Body, HoResult, Message, MihfId, Opcode};

const NAMES: [&str; 2] = ["enbc-a", "enbc-b"];
const IPS: [&str; 2] = ["192.0.2.1", "192.0.2.2"];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ue() -> IpAddr {
    ip("10.77.0.2")
}

struct View;

impl NodeView for View {
    fn services_of(&self, _ue: IpAddr) -> Vec<String> {
        vec!["http".into()]
    }
    fn has_service(&self, id: &str) -> bool {
        id == "http"
    }
    fn user_count(&self) -> usize {
        1
    }
}

fn cfg(i: usize, first_attempt: u32) -> OrchestratorConfig {
    OrchestratorConfig {
        max_outcomes: 100,
        outcome_memory: Duration::from_secs(60),
        user_id: format!("user-{}", NAMES[i]),
        complete_timeout: Duration::from_millis(900),
        complete_retries: 3,
        complete_retry_interval: Duration::from_millis(50),
        transfer_timeout: Duration::from_millis(400),
        first_attempt: NonZeroU32::new(first_attempt),
        ..OrchestratorConfig::default()
    }
}

fn orch(i: usize, first_attempt: u32) -> Orchestrator {
    let j = 1 - i;
    Orchestrator::new(cfg(i, first_attempt), [(NAMES[j].to_string(), ip(IPS[j]))])
}

/// What a node did.
#[derive(Default)]
struct Log {
    events: Vec<Event>,
    outcomes: Vec<(Outcome, String)>,
    discarded: usize,
    committed: usize,
    records: Vec<MigrationRecord>,
}

struct Sim {
    now: Instant,
    nodes: [Orchestrator; 2],
    logs: [Log; 2],
    /// The MIH network between the two MIHFs is up.
    mih_up: bool,
    /// Drop the source's CXTP (the source dies before its CTD leaves).
    cxtp_from_a: bool,
    /// Stop before the source sees the destination's final CTDR.
    hold_ctdr: bool,
    held: Vec<Bytes>,
}

impl Sim {
    fn new() -> Sim {
        Sim {
            now: Instant::now(),
            nodes: [orch(0, 100), orch(1, 5000)],
            logs: [Log::default(), Log::default()],
            mih_up: true,
            cxtp_from_a: true,
            hold_ctdr: false,
            held: Vec::new(),
        }
    }

    fn run(&mut self) {
        let mut q: VecDeque<(usize, Action)> = VecDeque::new();
        loop {
            for i in 0..2 {
                while let Some(a) = self.nodes[i].poll_action() {
                    q.push_back((i, a));
                }
                while let Some(e) = self.nodes[i].poll_event() {
                    if let Event::Finished(r) = &e {
                        self.logs[i].records.push(r.clone());
                    }
                    self.logs[i].events.push(e);
                }
            }
            let Some((i, a)) = q.pop_front() else {
                return;
            };
            self.act(i, a);
        }
    }

    fn act(&mut self, i: usize, a: Action) {
        let now = self.now;
        let j = 1 - i;
        match a {
            Action::Mih(m) => {
                let m = Message::from_bytes(m.to_bytes().unwrap()).unwrap();
                if !self.mih_up {
                    return;
                }
                let mut out = m.clone();
                out.header.mid = match m.header.mid.opcode() {
                    Opcode::Request => m.header.mid.with_opcode(Opcode::Indication),
                    Opcode::Response => m.header.mid.with_opcode(Opcode::Confirm),
                    _ => return,
                };
                out.source = MihfId::new(NAMES[i].as_bytes().to_vec());
                self.nodes[j].handle_mih(now, out, &View);
            }
            Action::Cxtp { bytes, .. } => {
                if i == 0 && !self.cxtp_from_a {
                    return;
                }
                let is_ctdr = cxtp::wire::Header::parse(&bytes)
                    .is_ok_and(|h| h.msg_type == cxtp::wire::MessageType::Ctdr);
                if i == 1 && self.hold_ctdr && is_ctdr {
                    self.held.push(bytes);
                    return;
                }
                self.nodes[j].handle_cxtp(now, ip(IPS[i]), bytes);
            }
            Action::ExportApp { id, .. } => {
                let c = ServiceContext::new("http", 0xFF01, Bytes::from_static(b"ctx"));
                self.nodes[i].on_app_exported(now, id, Ok(vec![c]));
            }
            Action::ExportSessions { id, ue } => {
                let c = mih_user::api::Connection {
                    client: std::net::SocketAddr::new(ue, 40_000),
                    server: "10.99.0.1:8080".parse().unwrap(),
                };
                self.nodes[i].on_sessions_exported(now, id, Ok(vec![synthetic_session(&c)]));
            }
            Action::ImportApp { id, contexts, .. } => {
                let reports = contexts
                    .iter()
                    .map(|c| ImportReport {
                        service_id: c.service_id.clone(),
                        fpt: c.fpt,
                        status: ImportStatus::Accepted,
                    })
                    .collect();
                self.nodes[i].on_app_imported(now, id, Ok(reports));
            }
            Action::ImportSessions { id, sessions, .. } => {
                let r = sessions.iter().map(|_| Ok(())).collect();
                self.nodes[i].on_sessions_imported(now, id, r);
            }
            Action::NotifyOutcome { outcome, cause, .. } => {
                self.logs[i].outcomes.push((outcome, cause))
            }
            Action::DiscardSessions { .. } => self.logs[i].discarded += 1,
            Action::CommitSessions { .. } => self.logs[i].committed += 1,
            Action::RestoreSessions { .. } | Action::ReleaseSessions { .. } => {}
        }
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next = self.nodes.iter().filter_map(|n| n.poll_timeout()).min();
            match next {
                Some(t) if t <= end => {
                    self.now = t.max(self.now);
                    for i in 0..2 {
                        self.nodes[i].handle_timeout(self.now);
                    }
                    self.run();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// A handover from A to B, run until the first `stop` says so.
    fn start(&mut self) -> u32 {
        self.nodes[0]
            .start_handover(
                self.now,
                HandoverRequest {
                    ue: ue(),
                    target: NAMES[1].into(),
                    trigger: TriggerKind::Operator,
                    cell: None,
                },
                &View,
            )
            .unwrap();
        let attempt = self.nodes[0].attempt(ue()).unwrap();
        self.run();
        attempt
    }

    /// The source's process dies (whatever it held is gone); a new one
    /// starts with only the journal's knowledge.
    fn restart_source(&mut self) {
        self.nodes[0] = orch(0, 900_000);
        self.logs[0] = Log::default();
        self.held.clear();
    }

    fn answers(&self) -> Vec<(u32, Option<AttemptOutcome>)> {
        self.logs[0]
            .events
            .iter()
            .filter_map(|e| match e {
                Event::AttemptOutcome {
                    attempt,
                    outcome,
                    peer,
                    ue: u,
                } => {
                    assert_eq!((peer.as_str(), *u), (NAMES[1], ue()));
                    Some((*attempt, *outcome))
                }
                _ => None,
            })
            .collect()
    }

    fn ask(&mut self, attempt: u32) -> Vec<(u32, Option<AttemptOutcome>)> {
        self.nodes[0]
            .query_attempt(self.now, ue(), NAMES[1], NonZeroU32::new(attempt).unwrap())
            .unwrap();
        self.run();
        self.answers()
    }
}

fn answer(o: AttemptOutcome) -> Option<PeerAnswer> {
    match o {
        AttemptOutcome::Committed => Some(PeerAnswer::Committed),
        AttemptOutcome::RolledBack => Some(PeerAnswer::RolledBack),
        AttemptOutcome::Unknown => Some(PeerAnswer::Unknown),
        AttemptOutcome::InProgress => None,
    }
}

#[test]
fn an_attempt_awaiting_its_complete_is_rolled_back_by_the_question() {
    let mut s = Sim::new();
    // The source dies after the destination's CTDR left, before it was
    // read: the journal says sent, the destination awaits its Complete.
    s.hold_ctdr = true;
    let attempt = s.start();
    assert_eq!(s.held.len(), 1, "the final CTDR");
    assert_eq!(
        s.nodes[1].handover(ue()).unwrap().state,
        "awaiting_complete"
    );
    s.restart_source();
    let got = s.ask(attempt);
    assert_eq!(got, vec![(attempt, Some(AttemptOutcome::RolledBack))]);
    // Rolled back there before the answer: sessions discarded, services told.
    assert!(s.nodes[1].handover(ue()).is_none());
    assert_eq!(s.logs[1].discarded, 1);
    assert_eq!(s.logs[1].outcomes.last().unwrap().0, Outcome::RolledBack);
    let r = s.logs[1].records.last().unwrap();
    assert_eq!((r.outcome, r.attempt), (Outcome::RolledBack, attempt));
    // It never commits it later.
    s.advance(Duration::from_secs(2));
    assert_eq!(s.logs[1].committed, 0);
    // The rule: restore at the source.
    let a = answer(got[0].1.unwrap());
    assert_eq!(decide(Phase::Sent, false, a, false), Decision::Restore);
    // Asked again: the same answer, from its table of ended attempts.
    s.restart_source();
    assert_eq!(
        s.ask(attempt),
        vec![(attempt, Some(AttemptOutcome::RolledBack))]
    );
}

#[test]
fn a_destination_that_committed_at_its_timeout_says_so() {
    let mut s = Sim::new();
    s.hold_ctdr = true;
    let attempt = s.start();
    s.restart_source();
    // The source stays away longer than the destination's complete
    // timeout (900 ms) and its question's repeats (250 ms more): the
    // restarted source cannot say (Unknown), so the destination commits.
    s.advance(Duration::from_secs(1));
    assert_eq!(s.logs[1].committed, 0, "asked first");
    assert_eq!(s.nodes[1].stats().timeout_queries, 1);
    s.advance(Duration::from_millis(200));
    assert_eq!(s.logs[1].committed, 1);
    assert_eq!(
        s.logs[1].records.last().unwrap().outcome,
        Outcome::Committed
    );
    let got = s.ask(attempt);
    assert_eq!(got, vec![(attempt, Some(AttemptOutcome::Committed))]);
    // Nothing undone there.
    assert_eq!(s.logs[1].discarded, 0);
    let a = answer(got[0].1.unwrap());
    assert_eq!(
        decide(Phase::Sent, false, a, false),
        Decision::PeerCommitted
    );
}

#[test]
fn contexts_that_never_left_and_an_unknown_attempt() {
    let mut s = Sim::new();
    // The source dies before its CTD leaves (journal: sent, or exported).
    s.cxtp_from_a = false;
    let attempt = s.start();
    assert_eq!(
        s.nodes[1].handover(ue()).unwrap().state,
        "awaiting_contexts"
    );
    s.restart_source();
    assert_eq!(
        s.ask(attempt),
        vec![(attempt, Some(AttemptOutcome::RolledBack))]
    );
    assert!(s.nodes[1].handover(ue()).is_none());
    // An attempt the destination never saw (or forgot: it restarted).
    s.restart_source();
    assert_eq!(
        s.ask(attempt + 77),
        vec![(attempt + 77, Some(AttemptOutcome::Unknown))]
    );
    assert_eq!(
        decide(Phase::Sent, false, Some(PeerAnswer::Unknown), false),
        Decision::Unresolved
    );
    // A destination that restarted knows nothing either.
    s.nodes[1] = orch(1, 7000);
    s.restart_source();
    assert_eq!(
        s.ask(attempt),
        vec![(attempt, Some(AttemptOutcome::Unknown))]
    );
}

#[test]
fn an_unreachable_destination_gives_no_answer_after_the_repeats() {
    let mut s = Sim::new();
    s.hold_ctdr = true;
    let attempt = s.start();
    s.restart_source();
    s.mih_up = false;
    assert!(s.ask(attempt).is_empty());
    // (retries + 1) x interval = 4 x 50 ms.
    s.advance(Duration::from_millis(150));
    assert!(s.answers().is_empty());
    s.advance(Duration::from_millis(100));
    assert_eq!(s.answers(), vec![(attempt, None)]);
    assert_eq!(s.nodes[0].stats().complete_sent, 4);
    assert_eq!(decide(Phase::Sent, false, None, false), Decision::Ask);
    assert_eq!(decide(Phase::Sent, false, None, true), Decision::Unresolved);
    assert_eq!(
        decide(Phase::Exported, false, None, true),
        Decision::Restore
    );
    // Back up: asked again, answered.
    s.mih_up = true;
    s.nodes[0].end_recovery(ue());
    let got = s.ask(attempt);
    assert_eq!(
        got.last(),
        Some(&(attempt, Some(AttemptOutcome::RolledBack)))
    );
}

#[test]
fn a_committed_source_confirms_and_the_destination_commits_at_once() {
    let mut s = Sim::new();
    s.hold_ctdr = true;
    let attempt = s.start();
    s.restart_source();
    s.nodes[0].confirm_attempt(s.now, ue(), NAMES[1], NonZeroU32::new(attempt).unwrap());
    s.run();
    assert_eq!(s.logs[1].committed, 1);
    let r = s.logs[1].records.last().unwrap();
    assert_eq!(r.outcome, Outcome::Committed);
    // No event for a confirmation.
    assert!(s.answers().is_empty());
    assert_eq!(s.nodes[0].closing(), 0, "answered");
}

#[test]
fn a_recovering_ue_does_not_move_until_the_recovery_ends() {
    let mut s = Sim::new();
    s.cxtp_from_a = false;
    let attempt = s.start();
    s.restart_source();
    s.ask(attempt);
    assert_eq!(s.nodes[0].recovering(), 1);
    assert!(s.nodes[0].is_moving(ue()));
    let req = HandoverRequest {
        ue: ue(),
        target: NAMES[1].into(),
        trigger: TriggerKind::Operator,
        cell: None,
    };
    assert_eq!(
        s.nodes[0].start_handover(s.now, req.clone(), &View),
        Err(StartError::Busy(ue()))
    );
    // B moves the UE (back) to A: refused while A recovers.
    s.nodes[1]
        .start_handover(
            s.now,
            HandoverRequest {
                target: NAMES[0].into(),
                ..req.clone()
            },
            &View,
        )
        .unwrap();
    s.run();
    let refused = s.logs[0].events.iter().any(|e| {
        matches!(e, Event::AdmissionRefused { label: "busy", reason, .. } if reason.contains("recovered"))
    });
    assert!(refused, "{:?}", s.logs[0].events);
    s.nodes[0].end_recovery(ue());
    assert_eq!(s.nodes[0].recovering(), 0);
    assert!(s.nodes[0].start_handover(s.now, req, &View).is_ok());
}

#[test]
fn the_outcome_table_is_bounded_in_entries_and_time() {
    let mut s = Sim::new();
    let a_id = MihfId::new(NAMES[0].as_bytes().to_vec());
    // 101 incoming attempts (the table holds 100), each rolled back at
    // once by a Failure.
    let n = 101u32;
    for k in 0..n {
        let attempt = 10_000 + k;
        let mut c = mih::commit_request(1, &a_id, NAMES[1], ue(), &["http".into()], None, attempt);
        c.header.mid = c.header.mid.with_opcode(Opcode::Indication);
        c.source = a_id.clone();
        s.nodes[1].handle_mih(s.now, c, &View);
        let mut f = mih::complete_request(2, &a_id, NAMES[1], ue(), HoResult::FAILURE, attempt);
        f.header.mid = f.header.mid.with_opcode(Opcode::Indication);
        f.source = a_id.clone();
        s.nodes[1].handle_mih(s.now, f, &View);
        while s.nodes[1].poll_action().is_some() {}
        while s.nodes[1].poll_event().is_some() {}
    }
    // The oldest was forgotten, the others are remembered.
    assert_eq!(s.ask(10_000), vec![(10_000, Some(AttemptOutcome::Unknown))]);
    s.restart_source();
    assert_eq!(
        s.ask(10_001),
        vec![(10_001, Some(AttemptOutcome::RolledBack))]
    );
    s.restart_source();
    assert_eq!(
        s.ask(10_000 + n - 1),
        vec![(10_000 + n - 1, Some(AttemptOutcome::RolledBack))]
    );
    // After outcome_memory, all forgotten.
    s.now += Duration::from_secs(61);
    s.restart_source();
    assert_eq!(
        s.ask(10_000 + n - 1),
        vec![(10_000 + n - 1, Some(AttemptOutcome::Unknown))]
    );
}

#[test]
fn the_answer_goes_only_to_the_source_of_the_attempt() {
    let mut s = Sim::new();
    s.hold_ctdr = true;
    let attempt = s.start();
    // A Complete(Failure) naming that attempt from another MIHF: answered
    // unknown, nothing rolled back.
    let mut f = mih::complete_request(
        9,
        &MihfId::from_static("x"),
        NAMES[1],
        ue(),
        HoResult::FAILURE,
        attempt,
    );
    f.header.mid = f.header.mid.with_opcode(Opcode::Indication);
    f.source = MihfId::from_static("enbc-x");
    s.nodes[1].handle_mih(s.now, f, &View);
    let mut rsp = None;
    while let Some(a) = s.nodes[1].poll_action() {
        if let Action::Mih(m) = a {
            if matches!(m.body, Body::N2nHoCompleteResponse(_)) {
                rsp = Some(m);
            }
        }
    }
    let rsp = Message::from_bytes(rsp.unwrap().to_bytes().unwrap()).unwrap();
    assert_eq!(mih::parse_outcome(&rsp), Some(AttemptOutcome::Unknown));
    assert_eq!(
        s.nodes[1].handover(ue()).unwrap().state,
        "awaiting_complete"
    );
}

impl Sim {
    /// The destination's process dies after its successful CTDR; a new one
    /// takes the attempt back from its journal (the sessions rebuilt
    /// frozen: [`Orchestrator::recover_incoming`]).
    fn restart_destination(&mut self, attempt: u32) {
        self.nodes[1] = orch(1, 700_000);
        self.logs[1] = Log::default();
        self.nodes[1]
            .recover_incoming(self.now, ue(), NAMES[0], NonZeroU32::new(attempt).unwrap())
            .unwrap();
        // Registered with its MIHF again: it asks the source.
        self.nodes[1].ask_recovered_sources(self.now);
        self.run();
    }

    /// The CTDRs held back reach the source now.
    fn release_ctdr(&mut self) {
        self.hold_ctdr = false;
        for b in std::mem::take(&mut self.held) {
            self.nodes[0].handle_cxtp(self.now, ip(IPS[1]), b);
        }
        self.run();
    }
}

#[test]
fn a_restarted_destination_commits_on_the_sources_complete() {
    let mut s = Sim::new();
    s.hold_ctdr = true;
    let attempt = s.start();
    s.restart_destination(attempt);
    assert_eq!(
        s.nodes[1].handover(ue()).unwrap().state,
        "awaiting_complete"
    );
    // The CTDR left before the crash: the source commits on it and says so.
    s.release_ctdr();
    assert_eq!(
        s.logs[0].records.last().unwrap().outcome,
        Outcome::Committed
    );
    assert_eq!(s.logs[1].committed, 1);
    assert_eq!(s.logs[1].discarded, 0);
    let r = s.logs[1].records.last().unwrap();
    assert_eq!((r.outcome, r.attempt), (Outcome::Committed, attempt));
    assert_eq!(s.logs[1].outcomes.last().unwrap().0, Outcome::Committed);
    assert_eq!(s.nodes[0].closing(), 0, "the Complete was answered");
}

#[test]
fn a_restarted_destination_whose_ctdr_never_arrived_rolls_back_with_the_source() {
    let mut s = Sim::new();
    s.hold_ctdr = true;
    let attempt = s.start();
    // Killed before its CTDR left: the source never reads one.
    s.held.clear();
    s.restart_destination(attempt);
    s.advance(Duration::from_secs(3));
    assert_eq!(
        s.logs[0].records.last().unwrap().outcome,
        Outcome::RolledBack
    );
    assert_eq!(
        s.logs[1].committed, 0,
        "never committed after the source rolled back"
    );
    assert_eq!(s.logs[1].discarded, 1);
    assert_eq!(
        s.logs[1].records.last().unwrap().outcome,
        Outcome::RolledBack
    );
}

#[test]
fn a_restarted_destination_commits_at_its_timeout_when_the_source_is_silent() {
    let mut s = Sim::new();
    s.hold_ctdr = true;
    let attempt = s.start();
    s.mih_up = false;
    s.restart_destination(attempt);
    s.advance(Duration::from_millis(800));
    assert_eq!(s.logs[1].committed, 0);
    // At 900 ms it asks once more (unheard), at 1150 ms it commits.
    s.advance(Duration::from_millis(300));
    assert_eq!(s.logs[1].committed, 0);
    s.advance(Duration::from_millis(100));
    assert_eq!(s.logs[1].committed, 1);
    // An attempt of a source that is not a configured peer is refused.
    let e = s.nodes[1].recover_incoming(s.now, ue(), "nobody", NonZeroU32::new(1).unwrap());
    assert!(e.unwrap_err().contains("not a configured peer"));
}

#[test]
fn a_destination_restarted_after_the_source_rolled_back_asks_and_rolls_back_at_once() {
    let mut s = Sim::new();
    s.hold_ctdr = true;
    let attempt = s.start();
    // Down while the source gives up (no CTDR) and repeats its
    // Complete(Failure) into the void.
    s.held.clear();
    s.mih_up = false;
    s.advance(Duration::from_secs(2));
    assert_eq!(
        s.logs[0].records.last().unwrap().outcome,
        Outcome::RolledBack
    );
    assert_eq!(s.nodes[0].closing(), 0, "the source stopped telling");
    s.mih_up = true;
    s.restart_destination(attempt);
    // The source's answer (from its table of ended attempts) ends it now,
    // long before the complete timeout could commit it.
    assert!(s.nodes[1].handover(ue()).is_none());
    assert_eq!(s.logs[1].discarded, 1);
    assert_eq!(s.logs[1].committed, 0);
    let r = s.logs[1].records.last().unwrap();
    assert_eq!((r.outcome, r.attempt), (Outcome::RolledBack, attempt));
    s.advance(Duration::from_secs(2));
    assert_eq!(s.logs[1].committed, 0);
}

#[test]
fn a_destination_restarted_after_the_source_committed_asks_and_commits_at_once() {
    let mut s = Sim::new();
    s.hold_ctdr = true;
    let attempt = s.start();
    // The CTDR reaches the source, whose Complete(Success) repeats are
    // all lost while the destination is down.
    s.mih_up = false;
    s.release_ctdr();
    s.advance(Duration::from_secs(1));
    assert_eq!(
        s.logs[0].records.last().unwrap().outcome,
        Outcome::Committed
    );
    assert_eq!(s.nodes[0].closing(), 0);
    s.mih_up = true;
    s.restart_destination(attempt);
    assert_eq!(s.logs[1].committed, 1);
    let r = s.logs[1].records.last().unwrap();
    assert_eq!((r.outcome, r.attempt), (Outcome::Committed, attempt));
    assert_eq!(
        r.cause.as_ref().map(|c| c.label()),
        Some("source_confirmed")
    );
}

/// The CTDR is lost, the source rolls back at its transfer timeout and
/// every Complete(Failure) it repeats is lost too: the destination, silent
/// since its CTDR, must not commit at its complete timeout (both ends would
/// serve the session, the destination's copy stale). It asks the source,
/// whose table of ended attempts says rolled back.
#[test]
fn a_destination_whose_source_rolled_back_unheard_asks_at_its_timeout() {
    let mut s = Sim::new();
    s.hold_ctdr = true;
    let attempt = s.start();
    s.held.clear();
    s.mih_up = false;
    s.advance(Duration::from_millis(700));
    let r = s.logs[0].records.last().unwrap();
    assert_eq!((r.outcome, r.attempt), (Outcome::RolledBack, attempt));
    assert_eq!(s.nodes[0].closing(), 0, "the source stopped telling");
    assert_eq!(s.logs[1].committed, 0);
    s.mih_up = true;
    s.advance(Duration::from_millis(300));
    assert_eq!(s.nodes[1].stats().timeout_queries, 1);
    assert_eq!(s.logs[1].committed, 0);
    assert_eq!(s.logs[1].discarded, 1);
    let r = s.logs[1].records.last().unwrap();
    assert_eq!((r.outcome, r.attempt), (Outcome::RolledBack, attempt));
    assert_eq!(
        r.cause.as_ref().map(|c| c.label()),
        Some("source_rolled_back")
    );
    s.advance(Duration::from_secs(2));
    assert_eq!(s.logs[1].committed, 0);
    assert!(s.nodes[1].handover(ue()).is_none());
}

/// The mirror case: the source committed and every Complete(Success) was
/// lost; asked at the complete timeout it says so and the destination
/// commits at once, without waiting out the repeats.
#[test]
fn a_destination_whose_source_committed_unheard_asks_at_its_timeout() {
    let mut s = Sim::new();
    s.hold_ctdr = true;
    let _attempt = s.start();
    s.mih_up = false;
    s.release_ctdr();
    s.advance(Duration::from_millis(700));
    assert_eq!(
        s.logs[0].records.last().unwrap().outcome,
        Outcome::Committed
    );
    assert_eq!(s.logs[1].committed, 0);
    s.mih_up = true;
    s.advance(Duration::from_millis(210));
    assert_eq!(s.logs[1].committed, 1);
    let r = s.logs[1].records.last().unwrap();
    assert_eq!(
        r.cause.as_ref().map(|c| c.label()),
        Some("source_confirmed")
    );
}
