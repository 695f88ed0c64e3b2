//! Identified transfers between the pAR and the nAR
//! (`PreviousRouter::start_identified_push`, `NewRouter::expect_transfer`
//! with a transfer id): every CTD carries the TRANSFER block with the id,
//! every CTDR the echo; messages of another transfer (an earlier attempt
//! for the same MN) are dropped and counted, a CTC cannot cancel an
//! identified push, the nAR gives up with a failure CTDR instead, and
//! nothing of an ended transfer keeps a timer. Simulated time.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cxtp::engine::{
    Config, FailReason, NarEvent, NarStats, NewRouter, ParEvent, ParStats, PreviousRouter, Transmit,
};
use cxtp::profile::echo::Echo;
use cxtp::profile::{fpt, status, Context, ProfileRegistry};
use cxtp::segment::{parse_block_ref, SegmentBlockRef};
use cxtp::wire::{Ctc, CtdrRepr, MessageRepr, MessageType, MessageView, StatusEntry};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
const PA: &str = "192.0.2.1";
const NA: &str = "192.0.2.2";

fn id(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

struct Pair {
    t0: Instant,
    par: PreviousRouter,
    nar: NewRouter,
}

impl Pair {
    fn new() -> Pair {
        Pair {
            t0: Instant::now(),
            par: PreviousRouter::new(Config::default()),
            nar: NewRouter::new(Config::default(), ProfileRegistry::with_builtins()),
        }
    }
    fn sent_by_par(&mut self) -> Vec<Bytes> {
        std::iter::from_fn(|| self.par.poll_transmit())
            .map(|Transmit { to, payload: b }| {
                assert_eq!(to, ip(NA));
                b
            })
            .collect()
    }
    fn sent_by_nar(&mut self) -> Vec<Bytes> {
        std::iter::from_fn(|| self.nar.poll_transmit())
            .map(|Transmit { to, payload: b }| {
                assert_eq!(to, ip(PA));
                b
            })
            .collect()
    }
    fn deliver_to_nar(&mut self, m: &[Bytes]) {
        for b in m {
            self.nar.handle_message(self.t0, ip(PA), b.clone());
        }
    }
    fn deliver_to_par(&mut self, m: &[Bytes]) {
        for b in m {
            self.par.handle_message(self.t0, ip(NA), b.clone());
        }
    }
}

fn ctdr_of(b: &Bytes) -> (bool, Option<Echo>, Vec<StatusEntry>) {
    match MessageView::parse(b.clone()).unwrap() {
        MessageView::Ctdr(d) => {
            let (e, rest) = Echo::split(fpt::TRANSFER_ID, d.entries().collect());
            (d.success, e, rest)
        }
        other => panic!("not a CTDR: {other:?}"),
    }
}

fn transfer_id_of(b: &Bytes) -> Option<u32> {
    let MessageView::Ctd(d) = MessageView::parse(b.clone()).unwrap() else {
        panic!("not a CTD")
    };
    let first = d.block_refs().next()?;
    match parse_block_ref(first.data) {
        Ok(SegmentBlockRef::Transfer(t)) if first.fpt == fpt::SEGMENT => Some(t.transfer_id),
        _ => None,
    }
}

fn small() -> Vec<Context> {
    vec![Context::new(
        fpt::APP_SERVICE,
        Bytes::from_static(b"\x00\x03\x00\x00\x00\x00\x00\x02svcok"),
    )]
}

#[test]
fn one_message_push_carries_the_id_and_its_verdict_the_echo() {
    let mut p = Pair::new();
    let mn = ip("10.0.0.1");
    p.nar
        .expect_transfer(mn, ip(PA), p.t0 + Duration::from_secs(1), true, Some(id(7)))
        .unwrap();
    p.par
        .start_identified_push(p.t0, mn, ip(NA), id(7), small())
        .unwrap();
    let ctd = p.sent_by_par();
    assert_eq!(ctd.len(), 1);
    assert_eq!(
        transfer_id_of(&ctd[0]),
        Some(7),
        "TRANSFER block in one message"
    );
    p.deliver_to_nar(&ctd);
    assert!(p.sent_by_nar().is_empty(), "the verdict is deferred");
    assert!(matches!(
        p.nar.poll_event(),
        Some(NarEvent::ContextsReceived { .. })
    ));
    let entries = vec![StatusEntry {
        fpt: fpt::APP_SERVICE,
        status: 0xA1,
    }];
    p.nar.acknowledge(mn, false, entries.clone()).unwrap();
    let ctdr = p.sent_by_nar();
    assert_eq!(
        ctdr_of(&ctdr[0]),
        (false, Some(Echo::verdict(7, 0)), entries.clone())
    );
    p.deliver_to_par(&ctdr);
    assert_eq!(
        p.par.poll_event(),
        Some(ParEvent::TransferComplete {
            mn,
            nar: ip(NA),
            success: false,
            entries,
        }),
        "the echo is not among the entries reported"
    );
    // Nothing of it keeps a timer.
    assert_eq!(p.par.poll_timeout(), None);
    assert_eq!(p.nar.poll_timeout(), None);
}

#[test]
fn multi_message_push_survives_reordering_and_duplicates() {
    let mut p = Pair::new();
    let mn = ip("10.0.0.2");
    let big = Bytes::from((0..200_000u32).map(|i| i as u8).collect::<Vec<u8>>());
    p.nar
        .expect_transfer(mn, ip(PA), p.t0 + Duration::from_secs(1), true, Some(id(9)))
        .unwrap();
    p.par
        .start_identified_push(
            p.t0,
            mn,
            ip(NA),
            id(9),
            vec![Context::new(0xFF42, big.clone())],
        )
        .unwrap();
    let mut ctds = p.sent_by_par();
    assert_eq!(ctds.len(), 4);
    assert!(ctds.iter().all(|m| transfer_id_of(m) == Some(9)));
    // Reversed, every message twice.
    ctds.reverse();
    let twice: Vec<Bytes> = ctds.iter().flat_map(|m| [m.clone(), m.clone()]).collect();
    p.deliver_to_nar(&twice);
    assert_eq!(p.nar.stats().ctd_duplicate, 4, "copies get no CTDR");
    let ctdrs = p.sent_by_nar();
    assert_eq!(ctdrs.len(), 3, "one per intermediate message");
    let Some(NarEvent::ContextsReceived { contexts, .. }) = p.nar.poll_event() else {
        panic!()
    };
    assert_eq!(contexts[0].data, big);
    // The intermediate CTDRs, each twice, then the verdict: the pAR
    // finishes once, on the verdict.
    let twice: Vec<Bytes> = ctdrs.iter().flat_map(|m| [m.clone(), m.clone()]).collect();
    p.deliver_to_par(&twice);
    assert_eq!(p.par.stats().ctdr_duplicate, 3);
    assert_eq!(p.par.poll_event(), None);
    p.nar.acknowledge(mn, true, vec![]).unwrap();
    let verdict = p.sent_by_nar();
    assert_eq!(
        ctdr_of(&verdict[0]),
        (true, Some(Echo::verdict(9, 0)), vec![])
    );
    p.deliver_to_par(&verdict);
    assert!(matches!(
        p.par.poll_event(),
        Some(ParEvent::TransferComplete { success: true, .. })
    ));
    assert_eq!(p.par.poll_timeout(), None);
    assert_eq!(p.nar.poll_timeout(), None);
}

#[test]
fn messages_of_another_transfer_are_dropped_and_counted() {
    let mut p = Pair::new();
    let mn = ip("10.0.0.3");
    // Attempt 1's CTDs (one, and several) are on their way.
    let mut old = PreviousRouter::new(Config::default());
    old.start_identified_push(p.t0, mn, ip(NA), id(1), small())
        .unwrap();
    old.abort(mn);
    old.start_identified_push(
        p.t0,
        mn,
        ip(NA),
        id(1),
        vec![Context::new(0xFF42, Bytes::from(vec![1u8; 150_000]))],
    )
    .unwrap();
    let stale: Vec<Bytes> = std::iter::from_fn(|| old.poll_transmit())
        .map(|m| m.payload)
        .collect();
    let mut plain = PreviousRouter::new(Config::default());
    plain.start_push(p.t0, mn, ip(NA), small()).unwrap();
    let no_id: Vec<Bytes> = std::iter::from_fn(|| plain.poll_transmit())
        .map(|m| m.payload)
        .collect();
    // The nAR expects attempt 2: all of them are dropped before
    // reassembly, with no CTDR, and attempt 2 still goes through.
    p.nar
        .expect_transfer(mn, ip(PA), p.t0 + Duration::from_secs(1), true, Some(id(2)))
        .unwrap();
    p.deliver_to_nar(&stale);
    p.deliver_to_nar(&no_id);
    // From another router, with the right id.
    p.par
        .start_identified_push(p.t0, mn, ip(NA), id(2), small())
        .unwrap();
    let ctd = p.sent_by_par();
    p.nar.handle_message(p.t0, ip("192.0.2.99"), ctd[0].clone());
    assert_eq!(
        p.nar.stats(),
        NarStats {
            ctd_stale: stale.len() as u64 + 2,
            ctd_duplicate: 0
        }
    );
    assert!(p.sent_by_nar().is_empty());
    assert_eq!(p.nar.poll_event(), None);
    p.deliver_to_nar(&ctd);
    assert!(matches!(
        p.nar.poll_event(),
        Some(NarEvent::ContextsReceived { .. })
    ));
    // At the pAR: CTDRs echoing attempt 1, without an echo, and a CTC
    // are dropped; the verdict of attempt 2 ends the push.
    let bad = [
        MessageRepr::Ctdr(CtdrRepr {
            success: true,
            mn_addr: mn,
            entries: Echo::verdict(1, 0).entries(fpt::TRANSFER_ID).to_vec(),
        }),
        MessageRepr::Ctdr(CtdrRepr {
            success: true,
            mn_addr: mn,
            entries: vec![],
        }),
        MessageRepr::Ctc(Ctc { mn_addr: mn }),
        MessageRepr::Ctdr(CtdrRepr {
            success: false,
            mn_addr: mn,
            entries: Echo::give_up(1).entries(fpt::TRANSFER_ID).to_vec(),
        }),
    ]
    .map(|m| m.to_bytes().unwrap());
    p.deliver_to_par(&bad);
    assert_eq!(
        p.par.stats(),
        ParStats {
            ctdr_stale: 3,
            ctdr_duplicate: 0,
            ctc_ignored: 1
        }
    );
    assert_eq!(p.par.poll_event(), None);
    p.nar.acknowledge(mn, true, vec![]).unwrap();
    let verdict = p.sent_by_nar();
    p.deliver_to_par(&verdict);
    assert!(matches!(
        p.par.poll_event(),
        Some(ParEvent::TransferComplete { success: true, .. })
    ));
}

#[test]
fn the_nar_gives_up_with_a_failure_ctdr_not_a_ctc() {
    let mut p = Pair::new();
    let mn = ip("10.0.0.4");
    // At its deadline.
    p.nar
        .expect_transfer(
            mn,
            ip(PA),
            p.t0 + Duration::from_millis(50),
            true,
            Some(id(3)),
        )
        .unwrap();
    p.par
        .start_identified_push(p.t0, mn, ip(NA), id(3), small())
        .unwrap();
    let _lost = p.sent_by_par();
    p.nar.handle_timeout(p.t0 + Duration::from_millis(50));
    assert!(matches!(
        p.nar.poll_event(),
        Some(NarEvent::TransferFailed {
            reason: FailReason::Timeout,
            ..
        })
    ));
    let g = p.sent_by_nar();
    assert_eq!(g.len(), 1);
    assert_eq!(
        ctdr_of(&g[0]),
        (
            false,
            Some(Echo::give_up(3)),
            vec![StatusEntry {
                fpt: 0,
                status: status::TIMEOUT
            }]
        )
    );
    p.deliver_to_par(&g);
    assert_eq!(
        p.par.poll_event(),
        Some(ParEvent::TransferFailed {
            mn,
            nar: ip(NA),
            reason: FailReason::Cancelled
        })
    );
    assert_eq!(p.par.poll_timeout(), None);
    assert_eq!(p.nar.poll_timeout(), None);
    // On cancel, before anything came, and after the transfer completed
    // (its verdict deferred): a failure CTDR with the echo each time.
    p.nar
        .expect_transfer(mn, ip(PA), p.t0 + Duration::from_secs(1), true, Some(id(4)))
        .unwrap();
    assert!(p.nar.cancel(p.t0, mn));
    assert_eq!(ctdr_of(&p.sent_by_nar()[0]).1, Some(Echo::give_up(4)));
    p.nar
        .expect_transfer(mn, ip(PA), p.t0 + Duration::from_secs(1), true, Some(id(5)))
        .unwrap();
    p.par
        .start_identified_push(p.t0, mn, ip(NA), id(5), small())
        .unwrap();
    let ctd = p.sent_by_par();
    p.deliver_to_nar(&ctd);
    while p.nar.poll_event().is_some() {}
    p.nar.cancel(p.t0, mn);
    let v = p.sent_by_nar();
    assert!(!ctdr_of(&v[0]).0);
    assert_eq!(ctdr_of(&v[0]).1, Some(Echo::verdict(5, 0)));
    p.deliver_to_par(&v);
    assert!(matches!(
        p.par.poll_event(),
        Some(ParEvent::TransferComplete { success: false, .. })
    ));
    assert_eq!(p.nar.poll_timeout(), None);
}

#[test]
fn abort_forgets_everything_with_its_timers() {
    let mut p = Pair::new();
    let mn = ip("10.0.0.5");
    p.nar
        .expect_transfer(mn, ip(PA), p.t0 + Duration::from_secs(1), true, Some(id(6)))
        .unwrap();
    p.par
        .start_identified_push(
            p.t0,
            mn,
            ip(NA),
            id(6),
            vec![Context::new(0xFF42, Bytes::from(vec![1u8; 150_000]))],
        )
        .unwrap();
    let ctds = p.sent_by_par();
    p.deliver_to_nar(&ctds[..1]);
    assert!(p.par.poll_timeout().is_some() && p.nar.poll_timeout().is_some());
    assert!(p.par.abort(mn));
    assert!(p.nar.abort(mn));
    assert!(!p.nar.abort(mn));
    assert_eq!(p.par.poll_timeout(), None);
    assert_eq!(p.nar.poll_timeout(), None);
    assert!(!p.par.is_busy(&mn) && !p.nar.is_busy(&mn));
}

#[test]
fn plain_push_keeps_rfc4067_behaviour() {
    let mut p = Pair::new();
    let mn = ip("10.0.0.6");
    // No TRANSFER block in one message, CTDRs without an echo, FIFO.
    p.nar
        .expect_transfer(mn, ip(PA), p.t0 + Duration::from_secs(1), false, None)
        .unwrap();
    p.par.start_push(p.t0, mn, ip(NA), small()).unwrap();
    let ctd = p.sent_by_par();
    assert_eq!(transfer_id_of(&ctd[0]), None);
    p.deliver_to_nar(&ctd);
    let ctdr = p.sent_by_nar();
    assert_eq!(ctdr_of(&ctdr[0]), (true, None, vec![]));
    p.deliver_to_par(&ctdr);
    assert!(matches!(
        p.par.poll_event(),
        Some(ParEvent::TransferComplete { success: true, .. })
    ));
    // A CTC cancels a plain push; a plain nAR gives up with a CTC.
    p.par.start_push(p.t0, mn, ip(NA), small()).unwrap();
    let _ = p.sent_by_par();
    let ctc = MessageRepr::Ctc(Ctc { mn_addr: mn }).to_bytes().unwrap();
    p.deliver_to_par(&[ctc]);
    assert!(matches!(
        p.par.poll_event(),
        Some(ParEvent::TransferFailed {
            reason: FailReason::Cancelled,
            ..
        })
    ));
    p.nar
        .expect_transfer(mn, ip(PA), p.t0 + Duration::from_millis(5), true, None)
        .unwrap();
    p.nar.handle_timeout(p.t0 + Duration::from_millis(5));
    let out = p.sent_by_nar();
    assert_eq!(
        MessageView::parse(out[0].clone()).unwrap().message_type(),
        MessageType::Ctc
    );
    assert_eq!(p.par.stats(), ParStats::default());
    assert_eq!(p.nar.stats(), NarStats::default());
}
