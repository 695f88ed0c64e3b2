//! X2AP golden vectors (encoded by pycrate, conformance/x2ap/gen_vectors.py):
//! `decode --proto x2ap` must report every value the generator set, and the
//! CLI must print it, refuse to encode, and fail cleanly on bad input.

use std::path::PathBuf;
use std::process::Command;

use conformance::{decode, encode, Proto};
use serde_json::Value;

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
    assert_eq!(v.len(), 9, "vectors/x2ap holds the nine generated PDUs");
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
        let acted_on = got["action"] != "ignore";
        assert_eq!(
            acted_on,
            !v["expect"].as_object().unwrap().is_empty(),
            "{name}"
        );
    }
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
}
