//! Wireshark oracle for CXTP: our Lua dissector (`conformance/wireshark/cxtp.lua`)
//! loaded into tshark must show every golden vector with the same header
//! fields, addresses, tokens, key blocks, CDBs and entries as our decoder, with
//! no expert items, including messages split across and packed into TCP
//! segments. Skipped when tshark is missing, except under CI.

use std::path::PathBuf;

use bytes::Bytes;
use conformance::oracle::{run_tshark_json, tcp_pcap, CXTP_TCP_PORT};
use cxtp::wire::MessageView;
use serde_json::Value;

fn lua() -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("wireshark/cxtp.lua");
    format!("lua_script:{}", p.display())
}

fn have_tshark() -> bool {
    testkit::require_tshark()
}

fn vectors() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors/cxtp");
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let j: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (
                j["name"].as_str().unwrap().to_string(),
                hex::decode(j["hex"].as_str().unwrap()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Every value of `key` anywhere below `v` (arrays flattened).
fn all<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == key {
                    match x {
                        Value::Array(a) => out.extend(a.iter()),
                        x => out.push(x),
                    }
                }
                all(x, key, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| all(x, key, out)),
        _ => {}
    }
}
fn values(v: &Value, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    all(v, key, &mut out);
    out.iter()
        .map(|x| {
            x.as_str()
                .map(String::from)
                .unwrap_or_else(|| x.to_string())
        })
        .collect()
}
fn num(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).unwrap(),
        None => s.parse().unwrap(),
    }
}

