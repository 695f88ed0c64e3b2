//! Live TCP session export and import with the kernel's `TCP_REPAIR`
//! (Linux, needs `CAP_NET_ADMIN`).
//!
//! [`dump`] freezes a connected socket (`TCP_REPAIR=1`), reads its state
//! into a [`TcpSessionContext`] and closes it while still in repair mode,
//! so the kernel sends neither FIN nor RST. [`rebuild`] creates a socket
//! from such a state without a handshake and returns it, so a service can
//! adopt it. The sequence and its pitfalls are described in the crate's
//! README ("TCP session migration").
//!
//! [`TcpRepair`] implements [`SessionExporter`] and [`SessionImporter`] on
//! top of these: services hand it the sockets of their connections
//! ([`TcpRepair::adopt`]) and take rebuilt sockets back
//! ([`TcpRepair::take`]).

use std::collections::HashMap;
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cxtp::profile::TcpSessionContext;
use socket2::{Domain, SockAddr, Socket, Type};

use crate::api::Connection;
use crate::orchestrator::sessions::{SessionError, SessionExporter, SessionImporter};

// Kernel ABI (include/uapi/linux/tcp.h, sockios.h); defined here so the
// crate does not depend on which of them a given libc release exports.
const TCP_REPAIR: libc::c_int = 19;
const TCP_REPAIR_QUEUE: libc::c_int = 20;
const TCP_QUEUE_SEQ: libc::c_int = 21;
const TCP_REPAIR_OPTIONS: libc::c_int = 22;
const TCP_TIMESTAMP: libc::c_int = 24;
const TCP_REPAIR_WINDOW: libc::c_int = 29;
const TCP_REPAIR_ON: libc::c_int = 1;
const TCP_REPAIR_OFF: libc::c_int = 0;
const TCP_RECV_QUEUE: libc::c_int = 1;
const TCP_SEND_QUEUE: libc::c_int = 2;
const TCPOPT_MAXSEG: u32 = 2;
const TCPOPT_WINDOW: u32 = 3;
const TCPOPT_SACK_PERM: u32 = 4;
const TCPOPT_TIMESTAMP: u32 = 8;
const TCPI_OPT_TIMESTAMPS: u8 = 1;
const TCPI_OPT_SACK: u8 = 2;
const TCPI_OPT_WSCALE: u8 = 4;
const SIOCINQ: libc::c_ulong = 0x541B; // FIONREAD
const SIOCOUTQ: libc::c_ulong = 0x5411; // TIOCOUTQ
const SIOCOUTQNSD: libc::c_ulong = 0x894B;
const TCP_ESTABLISHED: u8 = 1;
/// Largest queue this module dumps or refills (a sanity bound).
const MAX_QUEUE: usize = 64 << 20;

/// `struct tcp_repair_opt`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct TcpRepairOpt {
    opt_code: u32,
    opt_val: u32,
}

/// `struct tcp_repair_window`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct TcpRepairWindow {
    snd_wl1: u32,
    snd_wnd: u32,
    max_window: u32,
    rcv_wnd: u32,
    rcv_wup: u32,
}

/// Why a `TCP_REPAIR` operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TcpRepairError {
    /// The process lacks `CAP_NET_ADMIN` (the kernel answered EPERM to
    /// `TCP_REPAIR`).
    #[error("TCP_REPAIR needs CAP_NET_ADMIN (run as root)")]
    NeedsCapNetAdmin,
    /// A system call failed.
    #[error("{op}: {source}")]
    Io {
        /// The operation (e.g. `setsockopt(TCP_REPAIR_QUEUE)`).
        op: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The socket or the state is not usable (not established, queue sizes
    /// inconsistent, ...).
    #[error("{0}")]
    Invalid(String),
}

impl TcpRepairError {
    /// Map an error of the `TCP_REPAIR` switch: EPERM means the capability
    /// is missing.
    pub fn from_repair_switch(e: io::Error) -> Self {
        if e.raw_os_error() == Some(libc::EPERM) {
            TcpRepairError::NeedsCapNetAdmin
        } else {
            TcpRepairError::Io {
                op: "setsockopt(TCP_REPAIR)",
                source: e,
            }
        }
    }
}

type Result<T, E = TcpRepairError> = std::result::Result<T, E>;

fn io_err(op: &'static str) -> impl FnOnce(io::Error) -> TcpRepairError {
    move |source| TcpRepairError::Io { op, source }
}

/// `setsockopt` with a plain-old-data value.
fn setsockopt<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: `val` points to `size_of::<T>()` readable bytes for the
    // duration of the call; the kernel only reads them.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `setsockopt` with an array of plain-old-data values.
fn setsockopt_slice<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    val: &[T],
) -> io::Result<()> {
    let len = std::mem::size_of_val(val);
    // SAFETY: `val` is `len` readable bytes; the kernel only reads them.
    let r =
        unsafe { libc::setsockopt(fd, level, name, val.as_ptr().cast(), len as libc::socklen_t) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `getsockopt` into a plain-old-data value (`T: Default` so any bytes
/// the kernel leaves untouched are defined). Returns the length written.
fn getsockopt<T: Copy + Default>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<(T, usize)> {
    let mut val = T::default();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: `val` is `len` writable bytes; the kernel writes at most
    // `len` bytes and updates `len`.
    let r = unsafe { libc::getsockopt(fd, level, name, (&mut val as *mut T).cast(), &mut len) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok((val, (len as usize).min(size_of::<T>())))
    }
}

/// An `ioctl` returning an `int` (SIOCINQ, SIOCOUTQ, SIOCOUTQNSD).
fn ioctl_int(fd: RawFd, req: libc::c_ulong) -> io::Result<usize> {
    let mut v: libc::c_int = 0;
    // SAFETY: these requests write one `int` to the pointer.
    let r = unsafe { libc::ioctl(fd, req as _, &mut v as *mut libc::c_int) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    usize::try_from(v).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "negative length"))
}

/// `recv(MSG_PEEK)` of exactly `len` bytes of the selected repair queue.
fn peek_queue(fd: RawFd, len: usize) -> Result<Bytes> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    if len > MAX_QUEUE {
        return Err(TcpRepairError::Invalid(format!(
            "queue of {len} bytes too large"
        )));
    }
    let mut buf = vec![0u8; len];
    // SAFETY: `buf` is `len` writable bytes; recv writes at most `len`.
    let r = unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr().cast(),
            len,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if r < 0 {
        return Err(io_err("recv(MSG_PEEK)")(io::Error::last_os_error()));
    }
    if r as usize != len {
        return Err(TcpRepairError::Invalid(format!(
            "peeked {r} of {len} queued bytes"
        )));
    }
    Ok(buf.into())
}

/// `send` all of `data` (blocking socket) on the selected repair queue,
/// or normally outside repair mode.
fn send_all(fd: RawFd, mut data: &[u8], op: &'static str) -> Result<()> {
    while !data.is_empty() {
        // SAFETY: `data` is `data.len()` readable bytes.
        let r = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(io_err(op)(e));
        }
        if r == 0 {
            return Err(TcpRepairError::Invalid(format!(
                "{op}: queue accepted nothing"
            )));
        }
        data = &data[(r as usize).min(data.len())..];
    }
    Ok(())
}

