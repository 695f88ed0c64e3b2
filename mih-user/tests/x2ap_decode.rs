//! The X2AP decoder against the golden vectors of an independent encoder
//! (pycrate, see conformance/x2ap/gen_vectors.py), and against broken input.

use std::net::IpAddr;
use std::path::PathBuf;

use mih_user::x2ap::{
    decode, message_name, procedure_name, Cause, Message, MessageType, TransportLayerAddress,
    X2apError,
};
use serde_json::Value;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conformance/vectors/x2ap")
}

fn vector(name: &str) -> (Vec<u8>, Value) {
    let text = std::fs::read_to_string(vectors_dir().join(format!("{name}.json")))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap();
    (hex::decode(v["hex"].as_str().unwrap()).unwrap(), v)
}

fn all_vectors() -> Vec<(String, Vec<u8>, Value)> {
    let mut names: Vec<String> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.strip_suffix(".json")
                .filter(|s| !s.ends_with(".pcap"))
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 9, "vectors: {names:?}");
    names
        .into_iter()
        .map(|n| {
            let (b, v) = vector(&n);
            (n, b, v)
        })
        .collect()
}

fn mt(v: &Value) -> MessageType {
    match v["message_type"].as_str().unwrap() {
        "initiating" => MessageType::InitiatingMessage,
        "successful" => MessageType::SuccessfulOutcome,
        "unsuccessful" => MessageType::UnsuccessfulOutcome,
        other => panic!("{other}"),
    }
}

fn cause_json(c: &Cause) -> Value {
    serde_json::json!({"group": c.group(), "value": c.value()})
}

