//! mihfd (in-process, ephemeral loopback ports) against raw sockets that
//! play an ODTONE MIHF on the peer side and an ODTONE MIH-User on the SAP:
//! the capabilities mihfd advertises when it discovers a peer for a user,
//! and what an ODTONE-style user receives when it registers. Each test stops
//! its daemon before returning.
#![cfg(feature = "daemon")]

#[allow(dead_code)] // this file uses only some of the shared helpers
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::reg;
use daemon_kit::http::get_ok as http_get;
use mihf::daemon::client::SapClient;
use mihf::daemon::config::Config;
use mihf::daemon::Daemon;
use mihf::proto::node::PeerConfig;
use mihf::wire::message::*;
use mihf::wire::*;
use tokio::net::UdpSocket;

const T: Duration = Duration::from_secs(5);

fn cfg(id: &str, tcp: bool) -> Config {
    let mut c = Config::with_id(id);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    c.listen.udp = vec![any];
    c.listen.tcp = if tcp { vec![any] } else { vec![] };
    c.sap.listen = any;
    c.metrics.listen = Some(any);
    c.timers.retransmission_timeout_ms = 500;
    c.timers.ack_delay_ms = 20;
    c.timers.discovery_interval_ms = 0;
    c
}

async fn recv_from(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 2048];
    let (n, from) = tokio::time::timeout(T, s.recv_from(&mut buf))
        .await
        .expect("a frame within 5 s")
        .unwrap();
    buf.truncate(n);
    (buf, from)
}

fn everything_with_tcp() -> CapabilityDiscoverRequest {
    CapabilityDiscoverRequest {
        link_addr_list: None,
        event_list: Some(EventList(0x1ff)),
        command_list: Some(CommandList(0x1f)),
        is_query_types: Some(IsQueryTypeList(0xf)),
        transports: Some(TransportList::UDP | TransportList::TCP),
        mbb_ho_support: None,
    }
}

/// A user of mihfd asks a peer (a raw UDP socket) for its capabilities,
/// putting UDP|TCP and every event and command in its request.
async fn discover_through(tcp: bool) {
    let d = Daemon::start(&cfg("mihfd", tcp)).await.unwrap();
    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    d.add_peer(PeerConfig {
        id: MihfId::from_static("odtone"),
        udp: Some(peer.local_addr().unwrap()),
        tcp: None,
        prefer_tcp: false,
    })
    .unwrap();
    let mut user = SapClient::connect(
        d.sap_addr,
        reg("user", CommandList::NET_HO, EventList::LINK_UP),
    )
    .await
    .unwrap();
    let req = Message::new(
        Mid(0x1401),
        0,
        MihfId::default(),
        MihfId::from_static("odtone"),
        Body::CapabilityDiscoverRequest(everything_with_tcp()),
    );
    let (cnf, (frame, from)) = tokio::join!(user.request(req, T), async {
        let (frame, from) = recv_from(&peer).await;
        // Answer as ODTONE: its own capabilities, ACK piggy-backed.
        let got = Message::from_bytes(Bytes::from(frame.clone())).unwrap();
        let mut rsp = Message::new(
            Mid(0x1801),
            got.header.tid,
            MihfId::from_static("odtone"),
            MihfId::from_static("mihfd"),
            Body::CapabilityDiscoverResponse(CapabilityDiscoverResponse {
                status: Status::SUCCESS,
                link_addr_list: None,
                event_list: Some(EventList::LINK_DOWN | EventList::LINK_GOING_DOWN),
                command_list: Some(CommandList::MN_HO),
                is_query_types: None,
                transports: Some(TransportList::UDP | TransportList::TCP),
                mbb_ho_support: None,
            }),
        );
        rsp.header.ack_rsp = got.header.ack_req;
        peer.send_to(&rsp.to_bytes().unwrap(), from).await.unwrap();
        (frame, from)
    });
    assert_eq!(from, d.udp_addrs[0], "sent from the port mihfd listens on");
    // What reached the peer: mihfd's own capabilities, in the standard's
    // TLV order (5, 6, 7, 8), whatever the user asked for.
    let transports = if tcp { "0003" } else { "0001" };
    let expected = format!(
        "0106056d696866640207066f64746f6e6505040000000206040000000807080000000000000000080200{}",
        &transports[2..]
    );
    assert_eq!(
        ::hex::encode(&frame[8..]),
        expected,
        "payload of {}",
        ::hex::encode(&frame)
    );
    assert_eq!(
        &frame[..4],
        &[0x18, 0x00, 0x14, 0x01],
        "ACK-Req, MID 0x1401"
    );
    let out = Message::from_bytes(Bytes::from(frame)).unwrap();
    let Body::CapabilityDiscoverRequest(r) = &out.body else {
        panic!("{out:?}")
    };
    let want = if tcp {
        TransportList::UDP | TransportList::TCP
    } else {
        TransportList::UDP
    };
    assert_eq!(r.transports, Some(want));
    // The user's confirm reports the peer's capabilities.
    let cnf = cnf.unwrap();
    assert_eq!(cnf.header.mid, Mid(0x1001));
    assert_eq!(cnf.source.as_str(), Some("odtone"));
    assert_eq!(cnf.destination.as_str(), Some("user"));
    let Body::CapabilityDiscoverResponse(c) = &cnf.body else {
        panic!("{cnf:?}")
    };
    assert_eq!(c.status, Status::SUCCESS);
    assert_eq!(
        c.event_list,
        Some(EventList::LINK_DOWN | EventList::LINK_GOING_DOWN)
    );
    assert_eq!(c.command_list, Some(CommandList::MN_HO));
    assert_eq!(c.transports, Some(TransportList::UDP | TransportList::TCP));
    // And mihfd recorded them for the peer.
    let peers = http_get(d.metrics_addr.unwrap(), "/peers").await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&peers).unwrap();
    assert_eq!(v["peers"][0]["id"], "odtone");
    assert_eq!(v["peers"][0]["capabilities"]["commands"], "0x00000010");
    assert_eq!(v["peers"][0]["capabilities"]["transports"], "0x0003");
    d.shutdown().await;
}

