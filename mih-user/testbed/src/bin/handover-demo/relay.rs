//! The backhaul relay in the core namespace: delay, reordering and
//! duplication of MIH datagrams, delay of CXTP connections, and the
//! moments at which `--kill` strikes.
//!
//! Why a relay and not an nftables queue: this kernel has no `nft_queue`
//! (`CONFIG_NFT_QUEUE` is off) and no `netem`, and a queue would need a
//! netlink client for NFQUEUE verdicts besides. A relay needs only
//! sockets, and it sees whole MIH datagrams and whole CXTP messages, which
//! is what `--kill` needs to strike at a protocol step rather than at a
//! guessed time.
//!
//! Addressing (no address rewriting in the daemons' eyes): for every
//! ordered pair of eNBCs (i, j) the relay owns `relay_ip(i, j)` on the
//! core bridge, and eNBC i's configuration names `relay_ip(i, j)` as eNBC
//! j's MIH and CXTP address. What i sends there is sent on to j's real
//! backhaul address *from* `relay_ip(j, i)`, which is the address j has for
//! i; so each daemon sees each peer at one address both ways, and mihfd's
//! `check_peer_address` and the CXTP peer table work as without the relay.
//!
//! * MIH (UDP 4551): each datagram is held `delay` (plus, with reordering,
//!   a uniform random extra of up to `reorder`, so datagrams overtake each
//!   other), and with probability `duplicate` sent twice (the copy with its
//!   own random extra).
//! * CXTP (TCP 5091): each accepted connection is joined to a new one
//!   towards the peer; each direction is cut into CXTP messages (by the
//!   header's Length) and each message is written `delay` after it was
//!   read, in order. Reordering segments is TCP's business.
//! * Kills ([`Arm`]): the first CTD from the source to the destination
//!   (source or destination kill), the first CTDR from the destination
//!   (`--rollback kill`), or the first MIH_N2N_HO_Commit.request
//!   from the source's mihfd (mihfd kill), makes the relay SIGKILL the
//!   armed process before it forwards the message; with `drop` the message
//!   is not forwarded (nor anything after it in that direction of that
//!   connection), as if the sender died just before sending it, or the
//!   receiver just before reading it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use cxtp::wire::{Header, MessageType, HEADER_LEN};
use mih_user::orchestrator::mih::N2N_HO_COMMIT;
use mih_user::sessions::netns;
use mihf::wire::Opcode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};

use crate::topology::{backhaul_ip, relay_ip};

/// What the relay does to the traffic.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// eNBC indices (`Enbc::idx`).
    pub nodes: Vec<u32>,
    /// One-way delay of every MIH datagram and CXTP message.
    pub delay: Duration,
    /// With reordering: the largest random extra delay of a datagram.
    pub reorder: Option<Duration>,
    /// Percentage of MIH datagrams sent twice.
    pub duplicate_pct: f64,
    /// Seed of the random choices.
    pub seed: u64,
}

/// The protocol step a kill waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The first CTD from eNBC `from` to eNBC `to`.
    Ctd { from: u32, to: u32 },
    /// The first CTDR from eNBC `from` to eNBC `to`.
    Ctdr { from: u32, to: u32 },
    /// The first MIH_N2N_HO_Commit.request from `from`'s mihfd to `to`'s.
    MihCommit { from: u32, to: u32 },
}

/// A kill waiting for its moment.
#[derive(Clone, Copy, Debug)]
pub struct Arm {
    pub trigger: Trigger,
    /// The process to SIGKILL.
    pub pid: i32,
    /// Do not forward the message that fired (and what follows it in that
    /// direction of that connection).
    pub drop: bool,
}

#[derive(Default)]
struct Stats {
    mih_datagrams: AtomicU64,
    mih_duplicated: AtomicU64,
    mih_reordered: AtomicU64,
    cxtp_connections: AtomicU64,
    cxtp_connect_failures: AtomicU64,
    cxtp_messages: AtomicU64,
    cxtp_octets: AtomicU64,
    dropped_after_kill: AtomicU64,
    kills: AtomicU64,
}

