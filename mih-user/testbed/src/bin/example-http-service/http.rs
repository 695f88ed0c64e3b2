//! HTTP/1.1 serving: read a request head, answer `GET /file/<name>` (with
//! `Range`, or resuming an imported offset), then let the service write
//! the body ([`crate::service::Service::run_download`]). Every response closes the
//! connection.

use std::net::SocketAddr;
use std::time::Duration;

use mih_user::api::wire::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::service::Shared;

/// A file name the service serves: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub(crate) fn valid_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

const MAX_HEAD: usize = 8192;

struct Request {
    method: String,
    path: String,
    range: Option<String>,
}

/// The request head at the start of `buf` (httparse, as hyper uses):
/// `Ok(None)` while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Request>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Request::new(&mut headers);
    if r.parse(buf)?.is_partial() {
        return Ok(None);
    }
    let range = r
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("range"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .map(|v| v.trim().to_string());
    Ok(Some(Request {
        method: r.method.unwrap_or_default().to_string(),
        path: r.path.unwrap_or_default().to_string(),
        range,
    }))
}

/// `bytes=N-` or `bytes=N-M` → [start, end) within `size`; Err(()) when
/// not satisfiable or not understood.
fn parse_range(v: &str, size: u64) -> Result<(u64, u64), ()> {
    let spec = v.strip_prefix("bytes=").ok_or(())?;
    let (a, b) = spec.split_once('-').ok_or(())?;
    let start: u64 = a.trim().parse().map_err(|_| ())?;
    let end = if b.trim().is_empty() {
        size
    } else {
        b.trim()
            .parse::<u64>()
            .map_err(|_| ())?
            .saturating_add(1)
            .min(size)
    };
    if start >= size || start >= end {
        return Err(());
    }
    Ok((start, end))
}

async fn respond_error(stream: &mut TcpStream, status: &str, extra: &str) {
    let body = format!("{status}\n");
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.shutdown().await;
}

pub(crate) async fn handle_http(svc: Shared, mut stream: TcpStream, peer: SocketAddr) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let mut head = Vec::with_capacity(1024);
    let read = async {
        let mut b = [0u8; 1024];
        loop {
            match parse_head(&head) {
                Ok(Some(req)) => return Some(req),
                Ok(None) if head.len() < MAX_HEAD => {}
                _ => return None,
            }
            match stream.read(&mut b).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => head.extend_from_slice(&b[..n.min(MAX_HEAD - head.len())]),
            }
        }
    };
    let Ok(Some(req)) = tokio::time::timeout(Duration::from_secs(10), read).await else {
        return respond_error(&mut stream, "400 Bad Request", "").await;
    };
    if req.method != "GET" {
        return respond_error(&mut stream, "405 Method Not Allowed", "Allow: GET\r\n").await;
    }
    let Some(name) = req.path.strip_prefix("/file/").filter(|n| valid_name(n)) else {
        return respond_error(&mut stream, "404 Not Found", "").await;
    };
    let name = name.to_string();
    let size = svc.args.file_size;
    let ue = peer.ip().to_canonical();
    let (status, start, end, extra) = match &req.range {
        Some(r) => match parse_range(r, size) {
            Ok((s, e)) => {
                // An explicit range supersedes an imported offset.
                svc.take_imported(ue, &name);
                ("206 Partial Content", s, e, String::new())
            }
            Err(()) => {
                let cr = format!("Content-Range: bytes */{size}\r\n");
                return respond_error(&mut stream, "416 Range Not Satisfiable", &cr).await;
            }
        },
        None => match svc.take_imported(ue, &name) {
            Some(d) if d.offset < d.end => (
                "206 Partial Content",
                d.offset,
                d.end,
                format!("X-Resumed-From: {}\r\n", d.offset),
            ),
            _ if size == 0 => ("200 OK", 0, 0, String::new()),
            _ => ("200 OK", 0, size, String::new()),
        },
    };
    let content_range = if status.starts_with("206") {
        format!("Content-Range: bytes {start}-{}/{size}\r\n", end - 1)
    } else {
        String::new()
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\n{content_range}{extra}Connection: close\r\n\r\n",
        end - start
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let conn = Connection {
        client: SocketAddr::new(ue, peer.port()),
        server: SocketAddr::new(local.ip().to_canonical(), local.port()),
    };
    svc.run_download(stream, ue, conn, name, start, end).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_complete_partial_and_bad() {
        let r = parse_head(b"GET /file/a.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=5-\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/file/a.bin"));
        assert_eq!(r.range.as_deref(), Some("bytes=5-"));
        // Bare LF line ends, as hyper accepts them.
        assert!(parse_head(b"GET /file/a HTTP/1.0\n\n").unwrap().is_some());
        assert!(parse_head(b"GET /file/a HTTP/1.1\r\nHost:")
            .unwrap()
            .is_none());
        assert!(parse_head(b"GET /file/a HTTP/2.0\r\n\r\n").is_err());
        assert!(parse_head(b"\x01\x02 junk\r\n\r\n").is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=10-", 100), Ok((10, 100)));
        assert_eq!(parse_range("bytes=10-19", 100), Ok((10, 20)));
        assert_eq!(parse_range("bytes=10-1000", 100), Ok((10, 100)));
        assert_eq!(parse_range("bytes=100-", 100), Err(()));
        assert_eq!(parse_range("bytes=-5", 100), Err(()));
        assert_eq!(parse_range("bytes=5-2", 100), Err(()));
        assert_eq!(parse_range("items=1-", 100), Err(()));
    }
}
