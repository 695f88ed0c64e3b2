//! mihfd under abuse from the same host and from the backhaul, with real
//! sockets: a flood of unregistered SAP senders, TCP connections from
//! addresses of no peer and from unknown MIHFs, and a MIHF ID full of
//! control characters in the text and JSON logs and in `/peers`.
#![cfg(feature = "daemon")]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{link, reg};
use daemon_kit::http::get_ok as http_get;
use daemon_kit::logging;
use mihf::daemon::client::SapClient;
use mihf::daemon::config::Config;
use mihf::daemon::Daemon;
use mihf::proto::node::PeerConfig;
use mihf::proto::status::status_of;
use mihf::wire::message::*;
use mihf::wire::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};

const T: Duration = Duration::from_secs(5);

fn cfg(id: &str) -> Config {
    let mut c = Config::with_id(id);
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    c.listen.udp = vec![any];
    c.listen.tcp = vec![any];
    c.sap.listen = any;
    c.metrics.listen = Some(any);
    c.timers.discovery_interval_ms = 0;
    c
}

fn peer(id: &str, d: &Daemon) -> PeerConfig {
    PeerConfig {
        id: MihfId::new(id.as_bytes().to_vec()),
        udp: Some(d.udp_addrs[0]),
        tcp: Some(d.tcp_addrs[0]),
        prefer_tcp: false,
    }
}

fn n2n(dst: &'static str) -> Message {
    Message::new(
        Mid(0x3409),
        0,
        MihfId::default(),
        MihfId::from_static(dst),
        Body::N2nHoCommitRequest(N2nHoCommitRequest {
            mn_mihf_id: MihfId::from_static("mn-01"),
            mn_link_id: link().link,
            poa: LinkAddr::mac([2, 0xaa, 0xbb, 0xcc, 0xdd, 2]),
            requested_resources: None,
        }),
    )
}

fn discover(src: &[u8], dst: &'static str) -> Message {
    Message::new(
        Mid(0x1401),
        0x11,
        MihfId::new(src.to_vec()),
        MihfId::from_static(dst),
        Body::CapabilityDiscoverRequest(CapabilityDiscoverRequest {
            link_addr_list: None,
            event_list: None,
            command_list: None,
            is_query_types: None,
            transports: Some(TransportList::UDP),
            mbb_ho_support: None,
        }),
    )
}

/// `name value` of a metric in the Prometheus text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in\n{text}"))
}

/// One commit from a user on `a` answered by `handler` on `b`.
async fn commit(a: &Daemon, handler: &mut SapClient) {
    let mut src = SapClient::connect(a.sap_addr, reg("source-enb", CommandList(0), EventList(0)))
        .await
        .unwrap();
    let answer = async {
        let ind = tokio::time::timeout(T, handler.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ind.header.mid, Mid(0x3c09), "{ind:?}");
        let rsp = Message::new(
            Mid(0),
            0,
            MihfId::default(),
            MihfId::default(),
            Body::N2nHoCommitResponse(N2nHoCommitResponse {
                status: Status::SUCCESS,
                mn_mihf_id: MihfId::from_static("mn-01"),
                link: Some(link()),
                assigned_resources: None,
            }),
        );
        handler.respond(&ind, rsp).await.unwrap();
    };
    let (cnf, ()) = tokio::join!(src.request(n2n("mihf2"), T), answer);
    assert_eq!(status_of(&cnf.unwrap()), Some(Status::SUCCESS));
}

