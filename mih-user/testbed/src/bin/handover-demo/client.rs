//! The plain client in the UE namespace: std sockets only, one GET, reads
//! to the end, checks every octet against the content rule.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use testbed::content::{fnv1a64_update, FNV1A64_INIT};

use crate::topology::{FILE, SEED, SERVICE_IP, SERVICE_PORT};

/// What the plain client saw.
#[derive(Debug, Default)]
pub struct ClientResult {
    pub received: u64,
    pub checksum: u64,
    pub error: Option<String>,
    pub longest_gap: Duration,
}

/// Download `size` octets; `progress` follows the octets received.
pub fn client(size: u64, progress: Arc<AtomicU64>) -> ClientResult {
    let mut r = ClientResult {
        checksum: FNV1A64_INIT,
        ..ClientResult::default()
    };
    let addr: SocketAddr = format!("{SERVICE_IP}:{SERVICE_PORT}").parse().unwrap();
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(e) => {
            r.error = Some(format!("connect: {e}"));
            return r;
        }
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(20)));
    if let Err(e) = write!(s, "GET /file/{FILE} HTTP/1.1\r\nHost: demo\r\n\r\n") {
        r.error = Some(format!("request: {e}"));
        return r;
    }
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => {
                r.error = Some("connection closed in the HTTP head".into());
                return r;
            }
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    if !head.starts_with("HTTP/1.1 200") || !head.contains(&format!("Content-Length: {size}")) {
        r.error = Some(format!("unexpected response head: {head:?}"));
        return r;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut want = vec![0u8; 64 * 1024];
    let mut last = Instant::now();
    while r.received < size {
        match s.read(&mut buf) {
            Ok(0) => {
                r.error = Some(format!("connection closed at octet {}", r.received));
                return r;
            }
            Ok(n) => {
                let now = Instant::now();
                r.longest_gap = r.longest_gap.max(now - last);
                last = now;
                let n = n.min((size - r.received) as usize);
                testbed::content::fill(SEED, FILE, r.received, &mut want[..n]);
                if buf[..n] != want[..n] {
                    let i = buf[..n].iter().zip(&want[..n]).position(|(a, b)| a != b);
                    r.error = Some(format!(
                        "wrong octet at offset {}",
                        r.received + i.unwrap_or(0) as u64
                    ));
                    return r;
                }
                r.checksum = fnv1a64_update(r.checksum, &buf[..n]);
                r.received += n as u64;
                progress.store(r.received, Ordering::Relaxed);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                r.error = Some(format!("read at octet {}: {e}", r.received));
                return r;
            }
        }
    }
    r
}

/// The FNV-1a checksum of the whole file.
pub fn expected_checksum(size: u64) -> u64 {
    let mut h = FNV1A64_INIT;
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < size {
        let n = (size - off).min(buf.len() as u64) as usize;
        testbed::content::fill(SEED, FILE, off, &mut buf[..n]);
        h = fnv1a64_update(h, &buf[..n]);
        off += n as u64;
    }
    h
}
