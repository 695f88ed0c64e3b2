//! Inter-router transport over TCP (cargo feature `tokio`).
//!
//! RFC 4067 §3.1 mandates SCTP on port 5091; this host's kernel has no
//! SCTP, so we run CXTP over TCP on the same port by default, framing
//! messages with the CXTP header's own Length field ([`CxtpCodec`], a
//! `tokio_util::codec::Decoder`). Every message is still a complete RFC
//! 4067 message, so an SCTP adapter only has to implement [`Transport`]
//! (one message per SCTP DATA chunk, unordered, PPID configurable).
//!
//! [`TcpTransport`] keeps one connection per peer router and reuses it for
//! every transfer in both directions (an accepted connection also carries
//! our replies); any number of messages can be in flight on it. Queues are
//! bounded (sending waits when a peer's queue is full), and a connection
//! that fails is dropped and re-established on the next send.
//!
//! Bounds on what the other side can make us hold (all in
//! [`TransportConfig`], counted in [`TransportStats`]):
//!
//! * **Who may connect**: an accepted connection whose address is not in
//!   [`TransportConfig::accept_from`] is closed at once (with a reset),
//!   before any of its octets is read. The default lets nobody in;
//!   [`PeerFilter::any`] is the open behaviour and must be asked for.
//! * **How many**: at most [`TransportConfig::max_connections`] accepted
//!   connections at once, and [`TransportConfig::max_connections_per_peer`]
//!   from one address; one more is closed at once. Our own outgoing
//!   connections (one per peer we send to) do not count.
//! * **For how long**: a connection on which no complete message travelled
//!   either way for [`TransportConfig::idle_timeout`] is closed. The close
//!   is graceful so that nothing in flight is lost: it stops carrying our
//!   sends (the next one connects afresh), writes what was already queued,
//!   sends FIN and still delivers what the peer had sent, for at most
//!   [`CLOSE_GRACE`].
//! * **How much**: a frame is at most [`TransportConfig::max_frame`] octets
//!   (65,535 by the 16-bit Length, the default); a header announcing more,
//!   or anything that is not a CXTP header, closes the connection. A
//!   connection buffers at most one frame plus one read, in a buffer that
//!   starts at 4 KiB and is sized to the frame being read; it is freed with
//!   the connection, which leaves nothing behind.
//! * **Accept errors** (EMFILE and the like) are counted, logged (rate
//!   limited) and retried after a backoff ([`accept`]); accepting stops only
//!   when the transport is dropped.

pub mod accept;

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle};
use tokio::time::Instant;
use tokio_util::codec::{Decoder, Encoder};

use crate::wire::{DecodeError, Header, MessageType, HEADER_LEN};
use accept::{Acceptor, LogLimit, LOG_EVERY};

/// IANA port of CXTP (registered for SCTP; used here for TCP too).
pub const DEFAULT_PORT: u16 = 5091;

/// Largest CXTP message: the header's 16-bit Length counts octets.
pub const MAX_FRAME: usize = u16::MAX as usize;

/// Read buffer a connection starts with.
const READ_BUF: usize = 4096;

/// After an idle close, how long the peer's last messages are still read.
pub const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Why octets are not a CXTP frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The first octets are not a CXTP header.
    #[error("not a CXTP header: {0}")]
    Header(#[from] DecodeError),
    /// The header's Length is below the header's own size.
    #[error("{msg_type}: Length {length} is shorter than the header")]
    TooShort {
        /// Message type.
        msg_type: MessageType,
        /// Announced length.
        length: usize,
    },
    /// The header's Length is above the frame limit.
    #[error("{msg_type}: Length {length} exceeds the {max}-octet frame limit")]
    TooLong {
        /// Message type.
        msg_type: MessageType,
        /// Announced length.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// A message to send whose header Length is not its size.
    #[error(
        "{msg_type}: header Length {header} disagrees with the {actual} octets of the message"
    )]
    LengthMismatch {
        /// Message type.
        msg_type: MessageType,
        /// Header Length.
        header: usize,
        /// Message size.
        actual: usize,
    },
}

