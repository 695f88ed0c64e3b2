//! Golden vectors under conformance/vectors/mih/: decode each, compare with
//! its recorded meaning, re-encode and compare bytes, both through the JSON
//! view and through the typed message API.
//!
//! Regenerate (after a deliberate change, then review the diff):
//! `UPDATE_GOLDEN=1 cargo test -p conformance --test mih_vectors`

use std::collections::BTreeSet;
use std::path::PathBuf;

use bytes::Bytes;
use conformance::mih_vectors;
use mihf::wire::{message::message_forms, Message, Opcode};
use serde_json::{json, Value};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors/mih")
}

fn load() -> Vec<(String, Value)> {
    mih_vectors::load_files()
}

#[test]
fn golden_vectors() {
    let vectors = mih_vectors::all();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(dir()).unwrap();
        for v in &vectors {
            let bytes = v.message.to_bytes().unwrap();
            let decoded = conformance::mih::decode_json(&bytes).unwrap();
            let file = json!({
                "name": v.name,
                "description": v.description,
                "hex": hex::encode(&bytes),
                "decoded": decoded,
            });
            let text = serde_json::to_string_pretty(&file).unwrap() + "\n";
            std::fs::write(dir().join(format!("{}.json", v.name)), text).unwrap();
        }
    }
    let files = load();
    let names: BTreeSet<_> = files.iter().map(|(n, _)| n.clone()).collect();
    let built: BTreeSet<_> = vectors.iter().map(|v| v.name.to_string()).collect();
    assert_eq!(names, built, "vector files and the vector set disagree");

    for (stem, file) in &files {
        let hex_text = file["hex"].as_str().unwrap();
        let bytes = hex::decode(hex_text).unwrap();
        // JSON view, both directions.
        let decoded = conformance::mih::decode_json(&bytes).unwrap();
        assert_eq!(decoded, file["decoded"], "{stem}: decoded meaning differs");
        let encoded = conformance::mih::encode_json(&file["decoded"]).unwrap();
        assert_eq!(hex::encode(&encoded), hex_text, "{stem}: re-encode differs");
        // Typed API, both directions.
        let msg = Message::from_bytes(Bytes::from(bytes.clone())).unwrap();
        assert_eq!(
            msg.to_bytes().unwrap(),
            bytes,
            "{stem}: typed re-emit differs"
        );
        let mut built = vectors
            .iter()
            .find(|v| v.name == stem)
            .unwrap()
            .message
            .clone();
        built.header.payload_len = msg.header.payload_len;
        assert_eq!(msg, built, "{stem}: typed decode differs from the builder");
        assert_eq!(file["decoded"]["message"], json!(msg.name()));
    }
}

/// Every primitive that exists between MIHFs has a vector: request and
/// response for commands and management, the indication for events.
#[test]
fn every_primitive_has_a_vector() {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        return; // the other test is rewriting the files
    }
    let have: BTreeSet<String> = load()
        .iter()
        .map(|(_, f)| f["decoded"]["message"].as_str().unwrap().to_string())
        .collect();
    for (name, mid) in message_forms() {
        if matches!(mid.opcode(), Opcode::Confirm) {
            continue;
        }
        if mid.opcode() == Opcode::Indication && mid.sid().0 != 2 {
            // SAP-only forms of commands: covered by n2n_ho_commit.indication.
            continue;
        }
        assert!(have.contains(&name), "no golden vector for {name}");
    }
}
