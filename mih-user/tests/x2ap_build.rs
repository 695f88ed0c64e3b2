//! `mih_user::x2ap::build`: the built HandoverRequest / HandoverRequestAcknowledge
//! PDUs decode (with our decoder) to the parameters they were built from, drive the
//! X2 trigger, equal the pycrate golden vectors byte for byte when built with the
//! vectors' content, and decode with pycrate (the independent oracle) to the same
//! IE values.
//!
//! The pycrate test is skipped with a notice when `pycrate_asn1dir.X2AP` cannot be
//! imported, except under CI (`CI` set), where that is a failure
//! (`.ci/run` installs pycrate).

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use mih_user::x2ap::asn::{
    CauseMisc, CauseProtocol, CauseRadioNetwork, CauseTransport, ForbiddenInterRats,
    PreEmptionCapability, PreEmptionVulnerability,
};
use mih_user::x2ap::build::{
    self, BitRates, BuildError, CellSize, ERabParams, ForbiddenTas, GbrParams,
    HandoverRequestAcknowledgeParams, HandoverRequestParams, HandoverRestriction, SecurityParams,
    VisitedCell, MAX_BIT_RATE, MAX_CELL_ID,
};
use mih_user::x2ap::{
    decode, Cause, Criticality, ERabAdmitted, ERabToBeSetup, Ecgi, GtpTunnel, Gummei,
    HandoverRequest, HandoverRequestAcknowledge, Message, MessageType, Plmn, TransportLayerAddress,
    UeKey, X2Event, X2Trigger,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{json, Value};

fn golden(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../conformance/vectors/x2ap")
        .join(format!("{name}.json"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    hex::decode(v["hex"].as_str().unwrap()).unwrap()
}

fn plmn_001_01() -> Plmn {
    Plmn::from_mcc_mnc("001", "01").unwrap()
}

/// What our decoder should report for a request built from `p` (addresses
/// already in the decoder's canonical form).
fn expected_request(p: &HandoverRequestParams) -> HandoverRequest {
    HandoverRequest {
        old_enb_ue_x2ap_id: p.old_enb_ue_x2ap_id,
        old_enb_ue_x2ap_id_ext: p.old_enb_ue_x2ap_id_ext,
        cause: p.cause,
        target_cell: p.target,
        gummei: p.gummei,
        mme_ue_s1ap_id: p.mme_ue_s1ap_id,
        e_rabs: p
            .e_rabs
            .iter()
            .map(|e| ERabToBeSetup {
                e_rab_id: e.e_rab_id,
                qci: e.qci,
                ul_gtp_tunnel: e.ul_gtp_tunnel.clone(),
            })
            .collect(),
    }
}

fn expected_ack(p: &HandoverRequestAcknowledgeParams) -> HandoverRequestAcknowledge {
    HandoverRequestAcknowledge {
        old_enb_ue_x2ap_id: p.old_enb_ue_x2ap_id,
        new_enb_ue_x2ap_id: p.new_enb_ue_x2ap_id,
        old_enb_ue_x2ap_id_ext: p.old_enb_ue_x2ap_id_ext,
        new_enb_ue_x2ap_id_ext: p.new_enb_ue_x2ap_id_ext,
        admitted_e_rabs: p.admitted_e_rabs.clone(),
    }
}

fn decode_request(bytes: &[u8]) -> HandoverRequest {
    let pdu = decode(bytes).unwrap();
    assert_eq!(pdu.procedure_code, 0);
    assert_eq!(pdu.message_type, MessageType::InitiatingMessage);
    assert_eq!(pdu.criticality, Criticality::Reject);
    match pdu.message {
        Message::HandoverRequest(r) => r,
        other => panic!("{other:?}"),
    }
}

fn decode_ack(bytes: &[u8]) -> HandoverRequestAcknowledge {
    let pdu = decode(bytes).unwrap();
    assert_eq!(pdu.procedure_code, 0);
    assert_eq!(pdu.message_type, MessageType::SuccessfulOutcome);
    assert_eq!(pdu.criticality, Criticality::Reject);
    match pdu.message {
        Message::HandoverRequestAcknowledge(a) => a,
        other => panic!("{other:?}"),
    }
}

/// The content of the golden vector `handover_request` (see gen_vectors.py).
fn golden_request_params() -> HandoverRequestParams {
    let plmn = plmn_001_01();
    let mut p = HandoverRequestParams::new(17, plmn, 0x1a2b301);
    p.e_rabs.push(ERabParams {
        e_rab_id: 6,
        qci: 1,
        priority_level: 2,
        pre_emption_capability: PreEmptionCapability::ShallNotTriggerPreEmption,
        pre_emption_vulnerability: PreEmptionVulnerability::PreEmptable,
        gbr: Some(GbrParams {
            maximum: BitRates {
                downlink: 128_000,
                uplink: 128_000,
            },
            guaranteed: BitRates {
                downlink: 64_000,
                uplink: 64_000,
            },
        }),
        dl_forwarding: false,
        ul_gtp_tunnel: GtpTunnel {
            address: TransportLayerAddress::V6("2001:db8::10".parse().unwrap()),
            teid: 0x0a0b_0c0d,
        },
    });
    p.handover_restriction = Some(HandoverRestriction {
        serving_plmn: plmn,
        equivalent_plmns: vec![Plmn::from_mcc_mnc("001", "02").unwrap()],
        forbidden_tas: vec![ForbiddenTas {
            plmn,
            tacs: vec![7, 8],
        }],
        forbidden_inter_rats: Some(ForbiddenInterRats::Geran),
    });
    p.location_reporting = true;
    p
}

/// The content of the golden vector `handover_request_acknowledge`.
fn golden_ack_params() -> HandoverRequestAcknowledgeParams {
    let mut a = HandoverRequestAcknowledgeParams::new(17, 42);
    a.admitted_e_rabs.push(ERabAdmitted {
        e_rab_id: 6,
        ul_gtp_tunnel: None,
        dl_gtp_tunnel: None,
    });
    a
}

#[test]
fn golden_vectors_are_reproduced_byte_for_byte() {
    let p = golden_request_params();
    assert_eq!(
        hex::encode(build::handover_request(&p).unwrap()),
        hex::encode(golden("handover_request"))
    );
    let a = golden_ack_params();
    assert_eq!(
        hex::encode(build::handover_request_acknowledge(&a).unwrap()),
        hex::encode(golden("handover_request_acknowledge"))
    );
    // And our decoder reads the vectors as those parameters.
    assert_eq!(
        decode_request(&golden("handover_request")),
        expected_request(&p)
    );
    assert_eq!(
        decode_ack(&golden("handover_request_acknowledge")),
        expected_ack(&a)
    );
}

#[test]
fn boundaries_round_trip() {
    let plmn = plmn_001_01();
    for (old, new) in [(0, 4095), (4095, 0), (0, 0), (4095, 4095), (17, 42)] {
        for cell_id in [0, 1, 0x1a2b301, MAX_CELL_ID] {
            let mut p = HandoverRequestParams::new(old, plmn, cell_id);
            p.mme_ue_s1ap_id = if old == 0 { 0 } else { u32::MAX };
            p.gummei = Gummei {
                plmn: Plmn([0x13, 0x00, 0x14]),
                mme_group_id: if old == 0 { 0 } else { u16::MAX },
                mme_code: if old == 0 { 0 } else { u8::MAX },
            };
            p.e_rabs[0].ul_gtp_tunnel.teid = if old == 0 { 0 } else { u32::MAX };
            let bytes = build::handover_request(&p).unwrap();
            let r = decode_request(&bytes);
            assert_eq!(r, expected_request(&p), "{old} {cell_id:#x}");
            assert_eq!(r.target_cell.macro_enb_id(), cell_id >> 8);

            let a = HandoverRequestAcknowledgeParams::admitting(&p, new);
            assert_eq!(
                decode_ack(&build::handover_request_acknowledge(&a).unwrap()),
                expected_ack(&a)
            );
        }
    }

    // Every kind of transport address, E-RAB IDs 0 and 15, the extreme bit rates.
    let mut p = HandoverRequestParams::new(1, plmn, 2);
    let addresses = [
        TransportLayerAddress::V4(Ipv4Addr::UNSPECIFIED),
        TransportLayerAddress::V4(Ipv4Addr::BROADCAST),
        TransportLayerAddress::V6(Ipv6Addr::LOCALHOST),
        TransportLayerAddress::Both(Ipv4Addr::new(10, 0, 0, 1), "fd00::1".parse().unwrap()),
        TransportLayerAddress::Other {
            bits: 1,
            octets: vec![0x80],
        },
        TransportLayerAddress::Other {
            bits: 159,
            octets: vec![0xff; 19].into_iter().chain([0xfe]).collect(),
        },
    ];
    p.e_rabs = addresses
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut e = ERabParams::new(
                if i % 2 == 0 { 0 } else { 15 },
                i as u8 * 50,
                GtpTunnel {
                    address: a.clone(),
                    teid: i as u32,
                },
            );
            e.gbr = Some(GbrParams {
                maximum: BitRates {
                    downlink: MAX_BIT_RATE,
                    uplink: MAX_BIT_RATE,
                },
                guaranteed: BitRates {
                    downlink: 0,
                    uplink: 0,
                },
            });
            e
        })
        .collect();
    p.ue_ambr = BitRates {
        downlink: MAX_BIT_RATE,
        uplink: 0,
    };
    p.old_enb_ue_x2ap_id_ext = Some(4095);
    assert_eq!(
        decode_request(&build::handover_request(&p).unwrap()),
        expected_request(&p)
    );
    let mut a = HandoverRequestAcknowledgeParams::new(4095, 4095);
    a.admitted_e_rabs = addresses
        .iter()
        .enumerate()
        .map(|(i, addr)| ERabAdmitted {
            e_rab_id: i as u8,
            ul_gtp_tunnel: (i % 2 == 0).then(|| GtpTunnel {
                address: addr.clone(),
                teid: u32::MAX,
            }),
            dl_gtp_tunnel: Some(GtpTunnel {
                address: addr.clone(),
                teid: 0,
            }),
        })
        .collect();
    a.old_enb_ue_x2ap_id_ext = Some(0);
    a.new_enb_ue_x2ap_id_ext = Some(4095);
    assert_eq!(
        decode_ack(&build::handover_request_acknowledge(&a).unwrap()),
        expected_ack(&a)
    );

    // The largest lists: 256 E-RABs, 16 history cells.
    let mut p = HandoverRequestParams::new(7, plmn, 7);
    p.e_rabs = (0..256u32)
        .map(|i| {
            ERabParams::new(
                (i % 16) as u8,
                (i % 256) as u8,
                GtpTunnel {
                    address: TransportLayerAddress::V4(Ipv4Addr::from(i)),
                    teid: i,
                },
            )
        })
        .collect();
    p.ue_history = vec![p.ue_history[0]; 16];
    assert_eq!(
        decode_request(&build::handover_request(&p).unwrap()),
        expected_request(&p)
    );
    let a = HandoverRequestAcknowledgeParams::admitting(&p, 8);
    assert_eq!(
        decode_ack(&build::handover_request_acknowledge(&a).unwrap()),
        expected_ack(&a)
    );
    p.e_rabs.push(p.e_rabs[0].clone());
    assert!(matches!(
        build::handover_request(&p),
        Err(BuildError::Count { count: 257, .. })
    ));
}

/// Every event `t` queued, in order.
fn drain(t: &mut X2Trigger) -> Vec<X2Event> {
    let mut events = Vec::new();
    while let Some(e) = t.poll_event() {
        events.push(e);
    }
    events
}

/// Handovers back and forth between three eNBCs: each eNBC's trigger sees the
/// request and acknowledge of the UE leaving it and fires HandoverTriggered
/// towards the next eNBC.
#[test]
fn trigger_fires_for_built_pairs_between_enbcs() {
    let plmn = plmn_001_01();
    let enbs: [(u32, &str); 3] = [
        (0x0b0b0, "enbc-a"),
        (0x1a2b3, "enbc-b"),
        (0xfffff, "enbc-c"),
    ];
    let ue_teid = 0x0000_beef_u32;
    let mut triggers: Vec<X2Trigger> = enbs
        .iter()
        .map(|(me, _)| {
            let neighbours: String = enbs
                .iter()
                .filter(|(id, _)| id != me)
                .map(|(id, name)| {
                    format!(
                        "[[neighbours]]\nplmn = \"001-01\"\nenb_id = {id}\nmihf_id = \"{name}\"\n"
                    )
                })
                .collect();
            let config = format!(
                "{neighbours}[[ues]]\nue_address = \"10.45.0.7\"\nul_gtp_teid = {ue_teid}\n"
            );
            X2Trigger::new(toml::from_str(&config).unwrap()).unwrap()
        })
        .collect();

    let now = Instant::now();
    // A -> B -> C -> A -> C -> B -> A, with the X2AP IDs at their extremes.
    let route = [0usize, 1, 2, 0, 2, 1, 0];
    let mut old_id: u16 = 0;
    for (hop, w) in route.windows(2).enumerate() {
        let (from, to) = (w[0], w[1]);
        // Fresh IDs for every hop (no UEContextRelease ends the earlier ones).
        let new_id: u16 = if hop % 2 == 0 {
            4095 - hop as u16 / 2
        } else {
            1 + hop as u16 / 2
        };
        let cell_id = (enbs[to].0 << 8) | 0xff;
        let mut req = HandoverRequestParams::new(old_id, plmn, cell_id);
        req.e_rabs[0].ul_gtp_tunnel.teid = ue_teid;
        let ack = HandoverRequestAcknowledgeParams::admitting(&req, new_id);
        let t = &mut triggers[from];
        t.handle_pdu(now, &build::handover_request(&req).unwrap());
        let ev = drain(t);
        assert!(
            matches!(ev.as_slice(), [X2Event::HandoverPrepared(_)]),
            "hop {hop}: {ev:?}"
        );
        t.handle_pdu(now, &build::handover_request_acknowledge(&ack).unwrap());
        let ev = drain(t);
        match ev.as_slice() {
            [X2Event::HandoverTriggered(h)] => {
                assert_eq!(h.old_enb_ue_x2ap_id, old_id);
                assert_eq!(h.new_enb_ue_x2ap_id, new_id);
                assert_eq!(h.ue_address.to_string(), "10.45.0.7");
                assert_eq!(h.ue_key, UeKey::GtpTeid(ue_teid));
                assert_eq!(h.target_mihf_id, enbs[to].1);
                assert_eq!(h.target_cell, Ecgi { plmn, cell_id });
                assert_eq!(h.mme_ue_s1ap_id, req.mme_ue_s1ap_id);
                assert_eq!(h.admitted_e_rabs, ack.admitted_e_rabs);
            }
            other => panic!("hop {hop}: {other:?}"),
        }
        // At the target the UE gets the new ID, which it leaves with next.
        old_id = new_id;
    }
}

// ---------------------------------------------------------------------------
// proptest
// ---------------------------------------------------------------------------

fn plmn_strategy() -> impl Strategy<Value = Plmn> {
    any::<[u8; 3]>().prop_map(Plmn)
}

/// Transport addresses in the form our decoder reports them.
fn address_strategy() -> impl Strategy<Value = TransportLayerAddress> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| TransportLayerAddress::V4(o.into())),
        any::<[u8; 16]>().prop_map(|o| TransportLayerAddress::V6(o.into())),
        (any::<[u8; 4]>(), any::<[u8; 16]>())
            .prop_map(|(a, b)| TransportLayerAddress::Both(a.into(), b.into())),
        (1usize..=160)
            .prop_filter("not an IP length", |n| ![32, 128, 160].contains(n))
            .prop_flat_map(|n| (Just(n), prop::collection::vec(any::<u8>(), n.div_ceil(8))))
            .prop_map(|(n, mut octets)| {
                if n % 8 != 0 {
                    *octets.last_mut().unwrap() &= 0xffu8 << (8 - n % 8);
                }
                TransportLayerAddress::Other { bits: n, octets }
            }),
    ]
}