impl From<FrameError> for io::Error {
    fn from(e: FrameError) -> io::Error {
        match e {
            FrameError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// Splits a byte stream into CXTP messages using the header Length, up to
/// a frame limit ([`MAX_FRAME`] by default).
#[derive(Clone, Copy, Debug)]
pub struct CxtpCodec {
    max_frame: usize,
}

impl Default for CxtpCodec {
    fn default() -> Self {
        CxtpCodec {
            max_frame: MAX_FRAME,
        }
    }
}

impl CxtpCodec {
    /// Frames of at most `max_frame` octets (clamped to the header size
    /// and [`MAX_FRAME`]).
    pub fn new(max_frame: usize) -> Self {
        CxtpCodec {
            max_frame: max_frame.clamp(HEADER_LEN, MAX_FRAME),
        }
    }

    /// The frame limit.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Whether `msg` is one frame this codec would send: a CXTP header
    /// whose Length is the message's size, within the limit.
    pub fn check(&self, msg: &[u8]) -> Result<(), FrameError> {
        let h = Header::parse(msg)?;
        let header = h.length as usize;
        if header != msg.len() {
            return Err(FrameError::LengthMismatch {
                msg_type: h.msg_type,
                header,
                actual: msg.len(),
            });
        }
        if header > self.max_frame {
            return Err(FrameError::TooLong {
                msg_type: h.msg_type,
                length: header,
                max: self.max_frame,
            });
        }
        Ok(())
    }
}

impl Decoder for CxtpCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        if src.len() < HEADER_LEN {
            src.reserve(HEADER_LEN - src.len());
            return Ok(None);
        }
        let h = Header::parse(&src[..HEADER_LEN])?;
        let len = h.length as usize;
        if len < HEADER_LEN {
            return Err(FrameError::TooShort {
                msg_type: h.msg_type,
                length: len,
            });
        }
        if len > self.max_frame {
            return Err(FrameError::TooLong {
                msg_type: h.msg_type,
                length: len,
                max: self.max_frame,
            });
        }
        if src.len() < len {
            src.reserve(len - src.len());
            return Ok(None);
        }
        Ok(Some(src.split_to(len).freeze()))
    }
}

impl Encoder<Bytes> for CxtpCodec {
    type Error = FrameError;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.check(&item)?;
        dst.extend_from_slice(&item);
        Ok(())
    }
}

/// A message transport between routers, addressed by router IP address.
pub trait Transport: Send {
    /// Queue `msg` for `peer`; waits while the peer's queue is full.
    fn send(
        &self,
        peer: IpAddr,
        msg: Bytes,
    ) -> impl std::future::Future<Output = io::Result<()>> + Send;
    /// The next message received from any peer (`None` once closed).
    fn recv(&mut self) -> impl std::future::Future<Output = Option<(IpAddr, Bytes)>> + Send;
}

/// The addresses a [`TcpTransport`] accepts connections from. IPv4-mapped
/// IPv6 addresses (a dual-stack listener) match their IPv4 form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerFilter {
    /// `None`: anyone.
    only: Option<HashSet<IpAddr>>,
}

impl PeerFilter {
    /// Anyone may connect (the open behaviour; ask for it explicitly).
    pub fn any() -> Self {
        PeerFilter { only: None }
    }

    /// Only these addresses.
    pub fn only(addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        PeerFilter {
            only: Some(addrs.into_iter().map(|a| a.to_canonical()).collect()),
        }
    }

    /// Nobody (the default).
    pub fn nobody() -> Self {
        PeerFilter::only([])
    }

    /// Whether `addr` may connect.
    pub fn allows(&self, addr: IpAddr) -> bool {
        self.only
            .as_ref()
            .is_none_or(|s| s.contains(&addr.to_canonical()))
    }
}

/// Settings of [`TcpTransport`].
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Local address to listen on.
    pub listen: SocketAddr,
    /// Port of peers (default 5091).
    pub peer_port: u16,
    /// Per-peer port overrides (tests, several routers on one host).
    pub peer_ports: HashMap<IpAddr, u16>,
    /// Messages queued per peer before `send` waits.
    pub send_queue: usize,
    /// Received messages queued before readers pause.
    pub recv_queue: usize,
    /// Who may connect (default: nobody, [`PeerFilter::nobody`]; list the
    /// peer routers' addresses, or [`PeerFilter::any`]).
    pub accept_from: PeerFilter,
    /// Most accepted connections open at once (default 64).
    pub max_connections: usize,
    /// Most accepted connections open at once from one address (default 4).
    pub max_connections_per_peer: usize,
    /// Close a connection on which no complete message was received or
    /// sent for this long (default 120 s; `None`: never).
    pub idle_timeout: Option<Duration>,
    /// Largest frame accepted, in octets (default and most [`MAX_FRAME`]).
    pub max_frame: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            listen: SocketAddr::new(IpAddr::from([0u8; 16]), DEFAULT_PORT),
            peer_port: DEFAULT_PORT,
            peer_ports: HashMap::new(),
            send_queue: 256,
            recv_queue: 1024,
            accept_from: PeerFilter::nobody(),
            max_connections: 64,
            max_connections_per_peer: 4,
            idle_timeout: Some(Duration::from_secs(120)),
            max_frame: MAX_FRAME,
        }
    }
}

