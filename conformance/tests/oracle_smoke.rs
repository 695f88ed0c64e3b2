//! Smoke test of the Wireshark oracle against seven hand-built MIH frames
//! F1..F7 (the IEEE 802.21-2008 MIH protocol header and TLVs). The frames are built here
//! byte by byte (not with our encoder) and the expected values are what
//! `tshark -T fields` prints for them (tshark 4.0).
//!
//! Without tshark the tests print SKIP and pass, unless `CI` is set: then they fail.

use conformance::oracle::{
    run_tshark_json, run_tshark_mih, tcp_pcap, tshark_version, udp_pcap, MihDissection, Severity,
    MIH_PORT,
};

/// True if tshark can be used; panics when it is missing on CI.
fn tshark_or_skip() -> bool {
    testkit::require_tshark()
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).expect("hex")
}

/// MIHF_ID TLV: type, TLV length, OCTET_STRING length, text.
fn mihf_id(t: u8, id: &str) -> Vec<u8> {
    let mut v = vec![t, id.len() as u8 + 1, id.len() as u8];
    v.extend_from_slice(id.as_bytes());
    v
}

/// 8-octet header + payload; checks the Payload Length written in `hdr`.
fn frame(hdr: &str, parts: &[Vec<u8>]) -> Vec<u8> {
    let mut f = h(hdr);
    assert_eq!(f.len(), 8);
    for p in parts {
        f.extend_from_slice(p);
    }
    assert_eq!(
        u16::from_be_bytes([f[6], f[7]]) as usize,
        f.len() - 8,
        "Payload Length of {hdr}"
    );
    f
}

const S: &str = "mihf-serving";
const T: &str = "mihf-target";
const QOS: &str = "01 01 00 0014 01 00 000a 01 00 0032 01 00 0005 00";

fn vendor_tlv(len: usize) -> Vec<u8> {
    let mut value = b"ODT".to_vec();
    value.resize(len.max(3), 0x11);
    value.truncate(len);
    let mut v = vec![100u8];
    if len <= 128 {
        v.push(len as u8);
    } else {
        v.extend_from_slice(&[0x81, (len - 128) as u8]);
    }
    v.extend_from_slice(&value);
    v
}

/// The hand-built frames F1..F7.
fn section6_frames() -> Vec<Vec<u8>> {
    let qos = h(QOS);
    let f1 = frame(
        "18 00 34 09 01 23 00 56",
        &[
            mihf_id(1, S),
            mihf_id(2, T),
            mihf_id(0x34, "mn-mihf"),
            h("3b 0b 13 00 0006 06 02aabbccdd01"),
            h("3c 0a 00 0006 06 02aabbccdd02"),
            [h("3f 14"), qos.clone(), h("00 02")].concat(),
        ],
    );
    let f2 = frame("14 00 34 09 01 23 00 1d", &[mihf_id(1, T), mihf_id(2, S)]);
    let f3 = frame(
        "10 00 38 09 01 23 00 4e",
        &[
            mihf_id(1, T),
            mihf_id(2, S),
            h("03 01 00"),
            mihf_id(0x34, "mn-mihf"),
            h("0d 0c 13 00 0006 06 02aabbccdd01 00"),
            [h("39 14"), qos, h("01 05")].concat(),
        ],
    );
    let f4 = frame(
        "10 00 14 01 00 01 00 2d",
        &[
            mihf_id(1, S),
            mihf_id(2, T),
            h("05 04 00000016"),
            h("06 04 0000000d"),
            h("08 02 0001"),
        ],
    );
    let base = || vec![mihf_id(1, T), mihf_id(2, S), h("03 01 00")];
    let mut p5 = base();
    p5.push([h("30 81 af 01 81 ac"), vec![0x55; 300]].concat());
    let f5 = frame("10 00 48 01 00 02 01 52", &p5);
    let mut p6 = base();
    p6.push([h("30 82 03 68 01 82 03 64"), vec![0xaa; 996]].concat());
    let f6 = frame("10 00 48 01 00 03 04 0c", &p6);
    let mut p7 = base();
    p7.extend([0, 127, 128, 129, 255, 256].map(vendor_tlv));
    let f7 = frame("10 00 48 01 00 04 03 ae", &p7);
    assert_eq!([f1.len(), f2.len(), f3.len(), f4.len()], [94, 37, 86, 53]);
    vec![f1, f2, f3, f4, f5, f6, f7]
}