/// Whether this process may use `TCP_REPAIR` (switches repair mode on
/// for a fresh, unconnected socket): `Err(NeedsCapNetAdmin)` without
/// CAP_NET_ADMIN.
pub fn check_capability() -> Result<()> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(|source| TcpRepairError::Io {
        op: "socket",
        source,
    })?;
    set_repair(s.as_raw_fd(), true)
}

fn set_repair(fd: RawFd, on: bool) -> Result<()> {
    let v = if on { TCP_REPAIR_ON } else { TCP_REPAIR_OFF };
    setsockopt(fd, libc::IPPROTO_TCP, TCP_REPAIR, &v).map_err(TcpRepairError::from_repair_switch)
}

fn select_queue(fd: RawFd, q: libc::c_int) -> Result<()> {
    setsockopt(fd, libc::IPPROTO_TCP, TCP_REPAIR_QUEUE, &q)
        .map_err(io_err("setsockopt(TCP_REPAIR_QUEUE)"))
}

/// Timings of one dump or rebuild (information for logs and tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    /// `TCP_REPAIR=1` (dump) or socket creation up to connect (rebuild).
    pub freeze: Duration,
    /// Reading (dump) or refilling (rebuild) state and queues.
    pub queues: Duration,
    /// close (dump) or leaving repair mode and sending unsent bytes
    /// (rebuild).
    pub finish: Duration,
    /// The `before_resume` hook (rebuild only: the path switch).
    pub path_switch: Duration,
}

/// Freeze `sock`, read its state and close it in repair mode (no FIN, no
/// RST). `sock` must be a connected TCP socket whose application has
/// stopped using it; the caller should hold the peer's packets away from
/// this host from now on until the socket is rebuilt somewhere. On an
/// error, the socket is taken out of repair mode again (if it was frozen)
/// and given back as `Err((error, Some(sock)))`. [`freeze`] does the same
/// without the close.
pub fn dump(
    sock: OwnedFd,
) -> Result<(TcpSessionContext, Timings), (TcpRepairError, Option<OwnedFd>)> {
    freeze(sock).map(Frozen::close)
}

/// A socket [`freeze`] froze: its state is read, it is still open, in
/// repair mode: it sends no data, FIN or RST of its own, but a segment
/// that still reaches it is processed as usual (measured on this kernel:
/// data is queued and acknowledged), which is why the flow hold comes
/// first and why [`Frozen::received_since`] exists.
#[derive(Debug)]
pub struct Frozen {
    sock: OwnedFd,
    ctx: TcpSessionContext,
    timings: Timings,
}

impl Frozen {
    /// Its state.
    pub fn context(&self) -> &TcpSessionContext {
        &self.ctx
    }

    /// Close it in repair mode: the kernel drops it silently (no FIN, no
    /// RST).
    pub fn close(self) -> (TcpSessionContext, Timings) {
        let t = Instant::now();
        drop(self.sock);
        let mut timings = self.timings;
        timings.finish = t.elapsed();
        (self.ctx, timings)
    }

