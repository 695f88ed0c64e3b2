//! Fuzz the MIH-User's X2AP intake: the APER decoder (`mih_user::x2ap::decode`),
//! the sans-IO trigger (a small pending table, PDUs split by the TCP tap's
//! length-prefix framing, time moving on), the SCTP packet/chunk parser with
//! the fragment reassembler, and the pcap/pcapng replay. Every parser sees
//! the same input; none may panic, and the trigger's table stays bounded.
//! Seeds: the X2AP golden vectors (`conformance/vectors/x2ap/*.json`) and the
//! SCTP capture `conformance/vectors/x2ap/x2ap_sctp.pcap`
//! (`fuzz/seed_corpus.sh mih_user_x2ap conformance/vectors/x2ap` plus a copy of the pcap).
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mih_user::x2ap::framing::LengthPrefixed;
use mih_user::x2ap::sctp::{Chunk, PcapReplay, Reassembler, SctpPacket, StreamKey};
use mih_user::x2ap::{decode, Message, X2Trigger, X2TriggerConfig, MAX_PDU_LEN};

fuzz_target!(|data: &[u8]| {
    // 1. The decoder, directly.
    if let Ok(pdu) = decode(data) {
        let _ = pdu.procedure_name();
        let _ = pdu.message_name();
        match &pdu.message {
            Message::HandoverRequest(r) => {
                assert!(!r.e_rabs.is_empty() && r.e_rabs.len() <= 256);
                assert!(r.old_enb_ue_x2ap_id <= 4095);
                assert!(r.target_cell.cell_id <= 0x0fff_ffff);
                for e in &r.e_rabs {
                    let _ = e.ul_gtp_tunnel.address.to_string();
                }
            }
            Message::HandoverRequestAcknowledge(a) => {
                assert!(!a.admitted_e_rabs.is_empty() && a.admitted_e_rabs.len() <= 256);
            }
            _ => {}
        }
    }

    // 2. The trigger: the whole input as one PDU, then as length-prefixed records.
    let mut trigger = X2Trigger::new(X2TriggerConfig {
        max_pending: 3,
        preparation_timeout_ms: 5,
        completion_timeout_ms: 7,
        ..X2TriggerConfig::default()
    })
    .expect("empty tables");
    let t0 = Instant::now();
    trigger.handle_pdu(t0, data);
    while trigger.poll_event().is_some() {}
    let mut framing = LengthPrefixed::new();
    framing.push(data);
    let mut step = 0u64;
    while let Ok(Some(pdu)) = framing.next_pdu() {
        step += 1;
        trigger.handle_pdu(t0 + Duration::from_millis(step), &pdu);
        while trigger.poll_event().is_some() {}
        assert!(trigger.pending_len() <= 3);
    }
    trigger.handle_timeout(t0 + Duration::from_secs(1));
    while trigger.poll_event().is_some() {}
    assert_eq!(trigger.pending_len(), 0);
    let c = trigger.counters();
    assert!(c.malformed + c.procedures().map(|(_, _, n)| n).sum::<u64>() == c.pdus);

    // 3. SCTP packet, chunks and reassembly.
    if let Ok(p) = SctpPacket::parse(data) {
        let _ = p.checksum_ok();
        let mut r = Reassembler::new();
        for chunk in p.chunks() {
            match chunk {
                Ok(Chunk::Data(d)) => {
                    let key = StreamKey {
                        src: None,
                        dst: None,
                        stream_id: d.stream_id,
                    };
                    let _ = r.push(key, &d);
                }
                Ok(Chunk::Other { .. }) => {}
                Err(_) => break,
            }
        }
    }

    // 4. Capture replay.
    if let Ok(replay) = PcapReplay::new(data) {
        for item in replay.take(10_000) {
            match item {
                Ok(c) => {
                    assert!(c.pdu.len() <= MAX_PDU_LEN);
                    let _ = decode(&c.pdu);
                }
                Err(_) => break,
            }
        }
    }
});