fn tunnel_strategy() -> impl Strategy<Value = GtpTunnel> {
    (address_strategy(), any::<u32>()).prop_map(|(address, teid)| GtpTunnel { address, teid })
}

fn bit_rates_strategy() -> impl Strategy<Value = BitRates> {
    (0..=MAX_BIT_RATE, 0..=MAX_BIT_RATE)
        .prop_map(|(downlink, uplink)| BitRates { downlink, uplink })
}

fn cause_strategy() -> impl Strategy<Value = Cause> {
    prop_oneof![
        Just(Cause::RadioNetwork(
            CauseRadioNetwork::HandoverDesirableForRadioReasons
        )),
        Just(Cause::RadioNetwork(CauseRadioNetwork::Unspecified)),
        Just(Cause::RadioNetwork(CauseRadioNetwork::LoadBalancing)),
        Just(Cause::RadioNetwork(CauseRadioNetwork::IABNotAuthorized)),
        Just(Cause::Transport(CauseTransport::Unspecified)),
        Just(Cause::Protocol(
            CauseProtocol::AbstractSyntaxErrorFalselyConstructedMessage
        )),
        Just(Cause::Misc(CauseMisc::OmIntervention)),
    ]
}

fn e_rab_strategy() -> impl Strategy<Value = ERabParams> {
    (
        0u8..=15,
        any::<u8>(),
        0u8..=15,
        any::<bool>(),
        any::<bool>(),
        prop::option::of((bit_rates_strategy(), bit_rates_strategy())),
        any::<bool>(),
        tunnel_strategy(),
    )
        .prop_map(|(id, qci, prio, cap, vul, gbr, fwd, tunnel)| ERabParams {
            e_rab_id: id,
            qci,
            priority_level: prio,
            pre_emption_capability: if cap {
                PreEmptionCapability::MayTriggerPreEmption
            } else {
                PreEmptionCapability::ShallNotTriggerPreEmption
            },
            pre_emption_vulnerability: if vul {
                PreEmptionVulnerability::PreEmptable
            } else {
                PreEmptionVulnerability::NotPreEmptable
            },
            gbr: gbr.map(|(maximum, guaranteed)| GbrParams {
                maximum,
                guaranteed,
            }),
            dl_forwarding: fwd,
            ul_gtp_tunnel: tunnel,
        })
}