    /// Octets the socket accepted (and so acknowledged to the peer) after
    /// its state was read: a segment that was already on its way when the
    /// flow hold was laid reaches the frozen socket, which takes it. 0 when
    /// nothing came (segments without data, pure ACKs, are harmless).
    pub fn received_since(&self) -> Result<u32> {
        let fd = self.sock.as_raw_fd();
        select_queue(fd, TCP_RECV_QUEUE)?;
        let r = getsockopt::<u32>(fd, libc::IPPROTO_TCP, TCP_QUEUE_SEQ)
            .map_err(io_err("getsockopt(TCP_QUEUE_SEQ)"));
        let _ = select_queue(fd, 0);
        Ok(r?.0.wrapping_sub(self.ctx.recv_seq))
    }

    /// Take it out of repair mode: it is live again, as it was.
    pub fn thaw(self) -> OwnedFd {
        let fd = self.sock.as_raw_fd();
        let _ = select_queue(fd, 0);
        let _ = set_repair(fd, false);
        self.sock
    }
}

/// Freeze `sock` (`TCP_REPAIR=1`) and read its state, keeping it open:
/// [`Frozen::close`] ends it silently, [`Frozen::thaw`] gives it back
/// live. On an error the socket is thawed and given back, as by [`dump`].
pub fn freeze(sock: OwnedFd) -> Result<Frozen, (TcpRepairError, Option<OwnedFd>)> {
    let t0 = Instant::now();
    let fd = sock.as_raw_fd();
    if let Err(e) = set_repair(fd, true) {
        return Err((e, Some(sock)));
    }
    let t1 = Instant::now();
    match dump_frozen(fd) {
        Ok(ctx) => Ok(Frozen {
            sock,
            ctx,
            timings: Timings {
                freeze: t1 - t0,
                queues: t1.elapsed(),
                finish: Duration::ZERO,
                path_switch: Duration::ZERO,
            },
        }),
        Err(e) => {
            let _ = select_queue(fd, 0);
            let _ = set_repair(fd, false);
            Err((e, Some(sock)))
        }
    }
}

fn dump_frozen(fd: RawFd) -> Result<TcpSessionContext> {
    // SAFETY: `fd` is a valid socket for the duration of this function
    // (owned by the caller); ManuallyDrop keeps us from closing it.
    let s = std::mem::ManuallyDrop::new(unsafe { Socket::from_raw_fd(fd) });
    let local = s
        .local_addr()
        .map_err(io_err("getsockname"))?
        .as_socket()
        .ok_or_else(|| TcpRepairError::Invalid("not an IP socket".into()))?;
    let remote = s
        .peer_addr()
        .map_err(io_err("getpeername"))?
        .as_socket()
        .ok_or_else(|| TcpRepairError::Invalid("not an IP socket".into()))?;

    // TCP_INFO: the first 7 bytes are state, ca_state, retransmits, probes,
    // backoff, options, snd_wscale:4|rcv_wscale:4.
    let (info, n) = getsockopt::<[u8; 8]>(fd, libc::IPPROTO_TCP, libc::TCP_INFO)
        .map_err(io_err("getsockopt(TCP_INFO)"))?;
    if n < 7 {
        return Err(TcpRepairError::Invalid("short TCP_INFO".into()));
    }
    if info[0] != TCP_ESTABLISHED {
        return Err(TcpRepairError::Invalid(format!(
            "socket not established (state {})",
            info[0]
        )));
    }
    let options = info[5];
    let snd_wscale = info[6] & 0x0f;
    let rcv_wscale = info[6] >> 4;

    let (mss, _) = getsockopt::<libc::c_int>(fd, libc::IPPROTO_TCP, libc::TCP_MAXSEG)
        .map_err(io_err("getsockopt(TCP_MAXSEG)"))?;
    let (timestamp, _) = getsockopt::<u32>(fd, libc::IPPROTO_TCP, TCP_TIMESTAMP)
        .map_err(io_err("getsockopt(TCP_TIMESTAMP)"))?;
    let (win, wn) = getsockopt::<TcpRepairWindow>(fd, libc::IPPROTO_TCP, TCP_REPAIR_WINDOW)
        .map_err(io_err("getsockopt(TCP_REPAIR_WINDOW)"))?;
    if wn != size_of::<TcpRepairWindow>() {
        return Err(TcpRepairError::Invalid("short TCP_REPAIR_WINDOW".into()));
    }

    // Send queue: write_seq, outq (all queued), notsent (not yet sent).
    let outq = ioctl_int(fd, SIOCOUTQ).map_err(io_err("ioctl(SIOCOUTQ)"))?;
    let notsent = ioctl_int(fd, SIOCOUTQNSD).map_err(io_err("ioctl(SIOCOUTQNSD)"))?;
    if notsent > outq {
        return Err(TcpRepairError::Invalid(format!(
            "unsent {notsent} > send queue {outq}"
        )));
    }
    select_queue(fd, TCP_SEND_QUEUE)?;
    let (send_seq, _) = getsockopt::<u32>(fd, libc::IPPROTO_TCP, TCP_QUEUE_SEQ)
        .map_err(io_err("getsockopt(TCP_QUEUE_SEQ)"))?;
    let sendq = peek_queue(fd, outq)?;

    // Receive queue: rcv_nxt and unread bytes.
    let inq = ioctl_int(fd, SIOCINQ).map_err(io_err("ioctl(SIOCINQ)"))?;
    select_queue(fd, TCP_RECV_QUEUE)?;
    let (recv_seq, _) = getsockopt::<u32>(fd, libc::IPPROTO_TCP, TCP_QUEUE_SEQ)
        .map_err(io_err("getsockopt(TCP_QUEUE_SEQ)"))?;
    let recv_queue = peek_queue(fd, inq)?;
    select_queue(fd, 0)?;

    let sent = outq - notsent;
    Ok(TcpSessionContext {
        local,
        remote,
        send_seq,
        recv_seq,
        mss: u16::try_from(mss).unwrap_or(u16::MAX),
        snd_wscale,
        rcv_wscale,
        sack: options & TCPI_OPT_SACK != 0,
        timestamps: options & TCPI_OPT_TIMESTAMPS != 0,
        window_scaling: options & TCPI_OPT_WSCALE != 0,
        timestamp,
        snd_wl1: win.snd_wl1,
        snd_wnd: win.snd_wnd,
        max_window: win.max_window,
        rcv_wnd: win.rcv_wnd,
        rcv_wup: win.rcv_wup,
        unacked: sendq.slice(..sent),
        unsent: sendq.slice(sent..),
        recv_queue,
    })
}

