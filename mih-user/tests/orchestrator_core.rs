//! The sans-IO orchestrator on a simulated network with simulated time:
//! two (or three) eNBCs, their MIHFs reduced to a relay with latency, the
//! CXTP link, and scripted services and session backends. Every failure
//! branch, concurrent and duplicate handovers, garbage, and the races
//! between attempts of one UE (late, repeated and reordered messages of an
//! earlier attempt, lost Completes, stale timers).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cxtp::profile::TcpSessionContext;
use cxtp::wire::MessageType;
use mih_user::api::{ImportReport, ImportStatus, Outcome, ReplyStatus, Role, ServiceContext};
use mih_user::orchestrator::sessions::synthetic_session;
use mih_user::orchestrator::{
    Action, ByRole, Cause, Event, HandoverId, HandoverRequest, MigrationRecord, NodeView,
    Orchestrator, OrchestratorConfig, StartError, TriggerKind,
};
use mih_user::x2ap::ForgetReason;
use mihf::wire::{Body, HoResult, Message, MihfId, Opcode, Status};

const MS: Duration = Duration::from_millis(1);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// What a node's services and session backend do when asked.
#[derive(Clone, Debug)]
enum Answer {
    /// Answer after this delay.
    After(Duration),
    /// Answer with an error after this delay.
    Fail(Duration, &'static str),
    /// Never answer.
    Never,
}

#[derive(Default)]
struct View {
    /// service -> (fpt, per-UE state)
    services: HashMap<String, (u16, HashMap<IpAddr, Bytes>)>,
}

impl NodeView for View {
    fn services_of(&self, ue: IpAddr) -> Vec<String> {
        let mut v: Vec<String> = self
            .services
            .iter()
            .filter(|(_, (_, users))| users.contains_key(&ue))
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }
    fn has_service(&self, id: &str) -> bool {
        self.services.contains_key(id)
    }
    fn user_count(&self) -> usize {
        let mut ues: Vec<IpAddr> = self
            .services
            .values()
            .flat_map(|(_, u)| u.keys().copied())
            .collect();
        ues.sort();
        ues.dedup();
        ues.len()
    }
}

struct Node {
    name: &'static str,
    cxtp: IpAddr,
    o: Orchestrator,
    view: View,
    sessions: HashMap<IpAddr, Vec<TcpSessionContext>>,
    app_export: Answer,
    session_export: Answer,
    app_import: Answer,
    /// Services that refuse imports.
    refuse_import: Vec<String>,
    session_import: Answer,
    /// The node is down (its MIHF relays nothing for it, its CXTP is dead).
    down: bool,
    // What happened.
    actions: Vec<String>,
    outcomes: Vec<(IpAddr, Outcome, String)>,
    imported: Vec<(IpAddr, ServiceContext)>,
    imported_sessions: Vec<(IpAddr, TcpSessionContext)>,
    restored: Vec<(IpAddr, usize)>,
    released: Vec<IpAddr>,
    committed_sessions: Vec<IpAddr>,
    discarded: Vec<IpAddr>,
    records: Vec<MigrationRecord>,
    events: Vec<Event>,
}

/// A message on its way, as a [`Sim::hook`] sees it.
#[derive(Debug)]
enum Wire<'a> {
    /// A request or response from node `from`'s MIH-User (before the
    /// MIHFs relay it).
    Mih { from: usize, msg: &'a Message },
    /// A CXTP message from node `from`'s router.
    Cxtp { from: usize, bytes: &'a Bytes },
}

/// What a [`Sim::hook`] does with a message.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Hook {
    Pass,
    Drop,
    /// Keep it in [`Sim::held`] (deliver later with [`Sim::release`]).
    Hold,
    /// Deliver it and keep a copy in [`Sim::held`].
    Copy,
}

type HookFn = Box<dyn FnMut(&Wire) -> Hook>;

#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum Ev {
    Mih {
        to: usize,
        msg: Message,
    },
    Cxtp {
        to: usize,
        from: IpAddr,
        bytes: Bytes,
    },
    Input {
        node: usize,
        input: Input,
    },
}

impl Ev {
    /// A copy of a message (inputs are never copied).
    fn copy(&self) -> Ev {
        match self {
            Ev::Mih { to, msg } => Ev::Mih {
                to: *to,
                msg: msg.clone(),
            },
            Ev::Cxtp { to, from, bytes } => Ev::Cxtp {
                to: *to,
                from: *from,
                bytes: bytes.clone(),
            },
            Ev::Input { .. } => unreachable!("inputs are not messages"),
        }
    }
}

#[derive(Debug)]
enum Input {
    AppExported(HandoverId, Result<Vec<ServiceContext>, String>),
    SessionsExported(HandoverId, Result<Vec<TcpSessionContext>, String>),
    AppImported(HandoverId, Result<Vec<ImportReport>, String>),
    SessionsImported(HandoverId, Vec<Result<(), String>>),
}

/// How the MIHF pair treats a request between two nodes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum MihLink {
    Up,
    /// Requests vanish (peer MIHF absent, no confirm ever).
    Drop,
    /// The local MIHF answers Network Error after this long.
    NetworkError(Duration),
}

struct Sim {
    t0: Instant,
    now: Instant,
    nodes: Vec<Node>,
    queue: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    pending: HashMap<usize, Ev>,
    seq: u64,
    mih_latency: Duration,
    cxtp_latency: Duration,
    mih_link: MihLink,
    /// Drop CXTP messages from this IP (a black hole).
    cxtp_drop_from: Option<IpAddr>,
    /// Deliver MIH_N2N_HO_Complete requests?
    drop_complete: bool,
    /// Drop every response (the requester never hears the answer).
    drop_responses: bool,
    /// Drop each MIH request/response and CXTP message with this
    /// probability (per mille), from `rng`.
    loss_per_mille: u64,
    rng: u64,
    /// Messages dropped by `loss_per_mille`: (MIH, CXTP); MIH Completes.
    lost: (usize, usize),
    lost_completes: Vec<IpAddr>,
    /// Extra delay of each MIH and CXTP message, uniform in [0, jitter]
    /// (messages overtake each other), from `rng`.
    jitter: Duration,
    /// Deliver each MIH and CXTP message twice with this probability (per
    /// mille), the copy `jitter` later at most.
    dup_per_mille: u64,
    /// Sees every MIH request/response and CXTP message first.
    hook: HookFn,
    /// Messages a hook held, in order.
    held: Vec<Ev>,
}

fn cfg(name: &str) -> OrchestratorConfig {
    OrchestratorConfig {
        user_id: format!("user-{name}"),
        mih_timeout: Duration::from_millis(500),
        export_timeout: Duration::from_millis(300),
        import_timeout: Duration::from_millis(300),
        context_timeout: Duration::from_millis(800),
        transfer_timeout: Duration::from_millis(400),
        // The destination waits longer than the source keeps trying:
        // 400 + (15 + 1) x 25 = 800 ms < 900 ms.
        complete_timeout: Duration::from_millis(900),
        complete_retries: 15,
        complete_retry_interval: Duration::from_millis(25),
        ..OrchestratorConfig::default()
    }
}

const NAMES: [&str; 3] = ["enbc-a", "enbc-b", "enbc-c"];
const IPS: [&str; 3] = ["192.0.2.1", "192.0.2.2", "192.0.2.3"];

