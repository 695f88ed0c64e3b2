//! The tokio drivers of the MIHF daemon (feature `daemon`): UDP and TCP
//! sockets for peer MIHFs, the UDP MIH_SAP for local users, the timer, and
//! the HTTP endpoint for metrics. They only move bytes and time into the
//! sans-IO [`Node`] and its output back onto sockets.
//!
//! Concurrency: one [`Node`] behind a mutex. Every socket has a reader task
//! that takes the lock for one frame, feeds the node, and sends what it
//! produced with non-blocking sends (UDP) or through a bounded per-connection
//! queue (TCP). A timer task sleeps until the node's next deadline. The lock
//! is never held across an await.

pub mod client;
pub mod config;
pub mod metrics;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::proto::node::{Node, NodeEvent, NodeStats, PeerConfig};
use crate::proto::{Endpoint, Transmit};
use crate::wire::HEADER_LEN;
use config::Config;
use daemon_kit::metrics::Histogram;

/// Largest MIH frame: the header and a 16-bit payload length.
const MAX_FRAME: usize = HEADER_LEN + 65_535;
/// TCP connections idle this long are closed.
const TCP_IDLE: Duration = Duration::from_secs(300);
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Socket-level counters (the protocol counters live in the node).
#[derive(Debug, Default)]
pub struct IoStats {
    pub udp_send_errors: AtomicU64,
    pub sap_send_errors: AtomicU64,
    pub tcp_queue_drops: AtomicU64,
    pub tcp_connect_errors: AtomicU64,
    pub tcp_rejected: AtomicU64,
    /// Incoming TCP connections refused at once: from an address of no
    /// peer (and not one a peer may be learned from).
    pub tcp_refused_unknown: AtomicU64,
    /// Incoming TCP connections refused at `max_tcp_connections_per_ip`.
    pub tcp_refused_per_ip: AtomicU64,
    /// TCP connections closed because a frame on them came from an unknown
    /// MIHF or from an address that is not the peer's.
    pub tcp_closed_unknown: AtomicU64,
    pub tcp_stream_errors: AtomicU64,
    pub dropped_frames: AtomicU64,
}

/// User lifecycle lines (registered, left) logged at INFO per summary
/// interval; the rest go to DEBUG (the counters have them all).
const USER_LOG_BUDGET: u32 = 32;

struct State {
    node: Node,
    armed: Option<Instant>,
    latency: Histogram,
    tcp: HashMap<SocketAddr, mpsc::Sender<Bytes>>,
    /// Start of the current user log budget and the INFO lines used.
    user_log: (Instant, u32),
}

pub(crate) struct Shared {
    state: Mutex<State>,
    timer: Notify,
    udp: Vec<Arc<UdpSocket>>,
    sap: Arc<UdpSocket>,
    io: IoStats,
    max_tcp: usize,
    max_tcp_per_ip: usize,
    tcp_queue: usize,
    log_interval: Duration,
    started: Instant,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running daemon.
pub struct Daemon {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    /// Bound UDP addresses for peers.
    pub udp_addrs: Vec<SocketAddr>,
    /// Bound TCP addresses for peers.
    pub tcp_addrs: Vec<SocketAddr>,
    /// Bound SAP address.
    pub sap_addr: SocketAddr,
    /// Bound metrics address, if enabled.
    pub metrics_addr: Option<SocketAddr>,
}

fn canon(a: SocketAddr) -> SocketAddr {
    match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => a,
        },
        v4 => v4,
    }
}

fn bind_udp(addr: SocketAddr, v6only: bool, buffer: usize) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(v6only)?;
    }
    s.set_reuse_address(true)?;
    if buffer > 0 {
        // Best effort: the kernel may clamp these.
        let _ = s.set_recv_buffer_size(buffer);
        let _ = s.set_send_buffer_size(buffer);
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

fn bind_tcp(addr: SocketAddr, v6only: bool) -> io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(v6only)?;
    }
    s.set_reuse_address(true)?;
    s.set_tcp_nodelay(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(128)?;
    TcpListener::from_std(s.into())
}

