//! The downloads: one task per HTTP body, paced at `--rate`, which the
//! Service Mobility API side ([`crate::mobility`]) freezes, resumes, stops or
//! hands off ([`crate::handoff`]), and the imported downloads waiting for
//! their UE to ask again (or for their socket to come back).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mih_user::api::wire::Connection;
use testbed::content::fill as content;
use testbed::svc_kit::{MobileService, Mobility};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::context::DownloadState;
use crate::Args;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    Run,
    Freeze,
    /// Stop writing and hand the socket to the MIH-User.
    HandOff,
    Stop,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Progress {
    pub(crate) offset: u64,
    pub(crate) frozen: bool,
    pub(crate) finished: bool,
    /// The socket went to the MIH-User.
    pub(crate) handed: bool,
}

pub(crate) struct Download {
    pub(crate) ue: IpAddr,
    pub(crate) conn: Connection,
    pub(crate) name: String,
    pub(crate) end: u64,
    pub(crate) control: watch::Sender<Control>,
    pub(crate) progress: watch::Receiver<Progress>,
}

#[derive(Default)]
pub(crate) struct Tables {
    pub(crate) downloads: HashMap<u64, Download>,
    /// Imported, not yet resumed: UE → downloads.
    pub(crate) imported: HashMap<IpAddr, Vec<DownloadState>>,
}

pub(crate) struct Service {
    pub(crate) args: Args,
    /// The API connection and the socket hand-off.
    pub(crate) kit: Mobility,
    pub(crate) tables: Mutex<Tables>,
    pub(crate) next_id: AtomicU64,
}

pub(crate) type Shared = Arc<Service>;
impl Service {
    pub(crate) fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start sending `[offset, end)` of `name` on `stream` (headers, if any,
    /// already written). Returns when the download ends.
    pub(crate) async fn run_download(
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
                    match self.kit.hand_off(s) {
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
    pub(crate) async fn freeze(&self, ue: IpAddr) -> Vec<DownloadState> {
        let how = if self.kit.hands_off() {
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

    pub(crate) fn set_control(&self, ue: IpAddr, c: Control) {
        for d in self.tables().downloads.values().filter(|d| d.ue == ue) {
            let _ = d.control.send(c);
        }
    }

    /// Take an imported download of `ue` for `name`, if any.
    pub(crate) fn take_imported(&self, ue: IpAddr, name: &str) -> Option<DownloadState> {
        let mut t = self.tables();
        let list = t.imported.get_mut(&ue)?;
        let i = list.iter().position(|d| d.name == name)?;
        let d = list.remove(i);
        if list.is_empty() {
            t.imported.remove(&ue);
        }
        Some(d)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::Parser;
    use mih_user::api::wire::{Outcome, Role};
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

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

    pub(crate) fn test_service(rate: u64) -> Shared {
        let args = Args::parse_from(["x", "--file-size", "100000", "--rate", &rate.to_string()]);
        Arc::new(Service {
            kit: Mobility::detached(args.svc.config()),
            args,
            tables: Mutex::new(Tables::default()),
            next_id: AtomicU64::new(1),
        })
    }

    #[tokio::test]
    pub(crate) async fn freeze_stops_writing_and_reports_the_offset() {
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
