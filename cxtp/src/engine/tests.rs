//! Scenario tests: the three engines on a simulated network with latency,
//! loss, duplication and reordering, driven by simulated time.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::profile::{fpt, status, Context, ProfileRegistry};
use crate::token::AuthKey;
use crate::wire::{CtarRepr, MessageType, MessageView, RequestBlock, StatusEntry, Token};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
fn mn_prev() -> IpAddr {
    ip("2001:db8:1::10")
}
fn mn_new() -> IpAddr {
    ip("2001:db8:2::10")
}
fn par_addr() -> IpAddr {
    ip("2001:db8:1::1")
}
fn nar_addr() -> IpAddr {
    ip("2001:db8:2::1")
}
fn key() -> AuthKey {
    AuthKey::new(&[0x42; 20])
}

type Filter = Box<dyn FnMut(usize, IpAddr, IpAddr, &Bytes) -> Action>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Action {
    Deliver,
    Drop,
    Duplicate,
    /// Deliver with this extra delay (reordering).
    Delay(Duration),
}

struct Sim {
    t0: Instant,
    now: Instant,
    mn: MobileNode,
    par: PreviousRouter,
    nar: NewRouter,
    wire: Vec<(Instant, IpAddr, IpAddr, Bytes)>,
    latency: Duration,
    filter: Filter,
    sent: usize,
    log: Vec<(IpAddr, IpAddr, MessageType)>,
    log_t: Vec<Duration>,
    par_events: Vec<ParEvent>,
    nar_events: Vec<NarEvent>,
    mn_events: Vec<MnEvent>,
    contexts: Vec<Context>,
}

impl Sim {
    fn new(cfg: Config) -> Self {
        let t0 = Instant::now();
        let mut par = PreviousRouter::new(cfg.clone());
        par.set_key(mn_prev(), key());
        Sim {
            t0,
            now: t0,
            mn: MobileNode::new(),
            par,
            nar: NewRouter::new(cfg, ProfileRegistry::with_builtins()),
            wire: Vec::new(),
            latency: Duration::from_millis(5),
            filter: Box::new(|_, _, _, _| Action::Deliver),
            sent: 0,
            log: Vec::new(),
            log_t: Vec::new(),
            par_events: Vec::new(),
            nar_events: Vec::new(),
            mn_events: Vec::new(),
            contexts: vec![
                Context::new(
                    fpt::APP_SERVICE,
                    Bytes::from_static(b"\x00\x03\x00\x00\x00\x00\x00\x02svcok"),
                ),
                Context::new(fpt::IPV6_MULTICAST_LISTENER, {
                    let mut v = vec![0x20, 1, 0xd, 0xb8, 0, 2, 0, 0];
                    v.extend_from_slice(
                        &ip("ff05::1:3")
                            .to_string()
                            .parse::<std::net::Ipv6Addr>()
                            .unwrap()
                            .octets(),
                    );
                    Bytes::from(v)
                }),
            ],
        }
    }

    fn ctar(&self, seq: u32, ar: IpAddr, k: &AuthKey, requests: Vec<RequestBlock>) -> CtarRepr {
        let mut c = CtarRepr {
            ack: true,
            mn_addr: mn_prev(),
            ar_addr: ar,
            seq,
            token: Token::ZERO,
            requests,
        };
        c.sign(k);
        c
    }

