//! Hand-off of live TCP sockets between a service and the MIH-User.
//!
//! With `TCP_REPAIR`, the MIH-User freezes and rebuilds the sockets of a
//! UE's connections, but those sockets belong to the service's process.
//! They travel between the two processes as file descriptors
//! (`SCM_RIGHTS`) over a Unix **datagram** socket: the MIH-User binds one
//! at a configured path (`sessions.handoff_socket`), each service binds its
//! own (an abstract address) and announces itself.
//!
//! Three datagrams, each a short ASCII word (plus one argument), with
//! descriptors attached where said:
//!
//! | datagram | direction | descriptors | meaning |
//! |---|---|---|---|
//! | `HELO <listen addr>` | service → MIH-User | none | rebuilt sockets whose local address is `<listen addr>` (or, for an unspecified IP, that port) go to the sender |
//! | `GIVE` | service → MIH-User | 1 to 64 connected TCP sockets | the MIH-User owns these now (the service closes its copies) |
//! | `TAKE` | MIH-User → service | exactly 1 | a socket rebuilt here (import) or restored (rollback): the service owns it |
//!
//! The order that matters: a service answering an export **first** sends
//! `GIVE` (the datagram is in the MIH-User's queue when `sendmsg`
//! returns), **then** answers `ExportContext` on the API socket; the
//! MIH-User reads its queue when it exports the sessions, which is after
//! every service answered. A service repeats `HELO` from time to time, so
//! a restarted MIH-User learns it again.
//!
//! [`HandoffServer`] is the MIH-User's end, [`HandoffClient`] the
//! service's, and [`HandoffSessions`] the session exporter/importer the
//! daemon uses in `sessions.mode = "tcp_repair"`: [`TcpRepair`] plus the
//! hand-off, plus the flow hold and path switch hooks.
//!
//! ```no_run
//! use std::os::fd::AsFd;
//! use mih_user::sessions::handoff::HandoffClient;
//!
//! # fn main() -> std::io::Result<()> {
//! let listener = std::net::TcpListener::bind("10.99.0.1:8080")?;
//! let handoff = HandoffClient::connect("/run/mih-user/handoff.sock".as_ref(), listener.local_addr()?)?;
//! let (conn, _) = listener.accept()?;
//! // ... the MIH-User asks for the UE's state: stop writing, then
//! handoff.give(&[conn.as_fd()])?;
//! drop(conn);
//! // ... answer ExportContext; later, a TAKE may bring a socket back:
//! if let Ok(fd) = handoff.try_take() {
//!     let _stream = std::net::TcpStream::from(fd);
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cxtp::profile::TcpSessionContext;
use nix::sys::socket::{
    recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrLike, UnixAddr,
};

use super::journal::{self, EntryHandle, HookSpecs, Journal, Phase, Record};
use super::tcp_repair::TcpRepair;
use crate::api::Connection;
use crate::orchestrator::sessions::{
    ExportAttempt, SessionError, SessionExporter, SessionImporter,
};

/// Most descriptors in one `GIVE`.
pub const MAX_FDS: usize = 64;
/// How long an export waits for the data in flight to be acknowledged
/// before the flow hold (see [`TcpRepair::drain`]).
pub const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_millis(2);
/// Most services remembered (distinct listen addresses announced).
pub const MAX_SERVICES: usize = 1024;
/// Longest datagram text.
const MAX_TEXT: usize = 128;

fn nix_err(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

fn send(sock: &UnixDatagram, to: &UnixAddr, text: &str, fds: &[RawFd]) -> io::Result<()> {
    let iov = [IoSlice::new(text.as_bytes())];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    sendmsg(
        sock.as_raw_fd(),
        &iov,
        cmsgs,
        MsgFlags::MSG_DONTWAIT,
        Some(to),
    )
    .map_err(nix_err)?;
    Ok(())
}

/// One received datagram: its text, the descriptors it carried (owned, so
/// they close if nobody keeps them) and the sender's address.
struct Datagram {
    text: String,
    fds: Vec<OwnedFd>,
    from: Option<UnixAddr>,
    truncated: bool,
}

fn recv(sock: &UnixDatagram) -> io::Result<Datagram> {
    let mut buf = [0u8; MAX_TEXT];
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(nix_err)?;
    let mut fds = Vec::new();
    let mut truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
    match msg.cmsgs() {
        Ok(it) => {
            for c in it {
                if let ControlMessageOwned::ScmRights(v) = c {
                    // SAFETY: the kernel just installed these descriptors
                    // in this process; nothing else owns them.
                    fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                }
            }
        }
        Err(_) => truncated = true,
    }
    let n = msg.bytes;
    let from = msg.address;
    let text = String::from_utf8_lossy(&buf[..n]).trim_end().to_string();
    Ok(Datagram {
        text,
        fds,
        from,
        truncated,
    })
}

/// Counters of a [`HandoffServer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandoffStats {
    /// `HELO`s received.
    pub hellos: u64,
    /// Sockets adopted from `GIVE`s.
    pub adopted: u64,
    /// Sockets sent back with `TAKE`.
    pub delivered: u64,
    /// Datagrams or descriptors refused (malformed, unknown word, not a
    /// connected TCP socket, no sender address).
    pub rejected: u64,
    /// Sockets that could not be delivered (no service for them, send
    /// error).
    pub undeliverable: u64,
    /// Sockets given for an export that had already ended, handed back
    /// ([`HandoffSessions::return_orphans`]).
    pub orphans_returned: u64,
}