impl Sim {
    fn new(n: usize, tweak: impl Fn(usize, &mut OrchestratorConfig)) -> Sim {
        let t0 = Instant::now();
        let nodes = (0..n)
            .map(|i| {
                let mut c = cfg(NAMES[i]);
                tweak(i, &mut c);
                let peers = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| (NAMES[j].to_string(), ip(IPS[j])));
                Node {
                    name: NAMES[i],
                    cxtp: ip(IPS[i]),
                    o: Orchestrator::new(c, peers),
                    view: View::default(),
                    sessions: HashMap::new(),
                    app_export: Answer::After(3 * MS),
                    session_export: Answer::After(MS),
                    app_import: Answer::After(2 * MS),
                    refuse_import: Vec::new(),
                    session_import: Answer::After(MS),
                    down: false,
                    actions: Vec::new(),
                    outcomes: Vec::new(),
                    imported: Vec::new(),
                    imported_sessions: Vec::new(),
                    restored: Vec::new(),
                    released: Vec::new(),
                    committed_sessions: Vec::new(),
                    discarded: Vec::new(),
                    records: Vec::new(),
                    events: Vec::new(),
                }
            })
            .collect();
        Sim {
            t0,
            now: t0,
            nodes,
            queue: BinaryHeap::new(),
            pending: HashMap::new(),
            seq: 0,
            mih_latency: 2 * MS,
            cxtp_latency: MS,
            mih_link: MihLink::Up,
            cxtp_drop_from: None,
            drop_complete: false,
            drop_responses: false,
            loss_per_mille: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
            lost: (0, 0),
            lost_completes: Vec::new(),
            jitter: Duration::ZERO,
            dup_per_mille: 0,
            hook: Box::new(|_| Hook::Pass),
            held: Vec::new(),
        }
    }

    fn two() -> Sim {
        let mut s = Sim::new(2, |_, _| {});
        s.service(0, "http", 0xFF01);
        s.service(1, "http", 0xFF01);
        s
    }

    fn service(&mut self, node: usize, id: &str, fpt: u16) {
        self.nodes[node]
            .view
            .services
            .insert(id.to_string(), (fpt, HashMap::new()));
    }

    fn user(&mut self, node: usize, service: &str, ue: IpAddr, state: Bytes) {
        self.nodes[node]
            .view
            .services
            .get_mut(service)
            .unwrap()
            .1
            .insert(ue, state);
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn schedule(&mut self, at: Instant, ev: Ev) {
        self.seq += 1;
        self.pending.insert(self.seq as usize, ev);
        self.queue.push(Reverse((at, self.seq, self.seq as usize)));
    }

    fn next_rng(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn lose(&mut self) -> bool {
        if self.loss_per_mille == 0 {
            return false;
        }
        self.next_rng() % 1000 < self.loss_per_mille
    }

    fn jitter(&mut self) -> Duration {
        if self.jitter.is_zero() {
            return Duration::ZERO;
        }
        let us = self.jitter.as_micros() as u64 + 1;
        Duration::from_micros(self.next_rng() % us)
    }

    /// Send `ev` `latency` from now (plus jitter), perhaps twice, unless
    /// the hook keeps it.
    fn send(&mut self, latency: Duration, hook: Hook, ev: Ev) {
        let at = self.now + latency;
        match hook {
            Hook::Drop => return,
            Hook::Hold => return self.held.push(ev),
            Hook::Copy => self.held.push(ev.copy()),
            Hook::Pass => {}
        }
        let dup = self.dup_per_mille > 0 && self.next_rng() % 1000 < self.dup_per_mille;
        if dup {
            let later = at + self.jitter();
            self.schedule(later, ev.copy());
        }
        let at = at + self.jitter();
        self.schedule(at, ev);
    }

    /// Deliver the `k`-th held message now (plus one latency).
    fn release(&mut self, k: usize) {
        let ev = self.held.remove(k);
        let lat = match ev {
            Ev::Mih { .. } => self.mih_latency,
            _ => self.cxtp_latency,
        };
        self.schedule(self.now + lat, ev);
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    fn start(&mut self, node: usize, ue: IpAddr, target: usize) -> Result<HandoverId, StartError> {
        let now = self.now;
        let n = &mut self.nodes[node];
        let r = n.o.start_handover(
            now,
            HandoverRequest {
                ue,
                target: NAMES[target].to_string(),
                trigger: TriggerKind::Operator,
                cell: None,
            },
            &n.view,
        );
        self.drain(node);
        r
    }

    /// Carry out node `i`'s actions.
    fn drain(&mut self, i: usize) {
        while let Some(a) = self.nodes[i].o.poll_action() {
            let label = match &a {
                Action::Mih(m) => format!("mih {}", m.name()),
                Action::Cxtp { .. } => "cxtp".to_string(),
                other => format!("{other:?}")
                    .split([' ', '{', '('])
                    .next()
                    .unwrap_or("")
                    .to_string(),
            };
            self.nodes[i].actions.push(label);
            match a {
                Action::Mih(m) => self.mih_out(i, m),
                Action::Cxtp { to, bytes } => {
                    let from = self.nodes[i].cxtp;
                    if self.nodes[i].down || self.cxtp_drop_from == Some(from) {
                        continue;
                    }
                    if self.lose() {
                        self.lost.1 += 1;
                        continue;
                    }
                    if let Some(j) = self.nodes.iter().position(|n| n.cxtp == to) {
                        let hook = (self.hook)(&Wire::Cxtp {
                            from: i,
                            bytes: &bytes,
                        });
                        self.send(self.cxtp_latency, hook, Ev::Cxtp { to: j, from, bytes });
                    }
                }
                Action::ExportApp { id, ue } => {
                    let n = &self.nodes[i];
                    let contexts: Vec<ServiceContext> = {
                        let mut v: Vec<ServiceContext> = n
                            .view
                            .services
                            .iter()
                            .filter_map(|(s, (fpt, users))| {
                                Some(ServiceContext::new(
                                    s.clone(),
                                    *fpt,
                                    users.get(&ue)?.clone(),
                                ))
                            })
                            .collect();
                        v.sort_by(|a, b| a.service_id.cmp(&b.service_id));
                        v
                    };
                    let ans = n.app_export.clone();
                    self.answer(i, ans, |r| Input::AppExported(id, r.map(|_| contexts)));
                }
                Action::ExportSessions { id, ue } => {
                    let s = self.nodes[i].sessions.remove(&ue).unwrap_or_default();
                    let ans = self.nodes[i].session_export.clone();
                    if matches!(ans, Answer::Fail(..)) {
                        // All or nothing: the sessions stay live.
                        self.nodes[i].sessions.insert(ue, s.clone());
                    }
                    self.answer(i, ans, |r| Input::SessionsExported(id, r.map(|_| s)));
                }
                Action::ImportApp { id, ue, contexts } => {
                    let n = &mut self.nodes[i];
                    let reports: Vec<ImportReport> = contexts
                        .iter()
                        .map(|c| ImportReport {
                            service_id: c.service_id.clone(),
                            fpt: c.fpt,
                            status: if n.refuse_import.contains(&c.service_id) {
                                ImportStatus::Refused {
                                    status: ReplyStatus::NoCapacity,
                                    reason: "full".into(),
                                }
                            } else if n.view.has_service(&c.service_id) {
                                ImportStatus::Accepted
                            } else {
                                ImportStatus::NotRegistered
                            },
                        })
                        .collect();
                    for c in contexts {
                        n.imported.push((ue, c));
                    }
                    let ans = n.app_import.clone();
                    self.answer(i, ans, |r| Input::AppImported(id, r.map(|_| reports)));
                }
                Action::ImportSessions { id, ue, sessions } => {
                    let n = &mut self.nodes[i];
                    let count = sessions.len();
                    for s in sessions {
                        n.imported_sessions.push((ue, s));
                    }
                    let ans = n.session_import.clone();
                    self.answer(i, ans, |r| {
                        Input::SessionsImported(
                            id,
                            (0..count).map(|_| r.clone().map(|_| ())).collect(),
                        )
                    });
                }
                Action::NotifyOutcome { ue, outcome, cause } => {
                    self.nodes[i].outcomes.push((ue, outcome, cause))
                }
                Action::RestoreSessions { ue, sessions } => {
                    self.nodes[i].restored.push((ue, sessions.len()));
                    self.nodes[i].sessions.insert(ue, sessions);
                }
                Action::ReleaseSessions { ue } => self.nodes[i].released.push(ue),
                Action::CommitSessions { ue } => self.nodes[i].committed_sessions.push(ue),
                Action::DiscardSessions { ue } => self.nodes[i].discarded.push(ue),
            }
        }
        while let Some(e) = self.nodes[i].o.poll_event() {
            if let Event::Finished(r) = &e {
                self.nodes[i].records.push(r.clone());
            }
            self.nodes[i].events.push(e);
        }
    }

    fn answer(&mut self, i: usize, ans: Answer, make: impl FnOnce(Result<(), String>) -> Input) {
        let (delay, r) = match ans {
            Answer::After(d) => (d, Ok(())),
            Answer::Fail(d, why) => (d, Err(why.to_string())),
            Answer::Never => return,
        };
        let input = make(r);
        self.schedule(self.now + delay, Ev::Input { node: i, input });
    }

    /// A frame from node `i`'s MIH-User to its MIHF.
    fn mih_out(&mut self, i: usize, m: Message) {
        // Through the wire codec, as on the SAP.
        let m = Message::from_bytes(m.to_bytes().unwrap()).unwrap();
        if self.nodes[i].down {
            return;
        }
        if matches!(m.header.mid.opcode(), Opcode::Request | Opcode::Response) && self.lose() {
            self.lost.0 += 1;
            if let Body::N2nHoCompleteRequest(r) = &m.body {
                if let Some(ue) = mih_user::orchestrator::mih::parse_mn_id(&r.mn_mihf_id) {
                    self.lost_completes.push(ue);
                }
            }
            return;
        }
        let now = self.now;
        let from_id = MihfId::new(self.nodes[i].name.as_bytes().to_vec());
        let hook = if matches!(m.header.mid.opcode(), Opcode::Request | Opcode::Response) {
            (self.hook)(&Wire::Mih { from: i, msg: &m })
        } else {
            Hook::Pass
        };
        if hook == Hook::Drop {
            return;
        }
        match m.header.mid.opcode() {
            Opcode::Request => {
                let is_complete = matches!(m.body, Body::N2nHoCompleteRequest(_));
                if is_complete && self.drop_complete {
                    return;
                }
                let dest = self.index(&m.destination.to_string());
                match (self.mih_link, dest) {
                    (MihLink::Up, Some(j)) if !self.nodes[j].down => {
                        let mut ind = m.clone();
                        ind.header.mid = m.header.mid.with_opcode(Opcode::Indication);
                        ind.source = from_id;
                        // The MIHFs keep the TID (our relay is simple).
                        self.send(self.mih_latency, hook, Ev::Mih { to: j, msg: ind });
                    }
                    (MihLink::NetworkError(after), _) => {
                        let mut c = mihf::proto::status::failure_message(
                            &m,
                            Status::NETWORK_ERROR,
                            Opcode::Confirm,
                        );
                        c.source = m.destination.clone();
                        self.schedule(now + after, Ev::Mih { to: i, msg: c });
                    }
                    _ => {}
                }
            }
            Opcode::Response => {
                if self.drop_responses {
                    return;
                }
                let Some(j) = self.index(&m.destination.to_string()) else {
                    return;
                };
                let mut c = m.clone();
                c.header.mid = m.header.mid.with_opcode(Opcode::Confirm);
                c.source = from_id;
                self.send(self.mih_latency, hook, Ev::Mih { to: j, msg: c });
            }
            _ => {}
        }
    }

    /// Run events and timers up to `until`.
    fn run_until(&mut self, until: Instant) {
        loop {
            let next_ev = self.queue.peek().map(|Reverse((t, _, _))| *t);
            let next_timer = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| !n.down)
                .filter_map(|(i, n)| n.o.poll_timeout().map(|t| (t, i)))
                .min();
            let t = match (next_ev, next_timer) {
                (Some(e), Some((tt, _))) => e.min(tt),
                (Some(e), None) => e,
                (None, Some((tt, _))) => tt,
                (None, None) => break,
            };
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            if let Some((tt, i)) = next_timer {
                if tt <= t && next_ev.is_none_or(|e| tt <= e) {
                    let now = self.now;
                    self.nodes[i].o.handle_timeout(now);
                    self.drain(i);
                    continue;
                }
            }
            let Reverse((_, _, key)) = self.queue.pop().unwrap();
            let ev = self.pending.remove(&key).unwrap();
            self.deliver(ev);
        }
        self.now = self.now.max(until);
    }

    fn run(&mut self) {
        let until = self.now + Duration::from_secs(30);
        self.run_until(until);
    }

    fn deliver(&mut self, ev: Ev) {
        let now = self.now;
        let i = match &ev {
            Ev::Mih { to, .. } | Ev::Cxtp { to, .. } => *to,
            Ev::Input { node, .. } => *node,
        };
        if self.nodes[i].down {
            return;
        }
        let n = &mut self.nodes[i];
        match ev {
            Ev::Mih { msg, .. } => n.o.handle_mih(now, msg, &n.view),
            Ev::Cxtp { from, bytes, .. } => n.o.handle_cxtp(now, from, bytes),
            Ev::Input { input, .. } => match input {
                Input::AppExported(id, r) => n.o.on_app_exported(now, id, r),
                Input::SessionsExported(id, r) => n.o.on_sessions_exported(now, id, r),
                Input::AppImported(id, r) => n.o.on_app_imported(now, id, r),
                Input::SessionsImported(id, r) => n.o.on_sessions_imported(now, id, r),
            },
        }
        self.drain(i);
    }

    fn record(&self, node: usize, ue: IpAddr) -> &MigrationRecord {
        self.nodes[node]
            .records
            .iter()
            .rev()
            .find(|r| r.ue == ue)
            .unwrap_or_else(|| panic!("no record for {ue} at {}", self.nodes[node].name))
    }
}

fn session(ue: IpAddr, port: u16) -> TcpSessionContext {
    let mut s = synthetic_session(&mih_user::api::Connection {
        client: SocketAddr::new(ue, port),
        server: "192.0.2.100:8080".parse().unwrap(),
    });
    s.send_seq = 1000 + u32::from(port);
    s.unsent = Bytes::from(vec![port as u8; 300]);
    s
}

fn state(n: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..n)
            .map(|i| seed.wrapping_add(i as u8))
            .collect::<Vec<u8>>(),
    )
}

