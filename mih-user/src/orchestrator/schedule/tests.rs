//! The scheduler in front of real orchestrators on a small discrete-event
//! network with simulated time: two or three eNBCs, their MIHFs reduced to
//! a relay with latency, the CXTP link, services that answer at once.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use bytes::Bytes;
use cxtp::wire::StatusEntry;
use mihf::wire::{Body, Message, MihfId, Opcode};

use super::*;
use crate::api::{ImportReport, ImportStatus, ReplyStatus, ServiceContext};
use crate::orchestrator::{Action, ByRole, Event, OrchestratorConfig};

const MS: Duration = Duration::from_millis(1);
const NAMES: [&str; 3] = ["enbc-a", "enbc-b", "enbc-c"];
const IPS: [&str; 3] = ["192.0.2.1", "192.0.2.2", "192.0.2.3"];
const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ue(n: u8) -> IpAddr {
    IpAddr::from([10, 45, 0, n])
}

/// The node's services: one service, "svc", whose users are `ues`.
struct View {
    ues: BTreeSet<IpAddr>,
    has_svc: bool,
}

impl NodeView for View {
    fn services_of(&self, ue: IpAddr) -> Vec<String> {
        if self.has_svc && self.ues.contains(&ue) {
            vec!["svc".into()]
        } else {
            Vec::new()
        }
    }
    fn has_service(&self, id: &str) -> bool {
        self.has_svc && id == "svc"
    }
    fn user_count(&self) -> usize {
        self.ues.len()
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Import {
    Accept,
    NoCapacity,
}

struct Node {
    orch: Orchestrator,
    sched: Scheduler,
    view: View,
    /// MIH and CXTP to and from it vanish.
    down: bool,
    import: Import,
    /// Its MIH_N2N_HO_Complete requests vanish.
    drop_complete: bool,
    records: Vec<(Duration, MigrationRecord)>,
    events: Vec<(Duration, ScheduleEvent)>,
}

#[allow(clippy::large_enum_variant)] // MIH frames dominate; messages are short-lived.
enum Msg {
    Mih(usize, Message),
    Cxtp(usize, IpAddr, Bytes),
    AppExported(usize, HandoverId),
    SessionsExported(usize, HandoverId),
    AppImported(usize, HandoverId, Vec<ImportReport>),
    SessionsImported(usize, HandoverId),
}

struct Net {
    t0: Instant,
    now: Instant,
    nodes: Vec<Node>,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    msgs: HashMap<u64, Msg>,
    seq: u64,
    lat: Duration,
}

fn ocfg(name: &str) -> OrchestratorConfig {
    OrchestratorConfig {
        user_id: format!("user-{name}"),
        mih_timeout: Duration::from_millis(500),
        export_timeout: Duration::from_millis(300),
        import_timeout: Duration::from_millis(300),
        context_timeout: Duration::from_millis(800),
        transfer_timeout: Duration::from_millis(400),
        complete_timeout: Duration::from_millis(600),
        ..OrchestratorConfig::default()
    }
}

/// Exact times: no jitter.
fn scfg() -> SchedulerConfig {
    SchedulerConfig {
        jitter_percent: 0,
        ..SchedulerConfig::default()
    }
}

impl Net {
    fn new(
        n: usize,
        tweak: impl Fn(usize, &mut OrchestratorConfig),
        sc: impl Fn(usize) -> SchedulerConfig,
    ) -> Net {
        let t0 = Instant::now();
        let nodes = (0..n)
            .map(|i| {
                let mut c = ocfg(NAMES[i]);
                tweak(i, &mut c);
                let peers = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| (NAMES[j].to_string(), ip(IPS[j])));
                Node {
                    orch: Orchestrator::new(c, peers),
                    sched: Scheduler::new(sc(i)),
                    view: View {
                        ues: BTreeSet::new(),
                        has_svc: true,
                    },
                    down: false,
                    import: Import::Accept,
                    drop_complete: false,
                    records: Vec::new(),
                    events: Vec::new(),
                }
            })
            .collect();
        Net {
            t0,
            now: t0,
            nodes,
            queue: BinaryHeap::new(),
            msgs: HashMap::new(),
            seq: 0,
            lat: MS,
        }
    }

    /// Three nodes, default settings, `ues` served at A.
    fn three(ues: &[IpAddr]) -> Net {
        let mut n = Net::new(3, |_, _| {}, |_| scfg());
        n.nodes[A].view.ues.extend(ues.iter().copied());
        n
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn rel(&self) -> Duration {
        self.now - self.t0
    }

    fn req(ue: IpAddr, target: usize, trigger: TriggerKind) -> HandoverRequest {
        HandoverRequest {
            ue,
            target: NAMES[target].to_string(),
            trigger,
            cell: None,
        }
    }

    /// An X2 trigger at `node`.
    fn trigger(&mut self, node: usize, ue: IpAddr, target: usize) -> Result<Requested, Refusal> {
        let now = self.now;
        let n = &mut self.nodes[node];
        let r = n.sched.request(
            now,
            Net::req(ue, target, TriggerKind::X2),
            &mut n.orch,
            &n.view,
        );
        self.settle(node);
        r
    }

    /// An operator handover at `node`.
    fn operator(
        &mut self,
        node: usize,
        ue: IpAddr,
        target: usize,
    ) -> Result<HandoverId, StartError> {
        let now = self.now;
        let n = &mut self.nodes[node];
        let r = n.sched.start_now(
            now,
            Net::req(ue, target, TriggerKind::Operator),
            &mut n.orch,
            &n.view,
        );
        self.settle(node);
        r
    }

    fn send(&mut self, at: Instant, m: Msg) {
        self.seq += 1;
        self.msgs.insert(self.seq, m);
        self.queue.push(Reverse((at, self.seq)));
    }

    fn index(&self, name: &str) -> Option<usize> {
        NAMES[..self.nodes.len()].iter().position(|n| *n == name)
    }

    /// Carry out node `i`'s actions and feed its events to its scheduler,
    /// as the daemon does, until nothing follows.
    fn settle(&mut self, i: usize) {
        loop {
            let mut busy = false;
            while let Some(a) = self.nodes[i].orch.poll_action() {
                busy = true;
                self.act(i, a);
            }
            while let Some(e) = self.nodes[i].orch.poll_event() {
                busy = true;
                if let Event::Finished(r) = e {
                    let now = self.now;
                    let rel = self.rel();
                    let n = &mut self.nodes[i];
                    // The services: the UE leaves with a commit at the
                    // source and arrives with one at the destination.
                    if r.outcome == Outcome::Committed {
                        match r.role {
                            Role::Source => n.view.ues.remove(&r.ue),
                            Role::Destination => n.view.ues.insert(r.ue),
                        };
                    }
                    n.sched.on_finished(now, &r, &mut n.orch, &n.view);
                    n.records.push((rel, r));
                }
            }
            while let Some(e) = self.nodes[i].sched.poll_event() {
                let rel = self.rel();
                self.nodes[i].events.push((rel, e));
            }
            if !busy {
                return;
            }
        }
    }

    fn act(&mut self, i: usize, a: Action) {
        let now = self.now;
        let lat = self.lat;
        match a {
            Action::Mih(m) => self.mih_out(i, m),
            Action::Cxtp { to, bytes } => {
                let from = ip(IPS[i]);
                if let Some(j) = IPS[..self.nodes.len()].iter().position(|p| ip(p) == to) {
                    if !self.nodes[i].down && !self.nodes[j].down {
                        self.send(now + lat, Msg::Cxtp(j, from, bytes));
                    }
                }
            }
            Action::ExportApp { id, .. } => self.send(now + lat, Msg::AppExported(i, id)),
            Action::ExportSessions { id, .. } => self.send(now, Msg::SessionsExported(i, id)),
            Action::ImportApp { id, contexts, .. } => {
                let reports = contexts
                    .iter()
                    .map(|c| ImportReport {
                        service_id: c.service_id.clone(),
                        fpt: c.fpt,
                        status: match self.nodes[i].import {
                            Import::Accept => ImportStatus::Accepted,
                            Import::NoCapacity => ImportStatus::Refused {
                                status: ReplyStatus::NoCapacity,
                                reason: "full".into(),
                            },
                        },
                    })
                    .collect();
                self.send(now + lat, Msg::AppImported(i, id, reports));
            }
            Action::ImportSessions { id, .. } => self.send(now, Msg::SessionsImported(i, id)),
            _ => {}
        }
    }

    fn mih_out(&mut self, i: usize, m: Message) {
        let now = self.now;
        let from = MihfId::new(NAMES[i].as_bytes().to_vec());
        let Some(j) = self.index(&m.destination.to_string()) else {
            return;
        };
        if self.nodes[i].down || self.nodes[j].down {
            return;
        }
        let mut out = m.clone();
        out.source = from;
        match m.header.mid.opcode() {
            Opcode::Request => {
                if matches!(m.body, Body::N2nHoCompleteRequest(_)) && self.nodes[i].drop_complete {
                    return;
                }
                out.header.mid = m.header.mid.with_opcode(Opcode::Indication);
            }
            Opcode::Response => out.header.mid = m.header.mid.with_opcode(Opcode::Confirm),
            _ => return,
        }
        self.send(now + self.lat, Msg::Mih(j, out));
    }

    fn deliver(&mut self, m: Msg) {
        let now = self.now;
        let i = match &m {
            Msg::Mih(i, _)
            | Msg::Cxtp(i, _, _)
            | Msg::AppExported(i, _)
            | Msg::SessionsExported(i, _)
            | Msg::AppImported(i, _, _)
            | Msg::SessionsImported(i, _) => *i,
        };
        let n = &mut self.nodes[i];
        match m {
            Msg::Mih(_, msg) => n.orch.handle_mih(now, msg, &n.view),
            Msg::Cxtp(_, from, bytes) => n.orch.handle_cxtp(now, from, bytes),
            Msg::AppExported(_, id) => n.orch.on_app_exported(
                now,
                id,
                Ok(vec![ServiceContext::new(
                    "svc",
                    0xFF01,
                    Bytes::from_static(b"state"),
                )]),
            ),
            Msg::SessionsExported(_, id) => n.orch.on_sessions_exported(now, id, Ok(Vec::new())),
            Msg::AppImported(_, id, r) => n.orch.on_app_imported(now, id, Ok(r)),
            Msg::SessionsImported(_, id) => n.orch.on_sessions_imported(now, id, Vec::new()),
        }
        self.settle(i);
    }

    /// Run messages and timers up to `until`. The orchestrator's timers
    /// and the scheduler's fire separately, as in the daemon.
    fn run_until(&mut self, until: Instant) {
        loop {
            let next_msg = self.queue.peek().map(|Reverse((t, _))| *t);
            let next_timer = self
                .nodes
                .iter()
                .enumerate()
                .flat_map(|(i, n)| {
                    [
                        n.orch.poll_timeout().map(|t| (t, i, false)),
                        n.sched.poll_timeout().map(|t| (t, i, true)),
                    ]
                })
                .flatten()
                .min();
            let t = match (next_msg, next_timer) {
                (Some(m), Some((tt, _, _))) => m.min(tt),
                (Some(m), None) => m,
                (None, Some((tt, _, _))) => tt,
                (None, None) => break,
            };
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            let now = self.now;
            match next_timer {
                Some((tt, i, sched)) if tt <= t && next_msg.is_none_or(|m| tt <= m) => {
                    let n = &mut self.nodes[i];
                    if sched {
                        n.sched.handle_timeout(now, &mut n.orch, &n.view);
                    } else {
                        n.orch.handle_timeout(now);
                    }
                    self.settle(i);
                }
                _ => {
                    let Some(Reverse((_, k))) = self.queue.pop() else {
                        break;
                    };
                    if let Some(m) = self.msgs.remove(&k) {
                        self.deliver(m);
                    }
                }
            }
        }
        self.now = self.now.max(until);
    }

    fn run_ms(&mut self, ms: u64) {
        let until = self.now + Duration::from_millis(ms);
        self.run_until(until);
    }

    fn events(&self, i: usize) -> Vec<ScheduleEvent> {
        self.nodes[i]
            .events
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    fn event_times(&self, i: usize, f: impl Fn(&ScheduleEvent) -> bool) -> Vec<Duration> {
        self.nodes[i]
            .events
            .iter()
            .filter(|(_, e)| f(e))
            .map(|(t, _)| *t)
            .collect()
    }

    fn source_records(&self, i: usize) -> Vec<&(Duration, MigrationRecord)> {
        self.nodes[i]
            .records
            .iter()
            .filter(|(_, r)| r.role == Role::Source)
            .collect()
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ------------------------------------------------------------------ queue

#[test]
fn busy_ue_is_queued_then_started_when_its_handover_ends() {
    let u = ue(1);
    let mut n = Net::three(&[u]);
    n.nodes[B].down = true;
    // A→B: B is down, the commit times out at 500 ms.
    assert!(matches!(
        n.trigger(A, u, B),
        Ok(Requested::Started { request: 1, .. })
    ));
    n.run_ms(10);
    // The RAN now sends the UE to C: it waits for the first handover.
    assert_eq!(n.trigger(A, u, C), Ok(Requested::Queued { request: 2 }));
    assert_eq!(n.nodes[A].sched.pending_counts(), [1, 0]);
    let p = n.nodes[A].sched.pending();
    assert_eq!(p[0].target, "enbc-c");
    assert_eq!(
        p[0].state,
        PendingState::Queued {
            reason: "busy",
            deadline: n.at(10) + Duration::from_secs(10)
        }
    );
    n.run_ms(2000);
    let ev = n.events(A);
    assert!(matches!(
        &ev[0],
        ScheduleEvent::Queued {
            request: 2,
            reason: "busy",
            ..
        }
    ));
    // The rollback would be retried, but the newer trigger wins.
    assert_eq!(
        ev[1],
        ScheduleEvent::Replaced {
            request: 1,
            ue: u,
            target: "enbc-b".into(),
            by: Some(2)
        }
    );
    let ScheduleEvent::Started {
        request: 2,
        attempt: 1,
        waited,
        ..
    } = &ev[2]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(*waited, ms(490));
    assert_eq!(
        n.event_times(A, |e| matches!(e, ScheduleEvent::Started { .. })),
        [ms(500)]
    );
    assert!(matches!(
        &ev[3],
        ScheduleEvent::Done {
            request: 2,
            attempts: 1,
            outcome: Outcome::Committed,
            waited: true,
            ..
        }
    ));
    assert_eq!(ev.len(), 4, "{ev:?}");
    let r = n.source_records(A);
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].1.peer, "enbc-c");
    assert_eq!(r[1].1.outcome, Outcome::Committed);
    assert!(n.nodes[C].view.ues.contains(&u));
    let s = n.nodes[A].sched.stats();
    assert_eq!(s.requests, 2);
    assert_eq!(s.started, 2);
    assert_eq!(s.queued.get("busy"), Some(&1));
    assert_eq!(s.ended(Fate::Replaced), 1);
    assert_eq!(s.ended(Fate::Done), 1);
    assert_eq!(n.nodes[A].sched.tracked(), 0);
}

#[test]
fn too_many_are_queued_and_started_in_order_as_slots_free() {
    let ues = [ue(1), ue(2), ue(3)];
    let mut n = Net::new(
        2,
        |i, c| {
            if i == A {
                c.max_outgoing = 1;
            }
        },
        |_| scfg(),
    );
    n.nodes[A].view.ues.extend(ues);
    assert!(matches!(
        n.trigger(A, ues[0], B),
        Ok(Requested::Started { .. })
    ));
    assert_eq!(
        n.trigger(A, ues[1], B),
        Ok(Requested::Queued { request: 2 })
    );
    assert_eq!(
        n.trigger(A, ues[2], B),
        Ok(Requested::Queued { request: 3 })
    );
    assert_eq!(n.nodes[A].sched.stats().queued.get("too_many"), Some(&2));
    n.run_ms(1000);
    // Each starts exactly when the one before it finished.
    let finished: Vec<(Duration, IpAddr)> = n
        .source_records(A)
        .iter()
        .map(|(t, r)| {
            assert_eq!(r.outcome, Outcome::Committed);
            (*t, r.ue)
        })
        .collect();
    assert_eq!(finished.iter().map(|f| f.1).collect::<Vec<_>>(), ues);
    let started: Vec<(Duration, IpAddr)> = n.nodes[A]
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            ScheduleEvent::Started { ue, .. } => Some((*t, *ue)),
            _ => None,
        })
        .collect();
    assert_eq!(started, [(finished[0].0, ues[1]), (finished[1].0, ues[2])]);
    assert!(finished[0].0 > Duration::ZERO);
    assert_eq!(n.nodes[B].view.ues, BTreeSet::from(ues));
    assert_eq!(n.nodes[A].sched.stats().ended(Fate::Done), 3);
}

#[test]
fn full_queue_and_permanent_refusals_are_returned() {
    let ues = [ue(1), ue(2), ue(3), ue(4)];
    let mut n = Net::new(
        2,
        |i, c| {
            if i == A {
                c.max_outgoing = 1;
            }
        },
        |_| SchedulerConfig {
            max_queued: 2,
            ..scfg()
        },
    );
    n.nodes[A].view.ues.extend(ues);
    assert!(n.trigger(A, ues[0], B).is_ok());
    assert!(n.trigger(A, ues[1], B).is_ok());
    assert!(n.trigger(A, ues[2], B).is_ok());
    assert_eq!(n.trigger(A, ues[3], B), Err(Refusal::QueueFull(2)));
    assert_eq!(Refusal::QueueFull(2).label(), "queue_full");
    // A newer trigger for a waiting UE still fits: it replaces.
    assert!(matches!(
        n.trigger(A, ues[2], B),
        Ok(Requested::Queued { request: 5 })
    ));
    // Permanent refusals are returned as the orchestrator gives them.
    assert_eq!(
        n.trigger(A, ues[3], C),
        Err(Refusal::Start(StartError::UnknownTarget("enbc-c".into())))
    );
    let s = n.nodes[A].sched.stats();
    assert_eq!(s.queue_full, 1);
    assert_eq!(s.ended(Fate::Refused), 2);
    assert_eq!(s.ended(Fate::Replaced), 1);
    assert_eq!(n.nodes[A].sched.pending_counts(), [2, 0]);
    n.run_ms(1000);
    assert_eq!(n.nodes[A].sched.stats().ended(Fate::Done), 3);
    assert_eq!(n.nodes[A].sched.pending_counts(), [0, 0]);
    assert_eq!(
        n.trigger(A, ue(9), B),
        Err(Refusal::Start(StartError::NoServices(ue(9))))
    );
    assert_eq!(n.nodes[A].sched.stats().ended(Fate::Refused), 3);
}

#[test]
fn queued_trigger_expires_at_its_deadline() {
    let (u1, u2) = (ue(1), ue(2));
    let mut n = Net::new(
        2,
        |i, c| {
            if i == A {
                c.max_outgoing = 1;
            }
        },
        |_| SchedulerConfig {
            queue_deadline: ms(100),
            max_attempts: 1,
            ..scfg()
        },
    );
    n.nodes[A].view.ues.extend([u1, u2]);
    n.nodes[B].down = true;
    assert!(n.trigger(A, u1, B).is_ok());
    n.run_ms(5);
    assert!(n.trigger(A, u2, B).is_ok());
    assert_eq!(n.nodes[A].sched.poll_timeout(), Some(n.at(105)));
    n.run_ms(2000);
    let ev = n.events(A);
    assert_eq!(
        n.event_times(A, |e| matches!(e, ScheduleEvent::Expired { .. })),
        [ms(105)]
    );
    assert!(ev.contains(&ScheduleEvent::Expired {
        request: 2,
        ue: u2,
        target: "enbc-b".into(),
        waited: ms(100)
    }));
    // u2 never started; u1 rolled back once (max_attempts 1: no retry).
    assert_eq!(n.source_records(A).len(), 1);
    assert_eq!(n.nodes[A].sched.stats().ended(Fate::Expired), 1);
    assert_eq!(n.nodes[A].sched.stats().ended(Fate::Done), 1);
}

#[test]
fn newer_trigger_replaces_the_older_and_a_move_to_where_the_ue_went_is_void() {
    let u = ue(1);
    let mut n = Net::three(&[u]);
    assert!(n.trigger(A, u, B).is_ok());
    assert_eq!(n.trigger(A, u, C), Ok(Requested::Queued { request: 2 }));
    assert_eq!(n.trigger(A, u, B), Ok(Requested::Queued { request: 3 }));
    assert_eq!(n.nodes[A].sched.pending().len(), 1);
    assert_eq!(n.nodes[A].sched.pending()[0].target, "enbc-b");
    n.run_ms(1000);
    let ev = n.events(A);
    assert!(ev.contains(&ScheduleEvent::Replaced {
        request: 2,
        ue: u,
        target: "enbc-c".into(),
        by: Some(3)
    }));
    // A→B committed: the queued "go to B" is void.
    assert!(ev.contains(&ScheduleEvent::AlreadyThere {
        request: 3,
        ue: u,
        target: "enbc-b".into()
    }));
    assert_eq!(n.source_records(A).len(), 1);
    assert!(n.nodes[B].view.ues.contains(&u));
    let s = n.nodes[A].sched.stats();
    assert_eq!(
        (
            s.ended(Fate::Done),
            s.ended(Fate::Replaced),
            s.ended(Fate::AlreadyThere)
        ),
        (1, 1, 1)
    );
}

#[test]
fn after_committing_away_a_queued_move_to_elsewhere_is_void_too() {
    let u = ue(1);
    let mut n = Net::three(&[u]);
    assert!(n.trigger(A, u, B).is_ok());
    assert!(n.trigger(A, u, C).is_ok());
    n.run_ms(1000);
    assert!(n.events(A).contains(&ScheduleEvent::Left {
        request: 2,
        ue: u,
        target: "enbc-c".into()
    }));
    assert_eq!(n.source_records(A).len(), 1);
}

#[test]
fn ping_pong_at_the_destination_starts_once_the_ue_has_arrived() {
    let u = ue(1);
    let mut n = Net::three(&[u]);
    // A's Complete is lost: B commits only at its complete timeout, when
    // it asks A (A's answer gets through).
    n.nodes[A].drop_complete = true;
    assert!(n.operator(A, u, B).is_ok());
    n.run_ms(50);
    assert_eq!(n.source_records(A)[0].1.outcome, Outcome::Committed);
    assert!(n.nodes[B].orch.is_moving(u));
    // The RAN sends the UE back while B still waits for the Complete.
    assert_eq!(n.trigger(B, u, A), Ok(Requested::Queued { request: 1 }));
    n.run_ms(2000);
    let b = &n.nodes[B];
    assert_eq!(b.records[0].1.role, Role::Destination);
    assert_eq!(b.records[0].1.cause, Some(Cause::SourceConfirmed));
    let t_arrived = b.records[0].0;
    assert_eq!(
        n.event_times(B, |e| matches!(
            e,
            ScheduleEvent::Started { request: 1, .. }
        )),
        [t_arrived]
    );
    let back = &n.nodes[B].records[1].1;
    assert_eq!(
        (back.role, back.outcome),
        (Role::Source, Outcome::Committed)
    );
    assert!(n.nodes[A].view.ues.contains(&u));
    assert!(!n.nodes[B].view.ues.contains(&u));
}

#[test]
fn ping_pong_at_the_destination_is_void_when_the_ue_never_came() {
    let u = ue(1);
    let mut n = Net::three(&[u]);
    n.nodes[B].import = Import::NoCapacity;
    assert!(n.operator(A, u, B).is_ok());
    n.run_ms(1);
    assert!(n.nodes[B].orch.is_moving(u));
    assert_eq!(n.trigger(B, u, A), Ok(Requested::Queued { request: 1 }));
    n.run_ms(2000);
    assert_eq!(n.nodes[B].records[0].1.outcome, Outcome::RolledBack);
    assert_eq!(
        n.events(B),
        [
            ScheduleEvent::Queued {
                request: 1,
                ue: u,
                target: "enbc-a".into(),
                reason: "busy",
                deadline: n.at(1) + Duration::from_secs(10),
            },
            ScheduleEvent::AlreadyThere {
                request: 1,
                ue: u,
                target: "enbc-a".into()
            }
        ]
    );
    // Operator handovers are not retried: A rolled back once.
    assert_eq!(n.source_records(A).len(), 1);
    assert!(n.events(A).is_empty());
}

// ------------------------------------------------------------------ retry

/// The times of a retry series against a destination that is down: each
/// attempt times out after 500 ms; waits 200, 400, 800, then the 1 s cap.
#[test]
fn retry_schedule_is_exact_and_gives_up_after_max_attempts() {
    let u = ue(1);
    let mut n = Net::new(
        2,
        |_, _| {},
        |_| SchedulerConfig {
            retry_max: ms(1000),
            ..scfg()
        },
    );
    n.nodes[A].view.ues.insert(u);
    n.nodes[B].down = true;
    let s = &n.nodes[A].sched;
    let delays: Vec<Duration> = (1..=6).map(|a| s.retry_delay(u, a)).collect();
    assert_eq!(
        delays,
        [ms(200), ms(400), ms(800), ms(1000), ms(1000), ms(1000)]
    );
    assert!(n.trigger(A, u, B).is_ok());
    n.run_ms(20_000);
    let starts = [0, 700, 1600, 2900, 4400, 5900];
    let ends: Vec<Duration> = n.source_records(A).iter().map(|r| r.0).collect();
    assert_eq!(ends, starts.map(|s| ms(s + 500)));
    assert_eq!(
        n.event_times(A, |e| matches!(e, ScheduleEvent::Started { .. })),
        starts[1..].iter().map(|&s| ms(s)).collect::<Vec<_>>()
    );
    let retrying: Vec<(u32, Instant)> = n
        .events(A)
        .iter()
        .filter_map(|e| match e {
            ScheduleEvent::Retrying {
                attempt, at, cause, ..
            } => {
                assert_eq!(*cause, Cause::MihTimeout);
                Some((*attempt, *at))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        retrying,
        (2..=6)
            .zip(&starts[1..])
            .map(|(a, &s)| (a, n.at(s)))
            .collect::<Vec<_>>()
    );
    let last = n.events(A).pop().unwrap();
    assert_eq!(
        last,
        ScheduleEvent::GaveUp {
            request: 1,
            ue: u,
            target: "enbc-b".into(),
            attempts: 6,
            cause: Cause::MihTimeout
        }
    );
    assert_eq!(*n.nodes[A].records.last().map(|r| &r.0).unwrap(), ms(6400));
    let s = n.nodes[A].sched.stats();
    assert_eq!((s.started, s.retries), (6, 5));
    assert_eq!(s.gave_up.get("mih_timeout"), Some(&1));
    assert_eq!(s.ended(Fate::GaveUp), 1);
    assert_eq!(n.nodes[A].sched.pending_counts(), [0, 0]);
    assert_eq!(n.nodes[A].sched.poll_timeout(), None);
}

#[test]
fn retry_commits_on_the_third_attempt() {
    let u = ue(1);
    let mut n = Net::new(2, |_, _| {}, |_| scfg());
    n.nodes[A].view.ues.insert(u);
    n.nodes[B].down = true;
    assert!(n.trigger(A, u, B).is_ok());
    n.run_until(n.at(1300));
    assert_eq!(n.source_records(A).len(), 2);
    let p = n.nodes[A].sched.pending();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].attempts, 2);
    assert_eq!(
        p[0].state,
        PendingState::Retrying {
            at: n.at(1600),
            cause: Cause::MihTimeout
        }
    );
    n.nodes[B].down = false;
    n.run_ms(2000);
    let r = n.source_records(A);
    assert_eq!(r.len(), 3);
    assert_eq!(r[2].1.outcome, Outcome::Committed);
    assert!(r[2].0 > ms(1600) && r[2].0 < ms(1700), "{:?}", r[2].0);
    assert_eq!(
        n.events(A).last(),
        Some(&ScheduleEvent::Done {
            request: 1,
            ue: u,
            target: "enbc-b".into(),
            attempts: 3,
            outcome: Outcome::Committed,
            waited: true
        })
    );
    assert!(n.nodes[B].view.ues.contains(&u));
    assert!(!n.nodes[A].view.ues.contains(&u));
    assert_eq!(n.nodes[A].sched.stats().retries, 2);
}

#[test]
fn abort_cancels_a_retry_and_a_queued_trigger() {
    let (u1, u2) = (ue(1), ue(2));
    let mut n = Net::new(
        2,
        |i, c| {
            if i == A {
                c.max_outgoing = 1;
            }
        },
        |_| scfg(),
    );
    n.nodes[A].view.ues.extend([u1, u2]);
    n.nodes[B].down = true;
    assert!(n.trigger(A, u1, B).is_ok());
    assert!(n.trigger(A, u2, B).is_ok());
    n.run_until(n.at(510));
    // u1 waits for its retry, u2 (started at 500) runs.
    assert_eq!(n.nodes[A].sched.pending_counts(), [0, 1]);
    assert!(n.nodes[A].sched.abort(u1, "operator abort"));
    assert!(!n.nodes[A].sched.abort(u1, "operator abort"));
    // Aborting u2's running handover: no retry follows it.
    assert!(!n.nodes[A].sched.abort(u2, "X2 cancel"));
    let now = n.now;
    assert!(n.nodes[A].orch.abort(now, u2, "X2 cancel"));
    n.settle(A);
    n.run_ms(5000);
    assert_eq!(n.source_records(A).len(), 2);
    let ev = n.events(A);
    assert!(ev.contains(&ScheduleEvent::Aborted {
        request: 1,
        ue: u1,
        target: "enbc-b".into(),
        why: "operator abort".into()
    }));
    assert!(matches!(
        ev.last(),
        Some(ScheduleEvent::Done {
            request: 2,
            outcome: Outcome::RolledBack,
            ..
        })
    ));
    assert_eq!(n.nodes[A].sched.poll_timeout(), None);
    // A queued trigger is cancelled the same way.
    assert!(n.trigger(A, u1, B).is_ok());
    assert!(n.trigger(A, u2, B).is_ok());
    assert!(n.nodes[A].sched.abort(u2, "gone"));
    assert_eq!(n.nodes[A].sched.pending_counts(), [0, 0]);
    assert_eq!(n.nodes[A].sched.stats().ended(Fate::Aborted), 2);
}

#[test]
fn a_ue_that_leaves_is_not_retried() {
    let (u1, u2) = (ue(1), ue(2));
    let mut n = Net::new(2, |_, _| {}, |_| scfg());
    n.nodes[A].view.ues.extend([u1, u2]);
    n.nodes[B].down = true;
    assert!(n.trigger(A, u1, B).is_ok());
    assert!(n.trigger(A, u2, B).is_ok());
    n.run_until(n.at(600));
    assert_eq!(n.nodes[A].sched.pending_counts(), [0, 2]);
    // u1's services forget it; u2 is reported gone by the driver.
    n.nodes[A].view.ues.remove(&u1);
    assert!(n.nodes[A].sched.ue_left(u2));
    n.run_ms(5000);
    assert_eq!(n.source_records(A).len(), 2);
    let ev = n.events(A);
    assert!(ev.contains(&ScheduleEvent::Left {
        request: 1,
        ue: u1,
        target: "enbc-b".into()
    }));
    assert!(ev.contains(&ScheduleEvent::Left {
        request: 2,
        ue: u2,
        target: "enbc-b".into()
    }));
    assert_eq!(
        n.event_times(A, |e| matches!(e, ScheduleEvent::Left { request: 1, .. })),
        [ms(700)]
    );
    assert_eq!(n.nodes[A].sched.stats().ended(Fate::Left), 2);
}

#[test]
fn operator_handovers_are_neither_queued_nor_retried() {
    let u = ue(1);
    let mut n = Net::new(2, |_, _| {}, |_| scfg());
    n.nodes[A].view.ues.insert(u);
    n.nodes[B].down = true;
    assert!(n.operator(A, u, B).is_ok());
    assert_eq!(n.operator(A, u, B), Err(StartError::Busy(u)));
    assert_eq!(n.nodes[A].sched.pending_counts(), [0, 0]);
    n.run_ms(3000);
    assert_eq!(n.source_records(A).len(), 1);
    assert!(n.events(A).is_empty());
    // An operator handover replaces a waiting retry.
    assert!(n.trigger(A, u, B).is_ok());
    n.run_until(n.at(3000 + 600));
    assert_eq!(n.nodes[A].sched.pending_counts(), [0, 1]);
    assert!(n.operator(A, u, B).is_ok());
    assert!(n.events(A).contains(&ScheduleEvent::Replaced {
        request: 1,
        ue: u,
        target: "enbc-b".into(),
        by: None
    }));
    assert_eq!(n.nodes[A].sched.pending_counts(), [0, 0]);
}

#[test]
fn the_cause_decides_whether_to_retry() {
    let e = |st: u8| StatusEntry {
        fpt: 0xFF01,
        status: st,
    };
    let ok = |st: u8| StatusEntry {
        fpt: 0xFF02,
        status: st,
    };
    for (cause, want) in [
        (
            Cause::Refused {
                status: 2,
                reason: "no capacity (1 UEs here, 0 arriving; limits 0 UEs, 64 at once)".into(),
            },
            true,
        ),
        (
            Cause::Refused {
                status: 2,
                reason: "UE 10.0.0.1 is already moving".into(),
            },
            true,
        ),
        (
            Cause::Refused {
                status: 2,
                reason: String::new(),
            },
            true,
        ),
        (
            Cause::Refused {
                status: 2,
                reason: "service \"svc\" is not registered here".into(),
            },
            false,
        ),
        (
            Cause::Refused {
                status: 2,
                reason: "enbc-a is not a configured peer".into(),
            },
            false,
        ),
        (Cause::MihFailure { status: 4 }, true),
        (Cause::MihFailure { status: 1 }, true),
        (Cause::MihFailure { status: 3 }, false),
        (Cause::MihTimeout, true),
        (Cause::AppExport("refused".into()), false),
        (Cause::SessionExport("EPERM".into()), false),
        (Cause::Encode("too large".into()), false),
        (Cause::CxtpTimeout, true),
        (Cause::CxtpCancelled, true),
        (Cause::CtdrFailure(vec![e(status::TIMEOUT)]), true),
        (
            Cause::CtdrFailure(vec![e(status::SERVICE_NO_CAPACITY), ok(0)]),
            true,
        ),
        (
            Cause::CtdrFailure(vec![e(status::SERVICE_UNAVAILABLE)]),
            true,
        ),
        (Cause::CtdrFailure(vec![ok(status::SESSION_FAILED)]), true),
        (Cause::CtdrFailure(vec![e(status::UNSUPPORTED_FPT)]), false),
        (
            Cause::CtdrFailure(vec![e(status::TIMEOUT), e(status::MALFORMED)]),
            false,
        ),
        (Cause::CtdrFailure(vec![e(status::SERVICE_REFUSED)]), false),
        (Cause::Aborted("operator".into()), false),
        (Cause::NoContext, false),
        (Cause::SourceRolledBack, false),
        (Cause::CompleteTimeout, false),
    ] {
        assert_eq!(retryable(&cause), want, "{cause:?}");
    }
}

/// The refusal texts the real admission sends: capacity is retried, a
/// missing service is not.
#[test]
fn real_refusals_capacity_retried_missing_service_not() {
    let u = ue(1);
    let mut n = Net::new(
        2,
        |i, c| {
            if i == B {
                c.max_ues = 0;
            }
        },
        |_| SchedulerConfig {
            max_attempts: 2,
            ..scfg()
        },
    );
    n.nodes[A].view.ues.insert(u);
    assert!(n.trigger(A, u, B).is_ok());
    n.run_ms(2000);
    let ev = n.events(A);
    assert!(
        matches!(
            &ev[0],
            ScheduleEvent::Retrying {
                attempt: 2,
                cause: Cause::Refused { .. },
                ..
            }
        ),
        "{ev:?}"
    );
    assert!(
        matches!(&ev[2], ScheduleEvent::GaveUp { attempts: 2, .. }),
        "{ev:?}"
    );
    assert_eq!(n.nodes[A].sched.stats().gave_up.get("refused"), Some(&1));

    let mut n = Net::new(2, |_, _| {}, |_| scfg());
    n.nodes[A].view.ues.insert(u);
    n.nodes[B].view.has_svc = false;
    assert!(n.trigger(A, u, B).is_ok());
    n.run_ms(2000);
    assert_eq!(n.source_records(A).len(), 1);
    assert!(matches!(
        &n.events(A)[..],
        [ScheduleEvent::Done {
            outcome: Outcome::RolledBack,
            attempts: 1,
            waited: false,
            ..
        }]
    ));
}

/// A destination that refuses the import for capacity (CTDR 0xA1) is
/// tried again; when it has room, the UE moves.
#[test]
fn ctdr_capacity_failure_is_retried_until_it_commits() {
    let u = ue(1);
    let mut n = Net::new(2, |_, _| {}, |_| scfg());
    n.nodes[A].view.ues.insert(u);
    n.nodes[B].import = Import::NoCapacity;
    assert!(n.trigger(A, u, B).is_ok());
    n.run_ms(100);
    let r = n.source_records(A);
    assert_eq!(r.len(), 1);
    assert!(matches!(r[0].1.cause, Some(Cause::CtdrFailure(_))));
    n.nodes[B].import = Import::Accept;
    n.run_ms(1000);
    assert_eq!(n.source_records(A)[1].1.outcome, Outcome::Committed);
}

#[test]
fn shutdown_cancels_everything_waiting_and_refuses_new_requests() {
    let (u1, u2) = (ue(1), ue(2));
    let mut n = Net::new(
        2,
        |i, c| {
            if i == A {
                c.max_outgoing = 1;
            }
        },
        |_| scfg(),
    );
    n.nodes[A].view.ues.extend([u1, u2]);
    n.nodes[B].down = true;
    assert!(n.trigger(A, u1, B).is_ok());
    n.run_ms(600);
    assert!(n.trigger(A, u2, B).is_ok());
    // u1 retries at 700 and u2 started at 600: u1's retry finds no slot.
    n.run_until(n.at(710));
    assert_eq!(n.nodes[A].sched.pending_counts(), [1, 0]);
    let now = n.now;
    n.nodes[A].sched.shutdown();
    n.nodes[A].orch.shutdown(now);
    n.settle(A);
    assert_eq!(
        n.trigger(A, u1, B),
        Err(Refusal::Start(StartError::ShuttingDown))
    );
    n.run_ms(5000);
    let s = n.nodes[A].sched.stats();
    assert_eq!(s.ended(Fate::Aborted), 1);
    // u2's handover rolled back (shutting down): not retried.
    assert_eq!(s.ended(Fate::Done), 1);
    assert_eq!(s.ended(Fate::Refused), 1);
    assert_eq!(s.requests, 3);
    assert_eq!(n.nodes[A].sched.tracked(), 0);
    assert_eq!(n.nodes[A].sched.poll_timeout(), None);
}

// ------------------------------------------------------------ determinism

/// Six UEs leave A for B (down for 2.5 s) and C, two at a time: queues
/// and jittered retries. One line per event, times relative to the start.
fn storm(seed: u64) -> Vec<String> {
    let ues: Vec<IpAddr> = (1..=6).map(ue).collect();
    let mut n = Net::new(
        3,
        |i, c| {
            if i == A {
                c.max_outgoing = 2;
            }
        },
        |_| SchedulerConfig {
            seed,
            ..SchedulerConfig::default()
        },
    );
    n.nodes[A].view.ues.extend(ues.iter().copied());
    n.nodes[B].down = true;
    for (k, u) in ues.iter().enumerate() {
        let _ = n.trigger(A, *u, if k % 2 == 0 { B } else { C });
        n.run_ms(3);
    }
    n.run_ms(2500);
    n.nodes[B].down = false;
    n.run_ms(30_000);
    let t0 = n.t0;
    (0..3)
        .flat_map(|i| n.nodes[i].events.iter().map(move |(t, e)| (i, *t, e)))
        .map(|(i, t, e)| {
            // Instants differ between runs: print them relative.
            let e = match e {
                ScheduleEvent::Retrying {
                    request,
                    attempt,
                    at,
                    ..
                } => format!("retrying {request} #{attempt} at {:?}", *at - t0),
                ScheduleEvent::Queued {
                    request,
                    reason,
                    deadline,
                    ..
                } => format!("queued {request} {reason} until {:?}", *deadline - t0),
                other => format!("{other:?}"),
            };
            format!("{i} {t:?} {e}")
        })
        .collect()
}

#[test]
fn same_inputs_give_the_same_outputs() {
    let a = storm(7);
    let b = storm(7);
    assert_eq!(a, b);
    assert!(a.iter().any(|l| l.contains("retrying")), "{a:#?}");
    assert!(a.iter().any(|l| l.contains("queued")), "{a:#?}");
    // Another seed moves the retries.
    assert_ne!(a, storm(8));
}

#[test]
fn jitter_stays_within_its_share_and_depends_on_ue_attempt_and_seed() {
    let s = Scheduler::new(SchedulerConfig {
        jitter_percent: 20,
        seed: 1,
        ..SchedulerConfig::default()
    });
    let flat = Scheduler::new(scfg());
    let mut seen = BTreeSet::new();
    for n in 0..=255u8 {
        for attempt in 1..=6 {
            let base = flat.retry_delay(ue(n), attempt);
            let d = s.retry_delay(ue(n), attempt);
            assert!(d <= base && d >= base * 4 / 5, "{d:?} {base:?}");
            assert_eq!(d, s.retry_delay(ue(n), attempt));
            seen.insert(d);
        }
    }
    assert!(seen.len() > 1000, "{}", seen.len());
    let other = Scheduler::new(SchedulerConfig {
        jitter_percent: 20,
        seed: 2,
        ..SchedulerConfig::default()
    });
    assert_ne!(s.retry_delay(ue(1), 1), other.retry_delay(ue(1), 1));
    // IPv4-mapped IPv6 is the same UE.
    let mapped: IpAddr = "::ffff:10.45.0.1".parse().unwrap();
    assert_eq!(s.retry_delay(mapped, 3), s.retry_delay(ue(1), 3));
    // Extreme settings do not overflow.
    let big = Scheduler::new(SchedulerConfig {
        retry_initial: Duration::from_secs(600),
        retry_factor: 16,
        retry_max: Duration::from_secs(600),
        jitter_percent: 100,
        ..SchedulerConfig::default()
    });
    assert!(big.retry_delay(ue(1), u32::MAX) <= Duration::from_secs(600));
}

// --------------------------------------------------------------- property

mod property {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Trigger { node: usize, ue: u8, target: usize },
        Operator { node: usize, ue: u8, target: usize },
        Advance(u64),
        Down(usize, bool),
        NoCapacity(usize, bool),
        Abort { node: usize, ue: u8 },
        Leave { node: usize, ue: u8 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..3usize, 1..6u8, 0..3usize)
                .prop_map(|(node, ue, target)| Op::Trigger { node, ue, target }),
            1 => (0..3usize, 1..6u8, 0..3usize)
                .prop_map(|(node, ue, target)| Op::Operator { node, ue, target }),
            4 => (0..900u64).prop_map(Op::Advance),
            1 => (1..3usize, any::<bool>()).prop_map(|(n, d)| Op::Down(n, d)),
            1 => (0..3usize, any::<bool>()).prop_map(|(n, d)| Op::NoCapacity(n, d)),
            1 => (0..3usize, 1..6u8).prop_map(|(node, ue)| Op::Abort { node, ue }),
            1 => (0..3usize, 1..6u8).prop_map(|(node, ue)| Op::Leave { node, ue }),
        ]
    }

    fn check_bounds(n: &Net) {
        for node in &n.nodes {
            let p = node.sched.pending();
            assert!(p.len() <= node.sched.config().max_queued);
            let ues: BTreeSet<IpAddr> = p.iter().map(|e| e.ue).collect();
            assert_eq!(ues.len(), p.len(), "one entry per UE");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn every_request_ends_exactly_once(ops in proptest::collection::vec(op(), 1..40)) {
            let mut n = Net::new(
                3,
                |_, c| c.max_outgoing = 2,
                |i| SchedulerConfig {
                    max_queued: 3,
                    queue_deadline: ms(300),
                    retry_initial: ms(50),
                    retry_max: ms(400),
                    max_attempts: 4,
                    jitter_percent: 30,
                    seed: i as u64,
                    ..SchedulerConfig::default()
                },
            );
            n.nodes[A].view.ues.extend((1..6).map(ue));
            // Per node: the result of each request() call, in order.
            let mut results: Vec<Vec<Result<Requested, Refusal>>> = vec![Vec::new(); 3];
            for op in ops {
                match op {
                    Op::Trigger { node, ue: u, target } => {
                        let r = n.trigger(node, ue(u), target);
                        results[node].push(r);
                    }
                    Op::Operator { node, ue: u, target } => {
                        let _ = n.operator(node, ue(u), target);
                    }
                    Op::Advance(t) => n.run_ms(t),
                    Op::Down(i, d) => n.nodes[i].down = d,
                    Op::NoCapacity(i, d) => {
                        n.nodes[i].import = if d { Import::NoCapacity } else { Import::Accept }
                    }
                    Op::Abort { node, ue: u } => {
                        let now = n.now;
                        let nd = &mut n.nodes[node];
                        nd.sched.abort(ue(u), "abort");
                        nd.orch.abort(now, ue(u), "abort");
                        n.settle(node);
                    }
                    Op::Leave { node, ue: u } => {
                        n.nodes[node].view.ues.remove(&ue(u));
                        n.nodes[node].sched.ue_left(ue(u));
                        // Collect what the call emitted (nothing else may
                        // run after it: the run loop drains only on
                        // activity).
                        n.settle(node);
                    }
                }
                check_bounds(&n);
            }
            // Everything up, everything accepted: let it all end.
            for node in &mut n.nodes {
                node.down = false;
                node.import = Import::Accept;
            }
            n.run_ms(120_000);
            for (i, node) in n.nodes.iter().enumerate() {
                prop_assert_eq!(node.sched.pending_counts(), [0, 0]);
                prop_assert_eq!(node.sched.tracked(), 0);
                prop_assert_eq!(node.orch.in_progress(), ByRole { source: 0, destination: 0 });
                let s = node.sched.stats();
                prop_assert_eq!(s.requests, results[i].len() as u64);
                let total: u64 = Fate::ALL.iter().map(|f| s.ended(*f)).sum();
                prop_assert_eq!(total, s.requests, "{:?}", s);
                // Each request: refused at once, or exactly one ending event.
                let mut ends: HashMap<RequestNo, Fate> = HashMap::new();
                for (_, e) in &node.events {
                    if let Some(f) = e.fate() {
                        prop_assert!(ends.insert(e.request(), f).is_none(), "twice: {:?}", e);
                    }
                }
                for (k, r) in results[i].iter().enumerate() {
                    let no = k as u64 + 1;
                    match r {
                        Err(_) => prop_assert!(!ends.contains_key(&no)),
                        Ok(ok) => {
                            let got = match ok {
                                Requested::Started { request, .. }
                                | Requested::Queued { request } => *request,
                            };
                            prop_assert_eq!(got, no);
                            prop_assert!(ends.contains_key(&no), "request {} never ended", no);
                        }
                    }
                }
                let refused_now = results[i].iter().filter(|r| r.is_err()).count() as u64;
                prop_assert_eq!(ends.len() as u64 + refused_now, s.requests);
            }
        }
    }
}