/// One row of the §6 table (lengths converted to real value lengths).
struct Row {
    ack_req: bool,
    ack_rsp: bool,
    mid: u16,
    sid: u8,
    opcode: u8,
    aid: u16,
    tid: u16,
    pay_len: u16,
    types: Vec<u8>,
    lengths: Vec<usize>,
}

fn section6_table() -> Vec<Row> {
    let row = |ack_req, ack_rsp, mid: u16, tid, pay_len, types: &[u8], lengths: &[usize]| Row {
        ack_req,
        ack_rsp,
        mid,
        sid: (mid >> 12) as u8,
        opcode: ((mid >> 10) & 3) as u8,
        aid: mid & 0x3ff,
        tid,
        pay_len,
        types: types.to_vec(),
        lengths: lengths.to_vec(),
    };
    vec![
        row(
            true,
            false,
            0x3409,
            291,
            86,
            &[1, 2, 52, 59, 60, 63],
            &[13, 12, 8, 11, 10, 20],
        ),
        row(false, true, 0x3409, 291, 29, &[1, 2], &[12, 13]),
        row(
            false,
            false,
            0x3809,
            291,
            78,
            &[1, 2, 3, 52, 13, 57],
            &[12, 13, 1, 8, 12, 20],
        ),
        row(
            false,
            false,
            0x1401,
            1,
            45,
            &[1, 2, 5, 6, 8],
            &[13, 12, 4, 4, 2],
        ),
        // tshark: tlv_length 12,13,1 + tlv_length_ext 175 (= 303 − 128)
        row(
            false,
            false,
            0x4801,
            2,
            338,
            &[1, 2, 3, 48],
            &[12, 13, 1, 303],
        ),
        // ext 872 (= 1000 − 128)
        row(
            false,
            false,
            0x4801,
            3,
            1036,
            &[1, 2, 3, 48],
            &[12, 13, 1, 1000],
        ),
        // lengths 0,127,128 + ext 1,127,128
        row(
            false,
            false,
            0x4801,
            4,
            942,
            &[1, 2, 3, 100, 100, 100, 100, 100, 100],
            &[12, 13, 1, 0, 127, 128, 129, 255, 256],
        ),
    ]
}

fn check_row(i: usize, d: &MihDissection, r: &Row) {
    let ctx = format!("F{} ({d:?})", i + 1);
    assert!(d.present, "{ctx}: no MIH layer");
    assert_eq!(d.mih_layers, 1, "{ctx}");
    assert_eq!(d.version, Some(1), "{ctx}: version");
    assert_eq!(d.ack_req, Some(r.ack_req), "{ctx}: ack_req");
    assert_eq!(d.ack_rsp, Some(r.ack_rsp), "{ctx}: ack_rsp");
    assert_eq!(d.uir, Some(false), "{ctx}: uir");
    assert_eq!(d.more_frag, Some(false), "{ctx}: more_frag");
    assert_eq!(d.frag_no, Some(0), "{ctx}: frag_no");
    assert_eq!(d.mid, Some(r.mid), "{ctx}: mid");
    assert_eq!(d.sid, Some(r.sid), "{ctx}: sid");
    assert_eq!(d.opcode, Some(r.opcode), "{ctx}: opcode");
    assert_eq!(d.aid, Some(r.aid), "{ctx}: aid");
    assert_eq!(d.tid, Some(r.tid), "{ctx}: tid");
    assert_eq!(d.payload_len, Some(r.pay_len), "{ctx}: payload length");
    assert_eq!(d.tlv_types, r.types, "{ctx}: TLV types");
    let lengths: Vec<Option<usize>> = r.lengths.iter().copied().map(Some).collect();
    assert_eq!(d.tlv_lengths, lengths, "{ctx}: TLV value lengths");
    assert!(!d.fragmented_tlv, "{ctx}: fragmented TLV shown");
    assert!(d.expert.is_empty(), "{ctx}: expert items: {:?}", d.expert);
}