/// Everything the source must do on a rollback, checked at once.
fn assert_source_rolled_back(s: &Sim, ue: IpAddr, label: &str, services_asked: bool) {
    let r = s.record(0, ue);
    assert_eq!(r.role, Role::Source);
    assert_eq!(r.outcome, Outcome::RolledBack, "{r:?}");
    assert_eq!(r.cause.as_ref().map(Cause::label), Some(label), "{r:?}");
    let told = s.nodes[0]
        .outcomes
        .iter()
        .filter(|o| o.0 == ue && o.1 == Outcome::RolledBack)
        .count();
    assert_eq!(
        told,
        usize::from(services_asked),
        "{:?}",
        s.nodes[0].outcomes
    );
    assert!(!s.nodes[0].o.is_moving(ue));
}

// ----------------------------------------------------------------- success

#[test]
fn migration_commits_and_moves_every_octet() {
    let mut s = Sim::two();
    s.service(0, "video", 0xFF42);
    s.service(1, "video", 0xFF42);
    let ue = ip("10.45.0.7");
    let http = state(75 * 1024, 1);
    let video = state(300_000, 9);
    s.user(0, "http", ue, http.clone());
    s.user(0, "video", ue, video.clone());
    s.nodes[0]
        .sessions
        .insert(ue, vec![session(ue, 40000), session(ue, 40001)]);

    s.start(0, ue, 1).unwrap();
    assert_eq!(s.start(0, ue, 1), Err(StartError::Busy(ue)));
    s.run();

    // Source: committed, sessions released, services told, Complete sent.
    let r = s.record(0, ue).clone();
    assert_eq!(r.outcome, Outcome::Committed, "{r:?}");
    assert_eq!(r.cause, None);
    assert_eq!(
        s.nodes[0].outcomes,
        vec![(ue, Outcome::Committed, "CTDR success".into())]
    );
    assert_eq!(s.nodes[0].released, vec![ue]);
    assert!(s.nodes[0].restored.is_empty());
    assert!(s.nodes[0]
        .actions
        .iter()
        .any(|a| a == "mih MIH_N2N_HO_Complete.request"));
    // Destination: every octet, in order, then committed on the Complete.
    let got: HashMap<String, (u16, Bytes)> = s.nodes[1]
        .imported
        .iter()
        .map(|(_, c)| (c.service_id.clone(), (c.fpt, c.data.clone())))
        .collect();
    assert_eq!(got["http"], (0xFF01, http));
    assert_eq!(got["video"], (0xFF42, video));
    let sess: Vec<&TcpSessionContext> = s.nodes[1].imported_sessions.iter().map(|x| &x.1).collect();
    assert_eq!(sess, vec![&session(ue, 40000), &session(ue, 40001)]);
    let d = s.record(1, ue).clone();
    assert_eq!(d.role, Role::Destination);
    assert_eq!(d.outcome, Outcome::Committed, "{d:?}");
    assert_eq!(d.cause, None);
    assert_eq!(s.nodes[1].outcomes.len(), 1);
    assert_eq!(s.nodes[1].committed_sessions, vec![ue]);

    // Table I phases, exactly, from the simulated clock: MIH 2 ms each
    // way; app export 3 ms; sessions 1 ms; CXTP: 1 ms per hop, the nAR
    // imports (2 + 1 ms) before the final CTDR.
    assert_eq!(r.phases.mih_commit, Some(4 * MS));
    assert_eq!(r.phases.app_data, Some(3 * MS));
    assert_eq!(r.phases.socket_data, Some(MS));
    let cxtp = r.phases.cxtp.unwrap();
    assert!(cxtp >= 5 * MS && cxtp <= 12 * MS, "{cxtp:?}");
    assert_eq!(r.phases.total, 4 * MS + 3 * MS + MS + cxtp);
    assert_eq!(r.sizes.services, 2);
    assert_eq!(r.sizes.app_octets, 75 * 1024 + 300_000);
    assert_eq!(r.sizes.sessions, 2);
    assert!(r.sizes.cxtp_messages >= 6, "{:?}", r.sizes);
    assert!(r.sizes.cxtp_octets > r.sizes.app_octets + r.sizes.session_octets);
    assert_eq!(d.sizes.app_octets, r.sizes.app_octets);
    assert_eq!(d.sizes.cxtp_octets, r.sizes.cxtp_octets);
    assert_eq!(d.phases.app_data, Some(2 * MS));
    assert_eq!(d.phases.socket_data, Some(MS));
    assert_eq!(d.phases.wait_context, Some(2 * MS + 3 * MS + MS + MS));
    assert_eq!(
        s.nodes[0].o.stats().committed,
        ByRole {
            source: 1,
            destination: 0
        }
    );
    assert_eq!(
        s.nodes[1].o.stats().committed,
        ByRole {
            source: 0,
            destination: 1
        }
    );
    assert_eq!(
        s.nodes[0].o.in_progress(),
        ByRole {
            source: 0,
            destination: 0
        }
    );
    assert_eq!(
        s.nodes[1].o.in_progress(),
        ByRole {
            source: 0,
            destination: 0
        }
    );
}

#[test]
fn one_megabyte_context_crosses_byte_exact() {
    let mut s = Sim::two();
    let ue = ip("2001:db8::7");
    let big = state(1 << 20, 3);
    s.user(0, "http", ue, big.clone());
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_eq!(s.record(0, ue).outcome, Outcome::Committed);
    assert_eq!(s.nodes[1].imported[0].1.data, big);
    assert_eq!(s.record(0, ue).sizes.cxtp_messages, 17);
}

// ----------------------------------------------------------------- refusals

#[test]
fn refused_by_capacity_limit_zero() {
    let mut s = Sim::new(2, |i, c| {
        if i == 1 {
            c.max_ues = 0;
        }
    });
    s.service(0, "http", 0xFF01);
    s.service(1, "http", 0xFF01);
    let ue = ip("10.0.0.1");
    s.user(0, "http", ue, state(100, 0));
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_source_rolled_back(&s, ue, "refused", false);
    let Some(Cause::Refused { status, reason }) = &s.record(0, ue).cause else {
        panic!()
    };
    assert_eq!(*status, 2);
    assert!(reason.contains("no capacity"), "{reason}");
    // Nothing was frozen, exported or sent.
    assert!(!s.nodes[0]
        .actions
        .iter()
        .any(|a| a == "ExportApp" || a == "cxtp"));
    assert!(s.nodes[1].records.is_empty());
    assert_eq!(s.nodes[1].o.stats().admission_refused["capacity"], 1);
    assert!(matches!(
        s.nodes[1].events[0],
        Event::AdmissionRefused {
            label: "capacity",
            ..
        }
    ));
}

