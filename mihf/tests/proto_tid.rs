//! TID allocation, duplicate detection and lifetimes at high rates: two
//! engines joined by an in-memory network, thousands of byte-identical
//! MIH_N2N_HO_Commit requests a second (only the TID differs), time by hand.
//!
//! Every request the source sends gets a generation: (TID, how many times
//! the source had allocated that TID before). Every frame on the network
//! carries the generation it belongs to, so the tests know the truth that
//! the engines only infer from (peer, TID):
//!
//! * at the destination, a frame of generation g for TID t while it holds
//!   a record of t made by another generation is a TID reused while the
//!   destination still holds its record (a new request would get the old
//!   answer, or an old frame would hit a new transaction);
//! * at the source, a frame of an older generation of t than the current
//!   one is an answer that outlived the TID's quarantine;
//! * the destination's user sees each generation at most once, and each
//!   answer names its generation, so a response must reach the request that
//!   asked.
//!
//! Any of these is a violation; every test asserts there is none.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mihf::proto::transaction::{Engine, EngineConfig, Event, Inbound, SendError};
use mihf::proto::{Endpoint, Token};
use mihf::wire::message::*;
use mihf::wire::*;
use proptest::prelude::*;

mod frames;
use frames::Rng;

const A_ADDR: &str = "127.0.0.1:4551";
const B_ADDR: &str = "127.0.0.2:4551";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn mihf(s: &'static str) -> MihfId {
    MihfId::from_static(s)
}

/// The one request every send uses (the engine sets the TID).
fn commit_request() -> Message {
    frames::n2n_request("mihf1", "mihf2")
}

fn event_indication() -> Message {
    frames::link_up("mihf1", "mihf2")
}

/// The destination user's answer names the generation it answers.
fn answer(gen: Gen) -> Message {
    Message::new(
        Mid(0x3809),
        0,
        mihf("mihf2"),
        mihf("mihf1"),
        Body::N2nHoCommitResponse(N2nHoCommitResponse {
            status: Status::SUCCESS,
            mn_mihf_id: MihfId::new(format!("{}/{}", gen.0, gen.1).into_bytes()),
            link: None,
            assigned_resources: None,
        }),
    )
}

fn tid_of(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[4], frame[5]]) & 0x0fff
}

/// A request or indication (not an ACK of one).
fn is_request_frame(frame: &[u8]) -> bool {
    let Ok(h) = Header::parse(frame) else {
        return false;
    };
    matches!(h.mid.opcode(), Opcode::Request | Opcode::Indication) && !h.ack_rsp
}

/// (TID, generation of that TID at the source).
type Gen = (u16, u32);

#[derive(Debug, Clone)]
struct Frame {
    due: Instant,
    /// Lost if not delivered before then: the model's delays are shorter
    /// than the duplicate margin.
    expires: Instant,
    seq: u64,
    to_b: bool,
    bytes: Bytes,
    gen: Gen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Answered,
    Delivered,
    Failed,
}

/// How the network treats frames in the storm runs.
#[derive(Debug, Clone, Copy)]
struct NetModel {
    loss_per_mille: u64,
    dup_per_mille: u64,
    /// Delay = base + 0..=jitter (base + jitter must stay within the
    /// engines' duplicate margin).
    base: Duration,
    jitter: Duration,
    /// Share of answers that come after the ACK delay (pure ACK, then an
    /// acknowledged response).
    slow_answer_per_mille: u64,
    slow_answer: Duration,
    /// Share of frames that take the longest delay the model allows (just
    /// under the margin), whatever `base` and `jitter` say.
    slowest_per_mille: u64,
    /// Share of requests the destination's user never answers.
    unanswered_per_mille: u64,
}

const CLEAN: NetModel = NetModel {
    loss_per_mille: 0,
    dup_per_mille: 0,
    base: Duration::from_millis(1),
    jitter: Duration::from_millis(4),
    slow_answer_per_mille: 0,
    slow_answer: Duration::ZERO,
    slowest_per_mille: 0,
    unanswered_per_mille: 0,
};

struct Sim {
    t0: Instant,
    now: Instant,
    a: Engine,
    b: Engine,
    /// Where A sends to B, and where B sees A's frames from.
    to_b: Endpoint,
    from_a: Endpoint,
    net: NetModel,
    rng: Rng,
    /// The margin of the model: frames older than this are lost.
    max_delay: Duration,
    /// Frames are only delivered by [`Sim::deliver`] calls (the property
    /// test); otherwise when due.
    manual: bool,
    wire: Vec<Frame>,
    seq: u64,
    /// Generation of each TID at A (how often it was allocated).
    gen_a: HashMap<u16, u32>,
    /// Generation of B's record of each TID.
    owner_b: HashMap<u16, u32>,
    tokens: HashMap<Token, Gen>,
    deliveries: HashMap<Gen, u32>,
    outcomes: HashMap<Token, Outcome>,
    answers: Vec<(Instant, Inbound, Gen)>,
    violations: Vec<String>,
    sent: u64,
    refused: Vec<SendError>,
    max_b_records: usize,
}

