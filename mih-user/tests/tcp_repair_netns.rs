//! TCP_REPAIR session export/import with a plain client, in network
//! namespaces made by the test (run as root; skipped with a message when
//! namespaces cannot be created and `CI` is unset).
#![cfg(target_os = "linux")]

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mih_user::api::Connection;
use mih_user::orchestrator::sessions::{SessionExporter, SessionImporter};
use mih_user::sessions::netns;
use mih_user::sessions::tcp_repair::TcpRepair;
use testkit::netns::{ip, run_in, Netns};

/// `Tcp: OutRsts` and `EstabResets` of namespace `ns`.
fn rst_counters(ns: &str) -> (u64, u64) {
    let path = netns::path(ns);
    let get = |k| netns::tcp_counter(&path, "Tcp", k).unwrap();
    (get("OutRsts"), get("EstabResets"))
}

fn s2c(i: usize) -> u8 {
    (i % 251) as u8
}
fn c2s(i: usize) -> u8 {
    ((i * 7) % 253) as u8
}
fn pattern(f: fn(usize) -> u8, from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(f).collect()
}

fn inq(s: &TcpStream) -> usize {
    let mut v: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let r = unsafe { libc::ioctl(s.as_raw_fd(), libc::FIONREAD, &mut v) };
    assert_eq!(r, 0);
    v as usize
}

fn outq(s: &TcpStream) -> usize {
    let mut v: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int.
    let r = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut v) };
    assert_eq!(r, 0);
    v as usize
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(5), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The client reader: counts bytes, checks the pattern, records errors.
struct Reader {
    count: Arc<AtomicUsize>,
    handle: std::thread::JoinHandle<Result<usize, std::io::Error>>,
}

fn spawn_reader(mut c: TcpStream) -> Reader {
    let count = Arc::new(AtomicUsize::new(0));
    let cnt = count.clone();
    let handle = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        let mut off = 0usize;
        loop {
            let n = c.read(&mut buf)?;
            if n == 0 {
                return Ok(off);
            }
            for (i, b) in buf[..n].iter().enumerate() {
                assert_eq!(*b, s2c(off + i), "client stream corrupt at {}", off + i);
            }
            off += n;
            cnt.store(off, Ordering::SeqCst);
        }
    });
    Reader { count, handle }
}

struct Topo {
    _ns: Netns,
    server_ns: String,
    dest_ns: Option<String>,
    client_ns: String,
    service: SocketAddr,
    ue: IpAddr,
    /// Route commands in the client namespace.
    hold: Vec<String>,
    switch: Vec<String>,
}

/// Same namespace: server ns ↔ client ns over one veth; rollback in place.
fn topo_same() -> Option<Topo> {
    let ns = Netns::new("trs", &["srv", "cli"])?;
    let (s, c) = (ns.name(0).to_string(), ns.name(1).to_string());
    ip(&[
        "-n", &s, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", &c,
    ])
    .unwrap();
    ip(&["-n", &s, "addr", "add", "10.231.0.1/24", "dev", "v0"]).unwrap();
    ip(&["-n", &c, "addr", "add", "10.231.0.2/24", "dev", "v1"]).unwrap();
    ip(&["-n", &s, "link", "set", "v0", "up"]).unwrap();
    ip(&["-n", &c, "link", "set", "v1", "up"]).unwrap();
    Some(Topo {
        server_ns: s,
        dest_ns: None,
        client_ns: c.clone(),
        service: "10.231.0.1:7000".parse().unwrap(),
        ue: "10.231.0.2".parse().unwrap(),
        hold: vec![format!("-n {c} route add blackhole 10.231.0.1/32")],
        switch: vec![format!("-n {c} route del blackhole 10.231.0.1/32")],
        _ns: ns,
    })
}