#[test]
fn refused_when_a_service_is_not_registered_at_the_destination() {
    let mut s = Sim::two();
    s.service(0, "video", 0xFF01);
    let ue = ip("10.0.0.2");
    s.user(0, "http", ue, state(10, 0));
    s.user(0, "video", ue, state(10, 0));
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_source_rolled_back(&s, ue, "refused", false);
    let Some(Cause::Refused { reason, .. }) = &s.record(0, ue).cause else {
        panic!()
    };
    assert!(reason.contains("\"video\" is not registered"), "{reason}");
}

#[test]
fn refused_while_the_ue_is_busy_at_the_destination_and_from_unknown_peers() {
    // A -> B and C -> B for the same UE: the second commit is refused.
    let mut s = Sim::new(3, |_, _| {});
    for i in 0..3 {
        s.service(i, "http", 0xFF01);
    }
    let ue = ip("10.0.0.3");
    s.user(0, "http", ue, state(10, 0));
    s.user(2, "http", ue, state(10, 0));
    s.nodes[1].app_import = Answer::After(50 * MS);
    s.start(0, ue, 1).unwrap();
    s.run_until(s.at(20));
    s.start(2, ue, 1).unwrap();
    s.run();
    assert_eq!(s.record(0, ue).outcome, Outcome::Committed);
    let r = &s.nodes[2].records[0];
    assert_eq!(r.outcome, Outcome::RolledBack);
    assert!(
        matches!(&r.cause, Some(Cause::Refused { reason, .. }) if reason.contains("already moving"))
    );
    // A peer that is not configured is refused.
    let mut s = Sim::new(3, |_, _| {});
    for i in 0..3 {
        s.service(i, "http", 0xFF01);
    }
    s.nodes[1] = {
        let mut n = std::mem::replace(&mut s.nodes[1], Sim::two().nodes.remove(1));
        n.o = Orchestrator::new(cfg("enbc-b"), [("enbc-a".to_string(), ip(IPS[0]))]);
        n
    };
    s.user(2, "http", ue, state(10, 0));
    s.start(2, ue, 1).unwrap();
    s.run();
    assert!(
        matches!(&s.nodes[2].records[0].cause, Some(Cause::Refused { reason, .. }) if reason.contains("not a configured peer"))
    );
}

#[test]
fn start_refusals() {
    let mut s = Sim::new(2, |i, c| {
        if i == 0 {
            c.max_outgoing = 1;
        }
    });
    s.service(0, "http", 0xFF01);
    s.service(1, "http", 0xFF01);
    let (u1, u2) = (ip("10.0.0.4"), ip("10.0.0.5"));
    s.user(0, "http", u1, state(10, 0));
    s.user(0, "http", u2, state(10, 0));
    assert_eq!(
        s.start(0, ip("10.9.9.9"), 1),
        Err(StartError::NoServices(ip("10.9.9.9")))
    );
    let now = s.now;
    let n = &mut s.nodes[0];
    let r = n.o.start_handover(
        now,
        HandoverRequest {
            ue: u1,
            target: "nowhere".into(),
            trigger: TriggerKind::X2,
            cell: None,
        },
        &n.view,
    );
    assert_eq!(r, Err(StartError::UnknownTarget("nowhere".into())));
    s.start(0, u1, 1).unwrap();
    assert_eq!(s.start(0, u2, 1), Err(StartError::TooMany(1)));
    let st = s.nodes[0].o.stats().start_refused.clone();
    assert_eq!(
        (st["no_services"], st["unknown_target"], st["too_many"]),
        (1, 1, 1)
    );
    s.run();
    assert_eq!(s.record(0, u1).outcome, Outcome::Committed);
    s.start(0, u2, 1).unwrap();
}

// ------------------------------------------------------------------ MIH

#[test]
fn mih_timeout_when_the_destination_mihf_is_absent_and_late_confirm_ignored() {
    let mut s = Sim::two();
    s.mih_link = MihLink::Drop;
    let ue = ip("10.0.1.1");
    s.user(0, "http", ue, state(10, 0));
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_source_rolled_back(&s, ue, "mih_timeout", false);
    assert_eq!(s.record(0, ue).phases.total, 500 * MS);
    // The destination is told, in case it accepted a commit whose answer was lost.
    assert!(s.nodes[0]
        .actions
        .iter()
        .any(|a| a == "mih MIH_N2N_HO_Complete.request"));
    assert_eq!(s.record(0, ue).phases.mih_commit, None);
    // A confirm that comes after the timeout is counted and ignored.
    let late = Message::new(
        mih_user::orchestrator::mih::N2N_HO_COMMIT.with_opcode(Opcode::Confirm),
        1,
        MihfId::from_static("enbc-b"),
        MihfId::from_static("user-enbc-a"),
        Body::N2nHoCommitResponse(mihf::wire::message::N2nHoCommitResponse {
            status: Status::SUCCESS,
            mn_mihf_id: mih_user::orchestrator::mih::mn_id(ue),
            link: None,
            assigned_resources: None,
        }),
    );
    let now = s.now;
    let n = &mut s.nodes[0];
    n.o.handle_mih(now, late, &n.view);
    s.drain(0);
    assert_eq!(s.nodes[0].o.stats().mih_unexpected, 1);
    assert!(!s.nodes[0].actions.iter().any(|a| a == "ExportApp"));
}

#[test]
fn lost_commit_confirm_releases_the_destination_at_once() {
    let mut s = Sim::two();
    s.drop_responses = true;
    let ue = ip("10.0.1.3");
    s.user(0, "http", ue, state(10, 0));
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_source_rolled_back(&s, ue, "mih_timeout", false);
    // B accepted, then heard the Complete(failure) right after A's timeout
    // (500 ms), long before its own context timeout (800 ms).
    let d = s.record(1, ue);
    assert_eq!(d.cause, Some(Cause::SourceRolledBack));
    assert_eq!(d.phases.total, 500 * MS);
}

#[test]
fn mih_network_error_rolls_back() {
    let mut s = Sim::two();
    s.mih_link = MihLink::NetworkError(100 * MS);
    let ue = ip("10.0.1.2");
    s.user(0, "http", ue, state(10, 0));
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_source_rolled_back(&s, ue, "mih_failure", false);
    assert_eq!(s.record(0, ue).cause, Some(Cause::MihFailure { status: 4 }));
    assert_eq!(s.record(0, ue).phases.total, 100 * MS);
}

// --------------------------------------------------------------- exports

#[test]
fn app_export_failure_rolls_back_both_ends() {
    let mut s = Sim::two();
    s.nodes[0].app_export = Answer::Fail(MS, "service refused");
    let ue = ip("10.0.2.1");
    s.user(0, "http", ue, state(10, 0));
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_source_rolled_back(&s, ue, "app_export", true);
    assert!(s.nodes[0].outcomes[0].2.contains("service refused"));
    // The destination had accepted: the Complete(failure) releases it.
    assert!(s.nodes[0]
        .actions
        .iter()
        .any(|a| a == "mih MIH_N2N_HO_Complete.request"));
    let d = s.record(1, ue);
    assert_eq!(d.outcome, Outcome::RolledBack);
    assert_eq!(d.cause, Some(Cause::SourceRolledBack));
    assert!(s.nodes[1].outcomes.is_empty(), "nothing was imported");
}

#[test]
fn app_export_that_never_answers_times_out() {
    let mut s = Sim::two();
    s.nodes[0].app_export = Answer::Never;
    let ue = ip("10.0.2.2");
    s.user(0, "http", ue, state(10, 0));
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_source_rolled_back(&s, ue, "app_export", true);
    assert_eq!(s.record(0, ue).phases.total, 4 * MS + 300 * MS);
}

#[test]
fn late_session_export_is_restored() {
    let mut s = Sim::two();
    // Slower than export_timeout (300 ms): the handover rolls back first.
    s.nodes[0].session_export = Answer::After(450 * MS);
    let ue = ip("10.0.2.4");
    s.user(0, "http", ue, state(10, 0));
    s.nodes[0]
        .sessions
        .insert(ue, vec![session(ue, 1), session(ue, 2)]);
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_source_rolled_back(&s, ue, "session_export", true);
    // The late answer put the sessions back.
    assert_eq!(s.nodes[0].restored, vec![(ue, 2)]);
    assert_eq!(s.nodes[0].sessions[&ue].len(), 2);
    assert_eq!(s.nodes[0].o.stats().stale_inputs, 1);
}

#[test]
fn session_export_failure_rolls_back_and_sessions_stay() {
    let mut s = Sim::two();
    s.nodes[0].session_export = Answer::Fail(MS, "TCP_REPAIR refused");
    let ue = ip("10.0.2.3");
    s.user(0, "http", ue, state(10, 0));
    s.nodes[0].sessions.insert(ue, vec![session(ue, 1)]);
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_source_rolled_back(&s, ue, "session_export", true);
    assert!(s.nodes[0].restored.is_empty(), "the exporter kept them");
    assert_eq!(s.nodes[0].sessions[&ue].len(), 1);
    assert_eq!(s.record(1, ue).cause, Some(Cause::SourceRolledBack));
}