fn ecgi_strategy() -> impl Strategy<Value = Ecgi> {
    (plmn_strategy(), 0..=MAX_CELL_ID).prop_map(|(plmn, cell_id)| Ecgi { plmn, cell_id })
}

fn restriction_strategy() -> impl Strategy<Value = HandoverRestriction> {
    (
        plmn_strategy(),
        prop::collection::vec(plmn_strategy(), 0..=15),
        prop::collection::vec(
            (plmn_strategy(), prop::collection::vec(any::<u16>(), 1..=8))
                .prop_map(|(plmn, tacs)| ForbiddenTas { plmn, tacs }),
            0..=16,
        ),
        prop::option::of(prop_oneof![
            Just(ForbiddenInterRats::All),
            Just(ForbiddenInterRats::Utran),
            Just(ForbiddenInterRats::Cdma2000andutran),
        ]),
    )
        .prop_map(
            |(serving_plmn, equivalent_plmns, forbidden_tas, forbidden_inter_rats)| {
                HandoverRestriction {
                    serving_plmn,
                    equivalent_plmns,
                    forbidden_tas,
                    forbidden_inter_rats,
                }
            },
        )
}

fn cell_size_strategy() -> impl Strategy<Value = CellSize> {
    prop_oneof![
        Just(CellSize::VerySmall),
        Just(CellSize::Small),
        Just(CellSize::Medium),
        Just(CellSize::Large),
    ]
}

