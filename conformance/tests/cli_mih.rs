//! The `conformance` binary: decode/encode --proto mih from arguments, stdin
//! and files; bad input gives one line on stderr and a non-zero exit.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const F1: &str = "1800340901230056010d0c6d6968662d73657276696e67020c0b6d6968662d7461726765743408076d6e2d6d6968663b0b130000060602aabbccdd013c0a0000060602aabbccdd023f1401010000140100000a0100003201000005000002";

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_conformance"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

#[test]
fn decode_prints_stable_json() {
    let out = run(&["decode", "--proto", "mih", F1], None);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["message"], "MIH_N2N_HO_Commit.request");
    assert_eq!(v["header"]["tid"], 291);
    assert_eq!(v["header"]["ack_req"], true);
    assert_eq!(v["tlvs"][3]["type"], 59);
    assert_eq!(v["tlvs"][3]["name"], "MN link ID");
    assert_eq!(v["tlvs"][3]["value"]["addr"]["mac"], "02:aa:bb:cc:dd:01");
    assert_eq!(v["tlvs"][5]["value"]["ho_cause"], 2);
}

#[test]
fn decode_from_stdin_and_file_then_encode_back() {
    // Hex with spaces on stdin.
    let spaced: String = F1
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    let out = run(
        &["decode", "--proto", "mih", "--compact"],
        Some(spaced.as_bytes()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = out.stdout;
    assert_eq!(
        json.iter().filter(|&&b| b == b'\n').count(),
        1,
        "compact is one line"
    );

    // Binary file.
    let dir = std::env::temp_dir().join(format!("conformance-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("f1.bin");
    std::fs::write(&bin, hex::decode(F1).unwrap()).unwrap();
    let out = run(
        &[
            "decode",
            "--proto",
            "mih",
            "--file",
            bin.to_str().unwrap(),
            "--compact",
        ],
        None,
    );
    assert_eq!(out.stdout, json);

    // Encode from stdin gives the same hex; --out writes the binary.
    let out = run(&["encode", "--proto", "mih"], Some(&json));
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), F1);
    let back = dir.join("back.bin");
    let out = run(
        &["encode", "--proto", "mih", "--out", back.to_str().unwrap()],
        Some(&json),
    );
    assert!(out.status.success());
    assert_eq!(std::fs::read(&back).unwrap(), hex::decode(F1).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn encode_by_message_name_without_mid() {
    let json = r#"{"message": "MIH_DeRegister.response", "header": {"tid": 7},
        "tlvs": [{"type": 1, "value": "a"}, {"type": 2, "value": "b"}, {"type": 3, "value": 0}]}"#;
    let out = run(&["encode", "--proto", "mih", json], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "100018030007000b0102016102020162030100"
    );
}

fn assert_one_line_error(out: &Output, needle: &str) {
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
}

#[test]
fn bad_input_is_one_line_and_non_zero() {
    assert_one_line_error(&run(&["decode", "--proto", "mih", "zz"], None), "bad hex");
    assert_one_line_error(
        &run(&["decode", "--proto", "mih", "1000"], None),
        "header needs 8 octets",
    );
    // Payload length says 86 but one octet is missing.
    assert_one_line_error(
        &run(&["decode", "--proto", "mih", &F1[..F1.len() - 2]], None),
        "payload length 86",
    );
    // N2N_HO_Commit.request without the MN link ID (TLV 59): drop its 13 octets.
    let f = hex::decode(F1).unwrap();
    let mut broken = f[..47].to_vec();
    broken.extend_from_slice(&f[60..]);
    broken[7] -= 13;
    assert_one_line_error(
        &run(&["decode", "--proto", "mih", &hex::encode(&broken)], None),
        "MIH_N2N_HO_Commit.request: mandatory TLV 59 (MN link ID) is missing",
    );
    assert_one_line_error(&run(&["encode", "--proto", "mih", "{"], None), "bad JSON");
    assert_one_line_error(
        &run(
            &[
                "encode",
                "--proto",
                "mih",
                r#"{"message":"MIH_Nope.request","tlvs":[]}"#,
            ],
            None,
        ),
        "unknown message name",
    );
}
