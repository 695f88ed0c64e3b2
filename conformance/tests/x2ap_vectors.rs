//! X2AP golden vectors (encoded by pycrate, conformance/x2ap/gen_vectors.py):
//! `decode --proto x2ap` must report every value the generator set (the UE
//! X2AP IDs of every UE-associated message, the receiver's action for what
//! TS 36.423 does not define), and the CLI must print it, refuse to encode,
//! and fail cleanly on bad input.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use conformance::{decode, encode, Proto};
use mih_user::x2ap::{self, Message, ReceiverAction};
use serde_json::Value;

/// The messages the trigger acts on; it ignores every other one.
const ACTED_ON: [&str; 5] = [
    "HandoverRequest",
    "HandoverRequestAcknowledge",
    "HandoverPreparationFailure",
    "HandoverCancel",
    "UEContextRelease",
];

const ID_KEYS: [&str; 4] = [
    "old_enb_ue_x2ap_id",
    "new_enb_ue_x2ap_id",
    "old_enb_ue_x2ap_id_ext",
    "new_enb_ue_x2ap_id_ext",
];

fn vectors() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors/x2ap");
    let mut v: Vec<(String, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && !p.to_string_lossy().ends_with(".pcap.json")
        })
        .map(|p| {
            let j: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (j["name"].as_str().unwrap().to_string(), j)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(v.len(), 19, "vectors/x2ap holds the 19 generated PDUs");
    v
}

/// Every key of `want` is in `got` with an equal value (objects recursively;
/// arrays element by element, same length).
fn contains(got: &Value, want: &Value, path: &str) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (k, wv) in w {
                let gv = g
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} missing in {got}"));
                contains(gv, wv, &format!("{path}.{k}"));
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "{path}: length");
            for (i, (gv, wv)) in g.iter().zip(w).enumerate() {
                contains(gv, wv, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(got, want, "{path}"),
    }
}

