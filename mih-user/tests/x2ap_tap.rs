//! The tokio taps on loopback: UDP datagrams, length-prefixed TCP, pcap replay.
#![cfg(feature = "daemon")]

use std::path::PathBuf;
use std::time::Duration;

use mih_user::tap::{Pace, Tap};
use mih_user::x2ap::framing;
use mih_user::x2ap::{X2Event, X2Trigger, X2TriggerConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::timeout;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conformance/vectors/x2ap")
}

fn pdu(name: &str) -> Vec<u8> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join(format!("{name}.json"))).unwrap())
            .unwrap();
    hex::decode(v["hex"].as_str().unwrap()).unwrap()
}

fn new_tap() -> (Tap, mpsc::Receiver<X2Event>) {
    let config: X2TriggerConfig = toml::from_str(
        r#"
        [[neighbours]]
        plmn = "001-01"
        enb_id = 0x1a2b3
        mihf_id = "enbc-b"
        [[ues]]
        ue_address = "10.45.0.7"
        old_enb_ue_x2ap_id = 17
    "#,
    )
    .unwrap();
    Tap::new(X2Trigger::new(config).unwrap(), 64)
}

async fn next(rx: &mut mpsc::Receiver<X2Event>) -> X2Event {
    timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("event within 10 s")
        .expect("channel open")
}

#[tokio::test]
async fn udp_tap() {
    let (tap, mut rx) = new_tap();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let t = tap.clone();
    let task = tokio::spawn(async move { t.run_udp(sock).await });
    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for name in ["handover_request", "handover_request_acknowledge"] {
        client.send_to(&pdu(name), addr).await.unwrap();
        // One at a time: UDP on loopback keeps order, but be explicit.
        let e = next(&mut rx).await;
        match (name, &e) {
            ("handover_request", X2Event::HandoverPrepared(_)) => {}
            ("handover_request_acknowledge", X2Event::HandoverTriggered(h)) => {
                assert_eq!(h.ue_address.to_string(), "10.45.0.7");
                assert_eq!(h.target_mihf_id, "enbc-b");
            }
            other => panic!("{other:?}"),
        }
    }
    client.send_to(&[0xde, 0xad], addr).await.unwrap();
    assert!(matches!(next(&mut rx).await, X2Event::Malformed(_)));
    assert_eq!(tap.trigger().counters().pdus, 3);
    task.abort();
}

#[tokio::test]
async fn tcp_tap_with_split_records_and_a_broken_stream() {
    let (tap, mut rx) = new_tap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let t = tap.clone();
    let task = tokio::spawn(async move { t.run_tcp(listener).await });

    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut bytes = framing::encode(&pdu("handover_request"));
    bytes.extend(framing::encode(&pdu("handover_request_acknowledge")));
    bytes.extend(framing::encode(&pdu("ue_context_release")));
    // Written in odd pieces.
    for piece in bytes.chunks(7) {
        stream.write_all(piece).await.unwrap();
    }
    stream.flush().await.unwrap();
    assert!(matches!(next(&mut rx).await, X2Event::HandoverPrepared(_)));
    assert!(matches!(next(&mut rx).await, X2Event::HandoverTriggered(_)));
    assert!(matches!(next(&mut rx).await, X2Event::Released(r) if r.triggered));

    // A zero length prefix closes this connection; a new one still works.
    stream.write_all(&[0, 0, 0, 0]).await.unwrap();
    let mut buf = [0u8; 1];
    let n = timeout(Duration::from_secs(10), async {
        use tokio::io::AsyncReadExt;
        stream.read(&mut buf).await
    })
    .await
    .unwrap()
    .unwrap_or(0);
    assert_eq!(n, 0, "server closed the broken stream");

    let mut again = TcpStream::connect(addr).await.unwrap();
    again
        .write_all(&framing::encode(&pdu("x2_setup_request")))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut rx).await,
        X2Event::Ignored {
            procedure_code: 6,
            ..
        }
    ));
    task.abort();
}

#[tokio::test]
async fn timeouts_task_forgets_pending_ues() {
    let config = X2TriggerConfig {
        preparation_timeout_ms: 50,
        ..X2TriggerConfig::default()
    };
    let (tap, mut rx) = Tap::new(X2Trigger::new(config).unwrap(), 8);
    let t = tap.clone();
    let task = tokio::spawn(async move { t.run_timeouts().await });
    let now = tokio::time::Instant::now().into_std();
    let ev = {
        // One guard: the timeout task must not take these events.
        let mut t = tap.trigger();
        t.handle_pdu(now, &pdu("handover_request"));
        let mut ev = Vec::new();
        while let Some(e) = t.poll_event() {
            ev.push(e);
        }
        ev
    };
    assert_eq!(ev.len(), 1);
    match next(&mut rx).await {
        X2Event::Forget {
            old_enb_ue_x2ap_id: 17,
            reason: mih_user::x2ap::ForgetReason::Timeout(_),
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    task.abort();
}

#[tokio::test]
async fn pcap_replay() {
    let (tap, mut rx) = new_tap();
    let file = std::fs::read(dir().join("x2ap_sctp.pcap")).unwrap();
    let t = tap.clone();
    let replay =
        tokio::spawn(async move { t.replay_pcap(&file, Pace::RealTime { speed: 10.0 }).await });
    let mut n = 0;
    let mut triggered = 0;
    while n < 9 {
        let e = next(&mut rx).await;
        triggered += usize::from(matches!(e, X2Event::HandoverTriggered(_)));
        n += 1;
    }
    let stats = replay.await.unwrap().unwrap();
    assert_eq!(stats.x2ap_messages, 9);
    assert_eq!(triggered, 1);
    assert_eq!(tap.trigger().counters().pdus, 9);
}
