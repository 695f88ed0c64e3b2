//! Tokio drivers of the X2AP trigger (feature `daemon`): the UDP and TCP taps,
//! the timeout task and pcap replay.
//!
//! SCTP sockets are not available on the eNBC, so the eNodeB (or a mirror port
//! next to it) forwards its X2AP PDUs:
//!
//! * **UDP**: one X2AP PDU per datagram (no header);
//! * **TCP**: a stream of PDUs, each preceded by its length as a u32 in network
//!   order ([`crate::x2ap::framing`]); a length of 0 or above 65535 closes the
//!   connection;
//! * **pcap replay**: a capture of X2AP over SCTP (DATA chunks with PPID 27).
//!
//! The drivers are thin: every PDU goes to [`X2Trigger::handle_pdu`] under a
//! short lock, the [`X2Event`]s it queued are taken with
//! [`X2Trigger::poll_event`] under the same lock, and then sent, in order, to
//! the channel returned by [`Tap::new`]. No lock is held across an `.await`.
//!
//! ```no_run
//! # async fn f() -> std::io::Result<()> {
//! use mih_user::tap::Tap;
//! use mih_user::x2ap::{X2Trigger, X2TriggerConfig};
//!
//! let (tap, mut events) = Tap::new(X2Trigger::new(X2TriggerConfig::default()).unwrap(), 256);
//! let udp = tokio::net::UdpSocket::bind("127.0.0.1:36422").await?;
//! let t = tap.clone();
//! tokio::spawn(async move { t.run_udp(udp).await });
//! let t = tap.clone();
//! tokio::spawn(async move { t.run_timeouts().await });
//! while let Some(event) = events.recv().await {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use cxtp::transport::accept::Acceptor;

use crate::x2ap::framing::LengthPrefixed;
use crate::x2ap::sctp::{CaptureError, CaptureStats, PcapReplay};
use crate::x2ap::{X2Event, X2Trigger};

/// Most TCP tap connections served at once.
pub const MAX_TCP_CONNECTIONS: usize = 64;

/// Longest the timeout task sleeps between two looks at the trigger.
const TIMEOUT_TICK: Duration = Duration::from_millis(250);

/// The trigger shared by the drivers, and where their events go.
#[derive(Debug, Clone)]
pub struct Tap {
    trigger: Arc<Mutex<X2Trigger>>,
    events: mpsc::Sender<X2Event>,
    connections: Arc<Semaphore>,
    accept_errors: Arc<AtomicU64>,
}

/// How fast [`Tap::replay_pcap`] replays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Back to back; the trigger still sees the capture's time line.
    AsFastAsPossible,
    /// At the capture's pace, scaled (2.0 = twice as fast).
    RealTime {
        /// Speed factor (> 0).
        speed: f64,
    },
}