#[test]
fn every_golden_vector_dissects_like_our_decoder() {
    if !have_tshark() {
        return;
    }
    let vs = vectors();
    let segs: Vec<Vec<u8>> = vs.iter().map(|(_, b)| b.clone()).collect();
    let out = run_tshark_json(&tcp_pcap(&segs, CXTP_TCP_PORT), &["-X", &lua()]).unwrap();
    let pkts = out.as_array().unwrap();
    assert_eq!(pkts.len(), 3 + vs.len());
    for (i, (name, bytes)) in vs.iter().enumerate() {
        let layers = &pkts[3 + i]["_source"]["layers"];
        let c = &layers["cxtp"];
        assert!(c.is_object(), "{name}: no cxtp layer: {layers}");
        assert!(
            values(layers, "_ws.expert").is_empty() && layers.get("_ws.malformed").is_none(),
            "{name}: {c}"
        );
        let msg = MessageView::parse(Bytes::from(bytes.clone())).unwrap();
        assert_eq!(num(&values(c, "cxtp.version")[0]), 1, "{name}");
        assert_eq!(
            num(&values(c, "cxtp.type")[0]),
            msg.message_type().code() as u64,
            "{name}"
        );
        assert_eq!(
            num(&values(c, "cxtp.length")[0]),
            bytes.len() as u64,
            "{name}"
        );
        assert_eq!(
            values(c, "cxtp.v")[0] == "1",
            msg.mn_addr().is_ipv4(),
            "{name}"
        );
        let mn = if msg.mn_addr().is_ipv4() {
            "cxtp.mn_addr"
        } else {
            "cxtp.mn_addr6"
        };
        assert_eq!(values(c, mn), vec![msg.mn_addr().to_string()], "{name}");
        match &msg {
            MessageView::Ctar(m) => {
                let ar = if m.ar_addr.is_ipv4() {
                    "cxtp.ar_addr"
                } else {
                    "cxtp.ar_addr6"
                };
                assert_eq!(values(c, ar), vec![m.ar_addr.to_string()], "{name}");
                assert_eq!(num(&values(c, "cxtp.seq")[0]), m.seq as u64);
                assert_eq!(
                    values(c, "cxtp.token")[0].replace(':', ""),
                    hex::encode(m.token.0)
                );
                assert_eq!(values(c, "cxtp.a")[0] == "1", m.ack);
                let fpts: Vec<u64> = values(c, "cxtp.cdb.fpt").iter().map(|s| num(s)).collect();
                assert_eq!(
                    fpts,
                    m.requests().map(|r| r.fpt as u64).collect::<Vec<_>>(),
                    "{name}"
                );
            }
            MessageView::CtReq(m) => {
                assert_eq!(num(&values(c, "cxtp.seq")[0]), m.seq as u64);
                assert_eq!(
                    values(c, "cxtp.token")[0].replace(':', ""),
                    hex::encode(m.token.0)
                );
                let pvs: Vec<u64> = values(c, "cxtp.cdb.presence_vector")
                    .iter()
                    .map(|s| num(s))
                    .collect();
                assert_eq!(
                    pvs,
                    m.requests()
                        .filter_map(|r| r.presence_vector.map(u64::from))
                        .collect::<Vec<_>>()
                );
            }
            MessageView::Ctd(m) => {
                assert_eq!(num(&values(c, "cxtp.elapsed_ms")[0]), m.elapsed_ms as u64);
                if let Some(k) = &m.key_block {
                    assert_eq!(num(&values(c, "cxtp.key.algorithm")[0]), k.algorithm as u64);
                    assert_eq!(num(&values(c, "cxtp.key.length")[0]), k.key.len() as u64);
                    assert_eq!(
                        values(c, "cxtp.key.key")[0].replace(':', ""),
                        hex::encode(&k.key)
                    );
                } else {
                    assert!(values(c, "cxtp.key.algorithm").is_empty());
                }
                let fpts: Vec<u64> = values(c, "cxtp.cdb.fpt").iter().map(|s| num(s)).collect();
                assert_eq!(
                    fpts,
                    m.blocks().map(|b| b.fpt as u64).collect::<Vec<_>>(),
                    "{name}"
                );
                let lens: Vec<u64> = values(c, "cxtp.cdb.length")
                    .iter()
                    .map(|s| num(s))
                    .collect();
                assert_eq!(
                    lens,
                    m.blocks().map(|b| b.length as u64).collect::<Vec<_>>(),
                    "{name}"
                );
                if m.blocks().any(|b| b.fpt == 1) {
                    assert_eq!(values(c, "cxtp.mld.group")[0], "ff05::1:3", "{name}");
                }
            }
            MessageView::Ctaa(m) => {
                let st: Vec<u64> = values(c, "cxtp.entry.status")
                    .iter()
                    .map(|s| num(s))
                    .collect();
                assert_eq!(
                    st,
                    m.entries().map(|e| e.status as u64).collect::<Vec<_>>(),
                    "{name}"
                );
            }
            MessageView::Ctdr(m) => {
                assert_eq!(values(c, "cxtp.s")[0] == "1", m.success);
                let fp: Vec<u64> = values(c, "cxtp.entry.fpt").iter().map(|s| num(s)).collect();
                assert_eq!(
                    fp,
                    m.entries().map(|e| e.fpt as u64).collect::<Vec<_>>(),
                    "{name}"
                );
            }
            MessageView::Ctc(_) => {}
        }
    }
}

