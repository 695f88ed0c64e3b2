//! Golden CXTP vectors: every file under `vectors/cxtp/` is decoded and
//! compared with its `decoded` JSON, re-encoded from that JSON and compared
//! byte for byte, and round-tripped through the `cxtp` crate's own types.

use std::collections::BTreeSet;
use std::path::PathBuf;

use bytes::Bytes;
use cxtp::token::AuthKey;
use cxtp::wire::{MessageType, MessageView};
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
        let msg = MessageView::parse(Bytes::from(bytes.clone())).unwrap();
        assert_eq!(&msg.to_repr().to_bytes().unwrap()[..], &bytes[..], "{name}");
    }
}

#[test]
fn every_message_type_and_family_has_a_vector() {
    let mut seen = BTreeSet::new();
    for (_, bytes, _) in vectors() {
        let msg = MessageView::parse(Bytes::from(bytes)).unwrap();
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
        match MessageView::parse(Bytes::from(bytes)).unwrap() {
            MessageView::Ctar(c) => {
                assert!(c.verify_token(&key), "{name}");
                checked += 1;
            }
            MessageView::CtReq(r) if !r.token.is_zero() => {
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

/// The identified-transfer vectors are what the engines send: the CTD of a
/// one-message push for attempt 0x80000001 (TRANSFER block index 0, LAST,
/// then an application service context), the nAR's verdict CTDR with the
/// echo (FPT 0xFF03), and the failure CTDR it gives up with.
#[test]
fn identified_transfer_vectors_are_what_the_engines_send() {
    use std::num::NonZeroU32;
    use std::time::{Duration, Instant};

    use cxtp::engine::{Config, NewRouter, PreviousRouter, Transmit};
    use cxtp::profile::{Context, ProfileRegistry};

    let hex_of = |name: &str| {
        let (_, bytes, _) = vectors()
            .into_iter()
            .find(|v| v.0 == name)
            .unwrap_or_else(|| panic!("vector {name}"));
        hex::encode(bytes)
    };
    let (mn, pa, na) = (
        "192.0.2.1".parse().unwrap(),
        "192.0.2.10".parse().unwrap(),
        "192.0.2.20".parse().unwrap(),
    );
    let id = NonZeroU32::new(0x8000_0001).unwrap();
    let t0 = Instant::now();
    let mut par = PreviousRouter::new(Config::default());
    let mut nar = NewRouter::new(Config::default(), ProfileRegistry::with_builtins());
    // Service "http" (4 octets), state "offset=42" (9 octets).
    let ctx = Context::new(
        0xFF01,
        Bytes::from_static(b"\x00\x04\x00\x00\x00\x00\x00\x09httpoffset=42"),
    );
    nar.expect_transfer(mn, pa, t0 + Duration::from_secs(1), true, Some(id))
        .unwrap();
    par.start_identified_push(t0, mn, na, id, vec![ctx])
        .unwrap();
    let Transmit { payload: ctd, .. } = par.poll_transmit().unwrap();
    assert_eq!(hex::encode(&ctd), hex_of("ctd_ipv4_identified"));
    nar.handle_message(t0, pa, ctd);
    nar.acknowledge(mn, true, vec![]).unwrap();
    let Transmit { payload: ctdr, .. } = nar.poll_transmit().unwrap();
    assert_eq!(hex::encode(&ctdr), hex_of("ctdr_ipv4_identified"));
    let id = NonZeroU32::new(0x8000_0002).unwrap();
    nar.expect_transfer(mn, pa, t0 + Duration::from_secs(1), true, Some(id))
        .unwrap();
    nar.handle_timeout(t0 + Duration::from_secs(1));
    let Transmit {
        payload: give_up, ..
    } = nar.poll_transmit().unwrap();
    assert_eq!(
        hex::encode(&give_up),
        hex_of("ctdr_ipv4_identified_give_up")
    );
}
