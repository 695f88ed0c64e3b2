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
    let mut codec = CxtpCodec;
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
    assert!(codec
        .encode(Bytes::from(wrong), &mut BytesMut::new())
        .is_err());
}

async fn pair() -> (TcpTransport, TcpTransport) {
    let a = TcpTransport::bind(TransportConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
    let b = TcpTransport::bind(TransportConfig {
        listen: "127.0.0.2:0".parse().unwrap(),
        ..Default::default()
    })
    .await
    .unwrap();
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
            ..Default::default()
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
    drop(a);
}

/// pAR and nAR engines driven by real time over two loopback transports:
/// a mobile-controlled reactive transfer of a 1 MiB context.
#[tokio::test]
async fn engines_transfer_a_large_context_over_tcp() {
    use crate::engine::{Config, NarEvent, NewRouter, ParEvent, PreviousRouter};
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
                while let Some((to, m)) = par.poll_transmit() {
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
            while let Some((to, m)) = nar.poll_transmit() {
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
        while let Some((to, m)) = nar.poll_transmit() {
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