// ------------------------------------------------------------------ CXTP

#[test]
fn cxtp_timeout_restores_sessions_and_notifies() {
    let mut s = Sim::two();
    s.cxtp_drop_from = Some(ip(IPS[0]));
    let ue = ip("10.0.3.1");
    s.user(0, "http", ue, state(5000, 0));
    s.nodes[0]
        .sessions
        .insert(ue, vec![session(ue, 7), session(ue, 8)]);
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_source_rolled_back(&s, ue, "cxtp_timeout", true);
    // Sessions rebuilt at the source before the services are told.
    assert_eq!(s.nodes[0].restored, vec![(ue, 2)]);
    assert_eq!(
        s.nodes[0].sessions[&ue],
        vec![session(ue, 7), session(ue, 8)]
    );
    let acts = &s.nodes[0].actions;
    let restore = acts.iter().position(|a| a == "RestoreSessions").unwrap();
    let notify = acts.iter().position(|a| a == "NotifyOutcome").unwrap();
    assert!(restore < notify, "{acts:?}");
    let r = s.record(0, ue);
    assert_eq!(r.phases.cxtp, None);
    assert_eq!(r.phases.total, 4 * MS + 3 * MS + MS + 400 * MS);
    // The destination gave up too (the Complete(failure) or its own timeout).
    assert_eq!(s.record(1, ue).outcome, Outcome::RolledBack);
}

#[test]
fn ctdr_failure_when_the_destination_service_refuses() {
    let mut s = Sim::two();
    s.nodes[1].refuse_import = vec!["http".into()];
    let ue = ip("10.0.3.2");
    s.user(0, "http", ue, state(100, 0));
    s.nodes[0].sessions.insert(ue, vec![session(ue, 1)]);
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_source_rolled_back(&s, ue, "ctdr_failure", true);
    let Some(Cause::CtdrFailure(entries)) = &s.record(0, ue).cause else {
        panic!()
    };
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!((entries[0].fpt, entries[0].status), (0xFF01, 0xA1));
    // The sessions were not rebuilt at all once a service refused.
    assert_eq!((entries[1].fpt, entries[1].status), (0xFF02, 0xA3));
    assert!(!s.nodes[1].actions.iter().any(|a| a == "ImportSessions"));
    assert_eq!(s.nodes[0].restored, vec![(ue, 1)]);
    let d = s.record(1, ue);
    assert_eq!(d.cause.as_ref().map(Cause::label), Some("import_failed"));
    assert_eq!(s.nodes[1].outcomes[0].1, Outcome::RolledBack);
    assert!(s.nodes[1].discarded.is_empty());
}

#[test]
fn session_import_failure_is_a_ctdr_failure() {
    let mut s = Sim::two();
    s.nodes[1].session_import = Answer::Fail(MS, "no repair");
    let ue = ip("10.0.3.3");
    s.user(0, "http", ue, state(100, 0));
    s.nodes[0].sessions.insert(ue, vec![session(ue, 1)]);
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_source_rolled_back(&s, ue, "ctdr_failure", true);
    let Some(Cause::CtdrFailure(entries)) = &s.record(0, ue).cause else {
        panic!()
    };
    assert!(
        entries.iter().any(|e| e.fpt == 0xFF02 && e.status == 0xA3),
        "{entries:?}"
    );
}

#[test]
fn destination_crash_mid_transfer_rolls_back_at_the_cxtp_timeout() {
    let mut s = Sim::two();
    s.nodes[1].app_import = Answer::Never;
    let ue = ip("10.0.3.4");
    s.user(0, "http", ue, state(200_000, 0));
    s.nodes[0].sessions.insert(ue, vec![session(ue, 1)]);
    s.start(0, ue, 1).unwrap();
    // Run until the destination holds the contexts, then crash it.
    while !s.nodes[1].actions.iter().any(|a| a == "ImportApp") {
        let t = s.now + MS;
        s.run_until(t);
    }
    let crashed_at = s.now;
    s.nodes[1].down = true;
    s.run();
    assert_source_rolled_back(&s, ue, "cxtp_timeout", true);
    assert_eq!(s.nodes[0].restored, vec![(ue, 1)]);
    let r = s.record(0, ue);
    assert!(s.t0 + r.phases.total >= crashed_at + 400 * MS - 2 * MS);
}

#[test]
fn destination_import_timeout_answers_the_ctdr() {
    let mut s = Sim::two();
    s.nodes[1].app_import = Answer::Never;
    let ue = ip("10.0.3.5");
    s.user(0, "http", ue, state(100, 0));
    s.start(0, ue, 1).unwrap();
    s.run();
    // The destination's import timeout (300 ms) beats the source's CXTP
    // timeout (400 ms): the source hears a failed CTDR.
    assert_source_rolled_back(&s, ue, "ctdr_failure", true);
    assert_eq!(
        s.record(1, ue).cause.as_ref().map(Cause::label),
        Some("import_failed")
    );
    assert_eq!(s.nodes[1].outcomes[0].1, Outcome::RolledBack);
}

#[test]
fn lost_complete_commits_the_destination_at_its_timeout() {
    let mut s = Sim::two();
    s.drop_complete = true;
    let ue = ip("10.0.3.6");
    s.user(0, "http", ue, state(100, 0));
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_eq!(s.record(0, ue).outcome, Outcome::Committed);
    let d = s.record(1, ue);
    assert_eq!(d.outcome, Outcome::Committed);
    assert_eq!(d.cause, Some(Cause::CompleteTimeout));
    assert_eq!(s.nodes[1].outcomes[0].1, Outcome::Committed);
}

#[test]
fn destination_without_any_ctd_gives_up() {
    let mut s = Sim::two();
    s.nodes[0].app_export = Answer::Never;
    s.drop_complete = true;
    let ue = ip("10.0.3.7");
    s.user(0, "http", ue, state(100, 0));
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_eq!(s.record(1, ue).cause, Some(Cause::NoContext));
    assert_eq!(s.record(1, ue).phases.total, 800 * MS);
}

// --------------------------------------------------------- concurrency

#[test]
fn concurrent_handovers_of_different_ues_and_ping_pong() {
    let mut s = Sim::two();
    let ues: Vec<IpAddr> = (1..=8).map(|i| ip(&format!("10.1.0.{i}"))).collect();
    for (k, ue) in ues.iter().enumerate() {
        s.user(0, "http", *ue, state(1000 * (k + 1), k as u8));
        s.nodes[0]
            .sessions
            .insert(*ue, vec![session(*ue, k as u16)]);
    }
    // One import refused: that UE alone rolls back.
    s.nodes[1].refuse_import = vec![];
    for ue in &ues {
        s.start(0, *ue, 1).unwrap();
        assert_eq!(s.start(0, *ue, 1), Err(StartError::Busy(*ue)));
    }
    assert_eq!(
        s.nodes[0].o.in_progress(),
        ByRole {
            source: 8,
            destination: 0
        }
    );
    s.run();
    for (k, ue) in ues.iter().enumerate() {
        assert_eq!(s.record(0, *ue).outcome, Outcome::Committed, "{ue}");
        let c = s.nodes[1].imported.iter().find(|(u, _)| u == ue).unwrap();
        assert_eq!(c.1.data, state(1000 * (k + 1), k as u8));
    }
    assert_eq!(s.nodes[1].o.stats().committed.destination, 8);
    // And back from B to A (a node is source and destination at once).
    for ue in &ues[..4] {
        let data = state(10, 0);
        s.user(1, "http", *ue, data);
        s.start(1, *ue, 0).unwrap();
    }
    let ue = ues[4];
    s.user(0, "http", ue, state(10, 1));
    s.start(0, ue, 1).unwrap();
    s.run();
    for ue in &ues[..5] {
        assert_eq!(
            s.nodes
                .iter()
                .flat_map(|n| &n.records)
                .filter(|r| r.ue == *ue && r.outcome == Outcome::Committed)
                .count(),
            4
        );
    }
}

#[test]
fn aborted_mid_transfer_and_late_ctdr_ignored() {
    let mut s = Sim::two();
    s.nodes[1].app_import = Answer::After(50 * MS);
    let ue = ip("10.0.4.1");
    s.user(0, "http", ue, state(100, 0));
    s.nodes[0].sessions.insert(ue, vec![session(ue, 1)]);
    s.start(0, ue, 1).unwrap();
    s.run_until(s.at(20));
    assert_eq!(
        s.nodes[0].o.handover(ue).map(|h| h.state),
        Some("transferring")
    );
    let now = s.now;
    assert!(s.nodes[0].o.abort(now, ue, "X2 HandoverCancel"));
    s.drain(0);
    assert!(!s.nodes[0].o.abort(now, ue, "again"));
    s.run();
    assert_source_rolled_back(&s, ue, "aborted", true);
    assert_eq!(s.nodes[0].restored, vec![(ue, 1)]);
    // B imported, then heard the Complete(failure) and rolled back.
    assert_eq!(s.record(1, ue).cause, Some(Cause::SourceRolledBack));
    assert_eq!(s.nodes[1].outcomes[0].1, Outcome::RolledBack);
    // It was still importing the services' contexts (no session built
    // yet); their late answer is stale.
    assert!(s.nodes[1].discarded.is_empty());
    assert_eq!(s.nodes[1].o.stats().stale_inputs, 1);
    // The late CTDR for the aborted transfer was dropped, not acted on.
    assert!(s.nodes[0].o.stats().cxtp_stale >= 1);
    assert!(s.nodes[0].o.stats().stale_inputs == 0);
}

