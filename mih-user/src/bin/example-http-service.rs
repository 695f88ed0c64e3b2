//! Example service for the Service Mobility API: an HTTP progressive-download
//! server whose per-UE context (file name and byte offset of each download)
//! moves with the UE from one edge node to the next.
//!
//! * `GET /file/<name>` serves a synthetic file of `--file-size` octets
//!   (`<name>`: 1 to 64 of `A-Z a-z 0-9 . _ -`), paced at `--rate`
//!   octets per second per download. `Range: bytes=N-` and `bytes=N-M`
//!   are honoured (206). Every response closes the connection.
//! * Content: octet `i` of file `name` is octet `i % 8` (little-endian) of
//!   `splitmix64(seed ^ fnv1a64(name) ^ (i / 8) * 0x9E3779B97F4A7C15)`, so
//!   two instances with the same `--seed` and `--file-size` serve the same
//!   octets and any range can be produced directly.
//! * With `--api-socket`, the service registers with the MIH-User's API
//!   (`--service-id`, `--fpt`) and registers each downloading UE (its
//!   address and the download's TCP 4-tuple).
//!   - `ExportRequested(ue)`: the UE's downloads are frozen (no octet is
//!     written after the answer) and the context lists, per download, the
//!     4-tuple, the file name, the offset of the next octet to send and the
//!     end of the range (format below).
//!   - `ImportRequested(ue)`: the context is checked (same file size and
//!     seed) and kept; when that UE next asks for the same file without a
//!     `Range`, the download continues from the imported offset (206 with
//!     `Content-Range` and `X-Resumed-From`).
//!   - With `--handoff-socket` (the MIH-User's `sessions.handoff_socket`,
//!     `sessions.mode = "tcp_repair"`), the TCP connection itself moves:
//!     at the export each download stops writing and its socket is handed
//!     to the MIH-User (`GIVE`), which freezes it with TCP_REPAIR; a socket
//!     that comes back (`TAKE`: rebuilt at the destination, or restored at
//!     the source after a rollback) continues the body from the offset,
//!     with no new HTTP header. The client sees one uninterrupted response.
//!   - `MigrationOutcome`: at the source, committed closes the UE's
//!     downloads, rolled back resumes them; at the destination, rolled back
//!     drops the imported context.
//!   - When the API connection closes (the MIH-User restarted), the service
//!     reconnects, registers again with the UEs it serves, and goes on; a
//!     download whose socket was handed over stays parked until the socket
//!     comes back (`TAKE`: the restarted MIH-User restored it from its
//!     session journal) or an outcome says the UE left.
//!
//! Context (version 1, big-endian): `"HTD1" | file size u64 | seed u64 |
//! count u16 | count × (client addr | server addr | offset u64 | end u64 |
//! name length u8 | name)`, where an address is `family u8 (4|6) | 4 or 16
//! octets | port u16`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use clap::Parser;
use mih_user::api::client::{ClientError, Event, ExportRequest, ImportRequest, ServiceClient};
use mih_user::api::wire::{Connection, ErrorCode, Outcome, ReplyStatus, Role};
use mih_user::sessions::handoff::HandoffClient;
use std::os::fd::AsFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn};

fn parse_u16(s: &str) -> Result<u16, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u16::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?}: {e}"))
}