/// IPV6_V6ONLY for a v6 address when a v4 address shares its port.
fn v6only(list: &[SocketAddr], a: &SocketAddr) -> bool {
    a.is_ipv6() && list.iter().any(|o| o.is_ipv4() && o.port() == a.port())
}

fn with_key<T>(key: &str, addr: SocketAddr, r: io::Result<T>) -> io::Result<T> {
    r.map_err(|e| io::Error::new(e.kind(), format!("{key} = {addr}: {e}")))
}

impl Daemon {
    /// Bind every socket and start the tasks. Errors name the config key.
    pub async fn start(cfg: &Config) -> io::Result<Daemon> {
        cfg.validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let mut udp = Vec::new();
        let mut udp_addrs = Vec::new();
        for a in &cfg.listen.udp {
            let s = with_key(
                "listen.udp",
                *a,
                bind_udp(*a, v6only(&cfg.listen.udp, a), cfg.listen.udp_buffer),
            )?;
            udp_addrs.push(s.local_addr()?);
            udp.push(Arc::new(s));
        }
        let mut tcp_listeners = Vec::new();
        let mut tcp_addrs = Vec::new();
        for a in &cfg.listen.tcp {
            let l = with_key("listen.tcp", *a, bind_tcp(*a, v6only(&cfg.listen.tcp, a)))?;
            tcp_addrs.push(l.local_addr()?);
            tcp_listeners.push(l);
        }
        let sap = Arc::new(with_key(
            "sap.listen",
            cfg.sap.listen,
            bind_udp(cfg.sap.listen, false, cfg.listen.udp_buffer),
        )?);
        let sap_addr = sap.local_addr()?;
        let metrics_listener = match cfg.metrics.listen {
            Some(a) => Some(with_key("metrics.listen", a, TcpListener::bind(a).await)?),
            None => None,
        };
        let metrics_addr = match &metrics_listener {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let now = Instant::now();
        let mut node_cfg = cfg.node_config();
        // A new TID start at every start (not where the last life began:
        // a peer may still hold duplicate records of those TIDs).
        node_cfg.engine.tid_seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32)
            | 1;
        let node = Node::new(node_cfg, now);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                node,
                armed: None,
                latency: metrics::latency_histogram(),
                tcp: HashMap::new(),
                user_log: (now, 0),
            }),
            timer: Notify::new(),
            udp,
            sap,
            io: IoStats::default(),
            max_tcp: cfg.limits.max_tcp_connections,
            max_tcp_per_ip: cfg.limits.max_tcp_connections_per_ip,
            tcp_queue: cfg.limits.tcp_queue,
            log_interval: Duration::from_millis(cfg.timers.log_summary_interval_ms),
            started: now,
        });
        let mut tasks = Vec::new();
        for s in &shared.udp {
            tasks.push(tokio::spawn(udp_reader(shared.clone(), s.clone(), false)));
        }
        tasks.push(tokio::spawn(udp_reader(
            shared.clone(),
            shared.sap.clone(),
            true,
        )));
        for l in tcp_listeners {
            tasks.push(tokio::spawn(tcp_acceptor(shared.clone(), l)));
        }
        tasks.push(tokio::spawn(timer_task(shared.clone())));
        if let Some(l) = metrics_listener {
            tasks.push(tokio::spawn(metrics::serve(
                shared.clone(),
                l,
                Arc::default(),
            )));
        }
        info!(
            mihf_id = %cfg.mihf_id,
            udp = ?udp_addrs,
            tcp = ?tcp_addrs,
            sap = %sap_addr,
            metrics = ?metrics_addr,
            peers = cfg.peers.len(),
            "mihfd started"
        );
        // Kick the timer (start-up discovery).
        shared.timer.notify_one();
        Ok(Daemon {
            shared,
            tasks,
            udp_addrs,
            tcp_addrs,
            sap_addr,
            metrics_addr,
        })
    }

    /// Add or replace a peer at run time.
    pub fn add_peer(&self, p: PeerConfig) -> Result<(), String> {
        let mut st = self.shared.lock();
        st.node.add_peer(p)
    }

    /// The node's counters.
    pub fn stats(&self) -> NodeStats {
        self.shared.lock().node.stats()
    }

    /// Sizes of the bounded tables.
    pub fn table_sizes(&self) -> crate::proto::node::TableSizes {
        self.shared.lock().node.table_sizes()
    }

    /// The Prometheus text exposition of the metrics.
    pub fn metrics_text(&self) -> String {
        metrics::render(&self.shared)
    }

    /// Stop every task and close the sockets.
    pub async fn shutdown(self) {
        {
            let mut st = self.shared.lock();
            st.node.shutdown(Instant::now());
            pump(&self.shared, &mut st);
        }
        // Let queued TCP frames go out.
        tokio::task::yield_now().await;
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        let tcp: Vec<_> = self.shared.lock().tcp.drain().collect();
        drop(tcp);
        info!("mihfd stopped");
    }
}