/// Counters and gauges of a [`TcpTransport`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Outgoing connections made.
    pub connects: u64,
    /// Incoming connections accepted (past the filter and the caps).
    pub accepted: u64,
    /// Incoming connections closed at once: address not in `accept_from`.
    pub refused_unknown_peer: u64,
    /// Incoming connections closed at once: `max_connections` reached.
    pub refused_limit: u64,
    /// Incoming connections closed at once: `max_connections_per_peer`
    /// reached for that address.
    pub refused_peer_limit: u64,
    /// Connections closed by the idle timeout.
    pub closed_idle: u64,
    /// Connections closed for octets that are not CXTP frames (or too long).
    pub closed_invalid: u64,
    /// `accept()` errors (each retried after a backoff).
    pub accept_errors: u64,
    /// Accepted connections open now.
    pub open_incoming: u64,
    /// Outgoing connections open now.
    pub open_outgoing: u64,
}

#[derive(Default)]
struct Counters {
    connects: AtomicU64,
    accepted: AtomicU64,
    refused_unknown_peer: AtomicU64,
    refused_limit: AtomicU64,
    refused_peer_limit: AtomicU64,
    closed_idle: AtomicU64,
    closed_invalid: AtomicU64,
    accept_errors: Arc<AtomicU64>,
}

/// The connection our sends to one address go over.
struct Peer {
    id: u64,
    tx: mpsc::Sender<Bytes>,
}

struct ConnEntry {
    ip: IpAddr,
    incoming: bool,
    task: Option<AbortHandle>,
}

/// Every open connection. An entry lives exactly as long as its task
/// (removed by the task's [`ConnGuard`]), so nothing outlives a connection.
#[derive(Default)]
struct Conns {
    open: HashMap<u64, ConnEntry>,
    /// Accepted connections per address (no zero entries).
    per_ip: HashMap<IpAddr, usize>,
    incoming: usize,
    outgoing: usize,
    peers: HashMap<IpAddr, Peer>,
}

struct Inner {
    cfg: TransportConfig,
    conns: Mutex<Conns>,
    ports: Mutex<HashMap<IpAddr, u16>>,
    /// Serialises connection set-up so concurrent senders share one.
    connecting: tokio::sync::Mutex<()>,
    in_tx: mpsc::Sender<(IpAddr, Bytes)>,
    next_id: AtomicU64,
    counters: Counters,
}

/// Removes its connection's entry when the connection's task ends or is
/// aborted.
struct ConnGuard {
    inner: Weak<Inner>,
    id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.forget(self.id);
        }
    }
}

/// How a connection's reading or writing ended.
enum End {
    /// End of stream, an I/O error, or the transport is gone.
    Closed,
    /// No complete message for the idle timeout.
    Idle,
    /// Octets that are not CXTP frames.
    Invalid(FrameError),
}

/// What a connection's task needs besides its socket.
struct ConnCtx {
    ip: IpAddr,
    codec: CxtpCodec,
    idle: Option<Duration>,
    in_tx: mpsc::Sender<(IpAddr, Bytes)>,
    start: Instant,
    /// Milliseconds from `start` to the last complete message either way.
    last: AtomicU64,
}