#[test]
fn shutdown_rolls_back_everything() {
    let mut s = Sim::two();
    s.nodes[1].app_import = Answer::Never;
    let (u1, u2) = (ip("10.0.5.1"), ip("10.0.5.2"));
    s.user(0, "http", u1, state(10, 0));
    s.user(0, "http", u2, state(10, 0));
    s.start(0, u1, 1).unwrap();
    s.run_until(s.at(1));
    s.start(0, u2, 1).unwrap();
    s.run_until(s.at(30));
    let now = s.now;
    s.nodes[1].o.shutdown(now);
    s.drain(1);
    s.nodes[0].o.shutdown(now);
    s.drain(0);
    assert_eq!(
        s.nodes[0].o.in_progress(),
        ByRole {
            source: 0,
            destination: 0
        }
    );
    assert_eq!(
        s.nodes[1].o.in_progress(),
        ByRole {
            source: 0,
            destination: 0
        }
    );
    assert_eq!(s.start(0, u1, 1), Err(StartError::ShuttingDown));
    for r in s.nodes.iter().flat_map(|n| &n.records) {
        assert_eq!(r.outcome, Outcome::RolledBack);
    }
}

// ------------------------------------------------- races between attempts

// The few calls of this version's API the race tests use.
fn attempt_of(r: &MigrationRecord) -> u32 {
    r.attempt
}
/// What the daemon does with an X2 `Forget` for the handover `id` that a
/// trigger of `ue` started.
fn x2_forget(
    o: &mut Orchestrator,
    now: Instant,
    id: HandoverId,
    _ue: IpAddr,
    r: ForgetReason,
) -> bool {
    o.abort_x2(now, id, &r)
}
fn closing(o: &Orchestrator) -> usize {
    o.closing()
}

fn cxtp_type(b: &Bytes) -> Option<MessageType> {
    cxtp::wire::MessageView::parse(b.clone())
        .ok()
        .map(|m| m.message_type())
}

fn complete_result(m: &Message) -> Option<HoResult> {
    match &m.body {
        Body::N2nHoCompleteRequest(r) => Some(r.result),
        _ => None,
    }
}

fn state_name(s: &Sim, node: usize, ue: IpAddr) -> Option<&'static str> {
    s.nodes[node].o.handover(ue).map(|h| h.state)
}

/// Run in 1 ms steps until `f` holds (at most `limit_ms` more).
fn run_until_cond(s: &mut Sim, limit_ms: u64, f: impl Fn(&Sim) -> bool) {
    for _ in 0..limit_ms {
        if f(s) {
            return;
        }
        let t = s.now + MS;
        s.run_until(t);
    }
    assert!(f(s), "condition not reached in {limit_ms} ms");
}

/// Both ends ended the UE's last attempt the same way.
fn assert_same_ending(s: &Sim, ue: IpAddr, outcome: Outcome) {
    let (a, b) = (s.record(0, ue), s.record(1, ue));
    assert_eq!(a.outcome, outcome, "source: {a:?}");
    assert_eq!(b.outcome, outcome, "destination: {b:?}");
    assert_eq!(attempt_of(a), attempt_of(b));
}

/// Every handover over, every repeated Complete answered or given up, and
/// no timer of any attempt left in the orchestrators or their engines.
fn assert_quiet(s: &Sim) {
    for n in &s.nodes {
        assert_eq!(
            n.o.in_progress(),
            ByRole {
                source: 0,
                destination: 0
            },
            "{}",
            n.name
        );
        assert_eq!(closing(&n.o), 0, "{}", n.name);
        assert_eq!(n.o.poll_timeout(), None, "{}: a timer is left", n.name);
    }
}

type Flag = std::rc::Rc<std::cell::Cell<bool>>;

fn flag(v: bool) -> Flag {
    std::rc::Rc::new(std::cell::Cell::new(v))
}

#[test]
fn late_ctc_or_give_up_of_an_aborted_attempt_does_not_cancel_the_next() {
    let mut s = Sim::two();
    let ue = ip("10.0.7.1");
    s.user(0, "http", ue, state(100, 1));
    s.nodes[0].sessions.insert(ue, vec![session(ue, 1)]);
    // Attempt 1: the services do not export in time, A rolls back and
    // tells B, B gives up on the transfer it awaited and tells A (a CTC
    // without ids; with them a failure CTDR naming attempt 1): held.
    s.nodes[0].app_export = Answer::Fail(5 * MS, "busy");
    let hold = flag(true);
    let h = hold.clone();
    s.hook = Box::new(move |w| match w {
        Wire::Cxtp { from: 1, .. } if h.get() => Hook::Hold,
        _ => Hook::Pass,
    });
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_eq!(s.record(1, ue).cause, Some(Cause::SourceRolledBack));
    assert_eq!(s.held.len(), 1, "B's word to A");
    // Attempt 2, while it transfers: the held message, and a CTC.
    hold.set(false);
    s.nodes[0].app_export = Answer::After(3 * MS);
    s.nodes[1].app_import = Answer::After(50 * MS);
    s.start(0, ue, 1).unwrap();
    run_until_cond(&mut s, 100, |s| {
        state_name(s, 0, ue) == Some("transferring")
    });
    s.release(0);
    let ctc = cxtp::wire::MessageRepr::Ctc(cxtp::wire::Ctc { mn_addr: ue })
        .to_bytes()
        .unwrap();
    let at = s.now + 2 * MS;
    s.schedule(
        at,
        Ev::Cxtp {
            to: 0,
            from: ip(IPS[1]),
            bytes: ctc,
        },
    );
    s.run();
    assert_same_ending(&s, ue, Outcome::Committed);
    assert!(s.nodes[0].o.stats().cxtp_stale >= 2);
    assert_quiet(&s);
}

#[test]
fn ctd_of_a_rolled_back_attempt_is_not_imported_into_the_next() {
    let mut s = Sim::two();
    let ue = ip("10.0.7.2");
    s.user(0, "http", ue, state(100, 1));
    // Attempt 1: its CTD is held; A rolls back at its CXTP timeout and
    // B, still awaiting contexts, on A's Complete(Failure).
    let hold = flag(true);
    let h = hold.clone();
    s.hook = Box::new(move |w| match w {
        Wire::Cxtp { from: 0, bytes, .. }
            if h.get() && cxtp_type(bytes) == Some(MessageType::Ctd) =>
        {
            Hook::Hold
        }
        _ => Hook::Pass,
    });
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_eq!(
        s.record(0, ue).cause.as_ref().map(Cause::label),
        Some("cxtp_timeout")
    );
    assert_eq!(s.record(1, ue).cause, Some(Cause::SourceRolledBack));
    assert_eq!(s.held.len(), 1);
    // Attempt 2 with new state; the old CTD reaches B while B awaits the
    // new attempt's contexts.
    hold.set(false);
    s.user(0, "http", ue, state(100, 2));
    s.nodes[0].app_export = Answer::After(100 * MS);
    s.start(0, ue, 1).unwrap();
    run_until_cond(&mut s, 100, |s| {
        state_name(s, 1, ue) == Some("awaiting_contexts")
    });
    s.release(0);
    s.run();
    assert_same_ending(&s, ue, Outcome::Committed);
    let got: Vec<&Bytes> = s.nodes[1].imported.iter().map(|(_, c)| &c.data).collect();
    assert_eq!(got, vec![&state(100, 2)], "only attempt 2's context");
    assert!(s.nodes[1].o.stats().cxtp_stale >= 1);
    assert_quiet(&s);
}

#[test]
fn ctd_of_a_rolled_back_attempt_before_its_complete_does_not_commit() {
    let mut s = Sim::two();
    let ue = ip("10.0.7.3");
    s.user(0, "http", ue, state(100, 1));
    s.nodes[0].sessions.insert(ue, vec![session(ue, 1)]);
    // The CTD is held past A's rollback, and A's first three
    // Complete(Failure) are lost.
    let lost = std::rc::Rc::new(std::cell::Cell::new(0));
    let l = lost.clone();
    s.hook = Box::new(move |w| match w {
        Wire::Cxtp { from: 0, bytes, .. } if cxtp_type(bytes) == Some(MessageType::Ctd) => {
            Hook::Hold
        }
        Wire::Mih { from: 0, msg } if complete_result(msg).is_some() && l.get() < 3 => {
            l.set(l.get() + 1);
            Hook::Drop
        }
        _ => Hook::Pass,
    });
    s.start(0, ue, 1).unwrap();
    run_until_cond(&mut s, 1000, |s| !s.nodes[0].records.is_empty());
    assert_eq!(
        s.record(0, ue).cause.as_ref().map(Cause::label),
        Some("cxtp_timeout")
    );
    assert_eq!(s.nodes[0].restored, vec![(ue, 1)]);
    // B still awaits contexts: the CTD arrives now, B imports, answers
    // (A ignores it) and waits for the Complete.
    assert_eq!(state_name(&s, 1, ue), Some("awaiting_contexts"));
    s.release(0);
    s.run();
    assert_same_ending(&s, ue, Outcome::RolledBack);
    assert_eq!(lost.get(), 3);
    assert_eq!(s.record(1, ue).cause, Some(Cause::SourceRolledBack));
    assert_eq!(
        s.nodes[1].discarded,
        vec![ue],
        "the rebuilt sessions dropped"
    );
    assert!(s.nodes[1].committed_sessions.is_empty());
    assert_quiet(&s);
}