/// Feed one frame to the node and send what it produced. False when the
/// frame was refused because its sender is not a peer.
fn input(shared: &Arc<Shared>, from: Endpoint, bytes: Bytes) -> bool {
    let now = Instant::now();
    let mut st = shared.lock();
    let mut from_peer = true;
    if let Err(e) = st.node.handle_frame(now, from, bytes) {
        shared.io.dropped_frames.fetch_add(1, Ordering::Relaxed);
        from_peer = !e.is_unknown_sender();
        debug!(%from, error = %e, "frame dropped");
    }
    pump(shared, &mut st);
    from_peer
}

/// Whether a user lifecycle line may still be logged at INFO.
fn user_log_allowed(shared: &Shared, st: &mut State, now: Instant) -> bool {
    let (start, used) = &mut st.user_log;
    if now.saturating_duration_since(*start) >= shared.log_interval {
        *start = now;
        *used = 0;
    }
    *used += 1;
    *used <= USER_LOG_BUDGET
}

fn log_event(shared: &Shared, st: &mut State, e: NodeEvent) {
    match e {
        NodeEvent::Completed { mid, rtt, status } => {
            st.latency.observe(rtt.as_secs_f64());
            debug!(
                mid = format_args!("{:#06x}", mid.0),
                ?rtt,
                ?status,
                "transaction completed"
            );
        }
        NodeEvent::Failed { mid, reason } => {
            info!(
                mid = format_args!("{:#06x}", mid.0),
                ?reason,
                "transaction failed"
            )
        }
        NodeEvent::PeerLearned { id, from, evicted } => match evicted {
            Some(old) => debug!(peer = %id, %from, evicted = %old, "peer learned"),
            None => debug!(peer = %id, %from, "peer learned"),
        },
        NodeEvent::UserRegistered { id, addr, previous } => {
            let loud = user_log_allowed(shared, st, Instant::now());
            match (previous, loud) {
                (Some(old), true) => {
                    info!(user = %id, %addr, previous = %old, "user registered again from a new address")
                }
                (None, true) => info!(user = %id, %addr, "user registered"),
                (Some(old), false) => {
                    debug!(user = %id, %addr, previous = %old, "user registered again from a new address")
                }
                (None, false) => debug!(user = %id, %addr, "user registered"),
            }
        }
        NodeEvent::UserDeregistered { id, addr } => {
            if user_log_allowed(shared, st, Instant::now()) {
                info!(user = %id, %addr, "user left");
            } else {
                debug!(user = %id, %addr, "user left");
            }
        }
        NodeEvent::UserRefused { id, addr, max } => warn!(
            user = %id,
            %addr,
            max_users = max,
            "user registration refused: {max} users are registered (limits.max_users); \
             further refusals in this interval are counted in mihf_users_refused_total"
        ),
        NodeEvent::Summary(s) => {
            let secs = s.interval.as_secs_f64().round();
            info!(
                learned = s.learned,
                evicted = s.evicted,
                rate_limited = s.rate_limited,
                outside_learn_from = s.outside_learn_from,
                users_refused = s.users_refused,
                interval_s = secs,
                "learned {} peers in the last {secs} s, {} evicted, {} rate-limited, \
                 {} outside learn_from; {} user registrations refused",
                s.learned,
                s.evicted,
                s.rate_limited,
                s.outside_learn_from,
                s.users_refused
            )
        }
    }
}

