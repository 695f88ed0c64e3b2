//! MN–AR transport over real raw ICMP sockets, in two network namespaces
//! this test creates (joined by a veth pair) and removes again. Needs root
//! and `ip`; as root (without it the test prints SKIP, and fails under CI).
//!
//! The parent test sets up the namespaces and re-runs this test binary inside
//! them (`ip netns exec NS <this binary> --exact helper --ignored`): the "ar"
//! helper runs a `NewRouter` engine on an ICMP socket, the "mn" helper a
//! `MobileNode`. The MN's CTAR (A=1) reaches the AR with hop limit 255; the
//! AR (whose pAR does not exist) times out after CT_MAX_TRANSFER_TIME and
//! answers with a CTAA, which ends the MN's retransmissions. A CTAR sent
//! with hop limit 64 first is dropped by the AR.

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cxtp::engine::{Config, MnEvent, MobileNode, NarEvent, NewRouter, Transmit};
use cxtp::icmp::socket::IcmpSocket;
use cxtp::icmp::IcmpVersion;
use cxtp::profile::ProfileRegistry;
use cxtp::token::AuthKey;
use cxtp::wire::{CtarRepr, MessageRepr, MessageView, Token};
use testkit::netns::{ip, Netns};

/// The two namespaces `a` (MN) and `b` (AR), joined by a veth pair.
/// `None`: skip (not root, CI unset).
fn topology() -> Option<Netns> {
    let n = Netns::new("cxtp", &["a", "b"])?;
    let setup = || -> Result<(), String> {
        let (a, b) = (n.name(0), n.name(1));
        let id = std::process::id();
        let (va, vb) = (format!("cxa{id}"), format!("cxb{id}"));
        ip(&[
            "link", "add", &va, "netns", a, "type", "veth", "peer", "name", &vb, "netns", b,
        ])?;
        for (ns, dev, v4, v6) in [
            (a, &va, "10.201.0.1/24", "fd00:201::1/64"),
            (b, &vb, "10.201.0.2/24", "fd00:201::2/64"),
        ] {
            ip(&["-n", ns, "addr", "add", v4, "dev", dev])?;
            ip(&["-n", ns, "addr", "add", v6, "dev", dev, "nodad"])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(())
    };
    setup().unwrap_or_else(|e| panic!("cannot create network namespaces as root: {e}"));
    Some(n)
}

fn spawn_helper(ns: &str, role: &str, family: &str) -> Child {
    let exe = std::env::current_exe().unwrap();
    Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(exe)
        .args([
            "--exact",
            "helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CXTP_ICMP_ROLE", role)
        .env("CXTP_ICMP_FAMILY", family)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn run_family(n: &Netns, family: &str) {
    let mut ar = spawn_helper(n.name(1), "ar", family);
    let mut lines = BufReader::new(ar.stdout.take().unwrap()).lines();
    // Wait until the AR's socket is open.
    loop {
        let l = lines.next().expect("AR helper exited early").unwrap();
        if l.contains("READY") {
            break;
        }
    }
    let mn = spawn_helper(n.name(0), "mn", family);
    let mn_out = mn.wait_with_output().unwrap();
    let mn_text = String::from_utf8_lossy(&mn_out.stdout).to_string();
    let ar_text: Vec<String> = lines.map_while(Result::ok).collect();
    let ar_status = ar.wait().unwrap();
    assert!(mn_out.status.success(), "MN helper failed:\n{mn_text}");
    assert!(
        ar_status.success(),
        "AR helper failed:\n{}",
        ar_text.join("\n")
    );
    assert!(mn_text.contains("RESULT ctaa-received"), "{mn_text}");
    let ar_text = ar_text.join("\n");
    assert!(
        ar_text.contains("RESULT ctar-received hop_limit=255"),
        "{ar_text}"
    );
    assert!(ar_text.contains("rejected_hop_limit=1"), "{ar_text}");
}

#[test]
fn ctar_and_ctaa_over_raw_icmp_in_network_namespaces() {
    if std::env::var_os("CXTP_ICMP_ROLE").is_some() {
        return;
    }
    if !testkit::require_root("raw ICMP between two network namespaces") {
        return;
    }
    let Some(n) = topology() else { return };
    run_family(&n, "4");
    run_family(&n, "6");
}

fn addrs(family: &str) -> (IcmpVersion, IpAddr, IpAddr) {
    match family {
        "4" => (
            IcmpVersion::V4,
            "10.201.0.1".parse().unwrap(),
            "10.201.0.2".parse().unwrap(),
        ),
        _ => (
            IcmpVersion::V6,
            "fd00:201::1".parse().unwrap(),
            "fd00:201::2".parse().unwrap(),
        ),
    }
}

/// Runs inside a namespace, started by the test above.
#[test]
#[ignore]
fn helper() {
    let Ok(role) = std::env::var("CXTP_ICMP_ROLE") else {
        return;
    };
    let family = std::env::var("CXTP_ICMP_FAMILY").unwrap();
    let (version, mn_addr, ar_addr) = addrs(&family);
    let mut sock = IcmpSocket::open(version).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(10);
    // The MN's previous address: any address of the same family.
    let mn_prev: IpAddr = if version == IcmpVersion::V4 {
        "192.0.2.10".parse().unwrap()
    } else {
        "2001:db8::10".parse().unwrap()
    };
    let par: IpAddr = if version == IcmpVersion::V4 {
        "192.0.2.1".parse().unwrap()
    } else {
        "2001:db8::1".parse().unwrap()
    };
    match role.as_str() {
        "ar" => {
            let mut nar = NewRouter::new(Config::default(), ProfileRegistry::with_builtins());
            println!("READY");
            let mut got = false;
            while Instant::now() < deadline {
                match sock.recv() {
                    Ok(r) => {
                        if let Ok(MessageView::Ctar(_)) = MessageView::parse(r.message.clone()) {
                            println!(
                                "RESULT ctar-received hop_limit={} from={}",
                                r.hop_limit, r.from
                            );
                            got = true;
                        }
                        nar.handle_message(Instant::now(), r.from, r.message);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => panic!("recv: {e}"),
                }
                if let Some(t) = nar.poll_timeout() {
                    if t <= Instant::now() {
                        nar.handle_timeout(Instant::now());
                    }
                }
                let mut sent_ctaa = false;
                while let Some(Transmit { to, payload: m }) = nar.poll_transmit() {
                    // Only the MN is reachable here; the CT-Req/CTC to the
                    // (absent) pAR would go over TCP and is dropped.
                    if to == mn_addr {
                        sock.send_to(to, &m).unwrap();
                        sent_ctaa = true;
                    }
                }
                while let Some(e) = nar.poll_event() {
                    println!("EVENT {e:?}");
                    assert!(matches!(e, NarEvent::TransferFailed { .. }));
                }
                if sent_ctaa {
                    println!(
                        "RESULT ctaa-sent rejected_hop_limit={}",
                        sock.rejected_hop_limit
                    );
                    assert!(got);
                    return;
                }
            }
            panic!(
                "AR: no CTAR answered in time (rejected_hop_limit={})",
                sock.rejected_hop_limit
            );
        }
        "mn" => {
            let mut ctar = CtarRepr {
                ack: true,
                mn_addr: mn_prev,
                ar_addr: par,
                seq: 42,
                token: Token::ZERO,
                requests: vec![],
            };
            ctar.sign(&AuthKey::new(&[1; 20]));
            // First a CTAR with hop limit 64, which the AR must drop.
            sock.set_hop_limit(64).unwrap();
            sock.send_to(
                ar_addr,
                &MessageRepr::Ctar(ctar.clone()).to_bytes().unwrap(),
            )
            .unwrap();
            std::thread::sleep(Duration::from_millis(100));
            sock.set_hop_limit(255).unwrap();
            let mut mn = MobileNode::new();
            mn.send_ctar(Instant::now(), ar_addr, ctar).unwrap();
            while Instant::now() < deadline {
                while let Some(Transmit { to, payload: m }) = mn.poll_transmit() {
                    sock.send_to(to, &m).unwrap();
                }
                match sock.recv() {
                    Ok(r) => mn.handle_message(Instant::now(), r.from, r.message),
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => panic!("recv: {e}"),
                }
                if let Some(t) = mn.poll_timeout() {
                    if t <= Instant::now() {
                        mn.handle_timeout(Instant::now());
                    }
                }
                if let Some(e) = mn.poll_event() {
                    match e {
                        MnEvent::Acknowledged { from, entries } => {
                            assert_eq!(from, ar_addr);
                            println!("RESULT ctaa-received entries={entries:?}");
                            return;
                        }
                        other => panic!("{other:?}"),
                    }
                }
            }
            panic!("MN: no CTAA");
        }
        r => panic!("unknown role {r}"),
    }
}