#[derive(Default)]
struct ServerState {
    /// Service listen address -> its hand-off address.
    services: HashMap<SocketAddr, UnixAddr>,
    stats: HandoffStats,
}

/// The MIH-User's end of the hand-off (see the module documentation).
pub struct HandoffServer {
    sock: UnixDatagram,
    path: PathBuf,
    state: Mutex<ServerState>,
}

impl std::fmt::Debug for HandoffServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandoffServer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Which service takes a socket whose local address is `local`.
fn service_for(services: &HashMap<SocketAddr, UnixAddr>, local: SocketAddr) -> Option<&UnixAddr> {
    services.get(&local).or_else(|| {
        services
            .iter()
            .find(|(l, _)| l.ip().is_unspecified() && l.port() == local.port())
            .map(|(_, a)| a)
    })
}

impl HandoffServer {
    /// Bind at `path` (a stale socket file there is replaced).
    pub fn bind(path: &Path) -> io::Result<HandoffServer> {
        use std::os::unix::fs::FileTypeExt;
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if m.file_type().is_socket() {
                std::fs::remove_file(path)?;
            }
        }
        let sock = UnixDatagram::bind(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        sock.set_nonblocking(true)?;
        Ok(HandoffServer {
            sock,
            path: path.to_path_buf(),
            state: Mutex::new(ServerState::default()),
        })
    }

    /// The path it is bound at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, ServerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counters.
    pub fn stats(&self) -> HandoffStats {
        self.lock().stats
    }

    /// Whether a service announced the listen address that takes a socket
    /// whose local address is `local`.
    pub fn has_service_for(&self, local: SocketAddr) -> bool {
        service_for(&self.lock().services, local).is_some()
    }

    /// Read every queued datagram: remember `HELO`s, put the sockets of
    /// `GIVE`s into `repair`. Never blocks. Returns how many sockets were
    /// adopted.
    pub fn poll(&self, repair: &TcpRepair) -> usize {
        self.poll_keys(repair).len()
    }

    /// [`poll`](Self::poll), returning the connections of the sockets
    /// adopted (local, remote).
    pub fn poll_keys(&self, repair: &TcpRepair) -> Vec<(SocketAddr, SocketAddr)> {
        let mut adopted = Vec::new();
        // Bounded: a flood cannot keep the caller here forever.
        for _ in 0..4096 {
            let d = match recv(&self.sock) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), "hand-off socket: {e}");
                    break;
                }
            };
            let mut st = self.lock();
            let (word, arg) = d.text.split_once(' ').unwrap_or((d.text.as_str(), ""));
            match (word, d.truncated) {
                ("HELO", false) if d.fds.is_empty() => {
                    let (Ok(listen), Some(from)) = (arg.parse::<SocketAddr>(), d.from) else {
                        st.stats.rejected += 1;
                        tracing::warn!(text = %d.text, "hand-off: bad HELO (address, or no sender address)");
                        continue;
                    };
                    // An unbound sender has no address to answer (nix's
                    // accessors assert on such a short address: check the
                    // length first).
                    if (from.len() as usize) <= std::mem::size_of::<libc::sa_family_t>() {
                        st.stats.rejected += 1;
                        tracing::warn!("hand-off: HELO from an unbound socket");
                        continue;
                    }
                    if st.services.len() >= MAX_SERVICES && !st.services.contains_key(&listen) {
                        st.stats.rejected += 1;
                        tracing::warn!(%listen, "hand-off: HELO refused, {MAX_SERVICES} services known");
                        continue;
                    }
                    st.stats.hellos += 1;
                    st.services.insert(listen, from);
                }
                ("GIVE", false) if !d.fds.is_empty() => {
                    drop(st);
                    for fd in d.fds {
                        match repair.adopt(fd) {
                            Ok((local, remote)) => {
                                adopted.push((local, remote));
                                self.lock().stats.adopted += 1;
                                tracing::debug!(%local, %remote, "hand-off: socket adopted");
                            }
                            Err(e) => {
                                self.lock().stats.rejected += 1;
                                tracing::warn!("hand-off: GIVE of a socket that is not a connected TCP socket: {e}");
                            }
                        }
                    }
                }
                _ => {
                    st.stats.rejected += 1;
                    tracing::warn!(
                        text = %d.text.escape_debug(),
                        fds = d.fds.len(),
                        truncated = d.truncated,
                        "hand-off: malformed datagram ignored"
                    );
                }
            }
        }
        adopted
    }

    /// Send `fd` (a connected TCP socket) to the service that listens on
    /// its local address. On failure the socket is handed back.
    pub fn deliver(&self, fd: OwnedFd) -> Result<(), (io::Error, OwnedFd)> {
        let local = match socket2::SockRef::from(&fd).local_addr() {
            Ok(a) => a.as_socket(),
            Err(e) => return Err((e, fd)),
        };
        let Some(local) = local else {
            return Err((io::Error::other("not an IP socket"), fd));
        };
        let mut st = self.lock();
        let Some(to) = service_for(&st.services, local).copied() else {
            st.stats.undeliverable += 1;
            let e = io::Error::new(
                io::ErrorKind::NotFound,
                format!("no service announced {local} on the hand-off socket"),
            );
            return Err((e, fd));
        };
        match send(&self.sock, &to, "TAKE", &[fd.as_raw_fd()]) {
            Ok(()) => {
                st.stats.delivered += 1;
                Ok(())
            }
            Err(e) => {
                st.stats.undeliverable += 1;
                Err((e, fd))
            }
        }
    }
}