impl ConnCtx {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last.store(ms, Ordering::Relaxed);
    }

    /// Returns once no message travelled for the idle timeout.
    async fn idle_expired(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
            let deadline = self.start + last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }

    /// Deliver every complete message; returns when reading ends.
    async fn read_messages(
        &self,
        rd: &mut OwnedReadHalf,
        buf: &mut BytesMut,
        idle: Option<Duration>,
    ) -> End {
        let mut codec = self.codec;
        loop {
            loop {
                match codec.decode(buf) {
                    Ok(Some(m)) => {
                        self.touch();
                        if self.in_tx.send((self.ip, m)).await.is_err() {
                            return End::Closed;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return End::Invalid(e),
                }
            }
            let r = match idle {
                None => rd.read_buf(buf).await,
                Some(idle) => tokio::select! {
                    r = rd.read_buf(buf) => r,
                    _ = self.idle_expired(idle) => return End::Idle,
                },
            };
            match r {
                Ok(0) | Err(_) => return End::Closed,
                Ok(_) => {}
            }
        }
    }

    /// Write what is queued; once the queue is closed (these sends go
    /// over another connection now) only reading goes on.
    async fn write_messages(
        &self,
        wr: &mut OwnedWriteHalf,
        rx: &mut Option<mpsc::Receiver<Bytes>>,
    ) -> End {
        if let Some(rx) = rx {
            while let Some(m) = rx.recv().await {
                if wr.write_all(&m).await.is_err() {
                    return End::Closed;
                }
                self.touch();
            }
        }
        std::future::pending().await
    }
}

async fn run_conn(
    me: Weak<Inner>,
    id: u64,
    stream: TcpStream,
    mut rx: Option<mpsc::Receiver<Bytes>>,
    ctx: ConnCtx,
    _guard: ConnGuard,
) {
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = BytesMut::with_capacity(READ_BUF);
    let end = tokio::select! {
        e = ctx.read_messages(&mut rd, &mut buf, ctx.idle) => e,
        e = ctx.write_messages(&mut wr, &mut rx) => e,
    };
    let counters = |f: fn(&Counters) -> &AtomicU64| {
        if let Some(me) = me.upgrade() {
            f(&me.counters).fetch_add(1, Ordering::Relaxed);
        }
    };
    match end {
        End::Closed => {}
        End::Invalid(e) => {
            counters(|c| &c.closed_invalid);
            tracing::debug!(peer = %ctx.ip, error = %e, "CXTP connection closed: not CXTP");
        }
        End::Idle => {
            counters(|c| &c.closed_idle);
            tracing::debug!(peer = %ctx.ip, "CXTP connection closed: idle");
            if let Some(me) = me.upgrade() {
                me.stop_sending(ctx.ip, id);
            }
            let close = async {
                if let Some(rx) = &mut rx {
                    rx.close();
                    while let Ok(m) = rx.try_recv() {
                        if wr.write_all(&m).await.is_err() {
                            return;
                        }
                    }
                }
                let _ = wr.shutdown().await;
                ctx.read_messages(&mut rd, &mut buf, None).await;
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, close).await;
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An accepted connection: filter, caps, then [`Inner::attach`].
    fn admit(self: &Arc<Self>, stream: TcpStream, from: SocketAddr, log: &mut LogLimit) {
        let ip = from.ip().to_canonical();
        let refused = if !self.cfg.accept_from.allows(ip) {
            Some((&self.counters.refused_unknown_peer, "unknown_peer"))
        } else {
            let mut c = self.lock();
            if c.incoming >= self.cfg.max_connections {
                Some((&self.counters.refused_limit, "limit"))
            } else if c.per_ip.get(&ip).copied().unwrap_or(0) >= self.cfg.max_connections_per_peer {
                Some((&self.counters.refused_peer_limit, "peer_limit"))
            } else {
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                self.attach(&mut c, ip, stream, true);
                return;
            }
        };
        if let Some((counter, reason)) = refused {
            counter.fetch_add(1, Ordering::Relaxed);
            // Reset rather than FIN: nothing of it was read, and no
            // TIME_WAIT is left here.
            let _ = stream.set_zero_linger();
            drop(stream);
            if let Some(left_out) = log.check(Instant::now()) {
                tracing::warn!(
                    peer = %from,
                    reason,
                    not_logged = left_out,
                    "CXTP connection refused"
                );
            }
        }
    }

    /// Register a connection for `ip` and spawn its task. An outgoing one
    /// carries our sends to `ip` from now on; an incoming one only if no
    /// live connection does. Returns the sender when it carries them.
    fn attach(
        self: &Arc<Self>,
        c: &mut Conns,
        ip: IpAddr,
        stream: TcpStream,
        incoming: bool,
    ) -> Option<mpsc::Sender<Bytes>> {
        let _ = stream.set_nodelay(true);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let carries = !incoming || c.peers.get(&ip).is_none_or(|p| p.tx.is_closed());
        let (tx, rx) = if carries {
            let (tx, rx) = mpsc::channel::<Bytes>(self.cfg.send_queue.max(1));
            c.peers.insert(ip, Peer { id, tx: tx.clone() });
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        c.open.insert(
            id,
            ConnEntry {
                ip,
                incoming,
                task: None,
            },
        );
        if incoming {
            c.incoming += 1;
            *c.per_ip.entry(ip).or_default() += 1;
        } else {
            c.outgoing += 1;
        }
        let ctx = ConnCtx {
            ip,
            codec: CxtpCodec::new(self.cfg.max_frame),
            idle: self.cfg.idle_timeout,
            in_tx: self.in_tx.clone(),
            start: Instant::now(),
            last: AtomicU64::new(0),
        };
        let guard = ConnGuard {
            inner: Arc::downgrade(self),
            id,
        };
        // Spawned while `c` is locked: the guard cannot remove the entry
        // before it exists.
        let task = tokio::spawn(run_conn(Arc::downgrade(self), id, stream, rx, ctx, guard));
        if let Some(e) = c.open.get_mut(&id) {
            e.task = Some(task.abort_handle());
        }
        tx
    }

    /// The connection `id` no longer carries our sends to `ip`.
    fn stop_sending(&self, ip: IpAddr, id: u64) {
        let mut c = self.lock();
        if c.peers.get(&ip).is_some_and(|p| p.id == id) {
            c.peers.remove(&ip);
        }
    }

    /// The connection `id` is gone.
    fn forget(&self, id: u64) {
        let mut c = self.lock();
        let Some(e) = c.open.remove(&id) else {
            return;
        };
        if e.incoming {
            c.incoming -= 1;
            if let Some(n) = c.per_ip.get_mut(&e.ip) {
                *n -= 1;
                if *n == 0 {
                    c.per_ip.remove(&e.ip);
                }
            }
        } else {
            c.outgoing -= 1;
        }
        if c.peers.get(&e.ip).is_some_and(|p| p.id == id) {
            c.peers.remove(&e.ip);
        }
    }

    fn stats(&self) -> TransportStats {
        let (open_incoming, open_outgoing) = {
            let c = self.lock();
            (c.incoming as u64, c.outgoing as u64)
        };
        let n = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TransportStats {
            connects: get(&n.connects),
            accepted: get(&n.accepted),
            refused_unknown_peer: get(&n.refused_unknown_peer),
            refused_limit: get(&n.refused_limit),
            refused_peer_limit: get(&n.refused_peer_limit),
            closed_idle: get(&n.closed_idle),
            closed_invalid: get(&n.closed_invalid),
            accept_errors: get(&n.accept_errors),
            open_incoming,
            open_outgoing,
        }
    }
}

/// TCP implementation of [`Transport`].
pub struct TcpTransport {
    inner: Arc<Inner>,
    rx: mpsc::Receiver<(IpAddr, Bytes)>,
    local: SocketAddr,
    accept: JoinHandle<()>,
}

impl TcpTransport {
    /// Listen and start accepting peers.
    pub async fn bind(cfg: TransportConfig) -> io::Result<Self> {
        let listener = TcpListener::bind(cfg.listen).await?;
        let local = listener.local_addr()?;
        let (in_tx, rx) = mpsc::channel(cfg.recv_queue.max(1));
        let ports = Mutex::new(cfg.peer_ports.clone());
        let inner = Arc::new(Inner {
            cfg,
            conns: Mutex::new(Conns::default()),
            ports,
            connecting: tokio::sync::Mutex::new(()),
            in_tx,
            next_id: AtomicU64::new(0),
            counters: Counters::default(),
        });
        let weak = Arc::downgrade(&inner);
        let mut acceptor = Acceptor::new("cxtp", inner.counters.accept_errors.clone());
        let accept = tokio::spawn(async move {
            let mut refusals = LogLimit::new(LOG_EVERY);
            loop {
                let (stream, from) = acceptor.accept(&listener).await;
                let Some(inner) = weak.upgrade() else { break };
                inner.admit(stream, from, &mut refusals);
            }
        });
        Ok(TcpTransport {
            inner,
            rx,
            local,
            accept,
        })
    }

    /// The address we listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Set the port used to reach `peer` (default: `peer_port`).
    pub fn set_peer_port(&self, peer: IpAddr, port: u16) {
        self.inner
            .ports
            .lock()
            .expect("ports lock")
            .insert(peer, port);
    }

    /// Outgoing connections made so far.
    pub fn connects(&self) -> u64 {
        self.inner.counters.connects.load(Ordering::Relaxed)
    }

    /// Incoming connections accepted so far (past the filter and the caps).
    pub fn accepts(&self) -> u64 {
        self.inner.counters.accepted.load(Ordering::Relaxed)
    }

    /// Counters and open connections.
    pub fn stats(&self) -> TransportStats {
        self.inner.stats()
    }

    /// A cloneable handle that sends through this transport (receiving
    /// stays with the `TcpTransport`), for drivers that send from several
    /// tasks.
    pub fn sender(&self) -> TcpSender {
        TcpSender {
            inner: self.inner.clone(),
        }
    }
}

/// Longest wait for an outgoing connection.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

impl Inner {
    fn live(&self, peer: &IpAddr) -> Option<mpsc::Sender<Bytes>> {
        self.lock()
            .peers
            .get(peer)
            .filter(|p| !p.tx.is_closed())
            .map(|p| p.tx.clone())
    }

    async fn connect(self: &Arc<Self>, peer: IpAddr) -> io::Result<mpsc::Sender<Bytes>> {
        if let Some(tx) = self.live(&peer) {
            return Ok(tx);
        }
        let _guard = self.connecting.lock().await;
        if let Some(tx) = self.live(&peer) {
            return Ok(tx);
        }
        let port = self
            .ports
            .lock()
            .expect("ports lock")
            .get(&peer)
            .copied()
            .unwrap_or(self.cfg.peer_port);
        let to = SocketAddr::new(peer, port);
        // Connect from our listening address when it is a specific one, so
        // the peer sees the address it knows us by (several routers on one
        // host, e.g. 127.0.0.1 and 127.0.0.2).
        let local = self.cfg.listen.ip();
        let socket = if peer.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if !local.is_unspecified() && local.is_ipv4() == peer.is_ipv4() {
            socket.bind(SocketAddr::new(local, 0))?;
        }
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(to))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("connect to {to}")))??;
        self.counters.connects.fetch_add(1, Ordering::Relaxed);
        let mut c = self.lock();
        Ok(self
            .attach(&mut c, peer, stream, false)
            .expect("an outgoing connection carries our sends"))
    }

    async fn send(self: &Arc<Self>, peer: IpAddr, msg: Bytes) -> io::Result<()> {
        CxtpCodec::new(self.cfg.max_frame).check(&msg)?;
        for _ in 0..2 {
            let tx = self.connect(peer).await?;
            match tx.send(msg.clone()).await {
                Ok(()) => return Ok(()),
                Err(_) => continue, // connection died: reconnect once
            }
        }
        Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "peer connection closed",
        ))
    }
}