/// As [`topo_same`], over IPv6.
fn topo_same_v6() -> Option<Topo> {
    let ns = Netns::new("tr6", &["srv", "cli"])?;
    let (s, c) = (ns.name(0).to_string(), ns.name(1).to_string());
    ip(&[
        "-n", &s, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", &c,
    ])
    .unwrap();
    ip(&[
        "-n",
        &s,
        "addr",
        "add",
        "fd00:231::1/64",
        "dev",
        "v0",
        "nodad",
    ])
    .unwrap();
    ip(&[
        "-n",
        &c,
        "addr",
        "add",
        "fd00:231::2/64",
        "dev",
        "v1",
        "nodad",
    ])
    .unwrap();
    ip(&["-n", &s, "link", "set", "v0", "up"]).unwrap();
    ip(&["-n", &c, "link", "set", "v1", "up"]).unwrap();
    Some(Topo {
        server_ns: s,
        dest_ns: None,
        client_ns: c.clone(),
        service: "[fd00:231::1]:7000".parse().unwrap(),
        ue: "fd00:231::2".parse().unwrap(),
        hold: vec![format!("-n {c} route add blackhole fd00:231::1/128")],
        switch: vec![format!("-n {c} route del blackhole fd00:231::1/128")],
        _ns: ns,
    })
}

/// Two eNBC namespaces holding the same service address on `lo`, each
/// linked to the UE namespace; the UE's route picks the serving one.
fn topo_cross() -> Option<Topo> {
    let ns = Netns::new("trx", &["enb1", "enb2", "ue"])?;
    let (e1, e2, ue) = (
        ns.name(0).to_string(),
        ns.name(1).to_string(),
        ns.name(2).to_string(),
    );
    for (i, e) in [(1, &e1), (2, &e2)] {
        let (ve, vu) = (format!("e{i}"), format!("u{i}"));
        ip(&[
            "-n", e, "link", "add", &ve, "type", "veth", "peer", "name", &vu, "netns", &ue,
        ])
        .unwrap();
        ip(&[
            "-n",
            e,
            "addr",
            "add",
            &format!("10.231.{i}.1/24"),
            "dev",
            &ve,
        ])
        .unwrap();
        ip(&[
            "-n",
            &ue,
            "addr",
            "add",
            &format!("10.231.{i}.2/24"),
            "dev",
            &vu,
        ])
        .unwrap();
        ip(&["-n", e, "link", "set", &ve, "up"]).unwrap();
        ip(&["-n", &ue, "link", "set", &vu, "up"]).unwrap();
        ip(&["-n", e, "addr", "add", "10.99.0.1/32", "dev", "lo"]).unwrap();
        ip(&[
            "-n",
            e,
            "route",
            "add",
            "10.77.0.2/32",
            "via",
            &format!("10.231.{i}.2"),
        ])
        .unwrap();
    }
    ip(&["-n", &ue, "addr", "add", "10.77.0.2/32", "dev", "lo"]).unwrap();
    ip(&[
        "-n",
        &ue,
        "route",
        "add",
        "10.99.0.1/32",
        "via",
        "10.231.1.1",
        "src",
        "10.77.0.2",
    ])
    .unwrap();
    Some(Topo {
        server_ns: e1,
        dest_ns: Some(e2),
        client_ns: ue.clone(),
        service: "10.99.0.1:7000".parse().unwrap(),
        ue: "10.77.0.2".parse().unwrap(),
        hold: vec![format!("-n {ue} route replace blackhole 10.99.0.1/32")],
        switch: vec![format!(
            "-n {ue} route replace 10.99.0.1/32 via 10.231.2.1 src 10.77.0.2"
        )],
        _ns: ns,
    })
}

fn run_cmds(cmds: &[String]) -> Result<(), String> {
    for c in cmds {
        let args: Vec<&str> = c.split_whitespace().collect();
        ip(&args)?;
    }
    Ok(())
}

/// The UE's connection to the service: the server's socket, the client's
/// address as the server sees it, and the client's socket (bound to the
/// UE address).
fn connect(t: &Topo) -> (TcpStream, SocketAddr, TcpStream) {
    let (service, ue) = (t.service, t.ue);
    let listener = run_in(&t.server_ns, || TcpListener::bind(service).unwrap());
    let client = run_in(&t.client_ns, || {
        let s = socket2::Socket::new(
            socket2::Domain::for_address(service),
            socket2::Type::STREAM,
            None,
        )
        .unwrap();
        s.bind(&SocketAddr::new(ue, 0).into()).unwrap();
        s.connect(&service.into()).unwrap();
        TcpStream::from(s)
    });
    let (srv, peer) = listener.accept().unwrap();
    (srv, peer, client)
}