impl Sim {
    fn new(ca: EngineConfig, cb: EngineConfig, tcp: bool, net: NetModel, seed: u64) -> Sim {
        let max_delay = ca.margin();
        let (to_b, from_a) = if tcp {
            (
                Endpoint::Tcp(B_ADDR.parse().unwrap()),
                Endpoint::Tcp(A_ADDR.parse().unwrap()),
            )
        } else {
            (
                Endpoint::Udp(B_ADDR.parse().unwrap()),
                Endpoint::Udp(A_ADDR.parse().unwrap()),
            )
        };
        let now = Instant::now();
        Sim {
            t0: now,
            now,
            a: Engine::new(ca),
            b: Engine::new(cb),
            to_b,
            from_a,
            net,
            rng: Rng(seed | 1),
            max_delay,
            manual: false,
            wire: Vec::new(),
            seq: 0,
            gen_a: HashMap::new(),
            owner_b: HashMap::new(),
            tokens: HashMap::new(),
            deliveries: HashMap::new(),
            outcomes: HashMap::new(),
            answers: Vec::new(),
            violations: Vec::new(),
            sent: 0,
            refused: Vec::new(),
            max_b_records: 0,
        }
    }

    fn trace(&self, what: std::fmt::Arguments) {
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!(
                "{:>8.3} ms  {what}",
                (self.now - self.t0).as_secs_f64() * 1e3
            );
        }
    }

    fn violation(&mut self, v: String) {
        if self.violations.len() < 20 {
            self.violations.push(v);
        }
    }

    /// Send a request (or an indication) from A.
    fn send(&mut self, indication: bool) -> Result<Token, SendError> {
        let r = if indication {
            self.a
                .send_indication(self.now, self.to_b, event_indication())
        } else {
            self.a.send_request(self.now, self.to_b, commit_request())
        };
        match r {
            Ok((token, tid)) => {
                if self.b.has_destination_record(&mihf("mihf1"), tid) {
                    let v = format!("A reused TID {tid} while B holds its record");
                    self.violation(v);
                }
                let g = self.gen_a.entry(tid).or_insert(0);
                *g += 1;
                let g = *g;
                self.tokens.insert(token, (tid, g));
                self.trace(format_args!("A sends {tid}/{g}"));
                self.sent += 1;
                self.pump(None);
                Ok(token)
            }
            Err(e) => {
                self.refused.push(e.clone());
                Err(e)
            }
        }
    }

    /// Put the engines' transmits on the wire, tagged with the generation
    /// they belong to; handle their events. `cause`: the generation of the
    /// frame B just handled (its answers belong to it).
    fn pump(&mut self, cause: Option<Gen>) {
        while let Some(t) = self.a.poll_transmit() {
            let tid = tid_of(&t.payload);
            let gen = (tid, self.gen_a.get(&tid).copied().unwrap_or(0));
            self.put(true, t.payload, gen);
        }
        while let Some(t) = self.b.poll_transmit() {
            let tid = tid_of(&t.payload);
            let gen = cause
                .filter(|g| g.0 == tid)
                .unwrap_or((tid, self.owner_b.get(&tid).copied().unwrap_or(0)));
            self.put(false, t.payload, gen);
        }
        while let Some(e) = self.a.poll_event() {
            let (token, outcome) = match e {
                Event::Response { token, msg, .. } => {
                    let Body::N2nHoCommitResponse(r) = &msg.body else {
                        panic!("{msg:?}")
                    };
                    let want = self.tokens[&token];
                    let got = r.mn_mihf_id.to_string();
                    if got != format!("{}/{}", want.0, want.1) {
                        let v = format!("request {want:?} got the answer of {got}");
                        self.violation(v);
                    }
                    (token, Outcome::Answered)
                }
                Event::Delivered { token } => (token, Outcome::Delivered),
                Event::Failed { token, .. } => (token, Outcome::Failed),
                other => panic!("A: {other:?}"),
            };
            if self.outcomes.insert(token, outcome).is_some() {
                let v = format!("{token:?} ended twice");
                self.violation(v);
            }
        }
        while let Some(e) = self.b.poll_event() {
            match e {
                Event::Request { inbound, .. } => {
                    let Some(gen) = cause.filter(|g| g.0 == inbound.tid) else {
                        panic!("a request not caused by a frame")
                    };
                    self.trace(format_args!("B delivers {}/{}", gen.0, gen.1));
                    self.owner_b.insert(inbound.tid, gen.1);
                    let n = self.deliveries.entry(gen).or_insert(0);
                    *n += 1;
                    if *n > 1 {
                        let v = format!("{gen:?} delivered to B's user {n} times");
                        self.violation(v);
                    }
                    let delay = if self.rng.per_mille(self.net.slow_answer_per_mille) {
                        self.net.slow_answer
                    } else {
                        Duration::ZERO
                    };
                    if !self.rng.per_mille(self.net.unanswered_per_mille) {
                        self.answers.push((self.now + delay, inbound, gen));
                    }
                }
                Event::Indication { msg, .. } => {
                    let tid = msg.header.tid;
                    let Some(gen) = cause.filter(|g| g.0 == tid) else {
                        panic!("an indication not caused by a frame")
                    };
                    self.owner_b.insert(tid, gen.1);
                    let n = self.deliveries.entry(gen).or_insert(0);
                    *n += 1;
                    if *n > 1 {
                        let v = format!("{gen:?} delivered to B's user {n} times");
                        self.violation(v);
                    }
                }
                Event::Expired { .. } => {}
                other => panic!("B: {other:?}"),
            }
        }
        self.max_b_records = self.max_b_records.max(self.b.open_transactions().1);
    }

    fn put(&mut self, to_b: bool, bytes: Bytes, gen: Gen) {
        let reliable = self.to_b.is_reliable();
        if !reliable && self.rng.per_mille(self.net.loss_per_mille) {
            return;
        }
        let copies = if !reliable && self.rng.per_mille(self.net.dup_per_mille) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            // TCP keeps the order: a fixed delay.
            let jitter = if reliable {
                0
            } else {
                self.rng.below(self.net.jitter.as_micros() as u64 + 1)
            };
            let expires = self.now + self.max_delay;
            let due = if self.manual {
                // Never due by itself: lost unless delivered before.
                expires
            } else if !reliable && self.rng.per_mille(self.net.slowest_per_mille) {
                expires - Duration::from_micros(1)
            } else {
                self.now + self.net.base + Duration::from_micros(jitter)
            };
            self.seq += 1;
            self.trace(format_args!(
                "{} puts {:?} of {}/{} (seq {})",
                if to_b { "A" } else { "B" },
                Header::parse(&bytes).map(|h| (h.mid, h.ack_req, h.ack_rsp)),
                gen.0,
                gen.1,
                self.seq
            ));
            self.wire.push(Frame {
                due,
                expires,
                seq: self.seq,
                to_b,
                bytes: bytes.clone(),
                gen,
            });
        }
    }

    /// Deliver one frame now, checking it against the truth first.
    fn deliver(&mut self, f: Frame) {
        if f.expires <= self.now {
            return; // a margin or more on the wire: lost
        }
        let tid = tid_of(&f.bytes);
        self.trace(format_args!(
            "deliver to {} {:?} of {}/{} (seq {})",
            if f.to_b { "B" } else { "A" },
            Header::parse(&f.bytes).map(|h| (h.mid, h.ack_req, h.ack_rsp)),
            f.gen.0,
            f.gen.1,
            f.seq
        ));
        if f.to_b {
            let holds = self.b.has_destination_record(&mihf("mihf1"), tid);
            let owner = self.owner_b.get(&tid).copied();
            if holds && owner != Some(f.gen.1) {
                let what = if is_request_frame(&f.bytes) {
                    "request"
                } else {
                    "ACK"
                };
                let v = format!(
                    "B holds the record of TID {tid} generation {owner:?} and gets a {what} of generation {}",
                    f.gen.1
                );
                self.violation(v);
            }
            // A duplicate is only ever one of the record's own copies
            // (checked above).
            let _ = self.b.handle_frame(self.now, self.from_a, f.bytes);
            self.pump(Some(f.gen));
        } else {
            let current = self.gen_a.get(&tid).copied().unwrap_or(0);
            if f.gen.1 != current {
                let v = format!(
                    "A gets a frame of TID {tid} generation {} while it uses generation {current}",
                    f.gen.1
                );
                self.violation(v);
            }
            let _ = self.a.handle_frame(self.now, self.to_b, f.bytes);
            self.pump(None);
        }
    }

    /// Move time to `t`: deliver what is due, run the timers, answer.
    fn run_to(&mut self, t: Instant) {
        loop {
            let next_frame = self.wire.iter().map(|f| f.due).min();
            let next_answer = self.answers.iter().map(|a| a.0).min();
            let next_timer = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = [next_frame, next_answer, next_timer]
                .into_iter()
                .flatten()
                .min()
                .filter(|n| *n <= t)
            else {
                break;
            };
            self.now = self.now.max(next);
            let now = self.now;
            self.a.handle_timeout(now);
            self.pump(None);
            self.b.handle_timeout(now);
            self.pump(None);
            // (The wire keeps its order: TCP is delivered first in, first
            // out.)
            let (mut due, rest): (Vec<Frame>, Vec<Frame>) = std::mem::take(&mut self.wire)
                .into_iter()
                .partition(|f| f.due <= now);
            self.wire = rest;
            due.sort_by_key(|f| (f.due, f.seq));
            for f in due {
                self.deliver(f);
            }
            let mut i = 0;
            while i < self.answers.len() {
                if self.answers[i].0 <= now {
                    let (_, inbound, gen) = self.answers.swap_remove(i);
                    let _ = self.b.send_response(now, &inbound, answer(gen));
                    self.pump(Some(gen));
                } else {
                    i += 1;
                }
            }
        }
        self.now = self.now.max(t);
        self.a.handle_timeout(self.now);
        self.pump(None);
        self.b.handle_timeout(self.now);
        self.pump(None);
    }

    /// Offer `rate` requests a second for `secs` simulated seconds.
    fn offer(&mut self, rate: u64, secs: u64) {
        let step = Duration::from_nanos(1_000_000_000 / rate);
        let end = self.now + Duration::from_secs(secs);
        let mut next = self.now;
        while next < end {
            self.run_to(next);
            let _ = self.send(false);
            next += step;
        }
    }

    /// Let every transaction end and every record go.
    fn drain(&mut self) {
        let t = self.now + Duration::from_secs(120);
        self.run_to(t);
    }

    fn check(&self) {
        assert!(
            self.violations.is_empty(),
            "violations: {:#?}",
            self.violations
        );
    }

    fn count(&self, o: Outcome) -> usize {
        self.outcomes.values().filter(|v| **v == o).count()
    }
}