impl Drop for HandoffServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A service's end of the hand-off (see the module documentation).
#[derive(Debug)]
pub struct HandoffClient {
    sock: UnixDatagram,
    server: UnixAddr,
    listen: SocketAddr,
}

static CLIENTS: AtomicU64 = AtomicU64::new(0);

/// How long [`HandoffClient::give`] retries while the MIH-User's queue is
/// full.
pub const GIVE_PATIENCE: Duration = Duration::from_secs(1);

impl HandoffClient {
    /// Bind an abstract address and announce `listen` (the service's TCP
    /// listen address) to the MIH-User at `server`.
    pub fn connect(server: &Path, listen: SocketAddr) -> io::Result<HandoffClient> {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "mih-user-handoff/{}/{}",
            std::process::id(),
            CLIENTS.fetch_add(1, Ordering::Relaxed)
        );
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        let sock = UnixDatagram::bind_addr(&addr)?;
        sock.set_nonblocking(true)?;
        let server_addr = UnixAddr::new(server).map_err(nix_err)?;
        let c = HandoffClient {
            sock,
            server: server_addr,
            listen,
        };
        c.hello().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("hand-off socket {}: {e}", server.display()),
            )
        })?;
        Ok(c)
    }

    /// (Re)announce the listen address.
    pub fn hello(&self) -> io::Result<()> {
        send(
            &self.sock,
            &self.server,
            &format!("HELO {}", self.listen),
            &[],
        )
    }

    /// Hand connected TCP sockets to the MIH-User (at most [`MAX_FDS`]
    /// per call; more are sent in several datagrams). The caller closes
    /// its own descriptors afterwards and must not use them again.
    ///
    /// The MIH-User's queue holds only `net.unix.max_dgram_qlen` datagrams
    /// (10 by default): when many UEs are exported at once it can be full
    /// for a moment, and the send is retried (waits from 100 µs, doubling
    /// up to 5 ms) for at most [`GIVE_PATIENCE`] before `WouldBlock` is
    /// returned.
    pub fn give(&self, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        for chunk in fds.chunks(MAX_FDS) {
            let raw: Vec<RawFd> = chunk.iter().map(|f| f.as_raw_fd()).collect();
            let start = Instant::now();
            let mut wait = Duration::from_micros(100);
            loop {
                match send(&self.sock, &self.server, "GIVE", &raw) {
                    Err(e)
                        if e.kind() == io::ErrorKind::WouldBlock
                            && start.elapsed() < GIVE_PATIENCE =>
                    {
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_millis(5));
                    }
                    r => {
                        r?;
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// One socket from a `TAKE`, if one is queued (`WouldBlock` if not).
    /// Malformed datagrams are skipped (their descriptors closed).
    pub fn try_take(&self) -> io::Result<OwnedFd> {
        loop {
            let mut d = recv(&self.sock)?;
            if d.text == "TAKE" && d.fds.len() == 1 && !d.truncated {
                return Ok(d.fds.remove(0));
            }
            tracing::warn!(text = %d.text.escape_debug(), fds = d.fds.len(), "hand-off: unexpected datagram ignored");
        }
    }
}

impl AsRawFd for HandoffClient {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl AsFd for HandoffClient {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// A hook run with the UE's address; `Err` is a reason.
pub type Hook = Arc<dyn Fn(IpAddr) -> Result<(), String> + Send + Sync>;

/// The network actions around a migration.
#[derive(Clone, Default)]
pub struct Hooks {
    /// Source, before freezing the UE's sockets: stop the UE's packets
    /// from reaching this host's kernel (which would answer them with a
    /// RST once the socket is gone), e.g. a blackhole route towards the
    /// service on the UE's path. A hold on the UE's path ends with the
    /// destination's path switch; on a rollback the source's own path
    /// switch ends it.
    ///
    /// A blackhole route *at the source towards the UE* is not a usable
    /// hold: rebuilding a socket there after a rollback connects (in
    /// repair mode) through the route lookup, and a blackhole route makes
    /// that connect fail with EINVAL.
    pub hold: Option<Hook>,
    /// Source, after a commit, a restore or a failed export. When it is
    /// not set, a failed export undoes the hold with the path switch
    /// (back to this host).
    pub release: Option<Hook>,
    /// Destination (import) and source (restore), after the sockets are
    /// rebuilt and before they leave repair mode: make the UE's path to
    /// the service lead to this host.
    pub path_switch: Option<Hook>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("hold", &self.hold.is_some())
            .field("release", &self.release.is_some())
            .field("path_switch", &self.path_switch.is_some())
            .finish()
    }
}

type Key = (SocketAddr, SocketAddr);

/// `TCP_REPAIR` sessions whose sockets come from and go back to the
/// services over a [`HandoffServer`] (the daemon's `sessions.mode =
/// "tcp_repair"`).
///
/// * export: read the hand-off queue (the services' `GIVE`s), run the
///   hold hook, freeze and dump. On failure everything is undone: the
///   sockets go back to the services and the hold is released.
/// * restore (rollback at the source): rebuild (path switch hook before
///   leaving repair mode), hand the sockets back, release the hold.
/// * release (commit at the source): release the hold.
/// * import: rebuild (path switch hook) and keep the sockets until the
///   commit, which hands them to the service; a discard closes them in
///   repair mode.
///
/// With a journal ([`HandoffSessions::with_journal`]), the export writes
/// the attempt's entry durably after the freeze and before the close, and
/// the entry follows the migration: `sending` marks it sent, `release`
/// marks it committed (before the hold is released) and removes it,
/// `rolling_back`/`restore` mark it rolled back and remove it once the
/// sessions are rebuilt and handed back (see `crate::sessions::journal`).
///
/// A socket that cannot be handed to its service (none announced its
/// address yet: a service reconnecting after a restart) stays here and is
/// handed over when a `HELO` arrives.
pub struct HandoffSessions {
    repair: TcpRepair,
    server: HandoffServer,
    hooks: Hooks,
    imported: Mutex<HashMap<IpAddr, Vec<Key>>>,
    journal: Option<(Arc<Journal>, HookSpecs)>,
    /// The journal entry of each UE's export under way.
    entries: Mutex<HashMap<IpAddr, EntryHandle>>,
    /// The journal entry of each UE's import under way (destination).
    incoming: Mutex<HashMap<IpAddr, EntryHandle>>,
    /// Sockets kept here until their service announces itself.
    undelivered: Mutex<Vec<Key>>,
    /// Sockets a service gave (`GIVE`) that no export has taken yet, and
    /// since when: one the export does not take within `orphan_after`
    /// (its export had timed out and rolled back before the service
    /// answered) goes back to its service.
    given: Mutex<HashMap<Key, Instant>>,
    orphan_after: Duration,
    /// Held while the hand-off queue is read.
    reading: Mutex<()>,
}

impl std::fmt::Debug for HandoffSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandoffSessions")
            .field("server", &self.server)
            .field("hooks", &self.hooks)
            .finish_non_exhaustive()
    }
}

impl HandoffSessions {
    /// Sessions handed off over `server`, with `hooks`.
    pub fn new(server: HandoffServer, hooks: Hooks) -> HandoffSessions {
        let mut repair = TcpRepair::new();
        if let Some(h) = hooks.path_switch.clone() {
            repair = repair.with_resume_hook(move |ue| h(ue));
        }
        HandoffSessions {
            repair,
            server,
            hooks,
            imported: Mutex::new(HashMap::new()),
            journal: None,
            entries: Mutex::new(HashMap::new()),
            incoming: Mutex::new(HashMap::new()),
            undelivered: Mutex::new(Vec::new()),
            given: Mutex::new(HashMap::new()),
            orphan_after: DEFAULT_ORPHAN_AFTER,
            reading: Mutex::new(()),
        }
    }

    /// How long a socket a service gave may wait for its UE's export
    /// before it goes back to the service (default 2 s; the daemon uses
    /// its export timeout plus 500 ms: no export that is still under way
    /// waits longer for its services).
    pub fn with_orphan_timeout(mut self, d: Duration) -> HandoffSessions {
        self.orphan_after = d;
        self
    }

    /// Hand back the sockets given longer than the orphan timeout ago that
    /// no export took (their export ended before the service gave them).
    /// Returns how many went back.
    pub fn return_orphans(&self) -> usize {
        let now = Instant::now();
        let old: Vec<Key> = {
            let mut g = lock(&self.given);
            let old: Vec<Key> = g
                .iter()
                .filter(|(_, t)| now.duration_since(**t) >= self.orphan_after)
                .map(|(k, _)| *k)
                .collect();
            for k in &old {
                g.remove(k);
            }
            old
        };
        let mut n = 0;
        for (local, remote) in old {
            if let Some(fd) = self.repair.take(local, remote) {
                tracing::warn!(%local, %remote, "hand-off: a socket given for an export that had ended goes back to its service");
                self.server.lock().stats.orphans_returned += 1;
                self.deliver(fd);
                n += 1;
            }
        }
        n
    }

    /// Journal every export and every import in `journal`; `specs`
    /// describe the hooks (what lays the hold and what undoes it),
    /// recorded with each entry.
    pub fn with_journal(mut self, journal: Arc<Journal>, specs: HookSpecs) -> HandoffSessions {
        self.journal = Some((journal, specs));
        self
    }

    /// The journal, if exports are journalled.
    pub fn journal(&self) -> Option<&Arc<Journal>> {
        self.journal.as_ref().map(|(j, _)| j)
    }

    /// The hooks.
    pub fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    /// Whether a service announced itself for sockets whose local address
    /// is `local`.
    pub fn has_service_for(&self, local: SocketAddr) -> bool {
        self.server.has_service_for(local)
    }

    /// Sockets kept here until their service announces itself.
    pub fn undelivered(&self) -> usize {
        lock(&self.undelivered).len()
    }

    /// Recovery at a restart: rebuild `sessions` of `ue` here (the sockets
    /// a previous process exported), with `path_switch` run before they
    /// leave repair mode, and hand them to their services (kept here until
    /// the service announces itself). A session whose connection already
    /// exists here counts as restored. One result per session.
    pub fn restore_recovered(
        &self,
        ue: IpAddr,
        sessions: &[TcpSessionContext],
        path_switch: Option<&Hook>,
    ) -> Vec<Result<(), SessionError>> {
        self.poll();
        let out = self
            .repair
            .restore_with(ue, sessions, path_switch.map(|h| &**h as _));
        self.give_back(ue);
        out
    }

    /// Recovery at a restart, at a destination: rebuild the sessions of a
    /// journal entry that says [`Phase::Imported`] (or
    /// [`Phase::Resuming`]) frozen, as the import before the crash did,
    /// and keep the entry for the attempt's end: [`SessionImporter::commit`]
    /// resumes them (path switch first), [`SessionImporter::discard`]
    /// drops them. One result per session; the entry is removed (and the
    /// sessions dropped) when none could be rebuilt.
    pub fn recover_import(
        &self,
        entry: &journal::Entry,
        handle: EntryHandle,
    ) -> Vec<Result<(), SessionError>> {
        let r = &entry.record;
        let ue = r.ue;
        let out = self.repair.import(ue, &r.sessions);
        let keys: Vec<Key> = r
            .sessions
            .iter()
            .zip(&out)
            .filter(|(_, res)| res.is_ok())
            .map(|(c, _)| (c.local, c.remote))
            .collect();
        if keys.is_empty() {
            if let Some((j, _)) = &self.journal {
                if let Err(e) = j.remove(handle) {
                    tracing::error!(%ue, "session journal: {e}");
                }
            }
            return out;
        }
        lock(&self.imported).entry(ue).or_default().extend(keys);
        if let Some(old) = lock(&self.incoming).insert(ue, handle) {
            self.remove_handle(ue, old);
        }
        out
    }

    fn remove_handle(&self, ue: IpAddr, h: EntryHandle) {
        if let Some((j, _)) = &self.journal {
            if let Err(e) = j.remove(h) {
                tracing::error!(%ue, "session journal: {e}");
            }
        }
    }

    /// Write the entry of an import (the sessions rebuilt frozen, before
    /// the CTDR). Only the sessions that were rebuilt are recorded.
    fn journal_import(
        &self,
        ue: IpAddr,
        attempt: &ExportAttempt,
        sessions: &[TcpSessionContext],
    ) -> Result<(), String> {
        self.journal_create(ue, attempt, sessions, Phase::Imported, &self.incoming)
    }

    /// Write an entry of `ue` in `phase` and keep its handle in `table`;
    /// an entry still there for the UE belonged to an attempt that ended
    /// without its clean-up (abandoned): it is stale, and removed.
    fn journal_create(
        &self,
        ue: IpAddr,
        attempt: &ExportAttempt,
        sessions: &[TcpSessionContext],
        phase: Phase,
        table: &Mutex<HashMap<IpAddr, EntryHandle>>,
    ) -> Result<(), String> {
        let Some((j, specs)) = &self.journal else {
            return Ok(());
        };
        let rec = Record {
            created_unix_ms: journal::unix_ms(),
            handover_id: attempt.handover_id.0,
            attempt: attempt.attempt,
            ue,
            peer: attempt.peer.clone(),
            services: attempt.services.clone(),
            hooks: specs.clone(),
            sessions: sessions.to_vec(),
            x2_trigger: attempt.x2_trigger,
        };
        let h = j.create(&rec, phase).map_err(|e| {
            tracing::error!(%ue, "session journal: {e}");
            format!("session journal: {e}")
        })?;
        if let Some(old) = lock(table).insert(ue, h) {
            tracing::warn!(%ue, entry = old.name(), phase = phase.label(), "session journal: stale entry replaced");
            self.remove_handle(ue, old);
        }
        Ok(())
    }

    fn entry_phase(
        &self,
        ue: IpAddr,
        phase: Phase,
        peer_refused: bool,
    ) -> Result<(), SessionError> {
        let mut entries = lock(&self.entries);
        let Some(h) = entries.get_mut(&ue) else {
            return Ok(());
        };
        h.set_phase(phase, peer_refused).map_err(|e| {
            tracing::error!(%ue, phase = phase.label(), "session journal: {e}");
            SessionError::Other(format!("session journal: {e}"))
        })
    }

    fn remove_entry(&self, ue: IpAddr) {
        let h = lock(&self.entries).remove(&ue);
        if let Some(h) = h {
            self.remove_handle(ue, h);
        }
    }

    /// Write the entry of an export (after the freeze, before the close).
    fn journal_export(
        &self,
        ue: IpAddr,
        attempt: &ExportAttempt,
        sessions: &[TcpSessionContext],
    ) -> Result<(), String> {
        self.journal_create(ue, attempt, sessions, Phase::Exported, &self.entries)?;
        journal::kill_point("exported");
        Ok(())
    }

    /// The hand-off server's counters.
    pub fn stats(&self) -> HandoffStats {
        self.server.stats()
    }

    /// The socket table.
    pub fn repair(&self) -> &TcpRepair {
        &self.repair
    }

    /// Read the hand-off queue now (also done before every export and
    /// import); a `HELO` hands over the sockets kept for that service.
    pub fn poll(&self) -> usize {
        // One reader at a time: a datagram another reader has taken from
        // the queue but not yet put in the socket table would be missing
        // for an export that reads the queue meanwhile.
        let _reading = lock(&self.reading);
        let hellos = self.server.stats().hellos;
        let keys = self.server.poll_keys(&self.repair);
        if !keys.is_empty() {
            let now = Instant::now();
            let mut g = lock(&self.given);
            for k in &keys {
                // Bounded by the socket table itself; a flood of GIVEs is
                // a flood of descriptors the service sent.
                g.insert(*k, now);
            }
        }
        if self.server.stats().hellos != hellos && !lock(&self.undelivered).is_empty() {
            self.deliver_kept();
        }
        keys.len()
    }

    /// Read the hand-off queue whenever a datagram arrives, until the
    /// process ends. The daemon runs this: a Unix datagram socket queues
    /// only a few datagrams (`net.unix.max_dgram_qlen`, 10 by default), so
    /// without it the services' periodic `HELO`s fill the queue of an idle
    /// MIH-User and the next `GIVE` fails with EAGAIN.
    pub async fn run(self: std::sync::Arc<Self>) -> io::Result<()> {
        use tokio::io::unix::AsyncFd;
        let fd = self.server.sock.as_fd().try_clone_to_owned()?;
        // SAFETY: `fd` is an owned duplicate, closed only when `afd` drops.
        let afd = unsafe { AsyncFd::register(fd) }.map_err(|e| io::Error::other(e.to_string()))?;
        let mut sweep = tokio::time::interval(ORPHAN_SWEEP);
        loop {
            tokio::select! {
                ready = afd.readable() => {
                    let mut ready = ready?;
                    self.poll();
                    ready.clear_ready();
                }
                _ = sweep.tick() => {}
            }
            if !lock(&self.given).is_empty() {
                self.return_orphans();
            }
        }
    }

    fn deliver(&self, fd: OwnedFd) {
        if let Err((e, fd)) = self.server.deliver(fd) {
            tracing::warn!("socket kept here until its service announces itself: {e}");
            if let Ok(key) = self.repair.adopt(fd) {
                let mut u = lock(&self.undelivered);
                if !u.contains(&key) && u.len() < MAX_UNDELIVERED {
                    u.push(key);
                }
            }
        }
    }

    /// Hand the sockets kept here to the services that announced
    /// themselves since.
    fn deliver_kept(&self) {
        let keys = std::mem::take(&mut *lock(&self.undelivered));
        let mut left = Vec::new();
        for key in keys {
            if !self.server.has_service_for(key.0) {
                left.push(key);
                continue;
            }
            if let Some(fd) = self.repair.take(key.0, key.1) {
                match self.server.deliver(fd) {
                    Ok(()) => {
                        tracing::info!(local = %key.0, remote = %key.1, "kept socket handed to its service")
                    }
                    Err((e, fd)) => {
                        tracing::warn!(local = %key.0, remote = %key.1, "socket still kept here: {e}");
                        let _ = self.repair.adopt(fd);
                        left.push(key);
                    }
                }
            }
        }
        lock(&self.undelivered).extend(left);
    }

    /// Hand every socket of `ue` in the table back to its service.
    fn give_back(&self, ue: IpAddr) {
        for fd in self.repair.take_all(ue) {
            self.deliver(fd);
        }
    }

    fn release_hold(&self, ue: IpAddr) {
        if let Some(h) = &self.hooks.release {
            if let Err(e) = h(ue) {
                tracing::warn!(%ue, "flow hold release failed: {e}");
            }
        }
    }

    /// Nothing was frozen (or everything was put back without a rebuild):
    /// end the hold, with the release hook or else the path switch.
    fn undo_hold(&self, ue: IpAddr) {
        if self.hooks.hold.is_none() {
            return;
        }
        let h = self
            .hooks
            .release
            .as_ref()
            .or(self.hooks.path_switch.as_ref());
        if let Some(h) = h {
            if let Err(e) = h(ue) {
                tracing::warn!(%ue, "undoing the flow hold failed: {e}");
            }
        }
    }
}

impl SessionExporter for HandoffSessions {
    fn export(
        &self,
        ue: IpAddr,
        connections: &[Connection],
    ) -> Result<Vec<TcpSessionContext>, SessionError> {
        self.export_attempt(ue, connections, &ExportAttempt::default())
    }

    fn export_attempt(
        &self,
        ue: IpAddr,
        connections: &[Connection],
        attempt: &ExportAttempt,
    ) -> Result<Vec<TcpSessionContext>, SessionError> {
        self.poll();
        // The export takes every socket the UE's services gave for it,
        // also one whose connection they have not registered yet (a
        // service registers a new connection asynchronously: a socket left
        // out would stay live here while the UE's path leaves, and the
        // destination's kernel would reset it).
        let mut all: Vec<Connection> = connections.to_vec();
        lock(&self.given).retain(|(local, remote), _| {
            if remote.ip().to_canonical() != ue.to_canonical() {
                return true;
            }
            if !all
                .iter()
                .any(|c| c.server == *local && c.client == *remote)
            {
                all.push(Connection {
                    client: *remote,
                    server: *local,
                });
            }
            false
        });
        let connections = &all[..];
        let unacked = self.repair.drain(ue, connections, DRAIN_LIMIT);
        if unacked > 0 {
            tracing::debug!(%ue, unacked, "exporting with data in flight");
        }
        if let Some(h) = &self.hooks.hold {
            if let Err(e) = h(ue) {
                self.give_back(ue);
                // A partial hold is undone too.
                self.undo_hold(ue);
                return Err(SessionError::Other(format!("flow hold failed: {e}")));
            }
        }
        let journalled = |s: &[TcpSessionContext]| self.journal_export(ue, attempt, s);
        match self.repair.export_then(ue, connections, journalled) {
            Ok(s) => Ok(s),
            Err(e) => {
                self.give_back(ue);
                self.undo_hold(ue);
                Err(e)
            }
        }
    }

    fn sending(&self, ue: IpAddr) -> Result<(), SessionError> {
        self.entry_phase(ue, Phase::Sent, false)?;
        journal::kill_point("sent");
        Ok(())
    }

    fn rolling_back(&self, ue: IpAddr, peer_refused: bool) {
        // Not fatal: without it the entry says sent, and a recovery asks
        // the destination.
        let _ = self.entry_phase(ue, Phase::RolledBack, peer_refused);
    }

    fn restore(&self, ue: IpAddr, sessions: &[TcpSessionContext]) -> Result<(), SessionError> {
        let rolled_back = lock(&self.entries)
            .get(&ue)
            .is_some_and(|h| h.phase() == Phase::RolledBack);
        if !rolled_back {
            let _ = self.entry_phase(ue, Phase::RolledBack, false);
        }
        let r = self.repair.restore(ue, sessions);
        self.give_back(ue);
        self.release_hold(ue);
        // Rebuilt and handed back (or lost for good): the entry is done.
        self.remove_entry(ue);
        r
    }

    fn release(&self, ue: IpAddr) {
        journal::kill_point("before_commit");
        // Durable before the services hear of the commit and before the
        // destination is told (the actions that follow this one).
        let _ = self.entry_phase(ue, Phase::Committed, false);
        journal::kill_point("committed");
        self.repair.release(ue);
        self.release_hold(ue);
        self.remove_entry(ue);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Most sockets kept here for a service that has not announced itself.
const MAX_UNDELIVERED: usize = 4096;
/// [`HandoffSessions::with_orphan_timeout`]'s default.
const DEFAULT_ORPHAN_AFTER: Duration = Duration::from_secs(2);
/// How often [`HandoffSessions::run`] looks for orphaned sockets.
const ORPHAN_SWEEP: Duration = Duration::from_millis(100);

impl SessionImporter for HandoffSessions {
    fn import(&self, ue: IpAddr, sessions: &[TcpSessionContext]) -> Vec<Result<(), SessionError>> {
        self.import_attempt(ue, sessions, &ExportAttempt::default())
    }

    fn import_attempt(
        &self,
        ue: IpAddr,
        sessions: &[TcpSessionContext],
        attempt: &ExportAttempt,
    ) -> Vec<Result<(), SessionError>> {
        self.poll();
        // A destination killed here has its contexts and no CTDR sent: the
        // source must roll back at its CXTP timeout.
        journal::kill_point("import");
        let out = self.repair.import(ue, sessions);
        let (keys, rebuilt): (Vec<Key>, Vec<TcpSessionContext>) = sessions
            .iter()
            .zip(&out)
            .filter(|(_, r)| r.is_ok())
            .map(|(c, _)| ((c.local, c.remote), c.clone()))
            .unzip();
        if !rebuilt.is_empty() {
            // Durable before the CTDR: once the source reads a success it
            // commits, and these frozen sockets are then the only copy.
            if let Err(e) = self.journal_import(ue, attempt, &rebuilt) {
                self.repair.discard(ue);
                return sessions
                    .iter()
                    .map(|_| Err(SessionError::Other(e.clone())))
                    .collect();
            }
        }
        lock(&self.imported).entry(ue).or_default().extend(keys);
        journal::kill_point("imported");
        out
    }

    fn discard(&self, ue: IpAddr) {
        lock(&self.imported).remove(&ue);
        self.repair.discard(ue);
        if let Some(h) = lock(&self.incoming).remove(&ue) {
            self.remove_handle(ue, h);
        }
    }

    fn commit(&self, ue: IpAddr) {
        // The source committed (its Complete(Success) is here), or the
        // complete timeout passed: durable before the path switch, so that
        // a restart finishes this commit instead of waiting again.
        journal::kill_point("dest_commit");
        let handle = lock(&self.incoming).remove(&ue);
        let handle = handle.map(|mut h| {
            if let Err(e) = h.set_phase(Phase::Resuming, false) {
                tracing::error!(%ue, "session journal: {e}");
            }
            h
        });
        journal::kill_point("resuming");
        self.repair.commit(ue);
        let keys = self
            .imported
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ue)
            .unwrap_or_default();
        self.poll();
        for (local, remote) in keys {
            if let Some(fd) = self.repair.take(local, remote) {
                self.deliver(fd);
            }
        }
        if let Some(h) = handle {
            self.remove_handle(ue, h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn give_adopts_and_take_returns_over_loopback() {
        let d = dir();
        let path = d.path().join("h.sock");
        let server = HandoffServer::bind(&path).unwrap();
        let repair = TcpRepair::new();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let listen = l.local_addr().unwrap();
        let client = HandoffClient::connect(&path, listen).unwrap();
        let c = std::net::TcpStream::connect(listen).unwrap();
        let (s, _) = l.accept().unwrap();
        client.give(&[s.as_fd()]).unwrap();
        drop(s);
        assert_eq!(server.poll(&repair), 1);
        assert_eq!(server.stats().hellos, 1);
        let key = (listen, c.local_addr().unwrap());
        let fd = repair.take(key.0, key.1).expect("adopted");
        server.deliver(fd).map_err(|e| e.0).unwrap();
        let back = std::net::TcpStream::from(client.try_take().unwrap());
        assert_eq!(back.peer_addr().unwrap(), c.local_addr().unwrap());
        // The socket still works end to end.
        use std::io::{Read, Write};
        (&back).write_all(b"hi").unwrap();
        let mut b = [0u8; 2];
        (&c).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hi");
        assert_eq!(
            client.try_take().unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }

    #[test]
    fn garbage_is_counted_and_descriptors_closed() {
        let d = dir();
        let path = d.path().join("h.sock");
        let server = HandoffServer::bind(&path).unwrap();
        let repair = TcpRepair::new();
        let raw = UnixDatagram::unbound().unwrap();
        for g in [&b"HELO nonsense"[..], b"XYZZY", b"", b"GIVE", &[0xff; 300]] {
            raw.send_to(g, &path).unwrap();
        }
        // A GIVE of a descriptor that is not a TCP socket.
        let f = std::fs::File::open("/dev/null").unwrap();
        let to = UnixAddr::new(&path).unwrap();
        send(&raw, &to, "GIVE", &[f.as_raw_fd()]).unwrap();
        // HELO from an unbound sender: no address to answer.
        raw.send_to(b"HELO 127.0.0.1:1", &path).unwrap();
        assert_eq!(server.poll(&repair), 0);
        assert_eq!(server.stats().rejected, 7);
        assert_eq!(server.stats().hellos, 0);
    }

    #[test]
    fn announced_services_are_bounded() {
        let d = dir();
        let path = d.path().join("h.sock");
        let server = HandoffServer::bind(&path).unwrap();
        let repair = TcpRepair::new();
        let client = HandoffClient::connect(&path, "127.0.0.1:1".parse().unwrap()).unwrap();
        let to = UnixAddr::new(&path).unwrap();
        let mut sent = 1;
        for port in 2..=(MAX_SERVICES as u16 + 10) {
            send(&client.sock, &to, &format!("HELO 127.0.0.1:{port}"), &[]).unwrap();
            sent += 1;
            // A Unix datagram queue holds few datagrams (max_dgram_qlen).
            server.poll(&repair);
        }
        server.poll(&repair);
        let st = server.stats();
        assert_eq!(st.hellos, MAX_SERVICES as u64);
        assert_eq!(st.rejected, sent - MAX_SERVICES as u64);
        // A known address may still re-announce itself.
        client.hello().unwrap();
        server.poll(&repair);
        assert_eq!(server.stats().hellos, MAX_SERVICES as u64 + 1);
    }

    #[tokio::test]
    async fn an_idle_server_keeps_its_queue_drained() {
        let d = dir();
        let path = d.path().join("h.sock");
        let server = HandoffServer::bind(&path).unwrap();
        let sessions = Arc::new(HandoffSessions::new(server, Hooks::default()));
        let runner = tokio::spawn(sessions.clone().run());
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = HandoffClient::connect(&path, l.local_addr().unwrap()).unwrap();
        // Far more HELOs than the kernel queues for an unread socket.
        for _ in 0..100 {
            client.hello().unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        client.give(&[s.as_fd()]).unwrap();
        for _ in 0..200 {
            if sessions.stats().adopted == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(sessions.stats().adopted, 1);
        assert_eq!(sessions.stats().hellos, 101);
        runner.abort();
    }

    #[test]
    fn a_socket_given_after_its_export_ended_goes_back() {
        let d = dir();
        let path = d.path().join("h.sock");
        let sessions = HandoffSessions::new(HandoffServer::bind(&path).unwrap(), Hooks::default())
            .with_orphan_timeout(Duration::from_millis(50));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = HandoffClient::connect(&path, l.local_addr().unwrap()).unwrap();
        // The service gives a socket, but no export comes for it (the
        // export timed out and rolled back before the service answered).
        let give = || {
            let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (s, _) = l.accept().unwrap();
            client.give(&[s.as_fd()]).unwrap();
            c
        };
        let c = give();
        assert_eq!(sessions.poll(), 1);
        // Not yet: an export may still take it.
        assert_eq!(sessions.return_orphans(), 0);
        assert_eq!(
            client.try_take().unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(sessions.return_orphans(), 1);
        assert_eq!(sessions.stats().orphans_returned, 1);
        let back = std::net::TcpStream::from(client.try_take().unwrap());
        assert_eq!(back.peer_addr().unwrap(), c.local_addr().unwrap());
        assert_eq!(sessions.return_orphans(), 0);

        // A socket of a UE whose export came is that export's.
        let c2 = give();
        sessions.poll();
        let ue = c2.local_addr().unwrap().ip();
        // Its service has not registered the connection: the export takes
        // it anyway (it was given for this UE), or fails without CAP_NET_ADMIN.
        let r = SessionExporter::export(&sessions, ue, &[]);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let s = r.expect("export as root");
            assert_eq!(s.len(), 1);
            assert_eq!(s[0].remote, c2.local_addr().unwrap());
        }
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(sessions.return_orphans(), 0);
    }

    #[test]
    fn deliver_without_a_service_hands_the_socket_back() {
        let d = dir();
        let server = HandoffServer::bind(&d.path().join("h.sock")).unwrap();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        let (e, _fd) = server.deliver(OwnedFd::from(s)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(server.stats().undeliverable, 1);
    }

    #[test]
    fn unspecified_listen_address_matches_by_port() {
        let a = UnixAddr::new_abstract(b"x").unwrap();
        let mut m = HashMap::new();
        m.insert("0.0.0.0:8080".parse().unwrap(), a);
        assert!(service_for(&m, "10.0.0.1:8080".parse().unwrap()).is_some());
        assert!(service_for(&m, "10.0.0.1:8081".parse().unwrap()).is_none());
    }
}