fn migrate(t: Topo) {
    const C1: usize = 64 * 1024;
    const C1_READ: usize = 16 * 1024;
    const S0: usize = 32 * 1024;
    const S2: usize = 64 * 1024;
    const C2: usize = 32 * 1024;
    let service = t.service;
    let ue = t.ue;
    let (mut srv, peer, client) = connect(&t);
    for s in [&srv, &client] {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    let mut cw = client.try_clone().unwrap();
    let reader = spawn_reader(client);

    // Both directions flow; the server leaves 48 KB unread.
    cw.write_all(&pattern(c2s, 0, C1)).unwrap();
    let mut buf = vec![0u8; C1_READ];
    srv.read_exact(&mut buf).unwrap();
    assert_eq!(buf, pattern(c2s, 0, C1_READ));
    wait_until("server receive queue", || inq(&srv) == C1 - C1_READ);
    srv.write_all(&pattern(s2c, 0, S0)).unwrap();
    wait_until("client got S0", || {
        reader.count.load(Ordering::SeqCst) >= S0
    });
    wait_until("S0 acknowledged", || outq(&srv) == 0);

    // Hold the client's segments away from the server, then write: what
    // is sent stays unacknowledged, the rest unsent.
    run_cmds(&t.hold).unwrap();
    srv.set_nonblocking(true).unwrap();
    let mut s1 = 0usize;
    let chunk = 16 * 1024;
    loop {
        match srv.write(&pattern(s2c, S0 + s1, chunk)) {
            Ok(n) => s1 += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("server write: {e}"),
        }
        if s1 > 4 << 20 {
            break;
        }
    }
    srv.set_nonblocking(false).unwrap();
    std::thread::sleep(Duration::from_millis(50));

    // Export (freeze, dump, close in repair mode).
    let conn = Connection {
        client: peer,
        server: service,
    };
    let switch = t.switch.clone();
    let dest = Arc::new(TcpRepair::new().with_resume_hook(move |_| run_cmds(&switch)));
    let source = if t.dest_ns.is_none() {
        dest.clone()
    } else {
        Arc::new(TcpRepair::new())
    };
    source.adopt(OwnedFd::from(srv)).unwrap();
    let t0 = Instant::now();
    let ctxs = source.export(ue, std::slice::from_ref(&conn)).unwrap();
    let export_time = t0.elapsed();
    assert_eq!(ctxs.len(), 1);
    let ctx = &ctxs[0];
    eprintln!(
        "exported: unacked {} unsent {} recv {} mss {} wscale {}/{} sack {} ts {} ({:?}; {:?})",
        ctx.unacked.len(),
        ctx.unsent.len(),
        ctx.recv_queue.len(),
        ctx.mss,
        ctx.snd_wscale,
        ctx.rcv_wscale,
        ctx.sack,
        ctx.timestamps,
        export_time,
        source.last_timings()
    );
    assert_eq!(ctx.recv_queue.len(), C1 - C1_READ);
    assert_eq!(
        &ctx.recv_queue[..],
        &pattern(c2s, C1_READ, C1 - C1_READ)[..]
    );
    assert!(!ctx.unacked.is_empty(), "no unacknowledged send data");
    // S0 was acknowledged before the hold; none of S1 can be.
    assert_eq!(ctx.unacked.len() + ctx.unsent.len(), s1);

    // Travel through the CXTP profile encoding, as between eNBCs.
    use cxtp::profile::FeatureProfile;
    let (pv, enc) = ctx.encode();
    let ctx2 = cxtp::profile::TcpSessionContext::decode(pv, &enc).unwrap();
    assert_eq!(&ctx2, ctx);

    // Rebuild: in place (rollback) or in the destination namespace.
    let t1 = Instant::now();
    match &t.dest_ns {
        None => run_in(&t.server_ns, || {
            source.restore(ue, std::slice::from_ref(&ctx2)).unwrap()
        }),
        Some(d) => run_in(d, || {
            let r = dest.import(ue, std::slice::from_ref(&ctx2));
            r.into_iter().for_each(|r| r.unwrap());
            dest.commit(ue);
            source.release(ue);
        }),
    }
    let import_time = t1.elapsed();
    eprintln!("rebuilt in {:?} ({:?})", import_time, dest.last_timings());
    let mut srv = TcpStream::from(dest.take(service, peer).expect("rebuilt socket"));
    srv.set_read_timeout(Some(Duration::from_secs(20))).unwrap();

    // The stream continues both ways, byte-exact.
    let mut rest = vec![0u8; C1 - C1_READ];
    srv.read_exact(&mut rest).unwrap();
    assert_eq!(rest, pattern(c2s, C1_READ, C1 - C1_READ));
    cw.write_all(&pattern(c2s, C1, C2)).unwrap();
    cw.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    srv.read_to_end(&mut got).unwrap();
    assert_eq!(got, pattern(c2s, C1, C2));
    srv.write_all(&pattern(s2c, S0 + s1, S2)).unwrap();
    srv.shutdown(Shutdown::Write).unwrap();
    let total = reader
        .handle
        .join()
        .unwrap()
        .expect("client read failed (reset?)");
    assert_eq!(total, S0 + s1 + S2, "client byte count");
    eprintln!("client received {total} bytes, no reset");
    // No namespace sent an RST. `EstabResets` counts any ESTABLISHED ->
    // CLOSED transition: closing the frozen socket in repair mode is one
    // (silent, nothing on the wire) in the source namespace; the client's
    // namespace must have none.
    for ns in t._ns.names() {
        let (out_rsts, estab_resets) = rst_counters(ns);
        eprintln!("{ns}: OutRsts {out_rsts} EstabResets {estab_resets}");
        assert_eq!(out_rsts, 0, "RST sent in {ns}");
        if *ns == t.client_ns {
            assert_eq!(estab_resets, 0, "client connection reset in {ns}");
        } else {
            assert!(estab_resets <= 1, "resets in {ns}");
        }
    }
}

#[test]
fn rollback_freeze_close_rebuild_same_namespace() {
    let Some(t) = topo_same() else { return };
    migrate(t);
}

#[test]
fn rollback_same_namespace_ipv6() {
    let Some(t) = topo_same_v6() else { return };
    migrate(t);
}

#[test]
fn move_between_namespaces_with_held_flow() {
    let Some(t) = topo_cross() else { return };
    migrate(t);
}

/// Export is all-or-nothing: a connection without an adopted socket fails
/// the export and the adopted ones stay live and usable.
#[test]
fn export_without_adopted_socket_fails_and_leaves_others_live() {
    let Some(t) = topo_same() else { return };
    let service = t.service;
    let ue = t.ue;
    let listener = run_in(&t.server_ns, || TcpListener::bind(service).unwrap());
    let mut client = run_in(&t.client_ns, || TcpStream::connect(service).unwrap());
    let (srv, peer) = listener.accept().unwrap();
    let repair = TcpRepair::new();
    repair.adopt(OwnedFd::from(srv)).unwrap();
    let conns = [
        Connection {
            client: peer,
            server: service,
        },
        Connection {
            client: SocketAddr::new(ue, 1),
            server: service,
        },
    ];
    let e = repair.export(ue, &conns).unwrap_err();
    assert!(e.to_string().contains("no adopted socket"), "{e}");
    let mut srv = TcpStream::from(repair.take(service, peer).expect("still live"));
    client.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    srv.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    srv.write_all(b"pong").unwrap();
    client.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"pong");
}