/// Fast timers: span 50 + 100 = 150 ms, margin 50 ms: duplicate life and
/// quarantine 200 ms, so 4095 / 0.2 s = 20,475 transactions/s.
fn fast(id: &'static str) -> EngineConfig {
    let mut c = EngineConfig::new(mihf(id));
    c.retransmission_timeout = ms(50);
    c.retransmission_backoff = 2;
    c.max_retransmissions = 2;
    c.transaction_lifetime = ms(1000);
    c.duplicate_margin = Some(ms(50));
    c.ack_delay = ms(20);
    c
}

#[test]
fn the_fast_config_numbers() {
    let c = fast("a");
    assert_eq!(c.retransmission_span(), ms(150));
    assert_eq!(c.duplicate_life(), ms(200));
    assert_eq!(c.tid_quarantine(), ms(200));
    assert_eq!(c.tid_window(), 4095);
    assert_eq!(c.udp_rate_per_peer(), 20_475);
    // A margin longer than the span: two margins (our last copy there,
    // the stored answer back).
    let mut m = fast("a");
    m.duplicate_margin = Some(ms(200));
    assert_eq!(m.tid_quarantine(), ms(400));
    // The daemon's defaults: sends at 0, 1, 3, 7 s; margin 1 s.
    let d = EngineConfig::new(mihf("a"));
    assert_eq!(d.retransmission_span(), Duration::from_secs(7));
    assert_eq!(d.duplicate_life(), Duration::from_secs(8));
    assert_eq!(d.tid_quarantine(), Duration::from_secs(8));
    assert_eq!(d.udp_rate_per_peer(), 511);
    // The handover demo: 150 ms, backoff 2, 4 retransmissions (sends at
    // 0, 0.15, 0.45, 1.05, 2.25 s), lifetime 32 x 150 ms, margin 150 ms.
    let mut demo = EngineConfig::new(mihf("a"));
    demo.retransmission_timeout = ms(150);
    demo.max_retransmissions = 4;
    demo.transaction_lifetime = ms(32 * 150);
    assert_eq!(demo.retransmission_span(), ms(2250));
    assert_eq!(demo.tid_quarantine(), ms(2400));
    assert_eq!(demo.udp_rate_per_peer(), 1706);
    // A retransmission at or after the lifetime never happens.
    let mut short = fast("a");
    short.transaction_lifetime = ms(150);
    assert_eq!(short.retransmission_span(), ms(50));
}