/// Rebuild a socket from `ctx` without a handshake. `before_resume` runs
/// after the socket is complete and before it leaves repair mode (switch
/// the network path here: a peer segment reaching the socket after
/// `TCP_REPAIR=0` is answered normally, one reaching a host without the
/// socket draws an RST). The unsent bytes are sent normally at the end.
/// The same as [`rebuild_frozen`] then [`Resumable::resume`].
pub fn rebuild(
    ctx: &TcpSessionContext,
    before_resume: impl FnOnce() -> std::result::Result<(), String>,
) -> Result<(OwnedFd, Timings)> {
    rebuild_frozen(ctx)?.resume(before_resume)
}

/// A socket rebuilt in repair mode: connected, queues and window set, and
/// sending nothing of its own until [`Resumable::resume`] (the UE's path
/// reaches it only from the path switch in `resume` on, so nothing of the
/// peer's arrives before). Dropping it closes it in repair
/// mode: the peer sees nothing.
pub struct Resumable {
    socket: Socket,
    unsent: Bytes,
    freeze: Duration,
    queues: Duration,
}

impl std::fmt::Debug for Resumable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resumable")
            .field("fd", &self.socket.as_raw_fd())
            .field("unsent", &self.unsent.len())
            .finish()
    }
}

impl Resumable {
    /// Run `before_resume` (the path switch), leave repair mode (a window
    /// probe restarts the flow) and send the unsent bytes normally.
    pub fn resume(
        self,
        before_resume: impl FnOnce() -> std::result::Result<(), String>,
    ) -> Result<(OwnedFd, Timings)> {
        let t2 = Instant::now();
        before_resume().map_err(TcpRepairError::Invalid)?;
        let th = Instant::now();
        let fd = self.socket.as_raw_fd();
        set_repair(fd, false)?;
        send_all(fd, &self.unsent, "send(unsent)")?;
        let t3 = Instant::now();
        // SAFETY: into_raw_fd transfers ownership of a valid descriptor.
        let owned = unsafe { OwnedFd::from_raw_fd(self.socket.into_raw_fd()) };
        Ok((
            owned,
            Timings {
                freeze: self.freeze,
                queues: self.queues,
                finish: t3 - th,
                path_switch: th - t2,
            },
        ))
    }
}