prop_compose! {
    fn request_strategy()(
        ids in (0u16..=4095, prop::option::of(0u16..=4095)),
        cause in cause_strategy(),
        target in ecgi_strategy(),
        gummei in (plmn_strategy(), any::<u16>(), any::<u8>()),
        mme_ue_s1ap_id in any::<u32>(),
        security in (any::<u16>(), any::<u16>(), any::<[u8; 32]>(), 0u8..=7),
        ue_ambr in bit_rates_strategy(),
        spid in prop::option::of(1u16..=256),
        e_rabs in prop::collection::vec(e_rab_strategy(), 1..=4),
        rrc_context in prop::collection::vec(any::<u8>(), 0..300),
        restriction in prop::option::of(restriction_strategy()),
        location_reporting in any::<bool>(),
        history in prop::collection::vec(
            (ecgi_strategy(), cell_size_strategy(), 0u16..=4095)
                .prop_map(|(cell, cell_size, time_stayed_s)| VisitedCell { cell, cell_size, time_stayed_s }),
            1..=16),
        srvcc in any::<bool>(),
    ) -> HandoverRequestParams {
        HandoverRequestParams {
            old_enb_ue_x2ap_id: ids.0,
            old_enb_ue_x2ap_id_ext: ids.1,
            cause,
            target,
            gummei: Gummei { plmn: gummei.0, mme_group_id: gummei.1, mme_code: gummei.2 },
            mme_ue_s1ap_id,
            security: SecurityParams {
                encryption_algorithms: security.0,
                integrity_protection_algorithms: security.1,
                key_enb_star: security.2,
                next_hop_chaining_count: security.3,
            },
            ue_ambr,
            subscriber_profile_id_for_rfp: spid,
            e_rabs,
            rrc_context,
            handover_restriction: restriction,
            location_reporting,
            ue_history: history,
            srvcc_operation_possible: srvcc,
        }
    }
}

