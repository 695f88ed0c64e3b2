//! The sans-IO X2AP trigger driven by the pycrate golden vectors, with time by hand.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mih_user::x2ap::{
    Cause, Ecgi, ForgetReason, MessageType, Phase, Plmn, TargetKey, UeKey, UnknownUeReason,
    X2Event, X2Trigger, X2TriggerConfig,
};

fn pdu(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../conformance/vectors/x2ap")
        .join(format!("{name}.json"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    hex::decode(v["hex"].as_str().unwrap()).unwrap()
}

const CONFIG: &str = r#"
    max_pending = 4
    preparation_timeout_ms = 1000
    completion_timeout_ms = 5000

    [[neighbours]]
    plmn = "001-01"
    enb_id = 0x1a2b3
    mihf_id = "enbc-b"

    [[ues]]
    ue_address = "10.45.0.7"
    ul_gtp_teid = 0x0a0b0c0d
"#;

fn trigger() -> X2Trigger {
    X2Trigger::new(toml::from_str(CONFIG).unwrap()).unwrap()
}

/// Feed one PDU and take every event it queued.
fn feed(t: &mut X2Trigger, now: Instant, bytes: &[u8]) -> Vec<X2Event> {
    t.handle_pdu(now, bytes);
    drain(t)
}

/// Pass the time and take every event it queued.
fn tick(t: &mut X2Trigger, now: Instant) -> Vec<X2Event> {
    t.handle_timeout(now);
    drain(t)
}

fn drain(t: &mut X2Trigger) -> Vec<X2Event> {
    let mut events = Vec::new();
    while let Some(e) = t.poll_event() {
        events.push(e);
    }
    events
}

fn ue_ip() -> IpAddr {
    "10.45.0.7".parse().unwrap()
}

#[test]
fn request_acknowledge_release() {
    let mut t = trigger();
    let t0 = Instant::now();
    let ev = feed(&mut t, t0, &pdu("handover_request"));
    match ev.as_slice() {
        [X2Event::HandoverPrepared(p)] => {
            assert_eq!(p.old_enb_ue_x2ap_id, 17);
            assert_eq!(p.ue_address, Some(ue_ip()));
            assert_eq!(p.target_mihf_id.as_deref(), Some("enbc-b"));
            assert_eq!(p.e_rabs.len(), 2);
            assert_eq!(p.cause.value(), "handover-desirable-for-radio-reasons");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(t.pending_phase(17), Some(Phase::Preparation));
    assert_eq!(t.poll_timeout(), Some(t0 + Duration::from_millis(1000)));

    let t1 = t0 + Duration::from_millis(200);
    let ev = feed(&mut t, t1, &pdu("handover_request_acknowledge"));
    match ev.as_slice() {
        [X2Event::HandoverTriggered(h)] => {
            assert_eq!((h.old_enb_ue_x2ap_id, h.new_enb_ue_x2ap_id), (17, 42));
            assert_eq!(h.ue_address, ue_ip());
            // Resolved by the second E-RAB's uplink TEID (the first is unknown).
            assert_eq!(h.ue_key, UeKey::GtpTeid(0x0a0b0c0d));
            assert_eq!(h.target_mihf_id, "enbc-b");
            assert_eq!(h.target_cell.cell_id, 0x1a2b301);
            assert_eq!(h.admitted_e_rabs.len(), 2);
            assert_eq!(h.mme_ue_s1ap_id, 305419896);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(t.pending_phase(17), Some(Phase::Execution));
    assert_eq!(t.poll_timeout(), Some(t1 + Duration::from_millis(5000)));
    // A repeated acknowledge does not trigger twice.
    assert!(feed(&mut t, t1, &pdu("handover_request_acknowledge")).is_empty());

    let ev = feed(
        &mut t,
        t1 + Duration::from_millis(300),
        &pdu("ue_context_release"),
    );
    match ev.as_slice() {
        [X2Event::Released(r)] => {
            assert_eq!((r.old_enb_ue_x2ap_id, r.new_enb_ue_x2ap_id), (17, 42));
            assert!(r.triggered);
            assert_eq!(r.ue_address, Some(ue_ip()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(t.pending_len(), 0);
    assert_eq!(t.poll_timeout(), None);

    let c = t.counters();
    assert_eq!(
        (c.pdus, c.prepared, c.triggered, c.released, c.malformed),
        (4, 1, 1, 1, 0)
    );
    assert_eq!(c.procedure(0, MessageType::InitiatingMessage), 1);
    assert_eq!(c.procedure(0, MessageType::SuccessfulOutcome), 2);
    assert_eq!(c.procedure(5, MessageType::InitiatingMessage), 1);
    assert_eq!(c.procedures().count(), 3);
}

#[test]
fn cancel_forgets_and_reports_the_cause() {
    let mut t = trigger();
    let now = Instant::now();
    feed(&mut t, now, &pdu("handover_request"));
    let ev = feed(&mut t, now, &pdu("handover_cancel"));
    match ev.as_slice() {
        [X2Event::Forget {
            old_enb_ue_x2ap_id: 17,
            new_enb_ue_x2ap_id: Some(42),
            triggered: false,
            reason: ForgetReason::Cancelled(c),
        }] => assert_eq!(c.to_string(), "radioNetwork:trelocprep-expiry"),
        other => panic!("{other:?}"),
    }
    assert_eq!(t.pending_len(), 0);
    assert_eq!(t.counters().forgotten, 1);
}

#[test]
fn cancel_after_trigger_says_it_was_triggered() {
    let mut t = trigger();
    let now = Instant::now();
    feed(&mut t, now, &pdu("handover_request"));
    feed(&mut t, now, &pdu("handover_request_acknowledge"));
    let ev = feed(&mut t, now, &pdu("handover_cancel"));
    assert!(matches!(
        ev.as_slice(),
        [X2Event::Forget {
            triggered: true,
            reason: ForgetReason::Cancelled(_),
            ..
        }]
    ));
}

#[test]
fn preparation_failure_of_an_unknown_ue() {
    // The failure vector is for UE 18, never prepared.
    let mut t = trigger();
    let now = Instant::now();
    feed(&mut t, now, &pdu("handover_request"));
    let ev = feed(&mut t, now, &pdu("handover_preparation_failure"));
    match ev.as_slice() {
        [X2Event::UnknownUe(u)] => {
            assert_eq!(u.old_enb_ue_x2ap_id, 18);
            assert_eq!(u.reason, UnknownUeReason::NotPending);
            assert_eq!(u.message_type, MessageType::UnsuccessfulOutcome);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(t.counters().unknown_ue, 1);
    assert_eq!(t.pending_len(), 1, "UE 17 still pending");
}

#[test]
fn preparation_failure_forgets() {
    let mut t = trigger();
    let now = Instant::now();
    // Prepare UE 18 by editing the request is not possible without an encoder;
    // instead use the UE table API and check the Forget path through a request
    // for 17 and a synthetic failure for 17 built from the vector (same encoding
    // with the UE-X2AP-ID value 18 -> 17: the last octet of the first IE).
    let mut failure = pdu("handover_preparation_failure");
    let pos = failure
        .windows(5)
        .position(|w| w == [0x00, 0x0a, 0x40, 0x02, 0x00])
        .expect("Old eNB UE X2AP ID IE");
    assert_eq!(failure[pos + 5], 18);
    failure[pos + 5] = 17;
    feed(&mut t, now, &pdu("handover_request"));
    let ev = feed(&mut t, now, &failure);
    match ev.as_slice() {
        [X2Event::Forget {
            old_enb_ue_x2ap_id: 17,
            reason: ForgetReason::PreparationFailure(c),
            ..
        }] => assert_eq!(c.value(), "no-radio-resources-available-in-target-cell"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn timeouts_in_both_phases() {
    let mut t = trigger();
    let t0 = Instant::now();
    feed(&mut t, t0, &pdu("handover_request"));
    assert!(tick(&mut t, t0 + Duration::from_millis(999)).is_empty());
    let ev = tick(&mut t, t0 + Duration::from_millis(1000));
    assert!(matches!(
        ev.as_slice(),
        [X2Event::Forget {
            reason: ForgetReason::Timeout(Phase::Preparation),
            triggered: false,
            ..
        }]
    ));
    // The late acknowledge is about an unknown UE now.
    let ev = feed(
        &mut t,
        t0 + Duration::from_secs(2),
        &pdu("handover_request_acknowledge"),
    );
    assert!(matches!(
        ev.as_slice(),
        [X2Event::UnknownUe(u)] if u.reason == UnknownUeReason::NotPending
    ));

    let t1 = t0 + Duration::from_secs(10);
    feed(&mut t, t1, &pdu("handover_request"));
    feed(&mut t, t1, &pdu("handover_request_acknowledge"));
    // handle_pdu handles due timeouts first (their events come first).
    let ev = feed(
        &mut t,
        t1 + Duration::from_secs(5),
        &pdu("x2_setup_request"),
    );
    match ev.as_slice() {
        [X2Event::Forget {
            reason: ForgetReason::Timeout(Phase::Execution),
            triggered: true,
            new_enb_ue_x2ap_id: Some(42),
            ..
        }, X2Event::Ignored {
            procedure_code: 6,
            message_type: MessageType::InitiatingMessage,
        }] => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(t.counters().timeouts, 2);
}

#[test]
fn unknown_ue_and_target_are_reported_and_counted() {
    let mut t = X2Trigger::new(X2TriggerConfig::default()).unwrap();
    let now = Instant::now();
    let ev = feed(&mut t, now, &pdu("handover_request"));
    match ev.as_slice() {
        [X2Event::HandoverPrepared(p)] => {
            assert_eq!(p.ue_address, None);
            assert_eq!(p.target_mihf_id, None);
        }
        other => panic!("{other:?}"),
    }
    let ev = feed(&mut t, now, &pdu("handover_request_acknowledge"));
    match ev.as_slice() {
        [X2Event::UnknownUe(u), X2Event::UnknownTarget(g)] => {
            assert_eq!(u.reason, UnknownUeReason::NoAddress);
            assert_eq!((g.old_enb_ue_x2ap_id, g.new_enb_ue_x2ap_id), (17, 42));
            assert_eq!(g.target_cell.cell_id, 0x1a2b301);
        }
        other => panic!("{other:?}"),
    }
    let c = t.counters();
    assert_eq!((c.unknown_ue, c.unknown_target, c.triggered), (1, 1, 0));
    // The release still closes the handover, reported as not triggered.
    let ev = feed(&mut t, now, &pdu("ue_context_release"));
    assert!(matches!(ev.as_slice(), [X2Event::Released(r)] if !r.triggered));
    // A release nobody prepared.
    let ev = feed(&mut t, now, &pdu("ue_context_release"));
    assert!(matches!(ev.as_slice(), [X2Event::UnknownUe(_)]));
    assert_eq!(t.counters().unknown_ue, 2);
}

#[test]
fn tables_changed_through_the_api_are_used_at_the_trigger() {
    let mut t = X2Trigger::new(X2TriggerConfig::default()).unwrap();
    let now = Instant::now();
    feed(&mut t, now, &pdu("handover_request"));
    let plmn = Plmn::parse("001-01").unwrap();
    t.neighbours_mut()
        .insert(
            TargetKey::Cell(Ecgi {
                plmn,
                cell_id: 0x1a2b301,
            }),
            "enbc-cell",
        )
        .unwrap();
    t.ues_mut().insert(UeKey::X2apId(17), ue_ip()).unwrap();
    let ev = feed(&mut t, now, &pdu("handover_request_acknowledge"));
    match ev.as_slice() {
        [X2Event::HandoverTriggered(h)] => {
            assert_eq!(h.target_mihf_id, "enbc-cell");
            assert_eq!(h.ue_key, UeKey::X2apId(17));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn pending_table_is_bounded() {
    let mut t = trigger(); // max_pending = 4
    let now = Instant::now();
    let request = pdu("handover_request");
    // The Old eNB UE X2AP ID is the first IE: 00 0a 00 02 00 11.
    let pos = request
        .windows(6)
        .position(|w| w == [0x00, 0x0a, 0x00, 0x02, 0x00, 0x11])
        .unwrap();
    let mut evicted = 0;
    for id in 0..10u16 {
        let mut r = request.clone();
        r[pos + 4..pos + 6].copy_from_slice(&id.to_be_bytes());
        let ev = feed(&mut t, now + Duration::from_millis(u64::from(id)), &r);
        evicted += ev
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    X2Event::Forget {
                        reason: ForgetReason::Evicted(Phase::Preparation),
                        ..
                    }
                )
            })
            .count();
        assert!(t.pending_len() <= 4);
    }
    assert_eq!(evicted, 6);
    assert_eq!(t.counters().evicted, 6);
    // The oldest were evicted: 6..=9 remain.
    assert_eq!(t.pending_phase(5), None);
    assert_eq!(t.pending_phase(6), Some(Phase::Preparation));
    // A second request for a pending UE supersedes the first.
    let mut r = request.clone();
    r[pos + 4..pos + 6].copy_from_slice(&9u16.to_be_bytes());
    let ev = feed(&mut t, now, &r);
    assert!(matches!(
        ev.first(),
        Some(X2Event::Forget {
            old_enb_ue_x2ap_id: 9,
            reason: ForgetReason::Superseded(Phase::Preparation),
            ..
        })
    ));
}

#[test]
fn malformed_and_ignored_are_counted() {
    let mut t = trigger();
    let now = Instant::now();
    for name in [
        "x2_setup_request",
        "resource_status_update",
        "sn_status_transfer",
    ] {
        let ev = feed(&mut t, now, &pdu(name));
        assert!(matches!(ev.as_slice(), [X2Event::Ignored { .. }]), "{name}");
    }
    let ev = feed(&mut t, now, &[0xff, 0xff]);
    assert!(matches!(ev.as_slice(), [X2Event::Malformed(_)]));
    let ev = feed(&mut t, now, &[]);
    assert!(matches!(ev.as_slice(), [X2Event::Malformed(_)]));
    let c = t.counters();
    assert_eq!((c.pdus, c.ignored, c.malformed), (5, 3, 2));
    assert_eq!(c.procedure(10, MessageType::InitiatingMessage), 1);
    assert_eq!(c.procedure(4, MessageType::InitiatingMessage), 1);
}

#[test]
fn config_errors_are_typed() {
    let bad: X2TriggerConfig = toml::from_str(
        r#"
        [[neighbours]]
        plmn = "1-1"
        enb_id = 1
        mihf_id = "x"
    "#,
    )
    .unwrap();
    assert!(X2Trigger::new(bad).is_err());
    assert!(toml::from_str::<X2TriggerConfig>("no_such_option = 1").is_err());
    let full: X2TriggerConfig = toml::from_str(
        r#"
        max_ues = 1
        [[ues]]
        ue_address = "10.0.0.1"
        ul_gtp_teid = 1
        old_enb_ue_x2ap_id = 2
    "#,
    )
    .unwrap();
    assert!(X2Trigger::new(full).is_err());
    // Serialises back to TOML.
    let c: X2TriggerConfig = toml::from_str(CONFIG).unwrap();
    let again: X2TriggerConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
    assert_eq!(c, again);
}

#[test]
fn unrecognised_cause_still_forgets() {
    // HandoverCancel for 17 whose Cause is radioNetwork with an extension
    // index beyond Rel-17 (the decoder reports it as Unrecognised).
    let mut cancel = pdu("handover_cancel_ext_cause");
    let v = cancel.clone();
    let pos = v
        .windows(4)
        .position(|w| w == [0x00, 0x05, 0x40, 0x02])
        .expect("Cause IE");
    // value, 2 octets: CHOICE extension bit 0, alternative 0 (2 bits), ENUMERATED
    // extension bit 1, normally-small index: 0 then 6 bits.
    let idx = 63u8; // far past the last known addition
    assert_eq!(
        cancel[pos + 4] & 0xf8,
        0x10,
        "radioNetwork, extension value"
    );
    cancel[pos + 4] = 0x10 | (idx >> 3);
    cancel[pos + 5] = (idx & 0x07) << 5;
    let mut t = trigger();
    let now = Instant::now();
    let mut request = pdu("handover_request");
    let p = request
        .windows(6)
        .position(|w| w == [0x00, 0x0a, 0x00, 0x02, 0x00, 0x11])
        .unwrap();
    request[p + 4..p + 6].copy_from_slice(&4095u16.to_be_bytes());
    feed(&mut t, now, &request);
    let ev = feed(&mut t, now, &cancel);
    assert!(
        matches!(
            ev.as_slice(),
            [X2Event::Forget {
                old_enb_ue_x2ap_id: 4095,
                reason: ForgetReason::Cancelled(Cause::Unrecognised),
                ..
            }]
        ),
        "{ev:?}"
    );
}
