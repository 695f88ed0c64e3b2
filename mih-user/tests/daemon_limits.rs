//! The mih-user daemon's listeners under abuse: idle connections to the
//! control socket and to `/metrics` do not lock the operator out, and the
//! CXTP port refuses addresses that are not configured peers before
//! reading them. An in-process daemon without mihfd (nothing here needs
//! it).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use mih_user::daemon::config::{Config, SessionMode};
use mih_user::daemon::{control, Backends, MihUser};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// The request timeout of the control socket and the metrics endpoint.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

fn run<F: Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(60), f)
                .await
                .expect("test deadline")
        });
}

fn config(dir: &Path) -> Config {
    Config::parse(&format!(
        r#"
[mihf]
sap = "127.0.0.1:9"

[api]
socket = "{api}"

[cxtp]
listen = "127.0.0.1:0"

[[peers]]
mihf_id = "enbc-b"
cxtp = "127.0.0.2:5091"

[control]
socket = "{ctl}"
request_timeout_ms = {t}

[metrics]
listen = "127.0.0.1:0"
request_timeout_ms = {t}
"#,
        api = dir.join("api.sock").display(),
        ctl = dir.join("ctl.sock").display(),
        t = REQUEST_TIMEOUT.as_millis(),
    ))
    .unwrap()
}

async fn start(dir: &Path) -> MihUser {
    MihUser::start(&config(dir), Backends::from_mode(SessionMode::None))
        .await
        .unwrap()
}

/// The value of one sample line of the daemon's metrics.
fn metric(d: &MihUser, sample: &str) -> Option<u64> {
    d.handle().metrics_text().lines().find_map(|l| {
        l.strip_prefix(sample)
            .and_then(|v| v.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    })
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

/// Whether the daemon closed `s` (end of stream or reset) within twice the
/// request timeout, sending nothing.
async fn closed<S: AsyncReadExt + Unpin>(s: &mut S) -> bool {
    let mut b = [0u8; 64];
    matches!(
        tokio::time::timeout(2 * REQUEST_TIMEOUT, s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[test]
fn idle_control_connections_do_not_lock_the_operator_out() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let d = start(dir.path()).await;
        let path = d.addrs.control.clone().unwrap();
        let local = |k: &str, reason: &str| {
            format!("mih_user_local_connections_{k}_total{{listener=\"control\"{reason}}}")
        };
        // 32 connections that never finish a request (twice the cap of
        // 16); some start one.
        let mut idle = vec![];
        for i in 0..32 {
            let mut s = UnixStream::connect(&path).await.unwrap();
            if i % 4 == 0 {
                s.write_all(b"{\"op\":").await.unwrap();
            }
            idle.push(s);
        }
        eventually("all admitted", || {
            metric(&d, &local("accepted", "")) == Some(32)
        })
        .await;
        // The operator's request is answered at once.
        let answer = control::request(&path, &json!({"op": "status"}), REQUEST_TIMEOUT)
            .await
            .expect("answered within the request timeout");
        assert_eq!(answer["ok"], true, "{answer}");
        // Every idle connection is closed: the oldest 17 to make room, the
        // other 15 by the request timeout.
        for (i, s) in idle.iter_mut().enumerate() {
            assert!(closed(s).await, "idle connection {i} still open");
        }
        eventually("all counted", || {
            metric(&d, "mih_user_local_connections_open{listener=\"control\"}") == Some(0)
        })
        .await;
        let closed_by = |r: &str| metric(&d, &local("closed", &format!(",reason=\"{r}\"")));
        assert_eq!(closed_by("evicted_idle"), Some(17));
        assert_eq!(closed_by("timeout"), Some(15));
        assert_eq!(metric(&d, &local("refused", ",reason=\"busy\"")), Some(0));
        assert_eq!(
            metric(&d, "mih_user_accept_errors_total{listener=\"control\"}"),
            Some(0)
        );
        // And it still serves.
        let answer = control::request(&path, &json!({"op": "status"}), REQUEST_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(answer["ok"], true);
        d.shutdown().await;
    });
}

async fn http_get(at: SocketAddr, path: &str) -> String {
    let work = async {
        let mut s = TcpStream::connect(at).await.unwrap();
        s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    };
    tokio::time::timeout(REQUEST_TIMEOUT, work)
        .await
        .expect("answered within the request timeout")
}

#[test]
fn idle_metrics_connections_do_not_lock_the_scraper_out() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let d = start(dir.path()).await;
        let at = d.addrs.metrics.unwrap();
        let mut idle = vec![];
        for i in 0..32 {
            let mut s = TcpStream::connect(at).await.unwrap();
            if i % 4 == 0 {
                s.write_all(b"GET /metr").await.unwrap();
            }
            idle.push(s);
        }
        eventually("all admitted", || {
            metric(
                &d,
                "mih_user_local_connections_accepted_total{listener=\"metrics\"}",
            ) == Some(32)
        })
        .await;
        let page = http_get(at, "/metrics").await;
        assert!(page.starts_with("HTTP/1.0 200 OK\r\n"), "{page}");
        // The page counts the room it made for itself.
        assert!(
            page.contains(
                "mih_user_local_connections_closed_total{listener=\"metrics\",reason=\"evicted_idle\"} 17\n"
            ),
            "{page}"
        );
        for (i, s) in idle.iter_mut().enumerate() {
            assert!(closed(s).await, "idle connection {i} still open");
        }
        eventually("all closed", || {
            metric(&d, "mih_user_local_connections_open{listener=\"metrics\"}") == Some(0)
        })
        .await;
        assert_eq!(
            metric(
                &d,
                "mih_user_local_connections_closed_total{listener=\"metrics\",reason=\"timeout\"}"
            ),
            Some(15)
        );
        let status = http_get(at, "/status").await;
        assert!(status.contains("\"ok\":true"), "{status}");
        d.shutdown().await;
    });
}