/// A partial failure of a multi-session export: the UE's first session
/// freezes, the second cannot be dumped (its client closed its side, so it
/// is no longer established). The export fails as a whole and the frozen
/// first session is thawed: both stay live, the first carries data both
/// ways as before, and nothing reset the client.
#[test]
fn a_partial_export_failure_thaws_the_sessions_already_frozen() {
    let Some(t) = topo_same() else { return };
    let service = t.service;
    let ue = t.ue;
    let listener = run_in(&t.server_ns, || TcpListener::bind(service).unwrap());
    let mut c1 = run_in(&t.client_ns, || TcpStream::connect(service).unwrap());
    let (s1, p1) = listener.accept().unwrap();
    let c2 = run_in(&t.client_ns, || TcpStream::connect(service).unwrap());
    let (s2, p2) = listener.accept().unwrap();
    // Some data in flight on the first before the freeze.
    (&s1).write_all(&pattern(s2c, 0, 4096)).unwrap();
    c2.shutdown(Shutdown::Write).unwrap();
    let mut b = [0u8; 1];
    assert_eq!((&s2).read(&mut b).unwrap(), 0, "FIN seen: CLOSE_WAIT");
    let repair = TcpRepair::new();
    repair.adopt(OwnedFd::from(s1)).unwrap();
    repair.adopt(OwnedFd::from(s2)).unwrap();
    let conns = [
        Connection {
            client: p1,
            server: service,
        },
        Connection {
            client: p2,
            server: service,
        },
    ];
    let e = repair.export(ue, &conns).unwrap_err();
    assert!(e.to_string().contains("not established"), "{e}");
    // Both are back in the table, live.
    let mut s1 = TcpStream::from(repair.take(service, p1).expect("first thawed"));
    assert!(repair.take(service, p2).is_some(), "second given back");
    let mut got = vec![0u8; 4096];
    c1.read_exact(&mut got).unwrap();
    assert_eq!(got, pattern(s2c, 0, 4096));
    c1.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    s1.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    s1.write_all(&pattern(s2c, 4096, 64 * 1024)).unwrap();
    let mut got = vec![0u8; 64 * 1024];
    c1.read_exact(&mut got).unwrap();
    assert_eq!(got, pattern(s2c, 4096, 64 * 1024));
    let (_, estab_resets) = rst_counters(&t.client_ns);
    assert_eq!(estab_resets, 0, "client reset");
}

