//! MIH_N2N_HO_Commit request/response between two mihfd processes on
//! loopback (UDP and TCP between the MIHFs; UDP SAP to the users), next to
//! floors measured in the same run with frames of the same sizes:
//!
//! * `floor ping-pong`: a bare UDP (or TCP) ping-pong between two threads;
//! * `floor relay chain`: the same six hops as through the MIHFs
//!   (user → relay A → relay B → responder and back), each relay a thread
//!   that only forwards bytes: what a zero-cost MIHF would give.
//!
//! Each scenario runs closed-loop with 1 request in flight (latency) and
//! with 16 in flight (throughput). Only answers of the responder's size
//! count; anything else (a failure confirm, e.g. when no TID towards the
//! peer is free) is counted apart and fails the smoke run. The MIHFs use
//! short timers (10 ms retransmission timeout, 1 retransmission, 5 ms
//! margin: TIDs come back 15 ms after an answer, room for 273,000
//! transactions/s per peer over UDP); with the defaults (8 s) a closed loop
//! this fast would run out of TIDs after 4095 requests, and with 20 ms /
//! 2 / 20 ms (80 ms, 51,000/s) the UDP 16-in-flight loop ran at that
//! capacity and got a back-pressure failure for every third request. Run with
//! `cargo bench -p mihf --bench transactions` (set BENCH_SECS to change the
//! measuring time per scenario, default 3).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mihf::proto::sap::{self, Registration};
use mihf::wire::message::*;
use mihf::wire::*;

fn free_port() -> u16 {
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let p = u.local_addr().unwrap().port();
    // The same port must be free for TCP too.
    if TcpListener::bind(("127.0.0.1", p)).is_ok() {
        p
    } else {
        free_port()
    }
}

fn request_frame(user: &str, peer: &str) -> Vec<u8> {
    let c = |v| CosValue {
        cos_id: 1,
        value: v,
    };
    let m = Message::new(
        Mid(0x3409),
        1,
        MihfId::new(user.as_bytes().to_vec()),
        MihfId::new(peer.as_bytes().to_vec()),
        Body::N2nHoCommitRequest(N2nHoCommitRequest {
            mn_mihf_id: MihfId::from_static("mn-mihf"),
            mn_link_id: LinkId {
                link_type: LinkType::IEEE_802_11,
                addr: LinkAddr::mac([2, 0xaa, 0xbb, 0xcc, 0xdd, 1]),
            },
            poa: LinkAddr::mac([2, 0xaa, 0xbb, 0xcc, 0xdd, 2]),
            requested_resources: Some(ReqResSet {
                qos: QosList::new(1, &[c(20)], &[c(10)], &[c(50)], &[c(5)], &[]),
                tsp: TspContainer::Null,
                ho_cause: HoCause::NO_RESOURCE,
            }),
        }),
    );
    m.to_bytes().unwrap().to_vec()
}

fn response_frame(user: &str, to: &str) -> Vec<u8> {
    let m = Message::new(
        Mid(0x3809),
        1,
        MihfId::new(user.as_bytes().to_vec()),
        MihfId::new(to.as_bytes().to_vec()),
        Body::N2nHoCommitResponse(N2nHoCommitResponse {
            status: Status::SUCCESS,
            mn_mihf_id: MihfId::from_static("mn-mihf"),
            link: Some(LinkTupleId {
                link: LinkId {
                    link_type: LinkType::IEEE_802_11,
                    addr: LinkAddr::mac([2, 0xaa, 0xbb, 0xcc, 0xdd, 1]),
                },
                poa: None,
            }),
            assigned_resources: Some(AsgnResSet {
                qos: QosList::new(0, &[], &[], &[], &[], &[]),
                tsp: TspContainer::PredefCfgId(5),
            }),
        }),
    );
    m.to_bytes().unwrap().to_vec()
}

fn set_tid(f: &mut [u8], tid: u16) {
    f[4..6].copy_from_slice(&(tid & 0xfff).to_be_bytes());
}
fn tid_of(f: &[u8]) -> u16 {
    u16::from_be_bytes([f[4], f[5]]) & 0xfff
}

/// One way to carry a request and get its answer back.
trait Link: Send {
    fn send(&mut self, frame: &[u8]);
    /// The next answer frame (blocking).
    fn recv(&mut self, buf: &mut [u8]) -> usize;
}

