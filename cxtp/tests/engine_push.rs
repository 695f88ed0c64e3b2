//! The router-to-router push (`PreviousRouter::start_push`) and the nAR's
//! expected transfer with a deferred final CTDR
//! (`NewRouter::expect_transfer` / `acknowledge`), with simulated time.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cxtp::engine::{
    Config, EngineError, FailReason, NarEvent, NewRouter, ParEvent, PreviousRouter, Transmit,
};
use cxtp::profile::{status, Context, ProfileRegistry};
use cxtp::wire::{MessageType, MessageView, StatusEntry};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Deliver everything queued between the two routers until both are quiet.
fn run(now: Instant, par: &mut PreviousRouter, nar: &mut NewRouter) -> Vec<MessageType> {
    let mut seen = Vec::new();
    loop {
        let mut moved = false;
        while let Some(Transmit { to, payload: b }) = par.poll_transmit() {
            assert_eq!(to, ip("192.0.2.2"));
            seen.push(MessageView::parse(b.clone()).unwrap().message_type());
            nar.handle_message(now, ip("192.0.2.1"), b);
            moved = true;
        }
        while let Some(Transmit { to, payload: b }) = nar.poll_transmit() {
            assert_eq!(to, ip("192.0.2.1"));
            seen.push(MessageView::parse(b.clone()).unwrap().message_type());
            par.handle_message(now, ip("192.0.2.2"), b);
            moved = true;
        }
        if !moved {
            return seen;
        }
    }
}

#[test]
fn push_with_deferred_ctdr_large_context() {
    let t0 = Instant::now();
    let (mn, pa, na) = (ip("10.0.0.7"), ip("192.0.2.1"), ip("192.0.2.2"));
    let mut par = PreviousRouter::new(Config::default());
    let mut nar = NewRouter::new(Config::default(), ProfileRegistry::with_builtins());
    nar.expect_transfer(mn, pa, t0 + Duration::from_secs(2), true, None)
        .unwrap();
    assert_eq!(
        nar.expect_transfer(mn, pa, t0 + Duration::from_secs(2), true, None),
        Err(EngineError::Busy(mn))
    );
    let big = Bytes::from(vec![7u8; 200_000]);
    par.start_push(t0, mn, na, vec![Context::new(0xFF42, big.clone())])
        .unwrap();
    let seen = run(t0, &mut par, &mut nar);
    // 4 CTDs, 3 intermediate CTDRs, the last one deferred.
    assert_eq!(
        seen.iter().filter(|t| **t == MessageType::Ctd).count(),
        4,
        "{seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|t| **t == MessageType::Ctdr).count(),
        3,
        "{seen:?}"
    );
    let Some(NarEvent::ContextsReceived {
        mn: m, contexts, ..
    }) = nar.poll_event()
    else {
        panic!("no contexts")
    };
    assert_eq!(m, mn);
    assert_eq!(contexts[0].data, big);
    assert!(par.poll_event().is_none(), "pAR finished before the CTDR");
    let entries = vec![StatusEntry {
        fpt: 0xFF42,
        status: 0xA0,
    }];
    nar.acknowledge(mn, false, entries.clone()).unwrap();
    assert_eq!(
        nar.acknowledge(mn, true, vec![]),
        Err(EngineError::NotPending(mn))
    );
    run(t0, &mut par, &mut nar);
    assert_eq!(
        par.poll_event(),
        Some(ParEvent::TransferComplete {
            mn,
            nar: na,
            success: false,
            entries
        })
    );
    assert!(!par.is_busy(&mn) && !nar.is_busy(&mn));
}

#[test]
fn unexpected_push_is_refused_and_no_ctdr_times_out() {
    let t0 = Instant::now();
    let (mn, na) = (ip("10.0.0.8"), ip("192.0.2.2"));
    let mut par = PreviousRouter::new(Config::default());
    let mut nar = NewRouter::new(Config::default(), ProfileRegistry::with_builtins());
    par.start_push(
        t0,
        mn,
        na,
        vec![Context::new(0xFF01, Bytes::from_static(b"x"))],
    )
    .unwrap();
    assert_eq!(
        par.start_push(t0, mn, na, vec![]),
        Err(EngineError::Busy(mn))
    );
    run(t0, &mut par, &mut nar);
    match par.poll_event() {
        Some(ParEvent::TransferComplete {
            success: false,
            entries,
            ..
        }) => assert_eq!(entries[0].status, status::UNAUTHORIZED),
        other => panic!("{other:?}"),
    }
    // A push nobody answers fails at CT_MAX_TRANSFER_TIME; abort forgets.
    par.start_push(t0, mn, na, vec![]).unwrap();
    let _ = par.poll_transmit();
    let due = par.poll_timeout().unwrap();
    par.handle_timeout(due);
    assert!(matches!(
        par.poll_event(),
        Some(ParEvent::TransferFailed {
            reason: FailReason::Timeout,
            ..
        })
    ));
    par.start_push(t0, mn, na, vec![]).unwrap();
    assert!(par.abort(mn));
    assert!(!par.is_busy(&mn));
    assert!(matches!(
        nar.poll_event(),
        Some(NarEvent::AuthFailed { .. })
    ));
    // An expected transfer that never comes: nAR gives up with a CTC.
    nar.expect_transfer(
        mn,
        ip("192.0.2.1"),
        t0 + Duration::from_millis(50),
        true,
        None,
    )
    .unwrap();
    nar.handle_timeout(t0 + Duration::from_millis(50));
    assert!(matches!(
        nar.poll_event(),
        Some(NarEvent::TransferFailed {
            reason: FailReason::Timeout,
            ..
        })
    ));
    let Transmit { payload: ctc, .. } = nar.poll_transmit().unwrap();
    assert_eq!(
        MessageView::parse(ctc).unwrap().message_type(),
        MessageType::Ctc
    );
}
