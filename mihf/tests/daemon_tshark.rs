//! Capture live loopback traffic between two mihfd daemons with tshark and
//! check that Wireshark's MIH dissector decodes every frame without an error
//! or warning. Peer MIHF B listens on port 4551 when it is free (so
//! Wireshark picks MIH by port alone); otherwise on ephemeral ports that are
//! passed with `-d udp.port==P,mih`.
//!
//! Without tshark the test is skipped, except when CI is set: then it fails.
#![cfg(feature = "daemon")]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use common::{link, reg};
use mihf::daemon::client::SapClient;
use mihf::daemon::config::Config;
use mihf::daemon::Daemon;
use mihf::proto::node::PeerConfig;
use mihf::proto::status::status_of;
use mihf::wire::message::*;
use mihf::wire::*;

const T: Duration = Duration::from_secs(5);

fn cfg(id: &str, port: u16) -> Config {
    let mut c = Config::with_id(id);
    // UDP on `port`; TCP always on an ephemeral port, so that the capture
    // filter matches no other connection on the host.
    c.listen.udp = vec![SocketAddr::from(([127, 0, 0, 1], port))];
    c.listen.tcp = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    c.sap.listen = "127.0.0.1:0".parse().unwrap();
    c.timers.retransmission_timeout_ms = 300;
    c.timers.ack_delay_ms = 20;
    c.timers.transaction_lifetime_ms = 3000;
    c.timers.discovery_interval_ms = 0;
    c.limits.mtu = 700;
    c
}

fn port_4551_free() -> bool {
    std::net::UdpSocket::bind("127.0.0.1:4551").is_ok()
        && std::net::TcpListener::bind("127.0.0.1:4551").is_ok()
}

fn n2n(vendor: usize) -> Message {
    let mut m = Message::new(
        Mid(0x3409),
        0,
        MihfId::default(),
        MihfId::from_static("mihf-target"),
        Body::N2nHoCommitRequest(N2nHoCommitRequest {
            mn_mihf_id: MihfId::from_static("mn-mihf"),
            mn_link_id: link().link,
            poa: LinkAddr::mac([2, 0xaa, 0xbb, 0xcc, 0xdd, 2]),
            requested_resources: Some(ReqResSet {
                qos: QosList::new(
                    1,
                    &[CosValue {
                        cos_id: 1,
                        value: 20,
                    }],
                    &[CosValue {
                        cos_id: 1,
                        value: 10,
                    }],
                    &[CosValue {
                        cos_id: 1,
                        value: 50,
                    }],
                    &[CosValue {
                        cos_id: 1,
                        value: 5,
                    }],
                    &[],
                ),
                tsp: TspContainer::Null,
                ho_cause: HoCause::NO_RESOURCE,
            }),
        }),
    );
    if vendor > 0 {
        let mut b = BytesMut::new();
        b.put_u8(100);
        encode_length(vendor, &mut b);
        b.put_slice(b"ODT");
        b.put_bytes(0x5a, vendor - 3);
        m.extra = vec![RawTlvs::new(6, b.freeze()).unwrap()];
    }
    m
}

async fn serve(u: &mut SapClient, status: Status, delay: Duration) {
    let ind = tokio::time::timeout(T, u.recv()).await.unwrap().unwrap();
    tokio::time::sleep(delay).await;
    let Body::N2nHoCommitRequest(r) = &ind.body else {
        panic!("{ind:?}")
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
            assigned_resources: Some(AsgnResSet {
                qos: QosList::new(0, &[], &[], &[], &[], &[]),
                tsp: TspContainer::PredefCfgId(5),
            }),
        }),
    );
    u.respond(&ind, rsp).await.unwrap();
}

