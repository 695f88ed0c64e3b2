//! Replay of X2AP over SCTP captures (sans-IO): the pycrate-built pcap, and
//! captures built here with fragments, other PPIDs, other link types and damage.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mih_user::x2ap::sctp::{build_data_packet, x2ap_chunk, CaptureError, PcapReplay, X2AP_PPID};
use mih_user::x2ap::{decode, X2Event, X2Trigger, X2TriggerConfig};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conformance/vectors/x2ap")
}

fn vector_hex(name: &str) -> Vec<u8> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join(format!("{name}.json"))).unwrap())
            .unwrap();
    hex::decode(v["hex"].as_str().unwrap()).unwrap()
}

#[test]
fn committed_pcap_yields_every_vector_in_order() {
    let file = std::fs::read(dir().join("x2ap_sctp.pcap")).unwrap();
    let order: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("x2ap_sctp.pcap.json")).unwrap())
            .unwrap();
    let names: Vec<&str> = order["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut replay = PcapReplay::new(&file).unwrap();
    let got: Vec<_> = replay.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(got.len(), names.len());
    for (i, (c, name)) in got.iter().zip(&names).enumerate() {
        assert_eq!(c.pdu, vector_hex(name), "{name}");
        assert_eq!(c.packet_index, i as u64);
        assert_eq!(c.src.unwrap().to_string(), "10.0.0.1:36422");
        assert_eq!(c.dst.unwrap().to_string(), "10.0.0.2:36422");
        assert!(decode(&c.pdu).is_ok());
    }
    let s = replay.stats();
    assert_eq!((s.packets, s.data_chunks, s.x2ap_messages), (9, 9, 9));
    assert_eq!((s.bad_checksums, s.malformed, s.not_sctp), (0, 0, 0));
    assert_eq!(
        got[1].timestamp - got[0].timestamp,
        Duration::from_millis(10)
    );
}

#[test]
fn committed_pcap_drives_the_trigger() {
    let file = std::fs::read(dir().join("x2ap_sctp.pcap")).unwrap();
    let mut t = X2Trigger::new(
        toml::from_str(
            r#"
            [[neighbours]]
            plmn = "00f110"
            enb_id = 0x1a2b3
            mihf_id = "enbc-b"
            [[ues]]
            ue_address = "10.45.0.7"
            old_enb_ue_x2ap_id = 17
        "#,
        )
        .unwrap(),
    )
    .unwrap();
    let start = Instant::now();
    let mut first = None;
    let mut events = Vec::new();
    for c in PcapReplay::new(&file).unwrap() {
        let c = c.unwrap();
        let f = *first.get_or_insert(c.timestamp);
        t.handle_pdu(start + (c.timestamp - f), &c.pdu);
        while let Some(e) = t.poll_event() {
            events.push(e);
        }
    }
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            X2Event::HandoverPrepared(_) => "prepared",
            X2Event::HandoverTriggered(_) => "triggered",
            X2Event::Forget { .. } => "forget",
            X2Event::Released(_) => "released",
            X2Event::UnknownUe(_) => "unknown-ue",
            X2Event::UnknownTarget(_) => "unknown-target",
            X2Event::Ignored { .. } => "ignored",
            X2Event::Malformed(_) => "malformed",
        })
        .collect();
    // request, ack (trigger), failure for 18 (unknown), cancel of 17 (forget),
    // cancel of 4095 (unknown), release of 17 (no longer pending: unknown),
    // then three procedures the trigger ignores.
    assert_eq!(
        kinds,
        [
            "prepared",
            "triggered",
            "unknown-ue",
            "forget",
            "unknown-ue",
            "unknown-ue",
            "ignored",
            "ignored",
            "ignored"
        ]
    );
}

// --- captures built here ------------------------------------------------------

fn pcap(linktype: u32, packets: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&linktype.to_le_bytes());
    for (i, p) in packets.iter().enumerate() {
        out.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn ipv4(payload: &[u8], protocol: u8) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, protocol, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    h[2..4].copy_from_slice(&total.to_be_bytes());
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn ethernet(ip: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    f.extend_from_slice(ip);
    f
}

/// One SCTP packet with DATA chunks (flags, tsn, ppid, data), checksum left 0.
fn sctp_chunks(chunks: &[(u8, u32, u32, &[u8])]) -> Vec<u8> {
    let mut p = vec![0x8e, 0x46, 0x8e, 0x46, 0, 0, 0, 1, 0, 0, 0, 0];
    for (flags, tsn, ppid, data) in chunks {
        p.extend_from_slice(&[0, *flags]);
        p.extend_from_slice(&((16 + data.len()) as u16).to_be_bytes());
        p.extend_from_slice(&tsn.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0]);
        p.extend_from_slice(&ppid.to_be_bytes());
        p.extend_from_slice(data);
        while p.len() % 4 != 0 {
            p.push(0);
        }
    }
    p
}