impl Tap {
    /// Wrap `trigger`; events are delivered on the returned receiver (a bounded
    /// channel of `capacity` events: a slow consumer slows the taps down).
    pub fn new(trigger: X2Trigger, capacity: usize) -> (Tap, mpsc::Receiver<X2Event>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Tap {
                trigger: Arc::new(Mutex::new(trigger)),
                events: tx,
                connections: Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS)),
                accept_errors: Arc::new(AtomicU64::new(0)),
            },
            rx,
        )
    }

    /// Accept errors of [`Tap::run_tcp`] so far (each is retried after a backoff).
    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Ordering::Relaxed)
    }

    /// Lock the trigger, e.g. to change its tables or read its counters. Do not
    /// hold the guard across an `.await`. A caller that feeds the trigger
    /// through the guard takes the events it queued with
    /// [`X2Trigger::poll_event`] before letting go of it (the taps would
    /// otherwise deliver them with their next PDU's).
    pub fn trigger(&self) -> MutexGuard<'_, X2Trigger> {
        // A panic while holding the lock cannot leave the trigger half-updated
        // in a way that matters more than stopping the taps would: recover.
        self.trigger.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn deliver(&self, events: Vec<X2Event>) -> Result<(), ()> {
        for e in events {
            if let X2Event::Malformed(err) = &e {
                tracing::debug!(%err, "malformed X2AP PDU");
            }
            self.events.send(e).await.map_err(|_| ())?;
        }
        Ok(())
    }

    async fn pdu(&self, bytes: &[u8]) -> Result<(), ()> {
        let now = Instant::now().into_std();
        let events = {
            let mut t = self.trigger();
            t.handle_pdu(now, bytes);
            drain(&mut t)
        };
        self.deliver(events).await
    }

    /// Receive one X2AP PDU per datagram until the event receiver is dropped
    /// (then `Ok`) or the socket fails.
    pub async fn run_udp(&self, socket: UdpSocket) -> io::Result<()> {
        let mut buf = vec![0u8; 65_536];
        loop {
            let (n, _peer) = socket.recv_from(&mut buf).await?;
            if self.pdu(&buf[..n]).await.is_err() {
                return Ok(());
            }
        }
    }

    /// Accept tap connections (at most [`MAX_TCP_CONNECTIONS`] at once), each a
    /// stream of length-prefixed PDUs, until the event receiver is dropped.
    /// Accept errors (e.g. EMFILE) are counted, logged and retried after a
    /// backoff; they never end the tap.
    pub async fn run_tcp(&self, listener: TcpListener) -> io::Result<()> {
        let mut acceptor = Acceptor::new("x2", self.accept_errors.clone());
        loop {
            let permit = match self.connections.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => return Ok(()),
            };
            let (stream, peer) = acceptor.accept(&listener).await;
            if self.events.is_closed() {
                return Ok(());
            }
            let tap = self.clone();
            tokio::spawn(async move {
                if let Err(e) = tap.serve_tcp(stream).await {
                    tracing::info!(%peer, error = %e, "X2AP tap connection closed");
                }
                drop(permit);
            });
        }
    }

    /// Serve one TCP tap connection until it closes, its framing breaks or the
    /// event receiver is dropped.
    pub async fn serve_tcp(&self, mut stream: TcpStream) -> io::Result<()> {
        let mut framing = LengthPrefixed::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let want = framing.wanted().min(buf.len());
            let n = stream.read(&mut buf[..want]).await?;
            if n == 0 {
                return Ok(());
            }
            framing.push(&buf[..n]);
            loop {
                match framing.next_pdu() {
                    Ok(Some(pdu)) => {
                        if self.pdu(&pdu).await.is_err() {
                            return Ok(());
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                }
            }
        }
    }

    /// Forget pending UEs as their timeouts pass, until the event receiver is dropped.
    pub async fn run_timeouts(&self) {
        loop {
            let next = self.trigger().poll_timeout();
            let tick = Instant::now() + TIMEOUT_TICK;
            let wake = next.map_or(tick, |d| Instant::from_std(d).min(tick));
            tokio::time::sleep_until(wake).await;
            let events = {
                let mut t = self.trigger();
                t.handle_timeout(Instant::now().into_std());
                drain(&mut t)
            };
            if self.deliver(events).await.is_err() || self.events.is_closed() {
                return;
            }
        }
    }

    /// Replay the X2AP PDUs of a pcap/pcapng capture (`file` is the whole
    /// file) through the trigger. The trigger sees the capture's time line
    /// (first packet = now), so its timeouts behave as they did live.
    pub async fn replay_pcap(&self, file: &[u8], pace: Pace) -> Result<CaptureStats, CaptureError> {
        let mut replay = PcapReplay::new(file)?;
        let start = Instant::now();
        let mut first_ts: Option<Duration> = None;
        for item in replay.by_ref() {
            let captured = item?;
            let first = *first_ts.get_or_insert(captured.timestamp);
            let offset = captured.timestamp.saturating_sub(first);
            if let Pace::RealTime { speed } = pace {
                if speed > 0.0 && speed.is_finite() {
                    let wait = offset.div_f64(speed);
                    tokio::time::sleep_until(start + wait).await;
                }
            }
            let now = start.into_std() + offset;
            let events = {
                let mut t = self.trigger();
                t.handle_timeout(now);
                let mut ev = drain(&mut t);
                t.handle_pdu(now, &captured.pdu);
                ev.extend(drain(&mut t));
                ev
            };
            if self.deliver(events).await.is_err() {
                break;
            }
        }
        Ok(replay.stats().clone())
    }
}

/// The events `t` queued, in order (the caller holds the lock).
fn drain(t: &mut X2Trigger) -> Vec<X2Event> {
    let mut events = Vec::new();
    while let Some(e) = t.poll_event() {
        events.push(e);
    }
    events
}