async fn connect_from(src: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = tokio::net::TcpSocket::new_v4()?;
    s.bind(SocketAddr::from((src, 0)))?;
    s.connect(to).await
}

#[test]
fn cxtp_accepts_only_configured_peers() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let d = start(dir.path()).await;
        let at = d.addrs.cxtp;
        let ctd = cxtp::wire::MessageRepr::Ctd(cxtp::wire::CtdRepr {
            ack: true,
            elapsed_ms: 0,
            mn_addr: IpAddr::from([10, 45, 0, 7]),
            key_block: None,
            blocks: vec![],
        })
        .to_bytes()
        .unwrap();
        // Not CXTP: whoever reads it closes the connection and counts it.
        let garbage = [0xffu8; 8];
        // 127.0.0.3 is not a peer: closed, nothing of it read.
        if let Ok(mut stranger) = connect_from([127, 0, 0, 3], at).await {
            let _ = stranger.write_all(&ctd).await;
            let _ = stranger.write_all(&garbage).await;
            assert!(closed(&mut stranger).await);
        }
        eventually("refusal counted", || {
            metric(
                &d,
                "mih_user_cxtp_connections_refused_total{reason=\"unknown_peer\"}",
            ) == Some(1)
        })
        .await;
        // Neither the orchestrator (it would have dropped a CTD from an
        // address that is not a peer, and counted it) nor the framing saw
        // any of it.
        for k in [
            "mih_user_cxtp_messages_total{direction=\"in\"}",
            "mih_user_cxtp_messages_total{direction=\"dropped\"}",
            "mih_user_cxtp_connections_closed_total{reason=\"invalid\"}",
            "mih_user_cxtp_connections_accepted_total",
        ] {
            assert_eq!(metric(&d, k), Some(0), "{k}");
        }
        // 127.0.0.2 is the configured peer enbc-b: accepted and read (its
        // garbage closes the connection).
        let mut peer = connect_from([127, 0, 0, 2], at).await.unwrap();
        eventually("accepted", || {
            metric(&d, "mih_user_cxtp_connections_open{direction=\"in\"}") == Some(1)
        })
        .await;
        peer.write_all(&garbage).await.unwrap();
        assert!(closed(&mut peer).await);
        eventually("read and closed", || {
            metric(
                &d,
                "mih_user_cxtp_connections_closed_total{reason=\"invalid\"}",
            ) == Some(1)
                && metric(&d, "mih_user_cxtp_connections_open{direction=\"in\"}") == Some(0)
        })
        .await;
        assert_eq!(
            metric(&d, "mih_user_cxtp_connections_accepted_total"),
            Some(1)
        );
        d.shutdown().await;
    });
}