struct UdpLink(UdpSocket, SocketAddr);
impl Link for UdpLink {
    fn send(&mut self, f: &[u8]) {
        let _ = self.0.send_to(f, self.1);
    }
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        loop {
            if let Ok((n, _)) = self.0.recv_from(buf) {
                return n;
            }
        }
    }
}

struct TcpLink(TcpStream);
impl Link for TcpLink {
    fn send(&mut self, f: &[u8]) {
        let _ = self.0.write_all(f);
    }
    fn recv(&mut self, buf: &mut [u8]) -> usize {
        let _ = self.0.read_exact(&mut buf[..8]);
        let n = 8 + usize::from(u16::from_be_bytes([buf[6], buf[7]]));
        let _ = self.0.read_exact(&mut buf[8..n]);
        n
    }
}

struct Result_ {
    tps: f64,
    p50: Duration,
    p99: Duration,
    n: usize,
    /// Answers of another size than the responder's (failure confirms).
    failed: usize,
}

/// Closed loop: keep `window` requests in flight for `secs`. An answer of
/// `ok_len` octets is a success.
fn run(link: &mut dyn Link, request: &[u8], ok_len: usize, window: usize, secs: f64) -> Result_ {
    let mut req = request.to_vec();
    let mut sent_at = vec![None::<Instant>; 4096];
    let mut next_tid = 1u16;
    let mut buf = vec![0u8; 65536];
    let mut lat = Vec::with_capacity(1 << 20);
    let mut send = |link: &mut dyn Link, sent_at: &mut Vec<Option<Instant>>| {
        let tid = next_tid;
        next_tid = if next_tid >= 4095 { 1 } else { next_tid + 1 };
        set_tid(&mut req, tid);
        sent_at[usize::from(tid)] = Some(Instant::now());
        link.send(&req);
    };
    for _ in 0..window {
        send(link, &mut sent_at);
    }
    let start = Instant::now();
    let warm = Duration::from_millis(if secs < 1.0 { 50 } else { 300 });
    let end = start + warm + Duration::from_secs_f64(secs);
    let mut counted = 0usize;
    let mut failed = 0usize;
    let mut t0 = None;
    loop {
        let n = link.recv(&mut buf);
        let now = Instant::now();
        if n < 8 || buf[2] != 0x30 || buf[3] != 0x09 {
            continue; // not a N2N_HO_Commit confirm / response
        }
        let tid = tid_of(&buf[..n]);
        let Some(t) = sent_at[usize::from(tid)].take() else {
            continue;
        };
        if n != ok_len {
            failed += 1;
        } else if now >= start + warm {
            t0.get_or_insert(now);
            lat.push(now - t);
            counted += 1;
        }
        if now >= end {
            break;
        }
        send(link, &mut sent_at);
    }
    let elapsed = t0.map_or(Duration::from_secs(1), |t| t.elapsed());
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    Result_ {
        tps: counted as f64 / elapsed.as_secs_f64(),
        p50: pct(0.5),
        p99: pct(0.99),
        n: counted,
        failed,
    }
}

/// The answering side of a bare UDP ping-pong: reply to each request with a
/// response-sized frame carrying its TID.
fn udp_echo(sock: UdpSocket, response: Vec<u8>, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 65536];
    let mut rsp = response;
    rsp[2] = 0x30; // a "confirm" MID so the client counts it
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            set_tid(&mut rsp, tid_of(&buf[..n]));
            let _ = sock.send_to(&rsp, from);
        }
    }
}

/// A relay thread: every datagram on `sock` from `a` goes to `b` and back.
fn relay(sock: UdpSocket, to_b: SocketAddr, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 65536];
    let mut a = None;
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            if from == to_b {
                if let Some(a) = a {
                    let _ = sock.send_to(&buf[..n], a);
                }
            } else {
                a = Some(from);
                let _ = sock.send_to(&buf[..n], to_b);
            }
        }
    }
}

/// A MIH-User on the SAP that answers every N2N indication at once.
fn responder(sock: UdpSocket, stop: Arc<AtomicBool>) {
    let mut rsp = response_frame("target-enb", "mihf1");
    let mut buf = vec![0u8; 65536];
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            if n >= 8 && buf[2] == 0x3c && buf[3] == 0x09 {
                set_tid(&mut rsp, tid_of(&buf[..n]));
                let _ = sock.send_to(&rsp, from);
            }
        }
    }
}