/// HTTP progressive-download example service for the Service Mobility API.
///
/// Serves GET /file/NAME (NAME of 1 to 64 of A-Z a-z 0-9 . _ -) with
/// synthetic content, Range supported, at a per-download rate limit, and
/// moves each UE's download offsets to another node through the MIH-User's
/// Service Mobility API (--api-socket). Octet i of file NAME is octet
/// i % 8 (little-endian) of splitmix64(seed ^ fnv1a64(name) ^ (i / 8) *
/// 0x9E3779B97F4A7C15). The first line on stdout is "listening on
/// http://ADDR"; logs go to stderr (RUST_LOG, default info).
#[derive(Parser, Debug, Clone)]
#[command(version)]
struct Args {
    /// HTTP listen address (port 0 picks a free port; the address is
    /// printed on stdout as "listening on http://ADDR").
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Service Mobility API socket of the local MIH-User; without it the
    /// service runs stand-alone.
    #[arg(long)]
    api_socket: Option<PathBuf>,
    /// Service identifier registered with the API.
    #[arg(long, default_value = "http-download")]
    service_id: String,
    /// Feature Profile Type of the context in CXTP (decimal or 0x hex).
    #[arg(long, default_value = "0xFF01", value_parser = parse_u16)]
    fpt: u16,
    /// Size of every synthetic file, in octets.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    file_size: u64,
    /// Seed of the synthetic content (instances that share a seed and size
    /// serve identical files).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Per-download rate limit in octets per second (0: unlimited).
    #[arg(long, default_value_t = 1024 * 1024)]
    rate: u64,
    /// Octets per write.
    #[arg(long, default_value_t = 16 * 1024, value_parser = clap::value_parser!(u64).range(1..=1024 * 1024))]
    chunk: u64,
    /// The MIH-User's socket hand-off path (`sessions.handoff_socket`):
    /// move live TCP connections with TCP_REPAIR instead of letting the
    /// client reconnect. Needs --api-socket.
    #[arg(long, requires = "api_socket")]
    handoff_socket: Option<PathBuf>,
    /// Most simultaneous HTTP connections.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
}

// ---------------------------------------------------------------- content --

use mih_user::content::fill as content;

fn valid_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

// ---------------------------------------------------------------- context --

/// One download in a context.
#[derive(Clone, Debug, PartialEq, Eq)]
struct DownloadState {
    conn: Connection,
    name: String,
    /// Next octet to send.
    offset: u64,
    /// End of the range (exclusive).
    end: u64,
}

const MAGIC: &[u8; 4] = b"HTD1";
const MAX_DOWNLOADS_IN_CONTEXT: usize = 1024;

fn put_addr(b: &mut BytesMut, a: SocketAddr) {
    match a.ip() {
        IpAddr::V4(ip) => {
            b.put_u8(4);
            b.put_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            b.put_u8(6);
            b.put_slice(&ip.octets());
        }
    }
    b.put_u16(a.port());
}

fn encode_context(file_size: u64, seed: u64, downloads: &[DownloadState]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_slice(MAGIC);
    b.put_u64(file_size);
    b.put_u64(seed);
    let n = downloads.len().min(MAX_DOWNLOADS_IN_CONTEXT);
    b.put_u16(n as u16);
    for d in &downloads[..n] {
        put_addr(&mut b, d.conn.client);
        put_addr(&mut b, d.conn.server);
        b.put_u64(d.offset);
        b.put_u64(d.end);
        b.put_u8(d.name.len() as u8);
        b.put_slice(d.name.as_bytes());
    }
    b.freeze()
}

fn need(b: &[u8], n: usize) -> Result<(), String> {
    if b.remaining() < n {
        Err("truncated context".into())
    } else {
        Ok(())
    }
}

fn get_addr(b: &mut &[u8]) -> Result<SocketAddr, String> {
    need(b, 1)?;
    let ip = match b.get_u8() {
        4 => {
            need(b, 4)?;
            let mut a = [0u8; 4];
            b.copy_to_slice(&mut a);
            IpAddr::from(a)
        }
        6 => {
            need(b, 16)?;
            let mut a = [0u8; 16];
            b.copy_to_slice(&mut a);
            IpAddr::from(a)
        }
        f => return Err(format!("address family {f}")),
    };
    need(b, 2)?;
    Ok(SocketAddr::new(ip, b.get_u16()))
}