prop_compose! {
    fn ack_strategy()(
        old in 0u16..=4095,
        new in 0u16..=4095,
        old_ext in prop::option::of(0u16..=4095),
        new_ext in prop::option::of(0u16..=4095),
        admitted in prop::collection::vec(
            (0u8..=15, prop::option::of(tunnel_strategy()), prop::option::of(tunnel_strategy()))
                .prop_map(|(e_rab_id, ul_gtp_tunnel, dl_gtp_tunnel)| ERabAdmitted { e_rab_id, ul_gtp_tunnel, dl_gtp_tunnel }),
            1..=4),
        container in prop::collection::vec(any::<u8>(), 0..300),
    ) -> HandoverRequestAcknowledgeParams {
        HandoverRequestAcknowledgeParams {
            old_enb_ue_x2ap_id: old,
            new_enb_ue_x2ap_id: new,
            old_enb_ue_x2ap_id_ext: old_ext,
            new_enb_ue_x2ap_id_ext: new_ext,
            admitted_e_rabs: admitted,
            target_to_source_container: container,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn request_round_trips(p in request_strategy()) {
        let bytes = build::handover_request(&p).unwrap();
        prop_assert_eq!(decode_request(&bytes), expected_request(&p));
    }

    #[test]
    fn acknowledge_round_trips(a in ack_strategy()) {
        let bytes = build::handover_request_acknowledge(&a).unwrap();
        prop_assert_eq!(decode_ack(&bytes), expected_ack(&a));
    }

    /// Any numbers at all: either an error, or a PDU that decodes.
    #[test]
    fn any_numbers_never_panic(
        old in any::<u16>(), new in any::<u16>(), ext in prop::option::of(any::<u16>()),
        cell_id in any::<u32>(), e_rab_id in any::<u8>(), prio in any::<u8>(),
        ncc in any::<u8>(), spid in prop::option::of(any::<u16>()), rate in any::<u64>(),
        bits in any::<usize>(), octets in prop::collection::vec(any::<u8>(), 0..24),
        stayed in any::<u16>(), n_e_rabs in 0usize..3,
    ) {
        let mut p = HandoverRequestParams::new(old, plmn_001_01(), cell_id);
        p.old_enb_ue_x2ap_id_ext = ext;
        p.e_rabs = (0..n_e_rabs).map(|_| p.e_rabs[0].clone()).collect();
        if let Some(e) = p.e_rabs.first_mut() {
            e.e_rab_id = e_rab_id;
            e.priority_level = prio;
            e.gbr = Some(GbrParams {
                maximum: BitRates { downlink: rate, uplink: 0 },
                guaranteed: BitRates { downlink: 0, uplink: rate },
            });
            e.ul_gtp_tunnel.address = TransportLayerAddress::Other { bits: bits % 200, octets: octets.clone() };
        }
        p.security.next_hop_chaining_count = ncc;
        p.subscriber_profile_id_for_rfp = spid;
        p.ue_history[0].time_stayed_s = stayed;
        if let Ok(bytes) = build::handover_request(&p) {
            decode_request(&bytes);
        }
        let mut a = HandoverRequestAcknowledgeParams::admitting(&p, new);
        if let Some(e) = a.admitted_e_rabs.first_mut() {
            e.dl_gtp_tunnel = Some(GtpTunnel {
                address: TransportLayerAddress::Other { bits: bits % 200, octets },
                teid: 0,
            });
        }
        a.new_enb_ue_x2ap_id_ext = ext;
        if let Ok(bytes) = build::handover_request_acknowledge(&a) {
            decode_ack(&bytes);
        }
    }
}

// ---------------------------------------------------------------------------
// pycrate oracle
// ---------------------------------------------------------------------------

/// Reads one hex PDU per line; prints, per PDU, pycrate's decoded value (as
/// JSON: OCTET STRING -> hex, BIT STRING -> {bits, hex} left-aligned, CHOICE
/// and open type -> {name: value}) and whether pycrate re-encodes the same octets.
const PYCRATE_SCRIPT: &str = r#"
import json, sys
from pycrate_asn1dir import X2AP
PDU = X2AP.X2AP_PDU_Descriptions.X2AP_PDU

def conv(x):
    if isinstance(x, (bytes, bytearray)):
        return bytes(x).hex()
    if isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str):
        return {x[0]: conv(x[1])}
    if isinstance(x, tuple) and len(x) == 2 and all(isinstance(v, int) for v in x):
        v, n = x
        pad = (-n) % 8
        return {"bits": n, "hex": (v << pad).to_bytes((n + pad) // 8, "big").hex()}
    if isinstance(x, dict):
        return {k: conv(v) for k, v in x.items()}
    if isinstance(x, list):
        return [conv(v) for v in x]
    return x

for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    data = bytes.fromhex(line)
    try:
        PDU.from_aper(data)
        val = conv(PDU.get_val())
        out = {"value": val, "reencoded": PDU.to_aper().hex()}
    except Exception as e:
        out = {"error": repr(e)}
    print(json.dumps(out), flush=True)
"#;

fn pycrate_available() -> bool {
    testkit::require_python_module(
        "pycrate_asn1dir.X2AP",
        "pip install pycrate==0.8.1, as .ci/run does",
    )
}

fn pycrate_decode(pdus: &[Vec<u8>]) -> Vec<Value> {
    let mut child = Command::new("python3")
        .args(["-c", PYCRATE_SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    // Written from another thread: pycrate answers while it reads, and a full
    // stdout pipe would otherwise block both sides.
    let mut stdin = child.stdin.take().unwrap();
    let input: String = pdus.iter().map(|p| hex::encode(p) + "\n").collect();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "pycrate script failed");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), pdus.len());
    lines
}

fn oct(b: &[u8]) -> Value {
    json!(hex::encode(b))
}

fn bits(n: usize, octets: &[u8]) -> Value {
    let mut o = octets[..n.div_ceil(8)].to_vec();
    if n % 8 != 0 {
        *o.last_mut().unwrap() &= 0xffu8 << (8 - n % 8);
    }
    json!({"bits": n, "hex": hex::encode(o)})
}

fn ecgi_view(e: &Ecgi) -> Value {
    json!({
        "pLMN-Identity": oct(&e.plmn.0),
        "eUTRANcellIdentifier": bits(28, &(e.cell_id << 4).to_be_bytes()),
    })
}

fn tunnel_view(t: &GtpTunnel) -> Value {
    let address = match &t.address {
        TransportLayerAddress::V4(a) => bits(32, &a.octets()),
        TransportLayerAddress::V6(a) => bits(128, &a.octets()),
        TransportLayerAddress::Both(a, b) => {
            let mut o = a.octets().to_vec();
            o.extend_from_slice(&b.octets());
            bits(160, &o)
        }
        TransportLayerAddress::Other { bits: n, octets } => bits(*n, octets),
    };
    json!({"transportLayerAddress": address, "gTP-TEID": oct(&t.teid.to_be_bytes())})
}

fn field(id: u16, criticality: &str, name: &str, value: Value) -> Value {
    json!({"id": id, "criticality": criticality, "value": {name: value}})
}

fn pdu_view(kind: &str, message: &str, ies: Vec<Value>) -> Value {
    json!({kind: {
        "procedureCode": 0,
        "criticality": "reject",
        "value": {message: {"protocolIEs": ies}},
    }})
}

/// pycrate's view of the request built from `p`, written from TS 36.423's ASN.1 names.
fn pycrate_request_view(p: &HandoverRequestParams) -> Value {
    let e_rabs: Vec<Value> = p
        .e_rabs
        .iter()
        .map(|e| {
            let mut qos = json!({
                "qCI": e.qci,
                "allocationAndRetentionPriority": {
                    "priorityLevel": e.priority_level,
                    "pre-emptionCapability": match e.pre_emption_capability {
                        PreEmptionCapability::ShallNotTriggerPreEmption => "shall-not-trigger-pre-emption",
                        PreEmptionCapability::MayTriggerPreEmption => "may-trigger-pre-emption",
                    },
                    "pre-emptionVulnerability": match e.pre_emption_vulnerability {
                        PreEmptionVulnerability::NotPreEmptable => "not-pre-emptable",
                        PreEmptionVulnerability::PreEmptable => "pre-emptable",
                    },
                },
            });
            if let Some(g) = &e.gbr {
                qos["gbrQosInformation"] = json!({
                    "e-RAB-MaximumBitrateDL": g.maximum.downlink,
                    "e-RAB-MaximumBitrateUL": g.maximum.uplink,
                    "e-RAB-GuaranteedBitrateDL": g.guaranteed.downlink,
                    "e-RAB-GuaranteedBitrateUL": g.guaranteed.uplink,
                });
            }
            let mut item = json!({
                "e-RAB-ID": e.e_rab_id,
                "e-RAB-Level-QoS-Parameters": qos,
                "uL-GTPtunnelEndpoint": tunnel_view(&e.ul_gtp_tunnel),
            });
            if e.dl_forwarding {
                item["dL-Forwarding"] = json!("dL-forwardingProposed");
            }
            field(4, "ignore", "E-RABs-ToBeSetup-Item", item)
        })
        .collect();
    let s = &p.security;
    let mut ctx = json!({
        "mME-UE-S1AP-ID": p.mme_ue_s1ap_id,
        "uESecurityCapabilities": {
            "encryptionAlgorithms": bits(16, &s.encryption_algorithms.to_be_bytes()),
            "integrityProtectionAlgorithms": bits(16, &s.integrity_protection_algorithms.to_be_bytes()),
        },
        "aS-SecurityInformation": {
            "key-eNodeB-star": bits(256, &s.key_enb_star),
            "nextHopChainingCount": s.next_hop_chaining_count,
        },
        "uEaggregateMaximumBitRate": {
            "uEaggregateMaximumBitRateDownlink": p.ue_ambr.downlink,
            "uEaggregateMaximumBitRateUplink": p.ue_ambr.uplink,
        },
        "e-RABs-ToBeSetup-List": e_rabs,
        "rRC-Context": oct(&p.rrc_context),
    });
    if let Some(spid) = p.subscriber_profile_id_for_rfp {
        ctx["subscriberProfileIDforRFP"] = json!(spid);
    }
    if let Some(h) = &p.handover_restriction {
        let mut l = json!({"servingPLMN": oct(&h.serving_plmn.0)});
        if !h.equivalent_plmns.is_empty() {
            l["equivalentPLMNs"] = h.equivalent_plmns.iter().map(|p| oct(&p.0)).collect();
        }
        if !h.forbidden_tas.is_empty() {
            l["forbiddenTAs"] = h
                .forbidden_tas
                .iter()
                .map(|t| {
                    json!({
                        "pLMN-Identity": oct(&t.plmn.0),
                        "forbiddenTACs": t.tacs.iter().map(|c| oct(&c.to_be_bytes())).collect::<Vec<_>>(),
                    })
                })
                .collect();
        }
        if let Some(r) = h.forbidden_inter_rats {
            l["forbiddenInterRATs"] = json!(match r {
                ForbiddenInterRats::All => "all",
                ForbiddenInterRats::Geran => "geran",
                ForbiddenInterRats::Utran => "utran",
                ForbiddenInterRats::Cdma2000 => "cdma2000",
                ForbiddenInterRats::Geranandutran => "geranandutran",
                ForbiddenInterRats::Cdma2000andutran => "cdma2000andutran",
                _ => unreachable!(),
            });
        }
        ctx["handoverRestrictionList"] = l;
    }
    if p.location_reporting {
        ctx["locationReportingInformation"] =
            json!({"eventType": "change-of-serving-cell", "reportArea": "ecgi"});
    }
    let history: Vec<Value> = p
        .ue_history
        .iter()
        .map(|c| {
            json!({"e-UTRAN-Cell": {
                "global-Cell-ID": ecgi_view(&c.cell),
                "cellType": {"cell-Size": match c.cell_size {
                    CellSize::VerySmall => "verysmall",
                    CellSize::Small => "small",
                    CellSize::Medium => "medium",
                    CellSize::Large => "large",
                    _ => unreachable!(),
                }},
                "time-UE-StayedInCell": c.time_stayed_s,
            }})
        })
        .collect();
    let mut ies = vec![
        field(10, "reject", "UE-X2AP-ID", json!(p.old_enb_ue_x2ap_id)),
        field(
            5,
            "ignore",
            "Cause",
            json!({p.cause.group(): p.cause.value()}),
        ),
        field(11, "reject", "ECGI", ecgi_view(&p.target)),
        field(
            23,
            "reject",
            "GUMMEI",
            json!({
                "gU-Group-ID": {
                    "pLMN-Identity": oct(&p.gummei.plmn.0),
                    "mME-Group-ID": oct(&p.gummei.mme_group_id.to_be_bytes()),
                },
                "mME-Code": oct(&[p.gummei.mme_code]),
            }),
        ),
        field(14, "reject", "UE-ContextInformation", ctx),
        field(15, "ignore", "UE-HistoryInformation", json!(history)),
    ];
    if p.srvcc_operation_possible {
        ies.push(field(
            36,
            "ignore",
            "SRVCCOperationPossible",
            json!("possible"),
        ));
    }
    if let Some(ext) = p.old_enb_ue_x2ap_id_ext {
        ies.push(field(156, "reject", "UE-X2AP-ID-Extension", json!(ext)));
    }
    pdu_view("initiatingMessage", "HandoverRequest", ies)
}

fn pycrate_ack_view(a: &HandoverRequestAcknowledgeParams) -> Value {
    let admitted: Vec<Value> = a
        .admitted_e_rabs
        .iter()
        .map(|e| {
            let mut item = json!({"e-RAB-ID": e.e_rab_id});
            if let Some(t) = &e.ul_gtp_tunnel {
                item["uL-GTP-TunnelEndpoint"] = tunnel_view(t);
            }
            if let Some(t) = &e.dl_gtp_tunnel {
                item["dL-GTP-TunnelEndpoint"] = tunnel_view(t);
            }
            field(0, "ignore", "E-RABs-Admitted-Item", item)
        })
        .collect();
    let mut ies = vec![
        field(10, "ignore", "UE-X2AP-ID", json!(a.old_enb_ue_x2ap_id)),
        field(9, "ignore", "UE-X2AP-ID", json!(a.new_enb_ue_x2ap_id)),
        field(1, "ignore", "E-RABs-Admitted-List", json!(admitted)),
        field(
            12,
            "ignore",
            "TargeteNBtoSource-eNBTransparentContainer",
            oct(&a.target_to_source_container),
        ),
    ];
    if let Some(ext) = a.old_enb_ue_x2ap_id_ext {
        ies.push(field(156, "ignore", "UE-X2AP-ID-Extension", json!(ext)));
    }
    if let Some(ext) = a.new_enb_ue_x2ap_id_ext {
        ies.push(field(155, "reject", "UE-X2AP-ID-Extension", json!(ext)));
    }
    pdu_view("successfulOutcome", "HandoverRequestAcknowledge", ies)
}

#[test]
fn pycrate_decodes_built_pdus_to_the_params() {
    if !pycrate_available() {
        return;
    }
    // The golden content, the boundaries, and a fixed sample of random params.
    let mut requests = vec![golden_request_params()];
    let mut acks = vec![golden_ack_params()];
    for (old, new, cell_id) in [(0, 4095, 0), (4095, 0, MAX_CELL_ID)] {
        let mut p = HandoverRequestParams::new(old, Plmn([0x21, 0x43, 0x65]), cell_id);
        p.old_enb_ue_x2ap_id_ext = Some(old);
        p.mme_ue_s1ap_id = u32::MAX;
        p.subscriber_profile_id_for_rfp = Some(256);
        p.e_rabs[0].ul_gtp_tunnel = GtpTunnel {
            address: TransportLayerAddress::Both(Ipv4Addr::BROADCAST, Ipv6Addr::LOCALHOST),
            teid: u32::MAX,
        };
        p.e_rabs[0].e_rab_id = 15;
        p.srvcc_operation_possible = false;
        let mut a = HandoverRequestAcknowledgeParams::new(old, new);
        a.old_enb_ue_x2ap_id_ext = Some(new);
        a.new_enb_ue_x2ap_id_ext = Some(old);
        a.admitted_e_rabs[0].ul_gtp_tunnel = Some(GtpTunnel {
            address: TransportLayerAddress::Other {
                bits: 13,
                octets: vec![0xff, 0xf8],
            },
            teid: 1,
        });
        requests.push(p);
        acks.push(a);
    }
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..48 {
        requests.push(request_strategy().new_tree(&mut runner).unwrap().current());
        acks.push(ack_strategy().new_tree(&mut runner).unwrap().current());
    }

    let mut pdus: Vec<Vec<u8>> = requests
        .iter()
        .map(|p| build::handover_request(p).unwrap())
        .collect();
    pdus.extend(
        acks.iter()
            .map(|a| build::handover_request_acknowledge(a).unwrap()),
    );
    let views: Vec<Value> = requests
        .iter()
        .map(pycrate_request_view)
        .chain(acks.iter().map(pycrate_ack_view))
        .collect();
    let decoded = pycrate_decode(&pdus);
    for (i, ((pdu, want), got)) in pdus.iter().zip(&views).zip(&decoded).enumerate() {
        assert!(
            got.get("error").is_none(),
            "PDU {i} {}: {got}",
            hex::encode(pdu)
        );
        assert_eq!(&got["value"], want, "PDU {i} {}", hex::encode(pdu));
        assert_eq!(
            got["reencoded"].as_str().unwrap(),
            hex::encode(pdu),
            "PDU {i}: pycrate encodes the same value differently"
        );
    }
}