/// The first part of [`rebuild`]: the socket complete and still in repair
/// mode. A destination keeps its sessions so until it commits, so that
/// nothing of a handover the source may still roll back reaches the UE.
pub fn rebuild_frozen(ctx: &TcpSessionContext) -> Result<Resumable> {
    let t0 = Instant::now();
    let total = ctx.unacked.len() + ctx.unsent.len();
    if total > MAX_QUEUE || ctx.recv_queue.len() > MAX_QUEUE {
        return Err(TcpRepairError::Invalid("queues too large".into()));
    }
    if ctx.local.is_ipv4() != ctx.remote.is_ipv4() {
        return Err(TcpRepairError::Invalid("address families differ".into()));
    }
    let domain = if ctx.local.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::STREAM, None).map_err(io_err("socket"))?;
    let fd = s.as_raw_fd();
    set_repair(fd, true)?;
    // Room for the queues (the FORCE variants pass the sysctl caps; as root).
    let need_snd = 2 * total + (1 << 16);
    if need_snd > s.send_buffer_size().unwrap_or(0) {
        let v = need_snd.min(i32::MAX as usize) as libc::c_int;
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &v)
            .map_err(io_err("setsockopt(SO_SNDBUFFORCE)"))?;
    }
    let need_rcv = 2 * ctx.recv_queue.len() + (1 << 16);
    if need_rcv > s.recv_buffer_size().unwrap_or(0) {
        let v = need_rcv.min(i32::MAX as usize) as libc::c_int;
        setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &v)
            .map_err(io_err("setsockopt(SO_RCVBUFFORCE)"))?;
    }
    // Queue sequence numbers: the first byte of each queue.
    select_queue(fd, TCP_RECV_QUEUE)?;
    let rseq = ctx.recv_seq.wrapping_sub(ctx.recv_queue.len() as u32);
    setsockopt(fd, libc::IPPROTO_TCP, TCP_QUEUE_SEQ, &rseq)
        .map_err(io_err("setsockopt(TCP_QUEUE_SEQ recv)"))?;
    select_queue(fd, TCP_SEND_QUEUE)?;
    let sseq = ctx.send_seq.wrapping_sub(total as u32);
    setsockopt(fd, libc::IPPROTO_TCP, TCP_QUEUE_SEQ, &sseq)
        .map_err(io_err("setsockopt(TCP_QUEUE_SEQ send)"))?;
    // TCP_REPAIR=1 set sk_reuse to SK_FORCE_REUSE, so bind() succeeds next
    // to a listener on the same port; setting SO_REUSEADDR now would undo
    // that (EADDRINUSE). IP_FREEBIND lets the service address be configured
    // after the socket (harmless otherwise).
    let one: libc::c_int = 1;
    if ctx.local.is_ipv4() {
        let _ = setsockopt(fd, libc::IPPROTO_IP, libc::IP_FREEBIND, &one);
    } else {
        let _ = setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_FREEBIND, &one);
    }
    s.bind(&SockAddr::from(ctx.local)).map_err(io_err("bind"))?;
    // In repair mode connect() sends no SYN and leaves the socket
    // established.
    s.connect(&SockAddr::from(ctx.remote))
        .map_err(io_err("connect"))?;
    let t1 = Instant::now();

    let mut opts = vec![TcpRepairOpt {
        opt_code: TCPOPT_MAXSEG,
        opt_val: u32::from(ctx.mss),
    }];
    if ctx.window_scaling {
        opts.push(TcpRepairOpt {
            opt_code: TCPOPT_WINDOW,
            opt_val: u32::from(ctx.snd_wscale) | (u32::from(ctx.rcv_wscale) << 16),
        });
    }
    if ctx.sack {
        opts.push(TcpRepairOpt {
            opt_code: TCPOPT_SACK_PERM,
            opt_val: 0,
        });
    }
    if ctx.timestamps {
        opts.push(TcpRepairOpt {
            opt_code: TCPOPT_TIMESTAMP,
            opt_val: 0,
        });
    }
    setsockopt_slice(fd, libc::IPPROTO_TCP, TCP_REPAIR_OPTIONS, &opts)
        .map_err(io_err("setsockopt(TCP_REPAIR_OPTIONS)"))?;
    if ctx.timestamps {
        setsockopt(fd, libc::IPPROTO_TCP, TCP_TIMESTAMP, &ctx.timestamp)
            .map_err(io_err("setsockopt(TCP_TIMESTAMP)"))?;
    }
    // Refill the receive queue, then the already-sent part of the send
    // queue (the kernel treats repair-mode sends as already transmitted).
    select_queue(fd, TCP_RECV_QUEUE)?;
    send_all(fd, &ctx.recv_queue, "send(receive queue)")?;
    select_queue(fd, TCP_SEND_QUEUE)?;
    send_all(fd, &ctx.unacked, "send(send queue)")?;
    select_queue(fd, 0)?;
    let win = TcpRepairWindow {
        snd_wl1: ctx.snd_wl1,
        snd_wnd: ctx.snd_wnd,
        max_window: ctx.max_window,
        rcv_wnd: ctx.rcv_wnd,
        rcv_wup: ctx.rcv_wup,
    };
    setsockopt(fd, libc::IPPROTO_TCP, TCP_REPAIR_WINDOW, &win)
        .map_err(io_err("setsockopt(TCP_REPAIR_WINDOW)"))?;
    let t2 = Instant::now();
    Ok(Resumable {
        socket: s,
        unsent: ctx.unsent.clone(),
        freeze: t1 - t0,
        queues: t2 - t1,
    })
}

type Key = (SocketAddr, SocketAddr);
type Hook = dyn Fn(IpAddr) -> std::result::Result<(), String> + Send + Sync;
type ResumeHook = Box<Hook>;

/// The path switch of one UE's sessions: `hook` runs once, before the
/// first socket leaves repair mode, and its result (a failure fails every
/// session) stands for the others.
struct HookOnce<'a> {
    hook: Option<&'a Hook>,
    ue: IpAddr,
    result: Option<std::result::Result<(), String>>,
}

impl<'a> HookOnce<'a> {
    fn new(hook: Option<&'a Hook>, ue: IpAddr) -> Self {
        HookOnce {
            hook,
            ue,
            result: None,
        }
    }

    fn run(&mut self) -> std::result::Result<(), String> {
        let (hook, ue) = (self.hook, self.ue);
        self.result
            .get_or_insert_with(|| hook.map_or(Ok(()), |h| h(ue)))
            .clone()
    }
}

#[derive(Default)]
struct State {
    /// Live sockets handed in by services, by (local, remote).
    live: HashMap<Key, OwnedFd>,
    /// What `import` rebuilt, per UE; frozen until `commit`.
    imported: HashMap<IpAddr, Vec<Key>>,
    /// Imported sockets still in repair mode, by (local, remote).
    frozen: HashMap<Key, Resumable>,
    /// Exported sockets, frozen and kept open until the source's handover
    /// ends: a late segment of the UE (on its way before the hold) then
    /// reaches a socket instead of drawing an RST from a host without it;
    /// a rollback thaws them instead of rebuilding.
    exported: HashMap<IpAddr, Vec<(Key, Frozen)>>,
    /// Exports whose frozen sockets took data after their state was read
    /// (see [`Frozen::received_since`]).
    late_data: u64,
    last: Vec<Timings>,
}

