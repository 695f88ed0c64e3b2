//! Wireshark oracle for X2AP: tshark must dissect every PDU of the SCTP
//! captures as X2AP (PPID 27, no malformed or error items, valid CRC32c) with
//! the same procedure codes, message types and UE X2AP IDs as our decoder, and
//! the same target cell, E-RAB IDs and GTP tunnels for the handover messages.
//!
//! Two captures: the one `conformance/x2ap/gen_vectors.py` builds (pycrate
//! PDUs, Ethernet/IPv4/SCTP by hand in Python), and one built here with
//! `mih_user::x2ap::sctp::build_data_packet` from every vector file, the
//! JSON-only ones included. Skipped when tshark is missing, except under CI.

use std::path::PathBuf;

use conformance::oracle::{run_tshark_json, DST_IP, DST_MAC, SRC_IP, SRC_MAC};
use mih_user::x2ap::sctp::{build_data_packet, x2ap_chunk, X2AP_PPID, X2AP_SCTP_PORT};
use mih_user::x2ap::{decode, Message, MessageType};
use serde_json::Value;

fn have_tshark() -> bool {
    testkit::require_tshark()
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors/x2ap")
}

/// The vectors in capture order.
fn vectors_in_capture_order() -> Vec<Value> {
    let order: Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("x2ap_sctp.pcap.json")).unwrap())
            .unwrap();
    order["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            let p = dir().join(format!("{}.json", n.as_str().unwrap()));
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
        })
        .collect()
}

/// Every value of `key` anywhere under `v`, in document order.
fn collect(v: &Value, key: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == key {
                    match x {
                        Value::String(s) => out.push(s.clone()),
                        Value::Array(a) => {
                            out.extend(a.iter().filter_map(|s| s.as_str().map(str::to_owned)))
                        }
                        _ => {}
                    }
                }
                collect(x, key, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, key, out)),
        _ => {}
    }
}

fn all(v: &Value, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    collect(v, key, &mut out);
    out
}

/// Whether `key` occurs anywhere under `v`.
fn has_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, x)| k == key || has_key(x, key)),
        Value::Array(a) => a.iter().any(|x| has_key(x, key)),
        _ => false,
    }
}

