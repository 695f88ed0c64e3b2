//! Local request/answer listeners (mih-user's control socket, both
//! daemons' HTTP endpoints): bounded so that idle connections cannot lock
//! the operator out.
//!
//! * **Cap**: at most `max_connections` connections. A connection is
//!   *idle* while it waits for its next request and *busy* while a request
//!   is being handled or answered. When the cap is reached, a new
//!   connection closes the oldest idle one and takes its place; when every
//!   connection is busy (e.g. `handover` requests waiting for their
//!   outcome), the new one is closed at once. Both are counted and logged
//!   (at most one line per 10 s).
//! * **Request timeout**: a request must be complete within
//!   `request_timeout` of the connection opening or of the previous answer,
//!   and each answer must be taken by the client within as long again;
//!   otherwise the connection is closed (counted).
//! * **Accept errors** are counted and retried after a backoff
//!   ([`cxtp::transport::accept`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cxtp::transport::accept::{Acceptor, Listener, LogLimit, LOG_EVERY};
use tokio::sync::oneshot;
use tracing::warn;

/// Bounds of one listener.
#[derive(Clone, Copy, Debug)]
pub struct LocalLimits {
    /// Most connections at once.
    pub max_connections: usize,
    /// Time for one request to arrive, and for one answer to be taken.
    pub request_timeout: Duration,
}

/// Counters of one local listener, as the metrics show them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerCounters {
    /// Connections open now.
    pub open: u64,
    /// Connections admitted.
    pub accepted: u64,
    /// Connections closed at once: every connection had a request in
    /// progress.
    pub refused_full: u64,
    /// Idle connections closed to make room for a new one.
    pub evicted_idle: u64,
    /// Connections closed because a request did not arrive, or an answer
    /// was not taken, in time.
    pub timeouts: u64,
    /// `accept()` errors (each retried after a backoff).
    pub accept_errors: u64,
}

/// Counters of one listener.
#[derive(Debug, Default)]
pub struct LocalStats {
    accepted: AtomicU64,
    refused_full: AtomicU64,
    evicted_idle: AtomicU64,
    timeouts: AtomicU64,
    accept_errors: Arc<AtomicU64>,
    open: AtomicU64,
}

impl LocalStats {
    /// The counters now.
    pub fn counters(&self) -> ListenerCounters {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ListenerCounters {
            open: get(&self.open),
            accepted: get(&self.accepted),
            refused_full: get(&self.refused_full),
            evicted_idle: get(&self.evicted_idle),
            timeouts: get(&self.timeouts),
            accept_errors: get(&self.accept_errors),
        }
    }
}

struct Entry {
    idle: bool,
    evict: Option<oneshot::Sender<()>>,
}

/// The open connections, oldest first (IDs grow).
struct Slots {
    limits: LocalLimits,
    stats: Arc<LocalStats>,
    open: Mutex<BTreeMap<u64, Entry>>,
    next: AtomicU64,
}

impl Slots {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a new connection (closing the oldest idle one if the cap
    /// is reached); `None` when every connection is busy.
    fn admit(self: &Arc<Self>) -> Option<(Conn, oneshot::Receiver<()>, bool)> {
        let mut open = self.lock();
        let mut evicted = false;
        if open.len() >= self.limits.max_connections {
            let oldest_idle = open.iter().find(|(_, e)| e.idle).map(|(&id, _)| id);
            let mut e = oldest_idle.and_then(|id| open.remove(&id))?;
            if let Some(tx) = e.evict.take() {
                let _ = tx.send(());
            }
            self.stats.evicted_idle.fetch_add(1, Ordering::Relaxed);
            evicted = true;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        open.insert(
            id,
            Entry {
                idle: true,
                evict: Some(tx),
            },
        );
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        self.stats.open.store(open.len() as u64, Ordering::Relaxed);
        Some((
            Conn {
                slots: self.clone(),
                id,
            },
            rx,
            evicted,
        ))
    }

    fn set_idle(&self, id: u64, idle: bool) {
        if let Some(e) = self.lock().get_mut(&id) {
            e.idle = idle;
        }
    }

    fn release(&self, id: u64) {
        let mut open = self.lock();
        open.remove(&id);
        self.stats.open.store(open.len() as u64, Ordering::Relaxed);
    }
}

/// One admitted connection: bounds its waits, frees its slot when dropped.
pub struct Conn {
    slots: Arc<Slots>,
    id: u64,
}

impl Conn {
    /// The listener's request timeout.
    pub fn request_timeout(&self) -> Duration {
        self.slots.limits.request_timeout
    }

    /// Wait for the next request (idle meanwhile: the connection may be
    /// closed to make room). `None`: not complete within the request
    /// timeout (counted); close the connection.
    pub async fn request<T>(&self, read: impl Future<Output = T>) -> Option<T> {
        self.slots.set_idle(self.id, true);
        let r = tokio::time::timeout(self.slots.limits.request_timeout, read).await;
        self.slots.set_idle(self.id, false);
        self.timed(r)
    }

    /// Write an answer within the request timeout. `None`: the client did
    /// not take it in time (counted); close the connection.
    pub async fn answer<T>(&self, write: impl Future<Output = T>) -> Option<T> {
        let r = tokio::time::timeout(self.slots.limits.request_timeout, write).await;
        self.timed(r)
    }

    fn timed<T>(&self, r: Result<T, tokio::time::error::Elapsed>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(_) => {
                self.slots.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.slots.release(self.id);
    }
}

/// Accept on `listener` for ever, running `handler` for each admitted
/// connection (see the module documentation for the bounds).
pub async fn serve<L, F, Fut>(
    what: &'static str,
    listener: L,
    limits: LocalLimits,
    stats: Arc<LocalStats>,
    handler: F,
) where
    L: Listener,
    L::Stream: 'static,
    F: Fn(L::Stream, Conn) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Slots {
        limits,
        stats: stats.clone(),
        open: Mutex::new(BTreeMap::new()),
        next: AtomicU64::new(0),
    });
    let mut acceptor = Acceptor::new(what, stats.accept_errors.clone());
    let mut log = LogLimit::new(LOG_EVERY);
    loop {
        let (stream, _) = acceptor.accept(&listener).await;
        let Some((conn, evicted, made_room)) = slots.admit() else {
            stats.refused_full.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            if let Some(left_out) = log.check(tokio::time::Instant::now()) {
                warn!(
                    listener = what,
                    max = limits.max_connections,
                    not_logged = left_out,
                    "every connection has a request in progress: refusing one"
                );
            }
            continue;
        };
        if made_room {
            if let Some(left_out) = log.check(tokio::time::Instant::now()) {
                warn!(
                    listener = what,
                    max = limits.max_connections,
                    not_logged = left_out,
                    "connection limit reached: closed the oldest idle connection"
                );
            }
        }
        let work = handler(stream, conn);
        tokio::spawn(async move {
            tokio::select! {
                _ = work => {}
                _ = evicted => {}
            }
        });
    }
}