// ---- a rebuilt session moved again, and a stale snapshot ----
//
// The client has every octet of the source's unacknowledged data (its
// acknowledgements were held away): what a rebuilt socket must do then.

use mih_user::sessions::tcp_repair::{dump, rebuild, rebuild_frozen};

/// A stream whose last 48 KB (as far as the congestion window let them
/// out) reached the client while its acknowledgements were held away.
struct Held {
    reader: Reader,
    /// Octets written by the server so far.
    written: usize,
}

impl Held {
    /// 64 KB more written on `fd` (rebuilt in `ns`) reach the client
    /// within 3 s.
    fn more_arrives(&self, t: &Topo, ns: &str, fd: OwnedFd) -> bool {
        delivers(
            t,
            ns,
            fd,
            self.written,
            64 * 1024,
            &self.reader,
            Duration::from_secs(3),
        )
    }
}

fn held_stream(t: &Topo) -> (TcpStream, Held) {
    const S0: usize = 32 * 1024;
    const U: usize = 48 * 1024;
    let (mut srv, _, client) = connect(t);
    let reader = spawn_reader(client);
    srv.write_all(&pattern(s2c, 0, S0)).unwrap();
    wait_until("client got S0", || {
        reader.count.load(Ordering::SeqCst) >= S0
    });
    wait_until("S0 acknowledged", || outq(&srv) == 0);
    run_cmds(&t.hold).unwrap();
    srv.write_all(&pattern(s2c, S0, U)).unwrap();
    // Until the client's count settles (the rest waits for the window).
    let mut last = 0;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let c = reader.count.load(Ordering::SeqCst);
        if c == last {
            break;
        }
        last = c;
    }
    assert!(last > S0 + 16 * 1024, "the client got {} of U", last - S0);
    assert_eq!(outq(&srv), U, "none of U acknowledged");
    (
        srv,
        Held {
            reader,
            written: S0 + U,
        },
    )
}