#[test]
fn every_vector_decodes_with_its_procedure_and_message() {
    for (name, bytes, v) in all_vectors() {
        let pdu = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            u64::from(pdu.procedure_code),
            v["procedure_code"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(pdu.message_type, mt(&v), "{name}");
        assert_eq!(pdu.procedure_name(), v["procedure"].as_str(), "{name}");
        assert_eq!(pdu.message_name(), v["message"].as_str(), "{name}");
        // `message` is null for what TS 36.423 does not define.
        let acted_on = matches!(
            v["message"].as_str().unwrap_or(""),
            "HandoverRequest"
                | "HandoverRequestAcknowledge"
                | "HandoverPreparationFailure"
                | "HandoverCancel"
                | "UEContextRelease"
        );
        assert_eq!(pdu.message != Message::Other, acted_on, "{name}");
    }
}

#[test]
fn handover_request_values() {
    let (bytes, v) = vector("handover_request");
    let e = &v["expect"];
    let Message::HandoverRequest(m) = decode(&bytes).unwrap().message else {
        panic!()
    };
    assert_eq!(u64::from(m.old_enb_ue_x2ap_id), e["old_enb_ue_x2ap_id"]);
    assert_eq!(cause_json(&m.cause), e["cause"]);
    assert_eq!(m.target_cell.plmn.to_hex(), e["target_cell"]["plmn"]);
    assert_eq!(
        u64::from(m.target_cell.cell_id),
        e["target_cell"]["cell_id"]
    );
    assert_eq!(
        u64::from(m.target_cell.macro_enb_id()),
        e["target_cell"]["enb_id"]
    );
    assert_eq!(m.target_cell.plmn.to_string(), "001-01");
    assert_eq!(m.gummei.plmn.to_hex(), e["gummei"]["plmn"]);
    assert_eq!(
        u64::from(m.gummei.mme_group_id),
        e["gummei"]["mme_group_id"]
    );
    assert_eq!(u64::from(m.gummei.mme_code), e["gummei"]["mme_code"]);
    assert_eq!(u64::from(m.mme_ue_s1ap_id), e["mme_ue_s1ap_id"]);
    let want = e["e_rabs"].as_array().unwrap();
    assert_eq!(m.e_rabs.len(), want.len());
    for (got, want) in m.e_rabs.iter().zip(want) {
        assert_eq!(u64::from(got.e_rab_id), want["e_rab_id"]);
        assert_eq!(u64::from(got.qci), want["qci"]);
        assert_eq!(u64::from(got.ul_gtp_tunnel.teid), want["ul_gtp_teid"]);
        let addr: IpAddr = want["ul_address"].as_str().unwrap().parse().unwrap();
        assert_eq!(got.ul_gtp_tunnel.address.ip(), Some(addr));
    }
    assert!(matches!(
        m.e_rabs[0].ul_gtp_tunnel.address,
        TransportLayerAddress::V4(_)
    ));
    assert!(matches!(
        m.e_rabs[1].ul_gtp_tunnel.address,
        TransportLayerAddress::V6(_)
    ));
}

#[test]
fn handover_request_acknowledge_values() {
    let (bytes, v) = vector("handover_request_acknowledge");
    let e = &v["expect"];
    let Message::HandoverRequestAcknowledge(m) = decode(&bytes).unwrap().message else {
        panic!()
    };
    assert_eq!(u64::from(m.old_enb_ue_x2ap_id), e["old_enb_ue_x2ap_id"]);
    assert_eq!(u64::from(m.new_enb_ue_x2ap_id), e["new_enb_ue_x2ap_id"]);
    let want = e["admitted_e_rabs"].as_array().unwrap();
    assert_eq!(m.admitted_e_rabs.len(), want.len());
    for (got, want) in m.admitted_e_rabs.iter().zip(want) {
        assert_eq!(u64::from(got.e_rab_id), want["e_rab_id"]);
        assert_eq!(got.ul_gtp_tunnel, None);
        match (&got.dl_gtp_tunnel, want.get("dl_address")) {
            (Some(t), Some(a)) => {
                assert_eq!(t.address.to_string(), a.as_str().unwrap());
                assert_eq!(u64::from(t.teid), want["dl_gtp_teid"]);
            }
            (None, None) => {}
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn failure_cancel_release_values() {
    let (b, v) = vector("handover_preparation_failure");
    let Message::HandoverPreparationFailure(m) = decode(&b).unwrap().message else {
        panic!()
    };
    assert_eq!(
        u64::from(m.old_enb_ue_x2ap_id),
        v["expect"]["old_enb_ue_x2ap_id"]
    );
    assert_eq!(cause_json(&m.cause), v["expect"]["cause"]);

    for name in ["handover_cancel", "handover_cancel_ext_cause"] {
        let (b, v) = vector(name);
        let Message::HandoverCancel(m) = decode(&b).unwrap().message else {
            panic!()
        };
        let e = &v["expect"];
        assert_eq!(u64::from(m.old_enb_ue_x2ap_id), e["old_enb_ue_x2ap_id"]);
        assert_eq!(
            m.new_enb_ue_x2ap_id.map(u64::from),
            e["new_enb_ue_x2ap_id"].as_u64()
        );
        assert_eq!(cause_json(&m.cause), e["cause"], "{name}");
    }

    let (b, v) = vector("ue_context_release");
    let Message::UeContextRelease(m) = decode(&b).unwrap().message else {
        panic!()
    };
    assert_eq!(
        u64::from(m.old_enb_ue_x2ap_id),
        v["expect"]["old_enb_ue_x2ap_id"]
    );
    assert_eq!(
        u64::from(m.new_enb_ue_x2ap_id),
        v["expect"]["new_enb_ue_x2ap_id"]
    );
}

#[test]
fn procedure_table() {
    assert_eq!(procedure_name(0), Some("handoverPreparation"));
    assert_eq!(
        message_name(0, MessageType::UnsuccessfulOutcome),
        Some("HandoverPreparationFailure")
    );
    assert_eq!(message_name(1, MessageType::SuccessfulOutcome), None);
    assert_eq!(procedure_name(200), None);
}

/// Every prefix of every vector is an error, never a panic.
#[test]
fn truncations_are_errors() {
    for (name, bytes, _) in all_vectors() {
        for n in 0..bytes.len() {
            assert!(
                decode(&bytes[..n]).is_err(),
                "{name}: prefix of {n} decoded"
            );
        }
    }
}

/// Every single-bit flip decodes or fails cleanly (and never panics).
#[test]
fn bit_flips_never_panic() {
    for (_, bytes, _) in all_vectors() {
        for i in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[i / 8] ^= 0x80 >> (i % 8);
            let _ = decode(&b);
        }
    }
}

#[test]
fn trailing_octets() {
    let (mut b, _) = vector("ue_context_release");
    b.push(0);
    assert_eq!(decode(&b), Err(X2apError::TrailingOctets { count: 1 }));
}

#[test]
fn unknown_procedure_is_recognised() {
    // initiatingMessage, procedureCode 250, ignore, empty ProtocolIE container
    // (value: 3 octets: extension bit 0 + length 0 in 16 bits).
    let b = [0x00, 250, 0x40, 0x03, 0x00, 0x00, 0x00];
    let pdu = decode(&b).unwrap();
    assert_eq!(pdu.procedure_code, 250);
    assert_eq!(pdu.message, Message::Other);
    assert_eq!(pdu.procedure_name(), None);
}

#[test]
fn missing_mandatory_ie_is_named() {
    // UEContextRelease with only the Old eNB UE X2AP ID (17).
    let b = hex::decode("00054009000001000a00020011").unwrap();
    assert_eq!(
        decode(&b),
        Err(X2apError::MissingIe {
            message: "UEContextRelease",
            ie: "New-eNB-UE-X2AP-ID",
            id: 9
        })
    );
}

#[test]
fn duplicate_ie_is_named() {
    // UEContextRelease with the Old eNB UE X2AP ID twice and the New one.
    let b = hex::decode("00054015000003000a00020011000a0002001200090002002a").unwrap();
    let err = decode(&b).unwrap_err();
    assert_eq!(
        err,
        X2apError::DuplicateIe {
            message: "UEContextRelease",
            ie: "Old-eNB-UE-X2AP-ID",
            id: 10
        }
    );
    assert_eq!(
        err.to_string(),
        "UEContextRelease: IE Old-eNB-UE-X2AP-ID (id 10) appears more than once"
    );
}

#[test]
fn bad_ie_value_is_named() {
    // UEContextRelease whose New eNB UE X2AP ID value is 4096 (> 4095, 0x1000).
    let b = hex::decode("0005400f000002000a0002001100090002 1000".replace(' ', "")).unwrap();
    match decode(&b) {
        Err(X2apError::BadIe { message, id, .. }) => {
            assert_eq!((message, id), ("UEContextRelease", 9));
        }
        other => panic!("{other:?}"),
    }
}
