//! Sans-IO CXTP engines: previous router ([`PreviousRouter`]), new router
//! ([`NewRouter`]) and mobile node ([`MobileNode`]).
//!
//! Engines own no sockets and read no clock. The caller feeds them received
//! messages and the current time, and drains what they produce:
//!
//! * `handle_message(now, from, bytes)` — a message from a peer;
//! * `poll_transmit() -> Option<Transmit>` — a message to send (the shape
//!   of `mihf::proto`'s engines: [`Transmit`] `{ to, payload }`);
//! * `poll_event() -> Option<Event>` — something for the application;
//! * `poll_timeout() -> Option<Instant>` / `handle_timeout(now)` — timers.
//!
//! Flows covered (RFC 4067 §2.1, §5): predictive (pAR pushes a PCTD with the
//! key, caches it until a CTDR or the cache time, resends it on a CT-Req
//! with the same sequence number), MN-assisted predictive (CTAR to pAR),
//! network-triggered reactive (nAR sends a zero-token CT-Req, pAR answers
//! with a PCTD, nAR verifies the CTAR locally), mobile-controlled reactive
//! (CTAR → CT-Req → pAR verifies → CTD), CTAA when the CTAR asked, CTC
//! cancellation, one operation per MN, duplicate (sequence number, MN)
//! suppression, CTAR rate limiting and the MN's retransmission schedule.
//!
//! **Identified transfers.** [`PreviousRouter::start_identified_push`] and
//! [`NewRouter::expect_transfer`] with a transfer id give every message of
//! a push the TRANSFER block of [`crate::segment`] carrying that id (also
//! when the transfer fits one message), and every CTDR the echo of
//! [`crate::profile::echo`] (the id, the message answered, whether it is
//! the verdict). A router that uses ids for its attempts thereby keeps
//! every message of an earlier attempt for the same MN from acting on a
//! later one: the nAR drops CTDs with another id (or none) before any
//! reassembly memory is used, the pAR drops CTDRs whose echo does not
//! match, and since a CTC (RFC 4067 §2.5.5) names only the MN, an
//! identified push ignores CTCs and the nAR gives up on an identified
//! transfer with a failure CTDR carrying the echo instead. Without an id
//! the engines are plain RFC 4067: CTDRs matched first-in first-out, CTC
//! cancels.
//!
//! Interpretations: the nAR answers every CTD/PCTD with `A = 1` as soon as
//! the transfer is received (the CTDR reports whether the contexts could be
//! decoded); installation waits for a verified token. A keyless CTD is only
//! installed when it answers a CT-Req that carried the MN's real token
//! (so pAR verified it); anything else is refused with status 0x83.

mod mn;
mod nar;
mod par;
#[cfg(test)]
mod tests;

pub use mn::{MnEvent, MobileNode};
pub use nar::{NarEvent, NarStats, NewRouter};
pub use par::{ParEvent, ParStats, PreviousRouter};

/// A message an engine asks to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The peer: the other router, or the MN.
    pub to: IpAddr,
    /// One whole CXTP message.
    pub payload: bytes::Bytes,
}

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::segment::SegmentConfig;

/// CT_REQUEST_RATE: CTARs per second an AR processes.
pub const CT_REQUEST_RATE: u32 = 10;
/// CT_MAX_TRANSFER_TIME.
pub const CT_MAX_TRANSFER_TIME: Duration = Duration::from_millis(200);
/// CT_REQUEST_RETRY: first CTAR retransmission.
pub const CT_REQUEST_RETRY: Duration = Duration::from_secs(2);
/// CT_RETRY_MAX: stop retransmitting after this long.
pub const CT_RETRY_MAX: Duration = Duration::from_secs(15);
/// Sequence numbers are not reused within this window (RFC 4067 §3.2).
pub const SEQ_REUSE_WINDOW: Duration = Duration::from_secs(7);

