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
//! bounded (sending waits when a peer's queue is full), frames are at most
//! 65,535 octets by construction, and a connection that fails is dropped
//! and re-established on the next send.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::{Decoder, Encoder};

use crate::wire::{Header, HEADER_LEN};

/// IANA port of CXTP (registered for SCTP; used here for TCP too).
pub const DEFAULT_PORT: u16 = 5091;

/// Splits a byte stream into CXTP messages using the header Length.
#[derive(Clone, Copy, Debug, Default)]
pub struct CxtpCodec;

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

impl Decoder for CxtpCodec {
    type Item = Bytes;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> io::Result<Option<Bytes>> {
        if src.len() < HEADER_LEN {
            src.reserve(HEADER_LEN - src.len());
            return Ok(None);
        }
        let h = Header::parse(&src[..HEADER_LEN]).map_err(invalid)?;
        let len = h.length as usize;
        if len < HEADER_LEN {
            return Err(invalid(format!(
                "{}: Length {len} is shorter than the header",
                h.msg_type
            )));
        }
        if src.len() < len {
            src.reserve(len - src.len());
            return Ok(None);
        }
        Ok(Some(src.split_to(len).freeze()))
    }
}

impl Encoder<Bytes> for CxtpCodec {
    type Error = io::Error;

    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> io::Result<()> {
        let h = Header::parse(&item).map_err(invalid)?;
        if h.length as usize != item.len() {
            return Err(invalid("header Length disagrees with the message size"));
        }
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
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            listen: SocketAddr::new(IpAddr::from([0u8; 16]), DEFAULT_PORT),
            peer_port: DEFAULT_PORT,
            peer_ports: HashMap::new(),
            send_queue: 256,
            recv_queue: 1024,
        }
    }
}

struct Peer {
    id: u64,
    tx: mpsc::Sender<Bytes>,
    tasks: [JoinHandle<()>; 2],
}

struct Inner {
    cfg: TransportConfig,
    peers: Mutex<HashMap<IpAddr, Peer>>,
    ports: Mutex<HashMap<IpAddr, u16>>,
    /// Serialises connection set-up so concurrent senders share one.
    connecting: tokio::sync::Mutex<()>,
    /// Tasks of extra connections from a peer we already have one with.
    orphans: Mutex<Vec<JoinHandle<()>>>,
    in_tx: mpsc::Sender<(IpAddr, Bytes)>,
    next_id: AtomicU64,
    connects: AtomicU64,
    accepts: AtomicU64,
}

impl Inner {
    /// Register a connection for `ip` (unless one exists and `replace` is
    /// false); spawns its reader and writer.
    fn attach(
        self: &Arc<Self>,
        ip: IpAddr,
        stream: TcpStream,
        replace: bool,
    ) -> Option<mpsc::Sender<Bytes>> {
        let _ = stream.set_nodelay(true);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Bytes>(self.cfg.send_queue.max(1));
        let in_tx = self.in_tx.clone();
        let me = Arc::downgrade(self);
        let reader = tokio::spawn(async move {
            let mut codec = CxtpCodec;
            let mut buf = BytesMut::with_capacity(64 * 1024);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(m)) => {
                        if in_tx.send((ip, m)).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    Ok(None) => {}
                    Err(_) => break, // not CXTP: drop the connection
                }
                match rd.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            if let Some(me) = me.upgrade() {
                me.detach(ip, id);
            }
        });
        let me = Arc::downgrade(self);
        let writer = tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if wr.write_all(&m).await.is_err() {
                    break;
                }
            }
            if let Some(me) = me.upgrade() {
                me.detach(ip, id);
            }
        });
        let mut peers = self.peers.lock().expect("peers lock");
        if !replace && peers.contains_key(&ip) {
            // Keep the existing connection for our sends; this one still
            // delivers what the peer sends on it.
            drop(tx);
            let mut o = self.orphans.lock().expect("orphans lock");
            o.retain(|h| !h.is_finished());
            o.push(reader);
            o.push(writer);
            return None;
        }
        if let Some(old) = peers.insert(
            ip,
            Peer {
                id,
                tx: tx.clone(),
                tasks: [reader, writer],
            },
        ) {
            old.tasks.iter().for_each(JoinHandle::abort);
        }
        Some(tx)
    }

    fn detach(&self, ip: IpAddr, id: u64) {
        let mut peers = self.peers.lock().expect("peers lock");
        if peers.get(&ip).is_some_and(|p| p.id == id) {
            if let Some(p) = peers.remove(&ip) {
                p.tasks.iter().for_each(JoinHandle::abort);
            }
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
            peers: Mutex::new(HashMap::new()),
            ports,
            connecting: tokio::sync::Mutex::new(()),
            orphans: Mutex::new(Vec::new()),
            in_tx,
            next_id: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            accepts: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&inner);
        let accept = tokio::spawn(async move {
            while let Ok((stream, addr)) = listener.accept().await {
                let Some(inner) = weak.upgrade() else { break };
                inner.accepts.fetch_add(1, Ordering::Relaxed);
                inner.attach(addr.ip(), stream, false);
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
        self.inner.connects.load(Ordering::Relaxed)
    }

    /// Incoming connections accepted so far.
    pub fn accepts(&self) -> u64 {
        self.inner.accepts.load(Ordering::Relaxed)
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
        let peers = self.peers.lock().expect("peers lock");
        peers
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
        self.connects.fetch_add(1, Ordering::Relaxed);
        Ok(self.attach(peer, stream, true).expect("replace registers"))
    }

    async fn send(self: &Arc<Self>, peer: IpAddr, msg: Bytes) -> io::Result<()> {
        CxtpCodec
            .encode(msg.clone(), &mut BytesMut::new())
            .map(drop)?;
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
        if let Ok(mut peers) = self.inner.peers.lock() {
            for (_, p) in peers.drain() {
                p.tasks.iter().for_each(JoinHandle::abort);
            }
        }
        if let Ok(mut o) = self.inner.orphans.lock() {
            o.drain(..).for_each(|h| h.abort());
        }
    }
}

#[cfg(test)]
mod tests;
