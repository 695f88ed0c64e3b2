use std::time::Duration;

use super::*;
use crate::wire::{CtcRepr, CtdrRepr, MessageRepr};

fn ctc(i: u8) -> Bytes {
    MessageRepr::Ctc(CtcRepr {
        mn_addr: IpAddr::from([10, 0, 0, i]),
    })
    .to_bytes()
    .unwrap()
}

#[test]
fn codec_splits_partial_and_coalesced_frames() {
    let a = ctc(1);
    let b = MessageRepr::Ctdr(CtdrRepr {
        success: true,
        mn_addr: "2001:db8::1".parse().unwrap(),
        entries: vec![],
    })
    .to_bytes()
    .unwrap();
    let mut all = BytesMut::new();
    all.extend_from_slice(&a);
    all.extend_from_slice(&b);
    let mut codec = CxtpCodec::default();
    // Byte by byte.
    let mut buf = BytesMut::new();
    let mut out = vec![];
    for byte in all.iter() {
        buf.extend_from_slice(&[*byte]);
        while let Some(m) = codec.decode(&mut buf).unwrap() {
            out.push(m);
        }
    }
    assert_eq!(out, vec![a.clone(), b.clone()]);
    // All at once.
    let mut buf = all.clone();
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(a));
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(b));
    assert_eq!(codec.decode(&mut buf).unwrap(), None);
    // Garbage is an error, not a hang or a panic.
    let mut bad = BytesMut::from(&[0x41u8, 0x80, 0, 8][..]);
    assert!(codec.decode(&mut bad).is_err());
    let mut short = BytesMut::from(&[0x26u8, 0x80, 0, 2][..]);
    assert!(codec.decode(&mut short).is_err());
    // Encoder refuses inconsistent lengths.
    let mut wrong = ctc(1).to_vec();
    wrong[3] = 9;
    assert!(matches!(
        codec.encode(Bytes::from(wrong), &mut BytesMut::new()),
        Err(FrameError::LengthMismatch { header: 9, .. })
    ));
}

