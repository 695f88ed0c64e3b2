//! The HTTP endpoint on a bounded listener: answers, 404, 400, the
//! request timeout (counted), the cap (the oldest idle connection closed
//! to make room, counted).

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use daemon_kit::http::{self, text};
use daemon_kit::listener::{LocalLimits, LocalStats};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn endpoint(max: usize, timeout: Duration) -> (std::net::SocketAddr, Arc<LocalStats>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = l.local_addr().unwrap();
    let stats = Arc::new(LocalStats::default());
    let router = Router::new().route(
        "/hello",
        get(|| async { text(StatusCode::OK, "text/plain", "hi\n".into()) }),
    );
    let limits = LocalLimits {
        max_connections: max,
        request_timeout: timeout,
    };
    tokio::spawn(http::serve("test", l, limits, stats.clone(), router));
    (at, stats)
}

async fn read_all(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn answers_404_and_400() {
    let (at, stats) = endpoint(4, Duration::from_secs(5)).await;
    let a = http::get(at, "/hello").await.unwrap();
    assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "hi\n"));
    assert_eq!(
        http::get(at, "/x").await.unwrap().status,
        StatusCode::NOT_FOUND
    );
    assert!(http::get_ok(at, "/x").await.is_err());
    let mut s = TcpStream::connect(at).await.unwrap();
    s.write_all(b"GET\x00/ HTTP/1.1\r\n\r\n").await.unwrap();
    assert!(read_all(&mut s).await.starts_with("HTTP/1.1 400 "));
    // A head over MAX_HEAD octets is refused too.
    let mut s = TcpStream::connect(at).await.unwrap();
    let long = format!(
        "GET /hello HTTP/1.1\r\nX: {}\r\n\r\n",
        "a".repeat(http::MAX_HEAD)
    );
    let _ = s.write_all(long.as_bytes()).await;
    let answer = read_all(&mut s).await;
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(stats.counters().timeouts, 0);
}

#[tokio::test]
async fn slow_requests_time_out_and_idle_ones_make_room() {
    let (at, stats) = endpoint(2, Duration::from_millis(300)).await;
    let mut slow = TcpStream::connect(at).await.unwrap();
    slow.write_all(b"GET /hel").await.unwrap();
    let mut idle = TcpStream::connect(at).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // At the cap: the oldest idle connection (the slow one) is closed.
    let a = http::get(at, "/hello").await.unwrap();
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(read_all(&mut slow).await, "");
    // The other one is closed at its request timeout.
    assert_eq!(read_all(&mut idle).await, "");
    let c = stats.counters();
    assert_eq!((c.evicted_idle, c.timeouts), (1, 1), "{c:?}");
}