#[test]
fn five_thousand_a_second_over_udp_for_ten_seconds() {
    let mut s = Sim::new(fast("mihf1"), fast("mihf2"), false, CLEAN, 1);
    s.offer(5000, 10);
    s.drain();
    s.check();
    assert_eq!(s.sent, 50_000);
    assert!(s.refused.is_empty(), "{:?}", &s.refused[..1]);
    assert_eq!(s.count(Outcome::Answered), 50_000);
    assert_eq!(s.deliveries.len(), 50_000, "each delivered once");
    assert!(s.deliveries.values().all(|n| *n == 1));
    let (a, b) = (s.a.stats(), s.b.stats());
    assert_eq!(b.duplicates, 0);
    assert_eq!(a.tid_exhausted, 0);
    // The TID space wrapped about 12 times, and B never held more than
    // about 5,000/s x 200 ms records.
    assert!(s.gen_a.values().any(|g| *g >= 12));
    assert!(s.max_b_records <= 1100, "{}", s.max_b_records);
    assert_eq!(s.a.open_transactions(), (0, 0));
    assert_eq!(s.b.open_transactions(), (0, 0));
}

#[test]
fn five_thousand_a_second_with_loss_duplication_and_delay() {
    // 10 % of frames lost, 5 % duplicated, 1-21 ms delay (overtaking each
    // other), 2 % of answers after the ACK delay (pure ACK, then a response
    // that asks for an ACK). Five sends per request (span 20 + 40 + 80 +
    // 160 = 300 ms, margin 50 ms: quarantine 350 ms, 11,700/s).
    let cfg = |id| {
        let mut c = fast(id);
        c.retransmission_timeout = ms(20);
        c.max_retransmissions = 4;
        c.ack_delay = ms(10);
        c
    };
    let net = NetModel {
        loss_per_mille: 100,
        dup_per_mille: 50,
        base: ms(1),
        jitter: ms(20),
        slow_answer_per_mille: 20,
        slow_answer: ms(15),
        ..CLEAN
    };
    let mut s = Sim::new(cfg("mihf1"), cfg("mihf2"), false, net, 7);
    assert_eq!(s.a.config().udp_rate_per_peer(), 11_700);
    s.offer(5000, 10);
    s.drain();
    s.check();
    assert_eq!(s.sent, 50_000);
    assert!(s.refused.is_empty(), "{:?}", &s.refused[..1]);
    assert_eq!(s.outcomes.len(), 50_000, "one outcome each");
    let answered = s.count(Outcome::Answered);
    let failed = s.count(Outcome::Failed);
    assert_eq!(answered + failed, 50_000);
    // Failing needs all five sends or all their answers lost.
    assert!(failed < 100, "{failed} failed");
    for (token, gen) in &s.tokens {
        let n = s.deliveries.get(gen).copied().unwrap_or(0);
        match s.outcomes[token] {
            Outcome::Answered => assert_eq!(n, 1, "{gen:?}"),
            _ => assert!(n <= 1, "{gen:?}"),
        }
    }
    let (a, b) = (s.a.stats(), s.b.stats());
    assert!(
        a.retransmissions > 5000 && b.duplicates > 5000,
        "{a:?} {b:?}"
    );
    assert!(b.acks_sent > 0 && b.retransmissions > 0, "{b:?}");
    assert_eq!(s.a.open_transactions(), (0, 0));
    assert_eq!(s.b.open_transactions(), (0, 0));
}

