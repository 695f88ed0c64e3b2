//! Golden CXTP vectors: every file under `vectors/cxtp/` is decoded and
//! compared with its `decoded` JSON, re-encoded from that JSON and compared
//! byte for byte, and round-tripped through the `cxtp` crate's own types.

use std::collections::BTreeSet;
use std::path::PathBuf;

use bytes::Bytes;
use cxtp::token::AuthKey;
use cxtp::wire::{Message, MessageType};
use serde_json::Value;

fn vectors() -> Vec<(String, Vec<u8>, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors/cxtp");
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("vectors/cxtp")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    for p in paths {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let name = v["name"].as_str().expect("name").to_string();
        let bytes = hex::decode(v["hex"].as_str().expect("hex")).expect("hex");
        out.push((name, bytes, v["decoded"].clone()));
    }
    out
}

#[test]
fn decode_matches_golden_json_and_encode_matches_golden_bytes() {
    let all = vectors();
    assert!(
        all.len() >= 14,
        "expected one vector per message and family"
    );
    for (name, bytes, decoded) in &all {
        let got = conformance::cxtp::decode_json(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&got, decoded, "{name}: decoded JSON differs");
        let again =
            conformance::cxtp::encode_json(decoded).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            hex::encode(&again),
            hex::encode(bytes),
            "{name}: re-encoded bytes differ"
        );
        // Through the crate's own view/repr pair as well.
        let msg = Message::parse(Bytes::from(bytes.clone())).unwrap();
        assert_eq!(&msg.to_repr().to_bytes().unwrap()[..], &bytes[..], "{name}");
    }
}

#[test]
fn every_message_type_and_family_has_a_vector() {
    let mut seen = BTreeSet::new();
    for (_, bytes, _) in vectors() {
        let msg = Message::parse(Bytes::from(bytes)).unwrap();
        seen.insert((msg.message_type().code(), msg.mn_addr().is_ipv4()));
    }
    for t in 1..=7u8 {
        for v4 in [true, false] {
            assert!(
                seen.contains(&(t, v4)),
                "no vector for {} {}",
                MessageType::from_code(t).unwrap(),
                if v4 { "IPv4" } else { "IPv6" }
            );
        }
    }
}

#[test]
fn tokens_in_vectors_verify_with_the_worked_example_key() {
    // All vectors with a non-zero token were made with K = 20 x 0x0b.
    let key = AuthKey::new(&[0x0b; 20]);
    let mut checked = 0;
    for (name, bytes, _) in vectors() {
        match Message::parse(Bytes::from(bytes)).unwrap() {
            Message::Ctar(c) => {
                assert!(c.verify_token(&key), "{name}");
                checked += 1;
            }
            Message::CtReq(r) if !r.token.is_zero() => {
                assert!(r.verify_token(&key), "{name}");
                checked += 1;
            }
            _ => {}
        }
    }
    assert!(checked >= 5);
    // The worked authorization tokens appear literally.
    let tokens: Vec<String> = vectors()
        .iter()
        .filter_map(|(_, _, d)| d.get("token").and_then(Value::as_str).map(String::from))
        .collect();
    for t in ["fbab93dc", "6a3d4946", "14e9c0cc", "c8df9db4"] {
        assert!(tokens.iter().any(|x| x == t), "token {t} missing");
    }
}

#[test]
fn bad_input_gives_errors_not_panics() {
    use conformance::cxtp::{decode_json, encode_json};
    for bad in [
        "",
        "21",
        "41c00014c0000201c00002fe12345678fbab93dc", // version 2
        "28800008c0000201",                         // type 8
        "26800009c0000201",                         // Length disagrees
        "2680001420010db8000000000000000000000001", // V=1 with an IPv6 address
        "23800014 00000000 c0000201 0001 02 00 00000000",
    ] {
        let b = hex::decode(bad.replace(' ', "")).unwrap();
        assert!(decode_json(&b).is_err(), "{bad}");
    }
    let j: Value =
        serde_json::json!({"message": "CTC", "mn_addr": "192.0.2.1", "header": {"length": 9}});
    assert!(encode_json(&j).unwrap_err().contains("length"));
    let j: Value = serde_json::json!({"message": "CTAR", "mn_addr": "192.0.2.1", "ar_addr": "2001:db8::1", "seq": 1, "token": "00000000"});
    assert!(encode_json(&j).is_err());
    let j: Value = serde_json::json!({"message": "NOPE", "mn_addr": "192.0.2.1"});
    assert!(encode_json(&j).is_err());
}