#[test]
fn codec_refuses_frames_over_its_limit_from_the_header_alone() {
    let mut codec = CxtpCodec::new(1024);
    assert_eq!(codec.max_frame(), 1024);
    // A CTD header announcing 2000 octets: refused before any of them.
    let mut buf = BytesMut::from(&[0x23u8, 0x00, 0x07, 0xd0][..]);
    match codec.decode(&mut buf) {
        Err(FrameError::TooLong {
            length: 2000,
            max: 1024,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // At the limit: waits for the rest, and has room for exactly that.
    let mut buf = BytesMut::from(&[0x23u8, 0x00, 0x04, 0x00][..]);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(buf.capacity() >= 1024);
    // The default is the 16-bit Length's own limit, and the limit is
    // clamped to it.
    assert_eq!(CxtpCodec::default().max_frame(), MAX_FRAME);
    assert_eq!(CxtpCodec::new(1 << 20).max_frame(), MAX_FRAME);
    assert!(matches!(
        CxtpCodec::new(4).check(&ctc(1)),
        Err(FrameError::TooLong { .. })
    ));
    assert!(CxtpCodec::default().check(&ctc(1)).is_ok());
    assert!(matches!(
        CxtpCodec::default().check(&[0xff, 0, 0, 4]),
        Err(FrameError::Header(_))
    ));
}

const A: [u8; 4] = [127, 0, 0, 1];
const B: [u8; 4] = [127, 0, 0, 2];

/// Listens on `at`, accepts connections from `peers` only.
fn config(at: [u8; 4], peers: &[[u8; 4]]) -> TransportConfig {
    TransportConfig {
        listen: SocketAddr::from((at, 0)),
        accept_from: PeerFilter::only(peers.iter().map(|&p| IpAddr::from(p))),
        ..Default::default()
    }
}

/// Two routers, 127.0.0.1 and 127.0.0.2, each accepting the other.
async fn pair() -> (TcpTransport, TcpTransport) {
    let a = TcpTransport::bind(config(A, &[B])).await.unwrap();
    let b = TcpTransport::bind(config(B, &[A])).await.unwrap();
    (a, b)
}

fn route(a: &mut TcpTransport, b: &TcpTransport) {
    a.set_peer_port(b.local_addr().ip(), b.local_addr().port());
}

#[tokio::test]
async fn many_messages_in_flight_over_one_reused_connection() {
    let (mut a, mut b) = pair().await;
    route(&mut a, &b);
    let a = Arc::new(a);
    let b_ip = b.local_addr().ip();
    // Several concurrent senders, messages up to 64 KB.
    let big = crate::segment::encode_transfer(
        &crate::segment::SegmentConfig::default(),
        &crate::segment::CtdHeader {
            ack: true,
            elapsed_ms: 0,
            mn_addr: "192.0.2.1".parse().unwrap(),
            key_block: None,
        },
        &[crate::profile::Context::new(
            0xFF02,
            Bytes::from(vec![9u8; 300_000]),
        )],
        1,
    )
    .unwrap();
    let mut tasks = vec![];
    for t in 0..4u8 {
        let a = a.clone();
        let big = big.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50u8 {
                a.send(b_ip, ctc(t * 50 + i)).await.unwrap();
            }
            for m in big {
                a.send(b_ip, m).await.unwrap();
            }
        }));
    }
    let mut ctcs = 0;
    let mut ctds = 0;
    while ctcs + ctds < 200 + 4 * big.len() {
        let (from, m) = tokio::time::timeout(Duration::from_secs(10), b.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(from, a.local_addr().ip());
        match m[0] {
            0x26 => ctcs += 1,
            0x23 => {
                assert!(big.contains(&m));
                ctds += 1
            }
            x => panic!("unexpected {x:#x}"),
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(a.connects(), 1, "one connection for all transfers");
    // b replies over the connection a opened: no new connection.
    b.send(a.local_addr().ip(), ctc(7)).await.unwrap();
    let a = Arc::try_unwrap(a).ok().unwrap();
    let mut a = a;
    let (from, m) = tokio::time::timeout(Duration::from_secs(5), a.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((from, m), (b_ip, ctc(7)));
    assert_eq!(b.connects(), 0);
    assert_eq!(a.accepts(), 0);
}

#[tokio::test]
async fn reconnects_after_the_peer_restarts() {
    let (mut a, b) = pair().await;
    route(&mut a, &b);
    let b_addr = b.local_addr();
    a.send(b_addr.ip(), ctc(1)).await.unwrap();
    drop(b);
    let mut b2 = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if let Ok(t) = TcpTransport::bind(TransportConfig {
            listen: b_addr,
            ..config(B, &[A])
        })
        .await
        {
            b2 = Some(t);
            break;
        }
    }
    let mut b2 = b2.expect("rebind");
    // The old connection is dead; sends eventually go over a new one.
    let mut got = None;
    for i in 0..50u8 {
        let _ = a.send(b_addr.ip(), ctc(i)).await;
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(100), b2.recv()).await {
            got = Some(m);
            break;
        }
    }
    assert!(got.is_some(), "no message after the restart");
    assert!(a.connects() >= 2);
}

#[tokio::test]
async fn a_peer_sending_garbage_is_disconnected() {
    let (a, mut b) = pair().await;
    let mut s = TcpStream::connect(b.local_addr()).await.unwrap();
    s.write_all(&[0xff; 16]).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "connection closed");
    assert!(tokio::time::timeout(Duration::from_millis(50), b.recv())
        .await
        .is_err());
    eventually("counted", || b.stats().closed_invalid == 1).await;
    drop(a);
}

/// pAR and nAR engines driven by real time over two loopback transports:
/// a mobile-controlled reactive transfer of a 1 MiB context.
#[tokio::test]
async fn engines_transfer_a_large_context_over_tcp() {
    use crate::engine::{Config, NarEvent, NewRouter, ParEvent, PreviousRouter, Transmit};
    use crate::profile::{Context, ProfileRegistry};
    use crate::token::AuthKey;
    use crate::wire::{CtarRepr, Token};
    use std::time::Instant;

    let (mut pt, mut nt) = pair().await;
    route(&mut pt, &nt);
    route(&mut nt, &pt);
    let (par_ip, nar_ip) = (pt.local_addr().ip(), nt.local_addr().ip());
    let mn: IpAddr = "192.0.2.1".parse().unwrap();
    let key = AuthKey::new(&[7; 20]);
    let cfg = Config {
        max_transfer_time: Duration::from_secs(2),
        ..Config::default()
    };
    let mut par = PreviousRouter::new(cfg.clone());
    par.set_key(mn, key.clone());
    let mut nar = NewRouter::new(cfg, ProfileRegistry::with_builtins());
    let big = Context::new(0x7000, Bytes::from(vec![0x5a; 1 << 20]));

    let par_task = {
        let big = big.clone();
        tokio::spawn(async move {
            loop {
                while let Some(e) = par.poll_event() {
                    match e {
                        ParEvent::ContextsRequested { mn, .. } => par
                            .provide_contexts(Instant::now(), mn, vec![big.clone()])
                            .unwrap(),
                        other => return other,
                    }
                }
                while let Some(Transmit { to, payload: m }) = par.poll_transmit() {
                    pt.send(to, m).await.unwrap();
                }
                let deadline = par.poll_timeout().map(tokio::time::Instant::from_std);
                tokio::select! {
                    Some((from, m)) = pt.recv() => par.handle_message(Instant::now(), from, m),
                    _ = async { tokio::time::sleep_until(deadline.unwrap()).await }, if deadline.is_some() => {
                        par.handle_timeout(Instant::now())
                    }
                }
            }
        })
    };
    // The MN's CTAR arrives at nAR (over ICMP in reality; injected here).
    let mut ctar = CtarRepr {
        ack: false,
        mn_addr: mn,
        ar_addr: par_ip,
        seq: 1,
        token: Token::ZERO,
        requests: vec![],
    };
    ctar.sign(&key);
    nar.handle_message(
        Instant::now(),
        "198.51.100.7".parse().unwrap(),
        crate::wire::MessageRepr::Ctar(ctar).to_bytes().unwrap(),
    );
    let installed = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            while let Some(Transmit { to, payload: m }) = nar.poll_transmit() {
                nt.send(to, m).await.unwrap();
            }
            if let Some(e) = nar.poll_event() {
                return e;
            }
            let deadline = nar.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                Some((from, m)) = nt.recv() => nar.handle_message(Instant::now(), from, m),
                _ = async { tokio::time::sleep_until(deadline.unwrap()).await }, if deadline.is_some() => {
                    nar.handle_timeout(Instant::now())
                }
            }
        }
    })
    .await
    .unwrap();
    match installed {
        NarEvent::ContextsReceived {
            mn: m,
            par,
            contexts,
            entries,
        } => {
            assert_eq!((m, par), (mn, par_ip));
            assert_eq!(contexts, vec![big]);
            // 0x7000 is not registered at nAR: reported, still delivered.
            assert_eq!(entries.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    // Flush the final CTDRs to pAR.
    for _ in 0..100 {
        while let Some(Transmit { to, payload: m }) = nar.poll_transmit() {
            nt.send(to, m).await.unwrap();
        }
        if par_task.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = tokio::time::timeout(Duration::from_secs(5), par_task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(done, ParEvent::TransferComplete { success: false, .. }),
        "{done:?}"
    );
    let _ = nar_ip;
}

#[tokio::test]
async fn outgoing_connections_come_from_the_listen_address_and_sender_handles_work() {
    let (mut a, mut b) = pair().await;
    route(&mut b, &a);
    // b (127.0.0.2) connects first: a must see 127.0.0.2, not 127.0.0.1.
    let sb = b.sender();
    let sb2 = sb.clone();
    sb.send(a.local_addr().ip(), ctc(1)).await.unwrap();
    let (from, m) = a.recv().await.unwrap();
    assert_eq!(from, b.local_addr().ip());
    assert_eq!(m, ctc(1));
    // a answers on the same connection; b's handle sends from another task.
    a.send(from, ctc(2)).await.unwrap();
    assert_eq!(b.recv().await.unwrap(), (a.local_addr().ip(), ctc(2)));
    tokio::spawn(async move { sb2.send("127.0.0.1".parse().unwrap(), ctc(3)).await })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.recv().await.unwrap().1, ctc(3));
    assert_eq!((a.connects(), b.connects()), (0, 1));
}

/// A connection to `to` from the local address `src`.
async fn try_connect_from(src: [u8; 4], to: SocketAddr) -> io::Result<TcpStream> {
    let s = tokio::net::TcpSocket::new_v4()?;
    s.bind(SocketAddr::from((src, 0)))?;
    s.connect(to).await
}

async fn connect_from(src: [u8; 4], to: SocketAddr) -> TcpStream {
    try_connect_from(src, to).await.unwrap()
}

/// Whether a connection from `src` is closed by the other side at once:
/// reset before `connect` returned, or closed without an octet sent.
async fn refused_from(src: [u8; 4], to: SocketAddr) -> bool {
    match try_connect_from(src, to).await {
        Err(e) => e.kind() == io::ErrorKind::ConnectionReset,
        Ok(mut s) => {
            // The CTD may reach our socket before or after the refusal.
            let _ = s.write_all(&ctd()).await;
            closed_by_server(&mut s).await
        }
    }
}

/// Whether the other side closed `s` (end of stream or reset) without
/// sending anything.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn ctd() -> Bytes {
    MessageRepr::Ctd(crate::wire::CtdRepr {
        ack: true,
        elapsed_ms: 0,
        mn_addr: "192.0.2.1".parse().unwrap(),
        key_block: None,
        blocks: vec![],
    })
    .to_bytes()
    .unwrap()
}

#[tokio::test]
async fn an_unknown_peer_is_refused_before_its_bytes_are_read() {
    // 127.0.0.1 is a peer; 127.0.0.2 is not.
    let mut t = TcpTransport::bind(config(A, &[A])).await.unwrap();
    let at = t.local_addr();
    assert!(refused_from(B, at).await);
    eventually("refusal counted", || t.stats().refused_unknown_peer == 1).await;
    // A peer's message arrives, and nothing of the stranger's ever did.
    let mut friend = connect_from(A, at).await;
    friend.write_all(&ctc(1)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), t.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, (IpAddr::from(A), ctc(1)));
    assert!(t.rx.try_recv().is_err(), "nothing else was delivered");
    let s = t.stats();
    assert_eq!(
        (s.accepted, s.refused_unknown_peer, s.open_incoming),
        (1, 1, 1)
    );
    // The open behaviour has to be asked for.
    assert!(!TransportConfig::default()
        .accept_from
        .allows(IpAddr::from(A)));
    assert!(PeerFilter::any().allows(IpAddr::from(B)));
    // A dual-stack listener sees IPv4 peers as mapped addresses.
    let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
    assert!(PeerFilter::only([IpAddr::from(A)]).allows(mapped));
    assert!(PeerFilter::only([mapped]).allows(IpAddr::from(A)));
}