/// The worst the model allows, at the edge of every quarantine: a few TIDs
/// only, a new request the moment one comes free, and frames that are
/// lost, duplicated, and either fast or as slow as the margin allows (so a
/// copy arrives long after its twin); answers at once, late (pure ACK
/// first) or never. Spans shorter and longer than the margin, and no ACK
/// procedure at all (`ack_requests` off: sent once, the network may still
/// duplicate).
#[test]
fn tids_reused_at_the_edge_of_their_quarantine_under_the_worst_network() {
    for (retx, ack_requests, seed) in [
        (0u8, true, 21u64),
        (1, true, 22),
        (3, true, 23),
        (2, false, 24),
    ] {
        let cfg = |id| {
            // Frames take up to 20 ms, a round trip is shorter than the
            // 50 ms retransmission timeout.
            let mut c = fast(id);
            c.retransmission_timeout = ms(50);
            c.max_retransmissions = retx;
            c.transaction_lifetime = ms(400);
            c.duplicate_margin = Some(ms(20));
            c.ack_delay = ms(10);
            c.max_transactions_per_peer = 64;
            c.ack_requests = ack_requests;
            c
        };
        let net = NetModel {
            loss_per_mille: 100,
            dup_per_mille: 300,
            base: Duration::from_micros(500),
            jitter: Duration::ZERO,
            slow_answer_per_mille: 200,
            slow_answer: ms(15),
            slowest_per_mille: 500,
            unanswered_per_mille: 50,
        };
        let mut s = Sim::new(cfg("mihf1"), cfg("mihf2"), false, net, seed);
        let end = s.now + Duration::from_secs(20);
        let mut indication = false;
        while s.now < end {
            match s.send(indication) {
                Err(SendError::NoFreeTid {
                    free_at: Some(t), ..
                }) => s.run_to(t),
                Err(_) => {
                    let t = s.now + ms(1);
                    s.run_to(t);
                }
                Ok(_) => indication = s.rng.per_mille(200),
            }
        }
        s.drain();
        s.check();
        eprintln!(
            "retx {retx}: {} sent, {} answered, {} delivered, {} failed, {:?}",
            s.sent,
            s.count(Outcome::Answered),
            s.count(Outcome::Delivered),
            s.count(Outcome::Failed),
            s.b.stats()
        );
        assert!(s.sent > 2000, "{}", s.sent);
        let answered = s.count(Outcome::Answered);
        assert!(answered > s.sent as usize / 2, "{answered} of {}", s.sent);
        // (Indications sent without ACK-Req have no outcome.)
        assert!(!ack_requests || s.count(Outcome::Delivered) > 300);
        assert!(s.b.stats().duplicates > 300);
        assert_eq!(s.b.open_transactions(), (0, 0));
    }
}