/// Send everything queued, record events, re-arm the timer.
fn pump(shared: &Arc<Shared>, st: &mut State) {
    while let Some(t) = st.node.poll_transmit() {
        transmit(shared, st, t);
    }
    while let Some(e) = st.node.poll_event() {
        log_event(shared, st, e);
    }
    let next = st.node.poll_timeout();
    if let Some(n) = next {
        if st.armed.is_none_or(|a| n < a) {
            st.armed = Some(n);
            shared.timer.notify_one();
        }
    }
}

fn udp_socket_for(shared: &Shared, to: SocketAddr) -> Option<(&UdpSocket, SocketAddr)> {
    let same = shared
        .udp
        .iter()
        .find(|s| s.local_addr().is_ok_and(|l| l.is_ipv4() == to.is_ipv4()));
    if let Some(s) = same {
        return Some((s, to));
    }
    // A v4 destination through a dual-stack v6 socket.
    match to {
        SocketAddr::V4(v4) => shared.udp.first().map(|s| {
            (
                s.as_ref(),
                SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port()),
            )
        }),
        SocketAddr::V6(_) => None,
    }
}

fn transmit(shared: &Arc<Shared>, st: &mut State, t: Transmit) {
    match t.to {
        Endpoint::Sap(a) => {
            if let Err(e) = shared.sap.try_send_to(&t.payload, a) {
                shared.io.sap_send_errors.fetch_add(1, Ordering::Relaxed);
                debug!(to = %a, error = %e, "SAP send failed");
            }
        }
        Endpoint::Udp(a) => match udp_socket_for(shared, a) {
            Some((s, dst)) => {
                if let Err(e) = s.try_send_to(&t.payload, dst) {
                    shared.io.udp_send_errors.fetch_add(1, Ordering::Relaxed);
                    debug!(to = %a, error = %e, "UDP send failed");
                }
            }
            None => {
                shared.io.udp_send_errors.fetch_add(1, Ordering::Relaxed);
            }
        },
        Endpoint::Tcp(a) => {
            if let Some(tx) = st.tcp.get(&a) {
                match tx.try_send(t.payload) {
                    Ok(()) => return,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        shared.io.tcp_queue_drops.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Err(mpsc::error::TrySendError::Closed(p)) => {
                        st.tcp.remove(&a);
                        return transmit(
                            shared,
                            st,
                            Transmit {
                                to: t.to,
                                payload: p,
                            },
                        );
                    }
                }
            }
            if st.tcp.len() >= shared.max_tcp {
                shared.io.tcp_rejected.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let (tx, rx) = mpsc::channel(shared.tcp_queue);
            let _ = tx.try_send(t.payload);
            st.tcp.insert(a, tx.clone());
            let me = shared.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(TCP_CONNECT_TIMEOUT, TcpStream::connect(a)).await {
                    Ok(Ok(stream)) => {
                        let _ = stream.set_nodelay(true);
                        tcp_conn(me, stream, a, tx, rx).await
                    }
                    other => {
                        me.io.tcp_connect_errors.fetch_add(1, Ordering::Relaxed);
                        warn!(to = %a, result = ?other.map(|r| r.map(|_| ())), "TCP connect failed");
                        let mut st = me.lock();
                        if st.tcp.get(&a).is_some_and(|t| t.same_channel(&tx)) {
                            st.tcp.remove(&a);
                        }
                        st.node.endpoint_failed(Instant::now(), Endpoint::Tcp(a));
                        pump(&me, &mut st);
                    }
                }
            });
        }
    }
}

