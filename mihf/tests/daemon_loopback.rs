//! Two mihfd daemons (in-process, ephemeral loopback ports) with real UDP,
//! TCP and SAP sockets, driven by SAP users: the flows of the issue, a test
//! shim that drops frames, a foreign peer speaking ODTONE's bytes, and
//! garbage floods. Each test stops its daemons before returning.
#![cfg(feature = "daemon")]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::{link, reg};
use daemon_kit::http::get_ok as http_get;
use mihf::daemon::client::SapClient;
use mihf::daemon::config::{Config, Transport};
use mihf::daemon::Daemon;
use mihf::proto::node::PeerConfig;
use mihf::proto::status::status_of;
use mihf::wire::message::*;
use mihf::wire::*;
use tokio::net::UdpSocket;

const T: Duration = Duration::from_secs(5);

fn cfg(id: &str) -> Config {
    let mut c = Config::with_id(id);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    c.listen.udp = vec![any];
    c.listen.tcp = vec![any];
    c.sap.listen = any;
    c.metrics.listen = Some(any);
    c.timers.retransmission_timeout_ms = 100;
    c.timers.retransmission_backoff = 1;
    c.timers.max_retransmissions = 2;
    c.timers.transaction_lifetime_ms = 2000;
    c.timers.ack_delay_ms = 20;
    c.timers.user_response_timeout_ms = 1000;
    c.timers.discovery_interval_ms = 0;
    c
}

fn peer(id: &str, d: &Daemon, transport: Transport) -> PeerConfig {
    PeerConfig {
        id: MihfId::new(id.to_string().into_bytes()),
        udp: Some(d.udp_addrs[0]),
        tcp: Some(d.tcp_addrs[0]),
        prefer_tcp: transport == Transport::Tcp,
    }
}

async fn pair(transport: Transport, tweak: impl Fn(&mut Config)) -> (Daemon, Daemon) {
    let mut ca = cfg("mihf1");
    let mut cb = cfg("mihf2");
    tweak(&mut ca);
    tweak(&mut cb);
    let a = Daemon::start(&ca).await.unwrap();
    let b = Daemon::start(&cb).await.unwrap();
    a.add_peer(peer("mihf2", &b, transport)).unwrap();
    b.add_peer(peer("mihf1", &a, transport)).unwrap();
    (a, b)
}

fn n2n(peer: &'static str) -> Message {
    Message::new(
        Mid(0x3409),
        0,
        MihfId::default(),
        MihfId::from_static(peer),
        Body::N2nHoCommitRequest(N2nHoCommitRequest {
            mn_mihf_id: MihfId::from_static("mn-01"),
            mn_link_id: link().link,
            poa: LinkAddr::mac([2, 0xaa, 0xbb, 0xcc, 0xdd, 2]),
            requested_resources: Some(ReqResSet {
                qos: QosList::new(
                    1,
                    &[CosValue {
                        cos_id: 1,
                        value: 20,
                    }],
                    &[],
                    &[],
                    &[],
                    &[],
                ),
                tsp: TspContainer::Null,
                ho_cause: HoCause::NO_RESOURCE,
            }),
        }),
    )
}

/// Serve one indication with `status` (and the link, to see it come back).
async fn answer_one(u: &mut SapClient, status: Status) -> Message {
    let ind = tokio::time::timeout(T, u.recv()).await.unwrap().unwrap();
    assert_eq!(ind.header.mid, Mid(0x3c09), "{ind:?}");
    let Body::N2nHoCommitRequest(r) = &ind.body else {
        panic!()
    };
    let rsp = Message::new(
        Mid(0),
        0,
        MihfId::default(),
        MihfId::default(),
        Body::N2nHoCommitResponse(N2nHoCommitResponse {
            status,
            mn_mihf_id: r.mn_mihf_id.clone(),
            link: Some(link()),
            assigned_resources: None,
        }),
    );
    u.respond(&ind, rsp).await.unwrap();
    ind
}