    fn collect(&mut self) {
        while let Some(e) = self.par.poll_event() {
            if let ParEvent::ContextsRequested { mn, .. } = &e {
                self.par
                    .provide_contexts(self.now, *mn, self.contexts.clone())
                    .unwrap();
            }
            self.par_events.push(e);
        }
        while let Some(e) = self.nar.poll_event() {
            self.nar_events.push(e);
        }
        while let Some(e) = self.mn.poll_event() {
            self.mn_events.push(e);
        }
        let mut out = Vec::new();
        while let Some(Transmit { to, payload: b }) = self.mn.poll_transmit() {
            out.push((
                if to == par_addr() {
                    mn_prev()
                } else {
                    mn_new()
                },
                to,
                b,
            ));
        }
        while let Some(Transmit { to, payload: b }) = self.par.poll_transmit() {
            out.push((par_addr(), to, b));
        }
        while let Some(Transmit { to, payload: b }) = self.nar.poll_transmit() {
            out.push((nar_addr(), to, b));
        }
        for (from, to, b) in out {
            let n = self.sent;
            self.sent += 1;
            let t = MessageView::parse(b.clone())
                .map(|m| m.message_type())
                .expect("engines emit valid messages");
            self.log.push((from, to, t));
            self.log_t.push(self.now - self.t0);
            let at = self.now + self.latency;
            match (self.filter)(n, from, to, &b) {
                Action::Deliver => self.wire.push((at, from, to, b)),
                Action::Drop => {}
                Action::Duplicate => {
                    self.wire.push((at, from, to, b.clone()));
                    self.wire.push((at + Duration::from_millis(1), from, to, b));
                }
                Action::Delay(d) => self.wire.push((at + d, from, to, b)),
            }
        }
    }

    fn deliver(&mut self, from: IpAddr, to: IpAddr, b: Bytes) {
        if to == par_addr() {
            self.par.handle_message(self.now, from, b);
        } else if to == nar_addr() {
            self.nar.handle_message(self.now, from, b);
        } else {
            self.mn.handle_message(self.now, from, b);
        }
    }