/// Settings shared by the router engines.
#[derive(Clone, Debug)]
pub struct Config {
    /// CT_MAX_TRANSFER_TIME: wait for a CTDR (pAR) or a CTD (nAR), measured
    /// from the last progress of the transfer.
    pub max_transfer_time: Duration,
    /// How long pAR keeps a sent transfer for a CT-Req resend when no CTDR
    /// comes (the RFC's undefined CT_MAX_HANDOVER_TIME).
    pub cache_time: Duration,
    /// How long nAR holds predictively received contexts and key waiting
    /// for the MN's CTAR.
    pub hold_time: Duration,
    /// CT_REQUEST_RATE (CTARs per second; also the burst).
    pub request_rate: u32,
    /// Window for (sequence number, MN) duplicate suppression.
    pub dedup_window: Duration,
    /// Messages of one transfer in flight before CTDRs must come back.
    pub window: usize,
    /// Request CTDRs (`A` flag on CTD/PCTD).
    pub ack: bool,
    /// Segmentation and reassembly limits.
    pub segment: SegmentConfig,
    /// FPT of the transfer id echo in the CTDRs of identified transfers
    /// ([`crate::profile::echo`]).
    pub transfer_id_fpt: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_transfer_time: CT_MAX_TRANSFER_TIME,
            cache_time: CT_MAX_TRANSFER_TIME,
            hold_time: Duration::from_secs(2),
            request_rate: CT_REQUEST_RATE,
            dedup_window: SEQ_REUSE_WINDOW,
            window: 4,
            ack: true,
            segment: SegmentConfig::default(),
            transfer_id_fpt: crate::profile::fpt::TRANSFER_ID,
        }
    }
}

/// Errors of engine calls made by the application.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// An operation for this MN is already in progress.
    #[error("a context transfer for {0} is already in progress")]
    Busy(IpAddr),
    /// No CXTP key for this MN.
    #[error("no CXTP key for {0}")]
    NoKey(IpAddr),
    /// Nothing is waiting for contexts for this MN.
    #[error("no context request pending for {0}")]
    NotPending(IpAddr),
    /// The contexts could not be encoded.
    #[error(transparent)]
    Emit(#[from] crate::wire::EmitError),
    /// An identified transfer would need more messages than its echo can
    /// number ([`crate::profile::echo::MAX_MESSAGES`]).
    #[error("an identified transfer takes {0} messages (at most {max})", max = crate::profile::echo::MAX_MESSAGES)]
    TooManyMessages(usize),
}

/// Why a transfer failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// No CTDR (pAR) / CTD (nAR) in time.
    Timeout,
    /// The peer cancelled (CTC).
    Cancelled,
    /// The token did not verify.
    Unauthorized,
    /// Reassembly was abandoned.
    Reassembly,
}

/// Token bucket for CT_REQUEST_RATE. Deterministic: requests above the rate
/// are dropped as they come (the RFC suggests random dropping; with a
/// bucket the first `rate` per second pass).
#[derive(Clone, Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl RateLimiter {
    pub(crate) fn new(rate: u32) -> Self {
        RateLimiter {
            rate: rate.max(1) as f64,
            tokens: rate.max(1) as f64,
            last: None,
        }
    }
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.rate);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Remembers (sequence number, MN) pairs for a window. Bounded.
#[derive(Clone, Debug)]
pub(crate) struct Dedup {
    window: Duration,
    seen: VecDeque<(u32, IpAddr, Instant)>,
}

const DEDUP_CAP: usize = 4096;

impl Dedup {
    pub(crate) fn new(window: Duration) -> Self {
        Dedup {
            window,
            seen: VecDeque::new(),
        }
    }
    fn expire(&mut self, now: Instant) {
        while self.seen.front().is_some_and(|e| e.2 <= now) {
            self.seen.pop_front();
        }
    }
    pub(crate) fn contains(&mut self, now: Instant, seq: u32, mn: IpAddr) -> bool {
        self.expire(now);
        self.seen.iter().any(|e| e.0 == seq && e.1 == mn)
    }
    /// Record; returns false if already present.
    pub(crate) fn insert(&mut self, now: Instant, seq: u32, mn: IpAddr) -> bool {
        if self.contains(now, seq, mn) {
            return false;
        }
        if self.seen.len() >= DEDUP_CAP {
            self.seen.pop_front();
        }
        self.seen.push_back((seq, mn, now + self.window));
        true
    }
}