#[test]
fn fragments_other_ppids_and_bad_checksums() {
    let request = vector_hex("handover_request");
    let (a, b) = request.split_at(100);
    let (b, c) = b.split_at(50);
    let packets = vec![
        // A fragmented HandoverRequest over two packets, plus an S1AP (PPID 18) message.
        ethernet(&ipv4(
            &sctp_chunks(&[(0x03, 0, 18, b"s1ap"), (0x02, 1, X2AP_PPID, a)]),
            132,
        )),
        ethernet(&ipv4(
            &sctp_chunks(&[(0x00, 2, X2AP_PPID, b), (0x01, 3, X2AP_PPID, c)]),
            132,
        )),
        // UDP: not SCTP.
        ethernet(&ipv4(&[0; 8], 17)),
        // A truncated SCTP packet.
        ethernet(&ipv4(&[0; 6], 132)),
        // An unfragmented PDU with a valid checksum.
        ethernet(&ipv4(
            &build_data_packet(
                36422,
                36422,
                1,
                &x2ap_chunk(9, 0, 0, &vector_hex("ue_context_release")),
            ),
            132,
        )),
    ];
    let file = pcap(1, &packets);
    let mut replay = PcapReplay::new(&file).unwrap();
    let got: Vec<_> = replay.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].pdu, request);
    assert_eq!(got[0].packet_index, 1);
    assert_eq!(got[1].pdu, vector_hex("ue_context_release"));
    let s = replay.stats();
    assert_eq!(s.packets, 5);
    assert_eq!(s.other_ppid, 1);
    assert_eq!(s.not_sctp, 1);
    assert_eq!(s.malformed, 1);
    assert_eq!(
        s.bad_checksums, 2,
        "the hand-built packets carry checksum 0"
    );
    assert_eq!(s.x2ap_messages, 2);
}

#[test]
fn raw_ip_and_linux_cooked_link_types() {
    let pdu = vector_hex("handover_cancel");
    let sctp = build_data_packet(36422, 36422, 1, &x2ap_chunk(1, 0, 0, &pdu));
    let raw = pcap(101, &[ipv4(&sctp, 132)]);
    let got: Vec<_> = PcapReplay::new(&raw)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got[0].pdu, pdu);

    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&ipv4(&sctp, 132));
    let cooked = pcap(113, &[sll]);
    let got: Vec<_> = PcapReplay::new(&cooked)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got[0].pdu, pdu);
}

#[test]
fn damaged_files_are_errors() {
    let file = std::fs::read(dir().join("x2ap_sctp.pcap")).unwrap();
    // Cut in the middle of the third record: two PDUs, then an error.
    let mut replay = PcapReplay::new(&file[..file.len() - 500]).unwrap();
    let items: Vec<_> = replay.by_ref().collect();
    assert!(items.len() >= 2);
    assert!(matches!(
        items.last(),
        Some(Err(CaptureError::Record { .. }))
    ));
    assert!(replay.next().is_none());
    // Every prefix and a handful of corruptions: errors or PDUs, never a panic.
    for n in 0..file.len() {
        if let Ok(r) = PcapReplay::new(&file[..n]) {
            for _ in r {}
        }
    }
    for i in (0..file.len()).step_by(7) {
        let mut f = file.clone();
        f[i] ^= 0xff;
        if let Ok(r) = PcapReplay::new(&f) {
            for _ in r {}
        }
    }
}

#[test]
fn trigger_sees_replay_time() {
    // Requests 10 ms apart in the capture: with a 5 ms preparation timeout the
    // first is forgotten when the next packet arrives.
    let mut t = X2Trigger::new(X2TriggerConfig {
        preparation_timeout_ms: 5,
        ..X2TriggerConfig::default()
    })
    .unwrap();
    let file = std::fs::read(dir().join("x2ap_sctp.pcap")).unwrap();
    let start = Instant::now();
    let mut saw_timeout = false;
    for c in PcapReplay::new(&file).unwrap() {
        let c = c.unwrap();
        let now = start + c.timestamp - Duration::from_secs(1_700_000_000);
        t.handle_pdu(now, &c.pdu);
        while let Some(e) = t.poll_event() {
            saw_timeout |= matches!(
                e,
                X2Event::Forget {
                    reason: mih_user::x2ap::ForgetReason::Timeout(_),
                    ..
                }
            );
        }
    }
    assert!(saw_timeout);
}
