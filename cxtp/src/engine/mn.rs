//! Mobile node: CTAR sending and retransmission (RFC 4067 §3.2).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Transmit, CT_REQUEST_RETRY, CT_RETRY_MAX};
use crate::wire::{CtarRepr, EmitError, MessageRepr, MessageView, StatusEntry};

/// Events from the MN engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MnEvent {
    /// A CTAA arrived: the FPTs listed were not transferred.
    Acknowledged {
        /// The AR that answered.
        from: IpAddr,
        /// Failed FPTs.
        entries: Vec<StatusEntry>,
    },
    /// No answer within CT_RETRY_MAX.
    GaveUp {
        /// The AR.
        to: IpAddr,
        /// Sequence number of the CTAR.
        seq: u32,
    },
}

struct Outstanding {
    to: IpAddr,
    seq: u32,
    bytes: Bytes,
    first: Instant,
    next: Instant,
    interval: Duration,
}

/// MN side: sends CTARs and retransmits those with `A = 1` at 2 s, then
/// doubling intervals (t ≈ 2, 6, 14 s), until a CTAA arrives or 15 s have
/// passed since the first send.
///
/// ```
/// use std::time::{Duration, Instant};
/// use cxtp::engine::{MobileNode, MnEvent};
/// use cxtp::wire::{CtarRepr, Token};
/// let mut mn = MobileNode::new();
/// let t0 = Instant::now();
/// let ar = "192.0.2.254".parse().unwrap();
/// mn.send_ctar(t0, ar, CtarRepr { ack: true, mn_addr: "192.0.2.1".parse().unwrap(),
///     ar_addr: "192.0.2.253".parse().unwrap(), seq: 7, token: Token::ZERO, requests: vec![] }).unwrap();
/// assert!(mn.poll_transmit().is_some()); // the first send, at t0
/// let mut sends = vec![];
/// while let Some(t) = mn.poll_timeout() {
///     mn.handle_timeout(t);
///     while mn.poll_transmit().is_some() { sends.push(t - t0) }
/// }
/// assert_eq!(sends, [2, 6, 14].map(Duration::from_secs));
/// assert!(matches!(mn.poll_event(), Some(MnEvent::GaveUp { seq: 7, .. })));
/// ```
#[derive(Default)]
pub struct MobileNode {
    outstanding: Vec<Outstanding>,
    transmit: VecDeque<(IpAddr, Bytes)>,
    events: VecDeque<MnEvent>,
}

impl MobileNode {
    /// New engine.
    pub fn new() -> Self {
        Self::default()
    }

    /// Send a CTAR to `to` (pAR or nAR). The token must already be set
    /// (see [`CtarRepr::sign`]).
    pub fn send_ctar(&mut self, now: Instant, to: IpAddr, ctar: CtarRepr) -> Result<(), EmitError> {
        let ack = ctar.ack;
        let seq = ctar.seq;
        let bytes = MessageRepr::Ctar(ctar).to_bytes()?;
        self.transmit.push_back((to, bytes.clone()));
        self.outstanding.retain(|o| o.to != to);
        if ack {
            self.outstanding.push(Outstanding {
                to,
                seq,
                bytes,
                first: now,
                next: now + CT_REQUEST_RETRY,
                interval: CT_REQUEST_RETRY,
            });
        }
        Ok(())
    }

    /// Process a message from an AR (a CTAA stops retransmission).
    pub fn handle_message(&mut self, _now: Instant, from: IpAddr, bytes: Bytes) {
        if let Ok(MessageView::Ctaa(a)) = MessageView::parse(bytes) {
            let before = self.outstanding.len();
            self.outstanding.retain(|o| o.to != from);
            if before != self.outstanding.len() {
                self.events.push_back(MnEvent::Acknowledged {
                    from,
                    entries: a.entries().collect(),
                });
            }
        }
    }

    /// Next message to send.
    #[must_use = "a message the engine produced is lost if not sent"]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit
            .pop_front()
            .map(|(to, payload)| Transmit { to, payload })
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<MnEvent> {
        self.events.pop_front()
    }

    /// Next retransmission or give-up time.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.outstanding
            .iter()
            .map(|o| o.next.min(o.first + CT_RETRY_MAX))
            .min()
    }

    /// Fire timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut keep = Vec::new();
        for mut o in self.outstanding.drain(..) {
            if o.next <= now && o.next < o.first + CT_RETRY_MAX {
                self.transmit.push_back((o.to, o.bytes.clone()));
                o.interval *= 2;
                o.next += o.interval;
            }
            if o.first + CT_RETRY_MAX <= now || (o.next >= o.first + CT_RETRY_MAX && o.next <= now)
            {
                self.events.push_back(MnEvent::GaveUp {
                    to: o.to,
                    seq: o.seq,
                });
            } else {
                keep.push(o);
            }
        }
        self.outstanding = keep;
    }
}