/// The flows whose frames are checked: N2N_HO_Commit success, refusal, a
/// slow user (pure ACK, response with ACK-Req, ACK of the response), a
/// capability discovery, an event, and the same N2N over TCP.
async fn traffic(a: &Daemon, b: &Daemon) {
    let mut src = SapClient::connect(a.sap_addr, reg("source-enb", CommandList(0), EventList(0)))
        .await
        .unwrap();
    let mut dst = SapClient::connect(
        b.sap_addr,
        reg("target-enb", CommandList::NET_HO, EventList::LINK_UP),
    )
    .await
    .unwrap();
    for (status, delay) in [
        (Status::SUCCESS, Duration::ZERO),
        (Status::REJECTED, Duration::ZERO),
        (Status::SUCCESS, Duration::from_millis(60)),
    ] {
        let (c, _) = tokio::join!(src.request(n2n(0), T), serve(&mut dst, status, delay));
        assert_eq!(status_of(&c.unwrap()), Some(status));
    }
    let disc = Message::new(
        Mid(0x1401),
        0,
        MihfId::default(),
        MihfId::from_static("mihf-target"),
        Body::CapabilityDiscoverRequest(CapabilityDiscoverRequest {
            link_addr_list: None,
            event_list: Some(EventList::LINK_UP),
            command_list: Some(CommandList::NET_HO),
            is_query_types: None,
            transports: Some(TransportList::UDP | TransportList::TCP),
            mbb_ho_support: None,
        }),
    );
    assert!(status_of(&src.request(disc, T).await.unwrap())
        .unwrap()
        .is_success());
    let sub = Message::new(
        Mid(0x1404),
        0,
        MihfId::default(),
        MihfId::from_static("mihf-target"),
        Body::EventSubscribeRequest(EventSubscribeRequest {
            link: link(),
            events: EventList::LINK_UP,
            config: None,
        }),
    );
    assert!(status_of(&src.request(sub, T).await.unwrap())
        .unwrap()
        .is_success());
    let up = Message::new(
        Mid(0x2c02),
        0,
        MihfId::from_static("target-enb"),
        MihfId::from_static("mihf-target"),
        Body::LinkUp(LinkUpIndication {
            link: link(),
            old_access_router: None,
            new_access_router: None,
            ip_renewal: None,
            mobility_management: None,
        }),
    );
    dst.send(&up).await.unwrap();
    let ev = tokio::time::timeout(T, src.recv()).await.unwrap().unwrap();
    assert_eq!(ev.header.mid, Mid(0x2c02));
    // A message above the 700-octet MTU (fragmented), then the same over TCP.
    let (c, _) = tokio::join!(
        src.request(n2n(1500), T),
        serve(&mut dst, Status::SUCCESS, Duration::ZERO)
    );
    assert!(status_of(&c.unwrap()).unwrap().is_success());
    for (d, id, other) in [(a, "mihf-target", b), (b, "mihf-serving", a)] {
        d.add_peer(PeerConfig {
            id: MihfId::new(id.as_bytes().to_vec()),
            udp: Some(other.udp_addrs[0]),
            tcp: Some(other.tcp_addrs[0]),
            prefer_tcp: true,
        })
        .unwrap();
    }
    let (c, _) = tokio::join!(
        src.request(n2n(0), T),
        serve(&mut dst, Status::SUCCESS, Duration::ZERO)
    );
    assert!(status_of(&c.unwrap()).unwrap().is_success());
}