struct Shared {
    cfg: RelayConfig,
    arm: Mutex<Option<Arm>>,
    fired: Mutex<Option<Instant>>,
    rng: Mutex<u64>,
    stats: Stats,
    /// Per (from, to): the highest sequence number delivered so far.
    delivered: Mutex<HashMap<(u32, u32), u64>>,
}

impl Shared {
    /// xorshift64*: a uniform u64.
    fn next(&self) -> u64 {
        let mut s = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        let mut x = *s;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *s = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A uniform number in [0, 1).
    fn unit(&self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The delay of one MIH datagram.
    fn datagram_delay(&self) -> Duration {
        let extra = self
            .cfg
            .reorder
            .map_or(Duration::ZERO, |r| r.mul_f64(self.unit()));
        self.cfg.delay + extra
    }

    /// If `t` is the armed trigger: kill, and say whether to drop.
    fn fire(&self, t: Trigger) -> Option<bool> {
        let mut arm = self.arm.lock().unwrap_or_else(|e| e.into_inner());
        let a = (*arm).filter(|a| a.trigger == t)?;
        *arm = None;
        // SAFETY: kill(2) with a pid the demo started and has not reaped.
        unsafe {
            libc::kill(a.pid, libc::SIGKILL);
        }
        *self.fired.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        self.stats.kills.fetch_add(1, Ordering::Relaxed);
        Some(a.drop)
    }

    fn delivered(&self, pair: (u32, u32), seq: u64) {
        let mut d = self.delivered.lock().unwrap_or_else(|e| e.into_inner());
        let max = d.entry(pair).or_insert(0);
        if seq < *max {
            self.stats.mih_reordered.fetch_add(1, Ordering::Relaxed);
        } else {
            *max = seq;
        }
    }
}

/// The running relay; stopped (and every socket closed) on drop.
pub struct Relay {
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse::<IpAddr>().expect("relay address"), port)
}

type Bound = Vec<((u32, u32), std::net::UdpSocket, std::net::TcpListener)>;

fn bind_all(nodes: &[u32]) -> Result<Bound, String> {
    let mut v = Vec::new();
    for &i in nodes {
        for &j in nodes.iter().filter(|&&j| j != i) {
            let a = relay_ip(i, j);
            let u = std::net::UdpSocket::bind(addr(&a, 4551))
                .map_err(|e| format!("relay UDP {a}:4551: {e}"))?;
            let l = std::net::TcpListener::bind(addr(&a, 5091))
                .map_err(|e| format!("relay TCP {a}:5091: {e}"))?;
            u.set_nonblocking(true).map_err(|e| e.to_string())?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            v.push(((i, j), u, l));
        }
    }
    Ok(v)
}

impl Relay {
    /// Bind every relay address in namespace `core_ns` (the addresses are
    /// already on its bridge) and start relaying on a thread of its own.
    pub fn start(core_ns: &str, cfg: RelayConfig) -> Result<Relay, String> {
        let shared = Arc::new(Shared {
            rng: Mutex::new(cfg.seed | 1),
            cfg,
            arm: Mutex::new(None),
            fired: Mutex::new(None),
            stats: Stats::default(),
            delivered: Mutex::new(HashMap::new()),
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let path = netns::path(core_ns);
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("relay".into())
            .spawn(move || {
                // Every socket the relay makes (the connections towards
                // the peers too) is made on this thread: in the core
                // namespace.
                let setup = netns::enter(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|()| bind_all(&sh.cfg.nodes))
                    .and_then(|b| {
                        tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .map(|rt| (b, rt))
                            .map_err(|e| e.to_string())
                    });
                let (bound, rt) = match setup {
                    Ok(x) => {
                        let _ = ready_tx.send(Ok(()));
                        x
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    if let Err(e) = serve(sh, bound, stop_rx).await {
                        eprintln!("relay: {e}");
                    }
                });
            })
            .map_err(|e| e.to_string())?;
        let r = Relay {
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "the relay did not start".to_string())??;
        Ok(r)
    }

    /// Wait for `a.trigger` and kill `a.pid` then.
    pub fn arm(&self, a: Arm) {
        *self.shared.fired.lock().unwrap_or_else(|e| e.into_inner()) = None;
        *self.shared.arm.lock().unwrap_or_else(|e| e.into_inner()) = Some(a);
    }

    /// Forget a kill that did not fire.
    pub fn disarm(&self) {
        *self.shared.arm.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// When the armed kill fired (once).
    /// Whether the armed kill fired and was not taken yet.
    pub fn has_fired(&self) -> bool {
        self.shared
            .fired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    pub fn take_fired(&self) -> Option<Instant> {
        self.shared
            .fired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    pub fn stats(&self) -> Value {
        let s = &self.shared.stats;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "delay_ms": self.shared.cfg.delay.as_secs_f64() * 1000.0,
            "reorder_max_ms": self.shared.cfg.reorder.map(|r| r.as_secs_f64() * 1000.0),
            "duplicate_percent": self.shared.cfg.duplicate_pct,
            "mih_datagrams": g(&s.mih_datagrams),
            "mih_duplicated": g(&s.mih_duplicated),
            "mih_delivered_out_of_order": g(&s.mih_reordered),
            "cxtp_connections": g(&s.cxtp_connections),
            "cxtp_connect_failures": g(&s.cxtp_connect_failures),
            "cxtp_messages": g(&s.cxtp_messages),
            "cxtp_octets": g(&s.cxtp_octets),
            "kills": g(&s.kills),
            "dropped_after_kill": g(&s.dropped_after_kill),
        })
    }

    pub fn line(&self) -> String {
        let v = self.stats();
        format!(
            "relay: {} MIH datagrams ({} duplicated, {} delivered out of order), {} CXTP connections, {} CXTP messages, {} kills",
            v["mih_datagrams"],
            v["mih_duplicated"],
            v["mih_delivered_out_of_order"],
            v["cxtp_connections"],
            v["cxtp_messages"],
            v["kills"]
        )
    }
}

async fn serve(sh: Arc<Shared>, bound: Bound, stop: oneshot::Receiver<()>) -> Result<(), String> {
    let mut udp = HashMap::new();
    let mut listeners = Vec::new();
    for (pair, u, l) in bound {
        udp.insert(
            pair,
            Arc::new(UdpSocket::from_std(u).map_err(|e| e.to_string())?),
        );
        listeners.push((pair, TcpListener::from_std(l).map_err(|e| e.to_string())?));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (&(i, j), sock) in &udp {
        let out = udp[&(j, i)].clone();
        tasks.spawn(udp_pump(sh.clone(), (i, j), sock.clone(), out));
    }
    for ((i, j), l) in listeners {
        tasks.spawn(tcp_accept(sh.clone(), (i, j), l));
    }
    let _ = stop.await;
    tasks.shutdown().await;
    Ok(())
}

fn is_commit_request(d: &[u8]) -> bool {
    d.len() >= 8
        && u16::from_be_bytes([d[2], d[3]]) == N2N_HO_COMMIT.with_opcode(Opcode::Request).0
        // not a pure ACK (ACK-Rsp set) of it
        && d[0] & 0x04 == 0
}

/// Datagrams `from` sent to its address for `to`: on to `to`, from the
/// address `to` has for `from`.
async fn udp_pump(
    sh: Arc<Shared>,
    (from, to): (u32, u32),
    sock: Arc<UdpSocket>,
    out: Arc<UdpSocket>,
) {
    let dst = addr(&backhaul_ip(to), 4551);
    let mut buf = vec![0u8; 65_536];
    let mut seq = 0u64;
    loop {
        let Ok((n, _)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let data = Bytes::copy_from_slice(&buf[..n]);
        sh.stats.mih_datagrams.fetch_add(1, Ordering::Relaxed);
        if is_commit_request(&data) && sh.fire(Trigger::MihCommit { from, to }) == Some(true) {
            sh.stats.dropped_after_kill.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        seq += 1;
        let copies = if sh.cfg.duplicate_pct > 0.0 && sh.unit() * 100.0 < sh.cfg.duplicate_pct {
            sh.stats.mih_duplicated.fetch_add(1, Ordering::Relaxed);
            2
        } else {
            1
        };
        for _ in 0..copies {
            let d = sh.datagram_delay();
            if d.is_zero() {
                let _ = out.send_to(&data, dst).await;
                sh.delivered((from, to), seq);
            } else {
                let (out, data, sh) = (out.clone(), data.clone(), sh.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(d).await;
                    let _ = out.send_to(&data, dst).await;
                    sh.delivered((from, to), seq);
                });
            }
        }
    }
}

/// Connections `from` opens to its address for `to`: joined to one from
/// the address `to` has for `from` to `to`'s CXTP port.
async fn tcp_accept(sh: Arc<Shared>, (from, to): (u32, u32), l: TcpListener) {
    loop {
        let Ok((c1, _)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        tokio::spawn(tcp_join(sh.clone(), (from, to), c1));
    }
}

async fn tcp_join(sh: Arc<Shared>, (from, to): (u32, u32), c1: TcpStream) {
    let connect = async {
        let s = TcpSocket::new_v4()?;
        s.bind(addr(&relay_ip(to, from), 0))?;
        s.connect(addr(&backhaul_ip(to), 5091)).await
    };
    let c2 = match tokio::time::timeout(Duration::from_secs(3), connect).await {
        Ok(Ok(c)) => c,
        _ => {
            // The peer is down: refuse as it would.
            sh.stats
                .cxtp_connect_failures
                .fetch_add(1, Ordering::Relaxed);
            let _ = c1.set_zero_linger();
            return;
        }
    };
    sh.stats.cxtp_connections.fetch_add(1, Ordering::Relaxed);
    let _ = c1.set_nodelay(true);
    let _ = c2.set_nodelay(true);
    let (r1, w1) = c1.into_split();
    let (r2, w2) = c2.into_split();
    let a = tokio::spawn(tcp_pump(sh.clone(), (from, to), r1, w2));
    let b = tokio::spawn(tcp_pump(sh, (to, from), r2, w1));
    let _ = a.await;
    let _ = b.await;
}

/// One direction of a joined connection: whole CXTP messages, each
/// written `delay` after it was read.
async fn tcp_pump(
    sh: Arc<Shared>,
    (from, to): (u32, u32),
    mut r: OwnedReadHalf,
    w: OwnedWriteHalf,
) {
    let (tx, rx) = mpsc::unbounded_channel::<(tokio::time::Instant, Bytes)>();
    let writer = tokio::spawn(tcp_write(w, rx));
    let mut buf = BytesMut::with_capacity(8192);
    let mut raw = false;
    let mut dropping = false;
    'read: loop {
        match r.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        loop {
            let (frame, ty) = if raw {
                if buf.is_empty() {
                    break;
                }
                (buf.split().freeze(), None)
            } else {
                if buf.len() < HEADER_LEN {
                    break;
                }
                match Header::parse(&buf[..HEADER_LEN]) {
                    Ok(h) if h.length as usize >= HEADER_LEN => {
                        let len = h.length as usize;
                        if buf.len() < len {
                            break;
                        }
                        (buf.split_to(len).freeze(), Some(h.msg_type))
                    }
                    // Not CXTP: pass the octets on as they come.
                    _ => {
                        raw = true;
                        continue;
                    }
                }
            };
            sh.stats.cxtp_messages.fetch_add(1, Ordering::Relaxed);
            sh.stats
                .cxtp_octets
                .fetch_add(frame.len() as u64, Ordering::Relaxed);
            let trigger = match ty {
                Some(MessageType::Ctd) => Some(Trigger::Ctd { from, to }),
                Some(MessageType::Ctdr) => Some(Trigger::Ctdr { from, to }),
                _ => None,
            };
            if trigger.is_some_and(|t| sh.fire(t) == Some(true)) {
                dropping = true;
            }
            if dropping {
                sh.stats.dropped_after_kill.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let due = tokio::time::Instant::now() + sh.cfg.delay;
            if tx.send((due, frame)).is_err() {
                break 'read;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

async fn tcp_write(
    mut w: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<(tokio::time::Instant, Bytes)>,
) {
    while let Some((due, b)) = rx.recv().await {
        // (No timer for no delay: tokio's timers tick in milliseconds.)
        if due > tokio::time::Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        if w.write_all(&b).await.is_err() {
            return;
        }
    }
    // The other side finished sending: pass the FIN on.
    let _ = w.shutdown().await;
}