#[test]
fn late_ctdr_of_an_earlier_attempt_does_not_commit_the_next() {
    let mut s = Sim::two();
    let ue = ip("10.0.7.4");
    s.user(0, "http", ue, state(100, 1));
    // Attempt 1: B's successful CTDR is held; A rolls back at its CXTP
    // timeout, B on the Complete(Failure).
    let hold = flag(true);
    let h = hold.clone();
    s.hook = Box::new(move |w| match w {
        Wire::Cxtp { from: 1, bytes, .. }
            if h.get() && cxtp_type(bytes) == Some(MessageType::Ctdr) =>
        {
            Hook::Hold
        }
        _ => Hook::Pass,
    });
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_same_ending(&s, ue, Outcome::RolledBack);
    assert_eq!(s.held.len(), 1);
    // Attempt 2: B refuses the import. The old success CTDR reaches A
    // while it transfers.
    hold.set(false);
    s.nodes[1].refuse_import = vec!["http".into()];
    s.nodes[1].app_import = Answer::After(50 * MS);
    s.start(0, ue, 1).unwrap();
    run_until_cond(&mut s, 100, |s| {
        state_name(s, 0, ue) == Some("transferring")
    });
    s.release(0);
    s.run();
    assert_same_ending(&s, ue, Outcome::RolledBack);
    assert_eq!(
        s.record(0, ue).cause.as_ref().map(Cause::label),
        Some("ctdr_failure")
    );
    assert_eq!(
        s.record(1, ue).cause.as_ref().map(Cause::label),
        Some("import_failed")
    );
    assert!(s.nodes[0].o.stats().cxtp_stale >= 1);
    assert_quiet(&s);
}

#[test]
fn stale_complete_success_does_not_commit_the_next_incoming_handover() {
    let mut s = Sim::two();
    let ue = ip("10.0.7.5");
    s.user(0, "http", ue, state(100, 1));
    // Attempt 1 commits; a copy of its Complete(Success) is kept.
    let copied = flag(false);
    let drop_ctdr = flag(false);
    let (c, d) = (copied.clone(), drop_ctdr.clone());
    s.hook = Box::new(move |w| match w {
        Wire::Mih { from: 0, msg } if complete_result(msg).is_some() && !c.get() => {
            c.set(true);
            Hook::Copy
        }
        Wire::Cxtp { from: 1, bytes, .. }
            if d.get() && cxtp_type(bytes) == Some(MessageType::Ctdr) =>
        {
            Hook::Drop
        }
        _ => Hook::Pass,
    });
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_same_ending(&s, ue, Outcome::Committed);
    assert_eq!(s.held.len(), 1);
    // Attempt 2: B's CTDR is lost, so A rolls back at its CXTP timeout.
    // While B waits for the Complete, the old Complete(Success) arrives.
    drop_ctdr.set(true);
    s.start(0, ue, 1).unwrap();
    run_until_cond(&mut s, 100, |s| {
        state_name(s, 1, ue) == Some("awaiting_complete")
    });
    s.release(0);
    s.run();
    assert_same_ending(&s, ue, Outcome::RolledBack);
    assert_eq!(s.record(1, ue).cause, Some(Cause::SourceRolledBack));
    assert!(s.nodes[1].o.stats().complete_stale >= 1);
    assert_quiet(&s);
}

#[test]
fn x2_timer_of_an_earlier_handover_does_not_abort_the_current_one() {
    use mih_user::x2ap::{Cause as X2Cause, Phase};
    let mut s = Sim::two();
    let ue = ip("10.0.7.6");
    s.user(0, "http", ue, state(100, 1));
    s.nodes[0].sessions.insert(ue, vec![session(ue, 1)]);
    // Handover 1, A -> B, commits.
    let id1 = s.start(0, ue, 1).unwrap();
    s.run();
    assert_same_ending(&s, ue, Outcome::Committed);
    // The UE comes back, B -> A. While A (destination) waits for B's
    // Complete, A's X2 trigger forgets handover 1: TX2RELOCoverall ran
    // out (no UEContextRelease seen), or a late HandoverCancel.
    s.user(1, "http", ue, state(100, 2));
    s.nodes[1].sessions.insert(ue, vec![session(ue, 2)]);
    s.start(1, ue, 0).unwrap();
    run_until_cond(&mut s, 100, |s| {
        state_name(s, 0, ue) == Some("awaiting_complete")
    });
    let now = s.now;
    for r in [
        ForgetReason::Timeout(Phase::Execution),
        ForgetReason::Cancelled(X2Cause::Unrecognised),
    ] {
        assert!(!x2_forget(&mut s.nodes[0].o, now, id1, ue, r));
    }
    s.drain(0);
    s.run();
    let (b, a) = (s.record(1, ue), s.record(0, ue));
    assert_eq!((b.role, b.outcome), (Role::Source, Outcome::Committed));
    assert_eq!((a.role, a.outcome), (Role::Destination, Outcome::Committed));
    assert_eq!(
        s.nodes[0].committed_sessions,
        vec![ue],
        "the rebuilt socket kept"
    );
    assert!(s.nodes[0].discarded.is_empty());
    // A HandoverCancel of the handover under way aborts it.
    let id3 = s.start(0, ue, 1).unwrap();
    run_until_cond(&mut s, 100, |s| {
        state_name(s, 0, ue) == Some("transferring")
    });
    let now = s.now;
    assert!(x2_forget(
        &mut s.nodes[0].o,
        now,
        id3,
        ue,
        ForgetReason::Cancelled(X2Cause::Unrecognised)
    ));
    s.drain(0);
    s.run();
    assert_same_ending(&s, ue, Outcome::RolledBack);
    assert_quiet(&s);
}

#[test]
fn reassembly_left_by_an_earlier_attempt_does_not_fail_the_next() {
    let mut s = Sim::two();
    let ue = ip("10.0.7.7");
    // Four CTDs: attempt 1's are held, A rolls back at its CXTP timeout.
    s.user(0, "http", ue, state(200_000, 1));
    let hold = flag(true);
    let h = hold.clone();
    s.hook = Box::new(move |w| match w {
        Wire::Cxtp { from: 0, bytes, .. }
            if h.get() && cxtp_type(bytes) == Some(MessageType::Ctd) =>
        {
            Hook::Hold
        }
        _ => Hook::Pass,
    });
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_same_ending(&s, ue, Outcome::RolledBack);
    assert!(s.held.len() >= 2, "{}", s.held.len());
    // The first of them reaches B after B ended the attempt: nothing of
    // it may stay (a reassembly waiting for the rest, with its timer).
    s.release(0);
    s.run_until(s.now + 10 * MS);
    let left = s.nodes[1].o.poll_timeout();
    // Attempt 2 is accepted and commits.
    hold.set(false);
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_same_ending(&s, ue, Outcome::Committed);
    assert_eq!(left, None, "a timer of attempt 1 was left at B");
    assert_eq!(
        s.nodes[1].imported.last().unwrap().1.data,
        state(200_000, 1)
    );
    assert_quiet(&s);
}

#[test]
fn lost_complete_failure_is_repeated_until_the_destination_rolls_back() {
    let mut s = Sim::two();
    let ue = ip("10.0.7.8");
    s.user(0, "http", ue, state(100, 1));
    s.nodes[0].sessions.insert(ue, vec![session(ue, 1)]);
    // B's successful CTDR is lost: A rolls back at its CXTP timeout. Its
    // first three Complete(Failure) are lost too.
    let lost = std::rc::Rc::new(std::cell::Cell::new(0));
    let l = lost.clone();
    s.hook = Box::new(move |w| match w {
        Wire::Cxtp { from: 1, .. } => Hook::Drop,
        Wire::Mih { from: 0, msg } if complete_result(msg).is_some() && l.get() < 3 => {
            l.set(l.get() + 1);
            Hook::Drop
        }
        _ => Hook::Pass,
    });
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_same_ending(&s, ue, Outcome::RolledBack);
    assert_eq!(lost.get(), 3);
    assert_eq!(
        s.record(0, ue).cause.as_ref().map(Cause::label),
        Some("cxtp_timeout")
    );
    assert_eq!(s.record(1, ue).cause, Some(Cause::SourceRolledBack));
    assert_eq!(s.nodes[0].restored, vec![(ue, 1)]);
    assert_eq!(s.nodes[1].discarded, vec![ue]);
    assert_quiet(&s);
}

// --------------------------------------------------------------- garbage