fn register(sock: &UdpSocket, mihf: SocketAddr, id: &'static str, commands: CommandList) {
    let reg = Registration {
        user_id: MihfId::from_static(id),
        commands,
        events: EventList(0),
        queries: IsQueryTypeList(0),
    };
    let m = sap::register_indication(&reg, &MihfId::from_static(sap::LOCAL_MIHF), 0)
        .to_bytes()
        .unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 2048];
    for _ in 0..50 {
        let _ = sock.send_to(&m, mihf);
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            if Message::from_bytes(Bytes::copy_from_slice(&buf[..n]))
                .is_ok_and(|m| m.header.mid == sap::USER_REGISTER_CONFIRM)
            {
                sock.set_read_timeout(None).unwrap();
                return;
            }
        }
    }
    panic!("mihfd at {mihf} did not confirm the registration");
}

struct Daemons {
    children: Vec<Child>,
    sap_a: SocketAddr,
    sap_b: SocketAddr,
    dir: PathBuf,
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_daemons(tcp: bool) -> Daemons {
    let dir = std::env::temp_dir().join(format!("mihf-bench-{}-{}", std::process::id(), tcp));
    std::fs::create_dir_all(&dir).unwrap();
    let (pa, pb, sa, sb) = (free_port(), free_port(), free_port(), free_port());
    let transport = if tcp { "tcp" } else { "udp" };
    let conf = |id: &str, me: u16, sap: u16, peer: &str, pp: u16| {
        format!(
            "mihf_id = \"{id}\"\n[listen]\nudp = [\"127.0.0.1:{me}\"]\ntcp = [\"127.0.0.1:{me}\"]\n[sap]\nlisten = \"127.0.0.1:{sap}\"\n[timers]\ndiscovery_interval_ms = 0\nretransmission_timeout_ms = 10\nmax_retransmissions = 1\nduplicate_margin_ms = 5\nack_delay_ms = 5\ntransaction_lifetime_ms = 200\n[[peers]]\nid = \"{peer}\"\nudp = \"127.0.0.1:{pp}\"\ntcp = \"127.0.0.1:{pp}\"\ntransport = \"{transport}\"\n"
        )
    };
    let mut children = Vec::new();
    for (name, text) in [
        ("a", conf("mihf1", pa, sa, "mihf2", pb)),
        ("b", conf("mihf2", pb, sb, "mihf1", pa)),
    ] {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        children.push(
            Command::new(env!("CARGO_BIN_EXE_mihfd"))
                .arg("-c")
                .arg(&path)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    Daemons {
        children,
        sap_a: ([127, 0, 0, 1], sa).into(),
        sap_b: ([127, 0, 0, 1], sb).into(),
        dir,
    }
}

fn line(name: &str, r: &Result_) {
    println!(
        "{name:<42} {:>9.0} tx/s   p50 {:>7.1} µs   p99 {:>7.1} µs   (n={}, failed={})",
        r.tps,
        r.p50.as_secs_f64() * 1e6,
        r.p99.as_secs_f64() * 1e6,
        r.n,
        r.failed
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` does not: then
    // this is a smoke run (every scenario for a moment, checks that it works).
    let smoke = !std::env::args().any(|a| a == "--bench");
    let secs: f64 = if smoke {
        0.1
    } else {
        std::env::var("BENCH_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3.0)
    };
    let request = request_frame("source-enb", "mihf2");
    let response = response_frame("mihf2", "source-enb");
    println!(
        "MIH_N2N_HO_Commit request {} octets, response {} octets; {secs} s per scenario",
        request.len(),
        response.len()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut results = Vec::new();

    // Floor: bare UDP ping-pong.
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap();
    let (r2, s2) = (response.clone(), stop.clone());
    let h = thread::spawn(move || udp_echo(echo, r2, s2));
    for w in [1, 16] {
        let mut l = UdpLink(UdpSocket::bind("127.0.0.1:0").unwrap(), echo_addr);
        let r = run(&mut l, &request, response.len(), w, secs);
        line(&format!("floor UDP ping-pong, {w} in flight"), &r);
        results.push((format!("floor-udp-{w}"), r));
    }
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();

    // Floor: bare TCP ping-pong on one connection.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let la = l.local_addr().unwrap();
    let r2 = response.clone();
    let h = thread::spawn(move || {
        for s in l.incoming().take(2) {
            let Ok(mut s) = s else { continue };
            s.set_nodelay(true).unwrap();
            let mut rsp = r2.clone();
            rsp[2] = 0x30;
            thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                loop {
                    if s.read_exact(&mut buf[..8]).is_err() {
                        return;
                    }
                    let n = 8 + usize::from(u16::from_be_bytes([buf[6], buf[7]]));
                    if s.read_exact(&mut buf[8..n]).is_err() {
                        return;
                    }
                    set_tid(&mut rsp, tid_of(&buf));
                    if s.write_all(&rsp).is_err() {
                        return;
                    }
                }
            });
        }
    });
    for w in [1, 16] {
        let s = TcpStream::connect(la).unwrap();
        s.set_nodelay(true).unwrap();
        let mut link = TcpLink(s);
        let r = run(&mut link, &request, response.len(), w, secs);
        line(&format!("floor TCP ping-pong, {w} in flight"), &r);
        results.push((format!("floor-tcp-{w}"), r));
    }
    h.join().unwrap();

    // Floor: the same six UDP hops through two forwarding relays.
    let stop = Arc::new(AtomicBool::new(false));
    let resp_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let resp_addr = resp_sock.local_addr().unwrap();
    let relay_b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let relay_b_addr = relay_b.local_addr().unwrap();
    let relay_a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let relay_a_addr = relay_a.local_addr().unwrap();
    let mut hs = Vec::new();
    let (s1, s2, s3) = (stop.clone(), stop.clone(), stop.clone());
    let r2 = response.clone();
    hs.push(thread::spawn(move || udp_echo(resp_sock, r2, s1)));
    hs.push(thread::spawn(move || relay(relay_b, resp_addr, s2)));
    hs.push(thread::spawn(move || relay(relay_a, relay_b_addr, s3)));
    for w in [1, 16] {
        let mut l = UdpLink(UdpSocket::bind("127.0.0.1:0").unwrap(), relay_a_addr);
        let r = run(&mut l, &request, response.len(), w, secs);
        line(
            &format!("floor UDP relay chain (6 hops), {w} in flight"),
            &r,
        );
        results.push((format!("floor-chain-{w}"), r));
    }
    stop.store(true, Ordering::Relaxed);
    for h in hs {
        h.join().unwrap();
    }

    // The real thing: two mihfd processes.
    for tcp in [false, true] {
        let d = start_daemons(tcp);
        let stop = Arc::new(AtomicBool::new(false));
        let resp = UdpSocket::bind("127.0.0.1:0").unwrap();
        register(&resp, d.sap_b, "target-enb", CommandList::NET_HO);
        let s1 = stop.clone();
        let h = thread::spawn(move || responder(resp, s1));
        let user = UdpSocket::bind("127.0.0.1:0").unwrap();
        register(&user, d.sap_a, "source-enb", CommandList(0));
        let mut l = UdpLink(user, d.sap_a);
        let name = if tcp { "TCP" } else { "UDP" };
        for w in [1, 16] {
            let r = run(&mut l, &request, response.len(), w, secs);
            line(
                &format!("mihfd {name} (user→A→B→user and back), {w} in flight"),
                &r,
            );
            results.push((format!("mihfd-{}-{w}", name.to_lowercase()), r));
            thread::sleep(Duration::from_millis(300));
        }
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap();
        drop(d);
    }

    if smoke {
        for (name, r) in &results {
            assert!(r.n > 0, "{name}: no transaction completed");
            assert_eq!(r.failed, 0, "{name}: failure answers");
        }
        println!("transactions bench: smoke run OK (use `cargo bench` for figures)");
        return;
    }
    println!();
    let get = |k: &str| {
        results
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, r)| r)
            .unwrap()
    };
    for (t, floor) in [
        ("udp", "floor-udp"),
        ("tcp", "floor-tcp"),
        ("udp", "floor-chain"),
    ] {
        let lat_m = get(&format!("mihfd-{t}-1"));
        let lat_f = get(&format!("{floor}-1"));
        let thr_m = get(&format!("mihfd-{t}-16"));
        let thr_f = get(&format!("{floor}-16"));
        println!(
            "mihfd {t} vs {floor}: throughput {:.2}x (goal >= 0.5), p99 {:.2}x (goal <= 2), p50 {:.2}x",
            thr_m.tps / thr_f.tps,
            lat_m.p99.as_secs_f64() / lat_f.p99.as_secs_f64(),
            lat_m.p50.as_secs_f64() / lat_f.p50.as_secs_f64(),
        );
    }
}