#[test]
fn decode_reports_what_the_generator_set() {
    for (name, v) in vectors() {
        let bytes = hex::decode(v["hex"].as_str().unwrap()).unwrap();
        let got = decode(Proto::X2ap, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        for k in ["procedure_code", "procedure", "message", "message_type"] {
            assert_eq!(got[k], v[k], "{name}: {k}");
        }
        contains(&got, &v["expect"], &name);
        let acted_on = v["message"].as_str().is_some_and(|m| ACTED_ON.contains(&m));
        assert_eq!(got["action"] != "ignore", acted_on, "{name}");
    }
}

/// Every UE-associated message shows the Old/New eNB UE X2AP IDs it has, as
/// pycrate encoded them (`ue_x2ap_ids`: every UE-X2AP-ID IE of the PDU, in
/// order); the five decoded messages agree with their typed form; no other
/// message shows any.
#[test]
fn ue_associated_messages_show_their_ue_x2ap_ids() {
    let mut seen = BTreeSet::new();
    for (name, v) in vectors() {
        let bytes = hex::decode(v["hex"].as_str().unwrap()).unwrap();
        let got = decode(Proto::X2ap, &bytes).unwrap();
        let pdu = x2ap::decode(&bytes).unwrap();
        let pycrate: Vec<u64> = v["ue_x2ap_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        let Some(ies) = pdu.ue_id_ies() else {
            for k in ID_KEYS {
                assert!(got.get(k).is_none(), "{name}: {k} in {got}");
            }
            assert!(
                pycrate.is_empty() || pdu.not_comprehended().is_some(),
                "{name}"
            );
            continue;
        };
        seen.insert(v["message"].as_str().unwrap().to_owned());
        assert_eq!(
            got.get("old_enb_ue_x2ap_id").is_some(),
            ies.old.is_defined(),
            "{name}"
        );
        assert_eq!(
            got.get("new_enb_ue_x2ap_id").is_some(),
            ies.new.is_defined(),
            "{name}"
        );
        let ours: Vec<u64> = ["old_enb_ue_x2ap_id", "new_enb_ue_x2ap_id"]
            .iter()
            .filter_map(|k| got.get(*k).and_then(Value::as_u64))
            .collect();
        assert_eq!(ours, pycrate, "{name}: UE X2AP IDs (pycrate)");

        let ids = pdu.ue_x2ap_ids.unwrap();
        let typed = match &pdu.message {
            Message::HandoverRequest(r) => Some((
                Some(r.old_enb_ue_x2ap_id),
                None,
                r.old_enb_ue_x2ap_id_ext,
                None,
            )),
            Message::HandoverRequestAcknowledge(a) => Some((
                Some(a.old_enb_ue_x2ap_id),
                Some(a.new_enb_ue_x2ap_id),
                a.old_enb_ue_x2ap_id_ext,
                a.new_enb_ue_x2ap_id_ext,
            )),
            Message::HandoverPreparationFailure(f) => Some((
                Some(f.old_enb_ue_x2ap_id),
                None,
                f.old_enb_ue_x2ap_id_ext,
                None,
            )),
            Message::HandoverCancel(c) => Some((
                Some(c.old_enb_ue_x2ap_id),
                c.new_enb_ue_x2ap_id,
                c.old_enb_ue_x2ap_id_ext,
                c.new_enb_ue_x2ap_id_ext,
            )),
            Message::UeContextRelease(r) => Some((
                Some(r.old_enb_ue_x2ap_id),
                Some(r.new_enb_ue_x2ap_id),
                r.old_enb_ue_x2ap_id_ext,
                r.new_enb_ue_x2ap_id_ext,
            )),
            Message::Other => None,
        };
        if let Some(t) = typed {
            let generic = (
                ids.old_enb_ue_x2ap_id,
                ids.new_enb_ue_x2ap_id,
                ids.old_enb_ue_x2ap_id_ext,
                ids.new_enb_ue_x2ap_id_ext,
            );
            assert_eq!(t, generic, "{name}: typed and generic IDs");
        }
    }
    for m in [
        "HandoverRequest",
        "HandoverRequestAcknowledge",
        "HandoverPreparationFailure",
        "SNStatusTransfer",
        "UEContextRelease",
        "HandoverCancel",
        "HandoverSuccess",
        "ConditionalHandoverCancel",
        "ErrorIndication",
        "RetrieveUEContextFailure",
    ] {
        assert!(seen.contains(m), "no vector of {m}: {seen:?}");
    }
}

/// What TS 36.423 does not define is reported with the receiver's action
/// (§10.3.4.1 for procedure codes, by criticality); everything it defines
/// has neither key. The vectors cover the three criticalities.
#[test]
fn not_comprehended_pdus_show_the_receiver_action() {
    let mut by_criticality = BTreeSet::new();
    let mut type_of_message = 0;
    for (name, v) in vectors() {
        let bytes = hex::decode(v["hex"].as_str().unwrap()).unwrap();
        let got = decode(Proto::X2ap, &bytes).unwrap();
        let pdu = x2ap::decode(&bytes).unwrap();
        match pdu.not_comprehended() {
            None => {
                assert!(v["message"].is_string(), "{name}");
                assert!(got.get("not_comprehended").is_none(), "{name}");
                assert!(got.get("receiver_action").is_none(), "{name}");
            }
            Some(what) => {
                assert_eq!(got["not_comprehended"], what.name(), "{name}");
                assert_eq!(got["action"], "ignore", "{name}");
                let action = pdu.receiver_action().unwrap();
                assert_eq!(got["receiver_action"], action.name(), "{name}");
                assert_eq!(pdu.message, Message::Other, "{name}");
                assert_eq!(pdu.ue_x2ap_ids, None, "{name}");
                if what == x2ap::NotComprehended::ProcedureCode {
                    assert!(v["procedure"].is_null(), "{name}");
                    by_criticality.insert((
                        got["criticality"].as_str().unwrap().to_owned(),
                        action.name(),
                    ));
                } else {
                    assert!(
                        v["procedure"].is_string() && v["message"].is_null(),
                        "{name}"
                    );
                    assert_eq!(action, ReceiverAction::IgnoreWithErrorIndication);
                    type_of_message += 1;
                }
            }
        }
    }
    let want: BTreeSet<(String, &str)> = [
        ("reject", "reject_with_error_indication"),
        ("notify", "ignore_with_error_indication"),
        ("ignore", "ignore"),
    ]
    .into_iter()
    .map(|(c, a)| (c.to_owned(), a))
    .collect();
    assert_eq!(by_criticality, want);
    assert_eq!(type_of_message, 1);
}

#[test]
fn encode_is_refused_with_an_explanation() {
    let err = encode(Proto::X2ap, &serde_json::json!({})).unwrap_err();
    assert!(err.contains("not supported"), "{err}");
    assert!(err.contains("gen_vectors.py"), "{err}");
}

fn cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_decode_encode_and_errors() {
    let v = &vectors()
        .into_iter()
        .find(|(n, _)| n == "handover_request")
        .unwrap()
        .1;
    let (ok, out, _) = cli(&[
        "decode",
        "--proto",
        "x2ap",
        "--compact",
        v["hex"].as_str().unwrap(),
    ]);
    assert!(ok);
    let j: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(j["message"], "HandoverRequest");
    assert_eq!(j["old_enb_ue_x2ap_id"], 17);
    assert_eq!(j["e_rabs"][1]["ul_address"], "2001:db8::10");
    assert_eq!(out.trim().lines().count(), 1);

    let v = &vectors()
        .into_iter()
        .find(|(n, _)| n == "unknown_procedure_notify")
        .unwrap()
        .1;
    let (ok, out, _) = cli(&["decode", "--proto", "x2ap", v["hex"].as_str().unwrap()]);
    assert!(ok);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["procedure_code"], 200);
    assert_eq!(j["criticality"], "notify");
    assert_eq!(j["receiver_action"], "ignore_with_error_indication");

    let (ok, out, err) = cli(&["decode", "--proto", "x2ap", "0005400f000002000a000200"]);
    assert!(!ok);
    assert!(out.is_empty());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("conformance: X2AP: "), "{err}");

    let (ok, _, err) = cli(&["encode", "--proto", "x2ap", "{}"]);
    assert!(!ok);
    assert!(err.contains("not supported"), "{err}");
}

#[test]
fn malformed_pdus_name_the_message_and_ie() {
    // UEContextRelease without the New eNB UE X2AP ID.
    let err = decode(
        Proto::X2ap,
        &hex::decode("00054009000001000a00020011").unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        "X2AP: UEContextRelease: mandatory IE New-eNB-UE-X2AP-ID (id 9) is missing"
    );
    // SNStatusTransfer without the New eNB UE X2AP ID.
    let err = decode(
        Proto::X2ap,
        &hex::decode("00044009000001000a00020011").unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        "X2AP: SNStatusTransfer: mandatory IE New-eNB-UE-X2AP-ID (id 9) is missing"
    );
}