fn colon_hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn check(pcap: &[u8], vectors: &[Value]) {
    let out = run_tshark_json(pcap, &["-o", "sctp.checksum:CRC-32C"]).unwrap();
    let packets = out.as_array().unwrap();
    assert_eq!(packets.len(), vectors.len());
    for (pkt, v) in packets.iter().zip(vectors) {
        let name = v["name"].as_str().unwrap();
        let layers = &pkt["_source"]["layers"];
        let x2ap = layers
            .get("x2ap")
            .unwrap_or_else(|| panic!("{name}: tshark sees no X2AP: {layers}"));
        assert!(!has_key(pkt, "_ws.malformed"), "{name}: malformed");
        assert!(!has_key(pkt, "_ws.expert"), "{name}: expert items");
        assert_eq!(
            all(&layers["sctp"], "sctp.checksum.status"),
            ["1"],
            "{name}: CRC32c"
        );
        assert_eq!(
            all(&layers["sctp"], "sctp.data_payload_proto_id"),
            [X2AP_PPID.to_string()],
            "{name}"
        );

        let bytes = hex::decode(v["hex"].as_str().unwrap()).unwrap();
        let pdu = decode(&bytes).unwrap();
        let choice = match pdu.message_type {
            MessageType::InitiatingMessage => "0",
            MessageType::SuccessfulOutcome => "1",
            MessageType::UnsuccessfulOutcome => "2",
        };
        assert_eq!(x2ap["x2ap.X2AP_PDU"], choice, "{name}: message type");
        let codes = all(x2ap, "x2ap.procedureCode");
        assert_eq!(
            codes,
            [pdu.procedure_code.to_string()],
            "{name}: procedure code"
        );

        let ids: Vec<u64> = all(x2ap, "x2ap.UE_X2AP_ID")
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let want: Vec<u64> = v["ue_x2ap_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        assert_eq!(ids, want, "{name}: UE X2AP IDs (generator)");
        let ours: Vec<u64> = match &pdu.message {
            Message::HandoverRequest(r) => vec![r.old_enb_ue_x2ap_id.into()],
            Message::HandoverRequestAcknowledge(a) => {
                vec![a.old_enb_ue_x2ap_id.into(), a.new_enb_ue_x2ap_id.into()]
            }
            Message::HandoverPreparationFailure(f) => vec![f.old_enb_ue_x2ap_id.into()],
            Message::HandoverCancel(c) => std::iter::once(c.old_enb_ue_x2ap_id)
                .chain(c.new_enb_ue_x2ap_id)
                .map(u64::from)
                .collect(),
            Message::UeContextRelease(r) => {
                vec![r.old_enb_ue_x2ap_id.into(), r.new_enb_ue_x2ap_id.into()]
            }
            Message::Other => pdu
                .ue_x2ap_ids
                .iter()
                .flat_map(|i| [i.old_enb_ue_x2ap_id, i.new_enb_ue_x2ap_id])
                .flatten()
                .map(u64::from)
                .collect(),
        };
        assert_eq!(ids, ours, "{name}: UE X2AP IDs (our decoder)");
        let exts: Vec<u64> = all(x2ap, "x2ap.UE_X2AP_ID_Extension")
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let ours: Vec<u64> = pdu
            .ue_x2ap_ids
            .iter()
            .flat_map(|i| [i.old_enb_ue_x2ap_id_ext, i.new_enb_ue_x2ap_id_ext])
            .flatten()
            .map(u64::from)
            .collect();
        assert_eq!(exts, ours, "{name}: UE X2AP ID Extensions (our decoder)");

        match &pdu.message {
            Message::HandoverRequest(r) => {
                let cells = all(x2ap, "x2ap.eUTRANcellIdentifier");
                let target = colon_hex(&(r.target_cell.cell_id << 4).to_be_bytes());
                assert_eq!(cells.first(), Some(&target), "{name}: target cell first");
                let erabs: Vec<String> = r.e_rabs.iter().map(|e| e.e_rab_id.to_string()).collect();
                assert_eq!(all(x2ap, "x2ap.e_RAB_ID"), erabs, "{name}");
                let qcis: Vec<String> = r.e_rabs.iter().map(|e| e.qci.to_string()).collect();
                assert_eq!(all(x2ap, "x2ap.qCI"), qcis, "{name}");
                let teids: Vec<String> = r
                    .e_rabs
                    .iter()
                    .map(|e| colon_hex(&e.ul_gtp_tunnel.teid.to_be_bytes()))
                    .collect();
                assert_eq!(all(x2ap, "x2ap.gTP_TEID"), teids, "{name}");
                let mut addrs = all(x2ap, "x2ap.transportLayerAddressIPv4");
                addrs.extend(all(x2ap, "x2ap.transportLayerAddressIPv6"));
                let ours: Vec<String> = r
                    .e_rabs
                    .iter()
                    .map(|e| e.ul_gtp_tunnel.address.to_string())
                    .collect();
                assert_eq!(addrs, ours, "{name}");
                assert_eq!(
                    all(x2ap, "x2ap.mME_UE_S1AP_ID"),
                    [r.mme_ue_s1ap_id.to_string()]
                );
                assert_eq!(
                    all(x2ap, "x2ap.mME_Group_ID"),
                    [r.gummei.mme_group_id.to_string()]
                );
            }
            Message::HandoverRequestAcknowledge(a) => {
                let erabs: Vec<String> = a
                    .admitted_e_rabs
                    .iter()
                    .map(|e| e.e_rab_id.to_string())
                    .collect();
                assert_eq!(all(x2ap, "x2ap.e_RAB_ID"), erabs, "{name}");
                let teids: Vec<String> = a
                    .admitted_e_rabs
                    .iter()
                    .filter_map(|e| e.dl_gtp_tunnel.as_ref())
                    .map(|t| colon_hex(&t.teid.to_be_bytes()))
                    .collect();
                assert_eq!(all(x2ap, "x2ap.gTP_TEID"), teids, "{name}");
            }
            _ => {}
        }
    }
}

#[test]
fn pycrate_capture_is_x2ap_for_tshark() {
    if !have_tshark() {
        return;
    }
    let pcap = std::fs::read(dir().join("x2ap_sctp.pcap")).unwrap();
    check(&pcap, &vectors_in_capture_order());
}

/// Ethernet II / IPv4 (protocol 132, valid header checksum) around `sctp`.
fn frame(sctp: &[u8], ident: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(34 + sctp.len());
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + sctp.len()) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&ident.to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 132;
    ip[12..16].copy_from_slice(&SRC_IP);
    ip[16..20].copy_from_slice(&DST_IP);
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(sctp);
    f
}

fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(1_700_000_000u32).to_le_bytes());
        out.extend_from_slice(&(i as u32 * 1000).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// Every vector file, the capture's and the JSON-only ones, by name.
fn all_vectors() -> Vec<Value> {
    let mut v: Vec<Value> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && !p.to_string_lossy().ends_with(".pcap.json")
        })
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect();
    v.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    v
}

#[test]
fn rust_built_sctp_capture_is_x2ap_for_tshark() {
    if !have_tshark() {
        return;
    }
    let vectors = all_vectors();
    assert!(vectors.len() > vectors_in_capture_order().len());
    let frames: Vec<Vec<u8>> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let pdu = hex::decode(v["hex"].as_str().unwrap()).unwrap();
            let sctp = build_data_packet(
                X2AP_SCTP_PORT,
                X2AP_SCTP_PORT,
                0xcafe_f00d,
                &x2ap_chunk(7 + i as u32, 1, i as u16, &pdu),
            );
            frame(&sctp, i as u16)
        })
        .collect();
    check(&pcap(&frames), &vectors);
}
