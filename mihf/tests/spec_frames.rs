//! Reference frames: F1-F4 (hand-built, the same as in the oracle smoke
//! test) decode cleanly in tshark 4.0, and the three ODTONE frames were
//! captured between two real ODTONE 0.6 MIHFs.

use bytes::Bytes;
use mihf::wire::*;

fn frame(hex_text: &str) -> Bytes {
    let clean: String = hex_text.split_whitespace().collect();
    Bytes::from(hex::decode(clean).unwrap())
}

fn round_trip(bytes: &Bytes) -> Message {
    let msg = Message::from_bytes(bytes.clone()).unwrap();
    assert_eq!(&msg.to_bytes().unwrap(), bytes, "re-emit of {}", msg.name());
    msg
}

const F1: &str = "18 00 34 09 01 23 00 56
    01 0d 0c 6d69 6866 2d73 6572 7669 6e67
    02 0c 0b 6d69 6866 2d74 6172 6765 74
    34 08 07 6d6e 2d6d 6968 66
    3b 0b 13 00 0006 06 02aabbccdd01
    3c 0a 00 0006 06 02aabbccdd02
    3f 14 01 01 00 0014 01 00 000a 01 00 0032 01 00 0005 00 00 02";

#[test]
fn f1_n2n_ho_commit_request() {
    let msg = round_trip(&frame(F1));
    assert_eq!(msg.name(), "MIH_N2N_HO_Commit.request");
    assert!(msg.header.ack_req);
    assert_eq!(msg.header.tid, 0x123);
    assert_eq!(msg.source.as_str(), Some("mihf-serving"));
    assert_eq!(msg.destination.as_str(), Some("mihf-target"));
    let Body::N2nHoCommitRequest(req) = &msg.body else {
        panic!("{:?}", msg.body)
    };
    assert_eq!(req.mn_mihf_id.as_str(), Some("mn-mihf"));
    assert_eq!(req.mn_link_id.link_type, LinkType::IEEE_802_11);
    assert_eq!(
        req.mn_link_id.addr,
        LinkAddr::mac([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01])
    );
    assert_eq!(req.poa, LinkAddr::mac([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x02]));
    let res = req.requested_resources.as_ref().unwrap();
    let q = &res.qos;
    assert_eq!(q.num_cos_types, 1);
    assert_eq!(
        q.min_pk_tx_delay().to_vec(),
        vec![CosValue {
            cos_id: 0,
            value: 20
        }]
    );
    assert_eq!(
        q.avg_pk_tx_delay().to_vec(),
        vec![CosValue {
            cos_id: 0,
            value: 10
        }]
    );
    assert_eq!(
        q.max_pk_tx_delay().to_vec(),
        vec![CosValue {
            cos_id: 0,
            value: 50
        }]
    );
    assert_eq!(
        q.pk_delay_jitter().to_vec(),
        vec![CosValue {
            cos_id: 0,
            value: 5
        }]
    );
    assert!(q.pk_loss_rate().is_empty());
    assert_eq!(res.tsp, TspContainer::Null);
    assert_eq!(res.ho_cause, HoCause::NO_RESOURCE);
}

#[test]
fn f2_pure_ack() {
    let bytes = frame(
        "14 00 34 09 01 23 00 1d 01 0c 0b 6d6968662d746172676574 02 0d 0c 6d6968662d73657276696e67",
    );
    let msg = round_trip(&bytes);
    assert_eq!(msg.body, Body::Ack);
    assert_eq!(msg.name(), "MIH_N2N_HO_Commit.request (ACK)");
}

#[test]
fn f3_n2n_ho_commit_response() {
    let bytes = frame(
        "10 00 38 09 01 23 00 4e
         01 0c 0b 6d6968662d746172676574 02 0d 0c 6d6968662d73657276696e67
         03 01 00
         34 08 07 6d6e2d6d696866
         0d 0c 13 00 0006 06 02aabbccdd01 00
         39 14 01 01 00 0014 01 00 000a 01 00 0032 01 00 0005 00 01 05",
    );
    let msg = round_trip(&bytes);
    let Body::N2nHoCommitResponse(rsp) = &msg.body else {
        panic!()
    };
    assert!(rsp.status.is_success());
    assert_eq!(rsp.link.as_ref().unwrap().poa, None);
    assert_eq!(
        rsp.assigned_resources.as_ref().unwrap().tsp,
        TspContainer::PredefCfgId(5)
    );
}

#[test]
fn f4_capability_discover_request() {
    let bytes = frame(
        "10 00 14 01 00 01 00 2d 01 0d 0c 6d6968662d73657276696e67 02 0c 0b 6d6968662d746172676574
         05 04 00000016 06 04 0000000d 08 02 0001",
    );
    let msg = round_trip(&bytes);
    let Body::CapabilityDiscoverRequest(req) = &msg.body else {
        panic!()
    };
    let ev = req.event_list.unwrap();
    assert!(ev.contains(EventList::LINK_UP | EventList::LINK_DOWN | EventList::LINK_GOING_DOWN));
    assert!(!ev.contains(EventList::LINK_DETECTED));
    assert!(req.command_list.unwrap().contains(CommandList::NET_HO));
    assert!(req.transports.unwrap().contains(TransportList::UDP));
}

#[test]
fn odtone_frames() {
    let req = round_trip(&frame("18003409032800310106056d696866310206056d696866323406056d6e2d30313b0b13000006060200000000013c0a00000606020000000002"));
    assert_eq!(req.name(), "MIH_N2N_HO_Commit.request");
    // ODTONE 0.6 leaves out the Requested resource set (TLV 63).
    let Body::N2nHoCommitRequest(body) = &req.body else {
        panic!()
    };
    assert!(body.requested_resources.is_none());
    let rsp = round_trip(&frame(
        "1c0038090328001b0106056d696866320206056d696866310301003406056d6e2d3031",
    ));
    assert!(rsp.header.ack_req && rsp.header.ack_rsp);
    let ack = round_trip(&frame("14003409032800100106056d696866320206056d69686631"));
    assert_eq!(ack.body, Body::Ack);
}