/// Sends through a [`TcpTransport`] (see [`TcpTransport::sender`]).
#[derive(Clone)]
pub struct TcpSender {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TcpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpSender").finish_non_exhaustive()
    }
}

impl TcpSender {
    /// Queue `msg` for `peer`, connecting if needed; waits while the
    /// peer's queue is full.
    pub async fn send(&self, peer: IpAddr, msg: Bytes) -> io::Result<()> {
        self.inner.send(peer, msg).await
    }

    /// Set the port used to reach `peer`.
    pub fn set_peer_port(&self, peer: IpAddr, port: u16) {
        self.inner
            .ports
            .lock()
            .expect("ports lock")
            .insert(peer, port);
    }

    /// The transport's counters and open connections.
    pub fn stats(&self) -> TransportStats {
        self.inner.stats()
    }
}

impl Transport for TcpTransport {
    async fn send(&self, peer: IpAddr, msg: Bytes) -> io::Result<()> {
        self.inner.send(peer, msg).await
    }

    async fn recv(&mut self) -> Option<(IpAddr, Bytes)> {
        self.rx.recv().await
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.accept.abort();
        let tasks: Vec<AbortHandle> = {
            let mut c = self.inner.lock();
            c.peers.clear();
            c.open.values_mut().filter_map(|e| e.task.take()).collect()
        };
        tasks.iter().for_each(AbortHandle::abort);
    }
}

#[cfg(test)]
mod tests;