/// Parse a context; returns (file size, seed, downloads).
fn decode_context(mut b: &[u8]) -> Result<(u64, u64, Vec<DownloadState>), String> {
    need(b, 22)?;
    if &b[..4] != MAGIC {
        return Err("not an HTD1 context".into());
    }
    b.advance(4);
    let size = b.get_u64();
    let seed = b.get_u64();
    let n = b.get_u16() as usize;
    if n > MAX_DOWNLOADS_IN_CONTEXT {
        return Err(format!("{n} downloads"));
    }
    let mut v = Vec::with_capacity(n.min(b.remaining() / 30));
    for _ in 0..n {
        let client = get_addr(&mut b)?;
        let server = get_addr(&mut b)?;
        need(b, 17)?;
        let offset = b.get_u64();
        let end = b.get_u64();
        let len = b.get_u8() as usize;
        need(b, len)?;
        let name = std::str::from_utf8(&b[..len])
            .map_err(|_| "file name is not UTF-8".to_string())?
            .to_string();
        b.advance(len);
        if !valid_name(&name) || offset > end || end > size {
            return Err(format!("invalid download {name:?} {offset}..{end}"));
        }
        v.push(DownloadState {
            conn: Connection { client, server },
            name,
            offset,
            end,
        });
    }
    if b.has_remaining() {
        return Err("octets after the last download".into());
    }
    Ok((size, seed, v))
}

// ---------------------------------------------------------------- service --

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Control {
    Run,
    Freeze,
    /// Stop writing and hand the socket to the MIH-User.
    HandOff,
    Stop,
}

#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    offset: u64,
    frozen: bool,
    finished: bool,
    /// The socket went to the MIH-User.
    handed: bool,
}

struct Download {
    ue: IpAddr,
    conn: Connection,
    name: String,
    end: u64,
    control: watch::Sender<Control>,
    progress: watch::Receiver<Progress>,
}

#[derive(Default)]
struct Tables {
    downloads: HashMap<u64, Download>,
    /// Imported, not yet resumed: UE → downloads.
    imported: HashMap<IpAddr, Vec<DownloadState>>,
}

struct Service {
    args: Args,
    /// The API connection (`None` while reconnecting, or stand-alone).
    api: Mutex<Option<ServiceClient>>,
    handoff: Option<HandoffClient>,
    tables: Mutex<Tables>,
    next_id: AtomicU64,
}

type Shared = Arc<Service>;