#[tokio::test]
async fn connections_over_the_caps_are_refused() {
    const C: [u8; 4] = [127, 0, 0, 3];
    let mut t = TcpTransport::bind(TransportConfig {
        max_connections: 3,
        max_connections_per_peer: 2,
        ..config(A, &[A, B, C])
    })
    .await
    .unwrap();
    let at = t.local_addr();
    let mut keep = vec![];
    for (i, src) in [A, A].into_iter().enumerate() {
        keep.push(connect_from(src, at).await);
        eventually("accepted", || t.stats().open_incoming == i as u64 + 1).await;
    }
    // A third one from 127.0.0.1 is over its per-address cap of two.
    assert!(refused_from(A, at).await);
    eventually("counted", || t.stats().refused_peer_limit == 1).await;
    // 127.0.0.2 fits the total of three; then 127.0.0.3 does not.
    keep.push(connect_from(B, at).await);
    eventually("accepted", || t.stats().open_incoming == 3).await;
    assert!(refused_from(C, at).await);
    eventually("counted", || t.stats().refused_limit == 1).await;
    // The accepted ones carry messages.
    for (i, s) in keep.iter_mut().enumerate() {
        s.write_all(&ctc(i as u8)).await.unwrap();
    }
    let mut got = vec![];
    for _ in 0..3 {
        let (_, m) = tokio::time::timeout(Duration::from_secs(5), t.recv())
            .await
            .unwrap()
            .unwrap();
        got.push(m[m.len() - 1]);
    }
    got.sort();
    assert_eq!(got, vec![0, 1, 2]);
    // A closed one makes room again.
    drop(keep.pop());
    eventually("closed", || t.stats().open_incoming == 2).await;
    let mut again = connect_from(C, at).await;
    again.write_all(&ctc(9)).await.unwrap();
    let (from, m) = tokio::time::timeout(Duration::from_secs(5), t.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((from, m), (IpAddr::from(C), ctc(9)));
    let s = t.stats();
    assert_eq!(
        (s.accepted, s.refused_limit, s.refused_peer_limit),
        (4, 1, 1)
    );
}

#[tokio::test]
async fn idle_connections_are_closed_and_busy_ones_are_not() {
    let mut t = TcpTransport::bind(TransportConfig {
        idle_timeout: Some(Duration::from_millis(500)),
        ..config(A, &[A])
    })
    .await
    .unwrap();
    let at = t.local_addr();
    let mut silent = connect_from(A, at).await;
    // Half a header, then nothing: idle as well.
    let mut stalled = connect_from(A, at).await;
    stalled.write_all(&ctc(1)[..3]).await.unwrap();
    let mut busy = connect_from(A, at).await;
    eventually("accepted", || t.stats().open_incoming == 3).await;
    // Busy sends a message every 50 ms for three idle timeouts.
    let closed = tokio::spawn(async move {
        assert!(closed_by_server(&mut silent).await, "silent one closed");
        assert!(closed_by_server(&mut stalled).await, "stalled one closed");
    });
    for i in 0..30u8 {
        busy.write_all(&ctc(i)).await.unwrap();
        let (_, m) = tokio::time::timeout(Duration::from_secs(5), t.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m, ctc(i));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    closed.await.unwrap();
    eventually("idle ones gone", || t.stats().open_incoming == 1).await;
    let s = t.stats();
    assert_eq!((s.closed_idle, s.open_incoming), (2, 1));
    // Then busy goes quiet too.
    eventually("busy one idle", || t.stats().closed_idle == 3).await;
    assert!(closed_by_server(&mut busy).await);
    eventually("none open", || t.stats().open_incoming == 0).await;
}

#[tokio::test]
async fn after_an_idle_close_the_next_send_connects_again() {
    let idle = Some(Duration::from_millis(300));
    let mut a = TcpTransport::bind(TransportConfig {
        idle_timeout: idle,
        ..config(A, &[B])
    })
    .await
    .unwrap();
    let mut b = TcpTransport::bind(TransportConfig {
        idle_timeout: idle,
        ..config(B, &[A])
    })
    .await
    .unwrap();
    route(&mut a, &b);
    let b_ip = b.local_addr().ip();
    a.send(b_ip, ctc(1)).await.unwrap();
    assert_eq!(b.recv().await.unwrap().1, ctc(1));
    eventually("idle connection closed at both ends", || {
        let (sa, sb) = (a.stats(), b.stats());
        sa.closed_idle + sb.closed_idle >= 1 && sa.open_outgoing == 0 && sb.open_incoming == 0
    })
    .await;
    // Nothing of it is left; the next message goes over a new connection.
    assert!(a.inner.lock().peers.is_empty() && b.inner.lock().peers.is_empty());
    a.send(b_ip, ctc(2)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), b.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, (a.local_addr().ip(), ctc(2)));
    assert_eq!(a.connects(), 2);
    // And the answer goes back over it.
    b.send(a.local_addr().ip(), ctc(3)).await.unwrap();
    assert_eq!(a.recv().await.unwrap(), (b_ip, ctc(3)));
    assert_eq!(b.connects(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connect_close_cycles_leave_nothing_open() {
    let t = TcpTransport::bind(config(A, &[A])).await.unwrap();
    let at = t.local_addr();
    for i in 0..1000u32 {
        // Half from the peer, half from a stranger; some leave half a header.
        let Ok(mut s) = try_connect_from(if i % 2 == 0 { A } else { B }, at).await else {
            continue; // reset before connect returned: refused
        };
        if i % 4 == 0 {
            let _ = s.write_all(&ctc(1)[..2]).await;
        }
        drop(s);
    }
    eventually("every connection closed", || {
        let s = t.stats();
        s.open_incoming == 0
            && s.accepted + s.refused_unknown_peer + s.refused_peer_limit + s.refused_limit == 1000
    })
    .await;
    let s = t.stats();
    assert_eq!(s.refused_unknown_peer, 500);
    assert_eq!(s.open_outgoing, 0);
    // No per-connection or per-address state is left behind.
    let c = t.inner.lock();
    assert!(c.open.is_empty(), "{} entries", c.open.len());
    assert!(c.per_ip.is_empty() && c.peers.is_empty());
    assert_eq!((c.incoming, c.outgoing), (0, 0));
}

/// A listener that fails as scripted, recording when it is asked.
struct Scripted {
    script: Mutex<std::collections::VecDeque<Result<u32, io::ErrorKind>>>,
    asked: Mutex<Vec<tokio::time::Instant>>,
}

impl accept::Listener for Scripted {
    type Stream = u32;
    type Addr = ();
    fn accept(&self) -> impl std::future::Future<Output = io::Result<(u32, ())>> + Send {
        self.asked.lock().unwrap().push(tokio::time::Instant::now());
        let next = self.script.lock().unwrap().pop_front();
        async move {
            match next {
                Some(Ok(n)) => Ok((n, ())),
                Some(Err(kind)) => Err(io::Error::from(kind)),
                None => std::future::pending().await,
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn accept_errors_back_off_doubling_and_reset_on_success() {
    use io::ErrorKind::{ConnectionAborted, Other};
    let mut script: std::collections::VecDeque<_> = std::iter::repeat_n(Err(Other), 9).collect();
    script.push_back(Ok(1));
    script.extend([Err(ConnectionAborted), Err(Other), Ok(2)]);
    let l = Scripted {
        script: Mutex::new(script),
        asked: Mutex::new(vec![]),
    };
    let errors = Arc::new(AtomicU64::new(0));
    let mut acc = accept::Acceptor::new("test", errors.clone());
    assert_eq!(acc.accept(&l).await.0, 1);
    assert_eq!(acc.accept(&l).await.0, 2);
    assert_eq!(errors.load(Ordering::Relaxed), 11);
    assert_eq!(acc.errors(), 11);
    let asked = l.asked.lock().unwrap();
    let gaps: Vec<u128> = asked
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    // 10 ms doubling to 1 s; the success resets it to 10 ms.
    assert_eq!(
        gaps,
        vec![10, 20, 40, 80, 160, 320, 640, 1000, 1000, 0, 10, 20]
    );
}

#[test]
fn log_limit_lets_one_line_through_per_interval() {
    let mut l = accept::LogLimit::new(Duration::from_secs(10));
    let t0 = tokio::time::Instant::now();
    assert_eq!(l.check(t0), Some(0));
    assert_eq!(l.check(t0 + Duration::from_secs(1)), None);
    assert_eq!(l.check(t0 + Duration::from_secs(9)), None);
    assert_eq!(l.check(t0 + Duration::from_secs(10)), Some(2));
    assert_eq!(l.check(t0 + Duration::from_secs(11)), None);
}

/// Run in a child process by `accepting_resumes_after_emfile`, with
/// RLIMIT_NOFILE lowered: takes every free descriptor while a connection
/// waits to be accepted, checks that accept fails and is retried, frees
/// them and checks that the connection is then accepted and read.
#[test]
#[ignore = "run by accepting_resumes_after_emfile in a child process"]
fn emfile_child() {
    if std::env::var_os("CXTP_EMFILE_CHILD").is_none() {
        return;
    }
    // One thread: nothing runs between the steps below unless awaited.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut t = TcpTransport::bind(config(A, &[A])).await.unwrap();
        // Connected (the kernel completed it) but not accepted yet.
        let mut c = std::net::TcpStream::connect(t.local_addr()).unwrap();
        std::io::Write::write_all(&mut c, &ctc(1)).unwrap();
        let mut fill = Vec::new();
        let err = loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => fill.push(f),
                Err(e) => break e,
            }
            assert!(fill.len() < 100_000, "RLIMIT_NOFILE was not lowered");
        };
        assert_eq!(err.raw_os_error(), Some(24), "EMFILE: {err}");
        tokio::time::timeout(Duration::from_secs(20), async {
            while t.stats().accept_errors < 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("accept fails while no descriptor is free");
        assert_eq!(t.stats().accepted, 0);
        drop(fill);
        let got = tokio::time::timeout(Duration::from_secs(20), t.recv())
            .await
            .expect("accepted again once descriptors are free")
            .unwrap();
        assert_eq!(got, (IpAddr::from(A), ctc(1)));
        let s = t.stats();
        assert_eq!(s.accepted, 1);
        println!("EMFILE-OK accept_errors={}", s.accept_errors);
    });
}

#[test]
fn accepting_resumes_after_emfile() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" \"$@\"")
        .arg(&exe)
        .args([
            "transport::tests::emfile_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CXTP_EMFILE_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("EMFILE-OK"),
        "child failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}