#[tokio::test]
async fn wireshark_decodes_every_live_frame_as_mih() {
    if !testkit::require_tshark() {
        return;
    }
    // Port 4551 when free (another test or daemon may hold it: then, or if
    // it is taken between the check and the bind, an ephemeral port).
    let b = match port_4551_free() {
        true => match Daemon::start(&cfg("mihf-target", 4551)).await {
            Ok(d) => d,
            Err(_) => Daemon::start(&cfg("mihf-target", 0)).await.unwrap(),
        },
        false => Daemon::start(&cfg("mihf-target", 0)).await.unwrap(),
    };
    let a = Daemon::start(&cfg("mihf-serving", 0)).await.unwrap();
    a.add_peer(PeerConfig {
        id: MihfId::from_static("mihf-target"),
        udp: Some(b.udp_addrs[0]),
        tcp: Some(b.tcp_addrs[0]),
        prefer_tcp: false,
    })
    .unwrap();
    b.add_peer(PeerConfig {
        id: MihfId::from_static("mihf-serving"),
        udp: Some(a.udp_addrs[0]),
        tcp: Some(a.tcp_addrs[0]),
        prefer_tcp: false,
    })
    .unwrap();
    let (pa, pb) = (a.udp_addrs[0].port(), b.udp_addrs[0].port());
    let (ta, tb) = (a.tcp_addrs[0].port(), b.tcp_addrs[0].port());
    let dir = std::env::temp_dir().join(format!("mihf-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("live.pcapng");
    // Probes on a port of their own tell when the capture is really live.
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let probe_port = probe.local_addr().unwrap().port();
    // Only traffic between A and B (A's UDP port and both TCP ports are
    // ephemeral, so nothing else on the host matches), and the probes.
    let filter = format!(
        "(udp port {pa} and udp port {pb}) or tcp port {ta} or tcp port {tb} or udp port {probe_port}"
    );
    let mut cap = Command::new("tshark")
        .args(["-i", "lo", "-f", &filter, "-w"])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for "Capturing on 'Loopback: lo'".
    let stderr = cap.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = std::time::Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) if l.contains("Capturing on") => break,
            Ok(_) => {}
            Err(_) => {
                let _ = cap.kill();
                panic!(
                    "tshark did not start capturing within {:?}",
                    started.elapsed()
                );
            }
        }
    }
    // "Capturing on" comes before the filter is live: send probes until the
    // file grows.
    let size = || std::fs::metadata(&pcap).map(|m| m.len()).unwrap_or(0);
    let empty = size();
    while size() == empty {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "tshark captured no probe"
        );
        probe.send_to(b"probe", ("127.0.0.1", probe_port)).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    traffic(&a, &b).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // SIGINT lets tshark finish the file.
    let _ = Command::new("kill")
        .args(["-INT", &cap.id().to_string()])
        .status();
    let _ = cap.wait();
    a.shutdown().await;
    b.shutdown().await;

    let mut decode = vec!["-r".to_string(), pcap.to_string_lossy().into_owned()];
    for p in [pa, pb] {
        decode.push("-d".into());
        decode.push(format!("udp.port=={p},mih"));
    }
    for p in [ta, tb] {
        decode.push("-d".into());
        decode.push(format!("tcp.port=={p},mih"));
    }
    // Every frame that carries data must be MIH.
    let out = Command::new("tshark")
        .args(&decode)
        .args([
            "-Y",
            &format!("(udp || tcp.len > 0) && !(udp.port == {probe_port})"),
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "frame.number",
            "-e",
            "frame.protocols",
            "-e",
            "mih.mid",
            "-e",
            "mih.acq_req",
            "-e",
            "mih.acq_resp",
            "-e",
            "mih.more_frag",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    let mut mids = std::collections::BTreeSet::new();
    let (mut acks, mut frags, mut tcp) = (0, 0, 0);
    for l in &lines {
        let f: Vec<&str> = l.split('|').collect();
        assert!(f[1].contains(":mih"), "frame not decoded as MIH: {l}");
        assert!(!f[2].is_empty(), "no MID: {l}");
        mids.insert(f[2].to_string());
        if f[4] == "1" {
            acks += 1;
        }
        if f[5] == "1" {
            frags += 1;
        }
        if f[1].contains(":tcp:") {
            tcp += 1;
        }
    }
    eprintln!("peer B on UDP port {pb}");
    eprintln!(
        "{} MIH frames, MIDs {mids:?}, {acks} with ACK-Rsp, {frags} fragments, {tcp} over TCP",
        lines.len()
    );
    for m in [
        "0x3409", "0x3809", "0x1401", "0x1801", "0x1404", "0x1804", "0x2c02",
    ] {
        assert!(mids.contains(m), "MID {m} not captured: {mids:?}");
    }
    // 3 N2N (2 frames each, +2 for the slow one), discovery, subscription,
    // event + ACK, 3 fragments + response, 2 over TCP.
    assert!(lines.len() >= 20, "only {} frames:\n{text}", lines.len());
    assert!(
        acks >= 8 && frags >= 2 && tcp >= 2,
        "acks {acks} frags {frags} tcp {tcp}:\n{text}"
    );
    // No malformed packet and no expert error or warning anywhere.
    let not_probe = format!("!(udp.port == {probe_port})");
    let v = Command::new("tshark")
        .args(&decode)
        .args(["-Y", &not_probe, "-V"])
        .output()
        .unwrap();
    let verbose = String::from_utf8_lossy(&v.stdout);
    assert!(
        !verbose.contains("Malformed"),
        "malformed frame:\n{verbose}"
    );
    let e = Command::new("tshark")
        .args(&decode)
        .args(["-q", "-z", &format!("expert,warn,{not_probe}")])
        .output()
        .unwrap();
    let expert = String::from_utf8_lossy(&e.stdout);
    assert!(
        !expert.contains("Error") && !expert.contains("Warning"),
        "expert items:\n{expert}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