impl Service {
    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn api(&self) -> Option<ServiceClient> {
        self.api.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The UEs with a download running here.
    fn ues(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.tables().downloads.values().map(|d| d.ue).collect();
        v.sort();
        v.dedup();
        v
    }

    fn connections_of(&self, ue: IpAddr) -> Vec<Connection> {
        self.tables()
            .downloads
            .values()
            .filter(|d| d.ue == ue)
            .map(|d| d.conn)
            .collect()
    }

    /// Tell the API which connections `ue` has now.
    async fn sync_user(&self, ue: IpAddr) {
        let Some(api) = self.api() else { return };
        let conns = self.connections_of(ue);
        let pending_import = self.tables().imported.contains_key(&ue);
        let r = if conns.is_empty() && !pending_import {
            api.deregister_user(&self.args.service_id, ue).await
        } else {
            api.update_user(&self.args.service_id, ue, &conns).await
        };
        match r {
            Ok(()) => {}
            Err(e) if e.code() == Some(ErrorCode::UnknownUser) => {}
            Err(e) => warn!(%ue, "API user update failed: {e}"),
        }
    }

    /// Start sending `[offset, end)` of `name` on `stream` (headers, if any,
    /// already written). Returns when the download ends.
    async fn run_download(
        self: &Shared,
        stream: TcpStream,
        ue: IpAddr,
        conn: Connection,
        name: String,
        offset: u64,
        end: u64,
    ) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (control, mut control_rx) = watch::channel(Control::Run);
        let (progress_tx, progress) = watch::channel(Progress {
            offset,
            ..Progress::default()
        });
        self.tables().downloads.insert(
            id,
            Download {
                ue,
                conn,
                name: name.clone(),
                end,
                control,
                progress,
            },
        );
        self.sync_user(ue).await;
        info!(%ue, file = %name, offset, end, "download started");

        let chunk = self.args.chunk as usize;
        let rate = self.args.rate;
        let mut buf = vec![0u8; chunk];
        let mut pos = offset;
        let mut filled = (pos, pos); // octets of the file in buf: [filled.0, filled.1)
        let mut pace_start = tokio::time::Instant::now();
        let mut paced: u64 = 0;
        let mut stopped = false;
        let mut handed = false;
        // `None` once the socket went to the MIH-User (or was lost).
        let mut stream = Some(stream);
        while pos < end {
            let c = *control_rx.borrow_and_update();
            match c {
                Control::Stop => {
                    stopped = true;
                    break;
                }
                Control::HandOff => {
                    // Give the socket away; if that fails, keep it and
                    // behave as frozen (the export then fails and the
                    // rollback resumes here).
                    let Some(s) = stream.take() else { break };
                    match self.hand_off(s) {
                        Ok(()) => {
                            handed = true;
                            progress_tx.send_modify(|p| {
                                p.handed = true;
                                p.frozen = true;
                            });
                            break;
                        }
                        Err((e, None)) => {
                            warn!(%ue, "socket hand-off failed, connection lost: {e}");
                            stopped = true;
                            break;
                        }
                        Err((e, Some(s))) => {
                            warn!(%ue, "socket hand-off failed: {e}");
                            stream = Some(s);
                            progress_tx.send_modify(|p| p.frozen = true);
                            if control_rx.changed().await.is_err() {
                                break;
                            }
                            progress_tx.send_modify(|p| p.frozen = false);
                            pace_start = tokio::time::Instant::now();
                            paced = 0;
                            continue;
                        }
                    }
                }
                Control::Freeze => {
                    progress_tx.send_modify(|p| p.frozen = true);
                    if control_rx.changed().await.is_err() {
                        break;
                    }
                    progress_tx.send_modify(|p| p.frozen = false);
                    pace_start = tokio::time::Instant::now();
                    paced = 0;
                    continue;
                }
                Control::Run => {}
            }
            if rate > 0 {
                let due = pace_start + Duration::from_secs_f64(paced as f64 / rate as f64);
                if due > tokio::time::Instant::now() {
                    tokio::select! {
                        _ = tokio::time::sleep_until(due) => {}
                        r = control_rx.changed() => if r.is_err() { break } else { continue },
                    }
                }
            }
            if pos >= filled.1 {
                let n = (end - pos).min(chunk as u64) as usize;
                content(self.args.seed, &name, pos, &mut buf[..n]);
                filled = (pos, pos + n as u64);
            }
            let slice = &buf[(pos - filled.0) as usize..(filled.1 - filled.0) as usize];
            let Some(sock) = stream.as_mut() else { break };
            tokio::select! {
                r = sock.write(slice) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        pos += n as u64;
                        paced += n as u64;
                        progress_tx.send_modify(|p| p.offset = pos);
                    }
                },
                r = control_rx.changed() => if r.is_err() { break },
            }
        }
        progress_tx.send_modify(|p| p.finished = true);
        self.tables().downloads.remove(&id);
        if handed {
            info!(%ue, file = %name, offset = pos, "socket handed to the MIH-User");
        } else if stopped {
            info!(%ue, file = %name, offset = pos, "download moved away");
            // Closing would send FIN on a connection that now lives at the
            // destination; with TCP_REPAIR the socket is put in repair mode
            // first. Here the client reconnects to the destination.
        } else if let Some(mut stream) = stream {
            let _ = stream.shutdown().await;
            debug!(%ue, file = %name, offset = pos, "download ended");
            self.sync_user(ue).await;
        }
    }

    /// Freeze the UE's downloads and return their state (imported ones not
    /// yet resumed included).
    async fn freeze(&self, ue: IpAddr) -> Vec<DownloadState> {
        let how = if self.handoff.is_some() {
            Control::HandOff
        } else {
            Control::Freeze
        };
        let waits: Vec<_> = {
            let t = self.tables();
            t.downloads
                .values()
                .filter(|d| d.ue == ue)
                .map(|d| {
                    let _ = d.control.send(how);
                    (d.conn, d.name.clone(), d.end, d.progress.clone())
                })
                .collect()
        };
        let mut out = Vec::new();
        let mut parked = Vec::new();
        for (conn, name, end, mut progress) in waits {
            // The writer acknowledges at once unless a write is completing.
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                progress.wait_for(|p| p.frozen || p.finished),
            )
            .await
            .map(|r| r.map(|_| ()));
            let p = *progress.borrow();
            if p.offset < end || p.handed {
                let d = DownloadState {
                    conn,
                    name,
                    offset: p.offset,
                    end,
                };
                if p.handed {
                    // Resumed by `adopt_socket` if the socket comes back.
                    parked.push(d.clone());
                }
                out.push(d);
            }
        }
        let mut t = self.tables();
        out.extend(t.imported.get(&ue).cloned().unwrap_or_default());
        if !parked.is_empty() {
            t.imported.entry(ue).or_default().extend(parked);
        }
        out
    }

    fn set_control(&self, ue: IpAddr, c: Control) {
        for d in self.tables().downloads.values().filter(|d| d.ue == ue) {
            let _ = d.control.send(c);
        }
    }

    async fn on_export(&self, api: &ServiceClient, req: ExportRequest) {
        let downloads = self.freeze(req.ue).await;
        info!(ue = %req.ue, downloads = downloads.len(), "export: {:?}", downloads.iter().map(|d| (&d.name, d.offset)).collect::<Vec<_>>());
        let ctx = encode_context(self.args.file_size, self.args.seed, &downloads);
        if let Err(e) = api.export_context(&req, ctx).await {
            warn!(ue = %req.ue, "export answer failed: {e}; resuming");
            self.set_control(req.ue, Control::Run);
        }
    }

    async fn on_import(&self, api: &ServiceClient, req: ImportRequest) {
        let r = match decode_context(&req.data) {
            Err(e) => Err((ReplyStatus::MalformedContext, e)),
            Ok((size, seed, _)) if size != self.args.file_size || seed != self.args.seed => Err((
                ReplyStatus::Refused,
                format!("context is for file size {size} seed {seed}"),
            )),
            Ok((_, _, d)) => Ok(d),
        };
        let answer = match r {
            Ok(downloads) => {
                info!(ue = %req.ue, "import: {:?}", downloads.iter().map(|d| (&d.name, d.offset)).collect::<Vec<_>>());
                let conns: Vec<Connection> = downloads
                    .iter()
                    .map(|d| d.conn)
                    .filter(|c| c.client.ip().to_canonical() == req.ue.to_canonical())
                    .collect();
                self.tables().imported.insert(req.ue, downloads);
                api.import_context(&req, &conns).await
            }
            Err((status, reason)) => {
                warn!(ue = %req.ue, "refusing import: {reason}");
                api.refuse_import(&req, status, &reason).await
            }
        };
        if let Err(e) = answer {
            warn!(ue = %req.ue, "import answer failed: {e}");
        }
    }

    fn on_outcome(&self, role: Role, outcome: Outcome, ue: IpAddr) {
        info!(%ue, ?role, ?outcome, "migration outcome");
        match (role, outcome) {
            (Role::Source, Outcome::Committed) => {
                self.set_control(ue, Control::Stop);
                self.tables().imported.remove(&ue);
            }
            (Role::Source, Outcome::RolledBack) => self.set_control(ue, Control::Run),
            (Role::Destination, Outcome::RolledBack) => {
                self.tables().imported.remove(&ue);
            }
            (Role::Destination, Outcome::Committed) => {}
        }
    }

    /// Take an imported download of `ue` for `name`, if any.
    fn take_imported(&self, ue: IpAddr, name: &str) -> Option<DownloadState> {
        let mut t = self.tables();
        let list = t.imported.get_mut(&ue)?;
        let i = list.iter().position(|d| d.name == name)?;
        let d = list.remove(i);
        if list.is_empty() {
            t.imported.remove(&ue);
        }
        Some(d)
    }

    /// Send the socket to the MIH-User (`GIVE`); on failure it is handed
    /// back (`None`: it could not be; the connection is lost).
    fn hand_off(&self, stream: TcpStream) -> Result<(), (std::io::Error, Option<TcpStream>)> {
        let Some(h) = &self.handoff else {
            return Err((std::io::Error::other("no hand-off socket"), Some(stream)));
        };
        let std = stream.into_std().map_err(|e| (e, None))?;
        match h.give(&[std.as_fd()]) {
            // Our descriptor closes here; the MIH-User holds the socket.
            Ok(()) => Ok(()),
            Err(e) => Err((e, TcpStream::from_std(std).ok())),
        }
    }

    /// Hand a migrated TCP socket to the service (the TCP_REPAIR path): if
    /// an imported (or, at the source, parked) download has the socket's
    /// 4-tuple, its body continues on the socket from that offset, without
    /// a new HTTP header. Returns false (and drops the socket) otherwise.
    async fn adopt_socket(self: &Shared, stream: std::net::TcpStream) -> bool {
        let (Ok(peer), Ok(local)) = (stream.peer_addr(), stream.local_addr()) else {
            return false;
        };
        let ue = peer.ip().to_canonical();
        let found = {
            let mut t = self.tables();
            let Some(list) = t.imported.get_mut(&ue) else {
                return false;
            };
            let Some(i) = list
                .iter()
                .position(|d| d.conn.client == peer && d.conn.server == local)
            else {
                return false;
            };
            let d = list.remove(i);
            if list.is_empty() {
                t.imported.remove(&ue);
            }
            d
        };
        if stream.set_nonblocking(true).is_err() {
            return false;
        }
        let Ok(stream) = TcpStream::from_std(stream) else {
            return false;
        };
        let svc = self.clone();
        tokio::spawn(async move {
            svc.run_download(stream, ue, found.conn, found.name, found.offset, found.end)
                .await
        });
        true
    }
}