#[test]
fn section6_frames_over_udp_match_the_table() {
    if !tshark_or_skip() {
        return;
    }
    eprintln!("using {}", tshark_version().unwrap_or_default());
    let frames = section6_frames();
    let dissections = run_tshark_mih(&udp_pcap(&frames, MIH_PORT)).expect("tshark run");
    let table = section6_table();
    assert_eq!(dissections.len(), table.len());
    for (i, (d, r)) in dissections.iter().zip(&table).enumerate() {
        assert_eq!(d.frame_number as usize, i + 1);
        check_row(i, d, r);
    }
}

#[test]
fn section6_frames_over_tcp_match_the_table() {
    if !tshark_or_skip() {
        return;
    }
    let frames = section6_frames();
    let dissections = run_tshark_mih(&tcp_pcap(&frames, MIH_PORT)).expect("tshark run");
    assert_eq!(dissections.len(), 3 + frames.len());
    for d in &dissections[..3] {
        assert!(!d.present, "handshake packet {} has MIH", d.frame_number);
        assert!(
            d.expert.is_empty(),
            "handshake packet {}: {:?}",
            d.frame_number,
            d.expert
        );
    }
    for (i, (d, r)) in dissections[3..].iter().zip(&section6_table()).enumerate() {
        check_row(i, d, r);
    }
}

/// The oracle must see problems, or "no expert items" above would prove nothing.
#[test]
fn oracle_reports_malformed_frames_and_bad_checksums() {
    if !tshark_or_skip() {
        return;
    }
    let frames = section6_frames();
    let mut truncated = frames[1].clone();
    truncated[7] += 5; // Payload Length 5 octets past the end of the datagram
    let mut fragmented = frames[0].clone();
    fragmented[0] |= 1; // M (more fragments)
    let mut pcap = udp_pcap(&[truncated, fragmented, frames[3].clone()], MIH_PORT);
    let last = pcap.len() - 1;
    pcap[last] ^= 0xff; // corrupt the last octet of F4 in the third packet: UDP checksum now wrong

    let d = run_tshark_mih(&pcap).expect("tshark run");
    assert_eq!(d.len(), 3);

    assert!(d[0].present);
    assert_eq!(d[0].tlv_types, [1, 2]);
    assert!(
        d[0].expert.iter().any(|e| e.severity == Severity::Error
            && e.group == "Malformed"
            && e.protocol == "mih"),
        "truncated frame: {:?}",
        d[0].expert
    );

    assert!(d[1].present);
    assert_eq!(d[1].more_frag, Some(true));
    assert!(d[1].fragmented_tlv, "{:?}", d[1]);
    assert!(d[1].tlv_types.is_empty());

    assert!(
        d[2].expert
            .iter()
            .any(|e| e.group == "Checksum" && e.protocol == "udp"),
        "corrupted packet: {:?}",
        d[2].expert
    );
}

#[test]
fn generic_json_run() {
    if !tshark_or_skip() {
        return;
    }
    let v = run_tshark_json(
        &udp_pcap(&section6_frames()[..2], MIH_PORT),
        &["-Y", "mih.acq_resp == 1"],
    )
    .expect("tshark run");
    let packets = v.as_array().expect("array of packets");
    assert_eq!(packets.len(), 1, "display filter keeps only F2");
    let layers = &packets[0]["_source"]["layers"];
    assert_eq!(layers["frame"]["frame.number"], "2");
    assert_eq!(layers["udp"]["udp.dstport"], "4551");
    assert_eq!(layers["mih"]["mih.tid"], "291");
}