#[tokio::test]
async fn a_flood_of_unregistered_sap_senders_leaves_the_handler_registered() {
    let a = Daemon::start(&cfg("mihf1")).await.unwrap();
    let b = Daemon::start(&cfg("mihf2")).await.unwrap();
    a.add_peer(peer("mihf2", &b)).unwrap();
    b.add_peer(peer("mihf1", &a)).unwrap();
    let mut handler = SapClient::connect(
        b.sap_addr,
        reg("target-enb", CommandList::NET_HO, EventList(0)),
    )
    .await
    .unwrap();
    // 200 local sockets, more than limits.max_users (64), each sending
    // garbage and valid frames that are not registrations.
    let mut socks = Vec::new();
    for i in 0..200u16 {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.send_to(&[0x10, 0, 0x1c, 0x07, 0, 1, 0, 40, 9], b.sap_addr)
            .await
            .unwrap();
        let mut local = discover(b"intruder", "mihf2");
        local.header.tid = i;
        local.destination = MihfId::from_static(mihf::proto::sap::LOCAL_MIHF);
        s.send_to(&local.to_bytes().unwrap(), b.sap_addr)
            .await
            .unwrap();
        s.send_to(&n2n("mihf1").to_bytes().unwrap(), b.sap_addr)
            .await
            .unwrap();
        socks.push(s);
    }
    // Every intruder got its discovery confirm, so every datagram was read.
    for s in &socks {
        let mut buf = [0u8; 2048];
        tokio::time::timeout(T, s.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
    }
    let m = http_get(b.metrics_addr.unwrap(), "/metrics").await.unwrap();
    assert_eq!(metric(&m, "mihf_users"), 1, "the gauge is the table: {m}");
    commit(&a, &mut handler).await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn registrations_beyond_the_cap_are_refused_with_a_status() {
    let b = Daemon::start(&{
        let mut c = cfg("mihf2");
        c.limits.max_users = 2;
        c
    })
    .await
    .unwrap();
    let _u1 = SapClient::connect(b.sap_addr, reg("u1", CommandList(0), EventList(0)))
        .await
        .unwrap();
    let _u2 = SapClient::connect(b.sap_addr, reg("u2", CommandList(0), EventList(0)))
        .await
        .unwrap();
    let e = SapClient::connect(b.sap_addr, reg("u3", CommandList(0), EventList(0)))
        .await
        .err()
        .expect("the third registration is refused");
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
    let m = http_get(b.metrics_addr.unwrap(), "/metrics").await.unwrap();
    assert_eq!(metric(&m, "mihf_users"), 2);
    assert_eq!(metric(&m, "mihf_users_refused_total"), 1);
    b.shutdown().await;
}

/// A TCP connection to `to` from `from`; true if the daemon closed it
/// without answering `frame`.
async fn closed_without_answer(from: &str, to: SocketAddr, frame: &[u8]) -> bool {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(from.parse().unwrap()).unwrap();
    let mut c = s.connect(to).await.unwrap();
    let _ = c.write_all(frame).await;
    let mut buf = [0u8; 512];
    matches!(
        tokio::time::timeout(T, c.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn tcp_from_strangers_is_refused_before_it_costs_anything() {
    let b = Daemon::start(&{
        let mut c = cfg("mihf2");
        c.limits.max_tcp_connections_per_ip = 3;
        c
    })
    .await
    .unwrap();
    // mihf1 is at 127.0.0.1; 127.0.0.2 is the address of no peer.
    b.add_peer(PeerConfig {
        id: MihfId::from_static("mihf1"),
        udp: Some("127.0.0.1:9".parse().unwrap()),
        tcp: None,
        prefer_tcp: false,
    })
    .unwrap();
    let tcp = b.tcp_addrs[0];
    let disc = discover(b"mihf1", "mihf2").to_bytes().unwrap();
    assert!(closed_without_answer("127.0.0.2:0", tcp, &disc).await);
    // From the peer's address but claiming an unknown MIHF ID: closed too.
    let stranger = discover(b"mihf9", "mihf2").to_bytes().unwrap();
    assert!(closed_without_answer("127.0.0.1:0", tcp, &stranger).await);
    // The peer itself is served over TCP.
    let mut ok = tokio::net::TcpStream::connect(tcp).await.unwrap();
    ok.write_all(&disc).await.unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(T, ok.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(n >= 8);
    let rsp = Message::from_bytes(bytes::Bytes::copy_from_slice(&buf[..n])).unwrap();
    assert!(matches!(rsp.body, Body::CapabilityDiscoverResponse(_)));
    // At most 3 connections from one address.
    let mut held = vec![ok];
    for _ in 0..2 {
        held.push(tokio::net::TcpStream::connect(tcp).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(closed_without_answer("127.0.0.1:0", tcp, &disc).await);
    let m = http_get(b.metrics_addr.unwrap(), "/metrics").await.unwrap();
    assert_eq!(metric(&m, "mihf_tcp_refused_unknown_total"), 1, "{m}");
    assert_eq!(metric(&m, "mihf_tcp_closed_unknown_total"), 1, "{m}");
    assert_eq!(metric(&m, "mihf_tcp_refused_per_ip_total"), 1, "{m}");
    drop(held);
    b.shutdown().await;
}

/// A log sink for a test subscriber.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const EVIL: &[u8] = b"evil\n\x1b[31mred";

/// Run a daemon that learns EVIL, with its logs in `sink`; returns /peers.
async fn learn_evil(json: bool, sink: &Sink) -> String {
    let w = sink.clone();
    let sub = logging::subscriber(
        json,
        logging::EnvFilter::new("mihf=debug"),
        false,
        move || w.clone(),
    );
    // The test runtime is single-threaded: every task logs on this thread.
    let _guard = tracing::subscriber::set_default(sub);
    let b = Daemon::start(&{
        let mut c = cfg("mihf2");
        c.security.learn_peers = true;
        c
    })
    .await
    .unwrap();
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Unknown (dropped, logged with the ID), then learned.
    let mut first = n2n("mihf2");
    first.source = MihfId::new(EVIL.to_vec());
    s.send_to(&first.to_bytes().unwrap(), b.udp_addrs[0])
        .await
        .unwrap();
    s.send_to(&discover(EVIL, "mihf2").to_bytes().unwrap(), b.udp_addrs[0])
        .await
        .unwrap();
    let mut buf = [0u8; 2048];
    tokio::time::timeout(T, s.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let peers = http_get(b.metrics_addr.unwrap(), "/peers").await.unwrap();
    b.shutdown().await;
    peers
}

fn check_peers_json(peers: &str) {
    let v: serde_json::Value = serde_json::from_str(peers).expect("/peers is JSON");
    let ids: Vec<&str> = v["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![r"evil\n\u{1b}[31mred"]);
    assert!(!peers.contains('\u{1b}') && !peers.contains('\n'));
}

#[tokio::test]
async fn peer_text_is_escaped_in_text_logs() {
    let sink = Sink::default();
    let peers = learn_evil(false, &sink).await;
    check_peers_json(&peers);
    let log = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains(r"evil\n\u{1b}[31mred"), "{log}");
    assert!(log.contains("peer learned"), "{log}");
    assert!(!log.contains('\u{1b}'), "no raw ESC: {log}");
    // Every line is one of the daemon's: none starts with the ID's tail.
    for line in log.lines() {
        assert!(!line.starts_with("[31mred"), "{line}");
        assert!(line.contains("mihf"), "a line of its own: {line:?}");
    }
}

#[tokio::test]
async fn peer_text_keeps_json_logs_valid() {
    let sink = Sink::default();
    let peers = learn_evil(true, &sink).await;
    check_peers_json(&peers);
    let log = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
    let mut seen = false;
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        if v["fields"]["message"] == "peer learned" {
            assert_eq!(v["fields"]["peer"], r"evil\n\u{1b}[31mred");
            seen = true;
        }
    }
    assert!(seen, "{log}");
}

#[test]
fn mihf_ids_display_escaped() {
    let show = |b: &[u8]| MihfId::new(b.to_vec()).to_string();
    assert_eq!(show(EVIL), r"evil\n\u{1b}[31mred");
    assert_eq!(show(b"mihf1"), "mihf1");
    assert_eq!(show("enb-\u{e9}t\u{e9}".as_bytes()), "enb-\u{e9}t\u{e9}");
    assert_eq!(
        show(b"a\\nb"),
        r"a\\nb",
        "a literal backslash is told apart"
    );
    assert_eq!(show(b"\xff\xfeok\r\t"), r"\xff\xfeok\r\t");
    assert_eq!(show("rtl\u{202e}x".as_bytes()), r"rtl\u{202e}x");
    assert_eq!(show(b"quote\"'"), "quote\"'");
    assert_eq!(
        format!("{:?}", Escaped(b"say \"hi\"\n")),
        r#""say \"hi\"\n""#
    );
    assert_eq!(Escaped::new("ok\u{7}").to_string(), r"ok\u{7}");
}