/// `TCP_REPAIR` sessions: a table of the services' sockets, exported by
/// freezing and closing them and imported by rebuilding them.
///
/// A service hands the socket of a UE connection in with
/// [`adopt`](Self::adopt) (ownership: it must not use any other
/// descriptor of that socket once the migration has started) and takes a
/// rebuilt or restored one with [`take`](Self::take).
pub struct TcpRepair {
    state: Mutex<State>,
    resume_hook: Option<ResumeHook>,
}

impl std::fmt::Debug for TcpRepair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpRepair").finish_non_exhaustive()
    }
}

impl Default for TcpRepair {
    fn default() -> Self {
        Self::new()
    }
}

fn session_err(ctx_local: SocketAddr, ctx_remote: SocketAddr, e: impl ToString) -> SessionError {
    SessionError::Session {
        local: ctx_local,
        remote: ctx_remote,
        reason: e.to_string(),
    }
}

impl TcpRepair {
    /// Empty table.
    pub fn new() -> Self {
        TcpRepair {
            state: Mutex::new(State::default()),
            resume_hook: None,
        }
    }

    /// Run `hook(ue)` after a UE's sockets are rebuilt and before they
    /// leave repair mode (the path switch towards this host).
    pub fn with_resume_hook(
        mut self,
        hook: impl Fn(IpAddr) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.resume_hook = Some(Box::new(hook));
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hand in a connected TCP socket; returns its (local, remote).
    pub fn adopt(&self, sock: OwnedFd) -> io::Result<(SocketAddr, SocketAddr)> {
        let s = Socket::from(sock);
        let bad = || io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket");
        let local = s.local_addr()?.as_socket().ok_or_else(bad)?;
        let remote = s.peer_addr()?.as_socket().ok_or_else(bad)?;
        self.lock().live.insert((local, remote), OwnedFd::from(s));
        Ok((local, remote))
    }

    /// Take the live (adopted, restored or imported) socket of a
    /// connection out of the table.
    pub fn take(&self, local: SocketAddr, remote: SocketAddr) -> Option<OwnedFd> {
        self.lock().live.remove(&(local, remote))
    }

    /// Wait, at most `limit`, until no connection of `ue` in `connections`
    /// has sent data that the peer has not acknowledged (unsent data may
    /// stay queued). Call it after the service stopped writing and before
    /// the flow hold: the hold drops the UE's ACKs, and data the rebuilt
    /// socket believes unacknowledged is only resent on its first
    /// retransmission timeout (1 s) when it fills the initial congestion
    /// window, because the window probe sent on leaving repair mode may go
    /// unanswered (receivers rate-limit those answers,
    /// `tcp_invalid_ratelimit`). Returns the octets still unacknowledged.
    pub fn drain(&self, ue: IpAddr, connections: &[Connection], limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let unacked: usize = {
                let st = self.lock();
                connections
                    .iter()
                    .filter(|c| c.client.ip() == ue)
                    .filter_map(|c| st.live.get(&(c.server, c.client)))
                    .map(|fd| {
                        let fd = fd.as_raw_fd();
                        let outq = ioctl_int(fd, SIOCOUTQ).unwrap_or(0);
                        let notsent = ioctl_int(fd, SIOCOUTQNSD).unwrap_or(0);
                        outq.saturating_sub(notsent)
                    })
                    .sum()
            };
            if unacked == 0 || Instant::now() >= deadline {
                return unacked;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Take every live socket whose remote end is `ue` out of the table.
    pub fn take_all(&self, ue: IpAddr) -> Vec<OwnedFd> {
        let mut st = self.lock();
        let keys: Vec<Key> = st
            .live
            .keys()
            .filter(|(_, remote)| remote.ip().to_canonical() == ue.to_canonical())
            .copied()
            .collect();
        keys.iter().filter_map(|k| st.live.remove(k)).collect()
    }

    /// Timings of the last export, restore or import, one per session.
    pub fn last_timings(&self) -> Vec<Timings> {
        self.lock().last.clone()
    }

    fn rebuild_all(
        &self,
        ue: IpAddr,
        sessions: &[TcpSessionContext],
    ) -> Vec<Result<OwnedFd, SessionError>> {
        let mut hook = HookOnce::new(self.resume_hook.as_deref(), ue);
        let mut timings = Vec::new();
        let out = sessions
            .iter()
            .map(|ctx| {
                let r = rebuild(ctx, || hook.run());
                match r {
                    Ok((fd, t)) => {
                        timings.push(t);
                        Ok(fd)
                    }
                    Err(e) => Err(session_err(ctx.local, ctx.remote, e)),
                }
            })
            .collect();
        self.lock().last = timings;
        out
    }
}

impl TcpRepair {
    /// [`SessionExporter::export`] with a step between the freeze and the
    /// close: every socket of the UE is frozen and read, then
    /// `before_close` sees their states (the session journal writes them
    /// durably here), then they are closed in repair mode. If a freeze or
    /// `before_close` fails, every socket is thawed and stays in the table,
    /// live, as before the call.
    pub fn export_then(
        &self,
        ue: IpAddr,
        connections: &[Connection],
        before_close: impl FnOnce(&[TcpSessionContext]) -> std::result::Result<(), String>,
    ) -> std::result::Result<Vec<TcpSessionContext>, SessionError> {
        let mut st = self.lock();
        let keys: Vec<Key> = connections
            .iter()
            .filter(|c| c.client.ip() == ue)
            .map(|c| (c.server, c.client))
            .collect();
        if let Some(k) = keys.iter().find(|k| !st.live.contains_key(k)) {
            return Err(session_err(
                k.0,
                k.1,
                "no adopted socket for this connection",
            ));
        }
        let mut frozen: Vec<(Key, Frozen)> = Vec::with_capacity(keys.len());
        for k in &keys {
            let Some(fd) = st.live.remove(k) else {
                continue;
            };
            match freeze(fd) {
                Ok(f) => frozen.push((*k, f)),
                Err((e, fd)) => {
                    // All-or-nothing: this one is live again (freeze undid
                    // itself), and so are the others.
                    if let Some(fd) = fd {
                        st.live.insert(*k, fd);
                    }
                    for (k, f) in frozen {
                        st.live.insert(k, f.thaw());
                    }
                    return Err(session_err(k.0, k.1, e));
                }
            }
        }
        // Not under the table's lock: `before_close` may write to disk.
        drop(st);
        let contexts: Vec<TcpSessionContext> =
            frozen.iter().map(|(_, f)| f.context().clone()).collect();
        if let Err(reason) = before_close(&contexts) {
            let mut st = self.lock();
            for (k, f) in frozen {
                st.live.insert(k, f.thaw());
            }
            return Err(SessionError::Other(reason));
        }
        // Kept open, frozen, until the handover ends here (release or
        // restore): closed now, a segment still on its way to this host
        // would find no socket and draw an RST that resets the UE's
        // connection.
        let timings = frozen.iter().map(|(_, f)| f.timings).collect();
        let mut st = self.lock();
        st.last = timings;
        let old = st.exported.insert(ue, frozen);
        drop(st);
        if let Some(old) = old {
            // An earlier export of this UE that nothing ended: its sockets
            // were superseded (a re-export takes what the table holds).
            for (_, f) in old {
                let _ = f.close();
            }
        }
        Ok(contexts)
    }

    /// Exports whose frozen sockets accepted data after the state was
    /// read (counted at the release; each also logged as an error).
    pub fn late_data(&self) -> u64 {
        self.lock().late_data
    }

    /// Sockets exported and not yet released or restored.
    pub fn kept_exported(&self) -> usize {
        self.lock().exported.values().map(Vec::len).sum()
    }

    /// Rebuild `sessions` of `ue` here with `hook` as the path switch
    /// (instead of the resume hook), keeping them in the table. A session
    /// whose connection already exists here (the kernel refuses a second
    /// socket with its 4-tuple: `EADDRNOTAVAIL`) counts as restored.
    pub fn restore_with(
        &self,
        ue: IpAddr,
        sessions: &[TcpSessionContext],
        hook: Option<&Hook>,
    ) -> Vec<std::result::Result<(), SessionError>> {
        let mut hook = HookOnce::new(hook, ue);
        let mut timings = Vec::new();
        let out = sessions
            .iter()
            .map(|ctx| {
                let r = rebuild(ctx, || hook.run());
                match r {
                    Ok((fd, t)) => {
                        timings.push(t);
                        self.lock().live.insert((ctx.local, ctx.remote), fd);
                        Ok(())
                    }
                    Err(TcpRepairError::Io {
                        op: "connect",
                        source,
                    }) if source.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(()),
                    Err(e) => Err(session_err(ctx.local, ctx.remote, e)),
                }
            })
            .collect();
        self.lock().last = timings;
        out
    }
}

impl SessionExporter for TcpRepair {
    fn export(
        &self,
        ue: IpAddr,
        connections: &[Connection],
    ) -> std::result::Result<Vec<TcpSessionContext>, SessionError> {
        self.export_then(ue, connections, |_| Ok(()))
    }

    fn restore(
        &self,
        ue: IpAddr,
        sessions: &[TcpSessionContext],
    ) -> std::result::Result<(), SessionError> {
        // The sockets this process froze are still open: thawed, they are
        // live again exactly as they were, with whatever reached them
        // since. Only the others (a restart lost them) are rebuilt.
        let kept = self.lock().exported.remove(&ue).unwrap_or_default();
        let mut first_err = None;
        if !kept.is_empty() {
            // As for a rebuild: the path switch first, then out of repair
            // mode. A failed switch is reported; the sockets are thawed
            // all the same (they are the UE's, live, wherever its path is).
            if let Err(e) = HookOnce::new(self.resume_hook.as_deref(), ue).run() {
                let (local, remote) = kept[0].0;
                first_err = Some(session_err(local, remote, format!("path switch: {e}")));
            }
        }
        let mut thawed = Vec::with_capacity(kept.len());
        for (k, f) in kept {
            thawed.push(k);
            let fd = f.thaw();
            self.lock().live.insert(k, fd);
        }
        let rest: Vec<TcpSessionContext> = sessions
            .iter()
            .filter(|c| !thawed.contains(&(c.local, c.remote)))
            .cloned()
            .collect();
        let sessions = &rest[..];
        for (ctx, r) in sessions.iter().zip(self.rebuild_all(ue, sessions)) {
            match r {
                Ok(fd) => {
                    self.lock().live.insert((ctx.local, ctx.remote), fd);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn release(&self, ue: IpAddr) {
        // The destination has the sessions: close the frozen sockets in
        // repair mode (the peer sees nothing).
        let kept = self.lock().exported.remove(&ue).unwrap_or_default();
        let mut late = 0;
        for ((local, remote), f) in kept {
            match f.received_since() {
                Ok(0) | Err(_) => {}
                Ok(n) => {
                    late += 1;
                    tracing::error!(%ue, %local, %remote, octets = n,
                        "a frozen socket took data after its state was read (a segment on its way before the hold); the destination does not have it");
                }
            }
            let _ = f.close();
        }
        if late > 0 {
            self.lock().late_data += 1;
        }
    }
}

impl SessionImporter for TcpRepair {
    fn import(
        &self,
        ue: IpAddr,
        sessions: &[TcpSessionContext],
    ) -> Vec<std::result::Result<(), SessionError>> {
        // Rebuilt in repair mode only: the path switch and the resume wait
        // for the commit, so a handover the source rolls back (or a stale
        // transfer of an attempt it already rolled back) never takes the
        // UE's flow away from the source.
        let mut timings = Vec::new();
        let results: Vec<_> = sessions
            .iter()
            .map(|ctx| rebuild_frozen(ctx).map_err(|e| session_err(ctx.local, ctx.remote, e)))
            .collect();
        let mut st = self.lock();
        let mut keys = Vec::new();
        let out = sessions
            .iter()
            .zip(results)
            .map(|(ctx, r)| {
                r.map(|f| {
                    timings.push(Timings {
                        freeze: f.freeze,
                        queues: f.queues,
                        ..Timings::default()
                    });
                    let k = (ctx.local, ctx.remote);
                    st.frozen.insert(k, f);
                    keys.push(k);
                })
            })
            .collect();
        st.imported.entry(ue).or_default().extend(keys);
        st.last = timings;
        out
    }

    fn discard(&self, ue: IpAddr) {
        // The source rebuilds these sessions: close ours in repair mode so
        // the peer sees nothing from this host.
        let mut st = self.lock();
        for k in st.imported.remove(&ue).unwrap_or_default() {
            // Still in repair mode: closing it sends nothing.
            drop(st.frozen.remove(&k));
            if let Some(fd) = st.live.remove(&k) {
                let _ = set_repair(fd.as_raw_fd(), true);
                drop(fd);
            }
        }
    }

    /// Switch the UE's path here (the resume hook, once) and bring every
    /// imported session of `ue` out of repair mode; they join the table
    /// for the service to [`take`](TcpRepair::take). A session that fails
    /// to resume is closed in repair mode (nothing reaches the peer from
    /// it) and logged; [`TcpRepair::last_timings`] has the others.
    fn commit(&self, ue: IpAddr) {
        let frozen: Vec<(Key, Resumable)> = {
            let mut st = self.lock();
            let keys = st.imported.remove(&ue).unwrap_or_default();
            keys.into_iter()
                .filter_map(|k| st.frozen.remove(&k).map(|f| (k, f)))
                .collect()
        };
        // No lock is held while the hook runs.
        let mut hook = HookOnce::new(self.resume_hook.as_deref(), ue);
        let mut timings = Vec::new();
        let mut resumed = Vec::new();
        for (k, f) in frozen {
            let r = f.resume(|| hook.run());
            match r {
                Ok((fd, t)) => {
                    timings.push(t);
                    resumed.push((k, fd));
                }
                Err(e) => {
                    tracing::warn!(%ue, local = %k.0, remote = %k.1, error = %e,
                        "imported TCP session could not resume at commit");
                }
            }
        }
        let mut st = self.lock();
        st.live.extend(resumed);
        st.last = timings;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eperm_on_repair_switch_is_the_capability_error() {
        let e = TcpRepairError::from_repair_switch(io::Error::from_raw_os_error(libc::EPERM));
        assert!(matches!(e, TcpRepairError::NeedsCapNetAdmin));
        assert_eq!(
            e.to_string(),
            "TCP_REPAIR needs CAP_NET_ADMIN (run as root)"
        );
        let e = TcpRepairError::from_repair_switch(io::Error::from_raw_os_error(libc::EBADF));
        assert!(matches!(e, TcpRepairError::Io { .. }));
    }

    #[test]
    fn abi_struct_sizes() {
        assert_eq!(size_of::<TcpRepairOpt>(), 8);
        assert_eq!(size_of::<TcpRepairWindow>(), 20);
    }

    #[test]
    fn dump_of_unconnected_socket_is_an_error_and_gives_the_socket_back() {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        match dump(OwnedFd::from(s)) {
            Err((_, Some(_))) => {}
            other => panic!("unexpected {:?}", other.map(|_| ()).map_err(|e| e.0)),
        }
    }
}