// ------------------------------------------------------------------- HTTP --

const MAX_HEAD: usize = 8192;

struct Request {
    method: String,
    path: String,
    range: Option<String>,
}

fn parse_head(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    if !first.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let mut range = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    Some(Request {
        method,
        path,
        range,
    })
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

async fn handle_http(svc: Shared, mut stream: TcpStream, peer: SocketAddr) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let mut head = Vec::with_capacity(1024);
    let read = async {
        let mut b = [0u8; 1024];
        loop {
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return true;
            }
            if head.len() >= MAX_HEAD {
                return false;
            }
            match stream.read(&mut b).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&b[..n.min(MAX_HEAD - head.len())]),
            }
        }
    };
    if !matches!(
        tokio::time::timeout(Duration::from_secs(10), read).await,
        Ok(true)
    ) {
        return respond_error(&mut stream, "400 Bad Request", "").await;
    }
    let end_of_head = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(head.len());
    let Some(req) = parse_head(&head[..end_of_head]) else {
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

// ------------------------------------------------------------------- main --

/// Sockets from the MIH-User (`TAKE`): adopt each one. Re-announce the
/// listen address every few seconds (a restarted MIH-User learns it).
async fn receive_sockets(svc: Shared) -> std::io::Result<()> {
    use tokio::io::unix::AsyncFd;
    let h = svc
        .handoff
        .as_ref()
        .ok_or_else(|| std::io::Error::other("no hand-off socket"))?;
    let fd = h.as_fd().try_clone_to_owned()?;
    // SAFETY: `fd` is an owned duplicate, closed only when `afd` drops.
    let afd = unsafe { AsyncFd::register(fd) }.map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut hello = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = hello.tick() => {
                if let Err(e) = h.hello() {
                    debug!("hand-off HELO: {e}");
                }
            }
            g = afd.readable() => {
                let mut g = g?;
                loop {
                    match h.try_take() {
                        Ok(fd) => {
                            let stream = std::net::TcpStream::from(fd);
                            let what = format!("{:?} -> {:?}", stream.peer_addr(), stream.local_addr());
                            if svc.adopt_socket(stream).await {
                                info!(socket = %what, "socket taken over from the MIH-User");
                            } else {
                                warn!(socket = %what, "socket from the MIH-User matches no download; closed");
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            g.clear_ready();
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }
}

async fn connect_api(
    args: &Args,
) -> Result<Option<(ServiceClient, mih_user::api::client::EventStream)>, ClientError> {
    let Some(path) = &args.api_socket else {
        return Ok(None);
    };
    let mut tries = 0;
    let (client, events) = loop {
        match ServiceClient::connect(path).await {
            Ok(c) => break c,
            Err(ClientError::Io(e)) if tries < 50 => {
                debug!("API not reachable yet: {e}");
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    };
    client.register_service(&args.service_id, args.fpt).await?;
    info!(service = %args.service_id, fpt = format_args!("{:#06x}", args.fpt), api = %path.display(), "registered with the Service Mobility API");
    Ok(Some((client, events)))
}

/// Serve the API's events; when the connection closes (the MIH-User
/// restarted), reconnect, register the service and its UEs again, and go
/// on.
async fn serve_api(
    svc: Shared,
    mut client: ServiceClient,
    mut events: mih_user::api::client::EventStream,
) {
    let Some(path) = svc.args.api_socket.clone() else {
        return;
    };
    loop {
        while let Some(ev) = events.recv().await {
            match ev {
                Event::ExportRequested(req) => svc.on_export(&client, req).await,
                Event::ImportRequested(req) => svc.on_import(&client, req).await,
                Event::MigrationOutcome(o) => svc.on_outcome(o.role, o.outcome, o.ue),
            }
        }
        warn!("Service Mobility API connection closed; reconnecting");
        *svc.api.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let mut wait = Duration::from_millis(100);
        (client, events) = loop {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
            let (c, ev) = match ServiceClient::connect(&path).await {
                Ok(v) => v,
                Err(e) => {
                    debug!("API not reachable yet: {e}");
                    continue;
                }
            };
            match c.register_service(&svc.args.service_id, svc.args.fpt).await {
                Ok(()) => break (c, ev),
                Err(e) => warn!("registering the service again failed: {e}"),
            }
        };
        *svc.api.lock().unwrap_or_else(|e| e.into_inner()) = Some(client.clone());
        let ues = svc.ues();
        info!(service = %svc.args.service_id, users = ues.len(), "registered with the Service Mobility API again");
        for ue in ues {
            svc.sync_user(ue).await;
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(args.listen).await?;
    let api = connect_api(&args).await?;
    let handoff = match &args.handoff_socket {
        Some(path) => {
            let h = HandoffClient::connect(path, listener.local_addr()?)?;
            info!(path = %path.display(), "TCP sessions move with TCP_REPAIR (socket hand-off)");
            Some(h)
        }
        None => None,
    };
    let svc: Shared = Arc::new(Service {
        api: Mutex::new(api.as_ref().map(|(c, _)| c.clone())),
        handoff,
        args: args.clone(),
        tables: Mutex::new(Tables::default()),
        next_id: AtomicU64::new(1),
    });
    if let Some((client, events)) = api {
        let svc = svc.clone();
        tokio::spawn(async move { serve_api(svc, client, events).await });
    }
    if svc.handoff.is_some() {
        let svc = svc.clone();
        tokio::spawn(async move {
            if let Err(e) = receive_sockets(svc).await {
                warn!("socket hand-off receiver stopped: {e}");
            }
        });
    }
    println!("listening on http://{}", listener.local_addr()?);
    let limit = Arc::new(Semaphore::new(args.max_connections.max(1)));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            warn!(%peer, "too many connections");
            continue;
        };
        let svc = svc.clone();
        tokio::spawn(async move {
            handle_http(svc, stream, peer).await;
            drop(permit);
        });
    }
}

fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("example-http-service: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(args)) {
        eprintln!("example-http-service: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_round_trip_and_rejects() {
        let d = vec![
            DownloadState {
                conn: Connection {
                    client: "10.0.0.7:40000".parse().unwrap(),
                    server: "192.0.2.1:80".parse().unwrap(),
                },
                name: "video.bin".into(),
                offset: 12345,
                end: 99999,
            },
            DownloadState {
                conn: Connection {
                    client: "[2001:db8::7]:40001".parse().unwrap(),
                    server: "[2001:db8::1]:80".parse().unwrap(),
                },
                name: "b".into(),
                offset: 0,
                end: 1,
            },
        ];
        let b = encode_context(100_000, 9, &d);
        assert_eq!(decode_context(&b).unwrap(), (100_000, 9, d));
        for cut in 0..b.len() {
            assert!(decode_context(&b[..cut]).is_err());
        }
        assert!(decode_context(&encode_context(10, 9, &[])).is_ok());
    }

    #[test]
    fn content_is_random_access() {
        let mut whole = vec![0u8; 100];
        content(3, "f", 0, &mut whole);
        let mut part = vec![0u8; 37];
        content(3, "f", 41, &mut part);
        assert_eq!(&whole[41..78], &part[..]);
        let mut other = vec![0u8; 100];
        content(3, "g", 0, &mut other);
        assert_ne!(whole, other);
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

    fn test_service(rate: u64) -> Shared {
        Arc::new(Service {
            args: Args::parse_from(["x", "--file-size", "100000", "--rate", &rate.to_string()]),
            api: Mutex::new(None),
            handoff: None,
            tables: Mutex::new(Tables::default()),
            next_id: AtomicU64::new(1),
        })
    }

    /// The TCP_REPAIR hand-over hook: an adopted socket continues the body
    /// from the imported offset.
    #[tokio::test]
    async fn adopted_socket_continues_from_the_offset() {
        let svc = test_service(0);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, peer) = listener.accept().unwrap();
        let conn = Connection {
            client: peer,
            server: server.local_addr().unwrap(),
        };
        svc.tables().imported.insert(
            peer.ip(),
            vec![DownloadState {
                conn,
                name: "f.bin".into(),
                offset: 90_000,
                end: 100_000,
            }],
        );
        assert!(svc.adopt_socket(server).await);
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        let mut want = vec![0u8; 10_000];
        content(1, "f.bin", 90_000, &mut want);
        assert_eq!(got, want);
        // nothing imported for an unknown 4-tuple
        let (s2, _) = {
            let _c = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            listener.accept().unwrap()
        };
        assert!(!svc.adopt_socket(s2).await);
    }

    #[tokio::test]
    async fn freeze_stops_writing_and_reports_the_offset() {
        let svc = test_service(50_000);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        let conn = Connection {
            client: peer,
            server: addr,
        };
        let s2 = svc.clone();
        let task = tokio::spawn(async move {
            s2.run_download(server, peer.ip(), conn, "f".into(), 0, 100_000)
                .await
        });
        let mut got = vec![0u8; 5000];
        client.read_exact(&mut got).await.unwrap();
        let state = svc.freeze(peer.ip()).await;
        assert_eq!(state.len(), 1);
        let off = state[0].offset as usize;
        assert!((5000..100_000).contains(&off));
        // exactly `off` octets arrive, then nothing while frozen
        let mut rest = vec![0u8; off - 5000];
        client.read_exact(&mut rest).await.unwrap();
        let mut one = [0u8; 1];
        assert!(
            tokio::time::timeout(Duration::from_millis(300), client.read(&mut one))
                .await
                .is_err()
        );
        svc.on_outcome(Role::Source, Outcome::Committed, peer.ip());
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert!(svc.tables().downloads.is_empty());
    }
}
