//! Wireshark oracle: every MIH golden vector, sent as UDP to port 4551 in a
//! pcap, must be decoded by tshark as MIH with the same header fields and the
//! same TLV types and lengths as our decoder finds, with no malformed or
//! expert warning/error items.
//!
//! tshark missing: the test fails under CI (`CI` set) and is skipped locally.

use bytes::Bytes;
use conformance::oracle;
use mihf::wire::Frame;

/// Vectors where Wireshark 4.0's dissector is known to be wrong, with the
/// number of TLVs it decodes correctly before it fails. IP_ADDR (TLVs 35-37)
/// is a TRANSPORT_ADDR: address family (2 octets), then an OCTET_STRING
/// (length octet + address), as in IEEE 802.21-2008 Annex F and ODTONE;
/// packet-mih.c reads the length one octet late and throws an exception.
/// For these the test still requires every header field and every TLV up to
/// the failing one to match, and the failure to sit exactly there.
const KNOWN_WIRESHARK_BUGS: &[(&str, usize)] = &[("n2n_ho_query_resources.request", 5)];

fn vectors() -> Vec<(String, Vec<u8>)> {
    conformance::mih_vectors::load_files()
        .into_iter()
        .map(|(name, v)| (name, hex::decode(v["hex"].as_str().unwrap()).unwrap()))
        .collect()
}

#[test]
fn wireshark_decodes_every_golden_vector_like_we_do() {
    if !testkit::require_tshark() {
        return;
    }
    let vectors = vectors();
    assert!(vectors.len() >= 26, "expected the full vector set");
    let frames: Vec<Vec<u8>> = vectors.iter().map(|(_, b)| b.clone()).collect();
    let pcap = oracle::udp_pcap(&frames, 4551);
    let dissections = oracle::run_tshark_mih(&pcap).unwrap();
    assert_eq!(dissections.len(), vectors.len());

    let mut failures = Vec::new();
    for ((name, bytes), d) in vectors.iter().zip(&dissections) {
        let frame = Frame::parse(Bytes::from(bytes.clone())).unwrap();
        let h = frame.header();
        let ours_types: Vec<u8> = frame.tlvs().map(|t| t.ty).collect();
        let ours_lengths: Vec<Option<usize>> = frame.tlvs().map(|t| Some(t.value.len())).collect();
        let mut problems = Vec::new();
        let mut check = |what: &str, theirs: String, ours: String| {
            if theirs != ours {
                problems.push(format!("{what}: tshark {theirs}, ours {ours}"));
            }
        };
        check("present", d.present.to_string(), "true".into());
        check(
            "version",
            format!("{:?}", d.version),
            format!("{:?}", Some(h.version)),
        );
        check(
            "ack_req",
            format!("{:?}", d.ack_req),
            format!("{:?}", Some(h.ack_req)),
        );
        check(
            "ack_rsp",
            format!("{:?}", d.ack_rsp),
            format!("{:?}", Some(h.ack_rsp)),
        );
        check("uir", format!("{:?}", d.uir), format!("{:?}", Some(h.uir)));
        check(
            "more_frag",
            format!("{:?}", d.more_frag),
            format!("{:?}", Some(h.more_frag)),
        );
        check(
            "frag_no",
            format!("{:?}", d.frag_no),
            format!("{:?}", Some(h.frag_no)),
        );
        check(
            "sid",
            format!("{:?}", d.sid),
            format!("{:?}", Some(h.mid.sid().0)),
        );
        check(
            "opcode",
            format!("{:?}", d.opcode),
            format!("{:?}", Some(h.mid.opcode() as u8)),
        );
        check(
            "aid",
            format!("{:?}", d.aid),
            format!("{:?}", Some(h.mid.aid())),
        );
        check("tid", format!("{:?}", d.tid), format!("{:?}", Some(h.tid)));
        check(
            "payload_len",
            format!("{:?}", d.payload_len),
            format!("{:?}", Some(h.payload_len)),
        );
        let known_bug = KNOWN_WIRESHARK_BUGS.iter().find(|(n, _)| n == name);
        let upto = known_bug.map_or(ours_types.len(), |&(_, k)| k);
        check(
            "tlv types",
            format!("{:?}", d.tlv_types),
            format!("{:?}", &ours_types[..upto]),
        );
        check(
            "tlv lengths",
            format!("{:?}", d.tlv_lengths),
            format!("{:?}", &ours_lengths[..upto]),
        );
        match known_bug {
            None if !d.expert.is_empty() => problems.push(format!("expert items: {:?}", d.expert)),
            Some(_) if !d.expert.iter().any(|e| e.message.contains("Malformed")) => {
                problems.push("known Wireshark bug no longer fires: drop it from the list".into())
            }
            _ => {}
        }
        if !problems.is_empty() {
            failures.push(format!("{name}:\n  {}", problems.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "Wireshark disagrees:\n{}",
        failures.join("\n")
    );
}