async fn n2n_flow(transport: Transport) {
    let (a, b) = pair(transport, |_| {}).await;
    let mut src = SapClient::connect(a.sap_addr, reg("source-enb", CommandList(0), EventList(0)))
        .await
        .unwrap();
    let mut dst = SapClient::connect(
        b.sap_addr,
        reg("target-enb", CommandList::NET_HO, EventList(0)),
    )
    .await
    .unwrap();
    for status in [Status::SUCCESS, Status::REJECTED] {
        let (cnf, ind) = tokio::join!(src.request(n2n("mihf2"), T), answer_one(&mut dst, status));
        let cnf = cnf.unwrap();
        assert_eq!(ind.source.as_str(), Some("mihf1"));
        assert_eq!(cnf.header.mid, Mid(0x3009));
        assert_eq!(cnf.source.as_str(), Some("mihf2"));
        assert_eq!(status_of(&cnf), Some(status));
        let Body::N2nHoCommitResponse(r) = &cnf.body else {
            panic!()
        };
        assert_eq!(r.mn_mihf_id.as_str(), Some("mn-01"));
        assert_eq!(r.link, Some(link()));
    }
    let m = http_get(a.metrics_addr.unwrap(), "/metrics").await.unwrap();
    assert!(
        m.contains(
            "mihf_messages_total{direction=\"peer_out\",message=\"MIH_N2N_HO_Commit.request\"} 2"
        ),
        "{m}"
    );
    assert!(
        m.contains("mihf_transaction_latency_seconds_count 2"),
        "{m}"
    );
    if transport == Transport::Tcp {
        let s = a.stats().engine;
        assert_eq!(
            s.acks_sent + s.acks_received + s.retransmissions,
            0,
            "no ACK procedure over TCP"
        );
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn n2n_ho_commit_success_and_refusal_over_udp() {
    n2n_flow(Transport::Udp).await;
}

#[tokio::test]
async fn n2n_ho_commit_success_and_refusal_over_tcp() {
    n2n_flow(Transport::Tcp).await;
}

#[tokio::test]
async fn capability_discovery_and_peer_listing() {
    let (a, b) = pair(Transport::Udp, |_| {}).await;
    let _dst = SapClient::connect(
        b.sap_addr,
        reg("target-enb", CommandList::NET_HO, EventList::LINK_UP),
    )
    .await
    .unwrap();
    let mut src = SapClient::connect(a.sap_addr, reg("source-enb", CommandList(0), EventList(0)))
        .await
        .unwrap();
    let req = Message::new(
        Mid(0x1401),
        0,
        MihfId::default(),
        MihfId::from_static("mihf2"),
        Body::CapabilityDiscoverRequest(CapabilityDiscoverRequest {
            link_addr_list: None,
            event_list: None,
            command_list: None,
            is_query_types: None,
            transports: Some(TransportList::UDP),
            mbb_ho_support: None,
        }),
    );
    let cnf = src.request(req, T).await.unwrap();
    let Body::CapabilityDiscoverResponse(r) = &cnf.body else {
        panic!("{cnf:?}")
    };
    assert!(r.status.is_success());
    assert_eq!(r.command_list, Some(CommandList::NET_HO));
    assert_eq!(r.event_list, Some(EventList::LINK_UP));
    let peers = http_get(a.metrics_addr.unwrap(), "/peers").await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&peers).unwrap();
    assert_eq!(v["peers"][0]["id"], "mihf2");
    assert_eq!(v["peers"][0]["capabilities"]["commands"], "0x00000008");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn event_subscription_and_delivery() {
    let (a, b) = pair(Transport::Udp, |_| {}).await;
    let radio = SapClient::connect(b.sap_addr, reg("radio", CommandList(0), EventList::LINK_UP))
        .await
        .unwrap();
    let mut src = SapClient::connect(a.sap_addr, reg("source-enb", CommandList(0), EventList(0)))
        .await
        .unwrap();
    let sub = Message::new(
        Mid(0x1404),
        0,
        MihfId::default(),
        MihfId::from_static("mihf2"),
        Body::EventSubscribeRequest(EventSubscribeRequest {
            link: link(),
            events: EventList::LINK_UP,
            config: None,
        }),
    );
    let cnf = src.request(sub, T).await.unwrap();
    assert_eq!(status_of(&cnf), Some(Status::SUCCESS));
    let up = Message::new(
        Mid(0x2c02),
        0,
        MihfId::from_static("radio"),
        MihfId::from_static("mihf2"),
        Body::LinkUp(LinkUpIndication {
            link: link(),
            old_access_router: None,
            new_access_router: None,
            ip_renewal: None,
            mobility_management: None,
        }),
    );
    radio.send(&up).await.unwrap();
    let ev = tokio::time::timeout(T, src.recv()).await.unwrap().unwrap();
    assert_eq!(ev.header.mid, Mid(0x2c02));
    assert_eq!(ev.source.as_str(), Some("mihf2"));
    assert!(matches!(&ev.body, Body::LinkUp(b) if b.link == link()));
    // The event crossed the network as an acknowledged indication.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(b.stats().engine.acks_received >= 1);
    a.shutdown().await;
    b.shutdown().await;
}

fn with_vendor_tlv(mut m: Message, len: usize) -> Message {
    let mut b = BytesMut::new();
    b.put_u8(100);
    encode_length(len, &mut b);
    b.put_slice(b"ODT");
    for i in 0..len - 3 {
        b.put_u8((i * 7) as u8);
    }
    m.extra = vec![RawTlvs::new(6, b.freeze()).unwrap()];
    m
}

#[tokio::test]
async fn large_message_is_fragmented_over_udp() {
    let (a, b) = pair(Transport::Udp, |c| c.limits.mtu = 600).await;
    let mut src = SapClient::connect(a.sap_addr, reg("source-enb", CommandList(0), EventList(0)))
        .await
        .unwrap();
    let mut dst = SapClient::connect(
        b.sap_addr,
        reg("target-enb", CommandList::NET_HO, EventList(0)),
    )
    .await
    .unwrap();
    let big = with_vendor_tlv(n2n("mihf2"), 6000);
    let want = big.extra.clone();
    let (cnf, ind) = tokio::join!(src.request(big, T), answer_one(&mut dst, Status::SUCCESS));
    assert_eq!(status_of(&cnf.unwrap()), Some(Status::SUCCESS));
    assert_eq!(ind.extra, want, "the 6000-octet TLV arrives intact");
    let sa = a.stats().engine;
    let sb = b.stats().engine;
    assert!(sa.fragments_out >= 11, "{sa:?}");
    assert_eq!(sb.reassembled, 1);
    assert_eq!(b.table_sizes().reassembly_bytes, 0);
    a.shutdown().await;
    b.shutdown().await;
}

/// A UDP shim between two daemons that drops the first `drop_first` frames
/// going from `a` to `b`.
async fn shim(
    b_peer: SocketAddr,
    drop_first: usize,
) -> (SocketAddr, SocketAddr, tokio::task::JoinHandle<usize>) {
    let front = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (fa, ba) = (front.local_addr().unwrap(), back.local_addr().unwrap());
    let h = tokio::spawn(async move {
        let mut a_addr = None;
        let mut dropped = 0;
        let mut buf = vec![0u8; 65536];
        let mut buf2 = vec![0u8; 65536];
        loop {
            tokio::select! {
                r = front.recv_from(&mut buf) => {
                    let Ok((n, from)) = r else { break };
                    a_addr = Some(from);
                    if dropped < drop_first { dropped += 1; continue; }
                    let _ = back.send_to(&buf[..n], b_peer).await;
                }
                r = back.recv_from(&mut buf2) => {
                    let Ok((n, _)) = r else { break };
                    if let Some(a) = a_addr { let _ = front.send_to(&buf2[..n], a).await; }
                }
                _ = tokio::time::sleep(Duration::from_secs(10)) => break,
            }
        }
        dropped
    });
    (fa, ba, h)
}

#[tokio::test]
async fn recovery_by_retransmission_through_a_lossy_shim() {
    let a = Daemon::start(&cfg("mihf1")).await.unwrap();
    let b = Daemon::start(&cfg("mihf2")).await.unwrap();
    let (front, back, shim_task) = shim(b.udp_addrs[0], 2).await;
    a.add_peer(PeerConfig {
        id: MihfId::from_static("mihf2"),
        udp: Some(front),
        tcp: None,
        prefer_tcp: false,
    })
    .unwrap();
    b.add_peer(PeerConfig {
        id: MihfId::from_static("mihf1"),
        udp: Some(back),
        tcp: None,
        prefer_tcp: false,
    })
    .unwrap();
    let mut src = SapClient::connect(a.sap_addr, reg("source-enb", CommandList(0), EventList(0)))
        .await
        .unwrap();
    let mut dst = SapClient::connect(
        b.sap_addr,
        reg("target-enb", CommandList::NET_HO, EventList(0)),
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let (cnf, _) = tokio::join!(
        src.request(n2n("mihf2"), T),
        answer_one(&mut dst, Status::SUCCESS)
    );
    assert_eq!(status_of(&cnf.unwrap()), Some(Status::SUCCESS));
    // Two sends lost: the third (after two 100 ms intervals) got through.
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(a.stats().engine.retransmissions, 2);
    shim_task.abort();
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn peer_down_gives_a_network_error_confirm() {
    let a = Daemon::start(&cfg("mihf1")).await.unwrap();
    // A port nobody listens on.
    let dead = UdpSocket::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    a.add_peer(PeerConfig {
        id: MihfId::from_static("mihf2"),
        udp: Some(dead),
        tcp: None,
        prefer_tcp: false,
    })
    .unwrap();
    let mut src = SapClient::connect(a.sap_addr, reg("source-enb", CommandList(0), EventList(0)))
        .await
        .unwrap();
    let cnf = src.request(n2n("mihf2"), T).await.unwrap();
    assert_eq!(status_of(&cnf), Some(Status::NETWORK_ERROR));
    // And an unknown destination is refused at once.
    let cnf = src.request(n2n("nobody"), T).await.unwrap();
    assert_eq!(status_of(&cnf), Some(Status::NETWORK_ERROR));
    a.shutdown().await;
}

async fn recv(s: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let (n, _) = tokio::time::timeout(T, s.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    buf.truncate(n);
    buf
}

#[tokio::test]
async fn peer_down_over_tcp_fails_at_once() {
    let a = Daemon::start(&{
        let mut c = cfg("mihf1");
        c.timers.transaction_lifetime_ms = 10_000;
        c
    })
    .await
    .unwrap();
    // A TCP port nobody listens on: the connection is refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    a.add_peer(PeerConfig {
        id: MihfId::from_static("mihf2"),
        udp: None,
        tcp: Some(dead),
        prefer_tcp: true,
    })
    .unwrap();
    let mut src = SapClient::connect(a.sap_addr, reg("source-enb", CommandList(0), EventList(0)))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let cnf = src.request(n2n("mihf2"), T).await.unwrap();
    assert_eq!(status_of(&cnf), Some(Status::NETWORK_ERROR));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    a.shutdown().await;
}

#[tokio::test]
async fn foreign_peer_speaking_odtone_bytes() {
    // A raw socket plays an ODTONE MIHF called "mihf1" (ACK-Req on its
    // request; pure ACK expected at once with ack_delay 0), a peer that is
    // not configured: it is learned (security.learn_peers).
    let b = Daemon::start(&{
        let mut c = cfg("mihf2");
        c.timers.ack_delay_ms = 0;
        c.security.learn_peers = true;
        c
    })
    .await
    .unwrap();
    let mut dst = SapClient::connect(
        b.sap_addr,
        reg("target-enb", CommandList::NET_HO, EventList(0)),
    )
    .await
    .unwrap();
    let odtone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let hex = |s: &str| ::hex::decode(s).unwrap();
    // Unknown peers are dropped...
    let req = hex("18003409032800310106056d696866310206056d696866323406056d6e2d30313b0b13000006060200000000013c0a00000606020000000002");
    odtone.send_to(&req, b.udp_addrs[0]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(b.stats().unknown_peer, 1);
    // ...until they introduce themselves with MIH_Capability_Discover.
    let disc = Message::new(
        Mid(0x1401),
        0x10,
        MihfId::from_static("mihf1"),
        MihfId::from_static("mihf2"),
        Body::CapabilityDiscoverRequest(CapabilityDiscoverRequest {
            link_addr_list: None,
            event_list: None,
            command_list: Some(CommandList::NET_HO),
            is_query_types: None,
            transports: Some(TransportList::UDP),
            mbb_ho_support: None,
        }),
    );
    odtone
        .send_to(&disc.to_bytes().unwrap(), b.udp_addrs[0])
        .await
        .unwrap();
    let rsp = Message::from_bytes(Bytes::from(recv(&odtone).await)).unwrap();
    assert!(matches!(&rsp.body, Body::CapabilityDiscoverResponse(r) if r.status.is_success()));
    odtone.send_to(&req, b.udp_addrs[0]).await.unwrap();
    // The pure ACK, byte for byte as ODTONE's.
    assert_eq!(
        recv(&odtone).await,
        hex("14003409032800100106056d696866320206056d69686631")
    );
    answer_one(&mut dst, Status::SUCCESS).await;
    let rsp = recv(&odtone).await;
    let m = Message::from_bytes(Bytes::from(rsp)).unwrap();
    assert_eq!((m.header.mid, m.header.tid), (Mid(0x3809), 0x328));
    assert!(m.header.ack_req, "the response asks for an ACK");
    // Acknowledge it as ODTONE would; no retransmission follows.
    odtone
        .send_to(
            &hex("14003809032800100106056d696866310206056d69686632"),
            b.udp_addrs[0],
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.stats().engine.retransmissions, 0);
    b.shutdown().await;
}

#[tokio::test]
async fn tcp_stream_cut_by_payload_length() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let b = Daemon::start(&{
        let mut c = cfg("mihf2");
        c.security.allow_unknown_peers = true;
        c
    })
    .await
    .unwrap();
    let mut s = tokio::net::TcpStream::connect(b.tcp_addrs[0])
        .await
        .unwrap();
    let disc = Message::new(
        Mid(0x1401),
        0x21,
        MihfId::from_static("mihf9"),
        MihfId::from_static("mihf2"),
        Body::CapabilityDiscoverRequest(CapabilityDiscoverRequest {
            link_addr_list: None,
            event_list: None,
            command_list: None,
            is_query_types: None,
            transports: Some(TransportList::TCP),
            mbb_ho_support: None,
        }),
    )
    .to_bytes()
    .unwrap();
    // Two frames in three writes, split mid-header and mid-payload.
    let mut two = disc.to_vec();
    let mut second = disc.to_vec();
    second[5] = 0x22;
    two.extend_from_slice(&second);
    for part in [&two[..5], &two[5..disc.len() + 3], &two[disc.len() + 3..]] {
        s.write_all(part).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    while got.len() < 2 {
        tokio::time::timeout(T, s.read_buf(&mut buf))
            .await
            .unwrap()
            .unwrap();
        while let Some(f) = Frame::split_from(&mut buf).unwrap() {
            got.push(Message::decode(&f).unwrap());
        }
    }
    assert_eq!(got[0].header.tid, 0x21);
    assert_eq!(got[1].header.tid, 0x22);
    assert!(!got[0].header.ack_req, "no ACK-Req over TCP");
    b.shutdown().await;
}

#[tokio::test]
async fn garbage_floods_do_not_stop_the_daemon_or_grow_it() {
    let (a, b) = pair(Transport::Udp, |_| {}).await;
    let junk = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut seed = 7u64;
    for i in 0..3000u32 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = 1 + (seed >> 54) as usize;
        let mut v: Vec<u8> = (0..len).map(|j| (seed >> (j % 50)) as u8).collect();
        if i % 2 == 0 && v.len() > 8 {
            // Fragments with plausible headers, each a different TID.
            v[0] = 0x11;
            v[4] = (i >> 8) as u8 & 0xf;
            v[5] = i as u8;
            let p = (v.len() - 8) as u16;
            v[6..8].copy_from_slice(&p.to_be_bytes());
        }
        let _ = junk.send_to(&v, b.udp_addrs[0]).await;
        let _ = junk.send_to(&v, b.sap_addr).await;
        if i % 256 == 0 {
            tokio::task::yield_now().await;
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = b.table_sizes();
    assert!(
        t.reassembly_messages <= 64 && t.reassembly_bytes <= 1 << 20,
        "{t:?}"
    );
    assert!(t.users <= 64);
    let s = b.stats();
    assert!(
        s.engine.decode_errors + s.engine.reassembly_errors + s.sap_errors > 100,
        "{s:?}"
    );
    // Still serving.
    let mut src = SapClient::connect(a.sap_addr, reg("source-enb", CommandList(0), EventList(0)))
        .await
        .unwrap();
    let mut dst = SapClient::connect(
        b.sap_addr,
        reg("target-enb", CommandList::NET_HO, EventList(0)),
    )
    .await
    .unwrap();
    let (cnf, _) = tokio::join!(
        src.request(n2n("mihf2"), T),
        answer_one(&mut dst, Status::SUCCESS)
    );
    assert_eq!(status_of(&cnf.unwrap()), Some(Status::SUCCESS));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn binaries_check_config_and_print_help() {
    let dir = std::env::temp_dir().join(format!("mihfd-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "mihf_id = \"mihf1\"\n[[peers]]\nid = \"mihf2\"\nudp = \"127.0.0.1:4551\"\n",
    )
    .unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "mihf_id = \"mihf1\"\n[timers]\nack_delay_ms = 9000\n").unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mihfd"))
            .args(args)
            .output()
            .unwrap()
    };
    let ok = run(&["--check", "-c", good.to_str().unwrap()]);
    assert!(ok.status.success(), "{ok:?}");
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        out.contains("answered transactions/s per peer over UDP"),
        "{out}"
    );
    let no = run(&["--check", "-c", bad.to_str().unwrap()]);
    assert!(!no.status.success());
    assert!(
        String::from_utf8_lossy(&no.stderr).contains("timers.ack_delay_ms"),
        "{no:?}"
    );
    let help = run(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--config"), "{help}");
    // The binary's own description, not the crate's.
    assert!(help.starts_with("IEEE 802.21 MIHF daemon"), "{help}");
    let ctl = std::process::Command::new(env!("CARGO_BIN_EXE_mihctl"))
        .arg("--help")
        .output()
        .unwrap();
    let ctl = String::from_utf8_lossy(&ctl.stdout);
    assert!(ctl.contains("n2n-commit"), "{ctl}");
    assert!(ctl.starts_with("Act as a local MIH-User of mihfd"), "{ctl}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn n2n_ho_commit_over_ipv6_loopback() {
    let v6: SocketAddr = "[::1]:0".parse().unwrap();
    if !testkit::require(
        std::net::UdpSocket::bind(v6).is_ok(),
        "no IPv6 loopback (::1)",
    ) {
        return;
    }
    for transport in [Transport::Udp, Transport::Tcp] {
        let (a, b) = pair(transport, |c| {
            c.listen.udp = vec![v6];
            c.listen.tcp = vec![v6];
            c.sap.listen = v6;
        })
        .await;
        assert!(a.udp_addrs[0].is_ipv6() && a.tcp_addrs[0].is_ipv6());
        let mut src =
            SapClient::connect(a.sap_addr, reg("source-enb", CommandList(0), EventList(0)))
                .await
                .unwrap();
        let mut dst = SapClient::connect(
            b.sap_addr,
            reg("target-enb", CommandList::NET_HO, EventList(0)),
        )
        .await
        .unwrap();
        let (cnf, _) = tokio::join!(
            src.request(n2n("mihf2"), T),
            answer_one(&mut dst, Status::SUCCESS)
        );
        assert_eq!(
            status_of(&cnf.unwrap()),
            Some(Status::SUCCESS),
            "{transport:?}"
        );
        a.shutdown().await;
        b.shutdown().await;
    }
}