#[test]
fn above_capacity_sends_get_back_pressure_and_never_a_wrong_answer() {
    // Default-like timers: quarantine 8 s, so 511/s; offer 5,000/s for 12 s.
    let cfg = |id| {
        let mut c = EngineConfig::new(mihf(id));
        c.ack_delay = ms(20);
        c
    };
    let mut s = Sim::new(cfg("mihf1"), cfg("mihf2"), false, CLEAN, 3);
    let start = s.now;
    s.offer(5000, 12);
    let offered = 60_000;
    // The 4095 fresh TIDs in the first 0.82 s, then nothing until the
    // first of them leaves its 8 s quarantine, then each of them once more.
    assert_eq!(s.sent, 2 * 4095);
    assert_eq!(s.refused.len() as u64, offered - s.sent);
    assert_eq!(s.a.stats().tid_exhausted, offered - s.sent);
    let first = s.refused.first().unwrap();
    let SendError::NoFreeTid { peer, free_at } = first else {
        panic!("{first:?}")
    };
    assert_eq!(peer, &mihf("mihf2"));
    // TID 1 was answered a round trip (1-5 ms) after its send at `start`.
    let free_at = free_at.expect("quarantined TIDs come free");
    assert!(free_at >= start + Duration::from_secs(8) && free_at <= start + ms(8010));
    assert!(s.refused.iter().all(|e| matches!(
        e,
        SendError::NoFreeTid {
            free_at: Some(_),
            ..
        }
    )));
    s.drain();
    s.check();
    assert_eq!(s.count(Outcome::Answered), 2 * 4095);
    assert!(s.deliveries.values().all(|n| *n == 1));
    assert_eq!(s.b.stats().duplicates, 0);
    // And the TIDs come free again.
    assert!(s.send(false).is_ok());
}

#[test]
fn over_tcp_tids_are_reused_as_soon_as_the_transaction_ends() {
    // The default timers, whose 8 s quarantine would allow 511/s over UDP:
    // over TCP the rate is not limited by TIDs.
    let cfg = |id| {
        let mut c = EngineConfig::new(mihf(id));
        c.ack_delay = ms(20);
        c
    };
    let mut s = Sim::new(cfg("mihf1"), cfg("mihf2"), true, CLEAN, 5);
    s.offer(5000, 10);
    s.drain();
    s.check();
    assert_eq!(s.sent, 50_000);
    assert!(s.refused.is_empty());
    assert_eq!(s.count(Outcome::Answered), 50_000);
    assert!(s.deliveries.values().all(|n| *n == 1));
    // Each TID is used 12 or 13 times in 10 s (least recently released
    // first).
    assert_eq!(s.gen_a.len(), 4095);
    assert!(s.gen_a.values().all(|g| (12..=13).contains(g)));
    assert!(s.b.stats().duplicates == 0 && s.a.stats().retransmissions == 0);
    assert_eq!(s.b.open_transactions(), (0, 0));
    assert_eq!(s.a.tid_usage(&mihf("mihf2")).quarantined, 0);

    // All 4095 TIDs out: the next send is refused with no release time
    // (only an ending transaction frees one); once one ends, its TID is
    // the next one handed out, at once.
    let mut a = Engine::new(fast("mihf1"));
    let mut b = Engine::new(fast("mihf2"));
    let now = Instant::now();
    let (to_b, from_a) = (
        Endpoint::Tcp(B_ADDR.parse().unwrap()),
        Endpoint::Tcp(A_ADDR.parse().unwrap()),
    );
    for _ in 0..4095 {
        a.send_request(now, to_b, commit_request()).unwrap();
    }
    let frames: Vec<_> = std::iter::from_fn(|| a.poll_transmit()).collect();
    assert_eq!(
        a.send_request(now, to_b, commit_request()),
        Err(SendError::NoFreeTid {
            peer: mihf("mihf2"),
            free_at: None
        })
    );
    b.handle_frame(now, from_a, frames[99].payload.clone())
        .unwrap();
    let Some(Event::Request { inbound, .. }) = b.poll_event() else {
        panic!()
    };
    assert_eq!(inbound.tid, 100);
    b.send_response(now, &inbound, answer((100, 1))).unwrap();
    assert!(!b.has_destination_record(&mihf("mihf1"), 100));
    let rsp = b.poll_transmit().unwrap();
    a.handle_frame(now, to_b, rsp.payload).unwrap();
    assert!(matches!(a.poll_event(), Some(Event::Response { .. })));
    let (_, tid) = a.send_request(now, to_b, commit_request()).unwrap();
    assert_eq!(tid, 100);
    assert_eq!(a.stats().tid_exhausted, 1);
}