    /// Run the network until `dur` after start (or nothing is left to do).
    fn run_until(&mut self, dur: Duration) {
        let end = self.t0 + dur;
        loop {
            self.collect();
            let next_pkt = self.wire.iter().map(|w| w.0).min();
            let next_timer = [
                self.mn.poll_timeout(),
                self.par.poll_timeout(),
                self.nar.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            let next = match (next_pkt, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(x) => x,
                    None => break,
                },
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            if next_pkt == Some(next) {
                // Deliver everything due now, in send order.
                let mut due = Vec::new();
                self.wire.retain(|w| {
                    if w.0 <= next {
                        due.push(w.clone());
                        false
                    } else {
                        true
                    }
                });
                for (_, from, to, b) in due {
                    self.deliver(from, to, b);
                }
            } else {
                self.mn.handle_timeout(self.now);
                self.par.handle_timeout(self.now);
                self.nar.handle_timeout(self.now);
            }
        }
        self.now = self.now.max(end);
    }

    fn types(&self) -> Vec<MessageType> {
        self.log.iter().map(|l| l.2).collect()
    }
    fn installed(&self) -> Vec<&NarEvent> {
        self.nar_events
            .iter()
            .filter(|e| matches!(e, NarEvent::ContextsReceived { .. }))
            .collect()
    }
    fn at(&mut self, ms: u64) {
        self.run_until(Duration::from_millis(ms));
    }
}

use MessageType::*;

#[test]
fn predictive_network_initiated() {
    let mut s = Sim::new(Config::default());
    let ctx = s.contexts.clone();
    s.par
        .start_predictive(s.now, mn_prev(), nar_addr(), None, ctx.clone())
        .unwrap();
    assert!(!s.par.has_key(&mn_prev()), "key is used once");
    s.at(50);
    // PCTD delivered, CTDR back, pAR done.
    assert_eq!(s.types(), vec![Pctd, Ctdr]);
    assert!(matches!(
        &s.par_events[..],
        [ParEvent::TransferComplete { success: true, .. }]
    ));
    assert!(
        s.installed().is_empty(),
        "nothing installed before the CTAR is verified"
    );
    // The MN attaches and sends its CTAR to nAR.
    let c = s.ctar(0xabcd, par_addr(), &key(), vec![]);
    s.mn.send_ctar(s.now, nar_addr(), c).unwrap();
    s.at(100);
    assert_eq!(s.types(), vec![Pctd, Ctdr, Ctar, Ctaa]);
    match s.installed()[..] {
        [NarEvent::ContextsReceived {
            mn,
            par,
            contexts,
            entries,
        }] => {
            assert_eq!((*mn, *par), (mn_prev(), par_addr()));
            assert_eq!(contexts.len(), 2);
            assert!(entries.is_empty());
        }
        _ => panic!("{:?}", s.nar_events),
    }
    assert_eq!(
        s.mn_events,
        vec![MnEvent::Acknowledged {
            from: nar_addr(),
            entries: vec![]
        }]
    );
    // No retransmission after the CTAA.
    s.at(20_000);
    assert_eq!(s.types().len(), 4);
}

#[test]
fn predictive_with_forged_ctar_is_rejected() {
    let mut s = Sim::new(Config::default());
    s.par
        .start_predictive(s.now, mn_prev(), nar_addr(), None, s.contexts.clone())
        .unwrap();
    s.at(50);
    let c = s.ctar(1, par_addr(), &AuthKey::new(&[0x41; 20]), vec![]);
    s.mn.send_ctar(s.now, nar_addr(), c).unwrap();
    s.at(100);
    assert!(s.installed().is_empty());
    assert!(s
        .nar_events
        .iter()
        .any(|e| matches!(e, NarEvent::AuthFailed { .. })));
    match &s.mn_events[..] {
        [MnEvent::Acknowledged { entries, .. }] => {
            assert!(entries.iter().all(|e| e.status == status::UNAUTHORIZED));
            assert_eq!(entries.len(), 2);
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn mn_assisted_predictive_with_lost_pctd_is_resent_on_ct_req() {
    let mut s = Sim::new(Config {
        cache_time: Duration::from_secs(1),
        ..Config::default()
    });
    // Drop the first PCTD.
    s.filter = Box::new(|_, _, _, b| {
        if b[0] == 0x24 && b[4..8] == [0; 4] {
            Action::Drop
        } else {
            Action::Deliver
        }
    });
    // MN → pAR CTAR naming the nAR.
    let c = s.ctar(0x5151, nar_addr(), &key(), vec![]);
    s.mn.send_ctar(s.now, par_addr(), c).unwrap();
    s.at(20);
    assert_eq!(s.types(), vec![Ctar, Pctd]);
    // MN moves and sends the same sequence number to nAR; nAR has nothing,
    // asks pAR with a CT-Req carrying the token; pAR resends from its cache.
    let c = s.ctar(0x5151, par_addr(), &key(), vec![]);
    s.mn.send_ctar(s.now, nar_addr(), c).unwrap();
    s.at(80);
    assert_eq!(
        s.types(),
        vec![Ctar, Pctd, Ctar, CtReq, Pctd, Ctdr, Ctaa, Ctaa]
    );
    assert_eq!(s.installed().len(), 1);
    assert!(s
        .par_events
        .iter()
        .any(|e| matches!(e, ParEvent::TransferComplete { success: true, .. })));
    // Elapsed Time on the resend is non-zero (ms since the first send).
    let resent = s.log.iter().filter(|l| l.2 == Pctd).count();
    assert_eq!(resent, 2);
}

#[test]
fn reactive_network_triggered_zero_token() {
    let mut s = Sim::new(Config::default());
    s.nar
        .start_reactive(s.now, mn_prev(), par_addr(), vec![])
        .unwrap();
    s.at(50);
    // Zero-token CT-Req → PCTD with key (pAR cannot verify) → CTDR.
    assert_eq!(s.types(), vec![CtReq, Pctd, Ctdr]);
    assert!(matches!(
        s.par_events[0],
        ParEvent::ContextsRequested { with_key: true, .. }
    ));
    assert!(s.installed().is_empty());
    let c = s.ctar(9, par_addr(), &key(), vec![]);
    s.mn.send_ctar(s.now, nar_addr(), c).unwrap();
    s.at(100);
    assert_eq!(s.installed().len(), 1);
    assert_eq!(s.types().last(), Some(&Ctaa));
}

#[test]
fn mobile_controlled_reactive() {
    let mut s = Sim::new(Config::default());
    let c = s.ctar(
        77,
        par_addr(),
        &key(),
        vec![RequestBlock::new(fpt::APP_SERVICE)],
    );
    s.mn.send_ctar(s.now, nar_addr(), c).unwrap();
    s.at(100);
    assert_eq!(s.types(), vec![Ctar, CtReq, Ctd, Ctdr, Ctaa]);
    match &s.par_events[0] {
        ParEvent::ContextsRequested {
            requests, with_key, ..
        } => {
            assert_eq!(requests, &vec![RequestBlock::new(fpt::APP_SERVICE)]);
            assert!(!with_key);
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(s.installed().len(), 1);
}

#[test]
fn mobile_controlled_with_bad_token_fails_and_nar_cancels() {
    let mut s = Sim::new(Config::default());
    let c = s.ctar(77, par_addr(), &AuthKey::new(b"wrong key"), vec![]);
    s.mn.send_ctar(s.now, nar_addr(), c).unwrap();
    s.at(1000);
    assert!(s
        .par_events
        .iter()
        .any(|e| matches!(e, ParEvent::AuthFailed { .. })));
    // nAR waited CT_MAX_TRANSFER_TIME, then cancelled at pAR and told the MN.
    assert_eq!(s.types(), vec![Ctar, CtReq, Ctc, Ctaa]);
    assert!(s.nar_events.iter().any(|e| matches!(
        e,
        NarEvent::TransferFailed {
            reason: FailReason::Timeout,
            ..
        }
    )));
    assert_eq!(
        s.mn_events,
        vec![MnEvent::Acknowledged {
            from: nar_addr(),
            entries: vec![StatusEntry {
                fpt: 0,
                status: status::TIMEOUT
            }]
        }]
    );
}

#[test]
fn ctc_cancels_the_transfer_at_par() {
    let mut s = Sim::new(Config::default());
    s.latency = Duration::from_millis(30);
    s.par
        .start_predictive(s.now, mn_prev(), nar_addr(), None, s.contexts.clone())
        .unwrap();
    s.nar
        .start_reactive(s.now, ip("2001:db8:1::99"), par_addr(), vec![])
        .unwrap_or(());
    s.at(10);
    // nAR gives up on the MN's transfer before the PCTD lands.
    s.nar.handle_message(s.now, par_addr(), Bytes::new()); // malformed → event, no panic
    assert!(s.nar.is_busy(&ip("2001:db8:1::99")));
    s.nar.cancel(s.now, ip("2001:db8:1::99"));
    let ctc = crate::wire::MessageRepr::Ctc(crate::wire::Ctc { mn_addr: mn_prev() })
        .to_bytes()
        .unwrap();
    s.par.handle_message(s.now, nar_addr(), ctc);
    s.at(200);
    assert!(s
        .par_events
        .iter()
        .any(|e| matches!(e, ParEvent::TransferFailed { reason: FailReason::Cancelled, mn, .. } if *mn == mn_prev())));
    assert!(!s.par.is_busy(&mn_prev()));
    assert!(s
        .nar_events
        .iter()
        .any(|e| matches!(e, NarEvent::Malformed { .. })));
}

#[test]
fn lost_ctaa_makes_mn_retransmit_and_ar_answers_again() {
    let mut s = Sim::new(Config::default());
    // Drop the first CTAA only.
    let mut dropped = false;
    s.filter = Box::new(move |_, _, _, b| {
        if b[0] == 0x22 && !dropped {
            dropped = true;
            Action::Drop
        } else {
            Action::Deliver
        }
    });
    let c = s.ctar(5, par_addr(), &key(), vec![]);
    s.mn.send_ctar(s.now, nar_addr(), c).unwrap();
    s.at(3000);
    // CTAR, CT-Req, CTD, CTDR, CTAA(lost); at 2 s CTAR again (dup) → CTAA.
    assert_eq!(s.types(), vec![Ctar, CtReq, Ctd, Ctdr, Ctaa, Ctar, Ctaa]);
    assert_eq!(
        s.installed().len(),
        1,
        "the duplicate CTAR did not start a second operation"
    );
    assert_eq!(s.mn_events.len(), 1);
}

#[test]
fn ctar_retransmission_schedule_without_any_answer() {
    let mut s = Sim::new(Config::default());
    s.filter = Box::new(|_, _, to, _| {
        if to == nar_addr() {
            Action::Drop
        } else {
            Action::Deliver
        }
    });
    let c = s.ctar(5, par_addr(), &key(), vec![]);
    s.mn.send_ctar(s.now, nar_addr(), c).unwrap();
    s.at(60_000);
    assert_eq!(s.types(), vec![Ctar, Ctar, Ctar, Ctar]);
    assert_eq!(s.log_t, [0, 2, 6, 14].map(Duration::from_secs));
    assert!(matches!(s.mn_events[..], [MnEvent::GaveUp { seq: 5, .. }]));
}

#[test]
fn ctar_rate_limit() {
    let mut s = Sim::new(Config::default());
    for i in 0..25u16 {
        let mut c = s.ctar(i as u32, par_addr(), &key(), vec![]);
        c.mn_addr = IpAddr::V6(std::net::Ipv6Addr::new(
            0x2001,
            0xdb8,
            1,
            0,
            0,
            0,
            0,
            0x100 + i,
        ));
        let b = crate::wire::MessageRepr::Ctar(c).to_bytes().unwrap();
        s.nar.handle_message(s.now, mn_new(), b);
    }
    let mut reqs = 0;
    while let Some(Transmit { payload: b, .. }) = s.nar.poll_transmit() {
        assert_eq!(b[0], 0x27);
        reqs += 1;
    }
    assert_eq!(reqs, CT_REQUEST_RATE as usize);
    // A second later the bucket has refilled.
    let later = s.now + Duration::from_secs(1);
    let mut c = s.ctar(999, par_addr(), &key(), vec![]);
    c.mn_addr = ip("2001:db8:1::999");
    s.nar.handle_message(
        later,
        mn_new(),
        crate::wire::MessageRepr::Ctar(c).to_bytes().unwrap(),
    );
    assert!(s.nar.poll_transmit().is_some());
}

#[test]
fn one_operation_per_mn_and_duplicate_ct_req_suppressed() {
    let mut s = Sim::new(Config::default());
    s.par
        .start_predictive(s.now, mn_prev(), nar_addr(), None, s.contexts.clone())
        .unwrap();
    s.par.set_key(mn_prev(), key());
    assert_eq!(
        s.par
            .start_predictive(s.now, mn_prev(), nar_addr(), None, vec![]),
        Err(EngineError::Busy(mn_prev()))
    );
    assert_eq!(
        s.nar.start_reactive(s.now, mn_prev(), par_addr(), vec![]),
        Ok(())
    );
    assert_eq!(
        s.nar.start_reactive(s.now, mn_prev(), par_addr(), vec![]),
        Err(EngineError::Busy(mn_prev()))
    );
    // Duplicate CT-Req (same seq, same MN) at a fresh pAR is processed once.
    let mut par = PreviousRouter::new(Config::default());
    par.set_key(mn_prev(), key());
    let req = crate::wire::MessageRepr::CtReq(crate::wire::CtReqRepr {
        mn_addr: mn_prev(),
        seq: 3,
        token: Token::ZERO,
        requests: vec![],
    })
    .to_bytes()
    .unwrap();
    par.handle_message(s.now, nar_addr(), req.clone());
    par.handle_message(s.now, nar_addr(), req);
    let mut n = 0;
    while let Some(e) = par.poll_event() {
        assert!(matches!(e, ParEvent::ContextsRequested { .. }));
        n += 1;
    }
    assert_eq!(n, 1);
}

#[test]
fn par_times_out_without_ctdr() {
    let mut s = Sim::new(Config::default());
    s.filter = Box::new(|_, _, to, _| {
        if to == par_addr() {
            Action::Drop
        } else {
            Action::Deliver
        }
    });
    s.par
        .start_predictive(s.now, mn_prev(), nar_addr(), None, s.contexts.clone())
        .unwrap();
    s.at(199);
    assert!(s.par_events.is_empty());
    s.at(201);
    assert!(matches!(
        s.par_events[..],
        [ParEvent::TransferFailed {
            reason: FailReason::Timeout,
            ..
        }]
    ));
    assert!(!s.par.is_busy(&mn_prev()));
}

#[test]
fn held_predictive_contexts_expire_without_ctar() {
    let mut s = Sim::new(Config {
        hold_time: Duration::from_millis(500),
        ..Config::default()
    });
    s.par
        .start_predictive(s.now, mn_prev(), nar_addr(), None, s.contexts.clone())
        .unwrap();
    s.at(400);
    assert!(s.nar.is_busy(&mn_prev()));
    s.at(600);
    assert!(!s.nar.is_busy(&mn_prev()));
    assert!(s.nar_events.iter().any(|e| matches!(
        e,
        NarEvent::TransferFailed {
            reason: FailReason::Timeout,
            ..
        }
    )));
    // A CTAR after expiry starts a reactive transfer instead; the pAR has
    // discarded the key, so it cannot verify and nothing is installed.
    let c = s.ctar(8, par_addr(), &key(), vec![]);
    s.mn.send_ctar(s.now, nar_addr(), c).unwrap();
    s.at(1200);
    assert!(s.installed().is_empty());
    assert!(s
        .par_events
        .iter()
        .any(|e| matches!(e, ParEvent::AuthFailed { .. })));
}

#[test]
fn unknown_fpt_is_reported_per_fpt_in_ctdr_and_ctaa() {
    let mut s = Sim::new(Config::default());
    s.contexts
        .push(Context::new(0x7777, Bytes::from_static(b"opaque..")));
    let c = s.ctar(1, par_addr(), &key(), vec![]);
    s.mn.send_ctar(s.now, nar_addr(), c).unwrap();
    s.at(100);
    match &s.par_events[1] {
        ParEvent::TransferComplete {
            success, entries, ..
        } => {
            assert!(!success);
            assert!(entries.contains(&StatusEntry {
                fpt: 0x7777,
                status: status::UNSUPPORTED_FPT
            }));
            assert!(entries.contains(&StatusEntry {
                fpt: fpt::APP_SERVICE,
                status: status::SUCCESS
            }));
        }
        e => panic!("{e:?}"),
    }
    // Opaque context still handed to the application.
    match s.installed()[0] {
        NarEvent::ContextsReceived { contexts, .. } => {
            assert!(contexts.iter().any(|c| c.fpt == 0x7777))
        }
        _ => unreachable!(),
    }
    assert_eq!(
        s.mn_events,
        vec![MnEvent::Acknowledged {
            from: nar_addr(),
            entries: vec![StatusEntry {
                fpt: 0x7777,
                status: status::UNSUPPORTED_FPT
            }]
        }]
    );
}

#[test]
fn large_transfer_with_window_reordering_and_duplication() {
    let mut s = Sim::new(Config {
        max_transfer_time: Duration::from_secs(1),
        ..Config::default()
    });
    let tcp = crate::profile::TcpSessionContext {
        local: "[2001:db8:2::80]:443".parse().unwrap(),
        remote: "[2001:db8:9::1]:50000".parse().unwrap(),
        send_seq: 1,
        recv_seq: 2,
        mss: 1400,
        snd_wscale: 7,
        rcv_wscale: 7,
        sack: true,
        timestamps: true,
        window_scaling: true,
        timestamp: 3,
        snd_wl1: 4,
        snd_wnd: 5,
        max_window: 6,
        rcv_wnd: 7,
        rcv_wup: 8,
        unacked: Bytes::from(vec![0x33; 600_000]),
        unsent: Bytes::from(vec![0x34; 400_000]),
        recv_queue: Bytes::from(vec![0x35; 48_000]),
    };
    let big = ProfileRegistry::with_builtins().encode(&tcp).unwrap();
    s.contexts = vec![
        big.clone(),
        Context::new(
            0xFF01,
            Bytes::from_static(b"\x00\x01\x00\x00\x00\x00\x00\x00x"),
        ),
    ];
    // Reorder pAR→nAR messages (every 3rd is delayed), duplicate every 5th.
    s.filter = Box::new(|n, from, _, _| {
        if from != par_addr() {
            Action::Deliver
        } else if n % 5 == 4 {
            Action::Duplicate
        } else if n % 3 == 0 {
            Action::Delay(Duration::from_millis(7))
        } else {
            Action::Deliver
        }
    });
    let c = s.ctar(1, par_addr(), &key(), vec![]);
    s.mn.send_ctar(s.now, nar_addr(), c).unwrap();
    s.at(2000);
    let ctds = s.log.iter().filter(|l| l.2 == Ctd).count();
    assert_eq!(ctds, 17, "1 MiB in 17 messages, each sent once");
    assert!(
        s.par_events
            .iter()
            .any(|e| matches!(e, ParEvent::TransferComplete { success: true, .. })),
        "{:?}",
        s.par_events
    );
    match s.installed()[..] {
        [NarEvent::ContextsReceived {
            contexts, entries, ..
        }] => {
            assert!(entries.is_empty(), "{entries:?}");
            assert!(contexts.contains(&big));
            let c = contexts.iter().find(|c| c.fpt == fpt::TCP_SESSION).unwrap();
            use crate::profile::FeatureProfile;
            assert_eq!(
                crate::profile::TcpSessionContext::decode(None, &c.data).unwrap(),
                tcp
            );
        }
        _ => panic!("{:?}", s.nar_events),
    }
}

#[test]
fn nar_wipes_the_key_from_the_pctd_buffer() {
    use crate::segment::{encode_transfer, CtdHeader, SegmentConfig};
    use crate::wire::KeyBlockRepr;
    let h = CtdHeader {
        ack: true,
        elapsed_ms: 0,
        mn_addr: mn_prev(),
        key_block: Some(KeyBlockRepr {
            algorithm: 1,
            key: key(),
        }),
    };
    let msgs = encode_transfer(
        &SegmentConfig::default(),
        &h,
        &[Context::new(0xFF01, Bytes::from_static(b"ctx."))],
        1,
    )
    .unwrap();
    let pctd = Bytes::from(msgs[0].to_vec()); // unique buffer: scrubbed in place
    let ptr = pctd.as_ptr();
    let (scrubbed, k) = super::nar::scrub_key(pctd);
    assert_eq!(
        scrubbed.as_ptr(),
        ptr,
        "no copy when the buffer is not shared"
    );
    let (alg, k) = k.unwrap();
    assert_eq!((alg, k), (1, key()));
    assert!(
        !scrubbed.windows(20).any(|w| w == [0x42; 20]),
        "key bytes left in the buffer"
    );
    // Shared buffer: copied once, the original is untouched.
    let shared = msgs[0].clone();
    let (scrubbed, k) = super::nar::scrub_key(shared);
    assert!(k.is_some() && !scrubbed.windows(20).any(|w| w == [0x42; 20]));
    // Non-PCTD messages pass through.
    let ctc = crate::wire::MessageRepr::Ctc(crate::wire::Ctc { mn_addr: mn_prev() })
        .to_bytes()
        .unwrap();
    assert!(super::nar::scrub_key(ctc).1.is_none());
}
