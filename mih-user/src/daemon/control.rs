//! The operator control socket: a Unix stream socket speaking JSON, one
//! object per line in each direction (`mih-user handover|abort|status`
//! use it).
//!
//! | request | answer |
//! |---|---|
//! | `{"op":"handover","ue":"10.45.0.7","target":"enbc-b"}` (optional `"timeout_ms"`, default 30000) | after the outcome: `{"ok":true,"record":{…}}` (the record as in `/status`: outcome, cause, phases in µs, sizes); not started: `{"ok":false,"error":"…","reason":"busy"}` |
//! | `{"op":"abort","ue":"10.45.0.7"}` | `{"ok":true,"aborted":true}` |
//! | `{"op":"status"}` | `{"ok":true,"mihf_id":…,"registered":…,"in_progress":…,"handovers":[…],"recent":[…]}` |
//!
//! A line longer than 4096 octets, or one that is not such an object, gets
//! `{"ok":false,"error":…}`; the connection stays open (except after an
//! over-long line). Access control is the socket directory's permissions.
//!
//! Bounds ([`daemon_kit::listener`]): at most `control.max_connections` (16)
//! connections; when they are all open, a new one closes the oldest one
//! that waits for a request (or is refused when every one has a request in
//! progress). A request line must arrive within `control.request_timeout_ms`
//! (5 s) of the connection opening or of the previous answer, and the
//! answer must be taken as fast; otherwise the connection is closed.

use std::io;
use std::net::IpAddr;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::{HandoverError, MihUserHandle};
use daemon_kit::listener::{self, Conn, LocalLimits, LocalStats};

/// Longest request line.
pub const MAX_LINE: usize = 4096;

/// Listen on `path` (a stale socket file is replaced).
pub fn bind(path: &Path) -> io::Result<(UnixListener, PathBuf)> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("a daemon already listens on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ))
        }
        Err(_) => {}
    }
    Ok((UnixListener::bind(path)?, path.to_path_buf()))
}

pub(super) async fn serve(
    h: MihUserHandle,
    l: UnixListener,
    limits: LocalLimits,
    stats: Arc<LocalStats>,
) {
    listener::serve("control", l, limits, stats, move |s, conn| {
        let h = h.clone();
        async move {
            let _ = connection(h, s, conn).await;
        }
    })
    .await
}

async fn connection(h: MihUserHandle, s: UnixStream, conn: Conn) -> io::Result<()> {
    let (rd, mut wr) = s.into_split();
    let mut rd = BufReader::new(rd);
    loop {
        let mut line = Vec::new();
        let mut limited = (&mut rd).take(MAX_LINE as u64 + 1);
        let Some(n) = conn.request(limited.read_until(b'\n', &mut line)).await else {
            return Ok(()); // no complete request in time
        };
        if n? == 0 {
            return Ok(());
        }
        let too_long = line.len() > MAX_LINE && !line.ends_with(b"\n");
        let answer = if too_long {
            json!({"ok": false, "error": "request line too long"})
        } else {
            match serde_json::from_slice::<Value>(&line) {
                Ok(v) => handle(&h, &v).await,
                Err(e) => json!({"ok": false, "error": format!("not JSON: {e}")}),
            }
        };
        let mut out = answer.to_string();
        out.push('\n');
        match conn.answer(wr.write_all(out.as_bytes())).await {
            Some(r) => r?,
            None => return Ok(()), // the client does not read
        }
        if too_long {
            return Ok(());
        }
    }
}

fn ue_of(v: &Value) -> Result<IpAddr, Value> {
    v.get("ue")
        .and_then(Value::as_str)
        .ok_or_else(|| json!({"ok": false, "error": "missing \"ue\""}))?
        .parse::<IpAddr>()
        .map_err(|e| json!({"ok": false, "error": format!("\"ue\": {e}")}))
}

async fn handle(h: &MihUserHandle, v: &Value) -> Value {
    match v.get("op").and_then(Value::as_str) {
        Some("status") => h.status_json(),
        Some("abort") => match ue_of(v) {
            Ok(ue) => json!({"ok": true, "aborted": h.abort(ue, "operator abort")}),
            Err(e) => e,
        },
        Some("handover") => {
            let ue = match ue_of(v) {
                Ok(ue) => ue,
                Err(e) => return e,
            };
            let Some(target) = v.get("target").and_then(Value::as_str) else {
                return json!({"ok": false, "error": "missing \"target\""});
            };
            let wait = Duration::from_millis(
                v.get("timeout_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(30_000)
                    .min(600_000),
            );
            match h.handover(ue, target, wait).await {
                Ok(r) => json!({"ok": true, "record": super::metrics::record_json(&r)}),
                Err(HandoverError::Start(e)) => {
                    json!({"ok": false, "error": e.to_string(), "reason": e.label()})
                }
                Err(e) => json!({"ok": false, "error": e.to_string()}),
            }
        }
        _ => json!({"ok": false, "error": "unknown \"op\" (handover, abort, status)"}),
    }
}

/// Send one request to a daemon's control socket and read the answer.
pub async fn request(path: &Path, req: &Value, timeout: Duration) -> io::Result<Value> {
    let work = async {
        let s = UnixStream::connect(path).await?;
        let (rd, mut wr) = s.into_split();
        let mut line = req.to_string();
        line.push('\n');
        wr.write_all(line.as_bytes()).await?;
        let mut answer = String::new();
        BufReader::new(rd).read_line(&mut answer).await?;
        serde_json::from_str(&answer).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer from the daemon"))?
}