#[test]
fn udp_tid_waits_its_quarantine_after_each_kind_of_end() {
    // One TID window so that every send needs the previous TID back.
    let cfg = |id| {
        let mut c = fast(id);
        c.max_transactions_per_peer = 1;
        c
    };
    let q = cfg("a").tid_quarantine();
    let mut s = Sim::new(cfg("mihf1"), cfg("mihf2"), false, CLEAN, 9);
    let t0 = s.now;
    s.send(false).unwrap();
    s.run_to(t0 + ms(10));
    assert_eq!(s.count(Outcome::Answered), 1);
    let Err(SendError::NoFreeTid {
        free_at: Some(at), ..
    }) = s.send(false)
    else {
        panic!()
    };
    // Answered 2-10 ms after the send: free a quarantine after the answer.
    assert!(at >= t0 + q && at <= t0 + ms(10) + q, "{:?}", at - t0);
    s.run_to(at - ms(1));
    assert!(s.send(false).is_err());
    s.run_to(at);
    s.send(false).unwrap();
    // An indication (acknowledged): the same quarantine.
    s.drain();
    let t1 = s.now;
    s.send(true).unwrap();
    s.run_to(t1 + ms(10));
    assert_eq!(s.count(Outcome::Delivered), 1);
    let Err(SendError::NoFreeTid {
        free_at: Some(at), ..
    }) = s.send(false)
    else {
        panic!()
    };
    assert!(at >= t1 + q && at <= t1 + ms(10) + q);
    // A peer that never answers: the TID waits until any late answer to
    // it is surely gone (margin + lifetime + margin after the failure).
    s.drain();
    s.net.loss_per_mille = 1000;
    let t2 = s.now;
    s.send(false).unwrap();
    s.run_to(t2 + ms(1000));
    assert_eq!(s.count(Outcome::Failed), 1);
    let Err(SendError::NoFreeTid {
        free_at: Some(at), ..
    }) = s.send(false)
    else {
        panic!()
    };
    // Failed (no ACK) at 50 + 100 + 200 = 350 ms.
    assert_eq!(at - t2, ms(350) + ms(50) + ms(1000) + ms(50));
    s.check();
}

#[test]
fn destination_records_last_the_duplicate_life_not_the_lifetime() {
    let mut s = Sim::new(fast("mihf1"), fast("mihf2"), false, CLEAN, 11);
    let t0 = s.now;
    s.send(false).unwrap();
    s.run_to(t0 + ms(10));
    assert_eq!(s.count(Outcome::Answered), 1);
    let tid = s.tokens.values().next().unwrap().0;
    let holds = |s: &Sim| s.b.has_destination_record(&mihf("mihf1"), tid);
    assert!(holds(&s));
    // The request arrived 1-5 ms after t0; its record goes 200 ms later.
    s.run_to(t0 + ms(200));
    assert!(holds(&s));
    s.run_to(t0 + ms(206));
    assert!(!holds(&s));
    // A request never answered by the user is kept for its lifetime (it
    // waits for the user), then expires.
    let mut b = Engine::new(fast("mihf2"));
    let mut m = commit_request();
    m.header.tid = 9;
    m.header.ack_req = true;
    b.handle_frame(t0, s.from_a, m.to_bytes().unwrap()).unwrap();
    b.handle_timeout(t0 + ms(999));
    assert!(b.has_destination_record(&mihf("mihf1"), 9));
    b.handle_timeout(t0 + ms(1000));
    assert!(!b.has_destination_record(&mihf("mihf1"), 9));
    // Over TCP without ACK-Req the record goes with the response, and an
    // indication leaves none.
    while b.poll_event().is_some() {}
    let t1 = t0 + ms(2000);
    let tcp = Endpoint::Tcp(A_ADDR.parse().unwrap());
    m.header.ack_req = false;
    b.handle_frame(t1, tcp, m.to_bytes().unwrap()).unwrap();
    let Some(Event::Request { inbound, .. }) = b.poll_event() else {
        panic!()
    };
    assert!(b.has_destination_record(&mihf("mihf1"), 9));
    b.send_response(t1, &inbound, answer((9, 1))).unwrap();
    assert!(!b.has_destination_record(&mihf("mihf1"), 9));
    let mut ind = event_indication();
    ind.header.tid = 10;
    b.handle_frame(t1, tcp, ind.to_bytes().unwrap()).unwrap();
    assert!(matches!(b.poll_event(), Some(Event::Indication { .. })));
    assert_eq!(b.open_transactions(), (0, 0));
}

// ------------------------------------------------------------- property