#[test]
fn tcp_framing_packed_and_split_messages_and_segmentation_blocks() {
    if !have_tshark() {
        return;
    }
    use cxtp::profile::Context;
    use cxtp::segment::{encode_transfer, CtdHeader, SegmentConfig};
    let vs = vectors();
    let ctc = vs.iter().find(|v| v.0 == "ctc_ipv4").unwrap().1.clone();
    let ctdr = vs.iter().find(|v| v.0 == "ctdr_ipv6").unwrap().1.clone();
    // A 20 KB context in 3 messages of at most 8 KB, cut into 1000-octet TCP segments.
    let cfg = SegmentConfig {
        max_message_len: 8192,
        ..SegmentConfig::default()
    };
    let hdr = CtdHeader {
        ack: true,
        elapsed_ms: 0,
        mn_addr: "192.0.2.1".parse().unwrap(),
        key_block: None,
    };
    let msgs = encode_transfer(
        &cfg,
        &hdr,
        &[Context::new(0xFF02, Bytes::from(vec![7u8; 20_000]))],
        99,
    )
    .unwrap();
    assert_eq!(msgs.len(), 3);
    let stream: Vec<u8> = msgs.iter().flat_map(|m| m.to_vec()).collect();
    let mut segs = vec![[ctc.clone(), ctdr.clone()].concat()];
    segs.extend(stream.chunks(1000).map(|c| c.to_vec()));
    let out = run_tshark_json(&tcp_pcap(&segs, CXTP_TCP_PORT), &["-X", &lua()]).unwrap();
    let pkts = out.as_array().unwrap();
    // Packet 3 holds two messages.
    let types: Vec<u64> = values(&pkts[3]["_source"]["layers"], "cxtp.type")
        .iter()
        .map(|s| num(s))
        .collect();
    assert_eq!(types, vec![6, 5]);
    // The three CTDs are reassembled from the TCP stream and fully dissected.
    let mut totals = Vec::new();
    let mut chunks = 0u64;
    let mut transfer_ids = Vec::new();
    for p in &pkts[4..] {
        let l = &p["_source"]["layers"];
        assert!(
            values(l, "_ws.expert").is_empty() && l.get("_ws.malformed").is_none(),
            "{l}"
        );
        totals.extend(values(l, "cxtp.seg.total").iter().map(|s| num(s)));
        chunks += values(l, "cxtp.seg.chunk_length")
            .iter()
            .map(|s| num(s))
            .sum::<u64>();
        transfer_ids.extend(values(l, "cxtp.seg.transfer_id").iter().map(|s| num(s)));
    }
    assert!(!totals.is_empty() && totals.iter().all(|t| *t == 20_000));
    assert_eq!(chunks, 20_000);
    assert_eq!(transfer_ids, vec![99, 99, 99]);
}

#[test]
fn malformed_messages_get_expert_items_not_crashes() {
    if !have_tshark() {
        return;
    }
    let bad = vec![
        hex::decode("23800014000000000c0000201000102000000000").unwrap(), // CDB overrun
        hex::decode("2680000cc0000201ffffffff").unwrap(), // CTC with trailing octets
    ];
    let out = run_tshark_json(&tcp_pcap(&bad, CXTP_TCP_PORT), &["-X", &lua()]).unwrap();
    for p in &out.as_array().unwrap()[3..] {
        let l = &p["_source"]["layers"];
        assert!(l.get("cxtp").is_some(), "{l}");
        assert!(
            !values(l, "_ws.expert").is_empty(),
            "expected an expert item: {l}"
        );
    }
}

#[test]
fn identified_transfer_echo_is_shown() {
    if !have_tshark() {
        return;
    }
    let vs = vectors();
    let pick = |name: &str| vs.iter().find(|v| v.0 == name).unwrap().1.clone();
    let segs = vec![
        pick("ctdr_ipv4_identified"),
        pick("ctdr_ipv4_identified_give_up"),
        pick("ctdr_ipv4"),
    ];
    let out = run_tshark_json(&tcp_pcap(&segs, CXTP_TCP_PORT), &["-X", &lua()]).unwrap();
    assert_eq!(
        values(&out, "cxtp.echo.transfer_id")
            .iter()
            .map(|s| num(s))
            .collect::<Vec<_>>(),
        vec![0x8000_0001, 0x8000_0002]
    );
    assert_eq!(
        values(&out, "cxtp.echo.index")
            .iter()
            .map(|s| num(s))
            .collect::<Vec<_>>(),
        vec![0, 0x7fff]
    );
    assert_eq!(values(&out, "cxtp.echo.verdict"), vec!["1", "1"]);
    // After the three packets of the TCP handshake: no expert items.
    for p in &out.as_array().unwrap()[3..] {
        let layers = &p["_source"]["layers"];
        assert!(values(layers, "_ws.expert").is_empty(), "{layers}");
    }
}