#[test]
fn garbage_and_strangers_never_panic() {
    let mut s = Sim::two();
    let ue = ip("10.0.6.1");
    s.user(0, "http", ue, state(100, 0));
    let now = s.now;
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for i in 0..2000 {
        let len = (next() % 120) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 3 == 0 && b.len() > 4 {
            b[0] = 0x20 | (b[0] & 7); // version 1, some type
            let l = b.len() as u16;
            b[2..4].copy_from_slice(&l.to_be_bytes());
        }
        let from = if i % 2 == 0 {
            ip(IPS[1])
        } else {
            ip("203.0.113.9")
        };
        s.nodes[0].o.handle_cxtp(now, from, Bytes::from(b));
    }
    // MIH frames of every kind from nowhere.
    let ind = mih_user::orchestrator::mih::commit_request(
        9,
        &MihfId::from_static("x"),
        "enbc-a",
        ue,
        &["http".into()],
        None,
        7,
    );
    for (opcode, src) in [
        (Opcode::Indication, "stranger"),
        (Opcode::Confirm, "enbc-b"),
        (Opcode::Response, "enbc-b"),
    ] {
        let mut m = ind.clone();
        m.header.mid = m.header.mid.with_opcode(opcode);
        m.source = MihfId::new(src.as_bytes().to_vec());
        let n = &mut s.nodes[0];
        n.o.handle_mih(now, m, &n.view);
    }
    let complete = mih_user::orchestrator::mih::complete_request(
        3,
        &MihfId::from_static("x"),
        "enbc-a",
        ue,
        HoResult::SUCCESS,
        7,
    );
    let mut c = complete.clone();
    c.header.mid = c.header.mid.with_opcode(Opcode::Indication);
    let n = &mut s.nodes[0];
    n.o.handle_mih(now, c, &n.view);
    // Inputs for handovers that do not exist.
    n.o.on_app_exported(now, HandoverId(77), Ok(vec![]));
    n.o.on_sessions_exported(now, HandoverId(77), Ok(vec![]));
    n.o.on_app_imported(now, HandoverId(77), Ok(vec![]));
    n.o.on_sessions_imported(now, HandoverId(77), vec![]);
    assert_eq!(n.o.stats().stale_inputs, 4);
    assert_eq!(n.o.stats().admission_refused["unknown_peer"], 1);
    s.drain(0);
    // Every indication got an answer (Rejected / Unspecified Failure).
    let answered = s.nodes[0]
        .actions
        .iter()
        .filter(|a| a.starts_with("mih "))
        .count();
    assert_eq!(answered, 2, "{:?}", s.nodes[0].actions);
    // The node still works.
    s.start(0, ue, 1).unwrap();
    s.run();
    assert_eq!(s.record(0, ue).outcome, Outcome::Committed);
}

// ------------------------------------------------------- random network

/// 300 seeded runs: random latencies, jitter (messages overtake each
/// other), duplicated and lost MIH and CXTP messages (0–30 %, no
/// retransmission here, unlike mihfd over UDP), slow or failing services,
/// session exports slower than the export timeout, several UEs started at
/// random times. Invariants: every handover ends exactly once at each end,
/// committed at both or rolled back at both (a destination that never
/// heard of it counts as rolled back), the same attempt at both ends,
/// nothing stays in progress, no Complete is still repeated and no timer
/// is left. A failure names its seed.
#[test]
fn random_losses_and_delays_keep_the_invariants() {
    let mut seen = (0, 0, 0);
    for seed in 1..=300u64 {
        let mut s = Sim::two();
        s.rng = seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
        let loss = [0, 20, 100, 300][(s.next_rng() % 4) as usize];
        let dup = [0, 0, 20, 100][(s.next_rng() % 4) as usize];
        let jitter = Duration::from_micros(s.next_rng() % 20_000);
        let mih_latency = Duration::from_micros(s.next_rng() % 5000);
        let cxtp_latency = Duration::from_micros(s.next_rng() % 3000);
        let pick = |x: u64| match x % 6 {
            0 => Answer::Fail(Duration::from_millis(x % 7), "no"),
            1 => Answer::After(Duration::from_millis(250 + x % 400)),
            _ => Answer::After(Duration::from_millis(x % 20)),
        };
        let (e, i) = (pick(s.next_rng()), pick(s.next_rng()));
        let slow_sessions = s.next_rng() % 8 == 0;
        let refuse = s.next_rng() % 8 == 0;
        let big = s.next_rng() % 4 == 0;
        let starts: Vec<u64> = (0..3).map(|_| s.next_rng() % 50).collect();
        s.loss_per_mille = loss;
        s.dup_per_mille = dup;
        s.jitter = jitter;
        s.mih_latency = mih_latency;
        s.cxtp_latency = cxtp_latency;
        s.nodes[0].app_export = e;
        s.nodes[1].app_import = i;
        if slow_sessions {
            s.nodes[0].session_export = Answer::After(350 * MS);
        }
        if refuse {
            s.nodes[1].refuse_import = vec!["http".into()];
        }
        let ues: Vec<IpAddr> = (0..3).map(|k| ip(&format!("10.2.0.{}", k + 1))).collect();
        for (k, ue) in ues.iter().enumerate() {
            // Sometimes a context of several CTDs.
            let len = if big && k == 0 {
                150_000
            } else {
                3000 * (k + 1)
            };
            s.user(0, "http", *ue, state(len, k as u8));
            s.nodes[0]
                .sessions
                .insert(*ue, vec![session(*ue, k as u16)]);
        }
        let mut order: Vec<(u64, IpAddr)> = starts.into_iter().zip(ues.iter().copied()).collect();
        order.sort();
        for (t, ue) in order {
            let at = s.at(t);
            s.run_until(at);
            s.start(0, ue, 1).unwrap();
        }
        s.run();
        let ctx = format!(
            "seed {seed} (loss {loss}, dup {dup}, jitter {jitter:?}, export {:?}, import {:?})",
            s.nodes[0].app_export, s.nodes[1].app_import
        );
        for ue in &ues {
            let src: Vec<&MigrationRecord> =
                s.nodes[0].records.iter().filter(|r| r.ue == *ue).collect();
            assert_eq!(src.len(), 1, "{ctx}: {ue} ended {} times", src.len());
            let dst: Vec<&MigrationRecord> =
                s.nodes[1].records.iter().filter(|r| r.ue == *ue).collect();
            assert!(dst.len() <= 1, "{ctx}: {ue} ended {} times at B", dst.len());
            if let Some(d) = dst.first() {
                assert_eq!(attempt_of(d), attempt_of(src[0]), "{ctx}");
            }
            match (src[0].outcome, dst.first().map(|d| d.outcome)) {
                (Outcome::Committed, Some(Outcome::Committed)) => seen.0 += 1,
                (Outcome::RolledBack, Some(Outcome::RolledBack)) => seen.1 += 1,
                (Outcome::RolledBack, None) => seen.2 += 1,
                (a, b) => panic!(
                    "{ctx}: {ue} ended {a:?} at the source, {b:?} at the destination: {:?} / {:?}",
                    src[0],
                    dst.first()
                ),
            }
            // Rolled back at the source: its sessions are live again.
            if src[0].outcome == Outcome::RolledBack {
                assert_eq!(s.nodes[0].sessions.get(ue).map(Vec::len), Some(1), "{ctx}");
            }
        }
        for n in &s.nodes {
            assert_eq!(
                n.o.in_progress(),
                ByRole {
                    source: 0,
                    destination: 0
                },
                "{ctx}: {}",
                n.name
            );
            assert_eq!(closing(&n.o), 0, "{ctx}: {}", n.name);
            assert_eq!(
                n.o.poll_timeout(),
                None,
                "{ctx}: {} has a timer left",
                n.name
            );
        }
        // Nothing stuck in the engines: the UEs can move again.
        s.loss_per_mille = 0;
        s.dup_per_mille = 0;
        s.nodes[0].app_export = Answer::After(MS);
        s.nodes[0].session_export = Answer::After(MS);
        s.nodes[1].app_import = Answer::After(MS);
        s.nodes[1].refuse_import.clear();
        s.start(0, ues[0], 1).unwrap();
        s.run();
        assert_eq!(s.record(0, ues[0]).outcome, Outcome::Committed, "{ctx}");
        assert_eq!(s.record(1, ues[0]).outcome, Outcome::Committed, "{ctx}");
    }
    println!("endings (both committed, both rolled back, rolled back before the destination knew): {seen:?}");
    // The runs covered every kind of ending.
    assert!(seen.0 > 0 && seen.1 > 0 && seen.2 > 0, "{seen:?}");
}

#[test]
fn starts_beyond_the_tid_space_are_refused_and_no_tid_is_handed_out_twice() {
    // 4095 commits waiting for their confirm hold every TID towards the
    // local MIHF: the next start is refused (nothing started, nothing
    // sent), never given a TID in use.
    let mut c = cfg(NAMES[0]);
    c.max_outgoing = 5000;
    let mut o = Orchestrator::new(c, [(NAMES[1].to_string(), ip(IPS[1]))]);
    let mut view = View::default();
    let users: HashMap<IpAddr, Bytes> = (0..4096u32)
        .map(|i| (IpAddr::from([10, 9, (i >> 8) as u8, i as u8]), Bytes::new()))
        .collect();
    view.services.insert("svc".into(), (7, users));
    let now = Instant::now();
    let req = |i: u32| HandoverRequest {
        ue: IpAddr::from([10, 9, (i >> 8) as u8, i as u8]),
        target: NAMES[1].into(),
        trigger: TriggerKind::Operator,
        cell: None,
    };
    for i in 0..4095 {
        o.start_handover(now, req(i), &view).unwrap();
    }
    let mut tids = std::collections::HashSet::new();
    while let Some(a) = o.poll_action() {
        if let Action::Mih(m) = a {
            assert!(tids.insert(m.header.tid), "TID {} twice", m.header.tid);
        }
    }
    assert_eq!(tids.len(), 4095);
    assert_eq!(
        o.start_handover(now, req(4095), &view),
        Err(StartError::NoFreeTid)
    );
    assert!(o.poll_action().is_none(), "nothing sent");
    assert_eq!(o.in_progress().source, 4095);
    assert_eq!(o.stats().start_refused.get("no_free_tid"), Some(&1));
}