#[derive(Debug, Clone)]
enum Op {
    Request,
    Indication,
    /// A request as soon as a TID is free: if none is, move time to when
    /// one comes free (the worst case for the quarantine).
    RequestWhenFree,
    /// Deliver the frame at this index (modulo the wire) now.
    Deliver(usize),
    /// Deliver the frame at this index at the last moment before it would
    /// be lost (time moves there first): the slowest frame of the model.
    DeliverLate(usize),
    Duplicate(usize),
    Drop(usize),
    /// Answer a pending request now.
    Answer(usize),
    Advance(u64),
    /// The transport to B failed (A fails what waits on it).
    EndpointFailed,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Request),
        1 => Just(Op::Indication),
        3 => Just(Op::RequestWhenFree),
        6 => any::<usize>().prop_map(Op::Deliver),
        3 => any::<usize>().prop_map(Op::DeliverLate),
        1 => any::<usize>().prop_map(Op::Duplicate),
        2 => any::<usize>().prop_map(Op::Drop),
        3 => any::<usize>().prop_map(Op::Answer),
        3 => (0u64..400).prop_map(Op::Advance),
        1 => Just(Op::EndpointFailed),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random sends, deliveries in any order within the delay bound, loss,
    /// duplication, answers and time, with random (shared) timers and a
    /// small TID window so that TIDs are reused all the time: no TID is
    /// reused while the destination holds its record or an answer to it
    /// is on the way, nothing is delivered twice, every answer reaches its
    /// request.
    #[test]
    fn random_traffic_never_reuses_a_live_tid(
        rto in 5u64..60,
        backoff in 1u32..3,
        retx in 0u8..4,
        life_x in 2u32..8,
        margin in 1u64..60,
        window in 1usize..8,
        tcp in any::<bool>(),
        ops in prop::collection::vec(op(), 1..400),
    ) {
        let cfg = |id| {
            let mut c = EngineConfig::new(mihf(id));
            c.retransmission_timeout = ms(rto);
            c.retransmission_backoff = backoff;
            c.max_retransmissions = retx;
            c.transaction_lifetime = ms(rto) * life_x;
            c.duplicate_margin = Some(ms(margin).min(ms(rto) * life_x));
            c.ack_delay = ms(rto / 2);
            c.max_transactions_per_peer = window;
            c
        };
        let mut s = Sim::new(cfg("mihf1"), cfg("mihf2"), tcp, CLEAN, 1);
        s.manual = true;
        for op in ops {
            match op {
                Op::Request => { let _ = s.send(false); }
                Op::Indication => { let _ = s.send(true); }
                Op::RequestWhenFree => {
                    if let Err(SendError::NoFreeTid { free_at: Some(t), .. }) = s.send(false) {
                        s.run_to(t);
                        let _ = s.send(false);
                    }
                }
                Op::DeliverLate(i) if !s.wire.is_empty() => {
                    let i = if tcp { 0 } else { i % s.wire.len() };
                    let (seq, last) = (s.wire[i].seq, s.wire[i].expires - Duration::from_micros(1));
                    s.run_to(last);
                    if let Some(j) = s.wire.iter().position(|f| f.seq == seq) {
                        let f = s.wire.remove(j);
                        s.deliver(f);
                    }
                }
                Op::Deliver(i) | Op::Duplicate(i) | Op::Drop(i) if !s.wire.is_empty() => {
                    // TCP delivers in order and never loses or duplicates.
                    let i = if tcp { 0 } else { i % s.wire.len() };
                    if tcp && !matches!(op, Op::Deliver(_)) {
                        continue;
                    }
                    let f = s.wire.remove(i);
                    match op {
                        Op::Duplicate(_) => {
                            s.wire.push(f.clone());
                            s.wire.push(f);
                        }
                        Op::Deliver(_) => s.deliver(f),
                        _ => {}
                    }
                }
                Op::Answer(i) if !s.answers.is_empty() => {
                    let (_, inbound, gen) = s.answers.remove(i % s.answers.len());
                    let _ = s.b.send_response(s.now, &inbound, answer(gen));
                    s.pump(Some(gen));
                }
                Op::Advance(d) => {
                    // Time moves, timers fire when due; frames older than
                    // the margin are lost.
                    let t = s.now + ms(d);
                    s.run_to(t);
                }
                Op::EndpointFailed => {
                    let (now, to) = (s.now, s.to_b);
                    s.a.endpoint_failed(now, to);
                    s.pump(None);
                }
                _ => {}
            }
            prop_assert!(s.violations.is_empty(), "{:#?}", s.violations);
            let u = s.a.tid_usage(&mihf("mihf2"));
            prop_assert!(u.outstanding + u.quarantined <= window);
            prop_assert!(s.b.open_transactions().1 <= window);
        }
        s.wire.clear();
        s.answers.clear();
        s.manual = false;
        s.drain();
        prop_assert!(s.violations.is_empty(), "{:#?}", s.violations);
        prop_assert_eq!(s.a.open_transactions(), (0, 0));
        prop_assert_eq!(s.b.open_transactions(), (0, 0));
        prop_assert_eq!(s.a.tid_usage(&mihf("mihf2")).outstanding, 0);
    }
}