fn ss(ns: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "ss", "-tin"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Write `len` octets (the stream from offset `from`) on `fd` and wait
/// until the client has them all, at most `limit`: whether it got them.
fn delivers(
    t: &Topo,
    ns: &str,
    fd: OwnedFd,
    from: usize,
    len: usize,
    reader: &Reader,
    limit: Duration,
) -> bool {
    let mut s = TcpStream::from(fd);
    let t0 = Instant::now();
    s.write_all(&pattern(s2c, from, len)).unwrap();
    while reader.count.load(Ordering::SeqCst) < from + len {
        if t0.elapsed() > limit {
            eprintln!(
                "client has {} of {} after {limit:?}\nsender ({ns}):\n{}\nclient:\n{}",
                reader.count.load(Ordering::SeqCst),
                from + len,
                ss(ns),
                ss(&t.client_ns)
            );
            std::mem::forget(s);
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    eprintln!("delivered in {:?}", t0.elapsed());
    // Not closed here: the test's namespaces go with it.
    std::mem::forget(s);
    true
}

fn route_back_to_enb1(t: &Topo) -> Vec<String> {
    vec![format!(
        "-n {} route replace 10.99.0.1/32 via 10.231.1.1 src 10.77.0.2",
        t.client_ns
    )]
}

fn assert_client_not_reset(t: &Topo) {
    let (_, estab_resets) = rst_counters(&t.client_ns);
    assert_eq!(estab_resets, 0, "client connection reset");
}

/// A destination keeps an import frozen until the commit, which can take
/// seconds after a crash. The retransmission timer armed by the repair-mode
/// send of the unacknowledged data fires meanwhile and backs off; the
/// window probe on leaving repair mode still restarts the flow at once.
#[test]
fn an_import_frozen_for_seconds_resumes_without_waiting_for_its_timer() {
    for frozen_ms in [0u64, 3500] {
        let Some(t) = topo_cross() else { return };
        let (srv, held) = held_stream(&t);
        let (ctx, _) = dump(OwnedFd::from(srv)).map_err(|e| e.0).unwrap();
        let d = t.dest_ns.clone().unwrap();
        let r = run_in(&d, || rebuild_frozen(&ctx).unwrap());
        std::thread::sleep(Duration::from_millis(frozen_ms));
        let sw = t.switch.clone();
        let (fd, _) = r.resume(|| run_cmds(&sw)).unwrap();
        assert!(
            held.more_arrives(&t, &d, fd),
            "frozen {frozen_ms} ms: no delivery"
        );
        assert_client_not_reset(&t);
    }
}

/// Rolled back in place (the window probe lost in the hold), then moved
/// again while the client's acknowledgement of the rebuilt data never
/// reached the source: the second export carries the same
/// unacknowledged octets, and the destination's window probe draws the
/// acknowledgement, unless the client answered an out-of-window segment
/// less than `tcp_invalid_ratelimit` (500 ms) before: then the first
/// retransmission (1 s) does. A pause, never a stall.
#[test]
fn a_rolled_back_session_moved_again_with_unacknowledged_data_flows() {
    for wait_ms in [0u64, 700] {
        let Some(t) = topo_cross() else { return };
        let (srv, held) = held_stream(&t);
        let (ctx1, _) = dump(OwnedFd::from(srv)).map_err(|e| e.0).unwrap();
        let (fd1, _) = run_in(&t.server_ns, || rebuild(&ctx1, || Ok(())).unwrap());
        run_cmds(&route_back_to_enb1(&t)).unwrap();
        std::thread::sleep(Duration::from_millis(wait_ms));
        run_cmds(&t.hold).unwrap();
        let (ctx2, _) = dump(fd1).map_err(|e| e.0).unwrap();
        assert_eq!(
            ctx2.unacked.len() + ctx2.unsent.len(),
            ctx1.unacked.len() + ctx1.unsent.len()
        );
        let d = t.dest_ns.clone().unwrap();
        let sw = t.switch.clone();
        let (fd, _) = run_in(&d, || rebuild(&ctx2, || run_cmds(&sw)).unwrap());
        assert!(
            held.more_arrives(&t, &d, fd),
            "moved {wait_ms} ms after the rollback: no delivery"
        );
        assert_client_not_reset(&t);
    }
}

/// Why only one end may ever serve a session: the destination resumed
/// and sent 64 KB more, then the source rebuilt its (now stale) snapshot
/// and the path came back to it. The client acknowledges octets the
/// rebuilt socket never sent; the kernel drops such acknowledgements, so
/// the stale socket's sends never get past its congestion window: the
/// stream stalls for good, without a reset. (The orchestrator's rules make
/// this unreachable: a destination commits only when its source cannot be
/// serving the session.)
#[test]
fn a_stale_snapshot_stalls_the_stream_without_a_reset() {
    let Some(t) = topo_cross() else { return };
    let (srv, held) = held_stream(&t);
    let (ctx1, _) = dump(OwnedFd::from(srv)).map_err(|e| e.0).unwrap();
    let d = t.dest_ns.clone().unwrap();
    let sw = t.switch.clone();
    let (fd2, _) = run_in(&d, || rebuild(&ctx1, || run_cmds(&sw)).unwrap());
    assert!(held.more_arrives(&t, &d, fd2.try_clone().unwrap()));
    // The destination's copy ends silently; the source's stale one
    // serves again (the same octets, as a rebuilt service would write).
    let _ = dump(fd2);
    let back = route_back_to_enb1(&t);
    let (fd1, _) = run_in(&t.server_ns, || rebuild(&ctx1, || run_cmds(&back)).unwrap());
    assert!(
        !delivers(
            &t,
            &t.server_ns,
            fd1,
            held.written,
            192 * 1024,
            &held.reader,
            Duration::from_secs(3)
        ),
        "a stale snapshot delivered: the kernel now accepts acknowledgements of unsent data?"
    );
    assert_client_not_reset(&t);
}

/// Export one adopted session of `t` with no hold, then have the client
/// send 4 octets that reach the frozen socket (and are acknowledged).
/// Returns the table, the client's address, the client, the exported
/// sessions and the source's RST counters from before the export.
fn export_then_late_segment(
    t: &Topo,
) -> (
    TcpRepair,
    SocketAddr,
    TcpStream,
    Vec<cxtp::profile::TcpSessionContext>,
    (u64, u64),
) {
    let (srv, peer, mut client) = connect(t);
    let repair = TcpRepair::new();
    repair.adopt(OwnedFd::from(srv)).unwrap();
    let conns = [Connection {
        client: peer,
        server: t.service,
    }];
    let before = rst_counters(&t.server_ns);
    let sessions = repair.export(t.ue, &conns).unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(repair.kept_exported(), 1);
    client.write_all(b"late").unwrap();
    wait_until("the late segment acknowledged", || outq(&client) == 0);
    (repair, peer, client, sessions, before)
}

/// A segment of the UE that was on its way when the flow hold was laid
/// (here: no hold at all) reaches the source after the export. The frozen
/// socket is still open there, so the segment finds it and draws no RST
/// (closed right after the dump, as before, the client was reset: a storm
/// of 1,000 UEs lost one session so). The socket took the data, which the
/// export does not have: the release counts it.
#[test]
fn a_late_segment_after_the_export_finds_the_frozen_socket_and_no_reset() {
    let Some(t) = topo_same() else { return };
    let (repair, _, _client, _, before) = export_then_late_segment(&t);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(rst_counters(&t.server_ns), before, "the source sent an RST");
    assert_eq!(rst_counters(&t.client_ns).1, 0, "the client was reset");
    SessionExporter::release(&repair, t.ue);
    assert_eq!(repair.kept_exported(), 0);
    assert_eq!(repair.late_data(), 1, "the late data is counted");
    // Closed in repair mode: still no RST towards the client (the close
    // counts as an `EstabResets` in the source namespace, silently).
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(rst_counters(&t.server_ns).0, before.0);
    assert_eq!(rst_counters(&t.client_ns).1, 0, "the client was reset");
}

/// A rollback thaws the frozen socket instead of rebuilding it: what
/// reached it after the dump is still there for the service, both ways
/// carry data, and the export's release count is untouched.
#[test]
fn a_rollback_thaws_the_kept_socket_with_what_reached_it_late() {
    let Some(t) = topo_same() else { return };
    let (repair, peer, mut client, sessions, _) = export_then_late_segment(&t);
    SessionExporter::restore(&repair, t.ue, &sessions).unwrap();
    assert_eq!(repair.kept_exported(), 0);
    let mut srv = TcpStream::from(repair.take(t.service, peer).expect("thawed"));
    let mut b = [0u8; 4];
    srv.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"late");
    srv.write_all(b"back").unwrap();
    client.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"back");
    assert_eq!(repair.late_data(), 0);
    assert_eq!(rst_counters(&t.client_ns).1, 0);
}