async fn udp_reader(shared: Arc<Shared>, sock: Arc<UdpSocket>, is_sap: bool) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(v) => v,
            Err(e) => {
                // E.g. ICMP port unreachable reported on a later receive.
                debug!(error = %e, "UDP receive error");
                continue;
            }
        };
        let from = canon(from);
        let ep = if is_sap {
            Endpoint::Sap(from)
        } else {
            Endpoint::Udp(from)
        };
        let bytes = Bytes::copy_from_slice(&buf[..n]);
        input(&shared, ep, bytes);
        // Drain what is already queued before going back to the reactor.
        for _ in 0..64 {
            let Ok((n, from)) = sock.try_recv_from(&mut buf) else {
                break;
            };
            let from = canon(from);
            let ep = if is_sap {
                Endpoint::Sap(from)
            } else {
                Endpoint::Udp(from)
            };
            input(&shared, ep, Bytes::copy_from_slice(&buf[..n]));
        }
    }
}

async fn timer_task(shared: Arc<Shared>) {
    loop {
        let next = {
            let mut st = shared.lock();
            let next = st.node.poll_timeout();
            st.armed = next;
            next
        };
        let sleep = async {
            match next {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {
                let now = Instant::now();
                let mut st = shared.lock();
                st.node.handle_timeout(now);
                st.armed = None;
                pump(&shared, &mut st);
            }
            _ = shared.timer.notified() => {}
        }
    }
}

async fn tcp_acceptor(shared: Arc<Shared>, l: TcpListener) {
    loop {
        let (stream, from) = match l.accept().await {
            Ok(v) => v,
            Err(e) => {
                warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let from = canon(from);
        let (tx, rx) = mpsc::channel(shared.tcp_queue);
        {
            let mut st = shared.lock();
            // Dropping the stream closes it, before anything is read.
            if !st.node.accepts_source(from.ip()) {
                shared
                    .io
                    .tcp_refused_unknown
                    .fetch_add(1, Ordering::Relaxed);
                debug!(%from, "TCP connection refused: not a peer's address");
                continue;
            }
            if st.tcp.len() >= shared.max_tcp {
                shared.io.tcp_rejected.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if st.tcp.keys().filter(|a| a.ip() == from.ip()).count() >= shared.max_tcp_per_ip {
                shared.io.tcp_refused_per_ip.fetch_add(1, Ordering::Relaxed);
                debug!(%from, "TCP connection refused: limits.max_tcp_connections_per_ip");
                continue;
            }
            st.tcp.insert(from, tx.clone());
        }
        let _ = SockRef::from(&stream).set_tcp_nodelay(true);
        tokio::spawn(tcp_conn(shared.clone(), stream, from, tx, rx));
    }
}

/// Read frames from a TCP stream (cut by 8 + Payload Length) and write the
/// frames queued for it.
async fn tcp_conn(
    shared: Arc<Shared>,
    stream: TcpStream,
    remote: SocketAddr,
    tx: mpsc::Sender<Bytes>,
    mut rx: mpsc::Receiver<Bytes>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let writer = async {
        while let Some(f) = rx.recv().await {
            if wr.write_all(&f).await.is_err() {
                break;
            }
        }
    };
    let reader = async {
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            let read = tokio::time::timeout(TCP_IDLE, rd.read_buf(&mut buf)).await;
            match read {
                Ok(Ok(0)) | Err(_) => break,
                Ok(Err(_)) => {
                    shared.io.tcp_stream_errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(Ok(_)) => {}
            }
            while buf.len() >= HEADER_LEN {
                let len = HEADER_LEN + usize::from(u16::from_be_bytes([buf[6], buf[7]]));
                if buf.len() < len {
                    buf.reserve(len.min(MAX_FRAME) - buf.len());
                    break;
                }
                let frame = buf.split_to(len).freeze();
                if !input(&shared, Endpoint::Tcp(remote), frame) {
                    shared.io.tcp_closed_unknown.fetch_add(1, Ordering::Relaxed);
                    debug!(%remote, "TCP connection closed: a frame from an unknown MIHF");
                    return;
                }
            }
        }
    };
    tokio::select! {
        _ = writer => {}
        _ = reader => {}
    }
    let mut st = shared.lock();
    if st.tcp.get(&remote).is_some_and(|t| t.same_channel(&tx)) {
        st.tcp.remove(&remote);
    }
    debug!(%remote, "TCP connection closed");
}

/// Uptime, for metrics.
pub(crate) fn uptime(shared: &Shared) -> Duration {
    shared.started.elapsed()
}