#[tokio::test]
async fn discover_for_a_user_advertises_udp_only_when_tcp_is_off() {
    discover_through(false).await;
}

#[tokio::test]
async fn discover_for_a_user_advertises_udp_and_tcp_when_tcp_listens() {
    discover_through(true).await;
}

#[tokio::test]
async fn odtone_user_gets_nothing_for_its_registration() {
    let d = Daemon::start(&cfg("mihfd", false)).await.unwrap();
    let user = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // ODTONE's mih_usr with `commands = mih_n2n_ho_commit`: a
    // User_Register.indication without ACK-Req, TID 0, Src "user",
    // Dst "local-mihf", TLV 6 MIH_CMD_LIST with bit 3.
    let registration =
        ::hex::decode("10001c070000001a01050475736572020b0a6c6f63616c2d6d696866060400000008")
            .unwrap();
    user.send_to(&registration, d.sap_addr).await.unwrap();
    let mut buf = [0u8; 2048];
    let r = tokio::time::timeout(Duration::from_millis(300), user.recv_from(&mut buf)).await;
    assert!(
        r.is_err(),
        "no answer to the registration, as from ODTONE's MIHF: got {:?}",
        r.map(|x| x.map(|(n, _)| ::hex::encode(&buf[..n])))
    );
    // Then, as mih_usr does, a Capability_Discover.request to its MIHF
    // (TID 1, no TLVs): the first frame it receives is that confirm,
    // byte for byte, listing the user's commands (bit 3) and UDP.
    let disc = ::hex::decode("100014010001001401050475736572020b0a6c6f63616c2d6d696866").unwrap();
    user.send_to(&disc, d.sap_addr).await.unwrap();
    let (cnf, from) = recv_from(&user).await;
    assert_eq!(from, d.sap_addr);
    assert_eq!(
        ::hex::encode(&cnf),
        concat!(
            "100010010001002c",     // confirm, TID 1, 44 octets
            "0106056d69686664",     // Src "mihfd"
            "02050475736572",       // Dst "user"
            "030100",               // Success
            "050400000000",         // no events
            "060400000008",         // the user's commands (bit 3)
            "07080000000000000000", // no IS query types
            "08020001",             // UDP
        )
    );
    d.shutdown().await;
}
