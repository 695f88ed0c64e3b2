//! Accept loops that outlive accept errors.
//!
//! `accept()` fails for reasons that pass: the process is out of file
//! descriptors (EMFILE), the system is (ENFILE), memory is short (ENOBUFS,
//! ENOMEM), a client gave up before we took its connection (ECONNABORTED).
//! None of them should close the port. [`Acceptor::accept`] counts each
//! error, logs it (at most one line per [`LOG_EVERY`], with the number of
//! errors not logged), waits ([`BACKOFF_MIN`] doubling to [`BACKOFF_MAX`],
//! back to the minimum after a success) and tries again; it only returns
//! with a connection. An accept loop built on it therefore ends only when
//! its task is dropped or aborted. The CXTP transport, the mih-user
//! daemon's control socket and metrics endpoint and the Service Mobility
//! API server all accept through it.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// First wait after an accept error.
pub const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest wait between two accept attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line per this interval per listener (for accept errors
/// and refused connections).
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Something connections are accepted from.
pub trait Listener: Send + Sync {
    /// An accepted connection.
    type Stream: Send;
    /// Its peer address.
    type Addr: Send;
    /// Take the next connection.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, Self::Addr)>> + Send;
}

impl Listener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, Self::Addr)>> + Send {
        tokio::net::TcpListener::accept(self)
    }
}

#[cfg(unix)]
impl Listener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    type Addr = tokio::net::unix::SocketAddr;
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, Self::Addr)>> + Send {
        tokio::net::UnixListener::accept(self)
    }
}

/// The wait between accept attempts: [`BACKOFF_MIN`], doubled after each
/// failure up to [`BACKOFF_MAX`], back to the minimum after a success.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: BACKOFF_MIN }
    }
}

impl Backoff {
    /// The wait after one more failure.
    pub fn failure(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(BACKOFF_MAX);
        d
    }

    /// A success: the next failure waits [`BACKOFF_MIN`] again.
    pub fn success(&mut self) {
        self.next = BACKOFF_MIN;
    }
}

/// At most one log line per interval; counts the lines left out.
#[derive(Clone, Debug)]
pub struct LogLimit {
    every: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    /// One line per `every`.
    pub fn new(every: Duration) -> Self {
        LogLimit {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// Whether a line may be logged at `now`; if so, how many were left
    /// out since the last one.
    pub fn check(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// Accepts connections through accept errors (see the module
/// documentation).
#[derive(Debug)]
pub struct Acceptor {
    what: &'static str,
    errors: Arc<AtomicU64>,
    backoff: Backoff,
    log: LogLimit,
    /// No attempt before this instant (kept here so that a cancelled
    /// `accept` future does not cut the wait short).
    resume_at: Option<Instant>,
}

impl Acceptor {
    /// `what` names the listener in log lines; every accept error adds one
    /// to `errors`.
    pub fn new(what: &'static str, errors: Arc<AtomicU64>) -> Self {
        Acceptor {
            what,
            errors,
            backoff: Backoff::default(),
            log: LogLimit::new(LOG_EVERY),
            resume_at: None,
        }
    }

    /// Accept errors so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// The next connection; waits and retries through accept errors.
    /// Cancel-safe: dropping the future loses no connection and keeps the
    /// backoff.
    pub async fn accept<L: Listener>(&mut self, listener: &L) -> (L::Stream, L::Addr) {
        loop {
            if let Some(t) = self.resume_at {
                tokio::time::sleep_until(t).await;
                self.resume_at = None;
            }
            match listener.accept().await {
                Ok(c) => {
                    self.backoff.success();
                    return c;
                }
                Err(e) => {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    let wait = self.backoff.failure();
                    let now = Instant::now();
                    if let Some(left_out) = self.log.check(now) {
                        tracing::warn!(
                            listener = self.what,
                            error = %e,
                            retry_in_ms = wait.as_millis() as u64,
                            not_logged = left_out,
                            "accept failed; retrying"
                        );
                    }
                    self.resume_at = Some(now + wait);
                }
            }
        }
    }
}
