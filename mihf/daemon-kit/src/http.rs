//! The HTTP endpoints of both daemons (`/metrics`, `/peers`, `/status`):
//! an [`axum::Router`] served by hyper 1 over HTTP/1, one connection at a
//! time from the bounded accept loop of [`crate::listener`] (its cap, idle
//! eviction, request timeout and accept backoff apply as they do to the
//! control socket), and a small client ([`get`]) for operator tools and
//! tests.
//!
//! Each connection carries one request (keep-alive off: the answer ends
//! with `Connection: close`, HTTP/1.0 requests get HTTP/1.0 answers). The
//! request head must arrive within the listener's request timeout and be at
//! most [`MAX_HEAD`] octets; a malformed head is answered `400 Bad Request`
//! by hyper. The connection is *idle* (may be closed to make room) until
//! its head is complete.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse as _, Response};
use axum::Router;
use cxtp::transport::accept::Listener;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;

use crate::listener::{self, Conn, LocalLimits, LocalStats};

pub use axum;

/// Longest request head read (hyper's smallest read buffer).
pub const MAX_HEAD: usize = 8192;

/// Accept on `l` for ever and answer each connection's request with
/// `router` (see [`crate::listener`] for the bounds).
pub async fn serve<L>(
    what: &'static str,
    l: L,
    limits: LocalLimits,
    stats: Arc<LocalStats>,
    router: Router,
) where
    L: Listener,
    L::Stream: AsyncRead + AsyncWrite + Unpin + 'static,
{
    listener::serve(what, l, limits, stats, move |s, conn| {
        serve_connection(s, router.clone(), conn)
    })
    .await
}

/// Serve one connection: wait (idle) for its request head within the
/// request timeout, then answer it, to be taken within as long again.
pub fn serve_connection<S>(
    stream: S,
    router: Router,
    conn: Conn,
) -> impl Future<Output = ()> + Send + 'static
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (tx, rx) = oneshot::channel::<()>();
    let tx = Mutex::new(Some(tx));
    let router = TowerToHyperService::new(router);
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        // The head is complete: the connection is busy from now on.
        if let Some(tx) = tx.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(());
        }
        router.call(req)
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        // A backstop: the listener's own request timeout comes first (and
        // is counted).
        .header_read_timeout(conn.request_timeout() * 2)
        .keep_alive(false)
        .max_buf_size(MAX_HEAD);
    let served = http.serve_connection(TokioIo::new(stream), svc);
    async move {
        tokio::pin!(served);
        let head = conn
            .request(async {
                tokio::select! {
                    r = rx => r.is_ok(),
                    // Ended before a request was handled (closed, malformed).
                    _ = &mut served => false,
                }
            })
            .await;
        if head == Some(true) {
            let _ = conn.answer(&mut served).await;
        }
    }
}

/// A plain-text answer.
pub fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// An answer of [`get`].
#[derive(Debug, Clone)]
pub struct Answer {
    /// Its status.
    pub status: StatusCode,
    /// Its `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Its body (lossy UTF-8).
    pub body: String,
}

/// `GET path` from the HTTP endpoint at `addr` (HTTP/1.1, one request).
pub async fn get(addr: SocketAddr, path: &str) -> io::Result<Answer> {
    let s = tokio::net::TcpStream::connect(addr).await?;
    let (mut send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .map_err(io::Error::other)?;
    let driver = tokio::spawn(connection);
    let req = Request::get(path)
        .header(header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(io::Error::other)?;
    let work = async {
        let resp = send.send_request(req).await.map_err(io::Error::other)?;
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
        Ok(Answer {
            status: parts.status,
            content_type: parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    let r = work.await;
    driver.abort();
    r
}

/// The body of `GET path` when it is `200 OK`, an error naming the status
/// otherwise (mihctl and tests).
pub async fn get_ok(addr: SocketAddr, path: &str) -> io::Result<String> {
    let a = get(addr, path).await?;
    if a.status == StatusCode::OK {
        Ok(a.body)
    } else {
        Err(io::Error::other(format!("{path}: {}", a.status)))
    }
}