#[test]
fn a_restored_x2_migration_is_retried_after_a_restart() {
    let u = ue(1);
    let mut n = Net::new(2, |_, _| {}, |_| scfg());
    n.nodes[A].view.ues.insert(u);
    let req = HandoverRequest {
        ue: u,
        target: "enbc-b".into(),
        trigger: TriggerKind::X2,
        cell: None,
    };
    let now = n.now;
    assert!(n.nodes[A].sched.retry_recovered(now, req.clone()));
    // One waits for this UE already: not twice.
    assert!(!n.nodes[A].sched.retry_recovered(now, req.clone()));
    let p = n.nodes[A].sched.pending();
    assert_eq!(p.len(), 1);
    let at = now + n.nodes[A].sched.retry_delay(u, 1);
    assert_eq!(
        p[0].state,
        PendingState::Retrying {
            at,
            cause: Cause::SourceRestarted
        }
    );
    n.run_ms(3000);
    let r = n.source_records(A);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1.outcome, Outcome::Committed);
    assert!(n.nodes[B].view.ues.contains(&u));
    assert!(matches!(
        n.events(A).last(),
        Some(ScheduleEvent::Done {
            attempts: 2,
            outcome: Outcome::Committed,
            ..
        })
    ));
    // Retries off: nothing is queued.
    let mut off = Scheduler::new(SchedulerConfig {
        max_attempts: 1,
        ..scfg()
    });
    assert!(!off.retry_recovered(now, req));
    assert!(retryable(&Cause::SourceRestarted));
}
